/*
 * gateway/watch.h — the watch registry: who waits on what, and when the truth is read again.
 *
 * Three levels, each O(1) to find through keyed hash tables:
 *   watch   one resource (a run, or a tenant's review pack): its last representation and ETag, whether
 *           that is still trustworthy, its safety-net timer, and whether it is closed for good (terminal);
 *   sub     one user's interest in one watch: the entitlement verdict and when it was checked (valid for
 *           auth_cache_ttl), plus that user's waiters, pending (awaiting a read) or held;
 *   waiter  one HTTP request: pending on a token lookup, pending on a read, or held until its deadline.
 *
 * Reads are batched: anything that needs the database (a NOTIFY, a safety-net tick, a new request whose
 * state or entitlement is not fresh) only marks its watch dirty; a deferred flush sends one query per
 * kind for every dirty watch (up to reread_batch_max), naming per watch only the users whose entitlement
 * must be checked. A watch never has two reads in flight, and a NOTIFY that lands while its read is in
 * flight makes it read once more, so no commit can slip between a read and a hold.
 *
 * A waiter costs one small struct and one libevent event (EV_CLOSED on its socket plus its deadline on
 * the timer heap, using libevent's common-timeout queues so equal waits insert in O(1)). A client that
 * leaves is freed at once. Waking is O(waiters answered).
 */
#ifndef POLLGATE_GATEWAY_WATCH_H
#define POLLGATE_GATEWAY_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event_struct.h>

#include "auth/cache.h"
#include "gateway/config.h"
#include "gateway/hold.h"
#include "gateway/http.h"
#include "gateway/shared.h"

struct evhttp_request;
struct event_base;
struct db_pool;
struct db_listen;

typedef enum { GW_RUN = 0, GW_PACK = 1 } gw_kind;
#define GW_KINDS 2
const char *gw_kind_name(gw_kind k);

/* NEW: not on any list; AUTH: waiting for a token lookup; READ: waiting for a read; HELD: held until a
 * change or its deadline; ANSWERING: its resource changed and its 200 waits for the next answer slice. */
typedef enum { GW_W_NEW = 0, GW_W_AUTH, GW_W_READ, GW_W_HELD, GW_W_ANSWERING } gw_wstate;

struct gw_sub;
struct gw_registry;
struct gw_counter;

/* One request. Created by the HTTP front (server.c), owned by the registry from gw_reg_submit() on. */
typedef struct gw_waiter {
	struct evhttp_request *req; /* borrowed from evhttp until answered or freed with its connection */
	struct gw_registry *reg;
	struct event ev; /* EV_CLOSED on the socket, plus the hold deadline while held */
	gw_wstate state;
	gw_kind kind;
	int64_t id;
	auth_wait auth_link;  /* on token->waiting while GW_W_AUTH */
	auth_token *token;    /* referenced (token->users) from submit to the answer */
	bool owed;            /* HELD though its resource changed: owed new state once its token (and verdict)
	                       * are checked again; never told "unchanged" (answer.c) */
	int64_t owed_ms;      /* when it last became owed (monotonic), or 0 */
	struct gw_sub *sub;   /* while GW_W_READ / GW_W_HELD */
	TAILQ_ENTRY(gw_waiter) link; /* on sub->pending, sub->held or sub->answering */
	struct gw_counter *client;   /* held-per-client counter while held (per-user: sub->user->held) */
	const char *inm;             /* If-None-Match value, borrowed from the request's headers, or NULL */
	char since[40];              /* ?since= value wrapped in quotes, or "" */
	bool has_since;
	bool since_junk; /* ?since= too long to be one of ours: matches nothing */
	int64_t wait_ms;
	int64_t hold_until_ms; /* monotonic deadline of the hold once held (cm_mono_ms), else 0 */
	uint8_t client_addr[16]; /* resolved client address (IPv4 mapped) for the per-client cap */
	int64_t start_ms;        /* cm_mono_ms() when the request arrived: hold durations, access log */
	char rid[40];
	uint8_t token_hash[32];
	int64_t jwt_user;   /* > 0: the credential is a verified JWT for this user (token_hash is its cache key) */
	int64_t jwt_exp_us; /* and it is good until then */
	gw_shm_place place; /* its places in the whole-server caps while held (workers > 1) */
} gw_waiter;

typedef struct gw_registry gw_registry;

