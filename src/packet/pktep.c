/* SPDX-License-Identifier: MIT */
/* pktep.c - see pktep.h. */
#include "pktep.h"
#include "pktep_int.h"

#include "conn.h"
#include "fault.h"
#include "hello.h"
#include "msgq.h"
#include "peerid.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

_Static_assert(HPN_PKTEP_HEADROOM == HPN_PKT_HDR, "pktep.h's headroom is the packet header");


/* ---- peers ------------------------------------------------------------------ */

/* Keyed (SipHash under the endpoint's secret): addresses an attacker
 * picks cannot be made to collide into one long probe chain. Runs for
 * the first datagram of a run only (e->last). */
static uint32_t addr_hash(const struct hpn_pktep *e, const void *a, uint32_t len)
{
	return (uint32_t)hpn_siphash(&e->key, a, len);
}

struct pk_peer *hpn_pk_peer_find(struct hpn_pktep *e, const void *a, uint32_t alen)
{
	for (uint32_t h = addr_hash(e, a, alen) & e->hmask;; h = (h + 1) & e->hmask) {
		uint32_t i = e->htab[h];

		if (i == HASH_EMPTY)
			return NULL;
		/* A dead peer waits for sweep(), a superseded one delivers what
		 * it acknowledged: either way its address belongs to a new one. */
		if (!e->peers[i].dead && !e->peers[i].superseded && e->peers[i].alen == alen && !memcmp(e->peers[i].addr, a, alen))
			return &e->peers[i];
	}
}

static void hash_insert(struct hpn_pktep *e, uint32_t i)
{
	uint32_t h = e->peers[i].hash & e->hmask;

	while (e->htab[h] != HASH_EMPTY)
		h = (h + 1) & e->hmask;
	e->htab[h] = i;
}

/* Linear probing without tombstones: later entries of the run move back
 * into the hole unless their home lies after it (Knuth's algorithm R). */
static void hash_remove(struct hpn_pktep *e, uint32_t i)
{
	uint32_t j = e->peers[i].hash & e->hmask, k;

	while (e->htab[j] != i)
		j = (j + 1) & e->hmask;
	for (;;) {
		e->htab[j] = HASH_EMPTY;
		for (k = (j + 1) & e->hmask;; k = (k + 1) & e->hmask) {
			uint32_t home;

			if (e->htab[k] == HASH_EMPTY)
				return;
			home = e->peers[e->htab[k]].hash & e->hmask;
			if (j < k ? (home <= j || home > k) : (home <= j && home > k))
				break;
		}
		e->htab[j] = e->htab[k];
		j = k;
	}
}

static int receive(struct hpn_pktep *e);
static void on_xmit(void *arg, const uint8_t *pkt, size_t len);
static void on_deliver(void *arg, const uint8_t *msg, size_t len);
static uint8_t *on_get_buf(void *arg, size_t total);
static void on_deliver_buf(void *arg, uint8_t *buf, size_t len);
static void on_put_buf(void *arg, uint8_t *buf);
static uint32_t on_room(void *arg);
static uint64_t on_clock(void *arg);
static void on_up(void *arg);
static void on_gone(void *arg, int status);

static void release_puts(struct hpn_pktep *e);


/* A sent frame or zero-copy buffer back: frames to the device (it knows
 * what is still in flight), anything else to the pool. */
static void give_back(struct hpn_pktep *e, void *buf)
{
	if (e->frame_io && in_frames(e, buf))
		e->io->frame_put(e->io_arg, buf);
	else
		hpn_pool_put_bulk(e->pool, &buf, 1);
}

/* A frame the conn is done with (acked; unreliable: sent), or the buffer
 * of a zero-copy message it was built around: back to the backend (frames)
 * or the pool - after the hpn_pk_flush if a send is batched, which may be it. */
static void on_put_frame(void *arg, uint8_t *frame)
{
	struct hpn_pktep *e = ((struct pk_peer *)arg)->e;

	if (e->ntx) {
		if (e->nput == PK_BURST)
			hpn_pk_flush(e);
		if (e->ntx) {
			e->put_later[e->nput++] = frame;
			return;
		}
	}
	give_back(e, frame);
}

/* A packet that must wait stays in the pool buffer it landed in, if it
 * is the datagram being read and the backend lent it as one (conn.h). */
static bool on_keep_rx(void *arg, const uint8_t *payload)
{
	struct hpn_dgram *d = ((struct pk_peer *)arg)->e->cur;

	struct hpn_pktep *e = ((struct pk_peer *)arg)->e;

	if (!d || !(d->flags & HPN_DGRAM_POOL) || !d->data || payload < d->data || payload >= d->data + d->len ||
	    e->nkept >= e->kept_max)
		return false;
	d->data = NULL; /* the backend forgets it (rx_done) */
	e->nkept++;
	return true;
}

static void on_release_rx(void *arg, const uint8_t *payload)
{
	struct hpn_pktep *e = ((struct pk_peer *)arg)->e;
	void *b = (void *)payload;

	e->nkept--;
	hpn_pool_put_bulk(e->pool, &b, 1);
}

/* A kept packet's lone message: to the application in its buffer. */
static void on_deliver_kept(void *arg, const uint8_t *msg, size_t len)
{
	struct pk_peer *p = arg;
	struct hpn_pktep *e = p->e;
	struct hpn_msg m = {.data = (void *)msg, .len = (uint32_t)len, .peer = p->id, .ts_ns = e->cur_ts};

	if (p->lingering) {
		HPN_STAT_ADD(e->st->drops, 1);
		on_release_rx(arg, msg);
		return;
	}
	e->nkept--; /* the application's now */
	hpn_msgq_push(&e->q, &m); /* on_room() promised the slot */
}

#define PK_OPS_COMMON                                                                                        \
	.xmit = on_xmit, .deliver = on_deliver, .room = on_room, .up = on_up, .gone = on_gone,              \
	.get_buf = on_get_buf, .deliver_buf = on_deliver_buf, .put_buf = on_put_buf, .clock = on_clock,     \
	.put_frame = on_put_frame, .keep_rx = on_keep_rx, .deliver_kept = on_deliver_kept,                  \
	.release_rx = on_release_rx

static const struct hpn_conn_ops conn_ops = {PK_OPS_COMMON};

/* Frame backends lend their frames as send slots (pktep.h). */
static uint8_t *on_get_frame(void *arg)
{
	struct hpn_pktep *e = ((struct pk_peer *)arg)->e;

	return e->io->frame_get(e->io_arg);
}

static uint32_t on_frames_free(void *arg)
{
	struct hpn_pktep *e = ((struct pk_peer *)arg)->e;

	return e->io->frames_free(e->io_arg);
}

static const struct hpn_conn_ops conn_ops_lent = {
	PK_OPS_COMMON, .get_frame = on_get_frame, .frames_free = on_frames_free,
};

struct pk_peer *hpn_pk_peer_new(struct hpn_pktep *e, const void *a, uint32_t alen)
{
	struct pk_peer *p;
	uint32_t i;

	hpn_peer_t id;

	if (alen > HPN_PKTEP_ADDR_MAX || (i = hpn_peer_slots_take(&e->slots, &id)) == UINT32_MAX)
		return NULL;
	p = &e->peers[i];
	/* Lent frames for reliable streams; a feed keeps nothing to resend;
	 * a plain peer has no stream at all. */
	if (e->plain)
		memset(&p->conn, 0, sizeof(p->conn));
	else if (hpn_conn_init(&p->conn, &e->ccfg, e->io->frame_get ? &conn_ops_lent : &conn_ops, p)) {
		hpn_peer_slots_put(&e->slots, i); /* an id spent, nothing else */
		return NULL;
	}
	memcpy(p->addr, a, alen);
	p->alen = alen;
	p->hash = addr_hash(e, a, alen);
	p->id = id;
	p->used = true;
	p->connecting = p->dead = p->lingering = p->superseded = p->closed_noted = false;
	p->refused_ns = p->restart_ns = p->icmp_probe_ns = p->deaf_credit_ns = p->deaf_rx_ns = 0;
	p->lost_session = p->restart_session = 0;
	p->heard_ns = 0;
	p->source = false;
	p->e = e;
	p->active_idx = e->npeers;
	e->active[e->npeers++] = i;
	hash_insert(e, i);
	return p;
}


/* A closed session is remembered (by a hash of address and session), so
 * a late or replayed COOKIE_ECHO of it does not bring it back. */
static uint64_t closed_tag(struct hpn_pktep *e, const void *a, uint32_t alen, uint32_t session)
{
	uint8_t b[4 + HPN_PKTEP_ADDR_MAX];

	memcpy(b, &session, 4);
	memcpy(b + 4, a, alen);
	return hpn_siphash(&e->key, b, 4 + alen) | 1;
}

/* Once per peer: when it goes (on_gone), or when it is freed. */
static void remember_closed(struct hpn_pktep *e, struct pk_peer *p)
{
	if (p->conn.role == HPN_CONN_PAIR && p->conn.session && !p->closed_noted)
		e->closed[e->closed_next++ % CLOSED_MAX] = closed_tag(e, p->addr, p->alen, p->conn.session);
	p->closed_noted = true;
}

void hpn_pk_peer_free(struct hpn_pktep *e, struct pk_peer *p)
{
	uint32_t i = (uint32_t)(p - e->peers), last;

	/* The send batch may point into its packet slots and address. */
	if (e->ntx)
		hpn_pk_flush(e);
	if (!e->plain) {
		remember_closed(e, p);
		hpn_conn_fini(&p->conn);
	}
	if (p->dead || p->lingering)
		e->dying--;
	if (e->last == p)
		e->last = NULL;
	p->used = false;
	last = e->active[--e->npeers];
	e->active[p->active_idx] = last;
	e->peers[last].active_idx = p->active_idx;
	hash_remove(e, i);
	if (!hpn_peer_slots_put(&e->slots, i))
		hpn_log(HPN_LOG_WARN, "peer slot %u retired: its %u generations are used up", i, e->slots.gen_max);
}

/* Counters live in the conns (single writer, no atomics); the endpoint's
 * public stats get the difference after each call into a conn. */
static void stats_sync(struct hpn_pktep *e, struct hpn_conn *c, const uint64_t before[4])
{
	uint64_t bad = c->malformed - before[0], stale = c->stale + c->overflow - before[1]; /* both dropped */

	if (bad)
		HPN_STAT_ADD(e->st->malformed, bad);
	if (bad + stale)
		HPN_STAT_ADD(e->st->drops, bad + stale);
	if (c->retransmits != before[2])
		HPN_STAT_ADD(e->st->retransmits, c->retransmits - before[2]);
	if (c->gaps != before[3])
		HPN_STAT_ADD(e->st->gaps, c->gaps - before[3]);
}

#define STATS_BEFORE(c) {(c)->malformed, (c)->stale + (c)->overflow, (c)->retransmits, (c)->gaps}

