/*
 * udp backend end to end on loopback, through the public API only. The
 * same cases run twice (meson: udp_e2e_raw, udp_e2e_reliable): over raw
 * datagrams (reliable=off) and over the packet layer (reliable=on); the few
 * that differ by mode say so.
 *
 * Most cases drive both endpoints from one thread in progress=inline mode
 * (pump() alternates between them), so they are deterministic and need no
 * sleeps; the progress-thread cases run the real threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hpn/hpn.h>

#include "../e2e.h"
#include "packet/wire.h" /* to speak the reliable layer's protocol by hand */
#include "../handmade.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline hpn_peer_t connect_pair(hpn_ep *s, hpn_ep *c, const char *addr, hpn_peer_t *srv_side)
{
	return connect_pair_ms(s, c, addr, srv_side, 3000);
}

static char BASE_CFG[128] = "plugin=udp,hugepages=off,mlock=off,bufs=512";
static int reliable; /* UDP_E2E_RELIABLE=1: the packet layer's run */

/* Set when the running case asks for a progress thread: main() checks it
 * against threaded_cases, the list the ThreadSanitizer build runs. */
static bool threads_asked;

static int e2e_ep_create(const char *cfg, hpn_ep **ep)
{
	threads_asked |= cfg && strstr(cfg, "progress=thread") != NULL;
	return hpn_ep_create(cfg, ep);
}
#define hpn_ep_create e2e_ep_create

static hpn_ep *e2e_make_seen(const char *base, const char *extra)
{
	threads_asked |= (base && strstr(base, "progress=thread")) || (extra && strstr(extra, "progress=thread"));
	return e2e_make(base, extra);
}
#define e2e_make e2e_make_seen

static hpn_ep *make(const char *extra)
{
	char base[sizeof(BASE_CFG)];

	if (!extra || !strstr(extra, "bufs="))
		return e2e_make(BASE_CFG, extra);
	/* The case sizes its own pool. */
	snprintf(base, sizeof(base), "plugin=udp,hugepages=off,mlock=off,reliable=%s", reliable ? "on" : "off");
	return e2e_make(base, extra);
}

static hpn_ep *make_server(const char *extra, char *addr, size_t len)
{
	hpn_ep *ep = make(extra);

	assert_int_equal(hpn_listen(ep, "127.0.0.1:0"), 0);
	assert_int_equal(hpn_ep_local_addr(ep, addr, len), 0);
	return ep;
}
/* Message content: seq, then bytes derived from seq, so corruption,
 * truncation and reordering are all visible. */
/* ---- tests ------------------------------------------------------------- */

