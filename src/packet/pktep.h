/* SPDX-License-Identifier: MIT */
/*
 * pktep.h - a packet endpoint: everything a datagram backend needs to
 * offer hpn's connection-oriented plugin ops (listen, connect, peers,
 * events; ordered lossless messages, sequenced feeds or raw datagrams) on
 * top of "send a datagram to an address, receive datagrams with their
 * source".
 *
 * udp, af_xdp and dpdk use it for every mode, each supplying
 * only its datagram I/O (struct hpn_dgram_io).
 * It is linked into each such plugin (static library hpn_packet) and
 * talks to the core only through the plugin services of plugin.h.
 *
 *   plugin op ----> hpn_pktep_*  (peer table, events, message queue)
 *                       |   one hpn_conn per peer (conn.h)
 *                       v
 *                   hpn_fault    (optional, seeded: faults=...)
 *                       v
 *                   hpn_dgram_io (the backend: sendmmsg/recvmmsg, XSK rings, rte_eth)
 *
 * Threading: like every plugin endpoint, one thread at a time.
 */
#ifndef HPN_PACKET_PKTEP_H
#define HPN_PACKET_PKTEP_H

#include <hpn/plugin.h>

#include "feed.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One datagram: the address is the backend's (a sockaddr for udp). */
struct hpn_dgram {
	const void *addr;
	uint32_t alen;
	uint8_t *data;
	uint32_t len; /* recv: in = buffer size, out = datagram length */
	/* recv: the packet layer's own room for len bytes, never changed by
	 * the backend; data points here on the way in. A backend that lends
	 * points data at its own buffer instead - and back here when it
	 * does not lend: an entry is never left pointing at a buffer lent
	 * in an earlier call. */
	uint8_t *buf;
	/* recv: when the device received it, on hpn_now_ns()'s clock (the
	 * kernel's receive timestamp); 0: unknown. The time it waited for us
	 * is host delay, not path delay: the ACK's held time and congestion
	 * control's RTT leave it out. */
	uint64_t rx_ns;
	/* send: a header to put on the wire in front of data (hlen bytes; 0:
	 * none) - a raw datagram's, so its payload goes out from wherever the
	 * application keeps it. */
	const uint8_t *hdr;
	uint32_t hlen;
	/* recv: the datagram's destination, network byte order (0: unknown):
	 * which multicast group - which line of a feed - it came on. Frame
	 * backends read it from the frame, udp from IP_PKTINFO. */
	uint32_t dst_ip;
	uint16_t dst_port;
	/* recv: HPN_DGRAM_POOL - data lies in a buffer of the core's pool
	 * (frames or ordinary) that the packet layer may keep: a message
	 * alone in its packet is then handed to the application where it
	 * landed, and the entry's data is NULL when rx_done() gets it back. */
	uint32_t flags;
};

#define HPN_DGRAM_POOL 1u

