/*
 * tests/unit/test_queries.c — db/queries.c: the batch parameter literals and the checked parsing of the
 * entitled-users array that comes back from PostgreSQL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "db/queries.h"

static void test_batch_params_build_two_array_literals(void **state)
{
	(void)state;
	db_batch_params p;
	const int64_t users_a[] = {5, 6};
	db_batch_params_init(&p);
	assert_int_equal(db_batch_params_add(&p, 42, users_a, 2, false), 0);
	assert_int_equal(db_batch_params_add(&p, 43, NULL, 0, true), 0);
	assert_int_equal(db_batch_params_add(&p, INT64_MAX, users_a + 1, 1, false), 0);
	assert_int_equal(db_batch_params_finish(&p), 0);
	assert_string_equal(p.ids, "{42,43,9223372036854775807}");
	assert_string_equal(p.users, "{\"{5,6}\",\"{}\",\"{6}\"}");
	assert_string_equal(p.keep, "{f,t,f}");
	assert_int_equal(p.count, 3);
	db_batch_params_fini(&p);
}

static void test_empty_batch_params_are_empty_arrays(void **state)
{
	(void)state;
	db_batch_params p;
	db_batch_params_init(&p);
	assert_int_equal(db_batch_params_finish(&p), 0);
	assert_string_equal(p.ids, "{}");
	assert_string_equal(p.users, "{}");
	assert_string_equal(p.keep, "{}");
	db_batch_params_fini(&p);
}

static void test_batch_params_grow_past_their_first_buffer(void **state)
{
	(void)state;
	db_batch_params p;
	int64_t users[300];
	for (int i = 0; i < 300; i++) users[i] = 1000000000000LL + i;
	db_batch_params_init(&p);
	for (int i = 0; i < 200; i++) assert_int_equal(db_batch_params_add(&p, i + 1, users, 300, i % 2 == 0), 0);
	assert_int_equal(db_batch_params_finish(&p), 0);
	assert_int_equal(p.count, 200);
	assert_true(p.ids[0] == '{' && p.ids[strlen(p.ids) - 1] == '}');
	assert_true(strlen(p.users) > 200 * 300 * 13);
	assert_int_equal(strlen(p.keep), 2 * 200 + 1);
	assert_true(strncmp(p.keep, "{t,f,t", 6) == 0 && p.keep[strlen(p.keep) - 1] == '}');
	db_batch_params_fini(&p);
}

typedef struct collected {
	int64_t ids[8];
	int n;
} collected;

static void collect(void *arg, int64_t id)
{
	collected *c = arg;
	if (c->n < 8) c->ids[c->n] = id;
	c->n++;
}

static void test_each_id_reads_bigint_array_literals(void **state)
{
	(void)state;
	collected c = {{0}, 0};
	assert_int_equal(db_each_id("{}", collect, &c), 0);
	assert_int_equal(db_each_id("{7}", collect, &c), 1);
	assert_int_equal(db_each_id("{1,2,9223372036854775807}", collect, &c), 3);
	assert_int_equal(c.n, 4);
	assert_true(c.ids[0] == 7 && c.ids[1] == 1 && c.ids[3] == INT64_MAX);
}

static void test_each_id_refuses_anything_else(void **state)
{
	(void)state;
	static const char *const bad[] = {NULL, "", "{", "}", "{1,}", "{,1}", "{1 2}", "{1}x", "1,2", "{a}", "{1,,2}",
	                                  "{99999999999999999999}", "{NULL}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		collected c = {{0}, 0};
		if (db_each_id(bad[i], collect, &c) != -1) fail_msg("accepted '%s'", bad[i] ? bad[i] : "(null)");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_params_build_two_array_literals),
		cmocka_unit_test(test_empty_batch_params_are_empty_arrays),
		cmocka_unit_test(test_batch_params_grow_past_their_first_buffer),
		cmocka_unit_test(test_each_id_reads_bigint_array_literals),
		cmocka_unit_test(test_each_id_refuses_anything_else),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
