/* SPDX-License-Identifier: MIT */
/* conn.c - see conn.h. */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000ull
#define HELLO_RETRY_NS (20 * MS)

int hpn_conn_init(struct hpn_conn *c, const struct hpn_conn_cfg *cfg, const struct hpn_conn_ops *ops,
		  void *arg)
{
	uint32_t payload = cfg->mtu > HPN_PKT_HDR + HPN_PKT_FRAG_HDR ? cfg->mtu - HPN_PKT_HDR - HPN_PKT_FRAG_HDR : 0;

	memset(c, 0, sizeof(*c));
	if (!payload || cfg->mtu > 65535 || !cfg->window || !cfg->max_msg)
		return -EINVAL;
	c->cfg = *cfg;
	if (!c->cfg.dead_ns)
		c->cfg.dead_ns = 1000 * MS;
	c->ops = *ops;
	c->arg = arg;
	hpn_txwin_init(&c->tx, 0, cfg->window);
	c->tx.dead_ns = c->cfg.dead_ns;
	c->pkts = malloc((size_t)c->tx.size * cfg->mtu);
	c->pkt_len = calloc(c->tx.size, sizeof(*c->pkt_len));
	c->reasm.buf = malloc(cfg->max_msg);
	c->reasm.max = cfg->max_msg;
	if (!c->pkts || !c->pkt_len || !c->reasm.buf) {
		hpn_conn_fini(c);
		return -ENOMEM;
	}
	return 0;
}

void hpn_conn_fini(struct hpn_conn *c)
{
	free(c->pkts);
	free(c->pkt_len);
	free(c->reasm.buf);
	c->pkts = NULL;
	c->pkt_len = NULL;
	c->reasm.buf = NULL;
}

static void send_ctrl(struct hpn_conn *c, uint8_t type, uint64_t now)
{
	uint8_t buf[HPN_PKT_HDR + 16];
	struct hpn_pkt p = {.type = type, .session = c->session};
	uint32_t cum;

	if (type == HPN_PKT_HELLO || type == HPN_PKT_HELLO_ACK) {
		p.first_seq = c->tx.next;
		p.window = c->tx.size;
		p.max_msg = c->cfg.max_msg;
	} else if (type == HPN_PKT_ACK) {
		p.sack = hpn_rxwin_ack(&c->rx, &cum);
		p.cum = cum;
		p.window = c->rx.size;
		c->ack_due = false;
	}
	size_t n = hpn_pkt_encode(&p, buf);

	hpn_pkt_seal(buf, n);
	c->ops.xmit(c->arg, buf, n);
	c->last_tx_ns = now;
}

void hpn_conn_connect(struct hpn_conn *c, uint32_t session, uint64_t now)
{
	c->session = session;
	c->state = HPN_CONN_HELLO;
	c->hello_ns = now;
	c->last_rx_ns = now;
	send_ctrl(c, HPN_PKT_HELLO, now);
}

static void establish(struct hpn_conn *c, const struct hpn_pkt *p, uint64_t now)
{
	hpn_rxwin_init(&c->rx, p->first_seq, c->cfg.window, c->cfg.reliable);
	c->state = HPN_CONN_UP;
	c->last_rx_ns = now;
}

static void die(struct hpn_conn *c, int status)
{
	if (c->state == HPN_CONN_DEAD)
		return;
	c->state = HPN_CONN_DEAD;
	c->ops.gone(c->arg, status);
}

int hpn_conn_send(struct hpn_conn *c, const void *msg, size_t len, uint64_t now)
{
	uint32_t room = c->cfg.mtu - HPN_PKT_HDR - HPN_PKT_FRAG_HDR;
	uint32_t npkts = len ? (uint32_t)((len + room - 1) / room) : 1;
	bool frag = npkts > 1;

	if (c->state != HPN_CONN_UP)
		return -ENOTCONN;
	if (len > c->cfg.max_msg)
		return -EMSGSIZE;
	/* All of a message or none: a half-queued message would block the
	 * stream behind it. Unreliable mode never waits for acks. */
	if (c->cfg.reliable && c->tx.size - hpn_txwin_inflight(&c->tx) < npkts)
		return npkts > c->tx.size ? -EMSGSIZE : -EAGAIN;
	for (uint32_t i = 0; i < npkts; i++) {
		uint32_t off = i * room, n = (uint32_t)(len - off < room ? len - off : room);
		struct hpn_pkt p = {.type = HPN_PKT_DATA, .session = c->session, .len = (uint16_t)n,
				    .flags = (uint8_t)((frag ? HPN_PKT_F_FRAG : 0) |
						       (c->cfg.reliable ? 0 : HPN_PKT_F_UNRELIABLE)),
				    .frag_total = (uint32_t)len, .frag_offset = off};
		uint32_t seq;
		uint8_t *slot;
		size_t h;

		if (c->cfg.reliable) {
			seq = hpn_txwin_push(&c->tx, NULL, now);
		} else {
			seq = c->tx.next++;
			c->tx.una = c->tx.next; /* nothing is kept for retransmission */
		}
		slot = c->pkts + (size_t)(seq & (c->tx.size - 1)) * c->cfg.mtu;
		p.seq = seq;
		h = hpn_pkt_encode(&p, slot);
		memcpy(slot + h, (const uint8_t *)msg + off, n);
		hpn_pkt_seal(slot, h + n);
		c->pkt_len[seq & (c->tx.size - 1)] = (uint16_t)(h + n);
		c->ops.xmit(c->arg, slot, h + n);
	}
	c->last_tx_ns = now;
	return 0;
}

