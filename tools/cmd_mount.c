/*
 * dindfs mount and dindfs umount.
 *
 * mount runs the FUSE daemon: in the foreground with -f, else in the
 * background, returning once the mount answers (or with the daemon's one
 * line of error). umount unmounts and waits for the daemon to finish, so
 * that when it returns no download is left half-done.
 */
#include "cmd_mount.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "hosts.h"
#include "layer_image.h"
#include "mount_layout.h"
#include "ref.h"

#define MAX_UPSTREAMS	 64
#define MAX_REGISTRIES	 128
#define DEFAULT_TAG_TTL	 300
#define UMOUNT_WAIT_SECS 60
/* Tries, 0.1 s apart, of an unmount that finds the mount busy (a share being made). */
#define UMOUNT_BUSY_TRIES 30

#define DEFAULT_NEGATIVE_TTL	 15
#define DEFAULT_UPSTREAM_TIMEOUT 30

struct mount_options {
	struct fs_config fs;
	const char *upstreams[MAX_UPSTREAMS];
	const char *registries[MAX_REGISTRIES];
	const char *allow_origins[MAX_REGISTRIES];
	const char *log_path;
	const char *pidfile;
	bool foreground;
};

/* "UID:GID", both numbers. */
static int parse_owner(const char *arg, int64_t *ret_uid, int64_t *ret_gid)
{
	long long uid, gid;
	char *end;

	errno = 0;
	uid = strtoll(arg, &end, 10);
	if (errno || end == arg || *end != ':' || uid < 0 || uid >= UINT32_MAX)
		return -EINVAL;
	arg = end + 1;
	gid = strtoll(arg, &end, 10);
	if (errno || end == arg || *end || gid < 0 || gid >= UINT32_MAX)
		return -EINVAL;
	*ret_uid = uid;
	*ret_gid = gid;
	return 0;
}

/* --limit NAME=SIZE: one of fs_limits (a count or a size: 64, 16M). */
static int parse_limit(struct fs_limits *limits, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char name[64];
	int64_t value;

	if (!eq || (size_t)(eq - arg) >= sizeof(name) || tool_parse_size(eq + 1, &value) < 0)
		return -EINVAL;
	memcpy(name, arg, (size_t)(eq - arg));
	name[eq - arg] = '\0';
	return fs_limits_set(limits, name, value);
}

