/*
 * whoami: .dindfs/whoami, made for each opener — its pid as the daemon sees
 * it, and how many pid namespaces it sits below the daemon's: 0 at the
 * daemon's own level, 1 in a container a dockerd there started, 2 in a
 * container inside that one. `dindfs doctor` reads it to say where it runs.
 *
 * The kernel hands the daemon every caller's pid in the daemon's own pid
 * namespace (0 when the caller's namespace is not below it, as for a host
 * process calling a daemon that runs in a container). In the daemon's
 * /proc, that pid's status lists in NSpid one pid per namespace level from
 * the daemon's down to the caller's own, so the depth is their count less
 * one. A level sharing its parent's pid namespace (--pid host) does not
 * count.
 *
 * The same depth names the level whose budgets a caller's writers and
 * inodes count in (fs_level_of).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fs_internal.h"

/* NSpid entries of pid, less one; -errno when it cannot be read. */
static int pid_ns_depth(pid_t pid)
{
	char path[64], line[512];
	int depth = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *p = line + strlen("NSpid:");

		if (strncmp(line, "NSpid:", strlen("NSpid:")) != 0)
			continue;
		depth = -1;
		for (;;) {
			p += strspn(p, " \t\n");
			if (!*p)
				break;
			depth++;
			p += strcspn(p, " \t\n");
		}
		break;
	}
	fclose(f);
	return depth < 0 ? -ENOENT : depth;
}

int fs_whoami_json(pid_t pid, char **ret, size_t *ret_len)
{
	int depth = pid > 0 ? pid_ns_depth(pid) : -ESRCH;
	json_t *obj;
	char *text;

	/* depth null: the caller is outside the daemon's pid namespace, or gone */
	obj = json_pack("{s:I, s:o}", "pid", (json_int_t)pid, "depth",
			depth >= 0 ? json_integer(depth) : json_null());
	if (!obj)
		return -ENOMEM;
	text = json_dumps(obj, JSON_PRESERVE_ORDER);
	json_decref(obj);
	if (!text)
		return -ENOMEM;
	*ret_len = strlen(text) + 1;
	text[*ret_len - 1] = '\n';
	*ret = text;
	return 0;
}

int fs_level_of(pid_t pid)
{
	int depth = pid > 0 ? pid_ns_depth(pid) : -ESRCH;

	if (depth < 0)
		return FS_LEVEL_UNKNOWN;
	return depth < FS_LEVEL_DEEP ? depth : FS_LEVEL_DEEP;
}
