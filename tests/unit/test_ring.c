/* SPDX-License-Identifier: MIT */
/* Unit and stress tests of the internal lock-free ring (src/ring.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"

#if defined(__SANITIZE_THREAD__)
#define HPN_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HPN_TEST_TSAN 1
#endif
#endif

/*
 * Sized for a slow, shared 2-core machine (well under a second each).
 * The MP tests run more threads than cores: a producer preempted between
 * reserving and publishing makes the others spin in the tail wait for a
 * whole time slice.  TSan widens that window a lot, so it gets fewer items
 * (still thousands of contended reservations, plenty for race detection).
 */
#define SPSC_ITEMS 2000000u
#define MPSC_PRODUCERS 3
#define MPMC_PRODUCERS 2
#define MPMC_CONSUMERS 2
#ifdef HPN_TEST_TSAN
#define MPSC_ITEMS_PER_PRODUCER 50000u
#define MPMC_ITEMS_PER_PRODUCER 50000u
#else
#define MPSC_ITEMS_PER_PRODUCER 300000u
#define MPMC_ITEMS_PER_PRODUCER 300000u
#endif

static void *val(uintptr_t v)
{
	return (void *)v;
}

static uintptr_t unval(void *p)
{
	return (uintptr_t)p;
}

static uint64_t rng_state = 88172645463325252ull;

static uint64_t xorshift64(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

/* Spinning on a full/empty ring while the peer thread is descheduled only
 * burns the slice it needs; the box may have fewer cores than threads. */
static void backoff(unsigned *idle)
{
	if (++*idle < 64)
		hpn_ring_pause();
	else {
		*idle = 0;
		sched_yield();
	}
}

/* Never returns NULL: keeps gcc from diagnosing atomics on a NULL path
 * (cmocka's failure path is not visible to it as noreturn). */
static struct hpn_ring *make_ring(unsigned count, unsigned flags)
{
	struct hpn_ring *r = NULL;

	assert_int_equal(hpn_ring_create(count, flags, &r), 0);
	if (r == NULL)
		abort();
	return r;
}

static void test_create_destroy(void **state)
{
	static const struct {
		unsigned count, cap;
	} sizes[] = { { 1, 1 }, { 2, 2 }, { 3, 4 }, { 8, 8 }, { 1000, 1024 }, { 1025, 2048 } };
	struct hpn_ring *r = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		assert_int_equal(hpn_ring_create(sizes[i].count, 0, &r), 0);
		assert_non_null(r);
		assert_int_equal((uintptr_t)r % HPN_RING_CACHE_LINE, 0);
		assert_int_equal(hpn_ring_capacity(r), sizes[i].cap);
		assert_int_equal(hpn_ring_count(r), 0);
		assert_int_equal(hpn_ring_free_count(r), sizes[i].cap);
		hpn_ring_destroy(r);
		r = NULL;
	}
	assert_int_equal(hpn_ring_create(16, HPN_RING_SP_ENQ | HPN_RING_SC_DEQ, &r), 0);
	hpn_ring_destroy(r);
	hpn_ring_destroy(NULL);
}

static void test_invalid(void **state)
{
	struct hpn_ring *r = NULL;

	(void)state;
	assert_int_equal(hpn_ring_create(0, 0, &r), -EINVAL);
	assert_int_equal(hpn_ring_create(HPN_RING_MAX_COUNT + 1u, 0, &r), -EINVAL);
	assert_int_equal(hpn_ring_create(UINT32_MAX, 0, &r), -EINVAL);
	assert_int_equal(hpn_ring_create(16, 1u << 7, &r), -EINVAL);
	assert_int_equal(hpn_ring_create(16, 0, NULL), -EINVAL);
	assert_null(r);
}

