/* tests/unit/test_zarr_checksum.c - the DANDI zarr checksum: vectors, escapes, the tree form, a snapshot manifest's (run from the repo root) */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "index/addressing.h"
#include "index/snapdb.h"
#include "tests/unit/vectors.h"

#define ZC_VECTORS "tests/vectors/zarr_checksum.json"

/* ---- zarr_checksum.json ---------------------------------------------------- */

static void zc_add_file(struct sfs_zarr_checksum *z, const char *path, const void *data, size_t n)
{
	unsigned char md5[16];
	char hex[33];

	md5_of(data, n, md5);
	sfs_md5_hex(md5, hex);
	assert_int_equal(sfs_zarr_checksum_add(z, path, hex, n), 0);
}

/*
 * Decode the JSON string literal raw into *out (malloc'd, *n bytes).  SQLite
 * before 3.45 cuts a string at \u0000, so split on that escape, let SQLite
 * decode the pieces and join them with NUL bytes.  (An escaped backslash
 * followed by "u0000" would be misread; the vectors have none.)
 */
static char *json_string_bytes(const char *raw, size_t *n)
{
	struct vq q;
	char *out = NULL;
	size_t len = 0;
	int pieces = 0;

	vq_open(&q, NULL,
		"SELECT value FROM json_each('[' || replace(?1, '\\u0000', '\",\"') || ']')");
	sqlite3_bind_text(q.st, 1, raw, -1, SQLITE_STATIC);
	out = malloc(strlen(raw) + 1);
	assert_non_null(out);
	while (sqlite3_step(q.st) == SQLITE_ROW) {
		size_t k = (size_t)sqlite3_column_bytes(q.st, 0);

		if (pieces++)
			out[len++] = '\0';
		if (k)
			memcpy(out + len, sqlite3_column_blob(q.st, 0), k);
		len += k;
	}
	assert_true(pieces > 0);
	vq_close(&q);
	*n = len;
	return out;
}

/* ---- the checksum over a tree read directory by directory ---- */

/* A tree in an in-memory SQLite table, as the commit's walk keeps one on disk. */
struct ttree {
	sqlite3 *db;
	sqlite3_stmt *ins;
};

static void tt_open(struct ttree *t)
{
	assert_int_equal(sqlite3_open(":memory:", &t->db), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(t->db,
			     "CREATE TABLE e(id INTEGER PRIMARY KEY, parent INT, name TEXT,"
			     " is_dir INT, md5 TEXT, size INT, UNIQUE(parent, name))",
			     NULL, NULL, NULL),
		SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(t->db,
					    "INSERT INTO e(parent,name,is_dir,md5,size) "
					    "VALUES(?1,?2,?3,?4,?5) ON CONFLICT(parent,name) DO "
					    "UPDATE SET parent=parent RETURNING id",
					    -1, &t->ins, NULL),
			 SQLITE_OK);
}

static int64_t tt_node(struct ttree *t, int64_t parent, const char *name, size_t n, int is_dir,
		       const char *md5, uint64_t size)
{
	sqlite3_stmt *st = t->ins;
	int64_t id = 0;

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	sqlite3_bind_int64(st, 1, parent);
	sqlite3_bind_text(st, 2, name, (int)n, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 3, is_dir);
	if (md5)
		sqlite3_bind_text(st, 4, md5, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)size);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return id;
}

static void tt_add(struct ttree *t, const char *path, const char *md5, uint64_t size)
{
	int64_t dir = 0;
	const char *p = path, *slash;

	while ((slash = strchr(p, '/')) != NULL) {
		dir = tt_node(t, dir, p, (size_t)(slash - p), 1, NULL, 0);
		p = slash + 1;
	}
	tt_node(t, dir, p, strlen(p), 0, md5, size);
}

