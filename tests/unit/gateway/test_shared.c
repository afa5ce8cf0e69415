/*
 * tests/unit/gateway/test_shared.c — gateway/shared.c: the whole-server caps are exact up to their cap, refuse past
 * it whichever worker asks, give every place back (also for a worker that died), and a hash collision only
 * ever makes a cap stricter; snapshots read back what was written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "gateway/shared.h"

static const uint8_t client_a[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
static const uint8_t client_b[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2};

static void test_global_cap_counts_every_worker(void **state)
{
	gw_shm *m = gw_shm_new(2, 64);
	gw_shm_place p[4];
	(void)state;
	assert_non_null(m);
	assert_int_equal(gw_shm_hold_take(m, 0, 1, client_a, 3, 100, 100, &p[0]), GW_SHM_TAKEN);
	assert_int_equal(gw_shm_hold_take(m, 1, 2, client_b, 3, 100, 100, &p[1]), GW_SHM_TAKEN);
	assert_int_equal(gw_shm_hold_take(m, 1, 3, client_b, 3, 100, 100, &p[2]), GW_SHM_TAKEN);
	assert_int_equal(gw_shm_hold_take(m, 0, 4, client_a, 3, 100, 100, &p[3]), GW_SHM_FULL);
	assert_int_equal(gw_shm_held(m), 3);
	assert_int_equal(gw_shm_worker_held(m, 0), 1);
	assert_int_equal(gw_shm_worker_held(m, 1), 2);
	gw_shm_hold_put(m, 1, &p[1]);
	assert_int_equal(gw_shm_hold_take(m, 0, 4, client_a, 3, 100, 100, &p[3]), GW_SHM_TAKEN);
	gw_shm_hold_put(m, 0, &p[0]);
	gw_shm_hold_put(m, 1, &p[2]);
	gw_shm_hold_put(m, 0, &p[3]);
	assert_int_equal(gw_shm_held(m), 0);
	gw_shm_free(m);
}

static void test_principal_and_client_caps(void **state)
{
	gw_shm *m = gw_shm_new(2, 64);
	gw_shm_place p[8];
	(void)state;
	assert_int_equal(gw_shm_hold_take(m, 0, 7, client_a, 100, 2, 100, &p[0]), GW_SHM_TAKEN);
	assert_int_equal(gw_shm_hold_take(m, 1, 7, client_b, 100, 2, 100, &p[1]), GW_SHM_TAKEN);
	assert_int_equal(gw_shm_hold_take(m, 1, 7, client_b, 100, 2, 100, &p[2]), GW_SHM_PRINCIPAL);
	assert_int_equal(gw_shm_held(m), 2); /* a refusal leaves nothing taken */
	assert_int_equal(gw_shm_hold_take(m, 0, 8, client_a, 100, 100, 1, &p[3]), GW_SHM_CLIENT);
	assert_int_equal(gw_shm_hold_take(m, 0, 8, client_b, 100, 100, 2, &p[3]), GW_SHM_TAKEN);
	assert_int_equal(gw_shm_held(m), 3);
	gw_shm_hold_put(m, 0, &p[0]);
	gw_shm_hold_put(m, 1, &p[1]);
	gw_shm_hold_put(m, 0, &p[3]);
	assert_int_equal(gw_shm_held(m), 0);
	gw_shm_free(m);
}

static void test_a_dead_workers_places_are_given_back(void **state)
{
	gw_shm *m = gw_shm_new(2, 64);
	gw_shm_place p;
	(void)state;
	for (int i = 0; i < 5; i++) assert_int_equal(gw_shm_hold_take(m, 1, 9, client_a, 100, 5, 5, &p), GW_SHM_TAKEN);
	assert_int_equal(gw_shm_hold_take(m, 0, 9, client_a, 100, 5, 5, &p), GW_SHM_PRINCIPAL);
	gw_shm_set_ready(m, 1, true, true);
	gw_shm_worker_reset(m, 1);
	assert_int_equal(gw_shm_held(m), 0);
	assert_int_equal(gw_shm_worker_held(m, 1), 0);
	assert_false(gw_shm_all_ready(m));
	for (int i = 0; i < 5; i++) assert_int_equal(gw_shm_hold_take(m, 0, 9, client_a, 100, 5, 5, &p), GW_SHM_TAKEN);
	gw_shm_free(m);
}

/* Among 100,000 user ids some share a slot of the 65,536: those users share one counter, so each is
 * refused earlier than alone — never later. */
static void test_a_collision_is_only_ever_stricter(void **state)
{
	gw_shm *m = gw_shm_new(1, 64);
	gw_shm_place p;
	int refused = 0;
	(void)state;
	for (int64_t u = 1; u <= 100000; u++) {
		gw_shm_verdict v = gw_shm_hold_take(m, 0, u, client_a, 1000000, 1, 1000000, &p);
		assert_true(v == GW_SHM_TAKEN || v == GW_SHM_PRINCIPAL);
		refused += v == GW_SHM_PRINCIPAL;
	}
	assert_true(refused > 0);             /* collisions exist at this load ... */
	assert_true(refused < 100000 - 50000); /* ... and at least every slot served one user */
	assert_int_equal(gw_shm_held(m), 100000 - refused);
	gw_shm_free(m);
}

static void test_snapshots_read_back(void **state)
{
	gw_shm *m = gw_shm_new(2, 64);
	uint64_t in[8], out[8];
	(void)state;
	assert_false(gw_shm_snap_read(m, 1, out));
	for (int i = 0; i < 8; i++) in[i] = 0x1111111111111111ULL * (uint64_t)(i + 1);
	gw_shm_snap_write(m, 1, in);
	gw_shm_snap_write(m, GW_SHM_RETIRED, in);
	assert_true(gw_shm_snap_read(m, 1, out));
	assert_memory_equal(in, out, sizeof in);
	assert_false(gw_shm_snap_read(m, 0, out));
	gw_shm_snap_clear(m, 1);
	assert_false(gw_shm_snap_read(m, 1, out));
	assert_true(gw_shm_snap_read(m, GW_SHM_RETIRED, out));
	gw_shm_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_global_cap_counts_every_worker),
		cmocka_unit_test(test_principal_and_client_caps),
		cmocka_unit_test(test_a_dead_workers_places_are_given_back),
		cmocka_unit_test(test_a_collision_is_only_ever_stricter),
		cmocka_unit_test(test_snapshots_read_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
