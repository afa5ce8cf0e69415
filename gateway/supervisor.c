/*
 * gateway/supervisor.c — see supervisor.h.
 *
 * Signals reach the supervisor through its event loop (evsignal), like everywhere else. Around every
 * fork the stop, reload and child signals are blocked, so a signal meant for a worker that is still
 * leaving the supervisor's loop behind can never run the supervisor's handler in the child; the worker
 * unblocks them once its own handlers are in (gateway/main.c), and what arrived meanwhile is delivered
 * then. The child leaves the supervisor's loop with event_reinit() (which gives it a backend of its own
 * without touching the epoll instance it shares with the parent) and frees it.
 *
 * The address is reserved before the first fork by a socket bound with SO_REUSEPORT that never listens:
 * it refuses a start on an address in use with one clear error, and keeps the port the server's while a
 * worker is being replaced. Connections only go to listening sockets, so it takes none.
 *
 * Workers die with the supervisor: PR_SET_PDEATHSIG (SIGTERM: they drain), and a getppid() check for a
 * supervisor that died before the prctl. Each worker is in its own process group, so a terminal's ^C
 * reaches the supervisor alone, which forwards it once.
 */
#include "gateway/supervisor.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/util.h>

#include "common/clock.h"
#include "common/log.h"
#include "gateway/metrics.h"

#define RESTART_MIN_MS 100   /* first delay after a worker that died young */
#define RESTART_MAX_MS 10000 /* cap of the doubling delay */
#define YOUNG_MS 10000       /* a worker that dies sooner than this after its start died young */

typedef struct gw_sup gw_sup;

typedef struct worker_slot {
	gw_sup *sup;
	int index;
	pid_t pid;            /* 0: not running */
	int64_t started_ms;
	int64_t delay_ms;     /* the next restart's delay when it dies young */
	struct event *restart_ev;
} worker_slot;

struct gw_sup {
	const gw_sup_opts *o;
	conf **cfg;
	gw_shm *shm;
	struct event_base *base;
	struct event *sig_chld, *sig_hup, *sig_term, *sig_int;
	int reserve_fd;
	bool stopping;
	int stop_signal;
	int exit_code;
	int alive;
	int child; /* in a forked worker: its index; else -1 */
	worker_slot *w;
};

static sigset_t handled_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	return set;
}

/* ---- the reserved address ---- */

