/*
 * gateway/main.c — the pollgate process: arguments, start-up, signals, reload and drain.
 *
 * One event loop runs everything. All runtime state hangs off one struct app (no file-scope state), so
 * a worker process is just another app: with workers = N > 1 this process becomes the supervisor
 * (gateway/supervisor.c) and each forked worker comes back here to build its own app. Signals arrive through the loop (evsignal), never in a raw
 * handler: SIGHUP reloads the config (a bad file is reported and the old config kept) and reopens the
 * log; SIGTERM/SIGINT drain — stop accepting, answer every held request with its current answer and
 * Connection: close, wait for the answers to be written (at most drain_timeout), exit 0. A second stop
 * signal shortens the wait to a second (requests not yet read get 503), but still writes the answers.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/hmap.h"
#include "common/log.h"
#include "db/listen.h"
#include "db/logical.h"
#include "db/pool.h"
#include "gateway/config.h"
#include "gateway/metrics.h"
#include "gateway/registry-io.h"
#include "gateway/server.h"
#include "gateway/shared.h"
#include "gateway/supervisor.h"
#include "gateway/watch.h"

#ifndef POLLGATE_VERSION
#define POLLGATE_VERSION "dev"
#endif
/* Where `make install` puts the config (its sysconfdir); read when no -c is given. */
#ifndef POLLGATE_SYSCONFDIR
#define POLLGATE_SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONF POLLGATE_SYSCONFDIR "/pollgate/pollgate.conf"

typedef struct app {
	const char *conf_path;
	conf *cfg;
	struct event_base *base;
	db_pool *pool;
	db_listen *listen;
	db_logical *logical; /* hint_source = logical (then listen is NULL) */
	gw_reg_evhttp out; /* what the registry reads through and answers with; the server answers with out.http */
	gw_registry *reg;
	gw_server *srv;
	gw_shm *shm; /* workers > 1: the memory shared with the others (this worker's mapping), else NULL */
	int worker;  /* this worker's index (0 without a supervisor) */
	struct event *sig_hup, *sig_term, *sig_int, *drain_tick;
	int64_t drain_started_ms;
	int64_t answered_at_ms; /* when the drain had answered every request, or 0 */
	bool draining;
	bool aborted;
	int exit_code;
} app;

static const char *const channels[] = {"pollgate_run", "pollgate_review_pack", "pollgate_access"};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: pollgate [-c FILE] [-t | --check-config] [--print-config] [-V | --version] [-h | --help]\n"
	        "  -c, --config FILE   configuration file; default " DEFAULT_CONF " when it exists,\n"
	        "                      else the built-in defaults\n"
	        "  -t, --check-config  validate the configuration, print each error as FILE:LINE: message\n"
	        "      --print-config  print every key with its effective value (the database password redacted)\n"
	        "  -V, --version       print the version\n"
	        "  -h, --help          this text\n");
}

static int64_t now_ms(const app *a)
{
	struct timeval tv;
	event_base_gettimeofday_cached(a->base, &tv);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- database hooks ---- */

static void on_pool_change(void *arg)
{
	app *a = arg;
	if (a->reg) gw_reg_pool_changed(a->reg);
	if (a->srv) gw_server_publish_ready(a->srv);
}

static bool parse_payload_id(const char *s, int64_t *id)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end != '\0' || v <= 0) return false;
	*id = (int64_t)v;
	return true;
}

static void on_notify(void *arg, const char *channel, const char *payload)
{
	app *a = arg;
	int64_t id;
	if (strcmp(channel, "pollgate_access") == 0) {
		if (strcmp(payload, "*") == 0) gw_reg_notify_access(a->reg, -1);
		else if (parse_payload_id(payload, &id)) gw_reg_notify_access(a->reg, id);
		else log_warn("ignored notification channel=%s reason=\"payload is not a user id\"", CM_Q(channel));
		return;
	}
	gw_kind kind = strcmp(channel, "pollgate_run") == 0 ? GW_RUN : GW_PACK;
	/* The payload is only a hint of which resource to read again; nothing in it is ever served. */
	if (parse_payload_id(payload, &id)) gw_reg_notify(a->reg, kind, id);
	else log_warn("ignored notification channel=%s reason=\"payload is not an id\"", CM_Q(channel));
}

static void on_listen_up(void *arg)
{
	app *a = arg;
	gw_reg_listen_up(a->reg); /* db/listen.c has logged it */
	if (a->srv) gw_server_publish_ready(a->srv);
}

static void on_listen_down(void *arg, const char *why)
{
	app *a = arg;
	(void)why; /* db/listen.c has logged it */
	gw_reg_listen_down(a->reg);
	if (a->srv) gw_server_publish_ready(a->srv);
}

