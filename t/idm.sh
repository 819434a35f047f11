#!/bin/sh
# t/idm.sh -- dance-idm against real DNS servers and a real DANCE server.
#
# A child zone of the world's test. zone, delegated with a DS
# (world.sh delegate): Knot DNS as its primary with automatic DNSSEC
# signing and TSIG updates limited to TLSA below _device, a second knotd
# as secondary fed by NOTIFY + IXFR (on 127.0.0.2, same port: the zone's
# two NS addresses).  dance-idm enrols and rolls identities in it; the
# validating resolver is the core's, with the world's trust anchor.
. "$(dirname "$0")/lib/nginx.sh"

IDM=$BUILD/bin/dance-idm
CHECK=$BUILD/bin/dance-check
SERVER=$BUILD/bin/dance-server
ST=$T/state
mkdir -p "$ST"

for c in knotd knotc keymgr kdig knsupdate; do
	if ! command -v $c >/dev/null 2>&1; then
		echo "not ok 1 - $c missing (apt-get install knot knot-dnsutils)"
		echo "0 passed, 1 failed"
		exit 1
	fi
done
[ -x "$IDM" ] && [ -x "$SERVER" ] || {
	echo "not ok 1 - $IDM or $SERVER missing (make)"
	echo "0 passed, 1 failed"
	exit 1
}

. "$TOP/t/lib/idm.sh"
knot_zone 2>"$T/knot.err"
rc=$?
ok $rc "knot primary (signing) and secondary (IXFR) for $ZONE, delegated with a DS from test." "$(cat "$T/knot.err")"
[ $rc -eq 0 ] || { done_testing; exit 1; }

# -- what the servers say -------------------------------------------------

tlsa_at() {	# tlsa_at ADDR NAME: sorted rdata, lower case
	kdig @"$1" -p "$P" "$2" TLSA +short +time=1 +retry=0 |
		tr 'A-F' 'a-f' | sort | tr '\n' ';'
}

# "3 1 1 <hex>" of a key's certificate, from dance-tlsa.
tlsa_of() {	# tlsa_of NAME ID
	"$BUILD/bin/dance-tlsa" "$ST/$1.keys/$2.crt" 3 1 1 |
		awk '{ print $4, $5, $6, $7 }'
}

check() {	# check NAME CERT: dance-check through the world's resolver
	timeout 20 "$CHECK" --ta "$WORLD_TA" --unbound-conf "$T/unbound.conf" \
		"$1" "$2" >"$T/check.out" 2>&1
}

# -- enrolment, held back by the secondary ------------------------------

D1=dev1._device.$ZONE
conf "$D1"
knotc -c "$K2/knot.conf" zone-freeze "$ZONE." >/dev/null
idm "$T/r1" run "$D1"
is "$(rc_of "$T/r1"):$(state_of "$D1")" "0:tlsa-published" \
	"enrol: key generated and TLSA published by UPDATE"
sleep 2
idm "$T/r2" run "$D1"
is "$(rc_of "$T/r2"):$(state_of "$D1")" "0:tlsa-published" \
	"secondary held back (zone frozen): the state does not advance"
like "$T/r2" "not yet at 127.0.0.2@$P: serial" \
	"status says which server is behind"
[ ! -e "$T/$D1.pem" ]
ok $? "nothing deployed while not visible"
knotc -c "$K2/knot.conf" zone-thaw "$ZONE." >/dev/null
idm "$T/r3" run "$D1" --wait
is "$(rc_of "$T/r3"):$(state_of "$D1")" "0:steady" \
	"after the secondary caught up: visible, propagated, deployed, steady" \
	"$(cat "$T/r3")"
K=$(key_of "$D1" cur)
is "$(tlsa_at 127.0.0.2 "$D1")" "$(tlsa_of "$D1" "$K");" \
	"the secondary serves exactly the new record"
like "$K2/knot.log" "IXFR, incoming, remote 127.0.0.1@$P, finished" \
	"the secondary got the change by NOTIFY + IXFR"
