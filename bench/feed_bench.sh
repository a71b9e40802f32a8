#!/bin/bash
# Feed throughput and latency with A/B arbitration on, per packet backend.
#
# One MoldUDP64 session on two lines (groups 239.77.2.1 and .2, line B one
# packet behind A), 64-byte messages, several per packet, played by
# bench/hpnfeedgen in one namespace (cpu0) to hpnbench --mode feed in the
# other (cpu1) across a veth pair (tools/hpn-netns --pair, prefix hpnfb):
#   - flat out (--rate 0): messages/s the receiver delivered (first to
#     last message) next to the rate the generator sent at - when they are
#     equal and nothing was lost, the generator was the limit, not hpn;
#   - paced (50k packets/s a line): receive timestamp to application p50
#     and p99.9 (udp: the kernel's stamp; af_xdp, dpdk: the burst's), and
#     the gaps seen there (a hole waits gap_timeout_us = 1 ms).
# udp, af_xdp (on eth0) and dpdk (net_af_packet on eth0, the kernel's
# address borrowed); rounds alternate the backends, medians are reported.
#
#   bench/feed_bench.sh [--rounds 3] [--packets 300000] [--msgs 8] [--build DIR]
# Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 packets=300000 msgs=8 build=build
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--packets) packets=$2; shift 2 ;;
	--msgs) msgs=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	-h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
	*) echo "feed_bench: unknown option $1" >&2; exit 2 ;;
	esac
done
bench=$PWD/$build/bench/hpnbench gen=$PWD/$build/bench/hpnfeedgen
[ -x "$bench" ] && [ -x "$gen" ] || { echo "feed_bench: build first (ninja -C $build)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "feed_bench: needs root (namespaces, AF_XDP, af_packet)" >&2; exit 1; }
prefix=hpnfb subnet=10.74.0
out=$(mktemp -d)
trap 'tools/hpn-netns down --prefix $prefix >/dev/null 2>&1 || true; rm -rf "$out"' EXIT
tools/hpn-netns up --pair --prefix $prefix --subnet $subnet >/dev/null
ip netns exec ${prefix}1 ip route add 224.0.0.0/4 dev eth0 2>/dev/null || true
ip netns exec ${prefix}2 ip route add 224.0.0.0/4 dev eth0 2>/dev/null || true

plugins=()
for p in udp af_xdp dpdk; do
	"$bench" --list-plugins 2>/dev/null | grep -q "^$p *yes" && plugins+=("$p") || echo "(no $p here: skipped)"
done
cfg="framing=none,seq=moldudp64,mcast_if=eth0,gap_timeout_us=1000,bufs=16384,buf_size=2048"
extra() { [ "$1" = dpdk ] && echo ',vdev="net_af_packet0,iface=eth0"' || true; }

# one PLUGIN RATE ROUND
one() {
	local p=$1 rate=$2 r=$3 name="$1-$2-$3" pid
	ip netns exec ${prefix}1 taskset -c 1 "$bench" --quiet --plugin "$p" --mode feed --cpu 1 \
		--listen 239.77.2.1:19100 --listen 239.77.2.2:19101 --config "$cfg$(extra "$p")" \
		--json "$out/$name.json" >"$out/$name.out" 2>&1 &
	pid=$!
	sleep 1.5
	ip netns exec ${prefix}2 taskset -c 0 "$gen" --line 239.77.2.1:19100 --line 239.77.2.2:19101 \
		--packets "$packets" --msgs "$msgs" --size 64 --rate "$rate" --lag 0,1 --mcast-if ${subnet}.2 \
		--expect "$out/$name.expect" >/dev/null
	# The receiver stops at the end of session, once it heard it twice;
	# flat out, both copies can be lost with the rest: then it is stopped
	# (SIGINT: it reports what it got) rather than waited for for ever.
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		echo "feed_bench: $name: no end of session 10 s after the last packet (lost on both lines?): stopped"
		kill -INT "$pid"
	fi
	local rc=0
	wait "$pid" || rc=$?
	[ "$rc" = 0 ] || [ "$rc" = 130 ] || { echo "feed_bench: $name failed (exit $rc):"; cat "$out/$name.out"; exit 1; }
}

for r in $(seq 1 "$rounds"); do
	for p in "${plugins[@]}"; do
		one "$p" 0 "$r"
		one "$p" 50000 "$r"
	done
done

python3 - "$out" "$rounds" "${plugins[@]}" <<'PY'
import json, statistics, sys
out, rounds, plugins = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def load(p, rate, r):
    res = json.load(open("%s/%s-%s-%d.json" % (out, p, rate, r)))['results'][0]
    exp = json.load(open("%s/%s-%s-%d.expect" % (out, p, rate, r)))
    return res, exp
med = statistics.median
print("feed: MoldUDP64 on two lines (B 1 packet behind), 64 B messages; medians of %d rounds" % rounds)
print("%-7s %14s %14s %7s %9s | %12s %12s %6s" % ("plugin", "msgs/s (rx)", "sent msgs/s", "gaps", "lost msgs",
      "ts->app p50", "p99.9 (us)", "gaps"))
for p in plugins:
    flat = [load(p, 0, r) for r in range(1, rounds + 1)]
    paced = [load(p, 50000, r) for r in range(1, rounds + 1)]
    rx = med(res['msgs_per_s'] for res, _ in flat)
    sent = med(exp['msgs'] / exp['send_s'] for _, exp in flat)
    gaps = med(res['gaps'] for res, _ in flat)
    lost = med(res['gap_msgs'] for res, _ in flat)
    p50 = med(res['ts_to_app_p50_us'] for res, _ in paced)
    p999 = med(res['ts_to_app_p99_9_us'] for res, _ in paced)
    pgaps = med(res['gaps'] for res, _ in paced)
    bad = sum(res['out_of_order'] + res['dup_delivered'] for res, _ in flat + paced)
    print("%-7s %14.0f %14.0f %7d %9d | %12.2f %12.2f %6d%s" % (p, rx, sent, gaps, lost, p50, p999, pgaps,
          "  OUT OF ORDER: %d" % bad if bad else ""))
PY
