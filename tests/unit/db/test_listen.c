/*
 * tests/unit/db/test_listen.c — db/listen.c: the LISTEN session, against the throwaway cluster of
 * scripts/with-pg.sh (tests/unit/db/pg_helpers.h) on a real libevent loop. The channel check (plain
 * identifiers only, refused before anything connects), on_up once the session listens on every channel,
 * NOTIFYs handed over with their channel and payload (only the channels asked for, every one of a burst:
 * PQnotifies drained), the heartbeat's queue usage, the hint-trigger count of check_hints before on_up,
 * and what happens when the backend is killed (on_down with the server's reason, then on_up again,
 * counted) or stops answering (the heartbeat notices a silent link).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "db/listen.h"
#include "pg_helpers.h"

#define APP "pollgate-listen-test"
#define MAXN 32

typedef struct rec {
	int ups, downs, fatals, n;
	char chan[MAXN][64];
	char payload[MAXN][64];
	char why[256];
} rec;

static void on_notify(void *arg, const char *channel, const char *payload)
{
	rec *r = arg;
	assert_true(r->n < MAXN);
	snprintf(r->chan[r->n], sizeof r->chan[0], "%s", channel);
	snprintf(r->payload[r->n], sizeof r->payload[0], "%s", payload);
	r->n++;
}

static void on_up(void *arg)
{
	((rec *)arg)->ups++;
}

static void on_down(void *arg, const char *why)
{
	rec *r = arg;
	r->downs++;
	snprintf(r->why, sizeof r->why, "%s", why);
}

static void on_fatal(void *arg, const char *why)
{
	rec *r = arg;
	r->fatals++;
	snprintf(r->why, sizeof r->why, "%s", why);
}

static const char *const CHANNELS[] = {"pollgate_run", "pollgate_access"};

static db_listen *listen_new(struct event_base *base, const char *dsn, const char *app, int64_t heartbeat_ms,
                             bool check_hints, rec *r)
{
	db_listen_opts o = {
		.conninfo = dsn,
		.application_name = app,
		.channels = CHANNELS,
		.n_channels = 2,
		.connect_timeout_ms = 10000,
		.reconnect_min_ms = 5,
		.reconnect_max_ms = 50,
		.heartbeat_ms = heartbeat_ms,
		.check_hints = check_hints,
		.on_notify = on_notify,
		.on_up = on_up,
		.on_down = on_down,
		.on_fatal = on_fatal,
		.arg = r,
	};
	db_listen *l = db_listen_new(base, &o);
	assert_non_null(l);
	return l;
}

typedef struct waitv {
	const int *v;
	int n;
} waitv;

static bool reached(void *arg)
{
	waitv *w = arg;
	return *w->v >= w->n;
}

static void await_count(struct event_base *base, const int *v, int n, const char *what)
{
	waitv w = {v, n};
	pg_test_run_until(base, reached, &w, PG_TEST_TIMEOUT_MS, what);
}

/* Each test names its session apart, so a session a failed test left behind is never the one found. */
static long session_pid(PGconn *side, const char *app)
{
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT coalesce(min(pid), 0) FROM pg_stat_activity WHERE application_name = '%s'", app);
	return pg_test_long(side, sql);
}

/* ---- no server needed ---- */

