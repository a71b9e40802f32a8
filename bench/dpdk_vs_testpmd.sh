#!/bin/bash
# hpn dpdk against the native tool and hpn's other paths, measured in one run.
#
#   memif (two processes, server/receiver on cpu1, client/sender on cpu0):
#     testpmd txonly -> rxonly at 64 B: the anchor (packets/s the PMD moves);
#     hpnbench dpdk stream at 64 B: reliable with mbufs lent from the pool
#     (the default), reliable with mbufs=copy, and raw (reliable=off);
#     hpnbench dpdk ping-pong at 64 B (the same three) against hpnbench udp
#     ping-pong over loopback;
#   veth pair between two namespaces (tools/hpn-netns --pair, prefix hpnbd):
#     ping-pong at 64 B for sockperf, hpn af_xdp, hpn dpdk on net_af_packet
#     and on net_af_xdp (dpdk runs with the kernel's addresses removed: the
#     kernel would answer dpdk's peers with port unreachable).
# Rounds alternate the tools so drift hits all; medians are reported.
#
#   bench/dpdk_vs_testpmd.sh [--duration 3] [--rounds 3] [--build DIR]
#
# Targets (issue 11): dpdk stream >= 60 % of testpmd's memif rate at 64 B;
# dpdk memif ping-pong p50 <= 0.5x hpn udp loopback's; reliable overhead over
# raw <= 0.3 us at p50. Needs root (namespaces, AF_XDP, af_packet).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=3 rounds=3 build=build
while [ $# -gt 0 ]; do
	case $1 in
	--duration) duration=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	-h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
	*) echo "dpdk_vs_testpmd: unknown option $1" >&2; exit 2 ;;
	esac
