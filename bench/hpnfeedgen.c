/* SPDX-License-Identifier: MIT */
/*
 * hpnfeedgen - plays a market-data feed the way an exchange publishes it:
 * one session, the same packets on two (or more) lines, each line with
 * its own loss, reordering, duplication and lag, so a receiver's
 * arbitration and gap handling can be checked exactly. Plain kernel UDP
 * (it stands for the exchange, not for hpn); it does not link hpn.
 *
 *   hpnfeedgen --line 239.1.1.1:5000 --line 239.1.1.2:5001 --packets 100000 \
 *              --loss 0.05,0.05 --reorder 0.01 --dup 0.01 --lag 0,8 --expect out.json
 *
 * --expect writes what a receiver must deliver: the messages of every
 * packet some line carried (count and a digest - the sum over messages of
 * FNV-1a over the sequence number, little-endian, and the message, as
 * hpnbench --mode feed sums them), and one gap for each run of packets
 * every line lost. The first and last packets are never lost (a receiver
 * starts at the first one it sees and cannot know of a loss after the
 * last), and a MoldUDP64 session ends with an end-of-session packet on
 * every line.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sendmmsg */
#endif
#include "feedhash.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINES 4
#define BATCH 32 /* datagrams per sendmmsg and line, flat out (--rate 0) */
#define SLOT 1536

struct line {
	struct sockaddr_in to;
	double loss, reorder, dup;
	unsigned lag;              /* packets behind the first line */
	uint64_t sent, lost, dups; /* datagrams */
	int fd;                    /* a socket per line: an exchange's lines come from hosts of their own */
	/* Flat out, datagrams wait here for one sendmmsg (paced: sent at once). */
	struct mmsghdr mm[BATCH];
	struct iovec iov[BATCH];
	uint8_t (*slot)[SLOT];
	unsigned nb;
	int held;                  /* a packet held back to go after the next (reordering), -1: none */
};

static struct {
	struct line line[MAX_LINES];
	unsigned nlines;
	bool mdp3;
	uint64_t packets, first_seq;
	unsigned msgs_min, msgs_max, size;
	double rate;
	uint64_t seed;
	const char *expect, *mcast_if;
	char session[11];
	int ttl;
	bool *lost_all; /* per packet: every line lost it */
	uint64_t *seq;  /* per packet: its first sequence number */
	uint32_t *count;
} g = {.packets = 10000, .first_seq = 1, .msgs_min = 1, .msgs_max = 4, .size = 32, .rate = 100000, .seed = 1,
       .session = "HPNFEED001", .ttl = 1};

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "hpnfeedgen: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(2);
}

