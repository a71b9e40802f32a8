/* SPDX-License-Identifier: MIT */
/* hello.c - see hello.h. */
#include "hello.h"

#include <string.h>

static inline uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                                      \
	do {                                                                                                          \
		v0 += v1;                                                                                             \
		v1 = rotl(v1, 13) ^ v0;                                                                               \
		v0 = rotl(v0, 32);                                                                                    \
		v2 += v3;                                                                                             \
		v3 = rotl(v3, 16) ^ v2;                                                                               \
		v0 += v3;                                                                                             \
		v3 = rotl(v3, 21) ^ v0;                                                                               \
		v2 += v1;                                                                                             \
		v1 = rotl(v1, 17) ^ v2;                                                                               \
		v2 = rotl(v2, 32);                                                                                    \
	} while (0)

static inline uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

uint64_t hpn_siphash(const struct hpn_hello_key *k, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t v0 = k->k0 ^ 0x736f6d6570736575ull, v1 = k->k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = k->k0 ^ 0x6c7967656e657261ull, v3 = k->k1 ^ 0x7465646279746573ull;
	uint64_t m, b = (uint64_t)len << 56;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		m = le64(p + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)p[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* What the cookie vouches for: everything the acceptor later builds the
 * peer from, and where it came from. Addresses longer than the buffer
 * room cannot occur (HPN_PKTEP_ADDR_MAX is 128). */
static uint64_t mac(const struct hpn_hello_key *k, uint8_t tag, const void *addr, uint32_t alen,
		    const struct hpn_pkt *h, uint32_t ts, uint32_t isn)
{
	uint8_t b[1 + 4 * 7 + 128];
	uint32_t f[7] = {h->session, h->first_seq, h->window, h->max_msg, h->mtu, ts, isn};

	if (alen > 128)
		alen = 128;
	b[0] = tag;
	memcpy(b + 1, f, sizeof(f));
	memcpy(b + 1 + sizeof(f), addr, alen);
	return hpn_siphash(k, b, 1 + sizeof(f) + alen);
}

size_t hpn_hello_cookie(const struct hpn_hello_key *k, const void *addr, uint32_t alen, const struct hpn_pkt *hello,
			const struct hpn_pkt *ours, uint32_t now_ms, uint8_t *out)
{
	/* Our first sequence number: random to anyone without the key, and
	 * found again from the echo without keeping anything. */
	uint32_t isn = (uint32_t)mac(k, 'i', addr, alen, hello, now_ms, 0);
	uint64_t m = mac(k, 'c', addr, alen, hello, now_ms, isn);
	struct hpn_pkt c = {.type = HPN_PKT_COOKIE, .flags = ours->flags, .session = hello->session, .first_seq = isn,
			    .window = ours->window, .max_msg = ours->max_msg, .mtu = ours->mtu};
	size_t n;

	memcpy(c.cookie, &now_ms, 4);
	memcpy(c.cookie + 4, &isn, 4);
	memcpy(c.cookie + 8, &m, 8);
	n = hpn_pkt_encode(&c, out);
	hpn_pkt_seal(out, n);
	return n;
}

int hpn_hello_check(const struct hpn_hello_key *k, const void *addr, uint32_t alen, const struct hpn_pkt *echo,
		    uint32_t now_ms, uint32_t lifetime_ms, uint32_t *isn)
{
	uint32_t ts, i;
	uint64_t m, want;

	memcpy(&ts, echo->cookie, 4);
	memcpy(&i, echo->cookie + 4, 4);
	memcpy(&m, echo->cookie + 8, 8);
	if ((uint32_t)(now_ms - ts) > lifetime_ms)
		return -1; /* expired (or from the future: forged) */
	want = mac(k, 'c', addr, alen, echo, ts, i);
	/* Not secret-dependent timing that matters: a forger learns only
	 * that a guess was wrong. */
	if (want != m)
		return -1;
	*isn = i;
	return 0;
}
