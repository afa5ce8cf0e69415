/*
 * db/listen.c — the LISTEN session (see db/listen.h).
 *
 * It owns one connection and its state machine (enum lsess_state, changed only through
 * lsess_set_state): connect, check the server is not a hot standby, LISTEN on each channel one statement
 * at a time, then sit up: hand every notification to on_notify and send a heartbeat query every
 * heartbeat_ms. One non-persistent event on PQsocket() drives the protocol; one timer follows the state
 * (backoff while down, the handshake deadline while connecting, the heartbeat while up). Any failure
 * closes the connection, reports on_down if the session had been up, and reconnects with backoff and
 * jitter; a hot standby is reported through on_fatal (from its own timer callback, so it may free the
 * session) and not retried.
 *
 * With check_hints, one more step sits between the LISTENs and up: the hint-trigger count (db/hints.c),
 * whose failure as a statement is logged and passed over (the session itself is fine).
 *
 * Channel names are validated as plain lower-case identifiers and double-quoted: LISTEN takes no bind
 * parameters, so this validation is what keeps the statement text fixed.
 */
#include "db/listen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "common/log.h"
#include "db/conn-internal.h"

#define CHANNEL_MAX 63 /* NAMEDATALEN - 1: longer identifiers would be truncated by the server */

/* pg_backend_pid() is compared with the pid the connection was given at start-up: a connection pooler
 * (pgbouncer, odyssey, ...) hands its clients a key of its own, and a pooled session may run each
 * transaction on another server session, where a LISTEN is lost. */
static const char SQL_RECOVERY[] = "SELECT pg_is_in_recovery(), pg_backend_pid()";
static const char SQL_HEARTBEAT[] = "SELECT pg_notification_queue_usage()";
static const char WHY_STANDBY[] =
	"database is a hot standby (in recovery): LISTEN needs the primary; point 'database' at the primary";
static const char WHY_POOLER[] =
	"the LISTEN session goes through a connection pooler (its backend pid differs from the one the "
	"connection reported): notifications are lost when the pooler moves the session; point 'database' "
	"straight at PostgreSQL";

enum lsess_state {
	LSESS_DOWN,        /* no connection; the timer is the backoff delay */
	LSESS_CONNECTING,  /* PQconnectPoll in progress; the timer is the handshake deadline */
	LSESS_CHECKING,    /* pg_is_in_recovery() in flight; same deadline */
	LSESS_SUBSCRIBING, /* LISTEN statements in flight, one after another; same deadline */
	LSESS_HINTS,       /* the hint-trigger count in flight (check_hints); same deadline */
	LSESS_UP,          /* listening on every channel; the timer is the heartbeat */
	LSESS_FATAL,       /* refused for good (hot standby, pooler); the timer fires once to report it */
};

struct db_listen {
	struct event_base *base; /* borrowed */
	char *conninfo;          /* owned */
	char *application_name;  /* owned, may be NULL */
	char **listen_sql;       /* owned: n_channels statements `LISTEN "name"` */
	int n_channels;
	int64_t connect_timeout_ms, reconnect_min_ms, reconnect_max_ms, heartbeat_ms;
	bool check_hints;
	db_hints hints;
	void (*on_notify)(void *arg, const char *channel, const char *payload);
	void (*on_up)(void *arg);
	void (*on_down)(void *arg, const char *why);
	void (*on_fatal)(void *arg, const char *why);
	void *arg;

	enum lsess_state state;
	PGconn *pg;          /* owned; NULL while down */
	db_conn_io io;
	db_conn_tag tag;     /* notice routing and the server's last FATAL */
	struct event *timer; /* owned */
	PGresult *res;       /* owned: first result of the statement in flight */
	bool busy;           /* a statement is in flight */
	bool flushing;       /* PQflush has output left */
	bool hb_pending;     /* the last heartbeat has not been answered */
	int next_channel;    /* SUBSCRIBING: index of the LISTEN in flight */
	unsigned attempt;
	bool ever_up;
	double queue_usage;
	const char *fatal_why; /* LSESS_FATAL: why (a static string) */
	uint64_t rng;
	db_listen_stats stats;
};