/* ---- conn callbacks ------------------------------------------------------------ */


/* Into the send batch like any packet (a syscall per datagram made every
 * run with faults slower than the clean run it is compared with), copied
 * with its address: the fault layer's copies live until it is called
 * again. */
static void fault_out(void *arg, const void *dst, size_t dst_len, const uint8_t *pkt, size_t len)
{
	struct hpn_pktep *e = arg;
	uint8_t *keep;

	if (e->ntx == PK_BURST)
		hpn_pk_flush(e);
	keep = len <= PK_CTRL ? e->tx_ctrl[e->ntx] : e->tx_copy + (size_t)e->ntx * e->ccfg.mtu;
	memcpy(keep, pkt, len);
	memcpy(e->tx_addr[e->ntx], dst, dst_len);
	e->tx_d[e->ntx] = (struct hpn_dgram){.addr = e->tx_addr[e->ntx], .alen = (uint32_t)dst_len, .data = keep,
					     .len = (uint32_t)len};
	e->ntx++;
}

static void on_xmit(void *arg, const uint8_t *pkt, size_t len)
{
	struct pk_peer *p = arg;
	struct hpn_pktep *e = p->e;
	struct hpn_dgram *d;
	uint8_t *keep;

	if (e->faulty) {
		hpn_fault_xmit(&e->fault, p->addr, p->alen, pkt, len, e->now, fault_out, e);
		return;
	}
	if (e->ntx == PK_BURST)
		hpn_pk_flush(e);
	d = &e->tx_d[e->ntx];
	/* DATA stays where the conn built it until this call's hpn_pk_flush:
	 * reliable, in its slot, lent frame or adopted buffer until acked;
	 * unreliable, in a frame or adopted buffer whose put waits for the
	 * hpn_pk_flush (its slot in tx_pkts, though, is reused within one batch by a
	 * small window). Everything else is copied. */
	if (pkt[2] == HPN_PKT_DATA &&
	    (e->ccfg.reliable || !p->conn.tx_pkts || pkt < p->conn.tx_pkts ||
	     pkt >= p->conn.tx_pkts + (size_t)p->conn.tx.size * e->ccfg.mtu)) {
		keep = (uint8_t *)pkt;
	} else {
		keep = len <= PK_CTRL ? e->tx_ctrl[e->ntx] : e->tx_copy + (size_t)e->ntx * e->ccfg.mtu;
		memcpy(keep, pkt, len);
	}
	*d = (struct hpn_dgram){.addr = p->addr, .alen = p->alen, .data = keep, .len = (uint32_t)len};
	e->ntx++;
}

void hpn_pk_flush(struct hpn_pktep *e)
{
	unsigned done = 0;

	while (done < e->ntx) {
		int r = e->io->send(e->io_arg, e->tx_d + done, e->ntx - done);

		/* Lost, and the packet layer resends what matters. A full
		 * device (0) takes nothing more now: no call per datagram. */
		if (r == 0)
			break;
		if (r < 0) {
			HPN_STAT_ADD(e->st->errors, 1);
			done++;
			continue;
		}
		done += (unsigned)r;
	}
	e->ntx = 0;
	release_puts(e);
}

static void release_puts(struct hpn_pktep *e)
{
	unsigned n = e->nput;

	e->nput = 0;
	if (!n)
		return;
	if (!e->frame_io) {
		hpn_pool_put_bulk(e->pool, (void *const *)e->put_later, n);
		return;
	}
	for (unsigned i = 0; i < n; i++)
		give_back(e, e->put_later[i]);
}

/* A long run of sends: out with what is batched, then the time they
 * left (conn.h). */
static uint64_t on_clock(void *arg)
{
	struct hpn_pktep *e = ((struct pk_peer *)arg)->e;

	if (e->ntx)
		hpn_pk_flush(e);
	return hpn_now_ns();
}

/* A fragmented message is reassembled in the pool buffer it is delivered
 * in (the large class above buf_size): no second copy, and memory only
 * while a message is under way. */
static uint8_t *on_get_buf(void *arg, size_t total)
{
	struct hpn_pktep *e = ((struct pk_peer *)arg)->e;
	void *buf;

	if (e->pool && hpn_pool_get_sized(e->pool, total, &buf))
		return buf;
	e->starved = true; /* the application holds them all: kick the conn later */
	return NULL;
}

static void on_deliver_buf(void *arg, uint8_t *buf, size_t len)
{
	struct pk_peer *p = arg;
	struct hpn_pktep *e = p->e;
	struct hpn_msg m = {.data = buf, .len = (uint32_t)len, .peer = p->id, .ts_ns = e->cur_ts};

	if (p->lingering) {
		HPN_STAT_ADD(e->st->drops, 1);
		hpn_pool_put_bulk(e->pool, &m.data, 1);
		return;
	}
	HPN_STAT_ADD(e->st->rx_copied, 1); /* its fragments were copied in */
	hpn_msgq_push(&e->q, &m); /* on_room() promised the slot */
}

static void on_put_buf(void *arg, uint8_t *buf)
{
	struct hpn_pktep *e = ((struct pk_peer *)arg)->e;
	void *b = buf;

	hpn_pool_put_bulk(e->pool, &b, 1);
}

static uint32_t on_room(void *arg)
{
	struct hpn_pktep *e = ((struct pk_peer *)arg)->e;
	uint32_t q = hpn_msgq_room(&e->q), room = q < e->ncache ? q : e->ncache;

	if (room < HPN_CONN_BATCH_MAX)
		e->starved = true; /* some conn may keep a backlog: kick it later */
	return room;
}

static void on_deliver(void *arg, const uint8_t *msg, size_t len)
{
	struct pk_peer *p = arg;
	struct hpn_pktep *e = p->e;
	struct hpn_dgram *d;
	struct hpn_msg m;

	if (p->lingering) { /* disconnected: nobody to hand it to */
		HPN_STAT_ADD(e->st->drops, 1);
		return;
	}
	/* Alone in a packet that landed in a pool buffer: handed over there,
	 * no copy (the backend gets the buffer back as the application's). */
	d = e->cur;
	if (d && (d->flags & HPN_DGRAM_POOL) && d->data && msg >= d->data && msg + len <= d->data + d->len &&
	    !(d->data[3] & HPN_PKT_F_BATCH)) {
		m = (struct hpn_msg){.data = (void *)msg, .len = (uint32_t)len, .peer = p->id, .ts_ns = e->cur_ts};
		d->data = NULL;
		hpn_msgq_push(&e->q, &m);
		return;
	}
	/* on_room() promised a buffer and a queue slot. */
	m = (struct hpn_msg){.data = e->cache[--e->ncache], .len = (uint32_t)len, .peer = p->id, .ts_ns = e->cur_ts};
	memcpy(m.data, msg, len);
	HPN_STAT_ADD(e->st->rx_copied, 1);
	hpn_msgq_push(&e->q, &m);
	if (e->ncache < HPN_CONN_BATCH_MAX)
		hpn_pk_refill(e); /* batches bring many messages per packet */
}

static void on_up(void *arg)
{
	struct pk_peer *p = arg;

	hpn_core_event(p->e->core, p->connecting ? HPN_EV_CONNECTED : HPN_EV_PEER_NEW, p->id, 0);
	p->connecting = false;
}

static void on_gone(void *arg, int status)
{
	struct pk_peer *p = arg;
	struct hpn_pktep *e = p->e;
	char who[64] = "?";

	if (p->conn.unacked_msgs) {
		HPN_STAT_ADD(e->st->unacked, p->conn.unacked_msgs);
		e->io->format(e->io_arg, p->addr, p->alen, who, sizeof(who));
		hpn_log(HPN_LOG_WARN, "peer %s gone (%s) with %llu sent messages unacknowledged", who,
			status ? strerror(-status) : "closed", (unsigned long long)p->conn.unacked_msgs);
	}
	if (status == -ECONNREFUSED && p->conn.refused_full) {
		e->io->format(e->io_arg, p->addr, p->alen, who, sizeof(who));
		hpn_log(HPN_LOG_WARN, "connect to %s refused: all its peer slots (max_peers) are taken", who);
	}
	if (status == -EPROTO && p->conn.broken) {
		e->io->format(e->io_arg, p->addr, p->alen, who, sizeof(who));
		hpn_log(HPN_LOG_WARN,
			"peer %s: the stream is broken, ended: %s; %u packets in flight, %llu stale and %llu "
			"malformed packets from it",
			who, hpn_conn_broken_str(p->conn.broken), hpn_txwin_inflight(&p->conn.tx),
			(unsigned long long)p->conn.stale, (unsigned long long)p->conn.malformed);
	} else if (status == -ECONNRESET && p->conn.peer_aborted) {
		e->io->format(e->io_arg, p->addr, p->alen, who, sizeof(who));
		hpn_log(HPN_LOG_WARN, "peer %s ended the stream as broken (its log says why): ended here too", who);
	} else if (status == -EPROTO) {
		e->io->format(e->io_arg, p->addr, p->alen, who, sizeof(who));
		hpn_log(HPN_LOG_WARN, "connect to %s refused: it runs %s, this endpoint %s", who,
			hpn_pkt_mode_name(p->conn.peer_mode),
			hpn_pkt_mode_name(hpn_pkt_mode_flags(e->ccfg.reliable, e->ccfg.raw)));
	}
	if (status == -ETIMEDOUT) {
		e->io->format(e->io_arg, p->addr, p->alen, who, sizeof(who));
		hpn_log(HPN_LOG_INFO,
			"peer %s silent for %llu ms: gone (%u packets in flight, %u waiting for the reader, "
			"%llu stale and %llu malformed packets from it)",
			who, (unsigned long long)((hpn_now_ns() - p->conn.last_rx_ns) / 1000000),
			hpn_txwin_inflight(&p->conn.tx), p->conn.backlog, (unsigned long long)p->conn.stale,
			(unsigned long long)p->conn.malformed);
	}
	remember_closed(e, p); /* a late echo of it in this very burst revives nothing */
	if (p->connecting && !status)
		status = -ECONNRESET;
	if (!p->lingering) { /* else the application let go of it already */
		hpn_core_event(e->core, HPN_EV_PEER_GONE, p->id, status);
		e->dying++;
	}
	p->dead = true; /* freed by the next sweep(): we are inside its conn */
}

/* ---- control path ------------------------------------------------------------------ */

/* A message is sent within one window of fragments (it takes its send
 * slots whole, at hpn_send): the window grows to fit max_msg unless the
 * user chose it; a max_msg the user asked for that cannot fit is refused
 * with the reason, else max_msg shrinks to what fits. Single-packet
 * messages are delivered in ordinary pool buffers: those must hold one. */
