/*
 * pull_mount: an image pulled by reading the mount (see pull_mount.h).
 */
#include "pull_mount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define XATTR_MEDIA_TYPE "user.dindfs.media_type"
#define XATTR_DIGEST	 "user.dindfs.digest"
#define READ_CHUNK	 (1 << 20)

struct mount_pull {
	char repo_dir[PATH_MAX]; /* <root>/registry/<host>/<repository> */
	const struct pull_observer *observer;
	pthread_mutex_t lock;
	struct pull_blob_status *blobs;
	size_t n_blobs, next;
	int error;
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

	snprintf(stats, sizeof(stats), "%s/.dindfs/stats", path);
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

	n = snprintf(path, sizeof(path), "%s/manifests/%s", p->repo_dir, reference);
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
	n = fgetxattr(fd, XATTR_MEDIA_TYPE, media_type, sizeof(media_type) - 1);
	media_type[n > 0 ? n : 0] = '\0';
	n = fgetxattr(fd, XATTR_DIGEST, digest, sizeof(digest) - 1);
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

static void notify(struct mount_pull *p, size_t i)
{
	if (p->observer && p->observer->blob)
		p->observer->blob(i, &p->blobs[i], p->observer->ctx);
}

/* Read a blob file to its end: the daemon fetches and verifies it on the way. */
static int read_blob(struct mount_pull *p, size_t i, char *buf)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	n = snprintf(path, sizeof(path), "%s/blobs/sha256:%s", p->repo_dir, p->blobs[i].digest.hex);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, READ_CHUNK)) > 0) {
		pthread_mutex_lock(&p->lock);
		p->blobs[i].done += (uint64_t)n;
		p->blobs[i].state = PULL_BLOB_DOWNLOADING;
		notify(p, i);
		pthread_mutex_unlock(&p->lock);
	}
	close(fd);
	return n < 0 ? -errno : 0;
}

static void *worker(void *arg)
{
	struct mount_pull *p = arg;
	char *buf = malloc(READ_CHUNK);

	for (;;) {
		size_t i;
		int r;

		pthread_mutex_lock(&p->lock);
		if (!buf && !p->error)
			p->error = -ENOMEM;
		if (p->error || p->next == p->n_blobs) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		i = p->next++;
		pthread_mutex_unlock(&p->lock);

		r = read_blob(p, i, buf);
		pthread_mutex_lock(&p->lock);
		p->blobs[i].state = r == 0 ? PULL_BLOB_DONE : PULL_BLOB_FAILED;
		notify(p, i);
		if (r == 0) {
			p->result->blobs_fetched++;
			p->result->bytes_fetched += p->blobs[i].size;
		} else if (!p->error) {
			p->error = r;
			say(p, "blob sha256:%s: %s", p->blobs[i].digest.hex,
			    r == -EIO ? "the daemon could not fetch or verify it (see its log)"
				      : strerror(-r));
		}
		pthread_mutex_unlock(&p->lock);
	}
	free(buf);
	return NULL;
}

static int list_blobs(struct mount_pull *p, const struct manifest *m)
{
	size_t i, j;

	p->blobs = calloc(m->n_layers + 1, sizeof(*p->blobs));
	if (!p->blobs)
		return -ENOMEM;
	for (i = 0; i <= m->n_layers; i++) {
		const struct manifest_descriptor *d = i == 0 ? &m->config : &m->layers[i - 1];

		for (j = 0; j < p->n_blobs; j++)
			if (digest_equal(&p->blobs[j].digest, &d->digest))
				break;
		if (j < p->n_blobs)
			continue;
		p->blobs[p->n_blobs++] = (struct pull_blob_status){
			.digest = d->digest,
			.size = d->size,
			.is_config = i == 0,
			.state = PULL_BLOB_WAITING,
		};
	}
	return 0;
}

static int fetch_blobs(struct mount_pull *p, int concurrency)
{
	pthread_t threads[PULL_MAX_CONCURRENCY];
	int i, started = 0;

	for (i = 0; i < concurrency; i++)
		if (pthread_create(&threads[started], NULL, worker, p) == 0)
			started++;
	if (started == 0)
		return -EAGAIN;
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	return p->error;
}

int tool_pull_through_mount(const char *root, const struct ref *ref,
			    const struct pull_options *opts, struct pull_result *ret, char *err,
			    size_t err_size)
{
	struct mount_pull p = {
		.observer = opts->observer, .err = err, .err_size = err_size, .result = ret};
	struct manifest *root_m = NULL, *image = NULL;
	const struct manifest_descriptor *child;
	char reference[DIGEST_STRING_SIZE > REF_TAG_MAX + 1 ? DIGEST_STRING_SIZE : REF_TAG_MAX + 1];
	char name[REF_STRING_SIZE], platform[MANIFEST_PLATFORM_STRING_SIZE];
	int concurrency = opts->concurrency > 0 ? opts->concurrency : PULL_DEFAULT_CONCURRENCY;
	int r;

	memset(ret, 0, sizeof(*ret));
	pthread_mutex_init(&p.lock, NULL);
	ref_format(ref, name, sizeof(name));
	snprintf(p.repo_dir, sizeof(p.repo_dir), "%s/registry/%s/%s", root, ref->registry,
		 ref->repository);
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
	r = list_blobs(&p, image ? image : root_m);
	if (r < 0)
		goto out;
	if (p.observer && p.observer->resolved)
		p.observer->resolved(&ret->image, p.blobs, p.n_blobs, p.observer->ctx);
	r = fetch_blobs(&p,
			concurrency > PULL_MAX_CONCURRENCY ? PULL_MAX_CONCURRENCY : concurrency);
out:
	manifest_free(root_m);
	manifest_free(image);
	free(p.blobs);
	pthread_mutex_destroy(&p.lock);
	return r;
}
