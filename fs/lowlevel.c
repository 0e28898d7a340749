/*
 * fs/lowlevel.c - the FUSE low-level operations: decode a request, find the
 * inode's view, call it, reply.  The only file that replies to the kernel.
 *
 * Rules kept here, for every view alike:
 *   - every request gets exactly one reply;
 *   - a mutation the view does not implement gets the view's ro_errno, and
 *     -o ro gets EROFS, from every entry point (access(W_OK) included);
 *   - a rename or link across views is EXDEV;
 *   - an entry, create or open whose reply the kernel did not take (the
 *     request was interrupted or the connection aborted) is undone: the
 *     lookup reference dropped, the handle released (as libfuse's fuse.c does);
 *   - only user.* extended attributes exist (EOPNOTSUPP for the rest: a root
 *     daemon writing trusted.* or security.* for any caller would be a
 *     privilege leak, and ACLs are not enforced by this mount).
 */
#include "fs/view.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/log.h"

static struct sfs_fs *FS(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct sfs_fh *FH(const struct fuse_file_info *fi)
{
	return fi ? (struct sfs_fh *)(uintptr_t)fi->fh : NULL;
}

static void ctx_of(fuse_req_t req, struct sfs_ctx *c)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);

	c->uid = fc ? fc->uid : 0;
	c->gid = fc ? fc->gid : 0;
	c->pid = fc ? fc->pid : 0;
	c->umask = fc ? fc->umask : 022;
	c->req = req;
}

/* 0 when view v may make this change (op is its implementation), else the errno. */
static int may_change(struct sfs_fs *fs, const struct sfs_view *v, const void *op)
{
	if (fs->read_only)
		return -EROFS;
	return v->w && op ? 0 : -v->ro_errno;
}
#define WOP(v, op) ((v)->w ? (const void *)(v)->w->op : NULL)

static int user_xattr(const char *name)
{
	return strncmp(name, "user.", 5) == 0;
}

static void reply_entry(fuse_req_t req, struct sfs_fs *fs, struct sfs_entry *e)
{
	struct fuse_entry_param p;

	memset(&p, 0, sizeof(p));
	p.entry_timeout = e->timeout;
	if (e->in) {
		p.ino = sfs_ino_of(fs, e->in);
		p.attr = e->st;
		p.attr_timeout = e->timeout;
	}
	if (fuse_reply_entry(req, &p) != 0 && e->in)
		sfs_inode_forget(fs, e->in, 1); /* the kernel never got it */
}

static void reply_err(fuse_req_t req, int rc)
{
	fuse_reply_err(req, -rc);
}

