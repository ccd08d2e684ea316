/* dindfs snapshotter: containerd's proxy snapshotter over the shared layers. */
#ifndef DINDFS_CMD_SNAPSHOTTER_H
#define DINDFS_CMD_SNAPSHOTTER_H

#include "cli.h"

extern const struct tool_command tool_cmd_snapshotter;

#endif