static void on_listen_fatal(void *arg, const char *why)
{
	app *a = arg;
	log_error("stopping: the database cannot serve LISTEN reason=%s", CM_Q(why));
	a->exit_code = 1;
	event_base_loopexit(a->base, NULL);
}

/* hint_source = logical: a TRUNCATE or an oversized transaction asks to re-read everything held, as after
 * a reconnect. */
static void on_logical_resync(void *arg)
{
	app *a = arg;
	gw_reg_listen_up(a->reg);
}

static void on_logical_fatal(void *arg, const char *why)
{
	app *a = arg;
	log_error("stopping: the database cannot serve hint_source = logical reason=%s", CM_Q(why));
	a->exit_code = 1;
	event_base_loopexit(a->base, NULL);
}

/* ---- signals ---- */

static void report_static(const char *key, void *arg)
{
	(void)arg;
	log_warn("config key changed but needs a restart key=%s", key);
}

static void apply_logging(const conf *c)
{
	cm_log_configure(c->log_level, (cm_log_format)c->log_format);
	if (cm_log_open(c->log_file) != 0) log_error("cannot open log file path=%s error=%s", CM_Q(c->log_file), CM_Q(strerror(errno)));
	if (cm_log_access_open(c->access_log) != 0)
		log_error("cannot open access log path=%s error=%s", CM_Q(c->access_log), CM_Q(strerror(errno)));
}

static void reload(app *a)
{
	char *errs = NULL;
	size_t errlen = 0;
	int nerr = 0;
	FILE *ef;

	if (a->conf_path == NULL) {
		log_info("reload requested; running on built-in defaults, nothing to reload");
		apply_logging(a->cfg);
		return;
	}
	ef = open_memstream(&errs, &errlen);
	conf *fresh = conf_load(a->conf_path, ef, &nerr);
	if (ef) fclose(ef);
	if (fresh == NULL) {
		/* Keep serving with the old config; say exactly what is wrong with the new one. */
		char *save = NULL;
		for (char *line = errs ? strtok_r(errs, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save))
			log_error("config rejected error=%s", CM_Q(line));
		log_error("reload failed errors=%d path=%s hint=\"old config kept\"", nerr, CM_Q(a->conf_path));
		free(errs);
		apply_logging(a->cfg);
		return;
	}
	free(errs);
	conf_keep_static(fresh, a->cfg, report_static, a);
	conf *old = a->cfg;
	a->cfg = fresh;
	gw_reg_set_conf(a->reg, fresh);
	gw_server_set_conf(a->srv, fresh);
	apply_logging(fresh);
	conf_free(old);
	log_info("config reloaded path=%s", CM_Q(a->conf_path));
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
	app *a = arg;
	(void)fd;
	(void)what;
	uint64_t left = gw_reg_outstanding(a->reg);
	uint64_t unwritten = gw_server_unfinished(a->srv);
	int64_t now = now_ms(a);
	if (left == 0 && a->answered_at_ms == 0) a->answered_at_ms = now;
	/* Every request is answered. Answers to live clients are written within milliseconds; evhttp reports
	 * no failure for an answer whose client reset meanwhile, so after a short grace the rest are taken
	 * to be for clients that are gone. */
	if (left == 0 && (unwritten == 0 || now - a->answered_at_ms >= 1000)) {
		if (unwritten) log_info("drained unwritten=%" PRIu64 " hint=\"clients gone before their answer was written\"", unwritten);
		else log_info("drained; exiting");
		event_base_loopexit(a->base, NULL);
		return;
	}
	if (!a->aborted && now_ms(a) - a->drain_started_ms >= a->cfg->drain_timeout_ms) {
		log_warn("drain timeout waiters=%" PRIu64 " unwritten=%" PRIu64 " hint=\"answering the rest 503\"", left, unwritten);
		gw_reg_abort_pending(a->reg);
		a->aborted = true;
		a->drain_started_ms = now_ms(a) - a->cfg->drain_timeout_ms + 1000; /* one more second to write */
		return;
	}
	if (a->aborted && now_ms(a) - a->drain_started_ms >= a->cfg->drain_timeout_ms) {
		log_warn("exiting with answers unwritten unwritten=%" PRIu64, unwritten);
		event_base_loopexit(a->base, NULL);
	}
}

