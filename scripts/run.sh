#!/usr/bin/env bash
# scripts/run.sh — `make run`: the whole thing on this machine, from nothing but the checkout.
#
# Everything lives under ./var/ (gitignored; POLLGATE_RUN_DIR=DIR puts it elsewhere):
#   var/pg/data        a PostgreSQL 15 cluster on 127.0.0.1:$PG_PORT (created on the first run, reused after)
#   var/pg/postgres.log
#   var/pollgate.conf  the gateway's config (rewritten every run)
#   var/pollgate.log   the gateway's output
#   var/simulator.log  what the simulator changed (one line per change)
#   var/web.log        the static server's output (web/ on 127.0.0.1:$WEB_PORT: the demo page and pollgate.js)
# First run: initdb, database `pollgate`, db/schema.sql, db/migrations/*.sql, db/demo.sql. Later runs
# start the cluster and apply the (idempotent) migrations again. Then ./pollgate on 127.0.0.1:$HTTP_PORT
# (with the demo page's origin in cors_origins), a static server for web/ on 127.0.0.1:$WEB_PORT, and
# scripts/simulate.py, which keeps the demo runs and review packs moving; run 42 is its slow one, running
# for DEMO_MINUTES (20) minutes from the start, so the banner's curls find it moving.
#
# Ports: HTTP_PORT (8080), WEB_PORT (8081), PG_PORT (54329), e.g. `HTTP_PORT=9080 make run`.
#
# Stopping: Ctrl-C, SIGTERM to this script or to its process group (`make run`'s) all stop everything it
# started, in order: simulator, static server, gateway (drained), PostgreSQL (pg_ctl stop). The children
# run in their own sessions, so only this script's cleanup stops them; the cleanup ignores further signals
# (make forwards a second SIGTERM to its child), kills by recorded pid, and sweeps any child of this script
# that a signal caught between its start and the recording of its pid.
# As root, PostgreSQL runs as the `postgres` user (initdb refuses root).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
VAR=${POLLGATE_RUN_DIR:-$ROOT/var}
V=${VAR#"$ROOT"/} # how messages name it: var, unless POLLGATE_RUN_DIR put it elsewhere
PGBIN=${POLLGATE_PG_BINDIR:-/usr/lib/postgresql/15/bin}
PG_PORT=${PG_PORT:-54329}
HTTP_HOST=127.0.0.1
HTTP_PORT=${HTTP_PORT:-8080}
BASE=http://$HTTP_HOST:$HTTP_PORT
WEB_PORT=${WEB_PORT:-8081}
WEB=http://$HTTP_HOST:$WEB_PORT
DEMO_RUN=42                        # db/demo.sql's run, kept running slowly by the simulator
DEMO_MINUTES=${DEMO_MINUTES:-20}   # for this long from the start
DSN="host=127.0.0.1 port=$PG_PORT dbname=pollgate user=postgres"
GW_BIN=${POLLGATE_BIN:-$ROOT/pollgate} # e.g. POLLGATE_BIN=build/san/pollgate for the sanitizer build

log() { printf 'run: %s\n' "$*"; }
die() { printf 'run: error: %s\n' "$*" >&2; exit 1; }

for v in HTTP_PORT WEB_PORT PG_PORT; do
	case ${!v} in
	'' | *[!0-9]*) die "$v must be a port number, not '${!v}'" ;;
	esac
	[ "${!v}" -ge 1 ] && [ "${!v}" -le 65535 ] || die "$v must be between 1 and 65535, not ${!v}"
done
[ "$HTTP_PORT" != "$WEB_PORT" ] && [ "$HTTP_PORT" != "$PG_PORT" ] && [ "$WEB_PORT" != "$PG_PORT" ] ||
	die "HTTP_PORT, WEB_PORT and PG_PORT must differ ($HTTP_PORT, $WEB_PORT, $PG_PORT)"
case $DEMO_MINUTES in '' | *[!0-9]* | 0) die "DEMO_MINUTES must be a whole number of minutes, at least 1" ;; esac

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
	alt=/var/tmp/pollgate-pg-$(printf '%s' "$VAR" | md5sum | cut -c1-8)
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
CLEANING=0

