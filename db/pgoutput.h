/*
 * db/pgoutput.h — decoding of the logical replication stream that db/logical.c reads: the CopyData
 * messages of START_REPLICATION (XLogData 'w', primary keepalive 'k'), the pgoutput messages an XLogData
 * carries (protocol version 1: Begin, Commit, Relation, Insert, Update, Delete, Truncate; every other type
 * is reported as such and skipped), their TupleData, and the standby status update we send back.
 *
 * Pure functions: bytes in, a decoded view out. No connection, no event loop, no allocation. Every length
 * and count is checked against the bytes that are there before anything is read, so a malformed or
 * hostile message is refused with -1 and nothing past the buffer is ever read. A decoded view points into
 * the caller's buffer (valid while it is). Trailing bytes after a known message are ignored, as a later
 * protocol version may append fields.
 */
#ifndef POLLGATE_DB_PGOUTPUT_H
#define POLLGATE_DB_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One CopyData message of the stream. */
typedef struct db_pgo_copy {
	char type;          /* 'w' XLogData, 'k' keepalive, anything else: unknown (nothing else is set) */
	uint64_t wal_end;   /* 'w': end of this data on the server; 'k': the server's WAL end */
	bool reply;         /* 'k': the server asks for a status update now */
	const unsigned char *data; /* 'w': the pgoutput message */
	size_t len;
} db_pgo_copy;

/* 0, or -1 when a 'w'/'k' message is shorter than its header (an empty message is -1 too). */
int db_pgo_copy_parse(const void *buf, size_t len, db_pgo_copy *out);

/* A TupleData, already walked once: every column is 'n' null, 'u' unchanged toast, or 't'/'b' with a
 * length that fits. */
typedef struct db_pgo_tuple {
	const unsigned char *p; /* at the column count */
	size_t n;               /* bytes from p to the end of the tuple */
	int ncols;
} db_pgo_tuple;

/* One column value of a tuple. */
typedef struct db_pgo_col {
	char kind; /* 'n' null, 'u' unchanged toast, 't' text, 'b' binary, 0 = no such column */
	const char *v; /* 't'/'b': the bytes (not NUL-terminated) */
	size_t len;
} db_pgo_col;

/* Column `i` of a decoded tuple (kind 0 when i is out of range). */
void db_pgo_tuple_col(const db_pgo_tuple *t, int i, db_pgo_col *out);

/* A column value as a hint key: a positive decimal id of at most 19 digits. Returns the id, 0 when the
 * column is null, unchanged toast or absent (no key: nothing to hint), -1 when it is something else. */
int64_t db_pgo_col_id(const db_pgo_col *c);

/* One column of a Relation message. */
typedef struct db_pgo_relcol {
	unsigned flags; /* bit 0: part of the replica identity key */
	const char *name;
	uint32_t type_oid;
	int32_t typmod;
} db_pgo_relcol;

/* One pgoutput message. */
typedef struct db_pgo_msg {
	char type;        /* 'B' 'C' 'R' 'I' 'U' 'D' 'T'; any other byte: skipped, nothing else is set */
	uint32_t xid;     /* B */
	uint64_t lsn;     /* B: final LSN; C: end LSN of the transaction */
	uint32_t relid;   /* R I U D */
	/* R */
	const char *nsp, *name;
	char ident;       /* replica identity: 'd' default, 'n' nothing, 'f' full, 'i' index */
	int ncols;
	const unsigned char *cols; /* the column list, walked once; read with db_pgo_relcol_at */
	size_t cols_len;
	/* I U D */
	char old_kind;    /* U D: 'K' key columns only, 'O' the whole old row; 0 none (I, or U without) */
	bool has_new;     /* I U */
	db_pgo_tuple old_tuple, new_tuple;
	/* T */
	uint32_t n_trunc; /* relids, read with db_pgo_trunc_relid */
	uint8_t trunc_options;
	const unsigned char *trunc;
} db_pgo_msg;

/* 0, or -1 when the message is malformed (short, a count the bytes cannot hold, a string without its
 * NUL, a bad tuple or marker byte). An empty message is -1. */
int db_pgo_msg_parse(const void *buf, size_t len, db_pgo_msg *out);

/* Walk the columns of a parsed Relation: start with *pos = 0; 1 and the column, 0 after the last. */
int db_pgo_relcol_next(const db_pgo_msg *m, size_t *pos, db_pgo_relcol *out);

/* Relid `i` (< n_trunc) of a parsed Truncate. */
uint32_t db_pgo_trunc_relid(const db_pgo_msg *m, uint32_t i);

/* The standby status update ('r'): written = flushed = applied = `flushed`, the client clock in
 * microseconds since 2000-01-01, and whether the server should reply at once. */
#define DB_PGO_STATUS_LEN 34
void db_pgo_status(unsigned char out[DB_PGO_STATUS_LEN], uint64_t flushed, int64_t now_us, bool ask_reply);

#endif
