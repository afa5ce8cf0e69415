/*
 * gateway/answer.c — answering held waiters in bulk: the waiters of a changed resource a slice at a time
 * (GW_ANSWER_SLICE per loop iteration, so the first answers are written while later ones are still to be
 * built, and a wake never holds every built answer at once), the waiters that lost access (404) and the
 * waiters whose token was found revoked (401). And the drain: every held waiter answered at once.
 *
 * New state (a 200 to a held waiter) goes out only on a token that auth_token_trust calls fresh: looked
 * up less than auth_cache_ttl ago (a LISTEN reconnect or an access hint makes it stale at once), not
 * revoked, not expired. A waiter whose token is revoked or expired gets 401. A waiter whose token is
 * merely stale is *owed* its new state: it goes back to the held list, its token is looked up again, and
 * it is answered when that lookup succeeds (200 or 401) — however long that takes within its wait. The
 * drain and the abort apply the same rule; an owed waiter is never told "unchanged" (a 304 would carry
 * the new ETag): at its deadline, or at the abort, it gets 503 with Retry-After and asks again.
 */
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "gateway/answer.h"
#include "gateway/waiter.h"
#include "gateway/watch-internal.h"

static void queue_sub(gw_registry *r, gw_sub *s)
{
	static const struct timeval now = {0, 0};
	if (!s->in_answer_q) {
		s->in_answer_q = true;
		TAILQ_INSERT_TAIL(&r->answer_q, s, answer_link);
	}
	if (!evtimer_pending(r->answer_ev, NULL)) evtimer_add(r->answer_ev, &now);
}

/* Held -> answering (its 200 is decided by the next slice). */
static void to_answering(gw_registry *r, gw_sub *s, gw_waiter *x)
{
	TAILQ_REMOVE(&s->held, x, link);
	if (x->owed) {
		x->owed = false;
		s->n_owed--;
		r->n_owed--;
	}
	x->state = GW_W_ANSWERING;
	TAILQ_INSERT_TAIL(&s->answering, x, link);
}

/* Answering -> held, owed its new state until its token is checked again. */
static void owe(gw_registry *r, gw_sub *s, gw_waiter *x)
{
	TAILQ_REMOVE(&s->answering, x, link);
	x->state = GW_W_HELD;
	x->owed = true;
	x->owed_ms = cm_mono_ms();
	s->n_owed++;
	r->n_owed++;
	TAILQ_INSERT_TAIL(&s->held, x, link);
	gw_token_recheck(r, x->token);
}

static auth_trust trust(const gw_registry *r, const gw_waiter *x, int64_t now_ms, int64_t now_us)
{
	auth_trust t = auth_token_trust(x->token, now_ms, now_us, r->cfg->auth_cache_ttl_ms);
	/* A lookup sent after this waiter became owed its state was made for this answer: it stands whatever
	 * the ttl (with auth_cache_ttl = 0 nothing else ever would). An access hint since voids it. */
	if (t == AUTH_TRUST_RECHECK && x->owed_ms != 0 && auth_token_checked_since(x->token, x->owed_ms))
		return AUTH_TRUST_FRESH;
	return t;
}

/* Decide one waiter due new state now: 200, 401, or owed (back to held, token re-checked). */
static void answer_due(gw_registry *r, gw_sub *s, gw_waiter *x, int64_t now_ms, int64_t now_us)
{
	switch (trust(r, x, now_ms, now_us)) {
	case AUTH_TRUST_FRESH:
		r->st.answered_change++;
		gw_waiter_finish(r, x, 200, s->w);
		break;
	case AUTH_TRUST_DEAD:
		/* Never new state on a credential that has expired or been revoked meanwhile. */
		gw_waiter_finish(r, x, 401, NULL);
		break;
	case AUTH_TRUST_RECHECK: owe(r, s, x); break;
	}
}

void gw_sub_answer_changed(gw_registry *r, gw_sub *s)
{
	gw_waiter *x;
	if (TAILQ_EMPTY(&s->held)) return;
	while ((x = TAILQ_FIRST(&s->held)) != NULL) to_answering(r, s, x);
	queue_sub(r, s);
}

void gw_sub_answer_owed(gw_registry *r, gw_sub *s, const auth_token *t)
{
	gw_waiter *x, *xn;
	bool any = false;
	if (s->n_owed == 0) return;
	for (x = TAILQ_FIRST(&s->held); x; x = xn) {
		xn = TAILQ_NEXT(x, link);
		if (x->owed && (t == NULL || x->token == t)) {
			to_answering(r, s, x);
			any = true;
		}
	}
	if (any) queue_sub(r, s);
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
			answer_due(r, s, x, now_ms, now_us);
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

/* Waiters due new state get it under the slice's rule (an owed one stays for its lookup: the drain waits
 * for it, up to drain_timeout); every other held waiter gets its current version, 304. */
void gw_answer_drain_watch(gw_registry *r, gw_watch *w)
{
	gw_sub *s;
	gw_waiter *x, *xn;
	int64_t now_ms = cm_mono_ms(), now_us = cm_wall_us();
	LIST_FOREACH(s, &w->subs, link) {
		while ((x = TAILQ_FIRST(&s->answering)) != NULL) answer_due(r, s, x, now_ms, now_us);
		for (x = TAILQ_FIRST(&s->held); x; x = xn) {
			xn = TAILQ_NEXT(x, link);
			if (!x->owed) gw_waiter_finish(r, x, 304, w);
		}
	}
}

/* The last word: nothing is waited for any more. New state only on a fresh token (else 401, or 503 when
 * it could not be checked); held waiters their version, 304 (an owed one 503, see gw_waiter_finish). */
void gw_answer_abort_watch(gw_registry *r, gw_watch *w)
{
	gw_sub *s;
	gw_waiter *x;
	int64_t now_ms = cm_mono_ms(), now_us = cm_wall_us();
	LIST_FOREACH(s, &w->subs, link) {
		while ((x = TAILQ_FIRST(&s->answering)) != NULL) {
			auth_trust t = trust(r, x, now_ms, now_us);
			if (t == AUTH_TRUST_FRESH) r->st.answered_change++;
			gw_waiter_finish(r, x, t == AUTH_TRUST_FRESH ? 200 : t == AUTH_TRUST_DEAD ? 401 : 503,
			                 t == AUTH_TRUST_FRESH ? w : NULL);
		}
		while ((x = TAILQ_FIRST(&s->held)) != NULL) gw_waiter_finish(r, x, 304, w);
		while ((x = TAILQ_FIRST(&s->pending)) != NULL) gw_waiter_finish(r, x, 503, NULL);
	}
}
