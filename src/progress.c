/* SPDX-License-Identifier: MIT */
/*
 * progress.c - the optional progress thread (progress=thread).
 *
 * The thread owns the backend endpoint: it alone calls the plugin's ops, so
 * plugins stay lock-free. The application talks to it through two rings of
 * buffer pointers (len and peer travel in the buffer's meta block):
 *   tx: many application threads -> progress thread (multi-producer)
 *   rx: progress thread -> application (single producer, single consumer)
 * Control calls (connect, listen, ...) are rare and go through a mutex and
 * a condition variable instead.
 *
 * Sleeping: each side announces it is about to sleep with a flag, re-checks
 * its ring, then sleeps on an eventfd. The other side checks the flag after
 * publishing work (a seq_cst fence on both sides orders flag and ring, the
 * classic Dekker pattern), so a wakeup is never lost and a busy peer never
 * pays for a syscall.
 */
#include "endpoint.h"
#include "ring.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define PEND_MAX 256

struct hpn_prog {
	struct hpn_ring *tx;
	struct hpn_ring *rx;
	atomic_int prog_sleeping __attribute__((aligned(HPN_CACHELINE)));
	atomic_int app_sleeping __attribute__((aligned(HPN_CACHELINE)));
	atomic_int call_pending __attribute__((aligned(HPN_CACHELINE)));
	atomic_bool stop;
	int efd_prog, efd_app, epfd;
	int backend_fd;       /* the backend's wait fd, once it has one */
	uint32_t backend_ev;  /* events we currently wait for on it */
	atomic_int rx_blocked; /* rx ring was full: the app wakes us when it drains */
	pthread_t thread;
	bool started;

	pthread_mutex_t call_lock;
	pthread_cond_t call_cv;
	int (*call_fn)(struct hpn_ep *, void *);
	void *call_arg;
	int call_ret;
	bool call_done;
	char call_err[512];

	int cpu, fifo;
	char start_err[256];
	struct hpn_msg pend[PEND_MAX];
	unsigned pend_n, pend_head;
};

void hpn_prog_wake_app(struct hpn_ep *ep)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&ep->prog->app_sleeping, memory_order_relaxed))
		hpn_efd_signal(ep->prog->efd_app);
}

static void wake_prog(struct hpn_prog *p)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&p->prog_sleeping, memory_order_relaxed))
		hpn_efd_signal(p->efd_prog);
}

/* ---- the thread -------------------------------------------------------- */

/* Backends may create their fd late (udp: at the first listen/connect);
 * sleeping must watch it as soon as it exists. */
static void watch_backend_fd(struct hpn_ep *ep, struct hpn_prog *p)
{
	int fd = ep->ops.wait_fd(ep->pep);
	struct epoll_event ev = {.events = EPOLLIN};

	if (fd < 0 || fd == p->backend_fd)
		return;
	if (p->backend_fd >= 0)
		epoll_ctl(p->epfd, EPOLL_CTL_DEL, p->backend_fd, NULL);
	ev.data.fd = fd;
	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) == 0) {
		p->backend_fd = fd;
		p->backend_ev = EPOLLIN;
	}
	else
		hpn_log(HPN_LOG_WARN, "progress thread: cannot watch backend fd %d: %s (waking every 10 ms)",
			fd, strerror(errno));
}

static unsigned do_tx(struct hpn_ep *ep, struct hpn_prog *p);

/* Send what the application already handed over before a control call
 * (a disconnect must not overtake the data before it) and before stopping.
 * Bounded: a peer that never drains must not hang the caller. */
static void flush_tx(struct hpn_ep *ep, struct hpn_prog *p, uint64_t budget_ns)
{
	uint64_t deadline = hpn_now_ns() + budget_ns;

	while ((p->pend_n || hpn_ring_count(p->tx)) && hpn_now_ns() < deadline) {
		if (!do_tx(ep, p))
			hpn_cpu_relax();
	}
}

static void run_call(struct hpn_ep *ep, struct hpn_prog *p)
{
	flush_tx(ep, p, 100000000);
	pthread_mutex_lock(&p->call_lock);
	hpn_error_clear();
	p->call_ret = p->call_fn(ep, p->call_arg);
	watch_backend_fd(ep, p);
	snprintf(p->call_err, sizeof(p->call_err), "%s", hpn_last_error());
	p->call_done = true;
	atomic_store_explicit(&p->call_pending, 0, memory_order_relaxed);
	pthread_cond_broadcast(&p->call_cv);
	pthread_mutex_unlock(&p->call_lock);
}

