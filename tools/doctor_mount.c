/*
 * doctor_mount: where doctor runs, the mount and its workspace, and (at
 * the daemon's level) the upstream registries.
 *
 * The level comes from the mount when it answers: .dindfs/whoami says how
 * many pid namespaces the caller sits below the daemon's (fs/whoami.c).
 * Without it, only signs of a container are left (/.dockerenv,
 * /run/.containerenv, the cgroup path, an overlayfs root), and the depth
 * stays unknown.
 */
#include "doctor.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mount_layout.h"
#include "probe.h"
#include "registry.h"

#define MAX_REGISTRIES 16

/* "a, b": append a hint. */
static void add_hint(struct doctor *d, const char *hint)
{
	size_t len = strlen(d->hints);

	snprintf(d->hints + len, sizeof(d->hints) - len, "%s%s", len ? ", " : "", hint);
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] && s[3]) {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/*
 * Look at /proc/self/mountinfo: whether path is a mount point (the last
 * mount there is the one seen) and of which type, and whether / is an
 * overlayfs (a container's root).
 */
static void read_mountinfo(struct doctor *d, const char *path)
{
	char line[4096], point[4096];
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *dash = strstr(line, " - "), type[64];

		if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1 ||
		    sscanf(dash + 3, "%63s", type) != 1)
			continue;
		unescape(point);
		if (strcmp(point, "/") == 0 && strcmp(type, "overlay") == 0)
			add_hint(d, "/ is an overlayfs");
		if (strcmp(point, path) == 0) {
			d->mounted = true;
			snprintf(d->fstype, sizeof(d->fstype), "%s", type);
		}
	}
	fclose(f);
}

/* cgroup paths that container engines make. */
static void read_cgroup_hints(struct doctor *d)
{
	static const char *const engines[] = {"docker", "kubepods", "containerd", "libpod", "lxc"};
	char line[1024];
	FILE *f = fopen("/proc/self/cgroup", "re");
	size_t i;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		for (i = 0; i < sizeof(engines) / sizeof(engines[0]); i++) {
			if (strstr(line, engines[i])) {
				char hint[64];

				snprintf(hint, sizeof(hint), "a %s cgroup", engines[i]);
				add_hint(d, hint);
				fclose(f);
				return;
			}
		}
	}
	fclose(f);
}

