/*
 * rdma backend against a peer that is not hpn: a raw rdma_cm client (a
 * child process) that connects to an hpn endpoint and sends what an hpn
 * peer never would - write-with-immediate claiming more than a ring slot
 * holds, credits nobody asked for, immediates with unknown bits, empty
 * sends - then a goodbye. The endpoint must deliver exactly the data
 * sends, count the malformed one, stay up for it and for others, and
 * report the goodbye. Two more rogues: one that claims a ring it does not
 * have, and a mute one whose device takes (and acknowledges) everything
 * but which never sends - one direction of a connection dead, as
 * soft-RoCE once left one: the endpoint must report it gone. And the hello
 * (rdma_wire.h): connects with none or of a later version are refused
 * with the reason, and a server that answers without one, or with a later
 * version, fails the connect -EPROTONOSUPPORT. Runs in the
 * soft-RoCE guest (tools/hpn-rxe); without a device it skips (exit 77)
 * and says why.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <endian.h>

#include <hpn/hpn.h>

#include "../e2e.h"

#include <arpa/inet.h>
#include <errno.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>
#include <rdma/rdma_verbs.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The plugin's immediates (a credit return, a keepalive, a goodbye with
 * the keepalive bit; anything else on a send is data) and its ring offer. */
#include "rdma_wire.h"

#define CFG "plugin=rdma,hugepages=auto,bufs=512,buf_size=64k,rx_depth=128,wimm=on,wimm_slot=256"

static char host[64];
static int next_port = 19500;

struct rogue {
	struct rdma_cm_id *id;
	struct ibv_mr *mr;
	uint8_t buf[4096];
};

static int rogue_fail(const char *what)
{
	fprintf(stderr, "rogue: %s: %s\n", what, strerror(errno));
	return 1;
}

/* One request, signaled; its completion must be a success (the endpoint's
 * device accepted it: what the endpoint makes of it is the test). */
static int rogue_post(struct rogue *r, enum ibv_wr_opcode op, uint32_t imm, const void *data, uint32_t len)
{
	struct ibv_sge sge = {(uintptr_t)r->buf, len, r->mr->lkey};
	struct ibv_send_wr wr = {.opcode = op, .sg_list = &sge, .num_sge = len ? 1 : 0,
				 .send_flags = IBV_SEND_SIGNALED, .imm_data = htonl(imm)}, *bad;
	struct ibv_wc wc;
	int err;

	memcpy(r->buf, data, len);
	/* A zero-length write names no memory (IBTA C9-88): no rkey needed. */
	err = ibv_post_send(r->id->qp, &wr, &bad);
	if (err) {
		fprintf(stderr, "rogue: ibv_post_send (opcode %d, imm %#x, %u bytes): %s\n", op, imm, len, strerror(err));
		return 1;
	}
	if (rdma_get_send_comp(r->id, &wc) != 1)
		return rogue_fail("rdma_get_send_comp");
	if (wc.status != IBV_WC_SUCCESS) {
		fprintf(stderr, "rogue: request %d failed: %s\n", op, ibv_wc_status_str(wc.status));
		return 1;
	}
	return 0;
}

/* BAD, LIE and MUTE say hello as hpn would, then misbehave; FOREIGN says
 * nothing (another RDMA program), FUTURE a version this hpn does not
 * speak: those two must be refused, with the reason in the reject. */
enum rogue_kind { ROGUE_BAD, ROGUE_LIE, ROGUE_MUTE, ROGUE_FOREIGN, ROGUE_FUTURE };

/* A hello of version ver; with a ring of 4 slots of 64 bytes at an address
 * and key that are nothing of ours if ring. */
static struct hpn_rdma_hello rogue_hello(uint16_t ver, bool ring)
{
	struct hpn_rdma_hello h = {.magic = htobe32(HPN_RDMA_MAGIC), .version = htobe16(ver)};

	if (ring) {
		h.slots = htobe32(4);
		h.slot = htobe32(64);
		h.rkey = htobe32(0xdeadbeefu);
		h.addr = htobe64(0x1000);
	}
	return h;
}

