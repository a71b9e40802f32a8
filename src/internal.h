/* SPDX-License-Identifier: MIT */
/* internal.h - shared by the core's source files; never installed. */
#ifndef HPN_INTERNAL_H
#define HPN_INTERNAL_H

#include <hpn/hpn.h>
#include <hpn/plugin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef HPN_EXPORT
#define HPN_EXPORT __attribute__((visibility("default")))
#endif
#define HPN_COLD __attribute__((cold, noinline))
#define hpn_likely(x) __builtin_expect(!!(x), 1)
#define hpn_unlikely(x) __builtin_expect(!!(x), 0)
#define HPN_CACHELINE 64
#define HPN_BURST_MAX 256 /* largest burst= (backends size their arrays for it) */
#define HPN_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline void hpn_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#endif
}

/* log.c */
bool hpn_log_enabled(enum hpn_log_level level);
/* Append to the thread's last-error text ("; " separated). */
void hpn_error_append(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hpn_error_clear(void);

/* config.c ------------------------------------------------------------- */
struct hpn_cfg;
/* Parse "k=v,k=v". Syntax errors name the offending item. */
int hpn_cfg_parse(const char *str, struct hpn_cfg **out);
void hpn_cfg_free(struct hpn_cfg *cfg);
/* Value of key (environment HPN_<KEY> wins over the string), NULL if unset. */
const char *hpn_cfg_get(const struct hpn_cfg *cfg, const char *key);
/* Parsers for one value; errors name the key. */
int hpn_cfg_u64(const struct hpn_cfg *cfg, const char *key, uint64_t def, uint64_t min,
		uint64_t max, uint64_t *out);
int hpn_cfg_i64(const struct hpn_cfg *cfg, const char *key, int64_t def, int64_t min,
		int64_t max, int64_t *out);
int hpn_cfg_bool(const struct hpn_cfg *cfg, const char *key, int def, int *out);
/* Index of the value in the NULL-terminated `choices`, def if unset. */
int hpn_cfg_enum(const struct hpn_cfg *cfg, const char *key, const char *const *choices, int def,
		 int *out);
/* Fail with -EINVAL naming the first key of the string that is neither a
 * core key nor in `extra` (may be NULL). HPN_<KEY> environment variables
 * that name no such key are only warned about (hpn_log): the environment
 * is shared by every endpoint of the process, whatever its plugin. */
int hpn_cfg_check_keys(const struct hpn_cfg *cfg, const struct hpn_plugin_param *extra,
		       const char *extra_owner);
/* Core keys with their help text, ended by {NULL, NULL}. */
extern const struct hpn_plugin_param hpn_core_params[];

/* loader.c ------------------------------------------------------------- */
struct hpn_plugin {
	struct hpn_plugin_ops ops; /* complete table: NULL slots replaced by stubs */
	void *dl;
	struct hpn_plugin *next;   /* the process's loaded plugins (loader.c) */
	char name[32];
	char path[4096];           /* as resolved (realpath): one load per file */
};
/* Find hpn-<name>-abi<N>.so along the search path and load it - once per
 * process: a plugin stays loaded until exit (a backend may hold state no
 * second load can rebuild - DPDK's EAL starts once - and an unload races
 * threads a backend library started). Later loads of the same file get
 * the same plugin. */
int hpn_plugin_load(const char *name, struct hpn_plugin **out);
/* The endpoint is done with p; the plugin stays loaded (see above). */
void hpn_plugin_unload(struct hpn_plugin *p);
/* Load the best usable plugin; explain the choice in why. */
int hpn_plugin_load_auto(struct hpn_plugin **out, char *why, size_t why_len);
/* Validate an ops table and build the complete one (exposed for tests). */
int hpn_plugin_check_ops(const struct hpn_plugin_ops *src, const char *expect_name,
			 struct hpn_plugin_ops *dst, char *why, size_t why_len);

#endif
