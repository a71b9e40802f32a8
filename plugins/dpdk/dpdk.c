/* SPDX-License-Identifier: MIT */
/*
 * dpdk.c - kernel bypass through DPDK: hpn's UDP frames go between an
 * ethdev's queues and the packet layer with no kernel on the path. A small
 * adapter on the frame backends' kit: the packet layer (src/packet/
 * pktep.h) does connections, reliability and fragmentation; src/net/frame.h
 * the Ethernet/IPv4/UDP framing with software checksums; src/net/neigh.h
 * the next-hop cache. This file moves frames between rte_eth bursts and
 * the packet layer's datagrams, and answers for its address: nobody else
 * does on a DPDK port (ARP, ICMP echo).
 *
 *   hpn_pktep --dgram--> dp_send: mbuf <- headers (+ payload copy) -> rte_eth_tx_burst
 *   hpn_pktep <--dgram-- dp_recv: rte_eth_rx_burst -> parse, check -> payload, lent
 *                                   `-> ARP, ICMP echo: answered here
 *
 * Ports: a PCI device (port=) or any vdev (vdev="net_memif0,role=server,...",
 * net_af_packet, net_af_xdp, net_tap ...), one queue pair per endpoint, one
 * endpoint per port in a process. Memory: mbuf.c. The EAL: eal.c.
 */
#include "dpdk.h"
#include "mbuf.h"

#include "net/dgram.h"
#include "net/frame.h"
#include "net/lock.h"
#include "net/neigh.h"
#include "packet/pktep.h"
#include "packet/wire.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#define MTU_MAX (HPN_DPDK_FRAME - HPN_DPDK_BUF_OFF - RTE_PKTMBUF_HEADROOM - HPN_NET_HDR - 4)
#define COPY_MTU_MAX (RTE_MBUF_DEFAULT_DATAROOM - HPN_NET_HDR - 4) /* mbufs=copy: DPDK's 2 KiB mbufs */
#define BURST_MAX 64
#define TX_RESERVE 64               /* send frames kept back from lending, for copies */
#define TX_BULK 64                  /* send frames taken from the pool at a time */
#define NB_RETRY_NS 10000000ull     /* an unresolved neighbour is asked again after 10 ms */
#define NB_REFRESH_NS 30000000000ull /* a neighbour not confirmed for 30 s is asked again ... */
#define NB_EXPIRE_NS 35000000000ull  /* ... and forgotten 5 s later if it does not answer */
#define LINK_EVERY_NS 100000000ull  /* the link's state is read every 100 ms */
#define PROBE_WAIT_NS 30000000ull   /* set-up listens this long for another owner of ip= (3 probes) */
#define CONFLICT_EVERY_NS 10000000000ull /* an address conflict is logged and defended at most every 10 s */
#define ICMP_PER_MS 1               /* port unreachable answers at most 1000 a second */

_Static_assert(HPN_NET_LINES == HPN_FEED_LINES_MAX, "a frame backend takes as many lines as a feed has");

struct hpn_pep {
	struct hpn_core *core;
	struct hpn_stats *st;
	struct hpn_pktep *pk;
	struct hpn_pktep_cfg pc;
	/* Config. */
	char vdev[512];    /* vdev=, as given */
	char pci[64];      /* port= */
	char name[128];    /* the ethdev's name (the vdev's up to its first comma) */
	char kiface[32];   /* a vdev's iface= (af_packet, af_xdp): a kernel interface */
	uint32_t ip_cfg;   /* ip=, network order (0: the kernel interface's) */
	uint32_t mask;     /* its prefix as a mask, network order */
	uint32_t gw;       /* gw=, network order (0: none: on-link only) */
	uint32_t nframes;
	uint16_t nrxd, ntxd;
	uint64_t link_wait_ms;
	bool copy;         /* mbufs=copy: an ordinary mempool, datagrams copied */
	/* The port, once set up (listen or connect). */
	bool up;
	bool taken;        /* the port is this endpoint's (port_taken) */
	bool own;          /* hpn brought the device (hot-plug, or its own EAL arguments): closed and
			      removed at the end, so it can be made again; else only stopped */
	bool dma_mapped;   /* the frames are mapped for the device's DMA (PCI) */
	bool mb_cfg;       /* mbufs= given */
	bool no_offload;   /* csum_offload=off */
	bool started;
	/* memif: the peer said it leaves; no burst touches the port until its
	 * link has gone down and come up again (memif_hold()). */
	bool memif, memif_server;
	uint8_t held;      /* 0, HELD_UP (link still up), HELD_DOWN (went down) */
	uint64_t held_ns;
	uint16_t port_id;
	char driver[48];
	uint8_t mac[6];
	uint16_t port_mtu;
	bool tx_csum;      /* the port computes IPv4 and UDP checksums on send */
	bool rx_csum;      /* ... and checks them on receive */
	uint32_t ip;       /* ours, network order */
	uint16_t port;     /* ours, network order */
	bool borrowed;     /* ip is a kernel interface's: the kernel answers ARP and ping */
	int port_fd;       /* borrowed: a kernel UDP socket holding our port */
	uint32_t group;    /* subscribed multicast group (0: none) */
	uint64_t igmp_again_ns; /* the join's report goes out a second time then (0: done) */
	/* Groups joined (the one of unordered=on, or a framing=none
	 * endpoint's lines): each with its source (0: any) and port. */
	bool plain;
	struct hpn_net_lines lines;
	bool link_up;
	uint64_t link_ns;
	/* Memory. */
	struct rte_mempool *mp;
	struct hpn_pool *frames;
	uint8_t *region;
	size_t region_len;
	struct rte_mbuf **mbuf_table; /* frame index -> its mbuf (mbuf.c) */
	struct rte_mbuf *free_tx[2048]; /* send frames nobody holds (lent mode) */
	uint32_t nfree;
	uint32_t tx_target;
	uint32_t dry_skip; /* frames_free calls to let pass before asking a short pool again */
	struct rte_mbuf *lent[BURST_MAX]; /* mbufs of the last receive's datagrams */
	uint32_t nlent;
	uint64_t copies;
	uint16_t ip_id;
	/* Neighbours: ours to resolve (ARP). */
	struct hpn_nbcache nb;
	uint64_t nb_scan_ns;
	uint64_t nb_verify_ns; /* the last ARP asking after a frame's source (nb_from_frame) */
	bool nb_unverified;    /* some entry a frame brought waits for its ARP answer (nb_verify) */
	uint32_t unresolved_logged;
	uint64_t arp_answered, echo_answered;
	/* Address conflicts (RFC 5227): our ARP frames carry this tag in their
	 * padding, so one looped back is told from another process's on the
	 * same interface (same MAC, same ip=). */
	uint8_t arp_tag[8];
	bool probing;          /* set-up's probe: a conflict fails the endpoint */
	bool announce;         /* the link came up: announce ip= once the port may send */
	uint64_t drops_last;   /* hpn_stats.rx_dropped: the port's missed count, last read (each second) */
	struct hpn_lock addr_lock; /* ip= on a kernel interface: one process's (net/lock.h) */
	uint64_t conflicts, conflict_ns;
	uint8_t conflict_mac[6];
	uint64_t icmp_ms_ns;  /* port unreachable: the current millisecond ... */
	uint32_t icmp_tokens; /* ... and the answers it has left */
};

static const struct hpn_plugin_param dpdk_params[] = {
	{"port", "PCI address of a DPDK-bound NIC (e.g. 0000:03:00.0), or the name of an ethdev the application "
		 "probed; one of port= and vdev="},
	{"vdev", "a DPDK virtual device, in double quotes when it holds commas, e.g. "
		 "vdev=\"net_memif0,role=server,socket=/tmp/m.sock\", net_af_packet0,iface=eth0, net_tap0"},
	{"ip", "the port's IPv4 address and prefix, A.B.C.D/N (default: a vdev on a kernel interface "
	       "(iface=) uses that interface's address, and the kernel answers ARP and ping for it)"},
	{"gw", "IPv4 router for destinations outside ip='s subnet (default: none: on-link only)"},
	{"eal", "the EAL's arguments, space separated, instead of hpn's (default: --in-memory or --no-huge, the "
		"caller's CPUs as lcore 0, a file prefix per process, --no-pci unless port= is a PCI device)"},
	{"frames", "mbufs of 4 KiB, in the pool's memory (default 4096, framing=none 16384)"},
	{"rxd", "receive descriptors (default 1024, framing=none 4096; adjusted to the driver)"},
	{"txd", "transmit descriptors (default 1024)"},
	{"mbufs", "lent|copy: mbuf data in the pool's frames, handed over without a copy (default), or an ordinary "
		  "mempool and copies (net_af_xdp needs that: its mempool is its UMEM)"},
	{"link_wait_ms", "connect waits this long for the link to come up (default 1000)"},
	{"csum_offload", "on|off: IPv4/UDP checksums by the port where it offers them (default on)"},
	HPN_PKTEP_PARAMS,
	{NULL, NULL},
};

/* Ports in use by an endpoint of this process: one each. */
static pthread_mutex_t ports_lock = PTHREAD_MUTEX_INITIALIZER;
static bool port_taken[RTE_MAX_ETHPORTS];
static unsigned pool_seq;

/* ---- frames (lent mode) ---------------------------------------------------- */

/* The mbuf whose frame holds p (lent mode), NULL if p is in none: one
 * compare and one load, on the per-message path. */
static inline struct rte_mbuf *mbuf_of(const struct hpn_pep *u, const void *p)
{
	size_t off = (size_t)((const uint8_t *)p - u->region);

	return off < u->region_len ? u->mbuf_table[off / HPN_DPDK_FRAME] : NULL;
}

/* Fresh send mbufs into the cache (all-or-none bulks, halving when short,
 * down to the last one: the reserve wants every frame it can get). */
static void cache_fill(struct hpn_pep *u, uint32_t want)
{
	uint32_t room = (uint32_t)(sizeof(u->free_tx) / sizeof(u->free_tx[0])) - u->nfree;

	if (want > room)
		want = room;
	while (want) {
		uint32_t k = want < 64 ? want : 64;

		while (rte_mempool_get_bulk(u->mp, (void **)(u->free_tx + u->nfree), k))
			if (!(k /= 2))
				return;
		u->nfree += k;
		want -= k;
	}
}

/* A send mbuf nobody holds (refcnt 1, raw): into the cache; the surplus
 * goes back to the pool 128 at a time (one bulk put, not one per frame). */
static void cache_put(struct hpn_pep *u, struct rte_mbuf *m)
{
	u->free_tx[u->nfree++] = m;
	if (u->nfree > u->tx_target + 128 || u->nfree == sizeof(u->free_tx) / sizeof(u->free_tx[0])) {
		rte_mempool_put_bulk(u->mp, (void **)(u->free_tx + u->nfree - 128), 128);
		u->nfree -= 128;
	}
}

static inline struct rte_mbuf *tx_mbuf(struct hpn_pep *u)
{
	if (u->copy) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(u->mp);

		return m;
	}
	if (!u->nfree)
		cache_fill(u, 64);
	if (!u->nfree)
		return NULL;
	/* Its last send in place may have left data_off anywhere in the frame,
	 * and a driver's receive may have set ol_flags outright (dropping
	 * EXTERNAL, keeping nothing we want): both afresh. */
	u->free_tx[u->nfree - 1]->data_off = RTE_PKTMBUF_HEADROOM;
	u->free_tx[u->nfree - 1]->ol_flags = RTE_MBUF_F_EXTERNAL;
	return u->free_tx[--u->nfree];
}

/* Frames lent to the packet layer (pktep.h): a reliable packet is built
 * in one and kept there until acknowledged, so it goes out in place. */
static uint8_t *frame_get(void *arg)
{
	struct hpn_pep *u = arg;

	if (u->nfree <= TX_RESERVE)
		cache_fill(u, u->tx_target - u->nfree);
	if (!u->up || u->nfree <= TX_RESERVE)
		return NULL;
	return (uint8_t *)u->free_tx[--u->nfree]->buf_addr - HPN_DPDK_BUF_OFF + HPN_DPDK_DATA_OFF -
	       HPN_PKTEP_HEADROOM;
}

/* A frame the packet layer is done with (one of ours, or the buffer of a
 * zero-copy send it was built around): its reference goes; a transmission
 * still in flight holds its own, and frees it when the port is done. */
static void frame_put(void *arg, uint8_t *frame)
{
	struct hpn_pep *u = arg;
	struct rte_mbuf *m = mbuf_of(u, frame);

	if (m && rte_pktmbuf_prefree_seg(m))
		cache_put(u, m);
}

static uint32_t frames_free(void *arg)
{
	struct hpn_pep *u = arg;

	/* Topped up in bulk, not a frame at a time - and never left short of
	 * the largest message: it takes its frames whole, so a cache topped up
	 * only below half its target held a 512 KiB message back until a
	 * probe 100 ms later (each one, ping-pong on memif). */
	if (u->nfree + TX_BULK < u->tx_target) {
		if (u->dry_skip) /* the pool was short: not a failing bulk on every send */
			u->dry_skip--;
		else if (cache_fill(u, u->tx_target - u->nfree), u->nfree + TX_BULK < u->tx_target)
			u->dry_skip = 64;
	}
	return u->nfree > TX_RESERVE ? u->nfree - TX_RESERVE : 0;
}