/* root as an absolute path without trailing slashes (no stat: the mount may hang). */
static void mount_point(const char *root, char *buf, size_t size)
{
	char cwd[2048];
	size_t len;

	if (root[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		snprintf(buf, size, "%s", root);
	else
		snprintf(buf, size, "%s/%s", cwd, root);
	len = strlen(buf);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
}

void doctor_probe_mount(struct doctor *d)
{
	char path[4096 + 32], point[4096], *text;
	json_t *whoami, *depth;
	size_t len;
	int r;

	d->depth = -1;
	if (access("/.dockerenv", F_OK) == 0)
		add_hint(d, "/.dockerenv");
	if (access("/run/.containerenv", F_OK) == 0)
		add_hint(d, "/run/.containerenv");
	read_cgroup_hints(d);
	mount_point(d->root, point, sizeof(point));
	read_mountinfo(d, point);

	snprintf(path, sizeof(path), "%s/" FS_LAYOUT_STATS_PATH, d->root);
	d->mount_error = tool_probe_read(path, DOCTOR_TIMEOUT_MS, &text, &len);
	if (d->mount_error == 0) {
		d->stats = json_loadb(text, len, 0, NULL);
		free(text);
		if (!json_is_object(d->stats))
			d->mount_error = -EBADMSG;
	}
	if (d->mount_error == 0) {
		snprintf(path, sizeof(path), "%s/" FS_LAYOUT_WHOAMI_PATH, d->root);
		r = tool_probe_read(path, DOCTOR_TIMEOUT_MS, &text, &len);
		whoami = r == 0 ? json_loadb(text, len, 0, NULL) : NULL;
		if (r == 0)
			free(text);
		depth = json_object_get(whoami, "depth");
		if (json_is_integer(depth))
			d->depth = (int)json_integer_value(depth);
		else if (json_is_null(depth) &&
			 json_integer_value(json_object_get(whoami, "pid")) == 0)
			d->outside_daemon = true;
		json_decref(whoami);
	}
	/* the level of the daemon: said by the daemon, else no sign of a container */
	d->at_daemon_level = d->depth == 0 || (d->depth < 0 && !d->outside_daemon && !*d->hints);
}

void doctor_check_where(struct doctor *d)
{
	char signs[300] = "";

	if (*d->hints)
		snprintf(signs, sizeof(signs), " (%s)", d->hints);
	if (d->depth == 0 && *d->hints)
		doctor_say(d, DOCTOR_OK,
			   "where: the host, depth 0: the dindfs daemon's own pid namespace "
			   "(though it shows signs of a container: %s)",
			   d->hints);
	else if (d->depth == 0)
		doctor_say(d, DOCTOR_OK,
			   "where: the host, depth 0: the dindfs daemon's own pid "
			   "namespace");
	else if (d->depth > 0)
		doctor_say(d, DOCTOR_OK, "where: a container%s, depth %d below the dindfs daemon",
			   signs, d->depth);
	else if (d->outside_daemon)
		doctor_say(d, DOCTOR_OK,
			   "where: %s%s, outside the dindfs daemon's pid namespace (the daemon "
			   "runs in a container of its own)",
			   *d->hints ? "a container" : "the host", signs);
	else if (*d->hints)
		doctor_say(d, DOCTOR_OK, "where: a container%s, depth unknown (%s does not answer)",
			   signs, d->root);
	else
		doctor_say(d, DOCTOR_OK, "where: the host (no sign of a container)");
}

/* The fix for a mount that is missing or dead, at this level. */
static void fix_mount(struct doctor *d, bool dead)
{
	bool in_container = d->depth > 0 || (d->depth < 0 && *d->hints);

	if (dead && d->at_daemon_level)
		doctor_fix(d,
			   "fusermount3 -u %s, then mount it again: dindfs mount --store DIR "
			   "--workspace DIR %s",
			   d->root, d->root);
	else if (dead) /* the level is a guess: say what each side does */
		doctor_fix(d, "on the host, fusermount3 -u the mount and mount it again (dindfs "
			      "mount ...); a container that binds it must then be restarted (its "
			      "bind mount keeps the dead one)");
	else if (!in_container)
		doctor_fix(d, "dindfs mount --store %s --workspace DIR %s", TOOL_DEFAULT_STORE,
			   d->root);
	else
		doctor_fix(d,
			   "run this container with -v /dindfs:%s (the host's dindfs mount; "
			   "mount it on the host first)",
			   d->root);
}

void doctor_check_mount(struct doctor *d)
{
	char path[4096 + 16], size[32];
	int r;

	if (!d->mounted && d->mount_error == -ENOENT) {
		doctor_say(d, DOCTOR_FAIL, "mount: %s is not mounted", d->root);
		return fix_mount(d, false);
	}
	if (d->mounted && strcmp(d->fstype, "fuse.dindfs") != 0 && d->mount_error != 0) {
		doctor_say(d, DOCTOR_FAIL, "mount: %s is a %s mount, not dindfs", d->root,
			   d->fstype);
		return fix_mount(d, false);
	}
	switch (-d->mount_error) {
	case 0:
		tool_format_size(json_integer_value(json_object_get(d->stats, "store_bytes")), size,
				 sizeof(size));
		doctor_say(d, DOCTOR_OK, "mount: %s is mounted (%s) and answering: %lld blobs, %s",
			   d->root, d->mounted ? d->fstype : "below a mount point",
			   (long long)json_integer_value(json_object_get(d->stats, "store_blobs")),
			   size);
		break;
	case ENOTCONN:
		doctor_say(d, DOCTOR_FAIL,
			   "mount: %s is mounted, but dead: its daemon is gone (%s)", d->root,
			   strerror(ENOTCONN));
		return fix_mount(d, true);
	case ETIMEDOUT:
		doctor_say(d, DOCTOR_FAIL, "mount: %s is mounted, but hung: no answer within %d s",
			   d->root, DOCTOR_TIMEOUT_MS / 1000);
		return doctor_fix(d, "%s",
				  d->at_daemon_level
					  ? "look at the daemon's --log; fusermount3 -u -z the "
					    "mount and mount it again"
					  : "look at the dindfs daemon on the host (its --log)");
	default:
		doctor_say(d, DOCTOR_FAIL, "mount: cannot read %s/.dindfs/stats: %s", d->root,
			   strerror(-d->mount_error));
		return fix_mount(d, false);
	}

	snprintf(path, sizeof(path), "%s/" FS_LAYOUT_WORKSPACE, d->root);
	r = tool_probe_stat(path, DOCTOR_TIMEOUT_MS);
	if (r == 0) {
		/* how long the kernel trusts names (fs/ws_watch.c); 0 from a daemon before it */
		long trust =
			(long)json_integer_value(json_object_get(d->stats, "workspace_timeout_s"));

		if (trust == 1) {
			doctor_say(
				d, DOCTOR_WARN,
				"workspace: %s, but host changes are not watched any more (the"
				" daemon's --log says why): names and attributes are trusted 1 s,"
				" so stats and listings ask the daemon",
				path);
			doctor_fix(d, "raise fs.fanotify.max_user_marks and "
				      "fs.fanotify.max_queued_events on the host "
				      "(fs.inotify.max_user_watches"
				      " and fs.inotify.max_queued_events where the log says inotify"
				      " watches), then mount it again");
		} else if (trust > 1) {
			doctor_say(
				d, DOCTOR_OK,
				"workspace: %s (host changes watched; names and attributes trusted"
				" %ld s)",
				path, trust);
		} else {
			doctor_say(d, DOCTOR_OK, "workspace: %s", path);
		}
	} else {
		doctor_say(d, DOCTOR_WARN, "workspace: none at %s (%s)", path, strerror(-r));
		doctor_fix(d, "mount it with a workspace, on the host: dindfs mount --workspace "
			      "DIR ...");
	}
}

/* ---- the upstream registries ------------------------------------------------- */

/* Hand the daemon's own --upstream overrides (from its command line) to reg. */
static void add_daemon_upstreams(struct doctor *d, struct registry *reg)
{
	long pid = (long)json_integer_value(json_object_get(d->stats, "pid"));
	char path[64], *args = NULL, *arg, *end;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	if (pid <= 0 || tool_probe_read(path, DOCTOR_TIMEOUT_MS, &args, &len) < 0)
		return;
	end = args + len;
	for (arg = args; arg < end; arg += strlen(arg) + 1) {
		const char *spec = NULL;

		if (strncmp(arg, "--upstream=", strlen("--upstream=")) == 0)
			spec = arg + strlen("--upstream=");
		else if (strcmp(arg, "--upstream") == 0 && arg + strlen(arg) + 1 < end)
			spec = arg + strlen(arg) + 1;
		if (spec)
			registry_add_upstream_spec(reg, spec);
	}
	free(args);
}

/* docker.io, then every registry the cache knows (registry/<host>/). */
static size_t known_registries(struct doctor *d, char names[][256], size_t max)
{
	char path[4096 + 16];
	struct dirent *e;
	size_t n = 0, i;
	DIR *dir;

	snprintf(names[n++], 256, "docker.io");
	snprintf(path, sizeof(path), "%s/registry", d->root);
	dir = opendir(path);
	while (dir && n < max && (e = readdir(dir))) {
		bool seen = false;

		if (e->d_name[0] == '.' || strcmp(e->d_name, "local") == 0)
			continue;
		for (i = 0; i < n; i++)
			seen = seen || strcmp(names[i], e->d_name) == 0;
		if (!seen)
			snprintf(names[n++], 256, "%s", e->d_name);
	}
	if (dir)
		closedir(dir);
	return n;
}

void doctor_check_upstreams(struct doctor *d)
{
	struct registry_options opts = {
		.connect_timeout_s = DOCTOR_TIMEOUT_MS / 1000,
		.stall_timeout_s = DOCTOR_TIMEOUT_MS / 1000,
		.max_attempts = 1,
	};
	char names[MAX_REGISTRIES][256], url[REGISTRY_URL_MAX];
	struct registry *reg;
	size_t n, i;

	/* only the daemon's level talks to registries; the others need no network */
	if (!d->at_daemon_level || d->mount_error != 0)
		return;
	if (registry_new(&opts, &reg) < 0) {
		doctor_say(d, DOCTOR_FAIL, "upstream: cannot set up the registry client");
		return;
	}
	add_daemon_upstreams(d, reg);
	n = known_registries(d, names, MAX_REGISTRIES);
	for (i = 0; i < n; i++) {
		struct registry_error err = {0};
		int r = registry_ping(reg, names[i], &err);

		if (registry_base_url(reg, names[i], url, sizeof(url)) < 0)
			snprintf(url, sizeof(url), "?");
		if (r == 0)
			doctor_say(d, DOCTOR_OK, "upstream: %s (%s) answers", names[i], url);
		else if (err.http_status != 0)
			/* there and talking: a refusal is about credentials, not the network */
			doctor_say(d, DOCTOR_OK, "upstream: %s (%s) answers (HTTP %d)", names[i],
				   url, err.http_status);
		else {
			doctor_say(d, DOCTOR_WARN, "upstream: %s (%s) does not answer: %s",
				   names[i], url, err.message);
			doctor_fix(d, "check the network or proxy (the cache still serves what it "
				      "holds), or send it elsewhere: dindfs mount --upstream "
				      "HOST=URL");
		}
	}
	registry_free(reg);
}
