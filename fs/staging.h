/*
 * fs/staging.h - the staging view's own types, shared by its files:
 *   staging_inode.c  staging inodes: finding them again without descriptors
 *                    (file handles or parent + name), the directory fd cache
 *   view_staging.c   the namespace: lookup, attributes, listings, mkdir,
 *                    rename, link, unlink, xattrs, commit
 *   staging_io.c     open files: open, create, read, write, flush, fsync,
 *                    release, and hashing while writing
 *   staging_sync.c   keeping a backend whose staging dir is a local cache (s3)
 *                    in step: uploads, the index's rows, mirrored renames
 * Not for use outside these files, fs/inode.c, fs/commit.c and fs/cache.c.
 */
#ifndef SFS_FS_STAGING_H
#define SFS_FS_STAGING_H

#include <sys/stat.h>

#include "fs/fs.h"
#include "fs/view.h"

/* depth of staging/ itself, a schema, a table, anything inside a table */
#define SFS_DEPTH_ROOT	 0
#define SFS_DEPTH_SCHEMA 1
#define SFS_DEPTH_TABLE	 2
#define SFS_DEPTH_INSIDE 3

struct sfs_stg {
	struct sfs_inode base;
	struct sfs_stg *parent; /* the directory it was last seen in (a ref held); fs->lock */
	char *name;		/* its name there; NULL once unknown (unlinked); fs->lock */
	ino_t ino;		/* the host inode; immutable */
	mode_t type;		/* S_IFMT bits; immutable */
	uint8_t depth;		/* SFS_DEPTH_*; immutable (renames keep the level) */
	uint8_t committing;	/* a commit of it or an ancestor runs; fs->lock */
	int16_t dslot;		/* directory: its slot in the fd cache, -1 none; fs->dlock */
	int32_t writers;	/* open write handles; fs->lock */
	int32_t opens;		/* open handles of any kind; fs->lock */
	struct sfs_hjob *hjob;	/* digest being computed while written; stripe lock */
	uint8_t have_md5;	/* md5 is the digest of what the last writer left; stripe lock */
	unsigned char md5[16];	/* (kept instead of a finished job: 16 bytes, not ~400) */
	char *status;		/* last commit error or progress; stripe lock */
	uint8_t hlen;		/* bytes of handle; 0: no kernel file handle */
	int32_t htype;		/* handle type */
	unsigned char handle[]; /* the kernel file handle; immutable */
};

static inline struct sfs_stg *sfs_stg(struct sfs_inode *in)
{
	return (struct sfs_stg *)in;
}

/* A staging handle: an open file or directory of the staging tree. */
struct sfs_stg_fh {
	struct sfs_fh fh;
	int fd;		      /* the open file; -1 for a directory handle */
	int killpriv;	      /* the file had set-id bits when opened for writing */
	pthread_mutex_t lock; /* directories: the listing below */
	void *dir;	      /* DIR * of a directory handle */
	off_t pos;	      /* entries handed out so far */
	int tail;	      /* 0 ".", 1 "..", 2 the host entries, 3 ".receipts", 4 done */
};

/* ---- staging_inode.c ---- */

/* Set up staging/ and the ways of finding inodes again (at mount). */
int sfs_stg_init(struct sfs_fs *fs) __attribute__((warn_unused_result));
void sfs_stg_release(struct sfs_fs *fs);

/*
 * The inode of name in dir, whose lstat is st (just taken through dirfd, a
 * descriptor of dir): found in the table or made, with one kernel reference
 * taken.  The inode now knows itself by (dir, name).
 */
int sfs_stg_intern(struct sfs_fs *fs, struct sfs_stg *dir, int dirfd, const char *name,
		   const struct stat *st, struct sfs_stg **out) __attribute__((warn_unused_result));

/* A borrowed O_PATH descriptor of a staging directory (cached); give it back with _put. */
struct sfs_stg_dref {
	int fd;
	int slot; /* -1: not from the cache (closed by _put) */
};
int sfs_stg_dir_get(struct sfs_fs *fs, struct sfs_stg *dir, struct sfs_stg_dref *r)
	__attribute__((warn_unused_result));
void sfs_stg_dir_put(struct sfs_fs *fs, struct sfs_stg_dref *r);
/* The staging (and gone) view's free(): fs->lock held. */
void sfs_stg_free_locked(struct sfs_fs *fs, struct sfs_inode *in);
/* Drop dir's cached descriptor (it is being freed). */
void sfs_stg_dir_forget(struct sfs_fs *fs, struct sfs_stg *dir);

/* lstat of the inode (through its parent and name, or its handle). */
int sfs_stg_stat(struct sfs_fs *fs, struct sfs_stg *in, struct stat *st)
	__attribute__((warn_unused_result));

/* The name in dir is gone (unlinked, or replaced by a rename): stop finding its inode. */
void sfs_stg_unlinked(struct sfs_fs *fs, struct sfs_stg *dir, const char *name, ino_t ino,
		      nlink_t nlink_before);
/* name in dir moved to newname in newdir (RENAME_EXCHANGE: swapped with what was there). */
void sfs_stg_moved(struct sfs_fs *fs, struct sfs_stg *dir, const char *name, ino_t ino,
		   struct sfs_stg *newdir, const char *newname, ino_t other, int exchange);
/* The committed entries left staging: their inodes switch to the gone view. */
void sfs_stg_gone_locked(struct sfs_fs *fs, struct sfs_stg *in);

