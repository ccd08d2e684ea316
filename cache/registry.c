/*
 * registry: the registry HTTP API v2 client (see registry.h).
 *
 * Every call builds a struct request and hands it to request_run(), which
 * owns the retry, authentication and resume logic. A request has one of
 * three sinks for its body: a bounded memory buffer (manifests, tokens,
 * error bodies), a store writer (blobs), or none (HEAD). curl's result
 * codes become errno values in curl_errno() and nowhere else.
 */
#include "registry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>

#include "auth.h"
#include "hosts.h"
#include "manifest.h"
#include "ref.h"

#define USER_AGENT	"dindfs/0.1"
#define ERROR_BODY_MAX	(64u << 10)
#define MAX_UPSTREAMS	64
#define MAX_BASIC_HOSTS 64
#define MAX_REDIRECTS	5

struct upstream {
	char host[AUTH_REGISTRY_MAX + 1];
	char url[REGISTRY_URL_MAX + 1];
};

struct registry {
	struct registry_options opts;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	struct auth_cache *tokens;
	atomic_uint_fast64_t requests; /* sent upstream */
	atomic_uint_fast64_t bytes;    /* body bytes received */
	atomic_bool cancelled;
	/* backoff sleeps wait here, so a cancel or a stop ends them at once */
	pthread_mutex_t sleep_lock;
	pthread_cond_t sleep_cond; /* CLOCK_MONOTONIC */

	struct hosts *hosts; /* what requests, redirects and realms may reach */

	pthread_mutex_t lock; /* guards upstreams and basic_hosts */
	struct upstream upstreams[MAX_UPSTREAMS];
	size_t n_upstreams;
	/* registries that asked for Basic auth: send it up front next time */
	char basic_hosts[MAX_BASIC_HOSTS][AUTH_REGISTRY_MAX + 1];
	size_t n_basic_hosts;
};

struct buffer {
	char *data;
	size_t len, cap, max;
};

struct response_headers {
	char content_type[REGISTRY_MEDIA_TYPE_MAX + 1];
	char docker_digest[DIGEST_STRING_SIZE + 8];
	char www_authenticate[AUTH_HEADER_MAX + 1];
	bool www_authenticate_too_long;
	char retry_after[64];
	char content_range[128];
};

enum sink {
	SINK_BUFFER,
	SINK_WRITER,
	SINK_NONE, /* HEAD */
};

struct request {
	struct registry *reg;
	const char *host;	/* the registry, for messages, auth and caches */
	const char *repository; /* for the pull scope; NULL for /v2/ */
	char url[REGISTRY_URL_MAX + 1024];
	const char *accept;
	enum sink sink;
	bool no_auth_flow; /* a token request: a 401 is final */
	/* the registry's own origin: where redirects and realms may always go */
	char own_origin[HOSTS_ORIGIN_MAX + 1];
	/* where the host policy stopped this request ("" if it did not) */
	char refused[HOSTS_ORIGIN_MAX + 64];
	const char *post;		/* form body for a POST, else GET/HEAD */
	char missing[REGISTRY_URL_MAX]; /* what a 404 says is not there; \"\" for the host */

	/* authorization sent with this request */
	enum auth_scheme auth;
	struct auth_token token;
	struct auth_credentials creds;

	/* what came back */
	CURL *curl;
	long status;
	struct response_headers hdr;
	struct buffer body;
	char curl_error[CURL_ERROR_SIZE];

	/* SINK_WRITER */
	struct store_writer *writer;
	int64_t expected_size;
	bool body_started;
	registry_progress_fn progress;
	void *progress_ctx;

	int sink_error; /* why a body callback stopped the transfer */
	struct registry_error *err;

	int64_t deadline_ms;	    /* CLOCK_MONOTONIC: the call ends by then */
	struct registry_stop *stop; /* the calling thread's, or NULL */
};

static _Thread_local struct registry_stop *bound_stop;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void registry_bind_stop(struct registry_stop *s)
{
	bound_stop = s;
}

void registry_stop(struct registry *reg, struct registry_stop *s)
{
	atomic_store(&s->stopped, true);
	pthread_mutex_lock(&reg->sleep_lock);
	pthread_cond_broadcast(&reg->sleep_cond);
	pthread_mutex_unlock(&reg->sleep_lock);
}

static bool request_stopped(const struct request *req)
{
	return atomic_load(&req->reg->cancelled) || (req->stop && atomic_load(&req->stop->stopped));
}

/* Why a stopped request ends: shutdown, or its caller gave up. */
static int stopped_errno(struct request *req)
{
	return atomic_load(&req->reg->cancelled) ? -ECANCELED : -EINTR;
}

