/* SPDX-License-Identifier: MIT */
/*
 * rdma.c - RDMA verbs backend: RC queue pairs over rdma-core, connections
 * with librdmacm (host:port like every other backend).
 *
 * Shape (one endpoint):
 *   - per device: a context, PD, send CQ, receive CQ and SRQ, created when
 *     a connection first tells us the device (rdma_cm resolves it from the
 *     address and the route: a wildcard listen takes connections on every
 *     device, a connect uses the one its route picks; dev= pins one); all
 *     peers on a device share them, so receive buffers are pooled across
 *     peers instead of posted per QP;
 *   - the core's whole buffer pool registered once per device (one MR):
 *     zero-copy sends go straight from pool buffers, receives land in pool
 *     buffers handed to the application without a copy;
 *   - small messages go inline (IBV_SEND_INLINE) from the caller's memory;
 *   - sends are signaled every `signal_every` work requests; RC completes
 *     in order, so one completion releases every buffer before it;
 *   - receives are replenished in batches from rx_burst;
 *   - a slow receiver is never overrun: RC answers a missing receive
 *     buffer with RNR NAKs and the sender's hardware retries (rnr_retry 7
 *     means forever), so back-pressure reaches the sender as a full send
 *     queue (-EAGAIN).
 * Connection events (rdma_cm) become peer events; a dead peer's kernel
 * tears its connection down, which arrives here as DISCONNECTED.
 */
#include <hpn/plugin.h>

#include "msgq.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <netdb.h>
#include <pthread.h>
#include <rdma/rdma_cma.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include "peerid.h"
#include "rdma_wire.h"
#include "sq.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define BURST_MAX 256
#define QTAB_EMPTY UINT32_MAX
#define RESOLVE_MS 2000
#define CONNECT_RETRY_NS 250000000ull /* connect_again() unless connect_retry_ms= says */
#define CONNECT_RETRY_MAX_NS 4000000000ull /* then rdma_cm's own resend comes first */
#define ASYNC_NS 5000000ull /* read device events every 5 ms: not per message */
#define SILENT_TICKS 4 /* keepalive ticks (peer_timeout_ms / 4) of silence: gone */
#define SCAN_NS 1000000000ull /* look for removed devices every second (dev_scan) */
#define MAX_DEVS 4 /* devices per endpoint: qtab keys hold the index above a 24-bit QPN */

enum peer_state { P_FREE = 0, P_RESOLVING, P_CONNECTING, P_UP, P_CLOSING };

struct rdma_dev;

struct rdma_peer {
	struct rdma_cm_id *id;
	struct ibv_qp *qp;
	struct rdma_dev *d; /* the device its queue pair is on (NULL until then) */
	uint32_t lkey, inline_size; /* the pool's key on d, and what this queue pair sends inline */
	hpn_peer_t pid; /* slot | generation << slot_bits (peerid.h): never reused */
	uint8_t state;
	bool outgoing;
	uint32_t tx_max; /* the largest message to send it: ours, or less if its hello says so */
	struct hpn_sq sq; /* what each in-flight send holds (sq.h) */

	/* Write-with-immediate ring (wimm=on, both sides): small messages are
	 * RDMA-written into the receiver's ring for this peer; the immediate
	 * carries the length. Credits = ring slots the sender may still fill;
	 * the receiver returns them in batches. Without credits, or for
	 * bigger messages, plain sends are used: one QP keeps them in order. */
	bool wimm;
	uint8_t *ring;         /* ours: the peer writes here */
	struct ibv_mr *ring_mr;
	uint32_t ring_tail;    /* next slot we read (wraps at wimm_slots: no division per message) */
	uint32_t unreported;   /* slots freed, not yet credited back */
	uint64_t r_addr;       /* theirs: we write there */
	uint32_t r_rkey, r_slots, r_slot, r_head; /* r_head: next slot we write, wraps at r_slots */
	uint32_t credits;
	bool sent;            /* posted something since the last keepalive tick */
	bool heard;           /* received something since the last keepalive tick */
	uint8_t silent;       /* keepalive ticks in a row without hearing from it */
	bool bye;             /* its goodbye arrived: gone once what came before is taken */

	/* Outgoing, not up yet: where to, when to start over (connect_again),
	 * and when to give up. Closing (P_CLOSING): when to stop waiting. */
	struct sockaddr_storage dst;
	uint64_t retry_at_ns, retry_ns, deadline_ns;
};

/* Device events handed to one endpoint (poll_async), under async_mu. */
#define INBOX_QPS 16
struct async_inbox {
	uint32_t port_down, port_up; /* bit n: port n went down / came up */
	bool fatal;                  /* the device failed */
	unsigned nqp;                /* broken queue pairs (more are seen by their completions) */
	uint32_t qpn[INBOX_QPS];
	enum ibv_event_type qp_event[INBOX_QPS];
};

/* One device an endpoint has connections on: what its peers share. */
struct rdma_dev {
	struct hpn_pep *u;
	uint32_t idx; /* in u->devs: the high byte of its qtab keys */
	struct ibv_context *ctx; /* NULL: a free slot */
	struct ibv_pd *pd;
	struct ibv_comp_channel *cc;
	struct ibv_cq *scq, *rcq;
	struct ibv_srq *srq;
	struct ibv_mr *mr;
	bool armed;
	bool drained; /* its receive CQ was polled empty since the last keepalive tick */
	bool has_wc; /* a completion found while arming, for the next rx_burst */
	struct ibv_wc wc_saved;
	uint32_t rx_depth, rx_posted, tx_depth, inline_size;
	bool inline_known; /* inline_req made a queue pair: asked for again, never halved */
	uint32_t inline_req;
	/* Signaled sends posted whose completion is not reaped yet: a send
	 * polls the send CQ only when one is due (progress always does). */
	uint32_t sig_out;
	/* Posted receives by slot (the wr_id): a lost device's are given back
	 * to the pool, since an SRQ's requests are never flushed. */
	void **rx_buf;
	uint32_t *rx_free, rx_nfree, rx_slots;
	struct rdma_dev *async_next; /* on async_devs while set up */
	struct async_inbox inbox;    /* its events for us, read by anyone (async_mu) */
	char name[IBV_SYSFS_NAME_MAX];
};

struct hpn_pep {
	struct hpn_core *core;
	struct hpn_caps *caps;
	struct hpn_pool *pool;
	struct hpn_stats *st;
	struct rdma_event_channel *ec;
	struct rdma_cm_id *listen_id;
	/* What hpn_listen asked for: when its device goes (rdma link delete),
	 * the listen goes with it, and is made again once a device has that
	 * address (dev_scan, every second). */
	struct sockaddr_storage listen_addr;
	char listen_spec[80];
	bool listen_lost;

	struct rdma_dev devs[MAX_DEVS];
	uint32_t ndevs; /* slots below this may be in use (ctx set); the last one is */
	struct rdma_dev *one; /* the only device in use, if exactly one: rx_burst's fast path */
	uint32_t rx_next; /* the device rx_burst looks at first (fairness) */
	void *mem;
	size_t mem_len;
	uint64_t bufs;
	int epfd;
	struct hpn_msgq pend; /* messages taken early (a peer left), in order */

	struct rdma_peer *peers;
	uint32_t max_peers;
	struct hpn_peer_slots slots; /* ids and free slots (peerid.h, as the packet layer's) */
	uint32_t *qtab; /* qp_num -> peer index, open addressing */
	uint32_t qmask;
	/* The last peer found by its queue pair: completions come in runs
	 * from one peer. Cleared whenever the table is rebuilt (a peer left). */
	struct rdma_peer *qlast;
	uint32_t qlast_key;

	uint32_t rx_depth, tx_depth, signal_every, inline_req; /* as configured; devices may lower them */
	uint64_t next_async_ns; /* device events are read every ASYNC_NS */
	uint64_t next_scan_ns;  /* removed devices are looked for every SCAN_NS */
	bool byes;              /* some peer's bye is set */
	bool cm_reread;         /* a device was lost: librdmacm must let go of it (dev_scan) */
	uint32_t recv_len, max_msg;
	unsigned burst;
	bool wimm;
	uint32_t wimm_slots, wimm_slot;
	uint8_t ack_timeout; /* 0: rdma_cm's default (packet life time + 1, ~1 s) */
	uint8_t retry_count, rnr_retry;
	uint8_t rnr_timer; /* our queue pairs' min_rnr_timer: a sender's wait after our RNR NAK */
	uint64_t linger_ns;
	uint64_t connect_retry_ns; /* first interval of connect_again(), doubling to 4 s */
	bool cm_more; /* poll_cm stopped at its budget with events left */
	uint64_t keepalive_ns, next_keepalive_ns;
	uint64_t refused, refuse_log_ns; /* connects refused; the last warning (once a second) */
	char dev[64];
};

static const struct hpn_plugin_param rdma_params[] = {
	{"dev", "RDMA device that must carry the connections, e.g. rxe0 (default: whichever the address resolves to)"},
	{"rx_depth", "receive buffers kept posted on the shared receive queue (default 256)"},
	{"tx_depth", "send work requests in flight per peer (default 128)"},
	{"signal_every", "request a send completion every N sends (default 16)"},
	{"inline", "largest message sent inline, capped by the device (default 256)"},
	{"wimm", "on|off: small messages by RDMA write with immediate into a per-peer ring (default off)"},
	{"wimm_slots", "slots of each peer's write-with-immediate ring (default 64)"},
	{"wimm_slot", "bytes per ring slot: larger messages use sends (default 256)"},
	{"ack_timeout", "RC local ACK timeout exponent, 4.096 us * 2^N before a lost packet is sent again, 1..31; "
			"0: rdma_cm's (about 1 s) (default 10: 4.2 ms, a LAN's, chosen by measurement under loss)"},
	{"retry_count", "RC transport retries before the peer is gone, 0..7 (default 7; soft-RoCE takes 7 as for ever)"},
	{"rnr_retry", "RC retries while the receiver has no buffer posted, 0..7; 7: for ever (default 7)"},
	{"rnr_timer", "how long a peer waits before sending again after we had no receive buffer for it, the IB "
		      "encoding 1..31 (12: 0.64 ms, 14: 1.28 ms, 18: 5.12 ms, 31: 491 ms); 0: rdma_cm's, 655 ms (default 12)"},
	{"linger_ms", "how long closing waits for what was sent to be acknowledged, 0..600000 (default 200)"},
	{NULL, NULL},
};

/* ---- peers ------------------------------------------------------------- */

static struct rdma_peer *peer_by_id(struct hpn_pep *u, hpn_peer_t id)
{
	uint32_t idx = hpn_peer_slots_index(&u->slots, id);

	if (unlikely(idx >= u->max_peers))
		return NULL;
	struct rdma_peer *p = &u->peers[idx];

	return p->pid == id && p->state != P_FREE ? p : NULL;
}

/* Slots are taken oldest freed first, so each one's generations last as
 * long as they can; a slot whose generations are used up is retired
 * (peerid.h). */
static struct rdma_peer *peer_new(struct hpn_pep *u, struct rdma_cm_id *id, bool outgoing)
{
	hpn_peer_t pid;
	uint32_t i = hpn_peer_slots_take(&u->slots, &pid);
	struct rdma_peer *p;

	if (i == UINT32_MAX)
		return NULL;
	p = &u->peers[i];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->id = id;
	p->outgoing = outgoing;
	p->state = P_RESOLVING;
	p->tx_max = u->max_msg; /* until its hello says less */
	id->context = p;
	return p;
}

/* The slot of a peer that ends (its state P_FREE from here on) goes back. */
static void peer_free(struct hpn_pep *u, struct rdma_peer *p)
{
	if (p->state == P_FREE)
		return; /* its slot is back already: never twice */
	p->state = P_FREE;
	if (!hpn_peer_slots_put(&u->slots, (uint32_t)(p - u->peers)))
		hpn_log(HPN_LOG_WARN, "rdma: peer slot %u retired: its %u generations are used up",
			(uint32_t)(p - u->peers), u->slots.gen_max);
}

static const char *no_slot_why(const struct hpn_pep *u)
{
	return hpn_peer_slots_why(&u->slots);
}

/* Queue pair numbers are a device's own (24 bits): the key adds which. */
static inline uint32_t qkey(const struct rdma_dev *d, uint32_t qpn)
{
	return (qpn & 0xffffff) | d->idx << 24;
}

/* Multiplicative hash, high bits folded in: the device byte must move the
 * bucket too (devices number their queue pairs alike). */
static inline uint32_t qhash(uint32_t key)
{
	return (key ^ key >> 24) * 2654435761u;
}

static void qtab_put(struct hpn_pep *u, uint32_t key, uint32_t idx)
{
	uint32_t h = qhash(key) & u->qmask;

	while (u->qtab[2 * h] != QTAB_EMPTY)
		h = (h + 1) & u->qmask;
	u->qtab[2 * h] = key;
	u->qtab[2 * h + 1] = idx;
}

static __attribute__((noinline)) struct rdma_peer *peer_by_key(struct hpn_pep *u, uint32_t key)
{
	for (uint32_t h = qhash(key) & u->qmask;; h = (h + 1) & u->qmask) {
		if (u->qtab[2 * h] == QTAB_EMPTY)
			return NULL;
		if (u->qtab[2 * h] == key) {
			u->qlast_key = key;
			return u->qlast = &u->peers[u->qtab[2 * h + 1]];
		}
	}
}

