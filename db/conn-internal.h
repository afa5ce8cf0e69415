/*
 * db/conn-internal.h — connection machinery shared by db/pool.c, db/listen.c and db/logical.c, and by nothing else.
 *
 * It owns the parts both need and neither should write twice: opening a libpq connection with our
 * keyword list (application name, keepalives, TCP user timeout), stepping PQconnectPoll, keeping one
 * libevent event on PQsocket() that follows the socket when libpq replaces it, reducing libpq error text
 * to one safe line, routing server notices to our logger, and the backoff-with-jitter arithmetic.
 * Each helper is a plain function over state the caller owns; none of them keeps file-scope state.
 */
#ifndef POLLGATE_DB_CONN_INTERNAL_H
#define POLLGATE_DB_CONN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <libpq-fe.h>

/* One libevent event that watches PQsocket() of one connection, never EV_PERSIST: it is re-armed after
 * every callback with what the connection needs next. */
typedef struct db_conn_io {
	struct event *ev;      /* owned */
	struct event_base *base; /* borrowed */
	event_callback_fn cb;
	void *arg;
	evutil_socket_t fd; /* the socket the event was last assigned to, -1 = none */
	short what;         /* EV_READ / EV_WRITE it was last assigned */
} db_conn_io;

/* Per-connection context for the notice receiver: who the connection belongs to, for the log line, and
 * the last FATAL the server sent (a backend says why before it closes: "terminating connection due to
 * administrator command"), which is a better reason than libpq's "server closed the connection". */
typedef struct db_conn_tag {
	const char *who; /* borrowed, static: "pool" or "listen" */
	int id;          /* slot number, or -1 */
	char fatal[256]; /* last FATAL/PANIC from the server on this connection, "" = none */
} db_conn_tag;

/* Allocate the event (not yet watching anything). Returns 0 or -1 on allocation failure. */
int db_conn_io_init(db_conn_io *io, struct event_base *base, event_callback_fn cb, void *arg)
	__attribute__((warn_unused_result));

/* Watch PQsocket(pg) for `what` (EV_READ and/or EV_WRITE). When the socket changed since the last arm
 * (libpq may open a new one between PQconnectPoll steps) the event is re-assigned to the new one.
 * Returns 0, or -1 when the connection has no socket or libevent refuses. */
int db_conn_io_arm(db_conn_io *io, PGconn *pg, short what) __attribute__((warn_unused_result));

/* Stop watching. Call it before anything that may close the socket (PQfinish, or libpq calls made
 * outside this event's own callback). Safe when not armed. */
void db_conn_io_disarm(db_conn_io *io);

/* Free the event; safe on a zeroed or already freed db_conn_io. */
void db_conn_io_free(db_conn_io *io);

/* Start a non-blocking connection: PQconnectStartParams with expand_dbname=1, keywords
 * keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3, tcp_user_timeout=30000
 * (before dbname, so a conninfo may tune them), dbname=conninfo, then application_name (after dbname,
 * so it wins over one in the conninfo; omitted when NULL or ""). Installs a notice receiver that logs
 * through common/log.h and records FATALs in `tag` (borrowed; must outlive the connection; its fatal
 * text is cleared here).
 * Returns the connection, whose first PQconnectPoll step waits for EV_WRITE. On failure returns NULL and
 * writes a one-line reason to why[cap]; parse errors are redacted (they can echo the conninfo). */
PGconn *db_conn_start(const char *conninfo, const char *application_name, db_conn_tag *tag, char *why,
                      size_t cap) __attribute__((warn_unused_result));

/* db_conn_start with replication=database (after dbname, so it wins): a walsender connection for logical
 * decoding (db/logical.c). Same keepalives, notice routing and error handling. */
PGconn *db_conn_start_replication(const char *conninfo, const char *application_name, db_conn_tag *tag, char *why,
                                  size_t cap) __attribute__((warn_unused_result));

/* One PQconnectPoll step. Returns 1 when connected (and set non-blocking), 0 when still connecting
 * with *want set to EV_READ or EV_WRITE, -1 when the attempt failed (reason in PQerrorMessage). */
int db_conn_poll(PGconn *pg, short *want) __attribute__((warn_unused_result));

/* Copy the first non-empty line of `msg`, trimmed, into out[cap]; "unknown error" when there is none. */
void db_conn_first_line(char *out, size_t cap, const char *msg);

/* The one-line reason for a connection-level failure: the server's last FATAL if it sent one, else the
 * first line of PQerrorMessage(pg). `tag` may be NULL. */
void db_conn_error(char *out, size_t cap, const PGconn *pg, const db_conn_tag *tag);

/* The one-line reason for a result that is not PGRES_TUPLES_OK/PGRES_COMMAND_OK (NULL = no result). */
void db_conn_result_error(char *out, size_t cap, const PGresult *res);

/* Make `s` safe inside a double-quoted log value: '"' becomes '\'', control characters become ' '. */
void db_conn_log_safe(char *s);

/* Seed for db_conn_backoff_ms, distinct per object and per process. */
uint64_t db_conn_rng_seed(const void *salt);

/* Reconnect delay for `attempt` (0 = first retry): d = min(max_ms, min_ms * 2^attempt), then a uniform
 * pick in [d/2, d]. Advances *rng. */
int64_t db_conn_backoff_ms(uint64_t *rng, int64_t min_ms, int64_t max_ms, unsigned attempt);

/* evtimer_add with a delay in milliseconds (negative = 0). Returns 0 or -1. */
int db_conn_timer_ms(struct event *timer, int64_t ms) __attribute__((warn_unused_result));

#endif
