#!/bin/sh
# t/freeradius.sh -- rlm_dance inside FreeRADIUS 3.2 (TAP).
#
# Real freeradius (threaded, -fxx, private raddb in a temp dir, loopback
# ports), real clients: eapol_test (EAP-TLS over TLS 1.2, name from SAN
# or EAP identity) and radsecproxy (RADIUS/TLS client) fed by radclient.
#
# Env: WORLD_ENV  env file of a running DNS test world (t/world/world.sh);
#                 without it a private world is started and stopped.
#      BUILD      build dir (rlm_dance.so in $BUILD/freeradius; built
#                 with `make freeradius` when missing).
#      FR_PREFIX, FR_RADIUSD, FR_MODDIR, FR_RLM_DANCE
#                 the FreeRADIUS under test and its rlm_dance (default:
#                 Debian's; see t/lib/freeradius.sh).  t/versions runs
#                 this script again against FreeRADIUS 3.2.10.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}

T=$(mktemp -d /tmp/dance-fr.XXXXXX)
own_world=""
pids=""

. "$top/t/lib/tap.sh"
check() {	# check DESC CMD...
	desc=$1
	shift
	"$@"
	ok $? "$desc"
}

cleanup() {
	for p in $pids; do
		kill "$p" 2>/dev/null
	done
	for p in $pids; do
		wait "$p" 2>/dev/null
	done
	[ -n "$own_world" ] && sh "$top/t/world/world.sh" stop "$own_world" >/dev/null 2>&1
	if [ "$T_FAIL" -eq 0 ] && [ -z "${KEEP:-}" ]; then
		rm -rf "$T"
	else
		echo "# logs kept in $T"
	fi
}

finish() {
	cleanup
	done_testing
	exit $?
}

bail() {
	ok 1 "$*"
	finish
}

. "$top/t/lib/freeradius.sh"

if [ "$FR_PREFIX" != /usr ] && [ ! -x "$FR_RADIUSD" ]; then
	echo "# SKIP: no FreeRADIUS built in $FR_PREFIX (make freeradius builds it from FREERADIUS_TARBALL)"
	finish
fi
for tool in "$FR_RADIUSD" eapol_test radsecproxy radclient openssl; do
	command -v "$tool" >/dev/null 2>&1 || bail "$tool is installed (apt-get install freeradius freeradius-utils eapoltest radsecproxy)"
done

if [ ! -f "$FR_RLM_DANCE" ]; then
	make -C "$top" BUILD="$BUILD" freeradius >"$T/build.log" 2>&1 ||
		{ tail -20 "$T/build.log" | sed 's/^/# /'; bail "make freeradius builds rlm_dance.so"; }
fi
[ -f "$FR_RLM_DANCE" ] || bail "$FR_RLM_DANCE exists"
FR_VERSION=$(fr_version)
echo "# FreeRADIUS $FR_VERSION ($FR_RADIUSD), rlm_dance $FR_RLM_DANCE"

if [ -z "${WORLD_ENV:-}" ]; then
	own_world=$T/world
	sh "$top/t/world/world.sh" start "$own_world" >"$T/world.log" 2>&1 ||
		bail "DNS test world starts"
	WORLD_ENV=$own_world/env
fi
. "$WORLD_ENV"
C=$WORLD_CERTS

# Queries for NAME (TLSA) that reached the world's authoritative side.
qcount() { sh "$top/t/world/world.sh" count "$WORLD_DIR" "$1"; }

fr_setup 2500
fr_start -xx || bail "freeradius starts with rlm_dance"
pids="$pids $frpid"
ok 0 "freeradius starts with rlm_dance"
check "radiusd runs unprivileged (user ${FR_USER:-of the tests})" fr_runs_as_user
check "rlm_dance hooked the EAP-TLS SSL_CTX" grep -q "DANE client authentication enabled on eap tls-config tls-common" "$FRLOG"
check "rlm_dance hooked the RADIUS/TLS listener" grep -q "DANE client authentication enabled on RADIUS/TLS listener of server radsec" "$FRLOG"

# ------------------------------------------------------------------
# EAP-TLS with eapol_test
# ------------------------------------------------------------------
# eap TAG CERT KEY IDENTITY [TLSVER [DANE_CLIENT_ID]]: run one EAP-TLS
# authentication (TLS 1.2 unless TLSVER is 13; with DANE_CLIENT_ID the
# patched eapol_test sends the dane_clientid extension); exit status of
# eapol_test, transcript in $T/eap-TAG.log.
eap() {
	v13=1
	[ "${5:-12}" = 13 ] && v13=0
	prog=eapol_test
	{
		echo "network={"
		echo "	key_mgmt=IEEE8021X"
		echo "	eap=TLS"
		echo "	identity=\"$4\""
		echo "	client_cert=\"$2\""
		echo "	private_key=\"$3\""
		echo "	phase1=\"tls_disable_tlsv1_3=$v13\""
		echo "	eapol_flags=0"
		if [ -n "${6:-}" ]; then
			echo "	dane_client_id=\"$6\""
			prog=$EAPOL_DANCE
		fi
		echo "}"
	} >"$T/eap-$1.conf"
	"$prog" -c "$T/eap-$1.conf" -a 127.0.0.1 -p "$AUTH_PORT" -s testing123 -t 15 \
		>"$T/eap-$1.log" 2>&1
}

