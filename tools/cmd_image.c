/*
 * dindfs load and dindfs save: images between the cache and the local
 * dockerd, with no registry at that level.
 *
 * load makes sure the image is in the cache (reading it through the mount)
 * and streams a docker-archive of it (manifest.json, the config, the layer
 * blobs as they are) to POST /images/load. save takes GET /images/get's
 * archive, puts its config and layers into the cache through ingest/ and
 * writes an OCI manifest for them to registry/local/<repo>/manifests/<tag>,
 * so that `dindfs load local/<repo>:<tag>` at any other level runs it.
 */
#include "cmd_image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "digest.h"
#include "engine.h"
#include "manifest.h"
#include "mount_layout.h"
#include "pull_mount.h"
#include "ref.h"

#define COPY_CHUNK	     (1 << 20)
#define ARCHIVE_MANIFEST_MAX (1 << 20)
#define MAX_LAYERS	     MANIFEST_MAX_DESCRIPTORS

struct image_options {
	const char *root;
	const char *host;
	struct ref ref;
	char name[REF_STRING_SIZE]; /* the reference as docker shows it */
};

static int parse_image_options(const struct tool_command *cmd, int argc, char **argv,
			       struct image_options *o)
{
	static const struct option options[] = {
		{"root", required_argument, NULL, 'r'},
		{"host", required_argument, NULL, 'H'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *reason = "", *env = getenv("DOCKER_HOST");
	int c;

	o->root = tool_default_root();
	o->host = env && *env ? env : ENGINE_DEFAULT_HOST;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hH:", options, NULL)) != -1) {
		switch (c) {
		case 'r':
			o->root = optarg;
			break;
		case 'H':
			o->host = optarg;
			break;
		default:
			return tool_other_option(cmd, c, argv);
		}
	}
	if (optind != argc - 1)
		return tool_usage_error(cmd,
					optind == argc ? "which image?" : "one image at a time");
	if (ref_parse(argv[optind], &o->ref, &reason) < 0) {
		tool_error("invalid reference '%s': %s", argv[optind], reason);
		return TOOL_EXIT_FAILED;
	}
	ref_format_familiar(&o->ref, o->name, sizeof(o->name));
	if (!tool_is_dindfs_mount(o->root)) {
		tool_error("'%s' is not a dindfs mount", o->root);
		return TOOL_EXIT_FAILED;
	}
	return -1;
}

/* ---- load: the cache -> dockerd ---------------------------------------------- */

struct archive_plan {
	const char *root;
	const struct manifest *image;
	const char *tag; /* "" for an image by digest: no RepoTags */
};

static int write_entry(struct archive *a, const char *name, int64_t size)
{
	struct archive_entry *e = archive_entry_new();
	int r;

	if (!e)
		return -ENOMEM;
	archive_entry_set_pathname(e, name);
	archive_entry_set_size(e, size);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	r = archive_write_header(a, e) == ARCHIVE_OK ? 0 : -EIO;
	archive_entry_free(e);
	return r;
}

/* One blob of the store, read through the mount, as blobs/sha256/<hex> in the archive. */
static int add_blob(struct archive *a, const char *root, const struct manifest_descriptor *d,
		    char *buf)
{
	char path[PATH_MAX], name[80];
	struct stat st;
	ssize_t n;
	int fd, r;

	snprintf(path, sizeof(path), "%s/" FS_LAYOUT_BLOBS_SHA256 "/%s", root, d->digest.hex);
	snprintf(name, sizeof(name), "blobs/sha256/%s", d->digest.hex);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = fstat(fd, &st) < 0 ? -errno : write_entry(a, name, st.st_size);
	while (r == 0 && (n = read(fd, buf, COPY_CHUNK)) > 0)
		if (archive_write_data(a, buf, (size_t)n) != n)
			r = -EIO;
	if (r == 0 && n < 0)
		r = -errno;
	close(fd);
	return r;
}

/* manifest.json of a docker-archive: the config, the layers, the tag. */
static char *archive_manifest(const struct archive_plan *plan)
{
	json_t *layers = json_array(), *entry, *doc;
	char path[80];
	size_t i;
	char *text;

	for (i = 0; i < plan->image->n_layers; i++) {
		snprintf(path, sizeof(path), "blobs/sha256/%s", plan->image->layers[i].digest.hex);
		json_array_append_new(layers, json_string(path));
	}
	snprintf(path, sizeof(path), "blobs/sha256/%s", plan->image->config.digest.hex);
	entry = json_pack("{s:s, s:o, s:[]}", "Config", path, "Layers", layers, "RepoTags");
	if (entry && *plan->tag)
		json_array_append_new(json_object_get(entry, "RepoTags"), json_string(plan->tag));
	doc = json_pack("[o]", entry);
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	return text;
}

static int produce_archive(int fd, void *ctx)
{
	const struct archive_plan *plan = ctx;
	struct archive *a = archive_write_new();
	char *manifest = archive_manifest(plan), *buf = malloc(COPY_CHUNK);
	size_t i;
	int r = 0;

	if (!a || !manifest || !buf) {
		r = -ENOMEM;
		goto out;
	}
	archive_write_set_format_pax_restricted(a);
	if (archive_write_open_fd(a, fd) != ARCHIVE_OK) {
		r = -EIO;
		goto out;
	}
	r = write_entry(a, "manifest.json", (int64_t)strlen(manifest));
	if (r == 0 &&
	    archive_write_data(a, manifest, strlen(manifest)) != (ssize_t)strlen(manifest))
		r = -EIO;
	if (r == 0)
		r = add_blob(a, plan->root, &plan->image->config, buf);
	for (i = 0; r == 0 && i < plan->image->n_layers; i++)
		r = add_blob(a, plan->root, &plan->image->layers[i], buf);
	if (r == 0 && archive_write_close(a) != ARCHIVE_OK)
		r = -EIO;
out:
	if (a)
		archive_write_free(a);
	free(manifest);
	free(buf);
	return r;
}

static int run_load(const struct tool_command *cmd, int argc, char **argv)
{
	struct image_options o;
	struct pull_options popts = {0};
	struct pull_result result;
	struct manifest *image = NULL;
	struct engine *e = NULL;
	struct archive_plan plan;
	char msg[512] = "";
	int r, status = parse_image_options(cmd, argc, argv, &o);

	if (status >= 0)
		return status;
	status = TOOL_EXIT_FAILED;
	if (engine_open(o.host, &e) < 0) {
		tool_error("bad --host '%s' (want unix:///path/to/docker.sock)", o.host);
		goto out;
	}
	r = tool_pull_through_mount(o.root, &o.ref, &popts, &result, &image, msg, sizeof(msg));
	if (r < 0) {
		tool_error("%s", msg);
		goto out;
	}
	plan = (struct archive_plan){o.root, image, o.ref.has_tag ? o.name : ""};
	r = engine_load(e, produce_archive, &plan, msg, sizeof(msg));
	if (r < 0) {
		tool_error("cannot load '%s': %s", o.name, msg);
		goto out;
	}
	printf("Loaded image: %s\n", o.name);
	status = TOOL_EXIT_OK;
out:
	manifest_free(image);
	engine_close(e);
	return status;
}

/* ---- save: dockerd -> the cache ---------------------------------------------- */

struct archived_file {
	char *path;
	struct digest digest;
	int64_t size;
	bool gzip;
};

struct archived {
	struct archived_file *files;
	size_t n, cap;
	char *manifest; /* manifest.json */
};

static void archived_free(struct archived *ar)
{
	size_t i;

	for (i = 0; i < ar->n; i++)
		free(ar->files[i].path);
	free(ar->files);
	free(ar->manifest);
}

static const struct archived_file *archived_find(const struct archived *ar, const char *path)
{
	size_t i;

	for (i = 0; i < ar->n; i++)
		if (strcmp(ar->files[i].path, path) == 0)
			return &ar->files[i];
	return NULL;
}

static int open_archive(int fd, struct archive **ret)
{
	struct archive *a = archive_read_new();

	if (!a)
		return -ENOMEM;
	archive_read_support_format_tar(a);
	if (lseek(fd, 0, SEEK_SET) < 0 || archive_read_open_fd(a, fd, COPY_CHUNK) != ARCHIVE_OK) {
		archive_read_free(a);
		return -EINVAL;
	}
	*ret = a;
	return 0;
}

/* First pass: the digest and size of every file, and manifest.json itself. */
static int survey(int fd, struct archived *ar, char *buf)
{
	struct archive_entry *e;
	struct archive *a;
	int r = open_archive(fd, &a);

	while (r == 0 && archive_read_next_header(a, &e) == ARCHIVE_OK) {
		struct digest_hasher *h;
		struct archived_file *f;
		bool is_manifest = strcmp(archive_entry_pathname(e), "manifest.json") == 0;
		ssize_t n;

		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		if (ar->n == ar->cap) {
			size_t cap = ar->cap ? 2 * ar->cap : 16;
			struct archived_file *files = reallocarray(ar->files, cap, sizeof(*files));

			if (!files || cap > 4 * MAX_LAYERS) {
				free(files == ar->files ? NULL : files);
				r = files ? -E2BIG : -ENOMEM;
				break;
			}
			ar->files = files;
			ar->cap = cap;
		}
		f = &ar->files[ar->n];
		memset(f, 0, sizeof(*f));
		f->path = strdup(archive_entry_pathname(e));
		if (!f->path || digest_hasher_new(&h) < 0) {
			free(f->path);
			r = -ENOMEM;
			break;
		}
		ar->n++;
		if (is_manifest) {
			if (archive_entry_size(e) > ARCHIVE_MANIFEST_MAX ||
			    !(ar->manifest = calloc(1, (size_t)archive_entry_size(e) + 1)))
				r = -E2BIG;
		}
		while (r == 0 && (n = archive_read_data(a, buf, COPY_CHUNK)) > 0) {
			if (f->size == 0 && n >= 2)
				f->gzip = (unsigned char)buf[0] == 0x1f &&
					  (unsigned char)buf[1] == 0x8b;
			if (is_manifest)
				memcpy(ar->manifest + f->size, buf, (size_t)n);
			digest_hasher_update(h, buf, (size_t)n);
			f->size += n;
		}
		if (r == 0 && n < 0)
			r = -EIO;
		digest_hasher_final(h, &f->digest);
		digest_hasher_free(h);
	}
	archive_read_free(a);
	if (r == 0 && !ar->manifest)
		r = -EINVAL; /* not a docker image archive */
	return r;
}

/* Write a whole file and close it; the close is where dindfs verifies. */
static int write_file(const char *path, struct archive *a, char *buf)
{
	ssize_t n;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), r = 0;

