#!/bin/sh
# t/nginx_security.sh -- no way around "dance on", no forged identity:
#
#  1. requests nginx rejects while reading their headers (no Host, two
#     Host, bad Content-Length, headers too large: 400/494; plain HTTP on
#     the TLS port: 497) and that error_page sends to a named location or
#     a URI that proxies: without a certificate they never reach the
#     backend, and a forged identity header never reaches it (nor the
#     access log), over HTTP/1.1 and HTTP/2;
#  2. draft -13's MUSTs in the handshake for "dance on" without legacy
#     names: no TLS 1.2, no handshake without a certificate, also when
#     SNI selects the DANCE server behind a default server without DANCE
#     (which keeps TLS 1.2); a request whose Host selects a DANCE server
#     other than the TLS server is 421;
#  3. the identity header in every spelling a backend folds into the same
#     variable (case, "-" and "_"; underscores_in_headers on): removed in
#     every mode, on every request of a connection, HTTP/1.1 and HTTP/2,
#     checked at a plain HTTP backend that prints the headers it got and
#     at PHP-FPM ($_SERVER['HTTP_X_DANCE_CLIENT_ID']).
. "$(dirname "$0")/lib/nginx.sh"

need_module

PHPFPM=$(command -v php-fpm8.2 php-fpm 2>/dev/null | head -n 1)
PY=/usr/bin/python3
H2REQ="$TOP/t/tools/h2req.py"
FORGED=admin.example

UP=$(free_port) ON=$(free_port) LEG=$(free_port) OPT=$(free_port)
SNI=$(free_port)

# -- the backends: plain HTTP (headers as received) and PHP-FPM -------------

"$PY" "$TOP/t/tools/echo_backend.py" "$UP" "$T/backend.log" \
	>"$T/backend.err" 2>&1 &
T_BG="$T_BG $!"

# PHP-FPM's pool runs as nobody: it must reach its script and socket.
chmod 711 "$T"
mkdir -p "$T/php"
chmod 755 "$T/php"
cat >"$T/php/echo.php" <<'EOF'
<?php
header('Content-Type: text/plain');
echo "php id=[", $_SERVER['HTTP_X_DANCE_CLIENT_ID'] ?? '', "]\n";
foreach ($_SERVER as $k => $v) {
	if (stripos($k, 'dance') !== false) echo "$k=$v\n";
}
EOF
chmod 644 "$T/php/echo.php"
cat >"$T/php/fpm.conf" <<EOF
[global]
pid = $T/php/fpm.pid
error_log = $T/php/fpm.log
daemonize = no
[dance]
user = nobody
group = nogroup
listen = $T/php/fpm.sock
listen.mode = 0666
pm = static
pm.max_children = 2
EOF
"$PHPFPM" -F -y "$T/php/fpm.conf" >"$T/php/stderr.log" 2>&1 &
T_BG="$T_BG $!"

# the backends' locations: "/" proxied to the plain backend, "/php" to
# PHP-FPM
backends() {
	cat <<EOB
        location / {
            proxy_pass http://127.0.0.1:$UP;
        }
        location = /php {
            fastcgi_pass unix:$T/php/fpm.sock;
            fastcgi_param SCRIPT_FILENAME $T/php/echo.php;
            fastcgi_param REQUEST_METHOD \$request_method;
        }
EOB
}

{
	ngx_conf_head 1 info
	cat <<EOF
http {
$(ngx_http_head)
    dance_timeout 2s;
    underscores_in_headers on;
    large_client_header_buffers 4 1k;

    log_format sec '"\$dance_status" "\$http_x_dance_client_id" \$status';
    access_log $T/access.log sec;

    # dance on, error pages to a named location that proxies
    server {
        listen 127.0.0.1:$ON ssl;
        dance on;
        dance_allow .clients.test;
        dance_identity_header X-Dance-Client-Id;
        error_page 400 494 497 = @err;

$(backends)
        location @err {
            proxy_pass http://127.0.0.1:$UP;
        }
    }

    # dance on with SAN names (clients without dane_clientid: python,
    # openssl s_client), HTTP/2, error pages to a URI that proxies
    server {
        listen 127.0.0.1:$LEG ssl http2;
        dance on;
        dance_legacy_name san;
        dance_allow .clients.test;
        dance_identity_header X-Dance-Client-Id;
        error_page 400 494 497 /err;

$(backends)
        location = /err {
            proxy_pass http://127.0.0.1:$UP;
        }
    }

    # one listener: a default server without DANCE, a DANCE server by SNI
    server {
        listen 127.0.0.1:$SNI ssl default_server;
        server_name plain.test;
        location / { return 200 "plain\n"; }
    }
    server {
        listen 127.0.0.1:$SNI ssl;
        server_name dance.test;
        dance on;
        dance_allow .clients.test;
        location / { return 200 "dance id=[\$dance_client_id]\n"; }
    }

    # optional: unauthenticated clients pass, without any identity
    server {
        listen 127.0.0.1:$OPT ssl;
        dance optional;
        dance_allow .clients.test;
        dance_identity_header X-Dance-Client-Id;

$(backends)
    }
}
EOF
} >"$T/nginx.conf"