static const char *lsess_state_name(enum lsess_state s)
{
	switch (s) {
	case LSESS_DOWN: return "down";
	case LSESS_CONNECTING: return "connecting";
	case LSESS_CHECKING: return "checking";
	case LSESS_SUBSCRIBING: return "subscribing";
	case LSESS_HINTS: return "hints";
	case LSESS_UP: return "up";
	case LSESS_FATAL: return "fatal";
	}
	return "?";
}

static void lsess_set_state(db_listen *l, enum lsess_state s)
{
	if (l->state == s) return;
	log_debug("db listen state from=%s to=%s", lsess_state_name(l->state), lsess_state_name(s));
	l->state = s;
}

static bool channel_valid(const char *s)
{
	size_t n = 0;
	if (s == NULL || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return false;
	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_')) return false;
	return n <= CHANNEL_MAX;
}

/* Drop the connection and everything tied to it; the caller sets the next state. */
static void lsess_close(db_listen *l)
{
	db_conn_io_disarm(&l->io);
	evtimer_del(l->timer);
	if (l->res) PQclear(l->res);
	l->res = NULL;
	if (l->pg) PQfinish(l->pg);
	l->pg = NULL;
	l->busy = l->flushing = l->hb_pending = false;
	l->next_channel = 0;
}

/* Any failure: close, schedule the reconnect, then tell the caller if it had been up. `why` may point
 * into the PGconn, so it is copied first. */
static void lsess_down(db_listen *l, const char *why)
{
	char reason[256], safe[256];
	bool was_up = l->state == LSESS_UP;

	snprintf(reason, sizeof reason, "%s", why);
	snprintf(safe, sizeof safe, "%s", reason);
	db_conn_log_safe(safe);
	lsess_close(l);
	int64_t delay = db_conn_backoff_ms(&l->rng, l->reconnect_min_ms, l->reconnect_max_ms, l->attempt);
	if (l->attempt < 64) l->attempt++;
	lsess_set_state(l, LSESS_DOWN);
	if (was_up) log_warn("db listen down reason=%s retry_ms=%lld", CM_Q(safe), (long long)delay);
	else log_warn("db listen connect failed attempt=%u reason=%s retry_ms=%lld", l->attempt, CM_Q(safe), (long long)delay);
	if (db_conn_timer_ms(l->timer, delay) != 0) log_error("db listen cannot arm reconnect timer");
	if (was_up) {
		l->stats.errors++;
		if (l->on_down) l->on_down(l->arg, reason);
	}
}

/* Refused for good: close now, report from the timer (the last thing that callback does), so on_fatal
 * may free the session. */
static void lsess_fatal(db_listen *l, const char *why)
{
	l->fatal_why = why;
	lsess_close(l);
	lsess_set_state(l, LSESS_FATAL);
	if (db_conn_timer_ms(l->timer, 0) != 0) log_error("db listen cannot arm timer");
}

/* Send one statement (no parameters, fixed text) and watch for its answer. Returns false after going
 * down. */
static bool lsess_send(db_listen *l, const char *sql)
{
	char why[256];

	/* libpq may close the socket inside these calls: never leave the event pending on it. */
	db_conn_io_disarm(&l->io);
	if (!PQsendQueryParams(l->pg, sql, 0, NULL, NULL, NULL, NULL, 0)) goto err;
	l->busy = true;
	int r = PQflush(l->pg);
	if (r < 0) goto err;
	l->flushing = r == 1;
	if (db_conn_io_arm(&l->io, l->pg, EV_READ | (l->flushing ? EV_WRITE : 0)) != 0) {
		lsess_down(l, "cannot watch connection socket");
		return false;
	}
	return true;

err:
	db_conn_error(why, sizeof why, l->pg, &l->tag);
	lsess_down(l, why);
	return false;
}

static void lsess_start(db_listen *l)
{
	char why[256];

	l->pg = db_conn_start(l->conninfo, l->application_name, &l->tag, why, sizeof why);
	if (l->pg == NULL) {
		lsess_down(l, why);
		return;
	}
	lsess_set_state(l, LSESS_CONNECTING);
	if (l->connect_timeout_ms > 0 && db_conn_timer_ms(l->timer, l->connect_timeout_ms) != 0) {
		lsess_down(l, "cannot arm connect timer");
		return;
	}
	if (db_conn_io_arm(&l->io, l->pg, EV_WRITE) != 0) lsess_down(l, "connection has no socket");
}

static void lsess_became_up(db_listen *l)
{
	evtimer_del(l->timer);
	if (l->ever_up) l->stats.reconnects++;
	l->ever_up = true;
	l->attempt = 0;
	lsess_set_state(l, LSESS_UP);
	if (l->heartbeat_ms > 0 && db_conn_timer_ms(l->timer, l->heartbeat_ms) != 0) {
		lsess_down(l, "cannot arm heartbeat timer");
		return;
	}
	log_info("db listen up channels=%d", l->n_channels);
	/* The first heartbeat at once: the queue usage is known from the start, and a link that dies right
	 * after the handshake is caught within one heartbeat. */
	if (l->heartbeat_ms > 0) {
		if (!lsess_send(l, SQL_HEARTBEAT)) return;
		l->hb_pending = true;
	}
	if (l->on_up) l->on_up(l->arg);
}

/* Every LISTEN is in effect: count the hint triggers first when asked to, else the session is up. */
static void lsess_subscribed(db_listen *l)
{
	if (!l->check_hints) {
		lsess_became_up(l);
		return;
	}
	lsess_set_state(l, LSESS_HINTS);
	lsess_send(l, db_hints_sql);
}

/* The hint-trigger count came back (res may be an error): keep, log. */
static void lsess_hints_done(db_listen *l, const PGresult *res)
{
	char why[256];
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK && db_hints_parse(res, &l->hints, why, sizeof why) == 0) {
		db_hints_log(&l->hints);
		return;
	}
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) db_conn_result_error(why, sizeof why, res);
	db_hints_init(&l->hints);
	log_warn("hint trigger check failed reason=\"%s\" hint=\"cannot tell whether the database sends wake-up "
	         "hints; the safety net still delivers every change\"", why);
}

