#!/bin/sh
# ngx_dance_module/build.sh -- build ngx_http_dance_module.so for the
# installed nginx (Debian's nginx-dev: /usr/share/nginx/src + conf_flags).
#
#   BUILD=/abs/build sh ngx_dance_module/build.sh
#
# Needs $BUILD/libdance.a ("make" first).  Output:
# $BUILD/nginx/ngx_http_dance_module.so, loadable with load_module into
# /usr/sbin/nginx (same --with-compat signature).  The configured nginx
# tree is kept in $BUILD/nginx/src and only re-configured when the
# module's "config" file (ngx_dance_module/config) or the nginx-dev tree
# changed.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
NGINX_SRC=${NGINX_SRC:-/usr/share/nginx/src}
out=$BUILD/nginx
work=$out/src

die() {
	echo "ngx_dance_module/build.sh: $*" >&2
	exit 1
}

[ -f "$BUILD/libdance.a" ] || die "$BUILD/libdance.a missing (run make)"
[ -f "$NGINX_SRC/conf_flags" ] ||
	die "$NGINX_SRC/conf_flags missing (apt-get install nginx-dev)"
command -v bash >/dev/null || die "bash is needed to read conf_flags"

mkdir -p "$out"

stamp="$work/.dance-stamp"
want=$(cat "$top/ngx_dance_module/config" "$NGINX_SRC/conf_flags" | cksum)
if [ ! -f "$work/objs/Makefile" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]
then
	rm -rf "$work"
	cp -a "$NGINX_SRC" "$work"
	(
		cd "$work"
		DANCE_BUILD=$BUILD bash -c '. ./conf_flags &&
			./configure "${NGX_CONF_FLAGS[@]}" \
				--add-dynamic-module="$0"' "$top/ngx_dance_module"
	) >"$out/configure.log" 2>&1 ||
		{ tail -n 20 "$out/configure.log" >&2; die "configure failed"; }
	echo "$want" >"$stamp"
fi

# Always relink: libdance.a is not a make dependency of the module.
rm -f "$work/objs/ngx_http_dance_module.so"
make -s -C "$work" -f objs/Makefile modules >"$out/make.log" 2>&1 ||
	{ cat "$out/make.log" >&2; die "module build failed"; }
cp "$work/objs/ngx_http_dance_module.so" "$out/ngx_http_dance_module.so"
echo "built $out/ngx_http_dance_module.so"
