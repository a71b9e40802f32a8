#!/bin/bash
# hpnbench as a user drives it on this machine (udp, loopback):
#   1. counts that overflow are refused (exit 2), not run as nothing;
#   2. Ctrl-C during a loopback run of 1 MiB messages ends it with the
#      results so far and exit 130 - the client once waited out the reply
#      timeout for the server thread that had stopped, and said "server
#      went away" (exit 1, results lost);
#   3. the same in a stream;
#   4. --verify checks every payload byte: an echo that spoils one byte of
#      every tenth datagram is caught exactly that often (exit 1), a true
#      one and hpnbench's own server in both modes pass with 0, and so does
#      an unordered stream under reordering (it once spliced messages).
#   hpnbench_cli.sh HPNBENCH
set -uo pipefail
bench=$1
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "1. counts too large"
for arg in "--iters 99999999999999999999999" "--iters 18446744073709551615" "--warmup 18446744073709551615"; do
	# shellcheck disable=SC2086 # the option and its value, split
	"$bench" $arg --quiet >"$out" 2>&1
	rc=$?
	if [ $rc -ne 2 ] || ! grep -q "too large" "$out"; then
		echo "FAIL: hpnbench $arg: exit $rc (want 2, 'too large'):"; cat "$out"; exit 1
	fi
done

# ctrl_c TRIES WANT WHAT ARGS...: hpnbench ARGS interrupted once its
# progress line counts messages (from 2 s on, a line a second), a moment
# later, must exit 130 with a result line matching WANT (it is a race:
# TRIES times). (A fixed 1-3 s was too soon under ThreadSanitizer on a
# loaded host: no 1 MiB round trip done yet.)
ctrl_c() {
	local tries=$1 want=$2 what=$3 try rc pid i
	shift 3
	for try in $(seq 1 "$tries"); do
		"$bench" "$@" >"$out" 2>&1 &
		pid=$!
		for i in $(seq 1 600); do
			grep -Eq '^hpnbench: size [0-9]+: (.*[(])?[1-9][0-9]* messages' "$out" && break
			sleep 0.1
		done
		sleep 0.$((RANDOM % 10))
		kill -INT $pid
		wait $pid
		rc=$?
		if [ $rc -ne 130 ] || ! grep -Eq "$want" "$out"; then
			echo "FAIL (try $try): exit $rc (want 130 and the $what so far):"; cat "$out"; exit 1
		fi
	done
}

echo "2. Ctrl-C in a loopback run of 1 MiB messages (5 times: a race)"
ctrl_c 5 '^pingpong +1048576 +[1-9]' "round trips measured" --plugin udp --size 1048576 --iters 1000000 --warmup 0

# 3. The same in a stream: what the server counted, exit 130 (it once said
#    "server does not answer (stream report lost 20 times)", exit 1).
echo "3. Ctrl-C in a loopback stream"
ctrl_c 3 '^stream +64 +[1-9]' "messages received" --plugin udp --mode stream --size 64 --duration 30
# 4. --verify against a UDP echo of our own: true, then spoiling the last
#    byte of every tenth datagram (framing=none: hpnbench pings any echo).
echo "4. --verify"
echo_py='
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
n = 0
while True:
    d, a = s.recvfrom(65536)
    n += 1
    if sys.argv[1] == "spoil" and n % 10 == 0:
        d = d[:-1] + bytes([d[-1] ^ 0x20])
    s.sendto(d, a)
'
for how in true spoil; do
	coproc ECHO { exec python3 -c "$echo_py" "$how"; }
	read -r port <&"${ECHO[0]}"
	"$bench" --config framing=none --peer "127.0.0.1:$port" --verify --size 200 --iters 300 --warmup 0 --quiet >"$out" 2>&1
	rc=$?
	kill "$ECHO_PID" 2>/dev/null; wait "$ECHO_PID" 2>/dev/null
	if [ $how = true ] && { [ $rc -ne 0 ] || ! grep -Eq '^pingpong +200 +300 .* 0$' "$out"; }; then
		echo "FAIL: --verify against a true echo: exit $rc (want 0, corrupt 0):"; cat "$out"; exit 1
	fi
	if [ $how = spoil ] && { [ $rc -ne 1 ] || ! grep -Eq '^pingpong +200 +300 .* 30$' "$out" ||
		! grep -q "30 messages arrived with payload bytes that differ from what was sent, in 1 of 1 sizes" "$out" ||
		! grep -q "ping 9 (200 bytes) differs from what was sent from byte 199 on" "$out"; }; then
		echo "FAIL: --verify against an echo spoiling every tenth: exit $rc (want 1, corrupt 30):"; cat "$out"; exit 1
	fi
done
# (Other tests run beside this one on two CPUs: the ends wait adaptively,
# and a scheduler's stall of a second is not the peer gone.)
for mode in pingpong stream; do
	"$bench" --verify --mode $mode --size 16,1000,70000 --iters 200 --quiet --wait adaptive \
		--config peer_timeout_ms=10000 >"$out" 2>&1
	rc=$?
	if [ $rc -ne 0 ] || [ "$(grep -Ec "^$mode .* 0$" "$out")" != 3 ]; then
		echo "FAIL: --verify $mode on loopback: exit $rc (want 0, corrupt 0 for each size):"; cat "$out"; exit 1
	fi
done
# Unordered mode under reordering loses whole messages (late packets are
# dropped), never splices one: a message's fragments once went on with the
# next message's of the same size (corrupt 28 of 2400 here).
"$bench" --verify --mode stream --config unordered=on,peer_timeout_ms=10000 --faults reorder=0.1,seed=3 \
	--size 1456,4096 --iters 3000 --quiet --wait adaptive >"$out" 2>&1
rc=$?
if [ $rc -ne 0 ] || [ "$(grep -Ec '^stream .* 0$' "$out")" != 2 ]; then
	echo "FAIL: --verify unordered stream under reordering: exit $rc (want 0, corrupt 0 for each size):"
	cat "$out"; exit 1
fi
echo "PASS"
