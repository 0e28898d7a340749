/*
 * fs/uploads.h - write-back of staged files to a store whose staging dir is a
 * local cache (s3), SPEC §3: with upload=async (the default) close() returns
 * once the file's bytes are safe in the local cache (fdatasync'd there) and
 * the file is queued; a pool of workers uploads it upload_delay seconds after
 * its last close, so a file written as a temporary name and renamed (zarr,
 * h5py's tools, cp --backup) costs one PUT under its final name.  fsync(),
 * a commit and the unmount upload at once what they need.
 *
 * The queue lives in memory only: after a crash the mount's reconciliation
 * uploads every cached file the index does not record as stored.
 *
 * Paths are staging-relative ("lab/sess/a.bin").  Functions return 0 or
 * -errno unless noted; with upload=sync or the file backend every call is a
 * no-op (sfs_uploads_on() is 0).
 */
#ifndef SFS_FS_UPLOADS_H
#define SFS_FS_UPLOADS_H

#include "fs/fs.h"

/* Start the workers (at mount, after the staging dir is set up). */
int sfs_uploads_start(struct sfs_fs *fs) __attribute__((warn_unused_result));
/* Upload everything still queued (each file tried a few times), stop the workers. */
void sfs_uploads_stop(struct sfs_fs *fs);
/* 1 when closes are queued instead of uploaded (upload=async on a caching backend). */
int sfs_uploads_on(struct sfs_fs *fs);

/*
 * Upload everything queued now, whatever its due time, and wait for it (the
 * local cache is full of files not uploaded yet: a writer waits for room).
 * Returns how many went up; gives up after 30 s without progress.
 */
int sfs_uploads_flush(struct sfs_fs *fs);
/* rel was closed after a write: (re)queue it, due upload_delay from now. */
int sfs_uploads_queue(struct sfs_fs *fs, const char *rel) __attribute__((warn_unused_result));
/*
 * Take rel out of the queue (the caller uploads it itself, e.g. fsync or a
 * commit), after waiting for an upload of it that is running: 1 when it was
 * queued, 0 when not.
 */
int sfs_uploads_take(struct sfs_fs *fs, const char *rel);
/*
 * from was renamed to to (a file, or a directory when is_dir): after waiting
 * for running uploads of from (or below it), what was queued under from is
 * queued under to, and what was queued at (or below) to is dropped (replaced).
 * Returns 1 when from itself was queued (its bytes have not been uploaded
 * since its last change), 0 when not.
 */
int sfs_uploads_renamed(struct sfs_fs *fs, const char *from, const char *to, int is_dir);
/* rel (or everything below it when is_dir) was removed: drop it from the queue. */
void sfs_uploads_unlinked(struct sfs_fs *fs, const char *rel, int is_dir);
/* 1 when rel is queued or being uploaded (for user.stagefs.status), 0 when not. */
int sfs_uploads_pending(struct sfs_fs *fs, const char *rel);

#endif