static void start_drain(app *a)
{
	struct timeval tick = {0, 10000};
	if (a->draining) {
		/* Cut the drain short but keep its promise: whoever still waits is answered now, and the loop runs
		 * on (at most a second more) so that the answers are written before the exit. Exiting the loop
		 * here would drop every answer not yet written, even those of the first signal's drain when both
		 * signals arrive in one turn of the loop. */
		int64_t cut = now_ms(a) - a->cfg->drain_timeout_ms + 1000;
		log_warn("second stop signal; answering the rest now and exiting within a second");
		if (!a->aborted) {
			gw_reg_abort_pending(a->reg);
			a->aborted = true;
		}
		if (a->drain_started_ms > cut) a->drain_started_ms = cut;
		return;
	}
	a->draining = true;
	a->drain_started_ms = now_ms(a);
	log_info("draining held=%" PRIu64, gw_reg_outstanding(a->reg));
	gw_server_stop_accepting(a->srv);
	gw_reg_drain(a->reg);
	a->drain_tick = event_new(a->base, -1, EV_PERSIST, on_drain_tick, a);
	if (a->drain_tick == NULL || event_add(a->drain_tick, &tick) != 0) event_base_loopexit(a->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	app *a = arg;
	(void)what;
	if (sig == SIGHUP) reload(a);
	else start_drain(a);
}

/* ---- main ---- */

static int check_config(const char *path)
{
	int nerr = 0;
	conf *c = conf_load(path, stderr, &nerr);
	if (c == NULL) {
		fprintf(stderr, "%s: %d error%s\n", path, nerr, nerr == 1 ? "" : "s");
		return 1;
	}
	printf("%s: configuration ok\n", path);
	conf_free(c);
	return 0;
}

static void app_free(app *a)
{
	if (a->drain_tick) event_free(a->drain_tick);
	if (a->sig_hup) event_free(a->sig_hup);
	if (a->sig_term) event_free(a->sig_term);
	if (a->sig_int) event_free(a->sig_int);
	gw_server_free(a->srv);
	gw_reg_free(a->reg);
	db_listen_free(a->listen);
	db_logical_free(a->logical);
	db_pool_free(a->pool);
	if (a->base) event_base_free(a->base);
	gw_shm_free(a->shm);
	conf_free(a->cfg);
	cm_log_close();
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 't'},
		{"print-config", no_argument, NULL, 'p'}, {"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	app a;
	bool check = false, print = false;
	int opt, nerr = 0;

	memset(&a, 0, sizeof a);
	while ((opt = getopt_long(argc, argv, "c:tVh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': a.conf_path = optarg; break;
		case 't': check = true; break;
		case 'p': print = true; break;
		case 'V': printf("pollgate %s\n", POLLGATE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pollgate: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	/* Without -c: the installed config, when there is one; else the built-in defaults (a checkout's
	 * ./pollgate runs as is). --check-config without -c checks the installed file, which must exist. */
	if (a.conf_path == NULL && (check || access(DEFAULT_CONF, F_OK) == 0)) a.conf_path = DEFAULT_CONF;
	else if (a.conf_path == NULL && !print) fprintf(stderr, "pollgate: no -c and no %s: built-in defaults\n", DEFAULT_CONF);
	if (check) return check_config(a.conf_path);
	a.cfg = a.conf_path ? conf_load(a.conf_path, stderr, &nerr) : conf_new_defaults();
	if (a.cfg == NULL) {
		if (a.conf_path) fprintf(stderr, "pollgate: %s: %d error%s; not starting\n", a.conf_path, nerr, nerr == 1 ? "" : "s");
		return 1;
	}
	if (print) {
		conf_dump(a.cfg, stdout);
		conf_free(a.cfg);
		return 0;
	}
	apply_logging(a.cfg);
	cm_log_hook_libevent();
	cm_hash_seed();
	signal(SIGPIPE, SIG_IGN);

	/* workers > 1: this process becomes the supervisor and returns here only in each forked worker;
	 * workers = 1: this process is the server, as it always was. */
	int nworkers = conf_workers(a.cfg);
	if (nworkers > 1) {
		gw_sup_opts so = {
			.conf_path = a.conf_path,
			.workers = nworkers,
			.snap_bytes = sizeof(gw_metrics_snap),
			.apply_logging = apply_logging,
		};
		int rc = gw_sup_run(&so, &a.cfg, &a.shm, &a.worker);
		if (rc != GW_SUP_WORKER) {
			app_free(&a);
			return rc;
		}
	}

	struct event_config *ec = event_config_new();
	if (ec) {
		event_config_require_features(ec, EV_FEATURE_EARLY_CLOSE);
		/* Coalesce epoll_ctl calls per fd within a loop iteration: answering a held request deletes
		 * our close watch and enables the write on the same fd, which becomes one call instead of two
		 * (safe here: pollgate never dup()s a socket). */
		event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	}
	a.base = ec ? event_base_new_with_config(ec) : NULL;
	if (ec) event_config_free(ec);
	if (a.base == NULL) {
		log_error("cannot create the event loop hint=\"needs epoll with EPOLLRDHUP (Linux)\"");
		app_free(&a);
		return 1;
	}

	db_pool_opts po = {
		.conninfo = a.cfg->database,
		.application_name = "pollgate",
		.size = a.cfg->db_pool_size,
		.connect_timeout_ms = a.cfg->db_connect_timeout_ms,
		.query_timeout_ms = a.cfg->db_query_timeout_ms,
		.reconnect_min_ms = a.cfg->db_reconnect_min_ms,
		.reconnect_max_ms = a.cfg->db_reconnect_max_ms,
		.on_change = on_pool_change,
		.arg = &a,
	};
	db_listen_opts lo = {
		.conninfo = a.cfg->database,
		.application_name = "pollgate-listen",
		.channels = channels,
		.n_channels = (int)(sizeof channels / sizeof channels[0]),
		.connect_timeout_ms = a.cfg->db_connect_timeout_ms,
		.reconnect_min_ms = a.cfg->db_reconnect_min_ms,
		.reconnect_max_ms = a.cfg->db_reconnect_max_ms,
		.heartbeat_ms = a.cfg->db_heartbeat_ms,
		.check_hints = true,
		.on_notify = on_notify,
		.on_up = on_listen_up,
		.on_down = on_listen_down,
		.on_fatal = on_listen_fatal,
		.arg = &a,
	};
	/* The hint source is one or the other (hint_source, read at start only): the same hooks either way. */
	db_logical_opts lgo = {
		.conninfo = a.cfg->database,
		.application_name = "pollgate-logical",
		.publication = "pollgate",
		.connect_timeout_ms = a.cfg->db_connect_timeout_ms,
		.reconnect_min_ms = a.cfg->db_reconnect_min_ms,
		.reconnect_max_ms = a.cfg->db_reconnect_max_ms,
		.heartbeat_ms = a.cfg->db_heartbeat_ms,
		.on_notify = on_notify,
		.on_resync = on_logical_resync,
		.on_up = on_listen_up,
		.on_down = on_listen_down,
		.on_fatal = on_logical_fatal,
		.arg = &a,
	};
	bool logical = strcmp(a.cfg->hint_source, "logical") == 0;
	gw_http_ctx_init(&a.out.http);
	if ((a.pool = a.out.pool = db_pool_new(a.base, &po)) == NULL || (a.reg = gw_reg_new(a.base, a.cfg, &a.out)) == NULL ||
	    (logical ? (a.logical = db_logical_new(a.base, &lgo)) == NULL : (a.listen = db_listen_new(a.base, &lo)) == NULL) ||
	    (a.srv = gw_server_new(a.base, a.cfg, a.reg, a.pool, a.listen, &a.out.http)) == NULL) {
		log_error("start-up failed reason=\"out of memory\"");
		app_free(&a);
		return 1;
	}
	gw_server_set_logical(a.srv, a.logical);
	if (a.shm) {
		gw_reg_set_shared(a.reg, a.shm, a.worker);
		if (gw_server_set_shared(a.srv, a.shm, a.worker) != 0) {
			log_error("start-up failed reason=\"out of memory\"");
			app_free(&a);
			return 1;
		}
	}
	if (gw_server_bind(a.srv) != 0) {
		app_free(&a);
		return 1;
	}
	a.sig_hup = evsignal_new(a.base, SIGHUP, on_signal, &a);
	a.sig_term = evsignal_new(a.base, SIGTERM, on_signal, &a);
	a.sig_int = evsignal_new(a.base, SIGINT, on_signal, &a);
	if (!a.sig_hup || !a.sig_term || !a.sig_int || evsignal_add(a.sig_hup, NULL) || evsignal_add(a.sig_term, NULL) ||
	    evsignal_add(a.sig_int, NULL)) {
		log_error("cannot install signal handlers");
		app_free(&a);
		return 1;
	}
	if (a.shm) {
		/* A worker: its own handlers are in; what the supervisor blocked around the fork arrives now. */
		sigset_t forked;
		sigemptyset(&forked);
		sigaddset(&forked, SIGCHLD);
		sigaddset(&forked, SIGHUP);
		sigaddset(&forked, SIGTERM);
		sigaddset(&forked, SIGINT);
		gw_shm_set_started(a.shm, a.worker);
		gw_server_publish_ready(a.srv);
		sigprocmask(SIG_UNBLOCK, &forked, NULL);
	}
	log_info("pollgate started version=%s listen=%s pool=%d hint_source=%s", POLLGATE_VERSION, a.cfg->listen,
	         a.cfg->db_pool_size, a.cfg->hint_source);
	event_base_dispatch(a.base);
	/* From here on a repeated stop signal must not kill the tear-down (libevent restores the default
	 * disposition as it frees its signal events): keep them pending until exit. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	sigprocmask(SIG_BLOCK, &stop, NULL);
	int code = a.exit_code;
	log_info("pollgate stopped exit=%d", code);
	app_free(&a);
	return code;
}
