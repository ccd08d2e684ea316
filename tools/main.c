/*
 * dindfs: the command-line entry point. Finds the command and hands it
 * the rest of the arguments.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd_doctor.h"
#include "cmd_image.h"
#include "cmd_mirror.h"
#include "cmd_mount.h"
#include "cmd_pull.h"
#include "cmd_snapshotter.h"
#include "cmd_stats.h"
#include "cmd_store.h"

/* In the order 'dindfs --help' lists them. */
static const struct tool_command *const commands[] = {
	&tool_cmd_mount, &tool_cmd_umount, &tool_cmd_pull,   &tool_cmd_mirror,	    &tool_cmd_load,
	&tool_cmd_save,	 &tool_cmd_ls,	   &tool_cmd_gc,     &tool_cmd_pin,	    &tool_cmd_unpin,
	&tool_cmd_fsck,	 &tool_cmd_stats,  &tool_cmd_doctor, &tool_cmd_snapshotter,
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
	size_t i;

	fputs("usage: dindfs COMMAND [OPTIONS]\n\n"
	      "A shared image cache and workspace for Docker-in-Docker.\n\n"
	      "Commands:\n",
	      out);
	for (i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-8s %s\n", commands[i]->name, commands[i]->brief);
	fputs("\nRun 'dindfs COMMAND --help' for a command's options.\n", out);
}

int main(int argc, char **argv)
{
	size_t i;

	/* a peer that goes away (dockerd, a pipe) is an error to report, not a death */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return TOOL_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return TOOL_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("dindfs %s\n", DINDFS_VERSION);
		return TOOL_EXIT_OK;
	}
	for (i = 0; i < N_COMMANDS; i++)
		if (!strcmp(argv[1], commands[i]->name))
			return commands[i]->run(commands[i], argc - 1, argv + 1);
	fprintf(stderr, "dindfs: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return TOOL_EXIT_USAGE;
}
