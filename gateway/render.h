/*
 * gateway/render.h — a held answer's bytes: built once per watch version, written in one call.
 *
 * Every waiter answered with one version of a resource gets the same status line, the same
 * Cache-Control, X-Content-Type-Options, ETag, Content-Type and Content-Length lines and the same body.
 * gw_render_new() builds those lines once (for a 200 and for a 304); the registry keeps the rendering
 * with the watch's view and frees it when the view changes (watch.h: gw_watch.render). A waiter's answer
 * adds only what is its own (CORS for its Origin, X-Request-Id, Date, Connection: close) and goes out in
 * one writev() of three pieces (shared head, own lines, shared body), from the loop turn that decided it:
 * no per-answer header list, formatting or body copy, and no wait for the socket to be reported
 * writable. evhttp then finishes the request (evhttp_send_reply_end: on keep-alive it reads the next
 * request, else it closes the connection) exactly as after writing an answer itself.
 *
 * The answer carries the headers gw_http_reply() would give it (the order aside). What the socket does
 * not take at once is queued on the connection's bufferevent, which writes it when it can, as evhttp
 * does. An answer it cannot render (HTTP/1.0, whose keep-alive rules evhttp applies, or lines over its
 * bounds) goes through gw_http_reply() instead.
 */
#ifndef POLLGATE_GATEWAY_RENDER_H
#define POLLGATE_GATEWAY_RENDER_H

#include <stddef.h>

#include "gateway/http.h"

struct evhttp_request;

typedef struct gw_render gw_render; /* one malloc'd block: free() releases it */

/* The shared lines of one version: `etag` quoted, as sent; body_len the body's length. NULL: no memory. */
gw_render *gw_render_new(const char *etag, size_t body_len);

/* The shared head of a 200 (code 200) or a 304 (any other code): status line and shared header lines,
 * each ending in CRLF, without the blank line that ends a head; its length in *len. */
const char *gw_render_head(const gw_render *rd, int code, size_t *len);

/* Answer a held request with 200 (the body; none for HEAD) or 304, from its version's rendering `rd`
 * (NULL: built for this answer only). `etag` and the body are the view's; `flags` GW_REPLY_*. The access
 * line is written as gw_http_reply() writes it. req is finished or handed to evhttp on return. */
void gw_render_send(gw_http_ctx *hc, struct evhttp_request *req, const char *rid, int code, const gw_render *rd,
                    const char *etag, const char *body, size_t body_len, unsigned flags);

#endif
