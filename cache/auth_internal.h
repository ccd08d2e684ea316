/*
 * auth_internal: the small helpers the auth_*.c files share. Not part of
 * auth.h's contract; nothing outside cache/auth_*.c includes it.
 */
#ifndef DINDFS_AUTH_INTERNAL_H
#define DINDFS_AUTH_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <jansson.h>

static inline bool auth_is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The errno for a failed json_loadb(). */
static inline int auth_json_errno(const json_error_t *err)
{
	return json_error_code(err) == json_error_out_of_memory ? -ENOMEM : -EINVAL;
}

/*
 * Look up an optional string member: *ret is NULL when it is absent or
 * null, and -EINVAL comes back when it is anything but a string.
 */
static inline int auth_json_string(json_t *obj, const char *key, const char **ret, size_t *ret_len)
{
	json_t *v = json_object_get(obj, key);

	*ret = NULL;
	if (ret_len)
		*ret_len = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return -EINVAL;
	*ret = json_string_value(v);
	if (ret_len)
		*ret_len = json_string_length(v);
	return 0;
}

/* Copy n bytes of src and a NUL into dst; -E2BIG when they do not fit in size. */
static inline int auth_copy_bounded(char *dst, size_t size, const char *src, size_t n)
{
	if (n >= size)
		return -E2BIG;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

#endif
