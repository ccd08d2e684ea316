/* clock: durations and time stamps for the request logs (clock.h). */
#include "clock.h"

#include <stdio.h>
#include <time.h>

double tool_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void tool_wall_clock(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	char hms[16];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(hms, sizeof(hms), "%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%06ld", hms, ts.tv_nsec / 1000);
}
