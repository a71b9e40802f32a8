/* SPDX-License-Identifier: MIT */
/* fault.c - see fault.h. */
#include "fault.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parsing -------------------------------------------------------- */

static const struct {
	const char *name;
	size_t off;
} prob_keys[] = {
	{"loss", offsetof(struct hpn_fault_cfg, loss)},
	{"reorder", offsetof(struct hpn_fault_cfg, reorder)},
	{"dup", offsetof(struct hpn_fault_cfg, dup)},
	{"corrupt", offsetof(struct hpn_fault_cfg, corrupt)},
	{"delay", offsetof(struct hpn_fault_cfg, delay)},
};

/* A span of the spec string: items are parsed in place, the caller's
 * string stays const. */
struct span {
	const char *p;
	size_t n;
};

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* "loss = 0.1, dup=0.2" typed on a command line should work too. */
static struct span trim(struct span s)
{
	while (s.n && is_blank(s.p[0]))
		s.p++, s.n--;
	while (s.n && is_blank(s.p[s.n - 1]))
		s.n--;
	return s;
}

static bool span_is(struct span s, const char *word)
{
	return s.n == strlen(word) && !memcmp(s.p, word, s.n);
}

/* strtod and strtoull need a terminated string, and must not run into the
 * next item (strtod reads ',' as a decimal point in some locales): copy the
 * value out. Values longer than any sensible number are rejected. */
static bool value_copy(struct span v, char *buf, size_t size)
{
	if (v.n >= size)
		return false;
	memcpy(buf, v.p, v.n);
	buf[v.n] = '\0';
	return true;
}

static int parse_prob(struct span key, struct span val, double *out, char *err, size_t errlen)
{
	char buf[64], *end;
	double v;

	if (!value_copy(val, buf, sizeof(buf)))
		return fail(err, errlen, "fault spec: %.*s: value too long", (int)key.n, key.p);
	v = strtod(buf, &end);
	if (end == buf)
		return fail(err, errlen, "fault spec: %.*s='%s' is not a number", (int)key.n, key.p, buf);
	if (*end)
		return fail(err, errlen, "fault spec: %.*s='%s': garbage '%s' after the number",
			    (int)key.n, key.p, buf, end);
	/* Written so that NaN fails too. */
	if (!(v >= 0.0 && v <= 1.0))
		return fail(err, errlen, "fault spec: %.*s=%s: probability outside [0,1]",
			    (int)key.n, key.p, buf);
	*out = v;
	return 0;
}

static int parse_uint(struct span key, struct span val, uint64_t *out, char *err, size_t errlen)
{
	char buf[64], *end;
	unsigned long long v;

	if (!value_copy(val, buf, sizeof(buf)))
		return fail(err, errlen, "fault spec: %.*s: value too long", (int)key.n, key.p);
	/* strtoull would quietly wrap "-1" around. */
	if (buf[0] == '-' || buf[0] == '+')
		return fail(err, errlen, "fault spec: %.*s='%s' is not an unsigned number",
			    (int)key.n, key.p, buf);
	errno = 0;
	v = strtoull(buf, &end, 0);
	if (end == buf)
		return fail(err, errlen, "fault spec: %.*s='%s' is not a number", (int)key.n, key.p, buf);
	if (*end)
		return fail(err, errlen, "fault spec: %.*s='%s': garbage '%s' after the number",
			    (int)key.n, key.p, buf, end);
	if (errno == ERANGE)
		return fail(err, errlen, "fault spec: %.*s='%s' is too large", (int)key.n, key.p, buf);
	*out = v;
	return 0;
}

/* First of two separators in p[0, n), or NULL. */
static const char *find2(const char *p, size_t n, char a, char b)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == a || p[i] == b)
			return p + i;
	return NULL;
}

