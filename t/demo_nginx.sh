#!/bin/sh
# t/demo_nginx.sh -- nginx with the DANCE module in front of a small
# upstream: what the upstream learns about an allowed device, and what
# happens to a wrong key and to a name that is not allowed.
#
#   WORLD_ENV=DIR/env [BUILD=build] sh t/demo_nginx.sh
#
# The caller starts (and stops) the DNS world; this script builds the
# module if needed, runs nginx in a temporary directory and stops it.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
: "${WORLD_ENV:?start a DNS world first and set WORLD_ENV}"
. "$WORLD_ENV"
C=$WORLD_CERTS
MODULE=$BUILD/nginx/ngx_http_dance_module.so
# as root, workers would run as "nobody", unable to read the world's files
USER_LINE=
[ "$(id -u)" -eq 0 ] && USER_LINE="user root;"
CLIENT=$BUILD/bin/dance-client

if [ ! -f "$MODULE" ]; then
	echo "Building the nginx module (make nginx) ..."
	make -C "$top" BUILD="$BUILD" nginx >/dev/null || exit 1
fi

T=$(mktemp -d /tmp/dance-demo-nginx.XXXXXX)
MASTER=
cleanup() {
	[ -n "$MASTER" ] && kill -QUIT "$MASTER" 2>/dev/null && sleep 0.3
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

port() {
	while :; do
		p=$(( 11000 + $(od -An -N2 -tu2 /dev/urandom) % 7000 ))
		ss -Htan "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}
UP=$(port)
FRONT=$(port)
while [ "$FRONT" = "$UP" ]; do FRONT=$(port); done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$T/srv.key" -out "$T/srv.crt" -days 1 -subj /CN=demo \
	>/dev/null 2>&1
mkdir -p "$T/tmp"
cat >"$T/nginx.conf" <<EOF
load_module $MODULE;
$USER_LINE
worker_processes 1;
daemon off;
pid $T/nginx.pid;
error_log $T/error.log info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $T/tmp/b; proxy_temp_path $T/tmp/p;
    fastcgi_temp_path $T/tmp/f; uwsgi_temp_path $T/tmp/u;
    scgi_temp_path $T/tmp/s;

    dance_trust_anchor $WORLD_TA;
    dance_unbound_conf $WORLD_UNBOUND_CONF;

    # the upstream application: says who nginx told it the client is
    server {
        listen 127.0.0.1:$UP;
        return 200 "upstream: hello, \$http_x_dance_client_id\n";
    }

    server {
        listen 127.0.0.1:$FRONT ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate $T/srv.crt;
        ssl_certificate_key $T/srv.key;

        dance on;
        dance_allow .clients.test;
        dance_identity_header X-Dance-Client-Id;

        location / {
            proxy_pass http://127.0.0.1:$UP;
            proxy_set_header X-Dance-Client-Id \$dance_client_id;
        }
    }
}
EOF
/usr/sbin/nginx -p "$T" -c "$T/nginx.conf" >"$T/stderr" 2>&1 &
MASTER=$!
i=0
while ! ss -Htln "sport = :$FRONT" | grep -q . && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
sleep 0.2

run() {	# run NAME CERT [extra args]
	name=$1 cert=$2
	shift 2
	"$CLIENT" --cert "$C/$cert.crt" --key "$C/$cert.key" --name "$name" \
		--http / "$@" "127.0.0.1:$FRONT" >"$T/out" 2>&1
}

echo "nginx $(/usr/sbin/nginx -v 2>&1 | sed 's/.*\///') with the DANCE module on" \
	"127.0.0.1:$FRONT, allowing *.clients.test, in front of an upstream."
echo

echo "1. Device ee311.clients.test presents its own key (TLSA 3 1 1 in DNS),"
echo "   and tries to smuggle in a fake identity header:"
if run ee311.clients.test ee311 --header "X-Dance-Client-Id: admin.example"; then
	echo "   -> accepted; the upstream says: $(grep upstream: "$T/out")"
	echo "      (the fake header was removed; the identity comes from DNSSEC+TLS)"
else
	echo "   -> unexpected failure:"; sed 's/^/      /' "$T/out"
fi
echo

echo "2. Someone claims to be ee311.clients.test with a different key:"
if run ee311.clients.test other; then
	echo "   -> unexpectedly accepted!"
else
	echo "   -> refused during the TLS handshake ($(sed -n 's/.*server refused: //p' "$T/out" | head -n 1))"
	echo "      nginx logged: $(grep -o 'dance: client "ee311.clients.test" refused.*' "$T/error.log" | sed 's/ while SSL.*//' | tail -n 1)"
fi
echo

echo "3. A device named ee311.example.org (not in the allow-list):"
if run ee311.example.org ee311; then
	echo "   -> unexpectedly accepted!"
else
	q=$(sh "$top/t/world/world.sh" count "$WORLD_DIR" ee311.example.org 2>/dev/null)
	echo "   -> refused during the TLS handshake; DNS queries for that name: ${q:-?}"
	echo "      nginx logged: $(grep -o 'dance: client "ee311.example.org" refused.*' "$T/error.log" | sed 's/ while SSL.*//' | tail -n 1)"
fi
