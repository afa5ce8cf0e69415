/*
 * tests/unit/test_policy.c — unit tests of policy/policy.c.
 *
 * Owns the executable specification of what a row means to a browser: the state tables of api.md (runs
 * and review packs), the run poll schedule at its age boundaries, the exact bytes of the run and pack
 * bodies (key order included, never-served keys absent), ETag stability and sensitivity, RFC 3339
 * formatting, and every accepted and refused form of the config value parsers. Most tests walk a table of
 * cases; a failing row is reported by its name, which reads as the rule it checks.
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

#define SEC(n) ((int64_t)(n) * 1000000)
#define MS(n) ((int64_t)(n) * 1000)
#define T0 SEC(1772967600) /* 2026-03-08T11:00:00Z */
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define CHECK(name, cond)                                                                          \
	do {                                                                                           \
		if (!(cond)) fail_msg("%s: expected %s", (name), #cond);                                   \
	} while (0)

static void check_str(const char *name, const char *got, const char *want)
{
	if (got == NULL || strcmp(got, want) != 0)
		fail_msg("%s:\n   got: %s\n  want: %s", name, got != NULL ? got : "(NULL)", want);
}

static void check_i64(const char *name, int64_t got, int64_t want)
{
	if (got != want) fail_msg("%s: got %lld, want %lld", name, (long long)got, (long long)want);
}

/* A running run as in api.md's example body, 30 s after it started. */
static pol_run example_run(void)
{
	pol_run r = {
		.id = 42,
		.workspace_id = 1,
		.tenant_id = 7,
		.type = "inventory.sync",
		.status = "running",
		.outcome = NULL,
		.summary_counts = "{\"total\": 10, \"processed\": 4}",
		.failure_summary = NULL,
		.created_at = T0,
		.started_at = T0 + SEC(2),
		.completed_at = POL_NULL,
	};
	return r;
}

/* A run with every nullable set. */
static pol_run full_run(void)
{
	pol_run r = {
		.id = 42,
		.workspace_id = 1,
		.tenant_id = 7,
		.type = "inventory.sync",
		.status = "completed",
		.outcome = "partially_succeeded",
		.summary_counts = "{\"total\": 10, \"processed\": 10, \"failed\": 2}",
		.failure_summary = "[{\"code\": \"timeout\", \"count\": 2}]",
		.created_at = T0,
		.started_at = T0 + SEC(2) + 123456,
		.completed_at = T0 + SEC(300),
	};
	return r;
}

static pol_pack full_pack(void)
{
	pol_pack p = {
		.present = true,
		.id = 9,
		.workspace_id = 1,
		.tenant_id = 7,
		.operation_run_id = 42,
		.status = "ready",
		.generated_at = T0 + SEC(600),
		.expires_at = T0 + SEC(7 * 86400 + 600),
		.file_size = 123456789012,
		.created_at = T0,
		.updated_at = T0 + SEC(600) + 123,
	};
	return p;
}

static pol_pack generating_pack(void)
{
	pol_pack p = {
		.present = true,
		.id = 9,
		.workspace_id = 1,
		.tenant_id = 7,
		.operation_run_id = 42,
		.status = "generating",
		.generated_at = POL_NULL,
		.expires_at = POL_NULL,
		.file_size = POL_NULL,
		.created_at = T0,
		.updated_at = T0,
	};
	return p;
}

static pol_view run_view(const pol_config *c, const pol_run *r, int64_t now)
{
	pol_view v;

	assert_int_equal(pol_run_view(c, r, now, &v), 0);
	assert_non_null(v.body);
	assert_int_equal(v.body_len, strlen(v.body));
	return v;
}

static pol_view pack_view(const pol_config *c, const pol_pack *p)
{
	pol_view v;

	assert_int_equal(pol_pack_view(c, p, T0, &v), 0);
	assert_non_null(v.body);
	assert_int_equal(v.body_len, strlen(v.body));
	return v;
}

/* The invariant every view keeps: poll null and interval 0 exactly when not active. */
static void check_poll_matches_active(const char *name, const pol_view *v)
{
	json_t *root = json_loads(v->body, 0, NULL);
	json_t *poll;

	if (root == NULL) fail_msg("%s: body is not JSON: %s", name, v->body);
	poll = json_object_get(root, "poll");
	if (v->active) {
		CHECK(name, v->interval_ms > 0);
		CHECK(name, json_is_object(poll) && json_object_size(poll) == 1);
		CHECK(name, json_integer_value(json_object_get(poll, "interval_ms")) == v->interval_ms);
	} else {
		CHECK(name, v->interval_ms == 0);
		CHECK(name, json_is_null(poll));
	}
	CHECK(name, json_is_boolean(json_object_get(root, "terminal")));
	CHECK(name, json_boolean_value(json_object_get(root, "terminal")) == v->terminal);
	check_str(name, json_string_value(json_object_get(root, "state")), v->state);
	json_decref(root);
}

/* ------------------------------------------------------------------------------------------------ */
/* Defaults */

static void test_default_config_is_the_policy_of_api_md(void **state)
{
	pol_config c;

	(void)state;
	memset(&c, 0xff, sizeof c); /* defaults overwrite everything */
	pol_config_default(&c);
	assert_int_equal(c.n_run_active, 2);
	assert_string_equal(c.run_active[0], "queued");
	assert_string_equal(c.run_active[1], "running");
	assert_string_equal(c.run_completed_status, "completed");
	assert_int_equal(c.n_run_outcomes, 4);
	assert_string_equal(c.run_outcomes[0].outcome, "succeeded");
	assert_string_equal(c.run_outcomes[0].state, "succeeded");
	assert_string_equal(c.run_outcomes[1].outcome, "partially_succeeded");
	assert_string_equal(c.run_outcomes[1].state, "partial");
	assert_string_equal(c.run_outcomes[2].outcome, "failed");
	assert_string_equal(c.run_outcomes[2].state, "failed");
	assert_string_equal(c.run_outcomes[3].outcome, "cancelled");
	assert_string_equal(c.run_outcomes[3].state, "cancelled");
	assert_int_equal(c.n_run_schedule, 3);
	assert_int_equal(c.run_schedule[0].below_age_ms, 10000);
	assert_int_equal(c.run_schedule[0].interval_ms, 1000);
	assert_int_equal(c.run_schedule[1].below_age_ms, 60000);
	assert_int_equal(c.run_schedule[1].interval_ms, 5000);
	assert_int_equal(c.run_schedule[2].below_age_ms, -1);
	assert_int_equal(c.run_schedule[2].interval_ms, 10000);
	assert_int_equal(c.n_pack_active, 2);
	assert_string_equal(c.pack_active[0], "queued");
	assert_string_equal(c.pack_active[1], "generating");
	assert_int_equal(c.n_pack_terminal, 3);
	assert_string_equal(c.pack_terminal[0], "ready");
	assert_string_equal(c.pack_terminal[1], "failed");
	assert_string_equal(c.pack_terminal[2], "expired");
	assert_int_equal(c.pack_interval_ms, 10000);
}

/* ------------------------------------------------------------------------------------------------ */
/* Run states */

static const struct run_state_case {
	const char *name;
	const char *status, *outcome;
	const char *state;
	bool active, terminal;
} run_state_cases[] = {
	{"status queued is state queued, active", "queued", NULL, "queued", true, false},
	{"status running is state running, active", "running", NULL, "running", true, false},
	{"an active status ignores any outcome", "running", "failed", "running", true, false},
	{"completed + succeeded is succeeded, terminal", "completed", "succeeded", "succeeded", false, true},
	{"completed + partially_succeeded is partial, terminal", "completed", "partially_succeeded", "partial",
	 false, true},
	{"completed + failed is failed, terminal", "completed", "failed", "failed", false, true},
	{"completed + cancelled is cancelled, terminal", "completed", "cancelled", "cancelled", false, true},
	{"an unknown status is unknown, neither active nor terminal", "paused", NULL, "unknown", false, false},
	{"a NULL status is unknown", NULL, NULL, "unknown", false, false},
	{"a NULL status with an outcome is unknown", NULL, "succeeded", "unknown", false, false},
	{"completed with a NULL outcome is unknown", "completed", NULL, "unknown", false, false},
	{"completed with an unknown outcome is unknown", "completed", "exploded", "unknown", false, false},
	{"an outcome without status completed is unknown", "failed", "failed", "unknown", false, false},
	{"statuses are case-sensitive: Running is unknown", "Running", NULL, "unknown", false, false},
	{"outcomes are case-sensitive: Succeeded is unknown", "completed", "Succeeded", "unknown", false, false},
	{"status is matched whole: 'running ' is unknown", "running ", NULL, "unknown", false, false},
	{"an empty status is unknown", "", NULL, "unknown", false, false},
};

static void test_run_state_follows_the_api_table(void **state)
{
	pol_config c;

	(void)state;
	pol_config_default(&c);
	for (size_t i = 0; i < NELEM(run_state_cases); i++) {
		const struct run_state_case *k = &run_state_cases[i];
		bool active = !k->active, terminal = !k->terminal;
		pol_run r = example_run();
		pol_view v;

		check_str(k->name, pol_run_state(&c, k->status, k->outcome, &active, &terminal), k->state);
		CHECK(k->name, active == k->active);
		CHECK(k->name, terminal == k->terminal);

		r.status = k->status;
		r.outcome = k->outcome;
		v = run_view(&c, &r, T0 + SEC(30));
		check_str(k->name, v.state, k->state);
		CHECK(k->name, v.active == k->active);
		CHECK(k->name, v.terminal == k->terminal);
		check_poll_matches_active(k->name, &v);
		pol_view_clear(&v);
	}
}

static void test_run_state_names_point_into_the_config(void **state)
{
	pol_config c;
	bool active, terminal;

	(void)state;
	pol_config_default(&c);
	assert_ptr_equal(pol_run_state(&c, "running", NULL, &active, &terminal), c.run_active[1]);
	assert_ptr_equal(pol_run_state(&c, "completed", "partially_succeeded", &active, &terminal),
	                 c.run_outcomes[1].state);
}

/* ------------------------------------------------------------------------------------------------ */
/* Pack states */

static const struct pack_state_case {
	const char *name;
	bool present;
	const char *status;
	const char *state;
	bool active, terminal;
	int64_t interval_ms;
} pack_state_cases[] = {
	{"pack queued is active at 10 s", true, "queued", "queued", true, false, 10000},
	{"pack generating is active at 10 s", true, "generating", "generating", true, false, 10000},
	{"pack ready is terminal", true, "ready", "ready", false, true, 0},
	{"pack failed is terminal", true, "failed", "failed", false, true, 0},
	{"pack expired is terminal", true, "expired", "expired", false, true, 0},
	{"an unknown pack status is unknown, not active, not terminal", true, "archived", "unknown", false, false, 0},
	{"pack statuses are case-sensitive: Ready is unknown", true, "Ready", "unknown", false, false, 0},
	{"a NULL pack status is unknown", true, NULL, "unknown", false, false, 0},
	{"no pack is state none, not active, not terminal", false, "generating", "none", false, false, 0},
};

static void test_pack_state_follows_the_api_table(void **state)
{
	pol_config c;

	(void)state;
	pol_config_default(&c);
	for (size_t i = 0; i < NELEM(pack_state_cases); i++) {
		const struct pack_state_case *k = &pack_state_cases[i];
		pol_pack p = generating_pack();
		pol_view v;

		p.present = k->present;
		p.status = k->status;
		v = pack_view(&c, &p);
		check_str(k->name, v.state, k->state);
		CHECK(k->name, v.active == k->active);
		CHECK(k->name, v.terminal == k->terminal);
		check_i64(k->name, v.interval_ms, k->interval_ms);
		check_poll_matches_active(k->name, &v);
		pol_view_clear(&v);
	}
}

/* ------------------------------------------------------------------------------------------------ */
/* Run intervals */

static const struct interval_case {
	const char *name;
	int64_t created_at, started_at, now;
	int64_t interval_ms;
} interval_cases[] = {
	{"age 0 polls every 1 s", T0, T0, T0, 1000},
	{"age 9.999 s polls every 1 s", T0, T0, T0 + MS(9999), 1000},
	{"age 9.999999 s still polls every 1 s", T0, T0, T0 + SEC(10) - 1, 1000},
	{"age exactly 10 s polls every 5 s", T0, T0, T0 + SEC(10), 5000},
	{"age 59.999 s polls every 5 s", T0, T0, T0 + MS(59999), 5000},
	{"age exactly 60 s polls every 10 s", T0, T0, T0 + SEC(60), 10000},
	{"age of hours polls every 10 s", T0, T0, T0 + SEC(5 * 3600), 10000},
	{"age counts from started_at, not created_at", T0 - SEC(3600), T0, T0 + SEC(1), 1000},
	{"a queued run's age counts from created_at", T0, POL_NULL, T0 + SEC(30), 5000},
	{"a queued run created long ago polls every 10 s", T0, POL_NULL, T0 + SEC(61), 10000},
	{"both timestamps null count as age 0", POL_NULL, POL_NULL, T0, 1000},
	{"a future started_at counts as age 0", T0, T0 + SEC(3600), T0 + SEC(5), 1000},
	{"a future created_at counts as age 0", T0 + SEC(3600), POL_NULL, T0, 1000},
	{"a timestamp at the far past does not overflow", INT64_MIN + 1, INT64_MIN + 1, INT64_MAX, 10000},
};

static void test_run_interval_steps_at_age_boundaries(void **state)
{
	pol_config c;

	(void)state;
	pol_config_default(&c);
	for (size_t i = 0; i < NELEM(interval_cases); i++) {
		const struct interval_case *k = &interval_cases[i];
		pol_run r = example_run();
		pol_view v;

		r.status = "running";
		r.created_at = k->created_at;
		r.started_at = k->started_at;
		check_i64(k->name, pol_run_interval_ms(&c, &r, k->now), k->interval_ms);

		v = run_view(&c, &r, k->now);
		check_i64(k->name, v.interval_ms, k->interval_ms);
		check_poll_matches_active(k->name, &v);
		pol_view_clear(&v);
	}
}

static void test_inactive_run_has_interval_zero_and_null_poll(void **state)
{
	pol_config c;
	pol_run r = example_run();
	pol_view v;

	(void)state;
	pol_config_default(&c);
	r.status = "completed";
	r.outcome = "succeeded";
	v = run_view(&c, &r, T0 + SEC(5)); /* young enough for the 1 s step if it were active */
	assert_false(v.active);
	assert_int_equal(v.interval_ms, 0);
	assert_non_null(strstr(v.body, "\"poll\":null}"));
	pol_view_clear(&v);
}

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

/* ------------------------------------------------------------------------------------------------ */
/* Time formatting */

static const struct time_case {
	const char *name;
	int64_t us;
	const char *want; /* NULL: refused */
} time_cases[] = {
	{"epoch 0 is 1970-01-01T00:00:00Z", 0, "1970-01-01T00:00:00Z"},
	{"whole seconds carry no fraction", T0, "2026-03-08T11:00:00Z"},
	{"microseconds are six digits", T0 + 123456, "2026-03-08T11:00:00.123456Z"},
	{"one microsecond keeps leading zeros", T0 + 1, "2026-03-08T11:00:00.000001Z"},
	{"one microsecond before 1970 is the last of 1969", -1, "1969-12-31T23:59:59.999999Z"},
	{"one second before 1970", SEC(-1), "1969-12-31T23:59:59Z"},
	{"1.5 s before 1970 rounds toward the past", -1500000, "1969-12-31T23:59:58.500000Z"},
	{"a date well before 1970", SEC(-14182940), "1969-07-20T20:17:40Z"},
	{"the last microsecond of year 9999", SEC(253402300799) + 999999, "9999-12-31T23:59:59.999999Z"},
	{"the first second of year 0", SEC(-62167219200), "0000-01-01T00:00:00Z"},
	{"year 10000 is refused", SEC(253402300800), NULL},
	{"a negative year is refused", SEC(-62167219201), NULL},
	{"POL_NULL is refused", POL_NULL, NULL},
	{"INT64_MAX is refused", INT64_MAX, NULL},
};

static void test_format_time_is_rfc3339_utc(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(time_cases); i++) {
		const struct time_case *k = &time_cases[i];
		char buf[40];
		int n;

		memset(buf, 'x', sizeof buf);
		n = pol_format_time(k->us, buf, sizeof buf);
		if (k->want == NULL) {
			check_i64(k->name, n, -1);
			check_str(k->name, buf, "");
		} else {
			check_str(k->name, buf, k->want);
			check_i64(k->name, n, (int64_t)strlen(k->want));
		}
	}
}

