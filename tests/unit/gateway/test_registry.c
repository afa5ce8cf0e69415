/*
 * tests/unit/gateway/test_registry.c — the watch registry (gateway/watch.c, reread.c, answer.c) alone, through
 * its seam (gateway/registry-io.h): a fake reader that queues every query until the test answers it with
 * a result built by libpq's own PGresult constructors (or with an error), and a fake reply that records
 * each answer. A real event_base runs the deferred flush, the answer slices and the timers
 * (EVLOOP_NONBLOCK passes; the safety net on a short poll interval). Checked: many NOTIFYs make one read,
 * one read per dirty watch per batch and never two in flight, the last good state kept on a database
 * error, a terminal watch closed for good, 503 for a new request whose read fails, the answer slice, the
 * safety net, revocation (401) and lost access (404) of held waiters, the drain, and a waiter whose
 * client leaves being freed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "common/clock.h"
#include "db/access.h"
#include "gateway/answer.h"
#include "gateway/registry-io.h"
#include "gateway/watch.h"

enum { Q_RUNS = 0, Q_PACKS, Q_TOKENS };

typedef struct query {
	int kind;
	char *ids; /* $1 */
	db_result_cb cb;
	void *cbarg;
} query;

typedef struct answer {
	int code;
	int64_t id;
	unsigned flags;
	char etag[64];
} answer;

static struct fake {
	int connected;
	query q[64];
	size_t nq;
	size_t sent[3];
	answer a[4096];
	size_t na;
	size_t dropped;
	evutil_socket_t next_fd; /* what the next attach returns */
} F;

static int fake_query(void *arg, const char *sql, int nparams, const char *const *params, db_result_cb cb, void *cbarg)
{
	(void)arg;
	(void)nparams;
	if (!F.connected) return -1;
	assert_true(F.nq < sizeof F.q / sizeof F.q[0]);
	query *q = &F.q[F.nq++];
	q->kind = sql == db_sql_runs ? Q_RUNS : sql == db_sql_packs ? Q_PACKS : Q_TOKENS;
	q->ids = strdup(params[0]);
	q->cb = cb;
	q->cbarg = cbarg;
	F.sent[q->kind]++;
	return 0;
}

static int fake_connected(void *arg)
{
	(void)arg;
	return F.connected;
}

static int fake_idle(void *arg)
{
	(void)arg;
	return F.connected ? 4 : 0;
}

static evutil_socket_t fake_attach(void *arg, gw_waiter *w)
{
	evutil_socket_t fd = F.next_fd;
	(void)arg;
	(void)w;
	F.next_fd = -1;
	return fd;
}

static int fake_readable(void *arg, gw_waiter *w, evutil_socket_t fd)
{
	char c;
	(void)arg;
	(void)w;
	return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0 ? -1 : 0;
}

static void fake_reply(void *arg, gw_waiter *w, int code, const pol_view *v, void **render, unsigned flags,
                       const char *reason)
{
	(void)arg;
	(void)reason;
	(void)render;
	assert_true(F.na < sizeof F.a / sizeof F.a[0]);
	answer *a = &F.a[F.na++];
	a->code = code;
	a->id = w->id;
	a->flags = flags;
	if (code == 200 || code == 304) {
		assert_non_null(v);
		snprintf(a->etag, sizeof a->etag, "%s", v->etag);
	}
}

static void fake_drop(void *arg, gw_waiter *w)
{
	(void)arg;
	(void)w;
	F.dropped++;
}

static const gw_reg_io fake_io = {fake_query, fake_connected, fake_idle, fake_attach,
                                  fake_readable, fake_reply, fake_drop, NULL};

