/* SPDX-License-Identifier: MIT */
/*
 * udp.c - the reference backend: kernel UDP with sendmmsg/recvmmsg bursts.
 *
 * It must work on any Linux box without privileges, so it uses nothing but
 * a non-blocking datagram socket; one socket serves all peers of an
 * endpoint. Everything above the socket - peers, the handshake, keepalive
 * and goodbye, the wire format, reliable streams (reliable=on, the
 * default), sequenced feeds (unordered=on) and raw datagrams
 * (reliable=off) - is the shared packet layer's (src/packet/pktep.h), as
 * on af_xdp: this file only moves datagrams (rel_send/rel_recv), in
 * bursts, with UDP GSO for runs of equal-size datagrams to one peer, into
 * pool buffers the packet layer may hand to the application as they are,
 * and reports the ICMP errors the socket hears.
 */
#include <hpn/plugin.h>

#include "packet/pktep.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
/* GSO: a run of datagrams of one size to one peer leaves in one call;
 * the kernel cuts it (segments at most an Ethernet payload, 64 in all). */
#define GSO_MAX_SEG 1472
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000

#define HPN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct hpn_pep {
	int fd;
	int family;
	struct hpn_core *core;
	struct hpn_pool *pool;
	struct hpn_stats *st;
	uint64_t sndbuf, rcvbuf, busy_poll;
	bool gso;
	bool err_pending; /* the socket reported an (ICMP) error: drain the queue */
	uint64_t fragneed, fragneed_log_ns; /* ICMP "fragmentation needed" seen; last said */
	bool icmp_retry; /* rel_send is trying again after a waiting ICMP error */

	/* The packet layer, and the socket calls it makes. */
	struct hpn_pktep *pk;
	struct in_addr mcast_if; /* the packet layer's mcast_if= (INADDR_ANY: unset) */
	uint8_t mcast_ttl;
	bool rel_bursty;
	unsigned rel_hits; /* lone receives in a row that found a datagram */
	/* The time a datagram waited in the socket buffer is ours, not the
	 * path's (pktep.h, rx_ns), so the kernel stamps arrivals - only while
	 * datagrams queue: a lone message waits for nobody, and stamping cost
	 * it ~0.1-0.2 us one way (recvmsg with a control message). On when a
	 * receive finds several datagrams, off after TS_IDLE receives of one. */
	bool rel_ts;
	unsigned rel_lone;
	struct mmsghdr rel_hdr[64];
	struct iovec rel_iov[2 * 64]; /* send: a raw datagram's header and payload each */
	/* The kernel's receive time of each datagram (SO_TIMESTAMPNS), and
	 * the real clock's offset from ours (real_to_mono). */
	char rel_ctl[64][CMSG_SPACE(3 * sizeof(struct timespec)) + CMSG_SPACE(sizeof(struct in_pktinfo)) +
			 CMSG_SPACE(sizeof(int))] __attribute__((aligned(8)));
	union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} gso_ctl[64];
	unsigned covers[64]; /* send: datagrams in each message of the sendmmsg */
	int64_t r2m;
	uint64_t r2m_at;
	/* Pool buffers datagrams land in (when one holds an mtu): a message
	 * alone in its packet is handed to the application in the buffer it
	 * landed in (pktep.h, HPN_DGRAM_POOL). */
	void *rel_rxb[64]; /* a stack: the top ones are lent */
	unsigned rel_nrxb, rel_lent;
	unsigned rel_max; /* the stack's depth: udp_mem_register */
	uint32_t rel_mtu; /* lend only if a pool buffer holds this much */
	bool raw;         /* reliable=off: no receive timestamps (nothing measures a round trip) */
	bool gro;         /* reliable=off, gro=on: the kernel glues runs of datagrams, we cut them */
	struct gro_run {
		uint8_t *data;
		uint32_t len, seg, off, alen;
		uint64_t rx_ns;
		uint8_t addr[HPN_PKTEP_ADDR_MAX];
	} gq[64];
	unsigned gq_head, gq_n;
	bool rel_lend;

	/* framing=none (plain datagrams): the kernel stamps every arrival
	 * (SO_TIMESTAMPING, the NIC's time where it gives one) and says
	 * which group it came to (IP_PKTINFO: the line of a feed). Lines on
	 * other ports than the first have sockets of their own, read in
	 * turn, one per receive call. */
	bool plain;
	uint16_t port; /* u->fd's bound port, network order (0: none yet) */
	int xfd[HPN_FEED_LINES_MAX];
	uint16_t xport[HPN_FEED_LINES_MAX];
	unsigned nxfd, rr;
	int epfd;        /* all of them, for wait_fd (-1: one socket) */
	int mcast_ifindex; /* mcast_if= as an interface index (0: the kernel's choice) */
	/* hpn_stats.rx_dropped: each socket's drop count (SO_MEMINFO), last
	 * read (u->fd's, then xfd's), each second. */
	uint64_t drops_ns, drops_last[1 + HPN_FEED_LINES_MAX];
};

static const struct hpn_plugin_param udp_params[] = {
	{"rcvbuf", "socket receive buffer bytes (default 4m; root may exceed rmem_max)"},
	{"sndbuf", "socket send buffer bytes (default 4m)"},
	{"busy_poll", "SO_BUSY_POLL microseconds, 0 off (default 0; above net.core.busy_read needs CAP_NET_ADMIN)"},
	{"gso", "on|off: send runs of equal-size datagrams to one peer as one UDP GSO call (default on)"},
	{"gro", "on|off: reliable=off only: let the kernel coalesce runs of datagrams (UDP_GRO) and cut them here; "
		"for streams (default off: costs a lone message ~0.15 us)"},
	HPN_PKTEP_PARAMS,
	{NULL, NULL},
};

