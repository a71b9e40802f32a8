/*
 * libFuzzer harness for the Ethernet / IPv4 / UDP parser and ARP
 * (src/net/frame.c): frames straight from a wire nobody trusts. An
 * accepted datagram must lie inside the frame, and framing its payload
 * again must give a frame that parses to the same datagram. Invariants are
 * checked with abort(): the fuzzer reports them.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *       tests/fuzz/fuzz_frame.c src/net/frame.c -o fuzz_frame
 *   ./fuzz_frame -max_total_time=30 tests/fuzz/corpus_frame
 */
#include "net/frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t again[HPN_NET_HDR + 65536];
	struct hpn_udp4 u, v;
	struct hpn_arp a;

	if (hpn_frame_parse_udp4(data, size, &u) == HPN_FRAME_OK) {
		struct hpn_flow f = {.src_ip = u.src_ip, .dst_ip = u.dst_ip, .src_port = u.src_port,
				     .dst_port = u.dst_port};

		if (u.payload < data || u.payload + u.len > data + size)
			abort();
		memcpy(f.src_mac, u.src_mac, 6);
		memcpy(f.dst_mac, u.dst_mac, 6);
		memcpy(again + HPN_NET_HDR, u.payload, u.len);
		if (hpn_frame_udp4(again, &f, u.len, 1) != HPN_NET_HDR + u.len)
			abort();
		if (hpn_frame_parse_udp4(again, HPN_NET_HDR + u.len, &v) != HPN_FRAME_OK || v.len != u.len ||
		    v.src_ip != u.src_ip || v.dst_port != u.dst_port || memcmp(v.payload, u.payload, u.len))
			abort();
	}
	if (hpn_frame_parse_arp(data, size, &a) && a.op != HPN_ARP_REQUEST && a.op != HPN_ARP_REPLY)
		abort();
	return 0;
}
