/* dindfs load and dindfs save: images between the cache and the local dockerd. */
#ifndef DINDFS_CMD_IMAGE_H
#define DINDFS_CMD_IMAGE_H

#include "cli.h"

extern const struct tool_command tool_cmd_load;
extern const struct tool_command tool_cmd_save;

#endif
