#!/bin/sh
# t/demo_freeradius.sh -- part of `make demo` (run by t/demo.sh with
# WORLD_ENV set): FreeRADIUS 3.2 with rlm_dance authenticates the sample
# device sensor7._device.clients.test by EAP-TLS, with Debian's stock
# eapol_test as the supplicant; an impostor is refused.  Prints TAP lines
# so it can also run as a test suite.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
: "${WORLD_ENV:?WORLD_ENV must name the env file of a running DNS test world}"
. "$WORLD_ENV"
C=$WORLD_CERTS

T=$(mktemp -d /tmp/dance-demo-fr.XXXXXX)
frpid=
cleanup() {
	[ -n "$frpid" ] && kill "$frpid" 2>/dev/null && wait "$frpid" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
. "$top/t/lib/tap.sh"

for tool in freeradius eapol_test; do
	command -v "$tool" >/dev/null 2>&1 || bail "$tool installed (apt-get install freeradius eapoltest)"
done
if [ ! -f "$BUILD/freeradius/rlm_dance.so" ]; then
	make -C "$top" BUILD="$BUILD" freeradius >"$T/build.log" 2>&1 || bail "make freeradius"
fi

. "$top/t/lib/freeradius.sh"
fr_setup 3000
echo "freeradius -f -x -d $R (EAP-TLS on 127.0.0.1:$AUTH_PORT, rlm_dance allow = .clients.test)"
fr_start -x || bail "freeradius starts"
[ -n "$FR_USER" ] && fr_runs_as_user && echo "(radiusd runs as $FR_USER, like a packaged server)"

# auth TAG CERT KEY: EAP-TLS 1.2 with Debian's eapol_test, name from SAN.
auth() {
	cat >"$T/$1.conf" <<EOC
network={
	key_mgmt=IEEE8021X
	eap=TLS
	identity="device"
	client_cert="$2"
	private_key="$3"
	phase1="tls_disable_tlsv1_3=1"
	eapol_flags=0
}
EOC
	eapol_test -c "$T/$1.conf" -a 127.0.0.1 -p "$AUTH_PORT" -s testing123 -t 15 >"$T/$1.log" 2>&1
	rc=$?
	sed -n "s/^ *Value: '\(dance=.*\)'$/   Reply-Message: \1/p" "$T/$1.log" | tail -1
	return $rc
}

echo "The device sensor7._device.clients.test (cert from devca, which no CA in FreeRADIUS trusts):"
if auth device "$C/sensor7.chain.pem" "$C/sensor7.key"; then
	ok 0 "sample device authenticated by DANE (Access-Accept)"
else
	ok 1 "sample device authenticated by DANE"
fi
echo "An impostor with another key claiming ee311.clients.test in its SAN:"
openssl req -x509 -new -key "$C/other.key" -subj "/CN=ee311.clients.test" -days 1 \
	-addext subjectAltName=DNS:ee311.clients.test -out "$T/impostor.crt" >/dev/null 2>&1
if auth impostor "$T/impostor.crt" "$C/other.key"; then
	ok 1 "impostor refused"
else
	ok 0 "impostor refused (Access-Reject)"
fi
grep "rlm_dance: client" "$FRLOG" | sed 's/^/   log: /'
done_testing
