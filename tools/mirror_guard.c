/*
 * mirror_guard: time limits per connection phase, and room for new
 * connections made by shutting idle ones (see mirror_guard.h).
 *
 * An answer whose every byte the client has taken (nothing left in the
 * socket's send queue) counts as idle: libmicrohttpd may only call its
 * NOTIFY_COMPLETED at the connection's next event.
 *
 * A connection is shut with shutdown(2), never closed here: the server
 * closes its socket only after its NOTIFY_CLOSED callback has taken the
 * connection off the list under the lock, so the descriptor the guard
 * shuts is always still that connection's.
 */
#include "mirror_guard.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

struct guarded {
	struct guarded *prev, *next;
	int fd;
	enum mirror_phase phase;
	struct timespec since; /* CLOCK_MONOTONIC, when the phase began */
	bool shut;
};

struct mirror_guard {
	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t wake;
	struct guarded *head;
	unsigned count;
	bool stopping;
	pthread_t thread;
};

static double seconds_since(const struct timespec *t, const struct timespec *now)
{
	return (double)(now->tv_sec - t->tv_sec) + (double)(now->tv_nsec - t->tv_nsec) / 1e9;
}

/* The limit of a phase in seconds, 0 for none. */
static int phase_limit(enum mirror_phase phase)
{
	switch (phase) {
	case MIRROR_PHASE_HEADERS:
		return MIRROR_HEADER_SECONDS;
	case MIRROR_PHASE_ANSWER:
		return MIRROR_STALL_SECONDS;
	case MIRROR_PHASE_IDLE:
		return MIRROR_IDLE_SECONDS;
	case MIRROR_PHASE_UPSTREAM:
		break;
	}
	return 0;
}

/* Called with the lock held. */
static void shut(struct guarded *c)
{
	if (c->shut)
		return;
	shutdown(c->fd, SHUT_RDWR);
	c->shut = true;
}

static void *guard_main(void *cls)
{
	struct mirror_guard *g = cls;
	struct timespec now, until;

	pthread_mutex_lock(&g->lock);
	while (!g->stopping) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		for (struct guarded *c = g->head; c; c = c->next) {
			int limit = phase_limit(c->phase), queued = 1;

			if (c->phase == MIRROR_PHASE_ANSWER &&
			    ioctl(c->fd, SIOCOUTQ, &queued) == 0 && queued == 0)
				limit = MIRROR_IDLE_SECONDS;
			if (limit && seconds_since(&c->since, &now) >= limit)
				shut(c);
		}
		until = now;
		until.tv_sec += 1;
		pthread_cond_timedwait(&g->wake, &g->lock, &until);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

int mirror_guard_new(struct mirror_guard **ret)
{
	struct mirror_guard *g = calloc(1, sizeof(*g));
	pthread_condattr_t attr;
	int r;

	if (!g)
		return -ENOMEM;
	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&g->wake, &attr);
	pthread_condattr_destroy(&attr);
	r = pthread_create(&g->thread, NULL, guard_main, g);
	if (r) {
		pthread_cond_destroy(&g->wake);
		pthread_mutex_destroy(&g->lock);
		free(g);
		return -r;
	}
	*ret = g;
	return 0;
}

void mirror_guard_free(struct mirror_guard *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->stopping = true;
	pthread_cond_signal(&g->wake);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->thread, NULL);
	/* the servers have stopped: every connection's NOTIFY_CLOSED has run */
	pthread_cond_destroy(&g->wake);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

/* The oldest connection that is waiting for a request, or NULL. Lock held. */
static struct guarded *oldest_idle(struct mirror_guard *g)
{
	struct guarded *oldest = NULL;

	for (struct guarded *c = g->head; c; c = c->next) {
		if (c->shut || (c->phase != MIRROR_PHASE_HEADERS && c->phase != MIRROR_PHASE_IDLE))
			continue;
		if (!oldest || c->since.tv_sec < oldest->since.tv_sec ||
		    (c->since.tv_sec == oldest->since.tv_sec &&
		     c->since.tv_nsec < oldest->since.tv_nsec))
			oldest = c;
	}
	return oldest;
}

void mirror_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
			 enum MHD_ConnectionNotificationCode code)
{
	struct mirror_guard *g = cls;
	struct guarded *c = *socket_context;
	const union MHD_ConnectionInfo *info;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		c = calloc(1, sizeof(*c));
		if (!c || !info) {
			/* unguarded is not an option: refuse this connection */
			if (info)
				shutdown(info->connect_fd, SHUT_RDWR);
			free(c);
			return;
		}
		c->fd = info->connect_fd;
		c->phase = MIRROR_PHASE_HEADERS;
		clock_gettime(CLOCK_MONOTONIC, &c->since);
		pthread_mutex_lock(&g->lock);
		if (g->count >= MIRROR_BUSY_CONNECTIONS) {
			struct guarded *idle = oldest_idle(g);

			if (idle)
				shut(idle);
		}
		c->next = g->head;
		if (g->head)
			g->head->prev = c;
		g->head = c;
		g->count++;
		pthread_mutex_unlock(&g->lock);
		*socket_context = c;
		return;
	}
	if (!c)
		return;
	pthread_mutex_lock(&g->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		g->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	g->count--;
	pthread_mutex_unlock(&g->lock);
	free(c);
	*socket_context = NULL;
}

void mirror_guard_enter(struct mirror_guard *g, struct MHD_Connection *conn,
			enum mirror_phase phase)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct guarded *c = info ? info->socket_context : NULL;

	if (!c)
		return;
	pthread_mutex_lock(&g->lock);
	c->phase = phase;
	clock_gettime(CLOCK_MONOTONIC, &c->since);
	pthread_mutex_unlock(&g->lock);
}
