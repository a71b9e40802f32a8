/* SPDX-License-Identifier: MIT */
/*
 * conn.h - one reliable (or sequenced-unreliable) message stream between
 * two peers over any datagram transport: joins the wire format, the send
 * and receive windows and reassembly. No socket and no clock: the owner
 * passes datagrams in and gets datagrams out through a callback, with `now`
 * on every call, so it runs under a virtual clock in tests and under
 * udp (later af_xdp and dpdk) in production (src/packet/pktep.c).
 *
 * Latency first: a lone message is sent at once as one packet; acks ride
 * on the data going back (ping-pong traffic sends no ack packets at all);
 * a separate ACK goes out only when a gap is seen (at once: it drives fast
 * retransmission), every `ack_every` packets, or `ack_delay_ns` after the
 * oldest unacknowledged arrival. Several small messages handed over in one
 * burst share a packet (BATCH); one message never waits for another.
 *
 * Memory is fixed at init: `window` packet slots each way (the send side
 * keeps packets for retransmission, the receive side holds packets that
 * arrived ahead of a gap). A fragmented message is reassembled in a buffer
 * the owner lends for it (ops.get_buf), as large as that message.
 */
#ifndef HPN_PACKET_CONN_H
#define HPN_PACKET_CONN_H

#include "rxwin.h"
#include "txwin.h"
#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hpn_conn_ops {
	/* Put one datagram on the wire (best effort; loss is our business).
	 * pkt is valid during the call only. */
	void (*xmit)(void *arg, const uint8_t *pkt, size_t len);
	/* A whole message arrived, in order (valid during the call only). */
	void (*deliver)(void *arg, const uint8_t *msg, size_t len);
	/* Fragmented messages are reassembled straight into the owner's
	 * memory: get_buf() lends a buffer of at least total bytes when the
	 * first fragment is in order (NULL: none now - the fragment waits as
	 * for room(), so call hpn_conn_kick() when buffers come back);
	 * deliver_buf() gives it back holding the message, put_buf() with a
	 * message abandoned (a gap in unreliable mode, malformed fragments,
	 * the stream's end). All three NULL: the conn reassembles into a
	 * max_msg buffer of its own, allocated at the first fragmented
	 * message, and hands it to deliver(). */
	uint8_t *(*get_buf)(void *arg, size_t total);
	void (*deliver_buf)(void *arg, uint8_t *buf, size_t len);
	void (*put_buf)(void *arg, uint8_t *buf);
	/* How many more messages deliver() may be called with right now: the
	 * owner's queue and buffers. In-order packets beyond it wait in their
	 * receive slots (acknowledged; the advertised window shrinks by them),
	 * so a slow reader is never overrun and costs no retransmission; call
	 * hpn_conn_kick() when room appears. Unreliable mode drops what does
	 * not fit (counted in gaps). NULL: no limit. */
	uint32_t (*room)(void *arg);
	/* A long run of sends (a large message leaving at once) stops every
	 * HPN_CONN_CLOCK_RUN packets to ask for the time again: the owner puts
	 * what it was given so far on the wire and returns its clock. Without
	 * it every packet of a 700-packet burst carried the burst's first
	 * time, and the last ones' "RTT" included the whole burst's sending:
	 * a minimum RTT of milliseconds on loopback, which made every real
	 * retransmission look needless and widened RACK's reordering window
	 * to the timeout. NULL: `now` holds for the whole call (tests). */
	uint64_t (*clock)(void *arg);
	/* Send slots in the owner's memory (frame backends: a UMEM frame per
	 * packet, built in place and sent without a copy). get_frame() lends
	 * room for one packet of up to mtu bytes - frames_free() says how
	 * many it can lend now, and a message takes its frames whole or
	 * waits (-EAGAIN) - and put_frame() takes it back once the packet is
	 * acknowledged or the stream ends (unreliable: once sent). get_frame
	 * and frames_free NULL: the conn keeps window x mtu bytes of its own.
	 * put_frame also takes back the buffers of zero-copy messages the
	 * conn built its packets around (hpn_conn_msg.adopt), any pointer
	 * into them; NULL: nothing is adopted (adopt is ignored). */
	uint8_t *(*get_frame)(void *arg);
	void (*put_frame)(void *arg, uint8_t *frame);
	uint32_t (*frames_free)(void *arg);
	/* Packets that must wait (ahead of a gap, or for the reader's room)
	 * are copied into the conn's receive slots - unless keep_rx(payload)
	 * says the buffer the payload lies in may stay with the conn (a pool
	 * buffer the datagram landed in). A kept packet's message alone in it
	 * goes out with deliver_kept() in that buffer (the owner's from
	 * then); one holding several messages or a fragment is consumed like
	 * any and its buffer handed back with release_rx(payload), as are
	 * kept packets the stream ends with. All three NULL: always copied. */
	bool (*keep_rx)(void *arg, const uint8_t *payload);
	void (*deliver_kept)(void *arg, const uint8_t *msg, size_t len);
	void (*release_rx)(void *arg, const uint8_t *payload);
	/* The handshake completed (either side). May be NULL. */
	void (*up)(void *arg);
	/* The stream ended: 0 closed by the peer, -ETIMEDOUT silent peer,
	 * -ECONNREFUSED refused while connecting (c->refused_full: the peer
	 * is full), -EPROTO the peer runs another mode (c->peer_mode: its
	 * hpn_pkt_mode_flags). c->unacked_msgs says how many sent messages were not
	 * acknowledged. */
	void (*gone)(void *arg, int status);
};

