/*
 * tests/unit/gateway/test_metrics.c — /metrics (gateway/metrics.c): the exposition rendered from known figures.
 *
 * Owns: every series a scrape shows, with the value it must carry for a known set of figures (the
 * front's and the registry's answers added per route and status, histograms cumulative with _sum and
 * _count, milliseconds turned into seconds, NaN for what is not known yet, the logical series only with
 * hint_source = logical); the whole server's figures with workers (counters, gauges, histograms and the
 * doubles summed over the published snapshots, readiness only when every worker's hint session is up,
 * the highest queue usage and lag) and the counters of a worker that died kept while its gauges go; and
 * every rendering checked against the text format's rules (prom_check.h: check_exposition), and through
 * `promtool check metrics` as well when promtool is installed.
 *
 * The figures come from this file: it defines the accessors metrics.c reads (the registry's, the pool's,
 * the LISTEN session's and the logical stream's getters) over one struct, so no database or registry is
 * built; the shared segment is the real one (gateway/shared.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "db/hints.h"
#include "db/listen.h"
#include "db/logical.h"
#include "db/pool.h"
#include "gateway/config.h"
#include "gateway/hold.h"
#include "gateway/http.h"
#include "gateway/metrics.h"
#include "gateway/shared.h"
#include "gateway/watch.h"
#include "prom_check.h"

/* ---- the figures: what the rooms' getters return ---- */

static struct world {
	gw_reg_stats reg;
	size_t token_cache;
	db_pool_stats pool;
	int connected;
	db_listen_stats listen;
	bool listen_up;
	double queue_usage;
	db_hints hints;
	db_logical_stats logical;
	bool logical_up;
	int mapped[DB_HINT_KINDS];
} W;

/* The rooms are opaque to metrics.c: any distinct non-NULL pointer stands for one. */
#define REG ((const struct gw_registry *)(const void *)&W.reg)
#define POOL ((const struct db_pool *)(const void *)&W.pool)
#define LISTEN ((const struct db_listen *)(const void *)&W.listen)
#define LOGICAL ((const struct db_logical *)(const void *)&W.logical)

const gw_reg_stats *gw_reg_get_stats(const gw_registry *r)
{
	assert_ptr_equal(r, REG);
	return &W.reg;
}
size_t gw_reg_token_cache_size(const gw_registry *r)
{
	(void)r;
	return W.token_cache;
}
void db_pool_get_stats(const db_pool *p, db_pool_stats *out)
{
	(void)p;
	*out = W.pool;
}
int db_pool_connected(const db_pool *p)
{
	(void)p;
	return W.connected;
}
void db_listen_get_stats(const db_listen *l, db_listen_stats *out)
{
	if (l == NULL) memset(out, 0, sizeof *out);
	else *out = W.listen;
}
bool db_listen_is_up(const db_listen *l)
{
	return l != NULL && W.listen_up;
}
double db_listen_queue_usage(const db_listen *l)
{
	(void)l;
	return W.queue_usage;
}
const db_hints *db_listen_hints(const db_listen *l)
{
	(void)l;
	return &W.hints;
}
void db_logical_get_stats(const db_logical *l, db_logical_stats *out)
{
	if (l == NULL) memset(out, 0, sizeof *out);
	else *out = W.logical;
}
bool db_logical_is_up(const db_logical *l)
{
	return l != NULL && W.logical_up;
}
int db_logical_mapped(const db_logical *l, int kind)
{
	assert_non_null(l);
	return W.mapped[kind];
}

static gw_metrics_front F;

/* Every figure distinct, so a series showing another's value shows up. Histograms hold as many
 * observations as their _count says. */
