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
#include <stdio.h>
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
	{"buf_size", "usable bytes per pool buffer (default 65536)"},
	{"max_msg", "largest message; above buf_size such messages get buffers of their own class (default buf_size)"},
	{"large_bufs", "max_msg > buf_size: buffers of max_msg bytes (default 32, fewer for messages over 8 MiB)"},
	{"burst", "messages moved per backend call (default 32)"},
	{"ring_size", "progress=thread: depth of the rings between the threads (default 256)"},
	{"max_peers", "peers per endpoint (default 256)"},
	{"peer_timeout_ms", "a silent peer is reported gone after this long; 0 disables keepalive (default 3000)"},
	{"connect_retry_ms", "handshake retransmit interval (default 100; udp reliable=on: 20)"},
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

/* Cut the next item off *s at a comma outside double quotes (a value
 * such as vdev="net_memif0,role=server" holds commas). NULL at the end;
 * *unclosed set when a quote is never closed. */
static char *next_item(char **s, bool *unclosed)
{
	char *item = *s, *p;
	bool quoted = false;

	if (!item)
		return NULL;
	for (p = item; *p && (quoted || *p != ','); p++)
		if (*p == '"')
			quoted = !quoted;
	*unclosed = quoted;
	*s = *p ? p + 1 : NULL;
	*p = '\0';
	return item;
}

/* A value in double quotes loses them; a quote anywhere else is refused
 * (it would be a typo, and a later reader could not tell). */
static int unquote(const char *k, char **v)
{
	size_t n = strlen(*v);

	if (n >= 2 && (*v)[0] == '"' && (*v)[n - 1] == '"' && !memchr(*v + 1, '"', n - 2)) {
		(*v)[n - 1] = '\0';
		(*v)++;
		return 0;
	}
	if (strchr(*v, '"'))
		return hpn_set_error(-EINVAL, "config: %s: a quoted value must be all of it: %s=\"...\"", k, k);
	return 0;
}

