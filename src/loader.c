/* SPDX-License-Identifier: MIT */
/*
 * loader.c - find, check and load backend plugins.
 *
 * Users of plugin systems (UCX, libfabric) suffer most from plugins that fail
 * to load silently, so every refusal carries a reason, and hpn_plugin_list()
 * reports each file found, usable or not.
 *
 * Search order: $HPN_PLUGIN_PATH (colon separated), <dir of
 * libhpntransport.so>/hpn (installed layout), <dir>/../plugins/<name>
 * (only in a meson build tree), then the compiled-in install directory.
 */
#include "internal.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- stubs for slots a plugin leaves empty: answer -EOPNOTSUPP ---------- */

static int stub_probe(struct hpn_caps *c, char *why, size_t n)
{
	(void)c;
	snprintf(why, n, "plugin has no probe");
	return -EOPNOTSUPP;
}
static int stub_open(struct hpn_core *c, struct hpn_caps *caps, struct hpn_pep **o)
{
	return hpn_set_error(-EOPNOTSUPP, "plugin cannot open endpoints");
}
static void stub_close(struct hpn_pep *p) {}
static int stub_mem(struct hpn_pep *p, void *a, size_t l) { return -EOPNOTSUPP; }
static int stub_listen(struct hpn_pep *p, const char *a)
{
	return hpn_set_error(-EOPNOTSUPP, "this plugin cannot listen");
}
static int stub_local(struct hpn_pep *p, char *b, size_t l)
{
	return hpn_set_error(-EOPNOTSUPP, "this plugin cannot tell its local address");
}
static int stub_connect(struct hpn_pep *p, const char *a, hpn_peer_t *peer)
{
	return hpn_set_error(-EOPNOTSUPP, "this plugin cannot connect");
}
static int stub_disconnect(struct hpn_pep *p, hpn_peer_t peer)
{
	return hpn_set_error(-EOPNOTSUPP, "this plugin cannot disconnect a peer");
}
static int stub_peer_addr(struct hpn_pep *p, hpn_peer_t peer, char *b, size_t l)
{
	return hpn_set_error(-EOPNOTSUPP, "this plugin cannot tell a peer's address");
}
static int stub_progress(struct hpn_pep *p, uint64_t now) { return 0; }
static int stub_wait_fd(struct hpn_pep *p) { return -EOPNOTSUPP; }
static int stub_tx(struct hpn_pep *p, const struct hpn_msg *m, unsigned n, unsigned f) { return -EOPNOTSUPP; }
static int stub_rx(struct hpn_pep *p, struct hpn_msg *m, unsigned n) { return -EOPNOTSUPP; }
static int stub_lines(struct hpn_pep *p, struct hpn_feed_line *l, unsigned n) { return -EOPNOTSUPP; }

static const struct hpn_plugin_ops stub_ops = {
	.probe = stub_probe,
	.open = stub_open,
	.close = stub_close,
	.mem_register = stub_mem,
	.listen = stub_listen,
	.local_addr = stub_local,
	.connect = stub_connect,
	.disconnect = stub_disconnect,
	.peer_addr = stub_peer_addr,
	.progress = stub_progress,
	.wait_fd = stub_wait_fd,
	.tx_burst = stub_tx,
	.rx_burst = stub_rx,
	.feed_lines = stub_lines,
};

#define HEADER_SIZE (offsetof(struct hpn_plugin_ops, params) + sizeof(void *))

int hpn_plugin_check_ops(const struct hpn_plugin_ops *src, const char *expect_name,
			 struct hpn_plugin_ops *dst, char *why, size_t why_len)
{
	size_t n;

