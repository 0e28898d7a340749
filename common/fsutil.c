/* common/fsutil.c - see fsutil.h */
#include "common/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
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

static int walk(int dfd, const char *rel, int depth, sfs_walk_cb cb, void *arg)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	int rc = 0;

	if (!d) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		return rc;
	}
	while (!rc && (e = readdir(d)) != NULL) {
		struct stat st;
		char *sub = NULL;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue; /* gone since readdir */
		if (asprintf(&sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) < 0) {
			rc = -ENOMEM;
			break;
		}
		rc = cb(arg, fd, e->d_name, sub, &st);
		if (!rc && S_ISDIR(st.st_mode) && depth < 256) {
			int cfd = openat(fd, e->d_name,
					 O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd >= 0) {
				rc = walk(cfd, sub, depth + 1, cb, arg);
				close(cfd);
			}
		}
		free(sub);
	}
	closedir(d);
	return rc;
}

int sfs_walk(int dirfd, sfs_walk_cb cb, void *arg)
{
	return walk(dirfd, "", 0, cb, arg);
}
