/*
 * gateway/http.c — see http.h.
 */
#include "gateway/http.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h> /* only for a request's HTTP version, see evhttp_send_error */
#include <event2/keyvalq_struct.h>

#include "common/clock.h"
#include "common/log.h"

static const char RUNS_PREFIX[] = "/v1/runs/";
static const char TENANTS_PREFIX[] = "/v1/tenants/";
static const char PACK_SUFFIX[] = "/review-pack";

bool gw_http_rid_acceptable(const char *v)
{
	size_t n = 0;
	for (; v[n]; n++) {
		char c = v[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.' || c == ':'))
			return false;
	}
	return n > 0 && n < 40;
}

bool gw_http_framing_ambiguous(const struct evkeyvalq *headers)
{
	const struct evkeyval *kv;
	int lengths = 0, codings = 0;
	TAILQ_FOREACH (kv, headers, next) {
		if (strcasecmp(kv->key, "Content-Length") == 0) lengths++;
		else if (strcasecmp(kv->key, "Transfer-Encoding") == 0) codings++;
	}
	return lengths > 1 || (lengths > 0 && codings > 0);
}

const int gw_http_status_codes[GW_NSTATUS] = {200, 204, 304, 400, 401, 404, 405, 429, 503, 0};

/* ---- the one per-process exception ----
 *
 * Everything a worker needs reaches it in structs passed down (the CORS policy and the access-log note
 * in a gw_http_ctx). This struct is the exception, one per process (each worker is its own process with
 * its own server), set by that server: libevent 2.1 answers a request it cannot parse through
 * evhttp_send_error() and its listener reports accept errors with evhttp's pointer, never an argument
 * of ours, so the server that wants those events must be found without one (see evhttp_send_error at
 * the end). No other file of the tree keeps mutable file-scope state except gateway/main.c and
 * common/log.c (common/hmap.c's hash key is written once at start-up, before any table exists). */
static struct {
	void *owner;
	gw_http_parse_error_fn on_parse_error;
} proc;

int gw_http_status_index(int code)
{
	for (int i = 0; i < GW_NSTATUS - 1; i++)
		if (gw_http_status_codes[i] == code) return i;
	return GW_NSTATUS - 1;
}

const char *gw_http_route_name(gw_route r)
{
	static const char *const names[GW_NROUTES] = {"other", "healthz", "readyz", "metrics", "run", "review_pack"};
	return (unsigned)r < GW_NROUTES ? names[r] : "other";
}

bool gw_http_parse_id(const char *s, size_t len, int64_t *out)
{
	int64_t v = 0;
	if (len == 0 || len > 19 || s[0] == '0') return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') return false;
		int d = s[i] - '0';
		if (v > (INT64_MAX - d) / 10) return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

gw_route gw_http_route(const char *path, int64_t *id)
{
	size_t n;
	*id = 0;
	if (path == NULL) return GW_ROUTE_NONE;
	if (strcmp(path, "/healthz") == 0) return GW_ROUTE_HEALTHZ;
	if (strcmp(path, "/readyz") == 0) return GW_ROUTE_READYZ;
	if (strcmp(path, "/metrics") == 0) return GW_ROUTE_METRICS;
	if (strncmp(path, RUNS_PREFIX, sizeof RUNS_PREFIX - 1) == 0) {
		const char *s = path + sizeof RUNS_PREFIX - 1;
		if (strchr(s, '/') != NULL) return GW_ROUTE_NONE;
		if (!gw_http_parse_id(s, strlen(s), id)) *id = 0;
		return GW_ROUTE_RUN;
	}
	if (strncmp(path, TENANTS_PREFIX, sizeof TENANTS_PREFIX - 1) == 0) {
		const char *s = path + sizeof TENANTS_PREFIX - 1;
		const char *slash = strchr(s, '/');
		if (slash == NULL || strcmp(slash, PACK_SUFFIX) != 0) return GW_ROUTE_NONE;
		n = (size_t)(slash - s);
		if (!gw_http_parse_id(s, n, id)) *id = 0;
		return GW_ROUTE_PACK;
	}
	return GW_ROUTE_NONE;
}

int gw_http_parse_wait(const char *s, int64_t max_ms, int64_t *ms)
{
	int64_t secs = 0;
	bool big = false;
	if (s == NULL || *s == '\0') return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9') return -1;
		if (!big) {
			secs = secs * 10 + (*p - '0');
			if (secs > max_ms / 1000) big = true; /* so secs * 1000 <= max_ms cannot overflow */
		}
	}
	int64_t v = big ? max_ms : secs * 1000;
	*ms = v > max_ms ? max_ms : v;
	return 0;
}

bool gw_http_prefer_wait(const char *prefer, int64_t *seconds)
{
	/* Prefer: respond-async, wait=10 ; preferences are comma-separated, parameters after ';'. */
	const char *p = prefer;
	if (p == NULL) return false;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',') p++;
		if (strncasecmp(p, "wait", 4) == 0) {
			const char *q = p + 4;
			while (*q == ' ' || *q == '\t') q++;
			if (*q == '=') {
				q++;
				while (*q == ' ' || *q == '\t') q++;
				bool quoted = *q == '"';
				if (quoted) q++;
				int64_t v = 0;
				const char *d = q;
				while (*q >= '0' && *q <= '9') {
					if (v < INT64_MAX / 100) v = v * 10 + (*q - '0');
					q++;
				}
				bool digits = q > d;
				if (quoted) {
					if (*q == '"') q++;
					else digits = false; /* unterminated quoted-string */
				}
				while (*q == ' ' || *q == '\t') q++;
				if (digits && (*q == '\0' || *q == ',' || *q == ';')) {
					*seconds = v;
					return true;
				}
			}
		}
		const char *comma = strchr(p, ',');
		if (comma == NULL) break;
		p = comma + 1;
	}
	return false;
}

