/*
 * tests/unit/db/test_conn.c — db/conn.c: the connection helpers the pool, the LISTEN session and the logical
 * source share. The pure parts directly: the reconnect backoff (doubling, cap, the jitter's range and
 * spread, clamping of silly bounds), the one-line error text (first line, trimming, truncation, the
 * server's FATAL winning over libpq's text, the redaction of a malformed conninfo that could echo a
 * password), the log-safe rewrite and the timer helper. The parts that need a server against the
 * throwaway cluster of scripts/with-pg.sh (tests/unit/db/pg_helpers.h): a non-blocking connect stepped by
 * db_conn_poll from a real libevent loop, the application name and the walsender flavour arriving at the
 * server, a refused connect, and the notice receiver keeping the FATAL a terminated backend sends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "db/conn-internal.h"
#include "pg_helpers.h"

/* ---- backoff ---- */

static void test_backoff_doubles_within_jitter_and_caps(void **state)
{
	(void)state;
	uint64_t rng = 12345;
	/* d = min(max, min * 2^attempt); the pick is in [d/2, d]. */
	const int64_t want_d[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
	for (unsigned a = 0; a < sizeof want_d / sizeof want_d[0]; a++) {
		for (int i = 0; i < 200; i++) {
			int64_t v = db_conn_backoff_ms(&rng, 100, 5000, a);
			assert_in_range(v, want_d[a] / 2, want_d[a]);
		}
	}
	/* An attempt count far past the cap neither overflows nor passes the cap. */
	for (int i = 0; i < 100; i++) {
		assert_in_range(db_conn_backoff_ms(&rng, 100, 5000, 64), 2500, 5000);
		assert_in_range(db_conn_backoff_ms(&rng, 100, 5000, UINT32_MAX), 2500, 5000);
		assert_in_range(db_conn_backoff_ms(&rng, 1, INT64_MAX, 200), 1, INT64_MAX);
	}
}

static void test_backoff_jitter_spreads_over_the_range(void **state)
{
	(void)state;
	uint64_t rng = 0;
	rng = db_conn_rng_seed(&rng);
	int low = 0, high = 0, first = -1, distinct = 0;
	/* Many gateways restarted together must not retry in lockstep: both halves of [d/2, d] are hit. */
	for (int i = 0; i < 1000; i++) {
		int64_t v = db_conn_backoff_ms(&rng, 1000, 1000, 0);
		assert_in_range(v, 500, 1000);
		if (v < 750) low++;
		else high++;
		if (first < 0) first = (int)v;
		else if (v != first) distinct++;
	}
	assert_true(low > 300);
	assert_true(high > 300);
	assert_true(distinct > 0);
}

static void test_backoff_clamps_bounds(void **state)
{
	(void)state;
	uint64_t rng = 7;
	for (int i = 0; i < 100; i++) {
		/* min < 1 is 1; max < min is min. */
		assert_in_range(db_conn_backoff_ms(&rng, 0, 0, 0), 0, 1);
		assert_in_range(db_conn_backoff_ms(&rng, -5, -9, 3), 0, 1);
		assert_in_range(db_conn_backoff_ms(&rng, 300, 10, 5), 150, 300);
	}
}

static void test_rng_seed_is_never_zero_and_differs_per_object(void **state)
{
	(void)state;
	int a = 0, b = 0;
	uint64_t sa = db_conn_rng_seed(&a), sb = db_conn_rng_seed(&b);
	assert_true(sa != 0 && sb != 0);
	assert_true(sa != sb);
	/* Two seeds give two different sequences. */
	assert_true(db_conn_backoff_ms(&sa, 1, 1000000, 30) != db_conn_backoff_ms(&sb, 1, 1000000, 30) ||
	            db_conn_backoff_ms(&sa, 1, 1000000, 30) != db_conn_backoff_ms(&sb, 1, 1000000, 30));
}

/* ---- error text ---- */

static void test_first_line_trims_and_truncates(void **state)
{
	(void)state;
	char out[64];
	db_conn_first_line(out, sizeof out, "\n\n   ERROR:  relation \"x\" does not exist  \r\nLINE 1: select\n");
	assert_string_equal(out, "ERROR:  relation \"x\" does not exist");
	db_conn_first_line(out, sizeof out, NULL);
	assert_string_equal(out, "unknown error");
	db_conn_first_line(out, sizeof out, " \n\t\r\n ");
	assert_string_equal(out, "unknown error");
	char small[6];
	db_conn_first_line(small, sizeof small, "abcdefghij\nk");
	assert_string_equal(small, "abcde");
	char canary[2] = {'x', 'y'};
	db_conn_first_line(canary, 0, "abc"); /* cap 0 writes nothing */
	assert_int_equal(canary[0], 'x');
}

static void test_log_safe_rewrites_quotes_and_controls(void **state)
{
	(void)state;
	char s[] = "a\"b\tc\nd\x7f" "e'f";
	db_conn_log_safe(s);
	assert_string_equal(s, "a'b c d e'f");
}

static void test_conn_error_prefers_the_servers_fatal(void **state)
{
	(void)state;
	char out[256];
	db_conn_tag tag = {.who = "pool", .id = 0};
	db_conn_error(out, sizeof out, NULL, NULL);
	assert_string_equal(out, "unknown error");
	db_conn_error(out, sizeof out, NULL, &tag);
	assert_string_equal(out, "unknown error");
	snprintf(tag.fatal, sizeof tag.fatal, "terminating connection due to administrator command");
	db_conn_error(out, sizeof out, NULL, &tag);
	assert_string_equal(out, "terminating connection due to administrator command");
}

static void test_result_error_names_the_status(void **state)
{
	(void)state;
	char out[128];
	db_conn_result_error(out, sizeof out, NULL);
	assert_string_equal(out, "no result");
	PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_EMPTY_QUERY);
	db_conn_result_error(out, sizeof out, r);
	assert_string_equal(out, "empty query");
	PQclear(r);
	r = PQmakeEmptyPGresult(NULL, PGRES_COPY_OUT);
	db_conn_result_error(out, sizeof out, r);
	assert_string_equal(out, "unexpected result status PGRES_COPY_OUT");
	PQclear(r);
}

