/* tests/unit/test_addressing.c - index/addressing: vectors and edge cases (run from the repo root) */
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

#define DJ_VECTORS "tests/vectors/datajoint.json"
#define ZC_VECTORS "tests/vectors/zarr_checksum.json"

static char *slurp(const char *path)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = read(fd, buf + len, cap - len - 1);
		assert_true(n >= 0);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	return buf;
}

/* Prepare sql on a fresh in-memory db with the vector file text bound to ?1. */
struct vq {
	sqlite3 *db;
	sqlite3_stmt *st;
	char *text;
};

static void vq_open(struct vq *q, const char *file, const char *sql)
{
	q->text = file ? slurp(file) : NULL;
	assert_int_equal(sqlite3_open(":memory:", &q->db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(q->db, sql, -1, &q->st, NULL), SQLITE_OK);
	if (q->text)
		sqlite3_bind_text(q->st, 1, q->text, -1, SQLITE_STATIC);
}

static void vq_close(struct vq *q)
{
	sqlite3_finalize(q->st);
	sqlite3_close(q->db);
	free(q->text);
}

static const char *col(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

static void md5_of(const void *buf, size_t n, unsigned char out[16])
{
	struct sfs_md5 m;

	assert_int_equal(sfs_md5_init(&m), 0);
	sfs_md5_update(&m, buf, n);
	sfs_md5_final(&m, out);
	assert_null(m.ctx);
}

/* ---- datajoint.json -------------------------------------------------------- */

static void test_vectors_pk_encoding(void **state)
{
	struct vq q;
	int rows = 0;

	(void)state;
	vq_open(&q, DJ_VECTORS,
		"SELECT value -> '$.json_value', value ->> '$.encoded' "
		"FROM json_each(?1, '$.pk_value_encoding')");
	while (sqlite3_step(q.st) == SQLITE_ROW) {
		struct sfs_commit_spec s;
		char spec[1024], out[1024], err[128];

		snprintf(spec, sizeof(spec), "{\"field\":\"f\",\"key\":{\"k\":%s}}", col(q.st, 0));
		assert_int_equal(sfs_commit_spec_parse(spec, strlen(spec), &s, err, sizeof(err)),
				 0);
		assert_int_equal(s.nkey, 1);
		assert_int_equal(sfs_pk_attr_encode(&s.key[0], out, sizeof(out)), 0);
		assert_string_equal(out, col(q.st, 1));
		if (s.key[0].type == SFS_PK_STRING) {
			assert_int_equal(sfs_encode_pk_value(s.key[0].text, out, sizeof(out)), 0);
			assert_string_equal(out, col(q.st, 1));
		}
		sfs_commit_spec_release(&s);
		rows++;
	}
	assert_int_equal(rows, 15);
	vq_close(&q);
}

static void test_vectors_content_hash(void **state)
{
	struct vq q;
	int rows = 0;

	(void)state;
	vq_open(&q, DJ_VECTORS,
		"SELECT value ->> '$.content_utf8', value ->> '$.hash' "
		"FROM json_each(?1, '$.content_hash')");
	while (sqlite3_step(q.st) == SQLITE_ROW) {
		unsigned char md5[16];
		char hex[33], h1[27], h2[27];

		md5_of(col(q.st, 0), (size_t)sqlite3_column_bytes(q.st, 0), md5);
		sfs_hash_from_md5(md5, h1);
		assert_string_equal(h1, col(q.st, 1));
		sfs_md5_hex(md5, hex);
		assert_int_equal(sfs_hash_from_md5hex(hex, h2), 0);
		assert_string_equal(h2, col(q.st, 1));
		rows++;
	}
	assert_int_equal(rows, 3);
	vq_close(&q);
}

static void test_vectors_hash_paths(void **state)
{
	struct vq q;
	int rows = 0;

	(void)state;
	vq_open(&q, DJ_VECTORS,
		"SELECT value ->> '$.hash', value ->> '$.schema', value ->> '$.hash_prefix', "
		"value ->> '$.path', json_type(value, '$.subfolding'), "
		"value ->> '$.subfolding[0]', value ->> '$.subfolding[1]', "
		"json_array_length(value, '$.subfolding') FROM json_each(?1, '$.hash_paths')");
	while (sqlite3_step(q.st) == SQLITE_ROW) {
		int fold[2], n = 0;
		char out[256];

		if (!strcmp(col(q.st, 4), "array")) {
			assert_int_equal(sqlite3_column_int(q.st, 7), 2);
			fold[0] = sqlite3_column_int(q.st, 5);
			fold[1] = sqlite3_column_int(q.st, 6);
			n = 2;
		}
		assert_int_equal(sfs_hash_path(col(q.st, 2), col(q.st, 1), fold, n, col(q.st, 0),
					       out, sizeof(out)),
				 0);
		assert_string_equal(out, col(q.st, 3));
		/* exactly the room needed works, one byte less does not */
		assert_int_equal(sfs_hash_path(col(q.st, 2), col(q.st, 1), fold, n, col(q.st, 0),
					       out, strlen(col(q.st, 3)) + 1),
				 0);
		assert_int_equal(sfs_hash_path(col(q.st, 2), col(q.st, 1), fold, n, col(q.st, 0),
					       out, strlen(col(q.st, 3))),
				 -ENAMETOOLONG);
		rows++;
	}
	assert_int_equal(rows, 3);
	vq_close(&q);
}

static void test_vectors_object_paths(void **state)
{
	struct vq q;
	int rows = 0;

	(void)state;
	/* the commit spec is built from the vector, so the parser feeds the path builder */
	vq_open(&q, DJ_VECTORS,
		"SELECT json_object('field', value ->> '$.field', 'key', json(value -> '$.key'), "
		"'ext', json(value -> '$.ext'), 'token', value ->> '$.token'), "
		"value ->> '$.schema_prefix', value ->> '$.partition_pattern', value ->> "
		"'$.schema', "
		"value ->> '$.table', value ->> '$.path', value ->> '$.token_length', "
		"value ->> '$.ext' FROM json_each(?1, '$.object_paths')");
	while (sqlite3_step(q.st) == SQLITE_ROW) {
		struct sfs_commit_spec s;
		struct sfs_object_path_params p;
		char out[1024], err[128];
		const char *spec = col(q.st, 0);

		assert_int_equal(sfs_commit_spec_parse(spec, strlen(spec), &s, err, sizeof(err)),
				 0);
		assert_int_equal(s.hash, 0);
		assert_int_equal(s.ext_given, 1);
		if (sqlite3_column_type(q.st, 7) == SQLITE_NULL)
			assert_null(s.ext);
		else
			assert_string_equal(s.ext, col(q.st, 7));
		if (sqlite3_column_type(q.st, 6) != SQLITE_NULL)
			assert_int_equal(strlen(s.token), sqlite3_column_int(q.st, 6));
		memset(&p, 0, sizeof(p));
		p.schema_prefix = col(q.st, 1);
		p.partition_pattern = col(q.st, 2);
		p.schema = col(q.st, 3);
		p.table = col(q.st, 4);
		p.field = s.field;
		p.token = s.token;
		p.ext = s.ext;
		p.key = s.key;
		p.nkey = s.nkey;
		assert_int_equal(sfs_object_path(&p, out, sizeof(out)), 0);
		assert_string_equal(out, col(q.st, 5));
		assert_int_equal(sfs_object_path(&p, out, strlen(col(q.st, 5))), -ENAMETOOLONG);
		sfs_commit_spec_release(&s);
		rows++;
	}
	assert_int_equal(rows, 5);
	vq_close(&q);
}

static void test_vectors_token_alphabet(void **state)
{
	struct vq q;
	char tok[17];

	(void)state;
	vq_open(&q, DJ_VECTORS,
		"SELECT value ->> '$.token_alphabet', value ->> '$.token_length_clamp[0]', "
		"value ->> '$.token_length_clamp[1]', value ->> '$.token_length_default' "
		"FROM (SELECT ?1 AS value)");
	assert_int_equal(sqlite3_step(q.st), SQLITE_ROW);
	for (int len = -3; len <= 40; len++) {
		int want = len < sqlite3_column_int(q.st, 1)   ? sqlite3_column_int(q.st, 1)
			   : len > sqlite3_column_int(q.st, 2) ? sqlite3_column_int(q.st, 2)
							       : len;

		memset(tok, '!', sizeof(tok));
		assert_int_equal(sfs_token_new(len, tok), 0);
		assert_int_equal(strlen(tok), want);
		assert_int_equal(strspn(tok, col(q.st, 0)), want);
	}
	assert_int_equal(sfs_token_new(sqlite3_column_int(q.st, 3), tok), 0);
	assert_int_equal(strlen(tok), 8);
	vq_close(&q);
}

static void test_token_random(void **state)
{
	char a[17], b[17];
	int seen[256] = {0}, distinct = 0;

	(void)state;
	assert_int_equal(sfs_token_new(16, a), 0);
	assert_int_equal(sfs_token_new(16, b), 0);
	assert_string_not_equal(a, b);
	/* 4096 symbols from a 64-letter alphabet: every letter shows up (miss odds ~ 2^-90) */
	for (int i = 0; i < 256; i++) {
		assert_int_equal(sfs_token_new(16, a), 0);
		for (int j = 0; j < 16; j++)
			seen[(unsigned char)a[j]] = 1;
	}
	for (int i = 0; i < 256; i++)
		distinct += seen[i];
	assert_int_equal(distinct, 64);
	assert_true(seen['-'] && seen['_']);
}

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

		tt_open(&tt);
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
				if (!pass)
					tt_add_data(&tt, col(f.st, 0), data, n);
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
	/* the tree form, the files given in another order */
	struct ttree t;
	tt_open(&t);
	sqlite3_exec(t.db, "BEGIN", NULL, NULL, NULL);
	for (uint32_t k = 0; k < 120000; k++) {
		uint32_t i = 119999 - k;
		snprintf(path, sizeof(path), "d%u/s%u/f%u", i % 100, i % 7, i);
		snprintf(hex, sizeof(hex), "%032x", (unsigned int)(i * 2654435761u));
		tt_add(&t, path, hex, i);
	}
	sqlite3_exec(t.db, "COMMIT", NULL, NULL, NULL);
	tt_check(&t, "192bcc872c6018e8032e0702720b21b8-120000--7199940000");
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

/* ---- MD5 and hashes ---------------------------------------------------------- */

static void test_md5_incremental(void **state)
{
	static const size_t cuts[] = {0, 1, 3, 7, 63, 64, 65, 127, 129, 1000, 4093, 4096};
	unsigned char data[5000], one[16], inc[16], snap[16], want_snap[16];
	struct sfs_md5 m, copy;
	char hex[33];
	size_t pos = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 131 + 7);
	md5_of(data, sizeof(data), one);
	assert_int_equal(sfs_md5_init(&m), 0);
	for (size_t i = 0; i < sizeof(cuts) / sizeof(*cuts); i++) {
		sfs_md5_update(&m, data + pos, cuts[i] - pos);
		pos = cuts[i];
		if (pos == 1000) {
			assert_int_equal(sfs_md5_copy(&copy, &m), 0);
			sfs_md5_final(&copy, snap);
			md5_of(data, 1000, want_snap);
			assert_memory_equal(snap, want_snap, 16);
		}
	}
	sfs_md5_update(&m, data + pos, sizeof(data) - pos);
	sfs_md5_final(&m, inc);
	assert_memory_equal(inc, one, 16);
	sfs_md5_release(&m); /* after final: harmless */
	sfs_md5_release(NULL);
	/* RFC 1321 test suite */
	md5_of("message digest", 14, one);
	sfs_md5_hex(one, hex);
	assert_string_equal(hex, "f96b697d7cb7938d525a2f31aaf161d0");
	/* release without final frees the context */
	assert_int_equal(sfs_md5_init(&m), 0);
	sfs_md5_update(&m, "abc", 3);
	sfs_md5_release(&m);
	assert_null(m.ctx);
}

static void test_base32_edges(void **state)
{
	unsigned char md5[16];
	char h[27];

	(void)state;
	memset(md5, 0, sizeof(md5));
	sfs_hash_from_md5(md5, h);
	assert_string_equal(h, "aaaaaaaaaaaaaaaaaaaaaaaaaa");
	memset(md5, 0xff, sizeof(md5));
	sfs_hash_from_md5(md5, h);
	assert_string_equal(h, "77777777777777777777777774");
	for (int i = 0; i < 16; i++)
		md5[i] = (unsigned char)i;
	sfs_hash_from_md5(md5, h);
	assert_string_equal(h, "aaaqeayeaudaocajbifqydiob4");
	assert_int_equal(sfs_hash_from_md5hex("000102030405060708090A0B0C0D0E0F", h), 0);
	assert_string_equal(h, "aaaqeayeaudaocajbifqydiob4");
	assert_int_equal(sfs_hash_from_md5hex("000102030405060708090a0b0c0d0e0", h), -EINVAL);
	assert_int_equal(sfs_hash_from_md5hex("000102030405060708090a0b0c0d0e0f0", h), -EINVAL);
	assert_int_equal(sfs_hash_from_md5hex("000102030405060708090a0b0c0d0e0g", h), -EINVAL);
	assert_int_equal(sfs_hash_from_md5hex(" 00102030405060708090a0b0c0d0e0f", h), -EINVAL);
}

static void test_hash_path_errors(void **state)
{
	char seg[300], out[1024];
	int fold[3] = {2, 2, 0};

	(void)state;
	memset(seg, 's', 256);
	seg[256] = '\0';
	assert_int_equal(sfs_hash_path("_hash", seg, NULL, 0, "abc", out, sizeof(out)),
			 -ENAMETOOLONG);
	assert_int_equal(sfs_hash_path(seg, "s", NULL, 0, "abc", out, sizeof(out)), -ENAMETOOLONG);
	seg[255] = '\0';
	assert_int_equal(sfs_hash_path(seg, "s", NULL, 0, "abc", out, sizeof(out)), 0);
	assert_int_equal(sfs_hash_path("a/b", "s", NULL, 0, "abc", out, sizeof(out)), 0);
	assert_string_equal(out, "a/b/s/abc");
	assert_int_equal(sfs_hash_path(NULL, "s", fold, 1, "abc", out, sizeof(out)), 0);
	assert_string_equal(out, "s/ab/abc");
	assert_int_equal(sfs_hash_path("_hash", "", NULL, 0, "abc", out, sizeof(out)), -EINVAL);
	assert_int_equal(sfs_hash_path("_hash", "s", NULL, 0, "", out, sizeof(out)), -EINVAL);
	assert_int_equal(sfs_hash_path("_hash", "s", fold, 3, "abcdef", out, sizeof(out)), -EINVAL);
	assert_int_equal(sfs_hash_path("_hash", "s", fold, 2, "abc", out, sizeof(out)), -EINVAL);
}

/* ---- floats, ext, pk values, object paths ---------------------------------- */

static void test_float_repr(void **state)
{
	static const struct {
		double v;
		const char *s;
	} cases[] = {
		{0.1, "0.1"},
		{1.0, "1.0"},
		{1e16, "1e+16"},
		{1e-5, "1e-05"},
		{123456789.123, "123456789.123"},
		{-0.0, "-0.0"},
		{0.0, "0.0"},
		{1e22, "1e+22"},
		{5e-324, "5e-324"},
		{1.5, "1.5"},
		{1.5e-7, "1.5e-07"},
		{1e15, "1000000000000000.0"},
		{9999999999999998.0, "9999999999999998.0"},
		{123456789012345.6, "123456789012345.6"},
		{0.0001, "0.0001"},
		{2.5e-5, "2.5e-05"},
		{1.7976931348623157e308, "1.7976931348623157e+308"},
		{1e100, "1e+100"},
		{-2.5, "-2.5"},
	};
	char out[SFS_FLOAT_REPR_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		assert_int_equal(sfs_float_repr(cases[i].v, out, sizeof(out)), 0);
		assert_string_equal(out, cases[i].s);
	}
	assert_int_equal(sfs_float_repr(1.0 / 0.0, out, sizeof(out)), 0);
	assert_string_equal(out, "inf");
	assert_int_equal(sfs_float_repr(0.1, out, 3), -ERANGE);
	assert_int_equal(sfs_float_repr(0.1, out, 4), 0);
}

static void test_default_ext(void **state)
{
	(void)state;
	assert_string_equal(sfs_default_ext("frames.zarr"), ".zarr");
	assert_string_equal(sfs_default_ext("a.tar.gz"), ".gz");
	assert_null(sfs_default_ext("noext"));
	assert_null(sfs_default_ext(".hidden"));
	assert_null(sfs_default_ext("a."));
	assert_null(sfs_default_ext(""));
	assert_string_equal(sfs_default_ext("..foo"), ".foo");
	assert_string_equal(sfs_default_ext("dir.d/x.h5"), ".h5");
	assert_null(sfs_default_ext("dir.d/x"));
}

static void test_pk_value_unicode(void **state)
{
	char text[1024], out[2048], want[1024];
	size_t pos = 0;

	(void)state;
	/* 60 characters but 120 bytes: not long, no unsafe char: raw */
	for (int i = 0; i < 60; i++)
		memcpy(text + 2 * i, "\xc3\xa9", 2);
	text[120] = '\0';
	assert_int_equal(sfs_encode_pk_value(text, out, sizeof(out)), 0);
	assert_string_equal(out, text);
	/* 101 characters: cut after 50 characters, md5 of the whole string (Python) */
	for (int i = 0; i < 101; i++)
		memcpy(text + 2 * i, "\xc3\xa9", 2);
	text[202] = '\0';
	for (int i = 0; i < 50; i++, pos += 6)
		memcpy(want + pos, "%C3%A9", 6);
	memcpy(want + pos, "_86919ab3", 10);
	assert_int_equal(sfs_encode_pk_value(text, out, sizeof(out)), 0);
	assert_string_equal(out, want);
	assert_int_equal(sfs_encode_pk_value(text, out, strlen(want)), -ENAMETOOLONG);
	assert_int_equal(sfs_encode_pk_value("\xc3\xa9/\xf0\x9f\x98\x80", out, sizeof(out)), 0);
	assert_string_equal(out, "%C3%A9%2F%F0%9F%98%80");
	/* exactly 100 characters is not long */
	memset(text, 'x', 100);
	text[100] = '\0';
	assert_int_equal(sfs_encode_pk_value(text, out, sizeof(out)), 0);
	assert_string_equal(out, text);
	assert_int_equal(sfs_encode_pk_value("", out, 1), 0);
	assert_string_equal(out, "");
	assert_int_equal(sfs_encode_pk_value("ab", out, 2), -ENAMETOOLONG);
}

static void test_object_path_segments(void **state)
{
	struct sfs_pk_attr key[3] = {
		{"b", SFS_PK_INT, "2"}, {"a", SFS_PK_STRING, "x"}, {"c", SFS_PK_BOOL, "True"}};
	struct sfs_object_path_params p = {
		.schema_prefix = "_schema",
		.partition_pattern = "{c}/{missing}/{a}/{c}",
		.schema = "s",
		.table = "T",
		.field = "f",
		.token = "tok",
		.ext = NULL,
		.key = key,
		.nkey = 3,
	};
	char big[400], out[2048];

	(void)state;
	/* pattern order, each once, missing skipped, not repeated after the table */
	assert_int_equal(sfs_object_path(&p, out, sizeof(out)), 0);
	assert_string_equal(out, "_schema/c=True/a=x/s/T/b=2/f_tok");
	p.partition_pattern = NULL;
	p.schema_prefix = "";
	assert_int_equal(sfs_object_path(&p, out, sizeof(out)), 0);
	assert_string_equal(out, "s/T/b=2/a=x/c=True/f_tok");
	/* 255-byte segments pass, 256 fail: table, key segment, file name */
	memset(big, 't', 256);
	big[255] = '\0';
	p.table = big;
	assert_int_equal(sfs_object_path(&p, out, sizeof(out)), 0);
	big[255] = 't';
	big[256] = '\0';
	assert_int_equal(sfs_object_path(&p, out, sizeof(out)), -ENAMETOOLONG);
	p.table = "T";
	memset(big, '/', 85); /* "a=" + 85 * "%2F" = 257 bytes */
	big[85] = '\0';
	key[1].text = big;
	assert_int_equal(sfs_object_path(&p, out, sizeof(out)), -ENAMETOOLONG);
	big[84] = '\0'; /* 254 bytes */
	assert_int_equal(sfs_object_path(&p, out, sizeof(out)), 0);
	key[1].text = "x";
	memset(big, 'e', 256);
	big[0] = '.';
	big[256 - 6] = '\0'; /* "f_tok" + 250 = 255 */
	p.ext = big;
	assert_int_equal(sfs_object_path(&p, out, sizeof(out)), 0);
	big[250] = 'e';
	big[251] = '\0';
	assert_int_equal(sfs_object_path(&p, out, sizeof(out)), -ENAMETOOLONG);
	p.ext = ".h5";
	p.token = "";
	assert_int_equal(sfs_object_path(&p, out, sizeof(out)), -EINVAL);
}

/* ---- sfs_commit_spec_parse ---------------------------------------------------- */

static void parse_ok(const char *v, size_t len, struct sfs_commit_spec *s)
{
	char err[256] = "";
	int rc = sfs_commit_spec_parse(v, len, s, err, sizeof(err));

	if (rc)
		print_error("unexpected error for %s: %s\n", v, err);
	assert_int_equal(rc, 0);
}

static void test_commit_spec_hash_forms(void **state)
{
	static const char *ok[] = {"hash", "hash\n", "hash \t\r\n", "{\"addressing\":\"hash\"}",
				   " { \"addressing\" : \"hash\" }\n"};
	struct sfs_commit_spec s;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
		memset(&s, 0xa5, sizeof(s));
		parse_ok(ok[i], strlen(ok[i]), &s);
		assert_int_equal(s.hash, 1);
		assert_null(s.field);
		assert_null(s.key);
		assert_int_equal(s.nkey, 0);
		assert_int_equal(s.ext_given, 0);
		assert_null(s.ext);
		sfs_commit_spec_release(&s);
	}
	/* not NUL-terminated: only len bytes count */
	parse_ok("hash!!", 4, &s);
	assert_int_equal(s.hash, 1);
	sfs_commit_spec_release(&s);
}

