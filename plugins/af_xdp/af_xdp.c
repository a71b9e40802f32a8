/* SPDX-License-Identifier: MIT */
/*
 * af_xdp.c - kernel bypass through AF_XDP sockets: hpn's UDP frames go
 * from a UMEM straight to the NIC queue and back, past the kernel's
 * socket layer. A small adapter: the packet layer (src/packet/pktep.h)
 * does connections, reliability and fragmentation; src/net/frame.h the
 * Ethernet/IPv4/UDP framing, with software checksums; src/net/route.h the
 * route and neighbour answers the kernel would use. This file moves
 * frames between XSK rings and the packet layer's datagrams.
 *
 *   hpn_pktep --dgram--> xsk_send: UMEM frame <- headers + payload -> TX ring
 *   hpn_pktep <--dgram-- xsk_recv: RX ring -> parse, check -> payload
 *
 * The XDP program (hpn_xdp.bpf.c, embedded) redirects only frames to our
 * UDP port to the socket; ARP, ICMP and everything else reach the kernel,
 * which keeps answering for the interface's address. Our port is also
 * bound by a kernel UDP socket, so no other program on the host takes it.
 *
 * One endpoint per interface (the program is per interface): a lock file
 * under /run/hpn says who owns it, and a program of ours left attached by
 * a process that died (its lock is free) is removed by the next start;
 * someone else's program is never touched.
 *
 * Not yet (issue 10): frames are copied between the UMEM and the packet
 * layer's buffers (the kit's lent frames come next), reliable=off (raw
 * datagrams) is refused, IPv4 only, one queue.
 */
#include <hpn/plugin.h>

#include "net/dgram.h"
#include "net/frame.h"
#include "net/lock.h"
#include "net/neigh.h"
#include "net/route.h"
#include "packet/pktep.h"
#include "packet/wire.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/errqueue.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

extern const unsigned char hpn_xdp_obj[];
extern const size_t hpn_xdp_obj_len;

#define FRAME_SIZE 4096u   /* one UMEM chunk: a page, the largest aligned chunk */
#define RING_SIZE 2048u    /* completion and tx; fill and rx at least this */
#define RX_RING_MAX 32768u /* fill and rx: half the frames, up to this */
/* The kernel keeps XDP_PACKET_HEADROOM (256) in front of a received
 * frame: a datagram payload must leave room for that, our 42 bytes of
 * headers and a VLAN tag. */
#define MTU_MAX (FRAME_SIZE - 256 - HPN_NET_HDR - 4)
#define NB_RETRY_NS 10000000ull /* ask the kernel about an unresolved neighbour every 10 ms */
#define ICMP_EVERY_NS 1000000ull /* read ICMP errors at most every 1 ms (a syscall) */
#define PROG_NAME "hpn_xdp"
#define TX_RESERVE 64 /* send frames kept back from lending, for copies */
#define F_DEV 1       /* in the fill or rx ring (or just read from it) */
#define F_INFLIGHT 2  /* on the TX ring, completion not seen */
#define F_PUT 4       /* nobody holds it: back to the send cache when sent */

_Static_assert(HPN_NET_LINES == HPN_FEED_LINES_MAX, "a frame backend takes as many lines as a feed has");

struct hpn_pep {
	struct hpn_core *core;
	struct hpn_stats *st;
	struct hpn_pktep *pk;
	struct hpn_pktep_cfg pc;
	/* Config. */
	char dev[IF_NAMESIZE]; /* dev=, or found at listen/connect */
	bool dev_cfg;          /* dev= given */
	uint32_t queue;
	int mode_cfg; /* 0 auto, else XDP_MODE_NATIVE / XDP_MODE_SKB */
	uint32_t nframes;
	/* The interface, once set up (listen or connect). */
	bool up;
	int ifindex;
	uint8_t mac[6];
	uint32_t if_mtu;
	bool mtu_short;  /* the interface's MTU fell below what mtu= sends (mtu_check) */
	char driver[32];
	uint32_t ip;   /* ours, network order */
	uint32_t group; /* subscribed multicast group, network order (0: none) */
	uint16_t port; /* ours, network order */
	int port_fd;   /* kernel UDP socket holding our port (and hearing ICMP errors) */
	uint64_t icmp_ns; /* its error queue was last read then */
	uint64_t nb_ns;   /* the next hops were last checked against the kernel then */
	uint32_t nb_next; /* where that check goes on */
	struct hpn_lock lock; /* the interface's (net/lock.h) */
	/* XDP program. */
	struct bpf_object *obj;
	struct xdp_program *prog;
	enum xdp_attach_mode mode;
	int ports_fd, addrs_fd;
	/* The socket and its memory: the UMEM is the core's device frames. */
	struct hpn_pool *frames;
	uint8_t *umem_area;
	size_t umem_len;
	uint32_t data_off; /* a frame's data pointer, from its start */
	bool zerocopy;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	uint64_t *free_frames; /* the send cache: frames nobody holds, taken from the pool */
	uint8_t *fstate;       /* per frame: F_DEV, F_INFLIGHT, F_PUT */
	uint64_t copies;       /* datagrams copied into a frame (not sent in place) */
	uint32_t nfree;
	uint32_t tx_target;    /* the send cache is topped up to this */
	uint32_t fill_target, in_dev; /* frames the device should have, and has */
	uint32_t rx_ring;             /* fill and rx ring size (rx_ring_size) */
	uint64_t drops_last; /* hpn_stats.rx_dropped: read_drops, each second */
	uint64_t lent[64];     /* frames of the last receive's datagrams */
	uint32_t nlent;
	uint64_t recycle[64];  /* read frames going back to the device */
	uint32_t nrecycle;
	uint32_t tx_outstanding; /* sent, completion not yet seen */
	uint64_t starved_ns;     /* the fill ring was last found short then (logged at most every second) */
	uint16_t ip_id;
	struct hpn_nbcache nb; /* next hops (net/neigh.h) */
	int ping_fd;
	uint32_t unresolved_logged;
	/* framing=none: the lines listened to (a feed's A and B, or any
	 * plain ports), beside ip:port - their groups and ports. */
	bool plain;
	struct hpn_net_lines lines;
};

static const struct hpn_plugin_param xdp_params[] = {
	{"dev", "network interface (default: the one owning the listen address, or routing to the peer)"},
	{"queue", "NIC receive queue to bind (default 0)"},
	{"xdp_mode", "auto|native|skb: where the XDP program runs (auto: native, else skb; on veth skb first, "
		     "measured faster)"},
	{"frames", "UMEM frames of 4 KiB (default 4096, framing=none 16384: half receive, half send)"},
	HPN_PKTEP_PARAMS,
	{NULL, NULL},
};

/* libbpf and libxdp print to stderr by default; the library never does:
 * their warnings go to hpn_log at debug level, their debug output nowhere. */
static void lib_line(const char *lib, const char *fmt, va_list ap)
{
	char line[256];

	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = 0;
	hpn_log(HPN_LOG_DEBUG, "af_xdp: %s: %s", lib, line);
}

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level != LIBBPF_DEBUG)
		lib_line("libbpf", fmt, ap);
	return 0;
}

static int quiet_xdp_print(enum libxdp_print_level level, const char *fmt, va_list ap)
{
	if (level != LIBXDP_DEBUG)
		lib_line("libxdp", fmt, ap);
	return 0;
}

/* libbpf's and libxdp's print callbacks belong to the process: ours (their
 * lines into hpn_log) only while the plugin's control calls run, the
 * application's back after - one that uses libbpf itself keeps its own
 * (they were taken at the first endpoint and never given back). */
struct lib_print {
	libbpf_print_fn_t bpf;
	libxdp_print_fn_t xdp;
};

/* Endpoints on several threads (progress=thread) overlap their control
 * calls: the application's callbacks are saved by the first to begin and
 * given back by the last to end (each saving and restoring its own would
 * leave ours installed, in an order such as begin, begin, end, end). */
static pthread_mutex_t print_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned print_depth;
static struct lib_print print_app;

static void quiet_begin(void)
{
	pthread_mutex_lock(&print_mu);
	if (!print_depth++)
		print_app = (struct lib_print){libbpf_set_print(quiet_print), libxdp_set_print(quiet_xdp_print)};
	pthread_mutex_unlock(&print_mu);
}

static void quiet_end(void)
{
	pthread_mutex_lock(&print_mu);
	if (!--print_depth) {
		libbpf_set_print(print_app.bpf);
		libxdp_set_print(print_app.xdp);
	}
	pthread_mutex_unlock(&print_mu);
}

/* ---- neighbours ----------------------------------------------------------- */

/* Make the kernel resolve next_hop: one ICMP echo from its own stack (the
 * reply and the ARP exchange pass our XDP program untouched). */
static void nb_kick(struct hpn_pep *u, uint32_t next_hop)
{
	uint8_t echo[8] = {8, 0, 0, 0, 0x68, 0x70, 0, 1};
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = next_hop};
	uint16_t c;

	if (u->ping_fd < 0) {
		u->ping_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_ICMP);
		if (u->ping_fd < 0)
			u->ping_fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_ICMP);
		if (u->ping_fd < 0)
			return;
		int small = 4096; /* the replies are never read */

		setsockopt(u->ping_fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	}
	c = hpn_inet_csum(echo, sizeof(echo), 0);
	memcpy(echo + 2, &c, 2);
	sendto(u->ping_fd, echo, sizeof(echo), MSG_DONTWAIT, (struct sockaddr *)&to, sizeof(to));
}

