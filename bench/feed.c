/* SPDX-License-Identifier: MIT */
/*
 * feed.c - hpnbench --mode feed: receive one market-data feed from its
 * lines (--listen, one per A/B group) on an endpoint with
 * framing=none,seq=..., and report what the application got: messages,
 * gaps, what arbitration dropped, whether anything came out of sequence,
 * each line's packets and wins, and how long a message waited between its
 * receive timestamp and the application.
 *
 * It checks as well as counts: every delivered sequence number is
 * remembered, so a message delivered twice, or behind the highest one
 * without filling a reported gap, is out_of_order (it must be 0); digest
 * sums a hash of every message (sequence number and payload), whatever
 * the order, for a generator (bench/hpnfeedgen) to compare with.
 */
#include "hpnbench.h"

#include "feedhash.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FEED_BURST 64
#define MAX_GAPS 65536
#define MAX_SOURCES 16

struct feed_run {
	hpn_ep *ep;
	hpn_hist *lat; /* receive timestamp to application, ns */
	uint64_t msgs, gaps, gap_msgs, late_seen, ooo, dup_delivered, restarts;
	uint64_t ts_missing, ts_backwards, skew_max_ns;
	uint64_t digest, first_ns, last_ns;
	bool ended, started;
	bool looked; /* events read for this burst's first late message */
	uint64_t base, max_seq; /* sequence numbers from base on, in a bitmap */
	uint8_t *seen;
	size_t seen_len;
	struct {
		uint64_t from, count;
	} *gap;
	unsigned ngap;
	uint64_t *behind; /* sequence numbers delivered behind the highest: checked at the end */
	size_t nbehind, behind_cap;
	struct {
		hpn_peer_t peer;
		uint64_t last_ts;
	} src[MAX_SOURCES];
	unsigned nsrc;
};

static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Was seq delivered before? Marks it. */
static bool seen_before(struct feed_run *f, uint64_t seq)
{
	uint64_t bit;

	if (!f->started) {
		f->started = true;
		f->base = seq > 1000000 ? seq - 1000000 : 0; /* room for late ones a little behind the first */
	}
	if (seq < f->base)
		return false; /* too far behind to track: counted out of order below */
	bit = seq - f->base;
	if (bit / 8 >= f->seen_len) {
		size_t len = f->seen_len ? f->seen_len : 1 << 20;

		while (bit / 8 >= len)
			len *= 2;
		f->seen = realloc(f->seen, len);
		if (!f->seen)
			die(1, "out of memory for the sequence bitmap");
		memset(f->seen + f->seen_len, 0, len - f->seen_len);
		f->seen_len = len;
	}
	if (f->seen[bit / 8] & (1u << (bit % 8)))
		return true;
	f->seen[bit / 8] |= (uint8_t)(1u << (bit % 8));
	return false;
}

static void ts_check(struct feed_run *f, const struct hpn_msg *m, uint64_t app)
{
	unsigned i;

	if (!m->ts_ns) {
		f->ts_missing++;
		return;
	}
	uint64_t d = app > m->ts_ns ? app - m->ts_ns : m->ts_ns - app;

	if (d > f->skew_max_ns)
		f->skew_max_ns = d;
	hpn_hist_record(f->lat, app > m->ts_ns ? app - m->ts_ns : 0);
	/* Per line (its source): arrivals are stamped in the order they came. */
	for (i = 0; i < f->nsrc && f->src[i].peer != m->peer; i++)
		;
	if (i == f->nsrc && f->nsrc < MAX_SOURCES)
		f->src[f->nsrc++] = (__typeof__(f->src[0])){m->peer, 0};
	if (i < MAX_SOURCES) {
		if (m->ts_ns < f->src[i].last_ts)
			f->ts_backwards++;
		else
			f->src[i].last_ts = m->ts_ns;
	}
}

static void events(struct feed_run *f);
static void check_behind(struct feed_run *f);

/* A message behind the highest may be the first of a new start (a new
 * session: HPN_EV_FEED_RESTART, queued before its messages): look. */
static bool restarted(struct feed_run *f)
{
	uint64_t r = f->restarts;

	events(f);
	return f->restarts != r;
}

static void take(struct feed_run *f, const struct hpn_msg *m, uint64_t app)
{
	/* Once a burst at most: an extra poll per late message would skew
	 * the latency a lossy run measures. */
	if (f->started && m->seq <= f->max_seq && !f->looked) {
		f->looked = true;
		restarted(f); /* if so, the checks start afresh */
	}
	ts_check(f, m, app);
	f->digest += hpn_feed_hash(m->seq, m->data, m->len);
	if (!f->msgs)
		f->first_ns = app;
	f->last_ns = app;
	f->msgs++;
	if (seen_before(f, m->seq)) {
		f->dup_delivered++;
		f->ooo++;
		return;
	}
	if (f->msgs > 1 && m->seq <= f->max_seq) { /* behind: must fill a reported gap */
		if (f->nbehind == f->behind_cap) {
			f->behind_cap = f->behind_cap ? 2 * f->behind_cap : 1024;
			f->behind = realloc(f->behind, f->behind_cap * sizeof(*f->behind));
			if (!f->behind)
				die(1, "out of memory");
		}
		f->behind[f->nbehind++] = m->seq;
		return;
	}
	f->max_seq = m->seq;
}

