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
 *    whole never-protected range, then write every page, ROUNDS times: the
 *    writes take no minor fault and keep the data, and the resolves send no
 *    TLB flush (nr_tlb_remote_flush, or without CONFIG_DEBUG_TLBFLUSH the
 *    TLB row of /proc/interrupts, against control windows: see
 *    flush_windows_verdict()).
 *  - flush_is_ranged: protect, resolve, mprotect(PROT_READ) and back on a
 *    few pages, ROUNDS times: none of them flushes the whole mm
 *    (nr_tlb_local_flush_all, CONFIG_DEBUG_TLBFLUSH).
 *  - resolve_keeps_soft_dirty: after clear_refs, pages written once their
 *    protection ended (each of the three ways) are soft-dirty.
 *  - resolve_restores_write: resolving a protected range gives exclusive
 *    anonymous pages their write bit back (no fault).
 *  - protected_write_delivers_once: a write right after a protect returned,
 *    from the CPU that wrote the page just before it, is reported exactly
 *    once (a protect that left the CPU's writable TLB entry in place would
 *    let it through), and resolving it from the fault handler leaves the
 *    page, and the rest of the range, writable without further messages.
 *  - fork_isolation: after fork(), a protect and a resolve in the parent do
 *    not make the pages it shares with the child writable: the parent's
 *    writes fault and copy, the child still reads what was there.
 *  - resolve_keeps_prot_read: a resolve after mprotect(PROT_READ) leaves
 *    the range read-only: a write still raises SIGSEGV.
 *  - invalid_args: argument checking of UFFDIO_WRITEPROTECT is unchanged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>

#include "../kselftest_harness.h"
#include "uffd-wp-common.h"

#define PATTERN			0x5a5a000000000000UL
/* Operations measured per attempt, and attempts at a flush verdict. */
#define ROUNDS			8
#define ATTEMPTS		3
#define FLUSH_TEST_PAGES	8UL

FIXTURE(uffd_wp)
{
	struct mem_area m;	/* the registered range */
	int uffd;
	__u64 features;		/* of self->uffd */
	bool ready;		/* setup completed, not skipped */
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

static unsigned long *base_word(struct mem_area *m, unsigned long i)
{
	return page_word(m->addr, BASE_PAGE_SIZE, i);
}

FIXTURE_SETUP(uffd_wp)
{
	struct mem_area *m = &self->m;
	const char *why;
	unsigned long i;

	self->uffd = -1;
	m->addr = MAP_FAILED;
	m->memfd = -1;
	why = uffd_wp_features(variant->type, 0, 0, &self->features);
	if (!why)
		why = no_numa_hinting_faults();
	if (!why)
		why = mem_area_map(m, variant->type, variant->nr_pages,
				   "uffd-wp-resolve");
	if (why)
		SKIP(return, "%s", why);

	/*
	 * Populate: every PTE/PMD ends up present, writable and dirty; or,
	 * read-faulted after writing the file, writable and clean.
	 */
	for (i = 0; i < m->size / BASE_PAGE_SIZE; i++) {
		unsigned long v = PATTERN + i;

		if (!variant->populate_by_read)
			store_word(base_word(m, i), v);
		else
			ASSERT_EQ(sizeof(v), pwrite(m->memfd, &v, sizeof(v),
						    i * BASE_PAGE_SIZE));
	}
	for (i = 0; variant->populate_by_read && i < m->nr_pages; i++)
		load_word(base_word(m, i));
	if (variant->type == MEM_ANON_THP) {
		why = mem_area_check_thp(m);
		if (why)
			SKIP(return, "%s", why);
	}

	self->uffd = uffd_wp_open(self->features);
	ASSERT_LE(0, self->uffd)
		TH_LOG("userfaultfd: %s", strerror(errno));
	ASSERT_EQ(0, uffd_register_wp(self->uffd, m->addr, m->size))
		TH_LOG("UFFDIO_REGISTER(WP): %s", strerror(errno));
	self->ready = true;
}

FIXTURE_TEARDOWN(uffd_wp)
{
	if (self->uffd >= 0)
		close(self->uffd);
	mem_area_unmap(&self->m);
}

/*
 * Reader on another CPU: keeps the mm and its TLB entries live there, so
 * that a flush of the range has to reach that CPU.
 */
struct reader {
	char *addr;
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
			sum += load_word((unsigned long *)(r->addr + i));
	}
	return (void *)sum;
}

