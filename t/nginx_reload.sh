#!/bin/sh
# t/nginx_reload.sh -- "nginx -s reload" while requests wait for TLSA
# lookups: the old worker finishes them (an answer arriving late still
# authenticates, a lookup that never gets one fails at the timeout),
# then exits; the new worker serves; no crash, no alert, no socket left.
. "$(dirname "$0")/lib/nginx.sh"

need_module
[ -x "$FLOOD" ] || { ok 1 "$FLOOD built"; done_testing; exit 1; }

ON=$(free_port)
{
	ngx_conf_head 1 info
	cat <<EOF
http {
$(ngx_http_head)
    dance_timeout 3s;
    dance_cache shared:dance:1m;
    server {
        listen 127.0.0.1:$ON ssl;
        dance on;
        dance_allow .clients.test;
        location / {
            return 200 "pid=\$pid id=[\$dance_client_id]\n";
        }
    }
}
EOF
} >"$T/nginx.conf"

ngx_start "$ON" || { ok 1 "nginx starts"; done_testing; exit 1; }
E=$T/error.log
old=$(ngx_workers)

timeout 60 "$FLOOD" --cert "$C/ee311.crt" --key "$C/ee311.key" \
	--name 'r%d.slow.clients.test' -n 20 "127.0.0.1:$ON" >"$T/slow" 2>&1 &
slow=$!
timeout 60 "$FLOOD" --cert "$C/ee311.crt" --key "$C/ee311.key" \
	--name 'dev.late.clients.test' -n 5 "127.0.0.1:$ON" >"$T/late" 2>&1 &
late=$!
T_BG="$slow $late"

i=0
while [ $i -lt 50 ]; do
	[ "$(cat "$T/slow" "$T/late" | grep -c '^handshake ')" -ge 25 ] && break
	sleep 0.1
	i=$((i + 1))
done
is "$(grep -c '^done ' "$T/slow")" 0 "20 requests wait on lookups that get no answer"
is "$(grep -c '^done ' "$T/late")" 0 "5 requests wait on a late (800 ms) answer"

kill -HUP "$T_MASTER"
i=0
while [ $i -lt 50 ]; do
	new=$(ngx_workers | grep -vx "$old" | head -n 1)
	[ -n "$new" ] && break
	sleep 0.1
	i=$((i + 1))
done
ok $([ -n "$new" ]; echo $?) "reload: a new worker started"
i=0
while ! grep -Eq "$old#[0-9]+: gracefully shutting down" "$E" && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
like "$E" "$old#[0-9]+: gracefully shutting down" "the old worker shuts down gracefully"

dc "$T/o" ee311.clients.test ee311 "$ON" --http /
is "$(id_of "$T/o")" "ee311.clients.test" "the new worker authenticates"
grep -q "pid=$new " "$T/o"
ok $? "... and it is the new worker that answered" "$(cat "$T/o")"

wait "$late"
wait "$slow"
T_BG=
is "$(grep -c '^done [0-9]* 200 ' "$T/late")" 5 "late answer: the waiting requests were authenticated"
is "$(grep -c '^done [0-9]* 400 ' "$T/slow")" 20 "no answer: the waiting requests failed cleanly (495)"

i=0
while kill -0 "$old" 2>/dev/null && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
! kill -0 "$old" 2>/dev/null
ok $? "the old worker exited after its last request"
like "$E" "worker process $old exited with code 0" "... with code 0"
kill -0 "$T_MASTER" 2>/dev/null
ok $? "the master runs on"

dc "$T/o" ee312.clients.test ee312 "$ON" --http /
is "$(id_of "$T/o")" "ee312.clients.test" "still serving after the reload"

# the master does not grow with reloads (after a warm-up)
rss() { awk '/VmRSS/ {print $2}' "/proc/$T_MASTER/status"; }
reloads() {
	k=0
	while [ $k -lt "$1" ]; do
		kill -HUP "$T_MASTER"
		sleep 0.25
		k=$((k + 1))
	done
	sleep 1
}
reloads 10
r0=$(rss)
reloads 40
r1=$(rss)
ok $([ $((r1 - r0)) -lt 400 ]; echo $?) "40 more reloads: master RSS $r0 kB -> $r1 kB"
dc "$T/o" ee311.clients.test ee311 "$ON" --http /
is "$(id_of "$T/o")" "ee311.clients.test" "serving after 50 reloads"

ngx_stop
unlike "$E" '\[(alert|crit|emerg)\]|open socket|signal 11|core dumped' \
	"no crash, no alert, no socket left"

done_testing