#define HPN_CONN_BATCH_MAX HPN_PKT_BATCH_MAX
/* A zero-copy message this long or longer goes alone in its packet, built
 * around its buffer; shorter ones still share packets with their
 * neighbours (a copy of a few hundred bytes costs less than a packet). */
#define HPN_CONN_ZC_ALONE 256
#define HPN_CONN_CLOCK_RUN 64

enum hpn_conn_state { HPN_CONN_IDLE, HPN_CONN_HELLO, HPN_CONN_UP, HPN_CONN_DEAD };

/* A stream between two peers, or one direction of a multicast group
 * (unordered mode only: a group has nobody to retransmit for it). */
enum hpn_conn_role { HPN_CONN_PAIR, HPN_CONN_PUBLISH, HPN_CONN_SUBSCRIBE };

struct hpn_conn_cfg {
	uint32_t mtu;          /* bytes per datagram, headers included (e.g. 1472) */
	uint32_t window;       /* packets in flight (<= HPN_TXWIN_MAX) */
	uint32_t max_msg;      /* largest message (reassembly buffer) */
	uint64_t dead_ns;      /* silence that makes the peer gone (default 1 s) */
	uint64_t ack_delay_ns; /* longest an arrival waits for its ack (default 20 us) */
	uint32_t ack_every;    /* ack at once after this many unacked packets (default window/4) */
	uint64_t rto_min_ns;   /* floor of the retransmission timeout (default 1 ms) */
	uint64_t hello_retry_ns; /* handshake packets repeated this often (default 20 ms) */
	uint64_t cc_target_ns; /* congestion control: queueing delay target floor (0: cc.h's default) */
	bool cc_off;           /* no congestion control: only the peer's window limits a stream */
	bool reliable;         /* false: sequenced, gaps reported, no retransmission */
	/* Raw datagrams (reliable=off; reliable must be false): the handshake,
	 * keepalive and goodbye as ever, but each message is one datagram with
	 * a RAW header (hpn_conn_raw_header), delivered as it comes - no
	 * sequence, no ack, no checksum, no slots (window unused). */
	bool raw;
};

