/* dindfs mirror: a registry mirror over the mount. */
#ifndef DINDFS_CMD_MIRROR_H
#define DINDFS_CMD_MIRROR_H

#include "cli.h"

extern const struct tool_command tool_cmd_mirror;

#endif
