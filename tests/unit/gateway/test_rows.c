/*
 * tests/unit/gateway/test_rows.c — gateway/rows.c: every field of a db/ row lands in the same-named field of the
 * policy/ row (each field gets a distinct value, so a swapped pair shows), strings are borrowed as they
 * are, and DB_NULL arrives as POL_NULL in every nullable field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gateway/rows.h"

static void test_run_fields_by_name(void **state)
{
	(void)state;
	const db_run_row in = {.id = 1, .workspace_id = 2, .tenant_id = 3, .type = "t", .status = "s",
	                       .outcome = "o", .summary_counts = "{}", .failure_summary = "f", .created_at = 4,
	                       .started_at = 5, .completed_at = 6, .now = 7, .entitled = "{1}"};
	pol_run out;
	gw_run_from_db(&in, &out);
	assert_int_equal(out.id, 1);
	assert_int_equal(out.workspace_id, 2);
	assert_int_equal(out.tenant_id, 3);
	assert_ptr_equal(out.type, in.type);
	assert_ptr_equal(out.status, in.status);
	assert_ptr_equal(out.outcome, in.outcome);
	assert_ptr_equal(out.summary_counts, in.summary_counts);
	assert_ptr_equal(out.failure_summary, in.failure_summary);
	assert_int_equal(out.created_at, 4);
	assert_int_equal(out.started_at, 5);
	assert_int_equal(out.completed_at, 6);
}

static void test_run_nulls(void **state)
{
	(void)state;
	const db_run_row in = {.id = 1, .workspace_id = 2, .tenant_id = DB_NULL, .created_at = DB_NULL,
	                       .started_at = DB_NULL, .completed_at = DB_NULL};
	pol_run out;
	gw_run_from_db(&in, &out);
	assert_true(out.tenant_id == POL_NULL);
	assert_true(out.created_at == POL_NULL);
	assert_true(out.started_at == POL_NULL);
	assert_true(out.completed_at == POL_NULL);
	assert_null(out.type);
}

static void test_pack_fields_by_name(void **state)
{
	(void)state;
	const db_pack_row in = {.tenant_id = 1, .present = true, .id = 2, .workspace_id = 3,
	                        .operation_run_id = 4, .file_size = 5, .status = "ready", .generated_at = 6,
	                        .expires_at = 7, .created_at = 8, .updated_at = 9, .now = 10, .entitled = "{}"};
	pol_pack out;
	gw_pack_from_db(&in, &out);
	assert_true(out.present);
	assert_int_equal(out.tenant_id, 1);
	assert_int_equal(out.id, 2);
	assert_int_equal(out.workspace_id, 3);
	assert_int_equal(out.operation_run_id, 4);
	assert_int_equal(out.file_size, 5);
	assert_ptr_equal(out.status, in.status);
	assert_int_equal(out.generated_at, 6);
	assert_int_equal(out.expires_at, 7);
	assert_int_equal(out.created_at, 8);
	assert_int_equal(out.updated_at, 9);
}

static void test_pack_nulls(void **state)
{
	(void)state;
	const db_pack_row in = {.tenant_id = 1, .present = false, .id = DB_NULL, .workspace_id = DB_NULL,
	                        .operation_run_id = DB_NULL, .file_size = DB_NULL, .generated_at = DB_NULL,
	                        .expires_at = DB_NULL, .created_at = DB_NULL, .updated_at = DB_NULL};
	pol_pack out;
	gw_pack_from_db(&in, &out);
	assert_false(out.present);
	assert_int_equal(out.tenant_id, 1);
	const int64_t *nullable[] = {&out.id, &out.workspace_id, &out.operation_run_id, &out.file_size,
	                             &out.generated_at, &out.expires_at, &out.created_at, &out.updated_at};
	for (size_t i = 0; i < sizeof nullable / sizeof nullable[0]; i++)
		if (*nullable[i] != POL_NULL) fail_msg("nullable field %zu is %lld", i, (long long)*nullable[i]);
	assert_true(gw_row_nullable(DB_NULL) == POL_NULL);
	assert_int_equal(gw_row_nullable(0), 0);
	assert_int_equal(gw_row_nullable(-1), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run_fields_by_name),
		cmocka_unit_test(test_run_nulls),
		cmocka_unit_test(test_pack_fields_by_name),
		cmocka_unit_test(test_pack_nulls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
