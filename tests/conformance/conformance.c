/*
 * conformance.c - the same end-to-end cases against any backend, through
 * the public API only (UCX's way: one suite, every transport). Two roles
 * in one program, run in two processes - so the two ends can live in two
 * network namespaces, as af_xdp needs (one endpoint per interface, and no
 * loopback):
 *
 *   conformance serve CONFIG ADDR     an echo server: every message back to
 *                                     its sender, plus commands (below)
 *   conformance client CONFIG ADDR    the cases, against that server
 *
 * Commands are messages starting "CMD:": "CMD:stall:MS" stops reading for
 * MS milliseconds (a slow reader), "CMD:die" ends the process at once,
 * without a goodbye (a killed peer), "CMD:burst:N" sends N small messages
 * back in bursts. tests/conformance/run.sh starts both
 * roles for a backend; meson runs it per backend (suite conformance).
 *
 *   conformance mpub|msub CONFIG GROUP COUNT   multicast publisher and
 *                                     subscriber (unordered mode)
 *
 * Cases: every size up to the largest message in order and intact, bursts,
 * the zero-copy send path, the smallest pool, a caller's bad arguments,
 * injected loss (packet backends), a reader stalled for three peer
 * timeouts (slow, not dead), a wait woken by another thread, a connect
 * nobody answers, a peer killed mid-stream (last: it ends the server).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hpn/hpn.h>

#include "../plugins/e2e.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Short, for quick deaths (300 once lost a live server starved of CPU by
 * a parallel build); CONF_PEER_TIMEOUT_MS sets another for a rig whose
 * path stalls longer (soft-RoCE under netem loss: tests/conformance/meson.build). */
static int peer_timeout_ms = 500;
#define PEER_TIMEOUT_MS ((uint64_t)peer_timeout_ms)

static const char *cfg, *addr;

/* ---- server ------------------------------------------------------------------ */

/* Echo: the same buffer goes back (zero copy), retried while the window
 * is closed - but not for ever. A client that stopped reading without
 * leaving (a failed case's endpoint, a hung process) would hold this one
 * thread, and with it every other client, which then gets no echo and no
 * receive buffer (the server reads nothing meanwhile): one failure would
 * fail every case after it. A real server drops such a client; so does
 * this one, after ten peer timeouts (the slow-reader case stalls three). */
static void echo(hpn_ep *ep, struct hpn_msg *m)
{
	uint64_t t0 = 0;
	int s;

	while ((s = hpn_send_zc_burst(ep, m, 1)) == -EAGAIN) {
		uint64_t now = now_ms();

		hpn_poll(ep, NULL, 0);
		if (!t0) {
			t0 = now;
		} else if (now - t0 > 10 * PEER_TIMEOUT_MS) {
			fprintf(stderr, "conformance serve: peer %u took no echo for %llu ms: dropped\n", m->peer,
				(unsigned long long)(now - t0));
			hpn_disconnect(ep, m->peer);
			break;
		}
	}
	if (s != 1)
		hpn_buf_put(ep, m->data); /* the peer went: nobody to echo to */
}

/* "CMD:burst:N": N messages of 16 bytes to the peer, copied, in bursts of
 * 64 - what a packet backend packs into BATCH packets, whose messages are
 * delivered together. Given up like echo() if the peer takes nothing. */
static void burst_to(hpn_ep *ep, hpn_peer_t peer, uint64_t total)
{
	static uint8_t data[64][16];
	struct hpn_msg out[64];
	uint64_t sent = 0, t0 = 0;

	while (sent < total) {
		unsigned k = 0;

		for (; k < 64 && sent + k < total; k++) {
			fill(data[k], sizeof(data[k]), sent + k);
			out[k] = (struct hpn_msg){.data = data[k], .len = sizeof(data[k]), .peer = peer};
		}
		int r = hpn_send_burst(ep, out, k);

		if (r > 0) {
			sent += (uint64_t)r;
			t0 = 0;
		} else if (r != -EAGAIN && r != 0) {
			fprintf(stderr, "conformance serve: burst to %u: %d %s\n", peer, r, hpn_last_error());
			return;
		} else if (!t0) {
			t0 = now_ms();
		} else if (now_ms() - t0 > 10 * PEER_TIMEOUT_MS) {
			fprintf(stderr, "conformance serve: peer %u took no burst for 10 peer timeouts\n", peer);
			return;
		} else {
			hpn_poll(ep, NULL, 0);
		}
	}
}

static int serve(void)
{
	char full[512];
	hpn_ep *ep;
	struct hpn_msg in[32];
	struct hpn_event ev;

	snprintf(full, sizeof(full), "%s,progress=thread,peer_timeout_ms=%d", cfg, peer_timeout_ms);
	if (hpn_ep_create(full, &ep) || hpn_listen(ep, addr)) {
		fprintf(stderr, "conformance serve: %s\n", hpn_last_error());
		return 1;
	}
	printf("listening on %s\n", addr);
	fflush(stdout);
	for (;;) {
		int r = hpn_recv_wait(ep, in, 32, 10);

		while (hpn_poll(ep, &ev, 1) == 1)
			;
		for (int i = 0; i < r; i++) {
			if (in[i].len >= 4 && !memcmp(in[i].data, "CMD:", 4)) {
				char cmd[64] = "";

				memcpy(cmd, in[i].data, in[i].len < sizeof(cmd) - 1 ? in[i].len : sizeof(cmd) - 1);
				hpn_buf_put(ep, in[i].data);
				if (!strcmp(cmd, "CMD:die"))
					_exit(0); /* no goodbye: a killed peer */
				if (!strncmp(cmd, "CMD:stall:", 10))
					usleep((useconds_t)atoi(cmd + 10) * 1000);
				if (!strncmp(cmd, "CMD:burst:", 10))
					burst_to(ep, in[i].peer, strtoull(cmd + 10, NULL, 10));
				if (!strcmp(cmd, "CMD:stats")) { /* the copies this side made, so far */
					struct hpn_stats st;
					char line[96];

					hpn_ep_stats(ep, &st, sizeof(st));
					snprintf(line, sizeof(line), "STATS:%llu %llu", (unsigned long long)st.tx_copied,
						 (unsigned long long)st.rx_copied);
					while (hpn_send(ep, in[i].peer, line, strlen(line) + 1) == -EAGAIN)
						hpn_poll(ep, NULL, 0);
				}
				continue;
			}
			echo(ep, &in[i]);
		}
	}
}

