/* SPDX-License-Identifier: MIT */
/* conn.c - see conn.h. */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000ull
#define HELLO_RETRY_NS (20 * MS)
/* A cookie is good for 2 s at the acceptor (pktep.c): echo one for at
 * most 1 s, then ask for a fresh one. */
#define ECHO_GIVEUP_NS (1000 * MS)

static inline uint32_t slot(const struct hpn_conn *c, uint32_t seq);

/* Where packet seq is kept: its lent frame, or its slot in tx_pkts. */
static inline uint8_t *slot_buf(struct hpn_conn *c, uint32_t seq, void *ref)
{
	return ref ? ref : c->tx_pkts + (size_t)slot(c, seq) * c->cfg.mtu;
}

static inline uint32_t slot(const struct hpn_conn *c, uint32_t seq)
{
	return seq & (c->tx.size - 1);
}

int hpn_conn_init(struct hpn_conn *c, const struct hpn_conn_cfg *cfg, const struct hpn_conn_ops *ops,
		  void *arg)
{
	uint32_t hdr = HPN_PKT_HDR + HPN_PKT_FRAG_HDR;

	memset(c, 0, sizeof(*c));
	if (cfg->mtu <= hdr + HPN_PKT_BATCH_HDR || cfg->mtu > 65535 || !cfg->window || !cfg->max_msg)
		return -EINVAL;
	c->cfg = *cfg;
	if (!c->cfg.dead_ns)
		c->cfg.dead_ns = 1000 * MS;
	if (!c->cfg.ack_delay_ns)
		c->cfg.ack_delay_ns = 20000;
	if (!c->cfg.hello_retry_ns)
		c->cfg.hello_retry_ns = HELLO_RETRY_NS;
	c->ops = *ops;
	c->arg = arg;
	c->room = cfg->mtu - hdr;
	c->mtu = cfg->mtu;
	c->max_send = cfg->max_msg;
	hpn_txwin_init(&c->tx, 0, cfg->window);
	hpn_cc_init(&c->tx.cc, c->tx.size, cfg->cc_target_ns, cfg->reliable && !cfg->cc_off);
	c->isn = c->tx.next;
	/* The timeout only matters for a lost tail (RACK finds the rest);
	 * too low a floor turns every scheduling stall into retransmissions. */
	c->tx.rto_min_ns = c->cfg.rto_min_ns ? c->cfg.rto_min_ns : 1000000;
	/* Backed off, a sender still speaks at least four times per peer
	 * timeout: its silence is what the peer judges it by. */
	if (c->tx.rto_max_ns > c->cfg.dead_ns / 4)
		c->tx.rto_max_ns = c->cfg.dead_ns / 4 > c->tx.rto_min_ns ? c->cfg.dead_ns / 4 : c->tx.rto_min_ns;
	c->tx.tlp_extra_ns = c->cfg.ack_delay_ns; /* the peer's, assumed like ours */
	if (!c->cfg.ack_every || c->cfg.ack_every > c->tx.size / 2)
		c->cfg.ack_every = c->tx.size / 4 ? c->tx.size / 4 : 1;
	c->reasm.max = cfg->max_msg;
	if (cfg->raw) { /* nothing is kept, nothing waits */
		if (cfg->reliable)
			return -EINVAL;
		return 0;
	}
	if (!c->ops.get_frame) /* else the owner lends a frame per packet */
		c->tx_pkts = malloc((size_t)c->tx.size * cfg->mtu);
	c->tx_len = calloc(c->tx.size, sizeof(*c->tx_len));
	c->tx_msgs = calloc(c->tx.size, sizeof(*c->tx_msgs));
	c->rx_pkts = malloc((size_t)c->tx.size * cfg->mtu);
	c->rx_hdr = calloc(c->tx.size, sizeof(*c->rx_hdr));
	if ((!c->tx_pkts && !c->ops.get_frame) || !c->tx_len || !c->tx_msgs || !c->rx_pkts || !c->rx_hdr) {
		hpn_conn_fini(c);
		return -ENOMEM;
	}
	return 0;
}

/* ---- reassembly ------------------------------------------------------------ */

/* Abandon the message being reassembled; a lent buffer goes back. */
static void reasm_drop(struct hpn_conn *c)
{
	c->reasm.total = c->reasm.got = 0;
	if (c->ops.get_buf && c->reasm.buf) {
		c->ops.put_buf(c->arg, c->reasm.buf);
		c->reasm.buf = NULL;
	}
}

/* A buffer for the message whose first fragment p is, lent by the owner
 * (or our own, allocated once). false: none now, the packet must wait.
 * Fragments that cannot start a message need none: reassembly refuses
 * them. */
static bool reasm_ready(struct hpn_conn *c, const struct hpn_pkt *p)
{
	if (c->reasm.buf || c->reasm.total || p->frag_offset || p->frag_total > c->reasm.max)
		return true;
	if (c->ops.get_buf)
		c->reasm.buf = c->ops.get_buf(c->arg, p->frag_total);
	else
		c->reasm.buf = malloc(c->reasm.max);
	return c->reasm.buf != NULL;
}

/* The message is whole: to the owner, in its own buffer when lent. */
static void reasm_deliver(struct hpn_conn *c)
{
	if (!c->ops.get_buf) {
		c->ops.deliver(c->arg, c->reasm.buf, c->reasm.got);
		return;
	}
	c->ops.deliver_buf(c->arg, c->reasm.buf, c->reasm.got);
	c->reasm.buf = NULL;
}

/* Lent frames of packets not acknowledged go back to the owner. */
static void put_frames(struct hpn_conn *c)
{
	if (!c->ops.put_frame || !c->tx_len)
		return;
	for (uint32_t s = c->tx.una; hpn_seq_lt(s, c->tx.next); s++) {
		void *ref = hpn_txwin_ref(&c->tx, s);

		if (ref)
			c->ops.put_frame(c->arg, ref);
	}
	c->tx.una = c->tx.snd = c->tx.next;
}

/* Is a stored packet's payload still in the datagram it arrived in (a
 * buffer the owner let us keep, ops.keep_rx) rather than in our copy? */
static inline bool kept(const struct hpn_conn *c, const struct hpn_pkt *p)
{
	return p->payload && (p->payload < c->rx_pkts || p->payload >= c->rx_pkts + (size_t)c->rx.size * c->cfg.mtu);
}

/* Buffers kept for stored packets (waiting for a gap or the reader) go
 * back with the stream. */
static void put_kept(struct hpn_conn *c)
{
	if (!c->ops.keep_rx || !c->rx_hdr || !c->rx_pkts)
		return;
	for (uint32_t i = 0; i < c->rx.size; i++)
		if (kept(c, &c->rx_hdr[i])) {
			c->ops.release_rx(c->arg, c->rx_hdr[i].payload);
			c->rx_hdr[i].payload = NULL;
		}
}

