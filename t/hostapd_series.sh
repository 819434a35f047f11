#!/bin/sh
# t/hostapd_series.sh -- the upstream hostapd series (hostapd_patch/upstream/)
# applies with `git am`, no fuzz, to the hostap trees in ../shared/upstream
# (2.11 and main), as a maintainer would take it
# (hostapd_patch/upstream.sh check).
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/t/lib/tap.sh"

UP=${UPSTREAM:-}
[ -n "$UP" ] || for d in "$top/../shared/upstream" "$top/../../shared/upstream"; do
	[ -d "$d" ] && UP=$d && break
done
[ -n "$UP" ] || bail "../shared/upstream found" "set UPSTREAM= to the folder of the hostap tarballs"

for t in "$UP"/hostap-*.tar.gz; do
	[ -f "$t" ] || bail "hostap tarballs in $UP"
	out=$(timeout 300 sh "$top/hostapd_patch/upstream.sh" check "$t" 2>&1)
	ok $? "git am applies the upstream series to $(basename "$t" .tar.gz)" "$out"
done

done_testing
