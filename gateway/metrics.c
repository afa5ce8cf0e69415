/*
 * gateway/metrics.c — see metrics.h. Names follow Prometheus conventions: pollgate_ prefix, _total for
 * counters, base units with their suffix (_seconds, _bytes, _ratio), process_* as the client libraries
 * export them, pollgate_build_info as a constant 1 carrying the version.
 */
#include "gateway/metrics.h"

#include <dirent.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "db/listen.h"
#include "db/logical.h"
#include "db/pool.h"
#include "gateway/config.h"
#include "gateway/hold.h"
#include "gateway/watch.h"
#include "gateway/shared.h"

#define P(...)                                                                                               \
	do {                                                                                                     \
		if (evbuffer_add_printf(out, __VA_ARGS__) < 0) return -1;                                            \
	} while (0)

static int head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	P("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	return 0;
}

/* The process's own figures, as the Prometheus client libraries export them. A figure that cannot be
 * read is left out (-1). */
typedef struct proc_figures {
	double cpu_seconds;
	double resident_bytes, virtual_bytes;
	double open_fds, max_fds;
	double start_time;
} proc_figures;

/* Figures of process `pid` (0 = this one, CPU then from getrusage) from /proc/PID. */
static void read_proc(proc_figures *f, pid_t pid)
{
	struct rusage ru;
	struct rlimit rl;
	long page = sysconf(_SC_PAGESIZE), ticks = sysconf(_SC_CLK_TCK);
	FILE *fp;
	char dir[32], path[64];

	if (pid > 0) snprintf(dir, sizeof dir, "/proc/%d", (int)pid);
	else snprintf(dir, sizeof dir, "/proc/self");
	f->cpu_seconds = f->resident_bytes = f->virtual_bytes = f->open_fds = f->max_fds = f->start_time = -1;
	if (pid == 0 && getrusage(RUSAGE_SELF, &ru) == 0)
		f->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		                 (double)ru.ru_stime.tv_usec / 1e6;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) f->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur;
	snprintf(path, sizeof path, "%s/statm", dir);
	if ((fp = fopen(path, "r")) != NULL) {
		unsigned long long size, rss;
		if (fscanf(fp, "%llu %llu", &size, &rss) == 2 && page > 0) {
			f->virtual_bytes = (double)size * (double)page;
			f->resident_bytes = (double)rss * (double)page;
		}
		fclose(fp);
	}
	snprintf(path, sizeof path, "%s/fd", dir);
	DIR *d = opendir(path);
	if (d != NULL) {
		long n = 0;
		struct dirent *e;
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.') n++;
		closedir(d);
		f->open_fds = (double)(pid == 0 ? n - 1 : n); /* not the descriptor opendir itself holds */
	}
	/* start time: field 22 of /proc/PID/stat (clock ticks after boot) plus btime of /proc/stat; CPU of
	 * another process: fields 14 and 15 (utime, stime, in clock ticks) */
	unsigned long long start_ticks = 0, btime = 0, ut = 0, st = 0;
	snprintf(path, sizeof path, "%s/stat", dir);
	if ((fp = fopen(path, "r")) != NULL) {
		char buf[1024];
		size_t n = fread(buf, 1, sizeof buf - 1, fp);
		fclose(fp);
		buf[n] = '\0';
		char *p = strrchr(buf, ')'); /* the command name may hold spaces; fields count from after it */
		for (int field = 2; p && field < 22; field++) {
			p = strchr(p + 1, ' ');
			if (p && field == 13) ut = strtoull(p + 1, NULL, 10);
			if (p && field == 14) st = strtoull(p + 1, NULL, 10);
		}
		if (p) start_ticks = strtoull(p + 1, NULL, 10);
		if (p && pid > 0 && ticks > 0) f->cpu_seconds = (double)(ut + st) / (double)ticks;
	}
	if ((fp = fopen("/proc/stat", "r")) != NULL) {
		char line[256];
		while (fgets(line, sizeof line, fp))
			if (sscanf(line, "btime %llu", &btime) == 1) break;
		fclose(fp);
	}
	if (start_ticks > 0 && btime > 0 && ticks > 0) f->start_time = (double)btime + (double)start_ticks / (double)ticks;
}