void hpn_conn_fini(struct hpn_conn *c)
{
	put_frames(c);
	put_kept(c);
	free(c->tx_pkts);
	free(c->tx_len);
	free(c->tx_msgs);
	free(c->rx_pkts);
	free(c->rx_hdr);
	reasm_drop(c);
	if (!c->ops.get_buf)
		free(c->reasm.buf);
	c->tx_pkts = c->rx_pkts = c->reasm.buf = NULL;
	c->tx_len = c->tx_msgs = NULL;
	c->rx_hdr = NULL;
}

/* ---- acknowledgements ----------------------------------------------------- */

/* The window we can promise: receive slots not taken by packets that
 * arrived in order but wait for the owner's room (the backlog). */
static uint32_t rx_window(const struct hpn_conn *c)
{
	return c->rx.size - c->backlog;
}

/* Every packet after the handshake carries the ack: that is what makes
 * separate ack packets rare. */
static void fill_ack(struct hpn_conn *c, struct hpn_pkt *p)
{
	if (c->state != HPN_CONN_UP || c->role != HPN_CONN_PAIR)
		return; /* a group has nothing to acknowledge */
	p->flags |= HPN_PKT_F_ACK;
	if (p->type == HPN_PKT_ACK) {
		p->sack_words = (uint8_t)hpn_rxwin_sack(&c->rx, &p->cum, p->sack, HPN_PKT_SACK_WORDS);
		if (c->dup_seen)
			p->flags |= HPN_PKT_F_DUP;
		if (c->retx_seen)
			p->flags |= HPN_PKT_F_RETX;
		c->dup_seen = c->retx_seen = false;
	}
	else
		hpn_rxwin_ack(&c->rx, &p->cum); /* piggybacked: cum and window only */
	p->window = c->adv_window = rx_window(c);
	c->ack_pending = 0;
}

/* seq: PING's nonce, PONG's echo of it; BYE says our next sequence
 * number itself. */
static void send_ctrl_seq(struct hpn_conn *c, uint8_t type, uint32_t seq, uint64_t now)
{
	uint8_t buf[HPN_PKT_HDR + 8 * HPN_PKT_SACK_WORDS];
	struct hpn_pkt p = {.type = type, .session = c->session, .seq = seq};

	if (c->role == HPN_CONN_SUBSCRIBE)
		return; /* a subscriber only listens */
	if (type == HPN_PKT_BYE)
		p.seq = c->tx.next; /* everything before it was sent (connecting: our first) */
	if (type == HPN_PKT_BYE && c->broken)
		p.flags = HPN_PKT_F_ABORT; /* not a clean end: send_abort */
	if (type == HPN_PKT_ACK) /* how long we held it: the newest DATA came then */
		p.seq = now - c->data_rx_ns < UINT32_MAX ? (uint32_t)(now - c->data_rx_ns) : UINT32_MAX;
	if (hpn_pkt_is_handshake(type)) {
		p.flags = hpn_pkt_mode_flags(c->cfg.reliable, c->cfg.raw);
		/* The first sequence number, always: a repeated HELLO_ACK after
		 * data was sent must not move the peer's start past it. */
		p.first_seq = c->isn;
		p.window = c->tx.size;
		p.max_msg = c->cfg.max_msg;
		p.mtu = c->cfg.mtu;
		if (type == HPN_PKT_COOKIE_ECHO)
			memcpy(p.cookie, c->hs.cookie, sizeof(p.cookie));
	} else {
		fill_ack(c, &p);
		if (type == HPN_PKT_ACK)
			c->acks_sent++;
	}
	size_t n = hpn_pkt_encode(&p, buf);

	hpn_pkt_seal(buf, n);
	c->ops.xmit(c->arg, buf, n);
	c->last_tx_ns = now;
}

static void send_ctrl(struct hpn_conn *c, uint8_t type, uint64_t now)
{
	send_ctrl_seq(c, type, 0, now);
}

/* Before anything is sent: the stream starts at isn. */
static void set_isn(struct hpn_conn *c, uint32_t isn)
{
	c->isn = c->tx.una = c->tx.snd = c->tx.next = c->tx.scan_seq = isn;
}

void hpn_conn_connect(struct hpn_conn *c, uint32_t session, uint32_t isn, uint64_t timeout_ns, uint64_t now)
{
	c->connect_deadline_ns = now + (timeout_ns ? timeout_ns : c->cfg.dead_ns);
	c->session = session;
	set_isn(c, isn);
	c->state = HPN_CONN_HELLO;
	c->hello_ns = now;
	c->last_rx_ns = now;
	send_ctrl(c, HPN_PKT_HELLO, now);
}

void hpn_conn_probe(struct hpn_conn *c, uint32_t nonce, uint64_t now)
{
	if (c->state != HPN_CONN_UP)
		return;
	c->probe_nonce = nonce;
	c->probe_sent_ns = now;
	send_ctrl_seq(c, HPN_PKT_PING, nonce, now);
}

static void establish(struct hpn_conn *c, const struct hpn_pkt *p, uint64_t now)
{
	/* Send what the peer can take: its datagram size, its largest message. */
	c->mtu = p->mtu < c->cfg.mtu ? p->mtu : c->cfg.mtu;
	c->room = c->mtu - HPN_PKT_HDR - HPN_PKT_FRAG_HDR;
	c->max_send = p->max_msg < c->cfg.max_msg ? p->max_msg : c->cfg.max_msg;
	/* ...and what one of its windows holds at that size: a larger message
	 * could never be sent whole (-EMSGSIZE, not -EAGAIN for ever). */
	uint64_t fits = (uint64_t)(p->window < c->tx.size ? p->window : c->tx.size) * c->room;

	if (c->cfg.raw) /* one datagram each, as large as the path takes */
		fits = c->mtu - HPN_PKT_HDR;
	if (fits < c->max_send)
		c->max_send = (uint32_t)fits;
	hpn_rxwin_init(&c->rx, p->first_seq, c->cfg.window, c->cfg.reliable);
	c->rx_high = p->first_seq;
	c->adv_window = c->rx.size; /* the handshake said so: no window update due */
	c->peer_limit = c->tx.next + (p->window < c->tx.size ? p->window : c->tx.size);
	c->state = HPN_CONN_UP;
	c->last_rx_ns = now;
	if (c->ops.up)
		c->ops.up(c->arg);
}

/* The stream is broken (c->broken): tell the peer, which would otherwise
 * keep it until it noticed our silence. Twice: nothing answers an abort,
 * and one may be lost. */
static void send_abort(struct hpn_conn *c, uint64_t now)
{
	if (c->abort_sent || c->state != HPN_CONN_UP || c->role != HPN_CONN_PAIR)
		return;
	c->abort_sent = true;
	send_ctrl(c, HPN_PKT_BYE, now);
	send_ctrl(c, HPN_PKT_BYE, now);
}

