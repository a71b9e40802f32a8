// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * hpn_xdp.bpf.c - the XDP program of the af_xdp backend: IPv4/UDP frames
 * to one of hpn's own addresses and ports (the hpn_addrs and hpn_ports
 * maps, filled by the plugin) go
 * to the AF_XDP socket of the queue they arrived on; everything else -
 * ARP, ICMP, ssh, other UDP - goes on to the kernel, so ping and ARP keep
 * working while it is attached (a program that redirects everything steals
 * ARP: ../shared/notes/measured-here.md).
 *
 * Built at compile time with clang -target bpf and embedded in the plugin
 * (no file to find at run time). Fragments are passed: hpn never sends
 * them, and the kernel is the one to reassemble anything else's.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64); /* queues */
	__type(key, __u32);
	__type(value, __u32);
} hpn_xsks SEC(".maps");

/* IPv4 destination addresses (network order) that are hpn's: the
 * interface address it bound and any group it joined; value unused. The
 * same port on another address is someone else's. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} hpn_addrs SEC(".maps");

/* UDP destination ports (network order) that are hpn's; value unused. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u8);
} hpn_ports SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

SEC("xdp")
int hpn_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;
	__u16 proto;
	void *l3;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *v = l3;

		if ((void *)(v + 1) > end)
			return XDP_PASS;
		proto = v->proto;
		l3 = v + 1;
	}
	if (proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = l3;
	if ((void *)(ip + 1) > end || ip->version != 4 || ip->protocol != IPPROTO_UDP || ip->ihl < 5)
		return XDP_PASS;
	if (ip->frag_off & bpf_htons(0x3fff)) /* MF or an offset: a fragment */
		return XDP_PASS;
	udp = (void *)ip + ip->ihl * 4;
	if ((void *)(udp + 1) > end)
		return XDP_PASS;
	if (!bpf_map_lookup_elem(&hpn_ports, &udp->dest) || !bpf_map_lookup_elem(&hpn_addrs, &ip->daddr))
		return XDP_PASS;
	/* No socket on this queue: the kernel's (it drops it: nobody listens). */
	return bpf_redirect_map(&hpn_xsks, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual MIT/GPL";
