/*
 * tests/unit/policy/policy_helpers.h — fixtures and checks shared by the policy unit tests (test_policy.c,
 * test_policy_body.c, test_policy_parse.c): time and size macros, string/int checks that name the failing
 * row, the api.md example run and a full run and pack, building a view and checking that its poll
 * matches its active flag. Static inline, so each test file links alone.
 */
#ifndef POLLGATE_TESTS_POLICY_HELPERS_H
#define POLLGATE_TESTS_POLICY_HELPERS_H

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

static inline void check_str(const char *name, const char *got, const char *want)
{
	if (got == NULL || strcmp(got, want) != 0)
		fail_msg("%s:\n   got: %s\n  want: %s", name, got != NULL ? got : "(NULL)", want);
}

static inline void check_i64(const char *name, int64_t got, int64_t want)
{
	if (got != want) fail_msg("%s: got %lld, want %lld", name, (long long)got, (long long)want);
}

/* A running run as in api.md's example body, 30 s after it started. */
static inline pol_run example_run(void)
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
static inline pol_run full_run(void)
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

static inline pol_pack full_pack(void)
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

static inline pol_pack generating_pack(void)
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

static inline pol_view run_view(const pol_config *c, const pol_run *r, int64_t now)
{
	pol_view v;

	assert_int_equal(pol_run_view(c, r, now, &v), 0);
	assert_non_null(v.body);
	assert_int_equal(v.body_len, strlen(v.body));
	return v;
}

static inline pol_view pack_view(const pol_config *c, const pol_pack *p)
{
	pol_view v;

	assert_int_equal(pol_pack_view(c, p, T0, &v), 0);
	assert_non_null(v.body);
	assert_int_equal(v.body_len, strlen(v.body));
	return v;
}

/* The invariant every view keeps: poll null and interval 0 exactly when not active. */
static inline void check_poll_matches_active(const char *name, const pol_view *v)
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

#endif