/*
 * Pin the caller to the first CPU it may run on and start a reader of the
 * area on the second. Returns 0, or -1 with fewer than two CPUs.
 */
static int start_reader(struct reader *r, pthread_t *thr, struct mem_area *m)
{
	int cpus[2];

	memset(r, 0, sizeof(*r));
	if (allowed_cpus(cpus, 2) < 2 || pin_self(cpus[0]))
		return -1;
	r->addr = m->addr;
	r->size = m->size;
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

static const char * const verdicts[] = {
	[VERDICT_PASS] = "pass", [VERDICT_FAIL] = "fail",
	[VERDICT_UNSURE] = "cannot tell",
};

static void print_windows(const char *variant, const char *op, int attempt,
			  const struct flush_windows *w)
{
	ksft_print_msg("%s: %s, attempt %d: %s in %d of %d windows (+%lld), control %d: %s\n",
		       variant, op, attempt + 1, flush_counter_name(w->counter),
		       w->op_hits, w->rounds, w->op_total, w->ctl_hits,
		       verdicts[flush_windows_verdict(w)]);
	/* The harness child leaves with _exit(): do not lose the line. */
	fflush(stdout);
}

TEST_F(uffd_wp, unprotect_keeps_write)
{
	struct mem_area *m = &self->m;
	unsigned long i, nr_base = m->size / BASE_PAGE_SIZE, bad = 0;
	unsigned long writes = 0;
	enum verdict v = VERDICT_UNSURE;
	int attempt, round, fails = 0, ret = 0, err = 0;
	enum flush_counter counter;
	struct flush_windows w;
	unsigned long long t0;
	long flt = 0, f0;
	struct reader r;
	long long c0;
	pthread_t thr;

	if (!self->ready)
		return;
	if (start_reader(&r, &thr, m))
		SKIP(return, "needs two CPUs");

	counter = flush_count(FLUSH_REMOTE) >= 0 ? FLUSH_REMOTE : FLUSH_IPIS;
	for (attempt = 0; attempt < ATTEMPTS && !ret; attempt++) {
		memset(&w, 0, sizeof(w));
		w.counter = counter;
		for (round = 0; round < ROUNDS && !ret; round++) {
			flush_window_open(&w, &c0, &t0);
			ret = uffd_wp(self->uffd, m->addr, m->size, 0);
			err = errno;
			flush_window_close(&w, c0, t0);
			f0 = thread_minflt();
			for (i = 0; i < nr_base; i++)
				inc_word(base_word(m, i));
			flt += thread_minflt() - f0;
			writes++;
		}
		print_windows(variant->name, "resolve", attempt, &w);
		v = flush_windows_verdict(&w);
		if (v == VERDICT_PASS)
			break;
		fails += v == VERDICT_FAIL;
	}
	stop_reader(&r, thr);

	for (i = 0; i < nr_base; i++)
		bad += *base_word(m, i) != PATTERN + i + writes;
	ksft_print_msg("%s: %lu x %zuK, written %lu times after a resolve: minflt +%ld\n",
		       variant->name, m->nr_pages, m->psize >> 10, writes, flt);
	fflush(stdout);

	ASSERT_EQ(0, ret)
		TH_LOG("UFFDIO_WRITEPROTECT(0): %s", strerror(err));
	ASSERT_EQ(0, r.pin_err)
		TH_LOG("pinning the reader: %s", strerror(r.pin_err));
	ASSERT_EQ(0, flt)
		TH_LOG("%ld minor fault(s) writing pages after a resolve", flt);
	ASSERT_EQ(0, bad)
		TH_LOG("%lu pages lost their data", bad);
	if (flush_count(counter) < 0)
		SKIP(return, "no nr_tlb_remote_flush, no TLB row in /proc/interrupts");
	if (v != VERDICT_PASS && fails < attempt)
		SKIP(return, "flushes elsewhere in the system hide those of the resolves");
	EXPECT_EQ(VERDICT_PASS, v)
		TH_LOG("the resolves sent TLB flushes");
}

/*
 * Protect, resolve and mprotect() a few pages while the reader runs on
 * another CPU: each operation flushes what it changed, never the whole mm.
 * A full flush here means that the operation opened a second mmu_gather
 * inside the one of its caller, which tlb_finish_mmu() takes for a
 * concurrent gather.
 */
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
	struct mem_area *m = &self->m;
	unsigned long nr = m->nr_pages < FLUSH_TEST_PAGES ?
			   m->nr_pages : FLUSH_TEST_PAGES;
	enum verdict v[ARRAY_SIZE(ops)] = { VERDICT_UNSURE };
	int fails[ARRAY_SIZE(ops)] = { 0 };
	struct flush_windows w[ARRAY_SIZE(ops)];
	int attempt, round, ret = 0, err = 0;
	unsigned int i, done, failed_op = 0;
	size_t len = nr * m->psize;
	unsigned long long t0;
	struct reader r;
	pthread_t thr;
	long long c0;

	if (!self->ready)
		return;
	if (flush_count(FLUSH_LOCAL_ALL) < 0)
		SKIP(return, "no nr_tlb_local_flush_all in /proc/vmstat (CONFIG_DEBUG_TLBFLUSH)");
	if (start_reader(&r, &thr, m))
		SKIP(return, "needs two CPUs");

	/* Until each operation passed, or failed or could not tell 3 times. */
	for (attempt = 0, done = 0; attempt < ATTEMPTS && !ret &&
	     done < ARRAY_SIZE(ops); attempt++) {
		memset(w, 0, sizeof(w));
		for (round = 0; round < ROUNDS && !ret; round++) {
			for (i = 0; i < ARRAY_SIZE(ops) && !ret; i++) {
				w[i].counter = FLUSH_LOCAL_ALL;
				flush_window_open(&w[i], &c0, &t0);
				if (ops[i].prot)
					ret = mprotect(m->addr, len,
						       ops[i].prot);
				else
					ret = uffd_wp(self->uffd, m->addr, len,
						      ops[i].mode);
				err = errno;
				failed_op = i;
				flush_window_close(&w[i], c0, t0);
			}
		}
		for (i = 0, done = 0; i < ARRAY_SIZE(ops) && !ret; i++) {
			if (v[i] != VERDICT_PASS) {
				print_windows(variant->name, ops[i].name,
					      attempt, &w[i]);
				v[i] = flush_windows_verdict(&w[i]);
				fails[i] += v[i] == VERDICT_FAIL;
			}
			done += v[i] == VERDICT_PASS;
		}
	}
	stop_reader(&r, thr);

	ASSERT_EQ(0, ret)
		TH_LOG("%s: %s", ops[failed_op].name, strerror(err));
	ASSERT_EQ(0, r.pin_err)
		TH_LOG("pinning the reader: %s", strerror(r.pin_err));
	/* THPs split since setup would flush as 2048 PTEs each. */
	if (variant->type == MEM_ANON_THP && mem_area_check_thp(m))
		SKIP(return, "%s", mem_area_check_thp(m));
	for (i = 0, done = 0; i < ARRAY_SIZE(ops); i++) {
		EXPECT_FALSE(fails[i] == attempt)
			TH_LOG("%s of %lu pages flushed the whole mm",
			       ops[i].name, nr);
		done += fails[i] == attempt;
	}
	/* A skip must not hide a failure. */
	for (i = 0; i < ARRAY_SIZE(ops) && !done; i++)
		if (v[i] != VERDICT_PASS)
			SKIP(return, "whole-mm flushes elsewhere in the system hide those of %s",
			     ops[i].name);
}

