#!/bin/bash
# The dpdk backend on a wire, against peers it did not write: a veth pair
# between two network namespaces this test creates (tools/hpn-netns
# --pair, prefix hpndk). hpndk1's eth0 has no kernel address: the dpdk
# host (net_af_packet on it) owns 10.79.0.1 and answers ARP and ping
# itself; hpndk2 is a kernel host at 10.79.0.2. Driven by hpnbench:
#   1. dpdk server <- udp and af_xdp clients, reliable and unordered; ping
#      answered by the dpdk host; the kernel counts no checksum error and
#      tshark decodes every captured frame with good IPv4 and UDP checksums;
#   2. udp and af_xdp servers <- dpdk client, reliable and unordered;
#   3. raw datagrams (reliable=off) between dpdk and udp;
#   4. a plain kernel UDP socket receives dpdk's datagrams as valid UDP;
#   5. net_af_xdp (mbufs copied) and net_tap (a kernel peer on the tap;
#      checksums by the port's offload) as the dpdk port;
#   6. hostile frames at the dpdk host (truncated, bad checksums, lying
#      lengths, fragments, VLAN-tagged, forged ICMP errors, garbage from
#      forged sources): all turned away and counted, nothing else changes
#      - the same client still gets every message; a datagram to a closed
#      port is answered with port unreachable (a udp connect fails at once);
#   7. a dpdk subscriber speaks IGMPv3 for itself (join, an answer to a
#      querier, leave), as tshark decodes it;
#   8. so does a framing=none feed on two lines, one any-source and one
#      source-specific: one record per group in each report, the second
#      with its source (ALLOW, IS_INCLUDE, BLOCK).
# Needs root; skipped (77) with the reason otherwise.
#   dpdk_pair.sh HPNBENCH HPN_NETNS
set -euo pipefail
bench=$1 netns=$2
prefix=hpndk subnet=10.79.0 port=18710 iters=2000
export HPN_LOG_LEVEL=info

. "$(dirname "$0")/pair.sh"
if ! "$bench" --list-plugins 2>/dev/null | grep -q '^dpdk *yes'; then
	echo "skip: the dpdk plugin is not built or cannot run here"
	exit 77
fi
netns_pair "$netns" "$prefix" "$subnet"
bench_setup
trap 'cleanup_servers; rm -rf "$log"; "'"$netns"'" down --prefix "'"$prefix"'" >/dev/null 2>&1 || true' EXIT
in1 ip addr flush dev eth0 # the dpdk host's address is dpdk's alone
dpdk="vdev=\"net_af_packet0,iface=eth0\",ip=${subnet}.1/24"
xdp_ok=0
"$bench" --list-plugins 2>/dev/null | grep -q '^af_xdp *yes' && xdp_ok=1

echo "1. dpdk server ${subnet}.1 <- kernel host ${subnet}.2"
before=$(csum_errors)
capture in2 "$log/cap.pcap"
start_server in1 dpdk_srv --plugin dpdk --config "$dpdk" --bind "${subnet}.1:$port"
in2 ping -c 3 -i 0.2 -W 1 "${subnet}.1" >"$log/ping.out" || { echo "FAIL: ping ${subnet}.1:"; cat "$log/ping.out"; exit 1; }
echo "   ping: $(grep -o '[0-9]* received' "$log/ping.out"), answered by the dpdk host"
client in2 udp_to_dpdk --plugin udp --peer "${subnet}.1:$port" --size 64
client in2 udp_to_dpdk_8k --plugin udp --peer "${subnet}.1:$port" --size 8000
[ $xdp_ok = 1 ] && client in2 xdp_to_dpdk --plugin af_xdp --peer "${subnet}.1:$port"
stop_server
stop_capture
after=$(csum_errors)
[ "$after" = "$before" ] || { echo "FAIL: the kernel counted $((after - before)) UDP checksum errors"; exit 1; }
command -v tshark >/dev/null || { echo "FAIL: tshark missing (tools/install-deps.sh installs it)"; exit 1; }
# Payloads as data: hpn's packets are no other protocol's, and an
# ephemeral port that is one's registered port (HCrt's 47000) made tshark
# call them malformed.
asdata=(-d 'udp.port==1-65535,data')
total=$(tshark -r "$log/cap.pcap" "${asdata[@]}" 2>/dev/null | wc -l)
bad=$(tshark -r "$log/cap.pcap" "${asdata[@]}" -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE \
	-Y 'ip.checksum.status == "Bad" || udp.checksum.status == "Bad" || _ws.malformed || _ws.expert.severity >= "Error"' \
	2>/dev/null | wc -l)
