# t/lib/idm.sh -- helpers for dance-idm's test and demo (t/idm.sh,
# t/demo_idm.sh): a Knot DNS child zone of the test world, identity
# configurations, nginx and a client that keeps connecting.  Sourced
# after t/lib/nginx.sh (free_port, $T, $T_BG, the world's env).
#
# knot_zone sets up, on one free port P:
#   - knotd on 127.0.0.1@P: primary of ZONE=idmP.test with automatic
#     DNSSEC signing (ECDSA P-256), TSIG key "idm" ($SECRET) allowed to
#     change TLSA records below _device.ZONE and nothing else;
#   - knotd on 127.0.0.2@P: secondary, NOTIFY + IXFR from the primary;
#   - the delegation NS + glue + DS in the world's test. (world.sh
#     delegate), so the zone validates from the world's trust anchor;
#   - $T/unbound.conf: the world's libunbound config + a stub for ZONE.
# Returns non-zero with the reason on stderr.  The zone name carries
# the port, so that a second run against one world adds its own
# delegation.  Both knotd stop at exit (T_BG).

knot_conf() {	# knot_conf DIR ADDR: the server block
	cat <<EOF
server:
    rundir: "$1"
    listen: [ $2@$P ]
    background-workers: 1
    udp-workers: 1
    tcp-workers: 1
log:
  - target: $1/knot.log
    any: info
database:
    storage: "$1"
EOF
}

knot_start() {	# knot_start DIR
	setsid knotd -c "$1/knot.conf" </dev/null >"$1/stdout" 2>&1 &
	T_BG="$T_BG $!"
}

soa_at() {	# soa_at ADDR: the serial it serves ("" if none)
	kdig @"$1" -p "$P" "$ZONE" SOA +short +time=1 +retry=0 2>/dev/null |
		awk '{ print $3 }'
}

wait_for() {	# wait_for TENTHS COMMAND...: until COMMAND succeeds
	n=$1
	shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

signed_at() {
	kdig @"$1" -p "$P" "$ZONE" DNSKEY +short +time=1 +retry=0 2>/dev/null |
		grep -q '^257 '
}
has_zone() { [ -n "$(soa_at "$1")" ]; }

knot_zone() {
	# One port for both servers (127.0.0.1 primary, 127.0.0.2 secondary),
	# free for TCP and UDP.
	while :; do
		P=$(free_port)
		ss -Huan "sport = :$P" | grep -q . || break
	done
	ZONE=idm$P.test
	SECRET=$(openssl rand -base64 32)
	K1=$T/knot1
	K2=$T/knot2
	mkdir -p "$K1" "$K2"
	{
		knot_conf "$K1" 127.0.0.1
		cat <<-EOF
	key:
	  - id: idm
	    algorithm: hmac-sha256
	    secret: $SECRET
	remote:
	  - id: secondary
	    address: 127.0.0.2@$P
	acl:
	  # dance-idm may change TLSA records below _device, nothing else.
	  - id: idm_update
	    key: idm
	    action: update
	    update-type: [ TLSA ]
	    update-owner: name
	    update-owner-match: sub
	    update-owner-name: [ _device ]
	  - id: secondary_xfr
	    address: 127.0.0.2
	    action: transfer
	policy:
	  - id: idm
	    algorithm: ecdsap256sha256
	    ksk-lifetime: 0
	    zsk-lifetime: 0
	zone:
	  - domain: $ZONE.
	    file: "$K1/zone"
	    dnssec-signing: on
	    dnssec-policy: idm
	    notify: secondary
	    acl: [ idm_update, secondary_xfr ]
	    zonefile-sync: -1
	    journal-content: all
	    serial-policy: increment
	EOF
	} >"$K1/knot.conf"
	{
		knot_conf "$K2" 127.0.0.2
		cat <<-EOF
	remote:
	  - id: primary
	    address: 127.0.0.1@$P
	    via: 127.0.0.2
	acl:
	  - id: primary_notify
	    address: 127.0.0.1
	    action: notify
	zone:
	  - domain: $ZONE.
	    master: primary
	    acl: primary_notify
	    zonefile-sync: -1
	    zonefile-load: none
	    journal-content: changes
	EOF
	} >"$K2/knot.conf"
	# Short TTLs: negative TTL min(2, 1) = 1 s.
	cat >"$K1/zone" <<-EOF
	\$ORIGIN $ZONE.
	\$TTL 2
	@	SOA	ns1 hostmaster 1 60 10 600 1
	@	NS	ns1
	@	NS	ns2
	ns1	A	127.0.0.1
	ns2	A	127.0.0.2
	EOF

	knot_start "$K1"
	wait_for 50 signed_at 127.0.0.1 || {
		echo "knot primary did not serve $ZONE signed:" >&2
		tail -n 5 "$K1/knot.log" >&2
		return 1
	}
	knot_start "$K2"
	wait_for 50 has_zone 127.0.0.2 || {
		echo "knot secondary did not get $ZONE:" >&2
		tail -n 5 "$K2/knot.log" >&2
		return 1
	}
	# The delegation with DS in the world's signed test.

	keymgr -c "$K1/knot.conf" "$ZONE." ds 2>&1 |
		awk -v c="${ZONE%.test}" '$2 == "DS" && $5 == 2 {
			print c "\tDS\t" $3, $4, $5, $6 }' >"$T/deleg"
	printf '%s\tNS\tns1.%s\n%s\tNS\tns2.%s\nns1.%s\tA\t127.0.0.1\nns2.%s\tA\t127.0.0.2\n' \
		"${ZONE%.test}" "${ZONE%.test}" "${ZONE%.test}" "${ZONE%.test}" \
		"${ZONE%.test}" "${ZONE%.test}" >>"$T/deleg"
	grep -q DS "$T/deleg" && sh "$TOP/t/world/world.sh" delegate "$WORLD_DIR" \
		"$T/deleg" >"$T/deleg.log" 2>&1 || {
		echo "delegation failed:" >&2
		cat "$T/deleg" "$T/deleg.log" >&2
		return 1
	}
	# The stub tells libunbound where the child's servers listen (the
	# delegation's glue has no port).
	{
		cat "$WORLD_UNBOUND_CONF"
		printf 'stub-zone:\n\tname: "%s."\n\tstub-addr: 127.0.0.1@%s\n\tstub-addr: 127.0.0.2@%s\n' \
			"$ZONE" "$P" "$P"
	} >"$T/unbound.conf"
}

