/* SPDX-License-Identifier: MIT */
/*
 * plain.c - the packet endpoint with framing=none (pktep.h): datagrams as
 * they are, no hpn header, peers by source address; with seq= the lines'
 * datagrams are one feed (feed.h). docs/FEEDS.md has the user's view.
 */
#include "pktep_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* framing=none: a destination, connected at once (nobody is asked); a
 * source we hear from already becomes one (it no longer expires). */
int hpn_pk_plain_connect(struct hpn_pktep *e, const void *addr, uint32_t alen, hpn_peer_t *peer, const char *who)
{
	struct pk_peer *p = hpn_pk_peer_find(e, addr, alen);

	for (unsigned i = 0; i < sizeof(e->muted) / sizeof(e->muted[0]); i++)
		if (e->muted[i].alen == alen && !memcmp(e->muted[i].addr, addr, alen))
			e->muted[i].alen = 0; /* asked for again */
	if (p && !p->source)
		return hpn_set_error(-EISCONN, "connect %s: already a peer (id %u)", who, p->id);
	if (!p)
		p = hpn_pk_peer_new(e, addr, alen);
	if (!p)
		return hpn_set_error(!e->slots.nfree ? -EMFILE : -ENOMEM, "connect %s: %s", who,
				     !e->slots.nfree ? hpn_peer_slots_why(&e->slots) : "out of memory for the peer");
	p->source = false;
	hpn_core_event(e->core, HPN_EV_CONNECTED, p->id, 0);
	*peer = p->id;
	return 0;
}

/* Every peer slot taken (by sources: anyone can send a datagram, from any
 * address it forges): a new source's datagrams are dropped until silent
 * ones expire. Said at most once a second - a flood would fill the log. */
static __attribute__((cold, noinline)) void plain_full(struct hpn_pktep *e, const struct hpn_dgram *d)
{
	char who[64] = "?";

	if (hpn_pk_log_due(e, &e->full_log_ns, d->addr, d->alen, who, sizeof(who)))
		hpn_log(HPN_LOG_WARN, "framing=none: datagrams from %s dropped: %s (sources expire after "
				      "peer_timeout_ms of silence)", who, hpn_peer_slots_why(&e->slots));
}

/* The source of a plain datagram: a known peer, or a new one if we listen
 * (or subscribed) and it was not let go of (hpn_disconnect mutes it).
 * Anyone can send a datagram: nothing but a peer slot is spent on it, and
 * a full table drops it, counted. */
static struct pk_peer *plain_source(struct hpn_pktep *e, const struct hpn_dgram *d)
{
	struct pk_peer *p = e->last;

	if (!p || p->dead || p->alen != d->alen || memcmp(p->addr, d->addr, d->alen))
		p = hpn_pk_peer_find(e, d->addr, d->alen);
	if (!p) {
		if (!e->listening && !e->subscribing)
			return NULL;
		for (unsigned i = 0; i < sizeof(e->muted) / sizeof(e->muted[0]); i++)
			if (e->muted[i].alen == d->alen && !memcmp(e->muted[i].addr, d->addr, d->alen))
				return NULL;
		p = hpn_pk_peer_new(e, d->addr, d->alen);
		if (!p) {
			plain_full(e, d);
			return NULL;
		}
		p->source = true;
		hpn_core_event(e->core, HPN_EV_PEER_NEW, p->id, 0);
	}
	if (p->lingering)
		return NULL;
	p->heard_ns = e->now;
	e->last = p;
	return p;
}

/* One message of a plain datagram (or of a feed's packet) to the reader:
 * handed over in the pool buffer it landed in when it is the only one
 * taken from it, else copied into one. The caller checked the room. */
static void plain_deliver(struct hpn_pktep *e, hpn_peer_t peer, const uint8_t *msg, uint32_t len, uint64_t seq,
			  uint64_t ts, bool sole)
{
	struct hpn_dgram *d = e->cur;
	struct hpn_msg m = {.len = len, .peer = peer, .ts_ns = ts, .seq = seq};

	if (sole && d && (d->flags & HPN_DGRAM_POOL) && d->data && msg >= d->data && msg + len <= d->data + d->len) {
		m.data = (void *)msg;
		d->data = NULL;
	} else {
		m.data = e->cache[--e->ncache];
		memcpy(m.data, msg, len);
		HPN_STAT_ADD(e->st->rx_copied, 1);
	}
	hpn_msgq_push(&e->q, &m);
	e->plain_delivered++;
	if (e->ncache < HPN_CONN_BATCH_MAX)
		hpn_pk_refill(e);
}