	if (!src) {
		snprintf(why, why_len, "entry point returned no ops table");
		return -ENOEXEC;
	}
	if (src->abi_version != HPN_PLUGIN_ABI) {
		snprintf(why, why_len, "plugin ABI %u, this library speaks ABI %d (rebuild the plugin)",
			 src->abi_version, HPN_PLUGIN_ABI);
		return -EPROTO;
	}
	if (src->size < HEADER_SIZE || src->size % sizeof(void *)) {
		snprintf(why, why_len, "ops table of %u bytes: %s", src->size,
			 src->size < HEADER_SIZE ? "too small" : "not a whole number of slots");
		return -EPROTO;
	}
	if (!src->name || !src->name[0]) {
		snprintf(why, why_len, "plugin has no name");
		return -EPROTO;
	}
	if (expect_name && strcmp(src->name, expect_name)) {
		snprintf(why, why_len, "file is named for '%s' but the plugin calls itself '%s'",
			 expect_name, src->name);
		return -EPROTO;
	}
	/* An older plugin (same ABI, shorter table) gets stubs for the slots it
	 * does not know; a newer one's extra slots are ignored. */
	*dst = stub_ops;
	n = src->size < sizeof(*dst) ? src->size : sizeof(*dst);
	for (size_t off = 0; off < n; off += sizeof(void *)) {
		void *slot;

		memcpy(&slot, (const char *)src + off, sizeof(slot));
		if (off < HEADER_SIZE || slot)
			memcpy((char *)dst + off, &slot, sizeof(slot));
	}
	dst->size = sizeof(*dst);
	if (!dst->description)
		dst->description = "";
	return 0;
}

/* ---- search path ------------------------------------------------------- */

#define MAX_DIRS 32

/* Large (128 KiB): always on the heap - an application thread's stack may
 * be 64 KiB (musl's default is 128), and listing nests several frames. */
struct search_path {
	unsigned n;
	char dir[MAX_DIRS][PATH_MAX];
	bool build_tree[MAX_DIRS]; /* dir/<name>/ holds the plugin */
	bool asked[MAX_DIRS];      /* named in $HPN_PLUGIN_PATH */
	char skipped[1024];        /* $HPN_PLUGIN_PATH entries left out, and why: said in errors */
};

static void skip_dir(struct search_path *sp, const char *dir, const char *why)
{
	size_t used = strlen(sp->skipped);

	if (used + 8 < sizeof(sp->skipped))
		snprintf(sp->skipped + used, sizeof(sp->skipped) - used, "%s'%.200s' (%s)", used ? ", " : "", dir,
			 why);
}

static void add_dir(struct search_path *sp, const char *dir, bool build_tree, bool asked)
{
	/* $HPN_PLUGIN_PATH leaves room for the library's own directories. */
	const unsigned max = asked ? MAX_DIRS - 3 : MAX_DIRS;
	char real[PATH_MAX];
	struct stat st;

	if (!realpath(dir, real)) {
		if (asked)
			skip_dir(sp, dir, strerror(errno));
		return;
	}
	if (stat(real, &st) || !S_ISDIR(st.st_mode)) {
		if (asked)
			skip_dir(sp, dir, "not a directory");
		return;
	}
	for (unsigned i = 0; i < sp->n; i++)
		if (!strcmp(sp->dir[i], real))
			return;
	if (sp->n >= max) {
		char why[64];

		snprintf(why, sizeof(why), "more than %u directories", max);
		skip_dir(sp, dir, why);
		return;
	}
	snprintf(sp->dir[sp->n], PATH_MAX, "%s", real);
	sp->asked[sp->n] = asked;
	sp->build_tree[sp->n++] = build_tree;
}

static bool file_exists(const char *p);

/* NULL when out of memory (hpn_set_error said so). Free with free(). */
static struct search_path *build_search_path(void)
{
	struct search_path *sp = calloc(1, sizeof(*sp));
	const char *env = getenv("HPN_PLUGIN_PATH");
	Dl_info info;

	if (!sp) {
		hpn_set_error(-ENOMEM, "out of memory for the plugin search path");
		return NULL;
	}
	if (env) {
		char *copy = strdup(env), *save = NULL;

		for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save))
			add_dir(sp, d, false, true);
		free(copy);
	}
	if (dladdr((void *)hpn_plugin_load, &info) && info.dli_fname) {
		char dir[PATH_MAX], sub[PATH_MAX + 16];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", info.dli_fname);
		slash = strrchr(dir, '/');
		if (slash) {
			*slash = '\0';
			snprintf(sub, sizeof(sub), "%s/hpn", dir);
			add_dir(sp, sub, false, false);
			/* Only in a meson build tree: installed, <libdir>/../plugins
			 * is someone else's directory (/usr/lib/plugins). */
			snprintf(sub, sizeof(sub), "%s/../build.ninja", dir);
			if (file_exists(sub)) {
				snprintf(sub, sizeof(sub), "%s/../plugins", dir);
				add_dir(sp, sub, true, false);
			}
		}
	}
	add_dir(sp, HPN_PLUGINDIR, false, false);
	return sp;
}