static uint64_t rng;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static bool chance(double p)
{
	return p > 0 && (double)(rnd() >> 11) * 0x1.0p-53 < p;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Message seq's body: len bytes that depend on seq. */
static void body(uint8_t *p, uint64_t seq, uint32_t len)
{
	for (uint32_t j = 0; j < len; j++)
		p[j] = (uint8_t)(seq * 31 + j);
}

/* Packet i into buf; adds its messages' hashes to *digest when given. */
static uint32_t build(uint64_t i, uint8_t *buf, uint64_t *digest)
{
	uint64_t seq = g.seq[i];
	uint32_t off;

	if (g.mdp3) { /* u32 MsgSeqNum (LE), u64 SendingTime, the rest */
		uint32_t len = g.size < 12 ? 12 : g.size;

		for (int k = 0; k < 4; k++)
			buf[k] = (uint8_t)(seq >> (8 * k));
		memset(buf + 4, 0, 8);
		body(buf + 12, seq, len - 12);
		if (digest)
			*digest += hpn_feed_hash(seq, buf, len);
		return len;
	}
	memcpy(buf, g.session, 10);
	put_be(buf + 10, seq, 8);
	put_be(buf + 18, g.count[i], 2);
	off = 20;
	for (uint32_t m = 0; m < g.count[i]; m++) {
		put_be(buf + off, g.size, 2);
		body(buf + off + 2, seq + m, g.size);
		if (digest)
			*digest += hpn_feed_hash(seq + m, buf + off + 2, g.size);
		off += 2 + g.size;
	}
	return off;
}

static void flush(struct line *l)
{
	unsigned done = 0;

	while (done < l->nb) {
		int r = sendmmsg(l->fd, l->mm + done, l->nb - done, 0);

		if (r < 0 && errno != ENOBUFS && errno != EAGAIN && errno != EINTR)
			die("send to %s:%u: %s", inet_ntoa(l->to.sin_addr), ntohs(l->to.sin_port), strerror(errno));
		if (r > 0)
			done += (unsigned)r;
	}
	l->nb = 0;
}

static void send_pkt(struct line *l, const uint8_t *buf, uint32_t len)
{
	l->sent++;
	if (g.rate > 0 || len > SLOT) {
		flush(l); /* what waits goes first: no reordering the line did not ask for */
		/* A full queue waits: a datagram counted as sent is sent. */
		while (sendto(l->fd, buf, len, 0, (const struct sockaddr *)&l->to, sizeof(l->to)) < 0)
			if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR)
				die("send to %s:%u: %s", inet_ntoa(l->to.sin_addr), ntohs(l->to.sin_port),
				    strerror(errno));
		return;
	}
	memcpy(l->slot[l->nb], buf, len);
	l->iov[l->nb] = (struct iovec){l->slot[l->nb], len};
	l->mm[l->nb].msg_hdr = (struct msghdr){.msg_name = &l->to, .msg_namelen = sizeof(l->to),
					       .msg_iov = &l->iov[l->nb], .msg_iovlen = 1};
	if (++l->nb == BATCH)
		flush(l);
}

/* Line l's turn for packet i: lost, held back (reordering), sent, or sent
 * twice. The loss was drawn up front (lost_all needs it). */
static void line_send(struct line *l, unsigned li, int64_t i, bool **lost)
{
	uint8_t buf[65536];
	uint32_t len;

	if (i < 0 || (uint64_t)i >= g.packets)
		return;
	if (lost[li][i]) {
		l->lost++;
		return;
	}
	if (l->held < 0 && i > 0 && (uint64_t)i + 1 < g.packets && chance(l->reorder)) {
		l->held = (int)i; /* goes after the next one */
		return;
	}
	len = build((uint64_t)i, buf, NULL);
	send_pkt(l, buf, len);
	if (chance(l->dup)) {
		send_pkt(l, buf, len);
		l->dups++;
	}
	if (l->held >= 0 && l->held != i) {
		len = build((uint64_t)l->held, buf, NULL);
		send_pkt(l, buf, len);
		l->held = -1;
	}
}

/* A number in [min, max], all of s (no "100k", no "abc", no "nan"). */
static double num(const char *opt, const char *s, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno || !(v >= min && v <= max))
		die("%s: '%s' is not a number from %g to %g", opt, s, min, max);
	return v;
}

/* An integer in [min, max], all of s, in base 10. */
static uint64_t whole(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || *end || errno || s[strspn(s, " \t")] == '-' || v < min || v > max)
		die("%s: '%s' is not a whole number from %" PRIu64 " to %" PRIu64, opt, s, min, max);
	return v;
}

/* One value per line, or one for every line; each in [0, max]. */
static void parse_list(const char *s, double *out, unsigned n, const char *opt, double max)
{
	char *copy = strdup(s), *save = NULL, *t;
	unsigned k = 0;

	if (!copy)
		die("out of memory");
	for (t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (k == n)
			die("%s: '%s' has more values than there are lines (%u)", opt, s, n);
		out[k++] = num(opt, t, 0, max);
	}
	if (!k)
		die("%s: '%s' has no value", opt, s);
	for (; k < n; k++)
		out[k] = out[k - 1]; /* one value: every line */
	free(copy);
}