# Reply-Message of the last Access-Accept/Reject eapol_test saw.
reply_of() {
	grep -a "Reply-Message\|Value: " "$T/eap-$1.log" >/dev/null 2>&1
	sed -n "s/.*Attribute 18 (Reply-Message) length=[0-9]*//p; s/^ *Value: '\(.*\)'$/\1/p" "$T/eap-$1.log" |
		grep "dance=" | tail -1
}

accept() { # tag cert key identity expect-in-reply [tlsver [dane_client_id]]
	if eap "$1" "$2" "$3" "$4" "${6:-12}" "${7:-}" && reply_of "$1" | grep -q -- "$5"; then
		ok 0 "EAP-TLS accepted: $1 ($5)"
	else
		ok 1 "EAP-TLS accepted: $1 ($5) [reply: $(reply_of "$1")]"
	fi
}
reject() { # tag cert key identity expect-in-log [tlsver [dane_client_id]]
	mark=$(wc -l <"$FRLOG")
	if eap "$1" "$2" "$3" "$4" "${6:-12}" "${7:-}"; then
		ok 1 "EAP-TLS rejected: $1 (was accepted)"
	elif tail -n +"$((mark + 1))" "$FRLOG" | grep -q -- "$5"; then
		ok 0 "EAP-TLS rejected: $1 (log: $5)"
	else
		ok 1 "EAP-TLS rejected: $1, log line \"$5\" missing"
	fi
}

accept ee311 "$C/ee311.crt" "$C/ee311.key" anonymous \
	"dance=ee311.clients.test status=Authenticated usage=DANE-EE source=SAN"
accept ee312 "$C/ee312.crt" "$C/ee312.key" anonymous "dance=ee312.clients.test status=Authenticated usage=DANE-EE"
accept full "$C/full.crt" "$C/full.key" anonymous "dance=full.clients.test status=Authenticated usage=DANE-EE"
accept ee301 "$C/ee301.crt" "$C/ee301.key" anonymous "dance=ee301.clients.test status=Authenticated usage=DANE-EE"
accept expired "$C/expired.crt" "$C/expired.key" anonymous "dance=expired.clients.test status=Authenticated usage=DANE-EE"
accept dane-ta "$C/sensor7.chain.pem" "$C/sensor7.key" anonymous \
	"dance=sensor7._device.clients.test status=Authenticated usage=DANE-TA"
accept pkix-ee "$C/pkixee.chain.pem" "$C/pkixee.key" anonymous "dance=pkix-ee.clients.test status=Authenticated usage=PKIX-EE"
accept pkix-ta "$C/pkixta.chain.pem" "$C/pkixta.key" anonymous "dance=pkix-ta.clients.test status=Authenticated usage=PKIX-TA"
accept rollover-new "$C/rollnew.crt" "$C/rollnew.key" anonymous "dance=rollover.clients.test status=Authenticated"
accept identity "$K/ee311-nosan.crt" "$C/ee311.key" ee311.clients.test \
	"dance=ee311.clients.test status=Authenticated usage=DANE-EE source=Identity"

# The existing PKI keeps working, without DNS.
q0=$(qcount corp1.clients.test)
accept pkix-corp "$K/corp.crt" "$K/corp.key" alice "status=PKIX"
accept pkix-corp-allowed-name "$K/corpdane.crt" "$K/corpdane.key" corp1 "status=PKIX"
check "CA-accepted client with an allowed name: zero DNS queries" test "$(qcount corp1.clients.test)" = "$q0"

# RFC 7671 section 9 (digest agility, OpenSSL's default): with a 3 1 2
# record present, the 3 1 1 records of the same usage/selector are unused.
reject rollover-old-superseded "$C/rollold.crt" "$C/rollold.key" anonymous \
	"client rollover.clients.test rejected: TLSA does not match"
reject wrong-key "$K/wrongkey.crt" "$C/other.key" anonymous "client ee311.clients.test rejected: TLSA does not match"
reject untrusted-ca-no-tlsa "$K/rogue.chain.pem" "$K/rogue.key" anonymous "client rogue.clients.test rejected: TLSA lookup"
reject self-signed-no-tlsa "$C/other.crt" "$C/other.key" anonymous "client other.clients.test rejected: TLSA lookup"
reject dane-ta-name-not-in-san "$C/nosan.chain.pem" "$C/nosan.key" nosan._device.clients.test \
	"client nosan._device.clients.test rejected: TLSA does not match"
reject bogus "$K/ee311-nosan.crt" "$C/ee311.key" bogus.clients.test "client bogus.clients.test rejected: TLSA lookup bogus"
reject insecure "$K/ee311-nosan.crt" "$C/ee311.key" x.insecure.clients.test "client x.insecure.clients.test rejected: TLSA lookup insecure"
reject nxdomain "$K/ee311-nosan.crt" "$C/ee311.key" nx.clients.test "client nx.clients.test rejected: TLSA lookup nxdomain"
reject nodata "$K/ee311-nosan.crt" "$C/ee311.key" nodata.clients.test "client nodata.clients.test rejected: TLSA lookup nodata"
reject servfail "$K/ee311-nosan.crt" "$C/ee311.key" x.servfail.clients.test "client x.servfail.clients.test rejected: TLSA lookup"

