# t/lib/tap.sh -- TAP output for the shell tests, demos and benchmark
# self-checks.  Sourced.  One way to report a test:
#
#   ok STATUS DESC [DIAG]    STATUS 0 passes, anything else fails; DIAG
#                            (text) is printed as "#" lines on failure
#                            (first 30 lines)
#   is GOT WANT DESC         string equality, shows both on failure
#   like FILE ERE DESC       FILE has a line matching ERE (grep -E)
#   unlike FILE ERE DESC     FILE has none
#   skip DESC REASON         "ok N - DESC # SKIP REASON" (t/run.sh does
#                            not count it as passed)
#   diag TEXT                "# TEXT" lines
#   bail DESC [DIAG]         one failed test, the summary, exit 1 (for
#                            a missing prerequisite)
#   done_testing             closing "N passed, N failed" line; returns
#                            non-zero when anything failed
#
# T_DIAG_FILE: a file whose head is shown under a failed ok without DIAG
# (e.g. the output of the command just checked).
# Counters: T_N (tests so far), T_FAIL (failed), T_SKIP (skipped).
# Sourcing it twice does not reset them.

if [ -z "${T_TAP:-}" ]; then
T_TAP=1
T_N=0
T_FAIL=0
T_SKIP=0

ok() {
	T_N=$((T_N + 1))
	if [ "$1" -eq 0 ] 2>/dev/null; then
		echo "ok $T_N - $2"
	else
		T_FAIL=$((T_FAIL + 1))
		echo "not ok $T_N - $2"
		if [ -n "${3:-}" ]; then
			diag "$3"
		elif [ -s "${T_DIAG_FILE:-}" ]; then
			diag "$(head -n 20 "$T_DIAG_FILE")"
		fi
	fi
	return 0
}

diag() {
	printf '%s\n' "$*" | head -n 30 | sed 's/^/#   /'
}

is() {
	[ "$1" = "$2" ]
	ok $? "$3" "got: [$1]
want: [$2]"
}

like() {
	grep -Eq -- "$2" "$1" 2>/dev/null
	ok $? "$3" "no /$2/ in $(basename "$1"):
$(tail -n 15 "$1" 2>/dev/null)"
}

unlike() {
	! grep -Eq -- "$2" "$1" 2>/dev/null
	ok $? "$3" "$(grep -E -- "$2" "$1" 2>/dev/null | head -n 5)"
}

skip() {
	T_N=$((T_N + 1))
	T_SKIP=$((T_SKIP + 1))
	echo "ok $T_N - $1 # SKIP $2"
}

bail() {
	ok 1 "$1" "${2:-}"
	done_testing
	exit 1
}

done_testing() {
	echo "$((T_N - T_FAIL - T_SKIP)) passed, $T_FAIL failed"
	[ "$T_FAIL" -eq 0 ]
}
fi
