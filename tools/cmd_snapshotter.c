/*
 * dindfs snapshotter: containerd's proxy snapshotter for a level, over the
 * unpacked layers the host daemon shares at MOUNTPOINT/layers (see
 * snapshotter.h), served on a unix socket until SIGTERM or SIGINT.
 */
#include "cmd_snapshotter.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "snapshotter.h"
#include "snapshotter_content.h"
#include "snapshotter_rpc.h"

#define DEFAULT_SOCKET SNAP_RPC_DEFAULT_SOCKET
#define DEFAULT_STATE  "/var/lib/dindfs/snapshotter"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

/* The socket's directory, made when missing (only the last component). */
static int socket_dir(const char *path)
{
	char *dir = strdup(path), *slash;
	int r = 0;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			r = -errno;
	}
	free(dir);
	return r;
}

static int run_snapshotter(const struct tool_command *cmd, int argc, char **argv)
{
	static const struct option options[] = {
		{"root", required_argument, NULL, 'r'},
		{"socket", required_argument, NULL, 's'},
		{"state", required_argument, NULL, 'd'},
		{"content", required_argument, NULL, 'c'},
		{"containerd", required_argument, NULL, 'a'},
		{"log-requests", no_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *root = tool_default_root(), *socket = DEFAULT_SOCKET, *state = DEFAULT_STATE;
	const char *content = NULL, *containerd = NULL;
	struct sigaction sa = {.sa_handler = on_signal};
	struct snap_content *links = NULL;
	bool log_requests = false;
	struct snap *s;
	int c, r;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (c) {
		case 'r':
			root = optarg;
			break;
		case 's':
			socket = optarg;
			break;
		case 'd':
			state = optarg;
			break;
		case 'c':
			content = optarg;
			break;
		case 'a':
			containerd = optarg;
			break;
		case 'L':
			log_requests = true;
			break;
		default:
			return tool_other_option(cmd, c, argv);
		}
	}
	if (optind != argc)
		return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (containerd && !content)
		return tool_usage_error(cmd, "--containerd needs --content");
	r = snap_open(state, root, &s);
	if (r < 0) {
		tool_error("cannot open the snapshotter's state in '%s': %s", state, strerror(-r));
		return TOOL_EXIT_FAILED;
	}
	if (content) {
		r = snap_content_new(content, root, containerd, &links);
		if (r < 0) {
			tool_error("cannot link blobs into '%s': %s", content, strerror(-r));
			snap_free(s);
			return TOOL_EXIT_FAILED;
		}
		snap_content_log_requests(links, log_requests);
		snap_set_content(s, links);
	}
	r = socket_dir(socket);
	if (r < 0) {
		tool_error("cannot make the directory of '%s': %s", socket, strerror(-r));
		snap_free(s);
		snap_content_free(links);
		return TOOL_EXIT_FAILED;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	r = snap_grpc_serve(s, socket, log_requests, &stop);
	snap_free(s);
	snap_content_free(links);
	return r < 0 ? TOOL_EXIT_FAILED : TOOL_EXIT_OK;
}

const struct tool_command tool_cmd_snapshotter = {
	.name = "snapshotter",
	.brief = "serve containerd a snapshotter over the mount's shared layers",
	.synopsis =
		"[--root MOUNTPOINT] [--socket PATH] [--state DIR] [--content DIR [--containerd "
		"SOCKET]] [--log-requests]",
	.summary = "A containerd proxy snapshotter (containerd.services.snapshots.v1) on a unix\n"
		   "socket: layers the host daemon unpacked under MOUNTPOINT/layers become\n"
		   "snapshots without a download or an unpack; others unpack into DIR as with\n"
		   "containerd's overlayfs snapshotter. Runs until SIGTERM or SIGINT.",
	.usage = "  --root MOUNTPOINT      the mount (default $DINDFS_ROOT, then " TOOL_DEFAULT_ROOT
		 ")\n"
		 "  --socket PATH          the gRPC socket (default " DEFAULT_SOCKET ")\n"
		 "  --state DIR            snapshots and their database (default " DEFAULT_STATE
		 ");\n"
		 "                         not on overlayfs: it holds overlay upper layers\n"
		 "  --content DIR          link shared layers' blobs from MOUNTPOINT/blobs into\n"
		 "                         DIR, containerd's io.containerd.content.v1.content\n"
		 "  --containerd SOCKET    record those blobs in the snapshot's containerd\n"
		 "                         namespace, so docker images, save and push see them\n"
		 "  --log-requests         one line on stderr per call: the time, the method,\n"
		 "                         its status and milliseconds\n",
	.run = run_snapshotter,
};
