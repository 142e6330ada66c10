// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-wp-race: UFFDIO_WRITEPROTECT against concurrent writers and faults.
 *
 * Write-protecting a range with userfaultfd is a RW->RO change of the page
 * tables whose TLB flush is deferred to the end of the range. A page fault
 * that runs concurrently may observe a protected PTE while another CPU
 * still writes through a stale, writable TLB entry; when that fault then
 * copies the page (wp_page_copy()) the stale writes are lost. So a
 * protect flushes the TLB before it releases each page table lock.
 *
 * The tests, for anonymous memory (4K, THP, and 4K shared with a forked
 * child so that writes go through the COW copy), shmem and private hugetlb:
 *
 *  - race: two writer threads, each on its own CPU, keep their TLB entries
 *    hot by incrementing a private slot (a 64-bit counter at offset
 *    8 * writer) in every page; a monitor (the test thread) write-protects
 *    and unprotects the whole range and single pages, and a fault handler
 *    thread reads the uffd messages and resolves them by unprotecting the
 *    faulting page, also while the monitor protects the range again.
 *    Oracles:
 *     a. once a protect ioctl returned, no write lands on a protected page:
 *        the monitor snapshots the protected pages, waits SETTLE_MS (a
 *        writer with a stale writable TLB entry would have written many
 *        times by then) and snapshots again; both must be equal. The
 *        handler is gated, it cannot unprotect anything in between.
 *     b. every write attempt on a protected page is reported: after a
 *        protect of the whole range (or of one page) each writer gets
 *        exactly one uffd-wp message, carrying its thread id and the
 *        address of its own slot in a protected page, and stops writing.
 *     c. no lost writes: at the end every slot in memory equals the number
 *        of increments its writer issued to it.
 *    Rounds run for RACE_MS per variant.
 *
 *  - soak: the race for $UFFD_WP_RACE_SOAK_CYCLES protects (each undone by
 *    an unprotect) per variant instead of RACE_MS; each round adds
 *    SOAK_BURST protect/unprotect cycles back to back, of the range and of
 *    single pages in turn, while the writers fault and the handler
 *    resolves; oracle c judges those. Prints its progress every
 *    SOAK_PROGRESS_MS. Skipped when the variable is not set.
 *
 *  - seen_protected_stays_unwritten (anon, THP, shmem): once a page shows
 *    as write-protected, no CPU writes to it any more. The range spans
 *    SEEN_PAGES page tables (PMDs);
 *    one page of each is written, the rest only read (zero-page PTEs for
 *    anon), so a protect walks many entries between two watched pages.
 *    A writer thread writes the watched pages in turn, keeping its TLB
 *    entries hot and writable; a watcher on a third CPU polls their
 *    /proc/self/pagemap entries (read under the page table lock, as a page
 *    fault reads the PTE) for the uffd-wp bit while the test thread
 *    protects the range, and counts the writer's writes to the first page
 *    it sees protected, from then until the protect has returned (plus
 *    SEEN_SETTLE_US): at most 1, a write in flight. More means a stale
 *    writable TLB entry outlived the page table lock, so a fault could
 *    have found the page protected and acted on it (copied it, or resolved
 *    it) while it was still being written. A fourth thread spins on the
 *    protecting thread's CPU, so that a protect that reaches a reschedule
 *    point with its flush still pending is scheduled out for a while.
 *    Rounds for SEEN_MS (twice that for anon); skipped if no round saw a
 *    page protected before its protect returned (nothing to tell). Not
 *    for hugetlb: 6.1's pagemap reads hugetlb entries without their page
 *    table lock.
 *
 *  - fault_seen_protected_stays_unwritten (anon, THP, shmem): the same,
 *    with a page fault as the one who sees: instead of the watcher, a
 *    prober thread writes watched pages it has no TLB entry for (pages of
 *    every other round's parity: the protect of the round in between
 *    flushed its entries), one after the other, slower than the protect
 *    walks them, until one faults; the message of its fault is the page
 *    seen protected. Page faults may run under a per-VMA lock, which
 *    neither mmap_lock for read nor for write keeps out, and the THP
 *    fault path reads the PMD without its lock. Rounds for SEEN_MS.
 *    Needs 4 CPUs.
 *
 *  - faults_run_during_wp (anon): page faults of another thread, on
 *    another mapping, complete while a long protect runs, and while a
 *    long unprotect runs: at least FAULTS_INSIDE_MIN begin and end inside
 *    each. Each fault is the first write to a page of a 64 MiB area (a
 *    fault that needs no mmap_lock where per-VMA locks exist); the area
 *    is zapped with MADV_DONTNEED when all its pages were written. The
 *    range is zero-page PTEs (the ioctls visit and change each
 *    of them, but only page tables are allocated, so it can be many GiB),
 *    sized so that each ioctl takes at least MIN_IOCTL_MS; the test is
 *    skipped if populating it would not fit in LOCK_BUDGET_MS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>

#include "../kselftest_harness.h"
#include "uffd-wp-common.h"

