#!/bin/sh
# t/hostapd.sh -- DANCE in hostapd's integrated EAP server.
#
# hostapd (patched, hostapd_patch/) runs as a RADIUS server and the
# patched eapol_test authenticates with EAP-TLS against it.  hostapd's
# RADIUS server binds every interface, so everything runs inside a
# private network namespace that has only lo (unshare -n as root,
# unshare -rn otherwise; skipped with a "# SKIP" line where the kernel
# allows neither).  The DNS world the test runner started (WORLD_ENV)
# listens on the host's loopback, which the namespace cannot reach, so
# this script starts its own world (t/world/world.sh, the same zones and
# certificates) inside the namespace.  Section G compares it with a stock
# hostapd built from the same source without the series.  Output: TAP
# lines and "N passed, N failed".
#
#   BUILD=<abs build dir> sh t/hostapd.sh
#   HOSTAPD=... EAPOL_TEST=... WPA_SUPPLICANT=... HOSTAPD_STOCK=... \
#       sh t/hostapd.sh          (another build; see t/lib/hostapd.sh)
#   HOSTAPD_WORK=<build.sh work dir> sh t/hostapd.sh   (all four from it)
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
export BUILD
[ -n "${HOSTAPD_WORK:-}" ] && [ -z "${DANCE_HAPD_NETNS:-}" ] && {
	HOSTAPD=$HOSTAPD_WORK/bin/hostapd
	EAPOL_TEST=$HOSTAPD_WORK/bin/eapol_test
	WPA_SUPPLICANT=$HOSTAPD_WORK/bin/wpa_supplicant
	HOSTAPD_STOCK=$HOSTAPD_WORK/stock/bin/hostapd
}
. "$top/t/lib/hostapd.sh"
HAPD=$HOSTAPD
EAPOL=$EAPOL_TEST
SUPP=$WPA_SUPPLICANT
STOCK=$HOSTAPD_STOCK

if [ -z "${DANCE_HAPD_NETNS:-}" ]; then
	# only the default build is made here; another one must exist
	if [ ! -x "$HAPD" ] || [ ! -x "$EAPOL" ] || [ ! -x "$SUPP" ] ||
	    [ ! -x "$STOCK" ]; then
		if [ "$HAPD" != "$BUILD/hostapd/bin/hostapd" ]; then
			echo "not ok 1 - hostapd binaries exist ($HAPD, $EAPOL, $SUPP, $STOCK)"
			echo "0 passed, 1 failed"
			exit 1
		fi
		if ! make -C "$top" BUILD="$BUILD" hostapd >/tmp/hostapd-build.$$.log 2>&1; then
			tail -n 30 /tmp/hostapd-build.$$.log
			echo "not ok 1 - make hostapd (log /tmp/hostapd-build.$$.log)"
			echo "0 passed, 1 failed"
			exit 1
		fi
		rm -f /tmp/hostapd-build.$$.log
	fi
	echo "# hostapd: $HAPD ($("$HAPD" -v 2>&1 | sed -n 's/^hostapd v//p'))"
	hapd_netns "$0" "$@"
	echo "0 passed, 0 failed"
	exit 0
fi

# --- inside the private network namespace ----------------------------------
ip link set lo up || exit 1

T=$(mktemp -d /tmp/dance-hostapd.XXXXXX)
W=$T/world
. "$top/t/lib/tap.sh"
HPID=

