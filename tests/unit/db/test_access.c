/*
 * tests/unit/db/test_access.c — db/access.c: the parameters of the entitlement reads (resource ids, the users
 * to check per resource, keep flags) and of the token lookup (hex hashes), as the array literals
 * PostgreSQL is sent; the entitled-users array that comes back; and the checked parsing of a token row.
 */
#include "pgresult_helpers.h"

#include <stdio.h>
#include <string.h>

#include "db/access.h"

/* ---- entitlement batching ---- */

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
	assert_int_equal(p.count, 0);
	db_batch_params_fini(&p);
}

static void test_one_resource_is_one_element_each(void **state)
{
	(void)state;
	db_batch_params p;
	const int64_t users[] = {9223372036854775807LL, 1, 100};
	db_batch_params_init(&p);
	assert_int_equal(db_batch_params_add(&p, 7, users, 3, true), 0);
	assert_int_equal(db_batch_params_finish(&p), 0);
	assert_string_equal(p.ids, "{7}");
	assert_string_equal(p.users, "{\"{9223372036854775807,1,100}\"}");
	assert_string_equal(p.keep, "{t}");
	assert_int_equal(p.count, 1);
	db_batch_params_fini(&p);
}

static void test_keep_flags_follow_each_resource(void **state)
{
	(void)state;
	db_batch_params p;
	const int64_t u = 3;
	static const bool keep[] = {true, true, false, true, false, false};
	db_batch_params_init(&p);
	for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
		assert_int_equal(db_batch_params_add(&p, (int64_t)i + 1, &u, 1, keep[i]), 0);
	assert_int_equal(db_batch_params_finish(&p), 0);
	assert_string_equal(p.ids, "{1,2,3,4,5,6}");
	assert_string_equal(p.users, "{\"{3}\",\"{3}\",\"{3}\",\"{3}\",\"{3}\",\"{3}\"}");
	assert_string_equal(p.keep, "{t,t,f,t,f,f}");
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
	/* every element is "{1000000000000,...,1000000000299}", quoted, one per resource */
	size_t ulen = strlen(p.users);
	assert_int_equal(ulen, 2 + 200 * (4 + 300 * 13 + 299) + 199);
	assert_int_equal(p.users_len, ulen);
	assert_true(strncmp(p.users, "{\"{1000000000000,1000000000001,", 31) == 0);
	assert_non_null(strstr(p.users, ",1000000000299}\",\"{1000000000000,")); /* one element ends, the next opens */
	assert_string_equal(p.users + ulen - 17, ",1000000000299}\"}");
	assert_int_equal(strlen(p.keep), 2 * 200 + 1);
	assert_true(strncmp(p.keep, "{t,f,t", 6) == 0 && p.keep[strlen(p.keep) - 1] == '}');
	assert_true(p.users_cap > p.users_len && p.ids_cap > p.ids_len && p.keep_cap > p.keep_len);
	db_batch_params_fini(&p);
	assert_null(p.ids);
}

/* ---- the entitled users that come back ---- */

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

/* ---- the token batch ---- */

static void fill(uint8_t h[DB_TOKEN_HASH_LEN], unsigned seed)
{
	for (int k = 0; k < DB_TOKEN_HASH_LEN; k++) h[k] = (uint8_t)(seed * 31u + (unsigned)k * 7u);
}