static inline bool addr_eq(const void *a, uint32_t alen, const void *b, uint32_t blen)
{
	return alen == blen && !memcmp(a, b, alen);
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

/* framing=none: every arrival stamped by the kernel (and by the NIC where
 * its driver was told to: hwstamp_ctl / SIOCSHWTSTAMP), its destination
 * reported (the line), and only the groups this socket joined delivered
 * to it - not every group any socket on the host joined on its port. */
static void plain_sockopts(struct hpn_pep *u, int fd)
{
	int ts = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_RX_HARDWARE |
		 SOF_TIMESTAMPING_RAW_HARDWARE,
	    one = 1, zero = 0;

	if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &ts, sizeof(ts)))
		hpn_log(HPN_LOG_WARN, "udp: SO_TIMESTAMPING refused (%s): receive timestamps are the read time",
			strerror(errno));
	else
		u->rel_ts = true;
	if (u->family == AF_INET) {
		setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
		setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof(zero));
	}
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
	/* An ICMP "fragmentation needed" is believed by the kernel from anyone
	 * who knows our ports (an off-path forger: MTU 552 for ten minutes,
	 * GSO refused, every datagram in IP fragments an af_xdp peer drops).
	 * IPv4 ignores it here, as DNS servers do: datagrams leave without DF
	 * at the interface's MTU (the kernel fragments larger ones, routers
	 * on a narrower path too; a route's own mtu is not used either) -
	 * mtu= is how a path's MTU is said. IPv6 routers never fragment, so
	 * IPv6 keeps path MTU discovery; an IPv6 socket's IPv4 peers (dual
	 * stack, ::ffff:a.b.c.d) go the IPv4 way, with IPv4's options. */
	int omit = IP_PMTUDISC_OMIT;

	setsockopt(fd, SOL_IP, IP_MTU_DISCOVER, &omit, sizeof(omit));
	if (family == AF_INET6)
		setsockopt(fd, SOL_IP, IP_RECVERR, &one, sizeof(one));
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
	if (u->plain)
		plain_sockopts(u, fd);
	return 0;
}

/* A listen that failed (its port taken, a join refused) leaves no socket
 * behind: the endpoint may listen again, elsewhere, or connect. */
static void drop_socket(struct hpn_pep *u)
{
	close(u->fd);
	u->fd = -1;
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
		/* "Fragmentation needed" (IPv6: packet too big) says the path is
		 * narrower, not that the peer is gone: IPv4 ignores it (above),
		 * IPv6 sends smaller fragments from now on. */
		if (err == EMSGSIZE) {
			/* Once a second: anyone who knows a peer's address and
			 * port can send these (the kernel checks nothing else). */
			uint64_t t = hpn_now_ns();

			u->fragneed++;
			if (t - u->fragneed_log_ns >= 1000000000ull || !u->fragneed_log_ns) {
				u->fragneed_log_ns = t;
				hpn_log(HPN_LOG_INFO,
					"udp: ICMP fragmentation needed / packet too big on the path to a peer (%llu so "
					"far): IPv4 ignores it, as anyone knowing the ports can send one - if a path is "
					"narrower than mtu=, set mtu= to it",
					(unsigned long long)u->fragneed);
			}
			continue;
		}
		if (err)
			hpn_pktep_unreachable(u->pk, &from, mh.msg_namelen, -err, (const uint8_t *)dummy, (size_t)qlen);
	}
	u->err_pending = false;
}

static bool is_icmp_error(int err)
{
	return err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH || err == EHOSTDOWN ||
	       err == ENETDOWN || err == EMSGSIZE;
}

/* ---- datagram I/O for the packet layer --------------------------------------- */

static bool transient(int err)
{
	return err == EAGAIN || err == ENOBUFS || err == EINTR;
}

/* One message of the sendmmsg: datagrams d[0..k) (k > 1: one GSO run of
 * seg-byte segments), header and payload iovecs each. */
static void out_msg(struct hpn_pep *u, unsigned e, unsigned *iv, const struct hpn_dgram *d, unsigned k, uint32_t seg)
{
	struct msghdr *h = &u->rel_hdr[e].msg_hdr;

	*h = (struct msghdr){.msg_name = (void *)d->addr, .msg_namelen = d->alen, .msg_iov = &u->rel_iov[*iv]};
	for (unsigned j = 0; j < k; j++) {
		if (d[j].hlen)
			u->rel_iov[(*iv)++] = (struct iovec){(void *)d[j].hdr, d[j].hlen};
		u->rel_iov[(*iv)++] = (struct iovec){d[j].data, d[j].len};
	}
	h->msg_iovlen = (size_t)(&u->rel_iov[*iv] - h->msg_iov);
	if (k > 1) {
		struct cmsghdr *c = (struct cmsghdr *)u->gso_ctl[e].buf;
		uint16_t s = (uint16_t)seg;

		c->cmsg_level = SOL_UDP;
		c->cmsg_type = UDP_SEGMENT;
		c->cmsg_len = CMSG_LEN(sizeof(s));
		memcpy(CMSG_DATA(c), &s, sizeof(s));
		h->msg_control = c;
		h->msg_controllen = CMSG_SPACE(sizeof(s));
	}
	u->covers[e] = k;
}

