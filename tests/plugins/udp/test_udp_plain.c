/*
 * framing=none on udp, through the public API, against plain kernel
 * sockets: datagrams as they are both ways; every source a peer
 * (PEER_NEW), silent ones gone after peer_timeout_ms, a disconnected one
 * muted until connected again; connect at once; an oversize datagram
 * dropped whole, never cut; the stream keys refused; a feed (seq=) fed
 * by hand - hostile packets (short, lying lengths, another session,
 * garbage) counted and harmless, messages one by one with their seq and
 * a receive timestamp from the kernel, a gap reported once and filled
 * late, hpn_feed_lines, the MoldUDP64 request helper; timestamps with
 * progress=thread too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hpn/hpn.h>

#include "../e2e.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A plain kernel socket on 127.0.0.1 (port 0: any). */
static int kernel_sock(uint16_t port, struct sockaddr_in *me)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	socklen_t len = sizeof(*me);
	struct timeval tv = {2, 0};

	*me = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)me, sizeof(*me)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)me, &len), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static uint16_t ep_port(hpn_ep *ep)
{
	char buf[64];

	assert_int_equal(hpn_ep_local_addr(ep, buf, sizeof(buf)), 0);
	return (uint16_t)atoi(strrchr(buf, ':') + 1);
}

static void to_ep(int fd, uint16_t port, const void *data, size_t len)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};

	assert_int_equal(sendto(fd, data, len, 0, (struct sockaddr *)&to, sizeof(to)), (ssize_t)len);
}

/* One message within ms, or fail. */
static struct hpn_msg recv_one(hpn_ep *ep, int ms)
{
	struct hpn_msg m;
	uint64_t t0 = now_ms();

	while (now_ms() - t0 < (uint64_t)ms)
		if (hpn_recv_burst(ep, &m, 1) == 1)
			return m;
	fail_msg("no message within %d ms", ms);
	return m;
}

/* Datagrams the kernel dropped for the endpoint (its socket buffer full:
 * a reader that stopped) are counted: on loopback nothing else loses one,
 * so what arrived and what was dropped add up to what was sent. */
static void test_rx_dropped(void **st)
{
	hpn_ep *ep = e2e_make("plugin=udp,framing=none,rcvbuf=65536", NULL);
	struct sockaddr_in a;
	int fa = kernel_sock(0, &a);
	struct hpn_stats s;
	struct hpn_msg in[32];
	char d[1000] = {0};
	uint64_t got = 0, t0;
	uint16_t port;

	(void)st;
	assert_int_equal(hpn_listen(ep, "127.0.0.1:0"), 0);
	port = ep_port(ep);
	for (int i = 0; i < 2000; i++) /* nobody reads meanwhile */
		to_ep(fa, port, d, sizeof(d));
	t0 = now_ms();
	while (now_ms() - t0 < 1300) { /* the counts are read each second */
		int r = hpn_recv_burst(ep, in, 32);

		for (int i = 0; i < r; i++, got++)
			hpn_buf_put(ep, in[i].data);
		hpn_poll(ep, NULL, 0);
	}
	assert_int_equal(hpn_ep_stats(ep, &s, sizeof(s)), 0);
	print_message("2000 sent: %llu received, %llu dropped by the kernel\n", (unsigned long long)got,
		      (unsigned long long)s.rx_dropped);
	assert_true(s.rx_dropped > 0);
	assert_int_equal(got + s.rx_dropped, 2000);
	close(fa);
	hpn_ep_destroy(ep);
}

