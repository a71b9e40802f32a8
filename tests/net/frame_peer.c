/*
 * frame_peer - one end of tests/net/frame_kernel.sh: frames built by
 * src/net/frame.c against the kernel's own UDP, across a veth pair
 * between two network namespaces.
 *
 *   frame_peer send IFNAME DST_MAC SRC_IP DST_IP PORT COUNT
 *       COUNT datagrams "hpn frame <i>" framed by hpn_frame_udp4, out of
 *       an AF_PACKET socket: no kernel checksum or header help
 *   frame_peer recv IFNAME PORT COUNT TIMEOUT_MS
 *       read frames off IFNAME (AF_PACKET), parse each with
 *       hpn_frame_parse_udp4; succeed once COUNT datagrams to PORT saying
 *       "kernel <i>" arrived intact; fail on the first one refused
 *   frame_peer udprecv PORT COUNT TIMEOUT_MS    (a plain kernel UDP socket)
 *   frame_peer udpsend DST_IP PORT COUNT        (a plain kernel UDP socket)
 *   frame_peer route DST_IP
 *       print "IFNAME SRC_IP NEXT_HOP MTU SRC_MAC NEIGH_MAC" from
 *       hpn_route_get and hpn_neigh_get (NEIGH_MAC "-" if the kernel has
 *       no entry yet), or the error
 *
 * Exit 0 on success, 1 on failure (with a line on stderr saying why).
 */
#include "net/frame.h"
#include "net/route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int fail(const char *what)
{
	fprintf(stderr, "frame_peer: %s\n", what);
	return 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int packet_socket(const char *ifname, struct sockaddr_ll *ll)
{
	int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));

	memset(ll, 0, sizeof(*ll));
	ll->sll_family = AF_PACKET;
	ll->sll_protocol = htons(ETH_P_ALL);
	ll->sll_ifindex = (int)if_nametoindex(ifname);
	if (fd < 0 || !ll->sll_ifindex || bind(fd, (struct sockaddr *)ll, sizeof(*ll)))
		return -1;
	return fd;
}

static int own_mac(const char *ifname, uint8_t mac[6])
{
	char path[128];
	unsigned m[6];
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/sys/class/net/%s/address", ifname);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fscanf(f, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]);
	fclose(f);
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)m[i];
	return n == 6 ? 0 : -1;
}

