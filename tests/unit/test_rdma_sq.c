/* The rdma backend's send-queue bookkeeping (plugins/rdma/sq.h), on the
 * host: no device needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sq.h"

#include <string.h>

static void test_depth_and_signal_cap(void **state)
{
	struct hpn_sq sq;

	(void)state;
	assert_int_equal(hpn_sq_init(&sq, 100, 16), 0);
	assert_int_equal(hpn_sq_depth(&sq), 64); /* rounded down to a power of two */
	hpn_sq_free(&sq);
	assert_int_equal(hpn_sq_init(&sq, 8, 16), 0);
	assert_int_equal(sq.signal_every, 4); /* at most half the depth */
	hpn_sq_free(&sq);
	assert_int_equal(hpn_sq_init(&sq, 1, 0), 0);
	assert_int_equal(hpn_sq_depth(&sq), 4);
	assert_int_equal(sq.signal_every, 1);
	hpn_sq_free(&sq);
}

/* Fill to full, with the completion cadence and the final forced signal;
 * then one completion releases everything, in order. */
static void test_fill_signal_release(void **state)
{
	struct hpn_sq sq;
	char bufs[16];
	void *out[16];
	unsigned unsignaled = 0, n;
	uint32_t last_signaled = 0;
	bool sig;

	(void)state;
	assert_int_equal(hpn_sq_init(&sq, 16, 4), 0);
	for (int i = 0; !hpn_sq_full(&sq); i++) {
		uint32_t id = hpn_sq_push(&sq, i % 3 ? &bufs[i] : NULL, &sig);

		assert_int_equal(id, (uint32_t)i);
		unsignaled = sig ? 0 : unsignaled + 1;
		assert_true(unsignaled < 4); /* never signal_every unsignaled in a row */
		if (sig)
			last_signaled = id;
	}
	assert_int_equal(hpn_sq_inflight(&sq), 15); /* one slot kept free */
	assert_int_equal(last_signaled, 14);        /* the one that fills it asks */
	n = hpn_sq_complete(&sq, last_signaled, out, 16);
	/* Every request but the NULL (inline) ones gave back its buffer. */
	assert_int_equal(n, 10);
	for (unsigned i = 0, k = 0; i < 15; i++)
		if (i % 3)
			assert_ptr_equal(out[k++], &bufs[i]);
	assert_int_equal(hpn_sq_inflight(&sq), 0);
	hpn_sq_free(&sq);
}

/* Counters wrap at 2^32: slots and releases must stay consistent. */
static void test_wraparound(void **state)
{
	struct hpn_sq sq;
	char b[8];
	void *out[8];
	bool sig;

	(void)state;
	assert_int_equal(hpn_sq_init(&sq, 8, 2), 0);
	sq.head = sq.tail = UINT32_MAX - 3;
	uint32_t ids[6];

	for (int i = 0; i < 6; i++)
		ids[i] = hpn_sq_push(&sq, &b[i], &sig);
	assert_int_equal(ids[4], 0); /* wrapped */
	assert_int_equal(hpn_sq_complete(&sq, ids[2], out, 8), 3);
	assert_ptr_equal(out[2], &b[2]);
	assert_int_equal(hpn_sq_complete(&sq, ids[5], out, 8), 3);
	assert_ptr_equal(out[0], &b[3]);
	assert_ptr_equal(out[2], &b[5]);
	assert_int_equal(hpn_sq_inflight(&sq), 0);
	hpn_sq_free(&sq);
}

/* Stale or duplicate completions change nothing; a partial collection
 * resumes where it stopped; a flush releases all. */
static void test_stale_partial_flush(void **state)
{
	struct hpn_sq sq;
	char b[8];
	void *out[8];
	bool sig;

	(void)state;
	assert_int_equal(hpn_sq_init(&sq, 8, 8), 0);
	for (int i = 0; i < 6; i++)
		hpn_sq_push(&sq, &b[i], &sig);
	assert_int_equal(hpn_sq_complete(&sq, 1, out, 8), 2);
	assert_int_equal(hpn_sq_complete(&sq, 1, out, 8), 0);  /* already done */
	assert_int_equal(hpn_sq_complete(&sq, 99, out, 8), 0); /* never posted */
	assert_int_equal(hpn_sq_complete(&sq, 4, out, 2), 2);  /* out has room for 2 */
	assert_ptr_equal(out[1], &b[3]);
	assert_int_equal(hpn_sq_complete(&sq, 4, out, 8), 1);
	assert_ptr_equal(out[0], &b[4]);
	assert_int_equal(hpn_sq_flush(&sq, out, 8), 1);
	assert_ptr_equal(out[0], &b[5]);
	assert_int_equal(hpn_sq_flush(&sq, out, 8), 0);
	hpn_sq_free(&sq);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_depth_and_signal_cap),
		cmocka_unit_test(test_fill_signal_release),
		cmocka_unit_test(test_wraparound),
		cmocka_unit_test(test_stale_partial_flush),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