static void test_commit_spec_full(void **state)
{
	static const char v[] =
		"{\"addressing\":\"schema\",\"field\":\"raw_2\",\"key\":{\"subject_id\":1,"
		"\"session\":\"a\",\"ok\":true,\"no\":false,\"f\":1.5,\"e\":1E16,\"tiny\":1e-5,"
		"\"big\":123456789012345678901234567890,\"neg\":-0,\"m\":-5,\"_u\":\"\\u00e9/\"},"
		"\"ext\":\".h5\",\"token\":\"ab-_XY09\",\"table\":\"Rec_#1\"}";
	static const struct {
		const char *name;
		enum sfs_pk_type type;
		const char *text;
	} want[] = {
		{"subject_id", SFS_PK_INT, "1"},
		{"session", SFS_PK_STRING, "a"},
		{"ok", SFS_PK_BOOL, "True"},
		{"no", SFS_PK_BOOL, "False"},
		{"f", SFS_PK_FLOAT, "1.5"},
		{"e", SFS_PK_FLOAT, "1e+16"},
		{"tiny", SFS_PK_FLOAT, "1e-05"},
		{"big", SFS_PK_INT, "123456789012345678901234567890"},
		{"neg", SFS_PK_INT, "0"},
		{"m", SFS_PK_INT, "-5"},
		{"_u", SFS_PK_STRING, "\xc3\xa9/"},
	};
	struct sfs_commit_spec s;

	(void)state;
	parse_ok(v, strlen(v), &s);
	assert_int_equal(s.hash, 0);
	assert_string_equal(s.field, "raw_2");
	assert_int_equal(s.ext_given, 1);
	assert_string_equal(s.ext, ".h5");
	assert_string_equal(s.token, "ab-_XY09");
	assert_string_equal(s.table, "Rec_#1");
	assert_int_equal(s.nkey, sizeof(want) / sizeof(*want));
	for (size_t i = 0; i < s.nkey; i++) {
		assert_string_equal(s.key[i].name, want[i].name);
		assert_int_equal(s.key[i].type, want[i].type);
		assert_string_equal(s.key[i].text, want[i].text);
	}
	sfs_commit_spec_release(&s);
	sfs_commit_spec_release(&s); /* twice is fine */
	sfs_commit_spec_release(NULL);
}

