/* The host-side store commands: dindfs ls, gc, fsck, pin and unpin. */
#ifndef DINDFS_CMD_STORE_H
#define DINDFS_CMD_STORE_H

#include "cli.h"

extern const struct tool_command tool_cmd_ls;
extern const struct tool_command tool_cmd_gc;
extern const struct tool_command tool_cmd_fsck;
extern const struct tool_command tool_cmd_pin;
extern const struct tool_command tool_cmd_unpin;

#endif
