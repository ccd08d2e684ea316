/*
 * mirror: a registry API v2 read-only server over a dindfs mount
 * (libmicrohttpd; see mirror.h).
 *
 * One thread per connection: a read of a blob that the host daemon is
 * still downloading blocks that connection alone. Bodies are read from the
 * mount with pread, a slice at a time, so a reader of a downloading blob
 * gets bytes as they arrive. One server per listener (plain HTTP or TLS),
 * all sharing one mirror_guard for the connection bounds.
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
#include <time.h>
#include <unistd.h>

#include <ctype.h>
#include <dirent.h>
#include <jansson.h>
#include <microhttpd.h>
#include <sys/random.h>

#include "clock.h"
#include "digest.h"
#include "mirror_guard.h"
#include "mount_layout.h"
#include "ref.h"

#define BLOCK_SIZE	(256 * 1024)
#define RANGE_SPECS_MAX 64 /* range-specs in one Range header before it is ignored */
#define PART_HEADER_MAX 192
#define TOKEN_PATH	"/dindfs/token"
#define UNSERVED_PATH	"/dindfs/unserved/"

struct mirror {
	char root[PATH_MAX];
	char origin[96]; /* of the token realms: the first plain listener's URL */
	struct mirror_guard *guard;
	struct MHD_Daemon *daemons[MIRROR_LISTEN_MAX];
	size_t n_daemons;
	bool log_requests;
};

/* The status of the answer this thread queued last (one thread per connection). */
static __thread unsigned last_status;

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

/* A byte range of a blob, both ends included. */
struct span {
	uint64_t first, last;
};

enum range_answer {
	RANGE_WHOLE,	     /* no Range, or one to ignore: 200 */
	RANGE_PARTS,	     /* 206 */
	RANGE_UNSATISFIABLE, /* 416 */
};

/*
 * A response body: text (multipart headers) and ranges of the file, one
 * after the other. For a GET the file is open; for a HEAD, fd is -1.
 */
struct segment {
	uint64_t offset, length; /* in the body */
	uint64_t file_offset;	 /* where a file segment starts in the file */
	const char *text;	 /* NULL for a file segment */
};

struct body {
	int fd;
	struct mirror *m;
	struct MHD_Connection *conn;
	uint64_t size;
	size_t n;
	struct segment segments[2 * MIRROR_RANGE_PARTS + 1];
	char text[(MIRROR_RANGE_PARTS + 1) * PART_HEADER_MAX];
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status,
			     struct MHD_Response *response)
{
	enum MHD_Result ret;

	MHD_add_response_header(response, "Docker-Distribution-API-Version", "registry/2.0");
	last_status = status;
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
 * The registry a Host header names, into buf: false when it names none (no
 * header, an IPv4 or IPv6 address, localhost: the mirror itself). A port of
 * 80 or 443 is dropped, any other kept ("other.test:5000").
 */
static bool host_registry(struct MHD_Connection *conn, char *buf, size_t size)
{
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	const char *colon;
	struct in_addr addr;
	char name[256];
	size_t len;

	if (!host || !*host || host[0] == '[')
		return false;
	colon = strchr(host, ':');
	len = colon ? (size_t)(colon - host) : strlen(host);
	if (len == 0 || len >= sizeof(name))
		return false;
	memcpy(name, host, len);
	name[len] = '\0';
	if (inet_pton(AF_INET, name, &addr) == 1 || strcasecmp(name, "localhost") == 0)
		return false;
	if (colon && (strcmp(colon, ":80") == 0 || strcmp(colon, ":443") == 0))
		colon = NULL;
	return copy_part(buf, size, host, colon ? strlen(host) : len) == 0;
}

/* docker.io's other names are docker.io. */
static void normalize_registry(char *registry, size_t size)
{
	if (strcmp(registry, "index.docker.io") == 0 ||
	    strcmp(registry, "registry-1.docker.io") == 0)
		snprintf(registry, size, "%s", REF_DEFAULT_REGISTRY);
}

/*
 * /v2/<name>/(manifests|blobs)/<reference>; the registry from ?ns=, the
 * Host header, the name or the default (mirror.h). Returns 0, -ENOENT for a
 * path that is not the API's, or -EINVAL for a name that is not one.
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
	} else if (host_registry(conn, t->registry, sizeof(t->registry))) {
		/* a client that thinks it talks to the registry names the repository whole */
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
	normalize_registry(t->registry, sizeof(t->registry));
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
	const struct segment *seg = NULL;
	uint64_t left;
	ssize_t n;

