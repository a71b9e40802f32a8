/* The reliable packet layer's send window (src/packet/txwin.c) against its
 * receive window, over a simulated link under a virtual clock: no sleeps,
 * seeded loss, reordering and duplication. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "packet/txwin.h"

#include <stdlib.h>
#include <string.h>

#define US 1000ull
#define MS 1000000ull

static struct hpn_txwin tx;
static struct hpn_rxwin rx;

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}
static bool chance(double p)
{
	return (double)(rnd() % 1000000) < p * 1000000.0;
}

/* The link: packets and acks in flight with their arrival time. */
struct flight {
	uint64_t at;
	uint32_t seq;
	uint64_t mask; /* acks: the SACK mask */
	bool ack;
};
#define LINK_MAX 100000
static struct flight link_q[LINK_MAX];
static unsigned link_n;

struct linkcfg {
	double loss, dup, reorder;
};

static void link_send(const struct linkcfg *c, uint64_t now, struct flight f)
{
	unsigned copies = chance(c->dup) ? 2 : 1;

	if (chance(c->loss))
		return;
	for (unsigned i = 0; i < copies && link_n < LINK_MAX; i++) {
		f.at = now + 50 * US + (chance(c->reorder) ? rnd() % (300 * US) : 0);
		link_q[link_n++] = f;
	}
}

static uint64_t released, delivered, expect_next;

static void on_release(void *arg, void *ref)
{
	(void)arg;
	(void)ref;
	released++;
}

static void receive(const struct linkcfg *c, uint64_t now, uint32_t seq)
{
	void *ref;
	uint32_t cum;
	uint64_t mask;

	switch (hpn_rxwin_put(&rx, seq, (void *)(uintptr_t)seq)) {
	case HPN_RX_DELIVER:
		assert_int_equal(seq, (uint32_t)expect_next);
		expect_next++;
		delivered++;
		while (hpn_rxwin_next(&rx, &ref)) {
			assert_int_equal((uint32_t)(uintptr_t)ref, (uint32_t)expect_next);
			expect_next++;
			delivered++;
		}
		break;
	case HPN_RX_HELD:
	case HPN_RX_DUP:
		break;
	default:
		fail_msg("seq %u: unexpected verdict", seq);
	}
	mask = hpn_rxwin_ack(&rx, &cum);
	link_send(c, now, (struct flight){.seq = cum, .mask = mask, .ack = true});
}

/* Move total messages across the link; returns the virtual time it took. */
static uint64_t run(uint32_t first, uint64_t total, const struct linkcfg *c)
{
	uint64_t now = 0, sent = 0;

	hpn_txwin_init(&tx, first, 64);
	hpn_rxwin_init(&rx, first, 64, true);
	released = delivered = 0;
	expect_next = first;
	link_n = 0;
	while (delivered < total || released < total) {
		uint32_t seq;
		void *ref;

		while (sent < total && hpn_txwin_can_send(&tx)) {
			seq = hpn_txwin_push(&tx, (void *)(uintptr_t)(sent + 1), now);
			link_send(c, now, (struct flight){.seq = seq});
			sent++;
		}
		while (hpn_txwin_resend(&tx, now, &seq, &ref))
			link_send(c, now, (struct flight){.seq = seq});
		now += 10 * US;
		for (unsigned i = 0; i < link_n;) {
			struct flight f = link_q[i];

			if (f.at > now) {
				i++;
				continue;
			}
			link_q[i] = link_q[--link_n];
			if (f.ack)
				assert_true(hpn_txwin_ack(&tx, f.seq, &f.mask, 1, now, on_release, NULL) >= 0);
			else
				receive(c, now, f.seq);
		}
		assert_true(now < 600000 * MS); /* a stuck protocol fails, not hangs */
	}
	assert_int_equal(hpn_txwin_inflight(&tx), 0);
	return now;
}

static void test_lossless(void **state)
{
	struct linkcfg c = {0};

	(void)state;
	run(1, 20000, &c);
	assert_int_equal(tx.retransmits, 0);
}