KEEP=1
# The world's servers must be stopped before $T goes (their pids are in it).
SPID=
cleanup() {
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
	[ -n "$HPID" ] && kill "$HPID" 2>/dev/null && wait "$HPID" 2>/dev/null
	sh "$top/t/world/world.sh" stop "$W" >/dev/null 2>&1
	[ "$KEEP" = 0 ] && rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# a failed check, with the tails of the logs it names
not_ok() {
	_d=$1
	shift
	ok 1 "$_d" "$(for f in "$@"; do [ -f "$f" ] && tail -n 15 "$f"; done)"
}

finish() {
	done_testing
	exit
}

if ! sh "$top/t/world/world.sh" start "$W" >"$T/world.log" 2>&1; then
	not_ok "DNS world starts inside the namespace" "$T/world.log"
	finish
fi
. "$W/env"
C=$WORLD_CERTS

# start_hostapd NAME PORT [EXTRA [BINARY]]: EXTRA holds more config
# lines; BINARY defaults to the patched hostapd
start_hostapd() {
	conf=$T/$1.conf
	hapd_radius_conf "$conf" "$T" "$1" "$2"
	[ -n "${3:-}" ] && printf '%s\n' "$3" >>"$conf"
	HLOG=$T/$1.hostapd.log
	HPORT=$2
	hapd_start "$conf" "$HLOG" "$2" "${4:-$HAPD}"
}

stop_hostapd() {
	hapd_stop
}

# eapol TAG CERT KEY NAME [TLSVER [TIMEOUT]]: run eapol_test; NAME "-" =
# no dane_client_id, CERT "-" = no client certificate; TLSVER 13 or 12.  EAPOL_IDENTITY, when set, replaces
# the EAP identity; EAPOL_REAUTH=N adds N re-authentications on the same
# TLS context (so they can resume).  Returns eapol_test's exit status.
eapol() {
	tag=$1 cert=$2 key=$3 dname=$4 ver=${5:-13} tmo=${6:-20}
	sconf=$T/$tag.sup.conf
	if [ "$ver" = 13 ]; then
		p1="tls_disable_tlsv1_3=0"
	else
		p1="tls_disable_tlsv1_3=1"
	fi
	{
		echo "network={"
		echo "	key_mgmt=IEEE8021X"
		echo "	eap=TLS"
		if [ "$dname" = - ]; then
			echo "	identity=\"${EAPOL_IDENTITY:-device}\""
		else
			echo "	identity=\"${EAPOL_IDENTITY:-$dname}\""
			echo "	dane_client_id=\"$dname\""
		fi
		echo "	ca_cert=\"$C/server.crt\""
		if [ "$cert" != - ]; then
			echo "	client_cert=\"$cert\""
			echo "	private_key=\"$key\""
		fi
		echo "	phase1=\"$p1\""
		echo "}"
	} >"$sconf"
	ELOG=$T/$tag.eapol.log
	"$EAPOL" -c "$sconf" -a 127.0.0.1 -p "$HPORT" -s testing123 \
		-r"${EAPOL_REAUTH:-0}" \
		-t "$tmo" >"$ELOG" 2>&1
}

# expect_auth success|failure DESCRIPTION TAG CERT KEY NAME [TLSVER]
expect_auth() {
	want=$1 desc=$2
	shift 2
	eapol "$@"
	rc=$?
	if [ "$want" = success ] && [ $rc -eq 0 ] &&
	    grep -q '^SUCCESS' "$ELOG"; then
		ok 0 "$desc"
	elif [ "$want" = failure ] && [ $rc -ne 0 ] &&
	    grep -q 'EAP-Failure\|CTRL-EVENT-EAP-FAILURE\|FAILURE' "$ELOG"; then
		ok 0 "$desc"
	else
		not_ok "$desc (eapol_test rc=$rc, wanted $want)" "$ELOG" "$HLOG"
	fi
}

# expect_log PATTERN DESCRIPTION: hostapd logged PATTERN
expect_log() {
	if grep -a -q -- "$1" "$HLOG"; then
		ok 0 "$2"
	else
		not_ok "$2 (no '$1' in the hostapd log)" "$HLOG"
	fi
}

# wait_log PATTERN [TENTHS]: wait until hostapd logged PATTERN
wait_log() {
	i=0
	while ! grep -a -q -- "$1" "$HLOG"; do
		i=$((i + 1))
		[ $i -gt "${2:-100}" ] && return 1
		sleep 0.1
	done
	return 0
}

# queries NAME: TLSA queries for NAME that reached the authoritative side
queries() {
	sh "$top/t/world/world.sh" count "$W" "$1" TLSA 2>/dev/null || echo x
}

DANCE_BASE="dance=1
dance_trust_anchor_file=$WORLD_TA
dance_unbound_conf=$WORLD_UNBOUND_CONF
dance_ca_file=$C/pkixca.crt
dance_allow=ee311.clients.test
dance_allow=ee312.clients.test
dance_allow=full.clients.test
dance_allow=ee301.clients.test
dance_allow=expired.clients.test
dance_allow=*._device.clients.test
dance_allow=pkix-ee.clients.test
dance_allow=pkix-ta.clients.test
dance_allow=rollover.clients.test
dance_allow=bogus.clients.test
dance_allow=.insecure.clients.test
dance_allow=nx.clients.test
dance_allow=nodata.clients.test
dance_allow=.slow.clients.test
dance_allow=dev.late.clients.test
dance_allow=.servfail.clients.test"

# start_dance NAME PORT [EXTRA]: hostapd with the DANCE keys above
start_dance() {
	start_hostapd "$1" "$2" "$DANCE_BASE
${3:-}"
}

# --- A: DANCE over TLS 1.3, name from dane_clientid only --------------------
if ! start_dance a 18121 "dance_timeout=2000"; then
	not_ok "hostapd with dance=1 starts" "$T/a.hostapd.log"
	finish
fi
ok 0 "hostapd with dance=1 starts (RADIUS server in a private netns)"

expect_auth success "DANE-EE 3 1 1, self-signed, TLS 1.3" \
	a-ee311 "$C/ee311.crt" "$C/ee311.key" ee311.clients.test
expect_log "DANCE: client 'ee311.clients.test' (ext) authenticated by TLSA usage 3" \
	"hostapd logs the authenticated name and usage"
grep -q "Using TLS version TLSv1.3\|TLSv1.3" "$ELOG" &&
	ok 0 "the exchange used TLS 1.3" ||
	not_ok "the exchange used TLS 1.3" "$ELOG"
expect_auth success "DANE-EE 3 1 2" \
	a-ee312 "$C/ee312.crt" "$C/ee312.key" ee312.clients.test
expect_auth success "DANE-EE 3 1 0 (full SPKI)" \
	a-full "$C/full.crt" "$C/full.key" full.clients.test
expect_auth failure "wrong key (other.crt claiming ee301.clients.test) fails" \
	a-other "$C/other.crt" "$C/other.key" ee301.clients.test
expect_log "DANCE: client 'ee301.clients.test' (ext) rejected" \
	"failure log line names the client"
expect_auth success "DANE-EE 3 0 1 (full certificate digest)" \
	a-ee301 "$C/ee301.crt" "$C/ee301.key" ee301.clients.test
expect_auth success "DANE-TA 2 0 1: device cert from an untrusted CA, wildcard TLSA" \
	a-sensor7 "$C/sensor7.chain.pem" "$C/sensor7.key" sensor7._device.clients.test
expect_auth success "PKIX-EE 1 1 1" \
	a-pkixee "$C/pkixee.chain.pem" "$C/pkixee.key" pkix-ee.clients.test
expect_auth success "PKIX-TA 0 0 1" \
	a-pkixta "$C/pkixta.chain.pem" "$C/pkixta.key" pkix-ta.clients.test
expect_auth success "rollover: the new key of a three-record TLSA set" \
	a-roll "$C/rollnew.crt" "$C/rollnew.key" rollover.clients.test
expect_auth success "DANE-EE ignores the expiry date" \
	a-expired "$C/expired.crt" "$C/expired.key" expired.clients.test

# cache: the second authentication is decided without a new query
q1=$(queries ee311.clients.test)
expect_auth success "cached TLSA answer (decided inside the handshake)" \
	a-ee311b "$C/ee311.crt" "$C/ee311.key" ee311.clients.test
q2=$(queries ee311.clients.test)
[ "$q1" = 1 ] && [ "$q2" = 1 ] &&
	ok 0 "TTL cache: one TLSA query for two authentications" ||
	not_ok "TTL cache: one TLSA query for two authentications (got $q1, $q2)"
expect_auth failure "wrong key against a cached TLSA answer fails" \
	a-other-cached "$C/other.crt" "$C/other.key" ee311.clients.test

expect_auth failure "self-signed cert without TLSA (secure NODATA) fails" \
	a-nodata "$C/ee311.crt" "$C/ee311.key" nodata.clients.test
expect_auth failure "untrusted-CA cert without TLSA (NXDOMAIN) fails" \
	a-nx "$C/sensor7.chain.pem" "$C/sensor7.key" nx.clients.test
expect_log "DANCE: client 'nx.clients.test' (ext) rejected: .*" \
	"NXDOMAIN failure is logged with its reason"
expect_auth failure "bogus TLSA (broken RRSIG) fails" \
	a-bogus "$C/ee311.crt" "$C/ee311.key" bogus.clients.test
expect_auth failure "insecure TLSA (unsigned zone) fails" \
	a-insecure "$C/ee311.crt" "$C/ee311.key" x.insecure.clients.test
expect_auth failure "SERVFAIL fails" \
	a-servfail "$C/ee311.crt" "$C/ee311.key" x.servfail.clients.test
t0=$(date +%s%3N)
expect_auth failure "lookup timeout (never-answering server) fails" \
	a-slow "$C/ee311.crt" "$C/ee311.key" x.slow.clients.test
t1=$(date +%s%3N)
expect_log "DANCE: client 'x.slow.clients.test' (ext) rejected" \
	"timeout failure is logged"
[ $((t1 - t0)) -lt 15000 ] &&
	ok 0 "timed-out session ends cleanly ($((t1 - t0)) ms, dance_timeout=2000)" ||
	not_ok "timed-out session ends cleanly ($((t1 - t0)) ms)"

expect_auth failure "name outside the allow-list fails" \
	a-denied "$C/ee311.crt" "$C/ee311.key" denied.clients.test
qd=$(queries denied.clients.test)
[ "$qd" = 0 ] && ok 0 "disallowed name caused zero DNS queries" ||
	not_ok "disallowed name caused zero DNS queries (got $qd)"
expect_log "DANCE: client 'denied.clients.test' (ext) rejected" \
	"disallowed name is logged"

# Required, extension only: the draft's MUSTs are kept in the TLS
# handshake itself, before any EAP decision (issue 11, item 9).  The
# server's alert goes no further than hostapd (EAP-Failure follows), so
# the checks read hostapd's log.
# refused_hs DESCRIPTION PATTERN TAG CERT KEY NAME [TLSVER]: the
# authentication fails and hostapd logs PATTERN once more than before
refused_hs() {
	desc=$1 pat=$2
	shift 2
	n0=$(grep -a -c -- "$pat" "$HLOG")
	expect_auth failure "$desc" "$@"
	n1=$(grep -a -c -- "$pat" "$HLOG")
	[ "$n1" -gt "$n0" ] &&
		ok 0 "$desc: refused in the TLS handshake ($pat)" ||
		not_ok "$desc: refused in the TLS handshake (no new '$pat')" \
			"$HLOG" "$ELOG"
}
refused_hs "self-signed cert without dane_client_id fails (dance_require=1)" \
	"DANCE - handshake refused: client sent no dane_clientid" \
	a-noname "$C/ee311.crt" "$C/ee311.key" -
expect_log "local TLS alert: handshake failure" \
	"a certificate without dane_clientid gets handshake_failure"
refused_hs "TLS 1.2 without the SAN fallback fails" \
	"local TLS alert: protocol version" \
	a-tls12 "$C/sensor7.chain.pem" "$C/sensor7.key" sensor7._device.clients.test 12
grep -a -q "Using TLS version TLSv1.2" "$HLOG" &&
	not_ok "TLS 1.2 is never negotiated where DANCE is required" "$HLOG" ||
	ok 0 "TLS 1.2 is never negotiated where DANCE is required"
# A TLS 1.3 client without a certificate: eapol_test needs a key, so it
# gets a DSA one, which TLS 1.3 cannot sign with: OpenSSL then sends an
# empty Certificate.
if openssl dsaparam -out "$T/dsa.param" 2048 2>/dev/null &&
    openssl gendsa -out "$T/dsa.key" "$T/dsa.param" 2>/dev/null &&
    openssl req -x509 -new -key "$T/dsa.key" -subj /CN=nocert -days 2 \
	-out "$T/dsa.crt" 2>/dev/null; then
	refused_hs "TLS 1.3 client without a certificate fails" \
		"peer did not return a certificate" \
		a-nocert "$T/dsa.crt" "$T/dsa.key" ee311.clients.test
else
	not_ok "a DSA key and certificate for the certificate-less client"
fi
stop_hostapd

# --- B: TLS 1.2 fallback to the certificate's SAN -------------------------
if start_dance b 18122 "dance_name_source=ext,san"; then
	expect_auth success "TLS 1.2 with the SAN fallback (DANE-TA)" \
		b-tls12 "$C/sensor7.chain.pem" "$C/sensor7.key" sensor7._device.clients.test 12
	grep -q "TLSv1.2" "$ELOG" && ok 0 "the fallback exchange used TLS 1.2" ||
		not_ok "the fallback exchange used TLS 1.2" "$ELOG"
	expect_log "DANCE: client 'sensor7._device.clients.test' (san) authenticated" \
		"the name came from the SAN"
	expect_auth success "TLS 1.2 SAN fallback, DANE-EE self-signed" \
		b-tls12-ee "$C/ee311.crt" "$C/ee311.key" - 12
	expect_auth failure "TLS 1.2 SAN fallback: SAN not in the allow-list fails" \
		b-tls12-nosan "$C/nosan.chain.pem" "$C/nosan.key" - 12
else
	not_ok "hostapd with dance_name_source=ext,san starts" "$T/b.hostapd.log"
fi
stop_hostapd

# --- C: one client waits on a never-answering server, another completes --
if start_dance c 18123 "dance_timeout=6000"; then
	s0=$(date +%s%3N)
	( eapol c-slow "$C/ee311.crt" "$C/ee311.key" y.slow.clients.test
	  echo $? >"$T/c-slow.rc"; date +%s%3N >"$T/c-slow.end" ) &
	spid=$!
	wait_log "TLSA lookup for 'y.slow.clients.test' pending"
	eapol c-fast "$C/ee312.crt" "$C/ee312.key" ee312.clients.test
	frc=$?
	f1=$(date +%s%3N)
	wait $spid
	src=$(cat "$T/c-slow.rc")
	s1=$(cat "$T/c-slow.end")
	[ "$frc" -eq 0 ] &&
		ok 0 "second client completes while the first waits ($((f1 - s0)) ms)" ||
		not_ok "second client completes while the first waits" "$T/c-fast.eapol.log" "$HLOG"
	[ "$f1" -lt "$s1" ] &&
		ok 0 "it finished before the first one's timeout ($((f1 - s0)) < $((s1 - s0)) ms)" ||
		not_ok "it finished before the first one's timeout ($((f1 - s0)) vs $((s1 - s0)) ms)"
	[ "$src" -ne 0 ] && ok 0 "the waiting client fails after the timeout" ||
		not_ok "the waiting client fails after the timeout" "$T/c-slow.eapol.log"
	grep -a -q "METHOD_PENDING\|pending processing" "$HLOG" &&
		ok 0 "EAP-TLS went pending during the lookup" ||
		not_ok "EAP-TLS went pending during the lookup" "$HLOG"
	# a client that gives up while its lookup is pending
	eapol c-giveup "$C/ee311.crt" "$C/ee311.key" z.slow.clients.test 13 2
	expect_auth success "after a client gave up mid-lookup, hostapd still serves" \
		c-after "$C/ee301.crt" "$C/ee301.key" ee301.clients.test
	wait_log "DANCE: client 'z.slow.clients.test' (ext) rejected: .*timeout" 150
	expect_log "DANCE: client 'z.slow.clients.test' (ext) rejected: .*timeout" \
		"the abandoned session's lookup timed out cleanly"
	kill -0 "$HPID" 2>/dev/null && ok 0 "hostapd is still running" ||
		not_ok "hostapd is still running" "$HLOG"
else
	not_ok "hostapd for the concurrency test starts" "$T/c.hostapd.log"
fi
stop_hostapd

# --- F: coalescing and the pending cap ---------------------------------------
if start_dance f 18126 "dance_max_pending=1
dance_timeout=3000"; then
	( eapol f-late1 "$C/ee311.crt" "$C/ee311.key" dev.late.clients.test
	  echo $? >"$T/f-late1.rc" ) &
	lpid=$!
	eapol f-late2 "$C/ee311.crt" "$C/ee311.key" dev.late.clients.test
	r2=$?
	wait $lpid
	r1=$(cat "$T/f-late1.rc")
	[ "$r1" -eq 0 ] && [ "$r2" -eq 0 ] &&
		ok 0 "two concurrent clients behind a late (800 ms) server succeed" ||
		not_ok "two concurrent clients behind a late server succeed ($r1, $r2)" \
			"$T/f-late1.eapol.log" "$HLOG"
	ql=$(queries dev.late.clients.test)
	[ "$ql" = 1 ] && ok 0 "they cost one TLSA query" ||
		not_ok "they cost one TLSA query (got $ql)"
	( eapol f-slow "$C/ee311.crt" "$C/ee311.key" w.slow.clients.test ) &
	spid=$!
	wait_log "TLSA lookup for 'w.slow.clients.test' pending"
	o0=$(date +%s%3N)
	expect_auth failure "over dance_max_pending, another lookup fails" \
		f-over "$C/ee312.crt" "$C/ee312.key" ee312.clients.test
	o1=$(date +%s%3N)
	[ $((o1 - o0)) -lt 2500 ] &&
		ok 0 "it fails at once instead of queueing ($((o1 - o0)) ms)" ||
		not_ok "it fails at once instead of queueing ($((o1 - o0)) ms)"
	expect_log "DANCE: client 'ee312.clients.test' (ext) rejected: overload" \
		"overload is logged"
	wait $spid
	kill -0 "$HPID" 2>/dev/null && ok 0 "hostapd survived all of it" ||
		not_ok "hostapd survived all of it" "$HLOG"
else
	not_ok "hostapd with dance_max_pending=1 starts" "$T/f.hostapd.log"
fi
stop_hostapd

# --- R: TLS session resumption (tls_session_lifetime) -----------------------
# eapol_test -r1 authenticates twice on one TLS context; the second one
# resumes.  DANCE decides once, on the full handshake: hostapd stores the
# session's success data only after DANCE succeeded, so a resumption
# carries that decision and must not be refused (hostap 2.11+ returns
# early for TLS 1.3 resumption before EAP-Success).
# resumed TAG VER NAME CERT KEY: two authentications, the second resumed
resumed() {
	tag=$1 ver=$2 rname=$3
	EAPOL_REAUTH=1 eapol "$tag" "$4" "$5" "$6" "$ver"
	rc=$?
	nfull=$(grep -a -c "Handshake finished - resumed=0" "$HLOG")
	nres=$(grep -a -c "Handshake finished - resumed=1" "$HLOG")
	nacc=$(grep -a -c "Success data accepted for resumed session" "$HLOG")
	nsucc=$(grep -a -c "^EAP: Received EAP-Success\|CTRL-EVENT-EAP-SUCCESS" \
		"$ELOG")
	[ $rc -eq 0 ] && [ "$nsucc" -ge 2 ] &&
		ok 0 "TLS 1.${ver#1}: full handshake and resumption both succeed" ||
		not_ok "TLS 1.${ver#1}: full handshake and resumption both succeed (rc=$rc, $nsucc successes)" \
			"$ELOG" "$HLOG"
	[ "$nfull" = 1 ] && [ "$nres" = 1 ] && [ "$nacc" = 1 ] &&
		ok 0 "TLS 1.${ver#1}: hostapd logs one full handshake, then a resumption" ||
		not_ok "TLS 1.${ver#1}: hostapd logs one full handshake, then a resumption ($nfull, $nres, $nacc)" "$HLOG"
	grep -a -q "Using TLS version TLSv1.${ver#1}" "$ELOG" &&
		ok 0 "TLS 1.${ver#1}: the exchange used TLS 1.${ver#1}" ||
		not_ok "TLS 1.${ver#1}: the exchange used TLS 1.${ver#1}" "$ELOG"
	nd=$(grep -a -c "DANCE: client '$rname' ([a-z]*) authenticated" "$HLOG")
	[ "$nd" = 1 ] &&
		ok 0 "TLS 1.${ver#1}: DANCE decided once, on the full handshake" ||
		not_ok "TLS 1.${ver#1}: DANCE decided once, on the full handshake ($nd)" "$HLOG"
}
if start_dance r13 18127 "tls_session_lifetime=3600"; then
	resumed r13 13 ee311.clients.test "$C/ee311.crt" "$C/ee311.key" \
		ee311.clients.test
else
	not_ok "hostapd with tls_session_lifetime starts" "$T/r13.hostapd.log"
fi
stop_hostapd
if start_dance r12 18128 "tls_session_lifetime=3600
dance_name_source=ext,san"; then
	resumed r12 12 sensor7._device.clients.test "$C/sensor7.chain.pem" \
		"$C/sensor7.key" -
else
	not_ok "hostapd with tls_session_lifetime starts (TLS 1.2)" \
		"$T/r12.hostapd.log"
fi
stop_hostapd

# --- W: AP role: 802.1X on a wired link, wpa_supplicant as the station -----
# wired_auth TAG CERT KEY NAME: run wpa_supplicant -Dwired on dance-sta
# until it reports EAP success or failure; prints SUCCESS / FAILURE / NONE
wired_auth() {
	tag=$1 cert=$2 key=$3 dname=$4
	cat >"$T/$tag.sup.conf" <<-EOF
	ap_scan=0
	network={
		key_mgmt=IEEE8021X
		eap=TLS
		eapol_flags=0
		identity="$dname"
		dane_client_id="$dname"
		ca_cert="$C/server.crt"
		client_cert="$cert"
		private_key="$key"
		phase1="tls_disable_tlsv1_3=0"
	}
	EOF
	SLOG=$T/$tag.supplicant.log
	"$SUPP" -Dwired -idance-sta -c "$T/$tag.sup.conf" -d >"$SLOG" 2>&1 &
	SPID=$!
	res=NONE
	i=0
	while [ $i -lt 300 ]; do
		if grep -a -q "CTRL-EVENT-EAP-SUCCESS" "$SLOG" 2>/dev/null; then
			res=SUCCESS
			break
		fi
		if grep -a -q "CTRL-EVENT-EAP-FAILURE" "$SLOG" 2>/dev/null; then
			res=FAILURE
			break
		fi
		i=$((i + 1))
		sleep 0.05
	done
	kill "$SPID" 2>/dev/null
	wait "$SPID" 2>/dev/null
	SPID=
	echo $res
}

if ip link add dance-ap type veth peer name dance-sta &&
    ip link set dance-ap up && ip link set dance-sta up; then
	wconf=$T/w.conf
	cat >"$wconf" <<-EOF
	driver=wired
	interface=dance-ap
	logger_stdout=-1
	logger_stdout_level=2
	ieee8021x=1
	eapol_version=2
	eap_server=1
	eap_user_file=$T/eap_user
	server_cert=$C/server.crt
	private_key=$C/server.key
	tls_flags=[ENABLE-TLSv1.3]
	$DANCE_BASE
	EOF
	HLOG=$T/w.hostapd.log
	if hapd_start "$wconf" "$HLOG" AP-ENABLED; then
		r=$(wired_auth w-ee311 "$C/ee311.crt" "$C/ee311.key" ee311.clients.test)
		[ "$r" = SUCCESS ] &&
			ok 0 "AP role (wired 802.1X): DANE-EE station authenticated" ||
			not_ok "AP role (wired 802.1X): DANE-EE station authenticated ($r)" \
				"$SLOG" "$HLOG"
		grep -a -q "pending processing" "$HLOG" &&
			ok 0 "AP role: the station's EAP-TLS went pending on the lookup" ||
			not_ok "AP role: the station's EAP-TLS went pending on the lookup" "$HLOG"
		r=$(wired_auth w-nx "$C/ee311.crt" "$C/ee311.key" nx.clients.test)
		[ "$r" = FAILURE ] &&
			ok 0 "AP role: station without TLSA (NXDOMAIN) rejected" ||
			not_ok "AP role: station without TLSA (NXDOMAIN) rejected ($r)" \
				"$SLOG" "$HLOG"
		expect_log "DANCE: client 'nx.clients.test' (ext) rejected" \
			"AP role: the rejection is logged"
	else
		not_ok "hostapd with driver=wired starts" "$HLOG"
	fi
	stop_hostapd
else
	not_ok "veth pair for the AP-role test"
fi

# --- S: no dance keys: stock behaviour ------------------------------------
if start_hostapd s 18124 "ca_cert=$C/devca.crt"; then
	ok 0 "hostapd without dance keys starts"
	expect_auth success "stock: CA-issued cert, trusted CA, TLS 1.3" \
		s-ca "$C/sensor7.chain.pem" "$C/sensor7.key" -
	expect_auth success "stock: a client sending dane_client_id is unaffected" \
		s-ca-name "$C/sensor7.chain.pem" "$C/sensor7.key" sensor7._device.clients.test
	expect_auth success "stock: TLS 1.2" \
		s-ca12 "$C/sensor7.chain.pem" "$C/sensor7.key" - 12
	expect_auth failure "stock: self-signed cert rejected even with a TLSA record" \
		s-self "$C/ee311.crt" "$C/ee311.key" ee311.clients.test
	expect_auth failure "stock: cert from an untrusted CA rejected" \
		s-untrusted "$C/pkixee.chain.pem" "$C/pkixee.key" -
	if grep -a -q "DANCE: \|DANCE -" "$HLOG"; then
		not_ok "stock: no DANCE activity in the log" "$HLOG"
	else
		ok 0 "stock: no DANCE activity in the log"
	fi
else
	not_ok "hostapd without dance keys starts" "$T/s.hostapd.log"
fi
stop_hostapd

# --- G: stock hostapd vs patched hostapd, configurations without DANCE ----
# The same eapol_test runs against the stock build (no series, no
# CONFIG_DANCE) and the patched one; outcomes must be identical.
printf '"device"\tTLS\n' >"$T/eap_user_device"
# One case a line: SERVER|CASE|WANT|CERT|KEY|NAME|TLSVER|IDENTITY.
# SERVER picks the extra config lines (cmp_extra); an empty IDENTITY
# keeps eapol's default.  (Both builds have EAP-TLS as their only
# method, so there is no wrong-method case.)
cat >"$T/g.cases" <<EOF
ca|trusted13|SUCCESS|$C/sensor7.chain.pem|$C/sensor7.key|-|13|
ca|trusted12|SUCCESS|$C/sensor7.chain.pem|$C/sensor7.key|-|12|
ca|trusted-name|SUCCESS|$C/sensor7.chain.pem|$C/sensor7.key|sensor7._device.clients.test|13|
ca|selfsigned13|FAILURE|$C/ee311.crt|$C/ee311.key|-|13|
ca|selfsigned12|FAILURE|$C/ee311.crt|$C/ee311.key|-|12|
ca|selfsigned-name|FAILURE|$C/ee311.crt|$C/ee311.key|ee311.clients.test|13|
ca|untrusted-ca|FAILURE|$C/pkixee.chain.pem|$C/pkixee.key|-|13|
no13|trusted13|SUCCESS|$C/sensor7.chain.pem|$C/sensor7.key|-|13|
no13|selfsigned13|FAILURE|$C/ee311.crt|$C/ee311.key|-|13|
user|right-identity|SUCCESS|$C/sensor7.chain.pem|$C/sensor7.key|-|13|device
user|wrong-identity|FAILURE|$C/sensor7.chain.pem|$C/sensor7.key|-|13|intruder
EOF

# cmp_extra SERVER: the config lines of one comparison server
cmp_extra() {
	case $1 in
	ca) echo "ca_cert=$C/devca.crt" ;;
	no13) printf 'ca_cert=%s\ntls_flags=[DISABLE-TLSv1.3]\n' "$C/devca.crt" ;;
	user) printf 'ca_cert=%s\neap_user_file=%s\n' "$C/devca.crt" \
		"$T/eap_user_device" ;;
	esac
}

