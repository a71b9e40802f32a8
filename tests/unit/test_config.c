/* Configuration strings: syntax, environment overrides, typed parsers and
 * their error messages (every error must name the key). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

static struct hpn_cfg *parse_ok(const char *s)
{
	struct hpn_cfg *cfg = NULL;

	assert_int_equal(hpn_cfg_parse(s, &cfg), 0);
	assert_non_null(cfg);
	return cfg;
}

static void expect_parse_error(const char *s, int err, const char *needle)
{
	struct hpn_cfg *cfg = NULL;

	assert_int_equal(hpn_cfg_parse(s, &cfg), err);
	assert_non_null(strstr(hpn_last_error(), needle));
}

static void test_syntax(void **state)
{
	struct hpn_cfg *cfg;

	(void)state;
	cfg = parse_ok(" plugin = udp , cpu=1,,wait=spin ");
	assert_string_equal(hpn_cfg_get(cfg, "plugin"), "udp");
	assert_string_equal(hpn_cfg_get(cfg, "cpu"), "1");
	assert_string_equal(hpn_cfg_get(cfg, "wait"), "spin");
	assert_null(hpn_cfg_get(cfg, "bufs"));
	hpn_cfg_free(cfg);
	cfg = parse_ok(NULL);
	assert_null(hpn_cfg_get(cfg, "plugin"));
	hpn_cfg_free(cfg);
	cfg = parse_ok("");
	hpn_cfg_free(cfg);
	/* An empty value is a value (a key may want it); the key must exist. */
	cfg = parse_ok("plugin=");
	assert_string_equal(hpn_cfg_get(cfg, "plugin"), "");
	hpn_cfg_free(cfg);

	expect_parse_error("plugin", -EINVAL, "'plugin' is not key=value");
	expect_parse_error("=udp", -EINVAL, "bad key ''");
	expect_parse_error("Plugin=udp", -EINVAL, "bad key 'Plugin'");
	expect_parse_error("cpu=1,cpu=2", -EINVAL, "key 'cpu' given twice");
	/* Double quotes let a value hold commas (a DPDK vdev string). */
	cfg = parse_ok("vdev=\"net_memif0,role=server,socket=/tmp/m.sock\", ip=10.0.0.1/24");
	assert_string_equal(hpn_cfg_get(cfg, "vdev"), "net_memif0,role=server,socket=/tmp/m.sock");
	assert_string_equal(hpn_cfg_get(cfg, "ip"), "10.0.0.1/24");
	hpn_cfg_free(cfg);
	cfg = parse_ok("eal=\"\",x=1");
	assert_string_equal(hpn_cfg_get(cfg, "eal"), "");
	hpn_cfg_free(cfg);
	expect_parse_error("vdev=\"a,b", -EINVAL, "a double quote is not closed");
	expect_parse_error("vdev=a\"b\"", -EINVAL, "a quoted value must be all of it");
	expect_parse_error("vdev=\"a\"b", -EINVAL, "a quoted value must be all of it");
}

static void test_too_many(void **state)
{
	char s[64 * 8 + 16] = "";

	(void)state;
	for (int i = 0; i < 65; i++)
		sprintf(s + strlen(s), "k%d=1,", i);
	expect_parse_error(s, -E2BIG, "more than 64 keys");
}

static void test_env_override(void **state)
{
	struct hpn_cfg *cfg = parse_ok("wait=spin,buf_size=4k");
	uint64_t v;

	(void)state;
	setenv("HPN_WAIT", "block", 1);
	setenv("HPN_SPIN_US", "7", 1);
	assert_string_equal(hpn_cfg_get(cfg, "wait"), "block");
	assert_int_equal(hpn_cfg_u64(cfg, "spin_us", 50, 0, 100, &v), 0);
	assert_int_equal(v, 7);
	/* A bad value from the environment says where it came from. */
	setenv("HPN_SPIN_US", "abc", 1);
	assert_int_equal(hpn_cfg_u64(cfg, "spin_us", 50, 0, 100, &v), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "from the environment: HPN_SPIN_US"));
	unsetenv("HPN_WAIT");
	unsetenv("HPN_SPIN_US");
	assert_int_equal(hpn_cfg_u64(cfg, "spin_us", 50, 0, 100, &v), 0);
	assert_string_equal(hpn_cfg_get(cfg, "wait"), "spin");
	hpn_cfg_free(cfg);
}