#define NR_WRITERS		2
#define NR_CPUS_NEEDED		(NR_WRITERS + 2)
#define SLOT_OFFSET(w)		(8UL * (w))
/* Length of the race per variant. */
#define RACE_MS			1500
/* Time a stale TLB entry gets to show up in a snapshot. */
#define SETTLE_MS		10
/* Time a writer gets to hit a protected page and be reported. */
#define BLOCK_TIMEOUT_MS	5000
/* Report at most this many mismatches per oracle. */
#define MAX_REPORTS		10
#define REPORT(count, fmt, ...)						\
	do {								\
		if ((count)++ < MAX_REPORTS)				\
			ksft_print_msg(fmt, ##__VA_ARGS__);		\
	} while (0)

/* soak */
#define SOAK_ENV		"UFFD_WP_RACE_SOAK_CYCLES"
#define SOAK_BURST		256
#define SOAK_PROGRESS_MS	10000
#define SOAK_TIMEOUT_S		(12 * 3600)
/* Wake a writer stuck in a fault after this long (see wait_woken()). */
#define WAKE_MS			50
/* seen_protected_stays_unwritten */
#define SEEN_MS			3000	/* of rounds */
#define SEEN_SETTLE_US		200	/* for a write in flight to land */
#define SEEN_WAIT_MS		1000	/* for the writer to go on */
#define SEEN_PAGES		32	/* page tables, one watched page each */
/* faults_run_during_wp */
#define LOCK_RANGE_GB		1UL
#define LOCK_MAX_RANGE_GB	64UL
#define MIN_IOCTL_MS		50
#define FAULTS_INSIDE_MIN	10
#define FAULT_AREA_PAGES	16384	/* each fault a new page of it */
/* No bigger range once this much of the test's time is spent. */
#define LOCK_BUDGET_MS		8000

FIXTURE(uffd_wp_race)
{
	struct mem_area m;	/* the registered range */
	int uffd;
	__u64 features;		/* what UFFDIO_API granted */
	int cpus[NR_CPUS_NEEDED];
	int nr_cpus;		/* usable CPUs found, at most NR_CPUS_NEEDED */
	bool ready;		/* setup completed, not skipped */
};

FIXTURE_VARIANT(uffd_wp_race)
{
	const char *name;
	enum mem_type type;
	bool cow;		/* pages shared with a child: writes copy */
	unsigned long nr_pages;
};

FIXTURE_VARIANT_ADD(uffd_wp_race, anon)
{
	.name = "anon",
	.type = MEM_ANON,
	.nr_pages = 64,
};

FIXTURE_VARIANT_ADD(uffd_wp_race, anon_thp)
{
	.name = "anon_thp",
	.type = MEM_ANON_THP,
	.nr_pages = 2,
};

FIXTURE_VARIANT_ADD(uffd_wp_race, shmem)
{
	.name = "shmem",
	.type = MEM_SHMEM,
	.nr_pages = 64,
};

FIXTURE_VARIANT_ADD(uffd_wp_race, hugetlb)
{
	.name = "hugetlb",
	.type = MEM_HUGETLB,
	.nr_pages = 4,
};

FIXTURE_VARIANT_ADD(uffd_wp_race, anon_cow)
{
	.name = "anon_cow",
	.type = MEM_ANON,
	.cow = true,
	.nr_pages = 64,
};

static double ms(unsigned long long ns)
{
	return ns / 1e6;
}

static pid_t gettid_raw(void)
{
	return syscall(SYS_gettid);
}

/*
 * Wait until @done(@arg) holds: false if it does not within @ms. A writer
 * that does not go on is woken with UFFDIO_WAKE on [start, start + len)
 * every WAKE_MS: its fault can find the page read-only without the uffd-wp
 * bit after the unprotect's wake-up went by (userfaultfd_must_wait() tests
 * the write bit), and then waits for the next wake-up.
 */
static bool wait_woken(int uffd, char *start, size_t len, unsigned long ms,
		       bool (*done)(void *arg), void *arg, unsigned long *wakes)
{
	struct uffdio_range range = { .start = (unsigned long)start, .len = len };
	unsigned long long t0 = now_ns(), next = t0;

	while (!done(arg)) {
		if (now_ns() - t0 > ms * NSEC_PER_MSEC)
			return false;
		if (now_ns() < next + WAKE_MS * NSEC_PER_MSEC)
			continue;
		next = now_ns();
		if (ioctl(uffd, UFFDIO_WAKE, &range))
			return false;
		(*wakes)++;
	}
	return true;
}

FIXTURE_SETUP(uffd_wp_race)
{
	struct mem_area *m = &self->m;
	const char *why;
	unsigned long i;

	self->uffd = -1;
	m->addr = MAP_FAILED;
	m->memfd = -1;
	self->nr_cpus = allowed_cpus(self->cpus, NR_CPUS_NEEDED);
	why = uffd_wp_features(variant->type, UFFD_FEATURE_THREAD_ID,
			       UFFD_FEATURE_EXACT_ADDRESS, &self->features);
	if (!why)
		why = mem_area_map(m, variant->type, variant->nr_pages,
				   "uffd-wp-race");
	if (why)
		SKIP(return, "%s", why);

	/* Populate: every PTE/PMD present, writable, dirty; counters 0. */
	for (i = 0; i < m->size; i += BASE_PAGE_SIZE)
		store_word((unsigned long *)(m->addr + i), 0);
	if (variant->type == MEM_ANON_THP) {
		why = mem_area_check_thp(m);
		if (why)
			SKIP(return, "%s", why);
	}

	self->uffd = uffd_wp_open(self->features);
	ASSERT_LE(0, self->uffd)
		TH_LOG("userfaultfd with features 0x%llx: %s",
		       (unsigned long long)self->features, strerror(errno));
	ASSERT_EQ(0, uffd_register_wp(self->uffd, m->addr, m->size))
		TH_LOG("UFFDIO_REGISTER(WP): %s", strerror(errno));
	self->ready = true;
}

FIXTURE_TEARDOWN(uffd_wp_race)
{
	if (self->uffd >= 0)
		close(self->uffd);
	mem_area_unmap(&self->m);
}

/*
 * The race. All shared fields are accessed with __atomic builtins or under
 * lock; the writers' issued[] arrays are private to each writer until it
 * has been joined.
 */
struct race {
	char *area;
	size_t psize;
	unsigned long nr_pages;
	int uffd;
	bool exact;			/* UFFD_FEATURE_EXACT_ADDRESS */
	int cpu_writer[NR_WRITERS];
	int cpu_handler;

	/* writers */
	pid_t tid[NR_WRITERS];
	unsigned long *issued[NR_WRITERS];	/* increments per page */
	unsigned long progress[NR_WRITERS];	/* published total */
	int writer_done[NR_WRITERS];
	int started;
	int stop_writers;
	int pin_err;

	/* fault handler */
	int stop_handler;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool gate_open;			/* may the handler resolve? */
	bool busy;			/* handler inside an unprotect */
	char *pending[NR_WRITERS];	/* page a writer is blocked on */
	unsigned long phase_msgs[NR_WRITERS];
	unsigned long wp_msgs;
	unsigned long other_msgs;
	unsigned long bad_msgs;
	unsigned long replaced;		/* message for an already blocked writer */
	unsigned long resolves;
	int handler_err;
	char bad_desc[160];
	/* global order of handler unprotects against monitor protects */
	unsigned long seq;
	unsigned long *resolve_seq;	/* per page: seq after last unprotect */
};

struct race_stats {
	unsigned long rounds;
	unsigned long protects;		/* by the monitor */
	unsigned long unprotects;	/* by the monitor */
	unsigned long interleaved;	/* protects racing handler unprotects */
	unsigned long interleaved_pages;	/* pages checked after those */
	unsigned long forks;
	unsigned long wakes;		/* writers woken by UFFDIO_WAKE */
	unsigned long fail_a;
	unsigned long fail_b;
	unsigned long fail_c;
	unsigned long fail_other;
	unsigned long *snap1;
	unsigned long *snap2;
	bool *sel;
	bool stop;			/* a failure left the race unrecoverable */
};

struct writer_arg {
	struct race *r;
	int id;
};

static unsigned long *slot(struct race *r, unsigned long page, int w)
{
	return (unsigned long *)(r->area + page * r->psize + SLOT_OFFSET(w));
}

static void *writer_fn(void *arg)
{
	struct writer_arg *wa = arg;
	struct race *r = wa->r;
	unsigned long *issued = r->issued[wa->id];
	unsigned long total = 0, i;
	int w = wa->id;

	if (pin_self(r->cpu_writer[w]))
		__atomic_store_n(&r->pin_err, errno, __ATOMIC_RELAXED);
	__atomic_store_n(&r->tid[w], gettid_raw(), __ATOMIC_RELEASE);
	__atomic_add_fetch(&r->started, 1, __ATOMIC_SEQ_CST);

	while (!__atomic_load_n(&r->stop_writers, __ATOMIC_RELAXED)) {
		for (i = 0; i < r->nr_pages; i++) {
			unsigned long *p = slot(r, i, w);

			/* From memory: a lost write stays lost. */
			store_word(p, load_word(p) + 1);
			issued[i]++;
			__atomic_store_n(&r->progress[w], ++total,
					 __ATOMIC_RELAXED);
		}
	}
	__atomic_store_n(&r->writer_done[w], 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Account one message; called with r->lock held. */
static void handle_msg(struct race *r, struct uffd_msg *msg)
{
	unsigned long addr, page;
	__u32 tid;
	int w;

	if (msg->event != UFFD_EVENT_PAGEFAULT ||
	    !(msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
		if (!r->other_msgs++)
			snprintf(r->bad_desc, sizeof(r->bad_desc),
				 "event 0x%x flags 0x%llx", msg->event,
				 (unsigned long long)msg->arg.pagefault.flags);
		return;
	}

	addr = msg->arg.pagefault.address;
	tid = msg->arg.pagefault.feat.ptid;
	page = addr & ~(r->psize - 1);
	for (w = 0; w < NR_WRITERS; w++)
		if ((__u32)__atomic_load_n(&r->tid[w], __ATOMIC_ACQUIRE) == tid)
			break;

	r->wp_msgs++;
	if (w == NR_WRITERS || addr < (unsigned long)r->area ||
	    addr >= (unsigned long)r->area + r->nr_pages * r->psize ||
	    (r->exact && addr - page != SLOT_OFFSET(w))) {
		if (!r->bad_msgs++)
			snprintf(r->bad_desc, sizeof(r->bad_desc),
				 "wp message from tid %u at %#lx (area %p, writer %d)",
				 tid, addr, r->area, w);
	}
	if (w < NR_WRITERS && addr >= (unsigned long)r->area &&
	    addr < (unsigned long)r->area + r->nr_pages * r->psize) {
		r->phase_msgs[w]++;
		if (r->pending[w])
			r->replaced++;
		r->pending[w] = (char *)page;
	}
	pthread_cond_broadcast(&r->cond);
}

/* Unprotect the pages writers wait on, while the monitor lets us. */
static void resolve_pending(struct race *r)
{
	unsigned long seq;
	char *page;
	int w, ret, err;

	pthread_mutex_lock(&r->lock);
	while (r->gate_open) {
		page = NULL;
		for (w = 0; w < NR_WRITERS && !page; w++)
			page = r->pending[w];
		if (!page)
			break;
		/* One unprotect wakes every writer blocked on the page. */
		for (w = 0; w < NR_WRITERS; w++)
			if (r->pending[w] == page)
				r->pending[w] = NULL;
		r->busy = true;
		pthread_mutex_unlock(&r->lock);

		ret = uffd_wp(r->uffd, page, r->psize, 0);
		err = errno;
		seq = __atomic_add_fetch(&r->seq, 1, __ATOMIC_SEQ_CST);

		pthread_mutex_lock(&r->lock);
		if (ret && !r->handler_err)
			r->handler_err = err;
		r->resolve_seq[(page - r->area) / r->psize] = seq;
		r->resolves++;
		r->busy = false;
		pthread_cond_broadcast(&r->cond);
	}
	pthread_mutex_unlock(&r->lock);
}

static void *handler_fn(void *arg)
{
	struct race *r = arg;
	struct pollfd pfd = { .fd = r->uffd, .events = POLLIN };
	struct uffd_msg msg;
	ssize_t n;
	int err;

	if (pin_self(r->cpu_handler))
		__atomic_store_n(&r->pin_err, errno, __ATOMIC_RELAXED);

	while (!__atomic_load_n(&r->stop_handler, __ATOMIC_ACQUIRE)) {
		if (poll(&pfd, 1, 1) < 0 && errno != EINTR) {
			r->handler_err = errno;
			break;
		}
		/*
		 * Read and account each message under the lock: one read
		 * before start_phase() must not count in the new phase.
		 */
		for (;;) {
			pthread_mutex_lock(&r->lock);
			n = read(r->uffd, &msg, sizeof(msg));
			err = n < 0 ? errno : EIO;
			if (n == sizeof(msg))
				handle_msg(r, &msg);
			else if (err != EINTR && err != EAGAIN)
				r->handler_err = err;
			pthread_mutex_unlock(&r->lock);
			if (n != sizeof(msg) && err != EINTR)
				break;
		}
		resolve_pending(r);
	}
	return NULL;
}

/* Wait on r->cond until deadline (CLOCK_MONOTONIC ns); false on timeout. */
static bool cond_wait_until(struct race *r, unsigned long long deadline)
{
	struct timespec ts = {
		.tv_sec = deadline / NSEC_PER_SEC,
		.tv_nsec = deadline % NSEC_PER_SEC,
	};

	return pthread_cond_timedwait(&r->cond, &r->lock, &ts) != ETIMEDOUT;
}

/* Let the handler resolve, or stop it and wait for its current unprotect. */
static void set_gate(struct race *r, bool open)
{
	pthread_mutex_lock(&r->lock);
	r->gate_open = open;
	while (!open && r->busy)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
}

static void start_phase(struct race *r)
{
	int w;

	pthread_mutex_lock(&r->lock);
	for (w = 0; w < NR_WRITERS; w++)
		r->phase_msgs[w] = 0;
	pthread_mutex_unlock(&r->lock);
}

/* Forget what writers wait on: the monitor's own unprotect woke them. */
static void drop_pending(struct race *r, char *page)
{
	int w;

	pthread_mutex_lock(&r->lock);
	for (w = 0; w < NR_WRITERS; w++)
		if (!page || r->pending[w] == page)
			r->pending[w] = NULL;
	pthread_mutex_unlock(&r->lock);
}

static void snapshot(struct race *r, const bool *sel, unsigned long *buf)
{
	unsigned long i;
	int w;

	for (i = 0; i < r->nr_pages; i++)
		for (w = 0; w < NR_WRITERS; w++)
			if (sel[i])
				buf[i * NR_WRITERS + w] = load_word(slot(r, i, w));
}

/*
 * Oracle a: the pages in st->sel were protected when this is called and
 * nothing may unprotect them meanwhile; none of their slots may change.
 */
static void check_no_writes(struct race *r, struct race_stats *st,
			    const char *what)
{
	unsigned long i, a, b;
	int w, bad = 0;

	snapshot(r, st->sel, st->snap1);
	sleep_ns(SETTLE_MS * NSEC_PER_MSEC);
	snapshot(r, st->sel, st->snap2);

	for (i = 0; i < r->nr_pages; i++) {
		if (!st->sel[i])
			continue;
		for (w = 0; w < NR_WRITERS; w++) {
			a = st->snap1[i * NR_WRITERS + w];
			b = st->snap2[i * NR_WRITERS + w];
			if (a == b)
				continue;
			bad++;
			REPORT(st->fail_a,
			       "round %lu, %s: writer %d wrote protected page %lu: %lu -> %lu within %d ms after the protect returned\n",
			       st->rounds, what, w, i, a, b,
			       SETTLE_MS);
		}
	}
	if (bad)
		st->stop = true;
}

/*
 * Oracle b: every writer ends up blocked on a protected page, reported by
 * a message; with exact, by exactly one message in this phase, and on
 * page when given. Returns false when a writer did not block.
 */
static bool wait_blocked(struct race *r, struct race_stats *st,
			 const char *what, bool exact, char *page)
{
	unsigned long long deadline = now_ns() + BLOCK_TIMEOUT_MS * NSEC_PER_MSEC;
	unsigned long p0[NR_WRITERS], p1[NR_WRITERS], msgs[NR_WRITERS];
	char *pend[NR_WRITERS];
	bool all;
	int w;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		all = true;
		for (w = 0; w < NR_WRITERS; w++)
			all &= !!r->pending[w];
		if (all || !cond_wait_until(r, deadline))
			break;
	}
	for (w = 0; w < NR_WRITERS; w++)
		pend[w] = r->pending[w];
	pthread_mutex_unlock(&r->lock);

	for (w = 0; w < NR_WRITERS; w++) {
		if (pend[w])
			continue;
		REPORT(st->fail_b,
		       "round %lu, %s: writer %d got no uffd-wp message within %d ms (it wrote %lu times meanwhile)\n",
		       st->rounds, what, w, BLOCK_TIMEOUT_MS,
		       __atomic_load_n(&r->progress[w], __ATOMIC_RELAXED));
		st->stop = true;
	}
	if (st->stop)
		return false;

	/* Blocked writers do not write, and are not reported twice. */
	for (w = 0; w < NR_WRITERS; w++)
		p0[w] = __atomic_load_n(&r->progress[w], __ATOMIC_RELAXED);
	sleep_ns(SETTLE_MS * NSEC_PER_MSEC);
	pthread_mutex_lock(&r->lock);
	for (w = 0; w < NR_WRITERS; w++) {
		p1[w] = __atomic_load_n(&r->progress[w], __ATOMIC_RELAXED);
		msgs[w] = r->phase_msgs[w];
		pend[w] = r->pending[w];
	}
	pthread_mutex_unlock(&r->lock);

	for (w = 0; w < NR_WRITERS; w++) {
		if (p1[w] != p0[w]) {
			REPORT(st->fail_b,
			       "round %lu, %s: writer %d reported blocked, wrote %lu times since\n",
			       st->rounds, what, w, p1[w] - p0[w]);
			st->stop = true;
		}
		if (exact && msgs[w] != 1) {
			REPORT(st->fail_b,
			       "round %lu, %s: writer %d got %lu uffd-wp messages, expected 1\n",
			       st->rounds, what, w, msgs[w]);
			st->stop = true;
		}
		if (page && pend[w] != page) {
			REPORT(st->fail_b,
			       "round %lu, %s: writer %d reported on %p, only %p is protected\n",
			       st->rounds, what, w, pend[w], page);
			st->stop = true;
		}
	}
	return !st->stop;
}

/* Wait until the handler resolved everything pending (gate open). */
static bool wait_drained(struct race *r)
{
	unsigned long long deadline = now_ns() + BLOCK_TIMEOUT_MS * NSEC_PER_MSEC;
	bool any;
	int w;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		any = r->busy;
		for (w = 0; w < NR_WRITERS; w++)
			any |= !!r->pending[w];
		if (!any || !cond_wait_until(r, deadline))
			break;
	}
	pthread_mutex_unlock(&r->lock);
	return !any;
}

static bool monitor_wp(struct race *r, struct race_stats *st, char *start,
		       size_t len, __u64 mode)
{
	if (uffd_wp(r->uffd, start, len, mode)) {
		REPORT(st->fail_other, "round %lu: UFFDIO_WRITEPROTECT(%p, %zu, %llu): %s\n",
		       st->rounds, start, len,
		       (unsigned long long)mode, strerror(errno));
		st->stop = true;
		return false;
	}
	if (mode)
		st->protects++;
	else
		st->unprotects++;
	return true;
}

static pid_t fork_sharer(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		/* Only keep the pages mapped, until killed. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			pause();
	}
	return pid;
}

static void reap(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/*
 * One round; on entry and on a successful return the whole range is
 * unprotected, the writers run, the gate is closed and nothing is pending.
 */
static void race_round(struct race *r, struct race_stats *st, bool cow,
		       pid_t *child, unsigned int *rnd)
{
	size_t size = r->nr_pages * r->psize;
	unsigned long i, pseq, single;
	char *page;

	/* A: protect everything; nothing writes, each writer reports once. */
	start_phase(r);
	if (!monitor_wp(r, st, r->area, size, UFFDIO_WRITEPROTECT_MODE_WP))
		return;
	memset(st->sel, 1, r->nr_pages * sizeof(*st->sel));
	check_no_writes(r, st, "range protect");
	if (st->stop || !wait_blocked(r, st, "range protect", true, NULL))
		return;

	/* Make every page shared with a child: writes now copy. */
	if (cow) {
		pid_t pid = fork_sharer();

		if (pid < 0) {
			REPORT(st->fail_other, "fork: %s\n", strerror(errno));
			st->stop = true;
			return;
		}
		reap(*child);
		*child = pid;
		st->forks++;
	}

	/*
	 * B: the handler unprotects single pages for the writers, which then
	 * fault page by page, while the monitor protects the range again.
	 */
	start_phase(r);
	set_gate(r, true);
	sleep_ns((rand_r(rnd) % 2000) * 1000ULL);
	pseq = __atomic_add_fetch(&r->seq, 1, __ATOMIC_SEQ_CST);
	if (!monitor_wp(r, st, r->area, size, UFFDIO_WRITEPROTECT_MODE_WP))
		return;
	set_gate(r, false);
	st->interleaved++;
	/* Pages the handler unprotected since the protect began may be writable. */
	single = 0;
	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->nr_pages; i++) {
		st->sel[i] = r->resolve_seq[i] < pseq;
		single += st->sel[i];
	}
	pthread_mutex_unlock(&r->lock);
	st->interleaved_pages += single;
	check_no_writes(r, st, "range protect racing unprotects");
	if (st->stop)
		return;
	if (!single &&
	    !monitor_wp(r, st, r->area, size, UFFDIO_WRITEPROTECT_MODE_WP))
		return;
	if (!wait_blocked(r, st, "range protect racing unprotects", false, NULL))
		return;

	/* C: unprotect everything. */
	drop_pending(r, NULL);
	if (!monitor_wp(r, st, r->area, size, 0))
		return;

	/* D: one page; resolved by the monitor or by the handler. */
	page = r->area + (st->rounds % r->nr_pages) * r->psize;
	start_phase(r);
	if (!monitor_wp(r, st, page, r->psize, UFFDIO_WRITEPROTECT_MODE_WP))
		return;
	memset(st->sel, 0, r->nr_pages * sizeof(*st->sel));
	st->sel[st->rounds % r->nr_pages] = true;
	check_no_writes(r, st, "page protect");
	if (st->stop || !wait_blocked(r, st, "page protect", true, page))
		return;
	if (st->rounds & 1) {
		drop_pending(r, page);
		monitor_wp(r, st, page, r->psize, 0);
	} else {
		set_gate(r, true);
		if (!wait_drained(r)) {
			REPORT(st->fail_other, "round %lu: handler did not resolve page %p\n",
			       st->rounds, page);
			st->stop = true;
		}
		set_gate(r, false);
	}
}

struct went_on {
	struct race *r;
	unsigned long from[NR_WRITERS];
};

/* Every writer wrote since g->from: it is out of the fault it was in. */
static bool writers_went_on(void *arg)
{
	struct went_on *g = arg;
	int w;

	for (w = 0; w < NR_WRITERS; w++)
		if (__atomic_load_n(&g->r->progress[w], __ATOMIC_RELAXED) <=
		    g->from[w])
			return false;
	return true;
}

/*
 * Soak only: SOAK_BURST protect/unprotect cycles back to back, of the range
 * and of single pages in turn, while the writers fault and the handler
 * resolves. On a successful return no page is protected, no writer is in
 * a fault, nothing is pending and the gate is closed.
 */
static void race_burst(struct race *r, struct race_stats *st)
{
	size_t size = r->nr_pages * r->psize;
	struct went_on g = { .r = r };
	size_t len;
	char *start;
	int i, w;

	set_gate(r, true);
	for (i = 0; i < SOAK_BURST; i++) {
		start = r->area;
		len = size;
		if (i & 1) {
			start += (i / 2 % r->nr_pages) * r->psize;
			len = r->psize;
		}
		if (!monitor_wp(r, st, start, len, UFFDIO_WRITEPROTECT_MODE_WP) ||
		    !monitor_wp(r, st, start, len, 0))
			return;
	}
	/*
	 * Nothing is protected now. Once every writer wrote again, its
	 * message, if the handler read it, is pending: resolve and forget it.
	 */
	for (w = 0; w < NR_WRITERS; w++)
		g.from[w] = __atomic_load_n(&r->progress[w], __ATOMIC_RELAXED);
	if (!wait_woken(r->uffd, r->area, size, BLOCK_TIMEOUT_MS,
			writers_went_on, &g, &st->wakes) || !wait_drained(r)) {
		REPORT(st->fail_other, "round %lu, burst: a writer did not go on\n",
		       st->rounds);
		st->stop = true;
		return;
	}
	set_gate(r, false);
}

/* Stop the writers, whatever state they are in; false if one hangs. */
static bool race_stop(struct race *r, pthread_t *writers, pthread_t handler)
{
	size_t size = r->nr_pages * r->psize;
	bool done = false;
	int i, w;

	__atomic_store_n(&r->stop_writers, 1, __ATOMIC_RELEASE);
	set_gate(r, true);
	for (i = 0; i < 1000 && !done; i++) {
		uffd_wp(r->uffd, r->area, size, 0);
		drop_pending(r, NULL);
		done = true;
		for (w = 0; w < NR_WRITERS; w++)
			done &= __atomic_load_n(&r->writer_done[w],
						__ATOMIC_ACQUIRE);
		if (!done)
			sleep_ns(10 * NSEC_PER_MSEC);
	}
	if (!done)
		return false;
	for (w = 0; w < NR_WRITERS; w++)
		pthread_join(writers[w], NULL);
	__atomic_store_n(&r->stop_handler, 1, __ATOMIC_RELEASE);
	pthread_join(handler, NULL);
	return true;
}

/*
 * The race on @m, registered with @uffd, the memory of variant @name: for
 * RACE_MS, or, with @cycles, until the monitor made that many protects,
 * with a burst of cycles in every round.
 */
static void race_run(struct __test_metadata *_metadata, struct mem_area *m,
		     int uffd, __u64 features, const int *cpus, int nr_cpus,
		     const char *name, bool cow, unsigned long cycles)
{
	unsigned long long t0, next_progress, duration = RACE_MS * NSEC_PER_MSEC;
	unsigned long long writes[NR_WRITERS];
	struct writer_arg wargs[NR_WRITERS];
	pthread_t writers[NR_WRITERS], handler;
	struct race_stats st = { 0 };
	pthread_condattr_t cattr;
	unsigned int rnd = 1;
	unsigned long i, got, lost = 0;
	struct race r = { 0 };
	pid_t child = -1;
	int w;

	if (nr_cpus < NR_CPUS_NEEDED)
		SKIP(return, "needs %d CPUs, has %d", NR_CPUS_NEEDED, nr_cpus);

	r.area = m->addr;
	r.psize = m->psize;
	r.nr_pages = m->nr_pages;
	r.uffd = uffd;
	r.exact = features & UFFD_FEATURE_EXACT_ADDRESS;
	for (w = 0; w < NR_WRITERS; w++) {
		r.cpu_writer[w] = cpus[1 + w];
		r.issued[w] = calloc(r.nr_pages, sizeof(unsigned long));
		ASSERT_NE(NULL, r.issued[w]);
	}
	r.cpu_handler = cpus[NR_WRITERS + 1];
	r.resolve_seq = calloc(r.nr_pages, sizeof(unsigned long));
	st.snap1 = calloc(r.nr_pages * NR_WRITERS, sizeof(unsigned long));
	st.snap2 = calloc(r.nr_pages * NR_WRITERS, sizeof(unsigned long));
	st.sel = calloc(r.nr_pages, sizeof(bool));
	ASSERT_TRUE(r.resolve_seq && st.snap1 && st.snap2 && st.sel);
	ASSERT_EQ(0, pthread_mutex_init(&r.lock, NULL));
	ASSERT_EQ(0, pthread_condattr_init(&cattr));
	ASSERT_EQ(0, pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC));
	ASSERT_EQ(0, pthread_cond_init(&r.cond, &cattr));
	ASSERT_EQ(0, pin_self(cpus[0]));

	ASSERT_EQ(0, pthread_create(&handler, NULL, handler_fn, &r));
	for (w = 0; w < NR_WRITERS; w++) {
		wargs[w].r = &r;
		wargs[w].id = w;
		ASSERT_EQ(0, pthread_create(&writers[w], NULL, writer_fn, &wargs[w]));
	}
	while (__atomic_load_n(&r.started, __ATOMIC_SEQ_CST) < NR_WRITERS)
		sched_yield();
	/* Let the writers fill their TLBs. */
	sleep_ns(SETTLE_MS * NSEC_PER_MSEC);

	t0 = now_ns();
	next_progress = t0 + SOAK_PROGRESS_MS * NSEC_PER_MSEC;
	while (!st.stop && (cycles ? st.protects < cycles :
			    now_ns() - t0 < duration || st.rounds < 3)) {
		race_round(&r, &st, cow, &child, &rnd);
		if (cycles && !st.stop)
			race_burst(&r, &st);
		if (!st.stop)
			st.rounds++;
		if (cycles && now_ns() >= next_progress) {
			ksft_print_msg("%s: %lu of %lu cycles, %lu rounds, %llu s\n",
				       name, st.protects, cycles,
				       st.rounds, (now_ns() - t0) / NSEC_PER_SEC);
			fflush(stdout);
			next_progress += SOAK_PROGRESS_MS * NSEC_PER_MSEC;
		}
	}

	if (!race_stop(&r, writers, handler)) {
		ksft_print_msg("%s: writers do not stop: giving up\n", name);
		fflush(stdout);
		abort();
	}
	reap(child);

	/* Oracle c: no lost writes. */
	for (w = 0; w < NR_WRITERS; w++) {
		writes[w] = 0;
		for (i = 0; i < r.nr_pages; i++) {
			got = load_word(slot(&r, i, w));
			writes[w] += r.issued[w][i];
			if (got == r.issued[w][i])
				continue;
			lost += r.issued[w][i] - got;
			REPORT(st.fail_c, "page %lu writer %d: expected %lu, got %lu\n",
			       i, w, r.issued[w][i], got);
		}
	}

	ksft_print_msg("%s: %lu x %zuK, %llu ms: %lu rounds, %lu protects\n",
		       name, r.nr_pages, r.psize >> 10,
		       (now_ns() - t0) / NSEC_PER_MSEC, st.rounds, st.protects);
	ksft_print_msg("%s: %lu racing %lu handler unprotects, %lu pages checked\n",
		       name, st.interleaved, r.resolves,
		       st.interleaved_pages);
	ksft_print_msg("%s: %lu unprotects, %lu forks; uffd-wp messages %lu, wakes %lu\n",
		       name, st.unprotects, st.forks, r.wp_msgs,
		       st.wakes);
	ksft_print_msg("%s: other messages %lu, bad %lu, repeated %lu\n",
		       name, r.other_msgs, r.bad_msgs, r.replaced);
	ksft_print_msg("%s: writes %llu + %llu; mismatches a=%lu b=%lu c=%lu\n",
		       name, writes[0], writes[1],
		       st.fail_a, st.fail_b, st.fail_c);
	ksft_print_msg("%s: %lu lost writes, %lu other failures\n",
		       name, lost, st.fail_other);
	if (r.bad_msgs || r.other_msgs)
		ksft_print_msg("first unexpected message: %s\n", r.bad_desc);
	fflush(stdout);

	for (w = 0; w < NR_WRITERS; w++)
		free(r.issued[w]);
	free(r.resolve_seq);
	free(st.snap1);
	free(st.snap2);
	free(st.sel);

	EXPECT_EQ(0, r.pin_err)
		TH_LOG("pinning a thread: %s", strerror(r.pin_err));
	EXPECT_EQ(0, r.handler_err)
		TH_LOG("fault handler: %s", strerror(r.handler_err));
	EXPECT_EQ(0, st.fail_other);
	EXPECT_EQ(0, r.bad_msgs + r.other_msgs)
		TH_LOG("unexpected uffd messages: %s", r.bad_desc);
	EXPECT_EQ(0, st.fail_a)
		TH_LOG("oracle a: writes landed on write-protected pages");
	EXPECT_EQ(0, st.fail_b)
		TH_LOG("oracle b: writes to protected pages not reported");
	EXPECT_EQ(0, st.fail_c)
		TH_LOG("oracle c: %lu writes lost", lost);
}

TEST_F(uffd_wp_race, race)
{
	if (self->ready)
		race_run(_metadata, &self->m, self->uffd, self->features,
			 self->cpus, self->nr_cpus, variant->name, variant->cow, 0);
}

TEST_F_TIMEOUT(uffd_wp_race, soak, SOAK_TIMEOUT_S)
{
	const char *env = getenv(SOAK_ENV);
	unsigned long cycles;
	char *end;

	if (!env)
		SKIP(return, "set %s to soak", SOAK_ENV);
	errno = 0;
	cycles = strtoul(env, &end, 10);
	ASSERT_TRUE(!errno && *env >= '0' && *env <= '9' && !*end && cycles)
		TH_LOG("%s=%s: not a number of cycles", SOAK_ENV, env);
	if (self->ready)
		race_run(_metadata, &self->m, self->uffd, self->features,
			 self->cpus, self->nr_cpus, variant->name, variant->cow,
			 cycles);
}

/*
 * seen_protected_stays_unwritten: once a page shows as write-protected, no
 * CPU writes to it any more.
 */
struct seen {
	char *x[SEEN_PAGES];		/* the watched pages, one per table */
	int nr;
	int cpu_writer, cpu_watcher, cpu_hog;
	unsigned long done[SEEN_PAGES];	/* writer: writes to x[i] done */
	unsigned long mark;		/* monitor: sum of done at round start */
	int stop;
	int watch;			/* monitor: a round is on */
	int returned;			/* monitor: its protect returned */
	int seen;			/* watcher: one x showed as protected */
	int by_fault;			/* the prober's fault is the watcher */
	int uffd;
	int cpu_prober;
	pid_t prober_tid;
	unsigned long round;		/* monitor: its number */
	unsigned long long probe_ns;	/* monitor: prober's pace */
	int during;			/* ... while the protect still ran */
	unsigned long after;		/* watcher: writes to it after that */
	int writer_done;
	int err;			/* errno of a thread's setup */
};

/*
 * Share the protecting thread's CPU: a protect that reaches a reschedule
 * point with a flush still pending is then scheduled out for a while.
 */
static void *seen_hog_fn(void *arg)
{
	struct seen *s = arg;

	if (pin_self(s->cpu_hog))
		__atomic_store_n(&s->err, errno, __ATOMIC_RELAXED);
	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED))
		;
	return NULL;
}

