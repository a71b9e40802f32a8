/* SPDX-License-Identifier: MIT */
/*
 * hpn.h - the application API of libhpntransport.
 *
 * One send/recv API over several transports ("plugins": udp, rdma, af_xdp,
 * dpdk), picked by name in a configuration string.
 *
 * Conventions (liburing style):
 *  - Functions return 0 (or a count) on success and a negative errno value on
 *    failure. -EAGAIN always means "try again later" (back-pressure, nothing
 *    ready), never an error.
 *  - Control-path failures also leave a readable message for the calling
 *    thread in hpn_last_error(). Fast-path functions do not format messages,
 *    except for a caller's mistake (a NULL argument, a message too long).
 *  - Constructors return the object through their last parameter.
 *  - A NULL endpoint is refused: -EINVAL with a message from every call
 *    returning int, NULL (or 0) from the accessors, nothing done by
 *    hpn_buf_put. A destroyed endpoint is not detected (undefined).
 *  - The library never prints to stdout and never exits the process; it logs
 *    through hpn_log_set_handler() (silent by default; HPN_LOG_LEVEL=warn|
 *    info|debug sends log lines to stderr).
 *  - Handles are opaque. Public structs are filled by the library and only
 *    grow at their end.
 *
 * Threading: an endpoint may be used by one application thread at a time
 * (plus its own progress thread in progress=thread mode). hpn_send* may be
 * called from several threads at once only in progress=thread mode (the
 * transmit ring is multi-producer). hpn_ep_wake() may be called from any
 * thread, or a signal handler, at any time while the endpoint exists.
 */
#ifndef HPN_HPN_H
#define HPN_HPN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HPN_VERSION_MAJOR 0
#define HPN_VERSION_MINOR 3
#define HPN_VERSION_PATCH 0

/** Library version string, e.g. "0.3.0". At 0.x a new minor version may
 *  change the ABI (0.2.0: struct hpn_msg and struct hpn_event grew); the
 *  soname says which (libhpntransport.so.1 since 0.2.0; 0.3.0 only added
 *  hpn_ep_wake). */
const char *hpn_version(void);

/* ------------------------------------------------------------------------ */
/* Errors and logging                                                        */
/* ------------------------------------------------------------------------ */

/**
 * Message describing the last control-path error of the calling thread
 * (thread-local). Never NULL; "" when no error was recorded. The text is
 * overwritten by the next failing call on this thread.
 */
const char *hpn_last_error(void);

enum hpn_log_level {
	HPN_LOG_ERROR = 0,
	HPN_LOG_WARN = 1,
	HPN_LOG_INFO = 2,
	HPN_LOG_DEBUG = 3,
};

/** Log sink. `msg` has no trailing newline. Called from any library thread. */
typedef void (*hpn_log_fn)(void *arg, enum hpn_log_level level, const char *msg);

/**
 * Route library log lines with level <= max_level to fn (NULL: silence).
 * Replaces the default (silent unless HPN_LOG_LEVEL is set, then stderr).
 */
void hpn_log_set_handler(hpn_log_fn fn, void *arg, enum hpn_log_level max_level);

/* ------------------------------------------------------------------------ */
/* Plugins                                                                   */
/* ------------------------------------------------------------------------ */

/** Capability flags of a backend (struct hpn_caps.flags). */
#define HPN_CAP_ZERO_COPY (1u << 0) /* sends from / receives into pool memory without a copy */
#define HPN_CAP_RELIABLE (1u << 1)  /* no loss: delivery or a peer-gone event */
#define HPN_CAP_ORDERED (1u << 2)   /* per-peer order preserved */
#define HPN_CAP_MULTICAST (1u << 3) /* one-to-many groups */
#define HPN_CAP_KERNEL_BYPASS (1u << 4)
#define HPN_CAP_NEEDS_PRIV (1u << 5) /* needs root / CAP_NET_RAW / a device */
/* Where receive timestamps (struct hpn_msg.ts_ns) come from. At most one
 * of the first two; neither: the time the backend's receive call found the
 * message (its burst), which is all it can know. */
#define HPN_CAP_TS_HW (1u << 6)     /* the NIC's, where it stamps (else kernel) */
#define HPN_CAP_TS_KERNEL (1u << 7) /* the kernel's on arrival (SO_TIMESTAMPING) */
/* framing=none: plain datagrams, no hpn header - talks to any UDP peer */
#define HPN_CAP_PLAIN (1u << 8)

