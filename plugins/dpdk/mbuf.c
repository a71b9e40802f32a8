/* SPDX-License-Identifier: MIT */
/*
 * mbuf.c - mbufs whose data lives in the core's pool.
 *
 * The core's device frames (hpn_core_frames: 4 KiB, in the endpoint's
 * registered region, with its hugepage/mlock/NUMA settings) are the data
 * of DPDK's mbufs, as pinned external buffers: mbuf i's buffer is frame i
 * for the mempool's whole life, and the free list is the core's, not
 * DPDK's - the mempool is driven by ops ("hpn_frames") whose dequeue takes
 * frames from the pool and whose enqueue gives them back. So:
 *
 *   - a received single-packet message is handed to the application in
 *     the frame the port wrote it to, and hpn_buf_put() frees the mbuf
 *     (its frame goes back to the pool the port refills from);
 *   - a zero-copy send of a frame (hpn_buf_get_sized hands them out)
 *     goes out from the caller's buffer: its mbuf is sent with one more
 *     reference, so the port's free after transmission only drops that;
 *   - the mempool keeps a per-lcore cache (CACHE_SIZE; every polling
 *     thread has an lcore id, eal.c): drivers such as memif allocate and
 *     free one mbuf at a time, and without it each would be a trip to the
 *     core's pool (measured on memif, 1400 B stream: 0.71x the copying
 *     pool's rate without a cache). Frames in a cache are free to DPDK and
 *     out of the core's pool; they go back when the mempool is freed.
 *
 * A frame:
 *
 *   0        64 (buf_addr)         192 (pool data pointer)          4096
 *   [core 32 | .. | PMD headroom .. | net 42 + pkt 24 in front | data ...]
 *                   rx: the port writes from buf_addr + 128
 *
 * The 64 bytes in front of buf_addr keep the core's bookkeeping out of
 * reach of a driver that writes into the headroom.
 *
 * Drivers that need an mbuf's data right behind it (net_af_xdp uses the
 * mempool's memory as its UMEM) get an ordinary pktmbuf pool instead, and
 * the plugin copies (mbufs=copy).
 */
#include "dpdk.h"
#include "mbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#define OPS_NAME "hpn_frames"
#define CACHE_SIZE 256

struct hpn_mbufs_ctx {
	struct hpn_pool *frames;
	uint8_t *region;
	size_t len;
	struct rte_mbuf **mb; /* frame index -> its mbuf */
	uint32_t n;
	bool live; /* populated: enqueues are frees (before: the frames are in the pool already) */
};

static int ops_alloc(struct rte_mempool *mp)
{
	mp->pool_data = mp->pool_config;
	return 0;
}

static void ops_free(struct rte_mempool *mp)
{
	(void)mp;
}

static int ops_enqueue(struct rte_mempool *mp, void *const *objs, unsigned n)
{
	struct hpn_mbufs_ctx *c = mp->pool_data;
	void *b[64];

	if (!c->live)
		return 0;
	while (n) {
		unsigned k = n < 64 ? n : 64;

		for (unsigned i = 0; i < k; i++)
			b[i] = ((struct rte_mbuf *)objs[i])->buf_addr;
		hpn_pool_put_bulk(c->frames, b, k);
		objs += k;
		n -= k;
	}
	return 0;
}

static int ops_dequeue(struct rte_mempool *mp, void **objs, unsigned n)
{
	struct hpn_mbufs_ctx *c = mp->pool_data;

	if (hpn_pool_get_bulk(c->frames, objs, n) != n)
		return -ENOBUFS;
	for (unsigned i = 0; i < n; i++)
		objs[i] = c->mb[((uint8_t *)objs[i] - c->region) / HPN_DPDK_FRAME];
	return 0;
}

static unsigned ops_count(const struct rte_mempool *mp)
{
	const struct hpn_mbufs_ctx *c = mp->pool_data;

	return hpn_pool_avail(c->frames);
}

static const struct rte_mempool_ops frames_ops = {
	.name = OPS_NAME,
	.alloc = ops_alloc,
	.free = ops_free,
	.enqueue = ops_enqueue,
	.dequeue = ops_dequeue,
	.get_count = ops_count,
};

/* A clone of one of our mbufs was freed: as DPDK does for pinned external
 * memory, the mbuf itself goes back once its buffer has no other user. */
static void pinned_free(void *addr, void *opaque)
{
	struct rte_mbuf *m = opaque;

	(void)addr;
	rte_mbuf_ext_refcnt_set(m->shinfo, 1);
	rte_mbuf_refcnt_set(m, 1); /* the last reference went: it is raw again */
	m->ol_flags = RTE_MBUF_F_EXTERNAL;
	m->next = NULL;
	m->nb_segs = 1;
	rte_mbuf_raw_free(m);
}

