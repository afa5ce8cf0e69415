/*
 * gateway/server.c — see server.h.
 *
 * Order of checks for a resource route, so that nothing about a resource is revealed before the caller
 * is known: route -> method (405) -> body (400) -> parameters (400) -> credential (401) -> the registry
 * (token lookup, then the read with its entitlement check, 404 for missing and forbidden alike).
 */
#include "gateway/server.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <errno.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h> /* only for a request's HTTP version, see closes_after */
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "auth/auth.h"
#include "auth/jwt.h"
#include "common/clock.h"
#include "common/hmap.h"
#include "common/log.h"
#include "db/listen.h"
#include "db/logical.h"
#include "db/pool.h"
#include "gateway/http.h"
#include "gateway/metrics.h"

/* A connection whose request head is being read, and since when (see "request heads" below). */
typedef struct head_guard {
	cm_hnode node; /* in gw_server.heads, keyed by the bufferevent's address */
	TAILQ_ENTRY(head_guard) link;
	struct bufferevent *bev; /* we hold a reference, so this address is never reused while we look */
	int64_t since_ms;
} head_guard;

TAILQ_HEAD(head_guard_list, head_guard);

struct gw_server {
	struct event_base *base;
	const conf *cfg;
	gw_registry *reg;
	struct db_pool *pool;
	struct db_listen *listen;
	struct db_logical *logical; /* borrowed; set with hint_source = logical, then `listen` is NULL */
	struct evhttp *http;
	gw_http_ctx *http_out; /* borrowed: CORS and the access-log note, shared with the registry's replies */
	struct evhttp_bound_socket *bound;
	bool draining;
	uint64_t rid_key;
	uint64_t rid_next;
	uint64_t started, completed;
	gw_metrics_front front;

	cm_hmap heads;                   /* head_guard by bufferevent */
	struct head_guard_list heads_fifo; /* oldest first */
	struct event *heads_tick;
	struct event *accept_resume;
	int64_t accept_warned_ms;

	gw_shm *shm; /* workers > 1 (borrowed), else NULL */
	int worker;
	struct event *publish_tick;
	gw_metrics_snap *published; /* what the tick published last */
};

/* ---- request ids ---- */

