/* SPDX-License-Identifier: MIT */
/*
 * ring.h - internal bounded lock-free FIFO of `void *` (DPDK rte_ring style).
 *
 * Each side (producer, consumer) owns a head and a tail, both free-running
 * 32-bit indices that are reduced with `mask` only when a slot is touched:
 *
 *   cons.tail <= cons.head <= prod.tail <= prod.head <= cons.tail + size
 *   (in modular uint32 arithmetic)
 *
 * An operation first reserves a range by moving its own head (plain store
 * for a single-threaded side, CAS for a shared side), copies the pointers
 * outside any critical section, then publishes the range by moving its own
 * tail.  The other side only ever looks at our tail, so it never sees a
 * reservation that is not filled yet.
 *
 * Capacity: count is rounded up to a power of two and ALL slots are usable
 * (hpn_ring_capacity() == size).  Full and empty are told apart by the index
 * difference (size vs 0), not by a wasted slot, which the free-running
 * indices allow as long as size <= 2^31 (differences stay unambiguous mod
 * 2^32).
 *
 * Progress: in multi-producer/multi-consumer mode a thread that is preempted
 * between reserving and publishing stalls the later threads of its side in
 * the tail wait, as in DPDK's default mode.  DPDK assumes one pinned thread
 * per core; we cannot (hpn_send from application threads), and with more
 * spinning threads than cores the stall convoys: every waiter that gets
 * preempted becomes the next stalled predecessor, costing a time slice per
 * operation (measured: minutes for 10^6 items, 3 producers on 2 cores).  So
 * the tail wait yields the CPU after a spin budget; that syscall is only
 * reached when the predecessor is not running.  Use the SP/SC flags whenever
 * a side has a single thread: they skip both the CAS and the wait.
 *
 * Everything is header-only: the fast operations must inline into callers,
 * and create/destroy are tiny.
 */
#ifndef HPN_RING_H
#define HPN_RING_H

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sched.h> /* sched_yield, unless HPN_RING_SPINS_BEFORE_YIELD is 0 */

#define HPN_RING_CACHE_LINE 64

/*
 * Pause iterations in the MP/MC tail wait before each sched_yield().  A
 * running predecessor publishes within well under a microsecond; 256 pauses
 * are several microseconds (a pause is ~10-40 ns on current x86), so a
 * longer wait means the predecessor is not running and spinning on only
 * burns the CPU it needs.  Measured on 2 vCPUs, 3 producers + 1 consumer,
 * 9e5 items: worst of 25 runs 0.49 s with 256, 1.6 s with 1024, minutes
 * with pure spinning.  0 disables yielding (pure spin, as DPDK: only for
 * threads pinned one per core).
 */
#ifndef HPN_RING_SPINS_BEFORE_YIELD
#define HPN_RING_SPINS_BEFORE_YIELD 256u
#endif
#if defined(__unix__) && HPN_RING_SPINS_BEFORE_YIELD > 0
#define HPN_RING__YIELD 1
#else
#define HPN_RING__YIELD 0
#endif

/** Only one thread ever enqueues: head moves with a plain store, no CAS. */
#define HPN_RING_SP_ENQ (1u << 0)
/** Only one thread ever dequeues. */
#define HPN_RING_SC_DEQ (1u << 1)
#define HPN_RING_FLAGS_ALL (HPN_RING_SP_ENQ | HPN_RING_SC_DEQ)

/** Largest accepted count; beyond it index differences become ambiguous. */
#define HPN_RING_MAX_COUNT (1u << 31)

struct hpn_ring_headtail {
	_Atomic uint32_t head; /* next index to reserve on this side */
	_Atomic uint32_t tail; /* indices below it are published to the other side */
};

struct hpn_ring {
	/*
	 * Written once at create, then only read by both sides: keeping it on
	 * its own line means it stays Shared in every cache and never bounces.
	 */
	uint32_t size; /* power of two, also the capacity */
	uint32_t mask; /* size - 1 */
	uint32_t flags;
	/*
	 * Producers write prod, consumers write cons; separate lines so one
	 * side's index traffic does not invalidate the other side's.
	 */
	alignas(HPN_RING_CACHE_LINE) struct hpn_ring_headtail prod;
	alignas(HPN_RING_CACHE_LINE) struct hpn_ring_headtail cons;
	/* Starts on a fresh line so slot writes do not false-share with cons. */
	alignas(HPN_RING_CACHE_LINE) void *slots[];
};

_Static_assert(offsetof(struct hpn_ring, prod) % HPN_RING_CACHE_LINE == 0 &&
		       offsetof(struct hpn_ring, cons) - offsetof(struct hpn_ring, prod) >=
			       HPN_RING_CACHE_LINE &&
		       offsetof(struct hpn_ring, slots) - offsetof(struct hpn_ring, cons) >=
			       HPN_RING_CACHE_LINE,
	       "hpn_ring: head/tail pairs must sit on separate cache lines");

