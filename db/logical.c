/*
 * db/logical.c — the logical-decoding hint source (see db/logical.h).
 *
 * It owns two connections and one state machine (enum lg_state, changed only through lg_set_state). A
 * round starts with an ordinary connection (application_name + "-check"): one query checks what the
 * server offers (wal_level, the role's REPLICATION, the publication, free walsenders and slots, the
 * mapping table), a second reads pollgate_hint_map; that connection then stays open for the visibility
 * checks (db/logical-visible.c) and its failure ends the round like the stream's. Then the replication connection:
 * CREATE_REPLICATION_SLOT (temporary, pgoutput, no snapshot), START_REPLICATION, and the CopyBoth stream,
 * read with PQgetCopyData(async) and written with PQputCopyData, both non-blocking. One non-persistent
 * event on PQsocket() drives the protocol; one timer follows the state (backoff while down, the handshake
 * deadline while connecting, the status/heartbeat tick while up).
 *
 * The stream's bytes are decoded by db/pgoutput.c (XLogData 'w' carrying pgoutput messages, primary
 * keepalives 'k'; every read bounded by the message length), and anything malformed drops the connection;
 * db/logical-hints.c turns the decoded changes into hints (kept per transaction as (kind, key) pairs,
 * bounded by TX_HINTS_MAX, deduplicated when handed over). The state both files touch is in
 * db/logical-internal.h.
 *
 * Replication commands take no bind parameters: the slot name is made here from digits and hex, and
 * the publication name is validated as a plain identifier, which keeps the statement text fixed.
 */
#include "db/logical.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "common/log.h"
#include "db/conn-internal.h"
#include "db/hints.h"
#include "db/logical-internal.h"
#include "db/pgoutput.h"

#define STATUS_MIN_MS 1000    /* status updates after commits: at most one per this */
#define STATUS_MAX_MS 10000   /* and at least one per this (or per heartbeat, when shorter) */
#define SLOT_TIMEOUT_MS 60000 /* creating a slot waits for the transactions open at that moment */
#define PG_EPOCH_OFFSET_US 946684800000000LL /* 2000-01-01 in Unix microseconds */


static const char SQL_CHECK[] =
	"SELECT current_setting('wal_level'),"
	" coalesce((SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), false),"
	" EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1),"
	" current_setting('max_wal_senders')::int,"
	" (SELECT count(*) FROM pg_stat_replication)::int,"
	" current_setting('max_replication_slots')::int,"
	" (SELECT count(*) FROM pg_replication_slots)::int,"
	" to_regclass('pollgate_hint_map') IS NOT NULL,"
	" current_user";
static const char SQL_MAP[] =
	"SELECT m.relid::oid, m.kind, coalesce(m.key_column::text, '') FROM pollgate_hint_map m";

static const char *lg_state_name(enum lg_state s)
{
	switch (s) {
	case LG_DOWN: return "down";
	case LG_PRECONNECT: return "preconnect";
	case LG_CHECKING: return "checking";
	case LG_MAPPING: return "mapping";
	case LG_CONNECTING: return "connecting";
	case LG_SLOT: return "slot";
	case LG_STARTING: return "starting";
	case LG_UP: return "up";
	case LG_FATAL: return "fatal";
	}
	return "?";
}

static void lg_set_state(db_logical *l, enum lg_state s)
{
	if (l->state == s) return;
	log_debug("db logical state from=%s to=%s", lg_state_name(l->state), lg_state_name(s));
	l->state = s;
}