check "$D1" "$T/$D1.pem"
ok $? "dance-check authenticates the deployed certificate" "$(cat "$T/check.out")"
idm "$T/r4" run "$D1"
is "$(rc_of "$T/r4"):$(cat "$T/r4")" "0:" "run again: nothing due, silent, exit 0"

# -- status ---------------------------------------------------------------

idm "$T/s1" status "$D1" --json
like "$T/s1" '"state":"steady","since":"[0-9T:-]+Z","next_action":"renew' \
	"status --json: state, since, next action"
idm "$T/s2" status
like "$T/s2" "allowed +run roll renew revoke" "status lists the allowed actions"

# -- dry run: the nsupdate script, no change -------------------------------

idm "$T/d0" roll "$D1"
cp "$ST/$D1.state" "$T/state.before"
idm "$T/d1" run "$D1" --dry-run
like "$T/d1" "^prereq yxrrset $D1\. IN TLSA 3 1 1 " "--dry-run: prerequisite = the current set"
like "$T/d1" "^update add $D1\. 1 IN TLSA 3 1 1 " "--dry-run: the update"
cmp -s "$ST/$D1.state" "$T/state.before"
ok $? "--dry-run changes no state"

# The script applied by hand = an UPDATE that got through before a crash:
# the replay is recognised, the roll goes on.
sed "s|^key \([^ ]*\) .*|key \1 $SECRET|" "$T/d1" | knsupdate >"$T/ns.out" 2>&1
ok $? "the --dry-run script is accepted by knsupdate" "$(cat "$T/ns.out")"
idm "$T/d2" run "$D1" --step
like "$T/d2" "already applied" "a replayed update counts as done"
is "$(state_of "$D1")" "tlsa-published" "... and the state advances"
idm "$T/d3" run "$D1" --wait
N=$(key_of "$D1" cur)
is "$(rc_of "$T/d3"):$(tlsa_at 127.0.0.1 "$D1")" "0:$(tlsa_of "$D1" "$N");" \
	"second roll: only the new key's record left"

# -- wrong TSIG key, refused update: clear errors, no state change ---------

idm "$T/w0" roll "$D1"
cp "$ST/$D1.state" "$T/state.before"
sed -i "s|^tsig .*|tsig hmac-sha256:idm:$(openssl rand -base64 32)|" "$ST/$D1.conf"
idm "$T/w1" run "$D1"
like "$T/w1" "refused .*BADSIG" "wrong TSIG secret: BADSIG, said clearly"
cmp -s "$ST/$D1.state" "$T/state.before"
ok $? "wrong TSIG secret: state unchanged" "rc $(rc_of "$T/w1")"
sed -i "s|^tsig .*|tsig hmac-sha256:nokey:$SECRET|" "$ST/$D1.conf"
idm "$T/w2" run "$D1"
like "$T/w2" "BADKEY" "unknown TSIG key name: BADKEY"
sed -i "s|^tsig .*|tsig hmac-sha256:idm:$SECRET|" "$ST/$D1.conf"

S1=svc.$ZONE	# outside _device: the ACL refuses it
conf "$S1"
idm "$T/x1" run "$S1"
cp "$ST/$S1.state" "$T/state.before"
idm "$T/x2" run "$S1"
is "$(rc_of "$T/x2")" 1 "update outside the allowed names: exit 1"
like "$T/x2" "refused by 127.0.0.1@$P" "refused update: said clearly"
cmp -s "$ST/$S1.state" "$T/state.before"
ok $? "refused update: state unchanged"
rm -f "$ST/$S1.conf"

# -- stalled: not visible before the deadline; rollback --------------------

