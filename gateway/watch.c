/*
 * gateway/watch.c — the registry itself: watches, subs and waiters, their lifetimes, deciding and
 * answering one request, holding it, and the entry points (submit, hints). See watch.h for the model;
 * the batched reads live in reread.c, answering in bulk (wakes, revocations, drain) in answer.c.
 *
 * Freshness, in one place:
 *   - a watch's view is fresh when it has been read, no read is due (not dirty, none in flight) and the
 *     read it came from ran while the LISTEN session was up and stayed up (no NOTIFY can have been lost);
 *     a terminal watch is closed and its view is final;
 *   - a sub is fresh when its user was found entitled by a read sent less than auth_cache_ttl ago.
 * A new request is held from a fresh cache when its version is current; any other answer reads first.
 */
#include "gateway/watch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "common/hmap.h"
#include "common/log.h"
#include "gateway/cidr.h"
#include "gateway/http.h"
#include "gateway/watch-internal.h"
#include "db/pool.h"
#include "policy/policy.h"

static const char *const kind_names[] = {"run", "review_pack"};
const char *gw_kind_name(gw_kind k)
{
	return kind_names[k];
}

static bool client_matches(const gw_waiter *w, const char *etag);


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
	const gw_watch *w = (const gw_watch *)(const void *)n;
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
	const gw_sub *s = (const gw_sub *)(const void *)n;
	const sub_key *k = key;
	return s->w == k->w && s->user_id == k->user_id;
}

static bool counter_eq(const cm_hnode *n, const void *key)
{
	return memcmp(((const gw_counter *)(const void *)n)->key, key, 16) == 0;
}

static gw_counter *counter_get(cm_hmap *m, const uint8_t key[16], bool create)
{
	uint64_t h = cm_hash_bytes(key, 16);
	gw_counter *c = (gw_counter *)(void *)cm_hmap_find(m, h, counter_eq, key);
	if (c || !create) return c;
	c = calloc(1, sizeof *c);
	if (c == NULL) return NULL;
	memcpy(c->key, key, 16);
	(void)cm_hmap_insert(m, &c->node, h);
	return c;
}

static void counter_put(cm_hmap *m, gw_counter *c)
{
	if (c && --c->n == 0) {
		cm_hmap_remove(m, &c->node);
		free(c);
	}
}

/* ---- answering ---- */

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

/* Unlink a waiter from whatever list it is on and drop its references. */
static void waiter_detach(gw_registry *r, gw_waiter *w)
{
	gw_sub *s = w->sub;
	switch (w->state) {
	case GW_W_AUTH:
		TAILQ_REMOVE(&w->token->waiting, &w->auth_link, link);
		r->st.pending--;
		break;
	case GW_W_READ:
		TAILQ_REMOVE(&s->pending, w, link);
		s->w->n_pending--;
		r->st.pending--;
		break;
	case GW_W_HELD:
	case GW_W_ANSWERING:
		if (w->state == GW_W_HELD) TAILQ_REMOVE(&s->held, w, link);
		else TAILQ_REMOVE(&s->answering, w, link);
		if (w->owed) {
			w->owed = false;
			s->n_owed--;
			r->n_owed--;
		}
		s->w->n_held--;
		r->st.held[w->kind]--;
		s->user->held--;
		counter_put(&r->clients, w->client);
		w->client = NULL;
		if (r->shm) gw_shm_hold_put(r->shm, r->worker, &w->place);
		break;
	case GW_W_NEW: break;
	}
	w->state = GW_W_NEW;
	w->sub = NULL;
	if (w->token) {
		w->token->users--;
		w->token = NULL;
	}
	event_del(&w->ev);
	r->outstanding--;
}

