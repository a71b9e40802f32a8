/* SPDX-License-Identifier: MIT */
/*
 * pool.h - the registered buffer pool every endpoint owns (internal).
 *
 * One contiguous mapping cut into `count` equal slots of `stride` bytes:
 *
 *   slot i:  [ headroom, rounded up to 64 | data: buf_size | pad to 64 ]
 *            ^ elem = base + i*stride     ^ data pointer, 64-byte aligned
 *
 * Being one region, it is registered with a backend (RDMA MR, AF_XDP UMEM)
 * in a single call (hpn_pool_mem), and any pointer into a slot identifies
 * its buffer, so plugins may hand back pointers they moved into the
 * headroom or the payload.
 *
 * Free buffers live in a lock-free ring (ring.h); get/put are one ring
 * operation plus, for put, one multiply per buffer: no syscall, lock or
 * allocation. The region is prefaulted at creation so the fast path never
 * page-faults.
 *
 * The exported part (get/put bulk, buf_size, headroom) is declared in
 * <hpn/plugin.h> for backends; the rest is the core's.
 */
#ifndef HPN_POOL_H
#define HPN_POOL_H

#include <hpn/plugin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef HPN_EXPORT
#define HPN_EXPORT __attribute__((visibility("default")))
#endif

/* Policy for hugepages and mlock. */
enum hpn_pool_mode {
	HPN_POOL_OFF = 0,  /* don't */
	HPN_POOL_AUTO = 1, /* try; fall back with one warning saying how to fix it */
	HPN_POOL_ON = 2,   /* required: failure is an error */
};

struct hpn_pool_params {
	unsigned count;  /* number of buffers, >= 1 */
	size_t buf_size; /* usable bytes after the data pointer, >= 1 */
	size_t headroom; /* bytes in front of the data pointer (backend headers) */
	/* OFF: normal pages. AUTO: 2 MB or 1 GB hugepages if free, else normal
	 * pages with one warning. ON: -ENOMEM if no hugepages are free. */
	enum hpn_pool_mode hugepages;
	/* AUTO: mlock, warn once on failure. ON: failure is an error. */
	enum hpn_pool_mode mlock;
	/* -1: any node. >= 0: place the memory on that NUMA node (needs
	 * HPN_HAVE_NUMA); failure to do so is a warning, never an error. */
	int numa_node;
	/* 0: one thread at a time uses the pool (its free list is a plain
	 * stack: no atomics at all). 1: any threads concurrently (a lock-free
	 * ring). */
	int mt_safe;
};

/* Where a buffer is (pool->in_pool[idx]). */
enum hpn_pool_state {
	HPN_POOL_OUT = 0,  /* taken: the application or the library holds it */
	HPN_POOL_FREE = 1, /* in the pool */
	/* Handed to hpn_send_zc_burst: the library's until it is sent. A
	 * backend may reuse a sent buffer without the pool (af_xdp's fill
	 * ring, DPDK's mempool cache): whatever gives a buffer to the
	 * application clears LENT (hpn_pool_handed_out), and the library's
	 * own puts take LENT buffers as OUT ones. */
	HPN_POOL_LENT = 2,
};

/* Bytes of all buffer slots together may not exceed this. */
#define HPN_POOL_MAX_BYTES (64ull << 30)

struct hpn_ring;

/*
 * Defined here only so the core can inline hpn_pool_elem(); everything else
 * goes through the functions below. The first cache line holds what the
 * fast path reads; only a single-threaded pool's stack top is written there
 * (its one thread owns the line anyway).
 */
struct hpn_pool {
	/* Free buffers, as data pointers: a lock-free ring when threads share
	 * the pool (mt_safe), else a stack - the buffer put back last is the
	 * next one out, still in cache (a ring would cycle through every
	 * buffer: measured on dpdk/memif, 1400 B stream, the working set of
	 * 4096 frames cost 25 % against 1536). */
	struct hpn_ring *ring;
	void **stack;
	unsigned top;
	uintptr_t base;        /* first slot (== start of the mapping) */
	uint64_t span;         /* count * stride: bytes of all slots */
	uint64_t stride;       /* bytes per slot, a multiple of 64 */
	uint64_t data_off;     /* headroom rounded up to 64 */
	/* idx = (off * div_magic) >> 64 >> div_shift == off / stride for every
	 * off < span: a division by a run-time value costs 25-90 cycles per
	 * buffer, this costs ~4 (Granlund-Montgomery, see pool.c). */
	uint64_t div_magic;
	unsigned div_shift;
	unsigned count;
	/* One byte per buffer (enum hpn_pool_state): FREE while it is in the
	 * free ring - a second put of it would give it two owners, so it is
	 * refused - and LENT while a zero-copy send holds it, so the
	 * application can neither put it back nor send it again meanwhile.
	 * Relaxed atomics: the ring's release/acquire orders them between
	 * threads; a byte store per buffer is all the fast path pays. */
	uint8_t *in_pool;
	/* Buffers for messages larger than buf_size (a second pool, owned by
	 * this one; NULL when every message fits a buffer). Pointers past this
	 * region belong to it: puts, meta blocks and ownership checks look
	 * there on their cold path, so small buffers pay nothing for it. */
	struct hpn_pool *large;
	/* Device frames (frame backends: af_xdp's UMEM chunks), a third
	 * class the backend asked for (hpn_core_frames); not owned: the
	 * endpoint destroys it after the backend let go of it. Found like
	 * the large class, on the cold path. */
	struct hpn_pool *frames;