/* A count of seconds, at least min. */
static int parse_seconds(const char *arg, int64_t min, int64_t *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (errno || *end || end == arg || v < min)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_mount_options(const struct tool_command *cmd, int argc, char **argv,
			       struct mount_options *o)
{
	static const struct option options[] = {
		{"store", required_argument, NULL, 's'},
		{"workspace", required_argument, NULL, 'w'},
		{"workspace-owner", required_argument, NULL, 'O'},
		{"workspace-overlay-xattrs", no_argument, NULL, 'X'},
		{"no-passthrough", no_argument, NULL, 'P'},
		{"upstream", required_argument, NULL, 'u'},
		{"registry", required_argument, NULL, 'r'},
		{"allow-origin", required_argument, NULL, 'a'},
		{"tag-ttl", required_argument, NULL, 't'},
		{"negative-ttl", required_argument, NULL, 'N'},
		{"upstream-timeout", required_argument, NULL, 'T'},
		{"max-size", required_argument, NULL, 'm'},
		{"max-layers-size", required_argument, NULL, 'M'},
		{"limit", required_argument, NULL, 'L'},
		{"log", required_argument, NULL, 'l'},
		{"pidfile", required_argument, NULL, 'p'},
		{"foreground", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	char origin[HOSTS_ORIGIN_MAX + 1], *end;
	int c;

	o->fs.store_dir = tool_default_store();
	o->fs.tag_ttl = DEFAULT_TAG_TTL;
	o->fs.negative_ttl = DEFAULT_NEGATIVE_TTL;
	o->fs.upstream_timeout = DEFAULT_UPSTREAM_TIMEOUT;
	o->fs.max_size = -1;
	o->fs.max_layers_size = -1;
	o->fs.log_fd = -1;
	o->fs.workspace_uid = -1;
	o->fs.workspace_gid = -1;
	o->fs.upstreams = o->upstreams;
	o->fs.registries = o->registries;
	o->fs.allow_origins = o->allow_origins;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":fho:", options, NULL)) != -1) {
		switch (c) {
		case 's':
			o->fs.store_dir = optarg;
			break;
		case 'w':
			o->fs.workspace = optarg;
			break;
		case 'O':
			if (strcmp(optarg, "preserve") == 0)
				o->fs.workspace_preserve = true;
			else if (parse_owner(optarg, &o->fs.workspace_uid, &o->fs.workspace_gid) <
				 0)
				return tool_usage_error(
					cmd,
					"bad --workspace-owner '%s' (want UID:GID or preserve)",
					optarg);
			break;
		case 'X':
			o->fs.workspace_overlay_xattrs = true;
			break;
		case 'P':
			o->fs.no_passthrough = true;
			break;
		case 'u':
			if (o->fs.n_upstreams == MAX_UPSTREAMS)
				return tool_usage_error(cmd, "at most %d --upstream",
							MAX_UPSTREAMS);
			if (!strchr(optarg, '='))
				return tool_usage_error(cmd, "bad --upstream '%s' (want HOST=URL)",
							optarg);
			o->upstreams[o->fs.n_upstreams++] = optarg;
			break;
		case 'r':
			if (o->fs.n_registries == MAX_REGISTRIES)
				return tool_usage_error(cmd, "at most %d --registry",
							MAX_REGISTRIES);
			if (ref_validate_registry(ref_canonical_registry(optarg)) < 0 ||
			    strcmp(optarg, REF_LOCAL_REGISTRY) == 0)
				return tool_usage_error(cmd,
							"bad --registry '%s' (want a host[:port], "
							"e.g. registry.example.com)",
							optarg);
			o->registries[o->fs.n_registries++] = optarg;
			break;
		case 'a':
			if (o->fs.n_allow_origins == MAX_REGISTRIES)
				return tool_usage_error(cmd, "at most %d --allow-origin",
							MAX_REGISTRIES);
			if (hosts_base_origin(optarg, origin, sizeof(origin)) < 0)
				return tool_usage_error(cmd,
							"bad --allow-origin '%s' (want a base URL, "
							"e.g. http://127.0.0.1:5002)",
							optarg);
			o->allow_origins[o->fs.n_allow_origins++] = optarg;
			break;
		case 't':
			errno = 0;
			o->fs.tag_ttl = strtoll(optarg, &end, 10);
			if (errno || *end || end == optarg || o->fs.tag_ttl < 0)
				return tool_usage_error(cmd, "bad --tag-ttl '%s' (seconds)",
							optarg);
			break;
		case 'N':
			if (parse_seconds(optarg, 0, &o->fs.negative_ttl) < 0)
				return tool_usage_error(cmd, "bad --negative-ttl '%s' (seconds)",
							optarg);
			break;
		case 'T':
			if (parse_seconds(optarg, 1, &o->fs.upstream_timeout) < 0)
				return tool_usage_error(
					cmd, "bad --upstream-timeout '%s' (seconds, at least 1)",
					optarg);
			break;
		case 'm':
			if (tool_parse_size(optarg, &o->fs.max_size) < 0)
				return tool_usage_error(cmd, "bad size '%s' (try 500M or 20G)",
							optarg);
			break;
		case 'M':
			if (tool_parse_size(optarg, &o->fs.max_layers_size) < 0)
				return tool_usage_error(
					cmd, "bad --max-layers-size '%s' (try 500M or 20G)",
					optarg);
			break;
		case 'L':
			if (parse_limit(&o->fs.limits, optarg) < 0)
				return tool_usage_error(
					cmd,
					"bad --limit '%s' (want NAME=SIZE, see docs/security.md)",
					optarg);
			break;
		case 'l':
			o->log_path = optarg;
			break;
		case 'p':
			o->pidfile = optarg;
			break;
		case 'f':
			o->foreground = true;
			break;
		case 'o':
			if (strcmp(optarg, "allow_other") != 0)
				return tool_usage_error(cmd, "unknown -o '%s' (only allow_other)",
							optarg);
			o->fs.allow_other = true;
			break;
		default:
			return tool_other_option(cmd, c, argv);
		}
	}
	if (optind != argc - 1)
		return tool_usage_error(cmd,
					optind == argc ? "where to mount?" : "one mountpoint only");
	o->fs.mountpoint = argv[optind];
	return -1;
}

