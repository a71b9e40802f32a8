/* SPDX-License-Identifier: MIT */
/*
 * addr.c - "host:port" for every backend, so that all of them read and
 * print addresses the same way (plugin.h helpers).
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

/* getaddrinfo takes any number as a port and keeps its low 16 bits
 * (99999 would become 34463): only 0..65535 in decimal digits pass. */
static int port_check(const char *port)
{
	unsigned long v = 0;

	for (const char *p = port; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 65535)
			return -EINVAL;
	}
	return *port && v <= 65535 ? 0 : -EINVAL;
}

HPN_EXPORT int hpn_addr_parse(const char *spec, int passive, int socktype, struct sockaddr_storage *out,
			      socklen_t *len)
{
	struct addrinfo hints = {.ai_socktype = socktype, .ai_flags = AI_NUMERICSERV}, *res = NULL;
	char host[256], *port;
	const char *h;
	int err;

	if (!spec || strlen(spec) >= sizeof(host))
		return hpn_set_error(-EINVAL, "address '%s' is missing or too long", spec ? spec : "");
	strcpy(host, spec);
	port = strrchr(host, ':');
	if (!port || !port[1])
		return hpn_set_error(-EINVAL, "address '%s' needs host:port", spec);
	*port++ = '\0';
	if (port_check(port))
		return hpn_set_error(-EINVAL, "address '%s': port '%s' is not a number from 0 to 65535", spec,
				     port);
	if (!passive && strspn(port, "0") == strlen(port)) /* nothing listens on port 0 */
		return hpn_set_error(-EINVAL, "address '%s': port 0 can be listened on (a free port), not "
					      "connected to", spec);
	h = host;
	if (h[0] == '[') {
		size_t l = strlen(h);

		if (l < 2 || h[l - 1] != ']')
			return hpn_set_error(-EINVAL, "address '%s': bad IPv6 literal", spec);
		host[l - 1] = '\0';
		h = host + 1;
	}
	/* An empty host means "any" for a listener and this machine for a
	 * connection; IPv4 unless the address says otherwise. */
	if (!*h || !strcmp(h, "*"))
		h = passive ? NULL : "127.0.0.1";
	if (passive)
		hints.ai_flags |= AI_PASSIVE;
	hints.ai_family = h ? AF_UNSPEC : AF_INET;
	err = getaddrinfo(h, port, &hints, &res);
	if (err)
		return hpn_set_error(-EHOSTUNREACH, "cannot resolve '%s': %s", spec, gai_strerror(err));
	memcpy(out, res->ai_addr, res->ai_addrlen);
	if (len)
		*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

HPN_EXPORT int hpn_addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	int n;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
		n = snprintf(buf, len, "%s:%u", host, ntohs(s->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		n = snprintf(buf, len, "[%s]:%u", host, ntohs(s->sin6_port));
	} else {
		return -EAFNOSUPPORT;
	}
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}
