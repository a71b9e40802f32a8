/* SPDX-License-Identifier: MIT */
/*
 * route.c - route and neighbour lookup over rtnetlink (route.h).
 *
 * One request, one answer: RTM_GETROUTE for a single destination (what
 * `ip route get` sends) and RTM_GETNEIGH for one address (kernel 5.0 and
 * later answer a get; older ones only a dump, which is the fallback).
 */
#include "route.h"

#include <errno.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NL_BUF 16384

struct nl_req {
	struct nlmsghdr h;
	union {
		struct rtmsg rt;
		struct ndmsg nd;
	};
	char attrs[64];
};

static void add_attr(struct nlmsghdr *h, unsigned short type, const void *data, unsigned short len)
{
	struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));

	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* Send req, read the answers into buf. Returns bytes read or -errno (an
 * NLMSG_ERROR answer is returned as its error). */
static int nl_talk(struct nlmsghdr *req, char *buf, size_t len, char *why, size_t why_len)
{
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	struct timeval tv = {.tv_sec = 2};
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), total = 0;

	if (fd < 0) {
		snprintf(why, why_len, "netlink socket: %s", strerror(errno));
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	req->nlmsg_seq = (uint32_t)time(NULL);
	if (sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		int err = errno;

		snprintf(why, why_len, "netlink send: %s", strerror(err));
		close(fd);
		return -err;
	}
	for (;;) {
		ssize_t n = recv(fd, buf + total, len - (size_t)total, 0);
		struct nlmsghdr *h;
		int rem;

		if (n <= 0) {
			int err = n < 0 ? errno : EIO;

			snprintf(why, why_len, "netlink receive: %s", strerror(err));
			close(fd);
			return -err;
		}
		/* A get answers with one message; a dump ends with NLMSG_DONE. */
		h = (struct nlmsghdr *)(buf + total);
		rem = (int)n;
		total += (int)n;
		for (; NLMSG_OK(h, (unsigned)rem); h = NLMSG_NEXT(h, rem)) {
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);

				close(fd);
				if (e->error)
					snprintf(why, why_len, "%s", strerror(-e->error));
				return e->error ? e->error : total;
			}
			if (h->nlmsg_type == NLMSG_DONE || !(h->nlmsg_flags & NLM_F_MULTI)) {
				close(fd);
				return total;
			}
		}
		if ((size_t)total >= len) {
			snprintf(why, why_len, "netlink answer larger than %zu bytes", len);
			close(fd);
			return -EMSGSIZE;
		}
	}
}

