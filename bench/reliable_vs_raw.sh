#!/bin/bash
# udp reliable=on (the packet layer) vs reliable=off (raw datagrams), on
# loopback, measured back to back in one run.
#
# Latency: ping-pong at each size, client pinned to CPU0 and server to
# CPU1, user-space spin, the same duration; rounds alternate raw and
# reliable so drift on a shared machine hits both; the median round is
# reported. Throughput: stream of 64 B messages, raw vs reliable at 0 %
# loss, and reliable at 1 % injected loss (--faults).
# Loss recovery (issue 9), reliable only, one run each: stream goodput and
# retransmissions per packet at 0/1/5 % loss for 64 B, 64 KiB and 1 MiB
# (goodput under 1 % loss against clean; spurious retransmissions on the
# clean path), ping-pong p50/p99 at 5 % beside clean, and each run's peak
# memory (max RSS of the hpnbench process: both ends). Congestion control
# (on by default): clean stream goodput beside cc=off at each of those
# sizes (it should cost nothing on a path with no queue).
#
#   bench/reliable_vs_raw.sh [--sizes 64,1024] [--duration 3] [--rounds 3] [--build DIR]
#                            [--loss-sizes 64,65536,1048576 | --loss-sizes none]
#
# Targets: the reliable layer adds under 0.3 us at p50 for 64 B (issue 5);
# goodput under 1 % loss at least 70 % of clean, spurious retransmissions
# at most 0.1 % on a clean path (issue 9).
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=64,1024 duration=3 rounds=3 build=build loss_sizes=64,65536,1048576
while [ $# -gt 0 ]; do
	case $1 in
	--sizes) sizes=$2; shift 2 ;;
	--duration) duration=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--loss-sizes) loss_sizes=$2; shift 2 ;;
	-h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
	*) echo "reliable_vs_raw: unknown option $1" >&2; exit 2 ;;
	esac
done
bench=$build/bench/hpnbench
[ -x "$bench" ] || { echo "reliable_vs_raw: $bench missing: build first (ninja -C $build)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || echo "reliable_vs_raw: warning: fewer than 2 cpus, client and server share one" >&2

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

run() { # name, then hpnbench options; peak RSS (KiB) into name.rss
	local name=$1
	shift
	/usr/bin/time -f %M -o "$out/$name.rss" taskset -c 0,1 "$bench" --plugin udp --cpu 0 --wait spin \
		--duration "$duration" --quiet --json "$out/$name.json" "$@" >/dev/null
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

if [ "$loss_sizes" != none ]; then
	IFS=, read -ra lsize_list <<<"$loss_sizes"
	for s in "${lsize_list[@]}"; do
		for l in 0 0.01 0.05; do
			echo "loss recovery: size $s, loss $l: stream" >&2
			run "ls_${s}_$l" --config reliable=on --mode stream --size "$s" --faults "loss=$l,seed=7"
		done
		echo "congestion control: size $s: clean stream with cc=off" >&2
		run "cc_${s}" --config reliable=on,cc=off --mode stream --size "$s"
		echo "loss recovery: size $s: ping-pong clean and at 5% loss" >&2
		run "lp_${s}_0" --config reliable=on --size "$s" --warmup 10
		run "lp_${s}_0.05" --config reliable=on --size "$s" --warmup 10 --faults loss=0.05,seed=7
	done
fi

python3 - "$out" "$sizes" "$rounds" "$loss_sizes" <<'PY'
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
if sys.argv[4] != 'none':
    print("\nloss recovery, reliable=on, one run each (stream: goodput received; packets ~ messages x fragments,\n"
          "so for small messages, which share packets, retx/packet is per message)")
    print("%8s %5s  %10s %9s %8s  %12s %9s" % ("size", "loss", "msgs/s", "Gbit/s", "of clean", "retx/packet", "peak MiB"))
    for s in [int(x) for x in sys.argv[4].split(',')]:
        clean = res('ls_%d_0' % s)
        frags = max(1, -(-s // 1440))
        for l in ('0', '0.01', '0.05'):
            x = res('ls_%d_%s' % (s, l))
            sent_pk = x['iters'] * frags
            ratio = x['gbit_per_s'] / clean['gbit_per_s'] if clean['gbit_per_s'] else 0
            rss = int(open('%s/ls_%d_%s.rss' % (out, s, l)).read().split()[-1]) / 1024
            print("%8d %4.0f%%  %10.0f %9.3f %7.0f%%  %12.4f %9.0f" % (s, float(l) * 100, x['msgs_per_s'], x['gbit_per_s'],
                  ratio * 100, x['retransmits'] / max(1, sent_pk), rss))
            if l == '0.01':
                met &= ratio >= 0.7
                print("%23s goodput at 1%% loss %.0f%% of clean: target >= 70%% %s" % ("", ratio * 100,
                      "met" if ratio >= 0.7 else "NOT met"))
            if l == '0':
                sp = x['retransmits'] / max(1, sent_pk)
                met &= sp <= 0.001
                print("%23s clean-path retransmissions %.3f%% of packets: target <= 0.1%% %s" % ("", sp * 100,
                      "met" if sp <= 0.001 else "NOT met"))
        a, b = res('lp_%d_0' % s), res('lp_%d_0.05' % s)
        print("%23s ping-pong one-way p50/p99 us: clean %.1f/%.1f, 5%% loss %.1f/%.1f (%d retransmissions)" % (
              "", a['t_typical_us'], a['p99_us'], b['t_typical_us'], b['p99_us'], b['retransmits']))
if sys.argv[4] != 'none':
    print("\ncongestion control on a clean path (stream, one run each): cc=on (the default) beside cc=off")
    print("%8s  %9s %9s %8s  %8s" % ("size", "off Gb/s", "on Gb/s", "on/off", "on retx"))
    for s in [int(x) for x in sys.argv[4].split(',')]:
        off, on = res('cc_%d' % s), res('ls_%d_0' % s)
        ratio = on['gbit_per_s'] / off['gbit_per_s'] if off['gbit_per_s'] else 0
        print("%8d  %9.3f %9.3f %7.0f%%  %8d" % (s, off['gbit_per_s'], on['gbit_per_s'], ratio * 100, on['retransmits']))
        met &= ratio >= 0.95
    print("%10s target: no throughput lost (>= 95%% of cc=off)" % "")
print("\ntargets %s" % ("met" if met else "NOT all met (see above)"))
PY
