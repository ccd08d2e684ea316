/*
 * fake_registry: a scripted HTTP server for the unit suites (see
 * fake_registry.h). One lock guards the script and the request log; the
 * server's threads (one per connection) take it only to pick an answer and
 * to record a request.
 */
#include "fake_registry.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

struct fake_registry {
	struct MHD_Daemon *daemon;
	unsigned port;
	char url[64];

	pthread_mutex_t lock; /* guards everything below */
	struct fake_answer answers[FAKE_ANSWERS_MAX];
	void *bodies[FAKE_ANSWERS_MAX]; /* the answers' own copies of their bodies */
	int uses[FAKE_ANSWERS_MAX];
	int n_answers;
	struct fake_request requests[FAKE_REQUESTS_MAX];
	int n_requests;
};

/* Where a cut body stands. */
struct cut_body {
	const char *data;
	size_t cut;
};

static void copy_header(char *dst, size_t size, struct MHD_Connection *conn,
			enum MHD_ValueKind kind, const char *name)
{
	const char *v = MHD_lookup_connection_value(conn, kind, name);

	snprintf(dst, size, "%s", v ? v : "");
}

static bool matches(const struct fake_answer *a, const struct fake_request *rq)
{
	return (!a->method || strcmp(a->method, rq->method) == 0) &&
	       (!a->path || strcmp(a->path, rq->path) == 0) &&
	       (!a->auth || strcmp(a->auth, rq->auth) == 0);
}

/* Record rq and pick its answer (a copy in *ret); false for none. */
static bool pick(struct fake_registry *f, const struct fake_request *rq, struct fake_answer *ret)
{
	bool found = false;
	int i;

	pthread_mutex_lock(&f->lock);
	if (f->n_requests < FAKE_REQUESTS_MAX)
		f->requests[f->n_requests++] = *rq;
	for (i = 0; i < f->n_answers && !found; i++) {
		struct fake_answer *a = &f->answers[i];

		if (!matches(a, rq) || (a->times > 0 && f->uses[i] >= a->times))
			continue;
		f->uses[i]++;
		*ret = *a;
		found = true;
	}
	pthread_mutex_unlock(&f->lock);
	return found;
}

static ssize_t read_cut(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct cut_body *c = cls;
	size_t n;

	if (pos >= c->cut)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	n = c->cut - pos < max ? c->cut - pos : max;
	memcpy(buf, c->data + pos, n);
	return (ssize_t)n;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **ctx)
{
	static int started;
	struct fake_registry *f = cls;
	struct fake_request rq = {0};
	struct fake_answer a;
	struct MHD_Response *resp;
	struct cut_body *cut;
	enum MHD_Result r;
	size_t len;
	int i;

	(void)version, (void)upload_data;
	if (!*ctx) { /* headers only so far */
		*ctx = &started;
		return MHD_YES;
	}
	if (*upload_data_size) { /* a POST body: not looked at */
		*upload_data_size = 0;
		return MHD_YES;
	}
	snprintf(rq.method, sizeof(rq.method), "%s", method);
	snprintf(rq.path, sizeof(rq.path), "%s", url);
	copy_header(rq.auth, sizeof(rq.auth), conn, MHD_HEADER_KIND, "Authorization");
	copy_header(rq.range, sizeof(rq.range), conn, MHD_HEADER_KIND, "Range");
	copy_header(rq.scope, sizeof(rq.scope), conn, MHD_GET_ARGUMENT_KIND, "scope");
	if (!pick(f, &rq, &a)) {
		a = (struct fake_answer){.status = 404};
	}
	len = a.body && !a.len ? strlen(a.body) : a.len;
	if (a.cut > 0 && a.cut < len) {
		cut = malloc(sizeof(*cut));
		if (!cut)
			return MHD_NO;
		*cut = (struct cut_body){.data = a.body, .cut = a.cut};
		resp = MHD_create_response_from_callback(len, 64 << 10, read_cut, cut, free);
	} else {
		resp = MHD_create_response_from_buffer(len, (void *)(a.body ? a.body : ""),
						       MHD_RESPMEM_PERSISTENT);
	}
	if (!resp)
		return MHD_NO;
	for (i = 0; i < FAKE_HEADERS_MAX && a.headers[i]; i++) {
		char name[128];
		const char *colon = strchr(a.headers[i], ':');

		if (!colon || (size_t)(colon - a.headers[i]) >= sizeof(name))
			continue;
		memcpy(name, a.headers[i], (size_t)(colon - a.headers[i]));
		name[colon - a.headers[i]] = '\0';
		MHD_add_response_header(resp, name, colon + 1 + strspn(colon + 1, " "));
	}
	r = MHD_queue_response(conn, (unsigned)a.status, resp);
	MHD_destroy_response(resp);
	return r;
}

struct fake_registry *fake_registry_start(void)
{
	struct sockaddr_in loopback = {.sin_family = AF_INET,
				       .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct fake_registry *f = calloc(1, sizeof(*f));
	const union MHD_DaemonInfo *info;

	if (!f)
		return NULL;
	pthread_mutex_init(&f->lock, NULL);
	f->daemon = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
		answer, f, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&loopback, MHD_OPTION_END);
	info = f->daemon ? MHD_get_daemon_info(f->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
	if (!info) {
		fake_registry_stop(f);
		return NULL;
	}
	f->port = info->port;
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u", f->port);
	return f;
}

void fake_registry_stop(struct fake_registry *f)
{
	if (!f)
		return;
	if (f->daemon)
		MHD_stop_daemon(f->daemon);
	for (int i = 0; i < f->n_answers; i++)
		free(f->bodies[i]);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

unsigned fake_registry_port(const struct fake_registry *f)
{
	return f->port;
}

const char *fake_registry_url(const struct fake_registry *f)
{
	return f->url;
}

int fake_registry_add(struct fake_registry *f, const struct fake_answer *a)
{
	size_t len = a->body && !a->len ? strlen(a->body) : a->len;
	void *body = NULL;
	int r = -1;

	/*
	 * A copy of the body, freed with the server: a connection thread may
	 * still be sending it after the test that gave it has freed its own.
	 */
	if (a->body && !(body = malloc(len + 1)))
		return -1;
	if (body) {
		memcpy(body, a->body, len);
		((char *)body)[len] =
			'\0'; /* an empty body stays one: answer() takes strlen of len 0 */
	}
	pthread_mutex_lock(&f->lock);
	if (f->n_answers < FAKE_ANSWERS_MAX) {
		f->uses[f->n_answers] = 0;
		f->bodies[f->n_answers] = body;
		f->answers[f->n_answers] = *a;
		if (body) {
			f->answers[f->n_answers].body = body;
			f->answers[f->n_answers].len = len;
		}
		f->n_answers++;
		r = 0;
	}
	pthread_mutex_unlock(&f->lock);
	if (r < 0)
		free(body);
	return r;
}

int fake_registry_count(struct fake_registry *f, const char *path)
{
	int i, n = 0;

	pthread_mutex_lock(&f->lock);
	for (i = 0; i < f->n_requests; i++)
		n += !path || strcmp(f->requests[i].path, path) == 0;
	pthread_mutex_unlock(&f->lock);
	return n;
}

int fake_registry_request(struct fake_registry *f, int i, struct fake_request *ret)
{
	int r = -1;

	pthread_mutex_lock(&f->lock);
	if (i >= 0 && i < f->n_requests) {
		*ret = f->requests[i];
		r = 0;
	}
	pthread_mutex_unlock(&f->lock);
	return r;
}
