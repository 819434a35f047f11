#!/bin/sh
# world.sh -- the offline DNSSEC test world of the DANCE suite.
#
#   sh t/world/world.sh start DIR          build and start a world in DIR
#   sh t/world/world.sh stop DIR           stop everything it started
#   sh t/world/world.sh count DIR NAME [TYPE]
#                                          queries for NAME/TYPE (default
#                                          TLSA) that reached the
#                                          authoritative side
#   sh t/world/world.sh clearlog DIR       empty the query log
#   sh t/world/world.sh status DIR         exit 0 if the world runs
#   sh t/world/world.sh delegate DIR FILE  add the records in FILE (zone
#                                          lines below test.: a child
#                                          zone's NS, glue and DS) to
#                                          test., sign it again with the
#                                          world's keys and restart NSD
#                                          on its port (t/idm.sh)
#
# "start" makes, from nothing, in 1-2 s (phase times in DIR/setup.log):
#   - ECDSA P-256 certificates in DIR/certs (NAME.crt, NAME.key, and
#     NAME.chain.pem = leaf + issuer for CA-issued certs); server.crt is a
#     spare TLS server cert (localhost, 127.0.0.1);
#   - the zone test. with TLSA records computed from those certificates,
#     signed with ldns (KSK + ZSK, ECDSAP256SHA256, NSEC), trust anchor
#     (DS of the KSK) in DIR/ta, and every RRSIG over bogus.clients.test
#     TLSA corrupted; plus the unsigned child zone insecure.clients.test;
#   - NSD serving both zones on 127.0.0.1 (run as root, it binds and
#     then runs as Debian's nsd user, see make_nsd_dir);
#   - four dnsproxy instances (t/tools/dnsproxy.c) in front of NSD that
#     log every query to DIR/querylog: "proxy" (plain forward, the stub
#     for test. and insecure.clients.test), "late" (answers after
#     800 ms), "slow" (never answers) and "servfail" (SERVFAIL);
#   - DIR/unbound.conf (stub-zones to the proxies, no trust anchor),
#     DIR/env and DIR/pids.
#
# DIR/env holds KEY=VALUE lines, unquoted (DIR may only contain
# [A-Za-z0-9._/+@,:=-]), to source with "set -a; . DIR/env" or to parse:
#   WORLD_DIR            DIR, absolute
#   WORLD_UNBOUND_CONF   libunbound config (ub_ctx_config)
#   WORLD_TA             trust anchor for test. (ub_ctx_add_ta_file)
#   WORLD_TA_BIND        the same as a trust-anchors{} clause (delv -a)
#   WORLD_CERTS          certificate directory
#   WORLD_QUERYLOG       "qname qtype" per query that reached the
#                        authoritative side (lower-case, no final dot)
#   WORLD_AUTH_PORT      NSD (not logged)
#   WORLD_PROXY_PORT     logging forwarder to NSD
#   WORLD_LATE_PORT      answers after WORLD_LATE_MS (800) ms
#   WORLD_SLOW_PORT      never answers
#   WORLD_SERVFAIL_PORT  answers SERVFAIL
#
# Needs: openssl, nsd (Debian package nsd), ldns-keygen/ldns-signzone/
# ldns-key2ds (ldnsutils), setsid (util-linux), a C compiler for dnsproxy
# (built with "make build/t/dnsproxy", $BUILD honoured).  Everything
# listens on 127.0.0.1 only, on ports in 20000-29999; all files stay in
# DIR, except NSD's working copy when run as root (/tmp/dance-world-nsd.*,
# removed by stop).  Works as root and unprivileged.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CNF=$HERE/certs.cnf
LATE_MS=800
PATH=$PATH:/usr/sbin:/sbin
export PATH
CLEANUP=

usage() {
	echo "usage: world.sh start|stop|status|clearlog DIR | count DIR NAME [TYPE] | delegate DIR FILE" >&2
	exit 2
}

die() {
	echo "world.sh: $*" >&2
	if [ -n "$CLEANUP" ]; then
		d=$CLEANUP
		CLEANUP=
		stop_world "$d" >/dev/null 2>&1
	fi
	exit 1
}