idm "$T/w3" run "$D1" --wait
is "$(rc_of "$T/w3"):$(state_of "$D1")" "0:steady" "with the right key the roll completes"
OLD=$(key_of "$D1" cur)
cp "$T/$D1.pem" "$T/deployed.before"
sed -i 's/^visible-timeout .*/visible-timeout 2/' "$ST/$D1.conf"
knotc -c "$K2/knot.conf" zone-freeze "$ZONE." >/dev/null
idm "$T/t0" roll "$D1"
idm "$T/t1" run "$D1"
sleep 3
idm "$T/t2" run "$D1"
is "$(rc_of "$T/t2"):$(state_of "$D1")" "3:stalled" "not visible by the deadline: stalled, exit 3"
like "$T/t2" "ALERT: .*nothing was deployed" "stalled: alert on stderr"
cmp -s "$T/$D1.pem" "$T/deployed.before"
ok $? "stalled: the old certificate stays deployed"
idm "$T/t3" rollback "$D1"
is "$(rc_of "$T/t3"):$(state_of "$D1"):$(key_of "$D1" cur)" "0:steady:$OLD" \
	"rollback: back to steady with the old key"
is "$(tlsa_at 127.0.0.1 "$D1")" "$(tlsa_of "$D1" "$OLD");" \
	"rollback removed the new record at the primary"
knotc -c "$K2/knot.conf" zone-thaw "$ZONE." >/dev/null
sed -i 's/^visible-timeout .*/visible-timeout 30/' "$ST/$D1.conf"

# -- kill -9 in every state, then run again ---------------------------------

for X in next-key-generated tlsa-published visible propagated deployed old-retired; do
	idm "$T/k0" roll "$D1"
	n=0
	while [ "$(state_of "$D1")" != "$X" ] && [ $n -lt 100 ]; do
		idm "$T/k1" run "$D1" --step
		[ "$(state_of "$D1")" = "$X" ] || sleep 0.2
		n=$((n + 1))
	done
	NEW=$(key_of "$D1" next)
	"$IDM" -d "$ST" run "$D1" --wait >"$T/k2" 2>&1 &
	kp=$!
	sleep 0.05
	kill -9 $kp 2>/dev/null
	wait $kp 2>/dev/null
	idm "$T/k3" run "$D1" --wait
	want="0:steady:$NEW:$(tlsa_of "$D1" "$NEW");:$(tlsa_of "$D1" "$NEW");"
	got="$(rc_of "$T/k3"):$(state_of "$D1"):$(key_of "$D1" cur):$(tlsa_at 127.0.0.1 "$D1"):$(tlsa_at 127.0.0.2 "$D1")"
	is "$got" "$want" "kill -9 in $X, run again: steady with the new key, exactly its record at both servers"
done
check "$D1" "$T/$D1.pem"
ok $? "after the kills the deployed certificate authenticates" "$(cat "$T/check.out")"

# -- renewal keeps the key: no DNS change ----------------------------------

serial=$(soa_at 127.0.0.1)
before=$(openssl x509 -in "$T/$D1.pem" -noout -serial)
idm "$T/n1" renew "$D1"
after=$(openssl x509 -in "$T/$D1.pem" -noout -serial)
[ "$(rc_of "$T/n1")" = 0 ] && [ "$before" != "$after" ]
ok $? "renew: a new certificate deployed" "$(cat "$T/n1")"
is "$(soa_at 127.0.0.1)" "$serial" "renew with the same key: no DNS change (serial unchanged)"

# The renew-before trigger: a certificate within renew-before of its end
# is renewed by a plain run (cron), with key-policy keep; with
# key-policy roll the run starts a rollover instead.
echo "renew-before 3000" >>"$ST/$D1.conf"
idm "$T/n2" run "$D1"
like "$T/n2" "renewed the certificate of key $(key_of "$D1" cur)" \
	"run renews a certificate that is due (key-policy keep)"
echo "key-policy roll" >>"$ST/$D1.conf"
idm "$T/n3" run "$D1" --step
is "$(rc_of "$T/n3"):$(state_of "$D1")" "0:next-key-generated" \
	"run rolls the key when due with key-policy roll"
