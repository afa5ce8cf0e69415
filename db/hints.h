/*
 * db/hints.h — can the database send each kind of wake-up hint? The hint-trigger check.
 *
 * The hints come from row triggers the migrations (or an operator, with pollgate_attach) install on the
 * tables the application writes: every one of them calls the SQL function pollgate_hint() with the kind
 * ("run", "review_pack", "access") as its first argument (db/migrations/000_attach.sql). A deployment
 * that maps its own schema with views gets no trigger from the migrations, and without one a change of
 * that kind reaches held requests only through the safety net. This module owns the one catalog query
 * that counts, per kind, the tables carrying an enabled hint trigger, its parsing, and the warning that
 * names the fix. The query reads only pg_trigger and pg_proc (readable by any role, no lock that a writer
 * waits on); db/listen.c runs it on the LISTEN session after every (re)connect.
 */
#ifndef POLLGATE_DB_HINTS_H
#define POLLGATE_DB_HINTS_H

#include <stddef.h>

#include <libpq-fe.h>

enum { DB_HINT_RUN, DB_HINT_REVIEW_PACK, DB_HINT_ACCESS, DB_HINT_KINDS };

/* Rows (kind text, tables bigint), one per kind, in no particular order. No parameters. */
extern const char db_hints_sql[];

/* "run", "review_pack", "access"; NULL out of range. */
const char *db_hint_kind_name(int kind);

typedef struct db_hints {
	int tables[DB_HINT_KINDS]; /* tables with an enabled hint trigger of that kind; -1 = not known */
} db_hints;

void db_hints_init(db_hints *h); /* every count unknown */

/* Parse the result of db_hints_sql into `out` (left unchanged on error). Returns 0, or -1 with a
 * one-line reason in err. */
int db_hints_parse(const PGresult *res, db_hints *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Log the outcome: one warning per kind without a trigger (naming the kind and the pollgate_attach call
 * that fixes it), else one info line with the counts. */
void db_hints_log(const db_hints *h);

#endif
