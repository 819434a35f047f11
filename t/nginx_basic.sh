#!/bin/sh
# t/nginx_basic.sh -- the nginx module against the DNS test world:
# every TLSA usage, wrong keys (cold: 495, warm: handshake_failure),
# allow-list (no DNS query), DNS failures in "on" and "optional",
# identity header anti-spoofing in every mode, legacy clients (TLS 1.2,
# curl) with "dance_legacy_name san", one verdict per connection
# (keepalive, HTTP/2), no session resumption, variables in map/if.
. "$(dirname "$0")/lib/nginx.sh"

need_module

UP=$(free_port) ON=$(free_port) OPT=$(free_port) OFF=$(free_port)
NARROW=$(free_port) LEG=$(free_port) MIS=$(free_port)

{
	ngx_conf_head 1 debug
	cat <<EOF
http {
$(ngx_http_head)
    dance_timeout 2s;
    # resumption on for everybody: DANCE servers must still refuse it
    ssl_session_cache shared:SSL:1m;
    ssl_session_tickets on;

    log_format dance '\$pid "\$dance_status" "\$dance_client_id" '
                     '"\$dance_usage" "\$http_x_dance_client_id" \$status';
    access_log $T/access.log dance;

    map \$dance_status \$dance_ok {
        SUCCESS  yes;
        default  no;
    }

    # the upstream: shows the identity header it received
    server {
        listen 127.0.0.1:$UP;
        access_log $T/upstream.log dance;
        location / {
            return 200 "id=[\$http_x_dance_client_id]\n";
        }
    }

    server {
        listen 127.0.0.1:$ON ssl;
        dance on;
        dance_allow .clients.test;
        dance_pkix_ca $C/pkixca.crt;
        dance_identity_header X-Dance-Client-Id;

        location / {
            proxy_pass http://127.0.0.1:$UP;
            proxy_set_header X-Dance-Client-Id \$dance_client_id;
        }
        location /vars {
            return 200 "status=[\$dance_status] usage=[\$dance_usage] ok=[\$dance_ok] id=[\$dance_client_id]\n";
        }
    }

    # optional, and no proxy_set_header: the module's header only
    server {
        listen 127.0.0.1:$OPT ssl;
        dance optional;
        dance_allow .clients.test;
        dance_pkix_ca $C/pkixca.crt;
        dance_identity_header X-Dance-Client-Id;

        location / {
            proxy_pass http://127.0.0.1:$UP;
        }
        location /vars {
            return 200 "status=[\$dance_status] usage=[\$dance_usage] ok=[\$dance_ok] id=[\$dance_client_id]\n";
        }
        location /if {
            if (\$dance_client_id = "") {
                return 403 "anonymous\n";
            }
            return 200 "hello \$dance_client_id\n";
        }
    }

    # DANCE off: client copies of the header are still removed
    server {
        listen 127.0.0.1:$OFF ssl;
        dance_identity_header X-Dance-Client-Id;
        location / {
            proxy_pass http://127.0.0.1:$UP;
        }
    }

    server {
        listen 127.0.0.1:$NARROW ssl;
        dance on;
        dance_allow ee312.clients.test;
        location / {
            return 200 "narrow\n";
        }
    }

    # two DANCE servers on one port: the allow-list of the TLS server
    # name applies, a request for the other server is misdirected
    server {
        listen 127.0.0.1:$MIS ssl;
        server_name a.test;
        dance on;
        dance_legacy_name san;
        dance_allow .clients.test;
        location / {
            return 200 "a id=[\$dance_client_id]\n";
        }
    }
    server {
        listen 127.0.0.1:$MIS ssl;
        server_name b.test;
        dance on;
        dance_legacy_name san;
        dance_allow other.test;
        location / {
            return 200 "b id=[\$dance_client_id]\n";
        }
    }

    server {
        listen 127.0.0.1:$LEG ssl http2;
        dance on;
        dance_legacy_name san;
        dance_allow .clients.test;
        dance_identity_header X-Dance-Client-Id;
        location / {
            proxy_pass http://127.0.0.1:$UP;
        }
    }
}
EOF
} >"$T/nginx.conf"

if ! ngx_start "$LEG"; then
	ok 1 "nginx starts with the module"
	done_testing
	exit 1
fi
ok 0 "nginx starts with the module"

E=$T/error.log

# -- HTTP/2, cold: three streams wait for one lookup, one verdict --------