/* Answer and free a waiter. `what` is the status; for 200/304 the watch's view is used. */
void gw_waiter_finish(gw_registry *r, gw_waiter *w, int code, const pol_view *v)
{
	/* A waiter owed new state that could not be given it (its token could not be checked again in time)
	 * is never told "unchanged": a 304 would carry the new ETag without the state. It asks again. */
	if (code == 304 && w->owed) code = 503;
	struct evhttp_request *req = w->req;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	unsigned flags = r->draining ? GW_REPLY_CLOSE : 0;
	char rid[sizeof w->rid], client[48];
	bool held = w->state == GW_W_HELD || w->state == GW_W_ANSWERING;
	uint64_t all_held = r->shm ? gw_shm_held(r->shm) : r->st.held[GW_RUN] + r->st.held[GW_PACK];
	bool at_cap = code == 503 && all_held >= (uint64_t)r->cfg->max_waiters;
	gw_hold_reason why = gw_hold_classify(code, held, r->draining, v && v->terminal, at_cap);

	memcpy(rid, w->rid, sizeof rid);
	gw_hold_observe(&r->st.hold, why, cm_mono_ms() - w->start_ms);
	if (cm_log_access_enabled()) {
		gw_http_format_addr(w->client_addr, client, sizeof client);
		gw_http_access_note(client, w->start_ms, gw_hold_reason_name(why));
	}
	waiter_detach(r, w);
	if (evcon) evhttp_connection_set_closecb(evcon, NULL, NULL);
	switch (code) {
	case 200:
		gw_http_reply(req, rid, 200, v->etag, v->body, v->body_len, flags); /* evhttp sends no body for HEAD */
		break;
	case 304: gw_http_reply(req, rid, 304, v->etag, NULL, 0, flags); break;
	case 401: gw_http_error(req, rid, GW_ERR_UNAUTHORIZED, NULL, 0, flags); break;
	case 404: gw_http_error(req, rid, GW_ERR_NOT_FOUND, NULL, 0, flags); break;
	case 429: gw_http_error(req, rid, GW_ERR_TOO_MANY, NULL, r->cfg->retry_after_s, flags); break;
	default: gw_http_error(req, rid, GW_ERR_UNAVAILABLE, NULL, r->cfg->retry_after_s, flags); break;
	}
	r->st.answers[w->kind][gw_http_status_index(code)]++;
	rlog_debug(rid, "answered status=%d", code);
	free(w);
}

/* The client left: free the waiter and its connection without answering. */
static void waiter_gone(gw_registry *r, gw_waiter *w)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(w->req);
	gw_sub *s = w->sub;
	gw_watch *wt = s ? s->w : NULL;

	rlog_debug(w->rid, "client left state=%d", (int)w->state);
	gw_hold_observe(&r->st.hold, GW_HOLD_DISCONNECT, cm_mono_ms() - w->start_ms);
	if (cm_log_access_enabled()) {
		char client[48];
		gw_http_format_addr(w->client_addr, client, sizeof client);
		gw_http_access_note(client, w->start_ms, "disconnect");
		gw_http_access_log(w->req, w->rid, 0, 0);
	}
	waiter_detach(r, w);
	r->st.disconnects++;
	free(w);
	if (evcon) {
		evhttp_connection_set_closecb(evcon, NULL, NULL);
		evhttp_connection_free(evcon); /* frees the request too */
	}
	if (wt) gw_watch_maybe_free(wt);
}

static void on_waiter_event(evutil_socket_t fd, short what, void *arg);

/* Has the connection under unread (pipelined) bytes been reset or closed by the peer? A peek cannot say:
 * the kernel hands out queued bytes before it reports a reset. */
static bool socket_dead(evutil_socket_t fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	int err = 0;
	socklen_t elen = sizeof err;

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && len >= sizeof ti.tcpi_state &&
	    ti.tcpi_state != TCP_ESTABLISHED)
		return true;
	return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0;
}

/* Bytes a client may pipeline behind a held request before it is dropped: the next request's head. */
static size_t pipelined_max(const gw_registry *r)
{
	return (size_t)r->cfg->max_header_size;
}

/* The waiter's socket: EV_CLOSED catches a FIN (EPOLLRDHUP) and EV_READ the rest. epoll reports a reset
 * (EPOLLHUP/EPOLLERR) as readable and writable, never as a close, and keeps reporting it (level-
 * triggered) until the socket is closed; so every readable event must end in freeing the waiter or in
 * an empty receive queue, or the loop spins. Bytes of a pipelined request are moved into evhttp's own
 * input buffer (evhttp reads on from there after our answer), so the socket is again quiet until
 * something new happens on it; a reset behind them is found through the TCP state. */
static void on_waiter_event(evutil_socket_t fd, short what, void *arg)
{
	gw_waiter *w = arg;
	gw_registry *r = w->reg;
	if (what & EV_CLOSED) {
		waiter_gone(r, w);
		return;
	}
	if (what & EV_READ) {
		char c;
		ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			waiter_gone(r, w);
			return;
		}
		if (n > 0) {
			struct evbuffer *in = bufferevent_get_input(
			    evhttp_connection_get_bufferevent(evhttp_request_get_connection(w->req)));
			/* The input buffer's end is frozen: bufferevent_socket thaws it only around its own reads. */
			int got = -1;
			if (!socket_dead(fd) && evbuffer_unfreeze(in, 0) == 0) {
				got = evbuffer_read(in, fd, -1);
				evbuffer_freeze(in, 0);
			}
			if (got <= 0 || evbuffer_get_length(in) > pipelined_max(r)) {
				rlog_debug(w->rid, "client left: a reset behind pipelined bytes, or too many pipelined bytes");
				waiter_gone(r, w);
				return;
			}
		}
		/* libevent restarted the hold's timeout at this event (EV_PERSIST): put the deadline back. */
		if (w->hold_until_ms > 0) {
			int64_t left = w->hold_until_ms - cm_mono_ms();
			if (left < 0) left = 0;
			struct timeval tv = {left / 1000, (left % 1000) * 1000};
			event_add(&w->ev, &tv);
		}
		return;
	}
	if ((what & EV_TIMEOUT) && w->state == GW_W_HELD) {
		gw_watch *wt = w->sub->w;
		r->st.answered_expiry++;
		gw_waiter_finish(r, w, 304, &wt->view);
		gw_watch_maybe_free(wt);
	}
}