	for (size_t i = 0; i < b->n && !seg; i++)
		if (pos >= b->segments[i].offset &&
		    pos - b->segments[i].offset < b->segments[i].length)
			seg = &b->segments[i];
	if (!seg)
		return MHD_CONTENT_READER_END_OF_STREAM;
	left = seg->length - (pos - seg->offset);
	if (max > left)
		max = (size_t)left;
	if (seg->text) {
		memcpy(buf, seg->text + (pos - seg->offset), max);
		return (ssize_t)max;
	}
	/* the mount may be fetching this blob: no stall limit while it does */
	mirror_guard_enter(b->m->guard, b->conn, MIRROR_PHASE_UPSTREAM);
	n = pread(b->fd, buf, max, (off_t)(seg->file_offset + (pos - seg->offset)));
	mirror_guard_enter(b->m->guard, b->conn, MIRROR_PHASE_ANSWER);
	/* the size was promised: a short file is an error, not an end */
	return n > 0 ? n : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void free_body(void *cls)
{
	struct body *b = cls;

	if (b->fd >= 0)
		close(b->fd);
	free(b);
}

/* A decimal number at *p, saturating at UINT64_MAX; false when none. */
static bool parse_number(const char **p, uint64_t *ret)
{
	uint64_t v = 0;

	if (!isdigit((unsigned char)**p))
		return false;
	for (; isdigit((unsigned char)**p); (*p)++) {
		unsigned d = (unsigned)(**p - '0');

		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
	}
	*ret = v;
	return true;
}

static int compare_spans(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/*
 * A Range header against a blob of size bytes (RFC 9110 §14.1.2): the
 * satisfiable ranges, sorted and merged, into spans (MIRROR_RANGE_PARTS at
 * most) and *ret_n. RANGE_WHOLE when there is no header, it does not parse,
 * its unit is not bytes, the blob is empty, or too many parts remain.
 */
static enum range_answer parse_range(const char *header, uint64_t size, struct span *spans,
				     size_t *ret_n)
{
	struct span all[RANGE_SPECS_MAX];
	size_t n_specs = 0, n = 0, merged = 0;
	const char *p = header;

	if (!p || size == 0 || strncasecmp(p, "bytes=", 6) != 0)
		return RANGE_WHOLE;
	for (p += 6;;) {
		uint64_t first, last = UINT64_MAX;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		if (++n_specs > RANGE_SPECS_MAX)
			return RANGE_WHOLE;
		if (*p == '-') { /* suffix-range: the last N bytes */
			p++;
			if (!parse_number(&p, &last))
				return RANGE_WHOLE;
			if (last > 0)
				all[n++] = (struct span){last >= size ? 0 : size - last, size - 1};
		} else {
			if (!parse_number(&p, &first) || *p++ != '-')
				return RANGE_WHOLE;
			if (isdigit((unsigned char)*p) && !parse_number(&p, &last))
				return RANGE_WHOLE;
			if (last < first)
				return RANGE_WHOLE; /* invalid: the header is ignored */
			if (first < size)
				all[n++] = (struct span){first, last < size ? last : size - 1};
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p && *p != ',')
			return RANGE_WHOLE;
	}
	if (n_specs == 0)
		return RANGE_WHOLE;
	if (n == 0)
		return RANGE_UNSATISFIABLE;
	qsort(all, n, sizeof(all[0]), compare_spans);
	for (size_t i = 1; i < n; i++) {
		if (all[i].first <= all[merged].last + 1) {
			if (all[i].last > all[merged].last)
				all[merged].last = all[i].last;
		} else {
			all[++merged] = all[i];
		}
	}
	if (merged + 1 > MIRROR_RANGE_PARTS)
		return RANGE_WHOLE;
	memcpy(spans, all, (merged + 1) * sizeof(all[0]));
	*ret_n = merged + 1;
	return RANGE_PARTS;
}

static void add_segment(struct body *b, uint64_t length, uint64_t file_offset, const char *text)
{
	b->segments[b->n] = (struct segment){b->size, length, file_offset, text};
	b->n++;
	b->size += length;
}

/*
 * The multipart/byteranges body of spans (RFC 9110 §14.6): a part header
 * before each range, the closing delimiter after. boundary: its parameter.
 */
static void multipart_body(struct body *b, const struct span *spans, size_t n, uint64_t size,
			   const char *boundary)
{
	char *text = b->text;

	for (size_t i = 0; i < n; i++) {
		int len = snprintf(text, PART_HEADER_MAX,
				   "%s--%s\r\nContent-Type: application/octet-stream\r\n"
				   "Content-Range: bytes %llu-%llu/%llu\r\n\r\n",
				   i ? "\r\n" : "", boundary, (unsigned long long)spans[i].first,
				   (unsigned long long)spans[i].last, (unsigned long long)size);

		/* 165 bytes at most; were it cut, the body would read past it */
		if (len < 0 || len >= PART_HEADER_MAX)
			abort();
		add_segment(b, (uint64_t)len, 0, text);
		add_segment(b, spans[i].last - spans[i].first + 1, spans[i].first, NULL);
		text += len + 1;
	}
	add_segment(b, (uint64_t)snprintf(text, PART_HEADER_MAX, "\r\n--%s--\r\n", boundary), 0,
		    text);
}

/* A boundary that no blob's bytes are likely to hold: 32 random hex digits. */
static void make_boundary(char *buf, size_t size)
{
	unsigned char r[16] = {0};

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		memset(r, 0x5a, sizeof(r)); /* never seen on Linux; still a valid boundary */
	for (size_t i = 0; i < sizeof(r) && 2 * i + 2 < size; i++)
		snprintf(buf + 2 * i, 3, "%02x", r[i]);
}

static enum MHD_Result serve_file(struct mirror *m, struct MHD_Connection *conn, bool head,
				  const struct target *t)
{
	char path[PATH_MAX * 2], media_type[256] = "", digest[DIGEST_STRING_SIZE + 1] = "";
	char header[128], boundary[40] = "";
	struct span spans[MIRROR_RANGE_PARTS];
	enum range_answer range = RANGE_WHOLE;
	struct MHD_Response *response;
	struct body *b;
	struct stat st;
	unsigned status = MHD_HTTP_OK;
	size_t n_spans = 0;
	ssize_t n;
	int r;

	bool blob = t->kind == TARGET_BLOB;

	snprintf(path, sizeof(path), "%s/" FS_LAYOUT_REGISTRY "/%s/%s/%s/%s", m->root, t->registry,
		 t->repository, blob ? FS_LAYOUT_BLOBS : FS_LAYOUT_MANIFESTS, t->reference);
	/* stat, not open: a HEAD must not start a download */
	mirror_guard_enter(m->guard, conn, MIRROR_PHASE_UPSTREAM);
	r = stat(path, &st) < 0 ? -errno : 0;
	mirror_guard_enter(m->guard, conn, MIRROR_PHASE_ANSWER);
	if (r < 0) {
		if (r == -ENOENT)
			return blob ? reply_error(conn, MHD_HTTP_NOT_FOUND, "BLOB_UNKNOWN",
						  "blob unknown to registry")
				    : reply_error(conn, MHD_HTTP_NOT_FOUND, "MANIFEST_UNKNOWN",
						  "manifest unknown");
		if (r == -EACCES)
			return reply_error(conn, MHD_HTTP_FORBIDDEN, "DENIED",
					   "the host daemon was refused upstream");
		return reply_error(conn, MHD_HTTP_BAD_GATEWAY, "UNKNOWN",
				   "the host daemon could not reach upstream (see its log)");
	}
	n = getxattr(path, FS_LAYOUT_XATTR_DIGEST, digest, sizeof(digest) - 1);
	digest[n > 0 ? n : 0] = '\0';
	if (!blob) {
		n = getxattr(path, FS_LAYOUT_XATTR_MEDIA_TYPE, media_type, sizeof(media_type) - 1);
		media_type[n > 0 ? n : 0] = '\0';
	} else {
		range = parse_range(
			MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE),
			(uint64_t)st.st_size, spans, &n_spans);
	}
	if (range == RANGE_UNSATISFIABLE) {
		response = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
		if (!response)
			return MHD_NO;
		snprintf(header, sizeof(header), "bytes */%llu", (unsigned long long)st.st_size);
		MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_RANGE, header);
		MHD_add_response_header(response, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
		return reply(conn, MHD_HTTP_RANGE_NOT_SATISFIABLE, response);
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return MHD_NO;
	b->fd = -1;
	b->m = m;
	b->conn = conn;
	if (range == RANGE_WHOLE) {
		add_segment(b, (uint64_t)st.st_size, 0, NULL);
	} else if (n_spans == 1) {
		add_segment(b, spans[0].last - spans[0].first + 1, spans[0].first, NULL);
	} else {
		make_boundary(boundary, sizeof(boundary));
		multipart_body(b, spans, n_spans, (uint64_t)st.st_size, boundary);
	}
	if (range == RANGE_PARTS)
		status = MHD_HTTP_PARTIAL_CONTENT;
	if (!head) {
		b->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (b->fd < 0) {
			free(b);
			return reply_error(conn, MHD_HTTP_BAD_GATEWAY, "UNKNOWN",
					   "the host daemon could not fetch it (see its log)");
		}
	}
	response = MHD_create_response_from_callback(b->size, BLOCK_SIZE, read_body, b, free_body);
	if (!response) {
		free_body(b);
		return MHD_NO;
	}
	if (*boundary) {
		snprintf(header, sizeof(header), "multipart/byteranges; boundary=%s", boundary);
		MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, header);
	} else {
		MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
					*media_type ? media_type : "application/octet-stream");
	}
	if (*digest)
		MHD_add_response_header(response, "Docker-Content-Digest", digest);
	if (blob)
		MHD_add_response_header(response, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	if (range == RANGE_PARTS && n_spans == 1) {
		snprintf(header, sizeof(header), "bytes %llu-%llu/%llu",
			 (unsigned long long)spans[0].first, (unsigned long long)spans[0].last,
			 (unsigned long long)st.st_size);
		MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_RANGE, header);
	}
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

