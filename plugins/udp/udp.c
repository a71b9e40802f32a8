/* SPDX-License-Identifier: MIT */
/*
 * udp.c - the reference backend: kernel UDP with sendmmsg/recvmmsg bursts.
 *
 * It must work on any Linux box without privileges, so it uses nothing but
 * a non-blocking datagram socket. One socket serves all peers of an
 * endpoint; peers are told apart by source address through a small hash.
 *
 * Wire format (integers little-endian), one 8-byte header per message:
 *   byte 0    magic 0xA5
 *   byte 1    version (1)
 *   byte 2    type: DATA, HELLO, HELLO_ACK, BYE, PING, PONG
 *   byte 3    flags (0)
 *   bytes 4-7 payload length
 *   DATA: the payload follows. Control types: an 8-byte session nonce.
 * The length makes datagrams self-delimiting: a buffer the kernel glued
 * together from a GSO run (UDP_GRO) is split by walking the headers, so
 * the receive path needs no control message and lone datagrams can use
 * plain recvfrom.
 * The handshake (HELLO/HELLO_ACK), goodbye (BYE) and keepalive (PING/PONG)
 * exist only to report new and gone peers: with reliable=off this backend
 * is honest datagrams.
 *
 * reliable=on (the default) hands everything but the socket to the shared
 * packet layer (src/packet/pktep.h): its own header and handshake, acks,
 * retransmission, fragmentation, flow control; this file then only moves
 * datagrams (rel_send/rel_recv) and reports ICMP errors.
 */
#include <hpn/plugin.h>

#include "msgq.h"
#include "packet/pktep.h"
#include "peerid.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define UDP_MAGIC 0xA5
#define UDP_VERSION 1
#define UDP_HDR 8
#define UDP_CTRL_LEN (UDP_HDR + 8)
#define UDP_MAX_PAYLOAD (65507 - UDP_HDR) /* IPv4 datagram limit */
#define BURST_MAX 256
#define PEND_MAX 1024
/* GSO limits: segments must fit a 1500-byte MTU path (a larger segment size
 * would be refused on real NICs), at most 64 per super-datagram (older
 * kernels' UDP_MAX_SEGMENTS) and one IP datagram's worth of bytes. */
#define GSO_MAX_SEG 1472
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000

enum udp_type { T_DATA = 1, T_HELLO, T_HELLO_ACK, T_BYE, T_PING, T_PONG };
enum peer_state { P_FREE = 0, P_CONNECTING, P_UP };

#define HASH_EMPTY UINT32_MAX

#define HPN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

struct udp_peer {
	struct sockaddr_storage addr;
	socklen_t alen;
	uint8_t state;
	hpn_peer_t id; /* slot | generation << slot_bits (peerid.h): never reused */
	uint32_t gen;
	uint64_t nonce;     /* session nonce we send */
	uint64_t alt_nonce; /* the other side's, after a simultaneous open; 0 if none */
	uint64_t last_rx_ns;
	bool seen; /* heard from since the last progress(): no clock on the fast path */
	uint64_t last_ping_ns;
	uint64_t started_ns;
	uint64_t last_hello_ns;
	uint64_t connect_limit_ns; /* our connect gives up after this long */
};

struct hpn_pep {
	int fd;
	int family;
	bool listening;
	unsigned burst;
	uint32_t max_msg;
	uint32_t max_peers;
	unsigned slot_bits; /* of peer ids, see peerid.h */
	uint32_t next_slot; /* where the round-robin search for a free slot starts */
	uint32_t npeers;
	uint32_t *active; /* slots in use, densely: timers visit only these */
	uint64_t now; /* coarse clock, updated by progress(): stamps peer activity */
	struct hpn_core *core;
	struct hpn_pool *pool;
	struct hpn_stats *st;
	struct udp_peer *peers;
	uint32_t *htab;
	uint32_t hmask;
	uint64_t timeout_ns, retry_ns;
	uint64_t sndbuf, rcvbuf, busy_poll;

	/* Receive side: buffers waiting for datagrams survive between calls. */
	void *rx_bufs[BURST_MAX];
	unsigned rx_have;
	size_t rx_cap; /* receive length: buffer size + our header, at most 64 KiB */
	bool rx_bursty; /* messages arrived together last time: use recvmmsg */
	struct mmsghdr rx_hdr[BURST_MAX];
	struct iovec rx_iov[BURST_MAX];
	struct sockaddr_storage rx_addr[BURST_MAX];

	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} tx_cmsg[BURST_MAX];
	uint8_t tx_hdrs[BURST_MAX][UDP_HDR];
	struct hpn_msgq pend; /* GRO segments beyond the caller's burst */

	struct mmsghdr tx_hdr[BURST_MAX];
	struct iovec tx_iov[2 * BURST_MAX];
	struct udp_peer *tx_peer[BURST_MAX];
	unsigned tx_count[BURST_MAX];
	void *tx_done[BURST_MAX];
	bool gso, gro;
	bool err_pending; /* the socket reported an (ICMP) error: drain the queue */
	/* Sessions that ended recently: their retransmitted HELLOs, still in
	 * flight, must not bring them back. */
	struct {
		struct sockaddr_storage addr;
		uint64_t nonce, until_ns;
	} closed[16];
	unsigned closed_next;

	/* reliable=on: the packet layer, and the socket calls it makes. */
	struct hpn_pktep *pk;
	struct in_addr mcast_if; /* the packet layer's mcast_if= (INADDR_ANY: unset) */
	uint8_t mcast_ttl;
	bool rel_bursty;
	/* Reliable mode: the time a datagram waited in the socket buffer is
	 * ours, not the path's (pktep.h, rx_ns), so the kernel stamps
	 * arrivals - only while datagrams queue: a lone message waits for
	 * nobody, and stamping cost it ~0.1-0.2 us one way (recvmsg with a
	 * control message). On when a receive finds several datagrams, off
	 * after TS_IDLE receives of one. */
	bool rel_ts;
	unsigned rel_lone;
	struct mmsghdr rel_hdr[64];
	struct iovec rel_iov[64];
	/* The kernel's receive time of each datagram (SO_TIMESTAMPNS), and
	 * the real clock's offset from ours (real_to_mono). */
	char rel_ctl[64][CMSG_SPACE(sizeof(struct timespec))] __attribute__((aligned(8)));
	int64_t r2m;
	uint64_t r2m_at;
	/* Pool buffers datagrams land in (when one holds an mtu): a message
	 * alone in its packet is handed to the application in the buffer it
	 * landed in (pktep.h, HPN_DGRAM_POOL). */
	void *rel_rxb[64]; /* a stack: the top ones are lent */
	unsigned rel_nrxb, rel_lent;
	uint32_t rel_mtu; /* lend only if a pool buffer holds this much */
	bool rel_lend;
};

static inline void put_hdr(uint8_t *p, uint8_t type, uint32_t len)
{
	p[0] = UDP_MAGIC;
	p[1] = UDP_VERSION;
	p[2] = type;
	p[3] = 0;
	p[4] = (uint8_t)len;
	p[5] = (uint8_t)(len >> 8);
	p[6] = (uint8_t)(len >> 16);
	p[7] = (uint8_t)(len >> 24);
}

static inline uint32_t hdr_len(const uint8_t *p)
{
	return (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
}

static const struct hpn_plugin_param udp_params[] = {
	{"rcvbuf", "socket receive buffer bytes (default 4m; root may exceed rmem_max)"},
	{"sndbuf", "socket send buffer bytes (default 4m)"},
	{"busy_poll", "SO_BUSY_POLL microseconds, 0 off (default 0; above net.core.busy_read needs CAP_NET_ADMIN)"},
	{"gso", "on|off: send runs of equal-size messages to one peer as one UDP GSO call (default on)"},
	{"gro", "on|off: reliable=off only: accept kernel-coalesced datagrams (UDP_GRO) and split them; for streams (default off)"},
	HPN_PKTEP_PARAMS,
	{NULL, NULL},
};

/* ---- addresses and peers ----------------------------------------------- */

static uint32_t addr_hash(const struct sockaddr_storage *a)
{
	uint64_t h = 0x9E3779B97F4A7C15ull;

	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)a;

		h ^= ((uint64_t)s->sin_addr.s_addr << 16) | s->sin_port;
	} else {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
		uint64_t w[2];

		memcpy(w, &s->sin6_addr, 16);
		h ^= w[0] ^ (w[1] * 31) ^ s->sin6_port;
	}
	h *= 0xff51afd7ed558ccdull;
	return (uint32_t)(h >> 32);
}

