/*
 * handmade.h - a packet of the reliable layer's wire (docs/WIRE.md) made by
 * hand, for tests that play a peer or an attacker. Include after
 * "packet/wire.h".
 */
#ifndef HPN_TESTS_HANDMADE_H
#define HPN_TESTS_HANDMADE_H

#include <string.h>

/* Encode p (DATA: with payload's p.len bytes) into buf and seal it;
 * returns its length. */
static inline size_t pkt(uint8_t *buf, struct hpn_pkt p, const void *payload)
{
	size_t n = hpn_pkt_encode(&p, buf);

	if (p.type == HPN_PKT_DATA && p.len && payload)
		memcpy(buf + n, payload, p.len);
	n += p.type == HPN_PKT_DATA ? p.len : 0;
	if (!(p.flags & HPN_PKT_F_RAW) || p.type != HPN_PKT_DATA) /* a raw datagram has no checksum */
		hpn_pkt_seal(buf, n);
	return n;
}

#endif
