/*
 * tests/unit/gateway/test_supervisor.c — the supervisor (gateway/supervisor.c), run for real: gw_sup_run in a
 * forked process with workers that are this file's own.
 *
 * Owns what the supervisor decides: a stop signal is forwarded once to every worker, as the signal it
 * was, and the supervisor exits 0 when all stopped cleanly, 1 when one did not; a worker killed young is
 * restarted after a delay that doubles (100, 200, 400 ms ...) and every restart is counted in the shared
 * segment; a worker that exits with a status stops the whole server (exit 1) and is not restarted; a
 * reload with a bad file is refused once, in the supervisor, with the old config kept and no worker told,
 * while a good one becomes the supervisor's config and reaches every worker as SIGHUP; each worker is
 * in a process group of its own.
 *
 * No seam: the workers are what gw_sup_run returns as GW_SUP_WORKER, here small loops that report what
 * they see ("start", "hup", "term" lines) on one pipe and act out a scenario. The test reads the pipe,
 * so every step waits for an event, never for a time; the only timing asserted is a lower bound (a
 * restart never comes before its delay).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "gateway/config.h"
#include "gateway/metrics.h"
#include "gateway/shared.h"
#include "gateway/supervisor.h"

#define WAIT_MS 20000 /* the longest one step (a report, or all of them to the end) may take: generous */

typedef enum {
	MODE_WAIT,       /* every worker waits for signals; TERM/INT: exit 0 */
	MODE_CRASH0,     /* worker 0 is killed (SIGKILL) as soon as it starts, 4 times; then it waits */
	MODE_FATAL0,     /* worker 0 exits with status 3 as soon as it starts; the others wait */
	MODE_DIRTY_STOP, /* worker 0 exits with status 2 when told to stop; the others wait */
} sup_mode;

static int report_fd = -1;
static sup_mode mode;
/* The supervisor of the test running now, killed by the teardown if the test failed half way (its
 * workers follow: their parent-death signal). */
static pid_t running_sup = -1;

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One line on the pipe: a single write, under PIPE_BUF, so lines from many processes never interleave. */
static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
	char line[128];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n > 0 && write(report_fd, line, (size_t)n) != n) _exit(90);
}

/* ---- the processes under test ---- */

static void worker_main(int wi, gw_shm *shm)
{
	sigset_t set;
	int sig;

	report("start %d %d %d %lld %llu\n", wi, (int)getpid(), (int)getpgid(0), (long long)mono_ms(),
	       (unsigned long long)gw_shm_restarts(shm));
	if (wi == 0 && mode == MODE_CRASH0 && gw_shm_restarts(shm) < 4) raise(SIGKILL);
	if (wi == 0 && mode == MODE_FATAL0) _exit(3);
	/* the stop and reload signals are still blocked (supervisor.h): wait for them synchronously */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	for (;;) {
		if (sigwait(&set, &sig) != 0) _exit(91);
		if (sig == SIGHUP) {
			report("hup %d\n", wi);
			continue;
		}
		report("term %d %d\n", wi, sig);
		_exit(wi == 0 && mode == MODE_DIRTY_STOP ? 2 : 0);
	}
}

static void note_logging(const conf *c)
{
	cm_log_configure(CM_LOG_ERROR, CM_LOG_LOGFMT); /* keep the test's output readable */
	report("apply %lld\n", (long long)c->max_waiters);
}

/* The supervisor's process: gw_sup_run, then "exit RC" (or a worker's life). Never returns. */
static void supervisor_main(const char *path, int workers)
{
	int nerr = 0;
	conf *cfg = conf_load(path, stderr, &nerr);
	gw_shm *shm = NULL;
	int wi = -1;

	if (cfg == NULL) _exit(92);
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test that died takes its supervisor along */
	if (getppid() == 1) _exit(94);
	cm_log_configure(CM_LOG_ERROR, CM_LOG_LOGFMT);
	gw_sup_opts o = {.conf_path = path, .workers = workers, .snap_bytes = sizeof(gw_metrics_snap),
	                 .apply_logging = note_logging};
	int rc = gw_sup_run(&o, &cfg, &shm, &wi);
	if (rc == GW_SUP_WORKER) {
		worker_main(wi, shm);
		_exit(93);
	}
	report("exit %d %lld\n", rc, (long long)cfg->max_waiters);
	conf_free(cfg);
	_exit(rc == 0 ? 0 : 10 + rc);
}

