/*
 * tests/fuzz/fuzz_snapshot.c - libFuzzer harness: reading a published
 * snapshot's manifest back (index/snapdb.h, common/gz.h).  A snapshot mounted
 * years later may come from a damaged or hostile bucket: the input is tried
 * as a gzip'd part (inflated with the mount's own bound) and as a part's
 * JSON, loaded into a private manifest database, which is then sealed (the
 * entry rules checked, the tree linked) and walked.
 */
#include "common/gz.h"
#include "index/snapdb.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_file(void *arg, const char *path, uint64_t size, const char *md5)
{
	(void)arg;
	(void)size;
	return path && md5 && 0;
}

static void load(const char *json, size_t n)
{
	struct sfs_snapdb *db;
	char sum[128];

	if (sfs_snapdb_open(NULL, &db))
		return;
	if (!sfs_snapdb_load_part(db, json, n) && !sfs_snapdb_seal(db)) {
		(void)!sfs_snapdb_checksum(db, sum, sizeof(sum));
		(void)!sfs_snapdb_each_file(db, on_file, NULL);
	}
	sfs_snapdb_close(db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	void *out = NULL;
	size_t outn = 0;

	if (!sfs_gunzip(data, size, 1u << 20, &out, &outn))
		load(out, outn);
	free(out);
	load((const char *)data, size);
	return 0;
}
