#!/bin/sh
# world_selftest.sh -- self-test of the offline DNSSEC test world.
#
# Starts t/world/world.sh in a temporary directory and checks, with BIND's
# delv/dig (bind9-dnsutils) and ldns-dane (ldnsutils) as independent
# tools, that every name gives its intended outcome: TLSA records fully
# validated and equal to what the certificates imply, bogus, insecure,
# NXDOMAIN, NODATA, timeout, SERVFAIL, late answers; that the query log
# counts; that the proxies survive garbage; and that stop leaves nothing
# behind.  TAP output, closing line "N passed, N failed"; exit 1 on
# failure.  The world is always stopped; its directory is kept (and
# named) when a check failed.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
WORLD="sh $HERE/world/world.sh"
PATH=$PATH:/usr/sbin:/sbin
export PATH

TMP=$(mktemp -d /tmp/world_selftest.XXXXXX) || exit 1
W=$TMP/w
OUT=$TMP/out

. "$HERE/lib/tap.sh"
T_DIAG_FILE=$OUT

# check DESC CMD...: the command's output goes to $OUT for diagnostics.
check() {
	desc=$1
	shift
	"$@" >"$OUT" 2>&1
	ok $? "$desc"
}

finish() {
	trap - EXIT INT TERM
	$WORLD stop "$W" >/dev/null 2>&1
	if [ "$T_FAIL" -eq 0 ]; then
		rm -rf "$TMP"
	else
		echo "# world directory kept: $TMP"
	fi
	done_testing
	exit $?
}
trap finish EXIT
: >"$OUT"
trap ': >"$OUT"; ok 1 "interrupted"; exit 1' INT TERM

for tool in dig:bind9-dnsutils delv:bind9-dnsutils ldns-dane:ldnsutils \
	openssl:openssl; do
	if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
		echo "${tool%%:*} not found: apt-get install ${tool#*:}" >"$OUT"
		ok 1 "tool ${tool%%:*} present"
		exit 1
	fi
done

now_ms() {
	date +%s%3N
}

# --- start ------------------------------------------------------------------

t0=$(now_ms)
$WORLD start "$W" >"$OUT" 2>&1
rc=$?
t1=$(now_ms)
ok $rc "world starts"
[ $rc -eq 0 ] || exit 1
ms=$((t1 - t0))
echo "# start took $ms ms ($(grep '^phase' "$W/setup.log" | tr '\n' ' '))"
[ $ms -lt 5000 ]
ok $? "start-to-ready under 5 s ($ms ms)"

vars_ok() {
	for v in WORLD_DIR WORLD_UNBOUND_CONF WORLD_TA WORLD_CERTS \
		WORLD_QUERYLOG WORLD_AUTH_PORT WORLD_PROXY_PORT \
		WORLD_LATE_PORT WORLD_SLOW_PORT WORLD_SERVFAIL_PORT; do
		grep -q "^$v=." "$W/env" || { echo "missing $v"; return 1; }
	done
}
check "env defines every WORLD_ variable" vars_ok
# shellcheck disable=SC1090,SC1091
. "$W/env"

conf_ok() {
	f=$WORLD_UNBOUND_CONF
	grep -q 'do-not-query-localhost: no' "$f" &&
	grep -q 'local-zone: "test." nodefault' "$f" || return 1
	if grep -E '^[[:space:]]*(trust-anchor|trust-anchor-file|auto-trust-anchor-file|trusted-keys-file):' "$f"; then
		echo "trust anchor inside unbound.conf"
		return 1
	fi
	for z in test. insecure.clients.test. late.clients.test. \
		slow.clients.test. servfail.clients.test.; do
		grep -q "name: \"$z\"" "$f" || { echo "no stub $z"; return 1; }
	done
}
check "unbound.conf has the stub-zones and nodefault" conf_ok

grep -qE '^test\.[[:space:]]+[0-9]+[[:space:]]+IN[[:space:]]+DS[[:space:]]+[0-9]+ 13 2 [0-9a-f]{64}$' \
	"$WORLD_TA"
ok $? "trust anchor is a DS record for test."