# outcome RC: "rc=RC VERDICT TLSVERSION" of the last eapol run
outcome() {
	if grep -a -q '^SUCCESS' "$ELOG"; then
		v=SUCCESS
	elif grep -a -q 'CTRL-EVENT-EAP-FAILURE\|^FAILURE' "$ELOG"; then
		v=FAILURE
	else
		v=NONE
	fi
	tv=$(sed -n 's/.*SSL: Using TLS version \(TLSv[0-9.]*\).*/\1/p' \
		"$ELOG" | tail -n 1)
	echo "rc=$1 $v ${tv:-no-TLS}"
}

# dance_noise LOG: lines of a hostapd log that only the series writes
# (its messages, its config keys); fails when there are none
dance_noise() {
	grep -a 'DANCE: \|DANCE - \|dane_clientid\|TLSA\|DANE \|dance_' "$1"
}

# cmp_run VARIANT BINARY PORT: every case against BINARY, outcomes into
# $T/g-VARIANT.res ("SERVER/CASE outcome")
cmp_run() {
	var=$1 gbin=$2 gport=$3
	: >"$T/g-$var.res"
	for srv in ca no13 user; do
		gname=g-$var-$srv
		if ! start_hostapd "$gname" "$gport" "$(cmp_extra $srv)" "$gbin"; then
			not_ok "$var hostapd ($srv config) starts" "$T/$gname.hostapd.log"
			stop_hostapd
			continue
		fi
		grep "^$srv|" "$T/g.cases" |
		    while IFS='|' read -r _ c _ cert key dn ver id; do
			EAPOL_IDENTITY=$id \
				eapol "g-$var-$srv-$c" "$cert" "$key" "$dn" "$ver" 10
			echo "$srv/$c $(outcome $?)" >>"$T/g-$var.res"
		done
		stop_hostapd
		if dance_noise "$T/$gname.hostapd.log" >"$T/$gname.noise"; then
			not_ok "$var hostapd, $srv config: nothing DANCE-related logged" \
				"$T/$gname.noise"
		else
			ok 0 "$var hostapd, $srv config: nothing DANCE-related logged"
		fi
		gport=$((gport + 1))
	done
}

