// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-wp-race: UFFDIO_WRITEPROTECT against concurrent writers and faults.
 *
 * Write-protecting a range with userfaultfd is a RW->RO change of the page
 * tables whose TLB flush is deferred to the end of the range. A page fault
 * that runs concurrently may observe a protected PTE while another CPU
 * still writes through a stale, writable TLB entry; when that fault then
 * copies the page (wp_page_copy()) the stale writes are lost. Protecting
 * therefore takes mmap_lock for write, unprotecting keeps the read lock.
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
 *    Rounds run for RACE_MS per variant, or for $UFFD_WP_RACE_SECONDS
 *    seconds (soak mode).
 *
 *  - protect_excludes_faults (anon): a fault on another anonymous mapping,
 *    issued from another CPU while a long protect of a large populated
 *    range is in progress, must wait for the protect to return: the
 *    protect holds mmap_lock for write. "Waited" means the fault took at
 *    least 3/4 of the time the ioctl still ran after the fault began
 *    (the ioctl's own return path may be delayed by the host, so the
 *    fault may end a little before the ioctl's caller sees the return).
 *
 *  - unprotect_allows_faults (anon): the same fault during a long
 *    unprotect must not wait: it ends within 1/4 of the time the ioctl
 *    still ran; unprotecting keeps mmap_lock for read.
 *
 *    Both populate the range with read faults (zero-page PTEs: the ioctls
 *    visit and change each of them, but only page tables are allocated,
 *    so the range can be many GiB), measure the duration of the ioctl,
 *    size the range so that it takes at least MIN_IOCTL_MS (a few GiB
 *    under TCG), and start the fault a quarter of that time after the
 *    ioctl was entered. A run in which the fault only started once the
 *    ioctl had returned, or ended between 1/4 and 3/4 of the remaining
 *    time, proves nothing; it is retried with a larger range, and the
 *    test fails if no run can be placed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>

#include "../kselftest_harness.h"

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT		26
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB		(21 << MAP_HUGE_SHIFT)
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif

#define BASE_PAGE_SIZE		4096UL
#define HPAGE_SIZE		(2UL << 20)
#define NR_WRITERS		2
#define NR_CPUS_NEEDED		(NR_WRITERS + 2)
#define SLOT_OFFSET(w)		(8UL * (w))
#define PROC_BUF_SIZE		(256UL * 1024)

#define NSEC_PER_MSEC		1000000ULL
#define NSEC_PER_SEC		1000000000ULL
/* Default length of the race per variant, and the soak override. */
#define RACE_MS			1500
#define RACE_ENV		"UFFD_WP_RACE_SECONDS"
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

/* protect_excludes_faults / unprotect_allows_faults */
#define LOCK_RANGE_GB		1UL
#define LOCK_MAX_RANGE_GB	64UL
#define MIN_IOCTL_MS		50
#define LOCK_ATTEMPTS		4

enum mem_type {
	MEM_ANON,
	MEM_ANON_THP,
	MEM_SHMEM,
	MEM_HUGETLB,
	MEM_ANON_COW,
};

FIXTURE(uffd_wp_race)
{
	char *area;		/* registered region */
	size_t size;		/* its length */
	size_t psize;		/* page size of the memory type */
	unsigned long nr_pages;	/* number of psize pages */
	int memfd;
	int uffd;
	__u64 features;		/* what UFFDIO_API granted */
	int cpus[NR_CPUS_NEEDED];
	int nr_cpus;		/* usable CPUs found, at most NR_CPUS_NEEDED */
};

FIXTURE_VARIANT(uffd_wp_race)
{
	const char *name;
	enum mem_type type;
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
	.type = MEM_ANON_COW,
	.nr_pages = 64,
};

static bool type_is_huge(enum mem_type type)
{
	return type == MEM_ANON_THP || type == MEM_HUGETLB;
}

static unsigned long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static void sleep_ns(unsigned long long ns)
{
	struct timespec ts = {
		.tv_sec = ns / NSEC_PER_SEC,
		.tv_nsec = ns % NSEC_PER_SEC,
	};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static double ms(unsigned long long ns)
{
	return ns / 1e6;
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

static int pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

static pid_t gettid_raw(void)
{
	return syscall(SYS_gettid);
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

/* Supported features, from a throw-away context; 0 with errno if none. */
static __u64 probe_features(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = open_uffd();

	if (fd < 0)
		return 0;
	if (ioctl(fd, UFFDIO_API, &api)) {
		close(fd);
		return 0;
	}
	close(fd);
	return api.features;
}

/* A userfaultfd with the features asked for, -1 on failure. */
static int new_uffd(__u64 features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = open_uffd();

	if (fd < 0)
		return -1;
	if (ioctl(fd, UFFDIO_API, &api)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Register [area, area + size) for write protection; errno on failure. */
static int register_wp(int uffd, void *area, size_t size)
{
	struct uffdio_register reg = {
		.range.start = (unsigned long)area,
		.range.len = size,
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

/*
 * Read a whole /proc file into a static buffer with plain read(2), so that
 * sampling it cannot itself change the address space.
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

/* AnonHugePages of the VMA starting at addr, in kB, -1 if not found. */
static long anon_huge_kb(void *addr)
{
	char key[32], *p;

	if (read_proc("/proc/self/smaps") <= 0)
		return -1;
	snprintf(key, sizeof(key), "\n%lx-", (unsigned long)addr);
	p = strstr(proc_buf, key);
	if (!p && !strncmp(proc_buf, key + 1, strlen(key + 1)))
		p = proc_buf;
	if (!p)
		return -1;
	p = strstr(p, "AnonHugePages:");
	if (!p)
		return -1;
	return strtol(p + strlen("AnonHugePages:"), NULL, 10);
}

/* A key from /proc/meminfo, in kB, -1 if absent. */
static long meminfo_kb(const char *key)
{
	char *p;

	if (read_proc("/proc/meminfo") <= 0)
		return -1;
	p = strstr(proc_buf, key);
	if (!p)
		return -1;
	return strtol(p + strlen(key), NULL, 10);
}

/* The race length in ns: RACE_MS, or $UFFD_WP_RACE_SECONDS. */
static unsigned long long race_duration_ns(void)
{
	const char *s = getenv(RACE_ENV);
	unsigned long secs;

	if (s && *s) {
		secs = strtoul(s, NULL, 0);
		if (secs)
			return secs * NSEC_PER_SEC;
	}
	return RACE_MS * NSEC_PER_MSEC;
}

FIXTURE_SETUP(uffd_wp_race)
{
	__u64 features, want;
	cpu_set_t set;
	unsigned long i;
	int cpu;

	self->memfd = -1;
	self->uffd = -1;
	self->area = MAP_FAILED;
	self->nr_pages = variant->nr_pages;
	self->psize = type_is_huge(variant->type) ? HPAGE_SIZE : BASE_PAGE_SIZE;
	self->size = self->nr_pages * self->psize;

	ASSERT_EQ(0, sched_getaffinity(0, sizeof(set), &set));
	for (cpu = 0; cpu < CPU_SETSIZE && self->nr_cpus < NR_CPUS_NEEDED; cpu++)
		if (CPU_ISSET(cpu, &set))
			self->cpus[self->nr_cpus++] = cpu;

	features = probe_features();
	if (!features && errno)
		SKIP(return, "userfaultfd/UFFDIO_API failed: %s", strerror(errno));
	if (!(features & UFFD_FEATURE_PAGEFAULT_FLAG_WP))
		SKIP(return, "no UFFD_FEATURE_PAGEFAULT_FLAG_WP");
	if (!(features & UFFD_FEATURE_THREAD_ID))
		SKIP(return, "no UFFD_FEATURE_THREAD_ID");
	if ((variant->type == MEM_SHMEM || variant->type == MEM_HUGETLB) &&
	    !(features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
		SKIP(return, "no UFFD_FEATURE_WP_HUGETLBFS_SHMEM");
	want = features & (UFFD_FEATURE_PAGEFAULT_FLAG_WP |
			   UFFD_FEATURE_THREAD_ID |
			   UFFD_FEATURE_EXACT_ADDRESS |
			   UFFD_FEATURE_WP_HUGETLBFS_SHMEM);

	switch (variant->type) {
	case MEM_ANON:
	case MEM_ANON_COW:
		self->area = mmap(NULL, self->size, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (self->area == MAP_FAILED)
			SKIP(return, "mmap failed: %s", strerror(errno));
		madvise(self->area, self->size, MADV_NOHUGEPAGE);
		break;
	case MEM_ANON_THP: {
		size_t len = self->size + HPAGE_SIZE;
		char *p, *aligned;

		p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			SKIP(return, "mmap failed: %s", strerror(errno));
		aligned = (char *)(((unsigned long)p + HPAGE_SIZE - 1) &
				   ~(HPAGE_SIZE - 1));
		if (aligned > p)
			munmap(p, aligned - p);
		if (aligned + self->size < p + len)
			munmap(aligned + self->size, p + len - (aligned + self->size));
		self->area = aligned;
		if (madvise(self->area, self->size, MADV_HUGEPAGE))
			SKIP(return, "MADV_HUGEPAGE failed: %s", strerror(errno));
		break;
	}
	case MEM_SHMEM:
		self->memfd = memfd_create("uffd-wp-race", MFD_CLOEXEC);
		if (self->memfd < 0)
			SKIP(return, "memfd_create failed: %s", strerror(errno));
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
			SKIP(return, "no 2M hugetlb pages: %s", strerror(errno));
		break;
	}

	/* Populate: every PTE/PMD present, writable, dirty; counters 0. */
	for (i = 0; i < self->size; i += BASE_PAGE_SIZE)
		store_word((unsigned long *)(self->area + i), 0);

	if (variant->type == MEM_ANON_THP) {
		long kb = anon_huge_kb(self->area);

		if (kb < (long)(self->size >> 10))
			SKIP(return, "range is not THP backed (AnonHugePages %ld kB of %zu kB)",
			     kb, self->size >> 10);
	}

	self->uffd = new_uffd(want);
	ASSERT_LE(0, self->uffd)
		TH_LOG("userfaultfd with features 0x%llx: %s",
		       (unsigned long long)want, strerror(errno));
	self->features = want;
	if (register_wp(self->uffd, self->area, self->size))
		SKIP(return, "UFFDIO_REGISTER(WP) failed: %s", strerror(errno));
}

FIXTURE_TEARDOWN(uffd_wp_race)
{
	if (self->uffd >= 0)
		close(self->uffd);
	if (self->area != MAP_FAILED)
		munmap(self->area, self->size);
	if (self->memfd >= 0)
		close(self->memfd);
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

static void handle_msg(struct race *r, struct uffd_msg *msg)
{
	unsigned long addr, page;
	__u32 tid;
	int w;

	if (msg->event != UFFD_EVENT_PAGEFAULT ||
	    !(msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
		pthread_mutex_lock(&r->lock);
		if (!r->other_msgs++)
			snprintf(r->bad_desc, sizeof(r->bad_desc),
				 "event 0x%x flags 0x%llx", msg->event,
				 (unsigned long long)msg->arg.pagefault.flags);
		pthread_mutex_unlock(&r->lock);
		return;
	}

	addr = msg->arg.pagefault.address;
	tid = msg->arg.pagefault.feat.ptid;
	page = addr & ~(r->psize - 1);
	for (w = 0; w < NR_WRITERS; w++)
		if ((__u32)__atomic_load_n(&r->tid[w], __ATOMIC_ACQUIRE) == tid)
			break;

	pthread_mutex_lock(&r->lock);
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
	pthread_mutex_unlock(&r->lock);
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

		ret = uffd_wp_ioctl(r->uffd, page, r->psize, 0);
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

	if (pin_self(r->cpu_handler))
		__atomic_store_n(&r->pin_err, errno, __ATOMIC_RELAXED);

	while (!__atomic_load_n(&r->stop_handler, __ATOMIC_ACQUIRE)) {
		if (poll(&pfd, 1, 1) < 0 && errno != EINTR) {
			r->handler_err = errno;
			break;
		}
		for (;;) {
			n = read(r->uffd, &msg, sizeof(msg));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			if (n != sizeof(msg)) {
				pthread_mutex_lock(&r->lock);
				r->handler_err = n < 0 ? errno : EIO;
				pthread_mutex_unlock(&r->lock);
				break;
			}
			handle_msg(r, &msg);
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
	if (uffd_wp_ioctl(r->uffd, start, len, mode)) {
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

/* Stop the writers, whatever state they are in; false if one hangs. */
static bool race_stop(struct race *r, pthread_t *writers, pthread_t handler)
{
	size_t size = r->nr_pages * r->psize;
	bool done = false;
	int i, w;

	__atomic_store_n(&r->stop_writers, 1, __ATOMIC_RELEASE);
	set_gate(r, true);
	for (i = 0; i < 1000 && !done; i++) {
		uffd_wp_ioctl(r->uffd, r->area, size, 0);
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

TEST_F_TIMEOUT(uffd_wp_race, race, 120)
{
	unsigned long long t0, duration = race_duration_ns(), writes[NR_WRITERS];
	struct writer_arg wargs[NR_WRITERS];
	pthread_t writers[NR_WRITERS], handler;
	bool cow = variant->type == MEM_ANON_COW;
	struct race_stats st = { 0 };
	pthread_condattr_t cattr;
	unsigned int rnd = 1;
	unsigned long i, got, lost = 0;
	struct race r = { 0 };
	pid_t child = -1;
	int w;

	if (self->nr_cpus < NR_CPUS_NEEDED)
		SKIP(return, "needs %d CPUs, has %d", NR_CPUS_NEEDED, self->nr_cpus);

	r.area = self->area;
	r.psize = self->psize;
	r.nr_pages = self->nr_pages;
	r.uffd = self->uffd;
	r.exact = self->features & UFFD_FEATURE_EXACT_ADDRESS;
	for (w = 0; w < NR_WRITERS; w++) {
		r.cpu_writer[w] = self->cpus[1 + w];
		r.issued[w] = calloc(r.nr_pages, sizeof(unsigned long));
		ASSERT_NE(NULL, r.issued[w]);
	}
	r.cpu_handler = self->cpus[NR_WRITERS + 1];
	r.resolve_seq = calloc(r.nr_pages, sizeof(unsigned long));
	st.snap1 = calloc(r.nr_pages * NR_WRITERS, sizeof(unsigned long));
	st.snap2 = calloc(r.nr_pages * NR_WRITERS, sizeof(unsigned long));
	st.sel = calloc(r.nr_pages, sizeof(bool));
	ASSERT_TRUE(r.resolve_seq && st.snap1 && st.snap2 && st.sel);
	ASSERT_EQ(0, pthread_mutex_init(&r.lock, NULL));
	ASSERT_EQ(0, pthread_condattr_init(&cattr));
	ASSERT_EQ(0, pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC));
	ASSERT_EQ(0, pthread_cond_init(&r.cond, &cattr));
	ASSERT_EQ(0, pin_self(self->cpus[0]));

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
	while (!st.stop && (now_ns() - t0 < duration || st.rounds < 3)) {
		race_round(&r, &st, cow, &child, &rnd);
		if (!st.stop)
			st.rounds++;
	}

	if (!race_stop(&r, writers, handler)) {
		ksft_print_msg("%s: writers do not stop: giving up\n", variant->name);
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
		       variant->name, r.nr_pages, r.psize >> 10,
		       (now_ns() - t0) / NSEC_PER_MSEC, st.rounds, st.protects);
	ksft_print_msg("%s: %lu racing %lu handler unprotects, %lu pages checked\n",
		       variant->name, st.interleaved, r.resolves,
		       st.interleaved_pages);
	ksft_print_msg("%s: %lu unprotects, %lu forks; uffd-wp messages %lu\n",
		       variant->name, st.unprotects, st.forks, r.wp_msgs);
	ksft_print_msg("%s: other messages %lu, bad %lu, repeated %lu\n",
		       variant->name, r.other_msgs, r.bad_msgs, r.replaced);
	ksft_print_msg("%s: writes %llu + %llu; mismatches a=%lu b=%lu c=%lu\n",
		       variant->name, writes[0], writes[1],
		       st.fail_a, st.fail_b, st.fail_c);
	ksft_print_msg("%s: %lu lost writes, %lu other failures\n",
		       variant->name, lost, st.fail_other);
	if (variant->type == MEM_ANON_THP)
		ksft_print_msg("%s: AnonHugePages %ld kB at the end\n",
			       variant->name, anon_huge_kb(self->area));
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

/* Soak mode: give the race test the time it asks for, plus a margin. */
static void __attribute__((constructor)) race_timeout(void)
{
	unsigned long long ns = race_duration_ns();

	if (ns / NSEC_PER_SEC + 60 > (unsigned long long)_uffd_wp_race_race_object.timeout)
		_uffd_wp_race_race_object.timeout = ns / NSEC_PER_SEC + 120;
}

/*
 * protect_excludes_faults / unprotect_allows_faults: a fault on another
 * mapping from another CPU while a long UFFDIO_WRITEPROTECT runs.
 */
struct fault_thread {
	int cpu;
	char *page;			/* never touched before */
	unsigned long long delay;	/* after go, before the touch */
	int ready;
	int go;
	int pin_err;
	unsigned long long t_touch;	/* touch started */
	unsigned long long t_done;	/* touch completed */
};

static void *fault_fn(void *arg)
{
	struct fault_thread *f = arg;

	if (pin_self(f->cpu))
		f->pin_err = errno;
	/* Warm up clock_gettime() and nanosleep(): only the touch may fault. */
	f->t_touch = now_ns();
	sleep_ns(1000);
	__atomic_store_n(&f->ready, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&f->go, __ATOMIC_ACQUIRE))
		;
	sleep_ns(f->delay);
	f->t_touch = now_ns();
	__atomic_store_n(f->page, 1, __ATOMIC_RELAXED);
	f->t_done = now_ns();
	return NULL;
}

struct lock_range {
	char *area;
	size_t size;
	int uffd;
};

static void lock_range_free(struct lock_range *lr)
{
	if (lr->uffd >= 0)
		close(lr->uffd);
	if (lr->area && lr->area != MAP_FAILED)
		munmap(lr->area, lr->size);
	lr->area = NULL;
	lr->uffd = -1;
}

/*
 * A registered private anon range of 4K PTEs, all present: read faults map
 * the shared zero page, so a range of many GiB costs only its page tables
 * (2 MiB per GiB), and the ioctls still visit and change every PTE.
 */
static int lock_range_new(struct lock_range *lr, size_t size)
{
	unsigned long long t = now_ns();
	size_t i;
	int err;

	lr->size = size;
	lr->uffd = -1;
	lr->area = mmap(NULL, size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (lr->area == MAP_FAILED)
		return -1;
	madvise(lr->area, size, MADV_NOHUGEPAGE);
	if (madvise(lr->area, size, MADV_POPULATE_READ))
		for (i = 0; i < size; i += BASE_PAGE_SIZE)
			__atomic_load_n(lr->area + i, __ATOMIC_RELAXED);
	lr->uffd = new_uffd(UFFD_FEATURE_PAGEFAULT_FLAG_WP);
	if (lr->uffd < 0 || register_wp(lr->uffd, lr->area, size)) {
		err = errno;
		lock_range_free(lr);
		errno = err;
		return -1;
	}
	ksft_print_msg("%zu MiB (%zu zero-page PTEs) populated in %.1f ms\n",
		       size >> 20, size / BASE_PAGE_SIZE, ms(now_ns() - t));
	return 0;
}

/* Duration of one UFFDIO_WRITEPROTECT over the range, in ns; 0 on error. */
static unsigned long long timed_wp(struct lock_range *lr, __u64 mode)
{
	unsigned long long t = now_ns();

	if (uffd_wp_ioctl(lr->uffd, lr->area, lr->size, mode))
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

/*
 * Run the protect (protect == true) or the unprotect of the whole range
 * with a fault racing it; pass == the fault completed after the ioctl
 * returned (protect) or before (unprotect).
 */
static void lock_test(struct __test_metadata *_metadata,
		      struct _test_data_uffd_wp_race *self,
		      const struct _fixture_variant_uffd_wp_race *variant, bool protect)
{
	__u64 mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
	const char *op = protect ? "protect" : "unprotect";
	unsigned long long t_start, t_end, dur = 0, tp, tu, wait, lat;
	size_t size = LOCK_RANGE_GB << 30, max = LOCK_MAX_RANGE_GB << 30;
	size_t touch_len = LOCK_ATTEMPTS * BASE_PAGE_SIZE;
	struct lock_range lr = { .uffd = -1 };
	int attempt, verdict = -1;
	struct fault_thread f;
	pthread_t thr;
	char *touch;
	long avail;

	if (variant->type != MEM_ANON)
		SKIP(return, "mmap_lock exclusion does not depend on the memory type: anon only");
	if (self->nr_cpus < 2)
		SKIP(return, "needs 2 CPUs");

	/* Page tables: 2 MiB per GiB; keep them under a quarter of MemAvailable. */
	avail = meminfo_kb("MemAvailable:");
	if (avail > 0 && max / 512 > (size_t)avail * 1024 / 4)
		max = ((size_t)avail * 1024 / 4 * 512) & ~((1UL << 30) - 1);
	if (size > max)
		size = max;
	ASSERT_LT(0, size)
		TH_LOG("not enough memory for page tables (MemAvailable %ld kB)", avail);

	touch = mmap(NULL, touch_len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, touch);
	madvise(touch, touch_len, MADV_NOHUGEPAGE);
	ASSERT_EQ(0, pin_self(self->cpus[0]));

	for (attempt = 0; attempt < LOCK_ATTEMPTS && verdict < 0; attempt++) {
		/* Size the range so that the ioctl takes MIN_IOCTL_MS. */
		while (!lr.area) {
			ASSERT_EQ(0, lock_range_new(&lr, size))
				TH_LOG("%zu MiB range: %s", size >> 20, strerror(errno));
			tp = timed_wp(&lr, UFFDIO_WRITEPROTECT_MODE_WP);
			tu = timed_wp(&lr, 0);
			ASSERT_TRUE(tp && tu)
				TH_LOG("UFFDIO_WRITEPROTECT: %s", strerror(errno));
			dur = protect ? tp : tu;
			ksft_print_msg("%zu MiB: protect %.1f ms, unprotect %.1f ms\n",
				       size >> 20, ms(tp), ms(tu));
			if (dur >= MIN_IOCTL_MS * NSEC_PER_MSEC || size == max)
				break;
			/* Aim at twice the minimum. */
			size = lock_size((unsigned long long)size * 2 * MIN_IOCTL_MS *
					 NSEC_PER_MSEC / dur, max);
			lock_range_free(&lr);
		}
		if (!protect)
			ASSERT_NE(0, timed_wp(&lr, UFFDIO_WRITEPROTECT_MODE_WP));

		memset(&f, 0, sizeof(f));
		f.cpu = self->cpus[1];
		f.page = touch + attempt * BASE_PAGE_SIZE;
		f.delay = dur / 4;
		ASSERT_EQ(0, pthread_create(&thr, NULL, fault_fn, &f));
		while (!__atomic_load_n(&f.ready, __ATOMIC_ACQUIRE))
			sched_yield();

		t_start = now_ns();
		__atomic_store_n(&f.go, 1, __ATOMIC_RELEASE);
		ASSERT_EQ(0, uffd_wp_ioctl(lr.uffd, lr.area, lr.size, mode))
			TH_LOG("UFFDIO_WRITEPROTECT: %s", strerror(errno));
		t_end = now_ns();
		pthread_join(thr, NULL);
		EXPECT_EQ(0, f.pin_err);
		/* Back to the unprotected state for the next attempt. */
		if (protect)
			ASSERT_NE(0, timed_wp(&lr, 0));

		ksft_print_msg("attempt %d, %zu MiB: %s took %.1f ms\n",
			       attempt + 1, size >> 20, op, ms(t_end - t_start));
		ksft_print_msg("fault at +%.1f ms, done at +%.1f ms (%.1f ms %s the %s returned)\n",
			       ms(f.t_touch - t_start), ms(f.t_done - t_start),
			       f.t_done > t_end ? ms(f.t_done - t_end) : ms(t_end - f.t_done),
			       f.t_done > t_end ? "after" : "before", op);
		fflush(stdout);

		/*
		 * wait: how long the ioctl still ran once the touch began;
		 * lat: how long the touch took. A fault that waited for the
		 * lock ends near the ioctl's return (the return path itself
		 * may be delayed by the host), one that did not ends early.
		 */
		wait = f.t_touch < t_end ? t_end - f.t_touch : 0;
		lat = f.t_done - f.t_touch;
		if (wait && lat >= wait * 3 / 4)
			verdict = protect;
		else if (wait && lat < wait / 4)
			verdict = !protect;
		if (verdict >= 0)
			break;
		ksft_print_msg("%s: inconclusive, retrying with a larger range\n",
			       wait ? "the fault ended in the middle of the ioctl's tail" :
			       "the fault started after the ioctl returned");
		if (size < max) {
			lock_range_free(&lr);
			size = lock_size(size * 2, max);
		}
	}
	lock_range_free(&lr);
	munmap(touch, touch_len);

	ASSERT_LE(0, verdict)
		TH_LOG("could not place a fault inside the %s in %d attempts", op,
		       LOCK_ATTEMPTS);
	ASSERT_EQ(1, verdict)
		TH_LOG("%s", protect ?
		       "a fault completed during UFFDIO_WRITEPROTECT(WP): no mmap write lock" :
		       "a fault waited for UFFDIO_WRITEPROTECT(0): mmap_lock held for write");
}

TEST_F_TIMEOUT(uffd_wp_race, protect_excludes_faults, 300)
{
	lock_test(_metadata, self, variant, true);
}

TEST_F_TIMEOUT(uffd_wp_race, unprotect_allows_faults, 300)
{
	lock_test(_metadata, self, variant, false);
}

TEST_HARNESS_MAIN
