/*
 * registry_request: the engine every registry call runs on (see
 * registry_internal.h). registry_request_run() owns the retry, backoff,
 * deadline, stop and resume logic and the host policy on every connection;
 * it asks registry_auth.c to answer a 401. curl's result codes become errno
 * values in curl_errno() and nowhere else.
 */
#include "registry_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>

#include "hosts.h"
#include "ref.h"

#define USER_AGENT    "dindfs/0.1"
#define MAX_REDIRECTS 5

static _Thread_local struct registry_stop *bound_stop;

int64_t registry_now_ms(void)
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

/* Why a stopped request ends: shutdown, or its caller gave up. */
static int stopped_errno(struct request *req)
{
	return atomic_load(&req->reg->cancelled) ? -ECANCELED : -EINTR;
}

void registry_request_error(struct request *req, const char *fmt, ...)
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

void registry_cancel_all(struct registry *reg)
{
	atomic_store(&reg->cancelled, true);
	pthread_mutex_lock(&reg->sleep_lock);
	pthread_cond_broadcast(&reg->sleep_cond);
	pthread_mutex_unlock(&reg->sleep_lock);
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
		int64_t left = req->deadline_ms - registry_now_ms();

		curl_easy_setopt(req->curl, CURLOPT_TIMEOUT_MS, (long)(left > 1 ? left : 1));
	}
	curl_easy_setopt(req->curl, CURLOPT_HEADERFUNCTION, registry_on_header);
	curl_easy_setopt(req->curl, CURLOPT_HEADERDATA, req);
	curl_easy_setopt(req->curl, CURLOPT_WRITEFUNCTION, registry_on_body);
	curl_easy_setopt(req->curl, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(req->curl, CURLOPT_XFERINFOFUNCTION, registry_on_xferinfo);
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
	while (!registry_request_stopped(req) && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&reg->sleep_cond, &reg->sleep_lock, &until);
	pthread_mutex_unlock(&reg->sleep_lock);
	return registry_request_stopped(req) ? stopped_errno(req) : 0;
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
	int64_t left = req->deadline_ms - registry_now_ms();

	if (asked && ms > left)
		return r; /* Retry-After past our deadline: fail now, as upstream said */
	if (ms > left)
		ms = left > 0 ? (long)left : 0;
	r = sleep_cancellable(req, ms);
	if (r < 0)
		return r;
	if (registry_now_ms() >= req->deadline_ms) {
		registry_request_error(req, "%s: no answer within %ld s", req->host,
				       req->reg->opts.deadline_s);
		return -ETIMEDOUT;
	}
	return 0;
}

static int status_error(struct request *req)
{
	switch (req->status) {
	case 401:
		registry_request_error(req, "%s: access denied (HTTP 401)", req->host);
		return -EACCES;
	case 403:
		registry_request_error(req, "%s: access forbidden (HTTP 403)", req->host);
		return -EACCES;
	case 404:
		registry_request_error(req, "%s: %s", req->host,
				       *req->missing ? req->missing : "not found");
		return -ENOENT;
	case 429:
		registry_request_error(req, "%s: too many requests (HTTP 429), still after retries",
				       req->host);
		return -EBUSY;
	default:
		registry_request_error(req, "%s: unexpected HTTP status %ld", req->host,
				       req->status);
		return req->status >= 500 ? -EIO : -EPROTO;
	}
}

/*
 * Run a request to completion: retries on 429, 5xx and broken transfers,
 * one authentication round on 401, resumes for blob downloads.
 */
int registry_request_run(struct request *req)
{
	uint64_t mark = req->sink == SINK_WRITER ? store_writer_size(req->writer) : 0;
	bool authenticated = false;
	int attempt = 0, r;

	registry_auth_apply_known(req);
	for (;;) {
		CURLcode rc;

		attempt++;
		r = perform_once(req, &rc);
		if (r < 0)
			return r;
		if (*req->refused) {
			registry_request_error(
				req,
				"%s: refused to %s %s: not https on a public address, nor an "
				"--upstream or --allow-origin origin",
				req->host,
				req->no_auth_flow ? "ask the token server" : "follow a redirect to",
				req->refused);
			return -EPERM;
		}
		if (registry_request_stopped(req)) {
			registry_request_error(req, "%s: %s", req->host,
					       stopped_errno(req) == -EINTR ? "the caller gave up"
									    : "shutting down");
			return stopped_errno(req);
		}
		if (req->sink_error) {
			r = req->sink_error;
			registry_request_error(
				req, "%s: %s", req->host,
				r == -EBADMSG  ? "sent more bytes than the blob has"
				: r == -EFBIG  ? "response too large"
				: r == -EPROTO ? "answered a range request with the wrong range"
					       : strerror(-r));
			return r;
		}
		if (rc != CURLE_OK) {
			r = curl_errno(req->curl, rc);
			registry_request_error(req, "%s: %s", req->host,
					       *req->curl_error ? req->curl_error
								: curl_easy_strerror(rc));
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
				req->deadline_ms =
					registry_now_ms() + req->reg->opts.deadline_s * 1000;
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
			registry_request_error(
				req,
				"%s: a redirect to another host answered 401; not authenticating "
				"there",
				req->host);
			return -EACCES;
		}
		if (req->status == 401 && !req->no_auth_flow && !authenticated) {
			r = registry_auth_answer(req);
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

/* Fill in the common fields and the URL: the registry's base URL, then fmt. */
int registry_request_init(struct request *req, struct registry *reg, const char *host,
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
	req->deadline_ms = registry_now_ms() + reg->opts.deadline_s * 1000;
	req->stop = bound_stop;
	if (err) {
		err->http_status = 0;
		err->message[0] = '\0';
	}
	if (reg->opts.served_only && !registry_serves(reg, host)) {
		registry_request_error(
			req,
			"%s: not a registry this mount serves (dindfs mount --registry %s adds it)",
			host, host);
		return -EPERM;
	}
	r = registry_base_url(reg, host, req->url, sizeof(req->url));
	if (r == 0)
		r = hosts_origin(req->url, req->own_origin, sizeof(req->own_origin));
	if (r < 0) {
		registry_request_error(req, "'%s': not a registry name", host);
		return r;
	}
	used = strlen(req->url);
	va_start(ap, fmt);
	n = vsnprintf(req->url + used, sizeof(req->url) - used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(req->url) - used) {
		registry_request_error(req, "%s: name too long", host);
		return -ENAMETOOLONG;
	}
	req->curl = curl_easy_init();
	return req->curl ? 0 : -ENOMEM;
}

static void request_release(struct request *req)
{
	if (req->curl)
		curl_easy_cleanup(req->curl);
	registry_buffer_free(&req->body);
	auth_credentials_wipe(&req->creds);
	auth_token_wipe(&req->token);
}

/* Requests carry 25 KiB of secrets and headers: keep them off thread stacks. */
struct request *registry_request_new(void)
{
	return calloc(1, sizeof(struct request));
}

void registry_request_free(struct request *req)
{
	request_release(req);
	free(req);
}
