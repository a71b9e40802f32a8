/*
 * e2e.h - helpers shared by the backends' end-to-end tests (public API
 * only). Include after <cmocka.h> and <hpn/hpn.h>.
 */
#ifndef HPN_TESTS_E2E_H
#define HPN_TESTS_E2E_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Whether the plugin `name` loads here; if not, *why says why. */
static inline bool e2e_usable(const char *name, const char **why)
{
	const struct hpn_plugin_info *list;
	int n = hpn_plugin_list(&list);
	bool usable = false;

	*why = "the plugin was not found";
	for (int i = 0; i < n; i++) {
		if (!strcmp(list[i].name, name)) {
			usable = list[i].status == 0;
			*why = list[i].reason;
		}
	}
	return usable;
}

/* An endpoint from a base configuration plus extra keys (may be NULL). */
static inline hpn_ep *e2e_make(const char *base, const char *extra)
{
	char cfg[512];
	hpn_ep *ep = NULL;
	int ret;

	snprintf(cfg, sizeof(cfg), "%s%s%s", base, extra && *extra ? "," : "", extra ? extra : "");
	ret = hpn_ep_create(cfg, &ep);
	if (ret)
		fprintf(stderr, "hpn_ep_create(%s): %s\n", cfg, hpn_last_error());
	assert_int_equal(ret, 0);
	return ep;
}

/* Wait for an event of `type` on ep, polling the others too so their
 * handshakes progress. Other events met on the way are reported. */
static inline struct hpn_event wait_event(hpn_ep *ep, enum hpn_event_type type, hpn_ep **others, int nothers,
					  int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	struct hpn_event ev = {0};

	while (now_ms() < deadline) {
		struct hpn_event tmp;

		for (int i = 0; i < nothers; i++)
			hpn_poll(others[i], &tmp, 0);
		if (hpn_poll(ep, &ev, 1) == 1) {
			if (ev.type == type)
				return ev;
			fprintf(stderr, "# (event %d peer %u status %d while waiting for %d)\n", ev.type, ev.peer,
				ev.status, type);
			continue;
		}
		usleep(100);
	}
	fail_msg("no event %d within %d ms", type, timeout_ms);
	return ev;
}

/* Asynchronous connect, both sides driven from this thread. */
static inline hpn_peer_t connect_pair_ms(hpn_ep *server, hpn_ep *client, const char *addr, hpn_peer_t *srv_side,
					 int timeout_ms)
{
	hpn_peer_t peer;
	struct hpn_event ev;
	int ret = hpn_connect(client, addr, 0, &peer);

	if (ret != -EINPROGRESS)
		fail_msg("connect %s: %d %s", addr, ret, hpn_last_error());
	ev = wait_event(server, HPN_EV_PEER_NEW, &client, 1, timeout_ms);
	if (srv_side)
		*srv_side = ev.peer;
	ev = wait_event(client, HPN_EV_CONNECTED, &server, 1, timeout_ms);
	assert_int_equal(ev.peer, peer);
	return peer;
}

/* Message content: seq, then bytes derived from seq, so corruption,
 * truncation and reordering are all visible. */
static inline void fill(uint8_t *p, uint32_t len, uint64_t seq)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seq * 31 + i * 7);
	if (len >= 8)
		memcpy(p, &seq, 8);
}

static inline uint64_t check(const uint8_t *p, uint32_t len)
{
	uint64_t seq = 0;

	if (len >= 8)
		memcpy(&seq, p, 8);
	for (uint32_t i = 8; i < len; i++)
		if (p[i] != (uint8_t)(seq * 31 + i * 7))
			fail_msg("payload byte %u of seq %llu corrupt", i, (unsigned long long)seq);
	return seq;
}

#endif
