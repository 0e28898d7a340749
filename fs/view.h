/*
 * fs/view.h - the table of operations of one namespace of the mount.
 *
 * An inode's view (struct sfs_inode.view) answers every request on it.  The
 * dispatcher (fs/lowlevel.c) decodes a FUSE request, finds the view, calls
 * it, and replies; views never call libfuse.  A view:
 *   - returns 0 (or a length) or -errno from every operation;
 *   - leaves `w` NULL when it is read-only, or an operation in `w` NULL when
 *     it does not support that change: the dispatcher then answers ro_errno,
 *     the same from every entry point (access(W_OK), open for writing,
 *     create, setattr, setxattr, ...);
 *   - gives out inodes with one kernel reference taken (struct sfs_entry.in);
 *     the dispatcher hands it to the kernel or drops it.
 * A rename or link between inodes of different views is EXDEV.  The mount's
 * -o ro makes every mutation EROFS before any view is asked.
 *
 * Thread safety: every operation may run concurrently with any other on any
 * inode; views lock what they share (see the lock order in fs/fs.h).
 */
#ifndef SFS_FS_VIEW_H
#define SFS_FS_VIEW_H

#include <sys/stat.h>

#include "fs/fs.h"

/* The caller of a request. */
struct sfs_ctx {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	mode_t umask;
	fuse_req_t req; /* for fuse_req_getgroups(); NULL in internal calls */
};

/* What lookup, mkdir, create, ... give back. */
struct sfs_entry {
	struct sfs_inode *in; /* one kernel reference taken; NULL with a negative entry */
	struct stat st;
	double timeout; /* entry and attr */
};

/* One open file or directory.  Views embed it as the first member of their own. */
struct sfs_fh {
	struct sfs_fh *prev, *next;  /* fs->handles; fs->hlock */
	struct sfs_inode *in;	     /* the inode opened (a reference held) */
	const struct sfs_view *view; /* the view that opened it: it releases it */
	int flags;		     /* open flags */
};

/* Reply hints of an open. */
struct sfs_open_out {
	int keep_cache, direct_io, noflush;
};

/* What a read returns: bytes from a descriptor (spliced) or a buffer. */
struct sfs_data {
	int fd; /* >= 0: size bytes at pos of fd */
	off_t pos;
	size_t size;
	char *buf; /* else: size bytes here, malloc'd, freed by the dispatcher */
};

/*
 * A directory listing being filled.  sfs_dirfill_add() adds one entry with
 * the offset that resumes after it; 1 when the reply is full (the entry was
 * not added: with e->in set, its reference is dropped), 0 when added.
 * sfs_dirfill_plus(): should the view pass looked-up entries (e NULL: name
 * only)?  A readdirplus past the inode bound is answered with names only.
 */
struct sfs_dirfill;
int sfs_dirfill_plus(const struct sfs_dirfill *f);
int sfs_dirfill_add(struct sfs_dirfill *f, const char *name, mode_t type, ino_t ino, off_t next,
		    struct sfs_entry *e);

struct sfs_view_wops {
	int (*setattr)(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh *fh,
		       const struct stat *attr, int valid, const struct sfs_ctx *ctx,
		       struct stat *out);
	int (*mknod)(struct sfs_fs *fs, struct sfs_inode *dir, const char *name, mode_t mode,
		     dev_t rdev, const struct sfs_ctx *ctx, struct sfs_entry *e);
	int (*mkdir)(struct sfs_fs *fs, struct sfs_inode *dir, const char *name, mode_t mode,
		     const struct sfs_ctx *ctx, struct sfs_entry *e);
	int (*symlink)(struct sfs_fs *fs, struct sfs_inode *dir, const char *name,
		       const char *target, const struct sfs_ctx *ctx, struct sfs_entry *e);
	int (*link)(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_inode *dir,
		    const char *name, const struct sfs_ctx *ctx, struct sfs_entry *e);
	int (*unlink)(struct sfs_fs *fs, struct sfs_inode *dir, const char *name,
		      const struct sfs_ctx *ctx);
	int (*rmdir)(struct sfs_fs *fs, struct sfs_inode *dir, const char *name,
		     const struct sfs_ctx *ctx);
	int (*rename)(struct sfs_fs *fs, struct sfs_inode *dir, const char *name,
		      struct sfs_inode *newdir, const char *newname, unsigned int flags,
		      const struct sfs_ctx *ctx);
	/* O_CREAT open: *fh and e as for open and lookup */
	int (*create)(struct sfs_fs *fs, struct sfs_inode *dir, const char *name, mode_t mode,
		      int flags, const struct sfs_ctx *ctx, struct sfs_entry *e, struct sfs_fh **fh,
		      struct sfs_open_out *o);
	ssize_t (*write)(struct sfs_fs *fs, struct sfs_fh *fh, const char *buf, size_t n, off_t off,
			 const struct sfs_ctx *ctx);
	int (*fallocate)(struct sfs_fs *fs, struct sfs_fh *fh, int mode, off_t off, off_t len);
	int (*setxattr)(struct sfs_fs *fs, struct sfs_inode *in, const char *name,
			const char *value, size_t size, int flags, const struct sfs_ctx *ctx);
	int (*removexattr)(struct sfs_fs *fs, struct sfs_inode *in, const char *name,
			   const struct sfs_ctx *ctx);
};