static void describe_path(const struct search_path *sp, char *buf, size_t len)
{
	size_t used = 0;

	/* What was left out first: an error text is cut at its end, and a
	 * mistyped entry is what the reader most needs to see. */
	buf[0] = '\0';
	if (sp->skipped[0])
		used = (size_t)snprintf(buf, len, "[left out: %s] ", sp->skipped);
	for (unsigned i = 0; i < sp->n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ":" : "", sp->dir[i]);
	if (!sp->n && used < len)
		snprintf(buf + used, len - used, "(no existing directory; set HPN_PLUGIN_PATH)");
}

static bool file_exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static bool valid_plugin_name(const char *name);

/* What a file name says (parse_file_name). */
enum file_kind {
	FILE_OTHER,   /* not a plugin's: not hpn-*-abi*.so */
	FILE_PLUGIN,  /* hpn-<name>-abi<N>.so: name and N as a load takes them */
	FILE_MISNAMED /* looks like a plugin's, but no plugin= could load it */
};

/* Name part of "hpn-<name>-abi<N>.so", with N - by the rules a load goes
 * by (a name plugin= accepts, N in plain digits), so that nothing that
 * cannot load is chosen by plugin=auto. A misnamed one gets its name part
 * (cut to name_len) and abi -1: it is listed, with the reason. */
static enum file_kind parse_file_name(const char *file, char *name, size_t name_len, int *abi)
{
	const char *p, *dash, *d, *end;
	size_t len = strlen(file), nlen;

	if (strncmp(file, "hpn-", 4) || len < 4 + 1 + 5 + 3 || strcmp(file + len - 3, ".so"))
		return FILE_OTHER;
	p = file + 4;
	dash = strstr(p, "-abi");
	if (!dash || dash == p)
		return FILE_OTHER;
	nlen = (size_t)(dash - p);
	snprintf(name, name_len, "%.*s", (int)nlen, p);
	*abi = -1;
	d = dash + 4;
	end = file + len - 3;
	if (nlen >= name_len || !valid_plugin_name(name))
		return FILE_MISNAMED;
	if (d == end || (*d == '0' && d + 1 != end) || end - d > 6)
		return FILE_MISNAMED; /* no number, a leading zero, or absurdly long */
	int n = 0;

	for (; d < end; d++) {
		if (*d < '0' || *d > '9')
			return FILE_MISNAMED; /* *abi stays -1: never loaded */
		n = n * 10 + (*d - '0');
	}
	*abi = n;
	return FILE_PLUGIN;
}

/* ---- loading ----------------------------------------------------------- */

/* Every plugin file loaded by this process, never unloaded (internal.h). */
static pthread_mutex_t loaded_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hpn_plugin *loaded;

static int load_file_once(const char *path, const char *name, struct hpn_plugin **out, char *why,
			  size_t why_len);

static int load_file(const char *path, const char *name, struct hpn_plugin **out, char *why,
		     size_t why_len)
{
	char real[PATH_MAX];
	int ret = 0;

	if (!realpath(path, real))
		snprintf(real, sizeof(real), "%s", path);
	pthread_mutex_lock(&loaded_lock);
	for (*out = loaded; *out && strcmp((*out)->path, real); *out = (*out)->next)
		;
	if (!*out) {
		ret = load_file_once(real, name, out, why, why_len);
		if (!ret) {
			(*out)->next = loaded;
			loaded = *out;
		}
	} else if (strcmp((*out)->ops.name, name)) {
		snprintf(why, why_len, "file is named for '%s' but the plugin calls itself '%s'", name,
			 (*out)->ops.name);
		*out = NULL;
		ret = -EPROTO;
	}
	pthread_mutex_unlock(&loaded_lock);
	return ret;
}