/* The peer a completion came from. Inline, the last peer's check only (a
 * ping-pong, or a burst from one peer, hits it); the table out of line. */
static inline struct rdma_peer *peer_by_qpn(struct hpn_pep *u, const struct rdma_dev *d, uint32_t qpn)
{
	uint32_t key = qkey(d, qpn);

	if (likely(u->qlast && u->qlast_key == key))
		return u->qlast;
	return peer_by_key(u, key);
}

/* Removal is rare: rebuild rather than tombstone. */
static void qtab_rebuild(struct hpn_pep *u)
{
	u->qlast = NULL;
	memset(u->qtab, 0xff, 2 * (u->qmask + 1) * sizeof(*u->qtab));
	for (uint32_t i = 0; i < u->max_peers; i++)
		if (u->peers[i].state != P_FREE && u->peers[i].qp)
			qtab_put(u, qkey(u->peers[i].d, u->peers[i].qp->qp_num), i);
}

/* ---- device resources -------------------------------------------------- */

static int memlock_error(struct hpn_pep *u, int err)
{
	struct rlimit rl;
	char lim[32] = "unknown";

	if (!getrlimit(RLIMIT_MEMLOCK, &rl)) {
		if (rl.rlim_cur == RLIM_INFINITY)
			snprintf(lim, sizeof(lim), "unlimited");
		else
			snprintf(lim, sizeof(lim), "%llu KiB", (unsigned long long)rl.rlim_cur / 1024);
	}
	return hpn_set_error(err, "rdma: cannot register the %zu MiB buffer pool (%s; once per device: each "
			     "registration pins it again); RLIMIT_MEMLOCK is %s: "
			     "raise it (ulimit -l unlimited, LimitMEMLOCK=infinity, or memlock in limits.conf)",
			     u->mem_len >> 20, strerror(-err), lim);
}

/* The buffer a receive request (wr_id) was posted with; its slot is free again. */
static inline void *rx_slot_take(struct rdma_dev *d, uint64_t wr_id)
{
	void *buf = d->rx_buf[wr_id];

	d->rx_buf[wr_id] = NULL;
	d->rx_free[d->rx_nfree++] = (uint32_t)wr_id;
	return buf;
}

/* Every posted receive's buffer back to the pool (its queue is destroyed). */
static void rx_slots_reclaim(struct hpn_pep *u, struct rdma_dev *d)
{
	for (uint32_t i = 0; d->rx_buf && i < d->rx_slots; i++)
		if (d->rx_buf[i])
			hpn_pool_put_bulk(u->pool, &d->rx_buf[i], 1), rx_slot_take(d, i);
}

static int rx_slots_init(struct rdma_dev *d)
{
	d->rx_slots = d->rx_depth;
	d->rx_buf = calloc(d->rx_slots, sizeof(*d->rx_buf));
	d->rx_free = calloc(d->rx_slots, sizeof(*d->rx_free));
	if (!d->rx_buf || !d->rx_free)
		return -ENOMEM;
	for (d->rx_nfree = 0; d->rx_nfree < d->rx_slots; d->rx_nfree++)
		d->rx_free[d->rx_nfree] = d->rx_slots - 1 - d->rx_nfree;
	return 0;
}

static int post_recvs(struct hpn_pep *u, struct rdma_dev *d, uint32_t want)
{
	struct ibv_recv_wr wr[64], *bad;
	struct ibv_sge sge[64];
	void *bufs[64];

	if (want > d->rx_nfree)
		want = d->rx_nfree;
	while (want) {
		unsigned n = want < 64 ? want : 64;

		if (hpn_pool_get_bulk(u->pool, bufs, n) != n) {
			for (n = 0; n < (want < 64 ? want : 64) && hpn_pool_get_bulk(u->pool, &bufs[n], 1); n++)
				;
			if (!n)
				return -ENOBUFS; /* the application holds the pool: retry later */
		}
		/* In locals: the stores below could alias them for the compiler. */
		const uint32_t len = u->recv_len, lkey = d->mr->lkey;
		uint32_t nfree = d->rx_nfree;

		for (unsigned i = 0; i < n; i++) {
			uint32_t slot = d->rx_free[--nfree];

			d->rx_buf[slot] = bufs[i];
			sge[i] = (struct ibv_sge){(uintptr_t)bufs[i], len, lkey};
			wr[i] = (struct ibv_recv_wr){.wr_id = slot, .next = &wr[i + 1], .sg_list = &sge[i], .num_sge = 1};
		}
		wr[n - 1].next = NULL;
		d->rx_nfree = nfree;
		int ret = ibv_post_srq_recv(d->srq, wr, &bad);

		if (ret) {
			/* Return what the device did not take. */
			for (struct ibv_recv_wr *w = bad; w; w = w->next) {
				void *b = rx_slot_take(d, w->wr_id);

				hpn_pool_put_bulk(u->pool, &b, 1);
				n--;
			}
			d->rx_posted += n;
			return -ret;
		}
		d->rx_posted += n;
		want -= n;
	}
	return 0;
}

/* Device events are per device context, and librdmacm opens one context
 * per device for the whole process: endpoints on one device share its
 * event queue. So whoever reads an event hands it to every endpoint's
 * share of that context (each acts on its own peers, in its own thread). */
static pthread_mutex_t async_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rdma_dev *async_devs;

static void async_join(struct rdma_dev *d)
{
	pthread_mutex_lock(&async_mu);
	d->async_next = async_devs;
	async_devs = d;
	memset(&d->inbox, 0, sizeof(d->inbox));
	pthread_mutex_unlock(&async_mu);
}

static void async_leave(struct rdma_dev *d)
{
	pthread_mutex_lock(&async_mu);
	for (struct rdma_dev **e = &async_devs; *e; e = &(*e)->async_next)
		if (*e == d) {
			*e = d->async_next;
			break;
		}
	pthread_mutex_unlock(&async_mu);
}

/* After a device came or went: ndevs ends at the last one in use, and
 * `one` is the only one, if so. */
static void dev_recount(struct hpn_pep *u)
{
	uint32_t live = 0;

	while (u->ndevs && !u->devs[u->ndevs - 1].ctx)
		u->ndevs--;
	u->one = NULL;
	for (uint32_t i = 0; i < u->ndevs; i++)
		if (u->devs[i].ctx) {
			live++;
			u->one = &u->devs[i];
		}
	if (live != 1)
		u->one = NULL;
}

/* Undo a (half-built) device set-up: the slot is free again, and a later
 * connection may set the device up anew. */
static void dev_release(struct hpn_pep *u, struct rdma_dev *d)
{
	async_leave(d);
	if (d->cc && u->epfd >= 0)
		epoll_ctl(u->epfd, EPOLL_CTL_DEL, d->cc->fd, NULL);
	if (d->srq)
		ibv_destroy_srq(d->srq);
	if (d->scq)
		ibv_destroy_cq(d->scq);
	if (d->rcq)
		ibv_destroy_cq(d->rcq);
	if (d->mr)
		ibv_dereg_mr(d->mr);
	if (d->cc)
		ibv_destroy_comp_channel(d->cc);
	if (d->pd)
		ibv_dealloc_pd(d->pd);
	rx_slots_reclaim(u, d);
	free(d->rx_buf);
	free(d->rx_free);
	memset(d, 0, sizeof(*d));
	d->u = u;
	d->idx = (uint32_t)(d - u->devs);
	dev_recount(u);
}

static uint32_t rx_depth_elsewhere(const struct hpn_pep *u, const struct rdma_dev *d)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < u->ndevs; i++)
		if (&u->devs[i] != d && u->devs[i].ctx)
			n += u->devs[i].rx_depth;
	return n;
}

static int dev_setup(struct hpn_pep *u, struct rdma_dev *d, struct ibv_context *ctx, const char *name)
{
	struct ibv_device_attr da;
	struct ibv_srq_init_attr sa = {0};
	struct epoll_event ev = {.events = EPOLLIN};
	uint32_t room = (uint32_t)(u->bufs / 2) - rx_depth_elsewhere(u, d);
	int cqe, ret;

	snprintf(d->name, sizeof(d->name), "%s", name);
	if (ibv_query_device(ctx, &da))
		return hpn_set_error(-errno, "rdma: cannot query %s: %s", name, strerror(errno));
	/* Receives may hold at most half the pool, over all devices: a second
	 * device gets what the first left (rx_depth each when bufs allows). */
	d->rx_depth = u->rx_depth < room ? u->rx_depth : room;
	if (d->rx_depth > (uint32_t)da.max_srq_wr)
		d->rx_depth = (uint32_t)da.max_srq_wr;
	if (d->rx_depth < 16)
		return hpn_set_error(-ENOBUFS, "rdma: no receive buffers left for another device (%s): the "
					       "others hold bufs/2; raise bufs", name);
	d->tx_depth = u->tx_depth < (uint32_t)da.max_qp_wr ? u->tx_depth : (uint32_t)da.max_qp_wr;
	d->tx_depth = hpn_sq_pow2_floor(d->tx_depth); /* slot = counter & mask */
	d->inline_size = u->inline_req;
	if (rx_slots_init(d))
		return hpn_set_error(-ENOMEM, "rdma: out of memory");
	d->ctx = ctx;
	d->pd = ibv_alloc_pd(ctx);
	d->cc = ibv_create_comp_channel(ctx);
	if (!d->pd || !d->cc)
		return hpn_set_error(-ENOMEM, "rdma: cannot allocate a protection domain on %s", name);
	fcntl(d->cc->fd, F_SETFL, fcntl(d->cc->fd, F_GETFL) | O_NONBLOCK);
	/* Device events are read by progress, never waited for. */
	fcntl(ctx->async_fd, F_SETFL, fcntl(ctx->async_fd, F_GETFL) | O_NONBLOCK);
	/* A queue pair in error completes every request, signaled or not:
	 * room for all of them, for every peer. */
	cqe = (int)(d->tx_depth * u->max_peers + 64);
	if (cqe > da.max_cqe || cqe < 0)
		cqe = da.max_cqe;
	d->scq = ibv_create_cq(ctx, cqe, NULL, NULL, 0);
	d->rcq = ibv_create_cq(ctx, (int)d->rx_depth + 64 > da.max_cqe ? da.max_cqe : (int)d->rx_depth + 64,
			       NULL, d->cc, 0);
	sa.attr.max_wr = d->rx_depth;
	sa.attr.max_sge = 1;
	d->srq = ibv_create_srq(d->pd, &sa);
	if (!d->scq || !d->rcq || !d->srq)
		return hpn_set_error(-ENOMEM, "rdma: cannot create completion/receive queues on %s", name);
	/* Local access only: peers write nowhere but the rings (wimm). */
	d->mr = ibv_reg_mr(d->pd, u->mem, u->mem_len, IBV_ACCESS_LOCAL_WRITE);
	if (!d->mr)
		return memlock_error(u, -errno);
	ev.data.fd = d->cc->fd;
	epoll_ctl(u->epfd, EPOLL_CTL_ADD, d->cc->fd, &ev);
	ret = post_recvs(u, d, d->rx_depth);
	if (ret)
		return hpn_set_error(ret, "rdma: cannot post %u receive buffers (%s): raise bufs or lower rx_depth",
				     d->rx_depth, strerror(-ret));
	async_join(d); /* complete: others may read our queues' identities now */
	return 0;
}

/* The device a connection is on (rdma_cm tells us from the address and
 * the route): the endpoint's share of it, set up on its first connection. */
static int ensure_dev(struct hpn_pep *u, struct ibv_context *ctx, struct rdma_dev **out)
{
	const char *name = ibv_get_device_name(ctx->device);
	struct rdma_dev *d = NULL;
	int ret;

	for (uint32_t i = 0; i < MAX_DEVS; i++) {
		if (u->devs[i].ctx == ctx) {
			*out = &u->devs[i];
			return 0;
		}
		if (!u->devs[i].ctx && !d)
			d = &u->devs[i];
	}
	if (u->dev[0] && strcmp(name, u->dev))
		return hpn_set_error(-EXDEV, "rdma: the address resolves to device %s, not dev=%s", name, u->dev);
	if (!d)
		return hpn_set_error(-EXDEV, "rdma: %s would be this endpoint's device number %d: %d is the most",
				     name, MAX_DEVS + 1, MAX_DEVS);
	ret = dev_setup(u, d, ctx, name);
	if (ret) {
		dev_release(u, d);
		return ret;
	}
	if (u->ndevs <= d->idx)
		u->ndevs = d->idx + 1;
	dev_recount(u);
	hpn_log(HPN_LOG_INFO, "rdma: using %s: %u receives posted, %u sends in flight per peer", name, d->rx_depth,
		d->tx_depth);
	*out = d;
	return 0;
}