/* Write every x in turn, publishing the count of each after each write. */
static void *seen_writer_fn(void *arg)
{
	struct seen *s = arg;
	int i;

	if (pin_self(s->cpu_writer))
		__atomic_store_n(&s->err, errno, __ATOMIC_RELAXED);
	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED))
		for (i = 0; i < s->nr; i++) {
			inc_word((unsigned long *)s->x[i]);
			__atomic_store_n(&s->done[i], s->done[i] + 1, __ATOMIC_RELEASE);
		}
	__atomic_store_n(&s->writer_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * x[@i] is seen protected now: count the writer's writes to it from now
 * until the protect has returned and SEEN_SETTLE_US more have passed, and
 * end the round.
 */
static void seen_count(struct seen *s, int i)
{
	unsigned long p0 = __atomic_load_n(&s->done[i], __ATOMIC_ACQUIRE);

	__atomic_store_n(&s->during,
			 !__atomic_load_n(&s->returned, __ATOMIC_ACQUIRE),
			 __ATOMIC_RELAXED);
	while (!__atomic_load_n(&s->returned, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&s->stop, __ATOMIC_RELAXED))
		;
	sleep_ns(SEEN_SETTLE_US * 1000ULL);
	__atomic_store_n(&s->after,
			 __atomic_load_n(&s->done[i], __ATOMIC_ACQUIRE) - p0,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&s->watch, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->seen, 1, __ATOMIC_RELEASE);
}

/*
 * In each round, poll the pagemap entries of the x in turn until one shows
 * the uffd-wp bit; count the writer's writes to that page from then until
 * the protect has returned and SEEN_SETTLE_US more have passed.
 */
static void *seen_watcher_fn(void *arg)
{
	struct seen *s = arg;
	int fd, i = 0;

	if (pin_self(s->cpu_watcher)) {
		__atomic_store_n(&s->err, errno, __ATOMIC_RELAXED);
		return NULL;
	}
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		__atomic_store_n(&s->err, errno, __ATOMIC_RELAXED);
		return NULL;
	}
	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		i = (i + 1) % s->nr;
		if (!__atomic_load_n(&s->watch, __ATOMIC_ACQUIRE) ||
		    !(pagemap_read(fd, s->x[i]) & PM_UFFD_WP))
			continue;
		seen_count(s, i);
	}
	close(fd);
	return NULL;
}