/* What a GSO send fails with when the kernel will not segment it. */
static bool gso_refusal(int err)
{
	return err == EINVAL || err == EIO || err == EMSGSIZE;
}

/* Datagrams d[i..) that go in one GSO call: the same peer, the same size. */
static unsigned gso_run(const struct hpn_pep *u, const struct hpn_dgram *d, unsigned n, uint32_t seg)
{
	unsigned k = 1;

	if (!u->gso || seg > GSO_MAX_SEG)
		return 1;
	while (k < n && k < GSO_MAX_SEGS && (k + 1) * seg <= GSO_MAX_BYTES && d[k].hlen + d[k].len == seg &&
	       addr_eq(d[k].addr, d[k].alen, d->addr, d->alen))
		k++;
	return k;
}

/* Datagrams out: one sendto for one (latency), sendmmsg for more, a run
 * of equal-size ones to one peer as one GSO message. A full socket buffer
 * drops them (0): the packet layer retransmits what it must. */
static int rel_send(void *arg, const struct hpn_dgram *d, unsigned n)
{
	struct hpn_pep *u = arg;
	unsigned e = 0, iv = 0, i = 0;
	int r;

	if (n == 1 && !d->hlen) {
		if (sendto(u->fd, d->data, d->len, MSG_DONTWAIT, d->addr, d->alen) >= 0)
			return 1;
		r = -1;
	} else {
		if (n > HPN_ARRAY_LEN(u->rel_hdr))
			n = HPN_ARRAY_LEN(u->rel_hdr);
		while (i < n) {
			uint32_t seg = d[i].hlen + d[i].len;
			unsigned k = gso_run(u, d + i, n - i, seg);

			out_msg(u, e++, &iv, d + i, k, seg);
			i += k;
		}
		r = sendmmsg(u->fd, u->rel_hdr, e, MSG_DONTWAIT);
		if (r < 0 && u->gso && u->covers[0] > 1 && gso_refusal(errno)) {
			/* An ICMP error waiting on the socket fails the next send
			 * once, with its errno - a forged "fragmentation needed"
			 * says EMSGSIZE, and once turned GSO off for good - so the
			 * same send again tells it from a refusal. */
			u->err_pending = true; /* the error queue says what it was */
			r = sendmmsg(u->fd, u->rel_hdr, e, MSG_DONTWAIT);
		}
		if (r > 0) {
			unsigned sent = 0;

			for (int j = 0; j < r; j++)
				sent += u->covers[j];
			return (int)sent;
		}
		if (r < 0 && u->gso && u->covers[0] > 1 && gso_refusal(errno)) {
			/* The kernel refuses GSO here: a segment above the path's
			 * MTU (EMSGSIZE: a link MTU below mtu=, or IPv6's learnt
			 * path MTU;
			 * a datagram alone would be fragmented, segments are not),
			 * IPv6, a tunnel, no offload. One datagram each from now
			 * on, and this batch again - else every batch is lost and
			 * only the resends, one by one, get through. */
			hpn_log(errno == EMSGSIZE ? HPN_LOG_WARN : HPN_LOG_INFO,
				"udp: UDP GSO refused (%s%s); sending datagrams one by one", strerror(errno),
				errno == EMSGSIZE ? ": the link's MTU (or IPv6's path MTU) is below mtu=, whose "
						    "datagrams the kernel now fragments - set mtu= to the path's to keep "
						    "GSO and unfragmented packets"
						  : "");
			u->gso = false;
			return rel_send(arg, d, n);
		}
	}
	if (transient(errno))
		return 0;
	if (is_icmp_error(errno)) {
		u->err_pending = true; /* which peer: the error queue says */
		/* The error was waiting on the socket (an earlier datagram's,
		 * or forged) and failed this send once: once more, or it is
		 * lost - in ping-pong every send is a lone one. */
		if (!u->icmp_retry) {
			u->icmp_retry = true;
			r = rel_send(arg, d, n);
			u->icmp_retry = false;
			return r;
		}
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
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPING) {
			struct timespec ts[3];

			/* [0] the kernel's, [2] the NIC's raw one where it stamps
			 * (its clock, which phc2sys keeps on the real one). */
			memcpy(ts, CMSG_DATA(c), sizeof(ts));
			if (ts[2].tv_sec)
				ts[0] = ts[2];
			return (uint64_t)((int64_t)ts[0].tv_sec * 1000000000 + ts[0].tv_nsec + real_to_mono);
		}
	}
	return 0;
}

/* Plain datagrams: the group (or address) a datagram was sent to. */
static void rx_dst(struct msghdr *h, struct hpn_dgram *d, uint16_t port)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			d->dst_ip = pi.ipi_addr.s_addr;
			d->dst_port = port;
		}
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
	if (u->rel_ts == on || u->plain) /* plain: always on, set at the socket's birth */
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

/* The stash of pool buffers for datagrams to land in, filled up in one
 * pool operation when it runs low (halving when the pool is low). */
static void rel_restock(struct hpn_pep *u)
{
	for (unsigned want = u->rel_max - u->rel_nrxb; want; want /= 2)
		if (hpn_pool_get_bulk(u->pool, u->rel_rxb + u->rel_nrxb, want) == want) {
			u->rel_nrxb += want;
			return;
		}
}

/* Point the first n entries at pool buffers: fewer if the pool is low; if
 * it is empty, at the packet layer's own room. Inline: the lone receive
 * of every poll takes one step. */