static inline bool addr_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, 16);
}

static struct udp_peer *peer_find(struct hpn_pep *u, const struct sockaddr_storage *a)
{
	for (uint32_t h = addr_hash(a) & u->hmask;; h = (h + 1) & u->hmask) {
		uint32_t idx = u->htab[h];

		if (idx == HASH_EMPTY)
			return NULL;
		if (addr_eq(&u->peers[idx].addr, a))
			return &u->peers[idx];
	}
}

/* Deletions are rare (a peer leaves): rebuilding keeps probing simple. */
static void hash_rebuild(struct hpn_pep *u)
{
	memset(u->htab, 0xff, (u->hmask + 1) * sizeof(*u->htab));
	for (uint32_t i = 0; i < u->max_peers; i++) {
		if (u->peers[i].state == P_FREE)
			continue;
		uint32_t h = addr_hash(&u->peers[i].addr) & u->hmask;

		while (u->htab[h] != HASH_EMPTY)
			h = (h + 1) & u->hmask;
		u->htab[h] = i;
	}
}

/* Slots are taken round-robin, so each one's generations last max_peers
 * times longer than if the lowest free slot were always reused; a slot
 * whose generations are used up is retired (peerid.h). */
static struct udp_peer *peer_new(struct hpn_pep *u, const struct sockaddr_storage *a, socklen_t alen)
{
	for (uint32_t n = 0; n < u->max_peers; n++) {
		uint32_t i = (u->next_slot + n) % u->max_peers;
		struct udp_peer *p = &u->peers[i];

		if (p->state != P_FREE || !hpn_peerid_usable(p->gen, u->slot_bits))
			continue;
		uint32_t gen = p->gen + 1;

		memset(p, 0, sizeof(*p));
		p->gen = gen;
		p->id = hpn_peerid_make(i, gen, u->slot_bits);
		memcpy(&p->addr, a, alen);
		p->alen = alen;
		p->last_rx_ns = p->started_ns = u->now;
		p->state = P_CONNECTING;
		u->active[u->npeers++] = i;
		u->next_slot = i + 1;
		hash_rebuild(u);
		return p;
	}
	return NULL;
}

/* Why peer_new() found nothing: the table is full, or some slots are
 * retired for good. */
static const char *no_slot_why(const struct hpn_pep *u)
{
	return u->npeers < u->max_peers ? "every free peer slot has used all its ids (recreate the endpoint)"
					: "all peer slots in use (raise max_peers)";
}

static void peer_free(struct hpn_pep *u, struct udp_peer *p)
{
	unsigned c = u->closed_next++ % HPN_ARRAY_LEN(u->closed);

	u->closed[c].addr = p->addr;
	u->closed[c].nonce = p->nonce;
	u->closed[c].until_ns = u->now + (u->timeout_ns > 3000000000ull ? u->timeout_ns : 3000000000ull);
	p->state = P_FREE;
	/* Swap-remove from the dense list of active slots. */
	for (uint32_t j = 0; j < u->npeers; j++) {
		if (u->active[j] == (uint32_t)(p - u->peers)) {
			u->active[j] = u->active[--u->npeers];
			break;
		}
	}
	hash_rebuild(u);
}

static inline struct udp_peer *peer_by_id(struct hpn_pep *u, hpn_peer_t id)
{
	uint32_t idx = hpn_peerid_slot(id, u->slot_bits);

	if (unlikely(idx >= u->max_peers))
		return NULL;
	struct udp_peer *p = &u->peers[idx];

	return p->id == id && p->state != P_FREE ? p : NULL;
}

static void peer_gone(struct hpn_pep *u, struct udp_peer *p, int status)
{
	hpn_peer_t id = p->id;

	peer_free(u, p);
	hpn_core_event(u->core, HPN_EV_PEER_GONE, id, status);
}

static int format_addr(const struct sockaddr_storage *a, char *buf, size_t len)
{
	return hpn_addr_format((const struct sockaddr *)a, buf, len);
}

static int resolve(const char *spec, bool passive, struct sockaddr_storage *out, socklen_t *alen)
{
	return hpn_addr_parse(spec, passive, SOCK_DGRAM, out, alen);
}

/* ---- socket ------------------------------------------------------------ */

static void set_bufsize(int fd, int opt, int force_opt, uint64_t bytes)
{
	int v = bytes > (1u << 30) ? 1 << 30 : (int)bytes;

	/* The FORCE variant lets root go past net.core.[rw]mem_max. */
	if (setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof(v)) == 0)
		return;
	if (setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v)))
		hpn_log(HPN_LOG_WARN, "udp: cannot set socket buffer to %d bytes: %s", v, strerror(errno));
}

static int ensure_socket(struct hpn_pep *u, int family)
{
	int one = 1, fd;

	if (u->fd >= 0) {
		if (family != u->family)
			return hpn_set_error(-EAFNOSUPPORT,
					     "udp: endpoint uses %s; cannot also talk %s (listen on [::]:port for both)",
					     u->family == AF_INET ? "IPv4" : "IPv6",
					     family == AF_INET ? "IPv4" : "IPv6");
		return 0;
	}
	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return hpn_set_error(-errno, "udp: socket: %s", strerror(errno));
	set_bufsize(fd, SO_RCVBUF, SO_RCVBUFFORCE, u->rcvbuf);
	set_bufsize(fd, SO_SNDBUF, SO_SNDBUFFORCE, u->sndbuf);
	/* ICMP errors (port unreachable) on an unconnected socket are only
	 * reported with RECVERR: that is how a dead peer is noticed at once. */
	if (family == AF_INET)
		setsockopt(fd, SOL_IP, IP_RECVERR, &one, sizeof(one));
	else
		setsockopt(fd, SOL_IPV6, IPV6_RECVERR, &one, sizeof(one));
	if (u->busy_poll) {
		int us = (int)u->busy_poll;

		if (setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &us, sizeof(us)))
			hpn_log(HPN_LOG_INFO, "udp: SO_BUSY_POLL=%d refused (%s); continuing without", us,
				strerror(errno));
	}
	if (u->gro) {
		int on = 1;

		if (setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof(on))) {
			hpn_log(HPN_LOG_INFO, "udp: UDP_GRO refused (%s); receiving datagrams one by one",
				strerror(errno));
			u->gro = false;
		}
	}
	u->fd = fd;
	u->family = family;
	return 0;
}

static void send_ctrl(struct hpn_pep *u, const struct udp_peer *p, uint8_t type)
{
	uint8_t pkt[UDP_CTRL_LEN];

	put_hdr(pkt, type, 8);
	memcpy(pkt + UDP_HDR, &p->nonce, 8);
	/* Control messages are best effort; retries come from timers. An
	 * ICMP error reported here is handled at the next receive or
	 * progress call, never in the middle of the caller's peer update. */
	if (sendto(u->fd, pkt, sizeof(pkt), MSG_DONTWAIT, (const struct sockaddr *)&p->addr, p->alen) < 0) {
		if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH ||
		    errno == EHOSTDOWN || errno == EMSGSIZE)
			u->err_pending = true;
		else if (errno != EAGAIN && errno != ENOBUFS)
			HPN_STAT_ADD(u->st->errors, 1);
	}
}

