# Sourced by the tests/net/*_kernel.sh tests: two throw-away hosts joined
# by a veth pair (tools/hpn-netns --pair), removed on exit; skips (77)
# with the reason without root or namespaces.
#   netns_pair HPN_NETNS PREFIX SUBNET   then in1 CMD / in2 CMD
netns_pair() {
	local netns=$1
	prefix=$2
	if [ "$(id -u)" -ne 0 ]; then
		echo "skip: needs root (network namespaces)"
		exit 77
	fi
	if ! "$netns" up --pair --prefix "$prefix" --subnet "$3" >/dev/null; then
		echo "skip: cannot create network namespaces here (tools/hpn-netns up failed)"
		exit 77
	fi
	trap '"'"$netns"'" down --prefix "'"$prefix"'" >/dev/null 2>&1 || true' EXIT
}
in1() { ip netns exec "${prefix}1" "$@"; }
in2() { ip netns exec "${prefix}2" "$@"; }
