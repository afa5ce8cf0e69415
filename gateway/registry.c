/*
 * gateway/registry.c — the registry's entry points (watch.h), at the top of its chain
 * (docs/architecture.md): creating and freeing it with its seam (registry-io.h), taking requests
 * (gw_reg_submit), the hints (NOTIFY, access changes, the LISTEN session going up or down, the pool
 * changing), the drain and the final abort. It decides nothing itself: reads go through reread.c,
 * decisions through decide.c, bulk answers through answer.c. See watch.h for the model.
 */
#include "gateway/watch.h"

#include <stdlib.h>

#include <event2/event.h>

#include "common/hmap.h"
#include "gateway/answer.h"
#include "gateway/decide.h"
#include "gateway/reread.h"
#include "gateway/waiter.h"
#include "gateway/watch-internal.h"

void gw_reg_submit(gw_registry *r, gw_waiter *w)
{
	int64_t now = cm_mono_ms();

	w->reg = r;
	w->state = GW_W_NEW;
	evutil_socket_t fd = r->io.attach(r->io.arg, w);
	/* EV_READ alone: a FIN reads as end of file (r->io.readable tells), and the socket's epoll interest is
	 * then the one evhttp's own read event has, so handing the socket from one to the other at hold and
	 * at answer changes nothing in the kernel (libevent's changelist folds the pair into no call). */
	event_assign(&w->ev, r->base, fd, fd >= 0 ? EV_READ | EV_PERSIST : EV_PERSIST, gw_waiter_on_event, w);
	if (fd >= 0) event_add(&w->ev, NULL);

	auth_token *t = auth_cache_get(r->tokens, w->token_hash);
	r->outstanding++;
	if (t == NULL) {
		gw_waiter_finish(r, w, 503, NULL);
		return;
	}
	t->users++;
	w->token = t;
	if (w->jwt_user > 0) auth_token_set_jwt(r->tokens, t, w->jwt_user, w->jwt_exp_us, now); /* verified by server.c */
	if (auth_token_fresh(t, now, cm_wall_us(), r->cfg->auth_cache_ttl_ms)) {
		gw_attach(r, w);
		return;
	}
	if (t->jwt || (t->state == AUTH_TOKEN_INVALID && now - t->checked_ms < 1000)) {
		/* A token just found invalid: answer without another lookup for a second. A JWT that expired
		 * since server.c verified it has no row to look up. */
		gw_waiter_finish(r, w, 401, NULL);
		return;
	}
	w->state = GW_W_AUTH;
	TAILQ_INSERT_TAIL(&t->waiting, &w->auth_link, link);
	r->st.pending++;
	if (t->state != AUTH_TOKEN_LOOKING && !t->in_batch) {
		t->in_batch = true;
		TAILQ_INSERT_TAIL(&r->token_dirty, t, batch_link);
		gw_schedule_flush(r);
	}
}

void gw_reg_notify(gw_registry *r, gw_kind kind, int64_t id)
{
	gw_watch *w = gw_watch_find(r, kind, id);
	r->st.notifies[kind]++;
	if (w == NULL || w->closed) return; /* closed for good: later NOTIFYs are ignored */
	if (w->n_held || w->n_pending) {
		if (!w->notified_ms) w->notified_ms = cm_mono_ms();
		gw_watch_mark_dirty(w, CAUSE_NOTIFY);
	} else {
		w->stale = true; /* a cache nobody waits on: read it when somebody asks */
	}
}

static void distrust_verdict(gw_sub *s)
{
	s->checked_ms = INT64_MIN / 2;
	if (!TAILQ_EMPTY(&s->held) && !s->w->closed) gw_watch_mark_dirty(s->w, CAUSE_NOTIFY);
}

/* Look a token up again (batched with the next flush). */
static void recheck_token(gw_registry *r, auth_token *t)
{
	if (t->in_batch || t->state == AUTH_TOKEN_LOOKING || t->jwt) return; /* a JWT has no row to look up */
	t->in_batch = true;
	TAILQ_INSERT_TAIL(&r->token_dirty, t, batch_link);
	gw_schedule_flush(r);
}

/* The user's access changed: the tokens its held requests came with may have been revoked. */
static void recheck_held_tokens(gw_registry *r, gw_user *u)
{
	gw_sub *s;
	gw_waiter *x;
	LIST_FOREACH(s, &u->subs, user_link) {
		TAILQ_FOREACH(x, &s->held, link) recheck_token(r, x->token);
		TAILQ_FOREACH(x, &s->answering, link) recheck_token(r, x->token);
	}
}

