#!/bin/sh
# t/dance_tools.sh -- dance-tlsa and dance-check against the DNS world.
#
#   WORLD_ENV=DIR/env sh t/dance_tools.sh     (t/run.sh sets WORLD_ENV)
#
# Without WORLD_ENV a private world is started and stopped.  Output is
# TAP ("ok N - ..." / "not ok N - ...") and a closing
# "N passed, N failed" line; exit status 0 only when all passed.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
TLSA=$BUILD/bin/dance-tlsa
CHECK=$BUILD/bin/dance-check
tmp=$(mktemp -d /tmp/dance_tools.XXXXXX)
. "$top/t/lib/world.sh"

cleanup() {
	world_stop
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
. "$top/t/lib/tap.sh"

world_use "$tmp/world" >"$tmp/world.out" ||
	bail "DNS world starts" "$(cat "$tmp/world.out")"

# the last tool's output is shown under a failed test
T_DIAG_FILE=$tmp/out

for b in "$TLSA" "$CHECK"; do
	if [ ! -x "$b" ]; then
		bail "$b not built"
	fi
done

# dance-check with the world's resolver settings; output in $tmp/out.
check() {
	"$CHECK" --ta "$WORLD_TA" --unbound-conf "$WORLD_UNBOUND_CONF" "$@" \
		>"$tmp/out" 2>&1
}

# expect_ok DESC ARGS...: authenticated, exit 0.
expect_ok() {
	d=$1
	shift
	check "$@"
	rc=$?
	if [ $rc -eq 0 ] && grep -q '^verdict: AUTHENTICATED' "$tmp/out"; then
		ok 0 "$d"
	else
		ok 1 "$d (exit $rc)"
	fi
}

# expect_fail DESC REGEX ARGS...: exit 1, verdict line matches REGEX.
expect_fail() {
	d=$1 re=$2
	shift 2
	check "$@"
	rc=$?
	if [ $rc -eq 1 ] && grep '^verdict: NOT authenticated' "$tmp/out" |
	    grep -Eqi "$re"; then
		ok 0 "$d"
	else
		ok 1 "$d (exit $rc, want 1 and /$re/)"
	fi
}

# expect_exit DESC RC REGEX CMD...: CMD exits RC, its output matches
# REGEX (extended, any case).
expect_exit() {
	d=$1 want=$2 re=$3
	shift 3
	"$@" >"$tmp/out" 2>&1
	rc=$?
	if [ $rc -eq "$want" ] && grep -Eqi "$re" "$tmp/out"; then
		ok 0 "$d"
	else
		ok 1 "$d (exit $rc)"
	fi
}

# Queries for NAME that reached the authoritative side so far.
count() {
	world_count "$1" 2>/dev/null || echo -1
}

# --- dance-tlsa ------------------------------------------------------

# The world's own record, from its zone file (no dig needed).
world_rr() {
	find "$WORLD_DIR" -name '*.zone' -exec cat {} + 2>/dev/null |
		awk -v o="$1" '($1 == o || $1 == o ".test.") && $0 !~ /RRSIG/ {
			for (i = 1; i <= NF; i++) if ($i == "TLSA") {
				print $(i+1), $(i+2), $(i+3), $(i+4); exit
			}
		}'
}

got=$("$TLSA" "$C/ee311.crt" 3 1 1 2>"$tmp/out")
want=$(world_rr ee311.clients)
if [ -n "$want" ] && [ "$got" = "ee311.clients.test. IN TLSA $want" ]; then
	ok 0 "dance-tlsa ee311 3 1 1 equals the world's zone record"
else
	echo "got: $got / zone: $want" >"$tmp/out"
	ok 1 "dance-tlsa ee311 3 1 1 equals the world's zone record"
fi

# Independently: the SPKI digests from openssl's command line.
spki=$(openssl x509 -in "$C/ee312.crt" -pubkey -noout |
	openssl pkey -pubin -outform DER)
