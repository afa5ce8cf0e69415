/*
 * db/pool.c — the non-blocking query pool (see db/pool.h).
 *
 * It owns `size` connection slots, the FIFO of queries waiting for one, and the counters. Each slot is a
 * small state machine (enum pconn_state, changed only through pconn_set_state) driven by one
 * non-persistent event on PQsocket() and one timer whose meaning follows the state: the backoff delay
 * while down, the connect timeout while connecting, the query timeout while a query is in flight.
 *
 * Re-entrancy: db_pool_query() only appends to the queue and schedules the pool's "kick" event; the
 * kick (run from the loop) hands queued work to idle slots, fails the queue when no slot is up, and calls
 * opts.on_change. Result callbacks run from slot events or the kick, after the pool's state is consistent,
 * so they may call db_pool_query() again; they never run inside db_pool_query().
 */
#include "db/pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/log.h"
#include "db/conn-internal.h"

typedef struct pool_query pool_query;
typedef struct pconn pconn;

/* One query: a single allocation holding the struct, the parameter array and every string. */
struct pool_query {
	pool_query *next;
	db_result_cb cb;
	void *arg;
	int nparams;
	const char *const *params; /* points into this allocation */
	const char *sql;           /* points into this allocation */
	bool stmt;                 /* run as a statement prepared once per connection (db_pool_query_stmt) */
	bool replanned;            /* already prepared afresh once after the server refused the old plan */
};

enum pconn_state {
	PCONN_DOWN,       /* no connection; the timer is the backoff delay before the next attempt */
	PCONN_CONNECTING, /* PQconnectPoll in progress; the timer is the connect timeout */
	PCONN_IDLE,       /* connected, nothing in flight; watching EV_READ for a server-side close */
	PCONN_SENDING,    /* query sent, output not yet flushed; the timer is the query timeout */
	PCONN_WAITING,    /* query flushed, collecting its result; the timer is the query timeout */
};

struct pconn {
	db_pool *pool; /* borrowed: the owner */
	int id;
	enum pconn_state state;
	PGconn *pg;         /* owned; NULL while down */
	db_conn_io io;      /* event on PQsocket(pg) */
	db_conn_tag tag;    /* notice routing and the server's last FATAL */
	struct event *timer; /* owned */
	unsigned attempt;   /* failed attempts since the last success (backoff exponent) */
	bool ever_up;       /* for stats.reconnects */
	pool_query *q;      /* owned: the query in flight (SENDING/WAITING) */
	PGresult *res;      /* owned: its first result, kept until the query completes */
	/* Statements prepared on this connection (db_pool_query_stmt), forgotten with the connection. What
	 * is in flight is either q itself, or the PREPARE of stmts[preparing] with q waiting behind it. */
	struct {
		char *sql; /* owned copy: the key */
		char name[24];
	} stmts[DB_POOL_MAX_STMTS];
	int n_stmts;
	int preparing; /* index into stmts, or -1 */
	int running;   /* the stmts index q runs as, or -1 */
	unsigned stmt_gen; /* names are never reused on one connection */
	bool generic;      /* plan_cache_mode set for this session (or tried: a server without it is left alone) */
	bool setting;      /* that SET is in flight, q waiting behind it */
};

struct db_pool {
	struct event_base *base; /* borrowed */
	char *conninfo;          /* owned copy */
	char *application_name;  /* owned copy, may be NULL */
	int64_t connect_timeout_ms, query_timeout_ms, reconnect_min_ms, reconnect_max_ms;
	void (*on_change)(void *arg);
	void *arg;

	pconn *conns; /* owned, `size` of them */
	int size;
	int n_connected; /* slots in IDLE, SENDING or WAITING */
	int n_idle;      /* slots in IDLE */

	pool_query *head, *tail; /* owned FIFO */
	int n_queued;

	struct event *kick; /* owned: deferred dispatch / queue failure / on_change */
	bool change_pending;
	uint64_t rng;
	db_pool_stats stats;
};

