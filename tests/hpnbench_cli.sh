#!/bin/bash
# hpnbench as a user drives it on this machine (udp, loopback):
#   1. counts that overflow are refused (exit 2), not run as nothing;
#   2. Ctrl-C during a loopback run of 1 MiB messages ends it with the
#      results so far and exit 130 - the client once waited out the reply
#      timeout for the server thread that had stopped, and said "server
#      went away" (exit 1, results lost);
#   3. the same in a stream.
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

# ctrl_c TRIES WANT WHAT ARGS...: hpnbench ARGS interrupted 1-2 s in must
# exit 130 with a result line matching WANT (it is a race: TRIES times).
ctrl_c() {
	local tries=$1 want=$2 what=$3 try rc pid
	shift 3
	for try in $(seq 1 "$tries"); do
		"$bench" "$@" --quiet >"$out" 2>&1 &
		pid=$!
		sleep 1.$((RANDOM % 10))
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
echo "PASS"
