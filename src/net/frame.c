/* SPDX-License-Identifier: MIT */
/*
 * frame.c - Ethernet / IPv4 / UDP framing and ARP (frame.h).
 *
 * The checksum sums 64-bit words as they lie in memory: one's complement
 * addition is independent of byte order (RFC 1071 2(B)), so the folded
 * result is written back as it was read, no swapping per word.
 */
#include "frame.h"

#include <string.h>

#define IPPROTO_UDP_ 17

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]); /* network order -> host */
}

static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* One's complement sum of buf[0, len) as memory-order 16-bit words, into
 * a 64-bit accumulator with end-around carry. */
static uint64_t sum_mem(const uint8_t *p, size_t len, uint64_t acc)
{
	uint64_t v64;
	uint32_t v32;
	uint16_t v16;

	while (len >= 8) {
		memcpy(&v64, p, 8);
		acc += v64;
		acc += acc < v64; /* the carry out of bit 63 comes back in */
		p += 8;
		len -= 8;
	}
	if (len >= 4) {
		memcpy(&v32, p, 4);
		acc += v32;
		acc += acc < v32;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		memcpy(&v16, p, 2);
		acc += v16;
		acc += acc < v16;
		p += 2;
		len -= 2;
	}
	if (len) { /* the last byte, padded with a zero byte after it */
		uint8_t pad[2] = {p[0], 0};

		memcpy(&v16, pad, 2);
		acc += v16;
		acc += acc < v16;
	}
	return acc;
}

/* Fold to 16 bits (memory order). */
static uint16_t fold(uint64_t acc)
{
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)acc;
}

uint16_t hpn_inet_csum(const void *buf, size_t len, uint32_t sum)
{
	return (uint16_t)~fold(sum_mem(buf, len, sum));
}

/* The UDP pseudo-header (RFC 768) in memory order: addresses as they lie
 * in the IPv4 header, then zero, protocol and UDP length. */
static uint64_t pseudo_sum(const uint8_t *ip_src_dst, uint16_t udp_len)
{
	uint8_t tail[4] = {0, IPPROTO_UDP_, (uint8_t)(udp_len >> 8), (uint8_t)udp_len};

	return sum_mem(tail, 4, sum_mem(ip_src_dst, 8, 0));
}

/* The headers of hpn_frame_udp4 without the checksums: the IPv4 header's
 * is 0; the UDP one is left to the caller. */
static size_t headers_udp4(uint8_t *frame, const struct hpn_flow *f, size_t payload_len, uint16_t ip_id)
{
	uint8_t *ip = frame + HPN_ETH_HLEN, *udp = ip + HPN_IP4_HLEN;
	size_t udp_len = HPN_UDP_HLEN + payload_len, ip_len = HPN_IP4_HLEN + udp_len;

	if (ip_len > 0xffff)
		return 0;
	memcpy(frame, f->dst_mac, 6);
	memcpy(frame + 6, f->src_mac, 6);
	wr16(frame + 12, HPN_ETH_P_IP);
	ip[0] = 0x45; /* version 4, 5 words: no options */
	ip[1] = f->tos;
	wr16(ip + 2, (uint16_t)ip_len);
	wr16(ip + 4, ip_id);
	wr16(ip + 6, 0x4000); /* DF: the path MTU is the caller's to respect */
	ip[8] = f->ttl ? f->ttl : 64;
	ip[9] = IPPROTO_UDP_;
	ip[10] = ip[11] = 0;
	memcpy(ip + 12, &f->src_ip, 4);
	memcpy(ip + 16, &f->dst_ip, 4);
	memcpy(udp, &f->src_port, 2);
	memcpy(udp + 2, &f->dst_port, 2);
	wr16(udp + 4, (uint16_t)udp_len);
	udp[6] = udp[7] = 0;
	return HPN_ETH_HLEN + ip_len;
}

size_t hpn_frame_udp4(uint8_t *frame, const struct hpn_flow *f, size_t payload_len, uint16_t ip_id)
{
	uint8_t *ip = frame + HPN_ETH_HLEN, *udp = ip + HPN_IP4_HLEN;
	size_t len = headers_udp4(frame, f, payload_len, ip_id);
	uint16_t udp_len = (uint16_t)(HPN_UDP_HLEN + payload_len), csum;

	if (!len)
		return 0;
	csum = hpn_inet_csum(ip, HPN_IP4_HLEN, 0);
	memcpy(ip + 10, &csum, 2); /* memory order, as summed */
	csum = (uint16_t)~fold(sum_mem(udp, udp_len, pseudo_sum(ip + 12, udp_len)));
	if (!csum)
		csum = 0xffff; /* 0 means "no checksum" in IPv4 UDP (RFC 768) */
	memcpy(udp + 6, &csum, 2);
	return len;
}

size_t hpn_frame_udp4_offload(uint8_t *frame, const struct hpn_flow *f, size_t payload_len, uint16_t ip_id)
{
	uint8_t *ip = frame + HPN_ETH_HLEN, *udp = ip + HPN_IP4_HLEN;
	size_t len = headers_udp4(frame, f, payload_len, ip_id);
	uint16_t csum;

	if (!len)
		return 0;
	/* The pseudo-header's sum, folded, not complemented: the device adds
	 * the UDP header and payload and complements (DPDK's
	 * rte_ipv4_phdr_cksum convention). */
	csum = fold(pseudo_sum(ip + 12, (uint16_t)(HPN_UDP_HLEN + payload_len)));
	memcpy(udp + 6, &csum, 2);
	return len;
}