int hpn_cfg_parse(const char *str, struct hpn_cfg **out)
{
	struct hpn_cfg *cfg = calloc(1, sizeof(*cfg));
	char *rest, *item;
	bool unclosed = false;
	int ret;

	if (!cfg)
		return hpn_set_error(-ENOMEM, "out of memory parsing configuration");
	cfg->buf = strdup(str ? str : "");
	if (!cfg->buf) {
		free(cfg);
		return hpn_set_error(-ENOMEM, "out of memory parsing configuration");
	}
	rest = cfg->buf;
	while ((item = next_item(&rest, &unclosed))) {
		char *eq = strchr(item, '='), *k, *v;

		item = trim(item);
		if (!*item)
			continue;
		if (unclosed) {
			ret = hpn_set_error(-EINVAL, "config: '%s': a double quote is not closed", item);
			goto fail;
		}
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
		ret = unquote(k, &v);
		if (ret)
			goto fail;
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

/* Appended to a bad value's message: a value that came from HPN_<KEY>
 * must not send the user looking in a configuration string without it. */
static const char *origin(const char *key)
{
	static __thread char note[128];
	size_t i;

	if (!env_value(key))
		return "";
	i = (size_t)snprintf(note, sizeof(note), " (from the environment: HPN_");
	for (; *key && i + 40 < sizeof(note); key++)
		note[i++] = (char)toupper((unsigned char)*key);
	snprintf(note + i, sizeof(note) - i, " overrides the string)");
	return note;
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

/*
 * The digits of a number: decimal, or hexadecimal after 0x. Never octal
 * (strtoull's base 0): bufs=0100 means a hundred to anyone reading it.
 * Signs and spaces are the callers' business, so a digit must come first.
 */
static int parse_digits(const char *s, char **end, uint64_t *out)
{
	int base = 10;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		if (!isxdigit((unsigned char)*s))
			return -EINVAL;
	}
	errno = 0;
	*out = strtoull(s, end, base);
	return errno ? -EINVAL : 0;
}

/* Accept k/m/g (powers of 1024) so sizes read naturally: buf_size=64k. */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	uint64_t v, mul = 1;

	if (parse_digits(s, &end, &v))
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

/* An optional '-', then digits as above; no suffixes. */
static int parse_i64(const char *s, int64_t *out)
{
	bool neg = *s == '-';
	char *end;
	uint64_t v;

	if (parse_digits(s + neg, &end, &v) || *end || v > (uint64_t)INT64_MAX + neg)
		return -EINVAL;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
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
		return hpn_set_error(-EINVAL, "config: %s='%s' is not an unsigned number%s", key, s, origin(key));
	if (v < min || v > max)
		return hpn_set_error(-EINVAL, "config: %s=%" PRIu64 " out of range [%" PRIu64 ", %" PRIu64 "]%s",
				     key, v, min, max, origin(key));
	*out = v;
	return 0;
}

int hpn_cfg_i64(const struct hpn_cfg *cfg, const char *key, int64_t def, int64_t min,
		int64_t max, int64_t *out)
{
	const char *s = hpn_cfg_get(cfg, key);
	int64_t v;

	if (!s) {
		*out = def;
		return 0;
	}
	if (parse_i64(s, &v))
		return hpn_set_error(-EINVAL, "config: %s='%s' is not a number%s", key, s, origin(key));
	if (v < min || v > max)
		return hpn_set_error(-EINVAL, "config: %s=%" PRId64 " out of range [%" PRId64 ", %" PRId64 "]%s",
				     key, v, min, max, origin(key));
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
	return hpn_set_error(-EINVAL, "config: %s='%s' is not a boolean (on/off)%s", key, s, origin(key));
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
	return hpn_set_error(-EINVAL, "config: %s='%s' must be one of %s%s", key, s, list, origin(key));
}

static bool param_known(const struct hpn_plugin_param *p, const char *key)
{
	for (; p && p->key; p++)
		if (!strcmp(p->key, key))
			return true;
	return false;
}

/* HPN_ variables that are not configuration keys (log.c, loader.c). */
static const char *const env_not_keys[] = {"HPN_PLUGIN_PATH", "HPN_LOG_LEVEL", NULL};
/* The project's own tools' and tests' variables (tools/hpn-rxe's cache and
 * kernel, the rdma tests' address): set around every endpoint of a run,
 * never keys, and a warning from each endpoint would only be noise. */
static const char *const env_not_key_prefixes[] = {"HPN_RXE_", "HPN_TEST_", NULL};

/* Edit distance of two short keys, capped at 3 (enough for "did you mean"). */
static unsigned key_distance(const char *a, const char *b)
{
	unsigned la = (unsigned)strlen(a), lb = (unsigned)strlen(b), row[40], prev, tmp;

	if (la >= HPN_ARRAY_SIZE(row) || lb >= HPN_ARRAY_SIZE(row))
		return 3;
	for (unsigned j = 0; j <= lb; j++)
		row[j] = j;
	for (unsigned i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (unsigned j = 1; j <= lb; j++) {
			unsigned best = prev + (a[i - 1] != b[j - 1]);

			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			tmp = row[j];
			row[j] = best;
			prev = tmp;
		}
	}
	return row[lb] < 3 ? row[lb] : 3;
}

static const char *closest_key(const struct hpn_plugin_param *p, const char *key, unsigned *best)
{
	const char *hit = NULL;

	for (; p && p->key; p++) {
		unsigned d = key_distance(key, p->key);

		if (d < *best) {
			*best = d;
			hit = p->key;
		}
	}
	return hit;
}

/*
 * HPN_<KEY> variables that name no key of this endpoint (a typo such as
 * HPN_BUFSS, or lower case) would be ignored without a word: warn. Not an
 * error, unlike an unknown key in the string: the environment is the whole
 * process's, shared by endpoints of other plugins (HPN_WINDOW means
 * nothing to rdma) and by other programs' HPN_ variables.
 */
static void check_env_keys(const struct hpn_plugin_param *extra, const char *extra_owner)
{
	extern char **environ;

	for (char **e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '='), *name = *e + 4;
		char key[64];
		size_t len;
		bool known = true;

		if (strncmp(*e, "HPN_", 4) || !eq || (size_t)(eq - name) >= sizeof(key))
			continue;
		len = (size_t)(eq - name);
		for (const char *const *n = env_not_keys; *n && known; n++)
			known = strlen(*n) != len + 4 || strncmp(*n, *e, len + 4);
		for (const char *const *n = env_not_key_prefixes; *n && known; n++)
			known = strncmp(*n, *e, strlen(*n)) != 0;
		if (!known)
			continue; /* a documented non-key variable */
		for (size_t i = 0; i < len; i++) {
			known &= !islower((unsigned char)name[i]);
			key[i] = (char)tolower((unsigned char)name[i]);
		}
		key[len] = '\0';
		if (known && (param_known(hpn_core_params, key) || param_known(extra, key)))
			continue;
		unsigned best = 3;
		const char *hint = closest_key(hpn_core_params, key, &best);
		const char *hint2 = closest_key(extra, key, &best);
		char up[64];
		size_t k = 0;

		hint = hint2 ? hint2 : hint;
		for (; hint && hint[k] && k + 1 < sizeof(up); k++)
			up[k] = (char)toupper((unsigned char)hint[k]);
		up[k] = '\0';
		hpn_log(HPN_LOG_WARN,
			"config: environment variable %.*s is not a key of the core%s%s%s; ignored%s%s%s",
			(int)(len + 4), *e, extra_owner ? " or of plugin '" : "", extra_owner ? extra_owner : "",
			extra_owner ? "'" : "", hint ? " (did you mean HPN_" : "", hint ? up : "", hint ? "?)" : "");
	}
}

int hpn_cfg_check_keys(const struct hpn_cfg *cfg, const struct hpn_plugin_param *extra,
		       const char *extra_owner)
{
	check_env_keys(extra, extra_owner);
	for (unsigned i = 0; i < cfg->n; i++) {
		if (param_known(hpn_core_params, cfg->key[i]) || param_known(extra, cfg->key[i]))
			continue;
		return hpn_set_error(-EINVAL, "config: unknown key '%s' (not a core key%s%s%s)",
				     cfg->key[i], extra_owner ? " nor a key of plugin '" : "",
				     extra_owner ? extra_owner : "", extra_owner ? "'" : "");
	}
	return 0;
}
