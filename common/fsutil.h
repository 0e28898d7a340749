/*
 * common/fsutil.h - small filesystem helpers shared by every module.
 */
#ifndef SFS_COMMON_FSUTIL_H
#define SFS_COMMON_FSUTIL_H

#include <sys/types.h>

/*
 * mkdir -p: create every missing directory of the absolute path `path` with
 * `mode` (existing ones are kept as they are).  With with_last == 0 the last
 * component is taken to be a file and is not created.  0 or -errno.
 * Thread-safe.
 */
int sfs_mkdir_p(const char *path, mode_t mode, int with_last) __attribute__((warn_unused_result));

#endif