t0=$(date +%s%N)
reject timeout "$K/ee311-nosan.crt" "$C/ee311.key" t1.slow.clients.test "client t1.slow.clients.test rejected: TLSA lookup timeout"
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
check "timeout is bounded by the configured $TIMEOUT_MS ms (took $ms ms)" test "$ms" -lt $((TIMEOUT_MS + 4000))

# Not allowed: no DNS query at all.
q1=$(qcount ee311.notallowed.test)
q2=$(qcount ee311.blocked.test)
reject not-allowed-identity "$K/ee311-nosan.crt" "$C/ee311.key" ee311.notallowed.test "not a DANE client\|ee311.notallowed.test"
reject not-allowed-san "$K/blocked.crt" "$C/ee311.key" "user@corp" "not a DANE client: .*SAN: .*identity \"user@corp\""
check "the query counter sees lookups that happened (nx.clients.test)" test "$(qcount nx.clients.test)" -gt 0
check "not-allowed names: zero DNS queries" \
	test "$(qcount ee311.notallowed.test)" = "$q1" -a "$(qcount ee311.blocked.test)" = "$q2"

# ------------------------------------------------------------------
# TLS 1.3: SAN with Debian's eapol_test; the dane_clientid extension
# with the patched eapol_test of hostapd_patch/ (built when missing)
# ------------------------------------------------------------------
accept tls13-san "$C/ee312.crt" "$C/ee312.key" anonymous \
	"dance=ee312.clients.test status=Authenticated usage=DANE-EE source=SAN" 13
reject tls13-san-wrong-key "$K/wrongkey.crt" "$C/other.key" anonymous \
	"client ee311.clients.test rejected: TLSA does not match" 13

EAPOL_DANCE=$BUILD/hostapd/bin/eapol_test
if [ ! -x "$EAPOL_DANCE" ] && [ -z "${NO_HOSTAPD_BUILD:-}" ]; then
	make -C "$top" BUILD="$BUILD" hostapd >"$T/hostapd-build.log" 2>&1
fi
if [ -x "$EAPOL_DANCE" ]; then
	# Extension name wins over SAN and identity: the cert has no SAN.
	accept ext-ee311 "$K/ee311-nosan.crt" "$C/ee311.key" device \
		"dance=ee311.clients.test status=Authenticated usage=DANE-EE source=Extension" 13 ee311.clients.test
	accept ext-full "$C/full.crt" "$C/full.key" device \
		"dance=full.clients.test status=Authenticated usage=DANE-EE source=Extension" 13 full.clients.test
	accept ext-dane-ta "$C/sensor7.chain.pem" "$C/sensor7.key" device \
		"dance=sensor7._device.clients.test status=Authenticated usage=DANE-TA source=Extension" \
		13 sensor7._device.clients.test
	accept ext-pkix-ee "$C/pkixee.chain.pem" "$C/pkixee.key" device \
		"dance=pkix-ee.clients.test status=Authenticated usage=PKIX-EE source=Extension" 13 pkix-ee.clients.test
	reject ext-wrong-key "$C/other.crt" "$C/other.key" device \
		"client ee312.clients.test rejected: TLSA does not match" 13 ee312.clients.test
	reject ext-nxdomain "$C/ee311.crt" "$C/ee311.key" device \
		"client nx.clients.test rejected: TLSA lookup nxdomain" 13 nx.clients.test
	# A CA-issued cert does not rescue a client that asked for DANE.
	reject ext-pkix-cert-no-tlsa "$K/corpdane.crt" "$K/corpdane.key" device \
		"client corp1.clients.test rejected: TLSA lookup nxdomain" 13 corp1.clients.test
	q3=$(qcount ee311.elsewhere.test)
	reject ext-not-allowed "$C/ee311.crt" "$C/ee311.key" device \
		"client ee311.elsewhere.test (extension) rejected: not allowed" 13 ee311.elsewhere.test
	check "extension name not allowed: zero DNS queries" \
		test "$(qcount ee311.elsewhere.test)" = "$q3"
else
	echo "# patched eapol_test ($EAPOL_DANCE) not available: dane_clientid tests skipped"
fi

# ------------------------------------------------------------------
# Coalescing: concurrent clients, one late (800 ms) answer
# ------------------------------------------------------------------
before=$(qcount dev.late.clients.test)
for k in 1 2 3; do
	eap "late$k" "$K/ee311-nosan.crt" "$C/ee311.key" dev.late.clients.test &
	eval "lp$k=\$!"
done
late_ok=0
for k in 1 2 3; do
	eval "wait \$lp$k" && late_ok=$((late_ok + 1))
