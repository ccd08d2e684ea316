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
};

static void say(struct registry_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void say(struct registry_error *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
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

/* A pull_source's manifest(): the file the reference or digest names. */
static int mount_manifest(void *ctx, const struct ref *ref, const struct digest *d,
			  struct manifest **ret, struct digest *ret_digest, bool *ret_fetched,
			  struct registry_error *err)
{
	char reference[DIGEST_STRING_SIZE > REF_TAG_MAX + 1 ? DIGEST_STRING_SIZE : REF_TAG_MAX + 1];
	char name[REF_STRING_SIZE];
	int r;

	if (d || ref->has_digest)
		digest_format(d ? d : &ref->digest, reference);
	else
		snprintf(reference, sizeof(reference), "%s", ref->tag);
	r = read_manifest(ctx, reference, ret, ret_digest);
	*ret_fetched = true;
	if (r < 0 && d) {
		say(err, "manifest %s: %s", reference, strerror(-r));
	} else if (r < 0) {
		ref_format(ref, name, sizeof(name));
		say(err, "'%s': %s", name,
		    r == -ENOENT ? "not found upstream"
		    : r == -EIO	 ? "upstream unreachable or broken (see the mount's log)"
				 : strerror(-r));
	}
	return r;
}

int tool_pull_through_mount(const char *root, const struct ref *ref,
			    const struct pull_options *opts, struct pull_result *ret,
			    struct manifest **ret_image, char *err, size_t err_size)
{
	const struct pull_source src = {.manifest = mount_manifest, .blob = read_blob};
	struct mount_pull p;
	struct registry_error e = {0};
	int r;

	snprintf(p.repo_dir, sizeof(p.repo_dir), "%s/" FS_LAYOUT_REGISTRY "/%s/%s", root,
		 ref->registry, ref->repository);
	r = pull_from(&src, &p, ref, opts, ret, ret_image, &e);
	if (r < 0)
		snprintf(err, err_size, "%s", e.message);
	return r;
}
