/* SPDX-License-Identifier: MIT */
/* rxwin.c - see rxwin.h. */
#include "rxwin.h"

#include <string.h>

void hpn_rxwin_init(struct hpn_rxwin *w, uint32_t first, uint32_t size, bool reliable)
{
	uint32_t s = 1;

	while (s < size && s < HPN_RXWIN_MAX)
		s <<= 1;
	memset(w, 0, sizeof(*w));
	w->next = first;
	w->size = s;
	w->reliable = reliable;
}

static inline uint32_t idx(const struct hpn_rxwin *w, uint32_t seq)
{
	return seq & (w->size - 1);
}

enum hpn_rx_verdict hpn_rxwin_put(struct hpn_rxwin *w, uint32_t seq, void *ref)
{
	if (hpn_seq_lt(seq, w->next))
		return w->reliable ? HPN_RX_DUP : HPN_RX_SKIPPED;
	if (!w->reliable) {
		/* Far ahead: a long outage - or one damaged or forged packet
		 * that would make every later real packet look late and stop
		 * delivery. Jump only when a second packet agrees with it. */
		if (seq - w->next >= w->size) {
			if (!w->resync_set || seq - w->resync - 1 >= w->size) {
				w->resync = seq;
				w->resync_set = true;
				w->suspect++;
				return HPN_RX_SKIPPED;
			}
		}
		w->resync_set = false;
		/* Never wait: deliver now, count what was jumped over as lost
		 * (a late packet of that gap is then SKIPPED). */
		w->gaps += seq - w->next;
		w->next = seq + 1;
		return HPN_RX_DELIVER;
	}
	if (seq - w->next >= w->size)
		return HPN_RX_BEYOND;
	if (seq == w->next) {
		w->next++;
		return HPN_RX_DELIVER;
	}
	if (w->present[idx(w, seq)])
		return HPN_RX_DUP;
	w->present[idx(w, seq)] = true;
	w->slot[idx(w, seq)] = ref;
	w->held++;
	return HPN_RX_HELD;
}

bool hpn_rxwin_next(struct hpn_rxwin *w, void **ref)
{
	uint32_t i;

	if (!w->held)
		return false;
	i = idx(w, w->next);
	if (!w->present[i])
		return false;
	*ref = w->slot[i];
	w->present[i] = false;
	w->slot[i] = NULL;
	w->held--;
	w->next++;
	return true;
}

unsigned hpn_rxwin_sack(const struct hpn_rxwin *w, uint32_t *cum, uint64_t *words, unsigned max)
{
	unsigned used = 1;

	*cum = w->next;
	words[0] = 0;
	if (!w->held)
		return 1;
	for (uint32_t i = 0; i + 1 < w->size && i / 64 < max; i++) {
		if (i % 64 == 0)
			words[i / 64] = 0;
		if (w->present[idx(w, w->next + 1 + i)]) {
			words[i / 64] |= 1ull << (i % 64);
			used = i / 64 + 1;
		}
	}
	return used;
}

uint64_t hpn_rxwin_ack(const struct hpn_rxwin *w, uint32_t *cum)
{
	uint64_t mask = 0;

	*cum = w->next;
	if (!w->held)
		return 0;
	for (uint32_t i = 0; i < 64 && i + 1 < w->size; i++)
		if (w->held && w->present[idx(w, w->next + 1 + i)])
			mask |= 1ull << i;
	return mask;
}