static uint64_t mix64(uint64_t x)
{
	/* splitmix64's finaliser: a bijection, so distinct counters give distinct ids. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static void new_rid(gw_server *s, char rid[40])
{
	snprintf(rid, 40, "%016" PRIx64, mix64(s->rid_key ^ s->rid_next++));
}

/* ---- request heads must be complete within header_timeout ----
 *
 * evhttp's own timeout is an idle timeout: every byte restarts it, so a client that sends one byte of
 * its head every few seconds (slowloris) holds a connection forever. Here every connection that is
 * reading a request head (from accept, and from the end of the previous answer on a keep-alive
 * connection) gets a head_guard; the guard goes when the head is complete (on_request). A tick every
 * 250 ms shuts down the socket of any guard older than header_timeout; evhttp then sees EOF and frees
 * the connection as for any client that leaves. Held requests have no guard and cost nothing here.
 *
 * The guard keeps a reference on the connection's bufferevent, so its address cannot be reused by
 * another connection while the guard exists; when evhttp has freed its side (the callbacks are gone),
 * the tick drops the guard and the last reference closes the socket. */

#define HEADS_TICK_MS 250

static uint64_t bev_hash(const struct bufferevent *bev)
{
	return cm_hash_bytes(&bev, sizeof bev);
}

static bool guard_eq(const cm_hnode *n, const void *key)
{
	return ((const head_guard *)(const void *)n)->bev == key;
}

static void guard_arm(gw_server *s, struct bufferevent *bev)
{
	if (bev == NULL) return;
	if (cm_hmap_find(&s->heads, bev_hash(bev), guard_eq, bev) != NULL) return;
	head_guard *g = malloc(sizeof *g);
	if (g == NULL) return; /* no guard: evhttp's idle timeout still applies */
	g->bev = bev;
	g->since_ms = cm_mono_ms();
	bufferevent_incref(bev);
	(void)cm_hmap_insert(&s->heads, &g->node, bev_hash(bev));
	TAILQ_INSERT_TAIL(&s->heads_fifo, g, link);
	s->front.heads_reading++;
}

static void guard_drop(gw_server *s, head_guard *g)
{
	cm_hmap_remove(&s->heads, &g->node);
	TAILQ_REMOVE(&s->heads_fifo, g, link);
	s->front.heads_reading--;
	bufferevent_decref(g->bev);
	free(g);
}

static void guard_disarm(gw_server *s, struct bufferevent *bev)
{
	cm_hnode *n = bev ? cm_hmap_find(&s->heads, bev_hash(bev), guard_eq, bev) : NULL;
	if (n) guard_drop(s, (head_guard *)(void *)n);
}

static struct bufferevent *request_bev(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	return evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
}

/* evhttp hands every bufferevent it reads through to bufferevent_free() when the connection ends, which
 * clears the callbacks: a guard whose bufferevent has none left belongs to a connection that is gone. */
static bool guard_orphaned(const head_guard *g)
{
	void *arg = NULL;
	bufferevent_data_cb rd = NULL, wr = NULL;
	bufferevent_event_cb ev = NULL;
	bufferevent_getcb(g->bev, &rd, &wr, &ev, &arg);
	return rd == NULL && wr == NULL && ev == NULL && arg == NULL;
}

static void on_heads_tick(evutil_socket_t fd, short what, void *arg)
{
	gw_server *s = arg;
	int64_t now = cm_mono_ms(), limit = s->cfg->header_timeout_ms;
	(void)fd;
	(void)what;

	head_guard *g = TAILQ_FIRST(&s->heads_fifo), *next;
	for (; g; g = next) {
		next = TAILQ_NEXT(g, link);
		if (guard_orphaned(g)) {
			guard_drop(s, g);
		} else if (now - g->since_ms >= limit) {
			evutil_socket_t sock = bufferevent_getfd(g->bev);
			if (sock >= 0) shutdown(sock, SHUT_RDWR);
			s->front.head_timeouts++;
			log_debug("request head not complete in time header_timeout_ms=%" PRId64, limit);
			guard_drop(s, g);
		}
	}
}

/* evhttp asks for every connection's bufferevent here: the moment a connection starts reading its
 * first head. */
static struct bufferevent *on_new_connection(struct event_base *base, void *arg)
{
	gw_server *s = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev && !s->draining) guard_arm(s, bev);
	return bev;
}

/* ---- running out of file descriptors ----
 *
 * accept() failing with EMFILE leaves the connection in the backlog and the listening socket readable,
 * so a listener that only logs would spin the loop at 100% CPU. Instead accepting pauses for 100 ms and
 * resumes; held requests and connections already open are served as before. */

#define ACCEPT_PAUSE_MS 100

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	gw_server *s = arg;
	(void)fd;
	(void)what;
	if (s->bound && !s->draining) evconnlistener_enable(evhttp_bound_socket_get_listener(s->bound));
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	gw_server *s = gw_http_owner(); /* arg is evhttp's own (the listener's user data), not ours */
	(void)arg;
	if (s == NULL) return;
	int err = EVUTIL_SOCKET_ERROR();
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_warn("accept failed error=\"%s\"", strerror(err));
		return;
	}
	evconnlistener_disable(lev);
	s->front.accept_pauses++;
	int64_t now = cm_mono_ms();
	if (s->accept_warned_ms == 0 || now - s->accept_warned_ms >= 10000) {
		s->accept_warned_ms = now;
		log_warn("accept paused error=\"%s\" pauses=%" PRIu64 " hint=\"raise the open-file limit or lower "
		         "max_waiters; connections already open are served\"",
		         strerror(err), s->front.accept_pauses);
	}
	struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
	evtimer_add(s->accept_resume, &tv);
}

static const char *method_name(enum evhttp_cmd_type m)
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
	return "other";
}

/* Every line of a header a request may repeat, in order, joined with commas (RFC 9110 5.3), as one
 * allocation; NULL when absent or out of memory. X-Forwarded-For needs it: a proxy such as HAProxy
 * appends its own line after the client's, and reading only the first line would let the client name
 * its own address. */
