#!/bin/sh
# t/fuzz/run.sh SECONDS -- build and run every libFuzzer target.
#
# Expects $BUILD/libdance.a built with clang
# -fsanitize=fuzzer-no-link,address,undefined (see "make fuzz").  Each
# t/fuzz/fuzz_NAME.c is linked with -fsanitize=fuzzer,address,undefined
# and run for SECONDS with the seeds in t/fuzz/corpus/fuzz_NAME/ (read
# only; new inputs go to $BUILD/fuzz/corpus/).  A target passes when it
# runs the whole time without a crash, leak, timeout or UBSan report.
# TAP lines (t/lib/tap.sh), then "N passed, N failed"; exit status 1 if
# any failed.

SECONDS_EACH=${1:-20}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$TOP/build-fuzz}
FUZZ_CC=${FUZZ_CC:-clang}
LIB=$BUILD/libdance.a
OUT=$BUILD/fuzz
LIBS="-lunbound -lpcre2-8 -lssl -lcrypto -lpthread"
. "$TOP/t/lib/tap.sh"

mkdir -p "$OUT" || exit 1
[ -f "$LIB" ] || bail "$LIB built (run 'make fuzz')"

# Recoverable UBSan checks (the library is built without
# -fno-sanitize-recover) must still stop the run.
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS ASAN_OPTIONS

for src in "$HERE"/fuzz_*.c; do
	t=$(basename "$src" .c)
	bin=$OUT/$t
	log=$OUT/$t.log
	if ! $FUZZ_CC -g -O1 -D_GNU_SOURCE -Wall -Wextra \
	    -fsanitize=fuzzer,address,undefined \
	    -I"$TOP/common/include" -I"$TOP/common/src" \
	    -o "$bin" "$src" "$LIB" $LIBS >"$OUT/$t.build.log" 2>&1; then
		ok 1 "$t builds" "$(tail -n 20 "$OUT/$t.build.log")"
		continue
	fi
	mkdir -p "$OUT/corpus/$t"
	"$bin" -max_total_time="$SECONDS_EACH" -timeout=10 \
	    -print_final_stats=1 -artifact_prefix="$OUT/$t-" \
	    "$OUT/corpus/$t" "$HERE/corpus/$t" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	[ $rc -eq 0 ] && ! grep -q 'runtime error:' "$log"
	ok $? "$t: ${runs:-?} runs in ${SECONDS_EACH}s" "exit $rc, see $log
$(grep -E 'ERROR|runtime error|Test unit written' "$log" | head -n 5)"
done
done_testing