static void die(struct hpn_conn *c, int status)
{
	if (c->state == HPN_CONN_DEAD)
		return;
	c->ending = false;
	c->unacked_msgs = 0;
	for (uint32_t s = c->tx.una; c->cfg.reliable && hpn_seq_lt(s, c->tx.next); s++)
		c->unacked_msgs += c->tx_msgs[slot(c, s)];
	c->state = HPN_CONN_DEAD;
	c->ops.gone(c->arg, status);
}

/* The handshake's round trip, or the acceptor's first PING's. */
static void rtt_hint(struct hpn_conn *c, uint64_t rtt, uint64_t now)
{
	if (!c->cfg.reliable)
		return;
	hpn_txwin_rtt_hint(&c->tx, rtt);
	hpn_cc_base_hint(&c->tx.cc, rtt, now);
}

void hpn_conn_accept(struct hpn_conn *c, const struct hpn_pkt *echo, uint32_t isn, uint64_t now)
{
	c->session = echo->session;
	set_isn(c, isn);
	establish(c, echo, now);
	send_ctrl(c, HPN_PKT_HELLO_ACK, now);
	/* The acceptor's path RTT: a PING now, its PONG before any data
	 * queues (txwin's minimum RTT, cc's base). */
	if (c->cfg.reliable && c->role == HPN_CONN_PAIR) {
		send_ctrl_seq(c, HPN_PKT_PING, c->isn, now);
		c->rtt_ping_ns = now;
	}
}

int hpn_conn_publish(struct hpn_conn *c, uint32_t session, uint64_t now)
{
	if (c->cfg.reliable)
		return -EINVAL;
	c->role = HPN_CONN_PUBLISH;
	c->session = session;
	hpn_rxwin_init(&c->rx, 0, c->cfg.window, false); /* never used: nothing comes back */
	c->state = HPN_CONN_UP;
	c->last_rx_ns = c->last_tx_ns = now;
	if (c->ops.up)
		c->ops.up(c->arg);
	return 0;
}

int hpn_conn_subscribe(struct hpn_conn *c, const uint8_t *pkt, size_t len, uint64_t now)
{
	struct hpn_pkt p;

	if (c->cfg.reliable || hpn_pkt_decode(pkt, len, c->cfg.max_msg, &p) ||
	    !((p.type == HPN_PKT_DATA && (p.flags & HPN_PKT_F_UNRELIABLE) && !(p.flags & HPN_PKT_F_RAW)) ||
	      p.type == HPN_PKT_PING))
		return -EINVAL;
	c->role = HPN_CONN_SUBSCRIBE;
	c->session = p.session;
	hpn_rxwin_init(&c->rx, p.seq, c->cfg.window, false);
	c->rx_unset = p.type != HPN_PKT_DATA;
	c->state = HPN_CONN_UP;
	c->last_rx_ns = now;
	if (c->ops.up)
		c->ops.up(c->arg);
	return 0;
}

void hpn_conn_abort(struct hpn_conn *c, int status)
{
	die(c, status);
}

static void end(struct hpn_conn *c, int status);

void hpn_conn_end(struct hpn_conn *c, int status)
{
	end(c, status);
}

/* A lingering close's BYE is answered with a BYE; it is repeated
 * (backing off from the RTO) until then, BYE_TRIES times at most: all
 * data is acked by then, so giving up loses nothing. */
#define BYE_TRIES 6

static void send_bye(struct hpn_conn *c, uint64_t now)
{
	send_ctrl(c, HPN_PKT_BYE, now);
	c->bye_ns = now;
	c->bye_tries++;
}

bool hpn_conn_close(struct hpn_conn *c, bool linger, uint64_t now)
{
	if (c->state == HPN_CONN_DEAD || c->state == HPN_CONN_IDLE) {
		c->state = HPN_CONN_DEAD;
		return true;
	}
	if (!linger || c->state != HPN_CONN_UP || !c->cfg.reliable || c->role != HPN_CONN_PAIR || c->bye) {
		/* Best effort, twice: nobody will repeat it. */
		send_ctrl(c, HPN_PKT_BYE, now);
		send_ctrl(c, HPN_PKT_BYE, now);
		c->state = HPN_CONN_DEAD;
		return true;
	}
	c->closing = true; /* hpn_conn_tick says BYE once all is acked */
	if (!hpn_txwin_inflight(&c->tx))
		send_bye(c, now);
	return false;
}

/* ---- sending --------------------------------------------------------------- */

/* Packets the window lets us send now (reliable mode): our own slots and
 * what the peer said it can take. */
static uint32_t tx_avail(const struct hpn_conn *c)
{
	uint32_t own = c->tx.size - hpn_txwin_inflight(&c->tx);
	uint32_t peer = hpn_seq_lt(c->tx.next, c->peer_limit) ? c->peer_limit - c->tx.next : 0;

	return own < peer ? own : peer;
}

/* Queued packets the congestion window lets go now, oldest first. A
 * packet that waited carries an older ack than ours: refreshed if so.
 * Returns the time the last packet left (a long run reads the clock
 * again, conn.h). */
static uint64_t flush(struct hpn_conn *c, uint64_t now)
{
	uint32_t seq, cum;
	void *ref;

	while (hpn_txwin_take(&c->tx, now, &seq, &ref)) {
		uint8_t *buf = slot_buf(c, seq, ref);
		uint16_t len = c->tx_len[slot(c, seq)];

		if (seq != c->built) {
			hpn_rxwin_ack(&c->rx, &cum);
			if (hpn_pkt_ack_differs(buf, cum, rx_window(c)))
				hpn_pkt_set_ack(buf, len, cum, c->adv_window = rx_window(c));
		}
		c->ack_pending = 0;
		c->ops.xmit(c->arg, buf, len);
		c->last_tx_ns = now;
		if (++c->tx_run == HPN_CONN_CLOCK_RUN && c->ops.clock) {
			now = c->ops.clock(c->arg); /* the next packets leave later */
			c->tx_run = 0;
		}
	}
	return now;
}

/* Build one DATA packet in its send slot and put it on the wire (or in
 * the queue, when the congestion window is full). */
