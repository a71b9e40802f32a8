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
	t->una = t->next = first;
	t->size = s;
	t->dupthresh = 3;
	t->dead_ns = 1000 * MS;
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

uint32_t hpn_txwin_push(struct hpn_txwin *t, void *ref, uint64_t now)
{
	uint32_t seq = t->next++;

	*at(t, seq) = (struct hpn_txpkt){.ref = ref, .sent_ns = now, .first_ns = now};
	return seq;
}

/* RFC 6298, in nanoseconds, from packets sent only once (Karn). */
static void rtt_sample(struct hpn_txwin *t, uint64_t rtt)
{
	if (!t->srtt_ns) {
		t->srtt_ns = rtt;
		t->rttvar_ns = rtt / 2;
	} else {
		uint64_t err = rtt > t->srtt_ns ? rtt - t->srtt_ns : t->srtt_ns - rtt;

		t->rttvar_ns = (3 * t->rttvar_ns + err) / 4;
		t->srtt_ns = (7 * t->srtt_ns + rtt) / 8;
	}
	t->rto_ns = t->srtt_ns + 4 * t->rttvar_ns;
	if (t->rto_ns < t->rto_min_ns)
		t->rto_ns = t->rto_min_ns;
	if (t->rto_ns > t->rto_max_ns)
		t->rto_ns = t->rto_max_ns;
}

int hpn_txwin_ack(struct hpn_txwin *t, uint32_t cum, uint64_t mask, uint64_t now,
		  void (*release)(void *arg, void *ref), void *arg)
{
	int released = 0;

	if (hpn_seq_lt(t->next, cum))
		return -1; /* acknowledges what was never sent */
	while (hpn_seq_lt(t->una, cum)) {
		struct hpn_txpkt *p = at(t, t->una);

		if (!p->tries && !p->acked)
			rtt_sample(t, now - p->sent_ns);
		if (p->sent_ns > t->acked_sent_ns)
			t->acked_sent_ns = p->sent_ns;
		release(arg, p->ref);
		p->ref = NULL;
		t->una++;
		released++;
	}
	/* Selective acks: note them; a hole with dupthresh acked packets
	 * after it is lost (no need to wait for the RTO). */
	uint32_t above = 0;

	for (int i = 63; i >= 0; i--) {
		uint32_t seq = cum + 1 + (uint32_t)i;

		/* Only the window: a late, older ack must not touch a slot that
		 * a newer packet uses now. */
		if (!hpn_seq_lt(seq, t->next) || hpn_seq_lt(seq, t->una))
			continue;
		if (mask & (1ull << i)) {
			struct hpn_txpkt *p = at(t, seq);

			if (!p->acked && !p->tries)
				rtt_sample(t, now - p->sent_ns);
			if (p->sent_ns > t->acked_sent_ns)
				t->acked_sent_ns = p->sent_ns;
			p->acked = true;
			above++;
		}
	}
	/* Walk the holes from the oldest: each with >= dupthresh acked after. */
	uint32_t acked_after = above;

	for (uint32_t seq = hpn_seq_lt(cum, t->una) ? t->una : cum; hpn_seq_lt(seq, t->next) && seq - cum < 65;
	     seq++) {
		struct hpn_txpkt *p = at(t, seq);

		if (p->acked) {
			acked_after--;
			continue;
		}
		/* Lost only if something sent after its last transmission got
		 * through: a retransmission in flight is not lost again by the
		 * next ack that still shows the hole. */
		if (acked_after >= t->dupthresh && !p->lost && p->sent_ns < t->acked_sent_ns)
			p->lost = true;
	}
	return released;
}

bool hpn_txwin_resend(struct hpn_txwin *t, uint64_t now, uint32_t *seq, void **ref, bool *dead)
{
	struct hpn_txpkt *pick = NULL;
	uint32_t pick_seq = 0;

	*dead = false;
	for (uint32_t s = t->una; hpn_seq_lt(s, t->next); s++) {
		struct hpn_txpkt *p = at(t, s);
		/* Each retransmission doubles the wait (backoff). */
		uint64_t rto = t->rto_ns << (p->tries < 10 ? p->tries : 10);

		if (p->acked)
			continue;
		if (p->lost || now - p->sent_ns >= (rto > t->rto_max_ns ? t->rto_max_ns : rto)) {
			pick = p;
			pick_seq = s;
			break;
		}
	}
	if (!pick)
		return false;
	if (now - pick->first_ns >= t->dead_ns) {
		*dead = true;
		return false;
	}
	pick->tries++;
	pick->lost = false;
	pick->sent_ns = now;
	t->retransmits++;
	*seq = pick_seq;
	*ref = pick->ref;
	return true;
}

uint64_t hpn_txwin_deadline(const struct hpn_txwin *t)
{
	uint64_t best = UINT64_MAX;

	for (uint32_t s = t->una; hpn_seq_lt(s, t->next); s++) {
		const struct hpn_txpkt *p = &t->pkt[s & (t->size - 1)];
		uint64_t rto = t->rto_ns << (p->tries < 10 ? p->tries : 10), d;

		if (p->acked)
			continue;
		if (p->lost)
			return 0;
		d = p->sent_ns + (rto > t->rto_max_ns ? t->rto_max_ns : rto);
		if (d < best)
			best = d;
	}
	return best;
}