/* ---- names and attributes ---- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *dir = sfs_inode_of(fs, parent);
	const struct sfs_view *v = sfs_inode_view(dir);
	struct sfs_entry e;
	int rc;

	memset(&e, 0, sizeof(e));
	if (strlen(name) > SFS_SEGMENT_MAX)
		rc = -ENAMETOOLONG;
	else
		rc = v->lookup ? v->lookup(fs, dir, name, &e) : -ENOTDIR;
	sfs_inode_touch(dir);
	if (rc)
		reply_err(req, rc);
	else
		reply_entry(req, fs, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct sfs_fs *fs = FS(req);

	sfs_inode_forget(fs, sfs_inode_of(fs, ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct sfs_fs *fs = FS(req);

	pthread_mutex_lock(&fs->lock);
	for (size_t i = 0; i < count; i++)
		sfs_inode_forget_locked(fs, sfs_inode_of(fs, forgets[i].ino), forgets[i].nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = sfs_inode_of(fs, ino);
	struct stat st;
	double t = fs->timeout;
	int rc = sfs_inode_view(in)->getattr(fs, in, FH(fi), &st, &t);

	sfs_inode_touch(in);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_attr(req, &st, t);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		       struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = sfs_inode_of(fs, ino);
	const struct sfs_view *v = sfs_inode_view(in);
	struct sfs_ctx ctx;
	struct stat st;
	int rc = may_change(fs, v, WOP(v, setattr));

	ctx_of(req, &ctx);
	if (!rc)
		rc = v->w->setattr(fs, in, FH(fi), attr, valid, &ctx, &st);
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_attr(req, &st, fs->timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = sfs_inode_of(fs, ino);
	const struct sfs_view *v = sfs_inode_view(in);
	char *buf = malloc(PATH_MAX + 1);
	int rc = !buf ? -ENOMEM : v->readlink ? v->readlink(fs, in, buf, PATH_MAX + 1) : -EINVAL;

	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_readlink(req, buf);
	free(buf);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = sfs_inode_of(fs, ino);
	const struct sfs_view *v = sfs_inode_view(in);
	struct sfs_ctx ctx;
	int rc = 0;

	ctx_of(req, &ctx);
	if (mask & W_OK)
		rc = may_change(fs, v, v->w);
	if (!rc && v->access)
		rc = v->access(fs, in, mask, &ctx);
	reply_err(req, rc);
}

/* ---- making and removing names ---- */

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *dir = sfs_inode_of(fs, parent);
	const struct sfs_view *v = sfs_inode_view(dir);
	struct sfs_entry e = {0};
	struct sfs_ctx ctx;
	int rc = may_change(fs, v, WOP(v, mknod));

	ctx_of(req, &ctx);
	if (!rc)
		rc = v->w->mknod(fs, dir, name, mode, rdev, &ctx, &e);
	if (rc)
		reply_err(req, rc);
	else
		reply_entry(req, fs, &e);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *dir = sfs_inode_of(fs, parent);
	const struct sfs_view *v = sfs_inode_view(dir);
	struct sfs_entry e = {0};
	struct sfs_ctx ctx;
	int rc = may_change(fs, v, WOP(v, mkdir));

	ctx_of(req, &ctx);
	if (!rc)
		rc = v->w->mkdir(fs, dir, name, mode, &ctx, &e);
	if (rc)
		reply_err(req, rc);
	else
		reply_entry(req, fs, &e);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *dir = sfs_inode_of(fs, parent);
	const struct sfs_view *v = sfs_inode_view(dir);
	struct sfs_entry e = {0};
	struct sfs_ctx ctx;
	int rc = may_change(fs, v, WOP(v, symlink));

	ctx_of(req, &ctx);
	if (!rc)
		rc = v->w->symlink(fs, dir, name, link, &ctx, &e);
	if (rc)
		reply_err(req, rc);
	else
		reply_entry(req, fs, &e);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = sfs_inode_of(fs, ino), *dir = sfs_inode_of(fs, newparent);
	const struct sfs_view *v = sfs_inode_view(dir), *iv = sfs_inode_view(in);
	struct sfs_entry e = {0};
	struct sfs_ctx ctx;
	int rc = may_change(fs, v, WOP(v, link));

	if (!rc)
		rc = may_change(fs, iv, WOP(iv, link));
	if (!rc && iv != v)
		rc = -EXDEV;
	ctx_of(req, &ctx);
	if (!rc)
		rc = v->w->link(fs, in, dir, newname, &ctx, &e);
	if (rc)
		reply_err(req, rc);
	else
		reply_entry(req, fs, &e);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *dir = sfs_inode_of(fs, parent);
	const struct sfs_view *v = sfs_inode_view(dir);
	struct sfs_ctx ctx;
	int rc = may_change(fs, v, WOP(v, unlink));

	ctx_of(req, &ctx);
	if (!rc)
		rc = v->w->unlink(fs, dir, name, &ctx);
	reply_err(req, rc);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *dir = sfs_inode_of(fs, parent);
	const struct sfs_view *v = sfs_inode_view(dir);
	struct sfs_ctx ctx;
	int rc = may_change(fs, v, WOP(v, rmdir));

	ctx_of(req, &ctx);
	if (!rc)
		rc = v->w->rmdir(fs, dir, name, &ctx);
	reply_err(req, rc);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *dir = sfs_inode_of(fs, parent), *ndir = sfs_inode_of(fs, newparent);
	const struct sfs_view *v = sfs_inode_view(dir), *nv = sfs_inode_view(ndir);
	struct sfs_ctx ctx;
	int rc = may_change(fs, v, WOP(v, rename));

	if (!rc)
		rc = may_change(fs, nv, WOP(nv, rename));
	if (!rc && v != nv)
		rc = -EXDEV;
	ctx_of(req, &ctx);
	if (!rc)
		rc = v->w->rename(fs, dir, name, ndir, newname, flags, &ctx);
	reply_err(req, rc);
}

/* ---- files ---- */

static int is_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

static void set_open_out(struct fuse_file_info *fi, struct sfs_fh *h, const struct sfs_open_out *o)
{
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->keep_cache = o->keep_cache ? 1 : 0;
	fi->direct_io = o->direct_io ? 1 : 0;
	fi->noflush = o->noflush ? 1 : 0;
}

