/*
 * gateway/answer.h — answer.c: answering held waiters in bulk (a changed resource a slice at a time, lost
 * access, revoked tokens) and per watch for the drain and the final abort. Calls waiter.c and watch.c.
 */
#ifndef POLLGATE_GATEWAY_ANSWER_H
#define POLLGATE_GATEWAY_ANSWER_H

#include "gateway/watch-internal.h"

/* A wake answers at most this many waiters per loop iteration, so the first answers are written while
 * later ones are still to be built, and a wake of 100,000 never holds 100,000 built answers at once. */
#define GW_ANSWER_SLICE 256
/* The sub's held waiters are now due a 200 with the watch's view: queue them for the next slices. */
void gw_sub_answer_changed(gw_registry *r, gw_sub *s);
/* The sub lost access (or its resource is gone): answer its held and queued waiters 404 now. */
void gw_sub_answer_denied(gw_registry *r, gw_sub *s);
/* Queue the sub's held waiters owed new state (of token t only, unless t is NULL) for the next slices. */
void gw_sub_answer_owed(gw_registry *r, gw_sub *s, const auth_token *t);
/* The answer event's callback: one slice. */
void gw_on_answer_slice(evutil_socket_t fd, short what, void *arg);
/* A re-check found the token of held requests revoked or expired: answer them 401. */
void gw_token_revoked(gw_registry *r, auth_token *t, int64_t user_id);
/* The drain (held waiters their answer now) and the abort (every waiter its last word), one watch. */
void gw_answer_drain_watch(gw_registry *r, gw_watch *w);
void gw_answer_abort_watch(gw_registry *r, gw_watch *w);
#endif