done
after=$(qcount dev.late.clients.test)
check "3 concurrent clients behind a late (800 ms) answer all accepted ($late_ok/3)" test "$late_ok" = 3
check "their lookups were coalesced ($((after - before)) queries)" test $((after - before)) -le 1

# ------------------------------------------------------------------
# Availability: the per-domain cap is per allow-list entry
# ------------------------------------------------------------------
# 10 clients admitted by the entry ".slow.clients.test" (never answers),
# each under a parent name of its own (d$k.p$k.slow.clients.test): they
# share that entry's budget, so 3 wait and the rest fail at once, all
# with that entry in the reason (a cap keyed on the parent name would
# have let 8 of them wait).  While it is saturated, names admitted by
# other entries still get lookups of their own: a device of
# "*._device.clients.test" whose TLSA is not cached yet (accepted), and a
# name of the enclosing ".clients.test" (nx2, uncached NXDOMAIN).
entry_cap='for allow entry ".slow.clients.test" (per-entry cap)'
mark=$(wc -l <"$FRLOG")
qf=$(qcount fresh._device.clients.test)
qn=$(qcount nx2.clients.test)
slow_pids=""
for k in 1 2 3 4 5 6 7 8 9 10; do
	eap "slow$k" "$K/ee311-nosan.crt" "$C/ee311.key" "d$k.p$k.slow.clients.test" &
	slow_pids="$slow_pids $!"
done
# Start the others once the entry is full (its first Overload).
i=0
until tail -n +"$((mark + 1))" "$FRLOG" | grep -qF "$entry_cap"; do
	i=$((i + 1))
	[ $i -gt 100 ] && break
	sleep 0.05
done
t0=$(date +%s%N)
eap healthy "$K/fresh.chain.pem" "$K/fresh.key" anonymous &
hpid=$!
eap other-entry "$K/ee311-nosan.crt" "$C/ee311.key" nx2.clients.test &
opid=$!
wait "$hpid"
hrc=$?
t1=$(date +%s%N)
wait "$opid"
orc=$?
t2=$(date +%s%N)
hms=$(((t1 - t0) / 1000000))
oms=$(((t2 - t0) / 1000000))
slow_ok=0
for p in $slow_pids; do
	wait "$p" && slow_ok=$((slow_ok + 1))
done
tail -n +"$((mark + 1))" "$FRLOG" >"$T/cap-entry.log"
# Line numbers in the log: entry full, first slow lookup given up, and
# the lookups of the other entries' names (with -xx the log has them).
first() { grep -n -m 1 -F -- "$1" "$T/cap-entry.log" | cut -d: -f1; }
l_full=$(first "$entry_cap")
l_free=$(first "slow.clients.test rejected: TLSA lookup timeout")
l_dev=$(first "TLSA for fresh._device.clients.test looked up")
l_nx2=$(first "TLSA for nx2.clients.test looked up")
# One AUTH line per rejection ("rlm_dance: client ..."); the request's
# own log repeats it.
n_cap=$(grep "^rlm_dance: " "$T/cap-entry.log" | grep -c -F "rejected: overload: 3 already waiting for DNS $entry_cap")
n_any=$(grep -c "^rlm_dance: .*rejected: overload" "$T/cap-entry.log")
n_tmo=$(grep -c "^rlm_dance: .*slow.clients.test rejected: TLSA lookup timeout" "$T/cap-entry.log")
check "all slow-entry clients rejected" test "$slow_ok" = 0
check "slow-entry clients of 10 parent names share one budget: $n_cap turned away by \".slow.clients.test\"" \
	test "${n_cap:-0}" -ge 1
check "... every overload names that entry with 3 waiting ($n_any overloads, $n_cap per-entry), no global cap" \
	test "$n_any" = "$n_cap" -a "$((n_cap + n_tmo))" = 10
check "other entries looked up while \".slow.clients.test\" was full (log lines $l_full < $l_dev, $l_nx2 < $l_free)" \
	test -n "$l_full" -a -n "$l_free" -a -n "$l_dev" -a -n "$l_nx2" -a \
	"${l_full:-0}" -lt "${l_dev:-0}" -a "${l_dev:-0}" -lt "${l_free:-0}" -a \
	"${l_full:-0}" -lt "${l_nx2:-0}" -a "${l_nx2:-0}" -lt "${l_free:-0}"
check "entry \"*._device.clients.test\": device authenticated in normal time ($hms ms < 1500 ms)" \
	test "$hrc" = 0 -a "$hms" -lt 1500
check "... with a real (uncached) lookup" test "$(qcount fresh._device.clients.test)" -gt "$qf"
check "entry \".clients.test\": nx2.clients.test got its own lookup ($oms ms < 1500 ms), not Overload" \
	test "$orc" != 0 -a "$oms" -lt 1500 -a "$(qcount nx2.clients.test)" -gt "$qn"
check "... and was rejected for NXDOMAIN" grep -q "client nx2.clients.test rejected: TLSA lookup nxdomain" "$T/cap-entry.log"