static void world_known(void)
{
	memset(&W, 0, sizeof W);
	memset(&F, 0, sizeof F);
	gw_reg_stats *r = &W.reg;
	r->held[GW_RUN] = 3, r->held[GW_PACK] = 4;
	r->pending = 5;
	r->watches[GW_RUN] = 6, r->watches[GW_PACK] = 7;
	r->subs = 8;
	r->reads[GW_RUN] = 10, r->reads[GW_PACK] = 20;
	r->read_rows[GW_RUN] = 11, r->read_rows[GW_PACK] = 21;
	r->read_resources[GW_RUN] = 100, r->read_resources[GW_PACK] = 200;
	static const uint64_t batch[GW_BATCH_BUCKETS] = {1, 2, 3, 4, 5, 6, 7, 2}; /* 30 = reads */
	memcpy(r->batch_hist, batch, sizeof batch);
	r->read_errors = 12;
	r->token_reads = 13;
	r->notifies[GW_RUN] = 14, r->notifies[GW_PACK] = 15, r->notifies[GW_KINDS] = 16;
	r->wakes_notify = 17, r->wakes_safety = 18, r->wakes_reconnect = 19;
	r->answered_change = 22, r->answered_expiry = 23, r->answered_denied = 24;
	r->disconnects = 25;
	r->terminal_closes = 26;
	r->rejected_cap = 27;
	r->bad_rows = 28;
	for (int i = 0; i < GW_NSTATUS; i++) r->answers[GW_RUN][i] = 1000 + (uint64_t)i, r->answers[GW_PACK][i] = 2000 + (uint64_t)i;
	for (int i = 0; i < GW_WAKE_BUCKETS; i++) r->wake_hist[i] = 1;
	r->wake_count = GW_WAKE_BUCKETS;
	r->wake_sum_ms = 1234.5;
	for (int why = 0; why < GW_HOLD_NREASONS; why++) {
		for (int i = 0; i < GW_HOLD_BUCKETS; i++) r->hold.bucket[why][i] = (uint64_t)why + 1;
		r->hold.count[why] = GW_HOLD_BUCKETS * ((uint64_t)why + 1);
		r->hold.sum_s[why] = 0.5 * (why + 1);
	}
	for (int rt = 0; rt < GW_NROUTES; rt++)
		for (int i = 0; i < GW_NSTATUS; i++) F.answers[rt][i] = 100 * (uint64_t)rt + (uint64_t)i;
	F.heads_reading = 31, F.head_timeouts = 32, F.protocol_errors = 33, F.accept_pauses = 34;
	W.token_cache = 35;
	W.pool = (db_pool_stats){.queries = 36, .errors = 37, .reconnects = 38, .timeouts = 39};
	W.connected = 2;
	W.listen = (db_listen_stats){.notifies = 40, .reconnects = 41, .errors = 42};
	W.listen_up = true;
	W.queue_usage = 0.25;
	W.hints.tables[DB_HINT_RUN] = 1, W.hints.tables[DB_HINT_REVIEW_PACK] = 0, W.hints.tables[DB_HINT_ACCESS] = -1;
	W.logical = (db_logical_stats){.messages = 43, .transactions = 44, .hints = 45, .resyncs = 46,
	                               .visibility_waits = 47, .reconnects = 48, .errors = 49, .lag_bytes = 50};
	W.logical_up = true;
	W.mapped[DB_HINT_RUN] = 2, W.mapped[DB_HINT_REVIEW_PACK] = -1, W.mapped[DB_HINT_ACCESS] = 1;
}

/* ---- rendering ---- */

/* The exposition, checked against the format's rules; the caller frees it. */
static char *render(const struct db_logical *logical, const conf *cfg, gw_shm *shm, int self)
{
	struct evbuffer *b = evbuffer_new();
	assert_non_null(b);
	assert_int_equal(gw_metrics_render(b, &F, REG, POOL, LISTEN, logical, cfg, shm, self), 0);
	size_t n = evbuffer_get_length(b);
	char *text = malloc(n + 1);
	assert_non_null(text);
	assert_int_equal(evbuffer_remove(b, text, n), (int)n);
	text[n] = '\0';
	evbuffer_free(b);
	check_exposition(text);
	return text;
}

/* The value of one series, written exactly as `series` ("name" or "name{labels}"); it must appear once. */
static const char *sample_text(const char *text, const char *series)
{
	size_t n = strlen(series);
	const char *found = NULL;
	for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
		if (strncmp(l, series, n) == 0 && l[n] == ' ') {
			if (found) fail_msg("series %s twice", series);
			found = l + n + 1;
		}
	}
	if (found == NULL) fail_msg("no series %s in:\n%s", series, text);
	return found;
}