static int raw_max_msg(struct hpn_pktep *e, const struct hpn_pktep_cfg *cfg, const struct hpn_core_opts *co)
{
	uint32_t most = cfg->mtu - (cfg->plain ? 0 : HPN_PKT_HDR);

	if (co->max_msg_set && co->max_msg > most)
		return hpn_set_error(-EMSGSIZE, "config: max_msg=%u: a %s datagram carries at most %u bytes at mtu=%u",
				     co->max_msg, cfg->plain ? "plain" : "raw (reliable=off)", most, cfg->mtu);
	if (e->ccfg.max_msg > most)
		e->ccfg.max_msg = most;
	/* A raw message is delivered in an ordinary buffer (where it landed,
	 * or copied into one): never more than one holds. */
	if (e->ccfg.max_msg > co->buf_size) {
		if (co->max_msg_set)
			return hpn_set_error(-EINVAL, "config: max_msg=%u above buf_size=%u: raw datagrams (reliable=off) "
						      "are delivered in ordinary buffers", co->max_msg, co->buf_size);
		e->ccfg.max_msg = co->buf_size;
	}
	return 0;
}

static int size_window(struct hpn_pktep *e, const struct hpn_pktep_cfg *cfg, const struct hpn_core_opts *co)
{
	uint32_t frag = cfg->mtu - HPN_PKT_HDR - HPN_PKT_FRAG_HDR, win = 1;
	uint64_t need = ((uint64_t)e->ccfg.max_msg + frag - 1) / frag;

	if (cfg->window_auto && need > e->ccfg.window)
		e->ccfg.window = need < HPN_TXWIN_MAX ? (uint32_t)need : HPN_TXWIN_MAX;
	while (win < e->ccfg.window && win < HPN_TXWIN_MAX)
		win <<= 1;
	if (co->max_msg_set && need > win)
		return hpn_set_error(-EMSGSIZE,
				     "config: max_msg=%u takes %" PRIu64 " packets at mtu=%u, more than the window "
				     "(%u): a message is sent within one window (window= at most %u; a larger mtu= "
				     "carries more where the path takes it)",
				     co->max_msg, need, cfg->mtu, win, HPN_TXWIN_MAX);
	if ((uint64_t)win * frag < e->ccfg.max_msg)
		e->ccfg.max_msg = win * frag;
	if (e->ccfg.max_msg > co->buf_size && co->buf_size < cfg->mtu - HPN_PKT_HDR)
		return hpn_set_error(-EINVAL,
				     "config: max_msg above buf_size needs buf_size >= %u (a packet's payload at "
				     "mtu=%u: single-packet messages arrive in ordinary buffers)",
				     cfg->mtu - HPN_PKT_HDR, cfg->mtu);
	return 0;
}

/* The keys as declared once (pktep.h): every one but "reliable" means
 * something only to the packet layer and would do nothing with
 * reliable=off. */
static const struct hpn_plugin_param pkt_params[] = {HPN_PKTEP_PARAMS};

/* mcast_if= by address or by name: both the interface's index (joins) and
 * an IPv4 address of it (what IP_MULTICAST_IF and the frame backends
 * take). */
static int mcast_if_cfg(const char *mif, struct hpn_pktep_cfg *pc)
{
	struct ifaddrs *ifa, *i;
	bool by_addr = inet_pton(AF_INET, mif, &pc->mcast_if) == 1;

	if (!by_addr && !(pc->mcast_ifindex = if_nametoindex(mif)))
		return hpn_set_error(-EINVAL, "config: mcast_if='%s' is neither an IPv4 address nor an interface here",
				     mif);
	if (getifaddrs(&ifa))
		return by_addr ? 0 : hpn_set_error(-errno, "config: mcast_if='%s': getifaddrs: %s", mif, strerror(errno));
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		if (by_addr && ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == pc->mcast_if) {
			pc->mcast_ifindex = if_nametoindex(i->ifa_name);
			break;
		}
		if (!by_addr && !strcmp(i->ifa_name, mif)) {
			pc->mcast_if = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
			break;
		}
	}
	freeifaddrs(ifa);
	return 0;
}

/* framing=none and the feed keys: 1 plain, 0 hpn framing, or -EINVAL.
 * Plain datagrams have no header to be reliable with: the keys of the
 * packet layer's streams are refused rather than ignored. */
static int plain_cfg(struct hpn_core *core, struct hpn_pktep_cfg *pc)
{
	static const char *const stream_keys[] = {"reliable", "unordered", "window", "linger_ms", "rto_min_us", "cc",
						  "cc_target_us", "ack_delay_us", "faults"};
	const char *framing = hpn_core_cfg(core, "framing"), *seq = hpn_core_cfg(core, "seq");
	uint64_t gap_us;
	char why[160];
	int ret;

	if (framing && strcmp(framing, "none") && strcmp(framing, "hpn"))
		return hpn_set_error(-EINVAL, "config: framing='%s': hpn (hpn's packets) or none (plain datagrams)",
				     framing);
	if (!framing || !strcmp(framing, "hpn")) {
		if (seq || hpn_core_cfg(core, "gap_timeout_us"))
			return hpn_set_error(-EINVAL, "config: %s= needs framing=none: a feed is read from plain "
						      "datagrams", seq ? "seq" : "gap_timeout_us");
		return 0;
	}
	for (size_t i = 0; i < sizeof(stream_keys) / sizeof(stream_keys[0]); i++)
		if (hpn_core_cfg(core, stream_keys[i]))
			return hpn_set_error(-EINVAL, "config: %s= has no meaning with framing=none: plain datagrams "
						      "carry no hpn header, so nothing is acknowledged, resent or "
						      "paced", stream_keys[i]);
	ret = hpn_core_cfg_u64(core, "gap_timeout_us", 1000, 0, 10000000, &gap_us);
	if (ret)
		return ret;
	if (seq) {
		if (hpn_seq_parse(seq, &pc->seq, why, sizeof(why)))
			return hpn_set_error(-EINVAL, "config: seq=%s: %s", seq, why);
	} else if (hpn_core_cfg(core, "gap_timeout_us")) {
		return hpn_set_error(-EINVAL, "config: gap_timeout_us= needs seq=: gaps are told by sequence numbers");
	}
	pc->plain = true;
	pc->gap_timeout_ns = gap_us * 1000;
	return 1;
}

int hpn_pktep_read_cfg(struct hpn_core *core, uint32_t mtu_default, uint32_t mtu_max, uint32_t raw_mtu, bool rx_stamps,
		       struct hpn_pktep_cfg *pc)
{
	uint64_t mtu, window, ack_us, rto_us, linger_ms, target_us, ttl;
	const char *mif = hpn_core_cfg(core, "mcast_if");
	int rel, unordered, cc, ret;

	*pc = (struct hpn_pktep_cfg){.faults = hpn_core_cfg(core, "faults")};
	ret = hpn_core_cfg_bool(core, "reliable", 1, &rel);
	ret = ret ?: hpn_core_cfg_bool(core, "unordered", 0, &unordered);
	ret = ret ?: hpn_core_cfg_u64(core, "mtu", mtu_default, 128, mtu_max, &mtu);
	ret = ret ?: hpn_core_cfg_u64(core, "window", 256, 8, HPN_TXWIN_MAX, &window);
	ret = ret ?: hpn_core_cfg_u64(core, "ack_delay_us", 20, 1, 100000, &ack_us);
	ret = ret ?: hpn_core_cfg_u64(core, "rto_min_us", 1000, 50, 1000000, &rto_us);
	ret = ret ?: hpn_core_cfg_u64(core, "linger_ms", 200, 0, 600000, &linger_ms);
	/* On by default (cc.h) where the device stamps arrivals (udp: the
	 * kernel): host delay is told from path delay by receive timestamps
	 * and flow scaling; cc=off for dedicated links. Off by default where
	 * nothing stamps them (af_xdp, dpdk): the time a busy reader leaves
	 * packets in the ring reads as a queue of the path, and 1 MiB
	 * messages echoed both ways stalled 0.1-3.7 s on af_xdp (23-69 ms
	 * with cc=off); cc=on there is the user's choice, for a shared path. */
	ret = ret ?: hpn_core_cfg_bool(core, "cc", rx_stamps, &cc);
	ret = ret ?: hpn_core_cfg_u64(core, "cc_target_us", HPN_CC_TARGET_NS / 1000, 1, 1000000, &target_us);
	ret = ret ?: hpn_core_cfg_u64(core, "mcast_ttl", 1, 0, 255, &ttl);
	if (!ret && mif)
		ret = mcast_if_cfg(mif, pc);
	if (ret)
		return ret;
	ret = plain_cfg(core, pc);
	if (ret < 0)
		return ret;
	if (ret) {
		pc->mtu = hpn_core_cfg(core, "mtu") ? (uint32_t)mtu : raw_mtu;
		pc->window = 16; /* nothing is kept */
		pc->linger_ns = 1;
		pc->mcast_ttl = (uint8_t)ttl;
		return 0;
	}
	if (!rel) {
		for (size_t i = 0; i < sizeof(pkt_params) / sizeof(pkt_params[0]); i++)
			if (strcmp(pkt_params[i].key, "reliable") && strcmp(pkt_params[i].key, "mtu") &&
			    strcmp(pkt_params[i].key, "faults") && hpn_core_cfg(core, pkt_params[i].key))
				return hpn_set_error(-EINVAL,
						     "config: %s= needs reliable=on: it belongs to the reliable "
						     "stream, and reliable=off sends raw datagrams%s",
						     pkt_params[i].key,
						     !strcmp(pkt_params[i].key, "unordered")
							     ? " (unordered already; reliable=on,unordered=on: "
							       "sequenced, gaps counted)"
							     : "");
		pc->raw = true;
		pc->mtu = hpn_core_cfg(core, "mtu") ? (uint32_t)mtu : raw_mtu;
		pc->window = 16; /* the handshake's; nothing is kept */
		pc->linger_ns = 1;
		pc->mcast_ttl = 1;
		return 0;
	}
	pc->mtu = (uint32_t)mtu;
	pc->window = (uint32_t)window;
	pc->window_auto = !hpn_core_cfg(core, "window");
	pc->ack_delay_ns = ack_us * 1000;
	pc->rto_min_ns = rto_us * 1000;
	pc->linger_ns = linger_ms ? linger_ms * 1000000 : 1; /* 0: do not wait */
	pc->cc_off = !cc;
	pc->cc_target_ns = target_us * 1000;
	pc->reliable = !unordered;
	pc->mcast_ttl = (uint8_t)ttl;
	return 0;
}