/* A peer's port answered with ICMP: the peer is gone (or never was). */
static void drain_errqueue(struct hpn_pep *u)
{
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage from;
		char cbuf[512], dummy[64];
		struct iovec iov = {dummy, sizeof(dummy)};
		struct msghdr mh = {.msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
				    .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
		int err = 0;
		ssize_t qlen = recvmsg(u->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);

		if (qlen < 0)
			break;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
			    (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR)) {
				struct sock_extended_err ee;

				memcpy(&ee, CMSG_DATA(c), sizeof(ee));
				if (ee.ee_origin == SO_EE_ORIGIN_ICMP || ee.ee_origin == SO_EE_ORIGIN_ICMP6)
					err = (int)ee.ee_errno;
			}
		}
		/* "Fragmentation needed" says the path is narrower, not that the
		 * peer is gone; the kernel fragments our datagrams meanwhile. */
		if (err == EMSGSIZE) {
			hpn_log(HPN_LOG_INFO, "udp: ICMP fragmentation needed on the path to a peer");
			continue;
		}
		if (u->pk) {
			if (err)
				hpn_pktep_unreachable(u->pk, &from, mh.msg_namelen, -err, (const uint8_t *)dummy,
						      (size_t)qlen);
			continue;
		}
		struct udp_peer *p = err ? peer_find(u, &from) : NULL;

		if (p)
			peer_gone(u, p, -err);
	}
	u->err_pending = false;
}

static bool is_icmp_error(int err)
{
	return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN ||
	       err == ENETDOWN || err == EMSGSIZE;
}

/* ---- datagram I/O for the packet layer (reliable=on) ------------------------ */

static bool transient(int err)
{
	return err == EAGAIN || err == ENOBUFS || err == EINTR;
}

/* Datagrams out: one sendto for one (latency), sendmmsg for more. A full
 * socket buffer drops them (0): the packet layer retransmits. */
static int rel_send(void *arg, const struct hpn_dgram *d, unsigned n)
{
	struct hpn_pep *u = arg;
	int r;

	if (n == 1) {
		if (sendto(u->fd, d->data, d->len, MSG_DONTWAIT, d->addr, d->alen) >= 0)
			return 1;
		r = -1;
	} else {
		if (n > HPN_ARRAY_LEN(u->rel_hdr))
			n = HPN_ARRAY_LEN(u->rel_hdr);
		for (unsigned i = 0; i < n; i++) {
			u->rel_iov[i] = (struct iovec){d[i].data, d[i].len};
			u->rel_hdr[i].msg_hdr = (struct msghdr){.msg_name = (void *)d[i].addr, .msg_namelen = d[i].alen,
								.msg_iov = &u->rel_iov[i], .msg_iovlen = 1};
		}
		r = sendmmsg(u->fd, u->rel_hdr, n, MSG_DONTWAIT);
		if (r > 0)
			return r;
	}
	if (transient(errno))
		return 0;
	if (is_icmp_error(errno)) {
		u->err_pending = true; /* which peer: the error queue says */
		return 1;
	}
	return -errno;
}

/* The kernel's receive time (CLOCK_REALTIME) on hpn_now_ns()'s clock:
 * real_to_mono is the difference of the two clocks (real_to_mono()). */
static uint64_t rx_stamp(struct msghdr *h, int64_t real_to_mono)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
			struct timespec ts;

			memcpy(&ts, CMSG_DATA(c), sizeof(ts));
			return (uint64_t)((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + real_to_mono);
		}
	}
	return 0;
}

/* The real clock is read again every 10 ms, not per call (one clock read
 * per call instead of two): NTP slews the real clock by at most
 * 500 ppm, 5 us in 10 ms, small beside the socket-buffer waits this
 * measures. A step of the real clock is caught at the next refresh. */
static int64_t real_to_mono(struct hpn_pep *u)
{
	struct timespec r;
	uint64_t mono = hpn_now_ns();

	if (mono - u->r2m_at < 10000000)
		return u->r2m;
	clock_gettime(CLOCK_REALTIME, &r);
	u->r2m_at = mono;
	u->r2m = (int64_t)mono - ((int64_t)r.tv_sec * 1000000000 + r.tv_nsec);
	return u->r2m;
}

#define TS_IDLE 4096

static void rx_timestamps(struct hpn_pep *u, bool on)
{
	int v = on;

	u->rel_lone = 0;
	if (u->rel_ts == on)
		return;
	u->rel_ts = on;
	if (setsockopt(u->fd, SOL_SOCKET, SO_TIMESTAMPNS, &v, sizeof(v)) && on)
		hpn_log(HPN_LOG_INFO, "udp: SO_TIMESTAMPNS refused (%s): socket-buffer time counts as path delay",
			strerror(errno));
}

/* Datagrams in, each with its source address. An ICMP error pending on
 * the socket fails the receive call that meets it (IP_RECVERR): after
 * draining it, try again (a few times: each reply to a dead peer bounces
 * while we read), so errors - forged ones cost nothing else - do not
 * stall the data behind them, and 0 means the socket is empty. */
#define RECV_ERR_RETRIES 8

/* Point the first n entries at pool buffers (topped up in bulk): fewer
 * if the pool is low; if it is empty, at the packet layer's own room. */
static unsigned rel_lend(struct hpn_pep *u, struct hpn_dgram *d, unsigned n)
{
	unsigned want;

	if (n > HPN_ARRAY_LEN(u->rel_rxb))
		n = HPN_ARRAY_LEN(u->rel_rxb);
	for (want = u->rel_lend && n > u->rel_nrxb ? n - u->rel_nrxb : 0; want; want /= 2)
		if (hpn_pool_get_bulk(u->pool, u->rel_rxb + u->rel_nrxb, want) == want) {
			u->rel_nrxb += want;
			break;
		}
	if (!u->rel_nrxb) {
		for (unsigned i = 0; i < n; i++) {
			d[i].data = d[i].buf;
			d[i].flags = 0;
		}
		u->rel_lent = 0;
		return n;
	}
	if (n > u->rel_nrxb)
		n = u->rel_nrxb;
	for (unsigned i = 0; i < n; i++) {
		d[i].data = u->rel_rxb[u->rel_nrxb - 1 - i];
		d[i].flags = HPN_DGRAM_POOL;
	}
	u->rel_lent = n;
	return n;
}

/* Buffers the packet layer kept (data NULL) are the application's now;
 * the rest of the lent ones go back on the stack. O(lent): a lone
 * message costs one step. */
static void rel_rx_done(void *arg, struct hpn_dgram *d, unsigned n)
{
	struct hpn_pep *u = arg;
	unsigned top = u->rel_nrxb - u->rel_lent, k = 0;
	void *back[HPN_ARRAY_LEN(u->rel_rxb)];

	for (unsigned i = 0; i < u->rel_lent; i++)
		if (i >= n || d[i].data)
			back[k++] = u->rel_rxb[u->rel_nrxb - 1 - i];
	memcpy(u->rel_rxb + top, back, k * sizeof(back[0]));
	u->rel_nrxb = top + k;
	u->rel_lent = 0;
}

