/*
 * opcount: the per-kind request counters as JSON (opcount.h).
 */
#include "opcount.h"

static const char *const kind_names[FS_OP_COUNT] = {
#define FS_OPCOUNT_NAME(name) #name,
	FS_OPCOUNT_KINDS(FS_OPCOUNT_NAME)
#undef FS_OPCOUNT_NAME
};

json_t *fs_opcount_json(struct fs_opcount *c)
{
	json_t *obj = json_object();
	size_t i;

	for (i = 0; obj && i < FS_OP_COUNT; i++) {
		json_int_t n = (json_int_t)atomic_load_explicit(&c->n[i], memory_order_relaxed);

		if (json_object_set_new(obj, kind_names[i], json_integer(n)) < 0) {
			json_decref(obj);
			obj = NULL;
		}
	}
	return obj;
}