/* evhttp freed the connection under us (should not happen while we hold it; belt and braces). */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
	gw_waiter *w = arg;
	gw_registry *r = w->reg;
	gw_watch *wt = w->sub ? w->sub->w : NULL;
	(void)evcon;
	waiter_detach(r, w);
	r->st.disconnects++;
	free(w);
	if (wt) gw_watch_maybe_free(wt);
}

/* ---- watches and subs ---- */

static void on_watch_timer(evutil_socket_t fd, short what, void *arg);

gw_watch *gw_watch_find(gw_registry *r, gw_kind kind, int64_t id)
{
	watch_key k = {kind, id};
	return (gw_watch *)(void *)cm_hmap_find(&r->watches, watch_hash(kind, id), watch_eq, &k);
}

static gw_watch *watch_get(gw_registry *r, gw_kind kind, int64_t id)
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
	return (gw_sub *)(void *)cm_hmap_find(&r->subs, sub_hash(w, user_id), sub_eq, &k);
}

static bool user_eq(const cm_hnode *n, const void *key)
{
	return ((const gw_user *)(const void *)n)->user_id == *(const int64_t *)key;
}

gw_user *gw_user_find(gw_registry *r, int64_t user_id)
{
	return (gw_user *)(void *)cm_hmap_find(&r->user_subs, cm_hash_bytes(&user_id, sizeof user_id), user_eq, &user_id);
}

static gw_sub *sub_get(gw_registry *r, gw_watch *w, int64_t user_id)
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

static void watch_free(gw_watch *w)
{
	gw_registry *r = w->reg;
	gw_sub *s;
	while ((s = LIST_FIRST(&w->subs)) != NULL) gw_sub_free(r, s);
	if (w->dirty) TAILQ_REMOVE(&r->dirty[w->kind], w, dirty_link);
	if (w->retry_on_up) r->n_retry_on_up--;
	evtimer_del(&w->timer);
	cm_hmap_remove(&r->watches, &w->node);
	r->st.watches[w->kind]--;
	pol_view_clear(&w->view);
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
	watch_free(w);
}

/* Queue a watch for the next batched read without scheduling the flush. */
static void mark_dirty_quiet(gw_watch *w, int cause)
{
	gw_registry *r = w->reg;
	if (!w->dirty) {
		w->dirty = true;
		w->wake_cause = cause;
		TAILQ_INSERT_TAIL(&r->dirty[w->kind], w, dirty_link);
	}
}

static void mark_dirty(gw_watch *w, int cause)
{
	mark_dirty_quiet(w, cause);
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
			mark_dirty_quiet(w, CAUSE_SAFETY);
			gw_schedule_flush_soon(r);
		}
		return;
	}
	if (w->n_pending == 0 && !w->in_flight) watch_free(w);
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
	gw_counter *cl = counter_get(&r->clients, cap_key, true);
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
		gw_waiter_finish(r, w, 200, &wt->view);
		return;
	}
	if (!wt->view.active || wt->closed || w->wait_ms == 0 || r->draining) {
		gw_waiter_finish(r, w, 304, &wt->view);
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
	if (need_read && !wt->in_flight) mark_dirty(wt, CAUSE_NEW);
}

/* ---- token stage ---- */

static void gw_attach(gw_registry *r, gw_waiter *w);

void gw_token_resolved(gw_registry *r, auth_token *t, bool failed)
{
	auth_wait *aw;
	int64_t now = cm_mono_ms(), now_us = cm_wall_us();
	while ((aw = TAILQ_FIRST(&t->waiting)) != NULL) {
		gw_waiter *w = (gw_waiter *)(void *)((char *)aw - offsetof(gw_waiter, auth_link));
		TAILQ_REMOVE(&t->waiting, aw, link);
		r->st.pending--;
		w->state = GW_W_NEW;
		if (failed) gw_waiter_finish(r, w, 503, NULL);
		else if (!auth_token_fresh(t, now, now_us, r->cfg->auth_cache_ttl_ms + 60000)) gw_waiter_finish(r, w, 401, NULL);
		else gw_attach(r, w);
	}
}

