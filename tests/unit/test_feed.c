/* A feed from several lines (src/packet/feed.c) under a virtual clock: the
 * seq= parser and its errors; MoldUDP64 packets read and refused (short,
 * lying lengths, trailing bytes); A/B arbitration over seeded lines with
 * independent loss, reordering, duplication and delay - exactly the
 * messages not lost on both lines, in order, each once, and a gap event
 * exactly for each run both lost; late copies fill a reported gap once;
 * a reader without room loses nothing; leads measured; MDP3 and a generic
 * field the same way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "packet/feed.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- a reader that records what the feed gives it --------------------------- */

#define MAXOUT 200000

static struct out {
	uint64_t seq, ts;
	uint32_t len, line;
	uint8_t first; /* the message's first byte */
	bool whole;
} outs[MAXOUT];
static unsigned nout;
static struct {
	uint64_t from, count;
} gaps[4096];
static unsigned ngap, nend, nrestart, kept_live, kept_total;
static uint64_t restart_seq;
static uint64_t end_next;
static uint32_t room_left = UINT32_MAX;
static unsigned keep_limit = UINT32_MAX; /* keep() fails beyond this many held */

static uint32_t r_room(void *arg)
{
	return room_left;
}

static void r_deliver(void *arg, const uint8_t *pkt, const uint8_t *msg, uint32_t len, uint64_t seq, uint64_t ts,
		      uint32_t line, bool whole)
{
	assert_true(nout < MAXOUT);
	assert_true(msg >= pkt);
	if (room_left != UINT32_MAX) {
		assert_true(room_left > 0); /* never beyond the room it was told */
		room_left--;
	}
	outs[nout++] = (struct out){.seq = seq, .ts = ts, .len = len, .line = line, .first = len ? msg[0] : 0,
				    .whole = whole};
}

static uint8_t *r_keep(void *arg, const uint8_t *pkt, uint32_t len)
{
	uint8_t *k;

	if (kept_live >= keep_limit)
		return NULL;
	k = malloc(len);
	memcpy(k, pkt, len);
	kept_live++;
	kept_total++;
	return k;
}

static void r_release(void *arg, uint8_t *kept)
{
	kept_live--;
	free(kept);
}

static void r_gap(void *arg, uint64_t from, uint64_t count, uint32_t line)
{
	assert_true(ngap < 4096);
	gaps[ngap].from = from;
	gaps[ngap++].count = count;
}

static void r_end(void *arg, uint64_t next, uint32_t line)
{
	nend++;
	end_next = next;
}

static void r_restart(void *arg, uint64_t seq, uint32_t line)
{
	nrestart++;
	restart_seq = seq;
}

static const struct hpn_feed_ops ops = {r_room, r_deliver, r_keep, r_release, r_gap, r_end, r_restart};

static void reset(void)
{
	nout = ngap = nend = nrestart = kept_live = kept_total = 0;
	room_left = UINT32_MAX;
	keep_limit = UINT32_MAX;
}

/* A feed of spec with a 1000 ns gap timeout, the recorder reset. */
static void feed_open(struct hpn_feed *f, const char *spec)
{
	struct hpn_seq_spec s;
	char why[64];

	reset();
	assert_int_equal(hpn_seq_parse(spec, &s, why, sizeof(why)), 0);
	assert_int_equal(hpn_feed_init(f, &s, 1000, &ops, NULL), 0);
}

/* ---- packets ------------------------------------------------------------------ */

static void be(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

/* A MoldUDP64 packet of count messages from seq; message s is 1 + s % 7
 * bytes, its first byte s & 0xff. Returns its length. */
static uint32_t mold(uint8_t *p, const char *session, uint64_t seq, uint32_t count)
{
	uint32_t off = 20;

	memcpy(p, session, 10);
	be(p + 10, seq, 8);
	be(p + 18, count, 2);
	for (uint32_t i = 0; i < count && count != 0xFFFF; i++) {
		uint32_t len = 1 + (uint32_t)((seq + i) % 7);

		be(p + off, len, 2);
		memset(p + off + 2, (int)((seq + i) & 0xff), len);
		off += 2 + len;
	}
	return off;
}

static uint32_t mdp3(uint8_t *p, uint64_t seq)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(seq >> (8 * i)); /* little-endian */
	memset(p + 4, (int)(seq & 0xff), 12);
	p[0 + 4] = (uint8_t)(seq & 0xff);
	return 16;
}

/* ---- parser ------------------------------------------------------------------- */