now_ms() {
	date +%s%3N
}

# Phase timings go to DIR/setup.log (start must stay well under 5 s).
phase() {
	t=$(now_ms)
	echo "phase $1: $((t - T_LAST)) ms" >>"$LOG"
	T_LAST=$t
}

# Absolute path without quoting trouble: DIR/env is written unquoted so
# that C tests can parse it line by line.
abs_dir() {
	case $1 in
	/*) d=$1 ;;
	*) d=$(pwd)/$1 ;;
	esac
	case $d in
	*[!A-Za-z0-9._/+@,:=-]*)
		die "unsupported characters in directory name: $d" ;;
	esac
	echo "${d%/}"
}

need() {
	command -v "$1" >/dev/null 2>&1 ||
		die "$1 not found; install the Debian package: apt-get install $2"
}

# Is this pid one of ours (alive and started with DIR on its command line)?
ours() {
	alive "$1" || return 1
	[ -r "/proc/$1/cmdline" ] || return 0
	tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF "$2/"
}

running() {
	[ -f "$1/pids" ] || return 1
	while read -r pid name; do
		ours "$pid" "$1" && return 0
	done <"$1/pids"
	return 1
}

wait_file() {
	i=0
	while [ ! -s "$1" ]; do
		i=$((i + 1))
		[ $i -le 200 ] || return 1
		sleep 0.02
	done
}

# --- dnsproxy binary -------------------------------------------------------

find_proxy() {
	b=${BUILD:-build}
	case $b in
	/*) ;;
	*) b=$REPO/$b ;;
	esac
	PROXY=$b/t/dnsproxy
	src=$REPO/t/tools/dnsproxy.c
	if [ -x "$PROXY" ] && ! [ "$src" -nt "$PROXY" ]; then
		return
	fi
	mkdir -p "$b/t"
	if ! make -C "$REPO" BUILD="$b" "$PROXY" >"$b/t/dnsproxy.build.log" 2>&1; then
		# The rest of the tree may be broken; dnsproxy needs no libdance.
		echo "world.sh: make failed (see $b/t/dnsproxy.build.log), compiling dnsproxy directly" >&2
		${CC:-cc} -O2 -Wall -Wextra -D_GNU_SOURCE -o "$PROXY" "$src" ||
			die "cannot build $PROXY"
	fi
}

# --- certificates ----------------------------------------------------------
#
# Process count is what costs time here (every exec is 10-50 ms on a busy
# two-core machine), so each certificate is one openssl run, and the TLSA
# data for all of them comes from one awk, a few base64 -d and one openssl
# dgst per hash algorithm.

NEWKEY="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256"

# req NAME OUT OPENSSL-ARGS...: key $C/NAME.key, output OUT
req() {
	name=$1
	out=$2
	shift 2
	openssl req -x509 -new $NEWKEY -days 3650 -config "$CNF" \
		-keyout "$C/$name.key" -out "$out" "$@" >>"$LOG" 2>&1 ||
		die "openssl failed for $name (see $LOG)"
}

# selfsigned NAME SAN [EXT]: the output also carries the public key
# (-pubkey), split off by split_pems.
selfsigned() {
	SAN=$2 req "$1" "$T/$1.pem" -extensions "${3:-ee}" -subj "/CN=$2" \
		-pubkey
}

# issued NAME SAN ISSUER [-pubkey]: leaf cert signed by ISSUER
issued() {
	if [ $# -gt 3 ]; then out=$T/$1.pem; else out=$C/$1.crt; fi
	SAN=$2 req "$1" "$out" -extensions leaf -subj "/CN=$2" \
		-CA "$C/$3.crt" -CAkey "$C/$3.key" ${4:-}
}

# ca NAME CN
ca() {
	SAN=unused req "$1" "$C/$1.crt" -extensions ca_ext -subj "/CN=$2"
}

# Self-signed, valid 2020-01-01 .. 2021-01-01: "openssl ca" is the 3.0
# way to set explicit dates.  The CSR carries the public key.
expired() {
	mkdir -p "$CADIR"
	: >"$CADIR/index.txt"
	echo 01 >"$CADIR/serial"
	SAN=$2 openssl req -new $NEWKEY -config "$CNF" -subj "/CN=$2" \
		-pubkey -keyout "$C/$1.key" -out "$T/$1.pem" >>"$LOG" 2>&1 &&
	SAN=$2 openssl ca -batch -config "$CNF" -selfsign \
		-keyfile "$C/$1.key" -in "$T/$1.pem" -out "$C/$1.crt" \
		-startdate 200101000000Z -enddate 210101000000Z \
		-extensions ee -notext >>"$LOG" 2>&1 ||
		die "openssl failed for $1 (see $LOG)"
}

make_certs() {
	C=$DIR/certs
	T=$DIR/tlsa
	mkdir -p "$C" "$T"
	# Three lanes in parallel (two cores, and openssl waits on I/O too).
	(
		selfsigned ee311 ee311.clients.test
		selfsigned ee312 ee312.clients.test
		selfsigned full full.clients.test
		selfsigned ee301 ee301.clients.test
		selfsigned other other.clients.test
		SAN=server.test req server "$C/server.crt" -extensions server \
			-subj /CN=server.test
	) &
	p1=$!
	(
		ca devca "DANCE test device CA"
		issued sensor7 sensor7._device.clients.test devca
		issued nosan other.example devca
		selfsigned rollold rollover.clients.test
		selfsigned rollnew rollover.clients.test
	) &
	p2=$!
	ca pkixca "DANCE test PKIX CA"
	issued pkixee pkix-ee.clients.test pkixca -pubkey
	issued pkixta pkix-ta.clients.test pkixca
	expired expired expired.clients.test
	wait $p1 || die "certificate generation failed (see $LOG)"
	wait $p2 || die "certificate generation failed (see $LOG)"
	split_pems
	for n in sensor7:devca nosan:devca pkixee:pkixca pkixta:pkixca; do
		cat "$C/${n%:*}.crt" "$C/${n#*:}.crt" >"$C/${n%:*}.chain.pem"
	done
}

# One awk for all $T/NAME.pem: "PUBLIC KEY" -> $T/NAME.spki.b64,
# "CERTIFICATE" -> $C/NAME.crt (the CSR of "expired" only gives its key).
split_pems() {
	awk -v C="$C" '
		FNR == 1 { n = FILENAME; sub(/.*\//, "", n); sub(/\.pem$/, "", n)
			out = "" }
		/^-----BEGIN PUBLIC KEY-----$/ {
			out = FILENAME; sub(/\.pem$/, ".spki.b64", out); next }
		/^-----END PUBLIC KEY-----$/ { close(out); out = ""; next }
		/^-----BEGIN CERTIFICATE-----$/ { out = C "/" n ".crt" }
		out != "" { print > out }
		/^-----END CERTIFICATE-----$/ { close(out); out = "" }
	' "$T"/*.pem || die "cannot split the openssl output"
}

# --- TLSA data -------------------------------------------------------------

# Every TLSA record of test.: "OWNER USAGE SELECTOR MTYPE CERT".
TLSA_SPEC='ee311.clients 3 1 1 ee311
ee312.clients 3 1 2 ee312
full.clients 3 1 0 full
ee301.clients 3 0 1 ee301
expired.clients 3 1 1 expired
*._device.clients 2 0 1 devca
pkix-ee.clients 1 1 1 pkixee
pkix-ta.clients 0 0 1 pkixca
rollover.clients 3 1 1 rollold
rollover.clients 3 1 1 rollnew
rollover.clients 3 1 2 rollnew
bogus.clients 3 1 1 ee311
dev.late.clients 3 1 1 ee311
x.slow.clients 3 1 1 ee311
x.servfail.clients 3 1 1 ee311'

# Writes $T/records (zone lines) and $T/ee311 (its 3 1 1 rdata).
make_tlsa() {
	# The DER that each record selects: the SPKI (from the -pubkey
	# output) or the whole certificate.
	for f in $(echo "$TLSA_SPEC" |
		awk '{ print $5 ($3 == 0 ? ".cert" : ".spki") }' | sort -u); do
		case $f in
		*.spki) base64 -d "$T/$f.b64" >"$T/$f" ;;
		*.cert) sed '/^-----/d' "$C/${f%.cert}.crt" | base64 -d >"$T/$f" ;;
		esac || die "cannot decode $f"
	done
	( cd "$T" && openssl dgst -sha256 -r *.spki *.cert ) >"$T/sha256" &&
	( cd "$T" && openssl dgst -sha512 -r *.spki *.cert ) >"$T/sha512" &&
	od -An -v -tx1 "$T/full.spki" >"$T/full.spki.hex" ||
		die "openssl dgst failed"
	echo "$TLSA_SPEC" | awk -v T="$T" '
		BEGIN {
			while ((getline l < (T "/sha256")) > 0) {
				split(l, a, " "); sub(/^\*/, "", a[2]); h[1, a[2]] = a[1] }
			while ((getline l < (T "/sha512")) > 0) {
				split(l, a, " "); sub(/^\*/, "", a[2]); h[2, a[2]] = a[1] }
			while ((getline l < (T "/full.spki.hex")) > 0) {
				gsub(/ /, "", l); h[0, "full.spki"] = h[0, "full.spki"] l }
		}
		{
			f = $5 ($3 == 0 ? ".cert" : ".spki")
			d = h[$4, f]
			if (d == "" || ($4 == 1 && length(d) != 64) ||
				($4 == 2 && length(d) != 128)) {
				print "no TLSA data for " $0 > "/dev/stderr"; exit 1 }
			printf "%-22s TLSA\t%s %s %s %s\n", $1, $2, $3, $4, d
			if ($1 == "ee311.clients") print $2, $3, $4, d > (T "/ee311")
		}' >"$T/records" || die "cannot compute the TLSA records"
}

