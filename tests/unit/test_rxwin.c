/* The reliable packet layer's receive window (src/packet/rxwin.c): every
 * arrival order of a small window, duplicates, wrap-around, the window
 * limit, selective acks and the unreliable (gap-reporting) mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "packet/rxwin.h"

#include <stdlib.h>
#include <string.h>

static struct hpn_rxwin w;

/* Feed seqs in the given order (with optional duplicates) and check the
 * delivered order is exactly first, first+1, ... */
static void feed_and_check(uint32_t first, const uint32_t *order, unsigned n, unsigned expect)
{
	uint32_t delivered = 0;

	for (unsigned i = 0; i < n; i++) {
		enum hpn_rx_verdict v = hpn_rxwin_put(&w, order[i], (void *)(uintptr_t)(order[i] + 1));
		void *ref;

		if (v == HPN_RX_DELIVER) {
			assert_int_equal(order[i], first + delivered);
			delivered++;
			while (hpn_rxwin_next(&w, &ref)) {
				assert_int_equal((uint32_t)(uintptr_t)ref - 1, first + delivered);
				delivered++;
			}
		}
	}
	assert_int_equal(delivered, expect);
	assert_int_equal(w.held, 0);
}

static void permute(uint32_t *a, unsigned k, unsigned n, uint32_t first, unsigned *count)
{
	if (k == n) {
		hpn_rxwin_init(&w, first, 8, true);
		feed_and_check(first, a, n, n);
		(*count)++;
		return;
	}
	for (unsigned i = k; i < n; i++) {
		uint32_t t = a[k];

		a[k] = a[i];
		a[i] = t;
		permute(a, k + 1, n, first, count);
		a[i] = a[k];
		a[k] = t;
	}
}

/* Every order of 7 packets (5040), also across the 32-bit wrap. */
static void test_every_order(void **state)
{
	static const uint32_t firsts[] = {0, 1000, UINT32_MAX - 3};

	(void)state;
	for (unsigned f = 0; f < 3; f++) {
		uint32_t a[7];
		unsigned count = 0;

		for (unsigned i = 0; i < 7; i++)
			a[i] = firsts[f] + i;
		permute(a, 0, 7, firsts[f], &count);
		assert_int_equal(count, 5040);
	}
}

/* Every loss pattern of 8 packets, then the retransmissions in order:
 * each packet delivered exactly once, in order. */
static void test_every_loss_pattern(void **state)
{
	(void)state;
	for (unsigned lost = 0; lost < 256; lost++) {
		uint32_t order[16];
		unsigned n = 0;

		for (uint32_t i = 0; i < 8; i++)
			if (!(lost & (1u << i)))
				order[n++] = 500 + i;
		for (uint32_t i = 0; i < 8; i++)
			if (lost & (1u << i))
				order[n++] = 500 + i; /* retransmitted */
		hpn_rxwin_init(&w, 500, 8, true);
		feed_and_check(500, order, n, 8);
	}
}

static void test_duplicates_and_window(void **state)
{
	void *ref;
	uint32_t cum;

	(void)state;
	hpn_rxwin_init(&w, 10, 4, true);
	assert_int_equal(hpn_rxwin_put(&w, 12, NULL), HPN_RX_HELD);
	assert_int_equal(hpn_rxwin_put(&w, 12, NULL), HPN_RX_DUP);  /* held twice */
	assert_int_equal(hpn_rxwin_put(&w, 14, NULL), HPN_RX_BEYOND); /* 10..13 only */
	assert_int_equal(hpn_rxwin_put(&w, 13, NULL), HPN_RX_HELD);
	/* cumulative 10 (nothing in order yet), 12 and 13 arrived: bits 1, 2 */
	assert_int_equal(hpn_rxwin_ack(&w, &cum), 0x6);
	assert_int_equal(cum, 10);
	assert_int_equal(hpn_rxwin_put(&w, 10, NULL), HPN_RX_DELIVER);
	assert_false(hpn_rxwin_next(&w, &ref)); /* 11 still missing */
	assert_int_equal(hpn_rxwin_put(&w, 10, NULL), HPN_RX_DUP);  /* delivered before */
	assert_int_equal(hpn_rxwin_put(&w, 11, NULL), HPN_RX_DELIVER);
	assert_true(hpn_rxwin_next(&w, &ref));
	assert_true(hpn_rxwin_next(&w, &ref));
	assert_false(hpn_rxwin_next(&w, &ref));
	assert_int_equal(hpn_rxwin_ack(&w, &cum), 0);
	assert_int_equal(cum, 14);
	assert_int_equal(hpn_rxwin_put(&w, 14, NULL), HPN_RX_DELIVER); /* window moved on */
}

