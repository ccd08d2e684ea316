/*
 * engine: Docker Engine API calls over a unix socket (see engine.h).
 *
 * A load streams: a producer thread writes the archive into a pipe while
 * curl sends what comes out of it as a chunked request body, so an image
 * never has to sit whole in memory or on disk.
 */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#define SOCKET_PREFIX "unix://"
#define REPLY_MAX     (64u << 10)

struct engine {
	char socket[512];
};

struct reply {
	char data[REPLY_MAX + 1];
	size_t len;
	int out_fd; /* where a save's body goes; -1: into data */
	int error;
};

static void say(char *msg, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *msg, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, size, fmt, ap);
	va_end(ap);
}

int engine_open(const char *host, struct engine **ret)
{
	struct engine *e;

	if (strncmp(host, SOCKET_PREFIX, strlen(SOCKET_PREFIX)) != 0 ||
	    strlen(host) - strlen(SOCKET_PREFIX) >= sizeof(e->socket))
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	snprintf(e->socket, sizeof(e->socket), "%s", host + strlen(SOCKET_PREFIX));
	*ret = e;
	return 0;
}

void engine_close(struct engine *e)
{
	free(e);
}

static size_t on_reply(char *data, size_t size, size_t n, void *ctx)
{
	struct reply *r = ctx;
	size_t len = size * n, room = REPLY_MAX - r->len;
	long status = 0;

	(void)status;
	if (r->out_fd >= 0) {
		const char *p = data;
		size_t left = len;

		while (left > 0) {
			ssize_t k = write(r->out_fd, p, left);

			if (k < 0) {
				if (errno == EINTR)
					continue;
				r->error = -errno;
				return 0;
			}
			p += k;
			left -= (size_t)k;
		}
		return len;
	}
	if (len > room)
		len = room; /* keep the start: where an error is said */
	memcpy(r->data + r->len, data, len);
	r->len += len;
	r->data[r->len] = '\0';
	return size * n;
}

/* dockerd's own words from an error reply ({"message": ...}), or the status. */
static void reply_message(const struct reply *r, long status, char *msg, size_t size)
{
	json_t *doc = json_loadb(r->data, r->len, 0, NULL);
	const char *text = doc ? json_string_value(json_object_get(doc, "message")) : NULL;

	if (text)
		say(msg, size, "dockerd: %s", text);
	else
		say(msg, size, "dockerd answered HTTP %ld", status);
	json_decref(doc);
}

static CURL *request(struct engine *e, const char *path, struct reply *r)
{
	char url[1024];
	CURL *curl = curl_easy_init();

	if (!curl)
		return NULL;
	snprintf(url, sizeof(url), "http://localhost%s", path);
	curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, e->socket);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_reply);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
	return curl;
}

