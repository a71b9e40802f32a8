#!/bin/bash
# User-space instructions per round trip: hpn rdma vs perftest, counted by
# callgrind in the soft-RoCE guest.
#
#   bench/rdma_instructions.sh [--size 64] [--build DIR] [--only hpn|perftest]
#                              [--profile N] [--keep DIR]
#
# Latency under emulation swings by 2x between runs of the same tool (see
# bench/rdma_vs_perftest.sh); an instruction count does not. Each tool's
# client runs under callgrind (the server natively, each pinned to its own
# vCPU) for 1000 and for 3000 iterations: the difference over 2000 is what
# one round trip costs on the client - start-up and tear-down cancel out.
# Not counted: result bookkeeping outside the timed part (perftest sorts
# its samples at the end; hpnbench records each in a histogram). Counted:
# polls while the reply is on its way. hpn's are few (a poll is a call
# chain, and the client crawls under callgrind while the server runs at
# full speed: its figure holds within ~3% from run to run); perftest's
# spin is a few instructions per turn, so its figures carry up to ~40% of
# waiting - an upper bound of its work. Each run length is taken three
# times, the smallest count kept. The kernel's share (soft-RoCE's work in the
# doorbell system call) is not in it, and is the same for both tools when
# they post the same requests. --profile N also prints, for each tool, the N
# functions that spend most per round trip (their own instructions, the same
# difference of the two kept runs): where a count grew or can shrink.
# --keep DIR keeps those runs' callgrind files there (TOOL-1000.out,
# TOOL-3000.out), for callgrind_annotate's line by line view.
# Needs valgrind (tools/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

size=64 build=build only= profile=0 keep=
args=("$@")
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--profile) profile=$2; shift 2 ;;
	--keep) keep=$(realpath -m -- "$2"); shift 2 ;;
	--inside) shift ;;
	-h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;
	*) echo "rdma_instructions: unknown option $1" >&2; exit 2 ;;
	esac
done
[[ $size =~ ^[0-9]+$ ]] || { echo "rdma_instructions: --size wants a byte count, got '$size'" >&2; exit 2; }
[[ $profile =~ ^[0-9]+$ ]] || { echo "rdma_instructions: --profile wants a count of functions, got '$profile'" >&2; exit 2; }
[ -z "$keep" ] || mkdir -p "$keep" || { echo "rdma_instructions: cannot make --keep $keep" >&2; exit 2; }
case $only in '' | hpn | perftest) ;; *) echo "rdma_instructions: --only wants hpn or perftest, got '$only'" >&2; exit 2 ;; esac
bench=$PWD/$build/bench/hpnbench
[ -x "$bench" ] || { echo "rdma_instructions: $bench missing: build first" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "rdma_instructions: valgrind missing: tools/install-deps.sh" >&2; exit 1; }

if ! ls /sys/class/infiniband/ 2>/dev/null | grep -q .; then
	if [[ " ${args[*]} " == *" --inside "* ]]; then
		echo "rdma_instructions: no RDMA device even inside the harness" >&2
		exit 1
	fi
	rw=()
	[ -z "$keep" ] || rw=(--rw "$keep")
	exec tools/hpn-rxe auto --tsc "${rw[@]}" -- "$PWD/$0" "${args[@]}" --inside --build "$build"
fi

dev=${HPN_RXE_DEV:-rxe0} gid=${HPN_RXE_GID:-1} addr=${HPN_TEST_RDMA_ADDR:-10.9.0.1}
work=$(mktemp -d)
trap 'rm -rf "$work"; kill $(jobs -p) 2>/dev/null || true' EXIT

# count OUT ITERS CMD...: the client's instructions, without result
# bookkeeping (qsort, hpn_hist_record: inclusive).
count() {
	local out=$1
	shift
	taskset -c 0 timeout 600 valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$out.log" 2>&1 ||
		{ echo "rdma_instructions: $* failed:" >&2; tail -5 "$out.log" >&2; return 1; }
	callgrind_annotate --inclusive=yes --show-percs=no --threshold=100 "$out" 2>/dev/null | awk '
		function num(x) { gsub(",", "", x); return x + 0 }
		/PROGRAM TOTALS/ { total = num($1) }
		$2 ~ /:(qsort|hpn_hist_record)$/ { drop += num($1) }
		END { print total - drop }'
}

