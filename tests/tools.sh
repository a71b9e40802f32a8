#!/bin/bash
# The set-up tools as a user drives them, where they could do harm:
#   1. hpn-netns down leaves a namespace it did not make, even an empty
#      one (it once deleted any empty PREFIXn), and up refuses it;
#   2. hpn-netns refuses octets with leading zeros before making anything;
#   3. hpn-hugepages refuses a count that would take the machine's memory
#      (nothing changes), reads 010 as ten, mounts a hugetlbfs once per
#      directory and never over files;
#   4. hpn-dpdk bind refuses from a network namespace of its own (from
#      there the NIC with the default route looks unused).
# Needs root; skipped (77) with the reason otherwise.
#   tools.sh TOOLS_DIR
set -uo pipefail
tools=$(cd "$1" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root"; exit 77; }
prefix=hpnt$((RANDOM % 90 + 10))a # a prefix nobody else uses
tmp=$(mktemp -d)
hp0=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages 2>/dev/null || echo 0)
cleanup() {
	"$tools/hpn-netns" down --prefix "$prefix" >/dev/null 2>&1
	ip netns del "${prefix}1" 2>/dev/null
	ip netns del hpntdp 2>/dev/null
	umount "$tmp/hp dir" 2>/dev/null
	echo "$hp0" >/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

echo "1. hpn-netns and a namespace it did not make"
ip netns add "${prefix}1" || { echo "skip: cannot create network namespaces here"; exit 77; }
"$tools/hpn-netns" down --prefix "$prefix" >/dev/null 2>&1
ip netns list | grep -qw "${prefix}1" || fail "hpn-netns down deleted ${prefix}1, an empty namespace it did not make"
"$tools/hpn-netns" up --prefix "$prefix" >/dev/null 2>&1 && fail "hpn-netns up took over ${prefix}1"
ip netns list | grep -qw "${prefix}1" || fail "hpn-netns up deleted ${prefix}1"
ip netns del "${prefix}1"
"$tools/hpn-netns" up --prefix "$prefix" >/dev/null || fail "hpn-netns up"
"$tools/hpn-netns" down --prefix "$prefix" >/dev/null || fail "hpn-netns down"
[ -z "$(ip netns list | grep -w "${prefix}[12]")" ] || fail "hpn-netns down left its namespaces"

echo "2. hpn-netns --subnet with a leading zero"
"$tools/hpn-netns" up --prefix "$prefix" --subnet 10.77.08 >"$tmp/out" 2>&1
[ $? -eq 2 ] && grep -q "leading zero" "$tmp/out" || { cat "$tmp/out"; fail "--subnet 10.77.08 not refused as usage"; }
[ -z "$(ip netns list | grep -w "${prefix}1")" ] || fail "a refused up left ${prefix}1"

echo "3. hpn-hugepages"
"$tools/hpn-hugepages" 999999999 >"$tmp/out" 2>&1
[ $? -eq 2 ] && grep -q "would take" "$tmp/out" || { cat "$tmp/out"; fail "999999999 hugepages not refused"; }
[ "$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages)" = "$hp0" ] || fail "a refused count changed nr_hugepages"
# Only on a machine with none reserved: a reservation set up for DPDK is
# not this test's to change (and might not come back whole).
if [ "$hp0" = 0 ] && [ -w /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages ] &&
	"$tools/hpn-hugepages" 010 >"$tmp/out" 2>&1; then
	got=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages)
	echo 0 >/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
	[ "$got" = 10 ] || fail "hpn-hugepages 010 reserved $got pages, not ten"
	grep -q "^hpn-hugepages: 10 x 2 MB hugepages reserved" "$tmp/out" || { cat "$tmp/out"; fail "010: wrong report"; }
fi
mkdir "$tmp/full" && echo x >"$tmp/full/keep"
"$tools/hpn-hugepages" --mount "$tmp/full" >"$tmp/out" 2>&1 && fail "a hugetlbfs mounted over files"
cd "$tmp" && mkdir "hp dir"
"$tools/hpn-hugepages" --mount "hp dir" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "--mount 'hp dir'"; }
"$tools/hpn-hugepages" --mount "hp dir/" >/dev/null 2>&1 || fail "--mount 'hp dir/' again"
n=$(grep -c "hp\\\\040dir hugetlbfs" /proc/mounts)
[ "$n" = 1 ] || fail "$n hugetlbfs mounts on 'hp dir' after two --mount"
cd - >/dev/null

echo "4. hpn-dpdk bind from a network namespace"
nic=$(ip -o route show default | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1) }' | head -1)
dev=$([ -n "$nic" ] && readlink -f "/sys/class/net/$nic/device" 2>/dev/null)
pci=$(basename "${dev:-x}")
[[ $pci =~ ^[0-9a-f]{4}: ]] || pci=$(basename "$(dirname "${dev:-x}")") # virtio: .../0000:00:03.0/virtio0
if [[ ${pci:-} =~ ^[0-9a-f]{4}: ]]; then
	ip netns add hpntdp
	ip netns exec hpntdp "$tools/hpn-dpdk" bind "$pci" >"$tmp/out" 2>&1
	[ $? -eq 2 ] && grep -q "network namespace of its own" "$tmp/out" || { cat "$tmp/out"; fail "bind of $nic ($pci) from a namespace not refused"; }
	"$tools/hpn-dpdk" bind "$pci" >"$tmp/out" 2>&1
	[ $? -eq 2 ] && grep -q "default route" "$tmp/out" || { cat "$tmp/out"; fail "bind of $nic ($pci) with the default route not refused"; }
else
	echo "   (no PCI NIC carries the default route here: not checked)"
fi
echo "PASS"
