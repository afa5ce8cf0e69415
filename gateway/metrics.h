/*
 * gateway/metrics.h — /metrics in the Prometheus text exposition format (version 0.0.4).
 *
 * Renders what the rooms already count (the front's answers, the registry's stats, the pool's and the
 * LISTEN session's counters), the build, the relevant config limits and the process's own figures (CPU,
 * memory, descriptors, start time, from getrusage/getrlimit and /proc/self) into one buffer; it keeps no
 * state of its own. Every series is present from the first scrape, at 0 until something happens, so an
 * alert on a rate has a series to work on.
 */
#ifndef POLLGATE_GATEWAY_METRICS_H
#define POLLGATE_GATEWAY_METRICS_H

#include <stdint.h>

#include "gateway/http.h"

struct evbuffer;
struct gw_registry;
struct db_pool;
struct db_listen;
struct db_logical;
struct conf;

/* What the HTTP front counts itself (answers it gave without the registry). */
typedef struct gw_metrics_front {
	uint64_t answers[GW_NROUTES][GW_NSTATUS];
	uint64_t heads_reading;   /* connections reading a request head now */
	uint64_t head_timeouts;   /* connections dropped for not finishing a head within header_timeout */
	uint64_t protocol_errors; /* requests the HTTP parser refused (bad line or header, too large, body) */
	uint64_t accept_pauses;   /* times accepting paused because file descriptors ran out */
} gw_metrics_front;

/* Append the whole exposition. `logical` is the hint session with hint_source = logical (then `listen` is
 * NULL): pollgate_listen_up follows it, and its own pollgate_logical_* series are added; NULL otherwise.
 * Returns 0 or -1 (out of memory). */
int gw_metrics_render(struct evbuffer *out, const gw_metrics_front *front, const struct gw_registry *reg,
                      const struct db_pool *pool, const struct db_listen *listen, const struct db_logical *logical,
                      const struct conf *cfg) __attribute__((warn_unused_result));

#endif