/*
 * The backend refused a message hpn_send* had already accepted: something
 * only this thread learns, such as a peer whose negotiated largest message
 * or window is smaller than ours, or a peer that went away meanwhile. The
 * application cannot be told through a return value any more, so it is
 * never silent instead: counted (errors, tx_failed) and logged - the 1st,
 * 2nd, 4th, 8th ... time, so a sender stuck in a loop cannot flood the log.
 */
static HPN_COLD void tx_failed(struct hpn_ep *ep, const struct hpn_msg *m, int err)
{
	uint64_t n = __atomic_load_n(&ep->stats.tx_failed, __ATOMIC_RELAXED) + 1;

	HPN_STAT_ADD(ep->stats.errors, 1);
	HPN_STAT_ADD(ep->stats.tx_failed, 1);
	if (!(n & (n - 1)))
		hpn_log(HPN_LOG_ERROR,
			"progress thread: a %u-byte message to peer %u was dropped after hpn_send* "
			"accepted it: %s%s; %llu so far (stats.tx_failed)",
			m->len, m->peer, strerror(-err),
			err == -EMSGSIZE ? " (more than the peer's negotiated largest message or window)"
			: err == -ENOTCONN ? " (the peer went away)" : "",
			(unsigned long long)n);
}

static unsigned do_tx(struct hpn_ep *ep, struct hpn_prog *p)
{
	void *bufs[PEND_MAX];

	unsigned k, sent = 0;
	int r;

	if (!p->pend_n) {
		k = hpn_ring_dequeue_burst(p->tx, bufs, ep->burst < PEND_MAX ? ep->burst : PEND_MAX);
		for (unsigned i = 0; i < k; i++) {
			struct hpn_buf_meta *m = hpn_buf_meta(ep, bufs[i]);

			p->pend[i] = m->m;
		}
		p->pend_n = k;
		p->pend_head = 0;
	}
	while (p->pend_n) {
		struct hpn_msg *m = &p->pend[p->pend_head];

		r = ep->ops.tx_burst(ep->pep, m, p->pend_n, HPN_TX_OWNED);
		if (r == -EAGAIN || r == 0)
			break; /* back-pressure: keep them, retry next turn */
		if (r < 0) {
			tx_failed(ep, m, r);
			hpn_pool_put_bulk(ep->pool, &m->data, 1);
			r = 1;
		} else {
			uint64_t bytes = 0;

			for (int i = 0; i < r; i++)
				bytes += m[i].len;
			HPN_STAT_ADD(ep->stats.msgs_out, (uint64_t)r);
			HPN_STAT_ADD(ep->stats.bytes_out, bytes);
		}
		p->pend_head += (unsigned)r;
		p->pend_n -= (unsigned)r;
		sent += (unsigned)r;
	}
	return sent;
}

static unsigned do_rx(struct hpn_ep *ep, struct hpn_prog *p)
{
	struct hpn_msg msgs[256];
	void *bufs[256];
	unsigned room = hpn_ring_free_count(p->rx);
	int r;

	if (room > ep->burst)
		room = ep->burst;
	if (!room)
		return 0; /* the application is behind: let the backend queue */
	r = ep->ops.rx_burst(ep->pep, msgs, room);
	if (r <= 0)
		return 0;
	for (int i = 0; i < r; i++) {
		struct hpn_buf_meta *m = hpn_buf_meta(ep, msgs[i].data);

		m->m = msgs[i];
		bufs[i] = msgs[i].data;
	}
	/* Single producer and room checked above: this cannot fall short. */
	hpn_ring_enqueue_bulk(p->rx, bufs, (unsigned)r);
	hpn_prog_wake_app(ep);
	return (unsigned)r;
}

/* Wait on the backend fd only for what we can act on: not readable while
 * the rx ring is full (or epoll would return at once, forever), writable
 * while sends wait for socket space. */
