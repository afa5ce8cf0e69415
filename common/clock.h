/*
 * common/clock.h — the two clocks every room reads: monotonic milliseconds for ages, timers and
 * deadlines, wall-clock microseconds for comparing with timestamps from the database (token expiry).
 */
#ifndef POLLGATE_COMMON_CLOCK_H
#define POLLGATE_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t cm_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t cm_wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