static char *joined_header(struct evkeyvalq *h, const char *name)
{
	struct evkeyval *kv;
	size_t len = 0;
	TAILQ_FOREACH (kv, h, next)
		if (strcasecmp(kv->key, name) == 0) len += strlen(kv->value) + 1;
	if (len == 0) return NULL;
	char *out = malloc(len), *p = out;
	if (out == NULL) return NULL;
	TAILQ_FOREACH (kv, h, next) {
		if (strcasecmp(kv->key, name) != 0) continue;
		if (p != out) *p++ = ',';
		size_t n = strlen(kv->value);
		memcpy(p, kv->value, n);
		p += n;
	}
	*p = '\0';
	return out;
}

/* ---- answers given here ---- */

static void count(gw_server *s, gw_route route, int code)
{
	s->front.answers[route][gw_http_status_index(code)]++;
}

static void reply_json(gw_server *s, struct evhttp_request *req, gw_route route, const char *rid, int code,
                       const char *body, unsigned flags)
{
	count(s, route, code);
	gw_http_reply(s->http_out, req, rid, code, NULL, body, strlen(body), flags);
}

static void reply_error(gw_server *s, struct evhttp_request *req, gw_route route, const char *rid, gw_err err,
                        const char *msg, unsigned flags)
{
	int64_t retry = (err == GW_ERR_UNAVAILABLE || err == GW_ERR_TOO_MANY) ? s->cfg->retry_after_s : 0;
	count(s, route, (int)err);
	gw_http_error(s->http_out, req, rid, err, msg, retry, flags);
}

/* The hint session in use: the LISTEN session, or with hint_source = logical the replication stream. */
static bool hints_up(const gw_server *s)
{
	return s->logical ? db_logical_is_up(s->logical) : db_listen_is_up(s->listen);
}

static bool ready(const gw_server *s)
{
	bool own = db_pool_connected(s->pool) > 0 && hints_up(s);
	if (s->shm == NULL) return own;
	gw_shm_set_ready(s->shm, s->worker, db_pool_connected(s->pool) > 0, hints_up(s));
	return own && gw_shm_all_ready(s->shm);
}

static void serve_metrics(gw_server *s, struct evhttp_request *req, const char *rid)
{
	struct evbuffer *buf = evbuffer_new();
	if (buf == NULL ||
	    gw_metrics_render(buf, &s->front, s->reg, s->pool, s->listen, s->logical, s->cfg, s->shm, s->worker) != 0) {
		if (buf) evbuffer_free(buf);
		reply_error(s, req, GW_ROUTE_METRICS, rid, GW_ERR_UNAVAILABLE, NULL, 0);
		return;
	}
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Request-Id", rid);
	count(s, GW_ROUTE_METRICS, 200);
	gw_http_access_log(s->http_out, req, rid, 200, evhttp_request_get_command(req) == EVHTTP_REQ_HEAD ? 0 : evbuffer_get_length(buf));
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		char n[24];
		snprintf(n, sizeof n, "%zu", evbuffer_get_length(buf));
		evhttp_add_header(h, "Content-Length", n);
		evhttp_send_reply(req, 200, "OK", NULL);
	} else {
		evhttp_send_reply(req, 200, "OK", buf);
	}
	evbuffer_free(buf);
}

static bool has_token(const char *v, const char *token)
{
	size_t n = strlen(token);
	for (const char *p = v; p && *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',') p++;
		size_t len = strcspn(p, ",");
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
		if (len == n && strncasecmp(p, token, n) == 0) return true;
		p += strcspn(p, ",");
	}
	return false;
}

/* Will evhttp close the connection after this answer (its own rule: Connection: close on either side,
 * or HTTP/1.0 without keep-alive)? */
static bool closes_after(struct evhttp_request *req)
{
	const char *in = evhttp_find_header(evhttp_request_get_input_headers(req), "Connection");
	const char *out = evhttp_find_header(evhttp_request_get_output_headers(req), "Connection");
	if (has_token(in, "close") || has_token(out, "close")) return true;
	return req->major == 1 && req->minor == 0 && !has_token(in, "keep-alive");
}

/* The answer is written. On a keep-alive connection the next head is read from now on. (When the
 * connection is closed instead, the tick finds the guard orphaned.) */
