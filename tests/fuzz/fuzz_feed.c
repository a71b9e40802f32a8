/*
 * libFuzzer harness for a market-data feed (src/packet/feed.c): hostile
 * datagrams on several lines, under a clock the input moves, into one
 * feed. The first byte picks the extractor (MoldUDP64, MDP3, a field) and
 * the reader's room; then records of [line, clock step, length, packet].
 * Invariants (abort() on breach): a message lies inside its packet, no
 * sequence number is delivered twice, the reader never gets more than
 * the room it gave, every held packet is released at the end.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -Iinclude \
 *       tests/fuzz/fuzz_feed.c src/packet/feed.c -o fuzz_feed
 *   ./fuzz_feed -max_total_time=30 tests/fuzz/corpus_feed
 */
#include "packet/feed.h"

#include <stdlib.h>
#include <string.h>

#define SEEN 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t seen[SEEN]; /* delivered sequence numbers (a small hash set) */
static unsigned nseen, live, room;
static uint64_t seen_restarts; /* a feed that starts again may deliver a number again */

static uint32_t f_room(void *arg)
{
	return room;
}

static void f_deliver(void *arg, const uint8_t *pkt, const uint8_t *msg, uint32_t len, uint64_t seq, uint64_t ts,
		      uint32_t line, bool whole)
{
	unsigned h = (unsigned)(seq * 0x9E3779B97F4A7C15ull >> 52) % SEEN;
	const struct hpn_feed *f = arg;

	if (msg < pkt || !room)
		abort();
	if (f->restarts != seen_restarts) { /* a new start (a stray first, a new session): new numbers */
		memset(seen, 0, sizeof(seen));
		nseen = 0;
		seen_restarts = f->restarts;
	}
	room--;
	for (unsigned i = 0; i < SEEN && seen[h]; i++, h = (h + 1) % SEEN)
		if (seen[h] == seq + 1)
			abort(); /* twice */
	if (nseen < SEEN / 2) {
		for (; seen[h]; h = (h + 1) % SEEN)
			;
		seen[h] = seq + 1;
		nseen++;
	}
	if (len)
		(void)*(volatile const uint8_t *)(msg + len - 1); /* inside (ASan) */
}

static uint8_t *f_keep(void *arg, const uint8_t *pkt, uint32_t len)
{
	uint8_t *k = live < 64 ? malloc(len ? len : 1) : NULL;

	if (k) {
		memcpy(k, pkt, len);
		live++;
	}
	return k;
}

static void f_release(void *arg, uint8_t *kept)
{
	live--;
	free(kept);
}

static void f_gap(void *arg, uint64_t from, uint64_t count, uint32_t line)
{
	if (!count)
		abort();
}

static void f_end(void *arg, uint64_t next, uint32_t line)
{
}

static const struct hpn_feed_ops ops = {f_room, f_deliver, f_keep, f_release, f_gap, f_end};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const specs[] = {"moldudp64", "mdp3", "offset:2,size:8,endian:little"};
	struct hpn_seq_spec s;
	struct hpn_feed *f;
	uint64_t now = 0;
	char why[64];

	if (size < 1)
		return 0;
	memset(seen, 0, sizeof(seen));
	nseen = live = 0;
	seen_restarts = 0;
	hpn_seq_parse(specs[data[0] % 3], &s, why, sizeof(why));
	f = malloc(sizeof(*f));
	if (!f || hpn_feed_init(f, &s, 1000 * (data[0] >> 4), &ops, f)) {
		free(f);
		return 0;
	}
	data++, size--;
	while (size >= 4) {
		uint32_t line = data[0] % (HPN_FEED_LINES_MAX + 1), len = (uint32_t)data[2] | (uint32_t)data[3] << 8;

		now += (uint64_t)data[1] * 37;
		room = data[1] & 0x80 ? data[1] & 7 : 1000;
		data += 4, size -= 4;
		if (len > size)
			len = (uint32_t)size;
		hpn_feed_input(f, line, data, len, now, now);
		data += len, size -= len;
		room = now & 1 ? 3 : 1000;
		hpn_feed_tick(f, now, true);
	}
	room = 1000000;
	hpn_feed_tick(f, now + 10000000, true);
	hpn_feed_fini(f);
	free(f);
	if (live)
		abort(); /* a held packet never released */
	return 0;
}
