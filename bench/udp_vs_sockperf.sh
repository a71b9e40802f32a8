#!/bin/bash
# hpn udp vs sockperf on loopback, measured back to back in one run.
#
# hpn runs raw datagrams (reliable=off): like for like with sockperf; the
# reliable layer is measured against this raw path by reliable_vs_raw.sh.
# Both spin in user space (sockperf --nonblocked, hpnbench --wait spin),
# with the client pinned to CPU0 and the server to CPU1, the same message
# sizes and the same duration. Rounds alternate hpn and sockperf so drift
# on a shared machine hits both; the median round is reported.
#
#   bench/udp_vs_sockperf.sh [--sizes 64,1024] [--duration 3] [--rounds 3] [--build DIR]
#
# Targets (issue 3): hpn p50 and p99.9 <= sockperf's (ratio <= 1.0);
# stream >= 5x sockperf's throughput mode at 64 B. Output says what was met.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=64,1024 duration=3 rounds=3 build=build port=11211
while [ $# -gt 0 ]; do
	case $1 in
	--sizes) sizes=$2; shift 2 ;;
	--duration) duration=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	-h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
	*) echo "udp_vs_sockperf: unknown option $1" >&2; exit 2 ;;
	esac
done
command -v sockperf >/dev/null || { echo "udp_vs_sockperf: sockperf missing (tools/install-deps.sh)" >&2; exit 1; }
bench=$build/bench/hpnbench
[ -x "$bench" ] || { echo "udp_vs_sockperf: $bench missing: build first (ninja -C $build)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || echo "udp_vs_sockperf: warning: fewer than 2 cpus, client and server share one" >&2

out=$(mktemp -d)
spid=""
cleanup() { [ -n "$spid" ] && kill "$spid" 2>/dev/null; rm -rf "$out"; }
trap cleanup EXIT

sockperf_server() {
	taskset -c 1 sockperf server -i 127.0.0.1 -p $port --nonblocked >"$out/server.log" 2>&1 &
	spid=$!
	sleep 0.5
}
stop_sockperf_server() { kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true; spid=""; }

IFS=, read -ra size_list <<<"$sizes"
for r in $(seq 1 "$rounds"); do
	for s in "${size_list[@]}"; do
		echo "round $r/$rounds size $s: hpn pingpong" >&2
		taskset -c 0,1 "$bench" --plugin udp --config reliable=off --cpu 0 --wait spin --size "$s" --duration "$duration" \
			--warmup 10000 --quiet --json "$out/hpn_pp_${s}_$r.json" >/dev/null
		echo "round $r/$rounds size $s: sockperf ping-pong" >&2
		sockperf_server
		taskset -c 0 sockperf ping-pong -i 127.0.0.1 -p $port -m "$s" -t "$duration" --nonblocked \
			>"$out/sp_pp_${s}_$r.txt" 2>&1
		stop_sockperf_server
	done
	echo "round $r/$rounds: hpn stream 64 B" >&2
	taskset -c 0,1 "$bench" --plugin udp --config reliable=off --cpu 0 --mode stream --size 64 --duration "$duration" \
		--quiet --json "$out/hpn_st_$r.json" >/dev/null
	echo "round $r/$rounds: sockperf throughput 64 B" >&2
	sockperf_server
	taskset -c 0 sockperf throughput -i 127.0.0.1 -p $port -m 64 -t "$duration" >"$out/sp_st_$r.txt" 2>&1
	stop_sockperf_server
done

python3 - "$out" "$sizes" "$rounds" <<'PY'
import json, re, statistics, sys
out, sizes, rounds = sys.argv[1], [int(s) for s in sys.argv[2].split(',')], int(sys.argv[3])
strip = lambda t: re.sub(r'\x1b\[[0-9;]*m', '', t)

def sockperf_pp(path):
    t = strip(open(path).read())
    p = lambda q: float(re.search(r'percentile %s = +([0-9.]+)' % q, t).group(1))
    return {'p50': p('50.000'), 'p999': p('99.900'), 'p99': p('99.000')}

def hpn_pp(path):
    r = json.load(open(path))['results'][0]
    return {'p50': r['t_typical_us'], 'p999': r['p99_9_us'], 'p99': r['p99_us'], 'drops': r['drops']}

med = lambda xs: statistics.median(xs)
met_all = True
print("\nhpn udp vs sockperf, loopback, user-space spin, client cpu0 / server cpu1, median of %d rounds" % rounds)
print("one-way latency in us (half the round trip)\n")
print("%6s  %9s %9s %7s   %9s %9s %7s" % ("size", "hpn p50", "sp p50", "ratio", "hpn p99.9", "sp p99.9", "ratio"))
for s in sizes:
    h = [hpn_pp('%s/hpn_pp_%d_%d.json' % (out, s, r)) for r in range(1, rounds + 1)]
    k = [sockperf_pp('%s/sp_pp_%d_%d.txt' % (out, s, r)) for r in range(1, rounds + 1)]
    hp50, kp50 = med([x['p50'] for x in h]), med([x['p50'] for x in k])
    hp999, kp999 = med([x['p999'] for x in h]), med([x['p999'] for x in k])
    r50, r999 = hp50 / kp50, hp999 / kp999
    met_all &= r50 <= 1.0 and r999 <= 1.0
    print("%6d  %9.2f %9.2f %7.2f   %9.2f %9.2f %7.2f" % (s, hp50, kp50, r50, hp999, kp999, r999))

hs = [json.load(open('%s/hpn_st_%d.json' % (out, r)))['results'][0] for r in range(1, rounds + 1)]
ks = []
for r in range(1, rounds + 1):
    t = strip(open('%s/sp_st_%d.txt' % (out, r)).read())
    ks.append(float(re.search(r'Message Rate is ([0-9]+)', t).group(1)))
hrate, krate = med([x['msgs_per_s'] for x in hs]), med(ks)
print("\nstream 64 B: hpn %.0f msg/s received by the server (drops %d of the median run's sends)" %
      (hrate, sorted(hs, key=lambda x: x['msgs_per_s'])[len(hs) // 2]['drops']))
print("             sockperf throughput %.0f msg/s sent (one sendto per message)" % krate)
print("             ratio %.2fx (target >= 5x)" % (hrate / krate))
met_all &= hrate / krate >= 5
print("\ntargets %s" % ("met" if met_all else "NOT all met (see ratios above)"))
PY