struct hpn_conn {
	struct hpn_conn_cfg cfg;
	struct hpn_conn_ops ops;
	void *arg;
	enum hpn_conn_state state;
	enum hpn_conn_role role;
	bool rx_unset; /* a subscriber that heard a heartbeat first: no sequence yet */
	uint32_t session;
	uint32_t room;     /* payload bytes per fragment */
	uint32_t mtu;      /* datagram bytes we send: ours or the peer's, the smaller */
	uint32_t max_send; /* largest message we send: ours or the peer's, the smaller */
	uint32_t isn;      /* our first DATA sequence number (random; HELLO says it, always) */
	/* Connecting: the acceptor's COOKIE (its parameters and the cookie we
	 * echo) once it came; echo_ns when we started echoing it. */
	struct hpn_pkt hs;
	bool have_cookie, refused_full;
	uint8_t peer_mode; /* -EPROTO: the mode its COOKIE or HELLO_ACK said (hpn_pkt_mode_flags) */
	uint64_t echo_ns;
	/* The last probe (PING) and its nonce: a PONG or an ICMP error that
	 * quotes it answers this probe and no other. */
	uint32_t probe_nonce;
	uint64_t probe_sent_ns;
	/* The acceptor's PING right after the handshake (nonce: our ISN):
	 * its PONG is the path's RTT before any data queues (cc.h). */
	uint64_t rtt_ping_ns;
	/* Silent for dead_ns with in-order messages still waiting for the
	 * reader: they were acknowledged, so they are delivered first, and
	 * the stream ends with end_status once the backlog is empty. */
	bool ending;
	int end_status;
	bool closing;      /* closing: BYE once all is acked, until answered */
	uint32_t bye_tries;
	uint64_t bye_ns;
	bool bye;          /* the peer said BYE after sending up to bye_seq */
	bool abort_sent;   /* broken: the peer was told (a BYE with ABORT) */
	bool peer_aborted; /* the peer ended the stream as broken (-ECONNRESET) */
	uint32_t bye_seq;
	uint64_t probe_ns, probe_wait_ns; /* window probes while blocked, backing off */
	struct hpn_txwin tx;
	struct hpn_rxwin rx;
	struct hpn_reasm reasm;
	uint32_t reasm_next; /* the seq the message under reassembly goes on with */
	uint64_t last_rx_ns, last_tx_ns, hello_ns, ack_due_ns;
	uint64_t data_rx_ns; /* the newest DATA's arrival: an ACK says how long ago */
	uint64_t arrived_ns; /* the datagram being read arrived then (hpn_conn_input_at) */
	uint64_t connect_deadline_ns; /* connecting: give up then (-ETIMEDOUT) */
	uint32_t ack_pending; /* packets arrived since our last ack */
	uint32_t peer_limit;  /* the peer takes seqs before this (its cum + window) */
	uint32_t adv_window;  /* window we last advertised */
	uint32_t backlog;     /* in-order packets before rx.next waiting for room */
	uint32_t built;       /* the packet emit() just built: its ack is fresh */
	uint32_t tx_run;      /* packets sent since the clock was last read (ops.clock) */
	uint32_t rx_high;     /* one past the highest DATA seq received */
	bool dup_seen;        /* a duplicate DATA arrived: say so in the next ACK (F_DUP) */
	bool retx_seen;       /* a needed retransmission arrived: say so in the next ACK (F_RETX) */
	bool blocked;         /* a send was refused for the peer's window: probe it */
	/* Sent packets, kept for retransmission (reliable mode): in tx_pkts,
	 * or (lent frames, ops.get_frame) each in its frame, the txwin's ref. */
	uint8_t *tx_pkts;
	uint16_t *tx_len;
	uint16_t *tx_msgs; /* messages in each packet: what is lost if the peer dies */
	/* Packets held ahead of a gap: their decoded header and a copy. */
	uint8_t *rx_pkts;
	struct hpn_pkt *rx_hdr;
	/* Counters (single writer: the owner's thread). */
	uint64_t malformed, stale, retransmits, acks_sent, gaps, unacked_msgs, batched, pkts_sent;
	uint64_t overflow; /* raw: datagrams dropped, the owner had no room */
	uint64_t ping_ns;  /* the last keepalive PING went out then */
	/* A stream the peer keeps alive but that can no longer keep its
	 * promise - every message, in order, once - ends (-EPROTO) instead of
	 * waiting for ever (issue: an on-path forged ack wedged it, silently).
	 * broken: why (enum hpn_conn_broken); the stall_* fields watch for no
	 * progress, sampled at each tick (conn.c: watch_progress). */
	uint8_t broken;
	uint32_t stall_una, stall_next;
	uint64_t stall_tx_ns, stall_rx_ns;
	uint64_t watch_ns; /* the last tick that watched: after a longer gap than dead_ns, watch anew */
};

