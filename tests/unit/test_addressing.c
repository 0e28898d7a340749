/* tests/unit/test_addressing.c - index/addressing: the DataJoint vectors, MD5, hashes and object paths (run from the repo root) */
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
#include "tests/unit/vectors.h"

#define DJ_VECTORS "tests/vectors/datajoint.json"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_pk_encoding),
		cmocka_unit_test(test_vectors_content_hash),
		cmocka_unit_test(test_vectors_hash_paths),
		cmocka_unit_test(test_vectors_object_paths),
		cmocka_unit_test(test_vectors_token_alphabet),
		cmocka_unit_test(test_token_random),
		cmocka_unit_test(test_md5_incremental),
		cmocka_unit_test(test_base32_edges),
		cmocka_unit_test(test_hash_path_errors),
		cmocka_unit_test(test_float_repr),
		cmocka_unit_test(test_default_ext),
		cmocka_unit_test(test_pk_value_unicode),
		cmocka_unit_test(test_object_path_segments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