$WORLD start "$W" >"$OUT" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "already running" "$OUT" && $WORLD status "$W"
ok $? "second start on a running world fails clearly, world untouched"

# --- certificates ---------------------------------------------------------

C=$WORLD_CERTS
certs_ok() {
	for f in ee311 ee312 full ee301 expired devca sensor7 nosan pkixca \
		pkixee pkixta rollold rollnew other server; do
		[ -s "$C/$f.crt" ] && [ -s "$C/$f.key" ] ||
			{ echo "missing $f"; return 1; }
		openssl x509 -in "$C/$f.crt" -noout -text |
			grep -q 'ASN1 OID: prime256v1' ||
			{ echo "$f not P-256"; return 1; }
	done
	for f in sensor7 nosan pkixee pkixta; do
		[ "$(grep -c 'BEGIN CERTIFICATE' "$C/$f.chain.pem")" = 2 ] ||
			{ echo "bad chain $f"; return 1; }
	done
}
check "all certs present, ECDSA P-256, chains of two" certs_ok

check "sensor7 is a devca-issued client cert" \
	openssl verify -CAfile "$C/devca.crt" -purpose sslclient "$C/sensor7.crt"
check "pkixee is a pkixca-issued client cert" \
	openssl verify -CAfile "$C/pkixca.crt" -purpose sslclient "$C/pkixee.crt"
san_ok() {
	openssl x509 -in "$C/$1.crt" -noout -ext subjectAltName |
		grep -q "DNS:$2\$"
}
check "sensor7 SAN is sensor7._device.clients.test" \
	san_ok sensor7 sensor7._device.clients.test
check "nosan SAN is other.example" san_ok nosan other.example
expired_ok() {
	! openssl x509 -in "$C/expired.crt" -noout -checkend 0 &&
	openssl x509 -in "$C/expired.crt" -noout -enddate | grep -q 2021 &&
	openssl x509 -in "$C/ee311.crt" -noout -checkend 86400
}
check "expired cert ended in 2021, ee311 is valid" expired_ok

# --- DNSSEC outcomes (delv validates on its own) ---------------------------

delv_q() {
	delv @127.0.0.1 -p "$WORLD_PROXY_PORT" -a "$WORLD_TA_BIND" +root=test. \
		"$@" 2>&1
}

# Normalised TLSA rdata ("u s m hex", sorted) from delv/ldns-dane output.
rdata() {
	awk '$4 == "TLSA" { h = ""; for (i = 8; i <= NF; i++) h = h $i
		print $5, $6, $7, tolower(h) }' | sort
}

