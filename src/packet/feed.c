/* SPDX-License-Identifier: MIT */
/* feed.c - see feed.h. */
#include "feed.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOLD_HDR 20
#define MOLD_END 0xFFFF

/* ---- sequence numbers -------------------------------------------------------- */

static int parse_field(const char *spec, struct hpn_seq_spec *out, char *why, size_t why_len)
{
	char buf[128], *save = NULL;
	bool have_off = false;

	if (strlen(spec) >= sizeof(buf)) {
		snprintf(why, why_len, "too long");
		return -EINVAL;
	}
	strcpy(buf, spec);
	*out = (struct hpn_seq_spec){.kind = HPN_SEQ_FIELD, .size = 4, .big = true};
	for (char *t = strtok_r(buf, ",/", &save); t; t = strtok_r(NULL, ",/", &save)) {
		char *v = strchr(t, ':'), *end;
		unsigned long n;

		if (!v) {
			snprintf(why, why_len, "'%s' is not key:value", t);
			return -EINVAL;
		}
		*v++ = '\0';
		if (!strcmp(t, "offset") || !strcmp(t, "size")) {
			n = strtoul(v, &end, 10);
			if (!*v || *end || n > 65535 || (!strcmp(t, "size") && n != 4 && n != 8)) {
				snprintf(why, why_len, "%s:%s: %s", t, v,
					 !strcmp(t, "size") ? "the size is 4 or 8 bytes" : "not an offset (0..65535)");
				return -EINVAL;
			}
			if (!strcmp(t, "offset")) {
				out->offset = (uint32_t)n;
				have_off = true;
			} else {
				out->size = (uint8_t)n;
			}
		} else if (!strcmp(t, "endian") && (!strcmp(v, "big") || !strcmp(v, "little"))) {
			out->big = !strcmp(v, "big");
		} else {
			snprintf(why, why_len, "'%s:%s' unknown (offset:N, size:4|8, endian:big|little)", t, v);
			return -EINVAL;
		}
	}
	if (!have_off) {
		snprintf(why, why_len, "offset:N missing");
		return -EINVAL;
	}
	return 0;
}

int hpn_seq_parse(const char *spec, struct hpn_seq_spec *out, char *why, size_t why_len)
{
	if (!spec || !*spec) {
		snprintf(why, why_len, "empty");
		return -EINVAL;
	}
	if (!strcmp(spec, "moldudp64")) {
		*out = (struct hpn_seq_spec){.kind = HPN_SEQ_MOLDUDP64, .size = 8, .big = true, .offset = 10};
		return 0;
	}
	if (!strcmp(spec, "mdp3")) {
		*out = (struct hpn_seq_spec){.kind = HPN_SEQ_MDP3, .size = 4, .big = false};
		return 0;
	}
	if (!strncmp(spec, "offset:", 7) || strstr(spec, "offset:"))
		return parse_field(spec, out, why, why_len);
	snprintf(why, why_len, "'%s' unknown: moldudp64, mdp3 or offset:N,size:4|8,endian:big|little", spec);
	return -EINVAL;
}

static uint64_t load(const uint8_t *p, unsigned size, bool big)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)p[big ? i : size - 1 - i] << (8 * (size - 1 - i));
	return v;
}

int hpn_seq_read(const struct hpn_seq_spec *s, const uint8_t *pkt, uint32_t len, struct hpn_seq_pkt *out)
{
	if (s->kind == HPN_SEQ_MOLDUDP64) {
		uint32_t off = MOLD_HDR, count;

		if (len < MOLD_HDR)
			return -EBADMSG;
		count = (uint32_t)load(pkt + 18, 2, true);
		*out = (struct hpn_seq_pkt){.seq = load(pkt + 10, 8, true), .count = count, .session = pkt};
		if (count == MOLD_END) {
			out->count = 0;
			out->end = true;
			return len == MOLD_HDR ? 0 : -EBADMSG;
		}
		/* Every message block must lie inside the packet, and nothing
		 * may follow the last: a packet that lies is dropped whole. */
		for (uint32_t i = 0; i < count; i++) {
			if (off + 2 > len)
				return -EBADMSG;
			off += 2 + (uint32_t)load(pkt + off, 2, true);
			if (off > len)
				return -EBADMSG;
		}
		return off == len ? 0 : -EBADMSG;
	}
	if (s->offset + s->size > len)
		return -EBADMSG;
	*out = (struct hpn_seq_pkt){.seq = load(pkt + s->offset, s->size, s->big), .count = 1};
	return 0;
}