static int dev_info(struct hpn_route *r, char *why, size_t why_len)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = 0;

	if (fd < 0 || !if_indextoname((unsigned)r->ifindex, r->ifname)) {
		snprintf(why, why_len, "no interface with index %d", r->ifindex);
		ret = -ENODEV;
		goto out;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", r->ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) == 0)
		memcpy(r->src_mac, ifr.ifr_hwaddr.sa_data, 6);
	if (!r->mtu && ioctl(fd, SIOCGIFMTU, &ifr) == 0)
		r->mtu = (uint32_t)ifr.ifr_mtu;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

int hpn_route_get(uint32_t dst_ip, struct hpn_route *out, char *why, size_t why_len)
{
	char buf[NL_BUF] __attribute__((aligned(4)));
	struct nl_req req = {
		.h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg)), .nlmsg_type = RTM_GETROUTE,
		      .nlmsg_flags = NLM_F_REQUEST},
		.rt = {.rtm_family = AF_INET, .rtm_dst_len = 32},
	};
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	struct rtmsg *rt;
	struct rtattr *a;
	int n, len;

	memset(out, 0, sizeof(*out));
	add_attr(&req.h, RTA_DST, &dst_ip, 4);
	n = nl_talk(&req.h, buf, sizeof(buf), why, why_len);
	if (n < 0)
		return n; /* -ENETUNREACH: no route */
	if (!NLMSG_OK(h, (unsigned)n) || h->nlmsg_type != RTM_NEWROUTE) {
		snprintf(why, why_len, "unexpected netlink answer (type %u)", h->nlmsg_type);
		return -EPROTO;
	}
	rt = NLMSG_DATA(h);
	if (rt->rtm_type == RTN_UNREACHABLE || rt->rtm_type == RTN_BLACKHOLE || rt->rtm_type == RTN_PROHIBIT) {
		snprintf(why, why_len, "the route to it is %s", rt->rtm_type == RTN_BLACKHOLE ? "a blackhole"
								 : rt->rtm_type == RTN_PROHIBIT ? "prohibited"
												 : "unreachable");
		return -EHOSTUNREACH;
	}
	out->next_hop = dst_ip;
	len = (int)RTM_PAYLOAD(h);
	for (a = RTM_RTA(rt); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		switch (a->rta_type) {
		case RTA_OIF:
			memcpy(&out->ifindex, RTA_DATA(a), 4);
			break;
		case RTA_PREFSRC:
			memcpy(&out->src_ip, RTA_DATA(a), 4);
			break;
		case RTA_GATEWAY:
			memcpy(&out->next_hop, RTA_DATA(a), 4);
			break;
		case RTA_METRICS: {
			int mlen = (int)RTA_PAYLOAD(a);

			for (struct rtattr *m = RTA_DATA(a); RTA_OK(m, mlen); m = RTA_NEXT(m, mlen))
				if (m->rta_type == RTAX_MTU)
					memcpy(&out->mtu, RTA_DATA(m), 4);
			break;
		}
		default:
			break;
		}
	}
	if (!out->ifindex) {
		snprintf(why, why_len, "the route names no interface");
		return -ENETUNREACH;
	}
	return dev_info(out, why, why_len);
}

/* One neighbour message: ours, usable? */
static int neigh_match(struct nlmsghdr *h, int ifindex, uint32_t ip, uint8_t mac[6])
{
	struct ndmsg *nd = NLMSG_DATA(h);
	int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*nd))), have_ip = 0, have_mac = 0;

	if (h->nlmsg_type != RTM_NEWNEIGH || nd->ndm_family != AF_INET || nd->ndm_ifindex != ifindex)
		return 0;
	if (!(nd->ndm_state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP)))
		return 0;
	for (struct rtattr *a = (struct rtattr *)((char *)nd + NLMSG_ALIGN(sizeof(*nd))); RTA_OK(a, len);
	     a = RTA_NEXT(a, len)) {
		if (a->rta_type == NDA_DST && RTA_PAYLOAD(a) == 4 && !memcmp(RTA_DATA(a), &ip, 4))
			have_ip = 1;
		else if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) {
			memcpy(mac, RTA_DATA(a), 6);
			have_mac = 1;
		}
	}
	return have_ip && have_mac;
}

int hpn_neigh_get(int ifindex, uint32_t ip, uint8_t mac[6], char *why, size_t why_len)
{
	size_t cap = 1 << 17; /* a dump of a large table; control path only */
	char *buf = malloc(cap);
	struct nl_req req = {
		.h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct ndmsg)), .nlmsg_type = RTM_GETNEIGH,
		      .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP},
		.nd = {.ndm_family = AF_INET, .ndm_ifindex = ifindex},
	};
	int n, rem;

	/* A dump of one interface's IPv4 entries: every kernel answers it
	 * (a single-entry get needs 5.0 and a strict-checking socket). */
	if (!buf) {
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	n = nl_talk(&req.h, buf, cap, why, why_len);
	if (n < 0) {
		free(buf);
		return n;
	}
	rem = n;
	for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)rem); h = NLMSG_NEXT(h, rem)) {
		if (neigh_match(h, ifindex, ip, mac)) {
			free(buf);
			return 0;
		}
	}
	free(buf);
	snprintf(why, why_len, "no usable neighbour entry yet");
	return -ENOENT;
}
