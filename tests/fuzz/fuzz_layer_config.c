/*
 * fuzz_layer_config: layer_config_diffids() on arbitrary bytes (an image
 * config is outside input), then the invariants the unpack worker relies
 * on: on success every item is a well-formed digest and the count is
 * bounded; on failure nothing was appended to the list.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layer_queue.h"
#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct digest_list l = {0};
	struct digest seed = {0}, back;
	char text[DIGEST_STRING_SIZE];
	size_t i;
	int r;

	memset(seed.hex, '0', DIGEST_HEX_LEN);
	if (digest_list_append(&l, &seed) < 0)
		abort();
	r = layer_config_diffids(data, size, &l);
	if (r < 0 && (l.len != 1 || (r != -EINVAL && r != -EFBIG && r != -E2BIG && r != -ENOMEM)))
		abort();
	if (r == 0 && l.len - 1 > MANIFEST_MAX_DESCRIPTORS)
		abort();
	for (i = 0; i < l.len; i++) {
		digest_format(&l.items[i], text);
		if (digest_parse(text, &back) < 0 || !digest_equal(&back, &l.items[i]))
			abort();
	}
	digest_list_free(&l);
	return 0;
}