/* Refused, as it must be: rdma_connect fails, and the reject carries the
 * endpoint's hello with the reason. */
static int rogue_refused(struct rogue *r, int ret, enum hpn_rdma_reject want)
{
	struct rdma_cm_event *e = r->id->event;
	struct hpn_rdma_hello h;

	if (!ret)
		return fprintf(stderr, "rogue: connect accepted, want refused (%d)\n", want), 1;
	if (!e || e->event != RDMA_CM_EVENT_REJECTED || e->param.conn.private_data_len < sizeof(h))
		return fprintf(stderr, "rogue: connect failed without a reject (%s)\n", strerror(errno)), 1;
	memcpy(&h, e->param.conn.private_data, sizeof(h));
	if (be32toh(h.magic) != HPN_RDMA_MAGIC || be16toh(h.version) != HPN_RDMA_VERSION ||
	    be16toh(h.reject) != want)
		return fprintf(stderr, "rogue: reject says magic %#x version %u reason %u, want reason %d\n",
			       be32toh(h.magic), be16toh(h.version), be16toh(h.reject), want), 1;
	return 0;
}

/* Mute: keep receives posted (so the device acknowledges all that comes,
 * keepalives and their questions too) and send nothing, until told to go. */
static int rogue_mute(struct rogue *r, int go_fd)
{
	struct pollfd pfd = {.fd = go_fd, .events = POLLIN};
	struct ibv_wc wc[16];
	int n;

	while (poll(&pfd, 1, 1) == 0) {
		while ((n = ibv_poll_cq(r->id->recv_cq, 16, wc)) > 0)
			for (int i = 0; i < n; i++)
				if (rdma_post_recv(r->id, (void *)(uintptr_t)wc[i].wr_id, (void *)(uintptr_t)wc[i].wr_id, 64,
						   r->mr))
					return rogue_fail("rdma_post_recv");
		if (n < 0)
			return rogue_fail("ibv_poll_cq");
	}
	return 0;
}

/* The child: once the endpoint listens, connect; then misbehave and say
 * goodbye (ROGUE_BAD), only claim a ring that does not exist (ROGUE_LIE),
 * or keep mute (ROGUE_MUTE); wait to be told to go. */
