#!/bin/sh
# hostapd_patch/upstream.sh -- the upstream series (hostapd_patch/upstream/)
# against a hostap tarball or tree, the way a maintainer would take it.
#
#   sh hostapd_patch/upstream.sh check  <tarball or tree>
#   sh hostapd_patch/upstream.sh format <tarball or tree> <out dir>
#
# Both unpack the tree into a scratch directory, commit it as it is
# (git init; git add -A; git commit) and `git am` the series onto it;
# git am takes no fuzz, so a hunk whose context moved fails here.
# check stops there.  format also folds the series' new files
# (hostapd_patch/src/) into the patch that builds them (the one adding
# eap_server_dance.o to hostapd/Makefile) and writes the whole series,
# as it would be sent to hostap@lists.infradead.org, with
# git format-patch into <out dir>.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
here=$top/hostapd_patch
series=$here/upstream

die() {
	echo "hostapd_patch/upstream.sh: $*" >&2
	exit 1
}

[ $# -ge 2 ] || die "usage: $0 check|format <tarball or tree> [out dir]"
cmd=$1 base=$2
case $cmd in
check) ;;
format) [ $# -eq 3 ] || die "format needs an output directory" ;;
*) die "unknown command '$cmd'" ;;
esac
[ -e "$base" ] || die "$base does not exist"
case $base in /*) ;; *) base=$(pwd)/$base ;; esac
out=
if [ "$cmd" = format ]; then
	out=$3
	case $out in /*) ;; *) out=$(pwd)/$out ;; esac
fi

tmp=$(mktemp -d /tmp/dance-hostap-am.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if [ -d "$base" ]; then
	cp -a "$base" "$tmp/hostap"
	rm -rf "$tmp/hostap/.git"
else
	mkdir "$tmp/x"
	tar -xf "$base" -C "$tmp/x"
	mv "$(dirname "$(dirname "$(find "$tmp/x" -maxdepth 3 \
		-path '*/hostapd/Makefile' | head -n 1)")")" "$tmp/hostap"
fi
cd "$tmp/hostap"
git init -q
git add -A
git -c user.name=base -c user.email=base@invalid commit -q -m base

patches=$(grep -v '^[[:space:]]*\(#\|$\)' "$series/series")
n=0
for p in $patches; do
	n=$((n + 1))
	git am -q "$series/$p" ||
		{ git am --abort; die "git am: $p does not apply to $base"; }
	if [ "$cmd" = format ] &&
	    git show --format= --name-only HEAD | grep -qx hostapd/Makefile &&
	    git show HEAD -- hostapd/Makefile | grep -q eap_server_dance.o; then
		(cd "$here/src" && find . -type f) | while read -r f; do
			mkdir -p "src/$(dirname "$f")"
			cp "$here/src/$f" "src/$f"
		done
		git add src
		git commit -q --amend --no-edit
	fi
done
echo "git am: $n patches applied to $base"
[ "$cmd" = check ] && exit 0

mkdir -p "$out"
git format-patch -q --no-signature -o "$out" "HEAD~$n"
ls "$out"/*.patch
