/*
 * mirror: a registry API v2 read-only server over a dindfs mount
 * (libmicrohttpd; see mirror.h).
 *
 * One thread per connection: a read of a blob that the host daemon is
 * still downloading blocks that connection alone. Bodies are read from the
 * mount with pread, a slice at a time, so a reader of a downloading blob
 * gets bytes as they arrive.
 */
#include "mirror.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <dirent.h>
#include <jansson.h>
#include <microhttpd.h>

#include "digest.h"
#include "ref.h"

#define XATTR_MEDIA_TYPE "user.dindfs.media_type"
#define XATTR_DIGEST	 "user.dindfs.digest"
#define BLOCK_SIZE	 (256 * 1024)
#define MAX_CONNECTIONS	 256
#define TIMEOUT_SECONDS	 600

struct mirror {
	char root[PATH_MAX];
	struct MHD_Daemon *daemon;
};

/* What a request asks for, once its URL is understood. */
enum target_kind {
	TARGET_MANIFEST,
	TARGET_BLOB,
	TARGET_TAGS, /* tags/list */
};

struct target {
	char registry[REF_NAME_MAX + 1];
	char repository[REF_NAME_MAX + 1];
	enum target_kind kind;
	char reference[REF_TAG_MAX + DIGEST_STRING_SIZE + 1];
};

struct body {
	int fd;
	off_t start;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status,
			     struct MHD_Response *response)
{
	enum MHD_Result ret;

	MHD_add_response_header(response, "Docker-Distribution-API-Version", "registry/2.0");
	ret = MHD_queue_response(conn, status, response);
	MHD_destroy_response(response);
	return ret;
}

/* An OCI error body: {"errors":[{"code":..,"message":..}]}. */
static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned status, const char *code,
				   const char *message)
{
	char body[512];
	struct MHD_Response *response;
	int n = snprintf(body, sizeof(body),
			 "{\"errors\":[{\"code\":\"%s\",\"message\":\"%s\"}]}\n", code, message);

	response = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
	if (!response)
		return MHD_NO;
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return reply(conn, status, response);
}

/* len bytes of src, and a NUL, into dst; -EINVAL when they do not fit. */
static int copy_part(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		return -EINVAL;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

/*
 * /v2/<name>/(manifests|blobs)/<reference>, with ?ns= naming the registry.
 * Returns 0, or -EINVAL for a name that is not one.
 */
static int parse_target(struct MHD_Connection *conn, const char *url, struct target *t)
{
	const char *path = url + strlen("/v2/"), *last, *kind, *ns, *slash;
	char name[2 * REF_NAME_MAX + 2];
	size_t len;
	int r;

	memset(t, 0, sizeof(*t));
	/* <name>/<kind>/<reference>: the reference has no '/', the name may */
	last = strrchr(path, '/');
	if (!last || last == path)
		return -ENOENT;
	for (kind = last - 1; kind > path && kind[-1] != '/'; kind--)
		;
	if ((size_t)(last - kind) == 9 && strncmp(kind, "manifests", 9) == 0)
		t->kind = TARGET_MANIFEST;
	else if ((size_t)(last - kind) == 5 && strncmp(kind, "blobs", 5) == 0)
		t->kind = TARGET_BLOB;
	else if ((size_t)(last - kind) == 4 && strncmp(kind, "tags", 4) == 0 &&
		 strcmp(last, "/list") == 0)
		t->kind = TARGET_TAGS;
	else
		return -ENOENT;
	if (kind == path)
		return -EINVAL; /* no name */
	len = (size_t)(kind - 1 - path);
	if (len >= sizeof(name) || strlen(last + 1) >= sizeof(t->reference))
		return -EINVAL;
	memcpy(name, path, len);
	name[len] = '\0';
	snprintf(t->reference, sizeof(t->reference), "%s", last + 1);
	if (!*t->reference)
		return -EINVAL;

	ns = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "ns");
	slash = strchr(name, '/');
	if (ns && *ns) {
		r = copy_part(t->registry, sizeof(t->registry), ns, strlen(ns));
		if (r == 0)
			r = copy_part(t->repository, sizeof(t->repository), name, strlen(name));
	} else if (slash && (memchr(name, '.', (size_t)(slash - name)) ||
			     memchr(name, ':', (size_t)(slash - name)) ||
			     strncmp(name, "localhost/", 10) == 0)) {
		r = copy_part(t->registry, sizeof(t->registry), name, (size_t)(slash - name));
		if (r == 0)
			r = copy_part(t->repository, sizeof(t->repository), slash + 1,
				      strlen(slash + 1));
	} else {
		/* docker.io's official images live under library/ */
		r = copy_part(t->registry, sizeof(t->registry), REF_DEFAULT_REGISTRY,
			      strlen(REF_DEFAULT_REGISTRY));
		if (r == 0 && !slash)
			r = copy_part(t->repository, sizeof(t->repository), "library/", 8);
		if (r == 0)
			r = copy_part(t->repository + strlen(t->repository),
				      sizeof(t->repository) - strlen(t->repository), name,
				      strlen(name));
	}
	if (r < 0)
		return r;
	if (strcmp(t->registry, "index.docker.io") == 0)
		memcpy(t->registry, REF_DEFAULT_REGISTRY, sizeof(REF_DEFAULT_REGISTRY));
	if (ref_validate_registry(t->registry) < 0 || ref_validate_repository(t->repository) < 0)
		return -EINVAL;
	if (t->kind == TARGET_TAGS)
		return 0;
	if (t->kind == TARGET_BLOB || strncmp(t->reference, "sha256:", 7) == 0) {
		struct digest d;

		return digest_parse(t->reference, &d) < 0 ? -EINVAL : 0;
	}
	return ref_validate_tag(t->reference) < 0 ? -EINVAL : 0;
}