arp=$(tshark -r "$log/cap.pcap" -Y "arp.opcode == 2 && arp.src.proto_ipv4 == ${subnet}.1" 2>/dev/null | wc -l)
[ "$total" -gt 0 ] || { echo "FAIL: the capture is empty"; exit 1; }
[ "$bad" = 0 ] || { echo "FAIL: tshark finds $bad bad frames in $total:"; tshark -r "$log/cap.pcap" "${asdata[@]}" -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE -Y 'ip.checksum.status == "Bad" || udp.checksum.status == "Bad" || _ws.malformed' | head; exit 1; }
[ "$arp" -gt 0 ] || {
	echo "FAIL: no ARP reply from the dpdk host in the capture; its ARP frames and first frames:"
	tshark -r "$log/cap.pcap" -Y arp 2>/dev/null | head; tshark -r "$log/cap.pcap" -c 5 2>/dev/null
	exit 1
}
echo "   tshark: $total frames, IPv4 and UDP checksums good, none malformed; $arp ARP replies from dpdk"
start_server in1 dpdk_srv_unordered --plugin dpdk --config "$dpdk,unordered=on" --bind "${subnet}.1:$port"
client in2 udp_to_dpdk_unordered --plugin udp --config unordered=on --peer "${subnet}.1:$port"
[ $xdp_ok = 1 ] && client in2 xdp_to_dpdk_unordered --plugin af_xdp --config unordered=on --peer "${subnet}.1:$port"
stop_server

echo "2. kernel host's servers ${subnet}.2 <- dpdk client ${subnet}.1"
start_server in2 udp_srv --plugin udp --bind "${subnet}.2:$port"
client in1 dpdk_to_udp --plugin dpdk --config "$dpdk" --peer "${subnet}.2:$port"
stop_server
start_server in2 udp_srv_unordered --plugin udp --config unordered=on --bind "${subnet}.2:$port"
client in1 dpdk_to_udp_unordered --plugin dpdk --config "$dpdk,unordered=on" --peer "${subnet}.2:$port"
stop_server
if [ $xdp_ok = 1 ]; then
	start_server in2 xdp_srv --plugin af_xdp --bind "${subnet}.2:$port"
	client in1 dpdk_to_xdp --plugin dpdk --config "$dpdk" --peer "${subnet}.2:$port"
	stop_server
	start_server in2 xdp_srv_unordered --plugin af_xdp --config unordered=on --bind "${subnet}.2:$port"
	client in1 dpdk_to_xdp_unordered --plugin dpdk --config "$dpdk,unordered=on" --peer "${subnet}.2:$port"
	stop_server
fi

echo "3. raw datagrams (reliable=off)"
start_server in2 udp_srv_raw --plugin udp --config reliable=off --bind "${subnet}.2:$port"
client in1 dpdk_to_udp_raw --plugin dpdk --config "$dpdk,reliable=off" --peer "${subnet}.2:$port"
stop_server
start_server in1 dpdk_srv_raw --plugin dpdk --config "$dpdk,reliable=off" --bind "${subnet}.1:$port"
client in2 udp_to_dpdk_raw --plugin udp --config reliable=off --peer "${subnet}.1:$port"
stop_server

echo "4. a plain kernel UDP socket hears the dpdk host"
in2 python3 - "${subnet}.2" $((port + 1)) >"$log/sock.out" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("bound", flush=True)
s.settimeout(10)
n, src = 0, None
try:
    while n < 3:
        data, src = s.recvfrom(65535)
        n += 1
except socket.timeout:
    pass
print("received %d datagrams from %s" % (n, src))
PY
sock=$!
for _ in $(seq 1 200); do grep -q bound "$log/sock.out" && break; sleep 0.05; done # a fixed 0.3 s: too short under load
# Nobody answers the handshake: the connect times out, its HELLOs arrive.
in1 timeout 20 "$bench" --quiet --plugin dpdk --config "$dpdk,connect_retry_ms=50" --peer "${subnet}.2:$((port + 1))" \
	--iters 1 >"$log/hello.out" 2>&1 || true