# Global cap: 3 entries (".z1.slow.clients.test" ...) x 3 clients = 9
# waiting threads > max_waiting 8.
slow_pids=""
for z in z1 z2 z3; do
	for k in 1 2 3; do
		eap "g$z$k" "$K/ee311-nosan.crt" "$C/ee311.key" "d$k.$z.slow.clients.test" &
		slow_pids="$slow_pids $!"
	done
done
for p in $slow_pids; do
	wait "$p"
done
check "more waiting threads than max_waiting fail fast (global cap)" \
	grep -q "rejected: overload: 8 already waiting for DNS (global cap)" "$FRLOG"

# ------------------------------------------------------------------
# RADSEC: radsecproxy as a RADIUS/TLS client
# ------------------------------------------------------------------
# radsec TAG CERT KEY [PORT]: radclient -> radsecproxy (udp) -> freeradius
# (tls, on PORT or $TLS_PORT).
radsec() {
	PORT=$(free_port)
	cat >"$T/rsp-$1.conf" <<EOF
ListenUDP 127.0.0.1:$PORT
LogLevel 4
LogDestination file://$T/rsp-$1.log
tls default {
	CACertificateFile $C/server.crt
	CertificateFile $2
	CertificateKeyFile $3
}
client lo {
	host 127.0.0.1
	type udp
	secret testing123
}
server fr {
	host 127.0.0.1
	port ${4:-$TLS_PORT}
	type tls
	tls default
	secret radsec
	CertificateNameCheck off
	StatusServer off
}
realm * {
	server fr
}
EOF
	radsecproxy -f -c "$T/rsp-$1.conf" -i "$T/rsp-$1.pid" >"$T/rsp-$1.out" 2>&1 &
	rpid=$!
	sleep 0.5
	echo 'User-Name = "ap-test", User-Password = "x"' |
		radclient -r 2 -t 3 -x "127.0.0.1:$PORT" auth testing123 >"$T/radclient-$1.log" 2>&1
	rc=$?
	kill "$rpid" 2>/dev/null
	wait "$rpid" 2>/dev/null
	return $rc
}

if radsec accept "$C/ee311.crt" "$C/ee311.key" &&
	grep -q "radsec dance=ee311.clients.test status=Authenticated" "$T/radclient-accept.log"; then
	ok 0 "RADSEC: radsecproxy with a DANE-bound certificate accepted"
else
	ok 1 "RADSEC: radsecproxy with a DANE-bound certificate accepted"
fi
if radsec pkix "$K/corp.crt" "$K/corp.key" && grep -q "radsec dance= status=PKIX" "$T/radclient-pkix.log"; then
	ok 0 "RADSEC: radsecproxy with a CA-issued certificate accepted as before"
else
	ok 1 "RADSEC: radsecproxy with a CA-issued certificate accepted as before"
fi
if radsec wrongkey "$K/wrongkey.crt" "$C/other.key"; then
	ok 1 "RADSEC: radsecproxy with a wrong key refused"
elif grep -q "client ee311.clients.test rejected: TLSA does not match" "$FRLOG"; then
	ok 0 "RADSEC: radsecproxy with a wrong key refused"
else
	ok 1 "RADSEC: radsecproxy with a wrong key refused (no log line)"
fi
if radsec nxdomain "$C/other.crt" "$C/other.key"; then
	ok 1 "RADSEC: radsecproxy without TLSA refused"
else
	ok 0 "RADSEC: radsecproxy without TLSA refused"
fi

# ------------------------------------------------------------------
# RADSEC clients with a tls section of their own (FreeRADIUS 3.2.7+)
# ------------------------------------------------------------------
# radsec_is TAG CERT KEY PORT WANT-IN-REPLY: accepted with that reply.
radsec_is() {
	if radsec "$1" "$2" "$3" "$4" && grep -q "$5" "$T/radclient-$1.log"; then
		ok 0 "RADSEC client tls: $1 accepted ($5)"
	else
		ok 1 "RADSEC client tls: $1 accepted ($5) [$(grep -h 'Reply-Message\|No reply' "$T/radclient-$1.log" | head -1)]"
	fi
}
# radsec_refused TAG CERT KEY PORT LOG-LINE: refused, LOG-LINE logged.
radsec_refused() {
	mark=$(wc -l <"$FRLOG")
	if radsec "$1" "$2" "$3" "$4"; then
		ok 1 "RADSEC client tls: $1 refused (was accepted)"
	elif tail -n +"$((mark + 1))" "$FRLOG" | grep -q -- "$5"; then
		ok 0 "RADSEC client tls: $1 refused (log: $5)"
	else
		ok 1 "RADSEC client tls: $1 refused, log line \"$5\" missing"
	fi
}
if fr_client_tls; then
	for c in "client tlsclient" "client lo of clients radsec_ctls" "client lo of server radsec_ps"; do
		check "rlm_dance hooked the tls section of RADIUS/TLS $c" \
			grep -q "DANE client authentication enabled on RADIUS/TLS $c\$" "$FRLOG"
	done
	# The listeners present a certificate radsecproxy does not trust:
	# these connections ran on the client's own SSL_CTX.
	radsec_is group-dane "$C/ee311.crt" "$C/ee311.key" "$TLS_PORT2" \
		"radsec-group dance=ee311.clients.test status=Authenticated"
	radsec_refused group-wrong-key "$K/wrongkey.crt" "$C/other.key" "$TLS_PORT2" \
		"client ee311.clients.test rejected: TLSA does not match"
	radsec_is server-dane "$C/sensor7.chain.pem" "$C/sensor7.key" "$TLS_PORT3" \
		"radsec-server dance=sensor7._device.clients.test status=Authenticated"
	radsec_is server-pkix "$K/corp.crt" "$K/corp.key" "$TLS_PORT3" "radsec-server dance= status=PKIX"
	radsec_refused server-no-tlsa "$C/other.crt" "$C/other.key" "$TLS_PORT3" \
		"client other.clients.test rejected: TLSA lookup"