static void test_config_refused(void **st)
{
	static const char *bad[][2] = {
		{"plugin=udp,framing=none,reliable=on", "reliable="},
		{"plugin=udp,framing=none,window=64", "window="},
		{"plugin=udp,framing=none,faults=loss:0.1", "faults="},
		{"plugin=udp,framing=udp", "framing='udp'"},
		{"plugin=udp,seq=moldudp64", "needs framing=none"},
		{"plugin=udp,framing=none,seq=itch", "seq=itch"},
		{"plugin=udp,framing=none,gap_timeout_us=5", "needs seq="},
		{"plugin=udp,framing=none,mcast_if=nosuchif0", "mcast_if='nosuchif0'"},
	};
	hpn_ep *ep;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(hpn_ep_create(bad[i][0], &ep), -EINVAL);
		if (!strstr(hpn_last_error(), bad[i][1]))
			fail_msg("%s: '%s' does not say '%s'", bad[i][0], hpn_last_error(), bad[i][1]);
	}
	ep = e2e_make("plugin=udp,framing=none", NULL);
	assert_true(hpn_ep_caps(ep)->flags & HPN_CAP_PLAIN);
	assert_true(hpn_ep_caps(ep)->flags & HPN_CAP_TS_KERNEL);
	assert_false(hpn_ep_caps(ep)->flags & (HPN_CAP_RELIABLE | HPN_CAP_ORDERED));
	assert_int_equal(hpn_feed_lines(ep, NULL, 0), -EOPNOTSUPP); /* no seq=: no feed */
	hpn_ep_destroy(ep);
}

/* Listens that cannot work are refused with the reason and leave nothing
 * behind: a unicast port another socket holds (it is not shared: the
 * second binder took the first one's datagrams), the same group twice, a
 * group without its port, a ninth line (refused before its join). */
static void test_listen_refused(void **st)
{
	hpn_ep *a = e2e_make("plugin=udp,framing=none,seq=moldudp64,mcast_if=127.0.0.1", NULL);
	hpn_ep *b = e2e_make("plugin=udp,framing=none,seq=moldudp64,mcast_if=127.0.0.1", NULL);
	struct sockaddr_in me;
	int holder = kernel_sock(0, &me);
	char spec[64];

	snprintf(spec, sizeof(spec), "127.0.0.1:%u", ntohs(me.sin_port));
	assert_int_equal(hpn_listen(a, spec), -EADDRINUSE);
	assert_non_null(strstr(hpn_last_error(), "another socket has this port"));
	close(holder);
	assert_int_equal(hpn_listen(a, "127.0.0.1:18993"), 0);
	assert_int_equal(hpn_listen(b, "127.0.0.1:18993"), -EADDRINUSE); /* not shared between endpoints */
	assert_int_equal(hpn_listen(a, "239.77.9.3:18994"), 0);
	assert_int_equal(hpn_listen(b, "239.77.9.3:18994"), 0); /* a group's port is: both hear it */
	assert_int_equal(hpn_listen(a, "239.77.9.3:18994"), -EEXIST);
	assert_non_null(strstr(hpn_last_error(), "already listening there"));
	assert_int_equal(hpn_listen(a, "239.77.9.3:0"), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "port must be given"));
	for (int i = 4; i < 10; i++) { /* lines 3..8 */
		snprintf(spec, sizeof(spec), "239.77.9.%d:18994", i);
		assert_int_equal(hpn_listen(a, spec), 0);
	}
	assert_int_equal(hpn_listen(a, "239.77.9.10:18994"), -ENOSPC);
	assert_non_null(strstr(hpn_last_error(), "at most 8 lines"));
	hpn_ep_destroy(a);
	hpn_ep_destroy(b);
}