/* ---- client ------------------------------------------------------------------ */

/* The case's endpoint while it runs: a failed case leaves by longjmp,
 * past its hpn_ep_destroy(); left open, the endpoint's queue pair or
 * socket would live on unread and hold the server (and the next cases)
 * up. teardown() closes it. */
static hpn_ep *live;

static hpn_ep *make(const char *extra)
{
	char base[512];

	snprintf(base, sizeof(base), "%s,peer_timeout_ms=%d", cfg, peer_timeout_ms);
	return live = e2e_make(base, extra);
}

/* An endpoint with a pool of `bufs` buffers instead of run.sh's: the
 * environment (HPN_BUFS) wins over the config string, as for any key. */
static hpn_ep *make_bufs(unsigned bufs)
{
	char n[16];
	hpn_ep *ep;

	snprintf(n, sizeof(n), "%u", bufs);
	setenv("HPN_BUFS", n, 1);
	ep = make(NULL);
	unsetenv("HPN_BUFS");
	snprintf(n, sizeof(n), "pool %u x", bufs);
	assert_non_null(strstr(hpn_ep_describe(ep), n));
	return ep;
}

static void done(hpn_ep *c)
{
	hpn_ep_destroy(c);
	if (c == live)
		live = NULL;
}

static int teardown(void **state)
{
	(void)state;
	if (live) {
		hpn_ep_destroy(live);
		live = NULL;
	}
	return 0;
}

/* A case that stopped moving: say what the endpoint saw, and what the rig
 * sees (CONF_ON_STALL, a shell command: run.sh shows soft-RoCE's queue
 * pairs and counters), before failing - a stall seen once in many runs
 * must leave more than its count behind. */
#define stalled(c, ...)                                                                            \
	do {                                                                                       \
		stall_report(c);                                                                   \
		fail_msg(__VA_ARGS__);                                                             \
	} while (0)

static void stall_report(hpn_ep *c)
{
	struct hpn_stats st;

	hpn_ep_stats(c, &st, sizeof(st));
	fprintf(stderr,
		"stall: msgs out %llu in %llu, tx_again %llu, errors %llu, drops %llu, retransmits %llu, "
		"unacked %llu\n",
		(unsigned long long)st.msgs_out, (unsigned long long)st.msgs_in, (unsigned long long)st.tx_again,
		(unsigned long long)st.errors, (unsigned long long)st.drops, (unsigned long long)st.retransmits,
		(unsigned long long)st.unacked);
	if (getenv("CONF_ON_STALL") && system(getenv("CONF_ON_STALL")) != 0)
		fprintf(stderr, "stall: CONF_ON_STALL failed\n");
}

/* While the window is closed: drive progress, as an application in
 * progress=inline mode must (hpn_poll), and stop at once if the peer was
 * found gone instead of waiting out the case's minute. */
static void wait_window(hpn_ep *c)
{
	static uint64_t last;
	struct hpn_event ev;

	if (now_ms() == last)
		return; /* once a millisecond is enough: hpn_poll reads the connection manager */
	last = now_ms();
	if (hpn_poll(c, &ev, 1) == 1 && ev.type == HPN_EV_PEER_GONE)
		stalled(c, "peer %u gone (status %d) while our window was closed", ev.peer, ev.status);
}

static hpn_peer_t dial(hpn_ep *c)
{
	hpn_peer_t p;
	int ret = hpn_connect(c, addr, 5000, &p);

	if (ret)
		fail_msg("connect %s: %d %s", addr, ret, hpn_last_error());
	return p;
}

static void bye(hpn_ep *c)
{
	done(c); /* lingers for acks, says BYE */
}

/* Send `total` messages of `size` (content from fill(), seq from `first`)
 * and take every echo back, in order and intact. */
static void echo_run(hpn_ep *c, hpn_peer_t p, uint32_t size, uint64_t total)
{
	static uint8_t buf[1 << 20];
	struct hpn_msg in[32];
	uint64_t sent = 0, next = 0, t0 = now_ms();

	while (next < total) {
		if (sent < total) {
			fill(buf, size, sent);
			int r = hpn_send(c, p, buf, size);

			if (r == 0)
				sent++;
			else if (r == -EAGAIN)
				wait_window(c);
			else
				fail_msg("send %u B #%llu: %d %s", size, (unsigned long long)sent, r, hpn_last_error());
		}
		int r = hpn_recv_burst(c, in, 32);

		for (int i = 0; i < r; i++) {
			assert_int_equal(in[i].len, size);
			assert_int_equal(check(in[i].data, in[i].len), next);
			assert_true(in[i].ts_ns); /* every received message has its receive time */
			next++;
			hpn_buf_put(c, in[i].data);
		}
		if (now_ms() - t0 > 60000)
			stalled(c, "%u B: %llu of %llu echoes after 60 s", size, (unsigned long long)next,
				 (unsigned long long)total);
	}
}

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Receive timestamps are on the real clock, after the echo's request left
 * and before the application got it (1 ms of slack: a backend may convert
 * a monotonic stamp with an offset read every 10 ms), and never go back. */
static void test_receive_timestamps(void **state)
{
	hpn_ep *c = make(NULL);
	hpn_peer_t p = dial(c);
	uint8_t buf[64];
	uint64_t last = 0;

	(void)state;
	for (uint64_t k = 0; k < 200; k++) {
		struct hpn_msg in;
		uint64_t sent, got, t0 = now_ms();
		int r;

		fill(buf, sizeof(buf), k);
		sent = real_ns();
		while ((r = hpn_send(c, p, buf, sizeof(buf))) == -EAGAIN)
			hpn_poll(c, NULL, 0);
		assert_int_equal(r, 0);
		while ((r = hpn_recv_burst(c, &in, 1)) == 0)
			if (now_ms() - t0 > 10000)
				stalled(c, "no echo of message %llu in 10 s", (unsigned long long)k);
		got = real_ns();
		assert_int_equal(r, 1);
		if (in.ts_ns + 1000000 < sent || in.ts_ns > got + 1000000)
			fail_msg("message %llu: received at %llu, outside [%llu sent, %llu read] (real clock, ns)",
				 (unsigned long long)k, (unsigned long long)in.ts_ns, (unsigned long long)sent,
				 (unsigned long long)got);
		assert_true(in.ts_ns + 1000000 >= last);
		last = in.ts_ns;
		hpn_buf_put(c, in.data);
	}
	bye(c);
}