static void test_loss_reorder_dup(void **state)
{
	static const double loss[] = {0.01, 0.05, 0.20};

	(void)state;
	for (unsigned i = 0; i < 3; i++) {
		struct linkcfg c = {loss[i], 0.01, 0.1};
		uint64_t t = run(UINT32_MAX - 5000, 20000, &c); /* across the wrap */

		print_message("loss %.0f%%: %llu retransmits, %.1f ms virtual\n", loss[i] * 100,
			      (unsigned long long)tx.retransmits, (double)t / MS);
		assert_true(tx.retransmits > 0);
	}
}

/* One hole with later packets acked: retransmitted long before the RTO. */
static void test_fast_retransmit(void **state)
{
	uint32_t seq, cum;
	void *ref;
	uint64_t mask;

	(void)state;
	hpn_txwin_init(&tx, 100, 64);
	hpn_rxwin_init(&rx, 100, 64, true);
	for (unsigned i = 0; i < 10; i++)
		hpn_txwin_push(&tx, NULL, i * 10 * US); /* one every 10 us */
	for (uint32_t s = 100; s < 110; s++)
		if (s != 103)
			hpn_rxwin_put(&rx, s, NULL);
	mask = hpn_rxwin_ack(&rx, &cum);
	assert_int_equal(cum, 103);
	assert_int_equal(hpn_txwin_ack(&tx, cum, &mask, 1, 150 * US, on_release, NULL), 3);
	assert_true(hpn_txwin_resend(&tx, 150 * US, &seq, &ref)); /* far before any RTO */
	assert_int_equal(seq, 103);
	assert_false(hpn_txwin_resend(&tx, 150 * US, &seq, &ref)); /* nothing else due */
	assert_true(hpn_txwin_deadline(&tx) > 150 * US);
	/* The same ack again (the retransmission is in flight): not lost twice. */
	assert_int_equal(hpn_txwin_ack(&tx, cum, &mask, 1, 160 * US, on_release, NULL), 0);
	assert_false(hpn_txwin_resend(&tx, 160 * US, &seq, &ref));
}

/* A silent peer: retransmissions back off exponentially up to rto_max
 * and go on at that pace (the window never gives up: liveness is the
 * connection's judgement). */
static void test_rto_backoff(void **state)
{
	uint64_t now = 0, last = 0, gap = 0;
	unsigned tries = 0;
	uint32_t seq;
	void *ref;

	(void)state;
	hpn_txwin_init(&tx, 0, 8);
	hpn_txwin_push(&tx, NULL, 0);
	while (now < 10000 * MS) {
		now = hpn_txwin_deadline(&tx);
		if (hpn_txwin_resend(&tx, now, &seq, &ref)) {
			if (tries)
				assert_true(now - last >= gap); /* never sooner than before */
			gap = now - last;
			last = now;
			tries++;
		}
	}
	assert_true(tries >= 12);
	assert_int_equal(gap, tx.rto_max_ns); /* capped, and still trying */
}

/* One burst shares one send time: a loss inside it is still found by
 * RACK (sequence order breaks the tie), not left to one timeout per hole. */
static void test_rack_within_a_burst(void **state)
{
	uint32_t seq, cum;
	void *ref;
	uint64_t mask;
	unsigned resent = 0;

	(void)state;
	hpn_txwin_init(&tx, 100, 64);
	hpn_rxwin_init(&rx, 100, 64, true);
	for (unsigned i = 0; i < 20; i++)
		hpn_txwin_push(&tx, NULL, 0); /* all at t = 0 */
	for (uint32_t s = 100; s < 120; s++)
		if (s != 103 && s != 107 && s != 111)
			hpn_rxwin_put(&rx, s, NULL);
	mask = hpn_rxwin_ack(&rx, &cum);
	hpn_txwin_ack(&tx, cum, &mask, 1, 50 * US, on_release, NULL);
	/* Long before the 20 ms initial timeout, all three holes are due. */
	uint64_t at = hpn_txwin_deadline(&tx);

	assert_true(at < 1 * MS);
	while (hpn_txwin_resend(&tx, at, &seq, &ref))
		assert_true(seq == 103 + 4 * resent++);
	assert_int_equal(resent, 3);
}

/* A peer that reports duplicates (F_DUP) slows the tail loss probe down,
 * up to rto_min; RTT samples shrink the pad again. */
