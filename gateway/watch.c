/*
 * gateway/watch.c — the registry's tables, at the bottom of its chain (docs/architecture.md): watches,
 * subs, users and per-client counters, found in O(1) through keyed hash tables; their lifetimes and
 * freshness; the watch timer (the safety net while held, the linger otherwise); and the queues a read is
 * asked for through (dirty watches, tokens to look up) with the deferred flush's trigger. It calls nothing
 * above it: the flush is an event whose callback reread.c owns (registered by registry.c).
 *
 * Freshness, in one place:
 *   - a watch's view is fresh when it has been read, no read is due (not dirty, none in flight) and the
 *     read it came from ran while the LISTEN session was up and stayed up (no NOTIFY can have been lost);
 *     a terminal watch is closed and its view is final;
 *   - a sub is fresh when its user was found entitled by a read sent less than auth_cache_ttl ago.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/hmap.h"
#include "gateway/watch-internal.h"

static const char *const kind_names[] = {"run", "review_pack"};
const char *gw_kind_name(gw_kind k)
{
	return kind_names[k];
}

/* ---- keys ---- */

typedef struct watch_key {
	gw_kind kind;
	int64_t id;
} watch_key;

static uint64_t watch_hash(gw_kind kind, int64_t id)
{
	uint8_t k[9];
	memcpy(k, &id, 8);
	k[8] = (uint8_t)kind;
	return cm_hash_bytes(k, sizeof k);
}

static bool watch_eq(const cm_hnode *n, const void *key)
{
	const gw_watch *w = CM_CONTAINER_OF(n, const gw_watch, node);
	const watch_key *k = key;
	return w->kind == k->kind && w->id == k->id;
}

typedef struct sub_key {
	const gw_watch *w;
	int64_t user_id;
} sub_key;

static uint64_t sub_hash(const gw_watch *w, int64_t user_id)
{
	uint8_t k[16];
	memcpy(k, &w, sizeof w < 8 ? sizeof w : 8);
	memcpy(k + 8, &user_id, 8);
	return cm_hash_bytes(k, sizeof k);
}

static bool sub_eq(const cm_hnode *n, const void *key)
{
	const gw_sub *s = CM_CONTAINER_OF(n, const gw_sub, node);
	const sub_key *k = key;
	return s->w == k->w && s->user_id == k->user_id;
}

static bool counter_eq(const cm_hnode *n, const void *key)
{
	return memcmp(CM_CONTAINER_OF(n, const gw_counter, node)->key, key, 16) == 0;
}

gw_counter *gw_counter_get(cm_hmap *m, const uint8_t key[16], bool create)
{
	uint64_t h = cm_hash_bytes(key, 16);
	cm_hnode *n = cm_hmap_find(m, h, counter_eq, key);
	gw_counter *c;
	if (n || !create) return n ? CM_CONTAINER_OF(n, gw_counter, node) : NULL;
	c = calloc(1, sizeof *c);
	if (c == NULL) return NULL;
	memcpy(c->key, key, 16);
	(void)cm_hmap_insert(m, &c->node, h);
	return c;
}

void gw_counter_put(cm_hmap *m, gw_counter *c)
{
	if (c && --c->n == 0) {
		cm_hmap_remove(m, &c->node);
		free(c);
	}
}


/* ---- watches and subs ---- */

static void on_watch_timer(evutil_socket_t fd, short what, void *arg);

gw_watch *gw_watch_find(gw_registry *r, gw_kind kind, int64_t id)
{
	watch_key k = {kind, id};
	cm_hnode *n = cm_hmap_find(&r->watches, watch_hash(kind, id), watch_eq, &k);
	return n ? CM_CONTAINER_OF(n, gw_watch, node) : NULL;
}

gw_watch *gw_watch_get(gw_registry *r, gw_kind kind, int64_t id)
{
	gw_watch *w = gw_watch_find(r, kind, id);
	if (w) return w;
	w = calloc(1, sizeof *w);
	if (w == NULL) return NULL;
	w->reg = r;
	w->kind = kind;
	w->id = id;
	LIST_INIT(&w->subs);
	evtimer_assign(&w->timer, r->base, on_watch_timer, w);
	(void)cm_hmap_insert(&r->watches, &w->node, watch_hash(kind, id));
	r->st.watches[kind]++;
	return w;
}

gw_sub *gw_sub_find(gw_registry *r, gw_watch *w, int64_t user_id)
{
	sub_key k = {w, user_id};
	cm_hnode *n = cm_hmap_find(&r->subs, sub_hash(w, user_id), sub_eq, &k);
	return n ? CM_CONTAINER_OF(n, gw_sub, node) : NULL;
}

static bool user_eq(const cm_hnode *n, const void *key)
{
	return CM_CONTAINER_OF(n, const gw_user, node)->user_id == *(const int64_t *)key;
}

gw_user *gw_user_find(gw_registry *r, int64_t user_id)
{
	cm_hnode *n = cm_hmap_find(&r->user_subs, cm_hash_bytes(&user_id, sizeof user_id), user_eq, &user_id);
	return n ? CM_CONTAINER_OF(n, gw_user, node) : NULL;
}