static void test_commit_spec_ext(void **state)
{
	static const struct {
		const char *v;
		int given;
		const char *ext;
	} cases[] = {
		{"{\"field\":\"raw\",\"key\":{\"id\":1},\"ext\":null}", 1, NULL},
		{"{\"field\":\"raw\",\"key\":{\"id\":1},\"ext\":\"\"}", 1, NULL},
		{"{\"field\":\"raw\",\"key\":{\"id\":1},\"ext\":\"h5\"}", 1, ".h5"},
		{"{\"field\":\"raw\",\"key\":{\"id\":1},\"ext\":\".tar.gz\"}", 1, ".tar.gz"},
		{"{\"field\":\"raw\",\"key\":{\"id\":1}}", 0, NULL},
	};
	struct sfs_commit_spec s;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		parse_ok(cases[i].v, strlen(cases[i].v), &s);
		assert_int_equal(s.ext_given, cases[i].given);
		if (cases[i].ext)
			assert_string_equal(s.ext, cases[i].ext);
		else
			assert_null(s.ext);
		assert_null(s.token);
		assert_null(s.table);
		sfs_commit_spec_release(&s);
	}
}

static void test_commit_spec_key_order(void **state)
{
	static const char v[] = "{\"key\":{\"z\":1,\"a\":2,\"m\":3},\"field\":\"f\"}";
	struct sfs_commit_spec s;

	(void)state;
	parse_ok(v, strlen(v), &s);
	assert_int_equal(s.nkey, 3);
	assert_string_equal(s.key[0].name, "z");
	assert_string_equal(s.key[1].name, "a");
	assert_string_equal(s.key[2].name, "m");
	sfs_commit_spec_release(&s);
}

