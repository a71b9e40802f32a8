/* SPDX-License-Identifier: MIT */
/*
 * pool.c - the registered buffer pool (see pool.h for the layout).
 *
 * Creation is the slow path and does everything that could otherwise cost
 * time later: it maps the region on hugepages when it can (fewer TLB
 * misses, and RDMA/AF_XDP registration pins fewer pages), places it on the
 * requested NUMA node, prefaults every page and optionally mlocks it. After
 * that, get/put are a ring operation and never enter the kernel.
 */
#include "pool.h"

#include "internal.h"
#include "ring.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef HPN_HAVE_NUMA
#define HPN_HAVE_NUMA 0
#endif
#if HPN_HAVE_NUMA
#include <numa.h>
#include <numaif.h>
#endif

/* Older headers lack these; the values are the kernel ABI. */
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif
#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB (30 << MAP_HUGE_SHIFT)
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define POOL_ALIGN 64u
#define MB2 (2ull << 20)
#define GB1 (1ull << 30)
/* Normalised pointers are staged on the stack in chunks of this many. */
#define PUT_CHUNK 64u

/* Each "how to fix your machine" warning is given once per process: an
 * application opening many endpoints should not get the same advice for
 * each of them (later pools log it at debug level). */
static int warned_hugepages, warned_mlock, warned_numa;

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* ------------------------------------------------------------------------ */
/* Fast path                                                                 */
/* ------------------------------------------------------------------------ */

static HPN_COLD void put_refused(struct hpn_pool *pool)
{
	__atomic_fetch_add(&pool->bad_puts, 1, __ATOMIC_RELAXED);
}

static HPN_COLD void put_foreign(struct hpn_pool *pool, const void *p)
{
	/* A pointer that is not ours would corrupt the pool if queued; drop it
	 * and say so once per pool: a caller bug, possibly in a loop. */
	put_refused(pool);
	if (!(__atomic_fetch_or(&pool->warned, 1, __ATOMIC_RELAXED) & 1))
		hpn_log(HPN_LOG_ERROR,
			"pool: hpn_pool_put_bulk got %p, which is not a buffer of pool %p "
			"(region %p + %" PRIu64 "); ignored",
			p, (void *)pool, (void *)pool->base, pool->span);
}

static HPN_COLD void put_twice(struct hpn_pool *pool, const void *p)
{
	/* Queued a second time, the buffer would be handed to two owners who
	 * overwrite each other's data: refuse it, once per pool loudly. */
	put_refused(pool);
	if (!(__atomic_fetch_or(&pool->warned, 4, __ATOMIC_RELAXED) & 4))
		hpn_log(HPN_LOG_ERROR,
			"pool %p: buffer %p put back while it is already in the pool (double "
			"hpn_buf_put, or a buffer put after handing it to hpn_send_zc_burst); "
			"ignored, counted in stats.errors",
			(void *)pool, p);
}

static HPN_COLD void put_lent(struct hpn_pool *pool, const void *p)
{
	/* Back in the pool while the send still reads it (or the library
	 * puts it when sent), it would be handed to a second owner. */
	put_refused(pool);
	if (!(__atomic_fetch_or(&pool->warned, 8, __ATOMIC_RELAXED) & 8))
		hpn_log(HPN_LOG_ERROR,
			"pool %p: buffer %p put back while a zero-copy send holds it (hpn_send_zc_burst "
			"took it: the library puts it back once sent); ignored, counted in stats.errors",
			(void *)pool, p);
}

static HPN_COLD void put_overflow(struct hpn_pool *pool, unsigned n)
{
	/* The ring holds every buffer and double puts are refused above, so
	 * this takes two threads putting the same buffer at the same moment. */
	__atomic_fetch_add(&pool->bad_puts, n, __ATOMIC_RELAXED);
	if (!(__atomic_fetch_or(&pool->warned, 2, __ATOMIC_RELAXED) & 2))
		hpn_log(HPN_LOG_ERROR,
		"pool %p: %u buffers put back while the pool was already full "
		"(double hpn_pool_put_bulk?); dropped",
		(void *)pool, n);
}

/* One thread at a time: the buffers put back last come out first (a bulk
 * keeps its own order: put a, b, c and a get of three is a, b, c). */
