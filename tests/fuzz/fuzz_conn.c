/*
 * libFuzzer harness for one message stream (src/packet/conn.c) fed by a
 * hostile peer: after a valid handshake, every input packet reaches
 * hpn_conn_input with the right session (or not) and a valid checksum (or
 * not), interleaved with timer ticks, sends of our own and a receiver
 * that is sometimes full. Memory errors and broken invariants abort.
 *
 * Input: records of [ctl][len][len bytes]; ctl bit 0: patch in the
 * session, bit 1: seal the checksum, bit 2: room 0 (a slow reader), bits
 * 3-4: send 0..3 messages of our own first, bits 5-7: advance the clock
 * by (bits) * 300 us and tick.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc tests/fuzz/fuzz_conn.c \
 *       src/packet/conn.c src/packet/wire.c src/packet/rxwin.c src/packet/txwin.c src/packet/cc.c -o fuzz_conn
 */
#include "packet/conn.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MSG 4096
#define SESSION 0x5eed5eedu

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t room_now;
static size_t sent_bytes;

static void xmit(void *arg, const uint8_t *pkt, size_t len)
{
	(void)arg;
	(void)pkt;
	if (len < HPN_PKT_HDR || len > 1500)
		abort();
	sent_bytes += len;
}

static void deliver(void *arg, const uint8_t *msg, size_t len)
{
	(void)arg;
	if (len > MAX_MSG || !room_now)
		abort(); /* larger than allowed, or past the room we gave */
	room_now--;
	if (len)
		(void)*(volatile const uint8_t *)(msg + len - 1); /* readable */
}

static uint32_t room(void *arg)
{
	(void)arg;
	return room_now;
}

static void gone(void *arg, int status)
{
	(void)arg;
	(void)status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct hpn_conn_ops ops = {.xmit = xmit, .deliver = deliver, .room = room, .gone = gone};
	struct hpn_conn_cfg cfg = {.mtu = 1472, .window = 64, .max_msg = MAX_MSG, .reliable = true};
	static struct hpn_conn c;
	uint8_t pkt[1500], msg[3000] = {0};
	uint64_t now = 1000000;

	if (size && (data[0] & 0x80))
		cfg.reliable = false; /* the first bit picks the mode */
	if (hpn_conn_init(&c, &cfg, &ops, NULL))
		abort();
	room_now = 1000;
	/* The peer's valid COOKIE_ECHO: we accept, as a listener does once
	 * the cookie checks out (hello.c, tested apart), our first sequence
	 * number 0. */
	struct hpn_pkt h = {.type = HPN_PKT_COOKIE_ECHO, .session = SESSION, .first_seq = 7, .window = 64,
			    .max_msg = MAX_MSG, .mtu = 1472};

	hpn_conn_accept(&c, &h, 0, now);
	while (size >= 2) {
		uint8_t ctl = data[0];
		size_t len = data[1];

		data += 2;
		size -= 2;
		if (len > size)
			len = size;
		room_now = ctl & 4 ? 0 : 1000;
		for (unsigned i = 0; i < ((ctl >> 3) & 3u); i++) {
			struct hpn_conn_msg m = {msg, (uint32_t)(i == 2 ? sizeof(msg) : 40), false};

			hpn_conn_send(&c, &m, 1, now);
		}
		memcpy(pkt, data, len);
		if ((ctl & 1) && len >= 8)
			memcpy(pkt + 4, &(uint32_t){SESSION}, 4); /* little-endian host */
		if ((ctl & 2) && len >= HPN_PKT_HDR)
			hpn_pkt_seal(pkt, len);
		hpn_conn_input(&c, pkt, len, now);
		if (ctl >> 5) {
			now += (uint64_t)(ctl >> 5) * 300000;
			hpn_conn_tick(&c, now);
		}
		if (hpn_seq_lt(c.tx.next, c.tx.una) || c.backlog > c.rx.size || c.rx.held > c.rx.size)
			abort();
		data += len;
		size -= len;
	}
	hpn_conn_fini(&c);
	return 0;
}
