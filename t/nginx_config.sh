#!/bin/sh
# t/nginx_config.sh -- configuration errors stop nginx at startup with
# file:line and the reason; a worker that cannot build its resolver
# stays up and fails closed.
. "$(dirname "$0")/lib/nginx.sh"

need_module
P=$(free_port)

# conf_test NAME HTTP-BODY PATTERN: "nginx -t" must fail, saying PATTERN
conf_test() {
	{
		ngx_conf_head 1 info
		printf 'http {\n%s\n%s\n}\n' "$(ngx_http_head)" "$2"
	} >"$T/bad.conf"
	"$NGINX_BIN" -t -p "$T" -c "$T/bad.conf" >"$T/t.out" 2>&1
	rc=$?
	[ $rc -ne 0 ] && grep -Eq -- "$3" "$T/t.out"
	ok $? "startup refused: $1" "$(cat "$T/t.out")"
}

SRV="listen 127.0.0.1:$P ssl; dance on;"

conf_test "bad dance_allow entry, with file:line and reason" \
	"server { $SRV dance_allow \"~(unclosed\"; }" \
	'invalid dance_allow entry "~\(unclosed": .* in .*bad.conf:[0-9]+'
conf_test "bad name in dance_allow" \
	"server { $SRV dance_allow \"bad..name\"; }" \
	'invalid dance_allow entry "bad..name"'
conf_test "dance on without dance_allow" \
	"server { $SRV }" 'without "dance_allow" allows nobody'
conf_test "standard header as identity header" \
	"server { $SRV dance_allow .x.test; dance_identity_header Host; }" \
	'dance_identity_header "Host" is a standard header'
conf_test "invalid identity header name" \
	"server { $SRV dance_allow .x.test; dance_identity_header X_Id; }" \
	'invalid header name "X_Id"'
conf_test "bad dance_cache" \
	"dance_cache memory:1m; server { $SRV dance_allow .x.test; }" \
	'invalid DANCE cache "memory:1m"'
conf_test "extension type handled by OpenSSL" \
	"dance_extension_type 0xff01; server { $SRV dance_allow .x.test; }" \
	'invalid extension type "0xff01": .*handled inside OpenSSL'
conf_test "dance_worker_cache beyond what the core can count" \
	"dance_worker_cache 4294967296; server { $SRV dance_allow .x.test; }" \
	'invalid number of entries "4294967296"'
conf_test "missing trust anchor file" \
	"dance_trust_anchor /nonexistent/ta; server { $SRV dance_allow .x.test; }" \
	'/nonexistent/ta'
conf_test "bad dance_cache_ttl" \
	"dance_cache_ttl max=1s min=1m; server { $SRV dance_allow .x.test; }" \
	'has min= above max='

# no certificate for a DANCE server
{
	ngx_conf_head 1 info
	cat <<EOF
http {
    dance_trust_anchor $WORLD_TA;
    server { listen 127.0.0.1:$P; dance on; dance_allow .x.test; }
}
EOF
} >"$T/bad.conf"
"$NGINX_BIN" -t -p "$T" -c "$T/bad.conf" >"$T/t.out" 2>&1
[ $? -ne 0 ] && grep -q '"dance" needs TLS' "$T/t.out"
ok $? "startup refused: dance without TLS" "$(cat "$T/t.out")"

# no trust at all (neither anchor nor trust_ad)
{
	ngx_conf_head 1 info
	cat <<EOF
http {
    server { listen 127.0.0.1:$P ssl; ssl_certificate $T/srv.crt;
             ssl_certificate_key $T/srv.key; dance on; dance_allow .x.test; }
}
EOF
} >"$T/bad.conf"
"$NGINX_BIN" -t -p "$T" -c "$T/bad.conf" >"$T/t.out" 2>&1
[ $? -ne 0 ] && grep -q 'needs "dance_trust_anchor"' "$T/t.out"
ok $? "startup refused: no trust anchor and no dance_trust_ad" "$(cat "$T/t.out")"

# -- dance_extension_type: client and server must agree -------------------

