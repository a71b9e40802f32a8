/* SPDX-License-Identifier: MIT */
/*
 * moldudp64.c - the request packet of MoldUDP64 (Nasdaq's "MoldUDP64
 * Protocol Specification" 1.00): what a receiver sends the feed's request
 * server to have lost messages sent again. The feed's own packets are
 * read by the packet layer's extractor (src/packet/feed.c).
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

HPN_EXPORT int hpn_moldudp64_request(void *buf, size_t len, const char session[10], uint64_t seq, uint32_t count)
{
	uint8_t *p = buf;

	if (!buf || !session)
		return hpn_set_error(-EINVAL, "hpn_moldudp64_request: NULL argument");
	if (len < 20)
		return hpn_set_error(-ENOSPC, "hpn_moldudp64_request: a request is 20 bytes, the buffer has %zu", len);
	/* 0 asks for nothing; 0xFFFF means end of session in a packet header. */
	if (!count || count > 0xFFFE)
		return hpn_set_error(-EINVAL, "hpn_moldudp64_request: count %u: a request asks for 1..65534 messages",
				     count);
	memcpy(p, session, 10);
	for (int i = 0; i < 8; i++) /* big-endian, as every MoldUDP64 field */
		p[10 + i] = (uint8_t)(seq >> (56 - 8 * i));
	p[18] = (uint8_t)(count >> 8);
	p[19] = (uint8_t)count;
	return 20;
}
