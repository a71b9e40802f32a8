/* SPDX-License-Identifier: MIT */
/* Unit tests of the hpn_hist_* latency histogram. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <hpn/hpn.h>

#define N_RANDOM 1000000u

static uint64_t rng_state;

static uint64_t xorshift64(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

/* Uniform in (0, 1]. */
static double uniform01(void)
{
	return (double)((xorshift64() >> 11) + 1) * 0x1p-53;
}

/*
 * Heavy-tailed latency-like samples in [100, 1e8]: mostly lognormal around
 * ~2 us, plus a Pareto tail (alpha 1.1) that reaches the clamp.
 */
static uint64_t heavy_tailed(void)
{
	double v;

	if ((xorshift64() & 15) != 0) {
		/* Box-Muller: normal(mu = ln 2000, sigma = 1) */
		double z = sqrt(-2.0 * log(uniform01())) * cos(2.0 * M_PI * uniform01());

		v = exp(log(2000.0) + z);
	} else {
		v = 5000.0 / pow(uniform01(), 1.0 / 1.1);
	}
	if (v < 100.0)
		v = 100.0;
	if (v > 1e8)
		v = 1e8;
	return (uint64_t)v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Reference mean and population stdev, two-pass in long double. */
static void ref_moments(const uint64_t *v, size_t n, double *mean, double *sd)
{
	long double s = 0, m, ss = 0;
	size_t i;

	for (i = 0; i < n; i++)
		s += (long double)v[i];
	m = s / (long double)n;
	for (i = 0; i < n; i++) {
		long double d = (long double)v[i] - m;

		ss += d * d;
	}
	*mean = (double)m;
	*sd = (double)sqrtl(ss / (long double)n);
}

static void assert_rel(double got, double want, double tol)
{
	double err = fabs(got - want) / (want != 0 ? fabs(want) : 1.0);

	if (!(err <= tol))
		fail_msg("got %.17g want %.17g (rel err %.3g > %.3g)", got, want, err, tol);
}

static void test_bad_args(void **state)
{
	hpn_hist *h = NULL, *g = NULL;

	(void)state;
	assert_int_equal(hpn_hist_create(0, &h), -EINVAL);
	assert_int_equal(hpn_hist_create(1000, NULL), -EINVAL);
	assert_int_equal(hpn_hist_create(1000, &h), 0);
	assert_int_equal(hpn_hist_create(1001, &g), 0);
	assert_int_equal(hpn_hist_merge(h, g), -EINVAL);
	assert_int_equal(hpn_hist_merge(g, h), -EINVAL);
	assert_int_equal(hpn_hist_merge(NULL, h), -EINVAL);
	assert_int_equal(hpn_hist_merge(h, NULL), -EINVAL);
	hpn_hist_destroy(h);
	hpn_hist_destroy(g);
	hpn_hist_destroy(NULL);
	hpn_hist_reset(NULL);
}

static void assert_empty(const hpn_hist *h)
{
	assert_int_equal(hpn_hist_count(h), 0);
	assert_int_equal(hpn_hist_min(h), 0);
	assert_int_equal(hpn_hist_max(h), 0);
	assert_true(hpn_hist_mean(h) == 0.0);
	assert_true(hpn_hist_stdev(h) == 0.0);
	assert_int_equal(hpn_hist_percentile(h, 0), 0);
	assert_int_equal(hpn_hist_percentile(h, 50), 0);
	assert_int_equal(hpn_hist_percentile(h, 100), 0);
}

static void test_empty(void **state)
{
	hpn_hist *h;

	(void)state;
	assert_int_equal(hpn_hist_create(1000000, &h), 0);
	assert_empty(h);
	hpn_hist_destroy(h);
}

/* Every value below 512 has its own bucket (contract: below 256). */
static void test_exact_small(void **state)
{
	hpn_hist *h;
	uint64_t v;

	(void)state;
	assert_int_equal(hpn_hist_create(UINT64_MAX, &h), 0);
	for (v = 1; v <= 100; v++)
		hpn_hist_record(h, v);
	assert_int_equal(hpn_hist_percentile(h, 0.5), 1); /* rank ceil(0.5) = 1 */
	assert_int_equal(hpn_hist_percentile(h, 1), 1);
	assert_int_equal(hpn_hist_percentile(h, 1.5), 2);
	assert_int_equal(hpn_hist_percentile(h, 50), 50);
	assert_int_equal(hpn_hist_percentile(h, 50.5), 51);
	assert_int_equal(hpn_hist_percentile(h, 99), 99);
	assert_int_equal(hpn_hist_percentile(h, 99.01), 100);
	assert_int_equal(hpn_hist_percentile(h, 0), 1);
	assert_int_equal(hpn_hist_percentile(h, -3), 1);
	assert_int_equal(hpn_hist_percentile(h, 100), 100);
	assert_int_equal(hpn_hist_percentile(h, 250), 100);
	assert_true(hpn_hist_mean(h) == 50.5);
	assert_rel(hpn_hist_stdev(h), sqrt((100.0 * 100.0 - 1.0) / 12.0), 1e-15);

	hpn_hist_reset(h);
	for (v = 0; v < 512; v++)
		hpn_hist_record(h, v);
	for (v = 0; v < 512; v++) {
		/* p = (v + 1) / 512 * 100 is exactly representable: rank v + 1 */
		double p = (double)(v + 1) * 100.0 / 512.0;

		assert_int_equal(hpn_hist_percentile(h, p), v);
	}
	hpn_hist_destroy(h);
}

/* Single values anywhere in the range: min, max and percentiles are exact
 * because of the clamp to [min, max]. */
static void test_single_values(void **state)
{
	static const uint64_t vals[] = { 0, 1, 255, 256, 511, 512, 513, 1000, 123456789,
					 (1ull << 40) + 12345, UINT64_MAX - 1, UINT64_MAX };
	hpn_hist *h;
	size_t i;

	(void)state;
	assert_int_equal(hpn_hist_create(UINT64_MAX, &h), 0);
	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		hpn_hist_reset(h);
		hpn_hist_record(h, vals[i]);
		assert_int_equal(hpn_hist_count(h), 1);
		assert_int_equal(hpn_hist_min(h), vals[i]);
		assert_int_equal(hpn_hist_max(h), vals[i]);
		assert_int_equal(hpn_hist_percentile(h, 50), vals[i]);
		assert_true(hpn_hist_mean(h) == (double)vals[i]);
		assert_true(hpn_hist_stdev(h) == 0.0);
	}
	/* Two extreme values: mean and stdev without overflow. */
	hpn_hist_reset(h);
	hpn_hist_record(h, 0);
	hpn_hist_record(h, UINT64_MAX);
	assert_rel(hpn_hist_mean(h), 0x1p63, 1e-15);
	assert_rel(hpn_hist_stdev(h), 0x1p63, 1e-15);
	assert_int_equal(hpn_hist_percentile(h, 50), 0);
	assert_int_equal(hpn_hist_percentile(h, 51), UINT64_MAX);
	hpn_hist_destroy(h);
}