static void release_nothing(void *arg, void *ref)
{
	(void)arg;
	(void)ref;
}

static void on_data(struct hpn_conn *c, const struct hpn_pkt *p)
{
	enum hpn_rx_verdict v;
	struct hpn_pkt held;
	void *ref;

	v = hpn_rxwin_put(&c->rx, p->seq, NULL);
	c->ack_due = true;
	if (v != HPN_RX_DELIVER) {
		if (v == HPN_RX_HELD) {
			/* Keep a copy until the gap fills: the datagram buffer is
			 * the caller's. (The owner's pool will replace malloc.) */
			struct hpn_pkt *hp = malloc(sizeof(*hp) + p->len);
			uint32_t i = p->seq & (c->rx.size - 1);

			if (!hp) { /* drop it: the sender retransmits */
				c->rx.present[i] = false;
				c->rx.held--;
				return;
			}
			*hp = *p;
			memcpy(hp + 1, p->payload, p->len);
			hp->payload = (const uint8_t *)(hp + 1);
			c->rx.slot[i] = hp;
		}
		return;
	}
	held = *p;
	ref = NULL;
	for (;;) {
		int r = hpn_reasm_add(&c->reasm, &held);

		if (r == 1)
			c->ops.deliver(c->arg, c->reasm.buf, c->reasm.got);
		else if (r < 0)
			c->malformed++;
		free(ref);
		if (!hpn_rxwin_next(&c->rx, &ref))
			break;
		held = *(struct hpn_pkt *)ref;
	}
}

void hpn_conn_input(struct hpn_conn *c, const uint8_t *buf, size_t len, uint64_t now)
{
	struct hpn_pkt p;

	if (c->state == HPN_CONN_DEAD)
		return;
	if (hpn_pkt_decode(buf, len, c->cfg.max_msg, &p)) {
		c->malformed++;
		return;
	}
	if (c->state == HPN_CONN_IDLE && p.type == HPN_PKT_HELLO) {
		c->session = p.session; /* the connecting side chose it */
		establish(c, &p, now);
		send_ctrl(c, HPN_PKT_HELLO_ACK, now);
		return;
	}
	if (p.session != c->session || c->state == HPN_CONN_IDLE) {
		c->stale++; /* off-path, or a previous incarnation */
		return;
	}
	c->last_rx_ns = now;
	switch (p.type) {
	case HPN_PKT_HELLO: /* our ACK was lost */
		if (c->state == HPN_CONN_UP)
			send_ctrl(c, HPN_PKT_HELLO_ACK, now);
		break;
	case HPN_PKT_HELLO_ACK:
		if (c->state == HPN_CONN_HELLO)
			establish(c, &p, now);
		break;
	case HPN_PKT_DATA:
		if (c->state == HPN_CONN_UP)
			on_data(c, &p);
		break;
	case HPN_PKT_ACK:
		if (c->state == HPN_CONN_UP && hpn_txwin_ack(&c->tx, p.cum, p.sack, now, release_nothing, NULL) < 0)
			c->malformed++;
		break;
	case HPN_PKT_PING:
		send_ctrl(c, HPN_PKT_PONG, now);
		break;
	case HPN_PKT_BYE:
		die(c, 0);
		break;
	default:
		break;
	}
}

void hpn_conn_tick(struct hpn_conn *c, uint64_t now)
{
	uint32_t seq;
	void *ref;
	bool dead;

	if (c->state == HPN_CONN_DEAD || c->state == HPN_CONN_IDLE)
		return;
	if (now - c->last_rx_ns >= c->cfg.dead_ns) {
		die(c, -ETIMEDOUT);
		return;
	}
	if (c->state == HPN_CONN_HELLO) {
		if (now - c->hello_ns >= HELLO_RETRY_NS) {
			c->hello_ns = now;
			send_ctrl(c, HPN_PKT_HELLO, now);
		}
		return;
	}
	if (c->ack_due)
		send_ctrl(c, HPN_PKT_ACK, now);
	while (c->cfg.reliable && hpn_txwin_resend(&c->tx, now, &seq, &ref, &dead)) {
		uint32_t i = seq & (c->tx.size - 1);

		c->retransmits++;
		c->ops.xmit(c->arg, c->pkts + (size_t)i * c->cfg.mtu, c->pkt_len[i]);
	}
	if (c->cfg.reliable && dead) {
		die(c, -ETIMEDOUT);
		return;
	}
	/* Keepalive: a quiet link still proves the peer alive. */
	if (now - c->last_tx_ns >= c->cfg.dead_ns / 4)
		send_ctrl(c, HPN_PKT_PING, now);
}