static void test_many_in_order(void **state)
{
	char addr[64];
	hpn_ep *s = make_server(NULL, addr, sizeof(addr));
	hpn_ep *c = make(NULL);
	hpn_peer_t p = connect_pair(s, c, addr, NULL);
	const uint64_t total = 200000;
	uint64_t sent = 0, next = 0;
	uint8_t msgbuf[32][128];
	struct hpn_msg out[32], in[32];
	struct hpn_stats st;

	(void)state;
	while (next < total) {
		/* Keep at most 256 in flight so the socket buffer never drops. */
		if (sent - next < 256 && sent < total) {
			unsigned n = 0;

			for (; n < 32 && sent + n < total; n++) {
				uint32_t len = 8 + (uint32_t)((sent + n) % 120);

				fill(msgbuf[n], len, sent + n);
				out[n] = (struct hpn_msg){.data = msgbuf[n], .len = len, .peer = p};
			}
			int r = hpn_send_burst(c, out, n);

			if (!(r > 0 || r == -EAGAIN))
				fail_msg("send: %d %s", r, hpn_last_error());
			if (r > 0)
				sent += (uint64_t)r;
		}
		/* Inline progress: the sender is driven too (hpn.h) - what its
		 * congestion window holds back goes out from its calls. */
		hpn_poll(c, NULL, 0);
		int r = hpn_recv_burst(s, in, 32);

		assert_true(r >= 0);
		for (int i = 0; i < r; i++) {
			assert_int_equal(in[i].len, 8 + next % 120);
			assert_int_equal(check(in[i].data, in[i].len), next);
			next++;
			hpn_buf_put(s, in[i].data);
		}
	}
	hpn_ep_stats(c, &st, sizeof(st));
	assert_int_equal(st.msgs_out, total);
	hpn_ep_stats(s, &st, sizeof(st));
	assert_int_equal(st.msgs_in, total);
	assert_int_equal(st.drops, 0);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

/* Runs of equal-size messages go out as UDP GSO super-datagrams and may
 * come back coalesced (UDP_GRO); every combination must deliver each
 * message once, in order, intact, with bursts larger and smaller than the
 * coalesced runs. */
static void run_equal_sizes(const char *cfg, uint32_t len)
{
	char addr[64];
	hpn_ep *s = make_server(cfg, addr, sizeof(addr));
	hpn_ep *c = make(cfg);
	hpn_peer_t p = connect_pair(s, c, addr, NULL);
	static uint8_t data[64][1500];
	struct hpn_msg out[64], in[7]; /* odd receive burst: splits runs */
	uint64_t sent = 0, next = 0, total = 20000;
	struct hpn_stats st;

	while (next < total) {
		if (sent - next < 512 && sent < total) {
			unsigned n = 0;

			for (; n < 64 && sent + n < total; n++) {
				fill(data[n], len, sent + n);
				out[n] = (struct hpn_msg){.data = data[n], .len = len, .peer = p};
			}
			int r = hpn_send_burst(c, out, n);

			assert_true(r > 0 || r == -EAGAIN);
			if (r > 0)
				sent += (uint64_t)r;
		}
		hpn_poll(c, NULL, 0); /* inline: the sender is driven too (hpn.h) */
		int r = hpn_recv_burst(s, in, 7);

		assert_true(r >= 0);
		for (int i = 0; i < r; i++) {
			assert_int_equal(in[i].len, len);
			assert_int_equal(check(in[i].data, in[i].len), next);
			next++;
			hpn_buf_put(s, in[i].data);
		}
	}
	hpn_ep_stats(s, &st, sizeof(st));
	assert_int_equal(st.msgs_in, total);
	assert_int_equal(st.drops, 0);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

/* A one-way raw stream (reliable=off: the receiver sends nothing back by
 * itself) for four peer timeouts: the sender's keepalive asks, nobody is
 * declared gone. (The sender once judged its peer by its own sending and
 * declared a live receiver dead after one timeout.) */
static void test_one_way_outlives_timeout(void **state)
{
	char addr[64];
	hpn_ep *s = make_server("peer_timeout_ms=300", addr, sizeof(addr));
	hpn_ep *c = make("peer_timeout_ms=300");
	hpn_peer_t p = connect_pair(s, c, addr, NULL);
	struct hpn_msg in[32];
	struct hpn_event ev;
	uint8_t buf[64] = {0};
	uint64_t t0 = now_ms(), got = 0;

	(void)state;
	while (now_ms() - t0 < 1200) {
		int r = hpn_send(c, p, buf, sizeof(buf));

		assert_true(r == 0 || r == -EAGAIN);
		hpn_poll(c, NULL, 0);
		r = hpn_recv_burst(s, in, 32);
		for (int i = 0; i < r; i++, got++)
			hpn_buf_put(s, in[i].data);
	}
	assert_true(got > 0);
	while (hpn_poll(c, &ev, 1) == 1)
		assert_int_not_equal(ev.type, HPN_EV_PEER_GONE);
	while (hpn_poll(s, &ev, 1) == 1)
		assert_int_not_equal(ev.type, HPN_EV_PEER_GONE);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

static void test_gso_gro(void **state)
{
	hpn_ep *ep = NULL;

	(void)state;
	if (reliable) {
		/* The stream reads datagrams one by one: no GRO. */
		assert_int_equal(hpn_ep_create("plugin=udp,gro=on", &ep), -EINVAL);
		assert_non_null(strstr(hpn_last_error(), "gro=on conflicts with reliable=on"));
		run_equal_sizes("gso=on", 64);
		run_equal_sizes("gso=off", 100);
		return;
	}
	run_equal_sizes("gso=on,gro=on", 64);
	run_equal_sizes("gso=on,gro=on", 1448); /* a whole Ethernet payload with the header */
	run_equal_sizes("gso=on,gro=off", 100);
	run_equal_sizes("gso=off,gro=on", 100);
	run_equal_sizes("gso=off,gro=off", 100);
	/* Above the GSO segment limit messages go one datagram each. */
	run_equal_sizes("gso=on,gro=on", 1449);
}

static void test_bursts_and_sizes(void **state)
{
	char addr[64];
	hpn_ep *s = make_server(NULL, addr, sizeof(addr));
	hpn_ep *c = make(NULL);
	hpn_peer_t p = connect_pair(s, c, addr, NULL);
	const uint32_t max = hpn_ep_caps(c)->max_msg_size;
	static const uint32_t sizes[] = {0, 1, 7, 8, 64, 1000, 1464, 1465, 9000, 32768, 65483};
	struct hpn_msg out[11], in[16];
	static uint8_t bufs[11][65536];
	unsigned got = 0;

	(void)state;
	/* Raw: the IPv4 datagram limit minus the packet header (24 bytes);
	 * reliable: fragments up to the buffer size. */
	assert_int_equal(max, reliable ? 65536 : 65483);
	for (unsigned i = 0; i < 11; i++) {
		fill(bufs[i], sizes[i], i);
		out[i] = (struct hpn_msg){.data = bufs[i], .len = sizes[i], .peer = p};
	}
	/* One call, eleven datagrams, up to the IPv4 limit. */
	assert_int_equal(hpn_send_burst(c, out, 11), 11);
	for (uint64_t t0 = now_ms(); got < 11 && now_ms() - t0 < 3000;) {
		int r = hpn_recv_burst(s, in, 16);

		for (int i = 0; i < r; i++, got++) {
			assert_int_equal(in[i].len, sizes[got]);
			if (sizes[got] >= 8)
				assert_int_equal(check(in[i].data, in[i].len), got);
			hpn_buf_put(s, in[i].data);
		}
	}
	assert_int_equal(got, 11);
	/* Oversize: a clear -EMSGSIZE, nothing sent; a burst stops before it. */
	out[0] = (struct hpn_msg){.data = bufs[0], .len = max + 1, .peer = p};
	assert_int_equal(hpn_send_burst(c, out, 1), -EMSGSIZE);
	assert_int_equal(hpn_send(c, p, bufs[0], max + 1), -EMSGSIZE);
	out[0] = (struct hpn_msg){.data = bufs[0], .len = 10, .peer = p};
	out[1] = (struct hpn_msg){.data = bufs[1], .len = max + 1, .peer = p};
	assert_int_equal(hpn_send_burst(c, out, 2), 1);
	/* Unknown peer ids are refused, not sent anywhere. */
	assert_int_equal(hpn_send(c, p ^ 0x5a5a0000u, bufs[0], 10), -ENOTCONN);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

static void test_copy_recv_keeps_message(void **state)
{
	char addr[64], small[4], big[100];
	hpn_ep *s = make_server(NULL, addr, sizeof(addr));
	hpn_ep *c = make(NULL);
	hpn_peer_t p = connect_pair(s, c, addr, NULL), from = HPN_PEER_NONE;
	int r;

	(void)state;
	assert_int_equal(hpn_send(c, p, "hello, world", 12), 0);
	do {
		r = hpn_recv(s, &from, small, sizeof(small));
	} while (r == -EAGAIN);
	/* Too small: refused, and the message is still there. */
	assert_int_equal(r, -EMSGSIZE);
	assert_int_equal(hpn_recv(s, &from, big, sizeof(big)), 12);
	assert_memory_equal(big, "hello, world", 12);
	assert_int_not_equal(from, HPN_PEER_NONE);
	assert_int_equal(hpn_recv(s, &from, big, sizeof(big)), -EAGAIN);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

static void test_zero_copy_no_leak(void **state)
{
	char addr[64];
	hpn_ep *s = make_server(NULL, addr, sizeof(addr));
	hpn_ep *c = make(NULL);
	hpn_peer_t p = connect_pair(s, c, addr, NULL);
	void *all[600];
	int n = 0;

	(void)state;
	assert_true(hpn_buf_size(c) >= 65536);
	for (int round = 0; round < 2000; round++) {
		struct hpn_msg m, in;
		void *b;

		assert_int_equal(hpn_buf_get(c, &b), 0);
		fill(b, 256, (uint64_t)round);
		m = (struct hpn_msg){.data = b, .len = 256, .peer = p};
		assert_int_equal(hpn_send_zc_burst(c, &m, 1), 1);
		/* Ownership went to the library: do not touch b again. */
		int r;

		while ((r = hpn_recv_burst(s, &in, 1)) == 0)
			;
		assert_int_equal(r, 1);
		assert_int_equal(check(in.data, in.len), (uint64_t)round);
		/* Echo the received buffer back without copying (in.peer is
		 * the client, as received). */
		assert_int_equal(hpn_send_zc_burst(s, &in, 1), 1);
		while ((r = hpn_recv_burst(c, &in, 1)) == 0)
			;
		assert_int_equal(check(in.data, in.len), (uint64_t)round);
		hpn_buf_put(c, in.data);
	}
	/* Every buffer came back: the pool is whole again (bufs=512, minus the
	 * receive buffers the backend keeps posted; reliable: the packet
	 * layer keeps bufs/8 for deliveries, and up to 64 more wait for
	 * datagrams to land in). */
	while (n < 600 && hpn_buf_get(c, &all[n]) == 0)
		n++;
	print_message("# %d of 512 buffers free after the run\n", n);
	assert_true(n >= 512 - 128);
	assert_true(n <= 512);
	assert_int_equal(hpn_buf_get(c, &all[599]), -ENOBUFS);
	for (int i = 0; i < n; i++)
		hpn_buf_put(c, all[i]);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

static void test_many_peers(void **state)
{
	enum { NC = 8 };
	char addr[64];
	/* A client connected early is not driven while the others connect:
	 * on a loaded host that can take longer than the 1 s default. */
	hpn_ep *s = make_server("peer_timeout_ms=10000", addr, sizeof(addr));
	hpn_ep *c[NC];
	hpn_peer_t cp[NC], sp[NC];
	int seen[NC] = {0};

	(void)state;
	for (int i = 0; i < NC; i++) {
		c[i] = make("peer_timeout_ms=10000");
		cp[i] = connect_pair(s, c[i], addr, &sp[i]);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(sp[i], sp[j]);
	}
	for (int i = 0; i < NC; i++) {
		for (int k = 0; k < 50; k++) {
			uint8_t msg[2] = {(uint8_t)i, (uint8_t)k};

			assert_int_equal(hpn_send(c[i], cp[i], msg, 2), 0);
		}
	}
	for (int total = 0, spins = 0; total < NC * 50; spins++) {
		struct hpn_msg in[32];
		int r = hpn_recv_burst(s, in, 32);

		/* The senders are inline endpoints: a datagram lost on a busy
		 * host is resent only when they are driven. */
		for (int i = 0; !(spins & 63) && i < NC; i++)
			hpn_poll(c[i], NULL, 0);
		if (spins > 50000000)
			fail_msg("%d of %d messages", total, NC * 50);

		for (int k = 0; k < r; k++, total++) {
			const uint8_t *m = in[k].data;

			/* The message names its sender: the peer id must agree. */
			assert_int_equal(in[k].peer, sp[m[0]]);
			assert_int_equal(m[1], seen[m[0]]++);
			/* Answer each peer with its own index. */
			if (m[1] == 49)
				assert_int_equal(hpn_send(s, in[k].peer, m, 1), 0);
			hpn_buf_put(s, in[k].data);
		}
	}
	for (int i = 0; i < NC; i++) {
		char buf[8];
		hpn_peer_t from;
		int r;

		while ((r = hpn_recv(c[i], &from, buf, sizeof(buf))) == -EAGAIN)
			hpn_poll(s, NULL, 0); /* its answer may need resending */
		assert_int_equal(r, 1);
		assert_int_equal(buf[0], i);
		assert_int_equal(from, cp[i]);
	}
	/* A peer that says goodbye is reported gone (status 0). */
	assert_int_equal(hpn_disconnect(c[3], cp[3]), 0);
	struct hpn_event ev = wait_event(s, HPN_EV_PEER_GONE, NULL, 0, 3000);

	assert_int_equal(ev.peer, sp[3]);
	assert_int_equal(ev.status, 0);
	assert_int_equal(hpn_send(s, sp[3], "x", 1), -ENOTCONN);
	/* Destroying an endpoint says goodbye too. */
	hpn_ep_destroy(c[5]);
	ev = wait_event(s, HPN_EV_PEER_GONE, NULL, 0, 3000);
	assert_int_equal(ev.peer, sp[5]);
	for (int i = 0; i < NC; i++)
		if (i != 5)
			hpn_ep_destroy(c[i]);
	hpn_ep_destroy(s);
}

/* A stream that ends with a goodbye leaves nothing counted as dropped:
 * its last packets (the final ACK, a BYE repeat) reach a side that has
 * let the peer go, and are expected - counted as drops, every hpnbench
 * server said "dropped 1-4 datagrams" after a clean run. */
static void test_goodbye_no_drops(void **state)
{
	char addr[64], buf[8];
	hpn_ep *s = make_server(NULL, addr, sizeof(addr));
	hpn_ep *c = make(NULL);
	hpn_peer_t sp, from, p = connect_pair(s, c, addr, &sp);
	struct hpn_stats st;
	struct hpn_msg in[8];
	uint64_t got = 0, t0;
	int r;

	(void)state;
	for (int i = 0; i < 100; i++)
		while (hpn_send(c, p, "ping", 4) == -EAGAIN)
			hpn_poll(c, NULL, 0);
	for (t0 = now_ms(); got < 100 && now_ms() - t0 < 5000;) {
		r = hpn_recv_burst(s, in, 8);
		for (int i = 0; i < r; i++, got++)
			hpn_buf_put(s, in[i].data);
		hpn_poll(c, NULL, 0);
	}
	assert_int_equal(got, 100);
	assert_int_equal(hpn_send(s, sp, "pong", 4), 0);
	while ((r = hpn_recv(c, &from, buf, sizeof(buf))) == -EAGAIN)
		hpn_poll(s, NULL, 0);
	assert_int_equal(r, 4);
	hpn_ep_destroy(c); /* says goodbye */
	wait_event(s, HPN_EV_PEER_GONE, NULL, 0, 3000);
	for (t0 = now_ms(); now_ms() - t0 < 300;) /* what comes after */
		hpn_poll(s, NULL, 0);
	hpn_ep_stats(s, &st, sizeof(st));
	assert_int_equal(st.drops, 0);
	hpn_ep_destroy(s);
}

/* A peer process killed without a goodbye: the next datagram to it draws
 * an ICMP port-unreachable, which must surface as peer-gone. */
static void test_peer_killed(void **state)
{
	char addr[64];
	hpn_ep *s = make_server("peer_timeout_ms=0", addr, sizeof(addr));
	struct hpn_event ev;
	pid_t pid;
	int status;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		hpn_ep *c;
		hpn_peer_t p;

		if (hpn_ep_create(BASE_CFG, &c) || hpn_connect(c, addr, 3000, &p))
			_exit(1);
		kill(getpid(), SIGKILL); /* no BYE, no cleanup */
		_exit(2);
	}
	ev = wait_event(s, HPN_EV_PEER_NEW, NULL, 0, 5000);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	/* Keep talking to the dead peer until the backend notices. */
	uint64_t t0 = now_ms();
	struct hpn_event gone = {0};

	while (now_ms() - t0 < 3000) {
		int r = hpn_send(s, ev.peer, "ping", 4);

		if (hpn_poll(s, &gone, 1) == 1 && gone.type == HPN_EV_PEER_GONE)
			break;
		assert_true(r == 0 || r == -EAGAIN || r == -ENOTCONN);
		usleep(1000);
	}
	assert_int_equal(gone.type, HPN_EV_PEER_GONE);
	assert_int_equal(gone.peer, ev.peer);
	assert_int_equal(gone.status, -ECONNREFUSED);
	hpn_ep_destroy(s);
}

/* recv() on a hand-made peer's socket while the endpoint (inline
 * progress) is driven; -1 after 3 s of nothing. */
static int recv_driving(hpn_ep *ep, int fd, void *buf, size_t len)
{
	uint64_t t0 = now_ms();
	ssize_t r;

	while ((r = recv(fd, buf, len, MSG_DONTWAIT)) < 0 && now_ms() - t0 < 3000)
		hpn_poll(ep, NULL, 0);
	return (int)r;
}

#define SEND(buf, len) assert_true(sendto(fd, buf, len, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)(len))

/* A hand-made peer's handshake from fd to s at to: HELLO, the COOKIE
 * back, its echo; returns s's PEER_NEW. */
static struct hpn_event hand_handshake(hpn_ep *s, int fd, struct sockaddr_in to, struct hpn_pkt hello)
{
	struct hpn_pkt ack;
	uint8_t b[256];
	size_t n = pkt(b, hello, NULL);
	int r;

	SEND(b, n);
	r = recv_driving(s, fd, b, sizeof(b));
	assert_int_equal(hpn_pkt_decode(b, (size_t)r, 65536, &ack), 0);
	assert_int_equal(ack.type, HPN_PKT_COOKIE);
	hello.type = HPN_PKT_COOKIE_ECHO;
	memcpy(hello.cookie, ack.cookie, sizeof(hello.cookie));
	n = pkt(b, hello, NULL);
	SEND(b, n);
	return wait_event(s, HPN_EV_PEER_NEW, NULL, 0, 3000);
}

/* reliable=off: a raw socket speaks the handshake by hand, sends garbage
 * and broken raw datagrams - each counted and dropped - and one good one,
 * then falls silent (its port stays open, so no ICMP): keepalive must time
 * it out. */
static void test_silent_peer_and_garbage(void **state)
{
	if (reliable)
		skip(); /* test_reliable_malformed is its twin */
	char addr[64];
	hpn_ep *s = make_server("peer_timeout_ms=300", addr, sizeof(addr));
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in to = {.sin_family = AF_INET};
	const struct hpn_pkt raw = {.type = HPN_PKT_DATA, .flags = HPN_PKT_F_RAW | HPN_PKT_F_UNRELIABLE,
				    .session = 0x5eed, .len = 2};
	/* The old raw wire (an 8-byte header): garbage now. */
	static const uint8_t old_hello[16] = {0xA5, 1, 2, 0, 8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
	/* (Its handshake says the raw mode: HELLO_ACK's flags.) */
	struct hpn_pkt hello = {.type = HPN_PKT_HELLO, .flags = HPN_PKT_F_RAW | HPN_PKT_F_UNRELIABLE, .session = 0x5eed,
				.first_seq = 100, .window = 16, .max_msg = 65536, .mtu = 65507};
	struct hpn_pkt bad;
	struct hpn_stats st;
	struct hpn_event ev;
	struct hpn_msg m;
	uint8_t b[256];
	uint64_t t0;
	size_t n;
	int r;

	(void)state;
	assert_true(fd >= 0);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_port = htons((uint16_t)atoi(strrchr(addr, ':') + 1));
	/* From a stranger: the old wire, a truncated header (2 malformed),
	 * then a well-formed raw datagram (not from a peer: dropped). */
	SEND(old_hello, sizeof(old_hello));
	n = pkt(b, raw, "hi");
	SEND(b, 10);
	SEND(b, n);
	/* The handshake, as for any packet-layer peer. */
	ev = hand_handshake(s, fd, to, hello);
	/* As the peer: a raw datagram with a checksum, with a sequence number,
	 * with a fragment flag, and a reliable DATA on this raw stream - each
	 * malformed - then a good one. */
	n = pkt(b, raw, "hi");
	b[20] = 1;
	SEND(b, n);
	n = pkt(b, (struct hpn_pkt){.type = HPN_PKT_DATA, .flags = raw.flags, .session = 0x5eed, .seq = 5, .len = 2},
		"hi");
	SEND(b, n);
	bad = raw;
	bad.flags |= HPN_PKT_F_BATCH;
	n = pkt(b, bad, "hi");
	SEND(b, n);
	n = pkt(b, (struct hpn_pkt){.type = HPN_PKT_DATA, .flags = HPN_PKT_F_UNRELIABLE, .session = 0x5eed,
				    .seq = 100, .len = 2}, "hi");
	SEND(b, n);
	n = pkt(b, raw, "ok");
	SEND(b, n);
	t0 = now_ms();
	while ((r = hpn_recv_burst(s, &m, 1)) == 0 && now_ms() - t0 < 3000)
		;
	assert_int_equal(r, 1);
	assert_int_equal(m.len, 2);
	assert_memory_equal(m.data, "ok", 2);
	hpn_buf_put(s, m.data);
	hpn_ep_stats(s, &st, sizeof(st));
	assert_int_equal(st.malformed, 2 + 4);
	assert_int_equal(st.drops, 3 + 4);
	assert_int_equal(st.msgs_in, 1);
	t0 = now_ms();
	struct hpn_event gone = wait_event(s, HPN_EV_PEER_GONE, NULL, 0, 3000);

	assert_int_equal(gone.peer, ev.peer);
	assert_int_equal(gone.status, -ETIMEDOUT);
	/* Within the configured time (plus polling slack), not much sooner. */
	assert_true(now_ms() - t0 >= 150);
	close(fd);
	hpn_ep_destroy(s);
}

/* ---- reliable=on only ---------------------------------------------------- */



/* A hand-made peer: garbage from a stranger, a handshake, then broken
 * packets of every kind - each counted and dropped, nothing delivered but
 * the one good message - and then silence, which times the peer out. */
static void test_reliable_malformed(void **state)
{
	char addr[64];
	hpn_ep *s;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in to = {.sin_family = AF_INET};
	uint8_t b[256];
	size_t n;
	struct hpn_pkt ack;
	struct hpn_stats st;
	struct hpn_event ev;
	struct hpn_msg m;
	uint64_t t0;
	int r;

	(void)state;
	if (!reliable)
		skip();
	s = make_server("peer_timeout_ms=300", addr, sizeof(addr));
	assert_true(fd >= 0);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_port = htons((uint16_t)atoi(strrchr(addr, ':') + 1));
	/* From a stranger: a truncated header, bad magic, bad version, a bad
	 * checksum (4 malformed), then a well-formed DATA (not from a peer). */
	n = pkt(b, (struct hpn_pkt){.type = HPN_PKT_DATA, .session = 7, .len = 2}, "hi");
	SEND(b, 10);
	b[0] ^= 0xff;
	SEND(b, n);
	b[0] ^= 0xff;
	b[1] = 9;
	SEND(b, n);
	b[1] = HPN_PKT_VERSION;
	b[n - 1] ^= 1;
	SEND(b, n);
	b[n - 1] ^= 1;
	SEND(b, n);
	/* A handshake in another mode (raw): the COOKIE says the listener's;
	 * an echo that keeps to its own mode is refused (a drop, no peer). */
	struct hpn_pkt raw = {.type = HPN_PKT_HELLO, .flags = HPN_PKT_F_RAW | HPN_PKT_F_UNRELIABLE, .session = 0x0dd,
			      .first_seq = 7, .window = 64, .max_msg = 65536, .mtu = 1472};

	n = pkt(b, raw, NULL);
	SEND(b, n);
	r = recv_driving(s, fd, b, sizeof(b));
	assert_int_equal(hpn_pkt_decode(b, (size_t)r, 65536, &ack), 0);
	assert_int_equal(ack.type, HPN_PKT_COOKIE);
	assert_int_equal(ack.flags, 0); /* reliable */
	raw.type = HPN_PKT_COOKIE_ECHO;
	memcpy(raw.cookie, ack.cookie, sizeof(raw.cookie));
	n = pkt(b, raw, NULL);
	SEND(b, n);
	for (int k = 0; k < 50; k++) {
		assert_int_equal(hpn_poll(s, &ev, 1), 0);
		usleep(1000);
	}
	/* The handshake: our session, our first sequence number 100. A HELLO
	 * gets a COOKIE and nothing else (no peer yet); its echo, the peer. */
	struct hpn_pkt hello = {.type = HPN_PKT_HELLO, .session = 0x5eed, .first_seq = 100, .window = 64,
				.max_msg = 65536, .mtu = 1472};

	n = pkt(b, hello, NULL);
	SEND(b, n);
	r = recv_driving(s, fd, b, sizeof(b));
	assert_int_equal(r, (int)n); /* no amplification */
	assert_int_equal(hpn_pkt_decode(b, (size_t)r, 65536, &ack), 0);
	assert_int_equal(ack.type, HPN_PKT_COOKIE);
	assert_int_equal(ack.session, 0x5eed);
	assert_int_equal(hpn_poll(s, &ev, 1), 0);
	hello.type = HPN_PKT_COOKIE_ECHO;
	memcpy(hello.cookie, ack.cookie, sizeof(hello.cookie));
	n = pkt(b, hello, NULL);
	SEND(b, n);
	ev = wait_event(s, HPN_EV_PEER_NEW, NULL, 0, 3000);
	r = (int)recv(fd, b, sizeof(b), 0);
	assert_int_equal(hpn_pkt_decode(b, (size_t)r, 65536, &ack), 0);
	assert_int_equal(ack.type, HPN_PKT_HELLO_ACK);
	assert_int_equal(ack.session, 0x5eed);
	/* As the peer: another session (stale), a length beyond the datagram,
	 * a fragment running past its total (malformed). (Packets that decode
	 * but contradict each other end the stream: test_reliable_contradiction.) */
	n = pkt(b, (struct hpn_pkt){.type = HPN_PKT_DATA, .session = 0xbad, .seq = 100, .len = 2}, "hi");
	SEND(b, n);
	n = pkt(b, (struct hpn_pkt){.type = HPN_PKT_DATA, .session = 0x5eed, .seq = 100, .len = 2}, "hi");
	b[16] = 10;
	hpn_pkt_seal(b, n);
	SEND(b, n);
	n = pkt(b, (struct hpn_pkt){.type = HPN_PKT_DATA, .flags = HPN_PKT_F_FRAG, .session = 0x5eed, .seq = 100,
				    .len = 2, .frag_total = 3, .frag_offset = 2}, "hi");
	SEND(b, n);
	/* And one good message, the only one delivered. */
	n = pkt(b, (struct hpn_pkt){.type = HPN_PKT_DATA, .session = 0x5eed, .seq = 100, .len = 5}, "hello");
	SEND(b, n);
	t0 = now_ms();
	while ((r = hpn_recv_burst(s, &m, 1)) == 0 && now_ms() - t0 < 3000)
		;
	assert_int_equal(r, 1);
	assert_int_equal(m.len, 5);
	assert_memory_equal(m.data, "hello", 5);
	assert_int_equal(m.peer, ev.peer);
	hpn_buf_put(s, m.data);
	hpn_ep_stats(s, &st, sizeof(st));
	assert_int_equal(st.malformed, 4 + 2);
	assert_int_equal(st.drops, 5 + 1 + 3);
	assert_int_equal(st.msgs_in, 1);
	/* Silence: gone within the configured 300 ms (plus polling slack). */
	t0 = now_ms();
	struct hpn_event gone = wait_event(s, HPN_EV_PEER_GONE, NULL, 0, 3000);

	assert_int_equal(gone.peer, ev.peer);
	assert_int_equal(gone.status, -ETIMEDOUT);
	assert_true(now_ms() - t0 >= 100);
	assert_true(now_ms() - t0 <= 1000);
	close(fd);
	hpn_ep_destroy(s);
}

/* A hand-made peer whose packets decode but contradict each other: a
 * message, then a first fragment that does not start at 0 (its sequence
 * number is acknowledged: the sender counts it delivered), then another
 * message. The stream cannot deliver every message in order any more:
 * the first is delivered, the third is not (it would arrive with the
 * second missing), and the peer is gone at once with -EPROTO - not kept
 * alive by its answers (it once went on, the message silently lost).
 * Three orders: in order; the third early (held in its receive buffer,
 * which once went to the reader after all); the peer's BYE first (the
 * stream once ended as a clean close, status 0). */
static void contradiction(int order)
{
	char addr[64];
	hpn_ep *s;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in to = {.sin_family = AF_INET};
	struct hpn_pkt hello = {.type = HPN_PKT_HELLO, .session = 0x5eed, .first_seq = 100, .window = 64,
				.max_msg = 65536, .mtu = 1472};
	struct hpn_stats st;
	struct hpn_event ev, gone;
	struct hpn_msg m;
	uint8_t b[3][256];
	size_t n[3];
	int r;

	s = make_server("peer_timeout_ms=5000", addr, sizeof(addr));
	assert_true(fd >= 0);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_port = htons((uint16_t)atoi(strrchr(addr, ':') + 1));
	ev = hand_handshake(s, fd, to, hello);
	n[0] = pkt(b[0], (struct hpn_pkt){.type = HPN_PKT_DATA, .session = 0x5eed, .seq = 100, .len = 5}, "first");
	n[1] = pkt(b[1], (struct hpn_pkt){.type = HPN_PKT_DATA, .flags = HPN_PKT_F_FRAG, .session = 0x5eed,
					  .seq = 101, .len = 2, .frag_total = 10, .frag_offset = 4}, "hi");
	n[2] = pkt(b[2], (struct hpn_pkt){.type = HPN_PKT_DATA, .session = 0x5eed, .seq = 102, .len = 5}, "third");
	if (order == 2) { /* goodbye after 101 first, then the data */
		uint8_t bye[64];
		size_t nb = pkt(bye, (struct hpn_pkt){.type = HPN_PKT_BYE, .session = 0x5eed, .seq = 102}, NULL);

		SEND(bye, nb);
		SEND(b[0], n[0]);
		SEND(b[1], n[1]);
	} else {
		SEND(b[0], n[0]);
		if (order == 1) {
			SEND(b[2], n[2]); /* held ahead of the hole */
			usleep(20000);
		}
		SEND(b[1], n[1]);
		if (order == 0)
			SEND(b[2], n[2]);
	}
	gone = wait_event(s, HPN_EV_PEER_GONE, NULL, 0, 3000); /* within 3 s: not the 5 s of silence */
	assert_int_equal(gone.peer, ev.peer);
	assert_int_equal(gone.status, -EPROTO);
	r = hpn_recv_burst(s, &m, 1);
	assert_int_equal(r, 1);
	assert_int_equal(m.len, 5);
	assert_memory_equal(m.data, "first", 5);
	hpn_buf_put(s, m.data);
	assert_int_equal(hpn_recv_burst(s, &m, 1), 0); /* not "third" */
	hpn_ep_stats(s, &st, sizeof(st));
	assert_int_equal(st.malformed, 1);
	assert_int_equal(st.msgs_in, 1);
	close(fd);
	hpn_ep_destroy(s);
}

static void test_reliable_contradiction(void **state)
{
	(void)state;
	if (!reliable)
		skip();
	for (int order = 0; order < 3; order++)
		contradiction(order);
}
#undef SEND

/* Stream a checksummed mix of sizes (1 B to 60 KiB: lone packets,
 * batches, fragments) from c to s under injected faults on both sides
 * (so data and acks suffer); every message must arrive exactly once, in
 * order, intact. Returns the sender's retransmissions. */
static uint64_t faulty_stream(const char *faults, uint64_t total)
{
	char addr[64], cfg[160];
	hpn_ep *s, *c;
	hpn_peer_t p;
	static uint8_t data[16][61440];
	struct hpn_msg out[16], in[32];
	uint64_t sent = 0, next = 0, t0 = now_ms();
	struct hpn_stats st;

	snprintf(cfg, sizeof(cfg), "faults=%s", faults);
	s = make_server(cfg, addr, sizeof(addr));
	c = make(cfg);
	p = connect_pair(s, c, addr, NULL);
	while (next < total) {
		if (sent < total) {
			unsigned k = 0;

			for (; k < 16 && sent + k < total; k++) {
				uint64_t q = sent + k;
				uint32_t len = q % 97 == 0 ? 1000 + (uint32_t)(q % 60000) : 8 + (uint32_t)(q % 300);

				fill(data[k], len, q);
				out[k] = (struct hpn_msg){.data = data[k], .len = len, .peer = p};
			}
			int r = hpn_send_burst(c, out, k);

			if (!(r > 0 || r == -EAGAIN))
				fail_msg("send: %d %s", r, hpn_last_error());
			if (r > 0)
				sent += (uint64_t)r;
		}
		int r = hpn_recv_burst(s, in, 32);

		assert_true(r >= 0);
		for (int i = 0; i < r; i++) {
			assert_int_equal(check(in[i].data, in[i].len), next);
			next++;
			hpn_buf_put(s, in[i].data);
		}
		hpn_poll(c, NULL, 0); /* an inline-mode sender must be driven */
		if (now_ms() - t0 > 60000)
			fail_msg("%s: %llu of %llu after 60 s", faults, (unsigned long long)next,
				 (unsigned long long)total);
	}
	hpn_ep_stats(s, &st, sizeof(st));
	assert_int_equal(st.msgs_in, total);
	assert_int_equal(st.gaps, 0);
	hpn_ep_stats(c, &st, sizeof(st));
	assert_int_equal(st.msgs_out, total);
	assert_int_equal(st.unacked, 0);
	print_message("faults %s: %llu messages in %llu ms, %llu retransmissions\n", faults,
		      (unsigned long long)total, (unsigned long long)(now_ms() - t0),
		      (unsigned long long)st.retransmits);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
	return st.retransmits;
}

static void test_reliable_faults(void **state)
{
	(void)state;
	if (!reliable)
		skip();
	/* No faults: no loss, but a retransmission is still possible when a
	 * thread of this shared machine stalls past the RTO: not asserted. */
	faulty_stream("none", 20000);
	assert_true(faulty_stream("loss:0.01/reorder:0.1/dup:0.02/corrupt:0.005/seed:1", 20000) > 0);
	assert_true(faulty_stream("loss:0.05/reorder:0.1/dup:0.02/corrupt:0.005/seed:2", 20000) > 0);
	assert_true(faulty_stream("loss:0.2/reorder:0.1/dup:0.02/delay:0.05/seed:3", 5000) > 0);
}

/* A peer frozen mid-stream (SIGSTOP: its socket stays open, so no ICMP
 * comes back, as with a dead host): the survivor keeps sending, and must
 * get peer-gone within the default timeout (1 s), with the messages the
 * peer never acknowledged counted, not silently lost. */
static void test_peer_frozen_mid_stream(void **state)
{
	char addr[64];
	hpn_ep *s;
	struct hpn_event ev, gone = {0};
	struct hpn_stats st;
	uint8_t data[200];
	uint64_t t0, sent = 0;
	pid_t pid;
	int status;

	(void)state;
	if (!reliable)
		skip(); /* raw mode: covered by test_silent_peer_and_garbage */
	s = make_server(NULL, addr, sizeof(addr));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		hpn_ep *c;
		hpn_peer_t p;
		struct hpn_msg m[32];

		if (hpn_ep_create(BASE_CFG, &c) || hpn_connect(c, addr, 3000, &p))
			_exit(1);
		for (;;) { /* echo until frozen */
			int r = hpn_recv_burst(c, m, 32);

			for (int i = 0; i < r; i++)
				hpn_buf_put(c, m[i].data);
		}
	}
	ev = wait_event(s, HPN_EV_PEER_NEW, NULL, 0, 5000);
	for (int i = 0; i < 1000; i++) { /* mid-stream: data flowing and acked */
		fill(data, sizeof(data), sent);
		if (hpn_send(s, ev.peer, data, sizeof(data)) == 0)
			sent++;
		hpn_poll(s, NULL, 0);
	}
	kill(pid, SIGSTOP);
	t0 = now_ms();
	while (now_ms() - t0 < 5000) {
		fill(data, sizeof(data), sent);
		int r = hpn_send(s, ev.peer, data, sizeof(data));

		if (r == 0)
			sent++;
		if (hpn_poll(s, &gone, 1) == 1 && gone.type == HPN_EV_PEER_GONE)
			break;
		assert_true(r == 0 || r == -EAGAIN || r == -ENOTCONN);
		usleep(200);
	}
	uint64_t took = now_ms() - t0;

	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(gone.type, HPN_EV_PEER_GONE);
	assert_int_equal(gone.peer, ev.peer);
	assert_int_equal(gone.status, -ETIMEDOUT);
	hpn_ep_stats(s, &st, sizeof(st));
	print_message("frozen peer: gone after %llu ms; %llu messages reported unacknowledged\n",
		      (unsigned long long)took, (unsigned long long)st.unacked);
	assert_true(took <= 1000 + 200); /* the default 1 s, plus polling slack */
	assert_true(st.unacked > 0);
	assert_true(st.unacked <= sent);
	hpn_ep_destroy(s);
}

/* Multicast (unordered mode) on loopback: one publisher, two subscribers
 * of the same group. Each subscriber hears the publisher as a new peer,
 * gets its messages in order, never twice, counts what it missed (5 %
 * injected loss on the publisher's sends), and sees it gone when it says
 * goodbye. Reliable mode refuses a group with a reason. */
static void test_multicast(void **state)
{
	const char *opts = "unordered=on,mcast_if=127.0.0.1";
	char group[64], cfg[160];
	hpn_ep *sub[2], *pub;
	hpn_peer_t p;
	struct hpn_event ev[2];
	struct hpn_msg in[32];
	uint8_t data[100];
	uint64_t got[2] = {0, 0}, last[2] = {0, 0}, t0;
	const uint64_t total = 5000;
	struct hpn_stats st;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);

	(void)state;
	if (!reliable)
		skip(); /* a packet-layer feature */
	/* A free port for the group. */
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	snprintf(group, sizeof(group), "239.255.77.%u:%u", 1 + (unsigned)getpid() % 250, ntohs(a.sin_port));
	for (int i = 0; i < 2; i++) {
		sub[i] = make(opts);
		if (hpn_listen(sub[i], group))
			fail_msg("subscribe %s: %s", group, hpn_last_error());
	}
	snprintf(cfg, sizeof(cfg), "%s,faults=loss:0.05/seed:9", opts);
	pub = make(cfg);
	assert_true(hpn_ep_caps(pub)->flags & HPN_CAP_MULTICAST);
	assert_int_equal(hpn_connect(pub, group, 1000, &p), 0); /* a group answers nobody: up at once */
	for (uint64_t q = 1; q <= total; q++) {
		fill(data, sizeof(data), q);
		assert_int_equal(hpn_send(pub, p, data, sizeof(data)), 0);
		for (int i = 0; i < 2; i++) {
			int r = hpn_recv_burst(sub[i], in, 32);

			for (int k = 0; k < r; k++) {
				uint64_t seq = check(in[k].data, in[k].len);

				assert_true(seq > last[i]); /* in order, never twice */
				last[i] = seq;
				got[i]++;
				hpn_buf_put(sub[i], in[k].data);
			}
		}
	}
	for (t0 = now_ms(); now_ms() - t0 < 300;)
		for (int i = 0; i < 2; i++) {
			int r = hpn_recv_burst(sub[i], in, 32);

			for (int k = 0; k < r; k++) {
				uint64_t seq = check(in[k].data, in[k].len);

				assert_true(seq > last[i]);
				last[i] = seq;
				got[i]++;
				hpn_buf_put(sub[i], in[k].data);
			}
		}
	for (int i = 0; i < 2; i++) {
		ev[i] = wait_event(sub[i], HPN_EV_PEER_NEW, NULL, 0, 1000);
		hpn_ep_stats(sub[i], &st, sizeof(st));
		print_message("subscriber %d: %llu of %llu, %llu gaps\n", i, (unsigned long long)got[i],
			      (unsigned long long)total, (unsigned long long)st.gaps);
		assert_true(got[i] > total * 9 / 10 && got[i] < total);
		/* Every message: delivered or counted missing (but for a lost
		 * first or last one: nothing tells of those). */
		assert_true(got[i] + st.gaps >= total - 2 && got[i] + st.gaps <= total);
	}
	/* Subscriber 1 hangs up on the publisher: it stays away (no new
	 * PEER_NEW, no messages), subscriber 0 still hears it. */
	assert_int_equal(hpn_disconnect(sub[1], ev[1].peer), 0);
	for (uint64_t q = total + 1; q <= total + 200; q++) {
		fill(data, sizeof(data), q);
		assert_int_equal(hpn_send(pub, p, data, sizeof(data)), 0);
	}
	for (t0 = now_ms(); now_ms() - t0 < 200;) {
		struct hpn_event other;
		int r = hpn_recv_burst(sub[1], in, 32);

		assert_int_equal(r, 0);
		assert_int_equal(hpn_poll(sub[1], &other, 1), 0);
		r = hpn_recv_burst(sub[0], in, 32);
		for (int k = 0; k < r; k++) {
			got[0]++;
			hpn_buf_put(sub[0], in[k].data);
		}
	}
	assert_true(got[0] > total * 9 / 10 + 150);
	hpn_ep_destroy(pub); /* says BYE to the group */
	struct hpn_event gone = wait_event(sub[0], HPN_EV_PEER_GONE, NULL, 0, 2000);

	assert_int_equal(gone.peer, ev[0].peer);
	for (int i = 0; i < 2; i++)
		hpn_ep_destroy(sub[i]);
	/* Reliable mode: a group has nobody to retransmit for it. */
	pub = make("mcast_if=127.0.0.1");
	assert_int_equal(hpn_connect(pub, group, 1000, &p), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "unordered"));
	hpn_ep_destroy(pub);
}

/* Closing right after sending, over a lossy link: hpn_disconnect and
 * hpn_ep_destroy linger until the data is acknowledged (the endpoint at
 * most 200 ms), so the receiver gets every message and then a clean
 * goodbye (status 0). */
static void test_close_after_send(void **state)
{
	(void)state;
	if (!reliable)
		skip(); /* raw datagrams promise nothing */
	for (int how = 0; how < 2; how++) {
		char addr[64];
		/* The server's own thread acks while this one is inside destroy. */
		hpn_ep *s = make_server("progress=thread", addr, sizeof(addr));
		/* 30 % loss and a sanitizer's pace: give destroy time to linger. */
		hpn_ep *c = make("faults=loss:0.3/seed:5,linger_ms=5000");
		hpn_peer_t p = connect_pair(s, c, addr, NULL);
		struct hpn_msg in[32];
		uint8_t data[300];
		uint64_t next = 0, t0;

		for (uint64_t q = 0; q < 100; q++) {
			fill(data, sizeof(data), q);
			assert_int_equal(hpn_send(c, p, data, sizeof(data)), 0);
		}
		if (how == 0) {
			assert_int_equal(hpn_disconnect(c, p), 0);
			assert_int_equal(hpn_send(c, p, data, sizeof(data)), -ENOTCONN);
		}
		for (t0 = now_ms(); next < 100 && now_ms() - t0 < 3000;) {
			if (how == 0)
				hpn_poll(c, NULL, 0); /* lingering is driven by progress */
			else if (c) {
				hpn_ep_destroy(c); /* lingers inside, at most 200 ms */
				c = NULL;
			}
			int r = hpn_recv_burst(s, in, 32);

			for (int i = 0; i < r; i++) {
				assert_int_equal(check(in[i].data, in[i].len), next);
				next++;
				hpn_buf_put(s, in[i].data);
			}
		}
		if (next != 100) {
			struct hpn_stats ss;

			hpn_ep_stats(s, &ss, sizeof(ss));
			fprintf(stderr, "server: in %llu drops %llu malformed %llu gaps %llu\n", (unsigned long long)ss.msgs_in,
				(unsigned long long)ss.drops, (unsigned long long)ss.malformed, (unsigned long long)ss.gaps);
		}
		if (next != 100 && c) {
			struct hpn_stats cs;

			hpn_ep_stats(c, &cs, sizeof(cs));
			fprintf(stderr, "how %d: got %llu; client out %llu retransmits %llu errors %llu\n", how,
				(unsigned long long)next, (unsigned long long)cs.msgs_out,
				(unsigned long long)cs.retransmits, (unsigned long long)cs.errors);
		}
		assert_int_equal(next, 100);
		struct hpn_event gone = wait_event(s, HPN_EV_PEER_GONE, c ? &c : NULL, c ? 1 : 0, 3000);

		assert_int_equal(gone.status, 0);
		if (c)
			hpn_ep_destroy(c);
		hpn_ep_destroy(s);
	}
}

/* A peer process crashes and comes back on the same address: its new
 * HELLO (a new session) ends the old stream (-ECONNRESET) and starts a
 * new one; the old stream's data is not mixed into the new. */
static void test_peer_restart(void **state)
{
	char addr[64], me[64];
	hpn_ep *s, *c2;
	struct hpn_event ev, gone, ev2;
	struct hpn_msg m;
	hpn_peer_t p2;
	int fd = socket(AF_INET, SOCK_DGRAM, 0), status, r;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	pid_t pid;

	(void)state;
	if (!reliable)
		skip(); /* raw mode: its own handshake, tested by test_simultaneous_open */
	s = make_server(NULL, addr, sizeof(addr));
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	snprintf(me, sizeof(me), "127.0.0.1:%u", ntohs(a.sin_port));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		hpn_ep *c;
		hpn_peer_t p;

		if (hpn_ep_create(BASE_CFG, &c) || hpn_listen(c, me) || hpn_connect(c, addr, 3000, &p) ||
		    hpn_send(c, p, "old", 3))
			_exit(1);
		usleep(100000);
		kill(getpid(), SIGKILL); /* no BYE */
		_exit(2);
	}
	ev = wait_event(s, HPN_EV_PEER_NEW, NULL, 0, 5000);
	for (uint64_t t0 = now_ms(); (r = hpn_recv_burst(s, &m, 1)) == 0 && now_ms() - t0 < 3000;)
		;
	assert_int_equal(r, 1);
	assert_memory_equal(m.data, "old", 3);
	hpn_buf_put(s, m.data);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* The new incarnation, same address. */
	c2 = make(NULL);
	assert_int_equal(hpn_listen(c2, me), 0);
	assert_int_equal(hpn_connect(c2, addr, 0, &p2), -EINPROGRESS);
	gone = wait_event(s, HPN_EV_PEER_GONE, &c2, 1, 3000);
	assert_int_equal(gone.peer, ev.peer);
	assert_int_equal(gone.status, -ECONNRESET);
	ev2 = wait_event(s, HPN_EV_PEER_NEW, &c2, 1, 3000);
	assert_int_not_equal(ev2.peer, ev.peer);
	wait_event(c2, HPN_EV_CONNECTED, &s, 1, 3000);
	assert_int_equal(hpn_send(c2, p2, "new", 3), 0);
	for (uint64_t t0 = now_ms(); (r = hpn_recv_burst(s, &m, 1)) == 0 && now_ms() - t0 < 3000;)
		;
	assert_int_equal(r, 1);
	assert_memory_equal(m.data, "new", 3);
	assert_int_equal(m.peer, ev2.peer);
	hpn_buf_put(s, m.data);
	hpn_ep_destroy(c2);
	hpn_ep_destroy(s);
}

/* 1 MiB messages (max_msg=1m beside the default 64 KiB buffers: 728
 * fragments of an Ethernet-sized datagram, and a window grown to carry
 * them) at 1 % loss with reordering: each arrives whole, in order,
 * intact, reassembled in a buffer of the large class. */
static void test_one_mib_messages(void **state)
{
	const char *cfg = "max_msg=1m,faults=loss:0.01/reorder:0.05/seed:11";
	char addr[64];
	hpn_ep *s, *c;
	hpn_peer_t p;
	static uint8_t data[1 << 20];
	struct hpn_msg in[4];
	uint64_t sent = 0, next = 0, t0 = now_ms();
	const uint64_t total = 20;

	(void)state;
	if (!reliable)
		skip(); /* raw datagrams stop at 64 KiB */
	s = make_server(cfg, addr, sizeof(addr));
	c = make(cfg);
	p = connect_pair(s, c, addr, NULL);
	assert_int_equal(hpn_ep_caps(c)->max_msg_size, 1 << 20);
	assert_int_equal(hpn_buf_size(c), 65536); /* memory follows the message */
	while (next < total && now_ms() - t0 < 120000) {
		if (sent < total) {
			fill(data, sizeof(data), sent);
			int r = hpn_send(c, p, data, sizeof(data));

			if (r == 0)
				sent++;
			else if (r != -EAGAIN)
				fail_msg("send: %d %s", r, hpn_last_error());
		}
		int r = hpn_recv_burst(s, in, 4);

		for (int i = 0; i < r; i++) {
			assert_int_equal(in[i].len, 1 << 20);
			assert_int_equal(check(in[i].data, in[i].len), next);
			next++;
			hpn_buf_put(s, in[i].data);
		}
		hpn_poll(c, NULL, 0);
	}
	assert_int_equal(next, total);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

/* The large class is small (large_bufs=2 here): a reader that holds its
 * large messages stops the next ones at the window - they wait,
 * acknowledged or not yet sent, and nothing is lost or dropped - until it
 * gives the buffers back. Zero-copy sends take large buffers too
 * (hpn_buf_get_sized), and progress=thread copies large sends into them. */
static void large_class_held(const char *client_extra)
{
	char addr[64], cfg[128];
	hpn_ep *s, *c;
	hpn_peer_t p;
	struct hpn_msg in[8], held[2];
	struct hpn_stats st;
	static uint8_t data[1 << 20];
	unsigned sent = 0, got = 0, nheld = 0;
	const unsigned total = 6;
	uint64_t t0;
	void *buf;

	s = make_server("max_msg=1m,large_bufs=2", addr, sizeof(addr));
	snprintf(cfg, sizeof(cfg), "max_msg=1m%s", client_extra);
	c = make(cfg);
	p = connect_pair(s, c, addr, NULL);
	assert_int_equal(hpn_buf_get_sized(c, (2u << 20), &buf), -EMSGSIZE);
	for (t0 = now_ms(); now_ms() - t0 < 3000 && nheld < 2;) {
		if (sent < total) {
			int r;

			fill(data, sizeof(data), sent);
			if (strstr(client_extra, "thread")) {
				r = hpn_send(c, p, data, sizeof(data));
				r = r == 0 ? 1 : r;
			} else {
				struct hpn_msg m = {.data = NULL, .len = sizeof(data), .peer = p};

				if (hpn_buf_get_sized(c, sizeof(data), &m.data))
					goto poll;
				memcpy(m.data, data, sizeof(data));
				r = hpn_send_zc_burst(c, &m, 1);
				if (r != 1)
					hpn_buf_put(c, m.data);
			}
			if (r == 1)
				sent++;
			else if (r != 0 && r != -EAGAIN)
				fail_msg("send: %d %s", r, hpn_last_error());
		}
poll:
		if (nheld < 2) {
			int r = hpn_recv_burst(s, in, 8);

			for (int i = 0; i < r; i++) {
				assert_true(nheld < 2); /* no third buffer exists */
				assert_int_equal(check(in[i].data, in[i].len), got++);
				held[nheld++] = in[i];
			}
		}
		hpn_poll(c, NULL, 0);
	}
	assert_int_equal(nheld, 2);
	/* Holding both: nothing more can arrive, nobody gives up. */
	for (t0 = now_ms(); now_ms() - t0 < 300;) {
		assert_int_equal(hpn_recv_burst(s, in, 8), 0);
		hpn_poll(c, NULL, 0);
	}
	hpn_buf_put(s, held[0].data);
	hpn_buf_put(s, held[1].data);
	for (t0 = now_ms(); got < total && now_ms() - t0 < 10000;) {
		if (sent < total) {
			fill(data, sizeof(data), sent);
			if (hpn_send(c, p, data, sizeof(data)) == 0)
				sent++;
		}
		int r = hpn_recv_burst(s, in, 8);

		for (int i = 0; i < r; i++) {
			assert_int_equal(in[i].len, sizeof(data));
			assert_int_equal(check(in[i].data, in[i].len), got++);
			hpn_buf_put(s, in[i].data);
		}
		hpn_poll(c, NULL, 0);
	}
	assert_int_equal(got, total);
	hpn_ep_stats(s, &st, sizeof(st));
	assert_int_equal(st.drops, 0);
	assert_int_equal(st.errors, 0);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

static void test_large_class_held(void **state)
{
	(void)state;
	if (!reliable)
		skip(); /* raw datagrams stop at 64 KiB */
	large_class_held("");
	large_class_held(",progress=thread");
}

/* max_msg= that cannot be honoured is refused with the reason, never
 * lowered behind the caller's back. */
static void test_max_msg_refusals(void **state)
{
	static const struct {
		const char *cfg;
		int err;
		const char *why;
	} bad[] = {
		{"max_msg=2m", -EMSGSIZE, "mtu="},            /* 1449 packets > 1024 */
		{"max_msg=1m,window=256", -EMSGSIZE, "window"},
		{"max_msg=1m,buf_size=1024", -EINVAL, "buf_size >="},
		{"large_bufs=4", -EINVAL, "max_msg="},
	};
	hpn_ep *ep = NULL;
	char cfg[160];

	(void)state;
	if (!reliable) {
		snprintf(cfg, sizeof(cfg), "%s,max_msg=100000", BASE_CFG);
		assert_int_equal(hpn_ep_create(cfg, &ep), -EMSGSIZE);
		assert_non_null(strstr(hpn_last_error(), "raw (reliable=off) datagram carries at most 65483"));
		return;
	}
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(cfg, sizeof(cfg), "%s,%s", BASE_CFG, bad[i].cfg);
		assert_int_equal(hpn_ep_create(cfg, &ep), bad[i].err);
		assert_null(ep);
		if (!strstr(hpn_last_error(), bad[i].why))
			fail_msg("%s: \"%s\" does not say %s", bad[i].cfg, hpn_last_error(), bad[i].why);
	}
	/* A larger mtu carries it (loopback takes it). */
	snprintf(cfg, sizeof(cfg), "%s,max_msg=2m,mtu=9000", BASE_CFG);
	assert_int_equal(hpn_ep_create(cfg, &ep), 0);
	assert_int_equal(hpn_ep_caps(ep)->max_msg_size, 2u << 20);
	hpn_ep_destroy(ep);
}

/* Large messages through loss (issue 9): 256 KiB and 1 MiB at 1, 5 and
 * 20 % loss with reordering and duplication arrive exactly once, in order,
 * intact; the retransmissions stay within twice what the loss makes
 * necessary (every lost packet, retransmissions included, resent once). */
/* Datagrams the kernel dropped for a full receive buffer on the socket
 * bound to "host:port" (/proc/net/udp's last column): real loss, on top
 * of the injected loss, when the reader is slow (a sanitizer build). */
static uint64_t kernel_drops(const char *addr)
{
	const char *colon = strrchr(addr, ':');
	unsigned port = colon ? (unsigned)atoi(colon + 1) : 0, lport;
	unsigned long long drops, total = 0;
	char line[512];
	FILE *f = fopen("/proc/net/udp", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *last = strrchr(line, ' ');

		if (sscanf(line, " %*d: %*x:%x", &lport) == 1 && lport == port && last &&
		    sscanf(last, "%llu", &drops) == 1)
			total += drops;
	}
	fclose(f);
	return total;
}

static void large_under_loss(double loss, uint32_t size, unsigned total, unsigned seed, const char *extra)
{
	char cfg[160], addr[64];
	hpn_ep *s, *c;
	hpn_peer_t p;
	static uint8_t data[1 << 20];
	struct hpn_msg in[4];
	struct hpn_stats st;
	uint64_t sent = 0, next = 0, t0 = now_ms(), pkts = (uint64_t)total * (size / 1440 + 1);
	double need;

	snprintf(cfg, sizeof(cfg), "max_msg=1m,faults=loss:%.2f/reorder:0.05/dup:0.01/seed:%u%s",
		 loss, seed, extra);
	s = make_server(cfg, addr, sizeof(addr));
	c = make(cfg);
	p = connect_pair(s, c, addr, NULL);
	while (next < total) {
		if (sent < total) {
			fill(data, size, sent);
			int r = hpn_send(c, p, data, size);

			if (r == 0)
				sent++;
			else if (r != -EAGAIN)
				fail_msg("send: %d %s", r, hpn_last_error());
		}
		int r = hpn_recv_burst(s, in, 4);

		for (int i = 0; i < r; i++) {
			assert_int_equal(in[i].len, size);
			assert_int_equal(check(in[i].data, in[i].len), next);
			next++;
			hpn_buf_put(s, in[i].data);
		}
		hpn_poll(c, NULL, 0);
		if (now_ms() - t0 > 120000)
			fail_msg("%u B at %.0f%% loss: %llu of %u after 120 s", size, loss * 100,
				 (unsigned long long)next, total);
	}
	hpn_ep_stats(c, &st, sizeof(st));
	uint64_t kdrops = kernel_drops(addr);

	need = (double)pkts * loss / (1 - loss) + (double)kdrops;
	print_message("%7u B x %u at %2.0f%% loss%s: %llu ms, %llu retransmissions (%.0f lost data packets expected, "
		      "%llu of them dropped by a full socket buffer)\n",
		      size, total, loss * 100, extra, (unsigned long long)(now_ms() - t0),
		      (unsigned long long)st.retransmits, need, (unsigned long long)kdrops);
	/* Bounded with congestion control on (the default) and off, in every
	 * build, ThreadSanitizer's too (a process slowed 5-15x unevenly,
	 * where cc=on once made 306 retransmissions for 44 losses). */
	assert_true((double)st.retransmits <= 2 * need + 64);
	assert_int_equal(st.unacked, 0);
	hpn_ep_stats(s, &st, sizeof(st));
	assert_int_equal(st.msgs_in, total);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

static void test_large_messages_under_loss(void **state)
{
	(void)state;
	if (!reliable)
		skip(); /* raw datagrams stop at 64 KiB */
	large_under_loss(0.01, 256 << 10, 16, 21, "");
	large_under_loss(0.01, 1 << 20, 6, 22, "");
	large_under_loss(0.01, 1 << 20, 6, 27, ",cc=off");
	large_under_loss(0.05, 256 << 10, 16, 23, "");
	large_under_loss(0.05, 1 << 20, 6, 24, "");
	large_under_loss(0.05, 256 << 10, 16, 28, ",cc=off");
	large_under_loss(0.20, 256 << 10, 8, 25, "");
	large_under_loss(0.20, 1 << 20, 3, 26, "");
}

/* A reader that stops reading for three peer timeouts (its progress
 * thread keeps acknowledging) is slow, not dead: the sender's window
 * closes, nobody is declared gone, and every message is there after. */
static void test_reader_stalls_three_timeouts(void **state)
{
	char addr[64];
	hpn_ep *s, *c;
	hpn_peer_t p;
	uint8_t data[1000];
	struct hpn_msg in[32];
	struct hpn_event ev;
	uint64_t sent = 0, next = 0, t0;
	unsigned again = 0;

	(void)state;
	if (!reliable)
		skip(); /* raw datagrams: a slow reader drops */
	s = make_server("progress=thread,peer_timeout_ms=300", addr, sizeof(addr));
	c = make("peer_timeout_ms=300");
	p = connect_pair(s, c, addr, NULL);
	for (t0 = now_ms(); now_ms() - t0 < 900;) { /* 3 x 300 ms: send, never read */
		fill(data, sizeof(data), sent);
		int r = hpn_send(c, p, data, sizeof(data));

		if (r == 0)
			sent++;
		else if (r == -EAGAIN)
			again++, usleep(100);
		else
			fail_msg("send: %d %s", r, hpn_last_error());
		if (hpn_poll(c, &ev, 1) == 1)
			fail_msg("client: event %d status %d", ev.type, ev.status);
	}
	assert_true(again > 0); /* the window closed */
	assert_int_equal(hpn_poll(s, &ev, 1), 0);
	for (t0 = now_ms(); next < sent && now_ms() - t0 < 10000;) {
		int r = hpn_recv_burst(s, in, 32);

		for (int i = 0; i < r; i++) {
			assert_int_equal(check(in[i].data, in[i].len), next);
			next++;
			hpn_buf_put(s, in[i].data);
		}
		hpn_poll(c, NULL, 0);
	}
	assert_int_equal(next, sent);
	assert_int_equal(hpn_poll(c, &ev, 1), 0);
	assert_int_equal(hpn_poll(s, &ev, 1), 0);
	print_message("%llu messages waited for a reader stalled 900 ms (%u sends refused meanwhile)\n",
		      (unsigned long long)sent, again);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

/* A peer sends, then dies; our reply draws an ICMP port unreachable
 * before we read what it sent: every message it sent is still delivered,
 * and the peer is gone (-ECONNREFUSED). Each of our ACKs to it bounces
 * too and fails our next receive: its last packets were once left unread
 * behind those, and lost with it (1 run in 10). */
static void test_killed_peer_data_kept(void **state)
{
	char addr[64];
	hpn_ep *s;
	struct hpn_event ev, gone = {0};
	struct hpn_msg m[16];
	uint64_t got = 0, t0;
	pid_t pid;
	int status;

	(void)state;
	if (!reliable)
		skip(); /* raw datagrams: no stream to keep */
	s = make_server("progress=inline", addr, sizeof(addr));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		hpn_ep *c;
		hpn_peer_t p;
		uint8_t data[64];

		if (hpn_ep_create(BASE_CFG, &c) || hpn_connect(c, addr, 3000, &p))
			_exit(1);
		for (uint64_t q = 0; q < 5; q++) {
			fill(data, sizeof(data), q);
			if (hpn_send(c, p, data, sizeof(data)))
				_exit(1);
		}
		kill(getpid(), SIGKILL); /* no BYE */
		_exit(2);
	}
	ev = wait_event(s, HPN_EV_PEER_NEW, NULL, 0, 5000);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(hpn_send(s, ev.peer, "x", 1), 0); /* draws the ICMP */
	usleep(20000);
	for (t0 = now_ms(); now_ms() - t0 < 3000 && gone.type != HPN_EV_PEER_GONE;) {
		int r = hpn_recv_burst(s, m, 16);

		for (int i = 0; i < r; i++) {
			assert_int_equal(check(m[i].data, m[i].len), got);
			got++;
			hpn_buf_put(s, m[i].data);
		}
		if (hpn_poll(s, &gone, 1) != 1)
			gone.type = 0;
	}
	/* Messages received before the peer went stay readable after its
	 * PEER_GONE (hpn.h): the two are separate queues. */
	for (int r; (r = hpn_recv_burst(s, m, 16)) > 0;)
		for (int i = 0; i < r; i++) {
			assert_int_equal(check(m[i].data, m[i].len), got);
			got++;
			hpn_buf_put(s, m[i].data);
		}
	assert_int_equal(got, 5);
	assert_int_equal(gone.type, HPN_EV_PEER_GONE);
	assert_int_equal(gone.status, -ECONNREFUSED);
	hpn_ep_destroy(s);
}

/* Disconnect while data is still unacknowledged (the peer lingers,
 * hidden), and connect to the same address again at once: the new
 * connection is made, not refused as a duplicate. */
static void test_reconnect_while_closing(void **state)
{
	char addr[64];
	hpn_ep *s, *c;
	hpn_peer_t p, p2;
	uint8_t data[200] = {0};

	(void)state;
	if (!reliable)
		skip();
	s = make_server(NULL, addr, sizeof(addr));
	c = make("faults=loss:0.5/seed:3");
	p = connect_pair(s, c, addr, NULL);
	for (int i = 0; i < 50; i++)
		assert_int_equal(hpn_send(c, p, data, sizeof(data)), 0);
	assert_int_equal(hpn_disconnect(c, p), 0);
	assert_int_equal(hpn_connect(c, addr, 0, &p2), -EINPROGRESS);
	wait_event(c, HPN_EV_CONNECTED, &s, 1, 3000);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

/* unordered=on: sequenced but unreliable. Under loss the receiver sees
 * messages in order, never twice, and counts what it never got. */
static void test_unordered_gaps(void **state)
{
	char addr[64];
	hpn_ep *s, *c;
	hpn_peer_t p;
	uint8_t data[64];
	struct hpn_msg in[32];
	uint64_t got = 0, last = 0, t0;
	struct hpn_stats st;
	const uint64_t total = 20000;

	(void)state;
	if (!reliable)
		skip();
	s = make_server("unordered=on", addr, sizeof(addr));
	c = make("unordered=on,faults=loss:0.05/reorder:0.05/dup:0.02/seed:4");
	p = connect_pair(s, c, addr, NULL);
	for (uint64_t q = 1; q <= total; q++) {
		fill(data, sizeof(data), q);
		while (hpn_send(c, p, data, sizeof(data)) == -EAGAIN)
			;
		if (q % 16 == 0) {
			int r = hpn_recv_burst(s, in, 32);

			for (int i = 0; i < r; i++) {
				uint64_t seq = check(in[i].data, in[i].len);

				assert_true(seq > last); /* in order, no duplicate */
				last = seq;
				got++;
				hpn_buf_put(s, in[i].data);
			}
		}
	}
	for (t0 = now_ms(); now_ms() - t0 < 200;) {
		int r = hpn_recv_burst(s, in, 32);

		for (int i = 0; i < r; i++) {
			uint64_t seq = check(in[i].data, in[i].len);

			assert_true(seq > last);
			last = seq;
			got++;
			hpn_buf_put(s, in[i].data);
		}
	}
	hpn_ep_stats(s, &st, sizeof(st));
	print_message("unordered at 5%% loss: %llu of %llu delivered, %llu gaps\n", (unsigned long long)got,
		      (unsigned long long)total, (unsigned long long)st.gaps);
	assert_int_equal(st.msgs_in, got);
	assert_true(got < total && got > total * 9 / 10);
	/* Every message is delivered or counted as a gap, except lost ones
	 * after the last delivery (nothing says they were sent). */
	assert_true(got + st.gaps <= total && got + st.gaps >= total - 50);
	hpn_ep_stats(c, &st, sizeof(st));
	assert_int_equal(st.retransmits, 0);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

static void test_connect_errors(void **state)
{
	hpn_ep *c = make(NULL);
	hpn_peer_t p;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	char dead[64];
	int ret;

	(void)state;
	/* A port nobody listens on: bind one, note it, close it. */
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	snprintf(dead, sizeof(dead), "127.0.0.1:%u", ntohs(a.sin_port));
	ret = hpn_connect(c, dead, 2000, &p);
	assert_int_equal(ret, -ECONNREFUSED);
	assert_non_null(strstr(hpn_last_error(), dead));
	assert_int_equal(hpn_connect(c, "no-port", 100, &p), -EINVAL);
	assert_int_equal(hpn_connect(c, "0.0.0.0:0", 100, &p), -EINVAL); /* once: the whole timeout */
	assert_non_null(strstr(hpn_last_error(), "not connected to"));
	assert_int_equal(hpn_connect(c, "no.such.host.invalid:1", 100, &p), -EHOSTUNREACH);
	assert_int_equal(hpn_listen(c, "127.0.0.1:0"), -EISCONN);
	hpn_ep_destroy(c);
}

/* A listen that fails (the port is taken) leaves the endpoint as it was:
 * no address, free to listen elsewhere (its socket once stayed behind,
 * and every later listen was refused -EISCONN, "it connected"). */
static void test_listen_after_failed_listen(void **state)
{
	hpn_ep *c = make(NULL);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	char taken[64], mine[64];

	(void)state;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	snprintf(taken, sizeof(taken), "127.0.0.1:%u", ntohs(a.sin_port));
	assert_int_equal(hpn_listen(c, taken), -EADDRINUSE);
	assert_int_equal(hpn_ep_local_addr(c, mine, sizeof(mine)), -ENOTCONN);
	assert_int_equal(hpn_listen(c, "127.0.0.1:0"), 0);
	assert_int_equal(hpn_ep_local_addr(c, mine, sizeof(mine)), 0);
	assert_string_not_equal(mine, taken);
	close(fd);
	hpn_ep_destroy(c);
}

/* Peers of two modes (reliable, unordered, raw) would connect and then drop
 * each other's every packet as malformed - it once did, silently. The
 * handshake says each side's mode: the connector gives up (-EPROTO, the
 * modes in the log), the listener keeps no peer. */
static void test_mode_mismatch(void **state)
{
	static const char *const modes[] = {"reliable=on", "reliable=off", "reliable=on,unordered=on"};
	char addr[64];
	hpn_ep *s = make_server(NULL, addr, sizeof(addr)), *c;
	struct hpn_event ev;
	hpn_peer_t p;

	(void)state;
	for (unsigned i = 0; i < 3; i++) {
		bool same = i == (reliable ? 0u : 1u);

		c = e2e_make("plugin=udp,hugepages=off,mlock=off,bufs=512", modes[i]);
		assert_int_equal(hpn_connect(c, addr, 0, &p), -EINPROGRESS);
		ev = wait_event(c, same ? HPN_EV_CONNECTED : HPN_EV_PEER_GONE, &s, 1, 3000);
		assert_int_equal(ev.peer, p);
		if (same) {
			ev = wait_event(s, HPN_EV_PEER_NEW, &c, 1, 3000);
			hpn_ep_destroy(c);
			wait_event(s, HPN_EV_PEER_GONE, NULL, 0, 3000);
			continue;
		}
		assert_int_equal(ev.status, -EPROTO);
		for (int k = 0; k < 50; k++) { /* its echoes, if any, are refused too */
			hpn_poll(c, NULL, 0);
			assert_int_equal(hpn_poll(s, &ev, 1), 0);
			usleep(1000);
		}
		hpn_ep_destroy(c);
	}
	/* And blocking: the reason in hpn_last_error(). */
	c = e2e_make("plugin=udp,hugepages=off,mlock=off,bufs=512,progress=thread", reliable ? "reliable=off" : "reliable=on");
	hpn_ep_destroy(s);
	s = make_server("progress=thread", addr, sizeof(addr));
	assert_int_equal(hpn_connect(c, addr, 3000, &p), -EPROTO);
	assert_non_null(strstr(hpn_last_error(), "another mode"));
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

static void test_config_errors(void **state)
{
	hpn_ep *ep = NULL;

	(void)state;
	assert_int_equal(hpn_ep_create("plugin=udp,rcvbuf=lots", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "rcvbuf"));
	/* Once accepted, and described as "pinned" with the pin failed. */
	assert_int_equal(hpn_ep_create("plugin=udp,progress=thread,cpu=4095", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "cpu=4095 is not a CPU this process may run on"));
	assert_int_equal(hpn_ep_create("plugin=udp,burst=0", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "burst"));
	assert_int_equal(hpn_ep_create("plugin=udp,bufs=16", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "bufs=16 too small"));
	assert_int_equal(hpn_ep_create("plugin=udp,progress=thread,bufs=512,ring_size=512", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "ring_size=512 too large"));
	/* ring_size unset follows the pool down to 64; below that the pool
	 * is named, with the least that works. */
	assert_int_equal(hpn_ep_create("plugin=udp,progress=thread,bufs=128", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "bufs=128 too small for progress=thread with burst=32"));
	assert_non_null(strstr(hpn_last_error(), "bufs >= 171"));
	/* The packet layer keeps a batch's worth (64) to deliver into and
	 * leaves as many to the application: fewer than 128 is refused (the
	 * core alone would take 64 with burst=16). */
	assert_int_equal(hpn_ep_create("plugin=udp,bufs=64,burst=16", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "bufs=64 too small for the packet layer"));
	assert_int_equal(hpn_ep_create("plugin=udp,progress=thread,hugepages=off,bufs=256", &ep), 0);
	hpn_ep_destroy(ep);
	ep = NULL;
	assert_int_equal(hpn_ep_create("plugin=udp,progress=sideways", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "progress"));
	assert_null(ep);
	/* The environment overrides the string. */
	setenv("HPN_BUF_SIZE", "2048", 1);
	assert_int_equal(hpn_ep_create("plugin=udp,hugepages=off,buf_size=65536", &ep), 0);
	unsetenv("HPN_BUF_SIZE");
	assert_int_equal(hpn_ep_caps(ep)->max_msg_size, 2048);
	hpn_ep_destroy(ep);
}

/* Both sides listen and connect to each other at once: one session each
 * side, both CONNECTED, and keepalives keep it alive past the timeout. */
static void test_simultaneous_open(void **state)
{
	char aa[64], ba[64];
	hpn_ep *a = make_server("peer_timeout_ms=400", aa, sizeof(aa));
	hpn_ep *b = make_server("peer_timeout_ms=400", ba, sizeof(ba));
	hpn_peer_t pa, pb;
	struct hpn_event ev;
	bool a_up = false, b_up = false;
	uint64_t t0 = now_ms();

	(void)state;
	assert_int_equal(hpn_connect(a, ba, 0, &pa), -EINPROGRESS);
	assert_int_equal(hpn_connect(b, aa, 0, &pb), -EINPROGRESS);
	while ((!a_up || !b_up) && now_ms() - t0 < 3000) {
		if (hpn_poll(a, &ev, 1) == 1) {
			assert_int_not_equal(ev.type, HPN_EV_PEER_GONE);
			a_up |= ev.type == HPN_EV_CONNECTED && ev.peer == pa;
		}
		if (hpn_poll(b, &ev, 1) == 1) {
			assert_int_not_equal(ev.type, HPN_EV_PEER_GONE);
			b_up |= ev.type == HPN_EV_CONNECTED && ev.peer == pb;
		}
	}
	assert_true(a_up && b_up);
	/* Twice the peer timeout with only keepalives: nobody is gone. */
	for (t0 = now_ms(); now_ms() - t0 < 900;) {
		if (hpn_poll(a, &ev, 1) == 1)
			assert_int_not_equal(ev.type, HPN_EV_PEER_GONE);
		if (hpn_poll(b, &ev, 1) == 1)
			assert_int_not_equal(ev.type, HPN_EV_PEER_GONE);
		usleep(1000);
	}
	assert_int_equal(hpn_send(a, pa, "ab", 2), 0);
	char buf[8];
	hpn_peer_t from;
	int r;

	for (t0 = now_ms(); (r = hpn_recv(b, &from, buf, sizeof(buf))) == -EAGAIN && now_ms() - t0 < 2000;)
		;
	assert_int_equal(r, 2);
	assert_int_equal(from, pb);
	hpn_ep_destroy(a);
	hpn_ep_destroy(b);
}

static void test_connect_self(void **state)
{
	char addr[64];
	hpn_ep *s = make_server(NULL, addr, sizeof(addr));
	hpn_peer_t p;

	(void)state;
	assert_int_equal(hpn_connect(s, addr, 1000, &p), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "itself"));
	hpn_ep_destroy(s);
}

/* progress=thread: what the application handed over is sent before a
 * disconnect and before destroy; unknown peers are refused at once. */
static void test_progress_thread_flush(void **state)
{
	char addr[64];
	hpn_ep *s = make_server(NULL, addr, sizeof(addr));
	hpn_ep *c = make("progress=thread,wait=adaptive");
	hpn_peer_t p, sp;
	unsigned got = 0;
	uint8_t msg[64];

	(void)state;
	assert_int_equal(hpn_connect(c, addr, 0, &p), -EINPROGRESS);
	sp = wait_event(s, HPN_EV_PEER_NEW, NULL, 0, 3000).peer;
	wait_event(c, HPN_EV_CONNECTED, NULL, 0, 3000);
	assert_int_equal(hpn_send(c, p ^ 0x10000u, msg, 8), -ENOTCONN);
	for (int i = 0; i < 100; i++) {
		fill(msg, 64, (uint64_t)i);
		assert_int_equal(hpn_send(c, p, msg, 64), 0);
	}
	assert_int_equal(hpn_disconnect(c, p), 0);
	assert_int_equal(hpn_send(c, p, msg, 8), -ENOTCONN);
	for (uint64_t t0 = now_ms(); got < 100 && now_ms() - t0 < 3000;) {
		struct hpn_msg in[32];
		int r = hpn_recv_burst(s, in, 32);

		for (int i = 0; i < r; i++, got++) {
			assert_int_equal(check(in[i].data, in[i].len), got);
			hpn_buf_put(s, in[i].data);
		}
	}
	assert_int_equal(got, 100);
	/* ... and the goodbye came after the data. */
	struct hpn_event ev = wait_event(s, HPN_EV_PEER_GONE, NULL, 0, 3000);

	assert_int_equal(ev.peer, sp);
	hpn_ep_destroy(c);

	/* Destroy right after sending: nothing accepted is lost. */
	c = make("progress=thread,wait=adaptive");
	assert_int_equal(hpn_connect(c, addr, 0, &p), -EINPROGRESS);
	wait_event(s, HPN_EV_PEER_NEW, NULL, 0, 3000);
	wait_event(c, HPN_EV_CONNECTED, NULL, 0, 3000);
	for (int i = 0; i < 200; i++) {
		fill(msg, 64, (uint64_t)i);
		assert_int_equal(hpn_send(c, p, msg, 64), 0);
	}
	hpn_ep_destroy(c);
	got = 0;
	for (uint64_t t0 = now_ms(); got < 200 && now_ms() - t0 < 3000;) {
		struct hpn_msg in[32];
		int r = hpn_recv_burst(s, in, 32);

		for (int i = 0; i < r; i++, got++) {
			assert_int_equal(check(in[i].data, in[i].len), got);
			hpn_buf_put(s, in[i].data);
		}
	}
	assert_int_equal(got, 200);
	hpn_ep_destroy(s);
}

/* progress=thread on both sides: real threads, rings and wakeups. */
static void test_progress_thread(void **state)
{
	char addr[64];
	hpn_ep *s = make_server("progress=thread,wait=adaptive", addr, sizeof(addr));
	hpn_ep *c = make("progress=thread,wait=adaptive");
	hpn_peer_t p, from;
	const uint64_t total = 20000;
	uint64_t sent = 0, next = 0;
	struct hpn_event ev;

	(void)state;
	/* Synchronous connect works here: the server has its own thread. */
	assert_int_equal(hpn_connect(c, addr, 3000, &p), 0);
	ev = wait_event(s, HPN_EV_PEER_NEW, NULL, 0, 3000);
	/* No peer is no peer here too (it was taken, then dropped). */
	assert_int_equal(hpn_send(c, HPN_PEER_NONE, "x", 1), -ENOTCONN);
	assert_int_equal(hpn_send_burst(c, &(struct hpn_msg){.peer = HPN_PEER_NONE, .data = "x", .len = 1}, 1),
			 -ENOTCONN);
	while (next < total) {
		struct hpn_msg in[32];
		uint8_t msg[64];

		if (sent - next < 128 && sent < total) {
			fill(msg, 64, sent);
			int r = hpn_send(c, p, msg, 64);

			assert_true(r == 0 || r == -EAGAIN);
			if (!r)
				sent++;
		}
		hpn_poll(c, NULL, 0); /* inline: the sender is driven too (hpn.h) */
		int r = hpn_recv_wait(s, in, 32, sent > next ? 100 : 0);

		assert_true(r >= 0);
		for (int i = 0; i < r; i++) {
			assert_int_equal(in[i].peer, ev.peer);
			assert_int_equal(check(in[i].data, in[i].len), next);
			next++;
			if (next == total) /* echo the last one, zero-copy */
				assert_int_equal(hpn_send_zc_burst(s, &in[i], 1), 1);
			else
				hpn_buf_put(s, in[i].data);
		}
	}
	char buf[64];
	int r;

	for (uint64_t t0 = now_ms(); now_ms() - t0 < 3000;) {
		r = hpn_recv(c, &from, buf, sizeof(buf));
		if (r != -EAGAIN)
			break;
		usleep(100);
	}
	assert_int_equal(r, 64);
	assert_int_equal(check((uint8_t *)buf, 64), total - 1);
	hpn_ep_destroy(c);
	ev = wait_event(s, HPN_EV_PEER_GONE, NULL, 0, 3000);
	assert_int_equal(ev.status, 0);
	hpn_ep_destroy(s);
}

/* ---- buffer ownership and limits (issue 9) --------------------------------- */

/* A buffer put back twice is refused (counted, logged once), so the pool
 * never hands one buffer to two owners. */
static void test_double_put(void **state)
{
	hpn_ep *ep = make(NULL);
	static void *got[4096];
	struct hpn_stats st;
	unsigned n = 0;
	void *a;

	(void)state;
	assert_int_equal(hpn_buf_get(ep, &a), 0);
	hpn_buf_put(ep, a);
	hpn_buf_put(ep, a); /* the bug under test */
	hpn_ep_stats(ep, &st, sizeof(st));
	assert_int_equal(st.errors, 1);
	/* Empty the pool: every buffer comes out once. */
	while (n < 4096 && hpn_buf_get(ep, &got[n]) == 0)
		n++;
	assert_true(n >= 256 && n < 4096);
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < i; j++)
			assert_ptr_not_equal(got[i], got[j]);
	for (unsigned i = 0; i < n; i++)
		hpn_buf_put(ep, got[i]);
	hpn_ep_destroy(ep);
}

/* A NULL endpoint or output pointer is the caller's bug: -EINVAL with a
 * message naming it (once a crash inside the library), NULL from the
 * accessors, nothing from hpn_buf_put. */
static void test_null_arguments(void **state)
{
	const struct hpn_plugin_info *list;
	struct hpn_msg m = {0};
	struct hpn_stats st;
	hpn_peer_t p;
	char b[64];
	void *d;
	hpn_ep *ep;
	const int rets[] = {
		hpn_listen(NULL, "127.0.0.1:0"),  hpn_connect(NULL, "127.0.0.1:1", 10, &p),
		hpn_disconnect(NULL, 1),          hpn_poll(NULL, NULL, 0),
		hpn_peer_addr(NULL, 1, b, 64),    hpn_send(NULL, 1, b, 1),
		hpn_send_burst(NULL, &m, 1),      hpn_send_zc_burst(NULL, &m, 1),
		hpn_recv_burst(NULL, &m, 1),      hpn_recv_wait(NULL, &m, 1, 1),
		hpn_recv(NULL, &p, b, 64),        hpn_buf_get(NULL, &d),
		hpn_buf_get_sized(NULL, 10, &d),  hpn_ep_stats(NULL, &st, sizeof(st)),
		hpn_ep_local_addr(NULL, b, 64),   hpn_feed_lines(NULL, NULL, 0),
		hpn_plugin_list(NULL),
	};

	(void)state;
	(void)list;
	for (size_t i = 0; i < sizeof(rets) / sizeof(rets[0]); i++)
		assert_int_equal(rets[i], -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "NULL"));
	hpn_buf_put(NULL, b);
	assert_int_equal(hpn_buf_size(NULL), 0);
	assert_null(hpn_ep_plugin(NULL));
	assert_null(hpn_ep_caps(NULL));
	assert_null(hpn_ep_describe(NULL));
	ep = make(NULL);
	assert_int_equal(hpn_buf_get(ep, NULL), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "data is NULL"));
	assert_int_equal(hpn_buf_get_sized(ep, 10, NULL), -EINVAL);
	assert_int_equal(hpn_ep_stats(ep, NULL, sizeof(st)), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "st is NULL"));
	hpn_ep_destroy(ep);
}

/* Zero-copy sends write in front of the data: a pointer that is not a
 * pool buffer the caller owns is refused before anything is touched. */
static void test_zc_foreign_pointer(void **state)
{
	char addr[64];
	hpn_ep *s = make_server(NULL, addr, sizeof(addr));
	hpn_ep *c = make(NULL);
	hpn_peer_t p = connect_pair(s, c, addr, NULL);
	uint8_t area[96], canary[96];
	struct hpn_msg m[2], in[4];
	void *buf, *freed;
	unsigned got = 0;

	(void)state;
	memset(area, 0xAB, sizeof(area));
	memcpy(canary, area, sizeof(area));
	m[0] = (struct hpn_msg){.data = area + 32, .len = 16, .peer = p};
	assert_int_equal(hpn_send_zc_burst(c, m, 1), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "not a buffer of this endpoint's pool"));
	assert_memory_equal(area, canary, sizeof(area));
	/* Into the headroom, past the end, or already back in the pool. */
	assert_int_equal(hpn_buf_get(c, &buf), 0);
	m[0] = (struct hpn_msg){.data = (char *)buf - 4, .len = 16, .peer = p};
	assert_int_equal(hpn_send_zc_burst(c, m, 1), -EINVAL);
	m[0] = (struct hpn_msg){.data = (char *)buf + hpn_buf_size(c) - 8, .len = 16, .peer = p};
	assert_int_equal(hpn_send_zc_burst(c, m, 1), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "past the end"));
	assert_int_equal(hpn_buf_get(c, &freed), 0);
	hpn_buf_put(c, freed);
	m[0] = (struct hpn_msg){.data = freed, .len = 16, .peer = p};
	assert_int_equal(hpn_send_zc_burst(c, m, 1), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "already returned"));
	/* A good buffer before a bad one goes; the bad one is refused next. */
	fill(buf, 16, 7);
	m[0] = (struct hpn_msg){.data = buf, .len = 16, .peer = p};
	m[1] = (struct hpn_msg){.data = area + 32, .len = 16, .peer = p};
	assert_int_equal(hpn_send_zc_burst(c, m, 2), 1);
	assert_int_equal(hpn_send_zc_burst(c, m + 1, 1), -EINVAL);
	assert_memory_equal(area, canary, sizeof(area));
	for (uint64_t t0 = now_ms(); got < 1 && now_ms() - t0 < 3000;) {
		int r = hpn_recv_burst(s, in, 4);

		for (int i = 0; i < r; i++, got++) {
			assert_int_equal(check(in[i].data, in[i].len), 7);
			hpn_buf_put(s, in[i].data);
		}
		hpn_poll(c, NULL, 0);
	}
	assert_int_equal(got, 1);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