static void test_plain_both_ways(void **st)
{
	hpn_ep *ep = e2e_make("plugin=udp,framing=none,peer_timeout_ms=300,buf_size=4096", NULL);
	struct sockaddr_in a, b;
	int fa = kernel_sock(0, &a), fb = kernel_sock(0, &b);
	struct hpn_event ev;
	struct hpn_msg m;
	char big[5000], back[64];
	hpn_peer_t pa, pb;
	uint16_t port;
	uint64_t t0;

	assert_int_equal(hpn_listen(ep, "127.0.0.1:0"), 0);
	port = ep_port(ep);
	/* Two sources: two peers, each message as it was sent, stamped. */
	t0 = real_ns();
	to_ep(fa, port, "from a", 6);
	m = recv_one(ep, 2000);
	assert_int_equal(m.len, 6);
	assert_memory_equal(m.data, "from a", 6);
	assert_true(m.ts_ns >= t0 - 1000000 && m.ts_ns <= real_ns() + 1000000);
	pa = m.peer;
	hpn_buf_put(ep, m.data);
	ev = wait_event(ep, HPN_EV_PEER_NEW, NULL, 0, 1000);
	assert_int_equal(ev.peer, pa);
	to_ep(fb, port, "from b", 6);
	m = recv_one(ep, 2000);
	pb = m.peer;
	assert_int_not_equal(pa, pb);
	hpn_buf_put(ep, m.data);
	/* Replies go back as they are: no header. */
	assert_int_equal(hpn_send(ep, pa, "pong", 4), 0);
	assert_int_equal(recv(fa, back, sizeof(back), 0), 4);
	assert_memory_equal(back, "pong", 4);
	/* Longer than a buffer: dropped whole, counted, never cut. */
	memset(big, 'x', sizeof(big));
	to_ep(fa, port, big, sizeof(big));
	to_ep(fa, port, "after", 5);
	m = recv_one(ep, 2000);
	assert_int_equal(m.len, 5);
	hpn_buf_put(ep, m.data);
	assert_int_equal(hpn_send(ep, pa, big, sizeof(big)), -EMSGSIZE);
	/* A disconnected source is muted; connecting names it again. */
	assert_int_equal(hpn_disconnect(ep, pb), 0);
	to_ep(fb, port, "muted", 5);
	usleep(50000);
	assert_int_equal(hpn_recv_burst(ep, &m, 1), 0);
	{
		char who[64];
		hpn_peer_t again;

		snprintf(who, sizeof(who), "127.0.0.1:%u", ntohs(b.sin_port));
		assert_int_equal(hpn_connect(ep, who, 1000, &again), 0); /* at once: no handshake */
		assert_int_equal(hpn_send(ep, again, "hi b", 4), 0);
		assert_int_equal(recv(fb, back, sizeof(back), 0), 4);
		to_ep(fb, port, "heard", 5);
		m = recv_one(ep, 2000);
		assert_int_equal(m.peer, again);
		hpn_buf_put(ep, m.data);
	}
	/* Silent sources go after peer_timeout_ms (a peer we connected to stays). */
	ev = wait_event(ep, HPN_EV_PEER_GONE, NULL, 0, 3000);
	assert_int_equal(ev.peer, pa);
	assert_int_equal(ev.status, -ETIMEDOUT);
	{
		struct hpn_stats s;

		hpn_ep_stats(ep, &s, sizeof(s));
		assert_true(s.drops >= 2); /* the oversize one and the muted one */
	}
	close(fa);
	close(fb);
	hpn_ep_destroy(ep);
}

/* ---- a feed fed by hand ----------------------------------------------------------- */

static size_t mold(uint8_t *p, const char *session, uint64_t seq, unsigned count, const char *const *msgs)
{
	size_t off = 20;

	memcpy(p, session, 10);
	for (int i = 0; i < 8; i++)
		p[10 + i] = (uint8_t)(seq >> (56 - 8 * i));
	p[18] = (uint8_t)(count >> 8);
	p[19] = (uint8_t)count;
	for (unsigned i = 0; i < count && count != 0xFFFF; i++) {
		size_t len = strlen(msgs[i]);

		p[off] = (uint8_t)(len >> 8);
		p[off + 1] = (uint8_t)len;
		memcpy(p + off + 2, msgs[i], len);
		off += 2 + len;
	}
	return off;
}

/* HPN_EV_FEED_RESTART at first, then messages first..last in order. */
static void restart_then(hpn_ep *ep, uint64_t first, uint64_t last)
{
	struct hpn_event ev = wait_event(ep, HPN_EV_FEED_RESTART, NULL, 0, 2000);
	struct hpn_msg m;

	assert_int_equal(ev.seq, first);
	for (uint64_t q = first; q <= last; q++) {
		m = recv_one(ep, 2000);
		assert_int_equal(m.seq, q);
		hpn_buf_put(ep, m.data);
	}
}

