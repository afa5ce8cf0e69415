/*
 * gateway/waiter.h — waiter.c: one waiter's end (answered through the seam, or freed when its client
 * leaves) and its event. Calls only watch.c.
 */
#ifndef POLLGATE_GATEWAY_WAITER_H
#define POLLGATE_GATEWAY_WAITER_H

#include "gateway/watch-internal.h"

/* Answer and free a waiter (once). `code` 200/304 use `v` (the watch's view). A waiter owed new state is
 * never told 304: it gets 503 and asks again. */
void gw_waiter_finish(gw_registry *r, gw_waiter *w, int code, struct gw_watch *wt);
/* The client left: free the waiter and its connection (r->io.drop) without answering. */
void gw_waiter_gone(gw_registry *r, gw_waiter *w);
/* The waiter's event (w->ev): its socket, and the hold's deadline. */
void gw_waiter_on_event(evutil_socket_t fd, short what, void *arg);
/* The waiter's connection was freed under the registry (the seam's attach watches for it). */
void gw_reg_conn_closed(gw_waiter *w);
#endif
