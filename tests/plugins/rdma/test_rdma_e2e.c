/*
 * rdma backend end to end, through the public API only. Needs an RDMA
 * device: the meson test runs it inside the soft-RoCE guest
 * (tools/hpn-rxe); without a device it skips (exit 77) and says why.
 *
 * HPN_TEST_RDMA_ADDR is the local RDMA address to listen on (default
 * 10.9.0.1, the guest's rxe0 address).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hpn/hpn.h>

#include "../e2e.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline hpn_peer_t connect_pair(hpn_ep *s, hpn_ep *c, const char *addr, hpn_peer_t *srv_side)
{
	return connect_pair_ms(s, c, addr, srv_side, 10000);
}

#define CFG "plugin=rdma,hugepages=auto,bufs=512,buf_size=1m,rx_depth=128"
#define MIB (1u << 20)

static char listen_addr[64];
static int next_port = 19000;

static hpn_ep *make(const char *extra)
{
	return e2e_make(CFG, extra);
}

static hpn_ep *make_server(char *addr, size_t len)
{
	hpn_ep *ep = make(NULL);

	snprintf(addr, len, "%s:%d", listen_addr, next_port++);
	if (hpn_listen(ep, addr))
		fail_msg("listen %s: %s", addr, hpn_last_error());
	return ep;
}

/* 8..407 bytes: around the inline size and the ring slot size (256). */
static uint32_t len_small(uint64_t seq)
{
	return 8 + (uint32_t)(seq * 7 % 400);
}

/* ring: the receiver must have taken some messages out of its ring, and
 * some as sends (too big for a slot): both paths, one order. */
