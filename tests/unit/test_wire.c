/* The reliable packet layer's wire format (src/packet/wire.c): round trips
 * and every kind of malformed input, each refused with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "packet/hello.h"
#include "packet/wire.h"

#include <string.h>

static size_t make(uint8_t *buf, const struct hpn_pkt *p, const void *payload)
{
	size_t n = hpn_pkt_encode(p, buf);

	if (p->type == HPN_PKT_DATA && p->len && payload)
		memcpy(buf + n, payload, p->len);
	n += p->type == HPN_PKT_DATA ? p->len : 0;
	hpn_pkt_seal(buf, n);
	return n;
}

static void test_round_trips(void **state)
{
	uint8_t buf[256];
	struct hpn_pkt in = {.type = HPN_PKT_DATA, .session = 0xdeadbeef, .seq = UINT32_MAX, .len = 5}, out;
	size_t n = make(buf, &in, "hello");

	(void)state;
	assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), 0);
	assert_int_equal(out.session, 0xdeadbeef);
	assert_int_equal(out.seq, UINT32_MAX);
	assert_int_equal(out.len, 5);
	assert_memory_equal(out.payload, "hello", 5);

	in = (struct hpn_pkt){.type = HPN_PKT_DATA, .flags = HPN_PKT_F_FRAG, .seq = 7, .len = 3,
			      .frag_total = 10, .frag_offset = 7};
	n = make(buf, &in, "xyz");
	assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), 0);
	assert_int_equal(out.frag_total, 10);
	assert_int_equal(out.frag_offset, 7);

	in = (struct hpn_pkt){.type = HPN_PKT_ACK, .flags = HPN_PKT_F_ACK, .session = 1, .cum = 99, .window = 64,
			      .sack = {0x8000000000000001ull, 0, 5}, .sack_words = 3};
	n = make(buf, &in, "");
	assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), 0);
	assert_int_equal(out.cum, 99);
	assert_int_equal(out.window, 64);
	assert_int_equal(out.sack_words, 3);
	assert_true(out.sack[0] == 0x8000000000000001ull && out.sack[1] == 0 && out.sack[2] == 5);

	/* An ack piggybacked on data; a window above 16 bits saturates. */
	in = (struct hpn_pkt){.type = HPN_PKT_DATA, .flags = HPN_PKT_F_ACK, .seq = 3, .cum = 0xfffffff0u,
			      .window = 100000, .len = 2};
	n = make(buf, &in, "hi");
	assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), 0);
	assert_int_equal(out.cum, 0xfffffff0u);
	assert_int_equal(out.window, 0xffff);
	assert_memory_equal(out.payload, "hi", 2);

	/* A batch of three messages (one empty) walks back out whole. */
	uint8_t batch[] = {2, 0, 'a', 'b', 0, 0, 3, 0, 'x', 'y', 'z'};
	const uint8_t *m;
	uint16_t ml;
	uint32_t off = 0;

	in = (struct hpn_pkt){.type = HPN_PKT_DATA, .flags = HPN_PKT_F_BATCH, .len = sizeof(batch)};
	n = make(buf, &in, batch);
	assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), 0);
	assert_true(hpn_pkt_batch_next(&out, &off, &m, &ml));
	assert_int_equal(ml, 2);
	assert_memory_equal(m, "ab", 2);
	assert_true(hpn_pkt_batch_next(&out, &off, &m, &ml));
	assert_int_equal(ml, 0);
	assert_true(hpn_pkt_batch_next(&out, &off, &m, &ml));
	assert_int_equal(ml, 3);
	assert_memory_equal(m, "xyz", 3);
	assert_false(hpn_pkt_batch_next(&out, &off, &m, &ml));

	in = (struct hpn_pkt){.type = HPN_PKT_HELLO, .first_seq = 5, .window = 256, .max_msg = 1 << 20, .mtu = 1472};
	n = make(buf, &in, "");
	assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), 0);
	assert_int_equal(out.first_seq, 5);
	assert_int_equal(out.max_msg, 1 << 20);
	assert_int_equal(out.mtu, 1472);
	in.mtu = 10; /* no room for a header: refused */
	n = make(buf, &in, "");
	assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), HPN_PKT_EPAYLOAD);
	/* HELLO's padding (as long as a cookie: no amplification) must be zero. */
	in.mtu = 1472;
	n = make(buf, &in, "");
	assert_int_equal(n, HPN_PKT_HDR + HPN_PKT_HS_LEN);
	buf[n - 1] = 1;
	hpn_pkt_seal(buf, n);
	assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), HPN_PKT_EPAYLOAD);
	/* COOKIE and COOKIE_ECHO carry the cookie through unchanged. */
	in.type = HPN_PKT_COOKIE_ECHO;
	for (unsigned i = 0; i < HPN_PKT_COOKIE_LEN; i++)
		in.cookie[i] = (uint8_t)(0xc0 + i);
	n = make(buf, &in, "");
	assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), 0);
	assert_memory_equal(out.cookie, in.cookie, HPN_PKT_COOKIE_LEN);

	/* A batch of more records than a receiver is bound to take: malformed. */
	uint8_t many[2 * (HPN_PKT_BATCH_MAX + 1)] = {0};

	in = (struct hpn_pkt){.type = HPN_PKT_DATA, .flags = HPN_PKT_F_BATCH, .len = sizeof(many)};
	n = make(buf, &in, many);
	assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), HPN_PKT_ELEN);
	in.len = sizeof(many) - 2;
	n = make(buf, &in, many);
	assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), 0);
}

