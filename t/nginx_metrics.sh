#!/bin/sh
# t/nginx_metrics.sh -- the metrics, end to end: a real Prometheus on
# loopback scrapes nginx's "dance_status" (two workers sharing a TLSA
# cache, so that each name is queried once; two DANCE servers: the
# figures of both workers in one exposition, a "server" label per
# server) and dance-server --metrics, while known traffic
# runs: authenticated clients, refusals by reason, timeouts (the
# world's never-answering zone slow.clients.test).  Then the counts are
# read back from Prometheus's HTTP API and must be exact.  Every
# exposition passes "promtool check metrics"; every decision wrote one
# "dance: client=..." log line.
. "$(dirname "$0")/lib/nginx.sh"

need_module
SERVER=$BUILD/bin/dance-server
[ -x "$SERVER" ] || bail "$SERVER missing (make)"
command -v prometheus >/dev/null && command -v promtool >/dev/null ||
	bail "prometheus and promtool installed (Debian package prometheus)"

PA=$(free_port)		# nginx, "dance on", server_name a.test
PB=$(free_port)		# nginx, "dance optional", server_name b.test
PM=$(free_port)		# nginx, plain HTTP, dance_status
PP=$(free_port)		# Prometheus
PROM_PID=
DS_PID=

# like_s STRING ERE DESC: like, for a string
like_s() {
	printf '%s\n' "$1" >"$T/like.txt"
	like "$T/like.txt" "$2" "$3"
}

prom_cleanup() {
	for p in $PROM_PID $DS_PID; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}
T_BG="$T_BG"	# (ngx_cleanup kills T_BG; ours are stopped at the end)

{
	ngx_conf_head 2 info
	cat <<EOF
http {
$(ngx_http_head)
    dance_timeout 1s;
    dance_cache shared:dance:1m;
    server {
        listen 127.0.0.1:$PA ssl reuseport;
        server_name a.test;
        dance on;
        dance_allow .clients.test;
        location / { return 200 "id=[\$dance_client_id]\n"; }
    }
    server {
        listen 127.0.0.1:$PB ssl reuseport;
        server_name b.test;
        dance optional;
        dance_allow .clients.test;
        location / { return 200 "id=[\$dance_client_id]\n"; }
    }
    server {
        listen 127.0.0.1:$PM;
        location = /metrics { dance_status; }
        location / { return 404; }
    }
}
EOF
} >"$T/nginx.conf"

ngx_start "$PA" || bail "nginx starts" "$(tail -n 20 "$T/error.log")"

# dance-server, its own world view (same anchor), timeout 1 s
"$SERVER" --cert "$T/srv.crt" --key "$T/srv.key" --listen 127.0.0.1:0 \
	--metrics 127.0.0.1:0 --ta "$WORLD_TA" \
	--unbound-conf "$WORLD_UNBOUND_CONF" --timeout 1000 \
	--allow .clients.test 2>"$T/ds.log" &