bool gw_http_inm_matches(const char *inm, const char *etag)
{
	size_t elen = strlen(etag);
	const char *p = inm;
	if (p == NULL) return false;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',') p++;
		if (*p == '\0') break;
		if (*p == '*') return true;
		if (p[0] == 'W' && p[1] == '/') p += 2;
		if (*p != '"') return false; /* malformed list: matches nothing */
		const char *end = strchr(p + 1, '"');
		if (end == NULL) return false;
		size_t n = (size_t)(end - p + 1);
		if (n == elen && memcmp(p, etag, n) == 0) return true;
		p = end + 1;
	}
	return false;
}

void gw_http_ctx_init(gw_http_ctx *hc)
{
	*hc = (gw_http_ctx){.cors_max_age = "600"};
}

void gw_http_set_cors(gw_http_ctx *hc, const char *origins, int64_t max_age_s)
{
	hc->cors_origins = origins && *origins ? origins : NULL;
	snprintf(hc->cors_max_age, sizeof hc->cors_max_age, "%lld", (long long)max_age_s);
}

bool gw_http_origin_listed(const char *list, const char *origin)
{
	if (list == NULL || origin == NULL || *origin == '\0') return false;
	size_t len = strlen(origin);
	for (const char *p = list; *p;) {
		while (*p == ' ' || *p == '\t') p++;
		size_t n = strcspn(p, " \t");
		if (n == len && memcmp(p, origin, n) == 0) return true;
		p += n;
	}
	return false;
}

/* see http.h */
const char *gw_http_cors_origin(const gw_http_ctx *hc, struct evhttp_request *req)
{
	if (hc == NULL || hc->cors_origins == NULL) return NULL;
	const char *origin = evhttp_find_header(evhttp_request_get_input_headers(req), "Origin");
	return gw_http_origin_listed(hc->cors_origins, origin) ? origin : NULL;
}