/* Unreliable mode (market data): never wait, count the gaps, drop late
 * packets of a gap. */
static void test_unreliable(void **state)
{
	(void)state;
	hpn_rxwin_init(&w, UINT32_MAX - 1, 8, false);
	assert_int_equal(hpn_rxwin_put(&w, UINT32_MAX - 1, NULL), HPN_RX_DELIVER);
	assert_int_equal(hpn_rxwin_put(&w, 2, NULL), HPN_RX_DELIVER); /* UINT32_MAX, 0, 1 lost */
	assert_int_equal(w.gaps, 3);
	assert_int_equal(hpn_rxwin_put(&w, 0, NULL), HPN_RX_SKIPPED);
	assert_int_equal(hpn_rxwin_put(&w, 2, NULL), HPN_RX_SKIPPED);
	/* A jump of a window or more waits for a second packet to agree. */
	assert_int_equal(hpn_rxwin_put(&w, 1000, NULL), HPN_RX_SKIPPED);
	assert_int_equal(hpn_rxwin_put(&w, 1002, NULL), HPN_RX_DELIVER);
	assert_int_equal(w.gaps, 3 + 999);
	assert_int_equal(w.suspect, 1);
	assert_int_equal(w.held, 0);
}

/* One damaged or forged packet far ahead (2^30) must not make every real
 * packet after it look late: it is dropped, delivery goes on, nothing
 * counted as a gap. Two that do not agree are both dropped. */
static void test_unreliable_far_jump(void **state)
{
	(void)state;
	hpn_rxwin_init(&w, 100, 64, false);
	assert_int_equal(hpn_rxwin_put(&w, 100, NULL), HPN_RX_DELIVER);
	assert_int_equal(hpn_rxwin_put(&w, 100 + (1u << 30), NULL), HPN_RX_SKIPPED);
	assert_int_equal(hpn_rxwin_put(&w, 101, NULL), HPN_RX_DELIVER);
	assert_int_equal(hpn_rxwin_put(&w, 100 + (1u << 30) + 1, NULL), HPN_RX_SKIPPED); /* candidate cleared */
	assert_int_equal(hpn_rxwin_put(&w, 5000, NULL), HPN_RX_SKIPPED); /* disagrees with it */
	assert_int_equal(hpn_rxwin_put(&w, 102, NULL), HPN_RX_DELIVER);
	assert_int_equal(w.gaps, 0);
	assert_int_equal(w.suspect, 3);
	/* Within a window: an ordinary gap, taken at once. */
	assert_int_equal(hpn_rxwin_put(&w, 150, NULL), HPN_RX_DELIVER);
	assert_int_equal(w.gaps, 47);
}

/* Random arrival with duplicates over a long stream. */
static void test_random_stream(void **state)
{
	uint32_t seed = 12345, next_send = 7, expect = 7;
	uint32_t inflight[64];
	unsigned ninf = 0;

	(void)state;
	hpn_rxwin_init(&w, 7, 64, true);
	while (expect < 7 + 200000) {
		void *ref;

		seed = seed * 1103515245u + 12345u;
		/* Keep within the window: the sender only sends what fits. */
		if (ninf < 64 && next_send - expect < 64 && (seed >> 16) % 3) {
			inflight[ninf++] = next_send++;
			continue;
		}
		if (!ninf)
			continue;
		unsigned pick = (seed >> 8) % ninf;
		uint32_t s = inflight[pick];
		bool dup = (seed >> 4) % 10 == 0;

		if (!dup)
			inflight[pick] = inflight[--ninf];
		enum hpn_rx_verdict v = hpn_rxwin_put(&w, s, (void *)(uintptr_t)s);

		if (v == HPN_RX_DELIVER) {
			assert_int_equal(s, expect);
			expect++;
			while (hpn_rxwin_next(&w, &ref))
				assert_int_equal((uint32_t)(uintptr_t)ref, expect++);
		} else {
			assert_true(v == HPN_RX_HELD || v == HPN_RX_DUP);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_order),          cmocka_unit_test(test_every_loss_pattern),
		cmocka_unit_test(test_duplicates_and_window), cmocka_unit_test(test_unreliable),
		cmocka_unit_test(test_unreliable_far_jump),
		cmocka_unit_test(test_random_stream),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