static void test_u64(void **state)
{
	struct hpn_cfg *cfg = parse_ok("a=4k,b=2M,c=1g,d=0x10,e=12x,f=-1,g=99,h=,i=99999999999999999999999");
	uint64_t v;

	(void)state;
	assert_int_equal(hpn_cfg_u64(cfg, "a", 0, 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(hpn_cfg_u64(cfg, "b", 0, 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 2u << 20);
	assert_int_equal(hpn_cfg_u64(cfg, "c", 0, 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 1u << 30);
	assert_int_equal(hpn_cfg_u64(cfg, "d", 0, 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 16);
	assert_int_equal(hpn_cfg_u64(cfg, "unset", 42, 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(hpn_cfg_u64(cfg, "e", 0, 0, 100, &v), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "e='12x' is not an unsigned number"));
	assert_int_equal(hpn_cfg_u64(cfg, "f", 0, 0, 100, &v), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "f='-1'"));
	assert_int_equal(hpn_cfg_u64(cfg, "g", 0, 0, 50, &v), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "g=99 out of range [0, 50]"));
	assert_int_equal(hpn_cfg_u64(cfg, "h", 0, 0, 50, &v), -EINVAL);
	assert_int_equal(hpn_cfg_u64(cfg, "i", 0, 0, UINT64_MAX, &v), -EINVAL);
	hpn_cfg_free(cfg);
}

static void test_i64_bool_enum(void **state)
{
	static const char *const modes[] = {"spin", "adaptive", "block", NULL};
	struct hpn_cfg *cfg = parse_ok("cpu=-1,n=3,bad=x,on=yes,off=0,wat=maybe,wait=block,w2=sleep");
	int64_t i;
	int b, e;

	(void)state;
	assert_int_equal(hpn_cfg_i64(cfg, "cpu", 0, -1, 10, &i), 0);
	assert_int_equal(i, -1);
	assert_int_equal(hpn_cfg_i64(cfg, "n", 0, 5, 10, &i), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "n=3 out of range"));
	assert_int_equal(hpn_cfg_i64(cfg, "bad", 0, 0, 10, &i), -EINVAL);
	assert_int_equal(hpn_cfg_bool(cfg, "on", 0, &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(hpn_cfg_bool(cfg, "off", 1, &b), 0);
	assert_int_equal(b, 0);
	assert_int_equal(hpn_cfg_bool(cfg, "unset", 1, &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(hpn_cfg_bool(cfg, "wat", 0, &b), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "wat='maybe' is not a boolean"));
	assert_int_equal(hpn_cfg_enum(cfg, "wait", modes, 0, &e), 0);
	assert_int_equal(e, 2);
	assert_int_equal(hpn_cfg_enum(cfg, "w2", modes, 0, &e), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "w2='sleep' must be one of spin|adaptive|block"));
	hpn_cfg_free(cfg);
}

static void test_check_keys(void **state)
{
	static const struct hpn_plugin_param extra[] = {{"rcvbuf", "x"}, {NULL, NULL}};
	struct hpn_cfg *cfg = parse_ok("plugin=udp,wait=spin,rcvbuf=1m");

	(void)state;
	assert_int_equal(hpn_cfg_check_keys(cfg, extra, "udp"), 0);
	assert_int_equal(hpn_cfg_check_keys(cfg, NULL, NULL), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "unknown key 'rcvbuf'"));
	hpn_cfg_free(cfg);
	cfg = parse_ok("wiat=spin");
	assert_int_equal(hpn_cfg_check_keys(cfg, extra, "udp"), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "unknown key 'wiat' (not a core key nor a key of plugin 'udp')"));
	hpn_cfg_free(cfg);
	/* Every core key has help text (docs/CONFIG.md lists it). */
	for (const struct hpn_plugin_param *p = hpn_core_params; p->key; p++)
		assert_true(p->help && strlen(p->help) > 10);
}

/* Numbers are decimal (a leading 0 is not octal) or hex after 0x. */
static void test_decimal_not_octal(void **state)
{
	struct hpn_cfg *cfg = parse_ok("bufs=0100,s=010k,h=0x1f,hx=0X10,x=0x,p=+5,cpu=010,neg=-0x10,o=08");
	uint64_t v;
	int64_t i;

	(void)state;
	assert_int_equal(hpn_cfg_u64(cfg, "bufs", 0, 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 100);
	assert_int_equal(hpn_cfg_u64(cfg, "s", 0, 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 10240);
	assert_int_equal(hpn_cfg_u64(cfg, "h", 0, 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 31);
	assert_int_equal(hpn_cfg_u64(cfg, "hx", 0, 0, UINT64_MAX, &v), 0);
	assert_int_equal(v, 16);
	assert_int_equal(hpn_cfg_u64(cfg, "o", 0, 0, UINT64_MAX, &v), 0); /* not bad octal */
	assert_int_equal(v, 8);
	assert_int_equal(hpn_cfg_u64(cfg, "x", 0, 0, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(hpn_cfg_u64(cfg, "p", 0, 0, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(hpn_cfg_i64(cfg, "cpu", 0, -1, 4095, &i), 0);
	assert_int_equal(i, 10);
	assert_int_equal(hpn_cfg_i64(cfg, "neg", 0, -100, 100, &i), 0);
	assert_int_equal(i, -16);
	assert_int_equal(hpn_cfg_i64(cfg, "p", 0, -100, 100, &i), -EINVAL);
	hpn_cfg_free(cfg);
}

static char env_log[1024];
static int env_logs;

static void capture(void *arg, enum hpn_log_level level, const char *msg)
{
	(void)arg;
	if (level == HPN_LOG_WARN && strstr(msg, "environment variable")) {
		env_logs++;
		snprintf(env_log, sizeof(env_log), "%s", msg);
	}
}

/* A misspelt HPN_ variable is not silently ignored: a warning names it
 * and the key it probably meant. Known ones pass in silence. */
static void test_env_typo_warned(void **state)
{
	static const struct hpn_plugin_param extra[] = {{"window", "x"}, {NULL, NULL}};
	struct hpn_cfg *cfg = parse_ok("wait=spin");

	(void)state;
	hpn_log_set_handler(capture, NULL, HPN_LOG_DEBUG);
	setenv("HPN_BUF_SIZE", "4096", 1);
	setenv("HPN_WINDOW", "512", 1);
	setenv("HPN_LOG_LEVEL", "error", 1);
	setenv("HPN_TEST_RDMA_ADDR", "10.11.0.2", 1); /* the tools' own variables */
	setenv("HPN_RXE_CACHE", "/tmp/x", 1);
	assert_int_equal(hpn_cfg_check_keys(cfg, extra, "udp"), 0);
	assert_int_equal(env_logs, 0);
	unsetenv("HPN_TEST_RDMA_ADDR");
	unsetenv("HPN_RXE_CACHE");
	setenv("HPN_BUFSS", "100", 1);
	assert_int_equal(hpn_cfg_check_keys(cfg, extra, "udp"), 0);
	assert_int_equal(env_logs, 1);
	assert_non_null(strstr(env_log, "HPN_BUFSS is not a key of the core or of plugin 'udp'"));
	assert_non_null(strstr(env_log, "did you mean HPN_BUFS?"));
	unsetenv("HPN_BUFSS");
	setenv("HPN_Window", "512", 1); /* keys are upper case in the environment */
	assert_int_equal(hpn_cfg_check_keys(cfg, extra, "udp"), 0);
	assert_int_equal(env_logs, 2);
	assert_non_null(strstr(env_log, "did you mean HPN_WINDOW?"));
	unsetenv("HPN_Window");
	/* Another plugin's key is not ours: warned, but no error. */
	assert_int_equal(hpn_cfg_check_keys(cfg, NULL, "rdma"), 0);
	assert_int_equal(env_logs, 3);
	assert_non_null(strstr(env_log, "HPN_WINDOW"));
	unsetenv("HPN_WINDOW");
	unsetenv("HPN_BUF_SIZE");
	unsetenv("HPN_LOG_LEVEL");
	hpn_log_set_handler(NULL, NULL, HPN_LOG_ERROR);
	hpn_cfg_free(cfg);
}

/* Ports: 0..65535 in decimal, nothing getaddrinfo would cut to 16 bits. */
static void test_ports(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;

	(void)state;
	assert_int_equal(hpn_addr_parse("127.0.0.1:65535", 0, SOCK_DGRAM, &ss, &len), 0);
	assert_int_equal(hpn_addr_parse(":0", 1, SOCK_DGRAM, &ss, &len), 0);
	assert_int_equal(hpn_addr_parse("[::1]:80", 0, SOCK_DGRAM, &ss, &len), 0);
	assert_int_equal(hpn_addr_parse(":99999", 1, SOCK_DGRAM, &ss, &len), -EINVAL);
	assert_non_null(strstr(hpn_last_error(), "port '99999' is not a number from 0 to 65535"));
	assert_int_equal(hpn_addr_parse("127.0.0.1:65536", 0, SOCK_DGRAM, &ss, &len), -EINVAL);
	assert_int_equal(hpn_addr_parse("127.0.0.1:-1", 0, SOCK_DGRAM, &ss, &len), -EINVAL);
	assert_int_equal(hpn_addr_parse("127.0.0.1:0x50", 0, SOCK_DGRAM, &ss, &len), -EINVAL);
	assert_int_equal(hpn_addr_parse("127.0.0.1:000080", 0, SOCK_DGRAM, &ss, &len), 0);
	assert_int_equal(hpn_addr_parse("127.0.0.1:99999999999999999999999", 0, SOCK_DGRAM, &ss, &len), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syntax),     cmocka_unit_test(test_too_many),
		cmocka_unit_test(test_env_override), cmocka_unit_test(test_u64),
		cmocka_unit_test(test_i64_bool_enum), cmocka_unit_test(test_check_keys),
		cmocka_unit_test(test_decimal_not_octal), cmocka_unit_test(test_env_typo_warned),
		cmocka_unit_test(test_ports),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