static int reserve_address(const conf *c)
{
	struct addrinfo hints, *ai = NULL;
	char port[8];
	int fd = -1, one = 1;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
	snprintf(port, sizeof port, "%d", c->listen_port);
	int err = getaddrinfo(c->listen_host, port, &hints, &ai);
	if (err != 0 || ai == NULL) {
		log_error("cannot resolve listen address listen=%s error=%s", c->listen, CM_Q(gai_strerror(err)));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		log_error("cannot listen listen=%s error=%s hint=\"address in use, or not an address of this host\"", c->listen,
		          CM_Q(strerror(errno)));
		if (fd >= 0) close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* ---- workers ---- */

static void log_exit(const worker_slot *ws, pid_t pid, int status, int64_t lived_ms)
{
	if (WIFEXITED(status))
		log_info("worker exited worker=%d pid=%d status=%d lived_ms=%" PRId64, ws->index, (int)pid,
		         WEXITSTATUS(status), lived_ms);
	else if (WIFSIGNALED(status))
		log_warn("worker killed worker=%d pid=%d signal=%d signal_name=%s lived_ms=%" PRId64, ws->index, (int)pid,
		         WTERMSIG(status), CM_Q(strsignal(WTERMSIG(status))), lived_ms);
}

/* The child's side of a fork: leave the supervisor behind. Signals are still blocked. */
static void become_worker(gw_sup *s, int i)
{
	pid_t sup = gw_shm_supervisor(s->shm);
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != sup) raise(SIGTERM); /* the supervisor is already gone: stop at once (once unblocked) */
	(void)setpgid(0, 0);
	s->child = i;
	char field[32];
	snprintf(field, sizeof field, "worker=%d", i);
	cm_log_set_process(field);
}

/* Fork worker i. Returns 0 in the supervisor (the worker runs, or its restart is scheduled), 1 in the new
 * worker. */
static int spawn(gw_sup *s, int i)
{
	worker_slot *ws = &s->w[i];
	sigset_t set = handled_signals(), old;
	sigprocmask(SIG_BLOCK, &set, &old);
	pid_t pid = fork();
	if (pid == 0) {
		become_worker(s, i);
		return 1;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		log_error("cannot start a worker worker=%d error=%s", i, CM_Q(strerror(errno)));
		struct timeval tv = {RESTART_MAX_MS / 1000, 0};
		evtimer_add(ws->restart_ev, &tv);
		return 0;
	}
	ws->pid = pid;
	ws->started_ms = cm_mono_ms();
	gw_shm_set_pid(s->shm, i, pid);
	s->alive++;
	log_info("worker started worker=%d pid=%d", i, (int)pid);
	return 0;
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
	worker_slot *ws = arg;
	gw_sup *s = ws->sup;
	(void)fd;
	(void)what;
	if (s->stopping || ws->pid != 0) return;
	gw_shm_count_restart(s->shm);
	if (spawn(s, ws->index) == 1) event_base_loopbreak(s->base); /* the new worker leaves this loop */
}

static void signal_all(gw_sup *s, int sig)
{
	for (int i = 0; i < s->o->workers; i++)
		if (s->w[i].pid > 0) kill(s->w[i].pid, sig);
}

/* Stop: no more restarts, and `sig` to every worker running. */
static void stop_all(gw_sup *s, int sig)
{
	for (int i = 0; i < s->o->workers; i++)
		if (s->w[i].restart_ev) evtimer_del(s->w[i].restart_ev);
	signal_all(s, sig);
}

static void reap(gw_sup *s)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		worker_slot *ws = NULL;
		for (int i = 0; i < s->o->workers; i++)
			if (s->w[i].pid == pid) ws = &s->w[i];
		if (ws == NULL) continue;
		int64_t lived = cm_mono_ms() - ws->started_ms;
		bool started = gw_shm_worker_started(s->shm, ws->index);
		log_exit(ws, pid, status, lived);
		/* Its places in the caps, readiness and figures: the counters are kept (retired) for /metrics. */
		gw_metrics_retire(s->shm, ws->index);
		gw_shm_worker_reset(s->shm, ws->index);
		ws->pid = 0;
		s->alive--;
		bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
		if (s->stopping) {
			if (!clean) s->exit_code = 1;
			continue;
		}
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
			/* A worker stops itself with a status only for what another try would meet again: it could not
			 * start (the address, the event loop) or the database cannot serve LISTEN (a hot standby). The
			 * server stops as the single process would; crashes and kills (signals) are restarted. */
			log_error("a worker stopped on a fatal error; stopping the server worker=%d started=%s", ws->index,
			          started ? "yes" : "no");
			s->stopping = true;
			s->exit_code = 1;
			stop_all(s, SIGTERM);
			continue;
		}
		int64_t delay = 0;
		if (lived < YOUNG_MS) {
			delay = ws->delay_ms ? ws->delay_ms : RESTART_MIN_MS;
			ws->delay_ms = delay * 2 > RESTART_MAX_MS ? RESTART_MAX_MS : delay * 2;
		} else {
			ws->delay_ms = 0;
		}
		log_warn("restarting worker worker=%d delay_ms=%" PRId64, ws->index, delay);
		struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
		evtimer_add(ws->restart_ev, &tv);
	}
	if (s->stopping && s->alive == 0) event_base_loopexit(s->base, NULL);
}

/* ---- signals ---- */

static void report_static(const char *key, void *arg)
{
	(void)arg;
	log_warn("config key changed but needs a restart key=%s", key);
}

static void reload(gw_sup *s)
{
	char *errs = NULL;
	size_t errlen = 0;
	int nerr = 0;

	if (s->o->conf_path == NULL) {
		log_info("reload requested; running on built-in defaults, nothing to reload");
		s->o->apply_logging(*s->cfg);
		signal_all(s, SIGHUP); /* the workers reopen their logs */
		return;
	}
	FILE *ef = open_memstream(&errs, &errlen);
	conf *fresh = conf_load(s->o->conf_path, ef, &nerr);
	if (ef) fclose(ef);
	if (fresh == NULL) {
		/* Refused here, once: no worker is told, so every worker keeps the config it has. */
		char *save = NULL;
		for (char *line = errs ? strtok_r(errs, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save))
			log_error("config rejected error=%s", CM_Q(line));
		log_error("reload failed errors=%d path=%s hint=\"old config kept by every worker\"", nerr,
		          CM_Q(s->o->conf_path));
		free(errs);
		s->o->apply_logging(*s->cfg);
		return;
	}
	free(errs);
	conf_keep_static(fresh, *s->cfg, report_static, s);
	conf_free(*s->cfg);
	*s->cfg = fresh;
	s->o->apply_logging(fresh);
	log_info("config checked; reloading every worker path=%s workers=%d", CM_Q(s->o->conf_path), s->alive);
	signal_all(s, SIGHUP);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	gw_sup *s = arg;
	(void)what;
	if (sig == SIGCHLD) {
		reap(s);
	} else if (sig == SIGHUP) {
		if (!s->stopping) reload(s);
	} else {
		if (s->stopping && s->stop_signal != 0) log_warn("second stop signal; the workers stop now");
		else log_info("stopping; every worker drains workers=%d", s->alive);
		s->stopping = true;
		s->stop_signal = (int)sig;
		stop_all(s, (int)sig);
		if (s->alive == 0) event_base_loopexit(s->base, NULL);
	}
}