int hpn_pktep_create(struct hpn_core *core, const struct hpn_pktep_cfg *cfg, const struct hpn_dgram_io *io,
		     void *io_arg, struct hpn_pktep **out)
{
	const struct hpn_core_opts *co = hpn_core_opts(core);
	struct hpn_pktep *e = calloc(1, sizeof(*e));
	char why[160];
	int ret = 0;

	if (!e)
		return hpn_set_error(-ENOMEM, "packet layer: out of memory");
	e->core = core;
	e->st = hpn_core_stats(core);
	e->io = io;
	e->io_arg = io_arg;
	e->frame_io = io->frame_put != NULL;
	if (cfg->frames) {
		size_t len;

		e->fr_lo = (uintptr_t)hpn_pool_region(cfg->frames, &len);
		e->fr_hi = e->fr_lo + len;
	}
	/* peer_timeout_ms unset: the packet layer's own default, 1 s. */
	e->ccfg = (struct hpn_conn_cfg){
		.mtu = cfg->mtu,
		.window = cfg->window,
		.max_msg = co->max_msg,
		/* Plain sources: 5 s, so a feed quiet between 1 s heartbeats
		 * (MoldUDP64's) does not come and go. */
		.dead_ns = hpn_core_cfg(core, "peer_timeout_ms") && co->peer_timeout_ms ? co->peer_timeout_ms * 1000000ull
						     : cfg->plain ? 5000000000ull : 1000000000ull,
		.ack_delay_ns = cfg->ack_delay_ns,
		.rto_min_ns = cfg->rto_min_ns,
		.cc_target_ns = cfg->cc_target_ns,
		.cc_off = cfg->cc_off,
		.hello_retry_ns = hpn_core_cfg(core, "connect_retry_ms") ? co->connect_retry_ms * MS : 0,
		.reliable = cfg->reliable,
		.raw = cfg->raw,
	};
	e->plain = cfg->plain;
	if (cfg->raw || cfg->plain) /* one datagram a message */
		ret = raw_max_msg(e, cfg, co);
	else
		ret = size_window(e, cfg, co);
	if (ret) {
		free(e);
		return ret;
	}
	/* A plain datagram is one message: longer than the largest one (a
	 * pool buffer), it is dropped, not cut. */
	e->rx_room = cfg->plain ? e->ccfg.max_msg : cfg->mtu;
	e->max_peers = co->max_peers;
	e->linger_ns = cfg->linger_ns ? cfg->linger_ns : LINGER_NS;
	e->hmask = 1;
	while (e->hmask + 1 < 2 * e->max_peers)
		e->hmask = (e->hmask << 1) | 1;
	/* A feed holds packets behind a hole (feed.h): up to half the pool. */
	e->kept_max = cfg->plain && cfg->seq.kind ? co->bufs / 2 : co->bufs / 4;
	if (cfg->kept_max && cfg->kept_max < e->kept_max)
		e->kept_max = cfg->kept_max; /* a frame backend's receive frames are fewer */
	/* The delivery reserve: a batch's worth at least (a BATCH packet's up
	 * to 64 messages are delivered together or not at all: on_room), an
	 * eighth of a large pool. Held for good, it must leave as much to the
	 * application to send from, so a pool under two batches is refused
	 * rather than taken whole (hpn_buf_get would fail for ever). */
	if (co->bufs < 2 * HPN_CONN_BATCH_MAX) {
		free(e);
		return hpn_set_error(-EINVAL, "config: bufs=%u too small for the packet layer: it keeps %u buffers to "
					      "deliver a batch of messages into and must leave as many to the application "
					      "(bufs >= %u)", co->bufs, HPN_CONN_BATCH_MAX, 2 * HPN_CONN_BATCH_MAX);
	}
	e->cache_max = co->bufs / 8 < HPN_CONN_BATCH_MAX ? HPN_CONN_BATCH_MAX : co->bufs / 8;
	if (e->cache_max > PK_CACHE)
		e->cache_max = PK_CACHE;
	e->peers = calloc(e->max_peers, sizeof(*e->peers));
	e->active = calloc(e->max_peers, sizeof(*e->active));
	e->htab = malloc((e->hmask + 1) * sizeof(*e->htab));
	ret = hpn_msgq_init(&e->q, PK_QUEUE);
	ret = hpn_peer_slots_init(&e->slots, e->max_peers) ? -ENOMEM : ret;
	e->rx_mem = malloc((size_t)PK_BURST * cfg->mtu);
	e->tx_copy = malloc((size_t)PK_BURST * cfg->mtu);
	if (!e->peers || !e->active || !e->htab || ret || !e->rx_mem || !e->tx_copy) {
		ret = hpn_set_error(-ENOMEM, "packet layer: out of memory for %u peers", e->max_peers);
		goto fail;
	}
	for (uint32_t h = 0; h <= e->hmask; h++)
		e->htab[h] = HASH_EMPTY;
	/* Ids: src/peerid.h (slot in the low bits, generations never wrap). */
	if (getrandom(&e->key, sizeof(e->key), 0) != sizeof(e->key)) {
		ret = hpn_set_error(-EIO, "packet layer: no randomness for the handshake key (getrandom)");
		goto fail;
	}
	if (cfg->plain && cfg->seq.kind) {
		e->feed = malloc(sizeof(*e->feed));
		if (!e->feed || hpn_feed_init(e->feed, &cfg->seq, cfg->gap_timeout_ns, &hpn_pk_feed_ops, e)) {
			free(e->feed);
			e->feed = NULL;
			ret = hpn_set_error(-ENOMEM, "packet layer: out of memory for the feed");
			goto fail;
		}
	}
	e->feed_deadline = UINT64_MAX;
	for (unsigned i = 0; i <= HPN_FEED_RETRANS; i++)
		e->lines[i].peer = HPN_PEER_NONE;
	for (unsigned i = 0; i < PK_BURST; i++) /* set once: a spinning receive touches only what it uses */
		e->rx_d[i] = (struct hpn_dgram){.addr = e->rx_addr[i], .data = e->rx_mem + (size_t)i * cfg->mtu,
						.len = e->rx_room, .buf = e->rx_mem + (size_t)i * cfg->mtu};
	if (cfg->faults && *cfg->faults) {
		struct hpn_fault_cfg fc;

		ret = hpn_fault_parse(cfg->faults, &fc, why, sizeof(why));
		if (ret) {
			ret = hpn_set_error(-EINVAL, "config: faults: %s", why);
			goto fail;
		}
		if (hpn_fault_active(&fc)) {
			ret = hpn_fault_init(&e->fault, &fc, cfg->mtu);
			if (ret) {
				hpn_set_error(ret, "faults: cannot set up");
				goto fail;
			}
			e->faulty = true;
			hpn_log(HPN_LOG_WARN, "fault injection on: %s", cfg->faults);
		}
	}
	*out = e;
	return 0;
fail:
	hpn_pktep_destroy(e);
	return ret;
}

static int receive(struct hpn_pktep *e);

/* Closing the endpoint: give unacknowledged data a moment (at most
 * LINGER_NS) to be acked, as a closed TCP socket would, instead of
 * dropping it on the floor. */

/* The application let go of p, but its data is not acked yet. */
static void linger(struct hpn_pktep *e, struct pk_peer *p)
{
	p->lingering = true;
	e->dying++;
}

static void linger_all(struct hpn_pktep *e)
{
	uint64_t t0 = hpn_now_ns();
	unsigned busy = 0;

	if (!e->pool || e->plain)
		return; /* never registered: nothing was ever sent; plain: nothing to wait for */
	for (uint32_t j = 0; j < e->npeers; j++) {
		struct pk_peer *p = &e->peers[e->active[j]];

		if (!p->dead && !p->lingering && !hpn_conn_close(&p->conn, true, t0))
			linger(e, p);
	}
	do { /* wait for data acks only; the goodbye below is best effort */
		busy = 0;
		receive(e);
		hpn_pktep_progress(e, hpn_now_ns());
		for (uint32_t j = 0; j < e->npeers; j++) {
			struct pk_peer *p = &e->peers[e->active[j]];

			busy += p->lingering && p->conn.state == HPN_CONN_UP && hpn_txwin_inflight(&p->conn.tx);
		}
	} while (busy && hpn_now_ns() - t0 < e->linger_ns);
}

void hpn_pktep_destroy(struct hpn_pktep *e)
{
	if (!e)
		return;
	linger_all(e);
	e->now = hpn_now_ns();
	for (uint32_t j = e->npeers; j-- > 0;) {
		struct pk_peer *p = &e->peers[e->active[j]];

		if (!e->plain)
			hpn_conn_close(&p->conn, false, e->now);
		hpn_pk_peer_free(e, p);
	}
	if (e->feed) {
		hpn_feed_fini(e->feed); /* its held packets back to the pool */
		free(e->feed);
	}
	if (e->faulty) {
		hpn_fault_flush(&e->fault, fault_out, e);
		hpn_fault_fini(&e->fault);
	}
	hpn_pk_flush(e); /* and the frames waiting for it */
	if (e->pool) {
		hpn_pool_put_bulk(e->pool, e->cache, e->ncache);
		for (struct hpn_msg m; hpn_msgq_pop(&e->q, &m, 1);)
			hpn_pool_put_bulk(e->pool, &m.data, 1);
	}
	free(e->peers);
	free(e->active);
	hpn_peer_slots_fini(&e->slots);
	free(e->htab);
	hpn_msgq_fini(&e->q);
	free(e->rx_mem);
	free(e->tx_copy);
	free(e);
}

uint32_t hpn_pktep_rx_reserve(const struct hpn_pktep *e)
{
	return e->cache_max;
}

uint32_t hpn_pktep_max_msg(const struct hpn_pktep *e)
{
	return e->ccfg.max_msg;
}

bool hpn_pktep_reliable(const struct hpn_pktep *e)
{
	return e->ccfg.reliable;
}

int hpn_pktep_mem_register(struct hpn_pktep *e)
{
	e->pool = hpn_core_pool(e->core);
	return 0;
}

void hpn_pktep_listen(struct hpn_pktep *e)
{
	e->listening = true;
}

const char *hpn_pktep_doing(const struct hpn_pktep *e)
{
	return e->listening ? "it listens" : e->subscribing ? "it joined a group" : "it connected";
}

/* Sessions, first sequence numbers, probe nonces: SipHash of a counter
 * under the endpoint's random key (a PRF in counter mode), so none of
 * them can be guessed from another, and no system call per value. */
static uint32_t rand32(struct hpn_pktep *e)
{
	uint32_t r;

	do {
		uint64_t ctr = ++e->rand_ctr;

		r = (uint32_t)hpn_siphash(&e->key, &ctr, sizeof(ctr));
	} while (!r);
	return r;
}

int hpn_pktep_connect(struct hpn_pktep *e, const void *addr, uint32_t alen, hpn_peer_t *peer)
{
	struct pk_peer *p = hpn_pk_peer_find(e, addr, alen);
	char who[64] = "?";

	e->io->format(e->io_arg, addr, alen, who, sizeof(who));
	if (e->plain)
		return hpn_pk_plain_connect(e, addr, alen, peer, who);
	if (p && p->lingering) { /* disconnected, still closing: the new one wins */
		hpn_conn_abort(&p->conn, -ECONNRESET);
		p = NULL;
	}
	if (p)
		return hpn_set_error(-EISCONN, "connect %s: already a peer (id %u)", who, p->id);
	p = hpn_pk_peer_new(e, addr, alen);
	if (!p)
		return hpn_set_error(!e->slots.nfree ? -EMFILE : -ENOMEM, "connect %s: %s", who,
				     !e->slots.nfree ? hpn_peer_slots_why(&e->slots) : "out of memory for the peer");
	p->connecting = true;
	e->now = hpn_now_ns();
	hpn_conn_connect(&p->conn, rand32(e), rand32(e), hpn_core_connect_timeout_ms(e->core) * MS, e->now);
	hpn_pk_flush(e);
	*peer = p->id;
	return 0;
}

