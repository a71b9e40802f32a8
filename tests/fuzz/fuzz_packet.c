/*
 * libFuzzer harness for the reliable packet layer's decoder and
 * reassembly (src/packet/wire.c). The input is a sequence of packets, each
 * prefixed by a one-byte length; every packet is decoded, and decoded DATA
 * is fed to one reassembly state, as a receiver would after in-order
 * delivery. Invariants are checked with abort(): the fuzzer reports them.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *       tests/fuzz/fuzz_packet.c src/packet/wire.c -o fuzz_packet
 *   ./fuzz_packet -max_total_time=30 tests/fuzz/corpus
 */
#include "packet/wire.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MSG 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t store[MAX_MSG];
	struct hpn_reasm r = {.buf = store, .max = MAX_MSG};

	while (size) {
		size_t n = data[0];
		struct hpn_pkt p;
		int ret;

		data++;
		size--;
		if (n > size)
			n = size;
		/* Raw first; then with a valid checksum, so the fuzzer also
		 * reaches everything behind the checksum check. */
		static uint8_t fixed[256];

		ret = hpn_pkt_decode(data, n, MAX_MSG, &p);
		/* The raw fast path (wire.h) accepts exactly the raw datagrams
		 * the decoder accepts, with the same length. */
		if (n >= 8) {
			uint32_t session = (uint32_t)data[4] | (uint32_t)data[5] << 8 | (uint32_t)data[6] << 16 |
					   (uint32_t)data[7] << 24;
			int raw = hpn_pkt_raw_check(data, n, session);
			/* (A handshake's RAW flag is its sender's mode, not a raw datagram.) */
			bool is_raw = ret == 0 && p.type == HPN_PKT_DATA && (p.flags & HPN_PKT_F_RAW);

			if ((raw >= 0) != is_raw || (is_raw && raw != p.len))
				abort();
		}
		memcpy(fixed, data, n);
		if (n >= HPN_PKT_HDR)
			hpn_pkt_seal(fixed, n);
		ret = hpn_pkt_decode(fixed, n, MAX_MSG, &p);
		if (ret == 0) {
			/* What the decoder accepts must be inside the input. */
			if (p.payload < fixed || p.payload + p.len > fixed + n)
				abort();
			if (p.type == HPN_PKT_DATA) {
				int done = hpn_reasm_add(&r, &p);

				if (done == 1 && r.got > MAX_MSG)
					abort();
				if (r.total > MAX_MSG || r.got > MAX_MSG)
					abort();
			}
			/* Round trip: re-encoding reproduces the headers. */
			uint8_t hdr[HPN_PKT_HDR + 8 * HPN_PKT_SACK_WORDS];
			size_t h = hpn_pkt_encode(&p, hdr);

			if (h > n || memcmp(hdr, fixed, 20) || memcmp(hdr + HPN_PKT_HDR, fixed + HPN_PKT_HDR, h - HPN_PKT_HDR))
				abort();
		}
		data += n;
		size -= n;
	}
	return 0;
}