static ssize_t read_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct body *b = cls;
	ssize_t n = pread(b->fd, buf, max, b->start + (off_t)pos);

	if (n < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (n == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return n;
}

static void free_body(void *cls)
{
	struct body *b = cls;

	if (b->fd >= 0)
		close(b->fd);
	free(b);
}

/* "bytes=A-B" or "bytes=A-": one range within size. false when absent or unusable. */
static bool parse_range(const char *header, uint64_t size, uint64_t *ret_start, uint64_t *ret_end)
{
	unsigned long long a, b;
	char dash;

	if (!header || size == 0)
		return false;
	if (sscanf(header, "bytes=%llu-%llu", &a, &b) == 2) {
		if (b >= size)
			b = size - 1;
	} else if (sscanf(header, "bytes=%llu%c", &a, &dash) == 2 && dash == '-') {
		b = size - 1;
	} else {
		return false;
	}
	if (a > b)
		return false;
	*ret_start = a;
	*ret_end = b;
	return true;
}

static enum MHD_Result serve_file(struct mirror *m, struct MHD_Connection *conn, bool head,
				  const struct target *t)
{
	char path[PATH_MAX * 2], media_type[256] = "", digest[DIGEST_STRING_SIZE + 1] = "";
	char content_range[96];
	uint64_t start = 0, end = 0, size;
	struct MHD_Response *response;
	struct body *b = NULL;
	struct stat st;
	unsigned status = MHD_HTTP_OK;
	ssize_t n;

	bool blob = t->kind == TARGET_BLOB;

	snprintf(path, sizeof(path), "%s/registry/%s/%s/%s/%s", m->root, t->registry, t->repository,
		 blob ? "blobs" : "manifests", t->reference);
	/* stat, not open: a HEAD must not start a download */
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return blob ? reply_error(conn, MHD_HTTP_NOT_FOUND, "BLOB_UNKNOWN",
						  "blob unknown to registry")
				    : reply_error(conn, MHD_HTTP_NOT_FOUND, "MANIFEST_UNKNOWN",
						  "manifest unknown");
		if (errno == EACCES)
			return reply_error(conn, MHD_HTTP_FORBIDDEN, "DENIED",
					   "the host daemon was refused upstream");
		return reply_error(conn, MHD_HTTP_BAD_GATEWAY, "UNKNOWN",
				   "the host daemon could not reach upstream (see its log)");
	}
	size = (uint64_t)st.st_size;
	n = getxattr(path, XATTR_DIGEST, digest, sizeof(digest) - 1);
	digest[n > 0 ? n : 0] = '\0';
	if (!blob) {
		n = getxattr(path, XATTR_MEDIA_TYPE, media_type, sizeof(media_type) - 1);
		media_type[n > 0 ? n : 0] = '\0';
	}
	if (blob &&
	    parse_range(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE),
			size, &start, &end)) {
		status = MHD_HTTP_PARTIAL_CONTENT;
		snprintf(content_range, sizeof(content_range), "bytes %llu-%llu/%llu",
			 (unsigned long long)start, (unsigned long long)end,
			 (unsigned long long)size);
		size = end - start + 1;
	}
	if (!head) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return MHD_NO;
		b->start = (off_t)start;
		b->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (b->fd < 0) {
			free(b);
			return reply_error(conn, MHD_HTTP_BAD_GATEWAY, "UNKNOWN",
					   "the host daemon could not fetch it (see its log)");
		}
	}
	response = MHD_create_response_from_callback(size, BLOCK_SIZE, read_body, b,
						     b ? free_body : NULL);
	if (!response) {
		if (b)
			free_body(b);
		return MHD_NO;
	}
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
				*media_type ? media_type : "application/octet-stream");
	if (*digest)
		MHD_add_response_header(response, "Docker-Content-Digest", digest);
	if (blob)
		MHD_add_response_header(response, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	if (status == MHD_HTTP_PARTIAL_CONTENT)
		MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
	return reply(conn, status, response);
}