sed -i '/^renew-before/d; /^key-policy/d' "$ST/$D1.conf"
idm "$T/n4" run "$D1" --step
idm "$T/n5" run "$D1" --step
n=0
while [ "$(state_of "$D1")" != deployed ] && [ $n -lt 50 ]; do
	idm "$T/n5" run "$D1" --step
	sleep 0.2
	n=$((n + 1))
done
idm "$T/n6" rollback "$D1"
is "$(rc_of "$T/n6"):$(state_of "$D1")" "1:deployed" "no rollback once the new key was deployed"
like "$T/n6" "may already be in use" "... and it says why"
idm "$T/n7" run "$D1" --wait
is "$(rc_of "$T/n7"):$(state_of "$D1")" "0:steady" "the roll finishes"

# Caches hold the set for the TTL it had: a shorter TTL for the new
# record does not shorten the wait.
sed -i 's/^ttl .*/ttl 2/' "$ST/$D1.conf"
idm "$T/l1" roll "$D1"
idm "$T/l2" run "$D1" --wait
sed -i 's/^ttl .*/ttl 1/' "$ST/$D1.conf"
idm "$T/l3" roll "$D1"
idm "$T/l4" run "$D1" --step
is "$(rc_of "$T/l4"):$(key_of "$D1" wait)" "0:4" \
	"the wait is 2 x the old set's TTL (2 s) when the new TTL is shorter (1 s)"
idm "$T/l5" rollback "$D1"
is "$(rc_of "$T/l5"):$(state_of "$D1")" "0:steady" "rollback of a published, undeployed key"
is "$(cd "$ST/$D1.keys" && ls *.key)" "$(key_of "$D1" cur).key" \
	"only the current key's private half is kept (retired and rolled-back ones removed)"

# -- a CA-issued identity (ca-hook from a CSR) ------------------------------

D2=ca1._device.$ZONE
conf "$D2" "ca-hook openssl x509 -req -in \"\$IDM_CSR\" -CA $C/devca.crt -CAkey $C/devca.key -days 30 -copy_extensions copy -out \"\$IDM_CERT\""
idm "$T/c1" run "$D2" --wait
is "$(rc_of "$T/c1"):$(state_of "$D2")" "0:steady" "ca-hook identity enrolled" "$(cat "$T/c1")"
openssl x509 -in "$T/$D2.pem" -noout -issuer | grep -q "DANCE test device CA"
ok $? "its certificate was issued by the CA hook"
check "$D2" "$T/$D2.pem"
ok $? "dance-check authenticates it (3 1 1 of the CA-issued cert)" "$(cat "$T/check.out")"

# -- the device's own CSR: its key never leaves it -------------------------

D6=own._device.$ZONE
# The "device": keeps its key in $T/own.key and answers with a CSR.
conf "$D6" "csr-hook [ -f $T/own.key ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $T/own.key; openssl req -new -key $T/own.key -subj /CN=own -out \"\$IDM_CSR\"
ca-hook openssl x509 -req -in \"\$IDM_CSR\" -CA $C/devca.crt -CAkey $C/devca.key -days 30 -out \"\$IDM_CERT\""
sed -i '/^deploy-key/d' "$ST/$D6.conf"
idm "$T/o1" run "$D6" --wait
is "$(rc_of "$T/o1"):$(state_of "$D6")" "0:steady" "csr-hook identity enrolled" "$(cat "$T/o1")"
[ "$(openssl x509 -in "$T/$D6.pem" -noout -pubkey)" = "$(openssl pkey -in "$T/own.key" -pubout)" ] &&
	! ls "$ST/$D6.keys/"*.key >/dev/null 2>&1
ok $? "the deployed certificate is for the device's key, which dance-idm never had"
check "$D6" "$T/$D6.pem"
ok $? "dance-check authenticates it" "$(cat "$T/check.out")"
idm "$T/o2" renew "$D6"
like "$T/o2" "renewed the certificate" "renewal from a new CSR for the same key"
rm -f "$T/own.key"
idm "$T/o3" renew "$D6"
like "$T/o3" "CSR is for a new key: that is a rollover" "a CSR with a new key is not taken as a renewal"

