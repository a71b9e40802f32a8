/* SPDX-License-Identifier: MIT */
/* wire.c - see wire.h and docs/WIRE.md. */
#include "wire.h"

#include <string.h>

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static inline void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

uint32_t hpn_pkt_csum(const uint8_t *buf, size_t len)
{
	uint64_t s = len, w;

	for (; len >= 8; buf += 8, len -= 8) {
		memcpy(&w, buf, 8);
		s += w;
		s += s < w; /* end-around carry: arithmetic mod 2^64 - 1 */
	}
	if (len) {
		w = 0;
		memcpy(&w, buf, len);
		s += w;
		s += s < w;
	}
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffffffu) + (s >> 32);
	return (uint32_t)s;
}

/* The checksum field counts as zero while summing. */
static uint32_t csum_of(const uint8_t *buf, size_t len)
{
	uint8_t head[HPN_PKT_HDR];

	memcpy(head, buf, HPN_PKT_HDR);
	memset(head + 20, 0, 4);
	uint64_t a = hpn_pkt_csum(head, HPN_PKT_HDR), b = hpn_pkt_csum(buf + HPN_PKT_HDR, len - HPN_PKT_HDR);

	a += b;
	a = (a & 0xffffffffu) + (a >> 32);
	return (uint32_t)a;
}

void hpn_pkt_seal(uint8_t *buf, size_t len)
{
	uint32_t c = csum_of(buf, len);

	put32(buf + 20, c);
}

/* A batch must be whole records that exactly fill the payload. */
static int batch_ok(const uint8_t *pl, uint32_t len)
{
	uint32_t off = 0, n = 0;

	while (off < len) {
		if (len - off < HPN_PKT_BATCH_HDR || n == HPN_PKT_BATCH_MAX)
			return 0;
		off += HPN_PKT_BATCH_HDR + get16(pl + off);
		n++;
	}
	return off == len && n;
}

static int decode_ctrl(struct hpn_pkt *p)
{
	switch (p->type) {
	case HPN_PKT_ACK:
		if (!p->len || p->len % 8 || p->len > 8 * HPN_PKT_SACK_WORDS || !(p->flags & HPN_PKT_F_ACK))
			return HPN_PKT_EPAYLOAD;
		p->sack_words = (uint8_t)(p->len / 8);
		for (unsigned i = 0; i < p->sack_words; i++)
			p->sack[i] = get64(p->payload + 8 * i);
		break;
	case HPN_PKT_HELLO:
	case HPN_PKT_HELLO_ACK:
	case HPN_PKT_COOKIE:
	case HPN_PKT_COOKIE_ECHO:
		if (p->len != HPN_PKT_HS_LEN)
			return HPN_PKT_EPAYLOAD;
		p->first_seq = get32(p->payload);
		p->window = get32(p->payload + 4);
		p->max_msg = get32(p->payload + 8);
		p->mtu = get32(p->payload + 12);
		if (p->mtu < HPN_PKT_MIN_MTU || p->mtu > 65535 || !p->max_msg || !p->window)
			return HPN_PKT_EPAYLOAD;
		memcpy(p->cookie, p->payload + 16, HPN_PKT_COOKIE_LEN);
		if (p->type != HPN_PKT_COOKIE && p->type != HPN_PKT_COOKIE_ECHO) {
			static const uint8_t zero[HPN_PKT_COOKIE_LEN];

			if (memcmp(p->cookie, zero, sizeof(zero)))
				return HPN_PKT_EPAYLOAD; /* padding: zero, room for a later version */
		}
		break;
	case HPN_PKT_BYE:
	case HPN_PKT_PING:
	case HPN_PKT_PONG:
		if (p->len)
			return HPN_PKT_EPAYLOAD;
		break;
	default:
		break;
	}
	return 0;
}

