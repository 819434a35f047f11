#!/bin/sh
# t/nginx_shared.sh -- "dance_cache shared:NAME:SIZE": with two workers,
# a name is looked up once; without the shared cache, each worker asks
# the DNS itself (the control that shows the test can fail).  The zone
# is emptied by a reload that changes the trust configuration, and an
# answer too large for it is not stored (rather than evicting all).
. "$(dirname "$0")/lib/nginx.sh"

need_module

# one_server WORKERS LOGLEVEL HTTP-LINES [SERVER-LINES [MAIN-LINES]]:
# $T/nginx.conf with one "dance on" server on $P (listen options in
# $LISTEN), trusting the anchor in $TA (default: the world's).
TA=
LISTEN=
one_server() {
	{
		ngx_conf_head "$1" "$2"
		[ -n "${5:-}" ] && printf '%s\n' "$5"
		cat <<EOF
http {
$(ngx_http_head | sed "${TA:+s|dance_trust_anchor .*;|dance_trust_anchor $TA;|}")
$3
    server {
        listen 127.0.0.1:$P ssl$LISTEN;
${4:-}
        dance on;
        dance_allow .clients.test;
        location / {
            return 200 "pid=\$pid id=[\$dance_client_id]\n";
        }
    }
}
EOF
	} >"$T/nginx.conf"
}

# run_case NAME CACHE-DIRECTIVE: 16 sequential connections for NAME
# (reuseport spreads them over both workers); sets QUERIES and PIDS.
run_case() {
	name=$1 cache=$2
	P=$(free_port)
	LISTEN=" reuseport"
	one_server 2 info "    $cache
    log_format pids '\$pid \$dance_status';" \
		"        access_log $T/access.log pids;"
	LISTEN=
	: >"$T/access.log"
	ngx_start "$P" || return 1
	sleep 0.3	# both workers up
	before=$(count "$name")
	good=0
	k=0
	while [ $k -lt 16 ]; do
		dc "$T/o" "$name" ee312 "$P" --http /
		[ "$(id_of "$T/o")" = "$name" ] && good=$((good + 1))
		k=$((k + 1))
	done
	QUERIES=$(( $(count "$name") - before ))
	PIDS=$(awk '$2 == "SUCCESS" {print $1}' "$T/access.log" | sort -u | wc -l)
	GOOD=$good
	ngx_stop
}

run_case ee312.clients.test "dance_cache shared:dance:1m;"
is "$GOOD" 16 "shared cache: 16 connections authenticated"
is "$PIDS" 2 "shared cache: both workers served"
is "$QUERIES" 1 "shared cache: one TLSA query for two workers"

run_case ee312.clients.test ""
is "$GOOD" 16 "control, no shared cache: 16 connections authenticated"
is "$PIDS" 2 "control: both workers served"
is "$QUERIES" 2 "control: each worker queried the DNS"

# -- trust over reloads --------------------------------------------------

