/* SPDX-License-Identifier: MIT */
/*
 * feed.h - one market-data feed from one or more lines (an exchange's A
 * and B multicast groups): sequence numbers read out of plain datagrams
 * (MoldUDP64, CME MDP 3.0, or a field at a given offset), the first copy
 * of each number delivered and every later one dropped, messages ahead of
 * a hole held until another line fills it or gap_timeout passes - then
 * the hole is reported once (a gap) and what follows is delivered; a
 * copy of a reported message that comes later still is delivered, once.
 *
 * Pure logic, like conn.h: datagrams in (hpn_feed_input), messages and
 * events out through callbacks; the caller supplies the clock and the
 * storage for packets it must hold. The packet layer runs one per
 * endpoint with seq= set (pktep.c, framing=none); tests/unit/test_feed.c
 * drives it directly.
 *
 * Sequence numbers are 64-bit and never wrap here (MoldUDP64's are; MDP3's
 * 32-bit ones reset with a new session, which this does not follow yet:
 * a number far behind is a duplicate).
 */
#ifndef HPN_PACKET_FEED_H
#define HPN_PACKET_FEED_H

#include <hpn/hpn.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HPN_FEED_LINES_MAX 8
#define HPN_FEED_RETRANS HPN_FEED_LINES_MAX /* the line of answers to retransmission requests */
#define HPN_FEED_HOLD_MAX 512 /* packets held ahead of a hole (or of a reader with no room) */
#define HPN_FEED_GAPS_MAX 64  /* reported gaps a late copy may still fill */
#define HPN_FEED_LEAD_RING 4096
/* A packet further ahead than this (messages) is believed only when the
 * next packet or another line agrees (feed.c, jump_believed). */
#define HPN_FEED_JUMP_MAX (1ull << 20)

enum hpn_seq_kind {
	HPN_SEQ_NONE = 0,
	HPN_SEQ_MOLDUDP64, /* 10 B session, u64 BE seq, u16 BE count, then count x (u16 BE len, body) */
	HPN_SEQ_MDP3,      /* u32 LE MsgSeqNum at offset 0; the packet is one message */
	HPN_SEQ_FIELD,     /* u32/u64 at an offset, either byte order; the packet is one message */
};

struct hpn_seq_spec {
	enum hpn_seq_kind kind;
	uint32_t offset; /* HPN_SEQ_FIELD */
	uint8_t size;    /* 4 or 8 */
	bool big;
};

/* "moldudp64", "mdp3", or "offset:N,size:4|8,endian:big|little" (',' or
 * '/' between the parts; size 4 and big-endian by default). 0 or -EINVAL
 * with why filled. */
int hpn_seq_parse(const char *spec, struct hpn_seq_spec *out, char *why, size_t why_len);

/* One packet as read: its first sequence number and how many messages it
 * carries (0: a heartbeat; end: MoldUDP64's end of session). Returns 0,
 * or -EBADMSG when it is too short or its message lengths run past its
 * end. */
struct hpn_seq_pkt {
	uint64_t seq;
	uint32_t count;
	bool end;
	const uint8_t *session; /* MoldUDP64: the 10-byte session, else NULL */
};
int hpn_seq_read(const struct hpn_seq_spec *s, const uint8_t *pkt, uint32_t len, struct hpn_seq_pkt *out);

struct hpn_feed_ops {
	/* Room for this many more deliveries now (the reader's queue). */
	uint32_t (*room)(void *arg);
	/* Message seq: msg[0, len) inside pkt; whole: the packet is this one
	 * message and the caller may hand its buffer over as it is (lent:
	 * the packet being input, not a held one). */
	void (*deliver)(void *arg, const uint8_t *pkt, const uint8_t *msg, uint32_t len, uint64_t seq, uint64_t ts,
			uint32_t line, bool whole);
	/* Keep pkt[0, len) until release(): storage that lives on (NULL: none
	 * left; the packet is dropped and counted). */
	uint8_t *(*keep)(void *arg, const uint8_t *pkt, uint32_t len);
	void (*release)(void *arg, uint8_t *kept);
	/* A reported gap, the end of the session. */
	void (*gap)(void *arg, uint64_t from, uint64_t count, uint32_t line);
	void (*end)(void *arg, uint64_t next, uint32_t line);
	/* The feed started again at seq (a new session, or a start no packet
	 * agreed with replaced): what was delivered before is another start's.
	 * NULL: not told. */
	void (*restart)(void *arg, uint64_t seq, uint32_t line);
};

struct hpn_feed_line_st {
	uint64_t packets, wins, dups;
	int64_t lead_ns_sum;
	uint64_t lead_count;
};