	snprintf(path, sizeof(path), "%s/" FS_LAYOUT_REGISTRY "/%s/%s/" FS_LAYOUT_MANIFESTS,
		 m->root, t->registry, t->repository);
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

/*
 * Whether the host daemon serves registry: it is a line of the mount's
 * .dindfs/registries, or that file is absent (a host daemon from before
 * the list, which decides for itself).
 */
static bool registry_served(const struct mirror *m, const char *registry)
{
	char path[PATH_MAX + 32], line[REF_NAME_MAX + 2];
	bool served = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/" FS_LAYOUT_REGISTRIES_PATH, m->root);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT;
	while (!served && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		served = strcmp(line, registry) == 0;
	}
	fclose(f);
	return served;
}

/*
 * A registry the host daemon does not serve: 401, with the reason as the
 * Bearer challenge's error and as an OCI error body, so that each client
 * shows it. dockerd's classic pull shows the body's message. containerd
 * shows the body of no HEAD:
 *   - asked as a mirror (?ns=: ctr, nerdctl with the hosts.toml), the
 *     realm is TOKEN_PATH, whose token opens nothing: after the same
 *     challenge again it fails with "server message: <error>";
 *   - asked as the registry (dockerd 26.1's containerd image store, which
 *     turns a "server message" into its own "pull access denied" line),
 *     the realm's URL says it (UNSERVED_PATH<registry>/...), and its 403 is
 *     what that client shows: "... fetch anonymous token: unexpected status
 *     from GET request to <realm>: 403 Forbidden".
 */
static enum MHD_Result reply_unserved(struct mirror *m, struct MHD_Connection *conn,
				      const char *registry)
{
	char message[REF_NAME_MAX * 2 + 128], realm[sizeof(m->origin) + 2 * REF_NAME_MAX + 96];
	char challenge[sizeof(message) + sizeof(realm) + 64], body[1024];
	struct MHD_Response *response;
	int n;

	snprintf(message, sizeof(message),
		 "registry %s is not served by the host's dindfs cache: add it there with "
		 "dindfs mount --registry %s",
		 registry, registry);
	if (MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "ns"))
		snprintf(realm, sizeof(realm), "%s" TOKEN_PATH, m->origin);
	else
		snprintf(realm, sizeof(realm),
			 "%s" UNSERVED_PATH "%s/add-it-with/dindfs-mount--registry-%s", m->origin,
			 registry, registry);
	snprintf(challenge, sizeof(challenge),
		 "Bearer realm=\"%s\",service=\"dindfs\",error=\"%s\"", realm, message);
	n = snprintf(body, sizeof(body),
		     "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"%s\"}]}\n", message);
	response = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
	if (!response)
		return MHD_NO;
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE, challenge);
	return reply(conn, MHD_HTTP_UNAUTHORIZED, response);
}