static void test_format_time_needs_a_28_byte_buffer(void **state)
{
	char buf[28];

	(void)state;
	assert_int_equal(pol_format_time(T0 + 123456, buf, 28), 27);
	assert_string_equal(buf, "2026-03-08T11:00:00.123456Z");
	assert_int_equal(pol_format_time(T0, buf, 28), 20);
	memset(buf, 'x', sizeof buf);
	assert_int_equal(pol_format_time(T0 + 123456, buf, 27), -1);
	assert_int_equal(buf[0], '\0');
	memset(buf, 'x', sizeof buf);
	assert_int_equal(pol_format_time(T0, buf, 21), -1); /* even when the value would fit */
	assert_int_equal(buf[0], '\0');
	assert_int_equal(pol_format_time(T0, buf, 0), -1);
	assert_int_equal(pol_format_time(T0, NULL, 28), -1);
}

/* ------------------------------------------------------------------------------------------------ */
/* Config value parsers */

enum parser { LIST, OUTCOMES, SCHEDULE };

#define A10 "aaaaaaaaaa"
#define NAME47 A10 A10 A10 A10 "aaaaaaa"
#define NAME48 NAME47 "a"

static const struct parse_error_case {
	const char *name;
	enum parser parser;
	const char *value;
	const char *want; /* a substring of the error */
} parse_error_cases[] = {
	{"a list must not be empty", LIST, "", "empty value"},
	{"a list of separators only is empty", LIST, " , ,, ", "empty value"},
	{"a NULL list is empty", LIST, NULL, "empty value"},
	{"list names are lowercase", LIST, "queued Running", "invalid name 'Running'"},
	{"list names refuse other characters", LIST, "que=ued", "invalid name 'que=ued'"},
	{"list names refuse non-ASCII", LIST, "r\xc3\xbcnning", "invalid name"},
	{"a list name of 48 bytes is too long", LIST, NAME48, "is too long (max 47 bytes)"},
	{"a list holds at most 16 names", LIST, "a b c d e f g h i j k l m n o p q", "too many names (max 16)"},
	{"a list refuses duplicates", LIST, "queued running queued", "duplicate name 'queued'"},
	{"outcomes must not be empty", OUTCOMES, "", "got an empty value"},
	{"an outcome needs a '='", OUTCOMES, "succeeded", "expected outcome=state pairs, got 'succeeded'"},
	{"an outcome needs a name before '='", OUTCOMES, "=succeeded", "expected outcome=state pairs, got '=succeeded'"},
	{"an outcome needs a state after '='", OUTCOMES, "succeeded=", "expected outcome=state pairs, got 'succeeded='"},
	{"an outcome takes one '='", OUTCOMES, "a=b=c", "expected outcome=state pairs, got 'a=b=c'"},
	{"'=' does not take spaces around it", OUTCOMES, "succeeded = ok", "expected outcome=state pairs, got 'succeeded'"},
	{"outcome names are checked", OUTCOMES, "Succeeded=ok", "invalid name 'Succeeded'"},
	{"state names are checked", OUTCOMES, "succeeded=OK", "invalid name 'OK'"},
	{"a state name of 48 bytes is too long", OUTCOMES, "succeeded=" NAME48, "is too long"},
	{"an outcome is mapped once", OUTCOMES, "failed=failed failed=broken", "duplicate outcome 'failed'"},
	{"at most 16 outcomes", OUTCOMES, "a=x b=x c=x d=x e=x f=x g=x h=x i=x j=x k=x l=x m=x n=x o=x p=x q=x",
	 "too many outcomes (max 16)"},
	{"a schedule must not be empty", SCHEDULE, "", "the last step must be '*:<interval>'"},
	{"a schedule needs a final '*' step", SCHEDULE, "10s:1s 60s:5s", "the last step must be '*:<interval>'"},
	{"'*' must be the last step", SCHEDULE, "*:10s 60s:5s", "the '*' step must be the last one"},
	{"a step needs a ':'", SCHEDULE, "10s", "expected age:interval steps, got '10s'"},
	{"a step takes one ':'", SCHEDULE, "10s:1s:2s *:1s", "expected age:interval steps, got '10s:1s:2s'"},
	{"an age needs a unit", SCHEDULE, "10:1s *:10s", "bad age in step '10:1s'"},
	{"an age refuses unknown units", SCHEDULE, "10d:1s *:10s", "bad age in step '10d:1s'"},
	{"an age refuses a sign", SCHEDULE, "-10s:1s *:10s", "bad age in step '-10s:1s'"},
	{"an age must not be empty", SCHEDULE, ":1s *:10s", "bad age in step ':1s'"},
	{"an age must be above zero", SCHEDULE, "0s:1s *:10s", "age must be > 0 in step '0s:1s'"},
	{"an interval needs a unit", SCHEDULE, "10s:1 *:10s", "bad interval in step '10s:1'"},
	{"an interval must not be empty", SCHEDULE, "10s:1s *:", "bad interval in step '*:'"},
	{"an interval must be above zero", SCHEDULE, "10s:0ms *:10s", "interval must be > 0 in step '10s:0ms'"},
	{"the final interval must be above zero", SCHEDULE, "*:0s", "interval must be > 0 in step '*:0s'"},
	{"ages must ascend", SCHEDULE, "60s:5s 10s:1s *:10s", "ages must ascend ('10s:1s' does not)"},
	{"equal ages do not ascend", SCHEDULE, "10s:1s 10000ms:5s *:10s", "ages must ascend"},
	{"a schedule holds at most 8 steps", SCHEDULE, "1s:1s 2s:1s 3s:1s 4s:1s 5s:1s 6s:1s 7s:1s 8s:1s *:1s",
	 "too many steps (max 8)"},
};

