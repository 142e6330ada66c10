// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-wp-flush-pending: a write fault on a userfaultfd-wp VMA flushes the
 * TLB for a pending deferred flush only when it copies the page.
 *
 * UFFDIO_WRITEPROTECT changes the page tables under a TLB gather, which
 * raises mm->tlb_flush_pending for the whole operation and flushes at its
 * end. do_wp_page() used to call flush_tlb_page() for every write fault on
 * a uffd-wp VMA while any such flush was pending in the mm, before it even
 * decided between reusing and copying the page: a TLB shootdown IPI to
 * every other CPU running the mm for each fault, although only a copy can
 * lose a write made through a stale TLB entry. The flush is now issued on
 * the copy paths only.
 *
 * Source of a pending flush that flushes nothing by itself: a thread "U",
 * pinned to CPU 1, resolves (UFFDIO_WRITEPROTECT mode 0) a large, populated,
 * writable, never-protected region A in a loop. Resolving keeps writable
 * PTEs writable, so U demotes nothing and sends no flush, but it keeps
 * mm->tlb_flush_pending raised nearly all the time. The test checks that U
 * alone causes (almost) no TLB flush.
 *
 * The main thread, pinned to CPU 0, then writes once to each of N pages of
 * a separate uffd-wp registered region B whose PTEs are read-only without
 * the uffd-wp bit. Half of B is written before U starts (control: no flush
 * is pending), the other half while U runs.
 *
 * Oracles: the sum of the "TLB" row of /proc/interrupts (shootdowns
 * received), and nr_tlb_local_flush_one and nr_tlb_remote_flush of
 * /proc/vmstat (CONFIG_DEBUG_TLBFLUSH), sampled around each write loop;
 * getrusage(RUSAGE_THREAD) proves that the loop really took N write faults;
 * the data is checked afterwards.
 *
 *  - reuse_does_not_flush: the write faults reuse the page, so they must
 *    not flush: at most N / 16 shootdowns, local one-page flushes and remote
 *    flushes (noise) over the loop, while U runs. A kernel that flushes
 *    before the reuse/copy decision shows about N of each.
 *      anon:  B is private anonymous memory, populated, then
 *             write-protected by clear_refs (soft-dirty): its PTEs are
 *             read-only, not uffd-wp, and the pages are PageAnonExclusive,
 *             so do_wp_page() reuses them. (A protect and a resolve would
 *             not do: resolving gives exclusive pages their write bit back.)
 *      shmem: B is a shared memfd mapping. Resolving made its PTEs
 *             writable on 6.1.192 (vm_get_page_prot()), so B
 *             is zapped with MADV_DONTNEED and read back instead: the
 *             read faults map the page-cache pages read-only (writenotify is
 *             on while uffd-wp is registered), and the write faults go
 *             through wp_page_shared(), which never copies either.
 *    Not covered: anonymous THP (do_huge_pmd_wp_page()) and hugetlb
 *    (hugetlb_wp()) have no flush-pending check of their own, before or
 *    after the change, so they have nothing to show here.
 *
 *  - copy_flushes (anon only; shared mappings never copy): a child created
 *    by fork() keeps B's pages mapped, so they are not exclusive and every
 *    write fault copies. wp_page_copy() flushes the old PTE itself (one
 *    local one-page flush per fault, plus a shootdown when another CPU runs
 *    the mm); the flush-pending check must add a second one per fault while
 *    U runs: nr_tlb_local_flush_one over the loop with U running must exceed
 *    the control by at least N / 2 (about N expected). Without the check it
 *    exceeds it by about 0. The child checks that its pages kept their data.
 *
 *  - copy_loses_no_write (anon only), the correctness guard: a write fault
 *    that copies a page while a flush is pending loses no write made
 *    through a stale TLB entry. Each of 32 rounds uses a fresh page P at
 *    the start of a region C, followed by 4 GiB of zero-page PTEs, all
 *    registered for uffd-wp:
 *      W (CPU 1) increments a word of P nonstop, so its TLB entry is hot;
 *      the main thread (CPU 0) protects C: P is made read-only first, the
 *        flush comes at the end, after the 4 GiB;
 *      U (CPU 3), a quarter into it, unprotects C: P first again;
 *      F (CPU 2), halfway into it, writes another word of P, which it
 *        never touched: its fault finds P read-only without the uffd-wp
 *        bit, and reuses or copies P; a uffd-wp fault on the way is
 *        resolved by H (CPU 3), which unprotects the page.
 *    Oracle: W's word equals the number of increments W made. A copy made
 *    while W can still write to the old page through its stale, writable
 *    TLB entry loses W's increments until wp_page_copy() flushes. On 6.1
 *    other layers keep this from happening: the protect holds mmap_lock
 *    for write, so neither U nor F runs during it, and P is exclusive, so
 *    F reuses it. The test prints, per run, in how many rounds F's fault
 *    completed within the protect without a uffd-wp fault, and in how
 *    many P was copied (its PFN in /proc/self/pagemap changed).
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
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>

