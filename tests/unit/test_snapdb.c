/* tests/unit/test_snapdb.c - a snapshot manifest: build, write as parts, read back, serve. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/gz.h"
#include "common/log.h"
#include "index/snapdb.h"

#define MD5A "0cc175b9c0f1b6a831c399e269772661"
#define MD5B "92eb5ffee6ae2fec3ad71c777531578f"

static struct sfs_snapdb *build(void)
{
	struct sfs_snapdb *db = NULL;
	const struct sfs_snap_ent ents[] = {
		{.path = "_schema", .is_dir = 1},
		{.path = "_schema/lab", .is_dir = 1},
		{.path = "_schema/lab/x.zarr",
		 .is_dir = 1,
		 .object = "_schema/lab/x.zarr",
		 .metadata = "{\"path\":\"_schema/lab/x.zarr\",\"is_dir\":true}"},
		{.path = "_schema/lab/x.zarr/0.0",
		 .size = 1,
		 .md5 = MD5A,
		 .object = "_schema/lab/x.zarr"},
		{.path = "_schema/lab/x.zarr/.zarray",
		 .size = 1,
		 .md5 = MD5B,
		 .object = "_schema/lab/x.zarr",
		 .mtime_ns = 1700000000123456789LL},
		{.path = "_hash", .is_dir = 1},
		{.path = "_hash/h1",
		 .size = 1,
		 .md5 = MD5A,
		 .object = "_hash/h1",
		 .metadata = "{\"hash\":\"h1\"}"},
	};

	assert_int_equal(sfs_snapdb_open(NULL, &db), 0);
	assert_int_equal(sfs_snapdb_begin(db), 0);
	for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]); i++)
		assert_int_equal(sfs_snapdb_add(db, &ents[i]), 0);
	assert_int_equal(sfs_snapdb_end(db, 0), 0);
	return db;
}

/* Parts of at most n entries, gzip'd and back, into a new database. */
static struct sfs_snapdb *round_trip(struct sfs_snapdb *src, size_t n, int *parts)
{
	struct sfs_snapdb *dst = NULL;
	char *after = NULL, *json = NULL;
	size_t cnt = 0;

	assert_int_equal(sfs_snapdb_open(NULL, &dst), 0);
	*parts = 0;
	for (;;) {
		assert_int_equal(sfs_snapdb_part(src, &after, n, &json, &cnt), 0);
		if (!cnt)
			break;
		void *gz = NULL, *back = NULL;
		size_t gzn = 0, bn = 0;
		assert_int_equal(sfs_gzip(json, strlen(json), &gz, &gzn), 0);
		assert_int_equal(sfs_gunzip(gz, gzn, 1 << 20, &back, &bn), 0);
		assert_int_equal(bn, strlen(json));
		assert_int_equal(sfs_snapdb_load_part(dst, back, bn), 0);
		free(gz);
		free(back);
		free(json);
		(*parts)++;
	}
	free(after);
	assert_int_equal(sfs_snapdb_seal(dst), 0);
	return dst;
}

static int count_cb(void *arg, const struct sfs_snap_node *n)
{
	(*(int *)arg)++;
	return 0;
}

static int last_seen;
static int last_cb(void *arg, const struct sfs_snap_node *n)
{
	*(uint64_t *)arg = n->id;
	last_seen = 1;
	return 0;
}

static void test_round_trip_and_serve(void **state)
{
	struct sfs_snapdb *src = build(), *db;
	struct sfs_snap_count c;
	struct sfs_snap_node n, lab, z;
	char *s = NULL;
	int parts = 0, kids = 0;

	assert_int_equal(sfs_snapdb_count(src, &c), 0);
	assert_int_equal(c.entries, 7);
	assert_int_equal(c.files, 3);
	assert_int_equal(c.objects, 2);
	assert_int_equal(c.bytes, 3);
	db = round_trip(src, 3, &parts);
	assert_int_equal(parts, 3); /* 7 entries, 3 a part */
	assert_true(sfs_snapdb_sealed(db));
	assert_int_equal(sfs_snapdb_node(db, 1, &n), 0);
	assert_true(n.is_dir);
	assert_int_equal(sfs_snapdb_children(db, 1, 0, 10, count_cb, &kids), 0);
	assert_int_equal(kids, 2); /* _hash, _schema */
	assert_int_equal(sfs_snapdb_lookup(db, 1, "_schema", &n), 0);
	assert_int_equal(sfs_snapdb_lookup(db, n.id, "lab", &lab), 0);
	assert_int_equal(sfs_snapdb_lookup(db, lab.id, "x.zarr", &z), 0);
	assert_true(z.is_dir);
	assert_int_equal(sfs_snapdb_metadata(db, z.id, &s), 0);
	assert_non_null(strstr(s, "x.zarr"));
	free(s);
	assert_int_equal(sfs_snapdb_lookup(db, z.id, ".zarray", &n), 0);
	assert_false(n.is_dir);
	assert_int_equal(n.size, 1);
	assert_true(n.mtime_ns == 1700000000123456789LL);
	assert_int_equal(sfs_snapdb_metadata(db, n.id, &s), -ENODATA); /* not an object itself */
	assert_int_equal(sfs_snapdb_path(db, n.id, &s), 0);
	assert_string_equal(s, "_schema/lab/x.zarr/.zarray");
	free(s);
	assert_int_equal(sfs_snapdb_lookup(db, z.id, "nope", &n), -ENOENT);
	/* children in pages: every child once, resuming after the last id given */
	uint64_t last = 0;
	int pages = 0;
	kids = 0;
	for (;;) {
		int got = 0;
		assert_int_equal(sfs_snapdb_children(db, z.id, last, 1, last_cb, &last), 0);
		assert_int_equal(sfs_snapdb_children(db, z.id, 0, 100, count_cb, &got), 0);
		assert_int_equal(got, 2);
		if (++pages > 2 || !last_seen)
			break;
		kids++;
		last_seen = 0;
	}
	assert_int_equal(kids, 2);
	sfs_snapdb_close(src);
	sfs_snapdb_close(db);
}