DS_PID=$!
DSP= DSM=
i=0
while [ $i -lt 100 ] && { [ -z "$DSP" ] || [ -z "$DSM" ]; }; do
	sleep 0.05
	DSP=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$T/ds.log")
	DSM=$(sed -n 's/.*metrics on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$T/ds.log")
	i=$((i + 1))
done
[ -n "$DSP" ] && [ -n "$DSM" ] || bail "dance-server starts" "$(cat "$T/ds.log")"

# -- Prometheus ----------------------------------------------------------

mkdir -p "$T/prom"
cat >"$T/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: nginx
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:$PM']
  - job_name: dance-server
    static_configs:
      - targets: ['127.0.0.1:$DSM']
EOF
prometheus --config.file "$T/prom/prometheus.yml" \
	--storage.tsdb.path "$T/prom/data" \
	--web.listen-address "127.0.0.1:$PP" >"$T/prom/log" 2>&1 &
PROM_PID=$!

# -- expositions ---------------------------------------------------------

curl -sf "http://127.0.0.1:$PM/metrics" >"$T/nginx.prom"
ok $? "nginx: dance_status answers"
promtool check metrics <"$T/nginx.prom" >"$T/promtool.out" 2>&1
ok $? "nginx: promtool check metrics (idle)" "$(cat "$T/promtool.out")"
grep -qF 'dance_verdicts_total{server="b.test",result="success"} 0' "$T/nginx.prom"
ok $? "nginx: a server label per DANCE server"
like_s "$(curl -s -o /dev/null -w '%{http_code}' -X POST \
	"http://127.0.0.1:$PM/metrics")" '^405$' "nginx: POST is not allowed"

# q PROMQL: the value of a one-element instant vector ("none" if empty)
q() {
	curl -s --data-urlencode "query=$1" \
		"http://127.0.0.1:$PP/api/v1/query" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print("none" if not r else "%g" % float(r[0]["value"][1]))'
}

# the traffic comes after the first scrapes, so that rates see it
i=0
while [ $i -lt 80 ]; do
	[ "$(q 'sum(up)')" = 2 ] && break
	sleep 0.25
	i=$((i + 1))
done

# -- traffic -------------------------------------------------------------

# through nginx server a (dance on): 3 authenticated, refused: 2
# not-allowed, 1 nomatch, 1 nxdomain, 2 timeouts
n=0
for k in 1 2 3; do
	dc "$T/o" ee311.clients.test ee311 "$PA" --http /
	[ "$(id_of "$T/o")" = ee311.clients.test ] && n=$((n + 1))
done
is "$n" 3 "nginx a: 3 clients authenticated"
dc "$T/o" elsewhere.example ee311 "$PA" --http /
dc "$T/o" other.example ee311 "$PA" --http /
dc "$T/o" ee311.clients.test other "$PA" --http /
dc "$T/o" missing.clients.test ee311 "$PA" --http /
dc "$T/o" t1.slow.clients.test ee311 "$PA" --http /
dc "$T/o" t2.slow.clients.test ee311 "$PA" --http /
like "$T/o" "HTTP/1.1 (400|403) " "nginx a: a timeout is refused"
# through nginx server b (dance optional): 1 authenticated, 1 not
dc "$T/o" ee312.clients.test ee312 "$PB" --http /
dc "$T/o" ee312.clients.test other "$PB" --http /
like_s "$(cat "$T/o")" "id=\[\]" "nginx b: a mismatch is served unauthenticated"

# dance-server: 2 authenticated, 1 not-allowed, 1 timeout
for k in 1 2; do
	timeout 20 "$CLIENT" --cert "$C/ee311.crt" --key "$C/ee311.key" \
		--name ee311.clients.test "127.0.0.1:$DSP" >"$T/o" 2>&1
done
timeout 20 "$CLIENT" --cert "$C/ee311.crt" --key "$C/ee311.key" \
	--name nope.example "127.0.0.1:$DSP" >"$T/o" 2>&1
timeout 20 "$CLIENT" --cert "$C/ee311.crt" --key "$C/ee311.key" \
	--name t3.slow.clients.test "127.0.0.1:$DSP" >"$T/o" 2>&1

# -- what Prometheus saw -------------------------------------------------

# wait until Prometheus scraped the end of the traffic (both workers
# synced their resolvers: at most a second), at most 20 s
i=0
while [ $i -lt 80 ]; do
	[ "$(q 'sum(dance_verdicts_total{job="nginx"})')" = 11 ] &&
	[ "$(q 'sum(dance_queries_total{job="nginx"})')" = 5 ] &&
	[ "$(q 'sum(dance_verdicts_total{job="dance-server"})')" = 4 ] &&
	[ "$(q 'sum(dance_response_time_seconds_count{job="dance-server"})')" = 2 ] &&
		break
	sleep 0.25
	i=$((i + 1))
done

is "$(q 'up{job="nginx"}')" 1 "prometheus scrapes nginx"
is "$(q 'up{job="dance-server"}')" 1 "prometheus scrapes dance-server"

N='job="nginx"'
is "$(q "sum(dance_verdicts_total{$N,result=\"success\"})")" 4 "nginx: 4 authenticated"
is "$(q "dance_verdicts_total{$N,server=\"a.test\",result=\"success\"}")" 3 "nginx a.test: 3 authenticated"
is "$(q "dance_verdicts_total{$N,server=\"a.test\",result=\"refused\"}")" 6 "nginx a.test: 6 refused"
is "$(q "dance_verdicts_total{$N,server=\"b.test\",result=\"unauthenticated\"}")" 1 "nginx b.test: 1 unauthenticated"
is "$(q "dance_failures_total{$N,server=\"a.test\",reason=\"not-allowed\"}")" 2 "nginx a.test: 2 not-allowed"
is "$(q "sum(dance_allowlist_refusals_total{$N})")" 2 "nginx: 2 allow-list refusals"
is "$(q "dance_failures_total{$N,server=\"a.test\",reason=\"nomatch\"}")" 1 "nginx a.test: 1 nomatch"
is "$(q "dance_failures_total{$N,server=\"a.test\",reason=\"nxdomain\"}")" 1 "nginx a.test: 1 nxdomain"
is "$(q "dance_failures_total{$N,server=\"a.test\",reason=\"timeout\"}")" 2 "nginx a.test: 2 timeouts"
is "$(q "sum(dance_successes_total{$N,usage=\"3\"})")" 4 "nginx: 4 successes with usage 3"
is "$(q "dance_queries_total{$N,outcome=\"timeout\"}")" 2 "nginx: 2 queries timed out"
is "$(q "dance_queries_total{$N,outcome=\"nxdomain\"}")" 1 "nginx: 1 NXDOMAIN query"
is "$(q "dance_queries_total{$N,outcome=\"secure\"}")" 2 "nginx: a secure query per name (2)"
is "$(q "dance_response_time_seconds_count{$N}")" 5 "nginx: 5 query durations"
# a timeout lasts the whole 1 s (the bucket that holds the timeout, or
# +Inf); the other queries are loopback-fast
is "$(q "sum(dance_response_time_seconds_bucket{$N,le=\"+Inf\"}) - sum(dance_response_time_seconds_bucket{$N,le=\"0.5\"})")" 2 \
	"nginx: the 2 timeouts are in the buckets above 0.5 s"
is "$(q "sum(dance_parked_clients{$N})")" 0 "nginx: nobody parked now"
is "$(q "dance_request_list_current{$N}")" 0 "nginx: no lookup in flight now"
is "$(q "dance_up{$N}")" 1 "nginx: resolver up"
# misses: one per lookup a client waited for (ee311, ee312, missing, t1,
# t2 and the nomatch client's name if it was not cached in its worker)
M=$(q "sum(dance_cache_requests_total{$N,result=~\"hit|negative_hit|miss\"})")
is "$M" 9 "nginx: every decision that needed an answer counted once (9)"

D='job="dance-server"'
is "$(q "dance_verdicts_total{$D,result=\"success\"}")" 2 "dance-server: 2 authenticated"
is "$(q "dance_verdicts_total{$D,result=\"refused\"}")" 2 "dance-server: 2 refused"
is "$(q "dance_failures_total{$D,reason=\"timeout\"}")" 1 "dance-server: 1 timeout"
is "$(q "dance_allowlist_refusals_total{$D}")" 1 "dance-server: 1 allow-list refusal"
is "$(q "dance_cache_requests_total{$D,result=\"hit\"}")" 1 "dance-server: 1 cache hit"
is "$(q "dance_cache_requests_total{$D,result=\"miss\"}")" 2 "dance-server: 2 misses"

# README's PromQL expressions evaluate
like_s "$(q 'sum by (reason) (rate(dance_failures_total[1m])) > 0')" '^[0-9.e-]+$' \
	"README: refusal rate by reason"
like_s "$(q 'sum(rate(dance_cache_requests_total{result=~"hit|negative_hit"}[1m])) / sum(rate(dance_cache_requests_total{result=~"hit|negative_hit|miss"}[1m]))')" \
	'^[0-9.e-]+$' "README: cache hit ratio"
like_s "$(q 'histogram_quantile(0.99, sum by (le) (rate(dance_response_time_seconds_bucket[1m])))')" \
	'^[0-9.e+-]+$|^\+Inf$' "README: p99 lookup"

curl -sf "http://127.0.0.1:$PM/metrics" >"$T/nginx.prom"
promtool check metrics <"$T/nginx.prom" >"$T/promtool.out" 2>&1
ok $? "nginx: promtool check metrics (after traffic)" "$(cat "$T/promtool.out")"
curl -sf "http://127.0.0.1:$DSM/metrics" >"$T/ds.prom"
promtool check metrics <"$T/ds.prom" >"$T/promtool.out" 2>&1
ok $? "dance-server: promtool check metrics" "$(cat "$T/promtool.out")"

# -- the log line --------------------------------------------------------

is "$(grep -c 'dance: client=127\.0\.0\.1 name=' "$T/error.log")" 11 \
	"nginx: one log line per decision (11)"
like_s "$(grep 'name=t1.slow.clients.test' "$T/error.log")" \
	'outcome=refused reason=timeout lookup_ms=[0-9]+ cached=no' \
	"nginx: a timeout's line"
like_s "$(grep 'name=elsewhere.example' "$T/error.log")" \
	'outcome=refused reason=not-allowed lookup_ms=0 cached=-' \
	"nginx: an allow-list refusal's line"
is "$(grep -c ': dance: client=127\.0\.0\.1 name=' "$T/ds.log")" 4 \
	"dance-server: one log line per decision (4)"
# the same fields in the same order in both hosts
fields() {
	sed -n 's/.*dance: \(client=.* cached=[^ ,]*\).*/\1/p' "$1" |
		sed 's/=[^ ]*//g' | sort -u
}
is "$(fields "$T/error.log" | tr '\n' '|')" "$(fields "$T/ds.log" | tr '\n' '|')" \
	"the same fields, in the same order, in nginx and dance-server"

prom_cleanup
done_testing
