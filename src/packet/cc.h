/* SPDX-License-Identifier: MIT */
/*
 * cc.h - congestion control of the reliable packet layer: how many new
 * packets a stream may have on the network, in packets. Like txwin.h it
 * has no clock: the caller passes `now`, so it runs under the tests'
 * virtual clock.
 *
 * Delay-based, after Swift (Kumar et al., SIGCOMM 2020), because hpn's
 * paths are short and its users care about the queue, not only the rate:
 *  - a stream starts with its whole send window (the first burst goes at
 *    line rate, as datacenter transports send their first BDP unscheduled;
 *    no slow start costs the first messages round trips);
 *  - the signal is queueing delay, the RTT above the path's base RTT (a
 *    windowed minimum; its first sample is the handshake's, taken before
 *    the first burst can queue - a stream that starts with a full window
 *    would otherwise take its own standing queue for the path). Above a target the window shrinks to what the path
 *    holds without a queue, at most by half, at most once per round trip;
 *    below it, it grows by one packet per round trip. A queue is seen while it builds, not
 *    when it overflows, so a stream keeps the bottleneck busy with a
 *    small standing queue and two streams converge to equal shares
 *    (additive increase, multiplicative decrease);
 *  - the delay of a round trip is the mean of its samples: a queue delays
 *    the packets of the round, jitter (reordering, a stalled thread) only
 *    a few;
 *  - loss is not a signal, except a retransmission timeout (which halves
 *    the window): random loss does not shrink it - loss-based control
 *    (Reno, CUBIC) holds a 1%-lossy stream to a few packets per round trip
 *    (Mathis) - and neither does reordering, which RACK cannot tell from
 *    loss until later (a loss-rate signal tried here cut a 10%-reordered
 *    stream to 3 packets). A queue shows as delay long before it
 *    overflows: 100 us is a few packets at 1 Gb/s, where switch buffers
 *    and socket buffers hold milliseconds.
 * The delay it must see is the path's, not the hosts': an application
 * busy for 300 us checking a 1 MiB message leaves packets in its socket
 * buffer, and that reads as a queue no cut can drain (64 KiB and 1 MiB
 * loopback streams lost 25% and 42% of their throughput to it). So the
 * time a packet waited after it reached the host is taken out: a
 * receiver reports in its ACK how long it held it since the kernel
 * received the DATA (SO_TIMESTAMPNS, not since it read it), and the
 * sender takes out the time the ACK waited in its own socket buffer.
 * Left is the path and the sending side's batches: a sendmmsg of 64
 * packets is ~100 us on loopback, so the target is 100 us (50 us cost
 * 8% of a 1 MiB stream there); clean loopback streams then run at 97%
 * of cc=off. What the timestamps cannot take out - a slow host's noise,
 * one late ACK - is met by a larger target at small windows (Swift's
 * flow scaling), a cut only after two rounds over target, and probes no
 * more often than every 100 round trips (cc.c). On by default in
 * reliable mode where arrivals are stamped (udp; off on af_xdp and dpdk,
 * which stamp nothing: pktep.c); cc=off for dedicated links: the window then sits at its
 * maximum and only the peer's flow control limits a stream.
 */
#ifndef HPN_PACKET_CC_H
#define HPN_PACKET_CC_H

#include <stdbool.h>
#include <stdint.h>

#define HPN_CC_MIN 2          /* packets: below this there is nothing to clock acks */
#define HPN_CC_TARGET_NS 100000 /* default queueing-delay target floor (100 us) */

struct hpn_cc {
	uint32_t cwnd;      /* packets << 8 (fractions from additive increase) */
	uint32_t max;       /* packets << 8: the send window */
	bool on;
	uint64_t target_ns;  /* queueing delay allowed: max(this, base RTT / 2) */
	/* The base RTT: the smallest sample of this epoch and the last one,
	 * so a route that lengthens is learnt within two epochs. */
	uint64_t base_ns, base_prev_ns, epoch_ns;
	bool hold; /* cut: the next round's verdict is about the old queue */
	/* Base RTT probes (cc.c): when a nearly empty queue was last seen;
	 * rounds of a probe left, and the window to return to. */
	uint64_t fresh_ns;
	uint8_t probing;
	uint32_t saved;
	uint64_t round_sum_ns;  /* this round trip's RTT samples: their sum, */
	uint32_t round_samples; /* and how many */
	bool queued;           /* the last round trip's verdict: a queue, do not grow */
	bool suspect;          /* the round before it saw one too: a second is a queue */
	uint32_t rounds_since_probe;
	/* Counters: cuts for delay, for timeouts; base RTT probes. */
	uint64_t cuts_delay, cuts_rto, probes;
};

/* max_pkts: the send window (the most the stream can ever have out).
 * target_ns: 0 for the default. */
void hpn_cc_init(struct hpn_cc *cc, uint32_t max_pkts, uint64_t target_ns, bool on);

/* Packets the window allows on the network. */
static inline uint32_t hpn_cc_window(const struct hpn_cc *cc)
{
	return cc->cwnd >> 8;
}

/* An ack newly acknowledged `acked` packets; rtt_ns its RTT sample (0:
 * none, e.g. it acknowledged a retransmission); limited: the stream had
 * a full window out (growth is earned only then). */
void hpn_cc_acked(struct hpn_cc *cc, uint32_t acked, uint64_t rtt_ns, bool limited, uint64_t now);

/* A round trip ended (an ack covered a packet sent after the round
 * began): judge its delay. */
void hpn_cc_round(struct hpn_cc *cc, uint64_t now);

/* An RTT measured outside the data stream (the handshake, a PING): an
 * empty path's, before the first burst queues. Its base RTT from then. */
void hpn_cc_base_hint(struct hpn_cc *cc, uint64_t rtt_ns, uint64_t now);

/* The retransmission timeout fired and F-RTO found a real loss. */
void hpn_cc_timeout(struct hpn_cc *cc, uint64_t now);

#endif
