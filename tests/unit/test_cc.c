/* Congestion control (src/packet/cc.c) seen from outside: reliable streams
 * (src/packet/conn.c, the real thing) through a simulated bottleneck - a
 * link of fixed rate behind a FIFO of fixed size that drops the tail when
 * full, like a switch port or a socket buffer - under a virtual clock.
 * There is no netem on the machine this was written on; a simulation also
 * makes the figures exact and repeatable.
 *  - one stream keeps the link busy with a short queue and no drops, where
 *    the same stream without congestion control fills the buffer and
 *    overflows it;
 *  - two streams through one bottleneck share it;
 *  - random loss on the link does not slow a stream down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "packet/conn.h"
#include "packet/hello.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define US 1000ull
#define MS 1000000ull
#define MSG (64 * 1024)
#define NPAIR 2

/* The link: 10 Gb/s (0.8 ns per byte), 10 us each way, a 200-packet
 * buffer in front of the forward direction (a to b); acks come back
 * unqueued. */
#define PS_PER_BYTE 800
#define PROP_NS (10 * US)
#define BUF_BYTES (200 * 1500)

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static double loss; /* random loss on the forward link */

static int chance(double p)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)((rng >> 11) % 1000000) < p * 1000000.0;
}

struct dgram {
	uint64_t at;  /* arrival */
	uint64_t dep; /* leaves the bottleneck (forward only; 0 for acks) */
	int pair, to; /* to: 0 a, 1 b */
	uint16_t len;
	uint8_t data[1500];
};

#define QMAX 4096
static struct dgram q[QMAX];
static unsigned qn;
static uint64_t now, link_free; /* when the link finishes its last packet */

struct side {
	int pair, id;
	uint64_t bytes; /* delivered to this side */
};

static struct hpn_conn a[NPAIR], b[NPAIR];
static struct side sa[NPAIR], sb[NPAIR];
static uint64_t drops, queue_sum, queue_max, queue_samples;

static uint64_t queued_bytes(void)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < qn; i++)
		if (q[i].dep > now)
			n += q[i].len;
	return n;
}

static void xmit(void *arg, const uint8_t *pkt, size_t len)
{
	const struct side *s = arg;
	struct dgram *d;

	assert_true(qn < QMAX);
	d = &q[qn];
	*d = (struct dgram){.pair = s->pair, .to = s->id ^ 1, .len = (uint16_t)len};
	memcpy(d->data, pkt, len);
	if (s->id == 0) { /* forward: through the bottleneck */
		if (queued_bytes() + len > BUF_BYTES) {
			drops++;
			return;
		}
		if (chance(loss))
			return;
		link_free = (link_free > now ? link_free : now) + len * PS_PER_BYTE / 1000;
		d->dep = link_free;
		d->at = link_free + PROP_NS;
	} else {
		d->at = now + PROP_NS;
	}
	qn++;
}

static void deliver(void *arg, const uint8_t *msg, size_t len)
{
	(void)msg;
	((struct side *)arg)->bytes += len;
}

static void gone(void *arg, int status)
{
	(void)arg;
	fail_msg("a stream died (%d)", status);
}

static const struct hpn_conn_ops ops = {.xmit = xmit, .deliver = deliver, .gone = gone};

/* b[i] listens as pktep.c does (hello.h): COOKIE for a HELLO, accept on a
 * valid COOKIE_ECHO. */
static const struct hpn_hello_key key = {0x0123456789abcdefull, 0xfedcba9876543210ull};

