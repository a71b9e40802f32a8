/* SPDX-License-Identifier: MIT */
/*
 * pktep_int.h - the packet endpoint's insides, shared by its two rooms:
 * pktep.c (peers, the handshake, hpn's streams) and plain.c (framing=none:
 * plain datagrams and feeds). Not for backends: they use pktep.h.
 */
#ifndef HPN_PACKET_PKTEP_INT_H
#define HPN_PACKET_PKTEP_INT_H

#include "conn.h"
#include "fault.h"
#include "feed.h"
#include "hello.h"
#include "msgq.h"
#include "peerid.h"
#include "pktep.h"

#define PK_BURST 64      /* datagrams per receive call, and per send flush */
#define PK_CACHE 256     /* at most this many pool buffers reserved for deliveries */
#define PK_QUEUE 1024    /* delivered messages waiting for rx_burst */
#define PK_CTRL 160      /* control packets are copied into the send batch */
#define HASH_EMPTY UINT32_MAX
#define COOKIE_LIFE_MS 2000 /* a COOKIE is good this long (the connector echoes it <= 1 s) */
#define CLOSED_MAX 64       /* sessions recently closed: a late COOKIE_ECHO does not revive them */
#define MS 1000000ull
#define LINGER_NS 200000000ull /* destroy waits for acks, unless linger_ms says otherwise */

struct pk_peer {
	uint8_t addr[HPN_PKTEP_ADDR_MAX];
	uint32_t alen;
	hpn_peer_t id; /* slot | generation << slot_bits: stale ids never match */
	uint32_t hash, active_idx;
	bool used, connecting, dead;
	bool superseded;       /* a proven restart took its address; it ends once its backlog is read */
	bool closed_noted;     /* its session is in e->closed */
	bool lingering;        /* disconnected by the application, data still unacked */
	uint64_t refused_ns;   /* ICMP port unreachable came back at this time (0: no) */
	uint64_t refused_empty; /* e->rx_empty then: gone once the socket was empty since */
	uint32_t lost_session; /* the other side's HELLO we beat in a simultaneous open */
	/* A proven new session claims this peer's address (a restart, or an
	 * on-path forger): the old one is probed first and ends only if it
	 * stays silent for restart_wait_ns. */
	uint64_t restart_ns;
	uint32_t restart_session;
	uint64_t icmp_probe_ns; /* an ICMP error made us probe at this time */
	/* Deaf time credited to its silence clock since it was last heard
	 * (deaf_time), and the last_rx_ns that crediting left. */
	uint64_t deaf_credit_ns, deaf_rx_ns;
	uint64_t last_tick_ns;
	/* framing=none: no conn (its conn stays zero). A source heard by a
	 * listener expires after peer_timeout_ms of silence; a peer we
	 * connected to is a destination and stays. */
	uint64_t heard_ns;
	bool source;
	struct hpn_pktep *e;
	struct hpn_conn conn;
};

struct hpn_pktep {
	struct hpn_core *core;
	struct hpn_stats *st;
	struct hpn_pool *pool;
	const struct hpn_dgram_io *io;
	void *io_arg;
	struct hpn_conn_cfg ccfg;
	bool listening, subscribing;
	/* Publishers this subscriber disconnected: their packets (of that
	 * session) are ignored instead of bringing them back as new peers. */
	struct {
		uint8_t addr[HPN_PKTEP_ADDR_MAX];
		uint32_t alen, session;
	} muted[16];
	unsigned muted_next;
	uint64_t now, linger_ns;
	uint64_t deaf_ns; /* the last progress that found the device deaf (io->deaf), else 0 */
	uint64_t deaf_log_ns; /* its last warning (hpn_pk_due) */
	uint64_t deaf_from;   /* when the present deafness began (0: hearing) */
	bool deaf_said;       /* warned of the present one */
	uint64_t mode_log_ns, full_log_ns; /* last warnings (hpn_pk_log_due): mode_refused(), plain_full() */
	uint64_t restart_log_ns, restarts_ignored; /* restart_confirmed(): a live peer's address, a new session */
	uint64_t rx_empty; /* receive calls that found the socket empty (refused()) */
	unsigned idle_polls;
	uint32_t dying;         /* peers dead or lingering: sweep() has work */
	struct pk_peer *last;   /* the peer of the last datagram: most come in runs */

	uint32_t max_peers, npeers;
	struct pk_peer *peers;
	uint32_t *active; /* slots in use, densely */
	uint32_t *htab;   /* address hash -> slot, linear probing */
	uint32_t hmask;
	/* Free slots, oldest freed first, so a slot's generations are used up
	 * as slowly as possible; a slot whose generation would wrap retires. */
	struct hpn_peer_slots slots; /* ids and free slots (peerid.h) */

	/* The stateless handshake (hello.h), and sessions closed lately. */
	struct hpn_hello_key key;
	uint64_t closed[CLOSED_MAX];
	unsigned closed_next;
	uint64_t rand_ctr;
	uint64_t refused, refused_logged_ns;

	/* Receive: datagrams land in rx_mem, whole messages are copied into
	 * reserved pool buffers and queued until rx_burst hands them out. */
	uint8_t *rx_mem;
	struct hpn_dgram rx_d[PK_BURST];
	uint8_t rx_addr[PK_BURST][HPN_PKTEP_ADDR_MAX];
	void *cache[PK_CACHE];
	unsigned ncache, cache_max; /* bufs/8, at least a full batch */
	struct hpn_msgq q;
	bool starved; /* a conn found too little room: kick them when there is */

