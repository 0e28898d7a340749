/* common/fsutil.c - see fsutil.h */
#include "common/fsutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int sfs_mkdir_p(const char *path, mode_t mode, int with_last)
{
	char *p = strdup(path);
	int rc = 0;

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		if (!*s && !with_last)
			break;
		char save = *s;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			rc = -errno;
			break;
		}
		*s = save;
		if (!save)
			break;
	}
	free(p);
	return rc;
}