static bool listener(int i, const uint8_t *pkt, size_t len)
{
	uint8_t out[HPN_PKT_HDR + HPN_PKT_HS_LEN];
	uint8_t addr[4] = {10, 0, 0, (uint8_t)(1 + i)};
	struct hpn_pkt h, ours = {.window = b[i].tx.size, .max_msg = b[i].cfg.max_msg, .mtu = b[i].cfg.mtu};
	uint32_t isn;

	if (b[i].state != HPN_CONN_IDLE || len < HPN_PKT_HDR ||
	    (pkt[2] != HPN_PKT_HELLO && pkt[2] != HPN_PKT_COOKIE_ECHO) || hpn_pkt_decode(pkt, len, MSG, &h))
		return false;
	if (h.type == HPN_PKT_HELLO)
		xmit(&sb[i], out, hpn_hello_cookie(&key, addr, sizeof(addr), &h, &ours, (uint32_t)(now / MS), out));
	else if (!hpn_hello_check(&key, addr, sizeof(addr), &h, (uint32_t)(now / MS), 2000, &isn))
		hpn_conn_accept(&b[i], &h, isn, now);
	return true;
}

static int by_time(const void *x, const void *y)
{
	const struct dgram *p = x, *r = y;

	return p->at < r->at ? -1 : p->at > r->at;
}

/* Advance 1 us: deliver what arrived, run every timer, sample the queue. */
static void step(unsigned npair)
{
	static struct dgram due[QMAX];
	unsigned nd = 0, k = 0;
	uint64_t qb;

	now += US;
	for (unsigned i = 0; i < qn; i++) {
		if (q[i].at <= now)
			due[nd++] = q[i];
		else
			q[k++] = q[i];
	}
	qn = k;
	qsort(due, nd, sizeof(due[0]), by_time);
	for (unsigned i = 0; i < nd; i++) {
		struct dgram *d = &due[i];

		if (d->to == 0 || !listener(d->pair, d->data, d->len))
			hpn_conn_input(d->to ? &b[d->pair] : &a[d->pair], d->data, d->len, now);
	}
	for (unsigned i = 0; i < npair; i++) {
		hpn_conn_tick(&a[i], now);
		hpn_conn_tick(&b[i], now);
	}
	qb = queued_bytes();
	queue_sum += qb;
	queue_samples++;
	if (qb > queue_max)
		queue_max = qb;
}

static void start(int i, bool cc)
{
	struct hpn_conn_cfg cfg = {.mtu = 1472, .window = 256, .max_msg = MSG, .reliable = true, .cc_off = !cc};

	sa[i] = (struct side){.pair = i, .id = 0};
	sb[i] = (struct side){.pair = i, .id = 1};
	assert_int_equal(hpn_conn_init(&a[i], &cfg, &ops, &sa[i]), 0);
	assert_int_equal(hpn_conn_init(&b[i], &cfg, &ops, &sb[i]), 0);
	hpn_conn_connect(&a[i], 0x5eed + (uint32_t)i, 0x1000u * (uint32_t)(i + 1), 0, now);
}

/* Every started sender keeps its send window full of 64 KiB messages. */
static void feed(unsigned npair)
{
	static uint8_t buf[MSG];

	for (unsigned i = 0; i < npair; i++) {
		struct hpn_conn_msg m = {buf, MSG, false};

		if (a[i].state == HPN_CONN_UP)
			while (hpn_conn_send(&a[i], &m, 1, now) == 1)
				;
	}
}

static void reset(void)
{
	qn = 0;
	now = link_free = 0;
	drops = queue_sum = queue_max = queue_samples = 0;
	loss = 0;
}

static void finish(unsigned npair)
{
	for (unsigned i = 0; i < npair; i++) {
		hpn_conn_fini(&a[i]);
		hpn_conn_fini(&b[i]);
	}
}

/* Link rate in bytes per us, for the shares below. */
static double link_bytes_per_us(void)
{
	return 1e6 / PS_PER_BYTE;
}

struct run {
	double goodput; /* fraction of the link rate delivered as payload */
	double queue_avg, queue_max; /* packets */
	uint64_t drops, retransmits;
	uint64_t drops_first_half;
};

/* One stream for `ms` of virtual time; figures over its second half. */
static struct run one_stream(bool cc, uint64_t ms, double lossp)
{
	struct run r = {0};
	uint64_t half = 0;

