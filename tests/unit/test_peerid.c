/* Peer ids (src/peerid.h): slot in the low bits the core's live table
 * uses, a generation above that never wraps, never HPN_PEER_NONE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

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

/* The slot table both peer tables use: every slot once before any is
 * reused (oldest freed first), ids never repeat, a slot whose
 * generations are used up retires and is never handed out again. */
static void test_slots(void **state)
{
	struct hpn_peer_slots s;
	uint32_t id, first[3], i;

	(void)state;
	assert_int_equal(hpn_peer_slots_init(&s, 3), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(hpn_peer_slots_take(&s, &first[i]), i);
	assert_int_equal(hpn_peer_slots_take(&s, &id), UINT32_MAX); /* full */
	assert_non_null(strstr(hpn_peer_slots_why(&s), "raise max_peers"));
	assert_true(hpn_peer_slots_put(&s, 1));
	assert_true(hpn_peer_slots_put(&s, 0));
	assert_int_equal(hpn_peer_slots_take(&s, &id), 1); /* oldest freed first */
	assert_int_equal(hpn_peer_slots_index(&s, id), 1);
	assert_int_not_equal(id, first[1]); /* a new generation */
	hpn_peer_slots_fini(&s);

	/* One slot, all its generations: then it retires. */
	assert_int_equal(hpn_peer_slots_init(&s, 65535), 0);
	for (i = 1; i < 65535; i++) /* the others out of the way */
		assert_int_equal(hpn_peer_slots_take(&s, &id), i - 1);
	assert_int_equal(hpn_peer_slots_take(&s, &id), 65534);
	for (uint32_t g = 1; g < s.gen_max; g++) {
		uint32_t prev = id;

		assert_true(hpn_peer_slots_put(&s, 65534));
		assert_int_equal(hpn_peer_slots_take(&s, &id), 65534);
		assert_int_not_equal(id, prev);
		assert_int_not_equal(id, UINT32_MAX); /* never HPN_PEER_NONE */
	}
	assert_false(hpn_peer_slots_put(&s, 65534)); /* retired */
	assert_int_equal(hpn_peer_slots_take(&s, &id), UINT32_MAX);
	assert_non_null(strstr(hpn_peer_slots_why(&s), "used all its ids"));
	hpn_peer_slots_fini(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slot_bits_match_live_table),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_slots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
