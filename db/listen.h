/*
 * db/listen.h — the dedicated LISTEN session: wake-up hints from PostgreSQL NOTIFY.
 *
 * One connection (application_name "pollgate-listen") that LISTENs on a fixed set of channels and hands
 * each notification to a callback. It is non-blocking throughout and reconnects on its own with
 * exponential backoff and jitter; after every (re)connect and successful LISTEN it calls on_up, because
 * notifications sent while it was down are lost and the caller must re-read everything it holds.
 * It drains PQnotifies() until NULL after every read, so the server's notification queue never backs up
 * on our account. A silent network drop is caught by TCP keepalives and tcp_user_timeout plus a periodic
 * heartbeat query. Where LISTEN cannot work, the session is refused with a clear reason through
 * on_fatal: a server in recovery (hot standby), or a connection pooler in between (detected by the
 * backend pid the connection reported differing from pg_backend_pid()).
 * With check_hints it also counts, after every (re)connect and before on_up, the hint triggers per kind
 * (db/hints.h) on the same connection, logs a warning for a kind without one and keeps the counts for
 * /metrics; a failed check is logged and leaves the counts unknown, and never keeps the session down.
 */
#ifndef POLLGATE_DB_LISTEN_H
#define POLLGATE_DB_LISTEN_H

#include <stdbool.h>
#include <stdint.h>

#include "db/hints.h"

struct event_base;
typedef struct db_listen db_listen;

typedef struct db_listen_opts {
	const char *conninfo;          /* "" = PG* environment */
	const char *application_name;  /* "pollgate-listen" */
	const char *const *channels;   /* channel names (plain identifiers), copied */
	int n_channels;
	int64_t connect_timeout_ms;
	int64_t reconnect_min_ms;
	int64_t reconnect_max_ms;
	int64_t heartbeat_ms; /* a trivial query this often; no answer within it means the link is dead */
	bool check_hints;     /* count the hint triggers per kind after every (re)connect (db/hints.h) */

	/* A notification: channel and payload are borrowed for the call. */
	void (*on_notify)(void *arg, const char *channel, const char *payload);
	/* The session is up and listening on every channel (first time and after every reconnect). */
	void (*on_up)(void *arg);
	/* The session went down; `why` is a one-line reason. It is already reconnecting. */
	void (*on_down)(void *arg, const char *why);
	/* LISTEN cannot work there (hot standby, pooler): not retried; `why` says what to fix. May be NULL. */
	void (*on_fatal)(void *arg, const char *why);
	void *arg;
} db_listen_opts;

/* Create and start connecting. Strings are copied. NULL on allocation failure. */
db_listen *db_listen_new(struct event_base *base, const db_listen_opts *opts) __attribute__((warn_unused_result));
void db_listen_free(db_listen *l); /* no-op on NULL; no callbacks after it */

bool db_listen_is_up(const db_listen *l);

typedef struct db_listen_stats {
	uint64_t notifies;   /* notifications received */
	uint64_t reconnects; /* sessions established after the first */
	uint64_t errors;     /* times the session went down */
} db_listen_stats;
void db_listen_get_stats(const db_listen *l, db_listen_stats *out);

/* pg_notification_queue_usage() as last seen by the heartbeat (0..1), or -1 if not known yet. */
double db_listen_queue_usage(const db_listen *l);

/* The hint-trigger counts of the last check (every count -1 before the first, or after a failed one). */
const db_hints *db_listen_hints(const db_listen *l);

#endif