	/* Cold. */
	uint64_t bad_puts; /* puts refused: foreign pointers, double puts, puts of lent buffers */
	size_t buf_size; /* as requested */
	size_t headroom; /* as requested */
	void *map;       /* the whole mapping, for munmap and registration */
	size_t map_len;
	int huge_mb;     /* 0, 2 or 1024 */
	int mlocked;
	int node;        /* node the memory is on, -1 if not bound/known */
	int warned;      /* put errors already logged: 1 foreign, 2 overflow, 4 double, 8 lent */
	char desc[256];
} __attribute__((aligned(64)));

/* Create a pool; on failure return -errno and set hpn_last_error():
 * -EINVAL bad parameters, -ENOMEM no memory or hugepages=on without free
 * hugepages, -EPERM/-EAGAIN/-ENOMEM mlock=on failed. */
int hpn_pool_create(const struct hpn_pool_params *p, struct hpn_pool **out);
/* Release the region (buffers still out become invalid). NULL is ignored. */
void hpn_pool_destroy(struct hpn_pool *pool);
/* The whole mapped region, for one memory registration. */
void *hpn_pool_mem(const struct hpn_pool *pool, size_t *len);
/* One line, e.g. "1024 x 64 KiB buffers on 2 MB hugepages (65 MiB),
 * mlocked, node 0". Owned by the pool. */
const char *hpn_pool_describe(const struct hpn_pool *pool);
/* Hugepage size backing the pool in MB: 0 (normal pages), 2 or 1024. */
int hpn_pool_uses_hugepages(const struct hpn_pool *pool);
/* Buffers currently free (a snapshot when other threads use the pool). */
unsigned hpn_pool_avail(const struct hpn_pool *pool);
/* 1 if p points inside some buffer slot of this pool (headroom, data or
 * the padding after it), else 0. */
int hpn_pool_owns(const struct hpn_pool *pool, const void *p);
/* Puts refused so far (pointers not from this pool, buffers put back
 * while already in the pool); each was logged once per pool and kind. */
uint64_t hpn_pool_bad_puts(const struct hpn_pool *pool);
/* Give pool a second class of buffers, for messages larger than its own
 * (`large` is created like any pool, with a larger buf_size and the same
 * headroom); pool owns it from here on and destroys it with itself. */
void hpn_pool_attach_large(struct hpn_pool *pool, struct hpn_pool *large);

/* Exported to plugins, declared in <hpn/plugin.h>:
 *   hpn_pool_get_bulk  - all or none; returns n or 0.
 *   hpn_pool_put_bulk  - any pointer in [data - headroom, data + buf_size)
 *                        identifies the buffer; pointers outside the pool
 *                        and buffers already in the pool (a double put)
 *                        are logged, counted (hpn_pool_bad_puts) and
 *                        ignored.
 *   hpn_pool_get_sized - one buffer of at least len bytes: the pool's own
 *                        class when len fits it, else the large class.
 *   hpn_pool_buf_size, hpn_pool_headroom - as requested at creation (the
 *                        slot may have up to 63 bytes more of each).
 *   hpn_pool_max_size  - the largest buffer either class has. */

/* Give pool its device frames (see the field); pool does not own them. */
void hpn_pool_attach_frames(struct hpn_pool *pool, struct hpn_pool *frames);

/* The class p belongs to: pool itself, its frames or its large class
 * when p lies outside pool's region (a pointer in none of them: pool, or
 * large; the callers' range checks refuse it). One compare on the fast
 * path. */
static inline const struct hpn_pool *hpn_pool_class(const struct hpn_pool *pool, const void *p)
{
	if (__builtin_expect((uint64_t)((uintptr_t)p - pool->base) >= pool->span, 0)) {
		if (pool->frames && (uint64_t)((uintptr_t)p - pool->frames->base) < pool->frames->span)
			return pool->frames;
		if (pool->large)
			return pool->large;
	}
	return pool;
}