static uint64_t emit(struct hpn_conn *c, struct hpn_pkt *p, struct hpn_conn_msg *m, unsigned k, uint64_t now)
{
	/* A zero-copy message alone in its packet is the packet: the header
	 * goes in front of it, no copy. */
	bool adopt = k == 1 && m->adopt && c->ops.put_frame && !(p->flags & HPN_PKT_F_FRAG);
	uint32_t seq;
	uint8_t *buf, *frame;
	size_t n;

	if (adopt)
		frame = (uint8_t *)m->data - HPN_PKT_HDR;
	else
		frame = c->ops.get_frame ? c->ops.get_frame(c->arg) : NULL; /* conn_send counted them */
	for (unsigned i = 0; i < k && !adopt; i++)
		m[i].adopt = false; /* copied: still the caller's */

	if (c->cfg.reliable) {
		seq = c->built = hpn_txwin_queue(&c->tx, frame);
	} else {
		seq = c->tx.next++;
		c->tx.una = c->tx.snd = c->tx.next; /* nothing is kept for retransmission */
		p->flags |= HPN_PKT_F_UNRELIABLE;
	}
	buf = slot_buf(c, seq, frame);
	p->type = HPN_PKT_DATA;
	p->session = c->session;
	p->seq = seq;
	fill_ack(c, p);
	n = hpn_pkt_encode(p, buf);
	if (k > 1) { /* a batch: u16 length + bytes each */
		for (unsigned i = 0; i < k; i++) {
			buf[n] = (uint8_t)m[i].len;
			buf[n + 1] = (uint8_t)(m[i].len >> 8);
			memcpy(buf + n + HPN_PKT_BATCH_HDR, m[i].data, m[i].len);
			n += HPN_PKT_BATCH_HDR + m[i].len;
		}
	} else {
		if (!adopt)
			memcpy(buf + n, (const uint8_t *)m->data + p->frag_offset, p->len);
		n += p->len;
	}
	hpn_pkt_seal(buf, n);
	c->tx_len[slot(c, seq)] = (uint16_t)n;
	c->tx_msgs[slot(c, seq)] = (uint16_t)(p->flags & HPN_PKT_F_FRAG ? p->frag_offset + p->len == p->frag_total : k);
	c->pkts_sent++;
	if (c->cfg.reliable)
		return flush(c, now);
	c->ops.xmit(c->arg, buf, n); /* the owner copies what is not kept */
	if (frame)
		c->ops.put_frame(c->arg, frame);
	c->last_tx_ns = now;
	return now;
}

/* How many of msgs[0..n) share one packet: at least two, each small. */
static unsigned batch_len(const struct hpn_conn *c, const struct hpn_conn_msg *msgs, unsigned n)
{
	uint32_t space = c->mtu - HPN_PKT_HDR, used = 0;
	unsigned k = 0;

	while (k < n && k < HPN_CONN_BATCH_MAX && msgs[k].len <= c->max_send &&
	       used + HPN_PKT_BATCH_HDR + msgs[k].len <= space &&
	       !(msgs[k].adopt && c->ops.put_frame && msgs[k].len >= HPN_CONN_ZC_ALONE)) {
		used += HPN_PKT_BATCH_HDR + msgs[k].len;
		k++;
	}
	return k;
}

/* Send one message whole: one packet if it fits, else fragments. */
static uint64_t emit_msg(struct hpn_conn *c, struct hpn_conn_msg *m, uint64_t now)
{
	uint32_t whole = c->mtu - HPN_PKT_HDR;

	if (m->len <= whole) {
		struct hpn_pkt p = {.len = (uint16_t)m->len};

		return emit(c, &p, m, 1, now);
	}
	for (uint32_t off = 0; off < m->len; off += c->room) {
		uint32_t len = m->len - off < c->room ? m->len - off : c->room;
		struct hpn_pkt p = {.flags = HPN_PKT_F_FRAG, .len = (uint16_t)len, .frag_total = m->len,
				    .frag_offset = off};

		now = emit(c, &p, m, 1, now);
	}
	return now;
}

static uint32_t npackets(const struct hpn_conn *c, uint32_t len)
{
	return len <= c->mtu - HPN_PKT_HDR ? 1 : (len + c->room - 1) / c->room;
}

int hpn_conn_send(struct hpn_conn *c, struct hpn_conn_msg *msgs, unsigned n, uint64_t now)
{
	unsigned i = 0;

	if (c->state != HPN_CONN_UP || c->closing || c->bye || c->ending)
		return -ENOTCONN;
	while (i < n) {
		uint32_t avail = c->cfg.reliable ? tx_avail(c) : UINT32_MAX;
		unsigned k;

		if (c->ops.frames_free) { /* lent frames: a message takes its own whole */
			uint32_t f = c->ops.frames_free(c->arg);

			avail = f < avail ? f : avail;
		}

		if (msgs[i].len > c->max_send || npackets(c, msgs[i].len) > c->tx.size) {
			if (i)
				break;
			return -EMSGSIZE;
		}
		if (!avail)
			break;
		k = batch_len(c, msgs + i, n - i);
		if (k > 1) {
			struct hpn_pkt p = {.flags = HPN_PKT_F_BATCH};

			for (unsigned j = 0; j < k; j++)
				p.len = (uint16_t)(p.len + HPN_PKT_BATCH_HDR + msgs[i + j].len);
			now = emit(c, &p, msgs + i, k, now);
			c->batched += k;
			i += k;
			continue;
		}
		/* All of a message or none: half a message would block the
		 * stream behind it. */
		if (npackets(c, msgs[i].len) > avail)
			break;
		now = emit_msg(c, &msgs[i], now); /* later than it was: a long run reads the clock */
		i++;
	}
	if (i) {
		c->blocked = false;
		return (int)i;
	}
	if (!c->blocked) { /* probe the window from now on, backing off */
		c->blocked = true;
		c->probe_wait_ns = c->tx.rto_ns;
		c->probe_ns = now + c->probe_wait_ns;
	}
	return -EAGAIN;
}

/* ---- receiving ------------------------------------------------------------ */

/* Messages a packet completes (what it needs of the owner's room). */
static uint32_t pkt_msgs(const struct hpn_pkt *p)
{
	uint32_t off = 0, k = 0;
	const uint8_t *m;
	uint16_t l;

	if (p->flags & HPN_PKT_F_FRAG)
		return p->frag_offset + p->len == p->frag_total;
	if (!(p->flags & HPN_PKT_F_BATCH))
		return 1;
	while (hpn_pkt_batch_next(p, &off, &m, &l))
		k++;
	return k;
}

/* Can the owner take p's messages now? The first fragment of a message
 * also needs the buffer it is reassembled in. */
static bool have_room(struct hpn_conn *c, const struct hpn_pkt *p)
{
	if (c->ops.room && c->ops.room(c->arg) < pkt_msgs(p))
		return false;
	return !(p->flags & HPN_PKT_F_FRAG) || reasm_ready(c, p);
}

static void consume_msgs(struct hpn_conn *c, const struct hpn_pkt *p);

/* Hand an in-order packet's messages to the owner. own: its payload is
 * in a buffer we kept: a message alone in it goes to the owner in that
 * buffer, else it goes back once the messages are out. */
static void consume(struct hpn_conn *c, const struct hpn_pkt *p, bool own)
{
	if (own && !(p->flags & (HPN_PKT_F_BATCH | HPN_PKT_F_FRAG)) && !c->reasm.total &&
	    p->len <= c->cfg.max_msg && c->broken != HPN_CONN_BAD_MSG) {
		c->ops.deliver_kept(c->arg, p->payload, p->len);
		return;
	}
	consume_msgs(c, p);
	if (own)
		c->ops.release_rx(c->arg, p->payload);
}

