#!/bin/bash
# udp reliable=on (the packet layer) vs reliable=off (raw datagrams), on
# loopback, measured back to back in one run.
#
# Latency: ping-pong at each size, client pinned to CPU0 and server to
# CPU1, user-space spin, the same duration; rounds alternate raw and
# reliable so drift on a shared machine hits both; the median round is
# reported. Throughput: stream of 64 B messages, raw vs reliable at 0 %
# loss, and reliable at 1 % injected loss (--faults).
#
#   bench/reliable_vs_raw.sh [--sizes 64,1024] [--duration 3] [--rounds 3] [--build DIR]
#
# Target (issue 5): the reliable layer adds under 0.3 us at p50 for 64 B.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=64,1024 duration=3 rounds=3 build=build
while [ $# -gt 0 ]; do
	case $1 in
	--sizes) sizes=$2; shift 2 ;;
	--duration) duration=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	-h|--help) sed -n '2,14p' "$0"; exit 0 ;;
	*) echo "reliable_vs_raw: unknown option $1" >&2; exit 2 ;;
	esac
done
bench=$build/bench/hpnbench
[ -x "$bench" ] || { echo "reliable_vs_raw: $bench missing: build first (ninja -C $build)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || echo "reliable_vs_raw: warning: fewer than 2 cpus, client and server share one" >&2

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

run() { # name, then hpnbench options
	local name=$1
	shift
	taskset -c 0,1 "$bench" --plugin udp --cpu 0 --wait spin --duration "$duration" --quiet \
		--json "$out/$name.json" "$@" >/dev/null
}

IFS=, read -ra size_list <<<"$sizes"
for r in $(seq 1 "$rounds"); do
	for s in "${size_list[@]}"; do
		echo "round $r/$rounds size $s: ping-pong raw, reliable" >&2
		run "pp_raw_${s}_$r" --config reliable=off --size "$s" --warmup 10000
		run "pp_rel_${s}_$r" --config reliable=on --size "$s" --warmup 10000
	done
	echo "round $r/$rounds: stream 64 B raw, reliable, reliable at 1% loss" >&2
	run "st_raw_$r" --config reliable=off --mode stream --size 64
	run "st_rel_$r" --config reliable=on --mode stream --size 64
	run "st_loss_$r" --config reliable=on --mode stream --size 64 --faults loss=0.01,seed=$r
done

python3 - "$out" "$sizes" "$rounds" <<'PY'
import json, statistics, sys
out, sizes, rounds = sys.argv[1], [int(s) for s in sys.argv[2].split(',')], int(sys.argv[3])
res = lambda name: json.load(open('%s/%s.json' % (out, name)))['results'][0]
med = lambda xs: statistics.median(xs)
R = range(1, rounds + 1)
met = True
print("\nudp reliable=on vs reliable=off, loopback, spin, client cpu0 / server cpu1, median of %d rounds" % rounds)
print("one-way latency in us (half the round trip)\n")
print("%6s  %8s %8s %8s   %9s %9s   %s" % ("size", "raw p50", "rel p50", "+us", "raw p99.9", "rel p99.9", "retransmits"))
for s in sizes:
    raw = [res('pp_raw_%d_%d' % (s, r)) for r in R]
    rel = [res('pp_rel_%d_%d' % (s, r)) for r in R]
    a, b = med([x['t_typical_us'] for x in raw]), med([x['t_typical_us'] for x in rel])
    c, d = med([x['p99_9_us'] for x in raw]), med([x['p99_9_us'] for x in rel])
    bad = sum(x['drops'] + x['dups'] + x['out_of_order'] for x in rel)
    print("%6d  %8.2f %8.2f %+8.2f   %9.2f %9.2f   %d%s" % (s, a, b, b - a, c, d, sum(x['retransmits'] for x in rel),
          "" if not bad else "  (reliable lost/duplicated/reordered %d!)" % bad))
    if s == 64:
        met &= b - a < 0.3
        print("        64 B overhead %.2f us at p50: target < 0.3 us %s" % (b - a, "met" if b - a < 0.3 else "NOT met"))
    met &= bad == 0
print("\nstream 64 B, messages/s received by the server (median run)")
for name, label in (('st_raw', 'raw, 0% loss'), ('st_rel', 'reliable, 0% loss'), ('st_loss', 'reliable, 1% loss')):
    rs = sorted([res('%s_%d' % (name, r)) for r in R], key=lambda x: x['msgs_per_s'])
    m = rs[len(rs) // 2]
    print("  %-18s %12.0f   drops %d  out of order %d  retransmits %d" % (label, m['msgs_per_s'], m['drops'],
          m['out_of_order'], m['retransmits']))
    if name != 'st_raw':
        met &= m['drops'] == 0 and m['out_of_order'] == 0
print("\ntargets %s" % ("met" if met else "NOT all met (see above)"))
PY
