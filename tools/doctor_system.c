/*
 * doctor_system: what the kernel lets this level do — the cgroup version
 * and whether nesting is set up, the capabilities compared to
 * --privileged, /dev/fuse, seccomp and AppArmor.
 */
#include "doctor.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <unistd.h>

#define CGROUP_ROOT	    "/sys/fs/cgroup"
#define CGROUP2_MAGIC	    0x63677270
#define PRIVILEGED_OR_FLAGS "--privileged, or the explicit set of the README (--cap-add ALL ...)"

/* One line of a small file, without its newline; "" when unreadable. */
static void read_line(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");

	buf[0] = '\0';
	if (!f)
		return;
	if (!fgets(buf, (int)size, f))
		buf[0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

/* The value of a "Key:\tvalue" line of /proc/self/status; "" when absent. */
static void status_field(const char *key, char *buf, size_t size)
{
	char line[512];
	size_t len = strlen(key);
	FILE *f = fopen("/proc/self/status", "re");

	buf[0] = '\0';
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, len) == 0 && line[len] == ':') {
			snprintf(buf, size, "%s", line + len + 1 + strspn(line + len + 1, " \t"));
			buf[strcspn(buf, "\n")] = '\0';
			break;
		}
	}
	fclose(f);
}

static bool is_read_only(const char *path)
{
	struct statvfs st;

	return statvfs(path, &st) == 0 && (st.f_flag & ST_RDONLY);
}

/* cgroup v2 in a container: did the entrypoint hand the controllers down? */
static void check_v2_nesting(struct doctor *d)
{
	char self[512] = "", enabled[512];
	FILE *f = fopen("/proc/self/cgroup", "re");

	if (f) {
		while (fgets(self, sizeof(self), f) && strncmp(self, "0::", 3) != 0)
			;
		fclose(f);
	}
	self[strcspn(self, "\n")] = '\0';
	read_line(CGROUP_ROOT "/cgroup.subtree_control", enabled, sizeof(enabled));
	/* in a cgroup namespace of our own we sit at its root, or in the entrypoint's /init */
	if (strcmp(self, "0::/") != 0 && strcmp(self, "0::/init") != 0) {
		doctor_say(d, DOCTOR_WARN,
			   "cgroup v2, the host's cgroup namespace (%s): nested containers are "
			   "grouped beside this one, outside its limits",
			   self + 3);
		doctor_fix(d, "run with --cgroupns private (the default with --privileged)");
	} else if (!*enabled) {
		doctor_say(d, DOCTOR_FAIL,
			   "cgroup v2 nesting is not set up: no controller is handed down "
			   "(" CGROUP_ROOT "/cgroup.subtree_control is empty)");
		doctor_fix(
			d,
			"start through the DinD entrypoint, or do what it does: mkdir " CGROUP_ROOT
			"/init, move every pid of cgroup.procs into it, and write "
			"+CONTROLLER for each of cgroup.controllers into cgroup.subtree_control");
	} else {
		doctor_say(d, DOCTOR_OK, "cgroup v2, nesting set up (controllers handed down: %s)",
			   enabled);
	}
}

void doctor_check_cgroup(struct doctor *d)
{
	struct statfs st;
	const char *writable_dir = CGROUP_ROOT;
	bool v2;

	if (statfs(CGROUP_ROOT, &st) < 0) {
		doctor_say(d, DOCTOR_FAIL, "cgroup: no " CGROUP_ROOT " (%s)", strerror(errno));
		doctor_fix(d, "mount the cgroup file system there (or run with %s)",
			   PRIVILEGED_OR_FLAGS);
		return;
	}
	v2 = (long)st.f_type == CGROUP2_MAGIC;
	if (!v2)
		writable_dir = CGROUP_ROOT "/memory"; /* v1: a controller's own hierarchy */
	if (is_read_only(writable_dir)) {
		doctor_say(d, DOCTOR_FAIL,
			   "cgroup v%d: %s is read-only: a nested dockerd cannot "
			   "make groups",
			   v2 ? 2 : 1, writable_dir);
		doctor_fix(d, "run with --privileged, or --cgroupns host -v "
			      "/sys/fs/cgroup:/sys/fs/cgroup:rw");
		return;
	}
	if (!v2) {
		doctor_say(d, DOCTOR_OK, "cgroup v1%s: nesting needs nothing set up",
			   access(CGROUP_ROOT "/unified/cgroup.procs", F_OK) == 0 ? " (hybrid)"
										  : "");
		return;
	}
	if (d->at_daemon_level)
		doctor_say(d, DOCTOR_OK, "cgroup v2");
	else
		check_v2_nesting(d);
}

/* ---- capabilities ---------------------------------------------------------- */

/* linux/capability.h, by bit. */
static const char *const cap_names[] = {
	"CHOWN",
	"DAC_OVERRIDE",
	"DAC_READ_SEARCH",
	"FOWNER",
	"FSETID",
	"KILL",
	"SETGID",
	"SETUID",
	"SETPCAP",
	"LINUX_IMMUTABLE",
	"NET_BIND_SERVICE",
	"NET_BROADCAST",
	"NET_ADMIN",
	"NET_RAW",
	"IPC_LOCK",
	"IPC_OWNER",
	"SYS_MODULE",
	"SYS_RAWIO",
	"SYS_CHROOT",
	"SYS_PTRACE",
	"SYS_PACCT",
	"SYS_ADMIN",
	"SYS_BOOT",
	"SYS_NICE",
	"SYS_RESOURCE",
	"SYS_TIME",
	"SYS_TTY_CONFIG",
	"MKNOD",
	"LEASE",
	"AUDIT_WRITE",
	"AUDIT_CONTROL",
	"SETFCAP",
	"MAC_OVERRIDE",
	"MAC_ADMIN",
	"SYSLOG",
	"WAKE_ALARM",
	"BLOCK_SUSPEND",
	"AUDIT_READ",
	"PERFMON",
	"BPF",
	"CHECKPOINT_RESTORE",
};