/* Slow path (hpn_nb_lookup): the route's next hop and the kernel's MAC
 * for it; false while unresolved (the kernel is made to resolve it). */
static bool nb_resolve(void *arg, struct hpn_nb *n, uint32_t ip)
{
	struct hpn_pep *u = arg;
	struct hpn_route r;
	char why[128];
	uint64_t now = hpn_now_ns();
	uint32_t hop = ip;

	if (n->ip == ip && now - n->asked_ns < NB_RETRY_NS)
		return false;
	*n = (struct hpn_nb){.ip = ip, .asked_ns = now};
	if (hpn_route_get(ip, &r, why, sizeof(why)) == 0) {
		if (r.ifindex == u->ifindex)
			hop = r.next_hop;
		else if (!u->unresolved_logged++)
			hpn_log(HPN_LOG_WARN, "af_xdp: the route to %s leaves by %s, not %s: sending on %s anyway",
				inet_ntoa((struct in_addr){ip}), r.ifname, u->dev, u->dev);
	}
	if (hpn_neigh_get(u->ifindex, hop, n->mac, why, sizeof(why)) == 0) {
		n->ok = true;
		return true;
	}
	nb_kick(u, hop);
	return false;
}

/* ---- frames ----------------------------------------------------------------- */

/*
 * The UMEM is the core's device frames (hpn_core_frames): 4 KiB chunks of
 * one pool class, each
 *
 *   [core's 32 B | ... | net hdr 42 | packet hdr 24 | data (pool's data pointer) ... ]
 *   0                  62           104             128
 *
 * with received frames written by the kernel from +256 (XDP_PACKET_HEADROOM).
 * A frame is the device's (fill and rx rings: F_DEV), in our send cache,
 * lent to the packet layer (a packet not yet acked), on the TX ring
 * (F_INFLIGHT; F_PUT: nobody wants it back, free it at completion), the
 * application's (a message delivered in its frame, or a buffer from
 * hpn_buf_get_sized) - or in the pool. Frames move between the pool and
 * us in bulk.
 */

/* Where a frame's packet header starts (the packet layer's frame
 * pointer), and where its Ethernet header starts (the TX descriptor). */
static inline uint64_t pkt_off(const struct hpn_pep *u, uint64_t chunk)
{
	return chunk + u->data_off - HPN_PKTEP_HEADROOM;
}

static inline uint64_t chunk_of(uint64_t off)
{
	return off & ~(uint64_t)(FRAME_SIZE - 1);
}

/* Frames from the pool into the send cache, up to want (halving when the
 * pool is low). */
static void cache_fill(struct hpn_pep *u, uint32_t want)
{
	void *b[64];

	while (want && u->nfree < u->nframes) {
		uint32_t k = want < 64 ? want : 64, got;

		if (k > u->nframes - u->nfree)
			k = u->nframes - u->nfree;
		got = hpn_pool_get_bulk(u->frames, b, k);
		if (!got && k > 1 && (got = hpn_pool_get_bulk(u->frames, b, k / 2)) == 0)
			return;
		for (uint32_t i = 0; i < got; i++)
			u->free_frames[u->nfree++] = chunk_of((uint64_t)((uint8_t *)b[i] - u->umem_area));
		want -= got < want ? got : want;
		if (got < k)
			return;
	}
}

/* Frames back to the pool. */
static void pool_give(struct hpn_pep *u, const uint64_t *chunks, uint32_t n)
{
	void *b[64];

	while (n) {
		uint32_t k = n < 64 ? n : 64;

		for (uint32_t i = 0; i < k; i++)
			b[i] = u->umem_area + chunks[i] + u->data_off;
		hpn_pool_put_bulk(u->frames, b, k);
		chunks += k;
		n -= k;
	}
}

/* A send frame nobody holds: into the cache, the surplus to the pool. */
static void cache_put(struct hpn_pep *u, uint64_t chunk)
{
	u->free_frames[u->nfree++] = chunk;
	if (u->nfree > u->tx_target + 128) {
		pool_give(u, u->free_frames + u->nfree - 128, 128);
		u->nfree -= 128;
	}
}

/* Sent frames come back through the completion ring. */
static void reap(struct hpn_pep *u)
{
	uint32_t idx, n = xsk_ring_cons__peek(&u->comp, RING_SIZE, &idx);

	for (uint32_t i = 0; i < n; i++) {
		uint64_t chunk = chunk_of(*xsk_ring_cons__comp_addr(&u->comp, idx + i));
		uint8_t *st = &u->fstate[chunk / FRAME_SIZE];

		*st &= (uint8_t)~F_INFLIGHT;
		if (*st & F_PUT) { /* else the packet layer holds it until acked */
			*st = 0;
			cache_put(u, chunk);
		}
	}
	if (n) {
		xsk_ring_cons__release(&u->comp, n);
		u->tx_outstanding -= n;
	}
}