/* The realm of reply_unserved's challenge: a token that opens nothing. */
static enum MHD_Result reply_token(struct MHD_Connection *conn)
{
	static const char body[] =
		"{\"token\":\"dindfs-unserved\",\"access_token\":\"dindfs-unserved\"}\n";
	struct MHD_Response *response = MHD_create_response_from_buffer(
		sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);

	if (!response)
		return MHD_NO;
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return reply(conn, MHD_HTTP_OK, response);
}

/* The answer to a request whose headers and body are all in. */
static enum MHD_Result answer(struct mirror *m, struct MHD_Connection *conn, const char *url,
			      bool head)
{
	struct target t;
	int r;

	if (strcmp(url, "/v2/") == 0 || strcmp(url, "/v2") == 0) {
		struct MHD_Response *response =
			MHD_create_response_from_buffer(2, "{}", MHD_RESPMEM_PERSISTENT);

		if (!response)
			return MHD_NO;
		MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
		return reply(conn, MHD_HTTP_OK, response);
	}
	if (strcmp(url, TOKEN_PATH) == 0)
		return reply_token(conn);
	if (strncmp(url, UNSERVED_PATH, strlen(UNSERVED_PATH)) == 0)
		return reply_error(
			conn, MHD_HTTP_FORBIDDEN, "DENIED",
			"a registry the host's dindfs cache does not serve (see this URL)");
	if (strncmp(url, "/v2/", 4) != 0)
		return reply_error(conn, MHD_HTTP_NOT_FOUND, "UNSUPPORTED", "not a registry path");
	r = parse_target(conn, url, &t);
	if (r == -ENOENT)
		return reply_error(conn, MHD_HTTP_NOT_FOUND, "UNSUPPORTED", "not a registry path");
	if (r < 0)
		return reply_error(conn, MHD_HTTP_BAD_REQUEST, "NAME_INVALID",
				   "invalid repository name or reference");
	if (!registry_served(m, t.registry))
		return reply_unserved(m, conn, t.registry);
	if (t.kind == TARGET_TAGS)
		return serve_tags(m, conn, &t);
	return serve_file(m, conn, head, &t);
}

