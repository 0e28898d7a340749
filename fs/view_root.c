/*
 * fs/view_root.c - the mount root: staging/ and the canonical prefixes
 * (<schema_prefix>/, <hash_prefix>/).  Read-only: EROFS.
 */
#include "fs/view.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/staging.h"
#include "index/snapdb.h"

static int root_getattr(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh *fh, struct stat *st,
			double *timeout)
{
	sfs_view_dir_attr(fs, st, FUSE_ROOT_ID, 0755);
	*timeout = fs->timeout;
	return 0;
}

static int root_lookup(struct sfs_fs *fs, struct sfs_inode *dir, const char *name,
		       struct sfs_entry *e)
{
	struct sfs_inode *in = NULL;

	if (strcmp(name, "staging") == 0)
		in = &fs->staging->base;
	else if (strcmp(name, SFS_DOT_SNAPSHOTS) == 0)
		in = fs->snapdir;
	else
		in = sfs_canon_root_child(fs, name);
	if (!in)
		return -ENOENT;
	int rc = sfs_inode_view(in)->getattr(fs, in, NULL, &e->st, &e->timeout);
	if (rc)
		return rc;
	pthread_mutex_lock(&fs->lock);
	sfs_inode_lookup_locked(in, 1);
	pthread_mutex_unlock(&fs->lock);
	e->in = in;
	return 0;
}

struct root_dirh {
	struct sfs_fh fh;
	struct sfs_list l;
};

static int add_root(void *arg, const char *name)
{
	return sfs_list_add(arg, name, S_IFDIR);
}

static int root_opendir(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh **out)
{
	struct root_dirh *d = sfs_fh_new(fs, &sfs_view_root, in, sizeof(*d), 0);
	int rc;

	if (!d)
		return -ENOMEM;
	rc = sfs_list_add(&d->l, ".", S_IFDIR);
	if (!rc)
		rc = sfs_list_add(&d->l, "..", S_IFDIR);
	if (!rc)
		rc = sfs_list_add(&d->l, "staging", S_IFDIR);
	if (!rc)
		rc = sfs_canon_roots(fs, add_root, &d->l);
	if (!rc && fs->snapdir)
		rc = sfs_list_add(&d->l, SFS_DOT_SNAPSHOTS, S_IFDIR);
	if (rc) {
		sfs_list_release(&d->l);
		sfs_fh_free(fs, &d->fh);
		return rc;
	}
	*out = &d->fh;
	return 0;
}

static int root_readdir(struct sfs_fs *fs, struct sfs_fh *fh, off_t off, struct sfs_dirfill *f)
{
	return sfs_list_fill(fs, &((struct root_dirh *)fh)->l, fh->in, off, f);
}

static void root_release(struct sfs_fs *fs, struct sfs_fh *fh)
{
	sfs_list_release(&((struct root_dirh *)fh)->l);
	sfs_fh_free(fs, fh);
}

/*
 * user.stagefs.status of the mount root: how the daemon tracks inodes, for
 * people debugging a mount (and tests): "inodes N/MAX reclaimed R handles H
 * file-handles yes|no cache-rescans C".
 */
static ssize_t root_getxattr(struct sfs_fs *fs, struct sfs_inode *in, const char *name, char *buf,
			     size_t size)
{
	char s[256];
	size_t handles = 0;
	unsigned long rescans;

	if (strcmp(name, SFS_XATTR_SOURCE) == 0) {
		char *j = NULL;
		ssize_t rc = sfs_json_eval("json_object('source',?1,'options',?2)", 2,
					   (const char *const[]){fs->source, fs->options}, &j);
		if (!rc)
			rc = sfs_xattr_value(j, strlen(j), buf, size);
		free(j);
		return rc;
	}
	if (strcmp(name, SFS_XATTR_STATUS) != 0)
		return -ENODATA;
	pthread_mutex_lock(&fs->hlock);
	for (struct sfs_fh *h = fs->handles; h; h = h->next)
		handles++;
	pthread_mutex_unlock(&fs->hlock);
	pthread_mutex_lock(&fs->lock);
	size_t n = fs->nstaging;
	pthread_mutex_unlock(&fs->lock);
	pthread_mutex_lock(&fs->cache_mutex);
	rescans = fs->cache_rescans;
	pthread_mutex_unlock(&fs->cache_mutex);
	snprintf(s, sizeof(s),
		 "inodes %zu/%zu reclaimed %lu handles %zu file-handles %s cache-rescans %lu", n,
		 fs->inode_high, __atomic_load_n(&fs->reclaimed, __ATOMIC_RELAXED), handles,
		 fs->use_handles ? "yes" : "no", rescans);
	return sfs_xattr_value(s, strlen(s), buf, size);
}

/* user.stagefs.jobs = "retry" on the mount root: failed commit jobs run again (stagefs jobs --retry). */
static int root_setxattr(struct sfs_fs *fs, struct sfs_inode *in, const char *name,
			 const char *value, size_t size, int flags, const struct sfs_ctx *ctx)
{
	(void)in;
	(void)flags;
	(void)ctx;
	if (strcmp(name, SFS_XATTR_JOBS) != 0)
		return -EROFS;
	if (size != 5 || memcmp(value, "retry", 5) != 0)
		return -EINVAL;
	return sfs_jobs_retry(fs);
}

/* The root takes one setxattr (above), nothing else: it is not writable. */
static int root_access(struct sfs_fs *fs, struct sfs_inode *in, int mask, const struct sfs_ctx *ctx)
{
	(void)fs;
	(void)in;
	(void)ctx;
	return mask & W_OK ? -EROFS : 0;
}

static const struct sfs_view_wops root_wops = {
	.setxattr = root_setxattr,
};

static void root_free(struct sfs_fs *fs, struct sfs_inode *in)
{
	(void)fs;
	(void)in; /* pinned: never */
}

const struct sfs_view sfs_view_root = {
	.name = "root",
	.ro_errno = EROFS,
	.lookup = root_lookup,
	.getattr = root_getattr,
	.opendir = root_opendir,
	.readdir = root_readdir,
	.release = root_release,
	.access = root_access,
	.getxattr = root_getxattr,
	.w = &root_wops,
	.free = root_free,
};
