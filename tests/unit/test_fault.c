/* Seeded fault injection for datagrams (src/packet/fault.c) under a virtual
 * clock: the --faults spec parser and its error messages; loss, duplication,
 * corruption, reordering and delay each alone and mixed; exact counters;
 * replay by seed; full hold slots and oversized datagrams passing unharmed;
 * destinations handed back byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "packet/fault.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAXP 256

/* ---- a sink that records what out() was given ----------------------- */

struct rec {
	const void *dst_ptr;
	const uint8_t *pkt_ptr;
	size_t dst_len, len;
	uint8_t dst[HPN_FAULT_DST_MAX + 8];
	uint8_t pkt[MAXP + 64];
};

#define RECS 8192
static struct rec recs[RECS];
static unsigned nrec;   /* recorded (at most RECS) */
static uint64_t calls;  /* out() calls, recorded or not */

static void reset_sink(void)
{
	nrec = 0;
	calls = 0;
}

static void record(void *arg, const void *dst, size_t dst_len, const uint8_t *pkt, size_t len)
{
	(void)arg;
	calls++;
	if (nrec == RECS)
		return;
	struct rec *r = &recs[nrec++];

	assert_true(dst_len <= sizeof(r->dst));
	assert_true(len <= sizeof(r->pkt));
	r->dst_ptr = dst;
	r->pkt_ptr = pkt;
	r->dst_len = dst_len;
	r->len = len;
	if (dst_len)
		memcpy(r->dst, dst, dst_len);
	if (len)
		memcpy(r->pkt, pkt, len);
}

static void count_only(void *arg, const void *dst, size_t dst_len, const uint8_t *pkt, size_t len)
{
	(void)arg, (void)dst, (void)dst_len, (void)pkt, (void)len;
	calls++;
}

/* ---- datagrams that say who they are --------------------------------- */

/* Bytes of datagram id: recognisable even after a bit flip, because the id
 * travels in the destination too (which is never corrupted). */
static void make_pkt(uint8_t *p, uint32_t id, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(id * 131u + i * 7u + 1u);
}

struct dst8 {
	uint32_t id, pad;
};

static uint32_t rec_id(const struct rec *r)
{
	struct dst8 d;

	assert_int_equal(r->dst_len, sizeof(d));
	memcpy(&d, r->dst, sizeof(d));
	return d.id;
}

/* Send datagram id (len bytes) to destination {id}. */
static void send_id(struct hpn_fault *f, uint32_t id, size_t len, uint64_t now)
{
	uint8_t p[MAXP + 64];
	struct dst8 d = {id, 0};

	make_pkt(p, id, len);
	hpn_fault_xmit(f, &d, sizeof(d), p, len, now, record, NULL);
}

static unsigned bits_differing(const uint8_t *a, const uint8_t *b, size_t n)
{
	unsigned bits = 0;

	for (size_t i = 0; i < n; i++)
		bits += (unsigned)__builtin_popcount((unsigned)(a[i] ^ b[i]));
	return bits;
}

/* Bits by which a recorded datagram differs from what its id was sent as. */
static unsigned damage(const struct rec *r)
{
	uint8_t p[MAXP + 64];

	make_pkt(p, rec_id(r), r->len);
	return bits_differing(p, r->pkt, r->len);
}

static void init_spec(struct hpn_fault *f, const char *spec, size_t max_pkt)
{
	struct hpn_fault_cfg cfg;
	char err[128];

	assert_int_equal(hpn_fault_parse(spec, &cfg, err, sizeof(err)), 0);
	assert_int_equal(hpn_fault_init(f, &cfg, max_pkt), 0);
	reset_sink();
}

static void assert_faults(const struct hpn_fault *f, uint64_t passed, uint64_t dropped,
			  uint64_t duplicated, uint64_t reordered, uint64_t delayed,
			  uint64_t corrupted, uint64_t spared)
{
	assert_int_equal(f->passed, passed);
	assert_int_equal(f->dropped, dropped);
	assert_int_equal(f->duplicated, duplicated);
	assert_int_equal(f->reordered, reordered);
	assert_int_equal(f->delayed, delayed);
	assert_int_equal(f->corrupted, corrupted);
	assert_int_equal(f->spared, spared);
}

static struct hpn_fault F;

static void counters(const struct hpn_fault *f, uint64_t c[7])
{
	c[0] = f->passed, c[1] = f->dropped, c[2] = f->duplicated, c[3] = f->reordered;
	c[4] = f->delayed, c[5] = f->corrupted, c[6] = f->spared;
}