static int group_mode_check(struct hpn_pktep *e)
{
	if (!e->plain && (e->ccfg.reliable || e->ccfg.raw))
		return hpn_set_error(-EINVAL, "multicast needs framing=none (plain datagrams) or unordered=on: a group has nobody to "
					      "retransmit for it (gaps are counted instead)");
	return 0;
}

void hpn_pktep_unsubscribe(struct hpn_pktep *e)
{
	e->subscribing = false;
}

int hpn_pktep_subscribe(struct hpn_pktep *e)
{
	int ret = group_mode_check(e);

	if (!ret)
		e->subscribing = true;
	return ret;
}

int hpn_pktep_publish(struct hpn_pktep *e, const void *group, uint32_t alen, hpn_peer_t *peer)
{
	struct pk_peer *p;
	char who[64] = "?";
	int ret = group_mode_check(e);

	if (ret)
		return ret;
	e->io->format(e->io_arg, group, alen, who, sizeof(who));
	if (e->plain)
		return hpn_pk_plain_connect(e, group, alen, peer, who);
	if (hpn_pk_peer_find(e, group, alen))
		return hpn_set_error(-EISCONN, "publish to %s: already publishing there", who);
	p = hpn_pk_peer_new(e, group, alen);
	if (!p)
		return hpn_set_error(-EMFILE, "publish to %s: max_peers reached or out of memory", who);
	p->connecting = true; /* its up() reports HPN_EV_CONNECTED */
	hpn_conn_publish(&p->conn, rand32(e), hpn_now_ns());
	*peer = p->id;
	return 0;
}

int hpn_pktep_disconnect(struct hpn_pktep *e, hpn_peer_t id)
{
	struct pk_peer *p = peer_by_id(e, id);

	if (!p)
		return hpn_set_error(-ENOENT, "no peer %u", id);
	if (e->plain) { /* a source we let go of stays quiet (muted) */
		if (p->source) {
			unsigned i = e->muted_next++ % (sizeof(e->muted) / sizeof(e->muted[0]));

			memcpy(e->muted[i].addr, p->addr, p->alen);
			e->muted[i].alen = p->alen;
			e->muted[i].session = 0;
		}
		hpn_pk_peer_free(e, p);
		return 0;
	}
	if (p->conn.role == HPN_CONN_SUBSCRIBE) { /* a publisher: stop listening to it */
		unsigned i = e->muted_next++ % (sizeof(e->muted) / sizeof(e->muted[0]));

		memcpy(e->muted[i].addr, p->addr, p->alen);
		e->muted[i].alen = p->alen;
		e->muted[i].session = p->conn.session;
	}
	if (hpn_conn_close(&p->conn, true, hpn_now_ns())) {
		hpn_pk_peer_free(e, p); /* flushes the goodbye first */
	} else {
		hpn_pk_flush(e); /* the goodbye, if nothing waits for an ack */
		linger(e, p); /* freed once its goodbye is answered (sweep) */
	}
	return 0;
}

int hpn_pktep_peer_addr(struct hpn_pktep *e, hpn_peer_t id, char *buf, size_t len)
{
	struct pk_peer *p = peer_by_id(e, id);

	if (!p)
		return hpn_set_error(-ENOENT, "no peer %u", id);
	return e->io->format(e->io_arg, p->addr, p->alen, buf, len);
}

void hpn_pktep_unreachable(struct hpn_pktep *e, const void *addr, uint32_t alen, int err, const uint8_t *quote,
			   size_t qlen)
{
	struct pk_peer *p = hpn_pk_peer_find(e, addr, alen);
	uint32_t seq;
	uint8_t type;

	if (!p || p->dead || e->plain) /* plain: nothing quotes a session; the sender learns nothing */
		return;
	/* Nobody checks ICMP errors for UDP: anyone can send one. Only an
	 * error quoting a packet of this peer's session - random, never seen
	 * off the path - is heard at all (RFC 5927's check). */
	if (qlen < 12 || quote[0] != HPN_PKT_MAGIC || quote[1] != HPN_PKT_VERSION ||
	    hpn_pkt_session(quote) != p->conn.session) {
		HPN_STAT_ADD(e->st->drops, 1);
		return;
	}
	type = quote[2];
	seq = (uint32_t)quote[8] | (uint32_t)quote[9] << 8 | (uint32_t)quote[10] << 16 | (uint32_t)quote[11] << 24;
	e->now = hpn_now_ns();
	if (p->conn.state == HPN_CONN_HELLO) { /* a connect fails on any error */
		if (type == HPN_PKT_HELLO || type == HPN_PKT_COOKIE_ECHO) {
			uint64_t before[4] = STATS_BEFORE(&p->conn);

			hpn_conn_abort(&p->conn, err);
			stats_sync(e, &p->conn, before);
		}
		return;
	}
	if (p->conn.state != HPN_CONN_UP)
		return;
	if (err == -ECONNREFUSED && type == HPN_PKT_PING && p->icmp_probe_ns && seq == p->conn.probe_nonce) {
		/* Our probe itself came back: nobody listens there any more.
		 * Not at once: what the peer sent before it went may still sit
		 * in our socket; refused() ends the stream once that is read. */
		if (!p->refused_ns) {
			p->refused_ns = e->now;
			p->refused_empty = e->rx_empty;
		}
		return;
	}
	/* Anything else only hastens a probe (one per RTO): a live peer
	 * answers it, a dead one bounces it. */
	if (!p->icmp_probe_ns || e->now - p->icmp_probe_ns >= p->conn.tx.rto_ns) {
		p->icmp_probe_ns = e->now;
		hpn_conn_probe(&p->conn, rand32(e), e->now);
	}
}

/* Keep PK_CACHE pool buffers in hand for deliveries: on_room() can then
 * promise exactly what deliver() will find. */
void hpn_pk_refill(struct hpn_pktep *e)
{
	unsigned want = e->cache_max - e->ncache;

	/* A feed's hold has its share of the pool (kept_max, less what it
	 * keeps already): deliveries to a slow reader must not take it, or
	 * the packets the hold needs to keep - behind a hole - are lost.
	 * The reader's queue stops there; the devices hold the rest. */
	if (e->feed && e->pool) {
		unsigned avail = hpn_pool_avail(e->pool), reserve = e->kept_max > e->nkept ? e->kept_max - e->nkept : 0;

		want = avail <= reserve ? 0 : avail - reserve < want ? avail - reserve : want;
	}
	while (want && e->pool) {
		if (hpn_pool_get_bulk(e->pool, e->cache + e->ncache, want) == want) {
			e->ncache += want;
			return;
		}
		want /= 2; /* the pool is low: take what there is, in halves */
	}
}

/* A peer whose port refused us: gone once what it sent before is read
 * (our socket found empty since the refusal, and 1 ms passed) and
 * delivered - unless it spoke again since (a transient error, or a forged
 * one). Empty, not only 1 ms: each ACK we sent the dead peer bounced and
 * failed our next receive, and a millisecond of that left its last
 * packets unread in the socket, lost with the peer (test_killed_peer_data_kept,
 * 1 run in 10). */
#define REFUSED_GRACE_NS 1000000

static void refused(struct hpn_pktep *e, struct pk_peer *p, uint64_t now)
{
	/* Signed: the refusal was stamped by another clock read. Data read in
	 * the grace was sent before the peer went; only a packet after it
	 * says the peer is alive (a transient or forged error). */
	if ((int64_t)(now - p->refused_ns) < REFUSED_GRACE_NS || e->rx_empty == p->refused_empty)
		return;
	if ((int64_t)(p->conn.last_rx_ns - p->refused_ns) > REFUSED_GRACE_NS) {
		p->refused_ns = 0;
		return;
	}
	if (!p->conn.backlog) {
		uint64_t before[4] = STATS_BEFORE(&p->conn);

		hpn_conn_abort(&p->conn, -ECONNREFUSED);
		stats_sync(e, &p->conn, before);
	}
}

/* A device that cannot receive hears nobody: the time it spends so is not
 * its peers' silence. Their silence clocks move on with it - for at most
 * DEAF_LIMITS silence limits since the peer was last heard: a device can
 * also be short of frames with the application holding none (frames= too
 * few for the load), and a dead peer must be given up in the end. */
#define DEAF_LIMITS 8
_Static_assert(HPN_CONN_STALL_DEAD > DEAF_LIMITS, "a deaf spell must end before a stall is judged");

static void deaf_time(struct hpn_pktep *e, uint64_t now)
{
	bool deaf = e->io->deaf(e->io_arg);

	if (deaf && e->deaf_ns && now > e->deaf_ns)
		for (uint32_t j = 0; j < e->npeers; j++) {
			struct pk_peer *p = &e->peers[e->active[j]];
			uint64_t step = now - e->deaf_ns, moved = p->conn.last_rx_ns + step;

			if (p->conn.last_rx_ns != p->deaf_rx_ns) /* heard since we last moved it */
				p->deaf_credit_ns = 0;
			if (p->deaf_credit_ns < DEAF_LIMITS * p->conn.cfg.dead_ns) {
				p->conn.last_rx_ns = moved < now ? moved : now;
				p->deaf_credit_ns += step;
			}
			p->deaf_rx_ns = p->conn.last_rx_ns;
		}
	/* Said once deafness has lasted a tenth of a second (a moment short
	 * of frames in a burst is not worth a line), at most once a second. */
	if (!deaf) {
		e->deaf_from = 0;
		e->deaf_said = false;
	} else if (!e->deaf_from) {
		e->deaf_from = now;
	} else if (now - e->deaf_from >= 100 * MS && e->npeers && !e->deaf_said && hpn_pk_due(e, &e->deaf_log_ns)) {
		hpn_log(HPN_LOG_WARN, "the device has (almost) no frame left to receive into: the application holds them "
				      "(hpn_buf_put gives them back), or frames= is too few for this load - nothing is "
				      "heard meanwhile, and up to %u silence limits of it are not counted against peers",
			DEAF_LIMITS);
		e->deaf_said = true;
	}
	e->deaf_ns = deaf ? now : 0;
}

static void sweep(struct hpn_pktep *e)
{
	for (uint32_t j = e->npeers; e->dying && j-- > 0;) {
		struct pk_peer *p = &e->peers[e->active[j]];

		if (p->dead || (p->lingering && p->conn.state == HPN_CONN_DEAD))
			hpn_pk_peer_free(e, p);
	}
}