wait $sock || true
grep -q "received [1-9].* from ('${subnet}.1'" "$log/sock.out" || { echo "FAIL: kernel socket:"; cat "$log/sock.out" "$log/hello.out"; exit 1; }
echo "   $(grep received "$log/sock.out") (the handshake's datagrams: valid UDP, else the kernel drops them)"

echo "5. other ports: net_af_xdp (mbufs copied), net_tap"
if [ $xdp_ok = 1 ]; then
	start_server in1 dpdk_afxdp_srv --plugin dpdk --config "vdev=\"net_af_xdp0,iface=eth0\",ip=${subnet}.1/24" \
		--bind "${subnet}.1:$port"
	grep -q 'mbufs copied\|(copied)' "$log/dpdk_afxdp_srv.out" || { echo "FAIL: net_af_xdp without copies?"; cat "$log/dpdk_afxdp_srv.out"; exit 1; }
	client in2 udp_to_dpdk_afxdp --plugin udp --peer "${subnet}.1:$port"
	stop_server
fi
# net_tap makes a kernel interface (dtap_hpn) in hpndk1: the kernel there is
# the peer, at 10.80.0.2; dpdk is 10.80.0.1 on the other side of the tap.
start_server in1 dpdk_tap_srv --plugin dpdk --config 'vdev="net_tap0,iface=dtap_hpn",ip=10.80.0.1/24' \
	--bind 10.80.0.1:$port
in1 ip addr add 10.80.0.2/24 dev dtap_hpn
in1 ip link set dtap_hpn up
in1 ethtool -K dtap_hpn tx off >/dev/null 2>&1 || true
in1 ping -c 2 -i 0.2 -W 1 10.80.0.1 >/dev/null || { echo "FAIL: ping across the tap"; exit 1; }
client in1 udp_to_dpdk_tap --plugin udp --peer 10.80.0.1:$port
stop_server
# net_tap offers checksum offload: dpdk's headers leave the sums to it, and
# the kernel on the other side (which drops a bad UDP checksum) took them.
grep -q 'checksums by the port' "$log/dpdk_tap_srv.out" ||
	{ echo "FAIL: net_tap's checksum offload unused:"; grep 'dpdk: net_tap' "$log/dpdk_tap_srv.out"; exit 1; }
echo "   net_tap: IPv4/UDP checksums by the port (offload), the kernel peer took every one"
echo "6. hostile frames at the dpdk host"
start_server in1 dpdk_srv_hostile --plugin dpdk --config "$dpdk" --bind "${subnet}.1:$port"
in2 ping -c 1 -W 1 "${subnet}.1" >/dev/null # the kernel host learns dpdk's MAC
dmac=$(in2 ip neigh show "${subnet}.1" | awk '{ for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1) }')
[ -n "$dmac" ] || { echo "FAIL: no neighbour entry for ${subnet}.1"; exit 1; }
t0=$(date +%s%N)
if in2 timeout 10 "$bench" --quiet --plugin udp --peer "${subnet}.1:$((port + 5))" --iters 1 >"$log/closed.out" 2>&1; then
	echo "FAIL: a connect to a closed port of the dpdk host succeeded"; exit 1
fi
ms=$((($(date +%s%N) - t0) / 1000000))
grep -qi 'refused' "$log/closed.out" || { echo "FAIL: a closed port was not refused:"; cat "$log/closed.out"; exit 1; }
echo "   a closed port: connection refused after ${ms} ms (ICMP port unreachable from dpdk)"
in2 python3 - eth0 "$dmac" "${subnet}.2" "${subnet}.1" "$port" >"$log/hostile.out" 2>&1 <<'PY' || { cat "$log/hostile.out"; exit 1; }
import os, random, socket, struct, sys
ifname, dmac, src, dst, port = sys.argv[1], bytes.fromhex(sys.argv[2].replace(':', '')), sys.argv[3], sys.argv[4], int(sys.argv[5])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
smac = open('/sys/class/net/%s/address' % ifname).read().strip()
smac = bytes.fromhex(smac.replace(':', ''))
def csum(b):
    if len(b) % 2: b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
def ip4(proto, payload, src=src, frag=0, bad_csum=False, tot=None):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, tot or 20 + len(payload), random.getrandbits(16), frag, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    c = csum(h) ^ (0x5555 if bad_csum else 0)
    return h[:10] + struct.pack('!H', c) + h[12:] + payload