/*
 * In each round, write the x of the round's parity one after the other,
 * s->probe_ns apart (the protect walks 3 page tables meanwhile: the prober
 * lags behind it), until a write faults: the fault watcher sees that one.
 * Its TLB holds no entry for them: it wrote them two rounds ago, and the
 * protect of the last round flushed that. The writer's stale entries do
 * not live long (QEMU's TLB evicts them), so the earlier the better.
 */
static void *seen_prober_fn(void *arg)
{
	struct seen *s = arg;
	unsigned long round = 0;
	int i;

	if (pin_self(s->cpu_prober))
		__atomic_store_n(&s->err, errno, __ATOMIC_RELAXED);
	__atomic_store_n(&s->prober_tid, gettid_raw(), __ATOMIC_RELEASE);
	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		if (!__atomic_load_n(&s->watch, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&s->round, __ATOMIC_ACQUIRE) == round)
			continue;
		round = s->round;
		/* After the protect, every x faults: its flush removed them. */
		for (i = round % 2; __atomic_load_n(&s->watch, __ATOMIC_ACQUIRE);
		     i = (i + 2) % s->nr) {
			sleep_ns(s->probe_ns);
			inc_word((unsigned long *)s->x[i] + 1);
		}
	}
	return NULL;
}

/*
 * Read the uffd messages; at the prober's, count the writer's writes to
 * its page from then until the protect has returned and SEEN_SETTLE_US
 * more have passed, as seen_watcher_fn() does.
 */