static void kick_tx(struct hpn_pep *u)
{
	/* Copy mode always needs the syscall, and one sends at most 32
	 * frames (the kernel's batch) and says EAGAIN for the rest: again,
	 * a few times, or the end of a burst waits in the ring. Zero copy
	 * needs it only when the driver asks. */
	for (int i = 0; i < 8 && (!u->zerocopy || xsk_ring_prod__needs_wakeup(&u->tx)); i++)
		if (sendto(xsk_socket__fd(u->xsk), NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0 ||
		    (errno != EAGAIN && errno != EBUSY) || u->zerocopy)
			break;
}

/* Send frames lent to the packet layer (pktep.h): a packet is built in a
 * frame and kept there until acknowledged, so it goes out in place -
 * headers written in the frame's headroom, no copy. */
static uint8_t *frame_get(void *arg)
{
	struct hpn_pep *u = arg;

	if (u->nfree <= TX_RESERVE)
		cache_fill(u, u->tx_target - u->nfree);
	if (!u->up || u->nfree <= TX_RESERVE)
		return NULL;
	return u->umem_area + pkt_off(u, u->free_frames[--u->nfree]);
}

/* A frame the packet layer is done with: one of ours, or the buffer of a
 * zero-copy send it was built around (any pointer into the frame). */
static void frame_put(void *arg, uint8_t *frame)
{
	struct hpn_pep *u = arg;
	uint64_t chunk = chunk_of((uint64_t)(frame - u->umem_area));
	uint8_t *st = &u->fstate[chunk / FRAME_SIZE];

	if (*st & F_INFLIGHT) {
		*st |= F_PUT; /* the completion frees it */
		return;
	}
	*st = 0;
	cache_put(u, chunk);
}

/* Frames the packet layer may take: the rest stay for copies (control
 * packets, a frame resent while its first send is still in flight). */
static uint32_t frames_free(void *arg)
{
	struct hpn_pep *u = arg;

	if (u->nfree < u->tx_target)
		cache_fill(u, u->tx_target - u->nfree);
	return u->nfree > TX_RESERVE ? u->nfree - TX_RESERVE : 0;
}

/* The frame a datagram can go out in without a copy (its Ethernet
 * header's offset), else UINT64_MAX: not in a frame, or in one whose
 * last send the device has not finished. */
static inline uint64_t in_place(const struct hpn_pep *u, const uint8_t *data, uint32_t len)
{
	uint64_t off = (uint64_t)(data - HPN_NET_HDR - u->umem_area);

	if (off >= u->umem_len || (off & (FRAME_SIZE - 1)) < 16 ||
	    (off & (FRAME_SIZE - 1)) + HPN_NET_HDR + len > FRAME_SIZE ||
	    (u->fstate[off / FRAME_SIZE] & F_INFLIGHT))
		return UINT64_MAX;
	return off;
}

static int xsk_send(void *arg, const struct hpn_dgram *d, unsigned n)
{
	struct hpn_pep *u = arg;
	struct hpn_flow f = {.src_ip = u->ip, .src_port = u->port};
	uint32_t idx, k = 0;

	if (!u->up)
		return (int)n; /* nowhere to send yet: lost, resent later */
	reap(u);
	if (!n || xsk_ring_prod__reserve(&u->tx, n, &idx) != n) {
		kick_tx(u);
		return 0;
	}
	memcpy(f.src_mac, u->mac, 6);
	for (unsigned i = 0; i < n; i++) {
		const struct sockaddr_in *to = d[i].addr;
		const uint8_t *mac = hpn_nb_lookup(&u->nb, to->sin_addr.s_addr, nb_resolve, u);
		uint32_t len = d[i].hlen + d[i].len;
		uint64_t addr;
		uint8_t *frame;

		if (!mac || len + HPN_NET_HDR + (u->data_off - HPN_PKTEP_HEADROOM) > FRAME_SIZE)
			continue; /* unresolved: dropped, resent */
		addr = d[i].hlen ? UINT64_MAX : in_place(u, d[i].data, d[i].len);
		if (addr == UINT64_MAX) { /* a copy, in a frame of our own, freed when sent */
			if (!u->nfree)
				cache_fill(u, 64);
			if (!u->nfree)
				continue; /* lost: the packet layer resends */
			addr = pkt_off(u, u->free_frames[--u->nfree]);
			if (d[i].hlen) /* a raw datagram's header */
				memcpy(u->umem_area + addr, d[i].hdr, d[i].hlen);
			memcpy(u->umem_area + addr + d[i].hlen, d[i].data, d[i].len);
			addr -= HPN_NET_HDR;
			u->fstate[addr / FRAME_SIZE] = F_PUT;
			u->copies++;
		}
		u->fstate[addr / FRAME_SIZE] |= F_INFLIGHT;
		frame = u->umem_area + addr;
		memcpy(f.dst_mac, mac, 6);
		f.dst_ip = to->sin_addr.s_addr;
		f.ttl = hpn_ip4_is_group(f.dst_ip) ? u->pc.mcast_ttl : 0; /* 0: 64 */
		f.dst_port = to->sin_port;
		struct xdp_desc *desc = xsk_ring_prod__tx_desc(&u->tx, idx + k);

		desc->addr = addr;
		desc->len = (uint32_t)hpn_frame_udp4(frame, &f, len, u->ip_id++);
		k++;
	}
	if (k < n)
		u->tx.cached_prod -= n - k; /* give back the unused reservations */
	if (k) {
		xsk_ring_prod__submit(&u->tx, k);
		u->tx_outstanding += k;
		kick_tx(u);
	}
	return (int)n;
}

/* Frames delivered in place belong to the application until hpn_buf_put:
 * one that holds too many starves the device of receive frames, and it
 * drops what arrives (the packet layer resends). Say so, once a second. */
static void starving(struct hpn_pep *u)
{
	uint64_t now = hpn_now_ns();

	if (now - u->starved_ns < 1000000000ull)
		return;
	u->starved_ns = now;
	hpn_log(HPN_LOG_WARN, "af_xdp: %s: only %u of %u receive frames are with the device: the pool's frames "
			      "are held (received messages not yet given back with hpn_buf_put, buffers from "
			      "hpn_buf_get_sized) or in flight; frames arriving meanwhile are dropped - raise frames=",
		u->dev, u->in_dev, u->fill_target);
}

/* The device has no frame to receive into: the application holds them. */
static bool deaf(void *arg)
{
	const struct hpn_pep *u = arg;

	return u->up && !u->in_dev;
}

/* Keep fill_target frames with the device: the ones just read (recycled)
 * first, then fresh ones from the pool for those the application kept.
 * in_dev counts frames in the fill and rx rings, so the reservation
 * always fits. */
static void refill(struct hpn_pep *u)
{
	uint32_t need = u->fill_target - u->in_dev, idx, k = 0;

	if (need > u->nrecycle) /* the send cache lends to the device, all but its reserve */
		cache_fill(u, need - u->nrecycle + (u->nfree < TX_RESERVE ? TX_RESERVE - u->nfree : 0));
	if (need && xsk_ring_prod__reserve(&u->fill, need, &idx) == need) {
		/* Never the send reserve: with the application holding the
		 * rest, every ACK and keepalive goes out in one of those, and a
		 * receiver that took them for its device fell silent - its
		 * peer gave it up, then it gave its peer up. */
		while (k < need && (u->nrecycle || u->nfree > TX_RESERVE)) {
			uint64_t chunk = u->nrecycle ? u->recycle[--u->nrecycle] : u->free_frames[--u->nfree];

			u->fstate[chunk / FRAME_SIZE] = F_DEV;
			*xsk_ring_prod__fill_addr(&u->fill, idx + k++) = chunk;
		}
		u->fill.cached_prod -= need - k;
		xsk_ring_prod__submit(&u->fill, k);
		u->in_dev += k;
	}
	if (u->in_dev < u->fill_target / 2)
		starving(u);
	if (u->nrecycle) { /* more than the device needs */
		for (uint32_t i = 0; i < u->nrecycle; i++)
			u->fstate[u->recycle[i] / FRAME_SIZE] = 0;
		pool_give(u, u->recycle, u->nrecycle);
		u->nrecycle = 0;
	}
	if (k && xsk_ring_prod__needs_wakeup(&u->fill))
		recvfrom(xsk_socket__fd(u->xsk), NULL, 0, MSG_DONTWAIT, NULL, NULL);
}

/* The packet layer is done with the last receive: frames whose message
 * it handed to the application in place (data NULL) are the
 * application's now, the rest go back to the device. */
static void xsk_rx_done(void *arg, struct hpn_dgram *d, unsigned n)
{
	struct hpn_pep *u = arg;

	for (unsigned i = 0; i < n && i < u->nlent; i++)
		if (d[i].data)
			u->recycle[u->nrecycle++] = u->lent[i];
		else
			u->fstate[u->lent[i] / FRAME_SIZE] = 0;
	u->nlent = 0;
	refill(u);
}

static int xsk_recv_once(void *arg, struct hpn_dgram *d, unsigned n, bool *full)
{
	struct hpn_pep *u = arg;
	uint32_t idx, got, out = 0;

	if (!u->up)
		return 0;
	if (n > sizeof(u->lent) / sizeof(u->lent[0]))
		n = sizeof(u->lent) / sizeof(u->lent[0]);
	got = xsk_ring_cons__peek(&u->rx, n, &idx);
	*full = got == n;
	if (!got) {
		if (u->in_dev < u->fill_target)
			refill(u); /* starved while the application held frames */
		else if (xsk_ring_prod__needs_wakeup(&u->fill))
			recvfrom(xsk_socket__fd(u->xsk), NULL, 0, MSG_DONTWAIT, NULL, NULL);
		return 0;
	}
	for (uint32_t i = 0; i < got; i++) {
		const struct xdp_desc *desc = xsk_ring_cons__rx_desc(&u->rx, idx + i);
		const uint8_t *frame = xsk_umem__get_data(u->umem_area, desc->addr);
		uint64_t chunk = chunk_of(desc->addr);
		struct sockaddr_in *from = (void *)d[out].addr;
		struct hpn_udp4 p;
		enum hpn_frame_err e = hpn_frame_parse_udp4(frame, desc->len, &p);

		u->recycle[u->nrecycle++] = chunk; /* unless lent below */
		if (e) {
			hpn_frame_count_bad(u->st, e);
			continue;
		}
		if (!hpn_frame_to_us(&p, u->mac)) { /* another VLAN's, another host's */
			HPN_STAT_ADD(u->st->drops, 1);
			continue;
		}
		if (u->plain ? !hpn_net_lines_take(&u->lines, u->ip, u->port, p.dst_ip, p.dst_port)
			     : p.dst_port != u->port || (p.dst_ip != u->ip && (!u->group || p.dst_ip != u->group))) {
			HPN_STAT_ADD(u->st->drops, 1); /* our port, another address */
			continue;
		}
		/* A source no host can have (the kernel drops these as martians),
		 * or a group MAC: nobody to answer, nothing to learn. Longer
		 * than our mtu: not ours. */
		if (!p.src_ip || p.src_ip == 0xffffffff || hpn_ip4_is_group(p.src_ip) || (p.src_mac[0] & 1) ||
		    p.len > d[out].len) {
			HPN_STAT_ADD(u->st->drops, 1);
			continue;
		}
		*from = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = p.src_port,
					     .sin_addr.s_addr = p.src_ip};
		d[out].alen = sizeof(*from);
		/* Lent, not copied: the payload where it arrived, in a frame
		 * of the core's pool the packet layer may keep. */
		d[out].data = (uint8_t *)p.payload;
		d[out].len = p.len;
		d[out].rx_ns = 0; /* no receive metadata before Linux 6.3: the burst's time */
		d[out].flags = HPN_DGRAM_POOL;
		d[out].dst_ip = p.dst_ip;
		d[out].dst_port = p.dst_port;
		hpn_nb_learn(&u->nb, p.src_ip, p.src_mac, 0, false);
		u->lent[out++] = chunk;
		u->nrecycle--;
	}
	/* The descriptors are read; the frames stay ours until rx_done. */
	xsk_ring_cons__release(&u->rx, got);
	u->in_dev -= got;
	u->nlent = out;
	if (!out)
		refill(u);
	return (int)out;
}

static int xsk_recv(void *arg, struct hpn_dgram *d, unsigned n)
{
	return hpn_net_recv(xsk_recv_once, arg, d, n);
}

static const struct hpn_dgram_io xsk_io = {.send = xsk_send, .recv = xsk_recv, .rx_done = xsk_rx_done,
					   .format = hpn_net_format,
					   .frame_get = frame_get, .frame_put = frame_put,
					   .frames_free = frames_free, .deaf = deaf};

/* ---- set-up ------------------------------------------------------------------ */

/* The interface's MTU through any socket: 0, or -errno. */
static int read_if_mtu(int fd, const char *dev, uint32_t *mtu)
{
	struct ifreq ifr = {0};

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	if (ioctl(fd, SIOCGIFMTU, &ifr))
		return -errno;
	*mtu = (uint32_t)ifr.ifr_mtu;
	return 0;
}

