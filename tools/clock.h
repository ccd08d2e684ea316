/*
 * clock: the two clocks the request logs read (--log-requests in the
 * mirror and the snapshotter): a monotonic one for durations, and the
 * wall clock for a time stamp to set beside containerd's and dockerd's logs.
 */
#ifndef DINDFS_CLOCK_H
#define DINDFS_CLOCK_H

#include <stddef.h>

/* Milliseconds on CLOCK_MONOTONIC: differences of two are durations. */
double tool_monotonic_ms(void);
/* The wall clock (UTC) as "HH:MM:SS.uuuuuu" in buf (32 bytes are enough). */
void tool_wall_clock(char *buf, size_t size);

#endif
