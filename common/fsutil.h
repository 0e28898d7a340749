/*
 * common/fsutil.h - small filesystem helpers shared by every module.
 */
#ifndef SFS_COMMON_FSUTIL_H
#define SFS_COMMON_FSUTIL_H

#include <sys/stat.h>
#include <sys/types.h>

/*
 * mkdir -p: create every missing directory of the absolute path `path` with
 * `mode` (existing ones are kept as they are).  With with_last == 0 the last
 * component is taken to be a file and is not created.  0 or -errno.
 * Thread-safe.
 */
int sfs_mkdir_p(const char *path, mode_t mode, int with_last) __attribute__((warn_unused_result));

/*
 * Visit every entry below directory dirfd (depth-first, at most 256 levels),
 * never following a symlink.  cb gets the directory the entry is in (an fd
 * valid for the call), its name, its path relative to the start ("a/b/c") and
 * its lstat; directories are visited before their contents.  A non-zero
 * return from cb stops the walk and is returned.  0 or -errno.
 */
typedef int (*sfs_walk_cb)(void *arg, int dirfd, const char *name, const char *rel,
			   const struct stat *st);
int sfs_walk(int dirfd, sfs_walk_cb cb, void *arg) __attribute__((warn_unused_result));

#endif