/* ---- the feed ------------------------------------------------------------------ */

int hpn_feed_init(struct hpn_feed *f, const struct hpn_seq_spec *spec, uint64_t gap_timeout_ns,
		  const struct hpn_feed_ops *ops, void *arg)
{
	memset(f, 0, sizeof(*f));
	f->spec = *spec;
	f->ops = ops;
	f->arg = arg;
	f->gap_timeout_ns = gap_timeout_ns;
	f->deadline = UINT64_MAX;
	f->hold = calloc(HPN_FEED_HOLD_MAX, sizeof(*f->hold));
	return f->hold ? 0 : -ENOMEM;
}

/* The candidate start is dropped (another replaced it, or the start it
 * disagreed with was confirmed). */
static void cand_drop(struct hpn_feed *f)
{
	if (!f->cand_seen)
		return;
	if (f->cand_pkt)
		f->ops->release(f->arg, f->cand_pkt);
	f->cand_pkt = NULL;
	f->cand_seen = false;
	f->foreign++; /* dropped: counted with another session's packets */
}

void hpn_feed_fini(struct hpn_feed *f)
{
	if (f->cand_pkt)
		f->ops->release(f->arg, f->cand_pkt);
	f->cand_pkt = NULL;
	for (uint32_t i = 0; f->hold && i < f->nhold; i++)
		if (f->hold[i].pkt)
			f->ops->release(f->arg, f->hold[i].pkt);
	free(f->hold);
	f->hold = NULL;
	f->nhold = 0;
}

/* Each copy of a packet is measured against the earliest copy: the
 * earliest line's lead grows by how much each other copy came later, the
 * other line's shrinks by as much. A copy read later but stamped earlier
 * than the earliest so far (a lagging reader takes one line's backlog,
 * then the next's) takes its place and the copies seen are measured
 * against it again, so the sums do not depend on the order lines are read
 * in. */
static void lead_note(struct hpn_feed *f, uint32_t line, uint64_t seq, uint64_t ts)
{
	__typeof__(f->lead[0]) *l = &f->lead[seq & (HPN_FEED_LEAD_RING - 1)];
	int64_t d;
	uint32_t n;

	if (l->seen == 0 || l->seq != seq) {
		*l = (__typeof__(*l)){.seq = seq, .ts = ts, .line = line, .seen = 1u << line};
		return;
	}
	if (l->seen & (1u << line))
		return; /* a repeat on the same line */
	d = (int64_t)(ts - l->ts);
	if (d >= 0) {
		f->line[l->line].lead_ns_sum += d;
		f->line[l->line].lead_count++;
		f->line[line].lead_ns_sum -= d;
		f->line[line].lead_count++;
		l->lag += d;
		l->seen |= 1u << line;
		return;
	}
	/* The new earliest, -d before the old one: the old earliest gives up
	 * its lead and is -d late itself, every other copy seen is -d later
	 * than it was measured, and all of them are this line's lead. */
	n = (uint32_t)__builtin_popcount(l->seen);
	for (uint32_t s = l->seen & ~(1u << l->line); s; s &= s - 1)
		f->line[__builtin_ctz(s)].lead_ns_sum += d;
	f->line[l->line].lead_ns_sum += d - l->lag;
	f->line[l->line].lead_count = f->line[l->line].lead_count + 2 - n; /* n - 1 leads given up, one lag */
	f->line[line].lead_ns_sum += l->lag - (int64_t)n * d;
	f->line[line].lead_count += n;
	l->lag -= (int64_t)n * d;
	l->ts = ts;
	l->line = line;
	l->seen |= 1u << line;
}

/* Message i of a MoldUDP64 packet (its body and length); *off walks. */
static const uint8_t *mold_next(const uint8_t *pkt, uint32_t *off, uint32_t *len)
{
	const uint8_t *m = pkt + *off + 2;

	*len = (uint32_t)load(pkt + *off, 2, true);
	*off += 2 + *len;
	return m;
}

/* Deliver the messages of a packet from sequence number f->next on, as far
 * as the reader has room; returns true when all went. live: the packet
 * being input (its buffer may be handed over whole). */
