/*
 * policy/duration.c — the one duration syntax of pollgate: "<digits><unit>", unit ms, s, m or h
 * ("250ms", "25s", "5m", "1h"). Used by the config file and by the policy value parsers, so an
 * operator learns one rule. No sign, no fraction, no bare number: an interval without a unit is an
 * accident waiting to happen.
 */
#include <stdint.h>
#include <string.h>

#include "policy/policy.h"

int pol_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	int64_t n = 0;
	const char *p = s;

	if (s == NULL || *p < '0' || *p > '9') return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (INT64_MAX - 9) / 10) return -1;
		n = n * 10 + (*p - '0');
	}
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(p, units[i].unit) == 0) {
			if (n > INT64_MAX / units[i].ms) return -1;
			*ms = n * units[i].ms;
			return 0;
		}
	}
	return -1;
}
