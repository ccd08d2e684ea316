/*
 * pull_mount: an image pulled by reading the mount (see pull_mount.h).
 */
#include "pull_mount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "mount_layout.h"

#define READ_CHUNK (1 << 20)

struct mount_pull {
	char repo_dir[PATH_MAX]; /* <root>/registry/<host>/<repository> */
	char *err;
	size_t err_size;
	struct pull_result *result;
};

static void say(struct mount_pull *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct mount_pull *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, p->err_size, fmt, ap);
	va_end(ap);
}

bool tool_is_dindfs_mount(const char *path)
{
	char stats[PATH_MAX];

	snprintf(stats, sizeof(stats), "%s/" FS_LAYOUT_STATS_PATH, path);
	return access(stats, R_OK) == 0;
}

/* Read a manifest file of the mount, with its media type and digest. */
static int read_manifest(struct mount_pull *p, const char *reference, struct manifest **ret,
			 struct digest *ret_digest)
{
	char path[PATH_MAX], media_type[MANIFEST_MEDIA_TYPE_MAX + 1] = "";
	char digest[DIGEST_STRING_SIZE] = "";
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, r;

	n = snprintf(path, sizeof(path), "%s/" FS_LAYOUT_MANIFESTS "/%s", p->repo_dir, reference);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(MANIFEST_MAX_SIZE + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (len <= MANIFEST_MAX_SIZE &&
	       (n = read(fd, buf + len, MANIFEST_MAX_SIZE + 1 - len)) > 0)
		len += (size_t)n;
	r = n < 0 ? -errno : 0;
	n = fgetxattr(fd, FS_LAYOUT_XATTR_MEDIA_TYPE, media_type, sizeof(media_type) - 1);
	media_type[n > 0 ? n : 0] = '\0';
	n = fgetxattr(fd, FS_LAYOUT_XATTR_DIGEST, digest, sizeof(digest) - 1);
	digest[n > 0 ? n : 0] = '\0';
	close(fd);
	if (r == 0 && digest_parse(digest, ret_digest) < 0)
		r = -EPROTO; /* not a dindfs mount */
	if (r == 0)
		r = manifest_parse(buf, len, media_type, ret);
	p->result->manifests_fetched++;
	free(buf);
	return r;
}

/* Read blob i to its end: the daemon fetches and verifies it on the way (a pull_get_fn). */
static int read_blob(struct pull_set *set, size_t i, void *ctx, struct registry_error *err)
{
	struct mount_pull *p = ctx;
	char path[PATH_MAX], *buf;
	uint64_t done = 0;
	ssize_t n;
	int fd, k;

	k = snprintf(path, sizeof(path), "%s/" FS_LAYOUT_REPO_BLOB_PREFIX "%s", p->repo_dir,
		     set->blobs[i].digest.hex);
	if (k < 0 || (size_t)k >= sizeof(path))
		return -ENAMETOOLONG;
	buf = malloc(READ_CHUNK);
	fd = buf ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0) {
		n = buf ? -errno : -ENOMEM;
		goto out;
	}
	while ((n = read(fd, buf, READ_CHUNK)) > 0) {
		done += (uint64_t)n;
		pull_set_update(set, i, PULL_BLOB_DOWNLOADING, (int64_t)done);
	}
	if (n < 0)
		n = -errno;
	close(fd);
out:
	free(buf);
	if (n < 0)
		snprintf(err->message, sizeof(err->message), "blob sha256:%s: %s",
			 set->blobs[i].digest.hex,
			 n == -EIO ? "the daemon could not fetch or verify it (see its log)"
				   : strerror((int)-n));
	return (int)n;
}

int tool_pull_through_mount(const char *root, const struct ref *ref,
			    const struct pull_options *opts, struct pull_result *ret,
			    struct manifest **ret_image, char *err, size_t err_size)
{
	struct mount_pull p = {.err = err, .err_size = err_size, .result = ret};
	struct pull_set set = {0};
	struct manifest *root_m = NULL, *image = NULL;
	const struct manifest_descriptor *child;
	char reference[DIGEST_STRING_SIZE > REF_TAG_MAX + 1 ? DIGEST_STRING_SIZE : REF_TAG_MAX + 1];
	char name[REF_STRING_SIZE], platform[MANIFEST_PLATFORM_STRING_SIZE];
	int r;

	memset(ret, 0, sizeof(*ret));
	ref_format(ref, name, sizeof(name));
	snprintf(p.repo_dir, sizeof(p.repo_dir), "%s/" FS_LAYOUT_REGISTRY "/%s/%s", root,
		 ref->registry, ref->repository);
	if (ref->has_digest)
		digest_format(&ref->digest, reference);
	else
		snprintf(reference, sizeof(reference), "%s", ref->tag);
	r = read_manifest(&p, reference, &root_m, &ret->manifest);
	if (r == -ENOENT) {
		say(&p, "'%s': not found upstream", name);
		goto out;
	}
	if (r < 0) {
		say(&p, "'%s': %s", name,
		    r == -EIO ? "upstream unreachable or broken (see the mount's log)"
			      : strerror(-r));
		goto out;
	}
	ret->image = ret->manifest;
	if (root_m->kind == MANIFEST_INDEX) {
		r = manifest_select_platform(root_m, opts->platform, &child);
		if (r < 0) {
			struct manifest_platform host;

			manifest_platform_host(&host);
			manifest_platform_format(opts->platform ? opts->platform : &host, platform);
			say(&p, "%s: no image for platform %s in '%s'", ref->registry, platform,
			    ref->repository);
			goto out;
		}
		digest_format(&child->digest, reference);
		r = read_manifest(&p, reference, &image, &ret->image);
		if (r < 0) {
			say(&p, "manifest %s: %s", reference, strerror(-r));
			goto out;
		}
	}
	r = pull_set_init(&set, image ? image : root_m, NULL, opts->observer);
	if (r < 0)
		goto out;
	r = pull_set_run(&set, &ret->image, opts->concurrency, read_blob, &p);
	ret->blobs_fetched = set.gotten;
	ret->bytes_fetched = set.bytes_gotten;
	if (r < 0)
		say(&p, "%s", set.err.message);
	if (r == 0 && ret_image) {
		*ret_image = image ? image : root_m;
		if (image)
			image = NULL;
		else
			root_m = NULL;
	}
out:
	pull_set_release(&set);
	manifest_free(root_m);
	manifest_free(image);
	return r;
}
