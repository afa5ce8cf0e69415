#!/usr/bin/env bash
# scripts/with-pg.sh — run a command with a throwaway PostgreSQL cluster, then remove the cluster.
#
#   scripts/with-pg.sh CMD [ARG...]
#
# It owns one cluster's whole life: initdb in a new temporary directory (as the `postgres` user when run as
# root: initdb refuses root), a server listening only on a unix socket in that directory (no TCP port, so
# no clash with anything else on the machine), wal_level = logical with a few walsenders and slots (the
# logical hint source's tests need them), trust authentication. CMD runs with POLLGATE_TEST_DSN set to the
# cluster's libpq conninfo (database `postgres`, superuser `postgres`); its exit status is the script's.
# The server is stopped and the directory removed however the script ends (trap on EXIT, INT, TERM).
# The server's log is printed when CMD fails. Without PostgreSQL installed it fails under CI=true, and
# otherwise runs CMD without POLLGATE_TEST_DSN (the live tests then skip). `make test-unit` runs the unit binaries under it: one
# cluster for the whole unit run. POLLGATE_PG_BINDIR picks the server's programs (default: the newest
# /usr/lib/postgresql/N/bin, else initdb on PATH), as tests/integration/conftest.py does.
set -euo pipefail

if [ $# -eq 0 ]; then
	echo "usage: scripts/with-pg.sh CMD [ARG...]" >&2
	exit 2
fi

bindir=${POLLGATE_PG_BINDIR:-}
if [ -z "$bindir" ]; then
	bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V | tail -n 1 || true)
	[ -n "$bindir" ] && [ -x "$bindir/initdb" ] || bindir=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
fi
if [ ! -x "$bindir/initdb" ]; then
	# Under CI a missing server is an error; by hand the command runs without a DSN (its live tests skip).
	if [ -n "${CI:-}" ] && [ "${CI}" != "false" ] && [ "${CI}" != "0" ]; then
		echo "with-pg: no initdb (install postgresql-15: scripts/deps.sh run)" >&2
		exit 1
	fi
	echo "with-pg: no initdb (install postgresql-15: scripts/deps.sh run); running without POLLGATE_TEST_DSN" >&2
	unset POLLGATE_TEST_DSN
	exec "$@"
fi

# Short path: a unix socket path is limited to ~107 bytes.
dir=$(mktemp -d /tmp/pollgate-pg.XXXXXX)
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
	chown postgres:postgres "$dir"
	as_owner=(runuser -u postgres --)
fi
started=0

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ $started -eq 1 ]; then
		"${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
	exit $rc
}
# CMD runs in the background and is waited for, so a signal to this script is acted on at once: CMD (by
# its pid) gets SIGTERM, then the EXIT trap stops the cluster.
child=
on_signal() {
	if [ -n "$child" ]; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

"${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 || {
	cat "$dir/initdb.log" >&2
	exit 1
}
cat >>"$dir/data/postgresql.conf" <<EOF

# scripts/with-pg.sh
listen_addresses = ''
unix_socket_directories = '$dir'
port = 5432
fsync = off
# on (fsync is off, so it costs nothing): a walsender streams only flushed WAL, and an async commit
# would wait for the WAL writer (wal_writer_delay, 200 ms) before the logical tests see it.
synchronous_commit = on
full_page_writes = off
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
log_min_messages = warning
EOF
"${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null || {
	cat "$dir/postgres.log" >&2
	exit 1
}
started=1

export POLLGATE_TEST_DSN="host=$dir port=5432 dbname=postgres user=postgres"
rc=0
"$@" &
child=$!
wait "$child" || rc=$?
child=
if [ $rc -ne 0 ]; then
	echo "with-pg: '$*' exited $rc; --- postgres log tail ---" >&2
	tail -n 30 "$dir/postgres.log" >&2 || true
fi
exit $rc