static double sample(const char *text, const char *series)
{
	const char *v = sample_text(text, series);
	double d;
	char buf[64];
	snprintf(buf, sizeof buf, "%.*s", (int)strcspn(v, "\n"), v);
	if (!value_ok(buf, &d)) fail_msg("series %s: value '%s'", series, buf);
	return d;
}

#define ASSERT_SAMPLE(text, series, want)                                                                    \
	do {                                                                                                     \
		double got_ = sample((text), (series));                                                             \
		if (fabs(got_ - (double)(want)) > 1e-6) fail_msg("%s = %.6f, want %.6f", (series), got_, (double)(want)); \
	} while (0)

static void assert_nan(const char *text, const char *series)
{
	const char *v = sample_text(text, series);
	if (strncmp(v, "NaN\n", 4) != 0) fail_msg("%s is not NaN", series);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	static char buf[8][256];
	static int i;
	va_list ap;
	char *b = buf[i++ % 8];
	va_start(ap, f);
	vsnprintf(b, 256, f, ap);
	va_end(ap);
	return b;
}

/* Every figure of world_known, times `k` (counters, histograms and doubles) and `kg` (gauges). */
static void assert_known_figures(const char *t, double k, double kg)
{
	ASSERT_SAMPLE(t, "pollgate_waiters_held{kind=\"run\"}", 3 * kg);
	ASSERT_SAMPLE(t, "pollgate_waiters_held{kind=\"review_pack\"}", 4 * kg);
	ASSERT_SAMPLE(t, "pollgate_waiters_pending", 5 * kg);
	ASSERT_SAMPLE(t, "pollgate_watches{kind=\"run\"}", 6 * kg);
	ASSERT_SAMPLE(t, "pollgate_watches{kind=\"review_pack\"}", 7 * kg);
	ASSERT_SAMPLE(t, "pollgate_principal_cache_entries", 35 * kg);
	ASSERT_SAMPLE(t, "pollgate_connections_reading_head", 31 * kg);
	ASSERT_SAMPLE(t, "pollgate_db_connections", 2 * kg);

	/* the front's answers and the registry's, by route and status, every pair present */
	for (int rt = 0; rt < GW_NROUTES; rt++) {
		for (int i = 0; i < GW_NSTATUS; i++) {
			double want = 100.0 * rt + i;
			if (rt == GW_ROUTE_RUN) want += 1000 + i;
			if (rt == GW_ROUTE_PACK) want += 2000 + i;
			char status[16];
			if (gw_http_status_codes[i]) snprintf(status, sizeof status, "%d", gw_http_status_codes[i]);
			else snprintf(status, sizeof status, "other");
			ASSERT_SAMPLE(t, fmt("pollgate_requests_total{route=\"%s\",status=\"%s\"}", gw_http_route_name((gw_route)rt), status),
			              want * k);
		}
	}
	ASSERT_SAMPLE(t, "pollgate_head_timeouts_total", 32 * k);
	ASSERT_SAMPLE(t, "pollgate_protocol_errors_total", 33 * k);
	ASSERT_SAMPLE(t, "pollgate_accept_pauses_total", 34 * k);
	ASSERT_SAMPLE(t, "pollgate_reread_queries_total{kind=\"run\"}", 10 * k);
	ASSERT_SAMPLE(t, "pollgate_reread_queries_total{kind=\"review_pack\"}", 20 * k);
	ASSERT_SAMPLE(t, "pollgate_reread_resources_total{kind=\"review_pack\"}", 200 * k);
	ASSERT_SAMPLE(t, "pollgate_reread_rows_total{kind=\"run\"}", 11 * k);
	ASSERT_SAMPLE(t, "pollgate_reread_rows_total{kind=\"review_pack\"}", 21 * k);
	/* batch sizes: cumulative over 1 2 3 4 5 6 7 2; the sum is the resources, the count the queries */
	static const char *const batch_le[] = {"1", "10", "50", "100", "250", "500", "1000", "+Inf"};
	static const double batch_cum[] = {1, 3, 6, 10, 15, 21, 28, 30};
	for (int i = 0; i < 8; i++)
		ASSERT_SAMPLE(t, fmt("pollgate_reread_batch_size_bucket{le=\"%s\"}", batch_le[i]), batch_cum[i] * k);
	ASSERT_SAMPLE(t, "pollgate_reread_batch_size_sum", 300 * k);
	ASSERT_SAMPLE(t, "pollgate_reread_batch_size_count", 30 * k);
	ASSERT_SAMPLE(t, "pollgate_token_lookups_total", 13 * k);
	ASSERT_SAMPLE(t, "pollgate_read_errors_total", 12 * k);
	ASSERT_SAMPLE(t, "pollgate_bad_rows_total", 28 * k);
	ASSERT_SAMPLE(t, "pollgate_notifies_total{kind=\"run\"}", 14 * k);
	ASSERT_SAMPLE(t, "pollgate_notifies_total{kind=\"review_pack\"}", 15 * k);
	ASSERT_SAMPLE(t, "pollgate_notifies_total{kind=\"access\"}", 16 * k);
	ASSERT_SAMPLE(t, "pollgate_wakes_total{cause=\"notify\"}", 17 * k);
	ASSERT_SAMPLE(t, "pollgate_wakes_total{cause=\"safety_net\"}", 18 * k);
	ASSERT_SAMPLE(t, "pollgate_wakes_total{cause=\"reconnect\"}", 19 * k);
	ASSERT_SAMPLE(t, "pollgate_answers_total{reason=\"changed\"}", 22 * k);
	ASSERT_SAMPLE(t, "pollgate_answers_total{reason=\"expired\"}", 23 * k);
	ASSERT_SAMPLE(t, "pollgate_answers_total{reason=\"denied\"}", 24 * k);
	ASSERT_SAMPLE(t, "pollgate_client_disconnects_total", 25 * k);
	ASSERT_SAMPLE(t, "pollgate_terminal_closes_total", 26 * k);
	ASSERT_SAMPLE(t, "pollgate_rejected_total", 27 * k);
	/* notify to answer: one observation a bucket, milliseconds summed into seconds */
	for (size_t i = 0; i <= gw_hist_wake.nbounds; i++)
		ASSERT_SAMPLE(t, fmt("pollgate_notify_to_answer_seconds_bucket{le=\"%s\"}", gw_hist_wake.le[i]), (double)(i + 1) * k);
	ASSERT_SAMPLE(t, "pollgate_notify_to_answer_seconds_sum", 1.2345 * k);
	ASSERT_SAMPLE(t, "pollgate_notify_to_answer_seconds_count", 10 * k);
	/* hold durations: reason r has r+1 observations a bucket and a sum of (r+1)/2 s */
	for (int why = 0; why < GW_HOLD_NREASONS; why++) {
		const char *name = gw_hold_reason_name((gw_hold_reason)why);
		for (size_t i = 0; i <= gw_hist_hold.nbounds; i++)
			ASSERT_SAMPLE(t, fmt("pollgate_hold_duration_seconds_bucket{reason=\"%s\",le=\"%s\"}", name, gw_hist_hold.le[i]),
			              (double)(i + 1) * (why + 1) * k);
		ASSERT_SAMPLE(t, fmt("pollgate_hold_duration_seconds_sum{reason=\"%s\"}", name), 0.5 * (why + 1) * k);
		ASSERT_SAMPLE(t, fmt("pollgate_hold_duration_seconds_count{reason=\"%s\"}", name), GW_HOLD_BUCKETS * (why + 1) * k);
	}
	ASSERT_SAMPLE(t, "pollgate_db_queries_total", 36 * k);
	ASSERT_SAMPLE(t, "pollgate_db_errors_total", 37 * k);
	ASSERT_SAMPLE(t, "pollgate_db_reconnects_total", 38 * k);
	ASSERT_SAMPLE(t, "pollgate_listen_reconnects_total", 41 * k);
	ASSERT_SAMPLE(t, "pollgate_listen_notifications_total", 40 * k);
}