static bool deliver_from(struct hpn_feed *f, const uint8_t *pkt, uint32_t len, uint64_t seq, uint32_t count,
			 uint64_t ts, uint32_t line, bool live)
{
	uint32_t room = f->ops->room(f->arg), off = MOLD_HDR, mlen;
	uint64_t skip = f->next - seq;

	if (f->spec.kind != HPN_SEQ_MOLDUDP64) {
		if (!room)
			return false;
		f->ops->deliver(f->arg, pkt, pkt, len, seq, ts, line, live);
		f->next++;
		f->msgs++;
		return true;
	}
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *m = mold_next(pkt, &off, &mlen);

		if (i < skip)
			continue;
		if (!room--)
			return false;
		f->ops->deliver(f->arg, pkt, m, mlen, seq + i, ts, line, live && count == 1);
		f->next = seq + i + 1;
		f->msgs++;
	}
	return true;
}

static void hold_remove_first(struct hpn_feed *f)
{
	if (f->hold[0].pkt)
		f->ops->release(f->arg, f->hold[0].pkt);
	memmove(f->hold, f->hold + 1, (size_t)--f->nhold * sizeof(*f->hold));
}

/* Held packets that are next in line, to the reader. */
static void drain(struct hpn_feed *f)
{
	while (hpn_feed_backlog(f)) {
		struct hpn_feed_held *h = &f->hold[0];

		if (h->end) {
			if (!f->ended)
				f->ops->end(f->arg, h->seq, h->line);
			f->ended = true;
		} else if (h->count && h->seq + h->count <= f->next) {
			/* Another packing brought all of it first: not a win after all. */
			f->line[h->line].wins--;
			f->line[h->line].dups++;
			f->dups += h->count;
		} else if (h->count && !deliver_from(f, h->pkt, h->len, h->seq, h->count, h->ts, h->line, false)) {
			return; /* no room: it waits at the front */
		}
		hold_remove_first(f);
	}
}

static void report_gap(struct hpn_feed *f, uint64_t to, uint32_t line);

/* The hold is full, or no storage is left for one more packet: a hole in
 * front is reported now (it cannot wait any longer) and what follows it
 * delivered, which frees storage. false: no hole to give up. */
bool hpn_feed_give_up(struct hpn_feed *f)
{
	if (!hpn_feed_hole(f))
		return false;
	report_gap(f, f->hold[0].seq, f->hold[0].line);
	drain(f);
	return true;
}

static uint8_t *keep(struct hpn_feed *f, const uint8_t *pkt, uint32_t len)
{
	uint8_t *k = f->ops->keep(f->arg, pkt, len);

	if (!k && hpn_feed_give_up(f))
		k = f->ops->keep(f->arg, pkt, len);
	return k;
}

