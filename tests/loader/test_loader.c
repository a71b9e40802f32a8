/* The plugin loader, seen from the public API: good, broken and missing
 * plugins, plugin=auto, plugin-specific configuration keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hpn/hpn.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void expect_refused(const char *cfg, int err, const char *needle)
{
	hpn_ep *ep = (hpn_ep *)0x1;
	int ret = hpn_ep_create(cfg, &ep);

	if (ret != err || !strstr(hpn_last_error(), needle))
		fprintf(stderr, "config '%s': got %d '%s', want %d containing '%s'\n", cfg, ret,
			hpn_last_error(), err, needle);
	assert_int_equal(ret, err);
	assert_null(ep);
	assert_non_null(strstr(hpn_last_error(), needle));
}

static const struct hpn_plugin_info *find(const struct hpn_plugin_info *l, int n, const char *name);

/* HPN_PLUGIN_PATH with dir in front; the old value back with path_restore. */
static char *path_push(const char *dir)
{
	const char *old = getenv("HPN_PLUGIN_PATH");
	char *saved = old ? strdup(old) : NULL, path[4096];

	snprintf(path, sizeof(path), "%s%s%s", dir, old ? ":" : "", old ? old : "");
	setenv("HPN_PLUGIN_PATH", path, 1);
	return saved;
}

static void path_restore(char *saved)
{
	if (saved)
		setenv("HPN_PLUGIN_PATH", saved, 1);
	else
		unsetenv("HPN_PLUGIN_PATH");
	free(saved);
}

static void test_good_plugin_stubs(void **state)
{
	hpn_ep *ep;
	hpn_peer_t peer;
	struct hpn_msg m;
	char buf[8] = "x";

	(void)state;
	assert_int_equal(hpn_ep_create("plugin=mock,mock_knob=1,hugepages=off", &ep), 0);
	assert_string_equal(hpn_ep_plugin(ep), "mock");
	assert_int_equal(hpn_ep_caps(ep)->max_msg_size, 1000);
	/* Slots the plugin left empty answer -EOPNOTSUPP, never crash. */
	assert_int_equal(hpn_listen(ep, "127.0.0.1:0"), -EOPNOTSUPP);
	assert_int_equal(hpn_connect(ep, "127.0.0.1:1", 10, &peer), -EOPNOTSUPP);
	assert_int_equal(hpn_send(ep, 0, buf, 1), -EOPNOTSUPP);
	assert_int_equal(hpn_recv_burst(ep, &m, 1), -EOPNOTSUPP);
	/* Oversize is refused before the backend is asked - a zero-copy
	 * one too, whose pointer is then never looked at (the mock's stub
	 * would have said -EOPNOTSUPP: it got there before). */
	assert_int_equal(hpn_send(ep, 0, buf, 1001), -EMSGSIZE);
	m = (struct hpn_msg){.data = buf, .len = 1001, .peer = 0};
	assert_int_equal(hpn_send_zc_burst(ep, &m, 1), -EMSGSIZE);
	/* The stubs say what they cannot do. */
	assert_int_equal(hpn_ep_local_addr(ep, buf, sizeof(buf)), -EOPNOTSUPP);
	assert_true(hpn_last_error()[0] != '\0');
	/* What the plugin said of itself during open is kept. */
	assert_non_null(strstr(hpn_ep_describe(ep), "mock set up"));
	hpn_ep_destroy(ep);
}

/* open breaking its contract (plugin.h) is refused with the core's error:
 * a freed endpoint is not closed again (ASan), a positive return or a
 * NULL endpoint is no success, a silent failure gets a message. */
static void test_open_contract(void **state)
{
	(void)state;
	expect_refused("plugin=openfreed,hugepages=off", -ENODEV, "open refused on purpose");
	expect_refused("plugin=openpositive,hugepages=off", -EPROTO, "returned 5");
	expect_refused("plugin=opensilent,hugepages=off", -EIO, "opensilent: open failed");
	expect_refused("plugin=opennull,hugepages=off", -EPROTO, "no endpoint");
}

