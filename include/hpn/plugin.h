/* SPDX-License-Identifier: MIT */
/*
 * plugin.h - the one door between the hpn core and its backends.
 *
 * A backend is a shared object named hpn-<name>-abi<HPN_PLUGIN_ABI>.so that
 * exports exactly one symbol, HPN_PLUGIN_ENTRY_NAME, returning a const ops
 * table. The ABI number is part of both the file name and the symbol (as in
 * rdma-core), so a plugin built for another ABI cannot be loaded by mistake;
 * the loader also checks ops->abi_version and ops->size and says why it
 * refuses a plugin.
 *
 * Slots a plugin leaves NULL are filled by the loader with stubs returning
 * -EOPNOTSUPP, so the core never tests for NULL on the fast path.
 *
 * Threading contract: the core calls all ops of one plugin endpoint from one
 * thread at a time (the application thread in progress=inline mode, the
 * progress thread in progress=thread mode). Plugins therefore need no locks
 * of their own.
 *
 * Building one (plugins/meson.build does it so): link against
 * libhpntransport (the services below), export only the entry symbol
 * (plugins/plugin.map as a version script) and link with -z defs. Names are
 * what plugin= accepts: lower-case letters, digits and '_', at most 31;
 * files named otherwise are not listed, nor loaded. Listing plugins
 * (hpn_plugin_list, plugin=auto) dlopens every plugin file on the search
 * path - constructors run, and a plugin that loads stays loaded for the
 * life of the process.
 */
#ifndef HPN_PLUGIN_H
#define HPN_PLUGIN_H

#include <hpn/hpn.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HPN_PLUGIN_ABI 2
#define HPN_PLUGIN_ENTRY hpn_plugin_entry_v2
#define HPN_PLUGIN_ENTRY_NAME "hpn_plugin_entry_v2"

/** A plugin's endpoint; each plugin defines the struct. */
struct hpn_pep;
/** The core's side of an endpoint, handed to the plugin at open (opaque). */
struct hpn_core;
/** Registered buffer pool of an endpoint (opaque). */
struct hpn_pool;

/** A configuration key a plugin accepts in addition to the core's keys. */
struct hpn_plugin_param {
	const char *key;
	const char *help; /* one line, for docs and error messages */
};

/** tx_burst flag: msgs[i].data are pool buffers; ownership of the accepted
 *  ones passes to the plugin, which puts them back when transmitted. */
#define HPN_TX_OWNED (1u << 0)

struct hpn_plugin_ops {
	/* Header: never reorder; the loader reads it before trusting the rest. */
	uint32_t abi_version; /* HPN_PLUGIN_ABI */
	uint32_t size;        /* sizeof(struct hpn_plugin_ops) as compiled */
	const char *name;     /* must match the file name's <name> */
	const char *description;
	const struct hpn_plugin_param *params; /* array ended by {NULL, NULL} */

	/* Control path. All return 0 or -errno and set hpn_set_error(). */

	/** Can the backend work on this machine? Fill generic caps. why gets a
	 *  reason on failure (e.g. "no RDMA device: load rdma_rxe"). Called at
	 *  every hpn_plugin_list() and every plugin=auto endpoint, from any
	 *  thread, under the loader's lock, perhaps while this plugin's
	 *  endpoints run: quick, no side effects, and it may not call the
	 *  loader (hpn_plugin_list) itself. Not called for plugin=<name>. */
	int (*probe)(struct hpn_caps *caps, char *why, size_t why_len);
	/** Create an endpoint. Read config with hpn_core_cfg*(); fill *caps with
	 *  the endpoint's real limits (max_msg_size > 0). On failure leave
	 *  nothing behind: close is not called. hpn_core_describe() may be
	 *  called here already. */
	int (*open)(struct hpn_core *core, struct hpn_caps *caps, struct hpn_pep **out);
	/** Say goodbye to peers, release everything. Held pool buffers go back. */
	void (*close)(struct hpn_pep *pep);
	/** Register memory the backend will send from / receive into (the core's
	 *  pool). -EOPNOTSUPP (the default stub) means "not needed". */
	int (*mem_register)(struct hpn_pep *pep, void *addr, size_t len);
	int (*listen)(struct hpn_pep *pep, const char *addr);
	int (*local_addr)(struct hpn_pep *pep, char *buf, size_t len);
	/** Start connecting; report completion with hpn_core_event(). Peer ids
	 *  are the plugin's, with one rule: among live peers of an endpoint,
	 *  id % (max_peers rounded up to a power of two) is unique (udp: the
	 *  slot index in the low bits, a generation above). */
	int (*connect)(struct hpn_pep *pep, const char *addr, hpn_peer_t *peer);
	int (*disconnect)(struct hpn_pep *pep, hpn_peer_t peer);
	int (*peer_addr)(struct hpn_pep *pep, hpn_peer_t peer, char *buf, size_t len);
	/** Timers: handshake retries, keepalives, failure detection. */
	int (*progress)(struct hpn_pep *pep, uint64_t now_ns);
	/** Called right before the core sleeps: an fd that polls readable when
	 *  rx_burst or progress may have work (the plugin may arm notifications
	 *  here), -EAGAIN if work is already pending (do not sleep),
	 *  -EOPNOTSUPP if the backend can only spin (a poll-mode device: work
	 *  comes with no fd to tell of it - the core then never sleeps), or
	 *  -ENOTCONN if nothing can come yet (no socket before the first
	 *  listen or connect: the core sleeps on its own fds, up to 10 ms).
	 *  Also called once after open (wait= other than spin), to say in
	 *  hpn_ep_describe() that the endpoint's waits spin. (-ENOTCONN came
	 *  within ABI 2: a plugin that answers -EOPNOTSUPP before it has a
	 *  socket has a progress thread spin until then - as the contract
	 *  always said - where it used to sleep.) */
	int (*wait_fd)(struct hpn_pep *pep);

