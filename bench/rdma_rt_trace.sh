#!/bin/bash
# Where a 64 B round trip goes on soft-RoCE: raw verbs (bench/rdma_floor,
# send) and hpnbench side by side, traced in the kernel (ftrace: the
# doorbell write()'s entry and exit, and rxe_cq_post by kprobe, which
# tells whose receive completed).
#
#   bench/rdma_rt_trace.sh [--rounds N] [--iters N] [--build DIR]
#
# Runs itself in the rxe guest (tools/hpn-rxe --pair --tsc) on rxe0 and on
# the wire (rxeC -> rxeD). Per round trip (medians over the run, us):
#   req   client's post entry -> the server's receive completion
#   srv   that completion -> the server's post entry (its user-space turn)
#   rep   server's post entry -> the client's receive completion
#   cli   the later of that completion and the client's post exit -> the
#         client's next post entry (its user-space turn)
#   sys   the client's post system call, entry to exit
# The tracing itself slows every system call by a few us (under TCG), so
# the figures are for comparing the two tools, not absolute; the untraced
# one-way latency is bench/rdma_vs_perftest.sh's. Once in ~20 traced runs
# the guest hit a soft lockup (a 6.1 guest under TCG with kprobes): the run
# then ends at hpn-rxe's timeout, with the rounds done so far.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 iters=3000 build=build
args=("$@")
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--iters) iters=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--inside) shift ;;
	-h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
	*) echo "rdma_rt_trace: unknown option $1" >&2; exit 2 ;;
	esac
done
B=$PWD/$build/bench
[ -x "$B/rdma_floor" ] || { echo "rdma_rt_trace: $B/rdma_floor missing: build first" >&2; exit 1; }
if [ ! -e /sys/class/infiniband/rxeC ]; then
	[[ " ${args[*]} " == *" --inside "* ]] && { echo "rdma_rt_trace: no rxeC even in the guest" >&2; exit 1; }
	out=$(mktemp -d)
	chmod 777 "$out"
	exec tools/hpn-rxe auto --tsc --pair --rw "$out" -- "$PWD/$0" "${args[@]}" --inside --build "$build"
fi

T=/sys/kernel/tracing
mountpoint -q $T || mount -t tracefs nodev $T
work=$(mktemp -d)
trap 'echo 0 > $T/tracing_on; echo 0 > $T/events/enable; echo > $T/kprobe_events; rm -rf "$work"; kill $(jobs -p) 2>/dev/null || true' EXIT
echo 0 > $T/tracing_on
echo mono > $T/trace_clock
echo 20000 > $T/buffer_size_kb
echo 'p:hpn_cqpost rxe_cq_post cq=%di' > $T/kprobe_events
port=22400
run() { # tool addr round
	local tool=$1 a=$2 f=$work/$1_$2_$3
	port=$((port + 1))
	echo > $T/trace
	if [ "$tool" = raw ]; then
		taskset -c 1 "$B/rdma_floor" --server --bind "$a:$port" >/dev/null 2>&1 &
	else
		taskset -c 1 "$B/hpnbench" --plugin rdma --server --cpu 1 --bind "$a:$port" >/dev/null 2>&1 &
	fi
	local sp=$!
	sleep 1
	for e in kprobes/hpn_cqpost syscalls/sys_enter_write syscalls/sys_exit_write; do echo 1 > $T/events/$e/enable; done
	echo 1 > $T/tracing_on
	if [ "$tool" = raw ]; then
		timeout 60 taskset -c 0 "$B/rdma_floor" --peer "$a:$port" --mode send --size 64 --iters "$iters" --warmup 300 >/dev/null 2>&1 || true
	else
		timeout 60 "$B/hpnbench" --plugin rdma --peer "$a:$port" --cpu 0 --size 64 --iters "$iters" --warmup 300 --quiet >/dev/null 2>&1 || true
	fi
	echo 0 > $T/tracing_on
	echo 0 > $T/events/enable
	{ kill -9 $sp; wait $sp; } 2>/dev/null || true # (taskset execs the server: $sp is it)
	cp $T/trace "$f.trace"
}
for r in $(seq "$rounds"); do
	for a in 10.11.0.2 10.9.0.1; do
		run raw $a "$r"
		run hpn $a "$r"
	done
done
python3 - "$work" <<'PY'
import collections, glob, re, statistics as st, sys
def segments(fn):
    ev = []
    for l in open(fn):
        m = re.match(r'\s*\S+-(\d+)\s+\[\d+\]\s+\S+\s+([\d.]+):\s+(.*)', l)
        if not m:
            continue
        pid, ts, rest = int(m[1]), float(m[2]) * 1e6, m[3]
        if rest.startswith('sys_write(fd:') and rest.rstrip(')').endswith('count: 20'):
            ev.append((ts, 'enter', pid))       # a post: ibv_post_send's 32-byte command
        elif rest.startswith('sys_write -> 0x20'):
            ev.append((ts, 'exit', pid))
        elif rest.startswith('hpn_cqpost'):
            ev.append((ts, 'cq', rest.split('cq=')[1]))
    pids = sorted({e[2] for e in ev if e[1] == 'enter'})
    if len(pids) != 2:
        return None
    S, C = pids  # the server started first
    def first_cq(after_pid):
        c = collections.Counter()
        for i, e in enumerate(ev):
            if e[1] == 'enter' and e[2] == after_pid:
                for f in ev[i + 1:i + 6]:
                    if f[1] == 'cq':
                        c[f[2]] += 1
                        break
        return c.most_common(1)[0][0]
    cqS, cqC = first_cq(C), first_cq(S)
    seg = collections.defaultdict(list)
    cli = [i for i, e in enumerate(ev) if e[1] == 'enter' and e[2] == C]
    for k in range(len(cli) // 10, len(cli) - 1):  # past the warm-up
        i, j = cli[k], cli[k + 1]
        a, f, win = ev[i][0], ev[j][0], ev[i + 1:j]
        try:
            b = next(e[0] for e in win if e[1] == 'cq' and e[2] == cqS)
            c = next(e[0] for e in win if e[1] == 'enter' and e[2] == S and e[0] > b)
            d = next(e[0] for e in win if e[1] == 'cq' and e[2] == cqC and e[0] > c)
            x = next(e[0] for e in win if e[1] == 'exit' and e[2] == C)
        except StopIteration:
            continue
        for name, v in (('rt', f - a), ('req', b - a), ('srv', c - b), ('rep', d - c), ('cli', f - max(d, x)), ('sys', x - a)):
            seg[name].append(v)
    return {k: st.median(v) for k, v in seg.items()} if seg else None
res = collections.defaultdict(list)
for fn in sorted(glob.glob(sys.argv[1] + '/*.trace')):
    tool, addr, _ = fn.rsplit('/', 1)[1].split('_')
    s = segments(fn)
    if s:
        res[(addr, tool)].append(s)
print("traced round trips, medians of each run's medians (us); rt = req + srv + rep + cli:")
for (addr, tool), runs in sorted(res.items()):
    path = 'wire' if addr == '10.11.0.2' else 'rxe0'
    med = {k: st.median(r[k] for r in runs) for k in runs[0]}
    print("  %-4s %-3s (%d runs): rt %.1f  req %.1f  srv %.1f  rep %.1f  cli %.1f  sys %.1f" %
          (path, tool, len(runs), med['rt'], med['req'], med['srv'], med['rep'], med['cli'], med['sys']))
PY
