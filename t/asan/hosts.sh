#!/bin/sh
# t/asan/hosts.sh -- the hosts under AddressSanitizer and UBSan, each
# built with -fsanitize=address,undefined against the core built the
# same way (build-asan/):
#   - nginx (the upstream release from ../shared/upstream) with the
#     module, running every t/nginx_*.sh, with the tools of build-asan
#     as clients.  Among them: clients that disconnect while parked,
#     HTTP/2 streams reset while parked (nginx_parked), reload and stop
#     with lookups in flight (nginx_reload).
#   - hostapd, eapol_test and wpa_supplicant of the hostap release
#     (../shared/upstream) with the DANCE series, running t/hostapd.sh.
#   - FreeRADIUS (the upstream 3.2 release) with rlm_dance, running
#     t/freeradius.sh (its clients are Debian's eapol_test, radsecproxy,
#     radclient: not sanitized, not ours).
# Each suite's TAP lines count, and one more check per suite: no
# sanitizer report from any process (reports go to files, nginx's
# workers and the hosts' forks included).
#
#   BUILD=/abs/build-asan sh t/asan/hosts.sh NGINX_TARBALL \
#       [HOSTAP_TARBALL [FREERADIUS_TARBALL]]
#
# A host whose tarball is not given (or missing) is one failed check.
# Ends with "N passed, N failed".  Leak checking is off for the host
# processes: nginx does not free its cycle at exit, FreeRADIUS and
# hostapd leave their own allocations to exit as well (and radiusd is
# stopped by a signal); the core's leaks are checked by the core tests
# under ASan (make test-asan runs both).  ODR checking is off too: nginx
# and every dynamic module define ngx_module_names, by design.
top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:?BUILD must name the sanitizer build directory}
tarball=${1:?usage: hosts.sh NGINX_TARBALL [HOSTAP_TARBALL [FREERADIUS_TARBALL]]}
hostap_tarball=${2:-}
fr_tarball=${3:-}
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

# run_suite NAME SCRIPT [VAR=VALUE ...]: SCRIPT with the VAR=VALUE words
# in its environment and every sanitizer report written under $D/san;
# its TAP lines count, plus one check that no report was written.
# UBSan reports go to the same files (UBSan alone would print to
# stderr, which the suites redirect to their own logs).
run_suite() {
	name=$1
	script=$2
	shift 2
	rm -rf "$D/san"
	mkdir -p "$D/san"
	env ASAN_OPTIONS="detect_leaks=0:detect_odr_violation=0:log_path=$D/san/asan" \
	    UBSAN_OPTIONS="print_stacktrace=1:log_path=$D/san/ubsan" \
	    "$@" timeout 900 sh "$script" >"$D/$name.log" 2>&1
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
}

for s in "$top"/t/nginx_*.sh; do
	run_suite "$(basename "$s" .sh)" "$s" \
		NGINX_BIN="$out/nginx" NGINX_MODULE="$out/ngx_http_dance_module.so"
done

# build_host HOST TARBALL LOG VAR=VALUE... SCRIPT: run a host's build
# script from TARBALL with the VAR=VALUE words in its environment, its
# output in LOG; a failure (or no TARBALL) is one failed check.
build_host() {
	bhost=$1
	btar=$2
	blog=$3
	shift 3
	if [ -z "$btar" ] || [ ! -f "$btar" ]; then
		ok 1 "$bhost built with ASan/UBSan" "no tarball (${btar:-none given})"
		return 1
	fi
	env "$@" >"$blog" 2>&1 && return 0
	ok 1 "$bhost built with ASan/UBSan" "$(tail -n 20 "$blog")"
	return 1
}

# hostapd: the series' build script passes EXTRA_CFLAGS and LDFLAGS to
# hostap's own Makefiles (they add EXTRA_CFLAGS to the .config's
# CFLAGS).  wpa_supplicant's eapol_test target builds with -Werror, and
# GCC's -Wformat-truncation misfires on vsnprintf(NULL, 0, ...) under
# -fsanitize: that one warning is not an error here.
hlog=$BUILD/asan-hostapd-build.log
if build_host hostapd "$hostap_tarball" "$hlog" \
    EXTRA_CFLAGS="-O1 -g $SAN -Wno-error=format-truncation" LDFLAGS="$SAN" \
    BUILD="$BUILD" HOSTAP="$hostap_tarball" sh "$top/hostapd_patch/build.sh"; then
	hwork=$(sed -n 's/^work: //p' "$hlog" | tail -n 1)
	ok 0 "hostapd $(basename "$hwork") built with ASan/UBSan"
	run_suite hostapd "$top/t/hostapd.sh" HOSTAPD_WORK="$hwork"
fi

# FreeRADIUS: its configure takes CFLAGS and LDFLAGS from the
# environment (freeradius_module/server.sh), rlm_dance takes EXTRA_CFLAGS
# and LDFLAGS (freeradius_module/build.sh).  The whole server is
# sanitized (not only the module): 3.2.10 runs t/freeradius.sh without a
# report of its own, so nothing is suppressed.
flog=$BUILD/asan-freeradius-build.log
if build_host "FreeRADIUS and rlm_dance" "$fr_tarball" "$flog" \
    CFLAGS="-O1 -g $SAN" EXTRA_CFLAGS="-O1 -g $SAN" LDFLAGS="$SAN" \
    BUILD="$BUILD" FR_TARBALL="$fr_tarball" sh "$top/freeradius_module/build.sh"; then
	fdir=$(sed -n 's/^built \(.*\)\/rlm_dance\.so for .*/\1/p' "$flog" | tail -n 1)
	ok 0 "FreeRADIUS $(basename "$fdir") and rlm_dance built with ASan/UBSan"
	run_suite freeradius "$top/t/freeradius.sh" \
		FR_PREFIX="$fdir/prefix" FR_RLM_DANCE="$fdir/rlm_dance.so"
fi

world_stop
[ "$T_FAIL" -eq 0 ] && rm -rf "$D"
done_testing
