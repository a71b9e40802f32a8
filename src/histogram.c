/* SPDX-License-Identifier: MIT */
/*
 * histogram.c - log-linear latency histogram (HdrHistogram-like).
 *
 * Bucket layout: a value keeps its 9 most significant bits.
 *   - v < 512: one bucket per value (exact; the contract promises < 256).
 *   - v >= 512 with highest set bit m: width 2^(m-8), 256 buckets per power
 *     of two, so a bucket [L, U] has (U - L) / L < 1/256.
 * Percentiles report the upper end U of a bucket; since the true sample v
 * satisfies L <= v <= U, the error (U - v) / v stays below 1/256 as the
 * header promises. (Keeping only 8 significant bits would give 1/128.)
 *
 * Index of v (shift s = max(m - 8, 0)): (s << 8) + (v >> s).  For s == 0
 * this is v itself (0..511); for s >= 1 the sub-bucket v >> s is in
 * [256, 512), so the indices of consecutive octaves tile without gaps.
 * max_value = UINT64_MAX needs 14592 buckets (114 KiB), 1e9 (1 s in ns)
 * needs 5853 (46 KiB).
 *
 * Moments are kept as exact integers: sum of values in 128 bits (n * v <
 * 2^128 always) and sum of squares in 192 bits, so mean and stdev are exact
 * up to the final rounding whatever the count and the offset of the data
 * (no catastrophic cancellation, unlike sum-of-squares in floating point).
 *
 * Recording into and reading from the same histogram from several threads
 * needs external synchronisation (see hpn.h). Getters and record take a
 * non-NULL histogram; destroy and reset accept NULL.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hpn/hpn.h>

#ifndef HPN_EXPORT
#define HPN_EXPORT __attribute__((visibility("default")))
#endif

__extension__ typedef unsigned __int128 hpn_u128;

#define HPN_HIST_SUB_BITS 8 /* 2^8 sub-buckets per octave above the exact range */

struct hpn_hist {
	uint64_t max_value; /* recorded values are clamped to this */
	uint64_t count;
	uint64_t min; /* UINT64_MAX while empty */
	uint64_t max;
	hpn_u128 sum;
	hpn_u128 sumsq_lo; /* sum of squares = sumsq_hi * 2^128 + sumsq_lo */
	uint64_t sumsq_hi;
	size_t nbuckets;
	uint64_t counts[];
};

static inline size_t hist_index(uint64_t v)
{
	/* |1 keeps clz defined for 0 without a branch; 0 and 1 share msb 0. */
	unsigned msb = 63u - (unsigned)__builtin_clzll(v | 1u);
	unsigned shift = msb > HPN_HIST_SUB_BITS ? msb - HPN_HIST_SUB_BITS : 0u;

	return ((size_t)shift << HPN_HIST_SUB_BITS) + (size_t)(v >> shift);
}

/* Largest value that maps to bucket idx. */
static uint64_t hist_upper(size_t idx)
{
	size_t octave = idx >> HPN_HIST_SUB_BITS;
	unsigned shift;
	uint64_t sub;

	if (octave <= 1)
		return idx; /* exact range 0..511 */
	shift = (unsigned)(octave - 1);
	sub = (1u << HPN_HIST_SUB_BITS) + (idx & ((1u << HPN_HIST_SUB_BITS) - 1u));
	/* For the very last bucket (sub + 1) << 55 wraps to 0 and the result
	 * to UINT64_MAX, which is the right answer. */
	return ((sub + 1u) << shift) - 1u;
}

static void hist_clear(hpn_hist *h)
{
	if (h->count != 0) {
		/* Only buckets between min and max can be non-zero. */
		size_t lo = hist_index(h->min), hi = hist_index(h->max);

		memset(&h->counts[lo], 0, (hi - lo + 1) * sizeof(h->counts[0]));
	}
	h->count = 0;
	h->min = UINT64_MAX;
	h->max = 0;
	h->sum = 0;
	h->sumsq_lo = 0;
	h->sumsq_hi = 0;
}

HPN_EXPORT int hpn_hist_create(uint64_t max_value, hpn_hist **out)
{
	hpn_hist *h;
	size_t n;

	/* A range of just {0} is never what a caller meant (an unset
	 * variable, most likely). */
	if (out == NULL || max_value == 0)
		return -EINVAL;
	n = hist_index(max_value) + 1;
	h = calloc(1, sizeof(*h) + n * sizeof(h->counts[0]));
	if (h == NULL)
		return -ENOMEM;
	h->max_value = max_value;
	h->nbuckets = n;
	h->min = UINT64_MAX;
	*out = h;
	return 0;
}

HPN_EXPORT void hpn_hist_destroy(hpn_hist *h)
{
	free(h);
}

HPN_EXPORT void hpn_hist_reset(hpn_hist *h)
{
	if (h != NULL)
		hist_clear(h);
}

HPN_EXPORT void hpn_hist_record(hpn_hist *h, uint64_t value)
{
	hpn_u128 sq;

	/* Clamping (rather than dropping) keeps count and the percentiles'
	 * ranks honest: an overflowing sample still counts as "slowest". */
	if (value > h->max_value)
		value = h->max_value;
	h->counts[hist_index(value)]++;
	h->count++;
	if (value < h->min)
		h->min = value;
	if (value > h->max)
		h->max = value;
	h->sum += value;
	sq = (hpn_u128)value * value;
	h->sumsq_lo += sq;
	h->sumsq_hi += h->sumsq_lo < sq; /* carry */
}