/* A stored packet consumed: its slot holds nothing of the owner's now. */
static void consume_stored(struct hpn_conn *c, const struct hpn_pkt *p)
{
	consume(c, p, kept(c, p));
	((struct hpn_pkt *)p)->payload = NULL;
}

/* A reliable stream lost a message it had acknowledged - the peer sent
 * packets that contradict each other (a forgery, or a broken peer): what
 * follows would be delivered with it missing, so nothing more is, and the
 * stream ends (hpn_conn_input). Unreliable modes count it and go on. */
static void bad_msg(struct hpn_conn *c)
{
	c->malformed++;
	if (c->cfg.reliable && c->role == HPN_CONN_PAIR)
		c->broken = HPN_CONN_BAD_MSG; /* over a stall: it also stops delivery */
}

static void consume_msgs(struct hpn_conn *c, const struct hpn_pkt *p)
{
	if (c->broken == HPN_CONN_BAD_MSG)
		return; /* the stream ends: nothing after the lost message */
	if (!(p->flags & HPN_PKT_F_FRAG) && c->reasm.total) {
		/* A whole message or a batch inside a fragmented one. */
		reasm_drop(c);
		if (c->cfg.reliable) {
			bad_msg(c);
			return;
		}
		c->gaps++; /* its last fragment was lost */
	}
	if (p->flags & HPN_PKT_F_BATCH) {
		uint32_t off = 0;
		const uint8_t *m;
		uint16_t l;

		while (hpn_pkt_batch_next(p, &off, &m, &l) && c->broken != HPN_CONN_BAD_MSG) {
			if (l > c->cfg.max_msg)
				bad_msg(c); /* more than we said we take */
			else
				c->ops.deliver(c->arg, m, l);
		}
		return;
	}
	if (!(p->flags & HPN_PKT_F_FRAG)) {
		if (p->len > c->cfg.max_msg)
			bad_msg(c);
		else
			c->ops.deliver(c->arg, p->payload, p->len); /* no copy */
		return;
	}
	if (!c->cfg.reliable && c->reasm.total && (!p->frag_offset || p->seq != c->reasm_next)) {
		/* A new message, or a fragment not next to our last (the rest
		 * of ours and the start of its own lost between): ours lost its
		 * end. Fragments of one message have consecutive numbers - by
		 * offset alone, the second fragment of the next message of the
		 * same size went on with ours, spliced (a --verify sweep). Its
		 * buffer, big enough for ours, may be too small for this one.
		 * A gap when a new message starts; a fragment after a hole is
		 * one the window counted already. */
		reasm_drop(c);
		c->gaps += !p->frag_offset;
		if (!reasm_ready(c, p)) {
			c->gaps++; /* no buffer: a feed does not wait */
			return;
		}
	}
	int r = hpn_reasm_add(&c->reasm, p);

	if (r == 1) {
		reasm_deliver(c);
	} else if (r == 0) {
		c->reasm_next = p->seq + 1;
	} else if (r < 0) {
		reasm_drop(c);
		if (c->cfg.reliable)
			bad_msg(c); /* unreliable: a lost fragment, already a gap */
	}
}

/* Packets in order that wait for the owner's room, oldest first: they
 * stay in their receive slots, acknowledged (the window shrinks by them
 * instead, so a slow reader costs the sender no retransmission). */
static void drain_backlog(struct hpn_conn *c)
{
	while (c->backlog) { /* broken: consume drops them, kept buffers released */
		const struct hpn_pkt *p = &c->rx_hdr[(c->rx.next - c->backlog) & (c->rx.size - 1)];

		if (!have_room(c, p))
			return;
		consume_stored(c, p);
		c->backlog--;
	}
}

static void hold(struct hpn_conn *c, const struct hpn_pkt *p);

/* An in-order packet: to the owner now, or behind the backlog. */
static void in_order(struct hpn_conn *c, const struct hpn_pkt *p, bool stored)
{
	if (!c->backlog && have_room(c, p)) {
		if (stored)
			consume_stored(c, p);
		else
			consume(c, p, false);
		return;
	}
	if (!stored)
		hold(c, p);
	c->backlog++;
}

static void hold(struct hpn_conn *c, const struct hpn_pkt *p)
{
	uint32_t i = p->seq & (c->rx.size - 1);
	uint8_t *copy = c->rx_pkts + (size_t)i * c->cfg.mtu;

	c->rx_hdr[i] = *p;
	c->rx.slot[i] = &c->rx_hdr[i];
	/* The datagram's buffer is the owner's: kept where it is if the owner
	 * lets it go (a pool buffer), else copied until it can be consumed. */
	if (c->ops.keep_rx && c->ops.keep_rx(c->arg, p->payload))
		return;
	memcpy(copy, p->payload, p->len);
	c->rx_hdr[i].payload = copy;
}

#define HOLE_ACK_EVERY 8

/* A raw datagram: its message now, or dropped (counted) if the owner has
 * no room - like a full socket buffer, nothing waits. */
static void on_raw(struct hpn_conn *c, const struct hpn_pkt *p)
{
	if (c->state != HPN_CONN_UP)
		return;
	if (p->len > c->cfg.max_msg)
		c->malformed++;
	else if (c->ops.room && !c->ops.room(c->arg))
		c->overflow++;
	else
		c->ops.deliver(c->arg, p->payload, p->len);
}

int hpn_conn_raw_header(struct hpn_conn *c, uint8_t *hdr, uint32_t len, uint64_t now)
{
	if (c->state != HPN_CONN_UP || c->closing || c->bye || c->ending)
		return -ENOTCONN;
	if (len > c->max_send)
		return -EMSGSIZE;
	c->last_tx_ns = now;
	c->pkts_sent++;
	hpn_pkt_raw_header(hdr, c->session, (uint16_t)len); /* no checksum: the field stays 0 */
	return HPN_PKT_HDR;
}