static const char *pconn_state_name(enum pconn_state s)
{
	switch (s) {
	case PCONN_DOWN: return "down";
	case PCONN_CONNECTING: return "connecting";
	case PCONN_IDLE: return "idle";
	case PCONN_SENDING: return "sending";
	case PCONN_WAITING: return "waiting";
	}
	return "?";
}

static bool state_is_up(enum pconn_state s)
{
	return s == PCONN_IDLE || s == PCONN_SENDING || s == PCONN_WAITING;
}

static void pool_kick(db_pool *p)
{
	event_active(p->kick, EV_TIMEOUT, 0);
}

/* The one place a slot changes state: keeps the connected/idle counts and asks for on_change when the
 * connected count changes or the slot becomes idle. */
static void pconn_set_state(pconn *c, enum pconn_state s)
{
	db_pool *p = c->pool;
	if (c->state == s) return;
	log_debug("db pool state conn=%d from=%s to=%s", c->id, pconn_state_name(c->state), pconn_state_name(s));
	bool was_up = state_is_up(c->state), is_up = state_is_up(s);
	if (c->state == PCONN_IDLE) p->n_idle--;
	if (s == PCONN_IDLE) p->n_idle++;
	if (was_up != is_up) p->n_connected += is_up ? 1 : -1;
	c->state = s;
	if (was_up != is_up || s == PCONN_IDLE) {
		p->change_pending = true;
		pool_kick(p);
	}
}

static void query_free(pool_query *q)
{
	free(q);
}

static pool_query *query_new(const char *sql, int nparams, const char *const *params, db_result_cb cb, void *arg)
{
	size_t sqllen = strlen(sql) + 1;
	size_t total = sizeof(pool_query) + (size_t)nparams * sizeof(char *) + sqllen;
	pool_query *q = NULL;

	for (int i = 0; i < nparams; i++)
		if (params[i]) total += strlen(params[i]) + 1;
	q = malloc(total);
	if (q == NULL) goto err;

	/* Layout: struct, then the pointer array (pointer-aligned as the struct is), then the strings. */
	const char **pv = (const char **)(void *)(q + 1);
	char *s = (char *)(pv + nparams);
	memcpy(s, sql, sqllen);
	q->sql = s;
	q->stmt = false;
	q->replanned = false;
	s += sqllen;
	for (int i = 0; i < nparams; i++) {
		if (params[i] == NULL) {
			pv[i] = NULL;
			continue;
		}
		size_t n = strlen(params[i]) + 1;
		memcpy(s, params[i], n);
		pv[i] = s;
		s += n;
	}
	q->next = NULL;
	q->cb = cb;
	q->arg = arg;
	q->nparams = nparams;
	q->params = pv;
	return q;

err:
	return NULL;
}

static void queue_push_tail(db_pool *p, pool_query *q)
{
	q->next = NULL;
	if (p->tail) p->tail->next = q;
	else p->head = q;
	p->tail = q;
	p->n_queued++;
}

static void queue_push_head(db_pool *p, pool_query *q)
{
	q->next = p->head;
	p->head = q;
	if (p->tail == NULL) p->tail = q;
	p->n_queued++;
}

static pool_query *queue_pop(db_pool *p)
{
	pool_query *q = p->head;
	if (q == NULL) return NULL;
	p->head = q->next;
	if (p->head == NULL) p->tail = NULL;
	p->n_queued--;
	q->next = NULL;
	return q;
}

/* Deliver a failure and free the query. The caller has made the pool consistent first. */
static void query_fail(db_pool *p, pool_query *q, const char *why)
{
	p->stats.errors++;
	q->cb(q->arg, NULL, why);
	query_free(q);
}

static void pconn_start(pconn *c);

/* Close the connection (if any) and schedule the next attempt after the backoff delay; returns it. */
static void stmts_forget(pconn *c)
{
	for (int i = 0; i < c->n_stmts; i++) free(c->stmts[i].sql);
	c->n_stmts = 0;
	c->preparing = -1;
	c->running = -1;
	c->generic = false;
	c->setting = false;
}