int hpn_pktep_progress(struct hpn_pktep *e, uint64_t now)
{
	/* Read the socket even when the application is not: acks, keepalives
	 * and in-window data keep flowing while it is busy (a reader that
	 * stalls is then a closed window, not a dead peer). */
	for (int i = 0; i < 4 && receive(e) == PK_BURST; i++)
		;
	if (now > e->now) /* receive() may have read a later clock */
		e->now = now;
	now = e->now;
	hpn_pk_refill(e);
	if (e->plain) {
		e->cur_ts = now + e->m2r;
		if (e->feed) /* caught up only if receive() found the devices empty: it says so */
			hpn_pk_feed_tick(e, now, false);
		hpn_pk_plain_expire(e, now);
		hpn_pk_flush(e);
		return 0;
	}
	if (e->io->deaf)
		deaf_time(e, now);
	for (uint32_t j = 0; j < e->npeers; j++) {
		struct pk_peer *p = &e->peers[e->active[j]];
		uint64_t before[4] = STATS_BEFORE(&p->conn);

		hpn_conn_tick(&p->conn, now);
		stats_sync(e, &p->conn, before);
		if (p->refused_ns && !p->dead)
			refused(e, p, now);
	}
	if (e->faulty)
		hpn_fault_tick(&e->fault, now, fault_out, e);
	hpn_pk_flush(e);
	sweep(e);
	return 0;
}

int hpn_pktep_busy(struct hpn_pktep *e)
{
	uint64_t soon = hpn_now_ns() + 1000000; /* the core's timer runs every ms */

	if (e->q.n)
		return 1;
	if (e->plain)
		return e->feed && e->feed_deadline < soon;
	if (e->faulty && hpn_fault_next_ns(&e->fault) < soon)
		return 1;
	for (uint32_t j = 0; j < e->npeers; j++)
		if (hpn_conn_deadline(&e->peers[e->active[j]].conn) < soon)
			return 1;
	return 0;
}

/* ---- data path -------------------------------------------------------------------- */

/* A sender that never receives (inline mode, send-only) would never see
 * the acks that open its window, nor run its retransmission timer: when
 * half of the window is in flight, or packets wait behind the congestion
 * window, read the acks first and run the peer's timers (at most every
 * 20 us). Ping-pong traffic, with little ever in flight, pays nothing. */
static struct pk_peer *tx_peer(struct hpn_pktep *e, hpn_peer_t id)
{
	struct pk_peer *p = peer_by_id(e, id);

	if (p && e->ccfg.reliable && e->now - p->last_tick_ns >= 20000 &&
	    (hpn_txwin_inflight(&p->conn.tx) >= p->conn.tx.size / 2 || p->conn.blocked ||
	     p->conn.tx.snd != p->conn.tx.next)) {
		p->last_tick_ns = e->now;
		receive(e);
		p = peer_by_id(e, id); /* it may have gone meanwhile */
		if (p) {
			uint64_t before[4] = STATS_BEFORE(&p->conn);

			hpn_conn_tick(&p->conn, e->now);
			stats_sync(e, &p->conn, before);
		}
	}
	return p;
}

/* Zero-copy messages the conn copied after all: their buffers go back to
 * the pool now (the adopted ones, once acked). */
static void put_copied(struct hpn_pktep *e, const struct hpn_conn_msg *cm, unsigned n)
{
	void *bufs[PK_BURST];
	unsigned m = 0;

	for (unsigned i = 0; i < n; i++)
		if (!cm[i].adopt)
			bufs[m++] = (void *)cm[i].data;
	if (m) {
		HPN_STAT_ADD(e->st->tx_copied, m);
		hpn_pool_put_bulk(e->pool, bufs, m);
	}
}

/* After the hpn_pk_flush that sends it: a buffer the application handed over. */
void hpn_pk_put_after_flush(struct hpn_pktep *e, void *buf)
{
	if (e->nput == PK_BURST)
		hpn_pk_flush(e);
	e->put_later[e->nput++] = buf;
}

/* A raw datagram through the fault layer, which wants it whole. */
static void raw_faulty(struct hpn_pktep *e, struct pk_peer *p, const uint8_t *hdr, const struct hpn_msg *m)
{
	uint8_t *pkt = e->tx_copy + (size_t)(e->ntx < PK_BURST ? e->ntx : 0) * e->ccfg.mtu;

	if (hdr != (const uint8_t *)m->data - HPN_PKT_HDR)
		memcpy(pkt, hdr, HPN_PKT_HDR);
	else
		pkt = (uint8_t *)hdr;
	if (pkt != hdr)
		memcpy(pkt + HPN_PKT_HDR, m->data, m->len);
	hpn_fault_xmit(&e->fault, p->addr, p->alen, pkt, HPN_PKT_HDR + m->len, e->now, fault_out, e);
}

/* A raw message's datagram: its header written in front of it (a
 * zero-copy buffer the device can send from) or in hdr, apart. Returns 0
 * or -errno with the error set; *front says which. */
static int raw_dgram(struct hpn_pktep *e, const struct hpn_msg *m, unsigned flags, uint8_t *hdr, struct hpn_dgram *d,
		     bool *front, struct pk_peer **pp)
{
	struct pk_peer *p = e->last && e->last->id == m->peer && !e->last->dead ? e->last : peer_by_id(e, m->peer);
	int ret;

	if (!p || p->dead)
		return hpn_set_error(-ENOTCONN, "send: peer %u is not connected", m->peer);
	*front = (flags & HPN_TX_OWNED) && in_frames(e, m->data);
	if (*front)
		hdr = (uint8_t *)m->data - HPN_PKT_HDR;
	/* No clock read: the time only marks the peer as spoken to (the
	 * keepalive's business), the last receive's will do. */
	ret = hpn_conn_raw_header(&p->conn, hdr, m->len, e->now);
	if (ret < 0)
		return ret == -EMSGSIZE ? hpn_set_error(ret, "send: %u bytes is more than one raw datagram to peer %u "
							      "carries (%u)", m->len, m->peer, p->conn.max_send)
					: hpn_set_error(ret, "send: peer %u is not connected yet", m->peer);
	if (*front)
		*d = (struct hpn_dgram){.addr = p->addr, .alen = p->alen, .data = hdr, .len = HPN_PKT_HDR + m->len};
	else
		*d = (struct hpn_dgram){.addr = p->addr, .alen = p->alen, .data = m->data, .len = m->len, .hdr = hdr,
					.hlen = HPN_PKT_HDR};
	if ((flags & HPN_TX_OWNED) && !*front)
		HPN_STAT_ADD(e->st->tx_copied, 1); /* the frame backend copies it into a frame */
	*pp = p;
	return 0;
}

/* One raw message, the latency case: straight to the device, no batch. */
static int raw_tx_one(struct hpn_pktep *e, const struct hpn_msg *m, unsigned flags)
{
	struct hpn_dgram d;
	struct pk_peer *p;
	uint8_t hdr[HPN_PKT_HDR];
	bool front;
	int ret = raw_dgram(e, m, flags, hdr, &d, &front, &p);

	if (ret)
		return ret;
	if (e->io->send(e->io_arg, &d, 1) < 0) /* lost, as a datagram may be */
		HPN_STAT_ADD(e->st->errors, 1);
	if (flags & HPN_TX_OWNED) /* sent (a frame backend frees a frame when its send completes) */
		give_back(e, m->data);
	return 1;
}

/* reliable=off: each message one datagram, its header written apart (a
 * copy send: the payload goes out from the caller's memory) or in front
 * of it (a zero-copy one: one piece, sent in place on a frame backend). */
static int raw_tx_burst(struct hpn_pktep *e, const struct hpn_msg *msgs, unsigned n, unsigned flags)
{
	unsigned done = 0;
	int ret = 0;

	if (n == 1 && !e->ntx && !e->faulty)
		return raw_tx_one(e, msgs, flags);
	for (; done < n; done++) {
		const struct hpn_msg *m = &msgs[done];
		struct hpn_dgram d;
		struct pk_peer *p;
		bool front;

		if (e->ntx == PK_BURST)
			hpn_pk_flush(e);
		ret = raw_dgram(e, m, flags, e->tx_ctrl[e->ntx], &d, &front, &p);
		if (ret)
			break;
		if (e->faulty)
			raw_faulty(e, p, front ? d.data : d.hdr, m);
		else
			e->tx_d[e->ntx++] = d;
		if (flags & HPN_TX_OWNED)
			hpn_pk_put_after_flush(e, m->data);
	}
	hpn_pk_flush(e);
	return done ? (int)done : ret;
}

int hpn_pktep_tx_burst(struct hpn_pktep *e, const struct hpn_msg *msgs, unsigned n, unsigned flags)
{
	struct hpn_conn_msg cm[PK_BURST];
	unsigned done = 0;
	int ret = 0;

	if (e->ccfg.raw)
		return raw_tx_burst(e, msgs, n, flags);
	if (e->plain)
		return hpn_pk_plain_tx_burst(e, msgs, n, flags);
	e->now = hpn_now_ns(); /* one clock read per burst: RTT samples */
	while (done < n) {
		struct pk_peer *p = tx_peer(e, msgs[done].peer);
		unsigned k = 0;

		if (!p || p->dead) { /* dead: gone from a timer just run */
			ret = hpn_set_error(-ENOTCONN, "send: peer %u is not connected", msgs[done].peer);
			break;
		}
		/* A run of messages to one peer goes down in one call: small
		 * ones share packets. */
		while (done + k < n && k < PK_BURST && msgs[done + k].peer == msgs[done].peer) {
			cm[k] = (struct hpn_conn_msg){msgs[done + k].data, msgs[done + k].len,
						      (flags & HPN_TX_OWNED) && in_frames(e, msgs[done + k].data)};
			k++;
		}
		uint64_t before[4] = STATS_BEFORE(&p->conn);

		ret = hpn_conn_send(&p->conn, cm, k, e->now);
		stats_sync(e, &p->conn, before);
		if (ret < 0) {
			if (ret == -EMSGSIZE)
				hpn_set_error(ret, "send: %u bytes is more than peer %u takes (%u: the smaller of "
						   "both sides' largest message and what one window carries)",
					      msgs[done].len, msgs[done].peer, p->conn.max_send);
			else if (ret == -ENOTCONN)
				hpn_set_error(ret, "send: peer %u is not connected yet", msgs[done].peer);
			else if (ret != -EAGAIN) /* back-pressure is no error: no message (hpn.h) */
				hpn_set_error(ret, "send: peer %u: %s", msgs[done].peer, strerror(-ret));
			break;
		}
		if (flags & HPN_TX_OWNED)
			put_copied(e, cm, (unsigned)ret);
		done += (unsigned)ret;
		if ((unsigned)ret < k)
			break;
	}
	hpn_pk_flush(e);
	return done ? (int)done : ret;
}