static void add_cors(const gw_http_ctx *hc, struct evhttp_request *req, struct evkeyvalq *h, const char *vary)
{
	if (hc == NULL || hc->cors_origins == NULL) return;
	evhttp_add_header(h, "Vary", vary);
	const char *origin = gw_http_cors_origin(hc, req);
	if (origin == NULL) return;
	evhttp_add_header(h, "Access-Control-Allow-Origin", origin);
	evhttp_add_header(h, "Access-Control-Allow-Credentials", "true");
	evhttp_add_header(h, "Access-Control-Expose-Headers", "ETag, Retry-After, X-Request-Id");
}

bool gw_http_is_preflight(const gw_http_ctx *hc, struct evhttp_request *req)
{
	if (evhttp_request_get_command(req) != EVHTTP_REQ_OPTIONS || gw_http_cors_origin(hc, req) == NULL) return false;
	const char *m = evhttp_find_header(evhttp_request_get_input_headers(req), "Access-Control-Request-Method");
	return m != NULL && (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0);
}

void gw_http_preflight(gw_http_ctx *hc, struct evhttp_request *req, const char *rid)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	const char *origin = gw_http_cors_origin(hc, req);

	/* A preflight is answered for the origin, not for the resource: nothing about it is looked up. */
	evhttp_add_header(h, "Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
	evhttp_add_header(h, "Access-Control-Allow-Origin", origin);
	evhttp_add_header(h, "Access-Control-Allow-Credentials", "true");
	evhttp_add_header(h, "Access-Control-Allow-Methods", "GET, HEAD");
	evhttp_add_header(h, "Access-Control-Allow-Headers", "Authorization, If-None-Match, Prefer, X-Request-Id");
	evhttp_add_header(h, "Access-Control-Max-Age", hc->cors_max_age); /* hc != NULL: origin was allowed */
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	if (rid) evhttp_add_header(h, "X-Request-Id", rid);
	gw_http_access_log(hc, req, rid, 204, 0);
	evhttp_send_reply(req, 204, "No Content", NULL);
}

/* ---- the access log ---- */

/* What the caller about to answer knows and this file does not (hc->note): the resolved client, when
 * the request arrived, why it ends. Set just before an answer, consumed (cleared) by it; one loop, one
 * answer at a time, so one note per server is enough. */

void gw_http_access_note(gw_http_ctx *hc, const char *client, int64_t start_ms, const char *reason)
{
	if (hc == NULL) return;
	hc->note.set = client != NULL || reason != NULL;
	snprintf(hc->note.client, sizeof hc->note.client, "%s", client ? client : "");
	hc->note.start_ms = start_ms;
	hc->note.reason = reason;
}

void gw_http_format_addr(const uint8_t addr[16], char *out, size_t cap)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	char buf[INET6_ADDRSTRLEN];
	const char *r = memcmp(addr, v4mapped, 12) == 0 ? inet_ntop(AF_INET, addr + 12, buf, sizeof buf)
	                                                : inet_ntop(AF_INET6, addr, buf, sizeof buf);
	snprintf(out, cap, "%s", r ? r : "?");
}

static const char *method_text(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	}
	return "OTHER";
}

/* The reason of an answer given without the registry, from its status. */
static const char *default_reason(int code)
{
	switch (code) {
	case 0: return "disconnect";
	case 200: return "ok";
	case 204: return "preflight";
	case 304: return "unchanged";
	case 400: return "bad_request";
	case 401: return "unauthorized";
	case 404: return "denied";
	case 405: return "method";
	case 429: return "cap";
	default: return "error";
	}
}