static void on_complete(struct evhttp_request *req, void *arg)
{
	gw_server *s = arg;
	s->completed++;
	if (!s->draining && !closes_after(req)) guard_arm(s, request_bev(req));
}

/* ---- the request callback ---- */

static void serve_request(struct evhttp_request *req, void *arg)
{
	gw_server *s = arg;
	const conf *c = s->cfg;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const struct sockaddr *peer = evcon ? evhttp_connection_get_addr(evcon) : NULL;
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	char rid[40], client_text[INET6_ADDRSTRLEN];
	uint8_t client_key[16];
	int64_t id = 0;
	gw_waiter *w = NULL;
	struct evkeyvalq params;

	s->started++;
	guard_disarm(s, request_bev(req));
	evhttp_request_set_on_complete_cb(req, on_complete, s);

	/* Request id: the trusted proxy's, else ours. */
	const char *given = evhttp_find_header(in, "X-Request-Id");
	if (given && peer && gw_cidr_match(&c->trusted_proxies, peer) && gw_http_rid_acceptable(given)) {
		snprintf(rid, sizeof rid, "%s", given);
	} else {
		new_rid(s, rid);
	}
	char *xff = joined_header(in, "X-Forwarded-For");
	gw_cidr_client_resolve(&c->trusted_proxies, peer, xff, client_key, client_text, sizeof client_text);
	free(xff);
	gw_http_access_note(s->http_out, client_text, cm_mono_ms(), NULL);

	gw_route route = gw_http_route(path, &id);
	rlog_debug(rid, "request method=%s path=%s client=%s", method_name(method), CM_Q(path), client_text);
	if (gw_http_framing_ambiguous(in)) {
		reply_error(s, req, route, rid, GW_ERR_BAD_REQUEST,
		            "Content-Length must appear once and never with Transfer-Encoding.", GW_REPLY_CLOSE);
		return;
	}
	if (route == GW_ROUTE_NONE) {
		reply_error(s, req, route, rid, GW_ERR_NOT_FOUND, NULL, 0);
		return;
	}
	if (method == EVHTTP_REQ_OPTIONS && gw_http_is_preflight(s->http_out, req)) {
		count(s, route, 204);
		gw_http_preflight(s->http_out, req, rid);
		return;
	}
	if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
		reply_error(s, req, route, rid, GW_ERR_METHOD, NULL, 0);
		return;
	}
	/* A GET carries no body; one that does is a confused or hostile client: refuse and hang up. */
	if (evhttp_find_header(in, "Transfer-Encoding") != NULL ||
	    evbuffer_get_length(evhttp_request_get_input_buffer(req)) > 0 ||
	    (evhttp_find_header(in, "Content-Length") && strcmp(evhttp_find_header(in, "Content-Length"), "0") != 0)) {
		reply_error(s, req, route, rid, GW_ERR_BAD_REQUEST, "A GET request must not carry a body.", GW_REPLY_CLOSE);
		return;
	}
	if (s->draining) {
		gw_http_access_note(s->http_out, client_text, 0, "drain");
		reply_error(s, req, route, rid, GW_ERR_UNAVAILABLE, NULL, GW_REPLY_CLOSE);
		return;
	}
	switch (route) {
	case GW_ROUTE_HEALTHZ: reply_json(s, req, route, rid, 200, "{\"status\":\"ok\"}", 0); return;
	case GW_ROUTE_READYZ:
		if (ready(s)) reply_json(s, req, route, rid, 200, "{\"status\":\"ready\"}", 0);
		else reply_error(s, req, route, rid, GW_ERR_UNAVAILABLE, "The database or its LISTEN session is not up.", 0);
		return;
	case GW_ROUTE_METRICS:
		/* The resolved client, not the socket peer: through a trusted proxy every peer is the proxy. */
		if (peer && gw_cidr_match_key(&c->metrics_allow, client_key)) serve_metrics(s, req, rid);
		else reply_error(s, req, route, rid, GW_ERR_NOT_FOUND, NULL, 0);
		return;
	default: break;
	}

	/* A long-poll on a resource. Parameters first: a bad wait is a 400 whoever asks. */
	TAILQ_INIT(&params);
	if (query && evhttp_parse_query_str(query, &params) != 0) {
		reply_error(s, req, route, rid, GW_ERR_BAD_REQUEST, "The query string is malformed.", 0);
		goto done;
	}
	w = calloc(1, sizeof *w);
	if (w == NULL) {
		reply_error(s, req, route, rid, GW_ERR_UNAVAILABLE, NULL, 0);
		goto done;
	}
	const char *wait = evhttp_find_header(&params, "wait");
	int64_t secs;
	if (wait != NULL) {
		if (gw_http_parse_wait(wait, c->max_wait_ms, &w->wait_ms) != 0) {
			reply_error(s, req, route, rid, GW_ERR_BAD_REQUEST,
			            "wait must be a non-negative whole number of seconds.", 0);
			goto done;
		}
	} else if (gw_http_prefer_wait(evhttp_find_header(in, "Prefer"), &secs)) {
		w->wait_ms = secs > c->max_wait_ms / 1000 ? c->max_wait_ms : secs * 1000;
	} else {
		w->wait_ms = c->default_wait_ms < c->max_wait_ms ? c->default_wait_ms : c->max_wait_ms;
	}
	w->inm = evhttp_find_header(in, "If-None-Match");
	const char *since = evhttp_find_header(&params, "since");
	if (w->inm == NULL && since != NULL) {
		w->has_since = true;
		if (strlen(since) + 3 > sizeof w->since) w->since_junk = true;
		else snprintf(w->since, sizeof w->since, "\"%s\"", since);
	}

	const char *tok = NULL;
	size_t toklen = 0;
	auth_cred_status cs = auth_extract(evhttp_find_header(in, "Authorization"), evhttp_find_header(in, "Cookie"),
	                                   c->auth_cookie, &tok, &toklen);
	if (cs != AUTH_CRED_OK) {
		rlog_debug(rid, "no usable credential reason=%s", cs == AUTH_CRED_NONE ? "missing" : "malformed");
		reply_error(s, req, route, rid, GW_ERR_UNAUTHORIZED, NULL, 0);
		goto done;
	}
	if (c->jwt_key != NULL && auth_jwt_looks(tok, toklen)) {
		/* A signed token: verified here, with the same 401 as any bad credential; the reason, never the
		 * token, goes to the debug log. */
		auth_jwt_rules rules = {c->jwt_audience, c->jwt_issuer, c->jwt_leeway_s};
		auth_jwt_claims jc;
		const char *why = NULL;
		if (auth_jwt_verify(c->jwt_key, tok, toklen, &rules, cm_wall_us(), &jc, &why) != 0) {
			rlog_debug(rid, "jwt refused reason=\"%s\"", why ? why : "?");
			reply_error(s, req, route, rid, GW_ERR_UNAUTHORIZED, NULL, 0);
			goto done;
		}
		w->jwt_user = jc.user_id;
		w->jwt_exp_us = jc.exp_us;
		auth_jwt_cache_key(tok, toklen, w->token_hash);
	} else {
		auth_sha256(tok, toklen, w->token_hash);
	}
	w->req = req;
	w->kind = route == GW_ROUTE_RUN ? GW_RUN : GW_PACK;
	w->id = id;
	memcpy(w->client_addr, client_key, 16); /* whole; the registry cuts the cap key to client_ipv6_prefix */
	w->start_ms = cm_mono_ms();
	memcpy(w->rid, rid, sizeof w->rid);
	if (CM_LOG_ENABLED(CM_LOG_DEBUG)) {
		char tp[13];
		auth_hash_prefix(w->token_hash, tp);
		rlog_debug(rid, "long-poll kind=%s id=%" PRId64 " wait_ms=%" PRId64 " tok=%s", gw_kind_name(w->kind), id,
		           w->wait_ms, tp);
	}
	/* Everything the answer needs from the request is taken: what stays held is its connection, not
	 * its cookies and credentials (and no secret lingers in memory for the length of a hold). */
	gw_http_trim_input(req);
	gw_reg_submit(s->reg, w); /* the registry owns it now and answers it exactly once */
	w = NULL;
