# t/lib/hostapd.sh -- helpers for everything that runs the patched
# hostapd (t/hostapd.sh, t/demo_hostapd.sh, bench/hostapd_slow.sh).
# Sourced; needs TOP (repository root) and BUILD (absolute build dir).
#
# Binaries come from the environment, so one script tests any build:
#   HOSTAPD         patched hostapd        ($BUILD/hostapd/bin/hostapd)
#   EAPOL_TEST      patched eapol_test     ($BUILD/hostapd/bin/eapol_test)
#   WPA_SUPPLICANT  patched wpa_supplicant ($BUILD/hostapd/bin/wpa_supplicant)
#   HOSTAPD_STOCK   the same source without the series
#                   ($BUILD/hostapd/stock/bin/hostapd)
# `make hostapd HOSTAP=<tree or tarball>` builds another base into
# $BUILD/hostapd-<version>/; hapd_use_work DIR points all four there.

: "${HOSTAPD:=$BUILD/hostapd/bin/hostapd}"
: "${EAPOL_TEST:=$BUILD/hostapd/bin/eapol_test}"
: "${WPA_SUPPLICANT:=$BUILD/hostapd/bin/wpa_supplicant}"
: "${HOSTAPD_STOCK:=$BUILD/hostapd/stock/bin/hostapd}"
export HOSTAPD EAPOL_TEST WPA_SUPPLICANT HOSTAPD_STOCK

# hapd_use_work DIR: the binaries of a build.sh work directory
hapd_use_work() {
	HOSTAPD=$1/bin/hostapd
	EAPOL_TEST=$1/bin/eapol_test
	WPA_SUPPLICANT=$1/bin/wpa_supplicant
	HOSTAPD_STOCK=$1/stock/bin/hostapd
}

# hapd_netns SCRIPT ARGS...: re-run SCRIPT inside a private network
# namespace (hostapd's RADIUS server binds every interface), unless
# already there.  root uses unshare -n; other users a user namespace
# (unshare -rn) where the kernel allows it.  Where neither works, the
# caller gets status 77 and a TAP "ok 1 - ... # SKIP why" line.
hapd_netns() {
	[ -n "${DANCE_HAPD_NETNS:-}" ] && return 0
	if unshare -n true 2>/dev/null; then
		DANCE_HAPD_NETNS=1 exec unshare -n sh "$@"
	fi
	if why=$(unshare -rn true 2>&1); then
		DANCE_HAPD_NETNS=1 exec unshare -rn sh "$@"
	fi
	userns=$(cat /proc/sys/user/max_user_namespaces 2>/dev/null)
	clone=$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null)
	echo "ok 1 - $(basename "$1") # SKIP no private network namespace for" \
		"uid $(id -u): unshare -n needs root and unshare -rn failed" \
		"(${why:-no reason given}; user.max_user_namespaces=${userns:-?}," \
		"kernel.unprivileged_userns_clone=${clone:-n/a})"
	return 77
}

# hapd_radius_conf CONF DIR NAME PORT: the common part of a hostapd that
# serves EAP-TLS (TLS 1.3 enabled) to RADIUS clients on 127.0.0.1; DIR
# gets its eap_user and radius_clients files.  Needs C (certificates).
hapd_radius_conf() {
	printf '*\tTLS\n' >"$2/eap_user"
	printf '127.0.0.1/32\ttesting123\n' >"$2/radius_clients"
	cat >"$1" <<-EOF
	driver=none
	interface=dance-$3
	logger_stdout=-1
	logger_stdout_level=2
	eap_server=1
	eap_user_file=$2/eap_user
	server_cert=$C/server.crt
	private_key=$C/server.key
	radius_server_clients=$2/radius_clients
	radius_server_auth_port=$4
	radius_server_acct_port=0
	tls_flags=[ENABLE-TLSv1.3]
	EOF
}

# hapd_start CONF LOG READY [BINARY [FLAGS]]: start hostapd (default
# $HOSTAPD, FLAGS default "-d -t") and wait until it is ready: READY is
# the UDP port its RADIUS server binds, or a pattern its log shows (e.g.
# AP-ENABLED).  Sets HPID.  DANCE_HOSTAPD_WRAP (e.g. valgrind) prefixes
# the command.
hapd_start() {
	# shellcheck disable=SC2086
	${DANCE_HOSTAPD_WRAP:-} "${4:-$HOSTAPD}" ${5:--d -t} "$1" >"$2" 2>&1 &
	HPID=$!
	i=0
	while :; do
		case $3 in
		*[!0-9]*) grep -a -q -- "$3" "$2" 2>/dev/null && return 0 ;;
		*) ss -lun 2>/dev/null | grep -q ":$3 " && return 0 ;;
		esac
		i=$((i + 1))
		if [ $i -gt 600 ] || ! kill -0 "$HPID" 2>/dev/null; then
			return 1
		fi
		sleep 0.05
	done
}

# hapd_stop: stop the hostapd hapd_start started
hapd_stop() {
	[ -n "${HPID:-}" ] && kill "$HPID" 2>/dev/null && wait "$HPID" 2>/dev/null
	HPID=
}