static void feed_case(const char *progress)
{
	char cfg[256];
	hpn_ep *ep;
	struct sockaddr_in a;
	int fa = kernel_sock(0, &a);
	const char *m1[] = {"ADD 1", "ADD 2", "EXEC 3"}, *m2[] = {"DEL 4"}, *m3[] = {"ADD 5", "ADD 6"};
	uint8_t pkt[512];
	struct hpn_msg m;
	struct hpn_event ev;
	struct hpn_feed_line lines[2];
	uint16_t port;
	size_t n;
	uint64_t t0;

	snprintf(cfg, sizeof(cfg), "plugin=udp,framing=none,seq=moldudp64,gap_timeout_us=20000,progress=%s", progress);
	ep = e2e_make(cfg, NULL);
	assert_int_equal(hpn_listen(ep, "127.0.0.1:0"), 0);
	port = ep_port(ep);
	t0 = real_ns();
	n = mold(pkt, "SESSION001", 100, 3, m1);
	to_ep(fa, port, pkt, n);
	for (unsigned i = 0; i < 3; i++) { /* one message each, in order, its own seq */
		m = recv_one(ep, 2000);
		assert_int_equal(m.seq, 100 + i);
		assert_int_equal(m.len, strlen(m1[i]));
		assert_memory_equal(m.data, m1[i], m.len);
		assert_true(m.ts_ns >= t0 - 1000000 && m.ts_ns <= real_ns() + 1000000);
		hpn_buf_put(ep, m.data);
	}
	/* Hostile: short, lying lengths, trailing bytes, another session. */
	to_ep(fa, port, pkt, 12);
	n = mold(pkt, "SESSION001", 103, 1, m2);
	pkt[21] = 200; /* the message says it is longer than the packet */
	to_ep(fa, port, pkt, n);
	n = mold(pkt, "SESSION001", 103, 1, m2);
	to_ep(fa, port, pkt, n + 1 > sizeof(pkt) ? n : n + 1);
	n = mold(pkt, "SESSION999", 103, 1, m2);
	to_ep(fa, port, pkt, n);
	usleep(50000);
	assert_int_equal(hpn_recv_burst(ep, &m, 1), 0);
	/* 103 lost; 104..105 come: held for gap_timeout, then a gap, once. */
	n = mold(pkt, "SESSION001", 104, 2, m3);
	to_ep(fa, port, pkt, n);
	m = recv_one(ep, 2000);
	assert_int_equal(m.seq, 104);
	hpn_buf_put(ep, m.data);
	m = recv_one(ep, 2000);
	assert_int_equal(m.seq, 105);
	hpn_buf_put(ep, m.data);
	ev = wait_event(ep, HPN_EV_GAP, NULL, 0, 2000);
	assert_int_equal(ev.seq, 103);
	assert_int_equal(ev.count, 1);
	/* The late copy is still delivered, once, and no second gap. */
	n = mold(pkt, "SESSION001", 103, 1, m2);
	to_ep(fa, port, pkt, n);
	to_ep(fa, port, pkt, n);
	m = recv_one(ep, 2000);
	assert_int_equal(m.seq, 103);
	assert_memory_equal(m.data, "DEL 4", 5);
	hpn_buf_put(ep, m.data);
	usleep(50000);
	assert_int_equal(hpn_recv_burst(ep, &m, 1), 0);
	/* End of session: believed once said twice (MoldUDP64 servers
	 * repeat it; one alone could be forged). */
	n = mold(pkt, "SESSION001", 106, 0xFFFF, NULL);
	to_ep(fa, port, pkt, n);
	to_ep(fa, port, pkt, n);
	ev = wait_event(ep, HPN_EV_FEED_END, NULL, 0, 2000);
	assert_int_equal(ev.seq, 106);
	{
		struct hpn_stats s;

		hpn_ep_stats(ep, &s, sizeof(s));
		assert_int_equal(s.feed_msgs, 6);
		assert_int_equal(s.feed_gaps, 1);
		assert_int_equal(s.feed_gap_msgs, 1);
		assert_int_equal(s.feed_late, 1);
		assert_int_equal(s.feed_dups, 1);
		assert_true(s.malformed >= 3);
	}
	assert_int_equal(hpn_feed_lines(ep, lines, 2), 1);
	assert_string_equal(lines[0].addr, "127.0.0.1:0");
	assert_int_equal(lines[0].packets, 6); /* the session's: 2 with news, the late one, its repeat, the end twice */
	assert_int_equal(lines[0].wins, 3);
	/* A new session on this one line: said (HPN_EV_FEED_RESTART), and
	 * delivered from its first packet (it waited for the second to
	 * agree; it was once lost as a gap). */
	n = mold(pkt, "SESSION002", 1, 1, m2);
	to_ep(fa, port, pkt, n);
	n = mold(pkt, "SESSION002", 2, 2, m3);
	to_ep(fa, port, pkt, n);
	restart_then(ep, 1, 3);
	usleep(50000);
	assert_int_equal(hpn_recv_burst(ep, &m, 1), 0);
	assert_int_equal(hpn_poll(ep, &ev, 1), 0); /* no gap */
	close(fa);
	hpn_ep_destroy(ep);
}