	reset();
	loss = lossp;
	start(0, cc);
	while (now < ms * MS) {
		feed(1);
		step(1);
		if (!half && now >= ms * MS / 2) {
			half = sb[0].bytes;
			queue_sum = queue_samples = 0;
			r.drops_first_half = drops;
		}
	}
	r.goodput = (double)(sb[0].bytes - half) / ((double)(ms * MS / 2) / US * link_bytes_per_us());
	r.queue_avg = (double)queue_sum / queue_samples / 1500;
	r.queue_max = (double)queue_max / 1500;
	r.drops = drops;
	r.retransmits = a[0].retransmits;
	print_message("cc %s%s: goodput %.1f%% of the link, queue %.1f packets on average (max %.0f), %llu dropped "
		      "(%llu in the second half), %llu retransmitted, window now %u, cut %llu times\n",
		      cc ? "on " : "off", loss > 0 ? " (random loss)" : "", 100 * r.goodput, r.queue_avg, r.queue_max,
		      (unsigned long long)r.drops, (unsigned long long)(r.drops - r.drops_first_half),
		      (unsigned long long)r.retransmits, hpn_cc_window(&a[0].tx.cc),
		      (unsigned long long)a[0].tx.cc.cuts_delay);
	finish(1);
	return r;
}

static void test_one_stream(void **state)
{
	struct run on, off;

	(void)state;
	off = one_stream(false, 100, 0);
	on = one_stream(true, 100, 0);
	/* Without it the 256-packet window overfills the 200-packet buffer:
	 * a standing queue and drops (this is what the test is sensitive to). */
	assert_true(off.drops > 0);
	assert_true(off.queue_avg > 100);
	/* With it: the link as busy, a short queue, nothing lost once the
	 * first burst (a whole window, sent before anything is known of the
	 * path) is behind it. */
	assert_int_equal(on.drops - on.drops_first_half, 0);
	assert_true(on.queue_avg < off.queue_avg / 2);
	/* The queue it keeps is about its delay target (50 us: 42 packets
	 * of 1500 B at 10 Gb/s), not the buffer. */
	assert_true(on.queue_avg < 2 * 42);
	assert_true(on.goodput > 0.9);
	assert_true(on.goodput > 0.97 * off.goodput);
}

/* The second stream joins once the first owns the link: within 180 ms
 * (some 4000 round trips) both get a fair part, and the link stays busy. */
static void test_two_streams_share(void **state)
{
	uint64_t mark[NPAIR] = {0};
	double share[NPAIR], total = 0;

	(void)state;
	reset();
	start(0, true);
	while (now < 300 * MS) {
		if (now == 20 * MS)
			start(1, true);
		if (now == 200 * MS)
			for (unsigned i = 0; i < NPAIR; i++)
				mark[i] = sb[i].bytes;
		feed(now >= 20 * MS ? 2 : 1);
		step(now >= 20 * MS ? 2 : 1);
	}
	for (unsigned i = 0; i < NPAIR; i++) {
		share[i] = (double)(sb[i].bytes - mark[i]) / (100.0 * MS / US * link_bytes_per_us());
		total += share[i];
	}
	print_message("two streams, last 100 ms: %.1f%% and %.1f%% of the link; %llu dropped, windows %u and %u\n",
		      100 * share[0], 100 * share[1], (unsigned long long)drops, hpn_cc_window(&a[0].tx.cc),
		      hpn_cc_window(&a[1].tx.cc));
	assert_true(total > 0.9);
	for (unsigned i = 0; i < NPAIR; i++)
		assert_true(share[i] > 0.4 * total);
	finish(2);
}

/* 1% random loss on the link is not congestion: no slower than without
 * congestion control (a loss-based controller would be held far below). */
static void test_random_loss(void **state)
{
	struct run on, off;

	(void)state;
	off = one_stream(false, 100, 0.01);
	on = one_stream(true, 100, 0.01);
	assert_true(on.goodput > 0.85 * off.goodput);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_stream),
		cmocka_unit_test(test_two_streams_share),
		cmocka_unit_test(test_random_loss),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
