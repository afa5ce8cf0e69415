/*
 * tests/unit/db/test_logical.c — db/logical.c: the logical hint source end to end, against the throwaway
 * cluster of scripts/with-pg.sh (wal_level = logical; tests/unit/pg_helpers.h) on a real libevent loop.
 * Its own databases keep it apart from the other unit tests: one with db/migrations/000_logical.sql
 * applied (the real publication and pollgate_hint_map) and two mapped tables, one bare.
 *
 * Checked: the checks that refuse for good and name the fix (no publication, a role without REPLICATION);
 * the stream (temporary slot, pgoutput) turning committed changes into the NOTIFY-shaped hints: one per
 * resource per transaction, none for a rolled-back transaction, the old and the new key of an update that
 * moves it, a delete, a TRUNCATE as a re-read; the mapping counts; and a walsender the server ends (on_down
 * with its reason, then on_up again on a new slot, counted, hints flowing again). Hints are awaited, and a
 * marker commit after the transactions under test proves nothing else came: commits are handed over in
 * order, so once the marker's hint is in, every earlier one is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/hints.h"
#include "db/logical.h"
#include "pg_helpers.h"

#define APP "pollgate-logical-test"
#define DB_MAPPED "pollgate_unit_logical"
#define DB_BARE "pollgate_unit_logical_bare"
#define ROLE_NOREPL "pollgate_unit_norepl"
#define MIGRATION "db/migrations/000_logical.sql"
#define MAXH 64

typedef struct rec {
	int ups, downs, fatals, resyncs, n;
	char got[MAXH][48]; /* "channel payload" */
	char why[512];
} rec;

static void on_notify(void *arg, const char *channel, const char *payload)
{
	rec *r = arg;
	assert_true(r->n < MAXH);
	snprintf(r->got[r->n++], sizeof r->got[0], "%s %s", channel, payload);
}
static void on_resync(void *arg)
{
	((rec *)arg)->resyncs++;
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

/* `dsn` with another database and/or user (a later keyword wins in a conninfo). */
static void dsn_with(char *out, size_t cap, const char *dsn, const char *db, const char *user)
{
	int n = snprintf(out, cap, "%s dbname=%s", dsn, db);
	if (user) snprintf(out + n, cap - (size_t)n, " user=%s", user);
}

static char *read_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (fp == NULL) fail_msg("cannot open %s: run the test from the top of the checkout (make test-unit does)", path);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	long len = ftell(fp);
	assert_true(len > 0);
	rewind(fp);
	char *s = malloc((size_t)len + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)len, fp), (size_t)len);
	s[len] = '\0';
	fclose(fp);
	return s;
}

/* The databases, once per run: the mapped one through the real migration, the bare one empty. */
static void prepare(const char *dsn)
{
	static bool done;
	char c[512];
	if (done) return;
	PGconn *admin = pg_test_connect(dsn);
	pg_test_do(admin, "DROP DATABASE IF EXISTS " DB_MAPPED " WITH (FORCE)");
	pg_test_do(admin, "DROP DATABASE IF EXISTS " DB_BARE " WITH (FORCE)");
	pg_test_do(admin, "CREATE DATABASE " DB_MAPPED);
	pg_test_do(admin, "CREATE DATABASE " DB_BARE);
	pg_test_do(admin, "DROP ROLE IF EXISTS " ROLE_NOREPL);
	pg_test_do(admin, "CREATE ROLE " ROLE_NOREPL " LOGIN NOREPLICATION");
	PQfinish(admin);

	dsn_with(c, sizeof c, dsn, DB_MAPPED, NULL);
	PGconn *db = pg_test_connect(c);
	char *sql = read_file(MIGRATION);
	pg_test_do(db, sql);
	free(sql);
	pg_test_do(db, "CREATE TABLE runs (id bigint PRIMARY KEY, run_id bigint, note text)");
	pg_test_do(db, "CREATE TABLE members (user_id bigint PRIMARY KEY, role text)");
	pg_test_do(db, "CREATE TABLE unmapped (id bigint PRIMARY KEY)");
	pg_test_do(db, "SET client_min_messages = warning");
	pg_test_do(db, "SELECT pollgate_hint_map_add('runs', 'run', 'run_id')");
	pg_test_do(db, "SELECT pollgate_hint_map_add('members', 'access', 'user_id')");
	pg_test_do(db, "GRANT SELECT ON pollgate_hint_map TO " ROLE_NOREPL);
	PQfinish(db);
	done = true;
}

