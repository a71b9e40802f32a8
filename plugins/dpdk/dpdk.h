/* SPDX-License-Identifier: MIT */
/* dpdk.h - what the dpdk plugin's files share (eal.c: the EAL; dpdk.c:
 * ports, memory, frames). */
#ifndef HPN_PLUGIN_DPDK_H
#define HPN_PLUGIN_DPDK_H

#include <hpn/plugin.h>

#include <stdbool.h>

/* Start the EAL once per process (later calls return the first one's
 * result). eal_args: the user's eal=, NULL for the defaults; pci: the PCI
 * port the first endpoint names (the only device scanned), or NULL. */
int hpn_dpdk_eal_start(const char *eal_args, const char *pci);
bool hpn_dpdk_eal_has_pci(void);
/* The EAL was started by hpn with its own arguments (not eal=, not the
 * application): the devices it probed are hpn's. */
bool hpn_dpdk_eal_default(void);
const char *hpn_dpdk_eal_mem(void);
/* The first error line DPDK logged since hpn_dpdk_errors_reset() (it
 * explains a failed call; later lines say only what gave up). */
const char *hpn_dpdk_last_error(void);
void hpn_dpdk_errors_reset(void);

/* Give the calling thread an lcore id, once (see eal.c). */
void hpn_dpdk_thread_register_slow(void);
extern __thread int hpn_dpdk_registered;

static inline void hpn_dpdk_thread_register(void)
{
	if (__builtin_expect(!hpn_dpdk_registered, 0))
		hpn_dpdk_thread_register_slow();
}

#endif