/* How many pages of the area are not soft-dirty, or -1. */
static long count_not_soft_dirty(struct mem_area *m)
{
	unsigned long i;
	uint64_t ent;
	long n = 0;

	for (i = 0; i < m->nr_pages; i++) {
		ent = pagemap_entry(page_word(m->addr, m->psize, i));
		if (!ent)
			return -1;
		n += !(ent & PM_SOFT_DIRTY);
	}
	return n;
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
	struct mem_area *m = &self->m;
	struct uffdio_range range = {
		.start = (unsigned long)m->addr,
		.len = m->size,
	};
	unsigned long i;
	unsigned int h;
	long missed;

	if (!self->ready)
		return;
	if (mem_type_is_hugetlb(variant->type))
		SKIP(return, "hugetlb tracks soft-dirty per VMA, not per page");
	if (count_not_soft_dirty(m))
		SKIP(return, "no soft-dirty bit in /proc/self/pagemap (CONFIG_MEM_SOFT_DIRTY)");

	for (h = 0; h < ARRAY_SIZE(how); h++) {
		if (self->uffd < 0) {
			self->uffd = uffd_wp_open(self->features);
			ASSERT_LE(0, self->uffd);
			ASSERT_EQ(0, uffd_register_wp(self->uffd, m->addr,
						      m->size));
		}
		ASSERT_EQ(0, uffd_wp(self->uffd, m->addr, m->size,
				     UFFDIO_WRITEPROTECT_MODE_WP));
		/* echo 4: write-protect everything, clear soft-dirty. */
		ASSERT_EQ(0, uffd_wp_write_file("/proc/self/clear_refs", "4"))
			TH_LOG("clear_refs: %s", strerror(errno));
		ASSERT_EQ((long)m->nr_pages, count_not_soft_dirty(m));

		if (h == 0)
			ASSERT_EQ(0, uffd_wp(self->uffd, m->addr, m->size, 0));
		if (h == 1)
			ASSERT_EQ(0, ioctl(self->uffd, UFFDIO_UNREGISTER,
					   &range));
		if (h >= 1) {
			close(self->uffd);
			self->uffd = -1;
		}

		for (i = 0; i < m->nr_pages; i++)
			inc_word(page_word(m->addr, m->psize, i));
		missed = count_not_soft_dirty(m);
		ksft_print_msg("%s: after %s, %ld of %lu written pages not soft-dirty\n",
			       variant->name, how[h], missed, m->nr_pages);
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
	struct mem_area *m = &self->m;
	long flt0, flt1;
	unsigned long i;

	if (!self->ready)
		return;

	ASSERT_EQ(0, uffd_wp(self->uffd, m->addr, m->size,
			     UFFDIO_WRITEPROTECT_MODE_WP));
	ASSERT_EQ(0, uffd_wp(self->uffd, m->addr, m->size, 0));
	flt0 = thread_minflt();
	for (i = 0; i < m->nr_pages; i++)
		inc_word(page_word(m->addr, m->psize, i));
	flt1 = thread_minflt();
	ksft_print_msg("%s: writing %lu resolved pages: minflt +%ld\n",
		       variant->name, m->nr_pages, flt1 - flt0);
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
		/* Counted before the resolve wakes the writer up. */
		__atomic_add_fetch(&h->wp_msgs, 1, __ATOMIC_SEQ_CST);
		addr = msg.arg.pagefault.address & ~(h->psize - 1);
		if (uffd_wp(h->uffd, (void *)addr, h->psize, 0))
			h->err = errno;
	}
	return NULL;
}