	/* Fast path: one indirect call per burst. */

	/** Send up to n messages; return how many leading ones were accepted,
	 *  or -errno if the first failed (-EAGAIN, -EMSGSIZE, -ENOTCONN). With
	 *  HPN_TX_OWNED the core has checked each buffer and its length
	 *  (<= caps.max_msg_size); the accepted ones are the plugin's, the
	 *  others stay the caller's. */
	int (*tx_burst)(struct hpn_pep *pep, const struct hpn_msg *msgs, unsigned n, unsigned flags);
	/** Receive up to n messages into pool buffers (ownership to the caller);
	 *  return the count (0: none) or -errno. Control packets are handled
	 *  inside and never returned. Each message's ts_ns is set (hpn.h: never
	 *  0), seq too (0 unless a feed). */
	int (*rx_burst)(struct hpn_pep *pep, struct hpn_msg *msgs, unsigned n);

	/* Control path again (ABI 2). */

	/** Per-line feed counters (hpn_feed_lines). */
	int (*feed_lines)(struct hpn_pep *pep, struct hpn_feed_line *lines, unsigned max);
};

/** The entry symbol every plugin defines (exactly once). */
typedef const struct hpn_plugin_ops *(*hpn_plugin_entry_fn)(void);

/** Define the plugin's entry point returning &ops (use once per plugin). */
#define HPN_PLUGIN_DEFINE(ops)                                                           \
	__attribute__((visibility("default"))) const struct hpn_plugin_ops *HPN_PLUGIN_ENTRY(void); \
	__attribute__((visibility("default"))) const struct hpn_plugin_ops *HPN_PLUGIN_ENTRY(void) \
	{                                                                                \
		return &(ops);                                                           \
	}

/* ------------------------------------------------------------------------ */
/* Services the core offers to plugins (exported by libhpntransport)          */
/* ------------------------------------------------------------------------ */

/** The core's own keys, parsed and checked once by the core: plugins read
 *  these instead of parsing the keys again (one default, one range). */
struct hpn_core_opts {
	uint32_t bufs;            /* pool buffers */
	uint32_t buf_size;        /* usable bytes per buffer: bounds messages */
	uint32_t burst;           /* most messages per backend call */
	uint32_t max_peers;       /* peers per endpoint */
	uint64_t peer_timeout_ms; /* silence before peer-gone; 0: no keepalive */
	uint64_t connect_retry_ms; /* interval of handshake retransmissions */
	uint32_t max_msg;         /* largest message (max_msg=, default buf_size); messages
	                             above buf_size go in the pool's large class */
	uint32_t max_msg_set;     /* max_msg= was given: refuse it rather than lower it */
};
const struct hpn_core_opts *hpn_core_opts(struct hpn_core *core);

/** Inside ops->connect: the time the application gave this connect, in
 *  ms (hpn_connect's timeout_ms; "forever" is 3600000), or 0 when it is
 *  asynchronous (timeout_ms == 0: use the backend's own handshake limit).
 *  A backend that gives up on an unanswered handshake by itself must not
 *  give up sooner than this. */
uint64_t hpn_core_connect_timeout_ms(struct hpn_core *core);

/** Value of a configuration key for this endpoint, NULL if unset. */
const char *hpn_core_cfg(struct hpn_core *core, const char *key);
/** Parse an unsigned key (accepts k/m/g suffixes); def if unset; -EINVAL
 *  with a message naming the key if malformed or outside [min, max]. */
int hpn_core_cfg_u64(struct hpn_core *core, const char *key, uint64_t def, uint64_t min,
		     uint64_t max, uint64_t *out);
/** Parse a boolean key (on/off/1/0/yes/no/true/false). */
int hpn_core_cfg_bool(struct hpn_core *core, const char *key, int def, int *out);

/** Queue an event for the application. */
void hpn_core_event(struct hpn_core *core, enum hpn_event_type type, hpn_peer_t peer, int status);
/** Queue an event with all its fields (HPN_EV_GAP's range). */
void hpn_core_event_ex(struct hpn_core *core, const struct hpn_event *ev);
/** The same, in order with the messages: the application gets it only
 *  once it has received `after` messages from this endpoint in all
 *  (hpn_stats.msgs_in: those the backend handed over before the event),
 *  or a second after it was queued if some never arrive; events behind it
 *  wait with it (hpn_poll). 0: at once. */