static void test_dup_slows_probes(void **state)
{
	uint64_t pad;

	(void)state;
	hpn_txwin_init(&tx, 0, 16);
	tx.rto_min_ns = 1 * MS;
	hpn_txwin_push(&tx, NULL, 0);
	assert_int_equal(hpn_txwin_ack(&tx, 1, NULL, 0, 10 * US, on_release, NULL), 1); /* srtt 10 us */
	assert_int_equal(tx.tlp_pad_ns, 0);
	hpn_txwin_dup_seen(&tx);
	pad = tx.tlp_pad_ns;
	assert_true(pad > 0);
	hpn_txwin_push(&tx, NULL, 20 * US);
	assert_true(hpn_txwin_deadline(&tx) >= 20 * US + 2 * tx.srtt_ns + pad);
	hpn_txwin_dup_seen(&tx); /* a packet still out: a needless repair, not a probe */
	assert_int_equal(tx.tlp_pad_ns, pad);
	assert_int_equal(hpn_txwin_ack(&tx, 2, NULL, 0, 30 * US, on_release, NULL), 1);
	for (int i = 0; i < 20; i++)
		hpn_txwin_dup_seen(&tx);
	assert_int_equal(tx.tlp_pad_ns, 1 * MS); /* capped */
	hpn_txwin_push(&tx, NULL, 40 * US);
	assert_int_equal(hpn_txwin_ack(&tx, 3, NULL, 0, 50 * US, on_release, NULL), 1);
	assert_true(tx.tlp_pad_ns < 1 * MS);
}

/* A resend's ack may be its original's, late (reordered): only when the
 * peer says a resend arrived new (RETX) does RACK take the resend's time.
 * Else a large message's packets still queued at the receiver - sent
 * before the resend - would all be declared lost at once. */
static void resend_then_late_original(bool peer_got_resend, unsigned *resent_after)
{
	uint32_t seq;
	void *ref;
	uint64_t mask, at;

	hpn_txwin_init(&tx, 0, 128);
	hpn_txwin_rtt_hint(&tx, 20 * US); /* the handshake's: the empty path */
	for (unsigned i = 0; i < 100; i++)
		hpn_txwin_push(&tx, NULL, 0); /* one burst, queued at the receiver */
	/* 1 ms later the receiver got 0..9 but 6 (reordered): SACK 7..9. */
	mask = 0x7; /* 7, 8, 9 beyond cum 6 */
	assert_int_equal(hpn_txwin_ack(&tx, 6, &mask, 1, 1 * MS, on_release, NULL), 6);
	at = 1 * MS + 100 * US; /* past 6's RACK deadline (1 ms + reordering window) */
	unsigned six = 0;

	while (hpn_txwin_resend(&tx, at, &seq, &ref)) /* 6, and a probe of the tail (99) */
		six += seq == 6;
	assert_int_equal(six, 1);
	/* Then 6 is acked 500 us after its resend, 10..99 still queued. */
	tx.peer_got_resend = peer_got_resend;
	assert_int_equal(hpn_txwin_ack(&tx, 10, NULL, 0, at + 500 * US, on_release, NULL), 4);
	tx.peer_got_resend = false;
	*resent_after = 0;
	while (hpn_txwin_resend(&tx, at + 800 * US, &seq, &ref))
		*resent_after += seq != 99; /* not the tail probe */
}

static void test_resend_or_late_original(void **state)
{
	unsigned n;

	(void)state;
	resend_then_late_original(false, &n);
	assert_int_equal(n, 0); /* the original's ack, maybe: nothing follows from it */
	/* Told the resend arrived: the path is in order, so what was sent
	 * before it and is not acked is lost - RACK's inference. */
	resend_then_late_original(true, &n);
	assert_int_equal(n, 89); /* 10..98 */
}

/* A packet resent twice keeps only its second resend's send time; the
 * ack (with RETX) may be for its first. RACK must not take the second's
 * time then: packets sent between the two resends are still on their way
 * (after a stall, a whole window of them was declared lost at once:
 * test_large_messages_under_loss made 640 resends for 154 losses). */