static int if_info(struct hpn_pep *u)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = 0;

	if (fd < 0)
		return hpn_set_error(-errno, "af_xdp: socket: %s", strerror(errno));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", u->dev);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr))
		ret = hpn_set_error(-errno, "af_xdp: %s: no MAC address: %s", u->dev, strerror(errno));
	else if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
		ret = hpn_set_error(-EINVAL, "af_xdp: %s is not an Ethernet interface (loopback, tunnel...): af_xdp "
					     "sends Ethernet frames; plugin=udp works on any interface", u->dev);
	else
		memcpy(u->mac, ifr.ifr_hwaddr.sa_data, 6);
	if (!ret && (ret = read_if_mtu(fd, u->dev, &u->if_mtu)))
		ret = hpn_set_error(ret, "af_xdp: %s: no MTU: %s", u->dev, strerror(-ret));
	if (!ret) {
		struct ethtool_drvinfo di = {.cmd = ETHTOOL_GDRVINFO};

		ifr.ifr_data = (void *)&di;
		if (ioctl(fd, SIOCETHTOOL, &ifr) == 0)
			snprintf(u->driver, sizeof(u->driver), "%s", di.driver);
	}
	close(fd);
	return ret;
}

/* Is what the interface runs our program alone? *name: what it runs. */
static bool mp_ours(struct xdp_multiprog *mp, const char **name)
{
	struct xdp_program *main = xdp_multiprog__main_prog(mp);
	bool legacy = xdp_multiprog__is_legacy(mp);
	bool ours;

	*name = main ? xdp_program__name(main) : "?";
	if (legacy)
		return main && !strcmp(*name, PROG_NAME);
	ours = xdp_multiprog__program_count(mp) > 0;
	for (struct xdp_program *p = xdp_multiprog__next_prog(NULL, mp); p; p = xdp_multiprog__next_prog(p, mp))
		if (strcmp(xdp_program__name(p), PROG_NAME))
			ours = false;
	return ours;
}

/* Take our program off the interface. Attached alone (libxdp's fallback
 * without a bpffs: no dispatcher), by netlink and its id: libxdp's own
 * detach there - xdp_program__detach, or a program list read from the
 * interface - opens the attached program by id and never closes it, and
 * each endpoint left a program fd open and the program loaded. Behind a
 * dispatcher (a bpffs), by libxdp, which takes ours off and leaves any
 * other program there. */
static void detach_ours(struct hpn_pep *u)
{
	uint32_t flags = u->mode == XDP_MODE_NATIVE ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
	__u32 id = 0;

	if (!bpf_xdp_query_id(u->ifindex, (int)flags, &id) && id && id == xdp_program__id(u->prog)) {
		/* Only if it is still ours at the instant of the detach. */
		LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = xdp_program__fd(u->prog));

		bpf_xdp_detach(u->ifindex, flags | XDP_FLAGS_REPLACE, &opts);
		return;
	}
	if (id) /* a dispatcher: ours comes off it alone, another tool's stays */
		xdp_program__detach(u->prog, u->ifindex, u->mode, 0);
}

/* What the interface runs, when it is one program alone (no dispatcher),
 * read by netlink and the program's id - libxdp's reading of it opens the
 * program and never closes it (detach_ours): 0 nothing attached, or ours
 * stale and removed; -EBUSY someone else's; 1 a dispatcher, for libxdp. */
static int take_alone(struct hpn_pep *u)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	struct bpf_prog_info info = {0};
	__u32 len = sizeof(info);
	uint32_t flags;
	int fd, ret = 1;

	if (bpf_xdp_query(u->ifindex, 0, &q) || q.attach_mode == XDP_ATTACHED_NONE)
		return 0;
	if (q.attach_mode != XDP_ATTACHED_DRV && q.attach_mode != XDP_ATTACHED_SKB)
		return 1; /* offloaded, or several modes: libxdp's to read */
	fd = bpf_prog_get_fd_by_id(q.prog_id);
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len)) {
		if (fd >= 0)
			close(fd);
		return 1;
	}
	if (!strcmp(info.name, "xdp_dispatcher")) {
		ret = 1;
	} else if (strcmp(info.name, PROG_NAME)) {
		ret = hpn_set_error(-EBUSY,
				    "af_xdp: %s already runs another XDP program ('%s'): hpn will not replace it "
				    "(remove it with: xdp-loader unload %s --all)",
				    u->dev, info.name, u->dev);
	} else {
		LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = fd);

		flags = q.attach_mode == XDP_ATTACHED_DRV ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
		hpn_log(HPN_LOG_WARN, "af_xdp: %s: removing the XDP program a dead hpn endpoint left attached", u->dev);
		bpf_xdp_detach(u->ifindex, flags | XDP_FLAGS_REPLACE, &opts);
		ret = 0;
	}
	close(fd);
	return ret;
}

/* The interface is ours while we hold its lock; a lock nobody holds
 * means its last owner died, and a program of ours it left is stale. */
static int take_interface(struct hpn_pep *u)
{
	struct xdp_multiprog *mp;

	char pid[32];
	int ret = hpn_lock_take(&u->lock, "af_xdp", u->dev, pid, sizeof(pid));

	if (ret == -EBUSY)
		return hpn_set_error(-EBUSY, "af_xdp: %s is in use by another hpn endpoint (pid %s): one per interface",
				     u->dev, pid);
	if (ret == -ESTALE)
		return hpn_set_error(-EBUSY, "af_xdp: %s: its lock file %s keeps changing", u->dev, u->lock.path);
	if (ret)
		return hpn_set_error(ret, "af_xdp: cannot take the lock file %s: %s", u->lock.path, strerror(-ret));
	int alone = take_alone(u);

	if (alone <= 0)
		return alone;
	mp = xdp_multiprog__get_from_ifindex(u->ifindex); /* a dispatcher: libxdp reads it */
	if (!mp || libxdp_get_error(mp))
		return 0; /* nothing attached */
	const char *name;

	if (!mp_ours(mp, &name)) {
		ret = hpn_set_error(-EBUSY,
				    "af_xdp: %s already runs another XDP program ('%s'): hpn will not replace it "
				    "(remove it with: xdp-loader unload %s --all)",
				    u->dev, name, u->dev);
		xdp_multiprog__close(mp);
		return ret;
	}
	hpn_log(HPN_LOG_WARN, "af_xdp: %s: removing the XDP program a dead hpn endpoint left attached", u->dev);
	xdp_multiprog__detach(mp);
	xdp_multiprog__close(mp);
	return 0;
}

/* The frames' region becomes the UMEM (registered once per set-up). */
static int register_umem(struct hpn_pep *u)
{
	struct xsk_umem_config cfg = {.fill_size = u->rx_ring, .comp_size = RING_SIZE, .frame_size = FRAME_SIZE};
	int ret = xsk_umem__create(&u->umem, u->umem_area, u->umem_len, &u->fill, &u->comp, &cfg);

	if (ret)
		return hpn_set_error(ret, "af_xdp: UMEM of %zu bytes: %s", u->umem_len, strerror(-ret));
	return 0;
}

static int load_program(struct hpn_pep *u)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = PROG_NAME);
	enum xdp_attach_mode modes[2] = {XDP_MODE_NATIVE, XDP_MODE_SKB};
	int ret = -EINVAL;

	/* Native first: the driver runs the program before any skb exists.
	 * Except on veth, where skb mode measured faster (bench/
	 * af_xdp_vs_sockperf.sh: 64 B one way p50 3.9 vs 4.5 us, 64 B
	 * stream 5.7 vs 4.7 M msg/s): veth's native path adds a hop through
	 * its peer's NAPI that the generic path does not. */
	if (!strcmp(u->driver, "veth")) {
		modes[0] = XDP_MODE_SKB;
		modes[1] = XDP_MODE_NATIVE;
	}

	u->obj = bpf_object__open_mem(hpn_xdp_obj, hpn_xdp_obj_len, &oo);
	if (!u->obj)
		return hpn_set_error(-errno, "af_xdp: cannot open the XDP program: %s", strerror(errno));
	u->prog = xdp_program__from_bpf_obj(u->obj, "xdp");
	if (libxdp_get_error(u->prog)) {
		ret = (int)libxdp_get_error(u->prog);
		u->prog = NULL;
		return hpn_set_error(ret, "af_xdp: cannot use the XDP program: %s", strerror(-ret));
	}
	for (unsigned i = 0; i < 2; i++) {
		if (u->mode_cfg && modes[i] != (enum xdp_attach_mode)u->mode_cfg)
			continue;
		ret = xdp_program__attach(u->prog, u->ifindex, modes[i], 0);
		if (!ret) {
			u->mode = modes[i];
			break;
		}
	}
	if (ret) {
		char msg[128];

		libxdp_strerror(ret, msg, sizeof(msg));
		return hpn_set_error(ret, "af_xdp: cannot attach the XDP program to %s: %s%s", u->dev, msg,
				     ret == -EPERM ? " (needs CAP_NET_ADMIN and CAP_BPF: run as root)" : "");
	}
	u->ports_fd = bpf_object__find_map_fd_by_name(xdp_program__bpf_obj(u->prog), "hpn_ports");
	u->addrs_fd = bpf_object__find_map_fd_by_name(xdp_program__bpf_obj(u->prog), "hpn_addrs");
	if (u->ports_fd < 0 || u->addrs_fd < 0)
		return hpn_set_error(-ENOENT, "af_xdp: the XDP program lacks its maps");
	return 0;
}

