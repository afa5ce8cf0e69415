/*
 * tests/unit/policy/test_policy_body.c — unit tests of policy/policy.c: the representation a browser gets.
 *
 * Owns the exact bytes of the run and pack bodies (key order included, never-served keys absent), how
 * bad JSON columns, invalid UTF-8 and out-of-range timestamps are served (null, and counted), clearing a
 * view, and the ETag: its form, that it is the ETag of the body, stable for the same input and for a
 * terminal run over time, and changed by any field and by an active run crossing an interval step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "policy/policy.h"

#include "policy_helpers.h"

/* ------------------------------------------------------------------------------------------------ */
/* Bodies */

static void test_api_md_example_run_body_is_exact(void **state)
{
	pol_config c;
	pol_run r = example_run();
	pol_view v;

	(void)state;
	pol_config_default(&c);
	v = run_view(&c, &r, T0 + SEC(32));
	assert_string_equal(v.body,
	                    "{\"run\":{\"id\":42,\"workspace_id\":1,\"tenant_id\":7,\"type\":\"inventory.sync\","
	                    "\"status\":\"running\",\"outcome\":null,\"summary_counts\":{\"total\":10,\"processed\":4},"
	                    "\"failure_summary\":null,\"created_at\":\"2026-03-08T11:00:00Z\","
	                    "\"started_at\":\"2026-03-08T11:00:02Z\",\"completed_at\":null},"
	                    "\"state\":\"running\",\"terminal\":false,\"poll\":{\"interval_ms\":5000}}");
	assert_int_equal(v.bad_fields, 0);
	pol_view_clear(&v);
}

static void test_full_run_body_is_exact(void **state)
{
	pol_config c;
	pol_run r = full_run();
	pol_view v;

	(void)state;
	pol_config_default(&c);
	v = run_view(&c, &r, T0 + SEC(3600));
	assert_string_equal(v.body,
	                    "{\"run\":{\"id\":42,\"workspace_id\":1,\"tenant_id\":7,\"type\":\"inventory.sync\","
	                    "\"status\":\"completed\",\"outcome\":\"partially_succeeded\","
	                    "\"summary_counts\":{\"total\":10,\"processed\":10,\"failed\":2},"
	                    "\"failure_summary\":[{\"code\":\"timeout\",\"count\":2}],"
	                    "\"created_at\":\"2026-03-08T11:00:00Z\",\"started_at\":\"2026-03-08T11:00:02.123456Z\","
	                    "\"completed_at\":\"2026-03-08T11:05:00Z\"},"
	                    "\"state\":\"partial\",\"terminal\":true,\"poll\":null}");
	assert_string_equal(v.state, "partial");
	assert_true(v.terminal);
	assert_false(v.active);
	assert_int_equal(v.bad_fields, 0);
	pol_view_clear(&v);
}

static void test_run_with_all_nullables_null_body_is_exact(void **state)
{
	pol_config c;
	pol_run r = {
		.id = 5,
		.workspace_id = 2,
		.tenant_id = POL_NULL,
		.created_at = POL_NULL,
		.started_at = POL_NULL,
		.completed_at = POL_NULL,
	};
	pol_view v;

	(void)state;
	pol_config_default(&c);
	v = run_view(&c, &r, T0);
	assert_string_equal(v.body,
	                    "{\"run\":{\"id\":5,\"workspace_id\":2,\"tenant_id\":null,\"type\":null,\"status\":null,"
	                    "\"outcome\":null,\"summary_counts\":null,\"failure_summary\":null,\"created_at\":null,"
	                    "\"started_at\":null,\"completed_at\":null},"
	                    "\"state\":\"unknown\",\"terminal\":false,\"poll\":null}");
	assert_int_equal(v.bad_fields, 0);
	pol_view_clear(&v);
}

static void test_full_pack_body_is_exact(void **state)
{
	pol_config c;
	pol_pack p = full_pack();
	pol_view v;

	(void)state;
	pol_config_default(&c);
	v = pack_view(&c, &p);
	assert_string_equal(v.body,
	                    "{\"review_pack\":{\"id\":9,\"workspace_id\":1,\"tenant_id\":7,\"operation_run_id\":42,"
	                    "\"status\":\"ready\",\"generated_at\":\"2026-03-08T11:10:00Z\","
	                    "\"expires_at\":\"2026-03-15T11:10:00Z\",\"file_size\":123456789012,"
	                    "\"created_at\":\"2026-03-08T11:00:00Z\",\"updated_at\":\"2026-03-08T11:10:00.000123Z\"},"
	                    "\"state\":\"ready\",\"terminal\":true,\"poll\":null}");
	pol_view_clear(&v);
}

