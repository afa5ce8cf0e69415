/*
 * gateway/metrics.h — /metrics in the Prometheus text exposition format (version 0.0.4).
 *
 * Renders what the rooms already count (the front's answers, the registry's stats, the pool's and the
 * LISTEN session's counters), the build, the relevant config limits and the process's own figures (CPU,
 * memory, descriptors, start time, from getrusage/getrlimit and /proc/self) into one buffer; it keeps no
 * state of its own. With workers (N > 1) the figures are the whole server's: see gw_metrics_snap. Every series is present from the first scrape, at 0 until something happens, so an
 * alert on a rate has a series to work on.
 */
#ifndef POLLGATE_GATEWAY_METRICS_H
#define POLLGATE_GATEWAY_METRICS_H

#include <stdint.h>

#include "db/hints.h"
#include "db/listen.h"
#include "db/logical.h"
#include "db/pool.h"
#include "gateway/http.h"
#include "gateway/shared.h"
#include "gateway/watch.h"

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

/* One process's figures, as workers publish them into shared memory (gateway/shared.h). Everything
 * before listen_up is summed word by word over the workers (uint64, except the doubles metrics.c
 * lists); a field added to gw_reg_stats, gw_metrics_front or the db_* stats is summed with them, a double
 * must be added to that list. */
typedef struct gw_metrics_snap {
	gw_metrics_front front;
	gw_reg_stats reg;
	uint64_t token_cache;  /* gauge */
	db_pool_stats pool;
	uint64_t db_connected; /* gauge */
	db_listen_stats listen;
	db_logical_stats logical; /* hint_source = logical (its lag_bytes and flushed_lsn are not used) */
	/* not summed */
	uint64_t listen_up;    /* the whole server: 1 only when every worker's hint session is up */
	uint64_t logical_lag;  /* hint_source = logical: the highest lag_bytes of a worker */
	double queue_usage;    /* the highest */
	db_hints hints;        /* the answering worker's */
	uint32_t published;
} gw_metrics_snap;

/* `logical`: the hint session with hint_source = logical (then `listen` is NULL), else NULL; listen_up
 * follows the session in use. */
void gw_metrics_collect(gw_metrics_snap *out, const gw_metrics_front *front, const struct gw_registry *reg,
                        const struct db_pool *pool, const struct db_listen *listen, const struct db_logical *logical);
/* Publish a worker's snapshot into its slot. */
void gw_metrics_publish(const gw_metrics_snap *own, gw_shm *shm, int self);
/* The supervisor, when worker `wi` died: fold its last published counters into the retired slot, so
 * the server's totals never go backwards. */
void gw_metrics_retire(gw_shm *shm, int wi);

/* Append the whole exposition. `shm` NULL: this process alone; else the whole server (this process's
 * fresh figures as worker `self`, published on the way, and every other worker's). `logical` as for
 * gw_metrics_collect; with it the pollgate_logical_* series are added. Returns 0 or -1 (out of memory). */
int gw_metrics_render(struct evbuffer *out, const gw_metrics_front *front, const struct gw_registry *reg,
                      const struct db_pool *pool, const struct db_listen *listen, const struct db_logical *logical,
                      const struct conf *cfg, gw_shm *shm, int self) __attribute__((warn_unused_result));

#endif