static int load_file_once(const char *path, const char *name, struct hpn_plugin **out, char *why,
			  size_t why_len)
{
	struct hpn_plugin *p;
	hpn_plugin_entry_fn entry;
	Dl_info info;
	void *dl;
	int ret;

	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		snprintf(why, why_len, "dlopen failed: %s", dlerror());
		return -ENOEXEC;
	}
	entry = (hpn_plugin_entry_fn)dlsym(dl, HPN_PLUGIN_ENTRY_NAME);
	if (!entry) {
		snprintf(why, why_len, "no symbol %s (not an hpn plugin, or built for another ABI)",
			 HPN_PLUGIN_ENTRY_NAME);
		dlclose(dl);
		return -ENOEXEC;
	}
	/* dlsym searches dependencies too: make sure the entry point is this
	 * file's own and not one leaked in from another library (UCX's check). */
	if (dladdr((void *)entry, &info) && info.dli_fname) {
		char a[PATH_MAX], b[PATH_MAX];

		if (realpath(info.dli_fname, a) && realpath(path, b) && strcmp(a, b)) {
			snprintf(why, why_len, "entry point comes from %s, not from the plugin file", a);
			dlclose(dl);
			return -ENOEXEC;
		}
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		dlclose(dl);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	ret = hpn_plugin_check_ops(entry(), name, &p->ops, why, why_len);
	if (ret) {
		free(p);
		dlclose(dl);
		return ret;
	}
	p->dl = dl;
	snprintf(p->name, sizeof(p->name), "%s", p->ops.name);
	snprintf(p->path, sizeof(p->path), "%s", path);
	*out = p;
	return 0;
}

void hpn_plugin_unload(struct hpn_plugin *p)
{
	(void)p; /* loaded once per process, kept until exit (internal.h) */
}

static void candidate(const struct search_path *sp, unsigned i, const char *name, int abi, char *buf,
		      size_t len)
{
	if (sp->build_tree[i])
		snprintf(buf, len, "%s/%s/hpn-%s-abi%d.so", sp->dir[i], name, name, abi);
	else
		snprintf(buf, len, "%s/hpn-%s-abi%d.so", sp->dir[i], name, abi);
}

/* Is there a file for this plugin built for another ABI? Say so: it is the
 * most useful hint after an upgrade. */
static bool find_other_abi(const struct search_path *sp, const char *name, char *found, size_t len)
{
	for (unsigned i = 0; i < sp->n; i++) {
		char dirpath[PATH_MAX + 64];
		struct dirent *de;
		DIR *d;

		if (sp->build_tree[i])
			snprintf(dirpath, sizeof(dirpath), "%s/%s", sp->dir[i], name);
		else
			snprintf(dirpath, sizeof(dirpath), "%s", sp->dir[i]);
		d = opendir(dirpath);
		if (!d)
			continue;
		while ((de = readdir(d))) {
			char n[64];
			int abi;

			if (parse_file_name(de->d_name, n, sizeof(n), &abi) == FILE_PLUGIN && !strcmp(n, name) &&
			    abi != HPN_PLUGIN_ABI) {
				snprintf(found, len, "%s/%s", dirpath, de->d_name);
				closedir(d);
				return true;
			}
		}
		closedir(d);
	}
	return false;
}

static bool valid_plugin_name(const char *name)
{
	if (!*name || strlen(name) >= 32)
		return false;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
			return false;
	return true;
}

static int load_from(const struct search_path *sp, const char *name, struct hpn_plugin **out);

int hpn_plugin_load(const char *name, struct hpn_plugin **out)
{
	struct search_path *sp;
	int ret;

	if (!valid_plugin_name(name))
		return hpn_set_error(-EINVAL, "config: plugin='%s' is not a plugin name (lower-case letters, digits "
					      "and '_', at most 31)", name);
	sp = build_search_path();
	if (!sp)
		return -ENOMEM;
	ret = load_from(sp, name, out);
	free(sp);
	return ret;
}

