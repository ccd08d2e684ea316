/* dindfs stats: the mount's counters. */
#ifndef DINDFS_CMD_STATS_H
#define DINDFS_CMD_STATS_H

#include "cli.h"

extern const struct tool_command tool_cmd_stats;

#endif
