/*
 * dindfs mirror: serve a dindfs mount as a registry mirror until stopped.
 */
#include "cmd_mirror.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "mirror.h"
#include "pull_mount.h"

#define DEFAULT_LISTEN "127.0.0.1:5000"

/* "ADDRESS:PORT" (IPv4) into its parts. */
static int parse_listen(const char *s, char *address, size_t size, uint16_t *ret_port)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (!colon || colon == s || (size_t)(colon - s) >= size)
		return -EINVAL;
	port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port <= 0 || port > 65535)
		return -EINVAL;
	memcpy(address, s, (size_t)(colon - s));
	address[colon - s] = '\0';
	*ret_port = (uint16_t)port;
	return 0;
}

static int run_mirror(const struct tool_command *cmd, int argc, char **argv)
{
	static const struct option options[] = {
		{"root", required_argument, NULL, 'r'},
		{"listen", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *root = tool_default_root(), *listen = DEFAULT_LISTEN;
	char address[64];
	struct mirror *m;
	uint16_t port;
	sigset_t stop;
	int c, r, sig;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (c) {
		case 'r':
			root = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		default:
			return tool_other_option(cmd, c, argv);
		}
	}
	if (optind != argc)
		return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (parse_listen(listen, address, sizeof(address), &port) < 0)
		return tool_usage_error(cmd, "bad --listen '%s' (want ADDRESS:PORT)", listen);
	if (!tool_is_dindfs_mount(root)) {
		tool_error("'%s' is not a dindfs mount", root);
		return TOOL_EXIT_FAILED;
	}
	/* the server's threads inherit the mask: only sigwait below sees these */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	r = mirror_start(root, address, port, &m);
	if (r < 0) {
		tool_error("cannot serve on %s: %s", listen,
			   r == -EINVAL ? "not an IPv4 address" : "address in use or not ours");
		return TOOL_EXIT_FAILED;
	}
	fprintf(stderr, "dindfs mirror: serving %s on http://%s\n", root, listen);
	sigwait(&stop, &sig);
	mirror_stop(m);
	return TOOL_EXIT_OK;
}

const struct tool_command tool_cmd_mirror = {
	.name = "mirror",
	.brief = "serve a dindfs mount as a registry mirror for the local dockerd",
	.synopsis = "[--root MOUNTPOINT] [--listen ADDRESS:PORT]",
	.summary =
		"Answer the read side of the registry API v2 from the mount, so that a\n"
		"dockerd with \"registry-mirrors\": [\"http://127.0.0.1:5000\"] pulls through the\n"
		"host's cache. Runs until SIGTERM or SIGINT.",
	.usage = "  --root MOUNTPOINT      the mount (default $DINDFS_ROOT, then " TOOL_DEFAULT_ROOT
		 ")\n"
		 "  --listen ADDRESS:PORT  where to listen (default " DEFAULT_LISTEN
		 "; loopback unless told)\n",
	.run = run_mirror,
};