/* Workers > 1: the supervisor's and every worker's figures, summed (CPU, memory, descriptors); the
 * open-file limit is each process's own (they share it); the start time is the supervisor's. */
static void read_procs(proc_figures *f, const gw_shm *shm)
{
	proc_figures one;
	read_proc(f, gw_shm_supervisor(shm));
	for (int i = 0; i < gw_shm_workers(shm); i++) {
		pid_t pid = gw_shm_pid(shm, i);
		if (pid <= 0) continue;
		read_proc(&one, pid == getpid() ? 0 : pid);
		if (one.cpu_seconds >= 0 && f->cpu_seconds >= 0) f->cpu_seconds += one.cpu_seconds;
		if (one.resident_bytes >= 0 && f->resident_bytes >= 0) f->resident_bytes += one.resident_bytes;
		if (one.virtual_bytes >= 0 && f->virtual_bytes >= 0) f->virtual_bytes += one.virtual_bytes;
		if (one.open_fds >= 0 && f->open_fds >= 0) f->open_fds += one.open_fds;
	}
}

/* ---- snapshots ---- */

void gw_metrics_collect(gw_metrics_snap *out, const gw_metrics_front *front, const struct gw_registry *reg,
                        const struct db_pool *pool, const struct db_listen *listen, const struct db_logical *logical)
{
	memset(out, 0, sizeof *out);
	out->front = *front;
	out->reg = *gw_reg_get_stats(reg);
	out->token_cache = gw_reg_token_cache_size(reg);
	db_pool_get_stats(pool, &out->pool);
	out->db_connected = (uint64_t)db_pool_connected(pool);
	db_listen_get_stats(listen, &out->listen);
	out->listen_up = (logical ? db_logical_is_up(logical) : db_listen_is_up(listen)) ? 1 : 0;
	db_logical_get_stats(logical, &out->logical);
	out->logical_lag = out->logical.lag_bytes;
	out->queue_usage = db_listen_queue_usage(listen);
	out->hints = *db_listen_hints(listen);
	out->published = 1;
}

/* The summed part of a snapshot is 8-byte words: uint64 everywhere but at these offsets (doubles). */
static bool is_double_word(size_t off)
{
	if (off == offsetof(gw_metrics_snap, reg.wake_sum_ms)) return true;
	return off >= offsetof(gw_metrics_snap, reg.hold.sum_s) &&
	       off < offsetof(gw_metrics_snap, reg.hold.sum_s) + sizeof(((gw_reg_stats *)0)->hold.sum_s);
}

/* Gauges: a worker that died holds nothing, so they are left out when its counters are retired. */
static bool is_gauge_word(size_t off)
{
	static const struct {
		size_t off, len;
	} g[] = {
		{offsetof(gw_metrics_snap, front.heads_reading), sizeof(uint64_t)},
		{offsetof(gw_metrics_snap, reg.held), sizeof(((gw_reg_stats *)0)->held)},
		{offsetof(gw_metrics_snap, reg.pending), sizeof(uint64_t)},
		{offsetof(gw_metrics_snap, reg.watches), sizeof(((gw_reg_stats *)0)->watches)},
		{offsetof(gw_metrics_snap, reg.subs), sizeof(uint64_t)},
		{offsetof(gw_metrics_snap, token_cache), sizeof(uint64_t)},
		{offsetof(gw_metrics_snap, db_connected), sizeof(uint64_t)},
	};
	for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
		if (off >= g[i].off && off < g[i].off + g[i].len) return true;
	return false;
}

_Static_assert(sizeof(((gw_reg_stats *)0)->batch_hist) == GW_BATCH_BUCKETS * sizeof(uint64_t), "batch_hist is gw_hist_batch's");
_Static_assert(sizeof(((gw_reg_stats *)0)->wake_hist) == GW_WAKE_BUCKETS * sizeof(uint64_t), "wake_hist is gw_hist_wake's");
_Static_assert(offsetof(gw_metrics_snap, listen_up) % 8 == 0, "the summed part of a snapshot is 8-byte words");
_Static_assert(sizeof(gw_metrics_snap) % 8 == 0, "a snapshot is 8-byte words");