# (the series' strings, not "dance": a build path may contain that)
if grep -a -q 'dance_trust_anchor_file\|DANCE: ' "$STOCK"; then
	not_ok "the stock hostapd binary has no DANCE code in it"
else
	ok 0 "the stock hostapd binary has no DANCE code in it"
fi
cmp_run stock "$STOCK" 18130
cmp_run patched "$HAPD" 18130
while IFS='|' read -r srv c want _; do
	so=$(sed -n "s|^$srv/$c ||p" "$T/g-stock.res")
	po=$(sed -n "s|^$srv/$c ||p" "$T/g-patched.res")
	if [ -n "$so" ] && [ "$so" = "$po" ] &&
	    [ "$(echo "$so" | cut -d' ' -f2)" = "$want" ]; then
		ok 0 "stock = patched, $srv/$c: $so"
	else
		not_ok "stock = patched, $srv/$c: wanted $want, stock '$so', patched '$po'" \
			"$T/g-stock-$srv-$c.eapol.log" "$T/g-patched-$srv-$c.eapol.log"
	fi
done <"$T/g.cases"
# the TLS version setting is honoured the same way by both
if grep -q '^ca/trusted13 rc=0 SUCCESS TLSv1.3$' "$T/g-stock.res" &&
    grep -q '^no13/trusted13 rc=0 SUCCESS TLSv1.2$' "$T/g-stock.res"; then
	ok 0 "TLS 1.3 with tls_flags=[ENABLE-TLSv1.3], 1.2 with [DISABLE-TLSv1.3]"