static int log_hits; /* log lines containing log_want, from any thread */
static const char *log_want;

static void count_log(void *arg, enum hpn_log_level level, const char *msg)
{
	(void)arg;
	(void)level;
	if (log_want && strstr(msg, log_want))
		__atomic_add_fetch(&log_hits, 1, __ATOMIC_RELAXED);
}

/* progress=thread never drops a message silently: what the application
 * thread can check returns -EMSGSIZE; a message larger than the peer's
 * negotiated limit (only the progress thread learns it) is counted in
 * tx_failed and logged. */
static void test_progress_thread_too_big(void **state)
{
	char addr[64];
	hpn_ep *s = make_server("buf_size=4096", addr, sizeof(addr));
	hpn_ep *c = make("progress=thread,wait=adaptive");
	hpn_peer_t p = connect_pair(s, c, addr, NULL);
	static uint8_t big[70000];
	struct hpn_stats st = {0};
	struct hpn_msg in[4];
	unsigned got = 0;

	(void)state;
	/* Our own limit: refused at once, as inline mode does. */
	assert_int_equal(hpn_send(c, p, big, hpn_ep_caps(c)->max_msg_size + 1u), -EMSGSIZE);
	if (reliable) {
		/* 8000 bytes fit our buffers, not the peer's 4 KiB. */
		log_want = "stats.tx_failed";
		hpn_log_set_handler(count_log, NULL, HPN_LOG_ERROR);
		assert_int_equal(hpn_send(c, p, big, 8000), 0);
		for (uint64_t t0 = now_ms(); st.tx_failed == 0 && now_ms() - t0 < 3000; usleep(1000))
			hpn_ep_stats(c, &st, sizeof(st));
		hpn_log_set_handler(NULL, NULL, HPN_LOG_ERROR);
		assert_int_equal(st.tx_failed, 1);
		assert_true(st.errors >= 1);
		assert_int_equal(__atomic_load_n(&log_hits, __ATOMIC_RELAXED), 1);
	}
	/* The stream goes on. */
	fill(big, 100, 3);
	assert_int_equal(hpn_send(c, p, big, 100), 0);
	for (uint64_t t0 = now_ms(); got < 1 && now_ms() - t0 < 3000;) {
		int r = hpn_recv_burst(s, in, 4);

		for (int i = 0; i < r; i++, got++) {
			assert_int_equal(in[i].len, 100);
			assert_int_equal(check(in[i].data, in[i].len), 3);
			hpn_buf_put(s, in[i].data);
		}
	}
	assert_int_equal(got, 1);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

/* Peer ids carry a generation so an old id never reaches a new peer -
 * also after 65,536 connects through one slot (16-bit generations came
 * back to the first id there). */
static void test_peer_ids_never_repeat(void **state)
{
	hpn_ep *c;
	int sink = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	char to[64];
	hpn_peer_t first, p;

	(void)state;
	/* Somebody who never answers: HELLOs just pile up (and overflow). */
	assert_int_equal(bind(sink, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(sink, (struct sockaddr *)&a, &alen), 0);
	snprintf(to, sizeof(to), "127.0.0.1:%u", ntohs(a.sin_port));
	c = make("max_peers=1"); /* one slot: every connect reuses it */
	assert_int_equal(hpn_connect(c, to, 0, &first), -EINPROGRESS);
	assert_int_equal(hpn_disconnect(c, first), 0);
	for (unsigned i = 0; i < 65536 + 2; i++) {
		assert_int_equal(hpn_connect(c, to, 0, &p), -EINPROGRESS);
		if (p == first)
			fail_msg("connect %u got the first peer's id %u again", i + 1, p);
		assert_int_equal(hpn_disconnect(c, p), 0);
	}
	hpn_ep_destroy(c);
	close(sink);
}

/* hpnbench's server keeps serving everyone while one client never reads
 * (its window stays closed): replies to it are parked, not waited for. */
static void test_hpnbench_stuck_peer(void **state)
{
	const char *bench = getenv("HPNBENCH");
	int fd = socket(AF_INET, SOCK_DGRAM, 0), status = 0;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	struct { uint32_t type, reserved; uint64_t seq; } ping = {0x50494e47, 0, 0}; /* M_PING */
	static uint8_t msg[1400]; /* one packet each: the window fills quickly */
	char addr[64];
	hpn_ep *stuck, *probe;
	hpn_peer_t p, q;
	pid_t pid;
	int ret = -1;

	(void)state;
	if (!reliable || !bench)
		skip(); /* raw datagrams never push back; HPNBENCH comes from meson */
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(a.sin_port));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl(bench, "hpnbench", "--plugin", "udp", "--server", "--bind", addr, "--config",
		      "hugepages=off,mlock=off,bufs=1024", (char *)NULL);
		_exit(127);
	}
	stuck = make("progress=thread,wait=adaptive");
	for (uint64_t t0 = now_ms(); ret && now_ms() - t0 < 5000;)
		if ((ret = hpn_connect(stuck, addr, 300, &p)))
			usleep(20000);
	assert_int_equal(ret, 0);
	/* Ping and never read: the echoes fill our buffers, then our window. */
	for (uint64_t t0 = now_ms(); ping.seq < 4000 && now_ms() - t0 < 2000;) {
		memcpy(msg, &ping, sizeof(ping));
		if (hpn_send(stuck, p, msg, sizeof(msg)) == 0)
			ping.seq++;
		else
			usleep(100);
	}
	/* Another client is served all the same. */
	probe = make(NULL);
	ret = hpn_connect(probe, addr, 3000, &q);
	if (ret)
		fprintf(stderr, "# probe connect: %s\n", hpn_last_error());
	for (uint64_t i = 0; !ret && i < 20; i++) {
		struct hpn_msg in[4];
		bool echoed = false;

		ping.seq = i;
		assert_int_equal(hpn_send(probe, q, &ping, sizeof(ping)), 0);
		for (uint64_t t0 = now_ms(); !echoed && now_ms() - t0 < 2000;) {
			int r = hpn_recv_wait(probe, in, 4, 10);

			for (int k = 0; k < r; k++) {
				echoed |= in[k].len == sizeof(ping) && !memcmp(in[k].data, &ping, sizeof(ping));
				hpn_buf_put(probe, in[k].data);
			}
		}
		if (!echoed)
			ret = -ETIMEDOUT;
	}
	kill(pid, SIGTERM);
	for (uint64_t t0 = now_ms(); waitpid(pid, &status, WNOHANG) == 0;) {
		if (now_ms() - t0 > 3000) {
			kill(pid, SIGKILL); /* stuck for good */
			waitpid(pid, &status, 0);
			ret = ret ?: -EDEADLK;
			break;
		}
		usleep(10000);
	}
	hpn_ep_destroy(probe);
	hpn_ep_destroy(stuck);
	assert_int_equal(ret, 0);
}