static void stmt_drop(pconn *c, int k)
{
	free(c->stmts[k].sql);
	c->stmts[k] = c->stmts[--c->n_stmts];
}

static int stmt_find(const pconn *c, const char *sql)
{
	for (int i = 0; i < c->n_stmts; i++)
		if (strcmp(c->stmts[i].sql, sql) == 0) return i;
	return -1;
}

static int64_t pconn_close_and_retry(pconn *c)
{
	db_pool *p = c->pool;
	db_conn_io_disarm(&c->io);
	evtimer_del(c->timer);
	if (c->res) PQclear(c->res);
	c->res = NULL;
	if (c->pg) PQfinish(c->pg);
	c->pg = NULL;
	stmts_forget(c);
	int64_t delay = db_conn_backoff_ms(&p->rng, p->reconnect_min_ms, p->reconnect_max_ms, c->attempt);
	if (c->attempt < 64) c->attempt++;
	pconn_set_state(c, PCONN_DOWN);
	/* Cannot fail with a valid base; without the timer the slot would never come back. */
	if (db_conn_timer_ms(c->timer, delay) != 0) log_error("db pool cannot arm reconnect timer conn=%d", c->id);
	return delay;
}

/* A connect attempt failed (not timed: the caller counts timeouts). */
static void pconn_connect_failed(pconn *c, const char *why)
{
	char safe[256];
	unsigned attempt = c->attempt + 1;
	snprintf(safe, sizeof safe, "%s", why); /* `why` may point into the PGconn */
	db_conn_log_safe(safe);
	int64_t delay = pconn_close_and_retry(c);
	log_warn("db connect failed conn=%d attempt=%u reason=%s retry_ms=%lld", c->id, attempt, CM_Q(safe),
	         (long long)delay);
}

/* The connection is unusable: fail its query (if any) with `why`, close, reconnect later. `why` may
 * point into the PGconn, so it is copied before the connection goes. */
static void pconn_fail(pconn *c, const char *why)
{
	char reason[256], safe[256];
	pool_query *q = c->q;

	snprintf(reason, sizeof reason, "%s", why);
	snprintf(safe, sizeof safe, "%s", reason);
	db_conn_log_safe(safe);
	c->q = NULL;
	int64_t delay = pconn_close_and_retry(c);
	log_warn("db connection lost conn=%d reason=%s retry_ms=%lld", c->id, CM_Q(safe), (long long)delay);
	if (q) query_fail(c->pool, q, reason);
}

/* Send `q` on idle slot `c`. When the connection turns out to be broken, the query goes back to the
 * head of the queue (it was never sent) and the slot is recycled; when libpq refuses the query itself,
 * the query fails and the slot stays idle (so one bad query cannot cycle through every connection). */
static void pconn_send(pconn *c, pool_query *q)
{
	db_pool *p = c->pool;
	char why[256];

	/* The socket may be closed by libpq inside these calls: never leave the event pending on it. */
	db_conn_io_disarm(&c->io);
	/* A statement the caller runs again and again is parsed and planned once per connection: PREPARE
	 * it first (its result comes back through pconn_complete, which then sends q), then execute it. */
	int k = q->stmt ? stmt_find(c, q->sql) : -1;
	bool prepare = false;
	/* Before its first PREPARE a session is told to keep one generic plan per statement: with the
	 * default, PostgreSQL plans every execution again for these array parameters (custom plans look
	 * as good), and the planning is what preparing was meant to save (docs/database.md). */
	c->setting = q->stmt && k < 0 && !c->generic && c->n_stmts < DB_POOL_MAX_STMTS;
	if (c->setting) {
		c->running = -1;
		if (PQsendQuery(c->pg, "SET plan_cache_mode = force_generic_plan")) goto in_flight;
		c->setting = false;
		c->generic = true; /* not again on this connection; q goes below */
	}
	if (q->stmt && k < 0 && c->n_stmts < DB_POOL_MAX_STMTS && (c->stmts[c->n_stmts].sql = strdup(q->sql)) != NULL) {
		k = c->n_stmts++;
		snprintf(c->stmts[k].name, sizeof c->stmts[k].name, "pollgate_%u", c->stmt_gen++);
		prepare = true;
	}
	int sent = prepare    ? PQsendPrepare(c->pg, c->stmts[k].name, q->sql, q->nparams, NULL)
	           : k >= 0 ? PQsendQueryPrepared(c->pg, c->stmts[k].name, q->nparams, q->params, NULL, NULL, 0)
	                    : PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, q->params, NULL, NULL, 0);
	c->preparing = prepare ? k : -1;
	c->running = prepare ? -1 : k;
	if (!sent) {
		if (prepare) stmt_drop(c, k);
		c->preparing = c->running = -1;
		db_conn_error(why, sizeof why, c->pg, &c->tag);
		if (PQstatus(c->pg) == CONNECTION_BAD) {
			queue_push_head(p, q);
			pconn_fail(c, why);
			return;
		}
		if (db_conn_io_arm(&c->io, c->pg, EV_READ) != 0) pconn_fail(c, "cannot watch connection socket");
		query_fail(p, q, why);
		return;
	}