static int run_parser(enum parser which, const char *value, char *err, size_t errlen)
{
	char names[POL_MAX_LIST][POL_NAME_MAX];
	pol_outcome_map map[POL_MAX_LIST];
	pol_step steps[POL_MAX_STEPS];
	size_t n = 0;

	switch (which) {
	case LIST:
		return pol_parse_list(value, names, &n, err, errlen);
	case OUTCOMES:
		return pol_parse_outcomes(value, map, &n, err, errlen);
	case SCHEDULE:
		return pol_parse_schedule(value, steps, &n, err, errlen);
	}
	return 0;
}

static void test_parsers_refuse_bad_values_with_a_reason(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(parse_error_cases); i++) {
		const struct parse_error_case *k = &parse_error_cases[i];
		char err[256] = "";

		if (run_parser(k->parser, k->value, err, sizeof err) != -1) fail_msg("%s: value accepted", k->name);
		if (strstr(err, k->want) == NULL) fail_msg("%s:\n   got: %s\n  want: ...%s...", k->name, err, k->want);
		if (strchr(err, '\n') != NULL) fail_msg("%s: the reason is not one line: %s", k->name, err);
	}
}

static void test_parsers_tolerate_a_null_or_short_error_buffer(void **state)
{
	char err[8];

	(void)state;
	assert_int_equal(run_parser(LIST, "Bad", NULL, 0), -1);
	assert_int_equal(run_parser(OUTCOMES, "bad", err, sizeof err), -1);
	assert_int_equal(strlen(err), sizeof err - 1);
	assert_int_equal(run_parser(SCHEDULE, "bad", err, 1), -1);
	assert_string_equal(err, "");
}