/* Every bucket boundary around powers of two: the reported upper end is
 * >= the value and within 1/256 of it. */
static void test_bucket_bounds(void **state)
{
	hpn_hist *h;
	unsigned b;
	int d;

	(void)state;
	assert_int_equal(hpn_hist_create(UINT64_MAX, &h), 0);
	for (b = 8; b < 64; b++) {
		for (d = -3; d <= 3; d++) {
			uint64_t v = (1ull << b) + (uint64_t)(int64_t)d, got;

			hpn_hist_reset(h);
			hpn_hist_record(h, 0); /* keep max from clamping the answer */
			hpn_hist_record(h, v);
			hpn_hist_record(h, UINT64_MAX);
			got = hpn_hist_percentile(h, 50);
			assert_true(got >= v);
			assert_true((long double)(got - v) <= (long double)v / 256.0L);
		}
	}
	hpn_hist_destroy(h);
}

struct pct {
	unsigned num, den; /* p = num / den percent */
};

static const struct pct pcts[] = {
	{ 0, 1 }, { 1, 1 }, { 50, 1 }, { 90, 1 }, { 99, 1 }, { 999, 10 }, { 9999, 100 }, { 100, 1 },
};

static void test_random_vs_reference(void **state)
{
	uint64_t *vals = malloc(N_RANDOM * sizeof(*vals));
	hpn_hist *h;
	double mean, sd, worst = 0;
	size_t i;

	(void)state;
	assert_non_null(vals);
	assert_int_equal(hpn_hist_create(100000000, &h), 0);
	rng_state = 0x9e3779b97f4a7c15ull;
	for (i = 0; i < N_RANDOM; i++) {
		vals[i] = heavy_tailed();
		hpn_hist_record(h, vals[i]);
	}
	ref_moments(vals, N_RANDOM, &mean, &sd);
	qsort(vals, N_RANDOM, sizeof(*vals), cmp_u64);

	assert_int_equal(hpn_hist_count(h), N_RANDOM);
	assert_int_equal(hpn_hist_min(h), vals[0]);
	assert_int_equal(hpn_hist_max(h), vals[N_RANDOM - 1]);
	assert_rel(hpn_hist_mean(h), mean, 1e-9);
	assert_rel(hpn_hist_stdev(h), sd, 1e-9);

	for (i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
		double p = (double)pcts[i].num / pcts[i].den;
		/* exact rank = ceil(num * n / (100 den)), at least 1 */
		uint64_t q = 100ull * pcts[i].den;
		uint64_t rank = ((uint64_t)pcts[i].num * N_RANDOM + q - 1) / q;
		uint64_t want, got;

		if (rank < 1)
			rank = 1;
		want = vals[rank - 1];
		got = hpn_hist_percentile(h, p);
		if (got < want || (double)(got - want) > (double)want * (1.0 / 256 + 1e-12))
			fail_msg("p%g: got %llu want %llu", p, (unsigned long long)got,
				 (unsigned long long)want);
	}
	/* Dense sweep: worst relative error over 10000 percentiles. */
	for (i = 1; i <= 10000; i++) {
		uint64_t rank = ((uint64_t)i * N_RANDOM + 9999) / 10000;
		uint64_t want = vals[rank - 1], got = hpn_hist_percentile(h, i / 100.0);
		double err = ((double)got - (double)want) / (double)want;

		assert_true(got >= want);
		if (err > worst)
			worst = err;
	}
	assert_true(worst <= 1.0 / 256);
	print_message("worst percentile relative error %.5f%% (bound %.5f%%)\n", worst * 100,
		      100.0 / 256);
	hpn_hist_destroy(h);
	free(vals);
}

