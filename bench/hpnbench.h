/* SPDX-License-Identifier: MIT */
/* hpnbench.h - what hpnbench.c (pingpong, stream) shares with feed.c. */
#ifndef HPNBENCH_H
#define HPNBENCH_H

#include <hpn/hpn.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MAX_SIZES 32
#define MAX_LISTEN 8

enum bench_mode { MODE_PINGPONG = 0, MODE_STREAM = 1, MODE_FEED = 2 };

struct opts {
	const char *plugin, *bind, *peer, *json, *config, *wait, *progress, *faults;
	bool server, list;
	size_t sizes[MAX_SIZES];
	unsigned nsizes;
	uint64_t iters, warmup;
	double duration;
	int mode; /* enum bench_mode */
	int cpu;
	int server_cpu;
	bool quiet;
	bool verify; /* --verify: every payload byte carries a pattern, checked on receipt */
	const char *listen[MAX_LISTEN]; /* --mode feed: the lines */
	unsigned nlisten;
	double app_us; /* --mode feed: the application's work per message (a busy wait) */
};

/* Set by SIGINT/SIGTERM, read by every thread (the loopback server's too):
 * an atomic, lock-free int - safe in a signal handler and between threads,
 * where volatile sig_atomic_t is only the former. */
extern _Atomic int interrupted;

void die(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
uint64_t now_ns(void);
void pin(int cpu, const char *who);
hpn_ep *make_ep(const struct opts *o, int cpu);
/* A JSON string's characters (without the quotes). */
void json_str(FILE *f, const char *s);
/* --json: json_check() before anything is measured (a path that cannot
 * be written fails first, and an old file stays until a result replaces
 * it); json_open() when the results are in; json_close() checks every
 * write. */
void json_check(const struct opts *o);
FILE *json_open(const struct opts *o);
void json_close(FILE *f, const struct opts *o);

/* --mode feed: receive one feed from o->listen; returns the exit code. */
int feed_main(const struct opts *o);

#endif
