/* SPDX-License-Identifier: MIT */
/*
 * log.c - the thread-local last-error text and the log sink.
 *
 * The library never prints on its own (Aeron's rule): every line goes to the
 * application's handler. Without one, it stays silent unless HPN_LOG_LEVEL
 * asks for stderr, which is how a user debugs a deployed binary.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static __thread char err_buf[1024];
/* In the sink on this thread: a line the sink itself causes (it writes to
 * a stream hpn captures, or calls into hpn) must not take the lock again. */
static __thread int in_sink;

struct log_sink {
	hpn_log_fn fn;
	void *arg;
	int max_level; /* -1: silent */
};

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static struct log_sink sink = {NULL, NULL, -1};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static void stderr_sink(void *arg, enum hpn_log_level level, const char *msg)
{
	(void)arg;
	fprintf(stderr, "hpn %s: %s\n", level_names[level], msg);
}

static void log_init_from_env(void)
{
	const char *env = getenv("HPN_LOG_LEVEL");

	if (!env || !*env)
		return;
	for (int i = 0; i < (int)HPN_ARRAY_SIZE(level_names); i++) {
		if (!strcasecmp(env, level_names[i]) || (env[0] == '0' + i && !env[1])) {
			sink.fn = stderr_sink;
			sink.max_level = i;
			return;
		}
	}
	/* A typo must not leave the user wondering why nothing shows up. */
	sink.fn = stderr_sink;
	sink.max_level = HPN_LOG_WARN;
	fprintf(stderr, "hpn warn: HPN_LOG_LEVEL='%s' unknown (error|warn|info|debug); using warn\n",
		env);
}

HPN_EXPORT uint64_t hpn_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

HPN_EXPORT uint64_t hpn_real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

HPN_EXPORT const char *hpn_version(void)
{
	return HPN_VERSION;
}

HPN_EXPORT void hpn_log_set_handler(hpn_log_fn fn, void *arg, enum hpn_log_level max_level)
{
	pthread_once(&log_once, log_init_from_env);
	pthread_mutex_lock(&log_lock);
	sink.fn = fn;
	sink.arg = arg;
	/* Atomic: hpn_log_enabled() reads it without the lock, from any
	 * thread (a progress thread may be logging right now). */
	__atomic_store_n(&sink.max_level, fn ? (int)max_level : -1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&log_lock);
}

bool hpn_log_enabled(enum hpn_log_level level)
{
	pthread_once(&log_once, log_init_from_env);
	return (int)level <= __atomic_load_n(&sink.max_level, __ATOMIC_RELAXED);
}

HPN_EXPORT void hpn_log(enum hpn_log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!hpn_log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (in_sink)
		return; /* from inside the sink: it would wait for itself */
	pthread_mutex_lock(&log_lock);
	in_sink++;
	if (sink.fn && (int)level <= sink.max_level)
		sink.fn(sink.arg, level, line);
	in_sink--;
	pthread_mutex_unlock(&log_lock);
}

HPN_EXPORT int hpn_log_in_sink(void)
{
	return in_sink;
}

HPN_EXPORT const char *hpn_last_error(void)
{
	return err_buf;
}

HPN_EXPORT int hpn_set_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
	va_end(ap);
	hpn_log(HPN_LOG_DEBUG, "error %d (%s): %s", err, strerror(err < 0 ? -err : err), err_buf);
	return err;
}

void hpn_error_append(const char *fmt, ...)
{
	size_t used = strlen(err_buf);
	va_list ap;

	if (used && used + 2 < sizeof(err_buf)) {
		memcpy(err_buf + used, "; ", 3);
		used += 2;
	}
	if (used + 1 >= sizeof(err_buf))
		return;
	va_start(ap, fmt);
	vsnprintf(err_buf + used, sizeof(err_buf) - used, fmt, ap);
	va_end(ap);
}

void hpn_error_clear(void)
{
	err_buf[0] = '\0';
}