/* The statement in flight has all its results (`res` is its first, owned here). */
static void lsess_complete(db_listen *l, PGresult *res)
{
	char why[256];
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	switch (l->state) {
	case LSESS_CHECKING:
		if (st != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) != 2) break;
		if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
			PQclear(res);
			lsess_fatal(l, WHY_STANDBY);
			return;
		}
		if (strtol(PQgetvalue(res, 0, 1), NULL, 10) != (long)PQbackendPID(l->pg)) {
			log_error("db listen backend pid mismatch reported=%d actual=%s", PQbackendPID(l->pg),
			          CM_Q(PQgetvalue(res, 0, 1)));
			PQclear(res);
			lsess_fatal(l, WHY_POOLER);
			return;
		}
		PQclear(res);
		if (l->n_channels == 0) {
			lsess_subscribed(l);
			return;
		}
		lsess_set_state(l, LSESS_SUBSCRIBING);
		l->next_channel = 0;
		lsess_send(l, l->listen_sql[0]);
		return;
	case LSESS_SUBSCRIBING:
		if (st != PGRES_COMMAND_OK) break;
		PQclear(res);
		if (++l->next_channel < l->n_channels) lsess_send(l, l->listen_sql[l->next_channel]);
		else lsess_subscribed(l);
		return;
	case LSESS_HINTS:
		lsess_hints_done(l, res);
		if (res) PQclear(res);
		if (l->pg) lsess_became_up(l);
		return;
	case LSESS_UP:
		if (st != PGRES_TUPLES_OK || PQntuples(res) != 1) break;
		l->hb_pending = false;
		l->queue_usage = strtod(PQgetvalue(res, 0, 0), NULL);
		if (l->queue_usage >= 0.5) log_warn("db listen notification queue filling usage=%.3f", l->queue_usage);
		else log_debug("db listen heartbeat usage=%.3f", l->queue_usage);
		PQclear(res);
		return;
	case LSESS_DOWN:
	case LSESS_CONNECTING:
	case LSESS_FATAL:
		break;
	}
	db_conn_result_error(why, sizeof why, res);
	if (res) PQclear(res);
	lsess_down(l, why);
}

