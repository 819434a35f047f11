#!/bin/sh
# t/asan/hosts.sh -- the hosts under AddressSanitizer and UBSan: nginx
# (the upstream release from ../shared/upstream, built with
# -fsanitize=address,undefined) with the module and the core built the
# same way (build-asan/), running every t/nginx_*.sh, with the tools of
# build-asan as clients.  Among them: clients that disconnect while
# parked, HTTP/2 streams reset while parked (nginx_parked), reload and
# stop with lookups in flight (nginx_reload).  Each suite's TAP lines
# count, and one more check per suite: no sanitizer report from any
# process (reports go to files, nginx's workers included).
#
#   BUILD=/abs/build-asan sh t/asan/hosts.sh NGINX_TARBALL
#
# Ends with "N passed, N failed".  Leak checking is off here: nginx does
# not free its cycle at exit; the core's leaks are checked by the core
# tests under ASan (make test-asan runs both).  ODR checking is off too:
# nginx and every dynamic module define ngx_module_names, by design.
top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:?BUILD must name the sanitizer build directory}
tarball=${1:?usage: hosts.sh NGINX_TARBALL}
. "$top/t/lib/tap.sh"

SAN="-fsanitize=address,undefined -fno-omit-frame-pointer"
out=$BUILD/$(basename "$tarball" .tar.gz)
if ! NGX_CC_OPT="-O1 -g $SAN" NGX_LD_OPT="$SAN" \
    BUILD=$BUILD sh "$top/t/tools/build_nginx.sh" "$tarball" \
    >"$BUILD/asan-nginx-build.log" 2>&1; then
	bail "nginx built with ASan/UBSan" "$(tail -n 20 "$BUILD/asan-nginx-build.log")"
fi
ok 0 "nginx $(basename "$out") built with ASan/UBSan"

D=$(mktemp -d /tmp/dance-asan.XXXXXX)
. "$top/t/lib/world.sh"
world_use "$D/world" || bail "the DNS test world starts"
# checks that cannot hold under ASan (RSS, libfaketime's LD_PRELOAD
# before ASan's runtime) skip themselves when this is set
DANCE_SANITIZED=1
export WORLD_ENV BUILD DANCE_SANITIZED

for s in "$top"/t/nginx_*.sh; do
	name=$(basename "$s" .sh)
	rm -rf "$D/san"
	mkdir -p "$D/san"
	ASAN_OPTIONS="detect_leaks=0:detect_odr_violation=0:log_path=$D/san/asan" \
	UBSAN_OPTIONS="print_stacktrace=1:log_path=$D/san/ubsan" \
	NGINX_BIN=$out/nginx NGINX_MODULE=$out/ngx_http_dance_module.so \
		timeout 900 sh "$s" >"$D/$name.log" 2>&1
	rc=$?
	p=$(grep '^ok ' "$D/$name.log" | grep -vc '# SKIP')
	f=$(grep -c '^not ok ' "$D/$name.log")
	[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	T_N=$((T_N + p + f))
	T_FAIL=$((T_FAIL + f))
	echo "# $name under ASan/UBSan: $p passed, $f failed"
	[ "$f" -gt 0 ] && grep '^not ok' "$D/$name.log" | head -n 10 | sed 's/^/#   /'
	reports=$(ls "$D/san" 2>/dev/null)
	[ -z "$reports" ]
	ok $? "$name: no AddressSanitizer/UBSan report" \
		"$(cat "$D"/san/* 2>/dev/null | head -n 40)"
done

world_stop
[ "$T_FAIL" -eq 0 ] && rm -rf "$D"
done_testing
