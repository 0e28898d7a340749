/*
 * fs/staging_io.c - open staged files: open, create, read, write, flush,
 * fsync, release, and the MD5 kept while a file is written (fs/hasher.h).
 *
 * Only open files hold a descriptor.  A write handle counts as a writer of
 * its inode: a commit refuses entries with writers (EBUSY), and a file the
 * last writer closed has its digest ready when it was written in order.
 * The daemon asks the kernel to leave set-ID bits to it (HANDLE_KILLPRIV):
 * the first write by a caller other than root drops them, as the kernel does.
 */
#include "fs/staging.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/cache.h"
#include "fs/hasher.h"

static int is_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

static int open_flags(int flags)
{
	return (flags & ~(O_NOFOLLOW | O_CREAT | O_EXCL)) | O_CLOEXEC;
}

/* The hasher finished a file: keep the digest with it for commits after a restart. */
static void hash_done(int rfd, const char *hex, uint64_t size)
{
	char val[80];

	snprintf(val, sizeof(val), "%s %llu", hex, (unsigned long long)size);
	if (fsetxattr(rfd, SFS_XATTR_HINT, val, strlen(val), 0) < 0)
		sfs_log(LOG_DEBUG, "cannot store md5 hint: %s", strerror(errno));
}

void sfs_stg_io_init(void)
{
	sfs_hasher_set_done_cb(hash_done);
}

void sfs_stg_io_truncated(struct sfs_stg *in, int fd, off_t size)
{
	/* an empty file: what is written next can be hashed in order again */
	sfs_stg_hjob_set(in, size == 0 ? sfs_hjob_new() : NULL);
}

/* Account a new write handle; sets up hashing.  -EBUSY while committing. */
static int writer_enter(struct sfs_fs *fs, struct sfs_stg *in, int fd, int flags)
{
	int first;

	pthread_mutex_lock(&fs->lock);
	if (in->committing || sfs_inode_view(&in->base) != &sfs_view_staging) {
		int gone = sfs_inode_view(&in->base) != &sfs_view_staging;
		pthread_mutex_unlock(&fs->lock);
		return gone ? -ENOENT : -EBUSY;
	}
	first = in->writers++ == 0;
	in->opens++;
	pthread_mutex_unlock(&fs->lock);
	if (first) {
		struct stat st;
		/* drop the old job first: from then on it cannot store a hint */
		if ((flags & O_TRUNC) || (fstat(fd, &st) == 0 && st.st_size == 0))
			sfs_stg_hjob_set(in, sfs_hjob_new());
		else
			sfs_stg_hjob_set(in, NULL); /* appending to bytes we did not see written */
		/* the stored digest no longer describes what will be written */
		if (fremovexattr(fd, SFS_XATTR_HINT) < 0 && errno != ENODATA && errno != ENOTSUP)
			sfs_log(LOG_DEBUG, "cannot drop md5 hint: %s", strerror(errno));
	}
	return 0;
}

static void writer_leave(struct sfs_fs *fs, struct sfs_stg *in, int fd)
{
	int last;

	pthread_mutex_lock(&fs->lock);
	last = --in->writers == 0;
	pthread_mutex_unlock(&fs->lock);
	if (last) {
		struct stat st;
		struct sfs_hjob *j = sfs_stg_hjob(in);
		if (j && fstat(fd, &st) == 0)
			sfs_hjob_closed(j, (uint64_t)st.st_size, fd);
		else
			sfs_hjob_invalidate(j);
		sfs_hjob_put(j);
		sfs_stg_hjob_done(in);
	}
}

/* A handle for fd (taken over) on in, counted as writer when opened for writing. */
static int new_handle(struct sfs_fs *fs, struct sfs_stg *in, int fd, int flags, struct sfs_fh **out,
		      struct sfs_open_out *o)
{
	struct stat st;
	int rc = 0;

