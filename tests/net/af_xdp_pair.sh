#!/bin/bash
# The af_xdp backend on a wire: a veth pair between two network namespaces
# this test creates (tools/hpn-netns --pair, prefix hpnxd), driven by
# hpnbench as a user would:
#   1. af_xdp server in hpnxd1, udp client in hpnxd2 (one end in the kernel:
#      same wire); the kernel's UDP takes every reply (InCsumErrors stays),
#      and tcpdump finds no bad checksum in a capture of the traffic;
#   2. ping and ARP still work while the program is attached;
#   3. a second af_xdp endpoint on the busy interface gets a clear error;
#   4. udp server in hpnxd2, af_xdp client in hpnxd1 (the other direction;
#      the client resolves the server's MAC through the kernel);
#   5. af_xdp on both ends, in reliable, unordered and raw (reliable=off)
#      mode - raw also against a udp client - spinning and blocking in
#      poll() on the socket;
#   6. the XDP program is gone after a clean stop, and after kill -9 the next
#      start removes the one it left (never someone else's);
#   7. frames the kernel would not take are not taken;
#   8. an endpoint made and destroyed 20 times in one process leaves no file
#      open, no XDP program loaded (libxdp's detach leaked one of each) and
#      no lock file in /run/hpn.
# Needs root and AF_XDP; skipped (77) with the reason otherwise.
#   af_xdp_pair.sh HPNBENCH HPN_NETNS EP_CYCLE
set -euo pipefail
bench=$1 netns=$2 cycle=$3
prefix=hpnxd subnet=10.77.0 port=18700 iters=2000
export HPN_LOG_LEVEL=info # the servers' logs say which mode ran and what was removed

. "$(dirname "$0")/pair.sh"
netns_pair "$netns" "$prefix" "$subnet"
if ! "$bench" --list-plugins 2>/dev/null | grep -q '^af_xdp *yes'; then
	echo "skip: the af_xdp plugin cannot run here: $("$bench" --list-plugins 2>&1 | grep -A1 '^af_xdp' | tr -s ' ' | tail -1)"
	exit 77
fi
bench_setup
trap 'cleanup_servers; rm -rf "$log"; "'"$netns"'" down --prefix "'"$prefix"'" >/dev/null 2>&1 || true' EXIT

attached() { in1 ip link show eth0 | head -1 | grep -Eq ' xdp(generic)? '; }

echo "1. af_xdp server ${subnet}.1 <- udp client ${subnet}.2"
before=$(csum_errors)
capture in2 "$log/cap.pcap" udp port $port
start_server in1 xdp_srv --plugin af_xdp --bind "${subnet}.1:$port"
attached || { echo "FAIL: no XDP program on hpnxd1's eth0 while the server runs"; exit 1; }
client in2 udp_to_xdp --plugin udp --peer "${subnet}.1:$port"
stop_capture
after=$(csum_errors)
[ "$after" = "$before" ] || { echo "FAIL: the kernel counted $((after - before)) UDP checksum errors"; exit 1; }
bad=$( (tcpdump -r "$log/cap.pcap" -nn -vv 2>/dev/null || true) | grep -ci 'bad \(udp \)\?cksum' || true)
total=$( (tcpdump -r "$log/cap.pcap" -nn 2>/dev/null || true) | wc -l)
[ "$total" -gt 0 ] || { echo "FAIL: the capture is empty"; exit 1; }
[ "$bad" = 0 ] || { echo "FAIL: tcpdump finds $bad bad checksums in $total packets"; exit 1; }
echo "   $total packets captured, all well-formed UDP with good checksums; no InCsumErrors"

echo "2. ping while the program is attached"
in2 ip neigh flush dev eth0
in2 ping -c 3 -i 0.2 -W 1 "${subnet}.1" >/dev/null || { echo "FAIL: ping ${subnet}.1 fails while af_xdp runs"; exit 1; }
echo "   ping and ARP answered by the kernel"

