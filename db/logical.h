/*
 * db/logical.h — the second hint source: logical decoding of committed changes (hint_source = logical).
 *
 * Instead of row triggers that pg_notify, the server's own change stream tells us which rows changed:
 * a replication connection (`replication=database`, application_name "pollgate-logical") creates a
 * TEMPORARY logical slot with the built-in pgoutput plugin on the publication the migrations create
 * (db/migrations/000_logical.sql), streams it, and turns every committed insert/update/delete of a mapped
 * table into the same (channel, payload) hint a NOTIFY carries: channel pollgate_run / pollgate_review_pack
 * / pollgate_access, payload the key as decimal text or "*" (everyone). The mapping from table to kind and
 * key column is the table pollgate_hint_map, read at every (re)connect.
 *
 * Hints are collected per transaction and handed over only after its Commit, deduplicated: a rolled-back
 * transaction (never decoded) hints nothing, and a transaction touching many rows of one resource gives
 * one hint. They wait until a new snapshot sees the commit (checked on a second, ordinary connection,
 * application_name + "-check"), so the re-read a hint causes always sees the change. The session sends standby status updates (flushed = the end of the last transaction handed
 * over, or the server's sent position when between transactions) so the server can recycle WAL, and
 * asks for a reply with each periodic one: no message within heartbeat_ms after that means a dead link.
 * A temporary slot is dropped by the server when its session ends, however it ends, so a gateway that
 * dies never makes the server keep WAL.
 *
 * It is non-blocking throughout and reconnects on its own with the LISTEN session's jittered backoff;
 * after every (re)connect it calls on_up (changes made while it was down are lost: re-read everything).
 * Before each replication connection a short ordinary connection checks what the server must offer and
 * refuses, through on_fatal and with a message naming the fix, when it cannot: wal_level not logical,
 * a role without REPLICATION, no publication, no mapping table. A full max_wal_senders or
 * max_replication_slots is logged with the fix and retried.
 */
#ifndef POLLGATE_DB_LOGICAL_H
#define POLLGATE_DB_LOGICAL_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
typedef struct db_logical db_logical;

typedef struct db_logical_opts {
	const char *conninfo;         /* "" = PG* environment; `replication=database` is added */
	const char *application_name; /* "pollgate-logical" */
	const char *publication;      /* "pollgate": a plain identifier */
	int64_t connect_timeout_ms;
	int64_t reconnect_min_ms;
	int64_t reconnect_max_ms;
	int64_t heartbeat_ms; /* a status update asking for a reply this often; none within it = dead link */

	/* A hint, exactly as a NOTIFY would carry it; channel and payload are borrowed for the call. */
	void (*on_notify)(void *arg, const char *channel, const char *payload);
	/* Every held resource should be re-read: a TRUNCATE of a mapped table, a transaction with more
	 * hints than are kept, or a DELETE whose old key the table's replica identity does not carry. */
	void (*on_resync)(void *arg);
	/* Streaming (first time and after every reconnect). */
	void (*on_up)(void *arg);
	/* The session went down; `why` is a one-line reason. It is already reconnecting. */
	void (*on_down)(void *arg, const char *why);
	/* The server cannot serve this hint source (the reason names the fix); not retried. May free the
	 * session. May be NULL. */
	void (*on_fatal)(void *arg, const char *why);
	void *arg;
} db_logical_opts;

/* Create and start connecting (from the loop). Strings are copied. NULL on bad options or allocation
 * failure. */
db_logical *db_logical_new(struct event_base *base, const db_logical_opts *opts) __attribute__((warn_unused_result));
void db_logical_free(db_logical *l); /* no-op on NULL; no callbacks after it */

bool db_logical_is_up(const db_logical *l);

typedef struct db_logical_stats {
	uint64_t messages;     /* replication messages received (data and keepalives) */
	uint64_t transactions; /* commits decoded */
	uint64_t hints;        /* hints handed over, after per-transaction deduplication */
	uint64_t resyncs;      /* on_resync calls */
	uint64_t visibility_waits; /* checks that found a commit not yet visible to new snapshots */
	uint64_t reconnects;   /* sessions established after the first */
	uint64_t errors;       /* times the session went down */
	uint64_t lag_bytes;    /* server WAL end (as last reported) minus the flushed position; 0 when unknown */
	uint64_t flushed_lsn;  /* last position confirmed to the server */
} db_logical_stats;
void db_logical_get_stats(const db_logical *l, db_logical_stats *out);

/* Tables in pollgate_hint_map per kind at the last (re)connect (index: db/hints.h kinds), -1 = unknown. */
int db_logical_mapped(const db_logical *l, int kind);

#endif