uint32_t hpn_pk_plain_room(struct hpn_pktep *e)
{
	uint32_t q = hpn_msgq_room(&e->q);

	return q < e->ncache ? q : e->ncache;
}

static uint32_t feed_room(void *arg)
{
	return hpn_pk_plain_room(arg);
}

static void feed_deliver(void *arg, const uint8_t *pkt, const uint8_t *msg, uint32_t len, uint64_t seq, uint64_t ts,
			 uint32_t line, bool whole)
{
	struct hpn_pktep *e = arg;

	plain_deliver(e, e->lines[line].peer, msg, len, seq, ts, whole);
}

/* A packet the feed holds: the pool buffer it landed in when the device
 * lent one (no copy), else a copy in an ordinary one - at most kept_max
 * of them, so the pool keeps buffers for deliveries (and a frame
 * backend's receive ring its frames). */
static uint8_t *feed_keep(void *arg, const uint8_t *pkt, uint32_t len)
{
	struct hpn_pktep *e = arg;
	struct hpn_dgram *d = e->cur;
	void *buf;

	if (e->nkept >= e->kept_max)
		return NULL;
	if (d && (d->flags & HPN_DGRAM_POOL) && d->data == pkt) {
		d->data = NULL; /* the backend forgets it (rx_done) */
		e->nkept++;
		return (uint8_t *)pkt;
	}
	if (!e->pool || !hpn_pool_get_sized(e->pool, len, &buf))
		return NULL;
	memcpy(buf, pkt, len);
	e->nkept++;
	return buf;
}

static void feed_release(void *arg, uint8_t *kept)
{
	struct hpn_pktep *e = arg;
	void *b = kept;

	e->nkept--;
	hpn_pool_put_bulk(e->pool, &b, 1);
}

static void feed_gap(void *arg, uint64_t from, uint64_t count, uint32_t line)
{
	struct hpn_pktep *e = arg;

	hpn_core_event_ex(e->core, &(struct hpn_event){.type = HPN_EV_GAP, .peer = e->lines[line].peer,
							 .seq = from, .count = count});
}

static void feed_end(void *arg, uint64_t next, uint32_t line)
{
	struct hpn_pktep *e = arg;

	hpn_core_event_ex(e->core, &(struct hpn_event){.type = HPN_EV_FEED_END, .peer = e->lines[line].peer,
							 .seq = next});
}

static void feed_restart(void *arg, uint64_t seq, uint32_t line)
{
	struct hpn_pktep *e = arg;

	/* After the old start's messages still queued for the application:
	 * what it rebuilds from the event must not take them in. */
	hpn_core_event_after(e->core,
			     &(struct hpn_event){.type = HPN_EV_FEED_RESTART, .peer = e->lines[line].peer, .seq = seq},
			     e->plain_delivered);
}

const struct hpn_feed_ops hpn_pk_feed_ops = {
	.room = feed_room, .deliver = feed_deliver, .keep = feed_keep, .release = feed_release,
	.gap = feed_gap, .end = feed_end, .restart = feed_restart,
};

/* A feed that started again says so: what it delivered before came from
 * a start no later packet agreed with (a stray datagram, a session that
 * ended). */
static void feed_restarted(struct hpn_pktep *e)
{
	struct hpn_feed *f = e->feed;
	char session[11] = "";

	/* Once a second at most: agreeing pairs of forged packets could
	 * drive restarts as fast as they come. */
	if (!hpn_pk_due(e, &e->feed_restart_log_ns))
		return;
	for (int i = 0; i < 10 && f->spec.kind == HPN_SEQ_MOLDUDP64; i++)
		session[i] = f->session[i] >= 0x20 && f->session[i] < 0x7f ? (char)f->session[i] : '?';
	hpn_log(HPN_LOG_WARN, "feed: started again%s%s at sequence number %llu: two packets agree on it, and none "
			      "agreed with the start before (a stray datagram came first, or the session changed); "
			      "%llu restarts so far",
		*session ? " in session " : "", session, (unsigned long long)f->restart_seq,
		(unsigned long long)f->restarts);
	e->feed_restarts = f->restarts;
}