static inline unsigned stack_pop(struct hpn_pool *pool, void **bufs, unsigned n)
{
	if (hpn_unlikely(pool->top < n))
		return 0;
	pool->top -= n;
	memcpy(bufs, pool->stack + pool->top, n * sizeof(*bufs));
	return n;
}

static inline unsigned stack_push(struct hpn_pool *pool, void *const *bufs, unsigned n)
{
	if (hpn_unlikely(pool->top + n > pool->count))
		return 0;
	memcpy(pool->stack + pool->top, bufs, n * sizeof(*bufs));
	pool->top += n;
	return n;
}

static __attribute__((noinline)) unsigned get_bulk_all(struct hpn_pool *pool, void **bufs, unsigned n)
{
	unsigned got = pool->stack ? stack_pop(pool, bufs, n) : hpn_ring_dequeue_bulk(pool->ring, bufs, n);

	/* Ring entries are data pointers of whole buffers: the index needs
	 * no range check. */
	for (unsigned i = 0; i < got; i++)
		__atomic_store_n(&pool->in_pool[hpn_pool_index(pool, bufs[i])], HPN_POOL_OUT, __ATOMIC_RELAXED);
	return got;
}

HPN_EXPORT unsigned hpn_pool_get_bulk(struct hpn_pool *pool, void **bufs, unsigned n)
{
	/* One buffer of a single-thread pool, the commonest get (a message
	 * buffer, a receive refill): stack_pop inlined with n known, no loop,
	 * no memcpy call. */
	if (n == 1 && pool->stack) {
		if (!stack_pop(pool, bufs, 1))
			return 0;
		__atomic_store_n(&pool->in_pool[hpn_pool_index(pool, bufs[0])], HPN_POOL_OUT, __ATOMIC_RELAXED);
		return 1;
	}
	return get_bulk_all(pool, bufs, n);
}

/* A put may take a buffer in this state: the library's own puts take a
 * lent one (its send is done), the application's (app) do not. */
static inline bool put_refused_state(uint8_t st, bool app)
{
	return st == HPN_POOL_FREE || (app && st == HPN_POOL_LENT);
}

/* One buffer back into a single-thread pool, the commonest put (a received
 * message handed back, a sent buffer released): false leaves anything
 * unusual - foreign, a large or frame buffer, a double put - to the full
 * path, which says what is wrong with it. */
static inline bool stack_put_one(struct hpn_pool *pool, void *p, bool app)
{
	uint64_t off = (uint64_t)((uintptr_t)p - pool->base);
	unsigned idx;
	void *norm;

	if (hpn_unlikely(off >= pool->span || pool->top >= pool->count))
		return false;
	idx = hpn_pool_index(pool, p);
	if (hpn_unlikely(put_refused_state(__atomic_load_n(&pool->in_pool[idx], __ATOMIC_RELAXED), app)))
		return false;
	__atomic_store_n(&pool->in_pool[idx], HPN_POOL_FREE, __ATOMIC_RELAXED);
	norm = (void *)(pool->base + pool->data_off + (uintptr_t)idx * pool->stride);
	return stack_push(pool, &norm, 1); /* room checked above */
}

/* Out of line: its frame (a chunk of pointers staged on the stack) would
 * otherwise be set up for every single put as well. */
static void put_common(struct hpn_pool *pool, void *const *bufs, unsigned n, bool app);