/* Returns true when the peer should hear from us at once. */
static bool on_data(struct hpn_conn *c, const struct hpn_pkt *p, uint64_t now)
{
	enum hpn_rx_verdict v;

	if (!c->cfg.reliable) {
		uint64_t before = c->rx.gaps;

		if (c->rx_unset) { /* a subscriber's first DATA: count from here */
			c->rx.next = p->seq;
			c->rx_unset = false;
		}
		uint64_t suspect = c->rx.suspect;

		if (hpn_rxwin_put(&c->rx, p->seq, NULL) == HPN_RX_DELIVER) {
			if (have_room(c, p))
				consume(c, p, false);
			else
				c->gaps += pkt_msgs(p); /* a feed does not wait: the reader lost it */
		}
		c->gaps += c->rx.gaps - before;
		c->stale += c->rx.suspect - suspect; /* far ahead, alone: dropped, counted */
		return false;
	}
	/* Beyond what we advertised: the backlog's slots are not free. */
	if (!hpn_seq_lt(p->seq, c->rx.next + rx_window(c)))
		return true;
	c->data_rx_ns = c->arrived_ns; /* held since it arrived, not since we read it */
	if (!c->ack_pending)
		c->ack_due_ns = now;
	c->ack_pending++;
	v = hpn_rxwin_put(&c->rx, p->seq, NULL);
	if ((p->flags & HPN_PKT_F_RETX) && (v == HPN_RX_DELIVER || v == HPN_RX_HELD))
		c->retx_seen = true; /* a resend that was needed: the next ACK says so */
	switch (v) {
	case HPN_RX_DELIVER: {
		void *ref;

		if (hpn_seq_lt(c->rx_high, p->seq + 1))
			c->rx_high = p->seq + 1;
		bool filled = c->rx.held;

		in_order(c, p, false);
		while (hpn_rxwin_next(&c->rx, &ref)) /* held packets now in order */
			in_order(c, ref, true);
		/* Filled a gap: the peer's sack is stale. The delay is checked
		 * here too: a busy receiver may not run its timers for a while. */
		return filled || c->ack_pending >= c->cfg.ack_every || now - c->ack_due_ns >= c->cfg.ack_delay_ns;
	}
	case HPN_RX_HELD: {
		/* A new hole, or a packet filling part of an old one, is acked
		 * at once: the SACK drives fast retransmission. Packets that
		 * merely follow the newest one behind an open hole add nothing
		 * the next ACK will not say: one ACK per HOLE_ACK_EVERY of them.
		 * Acking each one flooded the sender with an ACK per packet for
		 * as long as a hole stayed open; it read them milliseconds late
		 * and its RTT samples with them. */
		bool news = p->seq != c->rx_high || c->ack_pending >= HOLE_ACK_EVERY;

		hold(c, p);
		if (hpn_seq_lt(c->rx_high, p->seq + 1))
			c->rx_high = p->seq + 1;
		return news || now - c->ack_due_ns >= c->cfg.ack_delay_ns;
	}
	case HPN_RX_DUP: /* our ack may have been lost, or the sender was too eager */
		c->dup_seen = true;
		return true;
	default:
		return true;
	}
}

static void update_window(struct hpn_conn *c, const struct hpn_pkt *p)
{
	uint32_t w = p->window < c->tx.size ? p->window : c->tx.size;

	/* Only the newest ack speaks for the window (it may also shrink). */
	if (p->cum == c->tx.una)
		c->peer_limit = p->cum + w;
}

static void release_frame(void *arg, void *ref)
{
	struct hpn_conn *c = arg;

	if (ref)
		c->ops.put_frame(c->arg, ref);
}

static void release_nothing(void *arg, void *ref)
{
	(void)arg;
	(void)ref;
}

static void on_ack(struct hpn_conn *c, const struct hpn_pkt *p, uint64_t now)
{
	uint32_t una = c->tx.una;

	if (!c->cfg.reliable)
		return;
	if (hpn_seq_lt(p->cum, una) && p->type != HPN_PKT_ACK)
		return; /* an old ack on a retransmitted packet: nothing new */
	/* An ACK packet's seq is how long the peer held it (WIRE.md). */
	c->tx.peer_ack_delay_ns = p->type == HPN_PKT_ACK ? p->seq + (now - c->arrived_ns) : UINT64_MAX;
	c->tx.peer_got_resend = p->type == HPN_PKT_ACK && (p->flags & HPN_PKT_F_RETX);
	if (hpn_txwin_ack(&c->tx, p->cum, p->sack, p->sack_words, now,
			  c->ops.put_frame ? release_frame : release_nothing, c) < 0) {
		c->malformed++;
		return;
	}
	if (p->type == HPN_PKT_ACK && (p->flags & HPN_PKT_F_DUP)) /* (on a BYE the bit is ABORT) */
		hpn_txwin_dup_seen(&c->tx); /* one of our resends was needless */
	update_window(c, p);
	if (tx_avail(c))
		c->blocked = false;
}

/* After the peer's BYE: done once all it sent is in and delivered. */
static void check_bye(struct hpn_conn *c)
{
	if (c->state == HPN_CONN_UP && c->rx.next == c->bye_seq && !c->backlog)
		die(c, c->broken ? -EPROTO : 0); /* a message lost on the way is no clean close */
}

/* Connecting: the acceptor's COOKIE, its HELLO_ACK, or its refusal.
 * Returns true when p is to be handled as from an established peer. */
static bool connecting_input(struct hpn_conn *c, const struct hpn_pkt *p, uint64_t now)
{
	if ((p->type == HPN_PKT_COOKIE || p->type == HPN_PKT_HELLO_ACK) &&
	    p->flags != hpn_pkt_mode_flags(c->cfg.reliable, c->cfg.raw)) {
		c->peer_mode = p->flags; /* it would drop all we send, and we all it sends */
		die(c, -EPROTO);
		return false;
	}
	switch (p->type) {
	case HPN_PKT_COOKIE: /* again if our echo was lost: the newest counts */
		c->hs = *p;
		if (!c->have_cookie)
			c->echo_ns = now;
		c->have_cookie = true;
		c->hello_ns = now;
		send_ctrl(c, HPN_PKT_COOKIE_ECHO, now);
		return false;
	case HPN_PKT_HELLO_ACK:
		if (c->have_cookie) {
			/* One echo, one answer: the path's RTT before any data. */
			if (c->echo_ns == c->hello_ns)
				rtt_hint(c, now - c->echo_ns, now);
			establish(c, p, now);
		} else
			c->stale++; /* nothing was echoed: not an answer to us */
		return false;
	case HPN_PKT_BYE:
		if (c->have_cookie && (p->flags & HPN_PKT_F_ACK)) {
			/* It accepted us (its HELLO_ACK was lost), then closed. */
			establish(c, &c->hs, now);
			return true;
		}
		c->refused_full = p->seq == HPN_PKT_BYE_REFUSED; /* refused before we were up */
		die(c, -ECONNREFUSED);
		return false;
	default:
		/* Only an acceptor that took our echo sends acks: its HELLO_ACK
		 * was lost or is late. Up, with the parameters of its COOKIE. */
		if (c->have_cookie && (p->flags & HPN_PKT_F_ACK)) {
			establish(c, &c->hs, now);
			return true;
		}
		c->stale++;
		return false;
	}
}

static void retransmit(struct hpn_conn *c, uint64_t now);

static bool sack_holes(const struct hpn_pkt *p)
{
	for (unsigned w = 0; w < p->sack_words; w++)
		if (p->sack[w])
			return true;
	return false;
}

void hpn_conn_input(struct hpn_conn *c, const uint8_t *buf, size_t len, uint64_t now)
{
	hpn_conn_input_at(c, buf, len, now, now);
}