if ! ngx_start "$OPT"; then
	ok 1 "nginx starts with the module"
	done_testing
	exit 1
fi
i=0
while [ ! -S "$T/php/fpm.sock" ] && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
ok $? "PHP-FPM runs ($PHPFPM)" "$(cat "$T/php/stderr.log" "$T/php/fpm.log" 2>/dev/null)"
i=0
until grep -q . "$T/backend.log" 2>/dev/null ||
	curl -s "http://127.0.0.1:$UP/ready" >/dev/null; do
	[ $i -lt 100 ] || break
	sleep 0.05
	i=$((i + 1))
done

backend_requests() { grep -c '^REQ' "$T/backend.log" 2>/dev/null || echo 0; }

# -- raw HTTP/1.1 requests ---------------------------------------------------

big=$(head -c 3000 /dev/zero | tr '\0' x)
crlf() { sed 's/$/\r/'; }
raw() {	# raw KIND FILE: an HTTP/1.1 request that nginx rejects early
	case $1 in
	nohost) printf 'GET / HTTP/1.1\nX-Dance-Client-Id: %s\nConnection: close\n\n' \
		"$FORGED" ;;
	duphost) printf 'GET / HTTP/1.1\nHost: a.test\nX-Dance-Client-Id: %s\nHost: b.test\nConnection: close\n\n' \
		"$FORGED" ;;
	badlen) printf 'POST / HTTP/1.1\nHost: a.test\nX-Dance-Client-Id: %s\nContent-Length: 1x\nConnection: close\n\n' \
		"$FORGED" ;;
	large) printf 'GET / HTTP/1.1\nHost: a.test\nX-Dance-Client-Id: %s\nX-Large: %s\nConnection: close\n\n' \
		"$FORGED" "$big" ;;
	esac | crlf >"$2"
}

# openssl s_client: TLS 1.3 without a client certificate
sclient() {	# sclient PORT FILE OUT
	timeout 10 openssl s_client -connect "127.0.0.1:$1" -quiet -ign_eof \
		<"$2" >"$3" 2>"$3.err"
}

for kind in nohost duphost badlen large; do
	raw "$kind" "$T/req"
	for port in "$ON" "$LEG"; do
		[ "$port" = "$ON" ] && how="error_page = @err" || how="error_page /err"
		n=$(backend_requests)
		sclient "$port" "$T/req" "$T/o"
		is "$(backend_requests)" "$n" \
			"HTTP/1.1 $kind, no certificate, $how: nothing reaches the backend"
		! grep -q '^backend' "$T/o"
		ok $? "HTTP/1.1 $kind, no certificate, $how: refused" "$(head -n 5 "$T/o")"
	done
	dc "$T/o" ee311.clients.test ee311 "$ON" --raw "$T/req"
	! grep -qi "$FORGED" "$T/o"
	ok $? "HTTP/1.1 $kind, authenticated, error_page = @err: no forged identity" \
		"$(head -n 12 "$T/o")"
done

# plain HTTP on the TLS port (497), sent to the named location
for port in "$ON" "$LEG"; do
	n=$(backend_requests)
	curl -s -H "X-Dance-Client-Id: $FORGED" "http://127.0.0.1:$port/" >"$T/o" 2>&1
	is "$(backend_requests)" "$n" "plain HTTP on the TLS port ($port): nothing reaches the backend"
done

# -- HTTP/2 ------------------------------------------------------------------

