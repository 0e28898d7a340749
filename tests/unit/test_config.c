/* tests/unit/test_config.c - common/config.c: defaults, sfs_config_set, -o options,
 * SOURCEs and URLs, number parsers (run from the repository root).  Config files:
 * test_config_file.c; finalize and credentials: test_config_finalize.c. */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_defaults, test_setup),
		cmocka_unit_test_setup(test_set_each_key, test_setup),
		cmocka_unit_test_setup(test_opts, test_setup),
		cmocka_unit_test_setup(test_sources, test_setup),
		cmocka_unit_test_setup(test_subfolding, test_setup),
		cmocka_unit_test_setup(test_sizes, test_setup),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
