/*
 * test_dpdk_e2e.c - what the dpdk backend has that the others lack, in one
 * process: two endpoints over a memif pair (net_memif0 the server,
 * net_memif1 the client, one socket) under one EAL, destroyed and made
 * again; and its configuration errors, each clear. The conformance suite
 * (tests/conformance) covers the rest across processes and namespaces.
 * Skipped (77) with the reason where the dpdk plugin cannot run.
 */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <cmocka.h>

#include <hpn/hpn.h>

#include "../e2e.h"

static char sock[64];
static char srv_cfg[256], cli_cfg[256];

#define SRV_ADDR "10.76.0.2:18790"

static void exchange(hpn_ep *a, hpn_ep *b, hpn_peer_t ab, hpn_peer_t ba, uint32_t size, unsigned count)
{
	static uint8_t buf[9000];
	unsigned sent = 0, got = 0, back = 0;
	uint64_t t0 = now_ms();

	while (got < count || back < count) {
		struct hpn_msg in[32];
		int r;

		if (sent < count) {
			fill(buf, size, sent);
			r = hpn_send(a, ab, buf, size);
			if (r == 0)
				sent++;
			else if (r != -EAGAIN)
				fail_msg("send: %d %s", r, hpn_last_error());
		}
		r = hpn_recv_burst(b, in, 32);
		for (int i = 0; i < r; i++) { /* b echoes what it gets, in the same buffer */
			assert_int_equal(in[i].len, size);
			assert_int_equal(check(in[i].data, in[i].len), got);
			got++;
			in[i].peer = ba;
			while (hpn_send_zc_burst(b, &in[i], 1) == -EAGAIN)
				hpn_poll(b, NULL, 0);
		}
		r = hpn_recv_burst(a, in, 32);
		for (int i = 0; i < r; i++) {
			assert_int_equal(check(in[i].data, in[i].len), back);
			back++;
			hpn_buf_put(a, in[i].data);
		}
		if (now_ms() - t0 > 20000)
			fail_msg("%u B: %u sent, %u there, %u back after 20 s", size, sent, got, back);
	}
}

/* Two endpoints, one EAL; then both gone and both again - on another
 * memif socket: DPDK 22.11's memif keeps a server's listening socket
 * after its device is removed, so the same name cannot be bound again in
 * the same process (docs/CONFIG.md). */
static void test_two_in_one_process(void **state)
{
	(void)state;
	for (int round = 0; round < 2; round++) {
		hpn_ep *s, *c;
		char sc[256], cc[256];

		snprintf(sc, sizeof(sc), srv_cfg, round);
		snprintf(cc, sizeof(cc), cli_cfg, round);
		s = e2e_make(sc, NULL);
		c = e2e_make(cc, NULL);
		hpn_peer_t sp, cp;
		struct hpn_stats st;

		assert_int_equal(hpn_listen(s, SRV_ADDR), 0);
		cp = connect_pair_ms(s, c, SRV_ADDR, &sp, 10000);
		exchange(c, s, cp, sp, 64, 2000);
		exchange(c, s, cp, sp, 1400, 500);
		exchange(c, s, cp, sp, 8000, 200); /* fragmented */
		hpn_ep_stats(c, &st, sizeof(st));
		print_message("round %d: %s\n", round, hpn_ep_describe(c));
		/* A poll-mode device has nothing to sleep on: wait=adaptive (the
		 * default) spins, and the description says so. */
		assert_non_null(strstr(hpn_ep_describe(c), "wait adaptive (spins: the backend polls its device"));
		hpn_ep_destroy(s);
		hpn_ep_destroy(c);
	}
}

/* A send that must wait for its frames: drive both ends until it is
 * taken, and say how many refusals that took. */
static unsigned send_counting(hpn_ep *ep, hpn_ep *other, struct hpn_msg *m)
{
	unsigned refused = 0;
	int r;

	while ((r = hpn_send_zc_burst(ep, m, 1)) == -EAGAIN) {
		refused++;
		hpn_poll(ep, NULL, 0);
		hpn_poll(other, NULL, 0);
		if (refused > 10000000)
			fail_msg("a %u-byte send refused %u times", m->len, refused);
	}
	if (r != 1)
		fail_msg("send %u B: %d %s", m->len, r, hpn_last_error());
	return refused;
}

static struct hpn_msg recv_one(hpn_ep *ep, hpn_ep *other)
{
	struct hpn_msg in;
	uint64_t t0 = now_ms();

	while (hpn_recv_burst(ep, &in, 1) != 1) {
		hpn_poll(other, NULL, 0);
		if (now_ms() - t0 > 20000)
			fail_msg("no message in 20 s");
	}
	return in;
}

/* The largest messages ping-pong: once the echo is back, the frames of the
 * message it answers are acknowledged (the echo carries the ack), so the
 * next message is taken at once. The send frame cache was topped up only
 * below half its size: the acks each side sends take frames the driver
 * frees to the pool, the cache fell below what a 1 MiB message needs and
 * stayed there, and every message waited for a window probe (100 ms) -
 * 200 ms per 1 MiB round trip on memif, 1 ms on udp. */