static void test_channels_must_be_plain_identifiers(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	char c63[64], c64[65];
	memset(c63, 'a', 63);
	c63[63] = '\0';
	memset(c64, 'a', 64);
	c64[64] = '\0';
	const char *bad[] = {"Pollgate", "1run", "run-x", "run x", "", "r\"un", "r\xc3\xa9", c64, NULL};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *ch[2] = {"pollgate_run", bad[i]};
		db_listen_opts o = {.conninfo = "", .channels = ch, .n_channels = 2};
		assert_null(db_listen_new(base, &o));
	}
	db_listen_opts o = {.conninfo = "", .channels = NULL, .n_channels = 1};
	assert_null(db_listen_new(base, &o));
	o.n_channels = -1;
	assert_null(db_listen_new(base, &o));
	assert_null(db_listen_new(NULL, &o));

	/* The longest identifier the server keeps whole, and a leading underscore, are fine. */
	const char *good[] = {c63, "_x9"};
	o.channels = good;
	o.n_channels = 2;
	o.conninfo = "host=/nonexistent-pollgate-dir";
	db_listen *l = db_listen_new(base, &o);
	assert_non_null(l);
	assert_false(db_listen_is_up(l));
	assert_true(db_listen_queue_usage(l) < 0);
	for (int k = 0; k < DB_HINT_KINDS; k++) assert_int_equal(db_listen_hints(l)->tables[k], -1);
	db_listen_free(l);
	db_listen_free(NULL);
	assert_false(db_listen_is_up(NULL));
	assert_int_equal(db_listen_hints(NULL)->tables[0], -1);
	event_base_free(base);
}

/* ---- live ---- */

static void test_live_notifies_reach_the_callback(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	PGconn *side = pg_test_connect(dsn);
	rec r = {0};
	db_listen *l = listen_new(base, dsn, APP "-notify", 0, false, &r);

	assert_false(db_listen_is_up(l));
	await_count(base, &r.ups, 1, "on_up");
	assert_true(db_listen_is_up(l));

	pg_test_do(side, "NOTIFY pollgate_other, 'no'");
	pg_test_do(side, "NOTIFY pollgate_run, '42'");
	pg_test_do(side, "NOTIFY pollgate_access, '*'");
	await_count(base, &r.n, 2, "two notifications");
	assert_string_equal(r.chan[0], "pollgate_run");
	assert_string_equal(r.payload[0], "42");
	assert_string_equal(r.chan[1], "pollgate_access");
	assert_string_equal(r.payload[1], "*");

	/* A burst in one transaction arrives whole: every notification is drained after a read. */
	r.n = 0;
	pg_test_do(side, "BEGIN");
	for (int i = 0; i < 20; i++) {
		char sql[64];
		snprintf(sql, sizeof sql, "NOTIFY pollgate_run, '%d'", 100 + i);
		pg_test_do(side, sql);
	}
	pg_test_do(side, "COMMIT");
	await_count(base, &r.n, 20, "a burst of 20 notifications");
	for (int i = 0; i < 20; i++) {
		char want[16];
		snprintf(want, sizeof want, "%d", 100 + i);
		assert_string_equal(r.payload[i], want);
	}
	db_listen_stats st;
	db_listen_get_stats(l, &st);
	assert_int_equal(st.notifies, 22);
	assert_int_equal(st.reconnects, 0);
	assert_int_equal(r.ups, 1);
	assert_int_equal(r.downs + r.fatals, 0);
	db_listen_free(l);
	PQfinish(side);
	event_base_free(base);
}

static bool usage_known(void *arg)
{
	return db_listen_queue_usage(arg) >= 0;
}

static void test_live_heartbeat_reads_queue_usage(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	rec r = {0};
	db_listen *l = listen_new(base, dsn, APP "-heartbeat", 100, false, &r);
	await_count(base, &r.ups, 1, "on_up");
	pg_test_run_until(base, usage_known, l, PG_TEST_TIMEOUT_MS, "the first heartbeat");
	assert_true(db_listen_queue_usage(l) < 0.5);
	db_listen_free(l);
	event_base_free(base);
}

static bool hints_known(void *arg)
{
	return db_listen_hints(arg)->tables[DB_HINT_RUN] >= 0;
}