/* The feed's counters into the endpoint's stats (single writer). */
void hpn_pk_feed_sync(struct hpn_pktep *e)
{
	struct hpn_feed *f = e->feed;
	uint64_t now[8] = {f->msgs, f->ngap_events, f->gap_msgs, f->dups, f->late, f->malformed, f->foreign,
			   f->overflow};
	uint64_t *st[5] = {&e->st->feed_msgs, &e->st->feed_gaps, &e->st->feed_gap_msgs, &e->st->feed_dups,
			   &e->st->feed_late};

	if (f->restarts != e->feed_restarts)
		feed_restarted(e);

	if (!memcmp(now, e->feed_synced, sizeof(now)))
		return;
	for (int i = 0; i < 5; i++)
		if (now[i] != e->feed_synced[i])
			HPN_STAT_ADD(*st[i], now[i] - e->feed_synced[i]);
	if (now[5] != e->feed_synced[5])
		HPN_STAT_ADD(e->st->malformed, now[5] - e->feed_synced[5]);
	if (now[5] + now[6] + now[7] != e->feed_synced[5] + e->feed_synced[6] + e->feed_synced[7])
		HPN_STAT_ADD(e->st->drops, now[5] + now[6] + now[7] - e->feed_synced[5] - e->feed_synced[6] -
						   e->feed_synced[7]);
	memcpy(e->feed_synced, now, sizeof(now));
}

void hpn_pk_feed_tick(struct hpn_pktep *e, uint64_t now, bool caught_up)
{
	e->cur = NULL;
	e->feed_deadline = hpn_feed_tick(e->feed, now, caught_up);
	hpn_pk_feed_sync(e);
}

/* Which line a datagram came on: by its destination (when the backend
 * knows it) and, for a source-specific line, its source. -1: none of
 * them (a datagram to our port that is no line's). */
static int line_of(const struct hpn_pktep *e, const struct hpn_dgram *d)
{
	for (uint32_t i = 0; i < e->nlines; i++) {
		if (d->dst_port && (e->lines[i].port != d->dst_port ||
				    (e->lines[i].group && e->lines[i].group != d->dst_ip)))
			continue;
		if (e->lines[i].source && d->alen >= 8 &&
		    memcmp(&e->lines[i].source, (const uint8_t *)d->addr + 4, 4)) /* sockaddr_in's address */
			continue;
		return (int)i;
	}
	return -1;
}

void hpn_pk_plain_input(struct hpn_pktep *e, struct hpn_dgram *d)
{
	struct pk_peer *p;
	int line = 0;

	/* Length 0: cut by the backend (longer than a buffer: dropped whole,
	 * never delivered in part) - or empty, which carries no message. */
	if (!d->len) {
		HPN_STAT_ADD(e->st->drops, 1);
		return;
	}
	if (e->nlines && (line = line_of(e, d)) < 0) {
		/* No line's: only a peer we connected to speaks here (a request
		 * server's retransmissions: a feed's extra line; an answer). */
		p = hpn_pk_peer_find(e, d->addr, d->alen);
		if (p && !p->source) {
			p->heard_ns = e->now;
			line = HPN_FEED_RETRANS;
		}
	} else {
		p = plain_source(e, d);
	}
	if (!p || line < 0) {
		HPN_STAT_ADD(e->st->drops, 1);
		return;
	}
	if (!e->feed) {
		if (!hpn_pk_plain_room(e)) {
			HPN_STAT_ADD(e->st->drops, 1);
			return;
		}
		plain_deliver(e, p->id, d->data, d->len, 0, e->cur_ts, true);
		return;
	}
	e->lines[line].peer = p->id;
	hpn_feed_input(e->feed, (uint32_t)line, d->data, d->len, e->cur_ts, e->now);
	e->feed_deadline = e->feed->deadline; /* a hole it opened starts its timer */
}

/* Sources silent for peer_timeout_ms are gone. */
void hpn_pk_plain_expire(struct hpn_pktep *e, uint64_t now)
{
	for (uint32_t j = e->npeers; j-- > 0;) {
		struct pk_peer *p = &e->peers[e->active[j]];

		if (p->source && !p->dead && now - p->heard_ns >= e->ccfg.dead_ns) {
			for (uint32_t i = 0; i <= HPN_FEED_RETRANS; i++)
				if (e->lines[i].peer == p->id)
					e->lines[i].peer = HPN_PEER_NONE;
			hpn_core_event(e->core, HPN_EV_PEER_GONE, p->id, -ETIMEDOUT);
			hpn_pk_peer_free(e, p);
		}
	}
}