struct hpn_dgram_io {
	/* Hand n datagrams to the device. Returns how many it took (the rest
	 * count as lost: the packet layer retransmits) or -errno. */
	int (*send)(void *io, const struct hpn_dgram *d, unsigned n);
	/* Receive up to n datagrams into d[i].data (room d[i].len); d[i].addr
	 * points to room for HPN_PKTEP_ADDR_MAX bytes. Returns the count,
	 * 0 if the device has none (not merely a burst of frames that were
	 * not ours: a feed reports its gaps only after an empty read; frame
	 * backends read on with hpn_net_recv), or -errno. A frame backend may lend instead of copy:
	 * point d[i].data at the payload inside its own frame (at most room
	 * bytes long), valid until rx_done() - the packet layer copies what
	 * it keeps (unless HPN_DGRAM_POOL), and sets every entry's own buffer
	 * back before the next call. */
	int (*recv)(void *io, struct hpn_dgram *d, unsigned n);
	/* Optional (lending backends): the entries of the last recv() (n of
	 * them), once the packet layer is done with them, before the next
	 * recv(): the backend takes its buffers back - except those whose
	 * data is NULL, kept (HPN_DGRAM_POOL): the application's now. */
	void (*rx_done)(void *io, struct hpn_dgram *d, unsigned n);
	/* Format an address for messages and hpn_peer_addr(). */
	int (*format)(void *io, const void *addr, uint32_t alen, char *buf, size_t len);
	/* Optional (frame backends): send slots lent from the device's
	 * memory. The packet layer builds each reliable packet in a frame of
	 * frame_get() (room for mtu bytes; headroom in front is the
	 * backend's), keeps it there until acknowledged and sends it from
	 * there: send() then gets datagrams that point into frames (every
	 * DATA packet of a reliable stream; control packets are copies) and
	 * may transmit them in place - a frame can be sent again (a
	 * retransmission) while an earlier send of it is still in flight, so
	 * a backend that sends in place must notice. frames_free(): how many
	 * frame_get() can give now. All NULL: the packet layer keeps its own
	 * slots and every send is a copy. */
	uint8_t *(*frame_get)(void *io);
	void (*frame_put)(void *io, uint8_t *frame);
	uint32_t (*frames_free)(void *io);
	/* Optional: true while the device cannot receive at all (every
	 * receive frame is held by the application). Silence is not counted
	 * meanwhile - the peer may be talking to a deaf port - as the rdma
	 * backend does not count it while a device has no receive posted. */
	bool (*deaf)(void *io);
};

#define HPN_PKTEP_ADDR_MAX 128
/* Bytes a zero-copy send writes in front of its payload (the packet
 * header): a backend's caps.headroom is at least this, plus its own. */
#define HPN_PKTEP_HEADROOM 24

struct hpn_pktep_cfg {
	uint32_t mtu;      /* datagram payload the path carries (udp over Ethernet: 1472) */
	uint32_t window;   /* packets in flight per peer */
	bool window_auto;  /* window not chosen by the user: raise it so max_msg fits */
	uint64_t ack_delay_ns;
	uint64_t rto_min_ns;
	uint64_t linger_ns; /* destroy waits this long for data acks (0: 200 ms) */
	const char *faults; /* NULL/"" or a fault spec (fault.h) */
	uint64_t cc_target_ns; /* congestion control's queueing-delay target floor (0: default) */
	bool cc_off;        /* no congestion control (dedicated links) */
	bool reliable;      /* false: sequenced, gaps counted, nothing retransmitted */
	bool raw;           /* reliable=off: raw datagrams (conn.h cfg.raw) */
	/* Multicast (unordered mode): the interface to join and publish on,
	 * by its IPv4 address in network order (0: unset - the backend's
	 * choice), and the hops a published datagram may travel. */
	uint32_t mcast_if;
	uint32_t mcast_ifindex; /* the same interface's index (0: unset) */
	uint8_t mcast_ttl;
	/* framing=none: plain datagrams, no hpn header (a feed, any UDP
	 * peer): one message each, peers are source addresses. With seq set
	 * (feed.h) the datagrams of the lines are one arbitrated feed. */
	bool plain;
	struct hpn_seq_spec seq;
	uint64_t gap_timeout_ns;
	/* Frame backends: the core's device frames (hpn_core_frames) the
	 * device sends from; a zero-copy send of a buffer among them goes out
	 * in place. NULL: any pool buffer can (udp: the kernel copies). */
	struct hpn_pool *frames;
	/* At most this many received buffers kept for packets that wait (0:
	 * a quarter of the pool); a frame backend keeps its device's fill
	 * ring from running dry with a quarter of its receive frames. */
	uint32_t kept_max;
};

struct hpn_pktep;

/* The packet layer's configuration keys, declared once for every packet
 * backend: a backend's params table lists its own keys, then these, then
 * {NULL, NULL}. Read with hpn_pktep_read_cfg. */