static int diff_cb(void *arg, char kind, const char *path)
{
	char *out = arg;
	size_t n = strlen(out);

	snprintf(out + n, 512 - n, "%c%s ", kind, path);
	return 0;
}

static void test_diff(void **state)
{
	struct sfs_snapdb *a = build(), *b = build();
	char out[512] = "";
	const struct sfs_snap_ent add = {.path = "_hash/h2", .size = 2, .md5 = MD5B};
	const struct sfs_snap_ent chg = {.path = "_hash/h1", .size = 1, .md5 = MD5B};

	assert_int_equal(sfs_snapdb_add(b, &add), 0);
	assert_int_equal(sfs_snapdb_add(b, &chg), 0);
	assert_int_equal(sfs_snapdb_diff(a, b, diff_cb, out), 0);
	assert_string_equal(out, "~_hash/h1 +_hash/h2 ");
	out[0] = '\0';
	assert_int_equal(sfs_snapdb_diff(b, a, diff_cb, out), 0);
	assert_string_equal(out, "~_hash/h1 -_hash/h2 ");
	sfs_snapdb_close(a);
	sfs_snapdb_close(b);
}

/* A manifest that breaks a rule is refused whole, never served. */
static void test_malformed_refused(void **state)
{
	const char *bad[] = {
		"{\"path\":\"a\"}",					       /* not an array */
		"[{\"path\":\"../etc/passwd\",\"type\":\"file\",\"size\":1}]", /* traversal */
		"[{\"path\":\"a/../b\",\"type\":\"dir\"}]",
		"[{\"path\":\"/abs\",\"type\":\"dir\"}]",
		"[{\"path\":\"a//b\",\"type\":\"dir\"}]",
		"[{\"path\":\"a/\",\"type\":\"dir\"}]",
		"[{\"path\":\"x\\u0001y\",\"type\":\"dir\"}]",	   /* a control character */
		"[{\"path\":\"f\",\"type\":\"file\"}]",		   /* a file without a size */
		"[{\"path\":\"f\",\"type\":\"link\",\"size\":1}]", /* neither file nor dir */
		"[{\"path\":\"f\",\"type\":\"file\",\"size\":1,\"md5\":\"xyz\"}]", /* not an md5 */
		"[{\"path\":\"d/f\",\"type\":\"file\",\"size\":1}]", /* no directory above */
		"[{\"path\":\"f\",\"type\":\"file\",\"size\":1},{\"path\":\"f/"
		"g\",\"type\":\"file\","
		"\"size\":1}]", /* a file above */
		"[1,2,3]",
		"not json",
	};

	int lvl = sfs_log_level;
	sfs_log_level = -1;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sfs_snapdb *db = NULL;
		assert_int_equal(sfs_snapdb_open(NULL, &db), 0);
		int rc = sfs_snapdb_load_part(db, bad[i], strlen(bad[i]));
		if (!rc)
			rc = sfs_snapdb_seal(db);
		if (rc != -EINVAL)
			fail_msg("manifest %zu (%s): got %d, want -EINVAL", i, bad[i], rc);
		assert_false(sfs_snapdb_sealed(db));
		sfs_snapdb_close(db);
	}
	sfs_log_level = lvl;
}

static void test_gzip_bounds(void **state)
{
	char big[4096];
	void *gz = NULL, *out = NULL;
	size_t gzn = 0, n = 0;

	memset(big, 'a', sizeof(big));
	assert_int_equal(sfs_gzip(big, sizeof(big), &gz, &gzn), 0);
	assert_int_equal(sfs_gunzip(gz, gzn, 1000, &out, &n), -EFBIG); /* inflates past max */
	assert_int_equal(sfs_gunzip(gz, gzn / 2, 1 << 20, &out, &n), -EINVAL); /* cut short */
	assert_int_equal(sfs_gunzip("plain", 5, 1 << 20, &out, &n), -EINVAL);
	assert_int_equal(sfs_gunzip(gz, gzn, sizeof(big), &out, &n), 0);
	assert_int_equal(n, sizeof(big));
	free(out);
	free(gz);
}

static void test_json_eval(void **state)
{
	char *s = NULL;

	assert_int_equal(sfs_json_eval("json_extract(?1,'$.a')", 1,
				       (const char *const[]){"{\"a\":\"x\"}"}, &s),
			 0);
	assert_string_equal(s, "x");
	free(s);
	assert_int_equal(
		sfs_json_eval("json_extract(?1,'$.b')", 1, (const char *const[]){"{\"a\":1}"}, &s),
		-ENOENT);
	assert_int_equal(
		sfs_json_eval("json_extract(?1,'$.a')", 1, (const char *const[]){"{broken"}, &s),
		-EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_and_serve),
		cmocka_unit_test(test_diff),
		cmocka_unit_test(test_malformed_refused),
		cmocka_unit_test(test_gzip_bounds),
		cmocka_unit_test(test_json_eval),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
