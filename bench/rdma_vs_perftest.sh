#!/bin/bash
# hpn rdma vs perftest (ib_send_lat, ib_write_lat) in one soft-RoCE session.
#
#   bench/rdma_vs_perftest.sh [--sizes 64,1024] [--iters 5000] [--rounds 3] [--build DIR] [--pair] [--floor]
#
# Runs itself inside the rxe guest (tools/hpn-rxe) unless RDMA is already
# here. All tools run in the same guest, back to back, with the same sizes
# and iteration counts; the guest (nested KVM here, TCG emulation where the
# host has no KVM) makes absolute numbers meaningless, so what counts is the
# ratio; the tools take turns for --rounds rounds
# and each figure is the median of its rounds (one round swings by 2x
# under emulation). The guest times from the TSC (hpn-rxe --tsc): with
# its default HPET every clock read is a system call and an emulated
# device read (~4 us), on hpn's timed path and perftest's alike. Each
# tool runs as two processes, as a user runs them - hpnbench --server and
# --peer, like perftest's server and client - pinned to the guest's two
# vCPUs (server on 1, client on 0). (hpnbench's loopback mode, both ends
# as threads of one process, was measured slower here: 16 rounds at 64 B,
# fast modes 13.25 us against 12.86 as two processes, ib_send_lat 12.68;
# medians 16.30, 13.39, 13.18.) Pinned or not, every tool's rounds fall
# into two modes ~1.6-1.9x apart, decided per process pair, so each tool's
# fast mode is reported too (median of its rounds within 1.2x of its
# best). Targets: hpn's one-way latency <= 1.05x ib_send_lat's typical at
# 64 B, and the write-with-immediate path <= 1.05x ib_write_lat's; called
# met only when the medians, the paired rounds and the fast modes agree.
# --pair: the same on rxe0 and across the real wire of hpn-rxe --pair
# (rxeC -> rxeD) in one guest session, then hpnbench 64 B under netem loss
# 1% each way on that wire, with the default ack_timeout and with
# rdma_cm's (ack_timeout=0).
# --floor: also bench/rdma_floor (raw verbs, no hpn) each round - plain
# write, write with immediate and send at each size, and plain write 64 B
# larger - and split hpn's figures into what its verb costs and what hpn
# adds, with the device's cost per byte.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=64,1024 iters=5000 rounds=3 build=build pair=0 floor=0
args=("$@")
while [ $# -gt 0 ]; do
	case $1 in
	--sizes) sizes=$2; shift 2 ;;
	--iters) iters=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--pair) pair=1; shift ;;
	--floor) floor=1; shift ;;
	--inside) shift ;;
	-h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
	*) echo "rdma_vs_perftest: unknown option $1" >&2; exit 2 ;;
	esac
done
bench=$PWD/$build/bench/hpnbench
[ -x "$bench" ] || { echo "rdma_vs_perftest: $bench missing: build first" >&2; exit 1; }
floorbin=$PWD/$build/bench/rdma_floor
[ "$floor" = 0 ] || [ -x "$floorbin" ] || { echo "rdma_vs_perftest: $floorbin missing (built with the rdma plugin)" >&2; exit 1; }

# Into the guest unless the devices are here (--pair: its rxeC and rxeD).
if ! ls /sys/class/infiniband/ 2>/dev/null | grep -q . || { [ "$pair" = 1 ] && [ ! -e /sys/class/infiniband/rxeC ]; }; then
	if [[ " ${args[*]} " == *" --inside "* ]]; then
		echo "rdma_vs_perftest: no RDMA device (or no rxeC/rxeD for --pair) even inside the harness" >&2
		exit 1
	fi
	out=$(mktemp -d)
	chmod 777 "$out"
	wire=()
	[ "$pair" = 1 ] && wire=(--pair)
	tools/hpn-rxe auto --tsc ${wire[@]+"${wire[@]}"} --rw "$out" -- "$PWD/$0" "${args[@]}" --inside --build "$build" | tee "$out/log"
	exit "${PIPESTATUS[0]}"
fi