/* Why a live stream was ended (hpn_conn.broken; -EPROTO to the owner). */
enum hpn_conn_broken {
	HPN_CONN_OK,
	HPN_CONN_TX_STALL,   /* our oldest packet unacknowledged, its window open */
	HPN_CONN_RX_STALL,   /* a hole in what it sent, never filled */
	HPN_CONN_BAD_MSG,    /* a message its packets contradict, acknowledged already */
};

/* HPN_CONN_TX_STALL and HPN_CONN_RX_STALL: after this many peer timeouts
 * (dead_ns) without progress - resends back off to dead_ns / 4 at most,
 * so a live path has had dozens of tries by then - and after a frame
 * backend's deaf spell (an application holding every receive frame is
 * given DEAF_LIMITS, pktep.c, before its peers are judged): a peer that
 * cannot hear our acks for that long must not be ended as broken first. */
#define HPN_CONN_STALL_DEAD 10

/* A line's worth of why (for the owner's log). */
const char *hpn_conn_broken_str(uint8_t broken);

/* Set up; the connecting side then calls hpn_conn_connect, the accepting
 * side hpn_conn_accept once a COOKIE_ECHO proved the connector's address
 * (hello.h: nothing is set up for a mere HELLO). Returns 0 or -ENOMEM /
 * -EINVAL. */
int hpn_conn_init(struct hpn_conn *c, const struct hpn_conn_cfg *cfg, const struct hpn_conn_ops *ops,
		  void *arg);
void hpn_conn_fini(struct hpn_conn *c);
/* session and isn (our first sequence number) should be random: with the
 * acceptor's random isn they are what an off-path attacker must guess.
 * timeout_ns: how long the handshake may take (0: cfg.dead_ns). */
void hpn_conn_connect(struct hpn_conn *c, uint32_t session, uint32_t isn, uint64_t timeout_ns, uint64_t now);
/* The accepting side: echo is the connector's valid COOKIE_ECHO (decoded),
 * isn ours (from hpn_hello_check). Up at once; answers HELLO_ACK. */
void hpn_conn_accept(struct hpn_conn *c, const struct hpn_pkt *echo, uint32_t isn, uint64_t now);
/* Probe the peer now (a PING carrying nonce): the owner heard something
 * that may mean it is gone (an ICMP error), or wants to know it is alive
 * (a new session claims its address). Its PONG proves it alive. */
void hpn_conn_probe(struct hpn_conn *c, uint32_t nonce, uint64_t now);
/* Multicast, unordered mode. A publisher's stream is up at once (nobody
 * answers a group): it sends DATA and, when idle, heartbeat PINGs that
 * keep subscribers from timing it out; it never times out itself. A
 * subscriber's stream starts from the first packet heard from a
 * publisher (its session, its sequence numbers: earlier gaps are
 * unknowable), sends nothing, and times the publisher out after dead_ns
 * of silence. Returns 0, or -EINVAL (reliable mode; a packet that is not
 * a publisher's DATA or PING). */
int hpn_conn_publish(struct hpn_conn *c, uint32_t session, uint64_t now);
int hpn_conn_subscribe(struct hpn_conn *c, const uint8_t *pkt, size_t len, uint64_t now);

/* Say goodbye. linger (reliable mode): keep retransmitting until all is
 * acked, then BYE until the peer answers BYE (a few tries; hpn_conn_tick
 * does it, and the state turns DEAD when done; a peer that dies meanwhile
 * ends it through ops.gone); returns false while lingering. Otherwise BYE
 * now (twice, best effort), and true. Sends are refused from here on. The
 * BYE carries our next sequence number: the peer delivers everything
 * before it, then reports the stream closed. */