static inline unsigned rel_lend(struct hpn_pep *u, struct hpn_dgram *d, unsigned n)
{
	if (n > HPN_ARRAY_LEN(u->rel_rxb))
		n = HPN_ARRAY_LEN(u->rel_rxb);
	if (u->rel_nrxb < n && u->rel_lend)
		rel_restock(u);
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

	if (u->rel_lent == 1) { /* lone: kept, or still on top */
		if (n && !d->data)
			u->rel_nrxb--;
		u->rel_lent = 0;
		return;
	}
	for (unsigned i = 0; i < u->rel_lent; i++)
		if (i >= n || d[i].data)
			back[k++] = u->rel_rxb[u->rel_nrxb - 1 - i];
	memcpy(u->rel_rxb + top, back, k * sizeof(back[0]));
	u->rel_nrxb = top + k;
	u->rel_lent = 0;
}

/* The segment size of a datagram the kernel glued from a run (UDP_GRO
 * control message), 0 if it is one. */
static unsigned gro_size(struct msghdr *h)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
		if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
			int seg;

			memcpy(&seg, CMSG_DATA(c), sizeof(seg));
			return seg > 0 ? (unsigned)seg : 0;
		}
	return 0;
}

/* Glued datagrams (gro=on) wait here, cut one by one into the entries
 * of this and the next receive calls (no system call while any wait, so
 * the buffers they lie in are not written again meanwhile). They are not
 * lent: the packet layer copies what it keeps. */
static void gro_queue(struct hpn_pep *u, struct hpn_dgram *d, unsigned r)
{
	for (unsigned i = 0; i < r; i++) {
		struct gro_run *g = &u->gq[(u->gq_head + u->gq_n++) % HPN_ARRAY_LEN(u->gq)];
		unsigned seg = d[i].len ? gro_size(&u->rel_hdr[i].msg_hdr) : 0;

		*g = (struct gro_run){.data = d[i].data, .len = d[i].len, .seg = seg && seg < d[i].len ? seg : d[i].len,
				      .alen = d[i].alen, .rx_ns = d[i].rx_ns};
		memcpy(g->addr, d[i].addr, d[i].alen);
	}
	u->rel_lent = 0; /* every buffer stays in the stash */
}

static int gro_drain(struct hpn_pep *u, struct hpn_dgram *d, unsigned n)
{
	unsigned out = 0;

	while (u->gq_n && out < n) {
		struct gro_run *g = &u->gq[u->gq_head];
		uint32_t len = g->len - g->off < g->seg ? g->len - g->off : g->seg;

		memcpy((void *)d[out].addr, g->addr, g->alen);
		d[out] = (struct hpn_dgram){.addr = d[out].addr, .alen = g->alen, .data = g->data + g->off, .len = len,
					    .buf = d[out].buf, .rx_ns = g->rx_ns};
		out++;
		g->off += len;
		if (g->off >= g->len || !len) {
			u->gq_head = (u->gq_head + 1) % HPN_ARRAY_LEN(u->gq);
			u->gq_n--;
		}
	}
	return (int)out;
}