int64_t db_lg_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool ident_valid(const char *s)
{
	size_t n = 0;
	if (s == NULL || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return false;
	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_')) return false;
	return n <= IDENT_MAX;
}

static int kind_of(const char *s)
{
	for (int k = 0; k < DB_HINT_KINDS; k++)
		if (strcmp(s, db_hint_kind_name(k)) == 0) return k;
	return -1;
}

/* Drop the connection and everything tied to it; the caller sets the next state. */
static void lg_close(db_logical *l)
{
	db_conn_io_disarm(&l->io);
	evtimer_del(l->timer);
	if (l->res) PQclear(l->res);
	l->res = NULL;
	if (l->pg) PQfinish(l->pg);
	l->pg = NULL;
	l->busy = l->flushing = false;
	l->in_tx = false;
	db_lg_bucket_clear(&l->tx);
	db_lg_bucket_clear(&l->pend);
	db_lg_bucket_clear(&l->chk);
	if (l->aux) {
		db_conn_io_disarm(&l->aux_io);
		if (l->aux_res) PQclear(l->aux_res);
		l->aux_res = NULL;
		PQfinish(l->aux);
		l->aux = NULL;
	}
	l->aux_busy = l->aux_flushing = false;
	if (l->aux_timer) evtimer_del(l->aux_timer);
	l->vis_delay_ms = 0;
	l->reply_asked = l->heard_since_ask = l->status_due = false;
	db_lg_rels_clear(l);
}

void db_lg_down(db_logical *l, const char *why)
{
	char reason[512], safe[512];
	bool was_up = l->state == LG_UP;

	snprintf(reason, sizeof reason, "%s", why);
	snprintf(safe, sizeof safe, "%s", reason);
	db_conn_log_safe(safe);
	lg_close(l);
	int64_t delay = db_conn_backoff_ms(&l->rng, l->reconnect_min_ms, l->reconnect_max_ms, l->attempt);
	if (l->attempt < 64) l->attempt++;
	lg_set_state(l, LG_DOWN);
	if (was_up) log_warn("db logical down reason=\"%s\" retry_ms=%lld", safe, (long long)delay);
	else log_warn("db logical connect failed attempt=%u reason=\"%s\" retry_ms=%lld", l->attempt, safe, (long long)delay);
	if (db_conn_timer_ms(l->timer, delay) != 0) log_error("db logical cannot arm reconnect timer");
	if (was_up) {
		l->stats.errors++;
		if (l->on_down) l->on_down(l->arg, reason);
	}
}

/* Refused for good: close now, report from the timer (the last thing that callback does). */
static void lg_fatal(db_logical *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lg_fatal(db_logical *l, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(l->fatal_why, sizeof l->fatal_why, fmt, ap);
	va_end(ap);
	db_conn_log_safe(l->fatal_why);
	lg_close(l);
	lg_set_state(l, LG_FATAL);
	if (db_conn_timer_ms(l->timer, 0) != 0) log_error("db logical cannot arm timer");
}

/* Arm the socket event for reading, and writing while output is left. Returns false after going down. */
static bool lg_arm(db_logical *l)
{
	if (db_conn_io_arm(&l->io, l->pg, EV_READ | (l->flushing ? EV_WRITE : 0)) != 0) {
		db_lg_down(l, "cannot watch connection socket");
		return false;
	}
	return true;
}

/* Send one statement: with parameters on the ordinary connection, as a simple query on the replication
 * connection (a walsender speaks only the simple protocol). Returns false after going down. */
static bool lg_send(db_logical *l, const char *sql, int nparams, const char *const *params, bool simple)
{
	char why[256];

	db_conn_io_disarm(&l->io);
	if (simple ? !PQsendQuery(l->pg, sql) : !PQsendQueryParams(l->pg, sql, nparams, NULL, params, NULL, NULL, 0))
		goto err;
	l->busy = true;
	int r = PQflush(l->pg);
	if (r < 0) goto err;
	l->flushing = r == 1;
	return lg_arm(l);

err:
	db_conn_error(why, sizeof why, l->pg, &l->tag);
	db_lg_down(l, why);
	return false;
}

static bool lg_start_conn(db_logical *l, bool replication, enum lg_state next)
{
	char why[256];

	l->pg = replication ? db_conn_start_replication(l->conninfo, l->application_name, &l->tag, why, sizeof why)
	                    : db_conn_start(l->conninfo, l->check_name, &l->tag, why, sizeof why);
	if (l->pg == NULL) {
		db_lg_down(l, why);
		return false;
	}
	lg_set_state(l, next);
	if (l->connect_timeout_ms > 0 && db_conn_timer_ms(l->timer, l->connect_timeout_ms) != 0) {
		db_lg_down(l, "cannot arm connect timer");
		return false;
	}
	if (db_conn_io_arm(&l->io, l->pg, EV_WRITE) != 0) {
		db_lg_down(l, "connection has no socket");
		return false;
	}
	return true;
}

/* ---- standby status updates ---- */

/* Tell the server how far we are. Returns false after going down. */
static bool lg_status(db_logical *l, bool ask_reply)
{
	unsigned char msg[DB_PGO_STATUS_LEN];
	struct timeval tv;
	char why[256];

	gettimeofday(&tv, NULL);
	int64_t now_us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec - PG_EPOCH_OFFSET_US;
	db_pgo_status(msg, l->flushed, now_us, ask_reply);
	int r = PQputCopyData(l->pg, (const char *)msg, (int)sizeof msg);
	if (r < 0) goto err;
	if (r == 0) return true; /* libpq's buffer is full: the next tick sends a newer one */
	r = PQflush(l->pg);
	if (r < 0) goto err;
	l->flushing = r == 1;
	l->last_status_ms = db_lg_mono_ms();
	l->status_due = false;
	l->stats.flushed_lsn = l->flushed;
	return true;

err:
	db_conn_error(why, sizeof why, l->pg, &l->tag);
	db_lg_down(l, why);
	return false;
}

/* ---- the stream: decoded by db/pgoutput.c, turned into hints by db/logical-hints.c ---- */

/* A commit: its hints wait for the visibility check (a transaction without one needs none). */
static bool tx_commit(db_logical *l)
{
	l->stats.transactions++;
	if (l->tx.n == 0 && !l->tx.resync && !l->tx.access_all) return true;
	db_lg_bucket_merge(&l->pend, &l->tx, true, l->tx_xid);
	return l->aux_busy ? true : db_lg_check_send(l);
}

/* One pgoutput message (the payload of an XLogData). Returns false when it is malformed. */
static bool on_pgoutput(db_logical *l, const unsigned char *buf, size_t len)
{
	db_pgo_msg m;

	if (db_pgo_msg_parse(buf, len, &m) < 0) return false;
	switch (m.type) {
	case 'B':
		l->tx_xid = m.xid;
		l->in_tx = true;
		db_lg_bucket_clear(&l->tx);
		break;
	case 'C':
		l->in_tx = false;
		if (m.lsn > l->flushed) l->flushed = m.lsn;
		l->status_due = true;
		if (!tx_commit(l)) return true; /* gone down: the caller sees the state */
		break;
	case 'R':
		return db_lg_on_relation(l, &m);
	case 'I':
	case 'U':
	case 'D':
		db_lg_on_change(l, &m);
		break;
	case 'T':
		db_lg_on_truncate(l, &m);
		break;
	default: /* Origin, Type, Message, and whatever a later protocol adds: nothing to hint */
		break;
	}
	return true;
}

/* One CopyData message from the server. Returns false after going down. */
static bool on_copy(db_logical *l, const char *buf, int len)
{
	db_pgo_copy c;
	int rc = db_pgo_copy_parse(buf, len > 0 ? (size_t)len : 0, &c);

	l->stats.messages++;
	l->heard_since_ask = true;
	if (c.type == 'w') {
		if (rc == 0 && c.wal_end > l->server_end) l->server_end = c.wal_end;
		if (rc < 0 || !on_pgoutput(l, c.data, c.len)) {
			db_lg_down(l, "malformed logical replication message");
			return false;
		}
		if (l->state != LG_UP) return false;
	} else if (c.type == 'k') {
		if (rc < 0) {
			db_lg_down(l, "malformed keepalive");
			return false;
		}
		if (c.wal_end > l->server_end) l->server_end = c.wal_end;
		/* Between transactions everything the server sent up to `end` has been handed over. */
		if (!l->in_tx && c.wal_end > l->flushed) l->flushed = c.wal_end;
		if (c.reply) return lg_status(l, false);
	} else {
		log_debug("db logical ignored copy message type=0x%02x", (unsigned char)c.type);
	}
	if (l->status_due && db_lg_mono_ms() - l->last_status_ms >= STATUS_MIN_MS) return lg_status(l, false);
	return true;
}

/* The periodic status update, which asks for a reply: the heartbeat, at most STATUS_MAX_MS. */
static int64_t lg_tick_ms(const db_logical *l)
{
	return l->heartbeat_ms < STATUS_MAX_MS ? l->heartbeat_ms : STATUS_MAX_MS;
}

static void lg_became_up(db_logical *l)
{
	evtimer_del(l->timer);
	if (l->ever_up) l->stats.reconnects++;
	l->ever_up = true;
	l->attempt = 0;
	l->last_status_ms = db_lg_mono_ms();
	lg_set_state(l, LG_UP);
	if (db_conn_timer_ms(l->timer, lg_tick_ms(l)) != 0) {
		db_lg_down(l, "cannot arm status timer");
		return;
	}
	log_info("db logical up slot=%s publication=%s mapped_run=%d mapped_review_pack=%d mapped_access=%d", l->slot,
	         l->publication, l->mapped[DB_HINT_RUN], l->mapped[DB_HINT_REVIEW_PACK], l->mapped[DB_HINT_ACCESS]);
	if (l->on_up) l->on_up(l->arg);
}

static bool col_true(const PGresult *res, int c)
{
	return strcmp(PQgetvalue(res, 0, c), "t") == 0;
}

/* SQL_CHECK answered: refuse for good what an operator must fix, retry what may free up. */
static void on_checked(db_logical *l, const PGresult *res)
{
	const char *wal = PQgetvalue(res, 0, 0);
	const char *user = PQgetvalue(res, 0, 8);
	long senders = strtol(PQgetvalue(res, 0, 3), NULL, 10), used_senders = strtol(PQgetvalue(res, 0, 4), NULL, 10);
	long slots = strtol(PQgetvalue(res, 0, 5), NULL, 10), used_slots = strtol(PQgetvalue(res, 0, 6), NULL, 10);
	char why[512];

	if (strcmp(wal, "logical") != 0) {
		lg_fatal(l, "hint_source = logical needs wal_level = logical on the server (it is %s): set wal_level = "
		         "logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL, "
		         "or use hint_source = notify", wal);
		return;
	}
	if (!col_true(res, 1)) {
		lg_fatal(l, "hint_source = logical needs a role with REPLICATION; role %s has none: ALTER ROLE %s "
		         "REPLICATION (or psql -v logical=1 -f db/grant.sql), or use hint_source = notify", user, user);
		return;
	}
	if (!col_true(res, 2)) {
		lg_fatal(l, "hint_source = logical needs the publication %s, which this database does not have: apply "
		         "db/migrations (000_logical.sql creates it), or use hint_source = notify", l->publication);
		return;
	}
	if (!col_true(res, 7)) {
		lg_fatal(l, "hint_source = logical needs the table pollgate_hint_map, which is not on the search_path: "
		         "apply db/migrations (000_logical.sql) and grant SELECT on it (db/grant.sql)");
		return;
	}
	if (used_senders >= senders) {
		snprintf(why, sizeof why, "no walsender free (max_wal_senders = %ld, %ld in use): raise max_wal_senders "
		         "(one per gateway process with hint_source = logical) and restart PostgreSQL", senders, used_senders);
		log_error("db logical refused reason=\"%s\"", why);
		db_lg_down(l, why);
		return;
	}
	if (used_slots >= slots) {
		snprintf(why, sizeof why, "no replication slot free (max_replication_slots = %ld, %ld in use): raise "
		         "max_replication_slots (one per gateway process with hint_source = logical) and restart "
		         "PostgreSQL, or drop unused slots", slots, used_slots);
		log_error("db logical refused reason=\"%s\"", why);
		db_lg_down(l, why);
		return;
	}
	lg_set_state(l, LG_MAPPING);
	lg_send(l, SQL_MAP, 0, NULL, false);
}

/* SQL_MAP answered: keep the rows whose kind we know. Returns false after going down. */
static bool on_mapped(db_logical *l, const PGresult *res)
{
	int n = PQntuples(res);
	lg_map *m = n > 0 ? calloc((size_t)n, sizeof *m) : NULL;
	int k = 0;

	if (n > 0 && m == NULL) {
		db_lg_down(l, "out of memory");
		return false;
	}
	for (int i = 0; i < DB_HINT_KINDS; i++) l->mapped[i] = 0;
	for (int i = 0; i < n; i++) {
		int kind = kind_of(PQgetvalue(res, i, 1));
		const char *key = PQgetvalue(res, i, 2);
		if (kind < 0 || strlen(key) > IDENT_MAX) {
			log_warn("db logical ignored a pollgate_hint_map row kind=\"%.20s\"", PQgetvalue(res, i, 1));
			continue;
		}
		m[k].relid = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
		m[k].kind = kind;
		snprintf(m[k].key, sizeof m[k].key, "%s", key);
		l->mapped[kind]++;
		k++;
	}
	free(l->map);
	l->map = m;
	l->n_map = k;
	for (int i = 0; i < DB_HINT_KINDS; i++)
		if (l->mapped[i] == 0)
			log_warn("db logical no table mapped kind=%s hint=\"changes of this kind reach held requests only "
			         "through the safety net: SELECT pollgate_attach_logical('<table>', '%s', '<key column>')\"",
			         db_hint_kind_name(i), db_hint_kind_name(i));
	return true;
}

/* The statement in flight has all its results (`res` is its first, owned here). */
static void lg_complete(db_logical *l, PGresult *res)
{
	char why[512];
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	switch (l->state) {
	case LG_CHECKING:
		if (st != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) != 9) break;
		on_checked(l, res);
		PQclear(res);
		return;
	case LG_MAPPING:
		if (st != PGRES_TUPLES_OK || PQnfields(res) != 3) break;
		if (!on_mapped(l, res)) {
			PQclear(res);
			return;
		}
		PQclear(res);
		/* The ordinary connection stays, for the visibility checks; the replication one opens. */
		db_conn_io_disarm(&l->io);
		evtimer_del(l->timer);
		l->aux = l->pg;
		l->pg = NULL;
		l->busy = l->flushing = false;
		if (db_conn_io_arm(&l->aux_io, l->aux, EV_READ) != 0) { /* a FATAL while idle ends the session */
			db_lg_down(l, "cannot watch the check connection's socket");
			return;
		}
		lg_start_conn(l, true, LG_CONNECTING);
		return;
	case LG_SLOT:
		if (st != PGRES_TUPLES_OK) {
			const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			if (code && strcmp(code, "53400") == 0) {
				snprintf(why, sizeof why, "no replication slot free (max_replication_slots): raise "
				         "max_replication_slots (one per gateway process with hint_source = logical) and restart "
				         "PostgreSQL, or drop unused slots");
				log_error("db logical refused reason=\"%s\"", why);
				PQclear(res);
				db_lg_down(l, why);
				return;
			}
			break;
		}
		PQclear(res);
		lg_set_state(l, LG_STARTING);
		evtimer_del(l->timer);
		if (l->connect_timeout_ms > 0 && db_conn_timer_ms(l->timer, l->connect_timeout_ms) != 0) {
			db_lg_down(l, "cannot arm connect timer");
			return;
		}
		lg_send(l, l->start_sql, 0, NULL, true);
		return;
	default:
		break;
	}
	db_conn_result_error(why, sizeof why, res);
	if (res) PQclear(res);
	db_lg_down(l, why);
}

static bool lg_send_slot(db_logical *l)
{
	char sql[160];
	static const char fmt[] = "START_REPLICATION SLOT \"%s\" LOGICAL 0/0 (proto_version '1', publication_names '%s')";

	/* A new name each time: the previous session's walsender may not have gone yet. */
	uint64_t x = l->rng; /* xorshift64: distinct names, nothing more */
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	l->rng = x;
	snprintf(l->slot, sizeof l->slot, "pollgate_%ld_%u_%08x", (long)getpid(), ++l->sessions,
	         (unsigned)(x >> 32));
	size_t n = strlen(fmt) + strlen(l->slot) + strlen(l->publication) + 1;
	free(l->start_sql);
	l->start_sql = malloc(n);
	if (l->start_sql == NULL) {
		db_lg_down(l, "out of memory");
		return false;
	}
	snprintf(l->start_sql, n, fmt, l->slot, l->publication);
	snprintf(sql, sizeof sql, "CREATE_REPLICATION_SLOT \"%s\" TEMPORARY LOGICAL pgoutput NOEXPORT_SNAPSHOT", l->slot);
	lg_set_state(l, LG_SLOT);
	evtimer_del(l->timer);
	int64_t t = l->connect_timeout_ms > SLOT_TIMEOUT_MS ? l->connect_timeout_ms : SLOT_TIMEOUT_MS;
	if (db_conn_timer_ms(l->timer, t) != 0) {
		db_lg_down(l, "cannot arm slot timer");
		return false;
	}
	return lg_send(l, sql, 0, NULL, true);
}

/* Streaming: read every complete message, answer what needs answering. */
static void lg_stream(db_logical *l, short what)
{
	char why[512];

	if (l->flushing) {
		int r = PQflush(l->pg);
		if (r < 0) goto broken;
		l->flushing = r == 1;
	}
	if ((what & EV_READ) && !PQconsumeInput(l->pg)) goto broken;
	for (;;) {
		char *buf = NULL;
		int n = PQgetCopyData(l->pg, &buf, 1);
		if (n > 0) {
			bool ok = on_copy(l, buf, n);
			PQfreemem(buf);
			if (!ok || l->state != LG_UP) return;
			continue;
		}
		if (n == 0) break;
		if (n == -1) {
			/* The server ended the stream: its result says why. */
			PGresult *res = PQgetResult(l->pg);
			if (res && PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_COPY_BOTH)
				db_conn_result_error(why, sizeof why, res);
			else db_conn_error(why, sizeof why, l->pg, &l->tag);
			if (res) PQclear(res);
			if (l->tag.fatal[0]) snprintf(why, sizeof why, "%s", l->tag.fatal);
			db_lg_down(l, why);
			return;
		}
		goto broken;
	}
	lg_arm(l);
	return;

broken:
	db_conn_error(why, sizeof why, l->pg, &l->tag);
	db_lg_down(l, why);
}

static void lg_io_cb(evutil_socket_t fd, short what, void *arg)
{
	db_logical *l = arg;
	char why[512];
	(void)fd;

	if (l->pg == NULL) return; /* stale */
	if (l->state == LG_PRECONNECT || l->state == LG_CONNECTING) {
		short want = 0;
		int r = db_conn_poll(l->pg, &want);
		if (r < 0) {
			db_conn_error(why, sizeof why, l->pg, &l->tag);
			db_lg_down(l, why);
		} else if (r == 0) {
			if (db_conn_io_arm(&l->io, l->pg, want) != 0) db_lg_down(l, "connection has no socket");
		} else if (l->state == LG_PRECONNECT) {
			const char *params[1] = {l->publication};
			lg_set_state(l, LG_CHECKING);
			lg_send(l, SQL_CHECK, 1, params, false);
		} else {
			lg_send_slot(l);
		}
		return;
	}
	if (l->state == LG_UP) {
		lg_stream(l, what);
		return;
	}

	if (l->flushing) {
		int r = PQflush(l->pg);
		if (r < 0) goto broken;
		l->flushing = r == 1;
	}
	if ((what & EV_READ) && !PQconsumeInput(l->pg)) goto broken;
	while (l->busy && l->pg && !PQisBusy(l->pg)) {
		PGresult *r = PQgetResult(l->pg);
		if (r != NULL && PQresultStatus(r) == PGRES_COPY_BOTH && l->state == LG_STARTING) {
			/* START_REPLICATION answered: the stream is open (libpq returns this result, not NULL). */
			PQclear(r);
			l->busy = false;
			lg_became_up(l);
			if (l->pg && l->state == LG_UP) lg_stream(l, 0); /* data may have come with the answer */
			return;
		}
		if (r != NULL) {
			if (l->res == NULL) l->res = r;
			else PQclear(r);
			continue;
		}
		PGresult *first = l->res;
		l->res = NULL;
		l->busy = false;
		lg_complete(l, first);
		/* It may have sent the next statement, gone down, gone fatal, or opened the replication
		 * connection (which waits for its own first event). */
		if (l->pg == NULL || l->state == LG_CONNECTING) return;
	}
	if (l->pg == NULL) return;
	if (PQstatus(l->pg) == CONNECTION_BAD) goto broken;
	lg_arm(l);
	return;

broken:
	db_conn_error(why, sizeof why, l->pg, &l->tag);
	db_lg_down(l, why);
}

static void lg_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	db_logical *l = arg;
	(void)fd;
	(void)what;

	switch (l->state) {
	case LG_DOWN:
		lg_start_conn(l, false, LG_PRECONNECT);
		return;
	case LG_PRECONNECT:
	case LG_CHECKING:
	case LG_MAPPING:
	case LG_CONNECTING:
	case LG_STARTING:
		db_lg_down(l, "connect timed out");
		return;
	case LG_SLOT:
		db_lg_down(l, "creating the replication slot timed out: it waits for every transaction open when it "
		           "started (a long or idle-in-transaction session delays it)");
		return;
	case LG_UP:
		/* The last tick asked for a reply; nothing at all came since: the link is dead. */
		if (l->reply_asked && !l->heard_since_ask) {
			db_lg_down(l, "heartbeat timed out");
			return;
		}
		if (l->aux_busy && db_lg_mono_ms() - l->aux_sent_ms > l->heartbeat_ms) {
			db_lg_down(l, "visibility check timed out");
			return;
		}
		if (!lg_status(l, true)) return;
		l->reply_asked = true;
		l->heard_since_ask = false;
		if (!lg_arm(l)) return;
		if (db_conn_timer_ms(l->timer, lg_tick_ms(l)) != 0) db_lg_down(l, "cannot arm status timer");
		return;
	case LG_FATAL:
		log_error("db logical refused reason=\"%s\"", l->fatal_why);
		if (l->on_fatal) l->on_fatal(l->arg, l->fatal_why);
		return;
	}
}