static void check_full_empty(unsigned flags)
{
	void *in[16], *out[16];
	struct hpn_ring *r;
	unsigned i;

	for (i = 0; i < 16; i++)
		in[i] = val(100 + i);
	r = make_ring(8, flags);

	/* empty */
	assert_int_equal(hpn_ring_dequeue_burst(r, out, 4), 0);
	assert_int_equal(hpn_ring_dequeue_bulk(r, out, 1), 0);
	assert_int_equal(hpn_ring_enqueue_burst(r, in, 0), 0);
	assert_int_equal(hpn_ring_enqueue_bulk(r, in, 0), 0);

	/* bulk is all-or-nothing, burst takes what fits */
	assert_int_equal(hpn_ring_enqueue_bulk(r, in, 5), 5);
	assert_int_equal(hpn_ring_enqueue_bulk(r, in + 5, 5), 0);
	assert_int_equal(hpn_ring_count(r), 5);
	assert_int_equal(hpn_ring_enqueue_burst(r, in + 5, 5), 3);
	assert_int_equal(hpn_ring_count(r), 8);
	assert_int_equal(hpn_ring_free_count(r), 0);

	/* full: every slot is usable */
	assert_int_equal(hpn_ring_enqueue_burst(r, in + 8, 1), 0);
	assert_int_equal(hpn_ring_enqueue_bulk(r, in + 8, 1), 0);

	assert_int_equal(hpn_ring_dequeue_bulk(r, out, 9), 0);
	assert_int_equal(hpn_ring_count(r), 8);
	assert_int_equal(hpn_ring_dequeue_bulk(r, out, 2), 2);
	assert_ptr_equal(out[0], in[0]);
	assert_ptr_equal(out[1], in[1]);
	assert_int_equal(hpn_ring_dequeue_burst(r, out, 16), 6);
	for (i = 0; i < 6; i++)
		assert_ptr_equal(out[i], in[2 + i]);
	assert_int_equal(hpn_ring_count(r), 0);
	assert_int_equal(hpn_ring_free_count(r), 8);
	assert_int_equal(hpn_ring_dequeue_burst(r, out, 16), 0);

	/* a bulk of exactly the capacity fits an empty ring */
	assert_int_equal(hpn_ring_enqueue_bulk(r, in, 8), 8);
	assert_int_equal(hpn_ring_dequeue_bulk(r, out, 8), 8);
	assert_memory_equal(out, in, 8 * sizeof(void *));
	hpn_ring_destroy(r);
}

static void test_burst_bulk(void **state)
{
	(void)state;
	check_full_empty(0);
	check_full_empty(HPN_RING_SP_ENQ | HPN_RING_SC_DEQ);
	check_full_empty(HPN_RING_SP_ENQ);
	check_full_empty(HPN_RING_SC_DEQ);
}

/* Start the indices just below 2^32 and run random-sized bursts through a
 * small ring so that both the index wrap and the slot-array wrap happen
 * many times, including while the ring is full. */
static void check_wrap(unsigned flags)
{
	void *buf[40];
	struct hpn_ring *r;
	uintptr_t next_in = 1, next_out = 1;
	unsigned cycle, i, n, got, level = 0;

	r = make_ring(32, flags);
	hpn_ring__set_indices(r, UINT32_MAX - 100);
	for (cycle = 0; cycle < 20000; cycle++) {
		n = (unsigned)(xorshift64() % 40);
		for (i = 0; i < n; i++)
			buf[i] = val(next_in + i);
		if (cycle & 1)
			got = hpn_ring_enqueue_bulk(r, buf, n);
		else
			got = hpn_ring_enqueue_burst(r, buf, n);
		if (cycle & 1)
			assert_int_equal(got, n <= 32 - level ? n : 0);
		else
			assert_int_equal(got, n <= 32 - level ? n : 32 - level);
		next_in += got;
		level += got;
		assert_int_equal(hpn_ring_count(r), level);
		assert_int_equal(hpn_ring_free_count(r), 32 - level);

		n = (unsigned)(xorshift64() % 40);
		if (cycle & 2)
			got = hpn_ring_dequeue_bulk(r, buf, n);
		else
			got = hpn_ring_dequeue_burst(r, buf, n);
		if (cycle & 2)
			assert_int_equal(got, n <= level ? n : 0);
		else
			assert_int_equal(got, n <= level ? n : level);
		for (i = 0; i < got; i++)
			assert_int_equal(unval(buf[i]), next_out + i);
		next_out += got;
		level -= got;
	}
	/* 20000 cycles * ~10 per cycle: the 32-bit indices wrapped early on. */
	assert_true(next_in > 100000);
	assert_true(atomic_load(&r->prod.tail) < UINT32_MAX - 100);
	hpn_ring_destroy(r);
}

static void test_wrap(void **state)
{
	(void)state;
	check_wrap(0);
	check_wrap(HPN_RING_SP_ENQ | HPN_RING_SC_DEQ);
}

/* ---- SPSC stress ------------------------------------------------------- */

struct spsc_arg {
	struct hpn_ring *r;
	unsigned items;
};

static void *spsc_producer(void *p)
{
	struct spsc_arg *a = p;
	uintptr_t next = 1, end = (uintptr_t)a->items + 1;
	uint64_t rs = 0x1234567;
	void *buf[32];
	unsigned idle = 0;

	while (next < end) {
		unsigned n, i, got;

		rs ^= rs << 13;
		rs ^= rs >> 7;
		rs ^= rs << 17;
		n = 1 + (unsigned)(rs % 32);
		if (n > end - next)
			n = (unsigned)(end - next);
		for (i = 0; i < n; i++)
			buf[i] = val(next + i);
		got = (rs & 64) ? hpn_ring_enqueue_bulk(a->r, buf, n)
				: hpn_ring_enqueue_burst(a->r, buf, n);
		if (got == 0)
			backoff(&idle);
		next += got;
	}
	return NULL;
}

