# Sourced by the tests/net/*_kernel.sh tests: two throw-away hosts joined
# by a veth pair (tools/hpn-netns --pair), removed on exit; skips (77)
# with the reason without root or namespaces.
#   netns_pair HPN_NETNS PREFIX SUBNET   then in1 CMD / in2 CMD
netns_pair() {
	local netns=$1
	prefix=$2
	if [ "$(id -u)" -ne 0 ]; then
		echo "skip: needs root (network namespaces)"
		exit 77
	fi
	if ! "$netns" up --pair --prefix "$prefix" --subnet "$3" >/dev/null; then
		echo "skip: cannot create network namespaces here (tools/hpn-netns up failed)"
		exit 77
	fi
	trap '"'"$netns"'" down --prefix "'"$prefix"'" >/dev/null 2>&1 || true' EXIT
}
in1() { ip netns exec "${prefix}1" "$@"; }
in2() { ip netns exec "${prefix}2" "$@"; }

# hpnbench between the two hosts (af_xdp_pair.sh, dpdk_pair.sh): set
# bench=HPNBENCH and iters=N, call bench_setup, then start_server /
# client / stop_server; cleanup_servers in the EXIT trap.
bench_setup() {
	log=$(mktemp -d)
	servers=()
}
cleanup_servers() { for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
csum_errors() { in2 awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "InCsumErrors") c = i; h = 1 } else print $c }' /proc/net/snmp; }

# start_server NS-FUNC NAME ARGS...: a server in the background, ready when
# it says so. Started by ip netns exec itself, which becomes hpnbench: $!
# is then the server (a backgrounded function would be a subshell).
start_server() {
	local ns=${prefix}${1#in} name=$2
	shift 2
	ip netns exec "$ns" "$bench" --quiet --server "$@" >"$log/$name.out" 2>&1 &
	servers+=($!)
	for _ in $(seq 1 100); do
		grep -q 'listening on' "$log/$name.out" && return 0
		if ! kill -0 "${servers[-1]}" 2>/dev/null; then
			echo "FAIL: server $name exited:"; cat "$log/$name.out"; exit 1
		fi
		sleep 0.05
	done
	echo "FAIL: server $name not ready:"; cat "$log/$name.out"; exit 1
}
# capture NS-FUNC FILE [FILTER...]: tcpdump on that host's eth0 into FILE,
# in the background ($cap), returning once it captures: a fixed sleep
# before the first frame lost the ARP exchange once in CI. Started by ip
# netns exec itself, so stop_capture's SIGINT reaches timeout and tcpdump
# (through a backgrounded function it waited out the whole timeout);
# --immediate-mode, or frames in the ring's last, unfinished block (up to
# a second's) are lost when tcpdump stops.
capture() {
	local ns=${prefix}${1#in} file=$2
	shift 2
	ip netns exec "$ns" timeout 60 tcpdump --immediate-mode -U -i eth0 -nn -w "$file" "$@" >/dev/null 2>"$file.err" &
	cap=$!
	for _ in $(seq 1 200); do
		grep -q 'listening on' "$file.err" && return 0
		kill -0 $cap 2>/dev/null || break
		sleep 0.05
	done
	echo "FAIL: tcpdump did not start:"; cat "$file.err"; exit 1
}
# stop_capture: after the last frame has had time to arrive.
stop_capture() { sleep 0.3; kill -INT "$cap" 2>/dev/null || true; wait "$cap" 2>/dev/null || true; }
stop_server() { kill -INT "${servers[-1]}"; wait "${servers[-1]}" || true; unset 'servers[-1]'; }

# client NS-FUNC NAME ARGS...: a ping-pong run that must finish with every message.
client() {
	local ns=$1 name=$2
	shift 2
	if ! $ns timeout 60 "$bench" --quiet --iters "$iters" --warmup 100 --json "$log/$name.json" "$@" \
		>"$log/$name.out" 2>&1; then
		echo "FAIL: client $name:"; cat "$log/$name.out"; exit 1
	fi
	python3 - "$log/$name.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))['results'][0]
print("   %s: %d round trips, one way p50 %.2f us, p99.9 %.2f us, %d retransmissions" % (
      sys.argv[2], r['iters'], r['t_typical_us'], r['p99_9_us'], r['retransmits']))
if r['iters'] < 1 or r['drops'] or r['dups'] or r['out_of_order']:
    sys.exit("FAIL: drops %d dups %d out of order %d" % (r['drops'], r['dups'], r['out_of_order']))
PY
}
