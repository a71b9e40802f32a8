/* SPDX-License-Identifier: MIT */
/*
 * wire.h - the reliable packet layer's header (docs/WIRE.md): encode, and
 * decode with full validation. Untrusted input: every length is checked
 * before use; the decoder is fuzzed (tests/fuzz/fuzz_packet.c).
 */
#ifndef HPN_PACKET_WIRE_H
#define HPN_PACKET_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HPN_PKT_MAGIC 0xA7
#define HPN_PKT_VERSION 5 /* 2: cookie handshake, random first sequence numbers, probe nonces; 3: RETX; 4: RAW;
                           * 5: handshakes carry the sender's mode */
#define HPN_PKT_HDR 24
#define HPN_PKT_FRAG_HDR 8

enum hpn_pkt_type {
	HPN_PKT_DATA = 1,
	HPN_PKT_ACK,
	HPN_PKT_HELLO,
	HPN_PKT_HELLO_ACK,
	HPN_PKT_BYE,
	HPN_PKT_PING,
	HPN_PKT_PONG,
	HPN_PKT_COOKIE,      /* the acceptor's stateless answer to HELLO */
	HPN_PKT_COOKIE_ECHO, /* the connector proves it received the COOKIE */
};

/* Handshake payloads (HELLO, COOKIE, COOKIE_ECHO, HELLO_ACK) are all this
 * long: four u32 parameters, then 16 bytes that are the cookie in COOKIE
 * and COOKIE_ECHO and zero otherwise. HELLO is as long as the COOKIE it
 * draws, so a forged source gains no amplification. */
#define HPN_PKT_HS_LEN 32
#define HPN_PKT_COOKIE_LEN 16

/* BYE before the handshake completed: why (in the seq field). */
#define HPN_PKT_BYE_REFUSED 1 /* the acceptor is full (max_peers) */

#define HPN_PKT_F_FRAG 0x01       /* DATA: a fragment; fragment header follows */
#define HPN_PKT_F_UNRELIABLE 0x02 /* DATA: gaps are reported, never retransmitted */
#define HPN_PKT_F_ACK 0x04        /* ack and window fields are valid (piggybacked) */
#define HPN_PKT_F_BATCH 0x08      /* DATA: several small messages, u16 length each */
#define HPN_PKT_F_DUP 0x10        /* ACK: sent for a DATA packet we already had (DSACK's news) */
/* BYE (DUP's bit: only an ACK carries DUP): the sender ended the stream as
 * broken (conn.c: watch_progress, a contradicting message) - the peer ends
 * it at once too, -ECONNRESET, rather than learn it by silence. A version-5
 * receiver drops such a BYE as malformed: it learns by silence, as before. */
#define HPN_PKT_F_ABORT HPN_PKT_F_DUP
#define HPN_PKT_F_RETX 0x20       /* DATA: a retransmission; ACK: a retransmission arrived new */
/* DATA (with UNRELIABLE, nothing else): a raw datagram (reliable=off): one
 * message, no sequence number (0), no ack, no checksum (0: the UDP
 * checksum covers it, and a 64 KiB datagram is not summed twice). */
#define HPN_PKT_F_RAW 0x40
#define HPN_PKT_BATCH_HDR 2
#define HPN_PKT_BATCH_MAX 64 /* messages in one BATCH packet: what a receiver must have room for */
#define HPN_PKT_MIN_MTU 64
#define HPN_PKT_SACK_WORDS 16 /* ACK: up to 1024 packets beyond cum */

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
	/* With HPN_PKT_F_ACK (any type): every seq before cum arrived; the
	 * receiver takes window packets from cum on (flow control). */
	uint32_t frag_total, frag_offset;
	const uint8_t *payload;
	uint32_t cum, window;
	/* ACK: bit i of word w means cum + 1 + 64 w + i arrived. */
	uint64_t sack[HPN_PKT_SACK_WORDS];
	uint8_t sack_words;
	/* HELLO / COOKIE / COOKIE_ECHO / HELLO_ACK: what the sender will send
	 * and can take (window above), and the opaque cookie. */
	uint32_t first_seq, max_msg, mtu;
	uint8_t cookie[HPN_PKT_COOKIE_LEN];
};

/* Decode buf[0, len). Returns 0 and fills *p, or a positive enum
 * hpn_pkt_err. max_msg bounds fragment totals. */
int hpn_pkt_decode(const uint8_t *buf, size_t len, uint32_t max_msg, struct hpn_pkt *p);

/* Write the headers for p (type, flags, session, seq, ack, window, len,
 * fragment and control fields) into buf (room for HPN_PKT_HDR +
 * 8 * HPN_PKT_SACK_WORDS).
 * Returns the header bytes written; the caller appends the payload, then
 * calls hpn_pkt_seal() on the whole packet. */
size_t hpn_pkt_encode(const struct hpn_pkt *p, uint8_t *buf);

/* Store the checksum of the finished packet buf[0, len). */
void hpn_pkt_seal(uint8_t *buf, size_t len);