static void test_spsc_stress(void **state)
{
	struct spsc_arg a;
	pthread_t t;
	uintptr_t expect = 1;
	void *buf[32];
	unsigned idle = 0, k = 0;

	(void)state;
	a.r = make_ring(256, HPN_RING_SP_ENQ | HPN_RING_SC_DEQ);
	hpn_ring__set_indices(a.r, UINT32_MAX - 1000); /* wrap once under load */
	a.items = SPSC_ITEMS;
	assert_int_equal(pthread_create(&t, NULL, spsc_producer, &a), 0);
	while (expect <= SPSC_ITEMS) {
		unsigned n = 1 + (k++ % 29), got, i;

		got = (k & 1) ? hpn_ring_dequeue_burst(a.r, buf, n)
			      : hpn_ring_dequeue_bulk(a.r, buf, n);
		if (got == 0) {
			/* A bulk larger than the tail of the stream never fits. */
			if (!(k & 1) && SPSC_ITEMS + 1 - expect < n)
				continue;
			backoff(&idle);
		}
		for (i = 0; i < got; i++) {
			if (unval(buf[i]) != expect)
				fail_msg("got %lu expected %lu", (unsigned long)unval(buf[i]),
					 (unsigned long)expect);
			expect++;
		}
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(hpn_ring_count(a.r), 0);
	hpn_ring_destroy(a.r);
}

/* ---- MPSC / MPMC stress ------------------------------------------------ */

/* Item encoding: seq (from 1) in the high bits, producer id in the low 2. */
#define ID_BITS 2u
#define ENC(id, seq) val(((uintptr_t)(seq) << ID_BITS) | (uintptr_t)(id))
#define ID_OF(p) ((unsigned)(unval(p) & ((1u << ID_BITS) - 1u)))
#define SEQ_OF(p) (unval(p) >> ID_BITS)

struct mp_producer {
	struct hpn_ring *r;
	unsigned id, items;
};

static void *mp_producer(void *p)
{
	struct mp_producer *a = p;
	unsigned seq = 1, idle = 0, k = 0;
	void *buf[16];

	while (seq <= a->items) {
		unsigned n = 1 + (k++ % 16), i, got;

		if (n > a->items + 1 - seq)
			n = a->items + 1 - seq;
		for (i = 0; i < n; i++)
			buf[i] = ENC(a->id, seq + i);
		got = (k & 1) ? hpn_ring_enqueue_burst(a->r, buf, n)
			      : hpn_ring_enqueue_bulk(a->r, buf, n);
		if (got == 0)
			backoff(&idle);
		seq += got;
	}
	return NULL;
}

static void test_mpsc_stress(void **state)
{
	struct mp_producer prod[MPSC_PRODUCERS];
	pthread_t t[MPSC_PRODUCERS];
	uintptr_t last[MPSC_PRODUCERS] = { 0 };
	const unsigned long total = (unsigned long)MPSC_PRODUCERS * MPSC_ITEMS_PER_PRODUCER;
	unsigned long seen = 0;
	struct hpn_ring *r;
	void *buf[32];
	unsigned i, idle = 0;

	(void)state;
	r = make_ring(128, HPN_RING_SC_DEQ);
	hpn_ring__set_indices(r, UINT32_MAX - 5000);
	for (i = 0; i < MPSC_PRODUCERS; i++) {
		prod[i] = (struct mp_producer){ r, i, MPSC_ITEMS_PER_PRODUCER };
		assert_int_equal(pthread_create(&t[i], NULL, mp_producer, &prod[i]), 0);
	}
	while (seen < total) {
		unsigned got = hpn_ring_dequeue_burst(r, buf, 32), j;

		if (got == 0)
			backoff(&idle);
		for (j = 0; j < got; j++) {
			unsigned id = ID_OF(buf[j]);

			assert_true(id < MPSC_PRODUCERS);
			if (SEQ_OF(buf[j]) != last[id] + 1)
				fail_msg("producer %u: got seq %lu after %lu", id,
					 (unsigned long)SEQ_OF(buf[j]), (unsigned long)last[id]);
			last[id]++;
		}
		seen += got;
	}
	for (i = 0; i < MPSC_PRODUCERS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(last[i], MPSC_ITEMS_PER_PRODUCER);
	}
	assert_int_equal(hpn_ring_count(r), 0);
	hpn_ring_destroy(r);
}

struct mp_consumer {
	struct hpn_ring *r;
	atomic_ulong *consumed;
	unsigned long total;
	uint64_t sum;
	unsigned long count;
	/* per producer: last sequence this consumer saw (must increase) */
	uintptr_t last[MPMC_PRODUCERS];
	int order_ok;
	unsigned char *seen; /* [producer][seq], set by this consumer only */
};

static void *mp_consumer(void *p)
{
	struct mp_consumer *c = p;
	unsigned idle = 0, k = 0;
	void *buf[16];

	c->order_ok = 1;
	while (atomic_load_explicit(c->consumed, memory_order_relaxed) < c->total) {
		unsigned n = 1 + (k++ % 16), got, j;

		got = (k & 1) ? hpn_ring_dequeue_burst(c->r, buf, n)
			      : hpn_ring_dequeue_bulk(c->r, buf, n);
		if (got == 0) {
			backoff(&idle);
			continue;
		}
		for (j = 0; j < got; j++) {
			unsigned id = ID_OF(buf[j]);
			uintptr_t seq = SEQ_OF(buf[j]);

			if (id >= MPMC_PRODUCERS || seq == 0 || seq > MPMC_ITEMS_PER_PRODUCER ||
			    seq <= c->last[id]) {
				c->order_ok = 0;
				continue;
			}
			c->last[id] = seq;
			c->seen[(size_t)id * (MPMC_ITEMS_PER_PRODUCER + 1) + seq]++;
			c->sum += unval(buf[j]);
			c->count++;
		}
		atomic_fetch_add_explicit(c->consumed, got, memory_order_relaxed);
	}
	return NULL;
}

static void test_mpmc_stress(void **state)
{
	struct mp_producer prod[MPMC_PRODUCERS];
	struct mp_consumer cons[MPMC_CONSUMERS];
	pthread_t tp[MPMC_PRODUCERS], tc[MPMC_CONSUMERS];
	const size_t per = MPMC_ITEMS_PER_PRODUCER + 1;
	const unsigned long total = (unsigned long)MPMC_PRODUCERS * MPMC_ITEMS_PER_PRODUCER;
	atomic_ulong consumed = 0;
	uint64_t want_sum = 0, sum = 0;
	unsigned long count = 0;
	struct hpn_ring *r;
	unsigned i, s;
	size_t j;

	(void)state;
	r = make_ring(64, 0);
	hpn_ring__set_indices(r, UINT32_MAX - 3000);
	for (i = 0; i < MPMC_CONSUMERS; i++) {
		memset(&cons[i], 0, sizeof(cons[i]));
		cons[i].r = r;
		cons[i].consumed = &consumed;
		cons[i].total = total;
		cons[i].seen = calloc(MPMC_PRODUCERS * per, 1);
		assert_non_null(cons[i].seen);
		assert_int_equal(pthread_create(&tc[i], NULL, mp_consumer, &cons[i]), 0);
	}
	for (i = 0; i < MPMC_PRODUCERS; i++) {
		prod[i] = (struct mp_producer){ r, i, MPMC_ITEMS_PER_PRODUCER };
		assert_int_equal(pthread_create(&tp[i], NULL, mp_producer, &prod[i]), 0);
	}
	for (i = 0; i < MPMC_PRODUCERS; i++)
		assert_int_equal(pthread_join(tp[i], NULL), 0);
	for (i = 0; i < MPMC_CONSUMERS; i++) {
		assert_int_equal(pthread_join(tc[i], NULL), 0);
		assert_true(cons[i].order_ok);
		sum += cons[i].sum;
		count += cons[i].count;
	}
	for (i = 0; i < MPMC_PRODUCERS; i++)
		for (s = 1; s <= MPMC_ITEMS_PER_PRODUCER; s++)
			want_sum += unval(ENC(i, s));
	assert_int_equal(count, total);
	assert_int_equal(sum, want_sum);
	/* exactly once: each item seen by exactly one consumer, once */
	for (j = 0; j < MPMC_PRODUCERS * per; j++) {
		unsigned n = 0;

		for (i = 0; i < MPMC_CONSUMERS; i++)
			n += cons[i].seen[j];
		assert_int_equal(n, (j % per) == 0 ? 0 : 1);
	}
	assert_int_equal(hpn_ring_count(r), 0);
	for (i = 0; i < MPMC_CONSUMERS; i++)
		free(cons[i].seen);
	hpn_ring_destroy(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_destroy),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_burst_bulk),
		cmocka_unit_test(test_wrap),
		cmocka_unit_test(test_spsc_stress),
		cmocka_unit_test(test_mpsc_stress),
		cmocka_unit_test(test_mpmc_stress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
