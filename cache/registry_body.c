/*
 * registry_body: curl's header, body and progress callbacks. A request has
 * one of three sinks for its body: a bounded memory buffer (manifests,
 * tokens, error bodies), a store writer (blobs, with Range resume), or none
 * (HEAD).
 */
#include "registry_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

static int buffer_append(struct buffer *b, const void *data, size_t len)
{
	if (len > b->max - b->len)
		return -EFBIG;
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + len + 1)
			cap *= 2;
		if (cap > b->max + 1)
			cap = b->max + 1;
		p = realloc(b->data, cap);
		if (!p)
			return -ENOMEM;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

void registry_buffer_free(struct buffer *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Copy a header value, trimmed, into dst; -E2BIG when it does not fit. */
static int copy_value(char *dst, size_t size, const char *value, size_t len)
{
	while (len > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		len--;
	}
	while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n' ||
			   value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	if (len >= size)
		return -E2BIG;
	memcpy(dst, value, len);
	dst[len] = '\0';
	return 0;
}

static bool header_is(const char *line, size_t name_len, const char *name)
{
	return strlen(name) == name_len && strncasecmp(line, name, name_len) == 0;
}

/* curl hands us each header line; a status line starts a new response (redirects). */
size_t registry_on_header(char *line, size_t size, size_t n, void *ctx)
{
	struct request *req = ctx;
	struct response_headers *h = &req->hdr;
	size_t len = size * n, name_len;
	const char *colon, *value;

	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		memset(h, 0, sizeof(*h));
		req->body_started = false;
		return len;
	}
	colon = memchr(line, ':', len);
	if (!colon)
		return len;
	name_len = (size_t)(colon - line);
	value = colon + 1;
	len -= name_len + 1;
	if (header_is(line, name_len, "Content-Type")) {
		if (copy_value(h->content_type, sizeof(h->content_type), value, len) < 0)
			h->content_type[0] = '\0';
	} else if (header_is(line, name_len, "Docker-Content-Digest")) {
		if (copy_value(h->docker_digest, sizeof(h->docker_digest), value, len) < 0)
			h->docker_digest[0] = '\0';
	} else if (header_is(line, name_len, "Retry-After")) {
		copy_value(h->retry_after, sizeof(h->retry_after), value, len);
	} else if (header_is(line, name_len, "Content-Range")) {
		copy_value(h->content_range, sizeof(h->content_range), value, len);
	} else if (header_is(line, name_len, "WWW-Authenticate")) {
		/* several headers are one comma-separated list (RFC 7235) */
		size_t used = strlen(h->www_authenticate);
		char *dst = h->www_authenticate + used;
		size_t room = sizeof(h->www_authenticate) - used;

		if (used > 0 && room > 2) {
			memcpy(dst, ", ", 2);
			dst += 2;
			room -= 2;
		}
		if (copy_value(dst, room, value, len) < 0)
			h->www_authenticate_too_long = true;
	}
	return size * n;
}

/* The first bytes of a 200 or 206 body decide whether a resume goes on or restarts. */
static int start_blob_body(struct request *req)
{
	uint64_t have = store_writer_size(req->writer);
	unsigned long long start = 0;

	req->body_started = true;
	if (req->status == 200)
		return have > 0 ? store_writer_reset(req->writer) : 0;
	/* 206: the range must start where we stopped */
	if (sscanf(req->hdr.content_range, "bytes %llu-", &start) != 1 || start != have)
		return -EPROTO;
	return 0;
}

size_t registry_on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct request *req = ctx;
	size_t len = size * n;
	int r;

	curl_easy_getinfo(req->curl, CURLINFO_RESPONSE_CODE, &req->status);
	atomic_fetch_add(&req->reg->bytes, len);
	if (req->sink == SINK_WRITER && (req->status == 200 || req->status == 206)) {
		if (!req->body_started) {
			r = start_blob_body(req);
			if (r < 0)
				goto out_stop;
		}
		if (req->expected_size >= 0 &&
		    store_writer_size(req->writer) + len > (uint64_t)req->expected_size) {
			r = -EBADMSG;
			goto out_stop;
		}
		r = store_writer_write(req->writer, data, len);
		if (r < 0)
			goto out_stop;
		if (req->progress && req->progress(store_writer_size(req->writer),
						   req->expected_size, req->progress_ctx) != 0) {
			r = -ECANCELED;
			goto out_stop;
		}
		return len;
	}
	r = buffer_append(&req->body, data, len);
	if (r < 0)
		goto out_stop;
	return len;
out_stop:
	req->sink_error = r;
	return 0; /* makes curl stop with CURLE_WRITE_ERROR */
}

/* curl calls this often, data or not: where a shutdown stops a stalled transfer. */
int registry_on_xferinfo(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			 curl_off_t ulnow)
{
	struct request *req = ctx;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return registry_request_stopped(req) ? 1 : 0;
}