static void test_sizes_in_order(void **state)
{
	hpn_ep *c = make(NULL);
	hpn_peer_t p = dial(c);
	uint32_t max = hpn_ep_caps(c)->max_msg_size;
	const uint32_t sizes[] = {8, 63, 64, 1000, 1400, 1500, 4000, 9000, 16384, 65536};

	(void)state;
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint32_t s = sizes[i] < max ? sizes[i] : max;

		echo_run(c, p, s, s > 9000 ? 50 : 500);
		if (s == max)
			break;
	}
	print_message("sizes 8 B .. %u B echoed in order and intact\n", max < 65536 ? max : 65536);
	bye(c);
}

static void test_bursts(void **state)
{
	hpn_ep *c = make(NULL);
	hpn_peer_t p = dial(c);
	uint8_t bufs[32][200];
	struct hpn_msg out[32], in[32];
	uint64_t sent = 0, next = 0, t0 = now_ms();
	const uint64_t total = 20000;

	(void)state;
	while (next < total) {
		unsigned n = 0;

		while (n < 32 && sent + n < total) {
			uint32_t len = 16 + (uint32_t)((sent + n) % 180);

			fill(bufs[n], len, sent + n);
			out[n] = (struct hpn_msg){.data = bufs[n], .len = len, .peer = p};
			n++;
		}
		int r = n ? hpn_send_burst(c, out, n) : 0;

		if (r > 0)
			sent += (unsigned)r;
		else if (r == -EAGAIN)
			wait_window(c);
		else if (r < 0)
			fail_msg("send_burst: %d %s", r, hpn_last_error());
		r = hpn_recv_burst(c, in, 32);
		for (int i = 0; i < r; i++) {
			if (in[i].len != 16 + next % 180) { /* seen once at 5% loss on soft-RoCE: what came */
				fprintf(stderr, "bursts: message %d of %d: %u bytes from peer %u (the echo of %llu due, %llu sent)\n",
					i, r, in[i].len, in[i].peer, (unsigned long long)next, (unsigned long long)sent);
				stall_report(c);
			}
			assert_int_equal(in[i].len, 16 + next % 180);
			assert_int_equal(check(in[i].data, in[i].len), next);
			next++;
			hpn_buf_put(c, in[i].data);
		}
		if (now_ms() - t0 > 60000)
			stalled(c, "bursts: %llu of %llu after 60 s", (unsigned long long)next, (unsigned long long)total);
	}
	bye(c);
}

/* The server's copy counters (tx_copied, rx_copied), asked for in band. */
static void server_copies(hpn_ep *c, hpn_peer_t p, unsigned long long *tx, unsigned long long *rx)
{
	struct hpn_msg in;
	uint64_t t0 = now_ms();

	while (hpn_send(c, p, "CMD:stats", 9) == -EAGAIN)
		hpn_poll(c, NULL, 0);
	for (;;) {
		int r = hpn_recv_burst(c, &in, 1);

		if (r == 1) {
			bool mine = in.len > 6 && !memcmp(in.data, "STATS:", 6) &&
				    sscanf((char *)in.data + 6, "%llu %llu", tx, rx) == 2;

			hpn_buf_put(c, in.data);
			if (mine)
				return;
		}
		if (now_ms() - t0 > 10000)
			stalled(c, "the server did not report its copies");
	}
}

static void test_zero_copy(void **state)
{
	hpn_ep *c = make(NULL);
	hpn_peer_t p = dial(c);
	struct hpn_msg in[32];
	uint64_t sent = 0, next = 0, t0 = now_ms();
	const uint64_t total = 5000;

	(void)state;
	while (next < total) {
		if (sent < total) {
			struct hpn_msg m = {.len = 512, .peer = p};

			if (hpn_buf_get_sized(c, m.len, &m.data) == 0) {
				fill(m.data, m.len, sent);
				int r = hpn_send_zc_burst(c, &m, 1);

				if (r == 1)
					sent++;
				else
					hpn_buf_put(c, m.data); /* not taken: still ours */
			}
		}
		int r = hpn_recv_burst(c, in, 32);

		for (int i = 0; i < r; i++) {
			assert_int_equal(check(in[i].data, in[i].len), next);
			next++;
			hpn_buf_put(c, in[i].data);
		}
		if (now_ms() - t0 > 60000)
			stalled(c, "zero copy: %llu of %llu after 60 s", (unsigned long long)next, (unsigned long long)total);
	}
	bye(c);
}

/* Copies counted (hpn_stats tx_copied/rx_copied) over zero-copy ping-pong:
 * the client sends from pool buffers (device frames where the backend has
 * them: hpn_buf_get_sized), the server echoes the buffer it received, and
 * nothing waits for a reader. Neither side copies a payload, except a
 * message that arrives ahead of a gap (loss is rare here: at most 1 in
 * 100). */