X=$(free_port)
{
	ngx_conf_head 1 info
	cat <<EOF
http {
$(ngx_http_head)
    dance_extension_type 0xff45;
    server {
        listen 127.0.0.1:$X ssl;
        dance on;
        dance_allow .clients.test;
        location / { return 200 "id=[\$dance_client_id]\n"; }
    }
}
EOF
} >"$T/nginx.conf"
if ngx_start "$X"; then
	dc "$T/o" ee311.clients.test ee311 "$X" --http / --ext-type 0xff45
	is "$(id_of "$T/o")" "ee311.clients.test" "dance_extension_type 0xff45: a client using it authenticates"
	dc "$T/o" ee311.clients.test ee311 "$X" --http /
	[ "$(rc_of "$T/o")" -ne 0 ] && ! grep -q "id=\[ee311" "$T/o" &&
		grep -qi "handshake failure" "$T/o"
	ok $? "a client using the default code point sent no dane_clientid: handshake_failure" "$(cat "$T/o")"
	ngx_stop
else
	ok 1 "nginx with dance_extension_type starts"
fi

# -- the workers' user must be able to read the resolver's files ----------
#
# Checked at configuration time, as the workers' user: "nginx -t", the
# start and a reload fail with the reason.  A worker that still cannot
# create its resolver (respawned after the file changed) answers 503,
# with the reason in the log, and keeps serving other servers.

if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
	chmod 711 "$T"
	mkdir -p "$T/pub"
	chmod 755 "$T/pub"
	cp "$WORLD_UNBOUND_CONF" "$T/pub/ub.conf"
	cp "$WORLD_TA" "$T/pub/ta"
	chmod 644 "$T/pub/ub.conf" "$T/pub/ta"
	PLAIN=$(free_port)
	{
		ngx_conf_head 1 info | sed 's/^user root;$/user nobody nogroup;/'
		cat <<EOF
http {
$(ngx_http_head | sed -e "s|dance_unbound_conf .*|dance_unbound_conf $T/pub/ub.conf;|" \
	-e "s|dance_trust_anchor .*|dance_trust_anchor $T/pub/ta;|")
    server {
        listen 127.0.0.1:$P ssl;
        dance on;
        dance_allow .clients.test;
        location / { return 200 "id=[\$dance_client_id]\n"; }
    }
    server {
        listen 127.0.0.1:$PLAIN ssl;
        location / { return 200 "plain\n"; }
    }
}
EOF
	} >"$T/nginx.conf"
	ngx_start "$PLAIN"
	dc "$T/o" ee311.clients.test ee311 "$P" --http /
	is "$(id_of "$T/o")" "ee311.clients.test" "workers as nobody: a client authenticates"

	chmod 600 "$T/pub/ub.conf"
	"$NGINX_BIN" -t -p "$T" -c "$T/nginx.conf" >"$T/t.out" 2>&1
	[ $? -ne 0 ] && grep -Eq 'invalid DANCE resolver configuration for the workers \(user "nobody"\): .*ub.conf' "$T/t.out"
	ok $? "nginx -t: a file the workers cannot read is refused, with the reason" "$(cat "$T/t.out")"

	w=$(ngx_workers)
	kill -HUP "$T_MASTER"
	i=0
	until grep -q 'invalid DANCE resolver configuration for the workers' "$T/error.log" ||
		[ $i -ge 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	like "$T/error.log" 'emerg.*invalid DANCE resolver configuration for the workers \(user "nobody"\): .*ub.conf' \
		"reload: refused, with the reason"
	is "$(ngx_workers)" "$w" "reload refused: the workers keep running"

	# a worker respawned after the change cannot create its resolver
	kill -KILL $w
	i=0
	while [ "$(ngx_workers)" = "$w" ] || [ -z "$(ngx_workers)" ]; do
		[ $i -ge 100 ] && break
		sleep 0.05
		i=$((i + 1))
	done
	sleep 0.3
	like "$T/error.log" 'emerg.*dance: cannot create the resolver: .*ub.conf.*no client will be authenticated' \
		"respawned worker without resolver: the reason is logged"
	curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$P/" >"$T/o" 2>&1
	is "$(cat "$T/o")" 503 "respawned worker without resolver: 503, not a certificate error"
	like "$T/error.log" 'dance: no client can be authenticated by this worker: .*ub.conf' \
		"respawned worker without resolver: the 503 is explained in the log"
	dc "$T/o" ee311.clients.test ee311 "$P" --http /
	[ "$(rc_of "$T/o")" -ne 0 ] && ! grep -q "id=\[ee311" "$T/o"
	ok $? "respawned worker without resolver: nobody is authenticated (fail closed)" "$(cat "$T/o")"
	curl -sk "https://127.0.0.1:$PLAIN/" >"$T/o" 2>&1
	grep -q plain "$T/o"
	ok $? "respawned worker without resolver: other servers still served" "$(cat "$T/o")"
	unlike "$T/error.log" 'exited with fatal code' "the worker stayed up"
	ngx_stop
fi

done_testing
