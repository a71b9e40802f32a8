/* SPDX-License-Identifier: MIT */
/*
 * sq.h - send-queue bookkeeping of one RC queue pair, kept apart from the
 * verbs calls so that it is unit-tested on machines without RDMA.
 *
 * Every posted send work request takes the next slot; the slot remembers
 * the buffer to release when the request completes (NULL: nothing, e.g.
 * inline data). Only some requests ask for a completion; RC completes in
 * order, so the completion of request i releases every slot up to i.
 * Counters run freely over 32 bits; the depth is a power of two so that
 * slot = counter & mask stays consistent across the wrap.
 */
#ifndef HPN_RDMA_SQ_H
#define HPN_RDMA_SQ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

struct hpn_sq {
	void **slot;
	uint32_t head;  /* next request number */
	uint32_t tail;  /* oldest request not known complete */
	uint32_t mask;  /* depth - 1 */
	uint32_t since_signal;
	uint32_t signal_every;
	uint32_t held_unsignaled; /* buffers held by requests after the last signaled one */
};

/* Largest power of two <= n (n >= 1). */
static inline uint32_t hpn_sq_pow2_floor(uint32_t n)
{
	return n ? 1u << (31 - __builtin_clz(n)) : 1;
}

/* depth: rounded down to a power of two (>= 4); signal_every is capped at
 * half of it. Returns 0 or -1 on allocation failure. */
static inline int hpn_sq_init(struct hpn_sq *sq, uint32_t depth, uint32_t signal_every)
{
	depth = hpn_sq_pow2_floor(depth < 4 ? 4 : depth);
	sq->slot = (void **)calloc(depth, sizeof(*sq->slot));
	sq->head = sq->tail = sq->since_signal = sq->held_unsignaled = 0;
	sq->mask = depth - 1;
	sq->signal_every = signal_every < 1 ? 1 : signal_every > depth / 2 ? depth / 2 : signal_every;
	return sq->slot ? 0 : -1;
}

static inline uint32_t hpn_sq_depth(const struct hpn_sq *sq)
{
	return sq->mask + 1;
}

static inline uint32_t hpn_sq_inflight(const struct hpn_sq *sq)
{
	return sq->head - sq->tail;
}

/* One slot stays free: a full queue must still take the request that asks
 * for the completion which frees it. */
static inline bool hpn_sq_full(const struct hpn_sq *sq)
{
	return hpn_sq_inflight(sq) >= sq->mask;
}

/* Take a slot for a request holding `hold`. Returns the request number
 * (its wr_id); *signal says whether it must ask for a completion: every
 * signal_every requests, and whenever the queue is nearly full, so that
 * completions keep coming while anything is in flight. */
static inline uint32_t hpn_sq_push(struct hpn_sq *sq, void *hold, bool *signal)
{
	uint32_t id = sq->head++;

	sq->slot[id & sq->mask] = hold;
	*signal = ++sq->since_signal >= sq->signal_every || hpn_sq_inflight(sq) >= sq->mask;
	if (*signal)
		sq->since_signal = sq->held_unsignaled = 0;
	else if (hold)
		sq->held_unsignaled++;
	return id;
}

/* At the end of a posted batch: must its last request (the newest) ask
 * for a completion? Yes if unsignaled requests hold buffers, or an idle
 * peer would keep them forever and starve the pool. */
static inline bool hpn_sq_close_batch(struct hpn_sq *sq)
{
	if (!sq->held_unsignaled)
		return false;
	sq->since_signal = sq->held_unsignaled = 0;
	return true;
}

/* Take back the newest request (it could not be posted). Returns what it
 * held; the caller decides whose that is. */
static inline void *hpn_sq_unpush(struct hpn_sq *sq)
{
	void **s = &sq->slot[--sq->head & sq->mask];
	void *hold = *s;

	*s = NULL;
	return hold;
}

/* Request `id` completed: collect the buffers of every request up to and
 * including it into out (at most max; call again while it returns max).
 * Ids outside the in-flight window are ignored (returns 0). */
static inline unsigned hpn_sq_complete(struct hpn_sq *sq, uint32_t id, void **out, unsigned max)
{
	unsigned n = 0;

	if (id - sq->tail >= hpn_sq_inflight(sq))
		return 0;
	while (n < max && sq->tail != id + 1) {
		void **s = &sq->slot[sq->tail & sq->mask];

		if (*s)
			out[n++] = *s;
		*s = NULL;
		sq->tail++;
	}
	return n;
}

/* The queue pair is gone: everything in flight is released. */
static inline unsigned hpn_sq_flush(struct hpn_sq *sq, void **out, unsigned max)
{
	return sq->head == sq->tail ? 0 : hpn_sq_complete(sq, sq->head - 1, out, max);
}

static inline void hpn_sq_free(struct hpn_sq *sq)
{
	free(sq->slot);
	sq->slot = NULL;
}

#endif
