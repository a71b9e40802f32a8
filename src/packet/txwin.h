/* SPDX-License-Identifier: MIT */
/*
 * txwin.h - the send side of the reliable packet layer (issue 5, second
 * piece): sequence numbers, the window of unacknowledged packets, what the
 * acks say, and when to retransmit. Like rxwin.h it has no clock and no
 * socket of its own: the caller passes `now` and does the sending, so the
 * whole state machine runs under a virtual clock in the tests.
 *
 * Loss recovery (TCP's, shrunk to packets): cumulative + selective acks
 * release packets; a packet is fast-retransmitted once a packet sent after
 * it was delivered and a round trip plus a reordering window has passed
 * (RACK, RFC 8985: time, not a duplicate count, so reordering costs no
 * spurious retransmissions once the window has learned it); anything
 * unacked for an RTO (RFC 6298 estimate,
 * Karn's rule, exponential backoff) is retransmitted. Whether the peer is
 * alive is not the window's question: a peer that acknowledges nothing
 * may still be speaking (a closed window, a slow reader), so only the
 * connection, which sees everything the peer sends, judges liveness
 * (conn.c: silence for its timeout).
 */
#ifndef HPN_PACKET_TXWIN_H
#define HPN_PACKET_TXWIN_H

#include "cc.h"
#include "rxwin.h"

#include <stdbool.h>
#include <stdint.h>

#define HPN_TXWIN_MAX 1024

struct hpn_txpkt {
	void *ref;        /* the caller's packet */
	uint64_t sent_ns; /* last (re)transmission */
	uint16_t tries;   /* retransmissions so far */
	uint8_t rtos;     /* of them by the timeout: its backoff (RACK's resends do not back off) */
	uint32_t xid;     /* transmission number: orders sends of one clock read */
	bool acked;       /* selectively acked, waiting for the cumulative ack */
};

struct hpn_txwin {
	uint32_t una;   /* oldest unacknowledged sequence number */
	uint32_t snd;   /* next to transmit: [snd, next) are queued, not yet sent */
	uint32_t next;  /* next sequence number to assign */
	uint32_t size;  /* window: at most this many unacknowledged (power of two) */
	uint32_t sacked; /* selectively acked in [una, snd) */
	/* Congestion control (cc.h): packets on the network, snd - una -
	 * sacked, stay within its window; a round trip ends when an ack
	 * covers transmission round_xid or later. */
	struct hpn_cc cc;
	uint32_t round_xid;
	/* Set by the owner before hpn_txwin_ack: how long the peer held the
	 * ack (an ACK packet says; UINT64_MAX: unknown - a piggybacked ack
	 * waited for the peer's own data, and its RTT says nothing of the
	 * path). Congestion control takes only RTTs without it. */
	uint64_t peer_ack_delay_ns;
	/* Set by the owner before hpn_txwin_ack: the ACK says a resend of
	 * ours arrived as new (RETX), so resends it acknowledges were not
	 * late originals (resend_delivered, txwin.c). */
	bool peer_got_resend;
	uint64_t srtt_ns, rttvar_ns, rto_ns, rto_min_ns, rto_max_ns;
	uint64_t retransmits, spurious;
	/* RACK (RFC 8985): the latest send time among delivered packets, that
	 * packet's RTT, the smallest RTT seen, and the reordering window. */
	uint64_t acked_sent_ns, rack_rtt_ns, min_rtt_ns, reo_ns;
	/* ...and that transmission's number: packets of one burst share a
	 * send time (one clock read per burst), so every transmission gets a
	 * number and ties break by it (RFC 8985 breaks them by sequence; a
	 * counter also orders a resend after everything sent before it, so
	 * a packet resent at `now` is never due again at `now`). */
	uint32_t acked_xid, xid_next;
	bool rack_valid;
	uint64_t last_ack_ns; /* the last ack that acknowledged something new */
	/* F-RTO (RFC 5682): after a timeout resent frto_seq, the acks tell a
	 * delay spike from a loss. A delay: the ack of the resend covers
	 * packets never resent, or came sooner than a round trip, or the next
	 * ack brings more originals. A loss: the next ack (or a round trip of
	 * silence) brings nothing new; only then may RACK resend what was
	 * sent before the resend. frto: 0 off, 1 waiting for the resend's
	 * ack, 2 waiting for one more. */
	uint8_t frto;
	uint32_t frto_seq, frto_xid;
	uint64_t frto_sent_ns, frto_ns;
	/* Tail loss probe (RFC 8985 7): when nothing comes back for two
	 * round trips plus the peer's ack delay after the last send, resend
	 * the newest packet once: its ack (or its SACK) lets RACK repair a
	 * lost tail - a lost request, a lost last message - in microseconds
	 * instead of a timeout. tlp_extra_ns: the peer's ack delay. */
	uint64_t last_tx_ns, tlp_extra_ns;
	/* Added to the probe timeout after needless retransmissions (the
	 * peer reported duplicates): on a host where threads stall longer
	 * than two round trips, probes slow down instead of doubling packets;
	 * it shrinks again by 1/2048 per RTT sample. At most rto_min_ns. */
	uint64_t tlp_pad_ns;
	bool tlp_out; /* a probe is out: no other until an ack brings news */
	bool tlp_recent; /* a probe went out since the peer last reported a duplicate */
	/* hpn_txwin_resend called again with the same now resumes its scan
	 * here: a loop over all due packets is one pass, not one per packet. */
	uint64_t scan_ns;
	uint32_t scan_seq;
	struct hpn_txpkt pkt[HPN_TXWIN_MAX];
};