struct hpn_caps {
	uint32_t max_msg_size; /* largest message hpn_send accepts, bytes */
	uint32_t inline_size;  /* messages up to this size avoid a DMA read */
	uint32_t flags;        /* HPN_CAP_* */
	uint32_t headroom;     /* bytes the backend keeps in front of payload */
	int32_t preference;    /* ranking used by plugin=auto; higher wins */
};

struct hpn_plugin_info {
	const char *name;        /* "udp", ... */
	const char *path;        /* file it was found at */
	const char *description; /* one line, NULL if it could not be loaded */
	int status;              /* 0: usable here; else -errno */
	const char *reason;      /* why not usable ("" when status == 0) */
	struct hpn_caps caps;    /* valid when description != NULL */
};

/**
 * Scan the plugin search path (HPN_PLUGIN_PATH, then next to the library,
 * then the install directory), try to load every plugin file found and ask
 * each whether it can work on this machine.
 * On success *list points to an array owned by the library, valid until the
 * next call of hpn_plugin_list() from any thread; returns the number of
 * entries (0 when nothing was found). Plugins that failed to load are
 * listed too, with status < 0 and a reason.
 */
int hpn_plugin_list(const struct hpn_plugin_info **list);

/* ------------------------------------------------------------------------ */
/* Endpoints and peers                                                       */
/* ------------------------------------------------------------------------ */

typedef struct hpn_ep hpn_ep;

/** Peer identifier, local to one endpoint. */
typedef uint32_t hpn_peer_t;
#define HPN_PEER_NONE UINT32_MAX

/**
 * Create an endpoint from a configuration string of comma-separated
 * key=value pairs, e.g. "plugin=udp,progress=inline,wait=spin,hugepages=auto".
 * Every key may be overridden by an environment variable HPN_<KEY> (upper
 * case), which wins over the string. Unknown keys and bad values fail with
 * -EINVAL and a message naming the key. `config` may be NULL or "".
 * See docs/CONFIG.md for all keys.
 */
int hpn_ep_create(const char *config, hpn_ep **ep_out);

/**
 * Close the endpoint: say goodbye to connected peers, stop the progress
 * thread, release all memory. Buffers the application still holds become
 * invalid. NULL is ignored. No other thread may be inside a call on the
 * endpoint, or enter one, meanwhile (the memory it uses goes): a thread
 * that waits in hpn_recv_wait() is stopped by hpn_ep_wake() and a flag of
 * the application's, and joined, not by destroying the endpoint under it.
 */
void hpn_ep_destroy(hpn_ep *ep);

/** Name of the plugin the endpoint runs on (e.g. "udp"). */
const char *hpn_ep_plugin(const hpn_ep *ep);

/** Capabilities of the endpoint's backend; owned by the endpoint. */
const struct hpn_caps *hpn_ep_caps(const hpn_ep *ep);

/**
 * Human-readable one-line description of how the endpoint was set up
 * (plugin, progress mode, memory kind, why plugin=auto chose this backend).
 * Owned by the endpoint.
 */
const char *hpn_ep_describe(const hpn_ep *ep);

/**
 * Accept peers on "host:port" (host may be empty or "*" for any address;
 * port 0 picks a free port - see hpn_ep_local_addr(); a port that is not a
 * decimal number up to 65535 is -EINVAL, here and in hpn_connect). New peers arrive as
 * HPN_EV_PEER_NEW events. On a backend with HPN_CAP_MULTICAST, a group
 * address ("239.1.2.3:5000") subscribes: each publisher heard on the group
 * arrives as HPN_EV_PEER_NEW and its messages as from that peer.
 */
int hpn_listen(hpn_ep *ep, const char *addr);

/**
 * Write the endpoint's bound local address as "host:port" into buf.
 * Returns 0, -ENOTCONN if nothing is bound yet, -ENOSPC if buf is too small.
 */
int hpn_ep_local_addr(hpn_ep *ep, char *buf, size_t len);

/**
 * Connect to a peer at "host:port".
 * timeout_ms > 0: drive progress until the peer answers; returns 0 and the
 *   peer in *peer, or -ETIMEDOUT / -ECONNREFUSED / -EHOSTUNREACH, or
 *   -EPROTO (packet backends: the peer runs another reliable=/unordered=
 *   mode), or -EPROTONOSUPPORT (rdma: the peer is not hpn, or speaks
 *   another version of its protocol) - the same status in HPN_EV_PEER_GONE
 *   when connecting async. The
 *   handshake is retried for the whole timeout, also when it is longer
 *   than peer_timeout_ms. timeout_ms < 0: an hour.
 * timeout_ms == 0: start connecting and return -EINPROGRESS with *peer set;
 *   an HPN_EV_CONNECTED or HPN_EV_PEER_GONE event for it follows (gone
 *   with -ETIMEDOUT after the backend's own limit, peer_timeout_ms).
 * With HPN_CAP_MULTICAST, a group address publishes: the peer is the group,
 * connected at once (nobody answers a group).
 */
