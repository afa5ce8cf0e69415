/*
 * tests/unit/gateway/test_server.c — the HTTP front (gateway/server.c): routing and request checks, over real
 * HTTP on 127.0.0.1, without a database.
 *
 * Owns the decisions the front makes before the registry: which routes it answers itself (health, 404,
 * readiness without a database, /metrics only to metrics_allow), the order of the checks on a resource
 * route so nothing about a resource is revealed before the caller is known (route, method 405 with
 * Allow, body 400 and hang up, parameters 400, credential 401), the JSON error shape with Retry-After on
 * 503, what evhttp's parser refuses (400 in the same shape, counted), the request id (ours unless a
 * trusted proxy gave one), drain (503 and Connection: close on an open connection), and that a request
 * that passes every check is handed to the registry (a token lookup is sent) and not answered here.
 *
 * Real parts: an event_base, the server bound to 127.0.0.1 on a port the kernel picks, a client socket
 * on the same loop, the registry built on its seam (registry-io.h) with a fake reader that only records
 * what is asked. Every wait is for an event on the loop (the answer, the query), with a long safety timer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/log.h"
#include "db/access.h"
#include "db/queries.h"
#include "gateway/config.h"
#include "gateway/http.h"
#include "gateway/registry-io.h"
#include "gateway/server.h"
#include "gateway/watch.h"

#define SAFETY_MS 20000 /* a wait that has not ended by then fails the test */

/* ---- the registry's fake seam: records the queries, never answers them ---- */

static struct fake {
	struct event_base *base;
	int queries;
	const char *sql;
	char param[256];
	db_result_cb cb;
	void *cbarg;
	int replied; /* the registry's answer, once its read is made to fail */
} F;

static int fake_query(void *arg, const char *sql, int nparams, const char *const *params, db_result_cb cb, void *cbarg)
{
	(void)arg;
	F.cb = cb;
	F.cbarg = cbarg;
	F.queries++;
	F.sql = sql;
	snprintf(F.param, sizeof F.param, "%s", nparams > 0 && params[0] ? params[0] : "");
	event_base_loopbreak(F.base); /* what a test waiting for the hand-off waits for */
	return 0;
}
static int fake_connected(void *arg)
{
	(void)arg;
	return 1;
}
static int fake_idle(void *arg)
{
	(void)arg;
	return 1;
}
static evutil_socket_t fake_attach(void *arg, gw_waiter *w)
{
	(void)arg;
	(void)w;
	return -1;
}
static int fake_readable(void *arg, gw_waiter *w, evutil_socket_t fd)
{
	(void)arg;
	(void)w;
	(void)fd;
	return 0;
}
static void fake_reply(void *arg, gw_waiter *w, int code, const pol_view *v, void **render, unsigned flags,
                       const char *reason)
{
	(void)arg;
	(void)w;
	(void)v;
	(void)render;
	(void)flags;
	(void)reason;
	if (F.cb != NULL) fail_msg("the registry answered %d before its read ended", code);
	F.replied = code;
}
static void fake_drop(void *arg, gw_waiter *w)
{
	(void)arg;
	(void)w;
}
static const gw_reg_io fake_io = {fake_query, fake_connected, fake_idle, fake_attach,
                                  fake_readable, fake_reply, fake_drop, NULL};

/* ---- the fixture: loop, config, registry, server ---- */

typedef struct fixture {
	struct event_base *base;
	conf *cfg;
	gw_registry *reg;
	gw_http_ctx http;
	gw_server *srv;
	int port;
} fixture;

/* The server's listening socket: the one loopback socket of this process that accepts. */
static int listening_port(void)
{
	int found = -1;
	for (int fd = 3; fd < 1024; fd++) {
		int acc = 0;
		socklen_t al = sizeof acc;
		struct sockaddr_in sa;
		socklen_t sl = sizeof sa;
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) != 0 || !acc) continue;
		if (getsockname(fd, (struct sockaddr *)&sa, &sl) != 0 || sa.sin_family != AF_INET) continue;
		if (sa.sin_addr.s_addr != htonl(INADDR_LOOPBACK)) continue;
		assert_int_equal(found, -1);
		found = ntohs(sa.sin_port);
	}
	assert_true(found > 0);
	return found;
}

static fixture *current; /* stopped by the teardown when a test failed before it could */

