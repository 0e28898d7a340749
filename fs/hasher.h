/*
 * fs/hasher.h - the MD5 of a staged file, computed while it is being written.
 *
 * Writes only record which byte ranges were written (O(1) bookkeeping, no
 * copy, no hashing on the FUSE thread).  One background thread, scheduled
 * SCHED_IDLE so it only uses spare CPU, trails the writer and hashes the
 * contiguous written prefix by reading it back from the page cache.  A file
 * written append-only (in any order of non-overlapping writes) ends with its
 * digest ready; any rewrite of written bytes makes the job invalid and the
 * commit reads the file instead.  sfs_hjob_result() drives a job to its end on
 * the caller's thread when the background thread has not caught up.
 *
 * A job is reference counted: the inode holds one reference, the hasher
 * thread another while the job is queued.  All functions are thread-safe.
 */
#ifndef SFS_FS_HASHER_H
#define SFS_FS_HASHER_H

#include <stdint.h>

struct sfs_hjob;

/* Start / stop the background thread (stop waits for it; queued jobs are dropped). */
int sfs_hasher_start(void) __attribute__((warn_unused_result));
void sfs_hasher_stop(void);

/*
 * A new job for an empty file.  NULL on error.  The job opens a read-only
 * descriptor of its own (from the fd passed to post_write) only when the
 * background thread has to read the file back.
 */
struct sfs_hjob *sfs_hjob_new(void);
/* Take / drop a reference (NULL-safe). */
struct sfs_hjob *sfs_hjob_get(struct sfs_hjob *j);
void sfs_hjob_put(struct sfs_hjob *j);

/* The file's bytes changed in a way the job cannot follow (truncate, fallocate, error). */
void sfs_hjob_invalidate(struct sfs_hjob *j);
/* Before a write of n bytes at off: a rewrite of written bytes invalidates. */
void sfs_hjob_pre_write(struct sfs_hjob *j, uint64_t off, uint64_t n);
/*
 * After a successful write of n bytes at off through fd (any descriptor of the
 * file, O_WRONLY will do); buf (may be NULL) holds them: small in-order
 * writes are hashed from it at once.
 */
void sfs_hjob_post_write(struct sfs_hjob *j, uint64_t off, uint64_t n, const void *buf, int fd);
/* The last writer closed the file (fd, still open); size = its size then. */
void sfs_hjob_closed(struct sfs_hjob *j, uint64_t size, int fd);

/* 1 while the job still has bytes to read (its file must keep them). */
int sfs_hjob_pending(struct sfs_hjob *j);

/* The digest if it is ready now (never waits): 0 and hex filled, or -ENODATA. */
int sfs_hjob_peek(struct sfs_hjob *j, char hex[33]) __attribute__((warn_unused_result));

/*
 * The digest: 0 and hex filled when every byte of the closed file was hashed
 * in order (finishing the work on this thread if needed); -ENODATA when the
 * job is invalid or the file is still open for writing.
 */
int sfs_hjob_result(struct sfs_hjob *j, char hex[33]) __attribute__((warn_unused_result));

/*
 * Optional: called once with the digest when a job of a file of at least
 * SFS_HJOB_HINT_MIN bytes completes (stores the hint: reading a smaller file
 * again costs about what reading a stored digest does), with the job's lock
 * held and only while the job is valid, so it must be quick and must not call
 * back into the job.
 */
#define SFS_HJOB_HINT_MIN (64u << 10)
void sfs_hasher_set_done_cb(void (*cb)(int rfd, const char *hex, uint64_t size));

#endif
