/* SPDX-License-Identifier: MIT */
/* dgram.c - see dgram.h. */
#include "net/dgram.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

int hpn_net_parse_v4(const char *who, const char *spec, bool passive, struct sockaddr_in *out)
{
	struct sockaddr_storage a;
	socklen_t alen;
	int ret = hpn_addr_parse(spec, passive, SOCK_DGRAM, &a, &alen);

	if (ret)
		return ret;
	if (a.ss_family != AF_INET)
		return hpn_set_error(-EAFNOSUPPORT, "%s: %s: IPv4 only", who, spec);
	memcpy(out, &a, sizeof(*out));
	if ((ntohl(out->sin_addr.s_addr) >> 24) == 127)
		return hpn_set_error(-ENETUNREACH, "%s: %s is loopback: %s sends through a network interface "
					       "(plugin=udp for loopback)", who, spec, who);
	return 0;
}

int hpn_net_join(int fd, int ifindex, uint32_t group, uint32_t source)
{
	struct sockaddr_in g = {.sin_family = AF_INET, .sin_addr.s_addr = group},
			   s = {.sin_family = AF_INET, .sin_addr.s_addr = source};
	struct group_source_req gsr = {.gsr_interface = (uint32_t)ifindex};
	struct group_req gr = {.gr_interface = (uint32_t)ifindex};

	memcpy(&gsr.gsr_group, &g, sizeof(g));
	memcpy(&gsr.gsr_source, &s, sizeof(s));
	memcpy(&gr.gr_group, &g, sizeof(g));
	if (source ? setsockopt(fd, IPPROTO_IP, MCAST_JOIN_SOURCE_GROUP, &gsr, sizeof(gsr))
		   : setsockopt(fd, IPPROTO_IP, MCAST_JOIN_GROUP, &gr, sizeof(gr)))
		return -errno;
	return 0;
}

int hpn_net_format(void *io, const void *addr, uint32_t alen, char *buf, size_t len)
{
	(void)io;
	(void)alen;
	return hpn_addr_format(addr, buf, len);
}