static void usage(void)
{
	printf("usage: hpnfeedgen --line GROUP:PORT [--line ...] [options]\n"
	       "  --proto moldudp64|mdp3  framing (default moldudp64)\n"
	       "  --packets N        packets in the session (default 10000)\n"
	       "  --msgs A[-B]       messages per MoldUDP64 packet, drawn from A..B (default 1-4)\n"
	       "  --size N           bytes per message (MDP3: per packet, >= 12; default 32)\n"
	       "  --rate PPS         packets per second on each line, 0: as fast as it goes (default 100000)\n"
	       "  --loss P[,P...]    per line: chance a packet is lost (default 0)\n"
	       "  --reorder P[,P..]  per line: chance a packet is sent after the next one\n"
	       "  --dup P[,P...]     per line: chance a packet is sent twice\n"
	       "  --lag N[,N...]     per line: packets it runs behind the first line (default 0)\n"
	       "  --seed N           the random choices (default 1)\n"
	       "  --session NAME     MoldUDP64 session, up to 10 characters (default HPNFEED001): runs one\n"
	       "                     after another with different names cannot be taken for one session\n"
	       "  --mcast-if IF      interface to send from, its address or name (IP_MULTICAST_IF)\n"
	       "  --ttl N            multicast hops (default 1)\n"
	       "  --expect FILE      write what a receiver must deliver, as JSON ('-': stdout)\n");
}

static void parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{"line", required_argument, 0, 'l'},   {"proto", required_argument, 0, 'p'},
		{"packets", required_argument, 0, 'n'}, {"msgs", required_argument, 0, 'm'},
		{"size", required_argument, 0, 's'},   {"rate", required_argument, 0, 'r'},
		{"loss", required_argument, 0, 'L'},   {"reorder", required_argument, 0, 'R'},
		{"dup", required_argument, 0, 'D'},    {"lag", required_argument, 0, 'G'},
		{"seed", required_argument, 0, 'S'},   {"mcast-if", required_argument, 0, 'i'},
		{"ttl", required_argument, 0, 't'},    {"expect", required_argument, 0, 'e'},
		{"session", required_argument, 0, 'N'},
		{"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
	};
	double loss[MAX_LINES] = {0}, reorder[MAX_LINES] = {0}, dup[MAX_LINES] = {0}, lag[MAX_LINES] = {0};
	const char *ls = NULL, *rs = NULL, *ds = NULL, *gs = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'l': {
			char host[64];
			unsigned port;
			struct line *l = &g.line[g.nlines];

			if (g.nlines == MAX_LINES)
				die("--line: at most %d lines", MAX_LINES);
			int used = 0;

			if (sscanf(optarg, "%63[^:]:%u%n", host, &port, &used) != 2 || optarg[used] || port == 0 ||
			    port > 65535 || inet_pton(AF_INET, host, &l->to.sin_addr) != 1)
				die("--line: '%s' is not IPV4:PORT", optarg);
			l->to.sin_family = AF_INET;
			l->to.sin_port = htons((uint16_t)port);
			l->held = -1;
			g.nlines++;
			break;
		}
		case 'p':
			if (strcmp(optarg, "moldudp64") && strcmp(optarg, "mdp3"))
				die("--proto: '%s' is not moldudp64 or mdp3", optarg);
			g.mdp3 = !strcmp(optarg, "mdp3");
			break;
		case 'n': g.packets = whole("--packets", optarg, 2, 1ull << 40); break;
		case 'm': {
			char a[32];
			const char *dash = strchr(optarg, '-');

			if (dash && (size_t)(dash - optarg) < sizeof(a)) {
				memcpy(a, optarg, (size_t)(dash - optarg));
				a[dash - optarg] = 0;
				g.msgs_min = (unsigned)whole("--msgs", a, 1, 1000);
				g.msgs_max = (unsigned)whole("--msgs", dash + 1, g.msgs_min, 1000);
			} else {
				g.msgs_max = g.msgs_min = (unsigned)whole("--msgs", optarg, 1, 1000);
			}
			break;
		}
		case 's': g.size = (unsigned)whole("--size", optarg, 0, 1400); break;
		case 'r': g.rate = num("--rate", optarg, 0, 1e9); break;
		case 'L': ls = optarg; break;
		case 'R': rs = optarg; break;
		case 'D': ds = optarg; break;
		case 'G': gs = optarg; break;
		case 'S': g.seed = whole("--seed", optarg, 0, UINT64_MAX); break;
		case 'i': g.mcast_if = optarg; break;
		case 't': g.ttl = (int)whole("--ttl", optarg, 0, 255); break;
		case 'e': g.expect = optarg; break;
		case 'N':
			if (!*optarg || strlen(optarg) > 10)
				die("--session '%s': 1 to 10 characters", optarg);
			snprintf(g.session, sizeof(g.session), "%-10s", optarg); /* MoldUDP64 pads with spaces */
			break;
		case 'h': usage(); exit(0);
		default: die("unknown option (see --help)");
		}
	}
	if (optind < argc)
		die("'%s': not an option (see --help)", argv[optind]);
	if (!g.nlines)
		die("give the lines: --line GROUP:PORT (repeat it for A, B, ...)");
	if (g.packets < 2 || g.msgs_min < 1 || g.msgs_max < g.msgs_min || g.msgs_max > 1000 || g.size > 1400 ||
	    (g.mdp3 && g.size < 12) || (!g.mdp3 && (size_t)g.msgs_max * (2 + g.size) + 20 > 65000))
		die("--packets >= 2, --msgs 1..1000, --size up to 1400 (MDP3: >= 12), packets below 64 KB");
	if (ls)
		parse_list(ls, loss, g.nlines, "--loss", 1);
	if (rs)
		parse_list(rs, reorder, g.nlines, "--reorder", 1);
	if (ds)
		parse_list(ds, dup, g.nlines, "--dup", 1);
	if (gs) /* a line further behind than the session is long sends nothing */
		parse_list(gs, lag, g.nlines, "--lag", (double)g.packets);
	for (unsigned i = 0; i < g.nlines; i++) {
		g.line[i].loss = loss[i];
		g.line[i].reorder = reorder[i];
		g.line[i].dup = dup[i];
		g.line[i].lag = (unsigned)lag[i];
		if (loss[i] >= 1)
			die("--loss: below 1 (a line that loses everything is no line)");
	}
}