	if (fd < 0)
		return -errno;
	while (r == 0 && (n = archive_read_data(a, buf, COPY_CHUNK)) > 0)
		if (write(fd, buf, (size_t)n) != n)
			r = -errno;
	if (r == 0 && n < 0)
		r = -EIO;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

/* Second pass: each wanted file the store lacks goes into ingest/. */
static int ingest(int fd, const struct archived *ar, const char *root, const char **wanted,
		  size_t n_wanted, char *buf)
{
	char path[PATH_MAX];
	struct archive_entry *e;
	struct archive *a;
	struct stat st;
	size_t i;
	int r = open_archive(fd, &a);

	while (r == 0 && archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const struct archived_file *f = archived_find(ar, archive_entry_pathname(e));

		for (i = 0; f && i < n_wanted; i++)
			if (strcmp(wanted[i], f->path) == 0)
				break;
		if (!f || i == n_wanted)
			continue;
		snprintf(path, sizeof(path), "%s/" FS_LAYOUT_BLOBS_SHA256 "/%s", root,
			 f->digest.hex);
		if (stat(path, &st) == 0)
			continue; /* already cached */
		snprintf(path, sizeof(path), "%s/" FS_LAYOUT_INGEST_PREFIX "%s", root,
			 f->digest.hex);
		r = write_file(path, a, buf);
	}
	archive_read_free(a);
	return r;
}

/* The OCI manifest of what save put into the cache. */
static char *oci_manifest(const struct archived_file *config, const struct archived_file **layers,
			  size_t n_layers)
{
	json_t *ls = json_array(), *doc;
	char digest[DIGEST_STRING_SIZE];
	size_t i;
	char *text;

	for (i = 0; i < n_layers; i++) {
		digest_format(&layers[i]->digest, digest);
		json_array_append_new(ls, json_pack("{s:s, s:s, s:I}", "mediaType",
						    layers[i]->gzip ? MANIFEST_MEDIA_OCI_LAYER_GZIP
								    : MANIFEST_MEDIA_OCI_LAYER,
						    "digest", digest, "size",
						    (json_int_t)layers[i]->size));
	}
	digest_format(&config->digest, digest);
	doc = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:o}", "schemaVersion", 2, "mediaType",
			MANIFEST_MEDIA_OCI_MANIFEST, "config", "mediaType",
			MANIFEST_MEDIA_OCI_CONFIG, "digest", digest, "size",
			(json_int_t)config->size, "layers", ls);
	text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	return text;
}