/* dst += src over the summed part (counters and gauges; gauges left out when `counters_only`). */
static void snap_add(gw_metrics_snap *dst, const gw_metrics_snap *src, bool counters_only)
{
	unsigned char *d = (unsigned char *)dst;
	const unsigned char *s = (const unsigned char *)src;
	for (size_t off = 0; off < offsetof(gw_metrics_snap, listen_up); off += 8) {
		if (counters_only && is_gauge_word(off)) continue;
		if (is_double_word(off)) {
			double a, b;
			memcpy(&a, d + off, 8);
			memcpy(&b, s + off, 8);
			a += b;
			memcpy(d + off, &a, 8);
		} else {
			uint64_t a, b;
			memcpy(&a, d + off, 8);
			memcpy(&b, s + off, 8);
			a += b;
			memcpy(d + off, &a, 8);
		}
	}
}

/* The whole server: `own` (fresh) for worker `self`, every other worker's published snapshot, and the
 * counters of workers that died. LISTEN is up only when every worker's is; the queue usage is the
 * highest seen; the hint triggers are this worker's view (one database). */
static void snap_sum(gw_metrics_snap *sum, const gw_metrics_snap *own, const gw_shm *shm, int self)
{
	gw_metrics_snap *other = malloc(sizeof *other);
	*sum = *own;
	if (other == NULL) return;
	for (int i = 0; i < gw_shm_workers(shm); i++) {
		if (i == self) continue;
		if (!gw_shm_snap_read(shm, i, other) || !other->published) {
			sum->listen_up = 0; /* a worker not (yet) up */
			continue;
		}
		snap_add(sum, other, false);
		if (!other->listen_up) sum->listen_up = 0;
		if (other->queue_usage > sum->queue_usage) sum->queue_usage = other->queue_usage;
		if (other->logical_lag > sum->logical_lag) sum->logical_lag = other->logical_lag;
	}
	if (gw_shm_snap_read(shm, GW_SHM_RETIRED, other)) snap_add(sum, other, true);
	free(other);
}

void gw_metrics_publish(const gw_metrics_snap *own, gw_shm *shm, int self)
{
	gw_shm_snap_write(shm, self, own);
}

void gw_metrics_retire(gw_shm *shm, int wi)
{
	gw_metrics_snap *dead = malloc(sizeof *dead), *acc = malloc(sizeof *acc);
	if (dead && acc && gw_shm_snap_read(shm, wi, dead)) {
		if (!gw_shm_snap_read(shm, GW_SHM_RETIRED, acc)) memset(acc, 0, sizeof *acc);
		snap_add(acc, dead, true);
		gw_shm_snap_write(shm, GW_SHM_RETIRED, acc);
	}
	free(dead);
	free(acc);
}

static int render_logical(struct evbuffer *out, const gw_metrics_snap *sum, const struct db_logical *logical);