def udp(data, sport=40000, dport=port, src=src, bad_csum=False, ulen=None):
    u = struct.pack('!HHHH', sport, dport, ulen or 8 + len(data), 0) + data
    ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 17, len(u))
    c = csum(ph + u) or 0xffff
    if bad_csum: c ^= 0x1234
    return u[:6] + struct.pack('!H', c) + u[8:]
eth = lambda t, p: dmac + smac + struct.pack('!H', t) + p
frames = []
for i in range(200):
    body = os.urandom(random.randint(0, 200))
    frames += [
        eth(0x0800, ip4(17, udp(body))[:random.randint(0, 27)]),                 # truncated
        eth(0x0800, ip4(17, udp(body), bad_csum=True)),                          # IPv4 checksum
        eth(0x0800, ip4(17, udp(body, bad_csum=True))),                          # UDP checksum
        eth(0x0800, ip4(17, udp(body, ulen=len(body) + 500))),                   # UDP length lies
        eth(0x0800, ip4(17, udp(body), tot=2000)),                               # IPv4 length lies
        eth(0x0800, ip4(17, udp(body), frag=0x2000)),                            # a fragment
        eth(0x8100, struct.pack('!HH', 7, 0x0800) + ip4(17, udp(body))),         # VLAN 7
        eth(0x0800, ip4(17, udp(body, src='10.79.0.%d' % random.randint(3, 250)), src='10.79.0.%d' % random.randint(3, 250))),  # garbage, forged source
        eth(0x0800, ip4(1, bytes([3, 3, 0, 0, 0, 0, 0, 0]) + ip4(17, udp(body))[:48])),   # forged ICMP error (bad csum)
        eth(0x0800, ip4(1, os.urandom(random.randint(0, 64)))),                  # ICMP garbage
        eth(0x0806, os.urandom(random.randint(0, 60))),                          # ARP garbage
        eth(0x86dd, os.urandom(60)),                                             # IPv6: not ours
    ]
import time
for i, f in enumerate(frames):
    s.send(f)
    if i % 20 == 19:
        time.sleep(0.002) # paced: the af_packet ring under dpdk holds 512, a burst would overflow it unseen
print("sent %d hostile frames" % len(frames))
PY
echo "   $(cat "$log/hostile.out")"
in2 ping -c 2 -i 0.2 -W 1 "${subnet}.1" >/dev/null || { echo "FAIL: ping after the hostile frames"; exit 1; }
client in2 udp_to_dpdk_after_hostile --plugin udp --peer "${subnet}.1:$port"
stop_server
tail -1 "$log/dpdk_srv_hostile.out"
python3 - "$log/dpdk_srv_hostile.out" <<'PY'
import re, sys
m = re.search(r'dropped (\d+) datagrams, (\d+) of them malformed', open(sys.argv[1]).read())
if not m or int(m.group(2)) < 1000:
    sys.exit("FAIL: the server did not count the malformed frames: %s" % (m.group(0) if m else "no stats line"))
PY