/* ---- sending ---------------------------------------------------------------- */

/* Hand mbufs to the port; what it will not take after a few tries is
 * dropped (the packet layer resends). */
static void tx_flush(struct hpn_pep *u, struct rte_mbuf **m, uint16_t n)
{
	uint16_t done = 0;

	if (unlikely(u->held)) { /* the memif peer is leaving: its link is not to be touched */
		HPN_STAT_ADD(u->st->drops, n);
		rte_pktmbuf_free_bulk(m, n);
		return;
	}
	for (int tries = 0; done < n && tries < 4; tries++)
		done += rte_eth_tx_burst(u->port_id, 0, m + done, n - done);
	if (done < n) {
		HPN_STAT_ADD(u->st->drops, n - done);
		rte_pktmbuf_free_bulk(m + done, n - done);
	}
}

static inline void mbuf_set(struct rte_mbuf *m, uint8_t *eth, uint32_t len)
{
	m->data_off = (uint16_t)(eth - (uint8_t *)m->buf_addr);
	m->data_len = (uint16_t)len;
	m->pkt_len = len;
}

static bool on_link(const struct hpn_pep *u, uint32_t ip)
{
	return ((ip ^ u->ip) & u->mask) == 0;
}

static void arp_out(struct hpn_pep *u, enum hpn_arp_op op, uint32_t spa, uint32_t tpa, const uint8_t *tha)
{
	struct hpn_arp a = {.op = op, .spa = spa, .tpa = tpa};
	struct rte_mbuf *m = tx_mbuf(u);
	uint8_t *f;

	if (!m)
		return;
	memcpy(a.sha, u->mac, 6);
	if (tha)
		memcpy(a.tha, tha, 6);
	f = rte_pktmbuf_mtod(m, uint8_t *);
	memset(f, 0, 60);
	hpn_frame_arp(f, &a);
	memcpy(f + HPN_ARP_FRAME, u->arp_tag, sizeof(u->arp_tag)); /* in the padding */
	mbuf_set(m, f, 60); /* the Ethernet minimum, padded */
	tx_flush(u, &m, 1);
}

static void send_arp(struct hpn_pep *u, enum hpn_arp_op op, uint32_t tpa, const uint8_t *tha)
{
	arp_out(u, op, u->ip, tpa, tha);
}

/* RFC 5227: a probe asks whether anyone holds ip= (sender address 0, so
 * no cache learns it yet); an announcement (a gratuitous request) tells
 * the link's caches our MAC - a peer that knew another port's for this
 * address learns the new one at once. */
static void arp_probe(struct hpn_pep *u)
{
	arp_out(u, HPN_ARP_REQUEST, 0, u->ip, NULL);
}

static void arp_announce(struct hpn_pep *u)
{
	arp_out(u, HPN_ARP_REQUEST, u->ip, u->ip, NULL);
}

/* Slow path (hpn_nb_lookup): ARP for the next hop, at most every 10 ms. */
static bool nb_resolve(void *arg, struct hpn_nb *n, uint32_t ip)
{
	struct hpn_pep *u = arg;
	uint64_t now = hpn_now_ns();
	uint32_t hop = on_link(u, ip) ? ip : u->gw;

	if (n->ip == ip && now - n->asked_ns < NB_RETRY_NS)
		return false;
	*n = (struct hpn_nb){.ip = ip, .asked_ns = now};
	if (!hop) {
		if (!u->unresolved_logged++)
			hpn_log(HPN_LOG_WARN, "dpdk: %s is not in %s's subnet and no gw= is set: its datagrams are dropped",
				inet_ntoa((struct in_addr){ip}), u->name);
		return false;
	}
	if (hop != ip) { /* off-link: the router's MAC, once known */
		struct hpn_nb *g = hpn_nb_find(&u->nb, hop, false);

		if (g && g->ok) {
			memcpy(n->mac, g->mac, 6);
			n->ok = true;
			n->seen_ns = now;
			return true;
		}
	}
	send_arp(u, HPN_ARP_REQUEST, hop, NULL);
	return false;
}

/* A UDP frame's source fills in a neighbour we do not know yet - the
 * answer to it need not wait for ARP - but proves nothing (anyone can
 * forge a source, and nothing was checked yet): the entry is asked for at
 * once and the ARP answer stands over it, so a forged frame redirects at
 * most what leaves in one ARP round trip. Unanswered (the request or its
 * answer lost, our send ring full), it is asked again every 10 ms and
 * forgotten after three asks (nb_verify). A frame never changes or
 * refreshes a known entry (a forger repeating his frame kept his MAC for
 * ever); an off-link source's MAC is the router's, which the way out takes
 * from the router's own entry (nb_resolve). The asking is paced (1 ms): a
 * spray of forged sources is not answered with as many broadcasts. */
#define NB_VERIFY_NS 1000000ull

static inline void nb_from_frame(struct hpn_pep *u, uint32_t ip, const uint8_t *mac)
{
	struct hpn_nb *n;
	uint64_t now;

	if (ip == u->nb.last_ip)
		return; /* the hot entry: known */
	n = hpn_nb_find(&u->nb, ip, true);
	if (!n || (n->ip == ip && n->ok) || !on_link(u, ip) || (mac[0] & 1))
		return;
	now = hpn_now_ns();
	if (now - u->nb_verify_ns < NB_VERIFY_NS)
		return; /* nb_resolve asks when a datagram goes to it */
	u->nb_verify_ns = now;
	*n = (struct hpn_nb){.ip = ip, .ok = true, .unverified = 1, .asked_ns = now, .seen_ns = now};
	memcpy(n->mac, mac, 6);
	u->nb_unverified = true;
	send_arp(u, HPN_ARP_REQUEST, ip, NULL);
}

/* Entries a frame brought, still unanswered: asked again, or forgotten
 * (an ARP answer makes the entry anew, unverified 0). From progress, only
 * while there are some. */
static void nb_verify(struct hpn_pep *u, uint64_t now)
{
	bool left = false;

	for (unsigned i = 0; i < HPN_NB_SIZE; i++) {
		struct hpn_nb *n = &u->nb.e[i];

		if (!n->ip || !n->ok || !n->unverified || now - n->asked_ns < NB_RETRY_NS)
			continue;
		if (n->unverified > 3) {
			n->unverified = 0;
			hpn_nb_forget(&u->nb, n); /* no answer: what the frame said is not believed */
			continue;
		}
		n->unverified++;
		n->asked_ns = now;
		send_arp(u, HPN_ARP_REQUEST, n->ip, NULL);
		left = true;
	}
	for (unsigned i = 0; !left && i < HPN_NB_SIZE; i++)
		left = u->nb.e[i].ok && u->nb.e[i].unverified;
	u->nb_unverified = left;
}

/* The mbuf a datagram can go out in without a copy (its frame, not in
 * flight), else NULL. */
static inline struct rte_mbuf *in_place(const struct hpn_pep *u, const uint8_t *data, uint32_t len)
{
	struct rte_mbuf *m;
	const uint8_t *eth = data - HPN_NET_HDR;

	if (u->copy || (size_t)(data - u->region) >= u->region_len)
		return NULL;
	m = mbuf_of(u, data);
	if (eth < (uint8_t *)m->buf_addr || eth + HPN_NET_HDR + len > (uint8_t *)m->buf_addr + m->buf_len ||
	    rte_mbuf_refcnt_read(m) != 1)
		return NULL;
	return m;
}

static int dp_send(void *arg, const struct hpn_dgram *d, unsigned n)
{
	struct hpn_pep *u = arg;
	struct hpn_flow f = {.src_ip = u->ip, .src_port = u->port};
	struct rte_mbuf *out[BURST_MAX];
	uint16_t k = 0;

	if (!u->up)
		return (int)n; /* nowhere to send yet: lost, resent later */
	hpn_dpdk_thread_register();
	memcpy(f.src_mac, u->mac, 6);
	for (unsigned i = 0; i < n; i++) {
		const struct sockaddr_in *to = d[i].addr;
		const uint8_t *mac = hpn_nb_lookup(&u->nb, to->sin_addr.s_addr, nb_resolve, u);
		uint32_t len = d[i].hlen + d[i].len;
		struct rte_mbuf *m = NULL;
		uint8_t *eth;

		if (!mac || len + HPN_NET_HDR > u->port_mtu + (uint32_t)HPN_ETH_HLEN)
			continue; /* unresolved (or too long for the port): dropped, resent */
		if (!d[i].hlen && (m = in_place(u, d[i].data, d[i].len))) {
			rte_mbuf_refcnt_update(m, 1); /* the port's, dropped when it has sent it */
			eth = d[i].data - HPN_NET_HDR;
		} else {
			m = tx_mbuf(u);
			if (!m)
				continue; /* out of mbufs: lost, resent */
			eth = rte_pktmbuf_mtod(m, uint8_t *);
			if (m->data_off + HPN_NET_HDR + len > m->buf_len) { /* mtu= is checked against it: never */
				rte_pktmbuf_free(m);
				continue;
			}
			if (d[i].hlen) /* a raw datagram's header */
				memcpy(eth + HPN_NET_HDR, d[i].hdr, d[i].hlen);
			memcpy(eth + HPN_NET_HDR + d[i].hlen, d[i].data, d[i].len);
			u->copies++;
		}
		memcpy(f.dst_mac, mac, 6);
		f.dst_ip = to->sin_addr.s_addr;
		f.ttl = hpn_ip4_is_group(f.dst_ip) ? u->pc.mcast_ttl : 0; /* 0: 64 */
		f.dst_port = to->sin_port;
		m->ol_flags = u->copy ? 0 : RTE_MBUF_F_EXTERNAL; /* nothing left from an earlier use */
		if (u->tx_csum) {
			mbuf_set(m, eth, (uint32_t)hpn_frame_udp4_offload(eth, &f, len, u->ip_id++));
			m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM;
			m->l2_len = HPN_ETH_HLEN;
			m->l3_len = HPN_IP4_HLEN;
		} else {
			mbuf_set(m, eth, (uint32_t)hpn_frame_udp4(eth, &f, len, u->ip_id++));
		}
		out[k++] = m;
		if (k == BURST_MAX) {
			tx_flush(u, out, k);
			k = 0;
		}
	}
	if (k)
		tx_flush(u, out, k);
	return (int)n;
}

/* ---- receiving -------------------------------------------------------------- */