static inline void hpn_ring_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
	/* Frees the sibling hyperthread and avoids the memory-order machine
	 * clear when the awaited store finally lands. */
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	/* No hint available: at least force the compiler to re-load. */
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

/**
 * Create a ring for at least `count` pointers (rounded up to a power of
 * two, 1..2^31).  flags: HPN_RING_SP_ENQ | HPN_RING_SC_DEQ or 0.
 * Returns 0, -EINVAL (bad count/flags/out) or -ENOMEM.
 */
static inline int hpn_ring_create(unsigned count, unsigned flags, struct hpn_ring **out)
{
	struct hpn_ring *r;
	uint32_t size;
	size_t bytes;
	void *mem;

	if (out == NULL || count == 0 || count > HPN_RING_MAX_COUNT ||
	    (flags & ~HPN_RING_FLAGS_ALL) != 0)
		return -EINVAL;
	size = count == 1 ? 1u : 1u << (32 - __builtin_clz(count - 1u));
#if SIZE_MAX <= UINT32_MAX
	/* A 2^31-slot array does not fit a 32-bit address space. */
	if ((SIZE_MAX - sizeof(*r)) / sizeof(void *) < size)
		return -ENOMEM;
#endif
	bytes = sizeof(*r) + (size_t)size * sizeof(void *);
	if (posix_memalign(&mem, HPN_RING_CACHE_LINE, bytes) != 0)
		return -ENOMEM;
	r = (struct hpn_ring *)mem;
	r->size = size;
	r->mask = size - 1u;
	r->flags = flags;
	atomic_init(&r->prod.head, 0);
	atomic_init(&r->prod.tail, 0);
	atomic_init(&r->cons.head, 0);
	atomic_init(&r->cons.tail, 0);
	*out = r;
	return 0;
}

/** Free the ring (NULL is ignored). No thread may still be using it. */
static inline void hpn_ring_destroy(struct hpn_ring *r)
{
	free(r);
}

static inline unsigned hpn_ring_capacity(const struct hpn_ring *r)
{
	return r->size;
}

/**
 * Number of published entries. Exact when the ring is quiescent; under
 * concurrent use it is a snapshot that may already be stale.
 */
static inline unsigned hpn_ring_count(const struct hpn_ring *r)
{
	/*
	 * cons.tail first, with acquire: the consumer read prod.tail before it
	 * released cons.tail, so the prod.tail we load next is at least that
	 * value and the difference cannot go negative.  Racing producers can
	 * still push it past size between the two loads, hence the clamp.
	 */
	uint32_t ct = atomic_load_explicit(&r->cons.tail, memory_order_acquire);
	uint32_t pt = atomic_load_explicit(&r->prod.tail, memory_order_acquire);
	uint32_t n = pt - ct;

	return n > r->size ? r->size : n;
}

static inline unsigned hpn_ring_free_count(const struct hpn_ring *r)
{
	return r->size - hpn_ring_count(r);
}

/*
 * Reserve up to n entries on side `d`, limited by the other side's tail `s`.
 * `cap` is size for producers (free = size + cons.tail - prod.head) and 0
 * for consumers (used = prod.tail - cons.head). With `fixed` it is all or
 * nothing. Returns the number reserved and the range [*old_head, *new_head).
 */
static inline unsigned hpn_ring__move_head(struct hpn_ring_headtail *d,
					   const struct hpn_ring_headtail *s, uint32_t cap,
					   bool single, unsigned n, bool fixed,
					   uint32_t *old_head, uint32_t *new_head)
{
	const unsigned want = n;
	uint32_t avail;
	bool ok;

	/*
	 * Shared side: acquire pairs with the release of the CAS below in the
	 * thread that wrote this head.  That thread loaded the other side's
	 * tail before its CAS, so after this acquire our own tail load below
	 * returns that value or a newer one.  Without it we could combine a new
	 * head with an older opposing tail, and `avail` would wrap around to a
	 * huge number (overwriting unread slots / reading unwritten ones).
	 * Single side: nobody else writes our head, relaxed is enough.
	 */
	if (single)
		*old_head = atomic_load_explicit(&d->head, memory_order_relaxed);
	else
		*old_head = atomic_load_explicit(&d->head, memory_order_acquire);

	do {
		/*
		 * Acquire pairs with the other side's release of its tail: for
		 * a producer it orders the consumers' slot reads before our
		 * slot overwrites; for a consumer it makes the producers' slot
		 * writes visible before we read them.
		 */
		uint32_t stail = atomic_load_explicit(&s->tail, memory_order_acquire);

		avail = cap + stail - *old_head; /* mod 2^32, always 0..size */
		n = want;
		if (n > avail)
			n = fixed ? 0 : avail;
		if (n == 0)
			return 0;
		*new_head = *old_head + n;
		if (single) {
			/* Only we read our own head (the other side looks at the
			 * tail), so no ordering is needed. */
			atomic_store_explicit(&d->head, *new_head, memory_order_relaxed);
			return n;
		}
		/*
		 * Success needs release so the next thread of our side that
		 * acquires this head also sees the opposing tail we based the
		 * reservation on (see above); acquire because the CAS reads
		 * the previous owner's head like the initial load.  On failure
		 * *old_head is reloaded, with acquire for the same reason.
		 * Weak is fine: we loop anyway.
		 */
		ok = atomic_compare_exchange_weak_explicit(&d->head, old_head, *new_head,
							   memory_order_acq_rel,
							   memory_order_acquire);
	} while (!ok);
	return n;
}