static void set_backend_events(struct hpn_ep *ep, struct hpn_prog *p)
{
	bool full = hpn_ring_free_count(p->rx) == 0;
	uint32_t want = (full ? 0 : EPOLLIN) | (p->pend_n ? EPOLLOUT : 0);
	struct epoll_event ev = {.events = want};

	atomic_store_explicit(&p->rx_blocked, full, memory_order_relaxed);
	if (p->backend_fd < 0 || want == p->backend_ev)
		return;
	ev.data.fd = p->backend_fd;
	if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, p->backend_fd, &ev) == 0)
		p->backend_ev = want;
}

static void prog_sleep(struct hpn_ep *ep, struct hpn_prog *p)
{
	struct epoll_event evs[2];
	int fd = ep->ops.wait_fd(ep->pep); /* lets the backend arm notifications */

	if (fd == -EAGAIN)
		return; /* work already pending */
	if (fd == -EOPNOTSUPP) {
		/* A poll-mode device (dpdk): nothing would tell a sleep that a
		 * packet came, so the thread spins, as a DPDK lcore does
		 * (hpn_ep_describe says so). */
		hpn_cpu_relax();
		return;
	}
	if (fd >= 0 && fd != p->backend_fd)
		watch_backend_fd(ep, p);
	set_backend_events(ep, p);
	atomic_store_explicit(&p->prog_sleeping, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	/* Not while the rx ring has room and the backend's fd is not watched
	 * for input: what comes would wait out the sleep - except that with
	 * no socket yet (-ENOTCONN) nothing can come (udp before its first
	 * listen or connect: it used to spin there). */
	if (!hpn_ring_count(p->tx) && !atomic_load_explicit(&p->call_pending, memory_order_relaxed) &&
	    !atomic_load_explicit(&p->stop, memory_order_relaxed) &&
	    (fd == -ENOTCONN || !(!(p->backend_ev & EPOLLIN) && hpn_ring_free_count(p->rx)))) {
		/* 10 ms cap: keepalive timers must keep running. */
		int n = epoll_wait(p->epfd, evs, 2, 10);

		for (int i = 0; i < n; i++)
			if (evs[i].data.fd == p->efd_prog)
				hpn_efd_drain(p->efd_prog);
	}
	atomic_store_explicit(&p->prog_sleeping, 0, memory_order_relaxed);
}

static void pin_self(struct hpn_prog *p)
{
	if (p->cpu >= 0) {
		cpu_set_t set;
		int err;

		CPU_ZERO(&set);
		CPU_SET(p->cpu, &set);
		err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
		if (err)
			hpn_log(HPN_LOG_WARN, "progress thread: cannot pin to cpu %d: %s", p->cpu, strerror(err));
	}
	if (p->fifo) {
		struct sched_param sp = {.sched_priority = 1};
		int err = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);

		if (err)
			hpn_log(HPN_LOG_WARN, "progress thread: SCHED_FIFO refused (%s); needs CAP_SYS_NICE or an rtprio limit",
				strerror(err));
	}
}

static void *prog_main(void *arg)
{
	struct hpn_ep *ep = arg;
	struct hpn_prog *p = ep->prog;
	uint64_t idle_since = 0, next_timer = 0;
	unsigned iter = 0;

	pin_self(p);
	while (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
		unsigned work = 0;

		if (atomic_load_explicit(&p->call_pending, memory_order_acquire)) {
			run_call(ep, p);
			work++;
		}
		work += do_tx(ep, p);
		work += do_rx(ep, p);
		if (work && (++iter & 63))
			continue;
		uint64_t now = hpn_now_ns();

		if (now >= next_timer) {
			ep->ops.progress(ep->pep, now);
			next_timer = now + 1000000;
		}
		if (work) {
			idle_since = 0;
			continue;
		}
		if (!idle_since)
			idle_since = now;
		if (ep->wait_mode == HPN_WAIT_SPIN ||
		    (ep->wait_mode == HPN_WAIT_ADAPTIVE && now - idle_since < ep->spin_ns)) {
			hpn_cpu_relax();
			continue;
		}
		prog_sleep(ep, p);
	}
	flush_tx(ep, p, 200000000);
	return NULL;
}

/* ---- application side -------------------------------------------------- */

int hpn_prog_call(struct hpn_ep *ep, int (*fn)(struct hpn_ep *, void *), void *arg)
{
	struct hpn_prog *p = ep->prog;
	int ret;

	pthread_mutex_lock(&p->call_lock);
	p->call_fn = fn;
	p->call_arg = arg;
	p->call_done = false;
	atomic_store_explicit(&p->call_pending, 1, memory_order_release);
	wake_prog(p);
	while (!p->call_done)
		pthread_cond_wait(&p->call_cv, &p->call_lock);
	ret = p->call_ret;
	if (ret < 0)
		hpn_set_error(ret, "%s", p->call_err);
	pthread_mutex_unlock(&p->call_lock);
	return ret;
}