static void many_in_order(const char *cfg, bool ring)
{
	char addr[64];
	hpn_ep *s = make(cfg);
	hpn_ep *c = make(cfg);
	hpn_peer_t p;

	snprintf(addr, sizeof(addr), "%s:%d", listen_addr, next_port++);
	if (hpn_listen(s, addr))
		fail_msg("listen %s: %s", addr, hpn_last_error());
	p = connect_pair(s, c, addr, NULL);
	const uint64_t total = 20000;
	uint64_t sent = 0, got = 0;
	static uint8_t msg[32][256 + 200];

	while (got < total) {
		if (sent < total) {
			struct hpn_msg out[32];
			unsigned n = 0;

			for (; n < 32 && sent + n < total; n++) {
				fill(msg[n], len_small(sent + n), sent + n);
				out[n] = (struct hpn_msg){.data = msg[n], .len = len_small(sent + n), .peer = p};
			}
			int r = hpn_send_burst(c, out, n);

			assert_true(r > 0 || r == -EAGAIN);
			if (r > 0)
				sent += (uint64_t)r;
		}
		if (ring) { /* ring credits come back as receive completions */
			struct hpn_msg none;

			assert_int_equal(hpn_recv_burst(c, &none, 1), 0);
		}
		struct hpn_msg in[32];
		int r = hpn_recv_burst(s, in, 32);

		assert_true(r >= 0);
		for (int i = 0; i < r; i++, got++) {
			assert_int_equal(in[i].len, len_small(got));
			assert_int_equal(check(in[i].data, in[i].len), got);
			hpn_buf_put(s, in[i].data);
		}
	}
	struct hpn_stats st;

	hpn_ep_stats(s, &st, sizeof(st));
	assert_int_equal(st.msgs_in, total);
	assert_int_equal(st.drops, 0);
	if (ring) {
		fprintf(stderr, "# %llu of %llu out of the ring\n", (unsigned long long)st.rx_copied,
			(unsigned long long)total);
		assert_true(st.rx_copied > 0 && st.rx_copied < total);
	}
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

static void test_many_in_order(void **state)
{
	(void)state;
	many_in_order(NULL, false);
}

/* The write-with-immediate ring, mixed with sends (messages above the
 * slot size, and whenever credits run out): one order. */
static void test_wimm_in_order(void **state)
{
	(void)state;
	many_in_order("wimm=on,wimm_slots=16", true);
}

/* Credits run out while the receiver does not look: the sender falls back
 * to sends, then to back-pressure; nothing is lost or reordered. */
static void test_wimm_credits(void **state)
{
	char addr[64];
	hpn_ep *s = make("wimm=on,wimm_slots=8");
	hpn_ep *c = make("wimm=on,wimm_slots=8");
	hpn_peer_t p;
	uint64_t sent = 0, got = 0;
	uint8_t m[64];

	(void)state;
	snprintf(addr, sizeof(addr), "%s:%d", listen_addr, next_port++);
	assert_int_equal(hpn_listen(s, addr), 0);
	p = connect_pair(s, c, addr, NULL);
	/* Send until refused, without receiving. */
	for (uint64_t t0 = now_ms(); now_ms() - t0 < 5000;) {
		fill(m, sizeof(m), sent);
		int r = hpn_send(c, p, m, sizeof(m));

		if (r == -EAGAIN)
			break;
		assert_int_equal(r, 0);
		sent++;
	}
	fprintf(stderr, "# sent %llu before back-pressure\n", (unsigned long long)sent);
	assert_true(sent > 8);
	while (got < sent) {
		struct hpn_msg in[32];
		int r = hpn_recv_burst(s, in, 32);

		for (int i = 0; i < r; i++, got++) {
			assert_int_equal(check(in[i].data, in[i].len), got);
			hpn_buf_put(s, in[i].data);
		}
	}
	/* And it flows again (credits came back). */
	for (int i = 0; i < 100; i++) {
		fill(m, sizeof(m), sent + (uint64_t)i);
		while (hpn_send(c, p, m, sizeof(m)) == -EAGAIN) {
			struct hpn_msg in[32];
			int r = hpn_recv_burst(s, in, 32);

			for (int k = 0; k < r; k++, got++) {
				assert_int_equal(check(in[k].data, in[k].len), got);
				hpn_buf_put(s, in[k].data);
			}
		}
	}
	while (got < sent + 100) {
		struct hpn_msg in[32];
		int r = hpn_recv_burst(s, in, 32);

		for (int i = 0; i < r; i++, got++) {
			assert_int_equal(check(in[i].data, in[i].len), got);
			hpn_buf_put(s, in[i].data);
		}
	}
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

/* 1 B to 1 MiB, copy (inline and not) and zero-copy. */
/* A peer with smaller receive buffers says so in its hello: a longer send
 * is refused -EMSGSIZE, saying why, and the connection carries on (it
 * once reached the peer, whose receive failed and ended the connection). */
static void test_peer_smaller_buffers(void **state)
{
	char addr[64];
	hpn_ep *s = e2e_make("plugin=rdma,hugepages=auto,bufs=512,buf_size=4096,rx_depth=128", NULL);
	hpn_ep *c = make(NULL);
	hpn_peer_t p;
	static uint8_t big[8192];
	struct hpn_msg in;
	uint64_t t0;
	int r;

	(void)state;
	snprintf(addr, sizeof(addr), "%s:%d", listen_addr, next_port++);
	if (hpn_listen(s, addr))
		fail_msg("listen %s: %s", addr, hpn_last_error());
	p = connect_pair(s, c, addr, NULL);
	fill(big, sizeof(big), 3);
	assert_int_equal(hpn_send(c, p, big, 4097), -EMSGSIZE);
	assert_non_null(strstr(hpn_last_error(), "receives at most 4096"));
	assert_int_equal(hpn_send(c, p, big, 4096), 0);
	for (t0 = now_ms(); (r = hpn_recv_burst(s, &in, 1)) == 0 && now_ms() - t0 < 5000;)
		hpn_poll(c, NULL, 0);
	assert_int_equal(r, 1);
	assert_int_equal(in.len, 4096);
	assert_int_equal(check(in.data, in.len), 3);
	hpn_buf_put(s, in.data);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

static void test_sizes(void **state)
{
	static const uint32_t sizes[] = {1, 8, 64, 200, 256, 257, 1000, 4096, 65536, 300000, MIB};
	char addr[64];
	hpn_ep *s = make_server(addr, sizeof(addr));
	hpn_ep *c = make(NULL);
	hpn_peer_t p = connect_pair(s, c, addr, NULL);
	uint8_t *big = malloc(MIB + 1);
	uint32_t inl = hpn_ep_caps(c)->inline_size;

	(void)state;
	assert_non_null(big);
	assert_int_equal(hpn_ep_caps(c)->max_msg_size, MIB);
	fprintf(stderr, "# device inline size: %u bytes\n", inl);
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint32_t len = sizes[i];
		void *zc;

		/* copy send */
		fill(big, len, i);
		assert_int_equal(hpn_send(c, p, big, len), 0);
		/* zero-copy send of the same content */
		assert_int_equal(hpn_buf_get(c, &zc), 0);
		fill(zc, len, i);
		struct hpn_msg m = {.data = zc, .len = len, .peer = p};

		assert_int_equal(hpn_send_zc_burst(c, &m, 1), 1);
		for (int k = 0; k < 2;) {
			struct hpn_msg in;
			int r = hpn_recv_burst(s, &in, 1);

			assert_true(r >= 0);
			if (!r)
				continue;
			assert_int_equal(in.len, len);
			if (len >= 8)
				assert_int_equal(check(in.data, len), i);
			else
				assert_memory_equal(in.data, big, len);
			hpn_buf_put(s, in.data);
			k++;
		}
	}
	/* Larger than the registered buffers: a clear -EMSGSIZE. */
	assert_int_equal(hpn_send(c, p, big, MIB + 1), -EMSGSIZE);
	free(big);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

/* Two clients of server s, connecting to dst[0] and dst[1]: each one's
 * messages arrive in order as its own, replies reach the right one, and a
 * clean goodbye is a peer-gone with status 0. */
static void two_clients(hpn_ep *s, const char *const dst[2])
{
	hpn_ep *c[2] = {make(NULL), make(NULL)};
	hpn_peer_t cp[2], sp[2];
	unsigned seen[2] = {0, 0};

	for (int i = 0; i < 2; i++)
		cp[i] = connect_pair(s, c[i], dst[i], &sp[i]);
	assert_int_not_equal(sp[0], sp[1]);
	for (int k = 0; k < 100; k++)
		for (int i = 0; i < 2; i++) {
			uint8_t m[2] = {(uint8_t)i, (uint8_t)k};

			while (hpn_send(c[i], cp[i], m, 2) == -EAGAIN)
				;
		}
	for (unsigned total = 0; total < 200;) {
		struct hpn_msg in[32];
		int r = hpn_recv_burst(s, in, 32);

		for (int k = 0; k < r; k++, total++) {
			const uint8_t *m = in[k].data;

			assert_int_equal(in[k].peer, sp[m[0]]);
			assert_int_equal(m[1], seen[m[0]]++);
			hpn_buf_put(s, in[k].data);
		}
	}
	/* Replies reach the right client. */
	for (int i = 0; i < 2; i++)
		assert_int_equal(hpn_send(s, sp[i], &i, 1), 0);
	for (int i = 0; i < 2; i++) {
		char b[4];
		hpn_peer_t from;
		int r;

		while ((r = hpn_recv(c[i], &from, b, sizeof(b))) == -EAGAIN)
			;
		assert_int_equal(r, 1);
		assert_int_equal(b[0], i);
	}
	/* A clean goodbye is a peer-gone with status 0. */
	hpn_ep_destroy(c[0]);
	struct hpn_event ev = wait_event(s, HPN_EV_PEER_GONE, &c[1], 1, 10000);

	assert_int_equal(ev.peer, sp[0]);
	assert_int_equal(hpn_send(s, sp[1], "x", 1), 0);
	hpn_ep_destroy(c[1]);
}

static void test_two_clients(void **state)
{
	char addr[64];
	hpn_ep *s = make_server(addr, sizeof(addr));
	const char *const dst[2] = {addr, addr};

	(void)state;
	two_clients(s, dst);
	hpn_ep_destroy(s);
}

/* One endpoint on two devices: listening on every address, it takes a
 * client through each (HPN_TEST_RDMA_ADDR2: an address of another local
 * device, e.g. rxe0's beside the wire's rxeD, tools/hpn-rxe --pair). With
 * dev= naming the second device, a connection through the first is
 * refused, and one through the second still works. */
static void test_two_devices(void **state)
{
	const char *a2 = getenv("HPN_TEST_RDMA_ADDR2"), *dev2 = getenv("HPN_TEST_RDMA_DEV2");
	char any[64], dst0[64], dst1[64], pin[96];
	const char *const dst[2] = {dst0, dst1};
	hpn_ep *s, *c;
	hpn_peer_t p;
	int port = next_port++;

	(void)state;
	if (!a2 || !dev2) {
		print_message("skipped: HPN_TEST_RDMA_ADDR2 and HPN_TEST_RDMA_DEV2 name no second device\n");
		skip();
	}
	snprintf(any, sizeof(any), "0.0.0.0:%d", port);
	snprintf(dst0, sizeof(dst0), "%s:%d", listen_addr, port);
	snprintf(dst1, sizeof(dst1), "%s:%d", a2, port);
	s = make(NULL);
	assert_int_equal(hpn_listen(s, any), 0);
	two_clients(s, dst);
	hpn_ep_destroy(s);

	snprintf(pin, sizeof(pin), "dev=%s", dev2);
	s = make(pin);
	port = next_port++;
	snprintf(any, sizeof(any), "0.0.0.0:%d", port);
	snprintf(dst0, sizeof(dst0), "%s:%d", listen_addr, port);
	snprintf(dst1, sizeof(dst1), "%s:%d", a2, port);
	assert_int_equal(hpn_listen(s, any), 0);
	c = make(NULL);
	assert_int_equal(hpn_connect(c, dst0, 0, &p), -EINPROGRESS);
	struct hpn_event ev = wait_event(c, HPN_EV_PEER_GONE, &s, 1, 20000);

	print_message("through the other device, with dev=%s: %d\n", dev2, ev.status);
	assert_int_equal(ev.peer, p);
	assert_int_equal(ev.status, -ECONNREFUSED);
	hpn_ep_destroy(c);
	c = make(NULL);
	connect_pair(s, c, dst1, NULL);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

/* A client process killed mid-stream: no hang, a peer-gone event, and the
 * server keeps working for others. */
static void test_peer_killed(void **state)
{
	char addr[64];
	hpn_ep *s = make_server(addr, sizeof(addr));
	struct hpn_event ev;
	uint64_t got = 0, t0;
	pid_t pid;
	int status;

	(void)state;
	/* Under netem loss the killed peer's one disconnect request may be
	 * lost, and soft-RoCE then retries the server's keepalives for ever
	 * (retry_count=7): the server's silence timer must end the peer. */
	/* A fresh process (exec, not just fork): RDMA resources must not be
	 * shared with the parent, and the kernel must clean up after it. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/proc/self/exe", "test_rdma_e2e", "--stream-to", addr, (char *)NULL);
		_exit(127);
	}
	ev = wait_event(s, HPN_EV_PEER_NEW, NULL, 0, 15000);
	/* Let some data flow, then kill the sender without any goodbye. */
	for (t0 = now_ms(); got < 1000 && now_ms() - t0 < 10000;) {
		struct hpn_msg in[32];
		int r = hpn_recv_burst(s, in, 32);

		for (int i = 0; i < r; i++, got++)
			hpn_buf_put(s, in[i].data);
	}
	assert_true(got >= 1000);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	struct hpn_event gone = {0};

	for (t0 = now_ms(); now_ms() - t0 < 20000;) {
		struct hpn_msg in[32];
		int r = hpn_recv_burst(s, in, 32);

		for (int i = 0; i < r; i++)
			hpn_buf_put(s, in[i].data);
		if (hpn_poll(s, &gone, 1) == 1 && gone.type == HPN_EV_PEER_GONE)
			break;
	}
	assert_int_equal(gone.type, HPN_EV_PEER_GONE);
	assert_int_equal(gone.peer, ev.peer);
	assert_int_equal(hpn_send(s, ev.peer, "x", 1), -ENOTCONN);
	hpn_ep_destroy(s);
}

/* Sleeping waits: wait=block arms the completion channel; progress=thread
 * moves everything through the rings. Echo 2000 messages each way. */
static void echo_run(const char *srv_cfg, const char *cli_cfg)
{
	char addr[64];
	hpn_ep *s = make(srv_cfg), *c = make(cli_cfg);
	hpn_peer_t p;

	snprintf(addr, sizeof(addr), "%s:%d", listen_addr, next_port++);
	if (hpn_listen(s, addr))
		fail_msg("listen %s: %s", addr, hpn_last_error());
	assert_int_equal(hpn_connect(c, addr, 0, &p), -EINPROGRESS);
	/* The server sleeps in its own thread-less way: poll both here. */
	wait_event(c, HPN_EV_CONNECTED, &s, 1, 10000);
	wait_event(s, HPN_EV_PEER_NEW, NULL, 0, 10000);
	for (uint64_t i = 0; i < 2000; i++) {
		uint8_t m[300];
		struct hpn_msg in;
		int r;

		fill(m, sizeof(m), i);
		while ((r = hpn_send(c, p, m, sizeof(m))) == -EAGAIN)
			;
		assert_int_equal(r, 0);
		r = hpn_recv_wait(s, &in, 1, 10000);
		assert_int_equal(r, 1);
		assert_int_equal(check(in.data, in.len), i);
		assert_int_equal(hpn_send_zc_burst(s, &in, 1), 1);
		r = hpn_recv_wait(c, &in, 1, 10000);
		assert_int_equal(r, 1);
		assert_int_equal(in.len, 300);
		assert_int_equal(check(in.data, 300), i);
		hpn_buf_put(c, in.data);
	}
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

/* n messages numbered 0..n-1 (fill()), waiting out back-pressure. */
static void send_numbered(hpn_ep *c, hpn_peer_t p, uint8_t *m, size_t len, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		fill(m, len, i);
		while (hpn_send(c, p, m, len) == -EAGAIN)
			;
	}
}

/* What has arrived: each from sp, each the next number (*got). */
static void recv_numbered(hpn_ep *s, hpn_peer_t sp, uint64_t *got)
{
	struct hpn_msg in[32];
	int r = hpn_recv_burst(s, in, 32);

	for (int i = 0; i < r; i++, (*got)++) {
		assert_int_equal(in[i].peer, sp);
		assert_int_equal(check(in[i].data, in[i].len), *got);
		hpn_buf_put(s, in[i].data);
	}
}

/* Everything sent before a goodbye is delivered, then the peer is gone,
 * even if the receiver looks only after the goodbye arrived. */
static void test_goodbye_after_data(void **state)
{
	char addr[64];
	hpn_ep *s = make(NULL), *c = make(NULL);
	hpn_peer_t p, sp;
	uint64_t got = 0;
	uint8_t m[100];

	(void)state;
	snprintf(addr, sizeof(addr), "%s:%d", listen_addr, next_port++);
	assert_int_equal(hpn_listen(s, addr), 0);
	p = connect_pair(s, c, addr, &sp);
	send_numbered(c, p, m, sizeof(m), 100);
	hpn_ep_destroy(c);
	wait_event(s, HPN_EV_PEER_GONE, NULL, 0, 10000); /* the goodbye is processed first */
	for (uint64_t t0 = now_ms(); got < 100 && now_ms() - t0 < 10000;)
		recv_numbered(s, sp, &got);
	assert_int_equal(got, 100);
	hpn_ep_destroy(s);
}

/* hpn_disconnect right after sending: it returns at once, yet what was
 * posted is still delivered (on a lossy wire some of it waits for a
 * retransmission), then the connection ends - and no event about a peer
 * the client let go of. */
static void test_disconnect_after_data(void **state)
{
	char addr[64];
	hpn_ep *s = make(NULL), *c = make(NULL);
	hpn_peer_t p, sp;
	uint64_t got = 0;
	uint8_t m[2000];
	struct hpn_event ev;
	bool gone = false;

	(void)state;
	snprintf(addr, sizeof(addr), "%s:%d", listen_addr, next_port++);
	assert_int_equal(hpn_listen(s, addr), 0);
	p = connect_pair(s, c, addr, &sp);
	send_numbered(c, p, m, sizeof(m), 100);
	assert_int_equal(hpn_disconnect(c, p), 0);
	assert_true(hpn_send(c, p, m, sizeof(m)) < 0); /* let go of: refused */
	for (uint64_t t0 = now_ms(); (got < 100 || !gone) && now_ms() - t0 < 10000;) {
		recv_numbered(s, sp, &got);
		while (hpn_poll(s, &ev, 1) == 1)
			gone |= ev.type == HPN_EV_PEER_GONE && ev.peer == sp;
		while (hpn_poll(c, &ev, 1) == 1) /* the client's progress ends the connection */
			assert_false(ev.type == HPN_EV_PEER_GONE && ev.peer == p);
	}
	assert_int_equal(got, 100);
	assert_true(gone);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

/* Idle peers exchange keepalives (zero-length sends): they must neither
 * surface as messages nor end the connection. */
static void test_idle_keepalive(void **state)
{
	char addr[64];
	hpn_ep *s = make("peer_timeout_ms=200"), *c = make("peer_timeout_ms=200");
	hpn_peer_t p, sp;
	struct hpn_stats st;

	(void)state;
	snprintf(addr, sizeof(addr), "%s:%d", listen_addr, next_port++);
	assert_int_equal(hpn_listen(s, addr), 0);
	p = connect_pair(s, c, addr, &sp);
	for (uint64_t t0 = now_ms(); now_ms() - t0 < 1500;) {
		struct hpn_msg in[4];
		struct hpn_event ev;

		assert_int_equal(hpn_recv_burst(s, in, 4), 0);
		assert_int_equal(hpn_recv_burst(c, in, 4), 0);
		assert_int_equal(hpn_poll(s, &ev, 1), 0);
		assert_int_equal(hpn_poll(c, &ev, 1), 0);
		usleep(1000);
	}
	assert_int_equal(hpn_send(c, p, "alive", 5), 0);
	struct hpn_msg in;

	assert_int_equal(hpn_recv_wait(s, &in, 1, 10000), 1);
	assert_int_equal(in.len, 5);
	assert_int_equal(in.peer, sp);
	hpn_buf_put(s, in.data);
	hpn_ep_stats(s, &st, sizeof(st));
	assert_int_equal(st.msgs_in, 1);
	assert_int_equal(st.errors, 0);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

/* Peers with different peer_timeout_ms: a client that watches closely
 * (200 ms) sends a message every 20 ms - one in every keepalive tick, too
 * few for a signaled completion in four ticks - to a server that only
 * listens and, with its 60 s, sends its own keepalives every 15 s. The
 * client must not take the quiet server for dead: its own probes'
 * acknowledgements prove it alive. (Before, it did, after ~200 ms.) */
static void test_uneven_timeouts(void **state)
{
	char addr[64];
	hpn_ep *s = make("peer_timeout_ms=60000"), *c = make("peer_timeout_ms=200");
	hpn_peer_t p, sp;
	struct hpn_stats st;
	uint64_t sent = 0, got = 0;

	(void)state;
	snprintf(addr, sizeof(addr), "%s:%d", listen_addr, next_port++);
	assert_int_equal(hpn_listen(s, addr), 0);
	p = connect_pair(s, c, addr, &sp);
	for (uint64_t t0 = now_ms(), next = 0; now_ms() - t0 < 1500;) {
		struct hpn_msg in[4];
		struct hpn_event ev;
		int r;

		if (now_ms() - t0 >= next) {
			assert_int_equal(hpn_send(c, p, "tick", 4), 0);
			sent++;
			next += 20;
		}
		r = hpn_recv_burst(s, in, 4);
		assert_true(r >= 0);
		for (int i = 0; i < r; i++, got++)
			hpn_buf_put(s, in[i].data);
		assert_int_equal(hpn_recv_burst(c, in, 4), 0);
		if (hpn_poll(c, &ev, 1) == 1)
			fail_msg("client: event %d for peer %u (status %d): the quiet server was taken for dead", ev.type,
				 ev.peer, ev.status);
		assert_int_equal(hpn_poll(s, &ev, 1), 0);
		usleep(1000);
	}
	for (uint64_t t0 = now_ms(); got < sent && now_ms() - t0 < 5000;) {
		struct hpn_msg in[4];
		int r = hpn_recv_burst(s, in, 4);

		for (int i = 0; i < r; i++, got++)
			hpn_buf_put(s, in[i].data);
	}
	assert_int_equal(got, sent);
	hpn_ep_stats(c, &st, sizeof(st));
	assert_int_equal(st.errors, 0);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

static void test_wait_block(void **state)
{
	(void)state;
	echo_run("wait=block", "wait=block");
}

static void test_progress_thread(void **state)
{
	(void)state;
	echo_run("progress=thread,wait=adaptive", "progress=thread,wait=adaptive");
}

static void test_bad_device(void **state)
{
	hpn_ep *ep = NULL;

	(void)state;
	assert_int_equal(hpn_ep_create(CFG ",dev=nosuch0", &ep), -ENODEV);
	assert_non_null(strstr(hpn_last_error(), "no device 'nosuch0'"));
	assert_null(ep);
	/* (Not CFG: it has an rx_depth, and a key given twice is refused for
	 * that, whatever its value.) */
	assert_int_equal(hpn_ep_create("plugin=rdma,bufs=512,rx_depth=400", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "rx_depth=400 needs bufs >= 800"));
	/* rx_depth unset follows a small pool (half of it) down to 16; below
	 * that the error names bufs=, the key that was given. */
	assert_int_equal(hpn_ep_create("plugin=rdma,bufs=16,burst=4", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "bufs=16 too small for rdma"));
	assert_int_equal(hpn_ep_create("plugin=rdma,hugepages=off,bufs=128", &ep), 0);
	/* Loopback: rdma_cm binds it, nothing could ever connect (it once
	 * said "listening"). */
	assert_int_equal(hpn_listen(ep, "127.0.0.1:0"), -EADDRNOTAVAIL);
	assert_non_null(strstr(hpn_last_error(), "is loopback"));
	hpn_ep_destroy(ep);
	ep = NULL;
	assert_int_equal(hpn_ep_create(CFG ",ack_timeout=32", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "ack_timeout"));
	assert_int_equal(hpn_ep_create(CFG ",retry_count=8", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "retry_count"));
	assert_int_equal(hpn_ep_create(CFG ",rnr_retry=9", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "rnr_retry"));
	assert_int_equal(hpn_ep_create(CFG ",rnr_timer=32", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "rnr_timer"));
	/* 491 ms of RNR wait against keepalives every 250 ms: refused. */
	assert_int_equal(hpn_ep_create(CFG ",rnr_timer=31,peer_timeout_ms=1000", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "quarter of peer_timeout_ms"));
	/* A ring message is taken into one pool buffer: a larger slot would
	 * let a peer write past it. */
	assert_int_equal(hpn_ep_create("plugin=rdma,bufs=512,buf_size=2048,rx_depth=128,wimm=on,wimm_slot=4096", &ep),
			 -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "larger than buf_size"));
}

/* The RC timers set by hand (both ends): the stream is the same. */
static void test_rc_timers(void **state)
{
	(void)state;
	many_in_order("ack_timeout=12,retry_count=5,rnr_retry=7,rnr_timer=14", false);
}

static void test_connect_refused(void **state)
{
	hpn_ep *c = make(NULL);
	hpn_peer_t p;
	char addr[64];
	int ret;

	(void)state;
	snprintf(addr, sizeof(addr), "%s:%d", listen_addr, 18999); /* nobody listens there */
	ret = hpn_connect(c, addr, 10000, &p);
	fprintf(stderr, "# connect to a closed port: %d (%s)\n", ret, hpn_last_error());
	assert_true(ret == -ECONNREFUSED || ret == -ETIMEDOUT);
	hpn_ep_destroy(c);
}

/* Peer ids carry a generation so an old id never reaches a new peer -
 * also after 65,536 connects through one slot (16-bit generations came
 * back to the first id there). Connects that are started and dropped at
 * once cost no handshake. */
static void test_peer_ids_never_repeat(void **state)
{
	hpn_ep *c = make("max_peers=1");
	hpn_peer_t first, p;
	char addr[64];
	uint64_t t0 = now_ms();

	(void)state;
	snprintf(addr, sizeof(addr), "%s:%d", listen_addr, 18998); /* nobody listens there */
	assert_int_equal(hpn_connect(c, addr, 0, &first), -EINPROGRESS);
	assert_int_equal(hpn_disconnect(c, first), 0);
	for (unsigned i = 0; i < 65536 + 2; i++) {
		assert_int_equal(hpn_connect(c, addr, 0, &p), -EINPROGRESS);
		if (p == first)
			fail_msg("connect %u got the first peer's id %u again", i + 1, p);
		assert_int_equal(hpn_disconnect(c, p), 0);
	}
	fprintf(stderr, "# 65538 connect/disconnect cycles in %llu ms\n", (unsigned long long)(now_ms() - t0));
	hpn_ep_destroy(c);
}

/* The child of test_peer_killed: connect and stream until killed. */
static int stream_to(const char *addr)
{
	hpn_ep *c;
	hpn_peer_t p;
	uint8_t m[512] = {0};

	if (hpn_ep_create("plugin=rdma,hugepages=off,bufs=256,buf_size=4k,rx_depth=64", &c) ||
	    hpn_connect(c, addr, 10000, &p)) {
		fprintf(stderr, "child: %s\n", hpn_last_error());
		return 1;
	}
	for (uint64_t i = 0;; i++) {
		int r;

		memcpy(m, &i, 8);
		while ((r = hpn_send(c, p, m, sizeof(m))) == -EAGAIN)
			;
		if (r)
			return 2;
	}
}

int main(int argc, char **argv)
{
	const char *a = getenv("HPN_TEST_RDMA_ADDR"), *why;

	if (argc == 3 && !strcmp(argv[1], "--stream-to"))
		return stream_to(argv[2]);
	snprintf(listen_addr, sizeof(listen_addr), "%s", a ? a : "10.9.0.1");
	if (!e2e_usable("rdma", &why)) {
		printf("SKIP: rdma backend not usable here: %s\n", why);
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_device),   cmocka_unit_test(test_many_in_order),
		cmocka_unit_test(test_wimm_in_order),
		cmocka_unit_test(test_rc_timers), cmocka_unit_test(test_wimm_credits),
		cmocka_unit_test(test_sizes),        cmocka_unit_test(test_two_clients),
		cmocka_unit_test(test_peer_smaller_buffers),
		cmocka_unit_test(test_two_devices),
		cmocka_unit_test(test_peer_killed),  cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_wait_block),   cmocka_unit_test(test_progress_thread),
		cmocka_unit_test(test_goodbye_after_data), cmocka_unit_test(test_disconnect_after_data),
		cmocka_unit_test(test_idle_keepalive), cmocka_unit_test(test_uneven_timeouts),
		cmocka_unit_test(test_peer_ids_never_repeat),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