/* ---- parsing -------------------------------------------------------- */

static void test_parse_ok(void **state)
{
	struct hpn_fault_cfg c;
	char err[128];

	(void)state;
	assert_int_equal(hpn_fault_parse("loss=0.05,reorder=0.1,dup=0.01,corrupt=0.001,delay=0.01,"
					 "delay_us=500,seed=7",
					 &c, err, sizeof(err)),
			 0);
	assert_true(c.loss == 0.05 && c.reorder == 0.1 && c.dup == 0.01);
	assert_true(c.corrupt == 0.001 && c.delay == 0.01);
	assert_int_equal(c.delay_ns, 500000);
	assert_int_equal(c.seed, 7);
	assert_true(hpn_fault_active(&c));
	assert_string_equal(err, "");

	/* No faults, three ways; defaults for what is not given. */
	static const char *const none[] = {"", "none", "  none ", NULL};
	for (unsigned i = 0; i < 4; i++) {
		memset(&c, 0xff, sizeof(c));
		assert_int_equal(hpn_fault_parse(none[i], &c, err, sizeof(err)), 0);
		assert_true(c.loss == 0 && c.reorder == 0 && c.dup == 0 && c.corrupt == 0 &&
			    c.delay == 0);
		assert_int_equal(c.delay_ns, HPN_FAULT_DELAY_NS_DEFAULT);
		assert_int_equal(c.seed, HPN_FAULT_SEED_DEFAULT);
		assert_false(hpn_fault_active(&c));
	}

	/* Edges of the range, blanks, hex seed (a repeated key is refused:
	 * test_parse_errors, as a config string refuses one). */
	assert_int_equal(hpn_fault_parse(" loss = 0 ,seed=0x10, dup = 0.5,delay_us=0 ", &c,
					 err, sizeof(err)),
			 0);
	assert_true(c.loss == 0 && c.dup == 0.5);
	assert_int_equal(c.seed, 16);
	assert_int_equal(c.delay_ns, 0);
	assert_true(hpn_fault_active(&c));

	/* Any single probability makes it active; delay_us or seed alone do not. */
	assert_int_equal(hpn_fault_parse("corrupt=1e-9", &c, NULL, 0), 0);
	assert_true(hpn_fault_active(&c));
	assert_int_equal(hpn_fault_parse("delay_us=5,seed=3", &c, NULL, 0), 0);
	assert_false(hpn_fault_active(&c));
	assert_int_equal(c.delay_ns, 5000);
	assert_int_equal(hpn_fault_parse("seed=18446744073709551615", &c, NULL, 0), 0);
	assert_int_equal(c.seed, UINT64_MAX);
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *spec, *names, *reason;
	} bad[] = {
		{"loss=1.5", "loss", "[0,1]"},
		{"loss=-0.1", "loss", "[0,1]"},
		{"reorder=1.0000001", "reorder", "[0,1]"},
		{"dup=nan", "dup", "[0,1]"},
		{"delay=inf", "delay", "[0,1]"},
		{"corrupt=0.1x", "corrupt", "garbage 'x'"},
		{"loss=0.1 0.2", "loss", "garbage"},
		{"loss=abc", "loss", "not a number"},
		{"bogus=1", "bogus", "unknown key"},
		{"loss=0.1,Loss=0.1", "Loss", "unknown key"},
		{"=0.5", "''", "unknown key"},
		{"loss", "loss", "no '='"},
		{"loss=0.1,delay", "delay", "no '='"},
		{"corrupt=", "corrupt", "no value"},
		{"seed=-1", "seed", "unsigned"},
		{"seed=12abc", "seed", "garbage 'abc'"},
		{"seed=99999999999999999999", "seed", "too large"},
		{"delay_us=0.5", "delay_us", "garbage '.5'"},
		{"delay_us=18446744073709552", "delay_us", "too large"},
		{"loss=0.1,,dup=0.1", "empty", "','"},
		{"loss=0.1,", "empty", "','"},
		{"none,loss=0.1", "none", "no '='"},
		{"loss=0.05,dup=0.1,loss=0.1", "loss", "given twice"},
		{"seed=1 / seed:2", "seed", "given twice"},
	};
	struct hpn_fault_cfg c, before;
	char err[256];

	(void)state;
	memset(&before, 0xab, sizeof(before));
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = before;
		assert_int_equal(hpn_fault_parse(bad[i].spec, &c, err, sizeof(err)), -EINVAL);
		if (!strstr(err, bad[i].names) || !strstr(err, bad[i].reason))
			fail_msg("'%s': message '%s' lacks '%s' or '%s'", bad[i].spec, err,
				 bad[i].names, bad[i].reason);
		assert_memory_equal(&c, &before, sizeof(c)); /* untouched */
	}

	/* No room for a message, or little: still -EINVAL, still terminated. */
	assert_int_equal(hpn_fault_parse("loss=2", &c, NULL, 0), -EINVAL);
	memset(err, 'x', sizeof(err));
	assert_int_equal(hpn_fault_parse("loss=2", &c, err, 8), -EINVAL);
	assert_int_equal(strlen(err), 7);
}

