/*
 * db/logical-visible.c — the visibility check of the logical hint source, on its ordinary connection
 * (application_name + "-check", opened and owned by db/logical.c; state in db/logical-internal.h).
 *
 * The stream may hand over a commit a moment before other sessions can see it; a re-read in that moment
 * would miss the change and the hint would be spent. So the hints of received commits wait (l->pend)
 * until SQL_VISIBLE, asked about their xids (then l->chk), says a new snapshot sees them all; then they
 * are handed over (db_lg_bucket_deliver). Not yet: asked again after 1 ms doubling to VIS_DELAY_MAX_MS.
 * One check is in flight at a time; the commits that arrive meanwhile go with the next one.
 */
#include "db/logical-internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#define VIS_DELAY_MAX_MS 50   /* re-check a not-yet-visible commit at most this far apart */
#define VIS_PACE_MS 2         /* after a check, the next one waits this long, gathering the commits between */

/* Is every transaction in $1 (32-bit xids of commits the stream has sent) visible to a snapshot taken
 * now? The stream may hand over a commit as soon as its WAL is flushed, a moment before the committing
 * session makes it visible to others; a re-read in that moment would miss the change and the hint would be
 * spent. Visible = it precedes the snapshot's xmax (modulo 2^32) and is not in its in-progress list. A
 * snapshot taken later (the re-read's) sees at least as much. */
static const char SQL_VISIBLE[] =
	"SELECT coalesce(bool_and(((u.x - e.xmax32 + 4294967296) % 4294967296) >= 2147483648"
	" AND u.x <> ALL (e.xip32)), true)"
	" FROM (SELECT pg_snapshot_xmax(s)::text::bigint % 4294967296 AS xmax32,"
	" ARRAY(SELECT x::text::bigint % 4294967296 FROM pg_snapshot_xip(s) AS x) AS xip32"
	" FROM pg_current_snapshot() AS s) e, unnest($1::bigint[]) AS u(x)";

static bool aux_arm(db_logical *l)
{
	if (db_conn_io_arm(&l->aux_io, l->aux, EV_READ | (l->aux_flushing ? EV_WRITE : 0)) != 0) {
		db_lg_down(l, "cannot watch the check connection's socket");
		return false;
	}
	return true;
}

/* Send SQL_VISIBLE for every commit waiting (pend moves into chk). Returns false after going down. */
bool db_lg_check_send(db_logical *l)
{
	char why[256];
	char *arr = NULL;

	if (l->aux_busy || l->aux == NULL || evtimer_pending(l->aux_timer, NULL) || (l->pend.nx == 0 && l->chk.nx == 0))
		return true;
	db_lg_bucket_merge(&l->chk, &l->pend, false, 0);
	/* "{x,x,...}": at most 10 digits and a comma per xid */
	size_t cap = (size_t)l->chk.nx * 11 + 3, n = 0;
	arr = malloc(cap);
	if (arr == NULL) {
		db_lg_down(l, "out of memory");
		return false;
	}
	arr[n++] = '{';
	for (int i = 0; i < l->chk.nx; i++)
		n += (size_t)snprintf(arr + n, cap - n, "%s%u", i ? "," : "", l->chk.xid[i]);
	snprintf(arr + n, cap - n, "}");
	const char *params[1] = {arr};
	db_conn_io_disarm(&l->aux_io);
	int ok = PQsendQueryParams(l->aux, SQL_VISIBLE, 1, NULL, params, NULL, NULL, 0);
	free(arr);
	if (!ok) goto err;
	l->aux_busy = true;
	l->aux_sent_ms = db_lg_mono_ms();
	int r = PQflush(l->aux);
	if (r < 0) goto err;
	l->aux_flushing = r == 1;
	return aux_arm(l);

err:
	db_conn_error(why, sizeof why, l->aux, &l->tag);
	db_lg_down(l, why);
	return false;
}

/* SQL_VISIBLE answered. Every commit visible: hand their hints over. Not yet: ask again (the committing
 * session is a moment from making it visible), with whatever arrived meanwhile. */
static void check_done(db_logical *l, PGresult *res)
{
	char why[256];

	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		db_conn_result_error(why, sizeof why, res);
		if (res) PQclear(res);
		db_lg_down(l, why);
		return;
	}
	bool visible = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (visible) {
		l->vis_delay_ms = 0;
		l->chk.nx = 0;
		db_lg_bucket_deliver(l, &l->chk);
		if (l->state != LG_UP) return;
		/* Under a steady stream of commits, one check per VIS_PACE_MS covers them all, instead of one per
		 * round trip: the server's CPU goes to the application's writes. */
		if (l->pend.nx > 0 && db_conn_timer_ms(l->aux_timer, VIS_PACE_MS) != 0) db_lg_down(l, "cannot arm the check timer");
		return;
	}
	/* Usually a fraction of a millisecond; with a synchronous standby, until it confirms: back off. */
	l->stats.visibility_waits++;
	l->vis_delay_ms = l->vis_delay_ms ? l->vis_delay_ms * 2 : 1;
	if (l->vis_delay_ms > VIS_DELAY_MAX_MS) l->vis_delay_ms = VIS_DELAY_MAX_MS;
	if (db_conn_timer_ms(l->aux_timer, l->vis_delay_ms) != 0) db_lg_down(l, "cannot arm the check timer");
}

void db_lg_aux_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	db_lg_check_send(arg);
}

void db_lg_aux_io_cb(evutil_socket_t fd, short what, void *arg)
{
	db_logical *l = arg;
	char why[256];
	(void)fd;

	if (l->aux == NULL) return; /* stale */
	if (l->aux_flushing) {
		int r = PQflush(l->aux);
		if (r < 0) goto broken;
		l->aux_flushing = r == 1;
	}
	if ((what & EV_READ) && !PQconsumeInput(l->aux)) goto broken;
	while (l->aux_busy && !PQisBusy(l->aux)) {
		PGresult *r = PQgetResult(l->aux);
		if (r != NULL) {
			if (l->aux_res == NULL) l->aux_res = r;
			else PQclear(r);
			continue;
		}
		PGresult *first = l->aux_res;
		l->aux_res = NULL;
		l->aux_busy = false;
		check_done(l, first);
		if (l->aux == NULL || l->state != LG_UP) return;
	}
	if (PQstatus(l->aux) == CONNECTION_BAD) goto broken;
	aux_arm(l);
	return;

broken:
	db_conn_error(why, sizeof why, l->aux, &l->tag);
	db_lg_down(l, why);
}