# A forged source first: a fresh server (an empty neighbour cache) hears
# one UDP frame with the kernel host's address from a MAC that is not its;
# the kernel host never asks for the server's MAC (a permanent entry), so
# the server knows it only from frames. It must ask by ARP and answer the
# real host (it once sent everything to the forger's MAC, for good).
echo "   a forged source first: one UDP frame from ${subnet}.2 with another MAC, then the real ${subnet}.2"
in2 ip neigh replace "${subnet}.1" lladdr "$dmac" nud permanent dev eth0
start_server in1 dpdk_srv_forged --plugin dpdk --config "$dpdk" --bind "${subnet}.1:$port"
in2 python3 - eth0 "$dmac" "${subnet}.2" "${subnet}.1" "$port" <<'PY'
import socket, struct, sys
ifname, dmac, src, dst, port = sys.argv[1], bytes.fromhex(sys.argv[2].replace(':', '')), sys.argv[3], sys.argv[4], int(sys.argv[5])
u = struct.pack('!HHHH', 40000, port, 8 + 30, 0) + bytes(30) # no UDP checksum (0: none)
h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(u), 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
t = sum(struct.unpack('!10H', h))
while t >> 16: t = (t & 0xffff) + (t >> 16)
h = h[:10] + struct.pack('!H', ~t & 0xffff) + h[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
s.send(dmac + bytes.fromhex('020000000099') + struct.pack('!H', 0x0800) + h + u)
PY
client in2 udp_to_dpdk_after_forged --plugin udp --peer "${subnet}.1:$port"
stop_server
in2 ip neigh del "${subnet}.1" dev eth0
echo "   served: the forged MAC was asked after and replaced"

# A general query, as a router would send it (IGMPv3, to all hosts, TTL 1).
query() {
in2 python3 - eth0 "${subnet}.2" <<'PY'
import socket, struct, sys
def csum(b):
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
q = struct.pack('!BBH4sBBH', 0x11, 100, 0, b'\0\0\0\0', 2, 125, 0)
q = q[:2] + struct.pack('!H', csum(q)) + q[4:]
ip = struct.pack('!BBHHHBBH4s4s', 0x46, 0xc0, 24 + len(q), 1, 0, 1, 2, 0, socket.inet_aton(sys.argv[2]),
                 socket.inet_aton('224.0.0.1')) + b'\x94\x04\0\0'
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
smac = bytes.fromhex(open('/sys/class/net/%s/address' % sys.argv[1]).read().strip().replace(':', ''))
s.send(bytes.fromhex('01005e000001') + smac + b'\x08\x00' + ip + q)
PY
}

echo "7. IGMPv3 from a dpdk subscriber"
capture in2 "$log/igmp.pcap" igmp
start_server in1 dpdk_sub --plugin dpdk --config "$dpdk,unordered=on" --bind 239.9.9.9:$port
query
sleep 1.5 # the join's second report
stop_server
stop_capture
types=$(tshark -r "$log/igmp.pcap" -Y "igmp.type == 0x22 && ip.src == ${subnet}.1 && igmp.maddr == 239.9.9.9" \
	-T fields -e igmp.record_type 2>/dev/null | tr '\n' ' ')
bad=$(tshark -r "$log/igmp.pcap" -o ip.check_checksum:TRUE -Y 'ip.checksum.status == "Bad" || igmp.checksum.status == "Bad" || _ws.malformed' 2>/dev/null | wc -l)
echo "   reports from dpdk for 239.9.9.9, record types in order: $types(4 join, 2 current state, 3 leave)"
[ "$bad" = 0 ] || { echo "FAIL: $bad bad IGMP frames"; exit 1; }
for want in 4 2 3; do
	grep -qw "$want" <<<"$types" || { echo "FAIL: no IGMPv3 record of type $want"; exit 1; }
done

echo "8. IGMPv3 from a framing=none feed: 239.9.9.10 any source, 239.9.9.11 from ${subnet}.2 only"
capture in2 "$log/igmp2.pcap" igmp
in1 timeout 20 "$bench" --quiet --plugin dpdk --mode feed --duration 3 --listen 239.9.9.10:$port \
	--listen "239.9.9.11@${subnet}.2:$((port + 1))" --config "$dpdk,framing=none,seq=mdp3" \
	>"$log/feed_sub.out" 2>&1 &
sub=$!
sleep 1.2
query
# Nothing is published here: the subscriber ends with "delivered nothing"
# (exit 1); any other failure is one.
rc=0
wait "$sub" || rc=$?
if [ "$rc" != 0 ] && ! { [ "$rc" = 1 ] && grep -q "the feed delivered nothing" "$log/feed_sub.out"; }; then
	echo "FAIL: the feed subscriber (exit $rc):"; cat "$log/feed_sub.out"; exit 1
fi
stop_capture
tshark -r "$log/igmp2.pcap" -Y "igmp.type == 0x22 && ip.src == ${subnet}.1" -T fields -e igmp.maddr \
	-e igmp.record_type -e igmp.saddr 2>/dev/null >"$log/igmp2.txt" || true
bad=$(tshark -r "$log/igmp2.pcap" -o ip.check_checksum:TRUE -Y 'ip.checksum.status == "Bad" || igmp.checksum.status == "Bad" || _ws.malformed' 2>/dev/null | wc -l)
[ "$bad" = 0 ] || { echo "FAIL: $bad bad IGMP frames"; exit 1; }
python3 - "$log/igmp2.txt" "${subnet}.2" <<'PY'
import sys
src = sys.argv[2]
seen = {"239.9.9.10": [], "239.9.9.11": []}
both = 0
for line in open(sys.argv[1]):
    f = (line.rstrip("\n").split("\t") + ["", "", ""])[:3]
    groups, types = f[0].split(","), f[1].split(",")
    for g, t in zip(groups, types):
        seen.setdefault(g, []).append(int(t))
    # Each join reports the lines joined so far; the answer to the query
    # and the leave carry both, the source-specific one with its source.
    both += sorted(groups) == ["239.9.9.10", "239.9.9.11"]
    if "239.9.9.11" in groups and src not in f[2].split(","):
        sys.exit("FAIL: a record for 239.9.9.11 without its source: %s" % line.strip())
if both < 2:
    sys.exit("FAIL: %d reports carry both groups (the query's answer and the leave should)" % both)
print("   239.9.9.10 records %s (4 join, 2 current, 3 leave); 239.9.9.11 records %s (5 allow, 1 current, 6 block), source %s" % (
      seen["239.9.9.10"], seen["239.9.9.11"], src))
for g, want in (("239.9.9.10", (4, 2, 3)), ("239.9.9.11", (5, 1, 6))):
    for t in want:
        if t not in seen.get(g, []):
            sys.exit("FAIL: no record of type %d for %s" % (t, g))
PY

# One address, two holders (RFC 5227): a second process with the same ip=
# on the interface is refused (the two saw each other's frames, never
# each other's sends, and both answered for the address); another host is
# found by the probe at start; one claiming the address later is logged
# and answered with our announcement. The kernel's own address given as
# ip= is borrowed (the kernel answered ARP too, and refused our port).
echo "9. one address, two holders"
start_server in1 dpdk_srv_owner --plugin dpdk --config "$dpdk" --bind "${subnet}.1:$port"
expect_refused() { # NS-FUNC NAME WANTED CONFIG
	if $1 timeout 20 "$bench" --quiet --server --plugin dpdk --config "$4" --bind "${subnet}.1:$((port + 1))" \
		>"$log/$2.out" 2>&1; then
		echo "FAIL: $2: a second holder of ${subnet}.1 ran"; cat "$log/$2.out"; exit 1
	fi
	grep -q "$3" "$log/$2.out" || { echo "FAIL: $2: not refused for the address:"; cat "$log/$2.out"; exit 1; }
	echo "   $2: $(grep -o "dpdk: .*$3.*" "$log/$2.out" | head -1)"
}
expect_refused in1 same_interface "another hpn process's" "$dpdk"
expect_refused in2 other_host "in use on the link: the host at" "vdev=\"net_af_packet0,iface=eth0\",ip=${subnet}.1/24"
in2 python3 - eth0 "${subnet}.1" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
mac = bytes.fromhex('020000000077')
ip = socket.inet_aton(sys.argv[2])
arp = struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + mac + ip + b'\0' * 6 + ip # a gratuitous request
s.send(b'\xff' * 6 + mac + b'\x08\x06' + arp + b'\0' * 18)
PY
for _ in $(seq 1 40); do grep -q 'address conflict' "$log/dpdk_srv_owner.out" && break; sleep 0.05; done
grep -q 'also used by the host at 02:00:00:00:00:77: an address conflict' "$log/dpdk_srv_owner.out" ||
	{ echo "FAIL: a host claiming the server's address was not reported:"; cat "$log/dpdk_srv_owner.out"; exit 1; }
echo "   a claim while it runs: $(grep -o 'dpdk: .*address conflict' "$log/dpdk_srv_owner.out" | head -1)"
client in2 udp_to_dpdk_owner --plugin udp --peer "${subnet}.1:$port"
stop_server
in1 ip addr add "${subnet}.1/24" dev eth0
start_server in1 dpdk_srv_kernel_ip --plugin dpdk --config "$dpdk" --bind "${subnet}.1:$port"
client in2 udp_to_dpdk_kernel_ip --plugin udp --peer "${subnet}.1:$port"
stop_server
in1 ip addr flush dev eth0
grep -q "borrowed from the kernel" "$log/dpdk_srv_kernel_ip.out" ||
	{ echo "FAIL: the kernel's own address as ip= was not borrowed:"; cat "$log/dpdk_srv_kernel_ip.out"; exit 1; }
echo "   the kernel's own address as ip=: borrowed, served"
echo "PASS"