int hpn_prog_send(struct hpn_ep *ep, const struct hpn_msg *msgs, unsigned n, bool owned)
{
	struct hpn_prog *p = ep->prog;
	void *bufs[256];
	unsigned k = 0, done, have = 0;

	if (n > HPN_ARRAY_SIZE(bufs))
		n = HPN_ARRAY_SIZE(bufs);
	/* Copies take their buffers in one pool operation for the burst (the
	 * pool is multi-threaded here: one atomic, not one per message). */
	if (!owned) {
		size_t bs = hpn_pool_buf_size(ep->pool);
		unsigned fit = 0;

		while (fit < n && msgs[fit].len <= bs)
			fit++;
		if (!fit) { /* a large message goes alone, in a buffer of its class */
			n = 1;
			have = msgs[0].len <= ep->max_msg && hpn_pool_get_sized(ep->pool, msgs[0].len, bufs);
		} else {
			/* Device frames when they hold the burst: the backend
			 * sends them in place (af_xdp), no second copy. */
			struct hpn_pool *cls = ep->frames ? ep->frames : ep->pool;

			for (unsigned i = 0; cls != ep->pool && i < fit; i++)
				if (msgs[i].len > hpn_pool_buf_size(cls))
					cls = ep->pool;
			n = have = fit;
			while (have && hpn_pool_get_bulk(cls, bufs, have) != have)
				have /= 2;
			if (!have && cls != ep->pool) /* frames all out: ordinary buffers */
				for (have = fit; have && hpn_pool_get_bulk(ep->pool, bufs, have) != have;)
					have /= 2;
		}
	}
	for (; k < n; k++) {
		if (msgs[k].len > ep->max_msg || !hpn_peer_live(ep, msgs[k].peer))
			break;
		if (owned)
			bufs[k] = msgs[k].data;
		else if (k == have)
			break;
		else
			memcpy(bufs[k], msgs[k].data, msgs[k].len);
		hpn_buf_meta(ep, bufs[k])->m = (struct hpn_msg){.data = bufs[k], .len = msgs[k].len, .peer = msgs[k].peer};
	}
	if (!owned && have > k)
		hpn_pool_put_bulk(ep->pool, bufs + k, have - k); /* taken, not needed */
	if (!k)
		goto refused;
	done = hpn_ring_enqueue_burst(p->tx, bufs, k);
	if (!owned && done < k)
		hpn_pool_put_bulk(ep->pool, bufs + done, k - done);
	if (done)
		wake_prog(p);
	if (done)
		return (int)done;
refused:
	/* The texts the backends' own checks give inline (a caller's error:
	 * formatted, as there - the thread-local text is this thread's). */
	if (k == 0 && n && msgs[0].len > ep->max_msg)
		return hpn_set_error(-EMSGSIZE, "send: %u bytes, more than the largest message this endpoint takes (%u)",
				     msgs[0].len, ep->max_msg);
	if (k == 0 && n && !hpn_peer_live(ep, msgs[0].peer))
		return hpn_set_error(-ENOTCONN, "send: peer %u is not connected", msgs[0].peer);
	/* Several application threads may get here: a real atomic add. */
	__atomic_fetch_add(&ep->stats.tx_again, 1, __ATOMIC_RELAXED);
	return -EAGAIN;
}

int hpn_prog_recv(struct hpn_ep *ep, struct hpn_msg *msgs, unsigned n)
{
	void *bufs[256];
	unsigned k;

	if (n > HPN_ARRAY_SIZE(bufs))
		n = HPN_ARRAY_SIZE(bufs);
	k = hpn_ring_dequeue_burst(ep->prog->rx, bufs, n);
	if (k)
		atomic_thread_fence(memory_order_seq_cst); /* pairs with prog_sleep's fence */
	if (k && atomic_load_explicit(&ep->prog->rx_blocked, memory_order_relaxed)) {
		atomic_store_explicit(&ep->prog->rx_blocked, 0, memory_order_relaxed);
		wake_prog(ep->prog);
	}
	for (unsigned i = 0; i < k; i++) {
		struct hpn_buf_meta *m = hpn_buf_meta(ep, bufs[i]);

		msgs[i] = m->m;
	}
	return (int)k;
}

