// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-wp-resolve: what ending userfaultfd write protection does to the page
 * tables, and what UFFDIO_WRITEPROTECT and mprotect() flush.
 *
 * Resolving uffd-wp (UFFDIO_WRITEPROTECT with mode 0, and also
 * UFFDIO_UNREGISTER and closing the userfaultfd) clears the uffd-wp bit of
 * each entry of a range. It must not remove a permission that is there (that
 * costs a TLB flush now and a write fault later), and it must not grant one
 * behind the back of write-notify (soft-dirty tracking would miss writes).
 *
 * The tests, for anonymous (4K and THP), shmem (written, or only read before
 * registration: writable but clean PTEs), private and shared hugetlb memory:
 *
 *  - unprotect_keeps_write: with a reader thread on another CPU, resolve the
 *    whole never-protected range: no remote TLB flush (nr_tlb_remote_flush,
 *    or the TLB row of /proc/interrupts without CONFIG_DEBUG_TLBFLUSH), and
 *    writing every page afterwards takes no minor fault and keeps the data
 *    intact.
 *  - flush_is_ranged: protect, resolve, mprotect(PROT_READ) and back on a
 *    few pages: none of them flushes the whole mm (nr_tlb_local_flush_all,
 *    CONFIG_DEBUG_TLBFLUSH).
 *  - resolve_keeps_soft_dirty: after clear_refs, pages written once their
 *    protection ended (each of the three ways) are soft-dirty.
 *  - resolve_restores_write: resolving a protected range gives exclusive
 *    anonymous pages their write bit back (no fault).
 *  - protected_write_delivers_once: a write to a page that really is
 *    write-protected is still reported exactly once, and resolving it from
 *    the fault handler leaves the page, and the rest of the range, writable
 *    without further messages.
 *  - invalid_args: argument checking of UFFDIO_WRITEPROTECT is unchanged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/userfaultfd.h>

#include "../kselftest_harness.h"

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

#define BASE_PAGE_SIZE		4096UL
#define HPAGE_SIZE		(2UL << 20)
#define PATTERN			0x5a5a000000000000UL
#define PROC_BUF_SIZE		(1024UL * 1024)

enum mem_type {
	MEM_ANON,
	MEM_ANON_THP,
	MEM_SHMEM,
	MEM_HUGETLB,
	MEM_HUGETLB_SHARED,
};

FIXTURE(uffd_wp)
{
	char *area;		/* registered region */
	size_t size;		/* its length */
	size_t psize;		/* page size of the memory type */
	unsigned long nr_pages;	/* number of psize pages */
	int memfd;
	int uffd;
	__u64 features;		/* of self->uffd */
};

FIXTURE_VARIANT(uffd_wp)
{
	const char *name;
	enum mem_type type;
	unsigned long nr_pages;
	bool populate_by_read;	/* writable but clean PTEs (shared memory) */
};

FIXTURE_VARIANT_ADD(uffd_wp, anon)
{
	.name = "anon",
	.type = MEM_ANON,
	.nr_pages = 1024,
};

FIXTURE_VARIANT_ADD(uffd_wp, anon_thp)
{
	.name = "anon_thp",
	.type = MEM_ANON_THP,
	.nr_pages = 4,
};

FIXTURE_VARIANT_ADD(uffd_wp, shmem)
{
	.name = "shmem",
	.type = MEM_SHMEM,
	.nr_pages = 1024,
};

/* Read-faulted before registration: writable (no write-notify yet), clean. */
FIXTURE_VARIANT_ADD(uffd_wp, shmem_clean)
{
	.name = "shmem_clean",
	.type = MEM_SHMEM,
	.nr_pages = 1024,
	.populate_by_read = true,
};

FIXTURE_VARIANT_ADD(uffd_wp, hugetlb)
{
	.name = "hugetlb",
	.type = MEM_HUGETLB,
	.nr_pages = 8,
};

FIXTURE_VARIANT_ADD(uffd_wp, hugetlb_shared)
{
	.name = "hugetlb_shared",
	.type = MEM_HUGETLB_SHARED,
	.nr_pages = 8,
};

static bool type_is_huge(enum mem_type type)
{
	return type == MEM_ANON_THP || type == MEM_HUGETLB ||
	       type == MEM_HUGETLB_SHARED;
}

