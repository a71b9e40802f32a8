#!/bin/bash
# The library exports exactly what its headers declare, in the right
# version node: include/hpn/hpn.h in HPN_0.2 and HPN_0.3 (the application's API),
# include/hpn/plugin.h in HPN_PRIVATE_2 (services for plugins), nothing else.
#   symbols.sh LIBHPNTRANSPORT.so SOURCE_ROOT
set -euo pipefail
lib=$1 root=$2
decl() { grep -oE '\bhpn_[a-z0-9_]+\s*\(' "$1" | sed 's/\s*($//; s/($//' | sort -u; }
pub=$(decl "$root/include/hpn/hpn.h")
plg=$(comm -23 <(decl "$root/include/hpn/plugin.h") <(echo "$pub"))
exp=$(nm -D --defined-only "$lib" | awk '$2 == "T" || $2 == "D" || $2 == "B" { print $3 }' | grep -v '^HPN_' | sort)
# Added after 0.2, each in the node of the release that added it.
since03="hpn_ep_wake"
node() { case " $since03 " in *" $1 "*) echo "$1@@HPN_0.3" ;; *) echo "$1@@HPN_0.2" ;; esac; }
want=$( (for s in $pub; do node "$s"; done; echo "$plg" | sed 's/$/@@HPN_PRIVATE_2/') | sort)
if [ "$exp" != "$want" ]; then
	echo "exports differ from the headers (< exported, > declared):"
	diff <(echo "$exp") <(echo "$want") || true
	exit 1
fi
echo "$(echo "$pub" | wc -l) application symbols in HPN_0.2 and HPN_0.3, $(echo "$plg" | wc -l) plugin services in HPN_PRIVATE_2"