static void test_one_process_renders_every_figure(void **state)
{
	conf cfg;
	(void)state;

	world_known();
	memset(&cfg, 0, sizeof cfg);
	cfg.max_waiters = 12345;
	char *t = render(NULL, &cfg, NULL, 0);
	assert_known_figures(t, 1, 1);
	assert_non_null(strstr(t, "pollgate_build_info{version=\"" POLLGATE_VERSION "\"} 1\n"));
	ASSERT_SAMPLE(t, "pollgate_max_waiters", 12345);
	ASSERT_SAMPLE(t, "pollgate_listen_up", 1);
	sample_text(t, "process_cpu_seconds_total");
	sample_text(t, "process_open_fds");
	ASSERT_SAMPLE(t, "pollgate_notification_queue_usage_ratio", 0.25);
	ASSERT_SAMPLE(t, "pollgate_hint_triggers{kind=\"run\"}", 1);
	ASSERT_SAMPLE(t, "pollgate_hint_triggers{kind=\"review_pack\"}", 0);
	assert_nan(t, "pollgate_hint_triggers{kind=\"access\"}");
	/* one worker, "0", without a supervisor */
	ASSERT_SAMPLE(t, "pollgate_worker_waiters_held{worker=\"0\"}", 7);
	ASSERT_SAMPLE(t, "pollgate_worker_listen_up{worker=\"0\"}", 1);
	ASSERT_SAMPLE(t, "pollgate_worker_restarts_total", 0);
	assert_null(strstr(t, "pollgate_worker_waiters_held{worker=\"1\"}"));
	assert_null(strstr(t, "pollgate_logical_")); /* hint_source = notify */
	free(t);
}