static void test_malformed(void **state)
{
	uint8_t buf[256], bad[256];
	struct hpn_pkt in = {.type = HPN_PKT_DATA, .len = 4}, out;
	size_t n = make(buf, &in, "abcd");

	(void)state;
	for (size_t cut = 0; cut < n; cut++) /* every truncation */
		assert_int_not_equal(hpn_pkt_decode(buf, cut, 1 << 20, &out), 0);
	assert_int_equal(hpn_pkt_decode(buf, 10, 1 << 20, &out), HPN_PKT_ETRUNC);
	assert_int_equal(hpn_pkt_decode(buf, HPN_PKT_HDR - 1, 1 << 20, &out), HPN_PKT_ETRUNC);
	assert_int_equal(hpn_pkt_decode(buf, n - 1, 1 << 20, &out), HPN_PKT_ETRUNC);
	memcpy(bad, buf, n);
	bad[n] = 0;
	hpn_pkt_seal(bad, n + 1);
	assert_int_equal(hpn_pkt_decode(bad, n + 1, 1 << 20, &out), HPN_PKT_ELEN); /* trailing byte */
	/* Every single corrupted byte is caught (by a field check or the sum). */
	for (size_t i = 0; i < n; i++) {
		for (unsigned x = 1; x < 256; x++) {
			memcpy(bad, buf, n);
			bad[i] ^= (uint8_t)x;
			assert_int_not_equal(hpn_pkt_decode(bad, n, 1 << 20, &out), 0);
		}
	}
	memcpy(bad, buf, n);
	bad[n - 1] ^= 1;
	assert_int_equal(hpn_pkt_decode(bad, n, 1 << 20, &out), HPN_PKT_ECSUM);
#define MUTATE(off, val, err)                                             \
	do {                                                              \
		memcpy(bad, buf, n);                                      \
		bad[off] = (val);                                         \
		hpn_pkt_seal(bad, n);                                     \
		assert_int_equal(hpn_pkt_decode(bad, n, 1 << 20, &out), err); \
	} while (0)
	MUTATE(0, 0xA5, HPN_PKT_EMAGIC);
	MUTATE(1, 1, HPN_PKT_EVERSION); /* version 1 (no cookie handshake) is refused */
	MUTATE(2, 0, HPN_PKT_ETYPE);
	MUTATE(2, 10, HPN_PKT_ETYPE);
	MUTATE(3, 0x80, HPN_PKT_EFLAGS);
	MUTATE(12, 1, HPN_PKT_EFLAGS); /* ack field without the ACK flag */
	MUTATE(18, 1, HPN_PKT_EFLAGS); /* window field without the ACK flag */
	MUTATE(3, HPN_PKT_F_FRAG | HPN_PKT_F_BATCH, HPN_PKT_EFLAGS);
	MUTATE(3, HPN_PKT_F_BATCH, HPN_PKT_ELEN); /* "abcd" is not whole records */
	MUTATE(2, HPN_PKT_ACK, HPN_PKT_EPAYLOAD);  /* ACK needs the ACK flag and 8 bytes */

	/* Control types: wrong payload sizes, data flags, an ACK-flagged HELLO. */
	{
		struct hpn_pkt c = {.type = HPN_PKT_DATA, .len = 4};

		n = make(buf, &c, "abcd");
		buf[2] = HPN_PKT_PING;
		hpn_pkt_seal(buf, n);
		assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), HPN_PKT_EPAYLOAD);
		c = (struct hpn_pkt){.type = HPN_PKT_PING, .flags = HPN_PKT_F_UNRELIABLE};
		n = make(buf, &c, "");
		assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), HPN_PKT_EFLAGS);
		c = (struct hpn_pkt){.type = HPN_PKT_HELLO, .flags = HPN_PKT_F_ACK};
		n = make(buf, &c, "");
		assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), HPN_PKT_EFLAGS);
		/* Handshakes carry the sender's mode, the three ways and nothing
		 * else (RAW alone, the mode with ACK, a fragment: refused). */
		static const uint8_t modes[] = {0, HPN_PKT_F_UNRELIABLE, HPN_PKT_F_RAW | HPN_PKT_F_UNRELIABLE};
		static const uint8_t bad_modes[] = {HPN_PKT_F_RAW, HPN_PKT_F_UNRELIABLE | HPN_PKT_F_ACK,
						    HPN_PKT_F_RAW | HPN_PKT_F_UNRELIABLE | HPN_PKT_F_ACK, HPN_PKT_F_FRAG,
						    HPN_PKT_F_BATCH, HPN_PKT_F_RETX};
		for (uint8_t t = HPN_PKT_HELLO; t <= HPN_PKT_COOKIE_ECHO; t++) {
			if (!hpn_pkt_is_handshake(t))
				continue;
			for (unsigned i = 0; i < sizeof(modes); i++) {
				c = (struct hpn_pkt){.type = t, .flags = modes[i], .first_seq = 9, .window = 64,
						     .max_msg = 100, .mtu = 1472};
				n = make(buf, &c, "");
				assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), 0);
				assert_int_equal(out.flags, modes[i]);
				assert_int_equal(out.first_seq, 9);
			}
			for (unsigned i = 0; i < sizeof(bad_modes); i++) {
				c = (struct hpn_pkt){.type = t, .flags = bad_modes[i], .first_seq = 9, .window = 64,
						     .max_msg = 100, .mtu = 1472};
				n = make(buf, &c, "");
				assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), HPN_PKT_EFLAGS);
			}
		}
		/* DUP: on an ACK only. */
		c = (struct hpn_pkt){.type = HPN_PKT_ACK, .flags = HPN_PKT_F_ACK | HPN_PKT_F_DUP, .sack_words = 1};
		n = make(buf, &c, "");
		assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), 0);
		assert_true(out.flags & HPN_PKT_F_DUP);
		c = (struct hpn_pkt){.type = HPN_PKT_PING, .flags = HPN_PKT_F_ACK | HPN_PKT_F_DUP};
		n = make(buf, &c, "");
		assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), HPN_PKT_EFLAGS);
		/* Its bit on a BYE is ABORT: the sender ended the stream as broken. */
		c = (struct hpn_pkt){.type = HPN_PKT_BYE, .flags = HPN_PKT_F_ACK | HPN_PKT_F_ABORT};
		n = make(buf, &c, "");
		assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), 0);
		assert_true(out.flags & HPN_PKT_F_ABORT);
		c = (struct hpn_pkt){.type = HPN_PKT_BYE, .flags = HPN_PKT_F_ACK | HPN_PKT_F_RETX};
		n = make(buf, &c, "");
		assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), HPN_PKT_EFLAGS);
		/* RETX: on DATA (a retransmission, set on a sealed packet) and
		 * ACK (one arrived new) only, never on unreliable data. */
		c = (struct hpn_pkt){.type = HPN_PKT_ACK, .flags = HPN_PKT_F_ACK | HPN_PKT_F_RETX, .sack_words = 1};
		n = make(buf, &c, "");
		assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), 0);
		assert_true(out.flags & HPN_PKT_F_RETX);
		c = (struct hpn_pkt){.type = HPN_PKT_DATA, .len = 4};
		n = make(buf, &c, "abcd");
		hpn_pkt_set_retx(buf);
		hpn_pkt_set_ack(buf, n, 7, 64);
		assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), 0);
		assert_true((out.flags & HPN_PKT_F_RETX) && out.cum == 7);
		c = (struct hpn_pkt){.type = HPN_PKT_DATA, .flags = HPN_PKT_F_UNRELIABLE | HPN_PKT_F_RETX, .len = 4};
		n = make(buf, &c, "abcd");
		assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), HPN_PKT_EFLAGS);
		c = (struct hpn_pkt){.type = HPN_PKT_PONG, .flags = HPN_PKT_F_RETX};
		n = make(buf, &c, "");
		assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), HPN_PKT_EFLAGS);
		/* A batch record running past the payload. */
		uint8_t rec[] = {9, 0, 'a'};

		c = (struct hpn_pkt){.type = HPN_PKT_DATA, .flags = HPN_PKT_F_BATCH, .len = sizeof(rec)};
		n = make(buf, &c, rec);
		assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), HPN_PKT_ELEN);
		n = make(buf, &in, "abcd"); /* back to the plain packet */
	}

	/* Fragments: offset + len beyond total, total beyond max_msg, zero total. */
	struct hpn_pkt f = {.type = HPN_PKT_DATA, .flags = HPN_PKT_F_FRAG, .len = 4, .frag_total = 6, .frag_offset = 3};

	n = make(buf, &f, "abcd");
	assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &out), HPN_PKT_EFRAG);
	f.frag_offset = UINT32_MAX - 1; /* would wrap a 32-bit sum */
	f.frag_total = UINT32_MAX;
	n = make(buf, &f, "abcd");
	assert_int_equal(hpn_pkt_decode(buf, n, UINT32_MAX, &out), HPN_PKT_EFRAG);
	f = (struct hpn_pkt){.type = HPN_PKT_DATA, .flags = HPN_PKT_F_FRAG, .len = 4, .frag_total = 2000};
	n = make(buf, &f, "abcd");
	assert_int_equal(hpn_pkt_decode(buf, n, 1000, &out), HPN_PKT_EFRAG);
	f.frag_total = 0;
	n = make(buf, &f, "abcd");
	assert_int_equal(hpn_pkt_decode(buf, n, 1000, &out), HPN_PKT_EFRAG);
}

