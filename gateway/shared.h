/*
 * gateway/shared.h — the memory every worker process shares (workers = N > 1): whole-server waiter caps,
 * each worker's readiness and metrics, the restart count.
 *
 * One segment, mapped MAP_SHARED|MAP_ANONYMOUS by the supervisor before it forks, so every worker (and a
 * worker restarted later) sees the same pages; nothing in it is a pointer. Every field that more than one
 * process touches is a C11 atomic.
 *
 * Caps. `max_waiters` is one global counter. `max_waiters_per_principal` and `max_waiters_per_client` are
 * two fixed tables of GW_SHM_TABLE counters indexed by a keyed hash of the user id / the client key (the
 * seed is random per start, so a client cannot aim at another's slot). There are no keys in a slot: two
 * users (or clients) whose hashes share a slot share one counter, which can only make their cap stricter,
 * never looser. Taking a place is an increment first and a check after (undone when over the cap), so
 * racing workers can never both pass the last place. Each worker also keeps its own share of every
 * counter, always no more than what it added to the global ones, so when a worker dies the supervisor
 * subtracts exactly the dead worker's places (gw_shm_worker_reset) and the caps do not drift.
 *
 * Metrics. Each worker publishes a fixed-size snapshot of its figures into its slot (a seqlock over
 * atomic words); whichever worker answers /metrics reads every slot. A retired slot accumulates the
 * counters of workers that died, so a total never goes backwards when a worker is replaced.
 */
#ifndef POLLGATE_GATEWAY_SHARED_H
#define POLLGATE_GATEWAY_SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GW_SHM_MAX_WORKERS 256
#define GW_SHM_TABLE (1u << 16) /* counters per cap table */
#define GW_SHM_RETIRED (-1)     /* the snapshot slot of workers that died */

typedef struct gw_shm gw_shm;

/* Map a segment for `workers` processes whose metrics snapshots are `snap_bytes` long (a multiple of 8).
 * NULL (logged) on failure. */
gw_shm *gw_shm_new(int workers, size_t snap_bytes) __attribute__((warn_unused_result));
void gw_shm_free(gw_shm *m); /* unmaps; NULL is a no-op */
int gw_shm_workers(const gw_shm *m);

/* ---- caps ---- */

typedef enum { GW_SHM_TAKEN = 0, GW_SHM_FULL, GW_SHM_PRINCIPAL, GW_SHM_CLIENT } gw_shm_verdict;

/* One held request's places, to give back with gw_shm_hold_put. */
typedef struct gw_shm_place {
	uint32_t user_slot, client_slot;
} gw_shm_place;

/* Take a place for a held request of worker `wi`, user `user_id` and client `client_key` (already cut to
 * its prefix) under the three caps. GW_SHM_TAKEN fills *place; otherwise nothing is taken. */
gw_shm_verdict gw_shm_hold_take(gw_shm *m, int wi, int64_t user_id, const uint8_t client_key[16], int64_t max_total,
                                int64_t max_user, int64_t max_client, gw_shm_place *place)
	__attribute__((warn_unused_result));
void gw_shm_hold_put(gw_shm *m, int wi, const gw_shm_place *place);
uint64_t gw_shm_held(const gw_shm *m);                 /* held in the whole server */
uint64_t gw_shm_worker_held(const gw_shm *m, int wi); /* held by one worker */

/* ---- workers ---- */

void gw_shm_set_pid(gw_shm *m, int wi, pid_t pid); /* by the supervisor; 0 = no process */
pid_t gw_shm_pid(const gw_shm *m, int wi);
void gw_shm_set_supervisor(gw_shm *m, pid_t pid);
pid_t gw_shm_supervisor(const gw_shm *m);
/* A worker's database pool (at least one connection) and LISTEN session are up. */
void gw_shm_set_ready(gw_shm *m, int wi, bool pool_up, bool listen_up);
/* The worker got as far as serving (its socket bound, its loop about to run); cleared by worker_reset. */
void gw_shm_set_started(gw_shm *m, int wi);
bool gw_shm_worker_started(const gw_shm *m, int wi);
/* Every worker's pool and LISTEN session are up. */
bool gw_shm_all_ready(const gw_shm *m);
bool gw_shm_worker_listen_up(const gw_shm *m, int wi);
/* Worker `wi` is gone: give back every place it held, clear its readiness and its snapshot. */
void gw_shm_worker_reset(gw_shm *m, int wi);

void gw_shm_count_restart(gw_shm *m);
uint64_t gw_shm_restarts(const gw_shm *m);

/* ---- metrics snapshots ---- */

/* Publish `snap_bytes` of `data` into slot `wi` (or GW_SHM_RETIRED). One writer per slot. */
void gw_shm_snap_write(gw_shm *m, int wi, const void *data);
/* Read slot `wi` (or GW_SHM_RETIRED) consistently into `data`. Returns false when never written. */
bool gw_shm_snap_read(const gw_shm *m, int wi, void *data);
void gw_shm_snap_clear(gw_shm *m, int wi);

#endif
