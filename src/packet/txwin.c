/* SPDX-License-Identifier: MIT */
/* txwin.c - see txwin.h. */
#include "txwin.h"

#include <string.h>

#define MS 1000000ull

void hpn_txwin_init(struct hpn_txwin *t, uint32_t first, uint32_t size)
{
	uint32_t s = 1;

	while (s < size && s < HPN_TXWIN_MAX)
		s <<= 1;
	memset(t, 0, sizeof(*t));
	t->una = t->snd = t->next = first;
	t->peer_ack_delay_ns = UINT64_MAX;
	t->size = s;
	hpn_cc_init(&t->cc, s, 0, false); /* the owner turns it on (hpn_cc_init again) */
	/* No RTT sample yet: start at 20 ms (datacenter scale, not TCP's 1 s),
	 * never below 200 us, never above 1 s. */
	t->rto_ns = 20 * MS;
	t->rto_min_ns = 200000;
	t->rto_max_ns = 1000 * MS;
}

static inline struct hpn_txpkt *at(struct hpn_txwin *t, uint32_t seq)
{
	return &t->pkt[seq & (t->size - 1)];
}

uint32_t hpn_txwin_queue(struct hpn_txwin *t, void *ref)
{
	uint32_t seq = t->next++;

	*at(t, seq) = (struct hpn_txpkt){.ref = ref};
	return seq;
}

static uint32_t transmit(struct hpn_txwin *t, uint64_t now)
{
	uint32_t seq = t->snd++;
	struct hpn_txpkt *p = at(t, seq);

	/* Send times never go back: RACK orders by them, and a caller's
	 * `now` read before a long run that read the clock again (conn.h,
	 * ops.clock) would stamp later packets as sent earlier - and lost
	 * as soon as the earlier ones were acked. */
	if (now < t->last_tx_ns)
		now = t->last_tx_ns;
	p->sent_ns = now;
	p->xid = t->xid_next++;
	t->last_tx_ns = now;
	t->tlp_out = false; /* new data: a fresh tail */
	return seq;
}

bool hpn_txwin_take(struct hpn_txwin *t, uint64_t now, uint32_t *seq, void **ref)
{
	if (t->snd == t->next || hpn_txwin_pipe(t) >= hpn_cc_window(&t->cc))
		return false;
	*seq = transmit(t, now);
	*ref = at(t, *seq)->ref;
	return true;
}

uint32_t hpn_txwin_push(struct hpn_txwin *t, void *ref, uint64_t now)
{
	hpn_txwin_queue(t, ref);
	return transmit(t, now);
}

/* RFC 6298, in nanoseconds, from packets sent only once (Karn). */
static void rtt_sample(struct hpn_txwin *t, uint64_t rtt)
{
	if (!t->min_rtt_ns || rtt < t->min_rtt_ns)
		t->min_rtt_ns = rtt;
	if (!t->srtt_ns) {
		t->srtt_ns = rtt;
		t->rttvar_ns = rtt / 2;
	} else {
		uint64_t err = rtt > t->srtt_ns ? rtt - t->srtt_ns : t->srtt_ns - rtt;

		t->rttvar_ns = (3 * t->rttvar_ns + err) / 4;
		t->srtt_ns = (7 * t->srtt_ns + rtt) / 8;
	}
	t->rto_ns = t->srtt_ns + 4 * t->rttvar_ns;
	/* Slowly: at 1/64 per sample a ping-pong's pad was gone within a
	 * millisecond, and the next stall probed needlessly again. */
	t->tlp_pad_ns -= t->tlp_pad_ns / 2048;
	/* A widened reordering window narrows again (RFC 8985 6.2 resets
	 * it after 16 recoveries): one needless resend must not slow every
	 * later repair to the timeout. */
	t->reo_ns -= t->reo_ns / 16;
	if (t->rto_ns < t->rto_min_ns)
		t->rto_ns = t->rto_min_ns;
	if (t->rto_ns > t->rto_max_ns)
		t->rto_ns = t->rto_max_ns;
}

/* How long a packet may trail one sent after it before it counts as lost
 * (RACK's reordering window): a quarter of the smallest RTT, widened each
 * time a retransmission proves needless, up to the RTO. */
