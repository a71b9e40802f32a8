#!/bin/bash
# Install what building and testing hpn needs on Debian 12, and nothing
# that is already there. Safe to run again. Needs root (or sudo) only when
# something is missing.
set -euo pipefail

# Build and unit tests.
PKGS=(meson ninja-build pkg-config gcc g++ libc6-dev libcmocka-dev libnuma-dev)
# The fuzzers (libFuzzer comes with clang's runtime).
PKGS+=(clang libclang-rt-14-dev)
# The af_xdp plugin: libxdp/libbpf, its XDP program built with clang -target
# bpf (clang is above); xdp-tools and bpftool to look at what is attached.
PKGS+=(libxdp-dev libbpf-dev xdp-tools bpftool)
# The dpdk plugin: DPDK's headers and libraries (pkg-config libdpdk), and
# dpdk-testpmd / dpdk-devbind.py for tools/hpn-dpdk and the benchmark.
PKGS+=(dpdk-dev dpdk)
# Captures in the network tests: tcpdump, and tshark to decode them.
PKGS+=(tcpdump tshark)
# Benchmarks and the tools/ scripts.
PKGS+=(sockperf iproute2 procps python3 kmod ethtool iputils-ping)
# The manual pages' check (tests/man.sh) formats them.
PKGS+=(groff-base)
# bench/rdma_instructions.sh counts instructions per round trip (callgrind).
PKGS+=(valgrind)
# Soft-RoCE harness (tools/hpn-rxe): qemu guest with Debian's rdma_rxe kernel
# (downloaded by 'hpn-rxe prepare'), the host's rdma-core and test tools run
# inside it, and the headers for building the rdma plugin.
PKGS+=(qemu-system-x86 busybox-static cpio xz-utils rdma-core ibverbs-providers ibverbs-utils
	rdmacm-utils perftest libibverbs-dev librdmacm-dev)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#PKGS[@]} packages present"
	exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may never have fetched the package lists.
if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; then
	$SUDO apt-get update
	$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
