#!/bin/sh
# t/tools/build_nginx.sh -- build an upstream nginx release plus the
# DANCE module from a release tarball, once, for the nginx tests.
#
#   BUILD=/abs/build sh t/tools/build_nginx.sh TARBALL [SHA256SUMS]
#
# TARBALL is nginx-X.Y.Z.tar.gz (e.g. ../shared/upstream/nginx-1.31.4.tar.gz),
# checked against SHA256SUMS (default: the file next to it).  Output in
# $BUILD/nginx-X.Y.Z/: the binary `nginx` and `ngx_http_dance_module.so`.
# The configured tree stays in $BUILD/nginx-X.Y.Z/src and is only
# re-configured when the tarball or the module's "config" changed; the
# module is relinked every time (libdance.a is not a make dependency).
#
# Configured as a user builds it from source: --with-compat and SSL,
# nothing else (no --with-debug, no --with-threads), so the tests also
# run against an nginx without those flags.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$top/build}

die() {
	echo "build_nginx.sh: $*" >&2
	exit 1
}

tarball=${1:?usage: build_nginx.sh TARBALL [SHA256SUMS]}
[ -f "$tarball" ] || die "$tarball not found"
sums=${2:-$(dirname "$tarball")/SHA256SUMS}
[ -f "$BUILD/libdance.a" ] || die "$BUILD/libdance.a missing (run make)"

base=$(basename "$tarball" .tar.gz)
case $base in
nginx-[0-9]*) ;;
*) die "$tarball: not an nginx-X.Y.Z.tar.gz" ;;
esac
out=$BUILD/$base
work=$out/src

addon=$top/ngx_dance_module	# its nginx "config" file

want=$(cat "$tarball" "$addon/config" | cksum)
stamp=$out/.dance-stamp
mkdir -p "$out"
if [ ! -f "$work/objs/Makefile" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]
then
	[ -f "$sums" ] || die "$sums missing (cannot verify $tarball)"
	line=$(grep " $(basename "$tarball")\$" "$sums") ||
		die "$(basename "$tarball") not listed in $sums"
	(cd "$(dirname "$tarball")" && echo "$line" | sha256sum -c --quiet -) ||
		die "$tarball does not match $sums"
	rm -rf "$work"
	mkdir -p "$work"
	tar -xzf "$tarball" -C "$work" --strip-components=1
	# A git archive of the nginx repository keeps configure in auto/.
	[ -x "$work/configure" ] || cp "$work/auto/configure" "$work/configure"
	(
		cd "$work"
		DANCE_BUILD=$BUILD ./configure --with-compat \
			--with-http_ssl_module --with-http_v2_module \
			--add-dynamic-module="$addon"
	) >"$out/configure.log" 2>&1 ||
		{ tail -n 20 "$out/configure.log" >&2; die "configure failed"; }
	echo "$want" >"$stamp"
fi

# A failed build leaves no binary or module behind for the tests to run.
rm -f "$work/objs/ngx_http_dance_module.so" "$out/nginx" \
	"$out/ngx_http_dance_module.so"
make -s -C "$work" -f objs/Makefile binary modules >"$out/make.log" 2>&1 ||
	{ tail -n 40 "$out/make.log" >&2; die "nginx build failed"; }
cp "$work/objs/nginx" "$out/nginx"
cp "$work/objs/ngx_http_dance_module.so" "$out/ngx_http_dance_module.so"
echo "built $out/nginx and $out/ngx_http_dance_module.so"
