/* tests/unit/test_config_finalize.c - common/config_finalize.c: finalize, the
 * credential sources, default index and cache paths, describe */
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

/* ---------------------------------------------------------------- finalize */

static void test_finalize_s3(void **state)
{
	struct sfs_config c;
	char d[256];

	sfs_config_init(&c);
	assert_int_equal(sfs_config_set(&c, "backend", "s3", SFS_CFG_FILE, err, 512), 0);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "bucket: required for backend s3");
	assert_int_equal(sfs_config_set(&c, "bucket", "lab", SFS_CFG_FILE, err, 512), 0);
	assert_int_equal(sfs_config_set(&c, "region", "eu-west-2", SFS_CFG_FILE, err, 512), 0);
	assert_int_equal(sfs_config_set(&c, "snapshot", "v1", SFS_CFG_FILE, err, 512), 0);
	assert_int_equal(sfs_config_describe(&c, d, sizeof(d)), 0);
	assert_string_equal(d, "s3://lab snapshot v1");
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	assert_string_equal(c.endpoint, "https://s3.eu-west-2.amazonaws.com");
	assert_int_equal(c.path_style, 0);
	assert_string_equal(c.location, "");
	assert_int_equal(c.read_only, 1);
	assert_null(c.profile);
	assert_null(c.access_key);
	assert_int_equal(sfs_config_describe(&c, d, sizeof(d)), 0);
	assert_string_equal(d, "s3://lab at https://s3.eu-west-2.amazonaws.com snapshot v1");
	assert_int_equal(sfs_config_describe(&c, d, 10), -ENOSPC);
	assert_int_equal(strlen(d), 9);
	sfs_config_release(&c);

	/* path_style auto: a port or an IP means path-style */
	static const struct {
		const char *endpoint;
		int path_style;
	} ps[] = {{"http://minio.lan:9000", 1},
		  {"http://10.0.0.5", 1},
		  {"http://[::1]", 1},
		  {"https://storage.example.org/", 0}};
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		sfs_config_init(&c);
		assert_int_equal(sfs_config_parse_source(&c, "s3://lab/p/", err, 512), 0);
		assert_int_equal(
			sfs_config_set(&c, "endpoint", ps[i].endpoint, SFS_CFG_FILE, err, 512), 0);
		assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
		assert_int_equal(c.path_style, ps[i].path_style);
		assert_int_equal(c.endpoint[strlen(c.endpoint) - 1] != '/', 1);
		assert_int_equal(sfs_config_describe(&c, d, sizeof(d)), 0);
		assert_memory_equal(d, "s3://lab/p at http", 18);
		sfs_config_release(&c);
	}

	/* bad s3 prefix; same prefixes; relative file location: *c unchanged */
	sfs_config_init(&c);
	assert_int_equal(sfs_config_parse_source(&c, "s3://lab/a//b", err, 512), 0);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "location: empty path segment");
	assert_null(c.endpoint);
	sfs_config_release(&c);
	sfs_config_init(&c);
	assert_int_equal(sfs_config_parse_opts(&c, "location=/x,schema_prefix=o,hash_prefix=o",
					       NULL, err, 512),
			 0);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "hash_prefix: must differ from schema_prefix");
	assert_int_equal(sfs_config_parse_opts(&c, "location=rel/x,hash_prefix=", NULL, err, 512),
			 0);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "location: must be an absolute path");
	assert_int_equal(sfs_config_describe(&c, d, sizeof(d)), 0);
	assert_string_equal(d, "file:rel/x");
	sfs_config_release(&c);
}

/* A finalized s3 config with the credential sources of the current environment. */
static void finalize_s3(struct sfs_config *c, const char *opts)
{
	sfs_config_init(c);
	assert_int_equal(sfs_config_parse_source(c, "s3://lab", err, 512), 0);
	if (opts)
		assert_int_equal(sfs_config_parse_opts(c, opts, NULL, err, 512), 0);
}