void gw_http_access_log(gw_http_ctx *hc, struct evhttp_request *req, const char *rid, int code, size_t bytes)
{
	char client[64] = "";
	int64_t hold_ms = 0;
	const char *reason;
	bool noted = hc != NULL && hc->note.set;

	if (hc) hc->note.set = false; /* consumed by this answer, logged or not */
	if (!cm_log_access_enabled() || req == NULL) return;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	int64_t id = 0;
	gw_route route = path ? gw_http_route(path, &id) : GW_ROUTE_NONE;
	if (noted && hc->note.client[0]) {
		snprintf(client, sizeof client, "%s", hc->note.client);
	} else {
		struct evhttp_connection *evcon = evhttp_request_get_connection(req);
		char *host = NULL;
		ev_uint16_t port = 0;
		if (evcon) evhttp_connection_get_peer(evcon, &host, &port);
		snprintf(client, sizeof client, "%s", host ? host : "");
	}
	if (noted && hc->note.start_ms > 0) hold_ms = cm_mono_ms() - hc->note.start_ms;
	reason = noted && hc->note.reason ? hc->note.reason : default_reason(code);
	/* client is an address (inet_ntop or evhttp's numeric peer): bare; the path is the client's: quoted */
	cm_log_access(rid, "access client=%s method=%s route=%s path=%s status=%d hold_ms=%" PRId64 " bytes=%zu reason=%s",
	              client[0] ? client : "-", method_text(evhttp_request_get_command(req)), gw_http_route_name(route), CM_Q(path),
	              code, hold_ms, bytes, reason);
}

void gw_http_reply(gw_http_ctx *hc, struct evhttp_request *req, const char *rid, int code, const char *etag,
                   const char *body, size_t len, unsigned flags)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = NULL;
	const char *reason = "OK";

	switch (code) {
	case 304: reason = "Not Modified"; break;
	case 400: reason = "Bad Request"; break;
	case 401: reason = "Unauthorized"; break;
	case 404: reason = "Not Found"; break;
	case 405: reason = "Method Not Allowed"; break;
	case 429: reason = "Too Many Requests"; break;
	case 503: reason = "Service Unavailable"; break;
	default: break;
	}
	add_cors(hc, req, h, "Origin");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff"); /* a browser never reads a body as HTML */
	if (rid) evhttp_add_header(h, "X-Request-Id", rid);
	if (etag) evhttp_add_header(h, "ETag", etag);
	if (flags & GW_REPLY_CLOSE) evhttp_add_header(h, "Connection", "close");
	if (code != 304 && body != NULL && evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* HEAD: the headers a GET would get, Content-Length included, and no body (evhttp 2.1 would
		 * send one, which breaks the framing of the next response on a keep-alive connection). */
		char n[24];
		snprintf(n, sizeof n, "%zu", len);
		evhttp_add_header(h, "Content-Type", "application/json");
		evhttp_add_header(h, "Content-Length", n);
	} else if (code != 304 && body != NULL) {
		evhttp_add_header(h, "Content-Type", "application/json");
		buf = evbuffer_new();
		if (buf == NULL || evbuffer_add(buf, body, len) != 0) {
			/* Out of memory: an empty 503 is still an answer, and every request gets one. */
			if (buf) evbuffer_free(buf);
			buf = NULL;
			code = 503;
			reason = "Service Unavailable";
		}
	}
	/* logged before sending: evhttp may free the request inside evhttp_send_reply */
	gw_http_access_log(hc, req, rid, code, buf ? evbuffer_get_length(buf) : 0);
	evhttp_send_reply(req, code, reason, buf);
	if (buf) evbuffer_free(buf);
}

void gw_http_trim_input(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct evkeyval *kv, *next;
	for (kv = TAILQ_FIRST(h); kv; kv = next) {
		next = TAILQ_NEXT(kv, next);
		if (strcasecmp(kv->key, "Connection") == 0 || strcasecmp(kv->key, "Origin") == 0 ||
		    strcasecmp(kv->key, "If-None-Match") == 0)
			continue;
		/* evhttp_remove_header frees the first header of that name, which is this one: every earlier
		 * one of the name is gone already or kept (and a kept name never gets here). */
		char key[128];
		if (strlen(kv->key) >= sizeof key) continue;
		strcpy(key, kv->key);
		evhttp_remove_header(h, key);
	}
}