/* Reassembly: in-order fragments make the message; anything else drops
 * the partial message and says why; memory stays within max. */
static void test_reassembly(void **state)
{
	uint8_t store[16], buf[64];
	struct hpn_reasm r = {.buf = store, .max = sizeof(store)};
	struct hpn_pkt p, out;
	const char *msg = "0123456789";
	size_t n;

	(void)state;
	for (uint32_t off = 0; off < 10; off += 4) {
		uint16_t len = (uint16_t)(10 - off < 4 ? 10 - off : 4);

		p = (struct hpn_pkt){.type = HPN_PKT_DATA, .flags = HPN_PKT_F_FRAG, .len = len, .frag_total = 10,
				     .frag_offset = off};
		n = make(buf, &p, msg + off);
		assert_int_equal(hpn_pkt_decode(buf, n, 16, &out), 0);
		assert_int_equal(hpn_reasm_add(&r, &out), off + len == 10 ? 1 : 0);
	}
	assert_int_equal(r.got, 10);
	assert_memory_equal(store, msg, 10);
	/* A fragment that does not start at 0, a gap, a total that changes,
	 * a message larger than the buffer. */
	p = (struct hpn_pkt){.type = HPN_PKT_DATA, .flags = HPN_PKT_F_FRAG, .len = 2, .frag_total = 10, .frag_offset = 4};
	n = make(buf, &p, "xx");
	hpn_pkt_decode(buf, n, 16, &out);
	assert_int_equal(hpn_reasm_add(&r, &out), -HPN_PKT_EFRAG);
	p.frag_offset = 0;
	n = make(buf, &p, "xx");
	hpn_pkt_decode(buf, n, 16, &out);
	assert_int_equal(hpn_reasm_add(&r, &out), 0);
	p.frag_offset = 4; /* bytes 2..3 missing */
	n = make(buf, &p, "xx");
	hpn_pkt_decode(buf, n, 16, &out);
	assert_int_equal(hpn_reasm_add(&r, &out), -HPN_PKT_EFRAG);
	assert_int_equal(r.total, 0); /* dropped, idle again */
	p = (struct hpn_pkt){.type = HPN_PKT_DATA, .flags = HPN_PKT_F_FRAG, .len = 2, .frag_total = 16, .frag_offset = 0};
	n = make(buf, &p, "xx");
	hpn_pkt_decode(buf, n, 1000, &out);
	out.frag_total = 17; /* larger than the reassembly buffer */
	assert_int_equal(hpn_reasm_add(&r, &out), -HPN_PKT_EFRAG);
}

