/*
 * gateway/supervisor.h — workers = N > 1: the process that starts N workers and keeps them running.
 *
 * The supervisor maps the shared segment (gateway/shared.h), reserves the listen address, forks the
 * workers and then only handles signals and child exits on its own small event loop: it serves nothing,
 * holds no database session. A worker that dies is logged (exit status or signal), counted
 * (pollgate_worker_restarts_total) and restarted, after a backoff when it keeps dying young. SIGHUP: the
 * supervisor parses the file first; a bad file is refused once, here, and no worker is told; a good one
 * becomes the supervisor's config (what a restarted worker starts with) and every worker gets SIGHUP.
 * SIGTERM/SIGINT: every worker drains; the supervisor exits 0 when all have exited 0.
 */
#ifndef POLLGATE_GATEWAY_SUPERVISOR_H
#define POLLGATE_GATEWAY_SUPERVISOR_H

#include "gateway/config.h"
#include "gateway/shared.h"

#define GW_SUP_WORKER (-1) /* gw_sup_run returned in a forked worker */

typedef struct gw_sup_opts {
	const char *conf_path;              /* NULL: built-in defaults, nothing to reload */
	int workers;                        /* 2..GW_SHM_MAX_WORKERS */
	size_t snap_bytes;                  /* a worker's metrics snapshot (sizeof gw_metrics_snap) */
	void (*apply_logging)(const conf *); /* reopen the log with a config (SIGHUP) */
} gw_sup_opts;

/* Run the supervisor with `*cfg` (owned; replaced by a good reload). In the supervisor, returns its exit
 * code (0, or 1 when it could not start or a worker did not stop cleanly), having freed what it made but
 * not *cfg. In a worker, returns GW_SUP_WORKER with *shm (the worker now owns its mapping) and *wi (its
 * index, 0..N-1) set, *cfg the supervisor's current config, the supervisor's loop gone from this process
 * and the stop/reload signals still blocked: the worker unblocks them once its own handlers are in. */
int gw_sup_run(const gw_sup_opts *o, conf **cfg, gw_shm **shm, int *wi) __attribute__((warn_unused_result));

#endif
