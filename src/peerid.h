/* SPDX-License-Identifier: MIT */
/*
 * peerid.h - peer ids that are never handed out twice, and the slots
 * they name (header-only; the peer tables of the packet layer - udp,
 * af_xdp - and of rdma).
 *
 * A peer id is 32 bits: slot | gen << slot_bits.
 *   slot_bits  bits of max_peers rounded up to a power of two, at least 1:
 *              the core's live table indexes ids by their low bits
 *              (plugin.h's rule for connect), so the slot must be exactly
 *              those. max_peers <= 65535 keeps it at 16 bits or fewer.
 *   gen        1 .. 2^(32 - slot_bits) - 2, bumped each time the slot is
 *              taken: never 0 and never all ones, so no id is
 *              HPN_PEER_NONE.
 * Generations do not wrap: a slot whose last generation was used is retired
 * for the endpoint's life, so an application holding an old id can never
 * reach a newer peer with it, however long it keeps the id. Taken
 * round-robin, slots age together: with max_peers=256 (24 generation bits)
 * an endpoint hands out ~2^32 ids before the first slot retires; with
 * 65535 peers, still 65534 per slot. When every free slot is retired,
 * a new peer is refused like a full table (recreate the endpoint).
 */
#ifndef HPN_PEERID_H
#define HPN_PEERID_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

/* Slot bits for an endpoint of max_peers peers (>= 1). */
static inline unsigned hpn_peerid_slot_bits(uint32_t max_peers)
{
	unsigned bits = 1;

	while (bits < 32 && (1ull << bits) < max_peers)
		bits++;
	return bits;
}

/* The last generation a slot may use. */
static inline uint32_t hpn_peerid_gen_max(unsigned slot_bits)
{
	return (uint32_t)((1ull << (32 - slot_bits)) - 2);
}

static inline uint32_t hpn_peerid_make(uint32_t slot, uint32_t gen, unsigned slot_bits)
{
	return slot | gen << slot_bits;
}

static inline uint32_t hpn_peerid_slot(uint32_t id, unsigned slot_bits)
{
	return id & (uint32_t)((1ull << slot_bits) - 1);
}

/* A free slot whose last id had generation gen can be taken again. */
static inline int hpn_peerid_usable(uint32_t gen, unsigned slot_bits)
{
	return gen < hpn_peerid_gen_max(slot_bits);
}

/*
 * The slots of a peer table: which are free (oldest freed first, so a
 * slot's generations are used up as slowly as possible), the generation
 * of each one's last id, and retirement. The table itself (what a peer
 * holds, how it is found by address) is the caller's; this hands out
 * ids and takes slots back.
 */
struct hpn_peer_slots {
	uint32_t max, bits, gen_max;
	uint32_t head, nfree; /* freeq[head .. head + nfree), modulo max */
	uint32_t *freeq;
	uint32_t *gen;        /* per slot: the generation of its last id (0: never used) */
	uint32_t retired;
};

static inline int hpn_peer_slots_init(struct hpn_peer_slots *s, uint32_t max)
{
	*s = (struct hpn_peer_slots){.max = max, .bits = hpn_peerid_slot_bits(max), .nfree = max};
	s->gen_max = hpn_peerid_gen_max(s->bits);
	s->freeq = (uint32_t *)malloc(max * sizeof(*s->freeq));
	s->gen = (uint32_t *)calloc(max, sizeof(*s->gen));
	if (!s->freeq || !s->gen)
		return -1;
	for (uint32_t i = 0; i < max; i++)
		s->freeq[i] = i;
	return 0;
}

static inline void hpn_peer_slots_fini(struct hpn_peer_slots *s)
{
	free(s->freeq);
	free(s->gen);
	s->freeq = s->gen = NULL;
}

/* A free slot and its new id in *id; UINT32_MAX when none is free (the
 * table is full, or every free slot is retired: see hpn_peer_slots_why). */
static inline uint32_t hpn_peer_slots_take(struct hpn_peer_slots *s, uint32_t *id)
{
	uint32_t i;

	if (!s->nfree)
		return UINT32_MAX;
	i = s->freeq[s->head];
	s->head = (s->head + 1) % s->max;
	s->nfree--;
	*id = hpn_peerid_make(i, ++s->gen[i], s->bits);
	return i;
}

/* A slot back; false: it is retired for good (its generations are used
 * up), never handed out again. */
static inline bool hpn_peer_slots_put(struct hpn_peer_slots *s, uint32_t i)
{
	if (!hpn_peerid_usable(s->gen[i], s->bits)) {
		s->retired++;
		return false;
	}
	s->freeq[(s->head + s->nfree) % s->max] = i;
	s->nfree++;
	return true;
}

/* The slot an id names (whether it is still that peer's is the table's
 * business: compare the id stored there). */
static inline uint32_t hpn_peer_slots_index(const struct hpn_peer_slots *s, uint32_t id)
{
	return hpn_peerid_slot(id, s->bits);
}

/* Why take found nothing. */
static inline const char *hpn_peer_slots_why(const struct hpn_peer_slots *s)
{
	return s->retired ? "every free peer slot has used all its ids (recreate the endpoint)"
			  : "all peer slots in use (raise max_peers)";
}

#endif /* HPN_PEERID_H */