h2() {	# h2 OUT [h2req options]
	out=$1
	shift
	timeout 20 "$PY" "$H2REQ" "$@" >"$out" 2>&1
}
F="x-dance-client-id: $FORGED"
for cert in none ee311; do
	certopt=
	[ "$cert" = ee311 ] && certopt="--cert $C/ee311.crt --key $C/ee311.key"
	for kind in nohost duphost badlen large; do
		case $kind in
		nohost) set -- --no-authority -H "$F" ;;
		duphost) set -- -H "host: a.test" -H "$F" -H "host: b.test" ;;
		badlen) set -- -H "$F" -H "content-length: 1x" ;;
		large) set -- -H "$F" -H "x-large: $big" ;;
		esac
		n=$(backend_requests)
		# shellcheck disable=SC2086
		h2 "$T/o" "$LEG" $certopt "$@"
		if [ "$cert" = none ]; then
			is "$(backend_requests)" "$n" \
				"HTTP/2 $kind, no certificate: nothing reaches the backend"
		else
			! grep -qi "$FORGED" "$T/o"
			ok $? "HTTP/2 $kind, authenticated (SAN): no forged identity" \
				"$(head -n 12 "$T/o")"
		fi
	done
done

# -- draft -13 in the handshake: TLS 1.3 only, a certificate required -------

tls() {	# tls OUT PORT [s_client options]: exit status in OUT.rc
	out=$1 port=$2
	shift 2
	# stdin open for a second: in TLS 1.3 the server's alert comes
	# after the client's Finished, s_client must still be reading
	sleep 1 | timeout 10 openssl s_client -connect "127.0.0.1:$port" "$@" \
		>"$out" 2>&1
	echo $? >"$out.rc"
}
tls "$T/o" "$ON" -tls1_2 -cert "$C/ee311.crt" -key "$C/ee311.key"
grep -q 'alert protocol version' "$T/o"
ok $? "dance on: TLS 1.2 is refused in the handshake (protocol_version)" "$(tail -n 5 "$T/o")"
tls "$T/o" "$ON" -tls1_3
grep -q 'alert certificate required' "$T/o"
ok $? "dance on: TLS 1.3 without a certificate is refused in the handshake" "$(tail -n 5 "$T/o")"
tls "$T/o" "$SNI" -tls1_2 -servername plain.test
grep -q 'Protocol *: TLSv1.2' "$T/o" && ! grep -q alert "$T/o"
ok $? "SNI: the default server without DANCE keeps TLS 1.2" "$(tail -n 5 "$T/o")"
tls "$T/o" "$SNI" -tls1_2 -servername dance.test -cert "$C/ee311.crt" -key "$C/ee311.key"
grep -q 'alert handshake failure' "$T/o"
ok $? "SNI: TLS 1.2 to the DANCE server, with a certificate: handshake_failure" "$(tail -n 5 "$T/o")"
tls "$T/o" "$SNI" -tls1_2 -servername dance.test
grep -q 'alert handshake failure' "$T/o"
ok $? "SNI: TLS 1.2 to the DANCE server, no certificate: handshake_failure" "$(tail -n 5 "$T/o")"
dc "$T/o" ee311.clients.test ee311 "$SNI" --servername dance.test --http /
grep -q 'dance id=\[ee311.clients.test\]' "$T/o"
ok $? "SNI: a DANCE client of the DANCE server authenticates" "$(cat "$T/o")"
# resumption: a ticket of the server without DANCE never resumes into
# the DANCE server of the same listener (full handshake there), and
# still resumes into its own server
for v in tls1_3 tls1_2; do
	tls "$T/o" "$SNI" -$v -servername plain.test -sess_out "$T/sess"
	tls "$T/o" "$SNI" -$v -servername plain.test -sess_in "$T/sess"
	grep -q '^Reused' "$T/o"
	ok $? "$v: the server without DANCE still resumes its own sessions" "$(grep -E '^(New|Reused)' "$T/o")"
	tls "$T/o" "$SNI" -$v -servername dance.test -sess_in "$T/sess"
	! grep -q '^Reused' "$T/o"
	ok $? "$v: its ticket does not resume into the DANCE server" "$(grep -E '^(New|Reused)|alert' "$T/o")"
