/*
 * doctor_docker: the local dockerd (GET /info over its socket), whether it
 * pulls through a dindfs mirror on the loopback and whether that answers,
 * its storage driver, and whether its data root sits on overlayfs — where
 * overlay2 cannot put its layers, the classic way a nested dockerd breaks.
 */
#include "doctor.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>

#include "engine.h"

#define DEFAULT_DATA_ROOT "/var/lib/docker"
#define MIRROR_URL	  "http://127.0.0.1:5000"

/* The file systems worth naming (statfs f_type, linux/magic.h). */
static const struct {
	long magic;
	const char *name;
} fs_names[] = {
	{0x794c7630, "overlayfs"}, {0x61756673, "aufs"},  {0x01021994, "tmpfs"},
	{0xEF53, "ext4"},	   {0x58465342, "xfs"},	  {(long)0x9123683E, "btrfs"},
	{0x2fc12fc1, "zfs"},	   {0x65735546, "fuse"},  {0x6969, "nfs"},
	{0x73717368, "squashfs"},  {0x858458f6, "ramfs"},
};

static const char *fs_name(long magic, char *buf, size_t size)
{
	size_t i;

	for (i = 0; i < sizeof(fs_names) / sizeof(fs_names[0]); i++)
		if (fs_names[i].magic == magic)
			return fs_names[i].name;
	snprintf(buf, size, "file system 0x%lx", magic);
	return buf;
}

static const char *info_string(const struct doctor *d, const char *key)
{
	const char *s = json_string_value(json_object_get(d->info, key));

	return s ? s : "";
}

static void check_answers(struct doctor *d)
{
	char msg[512] = "";
	struct engine *e;
	int r = engine_open(d->host, &e);

	if (r == 0)
		r = engine_info(e, DOCTOR_TIMEOUT_MS / 1000, &d->info, msg, sizeof(msg));
	engine_close(e);
	if (r == 0) {
		doctor_say(d, DOCTOR_OK, "dockerd: Docker %s answers at %s",
			   info_string(d, "ServerVersion"), d->host);
		return;
	}
	if (r == -ENOENT)
		doctor_say(d, DOCTOR_FAIL, "dockerd: none at %s (no such socket)", d->host);
	else if (r == -ECONNREFUSED)
		doctor_say(d, DOCTOR_FAIL, "dockerd: none at %s (connection refused)", d->host);
	else
		doctor_say(d, DOCTOR_FAIL, "dockerd: %s", msg);
	if (d->at_daemon_level)
		doctor_fix(d, "start dockerd (systemctl start docker), or name yours with --host "
			      "unix:///path/to/docker.sock");
	else
		doctor_fix(d,
			   "start dockerd: the DinD image's entrypoint does (run it without "
			   "--entrypoint), or name yours with --host unix:///path/to/docker.sock");
}

/* Where dockerd keeps its layers: on overlayfs, nested overlay2 cannot work. */
static void check_data_root(struct doctor *d)
{
	const char *dir = *info_string(d, "DockerRootDir") ? info_string(d, "DockerRootDir")
							   : DEFAULT_DATA_ROOT;
	const char *driver = info_string(d, "Driver");
	char buf[64], at[4096];
	struct statfs st;

	if (*driver && strcmp(driver, "vfs") == 0) {
		doctor_say(d, DOCTOR_WARN,
			   "storage driver: vfs (every layer a full copy: slow "
			   "and large)");
		doctor_fix(d,
			   "put %s on a file system overlay2 can use (not overlayfs): "
			   "--tmpfs /var/lib/docker:exec or a volume",
			   dir);
	} else if (*driver) {
		doctor_say(d, DOCTOR_OK, "storage driver: %s", driver);
	}
	/* not made yet: dockerd will make it on the file system of its parent */
	snprintf(at, sizeof(at), "%s", dir);
	while (statfs(at, &st) < 0) {
		char *slash = strrchr(at, '/');

		if (errno != ENOENT || !slash || slash == at) {
			doctor_say(d, DOCTOR_WARN, "data root: cannot statfs %s: %s", at,
				   strerror(errno));
			return;
		}
		*slash = '\0';
	}
	if ((long)st.f_type == 0x794c7630 || (long)st.f_type == 0x61756673) {
		doctor_say(d, DOCTOR_FAIL,
			   "data root: %s is on %s: a nested dockerd cannot put overlay2 layers "
			   "there",
			   dir, fs_name((long)st.f_type, buf, sizeof(buf)));
		doctor_fix(d, "run this container with --tmpfs %s:exec or -v VOLUME:%s", dir, dir);
		return;
	}
	doctor_say(d, DOCTOR_OK, "data root: %s is on %s", dir,
		   fs_name((long)st.f_type, buf, sizeof(buf)));
}

