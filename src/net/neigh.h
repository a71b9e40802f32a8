/* SPDX-License-Identifier: MIT */
/*
 * neigh.h - the next-hop MAC cache of the frame backends (af_xdp, dpdk):
 * who to put in a frame's destination address. The backend decides how an
 * address is resolved (af_xdp asks the kernel's neighbour table, dpdk runs
 * ARP itself); the cache is one copy for both.
 *
 * 256 entries, 4-way set associative, no allocation. The hot path is one
 * compare: the last address sent to. Only a send evicts (a frame from a
 * spoofed source can fill a free way, never push out a live entry).
 * Entries carry the time they were last confirmed, so a backend that owns
 * its resolution (dpdk) can age them out; one that asks the kernel leaves
 * ageing to the kernel.
 */
#ifndef HPN_NET_NEIGH_H
#define HPN_NET_NEIGH_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define HPN_NB_SIZE 256u /* a power of two */
#define HPN_NB_WAYS 4u

struct hpn_nb {
	uint32_t ip; /* network order; 0: empty */
	uint8_t mac[6];
	bool ok;           /* mac is usable */
	uint8_t unverified; /* dpdk: a frame brought mac, ARP not answered yet (asks so far + 1) */
	uint64_t asked_ns; /* last resolution attempt (unresolved, or being refreshed) */
	uint64_t seen_ns;  /* last confirmation (an ARP answer, a learnt frame) */
};

struct hpn_nbcache {
	struct hpn_nb e[HPN_NB_SIZE];
	uint32_t turn;
	uint32_t last_ip; /* the hot entry, copied: 0 none */
	uint8_t last_mac[6];
};

static inline bool hpn_ip4_is_group(uint32_t ip)
{
	return (((const uint8_t *)&ip)[0] & 0xf0) == 0xe0; /* 224.0.0.0/4, network order */
}

/* RFC 1112: a group's MAC is 01:00:5e and the group's low 23 bits. */
static inline void hpn_ip4_group_mac(uint32_t group, uint8_t mac[6])
{
	const uint8_t *g = (const uint8_t *)&group;

	mac[0] = 0x01, mac[1] = 0x00, mac[2] = 0x5e, mac[3] = g[1] & 0x7f, mac[4] = g[2], mac[5] = g[3];
}

static inline struct hpn_nb *hpn_nb_set(struct hpn_nbcache *c, uint32_t ip)
{
	return &c->e[((ip * 2654435761u) >> 24) & (HPN_NB_SIZE - 1) & ~(HPN_NB_WAYS - 1)];
}

/* ip's entry, or (want_free) a free way of its set, else NULL. */
static inline struct hpn_nb *hpn_nb_find(struct hpn_nbcache *c, uint32_t ip, bool want_free)
{
	struct hpn_nb *set = hpn_nb_set(c, ip);

	for (unsigned w = 0; w < HPN_NB_WAYS; w++)
		if (set[w].ip == ip)
			return &set[w];
	for (unsigned w = 0; want_free && w < HPN_NB_WAYS; w++)
		if (!set[w].ip)
			return &set[w];
	return NULL;
}

/* A way for ip to be resolved into: its own, a free one, else one taken
 * in turn. */
static inline struct hpn_nb *hpn_nb_victim(struct hpn_nbcache *c, uint32_t ip)
{
	struct hpn_nb *n = hpn_nb_find(c, ip, true);

	if (n)
		return n;
	n = hpn_nb_set(c, ip) + (c->turn++ & (HPN_NB_WAYS - 1));
	if (n->ip == c->last_ip)
		c->last_ip = 0; /* the hot entry goes with it */
	return n;
}

/* ip was seen at mac (an ARP answer, or a frame from it: the way back,
 * which for a source off the link is the router's MAC - the next hop back
 * too). Into its own way or a free one, never over another address. A
 * frame (replace false) only fills in or confirms: anyone can send one
 * with a forged source, before anything checked it, so only resolution
 * (ARP, the kernel) changes a MAC already known. */
static inline void hpn_nb_learn(struct hpn_nbcache *c, uint32_t ip, const uint8_t *mac, uint64_t now, bool replace)
{
	struct hpn_nb *n = hpn_nb_find(c, ip, true);

	if (!n)
		return;
	if (n->ip == ip && n->ok && !memcmp(n->mac, mac, 6)) {
		n->seen_ns = now;
		if (replace)
			n->unverified = 0; /* resolution confirms what a frame said */
		return;
	}
	if (n->ip == ip && n->ok && !replace)
		return;
	*n = (struct hpn_nb){.ip = ip, .ok = true, .seen_ns = now};
	memcpy(n->mac, mac, 6);
	if (c->last_ip == ip)
		memcpy(c->last_mac, mac, 6);
}

/* Forget ip (an entry that aged out unanswered). */
static inline void hpn_nb_forget(struct hpn_nbcache *c, struct hpn_nb *n)
{
	if (c->last_ip == n->ip)
		c->last_ip = 0;
	n->ok = false;
}

/*
 * The MAC to send to ip: the hot entry, a cached one, else resolve(arg,
 * entry, ip) on the slow path - it fills the entry (ip set, ok when
 * resolved) and returns false while unresolved (the datagram is dropped;
 * the packet layer resends). Multicast groups resolve to their MAC.
 */
typedef bool (*hpn_nb_resolve_fn)(void *arg, struct hpn_nb *n, uint32_t ip);

static inline const uint8_t *hpn_nb_lookup(struct hpn_nbcache *c, uint32_t ip, hpn_nb_resolve_fn resolve,
					   void *arg)
{
	struct hpn_nb *n;

	if (ip == c->last_ip && ip)
		return c->last_mac;
	n = hpn_nb_find(c, ip, false);
	if (!(n && n->ok)) {
		if (!n)
			n = hpn_nb_victim(c, ip);
		if (hpn_ip4_is_group(ip)) {
			*n = (struct hpn_nb){.ip = ip, .ok = true};
			hpn_ip4_group_mac(ip, n->mac);
		} else if (!resolve(arg, n, ip)) {
			return NULL;
		}
	}
	c->last_ip = ip;
	memcpy(c->last_mac, n->mac, 6);
	return c->last_mac;
}

#endif /* HPN_NET_NEIGH_H */
