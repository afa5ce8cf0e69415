/*
 * tests/unit/db/test_logical_visible.c — db/logical-visible.c: the visibility check of the logical hint
 * source, against the throwaway cluster of scripts/with-pg.sh (tests/unit/db/pg_helpers.h) on a real
 * libevent loop. The session is a db_logical (db/logical-internal.h) holding only what the check uses: its
 * ordinary connection, the check's event and timer, the pending buckets. db/logical.c is not linked: this
 * file stands in for its two functions the check calls (db_lg_down, db_lg_mono_ms).
 *
 * Real transactions give real xids: a committed one is handed over after one check; one still open is
 * held (the check answers "not yet", asked again 1 ms later doubling to 50 ms, each counted) and goes,
 * with every commit that arrived meanwhile, once it commits. One check is in flight at a time, the commits
 * arriving during it go with the next one, and a check connection the server ends takes the session down
 * with the server's reason and hands nothing over.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "db/logical-internal.h"
#include "pg_helpers.h"

/* ---- stand-ins for db/logical.c ---- */

static int downs;
static char down_why[256];

int64_t db_lg_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What the real one does to the check's side: drop the connection and everything in flight. */
void db_lg_down(db_logical *l, const char *why)
{
	downs++;
	snprintf(down_why, sizeof down_why, "%s", why);
	db_conn_io_disarm(&l->aux_io);
	evtimer_del(l->aux_timer);
	if (l->aux_res) PQclear(l->aux_res);
	l->aux_res = NULL;
	if (l->aux) PQfinish(l->aux);
	l->aux = NULL;
	l->aux_busy = l->aux_flushing = false;
	l->state = LG_DOWN;
}

/* ---- the fixture ---- */

typedef struct fix {
	struct event_base *base;
	db_logical *l;
	PGconn *side;
	int n;
	char got[16][48]; /* "channel payload", in hand-over order */
} fix;

static void rec_notify(void *arg, const char *channel, const char *payload)
{
	fix *f = arg;
	assert_true(f->n < 16);
	snprintf(f->got[f->n++], sizeof f->got[0], "%s %s", channel, payload);
}

/* Without a cluster there is nothing to set up: each test then skips (by hand) or fails (CI) through
 * live(), as a skip inside a setup would count as an error. */
static int setup(void **state)
{
	const char *dsn = getenv("POLLGATE_TEST_DSN");
	*state = NULL;
	if (dsn == NULL || dsn[0] == '\0') return 0;
	fix *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->base = event_base_new();
	f->side = pg_test_connect(dsn);
	db_logical *l = f->l = calloc(1, sizeof *f->l);
	assert_non_null(l);
	l->base = f->base;
	l->state = LG_UP;
	l->on_notify = rec_notify;
	l->arg = f;
	l->tag.who = "logical";
	l->tag.id = -1;
	l->aux = pg_test_connect(dsn);
	assert_int_equal(PQsetnonblocking(l->aux, 1), 0);
	assert_int_equal(db_conn_io_init(&l->aux_io, f->base, db_lg_aux_io_cb, l), 0);
	l->aux_timer = evtimer_new(f->base, db_lg_aux_timer_cb, l);
	assert_non_null(l->aux_timer);
	downs = 0;
	down_why[0] = '\0';
	*state = f;
	return 0;
}

static fix *live(void **state)
{
	if (*state == NULL) (void)pg_test_dsn();
	assert_non_null(*state);
	return *state;
}

