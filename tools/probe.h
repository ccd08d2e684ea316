/*
 * probe: read a small file that may never answer — one on a FUSE mount
 * whose daemon died (ENOTCONN) or hangs — without waiting on it forever.
 */
#ifndef DINDFS_PROBE_H
#define DINDFS_PROBE_H

#include <stddef.h>

/* The most a probe reads; more is -EFBIG. */
#define TOOL_PROBE_MAX (256u << 10)

/*
 * Read path whole within timeout_ms. The read runs in a child process, so
 * that a read stuck in the kernel is killed with it instead of holding us.
 * Returns 0 with a NUL-terminated copy in *ret (free it) and its length,
 * -ETIMEDOUT when no answer came in time, or the -errno the read met.
 */
int tool_probe_read(const char *path, int timeout_ms, char **ret, size_t *ret_len);

/* stat path within timeout_ms: 0, -ETIMEDOUT, or the -errno stat met. */
int tool_probe_stat(const char *path, int timeout_ms);

#endif