/* A publisher heard on a group we joined: a new peer from its first
 * packet; a new session from a known publisher is its restart. */
static struct pk_peer *subscribe_peer(struct hpn_pktep *e, struct pk_peer *p, const uint8_t *pkt, uint32_t len,
				      const void *addr, uint32_t alen)
{
	uint32_t session = hpn_pkt_session(pkt);
	struct hpn_pkt h;

	if (p && (session == p->conn.session || p->conn.role != HPN_CONN_SUBSCRIBE))
		return p; /* a pair peer's packets are its conn's to judge */
	for (unsigned i = 0; !p && i < sizeof(e->muted) / sizeof(e->muted[0]); i++)
		if (e->muted[i].alen == alen && e->muted[i].session == session &&
		    !memcmp(e->muted[i].addr, addr, alen))
			return NULL; /* disconnected by the application (a restart is welcome) */
	/* Only a whole, valid publisher packet may end a subscription or take
	 * a peer slot: not a damaged one, not a stranger's garbage. */
	if (hpn_pkt_decode(pkt, len, e->ccfg.max_msg, &h) ||
	    !((h.type == HPN_PKT_DATA && (h.flags & HPN_PKT_F_UNRELIABLE) && !(h.flags & HPN_PKT_F_RAW)) ||
	      h.type == HPN_PKT_PING))
		return p; /* (a raw datagram is no publisher's) */
	if (p) /* its restart: the old one ends (freed by sweep, after the hpn_pk_flush) */
		hpn_conn_abort(&p->conn, -ECONNRESET);
	p = hpn_pk_peer_new(e, addr, alen);
	if (!p)
		return NULL;
	if (hpn_conn_subscribe(&p->conn, pkt, len, e->now)) { /* cannot be: checked above */
		p->dead = true;
		e->dying++;
		return NULL;
	}
	return p;
}

/* An answer to an address that is no peer (yet): copied into the batch. */
static void send_to(struct hpn_pktep *e, const void *addr, uint32_t alen, const uint8_t *pkt, size_t len)
{
	if (e->faulty) {
		hpn_fault_xmit(&e->fault, addr, alen, pkt, len, e->now, fault_out, e);
		return;
	}
	if (e->ntx == PK_BURST)
		hpn_pk_flush(e);
	memcpy(e->tx_addr[e->ntx], addr, alen);
	memcpy(e->tx_ctrl[e->ntx], pkt, len);
	e->tx_d[e->ntx] = (struct hpn_dgram){.addr = e->tx_addr[e->ntx], .alen = alen, .data = e->tx_ctrl[e->ntx],
					     .len = (uint32_t)len};
	e->ntx++;
}

static uint32_t now_ms(const struct hpn_pktep *e)
{
	return (uint32_t)(e->now / MS);
}

/* A HELLO: answered with a COOKIE, statelessly - whoever sent it gets
 * nothing here until it echoes the cookie from the address it claims. */
/* UDP source port 0 (RFC 768: "no reply expected"): nothing can be sent
 * back - the kernel refuses it (EINVAL, which once turned GSO off for
 * good when two such COOKIEs made one batch). Every backend's address is
 * a sockaddr_in or sockaddr_in6, whose ports share an offset. */
static bool port_zero(const struct hpn_dgram *d)
{
	const struct sockaddr_in *a = (const void *)d->addr;

	return d->alen >= sizeof(*a) && (a->sin_family == AF_INET || a->sin_family == AF_INET6) && !a->sin_port;
}

static void on_hello(struct hpn_pktep *e, struct pk_peer *p, const struct hpn_pkt *h, const struct hpn_dgram *d)
{
	uint8_t out[HPN_PKT_HDR + HPN_PKT_HS_LEN];
	/* Our mode too, whatever the HELLO's: a connector of another mode
	 * learns it from the COOKIE and gives up at once (-EPROTO). */
	struct hpn_pkt ours = {.flags = hpn_pkt_mode_flags(e->ccfg.reliable, e->ccfg.raw),
			       .window = p ? p->conn.tx.size : 0, .max_msg = e->ccfg.max_msg, .mtu = e->ccfg.mtu};

	if (port_zero(d)) {
		HPN_STAT_ADD(e->st->malformed, 1);
		HPN_STAT_ADD(e->st->drops, 1);
		return;
	}
	if (p && p->conn.state == HPN_CONN_HELLO) {
		if (h->session == p->conn.session)
			return; /* our own HELLO: we connected to ourselves */
		/* Both sides connected at once: the lower session wins; the
		 * loser answers the winner's HELLO as if it had listened. The
		 * winner remembers the loser's session: its HELLOs still in
		 * flight are not a restart. */
		if (h->session > p->conn.session) {
			p->lost_session = h->session;
			return;
		}
		/* It wins - if it proves its address: our COOKIE goes there and
		 * only its echo settles the tie (on_echo). Meanwhile our own
		 * handshake runs on: an unproven HELLO changes nothing. */
	} else if (p && h->session == p->lost_session) {
		return; /* the late HELLO of a tie we won */
	} else if (!e->listening && !(p && p->connecting)) {
		HPN_STAT_ADD(e->st->drops, 1); /* nobody asked for peers */
		return;
	}
	if (!ours.window) { /* what hpn_conn_init makes of the configured window */
		ours.window = 1;
		while (ours.window < e->ccfg.window && ours.window < HPN_TXWIN_MAX)
			ours.window <<= 1;
	}
	send_to(e, d->addr, d->alen, out, hpn_hello_cookie(&e->key, d->addr, d->alen, h, &ours, now_ms(e), out));
}

static bool recently_closed(struct hpn_pktep *e, const void *a, uint32_t alen, uint32_t session)
{
	uint64_t tag = closed_tag(e, a, alen, session);

	for (unsigned i = 0; i < CLOSED_MAX; i++)
		if (e->closed[i] == tag)
			return true;
	return false;
}

/* A warning is due: at most once a second per *stamp (a flood, forged or
 * not, must not fill the log). */
bool hpn_pk_due(struct hpn_pktep *e, uint64_t *stamp)
{
	if (*stamp && e->now - *stamp < 1000 * MS)
		return false;
	*stamp = e->now;
	return true;
}

/* The same for a warning about a datagram's source: true with the
 * source's address in who. */
bool hpn_pk_log_due(struct hpn_pktep *e, uint64_t *stamp, const void *addr, uint32_t alen, char *who, size_t len)
{
	if (!hpn_pk_due(e, stamp))
		return false;
	e->io->format(e->io_arg, addr, alen, who, len);
	return true;
}

/* Refuse a proven connector: we are full. Logged at most once a second. */
static void refuse(struct hpn_pktep *e, const struct hpn_pkt *h, const struct hpn_dgram *d)
{
	uint8_t out[HPN_PKT_HDR];
	struct hpn_pkt bye = {.type = HPN_PKT_BYE, .session = h->session, .seq = HPN_PKT_BYE_REFUSED};
	size_t n = hpn_pkt_encode(&bye, out);

	hpn_pkt_seal(out, n);
	send_to(e, d->addr, d->alen, out, n);
	e->refused++;
	HPN_STAT_ADD(e->st->drops, 1);
	char who[64] = "?";

	if (hpn_pk_log_due(e, &e->refused_logged_ns, d->addr, d->alen, who, sizeof(who)))
		hpn_log(HPN_LOG_WARN, "refused %s: max_peers (%u) reached (%llu refused so far)", who, e->max_peers,
			(unsigned long long)e->refused);
}

/* A proven new session replaces p: what p's peer sent and we
 * acknowledged is still delivered (the stream ends -ECONNRESET once the
 * reader took it); a peer with nothing waiting is freed at once, so a
 * full endpoint has its slot for the new session. */
static void supersede(struct hpn_pktep *e, struct pk_peer *p)
{
	uint64_t before[4] = STATS_BEFORE(&p->conn);

	hpn_conn_end(&p->conn, -ECONNRESET);
	stats_sync(e, &p->conn, before);
	if (p->dead)
		hpn_pk_peer_free(e, p);
	else
		p->superseded = true;
}

/* How long a peer whose address a new session claims must stay silent
 * before we believe it is gone: several of its round trips, at least
 * 5 ms (a live peer's PONG comes in microseconds), at most a quarter of
 * the peer timeout. */
static uint64_t restart_wait_ns(const struct pk_peer *p)
{
	uint64_t w = 4 * p->conn.tx.rto_ns;

	if (w < 5 * MS)
		w = 5 * MS;
	if (w > p->conn.cfg.dead_ns / 4)
		w = p->conn.cfg.dead_ns / 4;
	return w;
}

/* A proven new session from a live peer's address. Returns true when the
 * old peer is gone and the new one may be accepted (the connector
 * repeats its echo every 20 ms until then). */
static bool restart_confirmed(struct hpn_pktep *e, struct pk_peer *p, uint32_t session)
{
	char who[64] = "?";

	if (p->lingering || p->conn.ending) { /* let go of already, or judged gone */
		supersede(e, p);
		return true;
	}
	if (!p->restart_ns || p->restart_session != session) {
		p->restart_ns = e->now;
		p->restart_session = session;
		hpn_conn_probe(&p->conn, rand32(e), e->now);
		return false;
	}
	if ((int64_t)(p->conn.last_rx_ns - p->restart_ns) > 0) {
		/* The old session answered: it is alive, and the new one is a
		 * stranger's (or a second process on the same port). Said once
		 * a second: whoever sees the traffic can repeat the claim. */
		e->restarts_ignored++;
		if (hpn_pk_log_due(e, &e->restart_log_ns, p->addr, p->alen, who, sizeof(who)))
			hpn_log(HPN_LOG_WARN, "a new session from %s ignored: the peer there is alive (%llu such so far)",
				who, (unsigned long long)e->restarts_ignored);
		p->restart_ns = 0;
		HPN_STAT_ADD(e->st->drops, 1);
		return false;
	}
	if (e->now - p->restart_ns < restart_wait_ns(p)) {
		if (e->now - p->conn.probe_sent_ns >= p->conn.tx.rto_ns)
			hpn_conn_probe(&p->conn, rand32(e), e->now);
		return false;
	}
	supersede(e, p);
	return true;
}

/* A proven address whose echo says another mode: no peer for it (all its
 * packets and all ours would be dropped as malformed). Said at most once a
 * second: the address is proven, but its echoes may repeat. */
static __attribute__((cold, noinline)) void mode_refused(struct hpn_pktep *e, uint8_t mode, const struct hpn_dgram *d)
{
	char who[64] = "?";

	HPN_STAT_ADD(e->st->drops, 1);
	if (hpn_pk_log_due(e, &e->mode_log_ns, d->addr, d->alen, who, sizeof(who)))
		hpn_log(HPN_LOG_WARN, "refused %s: it runs %s, this endpoint %s", who, hpn_pkt_mode_name(mode),
			hpn_pkt_mode_name(hpn_pkt_mode_flags(e->ccfg.reliable, e->ccfg.raw)));
}

