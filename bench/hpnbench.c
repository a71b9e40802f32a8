/* SPDX-License-Identifier: MIT */
/*
 * hpnbench - latency and throughput of an hpn backend against a peer.
 *
 *   hpnbench --plugin udp --server [--bind ADDR:PORT]
 *   hpnbench --plugin udp --peer HOST[:PORT] [--size 64,1024] [--mode pingpong|stream]
 *   hpnbench --plugin udp            (no peer: both ends in this process)
 *
 * Uses nothing but <hpn/hpn.h>. One-way latency is half the round trip, as
 * perftest and sockperf report it.
 *
 * Wire format of a benchmark message (inside the hpn payload):
 *   u32 type, u32 reserved, u64 seq   (native byte order: both ends run
 *   hpnbench on the same architecture)
 * With framing=none (plain UDP) it is sockperf's instead, so hpnbench
 * and sockperf answer each other (see plain_* below):
 *   u64 seq, u16 flags (1: from the client, 2: answer me), u32 length,
 *   all big-endian; a server answers with the client bit cleared, a
 *   plain echo with the message as it is - hpnbench's client takes both.
 *
 *   hpnbench --mode feed --listen GROUP:PORT [--listen ...] --config
 *       framing=none,seq=moldudp64      (bench/feed.c)
 */
#include <hpn/hpn.h>

#include "hpnbench.h"
#include "hpnbench_build.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PORT 18515
#define BURST 32
#define HDR_SIZE 16
#define REPLY_TIMEOUT_MS 200
/* A reliable backend does not lose a reply; a late one (emulated RDMA can
 * stall for a while) must not be counted lost. */
#define RELIABLE_TIMEOUT_MS 10000

enum msg_type { M_PING = 0x50494e47, M_DATA = 0x44415441, M_END = 0x454e4421, M_REPORT = 0x52455054 };

struct bench_hdr {
	uint32_t type;
	uint32_t flags; /* HB_PATTERN */
	uint64_t seq;
};

/* The payload after the header is pattern(seq): the receiver checks it. */
#define HB_PATTERN 1u

struct report { /* payload of M_REPORT, after the header */
	uint64_t received, first_ns, last_ns, dups, ooo;
	uint64_t corrupt; /* DATA whose pattern did not check out (an older server sends none) */
};
#define REPORT_OLD_SIZE (5 * sizeof(uint64_t))


struct result {
	size_t size;
	uint64_t iters;
	double t_min, t_typ, t_avg, t_stdev, p99, p999, p9999, t_max; /* us, NAN if n/a */
	double msgs_per_s, gbit_per_s;
	/* Of the measured part: pings of the warm-up lost, their late echoes
	 * and what came out of order then are not the measurement's. */
	uint64_t drops, dups, ooo;
	uint64_t warm_drops; /* pings of the warm-up lost (said only if nothing was measured) */
	uint64_t corrupt;     /* --verify: messages whose payload differed from what was sent */
	bool unchecked;       /* --verify: the server is an hpnbench that does not check (older) */
	uint64_t retransmits; /* measured part only, by this process's endpoints (both, on loopback) */
	uint64_t copies;      /* payload copies the library made (hpn_stats tx_copied + rx_copied), same scope */
	char gave_up[128];    /* why the run stopped early: sizes after it are not run, the exit is 1 */
};

_Atomic int interrupted;

void die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "hpnbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(code);
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* --verify's payload: 8-byte words of a mix of the message's seq, its
 * length and the word's offset, so a byte from another message, another
 * offset or nowhere shows, and so does a message cut short (the receiver
 * checks against the length that came). A multiply and two xor-shifts a
 * word: cheap next to the copy a check of every byte is anyway. */
static uint64_t pattern_word(uint64_t seq, size_t len, uint64_t k)
{
	uint64_t z = (seq + 1) * 0x9e3779b97f4a7c15ull + k * 0xd1b54a32d192ed03ull + len * 0x94d049bb133111ebull;

	z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9ull;
	return z ^ (z >> 29);
}

/* --verify's work stays out of line: the measured loop without it is the
 * loop it was (callgrind: inlined, it cost ~35 instructions a round trip). */
#define VERIFY_PATH __attribute__((noinline, cold))

VERIFY_PATH static void pattern_fill(uint8_t *p, size_t len, uint64_t seq)
{
	size_t k = 0;

	for (; (k + 1) * 8 <= len; k++) {
		uint64_t w = pattern_word(seq, len, k);

		memcpy(p + k * 8, &w, 8);
	}
	if (k * 8 < len) {
		uint64_t w = pattern_word(seq, len, k);

		memcpy(p + k * 8, &w, len - k * 8);
	}
}

/* The first byte that differs from pattern(seq), or -1. */
VERIFY_PATH static long pattern_check(const uint8_t *p, size_t len, uint64_t seq)
{
	for (size_t k = 0; k * 8 < len; k++) {
		uint64_t w = pattern_word(seq, len, k);
		size_t n = len - k * 8 < 8 ? len - k * 8 : 8;

		if (memcmp(p + k * 8, &w, n)) { /* as pattern_fill wrote it, in host order */
			const uint8_t *want = (const uint8_t *)&w;
			size_t i = 0;

			while (p[k * 8 + i] == want[i])
				i++;
			return (long)(k * 8 + i);
		}
	}
	return -1;
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void log_to_stderr(void *arg, enum hpn_log_level level, const char *msg)
{
	(void)arg;
	fprintf(stderr, "hpnbench: [%s] %s\n", level == HPN_LOG_ERROR ? "error" : level == HPN_LOG_WARN ? "warn" : "info",
		msg);
}

void pin(int cpu, const char *who)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
		fprintf(stderr, "hpnbench: warning: cannot pin %s to cpu %d\n", who, cpu);
}

/* ---- options ----------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hpnbench [options]\n"
		"  --plugin NAME        backend: udp, rdma, af_xdp, dpdk, auto (default udp)\n"
		"  --server             run the server side (echo / sink) until interrupted\n"
		"  --bind ADDR:PORT     server address (default 0.0.0.0:%d); without --peer, the\n"
		"                       loopback server's address (default 127.0.0.1:0; rdma\n"
		"                       needs an address of an RDMA device, e.g. 10.9.0.1:0)\n"
		"  --peer HOST[:PORT]   run the client against a server; without --peer and\n"
		"                       --server both ends run in this process over loopback\n"
		"  --mode pingpong|stream|feed   latency, throughput, or receiving a\n"
		"                       market-data feed (default pingpong); a --server\n"
		"                       given --mode stream is tuned for streams (udp\n"
		"                       reliable=off: gro=on). With --config framing=none\n"
		"                       the server is a plain UDP echo (sockperf's server\n"
		"                       too) and the client pings any UDP echo or sockperf sr\n"
		"  --listen GROUP:PORT  --mode feed: a line of the feed (repeat for A, B, ...;\n"
		"                       GROUP@SOURCE:PORT joins one source); with --config\n"
		"                       framing=none,seq=moldudp64|mdp3|... it runs for\n"
		"                       --duration seconds or until the end of session\n"
		"  --app-us US          --mode feed: spend US microseconds on each message, as a\n"
		"                       slow handler would (a busy wait; default 0)\n"
		"  --size N[,N...]      message sizes in bytes, >= %d (default 64)\n"
		"  --iters N            measured messages per size (default 100000)\n"
		"  --duration SEC       measure for SEC seconds per size instead of --iters\n"
		"  --warmup N           unmeasured messages first (default 1000); pingpong's drops,\n"
		"                       dups and ooo count the measured pings only\n"
		"  --cpu N              pin the client thread (loopback: server on the next cpu)\n"
		"  --wait spin|adaptive|block   how to wait for messages (default spin)\n"
		"  --progress inline|thread     who drives the backend (default inline)\n"
		"  --config K=V,...     extra hpn configuration (see docs/CONFIG.md)\n"
		"  --faults SPEC        inject faults under the packet layer (udp, af_xdp, dpdk;\n"
		"                       reliable=on) on this end's sends, e.g.\n"
		"                       loss=0.05,reorder=0.1,dup=0.01,corrupt=0.001,seed=7\n"
		"                       (both ways: give the server --faults too)\n"
		"  --verify             fill every payload byte with a pattern of the message's\n"
		"                       number and check it on receipt (the echo in pingpong,\n"
		"                       the server in stream): the count is the 'corrupt'\n"
		"                       column, any exits 1; costs a pass over each payload\n"
		"  --json FILE          write results as JSON ('-' for stdout)\n"
		"  --list-plugins       list plugins found and whether they work here\n"
		"  --quiet              no progress lines\n"
		"  --help\n",
		DEFAULT_PORT, HDR_SIZE);
}

static void parse_sizes(struct opts *o, const char *s)
{
	char *copy = strdup(s), *save = NULL;

	o->nsizes = 0;
	/* strtok_r skips empty items: "64,,128" is a typo, said as one. */
	if (!*s || *s == ',' || s[strlen(s) - 1] == ',' || strstr(s, ",,"))
		die(2, "--size: '%s' has an empty item", s);
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *end;
		unsigned long long v = strtoull(t, &end, 10);

		if (*end == 'k' || *end == 'K')
			v *= 1024, end++;
		if (!*t || *end || v < HDR_SIZE || v > (1ull << 30))
			die(2, "--size: '%s' is not a size between %d and 1G bytes", t, HDR_SIZE);
		if (o->nsizes == MAX_SIZES)
			die(2, "--size: at most %d sizes", MAX_SIZES);
		o->sizes[o->nsizes++] = (size_t)v;
	}
	free(copy);
	if (!o->nsizes)
		die(2, "--size: no size given");
}