static __attribute__((noinline)) void put_bulk_all(struct hpn_pool *pool, void *const *bufs, unsigned n, bool app)
{
	/* Layout in registers: the compiler cannot prove the stores below
	 * leave *pool alone and would reload it for every buffer. */
	const uintptr_t base = pool->base, data0 = pool->base + (uintptr_t)pool->data_off;
	const uint64_t span = pool->span, stride = pool->stride, magic = pool->div_magic;
	const unsigned shift = pool->div_shift;
	uint8_t *const in_pool = pool->in_pool;
	void *norm[PUT_CHUNK];

	while (n) {
		unsigned k = n < PUT_CHUNK ? n : PUT_CHUNK, m = 0;

		for (unsigned i = 0; i < k; i++) {
			uint64_t off = (uint64_t)((uintptr_t)bufs[i] - base);

			/* One unsigned compare covers both "below" and "above". */
			if (hpn_unlikely(off >= span)) {
				if (pool->large && hpn_pool_owns(pool->large, bufs[i]))
					put_common(pool->large, &bufs[i], 1, app);
				else if (pool->frames && hpn_pool_owns(pool->frames, bufs[i]))
					put_common(pool->frames, &bufs[i], 1, app);
				else
					put_foreign(pool, bufs[i]);
				continue;
			}
			/* Same as hpn_pool_index(), see pool.h. */
			off = (uint64_t)(((unsigned __int128)off * magic) >> 64) >> shift;
			/* Set before the enqueue publishes the buffer (release), so
			 * the getter's clear always comes after it. */
			uint8_t st = __atomic_load_n(&in_pool[off], __ATOMIC_RELAXED);

			if (hpn_unlikely(put_refused_state(st, app))) {
				if (st == HPN_POOL_FREE)
					put_twice(pool, bufs[i]);
				else
					put_lent(pool, bufs[i]);
				continue;
			}
			__atomic_store_n(&in_pool[off], HPN_POOL_FREE, __ATOMIC_RELAXED);
			norm[m++] = (void *)(data0 + (uintptr_t)(off * stride));
		}
		if (hpn_likely(m) &&
		    hpn_unlikely((pool->stack ? stack_push(pool, norm, m) : hpn_ring_enqueue_bulk(pool->ring, norm, m)) != m))
			put_overflow(pool, m);
		bufs += k;
		n -= k;
	}
}

static inline void put_common(struct hpn_pool *pool, void *const *bufs, unsigned n, bool app)
{
	if (n == 1 && pool->stack && stack_put_one(pool, bufs[0], app))
		return;
	put_bulk_all(pool, bufs, n, app);
}

HPN_EXPORT void hpn_pool_put_bulk(struct hpn_pool *pool, void *const *bufs, unsigned n)
{
	put_common(pool, bufs, n, false);
}

/* The application's put: one look at the buffer, as any put. */
void hpn_pool_put_app(struct hpn_pool *pool, void *p)
{
	put_common(pool, &p, 1, true);
}

HPN_EXPORT unsigned hpn_pool_get_sized(struct hpn_pool *pool, size_t len, void **buf)
{
	if (hpn_likely(len <= pool->buf_size))
		return hpn_pool_get_bulk(pool, buf, 1);
	if (pool->large && len <= pool->large->buf_size)
		return hpn_pool_get_bulk(pool->large, buf, 1);
	return 0;
}

HPN_EXPORT size_t hpn_pool_max_size(const struct hpn_pool *pool)
{
	return pool->large ? pool->large->buf_size : pool->buf_size;
}

HPN_EXPORT size_t hpn_pool_buf_size(const struct hpn_pool *pool)
{
	return pool->buf_size;
}

