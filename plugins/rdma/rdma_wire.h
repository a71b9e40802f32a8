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

/* Private data of connect, accept and reject: the hello. It says the
 * sender is hpn and which version of this protocol it speaks, offers its
 * write-with-immediate ring (slots 0: none; the ring is used only if both
 * sides offer one), and in a reject says why. Big-endian, 32 bytes: RC's
 * connect carries at most 56. A connect without it (another RDMA program
 * on the port, an hpn of before version 1) is rejected with our hello, so
 * that program is told at once; an accept without it ends the connection
 * (-EPROTONOSUPPORT) before anything is sent or delivered. */
#define HPN_RDMA_MAGIC 0x68706e52u /* "hpnR" */
#define HPN_RDMA_VERSION 1
enum hpn_rdma_reject {
	HPN_RDMA_REJ_NONE = 0,    /* not a reject */
	HPN_RDMA_REJ_NOT_HPN = 1, /* the connect carried no hello */
	HPN_RDMA_REJ_VERSION = 2, /* another version: ours is in the reject */
	HPN_RDMA_REJ_FULL = 3,    /* no peer slot free (max_peers) */
	HPN_RDMA_REJ_ERROR = 4,   /* a local failure (queue pair, memory) */
};
struct hpn_rdma_hello {
	uint32_t magic;   /* HPN_RDMA_MAGIC */
	uint16_t version; /* the sender's HPN_RDMA_VERSION */
	uint16_t reject;  /* enum hpn_rdma_reject */
	uint32_t slots;   /* the ring: slots of slot bytes at addr, rkey */
	uint32_t slot;
	uint32_t rkey;
	/* The largest message the sender can receive (its receive buffers):
	 * a longer send would end the connection with a length error at the
	 * receiver, so the other side refuses it (-EMSGSIZE). 0: not said -
	 * an hpn before this field, where it was reserved and 0. */
	uint32_t max_msg;
	uint64_t addr;
};
_Static_assert(sizeof(struct hpn_rdma_hello) == 32, "the hello is 32 bytes on the wire");

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