void hpn_conn_input_at(struct hpn_conn *c, const uint8_t *buf, size_t len, uint64_t now, uint64_t arrived)
{
	struct hpn_pkt p;
	bool ack_now = false;

	c->arrived_ns = arrived <= now ? arrived : now;
	if (c->state == HPN_CONN_DEAD || c->ending)
		return; /* ending: judged gone; only the reader is awaited */
	/* Longer than we said we take: nothing of it fits our slots. */
	if (len > c->cfg.mtu || hpn_pkt_decode(buf, len, c->cfg.max_msg, &p)) {
		c->malformed++;
		return;
	}
	if (p.session != c->session || c->state == HPN_CONN_IDLE) {
		c->stale++; /* off-path, or a previous incarnation */
		return;
	}
	c->last_rx_ns = now;
	if (c->state == HPN_CONN_HELLO && !connecting_input(c, &p, now))
		return;
	if ((p.flags & HPN_PKT_F_ACK) && c->state == HPN_CONN_UP) {
		on_ack(c, &p, now);
		/* An ACK with a SACK reports holes: repair what RACK deems lost
		 * now, not at the next timer tick (a millisecond away when the
		 * owner is busy receiving). */
		if (p.type == HPN_PKT_ACK && c->cfg.reliable && sack_holes(&p))
			retransmit(c, now);
		if (c->cfg.reliable)
			flush(c, now); /* the acks made room in the congestion window */
	}
	switch (p.type) {
	case HPN_PKT_COOKIE_ECHO: /* our HELLO_ACK was lost */
		if (c->role == HPN_CONN_PAIR)
			send_ctrl(c, HPN_PKT_HELLO_ACK, now);
		break;
	case HPN_PKT_DATA:
		if ((p.flags & (HPN_PKT_F_RAW | HPN_PKT_F_UNRELIABLE)) != hpn_pkt_mode_flags(c->cfg.reliable, c->cfg.raw))
			c->malformed++; /* the peer's mode is not ours (the handshake checked it: a forgery) */
		else if (c->cfg.raw)
			on_raw(c, &p);
		else
			ack_now = on_data(c, &p, now);
		if (c->bye)
			check_bye(c); /* the last packets before a goodbye */
		break;
	case HPN_PKT_PING:
		send_ctrl_seq(c, HPN_PKT_PONG, p.seq, now); /* its nonce back */
		break;
	case HPN_PKT_PONG:
		if (c->rtt_ping_ns && p.seq == c->isn) {
			rtt_hint(c, now - c->rtt_ping_ns, now);
			c->rtt_ping_ns = 0;
		}
		break;
	case HPN_PKT_BYE:
		if (c->closing) { /* the answer to ours (or the peer closed too) */
			c->state = HPN_CONN_DEAD;
			return;
		}
		/* The final sequence number must lie in what we could have been
		 * sent: else it is not the peer's (or is damaged). */
		if (c->role == HPN_CONN_PAIR && c->cfg.reliable &&
		    (hpn_seq_lt(p.seq, c->rx.next) || !hpn_seq_le(p.seq, c->rx.next + c->rx.size))) {
			c->malformed++;
			return;
		}
		if ((p.flags & HPN_PKT_F_ABORT) && c->role == HPN_CONN_PAIR && c->cfg.reliable) {
			/* The peer found the stream broken and ended it: so do we,
			 * once the reader took what was acknowledged (no answer:
			 * it is gone). */
			c->peer_aborted = true;
			end(c, -ECONNRESET);
			return;
		}
		if (c->role == HPN_CONN_PAIR)
			send_ctrl(c, HPN_PKT_BYE, now); /* the answer: its closer stops repeating */
		/* The peer is done; what it sent before is still ours to
		 * deliver: the stream ends when everything up to its last
		 * sequence number is in and taken. */
		if (!c->cfg.reliable || c->role != HPN_CONN_PAIR) {
			die(c, 0);
			return;
		}
		c->bye = true;
		c->bye_seq = p.seq;
		check_bye(c);
		return;
	default:
		break;
	}
	if (ack_now && c->state == HPN_CONN_UP)
		send_ctrl(c, HPN_PKT_ACK, now);
	if (c->broken == HPN_CONN_BAD_MSG) {
		send_abort(c, now);
		die(c, -EPROTO); /* what waits for the reader follows the lost message: not delivered */
	}
}

/* ---- timers ----------------------------------------------------------------- */

/* The peer fell silent. Messages it sent that we acknowledged but the
 * reader has not taken yet are still delivered (the sender counts them
 * as delivered): the stream ends once they are. */
static void end(struct hpn_conn *c, int status)
{
	if (c->state == HPN_CONN_UP && c->backlog && c->role == HPN_CONN_PAIR) {
		c->ending = true;
		c->end_status = status;
		return;
	}
	die(c, status);
}

static void retransmit(struct hpn_conn *c, uint64_t now)
{
	uint32_t seq;
	void *ref;

	while (hpn_txwin_resend(&c->tx, now, &seq, &ref)) {
		uint8_t *buf = slot_buf(c, seq, ref);
		uint32_t cum;

		hpn_rxwin_ack(&c->rx, &cum);
		hpn_pkt_set_retx(buf); /* the peer says whether it was this copy that arrived */
		hpn_pkt_set_ack(buf, c->tx_len[slot(c, seq)], cum, c->adv_window = rx_window(c));
		c->ack_pending = 0;
		c->retransmits++;
		c->ops.xmit(c->arg, buf, c->tx_len[slot(c, seq)]);
		c->last_tx_ns = now;
	}
}

void hpn_conn_kick(struct hpn_conn *c, uint64_t now)
{
	if (c->state != HPN_CONN_UP)
		return;
	if (c->backlog)
		drain_backlog(c);
	if (c->ending) {
		if (!c->backlog)
			die(c, c->broken ? -EPROTO : c->end_status);
		return;
	}
	if (c->bye) {
		check_bye(c);
		return;
	}
	/* The window grew by a quarter since we last spoke of it: say so now,
	 * the sender may be waiting for exactly this. */
	if (c->cfg.reliable && rx_window(c) >= c->adv_window + c->rx.size / 4)
		send_ctrl(c, HPN_PKT_ACK, now);
}

/* Keepalive: a quarter of the peer timeout; after half of it without a
 * word from the peer, a sixteenth - eight probes instead of two in what
 * is left, so a few lost packets on a lossy path (20 %) or a peer's
 * sender backed off to long timeouts never make a live peer look dead. */
static uint64_t keepalive_ns(const struct hpn_conn *c, uint64_t now)
{
	return now - c->last_rx_ns >= c->cfg.dead_ns / 2 ? c->cfg.dead_ns / 16 : c->cfg.dead_ns / 4;
}

