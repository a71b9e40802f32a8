/* SPDX-License-Identifier: MIT */
/*
 * rdma_floor - the least a ping-pong over one RDMA verb costs on a device:
 * raw verbs on an RC queue pair, nothing else, so that a transport's
 * figure can be split into what its verb costs and what the transport
 * adds. perftest measures send (ib_send_lat) and plain write
 * (ib_write_lat) but not write-with-immediate, which hpn's wimm path
 * uses; this measures all three the same way, and so also checks itself
 * against perftest on the two it shares. It does not link hpn.
 *
 *   rdma_floor --server [--bind ADDR:PORT]
 *   rdma_floor --peer ADDR:PORT [--mode M] [--size N] [--iters N] [--warmup N]
 *
 * The server takes the client's mode, size and count. Modes:
 *   write  RDMA write into the peer's buffer; the peer spins on the last
 *          byte, which carries the round's number (as ib_write_lat does)
 *   wimm   RDMA write with immediate; the peer polls its receive
 *          completions and posts the receive request again
 *   send   send into a posted receive buffer (as ib_send_lat does)
 * Every request is inline when the device takes --size inline, and one in
 * 16 asks for a completion (hpn's default). The client prints one line:
 * mode, size, iterations and the one-way latency in microseconds (half
 * the round trip, as perftest reports it): minimum, median, 90th
 * percentile.
 * A peer silent for 10 s (in the run, or while connecting) ends it with
 * an error; the server waits for its client as long as it takes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <rdma/rdma_cma.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum mode { M_WRITE, M_WIMM, M_SEND };

struct floor_cfg {
	bool server;
	enum mode mode;
	const char *addr, *port;
	uint32_t size, iters, warmup;
};

/* What each side tells the other in the connection's private data. */
struct floor_info {
	uint64_t addr;
	uint32_t rkey;
	uint32_t size;
	uint32_t rounds; /* warm-up and timed */
	uint8_t mode;
};

struct floor_ep {
	struct rdma_event_channel *ec;
	struct rdma_addrinfo *ai;
	struct rdma_cm_id *listen, *id;
	struct ibv_pd *pd;
	struct ibv_cq *scq, *rcq;
	struct ibv_mr *mr;
	uint8_t *rbuf, *sbuf; /* one page each: what the peer writes, what we send */
	struct floor_info peer;
	uint32_t unsignaled, sig_out;
	bool inl;
};

#define SIGNAL_EVERY 16
#define DEPTH 64
#define SILENCE_NS 10000000000ull

