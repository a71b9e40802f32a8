#!/bin/bash
# The whole test suite: installs what is missing, then builds and tests
#   build/       the normal (-O2) build
#   build-asan/  the same under AddressSanitizer + UndefinedBehaviorSanitizer
# and checks that an application builds against the installed library
# through pkg-config. Exit status 0 means everything passed (skips say why).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh

run_suite() {
	local dir=$1; shift
	[ -f "$dir/build.ninja" ] || meson setup "$dir" "$@"
	ninja -C "$dir"
	meson test -C "$dir" --print-errorlogs --num-processes 1
}

echo "== normal build"
run_suite build
echo "== sanitizer build (ASan + UBSan)"
run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug

echo "== fuzzing the packet decoder (libFuzzer, ASan + UBSan, bounded)"
fuzz_time=${HPN_FUZZ_SECONDS:-30}
mkdir -p build-fuzz
corpus=$(mktemp -d)
cp tests/fuzz/corpus/* "$corpus"/
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Isrc \
	tests/fuzz/fuzz_packet.c src/packet/wire.c -o build-fuzz/fuzz_packet
build-fuzz/fuzz_packet -max_total_time="$fuzz_time" -print_final_stats=1 "$corpus" 2>&1 | tail -3
rm -rf "$corpus"

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