# True while PID runs (a child that exited but was not waited for yet is a zombie: not running).
alive() {
	local st
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# SIGTERM to PID, up to TENTHS tenths of a second for it to exit, then SIGKILL to its whole process
# group (each child is a session leader, so the group is it and anything it forked).
stop_proc() { # PID NAME TENTHS
	local pid=$1 name=$2 n=$3 i
	[ -n "$pid" ] || return 0
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < n; i++)); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			log "$name (pid $pid) did not stop within $((n / 10)) s; killing it"
			kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
		fi
	fi
	kill -KILL -- "-$pid" 2>/dev/null # anything left in its group
	wait "$pid" 2>/dev/null
	return 0
}

cleanup() {
	# Ignore further signals: a second Ctrl-C, or the SIGTERM make forwards to its child after the group's
	# own, must not cut the cleanup short and leave the gateway or PostgreSQL behind.
	trap '' INT TERM HUP
	[ $CLEANING -eq 0 ] || return 0
	CLEANING=1
	set +e
	log "stopping: the simulator, the static server, the gateway, PostgreSQL"
	stop_proc "$SIM_PID" "the simulator" 50
	stop_proc "$WEB_PID" "the static server" 50
	if [ -n "$GW_PID" ] && alive "$GW_PID"; then
		log "stopping the gateway (pid $GW_PID)"
	fi
	stop_proc "$GW_PID" "the gateway" 150
	# A child started but not yet recorded when the signal came: any child still running is stopped too.
	local p cmd
	for p in $(pgrep -P $$ 2>/dev/null); do
		cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")
		case $cmd in
		*simulate.py* | *http.server* | *pollgate.conf*) stop_proc "$p" "child $p ($cmd)" 50 ;;
		esac
	done
	if [ $PG_STARTED -eq 1 ]; then
		log "stopping PostgreSQL"
		if ! as_owner "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 30 stop >/dev/null 2>&1; then
			as_owner "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1 &&
				{ log "pg_ctl stop -m fast failed; stopping it with -m immediate (see $PGLOG)"
				  as_owner "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1; }
		fi
	fi
	log "stopped"
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap 'cleanup; exit 129' HUP
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
	# Left over from an earlier run that was killed, or one whose cleanup is still shutting it down. It may
	# listen on another port than this run's PG_PORT: stop it and start it afresh below, with this run's
	# settings, rather than guess what state it is in.
	log "PostgreSQL in $V/pg/data is still running (left over from an earlier run); restarting it"
	as_owner "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null 2>&1 ||
		as_owner "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1 ||
		die "could not stop the PostgreSQL left over in $V/pg/data; see $V/pg/postgres.log"
fi
if port_busy "$PG_PORT"; then
	die "port $PG_PORT on 127.0.0.1 is already in use by something else; find it with: ss -ltnp 'sport = :$PG_PORT'"
fi

# -- the cluster

# .cluster and .initialized mark completed steps, so a first run interrupted half-way starts over.
if [ $PG_RUNNING -eq 0 ] && [ ! -f "$PGDIR/.cluster" ]; then
	log "creating the PostgreSQL cluster in $V/pg/data"
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
	log "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: $V/pg/postgres.log)"
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
log "starting the gateway on $BASE (log: $V/pollgate.log)"
# setsid: a terminal Ctrl-C reaches only this script, which then stops everything in order.
setsid "$GW_BIN" -c "$VAR/pollgate.conf" >>"$VAR/pollgate.log" 2>&1 </dev/null &
GW_PID=$!

ready=0
for _ in $(seq 1 150); do
	if ! alive "$GW_PID"; then
		break
	fi
	if curl -fsS -o /dev/null --max-time 1 "$BASE/readyz" 2>/dev/null; then
		ready=1
		break
	fi
	sleep 0.1
done
if [ $ready -eq 0 ]; then
	if alive "$GW_PID"; then
		log "the gateway did not become ready within 15 s; last lines of $V/pollgate.log:"
	else
		log "the gateway exited; last lines of $V/pollgate.log:"
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

# The page and the curls follow the simulator's slow run: it stays running for DEMO_MINUTES.
RUN_ID=$DEMO_RUN
PAGE="$WEB/?api=$BASE&token=demo-alice&run=$RUN_ID&tenant=7"

[ -f "$VAR/simulator.log" ] && mv -f "$VAR/simulator.log" "$VAR/simulator.log.1"
setsid /usr/bin/python3 -u "$ROOT/scripts/simulate.py" "$DSN" --hold-run "$DEMO_RUN" --hold-minutes "$DEMO_MINUTES" \
	>>"$VAR/simulator.log" 2>&1 </dev/null &
SIM_PID=$!
DEMO_UNTIL=$(date -d "+$DEMO_MINUTES minutes" +%H:%M)

# The banner's curls name run $DEMO_RUN: say so only once the simulator has set it running.
for _ in $(seq 1 150); do
	st=$(psql_db -d pollgate -At -c "SELECT status FROM operation_runs WHERE id = $DEMO_RUN" 2>/dev/null || true)
	[ "$st" = running ] && break
	alive "$SIM_PID" || die "the simulator exited; see $V/simulator.log"
	sleep 0.1
done

for _ in $(seq 1 50); do
	curl -fsS -o /dev/null --max-time 1 "$WEB/pollgate.js" 2>/dev/null && break
	alive "$WEB_PID" || die "the static server for web/ exited; see $V/web.log"
	sleep 0.1
done

cat <<EOF

  pollgate is up on $BASE  (PostgreSQL on 127.0.0.1:$PG_PORT, data in $V/pg)

  demo page (run $RUN_ID and tenant 7's review pack, live; open it in two tabs too):
    $PAGE

  tokens: demo-alice (tenants 7, 8; review packs)   demo-bob (tenant 7 runs only)   demo-eve (other workspace)

  Run $RUN_ID advances one item about every 15 s and stays running for $DEMO_MINUTES minutes, until $DEMO_UNTIL;
  then it completes (its answers end with "poll": null). make run again restarts it.

  # run $RUN_ID, answered at once the first time, then held up to 25 s until it changes:
  curl -si -H 'Authorization: Bearer demo-alice' '$BASE/v1/runs/$RUN_ID?wait=25'

  # pass the ETag back: answered when the run moves on (within ~15 s), or 304 after 25 s
  ETAG=\$(curl -s -o /dev/null -D - -H 'Authorization: Bearer demo-alice' '$BASE/v1/runs/$RUN_ID?wait=0' | tr -d '\\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p')
  curl -si -H 'Authorization: Bearer demo-alice' -H "If-None-Match: \$ETAG" '$BASE/v1/runs/$RUN_ID?wait=25'

  # tenant 7's latest review pack (bob gets 404: no review_packs.view)
  curl -si -H 'Authorization: Bearer demo-alice' '$BASE/v1/tenants/7/review-pack?wait=25'

  psql:     psql -h 127.0.0.1 -p $PG_PORT -U postgres pollgate
  metrics:  curl -s $BASE/metrics
  logs:     $V/pollgate.log (gateway)  $V/simulator.log (each change it makes)  $V/web.log  $V/pg/postgres.log
            e.g. tail -f $V/simulator.log
  ports:    HTTP_PORT=$HTTP_PORT WEB_PORT=$WEB_PORT PG_PORT=$PG_PORT make run   (set them to use others)

  Ctrl-C stops the simulator, the static server, the gateway and PostgreSQL.

EOF
echo "run: ready" # a line for whatever started this script (tests/run) to wait for

# Until Ctrl-C (the trap cleans up), or until the gateway, the simulator or the static server dies.
set +e
wait -n "$GW_PID" "$SIM_PID" "$WEB_PID"
rc=$?
set -e
if ! alive "$GW_PID"; then
	log "the gateway exited ($rc); last lines of $V/pollgate.log:"
	tail -n 30 "$VAR/pollgate.log" >&2 || true
elif ! alive "$SIM_PID"; then
	log "the simulator exited ($rc); last lines of $V/simulator.log:"
	tail -n 10 "$VAR/simulator.log" >&2 || true
else
	log "the static server exited ($rc); see $V/web.log"
fi
exit 1