HPN_EXPORT size_t hpn_pool_headroom(const struct hpn_pool *pool)
{
	return pool->headroom;
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                   */
/* ------------------------------------------------------------------------ */

HPN_EXPORT void *hpn_pool_region(const struct hpn_pool *pool, size_t *len)
{
	return hpn_pool_mem(pool, len);
}

void *hpn_pool_mem(const struct hpn_pool *pool, size_t *len)
{
	if (len)
		*len = pool->map_len;
	return pool->map;
}

const char *hpn_pool_describe(const struct hpn_pool *pool)
{
	return pool->desc;
}

int hpn_pool_uses_hugepages(const struct hpn_pool *pool)
{
	return pool->huge_mb;
}

HPN_EXPORT unsigned hpn_pool_avail(const struct hpn_pool *pool)
{
	return pool->stack ? pool->top : hpn_ring_count(pool->ring);
}

int hpn_pool_owns(const struct hpn_pool *pool, const void *p)
{
	return (uint64_t)((uintptr_t)p - pool->base) < pool->span;
}

uint64_t hpn_pool_bad_puts(const struct hpn_pool *pool)
{
	return __atomic_load_n(&pool->bad_puts, __ATOMIC_RELAXED) +
	       (pool->large ? hpn_pool_bad_puts(pool->large) : 0) +
	       (pool->frames ? hpn_pool_bad_puts(pool->frames) : 0);
}

void hpn_pool_attach_frames(struct hpn_pool *pool, struct hpn_pool *frames)
{
	char d[sizeof(pool->desc)];

	pool->frames = frames;
	snprintf(d, sizeof(d), "%s + %s as device frames", pool->desc, frames->desc);
	memcpy(pool->desc, d, sizeof(d));
}

void hpn_pool_attach_large(struct hpn_pool *pool, struct hpn_pool *large)
{
	char d[sizeof(pool->desc)];

	pool->large = large;
	snprintf(d, sizeof(d), "%s + %s for large messages", pool->desc, large->desc);
	memcpy(pool->desc, d, sizeof(d));
}

/* ------------------------------------------------------------------------ */
/* Creation (slow path)                                                      */
/* ------------------------------------------------------------------------ */

/* "64 KiB", "1.5 GiB": exact when it is, else one decimal - or, with
 * exact, in bytes ("9000 B": a buffer size bounds the message size). */
static void fmt_size_x(char *buf, size_t len, uint64_t v, int exact)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	unsigned u = 0;
	uint64_t div = 1;

	while (u + 1 < HPN_ARRAY_SIZE(unit) && v >= div * 1024) {
		div *= 1024;
		u++;
	}
	if (v % div == 0)
		snprintf(buf, len, "%" PRIu64 " %s", v / div, unit[u]);
	else if (exact)
		snprintf(buf, len, "%" PRIu64 " B", v);
	else
		snprintf(buf, len, "%.1f %s", (double)v / (double)div, unit[u]);
}

static void fmt_size(char *buf, size_t len, uint64_t v)
{
	fmt_size_x(buf, len, v, 0);
}

static int read_ulong(const char *path, unsigned long *v)
{
	FILE *f = fopen(path, "re");
	int ok;

	if (!f)
		return -1;
	ok = fscanf(f, "%lu", v) == 1;
	fclose(f);
	return ok ? 0 : -1;
}

/* Reserved and free hugepages of one size (kB as in sysfs); -1 if the
 * kernel does not offer that size. */
static int hugepages_info(unsigned long kb, unsigned long *nr, unsigned long *nfree)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%lukB/nr_hugepages", kb);
	if (read_ulong(path, nr))
		return -1;
	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%lukB/free_hugepages",
		 kb);
	if (read_ulong(path, nfree))
		return -1;
	return 0;
}

/*
 * The advice given when hugepages are missing: how many 2 MB pages the
 * system needs in total for this pool to fit next to what is already used.
 */
static HPN_COLD void hugepage_advice(char *buf, size_t len, size_t bytes, int err_2m)
{
	unsigned long nr = 0, nfree = 0, need = (unsigned long)((bytes + MB2 - 1) / MB2);
	unsigned long want;

	if (hugepages_info(2048, &nr, &nfree)) {
		snprintf(buf, len, "the kernel offers no 2 MB hugepages (CONFIG_HUGETLBFS)");
		return;
	}
	want = nr + (need > nfree ? need - nfree : 0);
	if (need <= nfree)
		/* Enough free pages, yet mmap failed: a cgroup/cpuset limit or
		 * another process raced us. Still say how to get more. */
		snprintf(buf, len,
			 "mmap of %lu x 2 MB hugepages failed (%s) although %lu are free; "
			 "check hugetlb cgroup limits, or reserve more: echo %lu > "
			 "/proc/sys/vm/nr_hugepages or tools/hpn-hugepages %lu",
			 need, strerror(err_2m), nfree, want + need, want + need);
	else
		snprintf(buf, len,
			 "%lu x 2 MB hugepages needed, %lu free of %lu reserved; reserve them "
			 "with: echo %lu > /proc/sys/vm/nr_hugepages or tools/hpn-hugepages %lu",
			 need, nfree, nr, want, want);
}

#if HPN_HAVE_NUMA
/*
 * Prefer (not bind to) the node: MPOL_BIND turns a node running short into
 * SIGBUS (hugetlb) or the OOM killer at fault time, whereas a pool on a
 * neighbour node is merely slower. Placement is checked after prefaulting
 * and a miss is reported as a warning.
 */
