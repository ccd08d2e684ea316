/*
 * registry_api: the registry HTTP API v2 verbs (see registry.h): ping,
 * manifests (GET and HEAD) and blobs (HEAD and the download into a store
 * writer).
 */
#include "registry_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "manifest.h"

#define ERROR_BODY_MAX (64u << 10)

/* A request for manifest `reference` of repository; the caller sets the sink. */
static int manifest_request(struct registry *reg, const char *host, const char *repository,
			    const char *reference, struct registry_error *err, struct request **ret)
{
	struct request *req = registry_request_new();
	int r;

	if (!req)
		return -ENOMEM;
	r = registry_request_init(req, reg, host, repository, err, "/v2/%s/manifests/%s",
				  repository, reference);
	if (r < 0) {
		registry_request_free(req);
		return r;
	}
	req->accept = MANIFEST_ACCEPT;
	snprintf(req->missing, sizeof(req->missing), "manifest '%s:%s' not found", repository,
		 reference);
	*ret = req;
	return 0;
}

/* A request for blob d of repository; the caller sets the sink. */
static int blob_request(struct registry *reg, const char *host, const char *repository,
			const struct digest *d, struct registry_error *err, struct request **ret)
{
	struct request *req = registry_request_new();
	int r;

	if (!req)
		return -ENOMEM;
	r = registry_request_init(req, reg, host, repository, err, "/v2/%s/blobs/sha256:%s",
				  repository, d->hex);
	if (r < 0) {
		registry_request_free(req);
		return r;
	}
	snprintf(req->missing, sizeof(req->missing), "blob sha256:%s not found in '%s'", d->hex,
		 repository);
	*ret = req;
	return 0;
}

int registry_ping(struct registry *reg, const char *host, struct registry_error *err)
{
	struct request *req = registry_request_new();
	int r;

	if (!req)
		return -ENOMEM;
	r = registry_request_init(req, reg, host, NULL, err, "/v2/");
	if (r == 0) {
		req->sink = SINK_BUFFER;
		req->body.max = ERROR_BODY_MAX;
		r = registry_request_run(req);
	}
	registry_request_free(req);
	return r;
}

void registry_counters(struct registry *reg, uint64_t *ret_requests, uint64_t *ret_bytes)
{
	*ret_requests = atomic_load(&reg->requests);
	*ret_bytes = atomic_load(&reg->bytes);
}

static bool is_digest_reference(const char *reference, struct digest *ret)
{
	return digest_parse(reference, ret) == 0;
}

int registry_get_manifest(struct registry *reg, const char *host, const char *repository,
			  const char *reference, struct registry_manifest *ret,
			  struct registry_error *err)
{
	struct digest wanted, announced;
	struct request *req;
	int r = manifest_request(reg, host, repository, reference, err, &req);

	if (r < 0)
		return r;
	req->sink = SINK_BUFFER;
	req->body.max = MANIFEST_MAX_SIZE;
	r = registry_request_run(req);
	if (r < 0)
		goto out;
	r = digest_of_buffer(req->body.data ? req->body.data : "", req->body.len, &ret->digest);
	if (r < 0)
		goto out;
	if (is_digest_reference(reference, &wanted) && !digest_equal(&wanted, &ret->digest)) {
		registry_request_error(req, "%s: manifest '%s@%s' does not match its digest", host,
				       repository, reference);
		r = -EBADMSG;
		goto out;
	}
	if (*req->hdr.docker_digest && (digest_parse(req->hdr.docker_digest, &announced) < 0 ||
					!digest_equal(&announced, &ret->digest))) {
		registry_request_error(
			req, "%s: manifest '%s:%s' does not match its Docker-Content-Digest", host,
			repository, reference);
		r = -EBADMSG;
		goto out;
	}
	snprintf(ret->media_type, sizeof(ret->media_type), "%s", req->hdr.content_type);
	ret->body = req->body.data;
	ret->len = req->body.len;
	req->body.data = NULL; /* now the caller's */
out:
	registry_request_free(req);
	return r;
}

void registry_manifest_release(struct registry_manifest *m)
{
	if (!m)
		return;
	free(m->body);
	m->body = NULL;
	m->len = 0;
}

int registry_head_manifest(struct registry *reg, const char *host, const char *repository,
			   const char *reference, struct digest *ret_digest, char *media_type,
			   size_t media_type_size, struct registry_error *err)
{
	struct request *req;
	int r = manifest_request(reg, host, repository, reference, err, &req);

	if (r < 0)
		return r;
	req->sink = SINK_NONE;
	r = registry_request_run(req);
	if (r < 0)
		goto out;
	if (digest_parse(req->hdr.docker_digest, ret_digest) < 0) {
		registry_request_error(req, "%s: HEAD of a manifest gave no Docker-Content-Digest",
				       host);
		r = -EPROTO;
		goto out;
	}
	if (media_type)
		snprintf(media_type, media_type_size, "%s", req->hdr.content_type);
out:
	registry_request_free(req);
	return r;
}

int registry_head_blob(struct registry *reg, const char *host, const char *repository,
		       const struct digest *d, int64_t *ret_size, struct registry_error *err)
{
	curl_off_t length = -1;
	struct request *req;
	int r = blob_request(reg, host, repository, d, err, &req);

	if (r < 0)
		return r;
	req->sink = SINK_NONE;
	r = registry_request_run(req);
	if (r < 0)
		goto out;
	curl_easy_getinfo(req->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
	*ret_size = length;
out:
	registry_request_free(req);
	return r;
}

int registry_fetch_blob(struct registry *reg, const char *host, const char *repository,
			const struct digest *d, int64_t expected_size, struct store_writer *w,
			registry_progress_fn progress, void *progress_ctx,
			struct registry_error *err)
{
	struct request *req;
	int r = blob_request(reg, host, repository, d, err, &req);

	if (r < 0)
		return r;
	req->sink = SINK_WRITER;
	req->writer = w;
	req->expected_size = expected_size;
	req->progress = progress;
	req->progress_ctx = progress_ctx;
	req->body.max = ERROR_BODY_MAX;
	r = registry_request_run(req);
	if (r == 0 && expected_size >= 0 && store_writer_size(w) != (uint64_t)expected_size) {
		registry_request_error(req, "%s: blob sha256:%s ended after %llu of %lld bytes",
				       host, d->hex, (unsigned long long)store_writer_size(w),
				       (long long)expected_size);
		r = -EBADMSG;
	}
	registry_request_free(req);
	return r;
}