# NSD's files.  DIR/nsd holds the zones (written and signed there) and
# the configuration.  Run as root, NSD binds its port and then runs as
# Debian's nsd user, which must read the zones and write its state
# (zone list, xfrd state, temporary directories).  DIR and its parents
# may be private (a test's mktemp -d), so as root NSD works in a
# directory of its own under /tmp, owned by nsd (named in
# DIR/nsd/rundir), with copies of the zones (nsd_sync).  Its
# configuration, pid file and log stay in DIR: NSD reads and opens them
# before it drops its privileges.  stop removes the directory.
make_nsd_dir() {
	Z=$DIR/nsd
	mkdir -p "$Z" || die "cannot create $Z"
	[ "$(id -u)" = 0 ] || return 0
	id nsd >/dev/null 2>&1 ||
		die "no nsd user to run NSD as (Debian package nsd creates it)"
	zd=$(mktemp -d /tmp/dance-world-nsd.XXXXXX) ||
		die "cannot create NSD's directory"
	echo "$zd" >"$Z/rundir"
}

# nsd_rundir: where NSD works (DIR/nsd when not root)
nsd_rundir() {
	if [ -f "$Z/rundir" ]; then
		cat "$Z/rundir"
	else
		echo "$Z"
	fi
}

# nsd_dir_rm: remove NSD's own directory (DIR/nsd stays)
nsd_dir_rm() {
	[ -f "$DIR/nsd/rundir" ] || return 0
	zd=$(cat "$DIR/nsd/rundir")
	case $zd in
	/tmp/dance-world-nsd.*) rm -rf "$zd" ;;
	esac
	rm -f "$DIR/nsd/rundir"
}