/* Our receive ring for p, registered for remote writes. */
static int ring_alloc(struct hpn_pep *u, struct rdma_peer *p)
{
	size_t len = (size_t)u->wimm_slots * u->wimm_slot;

	if (!u->wimm)
		return 0;
	if (posix_memalign((void **)&p->ring, 64, len))
		return hpn_set_error(-ENOMEM, "rdma: out of memory for a %zu KiB receive ring", len >> 10);
	memset(p->ring, 0, len);
	p->ring_mr = ibv_reg_mr(p->d->pd, p->ring, len, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	if (!p->ring_mr) {
		free(p->ring);
		p->ring = NULL;
		return memlock_error(u, -errno);
	}
	return 0;
}

static void ring_free(struct rdma_peer *p)
{
	if (p->ring_mr)
		ibv_dereg_mr(p->ring_mr);
	free(p->ring);
	p->ring = NULL;
	p->ring_mr = NULL;
	p->wimm = false;
}

/* Our hello (rdma_wire.h): version, our ring if we have one, and in a
 * reject the reason. */
static struct hpn_rdma_hello hello_mine(const struct hpn_pep *u, const struct rdma_peer *p, uint16_t reject)
{
	struct hpn_rdma_hello h = {.magic = htobe32(HPN_RDMA_MAGIC), .version = htobe16(HPN_RDMA_VERSION),
				   .reject = htobe16(reject), .max_msg = htobe32(u->max_msg)};

	if (p && p->ring) {
		h.slots = htobe32(u->wimm_slots);
		h.slot = htobe32(u->wimm_slot);
		h.rkey = htobe32(p->ring_mr->rkey);
		h.addr = htobe64((uint64_t)(uintptr_t)p->ring);
	}
	return h;
}

/* The other side's hello, from its connect, accept or reject, in host
 * order: 0, or why it is not one we talk to (HPN_RDMA_REJ_NOT_HPN,
 * HPN_RDMA_REJ_VERSION). IB's connection manager pads private data with
 * zeros, so a program that sent none reads as a zero magic. */
static int hello_read(const void *data, uint8_t len, struct hpn_rdma_hello *h)
{
	if (!data || len < sizeof(*h)) {
		memset(h, 0, sizeof(*h));
		return HPN_RDMA_REJ_NOT_HPN;
	}
	memcpy(h, data, sizeof(*h));
	h->magic = be32toh(h->magic);
	h->version = be16toh(h->version);
	h->reject = be16toh(h->reject);
	h->slots = be32toh(h->slots);
	h->slot = be32toh(h->slot);
	h->rkey = be32toh(h->rkey);
	h->max_msg = be32toh(h->max_msg);
	h->addr = be64toh(h->addr);
	if (h->magic != HPN_RDMA_MAGIC)
		return HPN_RDMA_REJ_NOT_HPN;
	return h->version == HPN_RDMA_VERSION ? 0 : HPN_RDMA_REJ_VERSION;
}

/* The other side's ring and limit, from its hello; the ring is used only
 * if both sides have one. */
static void ring_remote(struct rdma_peer *p, const struct hpn_rdma_hello *h)
{
	if (h->max_msg && h->max_msg < p->tx_max)
		p->tx_max = h->max_msg;
	if (!p->ring || !h->slots || !h->slot)
		return;
	p->r_addr = h->addr;
	p->r_rkey = h->rkey;
	p->r_slots = h->slots;
	p->r_slot = h->slot;
	p->credits = h->slots;
	p->wimm = true;
	hpn_log(HPN_LOG_INFO, "rdma: write-with-immediate ring to peer %u: %u slots of %u bytes", p->pid,
		h->slots, h->slot);
}

/* What a hello that is not ours means, for a log line. */
static const char *hello_why(int why, const struct hpn_rdma_hello *h, char *buf, size_t len)
{
	if (why == HPN_RDMA_REJ_VERSION)
		snprintf(buf, len, "it speaks version %u of hpn's rdma protocol, this one %u", h->version,
			 HPN_RDMA_VERSION);
	else
		snprintf(buf, len, "it sent no hpn hello (another RDMA program, or an hpn older than the "
				   "rdma protocol's version 1)");
	return buf;
}

/* The smallest inline size of the endpoint's devices: what caps says. */
static void caps_inline(struct hpn_pep *u)
{
	uint32_t min = u->inline_req;

	for (uint32_t i = 0; i < u->ndevs; i++)
		if (u->devs[i].ctx && u->devs[i].inline_size < min)
			min = u->devs[i].inline_size;
	u->caps->inline_size = min;
}

static int create_qp(struct hpn_pep *u, struct rdma_peer *p)
{
	/* The shared queues exist only after ensure_dev(): fill the attributes
	 * after it, not before. */
	struct rdma_dev *d;
	int ret = ensure_dev(u, p->id->verbs, &d);

	if (ret)
		return ret;
	struct ibv_qp_init_attr qa;
	uint32_t want = d->inline_known ? d->inline_req : d->inline_size;

	/* Devices refuse inline sizes they cannot do: halve until accepted.
	 * The attributes are set afresh each try: a failed rdma_create_qp
	 * may have written the device's own figures back into them (a stale
	 * connect request fails after the queue pair was made - its
	 * initiator gave up - and the halving never reached 0: the server
	 * spun here for ever). Once the device has made one, its inline size
	 * is known and a failure is about something else: no halving (a
	 * backlog of stale requests cost a try per halving each). */
	for (;;) {
		qa = (struct ibv_qp_init_attr){
			.send_cq = d->scq,
			.recv_cq = d->rcq,
			.srq = d->srq,
			.cap = {.max_send_wr = d->tx_depth, .max_send_sge = 1, .max_inline_data = want},
			.qp_type = IBV_QPT_RC,
		};
		if (!rdma_create_qp(p->id, d->pd, &qa))
			break;
		if (!want || d->inline_known)
			return hpn_set_error(-errno, "rdma: cannot create a queue pair on %s: %s", d->name,
					     strerror(errno));
		want /= 2;
	}
	p->qp = p->id->qp;
	p->d = d;
	if (hpn_sq_init(&p->sq, d->tx_depth, u->signal_every))
		return hpn_set_error(-ENOMEM, "rdma: out of memory");
	ret = ring_alloc(u, p);
	if (ret)
		return ret;
	/* Devices report what they really give. */
	d->inline_size = p->inline_size = qa.cap.max_inline_data;
	d->inline_req = want; /* what was asked (a device may report more than it takes asked) */
	d->inline_known = true;
	p->lkey = d->mr->lkey;
	caps_inline(u);
	qtab_put(u, qkey(d, p->qp->qp_num), (uint32_t)(p - u->peers));
	return 0;
}

static struct rdma_conn_param conn_param(const struct hpn_pep *u)
{
	return (struct rdma_conn_param){
		.retry_count = u->retry_count,
		.rnr_retry_count = u->rnr_retry, /* 7: a full receiver delays us; it never drops */
	};
}

/* ack_timeout=: on the connection's id before its QP is made ready (both
 * sides: each times out its own sends). A refusal is logged, not fatal:
 * the connection works with rdma_cm's default. */
static void set_ack_timeout(const struct hpn_pep *u, struct rdma_cm_id *id)
{
	uint8_t t = u->ack_timeout;

	if (t && rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &t, sizeof(t)))
		hpn_log(HPN_LOG_WARN, "rdma: ack_timeout=%u refused (%s): rdma_cm's default applies", t,
			strerror(errno));
}

/* ---- pending messages ------------------------------------------------- */

static void pend_push(struct hpn_pep *u, struct hpn_msg *m)
{
	m->ts_ns = hpn_real_ns(); /* polled now, handed out later */
	if (!hpn_msgq_push(&u->pend, m)) { /* cannot happen: sized for every posted receive */
		HPN_STAT_ADD(u->st->drops, 1);
		hpn_pool_put_bulk(u->pool, &m->data, 1);
	}
}

/* ---- send completions ------------------------------------------------- */

/* Release the buffers of p's sends up to and including request id. */
static void peer_release_sq(struct hpn_pep *u, struct rdma_peer *p, uint32_t id)
{
	void *out[64];
	unsigned n;

	while ((n = hpn_sq_complete(&p->sq, id, out, 64)))
		hpn_pool_put_bulk(u->pool, out, n);
}

static void peer_gone(struct hpn_pep *u, struct rdma_peer *p, int status);

static void reap_dev_sends(struct hpn_pep *u, struct rdma_dev *d)
{
	struct ibv_wc wc[32];
	int n = 32;

	/* Poll again only after a full batch: an empty poll is not free. */
	while (n == 32 && (n = ibv_poll_cq(d->scq, 32, wc)) > 0) {
		/* Flushes of unsignaled requests (a queue pair in error) come
		 * too: never below zero. */
		d->sig_out -= (uint32_t)n < d->sig_out ? (uint32_t)n : d->sig_out;
		for (int i = 0; i < n; i++) {
			struct rdma_peer *p = peer_by_qpn(u, d, wc[i].qp_num);

			if (!p)
				continue; /* a peer already torn down */
			if (wc[i].status == IBV_WC_SUCCESS) {
				/* Acknowledged: the peer's device took it. Not proof
				 * of life (keepalive_tick): the peer's sends to us may
				 * have stopped (IMM_PING, rdma_wire.h). */
				peer_release_sq(u, p, (uint32_t)wc[i].wr_id);
				continue;
			}
			if (wc[i].status == IBV_WC_WR_FLUSH_ERR && p->state == P_UP) {
				/* Its queue pair is in error and we were not told why
				 * (an event lost or overflowed): the connection is gone. */
				hpn_log(HPN_LOG_WARN, "rdma: %s: the connection to peer %u broke (requests flushed)",
					d->name, p->pid);
				peer_gone(u, p, -ECONNRESET);
			} else if (wc[i].status != IBV_WC_WR_FLUSH_ERR) {
				HPN_STAT_ADD(u->st->errors, 1);
				hpn_log(HPN_LOG_WARN, "rdma: %s: send to peer %u failed: %s (vendor error %#x): the connection is gone",
					d->name, p->pid, ibv_wc_status_str(wc[i].status), wc[i].vendor_err);
				if (p->state == P_UP)
					peer_gone(u, p, wc[i].status == IBV_WC_RETRY_EXC_ERR ? -ETIMEDOUT : -ECONNRESET);
			}
		}
	}
}

static void reap_sends(struct hpn_pep *u)
{
	for (uint32_t i = 0; i < u->ndevs; i++)
		if (u->devs[i].scq)
			reap_dev_sends(u, &u->devs[i]);
}

/* Before a send: only devices with a completion due (one signaled request
 * in signal_every) - most sends look at no CQ at all. */
static inline void reap_due(struct hpn_pep *u)
{
	if (likely(u->one)) {
		if (u->one->sig_out)
			reap_dev_sends(u, u->one);
		return;
	}
	for (uint32_t i = 0; i < u->ndevs; i++)
		if (u->devs[i].scq && u->devs[i].sig_out)
			reap_dev_sends(u, &u->devs[i]);
}

/* ---- connection management -------------------------------------------- */

static void teardown(struct hpn_pep *u, struct rdma_peer *p)
{
	if (p->qp) {
		rdma_destroy_qp(p->id);
		p->qp = NULL;
	}
	/* Nothing of this queue pair completes any more: free what it held. */
	if (p->sq.slot) {
		void *out[64];
		unsigned n;

		while ((n = hpn_sq_flush(&p->sq, out, 64)))
			hpn_pool_put_bulk(u->pool, out, n);
		hpn_sq_free(&p->sq);
	}
	ring_free(p);
	if (p->id) {
		if (p->id != u->listen_id)
			rdma_destroy_id(p->id);
		p->id = NULL;
	}
	peer_free(u, p);
	qtab_rebuild(u);
}

static void peer_gone(struct hpn_pep *u, struct rdma_peer *p, int status)
{
	hpn_peer_t pid = p->pid;
	bool announce = p->state != P_CLOSING && (p->state == P_UP || p->outgoing);

	if (p->state == P_UP || p->state == P_CLOSING)
		rdma_disconnect(p->id);
	teardown(u, p);
	if (announce)
		hpn_core_event(u->core, HPN_EV_PEER_GONE, pid, status);
}

/* Refuse a connect: the reject carries our hello with the reason, so an
 * hpn connector can say why and another program at least hears no. The
 * warning comes at most once a second (a connect storm must not flood the
 * log), with the count of all refused. */
static void refuse_connect(struct hpn_pep *u, struct rdma_cm_id *id, uint16_t reason, const char *why)
{
	struct hpn_rdma_hello rej = hello_mine(u, NULL, reason);
	uint64_t now = hpn_now_ns();
	char who[64] = "?";

	u->refused++;
	HPN_STAT_ADD(u->st->drops, 1);
	if (!u->refuse_log_ns || now - u->refuse_log_ns >= 1000000000ull) {
		u->refuse_log_ns = now;
		hpn_addr_format(rdma_get_peer_addr(id), who, sizeof(who));
		hpn_log(HPN_LOG_WARN, "rdma: refusing a connection from %s: %s (%llu refused so far)", who, why,
			(unsigned long long)u->refused);
	}
	rdma_reject(id, &rej, sizeof(rej));
	rdma_destroy_id(id);
}

