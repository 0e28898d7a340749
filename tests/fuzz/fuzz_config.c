/*
 * tests/fuzz/fuzz_config.c - libFuzzer harness: the configuration readers
 * (common/config.h).  The input is split at its first two NUL bytes into a
 * SOURCE URL (given "s3://" in front, so that nothing on disk is created or
 * read as a SOURCE), a -o option string and an INI file (written to a private
 * 0600 file); each is applied in that order, as a mount does, then
 * finalized and described.  HOME and the AWS_* variables point nowhere real.
 */
#include "common/config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char ini[64], home[] = "/tmp/fuzz-config-XXXXXX";

static void cleanup(void)
{
	unlink(ini);
	rmdir(home);
}

static void setup(void)
{
	if (!mkdtemp(home))
		abort();
	atexit(cleanup);
	snprintf(ini, sizeof(ini), "%s/mount.conf", home);
	setenv("HOME", home, 1);
	setenv("XDG_STATE_HOME", home, 1);
	setenv("XDG_CACHE_HOME", home, 1);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_PROFILE");
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 6), *src, *opts = "", *file = NULL, *pass = NULL;
	char err[512], desc[4096];
	struct sfs_config c;
	FILE *f;

	if (!ini[0])
		setup();
	if (!copy)
		return 0;
	memcpy(copy, "s3://", 5);
	memcpy(copy + 5, data, size);
	copy[size + 5] = '\0';
	src = copy;
	char *z = memchr(copy, '\0', size + 5);
	if (z && z < copy + size + 5) {
		opts = z + 1;
		z = memchr(opts, '\0', (size_t)(copy + size + 5 - opts));
		if (z && z < copy + size + 5)
			file = z + 1;
	}
	sfs_config_init(&c);
	int rc = sfs_config_parse_source(&c, src, err, sizeof(err));
	if (!rc)
		rc = sfs_config_parse_opts(&c, opts, &pass, err, sizeof(err));
	if (!rc && file && (f = fopen(ini, "w"))) {
		fputs(file, f);
		fclose(f);
		rc = sfs_config_load_file(&c, ini, err, sizeof(err));
	}
	if (!rc && !sfs_config_finalize(&c, err, sizeof(err)))
		(void)!sfs_config_describe(&c, desc, sizeof(desc));
	sfs_config_release(&c);
	free(pass);
	free(copy);
	return 0;
}