/* A stray datagram decides the start, the real feed replaces it: the
 * application reads the stray's message before HPN_EV_FEED_RESTART (it
 * belongs to the old start - the event once came first, so a handler
 * rebuilding on it took the stray in), then the new start's messages. */
static void feed_stray_first(const char *progress)
{
	char cfg[256];
	hpn_ep *ep;
	struct sockaddr_in a;
	int fa = kernel_sock(0, &a);
	const char *stray[] = {"STRAY"}, *real[] = {"ADD 1"};
	uint8_t pkt[512];
	struct hpn_event ev;
	uint16_t port;

	snprintf(cfg, sizeof(cfg), "plugin=udp,framing=none,seq=moldudp64,progress=%s", progress);
	ep = e2e_make(cfg, NULL);
	assert_int_equal(hpn_listen(ep, "127.0.0.1:0"), 0);
	port = ep_port(ep);
	to_ep(fa, port, pkt, mold(pkt, "OLDSESSION", 5000000, 1, stray));
	to_ep(fa, port, pkt, mold(pkt, "SESSION001", 1, 1, real));
	to_ep(fa, port, pkt, mold(pkt, "SESSION001", 2, 1, real));
	usleep(100000);
	/* Events first, as a handler polling them would. */
	while (hpn_poll(ep, &ev, 1) == 1)
		assert_int_not_equal(ev.type, HPN_EV_FEED_RESTART);
	/* All three are there: the burst ends at the event all the same. */
	{
		struct hpn_msg in[4];
		uint64_t t0 = now_ms();
		int r;

		while ((r = hpn_recv_burst(ep, in, 4)) == 0 && now_ms() - t0 < 2000)
			;
		assert_int_equal(r, 1);
		assert_int_equal(in[0].seq, 5000000);
		hpn_buf_put(ep, in[0].data);
		/* Not polled yet: nothing more is received - the event comes
		 * first (the next burst took the new start's messages before
		 * it), and hpn_recv_wait says an event waits. */
		hpn_peer_t peer;
		char b[64];

		assert_int_equal(hpn_recv_burst(ep, in, 4), 0);
		assert_int_equal(hpn_recv(ep, &peer, b, sizeof(b)), -EAGAIN);
		assert_int_equal(hpn_recv_wait(ep, in, 4, 2000), 0);
	}
	restart_then(ep, 1, 2);
	close(fa);
	hpn_ep_destroy(ep);
}

