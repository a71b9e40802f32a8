/*
 * libFuzzer harness for the text a user or a deployment hands hpn: the
 * endpoint configuration string (src/config.c: "k=v,k=\"quoted, with
 * commas\"", then the typed getters and the key check every endpoint
 * runs), the fault-injection spec (src/packet/fault.c: faults=...) and a
 * feed's sequence spec (src/packet/feed.c: seq=...). The first byte picks
 * the parser, the rest is the text. Invariants (abort() on breach): a
 * parser either succeeds or fails with -EINVAL (a config: also -E2BIG,
 * more than 64 keys) and a reason; what it accepted holds values inside
 * the ranges it promises; nothing leaks (ASan) or reads past the string.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -Iinclude tests/fuzz/fuzz_config.c \
 *       src/config.c src/log.c src/packet/fault.c src/packet/feed.c -o fuzz_config
 */
#include "internal.h"
#include "packet/fault.h"
#include "packet/feed.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const keys[] = {"plugin", "bufs", "buf_size", "burst", "progress", "wait", "cpu", "numa",
				   "peer_timeout_ms", "faults", "seq", "vdev", "eal", "", NULL};

static void check_cfg(const char *text)
{
	static const char *const choices[] = {"inline", "thread", NULL};
	struct hpn_cfg *cfg = NULL;
	int ret = hpn_cfg_parse(text, &cfg);

	if (ret) {
		/* -E2BIG: more keys than a config holds (64). */
		if ((ret != -EINVAL && ret != -E2BIG && ret != -ENOMEM) || cfg)
			abort();
		return;
	}
	for (const char *const *k = keys; *k; k++) {
		uint64_t u = 0;
		int64_t i = 0;
		int b = -1, e = -1;
		const char *v = hpn_cfg_get(cfg, *k);

		if (v)
			(void)strlen(v); /* a value is a whole C string */
		ret = hpn_cfg_u64(cfg, *k, 7, 1, 1000, &u);
		if (ret ? ret != -EINVAL : u < 1 || u > 1000)
			abort();
		ret = hpn_cfg_i64(cfg, *k, -1, -5, 4095, &i);
		if (ret ? ret != -EINVAL : i < -5 || i > 4095)
			abort();
		ret = hpn_cfg_bool(cfg, *k, 0, &b);
		if (ret ? ret != -EINVAL : b != 0 && b != 1)
			abort();
		ret = hpn_cfg_enum(cfg, *k, choices, 0, &e);
		if (ret ? ret != -EINVAL : e != 0 && e != 1)
			abort();
	}
	ret = hpn_cfg_check_keys(cfg, NULL, NULL);
	if (ret && ret != -EINVAL)
		abort();
	hpn_cfg_free(cfg);
}

static void check_faults(const char *text)
{
	struct hpn_fault_cfg fc, before;
	char err[128];
	int ret;

	memset(&fc, 0x5a, sizeof(fc));
	before = fc;
	ret = hpn_fault_parse(text, &fc, err, sizeof(err));
	if (ret) {
		/* A refusal leaves the config untouched and says why. */
		if (ret != -EINVAL || memcmp(&fc, &before, sizeof(fc)) || !memchr(err, '\0', sizeof(err)) || !err[0])
			abort();
		return;
	}
	/* What is accepted is a probability (NaN fails both comparisons). */
	const double prob[] = {fc.loss, fc.reorder, fc.dup, fc.corrupt, fc.delay};

	for (size_t i = 0; i < sizeof(prob) / sizeof(prob[0]); i++)
		if (!(prob[i] >= 0 && prob[i] <= 1))
			abort();
}

static void check_seq(const char *text)
{
	struct hpn_seq_spec s;
	char why[128];
	int ret = hpn_seq_parse(text, &s, why, sizeof(why));

	if (ret) {
		if (ret != -EINVAL || !memchr(why, '\0', sizeof(why)) || !why[0])
			abort();
	} else if (s.kind == HPN_SEQ_FIELD && s.size != 4 && s.size != 8) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (!size)
		return 0;
	text = malloc(size); /* the rest, NUL-terminated: exactly as long as given */
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	switch (data[0] % 3) {
	case 0:
		check_cfg(text);
		break;
	case 1:
		check_faults(text);
		break;
	default:
		check_seq(text);
		break;
	}
	free(text);
	return 0;
}
