/*
 * limits: what a client of the mount can make the daemon hold, by name
 * (the names `dindfs mount --limit NAME=SIZE` takes and docs/security.md
 * lists), and their defaults.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "fs_internal.h"

static const struct {
	const char *name;
	size_t offset;
} names[] = {
	{"ingest-size", offsetof(struct fs_limits, ingest_bytes)},
	{"tmp-size", offsetof(struct fs_limits, tmp_bytes)},
	{"level-tmp-size", offsetof(struct fs_limits, level_tmp_bytes)},
	{"level-writers", offsetof(struct fs_limits, level_writers)},
	{"level-buffer-size", offsetof(struct fs_limits, level_buffer_bytes)},
	{"level-inode-size", offsetof(struct fs_limits, level_node_bytes)},
	{"level-local-tags", offsetof(struct fs_limits, level_local_tags)},
};

int fs_limits_set(struct fs_limits *limits, const char *name, int64_t value)
{
	size_t i;

	if (value <= 0)
		return -ERANGE;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(names[i].name, name) == 0) {
			*(int64_t *)((char *)limits + names[i].offset) = value;
			return 0;
		}
	}
	return -ENOENT;
}

void fs_limits_fill(struct fs_limits *limits)
{
	if (limits->ingest_bytes <= 0)
		limits->ingest_bytes = (int64_t)STORE_DEFAULT_MAX_WRITER_BYTES;
	if (limits->tmp_bytes <= 0)
		limits->tmp_bytes = (int64_t)STORE_DEFAULT_MAX_TMP_BYTES;
	/* no one level can fill tmp/: downloads and the other levels keep room */
	if (limits->level_tmp_bytes <= 0)
		limits->level_tmp_bytes = limits->tmp_bytes / 2;
	if (limits->level_writers <= 0)
		limits->level_writers = FS_DEFAULT_LEVEL_WRITERS;
	if (limits->level_buffer_bytes <= 0)
		limits->level_buffer_bytes = FS_DEFAULT_LEVEL_BUFFER_BYTES;
	if (limits->level_node_bytes <= 0)
		limits->level_node_bytes = FS_DEFAULT_LEVEL_NODE_BYTES;
	if (limits->level_local_tags <= 0)
		limits->level_local_tags = FS_DEFAULT_LEVEL_LOCAL_TAGS;
}