static void test_parse(void **st)
{
	struct hpn_seq_spec s;
	char why[160];

	assert_int_equal(hpn_seq_parse("moldudp64", &s, why, sizeof(why)), 0);
	assert_int_equal(s.kind, HPN_SEQ_MOLDUDP64);
	assert_int_equal(hpn_seq_parse("mdp3", &s, why, sizeof(why)), 0);
	assert_int_equal(s.kind, HPN_SEQ_MDP3);
	assert_int_equal(hpn_seq_parse("offset:6,size:8,endian:little", &s, why, sizeof(why)), 0);
	assert_int_equal(s.kind, HPN_SEQ_FIELD);
	assert_int_equal(s.offset, 6);
	assert_int_equal(s.size, 8);
	assert_false(s.big);
	assert_int_equal(hpn_seq_parse("offset:2/endian:big", &s, why, sizeof(why)), 0);
	assert_int_equal(s.offset, 2);
	assert_int_equal(s.size, 4);
	assert_true(s.big);
	assert_int_equal(hpn_seq_parse("itch", &s, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "moldudp64"));
	assert_int_equal(hpn_seq_parse("offset:4,size:3", &s, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "4 or 8"));
	assert_int_equal(hpn_seq_parse("size:8,offset:x", &s, why, sizeof(why)), -EINVAL);
	assert_int_equal(hpn_seq_parse("offset:4,colour:red", &s, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "colour"));
	assert_int_equal(hpn_seq_parse("", &s, why, sizeof(why)), -EINVAL);
}

static void test_read_mold(void **st)
{
	struct hpn_seq_spec s;
	struct hpn_seq_pkt p;
	uint8_t b[512];
	char why[64];
	uint32_t n;

	hpn_seq_parse("moldudp64", &s, why, sizeof(why));
	n = mold(b, "SESSION001", 1000, 3);
	assert_int_equal(hpn_seq_read(&s, b, n, &p), 0);
	assert_int_equal(p.seq, 1000);
	assert_int_equal(p.count, 3);
	assert_false(p.end);
	assert_int_equal(hpn_seq_read(&s, b, n - 1, &p), -EBADMSG); /* the last message cut */
	assert_int_equal(hpn_seq_read(&s, b, n + 1, &p), -EBADMSG); /* a byte after the last */
	assert_int_equal(hpn_seq_read(&s, b, 19, &p), -EBADMSG);
	be(b + 20, 400, 2); /* the first message says it is longer than the packet */
	assert_int_equal(hpn_seq_read(&s, b, n, &p), -EBADMSG);
	n = mold(b, "SESSION001", 7, 0); /* heartbeat */
	assert_int_equal(hpn_seq_read(&s, b, n, &p), 0);
	assert_int_equal(p.count, 0);
	n = mold(b, "SESSION001", 9, 0xFFFF); /* end of session */
	assert_int_equal(hpn_seq_read(&s, b, n, &p), 0);
	assert_true(p.end);
	assert_int_equal(p.seq, 9);
	hpn_seq_parse("offset:8,size:8", &s, why, sizeof(why));
	assert_int_equal(hpn_seq_read(&s, b, 15, &p), -EBADMSG);
}

/* ---- arbitration over two seeded lines ----------------------------------------- */

struct ev {
	uint64_t t;
	uint32_t line, pkt;
};

static int ev_cmp(const void *a, const void *b)
{
	const struct ev *x = a, *y = b;

	return x->t < y->t ? -1 : x->t > y->t ? 1 : (int)x->line - (int)y->line;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}
static bool chance(double p)
{
	return (double)(rnd() % 1000000) < p * 1000000;
}

#define NPKT 4000
static uint64_t pkt_seq[NPKT + 1];
static uint32_t pkt_count[NPKT + 1];
static bool lost[2][NPKT + 1];

/* Play NPKT packets (then an end of session) on two lines, line B 5 us
 * behind A, each with its own loss, duplication and reordering (jitter up
 * to 30 us, within the 100 us gap timeout); check every message. */