static int open_socket(struct hpn_pep *u)
{
	struct xsk_socket_config cfg = {.rx_size = u->rx_ring, .tx_size = RING_SIZE,
					.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
					.bind_flags = XDP_USE_NEED_WAKEUP | XDP_ZEROCOPY};
	int xsks = bpf_object__find_map_fd_by_name(xdp_program__bpf_obj(u->prog), "hpn_xsks");
	int ret;

	/* The queue of a socket closed a moment ago (this process's previous
	 * endpoint, or a dead one's) is released by a kernel work item after
	 * the close returns: busy for a few milliseconds. Wait for it. */
	for (int tries = 0;; tries++) {
		cfg.bind_flags = XDP_USE_NEED_WAKEUP | XDP_ZEROCOPY;
		ret = xsk_socket__create(&u->xsk, u->dev, u->queue, u->umem, &u->rx, &u->tx, &cfg);
		u->zerocopy = !ret;
		if (ret && ret != -EBUSY) { /* veth and many drivers: copy mode */
			cfg.bind_flags = XDP_USE_NEED_WAKEUP | XDP_COPY;
			ret = xsk_socket__create(&u->xsk, u->dev, u->queue, u->umem, &u->rx, &u->tx, &cfg);
		}
		if (ret != -EBUSY || tries == 200)
			break;
		usleep(5000); /* up to a second, once, at set-up */
	}
	if (ret) {
		char path[96], hint[96] = "";
		unsigned nq = 0;
		DIR *d;
		struct dirent *de;

		/* A queue the device does not have: say which it has. */
		snprintf(path, sizeof(path), "/sys/class/net/%s/queues", u->dev);
		if (ret == -EINVAL && (d = opendir(path))) {
			while ((de = readdir(d)))
				nq += !strncmp(de->d_name, "rx-", 3);
			closedir(d);
			if (nq && u->queue >= nq)
				snprintf(hint, sizeof(hint), " (%s has %u receive queue%s: queue=0..%u)", u->dev, nq,
					 nq == 1 ? "" : "s", nq - 1);
		}
		return hpn_set_error(ret, "af_xdp: cannot open an AF_XDP socket on %s queue %u: %s%s%s", u->dev, u->queue,
				     strerror(-ret), ret == -EPERM ? " (needs CAP_NET_RAW: run as root)" : "", hint);
	}
	ret = xsks < 0 ? xsks : xsk_socket__update_xskmap(u->xsk, xsks);
	if (ret)
		return hpn_set_error(ret, "af_xdp: cannot enter the socket in the XDP program's map: %s", strerror(-ret));
	/* Half the frames (at most a ring) wait in the fill ring for the
	 * device; sends take theirs from the pool as they need them. */
	refill(u);
	if (u->in_dev < u->fill_target)
		return hpn_set_error(-ENOBUFS, "af_xdp: only %u of %u frames for the fill ring: the application holds "
					       "the rest", u->in_dev, u->fill_target);
	return 0;
}

/* An address the program takes frames to (ours, a joined group). */
static int add_addr(struct hpn_pep *u, uint32_t ip)
{
	uint8_t one = 1;

	return bpf_map_update_elem(u->addrs_fd, &ip, &one, BPF_ANY);
}

/* Our port, reserved in the kernel (nobody else takes it; port 0 picks a
 * free one) and entered in the program's map. */
static int take_port(struct hpn_pep *u, uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = u->ip, .sin_port = port};
	socklen_t alen = sizeof(a);
	uint8_t one = 1;

	int on = 1;

	u->port_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	/* ICMP errors quoting our frames reach this socket (they carry its
	 * address): a dead peer's port unreachable, read in progress. */
	if (u->port_fd >= 0) {
		int small = 4096; /* its data is never read: the program takes our frames */

		setsockopt(u->port_fd, SOL_IP, IP_RECVERR, &on, sizeof(on));
		setsockopt(u->port_fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	}
	if (u->port_fd < 0 || bind(u->port_fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(u->port_fd, (struct sockaddr *)&a, &alen))
		return hpn_set_error(-errno, "af_xdp: cannot reserve UDP port %u on %s: %s", ntohs(port),
				     inet_ntoa(a.sin_addr), strerror(errno));
	u->port = a.sin_port;
	if (add_addr(u, u->ip))
		return hpn_set_error(-errno, "af_xdp: cannot enter %s in the XDP program: %s", inet_ntoa(a.sin_addr),
				     strerror(errno));
	if (bpf_map_update_elem(u->ports_fd, &u->port, &one, BPF_ANY))
		return hpn_set_error(-errno, "af_xdp: cannot enter port %u in the XDP program: %s", ntohs(u->port),
				     strerror(errno));
	return 0;
}

static const char *mode_name(const struct hpn_pep *u)
{
	return u->mode == XDP_MODE_NATIVE ? "native" : "skb";
}

static void tear_down(struct hpn_pep *u);

/* Everything that needs the interface, on the first listen or connect. */
static int set_up(struct hpn_pep *u, uint32_t ip, uint16_t port)
{
	int ret;

	u->ifindex = (int)if_nametoindex(u->dev);
	if (!u->ifindex)
		return hpn_set_error(-ENODEV, "af_xdp: no interface '%s'", u->dev);
	u->ip = ip;
	ret = if_info(u);
	if (!ret && u->pc.mtu + HPN_IP4_HLEN + HPN_UDP_HLEN > u->if_mtu)
		ret = hpn_set_error(-EINVAL, "af_xdp: mtu=%u needs an interface MTU of %u; %s has %u", u->pc.mtu,
				    u->pc.mtu + HPN_IP4_HLEN + HPN_UDP_HLEN, u->dev, u->if_mtu);
	ret = ret ?: take_interface(u);
	ret = ret ?: register_umem(u);
	ret = ret ?: load_program(u);
	ret = ret ?: open_socket(u);
	ret = ret ?: take_port(u, port);
	if (ret) {
		tear_down(u);
		return ret;
	}
	u->up = true;
	hpn_core_describe(u->core, "af_xdp %s queue %u, %s mode, %s", u->dev, u->queue, mode_name(u),
			  u->zerocopy ? "zero copy" : "copy mode");
	hpn_log(HPN_LOG_INFO, "af_xdp: %s (%s) queue %u, %s mode, %s, UMEM: the pool's %u device frames of %u B; %s:%u",
		u->dev, u->driver[0] ? u->driver : "?", u->queue, mode_name(u), u->zerocopy ? "zero copy" : "copy mode",
		u->nframes, FRAME_SIZE, inet_ntoa((struct in_addr){u->ip}), ntohs(u->port));
	return 0;
}

/* The interface that holds ip (dev= must agree). */
static int dev_of_addr(struct hpn_pep *u, uint32_t ip, uint32_t *out_ip)
{
	struct ifaddrs *ifa, *i;
	int ret = -EADDRNOTAVAIL;

	if (getifaddrs(&ifa))
		return hpn_set_error(-errno, "af_xdp: getifaddrs: %s", strerror(errno));
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		uint32_t a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;

		if (ip ? a == ip : !strcmp(i->ifa_name, u->dev)) {
			if (u->dev[0] && strcmp(i->ifa_name, u->dev))
				continue;
			snprintf(u->dev, sizeof(u->dev), "%s", i->ifa_name);
			*out_ip = a;
			ret = 0;
			break;
		}
	}
	freeifaddrs(ifa);
	if (ret && ip)
		return hpn_set_error(ret, "af_xdp: no interface%s%s has the address %s", u->dev[0] ? " " : "",
				     u->dev, inet_ntoa((struct in_addr){ip}));
	if (ret)
		return hpn_set_error(ret, u->dev[0] ? "af_xdp: %s has no IPv4 address" : "af_xdp: listening on any "
				     "address needs dev=IFNAME%s", u->dev);
	return 0;
}

/* ---- plugin ops ------------------------------------------------------------------- */

static int xdp_probe(struct hpn_caps *caps, char *why, size_t why_len)
{
	int fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);

	caps->max_msg_size = 65536;
	caps->inline_size = 0;
	caps->flags = HPN_CAP_KERNEL_BYPASS | HPN_CAP_NEEDS_PRIV | HPN_CAP_ORDERED | HPN_CAP_RELIABLE;
	caps->headroom = 0;
	caps->preference = 5; /* needs a device and privileges: never picked by plugin=auto over udp */
	if (fd < 0) {
		int err = errno;

		snprintf(why, why_len, "%s",
			 err == EAFNOSUPPORT ? "the kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS)"
			 : err == EPERM || err == EACCES ? "AF_XDP sockets need CAP_NET_RAW (run as root)"
							   : strerror(err));
		return -err;
	}
	close(fd);
	return 0;
}