static void test_credentials_env(void **state)
{
	struct sfs_config c;
	char path[PATH_MAX];

	setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	setenv("AWS_SESSION_TOKEN", "envtoken", 1);

	/* env fills everything */
	finalize_s3(&c, NULL);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	assert_string_equal(c.access_key, "ENVKEY");
	assert_string_equal(c.secret_key, "envsecret");
	assert_string_equal(c.session_token, "envtoken");
	sfs_config_release(&c);

	/* explicit config-file keys win; a stale env token does not pair with them */
	write_file("creds.conf", 0600,
		   "backend = s3\nbucket = lab\naccess_key = FILEKEY\nsecret_key = filesecret\n",
		   path, sizeof(path));
	sfs_config_init(&c);
	assert_int_equal(sfs_config_load_file(&c, path, err, sizeof(err)), 0);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	assert_string_equal(c.access_key, "FILEKEY");
	assert_string_equal(c.secret_key, "filesecret");
	assert_null(c.session_token);
	sfs_config_release(&c);

	/* -o access_key wins over env; secret from env */
	finalize_s3(&c, "access_key=OPTKEY");
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	assert_string_equal(c.access_key, "OPTKEY");
	assert_string_equal(c.secret_key, "envsecret");
	assert_null(c.session_token);
	sfs_config_release(&c);

	/* half a pair is an error */
	unsetenv("AWS_SECRET_ACCESS_KEY");
	finalize_s3(&c, NULL);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "secret_key: missing (access_key is set)");
	assert_null(c.access_key); /* unchanged on error */
	sfs_config_release(&c);

	/* the file backend ignores credentials */
	sfs_config_init(&c);
	assert_int_equal(sfs_config_set(&c, "location", "/x", SFS_CFG_FILE, err, 512), 0);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	assert_null(c.access_key);
	sfs_config_release(&c);
}

static void test_credentials_file(void **state)
{
	struct sfs_config c;
	char path[PATH_MAX], home_creds[PATH_MAX], dir[PATH_MAX];
	char token[700], text[2048];

	memset(token, 'T', sizeof(token) - 1);
	token[sizeof(token) - 1] = '\0';
	snprintf(text, sizeof(text),
		 "[default]\n"
		 "aws_access_key_id = DEFKEY\n"
		 "aws_secret_access_key = defsecret\n"
		 "\n"
		 "[lab]\n"
		 "aws_access_key_id=LABKEY\n"
		 "aws_secret_access_key=labsecret\n"
		 "aws_session_token = %s\n"
		 "region = ignored\n",
		 token);
	write_file("aws-credentials", 0600, text, path, sizeof(path));

	/* $AWS_SHARED_CREDENTIALS_FILE, profile default */
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
	finalize_s3(&c, NULL);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	assert_string_equal(c.access_key, "DEFKEY");
	assert_string_equal(c.secret_key, "defsecret");
	assert_null(c.session_token);
	assert_null(c.credentials_file); /* defaults are not stored */
	assert_null(c.profile);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0); /* idempotent */
	assert_string_equal(c.access_key, "DEFKEY");
	sfs_config_release(&c);

	/* $AWS_PROFILE; a long session token */
	setenv("AWS_PROFILE", "lab", 1);
	finalize_s3(&c, NULL);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	assert_string_equal(c.access_key, "LABKEY");
	assert_string_equal(c.secret_key, "labsecret");
	assert_string_equal(c.session_token, token);
	sfs_config_release(&c);

	/* -o profile= beats AWS_PROFILE; env keys beat the file */
	setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	finalize_s3(&c, "profile=default");
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	assert_string_equal(c.access_key, "ENVKEY");
	assert_string_equal(c.secret_key, "envsecret");
	sfs_config_release(&c);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");

	/* explicit profile not in the file */
	finalize_s3(&c, "profile=nope");
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "profile: 'nope' not found in"));
	sfs_config_release(&c);

	/* credentials_file key beats the env var; missing explicit file is an error */
	snprintf(home_creds, sizeof(home_creds), "credentials_file=%s/none", tmpdir);
	finalize_s3(&c, home_creds);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), -ENOENT);
	sfs_config_release(&c);

	/* $HOME/.aws/credentials by default; a missing default file is fine */
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	unsetenv("AWS_PROFILE");
	finalize_s3(&c, NULL);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	assert_null(c.access_key);
	sfs_config_release(&c);
	snprintf(home_creds, sizeof(home_creds), "%s/.aws/credentials", tmpdir);
	snprintf(dir, sizeof(dir), "%s/.aws", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(rename(path, home_creds), 0);
	finalize_s3(&c, NULL);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	assert_string_equal(c.access_key, "DEFKEY");
	sfs_config_release(&c);

	/* a broken credentials file names its line */
	write_file("bad-credentials", 0600, "[default]\naws_access_key_id\n", path, sizeof(path));
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
	finalize_s3(&c, NULL);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), -EINVAL);
	{
		char want[sizeof(path) + 64];

		snprintf(want, sizeof(want), "%s:2: syntax error", path);
		assert_string_equal(err, want);
	}
	sfs_config_release(&c);
}

/* ---------------------------------------------------------------- default paths */

