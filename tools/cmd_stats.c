/*
 * dindfs stats: the counters of a mount's .dindfs/stats, one per line with
 * sizes written for people, or the JSON as the daemon wrote it (--json).
 * Works at any level: it only reads the mount.
 */
#include "cmd_stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mount_layout.h"
#include "probe.h"

/* How long a mount may take to answer before it counts as hung. */
#define STATS_TIMEOUT_MS 10000

/* Names for people of the counters the daemon writes; others show as they are. */
static const struct {
	const char *key, *label;
	bool is_size;
} labels[] = {
	{"upstream_requests", "upstream requests", false},
	{"upstream_bytes", "upstream bytes", true},
	{"bytes_served", "bytes served", true},
	{"blob_hits", "blob hits", false},
	{"blob_misses", "blob misses", false},
	{"fetches_in_flight", "fetches in flight", false},
	{"store_blobs", "blobs in the store", false},
	{"store_bytes", "store size", true},
	{"pid", "daemon pid", false},
};

static void print_counter(const char *key, json_t *value)
{
	const char *label = key;
	bool is_size = false;
	char size[32];
	size_t i;

	for (i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
		if (strcmp(key, labels[i].key) == 0) {
			label = labels[i].label;
			is_size = labels[i].is_size;
		}
	}
	if (json_is_integer(value) && is_size) {
		tool_format_size(json_integer_value(value), size, sizeof(size));
		printf("%-20s %s (%lld bytes)\n", label, size,
		       (long long)json_integer_value(value));
	} else if (json_is_integer(value)) {
		printf("%-20s %lld\n", label, (long long)json_integer_value(value));
	} else {
		char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);

		printf("%-20s %s\n", label, text ? text : "?");
		free(text);
	}
}

static int run_stats(const struct tool_command *cmd, int argc, char **argv)
{
	static const struct option options[] = {
		{"root", required_argument, NULL, 'r'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *root = tool_default_root(), *key;
	char path[4096], *text = NULL;
	bool raw = false;
	json_t *doc, *value;
	size_t len;
	int c, r;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (c) {
		case 'r':
			root = optarg;
			break;
		case 'j':
			raw = true;
			break;
		default:
			return tool_other_option(cmd, c, argv);
		}
	}
	if (optind != argc)
		return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	snprintf(path, sizeof(path), "%s/" FS_LAYOUT_STATS_PATH, root);
	r = tool_probe_read(path, STATS_TIMEOUT_MS, &text, &len);
	if (r < 0) {
		tool_error("cannot read '%s': %s%s", path, strerror(-r),
			   r == -ENOENT	    ? " (is it a dindfs mount?)"
			   : r == -ENOTCONN ? " (the mount's daemon is gone)"
					    : "");
		return TOOL_EXIT_FAILED;
	}
	doc = json_loadb(text, len, 0, NULL);
	if (!json_is_object(doc)) {
		tool_error("'%s' is not the JSON object of counters it should be", path);
		json_decref(doc);
		free(text);
		return TOOL_EXIT_FAILED;
	}
	if (raw)
		fwrite(text, 1, len, stdout);
	else
		json_object_foreach(doc, key, value) print_counter(key, value);
	json_decref(doc);
	free(text);
	return TOOL_EXIT_OK;
}

const struct tool_command tool_cmd_stats = {
	.name = "stats",
	.brief = "show the mount's counters (upstream bytes, hits, the store)",
	.synopsis = "[--root MOUNTPOINT] [--json]",
	.summary = "Print the counters of MOUNTPOINT/.dindfs/stats, one per line; at any level.",
	.usage = "  --root MOUNTPOINT      the mount (default $DINDFS_ROOT, then " TOOL_DEFAULT_ROOT
		 ")\n"
		 "  --json                 the counters as the daemon writes them (JSON)\n",
	.run = run_stats,
};