#define COUNT_MAX (1ull << 50)

static uint64_t parse_count(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (!*s || *end || *s == '-')
		die(2, "%s: '%s' is not a count", opt, s);
	/* Counts add up (warmup + iters): a bound keeps the sums exact. */
	if (errno == ERANGE || v > COUNT_MAX)
		die(2, "%s: '%s' is too large (at most %llu)", opt, s, COUNT_MAX);
	return v;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"plugin", required_argument, 0, 'p'}, {"server", no_argument, 0, 's'},
		{"bind", required_argument, 0, 'b'},   {"peer", required_argument, 0, 'P'},
		{"size", required_argument, 0, 'S'},   {"iters", required_argument, 0, 'n'},
		{"duration", required_argument, 0, 'd'}, {"warmup", required_argument, 0, 'w'},
		{"mode", required_argument, 0, 'm'},   {"cpu", required_argument, 0, 'c'},
		{"wait", required_argument, 0, 'W'},   {"json", required_argument, 0, 'j'},
		{"list-plugins", no_argument, 0, 'L'}, {"config", required_argument, 0, 'C'},
		{"progress", required_argument, 0, 'G'}, {"quiet", no_argument, 0, 'q'},
		{"faults", required_argument, 0, 'F'}, {"help", no_argument, 0, 'h'},
		{"listen", required_argument, 0, 'l'},
		{"app-us", required_argument, 0, 'A'},
		{"verify", no_argument, 0, 'V'},
		{0, 0, 0, 0},
	};
	int c;

	*o = (struct opts){.plugin = "udp", .iters = 100000, .warmup = 1000, .cpu = -1,
			   .server_cpu = -1, .wait = "spin", .progress = "inline", .config = ""};
	o->sizes[0] = 64;
	o->nsizes = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'p': o->plugin = optarg; break;
		case 's': o->server = true; break;
		case 'b': o->bind = optarg; break;
		case 'P': o->peer = optarg; break;
		case 'S': parse_sizes(o, optarg); break;
		case 'n': o->iters = parse_count("--iters", optarg); break;
		case 'w': o->warmup = parse_count("--warmup", optarg); break;
		case 'd': {
			char *end;

			o->duration = strtod(optarg, &end);
			if (*end || !(o->duration > 0))
				die(2, "--duration: '%s' is not a positive number of seconds", optarg);
			break;
		}
		case 'm':
			if (!strcmp(optarg, "pingpong"))
				o->mode = 0;
			else if (!strcmp(optarg, "stream"))
				o->mode = 1;
			else if (!strcmp(optarg, "feed"))
				o->mode = MODE_FEED;
			else
				die(2, "--mode: '%s' is not pingpong, stream or feed", optarg);
			break;
		case 'c': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (!*optarg || *end || v < 0 || v >= CPU_SETSIZE)
				die(2, "--cpu: '%s' is not a cpu number", optarg);
			o->cpu = (int)v;
			break;
		}
		case 'W':
			if (strcmp(optarg, "spin") && strcmp(optarg, "adaptive") && strcmp(optarg, "block"))
				die(2, "--wait: '%s' is not spin, adaptive or block", optarg);
			o->wait = optarg;
			break;
		case 'G':
			if (strcmp(optarg, "inline") && strcmp(optarg, "thread"))
				die(2, "--progress: '%s' is not inline or thread", optarg);
			o->progress = optarg;
			break;
		case 'j': o->json = optarg; break;
		case 'L': o->list = true; break;
		case 'C':
			o->config = optarg;
			if (!strncmp(optarg, "plugin=", 7) || strstr(optarg, ",plugin="))
				die(2, "--config: name the backend with --plugin NAME (hpnbench sets plugin= itself)");
			break;
		case 'F': o->faults = optarg; break;
		case 'l':
			if (o->nlisten == MAX_LISTEN)
				die(2, "--listen: at most %d lines", MAX_LISTEN);
			o->listen[o->nlisten++] = optarg;
			break;
		case 'q': o->quiet = true; break;
		case 'V': o->verify = true; break;
		case 'A': {
			char *end;

			o->app_us = strtod(optarg, &end);
			if (!*optarg || *end || !(o->app_us >= 0 && o->app_us <= 1e6))
				die(2, "--app-us: '%s' is not a time in microseconds (0..1000000)", optarg);
			break;
		}
		case 'h': usage(stdout); exit(0);
		default:
			die(2, "unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die(2, "unexpected argument '%s' (see --help)", argv[optind]);
	if (o->server && o->peer)
		die(2, "--server and --peer exclude each other");
	if (o->iters == 0 && o->duration == 0)
		die(2, "--iters: must be at least 1");
	if (o->mode == MODE_FEED && (!o->nlisten || o->server || o->peer))
		die(2, "--mode feed receives a feed: give its lines with --listen GROUP:PORT (no --server, no --peer)");
	if (o->mode != MODE_FEED && o->nlisten)
		die(2, "--listen is for --mode feed (a server listens on --bind)");
	if (o->verify && (o->server || o->mode == MODE_FEED))
		die(2, "--verify is for the client of pingpong or stream (a server checks whatever comes marked)");
	if (o->mode != MODE_FEED && o->app_us > 0)
		die(2, "--app-us is for --mode feed (the work a feed handler does per message)");
}

/* Messages larger than the default buffers (64 KiB), unless --config (or
 * HPN_BUF_SIZE/HPN_BUFS/HPN_MAX_MSG) says otherwise. udp's packet layer
 * takes max_msg=: a few buffers of that size beside the ordinary ones,
 * and a window that carries one whole message. Backends that receive
 * into ordinary buffers (rdma, raw udp) get buffers of the largest size,
 * as many as fit in 256 MiB (at least 64). So `hpnbench --size 1048576`
 * just works; give a --server the same --size. */
static int size_pool(const struct opts *o, char *cfg, size_t room)
{
	size_t max = 0, buf = 65536, bufs;
	int n = 0;

	for (unsigned i = 0; i < o->nsizes; i++)
		if (o->sizes[i] > max)
			max = o->sizes[i];
	if (max <= buf || strstr(o->config, "buf_size=") || strstr(o->config, "max_msg=") ||
	    getenv("HPN_BUF_SIZE") || getenv("HPN_MAX_MSG"))
		return 0;
	if (!strcmp(o->plugin, "udp") && !strstr(o->config, "reliable=off") && !strstr(o->config, "reliable=0"))
		return snprintf(cfg, room, ",max_msg=%zu", max);
	while (buf < max)
		buf <<= 1;
	bufs = ((size_t)256 << 20) / buf;
	if (bufs < 64)
		bufs = 64;
	n = snprintf(cfg, room, ",buf_size=%zu", buf);
	if (!strstr(o->config, "bufs=") && !getenv("HPN_BUFS"))
		n += snprintf(cfg + n, room - (size_t)n, ",bufs=%zu", bufs);
	return n;
}