/* registry/local/<repo>: the familiar name without its tag (debian, user/app, ghcr.io/o/r). */
static void local_repository(const struct ref *ref, char *buf, size_t size)
{
	char familiar[REF_STRING_SIZE];
	struct ref bare = *ref;

	bare.has_tag = bare.has_digest = false;
	ref_format_familiar(&bare, familiar, sizeof(familiar));
	snprintf(buf, size, "%s", familiar);
}

static int save_image(const struct image_options *o, int fd, char *msg, size_t msg_size)
{
	const struct archived_file *config, **layers = NULL;
	const char **wanted = NULL;
	struct archived ar = {0};
	char repo[REF_STRING_SIZE], path[PATH_MAX], *manifest = NULL, *buf = malloc(COPY_CHUNK);
	json_t *doc = NULL, *entry, *layer_paths;
	size_t i, n = 0;
	int r = buf ? survey(fd, &ar, buf) : -ENOMEM;

	if (r < 0) {
		snprintf(msg, msg_size, "cannot read dockerd's archive: %s", strerror(-r));
		goto out;
	}
	doc = json_loads(ar.manifest, 0, NULL);
	entry = json_array_get(doc, 0);
	layer_paths = json_object_get(entry, "Layers");
	config = archived_find(&ar, json_string_value(json_object_get(entry, "Config")) ?: "");
	n = json_array_size(layer_paths);
	layers = calloc(n + 1, sizeof(*layers));
	wanted = calloc(n + 1, sizeof(*wanted));
	r = !config || !json_is_array(layer_paths) || n > MAX_LAYERS ? -EINVAL
	    : !layers || !wanted				     ? -ENOMEM
								     : 0;
	for (i = 0; r == 0 && i < n; i++) {
		layers[i] =
			archived_find(&ar, json_string_value(json_array_get(layer_paths, i)) ?: "");
		if (!layers[i])
			r = -EINVAL;
		else
			wanted[i] = layers[i]->path;
	}
	if (r < 0) {
		snprintf(msg, msg_size, "dockerd's archive has no usable manifest.json");
		goto out;
	}
	wanted[n] = config->path;
	r = ingest(fd, &ar, o->root, wanted, n + 1, buf);
	if (r < 0) {
		snprintf(msg, msg_size, "cannot put the layers into the cache: %s", strerror(-r));
		goto out;
	}
	manifest = oci_manifest(config, layers, n);
	local_repository(&o->ref, repo, sizeof(repo));
	snprintf(path, sizeof(path),
		 "%s/" FS_LAYOUT_REGISTRY "/" REF_LOCAL_REGISTRY "/%s/" FS_LAYOUT_MANIFESTS "/%s",
		 o->root, repo, o->ref.has_tag ? o->ref.tag : REF_DEFAULT_TAG);
	r = manifest ? 0 : -ENOMEM;
	if (r == 0) {
		int mfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (mfd < 0)
			r = -errno;
		else if (write(mfd, manifest, strlen(manifest)) != (ssize_t)strlen(manifest))
			r = -errno, close(mfd);
		else if (close(mfd) < 0)
			r = -errno;
	}
	if (r < 0)
		snprintf(msg, msg_size, "cannot record local/%s:%s: %s", repo,
			 o->ref.has_tag ? o->ref.tag : REF_DEFAULT_TAG, strerror(-r));
	else
		snprintf(msg, msg_size, "local/%s:%s", repo,
			 o->ref.has_tag ? o->ref.tag : REF_DEFAULT_TAG);
out:
	json_decref(doc);
	free(layers);
	free(wanted);
	free(manifest);
	free(buf);
	archived_free(&ar);
	return r;
}