static int rogue_main(const char *port, int go_fd, enum rogue_kind kind)
{
	bool lie = kind == ROGUE_LIE;
	struct rdma_addrinfo hints = {.ai_port_space = RDMA_PS_TCP}, *res;
	struct ibv_qp_init_attr qa = {
		.cap = {.max_send_wr = 16, .max_recv_wr = 16, .max_send_sge = 1, .max_recv_sge = 1, .max_inline_data = 0},
		.qp_type = IBV_QPT_RC,
		.sq_sig_all = 1,
	};
	struct rdma_conn_param cp = {.responder_resources = 1, .initiator_depth = 1, .retry_count = 7,
				     .rnr_retry_count = 7};
	static struct rogue r;
	char c;

	if (read(go_fd, &c, 1) != 1)
		return rogue_fail("read");
	if (rdma_getaddrinfo(host, port, &hints, &res))
		return rogue_fail("rdma_getaddrinfo");
	if (rdma_create_ep(&r.id, res, NULL, &qa))
		return rogue_fail("rdma_create_ep");
	rdma_freeaddrinfo(res);
	r.mr = rdma_reg_msgs(r.id, r.buf, sizeof(r.buf));
	if (!r.mr)
		return rogue_fail("rdma_reg_msgs");
	/* Room for the endpoint's keepalives (posted into the upper half). */
	for (int i = 0; i < 16; i++)
		if (rdma_post_recv(r.id, r.buf + 2048 + 64 * i, r.buf + 2048 + 64 * i, 64, r.mr))
			return rogue_fail("rdma_post_recv");
	/* LIE offers a ring it does not have; the others none. */
	struct hpn_rdma_hello pd = rogue_hello(kind == ROGUE_FUTURE ? HPN_RDMA_VERSION + 1 : HPN_RDMA_VERSION, lie);

	cp.private_data = kind == ROGUE_FOREIGN ? NULL : &pd;
	cp.private_data_len = kind == ROGUE_FOREIGN ? 0 : sizeof(pd);
	if (kind == ROGUE_FOREIGN || kind == ROGUE_FUTURE) {
		int bad = rogue_refused(&r, rdma_connect(r.id, &cp),
					kind == ROGUE_FOREIGN ? HPN_RDMA_REJ_NOT_HPN : HPN_RDMA_REJ_VERSION);

		if (read(go_fd, &c, 1) != 1)
			fprintf(stderr, "rogue: the test went away\n");
		rdma_dereg_mr(r.mr);
		rdma_destroy_ep(r.id);
		return bad;
	}
	if (rdma_connect(r.id, &cp))
		return rogue_fail("rdma_connect");
	if (kind == ROGUE_MUTE && rogue_mute(&r, go_fd))
		return 1;
	/* More than a ring slot holds (256): malformed, dropped. */
	if (kind == ROGUE_BAD && (rogue_post(&r, IBV_WR_RDMA_WRITE_WITH_IMM, 100000, "", 0) ||
	    /* Credits for a ring the endpoint never got: nothing to deliver. */
	    rogue_post(&r, IBV_WR_RDMA_WRITE_WITH_IMM, IMM_CREDIT | 5, "", 0) ||
	    /* A keepalive: dropped. */
	    rogue_post(&r, IBV_WR_SEND_WITH_IMM, IMM_KEEPALIVE, "", 0) ||
	    /* Data: as a plain send, with an immediate of no meaning, empty. */
	    rogue_post(&r, IBV_WR_SEND, 0, "hello", 5) || rogue_post(&r, IBV_WR_SEND_WITH_IMM, 0x12345, "imm!", 4) ||
	    rogue_post(&r, IBV_WR_SEND, 0, "", 0) ||
	    /* Goodbye: the endpoint reports the peer gone, status 0. */
	    rogue_post(&r, IBV_WR_SEND_WITH_IMM, IMM_KEEPALIVE | IMM_GOODBYE, "", 0)))
		return 1;
	if (read(go_fd, &c, 1) != 1) /* 0: the test ended without us (it failed) */
		fprintf(stderr, "rogue: the test went away\n");
	rdma_disconnect(r.id);
	rdma_dereg_mr(r.mr);
	rdma_destroy_ep(r.id);
	return 0;
}

/* Fork the rogue before anything of verbs exists here (a device's command
 * file does not carry across fork: the kernel refuses it to the child),
 * then listen at addr and let it connect. */
static hpn_ep *rogue_start(const char *addr, const char *port, enum rogue_kind kind, const char *extra, pid_t *pid,
			   int *go_out)
{
	int go[2];
	hpn_ep *s;

	assert_int_equal(pipe(go), 0);
	*pid = fork();
	assert_true(*pid >= 0);
	if (*pid == 0) {
		close(go[1]);
		_exit(rogue_main(port, go[0], kind));
	}
	close(go[0]);
	s = e2e_make(CFG, extra);
	assert_int_equal(hpn_listen(s, addr), 0);
	assert_true(write(go[1], "l", 1) == 1); /* listening: connect */
	*go_out = go[1];
	return s;
}

static void rogue_end(pid_t pid, int go)
{
	int status;

	if (write(go, "x", 1) != 1) /* it may have failed and gone: its status says */
		fprintf(stderr, "# the rogue went early\n");
	close(go);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("the rogue client failed (status %#x): see its line above", status);
}

/* The endpoint serves an hpn peer as before. */
static void serves_after(hpn_ep *s, const char *addr)
{
	hpn_ep *c = e2e_make(CFG, NULL);
	hpn_peer_t sp, p = connect_pair_ms(s, c, addr, &sp, 10000);
	struct hpn_msg in;

	assert_int_equal(hpn_send(c, p, "after", 5), 0);
	assert_int_equal(hpn_recv_wait(s, &in, 1, 10000), 1);
	assert_int_equal(in.len, 5);
	assert_int_equal(in.peer, sp);
	assert_memory_equal(in.data, "after", 5);
	hpn_buf_put(s, in.data);
	hpn_ep_destroy(c);
}