static db_logical *logical_new(struct event_base *base, const char *conninfo, const char *app, rec *r)
{
	db_logical_opts o = {
		.conninfo = conninfo,
		.application_name = app,
		.publication = "pollgate",
		.connect_timeout_ms = 10000,
		.reconnect_min_ms = 5,
		.reconnect_max_ms = 50,
		.heartbeat_ms = 5000,
		.on_notify = on_notify,
		.on_resync = on_resync,
		.on_up = on_up,
		.on_down = on_down,
		.on_fatal = on_fatal,
		.arg = r,
	};
	db_logical *l = db_logical_new(base, &o);
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

typedef struct waith {
	rec *r;
	const char *hint;
} waith;

static bool hint_seen(void *arg)
{
	waith *w = arg;
	for (int i = 0; i < w->r->n; i++)
		if (strcmp(w->r->got[i], w->hint) == 0) return true;
	return false;
}

/* Commit a marker (a run hint with key `marker`), wait for it, then check the hints before it: exactly
 * `want` (any order within, as one hand-over is sorted), and start afresh. */
static void expect_then_reset(struct event_base *base, PGconn *side, rec *r, long marker, const char *const *want)
{
	char sql[128], hint[48];
	snprintf(sql, sizeof sql, "INSERT INTO runs VALUES (%ld, %ld)", 1000000 + marker, marker);
	pg_test_do(side, sql);
	snprintf(hint, sizeof hint, "pollgate_run %ld", marker);
	waith w = {r, hint};
	pg_test_run_until(base, hint_seen, &w, PG_TEST_TIMEOUT_MS, hint);
	int nwant = 0;
	while (want[nwant]) nwant++;
	bool used[MAXH] = {false};
	for (int i = 0; i < r->n; i++) {
		if (strcmp(r->got[i], hint) == 0) continue;
		int j = 0;
		while (j < nwant && (used[j] || strcmp(want[j], r->got[i]) != 0)) j++;
		if (j == nwant) fail_msg("unexpected hint \"%s\"", r->got[i]);
		used[j] = true;
	}
	for (int j = 0; j < nwant; j++)
		if (!used[j]) fail_msg("missing hint \"%s\"", want[j]);
	r->n = 0;
}

/* ---- no server needed ---- */

static void test_publication_must_be_an_identifier(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	db_logical_opts o = {.conninfo = "", .publication = "Bad-name"};
	assert_null(db_logical_new(base, &o));
	o.publication = NULL;
	assert_null(db_logical_new(base, &o));
	o.publication = "pollgate";
	assert_null(db_logical_new(NULL, &o));
	assert_null(db_logical_new(base, NULL));
	db_logical *l = db_logical_new(base, &o); /* never driven: nothing connects */
	assert_non_null(l);
	assert_false(db_logical_is_up(l));
	for (int k = 0; k < DB_HINT_KINDS; k++) assert_int_equal(db_logical_mapped(l, k), -1);
	assert_int_equal(db_logical_mapped(l, DB_HINT_KINDS), -1);
	db_logical_free(l);
	db_logical_free(NULL);
	assert_false(db_logical_is_up(NULL));
	event_base_free(base);
}

/* ---- live ---- */

static void test_live_refusals_name_the_fix(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	char c[512];
	prepare(dsn);

	/* A database without the publication. */
	rec r = {0};
	dsn_with(c, sizeof c, dsn, DB_BARE, NULL);
	db_logical *l = logical_new(base, c, APP "-bare", &r);
	await_count(base, &r.fatals, 1, "on_fatal (no publication)");
	assert_non_null(strstr(r.why, "needs the publication pollgate"));
	assert_non_null(strstr(r.why, "000_logical.sql"));
	assert_int_equal(r.ups, 0);
	assert_false(db_logical_is_up(l));
	db_logical_free(l);

	/* A role without REPLICATION. */
	memset(&r, 0, sizeof r);
	dsn_with(c, sizeof c, dsn, DB_MAPPED, ROLE_NOREPL);
	l = logical_new(base, c, APP "-norepl", &r);
	await_count(base, &r.fatals, 1, "on_fatal (no REPLICATION)");
	assert_non_null(strstr(r.why, "needs a role with REPLICATION; role " ROLE_NOREPL));
	assert_non_null(strstr(r.why, "ALTER ROLE " ROLE_NOREPL " REPLICATION"));
	assert_int_equal(r.ups, 0);
	db_logical_free(l);
	event_base_free(base);
}

static void test_live_committed_changes_become_hints(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	char c[512];
	rec r = {0};
	prepare(dsn);
	dsn_with(c, sizeof c, dsn, DB_MAPPED, NULL);
	PGconn *side = pg_test_connect(c);
	db_logical *l = logical_new(base, c, APP "-stream", &r);
	await_count(base, &r.ups, 1, "on_up");
	assert_true(db_logical_is_up(l));
	assert_int_equal(db_logical_mapped(l, DB_HINT_RUN), 1);
	assert_int_equal(db_logical_mapped(l, DB_HINT_REVIEW_PACK), 0);
	assert_int_equal(db_logical_mapped(l, DB_HINT_ACCESS), 1);

	/* One insert. */
	pg_test_do(side, "INSERT INTO runs VALUES (1, 42, 'a')");
	expect_then_reset(base, side, &r, 1, (const char *const[]){"pollgate_run 42", NULL});

	/* Many changes of one run in one transaction: one hint; a table not mapped: none. */
	pg_test_do(side, "BEGIN");
	pg_test_do(side, "UPDATE runs SET note = 'b' WHERE id = 1");
	pg_test_do(side, "UPDATE runs SET note = 'c' WHERE id = 1");
	pg_test_do(side, "INSERT INTO runs VALUES (2, 42, 'd')");
	pg_test_do(side, "INSERT INTO unmapped VALUES (1)");
	pg_test_do(side, "COMMIT");
	expect_then_reset(base, side, &r, 2, (const char *const[]){"pollgate_run 42", NULL});

	/* A rolled-back transaction hints nothing. */
	pg_test_do(side, "BEGIN");
	pg_test_do(side, "INSERT INTO runs VALUES (3, 555, 'x')");
	pg_test_do(side, "ROLLBACK");
	expect_then_reset(base, side, &r, 3, (const char *const[]){NULL});

	/* An update that moves the key hints both (the migration made the identity FULL). */
	pg_test_do(side, "UPDATE runs SET run_id = 43 WHERE id = 2");
	expect_then_reset(base, side, &r, 4, (const char *const[]){"pollgate_run 42", "pollgate_run 43", NULL});

	/* Access rows: an insert and a delete name the user (each awaited alone: hints of the commits one
	 * hand-over covers are deduplicated together). */
	pg_test_do(side, "INSERT INTO members VALUES (7, 'reader')");
	expect_then_reset(base, side, &r, 5, (const char *const[]){"pollgate_access 7", NULL});
	pg_test_do(side, "DELETE FROM members WHERE user_id = 7");
	expect_then_reset(base, side, &r, 6, (const char *const[]){"pollgate_access 7", NULL});

	/* TRUNCATE of a mapped table: every held resource is re-read (which covers every run hint of that
	 * hand-over, so it is awaited before the marker). */
	assert_int_equal(r.resyncs, 0);
	pg_test_do(side, "TRUNCATE runs");
	await_count(base, &r.resyncs, 1, "on_resync after TRUNCATE");
	expect_then_reset(base, side, &r, 8, (const char *const[]){NULL});
	assert_int_equal(r.resyncs, 1);

	db_logical_stats st;
	db_logical_get_stats(l, &st);
	assert_true(st.transactions >= 12);
	assert_true(st.hints >= 12);
	assert_int_equal(st.resyncs, 1);
	assert_int_equal(st.reconnects, 0);
	assert_int_equal(r.downs + r.fatals, 0);
	db_logical_free(l);
	PQfinish(side);
	event_base_free(base);
}

static void test_live_ended_walsender_goes_down_and_comes_back(void **state)
{
	(void)state;
	const char *dsn = pg_test_dsn();
	struct event_base *base = event_base_new();
	char c[512];
	rec r = {0};
	prepare(dsn);
	dsn_with(c, sizeof c, dsn, DB_MAPPED, NULL);
	PGconn *side = pg_test_connect(c);
	db_logical *l = logical_new(base, c, APP "-kill", &r);
	await_count(base, &r.ups, 1, "on_up");

	long pid = pg_test_long(side, "SELECT coalesce(min(pid), 0) FROM pg_stat_replication WHERE application_name = '"
	                              APP "-kill'");
	assert_true(pid > 0);
	char sql[64];
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%ld)", pid);
	pg_test_do(side, sql);
	await_count(base, &r.downs, 1, "on_down");
	assert_non_null(strstr(r.why, "terminating connection due to administrator command"));
	assert_false(db_logical_is_up(l));

	/* Back on a new slot, with on_up (the caller re-reads what changed meanwhile); hints flow again. */
	await_count(base, &r.ups, 2, "on_up after the reconnect");
	assert_true(pg_test_long(side, "SELECT coalesce(min(pid), 0) FROM pg_stat_replication WHERE application_name = '"
	                               APP "-kill'") != pid);
	r.n = 0;
	expect_then_reset(base, side, &r, 7, (const char *const[]){NULL});
	db_logical_stats st;
	db_logical_get_stats(l, &st);
	assert_int_equal(st.reconnects, 1);
	assert_int_equal(st.errors, 1);
	assert_int_equal(r.fatals, 0);
	db_logical_free(l);
	PQfinish(side);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_publication_must_be_an_identifier),
		cmocka_unit_test(test_live_refusals_name_the_fix),
		cmocka_unit_test(test_live_committed_changes_become_hints),
		cmocka_unit_test(test_live_ended_walsender_goes_down_and_comes_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