/* Configuration a user gets wrong: each refused with a message naming it. */
static void test_config_conflicts(void **state)
{
	hpn_ep *ep = NULL;
	hpn_peer_t p;

	(void)state;
	assert_int_equal(hpn_ep_create("plugin=udp,reliable=on,gro=on", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "gro=on conflicts with reliable=on"));
	/* Glued runs are received whole: not into datagram-sized buffers. */
	assert_int_equal(hpn_ep_create("plugin=udp,reliable=off,gro=on,mtu=1472", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "gro=on needs mtu=65507"));
	/* A raw message is delivered in one ordinary buffer: never larger. */
	assert_int_equal(hpn_ep_create("plugin=udp,reliable=off,buf_size=2048,max_msg=60000", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "delivered in ordinary buffers"));
	assert_int_equal(hpn_ep_create("plugin=udp,reliable=off,buf_size=2048,hugepages=off", &ep), 0);
	assert_int_equal(hpn_ep_caps(ep)->max_msg_size, 2048);
	hpn_ep_destroy(ep);
	assert_int_equal(hpn_ep_create("plugin=udp,reliable=off,unordered=on", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "unordered= needs reliable=on"));
	assert_int_equal(hpn_ep_create("plugin=udp,reliable=off,cc=on", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "cc= needs reliable=on"));
	/* Every key only the packet layer reads: refused with reliable=off. */
	assert_int_equal(hpn_ep_create("plugin=udp,reliable=off,window=512", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "window= needs reliable=on"));
	assert_int_equal(hpn_ep_create("plugin=udp,cc=maybe", &ep), -EINVAL);
	assert_null(ep);
	/* Numbers are decimal: bufs=0200 is two hundred buffers, not 128. */
	ep = make("bufs=0200,burst=16,max_peers=010");
	assert_non_null(strstr(hpn_ep_describe(ep), "pool 200 x"));
	hpn_ep_destroy(ep);
	assert_int_equal(hpn_ep_create("plugin=udp,bufs=0100,burst=32", &ep), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "bufs=100 too small"));
	ep = make(NULL);
	/* Ports above 65535 are refused, not cut to 16 bits. */
	assert_int_equal(hpn_listen(ep, "127.0.0.1:99999"), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "port '99999'"));
	assert_int_equal(hpn_connect(ep, "127.0.0.1:65536", 100, &p), -EINVAL);
	assert_int_equal(hpn_connect(ep, "127.0.0.1:12ab", 100, &p), -EINVAL);
	hpn_ep_destroy(ep);
}