static inline uint64_t reo_window(const struct hpn_txwin *t)
{
	/* Never below the base quarter: the widened window decays by 1/16
	 * per sample and stalled at 15 ns (15/16 rounds to 0), which, read
	 * as "widened", left RACK no reordering window at all (seen as
	 * reo_ns = 15 in a stream that resent far too much). */
	return t->reo_ns > t->min_rtt_ns / 4 ? t->reo_ns : t->min_rtt_ns / 4;
}

/* What one ack newly acknowledged, for its RTT sample (below). */
struct ack_news {
	const struct hpn_txpkt *newest; /* latest sent, never resent */
	bool resent;                    /* a resent packet was among them */
	uint64_t resent_ns;             /* the latest resend among them */
	uint32_t n;                     /* packets newly acknowledged */
	/* The earliest resend acked no sooner than a round trip, for RACK
	 * once the whole ack is read (resend_delivered). */
	bool cand;
	bool ambiguous; /* a packet resent more than once among them: no candidate */
	uint64_t cand_sent_ns, cand_rtt;
	uint32_t cand_xid;
};

/* Was transmission (sent_ns, xid) sent before the newest delivered one? */
static inline bool rack_before(const struct hpn_txwin *t, uint64_t sent_ns, uint32_t xid)
{
	return t->rack_valid &&
	       (sent_ns < t->acked_sent_ns || (sent_ns == t->acked_sent_ns && (int32_t)(xid - t->acked_xid) < 0));
}

/* Transmission (sent_ns, xid) was delivered: the newest so far? */
static inline bool rack_advance(struct hpn_txwin *t, uint64_t sent_ns, uint32_t xid)
{
	if (t->rack_valid && (rack_before(t, sent_ns, xid) || (sent_ns == t->acked_sent_ns && xid == t->acked_xid)))
		return false;
	t->acked_sent_ns = sent_ns;
	t->acked_xid = xid;
	t->rack_valid = true;
	return true;
}

static void note_acked(struct hpn_txwin *t, struct hpn_txpkt *p, uint32_t seq, uint64_t now, struct ack_news *news)
{
	uint64_t rtt = now - p->sent_ns;

	news->n++;
	if (p->tries) {
		news->resent = true;
		if (p->sent_ns > news->resent_ns)
			news->resent_ns = p->sent_ns;
	}
	else if (!news->newest || p->sent_ns > news->newest->sent_ns)
		news->newest = p;
	if (p->tries && rtt < t->min_rtt_ns) {
		/* Acked sooner than any round trip: probably the original's ack,
		 * and then it says nothing about packets sent after the
		 * original (RFC 8985 6.2): taking the retransmission's time
		 * would declare every packet sent in between lost. Not proof of
		 * a needless resend, though (a fast resend's ack can beat the
		 * handshake's RTT): that is the peer's duplicate report's to
		 * say (hpn_txwin_dup_seen), which widens the reordering window;
		 * widening it here, on a guess, pushed it up to the timeout
		 * and every later repair with it. */
		p->acked = true;
		t->last_ack_ns = now;
		return;
	}
	if (p->tries) {
		/* Judged once the whole ack is read (resend_delivered). During
		 * F-RTO a resent packet's time waits for the verdict: if the
		 * timeout was a delay spike, taking it would declare every
		 * packet sent before it lost. The earliest of them, not the
		 * latest: RETX says some resend arrived new, not which, and
		 * another may be acked by its late original while its resend
		 * is still on the way. Taking the latest's time declared a
		 * window of packets lost that were still queued before it (a
		 * 50 ms stall at 5% loss: 460 needless resends for 154 losses,
		 * test_large_messages_under_loss failing in CI's ASan run).
		 * Whichever arrived was sent no earlier: every packet sent
		 * before the earliest was overtaken. A packet resent twice
		 * keeps only its last send time, and the copy that arrived may
		 * be the first: then the ack says nothing sure (after a stall,
		 * a first resend acked late credited with the second's time
		 * declared the whole window before it lost). */
		if (p->tries > 1)
			news->ambiguous = true;
		if (!t->frto && (!news->cand || p->sent_ns < news->cand_sent_ns ||
				 (p->sent_ns == news->cand_sent_ns && (int32_t)(p->xid - news->cand_xid) < 0))) {
			news->cand = true;
			news->cand_sent_ns = p->sent_ns;
			news->cand_xid = p->xid;
			news->cand_rtt = rtt;
		}
	} else if (rack_advance(t, p->sent_ns, p->xid)) {
		t->rack_rtt_ns = rtt;
	}
	p->acked = true;
	t->last_ack_ns = now;
	t->tlp_out = false;
}

