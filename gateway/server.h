/*
 * gateway/server.h — the HTTP front: evhttp, routing, request checks, and hand-off to the registry.
 *
 * Every request is routed and checked here (method, body, parameters, credential) and either answered
 * at once (health, readiness, metrics, every 4xx that needs no database) or turned into a waiter and
 * handed to the watch registry, which answers it exactly once.
 */
#ifndef POLLGATE_GATEWAY_SERVER_H
#define POLLGATE_GATEWAY_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway/config.h"
#include "gateway/http.h"
#include "gateway/shared.h"
#include "gateway/watch.h"

struct event_base;
struct db_pool;
struct db_listen;
struct db_logical;

typedef struct gw_server gw_server;

/* Create the front. Everything passed is borrowed and must outlive it. `http_out` is what its answers
 * need (CORS, the access-log note: http.h), the same one the registry answers with (registry-io.h); the
 * server sets its CORS policy from the config on start and reload. */
gw_server *gw_server_new(struct event_base *base, const conf *cfg, gw_registry *reg, struct db_pool *pool,
                         struct db_listen *listen, gw_http_ctx *http_out) __attribute__((warn_unused_result));
void gw_server_free(gw_server *s); /* closes every connection; NULL is a no-op */

/* hint_source = logical: readiness follows this session (borrowed) instead of the LISTEN session, and
 * /metrics shows its figures. */
void gw_server_set_logical(gw_server *s, struct db_logical *logical);

/* Workers > 1, before gw_server_bind: this is worker `wi` of the server whose shared memory is `shm`
 * (borrowed): bind with SO_REUSEPORT, publish figures and readiness there every 10 ms, and answer
 * /metrics and /readyz for the whole server. Returns 0 or -1 (out of memory). */
int gw_server_set_shared(gw_server *s, gw_shm *shm, int wi) __attribute__((warn_unused_result));
/* Publish this worker's readiness now (the pool or the LISTEN session just changed); no-op without shm. */
void gw_server_publish_ready(gw_server *s);

/* Bind the configured listen address. Returns 0, or -1 (logged, with the reason). */
int gw_server_bind(gw_server *s) __attribute__((warn_unused_result));

/* Reload: apply the new config (timeouts and header limits take effect for new connections). */
void gw_server_set_conf(gw_server *s, const conf *cfg);

/* Drain: stop accepting, answer new requests on open connections 503 + Connection: close. */
void gw_server_stop_accepting(gw_server *s);

/* Requests received whose answer has not been completely written yet. */
uint64_t gw_server_unfinished(const gw_server *s);

#endif
