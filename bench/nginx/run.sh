#!/bin/sh
# bench/nginx/run.sh -- TLS 1.3 handshakes/s of nginx with DANCE (warm
# cache) against "ssl_verify_client on" with a CA and against
# "ssl_verify_client optional_no_ca" (no verification: the ceiling),
# same nginx, same client program, same key type (ECDSA P-256), in one
# run; plus the latency a cold TLSA lookup adds to a warm hit.
#
#   sh bench/nginx/run.sh [SECONDS-PER-ROUND [ROUNDS [THREADS]]]
#
# Needs "make nginx".  Starts its own DNS test world unless WORLD_ENV is
# set.  Rounds interleave the three setups so that load from elsewhere
# hits them alike; the totals of all rounds are compared.
set -u
SECS=${1:-5}
ROUNDS=${2:-3}
THREADS=${3:-4}

top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$top/build}

T=$(mktemp -d /tmp/dance-bench.XXXXXX)
. "$top/t/lib/world.sh"
cleanup() {
	ngx_stop 2>/dev/null
	world_stop
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
world_use "$T/world" || exit 1
# nginx (NGINX_BIN, NGINX_MODULE), config head, ports, start and stop
TOP=$top
. "$top/t/lib/nginx.sh"
for f in "$MODULE" "$FLOOD"; do
	[ -e "$f" ] || { echo "bench: $f missing (make nginx)" >&2; exit 1; }
done

DANCE=$(free_port) CA=$(free_port) NOCA=$(free_port) COLD=$(free_port)

# start_nginx CONF-BODY WAIT-PORT: one worker, TLS 1.3 only, no session
# resumption, no access log
start_nginx() {
	{
		ngx_conf_head 1 warn 1024
		echo "http {"
		ngx_http_head access_log=off protocols=TLSv1.3 resumption=off
		echo "$1"
		echo "}"
	} >"$T/nginx.conf"
	ngx_start "$2" >&2 || fail "nginx did not start"
}

stop_nginx() { ngx_stop; }

fail() {
	echo "bench: $*" >&2
	tail -n 5 "$T/error.log" "$T/stderr.log" >&2
	exit 1
}

start_nginx "
    server {
        listen 127.0.0.1:$DANCE ssl;
        dance on;
        dance_allow ee311.clients.test sensor7._device.clients.test;
        location / { return 200 \"\$dance_client_id\n\"; }
    }
    server {
        listen 127.0.0.1:$CA ssl;
        ssl_verify_client on;
        ssl_client_certificate $C/devca.crt;
        location / { return 200 \"\$ssl_client_verify\n\"; }
    }
    server {
        listen 127.0.0.1:$NOCA ssl;
        ssl_verify_client optional_no_ca;
        location / { return 200 \"\$ssl_client_verify\n\"; }
    }" "$NOCA"

# worker CPU time in clock ticks (user + system)
ticks() {
	w=$(ngx_workers | head -n 1)
	awk '{print $14 + $15}' "/proc/$w/stat"
}

flood() {	# flood PORT ARGS... -> "handshakes worker-cpu-ticks"
	fp=$1
	shift
	c0=$(ticks)
	h=$("$FLOOD" -n "$THREADS" --loop "$SECS" "$@" "127.0.0.1:$fp" 2>&1 |
		awk '$1 == "handshakes" {
			if ($2 != $4) print "bench: " $2 - $4 " failed" > "/dev/stderr";
			print $2 }')
	c1=$(ticks)
	echo "${h:-0} $((c1 - c0))"
}

# warm the DANCE cache, check every setup answers
"$FLOOD" -n 1 --cert "$C/ee311.crt" --key "$C/ee311.key" \
	--name ee311.clients.test "127.0.0.1:$DANCE" | grep -q "^done 0 200" ||
	fail "DANCE server does not authenticate"
"$FLOOD" -n 1 --cert "$C/sensor7.chain.pem" --key "$C/sensor7.key" \
	--name sensor7._device.clients.test "127.0.0.1:$DANCE" |
	grep -q "^done 0 200" || fail "DANE-TA check failed"
"$FLOOD" -n 1 --no-ext --cert "$C/sensor7.chain.pem" --key "$C/sensor7.key" \
	"127.0.0.1:$CA" | grep -q "^done 0 200" ||
	fail "CA server does not accept sensor7"

echo "nginx $NGX_VERSION, $(openssl version)," \
	"$(nproc) CPUs ($(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -n 1))"
echo "worker_processes 1, TLS 1.3, P-256, no resumption, $THREADS client" \
	"threads, $ROUNDS rounds x ${SECS}s per setup; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
HZ=$(getconf CLK_TCK)
td=0 tt=0 tc=0 tn=0 cd=0 ct=0 cc=0 cn=0
r=1
while [ $r -le "$ROUNDS" ]; do
	set -- $(flood "$DANCE" --cert "$C/ee311.crt" --key "$C/ee311.key" \
		--name ee311.clients.test)
	td=$((td + $1)) cd=$((cd + $2)) d=$1
	set -- $(flood "$DANCE" --cert "$C/sensor7.chain.pem" \
		--key "$C/sensor7.key" --name sensor7._device.clients.test)
	tt=$((tt + $1)) ct=$((ct + $2)) t=$1
	set -- $(flood "$CA" --no-ext --cert "$C/sensor7.chain.pem" \
		--key "$C/sensor7.key")
	tc=$((tc + $1)) cc=$((cc + $2)) c=$1
	set -- $(flood "$NOCA" --no-ext --cert "$C/ee311.crt" \
		--key "$C/ee311.key")
	tn=$((tn + $1)) cn=$((cn + $2)) n=$1
	echo "round $r handshakes: dance-ee $d, dance-ta $t, ca $c," \
		"optional_no_ca $n" >&2
	r=$((r + 1))
done
s=$((SECS * ROUNDS))

# hs/s: wall clock, client and server share the CPUs; hs per worker
# CPU second: what one nginx core can do, much less sensitive to load
row() {
	printf '%-42s %7d %8.1f %10.1f %9.0f %s\n' "$1" "$2" \
		"$(echo "$2 / $s" | bc -l)" \
		"$(echo "$2 * $HZ / ($3 + 0.0001)" | bc -l)" \
		"$(echo "($3 + 0.0001) * 1000000 / $HZ / $2" | bc -l)" "${4:-}"
}
printf '%-42s %7s %8s %10s %9s\n' setup hs hs/s hs/cpu-s us/hs
row "DANCE, DANE-EE 3 1 1, warm cache" $td $cd
row "DANCE, DANE-TA 2 0 1 (chain), warm cache" $tt $ct
row "ssl_verify_client on, CA file (chain)" $tc $cc
row "ssl_verify_client optional_no_ca" $tn $cn "(no verification)"
echo
ratio() {	# ratio LABEL HS1 CPU1 HS2 CPU2 TARGET
	printf '%-32s wall %.3f   per worker CPU %.3f   %s\n' "$1" \
		"$(echo "$2 / $4" | bc -l)" \
		"$(echo "($2 / $3) / ($4 / $5)" | bc -l)" "$6"
}
ratio "DANCE-EE / CA" $td $cd $tc $cc "(target >= 1.0)"
ratio "DANCE-EE / optional_no_ca" $td $cd $tn $cn "(target >= 0.95)"
ratio "DANCE-TA / CA" $tt $ct $tc $cc ""
stop_nginx

# cold miss vs warm hit: a fresh nginx (empty caches) per sample; the
# first connection looks the name up, the second finds it cached
echo
cold=0 warm=0 k=0 K=${COLD_SAMPLES:-10}
while [ $k -lt "$K" ]; do
	start_nginx "
    server {
        listen 127.0.0.1:$COLD ssl;
        dance on;
        dance_allow ee311.clients.test;
        location / { return 200 \"\$dance_client_id\n\"; }
    }" "$COLD"
	a=$("$FLOOD" -n 1 --us --cert "$C/ee311.crt" --key "$C/ee311.key" \
		--name ee311.clients.test "127.0.0.1:$COLD" |
		awk '$1 == "done" && $3 == 200 {print $4}')
	b=$("$FLOOD" -n 1 --us --cert "$C/ee311.crt" --key "$C/ee311.key" \
		--name ee311.clients.test "127.0.0.1:$COLD" |
		awk '$1 == "done" && $3 == 200 {print $4}')
	stop_nginx
	[ -n "$a" ] && [ -n "$b" ] || { echo "bench: cold sample failed"; continue; }
	cold=$((cold + a)) warm=$((warm + b))
	k=$((k + 1))
done
printf 'connection + request, cold TLSA lookup: %.2f ms, warm: %.2f ms, added: %.2f ms (mean of %d, local DNS world)\n' \
	"$(echo "$cold / $K / 1000" | bc -l)" "$(echo "$warm / $K / 1000" | bc -l)" \
	"$(echo "($cold - $warm) / $K / 1000" | bc -l)" "$K"
