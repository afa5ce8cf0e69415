/*
 * gateway/watch-internal.h — the registry's types (watch, sub, user, counter, the registry itself), which
 * every file of its chain shares, and watch.c's functions: the tables at the bottom of the chain
 * (docs/architecture.md). Not for other rooms.
 */
#ifndef POLLGATE_GATEWAY_WATCH_INTERNAL_H
#define POLLGATE_GATEWAY_WATCH_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event_struct.h>

#include "auth/cache.h"
#include "common/hmap.h"
#include "common/clock.h"
#include "gateway/registry-io.h"
#include "gateway/watch.h"
#include "policy/policy.h"

typedef enum { HAVE_NOTHING = 0, HAVE_ROW, HAVE_MISSING } have_state;

typedef struct gw_watch {
	cm_hnode node;
	gw_registry *reg;
	gw_kind kind;
	int64_t id;
	have_state have;
	pol_view view;
	void *render;   /* the seam's rendering of this view (registry-io.h: reply), or NULL; freed with the view */
	bool stale;     /* the view may predate a lost NOTIFY: read before trusting it */
	bool closed;    /* terminal: answered, never held again, NOTIFYs ignored */
	bool dirty;     /* in the dirty list of its kind */
	bool in_flight; /* part of a read in flight */
	bool retry_on_up; /* its last read found no database connection: read again when one comes up */
	bool kept;        /* its last read asked for the row whoever it named was entitled: an absent row is
	                   * then missing for everyone; otherwise only for the users it named */
	int wake_cause; /* what made it dirty: for metrics */
	int64_t notified_ms; /* when a NOTIFY marked it dirty (for the wake latency histogram), or 0 */
	TAILQ_ENTRY(gw_watch) dirty_link;
	struct event timer; /* safety net while held; linger otherwise */
	LIST_HEAD(, gw_sub) subs;
	unsigned n_held, n_pending;
} gw_watch;

typedef enum { ENT_UNCHECKED = 0, ENT_ENTITLED, ENT_DENIED } ent_state;

typedef struct gw_sub {
	cm_hnode node;
	gw_watch *w;
	int64_t user_id;
	ent_state ent;
	int64_t checked_ms;
	uint64_t check_seq;   /* the batch that is checking it, or 0 */
	uint64_t verdict_seq; /* the batch that gave the current verdict */
	LIST_ENTRY(gw_sub) link;      /* in its watch's subs */
	LIST_ENTRY(gw_sub) user_link; /* in its user's subs (gw_user) */
	struct gw_user *user;
	TAILQ_HEAD(, gw_waiter) pending;
	TAILQ_HEAD(, gw_waiter) held;
	TAILQ_HEAD(, gw_waiter) answering; /* held waiters due a 200, answered a slice at a time */
	TAILQ_ENTRY(gw_sub) answer_link;   /* in the registry's answer queue while answering is not empty */
	bool in_answer_q;
	unsigned n_owed; /* held waiters owed new state (gw_waiter.owed) */
} gw_sub;

/* One user's subs across all watches, so an access change touches only that user's. */
typedef struct gw_user {
	cm_hnode node;
	int64_t user_id;
	uint64_t held; /* held waiters of this user, for max_waiters_per_principal */
	LIST_HEAD(, gw_sub) subs;
} gw_user;

/* A per-client held counter. */
typedef struct gw_counter {
	cm_hnode node;
	uint8_t key[16];
	uint64_t n;
} gw_counter;

enum { CAUSE_NEW = 0, CAUSE_NOTIFY, CAUSE_SAFETY, CAUSE_RECONNECT };