static void test_api_md_example_pack_body_is_exact(void **state)
{
	pol_config c;
	pol_pack p = generating_pack();
	pol_view v;

	(void)state;
	pol_config_default(&c);
	v = pack_view(&c, &p);
	assert_string_equal(v.body,
	                    "{\"review_pack\":{\"id\":9,\"workspace_id\":1,\"tenant_id\":7,\"operation_run_id\":42,"
	                    "\"status\":\"generating\",\"generated_at\":null,\"expires_at\":null,\"file_size\":null,"
	                    "\"created_at\":\"2026-03-08T11:00:00Z\",\"updated_at\":\"2026-03-08T11:00:00Z\"},"
	                    "\"state\":\"generating\",\"terminal\":false,\"poll\":{\"interval_ms\":10000}}");
	pol_view_clear(&v);
}

static void test_no_pack_body_is_exact(void **state)
{
	pol_config c;
	pol_pack p = full_pack(); /* every other field is ignored */
	pol_view v;

	(void)state;
	pol_config_default(&c);
	p.present = false;
	v = pack_view(&c, &p);
	assert_string_equal(v.body, "{\"review_pack\":null,\"state\":\"none\",\"terminal\":false,\"poll\":null}");
	assert_string_equal(v.state, "none");
	assert_false(v.active);
	assert_false(v.terminal);
	assert_int_equal(v.interval_ms, 0);
	pol_view_clear(&v);
}

/* Checks that obj has exactly `keys`, in that order. */
static void check_keys(const char *name, json_t *obj, const char *const *keys, size_t n)
{
	size_t i = 0;

	if (!json_is_object(obj)) fail_msg("%s: not an object", name);
	for (void *it = json_object_iter(obj); it != NULL; it = json_object_iter_next(obj, it), i++) {
		if (i >= n) fail_msg("%s: unexpected key '%s'", name, json_object_iter_key(it));
		check_str(name, json_object_iter_key(it), keys[i]);
	}
	if (i != n) fail_msg("%s: %zu keys, want %zu", name, i, n);
}

static const char *const never_served[] = {"context", "options", "summary", "file_path", "file_disk",
                                           "user_id", "initiated_by_user_id"};

static void test_bodies_carry_exactly_the_api_keys_in_order(void **state)
{
	static const char *const top_run[] = {"run", "state", "terminal", "poll"};
	static const char *const run_keys[] = {"id", "workspace_id", "tenant_id", "type", "status", "outcome",
	                                       "summary_counts", "failure_summary", "created_at", "started_at",
	                                       "completed_at"};
	static const char *const top_pack[] = {"review_pack", "state", "terminal", "poll"};
	static const char *const pack_keys[] = {"id", "workspace_id", "tenant_id", "operation_run_id", "status",
	                                        "generated_at", "expires_at", "file_size", "created_at",
	                                        "updated_at"};
	pol_config c;
	pol_run r = full_run();
	pol_pack p = full_pack();
	pol_view rv, pv;
	json_t *rj, *pj;

	(void)state;
	pol_config_default(&c);
	rv = run_view(&c, &r, T0);
	pv = pack_view(&c, &p);
	rj = json_loads(rv.body, 0, NULL);
	pj = json_loads(pv.body, 0, NULL);
	assert_non_null(rj);
	assert_non_null(pj);
	check_keys("run body", rj, top_run, NELEM(top_run));
	check_keys("run object", json_object_get(rj, "run"), run_keys, NELEM(run_keys));
	check_keys("pack body", pj, top_pack, NELEM(top_pack));
	check_keys("pack object", json_object_get(pj, "review_pack"), pack_keys, NELEM(pack_keys));
	for (size_t i = 0; i < NELEM(never_served); i++) {
		char quoted[64];

		snprintf(quoted, sizeof quoted, "\"%s\"", never_served[i]);
		if (strstr(rv.body, quoted) != NULL) fail_msg("run body serves %s", quoted);
		if (strstr(pv.body, quoted) != NULL) fail_msg("pack body serves %s", quoted);
	}
	json_decref(rj);
	json_decref(pj);
	pol_view_clear(&rv);
	pol_view_clear(&pv);
}

