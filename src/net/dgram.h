/* SPDX-License-Identifier: MIT */
/*
 * dgram.h - what the frame backends (af_xdp, dpdk) do alike around the
 * packet layer's datagram interface, written once: counting a refused
 * frame, parsing an IPv4 host:port, formatting a peer's address.
 */
#ifndef HPN_NET_DGRAM_H
#define HPN_NET_DGRAM_H

#include "net/frame.h"

#include <hpn/plugin.h>

#include <netinet/in.h>
#include <stdbool.h>

/* A received frame refused: a drop, and malformed unless it was simply
 * not IPv4/UDP (ARP, IPv6, ICMP...: not ours, not broken). */
static inline void hpn_frame_count_bad(struct hpn_stats *st, enum hpn_frame_err e)
{
	HPN_STAT_ADD(st->drops, 1);
	if (e != HPN_FRAME_NOT_IP4 && e != HPN_FRAME_NOT_UDP)
		HPN_STAT_ADD(st->malformed, 1);
}

/* "host:port" as an IPv4 sockaddr (who: the backend's name, for the
 * message); -EAFNOSUPPORT for IPv6, -ENETUNREACH for loopback: a frame
 * backend sends through a network interface. */
int hpn_net_parse_v4(const char *who, const char *spec, bool passive, struct sockaddr_in *out);

/* hpn_dgram_io.format for sockaddr_in peers. */
int hpn_net_format(void *io, const void *addr, uint32_t alen, char *buf, size_t len);

#endif