static void test_rogue_peer(void **state)
{
	char addr[96], port[16];
	hpn_ep *s;
	hpn_peer_t rogue = HPN_PEER_NONE, from = HPN_PEER_NONE;
	struct hpn_stats st;
	const char *want[] = {"hello", "imm!", ""};
	unsigned got = 0;
	bool gone = false;
	int go;
	pid_t pid;

	(void)state;
	snprintf(port, sizeof(port), "%d", next_port++);
	snprintf(addr, sizeof(addr), "%s:%s", host, port);
	s = rogue_start(addr, port, ROGUE_BAD, NULL, &pid, &go);
	/* Messages and events are two queues: what came before the goodbye
	 * may still be read after its event. */
	for (uint64_t t0 = now_ms(), gone_at = 0; now_ms() - t0 < 20000 && (!gone || now_ms() - gone_at < 500);) {
		struct hpn_msg in[4];
		struct hpn_event ev;
		int r = hpn_recv_burst(s, in, 4);

		assert_true(r >= 0);
		for (int i = 0; i < r; i++, got++) {
			if (got >= 3)
				fail_msg("message %u (%u bytes) beyond the three data sends", got, in[i].len);
			/* Its first message may come in the poll that also
			 * raises its PEER_NEW: compared once both are in. */
			if (from == HPN_PEER_NONE)
				from = in[i].peer;
			assert_int_equal(in[i].peer, from);
			assert_int_equal(in[i].len, strlen(want[got]));
			assert_memory_equal(in[i].data, want[got], in[i].len);
			hpn_buf_put(s, in[i].data);
		}
		while (hpn_poll(s, &ev, 1) == 1) {
			if (ev.type == HPN_EV_PEER_NEW && rogue == HPN_PEER_NONE) {
				rogue = ev.peer;
			} else if (ev.type == HPN_EV_PEER_GONE && ev.peer == rogue) {
				assert_int_equal(ev.status, 0); /* its goodbye */
				gone = true;
				gone_at = now_ms();
			} else {
				fail_msg("event %d for peer %u (status %d)", ev.type, ev.peer, ev.status);
			}
		}
		usleep(200);
	}
	rogue_end(pid, go);
	assert_true(gone);
	assert_int_equal(got, 3);
	assert_int_equal(from, rogue);
	hpn_ep_stats(s, &st, sizeof(st));
	assert_int_equal(st.malformed, 1);
	assert_int_equal(st.msgs_in, 3);
	assert_int_equal(st.errors, 0);
	serves_after(s, addr);
	hpn_ep_destroy(s);
}

/* A peer that claims a ring it does not have: the endpoint's first write
 * into it is refused by the peer's device (remote access error), which
 * ends that connection - PEER_GONE, -ECONNRESET, a counted error - and
 * nothing else. */
static void test_lying_ring(void **state)
{
	char addr[96], port[16];
	hpn_ep *s;
	hpn_peer_t rogue = HPN_PEER_NONE;
	struct hpn_stats st;
	struct hpn_event ev;
	int go, sent = 0;
	pid_t pid;

	(void)state;
	snprintf(port, sizeof(port), "%d", next_port++);
	snprintf(addr, sizeof(addr), "%s:%s", host, port);
	s = rogue_start(addr, port, ROGUE_LIE, NULL, &pid, &go);
	ev = wait_event(s, HPN_EV_PEER_NEW, NULL, 0, 10000);
	rogue = ev.peer;
	/* Small: into the claimed ring (credits: its 4 slots). */
	for (uint64_t t0 = now_ms(); now_ms() - t0 < 10000;) {
		int r = hpn_send(s, rogue, "x", 1);

		assert_true(r == 0 || r == -EAGAIN || r == -ENOTCONN);
		sent += r == 0;
		if (r == -ENOTCONN || hpn_poll(s, &ev, 1) == 1)
			break;
		usleep(1000);
	}
	if (ev.type != HPN_EV_PEER_GONE) /* the send saw it first */
		ev = wait_event(s, HPN_EV_PEER_GONE, NULL, 0, 10000);
	fprintf(stderr, "# %d sends before the connection ended\n", sent);
	assert_int_equal(ev.type, HPN_EV_PEER_GONE);
	assert_int_equal(ev.peer, rogue);
	assert_int_equal(ev.status, -ECONNRESET);
	hpn_ep_stats(s, &st, sizeof(st));
	assert_true(st.errors >= 1);
	rogue_end(pid, go);
	serves_after(s, addr);
	hpn_ep_destroy(s);
}

