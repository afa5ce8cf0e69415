/*
 * tests/unit/db/pgresult_helpers.h — a PGresult built by libpq's own constructors, for the db/ row parsers'
 * tests (test_access.c, test_queries.c): `ncols` text columns and one row of cells, a NULL cell being SQL
 * NULL, exactly as a server's text-format answer reads. Static inline, so each test file links alone.
 */
#ifndef POLLGATE_TESTS_PGRESULT_HELPERS_H
#define POLLGATE_TESTS_PGRESULT_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

/* One row of `ncols` (at most 16) cells; the caller PQclear()s it. */
static inline PGresult *one_row(int ncols, const char *const *cells)
{
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	PGresAttDesc att[16];
	char names[16][16];

	assert_non_null(res);
	assert_true(ncols <= 16);
	memset(att, 0, sizeof att);
	for (int c = 0; c < ncols; c++) {
		snprintf(names[c], sizeof names[c], "c%d", c);
		att[c].name = names[c];
		att[c].typlen = -1;
	}
	assert_int_equal(PQsetResultAttrs(res, ncols, att), 1);
	for (int c = 0; c < ncols; c++)
		assert_int_equal(PQsetvalue(res, 0, c, (char *)cells[c], cells[c] ? (int)strlen(cells[c]) : -1), 1);
	return res;
}

#endif
