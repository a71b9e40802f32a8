#!/bin/bash
# Run the conformance cases (conformance.c) for one backend: the echo
# server in the background, the client cases in the foreground.
#   udp         both on loopback
#   af_xdp      server and client in two namespaces joined by a veth pair
#               (tools/hpn-netns --pair, prefix hpncf; root)
#   af_xdp_udp  an af_xdp server, udp client: the same wire
#   rdma        both on soft-RoCE's rxe0 (run inside tools/hpn-rxe), or
#               across its --pair wire (HPN_TEST_RDMA_ADDR=10.11.0.2)
#   dpdk_memif  two processes joined by a memif pair (server/client roles)
#   dpdk_afpacket  dpdk on both ends of a veth pair between two namespaces
#               (net_af_packet; the kernel has no address there: dpdk
#               answers ARP itself)
#   run.sh CONFORMANCE NAME CONFIG HPN_NETNS
set -euo pipefail
bin=$1 name=$2 cfg=$3 netns=$4
base="hugepages=off,mlock=off,bufs=1024"
plugin=${cfg#plugin=}
plugin=${plugin%%,*}

"$bin" probe "$plugin" || exit $? # 77: skipped, with the reason
export CONF_PACKET=1 # every backend here runs the packet layer (injected loss applies)
srv_in=() cli_in=()
srv_cfg="$cfg,$base"
cli_cfg="$cfg,$base"
case $name in
udp)
	addr=127.0.0.1:$((18750 + RANDOM % 1000))
	;;
rdma)
	# Inside tools/hpn-rxe (meson wraps this script in it): rxe0 at 10.9.0.1,
	# or with --pair the server on rxeD (10.11.0.2): the client's route
	# leaves through rxeC, across the wire.
	addr=${HPN_TEST_RDMA_ADDR:-10.9.0.1}:$((18750 + RANDOM % 1000))
	unset CONF_PACKET # no packet layer: no injected loss
	# A case that stalls shows soft-RoCE's queue pairs (state, send and
	# receive PSNs) and each device's counters while the server still runs.
	export CONF_ON_STALL=${CONF_ON_STALL:-'rdma res show qp >&2; for c in /sys/class/infiniband/*/ports/1/hw_counters; do echo "${c#/sys/class/infiniband/}: $(cd $c && grep -H . * | tr "\n" " ")" >&2; done'}
	;;
af_xdp | af_xdp_udp)
	prefix=hpncf
	. "$(dirname "$0")/../net/pair.sh"
	netns_pair "$netns" "$prefix" 10.74.0
	addr=10.74.0.1:18760
	srv_in=(ip netns exec ${prefix}1)
	cli_in=(ip netns exec ${prefix}2)
	[ "$name" = af_xdp_udp ] && cli_cfg="plugin=udp,$base"
	;;
dpdk_memif)
	sock=$(mktemp -u /tmp/hpn-conf-memif.XXXXXX)
	addr=10.75.0.2:18760
	# Server on cpu1, client on cpu0: hpn then moves each EAL's interrupt
	# thread to the other CPU, where it cannot preempt its own process's
	# poller mid-burst - DPDK 22.11's memif unmaps its rings from that
	# thread when the peer leaves, unsynchronised (docs/CONFIG.md).
	if [ "$(nproc)" -ge 2 ]; then
		srv_in=(taskset -c 1)
		cli_in=(taskset -c 0)
	fi
	srv_cfg="$cfg,vdev=\"net_memif0,role=server,socket=$sock\",ip=10.75.0.2/24,$base"
	cli_cfg="$cfg,vdev=\"net_memif0,role=client,socket=$sock\",ip=10.75.0.1/24,$base"
	;;
dpdk_afpacket)
	prefix=hpncf
	. "$(dirname "$0")/../net/pair.sh"
	netns_pair "$netns" "$prefix" 10.74.0
	in1 ip addr flush dev eth0 # dpdk owns the addresses: the kernel must not answer
	in2 ip addr flush dev eth0
	addr=10.74.0.1:18760
	srv_in=(ip netns exec ${prefix}1)
	cli_in=(ip netns exec ${prefix}2)
	srv_cfg="$cfg,vdev=\"net_af_packet0,iface=eth0\",ip=10.74.0.1/24,$base"
	cli_cfg="$cfg,vdev=\"net_af_packet0,iface=eth0\",ip=10.74.0.2/24,$base"
	;;