hpn_ep *make_ep(const struct opts *o, int cpu)
{
	char cfg[1024];
	hpn_ep *ep;
	int ret;

	int n = snprintf(cfg, sizeof(cfg), "plugin=%s,wait=%s,progress=%s", o->plugin, o->wait, o->progress);

	if (!strcmp(o->progress, "thread") && cpu >= 0)
		n += snprintf(cfg + n, sizeof(cfg) - (size_t)n, ",cpu=%d", cpu);
	/* Streams: let udp receive kernel-coalesced GSO runs (UDP_GRO), which
	 * costs lone messages a little, so only here (and on a --server
	 * started with --mode stream). Raw datagrams only: the other modes
	 * refuse gro=on. An explicit --config gro=... wins. */
	if (o->mode == 1 && !strcmp(o->plugin, "udp") && !strstr(o->config, "gro=") &&
	    strstr(o->config, "reliable=off"))
		n += snprintf(cfg + n, sizeof(cfg) - (size_t)n, ",gro=on");
	if (o->faults) {
		/* Inside a configuration string ',' and '=' are taken: the fault
		 * spec's own separators become '/' and ':'. */
		n += snprintf(cfg + n, sizeof(cfg) - (size_t)n, ",faults=");
		for (const char *p = o->faults; *p && n < (int)sizeof(cfg) - 1; p++)
			cfg[n++] = *p == ',' ? '/' : *p == '=' ? ':' : *p;
		cfg[n] = 0;
	}
	n += size_pool(o, cfg + n, sizeof(cfg) - (size_t)n);
	if (o->config[0])
		snprintf(cfg + n, sizeof(cfg) - (size_t)n, ",%s", o->config);
	ret = hpn_ep_create(cfg, &ep);
	if (ret)
		die(1, "cannot create endpoint (%s): %s", cfg, hpn_last_error());
	return ep;
}

/* ---- server ------------------------------------------------------------ */

#define MAX_CLIENTS 64
/* Replies waiting for a peer whose window is closed (a client that stopped
 * reading): the server parks them and goes on serving everyone else. One
 * peer may hold at most PARK_PER_PEER, so it cannot take the whole pool;
 * beyond that its replies are dropped, counted and reported. */
#define PARK_MAX 1024
#define PARK_PER_PEER 128

struct client_state {
	hpn_peer_t peer;
	struct report r;    /* counting since the last END */
	struct report last; /* answer to the last END, repeated if it is asked again */
	uint64_t round;     /* seq of the last END: a new one closes the round */
	uint64_t next_seq;
	bool active;
};

struct server {
	hpn_ep *ep;
	bool plain; /* framing=none: echo every datagram */
	const struct hpn_caps *caps; /* inline_size: echoes that short are copied (send_one) */
	_Atomic int *stop; /* set by the thread that started the loopback server */
	/* The loopback server ends when told (stop), not at Ctrl-C: the
	 * client still asks it for a stream's count then. */
	bool until_stopped;
	struct client_state clients[MAX_CLIENTS];
	bool verbose;
	/* Parked replies (pool buffers we own), oldest first. */
	struct hpn_msg park[PARK_MAX];
	unsigned park_n;
	uint64_t parked, dropped; /* replies that had to wait; replies given up */
	uint64_t corrupt_said;    /* marked messages whose payload did not check out */
	/* Peers' addresses as they connected: a peer that is gone has none
	 * left in the endpoint, and its goodbye line should still say who. */
	struct {
		hpn_peer_t peer;
		char addr[80];
	} names[64];
};

static struct client_state *client_of(struct server *s, hpn_peer_t peer)
{
	struct client_state *free_slot = NULL;

	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (s->clients[i].active && s->clients[i].peer == peer)
			return &s->clients[i];
		if (!s->clients[i].active && !free_slot)
			free_slot = &s->clients[i];
	}
	if (free_slot)
		*free_slot = (struct client_state){.peer = peer, .active = true};
	return free_slot;
}

static unsigned parked_for(const struct server *s, hpn_peer_t peer)
{
	unsigned n = 0;

	for (unsigned i = 0; i < s->park_n; i++)
		n += s->park[i].peer == peer;
	return n;
}

/* Keep a reply (a pool buffer) until the peer's window opens again. */
static void park(struct server *s, const struct hpn_msg *m)
{
	if (s->park_n == PARK_MAX || parked_for(s, m->peer) >= PARK_PER_PEER) {
		hpn_buf_put(s->ep, m->data);
		if (!(s->dropped++ % 1000) && s->verbose)
			fprintf(stderr, "hpnbench server: peer %u reads nothing (window closed): dropped "
				"%" PRIu64 " replies so far\n", m->peer, s->dropped);
		return;
	}
	s->park[s->park_n++] = *m;
	s->parked++;
}

/* Retry parked replies in order; a peer that refuses one keeps the rest of
 * its replies parked behind it (order), others go on. */
static void flush_parked(struct server *s)
{
	hpn_peer_t blocked[PARK_MAX];
	unsigned nblocked = 0, keep = 0;

	for (unsigned i = 0; i < s->park_n; i++) {
		struct hpn_msg *m = &s->park[i];
		bool wait = false;
		int r;

		for (unsigned b = 0; b < nblocked && !wait; b++)
			wait = blocked[b] == m->peer;
		r = wait ? 0 : hpn_send_zc_burst(s->ep, m, 1);
		if (r == 1)
			continue;
		if (r == 0 || r == -EAGAIN) {
			if (!wait)
				blocked[nblocked++] = m->peer;
			s->park[keep++] = *m;
			continue;
		}
		hpn_buf_put(s->ep, m->data); /* peer gone meanwhile: nobody to answer */
	}
	s->park_n = keep;
}

/* A peer that is gone needs no replies. */
static void drop_parked(struct server *s, hpn_peer_t peer)
{
	unsigned keep = 0;

	for (unsigned i = 0; i < s->park_n; i++) {
		if (peer != HPN_PEER_NONE && s->park[i].peer != peer)
			s->park[keep++] = s->park[i];
		else
			hpn_buf_put(s->ep, s->park[i].data);
	}
	s->park_n = keep;
}

/* Send a reply (zero-copy) without ever waiting for one peer: behind its
 * parked replies, or parked itself when its window is closed. */
static void reply_zc(struct server *s, struct hpn_msg *m)
{
	int r = s->park_n && parked_for(s, m->peer) ? 0 : hpn_send_zc_burst(s->ep, m, 1);

	if (r == 1)
		return;
	if (r == 0 || r == -EAGAIN)
		park(s, m);
	else
		hpn_buf_put(s->ep, m->data); /* peer gone meanwhile: drop the reply */
}

static void reply_copy(struct server *s, hpn_peer_t peer, const void *data, uint32_t len)
{
	struct hpn_msg m = {.data = NULL, .len = len, .peer = peer};

	if (!s->park_n || !parked_for(s, peer)) {
		int r = hpn_send(s->ep, peer, data, len);

		if (r != -EAGAIN)
			return; /* sent, or the peer is gone */
	}
	if (hpn_buf_get_sized(s->ep, len, &m.data)) {
		s->dropped++; /* no buffer: the client asks again (END is repeated) */
		return;
	}
	memcpy(m.data, data, len);
	park(s, &m);
}

static void server_events(struct server *s)
{
	struct hpn_event ev[16];
	int n = hpn_poll(s->ep, ev, 16);

	for (int i = 0; i < n; i++) {
		char addr[80] = "?";
		unsigned k = ev[i].peer % (sizeof(s->names) / sizeof(s->names[0]));

		if (hpn_peer_addr(s->ep, ev[i].peer, addr, sizeof(addr)) == 0) {
			s->names[k].peer = ev[i].peer;
			snprintf(s->names[k].addr, sizeof(s->names[k].addr), "%s", addr);
		} else if (s->names[k].peer == ev[i].peer && s->names[k].addr[0]) {
			snprintf(addr, sizeof(addr), "%s", s->names[k].addr);
		}
		if (ev[i].type == HPN_EV_PEER_GONE) {
			drop_parked(s, ev[i].peer);
			for (int c = 0; c < MAX_CLIENTS; c++)
				if (s->clients[c].active && s->clients[c].peer == ev[i].peer)
					s->clients[c].active = false;
		}
		if (s->verbose)
			fprintf(stderr, "hpnbench server: peer %u %s %s (%s)\n", ev[i].peer, addr,
				ev[i].type == HPN_EV_PEER_NEW ? "connected" : "gone",
				ev[i].status ? strerror(-ev[i].status) : "ok");
	}
}