/* Large offset, tiny spread: where naive sum-of-squares loses everything. */
static void test_moments_offset(void **state)
{
	const uint64_t base = 10000000000000ull; /* 1e13 */
	uint64_t *vals = malloc(N_RANDOM * sizeof(*vals));
	hpn_hist *h;
	double mean, sd;
	size_t i;
	int k;

	(void)state;
	assert_non_null(vals);
	assert_int_equal(hpn_hist_create(UINT64_MAX, &h), 0);
	rng_state = 12345;
	for (i = 0; i < N_RANDOM; i++) {
		vals[i] = base + (xorshift64() % 7);
		hpn_hist_record(h, vals[i]);
	}
	ref_moments(vals, N_RANDOM, &mean, &sd);
	assert_rel(hpn_hist_mean(h), mean, 1e-15);
	assert_rel(hpn_hist_stdev(h), sd, 1e-12);

	/* 10^6 * 2^7 samples through self-merge: moments must not drift. */
	for (k = 0; k < 7; k++)
		assert_int_equal(hpn_hist_merge(h, h), 0);
	assert_int_equal(hpn_hist_count(h), (uint64_t)N_RANDOM << 7);
	assert_rel(hpn_hist_mean(h), mean, 1e-15);
	assert_rel(hpn_hist_stdev(h), sd, 1e-12);
	hpn_hist_destroy(h);
	free(vals);
}

