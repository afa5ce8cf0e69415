/*
 * gateway/registry-io.h — the registry's seam to the outside: how it reads the database and how it
 * talks to a waiter's connection. The registry (registry.c down to watch.c) calls nothing else outside
 * itself for either: production passes the functions in registry-io.c (db_pool_query and evhttp), the
 * unit test (tests/unit/gateway/test_registry.c) a fake reader that hands back made-up results when it says so
 * and a fake reply that records each answer.
 */
#ifndef POLLGATE_GATEWAY_REGISTRY_IO_H
#define POLLGATE_GATEWAY_REGISTRY_IO_H

#include <event2/util.h>

#include "db/pool.h"
#include "gateway/http.h"
#include "policy/policy.h"

struct gw_waiter;

typedef struct gw_reg_io {
	/* Send one query; cb runs later with the result, or with res NULL and an error. 0: sent (cb runs
	 * exactly once, never inside this call); -1: refused at once (cb does not run). */
	int (*query)(void *arg, const char *sql, int nparams, const char *const *params, db_result_cb cb,
	             void *cbarg);
	int (*connected)(void *arg); /* database connections up */
	int (*idle)(void *arg);      /* connections up with no query in flight */
	/* A waiter was submitted: watch its connection (gw_reg_conn_closed if it is freed under us) and
	 * return its socket, which the registry polls for the client leaving; -1 for none. */
	evutil_socket_t (*attach)(void *arg, struct gw_waiter *w);
	/* The socket is readable while the waiter waits (pipelined bytes, or the client left): -1 gone. */
	int (*readable)(void *arg, struct gw_waiter *w, evutil_socket_t fd);
	/* Answer the waiter (once; it is already off every registry list). 200/304 carry `v`. `render` is
	 * the watch's slot for what the seam renders once per view and reuses for every answer of it (NULL
	 * without a view): one malloc'd block or NULL, which the registry free()s when the view changes or
	 * the watch goes. `flags` are GW_REPLY_* (http.h); `reason` is the hold reason's name, for the
	 * access log. */
	void (*reply)(void *arg, struct gw_waiter *w, int code, const pol_view *v, void **render, unsigned flags,
	              const char *reason);
	/* The client left: free its connection without answering. */
	void (*drop)(void *arg, struct gw_waiter *w);
	void *arg;
} gw_reg_io;

/* The production seam's argument: where reads go and what answers need. Owned by the caller (gateway/
 * main.c), it outlives the registry; the server answers with the same `http` (server.h). */
typedef struct gw_reg_evhttp {
	struct db_pool *pool; /* borrowed */
	gw_http_ctx http;     /* the CORS policy of the running config and the access-log note */
} gw_reg_evhttp;

/* The production seam: reads through e->pool, answers through evhttp with e->http. */
gw_reg_io gw_reg_io_evhttp(gw_reg_evhttp *e);

#endif
