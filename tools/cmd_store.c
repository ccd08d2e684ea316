/*
 * The host-side commands that work on a store directory: ls, gc, fsck,
 * pin and unpin.
 */
#include "cmd_store.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "fsck.h"
#include "gc.h"
#include "ref.h"
#include "store.h"

struct store_options {
	const char *store;
	int64_t max_size; /* -1 when not given */
	const char *ref;  /* pin and unpin: the image */
};

/*
 * Parse --store (every command), --max-size (gc) and one REF (pin, unpin).
 * Returns -1 to go on, or the exit code to stop with.
 */
static int parse_store_options(const struct tool_command *cmd, int argc, char **argv,
			       bool takes_max_size, bool takes_ref, struct store_options *ret)
{
	static const struct option options[] = {
		{"store", required_argument, NULL, 's'},
		{"max-size", required_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;

	ret->store = tool_default_store();
	ret->max_size = -1;
	ret->ref = NULL;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (c) {
		case 's':
			ret->store = optarg;
			break;
		case 'm':
			if (!takes_max_size)
				return tool_usage_error(cmd, "unknown option '--max-size'");
			if (tool_parse_size(optarg, &ret->max_size) < 0)
				return tool_usage_error(cmd, "bad size '%s' (try 500M or 20G)",
							optarg);
			break;
		default:
			return tool_other_option(cmd, c, argv);
		}
	}
	if (takes_ref && optind == argc)
		return tool_usage_error(cmd, "no image reference given");
	if (takes_ref)
		ret->ref = argv[optind++];
	if (optind < argc)
		return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (takes_max_size && ret->max_size < 0)
		return tool_usage_error(cmd, "--max-size is required");
	return -1;
}

static int open_store(const char *dir, struct store **ret)
{
	int r = store_open(dir, ret);

	if (r < 0)
		tool_error("cannot open store '%s': %s", dir, tool_strerror(r));
	return r;
}

static void format_time(int64_t when, char *buf, size_t size)
{
	time_t t = (time_t)when;
	struct tm tm;

	if (!localtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M", &tm))
		snprintf(buf, size, "-");
}

struct ls_walk {
	struct index *index;
	int64_t images;
};

static int print_image(const struct index_tag *tag, void *ctx)
{
	struct ls_walk *walk = ctx;
	char reference[3 * INDEX_NAME_MAX + 3], size[32], used[32];
	struct index_blob manifest;
	bool pinned = false;
	int64_t bytes = 0;
	int r;

	r = index_image_size(walk->index, &tag->manifest, &bytes);
	if (r < 0)
		return r;
	if (index_get_blob(walk->index, &tag->manifest, &manifest) == 0) {
		format_time(manifest.last_access, used, sizeof(used));
		pinned = manifest.pinned;
	} else {
		snprintf(used, sizeof(used), "-");
	}
	snprintf(reference, sizeof(reference), "%s/%s:%s", tag->registry, tag->repository,
		 tag->tag);
	tool_format_size(bytes, size, sizeof(size));
	if (walk->images++ == 0)
		printf("%-50s %-19s %10s  %-16s  %s\n", "REFERENCE", "DIGEST", "SIZE", "LAST USED",
		       "PINNED");
	printf("%-50s sha256:%.12s %10s  %-16s  %s\n", reference, tag->manifest.hex, size, used,
	       pinned ? "yes" : "-");
	return 0;
}

static int run_ls(const struct tool_command *cmd, int argc, char **argv)
{
	struct store_options opts;
	struct ls_walk walk = {0};
	struct store *s;
	int64_t count, bytes;
	char total[32];
	int r = parse_store_options(cmd, argc, argv, false, false, &opts);

	if (r >= 0)
		return r;
	if (open_store(opts.store, &s) < 0)
		return TOOL_EXIT_FAILED;
	walk.index = store_index(s);
	r = index_foreach_tag(walk.index, print_image, &walk);
	if (r == 0)
		r = index_blob_totals(walk.index, &count, &bytes);
	if (r < 0) {
		tool_error("cannot read the index of '%s': %s", opts.store, tool_strerror(r));
		store_close(s);
		return TOOL_EXIT_FAILED;
	}
	tool_format_size(bytes, total, sizeof(total));
	if (walk.images == 0)
		printf("no images\n");
	printf("%" PRId64 " blob%s, %s (%" PRId64 " bytes)\n", count, count == 1 ? "" : "s", total,
	       bytes);
	store_close(s);
	return TOOL_EXIT_OK;
}

static int run_gc(const struct tool_command *cmd, int argc, char **argv)
{
	struct store_options opts;
	struct gc_result res;
	struct store *s;
	char freed[32], left[32], limit[32];
	int r = parse_store_options(cmd, argc, argv, true, false, &opts);

	if (r >= 0)
		return r;
	if (open_store(opts.store, &s) < 0)
		return TOOL_EXIT_FAILED;
	r = gc_run(s, opts.max_size, &res);
	store_close(s);
	tool_format_size(res.removed_bytes, freed, sizeof(freed));
	tool_format_size(res.remaining_bytes, left, sizeof(left));
	tool_format_size(opts.max_size, limit, sizeof(limit));
	if (r < 0 && r != -ENOSPC) {
		tool_error("gc of '%s' failed: %s", opts.store, tool_strerror(r));
		return TOOL_EXIT_FAILED;
	}
	printf("removed %" PRId64 " image%s and %" PRId64 " blob%s, %s freed; %s left\n",
	       res.removed_tags, res.removed_tags == 1 ? "" : "s", res.removed_blobs,
	       res.removed_blobs == 1 ? "" : "s", freed, left);
	if (res.removed_layers > 0)
		printf("removed %" PRId64 " unpacked layer%s with their blobs\n",
		       res.removed_layers, res.removed_layers == 1 ? "" : "s");
	if (r == -ENOSPC) {
		tool_error("store '%s' stays at %s, over the %s limit: what is left is pinned "
			   "or being ingested",
			   opts.store, left, limit);
		return TOOL_EXIT_FAILED;
	}
	return TOOL_EXIT_OK;
}

static void report_bad_blob(const struct digest *d, const char *problem, void *ctx)
{
	const char *store = ctx;

	printf("bad blob sha256:%s: %s; moved to %s/quarantine/\n", d->hex, problem, store);
}

static void report_bad_layer(const struct digest *d, const char *problem, void *ctx)
{
	(void)ctx;
	printf("layer sha256:%s: %s\n", d->hex, problem);
}

static int run_fsck(const struct tool_command *cmd, int argc, char **argv)
{
	struct store_options opts;
	struct fsck_layer_result layers = {0};
	struct fsck_result res;
	struct store *s;
	char bytes[32];
	int r = parse_store_options(cmd, argc, argv, false, false, &opts);

	if (r >= 0)
		return r;
	if (open_store(opts.store, &s) < 0)
		return TOOL_EXIT_FAILED;
	r = fsck_run(s, report_bad_blob, (void *)opts.store, &res);
	if (r == 0)
		r = fsck_run_layers(s, report_bad_layer, NULL, &layers);
	store_close(s);
	if (r < 0) {
		tool_error("fsck of '%s' failed: %s", opts.store, tool_strerror(r));
		return TOOL_EXIT_FAILED;
	}
	tool_format_size(res.bytes, bytes, sizeof(bytes));
	printf("checked %" PRId64 " blob%s (%s) and %" PRId64 " unpacked layer%s\n", res.checked,
	       res.checked == 1 ? "" : "s", bytes, layers.checked, layers.checked == 1 ? "" : "s");
	if (layers.stray > 0)
		printf("removed %" PRId64
		       " leftover%s of unpacks and image builds from '%s/layers'\n",
		       layers.stray, layers.stray == 1 ? "" : "s", opts.store);
	if (res.bad > 0) {
		tool_error("%" PRId64 " damaged blob%s quarantined in '%s/quarantine'", res.bad,
			   res.bad == 1 ? "" : "s", opts.store);
		return TOOL_EXIT_FAILED;
	}
	if (layers.missing + layers.unindexed > 0) {
		tool_error("%" PRId64 " unpacked layer%s disagreed with the index in '%s/layers' "
			   "(repaired)",
			   layers.missing + layers.unindexed,
			   layers.missing + layers.unindexed == 1 ? "" : "s", opts.store);
		return TOOL_EXIT_FAILED;
	}
	return TOOL_EXIT_OK;
}

/* pin and unpin: the manifest ref names in the store, and what it reaches. */
static int set_pinned(const struct tool_command *cmd, int argc, char **argv, bool pinned)
{
	struct store_options opts;
	char name[REF_STRING_SIZE];
	struct index_tag tag;
	const char *reason;
	struct digest manifest;
	struct store *s;
	struct ref ref;
	int r = parse_store_options(cmd, argc, argv, false, true, &opts);

	if (r >= 0)
		return r;
	if (ref_parse(opts.ref, &ref, &reason) < 0) {
		tool_error("invalid reference '%s': %s", opts.ref, reason);
		return TOOL_EXIT_FAILED;
	}
	ref_format(&ref, name, sizeof(name));
	if (open_store(opts.store, &s) < 0)
		return TOOL_EXIT_FAILED;
	if (ref.has_digest) {
		manifest = ref.digest;
		r = 0;
	} else {
		r = index_get_tag(store_index(s), ref.registry, ref.repository, ref.tag, &tag);
		manifest = tag.manifest;
	}
	if (r == 0)
		r = index_set_image_pinned(store_index(s), &manifest, pinned);
	store_close(s);
	if (r == -ENOENT) {
		tool_error("'%s' is not in store '%s'", name, opts.store);
		return TOOL_EXIT_FAILED;
	}
	if (r < 0) {
		tool_error("cannot %s '%s' in store '%s': %s", cmd->name, name, opts.store,
			   tool_strerror(r));
		return TOOL_EXIT_FAILED;
	}
	printf("%s %s (sha256:%.12s) with its config and layers\n", pinned ? "pinned" : "unpinned",
	       name, manifest.hex);
	return TOOL_EXIT_OK;
}

static int run_pin(const struct tool_command *cmd, int argc, char **argv)
{
	return set_pinned(cmd, argc, argv, true);
}

static int run_unpin(const struct tool_command *cmd, int argc, char **argv)
{
	return set_pinned(cmd, argc, argv, false);
}

#define STORE_OPTION                                                                               \
	"  --store DIR            the store (default $DINDFS_STORE, then " TOOL_DEFAULT_STORE ")"  \
	"\n"

const struct tool_command tool_cmd_ls = {
	.name = "ls",
	.brief = "list the cached images and the store's size",
	.synopsis = "[--store DIR]",
	.summary = "List the images in the store, then its blob count and size.",
	.usage = STORE_OPTION,
	.run = run_ls,
};

const struct tool_command tool_cmd_gc = {
	.name = "gc",
	.brief = "shrink the store to a size limit",
	.synopsis = "[--store DIR] --max-size SIZE",
	.summary = "Remove unreferenced blobs, then least recently used images, until the\n"
		   "store is at most SIZE. Pinned blobs and what kept images need stay.",
	.usage = STORE_OPTION "  --max-size SIZE        the limit: bytes, or 500M, 20G, 1.5T\n",
	.run = run_gc,
};

const struct tool_command tool_cmd_fsck = {
	.name = "fsck",
	.brief = "verify every blob against its digest",
	.synopsis = "[--store DIR]",
	.summary = "Hash every blob again. Damaged blobs move to quarantine/ and leave the\n"
		   "index; each is named, and the exit status is 1.",
	.usage = STORE_OPTION,
	.run = run_fsck,
};

const struct tool_command tool_cmd_pin = {
	.name = "pin",
	.brief = "keep an image through gc",
	.synopsis = "[--store DIR] REF",
	.summary = "Pin the image REF names (a tag or a digest in the store): its manifest,\n"
		   "config and layers stay whatever gc's limit, until 'dindfs unpin REF'.",
	.usage = STORE_OPTION,
	.run = run_pin,
};

const struct tool_command tool_cmd_unpin = {
	.name = "unpin",
	.brief = "let gc remove a pinned image again",
	.synopsis = "[--store DIR] REF",
	.summary = "Unpin the image REF names, and its config and layers.",
	.usage = STORE_OPTION,
	.run = run_unpin,
};