#define HPN_PKTEP_PARAMS                                                                                         \
	{"reliable", "on|off: ordered, lossless messages (default on); off: raw datagrams, one message each"},        \
	{"unordered", "on|off: reliable=on only: sequenced but unreliable: gaps counted, nothing retransmitted "     \
		      "(default off)"},                                                                        \
	{"mtu", "reliable mode: datagram payload bytes per packet (default: the backend's, 1472 for Ethernet)"},      \
	{"window", "reliable mode: packets in flight per peer (default 256, or what max_msg needs; at most 1024)"},   \
	{"linger_ms", "reliable mode: how long destroying the endpoint waits for peers to acknowledge what was "     \
		      "sent (default 200)"},                                                                   \
	{"rto_min_us", "reliable mode: floor of the retransmission timeout; it only recovers a lost tail, loss "    \
		       "before later packets is found in about a round trip (default 1000)"},                  \
	{"cc", "on|off: reliable mode: delay-based congestion control (after Swift; random loss does not slow it; "  \
	       "default on, off for dedicated links)"},                                                         \
	{"cc_target_us", "reliable mode: queueing delay congestion control allows above the path's base RTT (at "    \
			 "least half the base RTT; default 100)"},                                             \
	{"ack_delay_us", "reliable mode: longest an arrival waits for its ack when no data goes back (default 20)"}, \
	{"faults", "reliable mode: seeded fault injection on sends, e.g. "                                          \
		   "loss:0.05/reorder:0.1/dup:0.01/corrupt:0.001/delay:0.01/delay_us:200/seed:7"},            \
	{"mcast_if", "multicast: the interface to join and publish on, by name or IPv4 address (default: the "      \
		     "backend's choice - udp: the routing table, 127.0.0.1 for loopback; af_xdp: dev=)"},       \
	{"mcast_ttl", "multicast: hops a published datagram may travel (default 1: this subnet)"},                   \
	{"framing", "hpn|none: none: plain datagrams without hpn's header - one message each, peers are source "     \
		    "addresses, no handshake (a market-data feed, any UDP peer; default hpn)"},                      \
	{"seq", "framing=none: one feed from every listened line, arbitrated by sequence number: moldudp64, mdp3, " \
		"or \"offset:N,size:4|8,endian:big|little\" (docs/FEEDS.md)"},                                      \
	{"gap_timeout_us", "seq=: how long a hole every line has so far waits for a late copy before it is "         \
			   "reported as HPN_EV_GAP (default 1000)"}

/* Read the keys above (one default, one range, contradictions refused).
 * mtu_default/mtu_max: the backend's datagram payload (udp: 1472, 65000);
 * raw_mtu: its default with reliable=off, raw datagrams (udp: 65000, the
 * kernel fragments; a frame backend: what its link takes), where the keys
 * of the reliable stream are refused; rx_stamps: the device stamps
 * arrivals (cc= defaults on only then). Returns 0 or -EINVAL with
 * hpn_set_error(). */
int hpn_pktep_read_cfg(struct hpn_core *core, uint32_t mtu_default, uint32_t mtu_max, uint32_t raw_mtu, bool rx_stamps,
		       struct hpn_pktep_cfg *cfg);

/* Reads the core options (bufs, burst, max_peers, peer_timeout_ms ...)
 * from core. Returns 0 or -errno with hpn_set_error(). */
int hpn_pktep_create(struct hpn_core *core, const struct hpn_pktep_cfg *cfg, const struct hpn_dgram_io *io,
		     void *io_arg, struct hpn_pktep **out);
void hpn_pktep_destroy(struct hpn_pktep *e); /* says goodbye to every peer */
/* The largest message: the core's max_msg (max_msg=, else buf_size), or
 * what one window of packets carries if that is less and max_msg was not
 * asked for (asked for, it is an error at create). */
uint32_t hpn_pktep_max_msg(const struct hpn_pktep *e);
/* Pool buffers the packet layer keeps in hand to deliver into (a batch's
 * worth at least): a backend that keeps some too (udp's lending stack)
 * leaves the application at least half the pool with it. */
