# t/lib/ports.sh -- free loopback TCP ports for test and benchmark
# servers.  Sourced.
#
#   free_port        prints a port in 11000-17999 that no TCP or UDP
#                    socket uses, and that this script has not handed
#                    out before
#
# The range lies below the test world's 20000-29999 and the kernel's
# ephemeral range (client sockets of other tests would make bind()
# fail).  Ports handed out are remembered in $PORTS_FILE (default
# $T/ports), so that callers may run free_port in a subshell: P=$(free_port).

free_port() {
	_pf=${PORTS_FILE:-${T:?free_port: set T or PORTS_FILE}/ports}
	while :; do
		_p=$(( 11000 + $(od -An -N2 -tu2 /dev/urandom) % 7000 ))
		grep -qx "$_p" "$_pf" 2>/dev/null && continue
		if ! ss -Htanu "sport = :$_p" | grep -q .; then
			echo "$_p" >>"$_pf"
			echo "$_p"
			return 0
		fi
	done
}
