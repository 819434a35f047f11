#!/bin/sh
# hostapd_patch/build.sh -- apply the DANCE series to a hostap tree, copy
# the series' new files (hostapd_patch/src/) into it, build hostapd,
# eapol_test and wpa_supplicant into $WORK/bin/.  A stock hostapd (same
# source and config, no series, no CONFIG_DANCE) goes to $WORK/stock/bin/
# so the tests can compare the two on non-DANCE configurations.
#
#   BUILD=<abs build dir> [HOSTAP=<tree or tarball>] sh hostapd_patch/build.sh
#
# Without HOSTAP: Debian 12's wpa 2.10 source (apt-get source, cached in
# $BUILD/hostapd/orig), the 2.10/ series, WORK=$BUILD/hostapd.  With
# HOSTAP: that hostap tree or tarball (e.g. ../shared/upstream/
# hostap-2.11.tar.gz), unpacked once into $BUILD/hostapd-<version>/orig,
# the upstream/ series, WORK=$BUILD/hostapd-<version>; the path of WORK
# is printed last ("work: DIR").  Every run copies orig to WORK/src and
# applies the series without fuzz, so a changed patch is always picked
# up and a patch that does not apply exactly fails the build.
# EXTRA_CFLAGS and LDFLAGS from the environment reach hostap's Makefiles
# (which add them to the .config's flags) and are part of the stamps
# (t/asan/hosts.sh: -fsanitize=... into build-asan/).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
here=$top/hostapd_patch
HOSTAP=${HOSTAP:-}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

die() {
	echo "hostapd_patch/build.sh: $*" >&2
	exit 1
}

[ -f "$BUILD/libdance.a" ] || die "$BUILD/libdance.a missing (run make first)"

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

# hostap_version TREE: "2.11", "2.12-devel", ... from src/common/version.h
hostap_version() {
	sed -n 's/^#define VERSION_STR "\([^"]*\)".*/\1/p' \
		"$1/src/common/version.h" 2>/dev/null
}

# unpack_hostap: HOSTAP (a tarball or a tree) into $orig, once per input
unpack_hostap() {
	if [ -d "$HOSTAP" ]; then
		key=$(cd "$HOSTAP" && pwd)
	else
		key=$(sha256sum <"$HOSTAP" | cut -d' ' -f1)
	fi
	[ -f "$orig/hostapd/Makefile" ] &&
	    [ "$(cat "$work/orig.key" 2>/dev/null)" = "$key" ] && return 0
	rm -rf "$orig" "$work/orig.key"
	if [ -d "$HOSTAP" ]; then
		cp -a "$HOSTAP" "$orig"
	else
		# a SHA256SUMS next to the tarball (../shared/upstream) must
		# vouch for it
		sums=$(dirname "$HOSTAP")/SHA256SUMS
		if [ -f "$sums" ] &&
		    grep -q " \*\{0,1\}$(basename "$HOSTAP")\$" "$sums"; then
			(cd "$(dirname "$HOSTAP")" &&
			    grep " \*\{0,1\}$(basename "$HOSTAP")\$" SHA256SUMS |
			    sha256sum -c --quiet -) ||
				die "$HOSTAP does not match $sums"
		fi
		tmp=$work/unpack.$$
		rm -rf "$tmp" && mkdir -p "$tmp"
		tar -xf "$HOSTAP" -C "$tmp" || die "cannot unpack $HOSTAP"
		d=$(dirname "$(find "$tmp" -maxdepth 3 -path '*/hostapd/Makefile' |
			head -n 1)")
		[ -f "$d/Makefile" ] || die "$HOSTAP holds no hostap tree"
		mv "$(dirname "$d")" "$orig"
		rm -rf "$tmp"
	fi
	echo "$key" >"$work/orig.key"
}

if [ -z "$HOSTAP" ]; then
	work=$BUILD/hostapd
	orig=$work/orig
	mkdir -p "$work"
	[ -f "$orig/hostapd/Makefile" ] || fetch_source
else
	case $HOSTAP in /*) ;; *) HOSTAP=$(pwd)/$HOSTAP ;; esac
	[ -e "$HOSTAP" ] || die "HOSTAP=$HOSTAP does not exist"
	if [ -d "$HOSTAP" ]; then
		v=$(hostap_version "$HOSTAP")
	else
		v=$(tar -xOf "$HOSTAP" --wildcards '*src/common/version.h' \
			2>/dev/null | sed -n 's/^#define VERSION_STR "\([^"]*\)".*/\1/p')
	fi
	[ -n "$v" ] || die "HOSTAP=$HOSTAP: no src/common/version.h"
	work=$BUILD/hostapd-$v
	orig=$work/orig
	mkdir -p "$work"
	unpack_hostap
