/*
 * gateway/reread.c — the batched reads of the watch registry.
 *
 * Nothing asks the database directly: a watch that needs reading is marked dirty (watch.c), and a flush
 * deferred to the end of the loop iteration sends one query per kind for every dirty watch (up to
 * reread_batch_max), naming per watch only the users whose entitlement must be checked, plus one query
 * for the token hashes waiting on a lookup. Results are applied here: new views replace old ones, held
 * waiters whose version changed are answered, pending ones are decided, terminal watches close.
 * A failed read answers nobody with an error who is held; pending requests that cannot be decided get
 * 503. A watch is never in two batches at once.
 *
 * A read names per watch the users whose verdict it must check, and says whether to keep the row anyway
 * (some request on it comes from a user whose verdict is still trusted). A row nobody it names may see,
 * and nobody needs, does not come back: it is missing, and nothing of it is kept.
 * A token re-check that fails is retried every second while requests still use the token; one that
 * straddled a LISTEN reconnect is not trusted past the moment it returns. The statements and their
 * batched parameters come from db/access.h; which users a read names is decided here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/log.h"
#include "db/access.h"
#include "db/queries.h"
#include "gateway/http.h"
#include "gateway/answer.h"
#include "gateway/decide.h"
#include "gateway/hold.h"
#include "gateway/reread.h"
#include "gateway/rows.h"
#include "gateway/watch-internal.h"

typedef struct read_batch {
	TAILQ_ENTRY(read_batch) link; /* in reg->batches from send to result */
	bool linked;
	gw_registry *reg;
	gw_kind kind; /* or GW_KINDS for a token batch */
	uint64_t seq;
	uint64_t epoch;
	int64_t sent_ms;
	size_t n;
	gw_watch **watches;  /* kind batches */
	auth_token **tokens; /* token batches */
	db_batch_params params;  /* kind batches: ids, users to check, keep */
	db_token_batch hashes;   /* token batches: the hashes looked up */
	bool sweep;              /* carries safety-net watches (counted in reg->sweeps_in_flight) */
} read_batch;

_Static_assert(AUTH_HASH_LEN == DB_TOKEN_HASH_LEN, "the token lookup reads the principal cache's hashes");

/* ---- the flush: one query per kind for every dirty watch ---- */

static void batch_free(read_batch *b)
{
	if (b == NULL) return;
	if (b->linked) TAILQ_REMOVE(&b->reg->batches, b, link);
	if (b->sweep) b->reg->sweeps_in_flight--;
	db_batch_params_fini(&b->params);
	db_token_batch_fini(&b->hashes);
	free(b->watches);
	free(b->tokens);
	free(b);
}

typedef struct id_collect {
	gw_registry *reg;
	gw_watch *w;
	read_batch *b;
	int64_t sent_ms;
} id_collect;

static void mark_entitled(void *arg, int64_t user)
{
	id_collect *c = arg;
	gw_sub *s = gw_sub_find(c->reg, c->w, user);
	if (s && s->check_seq == c->b->seq) {
		s->ent = ENT_ENTITLED;
		s->checked_ms = c->sent_ms;
		s->verdict_seq = c->b->seq;
		s->check_seq = 0;
	}
}