static void assert_same(const hpn_hist *a, const hpn_hist *b)
{
	double p;

	assert_int_equal(hpn_hist_count(a), hpn_hist_count(b));
	assert_int_equal(hpn_hist_min(a), hpn_hist_min(b));
	assert_int_equal(hpn_hist_max(a), hpn_hist_max(b));
	assert_true(hpn_hist_mean(a) == hpn_hist_mean(b));
	assert_true(hpn_hist_stdev(a) == hpn_hist_stdev(b));
	for (p = 0; p <= 100; p += 0.125)
		assert_int_equal(hpn_hist_percentile(a, p), hpn_hist_percentile(b, p));
}

static void test_merge(void **state)
{
	hpn_hist *a, *b, *all, *empty;
	size_t i;

	(void)state;
	assert_int_equal(hpn_hist_create(100000000, &a), 0);
	assert_int_equal(hpn_hist_create(100000000, &b), 0);
	assert_int_equal(hpn_hist_create(100000000, &all), 0);
	assert_int_equal(hpn_hist_create(100000000, &empty), 0);
	rng_state = 777;
	for (i = 0; i < 200000; i++) {
		uint64_t v = heavy_tailed();

		/* Different shapes in a and b so min/max come from both. */
		hpn_hist_record(v % 3 ? a : b, v);
		hpn_hist_record(all, v);
	}
	hpn_hist_record(b, 1);
	hpn_hist_record(all, 1);
	assert_int_equal(hpn_hist_merge(a, empty), 0);
	assert_int_equal(hpn_hist_merge(a, b), 0);
	assert_same(a, all);
	assert_int_equal(hpn_hist_merge(empty, a), 0);
	assert_same(empty, all);
	hpn_hist_destroy(a);
	hpn_hist_destroy(b);
	hpn_hist_destroy(all);
	hpn_hist_destroy(empty);
}

static void test_clamp(void **state)
{
	hpn_hist *h;

	(void)state;
	assert_int_equal(hpn_hist_create(1000, &h), 0);
	hpn_hist_record(h, 10);
	hpn_hist_record(h, 5000);
	hpn_hist_record(h, UINT64_MAX);
	assert_int_equal(hpn_hist_count(h), 3);
	assert_int_equal(hpn_hist_max(h), 1000);
	assert_int_equal(hpn_hist_percentile(h, 100), 1000);
	assert_int_equal(hpn_hist_percentile(h, 50), 1000);
	assert_int_equal(hpn_hist_percentile(h, 10), 10);
	assert_true(hpn_hist_mean(h) == 2010.0 / 3);
	hpn_hist_destroy(h);
}

static void test_reset(void **state)
{
	hpn_hist *h;
	uint64_t v;

	(void)state;
	assert_int_equal(hpn_hist_create(1u << 30, &h), 0);
	for (v = 1000; v < 100000; v += 7)
		hpn_hist_record(h, v);
	hpn_hist_reset(h);
	assert_empty(h);
	/* 701 is the upper end of its 2-wide bucket [700, 701]. */
	hpn_hist_record(h, 701);
	hpn_hist_record(h, 901);
	assert_int_equal(hpn_hist_count(h), 2);
	assert_int_equal(hpn_hist_min(h), 701);
	assert_int_equal(hpn_hist_max(h), 901);
	assert_int_equal(hpn_hist_percentile(h, 50), 701);
	assert_int_equal(hpn_hist_percentile(h, 99), 901);
	assert_true(hpn_hist_mean(h) == 801.0);
	assert_true(hpn_hist_stdev(h) == 100.0);
	hpn_hist_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_exact_small),
		cmocka_unit_test(test_single_values),
		cmocka_unit_test(test_bucket_bounds),
		cmocka_unit_test(test_random_vs_reference),
		cmocka_unit_test(test_moments_offset),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_clamp),
		cmocka_unit_test(test_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