static void test_malformed_conninfo_is_refused_and_redacted(void **state)
{
	(void)state;
	char why[256];
	db_conn_tag tag = {.who = "pool", .id = 0};
	/* libpq quotes the bad keyword, which is where a misplaced password ends up. */
	PGconn *pg = db_conn_start("host=/nowhere s3cretpw=x", "t", &tag, why, sizeof why);
	assert_null(pg);
	assert_non_null(strstr(why, "invalid connection option"));
	assert_null(strstr(why, "s3cretpw"));
	assert_non_null(strstr(why, "\"...\""));
	pg = db_conn_start_replication("postgresql://u:s3cretpw@h:notaport/db", "t", &tag, why, sizeof why);
	assert_null(pg);
	assert_null(strstr(why, "s3cretpw"));
	assert_null(strstr(why, "notaport"));
}

/* ---- the timer helper, on a real loop ---- */

static void flag_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(*(int *)arg)++;
}

static bool int_positive(void *arg)
{
	return *(int *)arg > 0;
}

static void test_timer_ms_fires_and_negative_is_now(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	int fired = 0;
	struct event *t = evtimer_new(base, flag_cb, &fired);
	assert_int_equal(db_conn_timer_ms(t, -50), 0);
	assert_true(evtimer_pending(t, NULL));
	pg_test_run_until(base, int_positive, &fired, PG_TEST_TIMEOUT_MS, "a timer armed with -50 ms");
	assert_int_equal(fired, 1);
	fired = 0;
	assert_int_equal(db_conn_timer_ms(t, 5), 0);
	pg_test_run_until(base, int_positive, &fired, PG_TEST_TIMEOUT_MS, "a 5 ms timer");
	event_free(t);
	event_base_free(base);
}

/* ---- live: a connection stepped from the loop ---- */

typedef struct stepper {
	PGconn *pg;
	db_conn_io io;
	int result; /* 0 still connecting, 1 up, -1 failed */
	int steps;
} stepper;

static void step_cb(evutil_socket_t fd, short what, void *arg)
{
	stepper *s = arg;
	short want = 0;
	(void)fd;
	(void)what;
	s->steps++;
	int r = db_conn_poll(s->pg, &want);
	if (r != 0) {
		s->result = r;
		return;
	}
	if (db_conn_io_arm(&s->io, s->pg, want) != 0) s->result = -1;
}

static bool stepper_done(void *arg)
{
	return ((stepper *)arg)->result != 0;
}

/* Start a connection and step it from the loop until it is up or failed; returns the outcome. */
static int connect_on_loop(struct event_base *base, stepper *s, PGconn *pg)
{
	memset(s, 0, sizeof *s);
	s->pg = pg;
	assert_int_equal(db_conn_io_init(&s->io, base, step_cb, s), 0);
	assert_int_equal(db_conn_io_arm(&s->io, pg, EV_WRITE), 0);
	/* Arming twice with the same wish keeps the one pending event. */
	assert_int_equal(db_conn_io_arm(&s->io, pg, EV_WRITE), 0);
	pg_test_run_until(base, stepper_done, s, PG_TEST_TIMEOUT_MS, "the connect to finish");
	return s->result;
}

static long backends_named(PGconn *side, const char *app, const char *backend_type)
{
	char sql[256];
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' AND backend_type = '%s'", app,
	         backend_type);
	return pg_test_long(side, sql);
}