static const char *mac_str(const uint8_t *m, char *buf)
{
	sprintf(buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
	return buf;
}

/* Another holder of ip=: counted; set-up's probe fails the endpoint,
 * later it is logged and our claim repeated (an announcement puts the
 * link's caches back on us), each at most every 10 s - two holders
 * defending forever would otherwise flood the link. */
static void conflict(struct hpn_pep *u, const uint8_t *mac)
{
	uint64_t now = hpn_now_ns();
	char b[18];

	u->conflicts++;
	memcpy(u->conflict_mac, mac, 6);
	if (u->probing || (u->conflict_ns && now - u->conflict_ns < CONFLICT_EVERY_NS))
		return;
	u->conflict_ns = now;
	hpn_log(HPN_LOG_ERROR, "dpdk: %s: %s is also used by %s %s: an address conflict (datagrams for it may go "
			       "there); give each its own ip=", u->name, inet_ntoa((struct in_addr){u->ip}),
		memcmp(mac, u->mac, 6) ? "the host at" : "another process on this interface (or its kernel), MAC",
		mac_str(mac, b));
	arp_announce(u);
}

/* Ours, come back (a port that shows its own sends, a hairpin). */
static bool arp_ours(const struct hpn_pep *u, const struct hpn_arp *a, const uint8_t *f, uint32_t len)
{
	return !memcmp(a->sha, u->mac, 6) && len >= HPN_ARP_FRAME + sizeof(u->arp_tag) &&
	       !memcmp(f + HPN_ARP_FRAME, u->arp_tag, sizeof(u->arp_tag));
}

/* ARP (RFC 826): learn who asks us or answers us, answer requests for our
 * address (the kernel does, on a borrowed one); another sender of our
 * address, or a probe for it, is a conflict (RFC 5227). */
static void arp_input(struct hpn_pep *u, struct rte_mbuf *m, const uint8_t *f, uint32_t len)
{
	struct hpn_arp a;

	if (!hpn_frame_parse_arp(f, len, &a) || hpn_ip4_is_group(a.spa) || (a.sha[0] & 1) || arp_ours(u, &a, f, len) ||
	    ((m->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED) && (m->vlan_tci & 0xfff))) { /* another VLAN's: not our link */
		rte_pktmbuf_free(m);
		return;
	}
	if (!u->borrowed && u->ip && (a.spa == u->ip || (!a.spa && a.tpa == u->ip && u->probing)))
		conflict(u, a.sha); /* a probe while we probe: both want it (RFC 5227 2.1.1) */
	if (!a.spa) { /* a probe: answered (to its sender) if it asks for ours, so the prober sees it taken */
		rte_pktmbuf_free(m);
		if (a.op == HPN_ARP_REQUEST && a.tpa == u->ip && !u->borrowed && !u->probing)
			arp_out(u, HPN_ARP_REPLY, u->ip, 0, a.sha);
		return;
	}
	if (a.spa == u->ip) /* someone claims our address: nothing to learn */
		;
	else if (a.tpa == u->ip)
		hpn_nb_learn(&u->nb, a.spa, a.sha, hpn_now_ns(), true);
	else if (hpn_nb_find(&u->nb, a.spa, false)) /* an update of one we know (gratuitous ARP) */
		hpn_nb_learn(&u->nb, a.spa, a.sha, hpn_now_ns(), true);
	rte_pktmbuf_free(m);
	if (a.op == HPN_ARP_REQUEST && a.tpa == u->ip && !u->borrowed && !u->probing) { /* not ours yet */
		send_arp(u, HPN_ARP_REPLY, a.spa, a.sha);
		u->arp_answered++;
	}
}

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/*
 * Leaving a memif link. DPDK's net_memif unmaps its rings from the EAL's
 * interrupt thread when the peer goes, with nothing to keep a burst that
 * already passed its "connected" check from reading them after: a process
 * whose memif peer left crashed in rte_eth_rx_burst (CI; 11 of 150 runs of
 * a multicast pair under load). So before an hpn endpoint closes a memif
 * port it says so in a frame of its own (EtherType 0x88b5, IEEE local
 * experimental, magic "hpn-leave"), and the other side stops touching
 * the port - no burst until its link has gone down and up again (a new
 * peer, whose rings are mapped before the link is up) - and answers; the
 * leaver waits for that answer (at most LEAVE_WAIT_NS) before it closes.
 * A peer that dies without a word can still take the other down: the
 * driver offers nothing to synchronise with.
 */
#define HPN_ETH_P_LEAVE 0x88b5
#define LEAVE_WAIT_NS 50000000ull     /* the leaver waits this long for the answer */
#define LEAVE_HOLD_NS 2000000000ull   /* a link still up this long after: the peer stayed */
#define LEAVE_SETTLE_US 20000         /* the EAL thread's teardown after the link went down */
enum { LEAVE_SAYS = 1, LEAVE_HEARD = 2 };
enum { HELD_UP = 1, HELD_DOWN = 2 };
static const uint8_t leave_magic[9] = {'h', 'p', 'n', '-', 'l', 'e', 'a', 'v', 'e'};

static bool leave_frame(const uint8_t *f, uint32_t len, uint8_t *what)
{
	if (len < HPN_ETH_HLEN + sizeof(leave_magic) + 1 || rd16(f + 12) != HPN_ETH_P_LEAVE ||
	    memcmp(f + HPN_ETH_HLEN, leave_magic, sizeof(leave_magic)))
		return false;
	*what = f[HPN_ETH_HLEN + sizeof(leave_magic)];
	return true;
}

static void tx_flush(struct hpn_pep *u, struct rte_mbuf **m, uint16_t n);
static inline struct rte_mbuf *tx_mbuf(struct hpn_pep *u);
static inline void mbuf_set(struct rte_mbuf *m, uint8_t *eth, uint32_t len);

static void leave_send(struct hpn_pep *u, uint8_t what)
{
	struct rte_mbuf *m = tx_mbuf(u);
	uint8_t *o;

	if (!m)
		return;
	o = rte_pktmbuf_mtod(m, uint8_t *);
	memset(o, 0, 60);
	memset(o, 0xff, 6);
	memcpy(o + 6, u->mac, 6);
	o[12] = HPN_ETH_P_LEAVE >> 8, o[13] = HPN_ETH_P_LEAVE & 0xff;
	memcpy(o + HPN_ETH_HLEN, leave_magic, sizeof(leave_magic));
	o[HPN_ETH_HLEN + sizeof(leave_magic)] = what;
	mbuf_set(m, o, 60);
	tx_flush(u, &m, 1);
}

/* The peer leaves: answer, then hold the port (dp_progress lets go). */
static void memif_hold(struct hpn_pep *u)
{
	leave_send(u, LEAVE_HEARD);
	u->held = HELD_UP;
	u->held_ns = hpn_now_ns();
	hpn_log(HPN_LOG_INFO, "dpdk: %s: the memif peer leaves: the port rests until a peer is back", u->name);
}

static bool link_state(struct hpn_pep *u);

/* A held memif port rests until its link has gone down (the old peer's
 * rings are being let go) and come up (a new peer's are mapped); a link
 * still up after LEAVE_HOLD_NS: the peer did not leave after all. Called
 * by progress and by a held port's receive (an application that only
 * receives must see a new peer too). */
static void held_check(struct hpn_pep *u)
{
	bool up;

	if (likely(!u->held))
		return;
	up = link_state(u);
	if (u->held == HELD_UP && !up)
		u->held = HELD_DOWN;
	if ((u->held == HELD_DOWN && up) || (u->held == HELD_UP && hpn_now_ns() - u->held_ns > LEAVE_HOLD_NS)) {
		u->held = 0;
		hpn_log(HPN_LOG_INFO, "dpdk: %s: memif link in use again", u->name);
	}
}

/* Closing: tell the peer and wait for its answer (its bursts have
 * stopped then), or LEAVE_WAIT_NS. Closing while held: the peer is still
 * reading for our answer - wait until it has gone (the link is down), or
 * our going would unmap its rings under that read. */
static void memif_leave(struct hpn_pep *u)
{
	uint64_t t0 = hpn_now_ns();
	bool heard = false;

	if (!u->memif || !u->up)
		return;
	held_check(u); /* a new peer may be up since */
	if (!u->held) {
		if (!link_state(u))
			return;
		leave_send(u, LEAVE_SAYS);
	}
	while (!u->held && !heard && hpn_now_ns() - t0 < LEAVE_WAIT_NS) {
		struct rte_mbuf *in[32];
		uint16_t got = rte_eth_rx_burst(u->port_id, 0, in, 32);

		for (uint16_t i = 0; i < got; i++) {
			uint8_t what;

			/* What else came is dropped: we close. Both leaving at
			 * once: the memif server yields (answers, then waits as a
			 * held side), the client waits for that answer. */
			if (leave_frame(rte_pktmbuf_mtod(in[i], uint8_t *), in[i]->data_len, &what)) {
				heard |= what == LEAVE_HEARD;
				if (what == LEAVE_SAYS && u->memif_server && !u->held)
					memif_hold(u);
			}
			rte_pktmbuf_free(in[i]);
		}
	}
	if (u->held) {
		while (link_state(u) && hpn_now_ns() - t0 < 4 * LEAVE_WAIT_NS)
			usleep(1000);
		/* The link goes down as the EAL thread starts letting the old
		 * peer go; closing the port before it is done ran two of memif's
		 * teardowns at once (a crash freeing its interrupt handles). It
		 * takes microseconds: give it a loaded machine's scheduling
		 * delay. (A wait, not a handshake: the driver offers none.) */
		usleep(LEAVE_SETTLE_US);
		return;
	}
	/* The answer's own send may still be finishing its ring update. */
	if (heard)
		usleep(2000);
	hpn_log(HPN_LOG_DEBUG, "dpdk: %s: leaving the memif link: %s", u->name,
		heard ? "the peer has stopped reading" : "no answer (not hpn, busy, or gone)");
}

/* An IPv4 address as stored (network order), from anywhere in a frame:
 * the IP header sits 14 bytes in, so its addresses are not 4-aligned. */
static inline uint32_t rd_addr(const uint8_t *p)
{
	uint32_t a;

	memcpy(&a, p, 4);
	return a;
}

/* An ICMP error quoting a datagram of ours: which peer, and why. The
 * packet layer decides what it is worth (only one quoting a peer's session
 * is heard). */
static void icmp_error(struct hpn_pep *u, const uint8_t *icmp, uint32_t len)
{
	const uint8_t *q = icmp + 8;
	uint32_t qhl;
	int err;

	if (len < 8 + 20 + 8 || icmp[0] != 3 || (q[0] >> 4) != 4)
		return;
	qhl = (q[0] & 15u) * 4;
	if (qhl < 20 || len < 8 + qhl + 8 || q[9] != IPPROTO_UDP || memcmp(q + 12, &u->ip, 4) ||
	    memcmp(q + qhl, &u->port, 2))
		return;
	switch (icmp[1]) {
	case 3: err = -ECONNREFUSED; break; /* port unreachable */
	case 0: err = -ENETUNREACH; break;
	case 1: err = -EHOSTUNREACH; break;
	default: return; /* fragmentation needed (we send DF within the MTU), admin... */
	}
	struct sockaddr_in to = {.sin_family = AF_INET};

	memcpy(&to.sin_addr.s_addr, q + 16, 4);
	memcpy(&to.sin_port, q + qhl + 2, 2);
	hpn_pktep_unreachable(u->pk, &to, sizeof(to), err, q + qhl + 8, len - 8 - qhl - 8);
}

/*
 * A UDP datagram to our address but not our port: port unreachable, as
 * the kernel answers, so a peer's connect fails at once instead of timing
 * out. Quoted: the datagram's IPv4 header and up to 520 bytes after it
 * (what fits 576, RFC 1812), enough for an hpn peer to find its session.
 * At most ICMP_PER_MS a millisecond (the kernel's icmp_msgs_per_sec is
 * 1000): a flood to closed ports cannot turn us into a flood.
 */
static void port_unreachable(struct hpn_pep *u, const struct hpn_udp4 *p, const uint8_t *f)
{
	const uint8_t *ip = f + HPN_ETH_HLEN + (p->vlan ? 4 : 0);
	uint32_t hl = (ip[0] & 15u) * 4, qlen = hl + HPN_UDP_HLEN + p->len;
	uint64_t now = hpn_now_ns();
	struct rte_mbuf *m;
	uint8_t *o, *oip, *icmp;
	uint16_t c;

	uint8_t first = ((const uint8_t *)&p->src_ip)[0];

	/* Not for a borrowed address (the kernel answers), not to a frame sent
	 * to a group or broadcast MAC (RFC 1122 3.2.2), not to a source no
	 * host can have (0/8, 127/8, 240/4, our subnet's broadcast). */
	if (u->borrowed || p->vlan || p->dst_ip != u->ip || (p->dst_mac[0] & 1) || (p->src_mac[0] & 1) ||
	    !first || first == 127 || first >= 240 || p->src_ip == u->ip || hpn_ip4_is_group(p->src_ip) ||
	    (on_link(u, p->src_ip) && (p->src_ip & ~u->mask) == ~u->mask))
		return;
	if (now - u->icmp_ms_ns >= 1000000ull) {
		u->icmp_ms_ns = now;
		u->icmp_tokens = ICMP_PER_MS;
	}
	if (!u->icmp_tokens || !(m = tx_mbuf(u)))
		return;
	u->icmp_tokens--;
	if (qlen > 520)
		qlen = 520;
	o = rte_pktmbuf_mtod(m, uint8_t *);
	memcpy(o, p->src_mac, 6);
	memcpy(o + 6, u->mac, 6);
	o[12] = HPN_ETH_P_IP >> 8, o[13] = HPN_ETH_P_IP & 0xff;
	oip = o + HPN_ETH_HLEN;
	icmp = oip + 20;
	memset(oip, 0, 28);
	oip[0] = 0x45;
	oip[2] = (uint8_t)((28 + qlen) >> 8), oip[3] = (uint8_t)(28 + qlen);
	oip[8] = 64;
	oip[9] = 1; /* ICMP */
	memcpy(oip + 12, &u->ip, 4);
	memcpy(oip + 16, &p->src_ip, 4);
	c = hpn_inet_csum(oip, 20, 0);
	memcpy(oip + 10, &c, 2);
	icmp[0] = 3, icmp[1] = 3; /* destination unreachable: port */
	memcpy(icmp + 8, ip, qlen);
	c = hpn_inet_csum(icmp, 8 + qlen, 0);
	memcpy(icmp + 2, &c, 2);
	mbuf_set(m, o, HPN_ETH_HLEN + 28 + qlen);
	tx_flush(u, &m, 1);
}

/*
 * IGMPv3 (RFC 3376): a DPDK port has no kernel to tell the switches and
 * routers which groups to forward to it, so a subscriber says it itself -
 * a state-change report at the join (sent twice, a second apart: the
 * robustness variable's default), a current-state report when a querier
 * asks, and a leave when the endpoint goes. One record per group joined:
 * any source (EXCLUDE {}), or one (INCLUDE {source}: group@source). A
 * borrowed address leaves all this to the kernel.
 */
enum igmp_what { IGMP_JOIN, IGMP_STATE, IGMP_LEAVE };
enum { IGMP_IS_INCLUDE = 1, IGMP_IS_EXCLUDE = 2, IGMP_TO_INCLUDE = 3, IGMP_TO_EXCLUDE = 4, IGMP_ALLOW = 5,
       IGMP_BLOCK = 6 };

/* The group records of a report: 8 bytes each, plus 4 per source. */
static uint32_t igmp_records(const struct hpn_pep *u, enum igmp_what what, uint32_t asked, uint8_t *r,
			     uint16_t *n)
{
	static const uint8_t any[] = {IGMP_TO_EXCLUDE, IGMP_IS_EXCLUDE, IGMP_TO_INCLUDE};
	static const uint8_t one[] = {IGMP_ALLOW, IGMP_IS_INCLUDE, IGMP_BLOCK};
	uint32_t len = 0;

	*n = 0;
	for (unsigned i = 0; i < u->lines.n; i++) {
		uint8_t *rec = r + len;

		if (!u->lines.group[i] || (asked && asked != u->lines.ip[i]))
			continue;
		memset(rec, 0, 8);
		rec[0] = u->lines.source[i] ? one[what] : any[what];
		rec[3] = u->lines.source[i] ? 1 : 0; /* sources */
		memcpy(rec + 4, &u->lines.ip[i], 4);
		if (u->lines.source[i])
			memcpy(rec + 8, &u->lines.source[i], 4);
		len += 8 + 4u * rec[3];
		(*n)++;
	}
	return len;
}

/* asked: only that group's record (a join's state change, a query for
 * one group), 0: every line's. */
static void igmp_report(struct hpn_pep *u, enum igmp_what what, uint32_t asked)
{
	static const uint8_t all_routers_v3[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x16}; /* 224.0.0.22 */
	const uint32_t to = htonl(0xe0000016);
	uint8_t recs[HPN_NET_LINES * 12];
	struct rte_mbuf *m;
	uint8_t *o, *ip, *ig;
	uint16_t c, nrec;
	uint32_t rlen = igmp_records(u, what, asked, recs, &nrec), tot = 24 + 8 + rlen;

	if (!nrec || u->borrowed || !(m = tx_mbuf(u)))
		return;
	o = rte_pktmbuf_mtod(m, uint8_t *);
	memset(o, 0, 60);
	memcpy(o, all_routers_v3, 6);
	memcpy(o + 6, u->mac, 6);
	o[12] = HPN_ETH_P_IP >> 8, o[13] = HPN_ETH_P_IP & 0xff;
	ip = o + HPN_ETH_HLEN;
	ip[0] = 0x46; /* 24 bytes: the router alert option */
	ip[1] = 0xc0; /* internetwork control, as RFC 3376 4.2.13 asks */
	ip[2] = (uint8_t)(tot >> 8);
	ip[3] = (uint8_t)tot;
	ip[6] = 0x40; /* DF */
	ip[8] = 1;    /* TTL 1: this link only */
	ip[9] = 2;    /* IGMP */
	memcpy(ip + 12, &u->ip, 4);
	memcpy(ip + 16, &to, 4);
	ip[20] = 0x94, ip[21] = 0x04; /* router alert (RFC 2113), value 0 */
	c = hpn_inet_csum(ip, 24, 0);
	memcpy(ip + 10, &c, 2);
	ig = ip + 24;
	ig[0] = 0x22; /* membership report, version 3 */
	ig[6] = (uint8_t)(nrec >> 8);
	ig[7] = (uint8_t)nrec;
	memcpy(ig + 8, recs, rlen);
	c = hpn_inet_csum(ig, 8 + rlen, 0);
	memcpy(ig + 2, &c, 2);
	mbuf_set(m, o, HPN_ETH_HLEN + tot < 60 ? 60 : HPN_ETH_HLEN + tot); /* padded to the Ethernet minimum */
	tx_flush(u, &m, 1);
}

/* A query for all groups or ours (IGMP v1-v3 alike: type 0x11 to us or a
 * group we are in): our state, at once (a host may wait up to the query's
 * maximum response time; answering early is allowed). */
static void igmp_input(struct hpn_pep *u, const uint8_t *ip, uint32_t hl, uint32_t tot)
{
	const uint8_t *ig = ip + hl;
	uint32_t asked;

	if (!u->lines.n || u->borrowed || tot < hl + 8 || ig[0] != 0x11 || hpn_inet_csum(ig, tot - hl, 0))
		return;
	memcpy(&asked, ig + 4, 4);
	igmp_report(u, IGMP_STATE, asked);
}

/* IPv4 that is not UDP: ICMP to us - an echo request is answered in the
 * frame it came in, an error goes to the packet layer; IGMP queries. */
static void icmp_input(struct hpn_pep *u, struct rte_mbuf *m, uint8_t *f, uint32_t len)
{
	uint8_t *ip = f + HPN_ETH_HLEN;
	uint32_t hl, tot;
	uint8_t *icmp;

	if (len < HPN_ETH_HLEN + 20 || rd16(f + 12) != HPN_ETH_P_IP)
		goto drop;
	hl = (ip[0] & 15u) * 4;
	tot = rd16(ip + 2);
	if ((ip[0] >> 4) != 4 || hl < 20 || tot < hl + 8 || HPN_ETH_HLEN + tot > len ||
	    (rd16(ip + 6) & 0x3fff) /* a fragment */ || hpn_inet_csum(ip, hl, 0))
		goto drop;
	if (ip[9] == 2 /* IGMP */ && hpn_ip4_is_group(rd_addr(ip + 16))) {
		igmp_input(u, ip, hl, tot);
		goto drop;
	}
	if (ip[9] != 1 /* ICMP */ || memcmp(ip + 16, &u->ip, 4) || hpn_inet_csum(ip + hl, tot - hl, 0))
		goto drop;
	icmp = ip + hl;
	if (icmp[0] != 8 || icmp[1] != 0) { /* not an echo request */
		icmp_error(u, icmp, tot - hl);
		goto drop;
	}
	if (u->borrowed || (f[6] & 1) || !ip[12] /* 0.0.0.0/8 */ || hpn_ip4_is_group(rd_addr(ip + 12)))
		goto drop; /* the kernel answers for a borrowed address */
	/* Echo reply: addresses swapped, type 0; the checksums computed anew
	 * (options and data echoed as they came). */
	memcpy(f, f + 6, 6);
	memcpy(f + 6, u->mac, 6);
	memcpy(ip + 16, ip + 12, 4);
	memcpy(ip + 12, &u->ip, 4);
	ip[8] = 64;
	ip[10] = ip[11] = 0;
	uint16_t c = hpn_inet_csum(ip, hl, 0);

	memcpy(ip + 10, &c, 2);
	icmp[0] = 0;
	icmp[2] = icmp[3] = 0;
	c = hpn_inet_csum(icmp, tot - hl, 0);
	memcpy(icmp + 2, &c, 2);
	mbuf_set(m, f, HPN_ETH_HLEN + tot);
	m->ol_flags = u->copy ? 0 : RTE_MBUF_F_EXTERNAL; /* the receive's flags are no send's */
	u->echo_answered++;
	tx_flush(u, &m, 1);
	return;
drop:
	rte_pktmbuf_free(m);
}

/* The packet layer is done with the last receive: mbufs whose message it
 * handed to the application in place (data NULL) are the application's
 * (hpn_buf_put frees them), the rest go back to the pool now. */
static void dp_rx_done(void *arg, struct hpn_dgram *d, unsigned n)
{
	struct hpn_pep *u = arg;
	struct rte_mbuf *back[BURST_MAX];
	unsigned k = 0;

	for (unsigned i = 0; i < n && i < u->nlent; i++)
		if (d[i].data || u->copy)
			back[k++] = u->lent[i];
	if (k)
		rte_pktmbuf_free_bulk(back, k);
	u->nlent = 0;
}


/* What the port's receive offload found good (anything else - bad,
 * unknown, not checked - is checked here). */
static inline unsigned rx_verified(const struct rte_mbuf *m)
{
	uint64_t l4 = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;

	/* L4 NONE: the data is good, the checksum field only partial
	 * (virtio): summing it here would refuse a good frame. */
	return ((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD ? HPN_FRAME_IP_VERIFIED : 0) |
	       (l4 == RTE_MBUF_F_RX_L4_CKSUM_GOOD || l4 == RTE_MBUF_F_RX_L4_CKSUM_NONE ? HPN_FRAME_UDP_VERIFIED : 0);
}

static int dp_recv_once(void *arg, struct hpn_dgram *d, unsigned n, bool *full)
{
	struct hpn_pep *u = arg;
	struct rte_mbuf *in[BURST_MAX];
	uint16_t got;
	unsigned out = 0;

	if (unlikely(u->held))
		held_check(u);
	*full = false;
	if (!u->up || unlikely(u->held))
		return 0;
	hpn_dpdk_thread_register();
	/* The send reserve before the port: it refills its receive ring from
	 * the same mempool, and an application that holds what it receives
	 * would otherwise get, frame by frame, every one we send an ACK or a
	 * keepalive in (a frame sent goes back to the mempool, not to us) -
	 * then we fall silent and the peer gives us up. */
	if (unlikely(u->nfree < TX_RESERVE) && !u->copy)
		cache_fill(u, TX_RESERVE - u->nfree);
	got = rte_eth_rx_burst(u->port_id, 0, in, (uint16_t)(n < BURST_MAX ? n : BURST_MAX));
	*full = got == (n < BURST_MAX ? n : BURST_MAX);
	for (uint16_t i = 0; i < got; i++) {
		struct rte_mbuf *m = in[i];
		uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
		uint32_t len = m->data_len;
		struct sockaddr_in *from = (void *)d[out].addr;
		struct hpn_udp4 p;
		enum hpn_frame_err e;

		if (i + 1 < got)
			rte_prefetch0(rte_pktmbuf_mtod(in[i + 1], void *));
		if (m->nb_segs != 1) { /* longer than a frame: not from a peer within our MTU */
			hpn_frame_count_bad(u->st, HPN_FRAME_TRUNC);
			rte_pktmbuf_free(m);
			continue;
		}
		e = u->rx_csum ? hpn_frame_parse_udp4_verified(f, len, &p, rx_verified(m)) : hpn_frame_parse_udp4(f, len, &p);
		if (e == HPN_FRAME_NOT_IP4 && len >= HPN_ETH_HLEN && rd16(f + 12) == HPN_ETH_P_ARP) {
			arp_input(u, m, f, len);
			continue;
		}
		if (unlikely(e == HPN_FRAME_NOT_IP4 && u->memif)) {
			uint8_t what;

			if (leave_frame(f, len, &what) && what == LEAVE_SAYS) {
				/* Nothing after this burst touches the port: what came
				 * with it is freed, not handed on (the link ends). */
				rte_pktmbuf_free(m);
				rte_pktmbuf_free_bulk(in + i + 1, got - i - 1);
				memif_hold(u);
				break;
			}
		}
		if (e == HPN_FRAME_NOT_UDP) {
			icmp_input(u, m, f, len);
			continue;
		}
		if (e) {
			hpn_frame_count_bad(u->st, e);
			rte_pktmbuf_free(m);
			continue;
		}
		/* Another VLAN's (tagged, or its tag stripped by the port) or
		 * another host's (a promiscuous port, a bridge): not ours. */
		if (!hpn_frame_to_us(&p, u->mac) ||
		    ((m->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED) && (m->vlan_tci & 0xfff))) {
			HPN_STAT_ADD(u->st->drops, 1);
			rte_pktmbuf_free(m);
			continue;
		}
		if (u->plain ? !hpn_net_lines_take(&u->lines, u->ip, u->port, p.dst_ip, p.dst_port)
			     : p.dst_port != u->port || (p.dst_ip != u->ip && (!u->group || p.dst_ip != u->group))) {
			if (p.dst_ip == u->ip)
				port_unreachable(u, &p, f);
			HPN_STAT_ADD(u->st->drops, 1);
			rte_pktmbuf_free(m);
			continue;
		}
		if (!p.src_ip || p.src_ip == 0xffffffff || p.src_ip == u->ip || hpn_ip4_is_group(p.src_ip) ||
		    (p.src_mac[0] & 1) || p.vlan || p.len > d[out].len) {
			/* Not ours (another VLAN: we send untagged), a source nobody
			 * can have, or too long. */
			HPN_STAT_ADD(u->st->drops, 1);
			rte_pktmbuf_free(m);
			continue;
		}
		*from = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = p.src_port, .sin_addr.s_addr = p.src_ip};
		d[out].alen = sizeof(*from);
		d[out].data = (uint8_t *)p.payload; /* lent: where the port wrote it */
		d[out].len = p.len;
		d[out].rx_ns = 0; /* the burst's time (TSC-cheap: one clock read per burst, in the packet layer) */
		d[out].dst_ip = p.dst_ip;
		d[out].dst_port = p.dst_port;
		/* In a frame of the core's pool (lent mode), the mbuf made free
		 * of the port's use now: if the packet layer hands the message
		 * to the application in place, hpn_buf_put is all it takes. */
		d[out].flags = 0;
		if (!u->copy) {
			m->ol_flags = RTE_MBUF_F_EXTERNAL; /* a driver may have set them outright */
			rte_pktmbuf_prefree_seg(m);
			d[out].flags = HPN_DGRAM_POOL;
		}
		nb_from_frame(u, p.src_ip, p.src_mac);
		u->lent[out++] = m;
	}
	u->nlent = out;
	return (int)out;
}

static int dp_recv(void *arg, struct hpn_dgram *d, unsigned n)
{
	return hpn_net_recv(dp_recv_once, arg, d, n);
}

/* Lent mode: the port receives into frames of the pool; with (nearly)
 * every one held by the application, it has none to receive into. Not
 * only none: the send reserve keeps what little the application leaves,
 * and a frame our own ACK freed lets the port take one stale packet now
 * and then - a trickle that is not hearing, and that once made the
 * silence count (a live peer given up while the reader held its frames). */
static bool deaf(void *arg)
{
	struct hpn_pep *u = arg;

	if (!u->up || rte_mempool_avail_count(u->mp) >= BURST_MAX)
		return false;
	/* Our own send cache may be what the port lacks (a small frames=):
	 * all of it but the reserve goes back before we call it deaf. */
	if (u->nfree > TX_RESERVE) {
		rte_mempool_put_bulk(u->mp, (void **)(u->free_tx + TX_RESERVE), u->nfree - TX_RESERVE);
		u->nfree = TX_RESERVE;
		return rte_mempool_avail_count(u->mp) < BURST_MAX;
	}
	return true;
}

static const struct hpn_dgram_io lent_io = {.send = dp_send, .recv = dp_recv, .rx_done = dp_rx_done,
					    .format = hpn_net_format, .frame_get = frame_get, .frame_put = frame_put,
					    .frames_free = frames_free, .deaf = deaf};
static const struct hpn_dgram_io copy_io = {.send = dp_send, .recv = dp_recv, .rx_done = dp_rx_done,
					    .format = hpn_net_format};

/* ---- set-up ------------------------------------------------------------------ */

/* "A.B.C.D/N" -> address and mask (network order). */
static int parse_cidr(const char *s, uint32_t *ip, uint32_t *mask)
{
	char a[32];
	const char *slash = strchr(s, '/');
	char *end;
	long n;
	struct in_addr in;
	uint32_t host, m;

	if (!slash) /* the prefix decides what is on the link: never guessed */
		return -EINVAL;
	n = strtol(slash + 1, &end, 10);
	if (end == slash + 1 || *end || n < 1 || n > 32)
		return -EINVAL;
	snprintf(a, sizeof(a), "%.*s", (int)(slash - s), s);
	if (inet_pton(AF_INET, a, &in) != 1 || !in.s_addr || hpn_ip4_is_group(in.s_addr) ||
	    (ntohl(in.s_addr) >> 24) == 127)
		return -EINVAL;
	m = n == 32 ? 0xffffffffu : ~(0xffffffffu >> n);
	host = ntohl(in.s_addr) & ~m;
	if (n <= 30 && (!host || host == ~m)) /* the subnet's own address, or its broadcast */
		return -EINVAL;
	*ip = in.s_addr;
	*mask = htonl(m);
	return 0;
}

/* A vdev's key=value (iface= of af_packet and af_xdp), or "". */
static void devarg(const char *vdev, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);

	out[0] = 0;
	for (const char *p = strchr(vdev, ','); p; p = strchr(p + 1, ','))
		if (!strncmp(p + 1, key, kl) && p[1 + kl] == '=') {
			snprintf(out, len, "%.*s", (int)strcspn(p + 2 + kl, ","), p + 2 + kl);
			return;
		}
}