/* A peer whose device acknowledges all we send, keepalives and their
 * questions included, but from which nothing ever comes: gone after
 * peer_timeout_ms (to 1.25 x it), -ETIMEDOUT, while our sends to it were
 * still being acknowledged. */
static void test_mute_peer(void **state)
{
	char addr[96], port[16];
	hpn_ep *s;
	hpn_peer_t rogue;
	struct hpn_event ev = {0};
	struct hpn_stats st;
	uint64_t t0;
	int go, sent = 0;
	pid_t pid;

	(void)state;
	snprintf(port, sizeof(port), "%d", next_port++);
	snprintf(addr, sizeof(addr), "%s:%s", host, port);
	s = rogue_start(addr, port, ROGUE_MUTE, "peer_timeout_ms=1000", &pid, &go);
	ev = wait_event(s, HPN_EV_PEER_NEW, NULL, 0, 10000);
	rogue = ev.peer;
	for (t0 = now_ms(); now_ms() - t0 < 20000;) {
		struct hpn_msg in[4];
		int r = hpn_recv_burst(s, in, 4);

		assert_true(r >= 0);
		for (int i = 0; i < r; i++)
			hpn_buf_put(s, in[i].data);
		if (r)
			fail_msg("%d messages from a peer that sends nothing", r);
		if (hpn_poll(s, &ev, 1) == 1)
			break;
		sent += hpn_send(s, rogue, "ping", 4) == 0; /* its device takes it; it never answers */
		usleep(1000);
	}
	fprintf(stderr, "# mute peer gone after %llu ms, %d sends taken by its device\n",
		(unsigned long long)(now_ms() - t0), sent);
	assert_int_equal(ev.type, HPN_EV_PEER_GONE);
	assert_int_equal(ev.peer, rogue);
	assert_int_equal(ev.status, -ETIMEDOUT);
	assert_true(now_ms() - t0 >= 900); /* not before its silence limit */
	assert_true(sent > 0);
	hpn_ep_stats(s, &st, sizeof(st));
	assert_int_equal(st.msgs_in, 0);
	rogue_end(pid, go);
	serves_after(s, addr);
	hpn_ep_destroy(s);
}

/* Connects that are not an hpn peer's - none of hpn's hello (another RDMA
 * program on the port: rping, perftest), or a version this one does not
 * speak - are refused before anything is set up for them: no peer, no
 * event, a counted drop; the reject tells them why (the rogue checks). */
static void refused_kind(enum rogue_kind kind)
{
	char addr[96], port[16];
	hpn_ep *s;
	struct hpn_event ev;
	struct hpn_stats st;
	int go;
	pid_t pid;

	snprintf(port, sizeof(port), "%d", next_port++);
	snprintf(addr, sizeof(addr), "%s:%s", host, port);
	s = rogue_start(addr, port, kind, NULL, &pid, &go);
	for (uint64_t t0 = now_ms(); now_ms() - t0 < 10000;) {
		struct hpn_msg in[4];
		int r = hpn_recv_burst(s, in, 4);

		assert_int_equal(r, 0);
		if (hpn_poll(s, &ev, 1) == 1)
			fail_msg("event %d (peer %u, status %d) for a connect that must be refused", ev.type, ev.peer,
				 ev.status);
		hpn_ep_stats(s, &st, sizeof(st));
		if (st.drops >= 1)
			break;
		usleep(1000);
	}
	hpn_ep_stats(s, &st, sizeof(st));
	assert_true(st.drops >= 1); /* (a connect request the CM sent again counts again) */
	rogue_end(pid, go);
	assert_int_equal(hpn_poll(s, &ev, 1), 0);
	serves_after(s, addr);
	hpn_ep_destroy(s);
}