int hpn_connect(hpn_ep *ep, const char *addr, int timeout_ms, hpn_peer_t *peer);

/** Close one peer (it sees HPN_EV_PEER_GONE). -ENOENT for unknown peers. */
int hpn_disconnect(hpn_ep *ep, hpn_peer_t peer);

enum hpn_event_type {
	HPN_EV_PEER_NEW = 1,  /* a peer connected to our hpn_listen() */
	HPN_EV_CONNECTED = 2, /* our hpn_connect() completed */
	HPN_EV_PEER_GONE = 3, /* peer closed (status 0), timed out (-ETIMEDOUT),
	                         refused/unreachable (-ECONNREFUSED, ...: also a
	                         connected peer whose port closed - a process
	                         that died, on udp: the ICMP error comes before
	                         the timeout would), or a
	                         reliable stream that can no longer deliver every
	                         message in order (-EPROTO: no progress for 10
	                         peer timeouts, or contradicting packets; a log
	                         line says which, docs/WIRE.md) - its peer is
	                         told and ends it too (-ECONNRESET). Messages
	                         received from it before stay readable with
	                         hpn_recv* after this event (a separate queue) */
	/* Feeds (seq=, see docs/FEEDS.md): */
	HPN_EV_GAP = 4, /* messages seq .. seq+count-1 were lost on every line
	                   (after gap_timeout_us, once the lines were read
	                   up to now); later messages are delivered.
	                   A late copy of a lost one is still delivered (once),
	                   and the gap is not reported again. peer: the line's
	                   source that showed the gap */
	HPN_EV_FEED_END = 5, /* the feed's source ended its session (MoldUDP64
	                        end of session, seen twice: both lines, or a
	                        repeat; seq: the next sequence number) */
	HPN_EV_FEED_RESTART = 6, /* the feed started again at seq: a new session
	                            (after the end, or a source restarted), or a
	                            start that no later packet agreed with (a
	                            stray datagram came first) was replaced.
	                            In order with the messages: a receive burst
	                            ends at the old start's last message queued
	                            for the application, and hpn_poll gives the
	                            event only after it was received (up to a
	                            second, if some never arrive); receives then
	                            return nothing (hpn_recv_wait: 0, an event
	                            waits) until it is polled - for 10 ms at
	                            most, then they flow on and a warning says
	                            so - and the messages after it are the new
	                            start's: rebuild state from seq on */
};

struct hpn_event {
	enum hpn_event_type type;
	hpn_peer_t peer;
	int status;     /* 0 or -errno, see enum hpn_event_type */
	uint64_t seq;   /* HPN_EV_GAP: first missing sequence number (FEED_END,
	                   FEED_RESTART: see there) */
	uint64_t count; /* HPN_EV_GAP: how many are missing */
};

/**
 * Drive control-path progress (handshakes, keepalives, failure detection)
 * and return up to max pending events. In progress=inline mode call this
 * regularly (every millisecond or so is plenty) - or receive: every 64th
 * receive (and every 64th send refused for a closed window) looks at the
 * clock and runs progress if a millisecond has passed since it last ran
 * (so a busy receive or send loop needs no hpn_poll; a caller that calls
 * in rarely does). Acks, retransmissions, keepalives and connection events
 * run only inside the library's calls, and a peer silent for
 * peer_timeout_ms is gone. Accepted messages beyond the congestion window
 * (cc=on: the default on udp) also leave only from these calls. In
 * progress=thread mode it only hands over events. Returns the number of events (0 if none).
 * events NULL (or max 0): progress only, the events stay pending.
 */
int hpn_poll(hpn_ep *ep, struct hpn_event *events, unsigned max);