static fixture *start(const char *extra_conf)
{
	fixture *f = calloc(1, sizeof *f);
	char text[512];
	int nerr = 0;

	assert_non_null(f);
	memset(&F, 0, sizeof F);
	cm_log_configure(CM_LOG_ERROR, CM_LOG_LOGFMT);
	snprintf(text, sizeof text, "listen = 127.0.0.1:1\n%s", extra_conf);
	f->cfg = conf_load_string("t", text, stderr, &nerr);
	assert_non_null(f->cfg);
	f->cfg->listen_port = 0; /* the kernel picks; the file form needs 1..65535 */
	f->base = event_base_new();
	assert_non_null(f->base);
	F.base = f->base;
	gw_http_ctx_init(&f->http);
	f->reg = gw_reg_new_io(f->base, f->cfg, &fake_io);
	assert_non_null(f->reg);
	f->srv = gw_server_new(f->base, f->cfg, f->reg, NULL, NULL, &f->http);
	assert_non_null(f->srv);
	assert_int_equal(gw_server_bind(f->srv), 0);
	f->port = listening_port();
	current = f;
	return f;
}

static void stop(fixture *f)
{
	current = NULL;
	gw_reg_free(f->reg);
	gw_server_free(f->srv);
	event_base_free(f->base);
	conf_free(f->cfg);
	free(f);
}

static int stop_leftover(void **state)
{
	(void)state;
	if (current) stop(current);
	return 0;
}

/* ---- a client on the same loop ---- */

typedef struct client {
	fixture *f;
	int fd;
	struct event *ev, *safety;
	char buf[65536];
	size_t len, want; /* want: bytes of a complete answer once its head is in, else 0 */
	bool eof, head_only;
} client;

typedef struct answer {
	int status;
	char head[4096];
	char body[8192];
	bool closed; /* the server hung up after it */
} answer;

/* Is a whole answer in? Head, then Content-Length bytes of body (none for HEAD). */
static bool answer_complete(client *c)
{
	char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
	if (end == NULL) return false;
	size_t headlen = (size_t)(end + 4 - c->buf);
	size_t body = 0;
	for (char *p = c->buf; p < end; p = strstr(p, "\r\n") + 2)
		if (strncasecmp(p, "Content-Length:", 15) == 0) body = strtoul(p + 15, NULL, 10);
	if (c->head_only) body = 0;
	c->want = headlen + body;
	return c->len >= c->want;
}

static void on_client(evutil_socket_t fd, short what, void *arg)
{
	client *c = arg;
	(void)what;
	ssize_t n = recv(fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
	if (n > 0) c->len += (size_t)n;
	else if (n == 0 || (errno != EAGAIN && errno != EINTR)) c->eof = true;
	if (c->eof || answer_complete(c)) event_base_loopbreak(c->f->base);
}

static void on_safety(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	fail_msg("nothing happened within %d ms", SAFETY_MS);
}

static client *client_new(fixture *f)
{
	client *c = calloc(1, sizeof *c);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_non_null(c);
	c->f = f;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(c->fd >= 0);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0); /* loopback: the kernel completes it */
	assert_int_equal(evutil_make_socket_nonblocking(c->fd), 0);
	c->ev = event_new(f->base, c->fd, EV_READ | EV_PERSIST, on_client, c);
	c->safety = evtimer_new(f->base, on_safety, c);
	assert_non_null(c->ev);
	assert_non_null(c->safety);
	assert_int_equal(event_add(c->ev, NULL), 0);
	return c;
}

static void client_free(client *c)
{
	event_free(c->ev);
	event_free(c->safety);
	close(c->fd);
	free(c);
}

/* Run the loop until the thing waited for breaks it, under the safety timer. */
static void run_until_break(fixture *f, client *c)
{
	struct timeval tv = {SAFETY_MS / 1000, 0};
	assert_int_equal(evtimer_add(c->safety, &tv), 0);
	assert_int_equal(event_base_dispatch(f->base), 0);
	evtimer_del(c->safety);
}