/* Apply one read result (present row with its new view, or missing) to a watch. */
static void apply_read(gw_registry *r, read_batch *b, gw_watch *w, pol_view *nv, const char *entitled)
{
	bool present = nv != NULL;
	bool trusted = b->epoch == r->epoch && r->listen_up;
	bool changed = false;
	gw_sub *s, *next;
	id_collect c = {r, w, b, b->sent_ms};

	w->in_flight = false;
	w->stale = !trusted;
	if (w->retry_on_up) {
		w->retry_on_up = false;
		r->n_retry_on_up--;
	}
	/* Entitlement: users named in `entitled` may see it; every other sub this batch checked may not. */
	if (present && entitled && db_each_id(entitled, mark_entitled, &c) < 0) r->st.bad_rows++;
	LIST_FOREACH(s, &w->subs, link) {
		if (s->check_seq == b->seq) {
			s->ent = ENT_DENIED;
			s->verdict_seq = b->seq;
			s->check_seq = 0;
		}
	}
	/* The view. A closed (terminal) watch keeps its final view. */
	if (!(w->closed && w->have == HAVE_ROW)) {
		if (present) {
			changed = w->have != HAVE_ROW || strcmp(w->view.etag, nv->etag) != 0;
			gw_watch_clear_view(w);
			w->view = *nv;
			memset(nv, 0, sizeof *nv);
			w->have = HAVE_ROW;
		} else {
			changed = w->have == HAVE_ROW;
			gw_watch_clear_view(w);
			w->have = HAVE_MISSING;
		}
	}
	int64_t now = cm_mono_ms();
	for (s = LIST_FIRST(&w->subs); s; s = next) {
		next = LIST_NEXT(s, link);
		if (s->ent == ENT_DENIED || w->have != HAVE_ROW) gw_sub_answer_denied(r, s);
		else if (changed) gw_sub_answer_changed(r, s); /* answered a slice at a time */
		else if (s->n_owed) gw_sub_answer_owed(r, s, NULL); /* their verdict was re-read for them */
		gw_sub_process(s, PS_READ, b->seq);
		if (gw_sub_idle(s) && (s->ent == ENT_DENIED || !gw_sub_fresh(r, s, now))) gw_sub_free(r, s);
	}
	if (changed && w->notified_ms) {
		double ms = (double)(now - w->notified_ms);
		r->st.wake_hist[cm_hist_bucket(&gw_hist_wake, ms / 1000.0)]++;
		r->st.wake_sum_ms += ms;
		r->st.wake_count++;
	}
	w->notified_ms = 0;
	if (w->have == HAVE_ROW && w->view.terminal && !w->closed) {
		w->closed = true;
		r->st.terminal_closes++;
		log_debug("watch closed kind=%s id=%" PRId64 " state=%s", gw_kind_name(w->kind), w->id, w->view.state);
	}
	gw_watch_rearm(w);
}

/* A read failed: held waiters keep their last good state; pending ones that cannot be decided get 503. */
static void read_failed(gw_registry *r, gw_watch *w)
{
	gw_sub *s, *next;
	int64_t now = cm_mono_ms();
	w->in_flight = false;
	if (!w->retry_on_up && r->io.connected(r->io.arg) == 0) {
		w->retry_on_up = true;
		r->n_retry_on_up++;
	}
	for (s = LIST_FIRST(&w->subs); s; s = next) {
		next = LIST_NEXT(s, link);
		s->check_seq = 0;
		gw_sub_process(s, PS_FAILED, 0);
		if (gw_sub_idle(s) && !gw_sub_fresh(r, s, now)) gw_sub_free(r, s);
	}
	if (w->n_held) gw_watch_arm(w, w->have == HAVE_ROW && w->view.interval_ms ? w->view.interval_ms : 1000);
	gw_watch_maybe_free(w);
}