/* ---- life cycle ---- */

static void sup_free(gw_sup *s, bool in_child)
{
	if (s->base && in_child && event_reinit(s->base) != 0) log_warn("cannot reinitialise the event loop in a worker");
	if (s->w)
		for (int i = 0; i < s->o->workers; i++)
			if (s->w[i].restart_ev) event_free(s->w[i].restart_ev);
	if (s->sig_chld) event_free(s->sig_chld);
	if (s->sig_hup) event_free(s->sig_hup);
	if (s->sig_term) event_free(s->sig_term);
	if (s->sig_int) event_free(s->sig_int);
	if (s->base) event_base_free(s->base);
	if (s->reserve_fd >= 0) close(s->reserve_fd);
	free(s->w);
	if (!in_child) gw_shm_free(s->shm);
}

int gw_sup_run(const gw_sup_opts *o, conf **cfg, gw_shm **shm, int *wi)
{
	gw_sup s;
	int rc = 1;
	memset(&s, 0, sizeof s);
	s.o = o;
	s.cfg = cfg;
	s.reserve_fd = -1;
	s.child = -1;

	if ((s.shm = gw_shm_new(o->workers, o->snap_bytes)) == NULL) goto out;
	gw_shm_set_supervisor(s.shm, getpid());
	cm_log_set_process("role=supervisor");
	if ((s.reserve_fd = reserve_address(*cfg)) < 0) goto out;
	if ((s.base = event_base_new()) == NULL || (s.w = calloc((size_t)o->workers, sizeof *s.w)) == NULL) {
		log_error("supervisor start-up failed reason=\"out of memory\"");
		goto out;
	}
	for (int i = 0; i < o->workers; i++) {
		s.w[i].sup = &s;
		s.w[i].index = i;
		if ((s.w[i].restart_ev = evtimer_new(s.base, on_restart, &s.w[i])) == NULL) goto out;
	}
	s.sig_chld = evsignal_new(s.base, SIGCHLD, on_signal, &s);
	s.sig_hup = evsignal_new(s.base, SIGHUP, on_signal, &s);
	s.sig_term = evsignal_new(s.base, SIGTERM, on_signal, &s);
	s.sig_int = evsignal_new(s.base, SIGINT, on_signal, &s);
	if (!s.sig_chld || !s.sig_hup || !s.sig_term || !s.sig_int || evsignal_add(s.sig_chld, NULL) ||
	    evsignal_add(s.sig_hup, NULL) || evsignal_add(s.sig_term, NULL) || evsignal_add(s.sig_int, NULL)) {
		log_error("cannot install signal handlers");
		goto out;
	}
	log_info("supervisor started workers=%d listen=%s pool_per_worker=%d", o->workers, (*cfg)->listen,
	         (*cfg)->db_pool_size);
	for (int i = 0; i < o->workers && s.child < 0; i++)
		if (spawn(&s, i) == 1) break;
	if (s.child < 0) {
		event_base_dispatch(s.base);
		if (s.child < 0) {
			rc = s.exit_code;
			log_info("supervisor stopped exit=%d restarts=%" PRIu64, rc, gw_shm_restarts(s.shm));
		}
	}
out:
	if (s.child >= 0) {
		/* a worker: keep the shared memory, drop the rest */
		*shm = s.shm;
		*wi = s.child;
		sup_free(&s, true);
		return GW_SUP_WORKER;
	}
	if (s.w) stop_all(&s, SIGKILL); /* only when start-up failed half way: nothing may outlive us */
	sup_free(&s, false);
	return rc;
}
