#!/bin/sh
# hostapd_patch/build.sh -- fetch Debian 12's wpa 2.10 source, apply the
# DANCE series, build hostapd, eapol_test and wpa_supplicant into
# $BUILD/hostapd/bin/.  A stock hostapd (same source and config, no
# series, no CONFIG_DANCE) goes to $BUILD/hostapd/stock/bin/ so the tests
# can compare the two on non-DANCE configurations.
#
#   BUILD=<abs build dir> sh hostapd_patch/build.sh
#
# The pristine source is cached in $BUILD/hostapd/orig (fetched once with
# apt-get source); every run copies it to $BUILD/hostapd/src and applies
# hostapd_patch/series on top, so a changed patch is always picked up and
# a patch that does not apply fails the build.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
here=$top/hostapd_patch
work=$BUILD/hostapd
orig=$work/orig
src=$work/src
bin=$work/bin
stock=$work/stock
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

die() {
	echo "hostapd_patch/build.sh: $*" >&2
	exit 1
}

[ -f "$BUILD/libdance.a" ] || die "$BUILD/libdance.a missing (run make first)"
mkdir -p "$work" "$bin"

# apt_retry LOG CMD...: run an apt command, retrying while another apt or
# dpkg holds its lock.
apt_retry() {
	alog=$1
	shift
	n=0
	until "$@" >"$alog" 2>&1; do
		n=$((n + 1))
		if [ $n -ge 20 ] || ! grep -qi 'lock' "$alog"; then
			cat "$alog" >&2
			return 1
		fi
		sleep 6
	done
}


# apt-get source into a scratch directory, then move the tree in place.
fetch_source() {
	sh "$top/.ci/deb-src.sh" wpa || die "no source package for wpa"
	tmp=$work/fetch.$$
	rm -rf "$tmp" && mkdir -p "$tmp"
	(cd "$tmp" && apt_retry "$work/fetch.log" apt-get source -qq wpa) ||
		die "apt-get source wpa failed"
	d=$(find "$tmp" -maxdepth 1 -type d -name 'wpa-*' | head -n 1)
	[ -n "$d" ] && [ -f "$d/hostapd/Makefile" ] ||
		die "apt-get source wpa gave no wpa-* tree"
	rm -rf "$orig"
	mv "$d" "$orig"
	(cd "$tmp" && ls *.dsc) >"$work/source-version" 2>/dev/null
	rm -rf "$tmp"
}

[ -f "$orig/hostapd/Makefile" ] || fetch_source

# The stock hostapd: its own copy of the pristine tree and its own stamp,
# so a changed patch or libdance does not rebuild it.  Only hostapd, with
# at most two jobs, to keep CI time down.
build_stock() {
	sstamp=$(cat "$0" "$here/hostapd.config" | sha256sum | cut -d' ' -f1)
	if [ -x "$stock/bin/hostapd" ] &&
	    [ "$(cat "$stock/stamp" 2>/dev/null)" = "$sstamp" ]; then
		echo "stock hostapd is up to date in $stock/bin"
		return 0
	fi
	rm -rf "$stock"
	mkdir -p "$stock/bin"
	cp -a "$orig" "$stock/src"
	grep -v '^[[:space:]]*CONFIG_DANCE' "$here/hostapd.config" \
		>"$stock/src/hostapd/.config"
	slog=$stock/build.log
	sj=$jobs
	[ "$sj" -gt 2 ] && sj=2
	(cd "$stock/src/hostapd" && make -j"$sj" V=1 hostapd) >"$slog" 2>&1 ||
		{ tail -n 40 "$slog"; die "stock hostapd build failed (log: $slog)"; }
	cp "$stock/src/hostapd/hostapd" "$stock/bin/"
	echo "$sstamp" >"$stock/stamp"
	echo "built stock hostapd in $stock/bin"
}
build_stock

# Nothing to do when the inputs are unchanged since the last good build.
stamp=$(cat "$0" "$here/series" "$here"/patches/*.patch "$here/hostapd.config" \
	"$here/wpa_supplicant.config" "$BUILD/libdance.a" \
	"$top/common/include/dance.h" | sha256sum | cut -d' ' -f1)
if [ -x "$bin/hostapd" ] && [ -x "$bin/eapol_test" ] &&
    [ -x "$bin/wpa_supplicant" ] &&
    [ "$(cat "$work/stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "hostapd, eapol_test and wpa_supplicant are up to date in $bin"
	exit 0
fi
rm -f "$work/stamp"

# Fresh copy + series.  dpkg-source already applied Debian's own patches.
rm -rf "$src"
cp -a "$orig" "$src"
grep -v '^[[:space:]]*\(#\|$\)' "$here/series" | while read -r p; do
	[ -f "$here/patches/$p" ] || die "series names missing patch $p"
	if ! patch -d "$src" -p1 -N -s --no-backup-if-mismatch \
	    <"$here/patches/$p"; then
		die "patch $p does not apply to $(basename "$(readlink -f "$orig")")"
	fi
	echo "applied $p"
done

# The core is linked as a static library; its header is all we include.
dance_cfg() {
	cat "$1"
	cat <<-EOF
	DANCE_INC=$top/common/include
	DANCE_LIB=$BUILD/libdance.a
	EOF
}
dance_cfg "$here/hostapd.config" >"$src/hostapd/.config"
dance_cfg "$here/wpa_supplicant.config" >"$src/wpa_supplicant/.config"

log=$work/build.log
: >"$log"
(cd "$src/hostapd" && make -j"$jobs" V=1 hostapd) >>"$log" 2>&1 ||
	{ tail -n 40 "$log"; die "hostapd build failed (log: $log)"; }
(cd "$src/wpa_supplicant" && make -j"$jobs" V=1 eapol_test wpa_supplicant) \
	>>"$log" 2>&1 ||
	{ tail -n 40 "$log"; die "eapol_test build failed (log: $log)"; }
cp "$src/hostapd/hostapd" "$src/wpa_supplicant/eapol_test" \
	"$src/wpa_supplicant/wpa_supplicant" "$bin/"
echo "$stamp" >"$work/stamp"
echo "built hostapd, eapol_test and wpa_supplicant in $bin"
