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

#include <dirent.h>
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
static bool eal_default;    /* started by hpn with its own arguments */
static unsigned eal_default_args_warned;
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

/* The cookie of the streams that stand in for stdout and stderr while the
 * EAL starts: the real stream each replaced (DPDK's log stream has none). */
static ssize_t log_write(void *cookie, const char *buf, size_t size)
{
	/* The application's log handler writing to stdout or stderr while
	 * the EAL starts (hpnbench's does, HPN_LOG_LEVEL's too): its own
	 * line, for its own stream - into hpn_log it would come back to the
	 * handler. */
	if (hpn_log_in_sink()) {
		if (cookie)
			fwrite(buf, 1, size, cookie);
		return (ssize_t)size;
	}
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

/* A PCI address (DDDD:BB:DD.F or BB:DD.F), not an ethdev's name: only
 * that may go to the EAL as -a - a name there fails its start, and it
 * starts once a process. */
static bool pci_address(const char *s)
{
	unsigned d, b, dev, f;
	int n = -1, len = (int)strcspn(s, ","); /* devargs may follow */

	if (sscanf(s, "%x:%x:%x.%x%n", &d, &b, &dev, &f, &n) == 4 && n == len)
		return true;
	n = -1;
	return sscanf(s, "%x:%x.%x%n", &b, &dev, &f, &n) == 3 && n == len;
}

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
	if (pci && pci_address(pci)) {
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

/* The threads of this process, by id, into ids[] (at most max). */
static unsigned list_threads(pid_t *ids, unsigned max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	unsigned n = 0;

	while (d && (e = readdir(d)) && n < max)
		if (e->d_name[0] != '.')
			ids[n++] = (pid_t)atoi(e->d_name);
	if (d)
		closedir(d);
	return n;
}

/*
 * The EAL's own threads (its interrupt thread above all) inherit the
 * caller's CPUs; on a caller pinned to one CPU they would take turns with
 * the polling thread - and net_memif (22.11) unmaps its rings from the
 * interrupt thread when the peer leaves, with nothing to stop a polling
 * thread it preempted mid-burst from reading them afterwards (seen: a
 * crash in 1 of ~24 benchmark runs with both on one CPU). So they move to
 * the machine's other CPUs, when there are any.
 */
static void move_ctrl_threads(const pid_t *before, unsigned nbefore)
{
	pid_t now[256];
	unsigned n = list_threads(now, 256), moved = 0;
	cpu_set_t mine, others;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (sched_getaffinity(0, sizeof(mine), &mine))
		return;
	CPU_ZERO(&others);
	for (long c = 0; c < ncpu && c < CPU_SETSIZE; c++)
		if (!CPU_ISSET(c, &mine))
			CPU_SET(c, &others);
	if (!CPU_COUNT(&others))
		return;
	for (unsigned i = 0; i < n; i++) {
		bool old = false;

		for (unsigned j = 0; j < nbefore && !old; j++)
			old = now[i] == before[j];
		if (!old && !sched_setaffinity(now[i], sizeof(others), &others))
			moved++;
	}
	if (moved)
		hpn_log(HPN_LOG_INFO, "dpdk: %u EAL control thread%s moved off the caller's CPUs", moved,
			moved == 1 ? "" : "s");
}

static int check_args(const char *eal_args);

static void unregister_thread(void *unused)
{
	(void)unused;
	rte_thread_unregister();
}

/* ---- start ----------------------------------------------------------------- */

int hpn_dpdk_eal_start(const char *eal_args, const char *pci)
{
	struct argv_buf a = {.n = 0};
	pid_t before[256];
	unsigned nbefore;
	int ret;

	if (eal_args && (ret = check_args(eal_args)))
		return ret;
	pthread_mutex_lock(&eal_lock);
	if (eal_state > 0 && eal_args && !eal_default_args_warned++)
		hpn_log(HPN_LOG_WARN, "dpdk: eal=\"%s\" ignored: this process's EAL started already (it starts once)",
			eal_args);
	if (eal_state) {
		ret = eal_state > 0 ? 0
				    : hpn_set_error(eal_state, "%s; it failed earlier in this process and cannot start "
							       "again there (DPDK's rule): start a new process",
						    eal_failure);
		pthread_mutex_unlock(&eal_lock);
		return ret;
	}
	FILE *app_log = rte_log_get_stream(), *ours = fopencookie(NULL, "w", (cookie_io_functions_t){.write = log_write});
	/* Streams of their own for stdout and stderr: a handler that writes
	 * to stderr while DPDK's log line is being flushed must not write
	 * into the stream being flushed (the line would go out with its own),
	 * and what it writes to either goes to that one. */
	FILE *std_out = stdout, *std_err = stderr;
	FILE *out_ours = fopencookie(std_out, "w", (cookie_io_functions_t){.write = log_write});
	FILE *err_ours = fopencookie(std_err, "w", (cookie_io_functions_t){.write = log_write});

	if (ours)
		setvbuf(ours, NULL, _IOLBF, 0);
	if (out_ours)
		setvbuf(out_ours, NULL, _IOLBF, 0);
	if (err_ours)
		setvbuf(err_ours, NULL, _IOLBF, 0);
	rte_openlog_stream(ours);
	hpn_dpdk_errors_reset();
	arg(&a, "hpn");
	if (eal_args) {
		args_split(&a, eal_args);
		snprintf(eal_mem, sizeof(eal_mem), "eal=\"%s\"", eal_args);
	} else {
		default_args(&a, pci);
	}
	eal_pci = !eal_args ? pci != NULL : !strstr(eal_args, "--no-pci");
	nbefore = list_threads(before, 256);
	/* The EAL writes some things past its log: its fatal alerts to
	 * stderr, its usage to stdout. They go to hpn_log too while it starts
	 * (the library never writes to either). */
	if (out_ours && err_ours) {
		stdout = out_ours;
		stderr = err_ours;
	}
	ret = rte_eal_init(a.n, a.v);
	stdout = std_out;
	stderr = std_err;
	/* What is left, into hpn_log; kept open (once a process), in case the
	 * EAL kept them. */
	if (out_ours)
		fflush(out_ours);
	if (err_ours)
		fflush(err_ours);
	if (ret < 0 && rte_errno == EALREADY) {
		hpn_log(HPN_LOG_INFO, "dpdk: the EAL was started by the application: using it");
		rte_openlog_stream(app_log == ours ? NULL : app_log); /* the application's log stays its own */
		eal_pci = true;
		ret = 0;
	} else if (ret >= 0) {
		eal_default = !eal_args;
	}
	if (ret < 0) {
		int err = rte_errno ? -rte_errno : -EINVAL;

		/* It cannot start again in this process (DPDK's rule): every
		 * later endpoint gets this same reason. */
		snprintf(eal_failure, sizeof(eal_failure), "dpdk: the EAL would not start: %s (%s)%s%s",
			 hpn_dpdk_last_error(), rte_strerror(-err),
			 (err == -EACCES || err == -EPERM) && geteuid() ? " - run as root" : "",
			 eal_args && strstr(hpn_dpdk_last_error(), "hugepage") && !strstr(eal_args, "--no-huge")
				 ? " - eal= replaces hpn's own arguments, --no-huge among them: add it, or reserve "
				   "hugepages (tools/hpn-hugepages)"
				 : "");
		eal_state = err;
		pthread_mutex_unlock(&eal_lock);
		return hpn_set_error(err, "%s", eal_failure);
	}
	if (!eal_args)
		move_ctrl_threads(before, nbefore);
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

bool hpn_dpdk_eal_default(void)
{
	return eal_default;
}

/* eal= may not ask the EAL to print and exit: the library never ends the
 * application. */
/* An option of DPDK's that prints and exits the process: -h, -v (also in
 * a cluster: -vh), --help, --version and --log-level=help - and what
 * getopt takes for them: a long option abbreviated (--hel, --vers). NULL:
 * none. */
static const char *exits(const char *t, const char *next)
{
	static const char *const longs[] = {"--help", "--version"};
	size_t n = strcspn(t, "=");

	if (t[0] != '-' || !t[1])
		return NULL;
	if (t[1] != '-') {
		/* Short options, clustered; one of these takes the rest (its
		 * argument): DPDK's getopt string is "a:b:c:s:d:hl:S:m:n:r:v". */
		for (const char *c = t + 1; *c && !strchr("abcsdlSmnr", *c); c++)
			if (*c == 'h' || *c == 'v')
				return *c == 'h' ? "-h" : "-v";
		return NULL;
	}
	for (size_t i = 0; i < 2; i++)
		if (n >= 3 && n <= strlen(longs[i]) && !strncmp(t, longs[i], n))
			return longs[i];
	if (n >= 3 && n <= strlen("--log-level") && !strncmp(t, "--log-level", n)) {
		const char *v = t[n] == '=' ? t + n + 1 : next;

		if (v && (!strcmp(v, "help") || !strncmp(v, "help", 4)))
			return "--log-level=help";
	}
	return NULL;
}

static int check_args(const char *eal_args)
{
	struct argv_buf a = {.n = 0};
	const char *bad;

	args_split(&a, eal_args);
	for (int i = 0; i < a.n; i++)
		if ((bad = exits(a.v[i], i + 1 < a.n ? a.v[i + 1] : NULL)))
			return hpn_set_error(-EINVAL, "config: eal=\"%s\": '%s' (%s) would make DPDK print and exit",
					     eal_args, a.v[i], bad);
	return 0;
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
