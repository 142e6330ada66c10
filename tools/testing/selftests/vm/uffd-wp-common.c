// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers of the uffd-wp-* selftests; see uffd-wp-common.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/mempolicy.h>
#include <linux/userfaultfd.h>

#include "uffd-wp-common.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB		0x0004U
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT		26
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB		(21 << MAP_HUGE_SHIFT)
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB		(21 << MAP_HUGE_SHIFT)
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif

#define REASON_SIZE		160
#define PROC_BUF_SIZE		(1024UL * 1024)

unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

void sleep_ns(unsigned long long ns)
{
	struct timespec ts = {
		.tv_sec = ns / NSEC_PER_SEC,
		.tv_nsec = ns % NSEC_PER_SEC,
	};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

/* The first @max CPUs the caller may run on, into @cpus; how many. */
int allowed_cpus(int *cpus, int max)
{
	cpu_set_t set;
	int cpu, n = 0;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 0;
	for (cpu = 0; cpu < CPU_SETSIZE && n < max; cpu++)
		if (CPU_ISSET(cpu, &set))
			cpus[n++] = cpu;
	return n;
}

/*
 * NUMA balancing makes PTEs inaccessible to sample where a task runs; the
 * hinting faults that follow count as minor faults, which some oracles
 * require to be zero. It only scans VMAs whose memory policy allows
 * migration on fault (MPOL_F_MOF, set by the default policy); a task
 * policy of local allocation does not. Call before starting threads, which
 * inherit it. Returns NULL, or why minor faults cannot be trusted.
 */
const char *no_numa_hinting_faults(void)
{
	char on[4] = "0";
	int fd;

	if (!syscall(__NR_set_mempolicy, MPOL_PREFERRED, NULL, 0))
		return NULL;
	fd = open("/proc/sys/kernel/numa_balancing", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, on, sizeof(on) - 1) < 0)
			on[0] = '1';
		close(fd);
	}
	if (on[0] == '0')
		return NULL;
	return "NUMA balancing is on and set_mempolicy() failed: minor faults can't be counted";
}

static int uffd_open_flags(int flags)
{
	int fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | flags);

	/*
	 * Without CAP_SYS_PTRACE and vm.unprivileged_userfaultfd, only faults
	 * from user mode may be handled: all these tests need.
	 */
	if (fd < 0 && errno == EPERM && !flags)
		return uffd_open_flags(UFFD_USER_MODE_ONLY);
	return fd;
}