void hpn_core_event_after(struct hpn_core *core, const struct hpn_event *ev, uint64_t after);
/** The endpoint's counters; the plugin bumps drops/malformed/errors. */
struct hpn_stats *hpn_core_stats(struct hpn_core *core);
/** The endpoint's registered buffer pool. NULL while ops->open runs (the
 *  pool is sized from the caps open reports); valid from mem_register on,
 *  which the core calls right after creating it. */
struct hpn_pool *hpn_core_pool(struct hpn_core *core);

/** Device frames (frame backends): a class of `count` buffers of exactly
 *  `stride` bytes each (a power of two, >= 2 KiB), in one region aligned to
 *  the stride, with `headroom` bytes for the backend's headers in front of
 *  each data pointer (after the core's own). Made with the pool's hugepage,
 *  mlock and NUMA settings; call it from ops->open, once. The backend
 *  registers the region (hpn_pool_region: af_xdp's UMEM) and feeds the
 *  device from it; a received single-packet message is handed to the
 *  application in its frame, hpn_buf_put gives it back to this class, and
 *  hpn_buf_get_sized hands out frames for messages that fit one, so a
 *  zero-copy send of one leaves in place. The core destroys it after
 *  ops->close. Returns 0 or -errno with hpn_set_error(). */
int hpn_core_frames(struct hpn_core *core, unsigned count, size_t stride, size_t headroom, struct hpn_pool **out);
/** The whole memory region of one buffer class (for one registration). */
void *hpn_pool_region(const struct hpn_pool *pool, size_t *len);

/** Take n buffers (all or none). Returns n, or 0 if the pool has fewer. */
unsigned hpn_pool_get_bulk(struct hpn_pool *pool, void **bufs, unsigned n);
/** Return n buffers. Any pointer in [data - caps.headroom, data + buf_size)
 *  identifies its buffer. */
void hpn_pool_put_bulk(struct hpn_pool *pool, void *const *bufs, unsigned n);
/** Take one buffer of at least len bytes: an ordinary one when len <=
 *  hpn_pool_buf_size(), else one of the large-message class (max_msg=).
 *  Returns 1, or 0 if that class is empty or len exceeds
 *  hpn_pool_max_size(). hpn_pool_put_bulk takes either kind back. */
unsigned hpn_pool_get_sized(struct hpn_pool *pool, size_t len, void **buf);
/** Buffers of this class free now (a snapshot when other threads use it):
 *  what a device's buffer accounting may report (DPDK's mempool count). */
unsigned hpn_pool_avail(const struct hpn_pool *pool);
/** Usable bytes after the data pointer of each ordinary buffer. */
size_t hpn_pool_buf_size(const struct hpn_pool *pool);
/** The largest buffer hpn_pool_get_sized can give (the large class, if
 *  any, else hpn_pool_buf_size). */
size_t hpn_pool_max_size(const struct hpn_pool *pool);
/** Total headroom in front of each data pointer, including the core's own
 *  bookkeeping. A plugin may write only the caps.headroom bytes directly in
 *  front of the data pointer; the rest belongs to the core. */
size_t hpn_pool_headroom(const struct hpn_pool *pool);

/** Parse "host:port", "[v6]:port", ":port" or "*:port" (an empty host is
 *  any address when passive, else 127.0.0.1). socktype: SOCK_DGRAM or
 *  SOCK_STREAM. Returns 0, -EINVAL or -EHOSTUNREACH with a message. */
int hpn_addr_parse(const char *spec, int passive, int socktype, struct sockaddr_storage *out,
		   socklen_t *len);
/** Format an IPv4/IPv6 address as "host:port" / "[host]:port";
 *  -ENOSPC if len is too small. */
int hpn_addr_format(const struct sockaddr *sa, char *buf, size_t len);

/** Add what the backend chose at set-up (a mode, a device) to the
 *  endpoint's hpn_ep_describe() line, after "; ". Control path; once per
 *  endpoint is the intent (later calls append again). */
void hpn_core_describe(struct hpn_core *core, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Log a line through the application's handler. */
void hpn_log(enum hpn_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Non-zero while this thread is inside the application's log handler: what
 *  the handler writes to a stream the backend captures (DPDK's EAL start
 *  swaps stderr) must go where the handler meant it, not to hpn_log
 *  (which drops a line from inside the handler rather than wait for
 *  itself). */
int hpn_log_in_sink(void);
/** Record the thread's last-error message and return err (a -errno). */
int hpn_set_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Monotonic clock in nanoseconds (CLOCK_MONOTONIC through the vDSO). */
uint64_t hpn_now_ns(void);
/** The real clock in nanoseconds since the epoch (CLOCK_REALTIME): the
 *  domain of struct hpn_msg.ts_ns. */
uint64_t hpn_real_ns(void);

/** Single-writer counter update: readers on other threads see whole values
 *  without the cost of a locked read-modify-write. */
#define HPN_STAT_ADD(field, v) \
	__atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (v), __ATOMIC_RELAXED)

#ifdef __cplusplus
}
#endif

#endif /* HPN_PLUGIN_H */