static int bind_node(void *addr, size_t len, int node, char *why, size_t why_len)
{
	unsigned long mask[16] = {0};

	if (numa_available() < 0) {
		snprintf(why, why_len, "the kernel has no NUMA support");
		return -1;
	}
	if (node > numa_max_node() || (size_t)node >= sizeof(mask) * 8) {
		snprintf(why, why_len, "node %d does not exist (highest is %d)", node,
			 numa_max_node());
		return -1;
	}
	mask[node / (8 * sizeof(long))] |= 1ul << (node % (8 * sizeof(long)));
	/* maxnode counts one more than the kernel reads (an old quirk). */
	if (mbind(addr, len, MPOL_PREFERRED, mask, (unsigned long)node + 2, 0)) {
		snprintf(why, why_len, "mbind: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int node_of(void *addr)
{
	int node = -1;

	if (get_mempolicy(&node, NULL, 0, addr, MPOL_F_NODE | MPOL_F_ADDR))
		return -1;
	return node;
}
#endif

/* Fault every page in now (writable, so no copy-on-write of the zero page
 * happens later). MADV_POPULATE_WRITE reports failure as an error instead
 * of SIGBUS, which matters for hugetlb on a short node; kernels before 5.14
 * lack it and we touch the pages instead. */
static int prefault(void *addr, size_t len, size_t page)
{
	if (madvise(addr, len, MADV_POPULATE_WRITE) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	for (size_t off = 0; off < len; off += page)
		((volatile char *)addr)[off] = 0;
	return 0;
}

/*
 * Map, place and prefault len bytes on pages of huge_mb MB (0: normal).
 * Returns the mapping or MAP_FAILED with *err set. *node_res gets the node
 * the memory ended up on (-1 if not bound).
 */
static void *map_region(size_t len, int huge_mb, int node, size_t page, int *err, int *node_res,
			char *numa_why, size_t numa_why_len)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	void *addr;
	int ret;

	if (huge_mb == 2)
		flags |= MAP_HUGETLB | MAP_HUGE_2MB;
	else if (huge_mb == 1024)
		flags |= MAP_HUGETLB | MAP_HUGE_1GB;
	/* No MAP_POPULATE: NUMA placement must be set before the first fault.
	 * hugetlb still reserves the pages here, so a shortage fails now. */
	addr = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (addr == MAP_FAILED) {
		*err = errno;
		return MAP_FAILED;
	}
	/* A forked child must not share (RDMA: DMA into the parent's pages
	 * after copy-on-write) nor copy the region; it has no endpoint. */
	madvise(addr, len, MADV_DONTFORK);
	/* Without reserved hugepages, transparent ones still cut TLB misses
	 * where the kernel allows (best effort). */
	if (!huge_mb)
		madvise(addr, len, MADV_HUGEPAGE);
	*node_res = -1;
	numa_why[0] = '\0';
	if (node >= 0) {
#if HPN_HAVE_NUMA
		if (bind_node(addr, len, node, numa_why, numa_why_len) == 0)
			*node_res = node;
#else
		snprintf(numa_why, numa_why_len, "built without libnuma");
#endif
	}
	ret = prefault(addr, len, page);
	if (ret) {
		munmap(addr, len);
		*err = -ret;
		return MAP_FAILED;
	}
#if HPN_HAVE_NUMA
	if (*node_res >= 0) {
		int first = node_of(addr), last = node_of((char *)addr + len - 1);

		if (first != node || last != node) {
			snprintf(numa_why, numa_why_len,
				 "memory landed on node %d..%d: node %d is short of %s", first,
				 last, node, huge_mb ? "free hugepages" : "memory");
			*node_res = first;
		}
	}
#endif
	return addr;
}

static HPN_COLD int pool_fail(struct hpn_pool *pool, int err)
{
	hpn_pool_destroy(pool);
	return err;
}

/*
 * Pick the page size and map. Order: 1 GB pages first only when the
 * region is at least 512 MiB, else a 1 GB page would be mostly waste (and
 * other endpoints may need it); 2 MB next; 1 GB as a last resort for small
 * pools when only those are reserved; then normal pages.
 */
static int pool_map(struct hpn_pool *pool, const struct hpn_pool_params *p)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	int order[3], n = 0, err = 0, err_2m = ENOMEM, node_res = -1;
	char numa_why[160], advice[400], sz[32];
	size_t len = 0;
	void *addr = MAP_FAILED;
	int huge_mb = 0;

	if (p->hugepages != HPN_POOL_OFF) {
		if (pool->span >= GB1 / 2)
			order[n++] = 1024;
		order[n++] = 2;
		if (pool->span < GB1 / 2)
			order[n++] = 1024;
	}
	for (int i = 0; i < n && addr == MAP_FAILED; i++) {
		huge_mb = order[i];
		len = (size_t)round_up(pool->span, (uint64_t)huge_mb << 20);
		addr = map_region(len, huge_mb, p->numa_node, (size_t)huge_mb << 20, &err, &node_res,
				  numa_why, sizeof(numa_why));
		if (addr == MAP_FAILED && huge_mb == 2)
			err_2m = err;
	}
	if (addr == MAP_FAILED && p->hugepages != HPN_POOL_OFF) {
		fmt_size(sz, sizeof(sz), pool->span);
		hugepage_advice(advice, sizeof(advice), (size_t)pool->span, err_2m);
		if (p->hugepages == HPN_POOL_ON)
			return hpn_set_error(-ENOMEM,
					     "pool: hugepages=on but no hugepages for %s: %s "
					     "(or use hugepages=auto)",
					     sz, advice);
		hpn_log(__atomic_exchange_n(&warned_hugepages, 1, __ATOMIC_RELAXED) ? HPN_LOG_DEBUG
										     : HPN_LOG_WARN,
			"pool: no hugepages for %s, using normal %zu KiB pages (more TLB misses): %s",
			sz, page / 1024, advice);
	}
	if (addr == MAP_FAILED) {
		huge_mb = 0;
		len = (size_t)round_up(pool->span, page);
		addr = map_region(len, 0, p->numa_node, page, &err, &node_res, numa_why,
				  sizeof(numa_why));
		if (addr == MAP_FAILED) {
			fmt_size(sz, sizeof(sz), len);
			return hpn_set_error(-ENOMEM, "pool: cannot map %s: %s (lower bufs= or buf_size=)",
					     sz, strerror(err));
		}
	}
	pool->map = addr;
	pool->map_len = len;
	pool->huge_mb = huge_mb;
	pool->node = node_res;
	pool->base = (uintptr_t)addr;
	if (numa_why[0])
		hpn_log(__atomic_exchange_n(&warned_numa, 1, __ATOMIC_RELAXED) ? HPN_LOG_DEBUG
										 : HPN_LOG_WARN,
			"pool: could not place the pool on NUMA node %d (%s); it may be slower",
			p->numa_node, numa_why);
	return 0;
}

static int pool_mlock(struct hpn_pool *pool, enum hpn_pool_mode mode)
{
	struct rlimit rl = {0, 0};
	char sz[32], lim[32];
	int err;

	if (mode == HPN_POOL_OFF)
		return 0;
	if (mlock(pool->map, pool->map_len) == 0) {
		pool->mlocked = 1;
		return 0;
	}
	err = errno;
	fmt_size(sz, sizeof(sz), pool->map_len);
	getrlimit(RLIMIT_MEMLOCK, &rl);
	if (rl.rlim_cur == RLIM_INFINITY)
		snprintf(lim, sizeof(lim), "unlimited");
	else
		fmt_size(lim, sizeof(lim), (uint64_t)rl.rlim_cur);
	if (mode == HPN_POOL_ON)
		return hpn_set_error(-err,
				     "pool: mlock of %s failed (%s); RLIMIT_MEMLOCK is %s: raise it "
				     "(ulimit -l unlimited, or LimitMEMLOCK= / limits.conf memlock) or "
				     "grant CAP_IPC_LOCK, or use mlock=auto",
				     sz, strerror(err), lim);
	/* hugetlb pages are never swapped anyway: nothing to warn about. */
	hpn_log(pool->huge_mb || __atomic_exchange_n(&warned_mlock, 1, __ATOMIC_RELAXED)
			? HPN_LOG_DEBUG
			: HPN_LOG_WARN,
		"pool: mlock of %s failed (%s), the pool may be swapped out; RLIMIT_MEMLOCK is %s: "
		"raise it with ulimit -l unlimited (or LimitMEMLOCK= / limits.conf memlock) or "
		"grant CAP_IPC_LOCK",
		sz, strerror(err), lim);
	return 0;
}

static void pool_describe(struct hpn_pool *pool)
{
	char bs[32], hr[48] = "", total[32], pages[32], node[48] = "";
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	fmt_size_x(bs, sizeof(bs), pool->buf_size, 1);
	if (pool->headroom) {
		char h[32];

		fmt_size_x(h, sizeof(h), pool->headroom, 1);
		snprintf(hr, sizeof(hr), " (%s headroom)", h);
	}
	fmt_size(total, sizeof(total), pool->map_len);
	if (pool->huge_mb == 1024)
		snprintf(pages, sizeof(pages), "1 GB hugepages");
	else if (pool->huge_mb)
		snprintf(pages, sizeof(pages), "%d MB hugepages", pool->huge_mb);
	else
		snprintf(pages, sizeof(pages), "%zu KiB pages", page / 1024);
	if (pool->node >= 0)
		snprintf(node, sizeof(node), ", node %d", pool->node);
	snprintf(pool->desc, sizeof(pool->desc), "%u x %s buffers%s on %s (%s)%s%s", pool->count,
		 bs, hr, pages, total, pool->mlocked ? ", mlocked" : "", node);
}

/*
 * Reciprocal for idx = off / stride with a multiply (Granlund & Montgomery,
 * "Division by invariant integers using multiplication", thm 4.2): with
 * l = ceil(log2 stride), s = N + l and m = ceil(2^s / stride), floor(off*m /
 * 2^s) == floor(off / stride) for all off < 2^N. Offsets are < 64 GiB, so
 * N = 36 would do; N is raised until s >= 64 so the quotient is the high
 * word of one 64x64 multiply shifted right, and m < 2^(N+1) <= 2^59 fits.
 */
static void pool_reciprocal(struct hpn_pool *pool)
{
	unsigned l = 0, nbits, s;

	while ((1ull << l) < pool->stride)
		l++;
	nbits = 64 - l > 36 ? 64 - l : 36;
	s = nbits + l;
	pool->div_magic =
		(uint64_t)((((unsigned __int128)1 << s) + pool->stride - 1) / pool->stride);
	pool->div_shift = s - 64;
}

/* Check parameters, compute the layout. */
static int pool_layout(struct hpn_pool *pool, const struct hpn_pool_params *p)
{
	uint64_t hr, stride, span;

	if (p->count == 0)
		return hpn_set_error(-EINVAL, "pool: the buffer count (bufs) must be at least 1");
	if (p->buf_size == 0)
		return hpn_set_error(-EINVAL, "pool: the buffer size (buf_size) must be at least 1");
	if ((uint64_t)p->buf_size > HPN_POOL_MAX_BYTES || (uint64_t)p->headroom > HPN_POOL_MAX_BYTES)
		return hpn_set_error(-EINVAL,
				     "pool: buf_size %zu / headroom %zu: each must be at most 64 GiB",
				     p->buf_size, p->headroom);
	if ((unsigned)p->hugepages > HPN_POOL_ON || (unsigned)p->mlock > HPN_POOL_ON)
		return hpn_set_error(-EINVAL, "pool: hugepages/mlock mode must be off, auto or on");
	if (p->numa_node < -1)
		return hpn_set_error(-EINVAL, "pool: numa node %d: must be -1 (any) or >= 0",
				     p->numa_node);
	/* Both are <= 64 GiB, so nothing below can overflow 64 bits except
	 * the product, which is checked. */
	hr = round_up(p->headroom, POOL_ALIGN);
	stride = round_up(hr + p->buf_size, POOL_ALIGN);
	if (__builtin_mul_overflow(stride, (uint64_t)p->count, &span) || span > HPN_POOL_MAX_BYTES ||
	    span > SIZE_MAX / 2)
		return hpn_set_error(-EINVAL,
				     "pool: %u buffers of %" PRIu64 " bytes (buf_size %zu + headroom "
				     "%zu, 64-byte aligned) exceed the 64 GiB limit; lower bufs= or "
				     "buf_size=",
				     p->count, stride, p->buf_size, p->headroom);
	pool->count = p->count;
	pool->buf_size = p->buf_size;
	pool->headroom = p->headroom;
	pool->data_off = hr;
	pool->stride = stride;
	pool->span = span;
	pool->node = -1;
	pool_reciprocal(pool);
	return 0;
}

int hpn_pool_create(const struct hpn_pool_params *p, struct hpn_pool **out)
{
	struct hpn_pool *pool = NULL;
	uint64_t phys;
	char sz[32], ram[32];
	void *bufs[256];
	int ret;

	if (!out)
		return hpn_set_error(-EINVAL, "pool: out pointer is NULL");
	*out = NULL;
	if (!p)
		return hpn_set_error(-EINVAL, "pool: params pointer is NULL");
	if (posix_memalign((void **)&pool, 64, sizeof(*pool)))
		return hpn_set_error(-ENOMEM, "pool: out of memory");
	memset(pool, 0, sizeof(*pool));
	ret = pool_layout(pool, p);
	if (ret) {
		free(pool);
		return ret;
	}
	/* Prefaulting more than the machine has would summon the OOM killer
	 * rather than fail: refuse up front. */
	phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
	if (phys && pool->span > phys) {
		fmt_size(sz, sizeof(sz), pool->span);
		fmt_size(ram, sizeof(ram), phys);
		free(pool);
		return hpn_set_error(-ENOMEM,
				     "pool: %s of buffers exceed the machine's %s of RAM; lower bufs= "
				     "or buf_size=",
				     sz, ram);
	}
	ret = pool_map(pool, p);
	if (ret)
		return pool_fail(pool, ret);
	ret = pool_mlock(pool, p->mlock);
	if (ret)
		return pool_fail(pool, ret);
	/* Every buffer starts in the pool. */
	pool->in_pool = malloc(p->count);
	if (!pool->in_pool)
		return pool_fail(pool, hpn_set_error(-ENOMEM, "pool: out of memory for %u buffers",
						     p->count));
	memset(pool->in_pool, HPN_POOL_FREE, p->count);
	if (p->mt_safe) {
		ret = hpn_ring_create(p->count, 0, &pool->ring);
		if (ret)
			return pool_fail(pool, hpn_set_error(ret, "pool: cannot create a ring for %u buffers: %s",
							     p->count, strerror(-ret)));
	} else {
		pool->stack = malloc(p->count * sizeof(*pool->stack));
		if (!pool->stack)
			return pool_fail(pool, hpn_set_error(-ENOMEM, "pool: out of memory for %u buffers", p->count));
		for (unsigned i = 0; i < p->count; i++)
			pool->stack[i] = (char *)pool->map + (uint64_t)i * pool->stride + pool->data_off;
		pool->top = p->count;
	}
	for (unsigned i = 0; pool->ring && i < p->count;) {
		unsigned k = p->count - i < HPN_ARRAY_SIZE(bufs) ? p->count - i
								  : (unsigned)HPN_ARRAY_SIZE(bufs);

		for (unsigned j = 0; j < k; j++)
			bufs[j] = (char *)pool->map + (uint64_t)(i + j) * pool->stride +
				  pool->data_off;
		if (hpn_ring_enqueue_bulk(pool->ring, bufs, k) != k)
			return pool_fail(pool,
					 hpn_set_error(-EINVAL,
						       "pool: the ring holds fewer than %u buffers",
						       p->count));
		i += k;
	}
	pool_describe(pool);
	hpn_log(HPN_LOG_DEBUG, "pool: %s; stride %" PRIu64 ", data at +%" PRIu64, pool->desc,
		pool->stride, pool->data_off);
	*out = pool;
	return 0;
}

void hpn_pool_destroy(struct hpn_pool *pool)
{
	if (!pool)
		return;
	hpn_pool_destroy(pool->large);
	if (pool->ring)
		hpn_ring_destroy(pool->ring);
	free(pool->stack);
	if (pool->map)
		munmap(pool->map, pool->map_len); /* also drops the mlock */
	free(pool->in_pool);
	free(pool);
}
