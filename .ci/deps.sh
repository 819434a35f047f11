#!/bin/sh
# Install every Debian package the project needs (idempotent).
set -e
PKGS="build-essential pkg-config clang libclang-rt-14-dev libssl-dev openssl
libunbound-dev libevent-dev libpcre2-dev libcmocka-dev
nsd ldnsutils libldns-dev bind9-dnsutils unbound knot knot-dnsutils
nginx nginx-dev libnginx-mod-stream curl perl
freeradius freeradius-utils libfreeradius-dev libtalloc-dev libpcre3-dev
eapoltest radsecproxy dpkg-dev
iproute2 procps psmisc valgrind libfaketime
php-fpm python3-h2
haproxy prometheus libidn2-dev nodejs"
# npm: Debian's package, unless the machine's Node.js brings its own
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "deps: all packages present"
	exit 0
fi
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# Don't let package postinst scripts start system services (nginx,
# nsd, unbound, knot) that would hold ports: the tests run their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod 755 /usr/sbin/policy-rc.d
	cleanup_policy=1
fi
$SUDO apt-get install -y -q --no-install-recommends $missing
[ -n "${cleanup_policy:-}" ] && $SUDO rm -f /usr/sbin/policy-rc.d
# Where a service still started (a machine whose own policy-rc.d allows
# it), stop it: the tests start their own on loopback (knotd: t/idm.sh).
if command -v service >/dev/null 2>&1; then
	for s in nginx nsd unbound php8.2-fpm knot haproxy prometheus; do
		$SUDO service "$s" stop >/dev/null 2>&1 || true
	done
fi
# Under systemd a unit may still be enabled for the next boot.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	for s in nginx nsd unbound php8.2-fpm knot haproxy prometheus; do
		$SUDO systemctl disable --now "$s" >/dev/null 2>&1 || :
	done
fi
exit 0