/* Counters the registry keeps for /metrics. */
typedef struct gw_reg_stats {
	uint64_t held[GW_KINDS];      /* gauge: waiters held */
	uint64_t pending;             /* gauge: waiters awaiting a token lookup or a read */
	uint64_t watches[GW_KINDS];   /* gauge */
	uint64_t subs;                /* gauge */
	uint64_t reads[GW_KINDS];     /* batched read queries sent */
	uint64_t read_rows[GW_KINDS]; /* rows they returned */
	uint64_t read_resources[GW_KINDS]; /* resources they asked for (sum of batch sizes) */
	uint64_t batch_hist[8];            /* re-read batch sizes: <=1, 10, 50, 100, 250, 500, 1000, more */
	uint64_t read_errors;
	uint64_t token_reads;
	uint64_t notifies[GW_KINDS + 1]; /* runs, packs, access */
	uint64_t wakes_notify, wakes_safety, wakes_reconnect; /* re-reads by cause */
	uint64_t answered_change;  /* held waiters answered because the representation changed */
	uint64_t answered_expiry;  /* held waiters answered 304 at their deadline */
	uint64_t answered_denied;  /* held waiters answered 404 after losing access */
	uint64_t disconnects;      /* waiters whose client left */
	uint64_t terminal_closes;  /* watches closed for good */
	uint64_t rejected_cap;     /* 429/503 for caps */
	uint64_t bad_rows;         /* database rows that did not parse */
	uint64_t answers[GW_KINDS][GW_NSTATUS]; /* answers by kind and gw_http_status_index() */
	/* notify -> answer latency histogram (ms buckets: 1,5,10,25,50,100,250,500,1000,+Inf) */
	uint64_t wake_hist[10];
	double wake_sum_ms;
	uint64_t wake_count;
	gw_hold_hist hold; /* how long waiters were held, by why they ended */
} gw_reg_stats;

/* Create the registry with the production seam (registry-io.h: reads through e->pool, answers through
 * evhttp with e->http). `cfg` and `e` are borrowed and must outlive it (gw_reg_set_conf swaps cfg). */
struct gw_reg_evhttp;
gw_registry *gw_reg_new(struct event_base *base, const conf *cfg, struct gw_reg_evhttp *e)
	__attribute__((warn_unused_result));
/* The same with the seam given (registry-io.h; copied): how it reads and how it answers. */
struct gw_reg_io;
gw_registry *gw_reg_new_io(struct event_base *base, const conf *cfg, const struct gw_reg_io *io)
	__attribute__((warn_unused_result));
/* Answers nothing; frees every waiter with its connection. Call after draining. NULL is a no-op. */
void gw_reg_free(gw_registry *r);

void gw_reg_set_conf(gw_registry *r, const conf *cfg); /* reload: applies to the next decision/timer */
const conf *gw_reg_conf(const gw_registry *r);
/* Workers > 1: the caps count the whole server through `shm` (borrowed), as worker `wi`. */
void gw_reg_set_shared(gw_registry *r, gw_shm *shm, int wi);

/* Take ownership of a parsed request: w->req, kind, id, token_hash, wait_ms, inm/since, rid and
 * client_addr are filled in. The registry answers it exactly once (or frees it if the client leaves). */
void gw_reg_submit(gw_registry *r, gw_waiter *w);

/* Wake-up hints from the LISTEN session. */
void gw_reg_notify(gw_registry *r, gw_kind kind, int64_t id);
void gw_reg_notify_access(gw_registry *r, int64_t user_id); /* user_id < 0: everyone */
void gw_reg_listen_up(gw_registry *r);
void gw_reg_listen_down(gw_registry *r);
/* The pool changed (a connection idle or up): send what waits for a connection. */
void gw_reg_pool_changed(gw_registry *r);

/* Start draining: answer every held waiter now (its current answer, Connection: close); pending ones are
 * answered as their reads finish, with Connection: close. */
void gw_reg_drain(gw_registry *r);
/* Waiters not yet answered (pending + held). */
uint64_t gw_reg_outstanding(const gw_registry *r);
/* Answer every remaining waiter 503 (drain deadline). */
void gw_reg_abort_pending(gw_registry *r);

const gw_reg_stats *gw_reg_get_stats(const gw_registry *r);
size_t gw_reg_token_cache_size(const gw_registry *r);

#endif