/* --log-requests: when (the wall clock, for other logs), what, the status, how long. */
static void log_request(const char *method, const char *url, const char *host, double ms)
{
	char when[32];

	tool_wall_clock(when, sizeof(when));
	fprintf(stderr, "dindfs mirror: %s %s %s (Host %s): %u in %.2f ms\n", when, method, url,
		host ? host : "-", last_status, ms);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **state)
{
	struct mirror *m = cls;
	bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	enum MHD_Result ret;
	double start;

	(void)version;
	(void)upload;
	(void)upload_size;
	if (!*state) /* the headers are in: from now on the answer's limits apply */
		mirror_guard_enter(m->guard, conn, MIRROR_PHASE_ANSWER);
	/* refused at once, without reading a body that will never be used */
	if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "UNSUPPORTED",
				   "this mirror only serves pulls");
	if (!*state) { /* answer once the request is all in */
		*state = m;
		return MHD_YES;
	}
	start = m->log_requests ? tool_monotonic_ms() : 0;
	last_status = 0;
	ret = answer(m, conn, url, head);
	if (m->log_requests)
		log_request(
			method, url,
			MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST),
			tool_monotonic_ms() - start);
	return ret;
}

/* A request is done: its connection waits for the next one. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **state,
			 enum MHD_RequestTerminationCode code)
{
	struct mirror *m = cls;

	(void)state;
	(void)code;
	mirror_guard_enter(m->guard, conn, MIRROR_PHASE_IDLE);
}

static struct MHD_Daemon *start_daemon(struct mirror *m, const struct mirror_listen *l,
				       const struct sockaddr_in *sa, const char *cert,
				       const char *key)
{
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
	/* libmicrohttpd reads options up to MHD_OPTION_END: the TLS ones go last */
	enum MHD_OPTION tls_key = l->tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END;

	if (l->tls)
		flags |= MHD_USE_TLS;
	return MHD_start_daemon(flags, l->port, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR, sa,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)MIRROR_MAX_CONNECTIONS,
				MHD_OPTION_NOTIFY_CONNECTION, mirror_guard_notify, m->guard,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, m, tls_key, key,
				MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_END);
}