static void test_live_check_hints_counts_triggers_before_up(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	PGconn *side = pg_test_connect(dsn);
	rec r = {0};
	/* One table with an enabled run trigger, and one whose trigger is disabled (not counted). */
	pg_test_do(side, "CREATE FUNCTION pollgate_hint() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$");
	pg_test_do(side, "CREATE TABLE listen_test_runs (id bigint)");
	pg_test_do(side, "CREATE TABLE listen_test_off (id bigint)");
	pg_test_do(side, "CREATE TRIGGER h AFTER UPDATE ON listen_test_runs FOR EACH ROW EXECUTE FUNCTION pollgate_hint('run', 'id')");
	pg_test_do(side, "CREATE TRIGGER h AFTER UPDATE ON listen_test_off FOR EACH ROW EXECUTE FUNCTION pollgate_hint('access', 'id')");
	pg_test_do(side, "ALTER TABLE listen_test_off DISABLE TRIGGER h");

	db_listen *l = listen_new(base, dsn, APP "-hints", 0, true, &r);
	assert_int_equal(db_listen_hints(l)->tables[DB_HINT_RUN], -1);
	await_count(base, &r.ups, 1, "on_up");
	/* The count was in before on_up. */
	assert_true(hints_known(l));
	assert_int_equal(db_listen_hints(l)->tables[DB_HINT_RUN], 1);
	assert_int_equal(db_listen_hints(l)->tables[DB_HINT_REVIEW_PACK], 0);
	assert_int_equal(db_listen_hints(l)->tables[DB_HINT_ACCESS], 0);
	db_listen_free(l);

	pg_test_do(side, "DROP TABLE listen_test_runs, listen_test_off");
	pg_test_do(side, "DROP FUNCTION pollgate_hint()");
	PQfinish(side);
	event_base_free(base);
}

static void test_live_killed_backend_goes_down_and_comes_back(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	PGconn *side = pg_test_connect(dsn);
	rec r = {0};
	char sql[64];
	db_listen *l = listen_new(base, dsn, APP "-kill", 0, false, &r);
	await_count(base, &r.ups, 1, "on_up");

	long pid = session_pid(side, APP "-kill");
	assert_true(pid > 0);
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%ld)", pid);
	pg_test_do(side, sql);
	await_count(base, &r.downs, 1, "on_down");
	assert_non_null(strstr(r.why, "terminating connection due to administrator command"));
	assert_false(db_listen_is_up(l));

	/* Back on its own, with on_up again (the caller re-reads), on a new backend, still listening. */
	await_count(base, &r.ups, 2, "on_up after the reconnect");
	assert_true(session_pid(side, APP "-kill") != pid);
	pg_test_do(side, "NOTIFY pollgate_run, '7'");
	await_count(base, &r.n, 1, "a notification after the reconnect");
	assert_string_equal(r.payload[0], "7");
	db_listen_stats st;
	db_listen_get_stats(l, &st);
	assert_int_equal(st.reconnects, 1);
	assert_int_equal(st.errors, 1);
	assert_int_equal(r.fatals, 0);
	db_listen_free(l);
	PQfinish(side);
	event_base_free(base);
}

static void test_live_silent_backend_is_caught_by_the_heartbeat(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	PGconn *side = pg_test_connect(dsn);
	rec r = {0};
	db_listen *l = listen_new(base, dsn, APP "-silent", 200, false, &r);
	await_count(base, &r.ups, 1, "on_up");

	/* A backend that stops answering (the link went silent): the heartbeat gets no reply in time. */
	long pid = session_pid(side, APP "-silent");
	assert_true(pid > 0);
	if (kill((pid_t)pid, SIGSTOP) != 0) {
		db_listen_free(l);
		PQfinish(side);
		event_base_free(base);
		fprintf(stderr, "skipped: cannot stop the backend (not its owner)\n");
		skip();
	}
	await_count(base, &r.downs, 1, "on_down for a silent backend");
	assert_int_equal(kill((pid_t)pid, SIGCONT), 0);
	assert_string_equal(r.why, "heartbeat timed out");
	await_count(base, &r.ups, 2, "on_up after the reconnect");
	db_listen_free(l);
	PQfinish(side);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_channels_must_be_plain_identifiers),
		cmocka_unit_test(test_live_notifies_reach_the_callback),
		cmocka_unit_test(test_live_heartbeat_reads_queue_usage),
		cmocka_unit_test(test_live_check_hints_counts_triggers_before_up),
		cmocka_unit_test(test_live_killed_backend_goes_down_and_comes_back),
		cmocka_unit_test(test_live_silent_backend_is_caught_by_the_heartbeat),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
