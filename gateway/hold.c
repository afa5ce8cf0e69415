/*
 * gateway/hold.c — see hold.h. The bucket layouts below are the only place their bounds are written.
 */
#include "gateway/hold.h"

static const char *const names[GW_HOLD_NREASONS] = {
	"changed", "terminal", "unchanged", "timeout", "denied", "revoked",
	"unauthorized", "drain", "cap", "error", "disconnect",
};

/* Holds end from milliseconds (a wake) to max_wait (55 s by default, at most 1 h). */
const double gw_hold_bounds[GW_HOLD_BUCKETS - 1] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 25, 30, 60, 300};
const char *const gw_hold_bound_text[GW_HOLD_BUCKETS] = {"0.01", "0.05", "0.1", "0.5", "1",   "5",
                                                          "10",   "25",   "30",  "60",  "300", "+Inf"};
const cm_hist gw_hist_hold = {GW_HOLD_BUCKETS - 1, gw_hold_bounds, gw_hold_bound_text};

/* From a NOTIFY to the answer: a millisecond to a second (wake_hist in gw_reg_stats). */
static const double wake_bounds[GW_WAKE_BUCKETS - 1] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
static const char *const wake_text[GW_WAKE_BUCKETS] = {"0.001", "0.005", "0.01", "0.025", "0.05",
                                                       "0.1",   "0.25",  "0.5",  "1",     "+Inf"};
const cm_hist gw_hist_wake = {GW_WAKE_BUCKETS - 1, wake_bounds, wake_text};

/* Resources per batched re-read (batch_hist in gw_reg_stats). */
static const double batch_bounds[GW_BATCH_BUCKETS - 1] = {1, 10, 50, 100, 250, 500, 1000};
static const char *const batch_text[GW_BATCH_BUCKETS] = {"1", "10", "50", "100", "250", "500", "1000", "+Inf"};
const cm_hist gw_hist_batch = {GW_BATCH_BUCKETS - 1, batch_bounds, batch_text};

const char *gw_hold_reason_name(gw_hold_reason r)
{
	return (r >= 0 && r < GW_HOLD_NREASONS) ? names[r] : "error";
}

gw_hold_reason gw_hold_classify(int code, bool held, bool draining, bool terminal, bool at_cap)
{
	if (code == 0) return GW_HOLD_DISCONNECT;
	if (draining) return GW_HOLD_DRAIN;
	switch (code) {
	case 200: return terminal ? GW_HOLD_TERMINAL : GW_HOLD_CHANGED;
	case 304: return held ? GW_HOLD_TIMEOUT : terminal ? GW_HOLD_TERMINAL : GW_HOLD_UNCHANGED;
	case 404: return GW_HOLD_DENIED;
	case 401: return held ? GW_HOLD_REVOKED : GW_HOLD_UNAUTHORIZED;
	case 429: return GW_HOLD_CAP;
	case 503: return at_cap ? GW_HOLD_CAP : GW_HOLD_ERROR;
	default: return GW_HOLD_ERROR;
	}
}

void gw_hold_observe(gw_hold_hist *h, gw_hold_reason r, int64_t ms)
{
	double s = ms > 0 ? (double)ms / 1000.0 : 0.0;
	if (r < 0 || r >= GW_HOLD_NREASONS) r = GW_HOLD_ERROR;
	h->bucket[r][cm_hist_bucket(&gw_hist_hold, s)]++;
	h->sum_s[r] += s;
	h->count[r]++;
}
