#!/bin/bash
# bench/rdma_floor (raw verbs, what rdma_vs_perftest --floor splits hpn's
# figures against): each mode runs and reports a sane line; a wrong
# option, a missing server and a dead server end it with an error, not a
# hang. Usage: floor_check.sh RDMA_FLOOR
set -euo pipefail
floor=$1
addr=${HPN_TEST_RDMA_ADDR:-10.9.0.1}
port=19400
out=$(mktemp)
trap 'rm -f "$out"; kill $(jobs -p) 2>/dev/null || true' EXIT

# A server, and the client against it once it listens (a refused connect
# is retried with a fresh server); the server must end well too.
run() { # mode size
	local try spid
	for try in 1 2 3 4 5; do
		port=$((port + 1))
		"$floor" --server --bind "$addr:$port" &
		spid=$!
		sleep 0.3
		if timeout 60 "$floor" --peer "$addr:$port" --mode "$1" --size "$2" --iters 300 --warmup 30 >"$out"; then
			wait "$spid" # the server ends with the client's run, successfully
			return
		fi
		kill "$spid" 2>/dev/null || true
		wait "$spid" 2>/dev/null || true
	done
	echo "rdma_floor --mode $1 --size $2 failed 5 times" >&2
	exit 1
}

for mode in write wimm send; do
	for size in 64 4096; do
		run "$mode" "$size"
		# MODE SIZE ITERS min X typ Y p90 Z us [(not inline)]
		read -r m z n w1 lo w2 typ w3 p90 us rest <"$out"
		[ "$m $z $n $w1 $w2 $w3 $us" = "$mode $size 300 min typ p90 us" ] || { echo "bad line: $(cat "$out")" >&2; exit 1; }
		python3 -c "import sys; lo, t, p = map(float, sys.argv[1:]); assert 0 < lo <= t <= p < 1e6, (lo, t, p)" "$lo" "$typ" "$p90"
		cat "$out"
	done
done

expect_fail() { # what, want-exit-code, want-message, command...
	local what=$1 want=$2 msg=$3 rc=0
	shift 3
	timeout 60 "$@" >"$out" 2>&1 || rc=$?
	[ "$rc" = "$want" ] && grep -q "^rdma_floor: .*$msg" "$out" || { echo "$what: exit $rc (want $want, '$msg'): $(cat "$out")" >&2; exit 1; }
	echo "$what: exit $rc, $(head -n 1 "$out")"
}
expect_fail "bad size" 2 "bad value" "$floor" --peer "$addr:1" --size 0
expect_fail "bad address" 2 "want ADDR:PORT" "$floor" --peer "$addr"
expect_fail "no server" 1 "no rdma_floor server" "$floor" --peer "$addr:19399"
# A server killed mid-run: the client says so after its 10 s of silence
# (or as a failed send, if its retries run out first). A server not yet
# listening when the client came (a loaded host: its connect refused) is
# tried again, as run() does.
for try in 1 2 3 4 5; do
	port=$((port + 1))
	"$floor" --server --bind "$addr:$port" &
	spid=$!
	sleep 0.5
	(sleep 1; kill -9 "$spid") &
	rc=0
	timeout 60 "$floor" --peer "$addr:$port" --iters 100000000 >"$out" 2>&1 || rc=$?
	wait "$spid" 2>/dev/null || true
	grep -q "no rdma_floor server" "$out" || break
done
[ "$rc" = 1 ] && grep -q "^rdma_floor: .*\(silent for 10 s\|send failed\)" "$out" ||
	{ echo "server killed: exit $rc (want 1, silent for 10 s or send failed): $(cat "$out")" >&2; exit 1; }
echo "server killed: exit $rc, $(head -n 1 "$out")"
