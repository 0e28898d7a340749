/*
 * fs/view_receipts.c - `<staging dir>/.receipts/` and the receipts in it,
 * served from the index.  The directory allows unlink (a user may clear a
 * receipt) and nothing else; a receipt is read-only.  Both answer other
 * changes with EPERM: they are not part of a read-only tree, they are ours.
 */
#include "fs/view.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct rcpt {
	struct sfs_inode base;
	char *name; /* the receipt's file name; NULL for the directory */
	char dir[]; /* staging rel dir holding .receipts */
};

struct rcpt_fh {
	struct sfs_fh fh;
	char *json;	   /* an open receipt's text */
	struct sfs_list l; /* an open directory's listing */
};

struct rkey {
	const char *dir, *name;
};

static int match(const struct sfs_inode *in, const void *key)
{
	const struct rcpt *r = (const struct rcpt *)in;
	const struct rkey *k = key;

	return strcmp(r->dir, k->dir) == 0 &&
	       (r->name && k->name ? strcmp(r->name, k->name) == 0 : r->name == k->name);
}

static uint64_t hash_of(const struct rkey *k)
{
	return sfs_fs_key_hash(k->dir) * 31 + (k->name ? sfs_fs_key_hash(k->name) : 7);
}

static int rcpt_attr(struct sfs_fs *fs, struct rcpt *r, struct stat *st)
{
	char *json = NULL;
	char key[8192];

	snprintf(key, sizeof(key), "%s/%s%s", r->dir, SFS_RECEIPTS, r->name ? r->name : "");
	if (!r->name) {
		sfs_view_dir_attr(fs, st, sfs_view_key_ino(key), 0555);
		return 0;
	}
	int rc = sfs_index_receipt_get(fs->ix, r->dir, r->name, &json);
	if (rc)
		return rc;
	memset(st, 0, sizeof(*st));
	st->st_ino = sfs_view_key_ino(key);
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)strlen(json);
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_blksize = 4096;
	st->st_mtim = st->st_ctim = st->st_atim = fs->mount_time;
	free(json);
	return 0;
}

static int rcpt_getattr(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh *fh, struct stat *st,
			double *timeout)
{
	*timeout = 0; /* receipts come and go with commits */
	return rcpt_attr(fs, (struct rcpt *)in, st);
}

/* Find or make the inode (dir, name), with a kernel reference; st filled. */
static int intern(struct sfs_fs *fs, const struct sfs_view *v, const char *dir, const char *name,
		  struct sfs_entry *e)
{
	struct rkey k = {dir, name};
	size_t dn = strlen(dir) + 1;
	struct rcpt *fresh = calloc(1, sizeof(*fresh) + dn);
	struct sfs_inode *in;
	int rc;

	if (!fresh)
		return -ENOMEM;
	memcpy(fresh->dir, dir, dn);
	fresh->name = name ? strdup(name) : NULL;
	if (name && !fresh->name) {
		free(fresh);
		return -ENOMEM;
	}
	fresh->base.view = v;
	fresh->base.hash = hash_of(&k);
	rc = rcpt_attr(fs, fresh, &e->st);
	if (rc) {
		free(fresh->name);
		free(fresh);
		return rc;
	}
	pthread_mutex_lock(&fs->lock);
	in = sfs_table_find_locked(fs, v, fresh->base.hash, match, &k);
	if (!in) {
		rc = sfs_table_insert_locked(fs, &fresh->base);
		if (!rc) {
			in = &fresh->base;
			fresh = NULL;
		}
	}
	if (in)
		sfs_inode_lookup_locked(in, 1);
	pthread_mutex_unlock(&fs->lock);
	if (fresh) {
		free(fresh->name);
		free(fresh);
	}
	if (!in)
		return rc;
	e->in = in;
	e->timeout = 0;
	return 0;
}

int sfs_receipts_lookup(struct sfs_fs *fs, const char *rel, struct sfs_entry *e)
{
	int rc = sfs_index_receipt_any(fs->ix, rel);

	if (rc <= 0)
		return rc ? rc : -ENOENT;
	return intern(fs, &sfs_view_receipts, rel, NULL, e);
}