static void on_kind_result(void *arg, const PGresult *res, const char *err)
{
	read_batch *b = arg;
	gw_registry *r = b->reg;
	char perr[160];

	if (res == NULL) {
		r->st.read_errors++;
		log_warn("re-read failed kind=%s resources=%zu error=%s", gw_kind_name(b->kind), b->n, CM_Q(err ? err : "?"));
		for (size_t i = 0; i < b->n; i++) read_failed(r, b->watches[i]);
		batch_free(b);
		gw_schedule_flush(r);
		return;
	}
	int rows = PQntuples(res);
	r->st.read_rows[b->kind] += (uint64_t)rows;
	/* Rows come back in any order. A watch of this batch is still in_flight until its row is applied;
	 * whatever is left in flight afterwards had no row: missing (or unreadable, treated alike). */
	for (int i = 0; i < rows; i++) {
		pol_view v = {0};
		const char *ent = NULL;
		int64_t id;
		int rc;
		if (b->kind == GW_RUN) {
			db_run_row row;
			if (db_parse_run_row(res, i, &row, perr, sizeof perr) != 0) goto bad;
			pol_run pr;
			gw_run_from_db(&row, &pr);
			rc = pol_run_view(&r->cfg->policy, &pr, row.now, &v);
			id = row.id;
			ent = row.entitled;
		} else {
			db_pack_row row;
			if (db_parse_pack_row(res, i, &row, perr, sizeof perr) != 0) goto bad;
			pol_pack pp;
			gw_pack_from_db(&row, &pp);
			rc = pol_pack_view(&r->cfg->policy, &pp, row.now, &v);
			id = row.tenant_id;
			ent = row.entitled;
		}
		if (rc != 0) {
			snprintf(perr, sizeof perr, "could not build the representation");
			goto bad;
		}
		if (v.bad_fields) {
			r->st.bad_rows++;
			log_warn("row has unreadable fields kind=%s id=%" PRId64 " fields=%d", gw_kind_name(b->kind), id,
			         v.bad_fields);
		}
		gw_watch *w = gw_watch_find(r, b->kind, id);
		if (w && w->in_flight) apply_read(r, b, w, &v, ent);
		pol_view_clear(&v);
		continue;
	bad:
		r->st.bad_rows++;
		log_warn("unreadable row kind=%s error=%s", gw_kind_name(b->kind), CM_Q(perr));
	}
	for (size_t k = 0; k < b->n; k++)
		if (b->watches[k]->in_flight) apply_read(r, b, b->watches[k], NULL, NULL);
	for (size_t k = 0; k < b->n; k++) gw_watch_maybe_free(b->watches[k]);
	batch_free(b);
	gw_schedule_flush(r);
}

static void on_token_result(void *arg, const PGresult *res, const char *err)
{
	read_batch *b = arg;
	gw_registry *r = b->reg;
	char perr[160];

	if (res == NULL) {
		r->st.read_errors++;
		log_warn("token lookup failed tokens=%zu error=%s", b->n, CM_Q(err ? err : "?"));
		for (size_t i = 0; i < b->n; i++) {
			/* A re-check that failed keeps the token's last verdict (held requests are not answered
			 * with an error) but not its age: it stays stale, so no new state goes out on it, and it is
			 * looked up again in a second while requests still use it. */
			auth_token *t = b->tokens[i];
			t->state = t->user_id ? AUTH_TOKEN_VALID : AUTH_TOKEN_NEW;
			gw_token_resolved(r, t, true);
			if (t->users > 0) gw_token_retry(r, t);
		}
		batch_free(b);
		gw_schedule_flush(r);
		return;
	}
	/* Each row names a live token of this batch (still LOOKING); whatever is LOOKING afterwards has no
	 * live row: unknown, revoked or expired. */
	for (int k = 0; k < PQntuples(res); k++) {
		db_token_row row;
		if (db_parse_token_row(res, k, &row, perr, sizeof perr) != 0) {
			r->st.bad_rows++;
			continue;
		}
		auth_token *t = auth_cache_find(r->tokens, row.hash);
		if (t == NULL || t->state != AUTH_TOKEN_LOOKING) continue;
		int64_t was_user = t->user_id;
		auth_token_set(r->tokens, t, true, row.user_id, row.expires_at == DB_NULL ? AUTH_NEVER : row.expires_at,
		               b->sent_ms);
		/* The row now names another user: requests held as the old one lose it. */
		if (was_user > 0 && was_user != row.user_id && t->users > 0) gw_token_revoked(r, t, was_user);
		gw_token_resolved(r, t, false);
		if (b->epoch != r->epoch) {
			/* Sent before a LISTEN reconnect (or loss): a revocation hint may have been lost since. New
			 * requests may use it (it was live when read); held ones wait for a lookup sent after. */
			t->checked_ms = INT64_MIN / 2;
			if (t->users > 0) gw_token_recheck(r, t);
		} else {
			gw_token_verified(r, t);
		}
	}
	for (size_t i = 0; i < b->n; i++) {
		auth_token *t = b->tokens[i];
		if (t->state != AUTH_TOKEN_LOOKING) continue;
		int64_t was_user = t->user_id;
		auth_token_set(r->tokens, t, false, 0, AUTH_NEVER, b->sent_ms);
		gw_token_resolved(r, t, false);
		if (was_user > 0 && t->users > 0) gw_token_revoked(r, t, was_user); /* held requests get 401 now */
	}
	batch_free(b);
	gw_schedule_flush(r);
}

