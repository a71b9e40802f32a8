#!/bin/bash
# src/net/route.c against the kernel's own tables, in two namespaces this
# test creates (tools/hpn-netns --pair, prefix hpnrt): the route to the
# other host names eth0, our address and the device's MAC and MTU; the
# neighbour is unknown until the kernel resolved it, then it is the other
# eth0's MAC; a gateway route gives the gateway as next hop; no route and
# an unreachable route are errors that say so.
# Needs root; skipped (77) without, with the reason.
#   route_kernel.sh FRAME_PEER HPN_NETNS
set -euo pipefail
peer=$1 netns=$2
prefix=hpnrt subnet=10.79.0

. "$(dirname "$0")/pair.sh"
netns_pair "$netns" "$prefix" "$subnet"
fail() { echo "FAIL: $*"; exit 1; }
mac1=$(in1 cat /sys/class/net/eth0/address)
mac2=$(in2 cat /sys/class/net/eth0/address)
mtu1=$(in1 cat /sys/class/net/eth0/mtu)

out=$(in1 "$peer" route "${subnet}.2")
echo "route to ${subnet}.2, neighbour unknown: $out"
[ "$out" = "eth0 ${subnet}.1 ${subnet}.2 $mtu1 $mac1 -" ] || fail "expected 'eth0 ${subnet}.1 ${subnet}.2 $mtu1 $mac1 -'"

in1 ping -c 1 -W 2 "${subnet}.2" >/dev/null || fail "ping ${subnet}.2"
out=$(in1 "$peer" route "${subnet}.2")
echo "after the kernel resolved it:        $out"
[ "$out" = "eth0 ${subnet}.1 ${subnet}.2 $mtu1 $mac1 $mac2" ] || fail "expected the neighbour $mac2"

in1 ip route add 192.0.2.0/24 via "${subnet}.2" mtu 1400
out=$(in1 "$peer" route 192.0.2.7)
echo "through a gateway (route mtu 1400):  $out"
[ "$out" = "eth0 ${subnet}.1 ${subnet}.2 1400 $mac1 $mac2" ] || fail "expected next hop ${subnet}.2, mtu 1400"

in1 ip route add unreachable 198.51.100.0/24
out=$(in1 "$peer" route 198.51.100.1 || true)
echo "an unreachable route:                $out"
case $out in error*) ;; *) fail "expected an error" ;; esac
out=$(in1 "$peer" route 203.0.113.1 || true)
echo "no route at all:                     $out"
case $out in error*) ;; *) fail "expected an error" ;; esac