static int teardown(void **state)
{
	fix *f = *state;
	if (f == NULL) return 0;
	db_logical *l = f->l;
	db_conn_io_free(&l->aux_io);
	event_free(l->aux_timer);
	if (l->aux_res) PQclear(l->aux_res);
	if (l->aux) PQfinish(l->aux);
	db_lg_bucket_free(&l->pend);
	db_lg_bucket_free(&l->chk);
	db_lg_bucket_free(&l->tx);
	free(l);
	PQfinish(f->side);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* A commit as the stream hands it over: one run hint `key` for transaction `xid`, into l->pend. */
static void received(db_logical *l, uint32_t xid, int64_t key)
{
	lg_bucket tx = {0};
	tx.h = calloc(1, sizeof *tx.h);
	assert_non_null(tx.h);
	tx.h[0] = (lg_hint){.kind = DB_HINT_RUN, .key = key};
	tx.n = tx.cap = 1;
	db_lg_bucket_merge(&l->pend, &tx, true, xid);
	db_lg_bucket_free(&tx);
}

/* The 32-bit xid of a transaction `c` has open (it is opened here). */
static uint32_t open_xid(PGconn *c)
{
	pg_test_do(c, "BEGIN");
	return (uint32_t)(pg_test_long(c, "SELECT txid_current()") % 4294967296L);
}

static uint32_t committed_xid(PGconn *c)
{
	uint32_t x = open_xid(c);
	pg_test_do(c, "COMMIT");
	return x;
}

typedef struct waitn {
	fix *f;
	int n;
} waitn;

static bool hints_reached(void *arg)
{
	waitn *w = arg;
	return w->f->n >= w->n;
}

static void await_hints(fix *f, int n)
{
	waitn w = {f, n};
	pg_test_run_until(f->base, hints_reached, &w, PG_TEST_TIMEOUT_MS, "hints handed over");
}

typedef struct waitw {
	db_logical *l;
	uint64_t waits;
} waitw;

/* Also true once anything was handed over, so a hint that went too early fails at once. */
static bool waits_reached(void *arg)
{
	waitw *w = arg;
	return w->l->stats.visibility_waits >= w->waits || ((fix *)w->l->arg)->n > 0;
}

/* ---- tests ---- */

static void test_nothing_waiting_sends_nothing(void **state)
{
	fix *f = live(state);
	assert_true(db_lg_check_send(f->l));
	assert_false(f->l->aux_busy);
	assert_false(event_pending(f->l->aux_io.ev, EV_READ | EV_WRITE, NULL));
}

static void test_committed_transaction_is_handed_over(void **state)
{
	fix *f = live(state);
	db_logical *l = f->l;
	received(l, committed_xid(f->side), 42);
	received(l, committed_xid(f->side), 42); /* a second commit hinting the same run */
	assert_true(db_lg_check_send(l));
	assert_true(l->aux_busy);
	assert_int_equal(l->pend.nx, 0);
	assert_int_equal(l->chk.nx, 2);
	assert_int_equal(f->n, 0); /* never before the answer */
	await_hints(f, 1);
	assert_string_equal(f->got[0], "pollgate_run 42");
	assert_false(l->aux_busy);
	assert_int_equal(l->chk.nx, 0);
	assert_int_equal(l->chk.n, 0);
	assert_int_equal(l->stats.visibility_waits, 0);
	assert_int_equal(l->stats.hints, 1);
	assert_int_equal(downs, 0);
}

static void test_open_transaction_is_held_until_it_commits(void **state)
{
	fix *f = live(state);
	db_logical *l = f->l;
	const char *dsn = pg_test_dsn();
	PGconn *writer = pg_test_connect(dsn);

	received(l, open_xid(writer), 43);
	assert_true(db_lg_check_send(l));
	/* Not visible: asked again after 1, 2, 4, ... ms, capped at 50, and nothing is handed over. */
	waitw w = {l, 3};
	pg_test_run_until(f->base, waits_reached, &w, PG_TEST_TIMEOUT_MS, "three visibility waits");
	assert_int_equal(f->n, 0);
	assert_true(l->vis_delay_ms >= 4 && l->vis_delay_ms <= 8);

	/* A commit that arrives meanwhile goes with the next check, held with the open one. */
	received(l, committed_xid(f->side), 44);
	w.waits = 9;
	pg_test_run_until(f->base, waits_reached, &w, PG_TEST_TIMEOUT_MS, "nine visibility waits");
	assert_int_equal(l->vis_delay_ms, 50);
	assert_int_equal(f->n, 0);

	pg_test_do(writer, "COMMIT");
	await_hints(f, 2);
	assert_string_equal(f->got[0], "pollgate_run 43");
	assert_string_equal(f->got[1], "pollgate_run 44");
	assert_int_equal(l->vis_delay_ms, 0);
	assert_int_equal(l->pend.nx + l->chk.nx, 0);
	assert_int_equal(downs, 0);
	PQfinish(writer);
}

static void test_one_check_in_flight_the_next_takes_what_arrived(void **state)
{
	fix *f = live(state);
	db_logical *l = f->l;
	received(l, committed_xid(f->side), 50);
	assert_true(db_lg_check_send(l));
	/* While it is in flight: another commit waits in pend, and asking again sends nothing. */
	received(l, committed_xid(f->side), 51);
	assert_true(db_lg_check_send(l));
	assert_int_equal(l->chk.nx, 1);
	assert_int_equal(l->pend.nx, 1);
	await_hints(f, 2);
	/* Two hand-overs, in commit order. */
	assert_string_equal(f->got[0], "pollgate_run 50");
	assert_string_equal(f->got[1], "pollgate_run 51");
	assert_int_equal(l->pend.nx + l->chk.nx, 0);
}

static bool went_down(void *arg)
{
	(void)arg;
	return downs > 0;
}

static void test_check_connection_ended_takes_the_session_down(void **state)
{
	fix *f = live(state);
	db_logical *l = f->l;
	char sql[64];
	received(l, committed_xid(f->side), 60);
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", PQbackendPID(l->aux));
	pg_test_do(f->side, sql);
	/* Sending may still succeed into the dead socket; the answer never comes, the read says why. */
	if (db_lg_check_send(l)) pg_test_run_until(f->base, went_down, NULL, PG_TEST_TIMEOUT_MS, "db_lg_down");
	assert_int_equal(downs, 1);
	assert_true(strstr(down_why, "terminating connection") != NULL || strstr(down_why, "server closed") != NULL);
	assert_int_equal(f->n, 0);
	assert_null(l->aux);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_nothing_waiting_sends_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_committed_transaction_is_handed_over, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_transaction_is_held_until_it_commits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_check_in_flight_the_next_takes_what_arrived, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_connection_ended_takes_the_session_down, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