static bool type_is_hugetlb(enum mem_type type)
{
	return type == MEM_HUGETLB || type == MEM_HUGETLB_SHARED;
}

/* Memory types for which 6.1 wants UFFD_FEATURE_WP_HUGETLBFS_SHMEM. */
static bool type_needs_shmem_feature(enum mem_type type)
{
	return type == MEM_SHMEM || type_is_hugetlb(type);
}

static unsigned long *base_word(char *area, unsigned long i)
{
	return (unsigned long *)(area + i * BASE_PAGE_SIZE);
}

/* One real load or store per call, as READ_ONCE()/WRITE_ONCE() would do. */
static unsigned long load_word(unsigned long *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void store_word(unsigned long *p, unsigned long v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static void inc_word(unsigned long *p)
{
	store_word(p, load_word(p) + 1);
}

/*
 * Read a whole /proc file into a static buffer with plain read(2): no stdio
 * and no malloc, so that sampling counters cannot itself cause an munmap()
 * and a TLB shootdown in this mm.
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
	return len;
}

/* Sum of all per-CPU numbers on the "TLB:" row of /proc/interrupts. */
static long long read_tlb_shootdowns(void)
{
	unsigned long long sum = 0;
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
	p += strlen("TLB:");
	for (;;) {
		unsigned long long v = strtoull(p, &end, 10);

		if (end == p)
			break;
		sum += v;
		p = end;
	}
	return sum;
}

/* A counter of /proc/vmstat, -1 if absent (nr_tlb_*: CONFIG_DEBUG_TLBFLUSH). */
static long long read_vmstat(const char *name)
{
	size_t len = strlen(name);
	char *p;

	if (read_proc("/proc/vmstat") <= 0)
		return -1;
	for (p = proc_buf; p; p = strchr(p, '\n')) {
		p += *p == '\n';
		if (!strncmp(p, name, len) && p[len] == ' ')
			return strtoll(p + len + 1, NULL, 10);
	}
	return -1;
}

/* AnonHugePages of the VMA starting at addr, in kB, -1 if not found. */
static long anon_huge_kb(void *addr)
{
	char key[32], *p;

	if (read_proc("/proc/self/smaps") <= 0)
		return -1;
	snprintf(key, sizeof(key), "\n%lx-", (unsigned long)addr);
	p = strstr(proc_buf, key);
	if (!p)
		return -1;
	p = strstr(p, "AnonHugePages:");
	if (!p)
		return -1;
	return strtol(p + strlen("AnonHugePages:"), NULL, 10);
}

static long thread_minflt(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		return -1;
	return ru.ru_minflt;
}

static int pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

static int uffd_wp_ioctl(int uffd, void *start, unsigned long len, __u64 mode)
{
	struct uffdio_writeprotect wp = {
		.range.start = (unsigned long)start,
		.range.len = len,
		.mode = mode,
	};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp);
}

static int open_uffd(void)
{
	return syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
}

/* A new userfaultfd with @features, @len bytes at @area registered for WP. */
static int uffd_register_wp(void *area, size_t len, __u64 features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	struct uffdio_register reg = {
		.range.start = (unsigned long)area,
		.range.len = len,
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	int uffd, err;

	uffd = open_uffd();
	if (uffd < 0)
		return -1;
	if (ioctl(uffd, UFFDIO_API, &api) || ioctl(uffd, UFFDIO_REGISTER, &reg))
		goto fail;
	if (!(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
		errno = EOPNOTSUPP;
		goto fail;
	}
	return uffd;
fail:
	err = errno;
	close(uffd);
	errno = err;
	return -1;
}

FIXTURE_SETUP(uffd_wp)
{
	struct uffdio_api api = { .api = UFFD_API };
	__u64 features, want;
	unsigned long i;
	int flags;

	self->memfd = -1;
	self->uffd = -1;
	self->area = MAP_FAILED;
	self->nr_pages = variant->nr_pages;
	self->psize = type_is_huge(variant->type) ? HPAGE_SIZE : BASE_PAGE_SIZE;
	self->size = self->nr_pages * self->psize;

	/* Probe the supported features on a throw-away context. */
	self->uffd = open_uffd();
	if (self->uffd < 0)
		SKIP(return, "userfaultfd() failed: %s", strerror(errno));
	if (ioctl(self->uffd, UFFDIO_API, &api))
		SKIP(return, "UFFDIO_API failed: %s", strerror(errno));
	features = api.features;
	close(self->uffd);
	self->uffd = -1;

	if (type_needs_shmem_feature(variant->type) &&
	    !(features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
		SKIP(return, "no UFFD_FEATURE_WP_HUGETLBFS_SHMEM");
	want = features & (UFFD_FEATURE_PAGEFAULT_FLAG_WP |
			   UFFD_FEATURE_WP_HUGETLBFS_SHMEM);

	switch (variant->type) {
	case MEM_ANON:
		self->area = mmap(NULL, self->size, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (self->area == MAP_FAILED)
			SKIP(return, "mmap failed: %s", strerror(errno));
		madvise(self->area, self->size, MADV_NOHUGEPAGE);
		break;
	case MEM_ANON_THP: {
		char *p, *aligned;

		p = mmap(NULL, self->size + HPAGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			SKIP(return, "mmap failed: %s", strerror(errno));
		aligned = (char *)(((unsigned long)p + HPAGE_SIZE - 1) &
				   ~(HPAGE_SIZE - 1));
		if (aligned > p)
			munmap(p, aligned - p);
		if (aligned + self->size < p + self->size + HPAGE_SIZE)
			munmap(aligned + self->size,
			       p + self->size + HPAGE_SIZE -
			       (aligned + self->size));
		self->area = aligned;
		if (madvise(self->area, self->size, MADV_HUGEPAGE))
			SKIP(return, "MADV_HUGEPAGE failed: %s",
			     strerror(errno));
		break;
	}
	case MEM_SHMEM:
	case MEM_HUGETLB_SHARED:
		flags = MFD_CLOEXEC;
		if (variant->type == MEM_HUGETLB_SHARED)
			flags |= MFD_HUGETLB | MFD_HUGE_2MB;
		self->memfd = memfd_create("uffd-wp-resolve", flags);
		if (self->memfd < 0)
			SKIP(return, "memfd_create failed: %s",
			     strerror(errno));
		if (ftruncate(self->memfd, self->size))
			SKIP(return, "ftruncate failed: %s", strerror(errno));
		self->area = mmap(NULL, self->size, PROT_READ | PROT_WRITE,
				  MAP_SHARED, self->memfd, 0);
		if (self->area == MAP_FAILED)
			SKIP(return, "mmap failed: %s", strerror(errno));
		break;
	case MEM_HUGETLB:
		self->area = mmap(NULL, self->size, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
				  MAP_HUGE_2MB, -1, 0);
		if (self->area == MAP_FAILED)
			SKIP(return, "no 2M hugetlb pages: %s",
			     strerror(errno));
		break;
	}

	/*
	 * Populate: every PTE/PMD ends up present, writable and dirty; or,
	 * read-faulted after writing the file, writable and clean.
	 */
	for (i = 0; i < self->size / BASE_PAGE_SIZE; i++) {
		unsigned long v = PATTERN + i;

		if (!variant->populate_by_read)
			store_word(base_word(self->area, i), v);
		else if (pwrite(self->memfd, &v, sizeof(v),
				i * BASE_PAGE_SIZE) != sizeof(v))
			SKIP(return, "pwrite failed: %s", strerror(errno));
	}
	for (i = 0; variant->populate_by_read && i < self->nr_pages; i++)
		load_word(base_word(self->area, i));

	if (variant->type == MEM_ANON_THP) {
		long kb = anon_huge_kb(self->area);

		if (kb < (long)(self->size >> 10))
			SKIP(return, "range is not THP backed (AnonHugePages %ld kB of %zu kB)",
			     kb, self->size >> 10);
	}

	self->features = want;
	self->uffd = uffd_register_wp(self->area, self->size, want);
	if (self->uffd < 0)
		SKIP(return, "UFFDIO_REGISTER(WP) failed: %s", strerror(errno));
}

FIXTURE_TEARDOWN(uffd_wp)
{
	if (self->uffd >= 0)
		close(self->uffd);
	if (self->area != MAP_FAILED)
		munmap(self->area, self->size);
	if (self->memfd >= 0)
		close(self->memfd);
}

/* Reader pinned to another CPU: keeps the mm and TLB entries live there. */
struct reader {
	char *area;
	size_t size;
	int cpu;
	int started;
	int stop;
	int pin_err;
};

static void *reader_fn(void *arg)
{
	struct reader *r = arg;
	unsigned long sum = 0, i;

	if (pin_self(r->cpu))
		r->pin_err = errno;
	__atomic_store_n(&r->started, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		for (i = 0; i < r->size; i += BASE_PAGE_SIZE)
			sum += load_word((unsigned long *)(r->area + i));
	}
	return (void *)sum;
}

/*
 * Pin the caller to the first CPU it may run on and start a reader of
 * [area, area + size) on the second, so that flushes of the mm's TLB entries
 * have to reach another CPU. Returns 0, or -1 with fewer than two CPUs.
 */
static int start_reader(struct reader *r, pthread_t *thr, char *area,
			size_t size)
{
	int cpu, cpus[2], n = 0;
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return -1;
	for (cpu = 0; cpu < CPU_SETSIZE && n < 2; cpu++)
		if (CPU_ISSET(cpu, &set))
			cpus[n++] = cpu;
	if (n < 2 || pin_self(cpus[0]))
		return -1;
	memset(r, 0, sizeof(*r));
	r->area = area;
	r->size = size;
	r->cpu = cpus[1];
	if (pthread_create(thr, NULL, reader_fn, r))
		return -1;
	while (!__atomic_load_n(&r->started, __ATOMIC_ACQUIRE))
		sched_yield();
	/* Let the reader walk the range at least once. */
	usleep(20000);
	return 0;
}

static void stop_reader(struct reader *r, pthread_t thr)
{
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	pthread_join(thr, NULL);
}

TEST_F(uffd_wp, unprotect_keeps_write)
{
	unsigned long i, nr_base = self->size / BASE_PAGE_SIZE, bad = 0;
	long long tlb0, tlb1, rf0, rf1;
	struct reader r;
	pthread_t thr;
	long flt0, flt1;

	if (_metadata->skip)
		return;

	if (start_reader(&r, &thr, self->area, self->size))
		SKIP(return, "needs two CPUs");
	EXPECT_EQ(0, r.pin_err);

	tlb0 = read_tlb_shootdowns();
	rf0 = read_vmstat("nr_tlb_remote_flush");
	ASSERT_EQ(0, uffd_wp_ioctl(self->uffd, self->area, self->size, 0))
		TH_LOG("UFFDIO_WRITEPROTECT(0): %s", strerror(errno));
	tlb1 = read_tlb_shootdowns();
	rf1 = read_vmstat("nr_tlb_remote_flush");

	flt0 = thread_minflt();
	for (i = 0; i < nr_base; i++)
		inc_word(base_word(self->area, i));
	flt1 = thread_minflt();

	stop_reader(&r, thr);

	for (i = 0; i < nr_base; i++)
		if (*base_word(self->area, i) != PATTERN + i + 1)
			bad++;

	ksft_print_msg("%s: %lu x %zuK: TLB shootdowns +%lld, remote_flush %s%lld, minflt +%ld\n",
		       variant->name, self->nr_pages, self->psize >> 10,
		       tlb1 - tlb0, rf0 < 0 ? "n/a " : "+",
		       rf0 < 0 ? 0 : rf1 - rf0, flt1 - flt0);
	/* The harness child leaves with _exit(): do not lose the line. */
	fflush(stdout);

	/*
	 * Count the flushes sent (nr_tlb_remote_flush) rather than the
	 * shootdowns received: the TLB row also counts IPIs that were sent
	 * before the window opened.
	 */
	if (rf0 >= 0) {
		EXPECT_EQ(0, rf1 - rf0)
			TH_LOG("resolve sent %lld remote TLB flush(es)",
			       rf1 - rf0);
	} else if (tlb0 >= 0 && tlb1 >= 0) {
		EXPECT_EQ(0, tlb1 - tlb0)
			TH_LOG("resolve sent %lld TLB shootdown(s)",
			       tlb1 - tlb0);
	} else {
		TH_LOG("no TLB flush counters: not checking flushes");
	}
	EXPECT_EQ(0, flt1 - flt0)
		TH_LOG("%ld minor fault(s) writing %lu pages after resolve",
		       flt1 - flt0, self->nr_pages);
	ASSERT_EQ(0, bad)
		TH_LOG("%lu pages lost their data", bad);
}

/*
 * Protect, resolve and mprotect() a few pages while the reader runs on CPU 1:
 * each operation flushes what it changed, never the whole mm. A full flush
 * here means that the operation opened a second mmu_gather inside the one of
 * its caller, which tlb_finish_mmu() takes for a concurrent gather.
 */
#define FLUSH_TEST_PAGES	8UL

TEST_F(uffd_wp, flush_is_ranged)
{
	static const struct {
		const char *name;
		int prot;	/* mprotect() to this if non-zero, else */
		__u64 mode;	/* UFFDIO_WRITEPROTECT with this mode */
	} ops[] = {
		{ "protect", 0, UFFDIO_WRITEPROTECT_MODE_WP },
		{ "resolve", 0, 0 },
		{ "mprotect(R)", PROT_READ, 0 },
		{ "mprotect(RW)", PROT_READ | PROT_WRITE, 0 },
	};
	unsigned long nr = self->nr_pages < FLUSH_TEST_PAGES ?
			   self->nr_pages : FLUSH_TEST_PAGES;
	size_t len = nr * self->psize;
	long long all0, all1, tlb0, tlb1;
	struct reader r;
	pthread_t thr;
	unsigned int i;
	int ret;

	if (_metadata->skip)
		return;
	if (read_vmstat("nr_tlb_local_flush_all") < 0)
		SKIP(return, "no nr_tlb_local_flush_all in /proc/vmstat (CONFIG_DEBUG_TLBFLUSH)");
	if (start_reader(&r, &thr, self->area, self->size))
		SKIP(return, "needs two CPUs");

	for (i = 0; i < ARRAY_SIZE(ops); i++) {
		tlb0 = read_tlb_shootdowns();
		all0 = read_vmstat("nr_tlb_local_flush_all");
		if (ops[i].prot)
			ret = mprotect(self->area, len, ops[i].prot);
		else
			ret = uffd_wp_ioctl(self->uffd, self->area, len,
					    ops[i].mode);
		all1 = read_vmstat("nr_tlb_local_flush_all");
		tlb1 = read_tlb_shootdowns();
		EXPECT_EQ(0, ret)
			TH_LOG("%s: %s", ops[i].name, strerror(errno));
		ksft_print_msg("%s: %s of %lu x %zuK: full flushes +%lld, TLB shootdowns +%lld\n",
			       variant->name, ops[i].name, nr, self->psize >> 10,
			       all1 - all0, tlb1 - tlb0);
		fflush(stdout);
		EXPECT_EQ(0, all1 - all0)
			TH_LOG("%s flushed the whole mm", ops[i].name);
	}
	stop_reader(&r, thr);
}

#ifndef BIT_ULL
#define BIT_ULL(nr)		(1ULL << (nr))
#endif
#define PM_SOFT_DIRTY		BIT_ULL(55)

/* How many @psize pages of [area, area + size) are not soft-dirty, or -1. */
static long count_not_soft_dirty(char *area, size_t size, size_t psize)
{
	unsigned long addr = (unsigned long)area;
	uint64_t ent;
	long n = 0;
	size_t off;
	int fd;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	for (off = 0; off < size; off += psize) {
		if (pread(fd, &ent, sizeof(ent),
			  (addr + off) / BASE_PAGE_SIZE * sizeof(ent)) !=
		    sizeof(ent)) {
			n = -1;
			break;
		}
		n += !(ent & PM_SOFT_DIRTY);
	}
	close(fd);
	return n;
}

/* Write @text to the file at @path: 0, or -1 with errno set. */
static int write_file(const char *path, const char *text)
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

/*
 * Ending write protection must not grant write access behind the back of
 * write-notify: after clear_refs, a page that was protected and is written
 * after the protection ended must be soft-dirty, whether the protection ended
 * with UFFDIO_WRITEPROTECT(0), UFFDIO_UNREGISTER or close() of the uffd.
 */
TEST_F(uffd_wp, resolve_keeps_soft_dirty)
{
	static const char * const how[] = {
		"UFFDIO_WRITEPROTECT(0)", "UFFDIO_UNREGISTER", "close()",
	};
	struct uffdio_range range = {
		.start = (unsigned long)self->area,
		.len = self->size,
	};
	unsigned long i;
	unsigned int h;
	long missed;

	if (_metadata->skip)
		return;
	if (type_is_hugetlb(variant->type))
		SKIP(return, "hugetlb tracks soft-dirty per VMA, not per page");
	if (count_not_soft_dirty(self->area, self->size, self->psize))
		SKIP(return, "no soft-dirty bit in /proc/self/pagemap");

	for (h = 0; h < ARRAY_SIZE(how); h++) {
		if (self->uffd < 0) {
			self->uffd = uffd_register_wp(self->area, self->size,
						      self->features);
			ASSERT_LE(0, self->uffd);
		}
		ASSERT_EQ(0, uffd_wp_ioctl(self->uffd, self->area, self->size,
					   UFFDIO_WRITEPROTECT_MODE_WP));
		/* echo 4: write-protect everything, clear soft-dirty. */
		ASSERT_EQ(0, write_file("/proc/self/clear_refs", "4"))
			TH_LOG("clear_refs: %s", strerror(errno));
		ASSERT_EQ((long)self->nr_pages,
			  count_not_soft_dirty(self->area, self->size,
					       self->psize));

		if (h == 0) {
			ASSERT_EQ(0, uffd_wp_ioctl(self->uffd, self->area,
						   self->size, 0));
		} else if (h == 1) {
			ASSERT_EQ(0, ioctl(self->uffd, UFFDIO_UNREGISTER,
					   &range));
		}
		if (h >= 1) {
			close(self->uffd);
			self->uffd = -1;
		}

		for (i = 0; i < self->nr_pages; i++)
			inc_word((unsigned long *)(self->area + i * self->psize));
		missed = count_not_soft_dirty(self->area, self->size,
					      self->psize);
		ksft_print_msg("%s: after %s, %ld of %lu written pages not soft-dirty\n",
			       variant->name, how[h], missed, self->nr_pages);
		fflush(stdout);
		EXPECT_EQ(0, missed)
			TH_LOG("writes after %s escaped soft-dirty tracking",
			       how[h]);
	}
}

/*
 * Resolving a protected range gives exclusive anonymous pages their write
 * bit back, as mprotect() does: writing them then takes no fault. Shared
 * memory (write-notify is on while uffd-wp is registered), THP and hugetlb
 * entries stay read-only until the next write fault (counted, not checked).
 */
TEST_F(uffd_wp, resolve_restores_write)
{
	long flt0, flt1;
	unsigned long i;

	if (_metadata->skip)
		return;

	ASSERT_EQ(0, uffd_wp_ioctl(self->uffd, self->area, self->size,
				   UFFDIO_WRITEPROTECT_MODE_WP));
	ASSERT_EQ(0, uffd_wp_ioctl(self->uffd, self->area, self->size, 0));
	flt0 = thread_minflt();
	for (i = 0; i < self->nr_pages; i++)
		inc_word((unsigned long *)(self->area + i * self->psize));
	flt1 = thread_minflt();
	ksft_print_msg("%s: writing %lu resolved pages: minflt +%ld\n",
		       variant->name, self->nr_pages, flt1 - flt0);
	fflush(stdout);
	if (variant->type == MEM_ANON)
		EXPECT_EQ(0, flt1 - flt0)
			TH_LOG("resolved pages were left read-only");
}

/* Fault handler: counts and resolves write-protect faults. */
struct handler {
	int uffd;
	int stop_fd;
	size_t psize;
	int wp_msgs;
	int other_msgs;
	int err;
};

static void *handler_fn(void *arg)
{
	struct handler *h = arg;
	struct pollfd pfd[2] = {
		{ .fd = h->uffd, .events = POLLIN },
		{ .fd = h->stop_fd, .events = POLLIN },
	};
	struct uffd_msg msg;
	unsigned long addr;
	ssize_t n;

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			h->err = errno;
			break;
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		n = read(h->uffd, &msg, sizeof(msg));
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n != sizeof(msg)) {
			h->err = n < 0 ? errno : EIO;
			break;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT ||
		    !(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
			__atomic_add_fetch(&h->other_msgs, 1, __ATOMIC_SEQ_CST);
			continue;
		}
		__atomic_add_fetch(&h->wp_msgs, 1, __ATOMIC_SEQ_CST);
		addr = msg.arg.pagefault.address & ~(h->psize - 1);
		if (uffd_wp_ioctl(h->uffd, (void *)addr, h->psize, 0))
			h->err = errno;
	}
	return NULL;
}

TEST_F(uffd_wp, protected_write_delivers_once)
{
	unsigned long i, nr_base = self->size / BASE_PAGE_SIZE;
	struct handler h = { 0 };
	int pipefd[2];
	pthread_t thr;

	if (_metadata->skip)
		return;

	ASSERT_EQ(0, uffd_wp_ioctl(self->uffd, self->area, self->psize,
				   UFFDIO_WRITEPROTECT_MODE_WP))
		TH_LOG("UFFDIO_WRITEPROTECT(WP): %s", strerror(errno));

	ASSERT_EQ(0, pipe2(pipefd, O_CLOEXEC));
	h.uffd = self->uffd;
	h.stop_fd = pipefd[0];
	h.psize = self->psize;
	ASSERT_EQ(0, pthread_create(&thr, NULL, handler_fn, &h));

	/* Write to the protected page: blocks until the handler resolves. */
	store_word((unsigned long *)self->area, 0xdead);
	EXPECT_EQ(1, __atomic_load_n(&h.wp_msgs, __ATOMIC_SEQ_CST));
	EXPECT_EQ(0xdead, load_word((unsigned long *)self->area));

	/* The first page is resolved, the rest never was protected. */
	for (i = 0; i < nr_base; i++)
		inc_word(base_word(self->area, i));
	poll(NULL, 0, 100);

	EXPECT_EQ(1, __atomic_load_n(&h.wp_msgs, __ATOMIC_SEQ_CST));
	EXPECT_EQ(0, __atomic_load_n(&h.other_msgs, __ATOMIC_SEQ_CST));

	ASSERT_EQ(1, write(pipefd[1], "x", 1));
	pthread_join(thr, NULL);
	close(pipefd[0]);
	close(pipefd[1]);

	EXPECT_EQ(0, h.err)
		TH_LOG("fault handler: %s", strerror(h.err));
	EXPECT_EQ(0xdead + 1, *(unsigned long *)self->area);
	for (i = 1; i < nr_base; i++)
		if (*base_word(self->area, i) != PATTERN + i + 1)
			break;
	EXPECT_EQ(nr_base, i)
		TH_LOG("page %lu lost its data", i);
}

TEST_F(uffd_wp, invalid_args)
{
	char *area = self->area, *other;

	if (_metadata->skip)
		return;

	/* validate_range(): alignment and length. */
	EXPECT_EQ(-1, uffd_wp_ioctl(self->uffd, area + 1, BASE_PAGE_SIZE, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, uffd_wp_ioctl(self->uffd, area, 0, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, uffd_wp_ioctl(self->uffd, area, BASE_PAGE_SIZE + 1, 0));
	EXPECT_EQ(EINVAL, errno);

	/* Unknown mode bits, and WP together with DONTWAKE. */
	EXPECT_EQ(-1, uffd_wp_ioctl(self->uffd, area, self->psize, 1 << 5));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, uffd_wp_ioctl(self->uffd, area, self->psize,
				    UFFDIO_WRITEPROTECT_MODE_WP |
				    UFFDIO_WRITEPROTECT_MODE_DONTWAKE));
	EXPECT_EQ(EINVAL, errno);

	/* hugetlb: ranges must be aligned to the huge page size. */
	if (type_is_hugetlb(variant->type)) {
		EXPECT_EQ(-1, uffd_wp_ioctl(self->uffd, area + BASE_PAGE_SIZE,
					    self->psize, 0));
		EXPECT_EQ(EINVAL, errno);
		EXPECT_EQ(-1, uffd_wp_ioctl(self->uffd, area,
					    BASE_PAGE_SIZE, 0));
		EXPECT_EQ(EINVAL, errno);
	}

	/* A range that is not registered. */
	other = mmap(NULL, BASE_PAGE_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, other);
	EXPECT_EQ(-1, uffd_wp_ioctl(self->uffd, other, BASE_PAGE_SIZE, 0));
	EXPECT_EQ(ENOENT, errno);
	munmap(other, BASE_PAGE_SIZE);

	/* The valid forms still work: DONTWAKE alone, and plain resolve. */
	EXPECT_EQ(0, uffd_wp_ioctl(self->uffd, area, self->psize,
				   UFFDIO_WRITEPROTECT_MODE_DONTWAKE));
	EXPECT_EQ(0, uffd_wp_ioctl(self->uffd, area, self->size, 0));
}

TEST_HARNESS_MAIN