/* What the kernel dropped for us, into hpn_stats.rx_dropped: no fill
 * frame (rx_dropped; in copy mode an empty fill ring is also counted in
 * rx_fill_ring_empty_descs - the same frames - and in zero-copy mode that
 * counts allocation attempts) or the rx ring full. */
static void read_drops(struct hpn_pep *u)
{
	struct xdp_statistics xs = {0};
	socklen_t len = sizeof(xs);

	if (!getsockopt(xsk_socket__fd(u->xsk), SOL_XDP, XDP_STATISTICS, &xs, &len))
		hpn_stat_dropped(u->st, &u->drops_last, xs.rx_dropped + xs.rx_ring_full);
}

/* What the kernel dropped on its side of the rings, said once at the end. */
static void log_xsk_stats(struct hpn_pep *u)
{
	struct xdp_statistics xs = {0};
	socklen_t len = sizeof(xs);

	if (getsockopt(xsk_socket__fd(u->xsk), SOL_XDP, XDP_STATISTICS, &xs, &len))
		return;
	if (xs.rx_dropped || xs.rx_ring_full || xs.rx_fill_ring_empty_descs || xs.rx_invalid_descs ||
	    xs.tx_invalid_descs)
		hpn_log(HPN_LOG_INFO,
			"af_xdp: %s: the kernel dropped %llu frames for us (rx ring full %llu, fill ring empty %llu, "
			"invalid rx/tx descriptors %llu/%llu)",
			u->dev, (unsigned long long)xs.rx_dropped, (unsigned long long)xs.rx_ring_full,
			(unsigned long long)xs.rx_fill_ring_empty_descs, (unsigned long long)xs.rx_invalid_descs,
			(unsigned long long)xs.tx_invalid_descs);
	hpn_log(HPN_LOG_DEBUG, "af_xdp: %s: %llu datagrams copied into a frame to send (the rest went out in place)",
		u->dev, (unsigned long long)u->copies);
}

/* Every frame the device or we held goes back to the pool (the socket is
 * gone: nothing is in flight any more); the application's stay its own. */
static void frames_home(struct hpn_pep *u)
{
	if (!u->fstate)
		return;
	for (uint32_t i = 0; i < u->nframes; i++) {
		uint64_t chunk = (uint64_t)i * FRAME_SIZE;

		if (u->fstate[i] & (F_DEV | F_PUT))
			pool_give(u, &chunk, 1);
		u->fstate[i] = 0;
	}
	pool_give(u, u->free_frames, u->nfree);
	u->nfree = u->nrecycle = u->nlent = u->in_dev = 0;
}

/* Undo set_up (whatever part of it was done): the endpoint can set up
 * again, and a failed listen or connect holds no interface. */
static void tear_down(struct hpn_pep *u)
{
	if (u->xsk) {
		read_drops(u); /* the last ones count too */
		log_xsk_stats(u);
		xsk_socket__delete(u->xsk);
		u->drops_last = 0; /* a new socket counts from zero */
		u->mtu_short = false;
	}
	if (u->umem)
		xsk_umem__delete(u->umem);
	if (u->prog) {
		detach_ours(u);
		xdp_program__close(u->prog);
	}
	bpf_object__close(u->obj); /* ours: xdp_program__from_bpf_obj leaves it to us */
	frames_home(u);
	if (u->port_fd >= 0)
		close(u->port_fd);
	hpn_lock_drop(&u->lock);
	u->xsk = NULL;
	u->umem = NULL;
	u->prog = NULL;
	u->obj = NULL;
	u->port_fd = u->ports_fd = u->addrs_fd = -1;
	u->tx_outstanding = 0;
	u->up = false;
	if (!u->dev_cfg)
		u->dev[0] = 0;
}

static void xdp_close(struct hpn_pep *u)
{
	if (!u)
		return;
	hpn_pktep_destroy(u->pk); /* says goodbye through the socket: first */
	tear_down(u);
	if (u->ping_fd >= 0)
		close(u->ping_fd);
	free(u->free_frames);
	free(u->fstate);
	free(u);
}

/* The receive side's depth follows frames=: half of them wait in the fill
 * ring (the rx ring as deep), so a reader that stops - descheduled on a
 * loaded host - loses nothing for that long (at 2 x 20k packets/s, 2048
 * frames last 51 ms: a feed lost 22364 of 400006 packets to nine 100 ms
 * stops, none with frames=16384; kernel udp's 8 MiB buffer lost none). */
static uint32_t rx_ring_size(uint32_t nframes)
{
	uint32_t r = RING_SIZE;

	while (r < nframes / 2 && r < RX_RING_MAX)
		r *= 2;
	return r;
}

/* The UMEM: device frames in the core's pool, so a message can reach the
 * application in the frame it arrived in and leave from the buffer it was
 * written in. */
static int open_frames(struct hpn_pep *u)
{
	int ret = hpn_core_frames(u->core, u->nframes, FRAME_SIZE, HPN_NET_HDR + HPN_PKTEP_HEADROOM, &u->frames);

	if (ret)
		return ret;
	u->umem_area = hpn_pool_region(u->frames, &u->umem_len);
	u->data_off = (uint32_t)hpn_pool_headroom(u->frames);
	u->pc.frames = u->frames;
	u->rx_ring = rx_ring_size(u->nframes);
	u->fill_target = u->nframes / 2 < u->rx_ring ? u->nframes / 2 : u->rx_ring;
	u->pc.kept_max = u->fill_target / 4;
	u->free_frames = malloc(u->nframes * sizeof(*u->free_frames));
	u->fstate = calloc(u->nframes, 1);
	if (!u->free_frames || !u->fstate)
		return hpn_set_error(-ENOMEM, "af_xdp: out of memory for %u frames", u->nframes);
	return 0;
}

static int xdp_open(struct hpn_core *core, struct hpn_caps *caps, struct hpn_pep **out)
{
	struct hpn_pep *u = calloc(1, sizeof(*u));
	const char *dev, *mode;
	uint64_t queue, frames;
	char why[128];
	int ret;

	if (!u)
		return hpn_set_error(-ENOMEM, "af_xdp: out of memory");
	u->core = core;
	u->st = hpn_core_stats(core);
	u->port_fd = u->ping_fd = u->ports_fd = u->addrs_fd = u->lock.fd = -1;
	ret = xdp_probe(caps, why, sizeof(why));
	if (ret) {
		hpn_set_error(ret, "af_xdp: %s", why);
		goto fail;
	}
	dev = hpn_core_cfg(core, "dev");
	if (dev && (strlen(dev) >= IF_NAMESIZE || !if_nametoindex(dev))) {
		ret = hpn_set_error(-ENODEV, "af_xdp: dev=%s: no such interface", dev);
		goto fail;
	}
	if (dev)
		snprintf(u->dev, sizeof(u->dev), "%s", dev);
	u->dev_cfg = dev != NULL;
	mode = hpn_core_cfg(core, "xdp_mode");
	if (mode && strcmp(mode, "auto") && strcmp(mode, "native") && strcmp(mode, "skb")) {
		ret = hpn_set_error(-EINVAL, "config: xdp_mode='%s': auto, native or skb", mode);
		goto fail;
	}
	u->mode_cfg = !mode || !strcmp(mode, "auto") ? 0 : !strcmp(mode, "native") ? XDP_MODE_NATIVE : XDP_MODE_SKB;
	ret = hpn_core_cfg_u64(core, "queue", 0, 0, 63, &queue);
	ret = ret ?: hpn_pktep_read_cfg(core, 1472, MTU_MAX, 1472, false, &u->pc);
	/* Plain datagrams (feeds): 8192 wait for arrivals - a reader may stop
	 * 200 ms of a 2 x 20k packets/s feed (kernel udp's 8 MiB buffer holds
	 * more; frames= goes further). */
	ret = ret ?: hpn_core_cfg_u64(core, "frames", u->pc.plain ? 16384 : 4096, 256, 1u << 20, &frames);
	if (ret)
		goto fail;
	if (!u->pc.mcast_ttl) { /* the kernel keeps TTL 0 on the host; we only have the wire */
		ret = hpn_set_error(-EINVAL, "config: mcast_ttl=0 (this host only) needs plugin=udp: af_xdp sends on "
					     "the wire");
		goto fail;
	}
	u->queue = (uint32_t)queue;
	u->nframes = (uint32_t)frames;
	ret = open_frames(u);
	if (ret)
		goto fail;
	ret = hpn_pktep_create(core, &u->pc, &xsk_io, u, &u->pk);
	if (ret)
		goto fail;
	caps->max_msg_size = hpn_pktep_max_msg(u->pk);
	/* A message takes its send frames whole: the largest must fit in
	 * what can be lent (the frames not in the fill ring, less the
	 * reserve for copies). */
	uint32_t send_frames = u->nframes - u->fill_target;
	uint32_t need = (caps->max_msg_size + u->pc.mtu - HPN_PKT_HDR - HPN_PKT_FRAG_HDR - 1) /
			(u->pc.mtu - HPN_PKT_HDR - HPN_PKT_FRAG_HDR);

	u->tx_target = need + TX_RESERVE > 256 ? need + TX_RESERVE : 256;
	if (u->tx_target > send_frames)
		u->tx_target = send_frames;
	if (u->pc.reliable && send_frames < need + TX_RESERVE) {
		ret = hpn_set_error(-EINVAL, "config: frames=%u leaves %u send frames; a %u-byte message needs %u (+%u "
					     "kept for copies): raise frames=", u->nframes, send_frames,
				    caps->max_msg_size, need, TX_RESERVE);
		goto fail;
	}
	u->plain = u->pc.plain;
	caps->flags = HPN_CAP_KERNEL_BYPASS | HPN_CAP_NEEDS_PRIV;
	if (u->plain) /* receive timestamps: the burst's (no XDP metadata before Linux 6.3) */
		caps->flags |= HPN_CAP_PLAIN | HPN_CAP_MULTICAST;
	else
		caps->flags |= HPN_CAP_ORDERED | (hpn_pktep_reliable(u->pk) ? HPN_CAP_RELIABLE : HPN_CAP_MULTICAST);
	*out = u;
	return 0;
fail:
	xdp_close(u);
	return ret;
}