static int rel_recv_try(struct hpn_pep *u, int fd, uint16_t port, struct hpn_dgram *d, unsigned n, unsigned retry)
{
	int r;

	if (u->err_pending)
		drain_errqueue(u);
	if (u->gq_n)
		return gro_drain(u, d, n);
	if ((!u->rel_bursty || n == 1) && !u->gro) {
		/* Lone messages (latency work): recvmmsg would cost a second,
		 * failing attempt. */
		struct iovec iov;
		struct msghdr h;
		socklen_t alen = HPN_PKTEP_ADDR_MAX;
		ssize_t len;

		rel_lend(u, d, 1);
		/* Without timestamps the lone message keeps recvfrom: no
		 * msghdr to copy in and out. Plain datagrams always need the
		 * control messages (which line: IP_PKTINFO). */
		if (u->rel_ts || u->plain) {
			iov = (struct iovec){d->data, d->len};
			h = (struct msghdr){.msg_name = (void *)d->addr, .msg_namelen = alen, .msg_iov = &iov,
					    .msg_iovlen = 1, .msg_control = u->rel_ctl[0],
					    .msg_controllen = sizeof(u->rel_ctl[0])};
			len = recvmsg(fd, &h, MSG_DONTWAIT | MSG_TRUNC);
			alen = h.msg_namelen;
		} else {
			len = recvfrom(fd, d->data, d->len, MSG_DONTWAIT | MSG_TRUNC, (void *)d->addr, &alen);
			h.msg_controllen = 0;
		}

		if (len < 0) {
			if (is_icmp_error(errno)) {
				drain_errqueue(u);
				return retry ? rel_recv_try(u, fd, port, d, n, retry - 1) : 0;
			}
			u->rel_hits = 0;
			return transient(errno) ? 0 : -errno;
		}
		d->alen = alen;
		if ((size_t)len < d->len)
			d->len = (uint32_t)len;
		else if ((size_t)len > d->len)
			d->len = 0; /* truncated: longer than our mtu, not ours */
		d->rx_ns = h.msg_controllen ? rx_stamp(&h, real_to_mono(u)) : 0;
		if (u->plain && h.msg_controllen)
			rx_dst(&h, d, port);
		/* Two in a row: a queue, read it in bursts from now on (until a
		 * burst finds at most one). One alone, as ping-pong brings, would
		 * cost every other poll a failing recvmmsg of 64. */
		u->rel_bursty = ++u->rel_hits >= 2;
		if (u->rel_ts && ++u->rel_lone >= TS_IDLE)
			rx_timestamps(u, false);
		return 1;
	}
	if (n > HPN_ARRAY_LEN(u->rel_hdr))
		n = HPN_ARRAY_LEN(u->rel_hdr);
	n = rel_lend(u, d, n);
	for (unsigned i = 0; i < n; i++) {
		struct msghdr *h = &u->rel_hdr[i].msg_hdr;

		u->rel_iov[i] = (struct iovec){d[i].data, d[i].len};
		h->msg_name = (void *)d[i].addr;
		h->msg_namelen = HPN_PKTEP_ADDR_MAX;
		h->msg_iov = &u->rel_iov[i];
		h->msg_iovlen = 1;
		h->msg_control = u->rel_ctl[i];
		h->msg_controllen = sizeof(u->rel_ctl[i]);
	}
	r = recvmmsg(fd, u->rel_hdr, n, MSG_DONTWAIT, NULL);
	u->rel_hits = 0;
	if (r < 0) {
		u->rel_bursty = false;
		if (is_icmp_error(errno)) {
			drain_errqueue(u);
			return retry ? rel_recv_try(u, fd, port, d, n, retry - 1) : 0;
		}
		return transient(errno) ? 0 : -errno;
	}
	int64_t off = r > 0 ? real_to_mono(u) : 0;

	for (int i = 0; i < r; i++) {
		d[i].alen = u->rel_hdr[i].msg_hdr.msg_namelen;
		d[i].len = u->rel_hdr[i].msg_hdr.msg_flags & MSG_TRUNC ? 0 : u->rel_hdr[i].msg_len;
		d[i].rx_ns = u->rel_hdr[i].msg_hdr.msg_controllen ? rx_stamp(&u->rel_hdr[i].msg_hdr, off) : 0;
		if (u->plain && u->rel_hdr[i].msg_hdr.msg_controllen)
			rx_dst(&u->rel_hdr[i].msg_hdr, &d[i], port);
	}
	if (u->gro) { /* glued runs are cut into the entries, the rest wait */
		gro_queue(u, d, (unsigned)r);
		r = gro_drain(u, d, n);
	}
	u->rel_bursty = r > 1;
	if (r > 1 && !u->raw)
		rx_timestamps(u, true); /* a queue: its wait is ours, measure it (raw: no RTT to measure) */
	else if (u->rel_ts && ++u->rel_lone >= TS_IDLE)
		rx_timestamps(u, false);
	return r;
}

/* Several sockets (plain lines on several ports): one is read per call -
 * the entries of a call are one socket's, as lending wants - starting
 * after the last that had something, so none starves. */
static int rel_recv(void *arg, struct hpn_dgram *d, unsigned n)
{
	struct hpn_pep *u = arg;

	if (!u->nxfd)
		return rel_recv_try(u, u->fd, u->port, d, n, RECV_ERR_RETRIES);
	for (unsigned k = 0; k <= u->nxfd; k++) {
		unsigned i = (u->rr + k) % (u->nxfd + 1);
		int r = i ? rel_recv_try(u, u->xfd[i - 1], u->xport[i - 1], d, n, RECV_ERR_RETRIES)
			  : rel_recv_try(u, u->fd, u->port, d, n, RECV_ERR_RETRIES);

		if (r) {
			u->rr = i + 1;
			return r;
		}
	}
	return 0;
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

	/* What an endpoint with the defaults offers (reliable, ordered; the
	 * default buffers), as af_xdp and dpdk say of theirs; open() says
	 * what the configured one does. */
	caps->max_msg_size = 65536;
	caps->inline_size = 0;
	caps->flags = HPN_CAP_ORDERED | HPN_CAP_RELIABLE;
	caps->headroom = HPN_PKTEP_HEADROOM; /* a zero-copy message's packet header goes in front of it */
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
	if (u->rel_nrxb)
		hpn_pool_put_bulk(u->pool, u->rel_rxb, u->rel_nrxb);
	if (u->fd >= 0)
		close(u->fd);
	for (unsigned i = 0; i < u->nxfd; i++)
		close(u->xfd[i]);
	if (u->epfd >= 0)
		close(u->epfd);
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
	if (a->ss_family != AF_INET)
		return hpn_set_error(-EAFNOSUPPORT, "udp: %s: only IPv4 multicast groups are supported", spec);
	return 0;
}

/* Publish: send to the group from our own (ephemeral) port. */
static int connect_group(struct hpn_pep *u, const struct sockaddr_storage *a, socklen_t alen, const char *spec,
			 hpn_peer_t *peer)
{
	int ttl = (int)u->mcast_ttl, ret = group_check(u, a, spec);

	struct ip_mreqn via = {.imr_address = u->mcast_if, .imr_ifindex = u->mcast_ifindex};

	ret = ret ?: ensure_socket(u, AF_INET);
	if (ret)
		return ret;
	if (setsockopt(u->fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) ||
	    ((u->mcast_if.s_addr != htonl(INADDR_ANY) || u->mcast_ifindex) &&
	     setsockopt(u->fd, IPPROTO_IP, IP_MULTICAST_IF, &via, sizeof(via))))
		return hpn_set_error(-errno, "udp: publish to %s: %s", spec, strerror(errno));
	return hpn_pktep_publish(u->pk, a, alen, peer);
}

/* Join a group on fd - any source, or one (IGMPv3 source-specific) - on
 * mcast_if= (by index; none: the kernel's route for the group). */