/* Run a request; 0 for a 2xx, else -errno with msg. */
static int perform(CURL *curl, struct reply *r, const char *socket, char *msg, size_t size)
{
	CURLcode rc = curl_easy_perform(curl);
	long status = 0;

	if (r->error) {
		say(msg, size, "cannot write the image: %s", strerror(-r->error));
		return r->error;
	}
	if (rc != CURLE_OK) {
		say(msg, size, "cannot talk to dockerd at %s: %s", socket, curl_easy_strerror(rc));
		return rc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : -EIO;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (status / 100 != 2) {
		reply_message(r, status, msg, size);
		return status == 404 ? -ENOENT : -EIO;
	}
	return 0;
}

struct producer {
	engine_produce_fn produce;
	void *ctx;
	int fd;
	int result;
};

static void *run_producer(void *arg)
{
	struct producer *p = arg;

	p->result = p->produce(p->fd, p->ctx);
	close(p->fd); /* the end of the archive, or a cut that dockerd will notice */
	return NULL;
}

static size_t read_pipe(char *buf, size_t size, size_t n, void *ctx)
{
	int fd = *(int *)ctx;
	ssize_t k;

	do
		k = read(fd, buf, size * n);
	while (k < 0 && errno == EINTR);
	return k < 0 ? CURL_READFUNC_ABORT : (size_t)k;
}

/* A load's reply is a stream of JSON lines; an "error" in one is a failure. */
static int load_result(const struct reply *r, char *msg, size_t size)
{
	const char *line = r->data;

	while (line && *line) {
		const char *end = strchr(line, '\n');
		json_t *doc = json_loadb(line, end ? (size_t)(end - line) : strlen(line), 0, NULL);
		const char *error = doc ? json_string_value(json_object_get(doc, "error")) : NULL;

		if (error) {
			say(msg, size, "dockerd: %s", error);
			json_decref(doc);
			return -EIO;
		}
		json_decref(doc);
		line = end ? end + 1 : NULL;
	}
	return 0;
}

int engine_load(struct engine *e, engine_produce_fn produce, void *ctx, char *msg, size_t msg_size)
{
	struct producer p = {.produce = produce, .ctx = ctx};
	struct curl_slist *headers = NULL;
	struct reply *r = calloc(1, sizeof(*r));
	pthread_t thread;
	int fds[2], r_ = 0;
	CURL *curl;

	if (!r)
		return -ENOMEM;
	r->out_fd = -1;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		free(r);
		return -errno;
	}
	p.fd = fds[1];
	curl = request(e, "/images/load?quiet=1", r);
	headers = curl_slist_append(headers, "Content-Type: application/x-tar");
	headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
	if (!curl || !headers || pthread_create(&thread, NULL, run_producer, &p) != 0) {
		close(fds[1]);
		r_ = -ENOMEM;
		goto out;
	}
	curl_easy_setopt(curl, CURLOPT_POST, 1L);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_pipe);
	curl_easy_setopt(curl, CURLOPT_READDATA, &fds[0]);
	r_ = perform(curl, r, e->socket, msg, msg_size);
	close(fds[0]); /* a producer still writing gets EPIPE and stops */
	fds[0] = -1;
	pthread_join(thread, NULL);
	if (p.result < 0) {
		say(msg, msg_size, "cannot build the image archive: %s", strerror(-p.result));
		r_ = p.result;
	} else if (r_ == 0) {
		r_ = load_result(r, msg, msg_size);
	}
out:
	if (fds[0] >= 0)
		close(fds[0]);
	curl_slist_free_all(headers);
	if (curl)
		curl_easy_cleanup(curl);
	free(r);
	return r_;
}

int engine_save(struct engine *e, const char *name, int out_fd, char *msg, size_t msg_size)
{
	struct reply *r = calloc(1, sizeof(*r));
	char path[1024], *escaped;
	CURL *curl;
	int rc = -ENOMEM;

	if (!r)
		return -ENOMEM;
	r->out_fd = -1;
	curl = request(e, "/", r);
	escaped = curl ? curl_easy_escape(curl, name, 0) : NULL;
	if (escaped) {
		snprintf(path, sizeof(path), "http://localhost/images/get?names=%s", escaped);
		curl_easy_setopt(curl, CURLOPT_URL, path);
		/* the body goes to out_fd only once the status says it is an archive */
		curl_easy_setopt(curl, CURLOPT_FAILONERROR, 0L);
		r->out_fd = out_fd;
		rc = perform(curl, r, e->socket, msg, msg_size);
		if (rc == -ENOENT || rc == -EIO) {
			/* the error body went to out_fd: read it back for the message */
			ssize_t n = pread(out_fd, r->data, REPLY_MAX, 0);

			r->len = n > 0 ? (size_t)n : 0;
			r->data[r->len] = '\0';
			reply_message(r, rc == -ENOENT ? 404 : 500, msg, msg_size);
		}
		curl_free(escaped);
	}
	if (curl)
		curl_easy_cleanup(curl);
	free(r);
	return rc;
}

int engine_info(struct engine *e, long timeout_s, json_t **ret, char *msg, size_t msg_size)
{
	struct reply *r = calloc(1, sizeof(*r));
	CURL *curl;
	json_t *doc;
	int rc = -ENOMEM;

	if (!r)
		return -ENOMEM;
	r->out_fd = -1;
	curl = request(e, "/info", r);
	if (curl) {
		curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_s);
		rc = perform(curl, r, e->socket, msg, msg_size);
	}
	if (rc == -ECONNREFUSED && access(e->socket, F_OK) < 0)
		rc = -errno;
	if (rc == 0) {
		doc = json_loadb(r->data, r->len, 0, NULL);
		if (json_is_object(doc)) {
			*ret = doc;
		} else {
			json_decref(doc);
			say(msg, msg_size, "dockerd's /info is not a JSON object");
			rc = -EBADMSG;
		}
	}
	if (curl)
		curl_easy_cleanup(curl);
	free(r);
	return rc;
}
