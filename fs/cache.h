/*
 * fs/cache.h - the bound (cache_size) on a local staging cache.
 *
 * For backends whose staging dir only caches the store (s3), staged files
 * stay local while they are written and read; once stored and closed they
 * may be evicted: their blocks are punched out (size and times stay, so
 * listings and stat stay exact and local) and SFS_XATTR_EVICTED marks them.
 * Opening an evicted file, digesting it for a commit or linking it fetches
 * the bytes back first.  An eviction pass and an open never interleave
 * (evict_lock), and only files no process has open are evicted.  A write that
 * would pass cache_size when nothing can be evicted fails with ENOSPC.
 *
 * With the file backend (the staging dir is the store) all of this is off.
 * Thread-safe.
 */
#ifndef SFS_FS_CACHE_H
#define SFS_FS_CACHE_H

#include <stdint.h>
#include <sys/types.h>

struct sfs_fs;
struct sfs_stg;

/* Measure the cache at mount (cache_size from the config). 0 or -errno. */
int sfs_cache_init(struct sfs_fs *fs) __attribute__((warn_unused_result));
void sfs_cache_release(struct sfs_fs *fs);
/* 1 when a staging cache is being bounded. */
int sfs_cache_active(struct sfs_fs *fs);

/* The file open as fd was stored in the backend just now: it may be evicted later. */
void sfs_cache_stored(struct sfs_fs *fs, int fd);
/* Something was removed or closed: a full cache may have room again. */
void sfs_cache_changed(struct sfs_fs *fs);

/*
 * Before opening / using staged file in (rel path rel): bring back its bytes
 * if they were evicted (with trunc, just drop the mark).  Holds the eviction
 * lock for reading on success: call sfs_cache_unlock() once the open is
 * accounted (in->opens) or the use is over.
 */
int sfs_cache_lock_present(struct sfs_fs *fs, struct sfs_stg *in, int trunc)
	__attribute__((warn_unused_result));
void sfs_cache_unlock(struct sfs_fs *fs);

/*
 * The same for a file named by path relative to the staging dir (commit walks
 * files the kernel may not have looked up).
 */
int sfs_cache_present_rel(struct sfs_fs *fs, const char *rel) __attribute__((warn_unused_result));

/*
 * Before writing n bytes at off into fd: account growth; -ENOSPC when the
 * cache is full.  A full cache is walked again only after something became
 * evictable or was removed (sfs_cache_stored / sfs_cache_changed).
 */
int sfs_cache_grow(struct sfs_fs *fs, int fd, off_t off, size_t n)
	__attribute__((warn_unused_result));

#endif