static void on_connect_request(struct hpn_pep *u, struct rdma_cm_id *id, const void *pdata, uint8_t plen)
{
	struct rdma_conn_param cp = conn_param(u);
	struct hpn_rdma_hello theirs, mine;
	struct rdma_peer *p;
	char why[160];
	int bad = hello_read(pdata, plen, &theirs), ret;

	/* Nothing is set up for a connect that is not an hpn peer's. */
	if (bad) {
		refuse_connect(u, id, (uint16_t)bad, hello_why(bad, &theirs, why, sizeof(why)));
		return;
	}
	/* Nor for one its client already gave up on (its connect timed out and
	 * came again as a new request while this one queued): the connection
	 * manager no longer gives it queue pair attributes. Asked first - one
	 * system call - since making a queue pair for it fails only after the
	 * queue pair was made (librdmacm asks the same), and under load a
	 * backlog of them kept a server from ever reaching the live ones. */
	struct ibv_qp_attr probe = {.qp_state = IBV_QPS_INIT};
	int probe_mask = 0;

	if (rdma_init_qp_attr(id, &probe, &probe_mask)) {
		refuse_connect(u, id, HPN_RDMA_REJ_ERROR,
			       "the request is stale: its client gave up on it (under load a connect is retried as "
			       "a new request)");
		return;
	}
	p = peer_new(u, id, false);
	ret = p ? create_qp(u, p) : -ENOSPC;
	if (!ret) {
		ring_remote(p, &theirs);
		mine = hello_mine(u, p, HPN_RDMA_REJ_NONE);
		cp.private_data = &mine;
		cp.private_data_len = sizeof(mine);
		set_ack_timeout(u, id);
		if (!rdma_accept(id, &cp)) {
			p->state = P_CONNECTING;
			return;
		}
		ret = hpn_set_error(-errno, "rdma: rdma_accept: %s", strerror(errno));
	}
	/* A request whose initiator gave up on it (its connect timed out and
	 * came again as a new request, while this one queued behind others)
	 * fails with EINVAL: say so, it is not the device's fault. */
	snprintf(why, sizeof(why), "%s%s", p ? hpn_last_error() : no_slot_why(u),
		 ret == -EINVAL ? " (a request its client already gave up on fails so: under load a connect "
				  "is retried as a new request)"
				: "");
	if (p) {
		if (p->qp)
			rdma_destroy_qp(id);
		p->qp = NULL;
		p->id = NULL;
		peer_free(u, p);
		ring_free(p);
		hpn_sq_free(&p->sq);
		qtab_rebuild(u);
	}
	refuse_connect(u, id, p ? HPN_RDMA_REJ_ERROR : HPN_RDMA_REJ_FULL, why);
}

/* The IB encoding of min_rnr_timer (1..31; 0 is the longest), in us. */
static uint32_t rnr_timer_us(uint8_t t)
{
	static const uint32_t us[32] = {655360, 10,   20,    30,    40,    60,    80,    120,   160,   240,   320,
					480,    640,  960,   1280,  1920,  2560,  3840,  5120,  7680,  10240, 15360,
					20480,  30720, 40960, 61440, 81920, 122880, 163840, 245760, 327680, 491520};

	return us[t & 31];
}

/* rnr_timer=: rdma_cm leaves min_rnr_timer at 0, which the IB encoding
 * reads as 655 ms: a receiver short of posted buffers for a moment made
 * its sender wait that long before each retry (everything behind it on the
 * queue pair too, keepalives included). The attribute may change in RTS
 * (RTS to RTS), so it is set once the connection is up. */
static void set_rnr_timer(const struct hpn_pep *u, const struct rdma_peer *p)
{
	struct ibv_qp_attr a = {.qp_state = IBV_QPS_RTS, .min_rnr_timer = u->rnr_timer};
	int err;

	if (!u->rnr_timer || !p->qp)
		return;
	err = ibv_modify_qp(p->qp, &a, IBV_QP_STATE | IBV_QP_MIN_RNR_TIMER);
	if (err)
		hpn_log(HPN_LOG_WARN, "rdma: %s: rnr_timer=%u refused (%s): a starved receive queue holds peer %u 655 ms",
			p->d ? p->d->name : "?", u->rnr_timer, strerror(err), p->pid);
}

/* The connection works: from its ESTABLISHED event, or from the first
 * message, which can overtake the event (the other side may send as soon
 * as its own ESTABLISHED arrives): the message must find the peer up, or
 * an answer to it would be refused. */
static void establish(struct hpn_pep *u, struct rdma_peer *p)
{
	if (p->state == P_UP)
		return;
	p->state = P_UP;
	set_rnr_timer(u, p);
	hpn_core_event(u->core, p->outgoing ? HPN_EV_CONNECTED : HPN_EV_PEER_NEW, p->pid, 0);
}

static int cm_status(enum rdma_cm_event_type t, int status)
{
	switch (t) {
	case RDMA_CM_EVENT_REJECTED: return -ECONNREFUSED;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR: return -EHOSTUNREACH;
	case RDMA_CM_EVENT_UNREACHABLE: return -ETIMEDOUT;
	case RDMA_CM_EVENT_DEVICE_REMOVAL: return -ENODEV;
	default: return status < 0 ? status : -ECONNRESET;
	}
}

static void rx_drain_to_pend(struct hpn_pep *u);
static void dev_lost(struct hpn_pep *u, struct rdma_dev *d, int status, const char *what);

static struct rdma_dev *dev_of(struct hpn_pep *u, const struct ibv_context *ctx)
{
	for (uint32_t i = 0; ctx && i < u->ndevs; i++)
		if (u->devs[i].ctx == ctx)
			return &u->devs[i];
	return NULL;
}

/* A connector's accept: from an hpn peer of our version (its ring, if
 * any, taken), or the connection ends here - nothing was sent on it yet,
 * and the application hears -EPROTONOSUPPORT. */
static bool accepted(struct hpn_pep *u, struct rdma_peer *p, const void *pdata, uint8_t plen)
{
	struct hpn_rdma_hello theirs;
	char why[160], who[64] = "?";
	int bad = hello_read(pdata, plen, &theirs);

	if (!bad) {
		ring_remote(p, &theirs);
		return true;
	}
	hpn_addr_format((struct sockaddr *)&p->dst, who, sizeof(who));
	hpn_log(HPN_LOG_WARN, "rdma: %s accepted the connection but is not a peer of ours: %s", who,
		hello_why(bad, &theirs, why, sizeof(why)));
	rdma_disconnect(p->id);
	peer_gone(u, p, -EPROTONOSUPPORT);
	return false;
}

/* A connector's reject, from an hpn peer (its hello says why) or from a
 * port nobody listens on. */
static void rejected(struct rdma_peer *p, const void *pdata, uint8_t plen)
{
	static const char *const reasons[] = {"no reason given", "our connect carried no hello",
					      "we speak another version of hpn's rdma protocol",
					      "it is full (max_peers)", "it failed to set the connection up"};
	struct hpn_rdma_hello theirs;
	char who[64] = "?";
	int bad = hello_read(pdata, plen, &theirs);

	hpn_addr_format((struct sockaddr *)&p->dst, who, sizeof(who));
	if (bad == HPN_RDMA_REJ_NOT_HPN)
		hpn_log(HPN_LOG_INFO, "rdma: %s refused the connection (nothing listens there?)", who);
	else if (bad == HPN_RDMA_REJ_VERSION)
		hpn_log(HPN_LOG_WARN, "rdma: %s refused the connection: it speaks version %u of hpn's rdma "
				      "protocol, this one %u", who, theirs.version, HPN_RDMA_VERSION);
	else
		hpn_log(HPN_LOG_WARN, "rdma: %s refused the connection: %s", who,
			theirs.reject < sizeof(reasons) / sizeof(reasons[0]) ? reasons[theirs.reject] : "reason unknown");
}

/* What the application hears of a reject: another version (either side's
 * hello says so) is -EPROTONOSUPPORT, anything else -ECONNREFUSED. */
static int reject_status(enum rdma_cm_event_type t, int status, const void *pdata, uint8_t plen)
{
	struct hpn_rdma_hello theirs;
	int bad = hello_read(pdata, plen, &theirs);

	if (bad == HPN_RDMA_REJ_VERSION ||
	    (!bad && (theirs.reject == HPN_RDMA_REJ_VERSION || theirs.reject == HPN_RDMA_REJ_NOT_HPN)))
		return -EPROTONOSUPPORT;
	return cm_status(t, status);
}

static void handle_cm(struct hpn_pep *u, struct rdma_cm_id *id, enum rdma_cm_event_type t, int status,
		      const void *pdata, uint8_t plen)
{
	struct rdma_peer *p = id->context;
	struct rdma_conn_param cp = conn_param(u);
	struct hpn_rdma_hello mine;

	if (t == RDMA_CM_EVENT_CONNECT_REQUEST) {
		on_connect_request(u, id, pdata, plen);
		return;
	}
	if (t == RDMA_CM_EVENT_DEVICE_REMOVAL && dev_of(u, id->verbs)) {
		dev_lost(u, dev_of(u, id->verbs), -ENODEV, "was removed");
		return;
	}
	if (!p || p->state == P_FREE)
		return;
	switch (t) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		set_ack_timeout(u, id);
		if (rdma_resolve_route(id, RESOLVE_MS))
			peer_gone(u, p, -errno);
		break;
	case RDMA_CM_EVENT_ROUTE_RESOLVED: {
		int err = create_qp(u, p);

		if (err) {
			hpn_log(HPN_LOG_ERROR, "%s", hpn_last_error());
			peer_gone(u, p, err); /* e.g. -EXDEV: the route leaves by another device than dev= */
			break;
		}
		mine = hello_mine(u, p, HPN_RDMA_REJ_NONE);
		cp.private_data = &mine;
		cp.private_data_len = sizeof(mine);
		if (rdma_connect(id, &cp)) {
			peer_gone(u, p, -errno);
		} else {
			p->state = P_CONNECTING;
			p->retry_at_ns = hpn_now_ns() + p->retry_ns; /* the request is out: connect_again() */
		}
		break;
	}
	case RDMA_CM_EVENT_ESTABLISHED:
		if (p->outgoing && !accepted(u, p, pdata, plen))
			break;
		establish(u, p);
		break;
	case RDMA_CM_EVENT_REJECTED:
		if (p->outgoing)
			rejected(p, pdata, plen);
		peer_gone(u, p, reject_status(t, status, pdata, plen));
		break;
	case RDMA_CM_EVENT_DISCONNECTED:
		reap_sends(u);        /* release what completed before the goodbye */
		rx_drain_to_pend(u);  /* and keep what the peer sent before it */
		if (p->state != P_FREE)
			peer_gone(u, p, 0);
		break;
	case RDMA_CM_EVENT_TIMEWAIT_EXIT:
		break;
	default:
		peer_gone(u, p, cm_status(t, status));
		break;
	}
}

/* Connection events, as many as a short budget holds (one at least): a
 * burst of connect requests - each sets a queue pair up, a millisecond or
 * more apiece, far more on a loaded machine - must not hold up the peers
 * already connected (their messages, acknowledgements, keepalives) until
 * the last request is done; seen with 16 clients at once, one progress
 * call lasted 4.6 s and every connected peer timed the server out. The
 * rest wait for the next call (the channel's fd stays readable). */
#define CM_BUDGET_NS 2000000ull

static void poll_cm(struct hpn_pep *u)
{
	struct rdma_cm_event *e;
	uint64_t t0 = 0;

	u->cm_more = false;
	for (unsigned n = 0;; n++) {
		if (n && hpn_now_ns() - t0 >= CM_BUDGET_NS) {
			u->cm_more = true; /* the receive path takes the next ones (rx_burst) */
			break;
		}
		if (rdma_get_cm_event(u->ec, &e))
			break;
		struct rdma_cm_id *id = e->id;
		enum rdma_cm_event_type t = e->event;
		int status = e->status;
		uint8_t pdata[64], plen = 0;

		if (e->param.conn.private_data && e->param.conn.private_data_len) {
			plen = e->param.conn.private_data_len < sizeof(pdata) ? e->param.conn.private_data_len
									      : sizeof(pdata);
			memcpy(pdata, e->param.conn.private_data, plen);
		}
		/* Ack first: destroying an id waits for its events' acks. */
		rdma_ack_cm_event(e);
		if (!n)
			t0 = hpn_now_ns();
		handle_cm(u, id, t, status, plen ? pdata : NULL, plen);
	}
}

/* ---- control ----------------------------------------------------------- */

static int no_device(char *why, size_t len)
{
	DIR *d = opendir("/sys/class/infiniband");
	bool any = false;
	struct dirent *de;

	while (d && (de = readdir(d)))
		any |= de->d_name[0] != '.';
	if (d)
		closedir(d);
	if (any)
		snprintf(why, len, "the kernel has RDMA devices but no user-space provider matches them: "
				   "install ibverbs-providers (rdma-core)");
	else
		snprintf(why, len, "no RDMA device: load a driver, or soft-RoCE with "
				   "'modprobe rdma_rxe; rdma link add rxe0 type rxe netdev <if>' (tools/hpn-rxe)");
	return -ENODEV;
}

static int rdma_probe_(struct hpn_caps *caps, char *why, size_t why_len)
{
	int n = 0;
	struct ibv_device **list = ibv_get_device_list(&n);

	caps->max_msg_size = 1u << 30;
	caps->inline_size = 256;
	caps->flags = HPN_CAP_ZERO_COPY | HPN_CAP_RELIABLE | HPN_CAP_ORDERED | HPN_CAP_KERNEL_BYPASS |
		      HPN_CAP_NEEDS_PRIV;
	caps->headroom = 0;
	caps->preference = 100;
	if (list)
		ibv_free_device_list(list);
	if (n <= 0)
		return no_device(why, why_len);
	return 0;
}

static void goodbye(struct rdma_peer *p);
static void goodbyes(struct hpn_pep *u);

