/*
 * tests/unit/db/test_queries.c — db/queries.c: the checked parsing of the rows the runs and packs reads
 * return (their column order is db/access.c's select lists), and the column readers under it. The
 * statements, their parameters and the token rows are db/access.c's, tested in test_access.c.
 */
#include "pgresult_helpers.h"

#include "db/queries.h"

/* A run row as db_sql_runs returns it: id, workspace, tenant, type, status, outcome, summary_counts,
 * failure_summary, created, started, completed, now, entitled. */
static const char *const run_cells[13] = {
	"11", "2", NULL, "sync", "running", NULL, "{\"total\":3}", NULL, "1700000000000000", "1700000000500000", NULL,
	"1700000001000000", "{5,6}"};

static int parse_run(const char *const *cells, db_run_row *row, char *err)
{
	PGresult *res = one_row(13, cells);
	int rc = db_parse_run_row(res, 0, row, err, 160);
	PQclear(res);
	return rc;
}

static void test_run_row_parses_every_field(void **state)
{
	(void)state;
	PGresult *res = one_row(13, run_cells);
	db_run_row r;
	char err[160] = "";
	assert_int_equal(db_parse_run_row(res, 0, &r, err, sizeof err), 0);
	assert_true(r.id == 11 && r.workspace_id == 2 && r.tenant_id == DB_NULL);
	assert_string_equal(r.type, "sync");
	assert_string_equal(r.status, "running");
	assert_null(r.outcome);
	assert_string_equal(r.summary_counts, "{\"total\":3}");
	assert_null(r.failure_summary);
	assert_true(r.created_at == 1700000000000000LL && r.started_at == 1700000000500000LL);
	assert_true(r.completed_at == DB_NULL && r.now == 1700000001000000LL);
	assert_string_equal(r.entitled, "{5,6}");
	PQclear(res);
}

static void test_run_row_refuses_what_it_cannot_trust(void **state)
{
	(void)state;
	static const struct {
		int col;
		const char *value;
	} bad[] = {
		{0, NULL}, {0, "x"}, {0, "-9223372036854775808"}, {1, "2.5"}, {8, "yesterday"}, {11, NULL}, {12, NULL},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *cells[13];
		db_run_row r;
		char err[160] = "";
		memcpy(cells, run_cells, sizeof cells);
		cells[bad[i].col] = bad[i].value;
		if (parse_run(cells, &r, err) != -1)
			fail_msg("accepted column %d = '%s'", bad[i].col, bad[i].value ? bad[i].value : "(null)");
		assert_true(err[0] != '\0');
	}
}

static void test_run_row_refuses_another_shape(void **state)
{
	(void)state;
	PGresult *res = one_row(12, run_cells);
	db_run_row r;
	char err[160] = "";
	assert_int_equal(db_parse_run_row(res, 0, &r, err, sizeof err), -1);
	assert_non_null(strstr(err, "shape"));
	PQclear(res);
}

static void test_pack_row_present_and_absent(void **state)
{
	(void)state;
	const char *present[12] = {"4", "90", "1", NULL, "ready", "1700000000000000", NULL, "2048",
	                           "1700000000000000", "1700000000000001", "1700000002000000", "{7}"};
	const char *absent[12] = {"5", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "1700000002000000", "{}"};
	db_pack_row p;
	char err[160] = "";
	PGresult *res = one_row(12, present);
	assert_int_equal(db_parse_pack_row(res, 0, &p, err, sizeof err), 0);
	assert_true(p.present && p.tenant_id == 4 && p.id == 90 && p.workspace_id == 1);
	assert_true(p.operation_run_id == DB_NULL && p.expires_at == DB_NULL && p.file_size == 2048);
	assert_true(p.generated_at == 1700000000000000LL && p.updated_at == 1700000000000001LL);
	assert_string_equal(p.status, "ready");
	assert_string_equal(p.entitled, "{7}");
	PQclear(res);
	res = one_row(12, absent);
	assert_int_equal(db_parse_pack_row(res, 0, &p, err, sizeof err), 0);
	assert_true(!p.present && p.tenant_id == 5 && p.now == 1700000002000000LL);
	assert_string_equal(p.entitled, "{}");
	PQclear(res);
	absent[11] = NULL; /* the entitlement column is never NULL */
	res = one_row(12, absent);
	assert_int_equal(db_parse_pack_row(res, 0, &p, err, sizeof err), -1);
	PQclear(res);
}

static void test_column_readers(void **state)
{
	(void)state;
	const char *cells[3] = {"-12", NULL, "12 "};
	PGresult *res = one_row(3, cells);
	int64_t v = 0;
	char err[160] = "";
	assert_int_equal(db_col_shape(res, 0, 3, err, sizeof err), 0);
	assert_int_equal(db_col_shape(res, 1, 3, err, sizeof err), -1);
	assert_int_equal(db_col_i64(res, 0, 0, false, &v, err, sizeof err), 0);
	assert_true(v == -12);
	assert_int_equal(db_col_i64(res, 0, 1, true, &v, err, sizeof err), 0);
	assert_true(v == DB_NULL);
	assert_int_equal(db_col_i64(res, 0, 1, false, &v, err, sizeof err), -1);
	assert_string_equal(err, "column 1 is NULL");
	assert_int_equal(db_col_i64(res, 0, 2, false, &v, err, sizeof err), -1);
	assert_string_equal(err, "column 2 is not a bigint");
	assert_null(db_col_str(res, 0, 1));
	assert_string_equal(db_col_str(res, 0, 2), "12 ");
	PQclear(res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run_row_parses_every_field),
		cmocka_unit_test(test_run_row_refuses_what_it_cannot_trust),
		cmocka_unit_test(test_run_row_refuses_another_shape),
		cmocka_unit_test(test_pack_row_present_and_absent),
		cmocka_unit_test(test_column_readers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