/* Index of the slot p points into; p must satisfy hpn_pool_owns(). */
static inline unsigned hpn_pool_index(const struct hpn_pool *pool, const void *p)
{
	uint64_t off = (uint64_t)((uintptr_t)p - pool->base);

	return (unsigned)((uint64_t)(((unsigned __int128)off * pool->div_magic) >> 64) >>
			  pool->div_shift);
}

/* Start of the slot p points into (the front of the headroom, 64-byte
 * aligned): where the core keeps its per-buffer metadata. p must satisfy
 * hpn_pool_owns(). */
static inline void *hpn_pool_elem(const struct hpn_pool *pool, const void *p)
{
	pool = hpn_pool_class(pool, p);
	return (void *)(pool->base + (uintptr_t)hpn_pool_index(pool, p) * pool->stride);
}

/* The data pointer of the buffer p points into; p must satisfy
 * hpn_pool_owns(). */
static inline void *hpn_pool_data(const struct hpn_pool *pool, const void *p)
{
	pool = hpn_pool_class(pool, p);
	return (char *)hpn_pool_elem(pool, p) + pool->data_off;
}

/* What hpn_pool_check_owned() found wrong with a buffer. */
enum hpn_pool_bad {
	HPN_POOL_BUF_OK = 0,
	HPN_POOL_BUF_FOREIGN,  /* not inside any buffer of this pool */
	HPN_POOL_BUF_HEADROOM, /* points into the headroom, in front of the data */
	HPN_POOL_BUF_OVERRUN,  /* [p, p + len) runs past the end of the buffer */
	HPN_POOL_BUF_FREE,     /* the buffer is in the pool: nobody owns it */
	HPN_POOL_BUF_LENT,     /* a zero-copy send holds it: the library owns it */
};

/*
 * Can [p, p + len) be handed to a backend as a buffer the caller owns?
 * Zero-copy sends write headers and metadata in front of the data and put
 * the buffer back when sent: anything else would corrupt memory. A range
 * check, a multiply and a byte load; no lock. lend: when it may, mark it
 * lent (HPN_POOL_LENT) in the same look - the application may not put it
 * or send it again until it is handed out.
 */
static inline enum hpn_pool_bad hpn_pool_check(const struct hpn_pool *pool, const void *p, size_t len, bool lend)
{
	uint64_t off, at;
	unsigned idx;

	pool = hpn_pool_class(pool, p);
	off = (uint64_t)((uintptr_t)p - pool->base);
	if (off >= pool->span)
		return HPN_POOL_BUF_FOREIGN;
	idx = hpn_pool_index(pool, p);
	at = off - (uint64_t)idx * pool->stride; /* offset inside the slot */
	if (at < pool->data_off)
		return HPN_POOL_BUF_HEADROOM;
	at -= pool->data_off; /* offset inside the data area (or its padding) */
	if (at > pool->buf_size || len > pool->buf_size - at)
		return HPN_POOL_BUF_OVERRUN;
	switch (__atomic_load_n(&pool->in_pool[idx], __ATOMIC_RELAXED)) {
	case HPN_POOL_OUT:
		if (lend)
			__atomic_store_n(&pool->in_pool[idx], HPN_POOL_LENT, __ATOMIC_RELAXED);
		return HPN_POOL_BUF_OK;
	case HPN_POOL_FREE:
		return HPN_POOL_BUF_FREE;
	default:
		return HPN_POOL_BUF_LENT;
	}
}

static inline enum hpn_pool_bad hpn_pool_check_owned(const struct hpn_pool *pool, const void *p, size_t len)
{
	return hpn_pool_check(pool, p, len, false);
}

/* The state byte of the buffer p points into, NULL when p is in no buffer
 * of pool's classes (a backend's own memory). */
static inline uint8_t *hpn_pool_state(const struct hpn_pool *pool, const void *p)
{
	pool = hpn_pool_class(pool, p);
	if (__builtin_expect((uint64_t)((uintptr_t)p - pool->base) >= pool->span, 0))
		return NULL;
	return &pool->in_pool[hpn_pool_index(pool, p)];
}

/* p goes to the application (a receive, or a zero-copy send that did not
 * take it): a buffer the library reused after a zero-copy send is the
 * application's again. A load and, rarely, a store. */
static inline void hpn_pool_handed_out(const struct hpn_pool *pool, const void *p)
{
	uint8_t *st = hpn_pool_state(pool, p);

	if (st && __builtin_expect(__atomic_load_n(st, __ATOMIC_RELAXED) == HPN_POOL_LENT, 0))
		__atomic_store_n(st, HPN_POOL_OUT, __ATOMIC_RELAXED);
}

/* The application's put (hpn_buf_put): as hpn_pool_put_bulk, and a buffer
 * a zero-copy send still holds is refused (logged once, counted). */
void hpn_pool_put_app(struct hpn_pool *pool, void *p);

#endif /* HPN_POOL_H */
