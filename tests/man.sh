#!/bin/bash
# The manual pages made from the header: one for every function the library
# exports, each showing the header's declaration, none with a formatting
# warning; hpnbench.1 has every option hpnbench --help lists.
#   man.sh BUILD_DOCS_DIR SOURCE_ROOT HPNBENCH
set -euo pipefail
dir=$1 root=$2 bench=$3
command -v groff >/dev/null || { echo "skip: groff is not installed (groff-base; tools/install-deps.sh)"; exit 77; }
fail=0
funcs=$(sed -n '/^HPN_0\.2 {/,/^}/p' "$root/src/libhpntransport.map" | grep -oE '^\s+hpn_[a-z0-9_]+' | tr -d ' \t')
for f in $funcs; do
	page=$dir/$f.3
	if [ ! -f "$page" ]; then
		echo "no page for $f"; fail=1; continue
	fi
	decl=$(grep -E "^[a-z][^(]*\b$f\(" "$root/include/hpn/hpn.h" | head -1 | sed 's/;.*/;/')
	if ! grep -qF -- "$(echo "$decl" | sed 's/\\/\\e/g')" "$page"; then
		echo "$f: the page does not show its declaration: $decl"; fail=1
	fi
done
for page in "$dir"/*.3 "$dir"/hpnbench.1; do
	warn=$(cd "$dir" && groff -man -ww -z "$(basename "$page")" 2>&1) || true
	if [ -n "$warn" ]; then
		echo "$(basename "$page"): $warn"; fail=1
	fi
done
for opt in $("$bench" --help | grep -oE '^  --[a-z-]+'); do
	grep -qF -- "\\fB$(echo "$opt" | sed 's/-/\\-/g')\\fR" "$dir/hpnbench.1" || { echo "hpnbench.1 lacks $opt"; fail=1; }
done
[ $fail = 0 ] && echo "$(echo "$funcs" | wc -w) functions documented, $(ls "$dir"/*.3 | wc -l) pages in man3, hpnbench.1"
exit $fail