void gw_reg_notify_access(gw_registry *r, int64_t user_id)
{
	r->st.notifies[GW_KINDS]++;
	auth_cache_invalidate_user(r->tokens, user_id);
	/* Entitlement verdicts of that user (or everyone, for a role change) are re-checked on the next read
	 * of each watch; watches where the user is held are read now. A user's hint costs O(its subs). */
	if (user_id >= 0) {
		gw_user *u = gw_user_find(r, user_id);
		gw_sub *s;
		if (u == NULL) return;
		LIST_FOREACH(s, &u->subs, user_link) distrust_verdict(s);
		recheck_held_tokens(r, u);
		return;
	}
	cm_hmap_iter it;
	for (cm_hnode *n = cm_hmap_first(&r->subs, &it); n; n = cm_hmap_next(&it))
		distrust_verdict(CM_CONTAINER_OF(n, gw_sub, node));
}


static void reread_after_reconnect(gw_registry *r, gw_watch *w)
{
	(void)r;
	if (w->closed) return;
	w->stale = true;
	if (w->n_held || w->n_pending) gw_watch_mark_dirty(w, CAUSE_RECONNECT);
}

void gw_reg_listen_up(gw_registry *r)
{
	r->listen_up = true;
	r->epoch++;
	/* Notifications sent while the session was down are lost, access hints too: no token lookup or
	 * entitlement verdict made before now is trusted any more. Held tokens are looked up again at once (a
	 * revoked one gets its 401 now), verdicts with the re-read of every held resource below. */
	auth_cache_invalidate_user(r->tokens, -1);
	cm_hmap_iter it;
	for (cm_hnode *n = cm_hmap_first(&r->subs, &it); n; n = cm_hmap_next(&it)) {
		gw_sub *s = CM_CONTAINER_OF(n, gw_sub, node);
		gw_waiter *x;
		s->checked_ms = INT64_MIN / 2;
		TAILQ_FOREACH(x, &s->held, link) gw_token_recheck(r, x->token);
		TAILQ_FOREACH(x, &s->answering, link) gw_token_recheck(r, x->token);
	}
	/* Notifications sent while the session was down are lost: read every held resource again. */
	gw_for_each_watch(r, reread_after_reconnect);
}

static void mark_stale(gw_registry *r, gw_watch *w)
{
	(void)r;
	w->stale = true;
}

void gw_reg_listen_down(gw_registry *r)
{
	r->listen_up = false;
	r->epoch++;
	gw_for_each_watch(r, mark_stale);
}

static void retry_after_pool_up(gw_registry *r, gw_watch *w)
{
	if (!w->retry_on_up) return;
	w->retry_on_up = false;
	r->n_retry_on_up--;
	if ((w->n_held || w->n_pending) && !w->in_flight) gw_watch_mark_dirty(w, CAUSE_RECONNECT);
}

void gw_reg_pool_changed(gw_registry *r)
{
	/* Reads that failed for want of a connection are not left to the safety net (up to an interval
	 * away): changes made while the database was unreachable reach held clients as soon as it is back. */
	if (r->n_retry_on_up && r->io.connected(r->io.arg) > 0) gw_for_each_watch(r, retry_after_pool_up);
	gw_schedule_flush(r);
}

uint64_t gw_reg_outstanding(const gw_registry *r)
{
	return r->outstanding;
}


/* ---- lifecycle ---- */

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	gw_registry *r = arg;
	(void)fd;
	(void)what;
	auth_cache_sweep(r->tokens, cm_mono_ms(), r->cfg->auth_cache_ttl_ms);
}