/* ---- the test's side ---- */

typedef struct sup_run {
	char path[64];
	int held_fd; /* the listen address: bound here too (SO_REUSEPORT), so the port stays ours */
	int port;
	int rfd;
	pid_t pid;
	char buf[8192];
	size_t len;
} sup_run;

static void write_conf(sup_run *r, const char *extra)
{
	FILE *f = fopen(r->path, "w");
	assert_non_null(f);
	fprintf(f, "listen = 127.0.0.1:%d\nlog_level = error\n%s", r->port, extra);
	assert_int_equal(fclose(f), 0);
}

static sup_run *sup_start(sup_mode m, int workers)
{
	sup_run *r = calloc(1, sizeof *r);
	int pfd[2], one = 1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;

	assert_non_null(r);
	r->held_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(r->held_fd >= 0);
	assert_int_equal(setsockopt(r->held_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
	assert_int_equal(setsockopt(r->held_fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
	assert_int_equal(bind(r->held_fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(r->held_fd, (struct sockaddr *)&sa, &sl), 0);
	r->port = ntohs(sa.sin_port);
	snprintf(r->path, sizeof r->path, "/tmp/pollgate-sup-XXXXXX");
	int fd = mkstemp(r->path);
	assert_true(fd >= 0);
	close(fd);
	write_conf(r, "max_waiters = 1000\n");
	assert_int_equal(pipe(pfd), 0);
	fflush(NULL);
	r->pid = fork();
	assert_true(r->pid >= 0);
	if (r->pid == 0) {
		close(pfd[0]);
		close(r->held_fd);
		report_fd = pfd[1];
		mode = m;
		supervisor_main(r->path, workers);
	}
	close(pfd[1]);
	r->rfd = pfd[0];
	running_sup = r->pid;
	return r;
}


static int kill_leftover(void **state)
{
	(void)state;
	if (running_sup > 0) {
		kill(running_sup, SIGKILL);
		waitpid(running_sup, NULL, 0);
		running_sup = -1;
	}
	return 0;
}

/* The next line from any process, waiting until `deadline` at most; NULL at end of file (every process
 * gone). */
static const char *next_line(sup_run *r, char *line, size_t cap, int64_t deadline)
{
	for (;;) {
		char *nl = memchr(r->buf, '\n', r->len);
		if (nl) {
			size_t n = (size_t)(nl - r->buf);
			assert_true(n < cap);
			memcpy(line, r->buf, n);
			line[n] = '\0';
			memmove(r->buf, nl + 1, r->len - n - 1);
			r->len -= n + 1;
			return line;
		}
		int64_t left = deadline - mono_ms();
		if (left <= 0) fail_msg("no end to this step within %d ms (have '%.*s')", WAIT_MS, (int)r->len, r->buf);
		struct pollfd p = {.fd = r->rfd, .events = POLLIN};
		int pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno == EINTR) continue;
		assert_true(pr >= 0);
		if (pr == 0) continue;
		assert_true(r->len < sizeof r->buf);
		ssize_t got = read(r->rfd, r->buf + r->len, sizeof r->buf - r->len);
		assert_true(got >= 0);
		if (got == 0) {
			if (r->len) fail_msg("a partial report at end of file: '%.*s'", (int)r->len, r->buf);
			return NULL;
		}
		r->len += (size_t)got;
	}
}

/* Wait for a line that begins with `prefix` (lines before it are handed to `other`, if given). */
static const char *expect(sup_run *r, const char *prefix, char *line, size_t cap, void (*other)(const char *, void *),
                          void *arg)
{
	int64_t deadline = mono_ms() + WAIT_MS;
	while (next_line(r, line, cap, deadline) != NULL) {
		if (strncmp(line, prefix, strlen(prefix)) == 0) return line;
		if (other) other(line, arg);
	}
	fail_msg("end of reports without '%s'", prefix);
	return NULL;
}

typedef struct tally {
	int starts[8], hups[8], terms[8], term_sig[8];
	int exit_rc, exits;
	long long exit_max_waiters;
	pid_t worker_pid[8];
} tally;

static void count_line(const char *l, void *arg)
{
	tally *t = arg;
	int wi, pid, pgid, sig, rc;
	long long ms, mw;
	unsigned long long restarts;
	if (sscanf(l, "start %d %d %d %lld %llu", &wi, &pid, &pgid, &ms, &restarts) == 5) {
		assert_true(wi >= 0 && wi < 8);
		t->starts[wi]++;
		t->worker_pid[wi] = pid;
		if (pgid != pid) fail_msg("worker %d (pid %d) is in process group %d, not its own", wi, pid, pgid);
	} else if (sscanf(l, "hup %d", &wi) == 1) {
		t->hups[wi]++;
	} else if (sscanf(l, "term %d %d", &wi, &sig) == 2) {
		t->terms[wi]++;
		t->term_sig[wi] = sig;
	} else if (sscanf(l, "exit %d %lld", &rc, &mw) == 2) {
		t->exits++;
		t->exit_rc = rc;
		t->exit_max_waiters = mw;
	} else if (strncmp(l, "apply ", 6) != 0) {
		fail_msg("unexpected report '%s'", l);
	}
}

/* Until every process has gone (end of file), counting; then the supervisor's exit status. */
static int drain(sup_run *r, tally *t)
{
	char line[128];
	int st;
	int64_t deadline = mono_ms() + WAIT_MS;
	while (next_line(r, line, sizeof line, deadline) != NULL) count_line(line, t);
	assert_int_equal(waitpid(r->pid, &st, 0), r->pid);
	running_sup = -1;
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void sup_done(sup_run *r)
{
	close(r->rfd);
	close(r->held_fd);
	unlink(r->path);
	free(r);
}

/* Wait until n workers have reported their start (the supervisor's handlers are in by then). */
static void await_starts(sup_run *r, tally *t, int n)
{
	char line[128];
	int seen = 0;
	while (seen < n) {
		expect(r, "start ", line, sizeof line, count_line, t);
		count_line(line, t);
		seen++;
	}
}

static void test_a_stop_signal_reaches_every_worker_once_as_itself(void **state)
{
	static const int sigs[] = {SIGTERM, SIGINT};
	(void)state;

	for (size_t i = 0; i < 2; i++) {
		tally t;
		memset(&t, 0, sizeof t);
		sup_run *r = sup_start(MODE_WAIT, 3);
		await_starts(r, &t, 3);
		assert_int_equal(kill(r->pid, sigs[i]), 0);
		assert_int_equal(drain(r, &t), 0);
		assert_int_equal(t.exits, 1);
		assert_int_equal(t.exit_rc, 0);
		for (int w = 0; w < 3; w++) {
			if (t.starts[w] != 1 || t.terms[w] != 1 || t.term_sig[w] != sigs[i])
				fail_msg("signal %d: worker %d started %d times, told to stop %d times with %d", sigs[i], w, t.starts[w],
				         t.terms[w], t.term_sig[w]);
		}
		sup_done(r);
	}
}

static void test_a_worker_that_stops_uncleanly_makes_the_exit_1(void **state)
{
	tally t;
	(void)state;
	memset(&t, 0, sizeof t);
	sup_run *r = sup_start(MODE_DIRTY_STOP, 2);
	await_starts(r, &t, 2);
	assert_int_equal(kill(r->pid, SIGTERM), 0);
	assert_int_equal(drain(r, &t), 11);
	assert_int_equal(t.exit_rc, 1);
	assert_int_equal(t.terms[0], 1);
	assert_int_equal(t.terms[1], 1);
	sup_done(r);
}

/* Killed young, again and again: restarted each time, the delay doubling from 100 ms, each restart
 * counted before the new worker starts. */
static void test_a_worker_killed_young_restarts_with_a_doubling_delay(void **state)
{
	static const int64_t min_gap[] = {100, 200, 400, 800};
	int64_t at[5];
	unsigned long long restarts[5];
	char line[128];
	tally t;
	(void)state;

	memset(&t, 0, sizeof t);
	sup_run *r = sup_start(MODE_CRASH0, 2);
	for (int n = 0; n < 5;) {
		int wi, pid, pgid;
		long long ms;
		unsigned long long rs;
		expect(r, "start ", line, sizeof line, count_line, &t);
		count_line(line, &t);
		assert_int_equal(sscanf(line, "start %d %d %d %lld %llu", &wi, &pid, &pgid, &ms, &rs), 5);
		if (wi != 0) continue;
		at[n] = ms;
		restarts[n] = rs;
		n++;
	}
	for (int n = 1; n < 5; n++) {
		if (at[n] - at[n - 1] < min_gap[n - 1])
			fail_msg("restart %d came %lld ms after the start before it, want at least %lld", n,
			         (long long)(at[n] - at[n - 1]), (long long)min_gap[n - 1]);
		if (restarts[n] != restarts[n - 1] + 1)
			fail_msg("restart %d: the count went from %llu to %llu", n, restarts[n - 1], restarts[n]);
	}
	assert_int_equal(restarts[0], 0);
	/* its fifth life lasts: both stop cleanly, and worker 1 was never restarted */
	assert_int_equal(kill(r->pid, SIGTERM), 0);
	assert_int_equal(drain(r, &t), 0);
	assert_int_equal(t.terms[0], 1);
	assert_int_equal(t.terms[1], 1);
	assert_int_equal(t.starts[0], 5);
	assert_int_equal(t.starts[1], 1);
	sup_done(r);
}

/* A worker that exits with a status met something a restart would meet again: the server stops. */
static void test_a_worker_exiting_with_a_status_stops_the_server(void **state)
{
	tally t;
	(void)state;
	memset(&t, 0, sizeof t);
	sup_run *r = sup_start(MODE_FATAL0, 2);
	assert_int_equal(drain(r, &t), 11);
	assert_int_equal(t.exit_rc, 1);
	assert_int_equal(t.starts[0], 1); /* not restarted */
	assert_int_equal(t.starts[1], 1);
	assert_int_equal(t.terms[1], 1); /* told to stop */
	assert_int_equal(t.term_sig[1], SIGTERM);
	sup_done(r);
}

/* SIGHUP: a bad file is refused in the supervisor, once, and no worker hears of it; a good file becomes
 * the supervisor's config and every worker gets SIGHUP exactly once. */
static void test_reload_refuses_a_bad_file_once_and_forwards_a_good_one(void **state)
{
	char line[128];
	tally t;
	(void)state;

	memset(&t, 0, sizeof t);
	sup_run *r = sup_start(MODE_WAIT, 3);
	await_starts(r, &t, 3);

	write_conf(r, "max_waiters = lots\n");
	assert_int_equal(kill(r->pid, SIGHUP), 0);
	expect(r, "apply ", line, sizeof line, count_line, &t);
	assert_string_equal(line, "apply 1000"); /* the old config, kept */

	write_conf(r, "max_waiters = 2000\n");
	assert_int_equal(kill(r->pid, SIGHUP), 0);
	expect(r, "apply ", line, sizeof line, count_line, &t);
	assert_string_equal(line, "apply 2000");

	assert_int_equal(kill(r->pid, SIGTERM), 0);
	assert_int_equal(drain(r, &t), 0);
	assert_int_equal(t.exit_max_waiters, 2000); /* the supervisor's config is the new one */
	for (int w = 0; w < 3; w++)
		if (t.hups[w] != 1) fail_msg("worker %d got SIGHUP %d times, want once (for the good file only)", w, t.hups[w]);
	sup_done(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_a_stop_signal_reaches_every_worker_once_as_itself, kill_leftover),
		cmocka_unit_test_teardown(test_a_worker_that_stops_uncleanly_makes_the_exit_1, kill_leftover),
		cmocka_unit_test_teardown(test_a_worker_killed_young_restarts_with_a_doubling_delay, kill_leftover),
		cmocka_unit_test_teardown(test_a_worker_exiting_with_a_status_stops_the_server, kill_leftover),
		cmocka_unit_test_teardown(test_reload_refuses_a_bad_file_once_and_forwards_a_good_one, kill_leftover),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