done:
	free(w);
	evhttp_clear_headers(&params);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	gw_server *s = arg;
	s->http_out->in_callback = req;
	serve_request(req, s);
	s->http_out->in_callback = NULL;
	gw_http_access_note(s->http_out, NULL, 0, NULL); /* a request handed to the registry leaves no note behind */
}

/* ---- lifecycle ---- */

/* A request evhttp could not parse (see evhttp_send_error in http.c, which has cleared the headers):
 * counted, logged, and refused with the JSON error shape. */
static void on_parse_error(void *owner, struct evhttp_request *req, int error)
{
	gw_server *s = owner;
	char rid[40] = "";
	char msg[160];

	if (error == 413)
		snprintf(msg, sizeof msg, "A request must not carry a body.");
	else
		snprintf(msg, sizeof msg, "The request line or headers are malformed, or the header block exceeds %lld bytes.",
		         (long long)s->cfg->max_header_size);
	new_rid(s, rid);
	count(s, GW_ROUTE_NONE, 400);
	s->front.protocol_errors++;
	rlog_debug(rid, "refused by the HTTP parser status=%d", error);
	gw_http_error(s->http_out, req, rid, GW_ERR_BAD_REQUEST, msg, 0, GW_REPLY_CLOSE);
}

static void apply_limits(gw_server *s)
{
	const conf *c = s->cfg;
	struct timeval tv = {c->header_timeout_ms / 1000, (c->header_timeout_ms % 1000) * 1000};
	evhttp_set_timeout_tv(s->http, &tv);
	evhttp_set_max_headers_size(s->http, (ev_ssize_t)c->max_header_size);
	evhttp_set_max_body_size(s->http, 64 * 1024);
	gw_http_set_cors(s->http_out, c->cors_origins, c->cors_max_age_ms / 1000);
}

