#!/bin/sh
# .ci/deb-src.sh PKG -- make `apt-get source PKG` work: add a deb-src
# entry for bookworm (Debian's mirror, the same as the binary sources)
# when apt does not know the source package yet.  Idempotent; used by
# hostapd_patch/build.sh and freeradius_module/build.sh.
set -u
pkg=${1:?usage: deb-src.sh PKG}
apt-get source --print-uris -qq "$pkg" >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "deb-src.sh: apt knows no source for $pkg; add a deb-src entry" \
		"for bookworm (deb.debian.org) as root" >&2
	exit 1
fi
f=/etc/apt/sources.list.d/dance-deb-src.sources
[ -f "$f" ] || cat >"$f" <<-EOF2
	Types: deb-src
	URIs: http://deb.debian.org/debian
	Suites: bookworm bookworm-updates
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

	Types: deb-src
	URIs: http://deb.debian.org/debian-security
	Suites: bookworm-security
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF2
# Another apt or dpkg may hold the lock for a while (CI, other builds).
log=$(mktemp)
n=0
until apt-get update -qq >"$log" 2>&1; do
	n=$((n + 1))
	if [ $n -ge 20 ] || ! grep -qi lock "$log"; then
		cat "$log" >&2
		rm -f "$log"
		echo "deb-src.sh: apt-get update failed" >&2
		exit 1
	fi
	sleep 6
done
rm -f "$log"
apt-get source --print-uris -qq "$pkg" >/dev/null 2>&1 && exit 0
echo "deb-src.sh: apt still knows no source package $pkg" >&2
exit 1
