/*
 * cli: shared helpers of the dindfs commands (see cli.h).
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void tool_error(const char *fmt, ...)
{
	va_list ap;

	fputs("dindfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void tool_usage(const struct tool_command *cmd, FILE *out)
{
	fprintf(out, "usage: dindfs %s %s\n\n%s\n", cmd->name, cmd->synopsis, cmd->summary);
	if (cmd->usage && *cmd->usage)
		fprintf(out, "\n%s", cmd->usage);
	fputs("  -h, --help             show this help\n", out);
}

int tool_usage_error(const struct tool_command *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "dindfs %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n\n", stderr);
	tool_usage(cmd, stderr);
	return TOOL_EXIT_USAGE;
}

int tool_other_option(const struct tool_command *cmd, int c, char **argv)
{
	if (c == 'h') {
		tool_usage(cmd, stdout);
		return TOOL_EXIT_OK;
	}
	if (c == ':')
		return tool_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
	return tool_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
}

int tool_parse_size(const char *s, int64_t *ret)
{
	static const char units[] = "KMGT";
	const char *unit;
	char *end;
	double value, scale = 1;

	if (!*s || !(*s >= '0' && *s <= '9'))
		return -EINVAL;
	errno = 0;
	value = strtod(s, &end);
	if (errno || end == s)
		return -EINVAL;
	if (*end) {
		unit = strchr(units, *end >= 'a' ? *end - ('a' - 'A') : *end);
		if (!unit)
			return -EINVAL;
		scale = pow(1024, (double)(unit - units + 1));
		end++;
		if (strcmp(end, "") != 0 && strcmp(end, "B") != 0 && strcmp(end, "iB") != 0)
			return -EINVAL;
	}
	value *= scale;
	if (value > (double)(INT64_C(1) << 62))
		return -ERANGE;
	*ret = (int64_t)value;
	return 0;
}

void tool_format_size(int64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = {"B", "KB", "MB", "GB", "TB"};
	double value = (double)bytes;
	size_t unit = 0;

	while (value >= 1024 && unit + 1 < sizeof(units) / sizeof(units[0])) {
		value /= 1024;
		unit++;
	}
	if (unit == 0)
		snprintf(buf, size, "%lld B", (long long)bytes);
	else
		snprintf(buf, size, "%.1f %s", value, units[unit]);
}

const char *tool_default_store(void)
{
	const char *env = getenv("DINDFS_STORE");

	return env && *env ? env : TOOL_DEFAULT_STORE;
}

const char *tool_strerror(int negative_errno)
{
	switch (-negative_errno) {
	case EBADMSG:
		return "content does not match its digest";
	case EPROTONOSUPPORT:
		return "the store was written by a newer dindfs";
	default:
		return strerror(-negative_errno);
	}
}

const char *tool_default_root(void)
{
	const char *env = getenv("DINDFS_ROOT");

	return env && *env ? env : TOOL_DEFAULT_ROOT;
}