typedef struct fixture {
	struct event_base *base;
	conf *cfg;
	gw_registry *r;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	memset(&F, 0, sizeof F);
	F.connected = 1;
	F.next_fd = -1;
	f->base = event_base_new();
	f->cfg = conf_new_defaults();
	assert_non_null(f->base);
	assert_non_null(f->cfg);
	f->cfg->max_waiters = 100000;
	f->cfg->max_waiters_per_principal = 100000;
	f->cfg->max_waiters_per_client = 100000;
	/* A short poll interval for every run: the safety net comes due within 200 ms. */
	f->cfg->policy.n_run_schedule = 1;
	f->cfg->policy.run_schedule[0].below_age_ms = -1;
	f->cfg->policy.run_schedule[0].interval_ms = 200;
	f->r = gw_reg_new_io(f->base, f->cfg, &fake_io);
	assert_non_null(f->r);
	gw_reg_listen_up(f->r);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	gw_reg_free(f->r);
	for (size_t i = 0; i < F.nq; i++) free(F.q[i].ids);
	conf_free(f->cfg);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* A few loop passes: the deferred flush, the answer slices (one each). */
static void spin(fixture *f, int passes)
{
	for (int i = 0; i < passes; i++) event_base_loop(f->base, EVLOOP_NONBLOCK);
}

/* ---- results ---- */

typedef struct row {
	int64_t id;
	const char *status;
	const char *outcome;
	const char *entitled; /* "{7}" */
} row;

static void set(PGresult *res, int r, int c, const char *v)
{
	assert_int_equal(PQsetvalue(res, r, c, (char *)v, v ? (int)strlen(v) : -1), 1);
}

static PGresult *runs_result(const row *rows, int n)
{
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	PGresAttDesc att[13];
	char names[13][16], buf[32], now[32], born[32];
	static int64_t t0; /* the runs' timestamps: the same in every result, so only what a test changes does */
	memset(att, 0, sizeof att);
	for (int c = 0; c < 13; c++) {
		snprintf(names[c], sizeof names[c], "c%d", c);
		att[c].name = names[c];
		att[c].format = 0;
		att[c].typlen = -1;
	}
	assert_int_equal(PQsetResultAttrs(res, 13, att), 1);
	if (t0 == 0) t0 = cm_wall_us();
	snprintf(now, sizeof now, "%lld", (long long)cm_wall_us());
	snprintf(born, sizeof born, "%lld", (long long)t0);
	for (int i = 0; i < n; i++) {
		snprintf(buf, sizeof buf, "%lld", (long long)rows[i].id);
		set(res, i, 0, buf);
		set(res, i, 1, "1");
		set(res, i, 2, NULL);
		set(res, i, 3, "sync");
		set(res, i, 4, rows[i].status);
		set(res, i, 5, rows[i].outcome);
		set(res, i, 6, NULL);
		set(res, i, 7, NULL);
		set(res, i, 8, born);
		set(res, i, 9, born);
		set(res, i, 10, NULL);
		set(res, i, 11, now);
		set(res, i, 12, rows[i].entitled);
	}
	return res;
}

static PGresult *tokens_result(const uint8_t *hash, int64_t user)
{
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	PGresAttDesc att[3];
	char names[3][16], hex[65], buf[32];
	memset(att, 0, sizeof att);
	for (int c = 0; c < 3; c++) {
		snprintf(names[c], sizeof names[c], "c%d", c);
		att[c].name = names[c];
		att[c].typlen = -1;
	}
	assert_int_equal(PQsetResultAttrs(res, 3, att), 1);
	if (hash) {
		for (int k = 0; k < 32; k++) snprintf(hex + 2 * k, 3, "%02x", hash[k]);
		snprintf(buf, sizeof buf, "%lld", (long long)user);
		set(res, 0, 0, hex);
		set(res, 0, 1, buf);
		set(res, 0, 2, NULL);
	}
	return res;
}

/* Answer the oldest query still unanswered (with res, which is freed; NULL: a database error). */
static query *oldest(void)
{
	for (size_t i = 0; i < F.nq; i++)
		if (F.q[i].cb) return &F.q[i];
	fail_msg("no query in flight");
	return NULL;
}

static size_t in_flight(void)
{
	size_t n = 0;
	for (size_t i = 0; i < F.nq; i++) n += F.q[i].cb != NULL;
	return n;
}

static void complete(PGresult *res)
{
	query *q = oldest();
	db_result_cb cb = q->cb;
	q->cb = NULL;
	cb(q->cbarg, res, res ? NULL : "connection lost");
	PQclear(res);
}

static void complete_runs(const row *rows, int n)
{
	assert_int_equal(oldest()->kind, Q_RUNS);
	complete(runs_result(rows, n));
}

/* ---- requests ---- */

/* A request for run `id` by `user` (a JWT, so no token lookup), with If-None-Match `inm` or none. */
static void submit(fixture *f, int64_t user, int64_t id, const char *inm)
{
	gw_waiter *w = calloc(1, sizeof *w);
	w->kind = GW_RUN;
	w->id = id;
	memset(w->token_hash, (int)user, sizeof w->token_hash);
	w->jwt_user = user;
	w->jwt_exp_us = cm_wall_us() + 3600 * INT64_C(1000000);
	w->wait_ms = 30000;
	w->inm = inm;
	w->start_ms = cm_mono_ms();
	snprintf(w->rid, sizeof w->rid, "t-%lld", (long long)id);
	gw_reg_submit(f->r, w);
}

static char etag1[64];

/* Read run `id` once (a 200 with its etag), then hold `n` requests of `user` on that version. */
static void hold_n(fixture *f, int64_t user, int64_t id, int n)
{
	row rw = {id, "running", NULL, "{7,8}"};
	size_t na = F.na;
	submit(f, user, id, NULL);
	spin(f, 2);
	complete_runs(&rw, 1);
	spin(f, 2);
	assert_int_equal(F.na, na + 1);
	assert_int_equal(F.a[na].code, 200);
	snprintf(etag1, sizeof etag1, "%s", F.a[na].etag);
	size_t sent = F.sent[Q_RUNS];
	for (int i = 0; i < n; i++) submit(f, user, id, etag1);
	spin(f, 2);
	assert_int_equal(F.sent[Q_RUNS], sent); /* held from the fresh cache: no read */
	assert_int_equal(F.na, na + 1);
}

/* ---- the invariants ---- */

static void test_notifies_coalesce(void **state)
{
	fixture *f = *state;
	hold_n(f, 7, 1, 3);
	hold_n(f, 7, 2, 1);
	hold_n(f, 7, 3, 1);
	size_t sent = F.sent[Q_RUNS];
	for (int i = 0; i < 100; i++) {
		gw_reg_notify(f->r, GW_RUN, 1);
		gw_reg_notify(f->r, GW_RUN, 2);
	}
	spin(f, 3);
	/* One read for the batch, naming each dirty watch once. */
	assert_int_equal(F.sent[Q_RUNS], sent + 1);
	assert_string_equal(oldest()->ids, "{1,2}");
	/* A NOTIFY while the read is in flight: that watch is not read again until it returns (another
	 * watch's read goes out without it), then exactly once. */
	gw_reg_notify(f->r, GW_RUN, 1);
	gw_reg_notify(f->r, GW_RUN, 3);
	spin(f, 3);
	assert_int_equal(F.sent[Q_RUNS], sent + 2);
	assert_string_equal(F.q[F.nq - 1].ids, "{3}");
	row rows[3] = {{1, "running", NULL, "{7}"}, {2, "running", NULL, "{7}"}, {3, "running", NULL, "{7}"}};
	complete_runs(rows, 2);
	spin(f, 3);
	assert_int_equal(F.sent[Q_RUNS], sent + 3);
	assert_string_equal(F.q[F.nq - 1].ids, "{1}");
	assert_int_equal(in_flight(), 2);
	complete_runs(rows + 2, 1);
	complete_runs(rows, 1);
	spin(f, 3);
	assert_int_equal(in_flight(), 0);
	assert_int_equal(F.sent[Q_RUNS], sent + 3);
	assert_int_equal(F.na, 3); /* unchanged versions: the held waiters are still held */
	assert_int_equal(gw_reg_outstanding(f->r), 5);
}

static void test_error_keeps_last_good_state(void **state)
{
	fixture *f = *state;
	hold_n(f, 7, 1, 2);
	gw_reg_notify(f->r, GW_RUN, 1);
	spin(f, 3);
	complete(NULL); /* the database failed */
	spin(f, 3);
	assert_int_equal(F.na, 1); /* nobody held was answered with an error */
	assert_int_equal(gw_reg_outstanding(f->r), 2);
	/* A new request whose read fails gets 503, even on the version held ones were holding. */
	gw_reg_notify(f->r, GW_RUN, 1);
	spin(f, 3);
	submit(f, 7, 1, NULL);
	spin(f, 3);
	complete(NULL);
	spin(f, 3);
	assert_int_equal(F.na, 2);
	assert_int_equal(F.a[1].code, 503);
	/* The next good read answers the held ones with the new state. */
	gw_reg_notify(f->r, GW_RUN, 1);
	spin(f, 3);
	row rw = {1, "queued", NULL, "{7}"};
	complete_runs(&rw, 1);
	spin(f, 3);
	assert_int_equal(F.na, 4);
	assert_int_equal(F.a[2].code, 200);
	assert_int_equal(F.a[3].code, 200);
	assert_string_not_equal(F.a[3].etag, etag1);
}

static void test_new_request_read_fails_503(void **state)
{
	fixture *f = *state;
	submit(f, 7, 5, NULL);
	spin(f, 3);
	complete(NULL);
	spin(f, 3);
	assert_int_equal(F.na, 1);
	assert_int_equal(F.a[0].code, 503);
	/* And with no connection at all, at once. */
	F.connected = 0;
	submit(f, 7, 5, NULL);
	spin(f, 3);
	assert_int_equal(F.na, 2);
	assert_int_equal(F.a[1].code, 503);
	assert_int_equal(gw_reg_outstanding(f->r), 0);
}

static void test_terminal_closes_for_good(void **state)
{
	fixture *f = *state;
	hold_n(f, 7, 1, 1);
	gw_reg_notify(f->r, GW_RUN, 1);
	spin(f, 3);
	row rw = {1, "completed", "succeeded", "{7}"};
	complete_runs(&rw, 1);
	spin(f, 3);
	assert_int_equal(F.na, 2);
	assert_int_equal(F.a[1].code, 200);
	char final[64];
	snprintf(final, sizeof final, "%s", F.a[1].etag);
	/* Closed: NOTIFYs are ignored, and a request on the final version is answered from it, no read. */
	size_t sent = F.sent[Q_RUNS];
	gw_reg_notify(f->r, GW_RUN, 1);
	spin(f, 3);
	submit(f, 7, 1, final);
	spin(f, 3);
	assert_int_equal(F.sent[Q_RUNS], sent);
	assert_int_equal(F.na, 3);
	assert_int_equal(F.a[2].code, 304);
	/* A later read (another user's request) does not reopen it, whatever the row says. */
	submit(f, 8, 1, final);
	spin(f, 3);
	row again = {1, "running", NULL, "{8}"};
	complete_runs(&again, 1);
	spin(f, 3);
	assert_int_equal(F.na, 4);
	assert_int_equal(F.a[3].code, 304);
	assert_string_equal(F.a[3].etag, final);
}

static void test_answer_slice(void **state)
{
	fixture *f = *state;
	const int n = GW_ANSWER_SLICE + GW_ANSWER_SLICE / 2; /* more than one slice */
	hold_n(f, 7, 1, n);
	gw_reg_notify(f->r, GW_RUN, 1);
	spin(f, 3);
	row rw = {1, "queued", NULL, "{7}"};
	complete_runs(&rw, 1);
	assert_int_equal(F.na, 1); /* queued, not answered inside the result callback */
	event_base_loop(f->base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
	assert_int_equal(F.na, 1 + GW_ANSWER_SLICE);
	event_base_loop(f->base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
	assert_int_equal(F.na, 1 + (size_t)n);
	for (size_t i = 1; i < F.na; i++) assert_int_equal(F.a[i].code, 200);
}

static void test_safety_net(void **state)
{
	fixture *f = *state;
	row rows[2] = {{1, "running", NULL, "{7}"}, {2, "running", NULL, "{7}"}};
	submit(f, 7, 1, NULL);
	submit(f, 7, 2, NULL);
	spin(f, 3);
	assert_int_equal(F.sent[Q_RUNS], 1); /* both in one read */
	complete_runs(rows, 2);
	spin(f, 3);
	assert_int_equal(F.na, 2);
	submit(f, 7, 1, F.a[0].etag);
	submit(f, 7, 2, F.a[1].etag);
	spin(f, 3);
	/* No NOTIFY: the safety net reads them again within their interval (200 ms), as one batch since they
	 * share the grid tick. Wait up to 5 s (a shared machine). */
	int64_t t0 = cm_mono_ms();
	while (F.sent[Q_RUNS] == 1 && cm_mono_ms() - t0 < 5000) event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(F.sent[Q_RUNS], 2);
	assert_true(strcmp(oldest()->ids, "{1,2}") == 0 || strcmp(oldest()->ids, "{2,1}") == 0);
	complete_runs(rows, 2);
	spin(f, 3);
	assert_int_equal(F.na, 2); /* unchanged: still held */
}

/* A sweep of the safety net reads on one connection at a time, and a hint is read at once, ahead of
 * the sweep's queue, on another. */
static void test_a_hint_is_not_queued_behind_a_sweep(void **state)
{
	fixture *f = *state;
	row rows[3] = {{1, "running", NULL, "{7}"}, {2, "running", NULL, "{7}"}, {3, "running", NULL, "{7}"}};
	f->cfg->db_pool_size = 2;
	f->cfg->reread_batch_max = 2;
	for (int i = 0; i < 3; i++) submit(f, 7, i + 1, NULL);
	spin(f, 3);
	complete_runs(rows, 2);
	spin(f, 3);
	complete_runs(rows + 2, 1);
	spin(f, 3);
	assert_int_equal(F.na, 3);
	for (int i = 0; i < 3; i++) submit(f, 7, F.a[i].id, F.a[i].etag);
	spin(f, 3);
	size_t sent = F.sent[Q_RUNS];
	/* The three come due on one grid tick: the sweep's first read (two of them) goes out, and the third
	 * waits for it although a connection is free. */
	int64_t t0 = cm_mono_ms();
	while (F.sent[Q_RUNS] == sent && cm_mono_ms() - t0 < 5000) event_base_loop(f->base, EVLOOP_ONCE);
	spin(f, 3);
	assert_int_equal(F.sent[Q_RUNS], sent + 1);
	assert_int_equal(in_flight(), 1);
	const char *swept = oldest()->ids;
	int64_t left = strstr(swept, "3") == NULL ? 3 : strstr(swept, "2") == NULL ? 2 : 1;
	/* A hint for the one left: read at once, alone, while the sweep is still out. */
	gw_reg_notify(f->r, GW_RUN, left);
	spin(f, 3);
	assert_int_equal(F.sent[Q_RUNS], sent + 2);
	assert_int_equal(in_flight(), 2);
	char want[16];
	snprintf(want, sizeof want, "{%lld}", (long long)left);
	assert_string_equal(F.q[F.nq - 1].ids, want);
}

static void test_revoked_token_401(void **state)
{
	fixture *f = *state;
	/* An opaque token: looked up (one token query), then read. */
	gw_waiter *w = calloc(1, sizeof *w);
	uint8_t hash[32];
	memset(hash, 0xab, sizeof hash);
	w->kind = GW_RUN;
	w->id = 1;
	memcpy(w->token_hash, hash, 32);
	w->wait_ms = 30000;
	w->start_ms = cm_mono_ms();
	gw_reg_submit(f->r, w);
	spin(f, 3);
	assert_int_equal(F.sent[Q_TOKENS], 1);
	complete(tokens_result(hash, 7));
	spin(f, 3);
	row rw = {1, "running", NULL, "{7}"};
	complete_runs(&rw, 1);
	spin(f, 3);
	assert_int_equal(F.na, 1);
	char etag[64];
	snprintf(etag, sizeof etag, "%s", F.a[0].etag);
	w = calloc(1, sizeof *w);
	w->kind = GW_RUN;
	w->id = 1;
	memcpy(w->token_hash, hash, 32);
	w->wait_ms = 30000;
	w->inm = etag;
	w->start_ms = cm_mono_ms();
	gw_reg_submit(f->r, w);
	spin(f, 3);
	assert_int_equal(gw_reg_outstanding(f->r), 1);
	/* An access hint: the token is looked up again and is gone (revoked): 401 at once. */
	gw_reg_notify_access(f->r, 7);
	spin(f, 3);
	while (in_flight()) {
		if (oldest()->kind == Q_TOKENS) complete(tokens_result(NULL, 0));
		else complete_runs(&rw, 1);
		spin(f, 3);
	}
	assert_int_equal(F.na, 2);
	assert_int_equal(F.a[1].code, 401);
}

static void test_lost_access_404(void **state)
{
	fixture *f = *state;
	hold_n(f, 7, 1, 2);
	gw_reg_notify_access(f->r, 7);
	spin(f, 3);
	/* The verdict is read again; the row no longer names user 7 (and nobody keeps it): no row. */
	assert_int_equal(oldest()->kind, Q_RUNS);
	complete_runs(NULL, 0);
	spin(f, 3);
	assert_int_equal(F.na, 3);
	assert_int_equal(F.a[1].code, 404);
	assert_int_equal(F.a[2].code, 404);
	assert_int_equal(gw_reg_outstanding(f->r), 0);
}

static void test_drain(void **state)
{
	fixture *f = *state;
	hold_n(f, 7, 1, 3);
	gw_reg_drain(f->r);
	assert_int_equal(F.na, 4);
	for (size_t i = 1; i < 4; i++) {
		assert_int_equal(F.a[i].code, 304);
		assert_true(F.a[i].flags != 0); /* Connection: close */
	}
	assert_int_equal(gw_reg_outstanding(f->r), 0);
}

static void test_disconnect_frees(void **state)
{
	fixture *f = *state;
	int sv[2];
	hold_n(f, 7, 1, 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	F.next_fd = sv[0];
	submit(f, 7, 1, etag1);
	spin(f, 3);
	assert_int_equal(gw_reg_outstanding(f->r), 1);
	close(sv[1]); /* the client leaves */
	int64_t t0 = cm_mono_ms();
	while (F.dropped == 0 && cm_mono_ms() - t0 < 5000) event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(F.dropped, 1);
	assert_int_equal(F.na, 1); /* not answered */
	assert_int_equal(gw_reg_outstanding(f->r), 0);
	assert_int_equal(gw_reg_get_stats(f->r)->disconnects, 1);
	close(sv[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_notifies_coalesce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_keeps_last_good_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_request_read_fails_503, setup, teardown),
		cmocka_unit_test_setup_teardown(test_terminal_closes_for_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answer_slice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_safety_net, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_hint_is_not_queued_behind_a_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoked_token_401, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_access_404, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_frees, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