/* A peer that answers keeps the stream alive (silence is what ends it),
 * but an answer is not progress: our oldest packet unacknowledged while
 * the peer's window has room for it, or a hole in what it sent that is
 * never filled, for HPN_CONN_STALL_DEAD peer timeouts, means the two ends
 * disagree on what was delivered (a forged ack released a packet that was
 * lost, say) and never will agree. Sampled at each tick: the clock starts
 * when the oldest packet or the hole is first seen. True: ended. */
static bool watch_progress(struct hpn_conn *c, uint64_t now)
{
	uint64_t limit = HPN_CONN_STALL_DEAD * c->cfg.dead_ns;

	if (c->broken == HPN_CONN_BAD_MSG) { /* found while the reader took a backlog */
		send_abort(c, now);
		die(c, -EPROTO);
		return true;
	}
	/* Nobody watched for longer than a peer timeout (an inline owner that
	 * called nothing): what happened meanwhile is unknown, not a stall -
	 * the first packet after a long idle has the oldest's number. */
	bool blind = now - c->watch_ns > c->cfg.dead_ns;

	c->watch_ns = now;
	if (blind || c->tx.una == c->tx.snd || c->tx.una != c->stall_una || !hpn_seq_lt(c->tx.una, c->peer_limit)) {
		c->stall_una = c->tx.una;
		c->stall_tx_ns = now;
	} else if (now - c->stall_tx_ns >= limit) {
		c->broken = HPN_CONN_TX_STALL;
	}
	if (blind || !c->rx.held || c->rx.next != c->stall_next) {
		c->stall_next = c->rx.next;
		c->stall_rx_ns = now;
	} else if (now - c->stall_rx_ns >= limit) {
		c->broken = HPN_CONN_RX_STALL;
	}
	if (!c->broken)
		return false;
	send_abort(c, now);
	/* Acknowledged messages before a hole are the reader's still. */
	end(c, -EPROTO);
	return true;
}

const char *hpn_conn_broken_str(uint8_t broken)
{
	switch (broken) {
	case HPN_CONN_TX_STALL:
		return "our oldest packet stayed unacknowledged with the peer's window open (a path that drops our "
		       "larger datagrams - mtu= above the path's? -, a peer that does not read, or a forged ack)";
	case HPN_CONN_RX_STALL:
		return "a packet the peer sent never arrived though later ones did (a forged ack made it let the "
		       "packet go, or a broken peer)";
	case HPN_CONN_BAD_MSG:
		return "a message whose packets contradict each other, acknowledged already, was lost (forged, "
		       "or a broken peer)";
	default:
		return "";
	}
}

void hpn_conn_tick(struct hpn_conn *c, uint64_t now)
{
	if (c->state == HPN_CONN_DEAD || c->state == HPN_CONN_IDLE)
		return;
	if (c->role == HPN_CONN_PUBLISH) {
		/* Nobody answers a group: a heartbeat says we are alive (and
		 * nothing times us out). */
		if (now - c->last_tx_ns >= c->cfg.dead_ns / 4)
			send_ctrl(c, HPN_PKT_PING, now);
		return;
	}
	/* Signed: a caller's clock read a moment before an input's is no
	 * reason to die. After a goodbye with everything in, only the
	 * application's reading is awaited: no timeout. */
	if (c->ending) { /* silent, but acknowledged messages wait: reader first */
		hpn_conn_kick(c, now);
		return;
	}
	if (c->state == HPN_CONN_HELLO) {
		/* The caller's connect timeout, not the peer timeout. */
		if ((int64_t)(now - c->connect_deadline_ns) >= 0) {
			die(c, -ETIMEDOUT);
			return;
		}
		if (now - c->hello_ns >= c->cfg.hello_retry_ns) {
			c->hello_ns = now;
			if (c->have_cookie && now - c->echo_ns >= ECHO_GIVEUP_NS)
				c->have_cookie = false; /* it may have expired: a fresh one */
			send_ctrl(c, c->have_cookie ? HPN_PKT_COOKIE_ECHO : HPN_PKT_HELLO, now);
		}
		return;
	}
	if ((int64_t)(now - c->last_rx_ns) >= (int64_t)c->cfg.dead_ns &&
	    !(c->bye && c->rx.next == c->bye_seq)) {
		end(c, -ETIMEDOUT);
		return;
	}
	hpn_conn_kick(c, now);
	if (c->state != HPN_CONN_UP || c->bye)
		return; /* gone, or the peer said goodbye: nothing more to send */
	if (c->ack_pending && now - c->ack_due_ns >= c->cfg.ack_delay_ns)
		send_ctrl(c, HPN_PKT_ACK, now);
	if (c->cfg.reliable && c->role == HPN_CONN_PAIR && watch_progress(c, now))
		return;
	if (c->cfg.reliable) {
		retransmit(c, now);
		flush(c, now);
		if (c->closing && !hpn_txwin_inflight(&c->tx)) {
			/* All acked: BYE, until answered. */
			if (!c->bye_tries || now - c->bye_ns >= c->tx.rto_ns << c->bye_tries) {
				if (c->bye_tries >= BYE_TRIES)
					c->state = HPN_CONN_DEAD; /* no answer: nothing is lost */
				else
					send_bye(c, now);
			}
			return;
		}
	}
	/* Probe a window we could not send into (its update may be lost),
	 * backing off; and keep a quiet link alive: the answer proves the
	 * peer is there. */
	if (c->blocked && now >= c->probe_ns) {
		send_ctrl(c, HPN_PKT_PING, now);
		c->probe_wait_ns = 2 * c->probe_wait_ns < c->cfg.dead_ns / 4 ? 2 * c->probe_wait_ns : c->cfg.dead_ns / 4;
		c->probe_ns = now + c->probe_wait_ns;
	} else if (now - c->last_tx_ns >= keepalive_ns(c, now)) {
		send_ctrl(c, HPN_PKT_PING, now);
		c->ping_ns = now;
	} else if (c->cfg.raw && now - c->last_rx_ns >= keepalive_ns(c, now) && now - c->ping_ns >= keepalive_ns(c, now)) {
		/* Raw datagrams draw no acks: a sender that never stops hears
		 * its peer only when it asks. */
		send_ctrl(c, HPN_PKT_PING, now);
		c->ping_ns = now;
	}
}

uint64_t hpn_conn_deadline(const struct hpn_conn *c)
{
	uint64_t d = UINT64_MAX;

	if (c->state == HPN_CONN_HELLO)
		return c->hello_ns + c->cfg.hello_retry_ns;
	if (c->state != HPN_CONN_UP || c->ending)
		return d;
	if (c->ack_pending)
		d = c->ack_due_ns + c->cfg.ack_delay_ns;
	if (c->cfg.reliable) {
		uint64_t t = hpn_txwin_deadline(&c->tx);

		if (t < d)
			d = t;
		if (c->blocked && c->probe_ns < d)
			d = c->probe_ns;
	}
	return d;
}
