/* SPDX-License-Identifier: MIT */
/*
 * config.c - "key=value,key=value" configuration with HPN_<KEY> overrides.
 *
 * Configuration is text so the same words work in code, on a command line and
 * in the environment of a deployed binary. Every mistake names the key: a
 * silently ignored typo in a latency-critical setting is the worst outcome.
 */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CFG_MAX_ITEMS 64

struct hpn_cfg {
	unsigned n;
	char *key[CFG_MAX_ITEMS];
	char *val[CFG_MAX_ITEMS];
	char *buf; /* one copy of the string; key/val point into it */
};

const struct hpn_plugin_param hpn_core_params[] = {
	{"plugin", "backend name, or auto for the best usable one (default auto)"},
	{"progress", "inline: the caller's calls drive the backend; thread: a pinned progress thread (default inline)"},
	{"cpu", "CPU to pin the progress thread to, -1 for none (default -1)"},
	{"sched", "other|fifo: scheduling class of the progress thread (default other)"},
	{"wait", "spin|adaptive|block: how waits wait (default adaptive)"},
	{"spin_us", "adaptive wait: microseconds to spin before sleeping (default 50)"},
	{"hugepages", "auto|on|off: pool on hugepages; auto falls back to normal pages (default auto)"},
	{"mlock", "auto|on|off: lock the pool in memory (default auto)"},
	{"numa", "auto|off|<node>: NUMA node of the pool (default auto: the progress CPU's node)"},
	{"bufs", "number of pool buffers (default 1024)"},
	{"buf_size", "usable bytes per pool buffer; bounds the message size (default 65536)"},
	{"burst", "messages moved per backend call (default 32)"},
	{"ring_size", "progress=thread: depth of the rings between the threads (default 256)"},
	{"max_peers", "peers per endpoint (default 256)"},
	{"peer_timeout_ms", "a silent peer is reported gone after this long; 0 disables keepalive (default 3000)"},
	{"connect_retry_ms", "handshake retransmit interval (default 100)"},
	{NULL, NULL},
};

static bool valid_key(const char *k)
{
	if (!*k)
		return false;
	for (; *k; k++)
		if (!(islower((unsigned char)*k) || isdigit((unsigned char)*k) || *k == '_'))
			return false;
	return true;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int hpn_cfg_parse(const char *str, struct hpn_cfg **out)
{
	struct hpn_cfg *cfg = calloc(1, sizeof(*cfg));
	char *save = NULL, *item;
	int ret;

	if (!cfg)
		return hpn_set_error(-ENOMEM, "out of memory parsing configuration");
	cfg->buf = strdup(str ? str : "");
	if (!cfg->buf) {
		free(cfg);
		return hpn_set_error(-ENOMEM, "out of memory parsing configuration");
	}
	for (item = strtok_r(cfg->buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '='), *k, *v;

		item = trim(item);
		if (!*item)
			continue;
		if (!eq) {
			ret = hpn_set_error(-EINVAL, "config: '%s' is not key=value", item);
			goto fail;
		}
		*eq = '\0';
		k = trim(item);
		v = trim(eq + 1);
		if (!valid_key(k)) {
			ret = hpn_set_error(-EINVAL, "config: bad key '%s' (use lower-case letters, digits, _)", k);
			goto fail;
		}
		for (unsigned i = 0; i < cfg->n; i++) {
			if (!strcmp(cfg->key[i], k)) {
				ret = hpn_set_error(-EINVAL, "config: key '%s' given twice", k);
				goto fail;
			}
		}
		if (cfg->n == CFG_MAX_ITEMS) {
			ret = hpn_set_error(-E2BIG, "config: more than %d keys", CFG_MAX_ITEMS);
			goto fail;
		}
		cfg->key[cfg->n] = k;
		cfg->val[cfg->n] = v;
		cfg->n++;
	}
	*out = cfg;
	return 0;
fail:
	/* The message above points into cfg->buf: free only after formatting. */
	hpn_cfg_free(cfg);
	return ret;
}

void hpn_cfg_free(struct hpn_cfg *cfg)
{
	if (!cfg)
		return;
	free(cfg->buf);
	free(cfg);
}

static const char *env_value(const char *key)
{
	char name[80] = "HPN_";
	size_t i;

	for (i = 0; key[i] && i + 5 < sizeof(name); i++)
		name[4 + i] = (char)toupper((unsigned char)key[i]);
	name[4 + i] = '\0';
	return getenv(name);
}

const char *hpn_cfg_get(const struct hpn_cfg *cfg, const char *key)
{
	const char *env = env_value(key);

	if (env)
		return env;
	for (unsigned i = 0; cfg && i < cfg->n; i++)
		if (!strcmp(cfg->key[i], key))
			return cfg->val[i];
	return NULL;
}

/* Accept k/m/g (powers of 1024) so sizes read naturally: buf_size=64k. */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	uint64_t v, mul = 1;

	if (!*s || *s == '-' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	default: break;
	}
	if (*end || (v && mul > UINT64_MAX / v))
		return -EINVAL;
	*out = v * mul;
	return 0;
}