static int write_pidfile(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fprintf(f, "%d\n", (int)getpid());
	return fclose(f) == 0 ? 0 : -errno;
}

/* In the daemon: detach from the terminal, serve. Never returns. */
static void run_daemon(struct mount_options *o, int ready_fd)
{
	int null = open("/dev/null", O_RDWR);

	setsid();
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	_exit(fs_run(&o->fs, ready_fd) < 0 ? TOOL_EXIT_FAILED : TOOL_EXIT_OK);
}

/* In the caller: wait for the daemon's "ok", or its one line of error. */
static int wait_ready(int fd, pid_t pid)
{
	char line[700];
	size_t used = 0;
	ssize_t n;

	/* one line: the daemon keeps the pipe open while it runs */
	while (used < sizeof(line) - 1 && (used == 0 || line[used - 1] != '\n') &&
	       (n = read(fd, line + used, sizeof(line) - 1 - used)) > 0)
		used += (size_t)n;
	line[used] = '\0';
	if (used > 0 && line[used - 1] == '\n')
		line[--used] = '\0';
	if (strcmp(line, "ok") == 0)
		return TOOL_EXIT_OK;
	waitpid(pid, NULL, 0);
	tool_error("%s", used ? line : "the mount daemon died while starting");
	return TOOL_EXIT_FAILED;
}