/* A new userfaultfd with @features, or -1 with errno. */
int uffd_wp_open(__u64 features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = uffd_open_flags(0), err;

	if (fd < 0)
		return -1;
	if (ioctl(fd, UFFDIO_API, &api)) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/*
 * The features to ask for on @type: @required ones and write protection of
 * the type (else a reason to skip), plus those of @optional the kernel has.
 */
const char *uffd_wp_features(enum mem_type type, __u64 required,
			     __u64 optional, __u64 *features)
{
	static char why[REASON_SIZE];
	struct uffdio_api api = { .api = UFFD_API };
	int fd = uffd_open_flags(0);

	required |= UFFD_FEATURE_PAGEFAULT_FLAG_WP;
	if (type != MEM_ANON && type != MEM_ANON_THP)
		required |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	if (fd < 0) {
		snprintf(why, sizeof(why), "userfaultfd(): %s%s",
			 strerror(errno), errno == EPERM ?
			 " (needs CAP_SYS_PTRACE, or vm.unprivileged_userfaultfd=1)" :
			 "");
		return why;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		snprintf(why, sizeof(why), "UFFDIO_API: %s", strerror(errno));
		close(fd);
		return why;
	}
	close(fd);
	if ((api.features & required) != required) {
		snprintf(why, sizeof(why), "userfaultfd lacks features 0x%llx",
			 (unsigned long long)(required & ~api.features));
		return why;
	}
	*features = required | (api.features & optional);
	return NULL;
}

/* Register @len bytes at @addr for write protection; -1 with errno. */
int uffd_register_wp(int uffd, void *addr, size_t len)
{
	struct uffdio_register reg = {
		.range.start = (unsigned long)addr,
		.range.len = len,
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return -1;
	if (!(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
		errno = EOPNOTSUPP;
		return -1;
	}
	return 0;
}

int uffd_wp(int uffd, void *addr, size_t len, __u64 mode)
{
	struct uffdio_writeprotect wp = {
		.range.start = (unsigned long)addr,
		.range.len = len,
		.mode = mode,
	};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp);
}

bool mem_type_is_hugetlb(enum mem_type type)
{
	return type == MEM_HUGETLB || type == MEM_HUGETLB_SHARED;
}

/* An anonymous mapping of @size bytes aligned to UFFD_WP_HPAGE_SIZE. */
static char *map_thp_aligned(size_t size)
{
	size_t len = size + UFFD_WP_HPAGE_SIZE;
	char *p, *aligned;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return p;
	aligned = (char *)(((unsigned long)p + UFFD_WP_HPAGE_SIZE - 1) &
			   ~(UFFD_WP_HPAGE_SIZE - 1));
	if (aligned > p)
		munmap(p, aligned - p);
	if (aligned + size < p + len)
		munmap(aligned + size, p + len - (aligned + size));
	return aligned;
}

/*
 * Map @nr_pages pages of @type, not populated. Returns NULL, or why the
 * memory type cannot be had (m->addr is MAP_FAILED then).
 */
const char *mem_area_map(struct mem_area *m, enum mem_type type,
			 unsigned long nr_pages, const char *name)
{
	static char why[REASON_SIZE];
	bool huge = type != MEM_ANON && type != MEM_SHMEM;
	int flags = MFD_CLOEXEC;

	m->memfd = -1;
	m->nr_pages = nr_pages;
	m->psize = huge ? UFFD_WP_HPAGE_SIZE : BASE_PAGE_SIZE;
	m->size = nr_pages * m->psize;
	m->addr = MAP_FAILED;

	switch (type) {
	case MEM_ANON:
		m->addr = mmap(NULL, m->size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m->addr != MAP_FAILED)
			madvise(m->addr, m->size, MADV_NOHUGEPAGE);
		break;
	case MEM_ANON_THP:
		m->addr = map_thp_aligned(m->size);
		if (m->addr != MAP_FAILED &&
		    madvise(m->addr, m->size, MADV_HUGEPAGE)) {
			snprintf(why, sizeof(why), "MADV_HUGEPAGE: %s (no THP)",
				 strerror(errno));
			mem_area_unmap(m);
			return why;
		}
		break;
	case MEM_HUGETLB:
		m->addr = mmap(NULL, m->size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
			       MAP_HUGE_2MB, -1, 0);
		break;
	case MEM_SHMEM:
	case MEM_HUGETLB_SHARED:
		if (type == MEM_HUGETLB_SHARED)
			flags |= MFD_HUGETLB | MFD_HUGE_2MB;
		m->memfd = memfd_create(name, flags);
		if (m->memfd < 0 || ftruncate(m->memfd, m->size))
			break;
		m->addr = mmap(NULL, m->size, PROT_READ | PROT_WRITE,
			       MAP_SHARED, m->memfd, 0);
		/* 4K PTEs even with shmem_enabled=always. */
		if (m->addr != MAP_FAILED && type == MEM_SHMEM)
			madvise(m->addr, m->size, MADV_NOHUGEPAGE);
		break;
	}
	if (m->addr != MAP_FAILED)
		return NULL;
	snprintf(why, sizeof(why), "%lu pages of %zu kB: %s%s", nr_pages,
		 m->psize >> 10, strerror(errno),
		 mem_type_is_hugetlb(type) ?
		 " (are 2M hugetlb pages reserved in vm.nr_hugepages?)" : "");
	mem_area_unmap(m);
	return why;
}

/*
 * The AnonHugePages of the VMA that maps @addr, in kB, or -1. Read
 * here rather than with vm_util's check_huge_anon(), whose arguments
 * differ between kernel releases.
 */
static long anon_huge_kb(void *addr)
{
	unsigned long start, end;
	bool in_vma = false;
	char line[256];
	long kb = -1;
	FILE *f;

	f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2)
			in_vma = start <= (unsigned long)addr &&
				 (unsigned long)addr < end;
		else if (in_vma && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/* After populating a THP area: NULL if THPs map all of it. */
const char *mem_area_check_thp(struct mem_area *m)
{
	if (anon_huge_kb(m->addr) >= (long)(m->size >> 10))
		return NULL;
	return "the range is not backed by THPs (THP disabled, or memory fragmented?)";
}

void mem_area_unmap(struct mem_area *m)
{
	if (m->addr != MAP_FAILED)
		munmap(m->addr, m->size);
	if (m->memfd >= 0)
		close(m->memfd);
	m->addr = MAP_FAILED;
	m->memfd = -1;
}

/*
 * @size bytes of private anonymous memory whose 4K PTEs all map the zero
 * page, read-faulted: costs page tables only (2 MiB per GiB), and every
 * ioctl over it still visits each PTE. Returns NULL, or why not (*addr is
 * MAP_FAILED then).
 */
const char *map_zero_page_range(char **addr, size_t size)
{
	static char why[REASON_SIZE];
	size_t i;

	*addr = mmap(NULL, size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (*addr == MAP_FAILED) {
		snprintf(why, sizeof(why),
			 "mmap of %zu MiB (MAP_NORESERVE): %s (vm.overcommit_memory=2?)",
			 size >> 20, strerror(errno));
		return why;
	}
	madvise(*addr, size, MADV_NOHUGEPAGE);
	if (madvise(*addr, size, MADV_POPULATE_READ))
		for (i = 0; i < size; i += BASE_PAGE_SIZE)
			__atomic_load_n(*addr + i, __ATOMIC_RELAXED);
	return NULL;
}

/*
 * Read a whole /proc file into a static buffer with plain read(2): no stdio
 * and no malloc, so that sampling counters cannot itself cause an munmap()
 * and a TLB flush in this mm.
 */
static char proc_buf[PROC_BUF_SIZE];

static ssize_t read_proc(const char *path)
{
	ssize_t len = 0, ret;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (len < (ssize_t)sizeof(proc_buf) - 1) {
		ret = read(fd, proc_buf + len, sizeof(proc_buf) - 1 - len);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0)
			break;
		len += ret;
	}
	close(fd);
	proc_buf[len] = '\0';
	/* Cut short: a row read in part would give meaningless counts. */
	return len == sizeof(proc_buf) - 1 ? -1 : len;
}

/* The value after "@key" at the start of a line of @path, -1 if absent. */
static long long proc_field(const char *path, const char *key)
{
	size_t len = strlen(key);
	char *p;

	if (read_proc(path) <= 0)
		return -1;
	for (p = proc_buf; p; p = strchr(p, '\n')) {
		p += *p == '\n';
		if (!strncmp(p, key, len))
			return strtoll(p + len, NULL, 10);
	}
	return -1;
}

/* A counter of /proc/vmstat, -1 if absent. */
long long vmstat_read(const char *name)
{
	char key[64];

	snprintf(key, sizeof(key), "%s ", name);
	return proc_field("/proc/vmstat", key);
}

/* A line of /proc/meminfo ("MemAvailable:"), in kB, -1 if absent. */
long meminfo_kb(const char *key)
{
	return proc_field("/proc/meminfo", key);
}

/* Sum of the per-CPU numbers on the "TLB:" row of /proc/interrupts. */
long long tlb_shootdowns(void)
{
	unsigned long long sum = 0, v;
	char *p, *end;

	if (read_proc("/proc/interrupts") <= 0)
		return -1;
	/* The row label is right-aligned: "TLB:" or "  TLB:". */
	for (p = proc_buf; p; p = strchr(p, '\n')) {
		p += strspn(p, "\n ");
		if (!strncmp(p, "TLB:", 4))
			break;
	}
	if (!p)
		return -1;
	for (p += strlen("TLB:");; p = end) {
		v = strtoull(p, &end, 10);
		if (end == p)
			return sum;
		sum += v;
	}
}

/* Minor faults of the calling thread. */
long thread_minflt(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		return -1;
	return ru.ru_minflt;
}

/* The /proc/self/pagemap entry of @addr, 0 if it cannot be read. */
uint64_t pagemap_read(int fd, void *addr)
{
	uint64_t ent = 0;

	if (pread(fd, &ent, sizeof(ent),
		  (unsigned long)addr / BASE_PAGE_SIZE * sizeof(ent)) !=
	    sizeof(ent))
		ent = 0;
	return ent;
}

uint64_t pagemap_entry(void *addr)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t ent;

	if (fd < 0)
		return 0;
	ent = pagemap_read(fd, addr);
	close(fd);
	return ent;
}

/* Write @text to the file at @path: 0, or -1 with errno. */
int uffd_wp_write_file(const char *path, const char *text)
{
	ssize_t len = strlen(text), ret;
	int fd, err;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = write(fd, text, len);
	err = ret < 0 ? errno : EIO;
	close(fd);
	if (ret == len)
		return 0;
	errno = err;
	return -1;
}

static const char * const flush_vmstat[] = {
	[FLUSH_REMOTE] = "nr_tlb_remote_flush",
	[FLUSH_LOCAL_ALL] = "nr_tlb_local_flush_all",
	[FLUSH_LOCAL_ONE] = "nr_tlb_local_flush_one",
	[FLUSH_IPIS] = "TLB shootdowns",
};

const char *flush_counter_name(enum flush_counter which)
{
	return flush_vmstat[which];
}

/* The counter's value now, -1 if this kernel does not have it. */
long long flush_count(enum flush_counter which)
{
	if (which == FLUSH_IPIS)
		return tlb_shootdowns();
	return vmstat_read(flush_vmstat[which]);
}

void flush_window_open(struct flush_windows *w, long long *start,
		       unsigned long long *t0)
{
	*start = flush_count(w->counter);
	*t0 = now_ns();
}

/*
 * Close the window around the operation, then measure a control window
 * as long, right after it, in which the test's threads run the same way
 * but the operation does not.
 */
void flush_window_close(struct flush_windows *w, long long start,
			unsigned long long t0)
{
	long long end = flush_count(w->counter), c0;
	unsigned long long len = now_ns() - t0;

	w->rounds++;
	w->op_hits += end > start;
	w->op_total += end - start;
	c0 = flush_count(w->counter);
	sleep_ns(len);
	w->ctl_hits += flush_count(w->counter) > c0;
}

/*
 * An operation that flushes does so every time it runs; the rest of the
 * system flushes at random, in the operation's windows and in the control
 * windows alike. With flushes in half of the control windows or more,
 * nothing can be told; otherwise, flushes in about as many operation
 * windows as control windows (a quarter of the rounds more at most)
 * pass, and in all operation windows but one at most fail. On a quiet
 * machine the counts are 0/0 or rounds/0.
 */
enum verdict flush_windows_verdict(const struct flush_windows *w)
{
	if (w->ctl_hits >= w->rounds / 2)
		return VERDICT_UNSURE;
	if (w->op_hits <= w->ctl_hits + w->rounds / 4)
		return VERDICT_PASS;
	if (w->op_hits >= w->rounds - 1)
		return VERDICT_FAIL;
	return VERDICT_UNSURE;
}