static void test_foreign_connect(void **state)
{
	(void)state;
	refused_kind(ROGUE_FOREIGN);
}

static void test_future_connect(void **state)
{
	(void)state;
	refused_kind(ROGUE_FUTURE);
}

/* A server that is not hpn (rping, ib_send_lat -R, or an hpn of another
 * version) accepts: the connect ends -EPROTONOSUPPORT, with a message
 * saying so, before anything is sent on it. */
static int foreign_server(const char *port, int go_fd, int ready_fd, bool future)
{
	struct rdma_addrinfo hints = {.ai_port_space = RDMA_PS_TCP, .ai_flags = RAI_PASSIVE}, *res;
	struct ibv_qp_init_attr qa = {.cap = {.max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1},
				      .qp_type = IBV_QPT_RC};
	struct rdma_conn_param cp = {.responder_resources = 1, .initiator_depth = 1};
	struct hpn_rdma_hello h = rogue_hello(HPN_RDMA_VERSION + 1, false);
	struct rdma_cm_id *lid, *id;
	char c;

	if (rdma_getaddrinfo(host, port, &hints, &res))
		return rogue_fail("rdma_getaddrinfo");
	if (rdma_create_ep(&lid, res, NULL, &qa))
		return rogue_fail("rdma_create_ep");
	rdma_freeaddrinfo(res);
	if (rdma_listen(lid, 1))
		return rogue_fail("rdma_listen");
	if (write(ready_fd, "l", 1) != 1) /* listening */
		return rogue_fail("write");
	if (rdma_get_request(lid, &id))
		return rogue_fail("rdma_get_request");
	cp.private_data = future ? &h : NULL;
	cp.private_data_len = future ? sizeof(h) : 0;
	if (rdma_accept(id, &cp))
		return rogue_fail("rdma_accept");
	if (read(go_fd, &c, 1) != 1)
		fprintf(stderr, "rogue: the test went away\n");
	rdma_destroy_ep(id);
	rdma_destroy_ep(lid);
	return 0;
}

static void foreign_server_kind(bool future)
{
	char addr[96], port[16];
	int to[2], from[2], status;
	hpn_ep *c;
	hpn_peer_t p;
	pid_t pid;
	char l;

	snprintf(port, sizeof(port), "%d", next_port++);
	snprintf(addr, sizeof(addr), "%s:%s", host, port);
	assert_int_equal(pipe(to), 0);
	assert_int_equal(pipe(from), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(to[1]);
		close(from[0]);
		_exit(foreign_server(port, to[0], from[1], future)); /* "go" in, "listening" out */
	}
	close(to[0]);
	close(from[1]);
	assert_int_equal(read(from[0], &l, 1), 1);
	c = e2e_make(CFG, NULL);
	assert_int_equal(hpn_connect(c, addr, 10000, &p), -EPROTONOSUPPORT);
	assert_non_null(strstr(hpn_last_error(), "not hpn"));
	hpn_ep_destroy(c);
	assert_int_equal(write(to[1], "x", 1), 1);
	close(to[1]);
	close(from[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_foreign_server(void **state)
{
	(void)state;
	foreign_server_kind(false);
}

static void test_future_server(void **state)
{
	(void)state;
	foreign_server_kind(true);
}

int main(void)
{
	const char *a = getenv("HPN_TEST_RDMA_ADDR"), *why;

	snprintf(host, sizeof(host), "%s", a && *a ? a : "10.9.0.1");
	if (!e2e_usable("rdma", &why)) {
		printf("SKIP: rdma backend not usable here: %s\n", why);
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rogue_peer),
		cmocka_unit_test(test_lying_ring),
		cmocka_unit_test(test_mute_peer),
		cmocka_unit_test(test_foreign_connect),
		cmocka_unit_test(test_future_connect),
		cmocka_unit_test(test_foreign_server),
		cmocka_unit_test(test_future_server),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