*)
	echo "run.sh: unknown backend $name" >&2
	exit 2
	;;
esac
log=$(mktemp)
"${srv_in[@]}" "$bin" serve "$srv_cfg" "$addr" >"$log" 2>&1 &
srv=$!
trap 'set +e; kill $srv 2>/dev/null; wait $srv 2>/dev/null; [ -n "${CONF_SERVER_LOG:-}" ] && cp "$log" "$CONF_SERVER_LOG"; rm -f "$log" ${sock:-}; [ -n "${prefix:-}" ] && "$netns" down --prefix "$prefix" >/dev/null 2>&1; true' EXIT
for _ in $(seq 1 100); do
	grep -q listening "$log" && break
	kill -0 $srv 2>/dev/null || { echo "server failed:"; cat "$log"; exit 1; }
	sleep 0.05
done
grep -q listening "$log" || { echo "server not ready:"; cat "$log"; exit 1; }
echo "# $name: server ($srv_cfg) at $addr; client $cli_cfg"
"${cli_in[@]}" "$bin" client "$cli_cfg" "$addr" || {
	rc=$?
	echo "# the server's last words:"
	tail -n 20 "$log"
	exit $rc
}
# The server ends with the last case (CMD:die); make sure before reusing its host.
for _ in $(seq 1 40); do kill -0 $srv 2>/dev/null || break; sleep 0.05; done
kill $srv 2>/dev/null || true
wait $srv 2>/dev/null || true

# Multicast (unordered mode) across the pair: a subscriber in one host, a
# publisher in the other, joined through the kernel on eth0.
# msub_pub SUB_NS SUB_CFG PUB_NS PUB_CFG (a namespace "": this one)
inns() { local ns=$1; shift; if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "${pin[@]}" "$@"; fi; }
msub_pub() {
	local group=239.7.7.7:18770 n=2000 slog pin=("${srv_in[@]}") # no namespace: pinned as server and client
	slog=$(mktemp)
	inns "$1" "$bin" msub "$2,$base" $group $n >"$slog" 2>&1 &
	local sub=$!
	for _ in $(seq 1 100); do grep -q listening "$slog" && break; sleep 0.05; done
	pin=("${cli_in[@]}")
	if ! inns "$3" "$bin" mpub "$4,$base" $group $n; then
		echo "FAIL: publisher ($4)"; cat "$slog"; exit 1
	fi
	if ! wait $sub; then echo "FAIL: subscriber ($2)"; cat "$slog"; exit 1; fi
	echo "# multicast $4 -> $2: $(grep received "$slog")"
	rm -f "$slog"
}
case $name in
dpdk_memif)
	msub_pub "" "plugin=dpdk,vdev=\"net_memif0,role=server,socket=$sock.m\",ip=10.75.0.2/24" \
		"" "plugin=dpdk,vdev=\"net_memif0,role=client,socket=$sock.m\",ip=10.75.0.1/24"
	;;
dpdk_afpacket)
	msub_pub ${prefix}1 "plugin=dpdk,vdev=\"net_af_packet0,iface=eth0\",ip=10.74.0.1/24" \
		${prefix}2 "plugin=dpdk,vdev=\"net_af_packet0,iface=eth0\",ip=10.74.0.2/24"
	;;
af_xdp)
	msub_pub ${prefix}1 "plugin=af_xdp,mcast_if=10.74.0.1" ${prefix}2 "plugin=af_xdp,mcast_if=10.74.0.2"
	;;
af_xdp_udp)
	msub_pub ${prefix}1 "plugin=af_xdp,mcast_if=10.74.0.1" ${prefix}2 "plugin=udp,mcast_if=10.74.0.2"
	msub_pub ${prefix}2 "plugin=udp,mcast_if=10.74.0.2" ${prefix}1 "plugin=af_xdp,mcast_if=10.74.0.1"
	;;
esac
