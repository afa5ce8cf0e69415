/*
 * tests/unit/common/test_hist.c — common/hist.c: which bucket a value falls in. Prometheus buckets are "less or
 * equal", so a value equal to a bound belongs to that bound's bucket; above the last bound is +Inf, and
 * so is NaN (it compares false with everything and must not land in the first bucket).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "common/hist.h"

static const double bounds[3] = {0.5, 1, 10};
static const char *const le[4] = {"0.5", "1", "10", "+Inf"};
static const cm_hist h = {3, bounds, le};

static void test_bucket_edges(void **state)
{
	(void)state;
	static const struct {
		double v;
		size_t want;
	} rows[] = {
		{-1, 0}, {0, 0}, {0.5, 0}, {0.5000001, 1}, {1, 1}, {1.0000001, 2},
		{10, 2}, {10.5, 3}, {1e300, 3}, {INFINITY, 3}, {-INFINITY, 0},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		if (cm_hist_bucket(&h, rows[i].v) != rows[i].want)
			fail_msg("%g: bucket %zu, want %zu", rows[i].v, cm_hist_bucket(&h, rows[i].v), rows[i].want);
}

static void test_nan_is_inf(void **state)
{
	(void)state;
	assert_int_equal(cm_hist_bucket(&h, NAN), 3);
}

static void test_no_bounds_is_one_bucket(void **state)
{
	(void)state;
	static const char *const only[1] = {"+Inf"};
	const cm_hist none = {0, NULL, only};
	assert_int_equal(cm_hist_bucket(&none, 42), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_edges),
		cmocka_unit_test(test_nan_is_inf),
		cmocka_unit_test(test_no_bounds_is_one_bucket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
