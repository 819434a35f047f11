#!/bin/sh
# bench/hostapd_slow.sh -- part 3c of bench/run.sh: another supplicant's
# EAP-TLS time in hostapd while lookups hang on a never-answering
# authoritative.  hostapd's RADIUS server binds every interface, so this
# runs inside a private network namespace with its own DNS world:
#
#   BUILD=<abs build dir> unshare -n sh bench/hostapd_slow.sh DIR
#
# Runs the procedure twice: with the world's libunbound configuration and
# with "outgoing-range: 4096" added (the fix proposed in the report).
# Prints markdown lines prefixed "md " and, on success, "result ok".
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
. "$top/t/lib/hostapd.sh"
HANG=${HANG:-32}
TMO=6000
D=$1
W=$D/world
HPID=
mkdir -p "$D"

cleanup() {
	hapd_stop
	sh "$top/t/world/world.sh" stop "$W" >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ip link set lo up || exit 1
sh "$top/t/world/world.sh" start "$W" >"$D/world.log" 2>&1 ||
	{ cat "$D/world.log" >&2; exit 1; }
. "$W/env"
C=$WORLD_CERTS
sed 's/^server:/server:\n\toutgoing-range: 4096/' "$WORLD_UNBOUND_CONF" >"$D/unbound-fix.conf"

# start_hapd PORT UNBOUND_CONF
start_hapd() {
	PORT=$1
	hapd_radius_conf "$D/hostapd.$PORT.conf" "$D" "bench$PORT" "$PORT"
	cat >>"$D/hostapd.$PORT.conf" <<EOF
dance=1
dance_trust_anchor_file=$WORLD_TA
dance_unbound_conf=$2
dance_allow=ee312.clients.test
dance_allow=ee301.clients.test
dance_allow=full.clients.test
dance_allow=rollover.clients.test
dance_allow=.slow.clients.test
dance_timeout=$TMO
dance_max_pending=1000
EOF
	hapd_start "$D/hostapd.$PORT.conf" "$D/hostapd.$PORT.log" "$PORT" \
		"$HOSTAPD" " " || { cat "$D/hostapd.$PORT.log" >&2; return 1; }
}

# sconf TAG CERT KEY NAME
sconf() {
	cat >"$D/$1.conf" <<EOF
network={
	key_mgmt=IEEE8021X
	eap=TLS
	identity="$4"
	dane_client_id="$4"
	ca_cert="$C/server.crt"
	client_cert="$2"
	private_key="$3"
	phase1="tls_disable_tlsv1_3=0"
}
EOF
}
# auth TAG: one EAP-TLS authentication, prints "ms rc"
auth() {
	a0=$(date +%s%N)
	"$EAPOL_TEST" -c "$D/$1.conf" -a 127.0.0.1 -p "$PORT" -s testing123 -r0 \
		-t 20 >"$D/$1.$PORT.log" 2>&1
	rc=$?
	echo "$((($(date +%s%N) - a0) / 1000000)) $rc"
}
median() {
	sort -g | awk '{v[NR] = $1} END {
		if (NR == 0) { print "n/a"; exit }
		if (NR % 2) print v[(NR + 1) / 2];
		else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

sconf healthy "$C/ee312.crt" "$C/ee312.key" ee312.clients.test
sconf cold0 "$C/ee301.crt" "$C/ee301.key" ee301.clients.test
sconf cold2 "$C/rollnew.crt" "$C/rollnew.key" rollover.clients.test
sconf cold1 "$C/full.crt" "$C/full.key" full.clients.test

# variant TAG PORT UNBOUND_CONF: 3 rounds; results in $D/TAG.*
variant() {
	V=$D/$1
	start_hapd "$2" "$3" || return 1
	set -- $(auth healthy)
	[ "$2" -eq 0 ] || { echo "healthy warm-up failed" >&2; return 1; }
	: >"$V.base"
	: >"$V.att"
	: >"$V.hang"
	for r in 1 2 3; do
		for s in 1 2 3 4 5 6; do auth healthy >>"$V.base"; done
		[ $r -eq 1 ] && auth cold0 >"$V.cold0"
		[ $r -eq 3 ] && auth cold2 >"$V.cold2"
		hp=
		k=1
		while [ $k -le "$HANG" ]; do
			sconf "h$r.$k" "$C/ee311.crt" "$C/ee311.key" "h$k.r$r.$PORT.slow.clients.test"
			( auth "h$r.$k" >"$D/h$r.$k.res" ) &
			hp="$hp $!"
			k=$((k + 1))
		done
		sleep 1.5
		for s in 1 2 3 4 5 6; do auth healthy >>"$V.att"; done
		[ $r -eq 3 ] && auth cold1 >"$V.cold1"
		for p in $hp; do wait "$p"; done
		cat "$D"/h"$r".*.res >>"$V.hang"
	done
	kill -0 "$HPID" 2>/dev/null && echo yes >"$V.alive" || echo NO >"$V.alive"
	hapd_stop
}

variant def 18131 "$WORLD_UNBOUND_CONF" || exit 1
variant fix 18132 "$D/unbound-fix.conf" || exit 1

V=$D/def
bfail=$(awk '$2 != 0' "$V.base" | wc -l)
afail=$(awk '$2 != 0' "$V.att" | wc -l)
bmed=$(awk '{print $1}' "$V.base" | median)
amed=$(awk '{print $1}' "$V.att" | median)
bmax=$(awk '{print $1}' "$V.base" | sort -n | tail -n 1)
amax=$(awk '{print $1}' "$V.att" | sort -n | tail -n 1)
hn=$(wc -l <"$V.hang")
hok=$(awk '$2 == 0' "$V.hang" | wc -l)
hmin=$(awk '{print $1}' "$V.hang" | sort -n | head -n 1)
hmax=$(awk '{print $1}' "$V.hang" | sort -n | tail -n 1)
cold() { awk '{print $1 " ms" ($2 == 0 ? "" : " (FAILED)")}' "$1"; }
fmed=$(awk '{print $1}' "$D/fix.att" | median)
cat <<EOF
md hostapd 2.10 with hostapd_patch/, integrated EAP server reached through its RADIUS server, inside a
md private network namespace with its own DNS world; \`dance_timeout=$TMO\`. Healthy supplicant: the patched
md eapol_test, EAP-TLS with TLS 1.3 and dane_client_id ee312.clients.test (DANE-EE 3 1 2, cached), one
md authentication at a time, 6 per phase. Attack: $HANG supplicants at once, each with its own name under
md slow.clients.test (never answers), started 1.5 s before the attack phase. 3 rounds of *no attack* /
md *attack*, interleaved. Times per eapol_test run (process start included).
md
md | healthy supplicant (cached TLSA) | median ms | max ms | failed |
md |---|---:|---:|---:|
md | no lookups hanging | $bmed | $bmax | $bfail of $(wc -l <"$V.base") |
md | $HANG lookups hanging | $amed | $amax | $afail of $(wc -l <"$V.att") |
md
md Added median latency: **$(awk -v a="$amed" -v b="$bmed" 'BEGIN {printf "%.0f", a - b}') ms**. The $hn hanging
md supplicants: $hok accepted (must be 0); each ended after $hmin to $hmax ms (timeout $TMO ms, plus
md the EAP exchange around it). hostapd alive at the end: $(cat "$V.alive").
md
md Cold lookups of healthy names (uncached TLSA): round 1 before any attack (ee301) **$(cold "$V.cold0")**;
md round 3 before its attack (rollover) **$(cold "$V.cold2")**; round 3 with $HANG lookups hanging (full)
md **$(cold "$V.cold1")**. With \`outgoing-range: 4096\` (a second hostapd, same procedure):
md **$(cold "$D/fix.cold0")**, **$(cold "$D/fix.cold2")**, **$(cold "$D/fix.cold1")**; cached healthy supplicant
md under attack there: median $fmed ms; hostapd alive: $(cat "$D/fix.alive"). A failure "before its attack" in
md round 3, when every earlier hanging supplicant had already ended, means the effect outlasts the attack:
md the queries libunbound queued for the dead server still held (or waited for) its 16 outgoing slots
md after DANCE had timed their lookups out.
summ | 3c. hostapd: cached healthy supplicant, median added latency with $HANG lookups hanging | $(awk -v a="$amed" -v b="$bmed" 'BEGIN {printf "%.0f", a - b}') ms ($bmed -> $amed), $afail failed | | $( [ "$afail" -eq 0 ] && echo met || echo "**MISSED**") |
summ | 3c. hostapd: uncached healthy supplicant during the attack; with outgoing-range 4096 | $(cold "$V.cold1"); $(cold "$D/fix.cold1") | served | $(awk '{exit !($2 == 0)}' "$V.cold1" && echo met || echo "**MISSED**") |
result ok
EOF
