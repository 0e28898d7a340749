/* tests/unit/test_config_file.c - common/config_file.c: config files (run from
 * the repository root) */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "tests/unit/config_helpers.h"

/* Load text as a config file (mode 0600) into a fresh config; returns rc. */
static int load_text(struct sfs_config *c, const char *text, char *path, size_t len)
{
	write_file("t.conf", 0600, text, path, len);
	sfs_config_init(c);
	memset(err, 0, sizeof(err));
	return sfs_config_load_file(c, path, err, sizeof(err));
}

/* ---------------------------------------------------------------- config files */

static void test_file_good(void **state)
{
	struct sfs_config c;
	char path[PATH_MAX];

	assert_int_equal(load_text(&c,
				   "; top-level keys\n"
				   "backend = s3\n"
				   "token_length: 10\n"
				   "\n"
				   "[store]\n"
				   "bucket = lab-data ; inline comment\n"
				   "location = /labs/ephys/\n"
				   "endpoint = http://127.0.0.1:9000\n"
				   "# a comment\n"
				   "subfolding = 2, 2\n"
				   "partition_pattern = {subject_id}/{session_date}\n"
				   "ro = yes\n"
				   "token_length = 11\n"
				   "[stagefs]\n"
				   "cache_size = 512M\r\n"
				   "snapshot = v1\n",
				   path, sizeof(path)),
			 0);
	assert_string_equal(c.backend, "s3");
	assert_string_equal(c.bucket, "lab-data");
	assert_string_equal(c.location, "/labs/ephys/");
	assert_int_equal(c.token_length, 11); /* the last one wins */
	assert_int_equal(c.n_subfolding, 2);
	assert_int_equal(c.read_only, 1);
	assert_true(c.cache_size == 512ull << 20);
	assert_string_equal(c.snapshot, "v1");
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	assert_string_equal(c.location, "labs/ephys");
	assert_int_equal(c.path_style, 1);
	sfs_config_release(&c);

	/* empty file */
	assert_int_equal(load_text(&c, "", path, sizeof(path)), 0);
	sfs_config_release(&c);
}

static void expect_file_error(const char *text, int want_rc, const char *want_tail)
{
	struct sfs_config c;
	char path[PATH_MAX], want[PATH_MAX + 128];

	assert_int_equal(load_text(&c, text, path, sizeof(path)), want_rc);
	snprintf(want, sizeof(want), "%s:%s", path, want_tail);
	assert_string_equal(err, want);
	/* nothing applied */
	assert_int_equal(c.token_length, 8);
	assert_string_equal(c.backend, "file");
	sfs_config_release(&c);
}