static const struct bad_field_case {
	const char *name;
	const char *summary_counts, *failure_summary;
	const char *want_summary, *want_failure; /* compact JSON of the served values */
	int bad_fields;
} bad_field_cases[] = {
	{"a JSON object column is re-serialised compact", "{\"a\": 1, \"b\": [true, null]}", NULL,
	 "{\"a\":1,\"b\":[true,null]}", "null", 0},
	{"a JSON scalar column is served as is", "3", "\"boom\"", "3", "\"boom\"", 0},
	{"a JSON null column is served as null and is not bad", "null", "[]", "null", "[]", 0},
	{"an unparsable column is served as null and counted", "{\"a\": ", NULL, "null", "null", 1},
	{"two unparsable columns are counted twice", "nope", "[1,", "null", "null", 2},
	{"an empty column is unparsable", "", "{}", "null", "{}", 1},
	{"trailing garbage after a JSON value is unparsable", "{} {}", NULL, "null", "null", 1},
	{"an integer beyond 64 bits is unparsable", "{\"n\": 99999999999999999999}", NULL, "null", "null", 1},
};

static void test_json_columns_parse_or_serve_null_and_count(void **state)
{
	pol_config c;

	(void)state;
	pol_config_default(&c);
	for (size_t i = 0; i < NELEM(bad_field_cases); i++) {
		const struct bad_field_case *k = &bad_field_cases[i];
		pol_run r = full_run();
		pol_view v;
		json_t *root;
		char *got;

		r.summary_counts = k->summary_counts;
		r.failure_summary = k->failure_summary;
		v = run_view(&c, &r, T0);
		check_i64(k->name, v.bad_fields, k->bad_fields);
		root = json_loads(v.body, 0, NULL);
		CHECK(k->name, root != NULL);
		got = json_dumps(json_object_get(json_object_get(root, "run"), "summary_counts"),
		                 JSON_COMPACT | JSON_ENCODE_ANY);
		check_str(k->name, got, k->want_summary);
		free(got);
		got = json_dumps(json_object_get(json_object_get(root, "run"), "failure_summary"),
		                 JSON_COMPACT | JSON_ENCODE_ANY);
		check_str(k->name, got, k->want_failure);
		free(got);
		json_decref(root);
		pol_view_clear(&v);
	}
}

static void test_strings_are_escaped_and_invalid_utf8_is_served_as_null(void **state)
{
	pol_config c;
	pol_run r = full_run();
	pol_view v;

	(void)state;
	pol_config_default(&c);
	r.type = "a\"b\\c\n\xc3\xbc"; /* quote, backslash, newline, U+00FC */
	v = run_view(&c, &r, T0);
	assert_non_null(strstr(v.body, "\"type\":\"a\\\"b\\\\c\\n\xc3\xbc\","));
	assert_int_equal(v.bad_fields, 0);
	pol_view_clear(&v);

	r.type = "bad\xc3(";
	v = run_view(&c, &r, T0);
	assert_non_null(strstr(v.body, "\"type\":null,"));
	assert_int_equal(v.bad_fields, 1);
	pol_view_clear(&v);

	r.type = "\xed\xa0\x80"; /* an encoded surrogate */
	v = run_view(&c, &r, T0);
	assert_non_null(strstr(v.body, "\"type\":null,"));
	assert_int_equal(v.bad_fields, 1);
	pol_view_clear(&v);
}

static void test_timestamp_out_of_rfc3339_range_is_served_as_null_and_counted(void **state)
{
	pol_config c;
	pol_run r = full_run();
	pol_pack p = full_pack();
	pol_view v;

	(void)state;
	pol_config_default(&c);
	r.completed_at = SEC(253402300800); /* year 10000 */
	v = run_view(&c, &r, T0);
	assert_non_null(strstr(v.body, "\"completed_at\":null}"));
	assert_int_equal(v.bad_fields, 1);
	pol_view_clear(&v);

	p.expires_at = INT64_MAX;
	v = pack_view(&c, &p);
	assert_non_null(strstr(v.body, "\"expires_at\":null,"));
	assert_int_equal(v.bad_fields, 1);
	pol_view_clear(&v);
}

static void test_view_clear_frees_and_zeroes_and_accepts_null(void **state)
{
	pol_config c;
	pol_run r = full_run();
	pol_view v, zero;

	(void)state;
	pol_config_default(&c);
	v = run_view(&c, &r, T0);
	pol_view_clear(&v);
	memset(&zero, 0, sizeof zero);
	assert_memory_equal(&v, &zero, sizeof v);
	pol_view_clear(&v); /* twice is harmless */
	pol_view_clear(NULL);
}

/* ------------------------------------------------------------------------------------------------ */
/* ETags */

static void check_etag_form(const char *name, const char *etag)
{
	if (strlen(etag) != POL_ETAG_LEN || etag[0] != '"' || etag[POL_ETAG_LEN - 1] != '"')
		fail_msg("%s: ETag %s is not a quoted 32-digit value", name, etag);
	for (size_t i = 1; i < POL_ETAG_LEN - 1; i++)
		if (!((etag[i] >= '0' && etag[i] <= '9') || (etag[i] >= 'a' && etag[i] <= 'f')))
			fail_msg("%s: ETag %s has a non-lowercase-hex digit", name, etag);
}