/* SipHash-2-4 against the reference vectors of its paper (key 00..0f,
 * messages 00.., of length 0 and 15). */
static void test_siphash(void **state)
{
	struct hpn_hello_key k = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
	uint8_t m[15];

	(void)state;
	for (unsigned i = 0; i < sizeof(m); i++)
		m[i] = (uint8_t)i;
	assert_true(hpn_siphash(&k, m, 0) == 0x726fdb47dd0e0e31ull);
	assert_true(hpn_siphash(&k, m, 15) == 0xa129ca6149be45e5ull);
}

/* The stateless handshake: a cookie is good only for the address, session
 * and parameters it was made for, within its lifetime, under its key. */
static void test_cookie(void **state)
{
	struct hpn_hello_key k = {1, 2}, other = {1, 3};
	uint8_t a[16] = {2, 0, 0x1f, 0x90, 127, 0, 0, 1}, a2[16] = {2, 0, 0x1f, 0x90, 127, 0, 0, 9};
	struct hpn_pkt hello = {.type = HPN_PKT_HELLO, .session = 77, .first_seq = 1000, .window = 256,
				.max_msg = 4096, .mtu = 1472};
	struct hpn_pkt ours = {.window = 128, .max_msg = 8192, .mtu = 1400}, c, echo;
	uint8_t buf[HPN_PKT_HDR + HPN_PKT_HS_LEN];
	uint32_t isn, isn2;
	size_t n;

	(void)state;
	n = hpn_hello_cookie(&k, a, sizeof(a), &hello, &ours, 5000, buf);
	assert_int_equal(n, HPN_PKT_HDR + HPN_PKT_HS_LEN); /* as long as the HELLO */
	assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &c), 0);
	assert_int_equal(c.type, HPN_PKT_COOKIE);
	assert_int_equal(c.session, 77);
	assert_int_equal(c.window, 128);
	assert_int_equal(c.mtu, 1400);
	echo = hello;
	echo.type = HPN_PKT_COOKIE_ECHO;
	memcpy(echo.cookie, c.cookie, sizeof(echo.cookie));
	assert_int_equal(hpn_hello_check(&k, a, sizeof(a), &echo, 6999, 2000, &isn), 0);
	assert_int_equal(isn, c.first_seq);
	/* Another address, key, session or parameter; too late; from the future. */
	assert_int_equal(hpn_hello_check(&k, a2, sizeof(a2), &echo, 5001, 2000, &isn2), -1);
	assert_int_equal(hpn_hello_check(&other, a, sizeof(a), &echo, 5001, 2000, &isn2), -1);
	assert_int_equal(hpn_hello_check(&k, a, sizeof(a), &echo, 7001, 2000, &isn2), -1);
	assert_int_equal(hpn_hello_check(&k, a, sizeof(a), &echo, 4999, 2000, &isn2), -1);
	echo.session++;
	assert_int_equal(hpn_hello_check(&k, a, sizeof(a), &echo, 5001, 2000, &isn2), -1);
	echo.session--;
	echo.window = 1024;
	assert_int_equal(hpn_hello_check(&k, a, sizeof(a), &echo, 5001, 2000, &isn2), -1);
	echo.window = hello.window;
	echo.cookie[4] ^= 1; /* our first sequence number, changed */
	assert_int_equal(hpn_hello_check(&k, a, sizeof(a), &echo, 5001, 2000, &isn2), -1);
	/* First sequence numbers differ by address (random to anyone else). */
	n = hpn_hello_cookie(&k, a2, sizeof(a2), &hello, &ours, 5000, buf);
	assert_int_equal(hpn_pkt_decode(buf, n, 1 << 20, &echo), 0);
	assert_int_not_equal(echo.first_seq, c.first_seq);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_reassembly),
		cmocka_unit_test(test_siphash),
		cmocka_unit_test(test_cookie),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
