/* SPDX-License-Identifier: MIT */
/*
 * conn.h - one reliable (or sequenced-unreliable) message stream between
 * two peers over any datagram transport (issue 5, fourth piece): joins the
 * wire format, the send and receive windows and reassembly. Still no
 * socket and no clock: the owner passes datagrams in and gets datagrams
 * out through a callback, with `now` on every call, so it runs under a
 * virtual clock in tests and under udp/af_xdp/dpdk in production.
 */
#ifndef HPN_PACKET_CONN_H
#define HPN_PACKET_CONN_H

#include "rxwin.h"
#include "txwin.h"
#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hpn_conn_ops {
	/* Put one datagram on the wire (best effort; loss is our business). */
	void (*xmit)(void *arg, const uint8_t *pkt, size_t len);
	/* A whole message arrived, in order (valid during the call only). */
	void (*deliver)(void *arg, const uint8_t *msg, size_t len);
	/* The stream ended: 0 closed by the peer, -ETIMEDOUT silent peer. */
	void (*gone)(void *arg, int status);
};

enum hpn_conn_state { HPN_CONN_IDLE, HPN_CONN_HELLO, HPN_CONN_UP, HPN_CONN_DEAD };

struct hpn_conn_cfg {
	uint32_t mtu;        /* bytes per datagram, headers included (e.g. 1472) */
	uint32_t window;     /* packets in flight (<= HPN_TXWIN_MAX) */
	uint32_t max_msg;    /* largest message (reassembly buffer) */
	uint64_t dead_ns;    /* silence that makes the peer gone (default 1 s) */
	bool reliable;       /* false: sequenced, gaps reported, no retransmission */
};

struct hpn_conn {
	struct hpn_conn_cfg cfg;
	struct hpn_conn_ops ops;
	void *arg;
	enum hpn_conn_state state;
	uint32_t session;
	struct hpn_txwin tx;
	struct hpn_rxwin rx;
	struct hpn_reasm reasm;
	uint64_t last_rx_ns, last_tx_ns, hello_ns;
	bool ack_due;
	/* Sent packets are kept for retransmission: one mtu-sized copy per
	 * window slot (the owner's buffer pool will replace this). */
	uint8_t *pkts;
	uint16_t *pkt_len;
	uint64_t malformed, stale, retransmits;
};

/* Set up; the connecting side then calls hpn_conn_connect, the accepting
 * side feeds the first HELLO to hpn_conn_input. Returns 0 or -ENOMEM /
 * -EINVAL. */
int hpn_conn_init(struct hpn_conn *c, const struct hpn_conn_cfg *cfg, const struct hpn_conn_ops *ops,
		  void *arg);
void hpn_conn_fini(struct hpn_conn *c);
void hpn_conn_connect(struct hpn_conn *c, uint32_t session, uint64_t now);

/* Queue a message: fragments it into packets. Returns 0, -EAGAIN when the
 * window cannot take all of its packets now (nothing queued), -EMSGSIZE,
 * -ENOTCONN. */
int hpn_conn_send(struct hpn_conn *c, const void *msg, size_t len, uint64_t now);

/* A datagram arrived from this peer. Malformed or stale ones are counted. */
void hpn_conn_input(struct hpn_conn *c, const uint8_t *pkt, size_t len, uint64_t now);

/* Timers: handshake retries, acks, retransmissions, keepalive, failure. */
void hpn_conn_tick(struct hpn_conn *c, uint64_t now);

#endif
