/*
 * db/queries.c — see queries.h.
 *
 * The column numbers below are the select lists of db_sql_runs and db_sql_packs (db/access.c), in order.
 * JSON columns arrive as their text and are passed on unparsed; the entitled users stay the array literal
 * PostgreSQL wrote.
 */
#include "db/queries.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- the column readers ---- */

int db_col_i64(const PGresult *res, int row, int col, bool nullable, int64_t *out, char *err, size_t errlen)
{
	if (PQgetisnull(res, row, col)) {
		if (!nullable) {
			snprintf(err, errlen, "column %d is NULL", col);
			return -1;
		}
		*out = DB_NULL;
		return 0;
	}
	const char *s = PQgetvalue(res, row, col);
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == INT64_MIN) {
		snprintf(err, errlen, "column %d is not a bigint", col);
		return -1;
	}
	*out = (int64_t)v;
	return 0;
}

const char *db_col_str(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

int db_col_shape(const PGresult *res, int row, int ncols, char *err, size_t errlen)
{
	if (PQnfields(res) != ncols || row < 0 || row >= PQntuples(res)) {
		snprintf(err, errlen, "unexpected result shape (%d columns)", PQnfields(res));
		return -1;
	}
	return 0;
}

/* ---- the rows ---- */

int db_parse_run_row(const PGresult *res, int i, db_run_row *r, char *err, size_t errlen)
{
	if (db_col_shape(res, i, 13, err, errlen) != 0) return -1;
	if (db_col_i64(res, i, 0, false, &r->id, err, errlen) ||
	    db_col_i64(res, i, 1, true, &r->workspace_id, err, errlen) ||
	    db_col_i64(res, i, 2, true, &r->tenant_id, err, errlen) ||
	    db_col_i64(res, i, 8, true, &r->created_at, err, errlen) ||
	    db_col_i64(res, i, 9, true, &r->started_at, err, errlen) ||
	    db_col_i64(res, i, 10, true, &r->completed_at, err, errlen) ||
	    db_col_i64(res, i, 11, false, &r->now, err, errlen))
		return -1;
	r->type = db_col_str(res, i, 3);
	r->status = db_col_str(res, i, 4);
	r->outcome = db_col_str(res, i, 5);
	r->summary_counts = db_col_str(res, i, 6);
	r->failure_summary = db_col_str(res, i, 7);
	r->entitled = db_col_str(res, i, 12);
	if (r->entitled == NULL) {
		snprintf(err, errlen, "entitlement column is NULL");
		return -1;
	}
	return 0;
}

int db_parse_pack_row(const PGresult *res, int i, db_pack_row *p, char *err, size_t errlen)
{
	if (db_col_shape(res, i, 12, err, errlen) != 0) return -1;
	if (db_col_i64(res, i, 0, false, &p->tenant_id, err, errlen)) return -1;
	p->present = !PQgetisnull(res, i, 1);
	if (p->present) {
		if (db_col_i64(res, i, 1, false, &p->id, err, errlen) ||
		    db_col_i64(res, i, 2, true, &p->workspace_id, err, errlen) ||
		    db_col_i64(res, i, 3, true, &p->operation_run_id, err, errlen) ||
		    db_col_i64(res, i, 5, true, &p->generated_at, err, errlen) ||
		    db_col_i64(res, i, 6, true, &p->expires_at, err, errlen) ||
		    db_col_i64(res, i, 7, true, &p->file_size, err, errlen) ||
		    db_col_i64(res, i, 8, true, &p->created_at, err, errlen) ||
		    db_col_i64(res, i, 9, true, &p->updated_at, err, errlen))
			return -1;
		p->status = db_col_str(res, i, 4);
	}
	if (db_col_i64(res, i, 10, false, &p->now, err, errlen)) return -1;
	p->entitled = db_col_str(res, i, 11);
	if (p->entitled == NULL) {
		snprintf(err, errlen, "entitlement column is NULL");
		return -1;
	}
	return 0;
}
