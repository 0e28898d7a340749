/*
 * tests/fuzz/fuzz_commit_spec.c - libFuzzer harness: the user.stagefs.commit
 * value parser (index/addressing.h sfs_commit_spec_parse) on any bytes, and
 * on success the object path built from what it returned.
 */
#include "index/addressing.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sfs_commit_spec s;
	char err[256], path[4096];

	if (sfs_commit_spec_parse((const char *)data, size, &s, err, sizeof(err)) != 0)
		return 0;
	if (!s.hash) {
		struct sfs_object_path_params p = {
			.schema = "lab",
			.table = s.table ? s.table : "Session",
			.field = s.field,
			.token = s.token ? s.token : "abcd1234",
			.ext = s.ext,
			.key = s.key,
			.nkey = s.nkey,
			.partition_pattern = "{subject_id}/{session_date}",
		};
		(void)!sfs_object_path(&p, path, sizeof(path));
	}
	sfs_commit_spec_release(&s);
	return 0;
}