static int join(struct hpn_pep *u, int fd, const struct sockaddr_storage *group, uint32_t source, const char *spec)
{
	struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = source};
	struct group_source_req gsr = {.gsr_interface = (uint32_t)u->mcast_ifindex};
	struct group_req gr = {.gr_interface = (uint32_t)u->mcast_ifindex};
	int ret;

	if (!u->mcast_ifindex && u->mcast_if.s_addr != htonl(INADDR_ANY)) {
		/* An address that is no interface's here: as IP_ADD_MEMBERSHIP
		 * takes it (the kernel finds the interface). */
		struct ip_mreq mreq = {.imr_multiaddr = ((const struct sockaddr_in *)group)->sin_addr,
				       .imr_interface = u->mcast_if};

		if (source)
			return hpn_set_error(-EINVAL, "udp: %s: a source-specific join needs mcast_if= to name an "
						      "interface here", spec);
		ret = setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq));
	} else if (source) {
		memcpy(&gsr.gsr_group, group, sizeof(struct sockaddr_in));
		memcpy(&gsr.gsr_source, &src, sizeof(src));
		ret = setsockopt(fd, IPPROTO_IP, MCAST_JOIN_SOURCE_GROUP, &gsr, sizeof(gsr));
	} else {
		memcpy(&gr.gr_group, group, sizeof(struct sockaddr_in));
		ret = setsockopt(fd, IPPROTO_IP, MCAST_JOIN_GROUP, &gr, sizeof(gr));
	}
	if (ret && errno == EADDRINUSE) /* this socket joined it already */
		return hpn_set_error(-EEXIST, "udp: listen %s: already listening there", spec);
	if (ret) {
		bool named = u->mcast_ifindex || u->mcast_if.s_addr != htonl(INADDR_ANY);

		return hpn_set_error(-errno, "udp: cannot join %s: %s%s", spec, strerror(errno),
				     errno != ENODEV ? ""
				     : named ? " (mcast_if= names no interface with an address here)"
					     : " (no multicast route: set mcast_if=<interface>)");
	}
	return 0;
}

/* Subscribe: bind the group's port (shared: several subscribers on one
 * host) and join the group. */
static int listen_group(struct hpn_pep *u, const struct sockaddr_storage *a, const char *spec)
{
	struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = ((const struct sockaddr_in *)a)->sin_port};
	int one = 1, ret = group_check(u, a, spec);

	ret = ret ?: hpn_pktep_subscribe(u->pk); /* the mode's check, before anything goes on the wire */
	ret = ret ?: ensure_socket(u, AF_INET);
	if (ret)
		return ret;
	setsockopt(u->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(u->fd, (struct sockaddr *)&any, sizeof(any)))
		ret = hpn_set_error(-errno, "udp: cannot bind the port of %s: %s", spec, strerror(errno));
	ret = ret ?: join(u, u->fd, a, 0, spec);
	if (ret) {
		drop_socket(u);
		hpn_pktep_unsubscribe(u->pk);
	}
	return ret;
}

/* A socket bound to port for a plain line: the first one, or one more
 * (read in turn with the others, watched together for wait_fd). */
static int plain_port_socket(struct hpn_pep *u, const struct sockaddr_storage *bind_to, socklen_t blen,
			     uint16_t *pport, const char *spec, bool group)
{
	uint16_t port = *pport;
	int one = 1, fd;

	if (u->fd >= 0 && port && u->port == port)
		return u->fd;
	for (unsigned i = 0; port && i < u->nxfd; i++)
		if (u->xport[i] == port)
			return u->xfd[i];
	if (u->fd < 0) {
		int ret = ensure_socket(u, bind_to->ss_family);

		if (ret)
			return ret;
		fd = u->fd;
	} else {
		if (u->nxfd == HPN_ARRAY_LEN(u->xfd))
			return hpn_set_error(-ENOSPC, "udp: listen %s: at most %zu ports per endpoint", spec,
					     HPN_ARRAY_LEN(u->xfd) + 1);
		if (bind_to->ss_family != u->family)
			return hpn_set_error(-EAFNOSUPPORT, "udp: listen %s: the endpoint's socket is of another "
							    "address family", spec);
		fd = socket(u->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return hpn_set_error(-errno, "udp: socket: %s", strerror(errno));
		set_bufsize(fd, SO_RCVBUF, SO_RCVBUFFORCE, u->rcvbuf);
		plain_sockopts(u, fd);
	}
	/* A group's port is shared: every receiver of the group on this host
	 * binds it (each socket hears only its own joins: IP_MULTICAST_ALL
	 * off). A unicast port is not: with the option on both, a second
	 * binder would silently take the first one's datagrams. */
	if (group)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)bind_to, blen)) {
		int err = errno;

		if (fd != u->fd)
			close(fd);
		else
			drop_socket(u); /* the first line's: none stays behind, unbound */
		return hpn_set_error(-err, "udp: cannot bind %s: %s%s", spec, strerror(err),
				     err == EADDRINUSE && !group ? " (another socket has this port)" : "");
	}
	if (!port) { /* port 0: the one the kernel picked */
		struct sockaddr_storage me;
		socklen_t mlen = sizeof(me);

		if (!getsockname(fd, (struct sockaddr *)&me, &mlen))
			port = me.ss_family == AF_INET ? ((struct sockaddr_in *)&me)->sin_port
						       : ((struct sockaddr_in6 *)&me)->sin6_port;
		*pport = port;
	}
	if (fd == u->fd) {
		u->port = port;
		return fd;
	}
	if (u->epfd < 0) { /* two sockets from now on: one fd to sleep on */
		struct epoll_event ev = {.events = EPOLLIN};

		u->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (u->epfd < 0 || epoll_ctl(u->epfd, EPOLL_CTL_ADD, u->fd, &ev)) {
			close(fd);
			return hpn_set_error(-errno, "udp: epoll: %s", strerror(errno));
		}
	}
	struct epoll_event ev = {.events = EPOLLIN};

	if (epoll_ctl(u->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		close(fd);
		return hpn_set_error(-errno, "udp: epoll: %s", strerror(errno));
	}
	u->xfd[u->nxfd] = fd;
	u->xport[u->nxfd++] = port;
	return fd;
}

