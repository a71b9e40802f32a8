/* SPDX-License-Identifier: MIT */
/*
 * rxwin.h - the receive side of the reliable packet layer (issue 5, first
 * piece): sequence-number arithmetic and a per-peer receive window that
 * turns datagrams arriving in any order, with duplicates, into an in-order
 * stream, and says what to acknowledge.
 *
 * It knows nothing of sockets or clocks: the caller feeds sequence numbers
 * and payload references, and gets back what is deliverable. That keeps it
 * testable exhaustively (tests/unit/test_rxwin.c) and shared by every
 * packet backend.
 *
 * Sequence numbers are 32-bit and wrap; comparisons use serial-number
 * arithmetic (RFC 1982): a is before b when (int32_t)(a - b) < 0, valid
 * while the window is far smaller than 2^31.
 */
#ifndef HPN_PACKET_RXWIN_H
#define HPN_PACKET_RXWIN_H

#include <stdbool.h>
#include <stdint.h>

static inline bool hpn_seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

static inline bool hpn_seq_le(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) <= 0;
}

#define HPN_RXWIN_MAX 1024 /* slots; a power of two */

enum hpn_rx_verdict {
	HPN_RX_DELIVER = 0, /* in order: deliver now (then drain with hpn_rxwin_next) */
	HPN_RX_HELD,        /* ahead of a gap: kept until the gap fills */
	HPN_RX_DUP,         /* already delivered or already held: drop */
	HPN_RX_BEYOND,      /* reliable mode: beyond the window: drop (the sender overran it) */
	HPN_RX_SKIPPED,     /* unreliable mode: older than what was skipped past: drop */
};

struct hpn_rxwin {
	uint32_t next;    /* next sequence number to deliver */
	uint32_t size;    /* window in packets, power of two <= HPN_RXWIN_MAX */
	bool reliable;    /* false: gaps are skipped and reported, not waited for */
	uint32_t held;    /* packets held ahead of a gap */
	uint64_t gaps;    /* unreliable mode: sequence numbers never received */
	/* Unreliable mode: a packet a window or more ahead is held back as a
	 * resync candidate (counted in suspect, dropped); the jump is taken
	 * when a later packet lands within a window after it. */
	uint32_t resync;
	bool resync_set;
	uint64_t suspect;
	void *slot[HPN_RXWIN_MAX];
	bool present[HPN_RXWIN_MAX];
};

/* first: the sequence number the sender starts with (from the handshake). */
void hpn_rxwin_init(struct hpn_rxwin *w, uint32_t first, uint32_t size, bool reliable);

/* A packet with sequence number seq arrived, carrying ref (any pointer the
 * caller needs back; returned by hpn_rxwin_next for held packets). In
 * reliable mode packets are delivered strictly in order, each once; in
 * unreliable mode a packet ahead of a gap is delivered at once, the gap
 * counted in w->gaps, and late packets of the gap are SKIPPED; a packet a
 * whole window or more ahead is SKIPPED too unless the packet before it
 * in arrival order was within a window behind it (two agree: a real jump,
 * one alone may be damage or forgery). */
enum hpn_rx_verdict hpn_rxwin_put(struct hpn_rxwin *w, uint32_t seq, void *ref);

/* After HPN_RX_DELIVER: the next held packet now in order, if any
 * (returns true and its ref), advancing the window. */
bool hpn_rxwin_next(struct hpn_rxwin *w, void **ref);

/* The next in-order held packet without taking it (true and its ref). */
static inline bool hpn_rxwin_peek(const struct hpn_rxwin *w, void **ref)
{
	uint32_t i = w->next & (w->size - 1);

	if (!w->held || !w->present[i])
		return false;
	*ref = w->slot[i];
	return true;
}

/* What to acknowledge: everything before *cum arrived; bit i of the
 * returned mask means cum + 1 + i arrived too (selective ack, 64 ahead). */
uint64_t hpn_rxwin_ack(const struct hpn_rxwin *w, uint32_t *cum);

/* The same over the whole window: bit i of words[w] means cum + 1 + 64 w + i
 * arrived. Returns the words that matter (at least 1, at most max). */
unsigned hpn_rxwin_sack(const struct hpn_rxwin *w, uint32_t *cum, uint64_t *words, unsigned max);

#endif
