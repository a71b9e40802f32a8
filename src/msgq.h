/* SPDX-License-Identifier: MIT */
/*
 * msgq.h - a FIFO of messages (struct hpn_msg) for one thread: where a
 * backend parks messages it has taken but cannot hand out yet (GRO
 * segments beyond the caller's burst, a leaving peer's last receives, the
 * packet layer's deliveries). Capacity is a power of two, so the fast path
 * masks instead of dividing. Header-only: the packet layer and the plugins
 * use it without linking anything.
 */
#ifndef HPN_MSGQ_H
#define HPN_MSGQ_H

#include <hpn/hpn.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

struct hpn_msgq {
	struct hpn_msg *m;
	uint32_t mask, head, n;
};

/* Room for at least min messages. 0 or -ENOMEM. */
static inline int hpn_msgq_init(struct hpn_msgq *q, uint32_t min)
{
	uint32_t cap = 1;

	while (cap < min)
		cap <<= 1;
	q->m = calloc(cap, sizeof(*q->m));
	q->mask = cap - 1;
	q->head = q->n = 0;
	return q->m ? 0 : -ENOMEM;
}

static inline void hpn_msgq_fini(struct hpn_msgq *q)
{
	free(q->m);
	q->m = NULL;
	q->n = 0;
}

static inline uint32_t hpn_msgq_room(const struct hpn_msgq *q)
{
	return q->mask + 1 - q->n;
}

/* false when full: the caller decides what a drop means. */
static inline bool hpn_msgq_push(struct hpn_msgq *q, const struct hpn_msg *m)
{
	if (q->n > q->mask)
		return false;
	q->m[(q->head + q->n++) & q->mask] = *m;
	return true;
}

/* Up to n oldest messages into msgs; returns how many. */
static inline unsigned hpn_msgq_pop(struct hpn_msgq *q, struct hpn_msg *msgs, unsigned n)
{
	unsigned k = 0;

	for (; k < n && q->n; k++, q->n--) {
		msgs[k] = q->m[q->head];
		q->head = (q->head + 1) & q->mask;
	}
	return k;
}

#endif