/* An IPv4 address of a kernel interface (a vdev riding on it): the first,
 * or *ip itself if nonzero (does the kernel hold it?). 0 or -EADDRNOTAVAIL. */
static int kernel_addr(const char *ifname, uint32_t *ip, uint32_t *mask)
{
	struct ifaddrs *ifa, *i;
	int ret = -EADDRNOTAVAIL;

	if (getifaddrs(&ifa))
		return -errno;
	for (i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && !strcmp(i->ifa_name, ifname) &&
		    (!*ip || ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == *ip)) {
			*ip = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
			*mask = i->ifa_netmask ? ((struct sockaddr_in *)i->ifa_netmask)->sin_addr.s_addr : 0xffffffff;
			ret = 0;
			break;
		}
	freeifaddrs(ifa);
	return ret;
}

/* A memif server's socket file (abstract=no) left by a process that died
 * (nobody accepts on it) would fail the server with "Address already in
 * use": removed. One a live process listens on is left alone (and the
 * probe says so). Abstract sockets, memif's default, go with their
 * process. */
static void memif_stale_socket(struct hpn_pep *u)
{
	char role[16], path[108], abstract[8];
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd;

	devarg(u->vdev, "role", role, sizeof(role));
	devarg(u->vdev, "socket", path, sizeof(path));
	devarg(u->vdev, "socket-abstract", abstract, sizeof(abstract));
	if (strncmp(u->name, "net_memif", 9) || strcmp(role, "server") || strcmp(abstract, "no") ||
	    access(path[0] ? path : "/run/memif.sock", F_OK))
		return;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path[0] ? path : "/run/memif.sock");
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) && errno == ECONNREFUSED) {
		hpn_log(HPN_LOG_INFO, "dpdk: removing %s, a memif socket nobody listens on (left by a process that died)",
			a.sun_path);
		unlink(a.sun_path);
	}
	if (fd >= 0)
		close(fd);
}

