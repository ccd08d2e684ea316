/*
 * doctor: what `dindfs doctor` checks, and how each check reports.
 *
 * Each check prints one line with a mark — ok, info, warn or FAIL — and,
 * for a problem, the fix on the line below. Checks run in the order of
 * cmd_doctor.c; later ones use what earlier ones learned (the level, the
 * mount's answer, dockerd's /info), kept in struct doctor.
 */
#ifndef DINDFS_DOCTOR_H
#define DINDFS_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

enum doctor_mark {
	DOCTOR_OK,
	DOCTOR_INFO, /* worth knowing, nothing to fix */
	DOCTOR_WARN, /* works, but not as well as it could */
	DOCTOR_FAIL, /* broken: doctor exits 1 */
	DOCTOR_N_MARKS,
};

/* How long the mount, dockerd and a registry may take to answer. */
#define DOCTOR_TIMEOUT_MS 5000

struct doctor {
	const char *root; /* the mount, as --root names it */
	const char *host; /* dockerd, unix://... */
	int counts[DOCTOR_N_MARKS];

	/* doctor_probe_mount */
	bool mounted;	      /* root is a mount point (mountinfo) */
	char fstype[64];      /* its type there, "fuse.dindfs" for ours */
	int mount_error;      /* reading .dindfs/stats: 0, or -errno (-ETIMEDOUT: hung) */
	json_t *stats;	      /* the counters when it answered */
	int depth;	      /* pid namespaces below the daemon's (whoami); -1: unknown */
	bool outside_daemon;  /* whoami: the daemon cannot see our pid namespace */
	char hints[256];      /* signs of a container: "/.dockerenv, cgroup ..." */
	bool at_daemon_level; /* the level where the dindfs daemon runs (or would): the host */

	/* doctor_check_dockerd */
	json_t *info; /* dockerd's GET /info, when it answered */
};

/* Print a check's line; fmt says what was found. */
void doctor_say(struct doctor *d, enum doctor_mark mark, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The fix of the problem just said, on the next line. */
void doctor_fix(struct doctor *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* doctor_mount.c: the level, the mount, the workspace, the upstream registries. */
void doctor_probe_mount(struct doctor *d);
void doctor_check_where(struct doctor *d);
void doctor_check_mount(struct doctor *d);
void doctor_check_upstreams(struct doctor *d);

/* doctor_docker.c: the local dockerd, its mirror, where it keeps its layers. */
void doctor_check_dockerd(struct doctor *d);

/* doctor_layers.c: whether this level uses the shared layers (dindfs snapshotter). */
void doctor_check_layers(struct doctor *d);

/* doctor_system.c: cgroups, capabilities, /dev/fuse, seccomp, AppArmor. */
void doctor_check_cgroup(struct doctor *d);
void doctor_check_security(struct doctor *d);

/*
 * doctor_route.c: in a level, for dockerd, containerd and podman/skopeo,
 * which registries the host serves go through the mirror, which go direct
 * and why.
 */
void doctor_check_routes(struct doctor *d);

#endif