# reload: SIGHUP, then wait until a new worker runs and the old are gone.
reload() {
	old=$(ngx_workers)
	kill -HUP "$T_MASTER"
	i=0
	while [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
		left=
		for p in $old; do
			kill -0 "$p" 2>/dev/null && left=1
		done
		[ -z "$left" ] && ngx_workers | grep -qvxF "$old" && return 0
	done
	return 1
}

# One worker, the anchor in a file of our own: answers cached under it
# survive a reload with the same trust, not one with another anchor.
cp "$WORLD_TA" "$T/ta"
TA=$T/ta
P=$(free_port)
one_server 1 info "    dance_cache shared:dance:1m;"
ngx_start "$P" || exit 1
name=ee311.clients.test
before=$(count "$name")
dc "$T/o" "$name" ee311 "$P" --http /
is "$(id_of "$T/o")" "$name" "trust: authenticated under the world's anchor"
reload
ok $? "reload with the same trust configuration"
dc "$T/o" "$name" ee311 "$P" --http /
is "$(id_of "$T/o")" "$name" "same trust: still authenticated after the reload"
is "$(( $(count "$name") - before ))" 1 "... from the shared cache the reload kept (one query in all)"
# Same file name, another key: everything validated before is void.
echo "test. 3600 IN DS 19191 13 2 $(printf '%064d' 0)" >"$T/ta"
reload
ok $? "reload with the anchor changed in place"
dc "$T/o" "$name" ee311 "$P" --http /
is "$(id_of "$T/o")" "" "anchor changed: the next client is refused" "$(cat "$T/o")"
like "$T/error.log" 'DANCE cache "dance" emptied: the trust configuration changed' \
	"the shared cache was emptied at the reload"
ngx_stop

# -- an answer larger than the zone ---------------------------------------

# The smallest zone, no worker cache (every lookup asks the zone): 12
# small answers, then big.clients.test (31 KB), then the 12 again.
TA=
P=$(free_port)
one_server 1 debug "    dance_cache shared:small:32k;
    dance_worker_cache off;"
ngx_start "$P" || exit 1
fill() {
	k=1
	while [ $k -le 12 ]; do
		dc "$T/o" "f$k.nx.clients.test" ee311 "$P" --http /
		k=$((k + 1))
	done
}
fill
dc "$T/o" big.clients.test ee311 "$P" --http /
is "$(id_of "$T/o")" big.clients.test "31 KB TLSA set: authenticated"
like "$T/error.log" 'big.clients.test.*too large for DANCE cache "small"' \
	"... and refused by the 32k shared cache"
fill
ngx_debug is "$(grep -c 'shared cache hit for "f[0-9]*.nx.clients.test"' "$T/error.log")" 12 \
	"the 12 answers cached before are all still there"
ngx_stop

# -- expiry and the wall clock --------------------------------------------

# nginx under libfaketime with its wall clock stepped back an hour: an
# answer kept 2 s must still expire after 2 s (monotonic deadlines).
FT=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
if [ -n "${DANCE_SANITIZED:-}" ]; then
	# ASan's runtime must be the first library: no LD_PRELOAD before it
	skip "clock: expiry under a wall clock stepped back" "libfaketime cannot preload before ASan"
elif [ -f "$FT" ]; then
	echo "+0" >"$T/faketime"
	cat >"$T/nginx-ft" <<EOF
#!/bin/sh
LD_PRELOAD=$FT FAKETIME_TIMESTAMP_FILE=$T/faketime FAKETIME_NO_CACHE=1 \\
DONT_FAKE_MONOTONIC=1 exec $NGINX_BIN "\$@"
EOF
	chmod +x "$T/nginx-ft"
	P=$(free_port)
	# workers keep only the environment named here
	one_server 1 debug "    dance_cache shared:clock:1m;
    dance_worker_cache off;
    dance_cache_ttl max=2s;" "" "env LD_PRELOAD;
env FAKETIME_TIMESTAMP_FILE;
env FAKETIME_NO_CACHE;
env DONT_FAKE_MONOTONIC;"
	hits() {	# (debug-log lines)
		grep -c 'shared cache hit for "ee312.clients.test"' "$T/error.log"
	}
	NGINX_REAL=$NGINX_BIN
	NGINX_BIN=$T/nginx-ft
	ngx_start "$P" || exit 1
	NGINX_BIN=$NGINX_REAL
	dc "$T/o" ee312.clients.test ee312 "$P" --http /
	dc "$T/o" ee312.clients.test ee312 "$P" --http /
	is "$(id_of "$T/o")" ee312.clients.test "clock: authenticated"
	ngx_debug is "$(hits)" 1 "clock: the second lookup came from the shared cache"
	echo "-1h" >"$T/faketime"
	sleep 3
	dc "$T/o" ee312.clients.test ee312 "$P" --http /
	ngx_debug is "$(hits)" 1 "wall clock stepped back 1h: the 2 s answer expired all the same"
	ngx_stop
else
	ok 1 "libfaketime installed (make deps)"
fi

unlike "$T/error.log" '\[(alert|crit|emerg)\]' "no alerts in the error log"

done_testing
