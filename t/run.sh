#!/bin/sh
# t/run.sh -- run the test suites and print one closing summary line.
#
#   sh t/run.sh [all|unit|core]
#     unit  cmocka unit tests only (no DNS)
#     core  unit + integration binaries (the set run under ASan)
#     all   core + every t/*.sh script (real servers, real clients), and
#           the runs listed in t/versions (a suite against another build
#           of its host, e.g. freeradius@3.2.10, nginx_basic@1.31.4)
#
# Integration tests get a fresh offline DNSSEC world (t/world/world.sh);
# its env file is passed as WORLD_ENV.  Each suite's own counts
# (cmocka summaries, TAP "ok"/"not ok" lines) are added up.
set -u
what=${1:-all}
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
export BUILD
cd "$top" || exit 2

pass=0
fail=0
skipped=0
failed_suites=""
logdir=$(mktemp -d /tmp/dance-test.XXXXXX)

# count_output FILE RC NAME: add the suite's passes and failures.
count_output() {
	f=$1 rc=$2 name=$3
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$f" |
		awk '{s+=$1} END {print s+0}')
	q=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$f" |
		awk '{s+=$1} END {print s+0}')
	# "ok N - ... # SKIP why" is neither a pass nor a failure
	tp=$(grep '^ok ' "$f" | grep -vc ' # SKIP')
	ts=$(grep -c '^ok .* # SKIP' "$f")
	tq=$(grep -c '^not ok ' "$f")
	p=$((p + tp)) q=$((q + tq))
	# A suite that died without reporting a failure still failed.
	if [ "$rc" -ne 0 ] && [ "$q" -eq 0 ]; then
		q=1
	fi
	pass=$((pass + p)) fail=$((fail + q))
	[ "$q" -gt 0 ] && failed_suites="$failed_suites $name"
	printf '%-28s %4d passed, %d failed%s (%d s)\n' "$name" "$p" "$q" \
		"$([ "$ts" -gt 0 ] && echo ", $ts skipped")" "$secs"
	skipped=$((skipped + ts))
}

run_suite() {
	name=$1
	shift
	out="$logdir/$name.log"
	t0=$(date +%s)
	"$@" >"$out" 2>&1
	rc=$?
	secs=$(($(date +%s) - t0))
	count_output "$out" "$rc" "$name"
	if [ "$rc" -ne 0 ] || [ -n "${VERBOSE:-}" ]; then
		sed 's/^/    | /' "$out" | grep -v '^    | ok ' | tail -n 40
	fi
}

for t in "$BUILD"/t/test_*; do
	[ -x "$t" ] || continue
	n=$(basename "$t")
	[ -f "t/unit/$n.c" ] || continue
	run_suite "$n" "$t"
done

if [ "$what" != unit ]; then
	world="$logdir/world"
	if ! sh t/world/world.sh start "$world" >"$logdir/world.log" 2>&1; then
		cat "$logdir/world.log"
		echo "0 passed, 1 failed (the DNS test world did not start)"
		exit 1
	fi
	# An interrupted run must not leave the world's servers behind.
	trap 'sh t/world/world.sh stop "$world" >/dev/null 2>&1' EXIT
	trap 'exit 130' INT TERM
	WORLD_ENV="$world/env"
	export WORLD_ENV
	for t in "$BUILD"/t/test_*; do
		[ -x "$t" ] || continue
		n=$(basename "$t")
		[ -f "t/integration/$n.c" ] || continue
		run_suite "$n" "$t"
	done
	if [ "$what" = all ]; then
		for s in t/*.sh; do
			case $s in t/run.sh|t/demo*.sh) continue ;; esac
			run_suite "$(basename "$s" .sh)" sh "$s"
		done
		# t/versions: suites again, against other builds of their host;
		# SCRIPT may be a pattern (t/nginx_*.sh), "*" in NAME is then
		# each script's name.
		while read -r label script vars <&3; do
			case $label in ''|'#'*) continue ;; esac
			for s in $script; do
				[ -f "$s" ] || continue
				n=$(basename "$s" .sh)
				# shellcheck disable=SC2086
				run_suite "$(printf '%s' "$label" | sed "s|\*|$n|")" \
					env $(printf '%s' "$vars" | sed "s|\$BUILD|$BUILD|g") sh "$s"
			done
		done 3<t/versions
	fi
fi

[ "$skipped" -gt 0 ] && echo "$skipped skipped (reasons: grep SKIP $logdir/*.log)"
[ -n "$failed_suites" ] && echo "failed suites:$failed_suites (logs in $logdir)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