# nsd_sync: the zones, as signed, into NSD's own directory (as root)
nsd_sync() {
	zd=$(nsd_rundir)
	[ "$zd" = "$Z" ] && return 0
	cp "$Z/test.zone.signed" "$Z/insecure.zone" "$zd/" &&
	chown -R nsd:nsd "$zd/" ||
		die "cannot give the zones to the nsd user in $zd"
}

# nsd_check: every NSD process runs as the nsd user (as root)
nsd_check() {
	[ "$(id -u)" = 0 ] || return 0
	pid=$(cat "$Z/nsd.pid" 2>/dev/null) || pid=$1
	# setsid: NSD leads its session, its children are in it
	users=$(ps -o user= -s "$pid")
	echo "$users" | grep -q . || die "no NSD process to check"
	bad=$(echo "$users" | grep -v '^nsd$' | grep . | sort -u)
	[ -z "$bad" ] || die "NSD runs as $bad, not as the nsd user"
}

make_zones() {
	make_nsd_dir
	make_tlsa
	{
		cat <<EOF
\$ORIGIN test.
\$TTL 300
@		SOA	ns.test. hostmaster.test. 1 3600 600 86400 300
		NS	ns.test.
ns		A	127.0.0.1
nodata.clients		A	127.0.0.1
; unsigned child zone: delegation without DS
insecure.clients	NS	ns.test.
; The TLSA records.  bogus.clients gets a corrupted RRSIG after signing;
; the late / slow / servfail subtrees are reached through their proxies
; (the resolver's stub-zones send them there; NSD needs no zone cut).
EOF
		cat "$T/records"
		# big.clients: ee311's record among 150 that no client can
		# use (usage 255, 200 octets each), some 31 KB: more than a
		# small nginx shared cache holds (t/nginx_shared.sh).
		printf 'big.clients\t\tTLSA\t%s\n' "$(cat "$T/ee311")"
		i=0
		while [ $i -lt 150 ]; do
			printf 'big.clients\t\tTLSA\t255 255 255 %04x%0396d\n' $i 0
			i=$((i + 1))
		done
	} >"$Z/test.zone"
	cat >"$Z/insecure.zone" <<EOF
\$ORIGIN insecure.clients.test.
\$TTL 300
@	SOA	ns.test. hostmaster.test. 1 3600 600 86400 300
	NS	ns.test.
x	TLSA	$(cat "$T/ee311")
EOF
}

# KSK and ZSK in their own directories (equal key tags must not clash);
# runs in the background while the certificates are made.
make_keys() {
	mkdir -p "$K/ksk" "$K/zsk"
	( cd "$K/ksk" && ldns-keygen -a ECDSAP256SHA256 -k test. >name ) &&
	( cd "$K/zsk" && ldns-keygen -a ECDSAP256SHA256 test. >name )
}

sign_zone() {
	ksk=$(cat "$K/ksk/name") && [ -n "$ksk" ] &&
	zsk=$(cat "$K/zsk/name") && [ -n "$zsk" ] ||
		die "ldns-keygen failed (see $LOG)"
	# Inception a day back: no trouble from clock skew.
	ldns-signzone -o test. -f "$Z/test.zone.signed" \
		-i "$(date -u -d '1 day ago' +%Y%m%d%H%M%S)" \
		-e "$(date -u -d '90 days' +%Y%m%d%H%M%S)" \
		"$Z/test.zone" "$K/ksk/$ksk" "$K/zsk/$zsk" 2>>"$LOG" ||
		die "ldns-signzone failed (see $LOG)"
	ldns-key2ds -n -2 "$K/ksk/$ksk.key" >"$DIR/ta" 2>>"$LOG" &&
		[ -s "$DIR/ta" ] || die "ldns-key2ds failed (see $LOG)"
	# The same anchor for BIND tools (delv -a).
	awk '{ printf "trust-anchors {\n\t%s static-ds %s %s %s \"%s\";\n};\n",
		$1, $5, $6, $7, $8 }' "$DIR/ta" >"$DIR/ta.bind"
	# Flip one base64 character in every RRSIG over bogus.clients.test
	# TLSA: still well-formed, no longer a valid signature.
	awk '$1 == "bogus.clients.test." && $4 == "RRSIG" && $5 == "TLSA" {
			s = $NF; c = substr(s, 10, 1)
			$NF = substr(s, 1, 9) (c == "A" ? "B" : "A") substr(s, 11)
			n++
		}
		{ print }
		END { if (n == 0) exit 1 }' "$Z/test.zone.signed" \
		>"$Z/test.zone.bogus" || die "no RRSIG over bogus.clients.test TLSA"
	mv "$Z/test.zone.bogus" "$Z/test.zone.signed"
}