/* What is not known yet is NaN, not 0; a figure of nothing at all is 0, with every series present. */
static void test_unknown_figures_are_nan_and_nothing_is_zero(void **state)
{
	(void)state;
	memset(&W, 0, sizeof W);
	memset(&F, 0, sizeof F);
	W.queue_usage = -1;
	for (int k = 0; k < DB_HINT_KINDS; k++) W.hints.tables[k] = -1;
	char *t = render(NULL, NULL, NULL, 0);
	assert_nan(t, "pollgate_notification_queue_usage_ratio");
	assert_nan(t, "pollgate_hint_triggers{kind=\"run\"}");
	assert_nan(t, "pollgate_hint_triggers{kind=\"review_pack\"}");
	assert_nan(t, "pollgate_hint_triggers{kind=\"access\"}");
	ASSERT_SAMPLE(t, "pollgate_max_waiters", 0); /* no config */
	ASSERT_SAMPLE(t, "pollgate_listen_up", 0);
	ASSERT_SAMPLE(t, "pollgate_requests_total{route=\"run\",status=\"503\"}", 0);
	ASSERT_SAMPLE(t, "pollgate_hold_duration_seconds_bucket{reason=\"timeout\",le=\"+Inf\"}", 0);
	ASSERT_SAMPLE(t, "pollgate_notify_to_answer_seconds_sum", 0);
	free(t);
}

static void test_logical_series_follow_the_stream(void **state)
{
	(void)state;
	world_known();
	W.listen_up = true; /* the LISTEN session is not the one in use */
	W.logical_up = false;
	char *t = render(LOGICAL, NULL, NULL, 0);
	ASSERT_SAMPLE(t, "pollgate_listen_up", 0);
	ASSERT_SAMPLE(t, "pollgate_logical_up", 0);
	ASSERT_SAMPLE(t, "pollgate_logical_lag_bytes", 50);
	ASSERT_SAMPLE(t, "pollgate_logical_messages_total", 43);
	ASSERT_SAMPLE(t, "pollgate_logical_transactions_total", 44);
	ASSERT_SAMPLE(t, "pollgate_logical_hints_total", 45);
	ASSERT_SAMPLE(t, "pollgate_logical_resyncs_total", 46);
	ASSERT_SAMPLE(t, "pollgate_logical_visibility_waits_total", 47);
	ASSERT_SAMPLE(t, "pollgate_logical_reconnects_total", 48);
	ASSERT_SAMPLE(t, "pollgate_logical_mapped_tables{kind=\"run\"}", 2);
	assert_nan(t, "pollgate_logical_mapped_tables{kind=\"review_pack\"}");
	ASSERT_SAMPLE(t, "pollgate_logical_mapped_tables{kind=\"access\"}", 1);
	free(t);
	W.logical_up = true;
	t = render(LOGICAL, NULL, NULL, 0);
	ASSERT_SAMPLE(t, "pollgate_listen_up", 1);
	ASSERT_SAMPLE(t, "pollgate_logical_up", 1);
	free(t);
}

