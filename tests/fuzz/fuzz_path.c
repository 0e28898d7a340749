/*
 * tests/fuzz/fuzz_path.c - libFuzzer harness: DataJoint's key-value encoder
 * and the object-path builders (index/addressing.h) on hostile key values.
 * The input is split at NUL bytes: the first piece is a partition pattern
 * over attribute names k0..k7, the others are the string values of k0..k7
 * (what a commit's JSON may carry once it is valid).  Schema, table, field
 * and token are fixed valid names (their syntax is checked before a path is
 * ever built).  A built path must fit its buffer and every one of its
 * segments must be non-empty and neither "." nor "..": no key value may
 * escape its directory.  The hash path is built from the MD5 of the input.
 */
#include "index/addressing.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_segments(const char *path)
{
	for (const char *p = path;;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			abort(); /* a path that could leave its directory */
		if (!e)
			return;
		p = e + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"};
	static const int subfold[] = {2, 2};
	char *copy = malloc(size + 1), *f[9] = {0}, out[8192], enc[1024], hash[27];
	struct sfs_pk_attr key[8];
	unsigned char md5[16] = {0};
	size_t nf = 0;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (char *p = copy; nf < 9;) {
		f[nf++] = p;
		char *z = memchr(p, '\0', (size_t)(copy + size - p));
		if (!z || z + 1 >= copy + size)
			break;
		p = z + 1;
	}
	for (size_t i = 1; i < nf; i++) {
		if (!sfs_encode_pk_value(f[i], enc, sizeof(enc)) && strchr(enc, '/'))
			abort(); /* an encoded value is one path segment */
		key[i - 1] = (struct sfs_pk_attr){
			.name = (char *)names[i - 1], .type = SFS_PK_STRING, .text = f[i]};
	}
	struct sfs_object_path_params p = {
		.schema_prefix = "_schema",
		.partition_pattern = f[0][0] ? f[0] : NULL,
		.schema = "lab",
		.table = "Session",
		.field = "raw",
		.token = "abcd1234",
		.ext = nf > 1 ? sfs_default_ext(f[1]) : NULL,
		.key = key,
		.nkey = nf - 1,
	};
	if (nf > 1 && !sfs_object_path(&p, out, sizeof(out)))
		check_segments(out);
	memcpy(md5, data, size < 16 ? size : 16);
	sfs_hash_from_md5(md5, hash);
	if (!sfs_hash_path("_hash", "lab", subfold, 2, hash, out, sizeof(out)))
		check_segments(out);
	free(copy);
	return 0;
}