static int load_from(const struct search_path *sp, const char *name, struct hpn_plugin **out)
{
	char path[PATH_MAX + 128], why[512], dirs[3072];

	/* The first file that loads wins. One that does not (truncated, not
	 * a plugin, a missing library) in a directory $HPN_PLUGIN_PATH names
	 * is an error: the user asked for that build, and an older installed
	 * plugin must not stand in for it unnoticed. Elsewhere it is skipped
	 * with a warning - as ld.so skips an incompatible library - and its
	 * reason is the error if no later one loads either. */
	char first[PATH_MAX + 128 + 512 + 32] = "";
	int first_ret = 0;

	for (unsigned i = 0; i < sp->n; i++) {
		candidate(sp, i, name, HPN_PLUGIN_ABI, path, sizeof(path));
		if (!file_exists(path))
			continue;
		int ret = load_file(path, name, out, why, sizeof(why));

		if (!ret)
			return 0;
		if (sp->asked[i])
			return hpn_set_error(ret, "plugin '%s' refused (%s): %s", name, path, why);
		hpn_log(HPN_LOG_WARN, "plugin '%s': %s refused (%s); looking further", name, path, why);
		if (!first_ret) {
			first_ret = ret;
			snprintf(first, sizeof(first), "%s): %s", path, why);
		}
	}
	if (first_ret)
		return hpn_set_error(first_ret, "plugin '%s' refused (%s", name, first);
	describe_path(sp, dirs, sizeof(dirs));
	if (find_other_abi(sp, name, path, sizeof(path)))
		return hpn_set_error(-ENOENT,
				     "plugin '%s' not found for ABI %d; %s is built for another ABI (rebuild it); searched %s",
				     name, HPN_PLUGIN_ABI, path, dirs);
	return hpn_set_error(-ENOENT, "plugin '%s' not found (no hpn-%s-abi%d.so in %s; set HPN_PLUGIN_PATH or list with hpnbench --list-plugins)",
			     name, name, HPN_PLUGIN_ABI, dirs);
}

/* ---- listing ----------------------------------------------------------- */

#define MAX_LISTED 64

struct listed {
	struct hpn_plugin_info info;
	int abi;
	char name[64];
	char path[PATH_MAX + 300];
	char reason[512];
	char desc[256];
	bool asked; /* found in a $HPN_PLUGIN_PATH directory: it stands, loadable or not */
};

/* Under list_lock: what hpn_plugin_list() last found (its array points
 * into it: valid until the next list), and plugin=auto's own scan - an
 * endpoint created elsewhere must not rewrite a list the application
 * reads. */
static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct listed listed[MAX_LISTED], auto_listed[MAX_LISTED];
static struct hpn_plugin_info list_out[MAX_LISTED];
static bool list_full_said;

/* Index of `name` in the list, or -1. */
static int listed_at(const struct listed *ls, unsigned n, const char *name)
{
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(ls[i].name, name))
			return (int)i;
	return -1;
}

static void list_one(struct listed *l, const char *name, const char *path, int abi)
{
	struct hpn_plugin *p = NULL;
	int ret;

	memset(l, 0, sizeof(*l));
	l->abi = abi;
	snprintf(l->name, sizeof(l->name), "%s", name);
	snprintf(l->path, sizeof(l->path), "%s", path);
	l->info.name = l->name;
	l->info.path = l->path;
	l->info.reason = l->reason;
	if (abi < 0) {
		l->info.status = -EINVAL;
		snprintf(l->reason, sizeof(l->reason), "not loaded: a plugin file is named hpn-<name>-abi<N>.so, "
						       "<name> in lower-case letters, digits and '_' (at most 31), "
						       "N in plain digits");
		return;
	}
	if (abi != HPN_PLUGIN_ABI) {
		l->info.status = -EPROTO;
		snprintf(l->reason, sizeof(l->reason), "built for plugin ABI %d, this library speaks ABI %d",
			 abi, HPN_PLUGIN_ABI);
		return;
	}
	ret = load_file(path, name, &p, l->reason, sizeof(l->reason));
	if (ret) {
		l->info.status = ret;
		return;
	}
	snprintf(l->desc, sizeof(l->desc), "%s", p->ops.description);
	l->info.description = l->desc;
	ret = p->ops.probe(&l->info.caps, l->reason, sizeof(l->reason));
	l->reason[sizeof(l->reason) - 1] = '\0'; /* the plugin's text, perhaps unterminated */
	if (ret > 0) {
		snprintf(l->reason, sizeof(l->reason), "probe returned %d, not 0 or -errno", ret);
		ret = -EPROTO;
	}
	l->info.status = ret;
	if (!ret)
		l->reason[0] = '\0';
	else if (!l->reason[0])
		snprintf(l->reason, sizeof(l->reason), "probe failed: %s", strerror(-ret));
	hpn_plugin_unload(p);
}