else
	not_ok "TLS 1.3 with tls_flags=[ENABLE-TLSv1.3], 1.2 with [DISABLE-TLSv1.3]" \
		"$T/g-stock.res"
fi

# --- D: dance_require=0 keeps PKIX clients working --------------------------
if start_dance d 18125 "dance_require=0
ca_cert=$C/devca.crt"; then
	expect_auth success "dance_require=0: PKIX client without a name passes" \
		d-pkix "$C/sensor7.chain.pem" "$C/sensor7.key" -
	expect_auth failure "dance_require=0: untrusted client without a name fails" \
		d-self "$C/ee311.crt" "$C/ee311.key" -
	expect_auth success "dance_require=0: DANCE client still authenticated by DANE" \
		d-ee311 "$C/ee311.crt" "$C/ee311.key" ee311.clients.test
else
	not_ok "hostapd with dance_require=0 starts" "$T/d.hostapd.log"
fi
stop_hostapd

# --- E: configuration errors are refused ------------------------------------
printf 'driver=none\ninterface=x\neap_server=1\nserver_cert=%s\nprivate_key=%s\ndance=1\ndance_trust_anchor_file=%s\n' \
	"$C/server.crt" "$C/server.key" "$WORLD_TA" >"$T/e1.conf"
# refused CONF DESCRIPTION: hostapd exits with an error instead of running
refused() {
	timeout 5 "$HAPD" "$1" >"$1.log" 2>&1
	rc=$?
	if [ $rc -ne 0 ] && [ $rc -ne 124 ]; then
		ok 0 "$2"
	else
		not_ok "$2 (rc=$rc)" "$1.log"
	fi
}
refused "$T/e1.conf" "dance=1 without an allow-list is refused"
# refused_log CONF PATTERN DESCRIPTION: refused, with PATTERN in its log
refused_log() {
	refused "$1" "$3"
	grep -a -q -- "$2" "$1.log" && ok 0 "$3: the log says why" ||
		not_ok "$3: the log says why (no '$2')" "$1.log"
}
# accepted CONF PATTERN DESCRIPTION: hostapd runs (until the timeout)
# and logs PATTERN
accepted() {
	timeout 3 "$HAPD" -d "$1" >"$1.log" 2>&1
	rc=$?
	if [ $rc -eq 124 ] && grep -a -q -- "$2" "$1.log"; then
		ok 0 "$3"
	else
		not_ok "$3 (rc=$rc, wanted a running hostapd logging '$2')" "$1.log"
	fi
}
# The code point rule is the core's (dance_ext_type_check), as in every
# host: any 16-bit type OpenSSL does not handle itself.
for x in 0xff01:renegotiation_info 0x002b:'handled inside OpenSSL' \
    0x10000:'does not fit 16 bits'; do
	v=${x%%:*}
	printf 'driver=none\ninterface=x\ndance_ext_type=%s\n' "$v" \
		>"$T/e2-$v.conf"
	refused_log "$T/e2-$v.conf" "${x#*:}" "dance_ext_type=$v is refused"