static void send_raw(client *c, const char *req)
{
	size_t n = strlen(req);
	assert_int_equal(send(c->fd, req, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Send one request and wait for its whole answer. */
static void exchange(client *c, const char *req, answer *a)
{
	memset(a, 0, sizeof *a);
	c->len = c->want = 0;
	c->head_only = strncmp(req, "HEAD ", 5) == 0;
	send_raw(c, req);
	while (!c->eof && !answer_complete(c)) run_until_break(c->f, c);
	if (!answer_complete(c)) fail_msg("the connection closed before a whole answer to:\n%s\ngot:\n%.*s", req, (int)c->len, c->buf);
	assert_int_equal(sscanf(c->buf, "HTTP/1.1 %d", &a->status), 1);
	char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
	snprintf(a->head, sizeof a->head, "%.*s", (int)(end + 2 - c->buf), c->buf);
	snprintf(a->body, sizeof a->body, "%.*s", (int)(c->want - (size_t)(end + 4 - c->buf)), end + 4);
	/* keep what follows (nothing is expected) and see whether the server hangs up: it has, or it
	 * will not without a request (Connection: close is the server's word for it) */
	a->closed = strcasestr(a->head, "\r\nConnection: close\r\n") != NULL;
	memmove(c->buf, c->buf + c->want, c->len - c->want);
	c->len -= c->want;
	c->want = 0;
}

/* The value of a header of an answer, or NULL. */
static const char *header(const answer *a, const char *name, char *out, size_t cap)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\r\n%s:", name);
	const char *p = strcasestr(a->head, pat);
	if (p == NULL) return NULL;
	p += strlen(pat);
	while (*p == ' ') p++;
	snprintf(out, cap, "%.*s", (int)strcspn(p, "\r"), p);
	return out;
}

/* The JSON error shape: {"error":{"code":CODE,"message":TEXT}}, nothing else. */
static void assert_error(const answer *a, int status, const char *code)
{
	json_error_t je;
	char ct[128];
	if (a->status != status) fail_msg("status %d, want %d; head:\n%s%s", a->status, status, a->head, a->body);
	json_t *j = json_loads(a->body, 0, &je);
	if (j == NULL) fail_msg("not JSON: %s", a->body);
	json_t *e = json_object_get(j, "error");
	if (json_object_size(j) != 1 || !json_is_object(e) || json_object_size(e) != 2 ||
	    !json_is_string(json_object_get(e, "code")) || !json_is_string(json_object_get(e, "message")) ||
	    strcmp(json_string_value(json_object_get(e, "code")), code) != 0)
		fail_msg("not the error shape with code %s: %s", code, a->body);
	json_decref(j);
	assert_non_null(header(a, "Content-Type", ct, sizeof ct));
	assert_non_null(strstr(ct, "application/json"));
}

#define TOKEN "Authorization: Bearer pgt_0123456789abcdef0123456789abcdef\r\n"

/* One request on its own connection (Connection: close), checked for status and error code. */
typedef struct route_case {
	const char *name, *request;
	int status;
	const char *code; /* the error code, NULL for a success */
	bool hangs_up;    /* the answer says Connection: close though the client did not ask */
} route_case;

static void run_cases(const route_case *cases, size_t n, const char *extra_conf)
{
	fixture *f = start(extra_conf);
	for (size_t i = 0; i < n; i++) {
		client *c = client_new(f);
		answer a;
		exchange(c, cases[i].request, &a);
		if (a.status != cases[i].status)
			fail_msg("%s: status %d, want %d\n%s%s", cases[i].name, a.status, cases[i].status, a.head, a.body);
		if (cases[i].code) assert_error(&a, cases[i].status, cases[i].code);
		if (cases[i].hangs_up && !a.closed) fail_msg("%s: the answer does not close the connection:\n%s", cases[i].name, a.head);
		if (!cases[i].hangs_up && a.closed) fail_msg("%s: the answer closes a keep-alive connection:\n%s", cases[i].name, a.head);
		client_free(c);
	}
	assert_int_equal(F.queries, 0); /* none of these reached the registry */
	assert_int_equal(gw_server_unfinished(f->srv), 0);
	stop(f);
}

static void test_routes_the_front_answers_itself(void **state)
{
	static const route_case cases[] = {
		{"health", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, NULL, false},
		{"health HEAD", "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, NULL, false},
		{"unknown path", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found", false},
		{"unknown path, any method", "DELETE /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found", false},
		/* no pool, no LISTEN session: not ready, and a client is told when to come back */
		{"readyz without a database", "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 503, "unavailable", false},
		{"health POST", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, "method_not_allowed", false},
	};
	(void)state;
	run_cases(cases, sizeof cases / sizeof cases[0], "");
}

/* On a resource: route, method, body, parameters, then the credential — so a caller without one learns
 * nothing but what any request would. */
static void test_resource_checks_come_in_order(void **state)
{
	static const route_case cases[] = {
		{"POST without credential", "POST /v1/runs/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405,
		 "method_not_allowed", false},
		{"PUT with credential", "PUT /v1/runs/1 HTTP/1.1\r\nHost: x\r\n" TOKEN "Content-Length: 0\r\n\r\n", 405,
		 "method_not_allowed", false},
		{"GET with a body", "GET /v1/runs/1 HTTP/1.1\r\nHost: x\r\n" TOKEN "Content-Length: 5\r\n\r\nhello", 400,
		 "bad_request", true},
		{"GET with a chunked body", "GET /v1/runs/1 HTTP/1.1\r\nHost: x\r\n" TOKEN "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		 400, "bad_request", true},
		{"bad wait before the credential", "GET /v1/runs/1?wait=abc HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request", false},
		{"negative wait", "GET /v1/runs/1?wait=-1 HTTP/1.1\r\nHost: x\r\n" TOKEN "\r\n", 400, "bad_request", false},
		{"fractional wait", "GET /v1/tenants/7/review-pack?wait=1.5 HTTP/1.1\r\nHost: x\r\n" TOKEN "\r\n", 400,
		 "bad_request", false},
		{"no credential", "GET /v1/runs/1 HTTP/1.1\r\nHost: x\r\n\r\n", 401, "unauthorized", false},
		/* an id that is no id is the registry's 404, like a missing one: without a credential, 401 */
		{"bad id, no credential", "GET /v1/runs/abc HTTP/1.1\r\nHost: x\r\n\r\n", 401, "unauthorized", false},
		{"sub-path of a run", "GET /v1/runs/1/x HTTP/1.1\r\nHost: x\r\n" TOKEN "\r\n", 404, "not_found", false},
		{"pack without its suffix", "GET /v1/tenants/7 HTTP/1.1\r\nHost: x\r\n" TOKEN "\r\n", 404, "not_found", false},
		{"malformed bearer", "GET /v1/runs/1?wait=5 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n\r\n", 401,
		 "unauthorized", false},
		{"basic, not bearer", "GET /v1/tenants/7/review-pack HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Zm9vOmJhcg==\r\n\r\n",
		 401, "unauthorized", false},
	};
	(void)state;
	run_cases(cases, sizeof cases / sizeof cases[0], "");
}

static void test_method_not_allowed_names_the_allowed_ones_and_401_the_scheme(void **state)
{
	fixture *f = start("retry_after = 7s\n");
	client *c = client_new(f);
	answer a;
	char v[128];
	(void)state;

	exchange(c, "PATCH /v1/runs/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &a);
	assert_error(&a, 405, "method_not_allowed");
	assert_string_equal(header(&a, "Allow", v, sizeof v), "GET, HEAD");
	exchange(c, "GET /v1/runs/1 HTTP/1.1\r\nHost: x\r\n\r\n", &a);
	assert_error(&a, 401, "unauthorized");
	assert_string_equal(header(&a, "WWW-Authenticate", v, sizeof v), "Bearer");
	exchange(c, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", &a);
	assert_error(&a, 503, "unavailable");
	assert_string_equal(header(&a, "Retry-After", v, sizeof v), "7");
	client_free(c);
	stop(f);
}

/* /metrics only to the resolved client in metrics_allow; to anyone else it does not exist. */
static void test_metrics_only_to_metrics_allow(void **state)
{
	char v[128];
	answer a;
	(void)state;

	fixture *f = start("metrics_allow = 127.0.0.1/32\n");
	client *c = client_new(f);
	exchange(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &a);
	assert_int_equal(a.status, 200);
	assert_non_null(strstr(header(&a, "Content-Type", v, sizeof v), "text/plain; version=0.0.4"));
	assert_true(strncmp(a.body, "# HELP pollgate_build_info ", 27) == 0);
	assert_non_null(strstr(a.body, "\npollgate_requests_total{route=\"metrics\",status=\"200\"} 0\n"));
	/* the first answer was counted before the second was rendered */
	exchange(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &a);
	assert_non_null(strstr(a.body, "\npollgate_requests_total{route=\"metrics\",status=\"200\"} 1\n"));
	client_free(c);
	stop(f);

	f = start("metrics_allow = 10.0.0.0/8\n");
	c = client_new(f);
	exchange(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &a);
	assert_error(&a, 404, "not_found");
	client_free(c);
	stop(f);

	/* through a trusted proxy, the client it names decides, not the proxy's own address */
	f = start("metrics_allow = 127.0.0.1/32\ntrusted_proxies = 127.0.0.1/32\n");
	c = client_new(f);
	exchange(c, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n", &a);
	assert_error(&a, 404, "not_found");
	client_free(c);
	stop(f);
}

/* What evhttp's parser refuses gets the same JSON shape, a hang-up, and counts as a protocol error. */
static void test_a_malformed_request_gets_the_json_400(void **state)
{
	fixture *f = start("metrics_allow = 127.0.0.1/32\n");
	answer a;
	(void)state;

	client *c = client_new(f);
	exchange(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n", &a);
	assert_error(&a, 400, "bad_request");
	assert_true(a.closed);
	client_free(c);
	c = client_new(f);
	exchange(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &a);
	assert_non_null(strstr(a.body, "\npollgate_protocol_errors_total 1\n"));
	assert_non_null(strstr(a.body, "\npollgate_requests_total{route=\"other\",status=\"400\"} 1\n"));
	client_free(c);
	stop(f);
}

/* Our own request id, unless a trusted proxy sent an acceptable one. */
static void test_request_id_from_a_trusted_proxy_only(void **state)
{
	char v[128];
	answer a;
	(void)state;

	fixture *f = start("");
	client *c = client_new(f);
	exchange(c, "GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-Id: given-by-client\r\n\r\n", &a);
	assert_non_null(header(&a, "X-Request-Id", v, sizeof v));
	assert_string_not_equal(v, "given-by-client");
	assert_true(strlen(v) > 0);
	char first[128];
	snprintf(first, sizeof first, "%s", v);
	exchange(c, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &a);
	assert_string_not_equal(header(&a, "X-Request-Id", v, sizeof v), first); /* one per request */
	client_free(c);
	stop(f);

	f = start("trusted_proxies = 127.0.0.1/32\n");
	c = client_new(f);
	exchange(c, "GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-Id: given-by-proxy\r\n\r\n", &a);
	assert_string_equal(header(&a, "X-Request-Id", v, sizeof v), "given-by-proxy");
	client_free(c);
	stop(f);
}

/* Draining: a request on a connection that is still open gets 503 and the connection is closed. */
static void test_drain_answers_503_and_closes(void **state)
{
	fixture *f = start("");
	answer a;
	(void)state;

	client *c = client_new(f);
	exchange(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &a);
	assert_int_equal(a.status, 200);
	assert_false(a.closed);
	gw_server_stop_accepting(f->srv);
	exchange(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &a);
	assert_error(&a, 503, "unavailable");
	assert_true(a.closed);
	client_free(c);
	stop(f);
}

/* A request that passes every check is the registry's: no answer here, a token lookup for its hash. */
static void test_a_valid_long_poll_is_handed_to_the_registry(void **state)
{
	fixture *f = start("");
	(void)state;

	client *c = client_new(f);
	send_raw(c, "GET /v1/runs/42?wait=30 HTTP/1.1\r\nHost: x\r\n" TOKEN "\r\n");
	while (F.queries == 0 && c->len == 0) run_until_break(f, c);
	if (c->len) fail_msg("the front answered a valid long-poll itself:\n%.*s", (int)c->len, c->buf);
	assert_int_equal(F.queries, 1);
	assert_ptr_equal(F.sql, db_sql_tokens);
	/* the lookup asks for the SHA-256 of the token's bytes, as an array literal of hex */
	assert_string_equal(F.param, "{e9f5169aed185cbf758690e989a6e772c7e1f110fc90a5bc0c02d2448e92b0cf}");
	assert_int_equal(gw_server_unfinished(f->srv), 1);
	/* the lookup fails (the pool does that to what is in flight when it goes): the registry answers it */
	db_result_cb cb = F.cb;
	F.cb = NULL;
	cb(F.cbarg, NULL, "connection lost");
	assert_int_equal(F.replied, 503);
	client_free(c);
	stop(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_routes_the_front_answers_itself, stop_leftover),
		cmocka_unit_test_teardown(test_resource_checks_come_in_order, stop_leftover),
		cmocka_unit_test_teardown(test_method_not_allowed_names_the_allowed_ones_and_401_the_scheme, stop_leftover),
		cmocka_unit_test_teardown(test_metrics_only_to_metrics_allow, stop_leftover),
		cmocka_unit_test_teardown(test_a_malformed_request_gets_the_json_400, stop_leftover),
		cmocka_unit_test_teardown(test_request_id_from_a_trusted_proxy_only, stop_leftover),
		cmocka_unit_test_teardown(test_drain_answers_503_and_closes, stop_leftover),
		cmocka_unit_test_teardown(test_a_valid_long_poll_is_handed_to_the_registry, stop_leftover),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