/* The same, received by an application that polls only when a receive
 * returns nothing (hpn_recv_wait's pattern), caught up when the real feed
 * comes: the restart is raised inside the very receive call that reads
 * the datagrams (inline) or while the progress thread hands them over -
 * that burst still ends at the stray's message (the new start's once came
 * in the same burst, before the event). */
static void feed_stray_no_poll(const char *progress, bool poll)
{
	char cfg[256];
	hpn_ep *ep;
	struct sockaddr_in a;
	int fa = kernel_sock(0, &a);
	const char *stray[] = {"STRAY"}, *real[] = {"ADD 1"};
	struct hpn_msg in[8];
	struct hpn_event ev;
	uint8_t pkt[512];
	uint64_t t0;
	uint16_t port;
	int r;

	snprintf(cfg, sizeof(cfg), "plugin=udp,framing=none,seq=moldudp64,progress=%s", progress);
	ep = e2e_make(cfg, NULL);
	assert_int_equal(hpn_listen(ep, "127.0.0.1:0"), 0);
	port = ep_port(ep);
	to_ep(fa, port, pkt, mold(pkt, "OLDSESSION", 5000000, 1, stray));
	for (t0 = now_ms(); (r = hpn_recv_wait(ep, in, 8, 100)) == 0 && now_ms() - t0 < 2000;)
		while (hpn_poll(ep, &ev, 1) == 1) /* the line's PEER_NEW */
			assert_int_not_equal(ev.type, HPN_EV_FEED_RESTART);
	assert_int_equal(r, 1);
	assert_int_equal(in[0].seq, 5000000);
	hpn_buf_put(ep, in[0].data);
	/* Caught up; the real feed's first two packets come together. */
	to_ep(fa, port, pkt, mold(pkt, "SESSION001", 1, 1, real));
	to_ep(fa, port, pkt, mold(pkt, "SESSION001", 2, 1, real));
	usleep(100000);
	assert_int_equal(hpn_recv_wait(ep, in, 8, 2000), 0); /* an event waits */
	if (poll) {
		do
			assert_int_equal(hpn_poll(ep, &ev, 1), 1);
		while (ev.type != HPN_EV_FEED_RESTART);
		assert_int_equal(ev.seq, 1);
	} else {
		/* An application that never polls is held up for 10 ms at
		 * most: then the new start's messages come (the event after). */
		assert_int_equal(hpn_recv_burst(ep, in, 8), 0);
		usleep(20000);
	}
	for (uint64_t q = 1; q <= 2; q++) {
		struct hpn_msg m = recv_one(ep, 2000);

		assert_int_equal(m.seq, q);
		hpn_buf_put(ep, m.data);
	}
	close(fa);
	hpn_ep_destroy(ep);
}

static void test_feed_stray_no_poll(void **st)
{
	(void)st;
	feed_stray_no_poll("inline", true);
	feed_stray_no_poll("thread", true);
	feed_stray_no_poll("inline", false);
}

static void test_feed_stray_first(void **st)
{
	(void)st;
	feed_stray_first("inline");
	feed_stray_first("thread");
}

static void test_feed_inline(void **st)
{
	feed_case("inline");
}

static void test_feed_thread(void **st)
{
	feed_case("thread");
}

/* A gap asked for again: the answer comes by unicast from the request
 * server we connected to - no line's datagram, but the feed's. */