echo "3. a second af_xdp endpoint on the same interface"
if in1 "$bench" --plugin af_xdp --server --bind "${subnet}.1:$((port + 1))" >"$log/second.out" 2>&1; then
	echo "FAIL: a second endpoint on a busy interface started"; exit 1
fi
grep -q 'in use by another hpn endpoint' "$log/second.out" || { echo "FAIL: unclear error:"; cat "$log/second.out"; exit 1; }
echo "   refused: $(grep -o 'af_xdp: .*' "$log/second.out" | head -1)"
stop_server
attached && { echo "FAIL: the XDP program is still attached after the server stopped"; exit 1; }
echo "   program detached after a clean stop"

echo "4. udp server ${subnet}.2 <- af_xdp client ${subnet}.1"
in1 ip neigh flush dev eth0
start_server in2 udp_srv --plugin udp --bind "${subnet}.2:$port"
client in1 xdp_to_udp --plugin af_xdp --peer "${subnet}.2:$port"
stop_server

echo "5. af_xdp on both ends"
start_server in2 xdp_srv2 --plugin af_xdp --bind "${subnet}.2:$port"
client in1 xdp_to_xdp --plugin af_xdp --peer "${subnet}.2:$port"
stop_server
start_server in2 xdp_srv_unordered --plugin af_xdp --config unordered=on --bind "${subnet}.2:$port"
client in1 xdp_to_xdp_unordered --plugin af_xdp --config unordered=on --peer "${subnet}.2:$port"
stop_server
# Raw datagrams (reliable=off): the packet layer's raw mode, one wire with
# udp's raw mode.
start_server in2 xdp_srv_raw --plugin af_xdp --config reliable=off --bind "${subnet}.2:$port"
client in1 xdp_to_xdp_raw --plugin af_xdp --config reliable=off --peer "${subnet}.2:$port"
client in1 udp_to_xdp_raw --plugin udp --config reliable=off --peer "${subnet}.2:$port"
stop_server
# Sleeping instead of spinning: both ends wait in poll() on the XSK socket.
start_server in2 xdp_srv_block --plugin af_xdp --wait block --bind "${subnet}.2:$port"
client in1 xdp_to_xdp_block --plugin af_xdp --wait block --peer "${subnet}.2:$port"
stop_server

echo "6. kill -9 leaves the program; the next start removes it"
start_server in1 xdp_srv3 --plugin af_xdp --bind "${subnet}.1:$port"
kill -9 "${servers[-1]}"
wait "${servers[-1]}" 2>/dev/null || true
unset 'servers[-1]'
attached || { echo "FAIL: expected the dead server's program to stay attached"; exit 1; }
start_server in1 xdp_srv4 --plugin af_xdp --bind "${subnet}.1:$port"
grep -q 'removing the XDP program a dead hpn endpoint left' "$log/xdp_srv4.out" ||
	{ echo "FAIL: the restart did not say it removed the stale program:"; cat "$log/xdp_srv4.out"; exit 1; }
client in2 udp_to_xdp_again --plugin udp --peer "${subnet}.1:$port"
stop_server
attached && { echo "FAIL: the XDP program is still attached after the restarted server stopped"; exit 1; }
echo "   the restarted server took over the interface and left it clean"

echo "7. frames the kernel would not take are not taken: VLAN-tagged, to another host's MAC"
# A plain UDP echo (framing=none) answers every datagram it takes: three
# valid UDP datagrams go to it by a raw socket - tagged (VLAN 7), to a MAC
# that is not its, and plain - and exactly the plain one comes back.
start_server in1 xdp_srv_plain --plugin af_xdp --config framing=none --bind "${subnet}.1:$port"
in2 ping -c 1 -W 1 "${subnet}.1" >/dev/null # the kernel host learns the af_xdp host's MAC
dmac=$(in2 ip neigh show "${subnet}.1" | awk '{ for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1) }')
[ -n "$dmac" ] || { echo "FAIL: no neighbour entry for ${subnet}.1"; exit 1; }
in2 python3 - eth0 "$dmac" "${subnet}.2" "${subnet}.1" "$port" >"$log/notours.out" 2>&1 <<'PY' || { cat "$log/notours.out"; exit 1; }
import socket, struct, sys
ifname, dmac, src, dst, port = sys.argv[1], bytes.fromhex(sys.argv[2].replace(':', '')), sys.argv[3], sys.argv[4], int(sys.argv[5])
smac = bytes.fromhex(open('/sys/class/net/%s/address' % ifname).read().strip().replace(':', ''))
def csum(b):
    if len(b) % 2: b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
