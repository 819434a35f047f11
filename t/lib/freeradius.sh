# t/lib/freeradius.sh -- shared by t/freeradius.sh, t/demo_freeradius.sh
# and bench/freeradius: test certificates, a private raddb and starting
# freeradius.  Sourced; the caller sets top, BUILD, T, C (= $WORLD_CERTS,
# world env sourced) and defines bail(); fr_setup sets the rest.  Keeps
# everything under $T, loopback ports only.
#
# The FreeRADIUS under test comes from the environment (default: Debian's):
#   FR_PREFIX     its install prefix; dictionaries in $FR_PREFIX/share/freeradius
#   FR_RADIUSD    the server binary ($FR_PREFIX/sbin/radiusd; Debian: freeradius)
#   FR_MODDIR     its modules ($FR_PREFIX/lib; Debian: /usr/lib/freeradius)
#   FR_RLM_DANCE  rlm_dance.so built for it (Debian: $BUILD/freeradius/;
#                 else next to the prefix, as freeradius_module/server.sh lays out)
FR_PREFIX=${FR_PREFIX:-/usr}
if [ "$FR_PREFIX" = /usr ]; then
	FR_RADIUSD=${FR_RADIUSD:-/usr/sbin/freeradius}
	FR_MODDIR=${FR_MODDIR:-/usr/lib/freeradius}
	FR_RLM_DANCE=${FR_RLM_DANCE:-$BUILD/freeradius/rlm_dance.so}
else
	FR_RADIUSD=${FR_RADIUSD:-$FR_PREFIX/sbin/radiusd}
	FR_MODDIR=${FR_MODDIR:-$FR_PREFIX/lib}
	FR_RLM_DANCE=${FR_RLM_DANCE:-$(dirname "$FR_PREFIX")/rlm_dance.so}
fi

# fr_version: X.Y.Z of $FR_RADIUSD.
fr_version() {
	"$FR_RADIUSD" -v 2>/dev/null | sed -n 's/.*FreeRADIUS Version \([0-9][0-9.]*\).*/\1/p' | head -n 1
}

# fr_client_tls: true when $FR_RADIUSD has per-client TLS (3.2.7 and
# later: `client { tls { } }`).
fr_client_tls() {
	fr_version | awk -F. '{ exit !(($1 * 10000 + $2 * 100 + $3) >= 30207) }'
}

# free_port (TCP and UDP)
. "$top/t/lib/ports.sh"

# FR_USER: the user radiusd runs as (security { user group }), as a
# packaged server does: Debian's package creates freerad.  Only root can
# switch users; otherwise radiusd stays the user running the tests.
FR_USER=${FR_USER-}
if [ -z "$FR_USER" ] && [ "$(id -u)" = 0 ] && id freerad >/dev/null 2>&1; then
	FR_USER=freerad
fi

# fr_setup TIMEOUT_MS: directories, ports, certificates and raddb under $T
# (K extra certs, R raddb, AUTH_PORT, TLS_PORT, TLS_PORT2, TLS_PORT3).
fr_setup() {
	mkdir -p "$T/certs" "$T/lib" "$T/log" "$T/run"
	K=$T/certs
	SRV_CERT=$K/server.crt
	SRV_KEY=$K/server.key
	R=$T/raddb
	AUTH_PORT=$(free_port)
	TLS_PORT=$(free_port)
	TLS_PORT2=$(free_port)
	TLS_PORT3=$(free_port)
	TIMEOUT_MS=$1
	# the world's certificates, where radiusd (as $FR_USER) can read
	# them: the world's own directory may be private
	mkdir -p "$T/pub"
	rm -rf "$T/pub/certs"
	cp -r "$C" "$T/pub/certs"
	chmod 755 "$T/pub" "$T/pub/certs"
	C=$T/pub/certs
	fr_make_certs
	fr_write_raddb
	fr_permissions
}