	if (is_write(flags)) {
		rc = writer_enter(fs, in, fd, flags);
	} else {
		pthread_mutex_lock(&fs->lock);
		in->opens++;
		pthread_mutex_unlock(&fs->lock);
	}
	if (rc) {
		close(fd);
		return rc;
	}
	struct sfs_stg_fh *h = sfs_fh_new(fs, &sfs_view_staging, &in->base, sizeof(*h), flags);
	if (!h) {
		if (is_write(flags))
			writer_leave(fs, in, fd);
		pthread_mutex_lock(&fs->lock);
		in->opens--;
		pthread_mutex_unlock(&fs->lock);
		close(fd);
		return -ENOMEM;
	}
	h->fd = fd;
	h->killpriv = is_write(flags) && fstat(fd, &st) == 0 &&
		      ((st.st_mode & S_ISUID) ||
		       (st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP));
	o->keep_cache = 1; /* this mount is the only writer of the staging tree */
	/*
	 * A write-only handle cannot be read or mmapped: its writes may bypass
	 * the kernel's page cache.  That saves a copy per byte and the
	 * security.capability lookup the kernel makes before every cached write.
	 */
	o->direct_io = (flags & O_ACCMODE) == O_WRONLY && getenv("SFS_NODIO") == NULL;
	o->noflush = !sfs_stg_uploads(fs); /* FLUSH has nothing to do */
	*out = &h->fh;
	return 0;
}

int sfs_stg_io_open(struct sfs_fs *fs, struct sfs_inode *base, int flags, const struct sfs_ctx *ctx,
		    struct sfs_fh **out, struct sfs_open_out *o)
{
	struct sfs_stg *in = sfs_stg(base);
	/* evicted bytes come back before anyone reads them */
	int rc = sfs_cache_lock_present(fs, in, (flags & O_TRUNC) != 0);

	if (rc)
		return rc;
	int fd = sfs_stg_open(fs, in, open_flags(flags));
	rc = fd < 0 ? fd : new_handle(fs, in, fd, flags, out, o);
	sfs_cache_unlock(fs); /* counted as open: no eviction from here on */
	return rc;
}

int sfs_stg_io_create(struct sfs_fs *fs, struct sfs_inode *dirin, const char *name, mode_t mode,
		      int flags, const struct sfs_ctx *ctx, struct sfs_entry *e,
		      struct sfs_fh **out, struct sfs_open_out *o)
{
	struct sfs_stg *dir = sfs_stg(dirin), *in = NULL;
	struct sfs_stg_dref r;
	int rc = sfs_stg_may_create(fs, dir, name, S_IFREG);