struct sfs_view {
	const char *name; /* "root" "staging" "canonical" "receipts" "gone" */
	int ro_errno;	  /* answer to a mutation this view does not implement */
	/* optional unless marked */
	int (*lookup)(struct sfs_fs *fs, struct sfs_inode *dir, const char *name,
		      struct sfs_entry *e);
	int (*getattr)(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh *fh, struct stat *st,
		       double *timeout); /* required */
	int (*access)(struct sfs_fs *fs, struct sfs_inode *in, int mask,
		      const struct sfs_ctx *ctx); /* R_OK/X_OK/F_OK; W_OK is the dispatcher's */
	int (*readlink)(struct sfs_fs *fs, struct sfs_inode *in, char *buf, size_t size);
	int (*opendir)(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh **fh);
	int (*readdir)(struct sfs_fs *fs, struct sfs_fh *fh, off_t off, struct sfs_dirfill *f);
	int (*fsyncdir)(struct sfs_fs *fs, struct sfs_fh *fh, int datasync);
	/* open without O_CREAT; a view with w == NULL never sees write flags */
	int (*open)(struct sfs_fs *fs, struct sfs_inode *in, int flags, const struct sfs_ctx *ctx,
		    struct sfs_fh **fh, struct sfs_open_out *o);
	int (*read)(struct sfs_fs *fs, struct sfs_fh *fh, size_t size, off_t off,
		    struct sfs_data *out);
	int (*flush)(struct sfs_fs *fs, struct sfs_fh *fh);
	int (*fsync)(struct sfs_fs *fs, struct sfs_fh *fh, int datasync);
	off_t (*lseek)(struct sfs_fs *fs, struct sfs_fh *fh, off_t off, int whence);
	/* the handle's end (RELEASE, RELEASEDIR, or unmount); frees it; required if open/opendir */
	void (*release)(struct sfs_fs *fs, struct sfs_fh *fh);
	/* user.* only (the dispatcher refuses other namespaces); size 0: the length */
	ssize_t (*getxattr)(struct sfs_fs *fs, struct sfs_inode *in, const char *name, char *buf,
			    size_t size);
	ssize_t (*listxattr)(struct sfs_fs *fs, struct sfs_inode *in, char *buf, size_t size);
	/* free the view's part of an inode the kernel and we no longer reference; required */
	void (*free)(struct sfs_fs *fs, struct sfs_inode *in);
	const struct sfs_view_wops *w; /* NULL: read-only */
};

extern const struct sfs_view sfs_view_root, sfs_view_staging, sfs_view_canon, sfs_view_receipts,
	sfs_view_receipt, sfs_view_gone, sfs_view_snapshot, sfs_view_snapdir;

#define SFS_XATTR_COMMIT   "user.stagefs.commit"
#define SFS_XATTR_STATUS   "user.stagefs.status"
#define SFS_XATTR_META	   "user.stagefs.metadata"
#define SFS_XATTR_OURS	   "user.stagefs."	   /* our own namespace: never the user's */
#define SFS_XATTR_SNAPSHOT "user.stagefs.snapshot" /* a snapshot root: its head JSON */
#define SFS_XATTR_PUBLISH  "user.stagefs.publish"  /* set on .snapshots/: publish */
#define SFS_DOT_SNAPSHOTS  ".snapshots"
#define SFS_XATTR_SOURCE   "user.stagefs.source" /* the mount root: {"source","options"} */
#define SFS_XATTR_JOBS	   "user.stagefs.jobs"	 /* set "retry" on the mount root */
#define SFS_RECEIPTS	   ".receipts"
#define SFS_CANON_TIMEOUT  3600.0 /* immutable trees */