static int open_socket(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0), sndbuf = 8 << 20;

	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &g.ttl, sizeof(g.ttl)))
		die("--ttl %d: %s", g.ttl, strerror(errno));
	if (g.mcast_if) { /* an interface's address or its name, as hpn's mcast_if= */
		struct ip_mreqn m = {0};

		if (inet_pton(AF_INET, g.mcast_if, &m.imr_address) != 1 && !(m.imr_ifindex = (int)if_nametoindex(g.mcast_if)))
			die("--mcast-if %s: neither an IPv4 address nor an interface here", g.mcast_if);
		if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof(m)))
			die("--mcast-if %s: %s", g.mcast_if, strerror(errno));
	}
	return fd;
}

static void write_expect(uint64_t msgs, uint64_t digest, uint64_t gaps, uint64_t gap_msgs, uint64_t end_seq,
			 uint64_t delivered, double send_s)
{
	FILE *f = strcmp(g.expect, "-") ? fopen(g.expect, "w") : stdout;

	if (!f)
		die("--expect: %s: %s", g.expect, strerror(errno));
	fprintf(f, "{\"msgs\": %" PRIu64 ", \"digest\": \"%016" PRIx64 "\", \"gaps\": %" PRIu64
		   ", \"gap_msgs\": %" PRIu64 ", \"end_seq\": %" PRIu64 ", \"packets\": %" PRIu64
		   ", \"delivered_packets\": %" PRIu64 ", \"send_s\": %.6f, \"lines\": [",
		msgs, digest, gaps, gap_msgs, end_seq, g.packets, delivered, send_s);
	for (unsigned i = 0; i < g.nlines; i++)
		fprintf(f, "%s{\"addr\": \"%s:%u\", \"sent\": %" PRIu64 ", \"lost\": %" PRIu64 ", \"dups\": %" PRIu64 "}",
			i ? ", " : "", inet_ntoa(g.line[i].to.sin_addr), ntohs(g.line[i].to.sin_port), g.line[i].sent,
			g.line[i].lost, g.line[i].dups);
	fprintf(f, "]}\n");
	if (f != stdout)
		fclose(f);
}

