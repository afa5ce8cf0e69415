/*
 * db/pool.h — a non-blocking pool of PostgreSQL query connections on the libevent loop.
 *
 * Every libpq call is non-blocking: connections are opened with PQconnectStartParams/PQconnectPoll,
 * queries sent with PQsendQueryParams, results collected with PQconsumeInput/PQisBusy/PQgetResult,
 * all driven by events on PQsocket(). Nothing here ever waits on the network.
 *
 * A query goes to an idle connected connection, or waits in a FIFO until one is idle. A connection that
 * breaks (or whose query runs past the query timeout) is closed, its query fails, and it reconnects with
 * exponential backoff and jitter. When no connection is up, db_pool_query() refuses at once so the
 * caller can answer 503 instead of queueing into the void.
 *
 * The pool knows nothing of HTTP or of what the queries mean.
 */
#ifndef POLLGATE_DB_POOL_H
#define POLLGATE_DB_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

struct event_base;
typedef struct db_pool db_pool;

/* Completion of one query. On success `res` is the PGresult (status PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK), borrowed: the pool PQclear()s it after the callback returns; `err` is NULL.
 * On failure `res` is NULL and `err` is a one-line reason (borrowed). Called from the loop, never from
 * inside db_pool_query(). Not called after db_pool_free(). */
typedef void (*db_result_cb)(void *arg, const PGresult *res, const char *err);

typedef struct db_pool_opts {
	const char *conninfo;        /* libpq connection string or URI; "" = PG* environment */
	const char *application_name; /* e.g. "pollgate" */
	int size;                    /* connections, >= 1 */
	int64_t connect_timeout_ms;  /* a connect attempt that takes longer is abandoned and retried */
	int64_t query_timeout_ms;    /* a query that takes longer fails and its connection is recycled */
	int64_t reconnect_min_ms;    /* backoff: first retry after about this long ... */
	int64_t reconnect_max_ms;    /* ... doubling (with jitter) up to this */
	/* Called whenever the number of connected connections changes, and whenever a connection becomes
	 * idle (so a caller holding back work to batch it can send it now). May be NULL. */
	void (*on_change)(void *arg);
	void *arg;
} db_pool_opts;

/* Create the pool; it starts connecting at once (asynchronously). Strings in opts are copied.
 * Returns NULL on allocation failure. */
db_pool *db_pool_new(struct event_base *base, const db_pool_opts *opts) __attribute__((warn_unused_result));

/* Free everything: closes connections, drops queued queries without calling their callbacks.
 * db_pool_free(NULL) is a no-op. */
void db_pool_free(db_pool *p);

/* Queue a query with text parameters (copied; NULL element = SQL NULL). Returns 0 when queued (the
 * callback will be called exactly once, later), or -1 when no connection is up (callback not called). */
int db_pool_query(db_pool *p, const char *sql, int nparams, const char *const *params, db_result_cb cb,
                  void *arg) __attribute__((warn_unused_result));

/* The same for a statement run again and again: on each connection it is prepared (parsed and planned
 * by the server) once, the first time, and executed by name afterwards; the planning PostgreSQL skips
 * is most of a small batched read's cost. A connection prepares at most DB_POOL_MAX_STMTS statements
 * (told apart by their text); others run unprepared. The pool forgets them with the connection, and
 * prepares one afresh when the server says its plan no longer fits (a table or view changed). */
#define DB_POOL_MAX_STMTS 8
int db_pool_query_stmt(db_pool *p, const char *sql, int nparams, const char *const *params, db_result_cb cb,
                       void *arg) __attribute__((warn_unused_result));

int db_pool_connected(const db_pool *p); /* connections that are up (idle or busy) */
int db_pool_idle(const db_pool *p);      /* connections up and with no query in flight */
int db_pool_queued(const db_pool *p);    /* queries waiting for a connection */

/* Counters for metrics. */
typedef struct db_pool_stats {
	uint64_t queries;    /* queries sent */
	uint64_t errors;     /* queries that failed */
	uint64_t reconnects; /* connections (re)established after the first */
	uint64_t timeouts;   /* queries or connects abandoned for time */
} db_pool_stats;
void db_pool_get_stats(const db_pool *p, db_pool_stats *out);

#endif