void gw_http_flush(gw_http_ctx *hc, struct evhttp_connection *evcon, const struct evhttp_request *req)
{
	if (evcon == NULL || (hc && hc->in_callback == req)) return;
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	struct evbuffer *out = bufferevent_get_output(bev);
	evutil_socket_t fd = bufferevent_getfd(bev);
	if (fd < 0 || evbuffer_get_length(out) == 0) return;
	/* bufferevent_socket keeps the buffer's start frozen except around its own writes: do as it does */
	evbuffer_unfreeze(out, 1);
	int n = evbuffer_write(out, fd);
	evbuffer_freeze(out, 1);
	/* All of it went: what the write event would do next is run evhttp's write callback, which finishes
	 * the request (frees it; reads the next one, or closes). bufferevent_trigger runs it now; the write
	 * event evhttp armed is disarmed in there before the loop polls again. Anything short of that
	 * (partial, EAGAIN, an error) stays with the bufferevent, which reports it as it always would. */
	if (n > 0 && evbuffer_get_length(out) == 0) bufferevent_trigger(bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS);
}

void gw_http_error(gw_http_ctx *hc, struct evhttp_request *req, const char *rid, gw_err err, const char *message,
                   int64_t retry_after_s, unsigned flags)
{
	const char *code = "not_found", *msg = "The requested resource does not exist.";
	char body[512];
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	switch (err) {
	case GW_ERR_BAD_REQUEST: code = "bad_request"; msg = "The request is malformed."; break;
	case GW_ERR_UNAUTHORIZED:
		code = "unauthorized";
		msg = "A valid bearer token or session cookie is required.";
		evhttp_add_header(h, "WWW-Authenticate", "Bearer");
		break;
	case GW_ERR_NOT_FOUND: break;
	case GW_ERR_METHOD:
		code = "method_not_allowed";
		msg = "Only GET and HEAD are allowed on this resource.";
		evhttp_add_header(h, "Allow", "GET, HEAD");
		break;
	case GW_ERR_TOO_MANY: code = "too_many_waiters"; msg = "Too many requests are waiting; retry later."; break;
	case GW_ERR_UNAVAILABLE: code = "unavailable"; msg = "The service is temporarily unavailable; retry later."; break;
	}
	if (message) msg = message;
	if (retry_after_s > 0) {
		char ra[24];
		snprintf(ra, sizeof ra, "%lld", (long long)retry_after_s);
		evhttp_add_header(h, "Retry-After", ra);
	}
	/* code and msg are fixed ASCII sentences without quotes or backslashes: no escaping needed. */
	int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
	gw_http_reply(hc, req, rid, (int)err, NULL, body, (size_t)n, flags);
}

/* ---- answers evhttp gives by itself ----
 *
 * A request evhttp cannot parse (request line, a header line, a header block over max_header_size, a
 * body over the limit) never reaches the server's callback: evhttp answers it through evhttp_send_error()
 * with an HTML page, and libevent 2.1 has no hook for that page. This definition takes the place of
 * libevent's (the executable's symbol wins, and libevent calls it through its PLT), so those answers have
 * the JSON error shape and close the connection like every other refusal; the server registered with
 * gw_http_set_owner() counts them and words the message. tests/integration/test_security.py checks the
 * JSON arrives, so a libevent built to bind the call internally fails the suite instead of silently
 * sending HTML. */
void gw_http_set_owner(void *owner, gw_http_parse_error_fn on_parse_error)
{
	proc.owner = owner;
	proc.on_parse_error = owner ? on_parse_error : NULL;
}

void *gw_http_owner(void)
{
	return proc.owner;
}

void evhttp_send_error(struct evhttp_request *req, int error, const char *reason)
{
	(void)reason;
	evhttp_clear_headers(evhttp_request_get_output_headers(req));
	if (req->major != 1) {
		/* The version never parsed: answer in HTTP/1.1 (it is what evhttp's own page does). */
		req->major = 1;
		req->minor = 1;
	}
	if (proc.on_parse_error) {
		proc.on_parse_error(proc.owner, req, error);
		return;
	}
	gw_http_error(NULL, req, NULL, GW_ERR_BAD_REQUEST,
	              error == 413 ? "A request must not carry a body." : "The request line or headers are malformed.", 0,
	              GW_REPLY_CLOSE);
}