static void *seen_fault_watcher_fn(void *arg)
{
	struct seen *s = arg;
	struct pollfd pfd = { .fd = s->uffd, .events = POLLIN };
	struct uffd_msg msg;
	int i;

	if (pin_self(s->cpu_watcher))
		__atomic_store_n(&s->err, errno, __ATOMIC_RELAXED);
	/* Spin: a stale TLB entry does not live long (see the prober). */
	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		if (poll(&pfd, 1, 0) != 1 ||
		    read(s->uffd, &msg, sizeof(msg)) != sizeof(msg) ||
		    msg.event != UFFD_EVENT_PAGEFAULT ||
		    msg.arg.pagefault.feat.ptid != (__u32)s->prober_tid ||
		    !__atomic_load_n(&s->watch, __ATOMIC_ACQUIRE))
			continue;
		for (i = 0; i < s->nr; i++)
			if ((msg.arg.pagefault.address & ~(BASE_PAGE_SIZE - 1)) ==
			    (unsigned long)s->x[i])
				break;
		if (i == s->nr)
			continue;
		seen_count(s, i);
	}
	return NULL;
}

/* Spin until *@p is nonzero: false if @ms passed first. */
static bool spin_for(int *p, unsigned long long ms)
{
	unsigned long long end = now_ns() + ms * NSEC_PER_MSEC;

	while (!__atomic_load_n(p, __ATOMIC_ACQUIRE))
		if (now_ns() > end)
			return false;
	return true;
}