gw_sub *gw_sub_get(gw_registry *r, gw_watch *w, int64_t user_id)
{
	gw_sub *s = gw_sub_find(r, w, user_id);
	if (s) return s;
	gw_user *u = gw_user_find(r, user_id);
	if (u == NULL) {
		if ((u = calloc(1, sizeof *u)) == NULL) return NULL;
		u->user_id = user_id;
		LIST_INIT(&u->subs);
		(void)cm_hmap_insert(&r->user_subs, &u->node, cm_hash_bytes(&user_id, sizeof user_id));
	}
	s = calloc(1, sizeof *s);
	if (s == NULL) {
		if (LIST_EMPTY(&u->subs)) {
			cm_hmap_remove(&r->user_subs, &u->node);
			free(u);
		}
		return NULL;
	}
	s->user = u;
	LIST_INSERT_HEAD(&u->subs, s, user_link);
	s->w = w;
	s->user_id = user_id;
	TAILQ_INIT(&s->pending);
	TAILQ_INIT(&s->held);
	TAILQ_INIT(&s->answering);
	LIST_INSERT_HEAD(&w->subs, s, link);
	(void)cm_hmap_insert(&r->subs, &s->node, sub_hash(w, user_id));
	r->st.subs++;
	return s;
}

void gw_sub_free(gw_registry *r, gw_sub *s)
{
	gw_user *u = s->user;
	LIST_REMOVE(s, user_link);
	if (LIST_EMPTY(&u->subs)) {
		cm_hmap_remove(&r->user_subs, &u->node);
		free(u);
	}
	if (s->in_answer_q) TAILQ_REMOVE(&r->answer_q, s, answer_link);
	LIST_REMOVE(s, link);
	cm_hmap_remove(&r->subs, &s->node);
	r->st.subs--;
	free(s);
}

bool gw_sub_fresh(const gw_registry *r, const gw_sub *s, int64_t now)
{
	return s->ent == ENT_ENTITLED && now - s->checked_ms < r->cfg->auth_cache_ttl_ms;
}

bool gw_sub_idle(const gw_sub *s)
{
	return TAILQ_EMPTY(&s->pending) && TAILQ_EMPTY(&s->held) && TAILQ_EMPTY(&s->answering);
}

bool gw_view_fresh(const gw_watch *w)
{
	if (w->have == HAVE_NOTHING) return false;
	if (w->closed && w->have == HAVE_ROW) return true;
	return !w->stale && !w->dirty && !w->in_flight;
}

/* Drop the view and what was rendered from it. */
void gw_watch_clear_view(gw_watch *w)
{
	pol_view_clear(&w->view);
	free(w->render);
	w->render = NULL;
}

void gw_watch_free(gw_watch *w)
{
	gw_registry *r = w->reg;
	gw_sub *s;
	while ((s = LIST_FIRST(&w->subs)) != NULL) gw_sub_free(r, s);
	gw_watch_undirty(w);
	if (w->retry_on_up) r->n_retry_on_up--;
	evtimer_del(&w->timer);
	cm_hmap_remove(&r->watches, &w->node);
	r->st.watches[w->kind]--;
	gw_watch_clear_view(w);
	free(w);
}

/* Free a watch nobody needs any more: no waiters, no read in flight, and either never read, missing, or
 * simply unwanted after its linger timer (the caller decides by passing force). */
void gw_watch_maybe_free(gw_watch *w)
{
	if (w->in_flight || w->n_held || w->n_pending) return;
	/* A read row with a timer still pending lingers as a cache; a missing row or a never-read watch
	 * does not (ids are cheap to invent; their watches must not pile up). */
	if (w->have == HAVE_ROW && evtimer_pending(&w->timer, NULL)) return;
	gw_watch_free(w);
}

void gw_watch_undirty(gw_watch *w)
{
	gw_registry *r = w->reg;
	if (!w->dirty) return;
	if (r->dirty_safety[w->kind] == w) r->dirty_safety[w->kind] = TAILQ_NEXT(w, dirty_link);
	TAILQ_REMOVE(&r->dirty[w->kind], w, dirty_link);
	w->dirty = false;
}

/* Queue a watch for the next batched read without scheduling the flush. A safety-net read goes to the
 * back; anything else goes ahead of every safety-net read, and takes over a safety-net read already
 * queued for the watch (a hint during a sweep is read first, and counted as a hint). */
void gw_watch_mark_dirty_quiet(gw_watch *w, int cause)
{
	gw_registry *r = w->reg;
	if (w->dirty && (cause == CAUSE_SAFETY || w->wake_cause != CAUSE_SAFETY)) return;
	gw_watch_undirty(w);
	w->dirty = true;
	w->wake_cause = cause;
	if (cause == CAUSE_SAFETY) {
		TAILQ_INSERT_TAIL(&r->dirty[w->kind], w, dirty_link);
		if (r->dirty_safety[w->kind] == NULL) r->dirty_safety[w->kind] = w;
	} else if (r->dirty_safety[w->kind] != NULL) {
		TAILQ_INSERT_BEFORE(r->dirty_safety[w->kind], w, dirty_link);
	} else {
		TAILQ_INSERT_TAIL(&r->dirty[w->kind], w, dirty_link);
	}
}