static void set_error(struct request *req, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_error(struct request *req, const char *fmt, ...)
{
	va_list ap;

	if (!req->err)
		return;
	req->err->http_status = (int)req->status;
	va_start(ap, fmt);
	vsnprintf(req->err->message, sizeof(req->err->message), fmt, ap);
	va_end(ap);
}

/* The one place where curl's codes become errno values. */
static int curl_errno(CURL *curl, CURLcode rc)
{
	long os_errno = 0;

	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		if (curl && curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK &&
		    os_errno > 0)
			return -(int)os_errno;
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return -ECONNRESET;
	case CURLE_TOO_MANY_REDIRECTS:
		return -ELOOP;
	case CURLE_ABORTED_BY_CALLBACK:
		return -ECANCELED;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		return -EPROTO;
	default:
		return -EIO;
	}
}

/* Transport errors worth another try: the connection broke mid-way. */
static bool transport_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_OPERATION_TIMEDOUT:
		return true;
	default:
		/* refused or unresolvable fails fast: the mount serves stale data then */
		return false;
	}
}

static bool status_retryable(long status)
{
	return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

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

static void buffer_free(struct buffer *b)
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
static size_t on_header(char *line, size_t size, size_t n, void *ctx)
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

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
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
static int on_xferinfo(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct request *req = ctx;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return request_stopped(req) ? 1 : 0;
}

void registry_cancel_all(struct registry *reg)
{
	atomic_store(&reg->cancelled, true);
	pthread_mutex_lock(&reg->sleep_lock);
	pthread_cond_broadcast(&reg->sleep_cond);
	pthread_mutex_unlock(&reg->sleep_lock);
}

static void share_lock(CURL *handle, curl_lock_data data, curl_lock_access access, void *ctx)
{
	struct registry *reg = ctx;

	(void)handle;
	(void)access;
	pthread_mutex_lock(&reg->share_locks[data]);
}

static void share_unlock(CURL *handle, curl_lock_data data, void *ctx)
{
	struct registry *reg = ctx;

	(void)handle;
	pthread_mutex_unlock(&reg->share_locks[data]);
}

static bool host_wants_basic(struct registry *reg, const char *host)
{
	bool found = false;
	size_t i;

	pthread_mutex_lock(&reg->lock);
	for (i = 0; i < reg->n_basic_hosts && !found; i++)
		found = strcmp(reg->basic_hosts[i], host) == 0;
	pthread_mutex_unlock(&reg->lock);
	return found;
}

static void remember_basic_host(struct registry *reg, const char *host)
{
	if (host_wants_basic(reg, host) || strlen(host) > AUTH_REGISTRY_MAX)
		return;
	pthread_mutex_lock(&reg->lock);
	if (reg->n_basic_hosts < MAX_BASIC_HOSTS)
		snprintf(reg->basic_hosts[reg->n_basic_hosts++], AUTH_REGISTRY_MAX + 1, "%s", host);
	pthread_mutex_unlock(&reg->lock);
}

static void pull_scope(const struct request *req, char *buf, size_t size)
{
	if (req->repository)
		snprintf(buf, size, "repository:%s:pull", req->repository);
	else
		buf[0] = '\0';
}

/* Before the first try: a cached token, or Basic for a registry that wants it. */
static void apply_known_auth(struct request *req)
{
	char scope[AUTH_SCOPE_MAX + 1];

	if (req->no_auth_flow)
		return;
	pull_scope(req, scope, sizeof(scope));
	if (auth_cache_get(req->reg->tokens, req->host, scope, time(NULL), &req->token) == 0) {
		req->auth = AUTH_SCHEME_BEARER;
	} else if (host_wants_basic(req->reg, req->host) &&
		   auth_lookup_credentials(req->host, &req->creds) == 0) {
		req->auth = AUTH_SCHEME_BASIC;
	}
}

/*
 * The host policy (hosts.h), on the address actually connected to: for
 * every redirect, and for a token request (no_auth_flow) from its first
 * request, since a registry named its URL. Any other request's first goes
 * to the served registry itself. ip is numeric; true when the policy
 * allows it, else req->refused says what was refused.
 */
static bool policy_allows(struct request *req, const char *ip)
{
	char origin[HOSTS_ORIGIN_MAX + 1] = "?";
	long redirects = 0;
	char *url = NULL;

	curl_easy_getinfo(req->curl, CURLINFO_REDIRECT_COUNT, &redirects);
	if (redirects == 0 && !req->no_auth_flow)
		return true;
	curl_easy_getinfo(req->curl, CURLINFO_EFFECTIVE_URL, &url);
	if (url && hosts_may_follow(req->reg->hosts, url, ip, req->own_origin))
		return true;
	if (url)
		hosts_origin(url, origin, sizeof(origin));
	snprintf(req->refused, sizeof(req->refused), "%s (%s)", origin, ip ? ip : "?");
	return false;
}

/* Before a connection is made: a refused address is never connected to. */
static curl_socket_t on_opensocket(void *ctx, curlsocktype purpose, struct curl_sockaddr *sa)
{
	struct request *req = ctx;
	char ip[INET6_ADDRSTRLEN] = "";
	const void *where = NULL;

	if (sa->family == AF_INET)
		where = &((const struct sockaddr_in *)(const void *)&sa->addr)->sin_addr;
	else if (sa->family == AF_INET6)
		where = &((const struct sockaddr_in6 *)(const void *)&sa->addr)->sin6_addr;
	if (purpose == CURLSOCKTYPE_IPCXN) {
		if (!where || !inet_ntop(sa->family, where, ip, sizeof(ip)) ||
		    !policy_allows(req, ip))
			return CURL_SOCKET_BAD; /* curl tries the next address, if any */
		req->refused[0] = '\0';
	}
	return socket(sa->family, sa->socktype | SOCK_CLOEXEC, sa->protocol);
}

/* Before each request goes out, on a new connection or a reused one. */
static int on_prereq(void *ctx, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
	(void)local_ip;
	(void)primary_port;
	(void)local_port;
	return policy_allows(ctx, primary_ip) ? CURL_PREREQFUNC_OK : CURL_PREREQFUNC_ABORT;
}

/* Did the response come from another origin than the registry's (a redirect)? */
static bool answered_elsewhere(struct request *req)
{
	char origin[HOSTS_ORIGIN_MAX + 1];
	char *url = NULL;

	curl_easy_getinfo(req->curl, CURLINFO_EFFECTIVE_URL, &url);
	return !url || hosts_origin(url, origin, sizeof(origin)) < 0 ||
	       strcmp(origin, req->own_origin) != 0;
}

static int perform_once(struct request *req, CURLcode *ret_rc)
{
	struct registry *reg = req->reg;
	struct curl_slist *headers = NULL;
	char range[48], accept[1100];
	CURLcode rc;

	req->status = 0;
	req->sink_error = 0;
	req->curl_error[0] = '\0';
	req->refused[0] = '\0';
	req->body.len = 0;
	memset(&req->hdr, 0, sizeof(req->hdr));
	req->body_started = false;
	curl_easy_reset(req->curl);

	curl_easy_setopt(req->curl, CURLOPT_URL, req->url);
	curl_easy_setopt(req->curl, CURLOPT_SHARE, reg->share);
	curl_easy_setopt(req->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(req->curl, CURLOPT_USERAGENT, USER_AGENT);
	curl_easy_setopt(req->curl, CURLOPT_ERRORBUFFER, req->curl_error);
	curl_easy_setopt(req->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(req->curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(req->curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	/* a POST carries a refresh token in its body: a 307 must not resend it elsewhere */
	curl_easy_setopt(req->curl, CURLOPT_FOLLOWLOCATION, req->post ? 0L : 1L);
	curl_easy_setopt(req->curl, CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
	curl_easy_setopt(req->curl, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
	curl_easy_setopt(req->curl, CURLOPT_OPENSOCKETDATA, req);
	curl_easy_setopt(req->curl, CURLOPT_PREREQFUNCTION, on_prereq);
	curl_easy_setopt(req->curl, CURLOPT_PREREQDATA, req);
	/* never send our credentials to the host a redirect points at */
	curl_easy_setopt(req->curl, CURLOPT_UNRESTRICTED_AUTH, 0L);
	curl_easy_setopt(req->curl, CURLOPT_CONNECTTIMEOUT, reg->opts.connect_timeout_s);
	/* a trickle is aborted like a stall; a call that is not a download has a total limit */
	curl_easy_setopt(req->curl, CURLOPT_LOW_SPEED_LIMIT, reg->opts.min_rate);
	curl_easy_setopt(req->curl, CURLOPT_LOW_SPEED_TIME, reg->opts.stall_timeout_s);
	if (req->sink != SINK_WRITER) {
		int64_t left = req->deadline_ms - now_ms();

		curl_easy_setopt(req->curl, CURLOPT_TIMEOUT_MS, (long)(left > 1 ? left : 1));
	}
	curl_easy_setopt(req->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(req->curl, CURLOPT_HEADERDATA, req);
	curl_easy_setopt(req->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(req->curl, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(req->curl, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
	curl_easy_setopt(req->curl, CURLOPT_XFERINFODATA, req);
	curl_easy_setopt(req->curl, CURLOPT_NOPROGRESS, 0L);
	if (req->sink == SINK_NONE)
		curl_easy_setopt(req->curl, CURLOPT_NOBODY, 1L);
	if (req->post)
		curl_easy_setopt(req->curl, CURLOPT_POSTFIELDS, req->post);
	if (req->accept) {
		snprintf(accept, sizeof(accept), "Accept: %s", req->accept);
		headers = curl_slist_append(headers, accept);
		if (!headers)
			return -ENOMEM;
		curl_easy_setopt(req->curl, CURLOPT_HTTPHEADER, headers);
	}
	if (req->sink == SINK_WRITER && store_writer_size(req->writer) > 0) {
		snprintf(range, sizeof(range), "%llu-",
			 (unsigned long long)store_writer_size(req->writer));
		curl_easy_setopt(req->curl, CURLOPT_RANGE, range);
	}
	if (req->auth == AUTH_SCHEME_BEARER) {
		curl_easy_setopt(req->curl, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
		curl_easy_setopt(req->curl, CURLOPT_XOAUTH2_BEARER, req->token.token);
	} else if (req->auth == AUTH_SCHEME_BASIC) {
		curl_easy_setopt(req->curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(req->curl, CURLOPT_USERNAME, req->creds.username);
		curl_easy_setopt(req->curl, CURLOPT_PASSWORD, req->creds.secret);
	}

	atomic_fetch_add(&reg->requests, 1);
	rc = curl_easy_perform(req->curl);
	curl_easy_getinfo(req->curl, CURLINFO_RESPONSE_CODE, &req->status);
	curl_slist_free_all(headers);
	*ret_rc = rc;
	return 0;
}

/* How long to wait before the next try; *ret_asked says Retry-After set it. */
static long wait_ms(struct request *req, int attempt, bool *ret_asked)
{
	const struct registry_options *o = &req->reg->opts;
	long cap = o->max_wait_s * 1000, ms = o->backoff_ms;
	const char *ra = req->hdr.retry_after;
	char *end;
	int i;

	*ret_asked = false;
	if (*ra) {
		long seconds = strtol(ra, &end, 10);

		if (end == ra || *end) { /* an HTTP date */
			time_t when = curl_getdate(ra, NULL);

			seconds = when > 0 ? (long)(when - time(NULL)) : -1;
		}
		if (seconds >= 0) {
			*ret_asked = true;
			return seconds * 1000 > cap ? cap : seconds * 1000;
		}
	}
	for (i = 1; i < attempt && ms < cap; i++)
		ms *= 2;
	return ms > cap ? cap : ms;
}

/*
 * Sleep ms, or less when a cancel or this request's stop comes: 0, or the
 * errno the request then ends with.
 */
static int sleep_cancellable(struct request *req, long ms)
{
	struct registry *reg = req->reg;
	struct timespec until;
	int r = 0;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&reg->sleep_lock);
	while (!request_stopped(req) && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&reg->sleep_cond, &reg->sleep_lock, &until);
	pthread_mutex_unlock(&reg->sleep_lock);
	return request_stopped(req) ? stopped_errno(req) : 0;
}

/*
 * Wait before another try of a request that failed with r (its message
 * set): 0 to go on; r when the wait would pass the deadline and upstream
 * asked for it (no use waiting), -ETIMEDOUT when the deadline is reached;
 * the stop's errno when stopped.
 */
static int backoff(struct request *req, int attempt, int r)
{
	bool asked;
	long ms = wait_ms(req, attempt, &asked);
	int64_t left = req->deadline_ms - now_ms();

	if (asked && ms > left)
		return r; /* Retry-After past our deadline: fail now, as upstream said */
	if (ms > left)
		ms = left > 0 ? (long)left : 0;
	r = sleep_cancellable(req, ms);
	if (r < 0)
		return r;
	if (now_ms() >= req->deadline_ms) {
		set_error(req, "%s: no answer within %ld s", req->host, req->reg->opts.deadline_s);
		return -ETIMEDOUT;
	}
	return 0;
}

static int request_run(struct request *req);

/* Get a Bearer token from the challenge's realm for this request's scope. */
static int fetch_token(struct request *req, const struct auth_challenge *ch)
{
	struct request *tok = calloc(1, sizeof(*tok));
	char scope[AUTH_SCOPE_MAX + 1], *form = NULL, *escaped = NULL;
	bool have_creds;
	int r;

	if (!tok)
		return -ENOMEM;
	pull_scope(req, scope, sizeof(scope));
	tok->reg = req->reg;
	tok->host = req->host;
	tok->sink = SINK_BUFFER;
	tok->body.max = AUTH_TOKEN_RESPONSE_MAX;
	tok->no_auth_flow = true;
	memcpy(tok->own_origin, req->own_origin, sizeof(tok->own_origin));
	tok->err = req->err;
	tok->curl = req->curl;
	tok->deadline_ms = req->deadline_ms; /* the token is part of the call */
	tok->stop = req->stop;
	r = auth_token_url(ch, *scope ? scope : NULL, tok->url, sizeof(tok->url));
	if (r < 0) {
		set_error(req, "%s: cannot use its token server '%s'", req->host, ch->realm);
		goto out;
	}
	have_creds = auth_lookup_credentials(req->host, &tok->creds) == 0;
	if (have_creds && tok->creds.identity_token) {
		/* an OAuth refresh token is exchanged with a POST (docker does the same) */
		escaped = curl_easy_escape(req->curl, tok->creds.secret, 0);
		if (!escaped || asprintf(&form,
					 "grant_type=refresh_token&client_id=dindfs"
					 "&refresh_token=%s",
					 escaped) < 0) {
			r = -ENOMEM;
			goto out;
		}
		tok->post = form;
	} else if (have_creds) {
		tok->auth = AUTH_SCHEME_BASIC;
	}
	r = request_run(tok);
	if (r == -EACCES) {
		set_error(req, "%s: %s", req->host,
			  have_creds ? "the token server refused our credentials"
				     : "authentication required, and no credentials for it in "
				       "the docker config");
		goto out;
	}
	if (r < 0)
		goto out;
	r = auth_parse_token_response(tok->body.data, tok->body.len, &req->token);
	if (r < 0) {
		set_error(req, "%s: the token server's answer is not a token", req->host);
		r = -EPROTO;
		goto out;
	}
	req->auth = AUTH_SCHEME_BEARER;
	auth_cache_put(req->reg->tokens, req->host, scope, &req->token, time(NULL));
out:
	if (escaped)
		curl_free(escaped);
	free(form);
	buffer_free(&tok->body);
	auth_credentials_wipe(&tok->creds);
	auth_token_wipe(&tok->token);
	free(tok);
	return r;
}

/* Answer a 401: read the challenge and get what it asks for. */
static int authenticate(struct request *req)
{
	struct auth_challenge ch;
	int r;

	if (req->hdr.www_authenticate_too_long)
		r = -E2BIG;
	else
		r = auth_parse_challenge(req->hdr.www_authenticate, &ch);
	if (r < 0) {
		set_error(req, "%s: answered 401 with a challenge we cannot read", req->host);
		return -EACCES;
	}
	if (ch.scheme == AUTH_SCHEME_BEARER)
		return fetch_token(req, &ch);
	if (auth_lookup_credentials(req->host, &req->creds) < 0) {
		set_error(req,
			  "%s: authentication required, and no credentials for it in the "
			  "docker config",
			  req->host);
		return -EACCES;
	}
	remember_basic_host(req->reg, req->host);
	req->auth = AUTH_SCHEME_BASIC;
	return 0;
}

static int status_error(struct request *req)
{
	switch (req->status) {
	case 401:
		set_error(req, "%s: access denied (HTTP 401)", req->host);
		return -EACCES;
	case 403:
		set_error(req, "%s: access forbidden (HTTP 403)", req->host);
		return -EACCES;
	case 404:
		set_error(req, "%s: %s", req->host, *req->missing ? req->missing : "not found");
		return -ENOENT;
	case 429:
		set_error(req, "%s: too many requests (HTTP 429), still after retries", req->host);
		return -EBUSY;
	default:
		set_error(req, "%s: unexpected HTTP status %ld", req->host, req->status);
		return req->status >= 500 ? -EIO : -EPROTO;
	}
}

/*
 * Run a request to completion: retries on 429, 5xx and broken transfers,
 * one authentication round on 401, resumes for blob downloads.
 */
static int request_run(struct request *req)
{
	uint64_t mark = req->sink == SINK_WRITER ? store_writer_size(req->writer) : 0;
	bool authenticated = false;
	int attempt = 0, r;

	apply_known_auth(req);
	for (;;) {
		CURLcode rc;

		attempt++;
		r = perform_once(req, &rc);
		if (r < 0)
			return r;
		if (*req->refused) {
			set_error(req,
				  "%s: refused to %s %s: not https on a public address, nor an "
				  "--upstream or --allow-origin origin",
				  req->host,
				  req->no_auth_flow ? "ask the token server"
						    : "follow a redirect to",
				  req->refused);
			return -EPERM;
		}
		if (request_stopped(req)) {
			set_error(req, "%s: %s", req->host,
				  stopped_errno(req) == -EINTR ? "the caller gave up"
							       : "shutting down");
			return stopped_errno(req);
		}
		if (req->sink_error) {
			r = req->sink_error;
			set_error(req, "%s: %s", req->host,
				  r == -EBADMSG	 ? "sent more bytes than the blob has"
				  : r == -EFBIG	 ? "response too large"
				  : r == -EPROTO ? "answered a range request with the wrong range"
						 : strerror(-r));
			return r;
		}
		if (rc != CURLE_OK) {
			r = curl_errno(req->curl, rc);
			set_error(req, "%s: %s", req->host,
				  *req->curl_error ? req->curl_error : curl_easy_strerror(rc));
			if (!transport_retryable(rc))
				return r;
			/*
			 * A download that moves keeps its retries and gets its
			 * deadline anew; one that fell under the minimum rate
			 * (timed out) does not: a trickle is not progress.
			 */
			if (req->sink == SINK_WRITER && store_writer_size(req->writer) > mark &&
			    rc != CURLE_OPERATION_TIMEDOUT) {
				mark = store_writer_size(req->writer);
				attempt = 1;
				req->deadline_ms = now_ms() + req->reg->opts.deadline_s * 1000;
			}
			if (attempt >= req->reg->opts.max_attempts)
				return r;
			r = backoff(req, attempt, r);
			if (r < 0)
				return r;
			continue;
		}
		if (req->status >= 200 && req->status < 300)
			return 0;
		if (req->status == 401 && !req->no_auth_flow && answered_elsewhere(req)) {
			/* our credentials are for the registry, not for where it sent us */
			set_error(req,
				  "%s: a redirect to another host answered 401; not authenticating "
				  "there",
				  req->host);
			return -EACCES;
		}
		if (req->status == 401 && !req->no_auth_flow && !authenticated) {
			r = authenticate(req);
			if (r < 0)
				return r;
			authenticated = true;
			attempt--;
			continue;
		}
		if (req->status == 416 && req->sink == SINK_WRITER) {
			/* our range made no sense to the server: start over */
			r = store_writer_reset(req->writer);
			if (r < 0)
				return r;
			continue;
		}
		if (status_retryable(req->status) && attempt < req->reg->opts.max_attempts) {
			r = backoff(req, attempt, status_error(req));
			if (r < 0)
				return r;
			continue;
		}
		return status_error(req);
	}
}

static int request_init(struct request *req, struct registry *reg, const char *host,
			const char *repository, struct registry_error *err, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* Fill in the common fields and the URL: the registry's base URL, then fmt. */
static int request_init(struct request *req, struct registry *reg, const char *host,
			const char *repository, struct registry_error *err, const char *fmt, ...)
{
	size_t used;
	va_list ap;
	int n, r;

	memset(req, 0, sizeof(*req));
	req->reg = reg;
	req->host = ref_canonical_registry(host);
	req->repository = repository;
	req->err = err;
	req->expected_size = -1;
	req->deadline_ms = now_ms() + reg->opts.deadline_s * 1000;
	req->stop = bound_stop;
	if (err) {
		err->http_status = 0;
		err->message[0] = '\0';
	}
	if (reg->opts.served_only && !registry_serves(reg, host)) {
		set_error(
			req,
			"%s: not a registry this mount serves (dindfs mount --registry %s adds it)",
			host, host);
		return -EPERM;
	}
	r = registry_base_url(reg, host, req->url, sizeof(req->url));
	if (r == 0)
		r = hosts_origin(req->url, req->own_origin, sizeof(req->own_origin));
	if (r < 0) {
		set_error(req, "'%s': not a registry name", host);
		return r;
	}
	used = strlen(req->url);
	va_start(ap, fmt);
	n = vsnprintf(req->url + used, sizeof(req->url) - used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(req->url) - used) {
		set_error(req, "%s: name too long", host);
		return -ENAMETOOLONG;
	}
	req->curl = curl_easy_init();
	return req->curl ? 0 : -ENOMEM;
}

static void request_release(struct request *req)
{
	if (req->curl)
		curl_easy_cleanup(req->curl);
	buffer_free(&req->body);
	auth_credentials_wipe(&req->creds);
	auth_token_wipe(&req->token);
}

/* Requests carry 25 KiB of secrets and headers: keep them off thread stacks. */
static struct request *request_new(void)
{
	return calloc(1, sizeof(struct request));
}

static void request_free(struct request *req)
{
	request_release(req);
	free(req);
}

/* A request for manifest `reference` of repository; the caller sets the sink. */
static int manifest_request(struct registry *reg, const char *host, const char *repository,
			    const char *reference, struct registry_error *err, struct request **ret)
{
	struct request *req = request_new();
	int r;

	if (!req)
		return -ENOMEM;
	r = request_init(req, reg, host, repository, err, "/v2/%s/manifests/%s", repository,
			 reference);
	if (r < 0) {
		request_free(req);
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
	struct request *req = request_new();
	int r;

	if (!req)
		return -ENOMEM;
	r = request_init(req, reg, host, repository, err, "/v2/%s/blobs/sha256:%s", repository,
			 d->hex);
	if (r < 0) {
		request_free(req);
		return r;
	}
	snprintf(req->missing, sizeof(req->missing), "blob sha256:%s not found in '%s'", d->hex,
		 repository);
	*ret = req;
	return 0;
}

int registry_ping(struct registry *reg, const char *host, struct registry_error *err)
{
	struct request *req = request_new();
	int r;

	if (!req)
		return -ENOMEM;
	r = request_init(req, reg, host, NULL, err, "/v2/");
	if (r == 0) {
		req->sink = SINK_BUFFER;
		req->body.max = ERROR_BODY_MAX;
		r = request_run(req);
	}
	request_free(req);
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
	r = request_run(req);
	if (r < 0)
		goto out;
	r = digest_of_buffer(req->body.data ? req->body.data : "", req->body.len, &ret->digest);
	if (r < 0)
		goto out;
	if (is_digest_reference(reference, &wanted) && !digest_equal(&wanted, &ret->digest)) {
		set_error(req, "%s: manifest '%s@%s' does not match its digest", host, repository,
			  reference);
		r = -EBADMSG;
		goto out;
	}
	if (*req->hdr.docker_digest && (digest_parse(req->hdr.docker_digest, &announced) < 0 ||
					!digest_equal(&announced, &ret->digest))) {
		set_error(req, "%s: manifest '%s:%s' does not match its Docker-Content-Digest",
			  host, repository, reference);
		r = -EBADMSG;
		goto out;
	}
	snprintf(ret->media_type, sizeof(ret->media_type), "%s", req->hdr.content_type);
	ret->body = req->body.data;
	ret->len = req->body.len;
	req->body.data = NULL; /* now the caller's */
out:
	request_free(req);
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
	r = request_run(req);
	if (r < 0)
		goto out;
	if (digest_parse(req->hdr.docker_digest, ret_digest) < 0) {
		set_error(req, "%s: HEAD of a manifest gave no Docker-Content-Digest", host);
		r = -EPROTO;
		goto out;
	}
	if (media_type)
		snprintf(media_type, media_type_size, "%s", req->hdr.content_type);
out:
	request_free(req);
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
	r = request_run(req);
	if (r < 0)
		goto out;
	curl_easy_getinfo(req->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
	*ret_size = length;
out:
	request_free(req);
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
	r = request_run(req);
	if (r == 0 && expected_size >= 0 && store_writer_size(w) != (uint64_t)expected_size) {
		set_error(req, "%s: blob sha256:%s ended after %llu of %lld bytes", host, d->hex,
			  (unsigned long long)store_writer_size(w), (long long)expected_size);
		r = -EBADMSG;
	}
	request_free(req);
	return r;
}

/* Check an upstream URL with curl's URL parser: http(s), a host, no path, query or user. */
static int normalize_upstream_url(const char *url, char *buf, size_t size)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *path = NULL, *query = NULL, *user = NULL, *fragment = NULL;
	int r = -EINVAL, n;

	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto out;
	curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	curl_url_get(u, CURLUPART_USER, &user, 0);
	curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0);
	if (!scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
		goto out;
	if ((path && strcmp(path, "/") != 0) || query || user || fragment)
		goto out;
	n = snprintf(buf, size, "%s", url);
	if (n < 0 || (size_t)n >= size) {
		r = -ENAMETOOLONG;
		goto out;
	}
	while (n > 0 && buf[n - 1] == '/')
		buf[--n] = '\0';
	r = 0;
out:
	curl_free(scheme);
	curl_free(path);
	curl_free(query);
	curl_free(user);
	curl_free(fragment);
	curl_url_cleanup(u);
	return r;
}

int registry_set_upstream(struct registry *reg, const char *host, const char *url)
{
	char normalized[REGISTRY_URL_MAX + 1];
	size_t i;
	int r;

	host = ref_canonical_registry(host);
	if (ref_validate_registry(host) < 0 || strcmp(host, REF_LOCAL_REGISTRY) == 0)
		return -EINVAL;
	r = normalize_upstream_url(url, normalized, sizeof(normalized));
	if (r < 0)
		return r;
	r = registry_serve(reg, host);
	if (r == 0)
		r = hosts_trust_origin(reg->hosts, normalized);
	if (r < 0)
		return r;
	pthread_mutex_lock(&reg->lock);
	for (i = 0; i < reg->n_upstreams; i++)
		if (strcmp(reg->upstreams[i].host, host) == 0)
			break;
	if (i == MAX_UPSTREAMS) {
		r = -ENOSPC;
	} else {
		snprintf(reg->upstreams[i].host, sizeof(reg->upstreams[i].host), "%s", host);
		snprintf(reg->upstreams[i].url, sizeof(reg->upstreams[i].url), "%s", normalized);
		if (i == reg->n_upstreams)
			reg->n_upstreams++;
	}
	pthread_mutex_unlock(&reg->lock);
	return r;
}

int registry_add_upstream_spec(struct registry *reg, const char *spec)
{
	const char *eq = strchr(spec, '=');
	char host[AUTH_REGISTRY_MAX + 1];

	if (!eq || eq == spec || (size_t)(eq - spec) > AUTH_REGISTRY_MAX)
		return -EINVAL;
	memcpy(host, spec, (size_t)(eq - spec));
	host[eq - spec] = '\0';
	return registry_set_upstream(reg, host, eq + 1);
}

int registry_base_url(struct registry *reg, const char *host, char *buf, size_t size)
{
	const char *url = NULL;
	size_t i;
	int n;

	if (!*host || strlen(host) > AUTH_REGISTRY_MAX || strpbrk(host, "/?#@ \t\r\n"))
		return -EINVAL;
	host = ref_canonical_registry(host);
	pthread_mutex_lock(&reg->lock);
	for (i = 0; i < reg->n_upstreams && !url; i++)
		if (strcmp(reg->upstreams[i].host, host) == 0)
			url = reg->upstreams[i].url;
	if (url)
		n = snprintf(buf, size, "%s", url);
	else if (strcmp(host, "docker.io") == 0)
		n = snprintf(buf, size, "%s", REGISTRY_DOCKER_HUB_URL);
	else
		n = snprintf(buf, size, "https://%s", host);
	pthread_mutex_unlock(&reg->lock);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

const char *const registry_public_names[] = {
	"docker.io",
	"ghcr.io",
	"quay.io",
	"mcr.microsoft.com",
	"registry.k8s.io",
	"gcr.io",
	"us.gcr.io",
	"eu.gcr.io",
	"asia.gcr.io",
	"us-docker.pkg.dev",
	"europe-docker.pkg.dev",
	"asia-docker.pkg.dev",
	"public.ecr.aws",
	"registry.gitlab.com",
	"nvcr.io",
	NULL,
};

int registry_serve(struct registry *reg, const char *name)
{
	return hosts_serve(reg->hosts, name);
}

int registry_serve_public(struct registry *reg)
{
	size_t i;
	int r = 0;

	for (i = 0; r == 0 && registry_public_names[i]; i++)
		r = registry_serve(reg, registry_public_names[i]);
	return r;
}

bool registry_serves(struct registry *reg, const char *name)
{
	return hosts_serves(reg->hosts, name);
}

int registry_foreach_served(struct registry *reg, int (*fn)(const char *name, void *ctx), void *ctx)
{
	return hosts_foreach_served(reg->hosts, fn, ctx);
}

int registry_allow_origin(struct registry *reg, const char *url)
{
	return hosts_trust_origin(reg->hosts, url);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void init_curl(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int registry_new(const struct registry_options *opts, struct registry **ret)
{
	pthread_condattr_t cond_attr;
	struct registry *reg;
	int i, r;

	pthread_once(&curl_once, init_curl);
	if (curl_init_result != CURLE_OK)
		return -EIO;
	reg = calloc(1, sizeof(*reg));
	if (!reg)
		return -ENOMEM;
	if (opts)
		reg->opts = *opts;
	if (reg->opts.connect_timeout_s <= 0)
		reg->opts.connect_timeout_s = 15;
	if (reg->opts.stall_timeout_s <= 0)
		reg->opts.stall_timeout_s = 30;
	if (reg->opts.max_attempts <= 0)
		reg->opts.max_attempts = 5;
	if (reg->opts.backoff_ms <= 0)
		reg->opts.backoff_ms = 500;
	if (reg->opts.max_wait_s <= 0)
		reg->opts.max_wait_s = 60;
	if (reg->opts.deadline_s <= 0)
		reg->opts.deadline_s = REGISTRY_DEADLINE_S;
	if (reg->opts.stall_timeout_s > reg->opts.deadline_s)
		reg->opts.stall_timeout_s = reg->opts.deadline_s;
	if (reg->opts.min_rate <= 0)
		reg->opts.min_rate = 1024;
	pthread_mutex_init(&reg->lock, NULL);
	pthread_mutex_init(&reg->sleep_lock, NULL);
	pthread_condattr_init(&cond_attr);
	pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC);
	pthread_cond_init(&reg->sleep_cond, &cond_attr);
	pthread_condattr_destroy(&cond_attr);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&reg->share_locks[i], NULL);
	r = auth_cache_new(0, &reg->tokens);
	if (r == 0)
		r = hosts_new(&reg->hosts);
	if (r < 0)
		goto out_free;
	reg->share = curl_share_init();
	if (!reg->share) {
		r = -ENOMEM;
		goto out_free;
	}
	curl_share_setopt(reg->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(reg->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(reg->share, CURLSHOPT_USERDATA, reg);
	curl_share_setopt(reg->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(reg->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(reg->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	*ret = reg;
	return 0;
out_free:
	registry_free(reg);
	return r;
}

void registry_free(struct registry *reg)
{
	int i;

	if (!reg)
		return;
	if (reg->share)
		curl_share_cleanup(reg->share);
	auth_cache_free(reg->tokens);
	hosts_free(reg->hosts);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&reg->share_locks[i]);
	pthread_mutex_destroy(&reg->lock);
	pthread_cond_destroy(&reg->sleep_cond);
	pthread_mutex_destroy(&reg->sleep_lock);
	free(reg);
}
