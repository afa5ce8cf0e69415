/*
 * tests/unit/policy/test_duration.c — the one duration syntax (policy/duration.c), as a table.
 *
 * Owns what "<digits><unit>" accepts and what it refuses: the four units and their factors, leading
 * zeros, the largest values that fit in int64 milliseconds (digits and after the unit's factor) and the
 * first that do not, and every near miss an operator might type (no unit, a sign, a fraction, white
 * space, upper case, an unknown or doubled unit, NULL). A refused value leaves *ms untouched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define UNTOUCHED INT64_C(-777)

typedef struct {
	const char *in;
	int rc;
	int64_t ms; /* for rc 0 */
} dur_case;

static void run_cases(const dur_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int64_t ms = UNTOUCHED;
		int rc = pol_parse_duration(cases[i].in, &ms);
		const char *in = cases[i].in ? cases[i].in : "(NULL)";
		if (rc != cases[i].rc) fail_msg("duration \"%s\": rc %d, want %d", in, rc, cases[i].rc);
		if (rc == 0 && ms != cases[i].ms)
			fail_msg("duration \"%s\": %" PRId64 " ms, want %" PRId64, in, ms, cases[i].ms);
		if (rc != 0 && ms != UNTOUCHED) fail_msg("duration \"%s\" refused but wrote %" PRId64, in, ms);
	}
}

static void test_units_and_their_factors(void **state)
{
	static const dur_case cases[] = {
		{"0ms", 0, 0},         {"250ms", 0, 250},         {"0s", 0, 0},      {"25s", 0, 25000},
		{"1m", 0, 60000},      {"5m", 0, 300000},         {"1h", 0, 3600000}, {"24h", 0, 86400000},
		{"007s", 0, 7000},     {"1000ms", 0, 1000},       {"90m", 0, 5400000},
	};
	(void)state;
	run_cases(cases, NELEM(cases));
}

static void test_near_misses_are_refused(void **state)
{
	static const dur_case cases[] = {
		{NULL, -1, 0},  {"", -1, 0},     {"25", -1, 0},   {"0", -1, 0},     {"s", -1, 0},     {"ms", -1, 0},
		{"-5s", -1, 0}, {"+5s", -1, 0},  {"1.5s", -1, 0}, {" 5s", -1, 0},   {"5s ", -1, 0},   {"5 s", -1, 0},
		{"5S", -1, 0},  {"5MS", -1, 0},  {"5sec", -1, 0}, {"5d", -1, 0},    {"5us", -1, 0},   {"5ss", -1, 0},
		{"5m5s", -1, 0}, {"5mss", -1, 0}, {"0x10s", -1, 0}, {"5\ts", -1, 0}, {"1e3ms", -1, 0}, {"5s\n", -1, 0},
	};
	(void)state;
	run_cases(cases, NELEM(cases));
}

/* The bounds: the digits must fit in int64, and so must the product with the unit. (The digit check is
 * a little conservative: it refuses the last eight values below 2^63 ms, some 292 million years.) */
static void test_overflow_is_refused_not_wrapped(void **state)
{
	static const dur_case cases[] = {
		{"9223372036854775799ms", 0, INT64_C(9223372036854775799)},
		{"9223372036854775808ms", -1, 0},
		{"99999999999999999999999ms", -1, 0},
		{"9223372036854775s", 0, INT64_C(9223372036854775000)},
		{"9223372036854776s", -1, 0},
		{"153722867280912m", 0, INT64_C(9223372036854720000)},
		{"153722867280913m", -1, 0},
		{"2562047788015h", 0, INT64_C(9223372036854000000)},
		{"2562047788016h", -1, 0},
		{"00000000000000000000000000001h", 0, 3600000},
	};
	(void)state;
	run_cases(cases, NELEM(cases));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_units_and_their_factors),
		cmocka_unit_test(test_near_misses_are_refused),
		cmocka_unit_test(test_overflow_is_refused_not_wrapped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