else
	echo "# FreeRADIUS $FR_VERSION has no per-client TLS (3.2.7 and later): client tls tests skipped"
fi

check "freeradius still running" kill -0 "$frpid"

# Clean shutdown: radiusd unloads modules before freeing the SSL_CTXs
# that carry libdance's ex_data callbacks (regression: SIGSEGV at exit).
kill -TERM "$frpid"
wait "$frpid"
rc=$?
check "freeradius exits cleanly on SIGTERM (status $rc)" test "$rc" = 0
pids=""

# ------------------------------------------------------------------
# DANCE required, the extension the only name source (draft -13 MUSTs
# in the handshake): no TLS 1.2, no client without a certificate, no
# certificate without dane_clientid -- also for CA-issued certificates.
# ------------------------------------------------------------------
R0=$R
# start_variant DIR SOURCES SED-EXPR: freeradius on a copy of the raddb
# in $T/DIR with require = yes, name_source = SOURCES, and SED-EXPR.
start_variant() {
	R=$T/$1
	rm -rf "$R"
	cp -r "$R0" "$R"
	sed -i "s|$R0|$R|g; s|name_source = .*|name_source = \"$2\"\n\t\trequire = yes|; $3" "$R/radiusd.conf"
	if fr_start -xx; then
		pids="$pids $frpid"
		ok 0 "freeradius starts with require = yes, name_source = $2"
	else
		ok 1 "freeradius starts with require = yes, name_source = $2"
	fi
}
start_variant raddb-require extension 's|tls_max_version = "1.2"|tls_max_version = "1.3"|'
# alerted DESC ALERT: radiusd sent that TLS alert since $mark.
alerted() {
	check "$1: radiusd sent alert $2" sh -c "tail -n +$((mark + 1)) '$FRLOG' | grep -q 'send TLS .* Alert, fatal $2'"
}
# tls_refused TAG ALERT S_CLIENT-ARGS...: openssl s_client to the RADSEC
# listener is refused in the handshake with that alert (FreeRADIUS 3.2
# may close the TCP connection before the alert leaves: the server's log
# is the witness).
tls_refused() {
	tag=$1 alert=$2
	shift 2
	mark=$(wc -l <"$FRLOG")
	sleep 1 | timeout 10 openssl s_client -connect "127.0.0.1:$TLS_PORT" "$@" >"$T/s_client-$tag.log" 2>&1
	alerted "RADSEC require: $tag refused in the handshake" "$alert"
}
reject req-tls12 "$C/ee311.crt" "$C/ee311.key" anonymous "unsupported protocol" 12
alerted "EAP-TLS require: TLS 1.2 (DANE certificate)" protocol_version
reject req-tls12-corp "$K/corp.crt" "$K/corp.key" alice "unsupported protocol" 12
alerted "EAP-TLS require: TLS 1.2 (CA-issued certificate)" protocol_version
reject req-tls13-no-ext-corp "$K/corp.crt" "$K/corp.key" alice "client ? rejected: no-ext: client sent no dane_clientid" 13
alerted "EAP-TLS require: TLS 1.3 without dane_clientid (CA-issued certificate)" handshake_failure
reject req-tls13-no-ext-dane "$C/ee311.crt" "$C/ee311.key" anonymous "client ? rejected: no-ext: client sent no dane_clientid" 13
alerted "EAP-TLS require: TLS 1.3 without dane_clientid (self-signed DANE certificate)" handshake_failure
tls_refused tls12 protocol_version -tls1_2 -cert "$K/corp.crt" -key "$K/corp.key"
tls_refused tls13-no-cert certificate_required -tls1_3
tls_refused tls13-no-ext handshake_failure -tls1_3 -cert "$K/corp.crt" -key "$K/corp.key"
if [ -x "$EAPOL_DANCE" ]; then
	accept req-ext-ee311 "$K/ee311-nosan.crt" "$C/ee311.key" device \
		"dance=ee311.clients.test status=Authenticated usage=DANE-EE source=Extension" 13 ee311.clients.test
	reject req-ext-wrong-key "$C/other.crt" "$C/other.key" device \
		"client ee312.clients.test rejected: TLSA does not match" 13 ee312.clients.test
	alerted "EAP-TLS require: dane_clientid, wrong key" handshake_failure
fi
check "freeradius (require) still running" kill -0 "$frpid"
kill -TERM "$frpid"
wait "$frpid"
pids=""