/* May the reclaim sweep drop in (idle, named, not a directory with children)?  fs->lock held. */
int sfs_stg_idle_locked(const struct sfs_stg *in);

/* Replace the inode's status text (NULL clears); read it with sfs_stg_status(). */
void sfs_stg_set_status(struct sfs_stg *in, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The status into buf ("" when none). */
void sfs_stg_status(struct sfs_stg *in, char *buf, size_t len);
/* A reference to the inode's hash job, or NULL (caller puts it). */
struct sfs_hjob *sfs_stg_hjob(struct sfs_stg *in);
/* Replace the inode's hash job (NULL: the digest is unknown from here on). */
void sfs_stg_hjob_set(struct sfs_stg *in, struct sfs_hjob *j);
/* The last writer left: keep a finished job's digest instead of the job. */
void sfs_stg_hjob_done(struct sfs_stg *in);
/*
 * The digest of what was written, when this mount saw every byte written in
 * order: 0 and hex filled (waiting for the hasher if it is behind); -ENODATA.
 */
int sfs_stg_digest(struct sfs_stg *in, char hex[33]) __attribute__((warn_unused_result));

/* ---- view_staging.c ---- */

/*
 * May name of type (S_IFMT) be made in dir?  0 or -errno: SPEC §3 level rules, and
 * -EINVAL for a control character in a name the store cannot list back
 * (SFS_BLIM_NO_CONTROL_NAMES).
 */
int sfs_stg_may_create(const struct sfs_fs *fs, const struct sfs_stg *dir, const char *name,
		       mode_t type);

/* ---- staging_io.c ---- */

int sfs_stg_io_open(struct sfs_fs *fs, struct sfs_inode *in, int flags, const struct sfs_ctx *ctx,
		    struct sfs_fh **fh, struct sfs_open_out *o);
int sfs_stg_io_create(struct sfs_fs *fs, struct sfs_inode *dir, const char *name, mode_t mode,
		      int flags, const struct sfs_ctx *ctx, struct sfs_entry *e, struct sfs_fh **fh,
		      struct sfs_open_out *o);
int sfs_stg_io_read(struct sfs_fs *fs, struct sfs_fh *fh, size_t size, off_t off,
		    struct sfs_data *out);
ssize_t sfs_stg_io_write(struct sfs_fs *fs, struct sfs_fh *fh, const char *buf, size_t n, off_t off,
			 const struct sfs_ctx *ctx);
int sfs_stg_io_flush(struct sfs_fs *fs, struct sfs_fh *fh);
int sfs_stg_io_fsync(struct sfs_fs *fs, struct sfs_fh *fh, int datasync);
int sfs_stg_io_fallocate(struct sfs_fs *fs, struct sfs_fh *fh, int mode, off_t off, off_t len);
off_t sfs_stg_io_lseek(struct sfs_fs *fs, struct sfs_fh *fh, off_t off, int whence);
void sfs_stg_io_release(struct sfs_fs *fs, struct sfs_fh *fh);
/* The file (any fd of it) was truncated to size: restart or drop its digest. */
void sfs_stg_io_truncated(struct sfs_stg *in, int fd, off_t size);
/* Start hashing (the callback that stores finished digests). */
void sfs_stg_io_init(void);

/* ---- staging_sync.c ---- */

/* 1 when the staging dir only caches the store (s3): staged files are uploaded. */
int sfs_stg_uploads(struct sfs_fs *fs);
/* Install the journal the backend reconciles with at mount. */
void sfs_stg_sync_init(struct sfs_fs *fs);
/*
 * Store staged file fd (inode in) in the backend (flush: durable 0, fsync: 1).
 * With write-back (fs/uploads.h) a flush only makes the bytes durable in the
 * local cache and queues the file; an fsync uploads at once.
 */
int sfs_stg_sync_store(struct sfs_fs *fs, struct sfs_stg *in, int fd, int durable)
	__attribute__((warn_unused_result));
/*
 * Upload staged file rel, open as fd with fstat st (taken before any byte is
 * read), and record it in the index (the write-back workers' upload).
 */
int sfs_stg_sync_rel(struct sfs_fs *fs, const char *rel, int fd, const struct stat *st)
	__attribute__((warn_unused_result));
/* in's mode or user xattrs changed: its index row follows. */
void sfs_stg_sync_meta(struct sfs_fs *fs, struct sfs_stg *in);
/* name in dir was removed / renamed / linked: mirror it in the store. */
void sfs_stg_sync_unlinked(struct sfs_fs *fs, struct sfs_stg *dir, const char *name, int is_dir);
void sfs_stg_sync_renamed(struct sfs_fs *fs, struct sfs_stg *dir, const char *name,
			  struct sfs_stg *newdir, const char *newname);
/*
 * A commit is about to promote staged file rel (no writer left): take it out
 * of the upload queue, after an upload of it that is running.  The backend's
 * promotion puts the cache's bytes to the canonical key itself where the
 * store does not hold them as they are (never uploaded, or older), so what
 * was never uploaded costs no staging PUT, copy and delete.
 */
void sfs_stg_sync_committing(struct sfs_fs *fs, const char *rel);
/* A commit that took staged file rel (sfs_stg_sync_committing) failed: upload it when due. */
void sfs_stg_sync_requeue(struct sfs_fs *fs, const char *rel);
int sfs_stg_sync_linked(struct sfs_fs *fs, struct sfs_stg *in, struct sfs_stg *dir,
			const char *name) __attribute__((warn_unused_result));

#endif