static void events(struct feed_run *f)
{
	struct hpn_event ev[16];
	int n = hpn_poll(f->ep, ev, 16);

	for (int i = 0; i < n; i++) {
		if (ev[i].type == HPN_EV_GAP) {
			f->gaps++;
			f->gap_msgs += ev[i].count;
			if (f->ngap < MAX_GAPS) {
				f->gap[f->ngap].from = ev[i].seq;
				f->gap[f->ngap++].count = ev[i].count;
			}
		} else if (ev[i].type == HPN_EV_FEED_END) {
			f->ended = true;
		} else if (ev[i].type == HPN_EV_FEED_RESTART) {
			/* What came before is judged now; the new start's
			 * numbers are checked from scratch. */
			check_behind(f);
			f->restarts++;
			f->started = f->ended = false;
			f->max_seq = 0;
			f->nbehind = f->ngap = 0;
			if (f->seen)
				memset(f->seen, 0, f->seen_len);
			fprintf(stderr, "hpnbench: the feed started again at sequence number %" PRIu64
						" (a new session)\n", ev[i].seq);
		}
	}
}

/* Messages delivered behind the highest must lie in a reported gap. */
static void check_behind(struct feed_run *f)
{
	for (size_t i = 0; i < f->nbehind; i++) {
		bool in = false;

		for (unsigned g = 0; g < f->ngap && !in; g++)
			in = f->behind[i] >= f->gap[g].from && f->behind[i] - f->gap[g].from < f->gap[g].count;
		if (in)
			f->late_seen++;
		else
			f->ooo++;
	}
}

static void receive(struct feed_run *f, const struct opts *o)
{
	uint64_t t0 = now_ns(), quiet_since = 0, end_ns = o->duration > 0 ? (uint64_t)(o->duration * 1e9) : 0;
	struct hpn_msg m[FEED_BURST];
	unsigned polls = 0;

	while (!interrupted) {
		int n = hpn_recv_wait(f->ep, m, FEED_BURST, 10);
		uint64_t app = real_ns();

		if (n < 0 && n != -EAGAIN)
			die(1, "receive failed: %s", hpn_last_error());
		f->looked = false;
		for (int i = 0; i < n; i++) {
			take(f, &m[i], app);
			hpn_buf_put(f->ep, m[i].data);
			if (o->app_us > 0) /* a handler's work: the feed waits in the endpoint and the device meanwhile */
				for (uint64_t until = now_ns() + (uint64_t)(o->app_us * 1e3); now_ns() < until;)
					;
		}
		if (n <= 0 || !(++polls & 63))
			events(f);
		if (end_ns && now_ns() - t0 >= end_ns)
			break;
		/* The end of session: what came before it is queued already;
		 * read until 50 ms bring nothing more. */
		if (f->ended) {
			if (n > 0)
				quiet_since = 0;
			else if (!quiet_since)
				quiet_since = now_ns();
			else if (now_ns() - quiet_since > 50000000ull)
				break;
		}
	}
	events(f);
	check_behind(f);
}

static double us(uint64_t ns)
{
	return (double)ns / 1e3;
}