# --- servers ---------------------------------------------------------------

# NSD and the proxies start together (the proxies only need NSD's port);
# if NSD cannot start (say its port was taken in the meantime),
# everything is stopped and tried again on a new port.
start_servers() {
	tries=0
	while :; do
		tries=$((tries + 1))
		AUTH_PORT=$("$PROXY" -F) || die "no free port"
		write_nsd_conf
		nsd_sync
		rm -f "$Z/nsd.pid"
		setsid nsd -d -c "$Z/nsd.conf" </dev/null >>"$DIR/nsd.log" 2>&1 &
		NSD_PID=$!
		echo "$NSD_PID nsd" >>"$DIR/pids"
		start_proxy proxy forward
		start_proxy late "delay:$LATE_MS"
		start_proxy slow drop
		start_proxy servfail servfail
		# -Q gives up after 2 s; a loaded machine may need longer, so
		# keep probing while NSD lives (it exits at once on a bind
		# error).
		up=
		for i in 1 2 3 4 5; do
			if "$PROXY" -Q "$AUTH_PORT"; then
				up=1
				break
			fi
			alive "$NSD_PID" || break
		done
		[ -n "$up" ] && break
		[ $tries -lt 3 ] ||
			die "nsd did not start; last lines of $DIR/nsd.log:
$(tail -n 5 "$DIR/nsd.log")"
		stop_world "$DIR" >/dev/null
		: >"$DIR/pids"
	done
	PROXY_PORT=$(proxy_port proxy) &&
	LATE_PORT=$(proxy_port late) &&
	SLOW_PORT=$(proxy_port slow) &&
	SERVFAIL_PORT=$(proxy_port servfail) || exit 1
	nsd_check "$NSD_PID"
	# setsid may fork: the pid files hold the real pids.
	{
		echo "$(cat "$Z/nsd.pid" 2>/dev/null || echo "$NSD_PID") nsd"
		for p in proxy late slow servfail; do
			echo "$(cat "$DIR/$p.pid") $p"
		done
	} >>"$DIR/pids"
	sort -u -o "$DIR/pids" "$DIR/pids"
}