/* hpn_connect waits as long as it is told, not peer_timeout_ms. */
static void test_connect_timeout_honoured(void **state)
{
	int sink = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	char to[64];
	hpn_ep *c;
	hpn_peer_t p;
	uint64_t t0, took;

	(void)state;
	assert_int_equal(bind(sink, (struct sockaddr *)&a, sizeof(a)), 0); /* never answers */
	assert_int_equal(getsockname(sink, (struct sockaddr *)&a, &alen), 0);
	snprintf(to, sizeof(to), "127.0.0.1:%u", ntohs(a.sin_port));
	c = make("peer_timeout_ms=300");
	t0 = now_ms();
	assert_int_equal(hpn_connect(c, to, 1500, &p), -ETIMEDOUT);
	took = now_ms() - t0;
	fprintf(stderr, "# connect with a 1500 ms timeout (peer_timeout_ms=300) gave up after %llu ms\n",
		(unsigned long long)took);
	assert_true(took >= 1450 && took < 3000);
	/* Asynchronous: the backend's own limit, peer_timeout_ms. */
	assert_int_equal(hpn_connect(c, to, 0, &p), -EINPROGRESS);
	t0 = now_ms();
	struct hpn_event ev = wait_event(c, HPN_EV_PEER_GONE, NULL, 0, 3000);

	assert_int_equal(ev.peer, p);
	assert_int_equal(ev.status, -ETIMEDOUT);
	assert_true(now_ms() - t0 < 1000);
	hpn_ep_destroy(c);
	close(sink);
}