perftest_client() { # tool iters
	taskset -c 1 "$1" -d "$dev" -x "$gid" -s "$size" -n "$2" -F >/dev/null 2>&1 &
	local spid=$!
	sleep 1
	count "$work/c" "$1" -d "$dev" -x "$gid" -s "$size" -n "$2" -F "$addr"
	wait "$spid" 2>/dev/null || true
}

hpn_client() { # config iters
	local cfg="bufs=512,buf_size=64k,rx_depth=128$1" port=18519
	taskset -c 1 "$bench" --plugin rdma --server --bind "$addr:$port" --config "$cfg" >/dev/null 2>&1 &
	local spid=$!
	sleep 2
	count "$work/c" "$bench" --plugin rdma --peer "$addr:$port" --size "$size" --iters "$2" --warmup 100 \
		--quiet --config "$cfg"
	kill "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null || true
}

# profile A B: each function's own instructions per round trip (B's run
# less A's, over 2000), the largest first.
profile() {
	local f
	for f in "$1" "$2"; do
		callgrind_annotate --inclusive=no --show-percs=no --auto=no --threshold=100 "$f" 2>/dev/null |
			awk -v tag="$f" '$1 ~ /^[0-9,]+$/ && NF >= 2 { n = $1; gsub(",", "", n); print tag, n, $2 }'
	done | awk -v a="$1" -v top="$profile" '
		{ if ($1 == a) c[$3] -= $2; else c[$3] += $2 }
		END { for (k in c) if (c[k] / 2000 >= 1 || c[k] / 2000 <= -1) printf "%8.1f  %s\n", c[k] / 2000, k }' |
		sort -rn | head -n "$profile"
}

per_rt() { # runner arg [label] -> instructions per round trip
	# Waiting adds instructions to a run, never takes any away: the
	# smallest count of three runs of each length is the least disturbed.
	local a= b= try v
	for try in 1 2 3; do
		v=$("$1" "$2" 1000)
		[ -z "$a" ] || [ "$v" -lt "$a" ] && { a=$v; cp "$work/c" "$work/a"; }
		v=$("$1" "$2" 3000)
		[ -z "$b" ] || [ "$v" -lt "$b" ] && { b=$v; cp "$work/c" "$work/b"; }
	done
	if [ -n "$keep" ]; then
		local tag=${3:-$2}
		tag=${tag//[^A-Za-z0-9_]/-}
		cp "$work/a" "$keep/$tag-1000.out" && cp "$work/b" "$keep/$tag-3000.out" ||
			echo "rdma_instructions: could not keep the callgrind files in $keep" >&2
	fi
	if [ "$profile" -gt 0 ]; then
		echo "  ${3:-$2}: own instructions per round trip, by function" >&2
		profile "$work/a" "$work/b" >&2
	fi
	echo $(( (b - a) / 2000 ))
}

echo "rdma_instructions: $size B ping-pong on $dev, client under callgrind (a minute or two per tool)" >&2
isl=0 iwl=0 hs=0 hw=0
if [ "$only" != hpn ]; then
	isl=$(per_rt perftest_client ib_send_lat)
	iwl=$(per_rt perftest_client ib_write_lat)
fi
if [ "$only" != perftest ]; then
	hs=$(per_rt hpn_client "" "hpn send/recv")
	hw=$(per_rt hpn_client ",wimm=on,wimm_slot=2048" "hpn write with immediate")
fi
echo
echo "user-space instructions per round trip on the client, $size B, $dev (callgrind; perftest's include its spin):"
ratio() { [ "$1" -gt 0 ] && [ "$2" -gt 0 ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }' || true; }
printf "  %-36s %6d   %s ib_send_lat\n" "hpnbench rdma (send/recv)" "$hs" "$(ratio "$hs" "$isl")"
printf "  %-36s %6d\n" "ib_send_lat" "$isl"
printf "  %-36s %6d   %s ib_write_lat\n" "hpnbench rdma (write with immediate)" "$hw" "$(ratio "$hw" "$iwl")"
printf "  %-36s %6d\n" "ib_write_lat" "$iwl"
