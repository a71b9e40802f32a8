/* A minimal plugin: probe and open only. Built several times with
 * different defects (see meson.build) to exercise the loader's checks. */
#include <hpn/plugin.h>

#include <errno.h>
#include <stdlib.h>

#ifndef MOCK_ABI
#define MOCK_ABI HPN_PLUGIN_ABI
#endif
#ifndef MOCK_NAME
#define MOCK_NAME "mock"
#endif

struct hpn_pep {
	int dummy;
};

static int mock_probe(struct hpn_caps *caps, char *why, size_t len)
{
	(void)why;
	(void)len;
	caps->max_msg_size = 1000;
	caps->preference = -5; /* never what plugin=auto should prefer */
	return 0;
}

static int mock_open(struct hpn_core *core, struct hpn_caps *caps, struct hpn_pep **out)
{
	(void)core;
	mock_probe(caps, NULL, 0);
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
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
