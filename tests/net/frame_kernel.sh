#!/bin/bash
# src/net/frame.c against the kernel's own UDP, across a veth pair between
# two network namespaces this test creates (tools/hpn-netns, prefix hpnfr):
#   1. frames built by hpn_frame_udp4 leave hpnfr1 through an AF_PACKET
#      socket - no kernel help with headers or checksums - and a plain UDP
#      socket in hpnfr2 must receive every one intact (the kernel drops a
#      bad IPv4 or UDP checksum: Udp InCsumErrors must not grow);
#   2. the kernel in hpnfr2 sends UDP to hpnfr1, and hpn_frame_parse_udp4
#      must accept every frame it puts on the wire.
# Needs root (namespaces, AF_PACKET); skipped (77) without, with the reason.
#   frame_kernel.sh FRAME_PEER HPN_NETNS
set -euo pipefail
peer=$1 netns=$2
prefix=hpnfr subnet=10.78.0 n=200

. "$(dirname "$0")/pair.sh"
netns_pair "$netns" "$prefix" "$subnet"
mac2=$(in2 cat /sys/class/net/eth0/address)
csum_errors() { in2 awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "InCsumErrors") c = i; h = 1 } else print $c }' /proc/net/snmp; }

echo "1. $n framed datagrams ${subnet}.1 -> kernel UDP socket at ${subnet}.2:18600"
before=$(csum_errors)
fifo=$(mktemp -u)
mkfifo "$fifo"
in2 "$peer" udprecv 18600 "$n" 5000 >"$fifo" &
rpid=$!
read -r ready <"$fifo" # the socket is bound
in1 "$peer" send eth0 "$mac2" "${subnet}.1" "${subnet}.2" 18600 "$n"
wait "$rpid"
rm -f "$fifo"
after=$(csum_errors)
if [ "$after" != "$before" ]; then
	echo "FAIL: the kernel counted $((after - before)) UDP checksum errors"
	exit 1
fi
echo "   all $n delivered, no checksum errors"

echo "2. $n kernel datagrams ${subnet}.2 -> ${subnet}.1:18601, parsed off the wire"
in1 "$peer" recv eth0 18601 "$n" 5000 &
rpid=$!
sleep 0.3 # the AF_PACKET socket is open
in2 "$peer" udpsend "${subnet}.1" 18601 "$n"
wait "$rpid"
echo "   all $n parsed and intact"
