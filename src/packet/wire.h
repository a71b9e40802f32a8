/* SPDX-License-Identifier: MIT */
/*
 * wire.h - the reliable packet layer's header (docs/WIRE.md): encode, and
 * decode with full validation. Untrusted input: every length is checked
 * before use; the decoder is fuzzed (tests/fuzz/fuzz_packet.c).
 */
#ifndef HPN_PACKET_WIRE_H
#define HPN_PACKET_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define HPN_PKT_MAGIC 0xA7
#define HPN_PKT_VERSION 1
#define HPN_PKT_HDR 20
#define HPN_PKT_FRAG_HDR 8

enum hpn_pkt_type {
	HPN_PKT_DATA = 1,
	HPN_PKT_ACK,
	HPN_PKT_HELLO,
	HPN_PKT_HELLO_ACK,
	HPN_PKT_BYE,
	HPN_PKT_PING,
	HPN_PKT_PONG,
};

#define HPN_PKT_F_FRAG 0x01
#define HPN_PKT_F_UNRELIABLE 0x02

/* Why a packet was refused (for the malformed counters). */
enum hpn_pkt_err {
	HPN_PKT_ETRUNC = 1, /* shorter than its headers say */
	HPN_PKT_EMAGIC,
	HPN_PKT_EVERSION,
	HPN_PKT_ETYPE,
	HPN_PKT_EFLAGS,
	HPN_PKT_ELEN,      /* length field disagrees with the packet */
	HPN_PKT_EFRAG,     /* fragment header impossible (offset/total) */
	HPN_PKT_EPAYLOAD,  /* a control payload of the wrong size */
	HPN_PKT_ECSUM,     /* checksum mismatch: corrupted on the way */
};

struct hpn_pkt {
	uint8_t type, flags;
	uint32_t session, seq;
	uint16_t len; /* payload bytes */
	uint32_t frag_total, frag_offset;
	const uint8_t *payload;
	/* ACK */
	uint32_t cum, window;
	uint64_t sack;
	/* HELLO / HELLO_ACK */
	uint32_t first_seq, max_msg;
};

/* Decode buf[0, len). Returns 0 and fills *p, or a positive enum
 * hpn_pkt_err. max_msg bounds fragment totals. */
int hpn_pkt_decode(const uint8_t *buf, size_t len, uint32_t max_msg, struct hpn_pkt *p);

/* Write the headers for p (type, flags, session, seq, len, fragment and
 * control fields) into buf (room for HPN_PKT_HDR + HPN_PKT_FRAG_HDR + 16).
 * Returns the header bytes written; the caller appends the payload, then
 * calls hpn_pkt_seal() on the whole packet. */
size_t hpn_pkt_encode(const struct hpn_pkt *p, uint8_t *buf);

/* Store the checksum of the finished packet buf[0, len). */
void hpn_pkt_seal(uint8_t *buf, size_t len);

/* The checksum: a 64-bit end-around-carry sum folded to 32 bits, 8 bytes a
 * step. It catches any single corrupted byte; it is not a MAC. */
uint32_t hpn_pkt_csum(const uint8_t *buf, size_t len);

/* Reassembly of one message from in-order fragments. */
struct hpn_reasm {
	uint8_t *buf;   /* caller's buffer, at least max bytes */
	uint32_t max;
	uint32_t total; /* 0: idle */
	uint32_t got;
};

/* Feed one decoded DATA packet (in sequence order). Returns 1 when the
 * message is complete (r->got bytes in r->buf; the state is idle again),
 * 0 when more is needed, or -HPN_PKT_EFRAG (the partial message is
 * dropped). */
int hpn_reasm_add(struct hpn_reasm *r, const struct hpn_pkt *p);

#endif
