/*
 * mirror_guard: the mirror's bounds on idle and slow connections.
 *
 * Every connection is in one phase, and each phase but one has a time limit
 * after which the guard shuts the connection's socket (the server then
 * closes it):
 *
 *   HEADERS   accepted (TLS handshake included), request line and headers
 *             not all in yet                          MIRROR_HEADER_SECONDS
 *   ANSWER    a response being sent; the time since the client last took a
 *             block of the body                       MIRROR_STALL_SECONDS
 *             (MIRROR_IDLE_SECONDS once it has taken every byte sent)
 *   UPSTREAM  a look-up or read of the mount is under way (the host daemon
 *             may be fetching; it has its own deadlines)          no limit
 *   IDLE      a kept-alive connection between requests  MIRROR_IDLE_SECONDS
 *
 * When a connection arrives while MIRROR_BUSY_CONNECTIONS are open, the
 * oldest one in HEADERS or IDLE is shut at once, so idle connections never
 * keep a real request out; the server's hard limit (MIRROR_MAX_CONNECTIONS)
 * then only counts connections that are answering.
 *
 * The guard's thread checks the limits once a second. All functions are
 * safe to call from any of the server's threads.
 */
#ifndef DINDFS_MIRROR_GUARD_H
#define DINDFS_MIRROR_GUARD_H

#include <microhttpd.h>

#define MIRROR_HEADER_SECONDS	10
#define MIRROR_STALL_SECONDS	30
#define MIRROR_IDLE_SECONDS	10
#define MIRROR_BUSY_CONNECTIONS 256
#define MIRROR_MAX_CONNECTIONS	512

enum mirror_phase {
	MIRROR_PHASE_HEADERS,
	MIRROR_PHASE_ANSWER,
	MIRROR_PHASE_UPSTREAM,
	MIRROR_PHASE_IDLE,
};

struct mirror_guard;

/* Start the guard's thread. Returns 0 or -errno. */
int mirror_guard_new(struct mirror_guard **ret);
/* Stop its thread; call after every server using it has stopped. Accepts NULL. */
void mirror_guard_free(struct mirror_guard *g);

/* The server's MHD_OPTION_NOTIFY_CONNECTION callback; cls is the guard. */
void mirror_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
			 enum MHD_ConnectionNotificationCode code);
/* conn (one of the guard's) enters phase, its clock restarting. */
void mirror_guard_enter(struct mirror_guard *g, struct MHD_Connection *conn,
			enum mirror_phase phase);

#endif
