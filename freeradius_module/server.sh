#!/bin/sh
# freeradius_module/server.sh -- build a FreeRADIUS 3.2 release from its
# tarball, once, for testing rlm_dance against it.
#
#   BUILD=<abs build dir> sh freeradius_module/server.sh TARBALL
#
# TARBALL is freeradius-server-X.Y.Z.tar.gz (checked against SHA256SUMS
# when one lies next to it).  Unpacks into $BUILD/freeradius-X.Y.Z/src,
# installs into $BUILD/freeradius-X.Y.Z/prefix and prints that prefix on
# stdout.  Later runs print the prefix at once (stamp file).
#
# `make install` leaves out headers that radiusd.h includes (3.2.10:
# dlist.h), so modules are compiled against the tree's own headers,
# generated ones included: $BUILD/freeradius-X.Y.Z/include/freeradius
# points there.
#
# configure takes CFLAGS and LDFLAGS from the environment (t/asan/hosts.sh
# builds it with -fsanitize=... into build-asan/).
#
# Only what the tests use is built: the server, its libraries, rlm_eap
# with EAP-TLS, and the modules that have no configure switch (small).
# Every module with external dependencies is configured out.
set -eu

die() { echo "freeradius_module/server.sh: $*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
BUILD=${BUILD:-$top/build}
JOBS=${JOBS:-2}
tarball=${1:?usage: server.sh freeradius-server-X.Y.Z.tar.gz}

[ -f "$tarball" ] || die "$tarball: no such file"
tarball=$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")
version=$(basename "$tarball" | sed -n 's/^freeradius-server-\([0-9][0-9.]*[0-9]\)\.tar\.gz$/\1/p')
[ -n "$version" ] || die "$tarball: expected a name freeradius-server-X.Y.Z.tar.gz"
case $version in 3.2.*) ;; *) die "rlm_dance supports FreeRADIUS 3.2, not $version" ;; esac

OUT=$BUILD/freeradius-$version
SRC=$OUT/src
PREFIX=$OUT/prefix
stamp=$OUT/.installed

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$tarball" ] && [ -x "$PREFIX/sbin/radiusd" ] &&
    [ -f "$OUT/include/freeradius/radiusd.h" ]; then
	echo "$PREFIX"
	exit 0
fi

sums=$(dirname "$tarball")/SHA256SUMS
if [ -f "$sums" ]; then
	want=$(awk -v f="$(basename "$tarball")" '$2 == f || $2 == "*" f {print $1}' "$sums")
	[ -n "$want" ] || die "$(basename "$tarball") is not listed in $sums"
	got=$(sha256sum "$tarball" | cut -d' ' -f1)
	[ "$got" = "$want" ] || die "$tarball: SHA-256 $got, $sums says $want"
fi

rm -rf "$OUT"
mkdir -p "$SRC"
tar -xzf "$tarball" -C "$SRC" --strip-components=1
[ "$(cat "$SRC/VERSION")" = "$version" ] || die "$tarball unpacks to version $(cat "$SRC/VERSION"), not $version"

# Modules with a configure script; all but rlm_eap (and EAP-TLS, which
# has none) are switched off.
without=""
for m in $(cd "$SRC/src/modules" && ls -d rlm_*/configure rlm_eap/types/rlm_eap_*/configure 2>/dev/null); do
	m=$(basename "$(dirname "$m")")
	[ "$m" = rlm_eap ] || without="$without --without-$m"
done

log=$OUT/build.log
echo "building FreeRADIUS $version in $SRC (log: $log)" >&2
start=$(date +%s)
(
	cd "$SRC"
	# shellcheck disable=SC2086
	./configure --prefix="$PREFIX" --disable-developer --with-systemd=no \
		--without-collectdclient $without
	make -j"$JOBS"
	make install
) >"$log" 2>&1 || { tail -n 30 "$log" >&2; die "building FreeRADIUS $version failed (see $log)"; }
echo "FreeRADIUS $version built and installed in $(($(date +%s) - start)) s" >&2

[ -x "$PREFIX/sbin/radiusd" ] || die "no $PREFIX/sbin/radiusd after make install"
mkdir -p "$OUT/include"
ln -sfn ../src/src/include "$OUT/include/freeradius"
ln -sfn freeradius "$OUT/include/freeradius-devel"
echo "$tarball" >"$stamp"
echo "$PREFIX"
