/*
 * fs/view_staging.c - the staging namespace: staging/<schema>/<table>/...
 * passed through to the backend's local staging directory, with the level
 * rules of SPEC §3 (levels 1 and 2 hold only directories named
 * [A-Za-z0-9_#]{1,64}; ".receipts" is reserved) and the commit xattr.
 *
 * The daemon runs as root and does what a caller asks as root: with
 * default_permissions the kernel has checked the caller's permissions
 * against the attributes we report before the request comes (a commit's
 * are checked here too: may_commit).  What a caller
 * creates is then given to the caller (and to the directory's group under a
 * set-group-ID directory), as the kernel would have done.
 */
#include "fs/staging.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/cache.h"
#include "fs/hasher.h"
#include "fs/uploads.h"

#define PROC_FD "/proc/self/fd/%d"

static struct sfs_stg *S(struct sfs_inode *in)
{
	return (struct sfs_stg *)in;
}

/* A name valid at staging levels 1 and 2: [A-Za-z0-9_#]{1,64}. */
static int valid_level_name(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '#'))
			return 0;
	}
	return 1;
}

/* A name the store can list back (a control character needs url-encoded listings). */
static int storable_name(const struct sfs_fs *fs, const char *name)
{
	return !(fs->be->limits & SFS_BLIM_NO_CONTROL_NAMES) ||
	       sfs_first_control(name, strlen(name)) < 0;
}

int sfs_stg_may_create(const struct sfs_fs *fs, const struct sfs_stg *dir, const char *name,
		       mode_t type)
{
	if (strlen(name) > SFS_SEGMENT_MAX)
		return -ENAMETOOLONG;
	if (!storable_name(fs, name))
		return -EINVAL;
	if (dir->depth < SFS_DEPTH_TABLE) {
		if (type != S_IFDIR)
			return -EPERM;
		return valid_level_name(name) ? 0 : -EINVAL;
	}
	return strcmp(name, SFS_RECEIPTS) == 0 ? -EPERM : 0;
}

static int is_committing(struct sfs_fs *fs, ino_t ino)
{
	pthread_mutex_lock(&fs->lock);
	struct sfs_stg *in = sfs_stg_find_locked(fs, ino);
	int busy = in && in->committing;
	pthread_mutex_unlock(&fs->lock);
	return busy;
}

/*
 * Give what the caller created (name in dirfd, or fd) to the caller: its uid,
 * and its gid unless the directory is set-group-ID (then the directory's gid
 * stays, as the kernel gives it).  A chown drops set-ID bits: put back the
 * ones asked for.
 */
static void own_new(struct sfs_fs *fs, int dirfd, const char *name, int fd, mode_t mode,
		    const struct sfs_ctx *ctx)
{
	struct stat dst;

	if (geteuid() != 0 || !ctx || (ctx->uid == 0 && ctx->gid == 0))
		return;
	gid_t gid = fstat(dirfd, &dst) == 0 && (dst.st_mode & S_ISGID) ? (gid_t)-1 : ctx->gid;
	int rc = fd >= 0 ? fchown(fd, ctx->uid, gid)
			 : fchownat(dirfd, name, ctx->uid, gid, AT_SYMLINK_NOFOLLOW);
	if (rc < 0)
		sfs_log(LOG_WARNING, "cannot give '%s' to uid %u: %s", name, (unsigned)ctx->uid,
			strerror(errno));
	else if ((mode & (S_ISUID | S_ISGID)) && !S_ISDIR(mode) && !S_ISLNK(mode))
		(void)(fd >= 0 ? fchmod(fd, mode & 07777) : fchmodat(dirfd, name, mode & 07777, 0));
}