static size_t batch_cap(const gw_registry *r)
{
	return (size_t)r->cfg->reread_batch_max;
}

static void send_token_batch(gw_registry *r)
{
	read_batch *b = calloc(1, sizeof *b);
	size_t cap = batch_cap(r);
	auth_token *t;
	if (b == NULL || (b->tokens = calloc(cap, sizeof *b->tokens)) == NULL) {
		batch_free(b);
		log_error("out of memory building a token batch");
		return;
	}
	b->reg = r;
	b->linked = true;
	TAILQ_INSERT_TAIL(&r->batches, b, link);
	b->kind = GW_KINDS;
	b->epoch = r->epoch;
	b->sent_ms = cm_mono_ms();
	db_token_batch_init(&b->hashes);
	while ((t = TAILQ_FIRST(&r->token_dirty)) != NULL && b->n < cap) {
		TAILQ_REMOVE(&r->token_dirty, t, batch_link);
		t->in_batch = false;
		t->state = AUTH_TOKEN_LOOKING;
		b->tokens[b->n++] = t;
	}
	/* The hashes travel as one text[] literal (db/access.h). */
	int rc = 0;
	for (size_t i = 0; i < b->n && rc == 0; i++) rc = db_token_batch_add(&b->hashes, b->tokens[i]->hash);
	if (rc != 0 || db_token_batch_finish(&b->hashes) != 0) {
		on_token_result(b, NULL, "out of memory");
		return;
	}
	const char *params[1] = {b->hashes.lit};
	r->st.token_reads++;
	if (r->io.query(r->io.arg, db_sql_tokens, 1, params, on_token_result, b) != 0)
		on_token_result(b, NULL, "database unavailable");
}

/* A safety-net sweep (thousands of watches due on one tick) reads on one connection at a time, so
 * another stays free for the read a hint asks for: a change is never queued behind a sweep. With one
 * connection there is nothing to keep free. */
static bool sweep_may_start(const gw_registry *r)
{
	return r->sweeps_in_flight == 0 || r->cfg->db_pool_size < 2;
}