/* A COOKIE_ECHO: the connector proved it receives at its address. Only
 * now is there a peer. */
static void on_echo(struct hpn_pktep *e, struct pk_peer *p, const struct hpn_pkt *h, const struct hpn_dgram *d)
{
	uint32_t isn;

	if (hpn_hello_check(&e->key, d->addr, d->alen, h, now_ms(e), COOKIE_LIFE_MS, &isn) ||
	    recently_closed(e, d->addr, d->alen, h->session)) {
		HPN_STAT_ADD(e->st->drops, 1); /* forged, replayed, expired or closed */
		return;
	}
	if (h->flags != hpn_pkt_mode_flags(e->ccfg.reliable, e->ccfg.raw)) {
		mode_refused(e, h->flags, d); /* our COOKIE said our mode: not an hpn of this version */
		return;
	}
	/* Both sides connected at once and the other's session is lower:
	 * it wins, we accept it into the peer our hpn_connect made. */
	if (p && p->conn.state == HPN_CONN_HELLO && h->session < p->conn.session) {
		hpn_conn_accept(&p->conn, h, isn, e->now);
		return;
	}
	if (p && p->conn.state == HPN_CONN_HELLO)
		return; /* a tie we win: our HELLO is on its way to it */
	if (!e->listening) {
		HPN_STAT_ADD(e->st->drops, 1);
		return;
	}
	if (p && !restart_confirmed(e, p, h->session))
		return;
	p = hpn_pk_peer_new(e, d->addr, d->alen);
	if (!p) {
		refuse(e, h, d);
		return;
	}
	hpn_conn_accept(&p->conn, h, isn, e->now);
}

/* HELLO and COOKIE_ECHO of sessions we do not have: the stateless half
 * of the handshake. Returns true when the datagram was taken. */
static bool handshake(struct hpn_pktep *e, struct pk_peer *p, const struct hpn_dgram *d)
{
	struct hpn_pkt h;

	if (d->len < HPN_PKT_HDR || (d->data[2] != HPN_PKT_HELLO && d->data[2] != HPN_PKT_COOKIE_ECHO))
		return false;
	if (p && d->data[2] == HPN_PKT_COOKIE_ECHO && hpn_pkt_session(d->data) == p->conn.session)
		return false; /* its conn answers (our HELLO_ACK was lost) */
	if (hpn_pkt_decode(d->data, d->len, e->ccfg.max_msg, &h)) {
		HPN_STAT_ADD(e->st->malformed, 1);
		HPN_STAT_ADD(e->st->drops, 1);
		return true;
	}
	if (h.type == HPN_PKT_HELLO)
		on_hello(e, p, &h, d);
	else
		on_echo(e, p, &h, d);
	return true;
}

/* Raw mode: a raw datagram of a peer's stream straight to the reader (or
 * dropped, counted, when it has no room); false: anything else. */
static bool raw_input(struct hpn_pktep *e, struct pk_peer *p, struct hpn_dgram *d)
{
	uint32_t len;
	const uint8_t *msg = hpn_conn_raw_payload(&p->conn, d->data, d->len, e->now, &len);

	if (!msg)
		return false;
	e->last = p;
	if (on_room(p))
		on_deliver(p, msg, len);
	else
		HPN_STAT_ADD(e->st->drops, 1);
	return true;
}

static void input(struct hpn_pktep *e, struct hpn_dgram *d)
{
	struct pk_peer *p = e->last;

	if (e->plain) {
		hpn_pk_plain_input(e, d);
		return;
	}
	/* Datagrams come in runs from one peer: no hash for those. */
	if (!p || p->dead || p->superseded || p->alen != d->alen || memcmp(p->addr, d->addr, d->alen))
		p = hpn_pk_peer_find(e, d->addr, d->alen);
	if (e->ccfg.raw && p && !p->lingering && raw_input(e, p, d))
		return;
	if (e->subscribing && d->len >= HPN_PKT_HDR && (d->data[2] == HPN_PKT_DATA || d->data[2] == HPN_PKT_PING))
		p = subscribe_peer(e, p, d->data, d->len, d->addr, d->alen);
	else if (handshake(e, p, d))
		return;
	if (!p) {
		struct hpn_pkt h;

		/* Not from a peer; garbage is told apart for the counters. */
		if (hpn_pkt_decode(d->data, d->len, e->ccfg.max_msg, &h))
			HPN_STAT_ADD(e->st->malformed, 1);
		else if (recently_closed(e, d->addr, d->alen, h.session))
			return; /* a straggler of a stream that just ended (its last ACK, a BYE repeat): expected,
				 * not a drop - every hpnbench server said "dropped 1-4 datagrams" after each run */
		HPN_STAT_ADD(e->st->drops, 1);
		return;
	}
	uint64_t before[4] = STATS_BEFORE(&p->conn);

	e->last = p;
	hpn_conn_input_at(&p->conn, d->data, d->len, e->now, d->rx_ns ? d->rx_ns : e->now);
	stats_sync(e, &p->conn, before);
}

/* Packets a feed can hold now: slots in its hold, buffers to keep them in. */
static uint32_t feed_space(const struct hpn_pktep *e)
{
	uint32_t space = hpn_feed_space(e->feed), kept = e->nkept < e->kept_max ? e->kept_max - e->nkept : 0;

	return kept < space ? kept : space;
}

/* How many packets a feed may read now (0: none; the device keeps them).
 * Each may have to be held (a hole in front, a reader without room): no
 * more than the hold can take, or a burst read into a nearly full hold
 * would be dropped. Without a hole, no more than the reader has room for
 * (a message each at least); a hole waiting for its copy reads on; a hold
 * that can take nothing gives its hole up. */
static unsigned feed_want(struct hpn_pktep *e, unsigned want)
{
	uint32_t space = feed_space(e), room;

	if (!hpn_feed_hole(e->feed)) {
		room = hpn_pk_plain_room(e);
		if (room < want)
			want = room;
		if (!want)
			return 0;
	}
	if (!space) {
		while (!space && hpn_feed_give_up(e->feed))
			space = feed_space(e);
		hpn_pk_feed_tick(e, e->now, false);
		if (hpn_feed_backlog(e->feed))
			return 0; /* what followed the hole waits for the reader */
	}
	if (space < want)
		want = space ? space : 1; /* one: heartbeats and the hole's own fill need no storage */
	return want;
}

/* One receive call: datagrams into conns, messages into the queue.
 * Returns the datagrams read or -errno. */
static int receive(struct hpn_pktep *e)
{
	int r;

	unsigned want = PK_BURST;

	/* Top the reserve up in bulk, not one buffer per message. */
	if (e->ncache < HPN_CONN_BATCH_MAX)
		hpn_pk_refill(e);
	/* A feed's packets that wait for the reader go first; while some
	 * still wait, new ones stay in the device. */
	if (e->feed && hpn_feed_backlog(e->feed)) {
		hpn_pk_feed_tick(e, e->now, false);
		if (hpn_feed_backlog(e->feed))
			return 0;
	}
	if (e->feed && !(want = feed_want(e, want)))
		return 0;
	/* Raw datagrams wait in the device (the socket buffer) while the
	 * reader has no room for them: read, they could only be dropped. */
	if (e->ccfg.raw || (e->plain && !e->feed)) {
		uint32_t room = hpn_msgq_room(&e->q) < e->ncache ? hpn_msgq_room(&e->q) : e->ncache;

		if (room < want)
			want = room;
		if (!want)
			return 0;
	}
	r = e->io->recv(e->io_arg, e->rx_d, want);
	if (r == 0)
		e->rx_empty++;
	if (r == 0 && e->feed_deadline != UINT64_MAX && hpn_now_ns() >= e->feed_deadline)
		hpn_pk_feed_tick(e, hpn_now_ns(), true); /* every line is empty: a hole that waited long enough is a gap */
	if (r <= 0)
		return r;
	/* One clock read per burst: RTT samples, liveness. (Raw datagrams
	 * need only the liveness; taking it from the core's progress calls
	 * instead declared live peers dead under ThreadSanitizer, where
	 * those calls come seconds apart.) */
	e->now = hpn_now_ns();
	if (e->now - e->m2r_at >= 10 * MS) { /* NTP slews it 5 us in 10 ms at most */
		e->m2r = hpn_real_ns() - hpn_now_ns();
		e->m2r_at = e->now;
	}
	for (int i = 0; i < r; i++) {
		e->cur = &e->rx_d[i];
		e->cur_ts = (e->rx_d[i].rx_ns ? e->rx_d[i].rx_ns : e->now) + e->m2r;
		input(e, &e->rx_d[i]);
	}
	e->cur = NULL;
	if (e->feed) {
		if (e->now >= e->feed_deadline)
			hpn_pk_feed_tick(e, e->now, false); /* a full hold's hole; gaps wait for an empty read */
		hpn_pk_feed_sync(e);
	}
	if (e->io->rx_done)
		e->io->rx_done(e->io_arg, e->rx_d, (unsigned)r);
	for (int i = 0; i < r; i++) {
		e->rx_d[i].data = e->rx_d[i].buf; /* it may have been lent */
		e->rx_d[i].len = e->rx_room; /* room again for the next call */
		e->rx_d[i].rx_ns = 0;
		e->rx_d[i].flags = 0;
		e->rx_d[i].dst_ip = 0;
		e->rx_d[i].dst_port = 0;
	}
	hpn_pk_flush(e);
	sweep(e);
	return r;
}

/* Room again (the application took messages): conns with a backlog
 * deliver it and reopen their windows. */
static void kick(struct hpn_pktep *e)
{
	e->starved = false;
	e->cur_ts = hpn_real_ns(); /* a backlog's messages: the time they reach the reader */
	hpn_pk_refill(e);
	for (uint32_t j = 0; j < e->npeers; j++)
		hpn_conn_kick(&e->peers[e->active[j]].conn, e->now);
	hpn_pk_flush(e);
}

int hpn_pktep_rx_burst(struct hpn_pktep *e, struct hpn_msg *msgs, unsigned n)
{
	unsigned got = hpn_msgq_pop(&e->q, msgs, n);
	int r;

	if (e->starved && e->q.n < PK_QUEUE / 2)
		kick(e);
	if (got == n)
		return (int)got;
	r = receive(e);
	if (r < 0)
		return got ? (int)got : r;
	if (r == 0) {
		/* Nothing came: run the timers now and then, so retransmission
		 * is not held to the core's millisecond timer (raw datagrams
		 * have nothing to resend: the core's timer is enough). */
		if (!got && !e->ccfg.raw && !(++e->idle_polls & 31))
			hpn_pktep_progress(e, hpn_now_ns());
		return (int)got;
	}
	return (int)(got + hpn_msgq_pop(&e->q, msgs + got, n - got));
}
