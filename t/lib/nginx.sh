# t/lib/nginx.sh -- nginx with the DANCE module, for the nginx tests
# (t/nginx_*.sh), the nginx demo and the benchmarks.  Sourced.
#
# Needs WORLD_ENV (env file of a running DNS test world).  Environment:
#   NGINX_BIN     nginx binary (default /usr/sbin/nginx, Debian's)
#   NGINX_MODULE  ngx_http_dance_module.so built for that binary
#                 (default $BUILD/nginx/ngx_http_dance_module.so)
#   BUILD         absolute build directory (default TOP/build)
#   TOP           the source tree (default: the caller's directory/..)
# NGINX itself is unset: nginx reads it as inherited listening sockets.
# Sources t/lib/tap.sh, ports.sh and world.sh.
#
# A test writes $T/nginx.conf (ngx_conf_head + "http {" + ngx_http_head
# + its servers + "}"), calls ngx_start PORT, talks to it with dc
# (dance-client) or curl, and checks outcomes with t/lib/tap.sh.  When
# the caller has not set T, a fresh $T is made and ngx_stop runs at exit
# (files kept on failure or with KEEP=1); a caller that sets T (a
# benchmark) owns it and calls ngx_stop itself.
#
# Functions:
#   need_module                  build the module if missing, check dance-client
#   ngx_has FEATURE              nginx -V has --with-FEATURE (debug, threads, ...)
#   ngx_debug CHECK ARGS...      a check that reads debug-log lines: run it,
#                                or SKIP it on an nginx without --with-debug
#   server_cert                  $T/srv.crt + $T/srv.key (self-signed P-256)
#   ngx_conf_head [WORKERS [LOGLEVEL [CONNECTIONS]]]
#                                main + events part (defaults 1, debug, 2048)
#   ngx_http_head [access_log=off|FILE] [protocols="TLSv1.3"]
#                 [resumption=off] [unbound_conf=FILE]
#                                common http{} lines: temp paths, TLS, DANCE
#                                trust anchor and unbound configuration
#   ngx_start PORT               start on $T/nginx.conf, wait until PORT listens
#   ngx_stop                     graceful stop (QUIT), KILL after 5 s
#   ngx_workers                  pids of the workers of our master
#   dc OUT NAME CERT PORT [...]  dance-client run, output in OUT, status in OUT.rc
#   rc_of OUT, id_of OUT, curl, count NAME
# Variables: $T, $C (world's certificates), $CLIENT, $FLOOD, $MODULE,
#   $NGINX_BIN, $NGX_VERSION, $T_MASTER.

set -u

: "${TOP:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${BUILD:=$TOP/build}"
: "${WORLD_ENV:?WORLD_ENV must name the env file of a running world}"
. "$WORLD_ENV"
top=${top:-$TOP}
. "$TOP/t/lib/tap.sh"
. "$TOP/t/lib/ports.sh"
. "$TOP/t/lib/world.sh"

unset NGINX
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
MODULE=${NGINX_MODULE:-$BUILD/nginx/ngx_http_dance_module.so}
NGX_VERSION=$("$NGINX_BIN" -v 2>&1 | sed -n 's|.*nginx/||p')
CLIENT=$BUILD/bin/dance-client
FLOOD=$BUILD/t/dance_flood
C=$WORLD_CERTS
T_MASTER=
T_BG=

if [ -z "${T:-}" ]; then
	T=$(mktemp -d /tmp/dance-nginx.XXXXXX)
	ngx_cleanup() {
		ngx_stop
		for p in $T_BG; do kill "$p" 2>/dev/null; done
		if [ -n "${KEEP:-}" ] || [ "$T_FAIL" -ne 0 ]; then
			echo "# files kept in $T"
		else
			rm -rf "$T"
		fi
	}
	trap ngx_cleanup EXIT
	trap 'exit 1' INT TERM
fi

# -- setup -------------------------------------------------------------

