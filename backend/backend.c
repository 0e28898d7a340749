/* backend/backend.c - choose the implementation a config names. */
#include "backend/backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/config.h"
#include "common/log.h"

int sfs_backend_open(const struct sfs_config *cfg, struct sfs_backend **out)
{
	const char *name = cfg->backend ? cfg->backend : "file";
	int rc;

	if (strcmp(name, "file") == 0)
		rc = sfs_backend_file_open(cfg, out);
	else if (strcmp(name, "s3") == 0)
		rc = sfs_backend_s3_open(cfg, out);
	else
		return sfs_err(-EINVAL, "unknown backend '%s' (file or s3)", name);
	/* only the test build links a definition (tests/fakes/faulty_backend.c) */
	if (!rc && sfs_backend_test_wrap) {
		rc = sfs_backend_test_wrap(out);
		if (rc) {
			sfs_backend_free(*out);
			*out = NULL;
		}
	}
	return rc;
}

void sfs_backend_free(struct sfs_backend *b)
{
	if (b && b->ops->destroy)
		b->ops->destroy(b);
}

void sfs_bstat_from_stat(const struct stat *st, struct sfs_bstat *out)
{
	memset(out, 0, sizeof(*out));
	out->size = S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0;
	out->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
	out->mode = st->st_mode;
}

int sfs_backend_get_text(struct sfs_backend *b, const char *key, size_t max, char **out)
{
	void *buf = NULL;
	size_t n = 0;
	int rc = sfs_backend_get_bytes(b, key, &buf, &n, max);

	if (rc)
		return rc;
	char *s = realloc(buf, n + 1);
	if (!s) {
		free(buf);
		return -ENOMEM;
	}
	s[n] = '\0';
	*out = s;
	return 0;
}
