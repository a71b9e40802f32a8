/* SPDX-License-Identifier: MIT */
/*
 * eal.c - DPDK's Environment Abstraction Layer, started once per process
 * by the first dpdk endpoint, and the threads that poll registered with it.
 *
 * The EAL is a process-wide singleton that cannot be started twice or
 * stopped and started again, so it outlives every endpoint (the plugin is
 * linked -z nodelete: unloading it would leave DPDK's constructors and
 * threads pointing into freed code). What it is started with:
 *
 *   --lcores 0@(the caller's CPUs)  the calling thread becomes lcore 0
 *                                   without being re-pinned
 *   --in-memory | --no-huge         no files under /var/run/dpdk, so two
 *   --file-prefix hpn-<pid>         processes on a host never collide
 *   --no-pci | -a <pci address>     no PCI scan unless a PCI port is named
 *   --no-telemetry                  no socket, no extra thread
 *
 * or, with eal="...", exactly the arguments given. DPDK's log lines go to
 * hpn_log (the library never writes to stdout or stderr), and the last
 * error line is kept to explain a failure.
 */
#include "dpdk.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_log.h>

static pthread_mutex_t eal_lock = PTHREAD_MUTEX_INITIALIZER;
static int eal_state;       /* 0 not tried, 1 up, < 0: the failure (it cannot be retried) */
static char eal_failure[256];
static bool eal_pci;        /* started with the PCI bus */
static char eal_mem[96];    /* how its memory was set up, for describe */
static pthread_key_t reg_key;
__thread int hpn_dpdk_registered; /* 0 not tried, 1 an lcore, -1 none to be had */
static __thread char log_line[512];
static __thread size_t log_len;
static char last_err[256];

/* ---- DPDK's log, into hpn_log ---------------------------------------------- */

static void log_flush(void)
{
	int lvl = rte_log_cur_msg_loglevel();

	while (log_len && (log_line[log_len - 1] == '\n' || log_line[log_len - 1] == ' '))
		log_len--;
	log_line[log_len] = 0;
	if (!log_len)
		return;
	if (lvl <= (int)RTE_LOG_ERR) {
		if (!last_err[0]) /* the first says why; the rest say what gave up */
			snprintf(last_err, sizeof(last_err), "%s", log_line);
		hpn_log(HPN_LOG_WARN, "dpdk: %s", log_line);
	} else {
		hpn_log(lvl <= (int)RTE_LOG_NOTICE ? HPN_LOG_INFO : HPN_LOG_DEBUG, "dpdk: %s", log_line);
	}
	log_len = 0;
}

static ssize_t log_write(void *cookie, const char *buf, size_t size)
{
	(void)cookie;
	for (size_t i = 0; i < size; i++) {
		if (log_len < sizeof(log_line) - 1)
			log_line[log_len++] = buf[i];
		if (buf[i] == '\n')
			log_flush();
	}
	return (ssize_t)size;
}

const char *hpn_dpdk_last_error(void)
{
	return last_err[0] ? last_err : "no reason logged";
}

void hpn_dpdk_errors_reset(void)
{
	last_err[0] = 0;
}

/* ---- arguments ------------------------------------------------------------- */

struct argv_buf {
	char *v[64];
	int n;
	char store[2048];
	size_t used;
};

static void arg(struct argv_buf *a, const char *s)
{
	size_t len = strlen(s) + 1;

	if (a->n >= 63 || a->used + len > sizeof(a->store))
		return;
	memcpy(a->store + a->used, s, len);
	a->v[a->n++] = a->store + a->used;
	a->used += len;
}

/* Split eal="..." at spaces (no quoting inside: EAL arguments have none). */
static void args_split(struct argv_buf *a, const char *s)
{
	char tok[256];

	while (*s) {
		size_t n = strcspn(s, " \t");

		if (n && n < sizeof(tok)) {
			memcpy(tok, s, n);
			tok[n] = 0;
			arg(a, tok);
		}
		s += n;
		s += strspn(s, " \t");
	}
}

/* The calling thread's CPUs as an EAL cpu set: "(0,1,3)". */
static void cpu_set_str(char *out, size_t len)
{
	cpu_set_t set;
	size_t used = 0;

	if (sched_getaffinity(0, sizeof(set), &set)) {
		snprintf(out, len, "(0)");
		return;
	}
	used += (size_t)snprintf(out, len, "(");
	for (int c = 0; c < CPU_SETSIZE && used < len; c++)
		if (CPU_ISSET(c, &set))
			used += (size_t)snprintf(out + used, len - used, "%s%d", used > 1 ? "," : "", c);
	if (used < len)
		snprintf(out + used, len - used, ")");
}

/* 2 MB hugepages free and a hugetlbfs mount to find them by. */
static unsigned free_hugepages(void)
{
	FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "r");
	unsigned n = 0;
	char line[512];
	bool mounted = false;

	if (!f)
		return 0;
	if (fscanf(f, "%u", &n) != 1)
		n = 0;
	fclose(f);
	f = fopen("/proc/mounts", "r");
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, " hugetlbfs "))
			mounted = true;
	if (f)
		fclose(f);
	return mounted ? n : 0;
}