# fr_permissions: what radiusd reads is readable by $FR_USER's group,
# private keys included (0640 root:GROUP, like /etc/freeradius/3.0/certs),
# and it may write only its log and run directories.  The world's own
# key stays 0600: the server key used here is a copy ($SRV_KEY).
fr_permissions() {
	[ -n "$FR_USER" ] || return 0
	g=$(id -gn "$FR_USER")
	chgrp "$g" "$T" "$K" "$K"/*.key || bail "chgrp $g for radiusd's files"
	chmod 0750 "$T"
	chmod 0640 "$K"/*.key
	chown "$FR_USER:$g" "$T/log" "$T/run"
}

# fr_make_certs: test certificates beyond the world's, into $K.
fr_make_certs() {
	ossl() { openssl "$@" >>"$T/openssl.log" 2>&1 || bail "openssl $1 for test certificates"; }
	# The server's certificate and key, as a deployment installs them.
	cp "$C/server.crt" "$SRV_CERT"
	cp "$C/server.key" "$SRV_KEY"
	ec_key() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

	# corpca: the CA FreeRADIUS is configured with (ca_file), the existing PKI.
	ec_key "$K/corpca.key"
	ossl req -x509 -new -key "$K/corpca.key" -subj "/CN=Corp RADIUS CA" -days 30 \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
		-out "$K/corpca.crt"
	# corp users: PKIX clients; one of them has an allowed DANE-style name.
	for who in corp corpdane; do
		case $who in
		corp) san=alice.corp.test ;;
		corpdane) san=corp1.clients.test ;;
		esac
		ec_key "$K/$who.key"
		ossl req -new -key "$K/$who.key" -subj "/CN=$san" -out "$K/$who.csr"
		printf 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\nsubjectAltName=DNS:%s\n' "$san" >"$K/$who.ext"
		ossl x509 -req -in "$K/$who.csr" -CA "$K/corpca.crt" -CAkey "$K/corpca.key" -CAcreateserial \
			-days 30 -extfile "$K/$who.ext" -out "$K/$who.crt"
	done
	# roguecca: a CA nobody trusts; its leaf has an allowed name without TLSA.
	ec_key "$K/rogueca.key"
	ossl req -x509 -new -key "$K/rogueca.key" -subj "/CN=Rogue CA" -days 30 \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -out "$K/rogueca.crt"
	ec_key "$K/rogue.key"
	ossl req -new -key "$K/rogue.key" -subj "/CN=rogue.clients.test" -out "$K/rogue.csr"
	printf 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\nsubjectAltName=DNS:rogue.clients.test\n' >"$K/rogue.ext"
	ossl x509 -req -in "$K/rogue.csr" -CA "$K/rogueca.crt" -CAkey "$K/rogueca.key" -CAcreateserial \
		-days 30 -extfile "$K/rogue.ext" -out "$K/rogue.crt"
	cat "$K/rogue.crt" "$K/rogueca.crt" >"$K/rogue.chain.pem"
	# ee311's key without any SAN: the name must come from the EAP identity.
	ossl req -x509 -new -key "$C/ee311.key" -subj "/CN=device" -days 30 -out "$K/ee311-nosan.crt"
	# Wrong key: SAN ee311.clients.test, key of other.crt.
	ossl req -x509 -new -key "$C/other.key" -subj "/CN=ee311.clients.test" -days 30 \
		-addext subjectAltName=DNS:ee311.clients.test -out "$K/wrongkey.crt"
	# A self-signed cert whose only name is not allowed.
	ossl req -x509 -new -key "$C/ee311.key" -subj "/CN=blocked" -days 30 \
		-addext subjectAltName=DNS:ee311.blocked.test -out "$K/blocked.crt"
	# A device of the healthy _device zone nobody has looked up yet
	# (DANE-TA via the world's *._device.clients.test record).
	ec_key "$K/fresh.key"
	ossl req -new -key "$K/fresh.key" -subj "/CN=fresh._device.clients.test" -out "$K/fresh.csr"
	printf 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\nsubjectAltName=DNS:fresh._device.clients.test\n' >"$K/fresh.ext"
	ossl x509 -req -in "$K/fresh.csr" -CA "$C/devca.crt" -CAkey "$C/devca.key" -CAcreateserial \
		-CAserial "$K/devca.srl" -days 30 -extfile "$K/fresh.ext" -out "$K/fresh.crt"
	cat "$K/fresh.crt" "$C/devca.crt" >"$K/fresh.chain.pem"
}

# fr_write_raddb: private raddb in $R (modules from $T/lib), EAP-TLS on
# 127.0.0.1:$AUTH_PORT (server default), RADIUS/TLS on $TLS_PORT
# (server radsec), rlm_dance with a $TIMEOUT_MS ms lookup timeout.
fr_write_raddb() {
	# copies, not links: radiusd loads modules and reads the world's
	# files after it became $FR_USER, who may not reach the build tree
	# or the world (private directories)
	for m in "$FR_MODDIR"/*.so; do cp "$m" "$T/lib/"; done
	cp "$FR_RLM_DANCE" "$T/lib/rlm_dance.so"
	mkdir -p "$R" "$T/pub"
	chmod 755 "$T/pub"
	cp "$WORLD_TA" "$T/pub/ta"
	cp "$WORLD_UNBOUND_CONF" "$T/pub/unbound.conf"
	cp "$top/freeradius_module/raddb/dictionary.dance" "$R/dictionary.dance"
	chmod 755 "$T/lib"
	chmod 644 "$T/lib"/*.so "$T/pub/ta" "$T/pub/unbound.conf" \
		"$R/dictionary.dance"

	cat >"$R/dictionary" <<EOF
\$INCLUDE $R/dictionary.dance
EOF

	cat >"$R/radiusd.conf" <<EOF
prefix = $FR_PREFIX
exec_prefix = $FR_PREFIX
sysconfdir = /etc
localstatedir = $T
sbindir = $FR_PREFIX/sbin
logdir = $T/log
raddbdir = $R
radacctdir = $T/acct
name = radiusd
confdir = $R
run_dir = $T/run
db_dir = $T
libdir = $T/lib
pidfile = $T/run/radiusd.pid
max_request_time = 30
cleanup_delay = 1
max_requests = 16384
hostname_lookups = no
log {
	destination = files
	file = $T/log/radius.log
	auth = yes
}
security {
$([ -n "$FR_USER" ] && printf '\tuser = %s\n\tgroup = %s\n' "$FR_USER" "$(id -gn "$FR_USER")")
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = no
}
thread pool {
	start_servers = 16
	max_servers = 32
	min_spare_servers = 4
	max_spare_servers = 32
	max_requests_per_server = 0
	max_queue_size = 65536
}
client eapol {
	ipaddr = 127.0.0.1
	secret = testing123
}
clients radsec {
	client lo {
		ipaddr = 127.0.0.1
		proto = tls
		secret = radsec
	}
}
modules {
	eap {
		default_eap_type = tls
		timer_expire = 60
		max_sessions = 4096
		tls-config tls-common {
			private_key_file = $SRV_KEY
			certificate_file = $SRV_CERT
			ca_file = $K/corpca.crt
			tls_min_version = "1.2"
			tls_max_version = "1.3"
			cipher_list = "DEFAULT"
			fragment_size = 1024
			cache {
				enable = no
			}
		}
		tls {
			tls = tls-common
		}
	}
	dance {
		# Each entry has its own max_waiting_per_domain budget (the
		# closest entry admits a name): the never-answering zones and
		# the devices do not share the one of ".clients.test".
		allow = ".clients.test"
		allow = ".slow.clients.test"
		allow = "*._device.clients.test"
		allow = ".z1.slow.clients.test"
		allow = ".z2.slow.clients.test"
		allow = ".z3.slow.clients.test"
		name_source = "extension san identity"
		trust_anchor_file = "$T/pub/ta"
		unbound_conf = "$T/pub/unbound.conf"
		timeout = $TIMEOUT_MS
		max_waiting = 8
		max_waiting_per_domain = 3
		fail_ttl = 0
		pkix_ca_file = "$C/pkixca.crt"
		eap_tls_config = "tls-common"
		radsec = yes
	}
}
server default {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = $AUTH_PORT
	}
	authorize {
		eap {
			ok = return
		}
	}
	authenticate {
		eap
	}
	post-auth {
		dance
		update reply {
			Reply-Message := "dance=%{DANCE-Client-Id} status=%{DANCE-Status} usage=%{DANCE-Usage} source=%{DANCE-Name-Source}"
		}
		Post-Auth-Type REJECT {
			update reply {
				Reply-Message := "dance=%{DANCE-Client-Id} status=%{DANCE-Status} reason=%{DANCE-Reason}"
			}
		}
	}
}
EOF
	fr_radsec_server radsec radsec "	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = $TLS_PORT
		proto = tcp
		clients = radsec
$(fr_tls_section "$SRV_CERT" "$SRV_KEY")
	}" >>"$R/radiusd.conf"
	if fr_client_tls; then
		fr_write_client_tls >>"$R/radiusd.conf"
	fi
}

# fr_tls_section CERT KEY: a RADIUS/TLS server tls section.
fr_tls_section() {
	cat <<EOF
		tls {
			private_key_file = $2
			certificate_file = $1
			ca_file = $K/corpca.crt
			require_client_cert = yes
			tls_min_version = "1.2"
			tls_max_version = "1.2"
			cache {
				enable = no
			}
		}
EOF
}

# fr_radsec_server NAME TAG LISTEN-EXTRA: a virtual server answering
# RADIUS/TLS requests with "TAG dance=... status=...".
fr_radsec_server() {
	cat <<EOF
server $1 {
$3
	authorize {
		# copies the connection's DANCE-* into the request
		dance
		update control {
			Auth-Type := Accept
		}
		update reply {
			Reply-Message := "$2 dance=%{DANCE-Client-Id} status=%{DANCE-Status}"
		}
	}
	authenticate {
	}
}
EOF
}

# fr_write_client_tls: RADIUS/TLS clients with a tls section of their own
# (FreeRADIUS 3.2.7+): a top-level one (127.0.0.2, never connects; the
# top-level list must not say proto = tls, FreeRADIUS reads it as the
# list of UDP clients), one
# in "clients radsec_ctls" used by the listener on $TLS_PORT2 (server
# radsec_group), and one of server radsec_ps, on $TLS_PORT3.  The
# listeners present corp.crt, which radsecproxy does not trust: a
# connection that works used the client's tls (server.crt).
fr_write_client_tls() {
	cat <<EOF
client tlsclient {
	ipaddr = 127.0.0.2
	secret = radsec
$(fr_tls_section "$SRV_CERT" "$SRV_KEY")
}
clients radsec_ctls {
	client lo {
		ipaddr = 127.0.0.1
		proto = tls
		secret = radsec
$(fr_tls_section "$SRV_CERT" "$SRV_KEY")
	}
}
EOF
	fr_radsec_server radsec_group radsec-group "	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = $TLS_PORT2
		proto = tcp
		clients = radsec_ctls
$(fr_tls_section "$K/corp.crt" "$K/corp.key")
	}"
	fr_radsec_server radsec_ps radsec-server "	client lo {
		ipaddr = 127.0.0.1
		proto = tls
		secret = radsec
$(fr_tls_section "$SRV_CERT" "$SRV_KEY")
	}
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = $TLS_PORT3
		proto = tcp
$(fr_tls_section "$K/corp.crt" "$K/corp.key")
	}"
}

# fr_runs_as_user: radiusd ($frpid) runs as $FR_USER (true when the
# tests cannot switch users).
fr_runs_as_user() {
	[ -z "$FR_USER" ] || [ "$(ps -o uid= -p "$frpid" | tr -d ' ')" = "$(id -u "$FR_USER")" ]
}

# fr_start DEBUGFLAGS: start freeradius (FRLOG, frpid); 0 when ready.
# fr_radiusd ARGS: radiusd.  Its modules (copies in $T/lib) link
# FreeRADIUS's libraries, which it looks for in $T/lib too: after it
# became $FR_USER, the build's own library folder may be out of reach.
# (Only radiusd: the clients are Debian's, with Debian's libraries.)
fr_radiusd() {
	LD_LIBRARY_PATH=$T/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
		"$FR_RADIUSD" "$@"
}

fr_start() {
	FRLOG=$T/log/radius.log
	# as fr_radiusd, but $! must be radiusd itself
	LD_LIBRARY_PATH=$T/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
		"$FR_RADIUSD" -f $1 -l "$FRLOG" -d "$R" -n radiusd \
		>"$T/freeradius.out" 2>&1 &
	frpid=$!
	i=0
	until grep -q "Ready to process requests" "$FRLOG" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 200 ] || ! kill -0 $frpid 2>/dev/null; then
			tail -30 "$FRLOG" "$T/freeradius.out" 2>/dev/null | sed 's/^/# /'
			return 1
		fi
		sleep 0.1
	done
	return 0
}
