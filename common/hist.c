/*
 * common/hist.c — see hist.h.
 */
#include "common/hist.h"

size_t cm_hist_bucket(const cm_hist *h, double v)
{
	size_t i = 0;
	while (i < h->nbounds && !(v <= h->bounds[i])) i++;
	return i;
}