db_logical *db_logical_new(struct event_base *base, const db_logical_opts *opts)
{
	db_logical *l = NULL;

	if (base == NULL || opts == NULL || !ident_valid(opts->publication)) {
		log_error("db logical refused: invalid options (the publication must be a plain identifier)");
		goto err;
	}
	l = calloc(1, sizeof *l);
	if (l == NULL) goto err;
	l->base = base;
	l->io.fd = -1;
	l->tag.who = "logical";
	l->tag.id = -1;
	l->state = LG_DOWN;
	l->connect_timeout_ms = opts->connect_timeout_ms;
	l->reconnect_min_ms = opts->reconnect_min_ms > 0 ? opts->reconnect_min_ms : 1;
	l->reconnect_max_ms = opts->reconnect_max_ms > l->reconnect_min_ms ? opts->reconnect_max_ms : l->reconnect_min_ms;
	l->heartbeat_ms = opts->heartbeat_ms > 0 ? opts->heartbeat_ms : STATUS_MAX_MS;
	l->on_notify = opts->on_notify;
	l->on_resync = opts->on_resync;
	l->on_up = opts->on_up;
	l->on_down = opts->on_down;
	l->on_fatal = opts->on_fatal;
	l->arg = opts->arg;
	l->rng = db_conn_rng_seed(l);
	for (int i = 0; i < DB_HINT_KINDS; i++) l->mapped[i] = -1;

	l->conninfo = strdup(opts->conninfo ? opts->conninfo : "");
	l->publication = strdup(opts->publication);
	if (l->conninfo == NULL || l->publication == NULL) goto err;
	if (opts->application_name) {
		l->application_name = strdup(opts->application_name);
		if (l->application_name == NULL) goto err;
	}
	{
		const char *an = opts->application_name && opts->application_name[0] ? opts->application_name : "pollgate-logical";
		size_t n = strlen(an) + sizeof "-check";
		l->check_name = malloc(n);
		if (l->check_name == NULL) goto err;
		snprintf(l->check_name, n, "%s-check", an);
	}
	if (db_conn_io_init(&l->io, base, lg_io_cb, l) != 0 || db_conn_io_init(&l->aux_io, base, db_lg_aux_io_cb, l) != 0)
		goto err;
	l->timer = evtimer_new(base, lg_timer_cb, l);
	l->aux_timer = evtimer_new(base, db_lg_aux_timer_cb, l);
	if (l->timer == NULL || l->aux_timer == NULL) goto err;
	if (db_conn_timer_ms(l->timer, 0) != 0) goto err; /* connect from the loop */
	return l;

err:
	db_logical_free(l);
	return NULL;
}

