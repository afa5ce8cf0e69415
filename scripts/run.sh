#!/usr/bin/env bash
# scripts/run.sh — `make run`: the whole thing on this machine, from nothing but the checkout.
#
# Everything lives under ./var/ (gitignored):
#   var/pg/data        a PostgreSQL 15 cluster on 127.0.0.1:54329 (created on the first run, reused after)
#   var/pg/postgres.log
#   var/pollgate.conf  the gateway's config (rewritten every run)
#   var/pollgate.log   the gateway's output
#   var/web.log        the static server's output (web/ on 127.0.0.1:8081: the demo page and pollgate.js)
# First run: initdb, database `pollgate`, db/schema.sql, db/migrations/*.sql, db/demo.sql. Later runs
# start the cluster and apply the (idempotent) migrations again. Then ./pollgate on 127.0.0.1:8080 (with
# the demo page's origin in cors_origins), a static server for web/ on 127.0.0.1:8081, and
# scripts/simulate.py, which keeps the demo runs and review packs moving. Ctrl-C stops all of it.
# As root, PostgreSQL runs as the `postgres` user (initdb refuses root).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
VAR=$ROOT/var
PGBIN=${POLLGATE_PG_BINDIR:-/usr/lib/postgresql/15/bin}
PG_PORT=54329
HTTP_HOST=127.0.0.1
HTTP_PORT=8080
BASE=http://$HTTP_HOST:$HTTP_PORT
WEB_PORT=8081
WEB=http://$HTTP_HOST:$WEB_PORT
DSN="host=127.0.0.1 port=$PG_PORT dbname=pollgate user=postgres"
GW_BIN=${POLLGATE_BIN:-$ROOT/pollgate} # e.g. POLLGATE_BIN=build/san/pollgate for the sanitizer build

log() { printf 'run: %s\n' "$*"; }
die() { printf 'run: error: %s\n' "$*" >&2; exit 1; }

[ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 server programs not found in $PGBIN (scripts/deps.sh installs postgresql-15)"
PSQL=$PGBIN/psql
[ -x "$PSQL" ] || PSQL=psql

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
if [ $IS_ROOT -eq 1 ] && ! id postgres >/dev/null 2>&1; then
	die "running as root, but there is no 'postgres' user to run PostgreSQL as (install postgresql-15)"
fi

# Runs PostgreSQL's own programs as the cluster owner.
as_owner() {
	if [ $IS_ROOT -eq 1 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

mkdir -p "$VAR"

# The cluster directory. As root it belongs to `postgres`, which must be able to reach it: when the
# checkout is somewhere it cannot (say under /root), the cluster lives in /var/tmp and var/pg links to it.
PGDIR=$VAR/pg
if [ $IS_ROOT -eq 1 ] && [ ! -e "$PGDIR" ] && ! runuser -u postgres -- test -x "$VAR"; then
	alt=/var/tmp/pollgate-pg-$(printf '%s' "$ROOT" | md5sum | cut -c1-8)
	log "the postgres user cannot reach $VAR; keeping the cluster in $alt (linked from var/pg)"
	mkdir -p "$alt"
	ln -s "$alt" "$PGDIR"
fi
mkdir -p "$PGDIR"
PGDATA=$PGDIR/data
PGLOG=$PGDIR/postgres.log
SOCKDIR=$(cd "$PGDIR" && pwd -P)
if [ $(( ${#SOCKDIR} + 16 )) -gt 100 ]; then
	SOCKDIR=/tmp # a unix socket path must stay short
fi

SIM_PID=
WEB_PID=
GW_PID=
PG_STARTED=0

cleanup() {
	trap - INT TERM EXIT
	set +e
	if [ -n "$SIM_PID" ] && kill -0 "$SIM_PID" 2>/dev/null; then
		kill -TERM "$SIM_PID" 2>/dev/null
		wait "$SIM_PID" 2>/dev/null
	fi
	if [ -n "$WEB_PID" ] && kill -0 "$WEB_PID" 2>/dev/null; then
		kill -TERM "$WEB_PID" 2>/dev/null
		wait "$WEB_PID" 2>/dev/null
	fi
	if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
		log "stopping the gateway (pid $GW_PID)"
		kill -TERM "$GW_PID" 2>/dev/null
		for _ in $(seq 1 150); do
			kill -0 "$GW_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$GW_PID" 2>/dev/null; then
			log "the gateway did not exit within 15 s; killing it"
			kill -KILL "$GW_PID" 2>/dev/null
		fi
		wait "$GW_PID" 2>/dev/null
	fi
	if [ $PG_STARTED -eq 1 ]; then
		log "stopping PostgreSQL"
		as_owner "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 30 stop >/dev/null 2>&1 ||
			log "pg_ctl stop failed; see $PGLOG"
	fi
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap 'cleanup' EXIT

# -- ports

if port_busy "$HTTP_PORT"; then
	die "port $HTTP_PORT on 127.0.0.1 is already in use (another pollgate or \`make run\`?); find it with: ss -ltnp 'sport = :$HTTP_PORT'"
fi
if port_busy "$WEB_PORT"; then
	die "port $WEB_PORT on 127.0.0.1 (the demo page) is already in use; find it with: ss -ltnp 'sport = :$WEB_PORT'"
fi

PG_RUNNING=0
if [ -f "$PGDATA/PG_VERSION" ] && as_owner "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
	PG_RUNNING=1 # left over from an earlier run that was killed: use it, and stop it at the end
	PG_STARTED=1
	log "PostgreSQL in var/pg/data is already running (left over from an earlier run); using it"
elif port_busy "$PG_PORT"; then
	die "port $PG_PORT on 127.0.0.1 is already in use by something else; find it with: ss -ltnp 'sport = :$PG_PORT'"
fi

# -- the cluster

# .cluster and .initialized mark completed steps, so a first run interrupted half-way starts over.
if [ $PG_RUNNING -eq 0 ] && [ ! -f "$PGDIR/.cluster" ]; then
	log "creating the PostgreSQL cluster in var/pg/data"
	rm -rf "$PGDATA" "$PGDIR/.initialized"
	if [ $IS_ROOT -eq 1 ]; then
		chown -R postgres:postgres "$PGDIR/"
	fi
	as_owner "$PGBIN/initdb" -D "$PGDATA" -A trust -U postgres -E UTF8 --no-locale >"$PGDIR/initdb.log" 2>&1 ||
		{ cat "$PGDIR/initdb.log" >&2; die "initdb failed"; }
	echo "include_if_exists = 'pollgate_run.conf'" | as_owner tee -a "$PGDATA/postgresql.conf" >/dev/null
	touch "$PGDIR/.cluster"
fi

if [ $PG_RUNNING -eq 0 ]; then
	# Rewritten every start, so a moved checkout still finds its socket directory.
	as_owner tee "$PGDATA/pollgate_run.conf" >/dev/null <<-EOF
		# written by scripts/run.sh
		port = $PG_PORT
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$SOCKDIR'
		log_line_prefix = '%m [%p] %a '
	EOF
	if [ $IS_ROOT -eq 1 ]; then
		touch "$PGLOG"
		chown postgres:postgres "$PGDIR/" "$PGLOG"
	fi
	log "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: var/pg/postgres.log)"
	PG_STARTED=1
	as_owner "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGLOG" -w -t 60 start >/dev/null ||
		{ tail -n 20 "$PGLOG" >&2 || true; die "PostgreSQL did not start"; }
fi

psql_db() { PGOPTIONS='-c client_min_messages=warning' "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }

if [ ! -f "$PGDIR/.initialized" ]; then
	log "creating database pollgate with the schema and demo data"
	psql_db -d postgres -c 'DROP DATABASE IF EXISTS pollgate' >/dev/null
	psql_db -d postgres -c 'CREATE DATABASE pollgate' >/dev/null
	psql_db -d pollgate -f db/schema.sql >/dev/null
	for m in db/migrations/*.sql; do
		psql_db -d pollgate -f "$m" >/dev/null
	done
	psql_db -d pollgate -f db/demo.sql >/dev/null
	touch "$PGDIR/.initialized"
else
	for m in db/migrations/*.sql; do
		psql_db -d pollgate -f "$m" >/dev/null
	done
fi

# -- the gateway

[ -x "$GW_BIN" ] || die "$GW_BIN is not built yet: run make (or make run, which builds it)"

cat >"$VAR/pollgate.conf" <<EOF
# written by scripts/run.sh (rewritten every run)
listen = $HTTP_HOST:$HTTP_PORT
database = postgresql://postgres@127.0.0.1:$PG_PORT/pollgate
log_level = info
# the demo page (web/, served on $WEB) reads answers with credentials
cors_origins = $WEB http://localhost:$WEB_PORT
EOF

[ -f "$VAR/pollgate.log" ] && mv -f "$VAR/pollgate.log" "$VAR/pollgate.log.1" # the previous run's, kept once
log "starting the gateway on $BASE (log: var/pollgate.log)"
# setsid: a terminal Ctrl-C reaches only this script, which then stops everything in order.
setsid "$GW_BIN" -c "$VAR/pollgate.conf" >>"$VAR/pollgate.log" 2>&1 </dev/null &
GW_PID=$!

ready=0
for _ in $(seq 1 150); do
	if ! kill -0 "$GW_PID" 2>/dev/null; then
		break
	fi
	if curl -fsS -o /dev/null --max-time 1 "$BASE/readyz" 2>/dev/null; then
		ready=1
		break
	fi
	sleep 0.1
done
if [ $ready -eq 0 ]; then
	if kill -0 "$GW_PID" 2>/dev/null; then
		log "the gateway did not become ready within 15 s; last lines of var/pollgate.log:"
	else
		log "the gateway exited; last lines of var/pollgate.log:"
	fi
	tail -n 30 "$VAR/pollgate.log" >&2 || true
	exit 1
fi

# -- the demo page, the simulator and the banner

# web/ as it is: the page and pollgate.js are plain files, no build step.
[ -f "$VAR/web.log" ] && mv -f "$VAR/web.log" "$VAR/web.log.1"
setsid /usr/bin/python3 -m http.server "$WEB_PORT" --bind "$HTTP_HOST" --directory "$ROOT/web" \
	>>"$VAR/web.log" 2>&1 </dev/null &
WEB_PID=$!

# The page follows one run: the active one with the most of its life ahead (run 42 on a fresh cluster).
RUN_ID=$(psql_db -d pollgate -A -t -c "SELECT id FROM operation_runs WHERE status IN ('queued', 'running')
	ORDER BY status = 'queued' DESC, id DESC LIMIT 1" 2>/dev/null || true)
RUN_ID=${RUN_ID:-42}
PAGE="$WEB/?api=$BASE&token=demo-alice&run=$RUN_ID&tenant=7"

setsid /usr/bin/python3 "$ROOT/scripts/simulate.py" "$DSN" </dev/null &
SIM_PID=$!

for _ in $(seq 1 50); do
	curl -fsS -o /dev/null --max-time 1 "$WEB/pollgate.js" 2>/dev/null && break
	kill -0 "$WEB_PID" 2>/dev/null || die "the static server for web/ exited; see var/web.log"
	sleep 0.1
done

cat <<EOF

  pollgate is up on $BASE  (PostgreSQL on 127.0.0.1:$PG_PORT, data in var/pg)

  demo page (run $RUN_ID and tenant 7's review pack, live; open it in two tabs too):
    $PAGE

  tokens: demo-alice (tenants 7, 8; review packs)   demo-bob (tenant 7 runs only)   demo-eve (other workspace)

  # a run, held up to 25 s until it changes:
  curl -si -H 'Authorization: Bearer demo-alice' '$BASE/v1/runs/$RUN_ID?wait=25'

  # pass the ETag back: answered when the run moves on (or 304 after 25 s)
  ETAG=\$(curl -s -o /dev/null -D - -H 'Authorization: Bearer demo-alice' '$BASE/v1/runs/$RUN_ID?wait=0' | tr -d '\\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
  curl -si -H 'Authorization: Bearer demo-alice' -H "If-None-Match: \$ETAG" '$BASE/v1/runs/$RUN_ID?wait=25'

  # tenant 7's latest review pack (bob gets 404: no review_packs.view)
  curl -si -H 'Authorization: Bearer demo-alice' '$BASE/v1/tenants/7/review-pack?wait=25'

  psql:     psql -h 127.0.0.1 -p $PG_PORT -U postgres pollgate
  metrics:  curl -s $BASE/metrics        gateway log: tail -f var/pollgate.log

  Ctrl-C stops the simulator, the gateway and PostgreSQL.

EOF

# Until Ctrl-C (the trap cleans up), or until the gateway or the simulator dies.
set +e
wait -n "$GW_PID" "$SIM_PID"
rc=$?
set -e
if ! kill -0 "$GW_PID" 2>/dev/null; then
	log "the gateway exited ($rc); last lines of var/pollgate.log:"
	tail -n 30 "$VAR/pollgate.log" >&2 || true
else
	log "the simulator exited ($rc)"
fi
exit 1
