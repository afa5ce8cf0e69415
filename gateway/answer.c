/*
 * gateway/answer.c — answering held waiters in bulk: the waiters of a changed resource a slice at a time
 * (GW_ANSWER_SLICE per loop iteration, so the first answers are written while later ones are still to be
 * built, and a wake never holds every built answer at once), the waiters that lost access (404) and the
 * waiters whose token was found revoked (401). A held waiter never receives new state on a token that has
 * expired or been revoked meanwhile. And the drain: every held waiter answered at once.
 */
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "gateway/watch-internal.h"

static bool token_expired(const gw_waiter *x, int64_t now_us)
{
	return x->token->expires_at_us != AUTH_NEVER && x->token->expires_at_us <= now_us;
}

void gw_sub_answer_changed(gw_registry *r, gw_sub *s)
{
	static const struct timeval now = {0, 0};
	gw_waiter *x;
	if (TAILQ_EMPTY(&s->held)) return;
	while ((x = TAILQ_FIRST(&s->held)) != NULL) {
		TAILQ_REMOVE(&s->held, x, link);
		x->state = GW_W_ANSWERING;
		TAILQ_INSERT_TAIL(&s->answering, x, link);
	}
	if (!s->in_answer_q) {
		s->in_answer_q = true;
		TAILQ_INSERT_TAIL(&r->answer_q, s, answer_link);
	}
	if (!evtimer_pending(r->answer_ev, NULL)) evtimer_add(r->answer_ev, &now);
}

void gw_sub_answer_denied(gw_registry *r, gw_sub *s)
{
	gw_waiter *x;
	while ((x = TAILQ_FIRST(&s->answering)) != NULL || (x = TAILQ_FIRST(&s->held)) != NULL) {
		r->st.answered_denied++;
		gw_waiter_finish(r, x, 404, NULL);
	}
}

/* One slice: up to GW_ANSWER_SLICE queued 200s, with the watch's current view (the latest state, if it
 * changed again meanwhile). The loop writes them before the next slice is built. */
void gw_on_answer_slice(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval now = {0, 0};
	gw_registry *r = arg;
	unsigned budget = GW_ANSWER_SLICE;
	int64_t now_us = cm_wall_us(), now_ms = cm_mono_ms();
	gw_sub *s;
	(void)fd;
	(void)what;

	while (budget > 0 && (s = TAILQ_FIRST(&r->answer_q)) != NULL) {
		gw_watch *w = s->w;
		gw_waiter *x;
		while (budget > 0 && (x = TAILQ_FIRST(&s->answering)) != NULL) {
			budget--;
			if (token_expired(x, now_us) || x->token->state == AUTH_TOKEN_INVALID) {
				/* Never new state on a credential that has expired or been revoked meanwhile. */
				gw_waiter_finish(r, x, 401, NULL);
				continue;
			}
			r->st.answered_change++;
			gw_waiter_finish(r, x, 200, &w->view);
		}
		if (!TAILQ_EMPTY(&s->answering)) break;
		TAILQ_REMOVE(&r->answer_q, s, answer_link);
		s->in_answer_q = false;
		if (gw_sub_idle(s) && !gw_sub_fresh(r, s, now_ms)) gw_sub_free(r, s);
		gw_watch_maybe_free(w);
	}
	if (!TAILQ_EMPTY(&r->answer_q)) evtimer_add(r->answer_ev, &now);
}

void gw_token_revoked(gw_registry *r, auth_token *t, int64_t user_id)
{
	gw_user *u = gw_user_find(r, user_id);
	gw_sub *s, *next;
	gw_waiter *x, *xn;
	if (u == NULL) return;
	for (s = LIST_FIRST(&u->subs); s; s = next) {
		next = LIST_NEXT(s, user_link);
		gw_watch *w = s->w;
		for (x = TAILQ_FIRST(&s->held); x; x = xn) {
			xn = TAILQ_NEXT(x, link);
			if (x->token == t) gw_waiter_finish(r, x, 401, NULL);
		}
		for (x = TAILQ_FIRST(&s->answering); x; x = xn) {
			xn = TAILQ_NEXT(x, link);
			if (x->token == t) gw_waiter_finish(r, x, 401, NULL);
		}
		gw_watch_maybe_free(w);
	}
}

/* ---- drain ---- */

static void drain_watch(gw_registry *r, gw_watch *w)
{
	gw_sub *s;
	gw_waiter *x;
	LIST_FOREACH(s, &w->subs, link) {
		while ((x = TAILQ_FIRST(&s->answering)) != NULL) gw_waiter_finish(r, x, 200, &w->view);
		while ((x = TAILQ_FIRST(&s->held)) != NULL) gw_waiter_finish(r, x, 304, &w->view);
	}
}

void gw_reg_drain(gw_registry *r)
{
	r->draining = true;
	gw_for_each_watch(r, drain_watch);
}

static void abort_watch(gw_registry *r, gw_watch *w)
{
	gw_sub *s;
	gw_waiter *x;
	LIST_FOREACH(s, &w->subs, link) {
		while ((x = TAILQ_FIRST(&s->answering)) != NULL) gw_waiter_finish(r, x, 200, &w->view);
		while ((x = TAILQ_FIRST(&s->held)) != NULL) gw_waiter_finish(r, x, 304, &w->view);
		while ((x = TAILQ_FIRST(&s->pending)) != NULL) gw_waiter_finish(r, x, 503, NULL);
	}
}

void gw_reg_abort_pending(gw_registry *r)
{
	auth_token *t;
	gw_for_each_watch(r, abort_watch);
	while ((t = TAILQ_FIRST(&r->token_dirty)) != NULL) {
		TAILQ_REMOVE(&r->token_dirty, t, batch_link);
		t->in_batch = false;
		gw_token_resolved(r, t, true);
	}
}