/* ---- init ------------------------------------------------------------ */

static void test_init_errors(void **state)
{
	struct hpn_fault_cfg c = {.delay_ns = 1, .seed = 1};

	(void)state;
	assert_int_equal(hpn_fault_init(&F, &c, 0), -EINVAL);
	hpn_fault_fini(&F); /* safe after a failed init */
	assert_int_equal(hpn_fault_init(&F, NULL, 64), -EINVAL);
	c.dup = 1.5;
	assert_int_equal(hpn_fault_init(&F, &c, 64), -EINVAL);
	c.dup = NAN;
	assert_int_equal(hpn_fault_init(&F, &c, 64), -EINVAL);
	c.dup = 1;
	/* (A calloc overflow is not tried: ASan would abort on it.) */
	assert_int_equal(hpn_fault_init(&F, &c, SIZE_MAX - 10), -ENOMEM);
	assert_int_equal(hpn_fault_init(&F, &c, 64), 0);
	assert_int_equal(hpn_fault_next_ns(&F), UINT64_MAX);
	hpn_fault_fini(&F);
	hpn_fault_fini(&F); /* twice */
}

/* ---- each fault alone ------------------------------------------------ */

/* No faults: every datagram out once, at once, in order, byte-identical,
 * the caller's own buffers and destinations (nothing copied). */
static void test_no_faults(void **state)
{
	uint8_t p[MAXP];
	struct dst8 d;

	(void)state;
	init_spec(&F, "", MAXP);
	for (uint32_t i = 0; i < 2000; i++) {
		size_t len = i % (MAXP + 1);

		d = (struct dst8){i, ~i};
		make_pkt(p, i, len);
		hpn_fault_xmit(&F, &d, sizeof(d), p, len, i, record, NULL);
		assert_int_equal(calls, i + 1);
		assert_ptr_equal(recs[i].pkt_ptr, p);
		assert_ptr_equal(recs[i].dst_ptr, &d);
		assert_int_equal(rec_id(&recs[i]), i);
		assert_int_equal(recs[i].len, len);
		assert_int_equal(damage(&recs[i]), 0);
		assert_memory_equal(recs[i].dst, &d, sizeof(d));
	}
	assert_faults(&F, 2000, 0, 0, 0, 0, 0, 0);
	assert_int_equal(hpn_fault_next_ns(&F), UINT64_MAX);
	hpn_fault_flush(&F, record, NULL);
	assert_int_equal(calls, 2000);
	hpn_fault_fini(&F);
}

static void test_loss_all(void **state)
{
	(void)state;
	init_spec(&F, "loss=1", MAXP);
	for (uint32_t i = 0; i < 1000; i++)
		send_id(&F, i, 64, i);
	hpn_fault_flush(&F, record, NULL);
	assert_int_equal(calls, 0);
	assert_faults(&F, 0, 1000, 0, 0, 0, 0, 0);
	hpn_fault_fini(&F);
}

static void test_loss_rate(void **state)
{
	uint8_t p[64] = {0};

	(void)state;
	init_spec(&F, "loss=0.2,seed=12345", sizeof(p));
	for (uint32_t i = 0; i < 100000; i++)
		hpn_fault_xmit(&F, NULL, 0, p, sizeof(p), i, count_only, NULL);
	assert_int_equal(F.passed + F.dropped, 100000);
	assert_int_equal(calls, F.passed);
	/* 20% +- 1%: about 8 standard deviations; fails only if the PRNG or
	 * the comparison is wrong. */
	assert_in_range(F.dropped, 19000, 21000);
	assert_faults(&F, F.passed, F.dropped, 0, 0, 0, 0, 0);
	hpn_fault_fini(&F);
}