static void test_feed_retransmission(void **st)
{
	hpn_ep *ep = e2e_make("plugin=udp,framing=none,seq=moldudp64,gap_timeout_us=1000,mcast_if=127.0.0.1", NULL);
	struct sockaddr_in srv, grp = {.sin_family = AF_INET, .sin_port = htons(18991)};
	int fs = kernel_sock(0, &srv), fg = socket(AF_INET, SOCK_DGRAM, 0);
	struct in_addr lo = {htonl(0x7f000001)};
	const char *m1[] = {"A"}, *m3[] = {"C"}, *m2[] = {"B"};
	uint8_t pkt[128], req[64];
	struct hpn_feed_line lines[3];
	struct hpn_event ev;
	struct hpn_msg m;
	hpn_peer_t rs;
	char who[64];
	size_t n;

	inet_pton(AF_INET, "239.77.9.1", &grp.sin_addr);
	assert_int_equal(setsockopt(fg, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof(lo)), 0);
	assert_int_equal(hpn_listen(ep, "239.77.9.1:18991"), 0);
	snprintf(who, sizeof(who), "127.0.0.1:%u", ntohs(srv.sin_port));
	assert_int_equal(hpn_connect(ep, who, 1000, &rs), 0);
	n = mold(pkt, "SESSION001", 1, 1, m1);
	assert_int_equal(sendto(fg, pkt, n, 0, (struct sockaddr *)&grp, sizeof(grp)), (ssize_t)n);
	n = mold(pkt, "SESSION001", 3, 1, m3);
	assert_int_equal(sendto(fg, pkt, n, 0, (struct sockaddr *)&grp, sizeof(grp)), (ssize_t)n);
	for (int i = 0; i < 2; i++)
		hpn_buf_put(ep, recv_one(ep, 2000).data);
	ev = wait_event(ep, HPN_EV_GAP, NULL, 0, 2000);
	assert_int_equal(ev.seq, 2);
	/* Ask the request server, which answers by unicast. */
	assert_int_equal(hpn_moldudp64_request(req, sizeof(req), "SESSION001", ev.seq, (uint32_t)ev.count), 20);
	assert_int_equal(hpn_send(ep, rs, req, 20), 0);
	assert_int_equal(recv(fs, req, sizeof(req), 0), 20);
	n = mold(pkt, "SESSION001", 2, 1, m2);
	to_ep(fs, 18991, pkt, n);
	m = recv_one(ep, 2000);
	assert_int_equal(m.seq, 2);
	assert_memory_equal(m.data, "B", 1);
	hpn_buf_put(ep, m.data);
	assert_int_equal(hpn_feed_lines(ep, lines, 3), 2);
	assert_string_equal(lines[1].addr, "retransmissions");
	assert_int_equal(lines[1].wins, 1);
	/* A stranger's unicast to our port is no line's and no peer's: dropped. */
	{
		struct sockaddr_in x;
		int fx = kernel_sock(0, &x);

		n = mold(pkt, "SESSION001", 4, 1, m1);
		to_ep(fx, 18991, pkt, n);
		usleep(50000);
		assert_int_equal(hpn_recv_burst(ep, &m, 1), 0);
		close(fx);
	}
	close(fs);
	close(fg);
	hpn_ep_destroy(ep);
}

static void test_mold_request(void **st)
{
	uint8_t b[32];
	static const uint8_t want[20] = {'S', 'E', 'S', 'S', 'I', 'O', 'N', '0', '0', '1',
					 0, 0, 0, 0, 0, 0, 0x01, 0x02, 0x00, 0x05};

	assert_int_equal(hpn_moldudp64_request(b, sizeof(b), "SESSION001", 0x102, 5), 20);
	assert_memory_equal(b, want, 20);
	assert_int_equal(hpn_moldudp64_request(b, 19, "SESSION001", 1, 1), -ENOSPC);
	assert_int_equal(hpn_moldudp64_request(b, 20, "SESSION001", 1, 0), -EINVAL);
	assert_int_equal(hpn_moldudp64_request(b, 20, "SESSION001", 1, 0xFFFF), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_refused), cmocka_unit_test(test_listen_refused),
		cmocka_unit_test(test_plain_both_ways), cmocka_unit_test(test_rx_dropped),
		cmocka_unit_test(test_feed_inline),    cmocka_unit_test(test_feed_thread),
		cmocka_unit_test(test_feed_stray_first),  cmocka_unit_test(test_feed_stray_no_poll),
		cmocka_unit_test(test_feed_retransmission), cmocka_unit_test(test_mold_request),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
