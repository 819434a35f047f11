#!/bin/sh
# t/demo.sh -- `make demo`: a device authenticated by DANE, end to end,
# through a real DNSSEC-signed zone served on loopback.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
export BUILD
bin=$BUILD/bin
cd "$top" || exit 2

say() { printf '\n== %s\n' "$*"; }
T=$(mktemp -d /tmp/dance-demo.XXXXXX)
world=$T/world
. "$top/t/lib/ports.sh"
srv_pid=""
cleanup() {
	[ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null
	sh t/world/world.sh stop "$world" >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

say "Starting the local DNSSEC world (signed zone test., real NSD on loopback)"
sh t/world/world.sh start "$world" >/dev/null || exit 1
. "$world/env"
dev=sensor7._device.clients.test
c=$WORLD_CERTS
echo "Trust anchor: $WORLD_TA"
echo "Sample device: $dev, certificate issued by the device CA devca,"
echo "published in DNS as a DANE-TA wildcard *._device.clients.test."

say "What the zone publishes (dance-tlsa prints TLSA records for a cert)"
"$bin/dance-tlsa" --name '*._device.clients.test' "$c/devca.crt" 2 0 1

say "dance-check: would $dev authenticate right now?"
"$bin/dance-check" --ta "$WORLD_TA" --unbound-conf "$WORLD_UNBOUND_CONF" \
	--allow '.clients.test' "$dev" "$c/sensor7.chain.pem"
echo "(exit code $?)"

port=$(free_port)
say "A DANCE TLS server (dance-server) on 127.0.0.1:$port, allow-list .clients.test"
"$bin/dance-server" --cert "$c/server.crt" --key "$c/server.key" \
	--listen "127.0.0.1:$port" --allow .clients.test \
	--ta "$WORLD_TA" --unbound-conf "$WORLD_UNBOUND_CONF" \
	2>"$world/server.log" &
srv_pid=$!
sleep 0.5

say "The device connects over TLS 1.3 and sends its name in dane_clientid"
"$bin/dance-client" --cert "$c/sensor7.crt" --key "$c/sensor7.key" \
	--chain "$c/sensor7.chain.pem" --name "$dev" "127.0.0.1:$port" &&
	echo "=> AUTHENTICATED as $dev (DANE-TA, TLSA looked up and validated)"

say "An impostor with another key claims the name ee311.clients.test"
"$bin/dance-client" --cert "$c/other.crt" --key "$c/other.key" \
	--name ee311.clients.test "127.0.0.1:$port" ||
	echo "=> REFUSED: the certificate does not match the TLSA record"

say "A client whose name is not in the allow-list"
"$bin/dance-client" --cert "$c/ee311.crt" --key "$c/ee311.key" \
	--name device.evil.example "127.0.0.1:$port" ||
	echo "=> REFUSED before any DNS query: queries for it at the authoritative:" \
		"$(sh t/world/world.sh count "$world" device.evil.example)"

kill "$srv_pid" 2>/dev/null
srv_pid=""
WORLD_ENV=$world/env
export WORLD_ENV
for h in nginx freeradius hostapd; do
	[ -f "t/demo_$h.sh" ] || continue
	say "DANCE in $h"
	sh "t/demo_$h.sh"
done
say "Demo finished."
