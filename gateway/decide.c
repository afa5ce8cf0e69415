/*
 * gateway/decide.c — deciding requests: a new or pending waiter is answered now (200, 304, 401, 404,
 * 503) or held within the caps, from a fresh cache or right after a read (gw_sub_process); and the token
 * stage before it (a looked-up token lets its waiters on, gw_token_resolved; a re-checked one lets the
 * held waiters owed new state have it, gw_token_verified). Called by registry.c and reread.c; calls
 * answer.c, waiter.c and watch.c.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "gateway/answer.h"
#include "gateway/cidr.h"
#include "gateway/decide.h"
#include "gateway/http.h"
#include "gateway/waiter.h"
#include "gateway/watch-internal.h"

static const struct timeval *hold_tv(gw_registry *r, int64_t ms, struct timeval *tmp)
{
	/* Equal waits share one of libevent's common-timeout queues: O(1) insertion instead of the heap. */
	for (int i = 0; i < r->n_common; i++)
		if (r->common_ms[i] == ms) return r->common_tv[i];
	tmp->tv_sec = ms / 1000;
	tmp->tv_usec = (ms % 1000) * 1000;
	if (r->n_common < (int)(sizeof r->common_tv / sizeof r->common_tv[0])) {
		const struct timeval *c = event_base_init_common_timeout(r->base, tmp);
		if (c) {
			r->common_tv[r->n_common] = c;
			r->common_ms[r->n_common++] = ms;
			return c;
		}
	}
	return tmp;
}

/* ---- deciding one waiter ---- */

static bool client_matches(const gw_waiter *w, const char *etag)
{
	if (w->inm) return gw_http_inm_matches(w->inm, etag);
	if (w->has_since) return !w->since_junk && strcmp(w->since, etag) == 0;
	return false;
}

static void counter_drop_unused(cm_hmap *m, gw_counter *c)
{
	if (c && c->n == 0) {
		cm_hmap_remove(m, &c->node);
		free(c);
	}
}

/* Park a pending waiter (state READ on s->pending) as held, within the caps. */
static void hold(gw_registry *r, gw_sub *s, gw_waiter *w)
{
	const conf *c = r->cfg;
	struct timeval tmp;
	uint64_t held = r->st.held[GW_RUN] + r->st.held[GW_PACK];

	if (held >= (uint64_t)c->max_waiters) {
		r->st.rejected_cap++;
		gw_waiter_finish(r, w, 503, NULL);
		return;
	}
	gw_user *u = s->user; /* the user's entry lives as long as it has a sub: the held count lives there */
	/* The per-client cap counts an IPv6 client by its prefix; w->client_addr keeps the whole address
	 * for the logs. The counter is remembered on the waiter, so a reload of the prefix during the hold
	 * releases the counter it took. */
	uint8_t cap_key[16];
	memcpy(cap_key, w->client_addr, sizeof cap_key);
	gw_cidr_key_prefix(cap_key, (int)c->client_ipv6_prefix);
	gw_counter *cl = gw_counter_get(&r->clients, cap_key, true);
	if (cl == NULL || u->held >= (uint64_t)c->max_waiters_per_principal ||
	    cl->n >= (uint64_t)c->max_waiters_per_client) {
		counter_drop_unused(&r->clients, cl);
		r->st.rejected_cap++;
		gw_waiter_finish(r, w, cl ? 429 : 503, NULL);
		return;
	}
	/* Workers > 1: the same caps for the whole server, counted in shared memory (see shared.h). */
	gw_shm_verdict v = r->shm ? gw_shm_hold_take(r->shm, r->worker, u->user_id, cap_key, c->max_waiters,
	                                             c->max_waiters_per_principal, c->max_waiters_per_client, &w->place)
	                          : GW_SHM_TAKEN;
	if (v != GW_SHM_TAKEN) {
		counter_drop_unused(&r->clients, cl);
		r->st.rejected_cap++;
		gw_waiter_finish(r, w, v == GW_SHM_FULL ? 503 : 429, NULL);
		return;
	}
	TAILQ_REMOVE(&s->pending, w, link);
	s->w->n_pending--;
	r->st.pending--;
	u->held++;
	cl->n++;
	w->client = cl;
	w->state = GW_W_HELD;
	TAILQ_INSERT_TAIL(&s->held, w, link);
	s->w->n_held++;
	r->st.held[w->kind]++;
	w->hold_until_ms = cm_mono_ms() + w->wait_ms;
	event_add(&w->ev, hold_tv(r, w->wait_ms, &tmp));
	/* A held resource is re-read at least once per interval: make sure its timer runs. */
	if (!evtimer_pending(&s->w->timer, NULL) && !s->w->closed) gw_watch_arm_safety(s->w, s->w->view.interval_ms);
}

/* Both the view and the sub are fresh (or final): answer now or hold. */
static void decide(gw_registry *r, gw_sub *s, gw_waiter *w)
{
	gw_watch *wt = s->w;
	const auth_token *t = w->token;

	if (s->ent != ENT_ENTITLED || wt->have != HAVE_ROW) {
		gw_waiter_finish(r, w, 404, NULL);
		return;
	}
	if (auth_token_trust(t, cm_mono_ms(), cm_wall_us(), r->cfg->auth_cache_ttl_ms) == AUTH_TRUST_DEAD) {
		gw_waiter_finish(r, w, 401, NULL); /* expired, or found revoked while this request waited */
		return;
	}
	if (!client_matches(w, wt->view.etag)) {
		gw_waiter_finish(r, w, 200, wt);
		return;
	}
	if (!wt->view.active || wt->closed || w->wait_ms == 0 || r->draining) {
		gw_waiter_finish(r, w, 304, wt);
		return;
	}
	hold(r, s, w);
}