struct hpn_feed_held {
	uint64_t seq, ts, at; /* at: when it was held (gap timer) */
	uint8_t *pkt;         /* kept storage (NULL: a heartbeat / end, nothing to keep) */
	uint32_t len, count, line;
	bool end;
};

struct hpn_feed {
	struct hpn_seq_spec spec;
	const struct hpn_feed_ops *ops;
	void *arg;
	uint64_t gap_timeout_ns;
	uint64_t deadline; /* when the hole in front is reported (UINT64_MAX: none) */
	bool started;
	/* The start - the first packet, or the first of a session after the
	 * last one ended - is believed once another packet agrees with it
	 * (its session, near its sequence number). Until then a packet that
	 * disagrees is a candidate, and one more that agrees with the
	 * candidate starts the feed there instead: a stray datagram that
	 * came first must not decide the feed (start_checked). */
	bool confirmed;
	uint64_t start_seq;
	uint32_t start_line;
	bool cand_seen;
	uint8_t cand_session[10];
	uint64_t cand_seq;
	uint32_t cand_line;
	/* The candidate packet itself (kept like a held one; NULL: none, or no
	 * storage): when it is confirmed it is delivered first, so a new
	 * session on a single line loses nothing. Counted in foreign only
	 * when it is dropped. */
	uint8_t *cand_pkt;
	uint32_t cand_len;
	uint64_t cand_ts;
	uint64_t restarts, restart_seq; /* started again, and where (the logger compares) */
	/* A heartbeat ahead, and an end of session, each waiting for a
	 * second word (heartbeat_believed, end_believed). */
	bool hb_seen, end_seen;
	uint64_t hb_seq, hb_at, end_seq;
	/* A far jump waiting for a second word (jump_believed). */
	bool jump_seen;
	uint64_t jump_seq, jump_end;
	uint32_t jump_line;
	bool ended;
	uint8_t session[10];
	uint64_t next; /* the next sequence number to deliver */
	/* Held packets, sorted by seq (unique). */
	struct hpn_feed_held *hold;
	uint32_t nhold;
	/* Reported gaps [from, to) a late copy may still fill, oldest first. */
	struct {
		uint64_t from, to;
	} gaps[HPN_FEED_GAPS_MAX];
	uint32_t ngaps;
	/* Which line brought each recent first sequence number earliest, and
	 * when; lag: the other copies' delays behind it, summed. */
	struct {
		uint64_t seq, ts;
		int64_t lag;
		uint32_t line, seen; /* seen: a bit per line that brought it */
	} lead[HPN_FEED_LEAD_RING];
	struct hpn_feed_line_st line[HPN_FEED_LINES_MAX + 1]; /* + HPN_FEED_RETRANS */
	/* Totals (the endpoint's hpn_stats.feed_*; messages), and what was
	 * dropped (packets: malformed, another session's, no room to hold). */
	uint64_t msgs, ngap_events, gap_msgs, dups, late, malformed, foreign, overflow;
};

int hpn_feed_init(struct hpn_feed *f, const struct hpn_seq_spec *spec, uint64_t gap_timeout_ns,
		  const struct hpn_feed_ops *ops, void *arg);
/* Releases what is held. */
void hpn_feed_fini(struct hpn_feed *f);
/* A datagram from line (< HPN_FEED_LINES_MAX) received at ts (the
 * message timestamp, real clock) and now (the caller's monotonic clock,
 * for the gap timer). */
void hpn_feed_input(struct hpn_feed *f, uint32_t line, const uint8_t *pkt, uint32_t len, uint64_t ts, uint64_t now);
/* Timers: report holes older than gap_timeout, deliver what the reader
 * has room for now. caught_up: every line was read until it was empty
 * after the hole's time ran out - only then is a hole given up for its
 * age (a copy of it may still wait unread in a device while the reader
 * lags); a full hold gives its hole up either way. Returns the time of
 * the next timer (UINT64_MAX: none), also kept in f->deadline, which
 * hpn_feed_input sets when it opens a hole. */
uint64_t hpn_feed_tick(struct hpn_feed *f, uint64_t now, bool caught_up);
/* The hold is full (or its storage is): the hole in front is reported now
 * and what follows it delivered. false: no hole to give up. */
bool hpn_feed_give_up(struct hpn_feed *f);
/* A hole in front of held packets (a gap in the making). */
static inline bool hpn_feed_hole(const struct hpn_feed *f)
{
	return f->nhold && f->hold[0].seq > f->next;
}
/* Packets the hold can take now. */
static inline uint32_t hpn_feed_space(const struct hpn_feed *f)
{
	return HPN_FEED_HOLD_MAX - f->nhold;
}
/* Packets wait for the reader (it had no room): call tick when it has. */
static inline bool hpn_feed_backlog(const struct hpn_feed *f)
{
	return f->nhold && f->hold[0].seq <= f->next;
}

#endif