/* md5("file:///data/store") = 77bf45fdb15ef658..., md5("s3:http://127.0.0.1:9000/bucket/pre/fix") = 92600f67631b4ade... */
#define FILE_ID "77bf45fdb15ef658"
#define S3_ID	"92600f67631b4ade"

/* Finalize the /data/store file config; copy index and cache_dir out. */
static int default_paths(char *index, char *cache, size_t len)
{
	struct sfs_config c;
	int rc;

	sfs_config_init(&c);
	rc = sfs_config_parse_opts(&c, "location=/data/store/", NULL, err, sizeof(err));
	if (!rc)
		rc = sfs_config_finalize(&c, err, sizeof(err));
	if (!rc) {
		snprintf(index, len, "%s", c.index);
		snprintf(cache, len, "%s", c.cache_dir);
	}
	sfs_config_release(&c);
	return rc;
}

static void copy_str(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	assert_true(n < len);
	memcpy(dst, src, n + 1);
}

/* Run default_paths as a non-root user (in a child when we are root). */
static void default_paths_as_user(char *index, char *cache, size_t len)
{
	int fds[2], status;
	pid_t pid;
	char buf[2 * PATH_MAX + 2];
	ssize_t n;

	if (geteuid() != 0) {
		assert_int_equal(default_paths(index, cache, len), 0);
		return;
	}
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char i[PATH_MAX], c[PATH_MAX];
		int ok;

		close(fds[0]);
		ok = setresgid(65534, 65534, 65534) == 0 && setresuid(65534, 65534, 65534) == 0 &&
		     default_paths(i, c, sizeof(i)) == 0;
		if (ok)
			dprintf(fds[1], "%s\n%s\n", i, c);
		_exit(ok ? 0 : 1);
	}
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(n > 0);
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	copy_str(index, len, buf);
	copy_str(cache, len, buf + strlen(buf) + 1);
	cache[strcspn(cache, "\n")] = '\0';
}

static void test_default_index_user(void **state)
{
	char index[PATH_MAX], cache[PATH_MAX], want[PATH_MAX + 64];

	setenv("XDG_STATE_HOME", "/xdg/state", 1);
	setenv("XDG_CACHE_HOME", "/xdg/cache", 1);
	default_paths_as_user(index, cache, sizeof(index));
	assert_string_equal(index, "/xdg/state/stagefs/" FILE_ID ".db");
	assert_string_equal(cache, "/xdg/cache/stagefs");

	/* stable: same store, same id */
	default_paths_as_user(index, cache, sizeof(index));
	assert_string_equal(index, "/xdg/state/stagefs/" FILE_ID ".db");

	/* relative XDG values are ignored (XDG spec): $HOME fallback */
	setenv("XDG_STATE_HOME", "relative", 1);
	unsetenv("XDG_CACHE_HOME");
	default_paths_as_user(index, cache, sizeof(index));
	snprintf(want, sizeof(want), "%s/.local/state/stagefs/" FILE_ID ".db", tmpdir);
	assert_string_equal(index, want);
	snprintf(want, sizeof(want), "%s/.cache/stagefs", tmpdir);
	assert_string_equal(cache, want);
}

static void test_default_index_root(void **state)
{
	struct sfs_config c;
	char index[PATH_MAX], cache[PATH_MAX];

	if (geteuid() != 0)
		skip();
	setenv("XDG_STATE_HOME", "/xdg/state", 1);
	assert_int_equal(default_paths(index, cache, sizeof(index)), 0);
	assert_string_equal(index, "/var/lib/stagefs/" FILE_ID ".db");
	assert_string_equal(cache, "/var/cache/stagefs");

	sfs_config_init(&c);
	assert_int_equal(
		sfs_config_parse_source(&c, "s3://bucket/pre/fix/?endpoint=http://127.0.0.1:9000/",
					err, sizeof(err)),
		0);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	assert_string_equal(c.index, "/var/lib/stagefs/" S3_ID ".db");
	/* an explicit index is kept */
	assert_int_equal(sfs_config_set(&c, "index", "/tmp/x.db", SFS_CFG_OPTION, err, 512), 0);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	assert_string_equal(c.index, "/tmp/x.db");
	sfs_config_release(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_finalize_s3, test_setup),
		cmocka_unit_test_setup(test_credentials_env, test_setup),
		cmocka_unit_test_setup(test_credentials_file, test_setup),
		cmocka_unit_test_setup(test_default_index_user, test_setup),
		cmocka_unit_test_setup(test_default_index_root, test_setup),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