static int parse_item(struct span item, struct hpn_fault_cfg *c, char *err, size_t errlen)
{
	const char *eq = find2(item.p, item.n, '=', ':');
	struct span key, val;
	uint64_t us;
	int rc;

	if (!item.n)
		return fail(err, errlen, "fault spec: empty item (stray ',')");
	if (!eq)
		return fail(err, errlen, "fault spec: '%.*s' has no '=' (expected key=value)",
			    (int)item.n, item.p);
	key = trim((struct span){item.p, (size_t)(eq - item.p)});
	val = trim((struct span){eq + 1, item.n - (size_t)(eq - item.p) - 1});
	if (!val.n)
		return fail(err, errlen, "fault spec: %.*s= has no value", (int)key.n, key.p);
	for (size_t i = 0; i < sizeof(prob_keys) / sizeof(prob_keys[0]); i++)
		if (span_is(key, prob_keys[i].name))
			return parse_prob(key, val, (double *)((char *)c + prob_keys[i].off), err, errlen);
	if (span_is(key, "seed"))
		return parse_uint(key, val, &c->seed, err, errlen);
	if (span_is(key, "delay_us")) {
		rc = parse_uint(key, val, &us, err, errlen);
		if (rc)
			return rc;
		if (us > UINT64_MAX / 1000)
			return fail(err, errlen, "fault spec: delay_us=%.*s is too large", (int)val.n,
				    val.p);
		c->delay_ns = us * 1000;
		return 0;
	}
	return fail(err, errlen,
		    "fault spec: unknown key '%.*s' (known: loss, reorder, dup, corrupt, delay, "
		    "delay_us, seed)",
		    (int)key.n, key.p);
}

int hpn_fault_parse(const char *spec, struct hpn_fault_cfg *cfg, char *err, size_t errlen)
{
	/* Parse into a copy: a bad spec leaves the caller's cfg as it was. */
	struct hpn_fault_cfg c = {.delay_ns = HPN_FAULT_DELAY_NS_DEFAULT,
				  .seed = HPN_FAULT_SEED_DEFAULT};
	struct span all = trim((struct span){spec ? spec : "", spec ? strlen(spec) : 0});

	if (err && errlen)
		err[0] = '\0';
	if (all.n && !span_is(all, "none")) {
		const char *p = all.p, *end = all.p + all.n;
		struct span seen[8]; /* the keys so far: a repeat is a mistake, as in a config string */
		unsigned nseen = 0;

		for (;;) {
			const char *comma = find2(p, (size_t)(end - p), ',', '/');
			const char *stop = comma ? comma : end;
			struct span item = trim((struct span){p, (size_t)(stop - p)});
			int rc = parse_item(item, &c, err, errlen);

			if (rc)
				return rc;
			/* Parsed: a known key, so fewer than 8 distinct ones. */
			struct span key = trim((struct span){item.p, (size_t)(find2(item.p, item.n, '=', ':') - item.p)});

			for (unsigned i = 0; i < nseen; i++)
				if (seen[i].n == key.n && !memcmp(seen[i].p, key.p, key.n))
					return fail(err, errlen, "fault spec: %.*s given twice", (int)key.n, key.p);
			if (nseen < 8)
				seen[nseen++] = key;
			if (!comma)
				break;
			p = comma + 1;
		}
	}
	*cfg = c;
	return 0;
}

bool hpn_fault_active(const struct hpn_fault_cfg *cfg)
{
	return cfg->loss > 0 || cfg->reorder > 0 || cfg->dup > 0 || cfg->corrupt > 0 ||
	       cfg->delay > 0;
}

/* ---- state ---------------------------------------------------------- */

static bool prob_ok(double p)
{
	return p >= 0.0 && p <= 1.0; /* false for NaN */
}

int hpn_fault_init(struct hpn_fault *f, const struct hpn_fault_cfg *cfg, size_t max_pkt)
{
	memset(f, 0, sizeof(*f)); /* fini is safe after a failed init */
	if (!cfg || !max_pkt || !prob_ok(cfg->loss) || !prob_ok(cfg->reorder) ||
	    !prob_ok(cfg->dup) || !prob_ok(cfg->corrupt) || !prob_ok(cfg->delay))
		return -EINVAL;
	if (max_pkt > SIZE_MAX - 63)
		return -ENOMEM;
	f->cfg = *cfg;
	f->rng = cfg->seed;
	f->max_pkt = max_pkt;
	/* Cache-line stride: copies start aligned, as the caller's would. */
	f->stride = (max_pkt + 63) & ~(size_t)63;
	/* One block, now: xmit must never allocate. The last buffer is the
	 * scratch copy for corrupting a datagram sent at once. */
	f->buf = calloc(HPN_FAULT_SLOTS + 1, f->stride);
	return f->buf ? 0 : -ENOMEM;
}

