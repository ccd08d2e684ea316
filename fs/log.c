/*
 * log: the daemon's log lines, on the log fd (stderr in the foreground,
 * --log FILE in the background), one write each so lines never interleave.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs_internal.h"

static void vlog(struct fs *fs, const char *fmt, va_list ap)
{
	char line[1024], when[32];
	struct tm tm;
	time_t now = time(NULL);
	int n;

	if (fs->cfg->log_fd < 0)
		return;
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = snprintf(line, sizeof(line), "%s dindfs[%d]: ", when, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(fs->cfg->log_fd, line, (size_t)n) < 0)
		return; /* nowhere left to say so */
}

void fs_log(struct fs *fs, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fs, fmt, ap);
	va_end(ap);
}

void fs_log_upstream(struct fs *fs, const char *message)
{
	bool repeat;

	pthread_mutex_lock(&fs->log_lock);
	repeat = strcmp(fs->last_log, message) == 0;
	if (!repeat)
		snprintf(fs->last_log, sizeof(fs->last_log), "%s", message);
	pthread_mutex_unlock(&fs->log_lock);
	if (!repeat)
		fs_log(fs, "upstream: %s", message);
}

_Noreturn void fs_internal_error_at(const char *file, int line, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	fprintf(stderr, "dindfs: INTERNAL ERROR: %s (%s:%d)\n", what, file, line);
	abort();
}
