/* SPDX-License-Identifier: MIT */
/* endpoint.h - the endpoint object, shared by endpoint.c and progress.c. */
#ifndef HPN_ENDPOINT_H
#define HPN_ENDPOINT_H

#include "internal.h"
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

/* The eventfds that wake a sleeper (progress.c's, and hpn_ep_wake's).
 * A write only fails if the counter would overflow: readable anyway. A
 * read fails only with EAGAIN: nothing to drain. */
static inline void hpn_efd_signal(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0)
		return;
}

static inline void hpn_efd_drain(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0)
		return;
}

enum hpn_wait_mode { HPN_WAIT_SPIN = 0, HPN_WAIT_ADAPTIVE = 1, HPN_WAIT_BLOCK = 2 };

#define HPN_EVQ_SIZE 1024       /* events held at first */
#define HPN_EVQ_MAX (1u << 20) /* at most (16 MiB): an application that never polls */
#define HPN_BACKLOG_SIZE 512
/* hpn_buf_get_sized hands out device frames from this size up: shorter
 * zero-copy messages are copied into a shared packet by the packet layer
 * (packet/conn.h HPN_CONN_ZC_ALONE, the same figure), frame or not. */
#define HPN_FRAME_MIN_MSG 256

struct hpn_prog; /* progress.c */

/* Core bookkeeping in front of every pool buffer (inside the headroom), so
 * the rings between threads can carry plain pointers. */
struct hpn_buf_meta {
	struct hpn_msg m;
};

struct hpn_ep {
	/* Hot: read on every burst. The ops table is a private copy so the
	 * indirect call needs no extra dereference and no NULL check. */
	struct hpn_plugin_ops ops __attribute__((aligned(HPN_CACHELINE)));
	struct hpn_pep *pep;
	struct hpn_pool *pool;
	struct hpn_prog *prog; /* NULL in progress=inline mode */
	unsigned backlog_n;    /* messages parked by hpn_recv / hpn_connect */
	unsigned backlog_head;
	uint32_t max_msg;
	unsigned burst;
	int wait_mode;
	uint64_t spin_ns;
	uint64_t next_progress_ns;
	unsigned calls; /* progress=inline: receives and refused sends; every 64th looks at the clock */

	struct hpn_stats stats __attribute__((aligned(HPN_CACHELINE)));

	/* Cold. */
	struct hpn_msg backlog[HPN_BACKLOG_SIZE];
	struct hpn_plugin *plugin;
	struct hpn_cfg *cfg;
	struct hpn_caps caps;
	struct hpn_core_opts opts;
	size_t core_headroom;
	/* Device frames a frame backend asked for (hpn_core_frames), made
	 * like the pool from pool_base; destroyed after the backend closed. */
	struct hpn_pool *frames;
	struct hpn_pool_params pool_base;
	uint64_t connect_timeout_ms; /* of the connect being started (plugin.h) */

	/* Events: a ring that grows (doubling, up to HPN_EVQ_MAX) instead of
	 * dropping: a burst of peers coming and going must never leave the
	 * application with a PEER_GONE for a peer it never saw arrive. */
	pthread_mutex_t ev_lock;
	struct hpn_ev_slot {
		struct hpn_event ev;
		/* Visible once the application has received this many
		 * messages in all (stats.msgs_in), or at hold_until: an event
		 * in order with the messages (hpn_core_event_after). 0: at once. */
		uint64_t after, hold_until;
	} *ev;
	unsigned ev_head, ev_cap; /* ev_cap: a power of two */
	/* The lowest `after` of the ordered events not yet due (0: none): a
	 * receive burst stops there, so the messages before such an event and
	 * those after it never share a burst. Read by hpn_recv_burst. */
	uint64_t ev_barrier;
	/* Once the barrier is reached, receives return nothing until this
	 * time (or the event is polled), so that the application polls it
	 * before the messages after it; then they flow again (to_barrier). */
	uint64_t ev_barrier_until;
	bool barrier_said; /* that an application did not poll: logged once */
	/* Set at the first zero-copy send: only then can a buffer handed to
	 * the application carry the lent mark (pool.h), so only then does each
	 * receive look (count_in). */
	uint8_t zc_used;
	atomic_uint ev_count;
	/* hpn_ep_wake() was called and no hpn_recv_wait has returned for it
	 * yet; beside ev_count, which the same empty poll reads. */
	atomic_uint wakes;
	/* progress=inline: what hpn_ep_wake writes, so a wait asleep in
	 * poll() returns at once (progress=thread: the thread's efd_app). */
	int wake_fd;
	uint64_t ev_overflow;

	/* Live peer ids, indexed by id & live_mask (plugin.h: the low bits of
	 * a live id are unique). Lets progress=thread refuse sends to unknown
	 * or gone peers with -ENOTCONN at once, as inline mode does. */
	_Atomic uint32_t *live;
	uint32_t live_mask;

	char desc[1536];
};

static inline struct hpn_ep *core_ep(struct hpn_core *core)
{
	return (struct hpn_ep *)core;
}

/* Meta block of the buffer `data` belongs to. */
static inline struct hpn_buf_meta *hpn_buf_meta(struct hpn_ep *ep, void *data)
{
	return (struct hpn_buf_meta *)hpn_pool_elem(ep->pool, data);
}

/* An empty slot holds HPN_PEER_NONE: that one is never live (it passed for
 * the last slot's peer, and a send to it was taken, then dropped). */
static inline bool hpn_peer_live(struct hpn_ep *ep, hpn_peer_t peer)
{
	return peer != HPN_PEER_NONE &&
	       atomic_load_explicit(&ep->live[peer & ep->live_mask], memory_order_relaxed) == peer;
}
void hpn_peer_set_live(struct hpn_ep *ep, hpn_peer_t peer, bool live);

/* Events: take the first queued event of `peer` (any peer if HPN_PEER_NONE). */
bool hpn_ev_take(struct hpn_ep *ep, hpn_peer_t peer, struct hpn_event *out);

/* progress.c: the optional pinned progress thread. */
int hpn_prog_start(struct hpn_ep *ep, int cpu, int fifo, unsigned ring_size);
void hpn_prog_stop(struct hpn_ep *ep);
/* Run fn(ep, arg) on the progress thread and return its result. */
int hpn_prog_call(struct hpn_ep *ep, int (*fn)(struct hpn_ep *, void *), void *arg);
int hpn_prog_send(struct hpn_ep *ep, const struct hpn_msg *msgs, unsigned n, bool owned);
int hpn_prog_recv(struct hpn_ep *ep, struct hpn_msg *msgs, unsigned n);
/* Sleep until rx has data, an event is queued or timeout_ns passes - or,
 * wakeable (hpn_recv_wait: the only wait hpn_ep_wake ends), a wake is
 * pending: another wait must not spin on a wake it does not take. */
void hpn_prog_wait(struct hpn_ep *ep, uint64_t timeout_ns, bool wakeable);
void hpn_prog_wake_app(struct hpn_ep *ep);

#endif