static void release_fh(struct sfs_fs *fs, struct sfs_fh *h)
{
	h->view->release(fs, h);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = sfs_inode_of(fs, ino);
	const struct sfs_view *v = sfs_inode_view(in);
	struct sfs_open_out o = {0};
	struct sfs_fh *h = NULL;
	struct sfs_ctx ctx;
	int rc = is_write(fi->flags) ? may_change(fs, v, WOP(v, write)) : 0;

	ctx_of(req, &ctx);
	if (!rc)
		rc = v->open ? v->open(fs, in, fi->flags, &ctx, &h, &o) : -EISDIR;
	if (rc) {
		reply_err(req, rc);
		return;
	}
	set_open_out(fi, h, &o);
	if (fuse_reply_open(req, fi) != 0)
		release_fh(fs, h); /* interrupted: no RELEASE will come for it */
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *dir = sfs_inode_of(fs, parent);
	const struct sfs_view *v = sfs_inode_view(dir);
	struct sfs_open_out o = {0};
	struct sfs_entry e = {0};
	struct sfs_fh *h = NULL;
	struct sfs_ctx ctx;
	int rc = may_change(fs, v, WOP(v, create));

	ctx_of(req, &ctx);
	if (!rc && strlen(name) > SFS_SEGMENT_MAX)
		rc = -ENAMETOOLONG;
	if (!rc)
		rc = v->w->create(fs, dir, name, mode, fi->flags, &ctx, &e, &h, &o);
	if (rc) {
		reply_err(req, rc);
		return;
	}
	struct fuse_entry_param p;
	memset(&p, 0, sizeof(p));
	p.ino = sfs_ino_of(fs, e.in);
	p.attr = e.st;
	p.attr_timeout = p.entry_timeout = e.timeout;
	set_open_out(fi, h, &o);
	if (fuse_reply_create(req, &p, fi) != 0) {
		release_fh(fs, h);
		sfs_inode_forget(fs, e.in, 1);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_fh *h = FH(fi);
	struct sfs_data d;
	int rc = h->view->read ? h->view->read(fs, h, size, off, &d) : -EISDIR;

	if (rc) {
		reply_err(req, rc);
	} else if (d.fd >= 0) {
		struct fuse_bufvec buf = FUSE_BUFVEC_INIT(d.size);
		buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		buf.buf[0].fd = d.fd;
		buf.buf[0].pos = d.pos;
		fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
	} else {
		fuse_reply_buf(req, d.buf, d.size);
		free(d.buf);
	}
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_fh *h = FH(fi);
	const struct sfs_view *v = h->view;
	struct sfs_ctx ctx;
	ssize_t n = may_change(fs, v, WOP(v, write));

	ctx_of(req, &ctx);
	if (!n)
		n = v->w->write(fs, h, buf, size, off, &ctx);
	if (n < 0)
		reply_err(req, (int)n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_fh *h = FH(fi);

	reply_err(req, h->view->flush ? h->view->flush(fs, h) : 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	release_fh(FS(req), FH(fi));
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_fh *h = FH(fi);

	reply_err(req, h->view->fsync ? h->view->fsync(fs, h, datasync) : 0);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_fh *h = FH(fi);
	const struct sfs_view *v = h->view;
	int rc = may_change(fs, v, WOP(v, fallocate));

	if (!rc)
		rc = v->w->fallocate(fs, h, mode, off, len);
	reply_err(req, rc);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_fh *h = FH(fi);
	off_t r = h->view->lseek ? h->view->lseek(fs, h, off, whence) : -ENOSYS;

	if (r < 0)
		reply_err(req, (int)r);
	else
		fuse_reply_lseek(req, r);
}

static void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
		     struct fuse_file_info *fi, unsigned flags, const void *in_buf, size_t in_bufsz,
		     size_t out_bufsz)
{
	fuse_reply_err(req, ENOTTY);
}

/* ---- directories ---- */

struct sfs_dirfill {
	struct sfs_fs *fs;
	fuse_req_t req;
	char *buf;
	size_t size, used;
	int plus;
};

int sfs_dirfill_plus(const struct sfs_dirfill *f)
{
	/* Past the inode bound, entries go out without an inode: the kernel caches none of
	   them and a stat looks the name up.  A find over a million snapshot files (readdirplus
	   at ~90,000 entries/s) otherwise outran the reclaim: 650,000 inodes alive, 140 MB. */
	return f->plus && !sfs_fs_inodes_full(f->fs);
}

int sfs_dirfill_add(struct sfs_dirfill *f, const char *name, mode_t type, ino_t ino, off_t next,
		    struct sfs_entry *e)
{
	size_t rem = f->size - f->used, need;

	if (f->plus) {
		struct fuse_entry_param p;
		memset(&p, 0, sizeof(p));
		if (e && e->in) {
			p.ino = sfs_ino_of(f->fs, e->in);
			p.attr = e->st;
			p.attr_timeout = p.entry_timeout = e->timeout;
		} else {
			p.attr.st_ino = ino;
			p.attr.st_mode = type;
		}
		need = fuse_add_direntry_plus(f->req, f->buf + f->used, rem, name, &p, next);
	} else {
		struct stat st;
		memset(&st, 0, sizeof(st));
		st.st_ino = ino;
		st.st_mode = type;
		need = fuse_add_direntry(f->req, f->buf + f->used, rem, name, &st, next);
	}
	if (need > rem) {
		if (e && e->in)
			sfs_inode_forget(f->fs, e->in, 1);
		return 1;
	}
	f->used += need;
	return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = sfs_inode_of(fs, ino);
	const struct sfs_view *v = sfs_inode_view(in);
	struct sfs_open_out o = {0};
	struct sfs_fh *h = NULL;
	int rc = v->opendir ? v->opendir(fs, in, &h) : -ENOTDIR;

	if (rc) {
		reply_err(req, rc);
		return;
	}
	set_open_out(fi, h, &o);
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) != 0)
		release_fh(fs, h);
}

