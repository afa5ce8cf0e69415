/*
 * gateway/hold.h — why a request ended and how long it was held: the reason vocabulary shared by the
 * access log and /metrics, the hold-duration histogram by reason, and the layouts of the registry's
 * histograms.
 *
 * Pure: no I/O, no clock. The registry classifies each answered (or abandoned) waiter with
 * gw_hold_classify() and records it with gw_hold_observe(); metrics.c renders the histogram.
 */
#ifndef POLLGATE_GATEWAY_HOLD_H
#define POLLGATE_GATEWAY_HOLD_H

#include <stdbool.h>
#include <stdint.h>

#include "common/hist.h"

typedef enum {
	GW_HOLD_CHANGED = 0, /* 200: the client's version differs (at once, or a held request woken by a change) */
	GW_HOLD_TERMINAL,    /* 200/304 carrying a terminal state */
	GW_HOLD_UNCHANGED,   /* 304 at once: current and not active (or wait=0) */
	GW_HOLD_TIMEOUT,     /* 304: the hold's wait ran out */
	GW_HOLD_DENIED,      /* 404: missing, or not (or no longer) entitled */
	GW_HOLD_REVOKED,     /* 401 to a held request: token revoked, expired or deleted while held */
	GW_HOLD_UNAUTHORIZED, /* 401 at once */
	GW_HOLD_DRAIN,       /* answered by the shutdown drain */
	GW_HOLD_CAP,         /* 429/503 for a waiter cap */
	GW_HOLD_ERROR,       /* 503: the database could not be read */
	GW_HOLD_DISCONNECT,  /* the client left before an answer */
	GW_HOLD_NREASONS
} gw_hold_reason;

const char *gw_hold_reason_name(gw_hold_reason r);

/* Classify an answer. `held`: the request had been parked (not decided at once); `draining`: the drain
 * answered it; `terminal`: the answer's state is terminal (200/304); `at_cap`: a 503 was a cap. */
gw_hold_reason gw_hold_classify(int code, bool held, bool draining, bool terminal, bool at_cap);

/* The bucket layouts of the registry's histograms (common/hist.h), each defined once here and used both
 * where it is observed and where /metrics renders it. Bounds are seconds (hold, wake) or resources
 * (batch); the bucket counts are the arrays' sizes in gw_hold_hist and gw_reg_stats. */
#define GW_HOLD_BUCKETS 12
extern const double gw_hold_bounds[GW_HOLD_BUCKETS - 1];
extern const char *const gw_hold_bound_text[GW_HOLD_BUCKETS]; /* "0.01" ... "+Inf" */
extern const cm_hist gw_hist_hold;  /* pollgate_hold_duration_seconds */
#define GW_WAKE_BUCKETS 10
extern const cm_hist gw_hist_wake;  /* pollgate_notify_to_answer_seconds: 0.001 ... 1, +Inf */
#define GW_BATCH_BUCKETS 8
extern const cm_hist gw_hist_batch; /* pollgate_reread_batch_size: 1 ... 1000, +Inf */

typedef struct gw_hold_hist {
	uint64_t bucket[GW_HOLD_NREASONS][GW_HOLD_BUCKETS]; /* not cumulative */
	double sum_s[GW_HOLD_NREASONS];
	uint64_t count[GW_HOLD_NREASONS];
} gw_hold_hist;

void gw_hold_observe(gw_hold_hist *h, gw_hold_reason r, int64_t ms);

#endif