static void play(bool mdp, uint64_t seed, double loss)
{
	static struct ev evs[3 * (NPKT + 1) * 2];
	struct hpn_seq_spec s;
	struct hpn_feed *f = calloc(1, sizeof(*f));
	uint64_t seq = 1, expect_msgs = 0;
	unsigned nev = 0, g = 0, o = 0;
	char why[64];
	uint8_t b[512];

	rng = seed;
	reset();
	hpn_seq_parse(mdp ? "mdp3" : "moldudp64", &s, why, sizeof(why));
	assert_int_equal(hpn_feed_init(f, &s, 100000, &ops, NULL), 0);
	for (uint32_t i = 0; i <= NPKT; i++) {
		pkt_seq[i] = seq;
		pkt_count[i] = mdp || i == NPKT ? 1 : 1 + (uint32_t)(rnd() % 4);
		seq += i == NPKT && !mdp ? 0 : pkt_count[i];
		for (uint32_t l = 0; l < 2; l++) {
			/* The first packet starts the feed on both lines, the end
			 * of session closes it. */
			lost[l][i] = i > 0 && i < NPKT && chance(loss);
			if (lost[l][i])
				continue;
			uint64_t t = (uint64_t)i * 10000 + l * 5000 + (i > 0 && i < NPKT ? rnd() % 30000 : 0);

			evs[nev++] = (struct ev){t, l, i};
			if (i > 0 && i < NPKT && chance(0.02))
				evs[nev++] = (struct ev){t + rnd() % 20000, l, i}; /* a duplicate */
		}
	}
	qsort(evs, nev, sizeof(evs[0]), ev_cmp);
	for (unsigned k = 0; k < nev; k++) {
		uint32_t i = evs[k].pkt, n;

		hpn_feed_tick(f, evs[k].t, true);
		if (mdp) /* (its last packet closes the feed: never lost) */
			n = mdp3(b, pkt_seq[i]);
		else
			n = mold(b, "SESSION042", pkt_seq[i], i == NPKT ? 0xFFFF : pkt_count[i]);
		hpn_feed_input(f, evs[k].line, b, n, 1000000000ull + evs[k].t, evs[k].t);
	}
	hpn_feed_tick(f, (uint64_t)(NPKT + 100) * 10000, true);
	/* Exactly the messages of packets some line brought, in order; a
	 * gap for each run of packets both lines lost. */
	uint32_t last = mdp ? NPKT + 1 : NPKT; /* packets with messages */

	for (uint32_t i = 0; i < last; i++) {
		if (lost[0][i] && lost[1][i]) {
			uint32_t j = i;

			while (j + 1 < NPKT && lost[0][j + 1] && lost[1][j + 1])
				j++;
			assert_true(g < ngap);
			assert_int_equal(gaps[g].from, pkt_seq[i]);
			assert_int_equal(gaps[g].count, pkt_seq[j] + pkt_count[j] - pkt_seq[i]);
			g++;
			i = j;
			continue;
		}
		for (uint32_t m = 0; m < pkt_count[i]; m++) {
			assert_true(o < nout);
			assert_int_equal(outs[o].seq, pkt_seq[i] + m);
			assert_int_equal(outs[o].first, (pkt_seq[i] + m) & 0xff);
			if (!mdp)
				assert_int_equal(outs[o].len, 1 + (pkt_seq[i] + m) % 7);
			o++;
			expect_msgs++;
		}
	}
	if (getenv("FEED_DEBUG"))
		print_message("seed %llu: %u msgs, %u gaps, %u kept\n", (unsigned long long)seed, nout, ngap, kept_total);
	assert_int_equal(g, ngap);
	assert_int_equal(o, nout);
	assert_int_equal(f->msgs, expect_msgs);
	assert_int_equal(f->late, 0);
	assert_int_equal(f->ngap_events, ngap);
	assert_true(ngap > 0 || loss == 0);
	if (!mdp) {
		assert_int_equal(nend, 1);
		assert_int_equal(end_next, seq);
	}
	/* Per-line counters add up: every packet a line brought is one of
	 * its packets; wins of both lines are the packets delivered. */
	uint64_t wins = 0, pk = 0;

	for (uint32_t l = 0; l < 2; l++) {
		wins += f->line[l].wins;
		pk += f->line[l].packets;
		assert_true(f->line[l].wins + f->line[l].dups <= f->line[l].packets);
	}
	assert_int_equal(pk, nev);
	uint32_t delivered_pkts = 0;

	for (uint32_t i = 0; i < last; i++)
		delivered_pkts += !(lost[0][i] && lost[1][i]);
	assert_int_equal(wins, delivered_pkts);
	/* A leads B by 5 us on average (jitter is the same on both). */
	assert_true(f->line[0].lead_count > 100);
	assert_true(f->line[0].lead_ns_sum / (int64_t)f->line[0].lead_count > 2000);
	assert_true(f->line[0].lead_ns_sum / (int64_t)f->line[0].lead_count < 8000);
	assert_int_equal(f->line[0].lead_ns_sum, -f->line[1].lead_ns_sum);
	hpn_feed_fini(f);
	assert_int_equal(kept_live, 0);
	free(f);
}

