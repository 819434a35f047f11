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
# The nginx tests' helpers: config head, ports, start and stop at exit.
. "$top/t/lib/nginx.sh"
need_module

UP=$(free_port)
FRONT=$(free_port)
MET=$(free_port)
{
	ngx_conf_head 1 info
	cat <<EOF
http {
$(ngx_http_head)

    # the upstream application: says who nginx told it the client is
    server {
        listen 127.0.0.1:$UP;
        return 200 "upstream: hello, \$http_x_dance_client_id\n";
    }

    server {
        listen 127.0.0.1:$FRONT ssl;

        dance on;
        dance_allow .clients.test;
        dance_identity_header X-Dance-Client-Id;

        location / {
            proxy_pass http://127.0.0.1:$UP;
            proxy_set_header X-Dance-Client-Id \$dance_client_id;
        }
    }

    # the metrics, for Prometheus (README: "Metrics and the decision log")
    server {
        listen 127.0.0.1:$MET;
        location = /metrics { dance_status; }
    }
}
EOF
} >"$T/nginx.conf"
ngx_start "$FRONT" || exit 1

run() {	# run NAME CERT [extra args]
	name=$1 cert=$2
	shift 2
	"$CLIENT" --cert "$C/$cert.crt" --key "$C/$cert.key" --name "$name" \
		--http / "$@" "127.0.0.1:$FRONT" >"$T/out" 2>&1
}

echo "nginx $("$NGINX_BIN" -v 2>&1 | sed 's/.*\///') with the DANCE module on" \
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
echo

echo "4. What nginx tells Prometheus (dance_status on 127.0.0.1:$MET/metrics;"
echo "   the samples that are not 0):"
curl -s "http://127.0.0.1:$MET/metrics" | grep -v '^#' | grep -v ' 0$' | sed 's/^/   /'
echo "   and its decision log lines:"
grep -o 'dance: client=.* cached=[^ ,]*' "$T/error.log" | sed 's/^/   /'