/* net_af_xdp brings libbpf and libxdp, which print to stderr unless told
 * otherwise ("elf: skipping unrecognized data section", "No bpffs found",
 * several lines an endpoint): while the plugin sets a port up or closes
 * it, their lines go to hpn_log (debug), the application's callbacks back
 * after. Found in the libraries loaded (the plugin does not link them;
 * the EAL loaded them with the driver). */
typedef int (*lib_print_fn)(int level, const char *fmt, va_list ap);
typedef lib_print_fn (*lib_set_print_fn)(lib_print_fn fn);

static const char *const print_libs[][3] = {{"libbpf.so.1", "libbpf.so.0", "libbpf_set_print"},
					    {"libxdp.so.1", "libxdp.so.1", "libxdp_set_print"}};

static int lib_print(int level, const char *fmt, va_list ap)
{
	char line[256];

	if (level >= 2) /* LIBBPF_DEBUG, LIBXDP_DEBUG */
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = 0;
	hpn_log(HPN_LOG_DEBUG, "dpdk: %s", line);
	return 0;
}

static lib_set_print_fn lib_setter(unsigned i)
{
	void *h = dlopen(print_libs[i][0], RTLD_LAZY | RTLD_NOLOAD);
	lib_set_print_fn f;

	if (!h) /* a DPDK built against libbpf 0.x */
		h = dlopen(print_libs[i][1], RTLD_LAZY | RTLD_NOLOAD);
	f = h ? (lib_set_print_fn)(uintptr_t)dlsym(h, print_libs[i][2]) : NULL;
	if (h)
		dlclose(h); /* only the reference NOLOAD took: the library stays */
	return f;
}

/* Overlapping control calls (endpoints on several threads): the first to
 * begin saves the application's callbacks, the last to end gives them back. */
static pthread_mutex_t print_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned print_depth;
static lib_print_fn print_app[2];
static bool print_set[2];

static void libs_quiet(void)
{
	pthread_mutex_lock(&print_mu);
	if (!print_depth++)
		for (unsigned i = 0; i < 2; i++) {
			lib_set_print_fn set = lib_setter(i);

			print_set[i] = set != NULL;
			print_app[i] = set ? set(lib_print) : NULL;
		}
	pthread_mutex_unlock(&print_mu);
}

static void libs_restore(void)
{
	pthread_mutex_lock(&print_mu);
	if (!--print_depth)
		for (unsigned i = 0; i < 2; i++) {
			lib_set_print_fn set = print_set[i] ? lib_setter(i) : NULL;

			/* A library loaded in between had nothing of the application's
			 * to give back (NULL would silence its default). */
			if (set && print_app[i] != lib_print)
				set(print_app[i]);
		}
	pthread_mutex_unlock(&print_mu);
}

/* The ethdev: an existing one by name, else hot-plugged (vdev, PCI). */
static int find_port(struct hpn_pep *u)
{
	const char *what = u->vdev[0] ? u->vdev : u->pci;
	char dev[sizeof(u->vdev) + 32], cnt[16];
	int ret;

	/* net_af_packet's receive ring is its framecnt= (512 by default:
	 * 13 ms of a 2 x 20k packets/s feed; rxd= is ignored): half the
	 * frames, as af_xdp's fill ring, unless the vdev says. A feed
	 * stopped for 100 ms nine times lost 37499 of 400006 packets with
	 * 512, none with 8192. */
	devarg(u->vdev, "framecnt", cnt, sizeof(cnt));
	if (!cnt[0])
		devarg(u->vdev, "framesz", cnt, sizeof(cnt)); /* the ring's shape is the user's then */
	if (!cnt[0])
		devarg(u->vdev, "blocksz", cnt, sizeof(cnt));
	if (!strncmp(u->vdev, "net_af_packet", 13) && !cnt[0]) {
		uint32_t n = 512; /* a power of two: a whole number of frames per block, whatever the page */

		while (n * 2 <= u->nframes / 2 && n < 32768)
			n *= 2;
		snprintf(dev, sizeof(dev), "%s,framecnt=%u", u->vdev, n);
		what = dev;
	}

	hpn_dpdk_errors_reset();
	memif_stale_socket(u);
	if (rte_eth_dev_get_port_by_name(u->name, &u->port_id) == 0) {
		/* Probed by the EAL: from hpn's own arguments (-a of a PCI
		 * port) it is ours to remove; from eal= or an application that
		 * started the EAL, it is theirs. */
		u->own = hpn_dpdk_eal_default();
		return 0;
	}
	if (u->pci[0] && !hpn_dpdk_eal_has_pci())
		return hpn_set_error(-ENODEV, "dpdk: port=%s: the EAL was started without the PCI bus (this process's "
					      "first dpdk endpoint used a vdev); start it with eal=\"... -a %s\"",
				     u->pci, u->pci);
	ret = rte_dev_probe(what);
	if (ret == -EFAULT && u->vdev[0]) /* the EAL's "failed to parse device": no driver by that name */
		return hpn_set_error(-ENODEV, "dpdk: vdev=\"%s\": no DPDK driver of that name here (a vdev is named "
					      "after its driver: net_memif0, net_af_packet0, net_af_xdp0, net_tap0, "
					      "net_null0 ...): %s", what, hpn_dpdk_last_error());
	if (ret)
		return hpn_set_error(ret == -EEXIST ? -EBUSY : ret < 0 ? ret : -ENODEV,
				     u->vdev[0] ? "dpdk: vdev=\"%s\": cannot create it: %s (%s)"
						: "dpdk: port=%s: no such port, or not bound to a DPDK driver "
						  "(tools/hpn-dpdk status): %s (%s)",
				     what, hpn_dpdk_last_error(), rte_strerror(ret < 0 ? -ret : ENODEV));
	if (rte_eth_dev_get_port_by_name(u->name, &u->port_id))
		return hpn_set_error(-ENODEV, "dpdk: %s was probed but is no ethdev named %s", what, u->name);
	u->own = true;
	return 0;
}

static int take_port_id(struct hpn_pep *u)
{
	int ret = 0;

	pthread_mutex_lock(&ports_lock);
	if (port_taken[u->port_id])
		ret = hpn_set_error(-EBUSY, "dpdk: %s is in use by another endpoint of this process: one per port",
				    u->name);
	else
		port_taken[u->port_id] = u->taken = true;
	pthread_mutex_unlock(&ports_lock);
	return ret;
}

static int port_start(struct hpn_pep *u)
{
	struct rte_eth_dev_info info;
	struct rte_eth_conf conf;
	struct rte_ether_addr mac;
	uint16_t nrx = u->nrxd, ntx = u->ntxd, mtu = 1500;
	int socket = rte_eth_dev_socket_id(u->port_id), ret;
	uint32_t need = u->pc.mtu + HPN_IP4_HLEN + HPN_UDP_HLEN;

	memset(&conf, 0, sizeof(conf));
	hpn_dpdk_errors_reset();
	ret = rte_eth_dev_info_get(u->port_id, &info);
	if (ret)
		return hpn_set_error(ret, "dpdk: %s: no device info: %s", u->name, rte_strerror(-ret));
	snprintf(u->driver, sizeof(u->driver), "%s", info.driver_name ? info.driver_name : "?");
	rte_eth_dev_get_mtu(u->port_id, &mtu);
	if (mtu < need)
		mtu = (uint16_t)need; /* the port is set to carry what mtu= asks */
	uint32_t limit = info.max_mtu;

	if (info.max_rx_pktlen > HPN_ETH_HLEN + 4 && info.max_rx_pktlen - HPN_ETH_HLEN - 4 < limit)
		limit = info.max_rx_pktlen - HPN_ETH_HLEN - 4;
	if (mtu > limit)
		return hpn_set_error(-EINVAL, "dpdk: mtu=%u needs an IP MTU of %u; %s (%s) takes at most %u", u->pc.mtu,
				     need, u->name, u->driver, limit);
	conf.rxmode.mtu = mtu;
	/* Checksums by the port where it offers both (the payload is then
	 * never read on the way out, nor on the way in when it says good). */
	const uint64_t tx_ck = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
	const uint64_t rx_ck = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;

	u->tx_csum = (info.tx_offload_capa & tx_ck) == tx_ck && !u->no_offload;
	u->rx_csum = (info.rx_offload_capa & rx_ck) == rx_ck && !u->no_offload;
	if (u->tx_csum)
		conf.txmode.offloads |= tx_ck;
	if (u->rx_csum)
		conf.rxmode.offloads |= rx_ck;
	ret = rte_eth_dev_configure(u->port_id, 1, 1, &conf);
	ret = ret ?: rte_eth_dev_adjust_nb_rx_tx_desc(u->port_id, &nrx, &ntx);
	if (ret)
		return hpn_set_error(ret, "dpdk: %s (%s): cannot configure one queue pair: %s (%s)", u->name, u->driver,
				     rte_strerror(-ret), hpn_dpdk_last_error());
	ret = rte_eth_rx_queue_setup(u->port_id, 0, nrx, socket < 0 ? SOCKET_ID_ANY : (unsigned)socket, NULL, u->mp);
	ret = ret ?: rte_eth_tx_queue_setup(u->port_id, 0, ntx, socket < 0 ? SOCKET_ID_ANY : (unsigned)socket, NULL);
	if (ret)
		return hpn_set_error(ret, "dpdk: %s (%s): cannot set up its queues (%u/%u descriptors): %s (%s)",
				     u->name, u->driver, nrx, ntx, rte_strerror(-ret), hpn_dpdk_last_error());
	ret = rte_eth_dev_start(u->port_id);
	if (ret)
		return hpn_set_error(ret, "dpdk: %s (%s): cannot start: %s (%s)%s", u->name, u->driver, rte_strerror(-ret),
				     hpn_dpdk_last_error(),
				     strstr(u->vdev, "role=client") && !strncmp(u->name, "net_memif", 9)
					     ? " - a memif client needs its server running: start that first" : "");
	u->started = true;
	ret = rte_eth_promiscuous_disable(u->port_id);
	if (ret && ret != -ENOTSUP)
		hpn_log(HPN_LOG_INFO, "dpdk: %s: promiscuous mode stays on: %s", u->name, rte_strerror(-ret));
	rte_eth_macaddr_get(u->port_id, &mac);
	memcpy(u->mac, mac.addr_bytes, 6);
	u->port_mtu = mtu;
	u->nrxd = nrx;
	u->ntxd = ntx;
	return 0;
}