void hpn_prog_wait(struct hpn_ep *ep, uint64_t timeout_ns, bool wakeable)
{
	struct hpn_prog *p = ep->prog;
	struct pollfd pfd = {.fd = p->efd_app, .events = POLLIN};
	int ms = (int)((timeout_ns + 999999) / 1000000);

	atomic_store_explicit(&p->app_sleeping, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (!hpn_ring_count(p->rx) && !atomic_load_explicit(&ep->ev_count, memory_order_relaxed) &&
	    !(wakeable && atomic_load_explicit(&ep->wakes, memory_order_relaxed))) {
		if (poll(&pfd, 1, ms > 100 ? 100 : ms) > 0)
			hpn_efd_drain(p->efd_app);
	}
	atomic_store_explicit(&p->app_sleeping, 0, memory_order_relaxed);
}

/* ---- start / stop ------------------------------------------------------ */

static void prog_free(struct hpn_ep *ep)
{
	struct hpn_prog *p = ep->prog;
	void *b[64];
	unsigned k;

	if (!p)
		return;
	/* Hand every buffer still in flight back to the pool. */
	while ((k = hpn_ring_dequeue_burst(p->tx, b, 64)))
		hpn_pool_put_bulk(ep->pool, b, k);
	while ((k = hpn_ring_dequeue_burst(p->rx, b, 64)))
		hpn_pool_put_bulk(ep->pool, b, k);
	for (unsigned i = 0; i < p->pend_n; i++)
		hpn_pool_put_bulk(ep->pool, &p->pend[p->pend_head + i].data, 1);
	hpn_ring_destroy(p->tx);
	hpn_ring_destroy(p->rx);
	if (p->efd_prog >= 0)
		close(p->efd_prog);
	if (p->efd_app >= 0)
		close(p->efd_app);
	if (p->epfd >= 0)
		close(p->epfd);
	pthread_mutex_destroy(&p->call_lock);
	pthread_cond_destroy(&p->call_cv);
	free(p);
	ep->prog = NULL;
}

int hpn_prog_start(struct hpn_ep *ep, int cpu, int fifo, unsigned ring_size)
{
	struct hpn_prog *p = aligned_alloc(HPN_CACHELINE, (sizeof(*p) + 63) & ~(size_t)63);
	struct epoll_event ev = {.events = EPOLLIN};
	int ret;

	if (!p)
		return hpn_set_error(-ENOMEM, "out of memory for the progress thread");
	memset(p, 0, sizeof(*p));
	p->efd_prog = p->efd_app = p->epfd = -1;
	p->cpu = cpu;
	p->fifo = fifo;
	pthread_mutex_init(&p->call_lock, NULL);
	pthread_cond_init(&p->call_cv, NULL);
	ep->prog = p;
	ret = hpn_ring_create(ring_size, 0, &p->tx);
	if (!ret)
		ret = hpn_ring_create(ring_size, HPN_RING_SP_ENQ | HPN_RING_SC_DEQ, &p->rx);
	if (ret) {
		prog_free(ep);
		return hpn_set_error(ret, "cannot create progress rings of %u entries", ring_size);
	}
	p->efd_prog = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	p->efd_app = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->efd_prog < 0 || p->efd_app < 0 || p->epfd < 0) {
		ret = -errno;
		prog_free(ep);
		return hpn_set_error(ret, "progress thread: eventfd/epoll: %s", strerror(-ret));
	}
	ev.data.fd = p->efd_prog;
	epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->efd_prog, &ev);
	p->backend_fd = -1;
	watch_backend_fd(ep, p);
	ret = pthread_create(&p->thread, NULL, prog_main, ep);
	if (ret) {
		prog_free(ep);
		return hpn_set_error(-ret, "cannot start the progress thread: %s", strerror(ret));
	}
	p->started = true;
	return 0;
}

void hpn_prog_stop(struct hpn_ep *ep)
{
	struct hpn_prog *p = ep->prog;

	if (p->started) {
		atomic_store(&p->stop, true);
		hpn_efd_signal(p->efd_prog);
		pthread_join(p->thread, NULL);
	}
	prog_free(ep);
}
