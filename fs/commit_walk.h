/*
 * fs/commit_walk.h - the entry a commit takes (fs/commit_walk.c): its files
 * and directories walked without following symlinks, claimed against
 * writers, given their own copies where hard links are shared, and digested.
 * For fs/commit.c only.
 */
#ifndef SFS_FS_COMMIT_WALK_H
#define SFS_FS_COMMIT_WALK_H

#include <stdint.h>
#include <sys/stat.h>

#include "fs/fs.h"

struct sqlite3;
struct sqlite3_stmt;

/* One walked entry, as the iterator hands it out. */
struct centry {
	int64_t id;
	char *rel; /* path inside the entry ("" for a single file) */
	dev_t dev;
	ino_t ino;
	uint64_t size;
	int is_dir;
	int shared; /* had other hard links when walked: gets its own copy */
	char md5[33];
	int dirty; /* set by a callback that changed dev, ino or md5: written back */
};

/*
 * The walk lives in a private SQLite database on disk (deleted when closed),
 * not in memory: an entry of a million files costs the daemon a page cache
 * and a batch of rows, whatever its size.
 */
struct walk {
	struct sqlite3 *db;
	struct sqlite3_stmt *ins;
	uint64_t n, bytes;
	size_t files;
	char reason[400];
};

/* An empty walk (its database created).  Release it with sfs_cw_release. */
int sfs_cw_open(struct walk *w) __attribute__((warn_unused_result));
void sfs_cw_release(struct walk *w);
/*
 * One entry (rel inside the entry, "" for a single file; name its last
 * segment) under directory parent (0: the entry itself) with its lstat; *id
 * (may be NULL) gets its id.
 */
int sfs_cw_add(struct walk *w, int64_t parent, const char *name, const char *rel,
	       const struct stat *st, int shared, int64_t *id) __attribute__((warn_unused_result));
/* Every entry below dirfd: -EINVAL (w->reason says why) for a symlink or a special file. */
int sfs_cw_tree(struct walk *w, int dirfd, const char *prefix, int64_t parent, int depth)
	__attribute__((warn_unused_result));
/* The walk is complete: index it for the checksum. */
int sfs_cw_done(struct walk *w) __attribute__((warn_unused_result));
/*
 * Every entry (files only, or shared files only) in walk order, a batch at
 * a time: cb(arg, e); what cb marks dirty is written back.  cb's non-zero
 * result stops the walk and is returned.
 */
enum { SFS_CW_ALL, SFS_CW_FILES, SFS_CW_SHARED };
int sfs_cw_each(struct walk *w, int which, int (*cb)(void *arg, struct centry *e), void *arg)
	__attribute__((warn_unused_result));
/* A file with other hard links gets a copy of its own under the same name. */
int sfs_cw_unshare(int dirfd, const char *name, const struct stat *st)
	__attribute__((warn_unused_result));
/* e's staging path: entry_rel, then "/" and e->rel below a directory; malloc'd, NULL on ENOMEM. */
char *sfs_cw_path(const char *entry_rel, const struct centry *e);
/* e's MD5 (from the writes when known, else by reading); progress in *done of total. */
int sfs_cw_digest(struct sfs_fs *fs, struct sfs_stg *in, const char *entry_rel, int efd, int rootfd,
		  struct centry *e, uint64_t *done, uint64_t total)
	__attribute__((warn_unused_result));
/*
 * Mark (committing = v) every table inode of the walk; -EBUSY (who names it)
 * if one is open for writing, everything unmarked again.  Unmarking cannot fail.
 */
int sfs_cw_mark(struct sfs_fs *fs, struct sfs_stg *entry, struct walk *w, int v, char *who,
		size_t wholen);
/* The table's staging inode of a walked entry (on the staging device), or NULL; fs->lock held. */
struct sfs_stg *sfs_cw_find_locked(struct sfs_fs *fs, const struct centry *e);
/* The walk's inodes are committed: the gone view. */
void sfs_cw_gone(struct sfs_fs *fs, struct sfs_stg *entry, struct walk *w);
/* The DANDI zarr checksum of the walked tree (after the digests). */
int sfs_cw_checksum(struct walk *w, char *out, size_t outlen) __attribute__((warn_unused_result));

#endif
