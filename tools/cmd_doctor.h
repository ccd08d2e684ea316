/* dindfs doctor: what works at this level, what does not, and the fixes. */
#ifndef DINDFS_CMD_DOCTOR_H
#define DINDFS_CMD_DOCTOR_H

#include "cli.h"

extern const struct tool_command tool_cmd_doctor;

#endif
