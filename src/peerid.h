/* SPDX-License-Identifier: MIT */
/*
 * peerid.h - peer ids that are never handed out twice (header-only; the
 * udp raw-mode and rdma peer tables, and the packet layer's).
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

#include <stdint.h>

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

#endif /* HPN_PEERID_H */
