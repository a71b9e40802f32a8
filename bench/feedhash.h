/* SPDX-License-Identifier: MIT */
/* feedhash.h - the digest hpnfeedgen promises and hpnbench --mode feed
 * checks: summed over messages, FNV-1a over the sequence number
 * (little-endian) and the message. */
#ifndef HPN_BENCH_FEEDHASH_H
#define HPN_BENCH_FEEDHASH_H

#include <stdint.h>

static inline uint64_t hpn_feed_hash(uint64_t seq, const uint8_t *p, uint32_t len)
{
	uint64_t h = 1469598103934665603ull;

	for (int i = 0; i < 8; i++)
		h = (h ^ ((seq >> (8 * i)) & 0xff)) * 1099511628211ull;
	for (uint32_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

#endif
