#!/bin/sh
# t/nginx_parked.sh -- 200 connections wait on TLSA lookups that never
# get an answer (names under slow.clients.test): the worker keeps serving
# other clients without delay, and every waiting request is refused at
# the dance_timeout.
. "$(dirname "$0")/lib/nginx.sh"

need_module

N=${PARKED:-200}
ON=$(free_port) PLAIN=$(free_port) H2=$(free_port)

{
	ngx_conf_head 1 info
	cat <<EOF
http {
$(ngx_http_head)
    dance_timeout 3s;

    server {
        listen 127.0.0.1:$ON ssl backlog=1024;
        dance on;
        dance_allow .clients.test;
        location / {
            return 200 "id=[\$dance_client_id]\n";
        }
    }

    server {
        listen 127.0.0.1:$PLAIN ssl;
        location / {
            return 200 "plain\n";
        }
    }

    # HTTP/2 clients without dane_clientid, named by their SAN
    server {
        listen 127.0.0.1:$H2 ssl http2;
        dance on;
        dance_legacy_name san;
        dance_allow .clients.test;
        location / {
            return 200 "id=[\$dance_client_id]\n";
        }
    }
}
EOF
} >"$T/nginx.conf"

ngx_start "$PLAIN" || { ok 1 "nginx starts"; done_testing; exit 1; }
E=$T/error.log

[ -x "$FLOOD" ] || { ok 1 "$FLOOD built"; done_testing; exit 1; }

dc "$T/warm" ee311.clients.test ee311 "$ON" --http /
is "$(id_of "$T/warm")" "ee311.clients.test" "warm-up: ee311 authenticated"

now_ms() { date +%s%3N; }

# one process, one thread per connection
t0=$(now_ms)
timeout 60 "$FLOOD" --cert "$C/ee311.crt" --key "$C/ee311.key" \
	--name 'p%d.slow.clients.test' -n "$N" --path / "127.0.0.1:$ON" \
	>"$T/flood" 2>&1 &
T_BG=$!

# all handshakes done, all requests waiting
i=0
while [ $i -lt 100 ]; do
	hs=$(grep -c '^handshake ' "$T/flood")
	[ "$hs" -ge "$N" ] && break
	sleep 0.1
	i=$((i + 1))
done
is "$hs" "$N" "$N handshakes completed"
is "$(grep -c '^done ' "$T/flood")" 0 "their requests wait for the TLSA lookups"

worst=0
for k in 1 2 3 4 5; do
	a=$(now_ms)
	dc "$T/o" ee311.clients.test ee311 "$ON" --http /
	b=$(now_ms)
	[ "$(id_of "$T/o")" = ee311.clients.test ] || worst=99999
	curl -sk "https://127.0.0.1:$PLAIN/" >"$T/o2" 2>&1
	c=$(now_ms)
	grep -q plain "$T/o2" || worst=99999
	[ $((b - a)) -gt $worst ] && worst=$((b - a))
	[ $((c - b)) -gt $worst ] && worst=$((c - b))
done
ok $([ $worst -lt 1000 ]; echo $?) "meanwhile, DANCE and plain clients served without delay (worst ${worst} ms, client start included)"

wait "$T_BG"
T_BG=
t1=$(now_ms)

is "$(grep -c '^done [0-9]* 400 ' "$T/flood")" "$N" "all $N waiting requests refused with 495 (400 on the wire)"
# per connection: from its handshake to its refusal
awk '$1 == "handshake" {h[$2] = $3} $1 == "done" {print $4 - h[$2]}' \
	"$T/flood" | sort -n >"$T/waits"
min=$(head -n 1 "$T/waits") max=$(tail -n 1 "$T/waits")
ok $([ "${min:-0}" -ge 2800 ] && [ "${max:-99999}" -lt 4000 ]; echo $?) \
	"each refused at its 3 s timeout (waited $min to $max ms)"
is "$(grep -c 'slow.clients.test" refused: timeout' "$E")" "$N" "each timeout logged once with name and reason"
# clients that give up while their request waits
w0=$(ngx_workers)
timeout -s KILL 1 "$FLOOD" --cert "$C/ee311.crt" --key "$C/ee311.key" \
	--name 'g%d.slow.clients.test' -n 20 --path / "127.0.0.1:$ON" \
	>"$T/flood3" 2>&1
is "$(grep -c '^handshake ' "$T/flood3")" 20 "20 clients waiting, then killed"
sleep 3.5	# past their timeout
dc "$T/o" ee311.clients.test ee311 "$ON" --http /
is "$(id_of "$T/o")" "ee311.clients.test" "the worker serves on after their lookups timed out"
is "$(ngx_workers)" "$w0" "same worker (no crash)"

# HTTP/2 streams reset, and connections closed, while their requests
# wait: parked requests of a stream or connection that is gone must
# leave no trace (make test-asan runs this under ASan/UBSan too)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$T/h2.key" -out "$T/h2.crt" -days 2 -subj /CN=h2 \
	-addext "subjectAltName=DNS:h2.slow.clients.test" >/dev/null 2>&1
H2REQ="/usr/bin/python3 $TOP/t/tools/h2req.py"
$H2REQ "$H2" --cert "$T/h2.crt" --key "$T/h2.key" --streams 3 \
	--reset-after 0.5 >"$T/h2r" 2>&1
grep -q 'answered before the reset: 0' "$T/h2r" && grep -q 'reset 3 streams' "$T/h2r"
ok $? "HTTP/2: 3 streams parked, then reset by the client" "$(cat "$T/h2r")"
$H2REQ "$H2" --cert "$T/h2.crt" --key "$T/h2.key" --streams 3 \
	--close-after 0.5 >"$T/h2c" 2>&1
grep -q 'answered before the close: 0' "$T/h2c"
ok $? "HTTP/2: 3 streams parked, then the connection closed" "$(cat "$T/h2c")"
sleep 3.5	# past their timeout
dc "$T/o" ee311.clients.test ee311 "$ON" --http /
is "$(id_of "$T/o")" "ee311.clients.test" "the worker serves on after the resets and closes"
is "$(ngx_workers)" "$w0" "same worker (no crash)"

unlike "$E" '\[(alert|crit|emerg)\]' "no alerts in the error log"
ngx_stop

# -- dance_max_pending: beyond the cap, names fail at once ---------------

sed -i 's/dance_timeout 3s;/dance_timeout 3s; dance_max_pending 5;/' "$T/nginx.conf"
ngx_start "$PLAIN" || { ok 1 "nginx restarts"; done_testing; exit 1; }
timeout 60 "$FLOOD" --cert "$C/ee311.crt" --key "$C/ee311.key" \
	--name 'q%d.slow.clients.test' -n 10 --path / "127.0.0.1:$ON" \
	>"$T/flood2" 2>&1
awk '$1 == "handshake" {h[$2] = $3} $1 == "done" {print $4 - h[$2]}' \
	"$T/flood2" | sort -n >"$T/waits2"
is "$(grep -c '^done [0-9]* 400 ' "$T/flood2")" 10 "max_pending 5: all 10 refused"
is "$(awk '$1 < 1000' "$T/waits2" | wc -l)" 5 "5 beyond the cap refused at once"
is "$(awk '$1 >= 2800' "$T/waits2" | wc -l)" 5 "5 within the cap refused at the timeout"
is "$(grep -c 'slow.clients.test" refused: overload' "$E")" 5 "overload logged with the name"

done_testing