/* Whether path (absolute, canonical) is dir or below it. */
static bool path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return true;
	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static int run_mount(const struct tool_command *cmd, int argc, char **argv)
{
	struct mount_options o = {0};
	char mountpoint[PATH_MAX], workspace[PATH_MAX];
	int pipefd[2], status;
	pid_t pid;

	status = parse_mount_options(cmd, argc, argv, &o);
	if (status >= 0)
		return status;
	if (!realpath(o.fs.mountpoint, mountpoint)) {
		tool_error("cannot mount on '%s': %s", o.fs.mountpoint, strerror(errno));
		return TOOL_EXIT_FAILED;
	}
	o.fs.mountpoint = mountpoint;
	/* checked here too, so that -f says what is wrong as well */
	if (o.fs.workspace) {
		struct stat st;

		if (!realpath(o.fs.workspace, workspace) || stat(workspace, &st) < 0) {
			tool_error("cannot open workspace '%s': %s", o.fs.workspace,
				   strerror(errno));
			return TOOL_EXIT_FAILED;
		}
		if (!S_ISDIR(st.st_mode)) {
			tool_error("cannot open workspace '%s': %s", o.fs.workspace,
				   strerror(ENOTDIR));
			return TOOL_EXIT_FAILED;
		}
		/* the daemon would serve its own mount to itself, inside itself */
		if (path_within(mountpoint, workspace)) {
			tool_error("cannot mount on '%s': it is inside the workspace '%s'",
				   mountpoint, workspace);
			return TOOL_EXIT_FAILED;
		}
		o.fs.workspace = workspace;
	}
	if (o.log_path) {
		o.fs.log_fd = open(o.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (o.fs.log_fd < 0) {
			tool_error("cannot open log '%s': %s", o.log_path, strerror(errno));
			return TOOL_EXIT_FAILED;
		}
	} else if (o.foreground) {
		o.fs.log_fd = STDERR_FILENO;
	}
	if (o.foreground) {
		if (o.pidfile && write_pidfile(o.pidfile) < 0)
			tool_error("cannot write pidfile '%s'", o.pidfile);
		return fs_run(&o.fs, -1) < 0 ? TOOL_EXIT_FAILED : TOOL_EXIT_OK;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		tool_error("cannot start the daemon: %s", strerror(errno));
		return TOOL_EXIT_FAILED;
	}
	pid = fork();
	if (pid < 0) {
		tool_error("cannot start the daemon: %s", strerror(errno));
		return TOOL_EXIT_FAILED;
	}
	if (pid == 0) {
		close(pipefd[0]);
		if (o.pidfile && write_pidfile(o.pidfile) < 0) {
			dprintf(pipefd[1], "cannot write pidfile '%s': %s\n", o.pidfile,
				strerror(errno));
			_exit(TOOL_EXIT_FAILED);
		}
		run_daemon(&o, pipefd[1]);
	}
	close(pipefd[1]);
	status = wait_ready(pipefd[0], pid);
	close(pipefd[0]);
	return status;
}

/* The daemon's PID, from its stats file; -1 when the mount does not answer. */
static pid_t daemon_pid(const char *mountpoint)
{
	char path[PATH_MAX];
	json_error_t error;
	json_t *stats;
	pid_t pid = -1;

	snprintf(path, sizeof(path), "%s/" FS_LAYOUT_STATS_PATH, mountpoint);
	stats = json_load_file(path, 0, &error);
	if (stats && json_is_integer(json_object_get(stats, "pid")))
		pid = (pid_t)json_integer_value(json_object_get(stats, "pid"));
	json_decref(stats);
	return pid;
}

static int run_umount(const struct tool_command *cmd, int argc, char **argv)
{
	char layers[PATH_MAX];
	const char *mountpoint;
	pid_t pid;
	int i;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		tool_usage(cmd, stdout);
		return TOOL_EXIT_OK;
	}
	if (argc != 2 || argv[1][0] == '-')
		return tool_usage_error(cmd,
					argc == 2 ? "unknown option '%s'" : "which mountpoint?",
					argc == 2 ? argv[1] : "");
	mountpoint = argv[1];
	pid = daemon_pid(mountpoint);
	if (!realpath(mountpoint, layers) || strlen(layers) >= sizeof(layers) - sizeof("/layers"))
		layers[0] = '\0';
	else
		strcat(layers, "/layers");
	/*
	 * The layers' images the daemon shared over its trees go first (a level
	 * using one keeps it). The daemon may be sharing one more meanwhile, its
	 * child walking the mount: busy for a moment, so tried again.
	 */
	for (i = 0;; i++) {
		struct timespec tick = {0, 100000000L};

		if (layers[0])
			layer_image_detach(NULL, layers);
		if (umount2(mountpoint, 0) == 0)
			break;
		if (errno != EBUSY || i == UMOUNT_BUSY_TRIES) {
			tool_error("cannot unmount '%s': %s", mountpoint, strerror(errno));
			return TOOL_EXIT_FAILED;
		}
		nanosleep(&tick, NULL);
	}
	/* the daemon stops its downloads and closes the store; wait for it */
	for (i = 0; pid > 0 && i < UMOUNT_WAIT_SECS * 10 && kill(pid, 0) == 0; i++) {
		struct timespec tick = {0, 100000000L};

		nanosleep(&tick, NULL);
	}
	if (pid > 0 && kill(pid, 0) == 0) {
		tool_error("unmounted '%s', but its daemon (pid %d) is still running", mountpoint,
			   (int)pid);
		return TOOL_EXIT_FAILED;
	}
	return TOOL_EXIT_OK;
}