/** Write "host:port" of a peer into buf. -ENOENT for unknown peers. */
int hpn_peer_addr(hpn_ep *ep, hpn_peer_t peer, char *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* Data path                                                                 */
/* ------------------------------------------------------------------------ */

/** One message: payload, its length and the peer it goes to / came from;
 *  received ones also say when they arrived and, on a feed, their sequence
 *  number. Sends read data, len and peer only. */
struct hpn_msg {
	void *data;
	uint32_t len;
	hpn_peer_t peer;
	/* Receive timestamp, nanoseconds since the epoch (CLOCK_REALTIME, the
	 * clock exchanges stamp with): when the NIC or kernel received the
	 * packet that carried it where the backend can know that
	 * (HPN_CAP_TS_HW, HPN_CAP_TS_KERNEL), else when the backend's receive
	 * call found it. Never 0 on a received message. */
	uint64_t ts_ns;
	/* Feeds (seq=): the message's sequence number; 0 otherwise. */
	uint64_t seq;
};

/**
 * Copy-send one message. Returns 0, -EAGAIN (back-pressure: nothing was
 * sent, try again), -EMSGSIZE (len > caps.max_msg_size, or, on a backend
 * that negotiates limits, larger than the peer can take), -ENOTCONN (peer
 * not connected or gone), -EINVAL (data NULL with len > 0; NULL with len 0
 * sends an empty message). The caller keeps ownership of data.
 * progress=thread: what the application thread can check (caps.max_msg_size,
 * a peer known to be gone) is returned here; what only the progress thread
 * learns (the peer's smaller negotiated limit, a peer lost meanwhile) turns
 * an accepted message into a logged failure counted in hpn_stats.tx_failed.
 */
int hpn_send(hpn_ep *ep, hpn_peer_t peer, const void *data, size_t len);

/**
 * Copy-send up to n messages in one call. Returns how many leading messages
 * were accepted (0..n), or a negative errno if the first one failed (see
 * hpn_send). The caller keeps ownership of every data pointer; each must
 * point at len readable bytes, and not be NULL even when len is 0 (the
 * burst does not look at each message: that is hpn_send's check).
 */
int hpn_send_burst(hpn_ep *ep, const struct hpn_msg *msgs, unsigned n);

/**
 * Zero-copy send: every msgs[i].data must point into a buffer of this
 * endpoint's pool that the caller owns (from hpn_buf_get() or a receive),
 * at or after the buffer's data pointer, with len bytes fitting in the
 * buffer. Ownership of the accepted buffers (the return value counts them,
 * as in hpn_send_burst) passes to the library, which releases them after
 * transmission; buffers not accepted stay with the caller. A pointer that
 * breaks the rule is refused before any memory is touched: -EINVAL with a
 * message in hpn_last_error() when it is the first message, else the
 * messages before it are sent and the count returned. Refused are pointers
 * outside the pool, into a buffer's headroom, running past its end, into
 * a buffer already back in the pool, or into a buffer a zero-copy send
 * already took (a second send of it, later or in the same burst, while the
 * library still holds it). A message longer than caps.max_msg_size is
 * refused the same way, -EMSGSIZE.
 */
int hpn_send_zc_burst(hpn_ep *ep, const struct hpn_msg *msgs, unsigned n);

/**
 * Receive up to n messages without waiting. Each returned msgs[i].data is a
 * registered buffer owned by the caller until it passes it to hpn_buf_put()
 * (or sends it with hpn_send_zc_burst). Returns the count (0 when nothing
 * is ready) or a negative errno.
 */
int hpn_recv_burst(hpn_ep *ep, struct hpn_msg *msgs, unsigned n);

/**
 * Like hpn_recv_burst but waits up to timeout_ms (negative: no limit) using the
 * endpoint's wait mode (wait=spin|adaptive|block). Returns > 0 messages,
 * 0 on timeout, when an event became pending (see hpn_poll) or after
 * hpn_ep_wake(), or -errno.
 */
int hpn_recv_wait(hpn_ep *ep, struct hpn_msg *msgs, unsigned n, int timeout_ms);

/**
 * Make the hpn_recv_wait() now waiting on ep return 0 at once - or, if none
 * is waiting, the next one once it finds nothing to receive (messages that
 * are there are still returned first). Wakes before a wait are not counted:
 * any number of them ends one wait. Returns 0; -EINVAL for a NULL ep,
 * without a message in hpn_last_error() (formatting one is not
 * async-signal-safe).
 *
 * The one call that may come from any thread while another uses the
 * endpoint, and from a signal handler: what stops a thread blocked in
 * hpn_recv_wait(ep, ..., -1) - set the application's own stop flag, call
 * hpn_ep_wake(), join the thread, then hpn_ep_destroy() (a signal handler
 * that calls it must be kept from running from then on). It costs a
 * system call in progress=inline (an eventfd the wait sleeps on), and one
 * only if the wait sleeps in progress=thread. Since 0.3.0.
 */
int hpn_ep_wake(hpn_ep *ep);

/**
 * Copy-receive one message into buf without waiting. Returns its length and
 * sets *peer, -EAGAIN if none is ready, or -EMSGSIZE if it is longer than
 * len (the message stays queued: call again with a larger buffer).
 */
int hpn_recv(hpn_ep *ep, hpn_peer_t *peer, void *buf, size_t len);

/**
 * Take a buffer from the endpoint's registered pool (hugepage memory when
 * available). Its usable size is hpn_buf_size(). Returns 0 and *data, or
 * -ENOBUFS when the pool is empty.
 */
int hpn_buf_get(hpn_ep *ep, void **data);

/**
 * Take a buffer of at least size bytes: on a backend with device frames
 * (af_xdp: its UMEM), a frame when size fits one - a zero-copy send of it
 * leaves without any copy; else an ordinary one when size fits
 * hpn_buf_size(), else one of the large-message class that max_msg= above
 * buf_size= creates (large_bufs= of them). Returns 0 and *data, -ENOBUFS
 * when that class is empty, -EMSGSIZE when size exceeds the largest
 * message (hpn_caps.max_msg_size). hpn_buf_put() takes either kind back.
 */
int hpn_buf_get_sized(hpn_ep *ep, size_t size, void **data);

/**
 * Return a buffer obtained from hpn_buf_get() or hpn_recv_burst(). Any
 * pointer into the buffer identifies it. A buffer that is already back in
 * the pool (a second hpn_buf_put), one hpn_send_zc_burst took (the library
 * puts it back once it is sent), and a pointer that is not from this
 * endpoint's pool are refused instead of giving one buffer two owners:
 * nothing happens to the pool, the first such mistake of each kind is
 * logged at HPN_LOG_ERROR and each is counted in hpn_stats.errors. Not
 * caught: two threads putting the same buffer at the same instant, and a
 * pointer kept after its buffer was put back and handed out again (it is
 * someone else's buffer by then).
 */
void hpn_buf_put(hpn_ep *ep, void *data);

/** Usable bytes of each ordinary pool buffer (hpn_buf_get). */
size_t hpn_buf_size(const hpn_ep *ep);

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */
/* ------------------------------------------------------------------------ */

struct hpn_stats {
	uint64_t msgs_out, bytes_out;
	uint64_t msgs_in, bytes_in;
	uint64_t errors;    /* send/receive failures reported by the backend, and
	                       buffers refused by hpn_buf_put (see there) */
	uint64_t drops;     /* received and discarded (malformed, unknown peer,
	                       truncated, ring full; not the last packets of
	                       a stream that just ended); rdma: connects refused */
	uint64_t malformed; /* subset of drops: failed validation */
	uint64_t tx_again;  /* sends refused with -EAGAIN (back-pressure) */
	/* Packet backends with reliable=on (udp): */
	uint64_t retransmits; /* packets sent again (loss, or a late ack) */
	uint64_t gaps;        /* unordered mode: packets never received (each held one
	                         message, a fragment, or a batch of small ones) */
	uint64_t unacked;     /* messages sent to peers that died before acking them */
	/* progress=thread: messages hpn_send* accepted (returned them as sent)
	 * that the backend then refused on the progress thread - larger than
	 * the peer's negotiated largest message or window, or the peer went
	 * away meanwhile. Each is also in errors and is logged (1st, 2nd, 4th,
	 * ... time). Inline mode returns those errors from hpn_send* instead. */
	uint64_t tx_failed;
	/* Payload copies the library made beyond what was asked for (the
	 * kernel's own, on kernel backends, are not counted): tx_copied -
	 * messages copied again on their way out: a zero-copy send the backend
	 * could not send in place, a copy send's buffer copied into a device
	 * frame (hpn_send/hpn_send_burst copy each message once: that one is
	 * what they ask for, not counted); rx_copied - messages copied between the buffer they arrived
	 * in and the one handed to the application (packet backends copy a
	 * message that spans packets, shares one with others, or arrived ahead
	 * of a gap; af_xdp and udp hand every other one over where it landed). */
	uint64_t tx_copied;
	uint64_t rx_copied;
	/* Feeds (seq=, docs/FEEDS.md), all lines together: */
	uint64_t feed_msgs;     /* messages delivered */
	uint64_t feed_gaps;     /* HPN_EV_GAP events */
	uint64_t feed_gap_msgs; /* messages they reported lost */
	uint64_t feed_dups;     /* messages dropped as already delivered (the other
	                           line's copy, or a repeat) */
	uint64_t feed_late;     /* messages of a reported gap delivered late */
	/* Datagrams the kernel or the device dropped for this endpoint before
	 * it read them - its receive buffer or ring was full (a reader that
	 * stopped too long: see rcvbuf=, frames=, rxd=): udp the sockets' drop
	 * counts (the kernel counts datagrams with a bad checksum there too),
	 * af_xdp the XDP socket's (no fill frame, rx ring full), dpdk the
	 * port's missed count (net_af_packet and memif count none). Read by
	 * progress each second. */
	uint64_t rx_dropped;
};

/**
 * Copy the endpoint's counters into *st (at most size bytes, so programs
 * built against an older, shorter struct keep working). Returns 0.
 */
int hpn_ep_stats(hpn_ep *ep, struct hpn_stats *st, size_t size);

/* ------------------------------------------------------------------------ */
/* Feeds                                                                     */
/* ------------------------------------------------------------------------ */

/** One line of a feed (an hpn_listen address on an endpoint with seq=). */
struct hpn_feed_line {
	char addr[64];     /* as listened: "group:port" or "group@source:port" */
	uint64_t packets;  /* packets of the feed that came on this line */
	uint64_t wins;     /* of those, the ones that delivered messages first */
	uint64_t dups;     /* of those, the ones that brought nothing new */
	/* How much earlier this line's copy of a packet arrived than another
	 * line's copy of it (negative: later), summed over the packets both
	 * brought within the last 4096 sequence numbers; mean = sum / count.
	 * With three or more lines each copy is measured against the earliest
	 * one (whatever order the lines are read in). */
	int64_t lead_ns_sum;
	uint64_t lead_count;
};

/**
 * Per-line counters of the endpoint's feed, in the order the lines were
 * listened to: fills up to max entries and returns how many lines there
 * are (may exceed max), or -EOPNOTSUPP when the endpoint has no seq=.
 */
int hpn_feed_lines(hpn_ep *ep, struct hpn_feed_line *lines, unsigned max);

/**
 * Write a MoldUDP64 retransmission request (20 bytes: the session, the
 * first sequence number, the count) into buf - what an HPN_EV_GAP asks
 * for, to send to the feed's request server with hpn_send on a
 * framing=none endpoint. Returns 20, or -ENOSPC when len < 20, -EINVAL
 * when count is 0 or above 65534.
 */
int hpn_moldudp64_request(void *buf, size_t len, const char session[10], uint64_t seq, uint32_t count);

/* ------------------------------------------------------------------------ */
/* Latency histogram                                                         */
/* ------------------------------------------------------------------------ */

/*
 * Log-linear histogram of non-negative integer values (e.g. nanoseconds):
 * values below 512 are exact, larger ones are reported within 1/256 (0.4 %)
 * of the true value; count, min, max, mean and standard deviation are exact
 * (of the values as recorded, i.e. after clamping to max_value). Recording
 * is O(1) (~2 ns), allocation-free and not thread-safe (use one histogram
 * per thread and hpn_hist_merge()). Getters return 0 for an empty
 * histogram; passing NULL to anything but destroy is undefined.
 */
typedef struct hpn_hist hpn_hist;

/** Create a histogram for values 0..max_value (values above are clamped).
 *  Returns 0, -EINVAL (max_value 0 or out NULL) or -ENOMEM. */
int hpn_hist_create(uint64_t max_value, hpn_hist **out);
void hpn_hist_destroy(hpn_hist *h);
void hpn_hist_reset(hpn_hist *h);
void hpn_hist_record(hpn_hist *h, uint64_t value);
/** Add all samples of src to dst. -EINVAL if their ranges differ. */
int hpn_hist_merge(hpn_hist *dst, const hpn_hist *src);
uint64_t hpn_hist_count(const hpn_hist *h);
uint64_t hpn_hist_min(const hpn_hist *h); /* 0 when empty */
uint64_t hpn_hist_max(const hpn_hist *h);
double hpn_hist_mean(const hpn_hist *h);
double hpn_hist_stdev(const hpn_hist *h); /* population standard deviation */
/**
 * Value at percentile p (0..100): the smallest value v such that at least
 * p % of the samples are <= v, to the histogram's precision (the upper end
 * of v's bucket, clamped to [min, max]). 0 when empty.
 */
uint64_t hpn_hist_percentile(const hpn_hist *h, double p);

#ifdef __cplusplus
}
#endif

#endif /* HPN_HPN_H */
