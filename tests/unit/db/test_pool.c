/*
 * tests/unit/db/test_pool.c — db/pool.c: the non-blocking query pool, against the throwaway cluster of
 * scripts/with-pg.sh (tests/unit/db/pg_helpers.h) on a real libevent loop. Its queueing and dispatch (FIFO
 * order, a callback never inside db_pool_query, the idle count that already counts queued work, work
 * queued from a callback), refusal while nothing is up, a failed statement that fails only itself, and
 * what a broken connection does to the work it holds: the query in flight fails with the server's reason,
 * the queue fails with "database unavailable" when no slot is left and moves to another slot when one is,
 * and the slot comes back on its own (reconnects counted). Also the query timeout and free with work
 * still queued (no callback, no leak).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/pool.h"
#include "pg_helpers.h"

#define APP "pollgate-pool-test"
#define MAXR 16

/* What the callbacks saw, in order. */
typedef struct rec {
	int n;
	char val[MAXR][128]; /* first value of the result, or "ERR:" + the reason */
	int changes;         /* on_change calls */
	db_pool *pool;       /* for callbacks that queue more */
	int chain;           /* queries still to queue from the callback */
} rec;

static void on_result(void *arg, const PGresult *res, const char *err)
{
	rec *r = arg;
	assert_true(r->n < MAXR);
	assert_true((res == NULL) != (err == NULL));
	if (res) {
		assert_true(PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK);
		snprintf(r->val[r->n], sizeof r->val[0], "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
	} else {
		snprintf(r->val[r->n], sizeof r->val[0], "ERR:%s", err);
	}
	r->n++;
}

static void on_change(void *arg)
{
	((rec *)arg)->changes++;
}

typedef struct waitn {
	rec *r;
	int n;
} waitn;

static bool results_reached(void *arg)
{
	waitn *w = arg;
	return w->r->n >= w->n;
}

static void await_results(struct event_base *base, rec *r, int n)
{
	waitn w = {r, n};
	pg_test_run_until(base, results_reached, &w, PG_TEST_TIMEOUT_MS, "query callbacks");
}

typedef struct waitc {
	db_pool *p;
	int connected;
} waitc;

static bool connected_reached(void *arg)
{
	waitc *w = arg;
	return db_pool_connected(w->p) == w->connected && db_pool_idle(w->p) == w->connected;
}

static void await_connected(struct event_base *base, db_pool *p, int n)
{
	waitc w = {p, n};
	pg_test_run_until(base, connected_reached, &w, PG_TEST_TIMEOUT_MS, "pool connections up and idle");
}

static db_pool *pool_new(struct event_base *base, const char *dsn, int size, int64_t query_timeout_ms, rec *r)
{
	db_pool_opts o = {
		.conninfo = dsn,
		.application_name = APP,
		.size = size,
		.connect_timeout_ms = 10000,
		.query_timeout_ms = query_timeout_ms,
		.reconnect_min_ms = 5,
		.reconnect_max_ms = 50,
		.on_change = on_change,
		.arg = r,
	};
	db_pool *p = db_pool_new(base, &o);
	assert_non_null(p);
	return p;
}

static void query(db_pool *p, const char *sql, const char *param, rec *r)
{
	const char *params[1] = {param};
	assert_int_equal(db_pool_query(p, sql, 1, params, on_result, r), 0);
}

/* ---- no server needed ---- */

static void test_bad_options_and_arguments_are_refused(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	rec r = {0};
	db_pool_opts o = {.conninfo = "", .size = 0};
	assert_null(db_pool_new(base, &o));
	assert_null(db_pool_new(NULL, &o));
	assert_null(db_pool_new(base, NULL));
	o.size = 1;
	o.conninfo = "host=/nonexistent-pollgate-dir";
	db_pool *p = db_pool_new(base, &o);
	assert_non_null(p);
	const char *params[1] = {"x"};
	errno = 0;
	assert_int_equal(db_pool_query(p, NULL, 0, NULL, on_result, &r), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(db_pool_query(p, "SELECT 1", 0, NULL, NULL, &r), -1);
	assert_int_equal(db_pool_query(p, "SELECT 1", -1, params, on_result, &r), -1);
	assert_int_equal(db_pool_query(p, "SELECT 1", 1, NULL, on_result, &r), -1);
	assert_int_equal(db_pool_query(p, "SELECT 1", 65536, params, on_result, &r), -1);
	assert_int_equal(errno, EINVAL);
	/* Nothing is up (and cannot be): refused at once, so the caller can answer 503. */
	errno = 0;
	assert_int_equal(db_pool_query(p, "SELECT 1", 0, NULL, on_result, &r), -1);
	assert_int_equal(errno, ENOTCONN);
	assert_int_equal(db_pool_queued(p), 0);
	assert_int_equal(r.n, 0);
	db_pool_free(p);
	db_pool_free(NULL);
	assert_int_equal(db_pool_connected(NULL), 0);
	assert_int_equal(db_pool_idle(NULL), 0);
	assert_int_equal(db_pool_queued(NULL), 0);
	db_pool_stats st;
	memset(&st, 0xff, sizeof st);
	db_pool_get_stats(NULL, &st);
	assert_int_equal(st.queries, 0);
	event_base_free(base);
}

/* ---- live ---- */

static void test_live_fifo_dispatch_and_counts(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	rec r = {0};
	db_pool *p = pool_new(base, dsn, 1, 10000, &r);

	/* Connecting happens from the loop: nothing is up yet, so a query is refused. */
	assert_int_equal(db_pool_connected(p), 0);
	assert_int_equal(db_pool_query(p, "SELECT 1", 0, NULL, on_result, &r), -1);
	await_connected(base, p, 1);
	assert_true(r.changes >= 1);

	char v[8][16];
	for (int i = 0; i < 8; i++) {
		snprintf(v[i], sizeof v[i], "%d", i + 1);
		query(p, "SELECT $1::int * 10", v[i], &r);
	}
	/* Queued, none delivered from inside db_pool_query; the idle slot already counts as taken. */
	assert_int_equal(r.n, 0);
	assert_int_equal(db_pool_queued(p), 8);
	assert_int_equal(db_pool_idle(p), 0);
	await_results(base, &r, 8);
	for (int i = 0; i < 8; i++) {
		char want[8];
		snprintf(want, sizeof want, "%d", (i + 1) * 10);
		assert_string_equal(r.val[i], want);
	}
	assert_int_equal(db_pool_queued(p), 0);
	await_connected(base, p, 1);

	/* A NULL parameter is SQL NULL. */
	r.n = 0;
	query(p, "SELECT ($1::text IS NULL)::text", NULL, &r);
	await_results(base, &r, 1);
	assert_string_equal(r.val[0], "true");

	db_pool_stats st;
	db_pool_get_stats(p, &st);
	assert_int_equal(st.queries, 9);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.reconnects, 0);
	db_pool_free(p);
	event_base_free(base);
}

static void test_live_failed_statement_fails_only_itself(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	rec r = {0};
	db_pool *p = pool_new(base, dsn, 1, 10000, &r);
	await_connected(base, p, 1);

	query(p, "SELECT $1::int", "1", &r);
	query(p, "SELECT * FROM pollgate_no_such_table WHERE $1::text IS NULL", "x", &r);
	query(p, "SELECT $1::int", "3", &r);
	await_results(base, &r, 3);
	assert_string_equal(r.val[0], "1");
	assert_non_null(strstr(r.val[1], "ERR:"));
	assert_non_null(strstr(r.val[1], "pollgate_no_such_table"));
	assert_null(strchr(r.val[1], '\n'));
	assert_string_equal(r.val[2], "3");
	/* The connection was fine: it stayed up. */
	assert_int_equal(db_pool_connected(p), 1);
	db_pool_stats st;
	db_pool_get_stats(p, &st);
	assert_int_equal(st.errors, 1);
	assert_int_equal(st.reconnects, 0);
	db_pool_free(p);
	event_base_free(base);
}

static void chain_cb(void *arg, const PGresult *res, const char *err)
{
	rec *r = arg;
	on_result(arg, res, err);
	/* The pool is consistent in a callback: queueing more from here works. */
	if (r->chain-- > 0) {
		const char *params[1] = {"7"};
		assert_int_equal(db_pool_query(r->pool, "SELECT $1::int", 1, params, chain_cb, r), 0);
		assert_int_equal(db_pool_queued(r->pool), 1);
	}
}

static void stmt(db_pool *p, const char *sql, const char *param, rec *r)
{
	const char *params[1] = {param};
	assert_int_equal(db_pool_query_stmt(p, sql, 1, params, on_result, r), 0);
}

/* db_pool_query_stmt: prepared once per connection (the statement sees itself in pg_prepared_statements
 * while it runs), executed by name afterwards, counted once per execution; a statement whose plan no
 * longer fits (its table changed its columns) is prepared afresh and run again without the caller
 * seeing an error; one that cannot be prepared fails with the server's error and leaves nothing behind. */
static void test_live_statements_are_prepared_once_per_connection(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	PGconn *side = pg_test_connect(dsn);
	pg_test_do(side, "DROP TABLE IF EXISTS pollgate_stmt_t; CREATE TABLE pollgate_stmt_t (a int); "
	                 "INSERT INTO pollgate_stmt_t VALUES (7)");
	struct event_base *base = event_base_new();
	rec r = {0};
	db_pool *p = pool_new(base, dsn, 1, 10000, &r);
	await_connected(base, p, 1);

	const char *count = "SELECT count(*) FROM pg_prepared_statements WHERE $1::text IS NOT NULL";
	stmt(p, count, "x", &r);
	stmt(p, count, "x", &r);
	query(p, "SELECT count(*) FROM pg_prepared_statements WHERE $1::text IS NOT NULL AND true", "x", &r);
	await_results(base, &r, 3);
	assert_string_equal(r.val[0], "1"); /* itself, prepared before it ran */
	assert_string_equal(r.val[1], "1"); /* the same one again, not a second */
	assert_string_equal(r.val[2], "1"); /* a plain query prepares nothing */
	db_pool_stats st;
	db_pool_get_stats(p, &st);
	assert_int_equal(st.queries, 3);

	const char *star = "SELECT * FROM pollgate_stmt_t WHERE $1::text IS NOT NULL";
	stmt(p, star, "x", &r);
	await_results(base, &r, 4);
	assert_string_equal(r.val[3], "7");
	pg_test_do(side, "ALTER TABLE pollgate_stmt_t ADD COLUMN b int");
	stmt(p, star, "x", &r);
	stmt(p, star, "x", &r);
	stmt(p, "SELECT * FROM pollgate_no_such_table WHERE $1::text IS NULL", "x", &r);
	stmt(p, count, "x", &r);
	await_results(base, &r, 8);
	assert_string_equal(r.val[4], "7"); /* refused as "cached plan must not change result type", run again */
	assert_string_equal(r.val[5], "7");
	assert_non_null(strstr(r.val[6], "pollgate_no_such_table"));
	/* Prepared on the connection: count, star twice (the first name is never reused); not the bad one. */
	assert_string_equal(r.val[7], "3");
	/* and the session keeps one generic plan per statement (planning once is the point) */
	stmt(p, "SELECT current_setting('plan_cache_mode') WHERE $1::text IS NOT NULL", "x", &r);
	await_results(base, &r, 9);
	assert_string_equal(r.val[8], "force_generic_plan");
	assert_int_equal(db_pool_connected(p), 1);
	db_pool_get_stats(p, &st);
	assert_int_equal(st.errors, 1); /* only the bad one */
	db_pool_free(p);
	event_base_free(base);
	pg_test_do(side, "DROP TABLE pollgate_stmt_t");
	PQfinish(side);
}

static void test_live_callback_may_queue_more(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	rec r = {0};
	db_pool *p = pool_new(base, dsn, 2, 10000, &r);
	await_connected(base, p, 2);
	r.pool = p;
	r.chain = 3;
	assert_int_equal(db_pool_query(p, "SELECT 7", 0, NULL, chain_cb, &r), 0);
	await_results(base, &r, 4);
	for (int i = 0; i < 4; i++) assert_string_equal(r.val[i], "7");
	db_pool_free(p);
	event_base_free(base);
}

static void terminate(PGconn *side, long pid)
{
	char sql[64];
	assert_true(pid > 0);
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%ld)", pid);
	pg_test_do(side, sql);
}