static int xdp_mem_register(struct hpn_pep *u, void *addr, size_t len)
{
	(void)addr;
	(void)len;
	hpn_pktep_mem_register(u->pk);
	return 0;
}

/* The interface for a group: mcast_if=, else dev=, else (publishing)
 * the route's. */
static int group_dev(struct hpn_pep *u, uint32_t group, const char *spec, uint32_t *ip)
{
	struct hpn_route r;
	char why[128];

	if (u->pc.mcast_if)
		return dev_of_addr(u, u->pc.mcast_if, ip);
	if (u->dev[0])
		return dev_of_addr(u, 0, ip);
	if (hpn_route_get(group, &r, why, sizeof(why)) == 0 && strcmp(r.ifname, "lo")) {
		snprintf(u->dev, sizeof(u->dev), "%s", r.ifname);
		*ip = r.src_ip;
		return 0;
	}
	return hpn_set_error(-EINVAL, "af_xdp: %s is a multicast group: say which interface with dev=IFNAME or "
				      "mcast_if=ADDRESS", spec);
}

/* Subscribe: the kernel joins the group on the interface (IGMP, the NIC's
 * multicast filter); the program hands us the frames to our port. */
static int listen_group(struct hpn_pep *u, const struct sockaddr_in *a, const char *spec)
{
	struct ip_mreq mreq = {.imr_multiaddr = a->sin_addr};
	uint32_t ip;
	int ret = hpn_pktep_subscribe(u->pk);

	ret = ret ?: group_dev(u, a->sin_addr.s_addr, spec, &ip);
	ret = ret ?: set_up(u, ip, a->sin_port);
	if (ret)
		return ret;
	mreq.imr_interface.s_addr = ip;
	if (add_addr(u, a->sin_addr.s_addr) ||
	    setsockopt(u->port_fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq))) {
		ret = hpn_set_error(-errno, "af_xdp: cannot join %s on %s: %s", spec, u->dev, strerror(errno));
		tear_down(u);
		return ret;
	}
	u->group = a->sin_addr.s_addr;
	return 0;
}

/* Join a group through the kernel (IGMP, the NIC's filter) on our
 * interface - any source, or one (IGMPv3) - and let the program pass it. */
static int join(struct hpn_pep *u, uint32_t group, uint32_t source, const char *spec)
{
	int ret = hpn_net_join(u->port_fd, u->ifindex, group, source);

	if (ret || add_addr(u, group))
		return hpn_set_error(ret ? ret : -errno, "af_xdp: cannot join %s on %s: %s", spec, u->dev,
				     strerror(ret ? -ret : errno));
	return 0;
}

/* framing=none: one more line - a group (group@source: one source), or a
 * port of our own - on the interface the first one set up. */
static int plain_listen(struct hpn_pep *u, const char *spec)
{
	struct sockaddr_in a;
	uint32_t source, ip;
	uint8_t one = 1;
	char addr[128];
	bool group;
	int ret = hpn_pktep_split_source(spec, addr, sizeof(addr), &source);

	ret = ret ?: hpn_net_parse_v4("af_xdp", addr, true, &a);
	if (ret)
		return ret;
	group = hpn_ip4_is_group(a.sin_addr.s_addr);
	if (source && !group)
		return hpn_set_error(-EINVAL, "af_xdp: listen %s: a source is given for a group only", spec);
	if (u->lines.n == HPN_NET_LINES)
		return hpn_set_error(-ENOSPC, "af_xdp: listen %s: at most %d lines", spec, HPN_FEED_LINES_MAX);
	if (group && !a.sin_port)
		return hpn_set_error(-EINVAL, "af_xdp: listen %s: a group's port must be given", spec);
	ret = hpn_pktep_line_check(u->pk, spec, group ? a.sin_addr.s_addr : 0, a.sin_port, source);
	if (ret)
		return ret;
	if (!u->up) {
		ret = group ? group_dev(u, a.sin_addr.s_addr, spec, &ip) : dev_of_addr(u, a.sin_addr.s_addr, &ip);
		ret = ret ?: set_up(u, ip, a.sin_port);
		if (ret)
			return ret;
		a.sin_port = u->port; /* port 0: the one set_up took */
	} else if (!group && a.sin_addr.s_addr != htonl(INADDR_ANY) && a.sin_addr.s_addr != u->ip) {
		return hpn_set_error(-EINVAL, "af_xdp: listen %s: the endpoint is on %s already", spec,
				     inet_ntoa((struct in_addr){u->ip}));
	} else if (!a.sin_port) {
		return hpn_set_error(-EINVAL, "af_xdp: listen %s: a second line needs its port", spec);
	} else if (bpf_map_update_elem(u->ports_fd, &a.sin_port, &one, BPF_ANY)) {
		return hpn_set_error(-errno, "af_xdp: cannot enter port %u in the XDP program: %s", ntohs(a.sin_port),
				     strerror(errno));
	}
	ret = group ? join(u, a.sin_addr.s_addr, source, spec) : 0;
	ret = ret ?: group ? hpn_pktep_subscribe(u->pk) : (hpn_pktep_listen(u->pk), 0);
	if (!ret) {
		int line = hpn_pktep_line_add(u->pk, spec, group ? a.sin_addr.s_addr : 0, a.sin_port, source);

		ret = line < 0 ? line : 0;
	}
	if (ret)
		return ret;
	u->lines.ip[u->lines.n] = group ? a.sin_addr.s_addr : u->ip;
	u->lines.source[u->lines.n] = source;
	u->lines.group[u->lines.n] = group;
	u->lines.port[u->lines.n++] = a.sin_port;
	return 0;
}

static int xdp_listen(struct hpn_pep *u, const char *spec)
{
	struct sockaddr_in a;
	uint32_t ip;
	int ret;

	if (u->plain)
		return plain_listen(u, spec);
	ret = hpn_net_parse_v4("af_xdp", spec, true, &a);
	if (ret)
		return ret;
	if (u->up)
		return hpn_set_error(-EISCONN, "af_xdp: endpoint already set up (listen before connecting)");
	if (hpn_ip4_is_group(a.sin_addr.s_addr))
		return listen_group(u, &a, spec);
	ret = dev_of_addr(u, a.sin_addr.s_addr, &ip);
	ret = ret ?: set_up(u, ip, a.sin_port);
	if (ret)
		return ret;
	hpn_pktep_listen(u->pk);
	return 0;
}

static int xdp_local_addr(struct hpn_pep *u, char *buf, size_t len)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = u->ip, .sin_port = u->port};

	if (!u->up)
		return -ENOTCONN;
	return hpn_addr_format((struct sockaddr *)&a, buf, len);
}

/* framing=none: nothing resends a datagram that left before the next
 * hop's MAC was known, so a connect has the kernel resolve it first - for
 * as long as the caller gave the connect, at most a second (an
 * asynchronous one only asks). */
static void plain_resolve(struct hpn_pep *u, uint32_t ip)
{
	uint64_t ms = hpn_core_connect_timeout_ms(u->core), t0 = hpn_now_ns();

	if (ms > 1000)
		ms = 1000;
	while (!hpn_nb_lookup(&u->nb, ip, nb_resolve, u) && hpn_now_ns() - t0 < ms * 1000000ull)
		usleep(1000);
}