/* A probe's reason that fills its buffer unterminated is cut, not read past. */
static void test_probe_long_reason(void **state)
{
	const struct hpn_plugin_info *l, *p;
	int n;

	char *saved;

	(void)state;
	assert_non_null(getenv("HPN_TEST_ODD_DIR"));
	saved = path_push(getenv("HPN_TEST_ODD_DIR"));
	n = hpn_plugin_list(&l);
	p = find(l, n, "longwhy");
	assert_non_null(p);
	assert_int_equal(p->status, -ENODEV);
	assert_true(strlen(p->reason) < 512);
	path_restore(saved);
}

/* plugin=auto's choice failing to open says it was auto's choice. */
static void test_auto_choice_fails(void **state)
{
	const char *dir = getenv("HPN_TEST_ODD_DIR");
	const struct hpn_plugin_info *l;
	char *saved;
	int n;

	(void)state;
	assert_non_null(dir);
	n = hpn_plugin_list(&l); /* the application's list, before */
	saved = path_push(dir);
	expect_refused("plugin=auto,hugepages=off", -ENODEV, "plugin=auto chose autofail, which failed: mock: open");
	/* auto's scan left the application's list alone. */
	assert_null(find(l, n, "autofail"));
	path_restore(saved);
}

/* File names a load would refuse are listed as refused, never usable
 * (plugin=auto picked what can never load); HPN_PLUGIN_PATH entries that
 * are not directories are named in the not-found error. */
static void test_odd_names_and_paths(void **state)
{
	const char *names[] = {"hpn-Upper-abi2.so", "hpn-lead0-abi02.so", "hpn-da-sh-abi2.so", "hpn-plus-abi+2.so",
			       "hpn-udp-abi2-old.so"};
	const struct hpn_plugin_info *l;
	char dir[] = "/tmp/hpn-loader-XXXXXX", path[4096], file[512], *saved;
	int n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		FILE *f;

		snprintf(file, sizeof(file), "%s/%s", dir, names[i]);
		f = fopen(file, "w");
		assert_non_null(f);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s:/nonexistent/hpn-dir:%s/%s", dir, dir, names[0]);
	saved = path_push(path);
	n = hpn_plugin_list(&l);
	int odd = 0;

	for (int i = 0; i < n; i++) {
		if (!strstr(l[i].path, dir))
			continue;
		odd++;
		assert_int_equal(l[i].status, -EINVAL);
		assert_non_null(strstr(l[i].reason, "hpn-<name>-abi<N>.so"));
	}
	/* hpn-udp-abi2-old.so gives way to the real udp, never loaded in its
	 * stead (its ABI once came out as 2: loaded, listed usable as udp). */
	assert_int_equal(odd, 4);
	assert_int_equal(find(l, n, "udp")->status, 0);
	assert_null(strstr(find(l, n, "udp")->path, dir));
	{
		hpn_ep *ep = NULL;

		assert_int_equal(hpn_ep_create("plugin=auto,hugepages=off", &ep), 0);
		assert_string_equal(hpn_ep_plugin(ep), "udp"); /* never one of those */
		hpn_ep_destroy(ep);
	}
	expect_refused("plugin=nosuch,hugepages=off", -ENOENT, "left out: '/nonexistent/hpn-dir'");
	assert_non_null(strstr(hpn_last_error(), "not a directory"));
	path_restore(saved);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(file, sizeof(file), "%s/%s", dir, names[i]);
		unlink(file);
	}
	rmdir(dir);
}

static void *small_stack_main(void *arg)
{
	const struct hpn_plugin_info *l;
	hpn_ep *ep = NULL;
	int *ok = arg;

	*ok = hpn_plugin_list(&l) > 0 && !hpn_ep_create("plugin=auto,hugepages=off", &ep);
	hpn_ep_destroy(ep);
	ep = NULL;
	*ok = *ok && !hpn_ep_create("plugin=mock,hugepages=off", &ep);
	hpn_ep_destroy(ep);
	return NULL;
}