static int flags_ok(uint8_t type, uint8_t f)
{
	if (f & ~(HPN_PKT_F_FRAG | HPN_PKT_F_UNRELIABLE | HPN_PKT_F_ACK | HPN_PKT_F_BATCH | HPN_PKT_F_DUP |
		  HPN_PKT_F_RETX | HPN_PKT_F_RAW))
		return 0;
	if (hpn_pkt_is_handshake(type)) /* the sender's mode, nothing else (hpn_pkt_mode_flags) */
		return f == 0 || f == HPN_PKT_F_UNRELIABLE || f == (HPN_PKT_F_RAW | HPN_PKT_F_UNRELIABLE);
	if (f & HPN_PKT_F_RAW)
		return type == HPN_PKT_DATA && f == (HPN_PKT_F_RAW | HPN_PKT_F_UNRELIABLE);
	if ((f & HPN_PKT_F_DUP) && type != HPN_PKT_ACK && type != HPN_PKT_BYE)
		return 0; /* only an ACK reports a duplicate; on a BYE the bit is ABORT */
	if ((f & HPN_PKT_F_RETX) && ((type != HPN_PKT_ACK && type != HPN_PKT_DATA) || (f & HPN_PKT_F_UNRELIABLE)))
		return 0; /* unreliable data is never retransmitted */
	if (type != HPN_PKT_DATA && (f & ~(HPN_PKT_F_ACK | HPN_PKT_F_DUP | HPN_PKT_F_RETX)))
		return 0; /* only DATA has data flags */
	return (f & (HPN_PKT_F_FRAG | HPN_PKT_F_BATCH)) != (HPN_PKT_F_FRAG | HPN_PKT_F_BATCH);
}

void hpn_pkt_set_retx(uint8_t *buf)
{
	buf[3] |= HPN_PKT_F_RETX;
}

void hpn_pkt_set_ack(uint8_t *buf, size_t len, uint32_t cum, uint32_t window)
{
	buf[3] |= HPN_PKT_F_ACK;
	put32(buf + 12, cum);
	put16(buf + 18, (uint16_t)(window > 0xffff ? 0xffff : window));
	hpn_pkt_seal(buf, len);
}

bool hpn_pkt_ack_differs(const uint8_t *buf, uint32_t cum, uint32_t window)
{
	return !(buf[3] & HPN_PKT_F_ACK) || get32(buf + 12) != cum ||
	       get16(buf + 18) != (uint16_t)(window > 0xffff ? 0xffff : window);
}

int hpn_pkt_decode(const uint8_t *buf, size_t len, uint32_t max_msg, struct hpn_pkt *p)
{
	size_t hdr = HPN_PKT_HDR;

	memset(p, 0, sizeof(*p));
	if (len < HPN_PKT_HDR)
		return HPN_PKT_ETRUNC;
	if (buf[0] != HPN_PKT_MAGIC)
		return HPN_PKT_EMAGIC;
	if (buf[1] != HPN_PKT_VERSION)
		return HPN_PKT_EVERSION;
	p->type = buf[2];
	p->flags = buf[3];
	if (p->type < HPN_PKT_DATA || p->type > HPN_PKT_COOKIE_ECHO)
		return HPN_PKT_ETYPE;
	if (!flags_ok(p->type, p->flags))
		return HPN_PKT_EFLAGS;
	p->session = get32(buf + 4);
	p->seq = get32(buf + 8);
	p->len = get16(buf + 16);
	if (p->flags & HPN_PKT_F_ACK) {
		p->cum = get32(buf + 12);
		p->window = get16(buf + 18);
	} else if (get32(buf + 12) || get16(buf + 18)) {
		return HPN_PKT_EFLAGS; /* unused fields must be zero: room for a future version */
	}
	if (p->flags & HPN_PKT_F_FRAG) {
		if (len < HPN_PKT_HDR + HPN_PKT_FRAG_HDR)
			return HPN_PKT_ETRUNC;
		p->frag_total = get32(buf + HPN_PKT_HDR);
		p->frag_offset = get32(buf + HPN_PKT_HDR + 4);
		hdr += HPN_PKT_FRAG_HDR;
		/* 64-bit sums: offset + len must not wrap past the check. */
		if (!p->frag_total || p->frag_total > max_msg ||
		    (uint64_t)p->frag_offset + p->len > p->frag_total)
			return HPN_PKT_EFRAG;
	}
	if (len - hdr != p->len)
		return len - hdr < p->len ? HPN_PKT_ETRUNC : HPN_PKT_ELEN;
	if ((p->flags & HPN_PKT_F_RAW) && p->type == HPN_PKT_DATA) { /* a handshake's RAW is its sender's mode */
		if (p->seq || get32(buf + 20))
			return HPN_PKT_EFLAGS; /* unused fields must be zero */
	} else if (get32(buf + 20) != csum_of(buf, len)) {
		return HPN_PKT_ECSUM;
	}
	p->payload = buf + hdr;
	if ((p->flags & HPN_PKT_F_BATCH) && !batch_ok(p->payload, p->len))
		return HPN_PKT_ELEN;
	return decode_ctrl(p);
}