static void test_file_errors(void **state)
{
	struct sfs_config c;
	char path[PATH_MAX];

	expect_file_error("backend = s3\ntoken_length = 5\nthis line has no equals sign\n", -EINVAL,
			  "3: syntax error");
	expect_file_error("[store\nbackend = s3\n", -EINVAL, "1: syntax error");
	expect_file_error("# c\n\nbackend = s3\nbogus_key = 1\n", -EINVAL,
			  "4: unknown key 'bogus_key'");
	expect_file_error("backend = s3\n; c\n[store]\ntoken_length = twelve\n", -EINVAL,
			  "4: token_length: not a number");
	expect_file_error("backend = s3\n[mount]\n\ntoken_length = 5\n", -EINVAL,
			  "4: unknown section 'mount' (use [store])");
	expect_file_error("backend = s3\n  token_length = 5\n", -EINVAL,
			  "2: indented line (continuation lines are not supported; start keys "
			  "in column 1)");
	/* the first error wins, whatever its kind */
	expect_file_error("token_length = x\nnonsense\n", -EINVAL, "1: token_length: not a number");
	expect_file_error("nonsense\ntoken_length = x\n", -EINVAL, "1: syntax error");
	expect_file_error("backend = ftp\n", -EINVAL, "1: backend: 'ftp' is not file or s3");
	{
		FILE *f;

		snprintf(path, sizeof(path), "%s/nul.conf", tmpdir);
		f = fopen(path, "w");
		assert_non_null(f);
		assert_int_equal(fwrite("backend = s3\n\nlocation = a\0b\n", 1, 29, f), 29);
		assert_int_equal(fclose(f), 0);
		sfs_config_init(&c);
		assert_int_equal(sfs_config_load_file(&c, path, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "nul.conf:3: contains a NUL byte"));
		assert_string_equal(c.backend, "file");
		sfs_config_release(&c);
	}

	/* missing file, directory */
	sfs_config_init(&c);
	snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
	assert_int_equal(sfs_config_load_file(&c, path, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no such file"));
	assert_int_equal(sfs_config_load_file(&c, tmpdir, err, sizeof(err)), -EINVAL);
	sfs_config_release(&c);
}

static void test_file_long_lines(void **state)
{
	struct sfs_config c;
	char path[PATH_MAX];
	char token[1301], text[4096], loc[600];

	/* a 1300-character session token survives inih's 200-byte line buffer */
	for (size_t i = 0; i < sizeof(token) - 1; i++)
		token[i] =
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="[i % 65];
	token[sizeof(token) - 1] = '\0';
	snprintf(text, sizeof(text),
		 "backend = s3\n# %s\nsession_token = %s ; %s\nregion = eu-west-1\n", token, token,
		 token);
	assert_int_equal(load_text(&c, text, path, sizeof(path)), 0);
	assert_string_equal(c.session_token, token);
	assert_string_equal(c.region, "eu-west-1");
	sfs_config_release(&c);

	/* a long value with blanks inside keeps them */
	memset(loc, 0, sizeof(loc));
	loc[0] = '/';
	for (size_t i = 1; i < 500; i++)
		loc[i] = (i % 7 == 0) ? ' ' : 'x';
	snprintf(text, sizeof(text), "location = %s\ntoken_length = 5\n", loc);
	assert_int_equal(load_text(&c, text, path, sizeof(path)), 0);
	assert_string_equal(c.location, loc);
	assert_int_equal(c.token_length, 5);
	sfs_config_release(&c);

	/* a long line with nowhere to split: every boundary touches a blank */
	memset(loc, 0, sizeof(loc));
	for (size_t i = 0; i < 400; i++)
		loc[i] = (i % 2) ? ' ' : 'a';
	snprintf(text, sizeof(text), "backend = s3\nlocation = %s\n", loc);
	expect_file_error(text, -EINVAL, "2: line too long");

	/* a long line that is not a key, and keys after it: its line is named */
	memset(loc, 'z', 400);
	loc[400] = '\0';
	snprintf(text, sizeof(text), "backend = s3\n%s\nregion = eu-west-1\n", loc);
	expect_file_error(text, -EINVAL, "2: syntax error");
	snprintf(text, sizeof(text), "backend = s3\n%s = 1\nregion = eu-west-1\n", loc);
	expect_file_error(text, -EINVAL, "2: line too long");
}

static void test_file_permissions(void **state)
{
	struct sfs_config c;
	char path[PATH_MAX], want[PATH_MAX * 2 + 100];

	write_file("secret.conf", 0644, "backend = s3\nbucket = lab\nsecret_key = hunter2xyz\n",
		   path, sizeof(path));
	sfs_config_init(&c);
	assert_int_equal(sfs_config_load_file(&c, path, err, sizeof(err)), -EACCES);
	snprintf(want, sizeof(want),
		 "%s: holds secret_key but is readable by group/others; chmod 600 %s", path, path);
	assert_string_equal(err, want);
	assert_null(strstr(err, "hunter2"));
	assert_null(c.secret_key);
	assert_string_equal(c.backend, "file");

	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(sfs_config_load_file(&c, path, err, sizeof(err)), -EACCES);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(sfs_config_load_file(&c, path, err, sizeof(err)), 0);
	assert_string_equal(c.secret_key, "hunter2xyz");
	assert_int_equal(c.secret_from_file, 1);
	sfs_config_release(&c);

	/* session_token counts as a secret; a readable file without one is fine */
	write_file("tok.conf", 0604, "session_token = abc\n", path, sizeof(path));
	sfs_config_init(&c);
	assert_int_equal(sfs_config_load_file(&c, path, err, sizeof(err)), -EACCES);
	write_file("plain.conf", 0644, "backend = s3\nsecret_key =\n", path, sizeof(path));
	assert_int_equal(sfs_config_load_file(&c, path, err, sizeof(err)), 0);
	assert_int_equal(c.secret_from_file, 0);
	sfs_config_release(&c);
}

static void test_example_file(void **state)
{
	struct sfs_config c;

	sfs_config_init(&c);
	assert_int_equal(sfs_config_load_file(&c, "./mount.conf.example", err, sizeof(err)), 0);
	assert_string_equal(c.backend, "file");
	assert_string_equal(c.location, "/srv/stagefs/store");
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	sfs_config_release(&c);
	/* as a SOURCE too */
	sfs_config_init(&c);
	assert_int_equal(sfs_config_parse_source(&c, "./mount.conf.example", err, sizeof(err)), 0);
	assert_string_equal(c.location, "/srv/stagefs/store");
	sfs_config_release(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_file_good, test_setup),
		cmocka_unit_test_setup(test_file_errors, test_setup),
		cmocka_unit_test_setup(test_file_long_lines, test_setup),
		cmocka_unit_test_setup(test_file_permissions, test_setup),
		cmocka_unit_test_setup(test_example_file, test_setup),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
