/*
 * gateway/waiter.c — one waiter's end: unlinking it from whatever list it is on, answering it through the
 * seam (r->io.reply) and freeing it, freeing it when its client leaves (r->io.drop), and its event: the
 * client's socket (EV_READ, sorted out by r->io.readable: data, a FIN or a reset) plus the hold's deadline on the
 * timer heap. Below deciding and bulk answering; calls only watch.c.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/log.h"
#include "gateway/hold.h"
#include "gateway/http.h"
#include "gateway/waiter.h"
#include "gateway/watch-internal.h"

/* Unlink a waiter from whatever list it is on and drop its references; its event stays with the caller
 * (gw_waiter_finish takes it off only after the answer, see there). */
static void waiter_unlink(gw_registry *r, gw_waiter *w)
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
		gw_counter_put(&r->clients, w->client);
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
	r->outstanding--;
}

static void waiter_detach(gw_registry *r, gw_waiter *w)
{
	waiter_unlink(r, w);
	event_del(&w->ev);
}

/* Answer and free a waiter with status `code`; a 200/304 carries the view of `wt` (else NULL). */
void gw_waiter_finish(gw_registry *r, gw_waiter *w, int code, gw_watch *wt)
{
	const pol_view *v = wt ? &wt->view : NULL;
	/* A waiter owed new state that could not be given it (its token could not be checked again in time)
	 * is never told "unchanged": a 304 would carry the new ETag without the state. It asks again. */
	if (code == 304 && w->owed) code = 503;
	unsigned flags = r->draining ? GW_REPLY_CLOSE : 0;
	bool held = w->state == GW_W_HELD || w->state == GW_W_ANSWERING;
	uint64_t all_held = r->shm ? gw_shm_held(r->shm) : r->st.held[GW_RUN] + r->st.held[GW_PACK];
	bool at_cap = code == 503 && all_held >= (uint64_t)r->cfg->max_waiters;
	gw_hold_reason why = gw_hold_classify(code, held, r->draining, v && v->terminal, at_cap);

	gw_hold_observe(&r->st.hold, why, cm_mono_ms() - w->start_ms);
	waiter_unlink(r, w);
	r->io.reply(r->io.arg, w, code, v, wt ? &wt->render : NULL, flags, gw_hold_reason_name(why));
	/* Off the socket only now: on keep-alive the answer has re-armed evhttp's read event on it, so the
	 * socket's epoll interest never drops and libevent makes no epoll_ctl call for the hand-over (a
	 * delete first would cost one per answer). A socket the answer closed is gone from epoll already. */
	event_del(&w->ev);
	r->st.answers[w->kind][gw_http_status_index(code)]++;
	rlog_debug(w->rid, "answered status=%d", code);
	free(w);
}

/* The client left: free the waiter and its connection without answering. */
void gw_waiter_gone(gw_registry *r, gw_waiter *w)
{
	gw_sub *s = w->sub;
	gw_watch *wt = s ? s->w : NULL;

	rlog_debug(w->rid, "client left state=%d", (int)w->state);
	gw_hold_observe(&r->st.hold, GW_HOLD_DISCONNECT, cm_mono_ms() - w->start_ms);
	waiter_detach(r, w);
	r->st.disconnects++;
	r->io.drop(r->io.arg, w); /* frees the connection (and the request) */
	free(w);
	if (wt) gw_watch_maybe_free(wt);
}

/* The waiter's socket: EV_READ reports a FIN, a reset or pipelined bytes, which the seam's
 * readable() sorts out (registry-io.c: every readable event must end in freeing the waiter or in an
 * empty receive queue, or the loop spins). Without a socket (fd -1) the event is the hold's timer. */
void gw_waiter_on_event(evutil_socket_t fd, short what, void *arg)
{
	gw_waiter *w = arg;
	gw_registry *r = w->reg;
	if (what & EV_CLOSED) {
		gw_waiter_gone(r, w);
		return;
	}
	if (what & EV_READ) {
		if (r->io.readable(r->io.arg, w, fd) != 0) {
			gw_waiter_gone(r, w);
			return;
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
		gw_waiter_finish(r, w, 304, wt);
		gw_watch_maybe_free(wt);
	}
}

/* The connection was freed under us (should not happen while we hold it; belt and braces). */
void gw_reg_conn_closed(gw_waiter *w)
{
	gw_registry *r = w->reg;
	gw_watch *wt = w->sub ? w->sub->w : NULL;
	waiter_detach(r, w);
	r->st.disconnects++;
	free(w);
	if (wt) gw_watch_maybe_free(wt);
}