/* Plugin files of dir into ls[n...]; *full when some did not fit. */
static unsigned scan_dir(struct listed *ls, const char *dir, unsigned n, bool asked, bool *full)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return n;
	while ((de = readdir(d))) {
		char name[64], path[PATH_MAX + 300];
		int abi;

		if (parse_file_name(de->d_name, name, sizeof(name), &abi) == FILE_OTHER)
			continue;
		if (n == MAX_LISTED && listed_at(ls, n, name) < 0) {
			*full = true;
			continue;
		}
		/* First one that loads for our ABI wins, as in
		 * hpn_plugin_load(); a file for another ABI, or one that does
		 * not load, is listed only if nothing else claims the name,
		 * and gives way to a loadable one found later. */
		int at = listed_at(ls, n, name);

		if (at >= 0 && (abi != HPN_PLUGIN_ABI ||
				(ls[at].abi == HPN_PLUGIN_ABI && (ls[at].info.description || ls[at].asked))))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		list_one(&ls[at >= 0 ? (unsigned)at : n], name, path, abi);
		ls[at >= 0 ? (unsigned)at : n].asked = asked;
		if (at < 0)
			n++;
	}
	closedir(d);
	return n;
}

/* Every plugin file on the search path into ls; -ENOMEM, or how many. A
 * list that overflows says so (a warning, once). */
static int scan_all(struct listed *ls, const struct search_path *sp)
{
	unsigned n = 0;
	bool full = false;

	for (unsigned i = 0; i < sp->n; i++) {
		if (!sp->build_tree[i]) {
			n = scan_dir(ls, sp->dir[i], n, sp->asked[i], &full);
			continue;
		}
		DIR *d = opendir(sp->dir[i]);
		struct dirent *de;

		if (!d)
			continue;
		while ((de = readdir(d))) {
			char sub[PATH_MAX + 300];

			if (de->d_name[0] == '.')
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", sp->dir[i], de->d_name);
			n = scan_dir(ls, sub, n, sp->asked[i], &full);
		}
		closedir(d);
	}
	if (full && !list_full_said) {
		list_full_said = true;
		hpn_log(HPN_LOG_WARN, "plugins: more than %d plugin names on the search path: the rest are not "
				      "listed, nor chosen by plugin=auto (plugin=<name> still loads them)", MAX_LISTED);
	}
	return (int)n;
}

HPN_EXPORT int hpn_plugin_list(const struct hpn_plugin_info **list)
{
	unsigned n;

	if (!list)
		return hpn_set_error(-EINVAL, "hpn_plugin_list: list is NULL");
	struct search_path *sp = build_search_path();

	if (!sp)
		return -ENOMEM;
	pthread_mutex_lock(&list_lock);
	n = (unsigned)scan_all(listed, sp);
	for (unsigned i = 0; i < n; i++)
		list_out[i] = listed[i].info;
	pthread_mutex_unlock(&list_lock);
	free(sp);
	*list = list_out;
	return (int)n;
}

int hpn_plugin_load_auto(struct hpn_plugin **out, char *why, size_t why_len)
{
	struct search_path *sp = build_search_path();
	char best_name[64];
	int n, best = -1, ret;
	size_t used = 0;

	if (!sp)
		return -ENOMEM;
	/* Its own scan (auto_listed), under the lock both share: another
	 * thread may be listing plugins or creating an endpoint right now. */
	pthread_mutex_lock(&list_lock);
	n = scan_all(auto_listed, sp);
	const struct hpn_plugin_info *list[MAX_LISTED];

	for (int i = 0; i < n; i++)
		list[i] = &auto_listed[i].info;
	for (int i = 0; i < n; i++) {
		if (list[i]->status == 0 && (best < 0 || list[i]->caps.preference > list[best]->caps.preference))
			best = i;
	}
	if (best < 0) {
		char dirs[3072];

		describe_path(sp, dirs, sizeof(dirs));
		hpn_set_error(-ENOENT, "plugin=auto: no usable plugin (searched %s)", dirs);
		for (int i = 0; i < n; i++)
			hpn_error_append("%s: %s", list[i]->name, list[i]->reason);
		pthread_mutex_unlock(&list_lock);
		free(sp);
		return -ENOENT;
	}
	used += (size_t)snprintf(why, why_len, "auto chose %s (preference %d)", list[best]->name,
				 list[best]->caps.preference);
	for (int i = 0; i < n && used < why_len; i++) {
		if (i == best)
			continue;
		used += (size_t)snprintf(why + used, why_len - used, "; %s: %s", list[i]->name,
					 list[i]->status ? list[i]->reason : "usable, lower preference");
	}
	snprintf(best_name, sizeof(best_name), "%s", list[best]->name);
	pthread_mutex_unlock(&list_lock);
	ret = load_from(sp, best_name, out);
	free(sp);
	return ret;
}