done
bench=$PWD/$build/bench/hpnbench
[ -x "$bench" ] || { echo "dpdk_vs_testpmd: $bench missing: build first (ninja -C $build)" >&2; exit 1; }
for t in dpdk-testpmd sockperf; do
	command -v $t >/dev/null || { echo "dpdk_vs_testpmd: $t missing (tools/install-deps.sh)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "dpdk_vs_testpmd: needs root (namespaces, AF_XDP, af_packet)" >&2; exit 1; }
"$bench" --list-plugins 2>/dev/null | grep -q '^dpdk *yes' ||
	{ echo "dpdk_vs_testpmd: the dpdk plugin is not built or cannot run here (hpnbench --list-plugins)" >&2; exit 1; }

prefix=hpnbd subnet=10.73.0 port=18950
out=$(mktemp -d)
spid=""
cleanup() {
	[ -n "$spid" ] && kill "$spid" 2>/dev/null
	wait 2>/dev/null || true
	tools/hpn-netns down --prefix $prefix >/dev/null 2>&1 || true
	rm -rf "$out"
}
trap cleanup EXIT
tools/hpn-netns up --pair --prefix $prefix --subnet $subnet >/dev/null

# srv NS CMD...: a server on cpu1 in namespace NS ("" for this one); cli
# the same on cpu0 in the foreground. (testpmd pins itself: -l.)
pin=yes
srv() {
	local ns=$1 in=() cpu=()
	shift
	[ -n "$ns" ] && in=(ip netns exec "$ns")
	[ $pin = yes ] && cpu=(taskset -c 1)
	"${in[@]}" "${cpu[@]}" "$@" >"$out/server.log" 2>&1 &
	spid=$!
	sleep 1
}
stop() { kill -INT "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; spid=""; }
cli() {
	local ns=$1 in=() cpu=()
	shift
	[ -n "$ns" ] && in=(ip netns exec "$ns")
	[ $pin = yes ] && cpu=(taskset -c 0)
	"${in[@]}" "${cpu[@]}" "$@"
}

# hpn NAME NS_SRV NS_CLI PLUGIN SRV_CFG CLI_CFG MODE ADDR
hpn() {
	local name=$1 nss=$2 nsc=$3 plugin=$4 scfg=$5 ccfg=$6 mode=$7 addr=$8
	srv "$nss" "$bench" --quiet --server --plugin "$plugin" --config "$scfg" --mode "$mode" --bind "$addr"
	cli "$nsc" "$bench" --quiet --plugin "$plugin" --config "$ccfg" --mode "$mode" --size 64 --duration "$duration" \
		--warmup 10000 --wait spin --peer "$addr" --json "$out/$name.json" >/dev/null 2>"$out/$name.err" ||
		{ echo "dpdk_vs_testpmd: $name failed:" >&2; tail -3 "$out/$name.err" >&2; }
	stop
}

memif() { # role socket ip
	echo "vdev=\"net_memif0,role=$1,socket=$2\",ip=$3/24"
}
tp_eal="--no-pci --no-huge -m 512 --no-shconf"

# Variants on memif: name, extra config.
memif_variants="lent: copy:mbufs=copy raw:reliable=off"
addrs_on() { ip netns exec ${prefix}1 ip addr add ${subnet}.1/24 dev eth0 2>/dev/null || true
	ip netns exec ${prefix}2 ip addr add ${subnet}.2/24 dev eth0 2>/dev/null || true; }
addrs_off() { ip netns exec ${prefix}1 ip addr flush dev eth0; ip netns exec ${prefix}2 ip addr flush dev eth0; }

for r in $(seq 1 "$rounds"); do
	sock=/tmp/hpn-bench-memif-$$-$r
	echo "round $r/$rounds: testpmd txonly -> rxonly over memif" >&2
	pin=no
	srv "" timeout $((duration + 8)) dpdk-testpmd -l 1,0 --main-lcore 1 $tp_eal --file-prefix hpnbrx$$ \
		--vdev="net_memif0,role=server,socket=$sock.tp" -- --forward-mode=rxonly --stats-period 1 \
		--nb-cores=1 --total-num-mbufs=16384
	cli "" timeout $((duration + 3)) dpdk-testpmd -l 0,1 $tp_eal --file-prefix hpnbtx$$ \
		--vdev="net_memif0,role=client,socket=$sock.tp" -- --forward-mode=txonly --stats-period 1 \
		--nb-cores=1 --txpkts=64 --total-num-mbufs=16384 >"$out/tptx_$r.txt" 2>&1 || true
	stop
	pin=yes
	cp "$out/server.log" "$out/tprx_$r.txt"
	for v in $memif_variants; do
		IFS=: read -r name extra <<<"$v"
		for mode in stream pingpong; do
			echo "round $r/$rounds: hpn dpdk $name $mode over memif" >&2
			s=$(memif server "$sock.$name.$mode" 10.72.0.2) c=$(memif client "$sock.$name.$mode" 10.72.0.1)
			hpn "dpdk_${name}_${mode}_$r" "" "" dpdk "$s${extra:+,$extra}" "$c${extra:+,$extra}" $mode 10.72.0.2:$port
		done
	done
	echo "round $r/$rounds: hpn udp ping-pong over loopback" >&2
	hpn "udp_lo_$r" "" "" udp "" "" pingpong 127.0.0.1:$port

	echo "round $r/$rounds: veth: sockperf, af_xdp" >&2
	addrs_on
	srv ${prefix}1 sockperf server -i ${subnet}.1 -p $port --nonblocked
	cli ${prefix}2 sockperf ping-pong -i ${subnet}.1 -p $port -m 64 -t "$duration" --nonblocked >"$out/sp_$r.txt" 2>&1
	stop
	hpn "xdp_veth_$r" ${prefix}1 ${prefix}2 af_xdp "" "" pingpong ${subnet}.1:$port
	addrs_off
	for pmd in af_packet af_xdp; do
		echo "round $r/$rounds: veth: hpn dpdk on net_$pmd" >&2
		hpn "dpdk_${pmd}_veth_$r" ${prefix}1 ${prefix}2 dpdk "vdev=\"net_${pmd}0,iface=eth0\",ip=${subnet}.1/24" \
			"vdev=\"net_${pmd}0,iface=eth0\",ip=${subnet}.2/24" pingpong ${subnet}.1:$port
	done
done

python3 - "$out" "$rounds" "$memif_variants" <<'PY'
import json, os, re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
names = [v.split(':')[0] for v in sys.argv[3].split()]
R = range(1, rounds + 1)
med = lambda xs: statistics.median(xs) if xs else float('nan')

def hpn(name):
    p = '%s/%s.json' % (out, name)
    if not os.path.exists(p):
        return None
    r = json.load(open(p))['results'][0]
    return {'p50': r['t_typical_us'], 'p999': r['p99_9_us'], 'rate': r['msgs_per_s'], 'retx': r['retransmits'],
            'copies': r.get('copies', 0)}

def series(fmt, key):
    return med([x[key] for x in (hpn(fmt % r) for r in R) if x])

def testpmd(r):
    t = open('%s/tprx_%d.txt' % (out, r), errors='replace').read()
    v = [int(x) for x in re.findall(r'Rx-pps:\s+(\d+)', t)]
    top = max(v) if v else 0
    busy = [x for x in v if x > top * 0.5] # seconds the sender was running
    return med(busy) if busy else float('nan')

def sockperf(r):
    t = re.sub(r'\x1b\[[0-9;]*m', '', open('%s/sp_%d.txt' % (out, r)).read())
    m = re.search(r'percentile 50.000 = +([0-9.]+)', t)
    return float(m.group(1)) if m else float('nan')

met = True
tp = med([testpmd(r) for r in R])
print("\nmemif, two processes (receiver cpu1, sender cpu0), user-space spin, 64 B; median of %d rounds\n" % rounds)
print("stream, messages/s received         rate      x testpmd")
print("  %-32s %12.0f" % ("testpmd txonly -> rxonly", tp))
for n in names:
    rate = series('dpdk_%s_stream_%%d' % n, 'rate')
    print("  %-32s %12.0f %8.2f" % ("hpn dpdk " + n, rate, rate / tp))
    if n == 'lent':
        ok = rate >= 0.6 * tp
        print("  target: >= 0.60x testpmd (reliable, lent) %s" % ("met" if ok else "NOT met"))
        met &= ok
udp = series('udp_lo_%d', 'p50')
print("\nping-pong, one-way us            p50     p99.9   x udp loopback p50")
print("  %-28s %7.2f %9.2f" % ("hpn udp, loopback", udp, series('udp_lo_%d', 'p999')))
for n in names:
    p50 = series('dpdk_%s_pingpong_%%d' % n, 'p50')
    print("  %-28s %7.2f %9.2f %8.2f" % ("hpn dpdk memif " + n, p50, series('dpdk_%s_pingpong_%%d' % n, 'p999'),
                                           p50 / udp))
rel, raw = series('dpdk_lent_pingpong_%d', 'p50'), series('dpdk_raw_pingpong_%d', 'p50')
ok = rel <= 0.5 * udp
print("  target: memif p50 <= 0.5x udp loopback's: %.2fx %s" % (rel / udp, "met" if ok else "NOT met"))
met &= ok
ok = rel - raw <= 0.3
print("  target: reliable overhead over raw <= 0.3 us: %+.2f us %s" % (rel - raw, "met" if ok else "NOT met"))
met &= ok
sp = med([sockperf(r) for r in R])
print("\nveth pair between two namespaces, ping-pong 64 B, one-way us   p50   x sockperf")
print("  %-34s %7.2f" % ("sockperf", sp))
for n, label in (('xdp_veth', 'hpn af_xdp'), ('dpdk_af_packet_veth', 'hpn dpdk net_af_packet'),
                 ('dpdk_af_xdp_veth', 'hpn dpdk net_af_xdp (copied)')):
    p50 = series(n + '_%d', 'p50')
    print("  %-34s %7.2f %8.2f" % (label, p50, p50 / sp))
print("\ntargets %s" % ("met" if met else "NOT all met (see above)"))
PY