bool hpn_conn_close(struct hpn_conn *c, bool linger, uint64_t now);
/* The owner learned the peer is gone (e.g. ICMP port unreachable): end
 * the stream now, through ops.gone, with unacked_msgs counted. */
void hpn_conn_abort(struct hpn_conn *c, int status);
/* The same, except that messages we acknowledged and the owner has not
 * taken yet are delivered first (the stream is 'ending' until then). */
void hpn_conn_end(struct hpn_conn *c, int status);

/* One message of a burst. */
struct hpn_conn_msg {
	const void *data;
	uint32_t len;
	/* In: data lies in a buffer the conn may keep as the packet itself
	 * (a zero-copy send), with HPN_PKT_HDR writable bytes in front of it:
	 * a message sent alone in one packet is then built around it and
	 * handed back through ops.put_frame once acknowledged (unreliable:
	 * once sent). Out (hpn_conn_send): still true only for the messages
	 * kept so; the others were copied and stay the caller's. */
	bool adopt;
};

/* Queue up to n messages: small consecutive ones share packets, large ones
 * are fragmented. Returns how many leading messages were taken (a message
 * is taken whole or not at all), or -EAGAIN (window full: nothing taken),
 * -EMSGSIZE (the first is larger than max_msg), -ENOTCONN. */
int hpn_conn_send(struct hpn_conn *c, struct hpn_conn_msg *msgs, unsigned n, uint64_t now);

/* Raw mode: write the header of a raw datagram carrying a len-byte
 * message into hdr (HPN_PKT_HDR bytes; the payload follows it on the
 * wire, from wherever the owner keeps it). Returns HPN_PKT_HDR, -ENOTCONN
 * (not up, closing) or -EMSGSIZE (more than the peer takes in one). */
int hpn_conn_raw_header(struct hpn_conn *c, uint8_t *hdr, uint32_t len, uint64_t now);

/* Raw mode's receive fast path: buf is a raw datagram of this stream (the
 * checks of hpn_pkt_decode, in three compares): its payload and length,
 * the peer heard from. NULL: anything else - hand it to hpn_conn_input. */
static inline const uint8_t *hpn_conn_raw_payload(struct hpn_conn *c, const uint8_t *buf, size_t len, uint64_t now,
						  uint32_t *plen)
{
	int n;

	if (c->state != HPN_CONN_UP || c->ending || len > c->cfg.mtu ||
	    (n = hpn_pkt_raw_check(buf, len, c->session)) < 0 || (uint32_t)n > c->cfg.max_msg)
		return NULL;
	c->last_rx_ns = now;
	*plen = (uint32_t)n;
	return buf + HPN_PKT_HDR;
}

/* A datagram arrived from this peer. Malformed or stale ones are counted;
 * so is one longer than cfg.mtu (the owner's receive buffers should be
 * no larger). */
void hpn_conn_input(struct hpn_conn *c, const uint8_t *pkt, size_t len, uint64_t now);
/* The same, for a datagram that arrived at `arrived` (<= now; the
 * device's receive time): it waited now - arrived in our queues, which
 * is not the path's delay (the ACK we send reports it as held; an ACK
 * we read has it taken out of congestion control's RTT). */
void hpn_conn_input_at(struct hpn_conn *c, const uint8_t *pkt, size_t len, uint64_t now, uint64_t arrived);

/* The owner has room again: deliver what waits, reopen the window. */
void hpn_conn_kick(struct hpn_conn *c, uint64_t now);

/* Timers: handshake retries, delayed acks, window updates,
 * retransmissions, keepalive, failure. */
void hpn_conn_tick(struct hpn_conn *c, uint64_t now);

/* When hpn_conn_tick next has something to do (UINT64_MAX: nothing but the
 * keepalive), so the owner knows whether it may sleep. */
uint64_t hpn_conn_deadline(const struct hpn_conn *c);

#endif