static void test_ab_mold(void **st)
{
	play(false, 1, 0.05);
	play(false, 7, 0.2);
	play(false, 99, 0);
}

static void test_ab_mdp3(void **st)
{
	play(true, 3, 0.05);
	play(true, 11, 0.3);
}

/* A reader that lags: the hole's time runs out while the other line's
 * copy still waits unread in its device. No gap until the lines were
 * read empty (caught_up); then the copy fills it - and a hole no line
 * filled is reported at the first tick that is caught up. */
static void test_lagging_reader(void **st)
{
	struct hpn_feed f;
	uint8_t b[512];
	uint32_t n;

	feed_open(&f, "moldudp64");
	n = mold(b, "S000000001", 1, 2);
	hpn_feed_input(&f, 0, b, n, 1, 0);
	n = mold(b, "S000000001", 4, 1); /* A lost 3 */
	hpn_feed_input(&f, 0, b, n, 2, 10);
	hpn_feed_tick(&f, 5000, false); /* long past its time, but B is unread */
	assert_int_equal(ngap, 0);
	assert_int_equal(nout, 2);
	n = mold(b, "S000000001", 3, 1); /* B's copy, read at last */
	hpn_feed_input(&f, 1, b, n, 3, 5001);
	assert_int_equal(nout, 4);
	assert_int_equal(outs[2].seq, 3);
	assert_int_equal(outs[3].seq, 4);
	n = mold(b, "S000000001", 6, 1); /* 5 lost on both */
	hpn_feed_input(&f, 0, b, n, 4, 6000);
	hpn_feed_tick(&f, 8000, false);
	assert_int_equal(ngap, 0);
	hpn_feed_tick(&f, 8000, true);
	assert_int_equal(ngap, 1);
	assert_int_equal(gaps[0].from, 5);
	assert_int_equal(gaps[0].count, 1);
	assert_int_equal(nout, 5);
	assert_int_equal(f.late, 0);
	hpn_feed_fini(&f);
}

/* Leads with three lines do not depend on the order the lines are read
 * in: A is stamped 300 ns before B and 700 ns before C on every packet,
 * whichever line the reader takes first (a lagging reader takes one
 * line's backlog, then the next's). */
static void test_lead_read_order(void **st)
{
	static const uint32_t orders[][3] = {{0, 1, 2}, {2, 0, 1}, {1, 2, 0}, {2, 1, 0}};
	static const uint64_t delay[3] = {0, 300, 700};
	struct hpn_feed f;
	uint8_t b[256];

	(void)st;
	for (unsigned o = 0; o < 4; o++) {
		feed_open(&f, "moldudp64");
		for (uint64_t q = 1; q <= 100; q++)
			for (unsigned k = 0; k < 3; k++) {
				uint32_t line = orders[o][k];

				hpn_feed_input(&f, line, b, mold(b, "S000000001", q, 1), q * 10000 + delay[line],
					       q * 10000 + 1000);
			}
		/* Every packet: A leads B by 300 and C by 700 - whatever the
		 * order, each copy is measured against the earliest. */
		assert_int_equal(f.line[0].lead_count, 200);
		assert_int_equal(f.line[0].lead_ns_sum, 100 * 1000);
		assert_int_equal(f.line[1].lead_count, 100);
		assert_int_equal(f.line[1].lead_ns_sum, -100 * 300);
		assert_int_equal(f.line[2].lead_count, 100);
		assert_int_equal(f.line[2].lead_ns_sum, -100 * 700);
		hpn_feed_fini(&f);
	}
}

/* The first packet does not decide the feed alone: a stray datagram
 * that came first (another session, or a sequence number far off) is
 * replaced as soon as two packets agree on another start - the other
 * line's copy, or the next one; a start that another packet agrees with
 * stands against a stray after it; after the end of a session, a new one
 * starts the same way. */