static int tt_subdirs(void *arg, int64_t dir, int (*cb)(void *, int64_t, const char *), void *a)
{
	struct ttree *t = arg;
	sqlite3_stmt *st;
	int rc = 0;

	assert_int_equal(sqlite3_prepare_v2(t->db,
					    "SELECT id, name FROM e WHERE parent=?1 AND is_dir=1 "
					    "ORDER BY name",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, dir);
	while (!rc && sqlite3_step(st) == SQLITE_ROW)
		rc = cb(a, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	return rc;
}

static int tt_files(void *arg, int64_t dir,
		    int (*cb)(void *, const char *, const char[33], uint64_t), void *a)
{
	struct ttree *t = arg;
	sqlite3_stmt *st;
	int rc = 0;

	assert_int_equal(sqlite3_prepare_v2(t->db,
					    "SELECT name, md5, size FROM e WHERE parent=?1 AND "
					    "is_dir=0 ORDER BY name",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, dir);
	while (!rc && sqlite3_step(st) == SQLITE_ROW)
		rc = cb(a, (const char *)sqlite3_column_text(st, 0),
			(const char *)sqlite3_column_text(st, 1),
			(uint64_t)sqlite3_column_int64(st, 2));
	sqlite3_finalize(st);
	return rc;
}

static void tt_check(struct ttree *t, const char *want)
{
	struct sfs_zarr_tree src = {tt_subdirs, tt_files, t};
	char out[SFS_ZARR_CHECKSUM_MAX];

	assert_int_equal(sfs_zarr_checksum_tree(&src, 0, out, sizeof(out)), 0);
	assert_string_equal(out, want);
	sqlite3_finalize(t->ins);
	sqlite3_close(t->db);
}

static void tt_add_data(struct ttree *t, const char *path, const void *data, size_t n)
{
	unsigned char md5[16];
	char hex[33];

	md5_of(data, n, md5);
	sfs_md5_hex(md5, hex);
	tt_add(t, path, hex, n);
}

/* The same files in a snapshot manifest (their directories too), sealed. */
static void sd_add(struct sfs_snapdb *db, const char *path, const char *md5, uint64_t size)
{
	char *dir = strdup(path);

	assert_non_null(dir);
	for (char *sl = strchr(dir, '/'); sl; sl = strchr(sl + 1, '/')) {
		*sl = '\0';
		struct sfs_snap_ent d = {.path = dir, .is_dir = 1};
		assert_int_equal(sfs_snapdb_add(db, &d), 0);
		*sl = '/';
	}
	free(dir);
	struct sfs_snap_ent f = {.path = path, .size = size, .md5 = md5};
	assert_int_equal(sfs_snapdb_add(db, &f), 0);
}

static void sd_add_data(struct sfs_snapdb *db, const char *path, const void *data, size_t n)
{
	unsigned char md5[16];
	char hex[33];

	md5_of(data, n, md5);
	sfs_md5_hex(md5, hex);
	sd_add(db, path, hex, n);
}

static void sd_check(struct sfs_snapdb *db, const char *want)
{
	char out[SFS_ZARR_CHECKSUM_MAX];

	/* the tree form needs parent/name: refused before the seal */
	assert_int_equal(sfs_snapdb_checksum(db, out, sizeof(out)), -EINVAL);
	assert_int_equal(sfs_snapdb_seal(db), 0);
	assert_int_equal(sfs_snapdb_checksum(db, out, sizeof(out)), 0);
	assert_string_equal(out, want);
	sfs_snapdb_close(db);
}

static void test_vectors_zarr(void **state)
{
	struct vq q, f;
	int rows = 0;

	(void)state;
	vq_open(&q, ZC_VECTORS,
		"SELECT value ->> '$.checksum', value -> '$.files' FROM json_each(?1, '$.cases')");
	while (sqlite3_step(q.st) == SQLITE_ROW) {
		struct sfs_zarr_checksum *fwd = NULL, *rev = NULL;
		char out[SFS_ZARR_CHECKSUM_MAX];
		struct ttree tt;
		struct sfs_snapdb *sd = NULL;

		tt_open(&tt);
		assert_int_equal(sfs_snapdb_open(NULL, &sd), 0);
		assert_int_equal(sfs_zarr_checksum_new(&fwd), 0);
		assert_int_equal(sfs_zarr_checksum_new(&rev), 0);
		/* forward and reverse insertion order must agree */
		for (int pass = 0; pass < 2; pass++) {
			vq_open(&f, NULL,
				pass ? "SELECT key, ?1 -> fullkey FROM json_each(?1) ORDER BY id "
				       "DESC"
				     : "SELECT key, ?1 -> fullkey FROM json_each(?1)");
			sqlite3_bind_text(f.st, 1, col(q.st, 1), -1, SQLITE_STATIC);
			while (sqlite3_step(f.st) == SQLITE_ROW) {
				size_t n;
				char *data = json_string_bytes(col(f.st, 1), &n);

				zc_add_file(pass ? rev : fwd, col(f.st, 0), data, n);
				if (!pass) {
					tt_add_data(&tt, col(f.st, 0), data, n);
					sd_add_data(sd, col(f.st, 0), data, n);
				}
				free(data);
			}
			vq_close(&f);
		}
		assert_int_equal(sfs_zarr_checksum_final(fwd, out, sizeof(out)), 0);
		assert_string_equal(out, col(q.st, 0));
		assert_int_equal(sfs_zarr_checksum_final(rev, out, sizeof(out)), 0);
		assert_string_equal(out, col(q.st, 0));
		/* final does not consume: a second call gives the same answer */
		assert_int_equal(sfs_zarr_checksum_final(fwd, out, sizeof(out)), 0);
		assert_string_equal(out, col(q.st, 0));
		assert_int_equal(sfs_zarr_checksum_final(fwd, out, strlen(col(q.st, 0))), -ERANGE);
		tt_check(&tt, col(q.st, 0)); /* the tree form agrees */
		sd_check(sd, col(q.st, 0));  /* and a snapshot manifest's */
		sfs_zarr_checksum_free(fwd);
		sfs_zarr_checksum_free(rev);
		rows++;
	}
	assert_int_equal(rows, 3);
	vq_close(&q);
}

static void test_zarr_escapes(void **state)
{
	/* expected from Python json.dumps(separators=(',',':')) (ensure_ascii): DEL, an
	 * astral code point (surrogate pair), quote, backslash, newline, tab, é */
	struct sfs_zarr_checksum *z = NULL;
	char out[SFS_ZARR_CHECKSUM_MAX];

	(void)state;
	assert_int_equal(sfs_zarr_checksum_new(&z), 0);
	zc_add_file(z, "a\x7f\xf0\x9f\x98\x80\"\\\n", "x", 1);
	zc_add_file(z, "b\tc/\xc3\xa9", "", 0);
	assert_int_equal(sfs_zarr_checksum_final(z, out, sizeof(out)), 0);
	assert_string_equal(out, "49e6c74c59f686a40d8033e3429d1a2b-2--1");
	sfs_zarr_checksum_free(z);
	struct ttree t;
	tt_open(&t);
	tt_add_data(&t, "a\x7f\xf0\x9f\x98\x80\"\\\n", "x", 1);
	tt_add_data(&t, "b\tc/\xc3\xa9", "", 0);
	tt_add(&t, "empty/dirs/are/not/there", "0123456789abcdef0123456789abcdef", 0);
	sqlite3_exec(t.db, "DELETE FROM e WHERE name='there'", NULL, NULL, NULL);
	tt_check(&t, "49e6c74c59f686a40d8033e3429d1a2b-2--1");
}

static void test_zarr_large(void **state)
{
	/* 120000 files in 100 x 7 directories; expected from the Python reference model */
	struct sfs_zarr_checksum *z = NULL;
	char out[SFS_ZARR_CHECKSUM_MAX], path[64], hex[33];

	(void)state;
	assert_int_equal(sfs_zarr_checksum_new(&z), 0);
	for (uint32_t i = 0; i < 120000; i++) {
		snprintf(path, sizeof(path), "d%u/s%u/f%u", i % 100, i % 7, i);
		snprintf(hex, sizeof(hex), "%032x", (unsigned int)(i * 2654435761u));
		assert_int_equal(sfs_zarr_checksum_add(z, path, hex, i), 0);
	}
	assert_int_equal(sfs_zarr_checksum_final(z, out, sizeof(out)), 0);
	assert_string_equal(out, "192bcc872c6018e8032e0702720b21b8-120000--7199940000");
	sfs_zarr_checksum_free(z);
}

/*
 * The tree forms (a directory at a time: the commit's walk, a snapshot
 * manifest as publish and verify compute it) give the in-memory checksum of
 * the same 12,000 files in 50 x 7 directories, given in another order.
 */
static void test_zarr_tree_forms(void **state)
{
	struct sfs_zarr_checksum *z = NULL;
	struct sfs_snapdb *sd = NULL;
	struct ttree t;
	char want[SFS_ZARR_CHECKSUM_MAX], path[64], hex[33];

	(void)state;
	assert_int_equal(sfs_zarr_checksum_new(&z), 0);
	assert_int_equal(sfs_snapdb_open(NULL, &sd), 0);
	assert_int_equal(sfs_snapdb_begin(sd), 0);
	tt_open(&t);
	sqlite3_exec(t.db, "BEGIN", NULL, NULL, NULL);
	for (uint32_t k = 0; k < 12000; k++) {
		uint32_t i = 11999 - k;
		snprintf(path, sizeof(path), "d%u/s%u/f%u", i % 50, i % 7, i);
		snprintf(hex, sizeof(hex), "%032x", (unsigned int)(i * 2654435761u));
		assert_int_equal(sfs_zarr_checksum_add(z, path, hex, i), 0);
		tt_add(&t, path, hex, i);
		sd_add(sd, path, hex, i);
	}
	sqlite3_exec(t.db, "COMMIT", NULL, NULL, NULL);
	assert_int_equal(sfs_snapdb_end(sd, 0), 0);
	assert_int_equal(sfs_zarr_checksum_final(z, want, sizeof(want)), 0);
	sfs_zarr_checksum_free(z);
	tt_check(&t, want);
	sd_check(sd, want);
}

static void test_snapdb_checksum_no_digest(void **state)
{
	struct sfs_snapdb *sd = NULL;
	char out[SFS_ZARR_CHECKSUM_MAX];

	(void)state;
	assert_int_equal(sfs_snapdb_open(NULL, &sd), 0);
	sd_add(sd, "a/b", "0cc175b9c0f1b6a831c399e269772661", 1);
	sd_add(sd, "a/c", NULL, 1);
	assert_int_equal(sfs_snapdb_seal(sd), 0);
	assert_int_equal(sfs_snapdb_checksum(sd, out, sizeof(out)), -ENODATA);
	sfs_snapdb_close(sd);
}

static void test_zarr_invalid(void **state)
{
	static const char *bad_paths[] = {"",	   "/a",   "a/", "a//b", "./a",
					  "a/./b", "a/..", "..", "\xff", "a\xc3"};
	static const char md5[] = "0123456789abcdef0123456789abcdef";
	struct sfs_zarr_checksum *z = NULL;
	char out[SFS_ZARR_CHECKSUM_MAX];

	(void)state;
	assert_int_equal(sfs_zarr_checksum_new(&z), 0);
	for (size_t i = 0; i < sizeof(bad_paths) / sizeof(*bad_paths); i++)
		assert_int_equal(sfs_zarr_checksum_add(z, bad_paths[i], md5, 1), -EINVAL);
	assert_int_equal(sfs_zarr_checksum_add(z, "a", "0123456789ABCDEF0123456789abcdef", 1),
			 -EINVAL);
	{
		char short_md5[33] = "0123";
		assert_int_equal(sfs_zarr_checksum_add(z, "a", short_md5, 1), -EINVAL);
	}
	assert_int_equal(sfs_zarr_checksum_add(z, "a", md5, (uint64_t)INT64_MAX + 1), -EINVAL);
	/* nothing was added: the empty-tree checksum */
	assert_int_equal(sfs_zarr_checksum_final(z, out, sizeof(out)), 0);
	assert_string_equal(out, "481a2f77ab786a0f45aafd5db0971caa-0--0");
	/* a path both a file and a directory */
	assert_int_equal(sfs_zarr_checksum_add(z, "a", md5, 1), 0);
	assert_int_equal(sfs_zarr_checksum_add(z, "a.b", md5, 1), 0);
	assert_int_equal(sfs_zarr_checksum_add(z, "a/b", md5, 1), 0);
	assert_int_equal(sfs_zarr_checksum_final(z, out, sizeof(out)), -EINVAL);
	sfs_zarr_checksum_free(z);
	/* the same path twice */
	assert_int_equal(sfs_zarr_checksum_new(&z), 0);
	assert_int_equal(sfs_zarr_checksum_add(z, "x/y", md5, 1), 0);
	assert_int_equal(sfs_zarr_checksum_add(z, "x/z", md5, 1), 0);
	assert_int_equal(sfs_zarr_checksum_add(z, "x/y", md5, 1), 0);
	assert_int_equal(sfs_zarr_checksum_final(z, out, sizeof(out)), -EINVAL);
	sfs_zarr_checksum_free(z);
	/* total size over INT64_MAX */
	assert_int_equal(sfs_zarr_checksum_new(&z), 0);
	assert_int_equal(sfs_zarr_checksum_add(z, "x/y", md5, INT64_MAX), 0);
	assert_int_equal(sfs_zarr_checksum_add(z, "x/z", md5, 1), 0);
	assert_int_equal(sfs_zarr_checksum_final(z, out, sizeof(out)), -EOVERFLOW);
	sfs_zarr_checksum_free(z);
	sfs_zarr_checksum_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_zarr),
		cmocka_unit_test(test_zarr_escapes),
		cmocka_unit_test(test_zarr_large),
		cmocka_unit_test(test_zarr_tree_forms),
		cmocka_unit_test(test_snapdb_checksum_no_digest),
		cmocka_unit_test(test_zarr_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