static void test_dup_all(void **state)
{
	(void)state;
	init_spec(&F, "dup=1", MAXP);
	for (uint32_t i = 0; i < 1000; i++) {
		send_id(&F, i, i % 100, i);
		assert_int_equal(calls, 2 * (i + 1)); /* both at once */
	}
	for (uint32_t i = 0; i < 1000; i++) {
		const struct rec *a = &recs[2 * i], *b = &recs[2 * i + 1];

		assert_int_equal(rec_id(a), i);
		assert_int_equal(rec_id(b), i);
		assert_int_equal(a->len, i % 100);
		assert_int_equal(b->len, i % 100);
		assert_int_equal(damage(a), 0);
		assert_int_equal(damage(b), 0);
	}
	assert_faults(&F, 1000, 0, 1000, 0, 0, 0, 0);
	hpn_fault_fini(&F);
}

/* One bit of a copy flips; the caller's buffer, which it may retransmit,
 * stays as it was. Every bit position gets hit over enough datagrams. */
static void test_corrupt_one_bit(void **state)
{
	uint8_t p[8], orig[8];
	bool hit[64] = {false};

	(void)state;
	init_spec(&F, "corrupt=1", MAXP);
	for (uint32_t i = 0; i < 2000; i++) {
		struct dst8 d = {i, 0};

		make_pkt(p, i, sizeof(p));
		memcpy(orig, p, sizeof(p));
		hpn_fault_xmit(&F, &d, sizeof(d), p, sizeof(p), i, record, NULL);
		assert_int_equal(calls, i + 1);
		assert_memory_equal(p, orig, sizeof(p));
		assert_ptr_not_equal(recs[i].pkt_ptr, p);
		assert_int_equal(recs[i].len, sizeof(p));
		assert_int_equal(bits_differing(recs[i].pkt, orig, sizeof(p)), 1);
		for (unsigned b = 0; b < 64; b++)
			if ((recs[i].pkt[b / 8] ^ orig[b / 8]) & (1u << (b % 8)))
				hit[b] = true;
	}
	for (unsigned b = 0; b < 64; b++)
		assert_true(hit[b]);
	assert_faults(&F, 2000, 0, 0, 0, 0, 2000, 0);

	/* An empty datagram has no bit to flip: it passes unharmed. */
	hpn_fault_xmit(&F, NULL, 0, p, 0, 0, record, NULL);
	assert_int_equal(calls, 2001);
	assert_faults(&F, 2001, 0, 0, 0, 0, 2000, 1);
	hpn_fault_fini(&F);
}

/* Corrupted and duplicated: both copies carry the same flipped bit. */
static void test_corrupt_dup(void **state)
{
	(void)state;
	init_spec(&F, "corrupt=1,dup=1", MAXP);
	for (uint32_t i = 0; i < 100; i++)
		send_id(&F, i, 32, i);
	assert_int_equal(calls, 200);
	for (uint32_t i = 0; i < 100; i++) {
		assert_int_equal(damage(&recs[2 * i]), 1);
		assert_memory_equal(recs[2 * i].pkt, recs[2 * i + 1].pkt, 32);
	}
	assert_faults(&F, 100, 0, 100, 0, 0, 100, 0);
	hpn_fault_fini(&F);
}

/* reorder=1 holds everything; the next datagram sent at once (reordering
 * switched off for it) goes out first, then the held ones in the order
 * they were held. */
static void test_reorder(void **state)
{
	(void)state;
	init_spec(&F, "reorder=1,delay_us=200", MAXP);
	send_id(&F, 0, 10, 1000);
	send_id(&F, 1, 11, 1001);
	assert_int_equal(calls, 0);
	assert_int_equal(F.held, 2);
	assert_int_equal(hpn_fault_next_ns(&F), 1000 + 200000);
	F.cfg.reorder = 0;
	send_id(&F, 2, 12, 1002);
	assert_int_equal(calls, 3);
	assert_int_equal(rec_id(&recs[0]), 2);
	assert_int_equal(rec_id(&recs[1]), 0);
	assert_int_equal(rec_id(&recs[2]), 1);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(recs[i].len, 10 + rec_id(&recs[i]));
		assert_int_equal(damage(&recs[i]), 0);
	}
	assert_int_equal(F.held, 0);
	assert_int_equal(hpn_fault_next_ns(&F), UINT64_MAX);
	assert_faults(&F, 3, 0, 0, 2, 0, 0, 0);
	hpn_fault_fini(&F);
}