gw_registry *gw_reg_new_io(struct event_base *base, const conf *cfg, const gw_reg_io *io)
{
	gw_registry *r = calloc(1, sizeof *r);
	struct timeval one = {1, 0};
	if (r == NULL) return NULL;
	r->base = base;
	r->cfg = cfg;
	r->io = *io;
	for (int k = 0; k < GW_KINDS; k++) TAILQ_INIT(&r->dirty[k]);
	TAILQ_INIT(&r->token_dirty);
	TAILQ_INIT(&r->token_retry);
	TAILQ_INIT(&r->batches);
	if ((r->tokens = auth_cache_new()) == NULL || cm_hmap_init(&r->watches, 1024) != 0 ||
	    cm_hmap_init(&r->subs, 1024) != 0 || cm_hmap_init(&r->clients, 256) != 0 ||
	    cm_hmap_init(&r->user_subs, 256) != 0)
		goto err;
	if ((r->flush_ev = event_new(base, -1, 0, gw_on_flush, r)) == NULL) goto err;
	if ((r->flush_soon_ev = evtimer_new(base, gw_on_flush, r)) == NULL) goto err;
	if ((r->answer_ev = evtimer_new(base, gw_on_answer_slice, r)) == NULL) goto err;
	if ((r->token_retry_ev = evtimer_new(base, gw_on_token_retry, r)) == NULL) goto err;
	TAILQ_INIT(&r->answer_q);
	if ((r->sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, r)) == NULL) goto err;
	event_add(r->sweep_ev, &one);
	return r;
err:
	gw_reg_free(r);
	return NULL;
}

static void free_watch_waiters(gw_registry *r, gw_watch *w)
{
	gw_sub *s;
	gw_waiter *x;
	LIST_FOREACH(s, &w->subs, link) {
		while ((x = TAILQ_FIRST(&s->answering)) != NULL) gw_waiter_gone(r, x);
		while ((x = TAILQ_FIRST(&s->held)) != NULL) gw_waiter_gone(r, x);
		while ((x = TAILQ_FIRST(&s->pending)) != NULL) gw_waiter_gone(r, x);
	}
}

static void free_watch_only(gw_registry *r, gw_watch *w)
{
	(void)r;
	w->in_flight = false;
	gw_watch_free(w);
}

void gw_reg_free(gw_registry *r)
{
	if (r == NULL) return;
	if (r->watches.buckets) {
		gw_for_each_watch(r, free_watch_waiters);
		gw_for_each_watch(r, free_watch_only);
	}
	gw_free_batches(r);
	if (r->tokens) {
		/* Waiters still on token lookups. */
		auth_token *t;
		while ((t = TAILQ_FIRST(&r->token_dirty)) != NULL) {
			TAILQ_REMOVE(&r->token_dirty, t, batch_link);
			t->in_batch = false;
		}
		while ((t = TAILQ_FIRST(&r->token_retry)) != NULL) {
			TAILQ_REMOVE(&r->token_retry, t, batch_link);
			t->in_batch = false;
		}
	}
	if (r->flush_ev) event_free(r->flush_ev);
	if (r->flush_soon_ev) event_free(r->flush_soon_ev);
	if (r->answer_ev) event_free(r->answer_ev);
	if (r->token_retry_ev) event_free(r->token_retry_ev);
	if (r->sweep_ev) event_free(r->sweep_ev);
	auth_cache_free(r->tokens);
	cm_hmap_fini(&r->watches);
	cm_hmap_fini(&r->subs);
	cm_hmap_fini(&r->user_subs); /* its entries went with their last sub */
	/* Counters are freed with their last waiter; any left would be a bug, but free the table anyway. */
	cm_hmap_fini(&r->clients);
	free(r);
}

void gw_reg_set_shared(gw_registry *r, gw_shm *shm, int wi)
{
	r->shm = shm;
	r->worker = wi;
}

void gw_reg_set_conf(gw_registry *r, const conf *cfg)
{
	r->cfg = cfg;
}

const conf *gw_reg_conf(const gw_registry *r)
{
	return r->cfg;
}

const gw_reg_stats *gw_reg_get_stats(const gw_registry *r)
{
	return &r->st;
}

size_t gw_reg_token_cache_size(const gw_registry *r)
{
	return auth_cache_size(r->tokens);
}

/* ---- drain ---- */

void gw_reg_drain(gw_registry *r)
{
	r->draining = true;
	gw_for_each_watch(r, gw_answer_drain_watch);
}

void gw_reg_abort_pending(gw_registry *r)
{
	auth_token *t;
	gw_for_each_watch(r, gw_answer_abort_watch);
	while ((t = TAILQ_FIRST(&r->token_dirty)) != NULL || (t = TAILQ_FIRST(&r->token_retry)) != NULL) {
		if (t == TAILQ_FIRST(&r->token_dirty)) TAILQ_REMOVE(&r->token_dirty, t, batch_link);
		else TAILQ_REMOVE(&r->token_retry, t, batch_link);
		t->in_batch = false;
		gw_token_resolved(r, t, true);
	}
}
