#!/bin/sh
# t/nginx_shared.sh -- "dance_cache shared:NAME:SIZE": with two workers,
# a name is looked up once; without the shared cache, each worker asks
# the DNS itself (the control that shows the test can fail).
. "$(dirname "$0")/lib/nginx.sh"

need_module

# run_case NAME CACHE-DIRECTIVE: 16 sequential connections for NAME
# (reuseport spreads them over both workers); sets QUERIES and PIDS.
run_case() {
	name=$1 cache=$2
	P=$(free_port)
	{
		ngx_conf_head 2 info
		cat <<EOF
http {
$(ngx_http_head)
    $cache
    log_format pids '\$pid \$dance_status';
    server {
        listen 127.0.0.1:$P ssl reuseport;
        access_log $T/access.log pids;
        dance on;
        dance_allow .clients.test;
        location / {
            return 200 "pid=\$pid id=[\$dance_client_id]\n";
        }
    }
}
EOF
	} >"$T/nginx.conf"
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

unlike "$T/error.log" '\[(alert|crit|emerg)\]' "no alerts in the error log"

done_testing
