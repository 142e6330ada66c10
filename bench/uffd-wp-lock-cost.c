// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-wp-lock-cost: what taking mmap_lock for write in a uffd-wp protect
 * costs, to compare kernels in the same run (scripts/bench.sh).
 *
 *  protect_4k:  median latency of UFFDIO_WRITEPROTECT(WP) of one 4K page
 *               while 3 other threads of the mm keep page-faulting
 *               (MADV_DONTNEED + touch), pinned to the other CPUs.
 *  big_protect: page faults per second of those 3 threads while one
 *               thread protects a large populated range (BIG_MB, default
 *               1024), against their rate over as long a window without
 *               an ioctl, over BIG_ROUNDS protects; and how long the
 *               protects took.
 *
 * Prints "bench: key=value" lines; not a test, it always exits 0 unless
 * something could not be set up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/userfaultfd.h>

#define PAGE		4096UL
#define NR_FAULTERS	3
#define FAULT_PAGES	16
#define ROUNDS_4K	400
#define BIG_ROUNDS	20

struct faulter {
	pthread_t thread;
	int cpu;
	char *area;
	unsigned long faults;	/* written by the faulter only */
};

static volatile int stop;

static void die(const char *what)
{
	fprintf(stderr, "uffd-wp-lock-cost: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity");
}

/* Take page faults as fast as possible: each touch needs mmap_lock (read). */
static void *faulter_fn(void *arg)
{
	struct faulter *f = arg;
	unsigned long i;

	pin(f->cpu);
	while (!stop) {
		if (madvise(f->area, FAULT_PAGES * PAGE, MADV_DONTNEED))
			die("madvise");
		for (i = 0; i < FAULT_PAGES; i++)
			f->area[i * PAGE] = 1;
		__atomic_add_fetch(&f->faults, FAULT_PAGES, __ATOMIC_RELAXED);
	}
	return NULL;
}

static unsigned long total_faults(struct faulter *f)
{
	unsigned long sum = 0;
	int i;

	for (i = 0; i < NR_FAULTERS; i++)
		sum += __atomic_load_n(&f[i].faults, __ATOMIC_RELAXED);
	return sum;
}

static int new_uffd(char *area, unsigned long len)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = (unsigned long)area, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	int uffd;

	uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		die("userfaultfd");
	if (ioctl(uffd, UFFDIO_API, &api))
		die("UFFDIO_API");
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER");
	return uffd;
}

static void wp(int uffd, char *start, unsigned long len, int protect)
{
	struct uffdio_writeprotect w = {
		.range = { .start = (unsigned long)start, .len = len },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	if (ioctl(uffd, UFFDIO_WRITEPROTECT, &w))
		die("UFFDIO_WRITEPROTECT");
}

static char *populated(unsigned long len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	if (madvise(p, len, MADV_NOHUGEPAGE))
		die("madvise(MADV_NOHUGEPAGE)");
	memset(p, 0x5a, len);
	return p;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(void)
{
	unsigned long big_len = (getenv("BIG_MB") ? atol(getenv("BIG_MB")) : 1024) << 20;
	static uint64_t lat[ROUNDS_4K];
	struct faulter f[NR_FAULTERS];
	unsigned long f0, f1, during_faults = 0, idle_faults = 0;
	uint64_t t0, t1, ns, during_ns = 0, idle_ns = 0, first_ns = 0;
	char *small, *big;
	int i, uffd;

	if (sysconf(_SC_NPROCESSORS_ONLN) < NR_FAULTERS + 1) {
		printf("bench: skipped, needs %d CPUs\n", NR_FAULTERS + 1);
		return 4;
	}
	pin(0);
	small = populated(PAGE);
	big = populated(big_len);
	uffd = new_uffd(small, PAGE);

	for (i = 0; i < NR_FAULTERS; i++) {
		f[i].cpu = i + 1;
		f[i].faults = 0;
		f[i].area = mmap(NULL, FAULT_PAGES * PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (f[i].area == MAP_FAILED)
			die("mmap");
		if (pthread_create(&f[i].thread, NULL, faulter_fn, &f[i]))
			die("pthread_create");
	}
	usleep(200000);

	for (i = 0; i < ROUNDS_4K; i++) {
		t0 = now_ns();
		wp(uffd, small, PAGE, 1);
		lat[i] = now_ns() - t0;
		wp(uffd, small, PAGE, 0);
	}
	qsort(lat, ROUNDS_4K, sizeof(lat[0]), cmp_u64);
	printf("bench: protect_4k_median_ns=%llu\n", (unsigned long long)lat[ROUNDS_4K / 2]);
	printf("bench: protect_4k_p90_ns=%llu\n", (unsigned long long)lat[ROUNDS_4K * 9 / 10]);

	/*
	 * The fault rate during each protect of the big range, against the
	 * rate over as long a window with no ioctl running, BIG_ROUNDS times.
	 * Only the first protect turns writable PTEs read-only; the later
	 * ones find them read-only already, and take the same lock.
	 */
	uffd = new_uffd(big, big_len);
	for (i = 0; i < BIG_ROUNDS; i++) {
		f0 = total_faults(f);
		t0 = now_ns();
		wp(uffd, big, big_len, 1);
		t1 = now_ns();
		f1 = total_faults(f);
		ns = t1 - t0;
		during_faults += f1 - f0;
		during_ns += ns;
		if (!i)
			first_ns = ns;
		wp(uffd, big, big_len, 0);

		f0 = total_faults(f);
		t0 = now_ns();
		usleep(ns / 1000);
		f1 = total_faults(f);
		t1 = now_ns();
		idle_faults += f1 - f0;
		idle_ns += t1 - t0;
	}

	printf("bench: big_protect_mb=%lu\n", big_len >> 20);
	printf("bench: big_protect_first_ms=%.1f\n", first_ns / 1e6);
	printf("bench: big_protect_avg_ms=%.1f\n", during_ns / 1e6 / BIG_ROUNDS);
	printf("bench: faults_per_s_idle=%.0f\n", idle_faults * 1e9 / idle_ns);
	printf("bench: faults_per_s_during=%.0f\n", during_faults * 1e9 / during_ns);

	stop = 1;
	for (i = 0; i < NR_FAULTERS; i++)
		pthread_join(f[i].thread, NULL);
	return 0;
}
