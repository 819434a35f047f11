#!/bin/sh
# bench/freeradius/run.sh -- EAP-TLS authentications/s of FreeRADIUS with
# rlm_dance: DANE clients (self-signed DANE-EE cert, TLSA cached) against
# PKIX clients (cert from the CA in eap's ca_file), same freeradius, same
# eapol_test, same key type (ECDSA P-256), TLS 1.2 full handshakes, in
# one run.  Prints both rates, server CPU per authentication and the
# DANE/PKIX ratio (target >= 0.9; exit status 1 below it).
#
#   sh bench/freeradius/run.sh [ROUNDS [CLIENTS [AUTHS-PER-CLIENT]]]
#
# Needs "make freeradius".  Starts its own DNS test world unless
# WORLD_ENV is set.  Rounds alternate the two setups (and which goes
# first) so that load from elsewhere hits them alike.
set -u
ROUNDS=${1:-6}
CLIENTS=${2:-16}
AUTHS=${3:-8}

top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$top/build}
[ -f "$BUILD/freeradius/rlm_dance.so" ] ||
	{ echo "bench: $BUILD/freeradius/rlm_dance.so missing (make freeradius)" >&2; exit 1; }

T=$(mktemp -d /tmp/dance-bench-fr.XXXXXX)
own_world=
frpid=
cleanup() {
	[ -n "$frpid" ] && kill "$frpid" 2>/dev/null && wait "$frpid" 2>/dev/null
	[ -n "$own_world" ] && sh "$top/t/world/world.sh" stop "$own_world" >/dev/null 2>&1
	[ -z "${KEEP:-}" ] && rm -rf "$T"
}
trap cleanup EXIT
bail() { echo "bench: $*" >&2; exit 1; }

if [ -z "${WORLD_ENV:-}" ]; then
	own_world=$T/world
	sh "$top/t/world/world.sh" start "$own_world" >"$T/world.log" 2>&1 ||
		{ cat "$T/world.log"; exit 1; }
	WORLD_ENV=$own_world/env
fi
. "$WORLD_ENV"
C=$WORLD_CERTS
. "$top/t/lib/freeradius.sh"

fr_setup 3000
# No debug output: it would dominate the cost.
fr_start "" || bail "freeradius did not start"

# conf TAG CERT KEY
conf() {
	cat >"$T/$1.conf" <<EOC
network={
	key_mgmt=IEEE8021X
	eap=TLS
	identity="bench"
	client_cert="$2"
	private_key="$3"
	phase1="tls_disable_tlsv1_3=1"
	eapol_flags=0
}
EOC
}
conf dane "$C/ee311.crt" "$C/ee311.key"
conf pkix "$K/corp.crt" "$K/corp.key"

# round TAG: CLIENTS eapol_test processes, AUTHS authentications each;
# prints elapsed ms, fails if any authentication failed.
round() {
	t0=$(date +%s%N)
	pids=
	for c in $(seq "$CLIENTS"); do
		eapol_test -c "$T/$1.conf" -a 127.0.0.1 -p "$AUTH_PORT" -s testing123 \
			-r "$((AUTHS - 1))" -t 60 >"$T/$1.$c.log" 2>&1 &
		pids="$pids $!"
	done
	rc=0
	for p in $pids; do
		wait "$p" || rc=1
	done
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
	return $rc
}

# Warm up: one client first puts the TLSA set into the cache (a cold
# burst would mostly be turned away by max_waiting_per_domain, as
# designed), then the code paths and the thread pool.
eapol_test -c "$T/dane.conf" -a 127.0.0.1 -p "$AUTH_PORT" -s testing123 -t 30 \
	>"$T/warm.log" 2>&1 || bail "DANE warm-up failed"
round dane >/dev/null || bail "DANE warm-up failed"
round pkix >/dev/null || bail "PKIX warm-up failed"

# Server CPU time (utime + stime, clock ticks) of freeradius so far.
fr_cpu() { awk '{print $14 + $15}' "/proc/$frpid/stat"; }

# Rounds alternate which setup goes first; each round yields one paired
# ratio, and the median of those is the figure (robust against load
# from elsewhere drifting during the run).  Server CPU per
# authentication is measured too.
: >"$T/ratios"
dane_ms=0 pkix_ms=0 dane_cpu=0 pkix_cpu=0
for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) -eq 1 ]; then order="dane pkix"; else order="pkix dane"; fi
	for setup in $order; do
		c0=$(fr_cpu)
		ms=$(round "$setup") || bail "$setup round $r: authentication failed (see $T)"
		c1=$(fr_cpu)
		eval "${setup}_ms=\$((${setup}_ms + ms)) ${setup}_cpu=\$((${setup}_cpu + c1 - c0)) ${setup}_r=\$ms"
	done
	echo "$pkix_r $dane_r" | awk '{printf "%.4f\n", $1 / $2}' >>"$T/ratios"
done

n=$((ROUNDS * CLIENTS * AUTHS))
median=$(sort -n "$T/ratios" | awk '{v[NR] = $1} END {
	if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
hz=$(getconf CLK_TCK)
awk -v n="$n" -v d="$dane_ms" -v p="$pkix_ms" -v dc="$dane_cpu" -v pc="$pkix_cpu" \
    -v hz="$hz" -v med="$median" -v rounds="$ROUNDS" 'BEGIN {
	dr = n / (d / 1000); pr = n / (p / 1000)
	printf "freeradius EAP-TLS (TLS 1.2, full handshakes, %d per setup, %d rounds)\n", n, rounds
	printf "  DANE (DANE-EE, cached TLSA): %8.1f auth/s  %6.2f ms server CPU/auth\n", dr, dc * 1000 / hz / n
	printf "  PKIX (configured CA):        %8.1f auth/s  %6.2f ms server CPU/auth\n", pr, pc * 1000 / hz / n
	printf "  ratio DANE/PKIX, totals: %.3f; server CPU: %.3f\n", dr / pr, (dc > 0 ? pc / dc : 1)
	printf "  ratio DANE/PKIX, median of paired rounds: %.3f (target >= 0.9)\n", med
	exit !(med >= 0.9)
}'