done
curl -sk -o /dev/null -w '%{http_code}' --resolve "plain.test:$SNI:127.0.0.1" \
	-H 'Host: dance.test' "https://plain.test:$SNI/" >"$T/o" 2>&1
is "$(cat "$T/o")" 421 "TLS with the server without DANCE, Host of the DANCE server: 421"

# -- every spelling, every mode ------------------------------------------------

# the identity header lines a backend received (names as sent)
idlines() {	# idlines OUT: header lines whose name folds to x-dance-client-id
	grep -iE '^x[-_]dance[-_]client[-_]id:' "$1"
}

for v in X_Dance_Client_Id X-Dance-Client_Id X_DANCE_CLIENT_ID \
	x-dance-client-id X-DANCE-CLIENT-ID
do
	dc "$T/o" ee311.clients.test ee311 "$ON" --http / --header "$v: $FORGED"
	is "$(idlines "$T/o")" "X-Dance-Client-Id: ee311.clients.test" \
		"on, authenticated, '$v' forged: the backend sees only the real identity"
	dc "$T/o" ee311.clients.test ee311 "$OPT" --no-ext --http / \
		--header "$v: $FORGED" --header "$v: $FORGED"
	is "$(idlines "$T/o")" "" \
		"optional, unauthenticated, '$v' twice: the backend sees no identity"
	dc "$T/o" ee311.clients.test ee311 "$ON" --http /php --header "$v: $FORGED"
	grep -qx 'php id=\[ee311.clients.test\]' "$T/o"
	ok $? "on, authenticated, '$v' forged: PHP-FPM's HTTP_X_DANCE_CLIENT_ID is the real identity" \
		"$(cat "$T/o")"
	dc "$T/o" ee311.clients.test ee311 "$OPT" --no-ext --http /php \
		--header "$v: $FORGED"
	grep -qx 'php id=\[\]' "$T/o"
	ok $? "optional, unauthenticated, '$v' forged: PHP-FPM sees no identity" \
		"$(cat "$T/o")"
done

# an authenticated client trying to add a second identity
dc "$T/o" ee311.clients.test ee311 "$OPT" --http / \
	--header "X-Dance-Client-Id: $FORGED" --header "X_Dance_Client_Id: $FORGED"
is "$(idlines "$T/o")" "X-Dance-Client-Id: ee311.clients.test" \
	"optional, authenticated, two forged copies: one identity, the real one"

# keepalive: the second request of a connection is cleaned as well
printf 'GET / HTTP/1.1\r\nHost: a.test\r\n\r\nGET / HTTP/1.1\r\nHost: a.test\r\nX_Dance_Client_Id: %s\r\nConnection: close\r\n\r\n' \
	"$FORGED" >"$T/req"
dc "$T/o" ee311.clients.test ee311 "$OPT" --raw "$T/req"
is "$(idlines "$T/o" | tr '\n' ' ')" \
	"X-Dance-Client-Id: ee311.clients.test X-Dance-Client-Id: ee311.clients.test " \
	"keepalive: the second request's forged copy is removed too"

# HTTP/2: several streams, forged in two spellings, plain backend and PHP
h2 "$T/o" "$LEG" --cert "$C/ee311.crt" --key "$C/ee311.key" --streams 3 \
	-H "x_dance_client_id: $FORGED" -H "x-dance-client-id: $FORGED"
is "$(idlines "$T/o" | sort -u)" "X-Dance-Client-Id: ee311.clients.test" \
	"HTTP/2, 3 streams: the backend sees only the real identity"
is "$(grep -c '^:status 200' "$T/o")" 3 "HTTP/2: the 3 streams were answered"
h2 "$T/o" "$LEG" --cert "$C/ee311.crt" --key "$C/ee311.key" \
	-H ":path: /php" -H "x_dance_client_id: $FORGED"
grep -qx 'php id=\[ee311.clients.test\]' "$T/o"
ok $? "HTTP/2: PHP-FPM's HTTP_X_DANCE_CLIENT_ID is the real identity" "$(cat "$T/o")"

# -- what nginx itself wrote -------------------------------------------------

ngx_stop
unlike "$T/backend.log" "$FORGED" "no forged identity ever reached the plain backend"
unlike "$T/access.log" "$FORGED" "no forged identity in the access log, early rejections included"
like "$T/error.log" 'dance: client sent "X-Dance-Client-Id" header' "removals are logged"

done_testing