static void test_etag_is_quoted_lowercase_hex_of_sha256_prefix(void **state)
{
	char etag[POL_ETAG_LEN + 1];

	(void)state;
	pol_etag("abc", 3, etag);
	assert_string_equal(etag, "\"ba7816bf8f01cfea414140de5dae2223\"");
	pol_etag("", 0, etag);
	assert_string_equal(etag, "\"e3b0c44298fc1c149afbf4c8996fb924\"");
	check_etag_form("etag of abc", etag);
}

static void test_view_etag_is_the_etag_of_the_body(void **state)
{
	pol_config c;
	pol_run r = full_run();
	pol_pack p = full_pack();
	pol_view v;
	char etag[POL_ETAG_LEN + 1];

	(void)state;
	pol_config_default(&c);
	v = run_view(&c, &r, T0);
	pol_etag(v.body, v.body_len, etag);
	assert_string_equal(v.etag, etag);
	check_etag_form("run view", v.etag);
	pol_view_clear(&v);

	v = pack_view(&c, &p);
	pol_etag(v.body, v.body_len, etag);
	assert_string_equal(v.etag, etag);
	check_etag_form("pack view", v.etag);
	pol_view_clear(&v);

	p.present = false;
	v = pack_view(&c, &p);
	check_etag_form("no-pack view", v.etag);
	pol_view_clear(&v);
}

static void test_same_input_gives_same_bytes_and_etag(void **state)
{
	pol_config c;
	pol_run r = full_run();
	pol_pack p = full_pack();
	pol_view a, b;

	(void)state;
	pol_config_default(&c);
	a = run_view(&c, &r, T0 + SEC(100));
	b = run_view(&c, &r, T0 + SEC(100));
	assert_string_equal(a.body, b.body);
	assert_string_equal(a.etag, b.etag);
	pol_view_clear(&a);
	pol_view_clear(&b);

	a = pack_view(&c, &p);
	b = pack_view(&c, &p);
	assert_string_equal(a.body, b.body);
	assert_string_equal(a.etag, b.etag);
	pol_view_clear(&a);
	pol_view_clear(&b);
}

static void test_terminal_run_etag_does_not_depend_on_now(void **state)
{
	pol_config c;
	pol_run r = full_run();
	pol_view a, b;

	(void)state;
	pol_config_default(&c);
	a = run_view(&c, &r, T0);
	b = run_view(&c, &r, T0 + SEC(86400));
	assert_string_equal(a.etag, b.etag);
	pol_view_clear(&a);
	pol_view_clear(&b);
}

/* A change to one field of a row: an int64 at `off`, or a string pointer at `off`. */
static const struct change_case {
	const char *name;
	size_t off;
	bool is_str;
	int64_t i;
	const char *s;
} run_changes[] = {
	{"changing id changes the ETag", offsetof(pol_run, id), false, 43, NULL},
	{"changing workspace_id changes the ETag", offsetof(pol_run, workspace_id), false, 2, NULL},
	{"changing tenant_id changes the ETag", offsetof(pol_run, tenant_id), false, 8, NULL},
	{"nulling tenant_id changes the ETag", offsetof(pol_run, tenant_id), false, POL_NULL, NULL},
	{"changing type changes the ETag", offsetof(pol_run, type), true, 0, "inventory.sync2"},
	{"changing status changes the ETag", offsetof(pol_run, status), true, 0, "running"},
	{"changing outcome changes the ETag", offsetof(pol_run, outcome), true, 0, "failed"},
	{"an unknown outcome changes the ETag", offsetof(pol_run, outcome), true, 0, "weird"},
	{"changing one count changes the ETag", offsetof(pol_run, summary_counts), true, 0,
	 "{\"total\": 10, \"processed\": 10, \"failed\": 3}"},
	{"changing failure_summary changes the ETag", offsetof(pol_run, failure_summary), true, 0, "[]"},
	{"changing created_at by 1 us changes the ETag", offsetof(pol_run, created_at), false, T0 + 1, NULL},
	{"changing started_at changes the ETag", offsetof(pol_run, started_at), false, T0 + SEC(2), NULL},
	{"changing completed_at changes the ETag", offsetof(pol_run, completed_at), false, T0 + SEC(301), NULL},
	{"nulling completed_at changes the ETag", offsetof(pol_run, completed_at), false, POL_NULL, NULL},
}, pack_changes[] = {
	{"changing pack id changes the ETag", offsetof(pol_pack, id), false, 10, NULL},
	{"changing pack workspace_id changes the ETag", offsetof(pol_pack, workspace_id), false, 2, NULL},
	{"changing pack tenant_id changes the ETag", offsetof(pol_pack, tenant_id), false, 8, NULL},
	{"changing operation_run_id changes the ETag", offsetof(pol_pack, operation_run_id), false, 43, NULL},
	{"nulling operation_run_id changes the ETag", offsetof(pol_pack, operation_run_id), false, POL_NULL, NULL},
	{"changing pack status changes the ETag", offsetof(pol_pack, status), true, 0, "expired"},
	{"changing generated_at changes the ETag", offsetof(pol_pack, generated_at), false, T0, NULL},
	{"changing expires_at changes the ETag", offsetof(pol_pack, expires_at), false, T0, NULL},
	{"changing file_size changes the ETag", offsetof(pol_pack, file_size), false, 1, NULL},
	{"changing pack created_at changes the ETag", offsetof(pol_pack, created_at), false, T0 + 1, NULL},
	{"changing updated_at changes the ETag", offsetof(pol_pack, updated_at), false, T0 + SEC(601), NULL},
};