void gw_server_set_logical(gw_server *s, struct db_logical *logical)
{
	s->logical = logical;
}

gw_server *gw_server_new(struct event_base *base, const conf *cfg, gw_registry *reg, struct db_pool *pool,
                         struct db_listen *listen, gw_http_ctx *http_out)
{
	gw_server *s = calloc(1, sizeof *s);
	if (s == NULL) return NULL;
	s->base = base;
	s->cfg = cfg;
	s->reg = reg;
	s->pool = pool;
	s->listen = listen;
	s->http_out = http_out;
	TAILQ_INIT(&s->heads_fifo);
	if (getrandom(&s->rid_key, sizeof s->rid_key, 0) != (ssize_t)sizeof s->rid_key) s->rid_key = (uint64_t)(uintptr_t)s;
	struct timeval tick = {0, HEADS_TICK_MS * 1000};
	if (cm_hmap_init(&s->heads, 64) != 0 || (s->http = evhttp_new(base)) == NULL ||
	    (s->heads_tick = event_new(base, -1, EV_PERSIST, on_heads_tick, s)) == NULL ||
	    (s->accept_resume = evtimer_new(base, on_accept_resume, s)) == NULL || event_add(s->heads_tick, &tick) != 0) {
		gw_server_free(s);
		return NULL;
	}
	evhttp_set_bevcb(s->http, on_new_connection, s);
	/* Every method reaches our callback, so a wrong one gets our 405 with Allow, not evhttp's page. */
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	                                        EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	                                        EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(s->http, "application/json");
	evhttp_set_gencb(s->http, on_request, s);
	apply_limits(s);
	gw_http_set_owner(s, on_parse_error);
	return s;
}

/* ---- workers (N > 1) ----
 *
 * Every worker binds its own listening socket on the same address with SO_REUSEPORT: the kernel spreads
 * new connections over the workers' sockets by a hash of the 4-tuple, each worker accepts only its own
 * (no thundering herd on one shared socket), and every worker's loop runs on its own core. A 10 ms tick
 * publishes this worker's figures (when they changed: a few KB of words) and readiness into shared memory
 * for /metrics and /readyz; readiness is also published the moment the pool or LISTEN session changes. */

#define PUBLISH_TICK_MS 10

void gw_server_publish_ready(gw_server *s)
{
	if (s->shm) gw_shm_set_ready(s->shm, s->worker, db_pool_connected(s->pool) > 0, hints_up(s));
}

