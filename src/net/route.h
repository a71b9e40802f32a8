/* SPDX-License-Identifier: MIT */
/*
 * route.h - where a frame backend sends a datagram: the kernel's routing
 * and neighbour tables, asked over rtnetlink (the same answers `ip route
 * get` and `ip neigh` give), so af_xdp puts on the wire what the kernel's
 * own UDP would. Control path only: a backend asks once per peer (and
 * again when a neighbour entry goes stale), never per packet.
 *
 * No state, no allocation; every call opens and closes its own netlink
 * socket. Errors are negative errno with a reason in `why`.
 */
#ifndef HPN_NET_ROUTE_H
#define HPN_NET_ROUTE_H

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>

struct hpn_route {
	int ifindex;
	char ifname[IF_NAMESIZE];
	uint32_t src_ip;   /* the kernel's preferred source address, network order */
	uint32_t next_hop; /* the gateway, or the destination itself when on-link */
	uint32_t mtu;      /* the route's MTU, else the device's */
	uint8_t src_mac[6];
};

/* The route to dst_ip (network order), as `ip route get` would say, with
 * the device's MAC and MTU. -ENETUNREACH (no route), -EHOSTUNREACH
 * (a blackhole, unreachable or prohibit route), -errno otherwise. */
int hpn_route_get(uint32_t dst_ip, struct hpn_route *out, char *why, size_t why_len);

/* The MAC of ip (network order) on ifindex from the kernel's neighbour
 * table, if it has a usable one (reachable, stale, delayed, probing,
 * permanent or noarp). -ENOENT: none yet (resolve with ARP, or make the
 * kernel do it, and ask again); -errno otherwise. */
int hpn_neigh_get(int ifindex, uint32_t ip, uint8_t mac[6], char *why, size_t why_len);

#endif /* HPN_NET_ROUTE_H */