static void test_stray_start(void **st)
{
	struct hpn_feed f;
	uint8_t b[512];

	for (int kind = 0; kind < 2; kind++) { /* another session; the same session far ahead */
		feed_open(&f, "moldudp64");
		hpn_feed_input(&f, 0, b, mold(b, kind ? "S000000001" : "OLDSESS000", 1ull << 63, 1), 1, 0);
		assert_int_equal(nout, 1); /* delivered: nothing told it apart yet */
		hpn_feed_input(&f, 0, b, mold(b, "S000000001", 1, 1), 2, 1); /* a candidate */
		assert_int_equal(nout, 1);
		hpn_feed_input(&f, 1, b, mold(b, "S000000001", 1, 1), 3, 2); /* B agrees: the feed starts here */
		assert_int_equal(f.restarts, 1);
		assert_int_equal(nrestart, 1); /* the application is told */
		assert_int_equal(restart_seq, 1);
		for (uint64_t q = 2; q <= 5; q++) {
			hpn_feed_input(&f, 0, b, mold(b, "S000000001", q, 1), q, q);
			hpn_feed_input(&f, 1, b, mold(b, "S000000001", q, 1), q, q);
		}
		hpn_feed_tick(&f, 10000, true);
		assert_int_equal(nout, 6);
		for (unsigned i = 1; i < nout; i++)
			assert_int_equal(outs[i].seq, i);
		assert_int_equal(ngap, 0);
		/* A's 1 (the kept candidate) is delivered: B's copy of it is a
		 * duplicate, and nothing was dropped. */
		assert_int_equal(f.dups, 5);
		assert_int_equal(f.foreign, 0);
		assert_int_equal(kept_live, 0);
		hpn_feed_fini(&f);
	}

	/* A start the other line agrees with stands; the stray is dropped. */
	feed_open(&f, "moldudp64");
	hpn_feed_input(&f, 0, b, mold(b, "S000000001", 1, 1), 1, 0);
	hpn_feed_input(&f, 0, b, mold(b, "OLDSESS000", 99, 1), 2, 1);
	hpn_feed_input(&f, 1, b, mold(b, "S000000001", 1, 1), 3, 2);
	assert_true(f.confirmed);
	hpn_feed_input(&f, 0, b, mold(b, "OLDSESS000", 100, 1), 4, 3); /* agrees with the stray: too late */
	hpn_feed_input(&f, 0, b, mold(b, "S000000001", 2, 1), 5, 4);
	assert_int_equal(nout, 2);
	assert_int_equal(outs[1].seq, 2);
	assert_int_equal(f.restarts, 0);
	assert_int_equal(f.foreign, 2);
	hpn_feed_fini(&f);

	/* The session ends; a new one starts once two packets agree. */
	feed_open(&f, "moldudp64");
	for (uint64_t q = 1; q <= 3; q++)
		hpn_feed_input(&f, 0, b, mold(b, "S000000001", q, 1), q, q);
	hpn_feed_input(&f, 0, b, mold(b, "S000000001", 4, 0xFFFF), 4, 4);
	assert_int_equal(nend, 0); /* one end alone could be forged */
	hpn_feed_input(&f, 1, b, mold(b, "S000000001", 4, 0xFFFF), 4, 4); /* B's says the same */
	assert_int_equal(nend, 1);
	hpn_feed_input(&f, 0, b, mold(b, "S000000001", 4, 0xFFFF), 4, 4); /* a repeat: nothing new */
	hpn_feed_input(&f, 0, b, mold(b, "S000000001", 4, 1), 4, 4);      /* data past the end: not taken */
	assert_int_equal(nend, 1);
	assert_int_equal(nout, 3);
	assert_int_equal(f.foreign, 0); /* a candidate start, kept: counted dropped when another replaces it */
	hpn_feed_input(&f, 0, b, mold(b, "S000000002", 1, 1), 5, 5);
	assert_int_equal(nout, 3);
	hpn_feed_input(&f, 0, b, mold(b, "S000000002", 2, 1), 6, 6); /* the next one agrees */
	hpn_feed_tick(&f, 100, true);
	assert_int_equal(f.restarts, 1);
	assert_int_equal(nrestart, 1);
	assert_int_equal(restart_seq, 1);
	/* The new session from its first packet, kept while it waited for a
	 * second word: on one line nothing is lost (it once was a gap). */
	assert_int_equal(nout, 5);
	assert_int_equal(outs[3].seq, 1);
	assert_int_equal(outs[4].seq, 2);
	hpn_feed_tick(&f, 5000, true);
	assert_int_equal(ngap, 0);
	assert_int_equal(f.foreign, 1);
	hpn_feed_fini(&f);
	assert_int_equal(kept_live, 0);
}

/* One forged heartbeat far ahead (within the jump limit) while the real
 * feed runs on both lines with holes of its own: not believed alone, so
 * the real holes are reported as they are and nothing comes late. */
