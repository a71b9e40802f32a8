/* Peer ids (src/peerid.h): slot in the low bits the core's live table
 * uses, a generation above that never wraps, never HPN_PEER_NONE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"
#include "peerid.h"

/* The core's live table mask for max_peers (endpoint.c). */
static uint32_t live_mask(uint32_t max_peers)
{
	uint32_t m = 1;

	while (m + 1 < max_peers)
		m = (m << 1) | 1;
	return m;
}

static void test_slot_bits_match_live_table(void **state)
{
	(void)state;
	for (uint32_t peers = 1; peers <= 65535; peers++) {
		unsigned bits = hpn_peerid_slot_bits(peers);

		assert_int_equal((1ull << bits) - 1, live_mask(peers));
	}
	assert_int_equal(hpn_peerid_slot_bits(256), 8);
	assert_int_equal(hpn_peerid_slot_bits(257), 9);
	assert_int_equal(hpn_peerid_slot_bits(65535), 16);
}

static void test_ids(void **state)
{
	(void)state;
	for (unsigned bits = 1; bits <= 16; bits++) {
		uint32_t max = hpn_peerid_gen_max(bits), slot = (1u << bits) - 1;
		uint32_t id = hpn_peerid_make(slot, max, bits);

		/* At least 16 generation bits, the last one is not all ones. */
		assert_true(max >= 65534);
		assert_int_equal(max, (uint32_t)((1ull << (32 - bits)) - 2));
		assert_int_not_equal(id, HPN_PEER_NONE);
		assert_int_equal(hpn_peerid_slot(id, bits), slot);
		assert_int_equal(hpn_peerid_slot(hpn_peerid_make(3 & slot, 1, bits), bits), 3 & slot);
		/* Retired at the last generation, not wrapped to the first. */
		assert_true(hpn_peerid_usable(max - 1, bits));
		assert_false(hpn_peerid_usable(max, bits));
	}
	/* 65,536 generations of one slot no longer come back to the first id
	 * (16-bit generations did: issue 9). */
	assert_int_not_equal(hpn_peerid_make(0, 1, 8), hpn_peerid_make(0, 1 + 65536, 8));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slot_bits_match_live_table),
		cmocka_unit_test(test_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