int hpn_cfg_u64(const struct hpn_cfg *cfg, const char *key, uint64_t def, uint64_t min,
		uint64_t max, uint64_t *out)
{
	const char *s = hpn_cfg_get(cfg, key);
	uint64_t v;

	if (!s) {
		*out = def;
		return 0;
	}
	if (parse_u64(s, &v))
		return hpn_set_error(-EINVAL, "config: %s='%s' is not an unsigned number", key, s);
	if (v < min || v > max)
		return hpn_set_error(-EINVAL, "config: %s=%" PRIu64 " out of range [%" PRIu64 ", %" PRIu64 "]",
				     key, v, min, max);
	*out = v;
	return 0;
}

int hpn_cfg_i64(const struct hpn_cfg *cfg, const char *key, int64_t def, int64_t min,
		int64_t max, int64_t *out)
{
	const char *s = hpn_cfg_get(cfg, key);
	char *end;
	long long v;

	if (!s) {
		*out = def;
		return 0;
	}
	errno = 0;
	v = strtoll(s, &end, 0);
	if (!*s || *end || errno)
		return hpn_set_error(-EINVAL, "config: %s='%s' is not a number", key, s);
	if (v < min || v > max)
		return hpn_set_error(-EINVAL, "config: %s=%lld out of range [%" PRId64 ", %" PRId64 "]", key,
				     v, min, max);
	*out = v;
	return 0;
}

int hpn_cfg_bool(const struct hpn_cfg *cfg, const char *key, int def, int *out)
{
	static const char *const yes[] = {"1", "on", "yes", "true"};
	static const char *const no[] = {"0", "off", "no", "false"};
	const char *s = hpn_cfg_get(cfg, key);

	if (!s) {
		*out = def;
		return 0;
	}
	for (unsigned i = 0; i < HPN_ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(s, yes[i]))
			return *out = 1, 0;
		if (!strcasecmp(s, no[i]))
			return *out = 0, 0;
	}
	return hpn_set_error(-EINVAL, "config: %s='%s' is not a boolean (on/off)", key, s);
}

int hpn_cfg_enum(const struct hpn_cfg *cfg, const char *key, const char *const *choices, int def,
		 int *out)
{
	const char *s = hpn_cfg_get(cfg, key);
	char list[256] = "";

	if (!s) {
		*out = def;
		return 0;
	}
	for (int i = 0; choices[i]; i++) {
		if (!strcmp(s, choices[i]))
			return *out = i, 0;
		if (i)
			strncat(list, "|", sizeof(list) - strlen(list) - 1);
		strncat(list, choices[i], sizeof(list) - strlen(list) - 1);
	}
	return hpn_set_error(-EINVAL, "config: %s='%s' must be one of %s", key, s, list);
}

static bool param_known(const struct hpn_plugin_param *p, const char *key)
{
	for (; p && p->key; p++)
		if (!strcmp(p->key, key))
			return true;
	return false;
}

int hpn_cfg_check_keys(const struct hpn_cfg *cfg, const struct hpn_plugin_param *extra,
		       const char *extra_owner)
{
	for (unsigned i = 0; i < cfg->n; i++) {
		if (param_known(hpn_core_params, cfg->key[i]) || param_known(extra, cfg->key[i]))
			continue;
		return hpn_set_error(-EINVAL, "config: unknown key '%s' (not a core key%s%s%s)",
				     cfg->key[i], extra_owner ? " nor a key of plugin '" : "",
				     extra_owner ? extra_owner : "", extra_owner ? "'" : "");
	}
	return 0;
}
