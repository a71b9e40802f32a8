#!/bin/bash
# framing=none against a client and a server no one here wrote: sockperf.
#   1. sockperf ping-pong against hpnbench --server --config framing=none
#      (udp on loopback; udp, af_xdp and dpdk across a veth pair between two
#      namespaces this test creates, prefix hpnsp): every reply comes back
#      (sockperf counts no drop), and the server saw only sockperf's source;
#   2. hpnbench's plain client against sockperf sr (the same places): every
#      ping answered;
#   3. the one-way p50 of each pair, side by side (reported, not judged:
#      speed is the benchmarks' business).
# Needs sockperf (tools/install-deps.sh installs it); root for the pair.
#   plain_sockperf.sh HPNBENCH HPN_NETNS
set -euo pipefail
bench=$1 netns=$2
prefix=hpnsp subnet=10.82.0 port=18980 iters=3000
command -v sockperf >/dev/null || { echo "FAIL: sockperf missing (tools/install-deps.sh installs it)"; exit 1; }

. "$(dirname "$0")/pair.sh"
log=$(mktemp -d)
servers=()
trap 'cleanup_servers; rm -rf "$log"' EXIT
bench=$bench
results=()

# sockperf_pp NS-FUNC NAME HOST: sockperf ping-pong for 2 s; no drop, its p50.
sockperf_pp() {
	local ns=$1 name=$2 host=$3 p50
	if ! $ns timeout 30 sockperf pp -i "$host" -p $port -t 2 -m 64 >"$log/$name.sp" 2>&1; then
		echo "FAIL $name: sockperf:"; cat "$log/$name.sp"; exit 1
	fi
	grep -q "No messages were received" "$log/$name.sp" && { echo "FAIL $name: no replies"; cat "$log/$name.sp"; exit 1; }
	grep -Eq "# dropped messages = 0;" "$log/$name.sp" || { echo "FAIL $name: sockperf counted drops"; cat "$log/$name.sp"; exit 1; }
	p50=$(awk '/percentile 50.000/ {print $NF}' "$log/$name.sp")
	results+=("$name: sockperf pp -> hpnbench server: p50 ${p50} us")
	echo "   ${results[-1]}"
}

# hpn_pp NS-FUNC NAME ARGS...: hpnbench's plain client against sockperf sr.
hpn_pp() {
	local ns=$1 name=$2
	shift 2
	client "$ns" "$name" "$@"
	results+=("$name: hpnbench -> sockperf sr: p50 $(python3 -c "import json; print('%.2f' % json.load(open('$log/$name.json'))['results'][0]['t_typical_us'])") us")
}

sockperf_server() { # NS-FUNC HOST
	local ns=${prefix}${1#in}
	if [ "$1" = here ]; then
		sockperf sr -i "$2" -p $port >"$log/sr.out" 2>&1 &
	else
		ip netns exec "$ns" sockperf sr -i "$2" -p $port >"$log/sr.out" 2>&1 &
	fi
	servers+=($!)
	sleep 0.5
}
here() { "$@"; }

# The native pair for reference: sockperf pp against sockperf sr.
sockperf_native() { # SERVER-NS-FUNC CLIENT-NS-FUNC NAME HOST
	local p50
	sockperf_server "$1" "$4"
	$2 timeout 30 sockperf pp -i "$4" -p $port -t 2 -m 64 >"$log/$3.sp" 2>&1 || true
	stop_server
	p50=$(awk '/percentile 50.000/ {print $NF}' "$log/$3.sp")
	results+=("$3: sockperf pp -> sockperf sr: p50 ${p50:-?} us")
	echo "   ${results[-1]}"
}

echo "== udp on loopback"
sockperf_native here here native-lo 127.0.0.1
start_server_here() {
	"$bench" --quiet --server "$@" >"$log/here.out" 2>&1 &
	servers+=($!)
	for _ in $(seq 1 100); do grep -q 'listening on' "$log/here.out" && return 0; sleep 0.05; done
	echo "FAIL: server not ready"; cat "$log/here.out"; exit 1
}
start_server_here --plugin udp --config framing=none --bind 127.0.0.1:$port
sockperf_pp here udp-lo 127.0.0.1
stop_server
sockperf_server here 127.0.0.1
hpn_pp here udp-lo-client --plugin udp --config framing=none --peer 127.0.0.1:$port
stop_server

if [ "$(id -u)" -ne 0 ]; then
	echo "(af_xdp, dpdk and udp across namespaces need root: not run)"
	printf '%s\n' "${results[@]}"
	exit 0
fi
netns_pair "$netns" "$prefix" "$subnet"
trap 'cleanup_servers; rm -rf "$log"; "'"$netns"'" down --prefix "'"$prefix"'" >/dev/null 2>&1 || true' EXIT
sockperf_native in2 in1 native-veth "${subnet}.2"
usable() { "$bench" --list-plugins 2>/dev/null | grep -q "^$1 *yes"; }
for p in udp af_xdp dpdk; do
	if ! usable $p; then
		echo "== $p: not usable here, skipped"
		continue
	fi
	cfg=framing=none
	[ $p = dpdk ] && cfg='framing=none,vdev="net_af_packet0,iface=eth0"' # the kernel's address, borrowed
	echo "== $p server on ${subnet}.1, sockperf on ${subnet}.2"
	start_server in1 "$p-srv" --plugin $p --config "$cfg" --bind "${subnet}.1:$port"
	sockperf_pp in2 "$p-veth" "${subnet}.1"
	stop_server
	echo "== $p client on ${subnet}.1, sockperf sr on ${subnet}.2"
	sockperf_server in2 "${subnet}.2"
	hpn_pp in1 "$p-veth-client" --plugin $p --config "$cfg" --peer "${subnet}.2:$port"
	stop_server
done
echo "side by side (one-way p50, 64 B):"
printf '   %s\n' "${results[@]}"
echo PASS