	if (rc)
		return rc;
	rc = sfs_stg_dir_get(fs, dir, &r);
	if (rc)
		return rc;
	if (sfs_cache_active(fs) && !(flags & (O_EXCL | O_TRUNC)) &&
	    faccessat(r.fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		/* O_CREAT on an existing file that the cache may have evicted */
		char *prel = NULL, *rel = NULL;
		rc = sfs_stg_rel(fs, dir, &prel);
		if (!rc) {
			rel = sfs_join(prel, name);
			rc = rel ? sfs_cache_present_rel(fs, rel) : -ENOMEM;
		}
		free(prel);
		free(rel);
		if (rc)
			goto out;
	}
	/* never through a symlink someone put there: the kernel follows those itself */
	int fd = openat(r.fd, name, open_flags(flags) | O_CREAT | O_NOFOLLOW, mode & 07777);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	if (geteuid() == 0 && ctx && (ctx->uid || ctx->gid)) {
		struct stat dst;
		gid_t gid =
			fstat(r.fd, &dst) == 0 && (dst.st_mode & S_ISGID) ? (gid_t)-1 : ctx->gid;
		if (fchown(fd, ctx->uid, gid) == 0 && (mode & (S_ISUID | S_ISGID)))
			(void)fchmod(fd, mode & 07777); /* the chown dropped them */
	}
	rc = fstat(fd, &e->st) < 0 ? -errno : 0;
	if (!rc)
		rc = sfs_stg_intern(fs, dir, r.fd, name, &e->st, &in);
	if (rc) {
		close(fd);
		goto out;
	}
	e->in = &in->base;
	e->timeout = fs->timeout;
	rc = new_handle(fs, in, fd, flags, out, o);
	if (rc) {
		sfs_inode_forget(fs, &in->base, 1);
		e->in = NULL;
	}
out:
	sfs_stg_dir_put(fs, &r);
	return rc;
}

int sfs_stg_io_read(struct sfs_fs *fs, struct sfs_fh *fh, size_t size, off_t off,
		    struct sfs_data *out)
{
	memset(out, 0, sizeof(*out));
	out->fd = ((struct sfs_stg_fh *)fh)->fd;
	out->pos = off;
	out->size = size;
	return 0;
}

/* The first write by anyone but root drops set-user-ID (and group-executable set-group-ID). */
static void kill_priv(struct sfs_fs *fs, struct sfs_stg_fh *h, const struct sfs_ctx *ctx)
{
	struct stat st;

	if (!__atomic_load_n(&h->killpriv, __ATOMIC_RELAXED) || !ctx || ctx->uid == 0 ||
	    !__atomic_exchange_n(&h->killpriv, 0, __ATOMIC_RELAXED) || fstat(h->fd, &st) < 0)
		return;
	mode_t m = st.st_mode & 07777 & ~(mode_t)S_ISUID;
	if ((m & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		m &= ~(mode_t)S_ISGID;
	if (fchmod(h->fd, m) < 0)
		sfs_log(LOG_WARNING, "cannot drop set-ID bits: %s", strerror(errno));
	else
		sfs_fs_notify_attr(fs, h->fh.in); /* the kernel still has the old mode */
}

ssize_t sfs_stg_io_write(struct sfs_fs *fs, struct sfs_fh *fh, const char *buf, size_t size,
			 off_t off, const struct sfs_ctx *ctx)
{
	struct sfs_stg_fh *h = (struct sfs_stg_fh *)fh;
	struct sfs_stg *in = sfs_stg(fh->in);
	size_t done = 0;
	int rc = sfs_cache_grow(fs, h->fd, off, size);

	if (rc)
		return rc;
	kill_priv(fs, h, ctx);
	struct sfs_hjob *j = sfs_stg_hjob(in);
	sfs_hjob_pre_write(j, (uint64_t)off, size);
	while (done < size) {
		ssize_t w = pwrite(h->fd, buf + done, size - done, off + (off_t)done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			sfs_hjob_invalidate(j);
			break;
		}
		done += (size_t)w;
	}
	sfs_hjob_post_write(j, (uint64_t)off, done, buf, h->fd);
	sfs_hjob_put(j);
	return done || !rc ? (ssize_t)done : rc;
}

/*
 * close() waits for FLUSH (RELEASE comes later, asynchronously): a backend that
 * uploads staged files does it here, so the object exists under the file's
 * current name before close() returns and before a following rename.
 */
int sfs_stg_io_flush(struct sfs_fs *fs, struct sfs_fh *fh)
{
	struct sfs_stg_fh *h = (struct sfs_stg_fh *)fh;

	if (!sfs_stg_uploads(fs) || (fh->flags & O_ACCMODE) == O_RDONLY)
		return 0;
	return sfs_stg_sync_store(fs, sfs_stg(fh->in), h->fd, 0);
}

int sfs_stg_io_fsync(struct sfs_fs *fs, struct sfs_fh *fh, int datasync)
{
	struct sfs_stg_fh *h = (struct sfs_stg_fh *)fh;

	if ((datasync ? fdatasync(h->fd) : fsync(h->fd)) < 0)
		return -errno;
	if (!sfs_stg_uploads(fs))
		return 0;
	return sfs_stg_sync_store(fs, sfs_stg(fh->in), h->fd, 1);
}

int sfs_stg_io_fallocate(struct sfs_fs *fs, struct sfs_fh *fh, int mode, off_t off, off_t len)
{
	struct sfs_stg_fh *h = (struct sfs_stg_fh *)fh;

	if (fallocate(h->fd, mode, off, len) < 0)
		return -errno;
	if (!(mode & FALLOC_FL_KEEP_SIZE) || (mode & FALLOC_FL_PUNCH_HOLE))
		sfs_stg_hjob_set(sfs_stg(fh->in), NULL);
	return 0;
}

off_t sfs_stg_io_lseek(struct sfs_fs *fs, struct sfs_fh *fh, off_t off, int whence)
{
	off_t r = lseek(((struct sfs_stg_fh *)fh)->fd, off, whence);

	return r < 0 ? -errno : r;
}

void sfs_stg_io_release(struct sfs_fs *fs, struct sfs_fh *fh)
{
	struct sfs_stg_fh *h = (struct sfs_stg_fh *)fh;
	struct sfs_stg *in = sfs_stg(fh->in);

	if (is_write(fh->flags))
		writer_leave(fs, in, h->fd);
	close(h->fd);
	pthread_mutex_lock(&fs->lock);
	in->opens--;
	pthread_mutex_unlock(&fs->lock);
	sfs_fh_free(fs, fh);
}