int hpn_pktep_line_check(struct hpn_pktep *e, const char *spec, uint32_t group, uint16_t port, uint32_t source)
{
	for (uint32_t i = 0; port && i < e->nlines; i++)
		if (e->lines[i].group == group && e->lines[i].port == port && e->lines[i].source == source)
			return hpn_set_error(-EEXIST, "listen %s: already listening there", spec);
	if (e->nlines == HPN_FEED_LINES_MAX)
		return hpn_set_error(-ENOSPC, "listen %s: a framing=none endpoint listens on at most %d lines (groups "
					      "or ports; a feed's A, B, ...)", spec, HPN_FEED_LINES_MAX);
	return 0;
}

int hpn_pktep_line_add(struct hpn_pktep *e, const char *spec, uint32_t group, uint16_t port, uint32_t source)
{
	int ret = hpn_pktep_line_check(e, spec, group, port, source);

	if (ret)
		return ret;
	snprintf(e->lines[e->nlines].spec, sizeof(e->lines[0].spec), "%s", spec);
	e->lines[e->nlines].group = group;
	e->lines[e->nlines].port = port;
	e->lines[e->nlines].source = source;
	e->lines[e->nlines].peer = HPN_PEER_NONE;
	return (int)e->nlines++;
}

int hpn_pktep_feed_lines(struct hpn_pktep *e, struct hpn_feed_line *out, unsigned max)
{
	uint32_t n = e->nlines ? e->nlines : 1, k = 0;
	bool retrans = e->feed && e->feed->line[HPN_FEED_RETRANS].packets;

	if (!e->feed)
		return hpn_set_error(-EOPNOTSUPP, "hpn_feed_lines: no feed on this endpoint (framing=none,seq=...)");
	for (uint32_t i = 0; i < n + retrans; i++) {
		uint32_t li = i < n ? i : HPN_FEED_RETRANS;
		const struct hpn_feed_line_st *l = &e->feed->line[li];

		if (k == max)
			break;
		out[k] = (struct hpn_feed_line){.packets = l->packets, .wins = l->wins, .dups = l->dups,
						.lead_ns_sum = l->lead_ns_sum, .lead_count = l->lead_count};
		snprintf(out[k++].addr, sizeof(out[0].addr), "%s",
			 li == HPN_FEED_RETRANS ? "retransmissions" : e->nlines ? e->lines[i].spec : "*");
	}
	return (int)(n + retrans);
}

/* "group@source:port" -> "group:port" and the source (network order);
 * anything else is left as it is. */
int hpn_pktep_split_source(const char *spec, char *out, size_t len, uint32_t *source)
{
	const char *at = strchr(spec, '@'), *colon = strrchr(spec, ':');
	char src[64];

	*source = 0;
	if (!at) {
		snprintf(out, len, "%s", spec);
		return 0;
	}
	if (!colon || colon < at || (size_t)(colon - at - 1) >= sizeof(src))
		return hpn_set_error(-EINVAL, "listen '%s': a source-specific group is group@source:port", spec);
	memcpy(src, at + 1, (size_t)(colon - at - 1));
	src[colon - at - 1] = '\0';
	if (inet_pton(AF_INET, src, source) != 1 || !*source)
		return hpn_set_error(-EINVAL, "listen '%s': source '%s' is not an IPv4 address", spec, src);
	snprintf(out, len, "%.*s%s", (int)(at - spec), spec, colon);
	return 0;
}

/* One plain message's datagram: the payload as it is, no header. */
int hpn_pk_plain_tx_burst(struct hpn_pktep *e, const struct hpn_msg *msgs, unsigned n, unsigned flags)
{
	unsigned done = 0;
	int ret = 0;

	for (; done < n; done++) {
		const struct hpn_msg *m = &msgs[done];
		struct pk_peer *p = e->last && e->last->id == m->peer && !e->last->dead ? e->last : peer_by_id(e, m->peer);

		if (!p || p->dead) {
			ret = hpn_set_error(-ENOTCONN, "send: peer %u is not connected", m->peer);
			break;
		}
		if (m->len > e->ccfg.max_msg) {
			ret = hpn_set_error(-EMSGSIZE, "send: %u bytes is more than one datagram carries here (%u)",
					    m->len, e->ccfg.max_msg);
			break;
		}
		if (e->ntx == PK_BURST)
			hpn_pk_flush(e);
		e->tx_d[e->ntx++] = (struct hpn_dgram){.addr = p->addr, .alen = p->alen, .data = m->data, .len = m->len};
		if (flags & HPN_TX_OWNED) {
			if (!in_frames(e, m->data))
				HPN_STAT_ADD(e->st->tx_copied, 1); /* a frame backend copies it into a frame */
			hpn_pk_put_after_flush(e, m->data);
		}
	}
	hpn_pk_flush(e);
	return done ? (int)done : ret;
}