static int xdp_connect(struct hpn_pep *u, const char *spec, hpn_peer_t *peer)
{
	struct sockaddr_in a;
	int ret = hpn_net_parse_v4("af_xdp", spec, false, &a);

	if (ret)
		return ret;
	if (hpn_ip4_is_group(a.sin_addr.s_addr)) { /* publish: the peer is the group, connected at once */
		uint32_t ip;

		if (!u->up) {
			ret = group_dev(u, a.sin_addr.s_addr, spec, &ip);
			ret = ret ?: set_up(u, ip, 0);
			if (ret)
				return ret;
		}
		return hpn_pktep_publish(u->pk, &a, sizeof(a), peer);
	}
	if (!u->up) {
		struct hpn_route r;
		char why[128];
		uint32_t ip;

		ret = hpn_route_get(a.sin_addr.s_addr, &r, why, sizeof(why));
		if (ret)
			return hpn_set_error(ret, "af_xdp: %s: %s", spec, why);
		if (!u->dev[0] && r.ifindex && !strcmp(r.ifname, "lo"))
			return hpn_set_error(-EINVAL, "af_xdp: %s is this host (its route is the loopback): af_xdp sends "
						      "frames on a network interface; to this host use plugin=udp", spec);
		if (u->dev[0] && strcmp(u->dev, r.ifname))
			hpn_log(HPN_LOG_WARN, "af_xdp: the route to %s leaves by %s; sending on dev=%s", spec, r.ifname,
				u->dev);
		if (!u->dev[0])
			snprintf(u->dev, sizeof(u->dev), "%s", r.ifname);
		ip = r.src_ip;
		if (strcmp(u->dev, r.ifname)) {
			ret = dev_of_addr(u, 0, &ip);
			if (ret)
				return ret;
		}
		ret = set_up(u, ip, 0);
		if (ret)
			return ret;
	}
	if (a.sin_addr.s_addr == u->ip && a.sin_port == u->port)
		return hpn_set_error(-EINVAL, "af_xdp: %s is this endpoint itself", spec);
	if (u->plain)
		plain_resolve(u, a.sin_addr.s_addr);
	return hpn_pktep_connect(u->pk, &a, sizeof(a), peer);
}

static int xdp_disconnect(struct hpn_pep *u, hpn_peer_t id)
{
	return hpn_pktep_disconnect(u->pk, id);
}

static int xdp_peer_addr(struct hpn_pep *u, hpn_peer_t id, char *buf, size_t len)
{
	return hpn_pktep_peer_addr(u->pk, id, buf, len);
}

/* ICMP errors for our frames: the kernel matched them to the socket that
 * holds our port. The packet layer decides what they are worth (only one
 * quoting a peer's session is heard; it then probes the peer). */
static void read_icmp(struct hpn_pep *u)
{
	for (int i = 0; i < 16; i++) {
		struct sockaddr_in from;
		char cbuf[256];
		uint8_t quote[64];
		struct iovec iov = {quote, sizeof(quote)};
		struct msghdr mh = {.msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
		ssize_t qlen = recvmsg(u->port_fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
		int err = 0;

		if (qlen < 0)
			return;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) {
				struct sock_extended_err ee;

				memcpy(&ee, CMSG_DATA(c), sizeof(ee));
				if (ee.ee_origin == SO_EE_ORIGIN_ICMP)
					err = (int)ee.ee_errno;
			}
		if (err && err != EMSGSIZE)
			hpn_pktep_unreachable(u->pk, &from, sizeof(from), -err, quote, (size_t)qlen);
	}
}

/* A frame never changes a next hop's MAC (a forged source could):
 * instead the kernel's answer is asked again, for one cached entry each
 * second in turn, so a peer whose MAC changed (a failover, a new NIC) is
 * followed within seconds for the few peers a low-latency host has. Two
 * netlink requests, in progress (inline: in the application's call), so
 * one entry at a time. An entry the kernel forgot is resolved anew. */
/* The interface's MTU, read each second: lowered below what mtu= sends
 * (ip link set ... mtu), our larger datagrams no longer leave it - the
 * device drops them, the peer never acks, large messages stall while
 * keepalives pass, and nothing said why. A datagram's size is fixed for
 * the stream (the handshake agreed it): said, loudly, once. */
static void mtu_check(struct hpn_pep *u)
{
	uint32_t need = u->pc.mtu + HPN_IP4_HLEN + HPN_UDP_HLEN;

	if (u->port_fd < 0 || read_if_mtu(u->port_fd, u->dev, &u->if_mtu))
		return;
	if (u->if_mtu < need && !u->mtu_short)
		hpn_log(HPN_LOG_ERROR, "af_xdp: %s's MTU fell to %u: datagrams of up to %u bytes (mtu=%u) no longer "
				       "leave it, and messages needing them stall; set it back to %u or more, or start "
				       "the endpoint again (mtu= at most %u)",
			u->dev, u->if_mtu, need, u->pc.mtu, need, u->if_mtu - HPN_IP4_HLEN - HPN_UDP_HLEN);
	else if (u->if_mtu >= need && u->mtu_short)
		hpn_log(HPN_LOG_INFO, "af_xdp: %s's MTU is %u again: datagrams of %u bytes leave it", u->dev, u->if_mtu,
			need);
	u->mtu_short = u->if_mtu < need;
}

static void nb_refresh(struct hpn_pep *u)
{
	for (unsigned k = 0; k < HPN_NB_SIZE; k++) {
		struct hpn_nb *n = &u->nb.e[u->nb_next++ % HPN_NB_SIZE];
		struct hpn_route r;
		char why[128];
		uint8_t mac[6];
		uint32_t hop;
		int ret;

		if (!n->ip || !n->ok || hpn_ip4_is_group(n->ip))
			continue;
		hop = hpn_route_get(n->ip, &r, why, sizeof(why)) == 0 && r.ifindex == u->ifindex ? r.next_hop : n->ip;
		ret = hpn_neigh_get(u->ifindex, hop, mac, why, sizeof(why));
		if (ret == 0 && memcmp(mac, n->mac, 6)) {
			memcpy(n->mac, mac, 6);
			if (u->nb.last_ip == n->ip)
				memcpy(u->nb.last_mac, mac, 6);
		} else if (ret == -ENOENT) {
			nb_kick(u, hop); /* the kernel resolves it again; the cached MAC serves meanwhile */
		}
		return; /* one entry a call */
	}
}

static int xdp_progress(struct hpn_pep *u, uint64_t now)
{
	if (!u->up)
		return 0;
	reap(u);
	if (u->tx_outstanding)
		kick_tx(u); /* frames a full kernel batch left in the ring */
	if (now - u->icmp_ns >= ICMP_EVERY_NS) {
		u->icmp_ns = now;
		read_icmp(u);
	}
	if (now - u->nb_ns >= 1000000000ull) {
		u->nb_ns = now;
		nb_refresh(u);
		mtu_check(u);
		read_drops(u);
	}
	return hpn_pktep_progress(u->pk, now);
}

static int xdp_wait_fd(struct hpn_pep *u)
{
	if (!u->up)
		return -ENOTCONN; /* no socket yet: nothing can come */
	if (hpn_pktep_busy(u->pk) || u->tx_outstanding)
		return -EAGAIN; /* timers near, or sends to complete */
	return xsk_socket__fd(u->xsk);
}

static int xdp_tx_burst(struct hpn_pep *u, const struct hpn_msg *msgs, unsigned n, unsigned flags)
{
	return hpn_pktep_tx_burst(u->pk, msgs, n, flags);
}

static int xdp_rx_burst(struct hpn_pep *u, struct hpn_msg *msgs, unsigned n)
{
	return u->up ? hpn_pktep_rx_burst(u->pk, msgs, n) : 0;
}

static int xdp_feed_lines(struct hpn_pep *u, struct hpn_feed_line *lines, unsigned max)
{
	return hpn_pktep_feed_lines(u->pk, lines, max);
}

/* The control calls that reach libbpf or libxdp, with their printing ours. */
static int xdp_probe_q(struct hpn_caps *caps, char *why, size_t len)
{
	quiet_begin();
	int ret = xdp_probe(caps, why, len);

	quiet_end();
	return ret;
}

static int xdp_open_q(struct hpn_core *core, struct hpn_caps *caps, struct hpn_pep **out)
{
	quiet_begin();
	int ret = xdp_open(core, caps, out);

	quiet_end();
	return ret;
}

static void xdp_close_q(struct hpn_pep *u)
{
	quiet_begin();

	xdp_close(u);
	quiet_end();
}

static int xdp_listen_q(struct hpn_pep *u, const char *spec)
{
	quiet_begin();
	int ret = xdp_listen(u, spec);

	quiet_end();
	return ret;
}

static int xdp_connect_q(struct hpn_pep *u, const char *spec, hpn_peer_t *peer)
{
	quiet_begin();
	int ret = xdp_connect(u, spec, peer);

	quiet_end();
	return ret;
}

static const struct hpn_plugin_ops xdp_ops = {
	.abi_version = HPN_PLUGIN_ABI,
	.size = sizeof(struct hpn_plugin_ops),
	.name = "af_xdp",
	.description = "AF_XDP sockets: kernel bypass on a network interface (root; IPv4)",
	.params = xdp_params,
	.probe = xdp_probe_q,
	.open = xdp_open_q,
	.close = xdp_close_q,
	.mem_register = xdp_mem_register,
	.listen = xdp_listen_q,
	.local_addr = xdp_local_addr,
	.connect = xdp_connect_q,
	.disconnect = xdp_disconnect,
	.peer_addr = xdp_peer_addr,
	.progress = xdp_progress,
	.wait_fd = xdp_wait_fd,
	.tx_burst = xdp_tx_burst,
	.rx_burst = xdp_rx_burst,
	.feed_lines = xdp_feed_lines,
};

HPN_PLUGIN_DEFINE(xdp_ops)