static void on_publish_tick(evutil_socket_t fd, short what, void *arg)
{
	gw_server *s = arg;
	(void)fd;
	(void)what;
	gw_metrics_snap snap;
	gw_metrics_collect(&snap, &s->front, s->reg, s->pool, s->listen, s->logical);
	if (s->published == NULL || memcmp(&snap, s->published, sizeof snap) != 0) {
		gw_metrics_publish(&snap, s->shm, s->worker);
		if (s->published || (s->published = malloc(sizeof *s->published)) != NULL) *s->published = snap;
	}
	gw_server_publish_ready(s);
}

int gw_server_set_shared(gw_server *s, gw_shm *shm, int wi)
{
	struct timeval tick = {0, PUBLISH_TICK_MS * 1000};
	s->shm = shm;
	s->worker = wi;
	if ((s->publish_tick = event_new(s->base, -1, EV_PERSIST, on_publish_tick, s)) == NULL ||
	    event_add(s->publish_tick, &tick) != 0)
		return -1;
	return 0;
}

static struct evhttp_bound_socket *bind_reuseport(gw_server *s)
{
	const conf *c = s->cfg;
	struct evutil_addrinfo hints, *ai = NULL;
	char port[8];
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
	snprintf(port, sizeof port, "%d", c->listen_port);
	int err = evutil_getaddrinfo(c->listen_host, port, &hints, &ai);
	if (err != 0 || ai == NULL) {
		log_error("cannot resolve listen address listen=%s error=%s", c->listen, CM_Q(evutil_gai_strerror(err)));
		return NULL;
	}
	struct evconnlistener *lev =
		evconnlistener_new_bind(s->base, NULL, NULL,
		                        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT,
		                        128, ai->ai_addr, (int)ai->ai_addrlen);
	evutil_freeaddrinfo(ai);
	if (lev == NULL) return NULL;
	struct evhttp_bound_socket *b = evhttp_bind_listener(s->http, lev);
	if (b == NULL) evconnlistener_free(lev);
	return b;
}

#define GW_LISTEN_BACKLOG 65535

int gw_server_bind(gw_server *s)
{
	const conf *c = s->cfg;
	if (s->shm) s->bound = bind_reuseport(s);
	else s->bound = evhttp_bind_socket_with_handle(s->http, c->listen_host, (ev_uint16_t)c->listen_port);
	if (s->bound == NULL) {
		log_error("cannot listen listen=%s hint=\"address in use, or not an address of this host\"", c->listen);
		return -1;
	}
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(s->bound), on_accept_error);
	/* evhttp listens with a backlog of 128. When another gateway behind the same proxy drains or dies, its
	 * browsers' re-polls arrive here as a burst of new connections within milliseconds; past the backlog
	 * the kernel drops their SYNs and they retry only 1, 3, 7 s later (a late answer, or the proxy's
	 * connect timeout). Ask for the most the kernel allows: it caps the value at net.core.somaxconn. */
	if (listen(evhttp_bound_socket_get_fd(s->bound), GW_LISTEN_BACKLOG) != 0)
		log_warn("listen backlog not raised listen=%s error=\"%s\"", c->listen, strerror(errno));
	return 0;
}

void gw_server_set_conf(gw_server *s, const conf *cfg)
{
	s->cfg = cfg;
	apply_limits(s);
}

void gw_server_stop_accepting(gw_server *s)
{
	s->draining = true;
	if (s->bound) {
		evhttp_del_accept_socket(s->http, s->bound);
		s->bound = NULL;
	}
}

uint64_t gw_server_unfinished(const gw_server *s)
{
	const gw_reg_stats *st = gw_reg_get_stats(s->reg);
	uint64_t done = s->completed + st->disconnects;
	return s->started > done ? s->started - done : 0;
}

void gw_server_free(gw_server *s)
{
	if (s == NULL) return;
	if (gw_http_owner() == s) gw_http_set_owner(NULL, NULL);
	if (s->http) evhttp_free(s->http);
	/* evhttp has let go of every connection; the guards' references are the last ones. */
	while (!TAILQ_EMPTY(&s->heads_fifo)) guard_drop(s, TAILQ_FIRST(&s->heads_fifo));
	cm_hmap_fini(&s->heads);
	if (s->heads_tick) event_free(s->heads_tick);
	if (s->accept_resume) event_free(s->accept_resume);
	if (s->publish_tick) event_free(s->publish_tick);
	free(s->published);
	free(s);
}