in_flight:
	c->q = q;
	if (!prepare && !c->setting) p->stats.queries++;
	pconn_set_state(c, PCONN_SENDING);
	if (p->query_timeout_ms > 0 && db_conn_timer_ms(c->timer, p->query_timeout_ms) != 0) {
		pconn_fail(c, "cannot arm query timer");
		return;
	}
	int r = PQflush(c->pg);
	if (r < 0) {
		db_conn_error(why, sizeof why, c->pg, &c->tag);
		pconn_fail(c, why);
		return;
	}
	if (r == 0) pconn_set_state(c, PCONN_WAITING);
	if (db_conn_io_arm(&c->io, c->pg, r == 0 ? EV_READ : EV_READ | EV_WRITE) != 0)
		pconn_fail(c, "cannot watch connection socket");
}

/* Hand queued queries to idle slots, in slot order. */
static void pool_dispatch(db_pool *p)
{
	for (int i = 0; i < p->size && p->head; i++) {
		pconn *c = &p->conns[i];
		while (c->state == PCONN_IDLE && p->head) pconn_send(c, queue_pop(p));
	}
}

/* Fail every queued query; callbacks may queue again, which db_pool_query refuses while nothing is up,
 * so the detached list is all there is. */
static void pool_fail_queue(db_pool *p, const char *why)
{
	pool_query *q = p->head;
	p->head = p->tail = NULL;
	p->n_queued = 0;
	while (q) {
		pool_query *next = q->next;
		query_fail(p, q, why);
		q = next;
	}
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	db_pool *p = arg;
	(void)fd;
	(void)what;

	if (p->n_connected == 0) {
		if (p->head) pool_fail_queue(p, "database unavailable");
	} else {
		pool_dispatch(p);
	}
	if (p->change_pending) {
		p->change_pending = false;
		if (p->on_change) {
			p->on_change(p->arg);
			/* Work queued by on_change can go out now rather than one loop turn later. */
			if (p->n_connected > 0) pool_dispatch(p);
		}
	}
}

static void pconn_start(pconn *c)
{
	db_pool *p = c->pool;
	char why[256];
	short want = EV_WRITE;

	c->pg = db_conn_start(p->conninfo, p->application_name, &c->tag, why, sizeof why);
	if (c->pg == NULL) {
		pconn_connect_failed(c, why);
		return;
	}
	pconn_set_state(c, PCONN_CONNECTING);
	if (p->connect_timeout_ms > 0 && db_conn_timer_ms(c->timer, p->connect_timeout_ms) != 0) goto err;
	if (db_conn_io_arm(&c->io, c->pg, want) != 0) goto err;
	return;

err:
	pconn_connect_failed(c, "cannot watch connection socket");
}

