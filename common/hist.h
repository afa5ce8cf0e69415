/*
 * common/hist.h — the one histogram type: a bucket layout (ascending upper bounds, "less or equal" as
 * Prometheus means it, plus the +Inf bucket) and the labels /metrics prints for it. Counts live where
 * the owner keeps its statistics (plain uint64_t arrays of cm_hist.nbounds + 1, not cumulative), so a
 * snapshot stays a flat struct that can be summed word by word.
 */
#ifndef POLLGATE_COMMON_HIST_H
#define POLLGATE_COMMON_HIST_H

#include <stddef.h>

typedef struct cm_hist {
	size_t nbounds;         /* finite bounds; the buckets are nbounds + 1, the last one +Inf */
	const double *bounds;   /* ascending; a value equal to a bound falls in that bound's bucket */
	const char *const *le;  /* nbounds + 1 labels as printed (le="..."), the last "+Inf" */
} cm_hist;

/* The bucket of v: the first i with v <= bounds[i], else nbounds (+Inf). NaN goes to +Inf. */
size_t cm_hist_bucket(const cm_hist *h, double v);

#endif