static bool sends_pending(const struct hpn_pep *u)
{
	for (uint32_t i = 0; i < u->max_peers; i++) {
		const struct rdma_peer *p = &u->peers[i];

		if ((p->state == P_UP || p->state == P_CLOSING) && hpn_sq_inflight(&p->sq))
			return true;
	}
	return false;
}

/* Closing the endpoint: what was posted must not
 * die with the queue pair - on a lossy wire the last sends may still be
 * waiting for a retransmission. Make the newest request ask for a
 * completion, then reap until everything is acknowledged, the peer fails,
 * or linger_ms passes (the packet layer's linger, for RC). */
static void linger(struct hpn_pep *u)
{
	uint64_t t0 = hpn_now_ns();

	for (uint32_t i = 0; i < u->max_peers; i++) {
		struct rdma_peer *p = &u->peers[i];

		if (p->state == P_UP)
			goodbye(p); /* signaled (a full queue's newest request is already) */
	}
	while (sends_pending(u) && hpn_now_ns() - t0 < u->linger_ns)
		reap_sends(u);
}

static void rdma_close_(struct hpn_pep *u)
{
	if (!u)
		return;
	if (u->peers)
		linger(u);
	for (uint32_t i = 0; u->peers && i < u->max_peers; i++) {
		struct rdma_peer *p = &u->peers[i];

		if (p->state == P_UP || p->state == P_CLOSING)
			rdma_disconnect(p->id);
		if (p->state != P_FREE)
			teardown(u, p);
	}
	if (u->listen_id)
		rdma_destroy_id(u->listen_id);
	for (uint32_t i = 0; i < u->ndevs; i++)
		dev_release(u, &u->devs[i]);
	if (u->ec)
		rdma_destroy_event_channel(u->ec);
	if (u->epfd >= 0)
		close(u->epfd);
	free(u->peers);
	free(u->qtab);
	hpn_peer_slots_fini(&u->slots);
	hpn_msgq_fini(&u->pend);
	free(u);
}

static int check_dev_name(const char *dev)
{
	int n = 0;
	struct ibv_device **list = ibv_get_device_list(&n);
	char have[256] = "";
	bool found = false;

	for (int i = 0; list && i < n; i++) {
		const char *name = ibv_get_device_name(list[i]);

		found |= !strcmp(name, dev);
		snprintf(have + strlen(have), sizeof(have) - strlen(have), "%s%s", i ? ", " : "", name);
	}
	if (list)
		ibv_free_device_list(list);
	if (!found)
		return hpn_set_error(-ENODEV, "rdma: no device '%s' (have: %s)", dev, n > 0 ? have : "none");
	return 0;
}

static int rdma_open_(struct hpn_core *core, struct hpn_caps *caps, struct hpn_pep **out)
{
	struct hpn_pep *u = calloc(1, sizeof(*u));
	uint64_t v, bufs, bufsz, burst, peers;
	char why[256];
	int ret = 0;
	struct epoll_event ev = {.events = EPOLLIN};

	if (!u)
		return hpn_set_error(-ENOMEM, "rdma: out of memory");
	u->epfd = -1;
	u->core = core;
	for (uint32_t i = 0; i < MAX_DEVS; i++)
		u->devs[i] = (struct rdma_dev){.u = u, .idx = i};
	u->caps = caps;
	u->st = hpn_core_stats(core);
	ret = rdma_probe_(caps, why, sizeof(why));
	if (ret) {
		hpn_set_error(ret, "rdma: %s", why);
		goto fail;
	}
	const struct hpn_core_opts *co = hpn_core_opts(core);

	bufs = co->bufs;
	u->bufs = bufs;
	bufsz = co->buf_size;
	burst = co->burst;
	peers = co->max_peers;
	/* Unset, it follows a small pool (at most half of it posted) rather
	 * than refuse bufs= with a complaint about a key nobody gave. */
	ret = ret ?: hpn_core_cfg_u64(core, "rx_depth", bufs / 2 < 256 ? (bufs / 2 < 16 ? 16 : bufs / 2) : 256, 16,
				      1u << 16, &v);
	u->rx_depth = (uint32_t)v;
	ret = ret ?: hpn_core_cfg_u64(core, "tx_depth", 128, 8, 1u << 15, &v);
	u->tx_depth = (uint32_t)v;
	ret = ret ?: hpn_core_cfg_u64(core, "signal_every", 16, 1, 1024, &v);
	u->signal_every = (uint32_t)v;
	ret = ret ?: hpn_core_cfg_u64(core, "inline", 256, 0, 4096, &v);
	u->inline_req = (uint32_t)v;
	int wimm = 0;

	u->keepalive_ns = co->peer_timeout_ms * 1000000ull / 4;
	ret = ret ?: hpn_core_cfg_bool(core, "wimm", 0, &wimm);
	u->wimm = wimm;
	ret = ret ?: hpn_core_cfg_u64(core, "wimm_slots", 64, 4, 1u << 16, &v);
	u->wimm_slots = (uint32_t)v;
	ret = ret ?: hpn_core_cfg_u64(core, "wimm_slot", 256, 8, 1u << 20, &v);
	u->wimm_slot = (uint32_t)v;
	/* 10 (4.2 ms): rdma_cm's default costs every tail loss about a second;
	 * 4.2 ms held hpnbench's p99.9 under 1% loss each way to ~6 ms on a
	 * soft-RoCE wire (12: 10.7 ms, 14: 35 ms, default: 730 ms), and is still
	 * ~1000 round trips of a LAN, so delayed ACKs are not taken for losses.
	 * With retry_count 7 a silent peer fails its QP after 35-140 ms. */
	ret = ret ?: hpn_core_cfg_u64(core, "ack_timeout", 10, 0, 31, &v);
	u->ack_timeout = (uint8_t)v;
	/* 7, the spec's most: 7 retries, then the peer is gone. Soft-RoCE alone
	 * takes 7 as "for ever" (the spec does so only for RNR retries): there
	 * a killed peer whose one disconnect request is lost is noticed only
	 * by our silence timer (keepalive_tick). 6 would notice it, but rxe
	 * resets its count only per completed message, so under 5% loss it
	 * killed connections carrying 64 KiB messages (measured: 0 of 4 runs
	 * of the conformance sizes case passed, 4 of 4 with 7). */
	ret = ret ?: hpn_core_cfg_u64(core, "retry_count", 7, 0, 7, &v);
	u->retry_count = (uint8_t)v;
	ret = ret ?: hpn_core_cfg_u64(core, "rnr_retry", 7, 0, 7, &v);
	u->rnr_retry = (uint8_t)v;
	/* 12 (0.64 ms), perftest's: a full receiver is a pause, not an outage
	 * (rxe's timers tick every 4 ms, so there it is ~4 ms). */
	ret = ret ?: hpn_core_cfg_u64(core, "rnr_timer", 12, 0, 31, &v);
	u->rnr_timer = (uint8_t)v;
	ret = ret ?: hpn_core_cfg_u64(core, "linger_ms", 200, 0, 600000, &v);
	u->linger_ns = v * 1000000;
	u->connect_retry_ns = hpn_core_cfg(core, "connect_retry_ms") ? co->connect_retry_ms * 1000000 : CONNECT_RETRY_NS;
	if (u->connect_retry_ns > CONNECT_RETRY_MAX_NS)
		u->connect_retry_ns = CONNECT_RETRY_MAX_NS;
	if (ret)
		goto fail;
	if (u->keepalive_ns && rnr_timer_us(u->rnr_timer) * 1000 >= u->keepalive_ns) {
		/* A peer waiting out our RNR NAK sends nothing, keepalives neither. */
		ret = hpn_set_error(-EINVAL, "config: rnr_timer=%u (%.2f ms) must be under a quarter of peer_timeout_ms (%llu)",
				    u->rnr_timer, rnr_timer_us(u->rnr_timer) / 1000.0,
				    (unsigned long long)co->peer_timeout_ms);
		goto fail;
	}
	if (u->rx_depth > bufs / 2) {
		ret = hpn_core_cfg(core, "rx_depth")
			      ? hpn_set_error(-EINVAL, "config: rx_depth=%u needs bufs >= %u (receives may hold at most "
						       "half the pool)", u->rx_depth, 2 * u->rx_depth)
			      : hpn_set_error(-EINVAL, "config: bufs=%llu too small for rdma: it keeps at least 16 receives "
						       "posted, at most half the pool (bufs >= 32)", (unsigned long long)bufs);
		goto fail;
	}
	if (u->signal_every > u->tx_depth / 2)
		u->signal_every = u->tx_depth / 2;
	const char *dev = hpn_core_cfg(core, "dev");

	if (dev && *dev) {
		ret = check_dev_name(dev);
		if (ret)
			goto fail;
		snprintf(u->dev, sizeof(u->dev), "%s", dev);
	}
	u->burst = (unsigned)burst;
	u->max_peers = (uint32_t)peers;
	u->recv_len = bufsz > (1u << 30) ? 1u << 30 : (uint32_t)bufsz;
	u->max_msg = u->recv_len;
	if (u->wimm && u->wimm_slot > u->recv_len) {
		/* A ring message is taken into the receive buffer its
		 * immediate consumed: one pool buffer. */
		ret = hpn_set_error(-EINVAL, "config: wimm_slot=%u is larger than buf_size=%u", u->wimm_slot,
				    u->recv_len);
		goto fail;
	}
	u->qmask = 1;
	while (u->qmask + 1 < 2 * u->max_peers)
		u->qmask = (u->qmask << 1) | 1;
	u->peers = calloc(u->max_peers, sizeof(*u->peers));
	u->qtab = malloc(2 * (u->qmask + 1) * sizeof(*u->qtab));
	/* Every posted receive may be taken early (a peer leaving): room for
	 * all, on every device (together they post at most half the pool). */
	ret = hpn_msgq_init(&u->pend, (MAX_DEVS * u->rx_depth < bufs / 2 ? MAX_DEVS * u->rx_depth : (uint32_t)(bufs / 2)) + 64);
	ret = hpn_peer_slots_init(&u->slots, u->max_peers) ? -ENOMEM : ret;
	u->ec = rdma_create_event_channel();
	u->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!u->peers || !u->qtab || ret || !u->ec || u->epfd < 0) {
		ret = hpn_set_error(-ENOMEM, "rdma: cannot create the connection manager channel: %s",
				    strerror(errno));
		goto fail;
	}
	qtab_rebuild(u);
	fcntl(u->ec->fd, F_SETFL, fcntl(u->ec->fd, F_GETFL) | O_NONBLOCK);
	ev.data.fd = u->ec->fd;
	epoll_ctl(u->epfd, EPOLL_CTL_ADD, u->ec->fd, &ev);
	caps->max_msg_size = u->max_msg;
	caps->inline_size = u->inline_req;
	*out = u;
	return 0;
fail:
	rdma_close_(u);
	return ret;
}

static int rdma_mem_register_(struct hpn_pep *u, void *addr, size_t len)
{
	/* The device is known only once a connection resolves: register then. */
	u->mem = addr;
	u->mem_len = len;
	u->pool = hpn_core_pool(u->core);
	return 0;
}

static int resolve(const char *spec, bool passive, struct sockaddr_storage *out)
{
	return hpn_addr_parse(spec, passive, SOCK_STREAM, out, NULL);
}

static int format_addr(struct sockaddr *sa, char *buf, size_t len)
{
	return hpn_addr_format(sa, buf, len);
}