/* A connect step finished the handshake. */
static void pconn_connected(pconn *c)
{
	db_pool *p = c->pool;
	evtimer_del(c->timer);
	if (c->ever_up) p->stats.reconnects++;
	c->ever_up = true;
	c->attempt = 0;
	pconn_set_state(c, PCONN_IDLE);
	log_info("db connection up conn=%d connected=%d size=%d", c->id, p->n_connected, p->size);
	if (db_conn_io_arm(&c->io, c->pg, EV_READ) != 0) {
		pconn_fail(c, "cannot watch connection socket");
		return;
	}
	/* Queued work is handed over by the kick that the state change scheduled. */
}

static void pconn_drain_notifies(pconn *c)
{
	PGnotify *n;
	while ((n = PQnotifies(c->pg)) != NULL) PQfreemem(n);
}

/* The in-flight query has all its results: deliver, then take the next queued query or go idle. */
static void pconn_complete(pconn *c)
{
	db_pool *p = c->pool;
	pool_query *q = c->q;
	PGresult *res = c->res;
	char err[256];
	bool recycle = false;

	c->q = NULL;
	c->res = NULL;
	evtimer_del(c->timer);

	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	bool ok = res && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK);
	if (c->setting && PQstatus(c->pg) != CONNECTION_BAD) {
		/* The session's plan_cache_mode is set (or the server has none: the default stays). */
		c->setting = false;
		c->generic = true;
		if (res) PQclear(res);
		pconn_set_state(c, PCONN_IDLE);
		pconn_send(c, q);
		return;
	}
	if (c->preparing >= 0 && PQstatus(c->pg) != CONNECTION_BAD) {
		/* The PREPARE of q's statement is done: now run q (as itself when the PREPARE failed, so the
		 * caller gets the server's own error for it). */
		if (!ok) stmt_drop(c, c->preparing);
		c->preparing = -1;
		if (!ok) q->stmt = false;
		if (res) PQclear(res);
		pconn_set_state(c, PCONN_IDLE);
		pconn_send(c, q);
		return;
	}
	/* A prepared statement the server can no longer run as planned (a table or view it reads changed
	 * its columns: "cached plan must not change result type") is prepared afresh and q runs again, once:
	 * the caller never sees the schema change. */
	if (!ok && c->running >= 0 && res && PQstatus(c->pg) != CONNECTION_BAD) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state && (strcmp(state, "0A000") == 0 || strcmp(state, "26000") == 0)) {
			stmt_drop(c, c->running);
			c->running = -1;
			if (!q->replanned) {
				q->replanned = true;
				PQclear(res);
				pconn_set_state(c, PCONN_IDLE);
				pconn_send(c, q);
				return;
			}
		}
	}
	c->running = -1;
	if (!ok) {
		db_conn_result_error(err, sizeof err, res);
		/* COPY would leave the connection mid-protocol: nothing we send uses it, so recycle. */
		if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) recycle = true;
	}
	if (recycle || PQstatus(c->pg) == CONNECTION_BAD) {
		char why[256];
		if (recycle) snprintf(why, sizeof why, "unexpected result status %s", PQresStatus(st));
		else db_conn_error(why, sizeof why, c->pg, &c->tag);
		pconn_fail(c, why);
	} else {
		pconn_set_state(c, PCONN_IDLE);
		if (db_conn_io_arm(&c->io, c->pg, EV_READ) != 0) pconn_fail(c, "cannot watch connection socket");
	}

	/* State is consistent: the callback may queue more work. */
	if (ok) {
		q->cb(q->arg, res, NULL);
	} else {
		p->stats.errors++;
		q->cb(q->arg, NULL, err);
	}
	if (res) PQclear(res);
	query_free(q);

	while (c->state == PCONN_IDLE && p->head) pconn_send(c, queue_pop(p));
}

/* Read what the server sent; returns false (after failing the slot) when the connection broke. */
static bool pconn_read(pconn *c)
{
	char why[256];
	if (!PQconsumeInput(c->pg)) {
		db_conn_error(why, sizeof why, c->pg, &c->tag);
		pconn_fail(c, why);
		return false;
	}
	pconn_drain_notifies(c);
	return true;
}