/* ---- workers: the whole server ---- */

/* Publish the current figures as worker wi's snapshot. */
static void publish_as(gw_shm *shm, int wi, const struct db_logical *logical)
{
	gw_metrics_snap snap;
	gw_metrics_collect(&snap, &F, REG, POOL, LISTEN, logical);
	gw_metrics_publish(&snap, shm, wi);
}

static void test_workers_sum_counters_gauges_histograms_and_doubles(void **state)
{
	gw_shm *shm = gw_shm_new(3, sizeof(gw_metrics_snap));
	(void)state;
	assert_non_null(shm);

	world_known();
	publish_as(shm, 1, NULL);
	W.listen_up = false; /* worker 2's hint session is down, and its queue reading the highest */
	W.queue_usage = 0.75;
	publish_as(shm, 2, NULL);
	W.listen_up = true;
	W.queue_usage = 0.25;
	char *t = render(NULL, NULL, shm, 0);
	assert_known_figures(t, 3, 3);
	ASSERT_SAMPLE(t, "pollgate_listen_up", 0);
	ASSERT_SAMPLE(t, "pollgate_notification_queue_usage_ratio", 0.75);
	for (int i = 0; i < 3; i++) sample_text(t, fmt("pollgate_worker_waiters_held{worker=\"%d\"}", i));
	free(t);

	publish_as(shm, 2, NULL); /* now up everywhere */
	t = render(NULL, NULL, shm, 0);
	ASSERT_SAMPLE(t, "pollgate_listen_up", 1);
	ASSERT_SAMPLE(t, "pollgate_notification_queue_usage_ratio", 0.25);
	free(t);

	/* rendered by worker 1: its own fresh figures replace what it had published */
	F.head_timeouts = 1000;
	t = render(NULL, NULL, shm, 1);
	ASSERT_SAMPLE(t, "pollgate_head_timeouts_total", 1000 + 32 + 32);
	free(t);
	gw_shm_free(shm);
}

/* A worker that never published is not up yet: the server is not up, its figures count for nothing. */
static void test_a_worker_not_yet_published_keeps_the_server_down(void **state)
{
	gw_shm *shm = gw_shm_new(2, sizeof(gw_metrics_snap));
	(void)state;
	assert_non_null(shm);

	world_known();
	char *t = render(NULL, NULL, shm, 0);
	assert_known_figures(t, 1, 1);
	ASSERT_SAMPLE(t, "pollgate_listen_up", 0);
	free(t);
	gw_shm_free(shm);
}

/* A dead worker's counters stay in the totals (they never go backwards); its gauges leave with it. */
static void test_retired_counters_stay_and_gauges_go(void **state)
{
	gw_shm *shm = gw_shm_new(2, sizeof(gw_metrics_snap));
	(void)state;
	assert_non_null(shm);

	world_known();
	publish_as(shm, 1, NULL);
	gw_metrics_retire(shm, 1);
	gw_shm_worker_reset(shm, 1);
	char *t = render(NULL, NULL, shm, 0);
	assert_known_figures(t, 2, 1);
	free(t);

	/* its replacement publishes and dies too: both lives are counted */
	publish_as(shm, 1, NULL);
	gw_metrics_retire(shm, 1);
	gw_shm_worker_reset(shm, 1);
	t = render(NULL, NULL, shm, 0);
	assert_known_figures(t, 3, 1);
	free(t);

	/* a slot never written retires nothing */
	gw_metrics_retire(shm, 1);
	t = render(NULL, NULL, shm, 0);
	assert_known_figures(t, 3, 1);
	free(t);
	gw_shm_free(shm);
}

static void test_workers_logical_lag_is_the_highest(void **state)
{
	gw_shm *shm = gw_shm_new(2, sizeof(gw_metrics_snap));
	(void)state;
	assert_non_null(shm);

	world_known();
	W.logical.lag_bytes = 5000;
	publish_as(shm, 1, LOGICAL);
	W.logical.lag_bytes = 50;
	char *t = render(LOGICAL, NULL, shm, 0);
	ASSERT_SAMPLE(t, "pollgate_logical_lag_bytes", 5000);
	ASSERT_SAMPLE(t, "pollgate_logical_messages_total", 86);
	ASSERT_SAMPLE(t, "pollgate_logical_up", 1);
	free(t);
	gw_shm_free(shm);
}