#define N_CAP_NAMES ((int)(sizeof(cap_names) / sizeof(cap_names[0])))

/*
 * What a nested dockerd needs: SYS_ADMIN (mounts, namespaces), NET_ADMIN
 * (networks), and the set dockerd gives its own containers by default,
 * which it cannot hand on unless it has them.
 */
static const int needed_caps[] = {0, 1, 3, 4, 5, 6, 7, 8, 10, 12, 13, 18, 21, 27, 29, 31};

static bool is_needed(int cap)
{
	size_t i;

	for (i = 0; i < sizeof(needed_caps) / sizeof(needed_caps[0]); i++)
		if (needed_caps[i] == cap)
			return true;
	return false;
}

/* Append the name of cap to a ", "-separated list. */
static void add_name(char *list, size_t size, int cap)
{
	size_t len = strlen(list);

	if (cap < N_CAP_NAMES)
		snprintf(list + len, size - len, "%s%s", len ? ", " : "", cap_names[cap]);
	else
		snprintf(list + len, size - len, "%scap %d", len ? ", " : "", cap);
}

static void check_caps(struct doctor *d)
{
	char bounding[64], last_text[16], needed[1024] = "", others[1024] = "";
	int last, cap, n_missing = 0;
	uint64_t set;

	status_field("CapBnd", bounding, sizeof(bounding));
	read_line("/proc/sys/kernel/cap_last_cap", last_text, sizeof(last_text));
	last = (int)strtol(last_text, NULL, 10);
	if (!*bounding || last <= 0 || last > 63) {
		doctor_say(d, DOCTOR_WARN, "capabilities: cannot read CapBnd or cap_last_cap");
		return;
	}
	set = strtoull(bounding, NULL, 16);
	for (cap = 0; cap <= last; cap++) {
		if (set & (UINT64_C(1) << cap))
			continue;
		n_missing++;
		if (is_needed(cap))
			add_name(needed, sizeof(needed), cap);
		else
			add_name(others, sizeof(others), cap);
	}
	if (!n_missing)
		doctor_say(d, DOCTOR_OK, "capabilities: all %d that --privileged gives", last + 1);
	if (*needed) {
		doctor_say(d, DOCTOR_FAIL, "capabilities: %s missing, which a nested dockerd needs",
			   needed);
		doctor_fix(d, "run with %s", PRIVILEGED_OR_FLAGS);
	}
	if (*others)
		doctor_say(d, DOCTOR_INFO,
			   "capabilities: %s missing compared to --privileged (DinD does not need "
			   "%s)",
			   others, strchr(others, ',') ? "them" : "it");
}

/* ---- /dev/fuse, seccomp, AppArmor ------------------------------------------- */

static void check_fuse(struct doctor *d)
{
	struct stat st;

	if (stat("/dev/fuse", &st) == 0 && S_ISCHR(st.st_mode)) {
		doctor_say(d, DOCTOR_OK, "/dev/fuse: present");
	} else if (d->at_daemon_level && d->mount_error != 0) {
		doctor_say(d, DOCTOR_FAIL, "/dev/fuse: missing: dindfs cannot be mounted here");
		doctor_fix(d, "modprobe fuse, and apt-get install fuse3");
	} else {
		doctor_say(d, DOCTOR_INFO,
			   "/dev/fuse: missing (not needed to use a bind-mounted dindfs; "
			   "`dindfs mount` here would need --device /dev/fuse)");
	}
}

static void check_seccomp(struct doctor *d)
{
	char mode[16];

	status_field("Seccomp", mode, sizeof(mode));
	if (strcmp(mode, "2") == 0 || strcmp(mode, "1") == 0) {
		doctor_say(d, DOCTOR_WARN,
			   "seccomp: a filter is on: a nested dockerd may be refused the system "
			   "calls it needs (mount, unshare, keyctl)");
		doctor_fix(d, "run with --security-opt seccomp=unconfined (or --privileged)");
	} else {
		doctor_say(d, DOCTOR_OK, "seccomp: %s", *mode ? "off" : "not reported");
	}
}

static void check_apparmor(struct doctor *d)
{
	char profile[256] = "";

	read_line("/proc/self/attr/apparmor/current", profile, sizeof(profile));
	if (!*profile && access("/sys/module/apparmor", F_OK) == 0)
		read_line("/proc/self/attr/current", profile, sizeof(profile));
	if (!*profile)
		doctor_say(d, DOCTOR_OK, "AppArmor: not in use");
	else if (strcmp(profile, "unconfined") == 0)
		doctor_say(d, DOCTOR_OK, "AppArmor: unconfined");
	else {
		doctor_say(d, DOCTOR_WARN,
			   "AppArmor: profile %s: it forbids the mounts a nested dockerd makes",
			   profile);
		doctor_fix(d, "run with --security-opt apparmor=unconfined (or --privileged)");
	}
}

void doctor_check_security(struct doctor *d)
{
	check_caps(d);
	check_fuse(d);
	check_seccomp(d);
	check_apparmor(d);
}