static void apply_change(void *row, const struct change_case *k)
{
	if (k->is_str)
		memcpy((char *)row + k->off, &k->s, sizeof k->s);
	else
		memcpy((char *)row + k->off, &k->i, sizeof k->i);
}

static void test_any_field_change_changes_the_etag(void **state)
{
	pol_config c;
	pol_run base_r = full_run();
	pol_pack base_p = full_pack();
	pol_view base, v;

	(void)state;
	pol_config_default(&c);
	base = run_view(&c, &base_r, T0);
	for (size_t i = 0; i < NELEM(run_changes); i++) {
		pol_run r = base_r;

		apply_change(&r, &run_changes[i]);
		v = run_view(&c, &r, T0);
		CHECK(run_changes[i].name, strcmp(v.etag, base.etag) != 0);
		pol_view_clear(&v);
	}
	pol_view_clear(&base);

	base = pack_view(&c, &base_p);
	for (size_t i = 0; i < NELEM(pack_changes); i++) {
		pol_pack p = base_p;

		apply_change(&p, &pack_changes[i]);
		v = pack_view(&c, &p);
		CHECK(pack_changes[i].name, strcmp(v.etag, base.etag) != 0);
		pol_view_clear(&v);
	}
	base_p.present = false;
	v = pack_view(&c, &base_p);
	CHECK("a pack disappearing changes the ETag", strcmp(v.etag, base.etag) != 0);
	pol_view_clear(&v);
	pol_view_clear(&base);
}

static void test_active_run_crossing_an_interval_step_changes_the_etag(void **state)
{
	pol_config c;
	pol_run r = example_run();
	pol_view a, b;

	(void)state;
	pol_config_default(&c);
	a = run_view(&c, &r, r.started_at + SEC(9));
	b = run_view(&c, &r, r.started_at + SEC(10));
	assert_int_equal(a.interval_ms, 1000);
	assert_int_equal(b.interval_ms, 5000);
	assert_string_not_equal(a.etag, b.etag);
	pol_view_clear(&a);
	pol_view_clear(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_api_md_example_run_body_is_exact),
		cmocka_unit_test(test_full_run_body_is_exact),
		cmocka_unit_test(test_run_with_all_nullables_null_body_is_exact),
		cmocka_unit_test(test_full_pack_body_is_exact),
		cmocka_unit_test(test_api_md_example_pack_body_is_exact),
		cmocka_unit_test(test_no_pack_body_is_exact),
		cmocka_unit_test(test_bodies_carry_exactly_the_api_keys_in_order),
		cmocka_unit_test(test_json_columns_parse_or_serve_null_and_count),
		cmocka_unit_test(test_strings_are_escaped_and_invalid_utf8_is_served_as_null),
		cmocka_unit_test(test_timestamp_out_of_rfc3339_range_is_served_as_null_and_counted),
		cmocka_unit_test(test_view_clear_frees_and_zeroes_and_accepts_null),
		cmocka_unit_test(test_etag_is_quoted_lowercase_hex_of_sha256_prefix),
		cmocka_unit_test(test_view_etag_is_the_etag_of_the_body),
		cmocka_unit_test(test_same_input_gives_same_bytes_and_etag),
		cmocka_unit_test(test_terminal_run_etag_does_not_depend_on_now),
		cmocka_unit_test(test_any_field_change_changes_the_etag),
		cmocka_unit_test(test_active_run_crossing_an_interval_step_changes_the_etag),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