static bool link_state(struct hpn_pep *u)
{
	struct rte_eth_link l;

	memset(&l, 0, sizeof(l));
	return rte_eth_link_get_nowait(u->port_id, &l) == 0 && l.link_status == RTE_ETH_LINK_UP;
}

/* Borrowed address: the port number is reserved in the kernel, so it
 * neither gives it to another socket nor answers our peers' datagrams
 * (which it sees too, beside the vdev) with port unreachable. */
static int reserve_port(struct hpn_pep *u, uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = u->ip, .sin_port = port};
	socklen_t alen = sizeof(a);
	int small = 4096;

	if (u->port_fd >= 0) /* a listen that failed before */
		close(u->port_fd);
	u->port_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (u->port_fd >= 0)
		setsockopt(u->port_fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)); /* never read */
	if (u->port_fd < 0 || bind(u->port_fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(u->port_fd, (struct sockaddr *)&a, &alen))
		return hpn_set_error(-errno, "dpdk: cannot reserve UDP port %u on %s: %s", ntohs(port),
				     inet_ntoa(a.sin_addr), strerror(errno));
	u->port = a.sin_port;
	return 0;
}

/* Our port: the one asked for, or (0) one of the ephemeral range. */
static int bind_port(struct hpn_pep *u, uint16_t port)
{
	if (u->borrowed)
		return reserve_port(u, port);
	if (!port)
		port = htons((uint16_t)(49152 + (hpn_now_ns() ^ (uint64_t)getpid() * 2654435761u) % 16384));
	u->port = port;
	return 0;
}

static void release_mbufs(struct hpn_pep *u)
{
	if (u->nfree)
		rte_mempool_put_bulk(u->mp, (void **)u->free_tx, u->nfree);
	u->nfree = 0;
}

/* What the port counted, said once at the end (its drops are ours to
 * explain: a full receive ring, no mbufs, transmit errors). */
static void log_port_stats(struct hpn_pep *u)
{
	struct rte_eth_stats es;

	if (!u->started || rte_eth_stats_get(u->port_id, &es))
		return;
	hpn_log(es.imissed || es.ierrors || es.oerrors || es.rx_nombuf ? HPN_LOG_INFO : HPN_LOG_DEBUG,
		"dpdk: %s: port counted %llu frames in, %llu out; missed %llu, receive errors %llu, no mbuf %llu, "
		"transmit errors %llu", u->name, (unsigned long long)es.ipackets, (unsigned long long)es.opackets,
		(unsigned long long)es.imissed, (unsigned long long)es.ierrors, (unsigned long long)es.rx_nombuf,
		(unsigned long long)es.oerrors);
}

/* The frames, for a PCI device's DMA (vfio with IOVA as VA): DPDK has to
 * know memory it did not allocate, and the IOMMU has to map it. Virtual
 * devices copy with the CPU and need neither. */
static int dma_map(struct hpn_pep *u, struct rte_device *dev)
{
	int ret;

	if (!u->pci[0] || u->copy)
		return 0;
	ret = rte_extmem_register(u->region, u->region_len, NULL, 0, 4096);
	if (ret && rte_errno != EEXIST)
		return hpn_set_error(-rte_errno, "dpdk: cannot register the frames with DPDK: %s",
				     rte_strerror(rte_errno));
	ret = rte_dev_dma_map(dev, u->region, (uint64_t)(uintptr_t)u->region, u->region_len);
	if (ret) {
		rte_extmem_unregister(u->region, u->region_len);
		return hpn_set_error(-rte_errno, "dpdk: %s: cannot map the frames for DMA: %s (%s); mbufs=copy avoids "
						 "it", u->name, rte_strerror(rte_errno), hpn_dpdk_last_error());
	}
	u->dma_mapped = true;
	return 0;
}

static void dma_unmap(struct hpn_pep *u, struct rte_device *dev)
{
	if (!u->dma_mapped)
		return;
	if (dev)
		rte_dev_dma_unmap(dev, u->region, (uint64_t)(uintptr_t)u->region, u->region_len);
	rte_extmem_unregister(u->region, u->region_len);
	u->dma_mapped = false;
}

/* Undo set_up as far as it went. Only a port this endpoint took is
 * touched: stopped, and - when hpn brought the device - closed and
 * removed, so an endpoint made again can create it again. */
static void port_close(struct hpn_pep *u)
{
	struct rte_eth_dev_info info;
	struct rte_device *dev = NULL;
	int ret;

	if (!u->taken)
		return;
	if (rte_eth_dev_info_get(u->port_id, &info) == 0)
		dev = info.device;
	log_port_stats(u);
	if (u->started && (ret = rte_eth_dev_stop(u->port_id)))
		hpn_log(HPN_LOG_WARN, "dpdk: %s: stop: %s", u->name, rte_strerror(-ret));
	release_mbufs(u);
	if (u->own) {
		ret = rte_eth_dev_close(u->port_id); /* the receive ring's mbufs go back */
		if (ret)
			hpn_log(HPN_LOG_WARN, "dpdk: %s: close: %s", u->name, rte_strerror(-ret));
		dma_unmap(u, dev);
		if (dev && (ret = rte_dev_remove(dev)))
			hpn_log(HPN_LOG_WARN, "dpdk: %s: cannot remove it: %s", u->name, rte_strerror(-ret));
	} else {
		dma_unmap(u, dev);
	}
	pthread_mutex_lock(&ports_lock);
	port_taken[u->port_id] = false;
	pthread_mutex_unlock(&ports_lock);
	u->started = u->up = u->taken = false;
}

static void dp_close(struct hpn_pep *u)
{
	if (!u)
		return;
	hpn_pktep_destroy(u->pk); /* says goodbye through the port: first */
	if (u->taken)
		igmp_report(u, IGMP_LEAVE, 0);
	if (u->taken)
		memif_leave(u); /* before its rings go: the peer stops reading them first */
	if (u->taken)
		hpn_log(HPN_LOG_DEBUG, "dpdk: %s: %llu datagrams copied into an mbuf, %llu ARP requests and %llu pings "
				       "answered", u->name, (unsigned long long)u->copies,
			(unsigned long long)u->arp_answered, (unsigned long long)u->echo_answered);
	libs_quiet();
	port_close(u);
	libs_restore();
	if (u->mp)
		hpn_mbufs_free(u->mp, !u->copy);
	if (u->port_fd >= 0)
		close(u->port_fd);
	hpn_lock_drop(&u->addr_lock);
	free(u);
}

static int dp_probe(struct hpn_caps *caps, char *why, size_t why_len)
{
	(void)why;
	(void)why_len;
	caps->max_msg_size = 65536;
	caps->inline_size = 0;
	caps->flags = HPN_CAP_KERNEL_BYPASS | HPN_CAP_ORDERED | HPN_CAP_RELIABLE;
	caps->headroom = 0;
	caps->preference = 4; /* needs a port named in config: never picked by plugin=auto */
	return 0;
}

/* The configuration keys of the port (the packet layer's are read apart). */
static int read_cfg(struct hpn_pep *u)
{
	const char *vdev = hpn_core_cfg(u->core, "vdev"), *pci = hpn_core_cfg(u->core, "port");
	const char *ip = hpn_core_cfg(u->core, "ip"), *gw = hpn_core_cfg(u->core, "gw");
	const char *mb = hpn_core_cfg(u->core, "mbufs");
	uint64_t frames, rxd, txd;
	int ret;

	if (vdev && pci)
		return hpn_set_error(-EINVAL, "config: port= and vdev= both given: an endpoint has one port (port= "
					      "names a device present, vdev= makes one)");
	if (!vdev == !pci || (vdev && !vdev[0]) || (pci && !pci[0]))
		return hpn_set_error(-EINVAL, "config: dpdk needs its port: port=PCI_ADDRESS or vdev=\"DEVICE,ARGS\" "
					      "(one of them), e.g. vdev=\"net_memif0,role=server,socket=/tmp/m.sock\"");
	if ((vdev && strlen(vdev) >= sizeof(u->vdev)) || (pci && strlen(pci) >= sizeof(u->pci)))
		return hpn_set_error(-EINVAL, "config: %s= is too long", vdev ? "vdev" : "port");
	snprintf(u->vdev, sizeof(u->vdev), "%s", vdev ? vdev : "");
	snprintf(u->pci, sizeof(u->pci), "%s", pci ? pci : "");
	snprintf(u->name, sizeof(u->name), "%.*s", (int)strcspn(vdev ? vdev : pci, ","), vdev ? vdev : pci);
	u->memif = !strncmp(u->name, "net_memif", 9);
	u->memif_server = u->memif && !strstr(vdev, "role=client"); /* memif's default role is server */
	if (vdev)
		devarg(vdev, "iface", u->kiface, sizeof(u->kiface));
	if (ip && parse_cidr(ip, &u->ip_cfg, &u->mask))
		return hpn_set_error(-EINVAL, "config: ip='%s': want the port's IPv4 address and prefix, A.B.C.D/N - a host's (not the subnet's own address, its broadcast, loopback or a group)", ip);
	if (!ip && !u->kiface[0])
		return hpn_set_error(-EINVAL, "config: dpdk needs ip=A.B.C.D/N: a DPDK port has no address of its own");
	if (gw && (inet_pton(AF_INET, gw, &u->gw) != 1 || !u->gw))
		return hpn_set_error(-EINVAL, "config: gw='%s': want an IPv4 address", gw);
	if (gw && ip && ((u->gw ^ u->ip_cfg) & u->mask))
		return hpn_set_error(-EINVAL, "config: gw=%s is not on ip=%s's subnet: the router must be reachable "
					      "on the link", gw, ip);
	if (gw && ip && u->gw == u->ip_cfg)
		return hpn_set_error(-EINVAL, "config: gw=%s is the port's own address", gw);
	if (mb && strcmp(mb, "lent") && strcmp(mb, "copy"))
		return hpn_set_error(-EINVAL, "config: mbufs='%s': lent or copy", mb);
	/* net_af_xdp's mempool is its UMEM: the data must follow the mbuf. */
	u->copy = mb ? !strcmp(mb, "copy") : !strncmp(u->name, "net_af_xdp", 10);
	u->mb_cfg = mb != NULL;
	if (mb && !strcmp(mb, "lent") && !strncmp(u->name, "net_af_xdp", 10))
		return hpn_set_error(-EINVAL, "config: mbufs=lent: net_af_xdp uses its mempool as its UMEM and needs "
					      "the data inside it; mbufs=copy (the default there)");
	int offload = 1;

	ret = hpn_pktep_read_cfg(u->core, 1472, u->copy ? COPY_MTU_MAX : MTU_MAX, 1472, false, &u->pc);
	/* Plain datagrams (feeds): deeper receive rings - a reader may stop
	 * longer (net_af_packet: framecnt= from frames, find_port). */
	ret = ret ?: hpn_core_cfg_u64(u->core, "frames", u->pc.plain ? 16384 : 4096, 512, 1u << 20, &frames);
	ret = ret ?: hpn_core_cfg_u64(u->core, "rxd", u->pc.plain ? 4096 : 1024, 64, 16384, &rxd);
	ret = ret ?: hpn_core_cfg_u64(u->core, "txd", 1024, 64, 16384, &txd);
	ret = ret ?: hpn_core_cfg_u64(u->core, "link_wait_ms", 1000, 0, 60000, &u->link_wait_ms);
	ret = ret ?: hpn_core_cfg_bool(u->core, "csum_offload", 1, &offload);
	u->no_offload = !offload;
	if (ret)
		return ret;
	if (!u->pc.mcast_ttl)
		return hpn_set_error(-EINVAL, "config: mcast_ttl=0 (this host only) needs plugin=udp: dpdk sends on "
					      "the wire");
	u->nframes = (uint32_t)frames;
	u->nrxd = (uint16_t)rxd;
	u->ntxd = (uint16_t)txd;
	return 0;
}