static unsigned long seen_total(struct seen *s)
{
	unsigned long sum = 0;
	int i;

	for (i = 0; i < s->nr; i++)
		sum += __atomic_load_n(&s->done[i], __ATOMIC_ACQUIRE);
	return sum;
}

struct seen_result {
	unsigned long rounds;
	unsigned long during;		/* page seen protected before the return */
	unsigned long bad_rounds;	/* a page written twice or more after seen */
	unsigned long worst;
	unsigned long wakes;		/* writer woken by UFFDIO_WAKE */
	const char *skip;
	char err[160];
};

/* The writer has written every x twice since s->mark: its entries are hot. */
static bool seen_writer_went_on(void *arg)
{
	struct seen *s = arg;

	return seen_total(s) >= s->mark + 2 * s->nr;
}

static bool seen_writer_exited(void *arg)
{
	struct seen *s = arg;

	return __atomic_load_n(&s->writer_done, __ATOMIC_ACQUIRE);
}

/*
 * Rounds of: the writer runs; protect [start, start + len), wait until the
 * watcher has seen a page protected and counted, unprotect; for SEEN_MS.
 */
static void seen_rounds(struct seen *s, int uffd, char *start, size_t len,
			unsigned long long ms, struct seen_result *res)
{
	unsigned long long end = now_ns() + ms * NSEC_PER_MSEC;

	while (now_ns() < end) {
		unsigned long long t0;

		s->mark = seen_total(s);
		if (!wait_woken(uffd, start, len, SEEN_WAIT_MS,
				seen_writer_went_on, s, &res->wakes)) {
			snprintf(res->err, sizeof(res->err),
				 "the writer made no progress for 1 s after an unprotect");
			return;
		}
		__atomic_store_n(&s->returned, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&s->seen, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&s->round, s->round + 1, __ATOMIC_RELAXED);
		__atomic_store_n(&s->watch, 1, __ATOMIC_RELEASE);
		t0 = now_ns();
		if (uffd_wp(uffd, start, len, UFFDIO_WRITEPROTECT_MODE_WP)) {
			snprintf(res->err, sizeof(res->err),
				 "UFFDIO_WRITEPROTECT(WP): %s", strerror(errno));
			return;
		}
		__atomic_store_n(&s->returned, 1, __ATOMIC_RELEASE);
		/* The prober walks 2 tables in the time the protect walks 3. */
		s->probe_ns = 3 * (now_ns() - t0) / s->nr;
		if (!spin_for(&s->seen, 1000)) {
			/* A watcher that lags says nothing of the rounds done. */
			if (!res->rounds)
				res->skip = s->by_fault ? "the prober never faulted" :
					    "pagemap shows no uffd-wp bit";
			__atomic_store_n(&s->watch, 0, __ATOMIC_RELEASE);
			return;
		}
		res->rounds++;
		res->during += s->during;
		if (s->after > 1) {
			if (!res->bad_rounds)
				ksft_print_msg("round %lu: %lu writes after %s showed %s\n",
					       res->rounds, s->after,
					       s->by_fault ? "a fault" : "pagemap",
					       "the page write-protected");
			res->bad_rounds++;
		}
		if (s->after > res->worst)
			res->worst = s->after;
		if (uffd_wp(uffd, start, len, 0)) {
			snprintf(res->err, sizeof(res->err),
				 "UFFDIO_WRITEPROTECT(0): %s", strerror(errno));
			return;
		}
	}
}