int gw_metrics_render(struct evbuffer *out, const gw_metrics_front *front, const struct gw_registry *reg,
                      const struct db_pool *pool, const struct db_listen *listen, const struct db_logical *logical,
                      const struct conf *cfg, gw_shm *shm, int self)
{
	gw_metrics_snap own, sum;
	gw_metrics_collect(&own, front, reg, pool, listen, logical);
	if (shm) {
		gw_metrics_publish(&own, shm, self);
		snap_sum(&sum, &own, shm, self);
	} else {
		sum = own;
	}
	front = &sum.front;
	const gw_reg_stats *st = &sum.reg;
	const db_pool_stats ps = sum.pool;
	const db_listen_stats ls = sum.listen;
	proc_figures pf;
	if (shm) read_procs(&pf, shm);
	else read_proc(&pf, 0);

	if (head(out, "pollgate_build_info", "gauge", "Always 1; the version of the running binary.")) return -1;
	P("pollgate_build_info{version=\"%s\"} 1\n", POLLGATE_VERSION);
	if (head(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.")) return -1;
	if (pf.cpu_seconds >= 0) P("process_cpu_seconds_total %.6f\n", pf.cpu_seconds);
	if (head(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")) return -1;
	if (pf.resident_bytes >= 0) P("process_resident_memory_bytes %.0f\n", pf.resident_bytes);
	if (head(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.")) return -1;
	if (pf.virtual_bytes >= 0) P("process_virtual_memory_bytes %.0f\n", pf.virtual_bytes);
	if (head(out, "process_open_fds", "gauge", "Open file descriptors.")) return -1;
	if (pf.open_fds >= 0) P("process_open_fds %.0f\n", pf.open_fds);
	if (head(out, "process_max_fds", "gauge", "The open-file limit (RLIMIT_NOFILE soft limit).")) return -1;
	if (pf.max_fds >= 0) P("process_max_fds %.0f\n", pf.max_fds);
	if (head(out, "process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds.")) return -1;
	if (pf.start_time >= 0) P("process_start_time_seconds %.2f\n", pf.start_time);

	if (head(out, "pollgate_max_waiters", "gauge", "The max_waiters limit: held requests past it get 503.")) return -1;
	P("pollgate_max_waiters %lld\n", cfg ? (long long)cfg->max_waiters : 0LL);

	if (head(out, "pollgate_waiters_held", "gauge", "Long-poll requests held, by resource kind.")) return -1;
	for (int k = 0; k < GW_KINDS; k++)
		P("pollgate_waiters_held{kind=\"%s\"} %" PRIu64 "\n", gw_kind_name((gw_kind)k), st->held[k]);
	if (head(out, "pollgate_waiters_pending", "gauge", "Requests waiting for a token lookup or a read.")) return -1;
	P("pollgate_waiters_pending %" PRIu64 "\n", st->pending);
	if (head(out, "pollgate_watches", "gauge", "Resources tracked (held, or cached), by kind.")) return -1;
	for (int k = 0; k < GW_KINDS; k++)
		P("pollgate_watches{kind=\"%s\"} %" PRIu64 "\n", gw_kind_name((gw_kind)k), st->watches[k]);
	if (head(out, "pollgate_principal_cache_entries", "gauge", "Token hashes in the principal cache.")) return -1;
	P("pollgate_principal_cache_entries %" PRIu64 "\n", sum.token_cache);

	if (head(out, "pollgate_requests_total", "counter", "Answers given, by route and status.")) return -1;
	for (int r = 0; r < GW_NROUTES; r++) {
		for (int i = 0; i < GW_NSTATUS; i++) {
			/* every route and status from the start, at 0: a rate() of 503s has a series before the first */
			uint64_t n = front->answers[r][i];
			if (r == GW_ROUTE_RUN) n += st->answers[GW_RUN][i];
			if (r == GW_ROUTE_PACK) n += st->answers[GW_PACK][i];
			if (gw_http_status_codes[i])
				P("pollgate_requests_total{route=\"%s\",status=\"%d\"} %" PRIu64 "\n",
				  gw_http_route_name((gw_route)r), gw_http_status_codes[i], n);
			else
				P("pollgate_requests_total{route=\"%s\",status=\"other\"} %" PRIu64 "\n",
				  gw_http_route_name((gw_route)r), n);
		}
	}
	if (head(out, "pollgate_connections_reading_head", "gauge", "Connections reading a request head now.")) return -1;
	P("pollgate_connections_reading_head %" PRIu64 "\n", front->heads_reading);
	if (head(out, "pollgate_head_timeouts_total", "counter",
	         "Connections dropped for not completing a request head within header_timeout.")) return -1;
	P("pollgate_head_timeouts_total %" PRIu64 "\n", front->head_timeouts);
	if (head(out, "pollgate_protocol_errors_total", "counter",
	         "Requests refused by the HTTP parser (malformed, header block too large, body).")) return -1;
	P("pollgate_protocol_errors_total %" PRIu64 "\n", front->protocol_errors);
	if (head(out, "pollgate_accept_pauses_total", "counter",
	         "Times accepting paused for 100 ms because file descriptors ran out.")) return -1;
	P("pollgate_accept_pauses_total %" PRIu64 "\n", front->accept_pauses);
	if (head(out, "pollgate_reread_queries_total", "counter", "Batched re-read queries sent, by kind.")) return -1;
	for (int k = 0; k < GW_KINDS; k++)
		P("pollgate_reread_queries_total{kind=\"%s\"} %" PRIu64 "\n", gw_kind_name((gw_kind)k), st->reads[k]);
	if (head(out, "pollgate_reread_resources_total", "counter", "Resources asked for by re-reads (sum of batch sizes).")) return -1;
	for (int k = 0; k < GW_KINDS; k++)
		P("pollgate_reread_resources_total{kind=\"%s\"} %" PRIu64 "\n", gw_kind_name((gw_kind)k), st->read_resources[k]);
	if (head(out, "pollgate_reread_batch_size", "histogram", "Resources per batched re-read query (all kinds).")) return -1;
	{
		uint64_t cum = 0, nq = 0, nr = 0;
		for (size_t i = 0; i <= gw_hist_batch.nbounds; i++) {
			cum += st->batch_hist[i];
			P("pollgate_reread_batch_size_bucket{le=\"%s\"} %" PRIu64 "\n", gw_hist_batch.le[i], cum);
		}
		for (int k = 0; k < GW_KINDS; k++) nq += st->reads[k], nr += st->read_resources[k];
		P("pollgate_reread_batch_size_sum %" PRIu64 "\n", nr);
		P("pollgate_reread_batch_size_count %" PRIu64 "\n", nq);
	}
	if (head(out, "pollgate_reread_rows_total", "counter", "Rows returned by re-reads.")) return -1;
	for (int k = 0; k < GW_KINDS; k++)
		P("pollgate_reread_rows_total{kind=\"%s\"} %" PRIu64 "\n", gw_kind_name((gw_kind)k), st->read_rows[k]);
	if (head(out, "pollgate_token_lookups_total", "counter", "Batched token lookup queries sent.")) return -1;
	P("pollgate_token_lookups_total %" PRIu64 "\n", st->token_reads);
	if (head(out, "pollgate_read_errors_total", "counter", "Re-reads and lookups that failed.")) return -1;
	P("pollgate_read_errors_total %" PRIu64 "\n", st->read_errors);
	if (head(out, "pollgate_bad_rows_total", "counter", "Database rows or fields that did not validate.")) return -1;
	P("pollgate_bad_rows_total %" PRIu64 "\n", st->bad_rows);

	if (head(out, "pollgate_notifies_total", "counter", "NOTIFY hints received, by channel kind.")) return -1;
	P("pollgate_notifies_total{kind=\"run\"} %" PRIu64 "\n", st->notifies[GW_RUN]);
	P("pollgate_notifies_total{kind=\"review_pack\"} %" PRIu64 "\n", st->notifies[GW_PACK]);
	P("pollgate_notifies_total{kind=\"access\"} %" PRIu64 "\n", st->notifies[GW_KINDS]);
	if (head(out, "pollgate_wakes_total", "counter", "Resource re-reads, by what caused them.")) return -1;
	P("pollgate_wakes_total{cause=\"notify\"} %" PRIu64 "\n", st->wakes_notify);
	P("pollgate_wakes_total{cause=\"safety_net\"} %" PRIu64 "\n", st->wakes_safety);
	P("pollgate_wakes_total{cause=\"reconnect\"} %" PRIu64 "\n", st->wakes_reconnect);
	if (head(out, "pollgate_answers_total", "counter", "Held waiters answered, by reason.")) return -1;
	P("pollgate_answers_total{reason=\"changed\"} %" PRIu64 "\n", st->answered_change);
	P("pollgate_answers_total{reason=\"expired\"} %" PRIu64 "\n", st->answered_expiry);
	P("pollgate_answers_total{reason=\"denied\"} %" PRIu64 "\n", st->answered_denied);
	if (head(out, "pollgate_client_disconnects_total", "counter", "Waiters whose client went away.")) return -1;
	P("pollgate_client_disconnects_total %" PRIu64 "\n", st->disconnects);
	if (head(out, "pollgate_terminal_closes_total", "counter", "Watches closed for good on a terminal state.")) return -1;
	P("pollgate_terminal_closes_total %" PRIu64 "\n", st->terminal_closes);
	if (head(out, "pollgate_rejected_total", "counter", "Requests refused by a waiter cap (429/503).")) return -1;
	P("pollgate_rejected_total %" PRIu64 "\n", st->rejected_cap);

	if (head(out, "pollgate_notify_to_answer_seconds", "histogram", "From a NOTIFY to the re-read that answered its waiters.")) return -1;
	{
		uint64_t cum = 0;
		for (size_t i = 0; i <= gw_hist_wake.nbounds; i++) {
			cum += st->wake_hist[i];
			P("pollgate_notify_to_answer_seconds_bucket{le=\"%s\"} %" PRIu64 "\n", gw_hist_wake.le[i], cum);
		}
		P("pollgate_notify_to_answer_seconds_sum %.6f\n", st->wake_sum_ms / 1000.0);
		P("pollgate_notify_to_answer_seconds_count %" PRIu64 "\n", st->wake_count);
	}

	if (head(out, "pollgate_db_connections", "gauge", "Query connections up.")) return -1;
	P("pollgate_db_connections %" PRIu64 "\n", sum.db_connected);
	if (head(out, "pollgate_db_queries_total", "counter", "Queries sent on the pool.")) return -1;
	P("pollgate_db_queries_total %" PRIu64 "\n", ps.queries);
	if (head(out, "pollgate_db_errors_total", "counter", "Pool queries that failed.")) return -1;
	P("pollgate_db_errors_total %" PRIu64 "\n", ps.errors);
	if (head(out, "pollgate_db_reconnects_total", "counter", "Pool connections re-established.")) return -1;
	P("pollgate_db_reconnects_total %" PRIu64 "\n", ps.reconnects);
	if (head(out, "pollgate_listen_up", "gauge",
	         "1 while the hint session is up: the LISTEN session, or the replication stream with hint_source = "
	         "logical (with workers: every worker's).")) return -1;
	P("pollgate_listen_up %d\n", sum.listen_up ? 1 : 0);
	if (head(out, "pollgate_listen_reconnects_total", "counter", "LISTEN sessions re-established.")) return -1;
	P("pollgate_listen_reconnects_total %" PRIu64 "\n", ls.reconnects);
	if (head(out, "pollgate_listen_notifications_total", "counter", "Notifications received by the LISTEN session.")) return -1;
	P("pollgate_listen_notifications_total %" PRIu64 "\n", ls.notifies);
	double usage = sum.queue_usage;
	if (head(out, "pollgate_notification_queue_usage_ratio", "gauge",
	         "pg_notification_queue_usage() at the last heartbeat, 0 to 1 (NaN before the first).")) return -1;
	if (usage >= 0) P("pollgate_notification_queue_usage_ratio %.6f\n", usage);
	else P("pollgate_notification_queue_usage_ratio NaN\n");
	const db_hints *hints = &sum.hints;
	if (head(out, "pollgate_hint_triggers", "gauge",
	         "Tables with an enabled hint trigger, by kind, at the last LISTEN (re)connect; 0 = that kind "
	         "relies on the safety net alone (NaN before the first check).")) return -1;
	for (int k = 0; k < DB_HINT_KINDS; k++) {
		if (hints->tables[k] >= 0) P("pollgate_hint_triggers{kind=\"%s\"} %d\n", db_hint_kind_name(k), hints->tables[k]);
		else P("pollgate_hint_triggers{kind=\"%s\"} NaN\n", db_hint_kind_name(k));
	}

	if (head(out, "pollgate_hold_duration_seconds", "histogram",
	         "From a long-poll's arrival to its answer (or its client leaving), by why it ended.")) return -1;
	for (int r = 0; r < GW_HOLD_NREASONS; r++) {
		const char *why = gw_hold_reason_name((gw_hold_reason)r);
		uint64_t cum = 0;
		for (size_t i = 0; i <= gw_hist_hold.nbounds; i++) {
			cum += st->hold.bucket[r][i];
			P("pollgate_hold_duration_seconds_bucket{reason=\"%s\",le=\"%s\"} %" PRIu64 "\n", why,
			  gw_hist_hold.le[i], cum);
		}
		P("pollgate_hold_duration_seconds_sum{reason=\"%s\"} %.6f\n", why, st->hold.sum_s[r]);
		P("pollgate_hold_duration_seconds_count{reason=\"%s\"} %" PRIu64 "\n", why, st->hold.count[r]);
	}

	/* Per worker (one worker, "0", without a supervisor). */
	int nw = shm ? gw_shm_workers(shm) : 1;
	if (head(out, "pollgate_worker_waiters_held", "gauge", "Long-poll requests held, by worker process.")) return -1;
	for (int i = 0; i < nw; i++)
		P("pollgate_worker_waiters_held{worker=\"%d\"} %" PRIu64 "\n", i,
		  shm ? gw_shm_worker_held(shm, i) : own.reg.held[GW_RUN] + own.reg.held[GW_PACK]);
	if (head(out, "pollgate_worker_listen_up", "gauge", "1 while the worker's LISTEN session is up, by worker.")) return -1;
	for (int i = 0; i < nw; i++)
		P("pollgate_worker_listen_up{worker=\"%d\"} %d\n", i,
		  shm ? (gw_shm_worker_listen_up(shm, i) ? 1 : 0) : (own.listen_up ? 1 : 0));
	if (head(out, "pollgate_worker_restarts_total", "counter", "Worker processes restarted after they died.")) return -1;
	P("pollgate_worker_restarts_total %" PRIu64 "\n", shm ? gw_shm_restarts(shm) : 0);
	return render_logical(out, &sum, logical);
}

/* The logical-decoding hint source's own series (hint_source = logical; nothing otherwise), for the whole
 * server like the rest: counters summed over the workers, the lag the highest. */
static int render_logical(struct evbuffer *out, const gw_metrics_snap *sum, const struct db_logical *logical)
{
	const db_logical_stats *st = &sum->logical;
	if (logical == NULL) return 0;
	if (head(out, "pollgate_logical_up", "gauge",
	         "1 while the logical replication stream (hint_source = logical) is up (with workers: every worker's).")) return -1;
	P("pollgate_logical_up %d\n", sum->listen_up ? 1 : 0);
	if (head(out, "pollgate_logical_lag_bytes", "gauge",
	         "Server WAL end (as last reported) minus the position confirmed to it (with workers: the highest).")) return -1;
	P("pollgate_logical_lag_bytes %" PRIu64 "\n", sum->logical_lag);
	if (head(out, "pollgate_logical_messages_total", "counter", "Replication messages received (data and keepalives).")) return -1;
	P("pollgate_logical_messages_total %" PRIu64 "\n", st->messages);
	if (head(out, "pollgate_logical_transactions_total", "counter", "Committed transactions decoded.")) return -1;
	P("pollgate_logical_transactions_total %" PRIu64 "\n", st->transactions);
	if (head(out, "pollgate_logical_hints_total", "counter", "Hints handed over, one per resource per transaction.")) return -1;
	P("pollgate_logical_hints_total %" PRIu64 "\n", st->hints);
	if (head(out, "pollgate_logical_resyncs_total", "counter",
	         "Full re-reads asked by the stream (TRUNCATE, an oversized transaction, an unknown old key).")) return -1;
	P("pollgate_logical_resyncs_total %" PRIu64 "\n", st->resyncs);
	if (head(out, "pollgate_logical_visibility_waits_total", "counter",
	         "Commits streamed a moment before new snapshots saw them; their hints waited for that.")) return -1;
	P("pollgate_logical_visibility_waits_total %" PRIu64 "\n", st->visibility_waits);
	if (head(out, "pollgate_logical_reconnects_total", "counter", "Replication sessions re-established.")) return -1;
	P("pollgate_logical_reconnects_total %" PRIu64 "\n", st->reconnects);
	if (head(out, "pollgate_logical_mapped_tables", "gauge",
	         "Tables in pollgate_hint_map by kind at the last (re)connect of the answering process (NaN before).")) return -1;
	for (int k = 0; k < DB_HINT_KINDS; k++) {
		int n = db_logical_mapped(logical, k);
		if (n >= 0) P("pollgate_logical_mapped_tables{kind=\"%s\"} %d\n", db_hint_kind_name(k), n);
		else P("pollgate_logical_mapped_tables{kind=\"%s\"} NaN\n", db_hint_kind_name(k));
	}
	return 0;
}