#define EAL_MEM_MB 128 /* mbuf headers, device rings: the payload memory is the core's pool */

static void default_args(struct argv_buf *a, const char *pci)
{
	char buf[160], cpus[128];
	unsigned huge = free_hugepages();

	arg(a, "--no-telemetry");
	snprintf(buf, sizeof(buf), "hpn-%d", (int)getpid());
	arg(a, "--file-prefix");
	arg(a, buf);
	cpu_set_str(cpus, sizeof(cpus));
	snprintf(buf, sizeof(buf), "0@%s", cpus);
	arg(a, "--lcores");
	arg(a, buf);
	if (pci) {
		arg(a, "-a");
		arg(a, pci);
	} else {
		arg(a, "--no-pci");
	}
	snprintf(buf, sizeof(buf), "%d", EAL_MEM_MB);
	if (huge >= EAL_MEM_MB / 2) {
		arg(a, "--in-memory");
		arg(a, "-m");
		arg(a, buf);
		snprintf(eal_mem, sizeof(eal_mem), "%d MB on hugepages", EAL_MEM_MB);
	} else {
		arg(a, "--no-huge");
		arg(a, "--no-shconf");
		arg(a, "-m");
		arg(a, buf);
		snprintf(eal_mem, sizeof(eal_mem), "%d MB on normal pages", EAL_MEM_MB);
		hpn_log(HPN_LOG_WARN, "dpdk: no free 2 MB hugepages on a hugetlbfs mount: DPDK runs on normal pages "
				      "(--no-huge; slower TLB, and no PCI device can DMA there without an IOMMU); "
				      "reserve them with: tools/hpn-hugepages 256 --mount /dev/hugepages");
	}
}

static void unregister_thread(void *unused)
{
	(void)unused;
	rte_thread_unregister();
}

/* ---- start ----------------------------------------------------------------- */

int hpn_dpdk_eal_start(const char *eal_args, const char *pci)
{
	struct argv_buf a = {.n = 0};
	int ret;

	pthread_mutex_lock(&eal_lock);
	if (eal_state) {
		ret = eal_state > 0 ? 0 : hpn_set_error(eal_state, "%s", eal_failure);
		pthread_mutex_unlock(&eal_lock);
		return ret;
	}
	rte_openlog_stream(fopencookie(NULL, "w", (cookie_io_functions_t){.write = log_write}));
	hpn_dpdk_errors_reset();
	arg(&a, "hpn");
	if (eal_args) {
		args_split(&a, eal_args);
		snprintf(eal_mem, sizeof(eal_mem), "eal=\"%s\"", eal_args);
	} else {
		default_args(&a, pci);
	}
	eal_pci = !eal_args ? pci != NULL : !strstr(eal_args, "--no-pci");
	ret = rte_eal_init(a.n, a.v);
	if (ret < 0 && rte_errno == EALREADY) {
		hpn_log(HPN_LOG_INFO, "dpdk: the EAL was started by the application: using it");
		eal_pci = true;
		ret = 0;
	}
	if (ret < 0) {
		int err = rte_errno ? -rte_errno : -EINVAL;

		snprintf(eal_failure, sizeof(eal_failure), "dpdk: the EAL would not start: %s (%s)%s",
			 hpn_dpdk_last_error(), rte_strerror(-err),
			 err == -EACCES || err == -EPERM ? " - run as root" : "");
		eal_state = err;
		pthread_mutex_unlock(&eal_lock);
		return hpn_set_error(err, "%s", eal_failure);
	}
	pthread_key_create(&reg_key, unregister_thread);
	eal_state = 1;
	hpn_dpdk_registered = 1; /* this thread is lcore 0 */
	hpn_log(HPN_LOG_INFO, "dpdk: EAL started (%s, IOVA as %s)", eal_mem,
		rte_eal_iova_mode() == RTE_IOVA_VA ? "VA" : "PA");
	pthread_mutex_unlock(&eal_lock);
	return 0;
}

bool hpn_dpdk_eal_has_pci(void)
{
	return eal_pci;
}

const char *hpn_dpdk_eal_mem(void)
{
	return eal_mem;
}

/* A thread that polls gets an lcore id of its own (a non-EAL thread has
 * none): per-lcore state in DPDK - mempool caches, some drivers' - works
 * from the caller's thread and from the progress thread alike. Released
 * when the thread ends. */
void hpn_dpdk_thread_register_slow(void)
{
	if (hpn_dpdk_registered)
		return;
	hpn_dpdk_registered = -1;
	if (rte_lcore_id() != LCORE_ID_ANY) {
		hpn_dpdk_registered = 1;
		return;
	}
	if (rte_thread_register() == 0) {
		hpn_dpdk_registered = 1;
		pthread_setspecific(reg_key, (void *)1);
	} else {
		hpn_log(HPN_LOG_INFO, "dpdk: no lcore id for this thread (%s): it polls without per-lcore caches",
			rte_strerror(rte_errno));
	}
}