/* Memory: the core's frames as mbufs (lent), or DPDK's own (copy). */
static int open_mbufs(struct hpn_pep *u)
{
	char name[RTE_MEMPOOL_NAMESIZE];
	int ret;

	snprintf(name, sizeof(name), "hpn%u", __atomic_fetch_add(&pool_seq, 1, __ATOMIC_RELAXED));
	if (u->copy)
		return hpn_mbufs_copy(name, u->nframes, SOCKET_ID_ANY, &u->mp);
	/* The core puts its bookkeeping (32 B) in front and rounds the whole
	 * to 64: asking for 128 lands the data pointer at 192 as long as the
	 * bookkeeping stays within 64 (checked right below). */
	ret = hpn_core_frames(u->core, u->nframes, HPN_DPDK_FRAME, HPN_DPDK_DATA_OFF - 64, &u->frames);
	if (ret)
		return ret;
	if (hpn_pool_headroom(u->frames) != HPN_DPDK_DATA_OFF)
		return hpn_set_error(-EINVAL, "dpdk: frames have %zu B in front of their data, not %u",
				     hpn_pool_headroom(u->frames), HPN_DPDK_DATA_OFF);
	u->region = hpn_pool_region(u->frames, &u->region_len);
	u->pc.frames = u->frames;
	u->pc.kept_max = u->nframes / 8;
	u->region_len = (size_t)u->nframes * HPN_DPDK_FRAME; /* the mapping may be longer (hugepages) */
	ret = hpn_mbufs_lent(name, u->frames, u->nframes, SOCKET_ID_ANY, &u->mp);
	if (!ret)
		u->mbuf_table = hpn_mbufs_table(u->mp);
	return ret;
}

/* Everything up to a running port with its address. */
/* Before the endpoint is any use: does anyone hold ip= already (another
 * host, another process on this interface, this host's kernel)? Three
 * probes 10 ms apart, answers read in between (on a LAN they take
 * microseconds); what else comes is dropped - nobody knows us yet. Then
 * an announcement. A port whose link is not up yet (a memif server
 * waiting for its peer) announces when it comes up: a conflict then is
 * logged, not refused. */
static int probe_addr(struct hpn_pep *u)
{
	uint64_t t0 = hpn_now_ns(), sent = 0;
	char b[18];

	if (getrandom(u->arp_tag, sizeof(u->arp_tag), 0) != sizeof(u->arp_tag))
		return hpn_set_error(-EIO, "dpdk: no randomness for the ARP tag (getrandom)");
	if (u->borrowed || !u->link_up)
		return 0;
	u->probing = true;
	for (uint64_t now = t0; !u->conflicts && now - t0 < PROBE_WAIT_NS; now = hpn_now_ns()) {
		struct rte_mbuf *in[32];
		uint16_t got;

		if (now - t0 >= sent * (PROBE_WAIT_NS / 3)) {
			arp_probe(u);
			sent++;
		}
		got = rte_eth_rx_burst(u->port_id, 0, in, 32);
		for (uint16_t i = 0; i < got; i++) {
			uint8_t *f = rte_pktmbuf_mtod(in[i], uint8_t *), what;

			if (in[i]->data_len >= HPN_ETH_HLEN && rd16(f + 12) == HPN_ETH_P_ARP) {
				arp_input(u, in[i], f, in[i]->data_len);
				continue;
			}
			if (u->memif && leave_frame(f, in[i]->data_len, &what) && what == LEAVE_SAYS) {
				rte_pktmbuf_free(in[i]); /* the peer leaves: the link must not be touched */
				rte_pktmbuf_free_bulk(in + i + 1, got - i - 1);
				memif_hold(u);
				u->probing = false;
				return 0; /* nobody on the link answered: nothing to announce to */
			}
			rte_pktmbuf_free(in[i]);
		}
		if (!got)
			usleep(100);
	}
	u->probing = false;
	if (u->conflicts)
		return hpn_set_error(-EADDRINUSE, "dpdk: %s: ip=%s is in use on the link: %s %s answers for it; give "
						  "each its own ip= (a kernel's address on the interface: take it off)",
				     u->name, inet_ntoa((struct in_addr){u->ip}),
				     memcmp(u->conflict_mac, u->mac, 6) ? "the host at" :
				     "another process on this interface (or its kernel), MAC", mac_str(u->conflict_mac, b));
	arp_announce(u);
	return 0;
}

static int set_up(struct hpn_pep *u)
{
	const char *eal = hpn_core_cfg(u->core, "eal");
	struct rte_eth_dev_info info;
	int ret = hpn_dpdk_eal_start(eal, u->pci[0] ? u->pci : NULL);

	if (ret)
		return ret;
	/* A NIC's DMA reaches the frames through the IOMMU (IOVA as VA); with
	 * physical addresses, normal pages could move under it: DPDK's own
	 * memory then, and copies. */
	if (u->pci[0] && !u->copy && rte_eal_iova_mode() != RTE_IOVA_VA) {
		if (u->mb_cfg)
			return hpn_set_error(-EINVAL, "config: mbufs=lent: the EAL uses physical addresses (no vfio "
						      "IOMMU): the NIC cannot DMA into the pool's frames; mbufs=copy");
		if (u->pc.mtu > COPY_MTU_MAX)
			return hpn_set_error(-EINVAL, "config: mtu=%u: with physical addresses dpdk copies into 2 KiB "
						      "mbufs: at most %u", u->pc.mtu, (unsigned)COPY_MTU_MAX);
		hpn_log(HPN_LOG_INFO, "dpdk: %s: IOVA as PA: mbufs copied (lent frames need vfio with an IOMMU)", u->pci);
		u->copy = true;
	}
	libs_quiet(); /* the EAL has loaded the drivers, and their libraries */
	hpn_dpdk_errors_reset(); /* an error the EAL logged starting (a PCI probe) explains nothing below */
	ret = open_mbufs(u);
	ret = ret ?: find_port(u);
	ret = ret ?: take_port_id(u);
	if (!ret) {
		u->up = true; /* from here port_close undoes */
		ret = rte_eth_dev_info_get(u->port_id, &info);
		ret = ret ?: dma_map(u, info.device);
		ret = ret ?: port_start(u);
	}
	libs_restore();
	if (ret)
		return ret;
	u->ip = u->ip_cfg;
	if (!u->ip) {
		ret = kernel_addr(u->kiface, &u->ip, &u->mask);
		if (ret)
			return hpn_set_error(ret, "dpdk: %s rides on %s, which has no IPv4 address: give the port one "
						  "with ip=A.B.C.D/N", u->name, u->kiface);
		u->borrowed = true;
	} else if (u->kiface[0] && !kernel_addr(u->kiface, &u->ip, &(uint32_t){0})) {
		/* Both answering for it, the kernel would refuse our port's
		 * datagrams (ICMP port unreachable: the peer gives up): the
		 * kernel's, as without ip=. */
		hpn_log(HPN_LOG_INFO, "dpdk: ip=%s is %s's own: borrowed from the kernel (it answers ARP and ping)",
			inet_ntoa((struct in_addr){u->ip}), u->kiface);
		u->borrowed = true;
	}
	if (u->kiface[0] && !u->borrowed) { /* processes on one interface see each other's frames, not sends */
		char name[64], pid[32];

		snprintf(name, sizeof(name), "%s-%s", u->kiface, inet_ntoa((struct in_addr){u->ip}));
		ret = hpn_lock_take(&u->addr_lock, "dpdk", name, pid, sizeof(pid));
		if (ret == -EBUSY)
			return hpn_set_error(-EADDRINUSE, "dpdk: ip=%s on %s is %s (pid %s): give each its own ip=",
					     inet_ntoa((struct in_addr){u->ip}), u->kiface,
					     atoi(pid) == (int)getpid() ? "another endpoint's of this process"
									: "another hpn process's", pid);
		if (ret) /* no /run/hpn to write (not root, read-only): the probe still finds other hosts */
			hpn_log(HPN_LOG_WARN, "dpdk: cannot take the lock file %s (%s): another process on %s with "
					      "ip=%s would not be refused", u->addr_lock.path,
				ret == -ESTALE ? "it keeps changing" : strerror(-ret), u->kiface,
				inet_ntoa((struct in_addr){u->ip}));
	}
	u->link_up = link_state(u);
	u->link_ns = hpn_now_ns();
	hpn_dpdk_thread_register();
	ret = probe_addr(u);
	if (ret)
		return ret;
	struct rte_eth_stats es; /* a port the application made may have dropped before: not ours */

	if (!rte_eth_stats_get(u->port_id, &es))
		u->drops_last = es.imissed;
	hpn_core_describe(u->core, "dpdk %s (%s), %s, %s", u->name, u->driver, inet_ntoa((struct in_addr){u->ip}),
			  u->copy ? "mbufs copied" : "mbufs lent from the pool");
	char mac[18];

	hpn_log(HPN_LOG_INFO, "dpdk: %s (%s) port %u, %s, %s/%d%s, MTU %u, %u/%u "
			      "descriptors, %u mbufs %s, checksums %s, EAL %s, link %s",
		u->name, u->driver, u->port_id, mac_str(u->mac, mac),
		inet_ntoa((struct in_addr){u->ip}), __builtin_popcount(u->mask), u->borrowed ? " (the kernel's)" : "",
		u->port_mtu, u->nrxd, u->ntxd, u->nframes,
		u->copy ? "in DPDK's memory (copied)" : "over the pool's frames (lent)",
		u->tx_csum ? (u->rx_csum ? "by the port" : "by the port on send") : u->rx_csum ? "by the port on receive" : "in software",
		hpn_dpdk_eal_mem(),
		u->link_up ? "up" : "down");
	return 0;
}

static int dp_open(struct hpn_core *core, struct hpn_caps *caps, struct hpn_pep **out)
{
	struct hpn_pep *u = calloc(1, sizeof(*u));
	int ret;

	if (!u)
		return hpn_set_error(-ENOMEM, "dpdk: out of memory");
	u->core = core;
	u->st = hpn_core_stats(core);
	u->port_fd = u->addr_lock.fd = -1;
	dp_probe(caps, NULL, 0);
	ret = read_cfg(u);
	ret = ret ?: set_up(u);
	ret = ret ?: hpn_pktep_create(core, &u->pc, u->copy ? &copy_io : &lent_io, u, &u->pk);
	if (ret)
		goto fail;
	caps->max_msg_size = hpn_pktep_max_msg(u->pk);
	if (!u->copy) {
		/* A message takes its send frames whole: the largest must fit
		 * beside what the port's receive ring holds. */
		uint32_t per = u->pc.mtu - HPN_PKT_HDR - HPN_PKT_FRAG_HDR;
		uint32_t need = (caps->max_msg_size + per - 1) / per;

		u->tx_target = need + TX_RESERVE + TX_BULK > 256 ? need + TX_RESERVE + TX_BULK : 256;
		/* cache_put's surplus (128) must fit above the target: a window
		 * is at most HPN_TXWIN_MAX packets, so it always does. */
		if (u->tx_target + 128 > sizeof(u->free_tx) / sizeof(u->free_tx[0]))
			u->tx_target = sizeof(u->free_tx) / sizeof(u->free_tx[0]) - 128;
		if (u->pc.reliable && u->nframes < u->nrxd + need + TX_RESERVE) {
			ret = hpn_set_error(-EINVAL, "config: frames=%u: the receive ring holds %u and a %u-byte message "
						     "needs %u (+%u kept for copies): raise frames=",
					    u->nframes, u->nrxd, caps->max_msg_size, need, TX_RESERVE);
			goto fail;
		}
	}
	u->plain = u->pc.plain;
	caps->flags = HPN_CAP_KERNEL_BYPASS;
	if (u->plain) /* receive timestamps: the burst's */
		caps->flags |= HPN_CAP_PLAIN | HPN_CAP_MULTICAST;
	else
		caps->flags |= HPN_CAP_ORDERED | (hpn_pktep_reliable(u->pk) ? HPN_CAP_RELIABLE : HPN_CAP_MULTICAST);
	caps->headroom = HPN_PKTEP_HEADROOM; /* a zero-copy send of a pool buffer gets its header in front */
	*out = u;
	return 0;
fail:
	dp_close(u);
	return ret;
}

static int dp_mem_register(struct hpn_pep *u, void *addr, size_t len)
{
	(void)addr;
	(void)len;
	hpn_pktep_mem_register(u->pk);
	return 0;
}