static void test_forged_heartbeat(void **st)
{
	struct hpn_feed f;
	uint8_t b[512];
	uint64_t t = 0;

	feed_open(&f, "moldudp64");
	for (uint64_t q = 1; q <= 3; q++)
		hpn_feed_input(&f, 0, b, mold(b, "S000000001", q, 1), t, t), t += 10;
	hpn_feed_input(&f, 1, b, mold(b, "S000000001", 1000000, 0), t, t); /* forged */
	for (uint64_t q = 4; q <= 30; q++, t += 5000) { /* slow: each hole times out */
		if (q % 3 == 0)
			continue; /* lost on both lines */
		hpn_feed_input(&f, 0, b, mold(b, "S000000001", q, 1), t, t);
		hpn_feed_input(&f, 1, b, mold(b, "S000000001", q, 1), t + 1, t + 1);
		hpn_feed_tick(&f, t + 2, true);
	}
	hpn_feed_tick(&f, t + 5000, true);
	assert_int_equal(ngap, 8); /* 6, 9, ..., 27 (30, the last, has nothing after it) */
	for (unsigned i = 0; i < ngap; i++) {
		assert_int_equal(gaps[i].from, 6 + 3 * i);
		assert_int_equal(gaps[i].count, 1);
	}
	assert_int_equal(f.late, 0);
	for (unsigned i = 1; i < nout; i++)
		assert_true(outs[i].seq > outs[i - 1].seq);
	hpn_feed_fini(&f);

	/* The forged heartbeat, long ago, does not date a real hole either:
	 * B (1 ms behind) still fills it within gap_timeout. */
	feed_open(&f, "moldudp64");
	hpn_feed_input(&f, 0, b, mold(b, "S000000001", 1, 1), 0, 0);
	hpn_feed_input(&f, 1, b, mold(b, "S000000001", 900000, 0), 0, 0); /* forged, at t=0 */
	hpn_feed_input(&f, 0, b, mold(b, "S000000001", 3, 1), 600000, 600000); /* 2 lost on A */
	assert_int_equal(f.deadline, 601000);
	hpn_feed_tick(&f, 600500, true);
	hpn_feed_input(&f, 1, b, mold(b, "S000000001", 2, 1), 600800, 600800); /* B's copy */
	assert_int_equal(ngap, 0);
	assert_int_equal(nout, 3);
	hpn_feed_fini(&f);

	/* One forged end of session on a single line: no FEED_END, and the
	 * data after it is delivered. */
	feed_open(&f, "moldudp64");
	for (uint64_t q = 1; q <= 10; q++)
		hpn_feed_input(&f, 0, b, mold(b, "S000000001", q, 1), q, q);
	hpn_feed_input(&f, 0, b, mold(b, "S000000001", 11, 0xFFFF), 11, 11); /* forged */
	for (uint64_t q = 11; q <= 20; q++)
		hpn_feed_input(&f, 0, b, mold(b, "S000000001", q, 1), q, q);
	hpn_feed_tick(&f, 100000, true);
	assert_int_equal(nend, 0);
	assert_int_equal(nout, 20);
	assert_int_equal(ngap, 0);
	hpn_feed_fini(&f);
}

/* A reported gap filled later: delivered once, not reported again; a
 * second late copy is a duplicate. */
static void test_late_fill(void **st)
{
	struct hpn_feed f;
	uint8_t b[512];
	uint32_t n;

	feed_open(&f, "moldudp64");
	n = mold(b, "S000000001", 1, 2);
	hpn_feed_input(&f, 0, b, n, 1, 0);
	n = mold(b, "S000000001", 6, 1); /* 3..5 missing */
	hpn_feed_input(&f, 0, b, n, 2, 10);
	assert_int_equal(nout, 2);
	assert_int_equal(hpn_feed_tick(&f, 500, true), 1010);
	assert_int_equal(ngap, 0);
	hpn_feed_tick(&f, 1010, true);
	assert_int_equal(ngap, 1);
	assert_int_equal(gaps[0].from, 3);
	assert_int_equal(gaps[0].count, 3);
	assert_int_equal(nout, 3);
	assert_int_equal(outs[2].seq, 6);
	n = mold(b, "S000000001", 4, 1); /* the middle one comes late */
	hpn_feed_input(&f, 1, b, n, 3, 2000);
	assert_int_equal(nout, 4);
	assert_int_equal(outs[3].seq, 4);
	assert_int_equal(f.late, 1);
	hpn_feed_input(&f, 0, b, n, 3, 2001); /* again: a duplicate */
	assert_int_equal(nout, 4);
	n = mold(b, "S000000001", 3, 3); /* 3..5: 3 and 5 fill, 4 is a duplicate */
	hpn_feed_input(&f, 0, b, n, 3, 2002);
	assert_int_equal(nout, 6);
	assert_int_equal(outs[4].seq, 3);
	assert_int_equal(outs[5].seq, 5);
	assert_int_equal(f.late, 3);
	assert_int_equal(f.ngaps, 0);
	assert_int_equal(ngap, 1);
	/* Another session's packet and a malformed one are dropped. */
	n = mold(b, "S000000002", 7, 1);
	hpn_feed_input(&f, 0, b, n, 4, 2003);
	assert_int_equal(f.foreign, 1);
	hpn_feed_input(&f, 0, b, 12, 4, 2004);
	assert_int_equal(f.malformed, 1);
	assert_int_equal(nout, 6);
	hpn_feed_fini(&f);
	assert_int_equal(kept_live, 0);
}

