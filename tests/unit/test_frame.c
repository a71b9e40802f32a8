/* Ethernet / IPv4 / UDP framing and ARP (src/net/frame.c): frames built
 * here are checked against a byte-by-byte reference (RFC 1071's sum,
 * computed the plain way, and a frame laid out by hand field by field);
 * every malformed frame is refused with its reason. That a kernel UDP
 * socket accepts them is for the af_xdp tests across namespaces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/frame.h"

#include <arpa/inet.h>
#include <string.h>

/* RFC 1071 the slow, obvious way: big-endian 16-bit words. */
static uint16_t ref_csum(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static const struct hpn_flow flow = {
	.src_mac = {0x02, 0, 0, 0, 0, 1},
	.dst_mac = {0x02, 0, 0, 0, 0, 2},
	.ttl = 0,
};

static struct hpn_flow make_flow(void)
{
	struct hpn_flow f = flow;

	f.src_ip = inet_addr("10.77.0.1");
	f.dst_ip = inet_addr("10.77.0.2");
	f.src_port = htons(40000);
	f.dst_port = htons(18515);
	return f;
}

/* Every payload length 0..1500 (odd ones test the padding byte): both
 * checksums match the reference, and the frame parses back. */
static void test_build_matches_reference(void **state)
{
	static uint8_t frame[HPN_NET_HDR + 1500];
	struct hpn_flow f = make_flow();
	struct hpn_udp4 u;

	(void)state;
	for (size_t n = 0; n <= 1500; n++) {
		for (size_t i = 0; i < n; i++)
			frame[HPN_NET_HDR + i] = (uint8_t)(i * 7 + n);
		assert_int_equal(hpn_frame_udp4(frame, &f, n, (uint16_t)n), HPN_NET_HDR + n);
		const uint8_t *ip = frame + HPN_ETH_HLEN, *udp = ip + HPN_IP4_HLEN;
		uint8_t pseudo[12];

		assert_int_equal(ref_csum(ip, HPN_IP4_HLEN, 0), 0); /* header sums to all ones */
		memcpy(pseudo, ip + 12, 8);
		pseudo[8] = 0;
		pseudo[9] = 17;
		pseudo[10] = udp[4];
		pseudo[11] = udp[5];
		uint32_t ps = 0;

		for (int i = 0; i < 12; i += 2)
			ps += (uint32_t)(pseudo[i] << 8 | pseudo[i + 1]);
		assert_int_equal(ref_csum(udp, HPN_UDP_HLEN + n, ps), 0);
		assert_int_equal(hpn_frame_parse_udp4(frame, HPN_NET_HDR + n, &u), HPN_FRAME_OK);
		assert_int_equal(u.len, n);
		assert_ptr_equal(u.payload, frame + HPN_NET_HDR);
		assert_int_equal(u.src_ip, f.src_ip);
		assert_int_equal(u.dst_port, f.dst_port);
		assert_memory_equal(u.src_mac, f.src_mac, 6);
	}
	assert_int_equal(hpn_frame_udp4(frame, &f, 65508, 0), 0); /* beyond IPv4 */
}

/* A UDP/IPv4 frame laid out by hand, field by field, as RFC 791/768 and
 * the kernel's ip_output put it (DF set, TTL 64, no options):
 * 10.77.0.1:40000 -> 10.77.0.2:18515, "hello", checksums zero here. */
static const uint8_t kernel_frame[] = {
	0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, /* Ethernet */
	0x45, 0x00, 0x00, 0x21, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,             /* IPv4 ... */
	0x0a, 0x4d, 0x00, 0x01, 0x0a, 0x4d, 0x00, 0x02,                                     /* ...addrs */
	0x9c, 0x40, 0x48, 0x53, 0x00, 0x0d, 0x00, 0x00,                                     /* UDP */
	'h',  'e',  'l',  'l',  'o',
};

/* Ours and the hand-made one agree byte for byte (its checksums filled
 * in by the reference sum). */
static void test_same_bytes_as_reference(void **state)
{
	uint8_t ref[sizeof(kernel_frame)], ours[sizeof(kernel_frame)];
	struct hpn_flow f = make_flow();
	uint32_t ps = 0;
	uint16_t c;

	(void)state;
	memcpy(ref, kernel_frame, sizeof(ref));
	c = ref_csum(ref + 14, 20, 0);
	ref[24] = (uint8_t)(c >> 8);
	ref[25] = (uint8_t)c;
	for (int i = 26; i < 34; i += 2)
		ps += (uint32_t)(ref[i] << 8 | ref[i + 1]);
	ps += 17 + 13;
	c = ref_csum(ref + 34, 13, ps);
	ref[40] = (uint8_t)(c >> 8);
	ref[41] = (uint8_t)c;
	memcpy(ours + HPN_NET_HDR, "hello", 5);
	assert_int_equal(hpn_frame_udp4(ours, &f, 5, 0x1234), sizeof(ours));
	assert_memory_equal(ours, ref, sizeof(ref));
}

static void expect(const uint8_t *frame, size_t len, enum hpn_frame_err e)
{
	struct hpn_udp4 u;
	enum hpn_frame_err got = hpn_frame_parse_udp4(frame, len, &u);

	if (got != e)
		fail_msg("expected \"%s\", got \"%s\"", hpn_frame_strerror(e), hpn_frame_strerror(got));
}

/* Untrusted frames: every malformation refused, with its reason; padding
 * and a VLAN tag accepted; a zero UDP checksum means none. */
static void test_parse_refuses(void **state)
{
	uint8_t good[HPN_NET_HDR + 20], b[sizeof(good) + 4];
	struct hpn_flow f = make_flow();
	struct hpn_udp4 u;
	size_t n = hpn_frame_udp4(good, &f, 20, 7);

	(void)state;
	for (size_t len = 0; len < n; len++)
		expect(good, len, HPN_FRAME_TRUNC);
	memcpy(b, good, n);
	b[12] = 0x86; /* IPv6 */
	b[13] = 0xdd;
	expect(b, n, HPN_FRAME_NOT_IP4);
	memcpy(b, good, n);
	b[14 + 9] = 1; /* ICMP */
	expect(b, n, HPN_FRAME_NOT_UDP);
	memcpy(b, good, n);
	b[14] = 0x65; /* version 6 */
	expect(b, n, HPN_FRAME_BAD_IP);
	memcpy(b, good, n);
	b[14] = 0x44; /* header of 16 bytes */
	expect(b, n, HPN_FRAME_BAD_IP);
	memcpy(b, good, n);
	b[14 + 8] ^= 1; /* TTL changed, checksum not */
	expect(b, n, HPN_FRAME_IP_CSUM);
	memcpy(b, good, n);
	b[n - 1] ^= 0x40; /* a payload bit */
	expect(b, n, HPN_FRAME_UDP_CSUM);
	memcpy(b, good, n);
	b[34 + 5] = 100; /* UDP length beyond the IPv4 one */
	expect(b, n, HPN_FRAME_BAD_UDP);
	/* A fragment (more-fragments bit), checksum fixed up. */
	memcpy(b, good, n);
	b[14 + 6] = 0x20;
	b[14 + 10] = b[14 + 11] = 0;
	uint16_t c = hpn_inet_csum(b + 14, 20, 0);

	memcpy(b + 14 + 10, &c, 2);
	expect(b, n, HPN_FRAME_FRAGMENT);
	/* Ethernet padding after the datagram: ignored. */
	memcpy(b, good, n);
	memset(b + n, 0xee, 4);
	assert_int_equal(hpn_frame_parse_udp4(b, n + 4, &u), HPN_FRAME_OK);
	assert_int_equal(u.len, 20);
	/* No UDP checksum (0): taken as sent. */
	memcpy(b, good, n);
	b[34 + 6] = b[34 + 7] = 0;
	b[n - 1] ^= 1;
	assert_int_equal(hpn_frame_parse_udp4(b, n, &u), HPN_FRAME_OK);
	/* An 802.1Q tag (VLAN 5) in front of the IPv4 ethertype. */
	memcpy(b, good, 12);
	b[12] = 0x81;
	b[13] = 0x00;
	b[14] = 0x00;
	b[15] = 0x05;
	memcpy(b + 16, good + 12, n - 12);
	assert_int_equal(hpn_frame_parse_udp4(b, n + 4, &u), HPN_FRAME_OK);
	assert_int_equal(u.vlan, 5);
	assert_int_equal(u.len, 20);
	assert_string_equal(hpn_frame_strerror(HPN_FRAME_UDP_CSUM), "bad UDP checksum");
}

/* Offload: what a device makes of hpn_frame_udp4_offload's headers (the
 * IPv4 checksum over the header; the UDP one over header and payload
 * starting from the pseudo-header sum left in the field, complemented)
 * is hpn_frame_udp4's frame, byte for byte; and a parse told the device
 * checked a checksum does not check it again. */
static void test_offload(void **state)
{
	struct hpn_flow f = {.src_mac = {2, 0, 0, 0, 0, 1}, .dst_mac = {2, 0, 0, 0, 0, 2},
			     .src_ip = htonl(0x0a000001), .dst_ip = htonl(0x0a000002),
			     .src_port = htons(40000), .dst_port = htons(18515)};
	static uint8_t a[2048], b[2048];
	struct hpn_udp4 p;

	(void)state;
	for (size_t len = 0; len < 1473; len += 37) {
		for (size_t i = 0; i < len; i++)
			a[HPN_NET_HDR + i] = b[HPN_NET_HDR + i] = (uint8_t)(i * 131 + len);
		size_t n = hpn_frame_udp4(a, &f, len, 7), m = hpn_frame_udp4_offload(b, &f, len, 7);
		uint8_t *ip = b + HPN_ETH_HLEN, *udp = ip + HPN_IP4_HLEN;
		uint16_t c;

		assert_int_equal(n, m);
		c = hpn_inet_csum(ip, HPN_IP4_HLEN, 0);
		memcpy(ip + 10, &c, 2);
		c = hpn_inet_csum(udp, HPN_UDP_HLEN + len, 0);
		if (!c)
			c = 0xffff;
		memcpy(udp + 6, &c, 2);
		assert_memory_equal(a, b, n);
	}
	hpn_frame_udp4(a, &f, 100, 9);
	a[HPN_NET_HDR + 5] ^= 1; /* payload corrupt: the UDP checksum fails... */
	assert_int_equal(hpn_frame_parse_udp4(a, HPN_NET_HDR + 100, &p), HPN_FRAME_UDP_CSUM);
	/* ... unless the device says it checked it */
	assert_int_equal(hpn_frame_parse_udp4_verified(a, HPN_NET_HDR + 100, &p, HPN_FRAME_UDP_VERIFIED), HPN_FRAME_OK);
	a[HPN_ETH_HLEN + 8] ^= 1; /* TTL: the IPv4 header checksum fails */
	assert_int_equal(hpn_frame_parse_udp4_verified(a, HPN_NET_HDR + 100, &p, HPN_FRAME_UDP_VERIFIED),
			 HPN_FRAME_IP_CSUM);
	assert_int_equal(hpn_frame_parse_udp4_verified(a, HPN_NET_HDR + 100, &p,
						       HPN_FRAME_UDP_VERIFIED | HPN_FRAME_IP_VERIFIED), HPN_FRAME_OK);
}

static void test_arp(void **state)
{
	uint8_t frame[64];
	struct hpn_arp a = {.op = HPN_ARP_REQUEST, .sha = {2, 0, 0, 0, 0, 1}}, b;

	(void)state;
	a.spa = inet_addr("10.77.0.1");
	a.tpa = inet_addr("10.77.0.2");
	assert_int_equal(hpn_frame_arp(frame, &a), HPN_ARP_FRAME);
	assert_memory_equal(frame, "\xff\xff\xff\xff\xff\xff", 6);
	assert_true(hpn_frame_parse_arp(frame, HPN_ARP_FRAME, &b));
	assert_int_equal(b.op, HPN_ARP_REQUEST);
	assert_int_equal(b.tpa, a.tpa);
	/* The reply: to the asker, with our address. */
	struct hpn_arp r = {.op = HPN_ARP_REPLY, .sha = {2, 0, 0, 0, 0, 2}, .spa = b.tpa, .tpa = b.spa};

	memcpy(r.tha, b.sha, 6);
	hpn_frame_arp(frame, &r);
	assert_memory_equal(frame, a.sha, 6);
	assert_true(hpn_frame_parse_arp(frame, HPN_ARP_FRAME, &b));
	assert_int_equal(b.op, HPN_ARP_REPLY);
	assert_memory_equal(b.sha, r.sha, 6);
	assert_false(hpn_frame_parse_arp(frame, HPN_ARP_FRAME - 1, &b));
	frame[14 + 7] = 3; /* RARP */
	assert_false(hpn_frame_parse_arp(frame, HPN_ARP_FRAME, &b));
	frame[14 + 7] = 2;
	frame[14 + 4] = 8;
	assert_false(hpn_frame_parse_arp(frame, HPN_ARP_FRAME, &b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_matches_reference),
		cmocka_unit_test(test_same_bytes_as_reference),
		cmocka_unit_test(test_parse_refuses),
		cmocka_unit_test(test_offload),
		cmocka_unit_test(test_arp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
