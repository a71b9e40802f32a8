/* SPDX-License-Identifier: MIT */
/*
 * dgram.h - what the frame backends (af_xdp, dpdk) do alike around the
 * packet layer's datagram interface, written once: counting a refused
 * frame, parsing an IPv4 host:port, formatting a peer's address.
 */
#ifndef HPN_NET_DGRAM_H
#define HPN_NET_DGRAM_H

#include "net/frame.h"
#include "packet/pktep.h"

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

/* A frame backend's receive: 0 must mean the device is empty - the packet
 * layer takes it for "every line read up to now" (a feed's gaps wait for
 * that) - not that a burst held only others' frames (ARP, other groups,
 * other hosts'). once() reads one burst and says whether the device gave
 * a full one; this reads on while full bursts bring nothing of ours. */
static inline int hpn_net_recv(int (*once)(void *, struct hpn_dgram *, unsigned, bool *), void *arg,
			       struct hpn_dgram *d, unsigned n)
{
	bool full = false;
	int r = 0;

	for (int i = 0; i < 8 && !r; i++) {
		r = once(arg, d, n, &full);
		if (!full)
			break;
	}
	return r;
}

/* "host:port" as an IPv4 sockaddr (who: the backend's name, for the
 * message); -EAFNOSUPPORT for IPv6, -ENETUNREACH for loopback: a frame
 * backend sends through a network interface. */
int hpn_net_parse_v4(const char *who, const char *spec, bool passive, struct sockaddr_in *out);

/* hpn_dgram_io.format for sockaddr_in peers. */
int hpn_net_format(void *io, const void *addr, uint32_t alen, char *buf, size_t len);

/* framing=none: the lines a frame backend listens on - each a group (or
 * its own address) and port, and a group's one source (0: any). */
#define HPN_NET_LINES 8
struct hpn_net_lines {
	uint32_t ip[HPN_NET_LINES], source[HPN_NET_LINES];
	uint16_t port[HPN_NET_LINES];
	bool group[HPN_NET_LINES];
	unsigned n;
};

/* A frame to ip:port is ours: our own address and port, or a line's pair
 * (not any address with any port: the XDP program's maps pass those). */
static inline bool hpn_net_lines_take(const struct hpn_net_lines *l, uint32_t own_ip, uint16_t own_port, uint32_t ip,
				      uint16_t port)
{
	if (ip == own_ip && port == own_port)
		return true;
	for (unsigned i = 0; i < l->n; i++)
		if (ip == l->ip[i] && port == l->port[i])
			return true;
	return false;
}

/* Join group (source: that sender only, IGMPv3; 0: any) on interface
 * ifindex through the kernel, on socket fd. 0 or -errno. */
int hpn_net_join(int fd, int ifindex, uint32_t group, uint32_t source);

#endif