TEST_F(uffd_wp, protected_write_delivers_once)
{
	struct mem_area *m = &self->m;
	unsigned long i, nr_base = m->size / BASE_PAGE_SIZE;
	unsigned long *first = base_word(m, 0);
	struct handler h = { 0 };
	int pipefd[2], cpu, k;
	pthread_t thr;

	if (!self->ready)
		return;
	/* The stale TLB entry to look for is the one of this CPU. */
	ASSERT_EQ(1, allowed_cpus(&cpu, 1));
	ASSERT_EQ(0, pin_self(cpu));

	ASSERT_EQ(0, pipe2(pipefd, O_CLOEXEC));
	h.uffd = self->uffd;
	h.stop_fd = pipefd[0];
	h.psize = m->psize;
	ASSERT_EQ(0, pthread_create(&thr, NULL, handler_fn, &h));

	/*
	 * Write the page (its writable TLB entry is hot), protect it, write
	 * it again: the second write must block until the handler resolved.
	 */
	for (k = 0; k < ROUNDS; k++) {
		store_word(first, 2 * k);
		ASSERT_EQ(0, uffd_wp(self->uffd, m->addr, m->psize,
				     UFFDIO_WRITEPROTECT_MODE_WP))
			TH_LOG("UFFDIO_WRITEPROTECT(WP): %s", strerror(errno));
		store_word(first, 2 * k + 1);
		if (__atomic_load_n(&h.wp_msgs, __ATOMIC_SEQ_CST) != k + 1)
			break;
	}
	EXPECT_EQ(ROUNDS, k)
		TH_LOG("write %d after a protect was not reported: stale TLB entry",
		       k + 1);
	EXPECT_EQ(2 * k - 1, load_word(first));

	/* The first page is resolved, the rest never was protected. */
	for (i = 0; i < nr_base; i++)
		inc_word(base_word(m, i));
	poll(NULL, 0, 100);

	EXPECT_EQ(k, __atomic_load_n(&h.wp_msgs, __ATOMIC_SEQ_CST));
	EXPECT_EQ(0, __atomic_load_n(&h.other_msgs, __ATOMIC_SEQ_CST));

	ASSERT_EQ(1, write(pipefd[1], "x", 1));
	pthread_join(thr, NULL);
	close(pipefd[0]);
	close(pipefd[1]);

	EXPECT_EQ(0, h.err)
		TH_LOG("fault handler: %s", strerror(h.err));
	EXPECT_EQ(2 * k, *first);
	for (i = 1; i < nr_base; i++)
		if (*base_word(m, i) != PATTERN + i + 1)
			break;
	EXPECT_EQ(nr_base, i)
		TH_LOG("page %lu lost its data", i);
}

