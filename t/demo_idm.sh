#!/bin/sh
# t/demo_idm.sh -- dance-idm rolls a device's key and certificate while
# the device keeps authenticating against nginx: the new TLSA record is
# published, seen by both authoritative servers and the validating
# resolver, left to propagate, then the new certificate is deployed and
# the old record removed.
#
#   WORLD_ENV=DIR/env [BUILD=build] sh t/demo_idm.sh
#
# The caller starts (and stops) the DNS world; this script starts Knot
# DNS (a signing primary and a secondary for a child zone of test.,
# delegated with a DS) and nginx in a temporary directory.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/t/lib/nginx.sh"
. "$top/t/lib/idm.sh"
need_module
IDM=$BUILD/bin/dance-idm
ST=$T/state
mkdir -p "$ST"

knot_zone || exit 1
ID=sensor7._device.$ZONE
conf "$ID" "ttl 2"
echo "Knot DNS signs $ZONE (primary 127.0.0.1, secondary 127.0.0.2, port $P);"
echo "test. delegates it with a DS. The device is $ID,"
echo "its TLSA TTL 2 s. Its identity: $ST/$ID.conf"
echo

echo "1. dance-idm enrols the device (self-signed DANE-EE certificate):"
"$IDM" -d "$ST" run "$ID" --wait 2>&1 | sed 's/^/   /'
idm_nginx || exit 1
echo
echo "2. The device connects to nginx (dance on) again and again, and"
echo "   dance-idm rolls its key meanwhile:"
cp "$T/$ID.pem" "$T/old.pem"
: >"$T/log"
traffic "$T/log"
sleep 1
"$IDM" -d "$ST" roll "$ID" 2>&1 | sed 's/^/   /'
"$IDM" -d "$ST" run "$ID" --wait 2>&1 | sed 's/^/   /'
sleep 3
traffic_stop
echo "   -> $(count_of "$T/log" ok) handshakes authenticated during the" \
	"rollover, $(count_of "$T/log" fail) failed"
echo
echo "3. dance-idm status:"
"$IDM" -d "$ST" status "$ID" | sed 's/^/   /'
echo
echo "4. The old key, after retirement + TTL:"
if one "$T/old.pem" "$T/out"; then
	echo "   -> unexpectedly accepted!"
else
	echo "   -> refused ($(sed -n 's/.*server refused: //p' "$T/out" | head -n 1))"
fi