int mirror_start(const struct mirror_options *o, struct mirror **ret, size_t *ret_failed)
{
	struct mirror *m;
	int r;

	*ret_failed = 0;
	if (o->n_listen == 0 || o->n_listen > MIRROR_LISTEN_MAX)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	snprintf(m->root, sizeof(m->root), "%s", o->root);
	m->log_requests = o->log_requests;
	/* the token endpoint: on the first plain listener, else the first TLS one */
	for (size_t i = o->n_listen; i-- > 0;)
		if (!o->listen[i].tls || !*m->origin)
			snprintf(m->origin, sizeof(m->origin), "%s://%s:%u",
				 o->listen[i].tls ? "https" : "http", o->listen[i].address,
				 (unsigned)o->listen[i].port);
	r = mirror_guard_new(&m->guard);
	if (r < 0) {
		free(m);
		return r;
	}
	for (size_t i = 0; i < o->n_listen; i++) {
		const struct mirror_listen *l = &o->listen[i];
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(l->port)};

		*ret_failed = i;
		if (inet_pton(AF_INET, l->address, &sa.sin_addr) != 1)
			r = -EINVAL;
		else if (l->tls && (!o->cert_pem || !o->key_pem))
			r = -EINVAL;
		else if (l->tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
			r = -ENOTSUP;
		else if (!(m->daemons[i] = start_daemon(m, l, &sa, o->cert_pem, o->key_pem)))
			r = -EADDRINUSE;
		if (r < 0) {
			mirror_stop(m);
			return r;
		}
		m->n_daemons = i + 1;
	}
	*ret = m;
	return 0;
}

void mirror_stop(struct mirror *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_daemons; i++)
		MHD_stop_daemon(m->daemons[i]);
	mirror_guard_free(m->guard);
	free(m);
}
