/*
 * gateway/http.h — the HTTP vocabulary of pollgate: routes, ids, long-poll parameters, conditional
 * requests, and the one function every answer goes through.
 *
 * The parsing functions are pure (unit-tested on their own). gw_http_reply() is the only place that
 * writes a response, so every answer carries the same headers (Cache-Control: no-store, X-Request-Id,
 * Content-Type when there is a body) and every 404 is byte-identical whatever its reason.
 */
#ifndef POLLGATE_GATEWAY_HTTP_H
#define POLLGATE_GATEWAY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evhttp_connection;
struct evhttp_request;
struct evkeyvalq;

typedef enum {
	GW_ROUTE_NONE = 0,
	GW_ROUTE_HEALTHZ,
	GW_ROUTE_READYZ,
	GW_ROUTE_METRICS,
	GW_ROUTE_RUN,  /* /v1/runs/{id} */
	GW_ROUTE_PACK, /* /v1/tenants/{id}/review-pack */
} gw_route;

/* Match a request path (without query). For the resource routes *id is the id, or 0 when the id is not
 * a positive 64-bit decimal integer (answered exactly like a missing resource). */
gw_route gw_http_route(const char *path, int64_t *id);

/* A canonical positive decimal int64 ("1".."9223372036854775807", no sign, no leading zero)? */
bool gw_http_parse_id(const char *s, size_t len, int64_t *out);

/* ?wait=: a non-negative decimal integer of seconds, capped at max_ms. Returns 0 with *ms set, or -1
 * when it is not such an integer (400). Huge values saturate to the cap. */
int gw_http_parse_wait(const char *s, int64_t max_ms, int64_t *ms);

/* RFC 7240 Prefer: find a "wait=<seconds>" preference; returns true and sets *seconds when present and
 * readable. Anything it cannot read is ignored (false). */
bool gw_http_prefer_wait(const char *prefer, int64_t *seconds);

/* If-None-Match against the current strong ETag (quoted): true when the list holds it (weak comparison,
 * as RFC 9110 asks for If-None-Match) or is "*". */
bool gw_http_inm_matches(const char *inm, const char *etag);

/* Is the framing of the request's body ambiguous: more than one Content-Length line, or Content-Length
 * together with Transfer-Encoding (RFC 9112 6.3)? A proxy in front may have framed it differently, so
 * such a request is refused with 400 and the connection closed (request smuggling). */
bool gw_http_framing_ambiguous(const struct evkeyvalq *headers);

/* A client-supplied X-Request-Id we may adopt: 1..39 characters of [A-Za-z0-9._:-]. */
bool gw_http_rid_acceptable(const char *v);

/* Status codes counted in metrics, and the index of one (the last slot is "other"). */
#define GW_NSTATUS 10
extern const int gw_http_status_codes[GW_NSTATUS]; /* 200 204 304 400 401 404 405 429 503 0 */
int gw_http_status_index(int code);
#define GW_NROUTES 6
const char *gw_http_route_name(gw_route r);

/* Error codes of api.md. */
typedef enum {
	GW_ERR_BAD_REQUEST = 400,
	GW_ERR_UNAUTHORIZED = 401,
	GW_ERR_NOT_FOUND = 404,
	GW_ERR_METHOD = 405,
	GW_ERR_TOO_MANY = 429,
	GW_ERR_UNAVAILABLE = 503,
} gw_err;

#define GW_REPLY_CLOSE 1u /* add Connection: close */

/* What answers need to know besides the request: the CORS policy of the running config and the
 * access-log note of the answer about to go out. One per server (each worker has its own), owned by the
 * caller and passed to every function below that answers; the registry gets the same one through its
 * reply function's argument (registry-io.h). NULL means CORS off and no note. */
typedef struct gw_http_ctx {
	const char *cors_origins; /* borrowed from the running config; NULL = CORS off */
	char cors_max_age[24];    /* Access-Control-Max-Age as sent */
	struct {
		bool set;
		char client[48];
		int64_t start_ms;
		const char *reason;
	} note; /* see gw_http_access_note */
	/* The request whose evhttp callback is running (set by the server around it), or NULL: the one
	 * request gw_http_flush must leave to evhttp. */
	const struct evhttp_request *in_callback;
	char date[40]; /* the Date value of answers rendered this second (render.c) */
	int64_t date_s;
} gw_http_ctx;

/* An empty context: CORS off, no note. */
void gw_http_ctx_init(gw_http_ctx *hc);