/* framing=none: one more line - a group (any source or group@source), or
 * a port of our own. Several per endpoint, on one port or several. */
static int plain_listen(struct hpn_pep *u, const char *spec)
{
	struct sockaddr_storage a, b;
	socklen_t alen;
	uint32_t source;
	char addr[128];
	int fd, ret = hpn_pktep_split_source(spec, addr, sizeof(addr), &source);

	ret = ret ?: resolve(addr, true, &a, &alen);
	if (ret)
		return ret;
	b = a;
	if (is_group(&a) || source) {
		ret = group_check(u, &a, spec);
		if (!ret && !is_group(&a))
			ret = hpn_set_error(-EINVAL, "udp: listen %s: a source is given for a group only", spec);
		if (ret)
			return ret;
		((struct sockaddr_in *)&b)->sin_addr.s_addr = htonl(INADDR_ANY); /* the port, for every group on it */
	}
	uint16_t port = a.ss_family == AF_INET ? ((struct sockaddr_in *)&a)->sin_port
					       : ((struct sockaddr_in6 *)&a)->sin6_port;

	if (is_group(&a) && !port)
		return hpn_set_error(-EINVAL, "udp: listen %s: a group's port must be given", spec);
	/* Refused lines are refused before anything is bound or joined. */
	if (a.ss_family == AF_INET &&
	    (ret = hpn_pktep_line_check(u->pk, spec, is_group(&a) ? ((struct sockaddr_in *)&a)->sin_addr.s_addr : 0,
					port, source)))
		return ret;
	fd = plain_port_socket(u, &b, alen, &port, spec, is_group(&a));
	if (fd < 0)
		return fd;
	if (is_group(&a)) {
		ret = join(u, fd, &a, source, spec);
		ret = ret ?: hpn_pktep_subscribe(u->pk);
	} else {
		hpn_pktep_listen(u->pk);
	}
	if (!ret && a.ss_family == AF_INET) {
		int line = hpn_pktep_line_add(u->pk, spec, is_group(&a) ? ((struct sockaddr_in *)&a)->sin_addr.s_addr : 0,
					      port, source);

		ret = line < 0 ? line : 0;
	}
	return ret;
}

static int udp_open(struct hpn_core *core, struct hpn_caps *caps, struct hpn_pep **out)
{
	struct hpn_pep *u = calloc(1, sizeof(*u));
	struct hpn_pktep_cfg pc;
	int gso, gro, ret = 0;
	char why[64];

	if (!u)
		return hpn_set_error(-ENOMEM, "udp: out of memory");
	u->fd = u->epfd = -1;
	u->core = core;
	u->st = hpn_core_stats(core);
	ret = ret ?: hpn_core_cfg_u64(core, "rcvbuf", 4u << 20, 4096, 1u << 30, &u->rcvbuf);
	ret = ret ?: hpn_core_cfg_u64(core, "sndbuf", 4u << 20, 4096, 1u << 30, &u->sndbuf);
	ret = ret ?: hpn_core_cfg_u64(core, "busy_poll", 0, 0, 1000000, &u->busy_poll);
	ret = ret ?: hpn_core_cfg_bool(core, "gso", 1, &gso);
	ret = ret ?: hpn_core_cfg_bool(core, "gro", 0, &gro);
	/* Raw datagrams (reliable=off) as large as UDP takes: the kernel
	 * fragments them on the way. */
	ret = ret ?: hpn_pktep_read_cfg(core, 1472, 65000, 65507, true, &pc);
	if (ret)
		goto fail;
	ret = udp_probe(caps, why, sizeof(why));
	if (ret) {
		hpn_set_error(ret, "udp: %s", why);
		goto fail;
	}
	if (gro && !pc.raw) {
		ret = hpn_set_error(-EINVAL, "config: gro=on conflicts with reliable=on: kernel coalescing (UDP_GRO) "
					     "is for raw datagrams; set reliable=off or drop gro=on");
		goto fail;
	}
	if (gro && pc.mtu < 65507) { /* a glued run is up to a whole IPv4 datagram */
		ret = hpn_set_error(-EINVAL, "config: gro=on needs mtu=65507 (the default with reliable=off): glued "
					     "runs of datagrams are received whole");
		goto fail;
	}
	u->gso = gso;
	u->gro = gro;
	u->mcast_if.s_addr = pc.mcast_if;
	u->mcast_ifindex = (int)pc.mcast_ifindex;
	u->mcast_ttl = pc.mcast_ttl;
	u->plain = pc.plain;
	u->rel_mtu = pc.mtu;
	u->raw = pc.raw;
	ret = hpn_pktep_create(core, &pc, &rel_io, u, &u->pk);
	if (ret)
		goto fail;
	caps->max_msg_size = hpn_pktep_max_msg(u->pk);
	caps->flags = 0; /* the probe's are the defaults': this one's from its mode */
	if (pc.plain) /* any UDP peer or feed; every arrival stamped by the kernel */
		caps->flags |= HPN_CAP_PLAIN | HPN_CAP_MULTICAST | HPN_CAP_TS_KERNEL;
	else if (!pc.raw) /* multicast: in unordered mode (sequenced, gaps counted) */
		caps->flags |= HPN_CAP_ORDERED | (hpn_pktep_reliable(u->pk) ? HPN_CAP_RELIABLE : HPN_CAP_MULTICAST);
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
	hpn_pktep_mem_register(u->pk);
	/* The stack is held while no datagram comes, so bounded by the pool:
	 * an eighth of it, and with the packet layer's delivery reserve at
	 * most half (bufs >= 128 there), so the application can always send.
	 * A pool of 128 lends nothing: datagrams land in the packet layer's
	 * own room and are copied. */
	uint32_t bufs = hpn_core_opts(u->core)->bufs, kept = hpn_pktep_rx_reserve(u->pk);

	u->rel_max = bufs / 8;
	if (u->rel_max > HPN_ARRAY_LEN(u->rel_rxb))
		u->rel_max = HPN_ARRAY_LEN(u->rel_rxb);
	if (u->rel_max > bufs / 2 - kept)
		u->rel_max = bufs / 2 - kept;
	u->rel_lend = hpn_pool_buf_size(u->pool) >= u->rel_mtu && u->rel_max;
	return 0; /* kernel sockets copy: nothing to register */
}