size_t hpn_pkt_encode(const struct hpn_pkt *p, uint8_t *buf)
{
	size_t n = HPN_PKT_HDR;
	uint16_t len = p->len;
	bool ack = p->flags & HPN_PKT_F_ACK;

	if (p->type == HPN_PKT_ACK)
		len = (uint16_t)(8 * (p->sack_words ? p->sack_words : 1));
	else if (hpn_pkt_is_handshake(p->type))
		len = HPN_PKT_HS_LEN;
	else if (p->type != HPN_PKT_DATA)
		len = 0;
	buf[0] = HPN_PKT_MAGIC;
	buf[1] = HPN_PKT_VERSION;
	buf[2] = p->type;
	buf[3] = p->flags;
	put32(buf + 4, p->session);
	put32(buf + 8, p->seq);
	put32(buf + 12, ack ? p->cum : 0);
	put16(buf + 16, len);
	put16(buf + 18, ack ? (uint16_t)(p->window > 0xffff ? 0xffff : p->window) : 0);
	put32(buf + 20, 0); /* checksum: hpn_pkt_seal() */
	if (p->flags & HPN_PKT_F_FRAG) {
		put32(buf + HPN_PKT_HDR, p->frag_total);
		put32(buf + HPN_PKT_HDR + 4, p->frag_offset);
		n += HPN_PKT_FRAG_HDR;
	}
	if (p->type == HPN_PKT_ACK) {
		for (unsigned i = 0; i < len / 8u; i++)
			put64(buf + n + 8 * i, p->sack[i]);
		n += len;
	} else if (hpn_pkt_is_handshake(p->type)) {
		put32(buf + n, p->first_seq);
		put32(buf + n + 4, p->window);
		put32(buf + n + 8, p->max_msg);
		put32(buf + n + 12, p->mtu);
		if (p->type == HPN_PKT_COOKIE || p->type == HPN_PKT_COOKIE_ECHO)
			memcpy(buf + n + 16, p->cookie, HPN_PKT_COOKIE_LEN);
		else
			memset(buf + n + 16, 0, HPN_PKT_COOKIE_LEN);
		n += HPN_PKT_HS_LEN;
	}
	return n;
}

int hpn_reasm_add(struct hpn_reasm *r, const struct hpn_pkt *p)
{
	if (!(p->flags & HPN_PKT_F_FRAG)) {
		if (r->total) { /* a whole message inside a fragmented one */
			r->total = r->got = 0;
			return -HPN_PKT_EFRAG;
		}
		if (p->len > r->max || !r->buf)
			return -HPN_PKT_EFRAG;
		memcpy(r->buf, p->payload, p->len);
		r->got = p->len;
		return 1;
	}
	if (!r->total) {
		if (p->frag_offset || p->frag_total > r->max || !r->buf)
			return -HPN_PKT_EFRAG; /* must start at 0, and fit */
		r->total = p->frag_total;
		r->got = 0;
	}
	if (p->frag_total != r->total || p->frag_offset != r->got ||
	    (uint64_t)r->got + p->len > r->total) {
		r->total = r->got = 0;
		return -HPN_PKT_EFRAG;
	}
	memcpy(r->buf + r->got, p->payload, p->len);
	r->got += p->len;
	if (r->got < r->total)
		return 0;
	r->got = r->total;
	r->total = 0;
	return 1;
}