static bool is_loopback(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
	return a->ss_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

static int rdma_listen_(struct hpn_pep *u, const char *spec)
{
	struct sockaddr_storage a;
	int ret = resolve(spec, true, &a);

	if (ret)
		return ret;
	if (u->listen_id)
		return hpn_set_error(-EISCONN, "rdma: already listening");
	if (u->listen_lost)
		return hpn_set_error(-EISCONN, "rdma: already listening on %s (its device is gone: the listen comes back "
					       "with an RDMA device that has the address)", u->listen_spec);
	if (is_loopback(&a)) /* rdma_cm binds it, but nothing can connect to it */
		return hpn_set_error(-EADDRNOTAVAIL, "rdma: %s is loopback: no RDMA device has it (listen on a device's "
						     "address, or 0.0.0.0 for every device)", spec);
	if (rdma_create_id(u->ec, &u->listen_id, NULL, RDMA_PS_TCP))
		return hpn_set_error(-errno, "rdma: rdma_create_id: %s", strerror(errno));
	if (rdma_bind_addr(u->listen_id, (struct sockaddr *)&a)) {
		ret = -errno;
		rdma_destroy_id(u->listen_id);
		u->listen_id = NULL;
		return hpn_set_error(ret, "rdma: cannot bind %s: %s (is there an RDMA device with that address?)",
				     spec, strerror(-ret));
	}
	if (rdma_listen(u->listen_id, 64)) {
		ret = -errno;
		rdma_destroy_id(u->listen_id);
		u->listen_id = NULL;
		return hpn_set_error(ret, "rdma: cannot listen on %s: %s", spec, strerror(-ret));
	}
	/* The port it got (port 0 asks for any): made again, it is the same. */
	struct sockaddr *la = rdma_get_local_addr(u->listen_id);

	memcpy(&u->listen_addr, la, la->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	if (format_addr(la, u->listen_spec, sizeof(u->listen_spec)))
		snprintf(u->listen_spec, sizeof(u->listen_spec), "%s", spec);
	/* Bound to one device's address: set it up now (a wildcard address
	 * listens on every device; each is set up at its first connection). */
	if (u->listen_id->verbs) {
		struct rdma_dev *d;

		return ensure_dev(u, u->listen_id->verbs, &d);
	}
	return 0;
}

/* The listen lost with its device, made again once a device has the
 * address (quietly until then: a bind to an address no device has fails
 * at once). */
static void relisten(struct hpn_pep *u)
{
	struct rdma_cm_id *id;
	struct rdma_dev *d;

	if (rdma_create_id(u->ec, &id, NULL, RDMA_PS_TCP))
		return;
	if (rdma_bind_addr(id, (struct sockaddr *)&u->listen_addr) || rdma_listen(id, 64) ||
	    (id->verbs && ensure_dev(u, id->verbs, &d))) {
		rdma_destroy_id(id);
		return;
	}
	u->listen_id = id;
	u->listen_lost = false;
	hpn_log(HPN_LOG_WARN, "rdma: listening on %s again (%s has that address now)", u->listen_spec,
		id->verbs ? ibv_get_device_name(id->verbs->device) : "a device");
}

static int rdma_local_addr_(struct hpn_pep *u, char *buf, size_t len)
{
	if (!u->listen_id)
		return -ENOTCONN;
	return format_addr(rdma_get_local_addr(u->listen_id), buf, len);
}

static int rdma_peer_addr_(struct hpn_pep *u, hpn_peer_t id, char *buf, size_t len)
{
	struct rdma_peer *p = peer_by_id(u, id);

	if (!p)
		return hpn_set_error(-ENOENT, "rdma: no peer %u", id);
	return format_addr(rdma_get_peer_addr(p->id), buf, len);
}

static int rdma_connect_(struct hpn_pep *u, const char *spec, hpn_peer_t *peer)
{
	struct sockaddr_storage a;
	struct rdma_cm_id *id;
	struct rdma_peer *p;
	int ret = resolve(spec, false, &a);

	if (ret)
		return ret;
	if (rdma_create_id(u->ec, &id, NULL, RDMA_PS_TCP))
		return hpn_set_error(-errno, "rdma: rdma_create_id: %s", strerror(errno));
	p = peer_new(u, id, true);
	if (!p) {
		rdma_destroy_id(id);
		return hpn_set_error(-ENOSPC, "rdma: %s: %u peers", no_slot_why(u), u->max_peers);
	}
	if (rdma_resolve_addr(id, NULL, (struct sockaddr *)&a, RESOLVE_MS)) {
		ret = -errno;
		peer_free(u, p);
		p->id = NULL;
		rdma_destroy_id(id);
		return hpn_set_error(ret, "rdma: cannot resolve %s to an RDMA device: %s", spec, strerror(-ret));
	}
	memcpy(&p->dst, &a, sizeof(a));
	p->retry_ns = u->connect_retry_ns;
	/* connect_again() gives up when the caller's timeout has passed; an
	 * asynchronous connect gets peer_timeout_ms, but at least 10 s (a
	 * short peer timeout must not leave a lossy connect no second try). */
	uint64_t limit_ms = hpn_core_connect_timeout_ms(u->core);

	if (!limit_ms)
		limit_ms = hpn_core_opts(u->core)->peer_timeout_ms > 10000 ? hpn_core_opts(u->core)->peer_timeout_ms
									     : 10000;
	p->deadline_ns = hpn_now_ns() + limit_ms * 1000000ull;
	*peer = p->pid;
	return 0;
}

/* rdma_cm resends a lost connect request or reply only after its CM
 * response timeout (4.096 us * 2^20, about 4.3 s, fixed in the kernel): on
 * a lossy wire a connect would stall for seconds. So an outgoing
 * connection not up connect_retry_ms (default 250) after its request went
 * out starts over on a fresh id, as the packet layer resends its HELLO,
 * the interval doubling up to 4 s (where rdma_cm's own resend is due).
 * Destroying the old id makes our CM reject it, so a server that did
 * answer it drops its half (never announced: it was not up). The peer
 * keeps its slot and id for the application. */
static void connect_again(struct hpn_pep *u, struct rdma_peer *p, uint64_t now)
{
	struct rdma_cm_id *id;

	if (now >= p->deadline_ns) {
		peer_gone(u, p, -ETIMEDOUT);
		return;
	}
	if (p->qp) {
		rdma_destroy_qp(p->id);
		p->qp = NULL;
	}
	hpn_sq_free(&p->sq); /* nothing was posted: the QP never came up */
	ring_free(p);
	rdma_destroy_id(p->id);
	p->id = NULL;
	qtab_rebuild(u);
	HPN_STAT_ADD(u->st->retransmits, 1);
	if (rdma_create_id(u->ec, &id, NULL, RDMA_PS_TCP)) {
		peer_gone(u, p, -errno);
		return;
	}
	p->id = id;
	id->context = p;
	p->state = P_RESOLVING;
	if (rdma_resolve_addr(id, NULL, (struct sockaddr *)&p->dst, RESOLVE_MS)) {
		peer_gone(u, p, -errno);
		return;
	}
	p->retry_ns = p->retry_ns * 2 < CONNECT_RETRY_MAX_NS ? p->retry_ns * 2 : CONNECT_RETRY_MAX_NS;
}

static int rdma_disconnect_(struct hpn_pep *u, hpn_peer_t id)
{
	struct rdma_peer *p = peer_by_id(u, id);

	if (!p || p->state == P_CLOSING)
		return hpn_set_error(-ENOENT, "rdma: no peer %u", id);
	reap_sends(u);
	if (p->state == P_UP)
		goodbye(p);
	if (p->state == P_UP && u->linger_ns && hpn_sq_inflight(&p->sq)) {
		/* What was posted (and the goodbye) may still wait for a
		 * retransmission: progress ends the connection once it is
		 * acknowledged, or linger_ms on. */
		p->state = P_CLOSING;
		p->deadline_ns = hpn_now_ns() + u->linger_ns;
		return 0;
	}
	if (p->state == P_UP)
		rdma_disconnect(p->id);
	teardown(u, p);
	return 0;
}

static void credit_return(struct hpn_pep *u, struct rdma_peer *p);

/* An idle peer on a dead host would never be noticed: RC only finds out
 * when a send is not acknowledged. So a peer we sent nothing to for a
 * while gets a zero-length signaled send; if its host is gone, the
 * retries run out and the completion error reports it gone. */
static void ctl_send(struct rdma_peer *p, uint32_t imm)
{
	struct ibv_send_wr wr = {.opcode = IBV_WR_SEND_WITH_IMM, .send_flags = IBV_SEND_SIGNALED}, *bad;
	bool signal;

	if (hpn_sq_full(&p->sq))
		return;
	wr.imm_data = htonl(imm);
	wr.wr_id = hpn_sq_push(&p->sq, NULL, &signal);
	p->sq.since_signal = 0;
	if (ibv_post_send(p->qp, &wr, &bad))
		hpn_sq_unpush(&p->sq);
	else
		p->d->sig_out++;
}

static void keepalive(struct rdma_peer *p, bool ask)
{
	ctl_send(p, IMM_KEEPALIVE | (ask ? IMM_PING : 0));
}

/* Every quarter of peer_timeout_ms: prove the path to each peer we sent
 * nothing to or heard nothing from, and end each peer we heard nothing
 * from for SILENT_TICKS ticks: gone after peer_timeout_ms to 1.25 x it of
 * silence, as in the packet layer. RC's retry limit alone cannot be relied
 * on: soft-RoCE with retry_count=7 retries for ever, so a killed peer whose
 * one disconnect request was lost was never reported. Heard: anything
 * received from the peer - a message, its keepalive, its answer to ours
 * (IMM_PING: a peer we heard nothing from is asked, so its own
 * peer_timeout_ms does not matter). Acknowledgements of our sends do not
 * count: soft-RoCE once stopped taking one direction of a connection for
 * good while acknowledging the other, and both ends waited for ever.
 * Silence counts only where we listened:
 * a device whose receive CQ was not polled empty since the last tick (the
 * reader is slow or stalled: what the peer sent waits there unread) or
 * that has no receive posted (the application holds every buffer: the
 * peer's sends wait for room) tells nothing about its peers. */
static void keepalive_tick(struct hpn_pep *u, bool stalled)
{
	for (uint32_t i = 0; i < u->max_peers; i++) {
		struct rdma_peer *p = &u->peers[i];
		bool quiet = !p->heard;

		if (p->state != P_UP) {
			p->sent = false;
			continue;
		}
		if (p->heard || stalled || !p->d || !p->d->drained || !p->d->rx_posted) {
			p->silent = 0;
		} else if (++p->silent >= SILENT_TICKS) {
			hpn_log(HPN_LOG_WARN, "rdma: %s: peer %u silent for %llu ms: gone", p->d->name, p->pid,
				(unsigned long long)(p->silent * u->keepalive_ns / 1000000));
			peer_gone(u, p, -ETIMEDOUT);
			continue;
		}
		p->heard = false;
		/* A keepalive when we sent nothing (the peer hears us); when we
		 * heard nothing, one that asks for an answer - a peer with a
		 * longer peer_timeout_ms sends its own less often than our
		 * silence limit. */
		if (!p->sent || quiet)
			keepalive(p, quiet);
		p->sent = false;
	}
	for (uint32_t i = 0; i < u->ndevs; i++)
		u->devs[i].drained = false;
}

/* Signaled: lingering waits for its acknowledgement. */
static void goodbye(struct rdma_peer *p)
{
	ctl_send(p, IMM_KEEPALIVE | IMM_GOODBYE);
}

/* Peers that said goodbye: what they sent before is taken first (into
 * the pending queue, in order), then they are gone, as on a disconnect. */
static void goodbyes(struct hpn_pep *u)
{
	while (u->byes) {
		u->byes = false;
		rx_drain_to_pend(u); /* may find more goodbyes */
		for (uint32_t i = 0; i < u->max_peers; i++) {
			struct rdma_peer *p = &u->peers[i];

			if (p->bye && p->state != P_FREE) {
				p->bye = false;
				peer_gone(u, p, 0);
			}
		}
	}
}

/* ---- device and port events ------------------------------------------- */

/* On device ctx (and port, unless 0): a peer still resolving may be on none yet. */
static bool peer_on(const struct ibv_context *ctx, const struct rdma_peer *p, int port)
{
	return p->state != P_FREE && p->id && p->id->verbs && p->id->verbs == ctx &&
	       (!port || p->id->port_num == port);
}

/* Every connection on the device (port 0) or on one port of it ends;
 * returns how many the application knew of. */
static unsigned peers_gone(struct hpn_pep *u, const struct ibv_context *ctx, int status, int port)
{
	unsigned n = 0;

	reap_sends(u);
	rx_drain_to_pend(u); /* what arrived before stays deliverable */
	for (uint32_t i = 0; i < u->max_peers; i++) {
		struct rdma_peer *p = &u->peers[i];

		if (peer_on(ctx, p, port)) {
			n += p->state == P_UP || p->state == P_CLOSING || p->outgoing;
			peer_gone(u, p, status);
		}
	}
	return n;
}

/* The device is gone (removed, or failed): its connections end and all
 * made on it is given back - rxe, like most drivers, cannot take a
 * context away from a process, so `rdma link delete` waits until the
 * last user lets go - and a later connection may set it up again. The
 * endpoint's other devices carry on. */
static void dev_lost(struct hpn_pep *u, struct rdma_dev *d, int status, const char *what)
{
	char name[IBV_SYSFS_NAME_MAX];
	struct ibv_context *ctx = d->ctx;
	bool listening;
	unsigned n;

	if (!ctx)
		return;
	snprintf(name, sizeof(name), "%s", d->name);
	reap_sends(u);
	rx_drain_to_pend(u);
	/* Queue pairs, then what they used, while the context surely lives:
	 * librdmacm may close it with the last id of a removed device. */
	for (uint32_t i = 0; i < u->max_peers; i++) {
		struct rdma_peer *p = &u->peers[i];

		if (p->state == P_FREE || p->d != d)
			continue;
		if (p->qp) {
			rdma_destroy_qp(p->id);
			p->qp = NULL;
		}
		ring_free(p); /* its registration is on the device's protection domain */
	}
	dev_release(u, d);
	n = peers_gone(u, ctx, status, 0); /* the ids still point at it */
	u->cm_reread = true;
	listening = u->listen_id && u->listen_id->verbs == ctx;
	if (listening) {
		rdma_destroy_id(u->listen_id);
		u->listen_id = NULL;
		u->listen_lost = true;
	}
	hpn_log(HPN_LOG_ERROR, "rdma: %s %s: %u connections on it are gone%s%s%s", name, what, n,
		listening ? "; the endpoint stops listening until a device has the address it listens on again (" : "",
		listening ? u->listen_spec : "", listening ? ")" : "");
}

/* librdmacm keeps a device's context open from the first id on it until
 * it re-reads the device list, which it does only when it meets a device
 * it does not know, or in rdma_get_devices() - so a removed device stays
 * open in a process that lives on, and `rdma link delete` waits for it
 * (rxe cannot take a context away). After a device loss hpn makes it
 * re-read; that also opens every device present, so from then on any
 * change in the number of devices makes it re-read again (one device
 * replaced by another within a second goes unseen). Process-wide, as
 * librdmacm's list (async_mu held). */
static unsigned cm_reread_devs; /* uverbs devices at the last re-read, +1; 0: none yet */

static unsigned uverbs_count(void)
{
	DIR *dir = opendir("/sys/class/infiniband_verbs");
	struct dirent *e;
	unsigned n = 0;

	if (!dir)
		return 0;
	while ((e = readdir(dir)))
		n += !strncmp(e->d_name, "uverbs", 6);
	closedir(dir);
	return n;
}

static void cm_reread(unsigned ndevs)
{
	struct ibv_context **list = rdma_get_devices(NULL);

	if (list)
		rdma_free_devices(list); /* a dead device at refcount 0 is closed here */
	cm_reread_devs = ndevs + 1;
}

/* Every second: a device of ours whose verbs node left sysfs is gone -
 * the only sign of a removed device that has no connection (and no id)
 * on it: the kernel sends nothing else. Then librdmacm is made to let go. */
static void dev_scan(struct hpn_pep *u)
{
	for (uint32_t i = 0; i < u->ndevs; i++) {
		struct rdma_dev *d = &u->devs[i];

		if (d->ctx && access(d->ctx->device->dev_path, F_OK) && errno == ENOENT)
			dev_lost(u, d, -ENODEV, "was removed");
	}
	pthread_mutex_lock(&async_mu);
	if (u->cm_reread || cm_reread_devs) {
		unsigned n = uverbs_count();

		if (u->cm_reread || n + 1 != cm_reread_devs)
			cm_reread(n);
	}
	pthread_mutex_unlock(&async_mu);
	u->cm_reread = false;
	if (u->listen_lost)
		relisten(u);
}

/* Our share of the device's events: a port down ends every connection on
 * it at once - RC would give up on them within ack_timeout x retry_count
 * anyway, and an idle one only at its next keepalive; a broken queue pair
 * ends its connection; a failed device (or a broken shared queue) ends
 * them all and is let go of. */
static void async_act(struct hpn_pep *u, struct rdma_dev *d, const struct async_inbox *in)
{
	for (unsigned i = 0; i < in->nqp; i++) {
		struct rdma_peer *p = peer_by_qpn(u, d, in->qpn[i]);

		if (p && p->state != P_FREE) {
			hpn_log(HPN_LOG_WARN, "rdma: %s: the connection to peer %u failed (%s)", d->name, p->pid,
				ibv_event_type_str(in->qp_event[i]));
			peer_gone(u, p, -EIO);
		}
	}
	for (int port = 1; port < 32; port++) {
		if (in->port_down & (1u << port)) {
			unsigned n = peers_gone(u, d->ctx, -ENETDOWN, port);

			hpn_log(HPN_LOG_ERROR, "rdma: %s port %d went down (link lost): %u connections on it are gone",
				d->name, port, n);
		}
		if (in->port_up & (1u << port))
			hpn_log(HPN_LOG_INFO, "rdma: %s port %d is up", d->name, port);
	}
	if (in->fatal)
		dev_lost(u, d, -ENODEV, "failed (a fatal device or queue error)");
}

/* One event for every endpoint's share of ctx (async_mu held). */
static void async_post(struct ibv_context *ctx, const struct ibv_async_event *e)
{
	enum ibv_event_type t = e->event_type;

	for (struct rdma_dev *x = async_devs; x; x = x->async_next) {
		struct async_inbox *in = &x->inbox;

		if (x->ctx != ctx)
			continue;
		if (t == IBV_EVENT_PORT_ERR && e->element.port_num < 32)
			in->port_down |= 1u << e->element.port_num;
		else if (t == IBV_EVENT_PORT_ACTIVE && e->element.port_num < 32)
			in->port_up |= 1u << e->element.port_num;
		else if (t == IBV_EVENT_DEVICE_FATAL ||
			 (t == IBV_EVENT_CQ_ERR && (e->element.cq == x->scq || e->element.cq == x->rcq)) ||
			 (t == IBV_EVENT_SRQ_ERR && e->element.srq == x->srq))
			in->fatal = true; /* the device, or this endpoint's shared queues */
		else if ((t == IBV_EVENT_QP_FATAL || t == IBV_EVENT_QP_REQ_ERR || t == IBV_EVENT_QP_ACCESS_ERR ||
			  t == IBV_EVENT_PATH_MIG_ERR) && in->nqp < INBOX_QPS) {
			in->qp_event[in->nqp] = t;
			in->qpn[in->nqp++] = e->element.qp->qp_num;
		}
	}
}

/* Read what each of our devices has (for everyone on it), then act on ours. */
static void poll_async(struct hpn_pep *u)
{
	for (uint32_t i = 0; i < u->ndevs; i++) {
		struct rdma_dev *d = &u->devs[i];
		struct ibv_async_event e;
		struct async_inbox in;

		if (!d->ctx)
			continue;
		pthread_mutex_lock(&async_mu);
		while (ibv_get_async_event(d->ctx, &e) == 0) {
			async_post(d->ctx, &e);
			/* Ack at once: destroying a queue pair waits for its events' acks. */
			ibv_ack_async_event(&e);
		}
		in = d->inbox;
		memset(&d->inbox, 0, sizeof(d->inbox));
		pthread_mutex_unlock(&async_mu);
		async_act(u, d, &in);
	}
}

static int rdma_progress_(struct hpn_pep *u, uint64_t now)
{
	if (now >= u->next_async_ns) {
		u->next_async_ns = now + ASYNC_NS;
		poll_async(u);
	}
	poll_cm(u);
	if (unlikely(u->byes))
		goodbyes(u);
	if (now >= u->next_scan_ns) {
		u->next_scan_ns = now + SCAN_NS;
		dev_scan(u);
	}
	reap_sends(u);
	for (uint32_t i = 0; i < u->max_peers; i++) {
		struct rdma_peer *p = &u->peers[i];

		if (p->outgoing && p->state == P_CONNECTING && now >= p->retry_at_ns)
			connect_again(u, p, now);
		else if (p->state == P_CLOSING && (!hpn_sq_inflight(&p->sq) || now >= p->deadline_ns))
			peer_gone(u, p, 0); /* says goodbye; no event: the application let go */
	}
	if (u->keepalive_ns && now >= u->next_keepalive_ns) {
		/* A tick late by more than a tick: we were not looking (the
		 * application stalled), so the silence was ours, not the peers'. */
		bool stalled = now - u->next_keepalive_ns > u->keepalive_ns;

		u->next_keepalive_ns = now + u->keepalive_ns;
		keepalive_tick(u, stalled);
	}
	/* Credit returns that found the send queue full are retried here. */
	for (uint32_t i = 0; i < u->max_peers; i++)
		if (u->peers[i].unreported && u->peers[i].state == P_UP)
			credit_return(u, &u->peers[i]);
	for (uint32_t i = 0; i < u->ndevs; i++) {
		struct rdma_dev *d = &u->devs[i];

		if (d->srq && d->rx_posted < d->rx_depth)
			post_recvs(u, d, d->rx_depth - d->rx_posted);
	}
	return 0;
}

/* One fd for the core to sleep on: completions and connection events.
 * Arm, then look once more: a completion that slipped in before the arm
 * would raise no event, so report it (-EAGAIN: do not sleep). */
static int rdma_wait_fd_(struct hpn_pep *u)
{
	bool ready = false;

	for (uint32_t i = 0; i < u->ndevs; i++) {
		struct rdma_dev *d = &u->devs[i];

		if (d->rcq && !d->armed && !d->has_wc) {
			ibv_req_notify_cq(d->rcq, 0);
			d->armed = true;
			if (ibv_poll_cq(d->rcq, 1, &d->wc_saved) == 1)
				d->has_wc = true;
		}
		ready |= d->has_wc;
	}
	return ready ? -EAGAIN : u->epfd;
}

/* ---- data path --------------------------------------------------------- */

/* Give the sender its ring slots back: a zero-length write with the
 * credit count in the immediate. Deferred if our send queue is full. */
static void credit_return(struct hpn_pep *u, struct rdma_peer *p)
{
	struct ibv_send_wr wr = {.opcode = IBV_WR_RDMA_WRITE_WITH_IMM}, *bad;
	bool signal;

	if (!p->unreported || p->state != P_UP || hpn_sq_full(&p->sq))
		return;
	wr.imm_data = htonl(IMM_CREDIT | p->unreported);
	wr.wr.rdma.remote_addr = p->r_addr;
	wr.wr.rdma.rkey = p->r_rkey;
	wr.wr_id = hpn_sq_push(&p->sq, NULL, &signal);
	if (signal)
		wr.send_flags = IBV_SEND_SIGNALED;
	if (ibv_post_send(p->qp, &wr, &bad)) {
		HPN_STAT_ADD(u->st->errors, 1);
		return;
	}
	p->d->sig_out += signal;
	p->unreported = 0;
}

/* A write-with-immediate arrived: data in our ring (copied into the posted
 * receive buffer, which the write left unused, so the slot is free at
 * once), or credits for our writes. Returns 1 if *out is a message. */
static int ring_take(struct hpn_pep *u, struct rdma_peer *p, uint32_t imm, void *buf, struct hpn_msg *out)
{
	if (imm & IMM_CREDIT) {
		p->credits += imm & ~IMM_CREDIT;
		hpn_pool_put_bulk(u->pool, &buf, 1);
		return 0;
	}
	if (unlikely(!p->ring || imm > u->wimm_slot)) {
		HPN_STAT_ADD(u->st->malformed, 1);
		HPN_STAT_ADD(u->st->drops, 1);
		hpn_pool_put_bulk(u->pool, &buf, 1);
		return 0;
	}
	memcpy(buf, p->ring + (size_t)p->ring_tail * u->wimm_slot, imm);
	p->ring_tail = p->ring_tail + 1 == u->wimm_slots ? 0 : p->ring_tail + 1;
	HPN_STAT_ADD(u->st->rx_copied, 1); /* out of the ring the peer wrote it in */
	*out = (struct hpn_msg){.data = buf, .len = imm, .peer = p->pid};
	if (++p->unreported >= u->wimm_slots / 2)
		credit_return(u, p);
	return 1;
}

/* A send longer than our receive buffers ends its connection (RC: the
 * queue pair breaks): only an hpn that did not read our hello's limit, or
 * not hpn, sends one. Said once per connection's end, as the cause. */
static __attribute__((cold, noinline)) void rx_too_long(struct hpn_pep *u, struct rdma_dev *d, const struct ibv_wc *wc)
{
	struct rdma_peer *p = peer_by_qpn(u, d, wc->qp_num);

	hpn_log(HPN_LOG_WARN, "rdma: %s: peer %u sent a message longer than our receive buffers (%u bytes, "
			      "buf_size=): the connection ends (a peer that knows our limit refuses it -EMSGSIZE)",
		d->name, p ? p->pid : 0, u->recv_len);
}

/* One receive completion: returns 1 and fills *out if it is a message.
 * Inlined into the poll loop: a call per completion was a fifth of it. */
static inline __attribute__((always_inline)) int rx_wc(struct hpn_pep *u, struct rdma_dev *d, const struct ibv_wc *wc, struct hpn_msg *out)
{
	void *buf = rx_slot_take(d, wc->wr_id);
	struct rdma_peer *p;

	d->rx_posted--;
	if (unlikely(wc->status != IBV_WC_SUCCESS)) {
		if (wc->status != IBV_WC_WR_FLUSH_ERR)
			HPN_STAT_ADD(u->st->errors, 1);
		if (wc->status == IBV_WC_LOC_LEN_ERR)
			rx_too_long(u, d, wc);
		hpn_pool_put_bulk(u->pool, &buf, 1);
		return 0;
	}
	p = peer_by_qpn(u, d, wc->qp_num);
	if (unlikely(!p || p->state == P_CLOSING)) { /* closing: the application let go of it */
		HPN_STAT_ADD(u->st->drops, 1);
		hpn_pool_put_bulk(u->pool, &buf, 1);
		return 0;
	}
	if (unlikely(p->state != P_UP))
		establish(u, p);
	p->heard = true; /* keepalive_tick() */
	if (wc->opcode == IBV_WC_RECV_RDMA_WITH_IMM)
		return ring_take(u, p, ntohl(wc->imm_data), buf, out);
	if (unlikely((wc->wc_flags & IBV_WC_WITH_IMM) && (ntohl(wc->imm_data) & IMM_KEEPALIVE))) {
		hpn_pool_put_bulk(u->pool, &buf, 1); /* proof of life, nothing to deliver */
		if (ntohl(wc->imm_data) & IMM_GOODBYE)
			p->bye = u->byes = true; /* goodbyes(): after this poll's messages */
		else if ((ntohl(wc->imm_data) & IMM_PING) && p->state == P_UP)
			keepalive(p, false); /* asked: the answer travels the path in question */
		return 0;
	}
	*out = (struct hpn_msg){.data = buf, .len = wc->byte_len, .peer = p->pid};
	return 1;
}

/* A peer is leaving: what it sent before is already in the receive CQ.
 * Take all of it now, into the pending queue, before its queue pair (and
 * its qp_num -> peer mapping) goes: delivered later, in order. */
static void rx_drain_to_pend(struct hpn_pep *u)
{
	struct ibv_wc wc[64];
	int r;

	for (uint32_t j = 0; j < u->ndevs; j++) {
		struct rdma_dev *d = &u->devs[j];

		if (!d->rcq)
			continue;
		if (d->has_wc) {
			struct hpn_msg m;

			d->has_wc = false;
			if (rx_wc(u, d, &d->wc_saved, &m))
				pend_push(u, &m);
		}
		while ((r = ibv_poll_cq(d->rcq, 64, wc)) > 0) {
			for (int i = 0; i < r; i++) {
				struct hpn_msg m;

				if (rx_wc(u, d, &wc[i], &m))
					pend_push(u, &m);
			}
		}
	}
}

/* Up to n messages from one device's receive queue, or -EIO. */
static int dev_rx(struct hpn_pep *u, struct rdma_dev *d, struct hpn_msg *msgs, unsigned n)
{
	struct ibv_wc wc[BURST_MAX];
	unsigned k = 0;
	int r;

	if (unlikely(d->armed)) {
		struct ibv_cq *cq;
		void *ctx;

		/* We slept on the channel: consume its event so the fd quiets. */
		if (ibv_get_cq_event(d->cc, &cq, &ctx) == 0)
			ibv_ack_cq_events(cq, 1);
		d->armed = false;
	}
	if (unlikely(d->has_wc)) {
		wc[0] = d->wc_saved;
		d->has_wc = false;
		r = ibv_poll_cq(d->rcq, (int)n - 1, wc + 1);
		r = r < 0 ? 1 : r + 1;
	} else {
		r = ibv_poll_cq(d->rcq, (int)n, wc);
	}
	if (unlikely(r < 0)) {
		HPN_STAT_ADD(u->st->errors, 1);
		return -EIO;
	}
	if ((unsigned)r < n)
		d->drained = true; /* everything that came is seen: silence is real (keepalive_tick) */
	for (int i = 0; i < r; i++)
		k += (unsigned)rx_wc(u, d, &wc[i], &msgs[k]);
	if (unlikely(u->byes))
		goodbyes(u);
	/* Replenish in batches: one doorbell for many buffers (progress tops
	 * up the rest). */
	if (d->rx_depth - d->rx_posted >= 16)
		post_recvs(u, d, d->rx_depth - d->rx_posted);
	return (int)k;
}

static int rdma_rx_burst_(struct hpn_pep *u, struct hpn_msg *msgs, unsigned n)
{
	unsigned k = 0;
	int r, err = 0;

	if (unlikely(u->pend.n))
		return (int)hpn_msgq_pop(&u->pend, msgs, n);
	if (n > u->burst)
		n = u->burst;
	if (unlikely(!n))
		return 0;
	if (likely(u->one)) {
		r = dev_rx(u, u->one, msgs, n);
		k = r > 0 ? (unsigned)r : 0;
		err = r < 0 ? r : 0;
	} else {
		/* Several devices (or none yet): each in turn goes first. */
		bool any = false;

		for (uint32_t i = 0; i < u->ndevs && k < n; i++) {
			struct rdma_dev *d = &u->devs[(u->rx_next + i) % u->ndevs];

			any |= d->rcq != NULL;
			if (!d->rcq)
				continue;
			r = dev_rx(u, d, msgs + k, n - k);
			if (r > 0)
				k += (unsigned)r;
			else if (r < 0)
				err = r;
		}
		u->rx_next++;
		if (!any)
			poll_cm(u); /* nothing connected yet: connection events are all there is */
	}
	if (k) { /* receive time: when the completions were polled (rxe has no completion timestamps) */
		uint64_t ts = hpn_real_ns();

		for (unsigned i = 0; i < k; i++)
			msgs[i].ts_ns = ts;
	}
	/* Connection events are not looked at here: reading the rdma_cm
	 * channel is a system call, too dear for every empty poll; progress
	 * (every millisecond) does it - unless a burst of them is left over
	 * from its budget: then an empty poll takes the next ones (the
	 * channel's fd stays readable, so a blocking wait would only spin). */
	if (unlikely(u->cm_more) && !k)
		poll_cm(u);
	return k ? (int)k : err;
}

/* Some of wr[start, end) were not posted: take back what the device did
 * not accept. */
static __attribute__((cold, noinline)) void post_failed(struct hpn_pep *u, struct rdma_peer *p, unsigned start,
							 unsigned end, unsigned posted, const bool *copied,
							 const bool *wimm)
{
	HPN_STAT_ADD(u->st->errors, 1);
	hpn_log(HPN_LOG_WARN, "rdma: ibv_post_send to peer %u failed after %u of %u", p->pid, posted, end - start);
	/* Newest first: the unposted requests are the newest of this peer. */
	for (unsigned i = end; i-- > start + posted;) {
		void *hold = hpn_sq_unpush(&p->sq);

		if (copied[i]) /* ours; a caller's owned buffer stays the caller's */
			hpn_pool_put_bulk(u->pool, &hold, 1);
		if (wimm[i]) {
			p->credits++;
			p->r_head = p->r_head ? p->r_head - 1 : p->r_slots - 1;
		}
	}
}

/* Post wr[start, end) to p as one chain (one doorbell). On failure, take
 * back what the device did not accept and return how many it did. */
static inline unsigned post_chain(struct hpn_pep *u, struct rdma_peer *p, struct ibv_send_wr *wr, unsigned start,
				  unsigned end, const bool *copied, const bool *wimm)
{
	struct ibv_send_wr *bad = NULL;
	unsigned posted;

	if (hpn_sq_close_batch(&p->sq))
		wr[end - 1].send_flags |= IBV_SEND_SIGNALED;
	posted = likely(!ibv_post_send(p->qp, &wr[start], &bad)) ? end - start
		 : bad ? (unsigned)(bad - &wr[start]) : 0;
	for (unsigned i = start; i < start + posted; i++)
		p->d->sig_out += !!(wr[i].send_flags & IBV_SEND_SIGNALED);
	if (unlikely(posted != end - start))
		post_failed(u, p, start, end, posted, copied, wimm);
	return posted;
}

static __attribute__((cold, noinline)) int too_big(const struct hpn_pep *u, const struct rdma_peer *p, const struct hpn_msg *m)
{
	if (p->tx_max < u->max_msg)
		return hpn_set_error(-EMSGSIZE, "rdma: %u bytes to peer %u: it receives at most %u (its buf_size)",
				     m->len, p->pid, p->tx_max);
	return -EMSGSIZE;
}

/* Can m go to p now? 0, or why not (nothing was touched). */
static inline int tx_check(const struct hpn_pep *u, const struct rdma_peer *p, const struct hpn_msg *m)
{
	if (unlikely(!p || p->state != P_UP))
		return -ENOTCONN;
	if (unlikely(m->len > p->tx_max))
		return too_big(u, p, m);
	if (unlikely(hpn_sq_full(&p->sq)))
		return -EAGAIN; /* the peer is slow: its queue is full */
	return 0;
}

/* The work request for m to p, its slot taken. hold: the pool buffer the
 * request owns until it completes (the copy, or the caller's zero-copy
 * buffer); NULL when inline. Returns whether it writes into the peer's
 * ring (a credit taken). */
static inline bool wr_fill(struct rdma_peer *p, const struct hpn_msg *m, bool inl, void *hold,
			   struct ibv_send_wr *wr, struct ibv_sge *sge)
{
	bool wimm = p->wimm && m->len <= p->r_slot && p->credits, signal;

	/* Field by field: the provider reads only these for RC (a whole
	 * 128-byte request zeroed per message was a tenth of hpn's send path). */
	wr->next = NULL;
	wr->sg_list = sge;
	wr->num_sge = 1;
	wr->opcode = IBV_WR_SEND;
	wr->send_flags = 0;
	wr->imm_data = 0;
	if (wimm) {
		/* Into the peer's ring; the immediate says how long. */
		wr->opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
		wr->imm_data = htonl(m->len);
		wr->wr.rdma.remote_addr = p->r_addr + (uint64_t)p->r_head * p->r_slot;
		p->r_head = p->r_head + 1 == p->r_slots ? 0 : p->r_head + 1;
		wr->wr.rdma.rkey = p->r_rkey;
		p->credits--;
	}
	if (inl) {
		/* Copied at post time: caller memory is fine, and an owned
		 * buffer is free again right after the post. */
		*sge = (struct ibv_sge){(uintptr_t)m->data, m->len, 0};
		wr->send_flags = IBV_SEND_INLINE;
	} else {
		*sge = (struct ibv_sge){(uintptr_t)hold, m->len, p->lkey};
	}
	p->sent = true;
	/* Completions only now and then (sq.h decides when). */
	wr->wr_id = hpn_sq_push(&p->sq, hold, &signal);
	if (signal)
		wr->send_flags |= IBV_SEND_SIGNALED;
	return wimm;
}

/* One message - the latency case - without the burst's chaining and
 * per-message bookkeeping. */
static int tx_one(struct hpn_pep *u, const struct hpn_msg *m, unsigned flags)
{
	struct rdma_peer *p = peer_by_id(u, m->peer);
	struct ibv_send_wr wr;
	struct ibv_sge sge;
	void *hold = NULL;
	bool inl, copied, wimm;
	int ret = tx_check(u, p, m);

	if (unlikely(ret))
		return ret;
	inl = m->len <= p->inline_size;
	copied = !inl && !(flags & HPN_TX_OWNED);
	if (!inl) {
		if (!copied)
			hold = m->data; /* zero-copy: the pool buffer itself */
		else if (hpn_pool_get_bulk(u->pool, &hold, 1))
			memcpy(hold, m->data, m->len);
		else
			return -EAGAIN;
	}
	wimm = wr_fill(p, m, inl, hold, &wr, &sge);
	if (unlikely(!post_chain(u, p, &wr, 0, 1, &copied, &wimm)))
		return -EIO;
	if (inl && (flags & HPN_TX_OWNED))
		hpn_pool_put_bulk(u->pool, &m->data, 1);
	return 1;
}

/* Several messages: chains of requests, one doorbell per peer's run. Out
 * of line, so that a single message does not set up its 40 KB frame. */
static __attribute__((noinline)) int tx_many(struct hpn_pep *u, const struct hpn_msg *msgs, unsigned n,
					     unsigned flags)
{
	struct ibv_send_wr wr[BURST_MAX];
	struct ibv_sge sge[BURST_MAX];
	bool copied[BURST_MAX], wimm[BURST_MAX], inl[BURST_MAX];
	unsigned k, chain_start = 0, done;
	struct rdma_peer *chain_peer = NULL;
	int err = 0;

	for (k = 0; k < n; k++) {
		const struct hpn_msg *m = &msgs[k];
		struct rdma_peer *p = peer_by_id(u, m->peer);
		void *hold = NULL;

		if (unlikely((err = tx_check(u, p, m))))
			break;
		inl[k] = m->len <= p->inline_size;
		copied[k] = !inl[k] && !(flags & HPN_TX_OWNED);
		/* Everything that can fail comes before any bookkeeping. */
		if (copied[k] && !hpn_pool_get_bulk(u->pool, &hold, 1)) {
			err = -EAGAIN;
			break;
		}
		if (chain_peer != p) {
			if (chain_peer && (done = post_chain(u, chain_peer, wr, chain_start, k, copied, wimm)) <
						  k - chain_start) {
				if (copied[k])
					hpn_pool_put_bulk(u->pool, &hold, 1);
				k = chain_start + done;
				goto out;
			}
			chain_peer = p;
			chain_start = k;
		} else {
			wr[k - 1].next = &wr[k];
		}
		if (copied[k])
			memcpy(hold, m->data, m->len);
		else if (!inl[k])
			hold = m->data; /* zero-copy: the pool buffer itself */
		wimm[k] = wr_fill(p, m, inl[k], hold, &wr[k], &sge[k]);
	}
	if (chain_peer && (done = post_chain(u, chain_peer, wr, chain_start, k, copied, wimm)) < k - chain_start)
		k = chain_start + done;
out:
	if (flags & HPN_TX_OWNED) {
		void *rel[BURST_MAX];
		unsigned nrel = 0;

		for (unsigned i = 0; i < k; i++)
			if (inl[i])
				rel[nrel++] = msgs[i].data;
		if (nrel)
			hpn_pool_put_bulk(u->pool, rel, nrel);
	}
	return k ? (int)k : err ? err : -EIO;
}

static int rdma_tx_burst_(struct hpn_pep *u, const struct hpn_msg *msgs, unsigned n, unsigned flags)
{
	if (n > u->burst)
		n = u->burst;
	if (unlikely(!n))
		return 0;
	reap_due(u);
	return n == 1 ? tx_one(u, msgs, flags) : tx_many(u, msgs, n, flags);
}

static const struct hpn_plugin_ops rdma_ops = {
	.abi_version = HPN_PLUGIN_ABI,
	.size = sizeof(struct hpn_plugin_ops),
	.name = "rdma",
	.description = "RDMA verbs (RoCE/InfiniBand): RC queue pairs, SRQ, inline sends, rdma_cm",
	.params = rdma_params,
	.probe = rdma_probe_,
	.open = rdma_open_,
	.close = rdma_close_,
	.mem_register = rdma_mem_register_,
	.listen = rdma_listen_,
	.local_addr = rdma_local_addr_,
	.connect = rdma_connect_,
	.disconnect = rdma_disconnect_,
	.peer_addr = rdma_peer_addr_,
	.progress = rdma_progress_,
	.wait_fd = rdma_wait_fd_,
	.tx_burst = rdma_tx_burst_,
	.rx_burst = rdma_rx_burst_,
};

HPN_PLUGIN_DEFINE(rdma_ops)