static const char hash_0_to_31[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static void test_empty_token_batch_is_an_empty_array(void **state)
{
	(void)state;
	db_token_batch t;
	db_token_batch_init(&t);
	assert_int_equal(db_token_batch_finish(&t), 0);
	assert_string_equal(t.lit, "{}");
	assert_int_equal(t.count, 0);
	db_token_batch_fini(&t);
	assert_null(t.lit);
}

static void test_token_batch_of_one_is_its_lower_case_hex(void **state)
{
	(void)state;
	db_token_batch t;
	uint8_t h[DB_TOKEN_HASH_LEN];
	for (int k = 0; k < DB_TOKEN_HASH_LEN; k++) h[k] = (uint8_t)k;
	db_token_batch_init(&t);
	assert_int_equal(db_token_batch_add(&t, h), 0);
	assert_int_equal(db_token_batch_finish(&t), 0);
	char want[80];
	snprintf(want, sizeof want, "{%s}", hash_0_to_31);
	assert_string_equal(t.lit, want);
	assert_int_equal(t.count, 1);
	db_token_batch_fini(&t);
}

static void test_token_batch_hex_is_lower_case_for_every_byte(void **state)
{
	(void)state;
	db_token_batch t;
	uint8_t h[DB_TOKEN_HASH_LEN];
	memset(h, 0xab, sizeof h);
	h[0] = 0xff;
	h[31] = 0xc0;
	db_token_batch_init(&t);
	assert_int_equal(db_token_batch_add(&t, h), 0);
	assert_int_equal(db_token_batch_finish(&t), 0);
	assert_string_equal(t.lit, "{ffababababababababababababababababababababababababababababababc0}");
	db_token_batch_fini(&t);
}

static void test_token_batch_of_many_is_comma_separated_in_order(void **state)
{
	(void)state;
	db_token_batch t;
	uint8_t a[DB_TOKEN_HASH_LEN], b[DB_TOKEN_HASH_LEN];
	for (int k = 0; k < DB_TOKEN_HASH_LEN; k++) a[k] = (uint8_t)k;
	memset(b, 0, sizeof b);
	db_token_batch_init(&t);
	assert_int_equal(db_token_batch_add(&t, a), 0);
	assert_int_equal(db_token_batch_add(&t, b), 0);
	assert_int_equal(db_token_batch_add(&t, a), 0);
	assert_int_equal(db_token_batch_finish(&t), 0);
	char want[256];
	snprintf(want, sizeof want, "{%s,%064d,%s}", hash_0_to_31, 0, hash_0_to_31);
	assert_string_equal(t.lit, want);
	assert_int_equal(t.count, 3);
	db_token_batch_fini(&t);
}

/* Many more hashes than the first buffer holds: every element still where it belongs. */
static void test_token_batch_grows_past_its_first_buffer(void **state)
{
	(void)state;
	enum { N = 5000 };
	db_token_batch t;
	uint8_t h[DB_TOKEN_HASH_LEN];
	db_token_batch_init(&t);
	for (unsigned i = 0; i < N; i++) {
		fill(h, i);
		assert_int_equal(db_token_batch_add(&t, h), 0);
	}
	assert_int_equal(db_token_batch_finish(&t), 0);
	assert_int_equal(t.count, N);
	assert_int_equal(strlen(t.lit), (size_t)N * (2 * DB_TOKEN_HASH_LEN + 1) + 1);
	assert_int_equal(t.len, strlen(t.lit));
	assert_true(t.lit[0] == '{' && t.lit[t.len - 1] == '}');
	for (unsigned i = 0; i < N; i++) {
		const char *e = t.lit + 1 + (size_t)i * (2 * DB_TOKEN_HASH_LEN + 1);
		char want[2 * DB_TOKEN_HASH_LEN + 1];
		fill(h, i);
		for (int k = 0; k < DB_TOKEN_HASH_LEN; k++) snprintf(want + 2 * k, 3, "%02x", h[k]);
		if (memcmp(e, want, 2 * DB_TOKEN_HASH_LEN) != 0) fail_msg("element %u is not its hash", i);
		if (e[2 * DB_TOKEN_HASH_LEN] != (i + 1 < N ? ',' : '}')) fail_msg("element %u is not delimited", i);
	}
	db_token_batch_fini(&t);
}

/* ---- the token rows that come back ---- */

static int parse_token(const char *hash, const char *user, const char *expires, db_token_row *row, char *err)
{
	const char *cells[3] = {hash, user, expires};
	PGresult *res = one_row(3, cells);
	int rc = db_parse_token_row(res, 0, row, err, 160);
	PQclear(res);
	return rc;
}

static void test_token_row_parses(void **state)
{
	(void)state;
	db_token_row row;
	char err[160] = "";
	uint8_t want[DB_TOKEN_HASH_LEN];
	for (int k = 0; k < DB_TOKEN_HASH_LEN; k++) want[k] = (uint8_t)k;
	assert_int_equal(parse_token(hash_0_to_31, "42", "1700000000000000", &row, err), 0);
	assert_memory_equal(row.hash, want, sizeof want);
	assert_true(row.user_id == 42);
	assert_true(row.expires_at == 1700000000000000LL);
}

static void test_token_row_without_expiry_never_expires(void **state)
{
	(void)state;
	db_token_row row;
	char err[160] = "";
	assert_int_equal(parse_token(hash_0_to_31, "9223372036854775807", NULL, &row, err), 0);
	assert_true(row.user_id == INT64_MAX);
	assert_true(row.expires_at == DB_NULL);
}

/* What the batch sends is what a row that comes back for it parses to. */
static void test_token_row_reads_back_a_batched_hash(void **state)
{
	(void)state;
	db_token_batch t;
	db_token_row row;
	char err[160] = "", one[2 * DB_TOKEN_HASH_LEN + 1];
	uint8_t h[DB_TOKEN_HASH_LEN];
	fill(h, 77);
	db_token_batch_init(&t);
	assert_int_equal(db_token_batch_add(&t, h), 0);
	assert_int_equal(db_token_batch_finish(&t), 0);
	memcpy(one, t.lit + 1, 2 * DB_TOKEN_HASH_LEN);
	one[2 * DB_TOKEN_HASH_LEN] = '\0';
	assert_int_equal(parse_token(one, "5", NULL, &row, err), 0);
	assert_memory_equal(row.hash, h, sizeof h);
	db_token_batch_fini(&t);
}

static void test_token_row_refuses_a_bad_hash(void **state)
{
	(void)state;
	char h63[64], h65[66], upper[65], junk[65];
	memcpy(h63, hash_0_to_31, 63);
	h63[63] = '\0';
	snprintf(h65, sizeof h65, "%s0", hash_0_to_31);
	snprintf(upper, sizeof upper, "%s", hash_0_to_31);
	upper[21] = 'A'; /* PostgreSQL's encode() writes lower case; anything else is not one of ours */
	snprintf(junk, sizeof junk, "%s", hash_0_to_31);
	junk[40] = 'g';
	const struct {
		const char *hash, *why;
	} bad[] = {
		{NULL, "not 32 bytes"}, {"", "not 32 bytes"}, {h63, "not 32 bytes"},
		{h65, "not 32 bytes"},  {upper, "not hex"},   {junk, "not hex"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		db_token_row row;
		char err[160] = "";
		if (parse_token(bad[i].hash, "1", NULL, &row, err) != -1)
			fail_msg("accepted hash '%s'", bad[i].hash ? bad[i].hash : "(null)");
		if (strstr(err, bad[i].why) == NULL) fail_msg("hash %zu: reason '%s'", i, err);
	}
}

static void test_token_row_refuses_a_bad_user_or_expiry(void **state)
{
	(void)state;
	const struct {
		const char *user, *expires;
	} bad[] = {
		{NULL, NULL},       {"", NULL},  {"abc", NULL}, {"12x", NULL}, {"99999999999999999999", NULL},
		{"-9223372036854775808", NULL}, {"1", "soon"}, {"1", ""},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		db_token_row row;
		char err[160] = "";
		if (parse_token(hash_0_to_31, bad[i].user, bad[i].expires, &row, err) != -1)
			fail_msg("accepted user '%s' expires '%s'", bad[i].user ? bad[i].user : "(null)",
			         bad[i].expires ? bad[i].expires : "(null)");
		assert_true(err[0] != '\0');
	}
}

static void test_token_row_refuses_another_shape(void **state)
{
	(void)state;
	const char *cells[4] = {hash_0_to_31, "1", NULL, "x"};
	db_token_row row;
	char err[160] = "";
	PGresult *res = one_row(4, cells);
	assert_int_equal(db_parse_token_row(res, 0, &row, err, sizeof err), -1);
	assert_non_null(strstr(err, "shape"));
	PQclear(res);
	res = one_row(3, cells);
	assert_int_equal(db_parse_token_row(res, 1, &row, err, sizeof err), -1); /* no such row */
	PQclear(res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_params_build_two_array_literals),
		cmocka_unit_test(test_empty_batch_params_are_empty_arrays),
		cmocka_unit_test(test_one_resource_is_one_element_each),
		cmocka_unit_test(test_keep_flags_follow_each_resource),
		cmocka_unit_test(test_batch_params_grow_past_their_first_buffer),
		cmocka_unit_test(test_each_id_reads_bigint_array_literals),
		cmocka_unit_test(test_each_id_refuses_anything_else),
		cmocka_unit_test(test_empty_token_batch_is_an_empty_array),
		cmocka_unit_test(test_token_batch_of_one_is_its_lower_case_hex),
		cmocka_unit_test(test_token_batch_hex_is_lower_case_for_every_byte),
		cmocka_unit_test(test_token_batch_of_many_is_comma_separated_in_order),
		cmocka_unit_test(test_token_batch_grows_past_its_first_buffer),
		cmocka_unit_test(test_token_row_parses),
		cmocka_unit_test(test_token_row_without_expiry_never_expires),
		cmocka_unit_test(test_token_row_reads_back_a_batched_hash),
		cmocka_unit_test(test_token_row_refuses_a_bad_hash),
		cmocka_unit_test(test_token_row_refuses_a_bad_user_or_expiry),
		cmocka_unit_test(test_token_row_refuses_another_shape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