/* A reader with no room: packets wait (held), nothing is lost or
 * reordered, and a heartbeat ahead marks a gap to wait for. */
static void test_no_room(void **st)
{
	struct hpn_feed f;
	uint8_t b[512];
	uint32_t n;

	feed_open(&f, "moldudp64");
	room_left = 3;
	for (uint64_t p = 0; p < 10; p++) {
		n = mold(b, "S000000001", 1 + 4 * p, 4);
		hpn_feed_input(&f, 0, b, n, p, p);
		if (p < 9) { /* B's copy of the same packet */
			n = mold(b, "S000000001", 1 + 4 * p, 4);
			hpn_feed_input(&f, 1, b, n, p + 1, p + 1);
		}
	}
	assert_int_equal(nout, 3);
	assert_true(hpn_feed_backlog(&f));
	for (int k = 0; k < 20 && hpn_feed_backlog(&f); k++) {
		room_left = 5;
		hpn_feed_tick(&f, 100, true);
	}
	assert_false(hpn_feed_backlog(&f));
	assert_int_equal(nout, 40);
	for (unsigned i = 0; i < nout; i++)
		assert_int_equal(outs[i].seq, 1 + i);
	assert_int_equal(ngap, 0);
	/* A heartbeat says 41..44 exist: alone it is not believed (it
	 * could be forged); the other line's copy says the same, and from
	 * the first one's time the messages never come: one gap. */
	room_left = UINT32_MAX;
	n = mold(b, "S000000001", 45, 0);
	hpn_feed_input(&f, 0, b, n, 200, 200);
	hpn_feed_tick(&f, 1300, true);
	assert_int_equal(ngap, 0);
	n = mold(b, "S000000001", 45, 0);
	hpn_feed_input(&f, 1, b, n, 1300, 1300);
	assert_int_equal(f.deadline, 1200);
	hpn_feed_tick(&f, 1300, true);
	assert_int_equal(ngap, 1);
	assert_int_equal(gaps[0].from, 41);
	assert_int_equal(gaps[0].count, 4);
	hpn_feed_fini(&f);
	assert_int_equal(kept_live, 0);
}

/* A field at an offset: a message per packet, delivered whole (the caller
 * may hand the buffer over). */
static void test_field(void **st)
{
	struct hpn_feed f;
	uint8_t b[64];

	feed_open(&f, "offset:2,size:8,endian:big");
	for (uint64_t q = 100; q < 110; q++) {
		memset(b, (int)q, sizeof(b));
		be(b + 2, q, 8);
		if (q != 104)
			hpn_feed_input(&f, 0, b, 32, q, q);
	}
	assert_int_equal(nout, 4);
	hpn_feed_tick(&f, 5000, true);
	assert_int_equal(ngap, 1);
	assert_int_equal(gaps[0].from, 104);
	assert_int_equal(nout, 9);
	assert_true(outs[0].whole); /* delivered as it came */
	assert_false(outs[8].whole); /* held, then delivered from the copy */
	assert_int_equal(outs[0].len, 32);
	hpn_feed_fini(&f);
}

/* One stray datagram far ahead is dropped, not believed; a jump the next
 * packet (or the other line) confirms is a gap like any. */