const struct tool_command tool_cmd_mount = {
	.name = "mount",
	.brief = "mount the cache (and a workspace) as a filesystem",
	.synopsis = "[--store DIR] [--workspace DIR [--workspace-owner UID:GID|preserve]\n"
		    "       [--workspace-overlay-xattrs]]\n"
		    "       [--upstream HOST=URL]... [--registry NAME]... [--allow-origin URL]...\n"
		    "       [--tag-ttl SECONDS] [--max-size SIZE] [--max-layers-size SIZE]\n"
		    "       [--no-passthrough]\n"
		    "       [--limit NAME=SIZE]... [--negative-ttl SECONDS] [--upstream-timeout "
		    "SECONDS]\n"
		    "       [--log FILE] [--pidfile FILE] [-f] [-o allow_other] MOUNTPOINT",
	.summary =
		"Serve the store at MOUNTPOINT: blobs/, registry/<host>/<repo>/manifests|blobs,\n"
		"ingest/ and .dindfs/stats, and with --workspace that directory, read-write, at\n"
		"workspace/. Bind-mount it into every Docker-in-Docker level.\n"
		"Only the registries it serves are ever contacted: the public ones built in,\n"
		"--upstream and --registry names, and the hosts in the docker config.json;\n"
		".dindfs/registries lists them.\n"
		"Runs in the background and returns once the mount answers, unless -f.",
	.usage = "  --store DIR            the store (default $DINDFS_STORE, "
		 "then " TOOL_DEFAULT_STORE ")\n"
		 "  --workspace DIR        serve DIR at MOUNTPOINT/workspace, read-write\n"
		 "  --workspace-owner UID:GID|preserve\n"
		 "                         who owns what is created there (default: DIR's owner;\n"
		 "                         preserve: its creator, as on any POSIX file system)\n"
		 "  --workspace-overlay-xattrs\n"
		 "                         let levels set trusted.overlay.* there (an overlayfs\n"
		 "                         upper dir in the workspace: nested dockerd)\n"
		 "  --upstream HOST=URL    send HOST's traffic to URL (a test registry, a mirror)\n"
		 "  --registry NAME        serve the registry NAME (host[:port]) too\n"
		 "  --allow-origin URL     let redirects and token servers reach URL's origin\n"
		 "                         over http or on a private address\n"
		 "  --tag-ttl SECONDS      trust a tag this long before asking upstream (default "
		 "300)\n"
		 "  --negative-ttl SECONDS trust \"upstream has no such tag\" this long (default "
		 "15)\n"
		 "  --upstream-timeout SECONDS\n"
		 "                         the most one upstream request may take, retries "
		 "included\n"
		 "                         (default 30)\n"
		 "  --max-size SIZE        run GC when the store grows past SIZE (500M, 20G)\n"
		 "  --max-layers-size SIZE the most all unpacked layer trees together may hold;\n"
		 "                         a layer past it is not unpacked (levels unpack it\n"
		 "                         themselves). Default: the trees there plus half the\n"
		 "                         free space of the store's file system at start\n"
		 "  --no-passthrough       serve file data through the daemon even where the\n"
		 "                         kernel could read the backing files itself\n"
		 "  --limit NAME=SIZE      one of the limits on what a level can make the daemon\n"
		 "                         hold: ingest-size, tmp-size, level-tmp-size,\n"
		 "                         level-writers, level-buffer-size, level-inode-size,\n"
		 "                         level-local-tags\n"
		 "                         (defaults in docs/security.md)\n"
		 "  --log FILE             where the daemon logs (default: nowhere; stderr with "
		 "-f)\n"
		 "  --pidfile FILE         write the daemon's PID there\n"
		 "  -f, --foreground       stay in the foreground\n"
		 "  -o allow_other         let users other than the mounter in\n",
	.run = run_mount,
};

const struct tool_command tool_cmd_umount = {
	.name = "umount",
	.brief = "unmount and wait for the daemon to finish",
	.synopsis = "MOUNTPOINT",
	.summary = "Unmount a dindfs mount and wait until its daemon has stopped its downloads\n"
		   "and closed the store.",
	.usage = "",
	.run = run_umount,
};
