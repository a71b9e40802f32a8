#!/bin/bash
# The whole test suite: installs what is missing, then builds and tests
#   build/       the normal (-O2) build
#   build-asan/  the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   build-tsan/  what runs threads, under ThreadSanitizer (the progress
#                thread, the rings, the pool flags, the event queue): the
#                unit and udp suites but the one-thread simulations, and
#                udp_e2e's progress-thread cases
# and checks that an application builds against the installed library
# through pkg-config. Exit status 0 means everything passed (skips say why).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh

# run_suite DIR [SETUP_ARGS...] [-- TEST_ARGS...]
run_suite() {
	local dir=$1 setup=() tests=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do setup+=("$1"); shift; done
	[ $# -gt 0 ] && shift && tests=("$@")
	[ -f "$dir/build.ninja" ] || meson setup "$dir" "${setup[@]}"
	ninja -C "$dir"
	meson test -C "$dir" --print-errorlogs --num-processes 1 "${tests[@]}" && return 0
	# --print-errorlogs shows a failed test's last 100 lines, where a
	# sanitizer's leak report (a failed assertion skips the clean-up) can
	# bury the assertion itself: show the failures from the full log.
	echo "== what failed, from $dir/meson-logs/testlog.json"
	python3 - "$dir/meson-logs/testlog.json" <<'PY' || true
import json, re, sys
pat = re.compile(r"\[  (FAILED|ERROR) +\]|^FAIL|[Ee]rror: |Assertion|runtime error|ERROR: AddressSanitizer|SUMMARY: ")
for line in open(sys.argv[1]):
    t = json.loads(line)
    if t.get("result") in ("OK", "SKIP", "EXPECTEDFAIL"):
        continue
    out = ((t.get("stdout") or "") + "\n" + (t.get("stderr") or "")).splitlines()
    print("-- %s: %s" % (t["name"], t["result"]))
    hits = [i for i, l in enumerate(out) if pat.search(l)]
    shown = sorted({j for i in hits for j in range(max(0, i - 3), min(len(out), i + 3))})
    for j in shown[:150]:
        print(out[j])
PY
	return 1
}

echo "== normal build"
run_suite build
echo "== sanitizer build (ASan + UBSan)"
# The longer runs over soft-RoCE's wire (suite wire_long) ran in the normal
# build; the sanitizers keep the device-event and 1% loss runs.
run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug -- --no-suite wire_long
echo "== thread sanitizer build (what runs threads: unit and udp suites)"
# Any race fails the run at once. The ASan/UBSan settings of
# tests/meson.build stay as they are (they only matter to build-asan).
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1${TSAN_OPTIONS:+ $TSAN_OPTIONS}"
# Races need two threads: the single-threaded loss simulations (suite
# one_thread) are left out, and udp_e2e runs only its cases with a progress
# thread (E2E_THREADED) - together ~5 of the ~6.5 minutes this stage took.
E2E_THREADED=1 run_suite build-tsan -Db_sanitize=thread -Db_lundef=false --buildtype=debug -- \
	--suite unit --suite udp --no-suite one_thread \
	--timeout-multiplier 3 # the packet layer's loss simulations run ~5x slower

echo "== fuzzing the packet layer (libFuzzer, ASan + UBSan, bounded)"
fuzz_time=${HPN_FUZZ_SECONDS:-30}
mkdir -p build-fuzz
fuzz() { # name, corpus dir, sources...
	local name=$1 seeds=$2 corpus
	shift 2
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Isrc -Iinclude \
		"tests/fuzz/$name.c" "$@" -o "build-fuzz/$name"
	corpus=$(mktemp -d)
	cp "$seeds"/* "$corpus"/
	echo "-- $name ($fuzz_time s)"
	"build-fuzz/$name" -max_total_time="$fuzz_time" -timeout=10 -print_final_stats=1 "$corpus" 2>&1 | tail -3
	rm -rf "$corpus"
}
# The decoder and reassembly; then a whole stream fed by a hostile peer.
fuzz fuzz_packet tests/fuzz/corpus src/packet/wire.c
fuzz fuzz_conn tests/fuzz/corpus_conn src/packet/conn.c src/packet/wire.c src/packet/rxwin.c src/packet/txwin.c src/packet/cc.c
# A market-data feed: hostile datagrams on several lines into one arbitration.
fuzz fuzz_feed tests/fuzz/corpus_feed src/packet/feed.c
# Ethernet / IPv4 / UDP frames and ARP, as af_xdp and dpdk receive them.
fuzz fuzz_frame tests/fuzz/corpus_frame src/net/frame.c
# What users type: the endpoint's config string, faults= and seq= specs.
fuzz fuzz_config tests/fuzz/corpus_config src/config.c src/log.c src/packet/fault.c src/packet/feed.c -DHPN_VERSION='"fuzz"'

echo "== pkg-config consumer"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
DESTDIR="$stage" meson install -C build --quiet
prefix=$(meson introspect build --buildoptions | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
libdir=$(meson introspect build --buildoptions | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="libdir"))')
export PKG_CONFIG_PATH="$stage$prefix/$libdir/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$stage"
cc -Wall -Wextra -Werror -o "$stage/consumer" tests/pkgconfig/consumer.c \
	$(pkg-config --cflags --libs hpntransport)
LD_LIBRARY_PATH="$stage$prefix/$libdir" HPN_PLUGIN_PATH="$stage$prefix/$libdir/hpn" "$stage/consumer"
echo "== all tests passed"