static void test_largest_messages(void **state)
{
	char sc[256], cc[256];
	const uint32_t size = 1 << 20;
	unsigned waits = 0;

	(void)state;
	snprintf(sc, sizeof(sc), srv_cfg, 9);
	snprintf(cc, sizeof(cc), cli_cfg, 9);
	hpn_ep *s = e2e_make(sc, "max_msg=1048576");
	hpn_ep *c = e2e_make(cc, "max_msg=1048576");
	hpn_peer_t sp, cp;

	assert_int_equal(hpn_listen(s, SRV_ADDR), 0);
	cp = connect_pair_ms(s, c, SRV_ADDR, &sp, 10000);
	assert_int_equal(hpn_ep_caps(c)->max_msg_size, size);
	for (unsigned k = 0; k < 40; k++) {
		struct hpn_msg m = {.peer = cp, .len = size};
		void *data;
		unsigned w;

		assert_int_equal(hpn_buf_get_sized(c, size, &data), 0);
		m.data = data;
		fill(m.data, size, k);
		w = send_counting(c, s, &m);
		m = recv_one(s, c);
		assert_int_equal(check(m.data, m.len), k);
		m.peer = sp; /* echoed in the buffer it came in */
		w += send_counting(s, c, &m);
		m = recv_one(c, s);
		assert_int_equal(m.len, size);
		assert_int_equal(check(m.data, m.len), k);
		hpn_buf_put(c, m.data);
		if (k >= 2) /* the first ones may wait while the caches fill */
			waits += w;
	}
	print_message("40 x 1 MiB echoed; sends refused after the first two: %u\n", waits);
	assert_int_equal(waits, 0);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

/* The same port twice in one process: the second is refused, clearly,
 * and neither that nor a failed open of another device harms the first. */
static void test_port_busy(void **state)
{
	char sc[256], cc[256];
	hpn_ep *s, *c, *again = NULL;
	hpn_peer_t sp, cp;
	int ret;

	(void)state;
	snprintf(sc, sizeof(sc), srv_cfg, 7);
	snprintf(cc, sizeof(cc), cli_cfg, 7);
	s = e2e_make(sc, NULL);
	assert_int_equal(hpn_listen(s, SRV_ADDR), 0);
	ret = hpn_ep_create(sc, &again);
	print_message("second endpoint on net_memif0: %d %s\n", ret, hpn_last_error());
	assert_int_equal(ret, -EBUSY);
	assert_non_null(strstr(hpn_last_error(), "in use by another endpoint"));
	assert_int_not_equal(hpn_ep_create("plugin=dpdk,vdev=net_nosuchdriver1,ip=10.76.0.3/24", &again), 0);
	c = e2e_make(cc, NULL);
	cp = connect_pair_ms(s, c, SRV_ADDR, &sp, 10000);
	exchange(c, s, cp, sp, 1400, 200);
	hpn_ep_destroy(c);
	hpn_ep_destroy(s);
}

static void refused(const char *cfg, int err, const char *needle)
{
	hpn_ep *ep = NULL;
	int ret = hpn_ep_create(cfg, &ep);

	print_message("%s -> %d %s\n", cfg, ret, hpn_last_error());
	assert_null(ep);
	if (err)
		assert_int_equal(ret, err);
	else
		assert_true(ret < 0);
	assert_non_null(strstr(hpn_last_error(), needle));
}

/* The application's log handler writes to stderr - as hpnbench's does, and
 * HPN_LOG_LEVEL's: while the EAL starts, stderr is hpn's capture of
 * DPDK's writes, and a line the handler wrote there came back to the
 * handler under its own lock (the process hung for good). */
static void to_stderr(void *arg, enum hpn_log_level level, const char *msg)
{
	(void)arg;
	fprintf(stderr, "# log %d: %s\n", (int)level, msg);
}

static void test_config_errors(void **state)
{
	(void)state;
	/* First of all in this process: a port named that is no PCI address
	 * starts the EAL without it (as -a it failed the EAL's start, for
	 * good: every later endpoint of the process was refused), with
	 * DPDK's errors logged to stderr by the handler. */
	hpn_log_set_handler(to_stderr, NULL, HPN_LOG_WARN);
	refused("plugin=dpdk,port=nosuchport,ip=10.76.0.1/24", 0, "port=nosuchport");
	hpn_log_set_handler(NULL, NULL, HPN_LOG_ERROR);
	refused("plugin=dpdk,ip=10.76.0.1/24", -EINVAL, "port=PCI_ADDRESS or vdev=");
	refused("plugin=dpdk,port=0000:00:00.0,vdev=net_null0,ip=10.76.0.1/24", -EINVAL, "both given");
	refused("plugin=dpdk,vdev=net_null0", -EINVAL, "needs ip=");
	refused("plugin=dpdk,vdev=net_null0,ip=10.76.0.1/33", -EINVAL, "ip='10.76.0.1/33'");
	refused("plugin=dpdk,vdev=net_null0,ip=239.1.1.1/24", -EINVAL, "ip='239.1.1.1/24'");
	refused("plugin=dpdk,vdev=net_null0,ip=10.76.0.1", -EINVAL, "A.B.C.D/N"); /* the prefix is not guessed */
	refused("plugin=dpdk,vdev=net_null0,ip=10.76.0.255/24", -EINVAL, "broadcast");
	refused("plugin=dpdk,vdev=net_null0,ip=10.76.0.1/24,gw=10.77.0.1", -EINVAL, "not on ip=");
	refused("plugin=dpdk,vdev=net_null0,ip=10.76.0.1/24,gw=10.76.0.1", -EINVAL, "own address");
	refused("plugin=dpdk,vdev=\"net_null0,ip=10.76.0.1/24", -EINVAL, "double quote is not closed");
	refused("plugin=dpdk,vdev=net_nosuchdriver0,ip=10.76.0.1/24", -ENODEV, "no DPDK driver of that name");
	refused("plugin=dpdk,vdev=net_null0,ip=10.76.0.1/24,mbufs=maybe", -EINVAL, "mbufs='maybe'");
	refused("plugin=dpdk,vdev=net_null0,ip=10.76.0.1/24,mtu=9000", -EINVAL, "mtu");
	/* DPDK's own 2 KiB mbufs (mbufs=copy) carry less than the frames. */
	refused("plugin=dpdk,vdev=net_null0,ip=10.76.0.1/24,mbufs=copy,mtu=3000", -EINVAL, "mtu=3000 out of range");
	refused("plugin=dpdk,vdev=net_null0,ip=10.76.0.1/24,eal=\"--no-pci -h\"", -EINVAL, "print and exit");
	/* getopt takes abbreviations and clusters: each of these printed and
	 * ended the process with status 0. */
	refused("plugin=dpdk,vdev=net_null0,ip=10.76.0.1/24,eal=\"--no-pci --hel\"", -EINVAL, "print and exit");
	refused("plugin=dpdk,vdev=net_null0,ip=10.76.0.1/24,eal=\"-vh\"", -EINVAL, "print and exit");
	refused("plugin=dpdk,vdev=net_null0,ip=10.76.0.1/24,eal=\"--log-level=help\"", -EINVAL, "print and exit");
	refused("plugin=dpdk,vdev=net_null0,ip=10.76.0.1/24,eal=\"--log-level help\"", -EINVAL, "print and exit");
	refused("plugin=dpdk,vdev=net_null0,ip=10.76.0.1/24,eal=\"--vers\"", -EINVAL, "print and exit");
}

/* An address that is not ours, ourselves, and off the subnet. */
static void test_address_errors(void **state)
{
	hpn_ep *c = e2e_make("plugin=dpdk,vdev=net_null0,ip=10.76.0.1/24,bufs=256,hugepages=off", NULL);
	hpn_peer_t p;

	(void)state;
	assert_int_equal(hpn_listen(c, "10.76.0.9:1"), -EADDRNOTAVAIL);
	assert_int_equal(hpn_connect(c, "10.76.0.1:5", 0, &p), -EINVAL); /* this host */
	assert_non_null(strstr(hpn_last_error(), "does not loop back"));
	assert_int_equal(hpn_connect(c, "192.0.2.1:5", 0, &p), -ENETUNREACH);
	assert_non_null(strstr(hpn_last_error(), "no gw= is set"));
	hpn_ep_destroy(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_two_in_one_process),
		cmocka_unit_test(test_port_busy),
		cmocka_unit_test(test_largest_messages),
		cmocka_unit_test(test_address_errors),
	};
	const char *why;

	if (!e2e_usable("dpdk", &why)) {
		printf("skip: the dpdk plugin cannot run here: %s\n", why);
		return 77;
	}
	/* On one CPU (where there are two), so the EAL moves its interrupt
	 * thread to another: DPDK 22.11's memif unmaps a ring from that thread
	 * when its peer leaves, unsynchronised with a poller it might preempt
	 * (docs/CONFIG.md). */
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(0, &one);
	if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
		sched_setaffinity(0, sizeof(one), &one);
	snprintf(sock, sizeof(sock), "/tmp/hpn-dpdk-e2e-%d.sock", (int)getpid());
	snprintf(srv_cfg, sizeof(srv_cfg),
		 "plugin=dpdk,vdev=\"net_memif0,role=server,socket=%s.%%d\",ip=10.76.0.2/24,bufs=256,hugepages=off", sock);
	snprintf(cli_cfg, sizeof(cli_cfg),
		 "plugin=dpdk,vdev=\"net_memif1,role=client,socket=%s.%%d\",ip=10.76.0.1/24,bufs=256,hugepages=off", sock);
	int ret = cmocka_run_group_tests(tests, NULL, NULL);

	unlink(sock);
	return ret;
}