# require = yes with the legacy sources too: TLS 1.2 stays, names come
# from SAN/identity, but a CA-issued certificate alone no longer passes.
start_variant raddb-require-legacy "extension san identity" ""
accept req-legacy-ee311 "$C/ee311.crt" "$C/ee311.key" anonymous \
	"dance=ee311.clients.test status=Authenticated usage=DANE-EE source=SAN"
reject req-legacy-pkix "$K/corp.crt" "$K/corp.key" alice "client rejected: DANCE required: "
alerted "EAP-TLS require (legacy sources): CA-issued certificate without an allowed name" handshake_failure
kill -TERM "$frpid"
wait "$frpid"
pids=""
R=$R0

# ------------------------------------------------------------------
# Configuration validation (freeradius -C on copies of the raddb)
# ------------------------------------------------------------------
# conf_check TAG SED-EXPR: rc of freeradius -C, output in $T/C-TAG.log
conf_check() {
	rm -rf "$T/C-$1"
	cp -r "$R" "$T/C-$1"
	sed -i "s|$(printf '%s' "$T/raddb" | sed 's/[.[\*^$|]/\\&/g')|$T/C-$1|g; $2" "$T/C-$1/radiusd.conf"
	fr_radiusd -C -xl stdout -d "$T/C-$1" -n radiusd >"$T/C-$1.log" 2>&1
}
conf_bad() { # tag sed-expr expected-message
	if conf_check "$1" "$2"; then
		ok 1 "config rejected: $1"
	elif grep -q -- "$3" "$T/C-$1.log"; then
		ok 0 "config rejected: $1 ($3)"
	else
		ok 1 "config rejected: $1, message \"$3\" missing"
	fi
}
conf_bad name_source 's|name_source = .*|name_source = "san dns"|' 'name_source: unknown name source "dns"'
conf_bad allow-regex 's|allow = ".clients.test"|allow = "~(unclosed"|' 'bad allow entry "~(unclosed"'
conf_bad no-trust 's|trust_anchor_file = .*||' 'set trust_anchor_file'
conf_bad ext_type 's|radsec = yes|radsec = yes\n\t\text_type = 65281|' 'ext_type 65281: extension type 0xFF01 is renegotiation_info'
conf_bad eap_tls_config 's|eap_tls_config = "tls-common"|eap_tls_config = "nonesuch"|' 'has no "tls-config nonesuch" section'
conf_bad require-tls12 's|name_source = .*|name_source = "extension"\n\t\trequire = yes|' \
	'require = yes with name_source = "extension" needs TLS 1.3 in RADIUS/TLS listener of server radsec'
conf_bad require-no-client-cert \
	's|name_source = .*|name_source = "extension"\n\t\trequire = yes|; s|tls_max_version = "1.2"|tls_max_version = "1.3"|; s|require_client_cert = yes|require_client_cert = no|' \
	'require = yes needs require_client_cert = yes in RADIUS/TLS listener of server radsec'
conf_warn() { # tag sed-expr expected-warning
	conf_check "$1" "$2"
	if grep -q -- "$3" "$T/C-$1.log"; then
		ok 0 "config warned: $1 ($3)"
	else
		ok 1 "config warned: $1, warning \"$3\" missing"
	fi
}
conf_warn reject-unknown-intermediate \
	's|cipher_list = "DEFAULT"|cipher_list = "DEFAULT"\n\t\t\treject_unknown_intermediate_ca = yes|' \
	'eap tls-config tls-common sets reject_unknown_intermediate_ca; FreeRADIUS .*rejects'
if fr_client_tls; then
	conf_warn dynamic-tls-clients \
		's|^clients radsec_ctls {|clients radsec_ctls {\n\tclient dyn {\n\t\tipaddr = 127.0.1.0/24\n\t\tproto = tls\n\t\tsecret = radsec\n\t\tdynamic_clients = radsec_ps\n\t\tlifetime = 60\n\t}|' \
		'client dyn of clients radsec_ctls defines dynamic RADIUS/TLS clients; a tls section of their own is not hooked'
fi

# An rlm_dance built for another FreeRADIUS release does not start.
other=""
for so in "$BUILD"/freeradius/rlm_dance.so "$BUILD"/freeradius-*/rlm_dance.so; do
	[ -f "$so" ] && [ "$so" != "$FR_RLM_DANCE" ] && { other=$so; break; }