h256=$(openssl x509 -in "$C/ee312.crt" -pubkey -noout |
	openssl pkey -pubin -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
h512=$(openssl x509 -in "$C/ee312.crt" -pubkey -noout |
	openssl pkey -pubin -outform DER | openssl dgst -sha512 -r | cut -d' ' -f1)
"$TLSA" "$C/ee312.crt" >"$tmp/out" 2>&1
if [ -n "$spki" ] && [ "$(cat "$tmp/out")" = "ee312.clients.test. IN TLSA 3 1 1 $h256
ee312.clients.test. IN TLSA 3 1 2 $h512" ]; then
	ok 0 "dance-tlsa default set for an EE cert: 3 1 1 and 3 1 2 (openssl agrees)"
else
	ok 1 "dance-tlsa default set for an EE cert: 3 1 1 and 3 1 2 (openssl agrees)"
fi

"$TLSA" --name '*._device.clients.test' "$C/devca.crt" >"$tmp/out" 2>&1
want=$(world_rr '*._device.clients')
if grep -qx "\*._device.clients.test. IN TLSA $want" "$tmp/out" &&
    [ "$(wc -l <"$tmp/out")" -eq 3 ]; then
	ok 0 "dance-tlsa CA cert adds 2 0 1, equal to the world's device record"
else
	ok 1 "dance-tlsa CA cert adds 2 0 1, equal to the world's device record"
fi

"$TLSA" "$C/full.crt" 3 1 0 >"$tmp/out" 2>&1
want=$(world_rr full.clients)
if [ -n "$want" ] && [ "$(cat "$tmp/out")" = "full.clients.test. IN TLSA $want" ]; then
	ok 0 "dance-tlsa 3 1 0 (full SPKI) equals the world's record"
else
	ok 1 "dance-tlsa 3 1 0 (full SPKI) equals the world's record"
fi

expect_exit "dance-tlsa: unreadable cert is an error" 1 "cannot read" \
	"$TLSA" "$tmp/missing.crt"
expect_exit "dance-tlsa: bad matching type is a usage error" 2 \
	"matching type" "$TLSA" "$C/ee311.crt" 3 1 7

# --- dance-check: authenticated ---------------------------------------

expect_ok "ee311 (3 1 1)" ee311.clients.test "$C/ee311.crt"
expect_ok "ee312 (3 1 2)" ee312.clients.test "$C/ee312.crt"
expect_ok "full (3 1 0)" full.clients.test "$C/full.crt"
expect_ok "ee301 (3 0 1)" ee301.clients.test "$C/ee301.crt"
expect_ok "sensor7 via DANE-TA wildcard (2 0 1) with chain" \
	sensor7._device.clients.test "$C/sensor7.crt" "$C/sensor7.chain.pem"
if grep -q "usage 2 (DANE-TA), depth 1" "$tmp/out"; then
	ok 0 "sensor7 matched as DANE-TA at depth 1"
else
	ok 1 "sensor7 matched as DANE-TA at depth 1"
fi
# RFC 7671 section 9 digest agility: if the set has 3 1 2 records, only
# those count for DANE-EE/SPKI.  The old key then authenticates only if
# its 3 1 2 is published too (the world may publish just its 3 1 1).
zone_all() {
	find "$WORLD_DIR" -name '*.zone' -exec cat {} + 2>/dev/null
}
old312=$("$TLSA" "$C/rollold.crt" 3 1 2 | awk '{ print $NF }')
if zone_all | grep -qi "$old312"; then
	expect_ok "rollover: old key (3 1 1 + 3 1 2 published)" \
		rollover.clients.test "$C/rollold.crt"
else
	echo "# rollover publishes 3 1 2 only for the new key: digest" \
		"agility hides the old key's 3 1 1"
	expect_fail "rollover: old key hidden by digest agility" \
		"no matching DANE TLSA" rollover.clients.test "$C/rollold.crt"
fi
expect_ok "rollover: new key" rollover.clients.test "$C/rollnew.crt"
if grep -q "3 records" "$tmp/out"; then
	ok 0 "rollover answer lists its 3 records"
else
	ok 1 "rollover answer lists its 3 records"
fi
expect_ok "expired cert under DANE-EE" expired.clients.test "$C/expired.crt"
expect_ok "PKIX-EE (1 1 1) with --ca-file" --ca-file "$C/pkixca.crt" \
	pkix-ee.clients.test "$C/pkixee.crt"
expect_ok "PKIX-TA (0 0 1) with --ca-file" --ca-file "$C/pkixca.crt" \
	pkix-ta.clients.test "$C/pkixta.crt" "$C/pkixta.chain.pem"
expect_ok "--allow subtree entry" --allow .clients.test \
	ee311.clients.test "$C/ee311.crt"

# --- dance-check: not authenticated ------------------------------------

expect_fail "other.crt as ee311: wrong key" "no matching DANE TLSA" \
	ee311.clients.test "$C/other.crt"
expect_fail "PKIX-EE without --ca-file" "trusted|issuer" \
	pkix-ee.clients.test "$C/pkixee.crt"
expect_fail "bogus" "bogus" bogus.clients.test "$C/ee311.crt"
expect_fail "insecure" "insecure" x.insecure.clients.test "$C/ee311.crt"
expect_fail "nxdomain" "nxdomain|does not exist" nx.clients.test \
	"$C/ee311.crt"
expect_fail "nodata" "nodata|no data|no TLSA" nodata.clients.test \
	"$C/ee311.crt"
t0=$(date +%s)
expect_fail "timeout (x.slow, --timeout 500)" "timeout|timed out" \
	--timeout 500 x.slow.clients.test "$C/ee311.crt"
t1=$(date +%s)
if [ $((t1 - t0)) -le 3 ]; then
	ok 0 "timeout bounded by --timeout ($((t1 - t0)) s)"
else
	ok 1 "timeout bounded by --timeout ($((t1 - t0)) s)"
fi
expect_fail "servfail" "servfail" x.servfail.clients.test "$C/ee311.crt"
expect_fail "nosan: DANE-TA name not in SAN" "name not in certificate SAN" \
	nosan._device.clients.test "$C/nosan.crt" "$C/nosan.chain.pem"

# Refused before DNS: no query may reach the authoritative side.
before=$(count ee301.clients.test)
expect_fail "disallowed name" "not allowed|allow-list" \
	--allow ee311.clients.test ee301.clients.test "$C/ee301.crt"
after=$(count ee301.clients.test)
if grep -q "not queried" "$tmp/out" && [ "$before" -ge 0 ] &&
    [ "$after" -eq "$before" ]; then
	ok 0 "disallowed name: zero TLSA queries ($before -> $after)"
else
	ok 1 "disallowed name: zero TLSA queries ($before -> $after)"
fi
# ... while an allowed one does reach it (the counter works).
before=$(count ee301.clients.test)
check ee301.clients.test "$C/ee301.crt"
after=$(count ee301.clients.test)
if [ "$before" -ge 0 ] && [ "$after" -gt "$before" ]; then
	ok 0 "allowed name: its TLSA query is counted ($before -> $after)"
else
	ok 1 "allowed name: its TLSA query is counted ($before -> $after)"
fi

expect_fail "bad name syntax" "bad name|invalid" 'bad..name.test' \
	"$C/ee311.crt"

# --- usage errors ------------------------------------------------------

# usage_err DESC REGEX ARGS...: dance-check exits 2, output matches.
usage_err() {
	d=$1 re=$2
	shift 2
	expect_exit "$d" 2 "$re" "$CHECK" "$@"
}
usage_err "dance-check: no arguments" "usage" 
usage_err "dance-check: --ext-type 0xFF01 refused" "renegotiation_info" \
	--ta "$WORLD_TA" --ext-type 0xFF01 ee311.clients.test "$C/ee311.crt"
usage_err "dance-check: --ext-type > 0xFFFF refused" "16 bits" \
	--ta "$WORLD_TA" --ext-type 70000 ee311.clients.test "$C/ee311.crt"
usage_err "dance-check: missing cert file" "cannot read" \
	--ta "$WORLD_TA" ee311.clients.test "$tmp/none.crt"
usage_err "dance-check: no trust anchor" "trust" \
	ee311.clients.test "$C/ee311.crt"

done_testing