/*
 * The range: SEEN_PAGES page tables (PMDs), page i of table i written, the
 * rest read (zero-page PTEs for anon), so that the protect walks many
 * entries between two of them. Not the same page of each table: pages 2M
 * apart would compete for one set of a TLB (one entry of QEMU's), and the
 * writer would walk the page tables on every write instead of using a
 * stale entry. NULL, or why not.
 */
static const char *seen_map(struct mem_area *m, enum mem_type type,
			    struct seen *s)
{
	const char *why;
	int i;

	why = mem_area_map(m, type, SEEN_PAGES * (type == MEM_ANON_THP ?
			   1 : UFFD_WP_HPAGE_SIZE / BASE_PAGE_SIZE),
			   "uffd-wp-seen");
	if (why)
		return why;
	if (type == MEM_ANON_THP) {
		memset(m->addr, 1, m->size);
		why = mem_area_check_thp(m);
		if (why)
			return why;
	} else if (madvise(m->addr, m->size, MADV_POPULATE_READ)) {
		return "MADV_POPULATE_READ failed";
	}
	s->nr = SEEN_PAGES;
	for (i = 0; i < s->nr; i++) {
		s->x[i] = m->addr + i * (UFFD_WP_HPAGE_SIZE + BASE_PAGE_SIZE);
		store_word((unsigned long *)s->x[i], 0);
	}
	return NULL;
}

static void seen_test(struct __test_metadata *_metadata, int uffd,
		      const int *cpus, int nr_cpus, enum mem_type type,
		      bool cow, bool by_fault)
{
	struct mem_area m = { .addr = MAP_FAILED, .memfd = -1 };
	struct seen_result res = { 0 };
	pthread_t writer, watcher, hog, prober;
	struct seen s = { .uffd = uffd, .by_fault = by_fault };
	const char *why;

	if (cow)
		SKIP(return, "COW-shared pages are read-only: no writable TLB entry");
	if (mem_type_is_hugetlb(type))
		SKIP(return, "%s", by_fault ? "one hugetlb page per page table" :
		     "pagemap reads hugetlb entries without their page table lock");
	if (nr_cpus < 3 + by_fault)
		SKIP(return, "needs %d CPUs", 3 + by_fault);
	why = seen_map(&m, type, &s);
	if (why) {
		mem_area_unmap(&m);
		SKIP(return, "%s", why);
	}
	ASSERT_EQ(0, uffd_register_wp(uffd, m.addr, m.size))
		TH_LOG("UFFDIO_REGISTER(WP): %s", strerror(errno));

	s.cpu_hog = cpus[0];
	s.cpu_watcher = cpus[1];
	s.cpu_writer = cpus[2];
	s.cpu_prober = cpus[3];
	s.probe_ns = 100 * 1000;
	ASSERT_EQ(0, pin_self(cpus[0]));
	ASSERT_EQ(0, pthread_create(&writer, NULL, seen_writer_fn, &s));
	ASSERT_EQ(0, pthread_create(&watcher, NULL, by_fault ?
				    seen_fault_watcher_fn : seen_watcher_fn, &s));
	ASSERT_EQ(0, pthread_create(&hog, NULL, seen_hog_fn, &s));
	if (by_fault) {
		ASSERT_EQ(0, pthread_create(&prober, NULL, seen_prober_fn, &s));
		while (!__atomic_load_n(&s.prober_tid, __ATOMIC_ACQUIRE))
			;
	}
	/*
	 * A flush after the unlock shows only in rounds where the protecting
	 * thread is scheduled out in between: give the PTE path, which the
	 * other types share, more of them (pagemap, which sees every round).
	 */
	seen_rounds(&s, uffd, m.addr, m.size,
		    type == MEM_ANON && !by_fault ? 2 * SEEN_MS : SEEN_MS, &res);
	__atomic_store_n(&s.stop, 1, __ATOMIC_RELAXED);
	uffd_wp(uffd, m.addr, m.size, 0);
	if (!wait_woken(uffd, m.addr, m.size, SEEN_WAIT_MS,
			seen_writer_exited, &s, &res.wakes))
		snprintf(res.err, sizeof(res.err), "the writer did not stop");
	pthread_join(writer, NULL);
	pthread_join(watcher, NULL);
	pthread_join(hog, NULL);
	if (by_fault)
		pthread_join(prober, NULL);
	mem_area_unmap(&m);

	ASSERT_EQ(0, s.err)
		TH_LOG("pinning a thread or opening pagemap: %s", strerror(s.err));
	ksft_print_msg("%zu KiB, %d pages: %lu rounds, %lu %s, %lu %s (at most %lu), %lu wakes\n",
		       m.size >> 10, s.nr, res.rounds, res.during,
		       "seeing a page protected before the protect returned",
		       res.bad_rounds, "with writes after that", res.worst,
		       res.wakes);
	/* The harness child leaves with _exit(): do not lose the lines. */
	fflush(stdout);
	ASSERT_EQ(0, res.err[0])
		TH_LOG("%s", res.err);
	EXPECT_EQ(0, res.bad_rounds)
		TH_LOG("a page that %s showed protected was still written: %s",
		       by_fault ? "a fault" : "pagemap",
		       "a stale TLB entry outlived the page table lock");
	if (res.skip)
		SKIP(return, "%s", res.skip);
	if (!res.during)
		SKIP(return, "no round saw a page protected before its protect returned");
}

TEST_F(uffd_wp_race, seen_protected_stays_unwritten)
{
	if (self->ready)
		seen_test(_metadata, self->uffd, self->cpus, self->nr_cpus,
			  variant->type, variant->cow, false);
}

TEST_F(uffd_wp_race, fault_seen_protected_stays_unwritten)
{
	if (self->ready)
		seen_test(_metadata, self->uffd, self->cpus, self->nr_cpus,
			  variant->type, variant->cow, true);
}

/*
 * faults_run_during_wp: faults of another thread, on another mapping,
 * keep completing while a long UFFDIO_WRITEPROTECT runs, protect or
 * unprotect.
 */
struct fault_loop {
	int cpu;
	char *area;			/* FAULT_AREA_PAGES */
	int go, stop, pin_err;
	unsigned long long t_from, t_to;	/* the ioctl, set by the caller */
	unsigned long inside;			/* faults begun and done in it */
};

