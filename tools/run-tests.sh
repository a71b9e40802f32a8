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