/* The session field of a packet of at least HPN_PKT_HDR bytes, before
 * (or without) decoding it: to find which stream it claims. */
static inline uint32_t hpn_pkt_session(const uint8_t *buf)
{
	return (uint32_t)buf[4] | (uint32_t)buf[5] << 8 | (uint32_t)buf[6] << 16 | (uint32_t)buf[7] << 24;
}

/* The handshake packets carry their parameters in the payload. */
static inline bool hpn_pkt_is_handshake(uint8_t type)
{
	return type == HPN_PKT_HELLO || type == HPN_PKT_HELLO_ACK || type == HPN_PKT_COOKIE ||
	       type == HPN_PKT_COOKIE_ECHO;
}

/* The flags every handshake packet carries: the sender's mode, as its DATA
 * would say it - none (reliable), UNRELIABLE (unordered), RAW|UNRELIABLE
 * (reliable=off). Peers of two modes would connect and then drop each
 * other's every packet: the handshake refuses them instead. */
static inline uint8_t hpn_pkt_mode_flags(bool reliable, bool raw)
{
	return raw ? HPN_PKT_F_RAW | HPN_PKT_F_UNRELIABLE : reliable ? 0 : HPN_PKT_F_UNRELIABLE;
}

/* The mode as its config key says it ("reliable=on", "unordered=on",
 * "reliable=off"): for messages. */
static inline const char *hpn_pkt_mode_name(uint8_t mode_flags)
{
	return mode_flags & HPN_PKT_F_RAW ? "reliable=off" : mode_flags ? "unordered=on" : "reliable=on";
}

/* Mark a sealed DATA packet as a retransmission (RETX); seal it again
 * after (hpn_pkt_set_ack does). */
void hpn_pkt_set_retx(uint8_t *buf);
/* Rewrite the piggybacked ack of a sealed packet (a retransmission carries
 * the current ack, not the one of its first flight) and seal it again. */
void hpn_pkt_set_ack(uint8_t *buf, size_t len, uint32_t cum, uint32_t window);
/* Does a sealed packet's piggybacked ack say something else (or nothing)? */
bool hpn_pkt_ack_differs(const uint8_t *buf, uint32_t cum, uint32_t window);

/* The checksum: a 64-bit end-around-carry sum folded to 32 bits, 8 bytes a
 * step. It catches any single corrupted byte; it is not a MAC. */
uint32_t hpn_pkt_csum(const uint8_t *buf, size_t len);

/* Walk the messages of a BATCH payload (validated by the decoder): call
 * with *off = 0 first; returns false at the end. */
static inline bool hpn_pkt_batch_next(const struct hpn_pkt *p, uint32_t *off, const uint8_t **msg,
				      uint16_t *len)
{
	if (*off + HPN_PKT_BATCH_HDR > p->len)
		return false;
	*len = (uint16_t)(p->payload[*off] | p->payload[*off + 1] << 8);
	*msg = p->payload + *off + HPN_PKT_BATCH_HDR;
	*off += HPN_PKT_BATCH_HDR + *len;
	return true;
}

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

/* Raw datagrams (HPN_PKT_F_RAW) on the fast path: the header is fixed
 * but for session and length, so it is written, and checked, as three
 * little-endian words - the same rules as hpn_pkt_decode (flags exactly
 * RAW|UNRELIABLE, seq, ack, window and checksum 0, the length the
 * datagram's), without its branches. */
static inline uint64_t hpn_pkt_raw_word0(uint32_t session)
{
	return (uint64_t)HPN_PKT_MAGIC | (uint64_t)HPN_PKT_VERSION << 8 | (uint64_t)HPN_PKT_DATA << 16 |
	       (uint64_t)(HPN_PKT_F_RAW | HPN_PKT_F_UNRELIABLE) << 24 | (uint64_t)session << 32;
}

static inline void hpn_pkt_raw_header(uint8_t *h, uint32_t session, uint16_t len)
{
	uint64_t w[3] = {hpn_pkt_raw_word0(session), 0, len};

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
	w[0] = __builtin_bswap64(w[0]);
	w[2] = __builtin_bswap64(w[2]);
#endif
	__builtin_memcpy(h, w, sizeof(w));
}

/* The payload length of a raw datagram of this session, or -1 if buf is
 * anything else (a control packet, another session, malformed). */
static inline int hpn_pkt_raw_check(const uint8_t *buf, size_t len, uint32_t session)
{
	uint64_t w[3];

	if (len < HPN_PKT_HDR || len - HPN_PKT_HDR > 0xffff)
		return -1;
	__builtin_memcpy(w, buf, sizeof(w));
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
	w[0] = __builtin_bswap64(w[0]);
	w[2] = __builtin_bswap64(w[2]);
#endif
	if (w[0] != hpn_pkt_raw_word0(session) || w[1] || w[2] != len - HPN_PKT_HDR)
		return -1;
	return (int)(len - HPN_PKT_HDR);
}

#endif