/* Creating an endpoint and listing plugins fit a 64 KiB thread stack (the
 * search path, 128 KiB, lived on the stack and crashed such threads). */
static void test_small_stack(void **state)
{
	pthread_attr_t a;
	pthread_t t;
	int ok = 0;

	(void)state;
	assert_int_equal(pthread_attr_init(&a), 0);
	assert_int_equal(pthread_attr_setstacksize(&a, 64 * 1024), 0);
	assert_int_equal(pthread_create(&t, &a, small_stack_main, &ok), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	pthread_attr_destroy(&a);
	assert_true(ok);
}

/* How many times a file whose path contains needle is mapped (its
 * distinct mappings share the path; count the first segment only). */
static int mapped(const char *needle)
{
	char line[4608];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) && strstr(line, " 00000000 ");
	fclose(f);
	return n;
}

/* A plugin is loaded once per process and kept: a backend may hold state
 * a second load cannot rebuild (DPDK's EAL starts once). */
static void test_plugin_kept(void **state)
{
	hpn_ep *a, *b;

	(void)state;
	assert_int_equal(hpn_ep_create("plugin=mock,hugepages=off", &a), 0);
	assert_int_equal(hpn_ep_create("plugin=mock,hugepages=off", &b), 0);
	assert_int_equal(mapped("hpn-mock-abi"), 1);
	hpn_ep_destroy(a);
	hpn_ep_destroy(b);
	assert_int_equal(mapped("hpn-mock-abi"), 1); /* still there */
	assert_int_equal(hpn_ep_create("plugin=mock,hugepages=off", &a), 0);
	assert_int_equal(mapped("hpn-mock-abi"), 1);
	hpn_ep_destroy(a);
}

static void test_wrong_abi(void **state)
{
	(void)state;
	expect_refused("plugin=badabi", -EPROTO, "ABI 999");
	expect_refused("plugin=badabi", -EPROTO, "this library speaks ABI 2");
}

static void test_name_mismatch(void **state)
{
	(void)state;
	expect_refused("plugin=liar", -EPROTO, "calls itself 'someone_else'");
}

static void test_not_a_plugin(void **state)
{
	(void)state;
	expect_refused("plugin=noentry", -ENOEXEC, "no symbol hpn_plugin_entry_v2");
}

static void test_other_abi_file(void **state)
{
	(void)state;
	expect_refused("plugin=future", -ENOENT, "built for another ABI");
}

static void test_missing(void **state)
{
	(void)state;
	expect_refused("plugin=nosuch", -ENOENT, "plugin 'nosuch' not found");
	expect_refused("plugin=../../etc", -EINVAL, "not a plugin name");
}

static void test_unknown_keys(void **state)
{
	(void)state;
	expect_refused("plugin=mock,bogus=1", -EINVAL, "unknown key 'bogus'");
	/* A key of another plugin is still unknown to this one. */
	expect_refused("plugin=mock,rcvbuf=1m", -EINVAL, "unknown key 'rcvbuf'");
	expect_refused("plugin=mock,wait=sometimes", -EINVAL, "wait='sometimes'");
	expect_refused("plugin=mock,bufs=lots", -EINVAL, "bufs='lots'");
}

static const struct hpn_plugin_info *find(const struct hpn_plugin_info *l, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(l[i].name, name))
			return &l[i];
	return NULL;
}

static void test_list(void **state)
{
	const struct hpn_plugin_info *l, *p;
	int n;

	(void)state;
	n = hpn_plugin_list(&l);
	assert_true(n >= 5);
	p = find(l, n, "mock");
	assert_non_null(p);
	assert_int_equal(p->status, 0);
	assert_string_equal(p->description, "test plugin");
	p = find(l, n, "badabi");
	assert_non_null(p);
	assert_int_equal(p->status, -EPROTO);
	assert_non_null(strstr(p->reason, "ABI 999"));
	p = find(l, n, "noentry");
	assert_non_null(p);
	assert_true(p->status < 0);
	assert_non_null(strstr(p->reason, "no symbol"));
	p = find(l, n, "future");
	assert_non_null(p);
	assert_int_equal(p->status, -EPROTO);
	assert_non_null(strstr(p->reason, "ABI 3"));
	/* The real udp backend is found next to the library (build tree). */
	p = find(l, n, "udp");
	assert_non_null(p);
	assert_int_equal(p->status, 0);
}