curl -sk --http2 --parallel --cert "$C/sensor7.chain.pem" \
	--key "$C/sensor7.key" "https://127.0.0.1:$LEG/a" \
	"https://127.0.0.1:$LEG/b" "https://127.0.0.1:$LEG/c" >"$T/o" 2>&1
is "$(grep -c 'id=\[sensor7._device.clients.test\]' "$T/o")" 3 "HTTP/2, cold: 3 streams authenticated"
ngx_debug is "$(grep -c 'dance: request waits for the TLSA lookup' "$E")" 3 "HTTP/2, cold: the 3 streams waited for the lookup"
ngx_debug is "$(grep -c 'dance: waking up request' "$E")" 3 "HTTP/2, cold: and were woken up by the answer"
is "$(grep -c 'dance: client "sensor7._device.clients.test" authenticated' "$E")" 1 "HTTP/2, cold: one verdict"

# -- allow-list: the names must be fresh -----------------------------------

before=$(count full.clients.test)
dc "$T/o" full.clients.test full "$NARROW" --http /
[ "$(rc_of "$T/o")" -ne 0 ] && grep -qi "handshake failure" "$T/o"
ok $? "name not in the allow-list: handshake_failure" "$(cat "$T/o")"
is "$(count full.clients.test)" "$before" "name not in the allow-list: no DNS query"
like "$E" 'dance: client "full.clients.test" refused in handshake' \
	"refusal logged with the name"

dc "$T/o" evil.example.org ee311 "$ON" --http /
[ "$(rc_of "$T/o")" -ne 0 ] && grep -qi "handshake failure" "$T/o"
ok $? "name outside the zone: handshake_failure" "$(cat "$T/o")"
is "$(count evil.example.org)" 0 "name outside the zone: no DNS query"

timeout 20 "$CLIENT" --cert "$C/ee311.crt" --key "$C/ee311.key" --zero-name \
	--http / "127.0.0.1:$ON" >"$T/o" 2>&1
[ $? -ne 0 ] && grep -qi "handshake failure" "$T/o"
ok $? "zero-length ClientName: handshake_failure" "$(cat "$T/o")"

# -- wrong key, cold then warm ---------------------------------------------

dc "$T/o" ee311.clients.test other "$ON" --http /
[ "$(rc_of "$T/o")" -ne 0 ] && grep -q "SSL certificate error" "$T/o"
ok $? "wrong key, cold cache: 495 (400 \"SSL certificate error\")" "$(cat "$T/o")"
like "$E" '\[warn\].*dance: client "ee311.clients.test" refused: ' \
	"cold refusal logged at warn with name and reason"

dc "$T/o" ee311.clients.test ee311 "$ON" --http /
is "$(id_of "$T/o")" "ee311.clients.test" "right key: upstream gets the identity"

dc "$T/o" ee311.clients.test other "$ON" --http /
[ "$(rc_of "$T/o")" -ne 0 ] && grep -qi "handshake failure" "$T/o"
ok $? "wrong key, warm cache: handshake_failure in the handshake" "$(cat "$T/o")"
like "$E" 'dance: client "ee311.clients.test" refused in handshake' \
	"in-handshake refusal logged"

# -- every usage, cold (post-handshake) then warm (in the handshake) -------

for spec in ee311:ee311:3 ee312:ee312:3 full:full:3 ee301:ee301:3 \
	expired:expired:3 sensor7._device:sensor7:2 pkix-ee:pkixee:1 \
	pkix-ta:pkixta:0 rollover:rollnew:3