static int rel_recv_try(struct hpn_pep *u, struct hpn_dgram *d, unsigned n, unsigned retry)
{
	int r;

	if (u->err_pending)
		drain_errqueue(u);
	if (!u->rel_bursty || n == 1) {
		rel_lend(u, d, 1);
		/* Lone messages (latency work): recvmmsg would cost a second,
		 * failing attempt. */
		struct iovec iov = {d->data, d->len};
		struct msghdr h = {.msg_name = (void *)d->addr, .msg_namelen = HPN_PKTEP_ADDR_MAX, .msg_iov = &iov,
				   .msg_iovlen = 1, .msg_control = u->rel_ctl[0], .msg_controllen = sizeof(u->rel_ctl[0])};
		/* Without timestamps the lone message keeps recvfrom: no
		 * msghdr to copy in and out. */
		ssize_t len = u->rel_ts ? recvmsg(u->fd, &h, MSG_DONTWAIT | MSG_TRUNC)
					: recvfrom(u->fd, d->data, d->len, MSG_DONTWAIT | MSG_TRUNC, (void *)d->addr,
						   &h.msg_namelen);
		socklen_t alen = h.msg_namelen;

		if (!u->rel_ts)
			h.msg_controllen = 0;

		if (len < 0) {
			if (is_icmp_error(errno)) {
				drain_errqueue(u);
				return retry ? rel_recv_try(u, d, n, retry - 1) : 0;
			}
			return transient(errno) ? 0 : -errno;
		}
		d->alen = alen;
		if ((size_t)len < d->len)
			d->len = (uint32_t)len;
		else if ((size_t)len > d->len)
			d->len = 0; /* truncated: longer than our mtu, not ours */
		d->rx_ns = h.msg_controllen ? rx_stamp(&h, real_to_mono(u)) : 0;
		u->rel_bursty = true; /* try a burst next time; it says if not */
		if (u->rel_ts && ++u->rel_lone >= TS_IDLE)
			rx_timestamps(u, false);
		return 1;
	}
	if (n > HPN_ARRAY_LEN(u->rel_hdr))
		n = HPN_ARRAY_LEN(u->rel_hdr);
	n = rel_lend(u, d, n);
	for (unsigned i = 0; i < n; i++) {
		u->rel_iov[i] = (struct iovec){d[i].data, d[i].len};
		u->rel_hdr[i].msg_hdr = (struct msghdr){.msg_name = (void *)d[i].addr, .msg_namelen = HPN_PKTEP_ADDR_MAX,
							.msg_iov = &u->rel_iov[i], .msg_iovlen = 1,
							.msg_control = u->rel_ctl[i],
							.msg_controllen = sizeof(u->rel_ctl[i])};
	}
	r = recvmmsg(u->fd, u->rel_hdr, n, MSG_DONTWAIT, NULL);
	if (r < 0) {
		u->rel_bursty = false;
		if (is_icmp_error(errno)) {
			drain_errqueue(u);
			return retry ? rel_recv_try(u, d, n, retry - 1) : 0;
		}
		return transient(errno) ? 0 : -errno;
	}
	int64_t off = r > 0 ? real_to_mono(u) : 0;

	for (int i = 0; i < r; i++) {
		d[i].alen = u->rel_hdr[i].msg_hdr.msg_namelen;
		d[i].len = u->rel_hdr[i].msg_hdr.msg_flags & MSG_TRUNC ? 0 : u->rel_hdr[i].msg_len;
		d[i].rx_ns = u->rel_hdr[i].msg_hdr.msg_controllen ? rx_stamp(&u->rel_hdr[i].msg_hdr, off) : 0;
	}
	u->rel_bursty = r > 1;
	if (r > 1)
		rx_timestamps(u, true); /* a queue: its wait is ours, measure it */
	else if (u->rel_ts && ++u->rel_lone >= TS_IDLE)
		rx_timestamps(u, false);
	return r;
}

static int rel_recv(void *arg, struct hpn_dgram *d, unsigned n)
{
	return rel_recv_try(arg, d, n, RECV_ERR_RETRIES);
}

static int rel_format(void *arg, const void *addr, uint32_t alen, char *buf, size_t len)
{
	(void)arg;
	(void)alen;
	return hpn_addr_format(addr, buf, len);
}

static const struct hpn_dgram_io rel_io = {
	.send = rel_send, .recv = rel_recv, .rx_done = rel_rx_done, .format = rel_format};

/* ---- control ----------------------------------------------------------- */

static int udp_probe(struct hpn_caps *caps, char *why, size_t why_len)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	caps->max_msg_size = UDP_MAX_PAYLOAD;
	caps->inline_size = 0;
	caps->flags = 0;
	caps->headroom = UDP_HDR;
	caps->preference = 10;
	if (fd < 0) {
		snprintf(why, why_len, "cannot open a UDP socket: %s", strerror(errno));
		return -errno;
	}
	close(fd);
	return 0;
}


static void udp_close(struct hpn_pep *u)
{
	if (!u)
		return;
	hpn_pktep_destroy(u->pk); /* says goodbye: before the socket goes */
	for (uint32_t i = 0; u->peers && i < u->max_peers; i++)
		if (u->peers[i].state == P_UP)
			send_ctrl(u, &u->peers[i], T_BYE);
	if (u->rx_have && u->pool)
		hpn_pool_put_bulk(u->pool, u->rx_bufs, u->rx_have);
	if (u->rel_nrxb)
		hpn_pool_put_bulk(u->pool, u->rel_rxb, u->rel_nrxb);
	for (struct hpn_msg m; u->pool && hpn_msgq_pop(&u->pend, &m, 1);)
		hpn_pool_put_bulk(u->pool, &m.data, 1);
	hpn_msgq_fini(&u->pend);
	if (u->fd >= 0)
		close(u->fd);
	free(u->peers);
	free(u->active);
	free(u->htab);
	free(u);
}

static bool is_group(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return IN_MULTICAST(ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr));
	return IN6_IS_ADDR_MULTICAST(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

/* Multicast is the packet layer's unordered mode over IPv4 groups. */
static int group_check(struct hpn_pep *u, const struct sockaddr_storage *a, const char *spec)
{
	if (!u->pk)
		return hpn_set_error(-EINVAL, "udp: %s is a multicast group: needs reliable=on,unordered=on "
					      "(sequenced, gaps counted)", spec);
	if (a->ss_family != AF_INET)
		return hpn_set_error(-EAFNOSUPPORT, "udp: %s: only IPv4 multicast groups are supported", spec);
	return 0;
}

/* Publish: send to the group from our own (ephemeral) port. */
static int connect_group(struct hpn_pep *u, const struct sockaddr_storage *a, socklen_t alen, const char *spec,
			 hpn_peer_t *peer)
{
	int ttl = (int)u->mcast_ttl, ret = group_check(u, a, spec);

	ret = ret ?: ensure_socket(u, AF_INET);
	if (ret)
		return ret;
	if (setsockopt(u->fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) ||
	    (u->mcast_if.s_addr != htonl(INADDR_ANY) &&
	     setsockopt(u->fd, IPPROTO_IP, IP_MULTICAST_IF, &u->mcast_if, sizeof(u->mcast_if))))
		return hpn_set_error(-errno, "udp: publish to %s: %s", spec, strerror(errno));
	return hpn_pktep_publish(u->pk, a, alen, peer);
}

/* Subscribe: bind the group's port (shared: several subscribers on one
 * host) and join the group. */
static int listen_group(struct hpn_pep *u, const struct sockaddr_storage *a, const char *spec)
{
	struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = ((const struct sockaddr_in *)a)->sin_port};
	struct ip_mreq mreq = {.imr_multiaddr = ((const struct sockaddr_in *)a)->sin_addr, .imr_interface = u->mcast_if};
	int one = 1, ret = group_check(u, a, spec);

	ret = ret ?: hpn_pktep_subscribe(u->pk);
	ret = ret ?: ensure_socket(u, AF_INET);
	if (ret)
		return ret;
	setsockopt(u->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(u->fd, (struct sockaddr *)&any, sizeof(any)))
		return hpn_set_error(-errno, "udp: cannot bind the port of %s: %s", spec, strerror(errno));
	if (setsockopt(u->fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)))
		return hpn_set_error(-errno, "udp: cannot join %s: %s%s", spec, strerror(errno),
				     errno == ENODEV ? " (no multicast route: set mcast_if=<interface address>)" : "");
	u->listening = true;
	return 0;
}

/* reliable=on: the packet layer owns peers and framing from here on. */
static int open_reliable(struct hpn_pep *u, struct hpn_core *core)
{
	struct hpn_pktep_cfg pc;
	bool on;
	int ret = hpn_pktep_read_cfg(core, 1472, 65000, &pc, &on);

	if (ret || !on)
		return ret;
	u->mcast_if.s_addr = pc.mcast_if;
	u->mcast_ttl = pc.mcast_ttl;
	u->rel_mtu = pc.mtu;
	return hpn_pktep_create(core, &pc, &rel_io, u, &u->pk);
}

