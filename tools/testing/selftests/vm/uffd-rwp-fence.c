// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-rwp-fence: when is a page that UFFDIO_RWPROTECT made inaccessible out
 * of reach of the other CPUs, and what does resolving it grant.
 *
 * A writer thread stores to page i in a loop and counts its stores; its CPU
 * keeps a TLB entry of the page hot (under QEMU TCG until the guest kernel
 * flushes it) while [page i, end) is protected: the page's entry is changed
 * first and flushed last. From the event that says the page is fenced on,
 * the writer may complete one more store (the one in flight), then it blocks
 * in handle_userfault(). More went through a stale TLB entry. The event is
 * the return of the protect (protect_fences_on_return), the monitor reading
 * the RWP fault message of a prober thread that read the page meanwhile
 * (fault_msg_fences), or PAGEMAP_SCAN reporting the page not accessed to the
 * prober meanwhile (pagemap_scan_fences).
 *
 * A resolve, sync (UFFDIO_RWPROTECT with mode 0) or async (a read with
 * UFFD_FEATURE_RWP_ASYNC), must not make a COW-shared page or a page of a
 * PROT_READ VMA writable, must keep soft-dirty tracking, and must not take
 * the write bit from exclusive anonymous pages (resolve_*).
 *
 * Built against uapi headers without UFFD_FEATURE_RWP, every test skips.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>

#include "../kselftest_harness.h"
#include "uffd-wp-common.h"

#define ROUNDS		16
#define SETTLE_NS	(20 * NSEC_PER_MSEC)
#define WARM_STORES	1000UL

/* A CPU each; the monitor tells the prober's messages by thread id. */
enum { CPU_MAIN, CPU_WRITER, CPU_PROBER, CPU_MONITOR, NR_CPUS_NEEDED };

FIXTURE(rwp)
{
	struct mem_area m;	/* registered for RWP, every page written */
	int uffd;		/* sync unless a resolve test sets async */
	__u64 features;
	int cpus[NR_CPUS_NEEDED];
	int nr_cpus;
	bool ready;		/* setup completed, not skipped */
};

FIXTURE_VARIANT(rwp)
{
	const char *name;
	enum mem_type type;
	unsigned long nr_pages;
};

FIXTURE_VARIANT_ADD(rwp, anon) { "anon", MEM_ANON, 32768 };
FIXTURE_VARIANT_ADD(rwp, shmem) { "shmem", MEM_SHMEM, 32768 };
FIXTURE_VARIANT_ADD(rwp, hugetlb) { "hugetlb", MEM_HUGETLB, 24 };
FIXTURE_VARIANT_ADD(rwp, hugetlb_shared) { "hugetlb_shared", MEM_HUGETLB_SHARED, 24 };

#ifdef UFFD_FEATURE_RWP

static unsigned long *target;	/* the writer's word, NULL: idle */
static unsigned long nr_stores;	/* stores the writer completed */
static pthread_t writer;
static bool writer_started;
static int stop_writer;

static unsigned long stores_now(void)
{
	return __atomic_load_n(&nr_stores, __ATOMIC_ACQUIRE);
}