/* ---- entry points ---- */

static void gw_attach(gw_registry *r, gw_waiter *w)
{
	gw_watch *wt = watch_get(r, w->kind, w->id);
	gw_sub *s = wt ? sub_get(r, wt, w->token->user_id) : NULL;
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

void gw_reg_submit(gw_registry *r, gw_waiter *w)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(w->req);
	evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	int64_t now = cm_mono_ms();

	w->reg = r;
	w->state = GW_W_NEW;
	event_assign(&w->ev, r->base, fd, EV_CLOSED | EV_READ | EV_PERSIST, on_waiter_event, w);
	event_add(&w->ev, NULL);
	evhttp_connection_set_closecb(evcon, on_conn_close, w);

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
		mark_dirty(w, CAUSE_NOTIFY);
	} else {
		w->stale = true; /* a cache nobody waits on: read it when somebody asks */
	}
}

static void distrust_verdict(gw_sub *s)
{
	s->checked_ms = INT64_MIN / 2;
	if (!TAILQ_EMPTY(&s->held) && !s->w->closed) mark_dirty(s->w, CAUSE_NOTIFY);
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
	for (size_t i = 0; i < r->subs.nbuckets; i++)
		for (cm_hnode *n = r->subs.buckets[i]; n; n = n->next) distrust_verdict((gw_sub *)(void *)n);
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
			mark_dirty(s->w, CAUSE_NOTIFY);
		}
	}
}

void gw_for_each_watch(gw_registry *r, void (*fn)(gw_registry *r, gw_watch *w))
{
	for (size_t i = 0; i < r->watches.nbuckets; i++) {
		cm_hnode *n = r->watches.buckets[i];
		while (n) {
			cm_hnode *next = n->next;
			fn(r, (gw_watch *)(void *)n);
			n = next;
		}
	}
}

static void reread_after_reconnect(gw_registry *r, gw_watch *w)
{
	(void)r;
	if (w->closed) return;
	w->stale = true;
	if (w->n_held || w->n_pending) mark_dirty(w, CAUSE_RECONNECT);
}

void gw_reg_listen_up(gw_registry *r)
{
	r->listen_up = true;
	r->epoch++;
	/* Notifications sent while the session was down are lost, access hints too: no token lookup or
	 * entitlement verdict made before now is trusted any more. Held tokens are looked up again at once (a
	 * revoked one gets its 401 now), verdicts with the re-read of every held resource below. */
	auth_cache_invalidate_user(r->tokens, -1);
	for (size_t i = 0; i < r->subs.nbuckets; i++) {
		for (cm_hnode *n = r->subs.buckets[i]; n; n = n->next) {
			gw_sub *s = (gw_sub *)(void *)n;
			gw_waiter *x;
			s->checked_ms = INT64_MIN / 2;
			TAILQ_FOREACH(x, &s->held, link) gw_token_recheck(r, x->token);
			TAILQ_FOREACH(x, &s->answering, link) gw_token_recheck(r, x->token);
		}
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
	if ((w->n_held || w->n_pending) && !w->in_flight) mark_dirty(w, CAUSE_RECONNECT);
}

void gw_reg_pool_changed(gw_registry *r)
{
	/* Reads that failed for want of a connection are not left to the safety net (up to an interval
	 * away): changes made while the database was unreachable reach held clients as soon as it is back. */
	if (r->n_retry_on_up && db_pool_connected(r->pool) > 0) gw_for_each_watch(r, retry_after_pool_up);
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

gw_registry *gw_reg_new(struct event_base *base, const conf *cfg, struct db_pool *pool)
{
	gw_registry *r = calloc(1, sizeof *r);
	struct timeval one = {1, 0};
	if (r == NULL) return NULL;
	r->base = base;
	r->cfg = cfg;
	r->pool = pool;
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
		while ((x = TAILQ_FIRST(&s->answering)) != NULL) waiter_gone(r, x);
		while ((x = TAILQ_FIRST(&s->held)) != NULL) waiter_gone(r, x);
		while ((x = TAILQ_FIRST(&s->pending)) != NULL) waiter_gone(r, x);
	}
}

static void free_watch_only(gw_registry *r, gw_watch *w)
{
	(void)r;
	w->in_flight = false;
	watch_free(w);
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

const gw_reg_stats *gw_reg_get_stats(const gw_registry *r)
{
	return &r->st;
}

size_t gw_reg_token_cache_size(const gw_registry *r)
{
	return auth_cache_size(r->tokens);
}
