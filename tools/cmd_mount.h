/* dindfs mount and dindfs umount. */
#ifndef DINDFS_CMD_MOUNT_H
#define DINDFS_CMD_MOUNT_H

#include "cli.h"

extern const struct tool_command tool_cmd_mount;
extern const struct tool_command tool_cmd_umount;

#endif
