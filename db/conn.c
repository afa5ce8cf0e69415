/*
 * db/conn.c — the connection helpers db/pool.c and db/listen.c share (see db/conn-internal.h).
 *
 * It owns how we open a libpq connection (keyword list, notice routing), how one PQconnectPoll step is
 * taken, how a non-persistent libevent event follows PQsocket(), how libpq's error text becomes one
 * line that is safe to log and to hand to callers, and the reconnect backoff with jitter. It owns no
 * connection: every function works on state its caller passes in and owns.
 */
#include "db/conn-internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

int db_conn_io_init(db_conn_io *io, struct event_base *base, event_callback_fn cb, void *arg)
{
	io->base = base;
	io->cb = cb;
	io->arg = arg;
	io->fd = -1;
	io->what = 0;
	/* A placeholder: the event is assigned to the real socket by db_conn_io_arm. */
	io->ev = event_new(base, -1, 0, cb, arg);
	return io->ev ? 0 : -1;
}

int db_conn_io_arm(db_conn_io *io, PGconn *pg, short what)
{
	evutil_socket_t fd = pg ? PQsocket(pg) : -1;
	if (fd < 0 || io->ev == NULL) return -1;
	if (fd == io->fd && what == io->what && event_pending(io->ev, EV_READ | EV_WRITE, NULL)) return 0;
	/* event_del also takes it off the active queue, so event_assign never touches a live event. */
	event_del(io->ev);
	if (event_assign(io->ev, io->base, fd, what, io->cb, io->arg) != 0) {
		io->fd = -1;
		return -1;
	}
	io->fd = fd;
	io->what = what;
	return event_add(io->ev, NULL) == 0 ? 0 : -1;
}

void db_conn_io_disarm(db_conn_io *io)
{
	if (io->ev) event_del(io->ev);
}

void db_conn_io_free(db_conn_io *io)
{
	if (io->ev) event_free(io->ev);
	io->ev = NULL;
	io->fd = -1;
	io->what = 0;
}

/* Server notices (and the FATAL a backend sends before it closes an idle connection) would otherwise go
 * to stderr through libpq's default processor. */
static void notice_receiver(void *arg, const PGresult *res)
{
	db_conn_tag *tag = arg;
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	bool fatal = sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0);
	int level = CM_LOG_DEBUG;
	char line[512];

	if (fatal) db_conn_first_line(tag->fatal, sizeof tag->fatal, PQresultErrorMessage(res));
	if (fatal || (sev && (strcmp(sev, "WARNING") == 0 || strcmp(sev, "ERROR") == 0))) level = CM_LOG_WARN;
	if (!CM_LOG_ENABLED(level)) return;
	db_conn_first_line(line, sizeof line, PQresultErrorMessage(res));
	db_conn_log_safe(line);
	cm_log_write(level, NULL, "postgres notice who=%s conn=%d detail=%s", tag->who, tag->id, CM_Q(line));
}

/* libpq's parse errors quote pieces of the connection string, which may hold a password: keep the text
 * outside quotes, replace what is inside with "...". */
static void redact_quoted(char *out, size_t cap, const char *in)
{
	bool quoted = false;
	size_t w = 0;
	if (cap == 0) return;
	for (const char *r = in; *r && w + 5 < cap; r++) {
		if (*r == '"') {
			quoted = !quoted;
			out[w++] = '"';
			if (quoted) {
				memcpy(out + w, "...", 3);
				w += 3;
			}
		} else if (!quoted) {
			out[w++] = *r;
		}
	}
	out[w] = '\0';
}

/* `replication` ("database" or NULL) goes after dbname, so it wins over one in the conninfo. */
static PGconn *conn_start(const char *conninfo, const char *application_name, const char *replication,
                          db_conn_tag *tag, char *why, size_t cap)
{
	const char *keys[10];
	const char *vals[10];
	int n = 0;
	PGconn *pg = NULL;

	keys[n] = "keepalives", vals[n++] = "1";
	keys[n] = "keepalives_idle", vals[n++] = "10";
	keys[n] = "keepalives_interval", vals[n++] = "5";
	keys[n] = "keepalives_count", vals[n++] = "3";
	keys[n] = "tcp_user_timeout", vals[n++] = "30000";
	keys[n] = "dbname", vals[n++] = conninfo ? conninfo : "";
	if (application_name && application_name[0]) keys[n] = "application_name", vals[n++] = application_name;
	if (replication) keys[n] = "replication", vals[n++] = replication;
	keys[n] = NULL, vals[n] = NULL;
	tag->fatal[0] = '\0';

	pg = PQconnectStartParams(keys, vals, 1);
	if (pg == NULL) {
		snprintf(why, cap, "out of memory");
		goto err;
	}
	if (PQstatus(pg) == CONNECTION_BAD) {
		/* Failed before any network step: a malformed conninfo, nearly always. */
		char line[256];
		db_conn_error(line, sizeof line, pg, NULL);
		redact_quoted(why, cap, line);
		goto err;
	}
	PQsetNoticeReceiver(pg, notice_receiver, tag);
	return pg;

err:
	if (pg) PQfinish(pg);
	return NULL;
}