gid=${HPN_RXE_GID:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"; kill $(jobs -p) 2>/dev/null || true' EXIT

# A path: NAME SERVER_DEV CLIENT_DEV ADDR (rxe0 loops back inside one
# device; "wire" crosses the veth from rxeC to rxeD).
paths=("rxe0 ${HPN_RXE_DEV:-rxe0} ${HPN_RXE_DEV:-rxe0} ${HPN_TEST_RDMA_ADDR:-10.9.0.1}")
[ "$pair" = 1 ] && paths+=("wire rxeD rxeC 10.11.0.2")

port=18600
# hpn CONFIG JSON: hpnbench's server and client, each its own process, the
# way perftest() runs its tools.
hpn() {
	local cfg=$1 json=$2 try spid
	port=$((port + 1))
	"$bench" --plugin rdma --server --cpu 1 --bind "$addr:$port" --config "$cfg" >/dev/null 2>&1 &
	spid=$!
	for try in 1 2 3 4 5; do
		sleep 0.5
		if timeout 120 "$bench" --plugin rdma --peer "$addr:$port" --cpu 0 --size "$s" --iters "$iters" \
			--warmup 500 --quiet --config "$cfg" --json "$json" >/dev/null 2>&1; then
			break
		fi
		rm -f "$json" # a failed run's JSON (what it measured before it gave up) is no result
	done
	kill "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	[ -s "$json" ] || { echo "rdma_vs_perftest: hpnbench ($cfg) gave no result on $name" >&2; exit 1; }
}

floor() { # mode size -> $work/<path>_floor_<mode>_<size>_<round>.txt
	local mode=$1 size=$2 try spid f
	f=$work/${name}_floor_${mode}_${size}_$r.txt
	for try in 1 2 3 4 5; do
		# A fresh server each try: a failed run ends the server too.
		port=$((port + 1))
		taskset -c 1 "$floorbin" --server --bind "$addr:$port" >/dev/null 2>&1 &
		spid=$!
		sleep 0.3
		if timeout 120 taskset -c 0 "$floorbin" --peer "$addr:$port" --mode "$mode" --size "$size" --iters "$iters" \
			>"$f" 2>&1; then
			wait "$spid" 2>/dev/null || true
			return
		fi
		cp "$f" "$f.try$try"
		kill "$spid" 2>/dev/null || true
		wait "$spid" 2>/dev/null || true
	done
	echo "rdma_vs_perftest: rdma_floor $mode $size failed on $name:" >&2
	cat "$f.try1" >&2
	exit 1
}

perftest() { # tool size -> writes $work/<path>_<tool>_<size>_<round>.txt
	local tool=$1 size=$2 try
	taskset -c 1 "$tool" -d "$sdev" -x "$gid" -s "$size" -n "$iters" -F >/dev/null 2>&1 &
	local spid=$!
	for try in 1 2 3 4 5; do
		sleep 0.5
		if timeout 120 taskset -c 0 "$tool" -d "$cdev" -x "$gid" -s "$size" -n "$iters" -F "$addr" >"$work/${name}_${tool}_${size}_$r.txt" 2>&1; then
			break
		fi
	done
	wait "$spid" 2>/dev/null || true
}

IFS=, read -ra size_list <<<"$sizes"
for r in $(seq 1 "$rounds"); do
for path in "${paths[@]}"; do
	read -r name sdev cdev addr <<<"$path"
	for s in "${size_list[@]}"; do
		echo "round $r, $name, size $s: ib_send_lat" >&2
		perftest ib_send_lat "$s"
		echo "$name, size $s: ib_write_lat" >&2
		perftest ib_write_lat "$s"
		echo "$name, size $s: hpnbench rdma (send/recv)" >&2
		hpn bufs=512,buf_size=64k,rx_depth=128 "$work/${name}_hpn_${s}_$r.json"
		echo "$name, size $s: hpnbench rdma (write with immediate)" >&2
		hpn bufs=512,buf_size=64k,rx_depth=128,wimm=on,wimm_slot=2048 "$work/${name}_wimm_${s}_$r.json"
		if [ "$floor" = 1 ]; then
			echo "$name, size $s: rdma_floor write, wimm, send, and write 64 B larger" >&2
			for m in write wimm send; do floor $m "$s"; done
			[ $((s + 64)) -gt 4096 ] || floor write $((s + 64)) # rdma_floor's largest size is 4096
		fi
	done
done
done
if [ "$pair" = 1 ]; then
	tc qdisc add dev vethC root netem loss 1%
	tc qdisc add dev vethD root netem loss 1%
	for at in default 0; do
		echo "wire, 1% loss each way: hpnbench 64 B, ack_timeout $at" >&2
		extra=
		# rdma_cm's timeout resends after ~1 s, twice in a row now and
		# then: hpn's silence limit (3 s) must not end that run.
		[ "$at" = default ] || extra=",ack_timeout=$at,peer_timeout_ms=30000"
		"$bench" --plugin rdma --bind 10.11.0.2:0 --size 64 --iters "$iters" --warmup 200 --quiet \
			--config "bufs=512,rx_depth=128$extra" --json "$work/loss_$at.json" >/dev/null || {
			echo "rdma_vs_perftest: the 1% loss run (ack_timeout $at) failed: left out" >&2
			rm -f "$work/loss_$at.json"
		}
	done
	tc qdisc del dev vethC root
	tc qdisc del dev vethD root
fi

python3 - "$work" "$sizes" "$pair" "$rounds" "$floor" <<'PY'
import json, statistics, sys
work, sizes, pair, rounds = sys.argv[1], [int(x) for x in sys.argv[2].split(',')], sys.argv[3] == '1', int(sys.argv[4])
floor = sys.argv[5] == '1'
def med(load, stem, ext):
    # the median of each figure over the rounds
    rs = [load('%s_%d.%s' % (stem, r, ext)) for r in range(1, rounds + 1)]
    return {k: statistics.median(x[k] for x in rs) for k in rs[0]}, [x[list(rs[0])[0]] for x in rs]
def perf1(path):
    # columns: bytes iters t_min t_max t_typical t_avg t_stdev p99 p99.9
    for line in open(path):
        f = line.split()
        if len(f) >= 9 and f[0].isdigit() and f[1].isdigit():
            return {'typ': float(f[4]), 'p999': float(f[8])}
    raise SystemExit("no result in %s:\n%s" % (path, open(path).read()[-2000:]))
def hpn1(path):
    r = json.load(open(path))['results'][0]
    return {'t_typical_us': r['t_typical_us'], 'p99_9_us': r['p99_9_us']}
def hpn(path):
    return json.load(open(path))['results'][0]
def floor1(path):
    # rdma_floor: MODE SIZE ITERS min X typ Y p90 Z us
    for line in open(path):
        f = line.split()
        if len(f) >= 9 and f[3] == 'min' and f[5] == 'typ':
            return {'typ': float(f[6])}
    raise SystemExit("no result in %s:\n%s" % (path, open(path).read()[-2000:]))
def fast(xs):
    # Every tool's rounds fall into two modes here, one ~1.6-1.9x the
    # other, decided per process pair (seen with pinned vCPUs and with
    # ASLR off alike; interrupt and softirq counts are the same in both):
    # an artifact of the emulated machine. The fast mode: the rounds
    # within 1.2x of the tool's best, their median, and how many.
    lo = min(xs)
    f = [x for x in xs if x <= 1.2 * lo]
    return statistics.median(f), len(f)
print("\nhpn rdma vs perftest, one soft-RoCE guest, one-way latency in us (t_typical / p99.9),"
      " medians of %d rounds" % rounds)
print("%-5s %6s  %14s %14s %14s %14s   %s" % ("path", "size", "hpn send", "hpn wimm", "ib_send_lat", "ib_write_lat", "hpn/send  wimm/write"))
verdict = []
rounds_seen = []
paired = []
modes = []
for name in ['rxe0'] + (['wire'] if pair else []):
    for s in sizes:
        (h, hr), (w, wr) = med(hpn1, '%s/%s_hpn_%d' % (work, name, s), 'json'), med(hpn1, '%s/%s_wimm_%d' % (work, name, s), 'json')
        (a, ar), (b, br) = med(perf1, '%s/%s_ib_send_lat_%d' % (work, name, s), 'txt'), med(perf1, '%s/%s_ib_write_lat_%d' % (work, name, s), 'txt')
        rounds_seen.append("%s %d B typical per round: hpn send %s, ib_send_lat %s, hpn wimm %s, ib_write_lat %s" %
                           (name, s, hr, ar, wr, br))
        r1, r2 = h['t_typical_us'] / a['typ'], w['t_typical_us'] / b['typ']
        # Paired: each round's hpn figure over the perftest figure taken
        # next to it (slow drifts of the emulated machine cancel out), and
        # perftest's own spread over the rounds - the noise floor against
        # which a 5% target is judged.
        p1 = [x / y for x, y in zip(hr, ar)]
        p2 = [x / y for x, y in zip(wr, br)]
        paired.append("%s %d B paired per round: send %s (median %.2fx), wimm %s (median %.2fx); perftest's own spread "
                      "max/min: ib_send_lat %.2fx, ib_write_lat %.2fx" %
                      (name, s, ' '.join('%.2f' % x for x in p1), statistics.median(p1),
                       ' '.join('%.2f' % x for x in p2), statistics.median(p2), max(ar) / min(ar), max(br) / min(br)))
        (fh, nh), (fw, nw), (fa, na), (fb, nb) = fast(hr), fast(wr), fast(ar), fast(br)
        modes.append("%s %d B fast mode (median of the rounds within 1.2x of the tool's best, how many): hpn send %.2f (%d), "
                     "ib_send_lat %.2f (%d), hpn wimm %.2f (%d), ib_write_lat %.2f (%d): send %.2fx, wimm %.2fx" %
                     (name, s, fh, nh, fa, na, fw, nw, fb, nb, fh / fa, fw / fb))
        if s == 64:
            # Which rounds of each tool landed in the slow mode moves the
            # medians by more than the 5% judged: a verdict only where the
            # three readings agree.
            # A fast mode of one or two rounds is luck too.
            def judge(nfast, *xs):
                if nfast < 3:
                    return "unclear: fewer than 3 rounds in a fast mode"
                return "met" if max(xs) <= 1.05 else "NOT met" if min(xs) > 1.05 else "unclear: the readings disagree"
            verdict.append("%s: send %.2fx ib_send_lat (paired median %.2fx, fast mode %.2fx: %s), "
                           "wimm %.2fx ib_write_lat (paired median %.2fx, fast mode %.2fx: %s)" %
                           (name, r1, statistics.median(p1), fh / fa, judge(min(nh, na), r1, statistics.median(p1), fh / fa),
                            r2, statistics.median(p2), fw / fb, judge(min(nw, nb), r2, statistics.median(p2), fw / fb)))
        print("%-5s %6d  %6.2f/%7.2f %6.2f/%7.2f %6.2f/%7.2f %6.2f/%7.2f   %5.2f     %5.2f" %
              (name, s, h['t_typical_us'], h['p99_9_us'], w['t_typical_us'], w['p99_9_us'], a['typ'], a['p999'],
               b['typ'], b['p999'], r1, r2))
print("\nrounds:")
for x in rounds_seen:
    print("  " + x)
for x in paired:
    print("  " + x)
for x in modes:
    print("  " + x)
if floor:
    # Medians of the rounds and fast modes alike: each tool's rounds fall
    # into the same two modes.
    print("\nwhere the time goes (rdma_floor: raw verbs, no hpn; one-way us, median of rounds / fast mode):")
    for name in ['rxe0'] + (['wire'] if pair else []):
        for s in sizes:
            def get(stem, load, ext):
                m, xs = med(load, '%s/%s_%s' % (work, name, stem), ext)
                return list(m.values())[0], fast(xs)[0]
            fw, fi, fs = (get('floor_%s_%d' % (m, s), floor1, 'txt') for m in ('write', 'wimm', 'send'))
            # The cost per byte only where both sizes went the same way (inline or not).
            inl = lambda z: 'not inline' not in open('%s/%s_floor_write_%d_1.txt' % (work, name, z)).read()
            fw2 = get('floor_write_%d' % (s + 64), floor1, 'txt') if s + 64 <= 4096 and inl(s) == inl(s + 64) else None
            pw, ps = get('ib_write_lat_%d' % s, perf1, 'txt'), get('ib_send_lat_%d' % s, perf1, 'txt')
            hs, hw = get('hpn_%d' % s, hpn1, 'json'), get('wimm_%d' % s, hpn1, 'json')
            q = lambda a, b: '%.2fx / %.2fx' % (a[0] / b[0], a[1] / b[1])
            print("  %s %d B: floor write %.2f, wimm %.2f, send %.2f" % (name, s, fw[0], fi[0], fs[0]))
            print("    the floor against perftest (should be ~1): write/ib_write_lat %s, send/ib_send_lat %s" % (q(fw, pw), q(fs, ps)))
            print("    the verb: write with immediate over plain write %s (its receive request and completion)" % q(fi, fw))
            print("    hpn's own share: hpn send/floor send %s, hpn wimm/floor wimm %s%s" % (q(hs, fs), q(hw, fi),
                  " (over its 2048-byte slots hpn's wimm run sends)" if s > 2048 else ""))
            if fw2:
                print("    each byte more: %.0f / %.0f ns one-way (plain write, %d -> %d B: %.2f)" %
                      ((fw2[0] - fw[0]) * 1e3 / 64, (fw2[1] - fw[1]) * 1e3 / 64, s, s + 64, fw2[0]))
print("\ntargets at 64 B (<= 1.05x; medians, paired, fast mode):")
for v in verdict:
    print("  " + v)
if pair:
    print("\nwire, netem loss 1% each way, hpnbench 64 B ping-pong (one-way us):")
    for at, label in (('default', 'ack_timeout default (10)'), ('0', "ack_timeout=0 (rdma_cm's)")):
        try:
            r = hpn('%s/loss_%s.json' % (work, at))
        except (OSError, ValueError, IndexError, KeyError):
            r = None
        if not r or not r.get('iters') or r.get('p99_9_us') is None:
            print("  %-28s no result (the run failed: see above)" % label)
            continue
        print("  %-28s p50 %7.1f  p99 %9.1f  p99.9 %9.1f  max %9.1f  (%s)" %
              (label, r['t_typical_us'], r['p99_us'], r['p99_9_us'], r['t_max_us'],
               "p99.9 <= 10 ms: met" if r['p99_9_us'] <= 10000 else "p99.9 <= 10 ms: NOT met"))
PY