typedef struct waitq {
	db_pool *p;
	int queued;
} waitq;

static bool queue_down_to(void *arg)
{
	waitq *w = arg;
	return db_pool_queued(w->p) <= w->queued;
}

/* The backend pid of each slot, in slot order (all idle: the kick hands slot 0 the first query). */
static void slot_pids(struct event_base *base, db_pool *p, int size, long *pid, rec *r)
{
	int n0 = r->n;
	char idx[8][16];
	/* Query i goes to slot i; results may come back in any order, so each names its query. */
	for (int i = 0; i < size && i < 8; i++) {
		snprintf(idx[i], sizeof idx[i], "%d", i);
		query(p, "SELECT $1 || ':' || pg_backend_pid()", idx[i], r);
	}
	await_results(base, r, n0 + size);
	for (int i = 0; i < size; i++) {
		char *colon = strchr(r->val[n0 + i], ':');
		assert_non_null(colon);
		pid[strtol(r->val[n0 + i], NULL, 10)] = strtol(colon + 1, NULL, 10);
	}
	r->n = n0;
	await_connected(base, p, size);
}

static void test_live_killed_backend_fails_its_work_and_comes_back(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	PGconn *side = pg_test_connect(dsn);
	rec r = {0};
	db_pool *p = pool_new(base, dsn, 1, 60000, &r);
	await_connected(base, p, 1);

	long pid[1];
	slot_pids(base, p, 1, pid, &r);
	query(p, "SELECT pg_sleep(30) || $1", "a", &r);
	query(p, "SELECT $1::int", "2", &r);
	query(p, "SELECT $1::int", "3", &r);
	/* Once the sleeper is in flight (two left in the queue), the server ends its backend. */
	waitq w = {p, 2};
	pg_test_run_until(base, queue_down_to, &w, PG_TEST_TIMEOUT_MS, "the first query to go out");
	assert_int_equal(db_pool_queued(p), 2);
	terminate(side, pid[0]);
	await_results(base, &r, 3);

	/* The query in flight fails with the server's own reason; with no slot left, the queue fails too. */
	assert_non_null(strstr(r.val[0], "ERR:"));
	assert_non_null(strstr(r.val[0], "terminating connection due to administrator command"));
	assert_string_equal(r.val[1], "ERR:database unavailable");
	assert_string_equal(r.val[2], "ERR:database unavailable");
	assert_int_equal(db_pool_queued(p), 0);

	/* It reconnects on its own; the new connection serves queries. */
	await_connected(base, p, 1);
	query(p, "SELECT $1::int", "4", &r);
	await_results(base, &r, 4);
	assert_string_equal(r.val[3], "4");
	db_pool_stats st;
	db_pool_get_stats(p, &st);
	assert_int_equal(st.reconnects, 1);
	assert_int_equal(st.errors, 3);
	db_pool_free(p);
	PQfinish(side);
	event_base_free(base);
}