HPN_EXPORT int hpn_hist_merge(hpn_hist *dst, const hpn_hist *src)
{
	size_t i, lo, hi;

	if (dst == NULL || src == NULL || dst->max_value != src->max_value)
		return -EINVAL;
	if (src->count == 0)
		return 0;
	lo = hist_index(src->min);
	hi = hist_index(src->max);
	/* Works for dst == src too: each bucket is read before it is written. */
	for (i = lo; i <= hi; i++)
		dst->counts[i] += src->counts[i];
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->count += src->count;
	dst->sum += src->sum;
	dst->sumsq_hi += src->sumsq_hi;
	dst->sumsq_lo += src->sumsq_lo;
	dst->sumsq_hi += dst->sumsq_lo < src->sumsq_lo;
	return 0;
}

HPN_EXPORT uint64_t hpn_hist_count(const hpn_hist *h)
{
	return h->count;
}

HPN_EXPORT uint64_t hpn_hist_min(const hpn_hist *h)
{
	return h->count ? h->min : 0;
}

HPN_EXPORT uint64_t hpn_hist_max(const hpn_hist *h)
{
	return h->max;
}

/* sum = q * n + r with 0 <= r < n; q <= max_value fits 64 bits. */
static void hist_divmod(const hpn_hist *h, uint64_t *q, uint64_t *r)
{
	hpn_u128 qq = h->sum / h->count;

	*q = (uint64_t)qq;
	*r = (uint64_t)(h->sum - qq * h->count);
}

HPN_EXPORT double hpn_hist_mean(const hpn_hist *h)
{
	uint64_t q, r;

	if (h->count == 0)
		return 0.0;
	hist_divmod(h, &q, &r);
	return (double)((long double)q + (long double)r / (long double)h->count);
}

HPN_EXPORT double hpn_hist_stdev(const hpn_hist *h)
{
	uint64_t q, r, dhi, a_lo, a_hi, borrow;
	hpn_u128 p0, p1, qs_lo, qr, dlo;
	long double n, d, var;

	if (h->count < 2)
		return 0.0;
	hist_divmod(h, &q, &r);
	/*
	 * Shift the data by the integer part q of the mean, in exact 192-bit
	 * arithmetic:  D = sum (v - q)^2 = S2 - 2 q S1 + n q^2 = S2 - q S1 - q r
	 * (using n q = S1 - r).  D >= 0 is small relative to S2 when the spread
	 * is small relative to the mean, which is exactly where the textbook
	 * S2/n - mean^2 in floating point falls apart.  Then
	 * n var = D - n (r/n)^2.
	 */
	a_lo = (uint64_t)h->sum;
	a_hi = (uint64_t)(h->sum >> 64);
	p0 = (hpn_u128)q * a_lo;
	p1 = (hpn_u128)q * a_hi;
	/* q * S1 = p1 * 2^64 + p0 as a 192-bit number (qs_hi : qs_lo) */
	qs_lo = p0 + (p1 << 64);
	dhi = (uint64_t)(p1 >> 64) + (qs_lo < p0);
	/* D = S2 - q S1 (mod 2^192; the true D is non-negative and < 2^192) */
	dlo = h->sumsq_lo - qs_lo;
	borrow = h->sumsq_lo < qs_lo;
	dhi = h->sumsq_hi - dhi - borrow;
	/* D -= q r */
	qr = (hpn_u128)q * r;
	borrow = dlo < qr;
	dlo -= qr;
	dhi -= borrow;

	n = (long double)h->count;
	d = (long double)dhi * 0x1p128L + (long double)dlo;
	var = (d - (long double)r * ((long double)r / n)) / n;
	if (var <= 0)
		return 0.0;
	return sqrt((double)var);
}

HPN_EXPORT uint64_t hpn_hist_percentile(const hpn_hist *h, double p)
{
	uint64_t rank, cum, v;
	long double x;
	size_t i, lo, hi;

	if (h->count == 0)
		return 0;
	if (!(p > 0.0)) /* also NaN */
		return h->min;
	if (p >= 100.0)
		return h->max;

	/*
	 * rank = ceil(p/100 * count), at least 1.  p is a binary double, so a
	 * decimal like 99.9 arrives a few ulp off and p/100*count can land a
	 * hair above an integer; treat anything within a relative 1e-12 of an
	 * integer as that integer so that p = 99.9 over 10^6 samples gives rank
	 * 999000, not 999001.
	 */
	x = (long double)p * (long double)h->count / 100.0L;
	rank = (uint64_t)x;
	if ((long double)rank < x && x - (long double)rank > x * 1e-12L)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;

	lo = hist_index(h->min);
	hi = hist_index(h->max);
	if (rank <= h->count / 2) {
		for (i = lo, cum = 0;; i++) {
			cum += h->counts[i];
			if (cum >= rank || i == hi)
				break;
		}
	} else {
		/* High percentiles are the common question: walk down from max.
		 * The rank-th smallest is the (count - rank + 1)-th largest. */
		uint64_t want = h->count - rank + 1;

		for (i = hi, cum = 0;; i--) {
			cum += h->counts[i];
			if (cum >= want || i == lo)
				break;
		}
	}
	v = hist_upper(i);
	if (v > h->max)
		v = h->max;
	if (v < h->min)
		v = h->min;
	return v;
}
