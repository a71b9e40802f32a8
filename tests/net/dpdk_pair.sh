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
#   5. net_af_xdp (mbufs copied) and net_tap (a kernel peer on the tap)
#      as the dpdk port.
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
in2 timeout 60 tcpdump -U -i eth0 -nn -w "$log/cap.pcap" >/dev/null 2>&1 &
cap=$!
sleep 0.5
start_server in1 dpdk_srv --plugin dpdk --config "$dpdk" --bind "${subnet}.1:$port"
in2 ping -c 3 -i 0.2 -W 1 "${subnet}.1" >"$log/ping.out" || { echo "FAIL: ping ${subnet}.1:"; cat "$log/ping.out"; exit 1; }
echo "   ping: $(grep -o '[0-9]* received' "$log/ping.out"), answered by the dpdk host"
client in2 udp_to_dpdk --plugin udp --peer "${subnet}.1:$port" --size 64
client in2 udp_to_dpdk_8k --plugin udp --peer "${subnet}.1:$port" --size 8000
[ $xdp_ok = 1 ] && client in2 xdp_to_dpdk --plugin af_xdp --peer "${subnet}.1:$port"
stop_server
sleep 0.3
kill -INT "$cap" 2>/dev/null || true
wait "$cap" 2>/dev/null || true
after=$(csum_errors)
[ "$after" = "$before" ] || { echo "FAIL: the kernel counted $((after - before)) UDP checksum errors"; exit 1; }
if command -v tshark >/dev/null; then
	total=$(tshark -r "$log/cap.pcap" 2>/dev/null | wc -l)
	bad=$(tshark -r "$log/cap.pcap" -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE \
		-Y 'ip.checksum.status == "Bad" || udp.checksum.status == "Bad" || _ws.malformed || _ws.expert.severity >= "Error"' \
		2>/dev/null | wc -l)
	arp=$(tshark -r "$log/cap.pcap" -Y "arp.opcode == 2 && arp.src.proto_ipv4 == ${subnet}.1" 2>/dev/null | wc -l)
	[ "$total" -gt 0 ] || { echo "FAIL: the capture is empty"; exit 1; }
	[ "$bad" = 0 ] || { echo "FAIL: tshark finds $bad bad frames in $total:"; tshark -r "$log/cap.pcap" -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE -Y 'ip.checksum.status == "Bad" || udp.checksum.status == "Bad" || _ws.malformed' | head; exit 1; }
	[ "$arp" -gt 0 ] || { echo "FAIL: no ARP reply from the dpdk host in the capture"; exit 1; }
	echo "   tshark: $total frames, IPv4 and UDP checksums good, none malformed; $arp ARP replies from dpdk"
else
	echo "   (tshark not installed: capture not decoded)"
fi
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
sleep 0.3
# Nobody answers the handshake: the connect times out, its HELLOs arrive.
in1 timeout 20 "$bench" --quiet --plugin dpdk --config "$dpdk,connect_retry_ms=50" --peer "${subnet}.2:$((port + 1))" \
	--iters 1 >"$log/hello.out" 2>&1 || true
wait $sock || true
grep -q "received [1-9].* from ('${subnet}.1'" "$log/sock.out" || { echo "FAIL: kernel socket:"; cat "$log/sock.out" "$log/hello.out"; exit 1; }
echo "   $(cat "$log/sock.out") (the handshake's datagrams: valid UDP, else the kernel drops them)"

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
echo "PASS"
