/* SPDX-License-Identifier: MIT */
/*
 * rdma_wire.h - what the rdma backend's peers say to each other beside the
 * messages themselves: the immediates that mark control sends and credit
 * returns, and the private data of connect and accept that offers a
 * write-with-immediate ring. One definition for the plugin and for the
 * test that plays a peer which is not hpn (tests/plugins/rdma/
 * test_rdma_rogue.c), so the two cannot drift apart.
 */
#ifndef HPN_RDMA_WIRE_H
#define HPN_RDMA_WIRE_H

#include <stdint.h>

/* Private data of connect and accept: where our ring is. */
#define WIMM_MAGIC 0x68706e57u /* "hpnW" */
struct wimm_pd {
	uint32_t magic, slots, slot, rkey;
	uint64_t addr;
};

#define IMM_CREDIT 0x80000000u /* immediate flag: a credit return, not data */
#define IMM_KEEPALIVE 0x40000000u /* a zero-length send that only proves the path */
/* With IMM_KEEPALIVE: the sender is closing this connection. Sent before
 * the connection manager's disconnect request and acknowledged by RC like
 * any send: that request goes once (the sender's id is destroyed at close,
 * which cancels its resends), and with it lost the peer was never told
 * (soft-RoCE's retry_count=7 retries for ever). Older peers see a keepalive. */
#define IMM_GOODBYE 0x20000000u
/* With IMM_KEEPALIVE: answer me. A peer's life is what we receive from it,
 * not the acknowledgements of what we send: those come from its device's
 * receive side alone, which on soft-RoCE has kept acknowledging one
 * direction of a connection whose other direction had stopped for good.
 * A peer that heard nothing from us asks; the answer (a plain keepalive)
 * comes over the path that is in question. Older peers see a keepalive
 * and do not answer: against them the silence timer needs their own
 * keepalives (a peer_timeout_ms no longer than ours). */
#define IMM_PING 0x10000000u

#endif