static void pconn_collect(pconn *c)
{
	char why[256];
	while (!PQisBusy(c->pg)) {
		PGresult *r = PQgetResult(c->pg);
		if (r == NULL) {
			pconn_complete(c);
			return;
		}
		if (c->res == NULL) c->res = r;
		else PQclear(r);
	}
	pconn_drain_notifies(c);
	if (PQstatus(c->pg) == CONNECTION_BAD) {
		db_conn_error(why, sizeof why, c->pg, &c->tag);
		pconn_fail(c, why);
		return;
	}
	if (db_conn_io_arm(&c->io, c->pg, EV_READ) != 0) pconn_fail(c, "cannot watch connection socket");
}

static void pconn_io_cb(evutil_socket_t fd, short what, void *arg)
{
	pconn *c = arg;
	char why[256];
	(void)fd;

	switch (c->state) {
	case PCONN_CONNECTING: {
		short want = 0;
		int r = db_conn_poll(c->pg, &want);
		if (r < 0) {
			db_conn_error(why, sizeof why, c->pg, &c->tag);
			pconn_connect_failed(c, why);
		} else if (r == 0) {
			if (db_conn_io_arm(&c->io, c->pg, want) != 0) pconn_connect_failed(c, "connection has no socket");
		} else {
			pconn_connected(c);
		}
		return;
	}
	case PCONN_IDLE:
		if (!pconn_read(c)) return;
		if (PQstatus(c->pg) == CONNECTION_BAD) {
			db_conn_error(why, sizeof why, c->pg, &c->tag);
			pconn_fail(c, why);
			return;
		}
		if (db_conn_io_arm(&c->io, c->pg, EV_READ) != 0) pconn_fail(c, "cannot watch connection socket");
		return;
	case PCONN_SENDING: {
		if ((what & EV_READ) && !pconn_read(c)) return;
		int r = PQflush(c->pg);
		if (r < 0) {
			db_conn_error(why, sizeof why, c->pg, &c->tag);
			pconn_fail(c, why);
			return;
		}
		if (r == 1) {
			if (db_conn_io_arm(&c->io, c->pg, EV_READ | EV_WRITE) != 0)
				pconn_fail(c, "cannot watch connection socket");
			return;
		}
		pconn_set_state(c, PCONN_WAITING);
		pconn_collect(c);
		return;
	}
	case PCONN_WAITING:
		if (!pconn_read(c)) return;
		pconn_collect(c);
		return;
	case PCONN_DOWN:
		return; /* stale: the event is disarmed whenever a slot goes down */
	}
}

static void pconn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	pconn *c = arg;
	db_pool *p = c->pool;
	(void)fd;
	(void)what;

	switch (c->state) {
	case PCONN_DOWN:
		pconn_start(c);
		return;
	case PCONN_CONNECTING:
		p->stats.timeouts++;
		pconn_connect_failed(c, "connect timed out");
		return;
	case PCONN_SENDING:
	case PCONN_WAITING:
		/* PQcancel would block on a new connection: drop this one instead. */
		p->stats.timeouts++;
		pconn_fail(c, "query timed out");
		return;
	case PCONN_IDLE:
		return;
	}
}