/* sockperf's message header (all big-endian): u64 seq, u16 flags, u32
 * length. A ping asks for an answer with its client bit cleared. */
#define SP_HDR 14
#define SP_CLIENT 1
#define SP_PONG_REQUEST 2

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* framing=none: every datagram goes back to its source as it came - but
 * a sockperf ping is answered as sockperf's server answers it. */
static void plain_echo(struct hpn_msg *m)
{
	uint8_t *p = m->data;

	if (m->len >= SP_HDR && get_be(p + 8, 2) == (SP_CLIENT | SP_PONG_REQUEST) && get_be(p + 10, 4) == m->len)
		put_be(p + 8, SP_PONG_REQUEST, 2);
}

/* A marked message whose payload is not its pattern: counted (stream
 * data, in the report) and said, the first few times (a ping's echo is
 * counted by the client, which sees whether it was spoilt on the way
 * here or back). */
VERIFY_PATH static void check_payload(struct server *s, const struct hpn_msg *m, uint64_t seq, uint64_t *count)
{
	long at = pattern_check((const uint8_t *)m->data + HDR_SIZE, m->len - HDR_SIZE, seq);

	if (at < 0)
		return;
	if (count)
		++*count;
	if (s->corrupt_said++ < 5)
		fprintf(stderr, "hpnbench server: %s %" PRIu64 " from peer %u (%u bytes): payload differs from what "
			"was sent from byte %ld on%s\n", count ? "message" : "ping", seq, m->peer, m->len,
			at + HDR_SIZE, s->corrupt_said == 5 ? " (further ones are counted, not shown)" : "");
}

/* Echo pings (zero-copy: the received buffer goes straight back), count
 * stream data, answer END with a report. */
static void server_handle(struct server *s, struct hpn_msg *m, int n)
{
	struct hpn_msg echo[BURST];
	int ne = 0;

	for (int i = 0; i < n; i++) {
		struct bench_hdr h;

		if (s->plain) {
			plain_echo(&m[i]);
			echo[ne++] = (struct hpn_msg){.data = m[i].data, .len = m[i].len, .peer = m[i].peer};
			continue;
		}

		if (m[i].len < HDR_SIZE) {
			hpn_buf_put(s->ep, m[i].data);
			continue;
		}
		memcpy(&h, m[i].data, sizeof(h));
		if (h.type == M_PING) {
			if (h.flags & HB_PATTERN)
				check_payload(s, &m[i], h.seq, NULL);
			echo[ne++] = m[i];
			continue;
		}
		struct client_state *c = client_of(s, m[i].peer);

		if (h.type == M_DATA && c) {
			uint64_t t = now_ns();

			if (h.flags & HB_PATTERN)
				check_payload(s, &m[i], h.seq, &c->r.corrupt);

			if (!c->r.received)
				c->r.first_ns = t;
			c->r.last_ns = t;
			c->r.received++;
			if (h.seq < c->next_seq)
				c->r.ooo++;
			else
				c->next_seq = h.seq + 1;
		} else if (h.type == M_END && c) {
			struct bench_hdr rh = {M_REPORT, 0, h.seq};
			uint8_t buf[HDR_SIZE + sizeof(struct report)];

			/* A new round closes the counting; the same round again
			 * means our report was lost: repeat it unchanged. */
			if (h.seq != c->round) {
				c->last = c->r;
				c->r = (struct report){0};
				c->next_seq = 0;
				c->round = h.seq;
			}
			memcpy(buf, &rh, sizeof(rh));
			memcpy(buf + HDR_SIZE, &c->last, sizeof(c->last));
			reply_copy(s, m[i].peer, buf, sizeof(buf));
		}
		hpn_buf_put(s->ep, m[i].data);
	}
	/* Echoes go out as one burst; one that a peer refuses (its window is
	 * closed) is parked, never waited for, so the others are served. */
	for (int sent = 0; sent < ne;) {
		int r = 0, k = sent;

		/* Up to the inline size (rdma), a copy at post time: the echo's
		 * buffer is put back at once, as the backend would after it. */
		while (k < ne && echo[k].len <= s->caps->inline_size)
			k++;
		if (s->park_n)
			r = 0;
		else if (k > sent && (r = hpn_send_burst(s->ep, echo + sent, (unsigned)(k - sent))) > 0)
			for (int i = sent; i < sent + r; i++)
				hpn_buf_put(s->ep, echo[i].data);
		else if (k == sent)
			r = hpn_send_zc_burst(s->ep, echo + sent, (unsigned)(ne - sent));

		if (r > 0) {
			sent += r;
			continue;
		}
		reply_zc(s, &echo[sent++]);
	}
}

static void server_loop(struct server *s)
{
	struct hpn_msg m[BURST];
	unsigned spins = 0;

	while (!atomic_load_explicit(s->stop, memory_order_relaxed) && (s->until_stopped || !interrupted)) {
		/* Parked replies are retried every millisecond or so. */
		int n = hpn_recv_wait(s->ep, m, BURST, s->park_n ? 1 : 10);

		if (n > 0)
			server_handle(s, m, n);
		if (n < 0 && n != -EAGAIN && n != -ENOBUFS)
			fprintf(stderr, "hpnbench server: receive failed: %s\n", strerror(-n));
		if (n <= 0 || !(++spins & 1023))
			server_events(s);
		if (s->park_n)
			flush_parked(s);
	}
	drop_parked(s, HPN_PEER_NONE);
	if (s->verbose && s->parked)
		fprintf(stderr, "hpnbench server: %" PRIu64 " replies waited for a closed window, %" PRIu64
			" were dropped\n", s->parked, s->dropped);
}

/* ---- client ------------------------------------------------------------ */

struct client {
	hpn_ep *ep;
	hpn_peer_t peer;
	uint64_t reply_timeout_ms;
	const struct opts *o;
	hpn_hist *hist;
	hpn_ep *srv_ep;  /* the loopback server's endpoint (NULL with --peer) */
	bool plain;      /* framing=none: sockperf's messages */
	size_t hdr;      /* the header's size: what --verify's pattern follows */
	uint64_t rt0;    /* retransmissions when the measured part began */
	uint64_t cp0;    /* copies then */
	/* Messages up to the endpoint's inline size (rdma's: copied into the
	 * request at post time) go by hpn_send from this buffer, as perftest
	 * posts its own: a pool buffer lent for them is taken, checked and
	 * given back for nothing. Larger ones are zero-copy sends. */
	void *txbuf;
	size_t inline_max;
};

static uint64_t retransmits(hpn_ep *a, hpn_ep *b);
static uint64_t copies(hpn_ep *a, hpn_ep *b);

/* Warm-up done: what is reported from here on is what was measured. */
static void measure_start(struct client *c)
{
	c->rt0 = retransmits(c->ep, c->srv_ep);
	c->cp0 = copies(c->ep, c->srv_ep);
}

static void check_events(struct client *c);

/* A send that cannot go on: interrupted (Ctrl-C must work here too), or
 * stuck for STUCK_S seconds - a hang, said as one. Cheap: a clock read per
 * 1024 tries. */
#define STUCK_S 10
/* A send that cannot go yet, tried again: gives up after STUCK_S. *t0
 * starts at 0 and is set at the first retry, so that a send that goes at
 * once reads no clock (two clock reads were a tenth of the client's own
 * work per round trip, inside the measured time). */
static void stuck(struct client *c, uint64_t *t0, const char *why)
{
	static unsigned tries;

	if (interrupted)
		die(130, "interrupted");
	if (!*t0)
		*t0 = now_ns();
	if (++tries & 1023)
		return;
	check_events(c); /* the server gone is said as that */
	if (now_ns() - *t0 > STUCK_S * 1000000000ull)
		die(1, "stuck for %d s: %s", STUCK_S, why);
}