done
if [ -n "$other" ]; then
	mkdir -p "$T/lib-other"
	for m in "$T"/lib/*.so; do cp "$m" "$T/lib-other/"; done
	cp "$other" "$T/lib-other/rlm_dance.so"; chmod 755 "$T/lib-other"
	if conf_check other-version "s|libdir = .*|libdir = $T/lib-other|"; then
		ok 1 "rlm_dance built for another FreeRADIUS ($other) refused"
	elif grep -q "rlm_dance: built for FreeRADIUS .*, but this is FreeRADIUS $FR_VERSION\|rlm_dance magic number .* mismatch" \
		"$T/C-other-version.log"; then
		ok 0 "rlm_dance built for another FreeRADIUS ($other) refused: $(grep -o "rlm_dance: built for.*\|rlm_dance magic number ([a-z]*) mismatch" "$T/C-other-version.log" | head -1)"
	else
		ok 1 "rlm_dance built for another FreeRADIUS ($other) refused, no version message"
	fi
else
	echo "# no rlm_dance.so built for another FreeRADIUS: version mismatch test skipped"
fi
# The shipped mods-available/dance parses (with the world's anchor).
rm -rf "$T/C-shipped"
cp -r "$R" "$T/C-shipped"
sed -i "s|$T/raddb|$T/C-shipped|g" "$T/C-shipped/radiusd.conf"
awk '/^\tdance \{/ {skip = 1} skip && /^\t\}/ {skip = 0; print "\t$INCLUDE dance.conf"; next} !skip' \
	"$T/C-shipped/radiusd.conf" >"$T/C-shipped/r" && mv "$T/C-shipped/r" "$T/C-shipped/radiusd.conf"
sed "s|/usr/share/dns/root.key|$T/pub/ta|" "$top/freeradius_module/raddb/mods-available/dance" >"$T/C-shipped/dance.conf"
check "shipped mods-available/dance passes freeradius -C" \
	fr_radiusd -C -xl "$T/C-shipped.log" -d "$T/C-shipped" -n radiusd

# ------------------------------------------------------------------
# Metrics: %{dance:stats} and %{dance:<figure>} from a status virtual
# server, the stats_interval summary line, one log line per decision,
# all against driven traffic (2 authenticated, a TLSA mismatch, a
# timeout, a name outside the allow-list).
# ------------------------------------------------------------------
metrics_block() {
	STATS_PORT=$(free_port)
	R=$T/raddb-stats
	rm -rf "$R"
	cp -r "$R0" "$R"
	sed -i "s|$R0|$R|g; s|radsec = yes|radsec = yes\n\t\tstats_interval = 1|" "$R/radiusd.conf"
	cat >>"$R/radiusd.conf" <<EOF
server dance_stats {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = $STATS_PORT
	}
	authorize {
		update control {
			Auth-Type := Accept
		}
		update reply {
			Reply-Message := "%{dance:stats}"
			Reply-Message += "ok=%{dance:verdicts_success} refused=%{dance:verdicts_refused} timeout=%{dance:failures_timeout}"
		}
	}
	authenticate {
	}
}
EOF
	if ! fr_start -xx; then
		ok 1 "freeradius starts with stats_interval and a status server"
		R=$R0
		return
	fi
	pids="$pids $frpid"
	m0=$(wc -l <"$FRLOG")	# (reject() sets mark)
	accept m-ee311 "$C/ee311.crt" "$C/ee311.key" anonymous "dance=ee311.clients.test status=Authenticated"
	accept m-ee312 "$C/ee312.crt" "$C/ee312.key" anonymous "dance=ee312.clients.test status=Authenticated"
	reject m-wrong-key "$K/wrongkey.crt" "$C/other.key" anonymous "client ee311.clients.test rejected: TLSA does not match"
	reject m-timeout "$K/ee311-nosan.crt" "$C/ee311.key" t9.slow.clients.test "rejected: TLSA lookup timeout"
	reject m-not-allowed "$K/ee311-nosan.crt" "$C/ee311.key" ee311.notallowed.test "not a DANE client"
	echo 'User-Name = "status"' | radclient -r 2 -t 5 -x "127.0.0.1:$STATS_PORT" auth testing123 \
		>"$T/radclient-stats.log" 2>&1
	check "%{dance:verdicts_success} etc. in a status server" \
		grep -q 'Reply-Message = "ok=2 refused=2 timeout=1"' "$T/radclient-stats.log"
	check "%{dance:stats} in a status server" \
		grep -q 'Reply-Message = "verdicts_success=2 verdicts_refused=2 verdicts_unauthenticated=0 verdicts_none=1 ' \
		"$T/radclient-stats.log"
	sleep 1.5
	tail -n +"$((m0 + 1))" "$FRLOG" >"$T/radius-stats.log"
	line=$(grep "rlm_dance (dance): stats " "$T/radius-stats.log" | tail -n 1)
	check "stats_interval = 1: the summary line in radius.log" test -n "$line"
	for w in verdicts_success=2 verdicts_refused=2 verdicts_none=1 successes_3=2 failures_nomatch=1 \
		failures_timeout=1 allowlist_refusals=1 queries_timeout=1 parked_clients=0 up=1; do
		check "summary line: $w" sh -c "echo '$line' | grep -q ' $w\( \|\$\)'"
	done
	check "one log line per decision (5)" \
		test "$(grep -c 'rlm_dance: dance: client=.* name=.* outcome=' "$T/radius-stats.log")" = 5
	check "the decision line of a timeout" \
		grep -q "dance: client=.* name=t9.slow.clients.test outcome=refused reason=timeout lookup_ms=[0-9]* cached=no" \
		"$T/radius-stats.log"
	kill -TERM "$frpid"
	wait "$frpid"
	pids=""
	R=$R0
}
metrics_block

finish
