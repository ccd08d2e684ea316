/*
 * dindfs pull: an image from its registry into the store, with progress
 * like docker pull's.
 */
#include "cmd_pull.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pull.h"
#include "pull_mount.h"
#include "ref.h"
#include "registry.h"
#include "store.h"

/* Redraw a downloading line at most this often, in milliseconds. */
#define REDRAW_MS 100

struct display {
	bool tty;
	size_t n_lines; /* blob lines printed so far (TTY mode) */
	int64_t *last_draw_ms;
	enum pull_blob_state *last_state;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *state_text(enum pull_blob_state state)
{
	switch (state) {
	case PULL_BLOB_CACHED:
		return "Already exists";
	case PULL_BLOB_WAITING:
		return "Waiting";
	case PULL_BLOB_DOWNLOADING:
		return "Downloading";
	case PULL_BLOB_VERIFYING:
		return "Verifying Checksum";
	case PULL_BLOB_DONE:
		return "Download complete";
	case PULL_BLOB_FAILED:
		return "Failed";
	}
	return "?";
}

static void format_blob_line(const struct pull_blob_status *b, char *buf, size_t size)
{
	char done[32], total[32];

	if (b->state == PULL_BLOB_DOWNLOADING) {
		tool_format_size((int64_t)b->done, done, sizeof(done));
		tool_format_size(b->size, total, sizeof(total));
		snprintf(buf, size, "%.12s: %s %s/%s", b->digest.hex, state_text(b->state), done,
			 total);
	} else {
		snprintf(buf, size, "%.12s: %s", b->digest.hex, state_text(b->state));
	}
}

static void on_resolved(const struct digest *manifest, const struct pull_blob_status *blobs,
			size_t n, void *ctx)
{
	struct display *d = ctx;
	char line[128];
	size_t i;

	(void)manifest;
	d->last_draw_ms = calloc(n, sizeof(*d->last_draw_ms));
	d->last_state = calloc(n, sizeof(*d->last_state));
	for (i = 0; i < n; i++) {
		if (d->last_state)
			d->last_state[i] = blobs[i].state;
		if (!d->tty && blobs[i].state == PULL_BLOB_WAITING)
			continue;
		format_blob_line(&blobs[i], line, sizeof(line));
		printf("%s\n", line);
	}
	d->n_lines = n;
	fflush(stdout);
}

/* Called under the pull's lock, one call at a time. */
static void on_blob(size_t i, const struct pull_blob_status *b, void *ctx)
{
	struct display *d = ctx;
	char line[128];
	int64_t t = now_ms();
	bool changed;

	if (!d->last_state || !d->last_draw_ms)
		return;
	changed = d->last_state[i] != b->state;
	if (!changed && t - d->last_draw_ms[i] < REDRAW_MS)
		return;
	d->last_state[i] = b->state;
	d->last_draw_ms[i] = t;
	format_blob_line(b, line, sizeof(line));
	if (d->tty) {
		/* up to the blob's line, rewrite it, back down */
		size_t up = d->n_lines - i;

		printf("\033[%zuA\r\033[2K%s\033[%zuB\r", up, line, up);
	} else if (changed) {
		printf("%s\n", line);
	}
	fflush(stdout);
}

static int run_pull(const struct tool_command *cmd, int argc, char **argv)
{
	static const struct option options[] = {
		{"store", required_argument, NULL, 's'},
		{"root", required_argument, NULL, 'r'},
		{"upstream", required_argument, NULL, 'u'},
		{"allow-origin", required_argument, NULL, 'a'},
		{"platform", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *store_dir = NULL, *root = NULL, *reason = "";
	struct manifest_platform platform;
	struct pull_options opts = {0};
	struct registry_error err = {0};
	struct pull_result result;
	struct registry *reg = NULL;
	struct display display = {.tty = isatty(STDOUT_FILENO)};
	struct pull_observer observer = {on_resolved, on_blob, &display};
	char name[REF_STRING_SIZE], digest[DIGEST_STRING_SIZE];
	struct store *s = NULL;
	struct ref ref;
	bool upstream_given = false;
	int c, r, status = TOOL_EXIT_FAILED;

	r = registry_new(NULL, &reg);
	if (r < 0) {
		tool_error("cannot start the registry client: %s", strerror(-r));
		return TOOL_EXIT_FAILED;
	}
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (c) {
		case 's':
			store_dir = optarg;
			break;
		case 'r':
			root = optarg;
			break;
		case 'u':
			upstream_given = true;
			if (registry_add_upstream_spec(reg, optarg) < 0) {
				status = tool_usage_error(cmd,
							  "bad --upstream '%s' (want HOST=URL, "
							  "e.g. docker.io=http://127.0.0.1:5001)",
							  optarg);
				goto out;
			}
			break;
		case 'a':
			upstream_given = true;
			if (registry_allow_origin(reg, optarg) < 0) {
				status = tool_usage_error(
					cmd,
					"bad --allow-origin '%s' (want a base URL, "
					"e.g. http://127.0.0.1:5002)",
					optarg);
				goto out;
			}
			break;
		case 'p':
			if (manifest_platform_parse(optarg, &platform) < 0) {
				status = tool_usage_error(
					cmd, "bad --platform '%s' (want os/arch[/variant])",
					optarg);
				goto out;
			}
			opts.platform = &platform;
			break;
		default:
			status = tool_other_option(cmd, c, argv);
			goto out;
		}
	}
	if (optind != argc - 1) {
		status = tool_usage_error(cmd,
					  optind == argc ? "which image?" : "one image at a time");
		goto out;
	}
	r = ref_parse(argv[optind], &ref, &reason);
	if (r < 0) {
		tool_error("invalid reference '%s': %s", argv[optind], reason);
		goto out;
	}
	if (store_dir && root) {
		status = tool_usage_error(cmd, "--store or --root, not both");
		goto out;
	}
	if (!store_dir && upstream_given) {
		status = tool_usage_error(
			cmd, "--upstream and --allow-origin go with --store (a mount has its own)");
		goto out;
	}
	if (!store_dir) {
		root = root ? root : tool_default_root();
		if (!tool_is_dindfs_mount(root)) {
			tool_error("'%s' is not a dindfs mount (mount one there, or pull into a "
				   "store with --store)",
				   root);
			goto out;
		}
	} else {
		r = store_open(store_dir, &s);
		if (r < 0) {
			tool_error("cannot open store '%s': %s", store_dir, tool_strerror(r));
			goto out;
		}
	}
	ref_format(&ref, name, sizeof(name));
	printf("%s: Pulling from %s\n", name, ref.repository);
	opts.observer = &observer;
	if (root)
		r = tool_pull_through_mount(root, &ref, &opts, &result, NULL, err.message,
					    sizeof(err.message));
	else
		r = pull_image(reg, s, &ref, &opts, &result, &err);
	if (r < 0) {
		tool_error("%s", *err.message ? err.message : strerror(-r));
		goto out;
	}
	digest_format(&result.manifest, digest);
	printf("Digest: %s\n", digest);
	printf("Status: %s for %s\n",
	       result.blobs_fetched ? "Downloaded newer image" : "Image is up to date", name);
	status = TOOL_EXIT_OK;
out:
	free(display.last_draw_ms);
	free(display.last_state);
	store_close(s);
	registry_free(reg);
	return status;
}

const struct tool_command tool_cmd_pull = {
	.name = "pull",
	.brief = "pull an image from its registry into the store",
	.synopsis = "[--store DIR] [--upstream HOST=URL]... [--allow-origin URL]...\n"
		    "       [--platform OS/ARCH[/VARIANT]] REF",
	.summary = "Pull an image into the store: its manifest, config and layers, each\n"
		   "verified against its digest. A tag already in the store costs one HEAD;\n"
		   "nothing is downloaded again unless upstream changed.",
	.usage = "  --store DIR            the store (default $DINDFS_STORE, "
		 "then " TOOL_DEFAULT_STORE ")\n"
		 "  --upstream HOST=URL    send HOST's traffic to URL (a test registry, a mirror)\n"
		 "  --allow-origin URL     let redirects and token servers reach URL's origin\n"
		 "                         over http or on a private address\n"
		 "  --platform P           the platform to pick from a multi-platform image\n"
		 "                         (default: this machine's)\n",
	.run = run_pull,
};