/* --verify: the pattern after the header, and (hpnbench framing) the
 * header's flag saying so. */
VERIFY_PATH static void mark(const struct client *c, void *buf, size_t size, uint64_t seq)
{
	if (!c->plain) {
		uint32_t flags = HB_PATTERN;

		memcpy((uint8_t *)buf + offsetof(struct bench_hdr, flags), &flags, sizeof(flags));
	}
	pattern_fill((uint8_t *)buf + c->hdr, size - c->hdr, seq);
}

/* A send the endpoint refused for good. -EMSGSIZE here is the server's
 * limit (ours was checked before the run): it sizes its buffers by its own
 * --size, or max_msg=. */
static __attribute__((noreturn)) void send_failed(int r)
{
	die(1, "send failed: %s (%s)%s", strerror(-r), r == -ENOTCONN ? "server gone" : hpn_last_error(),
	    r == -EMSGSIZE ? "; start the server with this --size too (or max_msg=)" : "");
}

static void send_one(struct client *c, uint32_t type, uint64_t seq, size_t size)
{
	struct bench_hdr h = {type, 0, seq};
	bool copy = type == M_PING && size <= c->inline_max; /* a stream stays zero-copy */
	void *buf = c->txbuf;
	int r;

	for (uint64_t t0 = 0; !copy && hpn_buf_get_sized(c->ep, size, &buf) == -ENOBUFS;) {
		hpn_poll(c->ep, NULL, 0); /* buffers come back with acks, which someone has to read */
		stuck(c, &t0, "no free buffer to send from (bufs= too small for this run?)");
	}
	if (c->plain) { /* sockperf's ping: any echo, or sockperf sr, answers it */
		memset(buf, 0, SP_HDR);
		put_be(buf, seq, 8);
		put_be((uint8_t *)buf + 8, SP_CLIENT | SP_PONG_REQUEST, 2);
		put_be((uint8_t *)buf + 10, size, 4);
	} else {
		memcpy(buf, &h, sizeof(h));
	}
	if (c->o->verify && type != M_END)
		mark(c, buf, size, seq);
	if (copy) {
		for (uint64_t t0 = 0; (r = hpn_send(c->ep, c->peer, buf, size)) == -EAGAIN;)
			stuck(c, &t0, "the server takes nothing (its window stays closed)");
		if (r < 0)
			send_failed(r);
		return;
	}
	struct hpn_msg m = {.data = buf, .len = (uint32_t)size, .peer = c->peer};

	for (uint64_t t0 = 0; (r = hpn_send_zc_burst(c->ep, &m, 1)) == -EAGAIN || r == 0;)
		stuck(c, &t0, "the server takes nothing (its window stays closed)");
	if (r < 0) {
		hpn_buf_put(c->ep, buf);
		send_failed(r);
	}
}

static void check_events(struct client *c)
{
	struct hpn_event ev[8];
	int n = hpn_poll(c->ep, ev, 8);

	for (int i = 0; i < n; i++)
		if (ev[i].type == HPN_EV_PEER_GONE && ev[i].peer == c->peer)
			die(1, "server went away (%s)", ev[i].status ? strerror(-ev[i].status) : "closed");
}

struct progress_line {
	uint64_t start, next;
	bool on;
};

static void show_progress(struct progress_line *p, size_t size, uint64_t done,
			  uint64_t total, uint64_t now)
{
	if (!p->on || now < p->next)
		return;
	p->next = now + 1000000000ull;
	if (total)
		fprintf(stderr, "hpnbench: size %zu: %3.0f%% (%" PRIu64 " messages, %.1f s)\n", size,
			100.0 * (double)done / (double)total, done, (double)(now - p->start) / 1e9);
	else
		fprintf(stderr, "hpnbench: size %zu: %" PRIu64 " messages (%.1f s)\n", size, done,
			(double)(now - p->start) / 1e9);
}

/* --verify: the echo carries the pattern the ping went out with. */
VERIFY_PATH static void check_echo(struct client *c, const struct hpn_msg *m, uint64_t seq, struct result *res)
{
	static unsigned said;
	long at = pattern_check((const uint8_t *)m->data + c->hdr, m->len - c->hdr, seq);

	if (at < 0)
		return;
	res->corrupt++;
	if (said++ < 5)
		fprintf(stderr, "hpnbench: the echo of ping %" PRIu64 " (%u bytes) differs from what was sent from "
			"byte %ld on%s\n", seq, m->len, at + (long)c->hdr,
			said == 5 ? " (further ones are counted, not shown)" : "");
}

static void pingpong(struct client *c, size_t size, struct result *res)
{
	const struct opts *o = c->o;
	uint64_t total = o->warmup + o->iters, seq = 0, measured = 0, t_start = 0, t_end;
	uint64_t deadline_ns = o->duration > 0 ? (uint64_t)(o->duration * 1e9) : 0;
	struct progress_line pl = {now_ns(), now_ns() + 2000000000ull, !o->quiet};
	struct hpn_msg m[BURST];
	/* Lost pings are counted and skipped; a server that answers none for
	 * this long is not there (a dead echo took hours at 200 ms a ping). */
	const uint64_t give_up_ns = (c->reply_timeout_ms * 2 > STUCK_S * 1000 ? c->reply_timeout_ms * 2 : STUCK_S * 1000) *
				    1000000ull;
	uint64_t last_reply = now_ns(), lost_run = 0;

	hpn_hist_reset(c->hist);
	for (seq = 0; !interrupted && !res->gave_up[0]; seq++) {
		uint64_t t0, t1;
		bool got = false;

		if (deadline_ns ? (t_start && now_ns() - t_start >= deadline_ns) : seq >= total)
			break;
		if (seq == o->warmup) {
			t_start = now_ns();
			measure_start(c);
		}
		t0 = now_ns();
		send_one(c, M_PING, seq, size);
		while (!got && !interrupted) { /* Ctrl-C: the results so far, not "the server went away" */
			int n = hpn_recv_wait(c->ep, m, BURST, REPLY_TIMEOUT_MS);

			if (n < 0)
				die(1, "receive failed: %s", strerror(-n));
			if (n == 0 && interrupted)
				break;
			if (n == 0) {
				check_events(c);
				if (now_ns() - t0 >= c->reply_timeout_ms * 1000000ull) {
					if (seq >= o->warmup)
						res->drops++; /* lost ping or pong: move on */
					else
						res->warm_drops++;
					if (++lost_run > 1 && now_ns() - last_reply >= give_up_ns) {
						snprintf(res->gave_up, sizeof(res->gave_up),
							 "no reply for %llu s (%llu pings in a row lost): is the server "
							 "an echo, and up?",
							 (unsigned long long)((now_ns() - last_reply) / 1000000000ull),
							 (unsigned long long)lost_run);
					}
					break;
				}
				continue;
			}
			t1 = now_ns();
			for (int i = 0; i < n; i++) {
				struct bench_hdr h;

				memcpy(&h, m[i].data, sizeof(h));
				if (c->plain) { /* an echo, or sockperf's answer */
					h.type = m[i].len >= SP_HDR ? M_PING : 0;
					h.seq = get_be(m[i].data, 8);
				}
				if (h.type == M_PING && h.seq == seq && m[i].len == size && !got) {
					if (o->verify)
						check_echo(c, &m[i], seq, res);
					got = true;
					last_reply = t1;
					lost_run = 0;
					if (seq >= o->warmup) {
						hpn_hist_record(c->hist, (t1 - t0) / 2);
						measured++;
					}
				} else if (o->verify && h.type == M_PING && h.seq == seq && !got && m[i].len >= c->hdr &&
					   pattern_check((const uint8_t *)m[i].data + c->hdr, m[i].len - c->hdr, seq) >= 0) {
					/* The answer, cut short or grown: not lost, spoilt. (Whole
					 * by its own length, it is a late echo of the last size's
					 * ping with this number: below.) */
					res->corrupt++;
					got = true;
					last_reply = t1;
					lost_run = 0;
					if (res->corrupt <= 5)
						fprintf(stderr, "hpnbench: the echo of ping %" PRIu64 " is %u bytes, %zu were "
							"sent\n", seq, m[i].len, size);
				} else if (h.type == M_PING && h.seq < seq) {
					if (h.seq >= o->warmup)
						res->dups++; /* a late echo of a ping counted lost */
					last_reply = t1; /* late, but the server is there */
				} else if (seq >= o->warmup) {
					res->ooo++;
				}
				hpn_buf_put(c->ep, m[i].data);
			}
		}
		if (!(seq & 4095)) {
			uint64_t t = now_ns();

			check_events(c);
			show_progress(&pl, size, seq, deadline_ns ? 0 : total, t);
		} else if (got) { /* large messages are slow: by the clock read for the reply (a compare) */
			show_progress(&pl, size, seq + 1, deadline_ns ? 0 : total, last_reply);
		}
	}
	t_end = now_ns();
	res->iters = measured;
	if (measured) {
		double el = (double)(t_end - t_start) / 1e9;

		res->t_min = (double)hpn_hist_min(c->hist) / 1e3;
		res->t_typ = (double)hpn_hist_percentile(c->hist, 50) / 1e3;
		res->t_avg = hpn_hist_mean(c->hist) / 1e3;
		res->t_stdev = hpn_hist_stdev(c->hist) / 1e3;
		res->p99 = (double)hpn_hist_percentile(c->hist, 99) / 1e3;
		res->p999 = (double)hpn_hist_percentile(c->hist, 99.9) / 1e3;
		res->p9999 = (double)hpn_hist_percentile(c->hist, 99.99) / 1e3;
		res->t_max = (double)hpn_hist_max(c->hist) / 1e3;
		res->msgs_per_s = (double)measured / el; /* round trips per second */
		res->gbit_per_s = 2.0 * (double)measured * (double)size * 8 / el / 1e9;
	} else { /* nothing measured: no figure (null in JSON), not a zero a script could read as one */
		res->t_min = res->t_typ = res->t_avg = res->t_stdev = NAN;
		res->p99 = res->p999 = res->p9999 = res->t_max = NAN;
		res->msgs_per_s = res->gbit_per_s = NAN;
	}
}

