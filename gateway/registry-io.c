/*
 * gateway/registry-io.c — the production side of the registry's seam (registry-io.h): reads go to the
 * connection pool (db_pool_query), answers and departures go through evhttp. gw_reg_new() builds the
 * registry with it. Nothing here decides anything: it carries what the registry decided.
 */
#include "gateway/registry-io.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>

#include "common/log.h"
#include "gateway/http.h"
#include "gateway/render.h"
#include "gateway/waiter.h"
#include "gateway/watch.h"

static int io_query(void *arg, const char *sql, int nparams, const char *const *params, db_result_cb cb, void *cbarg)
{
	/* The registry's reads are three statements run over and over: prepared once per connection. */
	return db_pool_query_stmt(((gw_reg_evhttp *)arg)->pool, sql, nparams, params, cb, cbarg);
}

static int io_connected(void *arg)
{
	return db_pool_connected(((gw_reg_evhttp *)arg)->pool);
}

static int io_idle(void *arg)
{
	return db_pool_idle(((gw_reg_evhttp *)arg)->pool);
}

/* evhttp freed the connection under us (should not happen while we hold it; belt and braces). */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	gw_reg_conn_closed(arg);
}

static evutil_socket_t io_attach(void *arg, gw_waiter *w)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(w->req);
	(void)arg;
	evhttp_connection_set_closecb(evcon, on_conn_close, w);
	return bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
}

/* Has the connection under unread (pipelined) bytes been reset or closed by the peer? A peek cannot say:
 * the kernel hands out queued bytes before it reports a reset. */
static bool socket_dead(evutil_socket_t fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	int err = 0;
	socklen_t elen = sizeof err;

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && len >= sizeof ti.tcpi_state &&
	    ti.tcpi_state != TCP_ESTABLISHED)
		return true;
	return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0;
}

/* epoll reports a reset (EPOLLHUP/EPOLLERR) as readable and writable, never as a close, and keeps
 * reporting it (level-triggered) until the socket is closed; so every readable event must end in freeing
 * the waiter or in an empty receive queue, or the loop spins. Bytes of a pipelined request are moved into
 * evhttp's own input buffer (evhttp reads on from there after our answer), so the socket is again quiet
 * until something new happens on it; a reset behind them is found through the TCP state. A client may
 * pipeline up to max_header_size bytes (the next request's head) behind a held request. */
static int io_readable(void *arg, gw_waiter *w, evutil_socket_t fd)
{
	char c;
	(void)arg;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return -1;
	if (n > 0) {
		struct evbuffer *in =
		    bufferevent_get_input(evhttp_connection_get_bufferevent(evhttp_request_get_connection(w->req)));
		/* The input buffer's end is frozen: bufferevent_socket thaws it only around its own reads. */
		int got = -1;
		if (!socket_dead(fd) && evbuffer_unfreeze(in, 0) == 0) {
			got = evbuffer_read(in, fd, -1);
			evbuffer_freeze(in, 0);
		}
		if (got <= 0 || evbuffer_get_length(in) > (size_t)gw_reg_conf(w->reg)->max_header_size) {
			rlog_debug(w->rid, "client left: a reset behind pipelined bytes, or too many pipelined bytes");
			return -1;
		}
	}
	return 0;
}

static void io_reply(void *arg, gw_waiter *w, int code, const pol_view *v, void **render, unsigned flags,
                     const char *reason)
{
	struct evhttp_request *req = w->req;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const conf *cfg = gw_reg_conf(w->reg);
	gw_http_ctx *hc = &((gw_reg_evhttp *)arg)->http;
	if (cm_log_access_enabled()) {
		char client[48];
		gw_http_format_addr(w->client_addr, client, sizeof client);
		gw_http_access_note(hc, client, w->start_ms, reason);
	}
	if (evcon) evhttp_connection_set_closecb(evcon, NULL, NULL);
	switch (code) {
	case 200:
	case 304:
		/* One rendering per version, shared by every waiter answered with it (render.h). */
		if (render && *render == NULL) *render = gw_render_new(v->etag, v->body_len);
		gw_render_send(hc, req, w->rid, code, render ? *render : NULL, v->etag, v->body, v->body_len, flags);
		return;
	case 401: gw_http_error(hc, req, w->rid, GW_ERR_UNAUTHORIZED, NULL, 0, flags); break;
	case 404: gw_http_error(hc, req, w->rid, GW_ERR_NOT_FOUND, NULL, 0, flags); break;
	case 429: gw_http_error(hc, req, w->rid, GW_ERR_TOO_MANY, NULL, cfg->retry_after_s, flags); break;
	default: gw_http_error(hc, req, w->rid, GW_ERR_UNAVAILABLE, NULL, cfg->retry_after_s, flags); break;
	}
	gw_http_flush(hc, evcon, req); /* req may be freed from here on */
}

static void io_drop(void *arg, gw_waiter *w)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(w->req);
	gw_http_ctx *hc = &((gw_reg_evhttp *)arg)->http;
	if (cm_log_access_enabled()) {
		char client[48];
		gw_http_format_addr(w->client_addr, client, sizeof client);
		gw_http_access_note(hc, client, w->start_ms, "disconnect");
		gw_http_access_log(hc, w->req, w->rid, 0, 0);
	}
	if (evcon) {
		evhttp_connection_set_closecb(evcon, NULL, NULL);
		evhttp_connection_free(evcon); /* frees the request too */
	}
}

gw_reg_io gw_reg_io_evhttp(gw_reg_evhttp *e)
{
	gw_reg_io io = {io_query, io_connected, io_idle, io_attach, io_readable, io_reply, io_drop, e};
	return io;
}

gw_registry *gw_reg_new(struct event_base *base, const conf *cfg, gw_reg_evhttp *e)
{
	gw_reg_io io = gw_reg_io_evhttp(e);
	return gw_reg_new_io(base, cfg, &io);
}