struct gw_registry {
	struct event_base *base;
	const conf *cfg;
	gw_reg_io io; /* the database and the connections (registry-io.h) */
	auth_cache *tokens;
	cm_hmap watches, subs, clients;
	cm_hmap user_subs; /* gw_user by user id */
	TAILQ_HEAD(, gw_sub) answer_q; /* subs with waiters due a 200 */
	struct event *answer_ev;       /* answers the next slice of answer_q */
	/* Watches to read, per kind: those a hint (or a new request) made dirty first, then the safety net's,
	 * from dirty_safety[kind] on (NULL: none). A sweep of the safety net never delays a change. */
	TAILQ_HEAD(, gw_watch) dirty[GW_KINDS];
	struct gw_watch *dirty_safety[GW_KINDS];
	unsigned sweeps_in_flight; /* reads in flight that carry safety-net watches */
	TAILQ_HEAD(, auth_token) token_dirty;
	TAILQ_HEAD(, auth_token) token_retry; /* re-checks that failed, looked up again by token_retry_ev */
	TAILQ_HEAD(, read_batch) batches;     /* reads in flight: the pool drops them unanswered at exit */
	struct event *token_retry_ev;
	uint64_t n_owed; /* held waiters owed new state, all subs */
	struct event *flush_ev;      /* the flush, deferred to the end of this loop iteration */
	struct event *flush_soon_ev; /* the flush, a few milliseconds later (safety-net ticks) */
	struct event *sweep_ev;
	bool flush_scheduled;
	bool listen_up;
	bool draining;
	uint64_t epoch;
	uint64_t batch_seq;
	uint64_t outstanding;
	uint64_t n_retry_on_up; /* watches with retry_on_up set */
	gw_reg_stats st;
	gw_shm *shm; /* workers > 1: the whole-server caps (borrowed), else NULL */
	int worker;
	const struct timeval *common_tv[64];
	int64_t common_ms[64];
	int n_common;
};

/* ---- watch.c: the tables, their lifetimes and freshness, the read queues ---- */

gw_watch *gw_watch_find(gw_registry *r, gw_kind kind, int64_t id);
gw_watch *gw_watch_get(gw_registry *r, gw_kind kind, int64_t id); /* found or made; NULL: out of memory */
gw_sub *gw_sub_find(gw_registry *r, gw_watch *w, int64_t user_id);
gw_sub *gw_sub_get(gw_registry *r, gw_watch *w, int64_t user_id);
/* A user's subs across watches, or NULL. */
gw_user *gw_user_find(gw_registry *r, int64_t user_id);
void gw_sub_free(gw_registry *r, gw_sub *s);
bool gw_sub_fresh(const gw_registry *r, const gw_sub *s, int64_t now);
bool gw_sub_idle(const gw_sub *s);
bool gw_view_fresh(const gw_watch *w);
void gw_watch_clear_view(gw_watch *w);
void gw_watch_free(gw_watch *w);
void gw_watch_maybe_free(gw_watch *w);
void gw_watch_arm(gw_watch *w, int64_t ms);
void gw_watch_rearm(gw_watch *w);
void gw_watch_arm_safety(gw_watch *w, int64_t interval);
/* Call fn on every watch (fn may free the watch it is given). */
void gw_for_each_watch(gw_registry *r, void (*fn)(gw_registry *r, gw_watch *w));
/* Per-client held counters (keyed by the capped address prefix). */
gw_counter *gw_counter_get(cm_hmap *m, const uint8_t key[16], bool create);
void gw_counter_put(cm_hmap *m, gw_counter *c);

/* Queue a watch for the next batched read (CAUSE_*), and ask for the flush (not the quiet one). */
void gw_watch_mark_dirty(gw_watch *w, int cause);
void gw_watch_mark_dirty_quiet(gw_watch *w, int cause);
/* Take a watch off its dirty list (it is being read, or freed). */
void gw_watch_undirty(gw_watch *w);
/* Ask for the deferred flush: at the end of this loop iteration, or a few milliseconds later (safety-net
 * ticks). The flush itself is reread.c's (gw_on_flush, the callback of r->flush_ev/flush_soon_ev). */
void gw_schedule_flush(gw_registry *r);
void gw_schedule_flush_soon(gw_registry *r);
/* Look a token already in use up again with the next flush — only when auth_token_trust says it needs a
 * lookup (RECHECK): a fresh one needs none, a dead one (revoked, expired; an expired JWT) has no row that
 * could revive it. */
void gw_token_recheck(gw_registry *r, auth_token *t);
/* A re-check failed: look the token up again in a second while requests still use it. */
void gw_token_retry(gw_registry *r, auth_token *t);

#endif
