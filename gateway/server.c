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
#include <sys/random.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "auth/auth.h"
#include "common/log.h"
#include "db/listen.h"
#include "db/pool.h"
#include "gateway/http.h"
#include "gateway/metrics.h"

struct gw_server {
	struct event_base *base;
	const conf *cfg;
	gw_registry *reg;
	struct db_pool *pool;
	struct db_listen *listen;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	bool draining;
	uint64_t rid_key;
	uint64_t rid_next;
	uint64_t started, completed;
	gw_metrics_front front;
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

/* ---- answers given here ---- */

static void count(gw_server *s, gw_route route, int code)
{
	s->front.answers[route][gw_http_status_index(code)]++;
}

static void reply_json(gw_server *s, struct evhttp_request *req, gw_route route, const char *rid, int code,
                       const char *body, unsigned flags)
{
	count(s, route, code);
	gw_http_reply(req, rid, code, NULL, body, strlen(body), flags);
}

static void reply_error(gw_server *s, struct evhttp_request *req, gw_route route, const char *rid, gw_err err,
                        const char *msg, unsigned flags)
{
	int64_t retry = (err == GW_ERR_UNAVAILABLE || err == GW_ERR_TOO_MANY) ? s->cfg->retry_after_s : 0;
	count(s, route, (int)err);
	gw_http_error(req, rid, err, msg, retry, flags);
}

static bool ready(const gw_server *s)
{
	return db_pool_connected(s->pool) > 0 && db_listen_is_up(s->listen);
}

static void serve_metrics(gw_server *s, struct evhttp_request *req, const char *rid)
{
	struct evbuffer *buf = evbuffer_new();
	if (buf == NULL || gw_metrics_render(buf, &s->front, s->reg, s->pool, s->listen) != 0) {
		if (buf) evbuffer_free(buf);
		reply_error(s, req, GW_ROUTE_METRICS, rid, GW_ERR_UNAVAILABLE, NULL, 0);
		return;
	}
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Request-Id", rid);
	count(s, GW_ROUTE_METRICS, 200);
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

static void on_complete(struct evhttp_request *req, void *arg)
{
	gw_server *s = arg;
	(void)req;
	s->completed++;
}

/* ---- the request callback ---- */

static void on_request(struct evhttp_request *req, void *arg)
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
	evhttp_request_set_on_complete_cb(req, on_complete, s);

	/* Request id: the trusted proxy's, else ours. */
	const char *given = evhttp_find_header(in, "X-Request-Id");
	if (given && peer && conf_cidr_match(&c->trusted_proxies, peer) && gw_http_rid_acceptable(given)) {
		snprintf(rid, sizeof rid, "%s", given);
	} else {
		snprintf(rid, sizeof rid, "%016" PRIx64, mix64(s->rid_key ^ s->rid_next++));
	}
	conf_client_resolve(&c->trusted_proxies, peer, evhttp_find_header(in, "X-Forwarded-For"), client_key, client_text, sizeof client_text);

	gw_route route = gw_http_route(path, &id);
	rlog_debug(rid, "request method=%d path=\"%s\" client=%s", (int)method, path ? path : "", client_text);
	if (route == GW_ROUTE_NONE) {
		reply_error(s, req, route, rid, GW_ERR_NOT_FOUND, NULL, 0);
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
		if (peer && conf_cidr_match(&c->metrics_allow, peer)) serve_metrics(s, req, rid);
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
	auth_sha256(tok, toklen, w->token_hash);
	w->req = req;
	w->kind = route == GW_ROUTE_RUN ? GW_RUN : GW_PACK;
	w->id = id;
	memcpy(w->client_addr, client_key, 16);
	memcpy(w->rid, rid, sizeof w->rid);
	if (CM_LOG_ENABLED(CM_LOG_DEBUG)) {
		char tp[13];
		auth_hash_prefix(w->token_hash, tp);
		rlog_debug(rid, "long-poll kind=%s id=%" PRId64 " wait_ms=%" PRId64 " tok=%s", gw_kind_name(w->kind), id,
		           w->wait_ms, tp);
	}
	gw_reg_submit(s->reg, w); /* the registry owns it now and answers it exactly once */
	w = NULL;
done:
	free(w);
	evhttp_clear_headers(&params);
}

/* ---- lifecycle ---- */

static void apply_limits(gw_server *s)
{
	const conf *c = s->cfg;
	struct timeval tv = {c->header_timeout_ms / 1000, (c->header_timeout_ms % 1000) * 1000};
	evhttp_set_timeout_tv(s->http, &tv);
	evhttp_set_max_headers_size(s->http, (ev_ssize_t)c->max_header_size);
	evhttp_set_max_body_size(s->http, 64 * 1024);
}

gw_server *gw_server_new(struct event_base *base, const conf *cfg, gw_registry *reg, struct db_pool *pool,
                         struct db_listen *listen)
{
	gw_server *s = calloc(1, sizeof *s);
	if (s == NULL) return NULL;
	s->base = base;
	s->cfg = cfg;
	s->reg = reg;
	s->pool = pool;
	s->listen = listen;
	if (getrandom(&s->rid_key, sizeof s->rid_key, 0) != (ssize_t)sizeof s->rid_key) s->rid_key = (uint64_t)(uintptr_t)s;
	s->http = evhttp_new(base);
	if (s->http == NULL) {
		free(s);
		return NULL;
	}
	/* Every method reaches our callback, so a wrong one gets our 405 with Allow, not evhttp's page. */
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	                                        EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	                                        EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(s->http, "application/json");
	evhttp_set_gencb(s->http, on_request, s);
	apply_limits(s);
	return s;
}

int gw_server_bind(gw_server *s)
{
	const conf *c = s->cfg;
	s->bound = evhttp_bind_socket_with_handle(s->http, c->listen_host, (ev_uint16_t)c->listen_port);
	if (s->bound == NULL) {
		log_error("cannot listen listen=%s hint=\"address in use, or not an address of this host\"", c->listen);
		return -1;
	}
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
	if (s->http) evhttp_free(s->http);
	free(s);
}