def ip4udp(data, sport):
    u = struct.pack('!HHHH', sport, port, 8 + len(data), 0) + data
    ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 17, len(u))
    u = u[:6] + struct.pack('!H', csum(ph + u) or 0xffff) + u[8:]
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(u), 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack('!H', csum(h)) + h[12:] + u
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind((src, 41000))
rx.settimeout(1.0)
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
raw.bind((ifname, 0))
raw.send(dmac + smac + struct.pack('!HHH', 0x8100, 7, 0x0800) + ip4udp(b'tagged', 41000))
raw.send(bytes.fromhex('020000000099') + smac + struct.pack('!H', 0x0800) + ip4udp(b'other-mac', 41000))
raw.send(dmac + smac + struct.pack('!H', 0x0800) + ip4udp(b'plain', 41000))
got = []
try:
    while True:
        got.append(rx.recv(100))
except socket.timeout:
    pass
if got != [b'plain']:
    sys.exit("FAIL: echoes %r, want only b'plain'" % got)
print("only the plain datagram was taken (tagged, other MAC dropped)")
PY
echo "   $(cat "$log/notours.out")"
stop_server
echo "8. 20 endpoints made and destroyed in one process"
command -v bpftool >/dev/null || { echo "FAIL: bpftool is needed to count loaded programs (tools/install-deps.sh)"; exit 1; }
progs() { bpftool prog show | grep -c 'name hpn_xdp' || true; }
before=$(progs)
in1 env -u HPN_LOG_LEVEL "$cycle" "plugin=af_xdp,hugepages=off" "${subnet}.1:$port" 20 >"$log/cycle.out" 2>&1 ||
	{ echo "FAIL: files left open:"; cat "$log/cycle.out"; exit 1; }
[ "$(progs)" = "$before" ] || { echo "FAIL: $(($(progs) - before)) XDP programs left loaded"; exit 1; }
attached && { echo "FAIL: the XDP program is still attached after the last destroy"; exit 1; }
lock=/run/hpn/af_xdp-$(in1 stat -L -c %i /proc/self/ns/net)-eth0.lock
[ ! -e "$lock" ] || { echo "FAIL: $lock left behind"; exit 1; }
echo "   $(cat "$log/cycle.out"); no program left loaded, no lock file left"

echo "9. the interface's MTU lowered under a running endpoint, then restored"
start_server in1 xdp_srv_mtu --plugin af_xdp --bind "${subnet}.1:$port"
in1 ip link set eth0 mtu 1200
for _ in $(seq 1 60); do grep -q "MTU fell to 1200" "$log/xdp_srv_mtu.out" && break; sleep 0.05; done
in1 ip link set eth0 mtu 1500
grep -q "eth0's MTU fell to 1200: datagrams of up to 1500 bytes (mtu=1472) no longer leave it" "$log/xdp_srv_mtu.out" ||
	{ echo "FAIL: a lowered MTU was not reported:"; cat "$log/xdp_srv_mtu.out"; exit 1; }
for _ in $(seq 1 60); do grep -q "MTU is 1500 again" "$log/xdp_srv_mtu.out" && break; sleep 0.05; done
grep -q "MTU is 1500 again" "$log/xdp_srv_mtu.out" || { echo "FAIL: the restored MTU was not reported"; exit 1; }
client in2 udp_to_xdp_after_mtu --plugin udp --peer "${subnet}.1:$port" --size 1400
stop_server
echo "   reported when lowered and when restored; served after"

echo "PASS"
