/*
 * gateway/render.c — see render.h. Owns the byte layout of a held 200/304 and its one-call write; the
 * HTTP vocabulary (CORS policy, access log, the general reply) stays in http.c, below.
 */
#include "gateway/render.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h> /* only for a request's HTTP version */
#include <event2/util.h>

struct gw_render {
	size_t len200, len304;
	const char *head200, *head304; /* into data[] */
	char data[];
};

gw_render *gw_render_new(const char *etag, size_t body_len)
{
	char h200[256], h304[192];
	int n200 = snprintf(h200, sizeof h200,
	                    "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
	                    "ETag: %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n",
	                    etag, body_len);
	int n304 = snprintf(h304, sizeof h304,
	                    "HTTP/1.1 304 Not Modified\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
	                    "ETag: %s\r\n",
	                    etag);
	if (n200 < 0 || n304 < 0 || (size_t)n200 >= sizeof h200 || (size_t)n304 >= sizeof h304) return NULL;
	gw_render *rd = malloc(sizeof *rd + (size_t)n200 + (size_t)n304);
	if (rd == NULL) return NULL;
	memcpy(rd->data, h200, (size_t)n200);
	memcpy(rd->data + n200, h304, (size_t)n304);
	rd->head200 = rd->data;
	rd->len200 = (size_t)n200;
	rd->head304 = rd->data + n200;
	rd->len304 = (size_t)n304;
	return rd;
}

const char *gw_render_head(const gw_render *rd, int code, size_t *len)
{
	*len = code == 200 ? rd->len200 : rd->len304;
	return code == 200 ? rd->head200 : rd->head304;
}

/* The Date line's value, formatted once a second (the context keeps it: one per process). */
static const char *date_now(gw_http_ctx *hc)
{
	time_t now = time(NULL);
	if (hc->date_s != (int64_t)now || hc->date[0] == '\0') {
		struct tm tm;
		if (gmtime_r(&now, &tm) == NULL || strftime(hc->date, sizeof hc->date, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
			hc->date[0] = '\0';
		hc->date_s = (int64_t)now;
	}
	return hc->date;
}

/* The waiter's own lines and the blank line that ends the head; -1 when they do not fit. */
static int own_lines(gw_http_ctx *hc, struct evhttp_request *req, const char *rid, bool close, char *out, size_t cap)
{
	size_t n = 0;
	int k;
#define ADD(...)                                                                                                       \
	do {                                                                                                           \
		k = snprintf(out + n, cap - n, __VA_ARGS__);                                                           \
		if (k < 0 || (size_t)k >= cap - n) return -1;                                                          \
		n += (size_t)k;                                                                                        \
	} while (0)
	if (hc->cors_origins != NULL) {
		const char *origin = gw_http_cors_origin(hc, req);
		ADD("Vary: Origin\r\n");
		if (origin)
			ADD("Access-Control-Allow-Origin: %s\r\nAccess-Control-Allow-Credentials: true\r\n"
			    "Access-Control-Expose-Headers: ETag, Retry-After, X-Request-Id\r\n",
			    origin);
	}
	if (rid) ADD("X-Request-Id: %s\r\n", rid);
	if (close) ADD("Connection: close\r\n");
	const char *date = date_now(hc);
	if (date[0]) ADD("Date: %s\r\n", date);
	ADD("\r\n");
#undef ADD
	return (int)n;
}

/* Does the request ask the connection to close after this answer? (evhttp's own test, which decides
 * whether it closes: a Connection header that is exactly "close".) */
static bool asks_close(struct evhttp_request *req)
{
	const char *c = evhttp_find_header(evhttp_request_get_input_headers(req), "Connection");
	return c != NULL && evutil_ascii_strcasecmp(c, "close") == 0;
}

void gw_render_send(gw_http_ctx *hc, struct evhttp_request *req, const char *rid, int code, const gw_render *rd,
                    const char *etag, const char *body, size_t body_len, unsigned flags)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	gw_render *own = NULL;
	char lines[640];
	bool close = (flags & GW_REPLY_CLOSE) || asks_close(req);
	bool head = evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;
	int nl;

	if (rd == NULL) rd = own = gw_render_new(etag, body_len);
	if (rd == NULL || evcon == NULL || req->major != 1 || req->minor != 1 || hc == NULL ||
	    (nl = own_lines(hc, req, rid, close, lines, sizeof lines)) < 0) {
		free(own);
		gw_http_reply(hc, req, rid, code, etag, code == 200 ? body : NULL, code == 200 ? body_len : 0, flags);
		return;
	}
	size_t head_len;
	const char *head_bytes = gw_render_head(rd, code, &head_len);
	struct iovec iov[3] = {
	    {(void *)head_bytes, head_len},
	    {lines, (size_t)nl},
	    {(void *)body, code == 200 && !head ? body_len : 0},
	};
	size_t total = iov[0].iov_len + iov[1].iov_len + iov[2].iov_len;
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	struct evbuffer *out = bufferevent_get_output(bev);
	evutil_socket_t fd = bufferevent_getfd(bev);

	gw_http_access_log(hc, req, rid, code, code == 200 && !head ? body_len : 0);
	/* evhttp closes after the answer when its request or its answer says Connection: close. */
	if (flags & GW_REPLY_CLOSE) evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");

	ssize_t sent = 0;
	if (hc->in_callback != req && fd >= 0 && evbuffer_get_length(out) == 0) {
		do sent = writev(fd, iov, 3);
		while (sent < 0 && errno == EINTR);
		if (sent < 0) sent = 0; /* EAGAIN, or an error the bufferevent reports when it writes below */
	}
	if ((size_t)sent < total) {
		/* The rest goes through the bufferevent, with evhttp's callbacks as evhttp itself arms them for an
		 * answer: no read callback (the request is done; a close is still detected), the write callback
		 * that finishes the request once the buffer is empty. */
		size_t skip = (size_t)sent;
		for (int i = 0; i < 3; i++) {
			if (skip >= iov[i].iov_len) {
				skip -= iov[i].iov_len;
				continue;
			}
			evbuffer_add(out, (const char *)iov[i].iov_base + skip, iov[i].iov_len - skip);
			skip = 0;
		}
		bufferevent_data_cb wcb;
		bufferevent_event_cb ecb;
		void *cbarg;
		bufferevent_getcb(bev, NULL, &wcb, &ecb, &cbarg);
		bufferevent_setcb(bev, NULL, wcb, ecb, cbarg);
		bufferevent_enable(bev, EV_READ | EV_WRITE);
	}
	free(own);
	/* An empty output: evhttp finishes the request now; else once the bufferevent has written it all. */
	evhttp_send_reply_end(req);
}