static void test_live_connect_steps_from_the_loop(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	PGconn *side = pg_test_connect(dsn);
	db_conn_tag tag = {.who = "pool", .id = 3};
	char why[256];
	stepper s;

	PGconn *pg = db_conn_start(dsn, "pollgate-conn-test", &tag, why, sizeof why);
	assert_non_null(pg);
	assert_int_equal(connect_on_loop(base, &s, pg), 1);
	assert_true(s.steps >= 1);
	assert_int_equal(PQstatus(pg), CONNECTION_OK);
	assert_int_equal(PQisnonblocking(pg), 1);
	/* The name we asked for is what the server shows; keepalives are on. */
	assert_string_equal(PQparameterStatus(pg, "application_name"), "pollgate-conn-test");
	assert_int_equal(backends_named(side, "pollgate-conn-test", "client backend"), 1);
	db_conn_io_disarm(&s.io);
	db_conn_io_free(&s.io);
	db_conn_io_free(&s.io); /* twice is safe */
	PQfinish(pg);

	/* The replication flavour is a walsender. */
	pg = db_conn_start_replication(dsn, "pollgate-conn-test-repl", &tag, why, sizeof why);
	assert_non_null(pg);
	assert_int_equal(connect_on_loop(base, &s, pg), 1);
	assert_int_equal(backends_named(side, "pollgate-conn-test-repl", "walsender"), 1);
	db_conn_io_free(&s.io);
	PQfinish(pg);

	PQfinish(side);
	event_base_free(base);
}

static void test_live_refused_connect_fails_with_a_reason(void **state)
{
	(void)state;
	(void)pg_test_dsn();
	struct event_base *base = event_base_new();
	db_conn_tag tag = {.who = "pool", .id = 0};
	char why[256], line[256];
	stepper s;

	/* A socket directory with no server in it: refused at the first step. */
	PGconn *pg = db_conn_start("host=/nonexistent-pollgate-dir port=1 connect_timeout=5", NULL, &tag, why, sizeof why);
	if (pg != NULL && PQsocket(pg) >= 0) {
		assert_int_equal(connect_on_loop(base, &s, pg), -1);
		db_conn_io_free(&s.io);
	}
	if (pg != NULL) {
		db_conn_error(line, sizeof line, pg, &tag);
		assert_null(strchr(line, '\n'));
		assert_true(strlen(line) > 0);
		assert_string_not_equal(line, "unknown error");
		PQfinish(pg);
	} else {
		assert_true(strlen(why) > 0);
	}
	event_base_free(base);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	stepper *s = arg;
	s->steps++;
	/* Read what the server sent and parse it (PQnotifies does, as the pool and the LISTEN session do
	 * after every read): the FATAL of an idle connection reaches the notice receiver. */
	int ok = PQconsumeInput(s->pg);
	PGnotify *n;
	while ((n = PQnotifies(s->pg)) != NULL) PQfreemem(n);
	if (!ok || PQstatus(s->pg) == CONNECTION_BAD) s->result = -1;
	else if (db_conn_io_arm(&s->io, s->pg, EV_READ) != 0) s->result = -1;
}

static void test_live_fatal_of_a_terminated_backend_is_kept(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	PGconn *side = pg_test_connect(dsn);
	db_conn_tag tag = {.who = "listen", .id = -1};
	char why[256], sql[128];
	stepper s;

	PGconn *pg = db_conn_start(dsn, "pollgate-conn-fatal", &tag, why, sizeof why);
	assert_non_null(pg);
	assert_int_equal(connect_on_loop(base, &s, pg), 1);
	assert_string_equal(tag.fatal, "");

	/* Watch for reads, then have the server end this backend. */
	db_conn_io_free(&s.io);
	s.result = 0;
	assert_int_equal(db_conn_io_init(&s.io, base, read_cb, &s), 0);
	assert_int_equal(db_conn_io_arm(&s.io, pg, EV_READ), 0);
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", PQbackendPID(pg));
	pg_test_do(side, sql);
	pg_test_run_until(base, stepper_done, &s, PG_TEST_TIMEOUT_MS, "the terminated backend's close");

	/* The server's reason is kept, and wins over libpq's "server closed the connection". */
	assert_non_null(strstr(tag.fatal, "terminating connection due to administrator command"));
	db_conn_error(why, sizeof why, pg, &tag);
	assert_string_equal(why, tag.fatal);
	db_conn_io_free(&s.io);
	PQfinish(pg);
	PQfinish(side);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_doubles_within_jitter_and_caps),
		cmocka_unit_test(test_backoff_jitter_spreads_over_the_range),
		cmocka_unit_test(test_backoff_clamps_bounds),
		cmocka_unit_test(test_rng_seed_is_never_zero_and_differs_per_object),
		cmocka_unit_test(test_first_line_trims_and_truncates),
		cmocka_unit_test(test_log_safe_rewrites_quotes_and_controls),
		cmocka_unit_test(test_conn_error_prefers_the_servers_fatal),
		cmocka_unit_test(test_result_error_names_the_status),
		cmocka_unit_test(test_malformed_conninfo_is_refused_and_redacted),
		cmocka_unit_test(test_timer_ms_fires_and_negative_is_now),
		cmocka_unit_test(test_live_connect_steps_from_the_loop),
		cmocka_unit_test(test_live_refused_connect_fails_with_a_reason),
		cmocka_unit_test(test_live_fatal_of_a_terminated_backend_is_kept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
