/*
 * tests/unit/policy/test_policy.c — unit tests of policy/policy.c: what a row's status means to a browser.
 *
 * Owns the executable specification of the state tables of api.md (runs and review packs), the
 * default policy, the run poll schedule at its age boundaries, RFC 3339 time formatting, and a custom
 * config driving states and intervals. The bodies and ETags are in test_policy_body.c, the config
 * value parsers in test_policy_parse.c. Most tests walk a table of cases; a failing row is reported by
 * its name, which reads as the rule it checks.
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
		cmocka_unit_test(test_format_time_is_rfc3339_utc),
		cmocka_unit_test(test_format_time_needs_a_28_byte_buffer),
		cmocka_unit_test(test_custom_config_drives_states_and_intervals),
		cmocka_unit_test(test_custom_completed_status_decides_the_outcome),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