void db_logical_free(db_logical *l)
{
	if (l == NULL) return;
	db_conn_io_free(&l->io);
	if (l->timer) event_free(l->timer);
	if (l->aux_timer) event_free(l->aux_timer);
	if (l->res) PQclear(l->res);
	if (l->pg) PQfinish(l->pg);
	db_lg_rels_clear(l);
	free(l->rels);
	db_lg_bucket_free(&l->tx);
	db_lg_bucket_free(&l->pend);
	db_lg_bucket_free(&l->chk);
	if (l->aux_res) PQclear(l->aux_res);
	if (l->aux) PQfinish(l->aux);
	db_conn_io_free(&l->aux_io);
	free(l->check_name);
	free(l->map);
	free(l->start_sql);
	free(l->application_name);
	free(l->publication);
	free(l->conninfo);
	free(l);
}

bool db_logical_is_up(const db_logical *l)
{
	return l && l->state == LG_UP;
}

void db_logical_get_stats(const db_logical *l, db_logical_stats *out)
{
	if (out == NULL) return;
	if (l == NULL) {
		memset(out, 0, sizeof *out);
		return;
	}
	*out = l->stats;
	out->lag_bytes = l->flushed > 0 && l->server_end > l->flushed ? l->server_end - l->flushed : 0;
}

int db_logical_mapped(const db_logical *l, int kind)
{
	if (l == NULL || kind < 0 || kind >= DB_HINT_KINDS) return -1;
	return l->mapped[kind];
}
