/*
 * gateway/reread.h — reread.c: the batched reads (the flush, its queries through the seam, applying their
 * results). Called by registry.c (which registers its callbacks); calls decide.c, answer.c, waiter.c
 * and watch.c.
 */
#ifndef POLLGATE_GATEWAY_REREAD_H
#define POLLGATE_GATEWAY_REREAD_H

#include "gateway/watch-internal.h"

/* The flush events' callback: one query per kind for every dirty watch, one for the tokens. */
void gw_on_flush(evutil_socket_t fd, short what, void *arg);
/* The token retry timer's callback: failed re-checks go out again. */
void gw_on_token_retry(evutil_socket_t fd, short what, void *arg);
/* Free the reads still in flight (at exit, after the last answer; their callbacks never run). */
void gw_free_batches(gw_registry *r);
#endif
