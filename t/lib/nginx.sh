# t/lib/nginx.sh -- helpers for the nginx module tests (t/nginx_*.sh).
# Sourced; needs WORLD_ENV (env file of a running DNS test world) and
# BUILD (absolute build directory).
#
# A test writes $T/nginx.conf (see ngx_conf_head for the common part),
# calls ngx_start, talks to it with dc (dance-client) or curl, and
# checks outcomes with ok/is/like.  ngx_stop runs at exit in any case.

set -u

TOP=$(cd "$(dirname "$0")/.." && pwd)
: "${BUILD:=$TOP/build}"
: "${WORLD_ENV:?WORLD_ENV must name the env file of a running world}"
. "$WORLD_ENV"

NGINX=${NGINX:-/usr/sbin/nginx}
MODULE=$BUILD/nginx/ngx_http_dance_module.so
CLIENT=$BUILD/bin/dance-client
FLOOD=$BUILD/t/dance_flood
C=$WORLD_CERTS

T_N=0
T_FAIL=0
T_PIDS=

T=$(mktemp -d /tmp/dance-nginx.XXXXXX)

# -- TAP ---------------------------------------------------------------

ok() {	# ok COND-EXIT-STATUS DESCRIPTION [DIAGNOSTIC]
	T_N=$((T_N + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $T_N - $2"
	else
		T_FAIL=$((T_FAIL + 1))
		echo "not ok $T_N - $2"
		[ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/#   /' | head -n 30
	fi
	return 0
}

is() {	# is GOT WANT DESCRIPTION
	[ "$1" = "$2" ]
	ok $? "$3" "got: [$1]
want: [$2]"
}

like() {	# like FILE PATTERN DESCRIPTION  (grep -E)
	grep -Eq -- "$2" "$1"
	ok $? "$3" "no /$2/ in $(basename "$1"):
$(tail -n 15 "$1")"
}

unlike() {	# unlike FILE PATTERN DESCRIPTION
	! grep -Eq -- "$2" "$1"
	ok $? "$3" "$(grep -E -- "$2" "$1" | head -n 5)"
}

done_testing() {
	echo "$((T_N - T_FAIL)) passed, $T_FAIL failed"
	[ "$T_FAIL" -eq 0 ]
}

# -- setup -------------------------------------------------------------

need_module() {
	if [ ! -f "$MODULE" ]; then
		make -C "$TOP" BUILD="$BUILD" nginx >"$T/make.log" 2>&1 || {
			echo "not ok 1 - build the nginx module"
			tail -n 20 "$T/make.log" | sed 's/^/#   /'
			echo "0 passed, 1 failed"
			exit 1
		}
	fi
	if [ ! -x "$CLIENT" ]; then
		echo "not ok 1 - $CLIENT missing (make)"
		echo "0 passed, 1 failed"
		exit 1
	fi
}

# A free TCP port on 127.0.0.1 in 11000-17999: below the world's
# 20000-29999 and the kernel's ephemeral range (client sockets of other
# tests would make bind() fail), not used twice by one test ($T/ports:
# callers run this in a subshell).
free_port() {
	while :; do
		p=$(( 11000 + $(od -An -N2 -tu2 /dev/urandom) % 7000 ))
		grep -qx "$p" "$T/ports" 2>/dev/null && continue
		if ! ss -Htan "sport = :$p" | grep -q .; then
			echo "$p" >>"$T/ports"
			echo "$p"
			return
		fi
	done
}

# Server certificate for the nginx under test.
server_cert() {
	[ -f "$T/srv.crt" ] && return
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -keyout "$T/srv.key" -out "$T/srv.crt" -days 2 \
		-subj /CN=nginx.test >/dev/null 2>&1
}

# Common head of nginx.conf: ngx_conf_head WORKERS LOGLEVEL
ngx_conf_head() {
	server_cert
	mkdir -p "$T/tmp"
	# workers would run as "nobody": the world's files are not theirs
	[ "$(id -u)" -eq 0 ] && echo "user root;"
	cat <<EOF
load_module $MODULE;
worker_processes ${1:-1};
daemon off;
master_process on;
pid $T/nginx.pid;
error_log $T/error.log ${2:-debug};
worker_rlimit_nofile 4096;
events { worker_connections 2048; }
EOF
}

ngx_http_head() {
	cat <<EOF
    access_log $T/access.log;
    client_body_temp_path $T/tmp/body;
    proxy_temp_path $T/tmp/proxy;
    fastcgi_temp_path $T/tmp/fastcgi;
    uwsgi_temp_path $T/tmp/uwsgi;
    scgi_temp_path $T/tmp/scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate $T/srv.crt;
    ssl_certificate_key $T/srv.key;
    dance_trust_anchor $WORLD_TA;
    dance_unbound_conf $WORLD_UNBOUND_CONF;
EOF
}

# ngx_start: start nginx on $T/nginx.conf, wait until PORT listens.
ngx_start() {
	wait_port=$1
	"$NGINX" -p "$T" -c "$T/nginx.conf" >>"$T/stderr.log" 2>&1 &
	T_MASTER=$!
	T_PIDS="$T_PIDS $T_MASTER"
	i=0
	while [ $i -lt 100 ]; do
		if ss -Htln "sport = :$wait_port" | grep -q .; then
			sleep 0.2	# the workers are forked right after
			[ -n "${NGX_EMERG_OK:-}" ] && return 0
			grep -q '\[emerg\]' "$T/error.log" 2>/dev/null || return 0
			break
		fi
		kill -0 "$T_MASTER" 2>/dev/null || break
		sleep 0.05
		i=$((i + 1))
	done
	echo "# nginx did not start (or its workers failed):"
	sed 's/^/#   /' "$T/stderr.log" "$T/error.log" 2>/dev/null | tail -n 20
	return 1
}

ngx_stop() {
	[ -n "${T_MASTER:-}" ] || return 0
	kill -QUIT "$T_MASTER" 2>/dev/null
	i=0
	while kill -0 "$T_MASTER" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	kill -KILL "$T_MASTER" 2>/dev/null
	wait "$T_MASTER" 2>/dev/null
	T_MASTER=
}

ngx_workers() {	# pids of the workers of our master
	# (not other children: the module's configuration check forks one)
	ps -o pid=,args= --ppid "$T_MASTER" 2>/dev/null |
		awk '/worker process/ { print $1 }'
}

cleanup() {
	ngx_stop
	for p in $T_BG; do kill "$p" 2>/dev/null; done
	if [ -n "${KEEP:-}" ] || [ "$T_FAIL" -ne 0 ]; then
		echo "# files kept in $T"
	else
		rm -rf "$T"
	fi
}
T_BG=
trap cleanup EXIT
trap 'exit 1' INT TERM

# -- clients -----------------------------------------------------------

# dc OUT NAME CERT PORT [dance-client options...]
# Runs dance-client with NAME's certificate CERT (NAME.crt/.key, plus the
# chain when one exists); output and exit status in OUT and OUT.rc.
dc() {
	out=$1 name=$2 cert=$3 port=$4
	shift 4
	chain=
	[ -f "$C/$cert.chain.pem" ] && chain="--chain $C/$cert.chain.pem"
	# shellcheck disable=SC2086
	timeout 20 "$CLIENT" --cert "$C/$cert.crt" --key "$C/$cert.key" \
		$chain --name "$name" "$@" "127.0.0.1:$port" >"$out" 2>&1
	echo $? >"$out.rc"
}

rc_of() { cat "$1.rc"; }

# The upstream's echo line: "id=[...]".
id_of() {
	sed -n 's/.*id=\[\([^]]*\)\].*/\1/p' "$1" | head -n 1
}

# curl, never hanging
curl() {
	command curl --max-time 20 "$@"
}

count() {	# TLSA queries for NAME that reached the authoritative side
	sh "$TOP/t/world/world.sh" count "$WORLD_DIR" "$1"
}
