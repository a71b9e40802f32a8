/* SPDX-License-Identifier: MIT */
/*
 * frame.h - Ethernet / IPv4 / UDP framing for the backends that move raw
 * frames (af_xdp, dpdk): one copy of it, so they put the same wire on the
 * Ethernet that the kernel's UDP puts there, and a kernel peer (udp) takes
 * their datagrams.
 *
 * Checksums are computed here, in software: veth's transmit offload
 * leaves partial UDP checksums that an AF_XDP receiver sees raw and a
 * kernel peer drops (../shared/notes/measured-here.md), and a dpdk port
 * may offer no offload at all. Received frames are checked in full -
 * lengths, IPv4 header checksum, UDP checksum (0: none, allowed in IPv4) -
 * before a byte of payload is trusted: they come from the wire.
 *
 * No allocation, no syscall, no state beyond what the caller passes: the
 * fast path writes 42 bytes of headers in front of a payload that is
 * already in place (the frame's headroom) and sums the payload once.
 */
#ifndef HPN_NET_FRAME_H
#define HPN_NET_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HPN_ETH_HLEN 14
#define HPN_IP4_HLEN 20 /* we send no options; we accept them */
#define HPN_UDP_HLEN 8
#define HPN_NET_HDR (HPN_ETH_HLEN + HPN_IP4_HLEN + HPN_UDP_HLEN) /* 42: headroom a frame needs */
#define HPN_ETH_P_IP 0x0800
#define HPN_ETH_P_ARP 0x0806
#define HPN_ETH_P_8021Q 0x8100

/* One direction of a flow, as it goes on the wire: addresses and ports
 * in network byte order, as the kernel's sockaddr_in holds them. */
struct hpn_flow {
	uint8_t src_mac[6], dst_mac[6];
	uint32_t src_ip, dst_ip;     /* network byte order */
	uint16_t src_port, dst_port; /* network byte order */
	uint8_t ttl;                 /* 0: 64 */
	uint8_t tos;
};

/*
 * Write the Ethernet, IPv4 and UDP headers of a datagram into frame[0, 42)
 * for the payload_len bytes already at frame + HPN_NET_HDR, with both
 * checksums. ip_id: the IPv4 identification (the caller's counter; DF is
 * set, so it only has to differ between datagrams in flight). Returns the
 * frame length, or 0 if the datagram would not fit IPv4 (payload over
 * 65507 bytes).
 */
size_t hpn_frame_udp4(uint8_t *frame, const struct hpn_flow *f, size_t payload_len, uint16_t ip_id);

/* The same headers for a device that computes the checksums (DPDK's
 * RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM): the IPv4 checksum 0,
 * the UDP one holding the pseudo-header's sum (not complemented), as such
 * devices expect; nothing reads the payload. */
size_t hpn_frame_udp4_offload(uint8_t *frame, const struct hpn_flow *f, size_t payload_len, uint16_t ip_id);

/* Why a received frame was refused (counted by the caller). */
enum hpn_frame_err {
	HPN_FRAME_OK = 0,
	HPN_FRAME_NOT_IP4,   /* another ethertype (ARP, IPv6...): not an error, not ours */
	HPN_FRAME_NOT_UDP,   /* IPv4, another protocol (ICMP...): not ours either */
	HPN_FRAME_TRUNC,     /* shorter than its headers say */
	HPN_FRAME_BAD_IP,    /* version, header length, total length */
	HPN_FRAME_FRAGMENT,  /* a fragment: we never send them, so never reassemble them */
	HPN_FRAME_IP_CSUM,   /* IPv4 header checksum */
	HPN_FRAME_BAD_UDP,   /* UDP length disagrees with the IPv4 one */
	HPN_FRAME_UDP_CSUM,  /* UDP checksum */
};

/* A received UDP/IPv4 datagram, pointing into the frame. */
struct hpn_udp4 {
	const uint8_t *src_mac, *dst_mac;
	uint32_t src_ip, dst_ip;     /* network byte order */
	uint16_t src_port, dst_port; /* network byte order */
	const uint8_t *payload;
	uint32_t len;                /* payload bytes */
	uint16_t vlan;               /* 802.1Q tag's VLAN id, 0: untagged */
};

/* Parse frame[0, len): Ethernet (one 802.1Q tag allowed), IPv4, UDP, all
 * checked. Trailing bytes after the IPv4 total length (Ethernet padding)
 * are ignored. Returns HPN_FRAME_OK and *out, or why not. */
enum hpn_frame_err hpn_frame_parse_udp4(const uint8_t *frame, size_t len, struct hpn_udp4 *out);

/* The same, skipping the checksums the device already found good (its
 * receive offload: DPDK's RTE_MBUF_F_RX_IP_CKSUM_GOOD / _L4_CKSUM_GOOD). */
#define HPN_FRAME_IP_VERIFIED 1u
#define HPN_FRAME_UDP_VERIFIED 2u
enum hpn_frame_err hpn_frame_parse_udp4_verified(const uint8_t *frame, size_t len, struct hpn_udp4 *out,
						 unsigned verified);

/* Whether a parsed frame is one this port's own stack takes, as the
 * kernel's would: untagged (we send untagged: a tagged frame belongs to
 * another VLAN's interface), and to our MAC or to a group or broadcast
 * MAC - not a frame for another host that a promiscuous port, a bridge
 * or a veth delivers too. */
static inline bool hpn_frame_to_us(const struct hpn_udp4 *p, const uint8_t mac[6])
{
	return !p->vlan && ((p->dst_mac[0] & 1) || !memcmp(p->dst_mac, mac, 6));
}

/* A short name for an hpn_frame_err, for logs. */
const char *hpn_frame_strerror(enum hpn_frame_err e);

/*
 * ARP for IPv4 over Ethernet (RFC 826): what a frame backend needs when
 * the kernel's neighbour table cannot answer (af_xdp) or no kernel owns
 * the port at all (dpdk: its responder answers requests for its address).
 */
enum hpn_arp_op { HPN_ARP_REQUEST = 1, HPN_ARP_REPLY = 2 };

struct hpn_arp {
	enum hpn_arp_op op;
	uint8_t sha[6], tha[6]; /* sender / target hardware address */
	uint32_t spa, tpa;      /* sender / target IPv4 address, network byte order */
};

#define HPN_ARP_FRAME 42 /* Ethernet + ARP, before padding to 60 */

/* Build an ARP frame (request: broadcast, tha zero; reply: to tha).
 * Returns its length (HPN_ARP_FRAME). */
size_t hpn_frame_arp(uint8_t *frame, const struct hpn_arp *a);
/* Parse an ARP frame for IPv4 over Ethernet. false: not one (or malformed). */
bool hpn_frame_parse_arp(const uint8_t *frame, size_t len, struct hpn_arp *out);

/* The Internet checksum (RFC 1071) of buf[0, len), folded to 16 bits and
 * complemented, with `sum` (a partial sum, host order of 16-bit words as
 * read from the buffer) added in. */
uint16_t hpn_inet_csum(const void *buf, size_t len, uint32_t sum);

#endif /* HPN_NET_FRAME_H */
