/*
 * dindfs doctor: run at any level, says where it is and what works — the
 * mount, dockerd and its mirror, where dockerd keeps its layers, whether
 * they are the shared layers (dindfs snapshotter), cgroups,
 * capabilities and confinement, and at the host the upstream registries —
 * one line per check, each problem with its fix. Exit 1 when something is
 * broken (a FAIL); warnings alone exit 0. The checks live in doctor_*.c.
 */
#include "cmd_doctor.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "doctor.h"
#include "engine.h"

static const char *const marks[DOCTOR_N_MARKS] = {"ok  ", "info", "warn", "FAIL"};

void doctor_say(struct doctor *d, enum doctor_mark mark, const char *fmt, ...)
{
	va_list ap;

	d->counts[mark]++;
	printf("%s  ", marks[mark]);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

void doctor_fix(struct doctor *d, const char *fmt, ...)
{
	va_list ap;

	(void)d;
	fputs("      fix: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void summary(const struct doctor *d)
{
	int i, n = 0;

	for (i = 0; i < DOCTOR_N_MARKS; i++)
		n += d->counts[i];
	printf("\n%d checks: %d ok, %d info, %d warning%s, %d problem%s%s\n", n,
	       d->counts[DOCTOR_OK], d->counts[DOCTOR_INFO], d->counts[DOCTOR_WARN],
	       d->counts[DOCTOR_WARN] == 1 ? "" : "s", d->counts[DOCTOR_FAIL],
	       d->counts[DOCTOR_FAIL] == 1 ? "" : "s",
	       d->counts[DOCTOR_FAIL] ? "" : ": nothing broken");
}

static int run_doctor(const struct tool_command *cmd, int argc, char **argv)
{
	static const struct option options[] = {
		{"root", required_argument, NULL, 'r'},
		{"host", required_argument, NULL, 'H'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *env = getenv("DOCKER_HOST");
	struct doctor d = {
		.root = tool_default_root(),
		.host = env && *env ? env : ENGINE_DEFAULT_HOST,
	};
	struct engine *e;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hH:", options, NULL)) != -1) {
		switch (c) {
		case 'r':
			d.root = optarg;
			break;
		case 'H':
			d.host = optarg;
			break;
		default:
			return tool_other_option(cmd, c, argv);
		}
	}
	if (optind != argc)
		return tool_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (engine_open(d.host, &e) < 0)
		return tool_usage_error(cmd, "bad --host '%s' (want unix:///path/to/docker.sock)",
					d.host);
	engine_close(e);

	doctor_probe_mount(&d);
	doctor_check_where(&d);
	doctor_check_mount(&d);
	doctor_check_dockerd(&d);
	doctor_check_layers(&d);
	doctor_check_routes(&d);
	doctor_check_cgroup(&d);
	doctor_check_security(&d);
	doctor_check_upstreams(&d);
	summary(&d);
	json_decref(d.stats);
	json_decref(d.info);
	return d.counts[DOCTOR_FAIL] ? TOOL_EXIT_FAILED : TOOL_EXIT_OK;
}

const struct tool_command tool_cmd_doctor = {
	.name = "doctor",
	.brief = "say what works at this level, what does not, and how to fix it",
	.synopsis = "[--root MOUNTPOINT] [--host unix:///var/run/docker.sock]",
	.summary = "Check, at the host or in any nested level: where this is (host or container,\n"
		   "and how deep below the dindfs daemon), whether the mount is there and\n"
		   "answering, the local dockerd, its mirror and where it keeps its layers,\n"
		   "in a level which registries each client (dockerd, containerd, podman and\n"
		   "skopeo) pulls through the cache and which it would pull direct, and why,\n"
		   "cgroups, capabilities, seccomp and AppArmor, and at the host the upstream\n"
		   "registries. One line per check (ok, info, warn, FAIL), each problem with its\n"
		   "fix. Exits 1 when something is broken.",
	.usage = "  --root MOUNTPOINT      the mount (default $DINDFS_ROOT, then " TOOL_DEFAULT_ROOT
		 ")\n"
		 "  -H, --host URL         the local dockerd (default $DOCKER_HOST, "
		 "then " ENGINE_DEFAULT_HOST ")\n",
	.run = run_doctor,
};
