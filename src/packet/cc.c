/* SPDX-License-Identifier: MIT */
/* cc.c - see cc.h. */
#include "cc.h"

#define FP 256u                        /* one packet */
#define EPOCH_NS 10000000000ull        /* base RTT window: 10 s (BBR's min_rtt filter) */
#define PROBE_MIN_NS 20000000ull       /* base RTT probes at most every 20 ms */
#define PROBE_MIN_ROUNDS 100           /* and every 100 round trips */

void hpn_cc_init(struct hpn_cc *cc, uint32_t max_pkts, uint64_t target_ns, bool on)
{
	*cc = (struct hpn_cc){.max = max_pkts * FP, .cwnd = max_pkts * FP, .on = on,
			      .target_ns = target_ns ? target_ns : HPN_CC_TARGET_NS};
}

static void set_cwnd(struct hpn_cc *cc, uint64_t w)
{
	if (w < HPN_CC_MIN * FP)
		w = HPN_CC_MIN * FP;
	if (w > cc->max)
		w = cc->max;
	cc->cwnd = (uint32_t)w;
}

/* Shrink by `keep` (of 1024). */
static void cut(struct hpn_cc *cc, uint32_t keep)
{
	set_cwnd(cc, (uint64_t)cc->cwnd * keep / 1024);
}

static void base_sample(struct hpn_cc *cc, uint64_t rtt, uint64_t now)
{
	if (now - cc->epoch_ns >= EPOCH_NS) {
		cc->base_prev_ns = cc->base_ns;
		cc->base_ns = 0;
		cc->epoch_ns = now;
	}
	if (!cc->base_ns || rtt < cc->base_ns)
		cc->base_ns = rtt;
}

static uint64_t base_rtt(const struct hpn_cc *cc)
{
	return cc->base_prev_ns && cc->base_prev_ns < cc->base_ns ? cc->base_prev_ns : cc->base_ns;
}

static uint64_t isqrt(uint64_t x)
{
	uint64_t r = 0, bit = 1ull << 62;

	while (bit > x)
		bit >>= 2;
	for (; bit; bit >>= 2) {
		if (x >= r + bit) {
			x -= r + bit;
			r = (r >> 1) + bit;
		} else {
			r >>= 1;
		}
	}
	return r;
}

/* Swift's flow scaling: the fewer packets a stream has out, the more
 * delay it is allowed - FS_RANGE more at the minimum window, falling
 * with 1/sqrt(window) to nothing at FS_MAX packets. A small window is
 * where a stream's own share of any delay is smallest, so a delay it
 * sees there says least about its own queue; and it is where the hosts'
 * noise is largest beside the target (an application that polls every
 * 11 ms, slowed 5-15x by ThreadSanitizer, sees 100-250 us of it at two
 * packets: against a flat 100 us target the window random-walked down
 * to two and 1 MiB messages crawled, 13 of 20 in 120 s; with this, the
 * two-round cut and probes counted in rounds, all 20 in 28 s - cc=off
 * takes 4 s there, so a slowed host still costs). It also gives small
 * streams more room than large ones, so they converge (Swift's reason;
 * the simulated bottleneck of test_cc went from 41/57 % to 47/51 %). */
#define FS_MAX 128 /* packets */
#define FS_RANGE(cc) (4 * (cc)->target_ns)

static uint64_t flow_scaling(const struct hpn_cc *cc)
{
	/* 1/sqrt(w) - 1/sqrt(FS_MAX), in 1/2^16ths, against the same at HPN_CC_MIN. */
	uint64_t w = cc->cwnd >> 8, top = (1ull << 32) / isqrt((uint64_t)FS_MAX << 32);
	uint64_t at = (1ull << 32) / isqrt(w << 32), full = (1ull << 32) / isqrt((uint64_t)HPN_CC_MIN << 32);

	if (w >= FS_MAX)
		return 0;
	return FS_RANGE(cc) * (at - top) / (full - top);
}

static uint64_t target_rtt(const struct hpn_cc *cc, uint64_t base)
{
	return base + (base / 2 > cc->target_ns ? base / 2 : cc->target_ns) + flow_scaling(cc);
}

void hpn_cc_acked(struct hpn_cc *cc, uint32_t acked, uint64_t rtt_ns, bool limited, uint64_t now)
{
	if (!cc->on)
		return;
	if (rtt_ns) {
		base_sample(cc, rtt_ns, now);
		if (rtt_ns <= base_rtt(cc) + base_rtt(cc) / 8)
			cc->fresh_ns = now; /* the queue was (nearly) empty */
		cc->round_sum_ns += rtt_ns;
		cc->round_samples++;
	}
	/* Grow only when the window is what limits the stream (an
	 * application that sends little must not earn a window it never
	 * tested, RFC 7661), and not while the last round trip saw a queue. */
	if (!limited || cc->queued)
		return;
	set_cwnd(cc, (uint64_t)cc->cwnd + (uint64_t)acked * FP * FP / cc->cwnd);
}