static void *fault_loop_fn(void *arg)
{
	struct fault_loop *f = arg;
	unsigned long long t0, t1, from, to;
	unsigned long i = 0;

	if (pin_self(f->cpu))
		f->pin_err = errno;
	while (!__atomic_load_n(&f->go, __ATOMIC_ACQUIRE))
		;
	while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
		if (++i == FAULT_AREA_PAGES) {
			madvise(f->area, FAULT_AREA_PAGES * BASE_PAGE_SIZE,
				MADV_DONTNEED);
			i = 0;
		}
		t0 = now_ns();
		__atomic_store_n(f->area + i * BASE_PAGE_SIZE, 1, __ATOMIC_RELAXED);
		t1 = now_ns();
		from = __atomic_load_n(&f->t_from, __ATOMIC_ACQUIRE);
		to = __atomic_load_n(&f->t_to, __ATOMIC_ACQUIRE);
		if (from && t0 >= from && (!to || t1 <= to))
			__atomic_add_fetch(&f->inside, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* A registered range of zero-page PTEs. */
struct lock_range {
	char *addr;
	size_t size;
	int uffd;
};

static void lock_range_free(struct lock_range *lr)
{
	if (lr->uffd >= 0)
		close(lr->uffd);
	if (lr->addr != MAP_FAILED)
		munmap(lr->addr, lr->size);
	lr->addr = MAP_FAILED;
	lr->uffd = -1;
}

/* NULL, or why a range of @size cannot be had. */
static const char *lock_range_new(struct lock_range *lr, size_t size)
{
	unsigned long long t = now_ns();
	const char *why;

	lr->size = size;
	lr->uffd = -1;
	why = map_zero_page_range(&lr->addr, size);
	if (why)
		return why;
	lr->uffd = uffd_wp_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP);
	if (lr->uffd < 0 || uffd_register_wp(lr->uffd, lr->addr, size)) {
		lock_range_free(lr);
		return "userfaultfd registration of the range failed";
	}
	ksft_print_msg("%zu MiB (%zu zero-page PTEs) populated in %.1f ms\n",
		       size >> 20, size / BASE_PAGE_SIZE, ms(now_ns() - t));
	return NULL;
}

/* Duration of one UFFDIO_WRITEPROTECT over the range, in ns; 0 on error. */
static unsigned long long timed_wp(struct lock_range *lr, __u64 mode)
{
	unsigned long long t = now_ns();

	if (uffd_wp(lr->uffd, lr->addr, lr->size, mode))
		return 0;
	return now_ns() - t;
}

/* Round up to whole GiB, within [LOCK_RANGE_GB, max]. */
static size_t lock_size(unsigned long long size, size_t max)
{
	size = (size + (1ULL << 30) - 1) & ~((1ULL << 30) - 1);
	if (size < LOCK_RANGE_GB << 30)
		size = LOCK_RANGE_GB << 30;
	return size > max ? max : size;
}

struct lock_run {
	int cpus[2];		/* the ioctl's, the faults' */
	unsigned long inside[2];	/* faults inside the protect, the unprotect */
	unsigned long long dur[2];
	const char *skip;	/* why it cannot run here */
	char err[160];		/* why it failed to run */
};

#define LOCK_ERR(run, fmt, ...)						\
	snprintf((run)->err, sizeof((run)->err), fmt, ##__VA_ARGS__)

/*
 * Size a zero-page range so that a protect and an unprotect of it take at
 * least MIN_IOCTL_MS each, then count the faults that another thread
 * begins and completes inside each of them.
 */
static void lock_test(struct lock_run *run)
{
	size_t size = LOCK_RANGE_GB << 30, max = LOCK_MAX_RANGE_GB << 30;
	struct lock_range lr = { .addr = MAP_FAILED, .uffd = -1 };
	unsigned long long t0 = now_ns(), gib_ns = 0, t, tp, tu, shortest;
	struct fault_loop f = { 0 };
	pthread_t thr;
	long avail;
	int i;

	/* Page tables: 2 MiB per GiB; keep them under a quarter of MemAvailable. */
	avail = meminfo_kb("MemAvailable:");
	if (avail > 0 && max / 512 > (size_t)avail * 1024 / 4)
		max = ((size_t)avail * 1024 / 4 * 512) & ~((1UL << 30) - 1);
	if (size > max) {
		run->skip = "not enough memory for the page tables of a 1 GiB range";
		return;
	}
	if (pin_self(run->cpus[0])) {
		LOCK_ERR(run, "sched_setaffinity: %s", strerror(errno));
		return;
	}
	for (;;) {
		/* Populating costs about as much per GiB as the first. */
		if (gib_ns && now_ns() - t0 + gib_ns * (size >> 30) >
		    LOCK_BUDGET_MS * NSEC_PER_MSEC) {
			run->skip = "populating the range would not fit in the time budget";
			goto out;
		}
		t = now_ns();
		run->skip = lock_range_new(&lr, size);
		if (run->skip)
			goto out;
		if (!gib_ns)
			gib_ns = (now_ns() - t) / (size >> 30);
		tp = timed_wp(&lr, UFFDIO_WRITEPROTECT_MODE_WP);
		tu = timed_wp(&lr, 0);
		if (!tp || !tu) {
			LOCK_ERR(run, "UFFDIO_WRITEPROTECT: %s", strerror(errno));
			goto out;
		}
		ksft_print_msg("%zu MiB: protect %.1f ms, unprotect %.1f ms\n",
			       size >> 20, ms(tp), ms(tu));
		shortest = tp < tu ? tp : tu;
		if (shortest >= MIN_IOCTL_MS * NSEC_PER_MSEC)
			break;
		if (size == max) {
			run->skip = "no range big enough for a long ioctl fits in memory";
			goto out;
		}
		/* Aim at twice the minimum. */
		size = lock_size((unsigned long long)size * 2 * MIN_IOCTL_MS *
				 NSEC_PER_MSEC / shortest, max);
		lock_range_free(&lr);
	}

	f.cpu = run->cpus[1];
	f.area = mmap(NULL, FAULT_AREA_PAGES * BASE_PAGE_SIZE,
		      PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (f.area != MAP_FAILED) {
		madvise(f.area, FAULT_AREA_PAGES * BASE_PAGE_SIZE, MADV_NOHUGEPAGE);
		/* The first fault of an area prepares its anon_vma. */
		store_word((unsigned long *)f.area, 1);
	}
	if (f.area == MAP_FAILED || pthread_create(&thr, NULL, fault_loop_fn, &f)) {
		LOCK_ERR(run, "mmap or pthread_create: %s", strerror(errno));
		goto out;
	}
	__atomic_store_n(&f.go, 1, __ATOMIC_RELEASE);
	sleep_ns(10 * NSEC_PER_MSEC);
	for (i = 0; i < 2; i++) {
		__atomic_store_n(&f.inside, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&f.t_to, 0, __ATOMIC_RELEASE);
		t = now_ns();
		__atomic_store_n(&f.t_from, t, __ATOMIC_RELEASE);
		if (uffd_wp(lr.uffd, lr.addr, lr.size, i ? 0 : UFFDIO_WRITEPROTECT_MODE_WP))
			LOCK_ERR(run, "UFFDIO_WRITEPROTECT: %s", strerror(errno));
		run->dur[i] = now_ns() - t;
		__atomic_store_n(&f.t_to, t + run->dur[i], __ATOMIC_RELEASE);
		/* Faults that began inside it and are still running count once done. */
		sleep_ns(10 * NSEC_PER_MSEC);
		run->inside[i] = __atomic_load_n(&f.inside, __ATOMIC_ACQUIRE);
		__atomic_store_n(&f.t_from, 0, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&f.stop, 1, __ATOMIC_RELEASE);
	pthread_join(thr, NULL);
	munmap(f.area, FAULT_AREA_PAGES * BASE_PAGE_SIZE);
	if (f.pin_err)
		LOCK_ERR(run, "pinning the fault thread: %s", strerror(f.pin_err));
	for (i = 0; i < 2; i++)
		ksft_print_msg("%s of %zu MiB took %.1f ms; another thread did %lu faults in it\n",
			       i ? "unprotect" : "protect", size >> 20,
			       ms(run->dur[i]), run->inside[i]);
out:
	/* The harness child leaves with _exit(): do not lose the lines. */
	fflush(stdout);
	lock_range_free(&lr);
}

TEST_F(uffd_wp_race, faults_run_during_wp)
{
	struct lock_run run = { 0 };

	if (!self->ready)
		return;
	if (variant->type != MEM_ANON || variant->cow)
		SKIP(return, "the faults are on another mapping: anon only");
	if (self->nr_cpus < 2)
		SKIP(return, "needs 2 CPUs");
	run.cpus[0] = self->cpus[0];
	run.cpus[1] = self->cpus[1];
	lock_test(&run);
	if (run.skip)
		SKIP(return, "%s", run.skip);
	ASSERT_EQ(0, run.err[0])
		TH_LOG("%s", run.err);
	EXPECT_LE(FAULTS_INSIDE_MIN, run.inside[0])
		TH_LOG("faults of other threads waited for a whole UFFDIO_WRITEPROTECT(WP)");
	EXPECT_LE(FAULTS_INSIDE_MIN, run.inside[1])
		TH_LOG("faults of other threads waited for a whole UFFDIO_WRITEPROTECT(0)");
}

TEST_HARNESS_MAIN