# -- standby key: current + next published, a roll needs no wait -----------

D4=sb._device.$ZONE
conf "$D4" "standby yes"
idm "$T/b1" run "$D4" --wait
CUR=$(key_of "$D4" cur)
SB=$(key_of "$D4" standby)
want=$(printf '%s;%s;' "$(tlsa_of "$D4" "$CUR")" "$(tlsa_of "$D4" "$SB")" | tr ';' '\n' | sort | tr '\n' ';')
is "$(rc_of "$T/b1"):$(state_of "$D4"):$(tlsa_at 127.0.0.2 "$D4")" "0:steady:$want" \
	"standby yes: current and standby key published (3 1 1 x 2)" "$(cat "$T/b1")"
sleep 2		# the standby record has propagated (2 x TTL)
idm "$T/b2" roll "$D4"
idm "$T/b3" run "$D4"
openssl x509 -in "$T/$D4.pem" -noout -pubkey >"$T/b.dep"
openssl x509 -in "$ST/$D4.keys/$SB.crt" -noout -pubkey >"$T/b.sb"
cmp -s "$T/b.dep" "$T/b.sb"
ok $? "roll to the standby key: deployed in the same run, no wait" "$(cat "$T/b3")"
idm "$T/b4" run "$D4" --wait
NSB=$(key_of "$D4" standby)
want=$(printf '%s;%s;' "$(tlsa_of "$D4" "$SB")" "$(tlsa_of "$D4" "$NSB")" | tr ';' '\n' | sort | tr '\n' ';')
is "$(rc_of "$T/b4"):$(key_of "$D4" cur):$(tlsa_at 127.0.0.2 "$D4")" "0:$SB:$want" \
	"old key retired, a new standby key published"

# -- revoke ------------------------------------------------------------------

idm "$T/v1" revoke "$D2"
like "$T/v1" "revoked; effective by [0-9T:-]+Z" "revoke says when it is effective"
is "$(rc_of "$T/v1"):$(tlsa_at 127.0.0.1 "$D2")" "0:" "revoke removed the record"

# -- a CA-based wildcard: *._device with DANE-TA -------------------------

W='*._device.'$ZONE
conf "$W" "usage dane-ta"
idm "$T/a1" run "$W" --wait
is "$(rc_of "$T/a1"):$(state_of "$W")" "0:steady" "wildcard DANE-TA identity enrolled" "$(cat "$T/a1")"
like "$T/a1" "published 2 1 1 " "its record is DANE-TA (2 1 1 of the CA key)"
leaf() {	# leaf NAME CAFILE OUT: a device certificate from that CA
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$3.key" -subj "/CN=$1" -addext "subjectAltName=DNS:$1" \
		2>/dev/null |
	openssl x509 -req -CA "$2" -CAkey "$2" -days 1 -copy_extensions copy \
		-out "$3.crt" 2>/dev/null
	cat "$3.crt" "$2" | sed '/PRIVATE KEY/,/END .*PRIVATE KEY/d' >"$3.chain"
}
leaf "dev9._device.$ZONE" "$T/$W.pem" "$T/dev9a"
check "dev9._device.$ZONE" "$T/dev9a.chain"
ok $? "a device of the deployed CA authenticates under the wildcard" "$(cat "$T/check.out")"
idm "$T/a2" roll "$W"
idm "$T/a3" run "$W" --wait
leaf "dev9._device.$ZONE" "$T/$W.pem" "$T/dev9b"
check "dev9._device.$ZONE" "$T/dev9b.chain"
ok $? "after the CA roll a device of the new CA authenticates" "$(cat "$T/a3" "$T/check.out")"
check "dev9._device.$ZONE" "$T/dev9a.chain"
is "$?" 1 "... and one of the retired CA is refused" "$(cat "$T/check.out")"