static int udp_open(struct hpn_core *core, struct hpn_caps *caps, struct hpn_pep **out)
{
	struct hpn_pep *u = calloc(1, sizeof(*u));
	uint64_t burst, peers, timeout_ms, retry_ms, bufsz;
	int gso, gro;
	int ret = 0;
	char why[64];

	if (!u)
		return hpn_set_error(-ENOMEM, "udp: out of memory");
	u->fd = -1;
	u->core = core;
	u->st = hpn_core_stats(core);
	ret = ret ?: hpn_core_cfg_u64(core, "rcvbuf", 4u << 20, 4096, 1u << 30, &u->rcvbuf);
	ret = ret ?: hpn_core_cfg_u64(core, "sndbuf", 4u << 20, 4096, 1u << 30, &u->sndbuf);
	ret = ret ?: hpn_core_cfg_u64(core, "busy_poll", 0, 0, 1000000, &u->busy_poll);
	if (ret)
		goto fail;
	const struct hpn_core_opts *co = hpn_core_opts(core);

	burst = co->burst;
	peers = co->max_peers;
	timeout_ms = co->peer_timeout_ms;
	retry_ms = co->connect_retry_ms;
	bufsz = co->buf_size;
	u->max_msg = bufsz < UDP_MAX_PAYLOAD ? (uint32_t)bufsz : UDP_MAX_PAYLOAD;
	ret = hpn_core_cfg_bool(core, "gso", 1, &gso);
	/* Off by default: measured here, enabling UDP_GRO on a socket costs
	 * ~0.15 us per received datagram even when nothing is coalesced, and
	 * lone-message latency comes first. Streams want it on (4x at 64 B). */
	ret = ret ?: hpn_core_cfg_bool(core, "gro", 0, &gro);
	if (ret)
		goto fail;
	if (gro && bufsz + UDP_HDR < 65536) {
		ret = hpn_set_error(-EINVAL, "config: gro=on needs buf_size >= 65532 (coalesced datagrams are up to 64 KiB)");
		goto fail;
	}
	ret = open_reliable(u, core);
	if (ret)
		goto fail;
	if (gro && u->pk) {
		/* The packet layer reads datagrams one by one, never glued. */
		ret = hpn_set_error(-EINVAL, "config: gro=on conflicts with reliable=on: kernel coalescing (UDP_GRO) "
					     "is for raw datagrams; set reliable=off or drop gro=on");
		goto fail;
	}
	u->gso = gso;
	u->gro = gro;
	u->burst = (unsigned)burst;
	u->max_peers = (uint32_t)peers;
	u->slot_bits = hpn_peerid_slot_bits(u->max_peers);
	u->timeout_ns = timeout_ms * 1000000ull;
	u->retry_ns = retry_ms * 1000000ull;
	u->hmask = 1;
	while (u->hmask + 1 < 2 * u->max_peers)
		u->hmask = (u->hmask << 1) | 1;
	u->peers = calloc(u->max_peers, sizeof(*u->peers));
	u->active = calloc(u->max_peers, sizeof(*u->active));
	u->htab = malloc((u->hmask + 1) * sizeof(*u->htab));
	if (!u->peers || !u->htab || !u->active || hpn_msgq_init(&u->pend, PEND_MAX)) {
		ret = hpn_set_error(-ENOMEM, "udp: out of memory for %u peers", u->max_peers);
		goto fail;
	}
	hash_rebuild(u);
	for (unsigned i = 0; i < BURST_MAX; i++) {
		u->tx_hdr[i].msg_hdr.msg_iov = &u->tx_iov[2 * i];
		u->tx_hdr[i].msg_hdr.msg_iovlen = 2;
		u->tx_iov[2 * i] = (struct iovec){u->tx_hdrs[i], UDP_HDR};
		u->rx_hdr[i].msg_hdr.msg_iov = &u->rx_iov[i];
		u->rx_hdr[i].msg_hdr.msg_iovlen = 1;
		u->rx_hdr[i].msg_hdr.msg_name = &u->rx_addr[i];
	}
	ret = udp_probe(caps, why, sizeof(why));
	if (ret) {
		hpn_set_error(ret, "udp: %s", why);
		goto fail;
	}
	caps->max_msg_size = u->pk ? hpn_pktep_max_msg(u->pk) : u->max_msg;
	if (u->pk) /* a zero-copy message is sent with its packet header in front */
		caps->headroom = HPN_PKTEP_HEADROOM;
	if (u->pk) /* multicast: in unordered mode (sequenced, gaps counted) */
		caps->flags |= HPN_CAP_ORDERED | (hpn_pktep_reliable(u->pk) ? HPN_CAP_RELIABLE : HPN_CAP_MULTICAST);
	u->now = hpn_now_ns();
	*out = u;
	return 0;
fail:
	udp_close(u);
	return ret;
}

/* The pool exists from here on: take it once, so the data path never asks. */
static int udp_mem_register(struct hpn_pep *u, void *addr, size_t len)
{
	(void)addr;
	(void)len;
	u->pool = hpn_core_pool(u->core);
	if (u->pk)
		hpn_pktep_mem_register(u->pk);
	u->rel_lend = u->pk && hpn_pool_buf_size(u->pool) >= u->rel_mtu;
	u->rx_cap = hpn_pool_buf_size(u->pool) + UDP_HDR;
	if (u->rx_cap > 65536)
		u->rx_cap = 65536;
	return 0; /* kernel sockets copy: nothing to register */
}

static int udp_listen(struct hpn_pep *u, const char *spec)
{
	struct sockaddr_storage a;
	socklen_t alen;
	int ret = resolve(spec, true, &a, &alen);

	if (ret)
		return ret;
	if (u->fd >= 0)
		return hpn_set_error(-EISCONN, "udp: endpoint already has a socket (listen before connecting)");
	if (is_group(&a))
		return listen_group(u, &a, spec);
	ret = ensure_socket(u, a.ss_family);
	if (ret)
		return ret;
	if (a.ss_family == AF_INET6) {
		int off = 0; /* dual stack: IPv4 peers appear as ::ffff:a.b.c.d */

		setsockopt(u->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	}
	if (bind(u->fd, (struct sockaddr *)&a, alen))
		return hpn_set_error(-errno, "udp: cannot bind %s: %s", spec, strerror(errno));
	u->listening = true;
	if (u->pk)
		hpn_pktep_listen(u->pk);
	return 0;
}

static int udp_local_addr(struct hpn_pep *u, char *buf, size_t len)
{
	struct sockaddr_storage a;
	socklen_t alen = sizeof(a);

	if (u->fd < 0 || getsockname(u->fd, (struct sockaddr *)&a, &alen))
		return -ENOTCONN;
	return format_addr(&a, buf, len);
}

static uint64_t new_nonce(void)
{
	uint64_t n;

	if (getrandom(&n, sizeof(n), GRND_NONBLOCK) != sizeof(n))
		n = hpn_now_ns() ^ ((uint64_t)getpid() << 32);
	return n | 1; /* never 0 */
}

static bool is_loopback(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
	const struct in6_addr *x = &((const struct sockaddr_in6 *)a)->sin6_addr;

	return IN6_IS_ADDR_LOOPBACK(x) || (IN6_IS_ADDR_V4MAPPED(x) && x->s6_addr[12] == 127);
}

static bool is_any(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

/* Our own HELLO would come back to us and be taken for a retransmission:
 * refuse at once. (A wildcard bind is matched against loopback only.) */
static bool is_self(struct hpn_pep *u, const struct sockaddr_storage *to)
{
	struct sockaddr_storage me;
	socklen_t len = sizeof(me);
	uint16_t pa, pb;

	if (getsockname(u->fd, (struct sockaddr *)&me, &len) || me.ss_family != to->ss_family)
		return false;
	pa = me.ss_family == AF_INET ? ((struct sockaddr_in *)&me)->sin_port : ((struct sockaddr_in6 *)&me)->sin6_port;
	pb = to->ss_family == AF_INET ? ((const struct sockaddr_in *)to)->sin_port
				      : ((const struct sockaddr_in6 *)to)->sin6_port;
	if (!pa || pa != pb)
		return false;
	return addr_eq(&me, to) || (is_any(&me) && is_loopback(to));
}

static int udp_connect(struct hpn_pep *u, const char *spec, hpn_peer_t *peer)
{
	struct sockaddr_storage a;
	struct udp_peer *p;
	socklen_t alen;
	int ret = resolve(spec, false, &a, &alen);

	if (ret)
		return ret;
	if (is_group(&a))
		return connect_group(u, &a, alen, spec, peer);
	if (u->family == AF_INET6 && a.ss_family == AF_INET) {
		/* Our dual-stack socket talks IPv4 through mapped addresses. */
		struct sockaddr_in v4;
		struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};

		memcpy(&v4, &a, sizeof(v4));
		v6.sin6_port = v4.sin_port;
		v6.sin6_addr.s6_addr[10] = v6.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&v6.sin6_addr.s6_addr[12], &v4.sin_addr, 4);
		memset(&a, 0, sizeof(a));
		memcpy(&a, &v6, sizeof(v6));
		alen = sizeof(v6);
	}
	ret = ensure_socket(u, a.ss_family);
	if (ret)
		return ret;
	if (is_self(u, &a))
		return hpn_set_error(-EINVAL, "udp: %s is this endpoint itself", spec);
	if (u->pk)
		return hpn_pktep_connect(u->pk, &a, alen, peer);
	if (peer_find(u, &a))
		return hpn_set_error(-EISCONN, "udp: already connected or connecting to %s", spec);
	u->now = hpn_now_ns();
	p = peer_new(u, &a, alen);
	if (!p)
		return hpn_set_error(-ENOSPC, "udp: %s: %u peers", no_slot_why(u), u->max_peers);
	p->nonce = new_nonce();
	p->last_hello_ns = u->now;
	/* The application's timeout, else (asynchronous) the peer timeout. */
	p->connect_limit_ns = hpn_core_connect_timeout_ms(u->core) * 1000000ull;
	if (!p->connect_limit_ns)
		p->connect_limit_ns = u->timeout_ns ? u->timeout_ns : 3000000000ull;
	send_ctrl(u, p, T_HELLO);
	*peer = p->id;
	return 0;
}