#include "../kselftest_harness.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif

#define BASE_PAGE_SIZE		4096UL
#define PATTERN			0x5a5a000000000000UL
#define PROC_BUF_SIZE		(1024UL * 1024)
/* Region A, resolved in a loop by U: large enough for long ioctls. */
#define A_SIZE			(128UL << 20)
/* U's resolves that "U alone" is measured over. */
#define ALONE_IOCTLS		4

enum mem_type {
	MEM_ANON,
	MEM_SHMEM,
};

FIXTURE(flush_pending)
{
	char *a;		/* region A: resolved in a loop by U */
	char *b;		/* region B: 2 * nr pages written by the test */
	size_t b_size;
	unsigned long nr;	/* pages written per loop */
	int memfd;
	int uffd;
};

FIXTURE_VARIANT(flush_pending)
{
	const char *name;
	enum mem_type type;
	unsigned long nr;
};

FIXTURE_VARIANT_ADD(flush_pending, anon)
{
	.name = "anon",
	.type = MEM_ANON,
	.nr = 512,
};

FIXTURE_VARIANT_ADD(flush_pending, shmem)
{
	.name = "shmem",
	.type = MEM_SHMEM,
	.nr = 512,
};

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

/* A counter of the last /proc/vmstat read, -1 if absent. */
static long long vmstat_field(const char *name)
{
	char key[64], *p;

	snprintf(key, sizeof(key), "\n%s ", name);
	p = strstr(proc_buf, key);
	if (!p)
		return -1;
	return strtoll(p + strlen(key), NULL, 10);
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

static int register_wp(int uffd, void *start, unsigned long len)
{
	struct uffdio_register reg = { 0 };

	reg.range.start = (unsigned long)start;
	reg.range.len = len;
	reg.mode = UFFDIO_REGISTER_MODE_WP;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return -errno;
	if (!(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT)))
		return -EOPNOTSUPP;
	return 0;
}

