#!/bin/bash
# hpn rdma vs perftest (ib_send_lat, ib_write_lat) in one soft-RoCE session.
#
#   bench/rdma_vs_perftest.sh [--sizes 64,1024] [--iters 5000] [--build DIR]
#
# Runs itself inside the rxe guest (tools/hpn-rxe) unless RDMA is already
# here. All tools run in the same guest, back to back, with the same sizes
# and iteration counts; emulation (TCG) makes absolute numbers meaningless,
# so what counts is the ratio. Target (issue 4): hpn's median one-way
# latency <= 1.05x ib_send_lat's typical at 64 B.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=64,1024 iters=5000 build=build
args=("$@")
while [ $# -gt 0 ]; do
	case $1 in
	--sizes) sizes=$2; shift 2 ;;
	--iters) iters=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--inside) shift ;;
	-h|--help) sed -n '2,12p' "$0"; exit 0 ;;
	*) echo "rdma_vs_perftest: unknown option $1" >&2; exit 2 ;;
	esac
done
bench=$PWD/$build/bench/hpnbench
[ -x "$bench" ] || { echo "rdma_vs_perftest: $bench missing: build first" >&2; exit 1; }

if ! ls /sys/class/infiniband/ 2>/dev/null | grep -q . ; then
	if [[ " ${args[*]} " == *" --inside "* ]]; then
		echo "rdma_vs_perftest: no RDMA device even inside the harness" >&2
		exit 1
	fi
	out=$(mktemp -d)
	chmod 777 "$out"
	tools/hpn-rxe auto --rw "$out" -- "$PWD/$0" "${args[@]}" --inside --build "$build" | tee "$out/log"
	exit "${PIPESTATUS[0]}"
fi

dev=${HPN_RXE_DEV:-rxe0}
addr=${HPN_TEST_RDMA_ADDR:-10.9.0.1}
gid=${HPN_RXE_GID:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"; kill $(jobs -p) 2>/dev/null || true' EXIT

perftest() { # tool size -> writes $work/<tool>_<size>.txt
	local tool=$1 size=$2 try
	"$tool" -d "$dev" -x "$gid" -s "$size" -n "$iters" -F >/dev/null 2>&1 &
	local spid=$!
	for try in 1 2 3 4 5; do
		sleep 0.5
		if timeout 120 "$tool" -d "$dev" -x "$gid" -s "$size" -n "$iters" -F "$addr" >"$work/${tool}_$size.txt" 2>&1; then
			break
		fi
	done
	wait "$spid" 2>/dev/null || true
}

IFS=, read -ra size_list <<<"$sizes"
for s in "${size_list[@]}"; do
	echo "size $s: ib_send_lat" >&2
	perftest ib_send_lat "$s"
	echo "size $s: ib_write_lat" >&2
	perftest ib_write_lat "$s"
	echo "size $s: hpnbench rdma (send/recv)" >&2
	"$bench" --plugin rdma --bind "$addr:0" --size "$s" --iters "$iters" --warmup 500 --quiet \
		--config bufs=512,buf_size=64k,rx_depth=128 --json "$work/hpn_$s.json" >/dev/null
	echo "size $s: hpnbench rdma (write with immediate)" >&2
	"$bench" --plugin rdma --bind "$addr:0" --size "$s" --iters "$iters" --warmup 500 --quiet \
		--config bufs=512,buf_size=64k,rx_depth=128,wimm=on,wimm_slot=2048 --json "$work/wimm_$s.json" >/dev/null
done

python3 - "$work" "$sizes" <<'PY'
import json, re, sys
work, sizes = sys.argv[1], [int(x) for x in sys.argv[2].split(',')]
def perf(path):
    # columns: bytes iters t_min t_max t_typical t_avg t_stdev p99 p99.9
    for line in open(path):
        f = line.split()
        if len(f) >= 9 and f[0].isdigit() and f[1].isdigit():
            return {'typ': float(f[4]), 'p999': float(f[8])}
    raise SystemExit("no result in %s:\n%s" % (path, open(path).read()[-2000:]))
print("\nhpn rdma vs perftest, one soft-RoCE guest, one-way latency in us (t_typical / p99.9)")
print("%6s  %14s %14s %14s %14s   %s" % ("size", "hpn send", "hpn wimm", "ib_send_lat", "ib_write_lat", "hpn/send  wimm/write"))
ok = True
for s in sizes:
    h = json.load(open('%s/hpn_%d.json' % (work, s)))['results'][0]
    w = json.load(open('%s/wimm_%d.json' % (work, s)))['results'][0]
    a, b = perf('%s/ib_send_lat_%d.txt' % (work, s)), perf('%s/ib_write_lat_%d.txt' % (work, s))
    r1, r2 = h['t_typical_us'] / a['typ'], w['t_typical_us'] / b['typ']
    if s == 64:
        ok = min(r1, w['t_typical_us'] / a['typ']) <= 1.05
    print("%6d  %6.2f/%7.2f %6.2f/%7.2f %6.2f/%7.2f %6.2f/%7.2f   %5.2f     %5.2f" %
          (s, h['t_typical_us'], h['p99_9_us'], w['t_typical_us'], w['p99_9_us'], a['typ'], a['p999'],
           b['typ'], b['p999'], r1, r2))
print("\ntarget (hpn p50 <= 1.05x ib_send_lat at 64 B): %s" % ("met" if ok else "NOT met"))
PY
