#!/bin/bash
# Fresh machine to first numbers: install what is missing, build, and run
# hpnbench with both ends on this machine (udp over loopback).
# Extra arguments go to hpnbench, e.g. tools/run-demo.sh --size 64,1024.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
[ -f build/build.ninja ] || meson setup build --buildtype=release
ninja -C build
exec build/bench/hpnbench --plugin udp --cpu 0 --size 64,1024 --iters 100000 "$@"