/*
 * Was it the resend that arrived, or its original, late? A packet and
 * its resend carry the same sequence number, so the ack alone cannot say.
 * RFC 8985 6.2 guesses by "sooner than the minimum RTT", which fails when
 * the minimum is the empty path's and the originals wait milliseconds in
 * the receiver's queue behind a large message: a reordered original acked
 * 1 ms after its needless resend declared the 600 packets of the message
 * still queued lost. So the receiver says it (an ACK with RETX: a resend
 * arrived that it did not have), as TCP's timestamps or QUIC's fresh
 * packet numbers would. Only then does RACK take the resend's time - and
 * its RTT, the newest delivery's, so a lost resend is found a round trip
 * after a later one is acked, not at the backed-off timeout.
 */
static void resend_delivered(struct hpn_txwin *t, const struct ack_news *news)
{
	if (t->peer_got_resend && !news->ambiguous && rack_advance(t, news->cand_sent_ns, news->cand_xid))
		t->rack_rtt_ns = news->cand_rtt;
}

/* The loss verdict: RACK may now use the resend's time. */
static void frto_loss(struct hpn_txwin *t, uint64_t now)
{
	t->frto = 0;
	rack_advance(t, t->frto_sent_ns, t->frto_xid);
	hpn_cc_timeout(&t->cc, now);
}

/* F-RTO's decision, one ack at a time (see txwin.h). `originals`: the
 * ack newly acknowledged packets never resent - sent before the timeout,
 * still arriving: the path was slow, not lossy. Packets the peer had
 * selectively acked before are no news (a cumulative ack that jumps over
 * them after the resend fills the hole says nothing of a delay). */
static void frto_verdict(struct hpn_txwin *t, bool originals, bool fast, uint64_t now)
{
	if (originals || fast) {
		t->frto = 0; /* originals arrived, or the resend's ack came too soon: a delay */
		t->spurious++;
		return;
	}
	if (t->frto == 1) {
		if (hpn_seq_lt(t->frto_seq, t->una) || at(t, t->frto_seq)->acked) {
			t->frto = 2; /* the resend is acked: one more ack decides */
			t->frto_ns = now;
		}
		return;
	}
	frto_loss(t, now);
}

int hpn_txwin_ack(struct hpn_txwin *t, uint32_t cum, const uint64_t *mask, unsigned words, uint64_t now,
		  void (*release)(void *arg, void *ref), void *arg)
{
	int released = 0;
	struct ack_news news = {0};
	bool fast = false;
	bool limited = t->snd != t->next || hpn_txwin_pipe(t) + 1 >= hpn_cc_window(&t->cc);

	if (hpn_seq_lt(t->snd, cum))
		return -1; /* acknowledges what was never sent */
	/* The resend acked sooner than any round trip: the original was. */
	if (t->frto == 1 && hpn_seq_lt(t->frto_seq, cum) && !hpn_seq_lt(t->frto_seq, t->una))
		fast = now - at(t, t->frto_seq)->sent_ns < t->min_rtt_ns;
	while (hpn_seq_lt(t->una, cum)) {
		struct hpn_txpkt *p = at(t, t->una);

		if (p->acked)
			t->sacked--;
		else
			note_acked(t, p, t->una, now, &news);
		release(arg, p->ref);
		p->ref = NULL;
		t->una++;
		released++;
	}
	for (unsigned w = 0; w < words; w++) {
		uint64_t m = mask[w];

		for (uint32_t i = 0; m; i++, m >>= 1) {
			uint32_t seq = cum + 1 + 64 * w + i;

			/* Only the window: a late, older ack must not touch a slot
			 * that a newer packet uses now. */
			if (!(m & 1) || !hpn_seq_lt(seq, t->snd) || hpn_seq_lt(seq, t->una))
				continue;
			if (!at(t, seq)->acked) {
				note_acked(t, at(t, seq), seq, now, &news);
				t->sacked++;
			}
		}
	}
	/* One RTT sample per ack, from the newest packet it acknowledges -
	 * and none when it also acknowledges a resent one: then it is the
	 * answer to a filled hole, and the packets behind the hole waited
	 * for it (their "RTT" is the repair time; taking it inflated the
	 * RTO to a second under loss). Karn's rule, as Linux applies it. */
	if (news.newest && !news.resent)
		rtt_sample(t, now - news.newest->sent_ns);
	if (news.cand)
		resend_delivered(t, &news);
	/* Congestion control needs samples most when a queue overflows and
	 * every ack covers a repaired hole: a packet sent after the last
	 * repair it covers did not wait for it - its RTT is the path's. The
	 * peer's ack delay is taken out (QUIC's ack_delay): a stream with a
	 * small window is acked by the peer's timer, one with a large window
	 * by its count, and the difference looked like a queue to one of
	 * them only (two streams then never shared). */
	if (news.n) {
		uint64_t rtt = 0;

		if (news.newest && (!news.resent || news.newest->sent_ns > news.resent_ns) &&
		    t->peer_ack_delay_ns != UINT64_MAX) {
			rtt = now - news.newest->sent_ns;
			rtt = rtt > t->peer_ack_delay_ns ? rtt - t->peer_ack_delay_ns : 1;
		}
		hpn_cc_acked(&t->cc, news.n, rtt, limited, now);
	}
	/* A round trip: from a transmission to the ack of one sent after it. */
	if (news.newest && (int32_t)(news.newest->xid - t->round_xid) >= 0) {
		hpn_cc_round(&t->cc, now);
		t->round_xid = t->xid_next;
	}
	if (t->frto && news.n)
		frto_verdict(t, news.newest != NULL, fast, now);
	return released;
}

