/*
 * tests/unit/policy/test_policy_parse.c — unit tests of the policy value parsers in policy/policy.c
 * (pol_parse_list, pol_parse_outcomes, pol_parse_schedule), which the config file uses for its policy
 * keys. Owns every accepted and refused form: each refusal with its reason, null or short error buffers,
 * separators, shared states, schedule units, and that a refused value leaves the output untouched.
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parsers_refuse_bad_values_with_a_reason),
		cmocka_unit_test(test_parsers_tolerate_a_null_or_short_error_buffer),
		cmocka_unit_test(test_parse_list_accepts_spaces_commas_and_tabs),
		cmocka_unit_test(test_parse_outcomes_reads_pairs_and_allows_shared_states),
		cmocka_unit_test(test_parse_schedule_reads_steps_in_any_unit),
		cmocka_unit_test(test_refused_value_leaves_the_output_untouched),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
