#!/bin/sh
# t/demo_hostapd.sh -- hostapd as a RADIUS server authenticates the
# sample device (sensor7._device.clients.test, certificate from a device
# CA nobody configured, TLSA 2 0 1 at *._device.clients.test) with the
# patched eapol_test over EAP-TLS 1.3.  For `make demo`.
#
#   BUILD=<abs build dir> sh t/demo_hostapd.sh
#
# hostapd's RADIUS server binds every interface, so the demo runs in a
# private network namespace with its own offline DNSSEC world.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
export BUILD
. "$top/t/lib/hostapd.sh"

if [ -z "${DANCE_HAPD_NETNS:-}" ]; then
	if [ ! -x "$HOSTAPD" ] || [ ! -x "$EAPOL_TEST" ]; then
		make -C "$top" BUILD="$BUILD" hostapd || exit 1
	fi
	hapd_netns "$0" "$@"
	exit 0
fi

ip link set lo up || exit 1
T=$(mktemp -d /tmp/dance-hostapd-demo.XXXXXX)
HPID=
KEEP=1
# The world's servers must be stopped before $T goes (their pids are in it).
cleanup() {
	hapd_stop
	sh "$top/t/world/world.sh" stop "$T/world" >/dev/null 2>&1
	[ "$KEEP" = 0 ] && rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

sh "$top/t/world/world.sh" start "$T/world" >"$T/world.log" 2>&1 ||
	{ cat "$T/world.log"; exit 1; }
. "$T/world/env"
C=$WORLD_CERTS

hapd_radius_conf "$T/hostapd.conf" "$T" demo 1812
cat >>"$T/hostapd.conf" <<EOF
dance=1
dance_allow=*._device.clients.test
dance_trust_anchor_file=$WORLD_TA
dance_unbound_conf=$WORLD_UNBOUND_CONF
EOF
cat >"$T/device.conf" <<EOF
network={
	key_mgmt=IEEE8021X
	eap=TLS
	identity="sensor7._device.clients.test"
	dane_client_id="sensor7._device.clients.test"
	ca_cert="$C/server.crt"
	client_cert="$C/sensor7.chain.pem"
	private_key="$C/sensor7.key"
	phase1="tls_disable_tlsv1_3=0"
}
EOF

hapd_start "$T/hostapd.conf" "$T/hostapd.log" 1812 "$HOSTAPD" " " ||
	{ cat "$T/hostapd.log"; exit 1; }

echo "== hostapd (RADIUS, dance=1, allow *._device.clients.test)"
echo "== eapol_test as sensor7._device.clients.test (device CA not trusted)"
"$EAPOL_TEST" -c "$T/device.conf" -a 127.0.0.1 -p 1812 -s testing123 -r0 \
	-t 20 >"$T/eapol.log" 2>&1
rc=$?
sleep 0.2
grep -a "DANCE:" "$T/hostapd.log" | sed 's/^/hostapd: /'
grep -a "TLS version\|^EAP: Status\|^SUCCESS\|^FAILURE" "$T/eapol.log" |
	sed 's/^/eapol_test: /'
[ $rc -eq 0 ] && echo "== device authenticated by DANE (EAP-Success)" ||
	echo "== authentication FAILED (logs in $T)"
[ $rc -eq 0 ] && KEEP=0
exit $rc
