/* SPDX-License-Identifier: MIT */
/*
 * hello.h - the accepting side of the handshake, stateless until the
 * connecting side has proven that it receives at its address (TCP SYN
 * cookies, SCTP's state cookie and QUIC's Retry are the models).
 *
 *   connector                      acceptor
 *   HELLO(session, its params) --->             no state: a COOKIE is computed
 *                              <--- COOKIE(our params, cookie)
 *   COOKIE_ECHO(params, cookie) --->            cookie checked: only now a peer
 *                              <--- HELLO_ACK(our params)
 *
 * The cookie is a MAC (SipHash-2-4 under a per-endpoint random key) over
 * the connector's address, its session and parameters, the acceptor's
 * first sequence number (derived from the same key: random to anyone
 * else) and a timestamp; so a forged source never gets a peer slot, a
 * flood of HELLOs costs one MAC each and no memory, and a COOKIE_ECHO
 * replayed from another address, with other parameters or after the
 * lifetime is refused. No socket and no clock: the caller passes both.
 */
#ifndef HPN_PACKET_HELLO_H
#define HPN_PACKET_HELLO_H

#include "wire.h"

#include <stddef.h>
#include <stdint.h>

struct hpn_hello_key {
	uint64_t k0, k1;
};

/* SipHash-2-4 of buf[0, len) (Aumasson & Bernstein). */
uint64_t hpn_siphash(const struct hpn_hello_key *k, const void *buf, size_t len);

/* Answer a valid HELLO from addr with a COOKIE: our parameters in ours
 * (flags: our mode, hpn_pkt_mode_flags - whatever the HELLO's, so that a
 * connector of another mode learns it; window, max_msg, mtu), now_ms any millisecond clock. Writes the sealed
 * packet into out (room for HPN_PKT_HDR + HPN_PKT_HS_LEN) and returns its
 * length. */
size_t hpn_hello_cookie(const struct hpn_hello_key *k, const void *addr, uint32_t alen, const struct hpn_pkt *hello,
			const struct hpn_pkt *ours, uint32_t now_ms, uint8_t *out);

/* Check the cookie of a COOKIE_ECHO from addr, issued at most lifetime_ms
 * ago. Returns 0 and our first sequence number in *isn, or -1 (forged,
 * damaged, from another address or with other parameters, or expired). */
int hpn_hello_check(const struct hpn_hello_key *k, const void *addr, uint32_t alen, const struct hpn_pkt *echo,
		    uint32_t now_ms, uint32_t lifetime_ms, uint32_t *isn);

#endif