PGconn *db_conn_start(const char *conninfo, const char *application_name, db_conn_tag *tag, char *why,
                      size_t cap)
{
	return conn_start(conninfo, application_name, NULL, tag, why, cap);
}

PGconn *db_conn_start_replication(const char *conninfo, const char *application_name, db_conn_tag *tag, char *why,
                                  size_t cap)
{
	return conn_start(conninfo, application_name, "database", tag, why, cap);
}

int db_conn_poll(PGconn *pg, short *want)
{
	switch (PQconnectPoll(pg)) {
	case PGRES_POLLING_READING:
		*want = EV_READ;
		return 0;
	case PGRES_POLLING_WRITING:
		*want = EV_WRITE;
		return 0;
	case PGRES_POLLING_OK:
		return PQsetnonblocking(pg, 1) == 0 ? 1 : -1;
	case PGRES_POLLING_FAILED:
	default:
		return -1;
	}
}

void db_conn_first_line(char *out, size_t cap, const char *msg)
{
	const char *p = msg ? msg : "";
	if (cap == 0) return;
	/* Skip leading blank lines and spaces, then take up to the end of that line. */
	while (*p && isspace((unsigned char)*p)) p++;
	size_t len = strcspn(p, "\r\n");
	while (len > 0 && isspace((unsigned char)p[len - 1])) len--;
	if (len == 0) {
		snprintf(out, cap, "unknown error");
		return;
	}
	if (len >= cap) len = cap - 1;
	memcpy(out, p, len);
	out[len] = '\0';
}

void db_conn_error(char *out, size_t cap, const PGconn *pg, const db_conn_tag *tag)
{
	if (tag && tag->fatal[0]) snprintf(out, cap, "%s", tag->fatal);
	else db_conn_first_line(out, cap, pg ? PQerrorMessage(pg) : NULL);
}

void db_conn_result_error(char *out, size_t cap, const PGresult *res)
{
	if (res == NULL) {
		snprintf(out, cap, "no result");
		return;
	}
	ExecStatusType st = PQresultStatus(res);
	const char *msg = PQresultErrorMessage(res);
	if (msg && msg[0]) {
		db_conn_first_line(out, cap, msg);
		return;
	}
	if (st == PGRES_EMPTY_QUERY) snprintf(out, cap, "empty query");
	else snprintf(out, cap, "unexpected result status %s", PQresStatus(st));
}

void db_conn_log_safe(char *s)
{
	for (; *s; s++) {
		if (*s == '"') *s = '\'';
		else if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = ' ';
	}
}

uint64_t db_conn_rng_seed(const void *salt)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)salt ^
	             ((uint64_t)getpid() << 40);
	return s ? s : 0x9e3779b97f4a7c15u;
}

/* xorshift64*: plenty for spreading reconnects, no syscalls, no shared state. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

int64_t db_conn_backoff_ms(uint64_t *rng, int64_t min_ms, int64_t max_ms, unsigned attempt)
{
	if (min_ms < 1) min_ms = 1;
	if (max_ms < min_ms) max_ms = min_ms;
	int64_t d = min_ms;
	for (unsigned i = 0; i < attempt && d < max_ms; i++) d = (d > max_ms / 2) ? max_ms : d * 2;
	if (d > max_ms) d = max_ms;
	int64_t lo = d / 2;
	return lo + (int64_t)(rng_next(rng) % (uint64_t)(d - lo + 1));
}

int db_conn_timer_ms(struct event *timer, int64_t ms)
{
	if (ms < 0) ms = 0;
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)((ms % 1000) * 1000)};
	return evtimer_add(timer, &tv) == 0 ? 0 : -1;
}
