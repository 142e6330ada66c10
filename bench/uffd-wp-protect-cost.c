// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-wp-protect-cost: what a UFFDIO_WRITEPROTECT(WP) costs the protecting
 * thread and the other threads of the process, to compare kernels booted
 * one after the other (scripts/bench.sh). Not a test: it prints
 * "bench: CASE.NUMBER=VALUE" lines and exits 0 unless it could not set up.
 *
 * Thread 0 protects and unprotects one range back to back; every other CPU
 * runs a faulter: MADV_DONTNEED of 16 pages of its own, then a timed write
 * to each (an anonymous page fault, under mmap_lock for read). A sequence
 * count is odd while a protect runs; a fault that starts or ends while it
 * is odd, or sees it move, waited with a protect. Each protect phase is
 * followed by its control: the same sequence of odd and even periods, the
 * durations the protect phase measured, with thread 0 spinning instead of
 * calling the kernel. So each number has a control beside it, in the same
 * boot, that shows what the kernel under test cannot change.
 *
 * Cases (the range protected, its pages written again before each protect
 * so that every protect write-protects the same writable PTEs):
 *   p4k    one 4K page
 *   p2m    2M of 4K pages (one page table)
 *   p1g    1G of 4K pages
 *   zero8g 8G of zero-page PTEs (read faults only: page tables, no memory;
 *          read-only already, so a protect only sets the uffd-wp bits)
 *
 * Numbers per case: protect_p50_us (the protect ioctl), faults_per_s (the
 * faulters' completed faults per second of protect time) and lat_p50_us,
 * lat_p99_us, lat_max_us (the faults that waited with a protect), each also
 * as control_*; faults_vs_control (faults_per_s over its control: the host
 * slows whole boots down, by up to 30% on the machines this runs on, and
 * this ratio cancels that out); flushes (TLB flushes with remote CPUs that
 * one protect sends, counted while the faulters spin in user space).
 * PHASES protect phases per case, each followed by its control, so that a
 * slow spell of the host falls on both.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <linux/userfaultfd.h>

#include "uffd-wp-common.h"

#define MAX_FAULTERS	7
#define FAULT_PAGES	16
#define PHASES		10		/* protect + control pairs per case */
#define MAX_ROUNDS	20000		/* per phase */
#define MAX_SAMPLES	(1 << 21)	/* fault latencies per phase */

struct bcase {
	const char *name;
	size_t len;
	bool zero;			/* zero-page PTEs, nothing to write */
	unsigned long long phase_ns;	/* length of each protect phase */
	int max_rounds;
};

static struct bcase cases[] = {
	{ "p4k",    BASE_PAGE_SIZE,      false, 100 * NSEC_PER_MSEC, MAX_ROUNDS },
	{ "p2m",    UFFD_WP_HPAGE_SIZE,  false, 100 * NSEC_PER_MSEC, MAX_ROUNDS },
	{ "p1g",    1UL << 30,           false, 300 * NSEC_PER_MSEC, 8 },
	{ "zero8g", 8UL << 30,           true,  400 * NSEC_PER_MSEC, 8 },
};

/* What the faulters record: one set per case and per protect/control. */
struct phase_stats {
	unsigned int *lat_ns;		/* faults that waited with a protect */
	unsigned long nr_lat;
	unsigned long completed_odd;	/* faults completed while odd */
	unsigned long long odd_ns;	/* written by thread 0 */
};

static struct phase_stats stats[sizeof(cases) / sizeof(cases[0])][2];
static struct phase_stats *volatile cur_stats;
static unsigned long seq;		/* odd while a protect (or its stand-in) runs */
static volatile int faulters_spin, stop;
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;

struct faulter {
	pthread_t thread;
	int cpu;
	char *area;
};

static void die(const char *what)
{
	fprintf(stderr, "uffd-wp-protect-cost: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void record(struct phase_stats *ps, unsigned long long ns,
		   unsigned long s0, unsigned long s1)
{
	if (!ps)
		return;
	pthread_mutex_lock(&stats_lock);
	if (s1 & 1)
		ps->completed_odd++;
	if (((s0 | s1) & 1) || s0 != s1) {
		if (ps->nr_lat < MAX_SAMPLES)
			ps->lat_ns[ps->nr_lat++] = ns > ~0U ? ~0U : ns;
	}
	pthread_mutex_unlock(&stats_lock);
}

static void *faulter_fn(void *arg)
{
	struct faulter *f = arg;
	unsigned long long t0, t1;
	unsigned long s0, s1;
	struct phase_stats *ps;
	int i;

	if (pin_self(f->cpu))
		die("pin faulter");
	while (!stop) {
		if (faulters_spin)
			continue;
		if (madvise(f->area, FAULT_PAGES * BASE_PAGE_SIZE, MADV_DONTNEED))
			die("madvise(MADV_DONTNEED)");
		for (i = 0; i < FAULT_PAGES; i++) {
			ps = cur_stats;
			s0 = load_word(&seq);
			t0 = now_ns();
			f->area[i * BASE_PAGE_SIZE] = 1;
			t1 = now_ns();
			s1 = load_word(&seq);
			record(ps, t1 - t0, s0, s1);
		}
	}
	return NULL;
}

static void redirty(struct bcase *c, char *p)
{
	size_t off;

	if (c->zero)
		return;
	for (off = 0; off < c->len; off += BASE_PAGE_SIZE)
		p[off]++;
}

static void spin_until(unsigned long long t)
{
	while (now_ns() < t)
		;
}

static void protect(int uffd, char *p, size_t len, bool wp)
{
	if (uffd_wp(uffd, p, len, wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0))
		die("UFFDIO_WRITEPROTECT");
}

/* Back-to-back protects for c->phase_ns; returns the rounds done. */
static int protect_phase(struct bcase *c, int uffd, char *p,
			 unsigned long long *odd, unsigned long long *even,
			 unsigned long long *protect_ns)
{
	struct phase_stats *ps = &stats[c - cases][0];
	unsigned long long t0, t1, t2, end = now_ns() + c->phase_ns;
	int n;

	cur_stats = ps;
	for (n = 0; n < c->max_rounds && now_ns() < end; n++) {
		t0 = now_ns();
		redirty(c, p);
		inc_word(&seq);
		t1 = now_ns();
		protect(uffd, p, c->len, true);
		t2 = now_ns();
		inc_word(&seq);
		protect(uffd, p, c->len, false);
		odd[n] = t2 - t1;
		even[n] = t1 - t0 + now_ns() - t2;
		protect_ns[n] = t2 - t1;
		ps->odd_ns += t2 - t1;
	}
	cur_stats = NULL;
	return n;
}

/* The same odd and even periods, with no ioctl. */
static void control_phase(struct bcase *c, int n, unsigned long long *odd,
			  unsigned long long *even)
{
	struct phase_stats *ps = &stats[c - cases][1];
	unsigned long long t;
	int i;

	cur_stats = ps;
	for (i = 0; i < n; i++) {
		inc_word(&seq);
		t = now_ns();
		spin_until(t + odd[i]);
		ps->odd_ns += now_ns() - t;
		inc_word(&seq);
		spin_until(now_ns() + even[i]);
	}
	cur_stats = NULL;
}

static int cmp_uint(const void *a, const void *b)
{
	unsigned int x = *(const unsigned int *)a, y = *(const unsigned int *)b;

	return x < y ? -1 : x > y;
}

static int cmp_ull(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a;
	unsigned long long y = *(const unsigned long long *)b;

	return x < y ? -1 : x > y;
}

static double rate(struct phase_stats *ps)
{
	return ps->odd_ns ? ps->completed_odd * 1e9 / ps->odd_ns : 0;
}

static void print_phase(const char *name, const char *prefix,
			struct phase_stats *ps)
{
	unsigned long n = ps->nr_lat;

	qsort(ps->lat_ns, n, sizeof(ps->lat_ns[0]), cmp_uint);
	printf("bench: %s.%sfaults_per_s=%.0f\n", name, prefix, rate(ps));
	if (!n)
		return;
	printf("bench: %s.%slat_p50_us=%.1f\n", name, prefix, ps->lat_ns[n / 2] / 1e3);
	printf("bench: %s.%slat_p99_us=%.1f\n", name, prefix,
	       ps->lat_ns[n * 99 / 100] / 1e3);
	printf("bench: %s.%slat_max_us=%.1f\n", name, prefix, ps->lat_ns[n - 1] / 1e3);
}

/* Remote TLB flushes of one protect, the faulters spinning in user space. */
static long long flushes_of_one_protect(struct bcase *c, int uffd, char *p)
{
	long long before, after;

	redirty(c, p);
	before = vmstat_read("nr_tlb_remote_flush");
	protect(uffd, p, c->len, true);
	after = vmstat_read("nr_tlb_remote_flush");
	protect(uffd, p, c->len, false);
	return before < 0 || after < 0 ? -1 : after - before;
}

static char *map_case(struct bcase *c)
{
	char *p;

	if (c->zero) {
		const char *why = map_zero_page_range(&p, c->len);

		if (why) {
			fprintf(stderr, "uffd-wp-protect-cost: %s\n", why);
			exit(1);
		}
		return p;
	}
	p = mmap(NULL, c->len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	if (madvise(p, c->len, MADV_NOHUGEPAGE))
		die("madvise(MADV_NOHUGEPAGE)");
	memset(p, 0x5a, c->len);
	return p;
}

int main(void)
{
	static unsigned long long odd[MAX_ROUNDS], even[MAX_ROUNDS], prot[MAX_ROUNDS];
	static unsigned long long prot_all[PHASES * MAX_ROUNDS];
	int cpus[MAX_FAULTERS + 1], nr_cpus, nr_faulters, i, k, n, uffd;
	struct faulter f[MAX_FAULTERS];
	struct bcase *c;
	char *p;

	nr_cpus = allowed_cpus(cpus, MAX_FAULTERS + 1);
	if (nr_cpus < 2) {
		printf("bench: skipped, needs 2 CPUs\n");
		return 4;
	}
	nr_faulters = nr_cpus - 1;
	if (pin_self(cpus[0]))
		die("pin");
	for (c = cases; c < cases + sizeof(cases) / sizeof(cases[0]); c++)
		for (k = 0; k < 2; k++) {
			stats[c - cases][k].lat_ns = malloc(MAX_SAMPLES * sizeof(unsigned int));
			if (!stats[c - cases][k].lat_ns)
				die("malloc");
		}
	for (i = 0; i < nr_faulters; i++) {
		f[i].cpu = cpus[i + 1];
		f[i].area = mmap(NULL, FAULT_PAGES * BASE_PAGE_SIZE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (f[i].area == MAP_FAILED)
			die("mmap");
		if (pthread_create(&f[i].thread, NULL, faulter_fn, &f[i]))
			die("pthread_create");
	}
	printf("bench: faulters=%d\n", nr_faulters);

	for (c = cases; c < cases + sizeof(cases) / sizeof(cases[0]); c++) {
		unsigned long long t = now_ns();
		int nr_prot = 0;

		p = map_case(c);
		uffd = uffd_wp_open(0);
		if (uffd < 0 || uffd_register_wp(uffd, p, c->len))
			die("userfaultfd");
		for (k = 0; k < PHASES; k++) {
			n = protect_phase(c, uffd, p, odd, even, prot);
			control_phase(c, n, odd, even);
			memcpy(prot_all + nr_prot, prot, n * sizeof(prot[0]));
			nr_prot += n;
		}
		qsort(prot_all, nr_prot, sizeof(prot_all[0]), cmp_ull);
		printf("bench: %s.protects=%d\n", c->name, nr_prot);
		printf("bench: %s.protect_p50_us=%.1f\n", c->name, prot_all[nr_prot / 2] / 1e3);
		print_phase(c->name, "", &stats[c - cases][0]);
		print_phase(c->name, "control_", &stats[c - cases][1]);
		printf("bench: %s.faults_vs_control=%.4f\n", c->name,
		       rate(&stats[c - cases][0]) / rate(&stats[c - cases][1]));

		faulters_spin = 1;
		usleep(10000);
		printf("bench: %s.flushes=%lld\n", c->name, flushes_of_one_protect(c, uffd, p));
		faulters_spin = 0;

		close(uffd);
		munmap(p, c->len);
		fprintf(stderr, "uffd-wp-protect-cost: %s done in %.1f s\n", c->name,
			(now_ns() - t) / 1e9);
	}

	stop = 1;
	for (i = 0; i < nr_faulters; i++)
		pthread_join(f[i].thread, NULL);
	return 0;
}