FIXTURE_SETUP(flush_pending)
{
	struct uffdio_api api = { .api = UFFD_API };
	__u64 features, want;
	unsigned long i;
	int ret;

	self->memfd = -1;
	self->uffd = -1;
	self->a = MAP_FAILED;
	self->b = MAP_FAILED;
	self->nr = variant->nr;
	self->b_size = 2 * self->nr * BASE_PAGE_SIZE;

	/* Probe the supported features on a throw-away context. */
	self->uffd = open_uffd();
	if (self->uffd < 0)
		SKIP(return, "userfaultfd() failed: %s", strerror(errno));
	if (ioctl(self->uffd, UFFDIO_API, &api))
		SKIP(return, "UFFDIO_API failed: %s", strerror(errno));
	features = api.features;
	close(self->uffd);
	self->uffd = -1;

	if (variant->type == MEM_SHMEM &&
	    !(features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
		SKIP(return, "no UFFD_FEATURE_WP_HUGETLBFS_SHMEM");
	want = features & (UFFD_FEATURE_PAGEFAULT_FLAG_WP |
			   UFFD_FEATURE_WP_HUGETLBFS_SHMEM);

	/* Region A: private anonymous 4K pages, never inherited by a child. */
	self->a = mmap(NULL, A_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (self->a == MAP_FAILED)
		SKIP(return, "mmap(A) failed: %s", strerror(errno));
	madvise(self->a, A_SIZE, MADV_NOHUGEPAGE);
	madvise(self->a, A_SIZE, MADV_DONTFORK);

	/* Region B. */
	if (variant->type == MEM_ANON) {
		self->b = mmap(NULL, self->b_size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (self->b == MAP_FAILED)
			SKIP(return, "mmap(B) failed: %s", strerror(errno));
		madvise(self->b, self->b_size, MADV_NOHUGEPAGE);
	} else {
		self->memfd = memfd_create("uffd-wp-flush-pending",
					   MFD_CLOEXEC);
		if (self->memfd < 0)
			SKIP(return, "memfd_create failed: %s",
			     strerror(errno));
		if (ftruncate(self->memfd, self->b_size))
			SKIP(return, "ftruncate failed: %s", strerror(errno));
		self->b = mmap(NULL, self->b_size, PROT_READ | PROT_WRITE,
			       MAP_SHARED, self->memfd, 0);
		if (self->b == MAP_FAILED)
			SKIP(return, "mmap(B) failed: %s", strerror(errno));
	}

	/* Populate: every PTE ends up present, writable and dirty. */
	for (i = 0; i < A_SIZE / BASE_PAGE_SIZE; i++)
		*base_word(self->a, i) = i;
	for (i = 0; i < 2 * self->nr; i++)
		*base_word(self->b, i) = PATTERN + i;

	self->uffd = open_uffd();
	ASSERT_LE(0, self->uffd);
	api.api = UFFD_API;
	api.features = want;
	ASSERT_EQ(0, ioctl(self->uffd, UFFDIO_API, &api));

	ret = register_wp(self->uffd, self->a, A_SIZE);
	if (ret)
		SKIP(return, "UFFDIO_REGISTER(WP) of A: %s", strerror(-ret));
	ret = register_wp(self->uffd, self->b, self->b_size);
	if (ret)
		SKIP(return, "UFFDIO_REGISTER(WP) of B: %s", strerror(-ret));
}

FIXTURE_TEARDOWN(flush_pending)
{
	if (self->uffd >= 0)
		close(self->uffd);
	if (self->a != MAP_FAILED)
		munmap(self->a, A_SIZE);
	if (self->b != MAP_FAILED)
		munmap(self->b, self->b_size);
	if (self->memfd >= 0)
		close(self->memfd);
}

/* Thread U: keeps a flush pending in the mm without flushing anything. */
struct unprotector {
	int uffd;
	char *area;
	size_t size;
	int cpu;
	unsigned long starts;	/* resolves entered */
	unsigned long ioctls;	/* completed resolves */
	int stop;
	int err;
	int pin_err;
};

static void *unprotector_fn(void *arg)
{
	struct unprotector *u = arg;

	if (pin_self(u->cpu))
		u->pin_err = errno;
	while (!__atomic_load_n(&u->stop, __ATOMIC_ACQUIRE)) {
		__atomic_add_fetch(&u->starts, 1, __ATOMIC_RELEASE);
		if (uffd_wp_ioctl(u->uffd, u->area, u->size, 0)) {
			u->err = errno;
			/* Do not leave the main thread waiting for us. */
			__atomic_add_fetch(&u->ioctls, 1UL << 40,
					   __ATOMIC_RELEASE);
			break;
		}
		__atomic_add_fetch(&u->ioctls, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static unsigned long u_ioctls(struct unprotector *u)
{
	return __atomic_load_n(&u->ioctls, __ATOMIC_ACQUIRE);
}

/* Wait until U has completed more than @seen resolves. */
static void u_wait(struct unprotector *u, unsigned long seen)
{
	while (u_ioctls(u) <= seen)
		poll(NULL, 0, 1);
}

struct sample {
	long long tlb;		/* /proc/interrupts TLB row, summed */
	long long local_one;	/* nr_tlb_local_flush_one */
	long long remote;	/* nr_tlb_remote_flush */
	long minflt;		/* this thread's minor faults */
	unsigned long ioctls;	/* U's resolves so far */
	bool in_ioctl;		/* U was inside a resolve */
};

static void take_sample(struct sample *s, struct unprotector *u)
{
	unsigned long starts = u ? __atomic_load_n(&u->starts, __ATOMIC_ACQUIRE) : 0;

	/* Entered before completed: a resolve in flight, never a false one. */
	s->ioctls = u ? u_ioctls(u) : 0;
	s->in_ioctl = starts > s->ioctls;
	s->tlb = read_tlb_shootdowns();
	if (read_proc("/proc/vmstat") > 0) {
		s->local_one = vmstat_field("nr_tlb_local_flush_one");
		s->remote = vmstat_field("nr_tlb_remote_flush");
	} else {
		s->local_one = -1;
		s->remote = -1;
	}
	s->minflt = thread_minflt();
}

/* @d = @s1 - @s0, counters that could not be read stay -1. */
static void sample_delta(struct sample *d, struct sample *s0,
			 struct sample *s1)
{
	d->tlb = s0->tlb < 0 || s1->tlb < 0 ? -1 : s1->tlb - s0->tlb;
	d->local_one = s0->local_one < 0 || s1->local_one < 0 ? -1 :
		       s1->local_one - s0->local_one;
	d->remote = s0->remote < 0 || s1->remote < 0 ? -1 :
		    s1->remote - s0->remote;
	d->minflt = s1->minflt - s0->minflt;
	d->ioctls = s1->ioctls - s0->ioctls;
	/* Only meaningful for a write loop: U inside a resolve at both ends. */
	d->in_ioctl = s0->in_ioctl && s1->in_ioctl;
}

/* One write to each of @nr pages, counters sampled around the loop only. */
static void write_pages(struct sample *d, char *area, unsigned long nr,
			struct unprotector *u)
{
	struct sample s0, s1;
	unsigned long i;

	take_sample(&s0, u);
	for (i = 0; i < nr; i++)
		inc_word(base_word(area, i));
	take_sample(&s1, u);
	sample_delta(d, &s0, &s1);
}

static void print_delta(const char *name, const char *what, struct sample *d)
{
	ksft_print_msg("%s: %s U ioctls %lu%s, minflt %ld, TLB %lld, local_one %lld, remote %lld\n",
		       name, what, d->ioctls, d->in_ioctl ? " (in one at both ends)" : "",
		       d->minflt, d->tlb, d->local_one, d->remote);
	/* The harness child leaves with _exit(): do not lose the line. */
	fflush(stdout);
}

/* Start U on CPU 1 and wait until it has completed one resolve of A. */
static int start_unprotector(pthread_t *thr, struct unprotector *u, int uffd,
			     char *a)
{
	memset(u, 0, sizeof(*u));
	u->uffd = uffd;
	u->area = a;
	u->size = A_SIZE;
	u->cpu = 1;
	if (pthread_create(thr, NULL, unprotector_fn, u))
		return -1;
	u_wait(u, 0);
	return 0;
}

static void stop_unprotector(pthread_t thr, struct unprotector *u)
{
	__atomic_store_n(&u->stop, 1, __ATOMIC_RELEASE);
	pthread_join(thr, NULL);
}

/* Needs CPUs 0 to @nr_cpus - 1; pins the calling thread to CPU 0. */
static const char *pin_main(int nr_cpus)
{
	static char why[32];
	cpu_set_t set;
	int cpu;

	if (sched_getaffinity(0, sizeof(set), &set))
		return "sched_getaffinity failed";
	for (cpu = 0; cpu < nr_cpus; cpu++) {
		if (!CPU_ISSET(cpu, &set)) {
			snprintf(why, sizeof(why), "needs CPUs 0 to %d",
				 nr_cpus - 1);
			return why;
		}
	}
	if (pin_self(0))
		return "cannot pin to CPU 0";
	return NULL;
}

TEST_F(flush_pending, reuse_does_not_flush)
{
	/* Signed: the harness compares in the common type of both sides. */
	long long n = self->nr, bound = self->nr / 16;
	unsigned long i, nr = self->nr, bad = 0;
	struct sample s0, s1, ctl, alone, run;
	struct unprotector u;
	const char *why;
	pthread_t thr;

	if (_metadata->skip)
		return;
	why = pin_main(2);
	if (why)
		SKIP(return, "%s", why);

	/* Make B's PTEs read-only, without the uffd-wp bit. */
	if (variant->type == MEM_ANON) {
		int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, "4", 1) != 1)
			SKIP(return, "clear_refs: %s", strerror(errno));
		close(fd);
	} else {
		ASSERT_EQ(0, madvise(self->b, self->b_size, MADV_DONTNEED));
		for (i = 0; i < 2 * nr; i++)
			if (load_word(base_word(self->b, i)) != PATTERN + i)
				bad++;
		ASSERT_EQ(0, bad)
			TH_LOG("%lu shmem pages lost their data", bad);
	}

	/* Control: the first half of B, no flush pending. */
	write_pages(&ctl, self->b, nr, NULL);

	ASSERT_EQ(0, start_unprotector(&thr, &u, self->uffd, self->a));
	/* U alone: the main thread sleeps over a few resolves of A. */
	take_sample(&s0, &u);
	u_wait(&u, s0.ioctls + ALONE_IOCTLS - 1);
	take_sample(&s1, &u);
	sample_delta(&alone, &s0, &s1);
	/* The second half of B, while U keeps a flush pending. */
	write_pages(&run, self->b + nr * BASE_PAGE_SIZE, nr, &u);
	stop_unprotector(thr, &u);

	for (i = 0; i < 2 * nr; i++)
		if (*base_word(self->b, i) != PATTERN + i + 1)
			bad++;

	ksft_print_msg("%s: N = %lu pages per loop, bound %lld\n",
		       variant->name, nr, bound);
	print_delta(variant->name, "control (U not running):", &ctl);
	print_delta(variant->name, "U alone:", &alone);
	print_delta(variant->name, "writes while U runs:", &run);

	ASSERT_EQ(0, u.pin_err)
		TH_LOG("cannot pin U to CPU 1: %s", strerror(u.pin_err));
	ASSERT_EQ(0, u.err)
		TH_LOG("U: UFFDIO_WRITEPROTECT(0): %s", strerror(u.err));
	/* Without the write faults, there is nothing to test. */
	ASSERT_LE(n, ctl.minflt)
		TH_LOG("control loop took %ld minor faults, not %lu: B is writable",
		       ctl.minflt, nr);
	ASSERT_LE(n, run.minflt)
		TH_LOG("loop took %ld minor faults, not %lu: B is writable",
		       run.minflt, nr);
	EXPECT_EQ(0, bad)
		TH_LOG("%lu pages lost their data", bad);

	if (alone.tlb < 0 || run.tlb < 0) {
		TH_LOG("no TLB row in /proc/interrupts: not checking shootdowns");
	} else {
		EXPECT_GE(bound, alone.tlb)
			TH_LOG("U alone caused %lld shootdowns: resolve flushes",
			       alone.tlb);
		EXPECT_GE(bound, run.tlb)
			TH_LOG("%lld TLB shootdowns for %lu reusing write faults",
			       run.tlb, nr);
	}
	if (run.local_one < 0 || run.remote < 0) {
		TH_LOG("no nr_tlb_* in /proc/vmstat (CONFIG_DEBUG_TLBFLUSH=n)");
	} else {
		EXPECT_GE(bound, alone.local_one + alone.remote)
			TH_LOG("U alone caused %lld + %lld flushes",
			       alone.local_one, alone.remote);
		EXPECT_GE(bound, run.local_one)
			TH_LOG("%lld local one-page flushes for %lu reusing write faults",
			       run.local_one, nr);
		EXPECT_GE(bound, run.remote)
			TH_LOG("%lld remote flushes for %lu reusing write faults",
			       run.remote, nr);
	}
}

TEST_F(flush_pending, copy_flushes)
{
	/* Signed: the harness compares in the common type of both sides. */
	long long n = self->nr;
	unsigned long i, nr = self->nr, bad = 0;
	struct sample ctl, run;
	struct unprotector u;
	int pipefd[2], status;
	const char *why;
	pthread_t thr;
	pid_t child;
	char c;

	if (_metadata->skip)
		return;
	if (variant->type != MEM_ANON)
		SKIP(return, "shared mappings reuse pages, they never copy");
	why = pin_main(2);
	if (why)
		SKIP(return, "%s", why);

	/* A child that keeps B's pages mapped: the write faults copy. */
	ASSERT_EQ(0, pipe2(pipefd, O_CLOEXEC));
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		close(pipefd[1]);
		while (read(pipefd[0], &c, 1) < 0 && errno == EINTR)
			;
		for (i = 0; i < 2 * nr; i++)
			if (load_word(base_word(self->b, i)) != PATTERN + i)
				bad++;
		_exit(bad ? 1 : 0);
	}
	close(pipefd[0]);

	/* Control: the first half of B, no flush pending. */
	write_pages(&ctl, self->b, nr, NULL);

	ASSERT_EQ(0, start_unprotector(&thr, &u, self->uffd, self->a));
	write_pages(&run, self->b + nr * BASE_PAGE_SIZE, nr, &u);
	stop_unprotector(thr, &u);

	close(pipefd[1]);
	ASSERT_EQ(child, waitpid(child, &status, 0));

	for (i = 0; i < 2 * nr; i++)
		if (*base_word(self->b, i) != PATTERN + i + 1)
			bad++;

	ksft_print_msg("%s: N = %lu pages per loop, local_flush_one must grow by >= %lu\n",
		       variant->name, nr, nr / 2);
	print_delta(variant->name, "copy, control:", &ctl);
	print_delta(variant->name, "copy, while U runs:", &run);

	ASSERT_EQ(0, u.pin_err)
		TH_LOG("cannot pin U to CPU 1: %s", strerror(u.pin_err));
	ASSERT_EQ(0, u.err)
		TH_LOG("U: UFFDIO_WRITEPROTECT(0): %s", strerror(u.err));
	ASSERT_LE(n, ctl.minflt)
		TH_LOG("control loop took %ld minor faults, not %lu",
		       ctl.minflt, nr);
	ASSERT_LE(n, run.minflt)
		TH_LOG("loop took %ld minor faults, not %lu", run.minflt, nr);
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the child's pages changed (status %#x)", status);
	EXPECT_EQ(0, bad)
		TH_LOG("%lu pages lost their data", bad);

	if (ctl.local_one < 0 || run.local_one < 0)
		SKIP(return, "no nr_tlb_local_flush_one (CONFIG_DEBUG_TLBFLUSH=n)");
	/* wp_page_copy() flushes once per copy; the check adds one more. */
	EXPECT_LE(n / 2, run.local_one - ctl.local_one)
		TH_LOG("copying write faults flushed %lld pages with a flush pending, %lld without",
		       run.local_one, ctl.local_one);
}

/*
 * copy_loses_no_write: the threads, each on its own CPU, and the stale
 * TLB entry whose writes a copying fault could lose.
 */
#define GUARD_ROUNDS		32
#define GUARD_WARM_WRITES	1000
#define GUARD_SETTLE_MS		10
/* Zero-page PTEs after the rounds' pages, to make the ioctls last long. */
#define GUARD_TAIL_SIZE		(4UL << 30)
#define W_SLOT			8	/* word of the hot writer W in a page */
#define F_SLOT			16	/* word of the faulting thread F */

struct guard {
	int uffd;
	char *c;			/* region C */
	size_t c_size;
	char *page;			/* the round's page of C */
	int stop_w;
	unsigned long issued;		/* W's increments of its slot */
	unsigned long long go_u_ns;	/* when U unprotects C; 0: not yet */
	unsigned long long go_f_ns;	/* when F writes; 0: not yet */
	unsigned long long f_done_ns;	/* when F's write completed */
	int stop_h;
	unsigned long msgs;		/* uffd-wp faults resolved by H */
	int ready;			/* threads running on their CPUs */
	int err;
	int pin_err;
};

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* Created on CPU 0, a thread only leaves it once pinned elsewhere. */
static void guard_pin(struct guard *g, int cpu)
{
	if (pin_self(cpu))
		__atomic_store_n(&g->pin_err, errno, __ATOMIC_RELAXED);
	__atomic_add_fetch(&g->ready, 1, __ATOMIC_RELEASE);
}

static void guard_wait_ready(struct guard *g, int nr)
{
	while (__atomic_load_n(&g->ready, __ATOMIC_ACQUIRE) < nr)
		poll(NULL, 0, 1);
}

/*
 * Wait until the time in *@go_ns, which is 0 until it is set: asleep until
 * a millisecond before, so that W keeps a host CPU under TCG, then spinning.
 */
static void guard_wait_go(unsigned long long *go_ns)
{
	unsigned long long go;
	struct timespec ts;

	while (!(go = __atomic_load_n(go_ns, __ATOMIC_ACQUIRE)))
		poll(NULL, 0, 1);
	if (go > now_ns() + 1000000ULL) {
		go -= 1000000ULL;
		ts.tv_sec = go / 1000000000ULL;
		ts.tv_nsec = go % 1000000000ULL;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		go += 1000000ULL;
	}
	while (now_ns() < go)
		;
}

static void guard_set_error(struct guard *g)
{
	__atomic_store_n(&g->err, errno, __ATOMIC_RELAXED);
}

/* W, CPU 1: increments its slot nonstop, so its TLB entry stays hot. */
static void *guard_writer_fn(void *arg)
{
	struct guard *g = arg;
	unsigned long *p = (unsigned long *)g->page + W_SLOT;

	guard_pin(g, 1);
	while (!__atomic_load_n(&g->stop_w, __ATOMIC_RELAXED)) {
		/* From memory: a lost write stays lost. */
		inc_word(p);
		__atomic_store_n(&g->issued, g->issued + 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* F, CPU 2: one write to the page, which it never touched before. */
static void *guard_fault_fn(void *arg)
{
	struct guard *g = arg;

	guard_pin(g, 2);
	guard_wait_go(&g->go_f_ns);
	store_word((unsigned long *)g->page + F_SLOT, 1);
	__atomic_store_n(&g->f_done_ns, now_ns(), __ATOMIC_RELEASE);
	return NULL;
}

/* U, CPU 3: one unprotect of C, which starts with the page. */
static void *guard_unprotect_fn(void *arg)
{
	struct guard *g = arg;

	guard_pin(g, 3);
	guard_wait_go(&g->go_u_ns);
	if (uffd_wp_ioctl(g->uffd, g->c, g->c_size, 0))
		guard_set_error(g);
	return NULL;
}

/* H, CPU 3: resolves every uffd-wp fault by unprotecting its page. */
static void *guard_handler_fn(void *arg)
{
	struct guard *g = arg;
	struct pollfd pfd = { .fd = g->uffd, .events = POLLIN };
	struct uffd_msg msg;
	unsigned long page;

	guard_pin(g, 3);
	while (!__atomic_load_n(&g->stop_h, __ATOMIC_ACQUIRE)) {
		if (poll(&pfd, 1, 1) <= 0)
			continue;
		if (read(g->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT ||
		    !(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
			continue;
		page = msg.arg.pagefault.address & ~(BASE_PAGE_SIZE - 1);
		if (uffd_wp_ioctl(g->uffd, (void *)page, BASE_PAGE_SIZE, 0))
			guard_set_error(g);
		__atomic_add_fetch(&g->msgs, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* The PFN mapped at @addr, 0 if not present or not visible. */
static unsigned long long pfn_of(void *addr)
{
	unsigned long long entry = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (pread(fd, &entry, sizeof(entry),
		  (unsigned long)addr / BASE_PAGE_SIZE * sizeof(entry)) !=
	    sizeof(entry))
		entry = 0;
	close(fd);
	return entry >> 63 ? entry & ((1ULL << 55) - 1) : 0;
}

TEST_F(flush_pending, copy_loses_no_write)
{
	unsigned long long t0, t1, prot_ns, pfn0, pfn1;
	unsigned long k, issued, lost, msgs, lost_total = 0, bad_f = 0;
	unsigned long raced = 0, copied = 0;
	struct guard g = { .uffd = self->uffd };
	pthread_t h, w, f, u;
	const char *why;
	bool in_race;
	int ret;

	if (_metadata->skip)
		return;
	if (variant->type != MEM_ANON)
		SKIP(return, "shared mappings reuse pages, they never copy");
	why = pin_main(4);
	if (why)
		SKIP(return, "%s", why);

	/*
	 * Region C: one page per round, then zero-page PTEs (page tables
	 * only), which every ioctl over C visits after the round's page.
	 */
	g.c_size = GUARD_ROUNDS * BASE_PAGE_SIZE + GUARD_TAIL_SIZE;
	g.c = mmap(NULL, g.c_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, g.c);
	madvise(g.c, g.c_size, MADV_NOHUGEPAGE);
	ASSERT_EQ(0, madvise(g.c, g.c_size, MADV_POPULATE_READ))
		TH_LOG("MADV_POPULATE_READ: %s", strerror(errno));
	ret = register_wp(self->uffd, g.c, g.c_size);
	ASSERT_EQ(0, ret)
		TH_LOG("UFFDIO_REGISTER(WP) of C: %s", strerror(-ret));
	t0 = now_ns();
	ASSERT_EQ(0, uffd_wp_ioctl(self->uffd, g.c, g.c_size,
				   UFFDIO_WRITEPROTECT_MODE_WP))
		TH_LOG("UFFDIO_WRITEPROTECT(WP): %s", strerror(errno));
	prot_ns = now_ns() - t0;
	ASSERT_EQ(0, uffd_wp_ioctl(self->uffd, g.c, g.c_size, 0))
		TH_LOG("UFFDIO_WRITEPROTECT(0): %s", strerror(errno));

	ASSERT_EQ(0, pthread_create(&h, NULL, guard_handler_fn, &g));
	guard_wait_ready(&g, 1);
	ksft_print_msg("round N: protect time, F's write done (after the protect),\n");
	ksft_print_msg("  within it without uffd-wp fault or not, page, W's writes lost/made\n");
	for (k = 0; k < GUARD_ROUNDS; k++) {
		g.page = g.c + k * BASE_PAGE_SIZE;
		g.stop_w = 0;
		g.issued = 0;
		g.go_u_ns = 0;
		g.go_f_ns = 0;
		g.f_done_ns = 0;
		ASSERT_EQ(0, pthread_create(&w, NULL, guard_writer_fn, &g));
		while (__atomic_load_n(&g.issued, __ATOMIC_RELAXED) <
		       GUARD_WARM_WRITES)
			poll(NULL, 0, 1);
		pfn0 = pfn_of(g.page);
		ASSERT_EQ(0, pthread_create(&f, NULL, guard_fault_fn, &g));
		ASSERT_EQ(0, pthread_create(&u, NULL, guard_unprotect_fn, &g));
		guard_wait_ready(&g, 4 + 3 * k);
		msgs = __atomic_load_n(&g.msgs, __ATOMIC_ACQUIRE);

		/*
		 * The protect makes the page read-only first and flushes
		 * last; a quarter into it U's unprotect resolves the page
		 * first, and F's write fault finds it read-only without the
		 * uffd-wp bit, while W may still write through its stale,
		 * writable TLB entry.
		 */
		t0 = now_ns();
		__atomic_store_n(&g.go_u_ns, t0 + prot_ns / 4, __ATOMIC_RELEASE);
		__atomic_store_n(&g.go_f_ns, t0 + prot_ns / 2, __ATOMIC_RELEASE);
		ASSERT_EQ(0, uffd_wp_ioctl(self->uffd, g.c, g.c_size,
					   UFFDIO_WRITEPROTECT_MODE_WP))
			TH_LOG("UFFDIO_WRITEPROTECT(WP): %s", strerror(errno));
		t1 = now_ns();
		pthread_join(f, NULL);
		pthread_join(u, NULL);
		poll(NULL, 0, GUARD_SETTLE_MS);
		__atomic_store_n(&g.stop_w, 1, __ATOMIC_RELAXED);
		pthread_join(w, NULL);

		issued = g.issued;
		lost = issued - load_word((unsigned long *)g.page + W_SLOT);
		lost_total += lost;
		bad_f += load_word((unsigned long *)g.page + F_SLOT) != 1;
		/*
		 * A fault that waited for the protect ends at most a few ms
		 * before its caller resumes (host scheduling); this one ended
		 * a quarter of a protect earlier, and raised no uffd-wp fault.
		 */
		in_race = g.f_done_ns + prot_ns / 4 < t1 &&
			  __atomic_load_n(&g.msgs, __ATOMIC_ACQUIRE) == msgs;
		raced += in_race;
		pfn1 = pfn_of(g.page);
		copied += pfn0 && pfn1 != pfn0;
		if (lost || !in_race || k < 2) {
			ksft_print_msg("round %lu: %.1f ms, F %+.1f ms, %s, %s, %lu/%lu lost\n",
				       k, (t1 - t0) / 1e6,
				       ((double)g.f_done_ns - (double)t1) / 1e6,
				       in_race ? "within" : "not within",
				       !pfn0 ? "PFN unknown" :
				       pfn1 != pfn0 ? "copied" : "reused",
				       lost, issued);
			fflush(stdout);
		}
		ASSERT_EQ(0, uffd_wp_ioctl(self->uffd, g.c, g.c_size, 0))
			TH_LOG("UFFDIO_WRITEPROTECT(0): %s", strerror(errno));
	}
	__atomic_store_n(&g.stop_h, 1, __ATOMIC_RELEASE);
	pthread_join(h, NULL);
	munmap(g.c, g.c_size);

	ksft_print_msg("%d rounds: F within the protect %lu, copied %lu, writes lost %lu\n",
		       GUARD_ROUNDS, raced, copied, lost_total);
	fflush(stdout);
	ASSERT_EQ(0, g.pin_err)
		TH_LOG("cannot pin a thread: %s", strerror(g.pin_err));
	ASSERT_EQ(0, g.err)
		TH_LOG("UFFDIO_WRITEPROTECT(0) in a thread: %s", strerror(g.err));
	EXPECT_EQ(0, bad_f)
		TH_LOG("F's write is missing in %lu rounds", bad_f);
	EXPECT_EQ(0, lost_total)
		TH_LOG("%lu writes through a stale TLB entry were lost to a copy",
		       lost_total);
}

TEST_HARNESS_MAIN