/* The tags the cache knows for a repository (upstream's full list is not asked for). */
static enum MHD_Result serve_tags(struct mirror *m, struct MHD_Connection *conn,
				  const struct target *t)
{
	char path[PATH_MAX * 2], name[2 * REF_NAME_MAX + 2], *text;
	struct MHD_Response *response;
	json_t *tags = json_array(), *body;
	struct dirent *e;
	DIR *dir;

	snprintf(path, sizeof(path), "%s/registry/%s/%s/manifests", m->root, t->registry,
		 t->repository);
	dir = opendir(path);
	while (dir && (e = readdir(dir)))
		if (e->d_name[0] != '.' && strncmp(e->d_name, "sha256:", 7) != 0)
			json_array_append_new(tags, json_string(e->d_name));
	if (dir)
		closedir(dir);
	snprintf(name, sizeof(name), "%s", t->repository);
	body = json_pack("{s:s, s:o}", "name", name, "tags", tags);
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		return MHD_NO;
	response = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!response) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return reply(conn, MHD_HTTP_OK, response);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **state)
{
	struct mirror *m = cls;
	struct target t;
	bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	int r;

	(void)version;
	(void)upload;
	(void)upload_size;
	/* refused at once, without reading a body that will never be used */
	if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "UNSUPPORTED",
				   "this mirror only serves pulls");
	if (!*state) { /* the headers: answer once they are all in */
		*state = m;
		return MHD_YES;
	}
	if (strcmp(url, "/v2/") == 0 || strcmp(url, "/v2") == 0) {
		struct MHD_Response *response =
			MHD_create_response_from_buffer(2, "{}", MHD_RESPMEM_PERSISTENT);

		if (!response)
			return MHD_NO;
		MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
		return reply(conn, MHD_HTTP_OK, response);
	}
	if (strncmp(url, "/v2/", 4) != 0)
		return reply_error(conn, MHD_HTTP_NOT_FOUND, "UNSUPPORTED", "not a registry path");
	r = parse_target(conn, url, &t);
	if (r == -ENOENT)
		return reply_error(conn, MHD_HTTP_NOT_FOUND, "UNSUPPORTED", "not a registry path");
	if (r < 0)
		return reply_error(conn, MHD_HTTP_BAD_REQUEST, "NAME_INVALID",
				   "invalid repository name or reference");
	if (t.kind == TARGET_TAGS)
		return serve_tags(m, conn, &t);
	return serve_file(m, conn, head, &t);
}

int mirror_start(const char *root, const char *address, uint16_t port, struct mirror **ret)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct mirror *m;

	if (inet_pton(AF_INET, address, &sa.sin_addr) != 1)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	snprintf(m->root, sizeof(m->root), "%s", root);
	m->daemon = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, port, NULL, NULL,
		on_request, m, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)TIMEOUT_SECONDS,
		MHD_OPTION_END);
	if (!m->daemon) {
		free(m);
		return -EADDRINUSE;
	}
	*ret = m;
	return 0;
}

void mirror_stop(struct mirror *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->daemon);
	free(m);
}
