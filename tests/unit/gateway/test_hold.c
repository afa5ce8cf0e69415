/*
 * tests/unit/gateway/test_hold.c — gateway/hold.c as a table: which reason each way of ending a request gets
 * (the vocabulary of the access log and of pollgate_hold_duration_seconds), and which bucket a duration
 * falls in (upper bounds inclusive, as Prometheus's le).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gateway/hold.h"

static void test_classify(void **state)
{
	static const struct {
		int code;
		bool held, draining, terminal, at_cap;
		const char *want;
	} cases[] = {
		{200, false, false, false, false, "changed"},  {200, true, false, false, false, "changed"},
		{200, true, false, true, false, "terminal"},   {304, false, false, true, false, "terminal"},
		{304, false, false, false, false, "unchanged"}, {304, true, false, false, false, "timeout"},
		{304, true, false, true, false, "timeout"},    {200, true, true, false, false, "drain"},
		{304, true, true, false, false, "drain"},      {503, false, true, false, false, "drain"},
		{404, false, false, false, false, "denied"},   {404, true, false, false, false, "denied"},
		{401, true, false, false, false, "revoked"},   {401, false, false, false, false, "unauthorized"},
		{429, false, false, false, false, "cap"},      {503, false, false, false, true, "cap"},
		{503, false, false, false, false, "error"},    {0, true, false, false, false, "disconnect"},
		{0, true, true, false, false, "disconnect"},   {418, false, false, false, false, "error"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *got = gw_hold_reason_name(
			gw_hold_classify(cases[i].code, cases[i].held, cases[i].draining, cases[i].terminal, cases[i].at_cap));
		if (strcmp(got, cases[i].want) != 0) fail_msg("case %zu (code %d): %s, want %s", i, cases[i].code, got, cases[i].want);
	}
}

static void test_buckets(void **state)
{
	gw_hold_hist h;
	(void)state;
	memset(&h, 0, sizeof h);
	gw_hold_observe(&h, GW_HOLD_TIMEOUT, 0);      /* 0 s -> le 0.01 */
	gw_hold_observe(&h, GW_HOLD_TIMEOUT, 10);     /* 0.01 s exactly -> le 0.01 */
	gw_hold_observe(&h, GW_HOLD_TIMEOUT, 11);     /* -> le 0.05 */
	gw_hold_observe(&h, GW_HOLD_TIMEOUT, 25000);  /* 25 s exactly -> le 25 */
	gw_hold_observe(&h, GW_HOLD_TIMEOUT, 55000);  /* -> le 60 */
	gw_hold_observe(&h, GW_HOLD_TIMEOUT, 3600000); /* 1 h -> +Inf */
	gw_hold_observe(&h, GW_HOLD_CHANGED, -5);     /* a clock that went backwards counts as 0 */
	assert_int_equal(h.bucket[GW_HOLD_TIMEOUT][0], 2);
	assert_int_equal(h.bucket[GW_HOLD_TIMEOUT][1], 1);
	assert_string_equal(gw_hold_bound_text[7], "25");
	assert_int_equal(h.bucket[GW_HOLD_TIMEOUT][7], 1);
	assert_string_equal(gw_hold_bound_text[9], "60");
	assert_int_equal(h.bucket[GW_HOLD_TIMEOUT][9], 1);
	assert_string_equal(gw_hold_bound_text[GW_HOLD_BUCKETS - 1], "+Inf");
	assert_int_equal(h.bucket[GW_HOLD_TIMEOUT][GW_HOLD_BUCKETS - 1], 1);
	assert_int_equal(h.count[GW_HOLD_TIMEOUT], 6);
	assert_true(h.sum_s[GW_HOLD_TIMEOUT] > 3680.0 && h.sum_s[GW_HOLD_TIMEOUT] < 3680.1);
	assert_int_equal(h.bucket[GW_HOLD_CHANGED][0], 1);
	assert_true(h.sum_s[GW_HOLD_CHANGED] == 0.0);
	for (int i = 0; i < GW_HOLD_BUCKETS - 1; i++) {
		char buf[16];
		snprintf(buf, sizeof buf, "%g", gw_hold_bounds[i]);
		assert_string_equal(buf, gw_hold_bound_text[i]);
	}
}

/* The registry's other two layouts: labels are the bounds as printed, and observing through them puts
 * every value where the registry's own loops did (wake: integer milliseconds against 1, 5, ... 1000 ms;
 * batch: a count against 1, 10, ... 1000), so /metrics keeps its buckets and values. */
static size_t old_index(const double *bounds, size_t n, double v)
{
	size_t i = 0;
	while (i < n && v > bounds[i]) i++;
	return i;
}

static void test_registry_layouts(void **state)
{
	(void)state;
	static const double wake_ms[9] = {1, 5, 10, 25, 50, 100, 250, 500, 1000};
	static const double batch[7] = {1, 10, 50, 100, 250, 500, 1000};
	const cm_hist *all[] = {&gw_hist_hold, &gw_hist_wake, &gw_hist_batch};
	for (size_t h = 0; h < 3; h++) {
		for (size_t i = 0; i < all[h]->nbounds; i++) {
			char buf[16];
			snprintf(buf, sizeof buf, "%g", all[h]->bounds[i]);
			assert_string_equal(buf, all[h]->le[i]);
		}
		assert_string_equal(all[h]->le[all[h]->nbounds], "+Inf");
	}
	assert_int_equal(gw_hist_wake.nbounds + 1, GW_WAKE_BUCKETS);
	assert_int_equal(gw_hist_batch.nbounds + 1, GW_BATCH_BUCKETS);
	assert_int_equal(gw_hist_hold.nbounds + 1, GW_HOLD_BUCKETS);
	for (int ms = 0; ms <= 2000; ms++)
		if (cm_hist_bucket(&gw_hist_wake, ms / 1000.0) != old_index(wake_ms, 9, ms)) fail_msg("wake %d ms", ms);
	for (int n = 0; n <= 2000; n++)
		if (cm_hist_bucket(&gw_hist_batch, n) != old_index(batch, 7, n)) fail_msg("batch of %d", n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_registry_layouts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