/*
 * A resolve may give a page its write bit only if it is exclusive to the
 * process. After fork() (no UFFD_FEATURE_EVENT_FORK: the child is not
 * registered) every private page is shared with the child; the parent then
 * protects, resolves and writes every page. Each of those writes must fault
 * (and copy), and the child must still read what the pages held at fork().
 */
TEST_F(uffd_wp, fork_isolation)
{
	unsigned long i, bad = 0, nr_base = self->m.size / BASE_PAGE_SIZE;
	struct mem_area *m = &self->m;
	int go[2], done[2], status;
	long flt0, flt1;
	pid_t pid;
	char c;

	if (!self->ready)
		return;
	if (m->memfd >= 0)
		SKIP(return, "shared memory: parent and child share its pages by design");

	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(done));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		for (i = 0; i < nr_base; i++)
			bad += load_word(base_word(m, i)) != PATTERN + i;
		_exit(write(done[1], &bad, sizeof(bad)) == sizeof(bad) ? 0 : 2);
	}

	ASSERT_EQ(0, uffd_wp(self->uffd, m->addr, m->size,
			     UFFDIO_WRITEPROTECT_MODE_WP));
	ASSERT_EQ(0, uffd_wp(self->uffd, m->addr, m->size, 0));
	flt0 = thread_minflt();
	for (i = 0; i < nr_base; i++)
		store_word(base_word(m, i), ~(PATTERN + i));
	flt1 = thread_minflt();
	ASSERT_EQ(1, write(go[1], "x", 1));
	ASSERT_EQ(sizeof(bad), read(done[0], &bad, sizeof(bad)));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, status);
	close(go[0]);
	close(go[1]);
	close(done[0]);
	close(done[1]);

	ksft_print_msg("%s: parent wrote %lu pages after protect + resolve: minflt +%ld\n",
		       variant->name, m->nr_pages, flt1 - flt0);
	ksft_print_msg("%s: the child saw %lu words changed\n",
		       variant->name, bad);
	fflush(stdout);
	EXPECT_EQ(0, bad)
		TH_LOG("the parent's writes reached the child's pages");
	EXPECT_LE((long)m->nr_pages, flt1 - flt0)
		TH_LOG("pages shared with the child were written without a fault");
	for (i = 0; i < nr_base; i++)
		if (load_word(base_word(m, i)) != ~(PATTERN + i))
			break;
	EXPECT_EQ(nr_base, i)
		TH_LOG("the parent lost its write to page %lu", i);
}

