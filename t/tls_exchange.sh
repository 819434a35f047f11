#!/bin/sh
# tls_exchange.sh -- dane_clientid over real loopback TLS: dance-client
# against dance-server instances backed by the DNSSEC test world.
#
#   WORLD_ENV=DIR/env BUILD=/abs/build sh t/tls_exchange.sh
#
# (t/run.sh sets both; without WORLD_ENV a private world is started and
# stopped, BUILD defaults to ./build.)
#
# Each dance-server listens on a free loopback port (--listen
# 127.0.0.1:0, the port is read from its "listening on" line) and is
# always killed on exit.  Cold = first connection for a name on a fresh
# server (cache miss: verdict after the lookup, 403 on failure); warm =
# later connections (cache hit: verdict inside the handshake, failure is
# a handshake_failure alert).  The server log says which path was taken
# (via=lookup / via=handshake).  Output: TAP lines, then
# "N passed, N failed"; exit status 1 when anything failed.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
CLIENT=$BUILD/bin/dance-client
SERVER=$BUILD/bin/dance-server
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tls_exchange.XXXXXX")
PIDS=
SLOG=/dev/null
RC=0

cleanup() {
	for p in $PIDS; do
		kill "$p" 2>/dev/null
	done
	for p in $PIDS; do
		wait "$p" 2>/dev/null
	done
	world_stop
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
. "$top/t/lib/tap.sh"
. "$top/t/lib/world.sh"
world_use "$TMP/world" >"$TMP/world.out" ||
	bail "the DNS test world starts" "$(cat "$TMP/world.out")"

# check STATUS DESCRIPTION: STATUS is that of the test command just
# run; on failure show the last client run and the server's log tail.
check() {
	ok "$1" "$2" "client rc=$RC
stdout: $(cat "$TMP/out" 2>/dev/null)
stderr: $(cat "$TMP/err" 2>/dev/null)
server: $(tail -n 2 "$SLOG" 2>/dev/null)"
}

for f in "$CLIENT" "$SERVER"; do
	if [ ! -x "$f" ]; then
		bail "$f not built"
	fi
done

# start_server LABEL ARGS...: sets SPID, SPORT, SLOG, SSTATS.
start_server() {
	label=$1
	shift
	SLOG=$TMP/$label.log
	SSTATS=$TMP/$label.stats
	"$SERVER" --cert "$C/server.crt" --key "$C/server.key" \
		--listen 127.0.0.1:0 --ta "$WORLD_TA" \
		--unbound-conf "$WORLD_UNBOUND_CONF" --stats-file "$SSTATS" \
		"$@" 2>"$SLOG" &
	SPID=$!
	PIDS="$PIDS $SPID"
	SPORT=
	i=0
	while [ $i -lt 100 ]; do
		SPORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$SLOG")
		[ -n "$SPORT" ] && return 0
		kill -0 "$SPID" 2>/dev/null || break
		sleep 0.05
		i=$((i + 1))
	done
	bail "dance-server $label starts" "$(cat "$SLOG")"
}

# stop_server: SIGTERM; the server must exit 0 (a sanitizer build
# exits non-zero on leaks or errors, so this checks those too).
stop_server() {
	kill "$SPID" 2>/dev/null
	wait "$SPID" 2>/dev/null
	SRC=$?
	if [ "$SRC" -eq 0 ] && grep -q "signal 15, exiting" "$SLOG"; then
		ok 0 "dance-server $(basename "$SLOG" .log): clean exit on SIGTERM"
	else
		ok 1 "dance-server $(basename "$SLOG" .log): exit status $SRC" \
			"$(grep -v "^dance-server: conn=" "$SLOG" | tail -n 30)"
	fi
}

# client ARGS... (target appended): sets RC, output in $TMP/out, err.
client() {
	"$CLIENT" --io-timeout 20 "$@" "127.0.0.1:$SPORT" \
		>"$TMP/out" 2>"$TMP/err"
	RC=$?
}

# cert_of CERTNAME: --cert/--key options for a world certificate.
cert_of() {
	echo "--cert $C/$1.crt --key $C/$1.key"
}

out_has() {
	grep -q -- "$1" "$TMP/out"
}

err_has() {
	grep -q -- "$1" "$TMP/err"
}

# log_last NAME: the server's last log line for NAME.
log_last() {
	grep " name=$1 " "$SLOG" | tail -n 1
}

# success NAME USAGE VIA DESC: last client run authenticated as NAME.
success() {
	[ "$RC" -eq 0 ] && out_has "^HTTP/1.0 200 OK" &&
		out_has "DANCE-Status: SUCCESS" &&
		out_has "DANCE-Client-Id: $1" && out_has "DANCE-Usage: $2" &&
		log_last "$1" | grep -q "outcome=SUCCESS usage=$2 via=$3 "
	check $? "$4"
}

# refused_alert DESC: handshake_failure alert seen by the client.
refused_alert() {
	[ "$RC" -eq 1 ] && err_has "server refused: handshake failure" &&
		[ ! -s "$TMP/out" ]
	check $? "$1"
}

# refused_403 DESC: completed handshake, then 403 with FAILED status,
# without the reason (the peer learns it failed, not why).
refused_403() {
	[ "$RC" -eq 1 ] && out_has "^HTTP/1.0 403 Forbidden" &&
		out_has "^DANCE-Status: FAILED.$" && ! out_has "FAILED:"
	check $? "$1"
}

# refused_any DESC: either form of refusal.
refused_any() {
	[ "$RC" -eq 1 ] && { err_has "server refused: handshake failure" ||
		{ out_has "^HTTP/1.0 403 Forbidden" &&
		out_has "^DANCE-Status: FAILED.$"; }; }
	check $? "$1"
}

now_ms() {
	date +%s%3N
}

# ---------------------------------------------------------------------
# Tool basics
# ---------------------------------------------------------------------

"$CLIENT" --help >"$TMP/out" 2>"$TMP/err"
RC=$?
[ $RC -eq 0 ] && out_has "--zero-name" && out_has "TEST ONLY" &&
	out_has "NOT verified"
check $? "dance-client --help documents the options"

"$SERVER" --help >"$TMP/out" 2>"$TMP/err"
RC=$?
[ $RC -eq 0 ] && out_has "--legacy-san" && out_has "--ta FILE"
check $? "dance-server --help documents the options"

"$CLIENT" $(cert_of ee311) --name 'bad..name' 127.0.0.1:1 >"$TMP/out" 2>"$TMP/err"
RC=$?
[ $RC -eq 2 ] && err_has "--name 'bad..name'"
check $? "client: bad --name is a usage error (exit 2)"

"$CLIENT" --cert "$C/ee311.crt" --key "$TMP/nokey.pem" \
	--name ee311.clients.test 127.0.0.1:1 >"$TMP/out" 2>"$TMP/err"
RC=$?
[ $RC -eq 2 ] && err_has "nokey.pem"
check $? "client: unreadable key is a config error (exit 2)"

"$CLIENT" --cert "$C/ee311.crt" --key "$C/other.key" \
	--name ee311.clients.test 127.0.0.1:1 >"$TMP/out" 2>"$TMP/err"
RC=$?
[ $RC -eq 2 ] && err_has "does not fit"
check $? "client: key not matching the certificate (exit 2)"

"$SERVER" --cert "$C/server.crt" --key "$C/server.key" \
	--listen 127.0.0.1:0 --ta "$WORLD_TA" >"$TMP/out" 2>"$TMP/err"
RC=$?
[ $RC -eq 2 ] && err_has "allow"
check $? "server: no --allow is a config error (exit 2)"

"$SERVER" --cert "$C/server.crt" --key "$C/server.key" \
	--listen 127.0.0.1:0 --ta "$WORLD_TA" --allow '~(' \
	>"$TMP/out" 2>"$TMP/err"
RC=$?
[ $RC -eq 2 ] && err_has "--allow '~('"
check $? "server: bad --allow regex is a config error (exit 2)"

"$SERVER" --cert "$C/server.crt" --key "$C/server.key" \
	--listen 127.0.0.1:0 --allow .clients.test >"$TMP/out" 2>"$TMP/err"
RC=$?
[ $RC -eq 2 ] && err_has "trust"
check $? "server: no trust anchor is a config error (exit 2)"

# ---------------------------------------------------------------------
# Required mode, every usage, cold then warm
# ---------------------------------------------------------------------

start_server req --allow .clients.test --ca-file "$C/pkixca.crt"
REQ_STATS=$SSTATS

# draft -13 wire format, read by a parser we did not write (OpenSSL's
# trace): the CertificateRequest carries dane_clientid (0xFF44 = 65348)
# as a zero-length ClientName, the one octet 00.
timeout 10 openssl s_client -connect "127.0.0.1:$SPORT" -tls1_3 -trace \
	</dev/null >"$TMP/trace" 2>&1
sed -n '/CertificateRequest/,/^[A-Z]/p' "$TMP/trace" >"$TMP/cr"
grep -A1 'extension_type=UNKNOWN(65348), length=1$' "$TMP/cr" |
	grep -q '0000 - 00 '
check $? "CertificateRequest: dane_clientid is one octet 00 (openssl s_client -trace)"

# case CERT NAME USAGE [CHAIN]
for c in "ee311 ee311.clients.test 3" "ee312 ee312.clients.test 3" \
	"full full.clients.test 3" "ee301 ee301.clients.test 3" \
	"expired expired.clients.test 3" \
	"sensor7 sensor7._device.clients.test 2 sensor7.chain.pem" \
	"pkixee pkix-ee.clients.test 1 pkixee.chain.pem" \
	"pkixta pkix-ta.clients.test 0 pkixta.chain.pem" \
	"rollnew rollover.clients.test 3"
do
	set -- $c
	chain=
	[ $# -ge 4 ] && chain="--chain $C/$4"
	first=lookup
	client $(cert_of "$1") $chain --name "$2"
	success "$2" "$3" "$first" "$1 as $2: TLS 1.3, usage $3, cold ($first)"
	client $(cert_of "$1") $chain --name "$2"
	success "$2" "$3" handshake "$1 as $2: TLS 1.3, usage $3, warm (in handshake)"
done
# Rollover: the set holds 3 1 1 old, 3 1 1 new, 3 1 2 new.  RFC 7671
# section 9 digest agility (OpenSSL's DANE, both paths): with 3 1 2
# records present only those count for DANE-EE/SPKI, so the old key
# authenticates only if its own 3 1 2 is published as well.
old312=$(openssl x509 -in "$C/rollold.crt" -noout -pubkey |
	openssl pkey -pubin -outform DER | openssl dgst -sha512 -hex |
	awk '{ print $NF }')
client $(cert_of rollold) --name rollover.clients.test
if find "$WORLD_DIR" -name '*.zone' -exec cat {} + 2>/dev/null |
	tr -d ' \t' | grep -qi "$old312"; then
	success rollover.clients.test 3 handshake \
		"rollover: old key accepted next to the new one"
else
	echo "# the world publishes 3 1 2 only for the new key"
	refused_alert "rollover: old key's 3 1 1 hidden by digest agility (RFC 7671 9)"
	log_last rollover.clients.test | grep -q "no matching DANE TLSA"
	check $? "rollover: server logs the non-match for the old key"
fi

client $(cert_of ee311) --name ee311.clients.test --http /index.html \
	--header 'X-Test: 1'
[ "$RC" -eq 0 ] && out_has "^HTTP/1.0 200 OK" && out_has "DANCE-Status: SUCCESS"
check $? "--http with --header: request sent, 200, exit 0"

# Wrong key, warm: ee311's TLSA is cached, OpenSSL rejects in handshake.
client $(cert_of other) --name ee311.clients.test
refused_alert "wrong key (other.crt as ee311), warm: handshake_failure alert"
log_last ee311.clients.test | grep -q "outcome=REFUSED"
check $? "wrong key, warm: server logs REFUSED"

client $(cert_of ee311) --name ee311.clients.test --zero-name
refused_alert "zero-length ClientName: handshake_failure alert"

before=$(world_count notallowed-tlsx.test)
client $(cert_of ee311) --name notallowed-tlsx.test
refused_alert "name outside the allow-list: handshake_failure alert"
after=$(world_count notallowed-tlsx.test)
[ "$before" = 0 ] && [ "$after" = 0 ]
check $? "name outside the allow-list: no query reached the authoritative ($after)"
n=$(world_count ee311.clients.test)
[ "$n" -ge 1 ]
check $? "query counting works (ee311.clients.test: $n)"

client $(cert_of nosan) --chain "$C/nosan.chain.pem" --name nosan._device.clients.test
refused_403 "DANE-TA, name not in SAN (nosan), cold: 403"
client $(cert_of nosan) --chain "$C/nosan.chain.pem" --name nosan._device.clients.test
refused_alert "DANE-TA, name not in SAN (nosan), warm: handshake_failure alert"

client $(cert_of sensor7) --name sensor7._device.clients.test
refused_alert "DANE-TA without the CA in the client chain: handshake_failure alert"

for n in bogus.clients.test x.insecure.clients.test nx.clients.test \
	nodata.clients.test x.servfail.clients.test
do
	client $(cert_of ee311) --name "$n"
	refused_any "$n: refused (required mode)"
	log_last "$n" | grep -q "outcome=\(FAILED\|REFUSED\)"
	check $? "$n: server logs the failure"
done

# TLS 1.2 cannot carry the extension, and a server that requires DANCE
# must not negotiate it (draft -13): refused in the handshake.
client $(cert_of ee311) --name ee311.clients.test --tls1.2
[ "$RC" -eq 1 ] && err_has "server refused: protocol version" &&
	[ ! -s "$TMP/out" ]
check $? "TLS 1.2 (required mode): refused in the handshake (protocol_version)"
timeout 10 openssl s_client -connect "127.0.0.1:$SPORT" -tls1_2 \
	-cert "$C/ee311.crt" -key "$C/ee311.key" </dev/null >"$TMP/out" 2>"$TMP/err"
RC=$?
[ "$RC" -ne 0 ] && err_has "alert protocol version"
check $? "TLS 1.2 with openssl s_client (required mode): protocol_version alert"

# A TLS 1.3 client without any certificate: refused in the handshake
# (OpenSSL's TLS 1.3 alert for it, certificate_required).
# (stdin open for a second: the alert comes after the client's Finished)
sleep 1 | timeout 10 openssl s_client -connect "127.0.0.1:$SPORT" -tls1_3 \
	>"$TMP/out" 2>"$TMP/err"
err_has "alert certificate required" && ! out_has "DANCE-Status"
check $? "TLS 1.3 without a certificate (required mode): refused in the handshake"

# TLS 1.3 certificate without dane_clientid, DANCE required and no
# --legacy-san: the draft's handshake_failure.
client $(cert_of ee311) --no-ext
refused_alert "TLS 1.3 without dane_clientid (required mode): handshake_failure alert"
log_last - | grep -q "outcome=REFUSED .*reason=client sent no dane_clientid"
check $? "TLS 1.3 without dane_clientid: server logs REFUSED with the reason"

# A plain TLS 1.3 client (no DANCE support) with a certificate: the same.
openssl s_client -connect "127.0.0.1:$SPORT" -quiet -cert "$C/ee311.crt" \
	-key "$C/ee311.key" </dev/null >"$TMP/out" 2>"$TMP/err"
RC=$?
err_has "alert handshake failure" && ! out_has "DANCE-Status"
check $? "plain openssl s_client (TLS 1.3, certificate) in required mode: handshake_failure"

client $(cert_of ee311) --name ee311.clients.test --count 5
[ "$RC" -eq 0 ] && out_has "^5 connections, 5 ok, 0 failed" &&
	out_has "handshakes/s"
check $? "--count 5: five full handshakes, rate printed"

stop_server
grep -q "^queries [1-9]" "$REQ_STATS" &&
	grep -q "^connections [1-9]" "$REQ_STATS"
check $? "stats file written at exit ($(tr '\n' ' ' <"$REQ_STATS" 2>/dev/null))"

# ---------------------------------------------------------------------
# Cold failures on a fresh server
# ---------------------------------------------------------------------

start_server cold --allow .clients.test
client $(cert_of other) --name ee311.clients.test
refused_403 "wrong key (other.crt as ee311), cold: 403 after the lookup"
log_last ee311.clients.test | grep -q "outcome=FAILED usage=- via=lookup "
check $? "wrong key, cold: server logs FAILED via lookup"
stop_server

# ---------------------------------------------------------------------
# Optional mode: failures pass as unauthenticated, the body tells
# ---------------------------------------------------------------------

start_server opt --allow .clients.test --optional
client $(cert_of ee311) --name ee311.clients.test
success ee311.clients.test 3 lookup "optional mode: success still SUCCESS"
for n in bogus.clients.test x.insecure.clients.test nx.clients.test \
	x.servfail.clients.test
do
	client $(cert_of ee311) --name "$n" --http /
	[ "$RC" -eq 0 ] && out_has "^HTTP/1.0 200 OK" &&
		out_has "DANCE-Status: FAILED:" && out_has "DANCE-Client-Id: $n"
	check $? "$n, optional mode: 200 with FAILED status"
done
client $(cert_of other) --name ee311.clients.test --http /
[ "$RC" -eq 0 ] && out_has "^HTTP/1.0 200 OK" && out_has "DANCE-Status: FAILED:"
check $? "wrong key, optional mode (warm): 200 with FAILED status"
client $(cert_of other) --name ee311.clients.test
[ "$RC" -eq 1 ] && out_has "DANCE-Status: FAILED:" &&
	err_has "DANCE-Status: FAILED:"
check $? "raw mode: FAILED status gives exit 1 and the status line"
client $(cert_of ee311) --name ee311.clients.test --tls1.2 --http /
[ "$RC" -eq 0 ] && out_has "^HTTP/1.0 200 OK" && out_has "DANCE-Status: NONE"
check $? "TLS 1.2, optional mode: 200 NONE"
client $(cert_of ee311) --no-ext --http /
[ "$RC" -eq 0 ] && out_has "^HTTP/1.0 200 OK" && out_has "DANCE-Status: NONE"
check $? "TLS 1.3 without dane_clientid, optional mode: 200 NONE"
openssl s_client -connect "127.0.0.1:$SPORT" -quiet </dev/null \
	>"$TMP/out" 2>"$TMP/err"
RC=$?
out_has "^HTTP/1.0 200 OK" && out_has "DANCE-Status: NONE" &&
	log_last - | grep -q "outcome=NONE .*reason=no client certificate"
check $? "openssl s_client without a certificate, optional mode: 200 NONE"
stop_server

# ---------------------------------------------------------------------
# TLS 1.2 with --legacy-san: the SAN dNSName stands in for ClientName
# ---------------------------------------------------------------------

start_server legacy --allow .clients.test --legacy-san
client $(cert_of sensor7) --chain "$C/sensor7.chain.pem" \
	--name sensor7._device.clients.test --tls1.2
success sensor7._device.clients.test 2 legacy-san \
	"TLS 1.2 + --legacy-san: sensor7 authenticated via its SAN (DANE-TA)"
client $(cert_of ee311) --name ee311.clients.test --tls1.2
success ee311.clients.test 3 legacy-san \
	"TLS 1.2 + --legacy-san: ee311 authenticated via its SAN (DANE-EE)"
client $(cert_of other) --name ee311.clients.test --tls1.2
[ "$RC" -eq 1 ] && out_has "^DANCE-Status: FAILED.$" &&
	out_has "DANCE-Client-Id: other.clients.test"
check $? "TLS 1.2 + --legacy-san: other.crt (SAN without TLSA) refused"
client $(cert_of ee311) --no-ext
success ee311.clients.test 3 legacy-san \
	"TLS 1.3 without dane_clientid + --legacy-san: not refused, SAN used"
stop_server

# ---------------------------------------------------------------------
# Slow DNS: one client times out, another is served meanwhile
# ---------------------------------------------------------------------

start_server slow --allow .clients.test --timeout 500
client $(cert_of ee311) --name ee311.clients.test
success ee311.clients.test 3 lookup "timeout server: warm-up of ee311"
# A stream of warm ee311 clients runs while the x.slow client waits for
# its lookup.  The log has conn=N (accept order) and its lines come in
# completion order: a fast connection accepted after the slow one and
# logged before it was served while the slow lookup was pending.  This
# does not depend on how fast the machine is.
"$CLIENT" --io-timeout 20 $(cert_of ee311) --name ee311.clients.test \
	--count 100000 "127.0.0.1:$SPORT" >/dev/null 2>&1 &
BG=$!
i=0
while [ $i -lt 200 ] &&
	[ "$(grep -c "name=ee311.clients.test outcome=SUCCESS" "$SLOG")" -lt 3 ]
do
	sleep 0.02
	i=$((i + 1))
done
t0=$(now_ms)
client $(cert_of ee311) --name x.slow.clients.test
t1=$(now_ms)
kill "$BG" 2>/dev/null
wait "$BG" 2>/dev/null
slow_id=$(sed -n 's/.* conn=\([0-9]*\) .*name=x\.slow\.clients\.test .*/\1/p' "$SLOG")
meanwhile=$(awk -v s="${slow_id:-0}" '
	/name=x\.slow\.clients\.test / { exit }
	/name=ee311\.clients\.test outcome=SUCCESS usage=3 via=handshake / {
		for (i = 1; i <= NF; i++)
			if ($i ~ /^conn=/) { id = substr($i, 6) + 0 }
		if (id > s) n++
	}
	END { print n + 0 }' "$SLOG")
[ -n "$slow_id" ] && [ "$meanwhile" -ge 1 ]
check $? "slow lookup does not block: $meanwhile warm clients served while conn $slow_id waited"
[ "$RC" -eq 1 ] && out_has "^HTTP/1.0 403 Forbidden" &&
	out_has "^DANCE-Status: FAILED.$" &&
	grep -q "name=x.slow.clients.test outcome=FAILED .*reason=timeout" "$SLOG" &&
	[ $((t1 - t0)) -ge 400 ] && [ $((t1 - t0)) -lt 10000 ]
check $? "x.slow.clients.test: refused with 403 after ~500 ms ($((t1 - t0)) ms)"
stop_server

# ---------------------------------------------------------------------
# Misbehaving clients: no crash, other clients still served
# ---------------------------------------------------------------------

# raw MODE: a raw TCP client (perl) that misbehaves, then reads until
# the server closes; exit 0 when it did close within 5 s.
raw() {
	perl -MIO::Socket::INET -e '
		my ($port, $mode) = @ARGV;
		my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port")
			or exit 2;
		srand(42);
		if ($mode eq "garbage") {
			print $s join("", map { chr(int(rand(256))) } 1 .. 4096);
		} elsif ($mode eq "badhello") {
			# TLS handshake record, ClientHello, nonsense inside.
			print $s "\x16\x03\x01\x00\x40\x01\x00\x00\x3c" .
				("\xff" x 60);
		} elsif ($mode eq "half") {
			print $s "\x16\x03\x01\x02\x00";
			shutdown($s, 1);
		}
		local $SIG{ALRM} = sub { exit 3 };
		alarm 5;
		my $b;
		while (sysread($s, $b, 4096)) { }
		exit 0;' "$SPORT" "$1"
}

start_server rob --allow .clients.test --timeout 500 --conn-timeout 300
for m in garbage badhello half idle; do
	raw $m
	RC=$?
	kill -0 "$SPID" 2>/dev/null && [ "$RC" -eq 0 ]
	check $? "misbehaving client ($m): connection closed, server alive"
done
grep -q "outcome=ERROR .*reason=handshake timeout" "$SLOG"
check $? "idle client dropped after --conn-timeout"
# A client that gives up while its lookup is pending.
before=$(world_count y.slow.clients.test)
"$CLIENT" $(cert_of ee311) --name y.slow.clients.test "127.0.0.1:$SPORT" \
	>/dev/null 2>&1 &
BG=$!
i=0
while [ $i -lt 100 ] &&
	[ "$(world_count y.slow.clients.test)" = "$before" ]
do
	sleep 0.02
	i=$((i + 1))
done
kill "$BG" 2>/dev/null
wait "$BG" 2>/dev/null
sleep 0.8
client $(cert_of ee311) --name ee311.clients.test
success ee311.clients.test 3 lookup "after all that, a good client is served"
grep -q "name=y.slow.clients.test outcome=FAILED" "$SLOG"
check $? "client gone while its lookup was pending: verdict logged, no crash"
stop_server

# --max-conns 1: a second client waits for the first one's slot.
start_server lim --allow .clients.test --max-conns 1 --conn-timeout 500
raw idle &
BG=$!
sleep 0.1
client $(cert_of ee311) --name ee311.clients.test
wait "$BG"
[ "$RC" -eq 0 ] && grep -n "outcome=" "$SLOG" | head -n 1 |
	grep -q "reason=handshake timeout"
check $? "--max-conns 1: second client served after the first slot freed"
stop_server

# ---------------------------------------------------------------------
# --once, and a server that does not ask for DANCE
# ---------------------------------------------------------------------

start_server once --allow .clients.test --once
client $(cert_of ee311) --name ee311.clients.test
wait "$SPID"
RC2=$?
[ "$RC" -eq 0 ] && [ "$RC2" -eq 0 ]
check $? "--once: one connection served, then exit 0"

# openssl s_server requests a certificate but not dane_clientid: the
# client must not send the extension and the connection must work.
openssl s_server -accept 127.0.0.1:0 -cert "$C/server.crt" \
	-key "$C/server.key" -Verify 1 -www -trace -naccept 1 \
	>"$TMP/s_server.out" 2>&1 &
SPID=$!
PIDS="$PIDS $SPID"
SLOG=$TMP/s_server.out
SPORT=
i=0
while [ $i -lt 100 ] && [ -z "$SPORT" ]; do
	sleep 0.05
	SPORT=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$SLOG")
	i=$((i + 1))
done
client $(cert_of ee311) --name ee311.clients.test --http /
wait "$SPID" 2>/dev/null
[ "$RC" -eq 0 ] && out_has "^HTTP/1.0 200 ok"
check $? "dance-client against a server without DANCE: connection works"
# -trace shows the client's Certificate (the second one in the log):
# its entry must say "No extensions".
ext=$(awk '/ Certificate, Length=/ { n++ }
	n == 2 && /No extensions|extensions, length/ { print; exit }' "$SLOG")
case $ext in
*"No extensions"*) ! grep -q "65348" "$SLOG" ;;
*) false ;;
esac
check $? "... and dane_clientid (0xFF44) was not sent unasked (${ext:-no trace})"

done_testing
