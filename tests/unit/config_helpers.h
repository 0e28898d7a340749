/* tests/unit/config_helpers.h - what the config unit tests (test_config.c,
 * test_config_file.c, test_config_finalize.c) share: a private directory that
 * is also $HOME, the error buffer, writing a file there, a clean environment
 * before each test.  Include after cmocka.h. */
#ifndef SFS_TEST_CONFIG_HELPERS_H
#define SFS_TEST_CONFIG_HELPERS_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static char tmpdir[64];
static char err[512];

static inline void write_file(const char *name, mode_t mode, const char *text, char *path,
			      size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static inline void clean_env(void)
{
	static const char *const vars[] = {
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",	    "AWS_SESSION_TOKEN",
		"AWS_PROFILE",	     "AWS_SHARED_CREDENTIALS_FILE", "XDG_STATE_HOME",
		"XDG_CACHE_HOME"};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	setenv("HOME", tmpdir, 1);
}

static inline int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static inline int group_setup(void **state)
{
	char *d;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	d = mkdtemp(tmpdir);
	return d ? 0 : -1;
}

static inline int group_teardown(void **state)
{
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline int test_setup(void **state)
{
	clean_env();
	return 0;
}

#endif