static int do_send(char **a)
{
	struct hpn_flow f = {.src_port = htons(40000), .dst_port = htons((uint16_t)atoi(a[4]))};
	struct sockaddr_ll ll;
	unsigned m[6], count = (unsigned)atoi(a[5]);
	uint8_t frame[HPN_NET_HDR + 64];
	int fd = packet_socket(a[0], &ll);

	if (fd < 0 || own_mac(a[0], f.src_mac))
		return fail("cannot open an AF_PACKET socket on the interface (root?)");
	if (sscanf(a[1], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
		return fail("bad destination MAC");
	for (int i = 0; i < 6; i++)
		f.dst_mac[i] = (uint8_t)m[i];
	f.src_ip = inet_addr(a[2]);
	f.dst_ip = inet_addr(a[3]);
	for (unsigned i = 0; i < count; i++) {
		int n = snprintf((char *)frame + HPN_NET_HDR, 64, "hpn frame %u", i);
		size_t len = hpn_frame_udp4(frame, &f, (size_t)n, (uint16_t)i);

		if (sendto(fd, frame, len, 0, (struct sockaddr *)&ll, sizeof(ll)) != (ssize_t)len)
			return fail("sendto on the AF_PACKET socket failed");
		usleep(200); /* no socket buffer to overflow on the other side */
	}
	close(fd);
	return 0;
}

static int do_recv(char **a)
{
	struct sockaddr_ll ll;
	uint16_t port = htons((uint16_t)atoi(a[1]));
	unsigned count = (unsigned)atoi(a[2]), got = 0;
	uint64_t deadline = now_ms() + (uint64_t)atoi(a[3]);
	uint8_t frame[2048];
	int fd = packet_socket(a[0], &ll);

	if (fd < 0)
		return fail("cannot open an AF_PACKET socket on the interface (root?)");
	while (got < count && now_ms() < deadline) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		struct hpn_udp4 u;
		enum hpn_frame_err e;
		char want[32];
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(fd, frame, sizeof(frame), 0);
		if (n <= 0)
			continue;
		e = hpn_frame_parse_udp4(frame, (size_t)n, &u);
		if (e == HPN_FRAME_NOT_IP4 || e == HPN_FRAME_NOT_UDP)
			continue; /* ARP, IPv6 neighbour discovery, ICMP */
		if (e != HPN_FRAME_OK) {
			fprintf(stderr, "frame_peer: a kernel frame refused: %s\n", hpn_frame_strerror(e));
			return 1;
		}
		if (u.dst_port != port)
			continue;
		snprintf(want, sizeof(want), "kernel %u", got);
		if (u.len != strlen(want) || memcmp(u.payload, want, u.len))
			return fail("a datagram arrived with other content than sent");
		got++;
	}
	if (got < count) {
		fprintf(stderr, "frame_peer: %u of %u kernel datagrams seen\n", got, count);
		return 1;
	}
	return 0;
}

static int do_udprecv(char **a)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(a[0]))};
	unsigned count = (unsigned)atoi(a[1]), got = 0;
	uint64_t deadline = now_ms() + (uint64_t)atoi(a[2]);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	char buf[128], want[32];

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		return fail("cannot bind the UDP socket");
	printf("ready\n");
	fflush(stdout);
	while (got < count && now_ms() < deadline) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), 0);
		snprintf(want, sizeof(want), "hpn frame %u", got);
		if (n != (ssize_t)strlen(want) || memcmp(buf, want, (size_t)n))
			return fail("the kernel delivered other content than was framed");
		got++;
	}
	if (got < count) {
		fprintf(stderr, "frame_peer: the kernel delivered %u of %u framed datagrams\n", got, count);
		return 1;
	}
	return 0;
}

static int do_udpsend(char **a)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(a[1]))};
	unsigned count = (unsigned)atoi(a[2]);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	char buf[32];

	sa.sin_addr.s_addr = inet_addr(a[0]);
	if (fd < 0)
		return fail("socket");
	for (unsigned i = 0; i < count; i++) {
		int n = snprintf(buf, sizeof(buf), "kernel %u", i);

		if (sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&sa, sizeof(sa)) != n)
			return fail("sendto");
		usleep(200);
	}
	return 0;
}

static int do_route(char **a)
{
	struct hpn_route r;
	char why[128], src[16], hop[16];
	uint8_t mac[6];
	int ret = hpn_route_get(inet_addr(a[0]), &r, why, sizeof(why));

	if (ret) {
		printf("error %d %s\n", ret, why);
		return 1;
	}
	inet_ntop(AF_INET, &r.src_ip, src, sizeof(src));
	inet_ntop(AF_INET, &r.next_hop, hop, sizeof(hop));
	printf("%s %s %s %u %02x:%02x:%02x:%02x:%02x:%02x ", r.ifname, src, hop, r.mtu, r.src_mac[0], r.src_mac[1],
	       r.src_mac[2], r.src_mac[3], r.src_mac[4], r.src_mac[5]);
	ret = hpn_neigh_get(r.ifindex, r.next_hop, mac, why, sizeof(why));
	if (ret == -ENOENT)
		printf("-\n");
	else if (ret)
		printf("error %d %s\n", ret, why);
	else
		printf("%02x:%02x:%02x:%02x:%02x:%02x\n", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	return ret && ret != -ENOENT;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "route"))
		return do_route(argv + 2);
	if (argc == 8 && !strcmp(argv[1], "send"))
		return do_send(argv + 2);
	if (argc == 6 && !strcmp(argv[1], "recv"))
		return do_recv(argv + 2);
	if (argc == 5 && !strcmp(argv[1], "udprecv"))
		return do_udprecv(argv + 2);
	if (argc == 5 && !strcmp(argv[1], "udpsend"))
		return do_udpsend(argv + 2);
	fprintf(stderr, "usage: see the comment at the top of tests/net/frame_peer.c\n");
	return 2;
}
