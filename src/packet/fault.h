/* SPDX-License-Identifier: MIT */
/*
 * fault.h - seeded fault injection for a datagram transport: sits between
 * the reliable packet layer and the network backend (udp now, af_xdp/dpdk
 * later) and loses, reorders, duplicates, corrupts and delays datagrams on
 * their way out. Used by the tests and by benchmarks (--faults loss=0.05,...)
 * to exercise loss recovery on a network that behaves too well.
 *
 * Like the rest of src/packet it has no clock and no socket: the caller
 * passes `now` and a callback that puts a datagram on the wire, so the tests
 * run it under a virtual clock. Every decision comes from a PRNG seeded by
 * the configuration, so a failing run can be replayed exactly: same seed +
 * same sequence of calls = same faults.
 *
 * Not thread-safe: one hpn_fault per sending context. The out() callback
 * must not call back into the same hpn_fault.
 */
#ifndef HPN_PACKET_FAULT_H
#define HPN_PACKET_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hpn_fault_cfg {
	double loss, reorder, dup, corrupt, delay; /* probabilities in [0,1] per datagram */
	uint64_t delay_ns;   /* how long a delayed datagram is held (default 200 us) */
	uint64_t seed;       /* PRNG seed (default 1); same seed + same input = same faults */
};

#define HPN_FAULT_DELAY_NS_DEFAULT 200000u
#define HPN_FAULT_SEED_DEFAULT 1u

/* Parse "loss=0.05,reorder=0.1,dup=0.01,corrupt=0.001,delay=0.01,delay_us=500,seed=7"
 * into *cfg. Inside an hpn configuration string, where ',' and '=' are
 * taken, the same reads "loss:0.05/reorder:0.1/...": items may be separated
 * by ',' or '/', keys from values by '=' or ':'. Fills *cfg (defaults for
 * keys not given; a key given twice is refused, as in a config string).
 * NULL, empty string or "none" = no faults. Returns 0, or -EINVAL with a
 * readable reason in err (naming the bad key or value: probability outside
 * [0,1], unknown key, garbage after a number, missing '=') and *cfg left
 * untouched. err may be NULL when errlen is 0. */
int hpn_fault_parse(const char *spec, struct hpn_fault_cfg *cfg, char *err, size_t errlen);

/* Any probability > 0: without one, the caller may skip this layer. */
bool hpn_fault_active(const struct hpn_fault_cfg *cfg);

/* Puts one datagram on the wire. dst/dst_len are the caller's destination
 * as given to hpn_fault_xmit (a copy of it for held datagrams); pkt is
 * valid during the call only. */
typedef void (*hpn_fault_out_fn)(void *arg, const void *dst, size_t dst_len, const uint8_t *pkt,
				 size_t len);

#define HPN_FAULT_SLOTS 64     /* datagrams held at once (reordered or delayed) */
#define HPN_FAULT_DST_MAX 128  /* largest destination a held datagram can keep */

struct hpn_fault_slot {
	uint64_t release_ns; /* due time (a reordered one: its fallback) */
	uint64_t order;      /* when it was held: equal due times go out first-held first */
	size_t len;          /* bytes of the copy in hpn_fault.buf */
	size_t dst_len;
	uint8_t copies;      /* 0: slot free; 1; 2 when duplicated */
	bool reorder;        /* released as soon as xmit sends another datagram */
	/* Aligned so the caller may read it back as a struct sockaddr. */
	_Alignas(max_align_t) uint8_t dst[HPN_FAULT_DST_MAX];
};

struct hpn_fault {
	struct hpn_fault_cfg cfg;
	uint64_t rng;        /* splitmix64 state */
	size_t max_pkt;      /* largest datagram that can be copied (corrupt) or held */
	size_t stride;       /* bytes per buffer in buf (max_pkt rounded up to 64) */
	uint8_t *buf;        /* HPN_FAULT_SLOTS hold buffers, then one scratch for corrupt */
	uint64_t order;      /* next hold order */
	unsigned held;       /* slots in use */
	unsigned held_reorder; /* of which reordered */
	struct hpn_fault_slot slot[HPN_FAULT_SLOTS];
	/* Per datagram given to xmit; exact. passed + dropped = datagrams
	 * given. passed counts every datagram not dropped (it goes out, now
	 * or later, faulted or not); the fault counters below count datagrams
	 * and may overlap (a datagram can be corrupted, duplicated and held). */
	uint64_t passed, dropped, duplicated, reordered, delayed, corrupted;
	/* Datagrams whose drawn faults could not be applied (see
	 * hpn_fault_xmit) and that went out unharmed: included in passed, in
	 * none of the fault counters. Nonzero under reorder/delay: the hold
	 * slots ran out. */
	uint64_t spared;
};

/* Copies *cfg and allocates the hold buffers once (none later). max_pkt:
 * the largest datagram to copy or hold; longer ones pass unfaulted (see
 * hpn_fault_xmit). Returns 0, -EINVAL (probability outside [0,1],
 * max_pkt 0) or -ENOMEM. */
int hpn_fault_init(struct hpn_fault *f, const struct hpn_fault_cfg *cfg, size_t max_pkt);

/* Frees the buffers; datagrams still held are discarded (flush first to
 * send them). Safe to call twice. */
void hpn_fault_fini(struct hpn_fault *f);

/* One outgoing datagram. Faults are drawn independently per datagram, loss
 * first; a datagram not lost may then be corrupted, duplicated, and held
 * (reordered or delayed; both drawn: reordered). Calls out() zero (lost or
 * held), one or two (duplicated) times now, or keeps a copy to send later:
 *  - reorder: held until the next datagram xmit sends at once (to any
 *    destination) has gone out, or until tick finds it delay_ns old;
 *  - delay: held delay_ns, released by tick (or flush);
 *  - dup: the datagram goes out twice back to back, when it goes out;
 *  - corrupt: one random bit is flipped in a copy, never in the caller's
 *    buffer (which the caller may retransmit); both copies of a duplicated
 *    datagram carry the same flipped bit.
 * When its faults cannot be applied - no free hold slot, len > max_pkt or
 * dst_len > HPN_FAULT_DST_MAX for a datagram that must be copied or held,
 * or an empty datagram to corrupt - it goes out once, unharmed, counted as
 * passed and spared only. Loss and duplication alone need no copy and
 * apply to any datagram. Never allocates. */
void hpn_fault_xmit(struct hpn_fault *f, const void *dst, size_t dst_len, const uint8_t *pkt,
		    size_t len, uint64_t now, hpn_fault_out_fn out, void *arg);

/* Release held datagrams due by now (release_ns <= now), earliest first. */
void hpn_fault_tick(struct hpn_fault *f, uint64_t now, hpn_fault_out_fn out, void *arg);

/* Earliest release time of a held datagram, UINT64_MAX if none (for the
 * caller's sleep). */
uint64_t hpn_fault_next_ns(const struct hpn_fault *f);

/* Send everything still held now, earliest due first (before closing). */
void hpn_fault_flush(struct hpn_fault *f, hpn_fault_out_fn out, void *arg);

#endif