static void send_kind_batch(gw_registry *r, gw_kind kind)
{
	read_batch *b = calloc(1, sizeof *b);
	size_t cap = batch_cap(r);
	int64_t now = cm_mono_ms();
	int64_t *users = NULL;
	size_t users_cap = 0;
	gw_watch *w, *next;

	if (b == NULL || (b->watches = calloc(cap, sizeof *b->watches)) == NULL) {
		batch_free(b);
		log_error("out of memory building a read batch");
		return;
	}
	b->reg = r;
	b->linked = true;
	TAILQ_INSERT_TAIL(&r->batches, b, link);
	b->kind = kind;
	b->seq = ++r->batch_seq;
	b->epoch = r->epoch;
	b->sent_ms = now;
	db_batch_params_init(&b->params);
	for (w = TAILQ_FIRST(&r->dirty[kind]); w && b->n < cap; w = next) {
		next = TAILQ_NEXT(w, dirty_link);
		if (w->in_flight) continue; /* read again when the one in flight returns */
		if (w->wake_cause == CAUSE_SAFETY && !b->sweep) {
			if (!sweep_may_start(r)) break; /* the rest are the safety net's too */
			b->sweep = true;
			r->sweeps_in_flight++;
		}
		size_t nu = 0;
		bool keep = false;
		gw_sub *s;
		LIST_FOREACH(s, &w->subs, link) {
			if (gw_sub_fresh(r, s, now) && s->ent == ENT_ENTITLED) {
				/* A trusted verdict needs the row only for requests; an idle one is only a cache. */
				if (!gw_sub_idle(s)) keep = true;
				continue;
			}
			if (nu == users_cap) {
				size_t nc = users_cap ? users_cap * 2 : 16;
				int64_t *nn = realloc(users, nc * sizeof *nn);
				if (nn == NULL) break;
				users = nn;
				users_cap = nc;
			}
			users[nu++] = s->user_id;
			s->check_seq = b->seq;
		}
		if (nu == 0 && !keep) {
			/* Nobody to check and no request on it: a cache nobody waits on. Reading it would return
			 * nothing (no row is kept for nobody); distrust it instead, as a NOTIFY does for an idle one. */
			gw_watch_undirty(w);
			w->stale = true;
			gw_watch_maybe_free(w);
			continue;
		}
		if (db_batch_params_add(&b->params, w->id, users, nu, keep) != 0) break;
		gw_watch_undirty(w);
		w->kept = keep;
		w->in_flight = true;
		if (w->wake_cause == CAUSE_NOTIFY) r->st.wakes_notify++;
		else if (w->wake_cause == CAUSE_SAFETY) r->st.wakes_safety++;
		else if (w->wake_cause == CAUSE_RECONNECT) r->st.wakes_reconnect++;
		b->watches[b->n++] = w;
	}
	free(users);
	if (b->n == 0) {
		batch_free(b);
		return;
	}
	r->st.reads[kind]++;
	r->st.read_resources[kind] += b->n;
	r->st.batch_hist[cm_hist_bucket(&gw_hist_batch, (double)b->n)]++;
	if (db_batch_params_finish(&b->params) != 0) {
		on_kind_result(b, NULL, "out of memory");
		return;
	}
	const char *params[3] = {b->params.ids, b->params.users, b->params.keep};
	if (r->io.query(r->io.arg, kind == GW_RUN ? db_sql_runs : db_sql_packs, 3, params, on_kind_result, b) != 0)
		on_kind_result(b, NULL, "database unavailable");
}

static bool has_sendable(gw_registry *r, gw_kind kind)
{
	gw_watch *w;
	TAILQ_FOREACH(w, &r->dirty[kind], dirty_link)
		if (!w->in_flight) return w->wake_cause != CAUSE_SAFETY || sweep_may_start(r);
	return false;
}

static void flush(gw_registry *r)
{
	bool down = r->io.connected(r->io.arg) == 0;
	/* Send while a connection is idle; with the database down, fail fast (the callbacks answer 503 or
	 * keep held waiters as they are). One batch per kind per round keeps kinds fair. */
	for (int guard = 0; guard < 64; guard++) {
		bool sent = false;
		if (!down && r->io.idle(r->io.arg) == 0) break;
		if (!TAILQ_EMPTY(&r->token_dirty)) {
			send_token_batch(r);
			sent = true;
		}
		for (int k = 0; k < GW_KINDS; k++) {
			if (!down && r->io.idle(r->io.arg) == 0) break;
			if (has_sendable(r, (gw_kind)k)) {
				send_kind_batch(r, (gw_kind)k);
				sent = true;
			}
		}
		if (!sent) break;
		down = r->io.connected(r->io.arg) == 0;
	}
}

void gw_on_flush(evutil_socket_t fd, short what, void *arg)
{
	gw_registry *r = arg;
	(void)fd;
	(void)what;
	r->flush_scheduled = false;
	flush(r);
}

void gw_free_batches(gw_registry *r)
{
	read_batch *b;
	while ((b = TAILQ_FIRST(&r->batches)) != NULL) batch_free(b);
}

void gw_on_token_retry(evutil_socket_t fd, short what, void *arg)
{
	gw_registry *r = arg;
	auth_token *t;
	(void)fd;
	(void)what;
	/* Still in_batch: they go out with the next flush like any lookup. */
	while ((t = TAILQ_FIRST(&r->token_retry)) != NULL) {
		TAILQ_REMOVE(&r->token_retry, t, batch_link);
		TAILQ_INSERT_TAIL(&r->token_dirty, t, batch_link);
	}
	gw_schedule_flush(r);
}
