/*
 * db/logical-internal.h — the state of a db_logical session, shared by db/logical.c (the connections
 * and the state machine), db/logical-visible.c (the visibility check on the ordinary connection) and
 * db/logical-hints.c (the mapping of tables to hint kinds, decoded changes to hints, the per-transaction
 * hint buckets), and by nothing else.
 */
#ifndef POLLGATE_DB_LOGICAL_INTERNAL_H
#define POLLGATE_DB_LOGICAL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "db/conn-internal.h"
#include "db/hints.h"
#include "db/logical.h"
#include "db/pgoutput.h"

#define IDENT_MAX 63          /* NAMEDATALEN - 1 */
#define TX_HINTS_MAX 65536    /* hints kept for one transaction; past it, a full re-read */

enum lg_state {
	LG_DOWN,        /* no connection; the timer is the backoff delay */
	LG_PRECONNECT,  /* the ordinary connection: PQconnectPoll; the timer is the handshake deadline */
	LG_CHECKING,    /* SQL_CHECK in flight; same deadline */
	LG_MAPPING,     /* SQL_MAP in flight; same deadline */
	LG_CONNECTING,  /* the replication connection: PQconnectPoll; a new deadline */
	LG_SLOT,        /* CREATE_REPLICATION_SLOT in flight; the timer is SLOT_TIMEOUT_MS */
	LG_STARTING,    /* START_REPLICATION in flight; the connect deadline */
	LG_UP,          /* streaming; the timer is the status tick */
	LG_FATAL,       /* refused for good; the timer fires once to report it */
};

/* One row of pollgate_hint_map. */
typedef struct lg_map {
	uint32_t relid;
	int kind;        /* DB_HINT_* */
	char key[IDENT_MAX + 1]; /* "" = every user (access only) */
} lg_map;

/* What a Relation message told us, for the map rows of that table. */
typedef struct lg_target {
	int kind;
	int col;          /* key column index in the tuples, -1 = everyone */
	bool old_known;   /* the old tuple of UPDATE/DELETE carries the key column */
} lg_target;

typedef struct lg_rel {
	uint32_t relid;
	int n;
	lg_target *t; /* owned */
	int ncols;
} lg_rel;

typedef struct lg_hint {
	int kind;
	int64_t key; /* -1 = everyone */
} lg_hint;

/* Hints of committed transactions waiting to be handed over, and those transactions' xids. */
typedef struct lg_bucket {
	lg_hint *h; /* owned */
	int n, cap;
	uint32_t *xid; /* owned */
	int nx, capx;
	bool resync, access_all;
} lg_bucket;

struct db_logical {
	struct event_base *base; /* borrowed */
	char *conninfo, *application_name, *publication; /* owned */
	int64_t connect_timeout_ms, reconnect_min_ms, reconnect_max_ms, heartbeat_ms;
	void (*on_notify)(void *arg, const char *channel, const char *payload);
	void (*on_resync)(void *arg);
	void (*on_up)(void *arg);
	void (*on_down)(void *arg, const char *why);
	void (*on_fatal)(void *arg, const char *why);
	void *arg;

	enum lg_state state;
	PGconn *pg; /* owned; NULL while down */
	db_conn_io io;
	db_conn_tag tag;
	struct event *timer; /* owned */
	PGresult *res;       /* owned: first result of the statement in flight */
	bool busy, flushing;
	unsigned attempt;
	bool ever_up;
	char fatal_why[512];
	char slot[IDENT_MAX + 1];
	unsigned sessions; /* slots made so far, part of the next name */
	char *start_sql; /* owned: START_REPLICATION for the current slot */
	uint64_t rng;

	lg_map *map; /* owned */
	int n_map;
	int mapped[DB_HINT_KINDS];
	lg_rel *rels; /* owned */
	int n_rels, cap_rels;

	/* The ordinary connection of the checks stays open while streaming: before a commit's hints are
	 * handed over it asks whether a new snapshot sees that transaction (see SQL_VISIBLE). */
	PGconn *aux; /* owned */
	db_conn_io aux_io;
	PGresult *aux_res; /* owned: first result of the check in flight */
	bool aux_busy, aux_flushing;
	int64_t aux_sent_ms;
	struct event *aux_timer; /* owned: the next check, after one found a commit not yet visible */
	int64_t vis_delay_ms;    /* that delay: 1 ms doubling to VIS_DELAY_MAX_MS while it stays invisible */
	char *check_name; /* owned: application_name + "-check" */
	lg_bucket pend; /* commits received since the check in flight was sent */
	lg_bucket chk;  /* commits the check in flight is about */

	/* the stream */
	uint32_t tx_xid;
	bool in_tx;
	lg_bucket tx; /* the transaction being decoded (its xid unused) */
	uint64_t server_end; /* WAL end the server last reported */
	uint64_t flushed;    /* what we confirm */
	int64_t last_status_ms;
	bool reply_asked, heard_since_ask;
	bool status_due; /* a commit was handed over since the last status update */
	db_logical_stats stats;
};


/* db/logical.c */
int64_t db_lg_mono_ms(void);
/* Drop both connections and reconnect after the backoff; `why` is the one-line reason. */
void db_lg_down(db_logical *l, const char *why);

/* db/logical-visible.c */
/* Ask about every commit waiting (l->pend), unless a check is in flight or paced. false after going down. */
bool db_lg_check_send(db_logical *l);
void db_lg_aux_io_cb(evutil_socket_t fd, short what, void *arg);    /* the check connection's socket */
void db_lg_aux_timer_cb(evutil_socket_t fd, short what, void *arg); /* the next check is due */

/* db/logical-hints.c */
void db_lg_rels_clear(db_logical *l);
void db_lg_bucket_clear(lg_bucket *b);
void db_lg_bucket_free(lg_bucket *b);
/* Move everything of `src` (and the xid, when given) into `dst`; `src` is left empty. */
void db_lg_bucket_merge(lg_bucket *dst, lg_bucket *src, bool with_xid, uint32_t xid);
/* Hand over a bucket's hints (deduplicated) through on_notify / on_resync, and empty it. */
void db_lg_bucket_deliver(db_logical *l, lg_bucket *b);
/* A Relation message: where each mapped table's key column is. false = out of memory. */
bool db_lg_on_relation(db_logical *l, const db_pgo_msg *m);
/* An Insert/Update/Delete: its hints into the transaction's bucket (l->tx). */
void db_lg_on_change(db_logical *l, const db_pgo_msg *m);
/* A Truncate of mapped tables: every user / a full re-read. */
void db_lg_on_truncate(db_logical *l, const db_pgo_msg *m);

#endif
