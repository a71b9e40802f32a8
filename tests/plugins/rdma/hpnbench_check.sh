#!/bin/bash
# hpnbench --plugin rdma with both ends in this (guest) machine; the JSON
# must parse and hold sane values. Usage: hpnbench_check.sh HPNBENCH
set -euo pipefail
bench=$1
addr=${HPN_TEST_RDMA_ADDR:-10.9.0.1}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$bench" --plugin rdma --bind "$addr:0" --size 64,4096 --iters 2000 --warmup 200 --quiet \
	--config bufs=512,buf_size=64k,rx_depth=128 --json "$out"
"$bench" --plugin rdma --bind "$addr:0" --mode stream --size 64 --iters 20000 --quiet \
	--config bufs=512,buf_size=64k,rx_depth=128 --json "$out.stream"
python3 - "$out" "$out.stream" <<'PY'
import json, math, sys
pp = json.load(open(sys.argv[1]))["results"]
st = json.load(open(sys.argv[2]))["results"]
assert [r["size"] for r in pp] == [64, 4096], pp
for r in pp:
    assert r["plugin"] == "rdma" and r["mode"] == "pingpong", r
    assert r["iters"] == 2000, r
    v = [r[k] for k in ("t_min_us", "t_typical_us", "p99_us", "p99_9_us", "p99_99_us", "t_max_us")]
    assert all(x is not None and x > 0 and math.isfinite(x) for x in v), r
    assert v == sorted(v), ("percentiles must not decrease", r)
    assert r["t_min_us"] <= r["t_avg_us"] <= r["t_max_us"], r
    assert r["drops"] == 0 and r["dups"] == 0 and r["out_of_order"] == 0, r
s = st[0]
assert s["mode"] == "stream" and s["iters"] == 20000 and s["drops"] == 0 and s["out_of_order"] == 0, s
assert s["msgs_per_s"] > 0 and s["gbit_per_s"] > 0, s
print("hpnbench rdma: p50 %.2f us at 64 B, %.0f msg/s stream (emulated: absolute numbers mean little)"
      % (pp[0]["t_typical_us"], s["msgs_per_s"]))
PY
rm -f "$out.stream"

# Connect requests whose initiator gave up before the server read them (the
# server descheduled: SIGSTOP here; eight clients at once did it too) are
# refused, and the server serves the next client and stops on SIGINT. It
# once spun for ever in create_qp: librdmacm fails such a request after
# making its queue pair, and the inline-size retry never reached 0.
port=18599
"$bench" --plugin rdma --server --bind "$addr:$port" --quiet --config bufs=512,buf_size=64k,rx_depth=128 &
srv=$!
sleep 1.5
kill -STOP "$srv"
if timeout 20 "$bench" --plugin rdma --peer "$addr:$port" --iters 10 --quiet >/dev/null 2>&1; then
	echo "FAIL: a client was served by a stopped server"; kill -9 "$srv"; exit 1
fi
kill -CONT "$srv"
sleep 1
if ! timeout 30 "$bench" --plugin rdma --peer "$addr:$port" --iters 200 --quiet >/dev/null; then
	echo "FAIL: after stale connect requests the server serves no new client"; kill -9 "$srv"; exit 1
fi
kill -INT "$srv"
for _ in $(seq 50); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$srv" 2>/dev/null; then
	echo "FAIL: the server ignores SIGINT after stale connect requests"; kill -9 "$srv"; exit 1
fi
wait "$srv" || true
echo "stale connect requests refused; the server served the next client"
