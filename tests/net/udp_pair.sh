#!/bin/bash
# The udp backend on a wire: a veth pair between two network namespaces
# this test creates (tools/hpn-netns --pair, prefix hpnud), driven by
# hpnbench as a user would:
#   1. a path whose MTU (1280) is below hpn's mtu= (1472, the default):
#      the kernel refuses GSO segments above it (EMSGSIZE) and fragments a
#      datagram sent alone; hpn must drop GSO and say why, not lose every
#      batch and get through on resends alone (64 KiB messages took ~90
#      resends each, 10 ms a round trip instead of 0.2).
# Needs root; skipped (77) with the reason otherwise.
#   udp_pair.sh HPNBENCH HPN_NETNS
set -euo pipefail
bench=$1 netns=$2
prefix=hpnud subnet=10.79.0 port=18720 iters=100
export HPN_LOG_LEVEL=info

. "$(dirname "$0")/pair.sh"
netns_pair "$netns" "$prefix" "$subnet"
bench_setup
trap 'cleanup_servers; rm -rf "$log"; "'"$netns"'" down --prefix "'"$prefix"'" >/dev/null 2>&1 || true' EXIT

echo "1. a path MTU of 1280 under mtu=1472, 64 KiB messages (GSO on)"
in1 ip link set eth0 mtu 1280
in2 ip link set eth0 mtu 1280
start_server in1 srv --plugin udp --bind "${subnet}.1:$port"
client in2 small_mtu --plugin udp --peer "${subnet}.1:$port" --size 65536
rt=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["retransmits"])' "$log/small_mtu.json")
# Every batch lost costs ~84 resends a round trip (8450 in 100); a busy
# machine drops a fragment now and then (12 seen under load).
if [ "$rt" -gt $((iters * 2)) ]; then
	echo "FAIL: $rt retransmissions in $iters round trips of 64 KiB (GSO batches lost)"; cat "$log/small_mtu.out"; exit 1
fi
grep -q "GSO refused" "$log/small_mtu.out" || # EMSGSIZE; EINVAL on kernels before 5.x's udp_send_skb change
	{ echo "FAIL: the client did not say why it stopped GSO:"; cat "$log/small_mtu.out"; exit 1; }
stop_server
echo "PASS"