static int fail(const char *what, int err)
{
	fprintf(stderr, "rdma_floor: %s: %s\n", what, strerror(err));
	return 1;
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The next connection event, which must be `want`. A server waits for
 * its client as long as it takes; every other wait ends after the same
 * 10 s of silence as a run. */
static int cm_wait(struct floor_ep *e, enum rdma_cm_event_type want, struct rdma_cm_event **out)
{
	struct pollfd pfd = {.fd = e->ec->fd, .events = POLLIN};
	int ms = want == RDMA_CM_EVENT_CONNECT_REQUEST ? -1 : (int)(SILENCE_NS / 1000000);
	struct rdma_cm_event *ev;
	int r;

	while ((r = poll(&pfd, 1, ms)) < 0 && errno == EINTR)
		;
	if (r == 0) {
		fprintf(stderr, "rdma_floor: no %s within 10 s\n", rdma_event_str(want));
		return 1;
	}
	if (r < 0 || rdma_get_cm_event(e->ec, &ev))
		return fail("rdma_get_cm_event", errno);
	if (ev->event != want) {
		fprintf(stderr, "rdma_floor: expected %s, got %s (status %d)%s\n", rdma_event_str(want),
			rdma_event_str(ev->event), ev->status,
			ev->event == RDMA_CM_EVENT_REJECTED ? ": no rdma_floor server at that address and port?" : "");
		rdma_ack_cm_event(ev);
		return 1;
	}
	if (out)
		*out = ev;
	else
		rdma_ack_cm_event(ev);
	return 0;
}

/* A receive request: a buffer for a send; none for an immediate, which
 * needs only the request (the least the verb asks for). */
static int post_recv(struct floor_ep *e, enum mode mode)
{
	struct ibv_sge sge = {(uintptr_t)e->rbuf, 4096, e->mr->lkey};
	struct ibv_recv_wr wr = {.sg_list = &sge, .num_sge = mode == M_SEND}, *bad;

	return ibv_post_recv(e->id->qp, &wr, &bad);
}

/* Protection domain, queues, memory and receive requests on e->id. */
static int ep_resources(struct floor_ep *e, const struct floor_cfg *c)
{
	struct ibv_context *ctx = e->id->verbs;
	struct ibv_qp_init_attr qa = {.qp_type = IBV_QPT_RC,
				      .cap = {.max_send_wr = DEPTH, .max_recv_wr = DEPTH, .max_send_sge = 1,
					      .max_recv_sge = 1, .max_inline_data = c->size}};

	e->pd = ibv_alloc_pd(ctx);
	e->scq = ibv_create_cq(ctx, DEPTH, NULL, NULL, 0);
	e->rcq = ibv_create_cq(ctx, DEPTH, NULL, NULL, 0);
	if (!e->pd || !e->scq || !e->rcq)
		return fail("protection domain or completion queues", errno);
	qa.send_cq = e->scq;
	qa.recv_cq = e->rcq;
	e->inl = true;
	if (rdma_create_qp(e->id, e->pd, &qa)) {
		/* The device takes less inline: send from registered memory. */
		qa.cap.max_inline_data = 0;
		e->inl = false;
		if (rdma_create_qp(e->id, e->pd, &qa))
			return fail("rdma_create_qp", errno);
	}
	e->rbuf = aligned_alloc(4096, 8192);
	if (!e->rbuf)
		return fail("buffers", ENOMEM);
	memset(e->rbuf, 0, 8192);
	e->sbuf = e->rbuf + 4096;
	e->mr = ibv_reg_mr(e->pd, e->rbuf, 8192, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	if (!e->mr)
		return fail("ibv_reg_mr", errno);
	for (int i = 0, r; i < DEPTH && c->mode != M_WRITE; i++)
		if ((r = post_recv(e, c->mode))) /* verbs return the errno value */
			return fail("ibv_post_recv", r);
	return 0;
}

static int ep_connect(struct floor_ep *e, struct floor_cfg *c)
{
	struct rdma_addrinfo hints = {.ai_port_space = RDMA_PS_TCP}, *ai;
	struct rdma_cm_event *ev;
	struct floor_info mine = {0};
	struct rdma_conn_param cp = {.private_data = &mine, .private_data_len = sizeof(mine),
				     .retry_count = 7, .rnr_retry_count = 7};
	int r;

	if (c->server)
		hints.ai_flags = RAI_PASSIVE;
	if ((r = rdma_getaddrinfo(c->addr, c->port, &hints, &e->ai))) {
		/* getaddrinfo's codes, or -1 with errno (no RDMA device: ENODEV) */
		fprintf(stderr, "rdma_floor: %s:%s: %s\n", c->addr, c->port,
			r == -1 && errno ? strerror(errno) : gai_strerror(r));
		return 1;
	}
	ai = e->ai;
	e->ec = rdma_create_event_channel();
	if (!e->ec || rdma_create_id(e->ec, &e->id, NULL, RDMA_PS_TCP))
		return fail("rdma_create_id", errno);
	if (c->server) {
		e->listen = e->id;
		if (rdma_bind_addr(e->listen, ai->ai_src_addr) || rdma_listen(e->listen, 1))
			return fail("rdma_bind_addr/rdma_listen", errno);
		if (cm_wait(e, RDMA_CM_EVENT_CONNECT_REQUEST, &ev))
			return 1;
		e->id = ev->id;
		if (ev->param.conn.private_data_len >= sizeof(e->peer))
			memcpy(&e->peer, ev->param.conn.private_data, sizeof(e->peer));
		rdma_ack_cm_event(ev);
		if (e->peer.mode > M_SEND || !e->peer.size || e->peer.size > 4096) {
			fprintf(stderr, "rdma_floor: the client is not rdma_floor\n");
			return 1;
		}
		/* The client's run: the server only answers it. */
		c->mode = e->peer.mode;
		c->size = e->peer.size;
		c->warmup = 0;
		c->iters = e->peer.rounds;
	} else {
		if (rdma_resolve_addr(e->id, NULL, ai->ai_dst_addr, 2000))
			return fail("rdma_resolve_addr", errno);
		if (cm_wait(e, RDMA_CM_EVENT_ADDR_RESOLVED, NULL))
			return 1;
		if (rdma_resolve_route(e->id, 2000))
			return fail("rdma_resolve_route", errno);
		if (cm_wait(e, RDMA_CM_EVENT_ROUTE_RESOLVED, NULL))
			return 1;
	}
	if (ep_resources(e, c))
		return 1;
	mine = (struct floor_info){(uintptr_t)e->rbuf, e->mr->rkey, c->size, c->warmup + c->iters, (uint8_t)c->mode};
	if (c->server ? rdma_accept(e->id, &cp) : rdma_connect(e->id, &cp))
		return fail("rdma_accept/rdma_connect", errno);
	if (cm_wait(e, RDMA_CM_EVENT_ESTABLISHED, &ev))
		return 1;
	if (!c->server && ev->param.conn.private_data_len >= sizeof(e->peer))
		memcpy(&e->peer, ev->param.conn.private_data, sizeof(e->peer));
	rdma_ack_cm_event(ev);
	if (e->peer.mode != c->mode || e->peer.size != c->size) {
		fprintf(stderr, "rdma_floor: the peer is not an rdma_floor server\n");
		return 1;
	}
	return 0;
}

/* Send completions are asked for one in SIGNAL_EVERY: take them as they
 * come. A failed send (the peer gone: retries exceeded) says so. */
static int reap_sends(struct floor_ep *e)
{
	struct ibv_wc wc[8];
	int n;

	if (!e->sig_out)
		return 0;
	n = ibv_poll_cq(e->scq, 8, wc);
	if (n < 0) {
		fprintf(stderr, "rdma_floor: ibv_poll_cq (sends) failed\n");
		return 1;
	}
	for (int i = 0; i < n; i++)
		if (wc[i].status != IBV_WC_SUCCESS) {
			fprintf(stderr, "rdma_floor: send failed: %s\n", ibv_wc_status_str(wc[i].status));
			return 1;
		}
	e->sig_out -= (uint32_t)n;
	return 0;
}

/* last: ask for its completion whatever the count (see drain_sends). */
static int post_one(struct floor_ep *e, const struct floor_cfg *c, uint8_t mark, uint32_t seq, bool last)
{
	struct ibv_sge sge = {(uintptr_t)e->sbuf, c->size, e->mr->lkey};
	struct ibv_send_wr wr = {.sg_list = &sge, .num_sge = 1}, *bad;

	e->sbuf[c->size - 1] = mark;
	wr.opcode = c->mode == M_WRITE ? IBV_WR_RDMA_WRITE : c->mode == M_WIMM ? IBV_WR_RDMA_WRITE_WITH_IMM : IBV_WR_SEND;
	wr.imm_data = seq;
	wr.wr.rdma.remote_addr = e->peer.addr;
	wr.wr.rdma.rkey = e->peer.rkey;
	wr.send_flags = e->inl ? IBV_SEND_INLINE : 0;
	if (++e->unsignaled == SIGNAL_EVERY || last) {
		e->unsignaled = 0;
		e->sig_out++;
		wr.send_flags |= IBV_SEND_SIGNALED;
	}
	return ibv_post_send(e->id->qp, &wr, &bad);
}

/* The peer's message of this round: its last byte (write), or a receive
 * completion (wimm, send). Spins, as perftest does. */
static int wait_one(struct floor_ep *e, const struct floor_cfg *c, uint8_t mark)
{
	volatile uint8_t *last = e->rbuf + c->size - 1;
	uint64_t deadline = 0;

	for (uint32_t spins = 0;; spins++) {
		if (c->mode == M_WRITE) {
			if (*last == mark)
				return 0;
		} else {
			struct ibv_wc wc;
			int n = ibv_poll_cq(e->rcq, 1, &wc);

			if (n < 0 || (n == 1 && wc.status != IBV_WC_SUCCESS)) {
				fprintf(stderr, "rdma_floor: receive failed: %s\n",
					n < 0 ? "ibv_poll_cq" : ibv_wc_status_str(wc.status));
				return 1;
			}
			if (n == 1)
				return (n = post_recv(e, c->mode)) ? fail("ibv_post_recv", n) : 0;
		}
		if (reap_sends(e))
			return 1;
		if ((spins & 0xffff) == 0) {
			uint64_t t = now_ns();

			if (!deadline)
				deadline = t + SILENCE_NS;
			else if (t > deadline) {
				fprintf(stderr, "rdma_floor: the peer was silent for 10 s\n");
				return 1;
			}
		}
	}
}

/* Everything ep_connect() made, whatever it got to (a tool under the
 * sanitizers leaks nothing, on errors too). */
static void ep_close(struct floor_ep *e)
{
	if (e->id && e->id->qp) {
		rdma_disconnect(e->id);
		rdma_destroy_qp(e->id);
	}
	if (e->mr)
		ibv_dereg_mr(e->mr);
	free(e->rbuf);
	if (e->scq)
		ibv_destroy_cq(e->scq);
	if (e->rcq)
		ibv_destroy_cq(e->rcq);
	if (e->pd)
		ibv_dealloc_pd(e->pd);
	if (e->id && e->id != e->listen)
		rdma_destroy_id(e->id);
	if (e->listen)
		rdma_destroy_id(e->listen);
	if (e->ec)
		rdma_destroy_event_channel(e->ec);
	if (e->ai)
		rdma_freeaddrinfo(e->ai);
}

/* Until every asked-for completion is in: a send still queued when the
 * connection is torn down would be thrown away, and the client would wait
 * for a reply that never left. */
static int drain_sends(struct floor_ep *e)
{
	uint64_t deadline = now_ns() + SILENCE_NS;

	while (e->sig_out) {
		if (reap_sends(e))
			return 1;
		if (now_ns() > deadline) {
			fprintf(stderr, "rdma_floor: the last sends were not acknowledged within 10 s\n");
			return 1;
		}
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static const char *mode_name[] = {"write", "wimm", "send"};

/* Rounds of one message each way; the client times them. */
static int run(struct floor_ep *e, const struct floor_cfg *c)
{
	uint32_t n = c->warmup + c->iters;
	uint64_t *t = c->server ? NULL : calloc(c->iters, sizeof(*t));
	int ret = 1;

	if (!c->server && !t)
		return fail("samples", ENOMEM);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t mark = (uint8_t)(i % 255 + 1); /* never 0, the buffer's first value */
		uint64_t t0 = now_ns();
		int r;

		if (c->server && wait_one(e, c, mark))
			goto out;
		if ((r = post_one(e, c, mark, i, i + 1 == n))) {
			fail("ibv_post_send", r);
			goto out;
		}
		if (!c->server) {
			if (wait_one(e, c, mark))
				goto out;
			if (i >= c->warmup)
				t[i - c->warmup] = now_ns() - t0;
		}
	}
	if (drain_sends(e))
		goto out;
	ret = 0;
	if (!c->server) {
		qsort(t, c->iters, sizeof(*t), cmp_u64);
		/* One-way: half the round trip, as perftest prints it. */
		printf("%-6s %6u %8u  min %.2f  typ %.2f  p90 %.2f us%s\n", mode_name[c->mode], c->size, c->iters,
		       t[0] / 2e3, t[c->iters / 2] / 2e3, t[(uint64_t)c->iters * 9 / 10] / 2e3,
		       e->inl ? "" : "  (not inline)");
	}
out:
	free(t);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: rdma_floor --server [--bind ADDR:PORT]\n"
		   "       rdma_floor --peer ADDR:PORT [--mode write|wimm|send] [--size 1..4096]\n"
		   "                  [--iters N] [--warmup N]\n");
}

/* "ADDR:PORT" into its parts (the string is modified). */
static int split_addr(char *s, const char **addr, const char **port)
{
	char *colon = strrchr(s, ':');

	if (!colon || colon == s || !colon[1])
		return -1;
	*colon = '\0';
	*addr = s;
	*port = colon + 1;
	return 0;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"server", no_argument, NULL, 's'}, {"peer", required_argument, NULL, 'p'},
		{"bind", required_argument, NULL, 'b'}, {"mode", required_argument, NULL, 'm'},
		{"size", required_argument, NULL, 'z'}, {"iters", required_argument, NULL, 'n'},
		{"warmup", required_argument, NULL, 'w'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	struct floor_cfg c = {.mode = M_WRITE, .addr = "0.0.0.0", .port = "18515", .size = 64,
			      .iters = 5000, .warmup = 500};
	bool peer = false, bound = false;
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int bad = 0;

		switch (o) {
		case 's': c.server = true; break;
		case 'p': peer = true; /* fall through */
		case 'b':
			bound |= o == 'b';
			if (split_addr(optarg, &c.addr, &c.port)) {
				fprintf(stderr, "rdma_floor: want ADDR:PORT, got %s\n", optarg);
				return 2;
			}
			break;
		case 'm':
			if (!strcmp(optarg, "write")) c.mode = M_WRITE;
			else if (!strcmp(optarg, "wimm")) c.mode = M_WIMM;
			else if (!strcmp(optarg, "send")) c.mode = M_SEND;
			else bad = -1;
			break;
		case 'z': bad = parse_u32(optarg, 1, 4096, &c.size); break;
		case 'n': bad = parse_u32(optarg, 1, 100000000, &c.iters); break;
		case 'w': bad = parse_u32(optarg, 0, 100000000, &c.warmup); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (bad) {
			fprintf(stderr, "rdma_floor: bad value: %s\n", optarg);
			return 2;
		}
	}
	if (c.server == peer || optind != argc || (peer && bound)) {
		usage(stderr);
		return 2;
	}
	struct floor_ep e = {0};
	int ret = ep_connect(&e, &c) || run(&e, &c);

	ep_close(&e);
	return ret;
}