static bool is_loopback_url(const char *url)
{
	static const char *const prefixes[] = {"http://127.", "http://localhost", "http://[::1]"};
	size_t i;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(url, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

static size_t discard(char *data, size_t size, size_t n, void *ctx)
{
	(void)data;
	(void)ctx;
	return size * n;
}

/* GET <url>/v2/: the HTTP status, or 0 with why in err. */
static long get_v2(const char *url, char *err, size_t err_size)
{
	char full[1024], curl_err[CURL_ERROR_SIZE] = "";
	size_t len = strlen(url);
	CURL *curl = curl_easy_init();
	long status = 0;

	if (!curl) {
		snprintf(err, err_size, "out of memory");
		return 0;
	}
	snprintf(full, sizeof(full), "%.*s/v2/", (int)(len && url[len - 1] == '/' ? len - 1 : len),
		 url);
	curl_easy_setopt(curl, CURLOPT_URL, full);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)DOCTOR_TIMEOUT_MS);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
	if (curl_easy_perform(curl) == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	else
		snprintf(err, err_size, "%s", curl_err);
	curl_easy_cleanup(curl);
	return status;
}

static void check_mirror(struct doctor *d)
{
	json_t *mirrors = json_object_get(json_object_get(d->info, "RegistryConfig"), "Mirrors");
	const char *url = NULL;
	char err[CURL_ERROR_SIZE] = "";
	json_t *m;
	size_t i, len;
	long status;

	json_array_foreach(mirrors, i, m)
	{
		if (json_is_string(m) && is_loopback_url(json_string_value(m))) {
			url = json_string_value(m);
			break;
		}
	}
	if (!url && d->at_daemon_level) {
		doctor_say(d, DOCTOR_INFO,
			   "mirror: dockerd pulls from registries itself (at the host that is "
			   "fine; a dindfs mirror would send its pulls through the cache too)");
		return;
	}
	if (!url) {
		doctor_say(d, DOCTOR_WARN,
			   "mirror: dockerd uses no dindfs mirror: its pulls bypass the cache "
			   "and need the network");
		doctor_fix(
			d,
			"run dindfs mirror --root %s in the background, put \"registry-mirrors\": "
			"[\"" MIRROR_URL "\"] in /etc/docker/daemon.json and restart dockerd (the "
			"DinD entrypoint does this when %s is mounted)",
			d->root, d->root);
		return;
	}
	status = get_v2(url, err, sizeof(err));
	if (status == 200) {
		doctor_say(d, DOCTOR_OK, "mirror: dockerd pulls through %s, which answers", url);
		return;
	}
	if (status)
		snprintf(err, sizeof(err), "HTTP %ld", status);
	doctor_say(d, DOCTOR_FAIL, "mirror: dockerd pulls through %s, which does not answer (%s)",
		   url, err);
	/* "http://127.0.0.1:5000/" listens on 127.0.0.1:5000 */
	len = strcspn(url + strlen("http://"), "/");
	doctor_fix(d, "start it: dindfs mirror --root %s --listen %.*s &", d->root, (int)len,
		   url + strlen("http://"));
}

void doctor_check_dockerd(struct doctor *d)
{
	check_answers(d);
	check_data_root(d);
	if (d->info)
		check_mirror(d);
}