void hpn_txwin_init(struct hpn_txwin *t, uint32_t first, uint32_t size);

/* Room for another packet? (false: back-pressure, -EAGAIN to the app) */
static inline bool hpn_txwin_can_send(const struct hpn_txwin *t)
{
	return t->next - t->una < t->size;
}

/* The ref queued with packet seq (hpn_txwin_queue). */
static inline void *hpn_txwin_ref(const struct hpn_txwin *t, uint32_t seq)
{
	return t->pkt[seq & (t->size - 1)].ref;
}

static inline uint32_t hpn_txwin_inflight(const struct hpn_txwin *t)
{
	return t->next - t->una;
}

/* Packets on the network: sent, not known delivered (lost ones count
 * until their retransmission is acked: they are resent at once). */
static inline uint32_t hpn_txwin_pipe(const struct hpn_txwin *t)
{
	return t->snd - t->una - t->sacked;
}

/* Queue a packet: it gets its sequence number now and goes out when the
 * congestion window lets it (hpn_txwin_take). */
uint32_t hpn_txwin_queue(struct hpn_txwin *t, void *ref);

/* The next queued packet, if the congestion window has room: marked sent
 * now. */
bool hpn_txwin_take(struct hpn_txwin *t, uint64_t now, uint32_t *seq, void **ref);

/* Record a packet being sent now, whatever the congestion window says
 * (nothing may be queued); returns its sequence number. */
uint32_t hpn_txwin_push(struct hpn_txwin *t, void *ref, uint64_t now);

/* An ack arrived (rxwin's cum and sack words, hpn_rxwin_sack). Calls release(arg, ref) for every
 * packet now known delivered, oldest first. Returns the number released; -1 if the ack is nonsense
 * (acknowledges packets never sent): drop it. */
int hpn_txwin_ack(struct hpn_txwin *t, uint32_t cum, const uint64_t *mask, unsigned words, uint64_t now,
		  void (*release)(void *arg, void *ref), void *arg);

/* The peer received a packet twice: one of our retransmissions was
 * needless. RACK allows more reordering; with nothing outstanding (a
 * needless probe), probes wait longer from now on (tlp_pad_ns). */
void hpn_txwin_dup_seen(struct hpn_txwin *t);
/* An RTT measured outside the data (the handshake, a PING): the path's
 * before any queue. Seeds the estimate when there is none and lowers the
 * minimum RTT, which judges whether a resend was needless: taken from
 * data alone, a large message's packets wait behind each other at the
 * receiver and the "minimum" is milliseconds on loopback. */
void hpn_txwin_rtt_hint(struct hpn_txwin *t, uint64_t rtt);

/* Next packet to retransmit now (the oldest that RACK deems lost or whose
 * RTO expired, or the tail loss probe), or false. Updates its send time
 * and counts the try. */
bool hpn_txwin_resend(struct hpn_txwin *t, uint64_t now, uint32_t *seq, void **ref);

/* Earliest time something needs retransmitting, or a queued packet may
 * go (for the caller's timer); UINT64_MAX when nothing is in flight. */
uint64_t hpn_txwin_deadline(const struct hpn_txwin *t);

#endif