static int dir_lookup(struct sfs_fs *fs, struct sfs_inode *dir, const char *name,
		      struct sfs_entry *e)
{
	return intern(fs, &sfs_view_receipt, ((struct rcpt *)dir)->dir, name, e);
}

static int list_cb(void *arg, const char *name, int64_t size)
{
	return sfs_list_add(arg, name, S_IFREG);
}

static int dir_opendir(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh **out)
{
	struct rcpt_fh *d = sfs_fh_new(fs, &sfs_view_receipts, in, sizeof(*d), 0);
	int rc;

	if (!d)
		return -ENOMEM;
	rc = sfs_list_add(&d->l, ".", S_IFDIR);
	if (!rc)
		rc = sfs_list_add(&d->l, "..", S_IFDIR);
	if (!rc)
		rc = sfs_index_receipt_list(fs->ix, ((struct rcpt *)in)->dir, list_cb, &d->l);
	if (rc) {
		sfs_list_release(&d->l);
		sfs_fh_free(fs, &d->fh);
		return rc;
	}
	*out = &d->fh;
	return 0;
}

static int dir_readdir(struct sfs_fs *fs, struct sfs_fh *fh, off_t off, struct sfs_dirfill *f)
{
	return sfs_list_fill(fs, &((struct rcpt_fh *)fh)->l, fh->in, off, f);
}

static void rcpt_release(struct sfs_fs *fs, struct sfs_fh *fh)
{
	struct rcpt_fh *h = (struct rcpt_fh *)fh;

	sfs_list_release(&h->l);
	free(h->json);
	sfs_fh_free(fs, fh);
}

static int dir_unlink(struct sfs_fs *fs, struct sfs_inode *dir, const char *name,
		      const struct sfs_ctx *ctx)
{
	return sfs_index_receipt_delete(fs->ix, ((struct rcpt *)dir)->dir, name);
}

static int rcpt_open(struct sfs_fs *fs, struct sfs_inode *in, int flags, const struct sfs_ctx *ctx,
		     struct sfs_fh **out, struct sfs_open_out *o)
{
	struct rcpt *r = (struct rcpt *)in;
	char *json = NULL;
	int rc = sfs_index_receipt_get(fs->ix, r->dir, r->name, &json);

	if (rc)
		return rc;
	struct rcpt_fh *h = sfs_fh_new(fs, &sfs_view_receipt, in, sizeof(*h), flags);
	if (!h) {
		free(json);
		return -ENOMEM;
	}
	h->json = json;
	o->direct_io = 1; /* its size is not cached */
	*out = &h->fh;
	return 0;
}

static int rcpt_read(struct sfs_fs *fs, struct sfs_fh *fh, size_t size, off_t off,
		     struct sfs_data *out)
{
	const char *json = ((struct rcpt_fh *)fh)->json;

	/* a copy: once the kernel has the reply, a RELEASE may free json meanwhile */
	return sfs_data_copy(json, strlen(json), size, off, out);
}

static void rcpt_free(struct sfs_fs *fs, struct sfs_inode *in)
{
	free(((struct rcpt *)in)->name);
	free(in);
}

static const struct sfs_view_wops dir_wops = {
	.unlink = dir_unlink,
};

const struct sfs_view sfs_view_receipts = {
	.name = "receipts",
	.ro_errno = EPERM,
	.lookup = dir_lookup,
	.getattr = rcpt_getattr,
	.opendir = dir_opendir,
	.readdir = dir_readdir,
	.release = rcpt_release,
	.free = rcpt_free,
	.w = &dir_wops,
};

const struct sfs_view sfs_view_receipt = {
	.name = "receipt",
	.ro_errno = EPERM,
	.getattr = rcpt_getattr,
	.open = rcpt_open,
	.read = rcpt_read,
	.release = rcpt_release,
	.free = rcpt_free,
};