/* How a sub's pending waiters are decided:
 *   PS_READ    right after a read of the watch (batch `seq`): every waiter whose user that read named, or
 *              whose trusted verdict it kept the row for, is decided on it (a sub that came meanwhile reads);
 *   PS_CACHED  a new arrival: only a waiter that the cached view would *hold* (its version is current,
 *              the resource active) or a closed watch's final view is decided from the cache — a hold is
 *              safe because a commit racing it still sends the NOTIFY that wakes it; anything that would
 *              be answered now (200, 304, 404) waits for a read, so no answer is older than the request;
 *   PS_FAILED  the read failed: new requests get 503 (a closed watch's final view excepted); waiters
 *              already held stay held on the last good view. */

static bool holdable(const gw_registry *r, const gw_watch *wt, const gw_waiter *w)
{
	if (wt->have != HAVE_ROW) return false;
	if (wt->closed) return true; /* final: answered from the view whatever it is */
	return wt->view.active && w->wait_ms > 0 && !r->draining && client_matches(w, wt->view.etag);
}

void gw_sub_process(gw_sub *s, ps_mode mode, uint64_t seq)
{
	gw_watch *wt = s->w;
	gw_registry *r = wt->reg;
	gw_waiter *w, *next;
	bool need_read = false;

	if (TAILQ_EMPTY(&s->pending)) return;
	if (s->ent == ENT_DENIED && mode == PS_READ) {
		while ((w = TAILQ_FIRST(&s->pending)) != NULL) decide(r, s, w); /* 404 */
		return;
	}
	bool verdict_ok = s->ent == ENT_ENTITLED && (gw_sub_fresh(r, s, cm_mono_ms()) || (mode == PS_READ && s->verdict_seq == seq));
	/* A row that did not come back is missing only for the users that read named, or for everyone when it
	 * kept the row: a denied user's read returns no row, which tells nothing about a sub it did not cover
	 * (one that came, or got a request, while it was in flight). Such a sub reads for itself. */
	bool covered = wt->have == HAVE_ROW || wt->kept || s->verdict_seq == seq;
	if (mode == PS_READ && verdict_ok && covered) {
		/* decide() takes each waiter off the pending list (answered or held). */
		while ((w = TAILQ_FIRST(&s->pending)) != NULL) decide(r, s, w);
		return;
	}
	bool cache_ok = verdict_ok && gw_view_fresh(wt);
	for (w = TAILQ_FIRST(&s->pending); w; w = next) {
		next = TAILQ_NEXT(w, link);
		if (mode == PS_FAILED) {
			/* A new request whose resource cannot be read gets 503, even when its version matches the
			 * last good view: holding it would promise a state nobody could check. A closed watch's
			 * final view needs no read. */
			if (verdict_ok && wt->closed && wt->have == HAVE_ROW) decide(r, s, w);
			else gw_waiter_finish(r, w, 503, NULL);
		} else if (cache_ok && holdable(r, wt, w)) {
			decide(r, s, w);
		} else {
			need_read = true;
		}
	}
	if (need_read && !wt->in_flight) gw_watch_mark_dirty(wt, CAUSE_NEW);
}


/* ---- token stage ---- */

void gw_token_resolved(gw_registry *r, auth_token *t, bool failed)
{
	auth_wait *aw;
	int64_t now = cm_mono_ms(), now_us = cm_wall_us();
	while ((aw = TAILQ_FIRST(&t->waiting)) != NULL) {
		gw_waiter *w = CM_CONTAINER_OF(aw, gw_waiter, auth_link);
		TAILQ_REMOVE(&t->waiting, aw, link);
		r->st.pending--;
		w->state = GW_W_NEW;
		if (failed) gw_waiter_finish(r, w, 503, NULL);
		else if (!auth_token_fresh(t, now, now_us, r->cfg->auth_cache_ttl_ms + 60000)) gw_waiter_finish(r, w, 401, NULL);
		else gw_attach(r, w);
	}
}

void gw_attach(gw_registry *r, gw_waiter *w)
{
	gw_watch *wt = gw_watch_get(r, w->kind, w->id);
	gw_sub *s = wt ? gw_sub_get(r, wt, w->token->user_id) : NULL;
	if (s == NULL) {
		gw_waiter_finish(r, w, 503, NULL);
		if (wt) gw_watch_maybe_free(wt);
		return;
	}
	w->state = GW_W_READ;
	w->sub = s;
	TAILQ_INSERT_TAIL(&s->pending, w, link);
	wt->n_pending++;
	r->st.pending++;
	gw_sub_process(s, PS_CACHED, 0);
}


void gw_token_verified(gw_registry *r, auth_token *t)
{
	gw_user *u;
	gw_sub *s, *next;
	int64_t now = cm_mono_ms();
	if (r->n_owed == 0 || t->state != AUTH_TOKEN_VALID || (u = gw_user_find(r, t->user_id)) == NULL) return;
	for (s = LIST_FIRST(&u->subs); s; s = next) {
		next = LIST_NEXT(s, user_link);
		if (s->n_owed == 0) continue;
		if (gw_sub_fresh(r, s, now)) {
			gw_sub_answer_owed(r, s, t);
		} else {
			/* The verdict aged while the token was checked: read it again; the read answers them. */
			s->checked_ms = INT64_MIN / 2;
			gw_watch_mark_dirty(s->w, CAUSE_NOTIFY);
		}
	}
}