static sigjmp_buf segv_jmp;

static void segv_handler(int sig)
{
	siglongjmp(segv_jmp, 1);
}

/* Writes to @p: false if that raised SIGSEGV (the handler is installed). */
static bool try_write(unsigned long *p)
{
	if (sigsetjmp(segv_jmp, 1))
		return false;
	inc_word(p);
	return true;
}

/* Number of base pages of @m that a write reaches without SIGSEGV. */
static unsigned long count_writable(struct mem_area *m)
{
	struct sigaction sa = { .sa_handler = segv_handler }, old;
	unsigned long i, n = 0;

	sigaction(SIGSEGV, &sa, &old);
	for (i = 0; i < m->size / BASE_PAGE_SIZE; i++)
		n += try_write(base_word(m, i));
	sigaction(SIGSEGV, &old, NULL);
	return n;
}

/*
 * A VMA without VM_WRITE stays read-only: protect, mprotect(PROT_READ),
 * resolve, and every write still raises SIGSEGV; mprotect() back to
 * PROT_READ | PROT_WRITE makes all pages writable again.
 */
TEST_F(uffd_wp, resolve_keeps_prot_read)
{
	struct mem_area *m = &self->m;
	unsigned long n;

	if (!self->ready)
		return;

	ASSERT_EQ(0, uffd_wp(self->uffd, m->addr, m->size,
			     UFFDIO_WRITEPROTECT_MODE_WP));
	ASSERT_EQ(0, mprotect(m->addr, m->size, PROT_READ));
	ASSERT_EQ(0, uffd_wp(self->uffd, m->addr, m->size, 0));
	n = count_writable(m);
	EXPECT_EQ(0, n)
		TH_LOG("%lu pages of a PROT_READ range were writable after a resolve", n);
	ASSERT_EQ(0, mprotect(m->addr, m->size, PROT_READ | PROT_WRITE));
	n = count_writable(m);
	EXPECT_EQ(m->size / BASE_PAGE_SIZE, n);
}

TEST_F(uffd_wp, invalid_args)
{
	char *area = self->m.addr, *other;
	size_t psize = self->m.psize;

	if (!self->ready)
		return;

	/* validate_range(): alignment and length. */
	EXPECT_EQ(-1, uffd_wp(self->uffd, area + 1, BASE_PAGE_SIZE, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, uffd_wp(self->uffd, area, 0, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, uffd_wp(self->uffd, area, BASE_PAGE_SIZE + 1, 0));
	EXPECT_EQ(EINVAL, errno);

	/* Unknown mode bits, and WP together with DONTWAKE. */
	EXPECT_EQ(-1, uffd_wp(self->uffd, area, psize, 1 << 5));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, uffd_wp(self->uffd, area, psize,
			      UFFDIO_WRITEPROTECT_MODE_WP |
			      UFFDIO_WRITEPROTECT_MODE_DONTWAKE));
	EXPECT_EQ(EINVAL, errno);

	/* hugetlb: ranges must be aligned to the huge page size. */
	if (mem_type_is_hugetlb(variant->type)) {
		EXPECT_EQ(-1, uffd_wp(self->uffd, area + BASE_PAGE_SIZE,
				      psize, 0));
		EXPECT_EQ(EINVAL, errno);
		EXPECT_EQ(-1, uffd_wp(self->uffd, area, BASE_PAGE_SIZE, 0));
		EXPECT_EQ(EINVAL, errno);
	}

	/* A range that is not registered. */
	other = mmap(NULL, BASE_PAGE_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, other);
	EXPECT_EQ(-1, uffd_wp(self->uffd, other, BASE_PAGE_SIZE, 0));
	EXPECT_EQ(ENOENT, errno);
	munmap(other, BASE_PAGE_SIZE);

	/* The valid forms still work: DONTWAKE alone, and plain resolve. */
	EXPECT_EQ(0, uffd_wp(self->uffd, area, psize,
			     UFFDIO_WRITEPROTECT_MODE_DONTWAKE));
	EXPECT_EQ(0, uffd_wp(self->uffd, area, self->m.size, 0));
}

TEST_HARNESS_MAIN