static void test_zero_copy_counted(void **state)
{
	hpn_ep *c = make(NULL);
	hpn_peer_t p = dial(c);
	struct hpn_stats st;
	unsigned long long stx0, srx0, stx1, srx1;
	const uint64_t total = 2000;
	uint64_t t0 = now_ms();

	(void)state;
	server_copies(c, p, &stx0, &srx0);
	hpn_ep_stats(c, &st, sizeof(st));
	assert_int_equal(st.tx_copied, 0);
	for (uint64_t i = 0; i < total; i++) {
		struct hpn_msg m = {.len = 300, .peer = p}, in;
		int r;

		while (hpn_buf_get_sized(c, m.len, &m.data))
			hpn_poll(c, NULL, 0);
		fill(m.data, m.len, i);
		while ((r = hpn_send_zc_burst(c, &m, 1)) == -EAGAIN)
			hpn_poll(c, NULL, 0);
		assert_int_equal(r, 1);
		while ((r = hpn_recv_burst(c, &in, 1)) == 0)
			if (now_ms() - t0 > 60000)
				stalled(c, "zero copy: %llu of %llu after 60 s", (unsigned long long)i,
					 (unsigned long long)total);
		assert_int_equal(r, 1);
		assert_int_equal(check(in.data, in.len), i);
		hpn_buf_put(c, in.data);
	}
	server_copies(c, p, &stx1, &srx1);
	hpn_ep_stats(c, &st, sizeof(st));
	print_message("%llu zero-copy round trips: copies client tx %llu rx %llu, server tx %llu rx %llu\n",
		      (unsigned long long)total, (unsigned long long)st.tx_copied, (unsigned long long)st.rx_copied,
		      stx1 - stx0, srx1 - srx0);
	assert_int_equal(st.tx_copied, 0);
	assert_int_equal(stx1 - stx0, 0);
	assert_true(st.rx_copied <= total / 100);
	assert_true(srx1 - srx0 <= total / 100);
	bye(c);
}

/* A buffer a zero-copy send took is the library's until it is sent: a
 * second send of it (in the same burst, or later) and a put of it are
 * refused - each would give one buffer two owners - and the message
 * arrives once. A received buffer sent on (a forwarder) is the caller's
 * again when it comes back: the last put is taken. */
static void test_zero_copy_ownership(void **state)
{
	hpn_ep *c = make(NULL);
	hpn_peer_t p = dial(c);
	struct hpn_stats st0, st1;
	struct hpn_msg m[2], in[4];
	uint64_t t0 = now_ms(), quiet = 0;
	unsigned got = 0;
	void *buf;
	int r;

	(void)state;
	hpn_ep_stats(c, &st0, sizeof(st0));
	while (hpn_buf_get_sized(c, 200, &buf))
		hpn_poll(c, NULL, 0);
	fill(buf, 200, 41);
	m[0] = m[1] = (struct hpn_msg){.data = buf, .len = 200, .peer = p};
	while ((r = hpn_send_zc_burst(c, m, 2)) == -EAGAIN || r == 0)
		wait_window(c);
	assert_int_equal(r, 1);
	assert_int_equal(hpn_send_zc_burst(c, m + 1, 1), -EINVAL);
	/* Still being sent, or already sent and back in the pool. */
	assert_true(strstr(hpn_last_error(), "already took") || strstr(hpn_last_error(), "already returned"));
	hpn_buf_put(c, buf);
	hpn_ep_stats(c, &st1, sizeof(st1));
	assert_int_equal(st1.errors - st0.errors, 1);
	/* The echo, forwarded back once more, then its echo put back. */
	while (got < 2 || now_ms() - quiet < 300) {
		r = hpn_recv_burst(c, in, 4);
		assert_true(r >= 0);
		for (int i = 0; i < r; i++, got++) {
			assert_true(got < 2); /* nothing arrives twice */
			assert_int_equal(in[i].len, 200);
			assert_int_equal(check(in[i].data, in[i].len), 41);
			if (got == 0) {
				while ((r = hpn_send_zc_burst(c, &in[i], 1)) == -EAGAIN || r == 0)
					wait_window(c);
				assert_int_equal(r, 1);
			} else {
				hpn_buf_put(c, in[i].data);
				quiet = now_ms();
			}
		}
		if (!r)
			wait_window(c);
		if (now_ms() - t0 > 60000)
			stalled(c, "zero-copy ownership: %u of 2 echoes after 60 s", got);
	}
	hpn_ep_stats(c, &st1, sizeof(st1));
	assert_int_equal(st1.errors - st0.errors, 1);
	bye(c);
}

/* A reader that keeps every buffer it receives (never hpn_buf_put) runs
 * the endpoint out of them: the stream stops - a closed window, or on a
 * frame backend a device with no receive frames left, dropping what comes
 * (with a warning) - and nobody is declared gone, however long it lasts
 * (three silence limits here). Given back, every message still arrives,
 * once, in order and intact. */
