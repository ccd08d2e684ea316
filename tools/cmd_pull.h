/* dindfs pull: an image from its registry into the store. */
#ifndef DINDFS_CMD_PULL_H
#define DINDFS_CMD_PULL_H

#include "cli.h"

extern const struct tool_command tool_cmd_pull;

#endif