static void lsess_drain_notifies(db_listen *l)
{
	PGnotify *n;
	while (l->pg && (n = PQnotifies(l->pg)) != NULL) {
		/* Before on_up the caller re-reads everything anyway: nothing is lost by dropping these. */
		if (l->state == LSESS_UP) {
			l->stats.notifies++;
			if (l->on_notify) l->on_notify(l->arg, n->relname, n->extra);
		}
		PQfreemem(n);
	}
}

static void lsess_io_cb(evutil_socket_t fd, short what, void *arg)
{
	db_listen *l = arg;
	char why[256];
	(void)fd;

	if (l->state == LSESS_CONNECTING) {
		short want = 0;
		int r = db_conn_poll(l->pg, &want);
		if (r < 0) {
			db_conn_error(why, sizeof why, l->pg, &l->tag);
			lsess_down(l, why);
		} else if (r == 0) {
			if (db_conn_io_arm(&l->io, l->pg, want) != 0) lsess_down(l, "connection has no socket");
		} else {
			lsess_set_state(l, LSESS_CHECKING);
			lsess_send(l, SQL_RECOVERY);
		}
		return;
	}
	if (l->pg == NULL) return; /* stale: disarmed when the connection went */

	if (l->flushing) {
		int r = PQflush(l->pg);
		if (r < 0) goto broken;
		l->flushing = r == 1;
	}
	if ((what & EV_READ) && !PQconsumeInput(l->pg)) goto broken;
	lsess_drain_notifies(l);

	/* One statement at a time: collect its results; completing it may send the next one. */
	while (l->busy && l->pg && !PQisBusy(l->pg)) {
		PGresult *r = PQgetResult(l->pg);
		if (r != NULL) {
			if (l->res == NULL) l->res = r;
			else PQclear(r);
			continue;
		}
		PGresult *first = l->res;
		l->res = NULL;
		l->busy = false;
		lsess_complete(l, first);
		/* lsess_complete may have sent the next statement (busy again), gone down or gone fatal. */
		if (l->pg == NULL) return;
	}
	lsess_drain_notifies(l);
	if (l->pg == NULL) return;
	if (PQstatus(l->pg) == CONNECTION_BAD) goto broken;
	if (db_conn_io_arm(&l->io, l->pg, EV_READ | (l->flushing ? EV_WRITE : 0)) != 0)
		lsess_down(l, "cannot watch connection socket");
	return;

broken:
	db_conn_error(why, sizeof why, l->pg, &l->tag);
	lsess_down(l, why);
}

static void lsess_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	db_listen *l = arg;
	(void)fd;
	(void)what;

	switch (l->state) {
	case LSESS_DOWN:
		lsess_start(l);
		return;
	case LSESS_CONNECTING:
	case LSESS_CHECKING:
	case LSESS_SUBSCRIBING:
	case LSESS_HINTS:
		lsess_down(l, "connect timed out");
		return;
	case LSESS_UP:
		if (l->hb_pending || l->busy) {
			lsess_down(l, "heartbeat timed out");
			return;
		}
		if (db_conn_timer_ms(l->timer, l->heartbeat_ms) != 0) {
			lsess_down(l, "cannot arm heartbeat timer");
			return;
		}
		if (lsess_send(l, SQL_HEARTBEAT)) l->hb_pending = true;
		return;
	case LSESS_FATAL:
		log_error("db listen refused reason=%s", CM_Q(l->fatal_why));
		if (l->on_fatal) l->on_fatal(l->arg, l->fatal_why);
		return;
	}
}