#define K "\"field\":\"f\",\"key\":{\"a\":1}"
static void test_commit_spec_einval(void **state)
{
	static const char *bad[] = {
		/* not "hash", not JSON, not an object */
		"",
		"hash x",
		"hashx",
		" hash",
		"HASH",
		"{",
		"[1]",
		"\"hash\"",
		"1",
		"{\"field\":'f'}",
		/* hash form with other members */
		"{\"addressing\":\"hash\"," K "}",
		"{\"addressing\":\"hash\",\"ext\":null}",
		"{\"addressing\":\"hash\",\"token\":\"abcd\"}",
		"{\"addressing\":\"other\"," K "}",
		/* unknown and duplicate members */
		"{" K ",\"extra\":1}",
		"{" K ",\"Field\":\"f\"}",
		"{" K ",\"field\":\"g\"}",
		"{\"field\":\"f\",\"key\":{\"a\":1,\"a\":2}}",
		/* missing field / key, empty key */
		"{\"key\":{\"a\":1}}",
		"{\"field\":\"f\"}",
		"{\"field\":\"f\",\"key\":{}}",
		"{}",
		/* wrong types */
		"{\"addressing\":1," K "}",
		"{\"field\":1,\"key\":{\"a\":1}}",
		"{\"field\":null,\"key\":{\"a\":1}}",
		"{\"field\":\"f\",\"key\":[1]}",
		"{\"field\":\"f\",\"key\":\"a\"}",
		"{" K ",\"ext\":5}",
		"{" K ",\"ext\":[\".h5\"]}",
		"{" K ",\"token\":5}",
		"{" K ",\"token\":null}",
		"{" K ",\"table\":5}",
		/* nested / null key values, non-finite float */
		"{\"field\":\"f\",\"key\":{\"a\":{\"b\":1}}}",
		"{\"field\":\"f\",\"key\":{\"a\":[1]}}",
		"{\"field\":\"f\",\"key\":{\"a\":null}}",
		"{\"field\":\"f\",\"key\":{\"a\":1e400}}",
		/* bad field names */
		"{\"field\":\"Raw\",\"key\":{\"a\":1}}",
		"{\"field\":\"1a\",\"key\":{\"a\":1}}",
		"{\"field\":\"_a\",\"key\":{\"a\":1}}",
		"{\"field\":\"a-b\",\"key\":{\"a\":1}}",
		"{\"field\":\"\",\"key\":{\"a\":1}}",
		"{\"field\":\"a b\",\"key\":{\"a\":1}}",
		/* bad key attribute names */
		"{\"field\":\"f\",\"key\":{\"1a\":1}}",
		"{\"field\":\"f\",\"key\":{\"a-b\":1}}",
		"{\"field\":\"f\",\"key\":{\"\":1}}",
		"{\"field\":\"f\",\"key\":{\"a b\":1}}",
		"{\"field\":\"f\",\"key\":{\"\\u00e9\":1}}",
		/* NUL escaped inside strings */
		"{\"field\":\"f\\u0000\",\"key\":{\"a\":1}}",
		"{\"field\":\"f\",\"key\":{\"a\":\"x\\u0000y\"}}",
		"{\"field\":\"f\",\"key\":{\"a\\u0000\":1}}",
		"{" K ",\"ext\":\".h\\u00005\"}",
		"{" K ",\"token\":\"ab\\u0000c\"}",
		"{" K ",\"table\":\"T\\u0000\"}",
		"{\"fie\\u0000ld\":\"f\",\"key\":{\"a\":1}}",
		/* ext with '/' */
		"{" K ",\"ext\":\"a/b\"}",
		"{" K ",\"ext\":\"/\"}",
		/* bad tokens */
		"{" K ",\"token\":\"\"}",
		"{" K ",\"token\":\"a b\"}",
		"{" K ",\"token\":\"ab!\"}",
		"{" K
		",\"token\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		/* bad tables */
		"{" K ",\"table\":\"\"}",
		"{" K ",\"table\":\"a-b\"}",
		"{" K ",\"table\":\"a/b\"}",
		"{" K
		",\"table\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		/* invalid UTF-8 in a key string */
		"{\"field\":\"f\",\"key\":{\"a\":\"\xff\"}}",
	};
	struct sfs_commit_spec s;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		memset(&s, 0x5a, sizeof(s));
		err[0] = '\0';
		if (sfs_commit_spec_parse(bad[i], strlen(bad[i]), &s, err, sizeof(err)) != -EINVAL)
			fail_msg("accepted or wrong error: %s", bad[i]);
		if (!err[0] || strchr(err, '\n'))
			fail_msg("no one-line reason for: %s", bad[i]);
		/* out-param untouched on failure */
		assert_int_equal(s.hash, 0x5a5a5a5a);
	}
	/* the longest accepted token and table, to pin the bounds above */
	{
		/* clang-format does not settle on string pasting with a macro */
		// clang-format off
		static const char v[] =
			"{" K
			",\"token\":"
			"\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
			"\"table\":"
			"\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}";
		// clang-format on
		parse_ok(v, strlen(v), &s);
		assert_int_equal(strlen(s.token), 64);
		assert_int_equal(strlen(s.table), 64);
		sfs_commit_spec_release(&s);
	}
	/* raw NUL bytes anywhere, in both forms; err may be NULL */
	assert_int_equal(sfs_commit_spec_parse("hash\0", 5, &s, err, sizeof(err)), -EINVAL);
	assert_int_equal(
		sfs_commit_spec_parse("{\"field\":\"f\",\"key\":{\"a\":1}}\0", 28, &s, NULL, 0),
		-EINVAL);
	{
		static const char v[] = "{\"field\":\"f\",\"key\":{\"a\":\"x\0y\"}}";
		assert_int_equal(sfs_commit_spec_parse(v, sizeof(v) - 1, &s, err, sizeof(err)),
				 -EINVAL);
	}
}
#undef K

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_pk_encoding),
		cmocka_unit_test(test_vectors_content_hash),
		cmocka_unit_test(test_vectors_hash_paths),
		cmocka_unit_test(test_vectors_object_paths),
		cmocka_unit_test(test_vectors_token_alphabet),
		cmocka_unit_test(test_token_random),
		cmocka_unit_test(test_vectors_zarr),
		cmocka_unit_test(test_zarr_escapes),
		cmocka_unit_test(test_zarr_large),
		cmocka_unit_test(test_zarr_invalid),
		cmocka_unit_test(test_md5_incremental),
		cmocka_unit_test(test_base32_edges),
		cmocka_unit_test(test_hash_path_errors),
		cmocka_unit_test(test_float_repr),
		cmocka_unit_test(test_default_ext),
		cmocka_unit_test(test_pk_value_unicode),
		cmocka_unit_test(test_object_path_segments),
		cmocka_unit_test(test_commit_spec_hash_forms),
		cmocka_unit_test(test_commit_spec_full),
		cmocka_unit_test(test_commit_spec_ext),
		cmocka_unit_test(test_commit_spec_key_order),
		cmocka_unit_test(test_commit_spec_einval),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
