/*
 * cli: what every dindfs command shares — exit codes, the one-line error
 * report, option tables, and sizes written the way people write them.
 */
#ifndef DINDFS_CLI_H
#define DINDFS_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum tool_exit {
	TOOL_EXIT_OK = 0,
	TOOL_EXIT_FAILED = 1, /* the command ran and failed: one line on stderr says why */
	TOOL_EXIT_USAGE = 2,  /* the command line was wrong: usage on stderr */
};

#define TOOL_DEFAULT_STORE "/var/lib/dindfs"
#define TOOL_DEFAULT_ROOT  "/dindfs"

struct tool_command {
	const char *name;
	const char *brief; /* one line for 'dindfs --help' */
	const char *summary;
	const char *usage; /* option lines shown by --help, after the synopsis */
	const char *synopsis;
	int (*run)(const struct tool_command *cmd, int argc, char **argv);
};

/* Print "dindfs: <message>" on stderr. */
void tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print a command's usage: to stdout for --help, to stderr for a mistake. */
void tool_usage(const struct tool_command *cmd, FILE *out);

/* Report a usage mistake (message, then usage) and return TOOL_EXIT_USAGE. */
int tool_usage_error(const struct tool_command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * What every command's getopt loop does with the rest: -h and --help print
 * the usage (exit 0); a missing value or an unknown option is a usage
 * error (exit 2). Call it for getopt's ':' and '?' and for 'h'; returns
 * the exit status. The option string must start with ':'.
 */
int tool_other_option(const struct tool_command *cmd, int c, char **argv);

/*
 * Parse a size: bytes, or a number with K, M, G or T (powers of 1024),
 * optionally followed by "B" or "iB": "500M", "20G", "1.5G". -EINVAL for
 * anything else, -ERANGE past 2^62.
 */
int tool_parse_size(const char *s, int64_t *ret);

/* "1.5 GB" and the like, into buf. */
void tool_format_size(int64_t bytes, char *buf, size_t size);

/* strerror, with dindfs's own meanings for a few codes. */
const char *tool_strerror(int negative_errno);

/* The store directory: $DINDFS_STORE, else TOOL_DEFAULT_STORE. */
const char *tool_default_store(void);

/* The mount: $DINDFS_ROOT, else TOOL_DEFAULT_ROOT. */
const char *tool_default_root(void);

#endif