static int udp_disconnect(struct hpn_pep *u, hpn_peer_t id)
{
	struct udp_peer *p;

	if (u->pk)
		return hpn_pktep_disconnect(u->pk, id);
	p = peer_by_id(u, id);
	if (!p)
		return hpn_set_error(-ENOENT, "udp: no peer %u", id);
	send_ctrl(u, p, T_BYE);
	peer_free(u, p);
	return 0;
}

static int udp_peer_addr(struct hpn_pep *u, hpn_peer_t id, char *buf, size_t len)
{
	struct udp_peer *p;

	if (u->pk)
		return hpn_pktep_peer_addr(u->pk, id, buf, len);
	p = peer_by_id(u, id);
	if (!p)
		return hpn_set_error(-ENOENT, "udp: no peer %u", id);
	return format_addr(&p->addr, buf, len);
}

static int udp_progress(struct hpn_pep *u, uint64_t now)
{
	if (u->pk)
		return u->fd >= 0 ? hpn_pktep_progress(u->pk, now) : 0;
	u->now = now;
	if (u->err_pending)
		drain_errqueue(u);
	/* Backwards: peer_gone() swap-removes the current entry. */
	for (uint32_t j = u->npeers; j-- > 0;) {
		struct udp_peer *p = &u->peers[u->active[j]];

		if (p->state == P_CONNECTING) {
			if (now - p->started_ns > p->connect_limit_ns) {
				peer_gone(u, p, -ETIMEDOUT);
			} else if (now - p->last_hello_ns >= u->retry_ns) {
				p->last_hello_ns = now;
				send_ctrl(u, p, T_HELLO);
			}
		} else if (p->state == P_UP && u->timeout_ns) {
			uint64_t quiet;

			if (p->seen) {
				p->seen = false;
				p->last_rx_ns = now;
			}
			quiet = now - p->last_rx_ns;

			if (quiet > u->timeout_ns) {
				peer_gone(u, p, -ETIMEDOUT);
			} else if (quiet > u->timeout_ns / 4 && now - p->last_ping_ns > u->timeout_ns / 4) {
				p->last_ping_ns = now;
				send_ctrl(u, p, T_PING);
			}
		}
	}
	return 0;
}

static int udp_wait_fd(struct hpn_pep *u)
{
	/* The packet layer's timers (acks, retransmissions) are finer than
	 * the core's sleeps: while one is near, keep polling. */
	if (u->pk && u->fd >= 0 && hpn_pktep_busy(u->pk))
		return -EAGAIN;
	return u->fd >= 0 ? u->fd : -EOPNOTSUPP;
}

/* ---- receive ----------------------------------------------------------- */

static bool nonce_ok(const struct udp_peer *p, uint64_t nonce)
{
	return p->nonce == nonce || (p->alt_nonce && p->alt_nonce == nonce);
}

static bool recently_closed(struct hpn_pep *u, const struct sockaddr_storage *from, uint64_t nonce)
{
	for (unsigned i = 0; i < HPN_ARRAY_LEN(u->closed); i++)
		if (u->closed[i].nonce == nonce && u->now < u->closed[i].until_ns &&
		    addr_eq(&u->closed[i].addr, from))
			return true;
	return false;
}

static void mark_up(struct hpn_pep *u, struct udp_peer *p);

static void on_hello(struct hpn_pep *u, struct udp_peer *p, const struct sockaddr_storage *from,
		     socklen_t alen, uint64_t nonce)
{
	if (p && nonce_ok(p, nonce)) {
		if (p->state == P_UP)
			send_ctrl(u, p, T_HELLO_ACK); /* our first ACK was lost */
		return;
	}
	if (p && p->state == P_CONNECTING && u->listening) {
		/* Simultaneous open: both sides connected to each other. Take
		 * their session; keep ours valid too for packets in flight. */
		p->alt_nonce = p->nonce;
		p->nonce = nonce;
		mark_up(u, p);
		send_ctrl(u, p, T_HELLO_ACK);
		return;
	}
	u->now = hpn_now_ns();
	if (!u->listening || recently_closed(u, from, nonce)) {
		HPN_STAT_ADD(u->st->drops, 1);
		return;
	}
	if (p) /* same address, new session: the old process is gone */
		peer_gone(u, p, -ECONNRESET);
	p = peer_new(u, from, alen);
	if (!p) {
		HPN_STAT_ADD(u->st->drops, 1);
		hpn_log(HPN_LOG_WARN, "udp: refusing a new peer: %s: %u peers", no_slot_why(u), u->max_peers);
		return;
	}
	p->nonce = nonce;
	p->state = P_UP;
	send_ctrl(u, p, T_HELLO_ACK);
	hpn_core_event(u->core, HPN_EV_PEER_NEW, p->id, 0);
}

static void mark_up(struct hpn_pep *u, struct udp_peer *p)
{
	p->state = P_UP;
	p->seen = true;
	hpn_core_event(u->core, HPN_EV_CONNECTED, p->id, 0);
}

static void on_ctrl(struct hpn_pep *u, unsigned i, const uint8_t *pkt, uint32_t len)
{
	const struct sockaddr_storage *from = &u->rx_addr[i];
	struct udp_peer *p = peer_find(u, from);
	uint64_t nonce;

	if (len != UDP_CTRL_LEN || hdr_len(pkt) != 8) {
		HPN_STAT_ADD(u->st->malformed, 1);
		HPN_STAT_ADD(u->st->drops, 1);
		return;
	}
	memcpy(&nonce, pkt + UDP_HDR, 8);
	if (pkt[2] == T_HELLO) {
		on_hello(u, p, from, u->rx_hdr[i].msg_hdr.msg_namelen, nonce);
		return;
	}
	if (!p || !nonce_ok(p, nonce)) { /* stale session or a stranger */
		HPN_STAT_ADD(u->st->drops, 1);
		return;
	}
	p->seen = true;
	switch (pkt[2]) {
	case T_HELLO_ACK:
		if (p->state == P_CONNECTING)
			mark_up(u, p);
		break;
	case T_BYE:
		peer_gone(u, p, 0);
		break;
	case T_PING:
		send_ctrl(u, p, T_PONG);
		break;
	default: /* T_PONG: the timestamp above is all it is for */
		break;
	}
}

