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
HAPD=$BUILD/hostapd/bin/hostapd
EAPOL=$BUILD/hostapd/bin/eapol_test

if [ -z "${DANCE_DEMO_NETNS:-}" ]; then
	if [ ! -x "$HAPD" ] || [ ! -x "$EAPOL" ]; then
		make -C "$top" BUILD="$BUILD" hostapd || exit 1
	fi
	DANCE_DEMO_NETNS=1 exec unshare -n sh "$0" "$@"
fi

ip link set lo up || exit 1
T=$(mktemp -d /tmp/dance-hostapd-demo.XXXXXX)
HPID=
KEEP=1
# The world's servers must be stopped before $T goes (their pids are in it).
cleanup() {
	[ -n "$HPID" ] && kill "$HPID" 2>/dev/null && wait "$HPID" 2>/dev/null
	sh "$top/t/world/world.sh" stop "$T/world" >/dev/null 2>&1
	[ "$KEEP" = 0 ] && rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

sh "$top/t/world/world.sh" start "$T/world" >"$T/world.log" 2>&1 ||
	{ cat "$T/world.log"; exit 1; }
. "$T/world/env"
C=$WORLD_CERTS

printf '*\tTLS\n' >"$T/eap_user"
printf '127.0.0.1/32\ttesting123\n' >"$T/radius_clients"
cat >"$T/hostapd.conf" <<EOF
driver=none
interface=dance-demo
logger_stdout=-1
logger_stdout_level=2
eap_server=1
eap_user_file=$T/eap_user
server_cert=$C/server.crt
private_key=$C/server.key
radius_server_clients=$T/radius_clients
radius_server_auth_port=1812
radius_server_acct_port=0
tls_flags=[ENABLE-TLSv1.3]
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

"$HAPD" "$T/hostapd.conf" >"$T/hostapd.log" 2>&1 &
HPID=$!
i=0
while ! ss -lun 2>/dev/null | grep -q ':1812 '; do
	i=$((i + 1))
	[ $i -gt 200 ] && { cat "$T/hostapd.log"; exit 1; }
	sleep 0.05
done

echo "== hostapd (RADIUS, dance=1, allow *._device.clients.test)"
echo "== eapol_test as sensor7._device.clients.test (device CA not trusted)"
"$EAPOL" -c "$T/device.conf" -a 127.0.0.1 -p 1812 -s testing123 -r0 \
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