# -- identities -------------------------------------------------------

# conf NAME [EXTRA-LINES]: $ST/NAME.conf for an identity in ZONE,
# deployed (key + cert in one file) to $T/NAME.pem.
conf() {
	{
		cat <<EOF
zone $ZONE
primary 127.0.0.1@$P
ns-port $P
tsig hmac-sha256:idm:$SECRET
ta $WORLD_TA
unbound-conf $T/unbound.conf
ttl 1
propagation-delay 0
visible-timeout 30
deploy-cert $T/$1.pem
deploy-key $T/$1.pem
EOF
		[ -n "${2:-}" ] && printf '%s\n' "$2"
	} >"$ST/$1.conf"
}

idm() {	# idm OUT ARGS...: output in OUT, exit status in OUT.rc
	out=$1
	shift
	timeout 120 "$IDM" -d "$ST" "$@" >"$out" 2>&1
	echo $? >"$out.rc"
}

state_of() { sed -n 's/^state //p' "$ST/$1.state" 2>/dev/null; }
key_of() { sed -n "s/^$2 //p" "$ST/$1.state"; }

# -- servers and a client that keeps connecting ------------------------

# idm_nginx: nginx with the module on NP, allowing ._device.ZONE, with
# $T/unbound.conf; answers "id=[<dance_client_id>]".
idm_nginx() {
	NP=$(free_port)
	{
		ngx_conf_head 1 info
		echo "http {"
		ngx_http_head unbound_conf="$T/unbound.conf"
		cat <<EOF
    server {
        listen 127.0.0.1:$NP ssl;
        dance on;
        dance_allow ._device.$ZONE;
        location / {
            return 200 "id=[\$dance_client_id]\n";
        }
    }
}
EOF
	} >"$T/nginx.conf"
	ngx_start "$NP"
}

# one CERTFILE OUT: identity $ID (key and cert in CERTFILE) connects to
# dance-server on $SP (when set) and to nginx on $NP; exit 0 when both
# authenticated it.
one() {
	: >"$2"
	if [ -n "${SP:-}" ]; then
		timeout 10 "$CLIENT" --cert "$1" --key "$1" --name "$ID" \
			"127.0.0.1:$SP" >"$2" 2>&1 &&
		grep -q 'DANCE-Status: SUCCESS' "$2" || return 1
	fi
	timeout 10 "$CLIENT" --cert "$1" --key "$1" --name "$ID" \
		--http / "127.0.0.1:$NP" >>"$2" 2>&1 &&
	grep -q "id=\[$ID\]" "$2"
}

# traffic LOG: one() in a loop with the deployed file $T/$ID.pem,
# "ok" or "fail" per round into LOG (reasons in LOG.why), until
# traffic_stop.
traffic() {
	rm -f "$T/stop"
	(
		while [ ! -e "$T/stop" ]; do
			if one "$T/$ID.pem" "$T/tr.out"; then
				echo ok
			else
				echo fail
				sed 's/^/# /' "$T/tr.out" >>"$1.why"
			fi
			sleep 0.05
		done >>"$1"
	) &
	TRAFFIC=$!
	T_BG="$T_BG $TRAFFIC"
}

traffic_stop() {
	touch "$T/stop"
	wait "$TRAFFIC" 2>/dev/null
}

count_of() { grep -c "^$2\$" "$1"; }