done
cat "$T/e1.conf" >"$T/e2-ok.conf"
printf 'dance_allow=a.clients.test\ndance_ext_type=0x1234\n' >>"$T/e2-ok.conf"
accepted "$T/e2-ok.conf" "extension 0x1234" \
	"dance_ext_type=0x1234 (outside 0xff00-0xffff) is accepted"
printf 'driver=none\ninterface=x\ndance_name_source=ext,dns\n' >"$T/e3.conf"
refused "$T/e3.conf" "an unknown dance_name_source is refused"

# dance_allow_file: a line longer than 511 octets is refused, not split
# (its tail once became an entry of its own: here "denied.clients.test")
long_comment() {	# long_comment OCTETS: "#", filler, " denied.clients.test"
	awk -v n="$1" 'BEGIN { s = "#"; while (length(s) < n - 20) s = s "x";
		print s " denied.clients.test" }'
}
{ long_comment 511; echo a.clients.test; } >"$T/allow-511"
{ long_comment 600; echo a.clients.test; } >"$T/allow-600"
for f in 511 600; do
	cat "$T/e1.conf" >"$T/e4-$f.conf"
	echo "dance_allow_file=$T/allow-$f" >>"$T/e4-$f.conf"
done
[ "$(head -n 1 "$T/allow-511" | wc -c)" = 512 ] &&
    accepted "$T/e4-511.conf" "enabled for EAP-TLS (1 allow-list entries" \
	"dance_allow_file: a 511-octet comment line is read as one line" ||
    not_ok "dance_allow_file: the 511-octet test line has 511 octets"
