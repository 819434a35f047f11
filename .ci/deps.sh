#!/bin/sh
# Install every Debian package the project needs (idempotent).
set -e
PKGS="build-essential pkg-config clang libclang-rt-14-dev libssl-dev openssl
libunbound-dev libevent-dev libpcre2-dev libcmocka-dev
nsd ldnsutils libldns-dev bind9-dnsutils unbound knot knot-dnsutils
nginx nginx-dev libnginx-mod-stream curl perl
freeradius freeradius-utils libfreeradius-dev libtalloc-dev libpcre3-dev
eapoltest radsecproxy dpkg-dev
iproute2 procps psmisc valgrind"
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
# Under systemd a unit may still be enabled for the next boot, and an
# earlier policy-rc.d (not ours) may have let one start: the tests run
# their own knotd (t/idm.sh), so the packaged one stays off.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	$SUDO systemctl disable --now knot >/dev/null 2>&1 || :
fi
exit 0