/* The delay verdict of a round trip, from the mean of its RTT samples:
 * a queue delays the packets of the round, jitter (reordering, a stalled
 * thread) only a few, which moves the mean little - judged per sample,
 * jitter alone held a window at its minimum; judged by the round's
 * smallest sample, a queue that fills and empties every round (a window
 * far above the path's, blocked behind each loss) was never seen. */
static void judge_delay(struct hpn_cc *cc)
{
	uint64_t base = base_rtt(cc), rtt, target;
	uint32_t n = cc->round_samples;

	cc->queued = false;
	rtt = n ? cc->round_sum_ns / n : 0;
	cc->round_sum_ns = 0;
	cc->round_samples = 0;
	/* The round after a cut still carries the acks of packets sent
	 * before it: the queue the cut is for. Judged again, it would be cut
	 * twice and the link would run dry. */
	if (cc->hold) {
		cc->hold = false;
		return;
	}
	if (!n)
		return;
	target = target_rtt(cc, base);
	if (rtt <= target) {
		cc->suspect = false;
		return;
	}
	cc->queued = true;
	/* A queue delays two rounds in a row; one round's mean over one or
	 * two samples is often one late ACK (a receive that took no arrival
	 * stamp; a thread descheduled), and halving the window for each of
	 * those held an 11 ms poll loop's stream near two packets. So the
	 * first round over target only stops growth; the second cuts. */
	if (!cc->suspect) {
		cc->suspect = true;
		return;
	}
	cc->suspect = false;
	/* Down to what the path holds without a queue, rate x base RTT =
	 * window x base / rtt, so the queue drains completely: Swift keeps
	 * the part of the queue below its target, but a standing queue is
	 * what a stream that starts later takes for the path's base RTT - it
	 * then aims higher and takes the link (measured here: 88% to 10%).
	 * An empty queue once per cycle shows every stream the true base.
	 * At most half at once: one sample's jitter is not a reason for more. */
	uint64_t keep = 1024 * base / rtt;

	cut(cc, (uint32_t)(keep < 512 ? 512 : keep));
	cc->hold = true;
	cc->cuts_delay++;
}

/* The base RTT is only as good as the emptiest queue a stream has seen.
 * One that started behind another's standing queue takes part of it for
 * the path, aims higher and keeps the other at its minimum for good
 * (measured here: 93% to 5%) - the latecomer problem of delay-based
 * control (Vegas, LEDBAT). So a stream that has not seen a nearly empty
 * queue for 500 base RTTs (at least 20 ms) drains its own share for two
 * round trips (BBR's ProbeRTT, LEDBAT++'s slowdown), letting every
 * stream on the path see the true base; it costs a stream that is alone
 * nothing (it sees empty queues after each cut) and one that shares
 * about 0.4% of its time. */
static bool probe_base(struct hpn_cc *cc, uint64_t now)
{
	uint64_t every = 500 * base_rtt(cc);

	if (cc->probing) {
		if (!--cc->probing)
			cc->cwnd = cc->saved;
		return true;
	}
	if (!cc->fresh_ns)
		cc->fresh_ns = now;
	/* In round trips too: an application that polls every 11 ms makes
	 * round trips of 11 ms, and probing every 20 ms kept it at the
	 * minimum window a third of the time. */
	cc->rounds_since_probe++;
	if (now - cc->fresh_ns < (every > PROBE_MIN_NS ? every : PROBE_MIN_NS) ||
	    cc->rounds_since_probe < PROBE_MIN_ROUNDS)
		return false;
	cc->rounds_since_probe = 0;
	cc->probing = 2;
	cc->saved = cc->cwnd;
	cc->cwnd = HPN_CC_MIN * FP;
	cc->fresh_ns = now;
	cc->probes++;
	return true;
}

void hpn_cc_round(struct hpn_cc *cc, uint64_t now)
{
	if (!cc->on)
		return;
	if (probe_base(cc, now)) {
		cc->round_sum_ns = 0;
		cc->round_samples = 0;
		cc->queued = true; /* no growth while draining */
		return;
	}
	judge_delay(cc);
}

void hpn_cc_base_hint(struct hpn_cc *cc, uint64_t rtt_ns, uint64_t now)
{
	if (rtt_ns)
		base_sample(cc, rtt_ns, now);
}

void hpn_cc_timeout(struct hpn_cc *cc, uint64_t now)
{
	if (!cc->on)
		return;
	(void)now;
	cut(cc, 512);
	cc->cuts_rto++;
}