void gw_watch_mark_dirty(gw_watch *w, int cause)
{
	gw_watch_mark_dirty_quiet(w, cause);
	gw_schedule_flush(w->reg);
}

void gw_watch_arm(gw_watch *w, int64_t ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(&w->timer, &tv);
}

/* The safety net: due at most `interval` from now, rounded *down* to a grid of a quarter interval (at most
 * a second), so resources read at different moments come due together and share one batched re-read
 * instead of a query each. Never later than the interval allows. */
void gw_watch_arm_safety(gw_watch *w, int64_t interval)
{
	int64_t grid = interval / 4 < 1000 ? interval / 4 : 1000;
	int64_t now = cm_mono_ms(), due = now + interval;
	if (grid > 0) due -= due % grid;
	if (due <= now) due = now + interval;
	gw_watch_arm(w, due - now);
}

/* After a read: when to look again (held and active), or how long to linger as a cache. */
void gw_watch_rearm(gw_watch *w)
{
	const conf *c = w->reg->cfg;
	if (w->have != HAVE_ROW) {
		evtimer_del(&w->timer);
		return;
	}
	if (w->closed) gw_watch_arm(w, c->terminal_linger_ms);
	else if (w->view.active) gw_watch_arm_safety(w, w->view.interval_ms);
	else gw_watch_arm(w, c->policy.pack_interval_ms); /* unknown state: linger one pack interval */
}

static void on_watch_timer(evutil_socket_t fd, short what, void *arg)
{
	gw_watch *w = arg;
	gw_registry *r = w->reg;
	gw_sub *s, *next;
	int64_t now = cm_mono_ms();
	(void)fd;
	(void)what;

	/* Forget entitlement verdicts nobody is using. */
	for (s = LIST_FIRST(&w->subs); s; s = next) {
		next = LIST_NEXT(s, link);
		if (gw_sub_idle(s) && s->check_seq == 0 && !gw_sub_fresh(r, s, now)) gw_sub_free(r, s);
	}
	if (w->n_held > 0 && !w->closed) {
		/* The safety net: re-read even without a NOTIFY — unless a read is already queued or in flight
		 * (its result re-arms this timer). Due watches are collected for a few milliseconds, so the
		 * whole grid tick goes out as one batch. */
		if (!w->dirty && !w->in_flight) {
			gw_watch_mark_dirty_quiet(w, CAUSE_SAFETY);
			gw_schedule_flush_soon(r);
		}
		return;
	}
	if (w->n_pending == 0 && !w->in_flight) gw_watch_free(w);
}


void gw_for_each_watch(gw_registry *r, void (*fn)(gw_registry *r, gw_watch *w))
{
	cm_hmap_iter it;
	/* fn may free the watch it is given (the iterator has already stepped past it). */
	for (cm_hnode *n = cm_hmap_first(&r->watches, &it); n; n = cm_hmap_next(&it))
		fn(r, CM_CONTAINER_OF(n, gw_watch, node));
}


/* ---- the queues a read is asked for through ---- */

void gw_schedule_flush(gw_registry *r)
{
	/* Deferred to the end of this loop iteration, so every hint of the iteration shares one query. */
	if (!r->flush_scheduled) {
		r->flush_scheduled = true;
		event_active(r->flush_ev, EV_TIMEOUT, 0);
	}
}


void gw_schedule_flush_soon(gw_registry *r)
{
	/* Safety-net ticks: timers of one grid tick fire microseconds apart, possibly in different loop
	 * iterations; waiting 5 ms lets them all join one batch. A flush that runs earlier takes them too. */
	static const struct timeval soon = {0, 5000};
	if (!r->flush_scheduled && !evtimer_pending(r->flush_soon_ev, NULL)) evtimer_add(r->flush_soon_ev, &soon);
}

void gw_token_recheck(gw_registry *r, auth_token *t)
{
	if (t->in_batch || t->state == AUTH_TOKEN_LOOKING) return;
	if (auth_token_trust(t, cm_mono_ms(), cm_wall_us(), r->cfg->auth_cache_ttl_ms) != AUTH_TRUST_RECHECK) return;
	t->in_batch = true;
	TAILQ_INSERT_TAIL(&r->token_dirty, t, batch_link);
	gw_schedule_flush(r);
}


void gw_token_retry(gw_registry *r, auth_token *t)
{
	static const struct timeval one = {1, 0};
	if (t->in_batch || t->state == AUTH_TOKEN_LOOKING) return;
	t->in_batch = true;
	TAILQ_INSERT_TAIL(&r->token_retry, t, batch_link);
	if (!evtimer_pending(r->token_retry_ev, NULL)) evtimer_add(r->token_retry_ev, &one);
}