/* The entry of name just made in dir (through dirfd). */
static int new_entry(struct sfs_fs *fs, struct sfs_stg *dir, int dirfd, const char *name,
		     struct sfs_entry *e)
{
	struct sfs_stg *in;
	int rc = fstatat(dirfd, name, &e->st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;

	if (!rc)
		rc = sfs_stg_intern(fs, dir, dirfd, name, &e->st, &in);
	if (rc)
		return rc;
	e->in = &in->base;
	e->timeout = fs->timeout;
	return 0;
}

/* ---- lookup and attributes ---- */

static int stg_lookup(struct sfs_fs *fs, struct sfs_inode *dirin, const char *name,
		      struct sfs_entry *e)
{
	struct sfs_stg *dir = S(dirin);
	struct sfs_stg_dref r;
	int rc;

	if (strlen(name) > SFS_SEGMENT_MAX)
		return -ENAMETOOLONG;
	if (strcmp(name, SFS_RECEIPTS) == 0) {
		char *rel = NULL;
		if (dir->depth < SFS_DEPTH_TABLE)
			return -ENOENT;
		rc = sfs_stg_rel(fs, dir, &rel);
		if (!rc)
			rc = sfs_receipts_lookup(fs, rel, e);
		free(rel);
		return rc; /* not cached when missing: a commit makes it */
	}
	rc = sfs_stg_dir_get(fs, dir, &r);
	if (rc)
		return rc;
	rc = new_entry(fs, dir, r.fd, name, e);
	sfs_stg_dir_put(fs, &r);
	if (rc == -ENOENT) {
		/*
		 * Every change to staging goes through this mount, and the kernel
		 * drops a negative entry when it creates the name: let it cache
		 * the miss (zarr and h5py probe many names that do not exist).
		 */
		memset(e, 0, sizeof(*e));
		e->timeout = fs->timeout;
		return 0;
	}
	return rc;
}

static int stg_getattr(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh *fh, struct stat *st,
		       double *timeout)
{
	struct sfs_stg_fh *h = (struct sfs_stg_fh *)fh;

	*timeout = fs->timeout;
	if (h && h->fd >= 0)
		return fstat(h->fd, st) < 0 ? -errno : 0;
	return sfs_stg_stat(fs, S(in), st);
}

static int in_groups(const struct sfs_ctx *ctx, gid_t gid)
{
	gid_t g[64];
	int n;

	if (ctx->gid == gid)
		return 1;
	n = ctx->req ? fuse_req_getgroups(ctx->req, 64, g) : 0;
	for (int i = 0; i < n && i < 64; i++)
		if (g[i] == gid)
			return 1;
	return 0;
}

/* access(2): the mode bits as the kernel checks them (root may read and write anything). */
static int stg_access(struct sfs_fs *fs, struct sfs_inode *in, int mask, const struct sfs_ctx *ctx)
{
	struct stat st;
	int rc = sfs_stg_stat(fs, S(in), &st);

	if (rc || mask == F_OK)
		return rc;
	if (ctx->uid == 0) {
		if ((mask & X_OK) && !S_ISDIR(st.st_mode) && !(st.st_mode & 0111))
			return -EACCES;
		return 0;
	}
	mode_t bits = st.st_uid == ctx->uid	  ? (st.st_mode >> 6) & 7
		      : in_groups(ctx, st.st_gid) ? (st.st_mode >> 3) & 7
						  : st.st_mode & 7;
	return ((mode_t)mask & bits) == (mode_t)mask ? 0 : -EACCES;
}

static int stg_readlink(struct sfs_fs *fs, struct sfs_inode *in, char *buf, size_t size)
{
	int fd = sfs_stg_open(fs, S(in), O_PATH);

	if (fd < 0)
		return fd;
	ssize_t n = readlinkat(fd, "", buf, size);
	int rc = n < 0 ? -errno : (size_t)n >= size ? -ENAMETOOLONG : 0;
	close(fd);
	if (!rc)
		buf[n] = '\0';
	return rc;
}

/* ---- listings: streamed from the directory, "." ".." first, ".receipts" last ---- */

static int stg_opendir(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh **out)
{
	int fd = sfs_stg_open(fs, S(in), O_RDONLY | O_DIRECTORY);

	if (fd < 0)
		return fd;
	DIR *dp = fdopendir(fd);
	if (!dp) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	struct sfs_stg_fh *h = sfs_fh_new(fs, &sfs_view_staging, in, sizeof(*h), O_RDONLY);
	if (!h) {
		closedir(dp);
		return -ENOMEM;
	}
	h->fd = -1;
	h->dir = dp;
	pthread_mutex_init(&h->lock, NULL);
	*out = &h->fh;
	return 0;
}

struct dent {
	const char *name;
	mode_t type;
	ino_t ino;
	long cookie; /* telldir() before it, to give it back */
};

/* The listing's next entry (h->lock held): 1, or 0 at the end. */
static int next_dent(struct sfs_fs *fs, struct sfs_stg_fh *h, struct dent *d)
{
	struct sfs_stg *dir = S(h->fh.in);

	d->ino = 0;
	d->cookie = -1;
	switch (h->tail) {
	case 0:
	case 1: {
		/* real numbers: readdir(3) skips entries whose d_ino is 0 */
		struct stat st;
		d->name = h->tail ? ".." : ".";
		d->type = S_IFDIR;
		if (fstatat(dirfd(h->dir), d->name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			d->ino = st.st_ino;
		else
			d->ino = dir->ino;
		h->tail++;
		return 1;
	}
	case 2:
		for (;;) {
			long c = telldir(h->dir);
			struct dirent *de = readdir(h->dir);
			if (!de)
				break;
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
			    (dir->depth >= SFS_DEPTH_TABLE &&
			     strcmp(de->d_name, SFS_RECEIPTS) == 0))
				continue;
			d->name = de->d_name;
			d->type = (mode_t)DTTOIF(de->d_type);
			d->ino = de->d_ino;
			d->cookie = c;
			return 1;
		}
		h->tail = 3;
		/* fall through */
	case 3: {
		h->tail = 4;
		char *rel = NULL;
		int any = dir->depth >= SFS_DEPTH_TABLE && sfs_stg_rel(fs, dir, &rel) == 0 &&
			  sfs_index_receipt_any(fs->ix, rel) > 0;
		free(rel);
		if (any) {
			d->name = SFS_RECEIPTS;
			d->type = S_IFDIR;
			return 1;
		}
		return 0;
	}
	default:
		return 0;
	}
}

/* Put back the entry next_dent() gave last. */
static void unread_dent(struct sfs_stg_fh *h, const struct dent *d)
{
	if (d->cookie >= 0)
		seekdir(h->dir, d->cookie);
	else
		h->tail--;
}

/* readdirplus: the looked-up entry of d (in e), or NULL for "." and ".." and on errors */
static struct sfs_entry *plus_entry(struct sfs_fs *fs, struct sfs_stg_fh *h, const struct dent *d,
				    struct sfs_entry *e)
{
	struct sfs_stg *dir = S(h->fh.in), *in;
	char *rel = NULL;
	int rc = -ENOENT;

	if (d->cookie >= 0) { /* a host entry */
		if (fstatat(dirfd(h->dir), d->name, &e->st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    sfs_stg_intern(fs, dir, dirfd(h->dir), d->name, &e->st, &in) == 0) {
			e->in = &in->base;
			e->timeout = fs->timeout;
			rc = 0;
		}
	} else if (strcmp(d->name, SFS_RECEIPTS) == 0) {
		if (sfs_stg_rel(fs, dir, &rel) == 0)
			rc = sfs_receipts_lookup(fs, rel, e);
		free(rel);
	}
	return rc ? NULL : e;
}

static int stg_readdir(struct sfs_fs *fs, struct sfs_fh *fh, off_t off, struct sfs_dirfill *f)
{
	struct sfs_stg_fh *h = (struct sfs_stg_fh *)fh;
	struct dent d;

	pthread_mutex_lock(&h->lock);
	if (off < h->pos) { /* rewinddir or a seek back: start again */
		rewinddir(h->dir);
		h->pos = 0;
		h->tail = 0;
	}
	while (h->pos < off && next_dent(fs, h, &d))
		h->pos++;
	while (next_dent(fs, h, &d)) {
		struct sfs_entry e, *ep = NULL;
		if (sfs_dirfill_plus(f))
			ep = plus_entry(fs, h, &d, &e);
		if (sfs_dirfill_add(f, d.name, d.type, d.ino, h->pos + 1, ep)) {
			unread_dent(h, &d);
			break;
		}
		h->pos++;
	}
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static int stg_fsyncdir(struct sfs_fs *fs, struct sfs_fh *fh, int datasync)
{
	DIR *dp = ((struct sfs_stg_fh *)fh)->dir;

	return fsync(dirfd(dp)) < 0 ? -errno : 0;
}

static void stg_release(struct sfs_fs *fs, struct sfs_fh *fh)
{
	struct sfs_stg_fh *h = (struct sfs_stg_fh *)fh;

	if (h->dir) {
		closedir(h->dir);
		pthread_mutex_destroy(&h->lock);
		sfs_fh_free(fs, fh);
	} else {
		sfs_stg_io_release(fs, fh);
	}
}

/* ---- attributes ---- */

static int stg_setattr(struct sfs_fs *fs, struct sfs_inode *base, struct sfs_fh *fh,
		       const struct stat *attr, int valid, const struct sfs_ctx *ctx,
		       struct stat *out)
{
	struct sfs_stg *in = S(base);
	struct sfs_stg_fh *h = (struct sfs_stg_fh *)fh;
	int ofd = h && h->fd >= 0 ? h->fd : -1;
	int pfd = -1, rc = 0;
	char proc[64];

	if (ofd < 0) {
		pfd = sfs_stg_open(fs, in, O_PATH);
		if (pfd < 0)
			return pfd;
	}
	snprintf(proc, sizeof(proc), PROC_FD, ofd >= 0 ? ofd : pfd);
	/* owner first: a chown drops set-ID bits that a mode in the same request may set */
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
		if (fchownat(ofd >= 0 ? ofd : pfd, "", uid, gid,
			     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
			goto out;
		}
	}
	if (valid & FUSE_SET_ATTR_MODE) {
		if (in->type != S_IFLNK && chmod(proc, attr->st_mode & 07777) < 0) {
			rc = -errno;
			goto out;
		}
		/* symlink modes are meaningless on Linux */
		sfs_stg_sync_meta(fs, in);
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		pthread_mutex_lock(&fs->lock);
		int busy = in->committing;
		pthread_mutex_unlock(&fs->lock);
		if (busy) {
			rc = -EBUSY;
			goto out;
		}
		rc = sfs_cache_lock_present(fs, in, attr->st_size == 0);
		if (rc)
			goto out;
		int tfd = ofd >= 0 ? ofd : open(proc, O_WRONLY | O_CLOEXEC);
		rc = tfd < 0 || ftruncate(tfd, attr->st_size) < 0 ? -errno : 0;
		if (tfd >= 0 && tfd != ofd)
			close(tfd);
		sfs_cache_unlock(fs);
		if (rc)
			goto out;
		sfs_stg_io_truncated(in, ofd >= 0 ? ofd : pfd, attr->st_size);
		(void)removexattr(proc, SFS_XATTR_HINT); /* after the job that could store it */
		if (ofd < 0 && sfs_stg_uploads(fs)) {
			/* a truncate by path has no close to store it: store it now */
			int sfd = sfs_stg_open(fs, in, O_RDONLY);
			rc = sfd < 0 ? sfd : sfs_stg_sync_store(fs, in, sfd, 0);
			if (sfd >= 0)
				close(sfd);
			if (rc)
				goto out;
		}
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (ofd >= 0)
			rc = futimens(ofd, tv);
		else if (in->type == S_IFLNK)
			rc = utimensat(pfd, "", tv, AT_EMPTY_PATH);
		else
			rc = utimensat(AT_FDCWD, proc, tv, 0);
		if (rc < 0) {
			rc = -errno;
			goto out;
		}
	}
	rc = fstatat(ofd >= 0 ? ofd : pfd, "", out, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0
		     ? -errno
		     : 0;
out:
	if (pfd >= 0)
		close(pfd);
	return rc;
}

/* ---- creating and removing names ---- */

static int make(struct sfs_fs *fs, struct sfs_inode *dirin, const char *name, mode_t mode,
		dev_t rdev, const char *target, const struct sfs_ctx *ctx, struct sfs_entry *e)
{
	struct sfs_stg *dir = S(dirin);
	struct sfs_stg_dref r;
	int rc = sfs_stg_may_create(fs, dir, name, mode & S_IFMT);

	if (!rc)
		rc = sfs_stg_dir_get(fs, dir, &r);
	if (rc)
		return rc;
	if (S_ISDIR(mode))
		rc = mkdirat(r.fd, name, mode & 07777);
	else if (S_ISLNK(mode))
		rc = symlinkat(target, r.fd, name);
	else
		rc = mknodat(r.fd, name, mode, rdev);
	rc = rc < 0 ? -errno : 0;
	if (!rc) {
		own_new(fs, r.fd, name, -1, mode, ctx);
		rc = new_entry(fs, dir, r.fd, name, e);
	}
	sfs_stg_dir_put(fs, &r);
	return rc;
}

static int stg_mknod(struct sfs_fs *fs, struct sfs_inode *dir, const char *name, mode_t mode,
		     dev_t rdev, const struct sfs_ctx *ctx, struct sfs_entry *e)
{
	return make(fs, dir, name, mode, rdev, NULL, ctx, e);
}

static int stg_mkdir(struct sfs_fs *fs, struct sfs_inode *dir, const char *name, mode_t mode,
		     const struct sfs_ctx *ctx, struct sfs_entry *e)
{
	return make(fs, dir, name, S_IFDIR | (mode & 07777), 0, NULL, ctx, e);
}

static int stg_symlink(struct sfs_fs *fs, struct sfs_inode *dir, const char *name,
		       const char *target, const struct sfs_ctx *ctx, struct sfs_entry *e)
{
	return make(fs, dir, name, S_IFLNK | 0777, 0, target, ctx, e);
}

static int stg_link(struct sfs_fs *fs, struct sfs_inode *base, struct sfs_inode *dirin,
		    const char *name, const struct sfs_ctx *ctx, struct sfs_entry *e)
{
	struct sfs_stg *in = S(base), *dir = S(dirin);
	struct sfs_stg_dref r;
	char proc[64];
	int rc = sfs_stg_may_create(fs, dir, name, in->type);

	if (rc)
		return rc;
	if (is_committing(fs, in->ino))
		return -EBUSY; /* it is becoming canonical: no new names */
	int fd = sfs_stg_open(fs, in, O_PATH);
	if (fd < 0)
		return fd;
	rc = sfs_stg_dir_get(fs, dir, &r);
	if (!rc) {
		snprintf(proc, sizeof(proc), PROC_FD, fd);
		rc = linkat(AT_FDCWD, proc, r.fd, name, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
		if (!rc && sfs_stg_uploads(fs) && in->type == S_IFREG) {
			rc = sfs_stg_sync_linked(fs, in, dir, name);
			if (rc)
				(void)unlinkat(r.fd, name, 0);
		}
		if (!rc)
			rc = new_entry(fs, dir, r.fd, name, e);
		sfs_stg_dir_put(fs, &r);
	}
	close(fd);
	return rc;
}

static int remove_name(struct sfs_fs *fs, struct sfs_inode *dirin, const char *name, int flags)
{
	struct sfs_stg *dir = S(dirin);
	struct sfs_stg_dref r;
	struct stat st;
	int rc;

	if (strcmp(name, SFS_RECEIPTS) == 0)
		return -EPERM;
	rc = sfs_stg_dir_get(fs, dir, &r);
	if (rc)
		return rc;
	rc = fstatat(r.fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	if (!rc && is_committing(fs, st.st_ino))
		rc = -EBUSY;
	if (!rc && unlinkat(r.fd, name, flags) < 0)
		rc = -errno;
	sfs_stg_dir_put(fs, &r);
	if (!rc) {
		sfs_stg_unlinked(fs, dir, name, st.st_ino, st.st_nlink);
		sfs_stg_sync_unlinked(fs, dir, name, S_ISDIR(st.st_mode));
	}
	return rc;
}

static int stg_unlink(struct sfs_fs *fs, struct sfs_inode *dir, const char *name,
		      const struct sfs_ctx *ctx)
{
	return remove_name(fs, dir, name, 0);
}

static int stg_rmdir(struct sfs_fs *fs, struct sfs_inode *dir, const char *name,
		     const struct sfs_ctx *ctx)
{
	return remove_name(fs, dir, name, AT_REMOVEDIR);
}

static int level(const struct sfs_stg *d)
{
	return d->depth >= SFS_DEPTH_TABLE ? SFS_DEPTH_TABLE : d->depth;
}

static int stg_rename(struct sfs_fs *fs, struct sfs_inode *dirin, const char *name,
		      struct sfs_inode *newdirin, const char *newname, unsigned int flags,
		      const struct sfs_ctx *ctx)
{
	struct sfs_stg *dir = S(dirin), *newdir = S(newdirin);
	struct sfs_stg_dref a = {-1, -1}, b = {-1, -1};
	struct stat st, tst;
	int rc = 0, target = 0;

	if (strcmp(name, SFS_RECEIPTS) == 0 || strcmp(newname, SFS_RECEIPTS) == 0)
		return -EPERM;
	if (strlen(newname) > SFS_SEGMENT_MAX)
		return -ENAMETOOLONG;
	if (!storable_name(fs, newname))
		return -EINVAL;
	/* levels 1 and 2 hold only directories: entries move within their level */
	if (level(dir) != level(newdir))
		return -EPERM;
	if (newdir->depth < SFS_DEPTH_TABLE && !valid_level_name(newname))
		return -EINVAL;
	if ((flags & RENAME_EXCHANGE) && sfs_stg_uploads(fs))
		return -EINVAL; /* the store has no atomic swap */
	rc = sfs_stg_dir_get(fs, dir, &a);
	if (!rc)
		rc = sfs_stg_dir_get(fs, newdir, &b);
	if (rc)
		goto out;
	rc = fstatat(a.fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	if (!rc)
		target = fstatat(b.fd, newname, &tst, AT_SYMLINK_NOFOLLOW) == 0;
	if (!rc && (is_committing(fs, st.st_ino) || (target && is_committing(fs, tst.st_ino))))
		rc = -EBUSY;
	if (!rc && renameat2(a.fd, name, b.fd, newname, flags) < 0)
		rc = -errno;
	if (rc)
		goto out;
	if (target && tst.st_ino != st.st_ino && !(flags & RENAME_EXCHANGE))
		sfs_stg_unlinked(fs, newdir, newname, tst.st_ino, tst.st_nlink);
	sfs_stg_moved(fs, dir, name, st.st_ino, newdir, newname, target ? tst.st_ino : 0,
		      (flags & RENAME_EXCHANGE) != 0);
	sfs_stg_sync_renamed(fs, dir, name, newdir, newname);
out:
	sfs_stg_dir_put(fs, &a);
	sfs_stg_dir_put(fs, &b);
	return rc;
}

/* ---- extended attributes (user.* only: the dispatcher refuses the rest) ---- */

/*
 * May the caller commit in?  A commit takes the entry out of its directory,
 * as a rename out of it would: the caller needs write permission on the
 * entry and write and search permission on its directory, and in a sticky
 * directory must own the entry or the directory (rename(2)'s rules: EACCES,
 * EPERM).  The daemon checks it itself: default_permissions has the kernel
 * check a user.* setxattr against the entry alone, and without that option
 * nothing is checked at all.  Root may commit anything.
 */
static int may_commit(struct sfs_fs *fs, struct sfs_stg *in, const struct sfs_ctx *ctx)
{
	struct sfs_stg *dir = NULL;
	struct stat est, dst;
	int rc;

	if (!ctx || ctx->uid == 0)
		return 0;
	pthread_mutex_lock(&fs->lock);
	if (in->parent) {
		dir = in->parent;
		sfs_inode_hold_locked(&dir->base);
	}
	pthread_mutex_unlock(&fs->lock);
	if (!dir)
		return -ENOENT;
	rc = stg_access(fs, &in->base, W_OK, ctx);
	if (!rc)
		rc = stg_access(fs, &dir->base, W_OK | X_OK, ctx);
	if (!rc)
		rc = sfs_stg_stat(fs, dir, &dst);
	if (!rc && (dst.st_mode & S_ISVTX) && dst.st_uid != ctx->uid) {
		rc = sfs_stg_stat(fs, in, &est);
		if (!rc && est.st_uid != ctx->uid)
			rc = -EPERM;
	}
	sfs_inode_put(fs, &dir->base);
	return rc;
}

static int stg_setxattr(struct sfs_fs *fs, struct sfs_inode *base, const char *name,
			const char *value, size_t size, int flags, const struct sfs_ctx *ctx)
{
	struct sfs_stg *in = S(base);
	char proc[64];

	if (strcmp(name, SFS_XATTR_COMMIT) == 0) {
		int rc = may_commit(fs, in, ctx);
		return rc ? rc : sfs_jobs_submit(fs, in, value, size);
	}
	if (strncmp(name, SFS_XATTR_OURS, strlen(SFS_XATTR_OURS)) == 0)
		return -EPERM; /* our own bookkeeping */
	if (in->type == S_IFLNK)
		return -EPERM; /* no user xattrs on symlinks (as on ext4) */
	int fd = sfs_stg_open(fs, in, O_PATH);
	if (fd < 0)
		return fd;
	snprintf(proc, sizeof(proc), PROC_FD, fd);
	int rc = setxattr(proc, name, value, size, flags) < 0 ? -errno : 0;
	close(fd);
	if (!rc)
		sfs_stg_sync_meta(fs, in);
	return rc;
}

static int stg_removexattr(struct sfs_fs *fs, struct sfs_inode *base, const char *name,
			   const struct sfs_ctx *ctx)
{
	struct sfs_stg *in = S(base);
	char proc[64];

	if (strncmp(name, SFS_XATTR_OURS, strlen(SFS_XATTR_OURS)) == 0)
		return -EPERM;
	if (in->type == S_IFLNK)
		return -EPERM;
	int fd = sfs_stg_open(fs, in, O_PATH);
	if (fd < 0)
		return fd;
	snprintf(proc, sizeof(proc), PROC_FD, fd);
	int rc = removexattr(proc, name) < 0 ? -errno : 0;
	close(fd);
	if (!rc)
		sfs_stg_sync_meta(fs, in);
	return rc;
}

static ssize_t stg_getxattr(struct sfs_fs *fs, struct sfs_inode *base, const char *name, char *buf,
			    size_t size)
{
	struct sfs_stg *in = S(base);
	char proc[64];

	if (strcmp(name, SFS_XATTR_STATUS) == 0) {
		char st[512];
		sfs_stg_status(in, st, sizeof(st));
		if (!st[0])
			sfs_jobs_status(fs, in, st, sizeof(st));
		char *rel = NULL;
		if (!st[0] && in->type == S_IFREG && sfs_uploads_on(fs) &&
		    sfs_stg_rel(fs, in, &rel) == 0 && sfs_uploads_pending(fs, rel))
			snprintf(st, sizeof(st), "uploading");
		free(rel);
		if (!st[0])
			snprintf(st, sizeof(st), "staged");
		return sfs_xattr_value(st, strlen(st), buf, size);
	}
	if (strncmp(name, SFS_XATTR_OURS, strlen(SFS_XATTR_OURS)) == 0 || in->type == S_IFLNK)
		return -ENODATA;
	int fd = sfs_stg_open(fs, in, O_PATH);
	if (fd < 0)
		return fd;
	snprintf(proc, sizeof(proc), PROC_FD, fd);
	ssize_t n = getxattr(proc, name, buf, size);
	if (n < 0)
		n = -errno;
	close(fd);
	return n;
}

static ssize_t stg_listxattr(struct sfs_fs *fs, struct sfs_inode *base, char *buf, size_t size)
{
	struct sfs_stg *in = S(base);
	char proc[64], *raw = NULL;
	ssize_t n, olen = 0;

	if (in->type == S_IFLNK)
		return 0;
	int fd = sfs_stg_open(fs, in, O_PATH);
	if (fd < 0)
		return fd;
	snprintf(proc, sizeof(proc), PROC_FD, fd);
	n = listxattr(proc, NULL, 0);
	if (n > 0) {
		raw = malloc((size_t)n);
		n = raw ? listxattr(proc, raw, (size_t)n) : -1;
	}
	if (n < 0) {
		olen = errno == ENOMEM || !raw ? -ENOMEM : -errno;
		goto out;
	}
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(raw + i) + 1) {
		size_t l = strlen(raw + i) + 1;
		if (strncmp(raw + i, SFS_XATTR_OURS, strlen(SFS_XATTR_OURS)) == 0 ||
		    strncmp(raw + i, "user.", 5) != 0)
			continue; /* our own bookkeeping and namespaces we do not serve */
		if (size && (size_t)olen + l > size) {
			olen = -ERANGE;
			goto out;
		}
		if (size)
			memcpy(buf + olen, raw + i, l);
		olen += (ssize_t)l;
	}
out:
	free(raw);
	close(fd);
	return olen;
}

static const struct sfs_view_wops stg_wops = {
	.setattr = stg_setattr,
	.mknod = stg_mknod,
	.mkdir = stg_mkdir,
	.symlink = stg_symlink,
	.link = stg_link,
	.unlink = stg_unlink,
	.rmdir = stg_rmdir,
	.rename = stg_rename,
	.create = sfs_stg_io_create,
	.write = sfs_stg_io_write,
	.fallocate = sfs_stg_io_fallocate,
	.setxattr = stg_setxattr,
	.removexattr = stg_removexattr,
};

const struct sfs_view sfs_view_staging = {
	.name = "staging",
	.ro_errno = EROFS,
	.lookup = stg_lookup,
	.getattr = stg_getattr,
	.access = stg_access,
	.readlink = stg_readlink,
	.opendir = stg_opendir,
	.readdir = stg_readdir,
	.fsyncdir = stg_fsyncdir,
	.open = sfs_stg_io_open,
	.read = sfs_stg_io_read,
	.flush = sfs_stg_io_flush,
	.fsync = sfs_stg_io_fsync,
	.lseek = sfs_stg_io_lseek,
	.release = stg_release,
	.getxattr = stg_getxattr,
	.listxattr = stg_listxattr,
	.free = sfs_stg_free_locked,
	.w = &stg_wops,
};