write_nsd_conf() {
	zd=$(nsd_rundir)
	user=
	[ "$(id -u)" = 0 ] && user=nsd
	cat >"$Z/nsd.conf" <<EOF
server:
	ip-address: 127.0.0.1@$AUTH_PORT
	port: $AUTH_PORT
	do-ip6: no
	username: "$user"
	chroot: ""
	zonesdir: "$zd"
	database: ""
	zonelistfile: "$zd/zone.list"
	xfrdfile: "$zd/xfrd.state"
	xfrdir: "$zd"
	pidfile: "$Z/nsd.pid"
	logfile: "$DIR/nsd.log"
	verbosity: 2
	server-count: 1
	reuseport: no
	zonefiles-check: no
	zonefiles-write: 0
	# No response rate limiting: tests send bursts from one address
	# (a small table also saves NSD ~100 ms of start-up).
	rrl-ratelimit: 0
	rrl-whitelist-ratelimit: 0
	rrl-size: 1
remote-control:
	control-enable: no
zone:
	name: "test."
	zonefile: "test.zone.signed"
zone:
	name: "insecure.clients.test."
	zonefile: "insecure.zone"
EOF
}

# start_proxy NAME MODE
start_proxy() {
	rm -f "$DIR/$1.port" "$DIR/$1.pid"
	setsid "$PROXY" -m "$2" -u "$AUTH_PORT" -L "$DIR/querylog" \
		-P "$DIR/$1.port" -f "$DIR/$1.pid" \
		</dev/null >>"$DIR/$1.log" 2>&1 &
	echo "$! $1" >>"$DIR/pids"
}

proxy_port() {
	wait_file "$DIR/$1.port" || die "dnsproxy $1 did not start (see $DIR/$1.log)"
	cat "$DIR/$1.port"
}