fi
src=$work/src
bin=$work/bin
stock=$work/stock
mkdir -p "$bin"

# One series per base where they differ: 2.10 (Debian 12) and upstream
# (2.11 and later).  The new files in src/ are shared.
version=$(hostap_version "$orig")
case $version in
2.10*) series=$here/2.10 ;;
*) series=$here/upstream ;;
esac

# The stock hostapd: its own copy of the pristine tree and its own stamp,
# so a changed patch or libdance does not rebuild it.  Only hostapd, with
# at most two jobs, to keep CI time down.
build_stock() {
	sstamp=$({ cat "$0" "$here/hostapd.config" "$work/orig.key" 2>/dev/null
		echo "${EXTRA_CFLAGS:-} ${LDFLAGS:-}"; } |
		sha256sum | cut -d" " -f1)
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
stamp=$({ find "$series" "$here/src" -type f | sort | xargs cat "$0" \
	"$here/hostapd.config" "$here/wpa_supplicant.config" "$BUILD/libdance.a" \
	"$top/common/include/dance.h"; echo "${EXTRA_CFLAGS:-} ${LDFLAGS:-}"; } |
	sha256sum | cut -d' ' -f1)
if [ -x "$bin/hostapd" ] && [ -x "$bin/eapol_test" ] &&
    [ -x "$bin/wpa_supplicant" ] &&
    [ "$(cat "$work/stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "hostapd, eapol_test and wpa_supplicant are up to date in $bin"
	echo "work: $work"
	exit 0
fi
rm -f "$work/stamp"
# a failed build leaves no stale binary behind for the tests
rm -f "$bin/hostapd" "$bin/hostapd_cli" "$bin/eapol_test" "$bin/wpa_supplicant"

# Fresh copy + series.  dpkg-source already applied Debian's own patches.
# --fuzz=0: a hunk that only applies with fuzz is a patch to refresh.
rm -rf "$src"
cp -a "$orig" "$src"
grep -v '^[[:space:]]*\(#\|$\)' "$series/series" | while read -r p; do
	[ -f "$series/$p" ] || die "series names missing patch $p"
	if ! patch -d "$src" -p1 -N -s --fuzz=0 --no-backup-if-mismatch \
	    <"$series/$p"; then
		die "patch $(basename "$series")/$p does not apply to hostap $version"
	fi
	echo "applied $(basename "$series")/$p"
done

# The series' new files are real files here; the patches only hook them
# into hostap's existing files (Makefile, config, EAP-TLS).
(cd "$here/src" && find . -type f) | while read -r f; do
	[ -e "$src/src/$f" ] && die "new file src/$f already exists in hostap $version"
	mkdir -p "$(dirname "$src/src/$f")"
	cp "$here/src/$f" "$src/src/$f"
done

# The new files also pass this repository's own warning set (hostap
# builds with fewer warnings), as errors.
for f in $(cd "$here/src" && find . -name '*.c'); do
	${CC:-cc} -fsyntax-only -Wall -Wextra -Wno-unused-parameter -Werror \
		-D_GNU_SOURCE -DCONFIG_DANCE -DEAP_SERVER_TLS \
		-I"$src/src" -I"$src/src/utils" -I"$top/common/include" \
		"$src/src/$f" || die "src/$f: warnings under -Wall -Wextra"
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
(cd "$src/hostapd" && make -j"$jobs" V=1 hostapd hostapd_cli) >>"$log" 2>&1 ||
	{ tail -n 40 "$log"; die "hostapd build failed (log: $log)"; }
(cd "$src/wpa_supplicant" && make -j"$jobs" V=1 eapol_test wpa_supplicant) \
	>>"$log" 2>&1 ||
	{ tail -n 40 "$log"; die "eapol_test build failed (log: $log)"; }
cp "$src/hostapd/hostapd" "$src/hostapd/hostapd_cli" "$src/wpa_supplicant/eapol_test" \
	"$src/wpa_supplicant/wpa_supplicant" "$bin/"
echo "$stamp" >"$work/stamp"
echo "built hostapd, eapol_test and wpa_supplicant in $bin"
echo "work: $work"