/* ---- the checker itself: it must refuse what breaks the rules ---- */

static void test_the_checker_accepts_a_valid_exposition(void **state)
{
	(void)state;
	check_exposition("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 1\n"
	                 "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n"
	                 "# HELP g G.\n# TYPE g gauge\ng NaN\ng{k=\"v\"} -1.5e3\n");
}

/* Each of these breaks one rule; the checker runs in a child so that its failure can be observed. */
static void test_the_checker_refuses_each_broken_rule(void **state)
{
	static const char *const bad[] = {
		"# HELP a A.\n# TYPE a gauge\na 1",                                  /* no final newline */
		"# TYPE a gauge\na 1\n",                                              /* no HELP */
		"# HELP a A.\na 1\n",                                                 /* no TYPE */
		"# HELP a A.\n# TYPE a gauge\nb 1\n",                                 /* another family's sample */
		"# HELP a A.\n# TYPE a gauge\na 1\n# HELP a A.\n# TYPE a gauge\n",    /* family twice */
		"# HELP a A.\n# TYPE a gauge\na 1\na 2\n",                            /* series twice */
		"# HELP a A.\n# TYPE a gauge\na one\n",                               /* bad value */
		"# HELP a A.\n# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",                /* label twice */
		"# HELP a A.\n# TYPE a gauge\na{x=\"\\t\"} 1\n",                      /* bad escape */
		"# HELP a A.\n# TYPE a gauge\na{1x=\"1\"} 1\n",                       /* bad label name */
		"# HELP a A.\n# TYPE a counter\na 1\n",                               /* counter without _total */
		"# HELP a A.\n# TYPE a gauges\na 1\n",                                /* unknown type */
		"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
		"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
		"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",             /* no +Inf */
		"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",          /* count != +Inf */
		"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n",                   /* no _sum */
		"# HELP a A.\n# TYPE a gauge\n\na 1\n",                                                    /* empty line */
		"# HELP a A.\n# TYPE a gauge\n# just a note\na 1\n",                                        /* other comment */
	};
	(void)state;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			probing = true;
			check_exposition(bad[i]);
			_exit(0);
		}
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0) fail_msg("the checker accepted broken case %zu:\n%s", i, bad[i]);
	}
}

/* promtool's own linter, when it is installed (the checker above stands alone without it). */
static void test_promtool_check_metrics_accepts_it(void **state)
{
	(void)state;
	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		print_message("promtool not installed: skipped\n");
		skip();
	}
	gw_shm *shm = gw_shm_new(2, sizeof(gw_metrics_snap));
	assert_non_null(shm);
	world_known();
	publish_as(shm, 1, LOGICAL);
	char *t = render(LOGICAL, NULL, shm, 0);
	char path[] = "/tmp/pollgate-metrics-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, t, strlen(t)), (ssize_t)strlen(t));
	close(fd);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "promtool check metrics <%s", path);
	int rc = system(cmd);
	unlink(path);
	free(t);
	gw_shm_free(shm);
	if (rc != 0) fail_msg("promtool check metrics refused the exposition (rc %d)", rc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_checker_accepts_a_valid_exposition),
		cmocka_unit_test(test_the_checker_refuses_each_broken_rule),
		cmocka_unit_test(test_one_process_renders_every_figure),
		cmocka_unit_test(test_unknown_figures_are_nan_and_nothing_is_zero),
		cmocka_unit_test(test_logical_series_follow_the_stream),
		cmocka_unit_test(test_workers_sum_counters_gauges_histograms_and_doubles),
		cmocka_unit_test(test_a_worker_not_yet_published_keeps_the_server_down),
		cmocka_unit_test(test_retired_counters_stay_and_gauges_go),
		cmocka_unit_test(test_workers_logical_lag_is_the_highest),
		cmocka_unit_test(test_promtool_check_metrics_accepts_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
