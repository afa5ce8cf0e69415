/*
 * tests/unit/db/test_hints.c — db/hints.c: the checked parsing of the hint-trigger count (one row per kind)
 * and the kind names /metrics labels its gauge with. Results are built with libpq's own PGresult
 * constructors, so the parser meets exactly what PQgetvalue/PQgetisnull would give it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "db/hints.h"

/* A two-column text result with `n` rows; a NULL count is SQL NULL. */
static PGresult *result(int n, const char *const kinds[], const char *const counts[])
{
	PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	PGresAttDesc att[2];
	memset(att, 0, sizeof att);
	att[0].name = (char *)"kind";
	att[1].name = (char *)"count";
	att[0].typid = 25;
	att[1].typid = 20;
	att[0].typlen = att[1].typlen = -1;
	att[0].atttypmod = att[1].atttypmod = -1;
	assert_non_null(r);
	assert_int_equal(PQsetResultAttrs(r, 2, att), 1);
	for (int i = 0; i < n; i++) {
		assert_int_equal(PQsetvalue(r, i, 0, (char *)kinds[i], (int)strlen(kinds[i])), 1);
		assert_int_equal(PQsetvalue(r, i, 1, (char *)counts[i], counts[i] ? (int)strlen(counts[i]) : -1), 1);
	}
	return r;
}

static void test_counts_are_read_per_kind_in_any_order(void **state)
{
	(void)state;
	const char *kinds[] = {"access", "run", "review_pack"};
	const char *counts[] = {"5", "1", "0"};
	PGresult *r = result(3, kinds, counts);
	db_hints h;
	char err[128];
	db_hints_init(&h);
	assert_int_equal(db_hints_parse(r, &h, err, sizeof err), 0);
	assert_int_equal(h.tables[DB_HINT_RUN], 1);
	assert_int_equal(h.tables[DB_HINT_REVIEW_PACK], 0);
	assert_int_equal(h.tables[DB_HINT_ACCESS], 5);
	PQclear(r);
}

static void expect_refused(int n, const char *const kinds[], const char *const counts[])
{
	PGresult *r = result(n, kinds, counts);
	db_hints h;
	char err[128] = "";
	db_hints_init(&h);
	h.tables[DB_HINT_RUN] = 7; /* left unchanged on error */
	assert_int_equal(db_hints_parse(r, &h, err, sizeof err), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(h.tables[DB_HINT_RUN], 7);
	PQclear(r);
}

static void test_anything_else_is_refused_and_changes_nothing(void **state)
{
	(void)state;
	const char *three[] = {"run", "review_pack", "access"};
	const char *unknown[] = {"run", "review_pack", "runs"};
	const char *ok[] = {"1", "1", "1"};
	const char *neg[] = {"1", "-1", "1"};
	const char *junk[] = {"1", "1x", "1"};
	const char *empty[] = {"1", "", "1"};
	const char *null[] = {"1", NULL, "1"};
	const char *huge[] = {"1", "99999999999999999999", "1"};
	expect_refused(2, three, ok);     /* a kind missing */
	expect_refused(3, unknown, ok);   /* a kind nobody asked for */
	expect_refused(3, three, neg);
	expect_refused(3, three, junk);
	expect_refused(3, three, empty);
	expect_refused(3, three, null);
	expect_refused(3, three, huge);
	assert_int_equal(db_hints_parse(NULL, &(db_hints){{0, 0, 0}}, (char[8]){0}, 8), -1);
}

static void test_kind_names_match_the_trigger_arguments(void **state)
{
	(void)state;
	assert_string_equal(db_hint_kind_name(DB_HINT_RUN), "run");
	assert_string_equal(db_hint_kind_name(DB_HINT_REVIEW_PACK), "review_pack");
	assert_string_equal(db_hint_kind_name(DB_HINT_ACCESS), "access");
	assert_null(db_hint_kind_name(DB_HINT_KINDS));
	assert_null(db_hint_kind_name(-1));
	/* The query asks for exactly these kinds, and only triggers of the pollgate_hint function. */
	assert_non_null(strstr(db_hints_sql, "'{run,review_pack,access}'"));
	assert_non_null(strstr(db_hints_sql, "proname = 'pollgate_hint'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_are_read_per_kind_in_any_order),
		cmocka_unit_test(test_anything_else_is_refused_and_changes_nothing),
		cmocka_unit_test(test_kind_names_match_the_trigger_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