/* A reordered datagram nothing follows is released by tick once it is
 * delay_ns old. */
static void test_reorder_timeout(void **state)
{
	(void)state;
	init_spec(&F, "reorder=1,delay_us=200", MAXP);
	send_id(&F, 7, 50, 5000);
	assert_int_equal(hpn_fault_next_ns(&F), 205000);
	hpn_fault_tick(&F, 204999, record, NULL);
	assert_int_equal(calls, 0);
	hpn_fault_tick(&F, 205000, record, NULL);
	assert_int_equal(calls, 1);
	assert_int_equal(rec_id(&recs[0]), 7);
	assert_int_equal(damage(&recs[0]), 0);
	assert_int_equal(hpn_fault_next_ns(&F), UINT64_MAX);
	assert_faults(&F, 1, 0, 0, 1, 0, 0, 0);
	hpn_fault_fini(&F);

	/* Reordered and delayed both drawn: held once, as reordered. */
	init_spec(&F, "reorder=1,delay=1", MAXP);
	send_id(&F, 1, 50, 0);
	send_id(&F, 2, 50, 0);
	assert_int_equal(F.held, 2);
	assert_int_equal(F.held_reorder, 2);
	assert_faults(&F, 2, 0, 0, 2, 0, 0, 0);
	hpn_fault_fini(&F);
}

/* Under partial reordering, what each xmit puts out is either nothing (the
 * datagram was held) or the datagram followed by every one held since the
 * last send, in order. */
static void test_reorder_pattern(void **state)
{
	uint32_t pending[HPN_FAULT_SLOTS];
	unsigned npending = 0, seen = 0, held = 0;

	(void)state;
	init_spec(&F, "reorder=0.3,seed=99", MAXP);
	for (uint32_t i = 0; i < 5000; i++) {
		send_id(&F, i, 16, i);
		if (calls == seen) {
			assert_true(npending < HPN_FAULT_SLOTS);
			pending[npending++] = i;
			held++;
			continue;
		}
		assert_int_equal(calls, seen + 1 + npending);
		assert_int_equal(rec_id(&recs[seen]), i);
		for (unsigned k = 0; k < npending; k++)
			assert_int_equal(rec_id(&recs[seen + 1 + k]), pending[k]);
		seen = (unsigned)calls;
		npending = 0;
	}
	assert_true(held > 1300 && held < 1700);
	hpn_fault_flush(&F, record, NULL);
	assert_faults(&F, 5000, 0, 0, held, 0, 0, 0);
	hpn_fault_fini(&F);
}

/* delay=1: held delay_ns; other datagrams going out do not release it;
 * tick does at now >= t + delay_ns, earliest first. */
static void test_delay(void **state)
{
	(void)state;
	init_spec(&F, "delay=1,delay_us=1", MAXP);
	send_id(&F, 0, 20, 3000); /* due 4000 */
	send_id(&F, 1, 21, 2000); /* due 3000: the clock is the caller's */
	assert_int_equal(calls, 0);
	assert_int_equal(hpn_fault_next_ns(&F), 3000);
	F.cfg.delay = 0;
	send_id(&F, 2, 22, 2500);
	assert_int_equal(calls, 1);
	assert_int_equal(rec_id(&recs[0]), 2);
	hpn_fault_tick(&F, 2999, record, NULL);
	assert_int_equal(calls, 1);
	hpn_fault_tick(&F, 3000, record, NULL);
	assert_int_equal(calls, 2);
	assert_int_equal(rec_id(&recs[1]), 1);
	assert_int_equal(hpn_fault_next_ns(&F), 4000);
	hpn_fault_tick(&F, 3999, record, NULL);
	assert_int_equal(calls, 2);
	hpn_fault_tick(&F, 1000000, record, NULL);
	assert_int_equal(calls, 3);
	assert_int_equal(rec_id(&recs[2]), 0);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(recs[i].len, 20 + rec_id(&recs[i]));
		assert_int_equal(damage(&recs[i]), 0);
	}
	assert_int_equal(hpn_fault_next_ns(&F), UINT64_MAX);
	assert_faults(&F, 3, 0, 0, 0, 2, 0, 0);
	hpn_fault_fini(&F);
}

/* Equal due times go out in the order held; a duplicated held datagram
 * goes out twice when released. */