/* Close a counting round on the server and get its counters. Each call is
 * a new round; retries of one call repeat its round number, so a lost
 * report is answered again instead of being reset to zero. */
static bool stream_report(struct client *c, struct report *out)
{
	static uint64_t round;
	struct hpn_msg m[BURST];
	/* Ctrl-C during the run still asks for the report of what was sent
	 * (a few tries); a second Ctrl-C, or one while asking, gives up. */
	int tries = interrupted ? 3 : 20, was = interrupted;

	round++;
	for (int attempt = 0; attempt < tries && interrupted == was; attempt++) {
		uint64_t t0 = now_ns();

		send_one(c, M_END, round, HDR_SIZE);
		while (now_ns() - t0 < REPLY_TIMEOUT_MS * 1000000ull) {
			int n = hpn_recv_wait(c->ep, m, BURST, REPLY_TIMEOUT_MS);
			bool done = false;

			if (n < 0)
				die(1, "receive failed: %s", strerror(-n));
			if (n == 0)
				check_events(c);
			for (int i = 0; i < n; i++) {
				struct bench_hdr h;

				memcpy(&h, m[i].data, sizeof(h));
				if (h.type == M_REPORT && m[i].len >= HDR_SIZE + REPORT_OLD_SIZE && h.seq == round) {
					size_t len = m[i].len - HDR_SIZE < sizeof(*out) ? m[i].len - HDR_SIZE : sizeof(*out);

					out->corrupt = UINT64_MAX; /* an older server's report ends before it */
					memcpy(out, (uint8_t *)m[i].data + HDR_SIZE, len);
					done = true;
				}
				hpn_buf_put(c->ep, m[i].data);
			}
			if (done)
				return true;
		}
	}
	return false;
}

static void stream(struct client *c, size_t size, struct result *res)
{
	const struct opts *o = c->o;
	uint64_t total = o->iters, sent = 0, t_start;
	uint64_t deadline_ns = o->duration > 0 ? (uint64_t)(o->duration * 1e9) : 0;
	struct progress_line pl = {now_ns(), now_ns() + 2000000000ull, !o->quiet};
	struct hpn_msg m[BURST];
	struct report rep;

	/* Warm up, then reset the server's counters. */
	for (uint64_t i = 0; i < o->warmup && !interrupted; i++)
		send_one(c, M_DATA, i, size);
	if (interrupted)
		return; /* nothing measured yet: the caller exits 130 */
	if (!stream_report(c, &rep)) {
		if (interrupted)
			return;
		die(1, "server does not answer (stream warm-up report lost 20 times)");
	}
	measure_start(c);
	t_start = now_ns();
	while (!interrupted) {
		unsigned n = BURST, k = 0;
		uint64_t t;

		if (!deadline_ns && total - sent < n)
			n = (unsigned)(total - sent);
		if (!n)
			break;
		for (; k < n; k++) {
			struct bench_hdr h = {M_DATA, 0, sent + k};

			if (hpn_buf_get_sized(c->ep, size, &m[k].data))
				break;
			memcpy(m[k].data, &h, sizeof(h));
			if (o->verify)
				mark(c, m[k].data, size, sent + k);
			m[k].len = (uint32_t)size;
			m[k].peer = c->peer;
		}
		int r = k ? hpn_send_zc_burst(c->ep, m, k) : -EAGAIN;

		if (r < 0 && r != -EAGAIN)
			send_failed(r);
		if (r < 0)
			r = 0;
		for (unsigned i = (unsigned)r; i < k; i++)
			hpn_buf_put(c->ep, m[i].data);
		sent += (unsigned)r;
		if ((sent & ~(uint64_t)4095) != ((sent - (unsigned)r) & ~(uint64_t)4095) || !r) {
			t = now_ns();
			if (deadline_ns && t - t_start >= deadline_ns)
				break;
			/* Drain anything the server sent (nothing, normally). */
			int got = hpn_recv_burst(c->ep, m, BURST);

			for (int i = 0; i < got; i++)
				hpn_buf_put(c->ep, m[i].data);
			check_events(c);
			show_progress(&pl, size, sent, deadline_ns ? 0 : total, t);
		}
	}
	usleep(20000); /* let the last datagrams land before asking */
	if (!stream_report(c, &rep)) {
		if (interrupted) { /* Ctrl-C: what was sent, without the server's count */
			res->drops = 0;
			snprintf(res->gave_up, sizeof(res->gave_up), "interrupted: no report from the server");
			return;
		}
		die(1, "server does not answer (stream report lost 20 times)");
	}
	res->iters = rep.received;
	res->drops = sent > rep.received ? sent - rep.received : 0;
	res->ooo = rep.ooo;
	res->unchecked = o->verify && rep.corrupt == UINT64_MAX;
	res->corrupt = rep.corrupt == UINT64_MAX ? 0 : rep.corrupt;
	res->t_min = res->t_typ = res->t_avg = res->t_stdev = NAN;
	res->p99 = res->p999 = res->p9999 = res->t_max = NAN;
	if (rep.received > 1 && rep.last_ns > rep.first_ns) {
		double el = (double)(rep.last_ns - rep.first_ns) / 1e9;

		res->msgs_per_s = (double)(rep.received - 1) / el;
		res->gbit_per_s = res->msgs_per_s * (double)size * 8 / 1e9;
	}
}

/* ---- output ------------------------------------------------------------ */

static void print_header(const struct opts *o)
{
	if (o->mode == 0)
		printf("%-8s %8s %10s %8s %8s %8s %8s %8s %8s %8s %9s %7s %5s %5s %8s", "mode", "size", "iters",
		       "t_min", "t_typ", "t_avg", "t_stdev", "p99", "p99.9", "p99.99", "t_max", "drops", "dups",
		       "ooo", "retrans");
	else
		printf("%-8s %8s %10s %12s %10s %10s %7s %8s", "mode", "size", "received", "msgs/s", "Gbit/s",
		       "drops", "ooo", "retrans");
	printf(o->verify ? " %8s\n" : "\n", "corrupt"); /* a column only when asked: scripts read the others */
}