static void do_readdir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi, int plus)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_fh *h = FH(fi);
	struct sfs_dirfill f = {.fs = fs, .req = req, .size = size, .plus = plus};
	int rc;

	f.buf = malloc(size ? size : 1);
	if (!f.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = h->view->readdir ? h->view->readdir(fs, h, off, &f) : -ENOTDIR;
	sfs_inode_touch(h->in);
	if (rc && !f.used)
		reply_err(req, rc);
	else
		fuse_reply_buf(req, f.buf, f.used);
	free(f.buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	release_fh(FS(req), FH(fi));
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_fh *h = FH(fi);

	reply_err(req, h->view->fsyncdir ? h->view->fsyncdir(fs, h, datasync) : 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct sfs_fs *fs = FS(req);
	struct statvfs sv;

	memset(&sv, 0, sizeof(sv));
	if (fs->staging_fd < 0) { /* a snapshot mount: nothing to write to */
		sv.f_bsize = sv.f_frsize = 1 << 20;
		sv.f_namemax = SFS_SEGMENT_MAX;
	} else if (fstatvfs(fs->staging_fd, &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (fs->read_only)
		sv.f_flag |= ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes ---- */

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = sfs_inode_of(fs, ino);
	const struct sfs_view *v = sfs_inode_view(in);
	struct sfs_ctx ctx;
	int rc = may_change(fs, v, WOP(v, setxattr));

	ctx_of(req, &ctx);
	if (!rc && !user_xattr(name))
		rc = -EOPNOTSUPP;
	if (!rc)
		rc = v->w->setxattr(fs, in, name, value, size, flags, &ctx);
	reply_err(req, rc);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = sfs_inode_of(fs, ino);
	const struct sfs_view *v = sfs_inode_view(in);
	struct sfs_ctx ctx;
	int rc = may_change(fs, v, WOP(v, removexattr));

	ctx_of(req, &ctx);
	if (!rc && !user_xattr(name))
		rc = -EOPNOTSUPP;
	if (!rc)
		rc = v->w->removexattr(fs, in, name, &ctx);
	reply_err(req, rc);
}

static void reply_xattr(fuse_req_t req, char *buf, size_t size, ssize_t n)
{
	if (n < 0)
		reply_err(req, (int)n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = sfs_inode_of(fs, ino);
	const struct sfs_view *v = sfs_inode_view(in);
	char *buf = size ? malloc(size) : NULL;
	ssize_t n;

	if (!user_xattr(name))
		n = -EOPNOTSUPP; /* also lets ls cache "unsupported" per filesystem */
	else if (size && !buf)
		n = -ENOMEM;
	else
		n = v->getxattr ? v->getxattr(fs, in, name, buf, size) : -ENODATA;
	reply_xattr(req, buf, size, n);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = sfs_inode_of(fs, ino);
	const struct sfs_view *v = sfs_inode_view(in);
	char *buf = size ? malloc(size) : NULL;
	ssize_t n = size && !buf ? -ENOMEM : v->listxattr ? v->listxattr(fs, in, buf, size) : 0;

	reply_xattr(req, buf, size, n);
	free(buf);
}

/* ---- session ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/*
	 * No kernel writeback cache: every write reaches us in order (the MD5
	 * trails it) and a small file costs fewer requests (the cache adds two
	 * SETATTRs and a FLUSH per file; zarr writes one file per chunk).
	 * Large writes still arrive 1 MiB at a time.
	 */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	if (conn->max_write < (1u << 20))
		conn->max_write = 1u << 20;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	/*
	 * Set-ID bits are dropped by us (fs/staging_io.c), which saves the kernel
	 * a security.capability round trip per write.
	 */
	if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV)
		conn->want |= FUSE_CAP_HANDLE_KILLPRIV;
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	/* locks are handled by the kernel: no lock ops are implemented */
	conn->want &= ~(unsigned)(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	conn->max_readahead = 1 << 20;
	sfs_log(LOG_DEBUG, "mounted: max_write %u", conn->max_write);
}

static void op_destroy(void *userdata)
{
	struct sfs_fs *fs = userdata;
	int rc = sfs_backend_sync(fs->be);

	if (rc)
		sfs_log(LOG_ERR, "cannot flush the store at unmount: %s", strerror(-rc));
}

const struct fuse_lowlevel_ops sfs_fs_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
	.ioctl = op_ioctl,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.access = op_access,
};
