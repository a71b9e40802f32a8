/*
 * lock.h - what one endpoint of a network namespace holds of the host,
 * held with a lock file under /run/hpn: an interface (af_xdp: its XDP
 * program), an address on an interface (dpdk riding on a kernel
 * interface: ARP and the address's datagrams). A process that dies lets
 * go with its lock; its file is taken over by the next one.
 */
#ifndef HPN_NET_LOCK_H
#define HPN_NET_LOCK_H

#include <stddef.h>

#define HPN_LOCK_DIR "/run/hpn"

struct hpn_lock {
	int fd; /* -1: not held */
	char path[128];
};

/* Take /run/hpn/KIND-NETNS-NAME.lock (names are per network namespace:
 * so is the lock). 0: ours until hpn_lock_drop; -EBUSY: held, by the
 * process in holder (its pid as text, "?" if unknown); -ESTALE: the
 * file kept being replaced; else -errno (the directory or file could not
 * be made). l->fd is -1 after any failure. */
int hpn_lock_take(struct hpn_lock *l, const char *kind, const char *name, char *holder, size_t holder_len);

/* Let go: the file is removed while still held (a taker checks that the
 * file it locked is still the one at the path), then closed. */
void hpn_lock_drop(struct hpn_lock *l);

#endif /* HPN_NET_LOCK_H */