static void refill(struct hpn_pep *u, unsigned want)
{
	unsigned need = want - u->rx_have;

	if (hpn_pool_get_bulk(u->pool, u->rx_bufs + u->rx_have, need) == need) {
		u->rx_have = want;
		return;
	}
	/* Pool nearly empty: take what is there, one at a time. */
	while (u->rx_have < want && hpn_pool_get_bulk(u->pool, u->rx_bufs + u->rx_have, 1))
		u->rx_have++;
}

/* Queue of messages split out of GRO super-datagrams beyond what the
 * caller asked for; handed out first by the next call, so order holds. */
static inline void pend_push(struct hpn_pep *u, const struct hpn_msg *m)
{
	if (unlikely(!hpn_msgq_push(&u->pend, m))) {
		HPN_STAT_ADD(u->st->drops, 1);
		hpn_pool_put_bulk(u->pool, &m->data, 1);
	}
}

/* The kernel glued datagrams of one GSO run together (UDP_GRO). The first
 * message stays in its buffer; the others, found by walking the length
 * fields, are copied into buffers of their own, because the application
 * releases each message separately. */
static void split_gro(struct hpn_pep *u, const uint8_t *pkt, uint32_t len, uint32_t off, hpn_peer_t peer)
{
	while (off < len) {
		const uint8_t *sp = pkt + off;
		uint32_t l;
		void *buf;

		if (unlikely(len - off < UDP_HDR || sp[0] != UDP_MAGIC || sp[1] != UDP_VERSION ||
			     sp[2] != T_DATA || (l = hdr_len(sp)) > len - off - UDP_HDR)) {
			HPN_STAT_ADD(u->st->malformed, 1); /* the rest cannot be framed */
			HPN_STAT_ADD(u->st->drops, 1);
			return;
		}
		off += UDP_HDR + l;
		if (unlikely(!hpn_pool_get_bulk(u->pool, &buf, 1))) {
			HPN_STAT_ADD(u->st->drops, 1); /* the application holds every buffer */
			continue;
		}
		memcpy(buf, sp + UDP_HDR, l);
		struct hpn_msg m = {buf, l, peer};

		pend_push(u, &m);
	}
}

/* Validate one datagram; returns 1 if it carries a message for the
 * application (then *out is its first one and *more the datagram length
 * when further glued messages follow, else 0: the caller places *out
 * first, then splits, so order holds). Anything else leaves the buffer
 * with us. */
static inline int classify(struct hpn_pep *u, unsigned i, uint32_t len, int flags, struct hpn_msg *out,
			   uint32_t *more)
{
	const uint8_t *pkt = (const uint8_t *)u->rx_bufs[i] - UDP_HDR;
	struct udp_peer *p;
	uint32_t l;

	if (unlikely(len < UDP_HDR || pkt[0] != UDP_MAGIC || pkt[1] != UDP_VERSION ||
		     (flags & MSG_TRUNC) || (l = hdr_len(pkt)) > len - UDP_HDR ||
		     (l < len - UDP_HDR && (!u->gro || pkt[2] != T_DATA)))) {
		HPN_STAT_ADD(u->st->malformed, 1);
		HPN_STAT_ADD(u->st->drops, 1);
		return 0;
	}
	if (unlikely(pkt[2] != T_DATA)) {
		on_ctrl(u, i, pkt, len);
		return 0;
	}
	p = peer_find(u, &u->rx_addr[i]);
	if (unlikely(!p || p->state != P_UP)) {
		if (!p || p->state != P_CONNECTING) {
			HPN_STAT_ADD(u->st->drops, 1);
			return 0;
		}
		/* Data before our ACK arrived: the server accepted us; the
		 * ACK was lost or is late. */
		mark_up(u, p);
	}
	p->seen = true;
	*more = l < len - UDP_HDR ? len : 0;
	*out = (struct hpn_msg){u->rx_bufs[i], l, p->id};
	return 1;
}

static int rx_error(struct hpn_pep *u, int err)
{
	if (err == EAGAIN || err == EINTR)
		return 0;
	if (is_icmp_error(err)) {
		drain_errqueue(u);
		return 0;
	}
	HPN_STAT_ADD(u->st->errors, 1);
	return -err;
}

/*
 * One datagram with recvfrom: when messages come one at a time (latency
 * work), recvmmsg costs a second, failing receive attempt and a msghdr and
 * iovec import on every call. Bursts switch to recvmmsg as soon as
 * messages queue up.
 */
static int rx_one(struct hpn_pep *u, struct hpn_msg *msgs, size_t cap)
{
	uint8_t *at = (uint8_t *)u->rx_bufs[0] - UDP_HDR;
	socklen_t alen = sizeof(u->rx_addr[0]);
	uint32_t more;
	ssize_t len;
	int k;

	len = recvfrom(u->fd, at, cap, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&u->rx_addr[0], &alen);
	if (len < 0)
		return rx_error(u, errno);
	u->rx_hdr[0].msg_hdr.msg_namelen = alen;
	k = classify(u, 0, (uint32_t)(len > (ssize_t)cap ? cap : (size_t)len), len > (ssize_t)cap ? MSG_TRUNC : 0,
		     msgs, &more);
	if (!k)
		return 0;
	if (unlikely(more))
		split_gro(u, at, more, UDP_HDR + msgs[0].len, msgs[0].peer);
	/* The buffer is the application's now. */
	u->rx_bufs[0] = u->rx_bufs[--u->rx_have];
	return k;
}

static int udp_rx_burst(struct hpn_pep *u, struct hpn_msg *msgs, unsigned n)
{
	unsigned k = 0, keep = 0;
	size_t cap;
	int r;

	if (u->pk)
		return u->fd >= 0 ? hpn_pktep_rx_burst(u->pk, msgs, n) : 0;
	if (unlikely(u->pend.n))
		return (int)hpn_msgq_pop(&u->pend, msgs, n);
	if (unlikely(u->fd < 0))
		return 0;
	if (unlikely(u->err_pending))
		drain_errqueue(u);
	if (n > u->burst)
		n = u->burst;
	if (u->rx_have < n)
		refill(u, n);
	if (u->rx_have < n)
		n = u->rx_have;
	if (unlikely(!n))
		return -ENOBUFS; /* the application holds every pool buffer */
	cap = u->rx_cap;
	if (n == 1 || !u->rx_bursty) {
		r = rx_one(u, msgs, cap);
		/* A message: more may be queued behind it, try a burst next. */
		if (r > 0 && n > 1)
			u->rx_bursty = true;
		if (r > 0 && u->pend.n)
			r += (int)hpn_msgq_pop(&u->pend, msgs + r, n - (unsigned)r);
		return r;
	}
	for (unsigned i = 0; i < n; i++) {
		/* The header lands in the headroom so the payload starts at the
		 * buffer's data pointer. */
		u->rx_iov[i] = (struct iovec){(uint8_t *)u->rx_bufs[i] - UDP_HDR, cap};
		u->rx_hdr[i].msg_hdr.msg_namelen = sizeof(u->rx_addr[i]);
		u->rx_hdr[i].msg_hdr.msg_flags = 0;
	}
	r = recvmmsg(u->fd, u->rx_hdr, n, MSG_DONTWAIT, NULL);
	if (r <= 0) {
		u->rx_bursty = false;
		return r < 0 ? rx_error(u, errno) : 0;
	}
	if (r == 1)
		u->rx_bursty = false;
	for (unsigned i = 0; i < (unsigned)r; i++) {
		uint32_t more;
		struct hpn_msg m;

		if (!classify(u, i, u->rx_hdr[i].msg_len, u->rx_hdr[i].msg_hdr.msg_flags, &m, &more)) {
			u->rx_bufs[keep++] = u->rx_bufs[i];
			continue;
		}
		/* Once GRO segments wait in the queue, later messages queue
		 * behind them to keep the order. */
		if (likely(!u->pend.n && k < n))
			msgs[k++] = m;
		else
			pend_push(u, &m);
		if (unlikely(more))
			split_gro(u, (const uint8_t *)m.data - UDP_HDR, more, UDP_HDR + m.len, m.peer);
	}
	/* Buffers that carried no message stay for next time. */
	for (unsigned i = (unsigned)r; i < u->rx_have; i++)
		u->rx_bufs[keep++] = u->rx_bufs[i];
	u->rx_have = keep;
	if (u->pend.n && k < n)
		k += hpn_msgq_pop(&u->pend, msgs + k, n - k);
	return (int)k;
}