static void test_reader_holds_buffers(void **state)
{
	enum { TOTAL = 6000, HOLD_MAX = 8192 };
	static void *held[HOLD_MAX];
	static uint8_t buf[1000];
	hpn_ep *c = make(NULL);
	hpn_peer_t p = dial(c);
	struct hpn_msg in[32];
	struct hpn_event ev;
	uint64_t sent = 0, next = 0, t0 = now_ms(), win = now_ms(), stopped = 0;
	unsigned nheld = 0, stops = 0, win_n = 0;
	uint64_t hold_ms = getenv("CONF_HOLD_MS") ? strtoull(getenv("CONF_HOLD_MS"), NULL, 10) : 3 * PEER_TIMEOUT_MS;

	(void)state;
	while (next < TOTAL) {
		if (sent < TOTAL) {
			fill(buf, sizeof(buf), sent);
			if (hpn_send(c, p, buf, sizeof(buf)) == 0)
				sent++;
		}
		int r = hpn_recv_burst(c, in, 32);

		for (int i = 0; i < r; i++) {
			assert_int_equal(check(in[i].data, in[i].len), next);
			next++;
			if (stops || nheld == HOLD_MAX)
				hpn_buf_put(c, in[i].data);
			else
				held[nheld++] = in[i].data;
		}
		/* Stopped: fewer than 16 messages in 100 ms (thousands flow).
		 * Not "none": on a frame backend each frame our own ACKs free
		 * lets the device take one more packet now and then, and that
		 * trickle once kept this hold going until the echo gave up. */
		if (r > 0)
			win_n += (unsigned)r;
		if (now_ms() - win >= 100) {
			stopped = win_n < 16 ? (stopped ? stopped : win) : 0;
			win = now_ms();
			win_n = 0;
		}
		/* Stuck: every buffer is ours. Held past both ends' silence
		 * limit: a device with no receive frame left hears nobody, and
		 * that is not its peer's silence (af_xdp gave its peer up, and
		 * with its send frames in the device went silent itself). */
		if (!stops && stopped && now_ms() - stopped > hold_ms) {
			print_message("held %u buffers; the stream stopped at %llu of %d\n", nheld,
				      (unsigned long long)next, TOTAL);
			for (unsigned i = 0; i < nheld; i++)
				hpn_buf_put(c, held[i]);
			nheld = 0;
			stops++;
		}
		if (now_ms() - t0 > 60000)
			stalled(c, "held buffers: %llu of %d after 60 s", (unsigned long long)next, TOTAL);
	}
	for (unsigned i = 0; i < nheld; i++)
		hpn_buf_put(c, held[i]);
	while (hpn_poll(c, &ev, 1) == 1)
		assert_int_not_equal(ev.type, HPN_EV_PEER_GONE);
	bye(c);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* One message, and its echo back, intact. */
static void echo_text(hpn_ep *c, hpn_peer_t p, const char *text)
{
	uint32_t len = (uint32_t)strlen(text);
	struct hpn_msg in[4];
	int got = 0;

	while (hpn_send(c, p, text, len) == -EAGAIN)
		wait_window(c);
	for (uint64_t t0 = now_ms(); !got;) {
		int r = hpn_recv_wait(c, in, 4, 100);

		assert_true(r >= 0);
		for (int i = 0; i < r; i++, got++) {
			assert_int_equal(in[i].len, len);
			assert_memory_equal(in[i].data, text, len);
			hpn_buf_put(c, in[i].data);
		}
		if (now_ms() - t0 > 30000)
			stalled(c, "no echo of '%s' after 30 s", text);
	}
}

/* A message after an idle moment is echoed like any other: every echo
 * comes. The round trips are printed, not judged (speed is for bench/):
 * a server whose progress thread slept through what came (a poll-mode
 * device has no fd to wake it: dpdk) would show here as milliseconds. */
static void test_echo_after_idle(void **state)
{
	enum { ROUNDS = 20 };
	hpn_ep *c = make(NULL);
	hpn_peer_t p = dial(c);
	uint64_t rtt[ROUNDS];

	(void)state;
	for (unsigned i = 0; i < ROUNDS; i++) {
		struct timespec a, b;

		usleep(5000);
		clock_gettime(CLOCK_MONOTONIC, &a);
		echo_text(c, p, "idle, then this");
		clock_gettime(CLOCK_MONOTONIC, &b);
		rtt[i] = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull + (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec;
	}
	qsort(rtt, ROUNDS, sizeof(rtt[0]), cmp_u64);
	print_message("echo after 5 ms idle, %d rounds: median %llu us, max %llu us (printed, not judged)\n", ROUNDS,
		      (unsigned long long)rtt[ROUNDS / 2] / 1000, (unsigned long long)rtt[ROUNDS - 1] / 1000);
	bye(c);
}

/* A thread blocked in hpn_recv_wait(-1), as a receiver thread is. */
struct waiter {
	hpn_ep *ep;
	atomic_bool stop;
	atomic_int returns;
	int err;
};

static void *wait_loop(void *arg)
{
	struct waiter *w = arg;
	struct hpn_msg in[8];

	while (!atomic_load(&w->stop)) {
		int r = hpn_recv_wait(w->ep, in, 8, -1);

		for (int i = 0; i < r; i++)
			hpn_buf_put(w->ep, in[i].data);
		if (r < 0) {
			w->err = r;
			break;
		}
		atomic_fetch_add(&w->returns, 1);
	}
	return NULL;
}

/* A hang is not a failure cmocka can clean up after: the endpoint cannot be
 * destroyed under the thread still inside it. */
static void wait_returns(struct waiter *w, int want, const char *mode, const char *what)
{
	for (uint64_t t0 = now_ms(); atomic_load(&w->returns) < want; sched_yield())
		if (now_ms() - t0 > 20000) {
			fprintf(stderr, "FAIL: test_wake (%s): hpn_recv_wait(-1) still waits 20 s after %s\n", mode, what);
			fflush(stdout);
			_exit(1);
		}
}

/* hpn_ep_wake() ends the wait of a thread blocked in hpn_recv_wait(-1), in
 * every wait and progress mode: the way to stop a receiver thread before
 * hpn_ep_destroy(). Wakes before a wait end that one wait, however many;
 * a wait with nothing to wake it stays asleep; nothing is lost. How long
 * a sleeping wait took to return is printed, not judged (the waits also
 * end every 10 ms on their own, so only the figure shows a wake that
 * does not reach a sleeper). Every thread is joined before anything is
 * asserted: a failed case must not leave one inside the endpoint. */
static void test_wake(void **state)
{
	static const char *const modes[] = {"wait=block", "wait=spin", "wait=adaptive", "progress=thread,wait=block",
					    "progress=thread,wait=spin"};
	enum { WAKES = 20 };

	(void)state;
	for (unsigned m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		hpn_ep *c = make(modes[m]);
		hpn_peer_t p = dial(c);
		struct waiter w = {.ep = c};
		uint64_t lat[WAKES];
		pthread_t t;
		int early, pre0, pre1;

		pre0 = hpn_ep_wake(c);
		pre1 = hpn_ep_wake(c);
		assert_int_equal(pthread_create(&t, NULL, wait_loop, &w), 0);
		wait_returns(&w, 1, modes[m], "two wakes before it began");
		usleep(100000);
		early = atomic_load(&w.returns); /* two wakes before the wait: one return */
		/* A sleeping wait, woken: how long until it returned. */
		for (int i = 0; i < WAKES; i++) {
			struct timespec a, b;
			int before = atomic_load(&w.returns);

			usleep(3000);
			clock_gettime(CLOCK_MONOTONIC, &a);
			hpn_ep_wake(c);
			wait_returns(&w, before + 1, modes[m], "a wake");
			clock_gettime(CLOCK_MONOTONIC, &b);
			lat[i] = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull + (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec;
		}
		atomic_store(&w.stop, true);
		hpn_ep_wake(c);
		wait_returns(&w, early + WAKES + 1, modes[m], "the last wake");
		pthread_join(t, NULL);
		assert_int_equal(pre0, 0);
		assert_int_equal(pre1, 0);
		assert_int_equal(early, 1);
		assert_int_equal(w.err, 0);
		assert_int_equal(atomic_load(&w.returns), early + WAKES + 1);
		assert_int_equal(hpn_ep_wake(NULL), -EINVAL);
		qsort(lat, WAKES, sizeof(lat[0]), cmp_u64);
		print_message("%s: a sleeping wait returned %llu us (median of %d) after hpn_ep_wake, at most %llu us "
			      "(printed, not judged)\n", modes[m], (unsigned long long)lat[WAKES / 2] / 1000, WAKES,
			      (unsigned long long)lat[WAKES - 1] / 1000);
		echo_text(c, p, "after the wakes"); /* the endpoint goes on */
		bye(c);
	}
}

/* A caller's mistakes on the data path are refused with their reason in
 * hpn_last_error() (not a stale one, not a crash), and lose nothing: a
 * receive buffer too small leaves the message queued for a larger one. */
static void test_bad_arguments(void **state)
{
	hpn_ep *c = make(NULL);
	hpn_peer_t p = dial(c), from = HPN_PEER_NONE;
	uint8_t small[10], big[200], msg[100];
	struct hpn_event ev[4];
	uint64_t t0 = now_ms();
	int r;

	(void)state;
	assert_int_equal(hpn_send(c, p, NULL, 10), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "data is NULL"));
	assert_int_equal(hpn_send(c, p, msg, (size_t)UINT32_MAX + 2), -EMSGSIZE);
	assert_non_null(strstr(hpn_last_error(), "more than the largest message"));
	assert_int_equal(hpn_send_burst(c, NULL, 1), -EINVAL);
	assert_int_equal(hpn_send_zc_burst(c, NULL, 1), -EINVAL);
	assert_int_equal(hpn_send_burst(c, NULL, 0), 0);
	assert_int_equal(hpn_recv_burst(c, NULL, 4), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "msgs is NULL"));
	assert_int_equal(hpn_recv(c, NULL, big, sizeof(big)), -EINVAL);
	assert_true(hpn_poll(c, NULL, 4) >= 0); /* progress only */
	/* The echo of 100 bytes, offered 10 bytes of room first. */
	fill(msg, sizeof(msg), 7);
	while ((r = hpn_send(c, p, msg, sizeof(msg))) == -EAGAIN)
		wait_window(c);
	assert_int_equal(r, 0);
	while ((r = hpn_recv(c, &from, small, sizeof(small))) == -EAGAIN)
		if (now_ms() - t0 > 60000)
			stalled(c, "no echo after 60 s");
	assert_int_equal(r, -EMSGSIZE);
	assert_non_null(strstr(hpn_last_error(), "stays queued"));
	assert_int_equal(hpn_recv(c, &from, big, sizeof(big)), (int)sizeof(msg));
	assert_int_equal(from, p);
	assert_int_equal(check(big, sizeof(msg)), 7);
	/* NULL with length 0 is an empty message (it once reached memcpy). */
	while ((r = hpn_send(c, p, NULL, 0)) == -EAGAIN)
		wait_window(c);
	assert_int_equal(r, 0);
	while ((r = hpn_recv(c, &from, big, sizeof(big))) == -EAGAIN)
		if (now_ms() - t0 > 60000)
			stalled(c, "no echo of an empty message after 60 s");
	assert_int_equal(r, 0);
	while ((r = hpn_poll(c, ev, 4)) > 0)
		for (int i = 0; i < r; i++)
			assert_int_not_equal(ev[i].type, HPN_EV_PEER_GONE);
	bye(c);
}

/* total messages of 16 bytes, sent to us in bursts of 64 (CMD:burst): a
 * packet backend packs them into BATCH packets (the server's progress
 * thread: up to burst=32 a packet), each delivered whole into the small
 * pool. (It did not catch a reserve capped at 32 buffers - 32 fit - which
 * is why the packet layer refuses pools under two full batches.) */
static void small_bursts(hpn_ep *c, hpn_peer_t p, uint64_t total)
{
	char cmd[48];
	struct hpn_msg in[32];
	uint64_t next = 0, t0 = now_ms();
	int r;

	snprintf(cmd, sizeof(cmd), "CMD:burst:%llu", (unsigned long long)total);
	while ((r = hpn_send(c, p, cmd, strlen(cmd))) == -EAGAIN)
		wait_window(c);
	assert_int_equal(r, 0);
	while (next < total) {
		r = hpn_recv_burst(c, in, 32);
		assert_true(r >= 0);
		for (int i = 0; i < r; i++) {
			assert_int_equal(in[i].len, 16);
			assert_int_equal(check(in[i].data, in[i].len), next);
			next++;
			hpn_buf_put(c, in[i].data);
		}
		if (!r)
			wait_window(c); /* progress, and a peer gone is said at once */
		if (now_ms() - t0 > 60000)
			stalled(c, "bursts of 64: %llu of %llu after 60 s", (unsigned long long)next,
				 (unsigned long long)total);
	}
}

/* The smallest pool the core accepts (bufs = 4 * burst): what the backend
 * keeps for its own receiving must leave buffers to send from. Zero-copy
 * ping-pong, then a stream with more in flight than the pool holds. (udp's
 * reliable receive side once kept all 128 - its socket's lending stack and
 * the packet layer's delivery reserve, 64 each - and hpn_buf_get failed for
 * ever after the first poll.) */
static void test_small_pool(void **state)
{
	hpn_ep *c = make_bufs(128);
	hpn_peer_t p = dial(c);
	uint64_t t0 = now_ms();

	(void)state;
	for (uint64_t i = 0; i < 1000; i++) {
		struct hpn_msg m = {.len = 1000, .peer = p}, in;
		int r;

		while (hpn_buf_get_sized(c, m.len, &m.data)) {
			hpn_poll(c, NULL, 0);
			if (now_ms() - t0 > 60000)
				stalled(c, "small pool: no buffer to send #%llu from after 60 s", (unsigned long long)i);
		}
		fill(m.data, m.len, i);
		while ((r = hpn_send_zc_burst(c, &m, 1)) == -EAGAIN)
			wait_window(c);
		assert_int_equal(r, 1);
		while ((r = hpn_recv_burst(c, &in, 1)) == 0)
			if (now_ms() - t0 > 60000)
				stalled(c, "small pool: %llu of 1000 round trips after 60 s", (unsigned long long)i);
		assert_int_equal(r, 1);
		assert_int_equal(check(in.data, in.len), i);
		hpn_buf_put(c, in.data);
	}
	echo_run(c, p, 1000, 5000);
	small_bursts(c, p, 20000);
	print_message("bufs=128: 1000 zero-copy round trips, 5000 streamed echoes, 20000 small messages sent to it in "
		      "bursts of 64\n");
	bye(c);
}

/* Packet backends only: seeded loss, reordering and duplication on our
 * sends; every message still arrives once, in order (the echoes come back
 * over a clean direction). */
static void test_injected_loss(void **state)
{
	hpn_ep *c;
	hpn_peer_t p;

	(void)state;
	if (!getenv("CONF_PACKET"))
		skip();
	c = make("faults=loss:0.05/reorder:0.05/dup:0.01/seed:5");
	p = dial(c);
	echo_run(c, p, 3000, 2000);
	bye(c);
}

/* The server stops reading for three peer timeouts: slow, not dead. The
 * window closes, nobody is declared gone, and every echo comes after. */
static void test_slow_reader(void **state)
{
	hpn_ep *c = make(NULL);
	hpn_peer_t p = dial(c);
	char cmd[32];
	struct hpn_event ev;

	(void)state;
	uint64_t t0 = now_ms();

	snprintf(cmd, sizeof(cmd), "CMD:stall:%d", 3 * peer_timeout_ms);
	assert_int_equal(hpn_send(c, p, cmd, strlen(cmd)), 0);
	echo_run(c, p, 1000, 3000);
	/* The stall happened (the echoes could not all come before it
	 * ended), and the connection lived through it. */
	assert_true(now_ms() - t0 >= 3 * PEER_TIMEOUT_MS - 50);
	while (hpn_poll(c, &ev, 1) == 1)
		assert_int_not_equal(ev.type, HPN_EV_PEER_GONE);
	bye(c);
}

/* Nobody listens there: the connect fails within its timeout, clearly. */
static void test_connect_nobody(void **state)
{
	char to[96];
	const char *colon = strrchr(addr, ':');
	hpn_ep *c = make(NULL);
	hpn_peer_t p;
	uint64_t t0 = now_ms();
	int ret;

	(void)state;
	snprintf(to, sizeof(to), "%.*s:%d", (int)(colon - addr), addr, atoi(colon + 1) + 1);
	ret = hpn_connect(c, to, 1000, &p);
	print_message("connect to %s (nobody): %d (%s) after %llu ms\n", to, ret, hpn_last_error(),
		      (unsigned long long)(now_ms() - t0));
	assert_true(ret == -ETIMEDOUT || ret == -ECONNREFUSED || ret == -EHOSTUNREACH);
	assert_true(now_ms() - t0 < 5000);
	done(c);
}

/* Last: the server dies mid-stream with no goodbye; we hear of it within
 * a few peer timeouts, and what it acked before is not our problem. */
static void test_peer_killed(void **state)
{
	hpn_ep *c = make(NULL);
	hpn_peer_t p = dial(c);
	struct hpn_event ev = {0};
	uint8_t data[100] = {0};
	uint64_t t0;

	(void)state;
	echo_run(c, p, 100, 100);
	assert_int_equal(hpn_send(c, p, "CMD:die", 7), 0);
	for (t0 = now_ms(); now_ms() - t0 < 10 * PEER_TIMEOUT_MS;) {
		struct hpn_msg in[8];
		int r = hpn_recv_burst(c, in, 8);

		for (int i = 0; i < r; i++)
			hpn_buf_put(c, in[i].data);
		if (hpn_poll(c, &ev, 1) == 1 && ev.type == HPN_EV_PEER_GONE)
			break;
		hpn_send(c, p, data, sizeof(data)); /* traffic to a dead peer: refused or lost */
		usleep(200);
	}
	print_message("peer gone after %llu ms (status %d)\n", (unsigned long long)(now_ms() - t0), ev.status);
	assert_int_equal(ev.type, HPN_EV_PEER_GONE);
	assert_int_equal(ev.peer, p);
	done(c);
}

/* ---- multicast (unordered mode) ------------------------------------------------- */

/* Publish COUNT messages of 200 B to GROUP, paced, then say goodbye. */
static int mpub(const char *group, int count)
{
	char full[512];
	uint8_t buf[200];
	hpn_ep *ep;
	hpn_peer_t p;

	snprintf(full, sizeof(full), "%s,unordered=on", cfg);
	if (hpn_ep_create(full, &ep) || hpn_connect(ep, group, 1000, &p)) {
		fprintf(stderr, "conformance mpub: %s\n", hpn_last_error());
		return 1;
	}
	for (int i = 0; i < count;) {
		fill(buf, sizeof(buf), (uint64_t)i);
		int r = hpn_send(ep, p, buf, sizeof(buf));

		if (r == 0)
			i++;
		else if (r != -EAGAIN) {
			fprintf(stderr, "conformance mpub: send: %s\n", hpn_last_error());
			return 1;
		}
		hpn_poll(ep, NULL, 0);
		if (!(i % 64))
			usleep(1000); /* a feed's pace, not a flood */
	}
	hpn_ep_destroy(ep);
	return 0;
}

/* Subscribe to GROUP; expect COUNT messages in increasing order, intact.
 * Exit 0 when at least 99% came (a lossless wire here), 1 otherwise. */
static int msub(const char *group, int count)
{
	char full[512];
	hpn_ep *ep;
	struct hpn_msg in[32];
	struct hpn_stats st;
	int64_t last = -1;
	int got = 0;
	uint64_t t0, quiet;

	snprintf(full, sizeof(full), "%s,unordered=on", cfg);
	if (hpn_ep_create(full, &ep) || hpn_listen(ep, group)) {
		fprintf(stderr, "conformance msub: %s\n", hpn_last_error());
		return 1;
	}
	printf("listening on %s\n", group);
	fflush(stdout);
	for (t0 = quiet = now_ms(); now_ms() - t0 < 20000 && got < count && (!got || now_ms() - quiet < 2000);) {
		int r = hpn_recv_wait(ep, in, 32, 10);

		hpn_poll(ep, NULL, 0);
		for (int i = 0; i < r; i++) {
			int64_t seq = (int64_t)check(in[i].data, in[i].len);

			if (seq <= last) {
				fprintf(stderr, "conformance msub: %lld after %lld: out of order\n", (long long)seq,
					(long long)last);
				return 1;
			}
			last = seq;
			got++;
			quiet = now_ms();
			hpn_buf_put(ep, in[i].data);
		}
	}
	hpn_ep_stats(ep, &st, sizeof(st));
	printf("received %d of %d from %s in order, intact (%llu counted as gaps)\n", got, count, group,
	       (unsigned long long)st.gaps);
	hpn_ep_destroy(ep);
	return got * 100 >= count * 99 ? 0 : 1;
}

/* 0 if the plugin can run here, else 77 (skip) with its reason. */
static int probe(const char *plugin)
{
	const struct hpn_plugin_info *list;
	int n = hpn_plugin_list(&list);

	for (int i = 0; i < n; i++)
		if (!strcmp(list[i].name, plugin)) {
			if (list[i].status == 0)
				return 0;
			printf("skip: plugin %s cannot run here: %s\n", plugin, list[i].reason);
			return 77;
		}
	printf("skip: plugin %s was not built (see meson's summary)\n", plugin);
	return 77;
}

/* CONF_SKIP=case,case: cases a test rig cannot hold (whoever sets it says
 * why, e.g. tests/conformance/meson.build); each is named as skipped. */
static bool listed(const char *list, const char *name)
{
	size_t len = strlen(name);

	for (const char *at = list; at && *at; at = strchr(at, ',') ? strchr(at, ',') + 1 : NULL)
		if (!strncmp(at, name, len) && (at[len] == ',' || !at[len]))
			return true;
	return false;
}

/* CONF_RETRY=1, on soft-RoCE's wire at 5% loss only: a case that fails
 * runs once more, on a fresh endpoint and connection, its first failure
 * left in the log above the retry. There the guest's rxe (6.1) at times
 * stops one direction of a queue pair for good - the receiving device
 * takes packets and answers none (docs/ARCHITECTURE.md, "The rdma
 * backend"); hpn reports the peer silent, correctly, and the case cannot
 * finish. A case that fails twice fails the run. The last case is not
 * retried: it ends the echo server. */
static int run_retrying(const struct CMUnitTest *run, size_t k)
{
	unsigned failed = 0, retried = 0;

	for (size_t i = 0; i < k; i++) {
		int r = _cmocka_run_group_tests(run[i].name, &run[i], 1, NULL, NULL);

		if (r && i + 1 < k) {
			printf("# %s failed: run once more on a fresh connection (CONF_RETRY: soft-RoCE stalls "
			       "under loss)\n", run[i].name);
			fflush(stdout);
			retried++;
			r = _cmocka_run_group_tests(run[i].name, &run[i], 1, NULL, NULL);
		}
		failed += r != 0;
	}
	printf("# %zu cases: %u failed, %u retried (CONF_RETRY)\n", k, failed, retried);
	return (int)failed;
}

static int run_cases(const struct CMUnitTest *all, size_t n, const char *skip)
{
	struct CMUnitTest *run = calloc(n, sizeof(*run));
	size_t k = 0;
	int ret;

	assert_non_null(run);
	for (size_t i = 0; i < n; i++) {
		if (listed(skip, all[i].name)) {
			printf("# %s: skipped here (CONF_SKIP)\n", all[i].name);
			continue;
		}
		run[k++] = all[i];
	}
	ret = getenv("CONF_RETRY") && !strcmp(getenv("CONF_RETRY"), "1") ? run_retrying(run, k)
									   : _cmocka_run_group_tests("conformance", run, k, NULL, NULL);
	free(run);
	return ret;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_sizes_in_order, teardown),
		cmocka_unit_test_teardown(test_receive_timestamps, teardown),
		cmocka_unit_test_teardown(test_bursts, teardown),
		cmocka_unit_test_teardown(test_zero_copy, teardown),
		cmocka_unit_test_teardown(test_zero_copy_counted, teardown),
		cmocka_unit_test_teardown(test_zero_copy_ownership, teardown),
		cmocka_unit_test_teardown(test_reader_holds_buffers, teardown),
		cmocka_unit_test_teardown(test_small_pool, teardown),
		cmocka_unit_test_teardown(test_bad_arguments, teardown),
		cmocka_unit_test_teardown(test_injected_loss, teardown),
		cmocka_unit_test_teardown(test_slow_reader, teardown),
		cmocka_unit_test_teardown(test_echo_after_idle, teardown),
		cmocka_unit_test_teardown(test_wake, teardown),
		cmocka_unit_test_teardown(test_connect_nobody, teardown),
		cmocka_unit_test_teardown(test_peer_killed, teardown),
	};

	if (getenv("CONF_PEER_TIMEOUT_MS") && atoi(getenv("CONF_PEER_TIMEOUT_MS")) > 0)
		peer_timeout_ms = atoi(getenv("CONF_PEER_TIMEOUT_MS")); /* server and client alike */
	if (argc == 3 && !strcmp(argv[1], "probe"))
		return probe(argv[2]);
	if (argc == 5 && (!strcmp(argv[1], "mpub") || !strcmp(argv[1], "msub"))) {
		cfg = argv[2];
		return !strcmp(argv[1], "mpub") ? mpub(argv[3], atoi(argv[4])) : msub(argv[3], atoi(argv[4]));
	}
	if (argc != 4 || (strcmp(argv[1], "serve") && strcmp(argv[1], "client"))) {
		fprintf(stderr, "usage: conformance serve|client CONFIG ADDR | mpub|msub CONFIG GROUP COUNT | "
				"probe PLUGIN\n");
		return 2;
	}
	cfg = argv[2];
	addr = argv[3];
	if (!strcmp(argv[1], "serve"))
		return serve();
	if (getenv("CONF_FILTER")) /* one case: CONF_FILTER=test_name (globs) */
		cmocka_set_test_filter(getenv("CONF_FILTER"));
	return run_cases(tests, sizeof(tests) / sizeof(tests[0]), getenv("CONF_SKIP"));
}