# expect NAME then ldns-dane argument groups "OPTS|CERTFILE|U S M"
tlsa_ok() {
	name=$1
	shift
	delv_q "$name" TLSA >"$TMP/delv"
	cat "$TMP/delv"
	grep -q '^; fully validated' "$TMP/delv" || return 1
	: >"$TMP/want"
	for spec in "$@"; do
		opts=${spec%%|*}
		rest=${spec#*|}
		# shellcheck disable=SC2086
		ldns-dane $opts -c "$C/${rest%%|*}" create "$name" 443 \
			${rest#*|} >>"$TMP/want" || return 1
	done
	rdata <"$TMP/want" >"$TMP/want.n"
	rdata <"$TMP/delv" >"$TMP/got.n"
	echo "want:"; cat "$TMP/want.n"; echo "got:"; cat "$TMP/got.n"
	[ -s "$TMP/got.n" ] && cmp -s "$TMP/want.n" "$TMP/got.n"
}

check "ee311 TLSA 3 1 1 fully validated, matches ee311.crt" \
	tlsa_ok ee311.clients.test "|ee311.crt|3 1 1"
check "ee312 TLSA 3 1 2 fully validated, matches ee312.crt" \
	tlsa_ok ee312.clients.test "|ee312.crt|3 1 2"
check "full TLSA 3 1 0 fully validated, matches full.crt" \
	tlsa_ok full.clients.test "|full.crt|3 1 0"
check "ee301 TLSA 3 0 1 fully validated, matches ee301.crt" \
	tlsa_ok ee301.clients.test "|ee301.crt|3 0 1"
check "expired TLSA 3 1 1 fully validated, matches expired.crt" \
	tlsa_ok expired.clients.test "|expired.crt|3 1 1"
check "sensor7._device wildcard TLSA 2 0 1 of devca, validated" \
	tlsa_ok sensor7._device.clients.test "-n|sensor7.chain.pem|2 0 1"
check "nosan._device wildcard TLSA 2 0 1 of devca, validated" \
	tlsa_ok nosan._device.clients.test "-n|nosan.chain.pem|2 0 1"
check "pkix-ee TLSA 1 1 1 of pkixee, validated" \
	tlsa_ok pkix-ee.clients.test "-f $C/pkixca.crt|pkixee.chain.pem|1 1 1"
check "pkix-ta TLSA 0 0 1 of pkixca, validated" \
	tlsa_ok pkix-ta.clients.test "-f $C/pkixca.crt|pkixta.chain.pem|0 0 1"
check "rollover has three TLSA (old 311, new 311, new 312), validated" \
	tlsa_ok rollover.clients.test "|rollold.crt|3 1 1" \
	"|rollnew.crt|3 1 1" "|rollnew.crt|3 1 2"

bogus_ok() {
	delv_q bogus.clients.test TLSA >"$TMP/delv"
	cat "$TMP/delv"
	grep -q 'RRSIG failed to verify' "$TMP/delv" &&
	! grep -q 'fully validated' "$TMP/delv" &&
	dig +cd +dnssec +norec @127.0.0.1 -p "$WORLD_PROXY_PORT" \
		bogus.clients.test TLSA | grep -q 'RRSIG	TLSA'
}
check "bogus TLSA is served with its RRSIG but is bogus" bogus_ok

insecure_ok() {
	delv_q x.insecure.clients.test TLSA >"$TMP/delv"
	cat "$TMP/delv"
	grep -q '^; unsigned answer' "$TMP/delv" &&
	[ "$(rdata <"$TMP/delv" | cut -d' ' -f1-3)" = "3 1 1" ]
}
check "x.insecure.clients.test TLSA is an unsigned (insecure) answer" \
	insecure_ok

nx_ok() {
	delv_q nx.clients.test TLSA >"$TMP/delv"
	cat "$TMP/delv"
	grep -q 'ncache nxdomain' "$TMP/delv" &&
	grep -q 'negative response, fully validated' "$TMP/delv" &&
	dig +norec @127.0.0.1 -p "$WORLD_PROXY_PORT" nx.clients.test TLSA |
		grep -q 'status: NXDOMAIN'
}
check "nx.clients.test is a validated NXDOMAIN" nx_ok

nodata_ok() {
	delv_q nodata.clients.test TLSA >"$TMP/delv"
	cat "$TMP/delv"
	grep -q 'ncache nxrrset' "$TMP/delv" &&
	grep -q 'negative response, fully validated' "$TMP/delv" &&
	dig +norec +short @127.0.0.1 -p "$WORLD_PROXY_PORT" \
		nodata.clients.test A | grep -q '^127.0.0.1$'
}
check "nodata.clients.test TLSA is a validated NODATA (A exists)" nodata_ok

wrong_ta_ok() {
	# the same DS with the first digest digit changed
	awk '/static-ds/ { i = index($0, "\""); c = substr($0, i + 1, 1)
		$0 = substr($0, 1, i) (c == "0" ? "1" : "0") substr($0, i + 2) }
		{ print }' "$WORLD_TA_BIND" >"$TMP/wrong.ta"
	cat "$TMP/wrong.ta"
	cmp -s "$WORLD_TA_BIND" "$TMP/wrong.ta" && return 1
	delv @127.0.0.1 -p "$WORLD_PROXY_PORT" -a "$TMP/wrong.ta" +root=test. \
		ee311.clients.test TLSA >"$TMP/delv" 2>&1
	cat "$TMP/delv"
	grep -q 'resolution failed' "$TMP/delv" &&
	! grep -q 'fully validated' "$TMP/delv"
}
check "negative control: a wrong trust anchor does not validate" wrong_ta_ok

# --- proxies ---------------------------------------------------------------

slow_ok() {
	dig +time=1 +tries=1 +norec @127.0.0.1 -p "$WORLD_SLOW_PORT" \
		x.slow.clients.test TLSA >"$TMP/dig" 2>&1
	rc=$?
	cat "$TMP/dig"
	[ $rc -eq 9 ] && grep -q 'timed out' "$TMP/dig"
}
check "x.slow.clients.test times out (drop proxy)" slow_ok

servfail_ok() {
	dig +norec +time=2 +tries=1 $1 @127.0.0.1 -p "$WORLD_SERVFAIL_PORT" \
		x.servfail.clients.test TLSA >"$TMP/dig" 2>&1
	cat "$TMP/dig"
	grep -q 'status: SERVFAIL' "$TMP/dig" &&
	grep -q 'QUERY: 1, ANSWER: 0' "$TMP/dig"
}
check "x.servfail.clients.test gives SERVFAIL (UDP)" servfail_ok +notcp
check "x.servfail.clients.test gives SERVFAIL (TCP)" servfail_ok +tcp

# dig's own "Query time" (send to answer), not wall-clock time: process
# start-up on a loaded machine must not count.
qtime() {
	sed -n 's/^;; Query time: \([0-9]*\) msec$/\1/p' "$1"
}

late_ok() {
	dig +norec +time=3 +tries=1 @127.0.0.1 -p "$WORLD_LATE_PORT" \
		dev.late.clients.test TLSA >"$TMP/dig" 2>&1
	cat "$TMP/dig"
	t=$(qtime "$TMP/dig")
	grep -q 'ANSWER: 1,' "$TMP/dig" && [ -n "$t" ] && [ "$t" -ge 700 ] &&
		[ "$t" -lt 2500 ]
}
check "dev.late.clients.test answers after >= 700 ms" late_ok

late_parallel_ok() {
	for i in 1 2 3 4; do
		dig +norec +time=5 +tries=1 @127.0.0.1 -p "$WORLD_LATE_PORT" \
			dev.late.clients.test TLSA >"$TMP/late.$i" 2>&1 &
	done
	wait
	# handled one after the other, the last would wait 3.2 s
	for i in 1 2 3 4; do
		t=$(qtime "$TMP/late.$i")
		echo "query $i: ${t:-no answer} ms"
		grep -q 'ANSWER: 1,' "$TMP/late.$i" && [ -n "$t" ] &&
			[ "$t" -ge 700 ] && [ "$t" -lt 1600 ] || return 1
	done
}
check "late proxy keeps several queries in flight" late_parallel_ok

tcp_ok() {
	dig +tcp +norec +short @127.0.0.1 -p "$WORLD_PROXY_PORT" \
		full.clients.test TLSA | grep -q '^3 1 0 '
}
check "forward proxy relays over TCP" tcp_ok
check "late proxy relays over TCP" sh -c "dig +tcp +norec +short \
	@127.0.0.1 -p $WORLD_LATE_PORT dev.late.clients.test TLSA | grep -q '^3 1 1 '"

# --- query log --------------------------------------------------------------

count() {
	$WORLD count "$W" "$@"
}
counts_ok() {
	c1=$(count x.slow.clients.test)
	c2=$(count dev.late.clients.test TLSA)
	c3=$(count EE311.Clients.Test. tlsa)
	c4=$(count test DNSKEY)
	c5=$(count never.clients.test)
	c6=$(count nodata.clients.test A)
	echo "slow=$c1 late=$c2 ee311=$c3 dnskey=$c4 never=$c5 nodata/A=$c6"
	# late: 1 + 4 parallel + 1 TCP
	[ "$c1" = 1 ] && [ "$c2" = 6 ] && [ "$c3" -ge 1 ] &&
	[ "$c4" -ge 1 ] && [ "$c5" = 0 ] && [ "$c6" = 1 ]
}
check "query log counts (exact for slow, late, nodata/A; none for unused)" \
	counts_ok
log_format_ok() {
	# "qname qtype": lower-case, no trailing dot, one query per line
	! grep -v -E '^([a-z0-9_*-]+(\.[a-z0-9_*-]+)*|\.) [a-z0-9]+$' \
		"$WORLD_QUERYLOG"
}
check "query log lines are 'qname qtype', lower-case" log_format_ok
clearlog_ok() {
	$WORLD clearlog "$W" && [ ! -s "$WORLD_QUERYLOG" ] &&
	dig +norec +short @127.0.0.1 -p "$WORLD_PROXY_PORT" \
		ee301.clients.test TLSA >/dev/null &&
	[ "$(count ee301.clients.test)" = 1 ]
}
check "clearlog empties the log, proxies keep logging" clearlog_ok

# --- robustness ---------------------------------------------------------------

garbage() {
	# Random datagrams, a short header, a header with QR set, a
	# compression pointer as qname, and junk / stalled TCP streams.
	for p in $WORLD_PROXY_PORT $WORLD_LATE_PORT $WORLD_SLOW_PORT \
		$WORLD_SERVFAIL_PORT; do
		bash -c '
		p=$1
		for i in $(seq 1 50); do
			head -c $((i * 13)) /dev/urandom >/dev/udp/127.0.0.1/$p
		done
		printf "\001\002\000" >/dev/udp/127.0.0.1/$p
		printf "\001\002\200\000\000\001\000\000\000\000\000\000\000\000\001\000\001" >/dev/udp/127.0.0.1/$p
		printf "\001\002\000\000\000\001\000\000\000\000\000\000\300\014\000\001\000\001" >/dev/udp/127.0.0.1/$p
		printf "\001\002\000\000\000\001\000\000\000\000\000\000\077abc" >/dev/udp/127.0.0.1/$p
		for i in 1 2 3; do
			head -c 5000 /dev/urandom >/dev/tcp/127.0.0.1/$p
		done
		exec 3<>/dev/tcp/127.0.0.1/$p
		printf "\000\100ab" >&3
		' sh "$p" 2>/dev/null
	done
	sleep 0.2
	while read -r pid name; do
		kill -0 "$pid" || { echo "$name died"; return 1; }
	done <"$WORLD_DIR/pids"
	dig +norec +short +time=2 @127.0.0.1 -p "$WORLD_PROXY_PORT" \
		ee311.clients.test TLSA | grep -q '^3 1 1 ' &&
	dig +norec +time=2 +tries=1 @127.0.0.1 -p "$WORLD_SERVFAIL_PORT" \
		a.servfail.clients.test TLSA | grep -q SERVFAIL
}
check "proxies survive garbage (UDP and TCP) and still answer" garbage

# --- stop ------------------------------------------------------------------

pids=$(awk '{ print $1 }' "$WORLD_DIR/pids")
$WORLD stop "$W" >"$OUT" 2>&1
ok $? "stop succeeds"
stopped_ok() {
	for pid in $pids; do
		if [ -r "/proc/$pid/stat" ] &&
			[ "$(sed 's/.*) //' "/proc/$pid/stat" | cut -c1)" != Z ]; then
			echo "pid $pid still alive"
			return 1
		fi
	done
	if command -v ss >/dev/null; then
		for port in $WORLD_AUTH_PORT $WORLD_PROXY_PORT $WORLD_LATE_PORT \
			$WORLD_SLOW_PORT $WORLD_SERVFAIL_PORT; do
			if { ss -Hlnu "sport = :$port"
				ss -Hlnt "sport = :$port"; } | grep -q .; then
				echo "port $port still bound"
				return 1
			fi
		done
	fi
	# no process of this world left, children included
	command -v ps >/dev/null || return 0
	! ps -eo pid=,args= | awk -v w="$W/" 'index($0, w) && $2 != "awk"' |
		grep .
}
check "stop leaves no process and no bound port" stopped_ok

restart_ok() {
	$WORLD start "$W" && $WORLD status "$W" &&
	delv @127.0.0.1 -p "$(grep WORLD_PROXY_PORT= "$W/env" | cut -d= -f2)" \
		-a "$W/ta.bind" +root=test. ee311.clients.test TLSA |
		grep -q 'fully validated' &&
	$WORLD stop "$W" && ! $WORLD status "$W"
}
check "a stopped world's directory can be started again" restart_ok