static void test_far_jump(void **st)
{
	struct hpn_feed f;
	uint8_t b[64];

	feed_open(&f, "mdp3");
	hpn_feed_input(&f, 0, b, mdp3(b, 1), 1, 0);
	hpn_feed_input(&f, 1, b, mdp3(b, 1ull << 31), 2, 1); /* stray */
	hpn_feed_input(&f, 0, b, mdp3(b, 2), 3, 2);
	hpn_feed_input(&f, 0, b, mdp3(b, 3), 4, 3);
	hpn_feed_tick(&f, 100000, true);
	assert_int_equal(nout, 3);
	assert_int_equal(outs[2].seq, 3);
	assert_int_equal(ngap, 0);
	assert_int_equal(f.foreign, 1);
	/* A real jump: the next packet agrees. */
	hpn_feed_input(&f, 0, b, mdp3(b, 5000000), 5, 200000);
	hpn_feed_input(&f, 0, b, mdp3(b, 5000001), 6, 200001);
	hpn_feed_tick(&f, 300000, true);
	assert_int_equal(ngap, 1);
	assert_int_equal(gaps[0].from, 4);
	assert_int_equal(gaps[0].count, 5000001 - 4); /* the first far one was not believed: lost with the rest */
	assert_int_equal(outs[nout - 1].seq, 5000001);
	hpn_feed_fini(&f);
}

/* No storage left to hold a packet: the hole in front is given up (and
 * reported) at once rather than the packet dropped; the hole timer runs
 * from when the hole was first seen, a heartbeat's time included. */
static void test_keep_fails(void **st)
{
	struct hpn_seq_spec s;
	struct hpn_feed f;
	uint8_t b[64];
	char why[64];

	reset();
	keep_limit = 2;
	hpn_seq_parse("mdp3", &s, why, sizeof(why));
	assert_int_equal(hpn_feed_init(&f, &s, 1000, &ops, NULL), 0);
	hpn_feed_input(&f, 0, b, mdp3(b, 1), 1, 0);
	for (uint64_t q = 3; q <= 8; q++) /* 2 lost */
		hpn_feed_input(&f, 0, b, mdp3(b, q), q, q);
	assert_int_equal(ngap, 1);
	assert_int_equal(gaps[0].from, 2);
	assert_int_equal(nout, 8 - 1);
	assert_int_equal(f.overflow, 0);
	hpn_feed_fini(&f);
	assert_int_equal(kept_live, 0);

	feed_open(&f, "moldudp64");
	hpn_feed_input(&f, 0, b, mold(b, "S000000001", 1, 1), 1, 0);
	hpn_feed_input(&f, 0, b, mold(b, "S000000001", 3, 0), 1, 100); /* heartbeat: 2 exists */
	assert_int_equal(f.deadline, UINT64_MAX); /* believed only with a second word: */
	hpn_feed_input(&f, 1, b, mold(b, "S000000001", 3, 1), 1, 900);
	assert_int_equal(f.deadline, 1100); /* the hole is as old as the heartbeat said */
	hpn_feed_tick(&f, 1100, true);
	assert_int_equal(ngap, 1);
	hpn_feed_fini(&f);
}

/* A packet partly behind (another packing, a retransmission): its part in
 * a reported gap is delivered late, the rest in order. */
static void test_partly_behind(void **st)
{
	struct hpn_feed f;
	uint8_t b[512];

	feed_open(&f, "moldudp64");
	hpn_feed_input(&f, 0, b, mold(b, "S000000001", 1, 1), 1, 0);
	hpn_feed_input(&f, 0, b, mold(b, "S000000001", 5, 2), 1, 10); /* 2..4 lost */
	hpn_feed_tick(&f, 2000, true);
	assert_int_equal(ngap, 1);
	assert_int_equal(nout, 3); /* 1, 5, 6 */
	hpn_feed_input(&f, 1, b, mold(b, "S000000001", 2, 7), 1, 3000); /* 2..8 */
	assert_int_equal(nout, 3 + 3 + 2); /* 2, 3, 4 late, then 7, 8 */
	assert_int_equal(outs[3].seq, 2);
	assert_int_equal(outs[5].seq, 4);
	assert_int_equal(outs[6].seq, 7);
	assert_int_equal(outs[7].seq, 8);
	assert_int_equal(f.late, 3);
	assert_int_equal(f.dups, 2); /* 5 and 6 */
	hpn_feed_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),     cmocka_unit_test(test_read_mold), cmocka_unit_test(test_ab_mold),
		cmocka_unit_test(test_ab_mdp3),   cmocka_unit_test(test_late_fill), cmocka_unit_test(test_no_room),
		cmocka_unit_test(test_field),     cmocka_unit_test(test_far_jump),  cmocka_unit_test(test_keep_fails),
		cmocka_unit_test(test_partly_behind), cmocka_unit_test(test_lagging_reader),
		cmocka_unit_test(test_stray_start), cmocka_unit_test(test_lead_read_order),      cmocka_unit_test(test_forged_heartbeat),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
