/* SPDX-License-Identifier: MIT */
/* mbuf.h - mbufs over the core's device frames (mbuf.c). */
#ifndef HPN_PLUGIN_DPDK_MBUF_H
#define HPN_PLUGIN_DPDK_MBUF_H

#include <hpn/plugin.h>

#include <stdbool.h>

struct rte_mempool;
struct rte_mbuf;

#define HPN_DPDK_FRAME 4096u  /* one frame of the core's pool: one mbuf's buffer */
#define HPN_DPDK_BUF_OFF 64u  /* its buf_addr, from the frame's start (the core's bookkeeping is in front) */
#define HPN_DPDK_DATA_OFF 192u /* the pool's data pointer, from the frame's start */

/* A mempool whose mbuf i has frame i of `frames` as its buffer and whose
 * free list is the core's pool. */
int hpn_mbufs_lent(const char *name, struct hpn_pool *frames, unsigned n, int socket, struct rte_mempool **out);
/* An ordinary pktmbuf pool of n mbufs (drivers that need data inline). */
int hpn_mbufs_copy(const char *name, unsigned n, int socket, struct rte_mempool **out);
/* A lent pool's mbufs by frame index (frame i's mbuf at [i]), for the
 * per-message lookup to be one load. */
struct rte_mbuf **hpn_mbufs_table(struct rte_mempool *mp);
void hpn_mbufs_free(struct rte_mempool *mp, bool lent);

#endif