db_pool *db_pool_new(struct event_base *base, const db_pool_opts *opts)
{
	db_pool *p = NULL;

	if (base == NULL || opts == NULL || opts->size < 1) {
		log_error("db pool refused: invalid options size=%d", opts ? opts->size : 0);
		goto err;
	}
	p = calloc(1, sizeof *p);
	if (p == NULL) goto err;
	p->base = base;
	p->size = opts->size;
	p->connect_timeout_ms = opts->connect_timeout_ms;
	p->query_timeout_ms = opts->query_timeout_ms;
	p->reconnect_min_ms = opts->reconnect_min_ms > 0 ? opts->reconnect_min_ms : 1;
	p->reconnect_max_ms = opts->reconnect_max_ms > p->reconnect_min_ms ? opts->reconnect_max_ms : p->reconnect_min_ms;
	p->on_change = opts->on_change;
	p->arg = opts->arg;
	p->rng = db_conn_rng_seed(p);

	p->conninfo = strdup(opts->conninfo ? opts->conninfo : "");
	if (p->conninfo == NULL) goto err;
	if (opts->application_name) {
		p->application_name = strdup(opts->application_name);
		if (p->application_name == NULL) goto err;
	}
	p->kick = event_new(base, -1, 0, kick_cb, p);
	if (p->kick == NULL) goto err;
	p->conns = calloc((size_t)p->size, sizeof *p->conns);
	if (p->conns == NULL) goto err;
	for (int i = 0; i < p->size; i++) {
		pconn *c = &p->conns[i];
		c->pool = p;
		c->id = i;
		c->preparing = -1;
		c->running = -1;
		c->state = PCONN_DOWN;
		c->io.fd = -1;
		c->tag.who = "pool";
		c->tag.id = i;
	}
	for (int i = 0; i < p->size; i++) {
		pconn *c = &p->conns[i];
		if (db_conn_io_init(&c->io, base, pconn_io_cb, c) != 0) goto err;
		c->timer = evtimer_new(base, pconn_timer_cb, c);
		if (c->timer == NULL) goto err;
	}
	/* Connect from the loop, not from here: every slot starts on its timer at once. */
	for (int i = 0; i < p->size; i++)
		if (db_conn_timer_ms(p->conns[i].timer, 0) != 0) goto err;
	log_info("db pool created size=%d", p->size);
	return p;

err:
	db_pool_free(p);
	return NULL;
}

void db_pool_free(db_pool *p)
{
	if (p == NULL) return;
	if (p->conns) {
		for (int i = 0; i < p->size; i++) {
			pconn *c = &p->conns[i];
			db_conn_io_free(&c->io);
			if (c->timer) event_free(c->timer);
			if (c->res) PQclear(c->res);
			if (c->pg) PQfinish(c->pg);
			if (c->q) query_free(c->q);
			stmts_forget(c);
		}
		free(p->conns);
	}
	while (p->head) query_free(queue_pop(p));
	if (p->kick) event_free(p->kick);
	free(p->application_name);
	free(p->conninfo);
	free(p);
}

int db_pool_query(db_pool *p, const char *sql, int nparams, const char *const *params, db_result_cb cb, void *arg)
{
	pool_query *q = NULL;

	/* 65535: the protocol's limit on parameters per statement. */
	if (p == NULL || sql == NULL || cb == NULL || nparams < 0 || nparams > 65535 || (nparams > 0 && params == NULL)) {
		errno = EINVAL;
		return -1;
	}
	if (p->n_connected == 0) {
		errno = ENOTCONN;
		return -1;
	}
	q = query_new(sql, nparams, params, cb, arg);
	if (q == NULL) {
		log_warn("db pool query refused reason=\"out of memory\"");
		errno = ENOMEM;
		return -1;
	}
	queue_push_tail(p, q);
	pool_kick(p);
	return 0;
}

int db_pool_query_stmt(db_pool *p, const char *sql, int nparams, const char *const *params, db_result_cb cb,
                       void *arg)
{
	if (db_pool_query(p, sql, nparams, params, cb, arg) != 0) return -1;
	p->tail->stmt = true; /* just queued, at the tail */
	return 0;
}

int db_pool_connected(const db_pool *p)
{
	return p ? p->n_connected : 0;
}

int db_pool_idle(const db_pool *p)
{
	/* Queries already queued will take idle slots on the next kick: count those slots as taken, so a
	 * caller batching on "a slot is free" sees the truth right after db_pool_query. */
	if (p == NULL) return 0;
	int idle = p->n_idle - p->n_queued;
	return idle > 0 ? idle : 0;
}

int db_pool_queued(const db_pool *p)
{
	return p ? p->n_queued : 0;
}

void db_pool_get_stats(const db_pool *p, db_pool_stats *out)
{
	if (out == NULL) return;
	if (p == NULL) {
		memset(out, 0, sizeof *out);
		return;
	}
	*out = p->stats;
}
