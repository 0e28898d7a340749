/* tests/unit/test_commit_spec.c - sfs_commit_spec_parse: the commit VALUE forms and what is refused */
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
/* Limits: a value longer than an xattr can be, nesting deeper than the JSON parser goes. */
static void test_commit_spec_limits(void **state)
{
	struct sfs_commit_spec s;
	char err[256];
	size_t n = SFS_COMMIT_VALUE_MAX + 1, depth = 100000;
	char *v = malloc(n + 1), *deep = malloc(2 * depth + 64);

	(void)state;
	assert_non_null(v);
	assert_non_null(deep);
	/* a valid commit value padded with spaces past the limit */
	memset(v, ' ', n);
	static const char ok[] = "{\"field\":\"f\",\"key\":{\"a\":1}}";
	memcpy(v, ok, sizeof(ok) - 1);
	v[n] = '\0';
	assert_int_equal(sfs_commit_spec_parse(v, n, &s, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "longer than"));
	/* the same at the limit is fine */
	assert_int_equal(sfs_commit_spec_parse(v, n - 1, &s, err, sizeof(err)), 0);
	sfs_commit_spec_release(&s);
	/* a key value nested 25,000 deep: refused, no crash, no unbounded recursion */
	size_t k = (size_t)snprintf(deep, 64, "{\"field\":\"f\",\"key\":{\"a\":");
	for (size_t i = 0; i < depth / 4; i++)
		deep[k++] = '[';
	for (size_t i = 0; i < depth / 4; i++)
		deep[k++] = ']';
	k += (size_t)snprintf(deep + k, 8, "}}");
	assert_int_equal(sfs_commit_spec_parse(deep, k, &s, err, sizeof(err)), -EINVAL);
	free(v);
	free(deep);
}

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
		/* control characters in a string key value, escaped or raw */
		"{\"field\":\"f\",\"key\":{\"a\":\"x\\u0001y\"}}",
		"{\"field\":\"f\",\"key\":{\"a\":\"tab\\there\"}}",
		"{\"field\":\"f\",\"key\":{\"a\":\"line\\n\"}}",
		"{\"field\":\"f\",\"key\":{\"a\":\"del\x7f\"}}",
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
		cmocka_unit_test(test_commit_spec_hash_forms),
		cmocka_unit_test(test_commit_spec_full),
		cmocka_unit_test(test_commit_spec_ext),
		cmocka_unit_test(test_commit_spec_key_order),
		cmocka_unit_test(test_commit_spec_einval),
		cmocka_unit_test(test_commit_spec_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