static void test_delay_ties_and_dup(void **state)
{
	(void)state;
	init_spec(&F, "delay=1,dup=1,delay_us=10", MAXP);
	for (uint32_t i = 0; i < 10; i++)
		send_id(&F, i, 8, 100);
	assert_int_equal(calls, 0);
	hpn_fault_tick(&F, 10100, record, NULL);
	assert_int_equal(calls, 20);
	for (uint32_t i = 0; i < 20; i++)
		assert_int_equal(rec_id(&recs[i]), i / 2);
	assert_faults(&F, 10, 0, 10, 0, 10, 0, 0);
	hpn_fault_fini(&F);
}

/* ---- limits ---------------------------------------------------------- */

/* With every hold slot busy, a datagram that should be held (and
 * corrupted) passes at once and unharmed, counted as spared only. */
static void test_slots_full(void **state)
{
	(void)state;
	init_spec(&F, "delay=1,corrupt=1", MAXP);
	for (uint32_t i = 0; i < HPN_FAULT_SLOTS; i++)
		send_id(&F, i, 40, 0);
	assert_int_equal(calls, 0);
	assert_int_equal(F.held, HPN_FAULT_SLOTS);
	send_id(&F, 1000, 40, 0);
	assert_int_equal(calls, 1);
	assert_int_equal(rec_id(&recs[0]), 1000);
	assert_int_equal(damage(&recs[0]), 0);
	assert_faults(&F, HPN_FAULT_SLOTS + 1, 0, 0, 0, HPN_FAULT_SLOTS, HPN_FAULT_SLOTS, 1);

	/* Released in order, each corrupted once; the slots serve again. */
	hpn_fault_flush(&F, record, NULL);
	assert_int_equal(calls, HPN_FAULT_SLOTS + 1);
	for (uint32_t i = 0; i < HPN_FAULT_SLOTS; i++) {
		assert_int_equal(rec_id(&recs[1 + i]), i);
		assert_int_equal(damage(&recs[1 + i]), 1);
	}
	send_id(&F, 2000, 40, 0);
	assert_int_equal(F.held, 1);
	assert_int_equal(F.spared, 1);
	hpn_fault_fini(&F);

	/* The spared datagram is sent at once, so the reordered ones follow it. */
	init_spec(&F, "reorder=1", MAXP);
	for (uint32_t i = 0; i < HPN_FAULT_SLOTS; i++)
		send_id(&F, i, 40, 0);
	assert_int_equal(calls, 0);
	send_id(&F, 1000, 40, 0);
	assert_int_equal(calls, HPN_FAULT_SLOTS + 1);
	assert_int_equal(rec_id(&recs[0]), 1000);
	for (uint32_t i = 0; i < HPN_FAULT_SLOTS; i++)
		assert_int_equal(rec_id(&recs[1 + i]), i);
	assert_faults(&F, HPN_FAULT_SLOTS + 1, 0, 0, HPN_FAULT_SLOTS, 0, 0, 1);
	hpn_fault_fini(&F);
}

/* Longer than max_pkt: whatever needs a copy is skipped, the datagram
 * passes at once, unharmed; loss and duplication need no copy and apply. */
static void test_oversize(void **state)
{
	uint8_t p[65];

	(void)state;
	make_pkt(p, 0, sizeof(p));
	init_spec(&F, "delay=1", 64);
	hpn_fault_xmit(&F, NULL, 0, p, 65, 0, record, NULL);
	assert_int_equal(calls, 1);
	assert_ptr_equal(recs[0].pkt_ptr, p);
	hpn_fault_xmit(&F, NULL, 0, p, 64, 0, record, NULL);
	assert_int_equal(calls, 1); /* fits: held */
	assert_faults(&F, 2, 0, 0, 0, 1, 0, 1);
	hpn_fault_fini(&F);

	init_spec(&F, "corrupt=1,reorder=1", 64);
	hpn_fault_xmit(&F, NULL, 0, p, 65, 0, record, NULL);
	assert_int_equal(calls, 1);
	assert_memory_equal(recs[0].pkt, p, sizeof(p));
	assert_faults(&F, 1, 0, 0, 0, 0, 0, 1);
	hpn_fault_fini(&F);

	init_spec(&F, "dup=1", 64);
	hpn_fault_xmit(&F, NULL, 0, p, 65, 0, record, NULL);
	assert_int_equal(calls, 2);
	assert_faults(&F, 1, 0, 1, 0, 0, 0, 0);
	hpn_fault_fini(&F);

	init_spec(&F, "loss=1", 64);
	hpn_fault_xmit(&F, NULL, 0, p, 65, 0, record, NULL);
	assert_int_equal(calls, 0);
	assert_faults(&F, 0, 1, 0, 0, 0, 0, 0);
	hpn_fault_fini(&F);
}