static void print_result(const struct opts *o, const struct result *r)
{
	if (o->mode == 0)
		printf("%-8s %8zu %10" PRIu64 " %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %9.2f %7" PRIu64
		       " %5" PRIu64 " %5" PRIu64 " %8" PRIu64,
		       "pingpong", r->size, r->iters, r->t_min, r->t_typ, r->t_avg, r->t_stdev, r->p99, r->p999,
		       r->p9999, r->t_max, r->drops, r->dups, r->ooo, r->retransmits);
	else
		printf("%-8s %8zu %10" PRIu64 " %12.0f %10.3f %10" PRIu64 " %7" PRIu64 " %8" PRIu64, "stream",
		       r->size, r->iters, r->msgs_per_s, r->gbit_per_s, r->drops, r->ooo, r->retransmits);
	if (o->verify && r->unchecked)
		printf(" %8s", "-");
	else if (o->verify)
		printf(" %8" PRIu64, r->corrupt);
	printf("\n");
	fflush(stdout);
}

void json_str(FILE *f, const char *s)
{
	for (const char *p = s; *p; p++)
		fprintf(f, *p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
}

static void json_num(FILE *f, const char *key, double v, bool comma)
{
	if (isnan(v))
		fprintf(f, "\"%s\": null%s", key, comma ? ", " : "");
	else
		fprintf(f, "\"%s\": %.4f%s", key, v, comma ? ", " : "");
}

void json_check(const struct opts *o)
{
	bool existed;
	FILE *f;

	if (!o->json || !strcmp(o->json, "-"))
		return;
	existed = !access(o->json, F_OK);
	f = fopen(o->json, "a"); /* not "w": a run that fails keeps the last results */
	if (!f)
		die(1, "--json: cannot write '%s': %s", o->json, strerror(errno));
	fclose(f);
	if (!existed)
		unlink(o->json);
}

FILE *json_open(const struct opts *o)
{
	FILE *f;

	if (!strcmp(o->json, "-"))
		return stdout;
	f = fopen(o->json, "w");
	if (!f)
		die(1, "--json: cannot write '%s': %s", o->json, strerror(errno));
	return f;
}

void json_close(FILE *f, const struct opts *o)
{
	/* A full disk or a file that takes no writes shows only here. */
	bool bad = ferror(f);

	bad |= (f == stdout ? fflush(f) : fclose(f)) != 0;
	if (bad)
		die(1, "--json: writing '%s' failed: %s", o->json, errno ? strerror(errno) : "write error");
}

static void write_json(const struct opts *o, const char *describe, const struct result *res, unsigned n)
{
	FILE *f = json_open(o);
	fprintf(f, "{\n  \"hpnbench\": {\"version\": \"%s\", \"endpoint\": \"", hpn_version());
	json_str(f, describe);
	fprintf(f, "\", \"peer\": \"%s\"},\n  \"results\": [\n", o->peer ? o->peer : "loopback");
	for (unsigned i = 0; i < n; i++) {
		const struct result *r = &res[i];

		fprintf(f, "    {\"plugin\": \"%s\", \"mode\": \"%s\", \"size\": %zu, \"iters\": %" PRIu64 ", ",
			o->plugin, o->mode ? "stream" : "pingpong", r->size, r->iters);
		json_num(f, "t_min_us", r->t_min, true);
		json_num(f, "t_typical_us", r->t_typ, true);
		json_num(f, "t_avg_us", r->t_avg, true);
		json_num(f, "t_stdev_us", r->t_stdev, true);
		json_num(f, "p99_us", r->p99, true);
		json_num(f, "p99_9_us", r->p999, true);
		json_num(f, "p99_99_us", r->p9999, true);
		json_num(f, "t_max_us", r->t_max, true);
		json_num(f, "msgs_per_s", r->msgs_per_s, true);
		json_num(f, "gbit_per_s", r->gbit_per_s, true);
		fprintf(f, "\"drops\": %" PRIu64 ", \"dups\": %" PRIu64 ", \"out_of_order\": %" PRIu64
			", \"retransmits\": %" PRIu64 ", \"copies\": %" PRIu64,
			r->drops, r->dups, r->ooo, r->retransmits, r->copies);
		if (o->verify && r->unchecked) /* null: not checked, not zero found */
			fprintf(f, ", \"corrupt\": null");
		else if (o->verify)
			fprintf(f, ", \"corrupt\": %" PRIu64, r->corrupt);
		fprintf(f, "}%s\n", i + 1 < n ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	json_close(f, o);
}

/* Plugins this build of hpn left out (HPN_NOT_BUILT: "name=why|..."),
 * unless one was found anyway (another build's, on HPN_PLUGIN_PATH). */
static void not_built(const struct hpn_plugin_info *list, int n)
{
	const char *p = HPN_NOT_BUILT;

	while (*p) {
		size_t len = strcspn(p, "|"), nl = strcspn(p, "=");
		bool found = false;

		for (int i = 0; i < n && nl < len; i++)
			found |= strlen(list[i].name) == nl && !strncmp(list[i].name, p, nl);
		if (nl < len && !found)
			printf("%-8.*s %-6s %-10s not built: %.*s\n", (int)nl, p, "no", "-", (int)(len - nl - 1), p + nl + 1);
		p += len + (p[len] == '|');
	}
}

static void list_plugins(void)
{
	const struct hpn_plugin_info *list;
	int n = hpn_plugin_list(&list);

	if (n == 0) {
		printf("no plugins found (set HPN_PLUGIN_PATH)\n");
		return;
	}
	printf("%-8s %-6s %-10s %s\n", "plugin", "usable", "max_msg", "details");
	for (int i = 0; i < n; i++) {
		const struct hpn_plugin_info *p = &list[i];

		printf("%-8s %-6s %-10u %s\n", p->name, p->status ? "no" : "yes",
		       p->description ? p->caps.max_msg_size : 0,
		       p->status ? p->reason : p->description);
		printf("%-8s %-6s %-10s   %s\n", "", "", "", p->path);
	}
	not_built(list, n);
}

/* Retransmissions so far by the client and, on loopback, the server. */
static uint64_t retransmits(hpn_ep *a, hpn_ep *b)
{
	struct hpn_stats st;
	uint64_t n;

	hpn_ep_stats(a, &st, sizeof(st));
	n = st.retransmits;
	if (b) {
		hpn_ep_stats(b, &st, sizeof(st));
		n += st.retransmits;
	}
	return n;
}

/* Payload copies so far (tx_copied + rx_copied), both ends on loopback. */
static uint64_t copies(hpn_ep *a, hpn_ep *b)
{
	struct hpn_stats st;
	uint64_t n;

	hpn_ep_stats(a, &st, sizeof(st));
	n = st.tx_copied + st.rx_copied;
	if (b) {
		hpn_ep_stats(b, &st, sizeof(st));
		n += st.tx_copied + st.rx_copied;
	}
	return n;
}

/* ---- main -------------------------------------------------------------- */

struct loop_server {
	struct server s;
	pthread_t thread;
	_Atomic int stop;
	int cpu;
};

static void *loop_server_main(void *arg)
{
	struct loop_server *ls = arg;

	pin(ls->cpu, "server");
	server_loop(&ls->s);
	return NULL;
}

static int ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct client c = {0};
	struct loop_server ls = {0};
	struct result res[MAX_SIZES];
	char peer[300];
	int ret;

	parse_opts(argc, argv, &o);
	hpn_log_set_handler(log_to_stderr, NULL, getenv("HPN_LOG_LEVEL") ? HPN_LOG_INFO : HPN_LOG_WARN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (o.list) {
		list_plugins();
		return 0;
	}
	if (!o.server)
		json_check(&o);
	if (o.mode == MODE_FEED)
		return feed_main(&o);
	if (o.server) {
		struct server s = {.verbose = true};
		char addr[128];
		_Atomic int stop = 0;

		pin(o.cpu, "server");
		s.ep = make_ep(&o, o.cpu);
		s.plain = hpn_ep_caps(s.ep)->flags & HPN_CAP_PLAIN;
		s.caps = hpn_ep_caps(s.ep);
		s.stop = &stop;
		snprintf(addr, sizeof(addr), "%s", o.bind ? o.bind : "0.0.0.0:18515");
		if ((ret = hpn_listen(s.ep, addr)))
			die(1, "cannot listen on %s: %s", addr, hpn_last_error());
		hpn_ep_local_addr(s.ep, addr, sizeof(addr));
		fprintf(stderr, "hpnbench server: %s; listening on %s\n", hpn_ep_describe(s.ep), addr);
		server_loop(&s);
		{ /* what the server turned away, for whoever drove hostile input at it */
			struct hpn_stats st;

			hpn_ep_stats(s.ep, &st, sizeof(st));
			if (!strcmp(hpn_ep_plugin(s.ep), "rdma")) /* no datagrams: refused connects, mostly */
				fprintf(stderr, "hpnbench server: %" PRIu64 " messages in, %" PRIu64 " out; dropped %" PRIu64
					" (connects refused, messages to a closed peer), %" PRIu64 " malformed\n",
					st.msgs_in, st.msgs_out, st.drops, st.malformed);
			else
				fprintf(stderr, "hpnbench server: %" PRIu64 " messages in, %" PRIu64 " out; dropped %" PRIu64
					" datagrams, %" PRIu64 " of them malformed\n", st.msgs_in, st.msgs_out, st.drops,
					st.malformed);
		}
		hpn_ep_destroy(s.ep);
		return 0;
	}

	if (!o.peer) {
		/* Loopback: the server runs on a thread of its own, on the next
		 * cpu when the client is pinned. */
		char addr[128];

		/* Two endpoints with a progress thread each, and both callers:
		 * four spinning threads. Fewer CPUs time-share them, and round
		 * trips become scheduler quanta (milliseconds), not the path. */
		if (!strcmp(o.progress, "thread") && ncpus() < 4)
			fprintf(stderr, "hpnbench: warning: loopback with --progress thread runs four busy threads on "
					"%d CPUs: expect millisecond round trips (the scheduler's, not hpn's); measure "
					"it with the ends on two machines or on a larger one\n", ncpus());
		ls.cpu = o.cpu >= 0 ? (o.cpu + 1) % ncpus() : -1;
		ls.s.ep = make_ep(&o, ls.cpu);
		ls.s.plain = hpn_ep_caps(ls.s.ep)->flags & HPN_CAP_PLAIN;
		ls.s.caps = hpn_ep_caps(ls.s.ep);
		ls.s.stop = &ls.stop;
		ls.s.until_stopped = true;
		const char *at = o.bind ? o.bind : "127.0.0.1:0";

		if (hpn_listen(ls.s.ep, at) || hpn_ep_local_addr(ls.s.ep, addr, sizeof(addr)))
			die(1, "cannot listen on %s: %s", at, hpn_last_error());
		snprintf(peer, sizeof(peer), "%s", addr);
		if (pthread_create(&ls.thread, NULL, loop_server_main, &ls))
			die(1, "cannot start the server thread");
	} else if (strchr(o.peer, ':') && o.peer[0] != '[') {
		snprintf(peer, sizeof(peer), "%s", o.peer);
	} else if (o.peer[0] == '[' && strstr(o.peer, "]:")) {
		snprintf(peer, sizeof(peer), "%s", o.peer);
	} else {
		snprintf(peer, sizeof(peer), "%s:%d", o.peer, DEFAULT_PORT);
	}

	pin(o.cpu, "client");
	c.o = &o;
	c.ep = make_ep(&o, o.cpu >= 0 && !strcmp(o.progress, "thread") ? o.cpu : -1);
	if (hpn_hist_create(60ull * 1000000000ull, &c.hist))
		die(1, "cannot create histogram");
	c.reply_timeout_ms = hpn_ep_caps(c.ep)->flags & HPN_CAP_RELIABLE ? RELIABLE_TIMEOUT_MS : REPLY_TIMEOUT_MS;
	c.plain = hpn_ep_caps(c.ep)->flags & HPN_CAP_PLAIN;
	c.hdr = c.plain ? SP_HDR : HDR_SIZE;
	if (c.plain && o.mode == MODE_STREAM)
		die(2, "--mode stream counts on an hpnbench server's report, which plain UDP (framing=none) has no "
		       "room for: use --mode pingpong against an echo, or --mode feed");
	ret = hpn_connect(c.ep, peer, 3000, &c.peer);
	if (ret)
		die(1, "cannot connect to %s: %s", peer, hpn_last_error());
	c.inline_max = hpn_ep_caps(c.ep)->inline_size; /* known once connected (rdma: the device's) */
	if (c.inline_max < c.hdr)
		c.inline_max = 0; /* too small for a ping's header: every size is a zero-copy send */
	if (c.inline_max && !(c.txbuf = calloc(1, c.inline_max)))
		die(1, "out of memory");
	if (!o.quiet)
		fprintf(stderr, "hpnbench: %s; peer %s\n", hpn_ep_describe(c.ep), o.peer ? peer : "loopback thread");
	/* Every size before any is measured: a late refusal lost the results. */
	for (unsigned i = 0; i < o.nsizes; i++)
		if (o.sizes[i] > hpn_ep_caps(c.ep)->max_msg_size)
			die(1, "--size %zu: larger than this endpoint's largest message, %u bytes (%s: docs/CONFIG.md)",
			    o.sizes[i], hpn_ep_caps(c.ep)->max_msg_size,
			    hpn_ep_caps(c.ep)->flags & HPN_CAP_PLAIN
				    ? "one datagram each: the backend's limit"
				    : "max_msg= raises it, on both ends; not with reliable=off: one datagram each");
	if (!o.json || strcmp(o.json, "-"))
		print_header(&o);
	unsigned done = 0; /* sizes run (an interrupt or a give-up ends the list) */
	const char *gave_up = NULL;

	for (unsigned i = 0; i < o.nsizes && !interrupted && !gave_up; i++, done++) {
		c.srv_ep = o.peer ? NULL : ls.s.ep;
		measure_start(&c); /* again when the warm-up ends */
		res[i] = (struct result){.size = o.sizes[i]};
		if (o.mode == 0)
			pingpong(&c, o.sizes[i], &res[i]);
		else
			stream(&c, o.sizes[i], &res[i]);
		res[i].retransmits = retransmits(c.ep, c.srv_ep) - c.rt0;
		res[i].copies = copies(c.ep, c.srv_ep) - c.cp0;
		if (!o.json || strcmp(o.json, "-"))
			print_result(&o, &res[i]);
		if (res[i].gave_up[0])
			gave_up = res[i].gave_up;
	}
	if (o.json)
		write_json(&o, hpn_ep_describe(c.ep), res, done);
	hpn_disconnect(c.ep, c.peer);
	if (!o.peer) {
		atomic_store_explicit(&ls.stop, 1, memory_order_relaxed);
		pthread_join(ls.thread, NULL);
		hpn_ep_destroy(ls.s.ep);
	}
	hpn_hist_destroy(c.hist);
	free(c.txbuf);
	hpn_ep_destroy(c.ep);
	if (interrupted)
		return 130;
	if (gave_up)
		die(1, "size %zu: %s", res[done - 1].size, gave_up);
	uint64_t corrupt = 0;
	unsigned sizes = 0;

	for (unsigned i = 0; i < done; i++) {
		if (res[i].unchecked)
			fprintf(stderr, "hpnbench: --verify: size %zu: the server is an older hpnbench that does not "
					"check payloads: not verified\n", res[i].size);
		corrupt += res[i].corrupt;
		sizes += res[i].corrupt > 0;
	}
	if (corrupt)
		die(1, "%" PRIu64 " message%s arrived with payload bytes that differ from what was sent, in %u of %u "
		       "sizes (--verify: the 'corrupt' column)", corrupt, corrupt > 1 ? "s" : "", sizes, done);
	for (unsigned i = 0; i < done; i++)
		if (!res[i].iters && (o.iters || o.duration > 0))
			die(1, "size %zu: nothing measured (%" PRIu64 " lost, %" PRIu64 " of them in the warm-up) - the "
			       "results above are not a measurement", res[i].size, res[i].drops + res[i].warm_drops,
			    res[i].warm_drops);
	return 0;
}
