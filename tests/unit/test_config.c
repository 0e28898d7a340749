/* tests/unit/test_config.c - common/config.c (run from the repository root) */
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

static char tmpdir[64];
static char err[512];

/* ---------------------------------------------------------------- helpers */

static void write_file(const char *name, mode_t mode, const char *text, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* Load text as a config file (mode 0600) into a fresh config; returns rc. */
static int load_text(struct sfs_config *c, const char *text, char *path, size_t len)
{
	write_file("t.conf", 0600, text, path, len);
	sfs_config_init(c);
	memset(err, 0, sizeof(err));
	return sfs_config_load_file(c, path, err, sizeof(err));
}

static void clean_env(void)
{
	static const char *const vars[] = {
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",	    "AWS_SESSION_TOKEN",
		"AWS_PROFILE",	     "AWS_SHARED_CREDENTIALS_FILE", "XDG_STATE_HOME",
		"XDG_CACHE_HOME"};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	setenv("HOME", tmpdir, 1);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int group_setup(void **state)
{
	char *d;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	d = mkdtemp(tmpdir);
	return d ? 0 : -1;
}

static int group_teardown(void **state)
{
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int test_setup(void **state)
{
	clean_env();
	return 0;
}

/* ---------------------------------------------------------------- defaults */

static void test_defaults(void **state)
{
	struct sfs_config c;

	sfs_config_init(&c);
	assert_string_equal(c.backend, "file");
	assert_null(c.location);
	assert_string_equal(c.region, "us-east-1");
	assert_string_equal(c.store_name, "stagefs");
	assert_string_equal(c.schema_prefix, "_schema");
	assert_string_equal(c.hash_prefix, "_hash");
	assert_int_equal(c.token_length, 8);
	assert_int_equal(c.n_subfolding, 0);
	assert_null(c.partition_pattern);
	assert_true(c.cache_size == 10ull << 30);
	assert_int_equal(c.dir_cache_time, 10);
	assert_int_equal(c.inode_handles, -1);
	assert_true(c.max_inodes == 200 << 10);
	assert_int_equal(c.path_style, -1);
	assert_int_equal(c.read_only, 0);
	assert_int_equal(c.allow_other, 0);
	assert_int_equal(c.default_permissions, 0);
	assert_null(c.snapshot);

	/* file backend needs a location */
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "location: required for backend file");
	assert_int_equal(
		sfs_config_set(&c, "location", "/data/store/", SFS_CFG_OPTION, err, sizeof(err)),
		0);
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	assert_string_equal(c.location, "/data/store");
	assert_int_equal(c.path_style, 0);
	assert_non_null(c.index);
	assert_non_null(c.cache_dir);
	assert_null(c.access_key);
	sfs_config_release(&c);
	sfs_config_release(&c); /* released twice: zeroed, harmless */
	sfs_config_release(NULL);
}

/* ---------------------------------------------------------------- sfs_config_set */

struct kv {
	const char *key, *value;
	int rc;
};

static const struct kv kvs[] = {
	{"backend", "file", 0},
	{"backend", "s3", 0},
	{"backend", "ftp", -EINVAL},
	{"backend", "S3", -EINVAL},
	{"location", "/data/store", 0},
	{"location", "some/prefix", 0}, /* checked by finalize, per backend */
	{"endpoint", "http://127.0.0.1:9000", 0},
	{"endpoint", "https://s3.eu-central-1.amazonaws.com/", 0},
	{"endpoint", "http://[::1]:9000", 0},
	{"endpoint", "ftp://host", -EINVAL},
	{"endpoint", "127.0.0.1:9000", -EINVAL},
	{"endpoint", "http://", -EINVAL},
	{"endpoint", "http://host:99999", -EINVAL},
	{"endpoint", "http://host:port", -EINVAL},
	{"endpoint", "http://host/path", -EINVAL},
	{"endpoint", "http://user@host", -EINVAL},
	{"bucket", "lab-data.2024", 0},
	{"bucket", "ab", -EINVAL},
	{"bucket", "Lab", -EINVAL},
	{"bucket", "-lab", -EINVAL},
	{"bucket", "lab_data", -EINVAL},
	{"region", "us-east-1", 0},
	{"region", "US-EAST-1", -EINVAL},
	{"region", "us east", -EINVAL},
	{"path_style", "1", 0},
	{"path_style", "false", 0},
	{"path_style", "YES", 0},
	{"path_style", "maybe", -EINVAL},
	{"path_style", "", -EINVAL},
	{"access_key", "AKIAEXAMPLE", 0},
	{"access_key", "AKIA EXAMPLE", -EINVAL},
	{"secret_key", "abc/def+ghi", 0},
	{"secret_key", "abc def", -EINVAL},
	{"session_token", "tok", 0},
	{"credentials_file", "/etc/aws/credentials", 0},
	{"credentials_file", "aws/credentials", -EINVAL},
	{"profile", "lab-1", 0},
	{"profile", "my profile", -EINVAL},
	{"store_name", "main", 0},
	{"store_name", "lab/main", 0},
	{"store_name", "/main", -EINVAL},
	{"store_name", "main/", -EINVAL},
	{"store_name", "a//b", -EINVAL},
	{"store_name", "a/../b", -EINVAL},
	{"schema_prefix", "", 0},
	{"schema_prefix", "objects/schema", 0},
	{"schema_prefix", "/x", -EINVAL},
	{"schema_prefix", "..", -EINVAL},
	{"schema_prefix", "_staging", -EINVAL},
	{"hash_prefix", "", 0},
	{"hash_prefix", "_snapshots/x", -EINVAL},
	{"hash_prefix", "x/", -EINVAL},
	{"subfolding", "2,2", 0},
	{"subfolding", "17", -EINVAL},
	{"partition_pattern", "{subject_id}/{session_date}", 0},
	{"partition_pattern", "{a}", 0},
	{"partition_pattern", "", 0},
	{"partition_pattern", "subject_id", -EINVAL},
	{"partition_pattern", "{a}/", -EINVAL},
	{"partition_pattern", "{a}{b}", -EINVAL},
	{"partition_pattern", "{1a}", -EINVAL},
	{"partition_pattern", "{a-b}", -EINVAL},
	{"token_length", "12", 0},
	{"token_length", "abc", -EINVAL},
	{"token_length", "12x", -EINVAL},
	{"token_length", "", -EINVAL},
	{"index", "/var/lib/stagefs/x.db", 0},
	{"index", "x.db", -EINVAL},
	{"cache_dir", "/var/cache/x", 0},
	{"cache_dir", "~/cache", -EINVAL},
	{"cache_size", "512M", 0},
	{"cache_size", "lots", -EINVAL},
	{"dir_cache_time", "0", 0},
	{"dir_cache_time", "60", 0},
	{"dir_cache_time", "-1", -EINVAL},
	{"dir_cache_time", "1.5", -EINVAL},
	{"dir_cache_time", "86401", -EINVAL},
	{"max_inodes", "1000", 0},
	{"max_inodes", "2M", 0},
	{"max_inodes", "many", -EINVAL},
	{"inode_handles", "0", 0},
	{"inode_handles", NULL, 0},
	{"inode_handles", "sometimes", -EINVAL},
	{"snapshot", "paper-2024.v1_final", 0},
	{"snapshot", "bad/name", -EINVAL},
	{"snapshot", "..", -EINVAL},
	{"ro", NULL, 0},
	{"ro", "no", 0},
	{"allow_other", "true", 0},
	{"allow_other", "2", -EINVAL},
	{"default_permissions", "on", 0},
	{"location", "a\tb", -EINVAL},
	{"no_such_key", "1", -EINVAL},
	{"token_length", NULL, -EINVAL},
};

static void test_set_each_key(void **state)
{
	struct sfs_config c;
	char snap[140];

	sfs_config_init(&c);
	for (size_t i = 0; i < sizeof(kvs) / sizeof(kvs[0]); i++) {
		int rc = sfs_config_set(&c, kvs[i].key, kvs[i].value, SFS_CFG_FILE, err,
					sizeof(err));

		if (rc != kvs[i].rc)
			fail_msg("%s=%s: got %d want %d (%s)", kvs[i].key,
				 kvs[i].value ? kvs[i].value : "(null)", rc, kvs[i].rc, err);
		if (rc && strcmp(kvs[i].key, "no_such_key"))
			assert_memory_equal(err, kvs[i].key, strlen(kvs[i].key));
	}
	assert_string_equal(err, "token_length: needs a value");

	/* values stick; "" resets to the default */
	assert_int_equal(sfs_config_set(&c, "token_length", "2", SFS_CFG_FILE, err, 512), 0);
	assert_int_equal(c.token_length, 4);
	assert_int_equal(
		sfs_config_set(&c, "token_length", "99999999999999999999", SFS_CFG_FILE, err, 512),
		0);
	assert_int_equal(c.token_length, 16);
	assert_int_equal(sfs_config_set(&c, "token_length", "-3", SFS_CFG_FILE, err, 512), 0);
	assert_int_equal(c.token_length, 4);
	assert_int_equal(sfs_config_set(&c, "token_length", "abc", SFS_CFG_FILE, err, 512),
			 -EINVAL);
	assert_string_equal(err, "token_length: not a number");
	assert_int_equal(c.token_length, 4);
	assert_int_equal(sfs_config_set(&c, "store_name", "", SFS_CFG_FILE, err, 512), 0);
	assert_string_equal(c.store_name, "stagefs");
	assert_int_equal(sfs_config_set(&c, "region", "", SFS_CFG_FILE, err, 512), 0);
	assert_string_equal(c.region, "us-east-1");
	assert_int_equal(sfs_config_set(&c, "schema_prefix", "", SFS_CFG_FILE, err, 512), 0);
	assert_string_equal(c.schema_prefix, "");
	assert_int_equal(sfs_config_set(&c, "ro", NULL, SFS_CFG_OPTION, err, 512), 0);
	assert_int_equal(c.read_only, 1);
	assert_int_equal(sfs_config_set(&c, "ro", "0", SFS_CFG_OPTION, err, 512), 0);
	assert_int_equal(c.read_only, 0);
	assert_int_equal(sfs_config_set(&c, "subfolding", "1:3", SFS_CFG_OPTION, err, 512), 0);
	assert_int_equal(c.n_subfolding, 2);
	assert_int_equal(c.subfolding[0], 1);
	assert_int_equal(c.subfolding[1], 3);
	assert_int_equal(sfs_config_set(&c, "cache_size", "1T", SFS_CFG_OPTION, err, 512), 0);
	assert_true(c.cache_size == 1ull << 40);
	assert_int_equal(sfs_config_set(&c, "backend", "ftp", SFS_CFG_FILE, err, 512), -EINVAL);
	assert_string_equal(err, "backend: 'ftp' is not file or s3");
	assert_int_equal(sfs_config_set(&c, "bogus", "1", SFS_CFG_FILE, err, 512), -EINVAL);
	assert_string_equal(err, "unknown key 'bogus'");

	/* snapshot names: 128 ok, 129 not */
	memset(snap, 'a', sizeof(snap));
	snap[128] = '\0';
	assert_int_equal(sfs_config_set(&c, "snapshot", snap, SFS_CFG_FILE, err, 512), 0);
	snap[128] = 'a';
	snap[129] = '\0';
	assert_int_equal(sfs_config_set(&c, "snapshot", snap, SFS_CFG_FILE, err, 512), -EINVAL);

	/* secrets: refused from -o and URLs, never echoed */
	assert_int_equal(sfs_config_set(&c, "secret_key", "s3cr3t", SFS_CFG_OPTION, err, 512),
			 -EINVAL);
	assert_string_equal(err, "secret_key: not allowed in -o; use the config file or "
				 "AWS_SECRET_ACCESS_KEY");
	assert_int_equal(sfs_config_set(&c, "session_token", "s3cr3t", SFS_CFG_OPTION, err, 512),
			 -EINVAL);
	assert_null(strstr(err, "s3cr3t"));
	assert_int_equal(sfs_config_set(&c, "secret_key", "s3 cr3t", SFS_CFG_FILE, err, 512),
			 -EINVAL);
	assert_null(strstr(err, "cr3t"));
	assert_int_equal(sfs_config_set(&c, "secret_key", "s3cr3t", SFS_CFG_FILE, err, 512), 0);
	assert_int_equal(c.secret_from_file, 1);
	assert_int_equal(sfs_config_set(&c, "secret_key", "s3cr3t", SFS_CFG_URL, err, 512),
			 -EINVAL);
	/* NULL err is fine */
	assert_int_equal(sfs_config_set(&c, "bogus", "1", SFS_CFG_FILE, NULL, 0), -EINVAL);
	sfs_config_release(&c);
}

/* ---------------------------------------------------------------- -o */

static void test_opts(void **state)
{
	struct sfs_config c;
	char *pass = NULL;

	sfs_config_init(&c);
	assert_int_equal(
		sfs_config_parse_opts(&c,
				      "ro,allow_other,token_length=12,rw,nosuid,nodev,_netdev,"
				      "x-systemd.automount,fsname=lab\\,1,subfolding=2:2,"
				      "default_permissions,,max_read=131072,noatime",
				      &pass, err, sizeof(err)),
		0);
	assert_int_equal(c.read_only, 1); /* "rw" does not undo it */
	assert_int_equal(c.allow_other, 1);
	assert_int_equal(c.default_permissions, 1);
	assert_int_equal(c.token_length, 12);
	assert_int_equal(c.n_subfolding, 2);
	assert_non_null(pass);
	assert_string_equal(pass, "rw,nosuid,nodev,_netdev,x-systemd.automount,fsname=lab\\,1,"
				  "max_read=131072,noatime");

	/* appends to an existing list; escaped comma inside a value */
	assert_int_equal(sfs_config_parse_opts(&c, "sync,subfolding=2\\,3", &pass, err, 512), 0);
	assert_string_equal(pass, "rw,nosuid,nodev,_netdev,x-systemd.automount,fsname=lab\\,1,"
				  "max_read=131072,noatime,sync");
	assert_int_equal(c.subfolding[1], 3);
	free(pass);
	pass = NULL;

	/* only config keys: passthrough stays NULL */
	assert_int_equal(sfs_config_parse_opts(&c, "region=eu-west-1", &pass, err, 512), 0);
	assert_null(pass);
	assert_string_equal(c.region, "eu-west-1");

	/* errors leave *c unchanged */
	assert_int_equal(sfs_config_parse_opts(&c, "token_length=5,bogus", &pass, err, 512),
			 -EINVAL);
	assert_string_equal(err, "unknown option 'bogus'");
	assert_int_equal(c.token_length, 12);
	assert_null(pass);
	assert_int_equal(sfs_config_parse_opts(&c, "max_read", &pass, err, 512), -EINVAL);
	assert_int_equal(sfs_config_parse_opts(&c, "nosuid=1", &pass, err, 512), -EINVAL);
	assert_int_equal(sfs_config_parse_opts(&c, "token_length=x", &pass, err, 512), -EINVAL);
	assert_string_equal(err, "token_length: not a number");
	assert_int_equal(sfs_config_parse_opts(&c, "ro,secret_key=hunter2", &pass, err, 512),
			 -EINVAL);
	assert_string_equal(err, "secret_key: not allowed in -o; use the config file or "
				 "AWS_SECRET_ACCESS_KEY");
	assert_null(c.secret_key);
	assert_int_equal(sfs_config_parse_opts(&c, "session_token=hunter2", &pass, err, 512),
			 -EINVAL);
	assert_null(strstr(err, "hunter2"));
	assert_null(pass);
	assert_int_equal(sfs_config_parse_opts(&c, NULL, &pass, err, 512), 0);
	assert_int_equal(sfs_config_parse_opts(&c, "", &pass, err, 512), 0);
	/* NULL passthrough: FUSE options are checked but dropped */
	assert_int_equal(sfs_config_parse_opts(&c, "rw,dev", NULL, err, 512), 0);
	sfs_config_release(&c);
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

/* ---------------------------------------------------------------- sources */

static void test_sources(void **state)
{
	struct sfs_config c;
	char path[PATH_MAX], dir[PATH_MAX], src[PATH_MAX + 64];

	sfs_config_init(&c);
	/* a directory -> its realpath */
	snprintf(dir, sizeof(dir), "%s/store", tmpdir);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(src, sizeof(src), "%s/./store/", tmpdir);
	assert_int_equal(sfs_config_set(&c, "backend", "s3", SFS_CFG_OPTION, err, 512), 0);
	assert_int_equal(sfs_config_parse_source(&c, src, err, sizeof(err)), 0);
	assert_string_equal(c.backend, "file");
	assert_non_null(realpath(dir, path));
	assert_string_equal(c.location, path);

	/* file:///abs/dir (created), with a query */
	snprintf(src, sizeof(src), "file://%s/new%%20store/sub?token_length=6", tmpdir);
	assert_int_equal(sfs_config_parse_source(&c, src, err, sizeof(err)), 0);
	snprintf(dir, sizeof(dir), "%s/new store/sub", tmpdir);
	assert_non_null(realpath(dir, path));
	assert_string_equal(c.location, path);
	assert_int_equal(c.token_length, 6);
	assert_int_equal(sfs_config_parse_source(&c, "file://relative/dir", err, 512), -EINVAL);

	/* s3://bucket/prefix?query with percent-encoding */
	assert_int_equal(sfs_config_parse_source(
				 &c,
				 "s3://lab-data/pre/fix%20x?endpoint=http%3A//127.0.0.1:9000"
				 "&region=eu-west-1&path_style=0&subfolding=2%2C2&&schema_prefix=",
				 err, sizeof(err)),
			 0);
	assert_string_equal(c.backend, "s3");
	assert_string_equal(c.bucket, "lab-data");
	assert_string_equal(c.location, "/pre/fix x");
	assert_string_equal(c.endpoint, "http://127.0.0.1:9000");
	assert_string_equal(c.region, "eu-west-1");
	assert_int_equal(c.path_style, 0);
	assert_int_equal(c.n_subfolding, 2);
	assert_string_equal(c.schema_prefix, "");
	assert_int_equal(sfs_config_finalize(&c, err, sizeof(err)), 0);
	assert_string_equal(c.location, "pre/fix x");
	assert_int_equal(c.path_style, 0); /* explicitly set: kept */
	sfs_config_release(&c);

	sfs_config_init(&c);
	assert_int_equal(sfs_config_parse_source(&c, "s3://bucket", err, 512), 0);
	assert_string_equal(c.location, "");
	assert_int_equal(sfs_config_parse_source(&c, "S3://bucket/", err, 512), 0);

	/* errors, *c unchanged */
	assert_int_equal(sfs_config_parse_source(&c, "s3:///prefix", err, 512), -EINVAL);
	assert_string_equal(err, "source URL: missing bucket (s3://BUCKET/prefix)");
	assert_int_equal(sfs_config_parse_source(&c, "s3://?region=x", err, 512), -EINVAL);
	assert_int_equal(sfs_config_parse_source(&c, "s3://Bad_Bucket/x", err, 512), -EINVAL);
	assert_int_equal(sfs_config_parse_source(&c, "http://host/x", err, 512), -EINVAL);
	assert_string_equal(err, "unsupported URL scheme 'http' (use file:// or s3://)");
	assert_int_equal(sfs_config_parse_source(&c, "s3://b1b/x?colour=red", err, 512), -EINVAL);
	assert_string_equal(err, "source URL: unknown parameter 'colour'");
	assert_int_equal(sfs_config_parse_source(&c, "s3://b1b/x?secret_key=hunter2", err, 512),
			 -EINVAL);
	assert_null(strstr(err, "hunter2"));
	assert_int_equal(sfs_config_parse_source(&c, "s3://b1b/x?bucket=other", err, 512), -EINVAL);
	assert_int_equal(sfs_config_parse_source(&c, "s3://b1b/x?region=%zz", err, 512), -EINVAL);
	assert_int_equal(sfs_config_parse_source(&c, "s3://b1b/x?region=%4", err, 512), -EINVAL);
	assert_int_equal(sfs_config_parse_source(&c, "s3://b1b/x?region=a%00", err, 512), -EINVAL);
	assert_int_equal(sfs_config_parse_source(&c, "s3://b1b/x?token_length=q", err, 512),
			 -EINVAL);
	assert_string_equal(err, "source URL: token_length: not a number");
	assert_string_equal(c.bucket, "bucket");
	assert_string_equal(c.region, "us-east-1");

	snprintf(src, sizeof(src), "%s/nothing-here", tmpdir);
	assert_int_equal(sfs_config_parse_source(&c, src, err, sizeof(err)), -ENOENT);
	{
		char want[sizeof(src) + 64];

		snprintf(want, sizeof(want), "%s: no such directory or config file", src);
		assert_string_equal(err, want);
	}
	assert_int_equal(sfs_config_parse_source(&c, "/dev/null", err, sizeof(err)), -ENOENT);
	assert_int_equal(sfs_config_parse_source(&c, "", err, sizeof(err)), -ENOENT);

	/* a regular file -> config file */
	write_file("src.conf", 0600, "backend = s3\nbucket = from-file\n", path, sizeof(path));
	assert_int_equal(sfs_config_parse_source(&c, path, err, sizeof(err)), 0);
	assert_string_equal(c.bucket, "from-file");
	sfs_config_release(&c);
}

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

/* ---------------------------------------------------------------- numbers */

static void test_subfolding(void **state)
{
	int out[SFS_MAX_SUBFOLD] = {0};

	assert_int_equal(sfs_config_parse_subfolding("2,2", out), 2);
	assert_int_equal(out[0], 2);
	assert_int_equal(out[1], 2);
	assert_int_equal(sfs_config_parse_subfolding("2:2", out), 2);
	assert_int_equal(sfs_config_parse_subfolding("1:2,3", out), 3);
	assert_int_equal(out[2], 3);
	assert_int_equal(sfs_config_parse_subfolding("", out), 0);
	assert_int_equal(sfs_config_parse_subfolding(" 16 ", out), 1);
	assert_int_equal(sfs_config_parse_subfolding("0", out), -EINVAL);
	assert_int_equal(sfs_config_parse_subfolding("17", out), -EINVAL);
	assert_int_equal(sfs_config_parse_subfolding("a", out), -EINVAL);
	assert_int_equal(sfs_config_parse_subfolding("2,", out), -EINVAL);
	assert_int_equal(sfs_config_parse_subfolding(",2", out), -EINVAL);
	assert_int_equal(sfs_config_parse_subfolding("2;2", out), -EINVAL);
	assert_int_equal(sfs_config_parse_subfolding("-2", out), -EINVAL);
	assert_int_equal(sfs_config_parse_subfolding("1,1,1,1,1,1,1,1", out), 8);
	assert_int_equal(sfs_config_parse_subfolding("1,1,1,1,1,1,1,1,1", out), -EINVAL);
	assert_int_equal(sfs_config_parse_subfolding("16,11", out), -EINVAL); /* > 26 */
	assert_int_equal(sfs_config_parse_subfolding("99999999999999999999", out), -EINVAL);
	assert_int_equal(out[0], 1); /* untouched by failures */
	assert_int_equal(sfs_config_parse_subfolding(NULL, out), -EINVAL);
}

static void test_sizes(void **state)
{
	uint64_t v = 7;

	assert_int_equal(sfs_config_parse_size("10G", &v), 0);
	assert_true(v == 10ull << 30);
	assert_int_equal(sfs_config_parse_size("512M", &v), 0);
	assert_true(v == 512ull << 20);
	assert_int_equal(sfs_config_parse_size("4096", &v), 0);
	assert_true(v == 4096);
	assert_int_equal(sfs_config_parse_size("0", &v), 0);
	assert_true(v == 0);
	assert_int_equal(sfs_config_parse_size("1k", &v), 0);
	assert_true(v == 1024);
	assert_int_equal(sfs_config_parse_size("2GiB", &v), 0);
	assert_true(v == 2ull << 30);
	assert_int_equal(sfs_config_parse_size("3TB", &v), 0);
	assert_true(v == 3ull << 40);
	assert_int_equal(sfs_config_parse_size("16777215T", &v), 0);
	assert_true(v == 16777215ull << 40);
	v = 7;
	assert_int_equal(sfs_config_parse_size("16777216T", &v), -EINVAL);
	assert_int_equal(sfs_config_parse_size("1.5G", &v), -EINVAL);
	assert_int_equal(sfs_config_parse_size("99999999999999999999T", &v), -EINVAL);
	assert_int_equal(sfs_config_parse_size("99999999999999999999", &v), -EINVAL);
	assert_int_equal(sfs_config_parse_size("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	v = 7;
	assert_int_equal(sfs_config_parse_size("", &v), -EINVAL);
	assert_int_equal(sfs_config_parse_size("-1", &v), -EINVAL);
	assert_int_equal(sfs_config_parse_size(" 1", &v), -EINVAL);
	assert_int_equal(sfs_config_parse_size("10X", &v), -EINVAL);
	assert_int_equal(sfs_config_parse_size("10GG", &v), -EINVAL);
	assert_int_equal(sfs_config_parse_size("G", &v), -EINVAL);
	assert_int_equal(sfs_config_parse_size(NULL, &v), -EINVAL);
	assert_true(v == 7);
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
		cmocka_unit_test_setup(test_defaults, test_setup),
		cmocka_unit_test_setup(test_set_each_key, test_setup),
		cmocka_unit_test_setup(test_opts, test_setup),
		cmocka_unit_test_setup(test_file_good, test_setup),
		cmocka_unit_test_setup(test_file_errors, test_setup),
		cmocka_unit_test_setup(test_file_long_lines, test_setup),
		cmocka_unit_test_setup(test_file_permissions, test_setup),
		cmocka_unit_test_setup(test_example_file, test_setup),
		cmocka_unit_test_setup(test_sources, test_setup),
		cmocka_unit_test_setup(test_finalize_s3, test_setup),
		cmocka_unit_test_setup(test_credentials_env, test_setup),
		cmocka_unit_test_setup(test_credentials_file, test_setup),
		cmocka_unit_test_setup(test_subfolding, test_setup),
		cmocka_unit_test_setup(test_sizes, test_setup),
		cmocka_unit_test_setup(test_default_index_user, test_setup),
		cmocka_unit_test_setup(test_default_index_root, test_setup),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