/* flush sends everything held, reordered and delayed, earliest due first. */
static void test_flush(void **state)
{
	(void)state;
	init_spec(&F, "delay=1,delay_us=100", MAXP);
	send_id(&F, 0, 30, 50000); /* due 150000 */
	send_id(&F, 1, 30, 10000); /* due 110000 */
	F.cfg.delay = 0;
	F.cfg.reorder = 1;
	send_id(&F, 2, 30, 20000); /* reordered, due 120000 */
	assert_int_equal(calls, 0);
	assert_int_equal(F.held, 3);
	assert_int_equal(hpn_fault_next_ns(&F), 110000);
	hpn_fault_flush(&F, record, NULL);
	assert_int_equal(calls, 3);
	assert_int_equal(rec_id(&recs[0]), 1);
	assert_int_equal(rec_id(&recs[1]), 2);
	assert_int_equal(rec_id(&recs[2]), 0);
	assert_int_equal(F.held, 0);
	assert_int_equal(hpn_fault_next_ns(&F), UINT64_MAX);
	hpn_fault_flush(&F, record, NULL); /* nothing left */
	assert_int_equal(calls, 3);
	assert_faults(&F, 3, 0, 0, 1, 2, 0, 0);
	hpn_fault_fini(&F);
}

/* Destinations come back byte for byte, held or not, whatever their
 * length up to HPN_FAULT_DST_MAX, aligned for a struct sockaddr; a longer
 * one cannot be held, so its datagram passes at once. */
static void test_dst_bytes(void **state)
{
	static const size_t lens[] = {0, 1, 16, 28, 110, HPN_FAULT_DST_MAX};
	uint8_t dst[HPN_FAULT_DST_MAX + 1], p[16] = {1, 2, 3};

	(void)state;
	for (size_t i = 0; i < sizeof(dst); i++)
		dst[i] = (uint8_t)(0xa5 ^ i * 29);
	for (int held = 0; held < 2; held++) {
		init_spec(&F, held ? "delay=1" : "", MAXP);
		for (unsigned i = 0; i < 6; i++)
			hpn_fault_xmit(&F, lens[i] ? dst : NULL, lens[i], p, sizeof(p), 0, record, NULL);
		hpn_fault_flush(&F, record, NULL);
		assert_int_equal(calls, 6);
		for (unsigned i = 0; i < 6; i++) {
			assert_int_equal(recs[i].dst_len, lens[i]);
			assert_memory_equal(recs[i].dst, dst, lens[i]);
			assert_memory_equal(recs[i].pkt, p, sizeof(p));
			if (held)
				assert_int_equal((uintptr_t)recs[i].dst_ptr % _Alignof(max_align_t), 0);
		}
		hpn_fault_fini(&F);
	}

	init_spec(&F, "delay=1", MAXP);
	hpn_fault_xmit(&F, dst, sizeof(dst), p, sizeof(p), 0, record, NULL);
	assert_int_equal(calls, 1);
	assert_ptr_equal(recs[0].dst_ptr, dst);
	assert_int_equal(recs[0].dst_len, sizeof(dst));
	assert_faults(&F, 1, 0, 0, 0, 0, 0, 1);
	hpn_fault_fini(&F);
}

/* ---- mixed, replay ---------------------------------------------------- */

/* Everything at once with ticks in between, then flush: each datagram not
 * dropped comes out once or twice (duplicated), intact or one bit off
 * (corrupted); the counters add up exactly. */
