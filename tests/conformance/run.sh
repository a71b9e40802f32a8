#!/bin/bash
# Run the conformance cases (conformance.c) for one backend: the echo
# server in the background, the client cases in the foreground.
#   udp         both on loopback
#   af_xdp      server and client in two namespaces joined by a veth pair
#               (tools/hpn-netns --pair, prefix hpncf; root)
#   af_xdp_udp  an af_xdp server, udp client: the same wire
#   run.sh CONFORMANCE NAME CONFIG HPN_NETNS
set -euo pipefail
bin=$1 name=$2 cfg=$3 netns=$4
base="hugepages=off,mlock=off,bufs=1024"
plugin=${cfg#plugin=}
plugin=${plugin%%,*}

"$bin" probe "$plugin" || exit $? # 77: skipped, with the reason
export CONF_PACKET=1 # every backend here runs the packet layer (injected loss applies)
srv_in=() cli_in=()
cli_cfg="$cfg,$base"
case $name in
udp)
	addr=127.0.0.1:$((18750 + RANDOM % 1000))
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
*)
	echo "run.sh: unknown backend $name" >&2
	exit 2
	;;
esac
log=$(mktemp)
"${srv_in[@]}" "$bin" serve "$cfg,$base" "$addr" >"$log" 2>&1 &
srv=$!
trap 'set +e; kill $srv 2>/dev/null; wait $srv 2>/dev/null; rm -f "$log"; [ -n "${prefix:-}" ] && "$netns" down --prefix "$prefix" >/dev/null 2>&1; true' EXIT
for _ in $(seq 1 100); do
	grep -q listening "$log" && break
	kill -0 $srv 2>/dev/null || { echo "server failed:"; cat "$log"; exit 1; }
	sleep 0.05
done
grep -q listening "$log" || { echo "server not ready:"; cat "$log"; exit 1; }
echo "# $name: server ($cfg) at $addr; client $cli_cfg"
"${cli_in[@]}" "$bin" client "$cli_cfg" "$addr"