static int run_save(const struct tool_command *cmd, int argc, char **argv)
{
	struct image_options o;
	struct engine *e = NULL;
	char msg[2048] = "", tmp[] = "/var/tmp/dindfs-save.XXXXXX";
	int fd = -1, r, status = parse_image_options(cmd, argc, argv, &o);

	if (status >= 0)
		return status;
	status = TOOL_EXIT_FAILED;
	if (engine_open(o.host, &e) < 0) {
		tool_error("bad --host '%s' (want unix:///path/to/docker.sock)", o.host);
		goto out;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		tool_error("cannot make a temp file: %s", strerror(errno));
		goto out;
	}
	unlink(tmp); /* gone with the fd */
	r = engine_save(e, o.name, fd, msg, sizeof(msg));
	if (r == 0)
		r = save_image(&o, fd, msg, sizeof(msg));
	if (r < 0) {
		tool_error("cannot save '%s': %s", o.name, msg);
		goto out;
	}
	printf("Saved %s as %s\n", o.name, msg);
	status = TOOL_EXIT_OK;
out:
	if (fd >= 0)
		close(fd);
	engine_close(e);
	return status;
}

#define IMAGE_USAGE                                                                                \
	"  --root MOUNTPOINT      the mount (default $DINDFS_ROOT, then " TOOL_DEFAULT_ROOT ")\n"  \
	"  -H, --host URL         the local dockerd (default $DOCKER_HOST, "                       \
	"then " ENGINE_DEFAULT_HOST ")\n"

const struct tool_command tool_cmd_load = {
	.name = "load",
	.brief = "load an image from the cache into the local dockerd",
	.synopsis = "[--root MOUNTPOINT] [--host unix:///var/run/docker.sock] REF",
	.summary = "Make sure REF is in the cache (the host daemon fetches what is missing),\n"
		   "then stream it to the local dockerd as an image archive: no registry at\n"
		   "this level. REF may be local/<repo>:<tag>, an image saved from a level.",
	.usage = IMAGE_USAGE,
	.run = run_load,
};

const struct tool_command tool_cmd_save = {
	.name = "save",
	.brief = "save an image from the local dockerd into the cache",
	.synopsis = "[--root MOUNTPOINT] [--host unix:///var/run/docker.sock] REF",
	.summary = "Take REF from the local dockerd and put it into the cache: its layers\n"
		   "through ingest/, its manifest as registry/local/<repo>/manifests/<tag>.\n"
		   "`dindfs load local/<repo>:<tag>` then runs it at any other level.",
	.usage = IMAGE_USAGE,
	.run = run_save,
};