/* Join a group (source: one sender only, 0: any) as line u->lines.n: the port
 * takes its MAC (its multicast filter, else every multicast), and either
 * the kernel joins (a borrowed address) or we say it in IGMPv3. */
static int join(struct hpn_pep *u, uint32_t group, uint32_t source, uint16_t port, const char *spec)
{
	struct rte_ether_addr mac[HPN_NET_LINES + 1];
	unsigned n = 0;

	u->lines.ip[u->lines.n] = group;
	u->lines.source[u->lines.n] = source;
	u->lines.port[u->lines.n] = port;
	u->lines.group[u->lines.n] = true;
	for (unsigned i = 0; i <= u->lines.n; i++)
		if (u->lines.group[i])
			hpn_ip4_group_mac(u->lines.ip[i], mac[n++].addr_bytes);
	hpn_ip4_group_mac(htonl(0xe0000001), mac[n++].addr_bytes); /* all hosts: IGMP queries */
	if (rte_eth_dev_set_mc_addr_list(u->port_id, mac, n) && rte_eth_allmulticast_enable(u->port_id))
		hpn_log(HPN_LOG_INFO, "dpdk: %s: no multicast filter and no all-multicast mode: %s is heard only if "
				      "the port passes it anyway", u->name, spec);
	if (u->borrowed) {
		int r = hpn_net_join(u->port_fd, (int)if_nametoindex(u->kiface), group, source);

		if (r)
			return hpn_set_error(r, "dpdk: cannot join %s on %s: %s", spec, u->kiface, strerror(-r));
	}
	u->lines.n++;
	if (!u->borrowed) {
		igmp_report(u, IGMP_JOIN, group); /* the new one only: a state change */
		u->igmp_again_ns = hpn_now_ns() + 1000000000ull;
	}
	return 0;
}

/* Subscribe (unordered=on): one group, on its port. */
static int listen_group(struct hpn_pep *u, const struct sockaddr_in *a, const char *spec)
{
	int ret = hpn_pktep_subscribe(u->pk);

	ret = ret ?: bind_port(u, a->sin_port);
	ret = ret ?: join(u, a->sin_addr.s_addr, 0, u->port, spec);
	if (!ret)
		u->group = a->sin_addr.s_addr;
	return ret;
}

/* framing=none: one more line - a group (group@source: one source), or a
 * port of our own address. */
static int plain_listen(struct hpn_pep *u, const char *spec)
{
	struct sockaddr_in a;
	uint32_t source;
	char addr[128];
	bool group;
	int ret = hpn_pktep_split_source(spec, addr, sizeof(addr), &source), line;

	ret = ret ?: hpn_net_parse_v4("dpdk", addr, true, &a);
	if (ret)
		return ret;
	group = hpn_ip4_is_group(a.sin_addr.s_addr);
	if (source && !group)
		return hpn_set_error(-EINVAL, "dpdk: listen %s: a source is given for a group only", spec);
	if (!group && a.sin_addr.s_addr && a.sin_addr.s_addr != u->ip)
		return hpn_set_error(-EADDRNOTAVAIL, "dpdk: %s is not %s's address (%s)", spec, u->name,
				     inet_ntoa((struct in_addr){u->ip}));
	if (u->lines.n == HPN_NET_LINES)
		return hpn_set_error(-ENOSPC, "dpdk: listen %s: at most %d lines", spec, HPN_FEED_LINES_MAX);
	if (group && !a.sin_port)
		return hpn_set_error(-EINVAL, "dpdk: listen %s: a group's port must be given", spec);
	ret = hpn_pktep_line_check(u->pk, spec, group ? a.sin_addr.s_addr : 0, a.sin_port, source);
	if (ret)
		return ret;
	if (!u->port) {
		ret = bind_port(u, a.sin_port);
		if (ret)
			return ret;
		a.sin_port = u->port;
	} else if (!a.sin_port) {
		return hpn_set_error(-EINVAL, "dpdk: listen %s: a second line needs its port", spec);
	}
	if (group) {
		ret = join(u, a.sin_addr.s_addr, source, a.sin_port, spec);
		ret = ret ?: hpn_pktep_subscribe(u->pk);
	} else {
		u->lines.ip[u->lines.n] = u->ip;
		u->lines.source[u->lines.n] = 0;
		u->lines.group[u->lines.n] = false;
		u->lines.port[u->lines.n++] = a.sin_port;
		hpn_pktep_listen(u->pk);
	}
	if (ret)
		return ret;
	line = hpn_pktep_line_add(u->pk, spec, group ? a.sin_addr.s_addr : 0, a.sin_port, source);
	return line < 0 ? line : 0;
}

static int dp_listen(struct hpn_pep *u, const char *spec)
{
	struct sockaddr_in a;
	int ret;

	if (u->plain)
		return plain_listen(u, spec);
	ret = hpn_net_parse_v4("dpdk", spec, true, &a);
	if (ret)
		return ret;
	if (u->port)
		return hpn_set_error(-EISCONN, "dpdk: endpoint already has its port (listen before connecting)");
	if (hpn_ip4_is_group(a.sin_addr.s_addr))
		return listen_group(u, &a, spec);
	if (a.sin_addr.s_addr && a.sin_addr.s_addr != u->ip)
		return hpn_set_error(-EADDRNOTAVAIL, "dpdk: %s is not %s's address (%s)", spec, u->name,
				     inet_ntoa((struct in_addr){u->ip}));
	ret = bind_port(u, a.sin_port);
	if (ret)
		return ret;
	hpn_pktep_listen(u->pk);
	return 0;
}

static int dp_local_addr(struct hpn_pep *u, char *buf, size_t len)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = u->ip, .sin_port = u->port};

	if (!u->port)
		return -ENOTCONN;
	return hpn_addr_format((struct sockaddr *)&a, buf, len);
}

/* A connect right after start would only lose its first handshakes to a
 * link still coming up (a memif peer connecting, an autonegotiating NIC). */
static void wait_link(struct hpn_pep *u)
{
	uint64_t t0 = hpn_now_ns();

	while (!(u->link_up = link_state(u)) && hpn_now_ns() - t0 < u->link_wait_ms * 1000000ull)
		usleep(1000);
	if (!u->link_up)
		hpn_log(HPN_LOG_INFO, "dpdk: %s: link still down after %llu ms: connecting anyway", u->name,
			(unsigned long long)u->link_wait_ms);
}

/* framing=none: nothing resends a datagram that left before the next
 * hop's MAC was known, so a connect resolves it first - for as long as
 * the caller gave the connect, at most a second (an asynchronous one only
 * asks). A reliable stream's handshake retries on its own. */
static void plain_resolve(struct hpn_pep *u, uint32_t ip)
{
	uint64_t ms = hpn_core_connect_timeout_ms(u->core), t0 = hpn_now_ns();

	if (ms > 1000)
		ms = 1000;
	while (!hpn_nb_lookup(&u->nb, ip, nb_resolve, u) && hpn_now_ns() - t0 < ms * 1000000ull) {
		hpn_pktep_progress(u->pk, hpn_now_ns()); /* reads the ARP reply */
		usleep(20);
	}
}

static int dp_connect(struct hpn_pep *u, const char *spec, hpn_peer_t *peer)
{
	struct sockaddr_in a;
	int ret = hpn_net_parse_v4("dpdk", spec, false, &a);

	if (ret)
		return ret;
	if (!u->port) {
		ret = bind_port(u, 0);
		if (ret)
			return ret;
	}
	if (!u->link_up)
		wait_link(u);
	if (hpn_ip4_is_group(a.sin_addr.s_addr)) /* publish: the peer is the group, connected at once */
		return hpn_pktep_publish(u->pk, &a, sizeof(a), peer);
	if (a.sin_addr.s_addr == u->ip && a.sin_port == u->port)
		return hpn_set_error(-EINVAL, "dpdk: %s is this endpoint itself", spec);
	if (a.sin_addr.s_addr == u->ip || (ntohl(a.sin_addr.s_addr) >> 24) == 127)
		return hpn_set_error(-EINVAL, "dpdk: %s is this host: a DPDK port does not loop back (two endpoints "
					      "need two ports, e.g. a memif pair)", spec);
	if (!on_link(u, a.sin_addr.s_addr) && !u->gw)
		return hpn_set_error(-ENETUNREACH, "dpdk: %s is outside %s/%d and no gw= is set", spec,
				     inet_ntoa((struct in_addr){u->ip}), __builtin_popcount(u->mask));
	if (u->plain)
		plain_resolve(u, a.sin_addr.s_addr);
	return hpn_pktep_connect(u->pk, &a, sizeof(a), peer);
}

static int dp_disconnect(struct hpn_pep *u, hpn_peer_t id)
{
	return hpn_pktep_disconnect(u->pk, id);
}

static int dp_peer_addr(struct hpn_pep *u, hpn_peer_t id, char *buf, size_t len)
{
	return hpn_pktep_peer_addr(u->pk, id, buf, len);
}

/* Neighbours we resolved ourselves age like the kernel's: asked again
 * after 30 s without a word from them, forgotten 5 s later. */
static void nb_age(struct hpn_pep *u, uint64_t now)
{
	for (unsigned i = 0; i < HPN_NB_SIZE; i++) {
		struct hpn_nb *n = &u->nb.e[i];

		if (!n->ip || !n->ok || hpn_ip4_is_group(n->ip))
			continue;
		if (!on_link(u, n->ip)) { /* the router's MAC: re-resolved through its entry, not asked */
			if (now - n->seen_ns > NB_EXPIRE_NS)
				hpn_nb_forget(&u->nb, n);
			continue;
		}
		if (now - n->seen_ns > NB_EXPIRE_NS) {
			hpn_nb_forget(&u->nb, n);
		} else if (now - n->seen_ns > NB_REFRESH_NS && now - n->asked_ns > 1000000000ull) {
			n->asked_ns = now;
			send_arp(u, HPN_ARP_REQUEST, n->ip, NULL);
		}
	}
}

/* What the port dropped for us (its receive ring full), into
 * hpn_stats.rx_dropped. Not rx_nombuf: drivers count failed refills
 * there, and a frame left in the ring is counted in imissed if lost. */
static void read_drops(struct hpn_pep *u)
{
	struct rte_eth_stats es;

	if (u->up && !u->held && !rte_eth_stats_get(u->port_id, &es))
		hpn_stat_dropped(u->st, &u->drops_last, es.imissed);
}

static int dp_progress(struct hpn_pep *u, uint64_t now)
{
	if (now - u->link_ns >= LINK_EVERY_NS || u->held) { /* held: every call, a new peer may come fast */
		bool up = link_state(u);

		u->link_ns = now;
		if (up != u->link_up)
			hpn_log(HPN_LOG_INFO, "dpdk: %s: link %s", u->name, up ? "up" : "down");
		u->announce |= up && !u->link_up && !u->borrowed;
		u->link_up = up;
		held_check(u);
		if (u->announce && u->link_up && !u->held) { /* a held port sends nothing: when it is free */
			u->announce = false;
			arp_announce(u); /* a new link: its caches learn us, another holder of ip= hears it */
		}
	}
	if (now - u->nb_scan_ns >= 1000000000ull) {
		u->nb_scan_ns = now;
		nb_age(u, now);
		read_drops(u);
	}
	if (u->nb_unverified)
		nb_verify(u, now);
	if (u->igmp_again_ns && now >= u->igmp_again_ns) {
		u->igmp_again_ns = 0;
		igmp_report(u, IGMP_JOIN, 0); /* the robustness repeat, for every line */
	}
	return hpn_pktep_progress(u->pk, now);
}

static int dp_wait_fd(struct hpn_pep *u)
{
	(void)u;
	return -EOPNOTSUPP; /* a poll-mode driver: waits spin */
}

static int dp_tx_burst(struct hpn_pep *u, const struct hpn_msg *msgs, unsigned n, unsigned flags)
{
	return hpn_pktep_tx_burst(u->pk, msgs, n, flags);
}

static int dp_rx_burst(struct hpn_pep *u, struct hpn_msg *msgs, unsigned n)
{
	return hpn_pktep_rx_burst(u->pk, msgs, n);
}

static int dp_feed_lines(struct hpn_pep *u, struct hpn_feed_line *lines, unsigned max)
{
	return hpn_pktep_feed_lines(u->pk, lines, max);
}

static const struct hpn_plugin_ops dp_ops = {
	.abi_version = HPN_PLUGIN_ABI,
	.size = sizeof(struct hpn_plugin_ops),
	.name = "dpdk",
	.description = "DPDK poll-mode drivers: kernel bypass on a PCI NIC or a vdev (memif, af_packet, tap ...; IPv4)",
	.params = dpdk_params,
	.probe = dp_probe,
	.open = dp_open,
	.close = dp_close,
	.mem_register = dp_mem_register,
	.listen = dp_listen,
	.local_addr = dp_local_addr,
	.connect = dp_connect,
	.disconnect = dp_disconnect,
	.peer_addr = dp_peer_addr,
	.progress = dp_progress,
	.wait_fd = dp_wait_fd,
	.tx_burst = dp_tx_burst,
	.rx_burst = dp_rx_burst,
	.feed_lines = dp_feed_lines,
};

HPN_PLUGIN_DEFINE(dp_ops)