db_listen *db_listen_new(struct event_base *base, const db_listen_opts *opts)
{
	db_listen *l = NULL;

	if (base == NULL || opts == NULL || opts->n_channels < 0 || (opts->n_channels > 0 && opts->channels == NULL)) {
		log_error("db listen refused: invalid options");
		goto err;
	}
	for (int i = 0; i < opts->n_channels; i++) {
		if (!channel_valid(opts->channels[i])) {
			char safe[80];
			snprintf(safe, sizeof safe, "%s", opts->channels[i] ? opts->channels[i] : "(null)");
			db_conn_log_safe(safe);
			log_error("db listen refused: channel is not a plain identifier ([a-z_][a-z0-9_]*, at most 63) "
			          "channel=\"%s\"",
			          safe);
			goto err;
		}
	}
	l = calloc(1, sizeof *l);
	if (l == NULL) goto err;
	l->base = base;
	l->io.fd = -1;
	l->tag.who = "listen";
	l->tag.id = -1;
	l->state = LSESS_DOWN;
	l->queue_usage = -1;
	l->connect_timeout_ms = opts->connect_timeout_ms;
	l->reconnect_min_ms = opts->reconnect_min_ms > 0 ? opts->reconnect_min_ms : 1;
	l->reconnect_max_ms = opts->reconnect_max_ms > l->reconnect_min_ms ? opts->reconnect_max_ms : l->reconnect_min_ms;
	l->heartbeat_ms = opts->heartbeat_ms;
	l->check_hints = opts->check_hints;
	db_hints_init(&l->hints);
	l->on_notify = opts->on_notify;
	l->on_up = opts->on_up;
	l->on_down = opts->on_down;
	l->on_fatal = opts->on_fatal;
	l->arg = opts->arg;
	l->rng = db_conn_rng_seed(l);

	l->conninfo = strdup(opts->conninfo ? opts->conninfo : "");
	if (l->conninfo == NULL) goto err;
	if (opts->application_name) {
		l->application_name = strdup(opts->application_name);
		if (l->application_name == NULL) goto err;
	}
	if (opts->n_channels > 0) {
		l->listen_sql = calloc((size_t)opts->n_channels, sizeof *l->listen_sql);
		if (l->listen_sql == NULL) goto err;
	}
	for (int i = 0; i < opts->n_channels; i++) {
		size_t n = strlen(opts->channels[i]) + sizeof "LISTEN \"\"";
		l->listen_sql[i] = malloc(n);
		if (l->listen_sql[i] == NULL) goto err;
		l->n_channels = i + 1; /* so that free sees every allocated statement */
		snprintf(l->listen_sql[i], n, "LISTEN \"%s\"", opts->channels[i]);
	}
	l->n_channels = opts->n_channels;
	if (db_conn_io_init(&l->io, base, lsess_io_cb, l) != 0) goto err;
	l->timer = evtimer_new(base, lsess_timer_cb, l);
	if (l->timer == NULL) goto err;
	if (db_conn_timer_ms(l->timer, 0) != 0) goto err; /* connect from the loop */
	return l;

err:
	db_listen_free(l);
	return NULL;
}

void db_listen_free(db_listen *l)
{
	if (l == NULL) return;
	db_conn_io_free(&l->io);
	if (l->timer) event_free(l->timer);
	if (l->res) PQclear(l->res);
	if (l->pg) PQfinish(l->pg);
	if (l->listen_sql) {
		for (int i = 0; i < l->n_channels; i++) free(l->listen_sql[i]);
		free(l->listen_sql);
	}
	free(l->application_name);
	free(l->conninfo);
	free(l);
}

bool db_listen_is_up(const db_listen *l)
{
	return l && l->state == LSESS_UP;
}

void db_listen_get_stats(const db_listen *l, db_listen_stats *out)
{
	if (out == NULL) return;
	if (l == NULL) {
		memset(out, 0, sizeof *out);
		return;
	}
	*out = l->stats;
}

double db_listen_queue_usage(const db_listen *l)
{
	return l ? l->queue_usage : -1;
}

const db_hints *db_listen_hints(const db_listen *l)
{
	static const db_hints unknown = {{-1, -1, -1}};
	return l ? &l->hints : &unknown;
}