static void test_auto(void **state)
{
	hpn_ep *ep;

	(void)state;
	assert_int_equal(hpn_ep_create("plugin=auto,hugepages=off", &ep), 0);
	/* udp (preference 10) beats mock (-5); the choice is explained. */
	assert_string_equal(hpn_ep_plugin(ep), "udp");
	assert_non_null(strstr(hpn_ep_describe(ep), "auto chose udp"));
	assert_non_null(strstr(hpn_ep_describe(ep), "badabi: "));
	hpn_ep_destroy(ep);
}

/* A udp plugin file for an old ABI, found first, must give way to the
 * working one found later (listing and plugin=auto alike). */
static void test_old_abi_does_not_shadow(void **state)
{
	const char *old = getenv("HPN_TEST_OLDABI_DIR");
	char *saved;
	const struct hpn_plugin_info *l, *p;
	hpn_ep *ep;
	int n;

	(void)state;
	assert_non_null(old);
	saved = path_push(old);
	n = hpn_plugin_list(&l);
	p = find(l, n, "udp");
	assert_non_null(p);
	assert_int_equal(p->status, 0);
	assert_null(strstr(p->path, "abi0"));
	assert_int_equal(hpn_ep_create("plugin=auto,hugepages=off", &ep), 0);
	assert_string_equal(hpn_ep_plugin(ep), "udp");
	hpn_ep_destroy(ep);
	path_restore(saved);
}

/* A udp plugin file that does not load (truncated, garbage) in a directory
 * HPN_PLUGIN_PATH names is an error naming it: the user asked for that
 * build, and the working one found later must not stand in for it
 * unnoticed (a file that does not load elsewhere is skipped, with a
 * warning). The listing shows the file that was asked for. */
static void test_broken_in_plugin_path(void **state)
{
	const struct hpn_plugin_info *l, *p;
	char dir[] = "/tmp/hpn-loader-XXXXXX", file[256], *saved;
	hpn_ep *ep = NULL;
	FILE *f;
	int n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/hpn-udp-abi2.so", dir); /* plugin.h: HPN_PLUGIN_ABI */
	f = fopen(file, "w");
	assert_non_null(f);
	fputs("not an ELF file at all\n", f);
	fclose(f);
	saved = path_push(dir);
	assert_true(hpn_ep_create("plugin=udp,hugepages=off,mlock=off", &ep) < 0);
	assert_null(ep);
	assert_non_null(strstr(hpn_last_error(), dir));
	n = hpn_plugin_list(&l);
	p = find(l, n, "udp");
	assert_non_null(p);
	assert_int_not_equal(p->status, 0);
	assert_non_null(strstr(p->path, dir));
	path_restore(saved);
	unlink(file);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_plugin_stubs),
		cmocka_unit_test(test_plugin_kept), cmocka_unit_test(test_wrong_abi),
		cmocka_unit_test(test_name_mismatch),     cmocka_unit_test(test_not_a_plugin),
		cmocka_unit_test(test_other_abi_file),    cmocka_unit_test(test_missing),
		cmocka_unit_test(test_unknown_keys),      cmocka_unit_test(test_list),
		cmocka_unit_test(test_auto),
		cmocka_unit_test(test_old_abi_does_not_shadow),
		cmocka_unit_test(test_broken_in_plugin_path),
		cmocka_unit_test(test_open_contract),
		cmocka_unit_test(test_probe_long_reason),
		cmocka_unit_test(test_auto_choice_fails),
		cmocka_unit_test(test_odd_names_and_paths),
		cmocka_unit_test(test_small_stack),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
