# t/lib/world.sh -- the offline DNSSEC test world (t/world/world.sh) for
# a test, demo or benchmark.  Sourced; the caller sets top (the source
# tree).
#
#   world_use DIR       with WORLD_ENV set (t/run.sh sets it) use that
#                       world, else start a private one in DIR (log in
#                       DIR.log), which world_stop stops; then source
#                       WORLD_ENV and set C (the world's certificates).
#                       Returns 1, with the log on stdout, when the world
#                       does not start.
#   world_stop          stop the private world, if one was started
#   world_count NAME [TYPE]
#                       queries for NAME (default type TLSA) that reached
#                       the authoritative side so far

W_OWN=${W_OWN:-}	# kept when sourced again (t/lib/nginx.sh does)

world_use() {
	if [ -z "${WORLD_ENV:-}" ]; then
		if ! sh "$top/t/world/world.sh" start "$1" >"$1.log" 2>&1; then
			cat "$1.log"
			return 1
		fi
		W_OWN=$1
		WORLD_ENV=$1/env
	fi
	. "$WORLD_ENV"
	C=$WORLD_CERTS
}

world_stop() {
	[ -n "$W_OWN" ] || return 0
	sh "$top/t/world/world.sh" stop "$W_OWN" >/dev/null 2>&1
	W_OWN=
}

world_count() {
	sh "$top/t/world/world.sh" count "$WORLD_DIR" "$@"
}
