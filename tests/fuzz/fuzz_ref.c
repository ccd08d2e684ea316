/*
 * fuzz_ref: ref_parse on arbitrary bytes.
 *
 * Whatever the input, ref_parse must return 0, -EINVAL or -ENAMETOOLONG,
 * with a reason on failure. What it accepts must be stable: its parts pass
 * the validators, and both the full and the familiar form format within
 * REF_STRING_SIZE and parse back to the same reference, which formats to
 * the same string again. Any violation aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char full[REF_STRING_SIZE], familiar[REF_STRING_SIZE], again[REF_STRING_SIZE];
	const char *reason = NULL;
	struct ref r, back;
	char *s;
	int err;

	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	err = ref_parse(s, &r, &reason);
	if (err < 0) {
		check(err == -EINVAL || err == -ENAMETOOLONG);
		check(reason && *reason);
		goto out;
	}
	check(reason == NULL);
	check(r.has_tag || r.has_digest);
	check(ref_validate_registry(r.registry) == 0);
	check(ref_validate_repository(r.repository) == 0);
	check(!r.has_tag || ref_validate_tag(r.tag) == 0);

	ref_format(&r, full, sizeof(full));
	check(strlen(full) <= REF_STRING_MAX);
	check(ref_parse(full, &back, NULL) == 0);
	check(ref_equal(&r, &back));
	ref_format(&back, again, sizeof(again));
	check(strcmp(full, again) == 0);

	ref_format_familiar(&r, familiar, sizeof(familiar));
	check(strlen(familiar) <= strlen(full));
	check(ref_parse(familiar, &back, NULL) == 0);
	check(ref_equal(&r, &back));
	ref_format_familiar(&back, again, sizeof(again));
	check(strcmp(familiar, again) == 0);
out:
	free(s);
	return 0;
}
