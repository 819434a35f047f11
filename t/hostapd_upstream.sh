#!/bin/sh
# t/hostapd_upstream.sh -- t/hostapd.sh against every other hostap base
# built by `make hostapd-upstream` (hostap 2.11 and main from
# ../shared/upstream, the hostapd_patch/upstream/ series), one after the
# other.  TAP numbering continues across bases; each description starts
# with the base's version.  Output: TAP lines and "N passed, N failed".
#
#   BUILD=<abs build dir> sh t/hostapd_upstream.sh
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
export BUILD

works=
for w in "$BUILD"/hostapd-*; do
	[ -x "$w/bin/hostapd" ] && works="$works $w"
done
if [ -z "$works" ]; then
	echo "# SKIP no upstream hostap build in $BUILD/hostapd-*/" \
		"(make hostapd-upstream needs $UPSTREAM/hostap-*.tar.gz, UPSTREAM=../shared/upstream by default)"
	echo "0 passed, 0 failed"
	exit 0
fi

n=0
pass=0
fail=0
log=$(mktemp /tmp/dance-hostapd-upstream.XXXXXX)
for w in $works; do
	v=${w##*/hostapd-}
	HOSTAPD_WORK=$w sh "$top/t/hostapd.sh" >"$log" 2>&1
	rc=$?
	# renumber, tag with the base; keep diagnostics and comments
	awk -v n="$n" -v v="$v" '
		/^ok [0-9]+ - / { n++; sub(/^ok [0-9]+ - /, ""); print "ok " n " - [" v "] " $0; next }
		/^not ok [0-9]+ - / { n++; sub(/^not ok [0-9]+ - /, ""); print "not ok " n " - [" v "] " $0; next }
		/^[0-9]+ passed, [0-9]+ failed$/ { next }
		{ print }
		END { print n >"/dev/stderr" }' "$log" 2>"$log.n"
	p=$(grep -c '^ok ' "$log")
	f=$(grep -c '^not ok ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		n=$(($(cat "$log.n") + 1))
		echo "not ok $n - [$v] t/hostapd.sh exited with $rc"
		f=1
	else
		n=$(cat "$log.n")
	fi
	pass=$((pass + p))
	fail=$((fail + f))
done
rm -f "$log" "$log.n"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