/* RACK: lost once a packet sent after it was delivered and it has had
 * that packet's round trip plus the reordering window to arrive. */
static inline uint64_t rack_due(const struct hpn_txwin *t, const struct hpn_txpkt *p)
{
	if (!rack_before(t, p->sent_ns, p->xid))
		return UINT64_MAX;
	return p->sent_ns + t->rack_rtt_ns + reo_window(t);
}

/* The RTO runs from the packet's (re)transmission or the last ack that
 * brought news, whichever is later (RFC 6298 5.3: restart on progress):
 * while the peer keeps acknowledging, losses are RACK's to find, and a
 * window of packets behind one loss does not time out all at once. */
static inline uint64_t rto_due(const struct hpn_txwin *t, const struct hpn_txpkt *p)
{
	/* Each timeout of this packet doubles the wait (backoff); resends
	 * RACK decided do not. */
	uint64_t rto = t->rto_ns << (p->rtos < 10 ? p->rtos : 10);
	uint64_t base = p->sent_ns > t->last_ack_ns ? p->sent_ns : t->last_ack_ns;

	return base + (rto > t->rto_max_ns ? t->rto_max_ns : rto);
}

/* When the tail loss probe is due (UINT64_MAX: none): packets out, no
 * probe out yet, an RTT known, and before the timeout would act. */
static uint64_t tlp_time(const struct hpn_txwin *t)
{
	uint64_t pto;

	if (t->tlp_out || t->frto || !t->srtt_ns || !hpn_seq_lt(t->una, t->snd))
		return UINT64_MAX;
	pto = 2 * t->srtt_ns + t->tlp_extra_ns + t->tlp_pad_ns;
	if (pto >= t->rto_ns)
		return UINT64_MAX; /* the timeout comes first anyway */
	return t->last_tx_ns + pto;
}

static bool tlp_due(const struct hpn_txwin *t, uint64_t now)
{
	return now >= tlp_time(t);
}

void hpn_txwin_rtt_hint(struct hpn_txwin *t, uint64_t rtt)
{
	if (!rtt)
		rtt = 1;
	if (!t->srtt_ns)
		rtt_sample(t, rtt); /* also the first RTO (RFC 6298 allows the handshake's) */
	else if (rtt < t->min_rtt_ns)
		t->min_rtt_ns = rtt;
}

void hpn_txwin_dup_seen(struct hpn_txwin *t)
{
	uint64_t pad = 2 * t->tlp_pad_ns + t->srtt_ns, w = 2 * reo_window(t);

	/* A resend was needless: the path reorders more than we allowed
	 * (RFC 8985 7.2 widens on DSACK), up to a smoothed round trip. */
	t->reo_ns = w < t->srtt_ns ? w : t->srtt_ns;
	t->spurious++;
	/* With nothing left outstanding it was our last resend - a probe,
	 * mostly - that was needless: probe later. With holes left, the
	 * probe did its job (drawing the SACK that repairs them). A probe
	 * sent since the last report counts too: in a ping-pong the peer's
	 * answer acks the original, the next request goes out, and only then
	 * does the report of the probe's duplicate arrive - with a packet
	 * outstanding again (the pad never grew, and 0.2-1 % of a clean
	 * ping-pong's packets were needless probes). */
	if (t->una == t->snd || t->tlp_recent)
		t->tlp_pad_ns = pad < t->rto_min_ns ? pad : t->rto_min_ns;
	t->tlp_recent = false;
}