/* Hold a packet ahead of f->next (or behind a reader with no room). */
static void hold(struct hpn_feed *f, const uint8_t *pkt, uint32_t len, const struct hpn_seq_pkt *p, uint64_t ts,
		 uint64_t now, uint32_t line)
{
	uint32_t lo = 0, hi = f->nhold;
	struct hpn_feed_held h = {.seq = p->seq, .ts = ts, .at = now, .len = len, .count = p->count, .line = line,
				  .end = p->end};

	while (lo < hi) { /* usually appended: the search ends at the back */
		uint32_t mid = (lo + hi) / 2;

		if (f->hold[mid].seq < p->seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < f->nhold && f->hold[lo].seq == p->seq) {
		if (!p->count) /* a heartbeat (or end) where something waits already */
			return;
		if (f->hold[lo].count) {
			f->dups += p->count; /* the other line's copy of a held one */
			f->line[line].dups++;
			return;
		}
		/* A heartbeat held there said these were coming: the data
		 * takes its place (and its time: the hole is as old). */
		if (!(h.pkt = f->ops->keep(f->arg, pkt, len))) {
			f->overflow++;
			return;
		}
		h.at = f->hold[lo].at < now ? f->hold[lo].at : now;
		f->hold[lo] = h;
		f->line[line].wins++;
		return;
	}
	if (f->nhold == HPN_FEED_HOLD_MAX)
		hpn_feed_give_up(f);
	if (p->count && !(h.pkt = keep(f, pkt, len))) {
		f->overflow++;
		return;
	}
	if (f->nhold == HPN_FEED_HOLD_MAX) {
		if (h.pkt)
			f->ops->release(f->arg, h.pkt);
		f->overflow++;
		return;
	}
	for (lo = 0, hi = f->nhold; lo < hi;) { /* the hole's report may have moved things */
		uint32_t mid = (lo + hi) / 2;

		if (f->hold[mid].seq < p->seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < f->nhold && f->hold[lo].seq == p->seq) { /* a heartbeat given up with its hole: gone */
		if (h.pkt)
			f->ops->release(f->arg, h.pkt);
		f->overflow++;
		return;
	}
	memmove(f->hold + lo + 1, f->hold + lo, (size_t)(f->nhold - lo) * sizeof(*f->hold));
	f->hold[lo] = h;
	f->nhold++;
	if (p->count)
		f->line[line].wins++;
}

/* A copy of messages already passed (those of p below upto): delivered
 * if it fills a reported gap (late), else a duplicate. Returns true when
 * it delivered any. */
static bool behind(struct hpn_feed *f, const uint8_t *pkt, uint32_t len, const struct hpn_seq_pkt *p, uint64_t ts,
		   uint32_t line, uint64_t upto)
{
	uint32_t off = MOLD_HDR, mlen, room = f->ngaps ? f->ops->room(f->arg) : 0;
	bool won = false, full = false;

	for (uint32_t i = 0; i < p->count && p->seq + i < upto; i++) {
		uint64_t s = p->seq + i;
		const uint8_t *m = pkt;
		uint32_t g;

		mlen = len;
		if (f->spec.kind == HPN_SEQ_MOLDUDP64)
			m = mold_next(pkt, &off, &mlen);
		for (g = 0; g < f->ngaps && !(s >= f->gaps[g].from && s < f->gaps[g].to); g++)
			;
		if (g == f->ngaps) {
			f->dups++;
			continue;
		}
		if (!room) {
			full = true; /* the gap stays open for another copy */
			continue;
		}
		room--;
		f->ops->deliver(f->arg, pkt, m, mlen, s, ts, line, false);
		f->late++;
		f->msgs++;
		won = true;
		/* The gap shrinks or splits around s. */
		if (s == f->gaps[g].from) {
			f->gaps[g].from++;
		} else if (s == f->gaps[g].to - 1) {
			f->gaps[g].to--;
		} else if (f->ngaps < HPN_FEED_GAPS_MAX) {
			f->gaps[f->ngaps].from = s + 1;
			f->gaps[f->ngaps++].to = f->gaps[g].to;
			f->gaps[g].to = s;
		} else {
			f->gaps[g].to = s; /* no room to remember the rest */
		}
		if (f->gaps[g].from >= f->gaps[g].to)
			memmove(f->gaps + g, f->gaps + g + 1, (size_t)(--f->ngaps - g) * sizeof(f->gaps[0]));
	}
	f->overflow += full;
	return won;
}

static void report_gap(struct hpn_feed *f, uint64_t to, uint32_t line)
{
	uint64_t n = to - f->next;

	f->ngap_events++;
	f->gap_msgs += n;
	if (f->ngaps == HPN_FEED_GAPS_MAX)
		memmove(f->gaps, f->gaps + 1, (size_t)--f->ngaps * sizeof(f->gaps[0]));
	f->gaps[f->ngaps].from = f->next;
	f->gaps[f->ngaps++].to = to;
	f->ops->gap(f->arg, f->next, n, line);
	f->next = to;
}

/* When the hole in front of the held packets was seen: the earliest of
 * their arrivals. */
static uint64_t hole_since(const struct hpn_feed *f)
{
	uint64_t t = UINT64_MAX;

	for (uint32_t i = 0; i < f->nhold; i++)
		if (f->hold[i].at < t)
			t = f->hold[i].at;
	return t;
}

uint64_t hpn_feed_tick(struct hpn_feed *f, uint64_t now, bool caught_up)
{
	drain(f);
	/* A hole every line missed for gap_timeout is reported - once every
	 * line was read up to now: a reader that lags leaves the other
	 * line's copy unread in its device - and so is one that would make
	 * the hold overflow. */
	while (hpn_feed_hole(f) && (f->nhold >= HPN_FEED_HOLD_MAX || (caught_up && now - hole_since(f) >= f->gap_timeout_ns))) {
		report_gap(f, f->hold[0].seq, f->hold[0].line);
		drain(f);
	}
	f->deadline = hpn_feed_hole(f) ? hole_since(f) + f->gap_timeout_ns : UINT64_MAX;
	return f->deadline;
}

/* A sequence number this far ahead of the next one is believed only when
 * the packet after it (on any line) or another line's copy agrees: one
 * stray datagram must not move the feed a trillion messages on. */
static bool jump_believed(struct hpn_feed *f, const struct hpn_seq_pkt *p, uint32_t line)
{
	bool ok = f->jump_seen && ((p->seq == f->jump_seq && f->jump_line != line) || p->seq == f->jump_end ||
				   (p->seq > f->jump_seq && p->seq - f->jump_seq < HPN_FEED_HOLD_MAX * 64ull &&
				    f->jump_line != line));

	if (ok) {
		f->jump_seen = false;
		return true;
	}
	f->jump_seen = true;
	f->jump_seq = p->seq;
	f->jump_end = p->seq + p->count;
	f->jump_line = line;
	f->foreign++; /* dropped: counted with another session's packets */
	return false;
}

static bool near(uint64_t a, uint64_t b)
{
	return (a > b ? a - b : b - a) <= HPN_FEED_JUMP_MAX;
}

static bool same_session(const uint8_t *mine, const struct hpn_seq_pkt *p)
{
	return !p->session || !memcmp(mine, p->session, 10);
}

static void start(struct hpn_feed *f, const struct hpn_seq_pkt *p, uint32_t line, uint64_t next, bool confirmed)
{
	if (p->session)
		memcpy(f->session, p->session, sizeof(f->session));
	f->started = true;
	f->confirmed = confirmed;
	f->next = next;
	f->start_seq = p->seq;
	f->start_line = line;
	f->ended = false;
	f->jump_seen = false;
	f->hb_seen = false; /* an old session's words are nothing to this one */
	f->end_seen = false;
}

/* Begin again (a candidate start confirmed): nothing of the old start
 * stays - held packets, reported gaps, a pending jump. The candidate
 * itself, when it was kept, is held at the front: delivered first. */
static void restart(struct hpn_feed *f, const struct hpn_seq_pkt *p, uint32_t line, uint64_t now)
{
	uint64_t from = f->cand_seq < p->seq ? f->cand_seq : p->seq;
	struct hpn_seq_pkt c;

	while (f->nhold)
		hold_remove_first(f);
	f->ngaps = 0;
	memset(f->lead, 0, sizeof(f->lead)); /* the old numbers are not the new ones' copies */
	f->deadline = UINT64_MAX;
	f->restarts++;
	f->restart_seq = from;
	start(f, p, line, from, true);
	f->cand_seen = false;
	if (f->cand_pkt && !hpn_seq_read(&f->spec, f->cand_pkt, f->cand_len, &c) && c.count && c.seq >= from) {
		f->hold[0] = (struct hpn_feed_held){.pkt = f->cand_pkt, .seq = c.seq, .ts = f->cand_ts, .at = now,
						    .len = f->cand_len, .count = c.count, .line = f->cand_line};
		f->nhold = 1;
		f->line[f->cand_line].packets++;
		f->line[f->cand_line].wins++;
	} else if (f->cand_pkt) {
		f->ops->release(f->arg, f->cand_pkt);
	}
	f->cand_pkt = NULL;
	if (f->ops->restart)
		f->ops->restart(f->arg, from, line);
}

/* While the start is unconfirmed (or the session ended): may p be taken
 * as it is? If not, it is dropped - unless it confirms a candidate, in
 * which case the feed starts again with it. After the end, the session's
 * own packets are late copies from before it, or repeats of the end;
 * nothing of it lies beyond. */
static bool start_checked(struct hpn_feed *f, const struct hpn_seq_pkt *p, uint32_t line, const uint8_t *pkt,
			  uint32_t len, uint64_t ts, uint64_t now)
{
	if (f->ended ? same_session(f->session, p) && p->seq + p->count <= f->next
		     : same_session(f->session, p) && near(p->seq, f->start_seq)) {
		if (!f->ended && (p->seq != f->start_seq || line != f->start_line)) {
			f->confirmed = true; /* another packet, or the other line's copy */
			cand_drop(f);    /* a stray after all */
		}
		return true;
	}
	if (f->cand_seen && same_session(f->cand_session, p) && near(p->seq, f->cand_seq) &&
	    (p->seq != f->cand_seq || line != f->cand_line)) {
		restart(f, p, line, now);
		return true;
	}
	cand_drop(f); /* the one before, if any */
	f->cand_seen = true;
	if (p->session)
		memcpy(f->cand_session, p->session, sizeof(f->cand_session));
	f->cand_seq = p->seq;
	f->cand_line = line;
	/* Data is kept (the hold's storage, within its limit): a real new
	 * start is delivered from its first packet, not from its second. */
	f->cand_pkt = p->count ? f->ops->keep(f->arg, pkt, len) : NULL;
	f->cand_len = len;
	f->cand_ts = ts;
	return false;
}

/* A heartbeat ahead of the next sequence number says messages were lost.
 * It is believed when another says the same (the other line's copy, or
 * the line's next heartbeat with nothing published in between); data
 * ahead speaks for itself, and a heartbeat waiting here then dates its
 * hole (*at). One forged heartbeat must not turn the real feed behind it
 * into a gap and late deliveries. */
static bool heartbeat_believed(struct hpn_feed *f, const struct hpn_seq_pkt *p, uint64_t now, uint64_t *at)
{
	bool waiting = f->hb_seen && f->hb_seq > f->next;

	if (p->count) { /* data ahead */
		/* A heartbeat that came before a loss says no more than the data
		 * after it: one that claims further (forged, or stale) dates
		 * nothing. */
		if (waiting && f->hb_seq <= p->seq && f->hb_at < *at)
			*at = f->hb_at;
		if (!waiting || f->hb_seq <= p->seq + p->count)
			f->hb_seen = false;
		return true;
	}
	if (waiting && p->seq == f->hb_seq) {
		*at = f->hb_at < now ? f->hb_at : now;
		f->hb_seen = false;
		return true;
	}
	f->hb_seen = true;
	f->hb_seq = p->seq;
	f->hb_at = now;
	return false;
}

/* The end of a session, believed when another says the same (the other
 * line's copy, or the next repeat: MoldUDP64 servers repeat it): one
 * forged end would report FEED_END and drop the session's real data. */
static bool end_believed(struct hpn_feed *f, const struct hpn_seq_pkt *p)
{
	if (f->end_seen && p->seq == f->end_seq) {
		f->end_seen = false;
		return true;
	}
	f->end_seen = true;
	f->end_seq = p->seq;
	return false;
}

void hpn_feed_input(struct hpn_feed *f, uint32_t line, const uint8_t *pkt, uint32_t len, uint64_t ts, uint64_t now)
{
	struct hpn_seq_pkt p;
	uint64_t end, at = now;

	if (hpn_seq_read(&f->spec, pkt, len, &p)) {
		f->malformed++;
		return;
	}
	if (!f->started) {
		start(f, &p, line, p.seq, false); /* joined mid-stream: what came before is not a gap */
	} else if ((!f->confirmed || f->ended) && !start_checked(f, &p, line, pkt, len, ts, now)) {
		return; /* a stray start, another session, or the start of a new one: not yet (a candidate) */
	} else if (!same_session(f->session, &p)) {
		f->foreign++; /* another session's packet */
		return;
	}
	f->line[line].packets++;
	end = p.seq + p.count;
	if (p.seq > f->next && p.seq - f->next > HPN_FEED_JUMP_MAX && !jump_believed(f, &p, line)) {
		f->line[line].packets--;
		return;
	}
	if (p.count)
		lead_note(f, line, p.seq, ts);
	if (p.count && end <= f->next) {
		if (behind(f, pkt, len, &p, ts, line, end))
			f->line[line].wins++;
		else
			f->line[line].dups++;
		return;
	}
	/* Partly behind (another packing, a retransmission): what fills a
	 * reported gap is delivered late, the rest as it comes. */
	if (p.count && p.seq < f->next && f->ngaps)
		behind(f, pkt, len, &p, ts, line, f->next);
	if (!p.count && !p.end && p.seq <= f->next) /* a heartbeat in step with us */
		return;
	if (p.end && !f->ended && !end_believed(f, &p))
		return; /* an end, alone so far */
	if (p.seq > f->next && !p.end && !heartbeat_believed(f, &p, now, &at))
		return; /* a heartbeat ahead, alone so far */
	if (p.seq <= f->next && !f->nhold) {
		if (p.end) {
			if (!f->ended)
				f->ops->end(f->arg, p.seq, line);
			f->ended = true;
			return;
		}
		f->line[line].wins++;
		if (deliver_from(f, pkt, len, p.seq, p.count, ts, line, true))
			return;
		f->line[line].wins--; /* counted again when held */
	}
	/* Ahead of a hole, or behind held packets: it waits (a full hold
	 * first reports its hole, making room). */
	hold(f, pkt, len, &p, ts, at, line);
	if (hpn_feed_backlog(f))
		hpn_feed_tick(f, now, false); /* next in line after all (behind a reader without room) */
	else if (f->nhold && f->deadline == UINT64_MAX)
		f->deadline = hole_since(f) + f->gap_timeout_ns; /* a new hole: its timer */
}