void hpn_fault_fini(struct hpn_fault *f)
{
	free(f->buf);
	f->buf = NULL;
	for (unsigned i = 0; i < HPN_FAULT_SLOTS; i++)
		f->slot[i].copies = 0;
	f->held = f->held_reorder = 0;
}

static uint8_t *slot_buf(const struct hpn_fault *f, unsigned i)
{
	return f->buf + (size_t)i * f->stride;
}

/* ---- drawing faults ------------------------------------------------- */

/* splitmix64: tiny, any seed (0 included) is good, and passes BigCrush -
 * plenty for deciding faults. */
static uint64_t rand64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* True with probability p: the top 53 bits as a double in [0,1), so p = 1
 * always hits and p = 0 never does. */
static bool chance(uint64_t r, double p)
{
	return (double)(r >> 11) * 0x1.0p-53 < p;
}

struct fate {
	bool lost, corrupt, dup, reorder, delay;
	uint64_t bit; /* which bit to flip, modulo the datagram's bits */
};

/* Always the same number of draws per datagram, one per fault: the fate of
 * the n-th datagram depends only on the seed and n - not on what happened
 * to earlier ones, nor on which other faults are enabled (adding dup=0.01
 * keeps the same datagrams lost). */
static struct fate draw(struct hpn_fault *f)
{
	struct fate d;

	d.lost = chance(rand64(&f->rng), f->cfg.loss);
	d.corrupt = chance(rand64(&f->rng), f->cfg.corrupt);
	d.dup = chance(rand64(&f->rng), f->cfg.dup);
	d.reorder = chance(rand64(&f->rng), f->cfg.reorder);
	d.delay = chance(rand64(&f->rng), f->cfg.delay);
	d.bit = rand64(&f->rng);
	/* A datagram is held once: reordering wins over delay. */
	if (d.reorder)
		d.delay = false;
	return d;
}

/* Can every drawn fault be applied? If not, none is: a datagram is either
 * faulted as drawn or passed unharmed, so the counters stay exact. */
static bool applicable(const struct hpn_fault *f, const struct fate *d, size_t dst_len,
		       size_t len)
{
	bool hold = d->reorder || d->delay;

	if ((hold || d->corrupt) && len > f->max_pkt)
		return false;
	if (d->corrupt && !len)
		return false;
	return !hold || (dst_len <= HPN_FAULT_DST_MAX && f->held < HPN_FAULT_SLOTS);
}

static void flip_bit(uint8_t *p, size_t len, uint64_t r)
{
	uint64_t bit = r % ((uint64_t)len * 8);

	p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
}

/* ---- holding and releasing ------------------------------------------ */

static void release(struct hpn_fault *f, unsigned i, hpn_fault_out_fn out, void *arg)
{
	struct hpn_fault_slot *s = &f->slot[i];

	for (unsigned c = 0; c < s->copies; c++)
		out(arg, s->dst, s->dst_len, slot_buf(f, i), s->len);
	s->copies = 0;
	f->held--;
	if (s->reorder)
		f->held_reorder--;
}

/* Should held slot a go out before held slot b? Earliest due first, then
 * first held. */
static bool before(const struct hpn_fault_slot *a, const struct hpn_fault_slot *b)
{
	return a->release_ns < b->release_ns ||
	       (a->release_ns == b->release_ns && a->order < b->order);
}

/* The held slot due by now to release first; -1 if none. A linear scan:
 * there are only HPN_FAULT_SLOTS. */
static int pick_due(const struct hpn_fault *f, uint64_t now)
{
	int best = -1;

	for (unsigned i = 0; i < HPN_FAULT_SLOTS; i++) {
		const struct hpn_fault_slot *s = &f->slot[i];

		if (s->copies && s->release_ns <= now && (best < 0 || before(s, &f->slot[best])))
			best = (int)i;
	}
	return best;
}