/* ---- helpers the views share (fs/view.c) ---- */

/* A directory only the mount makes up: mode S_IFDIR|perm, owned by the daemon's user. */
void sfs_view_dir_attr(struct sfs_fs *fs, struct stat *st, uint64_t ino, mode_t perm);
/* A stable inode number for a made-up inode named by key (kept clear of real ones). */
uint64_t sfs_view_key_ino(const char *key);
/* A fresh handle of view v on in (in held); NULL on ENOMEM.  extra: bytes of the view's own. */
void *sfs_fh_new(struct sfs_fs *fs, const struct sfs_view *v, struct sfs_inode *in, size_t size,
		 int flags);
/* Undo sfs_fh_new (unlists, drops the inode reference, frees). */
void sfs_fh_free(struct sfs_fs *fs, struct sfs_fh *fh);
/* reply helper: copy [off, off+size) of s (length len) into a malloc'd sfs_data */
int sfs_data_copy(const char *s, size_t len, size_t size, off_t off, struct sfs_data *out);
/* xattr value reply helper: len bytes of val into buf of size (0: just the length) */
ssize_t sfs_xattr_value(const char *val, size_t len, char *buf, size_t size);
/* "a" + "/" + "b" (no '/' when a is empty); NULL on ENOMEM */
char *sfs_join(const char *a, const char *b);

/* a listing held in memory (root, canonical, receipts): names in one arena */
struct sfs_list {
	char *names; /* NUL-separated */
	size_t len, cap;
	struct sfs_list_ent {
		size_t name;
		mode_t type;
	} * e;
	size_t n, ecap;
};
int sfs_list_add(struct sfs_list *l, const char *name, mode_t type)
	__attribute__((warn_unused_result));
void sfs_list_release(struct sfs_list *l);
/* Fill from entry off of a listing; lookup(name) gives readdirplus entries. */
int sfs_list_fill(struct sfs_fs *fs, struct sfs_list *l, struct sfs_inode *dir, off_t off,
		  struct sfs_dirfill *f);

/* The canonical prefix directories the root view shows (fs/view_canon.c). */
int sfs_canon_init(struct sfs_fs *fs) __attribute__((warn_unused_result));
/* The pinned canonical inode of root child name, or NULL. */
struct sfs_inode *sfs_canon_root_child(struct sfs_fs *fs, const char *name);
/* Visit the canonical roots' names (root listing). */
int sfs_canon_roots(struct sfs_fs *fs, int (*cb)(void *arg, const char *name), void *arg);
/* Mount snapshot name at the root (-o snapshot=NAME; fs/view_snapshot.c). */
int sfs_snapview_mount(struct sfs_fs *fs, const char *name) __attribute__((warn_unused_result));
/* The .snapshots/ directory of a live mount (fs/publish.c). */
int sfs_snapview_init(struct sfs_fs *fs) __attribute__((warn_unused_result));
void sfs_snapview_release(struct sfs_fs *fs);
/*
 * May the reclaim sweep drop snapshot inode in (a file nobody has open)?
 * Then *parent and *name say which directory entry the kernel is asked to
 * forget.  fs->lock held.
 */
int sfs_snapnode_idle_locked(struct sfs_inode *in, struct sfs_inode **parent, const char **name);
/* At unmount, every inode goes at once: snapshot inode in forgets its parent without a put. */
void sfs_snapnode_unparent_locked(struct sfs_inode *in);
/* Publish from the JSON request value (fs/publish.c). */
int sfs_snapview_publish(struct sfs_fs *fs, const char *value, size_t len)
	__attribute__((warn_unused_result));
/* The receipts directory of staging dir rel (fs/view_receipts.c); e as for lookup. */
int sfs_receipts_lookup(struct sfs_fs *fs, const char *rel, struct sfs_entry *e)
	__attribute__((warn_unused_result));

#endif