enum hpn_frame_err hpn_frame_parse_udp4(const uint8_t *frame, size_t len, struct hpn_udp4 *out)
{
	return hpn_frame_parse_udp4_verified(frame, len, out, 0);
}

enum hpn_frame_err hpn_frame_parse_udp4_verified(const uint8_t *frame, size_t len, struct hpn_udp4 *out,
						 unsigned verified)
{
	size_t off = HPN_ETH_HLEN, ihl, ip_len, udp_len;
	uint16_t type, frag;
	const uint8_t *ip, *udp;

	if (len < HPN_ETH_HLEN)
		return HPN_FRAME_TRUNC;
	type = rd16(frame + 12);
	out->vlan = 0;
	if (type == HPN_ETH_P_8021Q) {
		if (len < HPN_ETH_HLEN + 4)
			return HPN_FRAME_TRUNC;
		out->vlan = rd16(frame + 14) & 0x0fff;
		type = rd16(frame + 16);
		off += 4;
	}
	if (type != HPN_ETH_P_IP)
		return HPN_FRAME_NOT_IP4;
	ip = frame + off;
	if (len - off < HPN_IP4_HLEN)
		return HPN_FRAME_TRUNC;
	ihl = (size_t)(ip[0] & 0x0f) * 4;
	ip_len = rd16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < HPN_IP4_HLEN || ip_len < ihl)
		return HPN_FRAME_BAD_IP;
	if (len - off < ip_len)
		return HPN_FRAME_TRUNC;
	if (ip[9] != IPPROTO_UDP_)
		return HPN_FRAME_NOT_UDP;
	if (!(verified & HPN_FRAME_IP_VERIFIED) && fold(sum_mem(ip, ihl, 0)) != 0xffff)
		return HPN_FRAME_IP_CSUM;
	frag = rd16(ip + 6);
	if (frag & 0x3fff) /* more fragments, or an offset */
		return HPN_FRAME_FRAGMENT;
	udp = ip + ihl;
	if (ip_len - ihl < HPN_UDP_HLEN)
		return HPN_FRAME_TRUNC;
	udp_len = rd16(udp + 4);
	if (udp_len < HPN_UDP_HLEN || udp_len > ip_len - ihl)
		return HPN_FRAME_BAD_UDP;
	if (!(verified & HPN_FRAME_UDP_VERIFIED) && (udp[6] | udp[7]) &&
	    fold(sum_mem(udp, udp_len, pseudo_sum(ip + 12, (uint16_t)udp_len))) != 0xffff)
		return HPN_FRAME_UDP_CSUM;
	out->dst_mac = frame;
	out->src_mac = frame + 6;
	memcpy(&out->src_ip, ip + 12, 4);
	memcpy(&out->dst_ip, ip + 16, 4);
	memcpy(&out->src_port, udp, 2);
	memcpy(&out->dst_port, udp + 2, 2);
	out->payload = udp + HPN_UDP_HLEN;
	out->len = (uint32_t)(udp_len - HPN_UDP_HLEN);
	return HPN_FRAME_OK;
}

const char *hpn_frame_strerror(enum hpn_frame_err e)
{
	static const char *const names[] = {
		[HPN_FRAME_OK] = "ok",
		[HPN_FRAME_NOT_IP4] = "not IPv4",
		[HPN_FRAME_NOT_UDP] = "not UDP",
		[HPN_FRAME_TRUNC] = "truncated",
		[HPN_FRAME_BAD_IP] = "bad IPv4 header",
		[HPN_FRAME_FRAGMENT] = "IPv4 fragment",
		[HPN_FRAME_IP_CSUM] = "bad IPv4 header checksum",
		[HPN_FRAME_BAD_UDP] = "bad UDP length",
		[HPN_FRAME_UDP_CSUM] = "bad UDP checksum",
	};

	return (unsigned)e < sizeof(names) / sizeof(names[0]) ? names[e] : "?";
}

size_t hpn_frame_arp(uint8_t *frame, const struct hpn_arp *a)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	uint8_t *p = frame + HPN_ETH_HLEN;

	memcpy(frame, a->op == HPN_ARP_REQUEST ? bcast : a->tha, 6);
	memcpy(frame + 6, a->sha, 6);
	wr16(frame + 12, HPN_ETH_P_ARP);
	wr16(p, 1);            /* hardware: Ethernet */
	wr16(p + 2, HPN_ETH_P_IP);
	p[4] = 6;
	p[5] = 4;
	wr16(p + 6, (uint16_t)a->op);
	memcpy(p + 8, a->sha, 6);
	memcpy(p + 14, &a->spa, 4);
	if (a->op == HPN_ARP_REQUEST)
		memset(p + 18, 0, 6);
	else
		memcpy(p + 18, a->tha, 6);
	memcpy(p + 24, &a->tpa, 4);
	return HPN_ARP_FRAME;
}

bool hpn_frame_parse_arp(const uint8_t *frame, size_t len, struct hpn_arp *out)
{
	const uint8_t *p = frame + HPN_ETH_HLEN;
	uint16_t op;

	if (len < HPN_ARP_FRAME || rd16(frame + 12) != HPN_ETH_P_ARP)
		return false;
	if (rd16(p) != 1 || rd16(p + 2) != HPN_ETH_P_IP || p[4] != 6 || p[5] != 4)
		return false;
	op = rd16(p + 6);
	if (op != HPN_ARP_REQUEST && op != HPN_ARP_REPLY)
		return false;
	out->op = (enum hpn_arp_op)op;
	memcpy(out->sha, p + 8, 6);
	memcpy(&out->spa, p + 14, 4);
	memcpy(out->tha, p + 18, 6);
	memcpy(&out->tpa, p + 24, 4);
	return true;
}