/* CORS. `origins` is the cors_origins value (space-separated exact origins, "" or NULL = CORS off); the
 * string must outlive every reply until the next call (the server calls this on start and reload).
 * When on, every answer from gw_http_reply() carries Vary: Origin, and an answer to a listed Origin
 * also carries Access-Control-Allow-Origin (that origin), -Allow-Credentials and -Expose-Headers:
 * on 200, 304, 401, 404 alike, so a browser can read every outcome. */
void gw_http_set_cors(gw_http_ctx *hc, const char *origins, int64_t max_age_s);

/* The request's Origin when CORS is on and it is listed, else NULL. */
const char *gw_http_cors_origin(const gw_http_ctx *hc, struct evhttp_request *req);

/* Is `origin` exactly one of the space-separated `list`? (false for NULL or empty.) */
bool gw_http_origin_listed(const char *list, const char *origin);

/* Is this OPTIONS request a CORS preflight we answer (CORS on, listed Origin, Access-Control-Request-
 * Method GET or HEAD)? Then gw_http_preflight() sends the 204. */
bool gw_http_is_preflight(const gw_http_ctx *hc, struct evhttp_request *req);
void gw_http_preflight(gw_http_ctx *hc, struct evhttp_request *req, const char *rid);

/* Drop the request's headers that nothing reads once it is handed to the registry: all but Connection
 * (evhttp's keep-alive rule), Origin (CORS on the answer) and If-None-Match (gw_waiter.inm borrows it). */
void gw_http_trim_input(struct evhttp_request *req);

/* Send one answer. `etag` (quoted) may be NULL; body may be NULL for none (always none for 304).
 * Takes nothing; copies the body. */
void gw_http_reply(gw_http_ctx *hc, struct evhttp_request *req, const char *rid, int code, const char *etag,
                   const char *body, size_t len, unsigned flags);

/* Write an answer evhttp has queued on `evcon` now, and let evhttp finish the request (keep-alive: read
 * the next one; else close) before returning, instead of a loop iteration later. Saves the epoll round
 * trip evhttp takes per answer (the socket armed for writing, reported, disarmed), which is most of a
 * wake's cost beside the write itself. Only for a connection whose evhttp callback is not running (hc's
 * in_callback): evhttp frees the request in here. What the socket does not take at once is left to evhttp,
 * which writes it when the socket is writable, as without this. */
void gw_http_flush(gw_http_ctx *hc, struct evhttp_connection *evcon, const struct evhttp_request *req);

/* The access log (cm_log_access: off unless access_log is set). gw_http_reply() and the preflight write
 * one line per answer: rid, client, method, route, path, status, hold_ms, bytes (body), reason. A caller
 * that knows more than the request says sets a note just before answering: the resolved client (NULL:
 * the socket peer), when the request arrived (cm_mono_ms(), 0: unknown) and why it ends (a static
 * string; NULL: from the status). The next line consumes the note; gw_http_access_note(hc, NULL, 0, NULL)
 * clears it. gw_http_access_log() writes a line for an answer sent some other way (code 0: the client
 * left without one). */
void gw_http_access_note(gw_http_ctx *hc, const char *client, int64_t start_ms, const char *reason);
void gw_http_access_log(gw_http_ctx *hc, struct evhttp_request *req, const char *rid, int code, size_t bytes);
/* A 16-byte client key (IPv4 mapped into IPv6) as text. */
void gw_http_format_addr(const uint8_t addr[16], char *out, size_t cap);

/* Send the JSON error shape for `err`. `message` overrides the standard sentence (400 uses it to say
 * what was wrong; never pass database or internal text). retry_after_s > 0 adds Retry-After. */
void gw_http_error(gw_http_ctx *hc, struct evhttp_request *req, const char *rid, gw_err err, const char *message,
                   int64_t retry_after_s, unsigned flags);

/* The server of this process (the one per-process exception, see http.c): `owner` is handed back to
 * on_parse_error, which answers a request evhttp could not parse (error: evhttp's status, 400 or 413)
 * with gw_http_error(); gw_http_owner() returns it to the callbacks libevent calls without an argument
 * of ours. gw_http_set_owner(NULL, NULL) when that server goes. */
typedef void (*gw_http_parse_error_fn)(void *owner, struct evhttp_request *req, int error);
void gw_http_set_owner(void *owner, gw_http_parse_error_fn on_parse_error);
void *gw_http_owner(void);

#endif