# -- the rollover that matters: a DANCE server and a client, continuously ---

D3=web._device.$ZONE
conf "$D3"
sed -i 's/^ttl .*/ttl 3/' "$ST/$D3.conf"
idm "$T/e1" run "$D3" --wait
is "$(rc_of "$T/e1"):$(state_of "$D3")" "0:steady" "web identity enrolled (TTL 3)"
server_cert
SP=$(free_port)
"$SERVER" --cert "$T/srv.crt" --key "$T/srv.key" --listen "127.0.0.1:$SP" \
	--allow "._device.$ZONE" --ta "$WORLD_TA" \
	--unbound-conf "$T/unbound.conf" >"$T/server.log" 2>&1 &
T_BG="$T_BG $!"
wait_for 50 sh -c "ss -Htln 'sport = :$SP' | grep -q ."
need_module
idm_nginx
ok $? "nginx with the module started"
ID=$D3

one "$T/$D3.pem" "$T/one"
ok $? "dance-server and nginx authenticate the enrolled client" "$(cat "$T/one" "$T/server.log" | tail -n 20)"
OLD=$(key_of "$D3" cur)
cp "$T/$D3.pem" "$T/old.pem"
: >"$T/good"
traffic "$T/good"
sleep 1
idm "$T/g0" roll "$D3"
idm "$T/g1" run "$D3" --wait
sleep 4		# TTL + 1 with the new key alone
traffic_stop
is "$(rc_of "$T/g1"):$(state_of "$D3")" "0:steady" "roll under traffic completed" "$(cat "$T/g1")"
is "$(count_of "$T/good" fail)" 0 "zero failed handshakes during the roll" "$(head -n 20 "$T/good.why" 2>/dev/null)"
[ "$(count_of "$T/good" ok)" -ge 20 ]
ok $? "the client kept authenticating ($(count_of "$T/good" ok) x 2 handshakes)"
[ "$OLD" != "$(key_of "$D3" cur)" ] && ! cmp -s "$T/old.pem" "$T/$D3.pem"
ok $? "a new key is deployed"
timeout 10 "$CLIENT" --cert "$T/old.pem" --key "$T/old.pem" --name "$D3" \
	"127.0.0.1:$SP" >"$T/one" 2>&1
is "$?" 1 "dance-server refuses the old key after retirement + TTL" "$(cat "$T/one")"
timeout 10 "$CLIENT" --cert "$T/old.pem" --key "$T/old.pem" --name "$D3" \
	--http / "127.0.0.1:$NP" >"$T/one" 2>&1
is "$?" 1 "nginx refuses the old key after retirement + TTL" "$(cat "$T/one")"
one "$T/$D3.pem" "$T/one"
ok $? "the new key is accepted by both"

# The negative twin: the same roll, deployed at once with --force.
: >"$T/bad"
traffic "$T/bad"
sleep 1
idm "$T/f0" roll "$D3"
idm "$T/f1" run "$D3" --step
idm "$T/f1b" deploy "$D3"
is "$(rc_of "$T/f1b"):$(state_of "$D3")" "1:tlsa-published" "deploy before propagation is refused"
like "$T/f1b" "refused: the TLSA record of key [0-9]+ has not propagated" "... saying why"
idm "$T/f2" deploy "$D3" --force
like "$T/f2" "WARNING: --force: deploying key [0-9]+ before its TLSA record has propagated" \
	"--force says what may break"
sleep 3
traffic_stop
idm "$T/f3" run "$D3" --wait
[ "$(count_of "$T/bad" fail)" -gt 0 ]
ok $? "--force (no wait): failed handshakes ($(count_of "$T/bad" fail) of $(wc -l <"$T/bad"))"
is "$(rc_of "$T/f3"):$(state_of "$D3")" "0:steady" "the forced roll still ends steady"

done_testing
