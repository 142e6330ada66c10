/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the uffd-wp-* selftests: the memory types under test, a
 * userfaultfd registered for write protection, CPU pinning, the counters
 * read from /proc, and the rule that turns TLB flush counts, which the rest
 * of the system adds to, into a verdict.
 *
 * Helpers do not fail a test themselves: they return -1 with errno, or a
 * reason to skip, and the test decides.
 */
#ifndef __UFFD_WP_COMMON_H__
#define __UFFD_WP_COMMON_H__

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

#define BASE_PAGE_SIZE		4096UL
#define UFFD_WP_HPAGE_SIZE	(2UL << 20)
#define NSEC_PER_MSEC		1000000ULL
#define NSEC_PER_SEC		1000000000ULL
#ifndef BIT_ULL
#define BIT_ULL(nr)		(1ULL << (nr))
#endif
#ifndef PM_SOFT_DIRTY
#define PM_SOFT_DIRTY		BIT_ULL(55)	/* in /proc/self/pagemap */
#endif
#ifndef PM_UFFD_WP
#define PM_UFFD_WP		BIT_ULL(57)
#endif

enum mem_type {
	MEM_ANON,		/* private anonymous 4K pages */
	MEM_ANON_THP,		/* private anonymous, PMD-mapped THPs */
	MEM_SHMEM,		/* shared memfd */
	MEM_HUGETLB,		/* private 2M hugetlb */
	MEM_HUGETLB_SHARED,	/* shared 2M hugetlb memfd */
};

struct mem_area {
	char *addr;
	size_t size;
	size_t psize;		/* page size of the type */
	unsigned long nr_pages;	/* of psize */
	int memfd;		/* shared types, else -1 */
};

/* One real load or store per call, as READ_ONCE()/WRITE_ONCE() would do. */
static inline unsigned long load_word(unsigned long *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void store_word(unsigned long *p, unsigned long v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static inline void inc_word(unsigned long *p)
{
	store_word(p, load_word(p) + 1);
}

/* The first word of the @i-th page of @size bytes at @addr. */
static inline unsigned long *page_word(char *addr, size_t size,
				       unsigned long i)
{
	return (unsigned long *)(addr + i * size);
}

unsigned long long now_ns(void);
void sleep_ns(unsigned long long ns);

int pin_self(int cpu);
int allowed_cpus(int *cpus, int max);
const char *no_numa_hinting_faults(void);

const char *uffd_wp_features(enum mem_type type, __u64 required,
			     __u64 optional, __u64 *features);
int uffd_wp_open(__u64 features);
int uffd_register_wp(int uffd, void *addr, size_t len);
int uffd_wp(int uffd, void *addr, size_t len, __u64 mode);

bool mem_type_is_hugetlb(enum mem_type type);
const char *mem_area_map(struct mem_area *m, enum mem_type type,
			 unsigned long nr_pages, const char *name);
const char *mem_area_check_thp(struct mem_area *m);
void mem_area_unmap(struct mem_area *m);
const char *map_zero_page_range(char **addr, size_t size);

long long vmstat_read(const char *name);
long long tlb_shootdowns(void);
long meminfo_kb(const char *key);
long thread_minflt(void);
uint64_t pagemap_entry(void *addr);
uint64_t pagemap_read(int fd, void *addr);
int uffd_wp_write_file(const char *path, const char *text);

/*
 * Flush counters. The nr_tlb_* events of /proc/vmstat exist only with
 * CONFIG_DEBUG_TLBFLUSH; the "TLB" row of /proc/interrupts counts the
 * shootdown IPIs received, flushes of all processes alike.
 */
enum flush_counter {
	FLUSH_REMOTE,		/* nr_tlb_remote_flush: flushes sent */
	FLUSH_LOCAL_ALL,	/* nr_tlb_local_flush_all: whole-mm flushes */
	FLUSH_LOCAL_ONE,	/* nr_tlb_local_flush_one */
	FLUSH_IPIS,		/* TLB row of /proc/interrupts */
};

long long flush_count(enum flush_counter which);
const char *flush_counter_name(enum flush_counter which);

enum verdict { VERDICT_PASS, VERDICT_FAIL, VERDICT_UNSURE };

/*
 * Windows around an operation that must not flush, each followed by a
 * control window of the same length without it: how many saw a flush.
 */
struct flush_windows {
	enum flush_counter counter;
	int rounds;
	int op_hits;
	int ctl_hits;
	long long op_total;
};

void flush_window_open(struct flush_windows *w, long long *start,
		       unsigned long long *t0);
void flush_window_close(struct flush_windows *w, long long start,
			unsigned long long t0);
enum verdict flush_windows_verdict(const struct flush_windows *w);

#endif /* __UFFD_WP_COMMON_H__ */