/* ---- send -------------------------------------------------------------- */

static int tx_error(struct hpn_pep *u, int err)
{
	if (err == EAGAIN || err == ENOBUFS || err == EINTR)
		return -EAGAIN;
	if (is_icmp_error(err)) {
		drain_errqueue(u);
		return -EAGAIN; /* nothing sent; the gone peer now gets -ENOTCONN */
	}
	HPN_STAT_ADD(u->st->errors, 1);
	return -err;
}

/*
 * One message with sendto: a single contiguous buffer avoids sendmmsg's
 * per-call msghdr copy and iovec import, which is most of the software
 * cost of a lone small message. Pool buffers get the header written into
 * their headroom; small copies go through the stack.
 */
static int tx_one(struct hpn_pep *u, const struct hpn_msg *m, const struct udp_peer *p, unsigned flags)
{
	uint8_t stack[UDP_HDR + 512];
	uint8_t *pkt;

	if (flags & HPN_TX_OWNED) {
		pkt = (uint8_t *)m->data - UDP_HDR;
	} else if (m->len <= sizeof(stack) - UDP_HDR) {
		pkt = stack;
		memcpy(stack + UDP_HDR, m->data, m->len);
	} else {
		struct msghdr mh = {.msg_name = (void *)&p->addr, .msg_namelen = p->alen,
				    .msg_iov = u->tx_iov, .msg_iovlen = 2};

		put_hdr(u->tx_hdrs[0], T_DATA, m->len);
		u->tx_iov[1] = (struct iovec){m->data, m->len};
		return sendmsg(u->fd, &mh, MSG_DONTWAIT) < 0 ? tx_error(u, errno) : 1;
	}
	put_hdr(pkt, T_DATA, m->len);
	if (sendto(u->fd, pkt, m->len + UDP_HDR, MSG_DONTWAIT, (const struct sockaddr *)&p->addr, p->alen) < 0)
		return tx_error(u, errno);
	if (flags & HPN_TX_OWNED)
		hpn_pool_put_bulk(u->pool, &m->data, 1);
	return 1;
}

/* Messages [i, i + count) become one sendmmsg entry: a single datagram, or
 * with GSO a run of equal-size messages to one peer, which the kernel cuts
 * into datagrams (and loopback/GRO receivers may never cut at all). */
static unsigned gso_run(struct hpn_pep *u, const struct hpn_msg *msgs, unsigned i, unsigned k)
{
	uint32_t len = msgs[i].len, total = len + UDP_HDR;
	unsigned j = i + 1;

	if (!u->gso || len + UDP_HDR > GSO_MAX_SEG)
		return 1;
	while (j < k && j - i < GSO_MAX_SEGS && msgs[j].peer == msgs[i].peer && msgs[j].len == len &&
	       total + len + UDP_HDR <= GSO_MAX_BYTES) {
		total += len + UDP_HDR;
		j++;
	}
	return j - i;
}

static void set_gso(struct hpn_pep *u, unsigned e, uint32_t seg)
{
	struct msghdr *mh = &u->tx_hdr[e].msg_hdr;
	struct cmsghdr *c;
	uint16_t v = (uint16_t)seg; /* the cmsg takes a u16 (the sockopt an int) */

	mh->msg_control = &u->tx_cmsg[e];
	mh->msg_controllen = CMSG_SPACE(sizeof(v));
	c = CMSG_FIRSTHDR(mh);
	c->cmsg_level = SOL_UDP;
	c->cmsg_type = UDP_SEGMENT;
	c->cmsg_len = CMSG_LEN(sizeof(v));
	memcpy(CMSG_DATA(c), &v, sizeof(v));
}

static int udp_tx_burst(struct hpn_pep *u, const struct hpn_msg *msgs, unsigned n, unsigned flags)
{
	const struct udp_peer *first = NULL;
	unsigned k, e = 0, done = 0;
	int err = 0, r;

	if (u->pk)
		return hpn_pktep_tx_burst(u->pk, msgs, n, flags);
	if (n > u->burst)
		n = u->burst;
	for (k = 0; k < n; k++) {
		const struct hpn_msg *m = &msgs[k];
		struct udp_peer *p = peer_by_id(u, m->peer);

		if (unlikely(!p || p->state != P_UP)) {
			err = -ENOTCONN;
			break;
		}
		if (unlikely(m->len > u->max_msg)) {
			err = -EMSGSIZE;
			break;
		}
		if (!k)
			first = p;
		u->tx_peer[k] = p;
		put_hdr(u->tx_hdrs[k], T_DATA, m->len);
		u->tx_iov[2 * k + 1] = (struct iovec){m->data, m->len};
	}
	if (!k)
		return err;
	if (k == 1)
		return tx_one(u, msgs, first, flags);
	for (unsigned i = 0; i < k; e++) {
		struct msghdr *mh = &u->tx_hdr[e].msg_hdr;
		unsigned cnt = gso_run(u, msgs, i, k);

		mh->msg_name = &u->tx_peer[i]->addr;
		mh->msg_namelen = u->tx_peer[i]->alen;
		mh->msg_iov = &u->tx_iov[2 * i];
		mh->msg_iovlen = 2 * cnt;
		if (cnt > 1) {
			set_gso(u, e, msgs[i].len + UDP_HDR);
		} else {
			mh->msg_control = NULL;
			mh->msg_controllen = 0;
		}
		u->tx_count[e] = cnt;
		i += cnt;
	}
	r = sendmmsg(u->fd, u->tx_hdr, e, MSG_DONTWAIT);
	if (unlikely(r < 0)) {
		if ((errno == EINVAL || errno == EIO) && u->gso && e < k) {
			/* Device or kernel without UDP GSO: do without. */
			hpn_log(HPN_LOG_WARN, "udp: GSO refused (%s); sending datagrams one by one",
				strerror(errno));
			u->gso = false;
			return udp_tx_burst(u, msgs, k, flags);
		}
		return tx_error(u, errno);
	}
	for (int i = 0; i < r; i++)
		done += u->tx_count[i];
	if (flags & HPN_TX_OWNED) {
		/* The kernel copied the payload: the buffers are free again. */
		for (unsigned i = 0; i < done; i++)
			u->tx_done[i] = msgs[i].data;
		hpn_pool_put_bulk(u->pool, u->tx_done, done);
	}
	return done ? (int)done : -EAGAIN;
}

static const struct hpn_plugin_ops udp_ops = {
	.abi_version = HPN_PLUGIN_ABI,
	.size = sizeof(struct hpn_plugin_ops),
	.name = "udp",
	.description = "kernel UDP, sendmmsg/recvmmsg bursts; unprivileged, works everywhere",
	.params = udp_params,
	.probe = udp_probe,
	.open = udp_open,
	.close = udp_close,
	.mem_register = udp_mem_register,
	.listen = udp_listen,
	.local_addr = udp_local_addr,
	.connect = udp_connect,
	.disconnect = udp_disconnect,
	.peer_addr = udp_peer_addr,
	.progress = udp_progress,
	.wait_fd = udp_wait_fd,
	.tx_burst = udp_tx_burst,
	.rx_burst = udp_rx_burst,
};

HPN_PLUGIN_DEFINE(udp_ops)