bool hpn_txwin_resend(struct hpn_txwin *t, uint64_t now, uint32_t *seq, void **ref)
{
	struct hpn_txpkt *pick = NULL;
	uint32_t pick_seq = 0;
	bool sacked_una = false;

	uint32_t s = t->una;

	if (tlp_due(t, now)) {
		struct hpn_txpkt *last = at(t, t->snd - 1);

		if (!last->acked) {
			t->tlp_out = true;
			t->tlp_recent = true;
			t->last_tx_ns = now;
			last->tries++;
			last->sent_ns = now;
			last->xid = t->xid_next++;
			t->retransmits++;
			*seq = t->snd - 1;
			*ref = last->ref;
			return true;
		}
		t->tlp_out = true;
	}
	/* F-RTO waiting for one more ack: a round trip of silence is a loss. */
	if (t->frto == 2 && now - t->frto_ns >= t->rack_rtt_ns + reo_window(t))
		frto_loss(t, now);
	/* Same now: the packets before the last pick were not due, or were
	 * just resent (their times moved past now). */
	if (now == t->scan_ns && hpn_seq_lt(t->una, t->scan_seq))
		s = t->scan_seq;
	for (; hpn_seq_lt(s, t->snd); s++) {
		struct hpn_txpkt *p = at(t, s);

		/* A selective ack is the peer's word, not delivery: the oldest
		 * packet selectively acked times out all the same, and goes
		 * again (RFC 2018 keeps such data until the cumulative ack; Linux
		 * clears its marks on a timeout). A truthful peer's cumulative
		 * ack soon follows its SACK; a forged SACK of a lost packet
		 * otherwise wedged the stream for good, never resent. */
		if (p->acked) {
			if (s != t->una || now < rto_due(t, p))
				continue;
			p->acked = false;
			t->sacked--;
			sacked_una = true;
		}
		/* The timeout resends only the oldest packet (TCP's one timer):
		 * a peer that merely stalled costs one spurious packet, not a
		 * window of them; once it is acked, RACK finds any others. */
		if (now >= rack_due(t, p) || (s == t->una && now >= rto_due(t, p))) {
			pick = p;
			pick_seq = s;
			break;
		}
	}
	t->scan_ns = now;
	t->scan_seq = s;
	if (!pick)
		return false;
	bool timeout = pick_seq == t->una && (sacked_una || now < rack_due(t, pick)); /* not RACK */

	if (now < t->last_tx_ns)
		now = t->last_tx_ns; /* never back in time (transmit) */
	if (timeout) {
		if (pick->rtos < UINT8_MAX)
			pick->rtos++;
		t->frto = 1;
		t->frto_seq = pick_seq;
		t->frto_sent_ns = now;
		t->frto_xid = t->xid_next; /* the number the resend gets below */
	}
	pick->tries++;
	pick->sent_ns = now;
	pick->xid = t->xid_next++;
	t->last_tx_ns = now;
	t->retransmits++;
	*seq = pick_seq;
	*ref = pick->ref;
	return true;
}

uint64_t hpn_txwin_deadline(const struct hpn_txwin *t)
{
	uint64_t best = t->frto == 2 ? t->frto_ns + t->rack_rtt_ns + reo_window(t) : tlp_time(t);

	if (t->snd != t->next && hpn_txwin_pipe(t) < hpn_cc_window(&t->cc))
		return 0; /* a queued packet may go now */
	for (uint32_t s = t->una; hpn_seq_lt(s, t->snd); s++) {
		const struct hpn_txpkt *p = &t->pkt[s & (t->size - 1)];
		uint64_t d;

		if (p->acked) {
			if (s == t->una && rto_due(t, p) < best)
				best = rto_due(t, p); /* it times out all the same (hpn_txwin_resend) */
			continue;
		}
		d = rack_due(t, p);
		if (s == t->una && rto_due(t, p) < d)
			d = rto_due(t, p);
		if (d < best)
			best = d;
	}
	return best;
}