	/* Send: datagrams gathered during one call, flushed at its end. */
	struct hpn_dgram tx_d[PK_BURST];
	uint8_t tx_addr[PK_BURST][HPN_PKTEP_ADDR_MAX]; /* answers to no peer; fault layer's packets */
	uint8_t tx_ctrl[PK_BURST][PK_CTRL];
	uint8_t *tx_copy; /* PK_BURST * mtu: packets that are not kept by conn */
	unsigned ntx;
	/* Frames and zero-copy buffers given back while the batch may still
	 * hold them: released after the flush. */
	uint8_t *put_later[PK_BURST];
	unsigned nput;
	/* The device frames (cfg.frames): a zero-copy buffer in them is sent
	 * in place; without them any pool buffer is. */
	uintptr_t fr_lo, fr_hi;
	bool frame_io;
	struct hpn_dgram *cur; /* the datagram being read: its message may stay where it landed */
	/* Received buffers conns keep for packets that wait, at most a
	 * quarter of the pool: the rest must stay free for deliveries, or
	 * waiting packets could hold every buffer the gap's fill needs. */
	uint32_t nkept, kept_max;

	struct hpn_fault fault;
	bool faulty;

	/* framing=none (cfg.plain), and its feed when seq= is set. */
	bool plain;
	uint64_t m2r, m2r_at; /* real clock minus monotonic, read every 10 ms */
	uint64_t cur_ts;      /* receive time of the datagram being read (real clock) */
	uint32_t rx_room; /* bytes a datagram may have (plain: the largest message) */
	struct {
		char spec[64];
		uint32_t group, source;
		uint16_t port;
		hpn_peer_t peer; /* the source last heard on it */
	} lines[HPN_FEED_LINES_MAX + 1]; /* + the retransmissions' (HPN_FEED_RETRANS) */
	uint32_t nlines;
	struct hpn_feed *feed;
	uint64_t feed_deadline;
	uint64_t feed_synced[8]; /* the feed's totals already in the endpoint's stats */
	uint64_t feed_restarts; /* the feed's restarts already logged */
	/* Messages handed to the application's queue in all (plain mode): an
	 * event in order with them waits until it has received this many
	 * (hpn_core_event_after). */
	uint64_t plain_delivered;
	uint64_t feed_restart_log_ns; /* the last such warning (once a second) */
};

/* Among the device frames (frame backends: their own frame_put frees
 * them, once sent)? A frame conn's lent frames always are. */
static inline bool in_frames(const struct hpn_pktep *e, const void *p)
{
	return !e->fr_hi || (uintptr_t)p - e->fr_lo < e->fr_hi - e->fr_lo;
}

static inline struct pk_peer *peer_by_id(struct hpn_pktep *e, hpn_peer_t id)
{
	uint32_t i = hpn_peer_slots_index(&e->slots, id);

	if (i >= e->max_peers || !e->peers[i].used || e->peers[i].id != id || e->peers[i].lingering)
		return NULL;
	return &e->peers[i];
}

/* pktep.c */
struct pk_peer *hpn_pk_peer_find(struct hpn_pktep *e, const void *a, uint32_t alen);
/* A peer slot for addr; framing=none: without a conn. NULL: full. */
struct pk_peer *hpn_pk_peer_new(struct hpn_pktep *e, const void *a, uint32_t alen);
/* Once a second per *stamp: a warning is due (with a source's address in
 * who, for hpn_pk_log_due). */
bool hpn_pk_due(struct hpn_pktep *e, uint64_t *stamp);
bool hpn_pk_log_due(struct hpn_pktep *e, uint64_t *stamp, const void *addr, uint32_t alen, char *who, size_t len);
void hpn_pk_peer_free(struct hpn_pktep *e, struct pk_peer *p);
/* Out with the send batch; then the buffers waiting for it. */
void hpn_pk_flush(struct hpn_pktep *e);
/* Top up the pool buffers kept for deliveries. */
void hpn_pk_refill(struct hpn_pktep *e);
/* A buffer the application handed over, released after the next flush. */
void hpn_pk_put_after_flush(struct hpn_pktep *e, void *buf);

/* plain.c */
extern const struct hpn_feed_ops hpn_pk_feed_ops;
void hpn_pk_plain_input(struct hpn_pktep *e, struct hpn_dgram *d);
void hpn_pk_plain_expire(struct hpn_pktep *e, uint64_t now);
int hpn_pk_plain_tx_burst(struct hpn_pktep *e, const struct hpn_msg *msgs, unsigned n, unsigned flags);
int hpn_pk_plain_connect(struct hpn_pktep *e, const void *addr, uint32_t alen, hpn_peer_t *peer, const char *who);
/* caught_up: the devices were read until empty (hpn_feed_tick). */
void hpn_pk_feed_tick(struct hpn_pktep *e, uint64_t now, bool caught_up);
void hpn_pk_feed_sync(struct hpn_pktep *e);
/* Messages the reader can take now (its queue, the delivery reserve). */
uint32_t hpn_pk_plain_room(struct hpn_pktep *e);

#endif
