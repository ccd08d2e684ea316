/*
 * doctor_layers: whether this level uses the shared layers (README,
 * "Shared layers"): dockerd's storage driver is dindfs snapshotter on the
 * containerd image store, that snapshotter answers on its socket, and how
 * many blobs of containerd's content store are links to the host's store
 * (a shared layer's blob, no copy) rather than files of their own, and
 * how many layers the kernel reads from their EROFS images (the host's
 * mounts over ROOT/layers/sha256:<d>, or the level's of
 * ROOT/layers/sha256:<d>.erofs) instead of through FUSE.
 */
#include "doctor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mntent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "snapshotter_rpc.h"

#define SNAPSHOTTER_DRIVER_TYPE "io.containerd.snapshotter.v1"
/* where dind-entrypoint keeps containerd's content store, under the data root */
#define CONTENT_BLOBS "containerd/io.containerd.content.v1.content/blobs/sha256"

static const char *info_string(const struct doctor *d, const char *key)
{
	const char *s = json_string_value(json_object_get(d->info, key));

	return s ? s : "";
}

/* dockerd 26.1's /info: DriverStatus [["driver-type", "io.containerd.snapshotter.v1"]] */
static bool containerd_store(const struct doctor *d)
{
	json_t *pair;
	size_t i;

	json_array_foreach(json_object_get(d->info, "DriverStatus"), i, pair)
	{
		const char *k = json_string_value(json_array_get(pair, 0));
		const char *v = json_string_value(json_array_get(pair, 1));

		if (k && v && !strcmp(k, "driver-type") && !strcmp(v, SNAPSHOTTER_DRIVER_TYPE))
			return true;
	}
	return false;
}

static void check_socket(struct doctor *d)
{
	int r = snap_grpc_probe(SNAP_RPC_DEFAULT_SOCKET, DOCTOR_TIMEOUT_MS);

	if (r == 0) {
		doctor_say(d, DOCTOR_OK, "snapshotter: dindfs snapshotter answers at %s",
			   SNAP_RPC_DEFAULT_SOCKET);
		return;
	}
	doctor_say(d, DOCTOR_FAIL, "snapshotter: %s at %s: pulls and container starts fail",
		   r == -ENOENT		? "no socket"
		   : r == -ECONNREFUSED ? "nothing listens"
		   : r == -ETIMEDOUT	? "no answer in 5 s"
		   : r == -EPROTO	? "something other than a snapshotter answers"
					: strerror(-r),
		   SNAP_RPC_DEFAULT_SOCKET);
	doctor_fix(d, "restart this level: its entrypoint starts dindfs snapshotter (why it "
		      "stopped: /var/log/dindfs-snapshotter.log)");
}

/* Blobs in containerd's content store, and those that are links into ROOT/blobs/. */
static void check_links(struct doctor *d)
{
	const char *data_root = *info_string(d, "DockerRootDir") ? info_string(d, "DockerRootDir")
								 : "/var/lib/docker";
	char dir[PATH_MAX], prefix[PATH_MAX], target[PATH_MAX];
	unsigned long blobs = 0, links = 0;
	struct dirent *e;
	DIR *dp;

	snprintf(dir, sizeof(dir), "%s/" CONTENT_BLOBS, data_root);
	snprintf(prefix, sizeof(prefix), "%s/blobs/sha256/", d->root);
	dp = opendir(dir);
	if (!dp && errno != ENOENT) {
		doctor_say(d, DOCTOR_WARN, "layer blobs: cannot read %s: %s", dir, strerror(errno));
		return;
	}
	while (dp && (e = readdir(dp))) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		blobs++;
		n = readlinkat(dirfd(dp), e->d_name, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			links += strncmp(target, prefix, strlen(prefix)) == 0;
		}
	}
	if (dp)
		closedir(dp);
	if (blobs == 0)
		doctor_say(d, DOCTOR_INFO, "layer blobs: none in containerd's content store yet");
	else
		doctor_say(d, DOCTOR_OK,
			   "layer blobs: %lu of the %lu blobs in containerd's content store are "
			   "links to the host's store (no copy)",
			   links, blobs);
}

/*
 * EROFS mounts of the layers' images: the host's, over its trees (shared,
 * seen here through the bind of the mount), and this level's snapshotter's
 * of ROOT/layers/sha256:<d>.erofs, for containers' lower dirs.
 */
static void check_images(struct doctor *d)
{
	char prefix[PATH_MAX];
	unsigned long shared = 0, own = 0;
	struct mntent *m;
	FILE *f = setmntent("/proc/self/mounts", "r");

	if (!f)
		return;
	snprintf(prefix, sizeof(prefix), "%s/layers/", d->root);
	while ((m = getmntent(f))) {
		if (strcmp(m->mnt_type, "erofs") != 0)
			continue;
		if (strncmp(m->mnt_dir, prefix, strlen(prefix)) == 0)
			shared++;
		else if (strncmp(m->mnt_fsname, prefix, strlen(prefix)) == 0)
			own++;
	}
	endmntent(f);
	if (shared)
		doctor_say(d, DOCTOR_OK,
			   "layer images: %lu shared by the host (its EROFS mounts over the layer "
			   "trees: one page cache for every level), %lu mounted here",
			   shared, own);
	else if (own)
		doctor_say(d, DOCTOR_OK,
			   "layer images: %lu EROFS images of the host's layers mounted (the "
			   "kernel reads them, not the daemon file by file)",
			   own);
	else
		doctor_say(d, DOCTOR_INFO,
			   "layer images: none mounted (containers read the layer trees through "
			   "the mount; the snapshotter's log says why when an image failed)");
}

void doctor_check_layers(struct doctor *d)
{
	const char *driver = info_string(d, "Driver");

	if (!d->info || !*driver)
		return;
	if (strcmp(driver, "dindfs") != 0) {
		if (containerd_store(d))
			doctor_say(d, DOCTOR_INFO,
				   "shared layers: no (the containerd image store with the %s "
				   "snapshotter: the DinD entrypoint uses dindfs snapshotter when "
				   "%s/layers exists and DINDFS_SNAPSHOTTER is not off)",
				   driver, d->root);
		else
			doctor_say(d, DOCTOR_INFO,
				   "shared layers: no (they need dockerd 26.1 or later with the "
				   "containerd image store, and the mount's layers/)");
		return;
	}
	/* dind-entrypoint makes dindfs snapshotter the storage driver */
	doctor_say(d, DOCTOR_OK,
		   "shared layers: yes (the host's unpacked layers, through "
		   "dindfs snapshotter: nothing to download or unpack)");
	check_socket(d);
	check_links(d);
	check_images(d);
}