need_module() {
	if [ ! -x "$NGINX_BIN" ]; then
		# (built by make nginx-upstream: its log says why not)
		bail "NGINX_BIN $NGINX_BIN is executable" \
			"$(tail -n 8 "$(dirname "$NGINX_BIN")/make.log" 2>/dev/null)"
	fi
	if [ ! -f "$MODULE" ] && [ -n "${NGINX_MODULE:-}" ]; then
		bail "NGINX_MODULE $MODULE exists"
	elif [ ! -f "$MODULE" ]; then
		make -C "$TOP" BUILD="$BUILD" nginx >"$T/make.log" 2>&1 ||
			bail "build the nginx module" "$(tail -n 20 "$T/make.log")"
	fi
	[ -x "$CLIENT" ] || bail "$CLIENT missing (make)"
}

# ngx_has FEATURE: the binary was configured --with-FEATURE.  Tests that
# read debug-log lines need "debug"; "pid#tid" log prefixes need "threads".
ngx_has() {
	"$NGINX_BIN" -V 2>&1 | grep -q -- "--with-$1\\( \\|\$\\)"
}

# ngx_debug CHECK ARGS...: a check (is, like, unlike, ok) that reads
# debug-log lines: run it when the nginx has --with-debug, else report
# it skipped with the reason.
ngx_debug() {
	if ngx_has debug; then
		"$@"
		return
	fi
	if [ "$1" = ok ]; then
		_d=$3
	else
		eval "_d=\${$#}"
	fi
	skip "$_d" "nginx $NGX_VERSION built without --with-debug"
}

# Server certificate for the nginx under test.
server_cert() {
	[ -f "$T/srv.crt" ] && return
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -keyout "$T/srv.key" -out "$T/srv.crt" -days 2 \
		-subj /CN=nginx.test >/dev/null 2>&1
}

# ngx_conf_head [WORKERS [LOGLEVEL [CONNECTIONS]]]: main and events part.
ngx_conf_head() {
	server_cert
	mkdir -p "$T/tmp"
	# workers would run as "nobody": the world's files are not theirs
	[ "$(id -u)" -eq 0 ] && echo "user root;"
	cat <<EOC
load_module $MODULE;
worker_processes ${1:-1};
daemon off;
master_process on;
pid $T/nginx.pid;
error_log $T/error.log ${2:-debug};
worker_rlimit_nofile $((2 * ${3:-2048}));
events { worker_connections ${3:-2048}; }
EOC
}

# ngx_http_head [access_log=off|FILE] [protocols=LIST] [resumption=off]
#               [unbound_conf=FILE]: the common lines inside http {}.
ngx_http_head() {
	_al=$T/access.log _pr="TLSv1.2 TLSv1.3" _res= _ub=$WORLD_UNBOUND_CONF
	for _a in "$@"; do
		case $_a in
		access_log=*) _al=${_a#*=} ;;
		protocols=*) _pr=${_a#*=} ;;
		resumption=off) _res=off ;;
		unbound_conf=*) _ub=${_a#*=} ;;
		*) echo "ngx_http_head: unknown option $_a" >&2; return 1 ;;
		esac
	done
	cat <<EOC
    access_log $_al;
    client_body_temp_path $T/tmp/body;
    proxy_temp_path $T/tmp/proxy;
    fastcgi_temp_path $T/tmp/fastcgi;
    uwsgi_temp_path $T/tmp/uwsgi;
    scgi_temp_path $T/tmp/scgi;
    ssl_protocols $_pr;
    ssl_certificate $T/srv.crt;
    ssl_certificate_key $T/srv.key;
    dance_trust_anchor $WORLD_TA;
    dance_unbound_conf $_ub;
EOC
	[ "$_res" = off ] && cat <<EOC
    ssl_session_cache off;
    ssl_session_tickets off;
EOC
	return 0
}

# ngx_start PORT: start nginx on $T/nginx.conf, wait until PORT listens.
ngx_start() {
	wait_port=$1
	"$NGINX_BIN" -p "$T" -c "$T/nginx.conf" >>"$T/stderr.log" 2>&1 &
	T_MASTER=$!
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
	world_count "$1"
}
