/*
 * tests/unit/db/pg_helpers.h — what the db/ unit tests that need a live PostgreSQL share: the throwaway
 * cluster's conninfo (POLLGATE_TEST_DSN, set by scripts/with-pg.sh, which `make test-unit` runs the unit
 * binaries under), a blocking side connection for the test's own SQL (NOTIFY, pg_terminate_backend,
 * set-up), and the driver of a real libevent base until an awaited condition holds, with a generous
 * deadline that fails the test. No sleeps: the loop runs until the callback under test has fired.
 *
 * Without POLLGATE_TEST_DSN a live test is skipped when run by hand, and FAILS under CI=true (a suite
 * that silently tested nothing must not pass in CI).
 */
#ifndef POLLGATE_TESTS_PG_HELPERS_H
#define POLLGATE_TESTS_PG_HELPERS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

/* Generous: the machine is shared and the sanitizer build is slow; a pass takes milliseconds. */
#define PG_TEST_TIMEOUT_MS 20000

/* The cluster's conninfo, or NULL after skipping (by hand) / failing (CI=true) the current test. */
static inline const char *pg_test_dsn(void)
{
	const char *dsn = getenv("POLLGATE_TEST_DSN");
	if (dsn && dsn[0]) return dsn;
	const char *ci = getenv("CI");
	if (ci && ci[0] && strcmp(ci, "false") != 0 && strcmp(ci, "0") != 0)
		fail_msg("POLLGATE_TEST_DSN is not set under CI: run through scripts/with-pg.sh (make test-unit does)");
	fprintf(stderr, "skipped: no POLLGATE_TEST_DSN (run under scripts/with-pg.sh, as make test-unit does)\n");
	skip();
	return NULL;
}

/* A blocking connection for the test's own statements (never the code under test). */
static inline PGconn *pg_test_connect(const char *dsn)
{
	PGconn *c = PQconnectdb(dsn);
	assert_non_null(c);
	if (PQstatus(c) != CONNECTION_OK) fail_msg("connect: %s", PQerrorMessage(c));
	PQclear(PQexec(c, "SET client_min_messages = warning")); /* no "... does not exist, skipping" */
	return c;
}

/* Run `sql` (no parameters); fail the test unless it succeeds. Returns the result (caller PQclear()s). */
static inline PGresult *pg_test_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) fail_msg("%s: %s", sql, PQerrorMessage(c));
	return r;
}

static inline void pg_test_do(PGconn *c, const char *sql)
{
	PQclear(pg_test_exec(c, sql));
}

/* The first value of a one-row result of `sql`, as a long. */
static inline long pg_test_long(PGconn *c, const char *sql)
{
	PGresult *r = pg_test_exec(c, sql);
	if (PQntuples(r) < 1) fail_msg("%s: no row", sql);
	long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

static inline void pg_test_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/* Drive `base` until done(arg) is true; fail the test when it is not within `ms` milliseconds. `what`
 * names the awaited event in the failure message. */
static inline void pg_test_run_until(struct event_base *base, bool (*done)(void *), void *arg, int ms,
                                     const char *what)
{
	bool expired = false;
	struct event *deadline = evtimer_new(base, pg_test_deadline_cb, &expired);
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	assert_non_null(deadline);
	assert_int_equal(evtimer_add(deadline, &tv), 0);
	while (!done(arg) && !expired) event_base_loop(base, EVLOOP_ONCE);
	event_free(deadline);
	if (!done(arg)) fail_msg("timed out after %d ms waiting for %s", ms, what);
}

#endif