do
	name=${spec%%:*}.clients.test
	rest=${spec#*:}
	cert=${rest%%:*}
	usage=${rest#*:}
	for pass in cold warm; do
		dc "$T/o" "$name" "$cert" "$ON" --http /vars
		grep -q "status=\[SUCCESS\] usage=\[$usage\] ok=\[yes\] id=\[$name\]" "$T/o"
		ok $? "$name with $cert.crt ($pass): usage $usage" "$(cat "$T/o")"
	done
done

dc "$T/o" nosan._device.clients.test nosan "$ON" --http /
[ "$(rc_of "$T/o")" -ne 0 ]
ok $? "DANE-TA without the name in the SAN: refused" "$(cat "$T/o")"

# -- DNS failures ------------------------------------------------------------

for name in bogus.clients.test x.insecure.clients.test nx.clients.test \
	nodata.clients.test a.servfail.clients.test a.slow.clients.test
do
	dc "$T/o" "$name" ee311 "$ON" --http /
	[ "$(rc_of "$T/o")" -ne 0 ] && ! grep -q "id=\[" "$T/o"
	ok $? "on: $name refused (cold)" "$(cat "$T/o")"
	like "$E" "dance: client \"$name\" refused: " "on: $name: reason logged"
done

dc "$T/o" bogus.clients.test ee311 "$ON" --http /
[ "$(rc_of "$T/o")" -ne 0 ] && ! grep -q "id=\[" "$T/o"
ok $? "on: bogus.clients.test refused (warm)" "$(cat "$T/o")"

for name in bogus.clients.test x.insecure.clients.test nx.clients.test \
	nodata.clients.test b.servfail.clients.test b.slow.clients.test
do
	dc "$T/o" "$name" ee311 "$OPT" --http /vars
	grep -q "status=\[FAILED:.*id=\[\]" "$T/o"
	ok $? "optional: $name passes unauthenticated" "$(cat "$T/o")"
done

# -- anti-spoofing, every mode --------------------------------------------

S='X-Dance-Client-Id: evil.example'
dc "$T/o" ee311.clients.test ee311 "$ON" --http / --header "$S"
is "$(id_of "$T/o")" "ee311.clients.test" "on + proxy_set_header: spoofed header replaced"
dc "$T/o" ee311.clients.test ee311 "$OPT" --http / --header "$S"
is "$(id_of "$T/o")" "ee311.clients.test" "optional, authenticated, no proxy_set_header: the module's header only"
dc "$T/o" ee311.clients.test ee311 "$OPT" --http / --header "$S" --no-ext
is "$(id_of "$T/o")" "" "optional, no dane_clientid: spoofed header removed"
dc "$T/o" bogus.clients.test ee311 "$OPT" --http / --header "$S"
is "$(id_of "$T/o")" "" "optional, failed: spoofed header removed"
dc "$T/o" ee311.clients.test ee311 "$OFF" --http / --header "$S"
is "$(id_of "$T/o")" "" "dance off: spoofed header removed"
dc "$T/o" ee311.clients.test other "$ON" --http / --header "$S"
! grep -q "id=\[" "$T/o"
ok $? "on, refused: nothing reaches the upstream" "$(cat "$T/o")"
curl -sk --cert "$C/sensor7.chain.pem" --key "$C/sensor7.key" -H "$S" \
	"https://127.0.0.1:$LEG/" >"$T/o" 2>&1
is "$(id_of "$T/o")" "sensor7._device.clients.test" "legacy (curl): spoofed header replaced"
like "$E" 'dance: client sent "X-Dance-Client-Id" header' "spoofing attempt logged"
unlike "$T/upstream.log" 'evil\.example' "the spoofed value never reached the upstream"
unlike "$T/access.log" 'evil\.example' "nor the access log"

# -- variables in if -------------------------------------------------------

dc "$T/o" ee311.clients.test ee311 "$OPT" --http /if
grep -q "hello ee311.clients.test" "$T/o"
ok $? "if (\$dance_client_id): authenticated" "$(cat "$T/o")"
dc "$T/o" ee311.clients.test ee311 "$OPT" --http /if --no-ext
grep -q "anonymous" "$T/o"
ok $? "if (\$dance_client_id): anonymous" "$(cat "$T/o")"
dc "$T/o" ee311.clients.test ee311 "$OPT" --http /vars --no-ext
grep -q "status=\[NONE\] usage=\[\] ok=\[no\] id=\[\]" "$T/o"
ok $? "no dane_clientid: status NONE" "$(cat "$T/o")"

# -- TLS 1.2 and legacy names ----------------------------------------------

# "dance on" without legacy names: a TLS 1.3 certificate without
# dane_clientid fails the handshake (the draft's handshake_failure)
dc "$T/o" ee311.clients.test ee311 "$ON" --http / --no-ext
[ "$(rc_of "$T/o")" -ne 0 ] && grep -qi "handshake failure" "$T/o" &&
	! grep -q "id=\[" "$T/o"
ok $? "on, TLS 1.3 without dane_clientid: handshake_failure" "$(cat "$T/o")"
like "$E" 'dance: client "\(no name\)" refused in handshake: client sent no dane_clientid' \
	"on, no dane_clientid: refusal logged with the reason"
printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 openssl s_client \
	-connect "127.0.0.1:$ON" -tls1_3 -cert "$C/ee311.crt" \
	-key "$C/ee311.key" -ign_eof >"$T/o" 2>&1
grep -q "alert handshake failure" "$T/o" && ! grep -q "id=\[" "$T/o"
ok $? "on, plain TLS 1.3 client with a certificate: handshake_failure" "$(cat "$T/o")"
dc "$T/o" ee311.clients.test ee311 "$LEG" --http / --no-ext
is "$(id_of "$T/o")" "ee311.clients.test" "on + legacy san, TLS 1.3 without dane_clientid: authenticated by SAN"

dc "$T/o" ee311.clients.test ee311 "$ON" --http / --tls1.2
[ "$(rc_of "$T/o")" -ne 0 ] && ! grep -q "id=\[" "$T/o"
ok $? "TLS 1.2 client, no legacy mode: refused" "$(cat "$T/o")"
dc "$T/o" ee311.clients.test ee311 "$OPT" --http /vars --tls1.2
grep -q "status=\[NONE\]" "$T/o"
ok $? "TLS 1.2 client, optional: not authenticated" "$(cat "$T/o")"
dc "$T/o" sensor7._device.clients.test sensor7 "$LEG" --http / --tls1.2
is "$(id_of "$T/o")" "sensor7._device.clients.test" "TLS 1.2 client, legacy san: authenticated by SAN"

curl -sk --cert "$C/sensor7.chain.pem" --key "$C/sensor7.key" \
	"https://127.0.0.1:$LEG/" >"$T/o" 2>&1
is "$(id_of "$T/o")" "sensor7._device.clients.test" "curl with a client certificate: authenticated by SAN"
curl -sk --tlsv1.2 --tls-max 1.2 --cert "$C/sensor7.chain.pem" \
	--key "$C/sensor7.key" "https://127.0.0.1:$LEG/" >"$T/o" 2>&1
is "$(id_of "$T/o")" "sensor7._device.clients.test" "curl, TLS 1.2: authenticated by SAN"
curl -sk "https://127.0.0.1:$LEG/" >"$T/o" 2>&1
grep -q "No required SSL certificate" "$T/o"
ok $? "curl without certificate: 496" "$(cat "$T/o")"
curl -sk --cert "$C/other.crt" --key "$C/other.key" \
	"https://127.0.0.1:$LEG/" >"$T/o" 2>&1
grep -q "SSL certificate error" "$T/o"
ok $? "curl with a certificate without allowed SAN: 495" "$(cat "$T/o")"

# -- TLS server name and Host ---------------------------------------------

curl -sk --resolve "a.test:$MIS:127.0.0.1" --cert "$C/sensor7.chain.pem" \
	--key "$C/sensor7.key" "https://a.test:$MIS/" >"$T/o" 2>&1
grep -q "a id=\[sensor7._device.clients.test\]" "$T/o"
ok $? "SNI a.test, Host a.test: authenticated by a.test's allow-list" "$(cat "$T/o")"
curl -sk --resolve "a.test:$MIS:127.0.0.1" --cert "$C/sensor7.chain.pem" \
	--key "$C/sensor7.key" -H "Host: b.test" "https://a.test:$MIS/" \
	>"$T/o" 2>&1
grep -q "421 Misdirected Request" "$T/o" && ! grep -q "id=\[" "$T/o"
ok $? "SNI a.test, Host b.test: 421, a.test's verdict not used for b.test" "$(cat "$T/o")"
curl -sk --resolve "b.test:$MIS:127.0.0.1" --cert "$C/sensor7.chain.pem" \
	--key "$C/sensor7.key" "https://b.test:$MIS/" >"$T/o" 2>&1
grep -q "SSL certificate error" "$T/o"
ok $? "SNI b.test: its own allow-list refuses the name" "$(cat "$T/o")"

# -- the lookup starts inside the handshake --------------------------------

cid=$(grep -m1 'dance: resolving TLSA for "ee311.clients.test"' "$E" |
	sed -n 's/.* \*\([0-9]*\) dance:.*/\1/p')
lr=$(grep -n "\*$cid dance: resolving TLSA" "$E" | head -n 1 | cut -d: -f1)
lh=$(grep -n "\*$cid SSL_do_handshake: 1" "$E" | head -n 1 | cut -d: -f1)
lq=$(grep -n "\*$cid http process request line" "$E" | head -n 1 | cut -d: -f1)
ngx_debug ok $([ -n "$cid" ] && [ "${lr:-0}" -gt 0 ] && [ "$lr" -lt "${lh:-0}" ] &&
	[ "$lh" -lt "${lq:-0}" ]; echo $?) \
	"cold lookup started in the handshake, before the request" \
	"error.log lines: lookup $lr, handshake $lh, request $lq"

# -- one verdict per connection ----------------------------------------

n0=$(grep -c 'dance: client "sensor7._device.clients.test" authenticated' "$E")
curl -sk --http1.1 --cert "$C/sensor7.chain.pem" --key "$C/sensor7.key" \
	"https://127.0.0.1:$LEG/a" "https://127.0.0.1:$LEG/b" \
	"https://127.0.0.1:$LEG/c" >"$T/o" 2>&1
is "$(grep -c 'id=\[sensor7._device.clients.test\]' "$T/o")" 3 "keepalive: 3 requests authenticated"
n1=$(grep -c 'dance: client "sensor7._device.clients.test" authenticated' "$E")
is "$((n1 - n0))" 1 "keepalive: one verdict for the connection"
curl -sk --http2 --parallel --cert "$C/sensor7.chain.pem" \
	--key "$C/sensor7.key" "https://127.0.0.1:$LEG/a" \
	"https://127.0.0.1:$LEG/b" "https://127.0.0.1:$LEG/c" >"$T/o" 2>&1
is "$(grep -c 'id=\[sensor7._device.clients.test\]' "$T/o")" 3 "HTTP/2: 3 streams authenticated"
n2=$(grep -c 'dance: client "sensor7._device.clients.test" authenticated' "$E")
is "$((n2 - n1))" 1 "HTTP/2: one verdict for the connection"

# -- no session resumption on DANCE servers ----------------------------------

# optional: a plain client's handshake completes ("on" refuses TLS 1.3
# without dane_clientid in the handshake)
req='GET /vars HTTP/1.0\r\n\r\n'
for v in 1_2 1_3; do
	rm -f "$T/sess"
	printf "$req" | timeout 10 openssl s_client -connect "127.0.0.1:$OPT" \
		-tls$v -cert "$C/ee311.crt" -key "$C/ee311.key" \
		-sess_out "$T/sess" -ign_eof >"$T/s1" 2>&1
	if [ -s "$T/sess" ]; then
		printf "$req" | timeout 10 openssl s_client \
			-connect "127.0.0.1:$OPT" -tls$v -cert "$C/ee311.crt" \
			-key "$C/ee311.key" -sess_in "$T/sess" -ign_eof \
			>"$T/s2" 2>&1
	else
		echo "no session saved" >"$T/s2"
	fi
	grep -q "status=\[NONE\]" "$T/s1" && ! grep -q "^Reused" "$T/s2"
	ok $? "TLS $v: session not resumed on a DANCE server" "$(grep -E '^(New|Reused)' "$T/s2")"
done
unlike "$T/s1" "Post-Handshake New Session Ticket" "TLS 1.3: no session ticket from a DANCE server"
printf "$req" | timeout 10 openssl s_client -connect "127.0.0.1:$OFF" \
	-tls1_3 -ign_eof >"$T/s3" 2>&1
like "$T/s3" "Post-Handshake New Session Ticket" "control: a server without DANCE issues tickets"
rm -f "$T/sess"
printf "$req" | timeout 10 openssl s_client -connect "127.0.0.1:$OFF" \
	-tls1_2 -sess_out "$T/sess" -ign_eof >/dev/null 2>&1
printf "$req" | timeout 10 openssl s_client -connect "127.0.0.1:$OFF" \
	-tls1_2 -sess_in "$T/sess" -ign_eof >"$T/s4" 2>&1
like "$T/s4" "^Reused" "control: a server without DANCE resumes TLS 1.2 sessions"

# -- variables in log_format ------------------------------------------------

like "$T/access.log" '"SUCCESS" "ee311.clients.test" "3" "ee311.clients.test" 200' \
	"log_format: status, identity, usage, forwarded header"
like "$T/access.log" '"FAILED:nxdomain" "-" "-" "-" 200' \
	"log_format: FAILED:<reason> for an unauthenticated request"
like "$T/access.log" '"NONE" "-" "-" "-" 200' "log_format: NONE"

# -- health --------------------------------------------------------------

unlike "$E" '\[(alert|crit|emerg)\]' "no alerts in the error log"
ngx_stop
unlike "$E" 'open socket|leak' "clean exit"

done_testing