int main(int argc, char **argv)
{
	bool *lost[MAX_LINES];
	uint64_t seq, msgs = 0, digest = 0, gaps = 0, gap_msgs = 0, delivered = 0, t0, interval;
	unsigned maxlag = 0;
	uint8_t buf[65536];

	parse(argc, argv);
	rng = g.seed * 0x9E3779B97F4A7C15ull + 1;
	g.seq = calloc(g.packets, sizeof(*g.seq));
	g.count = calloc(g.packets, sizeof(*g.count));
	g.lost_all = calloc(g.packets, sizeof(bool));
	for (unsigned l = 0; l < g.nlines; l++) {
		lost[l] = calloc(g.packets, sizeof(bool));
		if (!lost[l])
			die("out of memory");
		if (g.line[l].lag > maxlag)
			maxlag = g.line[l].lag;
	}
	if (!g.seq || !g.count || !g.lost_all)
		die("out of memory");
	/* The session, decided up front: sizes, and which line loses what. */
	seq = g.first_seq;
	for (uint64_t i = 0; i < g.packets; i++) {
		uint32_t k = g.mdp3 ? 1 : g.msgs_min + (uint32_t)(rnd() % (g.msgs_max - g.msgs_min + 1));

		g.seq[i] = seq;
		g.count[i] = k;
		seq += k;
		g.lost_all[i] = i > 0 && i + 1 < g.packets;
		for (unsigned l = 0; l < g.nlines; l++) {
			lost[l][i] = i > 0 && i + 1 < g.packets && chance(g.line[l].loss);
			g.lost_all[i] &= lost[l][i];
		}
	}
	for (uint64_t i = 0; i < g.packets; i++) {
		if (g.lost_all[i]) { /* one gap per run every line lost */
			uint64_t j = i;

			while (j + 1 < g.packets && g.lost_all[j + 1])
				j++;
			gaps++;
			gap_msgs += g.seq[j] + g.count[j] - g.seq[i];
			i = j;
			continue;
		}
		build(i, buf, &digest);
		msgs += g.count[i];
		delivered++;
	}
	for (unsigned l = 0; l < g.nlines; l++) {
		g.line[l].fd = open_socket();
		g.line[l].slot = malloc(sizeof(*g.line[l].slot) * BATCH);
		if (!g.line[l].slot)
			die("out of memory");
	}
	interval = g.rate > 0 ? (uint64_t)(1e9 / g.rate) : 0;
	t0 = now_ns();
	for (int64_t step = 0; step < (int64_t)(g.packets + maxlag); step++) {
		if (interval)
			while (now_ns() < t0 + (uint64_t)step * interval)
				;
		for (unsigned l = 0; l < g.nlines; l++)
			line_send(&g.line[l], l, step - (int64_t)g.line[l].lag, lost);
	}
	for (unsigned l = 0; l < g.nlines; l++)
		flush(&g.line[l]);
	double send_s = (double)(now_ns() - t0) / 1e9;
	if (!g.mdp3) { /* end of session, three times on every line */
		memcpy(buf, g.session, 10);
		put_be(buf + 10, seq, 8);
		put_be(buf + 18, 0xFFFF, 2);
		for (int k = 0; k < 3; k++) {
			usleep(1000);
			for (unsigned l = 0; l < g.nlines; l++) {
				send_pkt(&g.line[l], buf, 20);
				flush(&g.line[l]);
			}
		}
	}
	if (g.expect)
		write_expect(msgs, digest, gaps, gap_msgs, seq, delivered, send_s);
	for (unsigned l = 0; l < g.nlines; l++) {
		close(g.line[l].fd);
		free(g.line[l].slot);
		free(lost[l]);
	}
	free(g.seq);
	free(g.count);
	free(g.lost_all);
	return 0;
}
