/*
 * gateway/decide.h — decide.c: deciding pending waiters (answer now or hold) and the token stage before
 * it. Called by registry.c and reread.c; calls answer.c, waiter.c and watch.c.
 */
#ifndef POLLGATE_GATEWAY_DECIDE_H
#define POLLGATE_GATEWAY_DECIDE_H

#include "gateway/watch-internal.h"

/* How a sub's pending waiters are decided (see gw_sub_process in decide.c). */
typedef enum { PS_READ, PS_CACHED, PS_FAILED } ps_mode;
void gw_sub_process(gw_sub *s, ps_mode mode, uint64_t seq);
/* A token's lookup ended: its waiting requests go on to their watch (or get 401, or 503 when failed). */
void gw_token_resolved(gw_registry *r, auth_token *t, bool failed);
/* A request whose token is good: onto its watch's sub, then decided (or read first). */
void gw_attach(gw_registry *r, gw_waiter *w);
/* A re-check found the token live: its held waiters owed new state are answered (their sub's verdict is
 * re-read first when it is no longer fresh). */
void gw_token_verified(gw_registry *r, auth_token *t);
#endif