static void test_live_killed_backend_leaves_the_queue_to_the_other_slot(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	PGconn *side = pg_test_connect(dsn);
	rec r = {0};
	db_pool *p = pool_new(base, dsn, 2, 60000, &r);
	await_connected(base, p, 2);

	/* Both slots busy (slot 0 a sleeper killed later, slot 1 a short sleep), two queued behind them. */
	long pid[2];
	slot_pids(base, p, 2, pid, &r);
	query(p, "SELECT pg_sleep(30) || $1", "a", &r);
	query(p, "SELECT pg_sleep(0.2) || $1", "b", &r);
	query(p, "SELECT $1::int", "3", &r);
	query(p, "SELECT $1::int", "4", &r);
	waitq w = {p, 2};
	pg_test_run_until(base, queue_down_to, &w, PG_TEST_TIMEOUT_MS, "both slots busy");
	terminate(side, pid[0]);
	await_results(base, &r, 4);

	/* Only the killed query fails; the queued ones ran on the slot that stayed up. */
	int failed = 0, three = 0, four = 0;
	for (int i = 0; i < 4; i++) {
		if (strncmp(r.val[i], "ERR:", 4) == 0) {
			failed++;
			assert_non_null(strstr(r.val[i], "terminating connection"));
		}
		if (strcmp(r.val[i], "3") == 0) three = i;
		if (strcmp(r.val[i], "4") == 0) four = i;
	}
	assert_int_equal(failed, 1);
	assert_true(three > 0 && four > three); /* still in order */
	await_connected(base, p, 2);
	db_pool_free(p);
	PQfinish(side);
	event_base_free(base);
}

