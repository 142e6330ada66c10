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
 *    not flush: the loop while U runs may show at most N / 16 shootdowns,
 *    local one-page flushes and remote flushes more than the control loop
 *    (the rest of the system flushes too); a kernel that flushes before
 *    the reuse/copy decision shows about N more of each. Between the two,
 *    or when U alone flushes, the attempt cannot tell; it is repeated, and
 *    the test skipped if no attempt can.
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
 *    exceeds it by about 0 (less than N / 8 fails). The child checks that
 *    its pages kept their data.
 *
 *  - copy_loses_no_write (anon only), the correctness guard: a write fault
 *    that copies a page while a flush is pending loses no write made
 *    through a stale TLB entry. Each of up to 32 rounds (as many as fit in
 *    GUARD_BUDGET_MS) uses a fresh page P at
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
 *    other layers keep this from happening: the protect flushes P before
 *    it releases P's page table lock, so neither U nor F finds P protected
 *    while W can still write to it, and P is exclusive, so F reuses it.
 *    The test prints, per run, in how many rounds F's fault completed
 *    within the protect without a uffd-wp fault, and in how many P was
 *    copied (its PFN in /proc/self/pagemap changed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>

#include "../kselftest_harness.h"
#include "uffd-wp-common.h"

#define PATTERN			0x5a5a000000000000UL
/* Region A, resolved in a loop by U: large enough for long ioctls. */
#define A_SIZE			(128UL << 20)
/* U's resolves that "U alone" is measured over. */
#define ALONE_IOCTLS		4
#define ATTEMPTS		3
#define NR_CPUS_NEEDED		4

FIXTURE(flush_pending)
{
	char *a;		/* region A: resolved in a loop by U */
	struct mem_area b;	/* region B: 2 * nr pages written by the test */
	unsigned long nr;	/* pages written per loop */
	int uffd;
	int cpus[NR_CPUS_NEEDED];
	int nr_cpus;
	bool ready;		/* setup completed, not skipped */
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

static unsigned long *b_word(struct mem_area *b, unsigned long i)
{
	return page_word(b->addr, BASE_PAGE_SIZE, i);
}

FIXTURE_SETUP(flush_pending)
{
	const char *why;
	__u64 features;
	unsigned long i;

	self->uffd = -1;
	self->a = MAP_FAILED;
	self->b.addr = MAP_FAILED;
	self->b.memfd = -1;
	self->nr = variant->nr;
	self->nr_cpus = allowed_cpus(self->cpus, NR_CPUS_NEEDED);
	why = uffd_wp_features(variant->type, 0, 0, &features);
	if (!why)
		why = no_numa_hinting_faults();
	if (!why)
		why = mem_area_map(&self->b, variant->type, 2 * self->nr,
				   "uffd-wp-flush-pending");
	if (why)
		SKIP(return, "%s", why);

	/* Region A: private anonymous 4K pages, never inherited by a child. */
	self->a = mmap(NULL, A_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (self->a == MAP_FAILED)
		SKIP(return, "mmap of %lu MiB: %s", A_SIZE >> 20, strerror(errno));
	madvise(self->a, A_SIZE, MADV_NOHUGEPAGE);
	madvise(self->a, A_SIZE, MADV_DONTFORK);

	/* Populate: every PTE ends up present, writable and dirty. */
	for (i = 0; i < A_SIZE / BASE_PAGE_SIZE; i++)
		*page_word(self->a, BASE_PAGE_SIZE, i) = i;
	for (i = 0; i < 2 * self->nr; i++)
		*b_word(&self->b, i) = PATTERN + i;

	self->uffd = uffd_wp_open(features);
	ASSERT_LE(0, self->uffd)
		TH_LOG("userfaultfd: %s", strerror(errno));
	ASSERT_EQ(0, uffd_register_wp(self->uffd, self->a, A_SIZE))
		TH_LOG("UFFDIO_REGISTER(WP) of A: %s", strerror(errno));
	ASSERT_EQ(0, uffd_register_wp(self->uffd, self->b.addr, self->b.size))
		TH_LOG("UFFDIO_REGISTER(WP) of B: %s", strerror(errno));
	self->ready = true;
}

FIXTURE_TEARDOWN(flush_pending)
{
	if (self->uffd >= 0)
		close(self->uffd);
	if (self->a != MAP_FAILED)
		munmap(self->a, A_SIZE);
	mem_area_unmap(&self->b);
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
		if (uffd_wp(u->uffd, u->area, u->size, 0)) {
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

/* Start U on @cpu and wait until it has completed one resolve of A. */
static int start_unprotector(pthread_t *thr, struct unprotector *u, int uffd,
			     char *a, int cpu)
{
	memset(u, 0, sizeof(*u));
	u->uffd = uffd;
	u->area = a;
	u->size = A_SIZE;
	u->cpu = cpu;
	if (pthread_create(thr, NULL, unprotector_fn, u))
		return -1;
	u_wait(u, 0);
	return 0;
}

/* Stop U: 0, or the errno of its pinning or of its ioctl. */
static int stop_unprotector(pthread_t thr, struct unprotector *u)
{
	__atomic_store_n(&u->stop, 1, __ATOMIC_RELEASE);
	pthread_join(thr, NULL);
	return u->pin_err ? u->pin_err : u->err;
}

#define NR_COUNTERS		3
static const enum flush_counter counters[NR_COUNTERS] = {
	FLUSH_IPIS, FLUSH_LOCAL_ONE, FLUSH_REMOTE,
};

struct sample {
	long long flushes[NR_COUNTERS];	/* -1 where absent */
	long minflt;		/* this thread's minor faults */
	unsigned long ioctls;	/* U's resolves so far */
	bool in_ioctl;		/* U was inside a resolve */
};

static void take_sample(struct sample *s, struct unprotector *u)
{
	unsigned long starts = u ? __atomic_load_n(&u->starts, __ATOMIC_ACQUIRE) : 0;
	int c;

	/* Entered before completed: a resolve in flight, never a false one. */
	s->ioctls = u ? u_ioctls(u) : 0;
	s->in_ioctl = starts > s->ioctls;
	for (c = 0; c < NR_COUNTERS; c++)
		s->flushes[c] = flush_count(counters[c]);
	s->minflt = thread_minflt();
}

/* @d = @s1 - @s0, counters that could not be read stay -1. */
static void sample_delta(struct sample *d, struct sample *s0,
			 struct sample *s1)
{
	int c;

	for (c = 0; c < NR_COUNTERS; c++)
		d->flushes[c] = s0->flushes[c] < 0 || s1->flushes[c] < 0 ? -1 :
				s1->flushes[c] - s0->flushes[c];
	d->minflt = s1->minflt - s0->minflt;
	d->ioctls = s1->ioctls - s0->ioctls;
	/* Only meaningful for a write loop: U inside a resolve at both ends. */
	d->in_ioctl = s0->in_ioctl && s1->in_ioctl;
}

/* One write to each of @nr pages, counters sampled around the loop only. */
static void write_pages(struct sample *d, unsigned long *first,
			unsigned long nr, struct unprotector *u)
{
	struct sample s0, s1;
	unsigned long i;

	take_sample(&s0, u);
	for (i = 0; i < nr; i++)
		inc_word(first + i * (BASE_PAGE_SIZE / sizeof(*first)));
	take_sample(&s1, u);
	sample_delta(d, &s0, &s1);
}

static void print_delta(const char *name, const char *what, struct sample *d)
{
	ksft_print_msg("%s: %s U ioctls %lu%s, minflt %ld, TLB %lld, local_one %lld, remote %lld\n",
		       name, what, d->ioctls, d->in_ioctl ? " (in one at both ends)" : "",
		       d->minflt, d->flushes[0], d->flushes[1], d->flushes[2]);
	/* The harness child leaves with _exit(): do not lose the line. */
	fflush(stdout);
}

/* Pin the calling thread to the first of @nr CPUs: NULL, or why not. */
static const char *pin_main(const int *cpus, int nr, int need)
{
	if (nr < need)
		return need == 2 ? "needs 2 CPUs" : "needs 4 CPUs";
	if (pin_self(cpus[0]))
		return "cannot pin to a CPU";
	return NULL;
}

/*
 * Reusing faults while U runs against the control loop, for each counter
 * this kernel has: see the comment at the top. Only a loop that ran
 * inside U's resolves (U in one at both ends) can pass.
 */
static enum verdict reuse_verdict(unsigned long nr, struct sample *ctl,
				  struct sample *alone, struct sample *run)
{
	long long tolerance = nr / 16, excess;
	enum verdict v = run->in_ioctl ? VERDICT_PASS : VERDICT_UNSURE;
	int c;

	for (c = 0; c < NR_COUNTERS; c++) {
		if (run->flushes[c] < 0 || ctl->flushes[c] < 0)
			continue;
		excess = run->flushes[c] - ctl->flushes[c];
		if (excess >= (long long)nr / 2 && alone->flushes[c] <= tolerance)
			return VERDICT_FAIL;
		if (excess > tolerance || alone->flushes[c] > tolerance)
			v = VERDICT_UNSURE;
	}
	return v;
}

TEST_F(flush_pending, reuse_does_not_flush)
{
	unsigned long i, nr = self->nr, bad = 0;
	struct sample s0, s1, ctl, alone, run;
	enum verdict v = VERDICT_UNSURE;
	int attempt, fails = 0, err;
	struct unprotector u;
	const char *why;
	pthread_t thr;

	if (!self->ready)
		return;
	why = pin_main(self->cpus, self->nr_cpus, 2);
	if (why)
		SKIP(return, "%s", why);

	for (attempt = 0; attempt < ATTEMPTS; attempt++) {
		/* Make B's PTEs read-only, without the uffd-wp bit. */
		if (variant->type == MEM_ANON) {
			ASSERT_EQ(0, uffd_wp_write_file("/proc/self/clear_refs", "4"))
				TH_LOG("clear_refs: %s", strerror(errno));
		} else {
			ASSERT_EQ(0, madvise(self->b.addr, self->b.size,
					     MADV_DONTNEED));
			for (i = 0; i < 2 * nr; i++)
				load_word(b_word(&self->b, i));
		}

		/* Control: the first half of B, no flush pending. */
		write_pages(&ctl, b_word(&self->b, 0), nr, NULL);

		ASSERT_EQ(0, start_unprotector(&thr, &u, self->uffd, self->a,
					       self->cpus[1]));
		/* U alone: the main thread sleeps over a few resolves of A. */
		take_sample(&s0, &u);
		u_wait(&u, s0.ioctls + ALONE_IOCTLS - 1);
		take_sample(&s1, &u);
		sample_delta(&alone, &s0, &s1);
		/* The second half of B, while U keeps a flush pending. */
		write_pages(&run, b_word(&self->b, nr), nr, &u);
		err = stop_unprotector(thr, &u);

		ksft_print_msg("%s: attempt %d, N = %lu pages per loop, tolerance %lu\n",
			       variant->name, attempt + 1, nr, nr / 16);
		print_delta(variant->name, "control (U not running):", &ctl);
		print_delta(variant->name, "U alone:", &alone);
		print_delta(variant->name, "writes while U runs:", &run);

		ASSERT_EQ(0, err)
			TH_LOG("U (pinning, resolving): %s", strerror(err));
		/* Without the write faults, there is nothing to test. */
		if (ctl.minflt < (long)nr || run.minflt < (long)nr)
			SKIP(return, "writing B took %ld and %ld minor faults, not %lu each: %s",
			     ctl.minflt, run.minflt, nr,
			     variant->type == MEM_ANON ?
			     "clear_refs does not write-protect (CONFIG_MEM_SOFT_DIRTY=n?)" :
			     "B is writable");
		v = reuse_verdict(nr, &ctl, &alone, &run);
		if (v == VERDICT_PASS)
			break;
		fails += v == VERDICT_FAIL;
	}

	for (i = 0; i < 2 * nr; i++)
		bad += *b_word(&self->b, i) != PATTERN + i + attempt + (v == VERDICT_PASS);
	ASSERT_EQ(0, bad)
		TH_LOG("%lu pages lost their data", bad);
	if (run.flushes[0] < 0 && run.flushes[1] < 0)
		SKIP(return, "no TLB row in /proc/interrupts, no nr_tlb_* in /proc/vmstat");
	if (v != VERDICT_PASS && fails < attempt)
		SKIP(return, "flushes elsewhere (or of U alone) hide those of the faults");
	EXPECT_EQ(VERDICT_PASS, v)
		TH_LOG("reusing write faults flushed the TLB");
}

TEST_F(flush_pending, copy_flushes)
{
	unsigned long i, nr = self->nr, bad = 0, have = PATTERN;
	enum verdict v = VERDICT_UNSURE;
	int pipefd[2], status, attempt, fails = 0, err;
	long long grown = 0;
	struct sample ctl, run;
	struct unprotector u;
	const char *why;
	pthread_t thr;
	pid_t child;
	char c;

	if (!self->ready)
		return;
	if (variant->type != MEM_ANON)
		SKIP(return, "shared mappings reuse pages, they never copy");
	if (flush_count(FLUSH_LOCAL_ONE) < 0)
		SKIP(return, "no nr_tlb_local_flush_one (CONFIG_DEBUG_TLBFLUSH=n)");
	why = pin_main(self->cpus, self->nr_cpus, 2);
	if (why)
		SKIP(return, "%s", why);

	for (attempt = 0; attempt < ATTEMPTS; attempt++) {
		/* A child that keeps B's pages mapped: the write faults copy. */
		ASSERT_EQ(0, pipe2(pipefd, O_CLOEXEC));
		child = fork();
		ASSERT_LE(0, child);
		if (!child) {
			close(pipefd[1]);
			while (read(pipefd[0], &c, 1) < 0 && errno == EINTR)
				;
			for (i = 0; i < 2 * nr; i++)
				bad += load_word(b_word(&self->b, i)) != have + i;
			_exit(bad ? 1 : 0);
		}
		close(pipefd[0]);

		/* Control: the first half of B, no flush pending. */
		write_pages(&ctl, b_word(&self->b, 0), nr, NULL);
		ASSERT_EQ(0, start_unprotector(&thr, &u, self->uffd, self->a,
					       self->cpus[1]));
		write_pages(&run, b_word(&self->b, nr), nr, &u);
		err = stop_unprotector(thr, &u);
		have++;

		close(pipefd[1]);
		ASSERT_EQ(child, waitpid(child, &status, 0));
		ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
			TH_LOG("the child's pages changed (status %#x)", status);

		ksft_print_msg("%s: attempt %d, N = %lu pages, local_one must grow by %lu\n",
			       variant->name, attempt + 1, nr, nr / 2);
		print_delta(variant->name, "copy, control:", &ctl);
		print_delta(variant->name, "copy, while U runs:", &run);
		ASSERT_EQ(0, err)
			TH_LOG("U (pinning, resolving): %s", strerror(err));
		ASSERT_LE((long)nr, ctl.minflt)
			TH_LOG("control loop took %ld minor faults, not %lu",
			       ctl.minflt, nr);
		ASSERT_LE((long)nr, run.minflt)
			TH_LOG("loop took %ld minor faults, not %lu",
			       run.minflt, nr);

		/* wp_page_copy() flushes once per copy; the check adds one more. */
		grown = run.flushes[1] - ctl.flushes[1];
		v = grown >= (long long)nr / 2 ? VERDICT_PASS :
		    grown < (long long)nr / 8 ? VERDICT_FAIL : VERDICT_UNSURE;
		if (v == VERDICT_PASS)
			break;
		fails += v == VERDICT_FAIL;
	}

	for (i = 0; i < 2 * nr; i++)
		bad += *b_word(&self->b, i) != have + i;
	ASSERT_EQ(0, bad)
		TH_LOG("%lu pages lost their data", bad);
	if (v != VERDICT_PASS && fails < attempt)
		SKIP(return, "flushes elsewhere in the system blur those of the faults");
	EXPECT_EQ(VERDICT_PASS, v)
		TH_LOG("copies with a flush pending flushed %lld pages more than without",
		       grown);
}

/*
 * copy_loses_no_write: the threads, each on its own CPU, and the stale
 * TLB entry whose writes a copying fault could lose.
 */
#define GUARD_ROUNDS		32
/* No new round once the rounds took this long. */
#define GUARD_BUDGET_MS		10000
#define GUARD_WARM_WRITES	1000
#define GUARD_SETTLE_MS		10
/* Zero-page PTEs after the rounds' pages, to make the ioctls last long. */
#define GUARD_TAIL_SIZE		(4UL << 30)
#define W_SLOT			8	/* word of the hot writer W in a page */
#define F_SLOT			16	/* word of the faulting thread F */

struct guard {
	int uffd;
	int cpus[NR_CPUS_NEEDED];	/* main thread, W, F, U and H */
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

/* Created on the main CPU, a thread only leaves it once pinned elsewhere. */
static void guard_pin(struct guard *g, int i)
{
	if (pin_self(g->cpus[i]))
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

/* W, CPU 1 of g->cpus: increments its slot nonstop, so its TLB entry stays hot. */
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

/* F, CPU 2 of g->cpus: one write to the page, which it never touched before. */
static void *guard_fault_fn(void *arg)
{
	struct guard *g = arg;

	guard_pin(g, 2);
	guard_wait_go(&g->go_f_ns);
	store_word((unsigned long *)g->page + F_SLOT, 1);
	__atomic_store_n(&g->f_done_ns, now_ns(), __ATOMIC_RELEASE);
	return NULL;
}

/* U, CPU 3 of g->cpus: one unprotect of C, which starts with the page. */
static void *guard_unprotect_fn(void *arg)
{
	struct guard *g = arg;

	guard_pin(g, 3);
	guard_wait_go(&g->go_u_ns);
	if (uffd_wp(g->uffd, g->c, g->c_size, 0))
		guard_set_error(g);
	return NULL;
}

/* H, CPU 3 of g->cpus: resolves every uffd-wp fault by unprotecting its page. */
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
		if (uffd_wp(g->uffd, (void *)page, BASE_PAGE_SIZE, 0))
			guard_set_error(g);
		__atomic_add_fetch(&g->msgs, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* The PFN mapped at @addr, 0 if not present or not visible. */
static unsigned long long pfn_of(void *addr)
{
	uint64_t entry = pagemap_entry(addr);

	return entry >> 63 ? entry & ((1ULL << 55) - 1) : 0;
}

/*
 * Its own timeout: populating GUARD_TAIL_SIZE of zero-page PTEs takes
 * seconds on a KASAN kernel under TCG, before the rounds' budget starts.
 */
TEST_F_TIMEOUT(flush_pending, copy_loses_no_write, 90)
{
	unsigned long long t0, t1, prot_ns, pfn0, pfn1;
	unsigned long k, issued, lost, msgs, lost_total = 0, bad_f = 0;
	unsigned long raced = 0, copied = 0;
	struct guard g = { .uffd = self->uffd };
	unsigned long long start;
	pthread_t h, w, f, u;
	const char *why;
	bool in_race;

	if (!self->ready)
		return;
	if (variant->type != MEM_ANON)
		SKIP(return, "shared mappings reuse pages, they never copy");
	why = pin_main(self->cpus, self->nr_cpus, 4);
	if (why)
		SKIP(return, "%s", why);
	memcpy(g.cpus, self->cpus, sizeof(g.cpus));

	/*
	 * Region C: one page per round, then zero-page PTEs (page tables
	 * only), which every ioctl over C visits after the round's page.
	 */
	g.c_size = GUARD_ROUNDS * BASE_PAGE_SIZE + GUARD_TAIL_SIZE;
	why = map_zero_page_range(&g.c, g.c_size);
	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, uffd_register_wp(self->uffd, g.c, g.c_size))
		TH_LOG("UFFDIO_REGISTER(WP) of C: %s", strerror(errno));
	t0 = now_ns();
	ASSERT_EQ(0, uffd_wp(self->uffd, g.c, g.c_size,
			     UFFDIO_WRITEPROTECT_MODE_WP))
		TH_LOG("UFFDIO_WRITEPROTECT(WP): %s", strerror(errno));
	prot_ns = now_ns() - t0;
	ASSERT_EQ(0, uffd_wp(self->uffd, g.c, g.c_size, 0))
		TH_LOG("UFFDIO_WRITEPROTECT(0): %s", strerror(errno));

	ASSERT_EQ(0, pthread_create(&h, NULL, guard_handler_fn, &g));
	guard_wait_ready(&g, 1);
	ksft_print_msg("round N: protect time, F's write done (after the protect),\n");
	ksft_print_msg("  within it without uffd-wp fault or not, page, W's writes lost/made\n");
	fflush(stdout);
	start = now_ns();
	for (k = 0; k < GUARD_ROUNDS &&
	     now_ns() - start < GUARD_BUDGET_MS * NSEC_PER_MSEC; k++) {
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
		ASSERT_EQ(0, uffd_wp(self->uffd, g.c, g.c_size,
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
		ASSERT_EQ(0, uffd_wp(self->uffd, g.c, g.c_size, 0))
			TH_LOG("UFFDIO_WRITEPROTECT(0): %s", strerror(errno));
	}
	__atomic_store_n(&g.stop_h, 1, __ATOMIC_RELEASE);
	pthread_join(h, NULL);
	munmap(g.c, g.c_size);

	ksft_print_msg("%lu rounds: F within the protect %lu, copied %lu, writes lost %lu\n",
		       k, raced, copied, lost_total);
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