uint32_t hpn_pktep_rx_reserve(const struct hpn_pktep *e);
/* false: unordered mode (sequenced, gaps counted, nothing retransmitted). */
bool hpn_pktep_reliable(const struct hpn_pktep *e);
/* framing=none: a line of the feed (or a plain multicast subscription):
 * datagrams to group:port (network order; group 0: any address) from
 * source (0: any) are this line's. spec names it in hpn_feed_lines.
 * Returns the line's index, -EEXIST if it is there, -ENOSPC beyond
 * HPN_FEED_LINES_MAX. */
int hpn_pktep_line_add(struct hpn_pktep *e, const char *spec, uint32_t group, uint16_t port, uint32_t source);
/* What line_add would refuse (-EEXIST, -ENOSPC), asked before a backend
 * binds or joins anything for the line (port 0: not known yet). */
int hpn_pktep_line_check(struct hpn_pktep *e, const char *spec, uint32_t group, uint16_t port, uint32_t source);
/* Per-line feed counters (hpn_feed_lines); -EOPNOTSUPP without seq=. */
int hpn_pktep_feed_lines(struct hpn_pktep *e, struct hpn_feed_line *out, unsigned max);
/* A listen address "group@source:port" as "group:port" in out, and the
 * source (network order; 0 when there is none: out is spec). 0 or -EINVAL
 * with the error set. */
int hpn_pktep_split_source(const char *spec, char *out, size_t len, uint32_t *source);
int hpn_pktep_mem_register(struct hpn_pktep *e);
void hpn_pktep_listen(struct hpn_pktep *e);
/* What the endpoint does already, for messages: "it listens", ... */
const char *hpn_pktep_doing(const struct hpn_pktep *e);
/* Multicast (unordered mode): accept publishers heard on a joined group
 * as peers (HPN_EV_PEER_NEW), and publish to a group address (the peer
 * is connected at once). -EINVAL in reliable mode. */
int hpn_pktep_subscribe(struct hpn_pktep *e);
/* Undo a subscribe whose join then failed. */
void hpn_pktep_unsubscribe(struct hpn_pktep *e);
int hpn_pktep_publish(struct hpn_pktep *e, const void *group, uint32_t alen, hpn_peer_t *peer);
int hpn_pktep_connect(struct hpn_pktep *e, const void *addr, uint32_t alen, hpn_peer_t *peer);
int hpn_pktep_disconnect(struct hpn_pktep *e, hpn_peer_t peer);
int hpn_pktep_peer_addr(struct hpn_pktep *e, hpn_peer_t peer, char *buf, size_t len);
int hpn_pktep_progress(struct hpn_pktep *e, uint64_t now);
/* 1: work is pending or a timer is due soon (do not sleep), 0: may sleep. */
int hpn_pktep_busy(struct hpn_pktep *e);
int hpn_pktep_tx_burst(struct hpn_pktep *e, const struct hpn_msg *msgs, unsigned n, unsigned flags);
int hpn_pktep_rx_burst(struct hpn_pktep *e, struct hpn_msg *msgs, unsigned n);
/* The backend got an ICMP error (err) for a datagram it sent to addr;
 * quote[0, qlen) is the start of that datagram's payload as the error
 * quotes it. An error that does not quote the peer's session is ignored
 * (anyone can send one); a peer still connecting fails with err; an
 * established one is probed, and ends only when the probe itself comes
 * back port-unreachable. */
void hpn_pktep_unreachable(struct hpn_pktep *e, const void *addr, uint32_t alen, int err, const uint8_t *quote,
			   size_t qlen);

/* A cumulative drop count read from the kernel or a device (`cur`) into
 * hpn_stats.rx_dropped: what it grew by since `*last` (a count that went
 * back - a new socket or port - counts from zero). */
static inline void hpn_stat_dropped(struct hpn_stats *st, uint64_t *last, uint64_t cur)
{
	HPN_STAT_ADD(st->rx_dropped, cur >= *last ? cur - *last : cur);
	*last = cur;
}

#endif