/* connect_retry_ms paces the handshake: count the HELLOs a silent
 * address gets in 600 ms at two settings. */
static unsigned hellos_in(const char *retry, unsigned ms)
{
	int sink = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	char to[64], cfg[64], buf[2048];
	unsigned n = 0;
	hpn_ep *c;
	hpn_peer_t p;

	assert_int_equal(bind(sink, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(sink, (struct sockaddr *)&a, &alen), 0);
	snprintf(to, sizeof(to), "127.0.0.1:%u", ntohs(a.sin_port));
	snprintf(cfg, sizeof(cfg), "connect_retry_ms=%s,peer_timeout_ms=5000", retry);
	c = make(cfg);
	assert_int_equal(hpn_connect(c, to, 0, &p), -EINPROGRESS);
	for (uint64_t t0 = now_ms(); now_ms() - t0 < ms; usleep(1000)) {
		hpn_poll(c, NULL, 0);
		while (recv(sink, buf, sizeof(buf), 0) > 0)
			n++;
	}
	hpn_ep_destroy(c);
	close(sink);
	return n;
}

static void test_connect_retry_honoured(void **state)
{
	unsigned fast, slow;

	(void)state;
	fast = hellos_in("40", 600);
	slow = hellos_in("300", 600);
	fprintf(stderr, "# HELLOs in 600 ms: %u at connect_retry_ms=40, %u at 300\n", fast, slow);
	assert_true(fast >= 8 && fast <= 20);
	assert_true(slow >= 2 && slow <= 4);
}

/* The cases that run a progress thread. Every other case is one thread,
 * where ThreadSanitizer has nothing to find: its build runs only these
 * (E2E_THREADED=1), the others cost it minutes. */
static const char *const threaded_cases[] = {
	"test_close_after_send", "test_mode_mismatch", "test_progress_thread",
	"test_progress_thread_flush", "test_large_class_held",
	"test_reader_stalls_three_timeouts", "test_progress_thread_too_big",
	"test_hpnbench_stuck_peer", "test_config_errors", /* (starts and stops one) */
};

static bool is_threaded(const char *name)
{
	for (size_t i = 0; i < sizeof(threaded_cases) / sizeof(threaded_cases[0]); i++)
		if (strcmp(name, threaded_cases[i]) == 0)
			return true;
	return false;
}

/* Every case runs between these two: a case that starts a progress thread
 * and is missing from threaded_cases would escape ThreadSanitizer. */
static int case_begin(void **state)
{
	(void)state;
	threads_asked = false;
	return 0;
}

static int case_end(void **state)
{
	if (threads_asked && !is_threaded(*state)) {
		fprintf(stderr, "%s starts a progress thread: add it to threaded_cases\n", (const char *)*state);
		return -1;
	}
	return 0;
}

#define CASE(f) cmocka_unit_test_prestate_setup_teardown(f, case_begin, case_end, (void *)#f)

int main(void)
{
	struct CMUnitTest tests[] = {
		CASE(test_many_in_order),
		CASE(test_bursts_and_sizes),
		CASE(test_gso_gro),
		CASE(test_one_way_outlives_timeout),
		CASE(test_copy_recv_keeps_message),
		CASE(test_zero_copy_no_leak),
		CASE(test_many_peers),
		CASE(test_peer_killed),
		CASE(test_goodbye_no_drops),
		CASE(test_silent_peer_and_garbage),
		CASE(test_connect_errors),
		CASE(test_listen_after_failed_listen),
		CASE(test_mode_mismatch),
		CASE(test_config_errors),
		CASE(test_simultaneous_open),
		CASE(test_connect_self),
		CASE(test_progress_thread),
		CASE(test_progress_thread_flush),
		CASE(test_reliable_malformed),
		CASE(test_reliable_contradiction),
		CASE(test_reliable_faults),
		CASE(test_unordered_gaps),
		CASE(test_peer_frozen_mid_stream),
		CASE(test_multicast),
		CASE(test_close_after_send),
		CASE(test_peer_restart),
		CASE(test_one_mib_messages),
		CASE(test_large_messages_under_loss),
		CASE(test_large_class_held),
		CASE(test_max_msg_refusals),
		CASE(test_reader_stalls_three_timeouts),
		CASE(test_killed_peer_data_kept),
		CASE(test_reconnect_while_closing),
		CASE(test_double_put),
		CASE(test_zc_foreign_pointer),
		CASE(test_null_arguments),
		CASE(test_progress_thread_too_big),
		CASE(test_peer_ids_never_repeat),
		CASE(test_hpnbench_stuck_peer),
		CASE(test_config_conflicts),
		CASE(test_connect_timeout_honoured),
		CASE(test_connect_retry_honoured),
	};

	signal(SIGPIPE, SIG_IGN);
	reliable = getenv("UDP_E2E_RELIABLE") && atoi(getenv("UDP_E2E_RELIABLE"));
	strcat(BASE_CFG, reliable ? ",reliable=on" : ",reliable=off");
	if (getenv("E2E_FILTER")) /* one case: E2E_FILTER=test_name (globs) */
		cmocka_set_test_filter(getenv("E2E_FILTER"));
	if (getenv("E2E_THREADED") && atoi(getenv("E2E_THREADED"))) {
		size_t n = 0, ntests = sizeof(tests) / sizeof(tests[0]);

		for (size_t i = 0; i < ntests; i++)
			if (is_threaded(tests[i].name))
				tests[n++] = tests[i];
		if (n != sizeof(threaded_cases) / sizeof(threaded_cases[0])) {
			fprintf(stderr, "E2E_THREADED: a listed case is not in tests[]\n");
			return 1;
		}
		return _cmocka_run_group_tests("udp_e2e_threaded", tests, n, NULL, NULL);
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