static void report(struct feed_run *f, const struct opts *o)
{
	struct hpn_feed_line lines[MAX_LISTEN];
	struct hpn_stats st;
	int nl = hpn_feed_lines(f->ep, lines, MAX_LISTEN);
	double el = f->last_ns > f->first_ns ? (double)(f->last_ns - f->first_ns) / 1e9 : 0;
	double rate = el > 0 ? (double)f->msgs / el : 0;
	FILE *j = NULL;

	if (nl < 0)
		die(1, "hpn_feed_lines: %s", hpn_last_error());
	if (nl > MAX_LISTEN)
		nl = MAX_LISTEN;
	hpn_ep_stats(f->ep, &st, sizeof(st));
	if (!o->json || strcmp(o->json, "-")) {
		printf("%-6s %10s %12s %6s %9s %9s %5s %5s %10s %10s\n", "mode", "msgs", "msgs/s", "gaps", "gap_msgs",
		       "dups_drop", "ooo", "late", "ts2app_p50", "p99.9(us)");
		printf("%-6s %10" PRIu64 " %12.0f %6" PRIu64 " %9" PRIu64 " %9" PRIu64 " %5" PRIu64 " %5" PRIu64
		       " %10.2f %10.2f\n", "feed", f->msgs, rate, f->gaps, f->gap_msgs, st.feed_dups, f->ooo,
		       f->late_seen, us(hpn_hist_percentile(f->lat, 50)), us(hpn_hist_percentile(f->lat, 99.9)));
		if (st.rx_dropped)
			printf("  this host dropped %" PRIu64 " datagrams before hpn read them (the receive buffer or ring "
			       "was full: a reader stopped too long; rcvbuf= on udp, frames= on af_xdp, rxd= or frames= on dpdk)\n",
			       st.rx_dropped);
		if (f->restarts)
			printf("  the feed started again %" PRIu64 " time(s): ooo and late count each start's own\n",
			       f->restarts);
		for (int i = 0; i < nl; i++)
			printf("  line %-28s packets %10" PRIu64 " wins %10" PRIu64 " lead %8.2f us\n", lines[i].addr,
			       lines[i].packets, lines[i].wins,
			       lines[i].lead_count ? (double)lines[i].lead_ns_sum / (double)lines[i].lead_count / 1e3
						   : 0.0);
		fflush(stdout);
	}
	if (!o->json)
		return;
	j = json_open(o);
	fprintf(j, "{\n  \"hpnbench\": {\"version\": \"%s\", \"endpoint\": \"", hpn_version());
	json_str(j, hpn_ep_describe(f->ep));
	fprintf(j, "\", \"peer\": \"feed\"},\n  \"results\": [\n    {\"plugin\": \"%s\", \"mode\": \"feed\", ", o->plugin);
	fprintf(j, "\"msgs\": %" PRIu64 ", \"msgs_per_s\": %.1f, \"gaps\": %" PRIu64 ", \"gap_msgs\": %" PRIu64
		   ", \"dups_dropped\": %" PRIu64 ", \"out_of_order\": %" PRIu64 ", \"late\": %" PRIu64
		   ", \"dup_delivered\": %" PRIu64 ", \"restarts\": %" PRIu64 ", \"ended\": %s, \"digest\": \"%016" PRIx64
		   "\", ",
		f->msgs, rate, f->gaps, f->gap_msgs, st.feed_dups, f->ooo, f->late_seen, f->dup_delivered, f->restarts,
		f->ended ? "true" : "false", f->digest);
	fprintf(j, "\"ts_missing\": %" PRIu64 ", \"ts_backwards\": %" PRIu64 ", \"ts_skew_max_us\": %.3f, "
		   "\"ts_to_app_p50_us\": %.3f, \"ts_to_app_p99_9_us\": %.3f, \"drops\": %" PRIu64
		   ", \"malformed\": %" PRIu64 ", \"copies\": %" PRIu64 ", \"rx_dropped\": %" PRIu64 ", \"lines\": [",
		f->ts_missing, f->ts_backwards, us(f->skew_max_ns), us(hpn_hist_percentile(f->lat, 50)),
		us(hpn_hist_percentile(f->lat, 99.9)), st.drops, st.malformed, st.rx_copied, st.rx_dropped);
	for (int i = 0; i < nl; i++) {
		fprintf(j, "%s{\"addr\": \"", i ? ", " : "");
		json_str(j, lines[i].addr);
		fprintf(j, "\", \"packets\": %" PRIu64 ", \"wins\": %" PRIu64 ", \"dups\": %" PRIu64
			   ", \"lead_us\": %.3f}",
			lines[i].packets, lines[i].wins, lines[i].dups,
			lines[i].lead_count ? (double)lines[i].lead_ns_sum / (double)lines[i].lead_count / 1e3 : 0.0);
	}
	fprintf(j, "]}\n  ]\n}\n");
	json_close(j, o);
}

int feed_main(const struct opts *o)
{
	struct feed_run f = {0};

	pin(o->cpu, "feed");
	f.ep = make_ep(o, o->cpu);
	if (!(hpn_ep_caps(f.ep)->flags & HPN_CAP_PLAIN))
		die(2, "--mode feed reads plain datagrams: --config framing=none,seq=moldudp64 (or mdp3, or "
		       "\"offset:N,size:4|8,endian:big|little\")");
	for (unsigned i = 0; i < o->nlisten; i++)
		if (hpn_listen(f.ep, o->listen[i]))
			die(1, "cannot listen on %s: %s", o->listen[i], hpn_last_error());
	if (hpn_feed_lines(f.ep, NULL, 0) < 0)
		die(2, "--mode feed needs a sequence number: --config framing=none,seq=moldudp64 (or mdp3, ...): %s",
		    hpn_last_error());
	if (hpn_hist_create(10ull * 1000000000ull, &f.lat))
		die(1, "cannot create histogram");
	f.gap = calloc(MAX_GAPS, sizeof(*f.gap));
	if (!f.gap)
		die(1, "out of memory");
	if (!o->quiet)
		fprintf(stderr, "hpnbench: %s; feed from %u line(s)%s\n", hpn_ep_describe(f.ep), o->nlisten,
			o->duration > 0 ? "" : ", until the end of session");
	receive(&f, o);
	report(&f, o);
	hpn_hist_destroy(f.lat);
	hpn_ep_destroy(f.ep);
	free(f.gap);
	free(f.seen);
	free(f.behind);
	if (interrupted)
		return 130;
	if (!f.msgs) { /* a script must not read "nothing came" as a good run */
		fprintf(stderr, "hpnbench: the feed delivered nothing: check the groups and ports (--listen), the "
				"interface (mcast_if=) and that the publisher runs\n");
		return 1;
	}
	return 0;
}