static void mixed_run(const char *spec, unsigned n, uint64_t *trace, unsigned *ntrace)
{
	static uint8_t times[RECS];
	uint64_t dist_corrupt = 0, dist_dup = 0, dist = 0;

	init_spec(&F, spec, MAXP);
	for (uint32_t i = 0; i < n; i++) {
		send_id(&F, i, 1 + i % MAXP, (uint64_t)i * 10000);
		if (i % 3 == 0)
			hpn_fault_tick(&F, (uint64_t)i * 10000, record, NULL);
		assert_true(F.held <= HPN_FAULT_SLOTS);
	}
	hpn_fault_flush(&F, record, NULL);
	assert_true(nrec < RECS);
	assert_int_equal(F.held, 0);
	assert_int_equal(F.passed + F.dropped, n);
	assert_int_equal(calls, F.passed + F.duplicated);

	memset(times, 0, sizeof(times));
	for (unsigned r = 0; r < nrec; r++) {
		uint32_t id = rec_id(&recs[r]);
		unsigned dmg = damage(&recs[r]);

		assert_true(id < n);
		assert_int_equal(recs[r].len, 1 + id % MAXP);
		assert_true(dmg <= 1);
		if (!times[id]++) {
			dist++;
			dist_corrupt += dmg;
		} else {
			assert_int_equal(times[id], 2);
			dist_dup++;
		}
		if (trace)
			trace[r] = (uint64_t)id << 32 | (uint64_t)dmg << 31 | recs[r].pkt[0];
	}
	assert_int_equal(dist, F.passed);
	assert_int_equal(dist_dup, F.duplicated);
	assert_int_equal(dist_corrupt, F.corrupted);
	assert_true(F.dropped && F.duplicated && F.corrupted && F.reordered && F.delayed);
	if (ntrace)
		*ntrace = nrec;
	hpn_fault_fini(&F);
}

static void test_mixed(void **state)
{
	(void)state;
	mixed_run("loss=0.1,reorder=0.1,dup=0.1,corrupt=0.1,delay=0.1,delay_us=50", 4000, NULL,
		  NULL);
	mixed_run("loss=0.02,reorder=0.5,dup=0.3,corrupt=0.5,delay=0.5,delay_us=1000,seed=5", 3000,
		  NULL, NULL);
}

/* Same seed, same calls: the same datagrams out in the same order with the
 * same bits flipped, the same counters. Another seed: different. */
static void test_seed_replay(void **state)
{
	static uint64_t t1[RECS], t2[RECS], t3[RECS];
	unsigned n1, n2, n3;
	uint64_t c1[7], c2[7];

	(void)state;
	mixed_run("loss=0.1,reorder=0.1,dup=0.1,corrupt=0.1,delay=0.1,seed=7", 3000, t1, &n1);
	counters(&F, c1);
	mixed_run("loss=0.1,reorder=0.1,dup=0.1,corrupt=0.1,delay=0.1,seed=7", 3000, t2, &n2);
	counters(&F, c2);
	mixed_run("loss=0.1,reorder=0.1,dup=0.1,corrupt=0.1,delay=0.1,seed=8", 3000, t3, &n3);
	assert_int_equal(n1, n2);
	assert_memory_equal(t1, t2, n1 * sizeof(t1[0]));
	assert_memory_equal(c1, c2, sizeof(c1));
	assert_true(n1 != n3 || memcmp(t1, t3, n1 * sizeof(t1[0])));
}

/* Enabling another fault does not change which datagrams are lost: each
 * fault has its own draw per datagram. */
static void test_loss_pattern_stable(void **state)
{
	static bool out1[2000], out2[2000];

	(void)state;
	init_spec(&F, "loss=0.3,seed=42", MAXP);
	for (uint32_t i = 0; i < 2000; i++)
		send_id(&F, i, 8, i);
	for (unsigned r = 0; r < nrec; r++)
		out1[rec_id(&recs[r])] = true;
	hpn_fault_fini(&F);
	init_spec(&F, "loss=0.3,dup=0.5,corrupt=0.5,seed=42", MAXP);
	for (uint32_t i = 0; i < 2000; i++)
		send_id(&F, i, 8, i);
	for (unsigned r = 0; r < nrec; r++)
		out2[rec_id(&recs[r])] = true;
	hpn_fault_fini(&F);
	assert_memory_equal(out1, out2, sizeof(out1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),         cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_init_errors),      cmocka_unit_test(test_no_faults),
		cmocka_unit_test(test_loss_all),         cmocka_unit_test(test_loss_rate),
		cmocka_unit_test(test_dup_all),          cmocka_unit_test(test_corrupt_one_bit),
		cmocka_unit_test(test_corrupt_dup),      cmocka_unit_test(test_reorder),
		cmocka_unit_test(test_reorder_timeout),  cmocka_unit_test(test_reorder_pattern),
		cmocka_unit_test(test_delay),            cmocka_unit_test(test_delay_ties_and_dup),
		cmocka_unit_test(test_slots_full),       cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_flush),            cmocka_unit_test(test_dst_bytes),
		cmocka_unit_test(test_mixed),            cmocka_unit_test(test_seed_replay),
		cmocka_unit_test(test_loss_pattern_stable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