write_conf() {
	cat >"$DIR/unbound.conf" <<EOF
# libunbound configuration of the DANCE test world (no trust anchor here:
# pass $DIR/ta as a trust anchor file).
server:
	do-not-query-localhost: no
	local-zone: "test." nodefault
	val-log-level: 2
	# Longer than the late proxy's delay, so a late answer is awaited
	# instead of re-sent (one query per lookup in the query log).
	unknown-server-time-limit: 1128
	# Deterministic query log: only the real questions reach the
	# authoritative side, each name/type once until its TTL ends (no
	# answers synthesised from cached NSEC, no key-tag queries).
	qname-minimisation: no
	aggressive-nsec: no
	trust-anchor-signaling: no

stub-zone:
	name: "test."
	stub-addr: 127.0.0.1@$PROXY_PORT
stub-zone:
	name: "insecure.clients.test."
	stub-addr: 127.0.0.1@$PROXY_PORT
stub-zone:
	name: "late.clients.test."
	stub-addr: 127.0.0.1@$LATE_PORT
stub-zone:
	name: "slow.clients.test."
	stub-addr: 127.0.0.1@$SLOW_PORT
stub-zone:
	name: "servfail.clients.test."
	stub-addr: 127.0.0.1@$SERVFAIL_PORT
EOF
	cat >"$DIR/env.tmp" <<EOF
WORLD_DIR=$DIR
WORLD_UNBOUND_CONF=$DIR/unbound.conf
WORLD_TA=$DIR/ta
WORLD_TA_BIND=$DIR/ta.bind
WORLD_CERTS=$DIR/certs
WORLD_QUERYLOG=$DIR/querylog
WORLD_AUTH_PORT=$AUTH_PORT
WORLD_PROXY_PORT=$PROXY_PORT
WORLD_LATE_PORT=$LATE_PORT
WORLD_LATE_MS=$LATE_MS
WORLD_SLOW_PORT=$SLOW_PORT
WORLD_SERVFAIL_PORT=$SERVFAIL_PORT
EOF
	mv "$DIR/env.tmp" "$DIR/env"
}