static void test_live_query_timeout_recycles_the_slot(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	rec r = {0};
	db_pool *p = pool_new(base, dsn, 1, 300, &r);
	await_connected(base, p, 1);
	query(p, "SELECT pg_sleep(3) || $1", "a", &r);
	await_results(base, &r, 1);
	assert_string_equal(r.val[0], "ERR:query timed out");
	await_connected(base, p, 1);
	query(p, "SELECT $1::int", "5", &r);
	await_results(base, &r, 2);
	assert_string_equal(r.val[1], "5");
	db_pool_stats st;
	db_pool_get_stats(p, &st);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.reconnects, 1);
	db_pool_free(p);
	event_base_free(base);
}

static void test_live_free_with_queued_work_calls_nothing(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	rec r = {0};
	db_pool *p = pool_new(base, dsn, 1, 10000, &r);
	await_connected(base, p, 1);
	query(p, "SELECT pg_sleep(0.1) || $1", "a", &r);
	query(p, "SELECT $1::int", "2", &r);
	event_base_loop(base, EVLOOP_NONBLOCK); /* the first one goes out */
	db_pool_free(p);
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(r.n, 0);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_options_and_arguments_are_refused),
		cmocka_unit_test(test_live_fifo_dispatch_and_counts),
		cmocka_unit_test(test_live_failed_statement_fails_only_itself),
		cmocka_unit_test(test_live_callback_may_queue_more),
		cmocka_unit_test(test_live_statements_are_prepared_once_per_connection),
		cmocka_unit_test(test_live_killed_backend_fails_its_work_and_comes_back),
		cmocka_unit_test(test_live_killed_backend_leaves_the_queue_to_the_other_slot),
		cmocka_unit_test(test_live_query_timeout_recycles_the_slot),
		cmocka_unit_test(test_live_free_with_queued_work_calls_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