static void test_first_of_two_resends_acked(void **state)
{
	uint32_t seq;
	void *ref;
	uint64_t mask[2], at;
	unsigned six = 0, resent = 0;

	(void)state;
	hpn_txwin_init(&tx, 0, 128);
	hpn_txwin_rtt_hint(&tx, 20 * US);
	for (unsigned i = 0; i < 100; i++)
		hpn_txwin_push(&tx, NULL, 0);
	/* 1 ms: all but 6 arrived - 6 is resent (copy A, 1.1 ms). */
	mask[0] = ~0ull;
	mask[1] = (1ull << (99 - 7 - 64 + 1)) - 1; /* 7..99 */
	assert_int_equal(hpn_txwin_ack(&tx, 6, mask, 2, 1 * MS, on_release, NULL), 6);
	while (hpn_txwin_resend(&tx, 1 * MS + 100 * US, &seq, &ref))
		six += seq == 6;
	assert_int_equal(six, 1);
	/* 100..109 go at 1.2 ms and are acked at 1.3 ms, copy A not yet:
	 * RACK resends 6 again (copy B) once the reordering window passed. */
	for (unsigned i = 0; i < 10; i++)
		hpn_txwin_push(&tx, NULL, 1 * MS + 200 * US);
	mask[0] = ~0ull;
	mask[1] = (1ull << (109 - 7 - 64 + 1)) - 1; /* 7..109 */
	assert_int_equal(hpn_txwin_ack(&tx, 6, mask, 2, 1 * MS + 300 * US, on_release, NULL), 0);
	/* 110..119 go at 1.5 ms, before copy B */
	for (unsigned i = 0; i < 10; i++)
		hpn_txwin_push(&tx, NULL, 1 * MS + 500 * US);
	at = hpn_txwin_deadline(&tx);
	assert_true(at < 5 * MS);
	if (at < 1 * MS + 600 * US)
		at = 1 * MS + 600 * US;
	six = 0;
	while (hpn_txwin_resend(&tx, at, &seq, &ref))
		six += seq == 6;
	assert_int_equal(six, 1);
	/* Copy A arrives: the peer says a resend arrived new; 110..119 are
	 * still on their way. */
	tx.peer_got_resend = true;
	assert_int_equal(hpn_txwin_ack(&tx, 110, NULL, 0, at + 200 * US, on_release, NULL), 104);
	tx.peer_got_resend = false;
	while (hpn_txwin_resend(&tx, at + 600 * US, &seq, &ref))
		resent += seq != 119; /* not the tail probe */
	assert_int_equal(resent, 0);
}

/* Send times never go back, even when a caller's clock read is older
 * than one a long run of sends took since (conn.h, ops.clock): RACK
 * orders by them. */
static void test_send_times_monotonic(void **state)
{
	uint32_t seq;
	void *ref;

	(void)state;
	hpn_txwin_init(&tx, 0, 16);
	hpn_txwin_queue(&tx, NULL);
	hpn_txwin_queue(&tx, NULL);
	assert_true(hpn_txwin_take(&tx, 100 * US, &seq, &ref));
	assert_true(hpn_txwin_take(&tx, 40 * US, &seq, &ref)); /* a stale `now` */
	assert_int_equal(tx.pkt[1].sent_ns, 100 * US);
}

static void test_window_and_nonsense(void **state)
{
	(void)state;
	hpn_txwin_init(&tx, 0, 16);
	for (unsigned i = 0; i < 16; i++) {
		assert_true(hpn_txwin_can_send(&tx));
		hpn_txwin_push(&tx, NULL, 0);
	}
	assert_false(hpn_txwin_can_send(&tx)); /* back-pressure: -EAGAIN */
	assert_int_equal(hpn_txwin_ack(&tx, 17, NULL, 0, 0, on_release, NULL), -1);
	assert_int_equal(hpn_txwin_ack(&tx, 4, NULL, 0, 1 * MS, on_release, NULL), 4);
	assert_true(hpn_txwin_can_send(&tx));
	assert_int_equal(hpn_txwin_ack(&tx, 2, NULL, 0, 1 * MS, on_release, NULL), 0); /* old ack: no-op */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lossless),        cmocka_unit_test(test_loss_reorder_dup),
		cmocka_unit_test(test_fast_retransmit), cmocka_unit_test(test_rto_backoff),
		cmocka_unit_test(test_window_and_nonsense), cmocka_unit_test(test_rack_within_a_burst),
		cmocka_unit_test(test_dup_slows_probes), cmocka_unit_test(test_resend_or_late_original),
		cmocka_unit_test(test_first_of_two_resends_acked),
		cmocka_unit_test(test_send_times_monotonic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