start_world() {
	t0=$(now_ms)
	DIR=$(abs_dir "$1") || exit 1
	if running "$DIR"; then
		die "a world is already running in $DIR (sh $0 stop $DIR first)"
	fi
	need openssl openssl
	need nsd nsd
	need ldns-keygen ldnsutils
	need ldns-signzone ldnsutils
	need ldns-key2ds ldnsutils
	need setsid util-linux
	mkdir -p "$DIR" || die "cannot create $DIR"
	# Leftovers of an earlier, stopped world in the same DIR.
	nsd_dir_rm
	rm -rf "$DIR/certs" "$DIR/keys" "$DIR/nsd" "$DIR/ca" "$DIR/tlsa"
	rm -f "$DIR"/*.port "$DIR"/*.pid "$DIR"/*.log "$DIR/pids" \
		"$DIR/env" "$DIR/querylog" "$DIR/ta" "$DIR/ta.bind" \
		"$DIR/unbound.conf"
	LOG=$DIR/setup.log
	CADIR=$DIR/ca
	export CADIR
	K=$DIR/keys
	: >"$LOG"
	: >"$DIR/querylog"
	: >"$DIR/pids"
	T_LAST=$t0
	find_proxy
	phase dnsproxy
	make_keys >>"$LOG" 2>&1 &
	keys=$!
	make_certs
	phase certs
	make_zones
	phase tlsa+zones
	wait $keys || die "ldns-keygen failed (see $LOG)"
	sign_zone
	phase signing
	CLEANUP=$DIR
	start_servers
	write_conf
	phase servers
	CLEANUP=
	echo "world: ready in $(($(now_ms) - t0)) ms; . $DIR/env"
}

# Alive and not a zombie (our init may be slow to reap).
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	st=
	read -r st <"/proc/$1/stat" 2>/dev/null || return 0
	st=${st##*) }
	[ "${st%% *}" != Z ]
}

# gone_after N PID...: wait up to N*20 ms until no PID is alive.
gone_after() {
	n=$1
	shift
	while [ "$n" -gt 0 ]; do
		alive=
		for pid in "$@"; do
			alive "$pid" && alive=1
		done
		[ -n "$alive" ] || return 0
		n=$((n - 1))
		sleep 0.02
	done
	return 1
}

stop_world() {
	DIR=$(abs_dir "$1") || exit 1
	[ -f "$DIR/pids" ] || return 0
	pids=
	while read -r pid name; do
		if ours "$pid" "$DIR"; then
			pids="$pids $pid"
			# Each service is its own process group (setsid): this
			# also reaches NSD's children.
			kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
		fi
	done <"$DIR/pids"
	# NSD takes 1-2 s to shut down cleanly; nothing here needs a clean
	# shutdown, so whatever still runs after 0.2 s is killed.
	gone_after 10 $pids
	# Also reaps children left in a group whose leader already exited.
	for pid in $pids; do
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
	done
	gone_after 100 $pids || die "could not stop:$pids"
	rm -f "$DIR/pids"
	nsd_dir_rm
	echo "world: stopped"
}

# Other tests see the same zone plus the new records: the keys, the
# trust anchor and the ports stay as they were.
delegate() {
	DIR=$(abs_dir "$1") || exit 1
	[ -r "$2" ] || die "cannot read $2"
	running "$DIR" || die "no world runs in $DIR"
	Z=$DIR/nsd
	K=$DIR/keys
	LOG=$DIR/setup.log
	AUTH_PORT=$(sed -n 's/^WORLD_AUTH_PORT=//p' "$DIR/env")
	{ echo; cat "$2"; } >>"$Z/test.zone"
	sign_zone
	old=$(awk '$2 == "nsd" { print $1 }' "$DIR/pids")
	for pid in $old; do
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
	done
	gone_after 100 $old || die "nsd did not stop"
	nsd_sync
	rm -f "$Z/nsd.pid"
	setsid nsd -d -c "$Z/nsd.conf" </dev/null >>"$DIR/nsd.log" 2>&1 &
	NSD_PID=$!
	find_proxy
	for i in 1 2 3 4 5; do
		"$PROXY" -Q "$AUTH_PORT" && break
		alive "$NSD_PID" || die "nsd did not restart (see $DIR/nsd.log)"
	done
	nsd_check "$NSD_PID"
	awk '$2 != "nsd"' "$DIR/pids" >"$DIR/pids.tmp"
	echo "$(cat "$Z/nsd.pid" 2>/dev/null || echo "$NSD_PID") nsd" >>"$DIR/pids.tmp"
	mv "$DIR/pids.tmp" "$DIR/pids"
	echo "world: delegated ($(grep -c . "$2") records added)"
}

count() {
	DIR=$(abs_dir "$1") || exit 1
	name=$(echo "$2" | tr 'A-Z' 'a-z')
	[ "$name" = . ] || name=${name%.}
	type=$(echo "${3:-TLSA}" | tr 'A-Z' 'a-z')
	if [ ! -f "$DIR/querylog" ]; then
		echo 0
		return
	fi
	awk -v n="$name" -v t="$type" '$1 == n && $2 == t { c++ }
		END { print c + 0 }' "$DIR/querylog"
}

[ $# -ge 2 ] || usage
cmd=$1
shift
case $cmd in
start)
	[ $# -eq 1 ] || usage
	start_world "$1" ;;
stop)
	[ $# -eq 1 ] || usage
	stop_world "$1" ;;
status)
	[ $# -eq 1 ] || usage
	d=$(abs_dir "$1") && running "$d" ;;
delegate)
	[ $# -eq 2 ] || usage
	delegate "$1" "$2" ;;
clearlog)
	[ $# -eq 1 ] || usage
	d=$(abs_dir "$1") && : >"$d/querylog" ;;
count)
	[ $# -eq 2 ] || [ $# -eq 3 ] || usage
	count "$@" ;;
*)
	usage ;;
esac