static void *writer_fn(void *arg)
{
	unsigned long *t, seq = 0;

	pin_self(*(int *)arg);
	while (!__atomic_load_n(&stop_writer, __ATOMIC_ACQUIRE)) {
		t = __atomic_load_n(&target, __ATOMIC_ACQUIRE);
		if (!t)
			continue;
		store_word(t, ++seq);
		__atomic_store_n(&nr_stores, seq, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Point the writer at @t (NULL: idle); wait until its TLB entry is hot. */
static void writer_aim(unsigned long *t)
{
	unsigned long s = stores_now();

	__atomic_store_n(&target, t, __ATOMIC_RELEASE);
	while (t && stores_now() - s < WARM_STORES)
		;
}

static int rwprotect(int uffd, void *addr, size_t len, bool protect)
{
	struct uffdio_rwprotect rwp = {
		.range = { .start = (unsigned long)addr, .len = len },
		.mode = protect ? UFFDIO_RWPROTECT_MODE_RWP : 0,
	};

	return ioctl(uffd, UFFDIO_RWPROTECT, &rwp);
}

FIXTURE_SETUP(rwp)
{
	struct mem_area *m = &self->m;
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_RWP };
	const char *why;
	unsigned long i;

	self->uffd = -1;
	m->addr = MAP_FAILED;
	m->memfd = -1;
	self->nr_cpus = allowed_cpus(self->cpus, NR_CPUS_NEEDED);
	why = uffd_wp_features(variant->type, UFFD_FEATURE_RWP | UFFD_FEATURE_THREAD_ID,
			       UFFD_FEATURE_RWP_ASYNC, &self->features);
	if (!why)
		why = mem_area_map(m, variant->type, variant->nr_pages, "uffd-rwp-fence");
	if (why)
		SKIP(return, "%s", why);
	for (i = 0; i < m->nr_pages; i++)
		store_word(page_word(m->addr, m->psize, i), 1);

	/* RWP_ASYNC at UFFDIO_API would make async the mode. */
	self->uffd = uffd_wp_open(self->features & ~UFFD_FEATURE_RWP_ASYNC);
	ASSERT_LE(0, self->uffd)
		TH_LOG("userfaultfd: %s", strerror(errno));
	reg.range.start = (unsigned long)m->addr;
	reg.range.len = m->size;
	ASSERT_EQ(0, ioctl(self->uffd, UFFDIO_REGISTER, &reg))
		TH_LOG("UFFDIO_REGISTER(RWP): %s", strerror(errno));
	ASSERT_TRUE(reg.ioctls & (1ULL << _UFFDIO_RWPROTECT));
	self->ready = true;
}

FIXTURE_TEARDOWN(rwp)
{
	if (writer_started) {
		__atomic_store_n(&stop_writer, 1, __ATOMIC_RELEASE);
		rwprotect(self->uffd, self->m.addr, self->m.size, false);
		pthread_join(writer, NULL);
	}
	if (self->uffd >= 0)
		close(self->uffd);
	mem_area_unmap(&self->m);
}

/* What must mean that the page is fenced, and the prober's part in it. */
enum probe { PROBE_RETURN, PROBE_FAULT, PROBE_SCAN };
static const char * const events[] = { "protect", "fault message", "PAGEMAP_SCAN 'not accessed'" };

/* The prober and the monitor of the race rounds. */
struct race {
	enum probe probe;
	int uffd;
	int pagemap_fd;
	int *cpus;
	unsigned long long delay_ns;	/* from the round's start to the probe */
	char *page;		/* of this round */
	int go, done;		/* rounds started, probed */
	pid_t prober_tid;
	int ioctl_done;		/* the round's protect returned */
	int seen;		/* the event came */
	int in_flight;		/* ... before the protect returned */
	unsigned long at;	/* the writer's stores then */
	int quit;
};

static void race_event(struct race *r)
{
	r->at = stores_now();
	r->in_flight = !__atomic_load_n(&r->ioctl_done, __ATOMIC_ACQUIRE);
	__atomic_store_n(&r->seen, 1, __ATOMIC_RELEASE);
}

/* PAGEMAP_SCAN: is the round's page present and not accessed? */
static bool scan_not_accessed(struct race *r)
{
	struct page_region vec[2];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (unsigned long)r->page,
		.end = (unsigned long)r->page + BASE_PAGE_SIZE,
		.vec = (unsigned long)vec,
		.vec_len = 2,
		.category_inverted = PAGE_IS_ACCESSED,
		.category_mask = PAGE_IS_ACCESSED | PAGE_IS_PRESENT,
		.return_mask = PAGE_IS_ACCESSED | PAGE_IS_PRESENT,
	};

	return ioctl(r->pagemap_fd, PAGEMAP_SCAN, &arg) > 0 &&
	       vec[0].start == (unsigned long)r->page;
}

static void *prober_fn(void *arg)
{
	struct race *r = arg;
	int round = 0;

	pin_self(r->cpus[CPU_PROBER]);
	__atomic_store_n(&r->prober_tid, gettid(), __ATOMIC_RELEASE);
	while (!__atomic_load_n(&r->quit, __ATOMIC_ACQUIRE)) {
		if (__atomic_load_n(&r->go, __ATOMIC_ACQUIRE) == round) {
			/* Sleep: leave the host's CPU time to the writer. */
			sleep_ns(NSEC_PER_MSEC / 10);
			continue;
		}
		sleep_ns(r->delay_ns);
		if (r->probe == PROBE_FAULT)	/* blocks until the resolve */
			load_word((unsigned long *)(r->page + 64));
		while (r->probe == PROBE_SCAN && !__atomic_load_n(&r->ioctl_done, __ATOMIC_ACQUIRE))
			if (scan_not_accessed(r)) {
				race_event(r);
				break;
			}
		__atomic_store_n(&r->done, ++round, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void *monitor_fn(void *arg)
{
	struct race *r = arg;
	struct pollfd pfd = { .fd = r->uffd, .events = POLLIN };
	struct uffd_msg msg;

	pin_self(r->cpus[CPU_MONITOR]);
	while (!__atomic_load_n(&r->quit, __ATOMIC_ACQUIRE)) {
		if (poll(&pfd, 1, 10) <= 0 || read(r->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (r->probe == PROBE_FAULT && msg.event == UFFD_EVENT_PAGEFAULT &&
		    msg.arg.pagefault.feat.ptid == (__u32)r->prober_tid &&
		    (msg.arg.pagefault.address & ~(BASE_PAGE_SIZE - 1)) ==
		    (unsigned long)r->page && !__atomic_load_n(&r->seen, __ATOMIC_ACQUIRE))
			race_event(r);
	}
	return NULL;
}

/*
 * Round i: the writer is hot on page i while [page i, end) is protected; the
 * prober, which never touched page i (so has no TLB entry for it), faults on
 * it or scans it meanwhile. From the event on, at most one more store may
 * land. A fault waits 1/20 of a whole protect: then it is in the window.
 */
static void race_rounds(struct __test_metadata *_metadata, struct mem_area *m, int uffd,
			int *cpus, int nr_cpus, const char *name, enum probe probe)
{
	struct race r = { .probe = probe, .uffd = uffd, .pagemap_fd = -1, .cpus = cpus };
	unsigned long s0, s_ret, s1;
	int i, seen, hits = 0, stale = 0;
	pthread_t prober, monitor;
	unsigned long long t0, t;

	if (nr_cpus < NR_CPUS_NEEDED)
		SKIP(return, "needs %d CPUs, has %d", NR_CPUS_NEEDED, nr_cpus);
	ASSERT_EQ(0, pin_self(cpus[CPU_MAIN]));
	if (probe == PROBE_SCAN)
		r.pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	ASSERT_EQ(probe == PROBE_SCAN, r.pagemap_fd >= 0);
	ASSERT_EQ(0, pthread_create(&monitor, NULL, monitor_fn, &r));
	ASSERT_EQ(0, pthread_create(&prober, NULL, prober_fn, &r));
	while (!__atomic_load_n(&r.prober_tid, __ATOMIC_ACQUIRE))
		sched_yield();
	ASSERT_EQ(0, pthread_create(&writer, NULL, writer_fn, &cpus[CPU_WRITER]));
	writer_started = true;
	t0 = now_ns();
	ASSERT_EQ(0, rwprotect(uffd, m->addr, m->size, true));
	t = now_ns() - t0;
	ASSERT_EQ(0, rwprotect(uffd, m->addr, m->size, false));
	r.delay_ns = probe == PROBE_FAULT ? t / 20 : 0;
	ksft_print_msg("%s: protect of %lu pages: %llu us, probe delay %llu us\n",
		       name, m->nr_pages, t / 1000, r.delay_ns / 1000);

	for (i = 0; i < ROUNDS; i++) {
		r.page = m->addr + i * m->psize;
		__atomic_store_n(&r.seen, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&r.ioctl_done, 0, __ATOMIC_RELEASE);
		writer_aim((unsigned long *)r.page);
		s0 = stores_now();
		__atomic_store_n(&r.go, i + 1, __ATOMIC_RELEASE);
		t0 = now_ns();
		ASSERT_EQ(0, rwprotect(uffd, r.page, m->size - i * m->psize, true));
		t = now_ns() - t0;
		s_ret = stores_now();
		__atomic_store_n(&r.ioctl_done, 1, __ATOMIC_RELEASE);
		if (probe == PROBE_RETURN)
			race_event(&r);
		sleep_ns(SETTLE_NS);
		s1 = stores_now();
		seen = __atomic_load_n(&r.seen, __ATOMIC_ACQUIRE);
		hits += seen && r.in_flight;
		stale += seen && s1 - r.at > 1;
		ksft_print_msg("%s: round %d: %llu us, %lu stores in it; %s %s, %lu after\n",
			       name, i, t / 1000, s_ret - s0, events[probe],
			       !seen ? "none" : r.in_flight ? "in flight" : "returned",
			       seen ? s1 - r.at : 0);
		writer_aim(NULL);
		ASSERT_EQ(0, rwprotect(uffd, m->addr, m->size, false));
		while (__atomic_load_n(&r.done, __ATOMIC_ACQUIRE) != i + 1)
			sched_yield();
	}
	__atomic_store_n(&r.quit, 1, __ATOMIC_RELEASE);
	pthread_join(prober, NULL);
	pthread_join(monitor, NULL);
	if (r.pagemap_fd >= 0)
		close(r.pagemap_fd);
	ksft_print_msg("%s: %s in flight in %d of %d rounds, stale writes after it in %d\n",
		       name, events[probe], hits, ROUNDS, stale);
	fflush(stdout);
	EXPECT_EQ(0, stale)
		TH_LOG("the %s did not mean that the page was fenced", events[probe]);
	if (!stale && !hits && probe != PROBE_RETURN)
		SKIP(return, "no %s came while a protect was in flight", events[probe]);
}

/* Once UFFDIO_RWPROTECT has returned, no stale TLB entry may be left. */
TEST_F_TIMEOUT(rwp, protect_fences_on_return, 120)
{
	if (self->ready)
		race_rounds(_metadata, &self->m, self->uffd, self->cpus, self->nr_cpus,
			    variant->name, PROBE_RETURN);
}

/* Sync mode: a reported RWP fault must mean the page is fenced. */
TEST_F_TIMEOUT(rwp, fault_msg_fences, 120)
{
	if (self->ready)
		race_rounds(_metadata, &self->m, self->uffd, self->cpus, self->nr_cpus,
			    variant->name, PROBE_FAULT);
}

/* PAGEMAP_SCAN: "not accessed" must mean the page is fenced. */
TEST_F_TIMEOUT(rwp, pagemap_scan_fences, 120)
{
	if (self->ready)
		race_rounds(_metadata, &self->m, self->uffd, self->cpus, self->nr_cpus,
			    variant->name, PROBE_SCAN);
}

static sigjmp_buf segv_jmp;

static void segv_handler(int sig)
{
	siglongjmp(segv_jmp, 1);
}

/* What a write after a resolve must do. */
enum check { CHECK_COW, CHECK_PROT_READ, CHECK_SOFT_DIRTY };
static const char * const good[] = { "the child still reads 1", "SIGSEGV", "soft-dirty" };
static const char * const bad[] = { "it reached the child", "no SIGSEGV", "not soft-dirty" };

/*
 * Page @async of @m: protect it, resolve it (sync: UFFDIO_RWPROTECT(0);
 * async, if the kernel has it: a read), write it. With a child forked before
 * the protect, the write must copy the page; in a PROT_READ VMA it must
 * raise SIGSEGV; after clear_refs it must make the page soft-dirty.
 */
static void resolve_rounds(struct __test_metadata *_metadata, struct mem_area *m, int uffd,
			   __u64 features, const char *name, enum check check)
{
	static const char * const modes[] = { "a sync", "an async" };
	struct sigaction sa = { .sa_handler = segv_handler };
	struct uffdio_set_mode mode = { 0 };
	int async, pipefd[2], status;
	unsigned long *p;
	pid_t pid = 0;
	bool ok;
	char c;

	if (check == CHECK_PROT_READ)
		ASSERT_EQ(0, mprotect(m->addr, m->size, PROT_READ));
	ASSERT_EQ(0, sigaction(SIGSEGV, &sa, NULL));
	for (async = 0; async < (features & UFFD_FEATURE_RWP_ASYNC ? 2 : 1); async++) {
		p = page_word(m->addr, m->psize, async);
		mode.enable = async ? UFFD_FEATURE_RWP_ASYNC : 0;
		mode.disable = async ? 0 : UFFD_FEATURE_RWP_ASYNC;
		if (features & UFFD_FEATURE_RWP_ASYNC)
			ASSERT_EQ(0, ioctl(uffd, UFFDIO_SET_MODE, &mode));
		if (check == CHECK_COW) {
			ASSERT_EQ(0, pipe(pipefd));
			pid = fork();
			ASSERT_LE(0, pid);
			if (!pid)	/* exits with what it reads */
				_exit(read(pipefd[0], &c, 1) == 1 ? load_word(p) : 255);
		}
		/* echo 4: write-protect everything, clear soft-dirty. */
		if (check == CHECK_SOFT_DIRTY) {
			ASSERT_EQ(0, uffd_wp_write_file("/proc/self/clear_refs", "4"));
			ASSERT_EQ(0, pagemap_entry(p) & PM_SOFT_DIRTY);
		}
		ASSERT_EQ(0, rwprotect(uffd, p, m->psize, true));
		if (async)
			load_word(p);
		else
			ASSERT_EQ(0, rwprotect(uffd, p, m->psize, false));
		if (sigsetjmp(segv_jmp, 1)) {
			ok = check == CHECK_PROT_READ;
		} else {
			inc_word(p);	/* COW-shared: must fault and copy */
			ok = check != CHECK_PROT_READ;
		}
		if (check == CHECK_SOFT_DIRTY)
			ok = pagemap_entry(p) & PM_SOFT_DIRTY;
		if (check == CHECK_COW) {
			ASSERT_EQ(1, write(pipefd[1], "x", 1));
			ASSERT_EQ(pid, waitpid(pid, &status, 0));
			close(pipefd[0]);
			close(pipefd[1]);
			ok = WIFEXITED(status) && WEXITSTATUS(status) == 1;
		}
		ksft_print_msg("%s: write after %s resolve: %s\n",
			       name, modes[async], ok ? good[check] : bad[check]);
		fflush(stdout);
		EXPECT_TRUE(ok);
	}
}

/* A resolve must not make a page shared with a child writable. */
TEST_F(rwp, resolve_cow_shared)
{
	if (self->ready && self->m.memfd >= 0)
		SKIP(return, "shared memory: parent and child share its pages by design");
	if (self->ready)
		resolve_rounds(_metadata, &self->m, self->uffd, self->features, variant->name,
			       CHECK_COW);
}

/* A resolve must not make a PTE of a VMA without VM_WRITE writable. */
TEST_F(rwp, resolve_no_vm_write)
{
	if (self->ready)
		resolve_rounds(_metadata, &self->m, self->uffd, self->features, variant->name,
			       CHECK_PROT_READ);
}

/* A resolve must keep soft-dirty tracking: the next write sets the bit. */
TEST_F(rwp, resolve_keeps_soft_dirty)
{
	if (!self->ready)
		return;
	if (mem_type_is_hugetlb(variant->type))
		SKIP(return, "hugetlb tracks soft-dirty per VMA, not per page");
	if (!(pagemap_entry(self->m.addr) & PM_SOFT_DIRTY))
		SKIP(return, "no soft-dirty bit in /proc/self/pagemap (CONFIG_MEM_SOFT_DIRTY)");
	resolve_rounds(_metadata, &self->m, self->uffd, self->features, variant->name,
		       CHECK_SOFT_DIRTY);
}

/* Minor faults of this thread writing every page of @m. */
static long write_faults(struct mem_area *m)
{
	long f0 = thread_minflt();
	unsigned long i;

	for (i = 0; i < m->nr_pages; i++)
		inc_word(page_word(m->addr, m->psize, i));
	return thread_minflt() - f0;
}

/*
 * A resolve must not demote: exclusive anonymous pages, writable before or
 * protected and then resolved, are written without a fault.
 */
TEST_F(rwp, resolve_no_demote)
{
	struct mem_area *m = &self->m;
	const char *why;
	long never, after;

	if (!self->ready)
		return;
	if (variant->type != MEM_ANON)
		SKIP(return, "anon only: other types may stay read-only until a write fault");
	why = no_numa_hinting_faults();
	if (why)
		SKIP(return, "%s", why);
	ASSERT_EQ(0, rwprotect(self->uffd, m->addr, m->size, false));
	never = write_faults(m);
	ASSERT_EQ(0, rwprotect(self->uffd, m->addr, m->size, true));
	ASSERT_EQ(0, rwprotect(self->uffd, m->addr, m->size, false));
	after = write_faults(m);
	ksft_print_msg("%s: minor faults writing %lu pages: %ld after a resolve, %ld after both\n",
		       variant->name, m->nr_pages, never, after);
	fflush(stdout);
	EXPECT_EQ(0, never);
	EXPECT_EQ(0, after);
}

#else /* uapi headers without UFFD_FEATURE_RWP */

FIXTURE_SETUP(rwp)
{
	SKIP(return, "built against uapi headers without UFFD_FEATURE_RWP (UFFDIO_RWPROTECT)");
}

FIXTURE_TEARDOWN(rwp)
{
}

TEST_F(rwp, protect_fences_on_return) {}
TEST_F(rwp, fault_msg_fences) {}
TEST_F(rwp, pagemap_scan_fences) {}
TEST_F(rwp, resolve_cow_shared) {}
TEST_F(rwp, resolve_no_vm_write) {}
TEST_F(rwp, resolve_keeps_soft_dirty) {}
TEST_F(rwp, resolve_no_demote) {}

#endif /* UFFD_FEATURE_RWP */

TEST_HARNESS_MAIN