refused_log "$T/e4-600.conf" "allow-600:1: line longer than 511 octets" \
	"dance_allow_file: a 600-octet line is refused"

# --- M: DANCE_STATUS (hostapd_cli dance_status) against driven traffic ------
# 2 authenticated (one from the cache), a wrong key, a name outside the
# allow-list, a timeout; the counters and one log line per decision.
HAPD_CLI=$(dirname "$HAPD")/hostapd_cli
if [ ! -x "$HAPD_CLI" ]; then
	not_ok "hostapd_cli built next to hostapd ($HAPD_CLI)"
elif ! start_dance m 18131 "dance_timeout=1000
ctrl_interface=$T/ctrl"; then
	not_ok "hostapd with dance=1 and ctrl_interface starts" "$T/m.hostapd.log"
else
	expect_auth success "M: DANE-EE" m-ee311 "$C/ee311.crt" "$C/ee311.key" ee311.clients.test
	expect_auth success "M: DANE-EE again (cache)" m-ee311b "$C/ee311.crt" "$C/ee311.key" ee311.clients.test
	expect_auth failure "M: wrong key" m-other "$C/other.crt" "$C/other.key" ee311.clients.test
	expect_auth failure "M: outside the allow-list" m-denied "$C/ee311.crt" "$C/ee311.key" denied.clients.test
	expect_auth failure "M: timeout" m-slow "$C/ee311.crt" "$C/ee311.key" t7.slow.clients.test
	"$HAPD_CLI" -p "$T/ctrl" -i dance-m dance_status >"$T/m.status" 2>&1
	ok $? "hostapd_cli dance_status answers" "$(cat "$T/m.status")"
	for w in verdicts_success=2 verdicts_refused=3 verdicts_unauthenticated=0 successes_3=2 \
		failures_nomatch=1 failures_not-allowed=1 failures_timeout=1 allowlist_refusals=1 \
		cache_requests_hit=2 cache_requests_miss=2 queries_secure=1 queries_timeout=1 parked_clients=0 up=1; do
		grep -qx -- "$w" "$T/m.status" && ok 0 "DANCE_STATUS: $w" ||
			not_ok "DANCE_STATUS: $w" "$T/m.status"
	done
	n=$(grep -a -c "DANCE: dance: client=[0-9a-f:]* name=" "$HLOG")
	[ "$n" = 5 ] && ok 0 "one log line per decision (5)" ||
		not_ok "one log line per decision (5, got $n)" "$HLOG"
	expect_log "DANCE: dance: client=[0-9a-f:]* name=t7.slow.clients.test outcome=refused reason=timeout lookup_ms=[0-9]* cached=no" \
		"the decision line of a timeout"
	stop_hostapd
fi

# DANCE_KEEP=1 keeps the logs and configs
if [ "$T_FAIL" -eq 0 ] && [ -z "${DANCE_KEEP:-}" ]; then
	KEEP=0
else
	echo "# logs in $T"
fi
finish