/*
 * Publish [old_tail, new_tail) to the other side.  Shared side: reservations
 * complete out of order, but the tail must advance in order, so wait until
 * the threads that reserved before us have published.
 */
static inline void hpn_ring__update_tail(struct hpn_ring_headtail *ht, uint32_t old_tail,
					 uint32_t new_tail, bool single)
{
	if (!single) {
#if HPN_RING__YIELD
		unsigned spins = 0;
#endif
		/*
		 * Acquire (DPDK uses relaxed): a plain store is not part of
		 * another thread's release sequence, so the other side that
		 * acquires OUR tail would not be ordered after the previous
		 * thread's slot accesses. Acquiring its tail here chains them
		 * (TSan reports the relaxed version as a race in test_ring).
		 */
		while (atomic_load_explicit(&ht->tail, memory_order_acquire) != old_tail) {
#if HPN_RING__YIELD
			if (++spins >= HPN_RING_SPINS_BEFORE_YIELD) {
				/* Slow path only: see HPN_RING_SPINS_BEFORE_YIELD. */
				spins = 0;
				sched_yield();
				continue;
			}
#endif
			hpn_ring_pause();
		}
	}
	/* Release: our slot accesses happen before the other side uses them. */
	atomic_store_explicit(&ht->tail, new_tail, memory_order_release);
}

static inline unsigned hpn_ring__enqueue(struct hpn_ring *r, void *const *objs, unsigned n,
					 bool fixed)
{
	const bool single = (r->flags & HPN_RING_SP_ENQ) != 0;
	uint32_t head, next, idx;
	unsigned first, i;

	n = hpn_ring__move_head(&r->prod, &r->cons, r->size, single, n, fixed, &head, &next);
	if (n == 0)
		return 0;
	/* Two straight runs instead of masking every index: the range can
	 * wrap past the end of the slot array at most once. */
	idx = head & r->mask;
	first = r->size - idx;
	if (first > n)
		first = n;
	for (i = 0; i < first; i++)
		r->slots[idx + i] = objs[i];
	for (; i < n; i++)
		r->slots[i - first] = objs[i];
	hpn_ring__update_tail(&r->prod, head, next, single);
	return n;
}

static inline unsigned hpn_ring__dequeue(struct hpn_ring *r, void **objs, unsigned n, bool fixed)
{
	const bool single = (r->flags & HPN_RING_SC_DEQ) != 0;
	uint32_t head, next, idx;
	unsigned first, i;

	n = hpn_ring__move_head(&r->cons, &r->prod, 0, single, n, fixed, &head, &next);
	if (n == 0)
		return 0;
	idx = head & r->mask;
	first = r->size - idx;
	if (first > n)
		first = n;
	for (i = 0; i < first; i++)
		objs[i] = r->slots[idx + i];
	for (; i < n; i++)
		objs[i] = r->slots[i - first];
	hpn_ring__update_tail(&r->cons, head, next, single);
	return n;
}

/** Enqueue as many of objs[0..n) as fit, in order. Returns how many. */
static inline unsigned hpn_ring_enqueue_burst(struct hpn_ring *r, void *const *objs, unsigned n)
{
	return hpn_ring__enqueue(r, objs, n, false);
}

/** Enqueue all n or none. Returns n or 0. */
static inline unsigned hpn_ring_enqueue_bulk(struct hpn_ring *r, void *const *objs, unsigned n)
{
	return hpn_ring__enqueue(r, objs, n, true);
}

/** Dequeue up to n entries into objs, oldest first. Returns how many. */
static inline unsigned hpn_ring_dequeue_burst(struct hpn_ring *r, void **objs, unsigned n)
{
	return hpn_ring__dequeue(r, objs, n, false);
}

/** Dequeue exactly n entries or none. Returns n or 0. */
static inline unsigned hpn_ring_dequeue_bulk(struct hpn_ring *r, void **objs, unsigned n)
{
	return hpn_ring__dequeue(r, objs, n, true);
}

/*
 * TEST ONLY: move all four indices to v so tests can cross the 2^32 index
 * wrap quickly. The ring must be empty and no other thread may use it.
 */
static inline void hpn_ring__set_indices(struct hpn_ring *r, uint32_t v)
{
	atomic_store_explicit(&r->prod.head, v, memory_order_relaxed);
	atomic_store_explicit(&r->prod.tail, v, memory_order_relaxed);
	atomic_store_explicit(&r->cons.head, v, memory_order_relaxed);
	atomic_store_explicit(&r->cons.tail, v, memory_order_relaxed);
}

#endif /* HPN_RING_H */