/* The first held of the slots held for reordering; -1 if none. */
static int pick_reordered(const struct hpn_fault *f)
{
	int best = -1;

	for (unsigned i = 0; i < HPN_FAULT_SLOTS; i++) {
		const struct hpn_fault_slot *s = &f->slot[i];

		if (s->copies && s->reorder && (best < 0 || s->order < f->slot[best].order))
			best = (int)i;
	}
	return best;
}

/* A datagram just went out: the reordered ones held before it follow it,
 * in the order they were held. */
static void release_reordered(struct hpn_fault *f, hpn_fault_out_fn out, void *arg)
{
	int i;

	while (f->held_reorder && (i = pick_reordered(f)) >= 0)
		release(f, (unsigned)i, out, arg);
}

static unsigned free_slot(const struct hpn_fault *f)
{
	unsigned i = 0;

	while (f->slot[i].copies) /* applicable() made sure one is free */
		i++;
	return i;
}

static void hold(struct hpn_fault *f, const struct fate *d, const void *dst, size_t dst_len,
		 const uint8_t *pkt, size_t len, uint64_t now)
{
	unsigned i = free_slot(f);
	struct hpn_fault_slot *s = &f->slot[i];

	if (len)
		memcpy(slot_buf(f, i), pkt, len);
	if (d->corrupt)
		flip_bit(slot_buf(f, i), len, d->bit);
	if (dst_len)
		memcpy(s->dst, dst, dst_len);
	s->dst_len = dst_len;
	s->len = len;
	s->copies = d->dup ? 2 : 1;
	s->reorder = d->reorder;
	/* Saturating: a huge delay_ns means "until flushed", not a wrap to 0. */
	s->release_ns = now > UINT64_MAX - f->cfg.delay_ns ? UINT64_MAX : now + f->cfg.delay_ns;
	s->order = f->order++;
	f->held++;
	if (d->reorder) {
		f->held_reorder++;
		f->reordered++;
	} else {
		f->delayed++;
	}
}

static void send_now(struct hpn_fault *f, const struct fate *d, const void *dst, size_t dst_len,
		     const uint8_t *pkt, size_t len, hpn_fault_out_fn out, void *arg)
{
	const uint8_t *p = pkt;

	if (d->corrupt) {
		/* Never the caller's buffer: it may be retransmitted. */
		uint8_t *scratch = slot_buf(f, HPN_FAULT_SLOTS);

		memcpy(scratch, pkt, len);
		flip_bit(scratch, len, d->bit);
		p = scratch;
	}
	out(arg, dst, dst_len, p, len);
	if (d->dup)
		out(arg, dst, dst_len, p, len);
	release_reordered(f, out, arg);
}

void hpn_fault_xmit(struct hpn_fault *f, const void *dst, size_t dst_len, const uint8_t *pkt,
		    size_t len, uint64_t now, hpn_fault_out_fn out, void *arg)
{
	static const struct fate none;
	struct fate d = draw(f);

	if (d.lost) {
		f->dropped++;
		return;
	}
	f->passed++;
	if (!applicable(f, &d, dst_len, len)) {
		f->spared++;
		send_now(f, &none, dst, dst_len, pkt, len, out, arg);
		return;
	}
	f->corrupted += d.corrupt;
	f->duplicated += d.dup;
	if (d.reorder || d.delay)
		hold(f, &d, dst, dst_len, pkt, len, now);
	else
		send_now(f, &d, dst, dst_len, pkt, len, out, arg);
}

void hpn_fault_tick(struct hpn_fault *f, uint64_t now, hpn_fault_out_fn out, void *arg)
{
	int i;

	while (f->held && (i = pick_due(f, now)) >= 0)
		release(f, (unsigned)i, out, arg);
}

uint64_t hpn_fault_next_ns(const struct hpn_fault *f)
{
	uint64_t next = UINT64_MAX;

	for (unsigned i = 0; f->held && i < HPN_FAULT_SLOTS; i++)
		if (f->slot[i].copies && f->slot[i].release_ns < next)
			next = f->slot[i].release_ns;
	return next;
}

void hpn_fault_flush(struct hpn_fault *f, hpn_fault_out_fn out, void *arg)
{
	hpn_fault_tick(f, UINT64_MAX, out, arg);
}
