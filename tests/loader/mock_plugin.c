/* A minimal plugin: probe and open only. Built several times with
 * different defects (see meson.build) to exercise the loader's checks. */
#include <hpn/plugin.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifndef MOCK_ABI
#define MOCK_ABI HPN_PLUGIN_ABI
#endif
#ifndef MOCK_NAME
#define MOCK_NAME "mock"
#endif
/* How open breaks its contract: 0 it keeps it; 1 sets *out, frees it and
 * fails; 2 returns a positive number; 3 fails saying nothing; 4 succeeds
 * with no endpoint. */
#ifndef MOCK_OPEN
#define MOCK_OPEN 0
#endif
#ifndef MOCK_PREF
#define MOCK_PREF (-5) /* never what plugin=auto should prefer */
#endif

struct hpn_pep {
	int dummy;
};

static int mock_probe(struct hpn_caps *caps, char *why, size_t len)
{
#ifdef MOCK_PROBE_LONG
	memset(why, 'A', len); /* a reason that fills the buffer, unterminated */
	return -ENODEV;
#endif
	(void)why;
	(void)len;
	caps->max_msg_size = 1000;
	caps->preference = MOCK_PREF;
	return 0;
}

static int mock_open(struct hpn_core *core, struct hpn_caps *caps, struct hpn_pep **out)
{
	mock_probe(caps, NULL, 0);
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	switch (MOCK_OPEN) {
	case 1:
		free(*out);
		return hpn_set_error(-ENODEV, "mock: open refused on purpose");
	case 2:
		free(*out);
		*out = NULL;
		return 5;
	case 3:
		free(*out);
		*out = NULL;
		return -EIO;
	case 4:
		free(*out);
		*out = NULL;
		return 0;
	}
	hpn_core_describe(core, "mock set up"); /* during open: kept in hpn_ep_describe */
	return 0;
}

static void mock_close(struct hpn_pep *pep)
{
	free(pep);
}

static const struct hpn_plugin_param mock_params[] = {
	{"mock_knob", "a plugin-specific key"},
	{NULL, NULL},
};

static const struct hpn_plugin_ops mock_ops = {
	.abi_version = MOCK_ABI,
	.size = sizeof(struct hpn_plugin_ops),
	.name = MOCK_NAME,
	.description = "test plugin",
	.params = mock_params,
	.probe = mock_probe,
	.open = mock_open,
	.close = mock_close,
};

HPN_PLUGIN_DEFINE(mock_ops)
