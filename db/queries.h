/*
 * db/queries.h — what the resource reads return, parsed and checked: a run, or a tenant's latest review
 * pack, one per row, and the column readers every row parser of db/ uses. The statements themselves, the
 * entitlement they decide and the token lookup live in db/access.h; the column order parsed here is the
 * select list of its runs and packs statements.
 *
 * Timestamps travel as whole microseconds since the epoch. One PostgreSQL stores as infinity or -infinity
 * has no such value: it comes back as NULL, so one such row never fails the batch it is read in.
 *
 * Rows are parsed into plain structs whose strings point into the PGresult (borrowed: valid while the
 * result is). Every field is validated: a row that does not parse is reported, never half-used.
 */
#ifndef POLLGATE_DB_QUERIES_H
#define POLLGATE_DB_QUERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#define DB_NULL INT64_MIN /* SQL NULL in a nullable bigint / timestamp (microseconds since epoch) */

typedef struct db_run_row {
	int64_t id, workspace_id, tenant_id;
	const char *type, *status, *outcome, *summary_counts, *failure_summary;
	int64_t created_at, started_at, completed_at;
	int64_t now;           /* the database clock at the read, microseconds */
	const char *entitled;  /* "{5,6}": which of the named users may see it (db_each_id, db/access.h) */
} db_run_row;

typedef struct db_pack_row {
	int64_t tenant_id; /* the tenant asked for (always set) */
	bool present;      /* false: the tenant has no review pack */
	int64_t id, workspace_id, operation_run_id, file_size;
	const char *status;
	int64_t generated_at, expires_at, created_at, updated_at;
	int64_t now;
	const char *entitled;
} db_pack_row;

/* Parse row `i`. Return 0, or -1 with a one-line reason in err (the row must then be ignored). */
int db_parse_run_row(const PGresult *res, int i, db_run_row *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
int db_parse_pack_row(const PGresult *res, int i, db_pack_row *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The column readers. db_col_shape: 0 when the result has ncols columns and a row `row`. db_col_i64: the
 * decimal bigint in the cell into *out (DB_NULL for SQL NULL when nullable). Both return 0, or -1 with a
 * one-line reason in err. db_col_str: the cell's text (borrowed from res), or NULL for SQL NULL. */
int db_col_shape(const PGresult *res, int row, int ncols, char *err, size_t errlen)
	__attribute__((warn_unused_result));
int db_col_i64(const PGresult *res, int row, int col, bool nullable, int64_t *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
const char *db_col_str(const PGresult *res, int row, int col);

#endif