static int udp_listen(struct hpn_pep *u, const char *spec)
{
	struct sockaddr_storage a;
	socklen_t alen;
	int ret;

	if (u->plain)
		return plain_listen(u, spec);
	ret = resolve(spec, true, &a, &alen);
	if (ret)
		return ret;
	if (u->fd >= 0)
		return hpn_set_error(-EISCONN, "udp: listen %s: the endpoint already has its socket (%s); one "
					       "listen per endpoint, before any connect",
				     spec, hpn_pktep_doing(u->pk));
	if (is_group(&a))
		return listen_group(u, &a, spec);
	ret = ensure_socket(u, a.ss_family);
	if (ret)
		return ret;
	if (a.ss_family == AF_INET6) {
		int off = 0; /* dual stack: IPv4 peers appear as ::ffff:a.b.c.d */

		setsockopt(u->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	}
	if (bind(u->fd, (struct sockaddr *)&a, alen)) {
		ret = hpn_set_error(-errno, "udp: cannot bind %s: %s", spec, strerror(errno));
		drop_socket(u);
		return ret;
	}
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
	return addr_eq(&me, len, to, len) || (is_any(&me) && is_loopback(to));
}

static int udp_connect(struct hpn_pep *u, const char *spec, hpn_peer_t *peer)
{
	struct sockaddr_storage a;
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
	return hpn_pktep_connect(u->pk, &a, alen, peer);
}

static int udp_disconnect(struct hpn_pep *u, hpn_peer_t id)
{
	return hpn_pktep_disconnect(u->pk, id);
}

static int udp_peer_addr(struct hpn_pep *u, hpn_peer_t id, char *buf, size_t len)
{
	return hpn_pktep_peer_addr(u->pk, id, buf, len);
}

/* A socket's drops: its receive buffer was full (or its memory). */
static void read_drops(struct hpn_pep *u, int fd, uint64_t *last)
{
	uint32_t mem[SK_MEMINFO_VARS] = {0};
	socklen_t len = sizeof(mem);

	if (!getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) && len > SK_MEMINFO_DROPS * sizeof(uint32_t))
		hpn_stat_dropped(u->st, last, mem[SK_MEMINFO_DROPS]);
}

static int udp_progress(struct hpn_pep *u, uint64_t now)
{
	if (u->fd < 0)
		return 0;
	if (now - u->drops_ns >= 1000000000ull) { /* a syscall per socket: each second */
		u->drops_ns = now;
		read_drops(u, u->fd, &u->drops_last[0]);
		for (unsigned i = 0; i < u->nxfd; i++)
			read_drops(u, u->xfd[i], &u->drops_last[1 + i]);
	}
	return hpn_pktep_progress(u->pk, now);
}

static int udp_wait_fd(struct hpn_pep *u)
{
	/* The packet layer's timers (acks, retransmissions) are finer than
	 * the core's sleeps: while one is near, keep polling. */
	if (u->fd >= 0 && hpn_pktep_busy(u->pk))
		return -EAGAIN;
	if (u->epfd >= 0)
		return u->epfd;
	return u->fd >= 0 ? u->fd : -ENOTCONN; /* no socket yet: nothing can come */
}

static int udp_tx_burst(struct hpn_pep *u, const struct hpn_msg *msgs, unsigned n, unsigned flags)
{
	return hpn_pktep_tx_burst(u->pk, msgs, n, flags);
}

static int udp_rx_burst(struct hpn_pep *u, struct hpn_msg *msgs, unsigned n)
{
	return u->fd >= 0 ? hpn_pktep_rx_burst(u->pk, msgs, n) : 0;
}

static int udp_feed_lines(struct hpn_pep *u, struct hpn_feed_line *lines, unsigned max)
{
	return hpn_pktep_feed_lines(u->pk, lines, max);
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
	.feed_lines = udp_feed_lines,
};

HPN_PLUGIN_DEFINE(udp_ops)