static void test_parse_list_accepts_spaces_commas_and_tabs(void **state)
{
	static const struct {
		const char *name, *value;
		size_t n;
		const char *first, *last;
	} cases[] = {
		{"one name", "queued", 1, "queued", "queued"},
		{"names separated by spaces", "queued running", 2, "queued", "running"},
		{"names separated by commas", "queued,running,retrying", 3, "queued", "retrying"},
		{"mixed separators and padding", "  queued ,\trunning,, retrying ", 3, "queued", "retrying"},
		{"every allowed character", "a-b_c.9", 1, "a-b_c.9", "a-b_c.9"},
		{"a name of 47 bytes fits", NAME47, 1, NAME47, NAME47},
		{"16 names fit", "a b c d e f g h i j k l m n o p", 16, "a", "p"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		char names[POL_MAX_LIST][POL_NAME_MAX];
		size_t n = 0;
		char err[128] = "";

		if (pol_parse_list(cases[i].value, names, &n, err, sizeof err) != 0)
			fail_msg("%s: refused: %s", cases[i].name, err);
		check_i64(cases[i].name, (int64_t)n, (int64_t)cases[i].n);
		check_str(cases[i].name, names[0], cases[i].first);
		check_str(cases[i].name, names[n - 1], cases[i].last);
	}
}

static void test_parse_outcomes_reads_pairs_and_allows_shared_states(void **state)
{
	pol_outcome_map map[POL_MAX_LIST];
	size_t n = 0;
	char err[128] = "";

	(void)state;
	assert_int_equal(pol_parse_outcomes("succeeded=succeeded, partially_succeeded=partial\ttimed_out=failed "
	                                    "failed=failed",
	                                    map, &n, err, sizeof err),
	                 0);
	assert_int_equal(n, 4);
	assert_string_equal(map[1].outcome, "partially_succeeded");
	assert_string_equal(map[1].state, "partial");
	assert_string_equal(map[2].outcome, "timed_out");
	assert_string_equal(map[2].state, "failed");
	assert_string_equal(map[3].state, "failed");
}

static void test_parse_schedule_reads_steps_in_any_unit(void **state)
{
	pol_step steps[POL_MAX_STEPS];
	size_t n = 0;
	char err[128] = "";

	(void)state;
	assert_int_equal(pol_parse_schedule("10s:1s 60s:5s *:10s", steps, &n, err, sizeof err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(steps[0].below_age_ms, 10000);
	assert_int_equal(steps[0].interval_ms, 1000);
	assert_int_equal(steps[1].below_age_ms, 60000);
	assert_int_equal(steps[1].interval_ms, 5000);
	assert_int_equal(steps[2].below_age_ms, -1);
	assert_int_equal(steps[2].interval_ms, 10000);

	assert_int_equal(pol_parse_schedule("500ms:250ms,2m:30s,1h:1m,*:1h", steps, &n, err, sizeof err), 0);
	assert_int_equal(n, 4);
	assert_int_equal(steps[0].below_age_ms, 500);
	assert_int_equal(steps[0].interval_ms, 250);
	assert_int_equal(steps[1].below_age_ms, 120000);
	assert_int_equal(steps[2].below_age_ms, 3600000);
	assert_int_equal(steps[2].interval_ms, 60000);
	assert_int_equal(steps[3].interval_ms, 3600000);

	assert_int_equal(pol_parse_schedule("*:2s", steps, &n, err, sizeof err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(steps[0].below_age_ms, -1);

	assert_int_equal(pol_parse_schedule("1s:1s 2s:1s 3s:1s 4s:1s 5s:1s 6s:1s 7s:1s *:1s", steps, &n, err, sizeof err),
	                 0);
	assert_int_equal(n, POL_MAX_STEPS);
}

static void test_refused_value_leaves_the_output_untouched(void **state)
{
	pol_config c, before;
	char err[128];

	(void)state;
	pol_config_default(&c);
	before = c;
	assert_int_equal(pol_parse_list("queued retrying Bad", c.run_active, &c.n_run_active, err, sizeof err), -1);
	assert_int_equal(pol_parse_outcomes("a=b c", c.run_outcomes, &c.n_run_outcomes, err, sizeof err), -1);
	assert_int_equal(pol_parse_schedule("5s:1s *:0s", c.run_schedule, &c.n_run_schedule, err, sizeof err), -1);
	assert_memory_equal(&c, &before, sizeof c);
}

/* ------------------------------------------------------------------------------------------------ */
/* Custom configs */

static void test_custom_config_drives_states_and_intervals(void **state)
{
	pol_config c;
	char err[128] = "";
	pol_run r = example_run();
	pol_pack p = generating_pack();
	pol_view v;

	(void)state;
	pol_config_default(&c);
	assert_int_equal(pol_parse_list("queued running retrying", c.run_active, &c.n_run_active, err, sizeof err), 0);
	assert_int_equal(pol_parse_outcomes("succeeded=done failed=failed", c.run_outcomes, &c.n_run_outcomes, err,
	                                    sizeof err),
	                 0);
	assert_int_equal(pol_parse_schedule("5s:500ms *:2s", c.run_schedule, &c.n_run_schedule, err, sizeof err), 0);
	assert_int_equal(pol_parse_list("building", c.pack_active, &c.n_pack_active, err, sizeof err), 0);
	assert_int_equal(pol_parse_list("ready, withdrawn", c.pack_terminal, &c.n_pack_terminal, err, sizeof err), 0);
	c.pack_interval_ms = 3000;

	r.status = "retrying";
	v = run_view(&c, &r, r.started_at + SEC(1));
	assert_string_equal(v.state, "retrying");
	assert_true(v.active);
	assert_int_equal(v.interval_ms, 500);
	assert_non_null(strstr(v.body, "\"state\":\"retrying\",\"terminal\":false,\"poll\":{\"interval_ms\":500}}"));
	pol_view_clear(&v);

	v = run_view(&c, &r, r.started_at + SEC(5));
	assert_int_equal(v.interval_ms, 2000);
	pol_view_clear(&v);

	r.status = "completed";
	r.outcome = "succeeded";
	v = run_view(&c, &r, T0);
	assert_string_equal(v.state, "done");
	assert_true(v.terminal);
	pol_view_clear(&v);

	r.outcome = "cancelled"; /* no longer mapped */
	v = run_view(&c, &r, T0);
	assert_string_equal(v.state, "unknown");
	assert_false(v.terminal);
	pol_view_clear(&v);

	p.status = "building";
	v = pack_view(&c, &p);
	assert_true(v.active);
	assert_int_equal(v.interval_ms, 3000);
	pol_view_clear(&v);

	p.status = "generating"; /* dropped from the active list */
	v = pack_view(&c, &p);
	assert_string_equal(v.state, "unknown");
	assert_false(v.active);
	pol_view_clear(&v);

	p.status = "withdrawn";
	v = pack_view(&c, &p);
	assert_true(v.terminal);
	pol_view_clear(&v);
}

static void test_custom_completed_status_decides_the_outcome(void **state)
{
	pol_config c;
	bool active, terminal;

	(void)state;
	pol_config_default(&c);
	snprintf(c.run_completed_status, sizeof c.run_completed_status, "%s", "finished");
	assert_string_equal(pol_run_state(&c, "finished", "succeeded", &active, &terminal), "succeeded");
	assert_true(terminal);
	assert_string_equal(pol_run_state(&c, "completed", "succeeded", &active, &terminal), "unknown");
	assert_false(terminal);
	assert_false(active);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_config_is_the_policy_of_api_md),
		cmocka_unit_test(test_run_state_follows_the_api_table),
		cmocka_unit_test(test_run_state_names_point_into_the_config),
		cmocka_unit_test(test_pack_state_follows_the_api_table),
		cmocka_unit_test(test_run_interval_steps_at_age_boundaries),
		cmocka_unit_test(test_inactive_run_has_interval_zero_and_null_poll),
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
		cmocka_unit_test(test_format_time_is_rfc3339_utc),
		cmocka_unit_test(test_format_time_needs_a_28_byte_buffer),
		cmocka_unit_test(test_parsers_refuse_bad_values_with_a_reason),
		cmocka_unit_test(test_parsers_tolerate_a_null_or_short_error_buffer),
		cmocka_unit_test(test_parse_list_accepts_spaces_commas_and_tabs),
		cmocka_unit_test(test_parse_outcomes_reads_pairs_and_allows_shared_states),
		cmocka_unit_test(test_parse_schedule_reads_steps_in_any_unit),
		cmocka_unit_test(test_refused_value_leaves_the_output_untouched),
		cmocka_unit_test(test_custom_config_drives_states_and_intervals),
		cmocka_unit_test(test_custom_completed_status_decides_the_outcome),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