/* Object i of the mempool gets frame i as its buffer. */
static void init_one(struct rte_mempool *mp, void *arg, void *obj, unsigned i)
{
	struct hpn_mbufs_ctx *c = arg;
	struct rte_mbuf *m = obj;
	struct rte_mbuf_ext_shared_info *shinfo = (void *)(m + 1);
	uint8_t *buf = c->region + (size_t)i * HPN_DPDK_FRAME + HPN_DPDK_BUF_OFF;

	memset(m, 0, sizeof(*m));
	m->buf_addr = buf;
	rte_mbuf_iova_set(m, rte_eal_iova_mode() == RTE_IOVA_VA ? (rte_iova_t)(uintptr_t)buf : rte_mem_virt2iova(buf));
	m->buf_len = HPN_DPDK_FRAME - HPN_DPDK_BUF_OFF;
	m->data_off = RTE_PKTMBUF_HEADROOM;
	m->pool = mp;
	m->nb_segs = 1;
	m->port = RTE_MBUF_PORT_INVALID;
	m->ol_flags = RTE_MBUF_F_EXTERNAL;
	rte_mbuf_refcnt_set(m, 1);
	m->shinfo = shinfo;
	shinfo->free_cb = pinned_free;
	shinfo->fcb_opaque = m;
	rte_mbuf_ext_refcnt_set(shinfo, 1);
	c->mb[i] = m;
}

int hpn_mbufs_lent(const char *name, struct hpn_pool *frames, unsigned n, int socket, struct rte_mempool **out)
{
	static bool registered;
	struct rte_pktmbuf_pool_private priv = {.mbuf_data_room_size = HPN_DPDK_FRAME - HPN_DPDK_BUF_OFF,
						.mbuf_priv_size = 0,
						.flags = RTE_PKTMBUF_POOL_F_PINNED_EXT_BUF};
	struct hpn_mbufs_ctx *c = calloc(1, sizeof(*c));
	struct rte_mempool *mp = NULL;
	int ret;

	if (!c)
		return hpn_set_error(-ENOMEM, "dpdk: out of memory");
	c->frames = frames;
	c->region = hpn_pool_region(frames, &c->len);
	c->n = n; /* the mapping may be longer (rounded to hugepages) */
	c->len = (size_t)n * HPN_DPDK_FRAME;
	c->mb = calloc(c->n, sizeof(*c->mb));
	if (!c->mb) {
		free(c);
		return hpn_set_error(-ENOMEM, "dpdk: out of memory");
	}
	if (!registered) { /* once per process; the table is DPDK's, for its lifetime */
		ret = rte_mempool_register_ops(&frames_ops);
		if (ret < 0 && ret != -EEXIST) {
			ret = hpn_set_error(ret, "dpdk: cannot register the mempool driver: %s", rte_strerror(-ret));
			goto fail;
		}
		registered = true;
	}
	mp = rte_mempool_create_empty(name, c->n, sizeof(struct rte_mbuf) + sizeof(struct rte_mbuf_ext_shared_info),
				      CACHE_SIZE,
				      sizeof(struct rte_pktmbuf_pool_private), socket, 0);
	if (!mp) {
		ret = hpn_set_error(-rte_errno, "dpdk: cannot create the mbuf pool %s: %s (%s)", name,
				    rte_strerror(rte_errno), hpn_dpdk_last_error());
		goto fail;
	}
	ret = rte_mempool_set_ops_byname(mp, OPS_NAME, c);
	if (ret) {
		ret = hpn_set_error(ret, "dpdk: cannot use the mempool driver: %s", rte_strerror(-ret));
		goto fail;
	}
	rte_pktmbuf_pool_init(mp, &priv);
	ret = rte_mempool_populate_default(mp);
	if (ret < 0 || (unsigned)ret != c->n) {
		ret = hpn_set_error(ret < 0 ? ret : -ENOMEM,
				    "dpdk: %u mbuf headers do not fit DPDK's memory (eal= with -m gives the EAL "
				    "less; hpn's default asks for what it needs): %s",
				    c->n, hpn_dpdk_last_error());
		goto fail;
	}
	rte_mempool_obj_iter(mp, init_one, c);
	c->live = true;
	*out = mp;
	return 0;
fail:
	rte_mempool_free(mp); /* not live: frees nothing of the pool's */
	free(c->mb);
	free(c);
	return ret;
}

int hpn_mbufs_copy(const char *name, unsigned n, int socket, struct rte_mempool **out)
{
	*out = rte_pktmbuf_pool_create(name, n, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
	if (!*out)
		return hpn_set_error(-rte_errno, "dpdk: cannot create the mbuf pool %s (%u mbufs): %s (%s)", name, n,
				     rte_strerror(rte_errno), hpn_dpdk_last_error());
	return 0;
}

struct rte_mbuf **hpn_mbufs_table(struct rte_mempool *mp)
{
	return ((struct hpn_mbufs_ctx *)mp->pool_data)->mb;
}

void hpn_mbufs_free(struct rte_mempool *mp, bool lent)
{
	struct hpn_mbufs_ctx *c = lent && mp ? mp->pool_data : NULL;

	if (c) { /* the lcore caches' frames back to the core's pool, then no more */
		for (unsigned l = 0; l < RTE_MAX_LCORE; l++) {
			struct rte_mempool_cache *cache = rte_mempool_default_cache(mp, l);

			if (cache)
				rte_mempool_cache_flush(cache, mp);
		}
		c->live = false;
	}
	rte_mempool_free(mp);
	if (c) {
		free(c->mb);
		free(c);
	}
}
