/*
 * fs/view_canon.c - canonical objects (<schema_prefix>/..., <hash_prefix>/...),
 * read through the backend's object interface.  Read-only: EROFS.  Objects
 * never change once written, so the kernel may cache them for long
 * (SFS_CANON_TIMEOUT) and keep their pages across opens.
 */
#include "fs/view.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct canon {
	struct sfs_inode base;
	char key[]; /* store key */
};

/* an open object (f) or directory (l) */
struct canon_fh {
	struct sfs_fh fh;
	struct sfs_bfile *f;
	struct sfs_list l;
};

static const char *key_of(struct sfs_inode *in)
{
	return ((struct canon *)in)->key;
}

static int match_key(const struct sfs_inode *in, const void *key)
{
	return strcmp(((const struct canon *)in)->key, key) == 0;
}

static void attr_of(const struct sfs_bstat *bs, const char *key, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = sfs_view_key_ino(key);
	if (S_ISDIR(bs->mode)) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)bs->size;
		st->st_blocks = (blkcnt_t)((bs->size + 511) / 512);
	}
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_blksize = 1 << 20;
	st->st_mtim.tv_sec = bs->mtime_ns / 1000000000LL;
	st->st_mtim.tv_nsec = bs->mtime_ns % 1000000000LL;
	st->st_ctim = st->st_mtim;
	st->st_atim = st->st_mtim;
}

static int canon_getattr(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh *fh,
			 struct stat *st, double *timeout)
{
	struct sfs_bstat bs;
	int rc = sfs_backend_stat(fs->be, key_of(in), &bs);

	if (rc == -ENOENT && (in->flags & SFS_IN_PINNED)) {
		/* a prefix that holds no object yet */
		sfs_view_dir_attr(fs, st, sfs_view_key_ino(key_of(in)), 0555);
		*timeout = fs->timeout;
		return 0;
	}
	if (rc)
		return rc;
	attr_of(&bs, key_of(in), st);
	*timeout = SFS_CANON_TIMEOUT;
	return 0;
}

static struct canon *canon_new(const char *key)
{
	size_t n = strlen(key) + 1;
	struct canon *c = calloc(1, sizeof(*c) + n);

	if (!c)
		return NULL;
	c->base.view = &sfs_view_canon;
	c->base.hash = sfs_fs_key_hash(key);
	memcpy(c->key, key, n);
	return c;
}

static int canon_lookup(struct sfs_fs *fs, struct sfs_inode *dir, const char *name,
			struct sfs_entry *e)
{
	char *key = sfs_join(key_of(dir), name);
	struct sfs_inode *in;
	int rc;

	if (!key)
		return -ENOMEM;
	struct canon *fresh = canon_new(key);
	free(key);
	if (!fresh)
		return -ENOMEM;
	rc = canon_getattr(fs, &fresh->base, NULL, &e->st, &e->timeout);
	if (rc) {
		free(fresh);
		return rc;
	}
	pthread_mutex_lock(&fs->lock);
	in = sfs_table_find_locked(fs, &sfs_view_canon, fresh->base.hash, match_key, fresh->key);
	if (!in) {
		rc = sfs_table_insert_locked(fs, &fresh->base);
		in = rc ? NULL : &fresh->base;
		fresh = rc ? fresh : NULL;
	}
	if (in)
		sfs_inode_lookup_locked(in, 1);
	pthread_mutex_unlock(&fs->lock);
	free(fresh);
	if (!in)
		return rc;
	e->in = in;
	return 0;
}

static int canon_open(struct sfs_fs *fs, struct sfs_inode *in, int flags, const struct sfs_ctx *ctx,
		      struct sfs_fh **out, struct sfs_open_out *o)
{
	struct sfs_bfile *f = NULL;
	int rc = sfs_backend_open_obj(fs->be, key_of(in), &f);

	if (rc)
		return rc;
	struct canon_fh *h = sfs_fh_new(fs, &sfs_view_canon, in, sizeof(*h), flags);
	if (!h) {
		sfs_backend_close_obj(fs->be, f);
		return -ENOMEM;
	}
	h->f = f;
	o->keep_cache = 1; /* canonical objects never change */
	*out = &h->fh;
	return 0;
}

static int canon_read(struct sfs_fs *fs, struct sfs_fh *fh, size_t size, off_t off,
		      struct sfs_data *out)
{
	memset(out, 0, sizeof(*out));
	out->fd = -1;
	out->buf = malloc(size ? size : 1);
	if (!out->buf)
		return -ENOMEM;
	ssize_t n = sfs_backend_pread(fs->be, ((struct canon_fh *)fh)->f, out->buf, size, off);
	if (n < 0) {
		free(out->buf);
		out->buf = NULL;
		return (int)n;
	}
	out->size = (size_t)n;
	return 0;
}

static int list_cb(void *arg, const char *name, const struct sfs_bstat *st)
{
	return sfs_list_add(arg, name, st->mode & S_IFMT);
}

static int canon_opendir(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh **out)
{
	struct canon_fh *d = sfs_fh_new(fs, &sfs_view_canon, in, sizeof(*d), 0);
	int rc;

	if (!d)
		return -ENOMEM;
	rc = sfs_list_add(&d->l, ".", S_IFDIR);
	if (!rc)
		rc = sfs_list_add(&d->l, "..", S_IFDIR);
	if (!rc)
		rc = sfs_backend_list(fs->be, key_of(in), list_cb, &d->l);
	if (rc == -ENOENT && (in->flags & SFS_IN_PINNED))
		rc = 0;
	if (rc) {
		sfs_list_release(&d->l);
		sfs_fh_free(fs, &d->fh);
		return rc;
	}
	*out = &d->fh;
	return 0;
}

static int canon_readdir(struct sfs_fs *fs, struct sfs_fh *fh, off_t off, struct sfs_dirfill *f)
{
	return sfs_list_fill(fs, &((struct canon_fh *)fh)->l, fh->in, off, f);
}

static void canon_release(struct sfs_fs *fs, struct sfs_fh *fh)
{
	struct canon_fh *h = (struct canon_fh *)fh;

	sfs_list_release(&h->l);
	sfs_backend_close_obj(fs->be, h->f);
	sfs_fh_free(fs, fh);
}

static ssize_t canon_getxattr(struct sfs_fs *fs, struct sfs_inode *in, const char *name, char *buf,
			      size_t size)
{
	char *json = NULL;
	ssize_t rc;

	if (strcmp(name, SFS_XATTR_META) != 0)
		return -ENODATA;
	rc = sfs_index_object_metadata(fs->ix, key_of(in), &json);
	if (rc)
		return rc == -ENOENT ? -ENODATA : rc;
	rc = sfs_xattr_value(json, strlen(json), buf, size);
	free(json);
	return rc;
}

static void canon_free(struct sfs_fs *fs, struct sfs_inode *in)
{
	free(in);
}

const struct sfs_view sfs_view_canon = {
	.name = "canonical",
	.ro_errno = EROFS,
	.lookup = canon_lookup,
	.getattr = canon_getattr,
	.open = canon_open,
	.read = canon_read,
	.opendir = canon_opendir,
	.readdir = canon_readdir,
	.release = canon_release,
	.getxattr = canon_getxattr,
	.free = canon_free,
};

/* ---- the prefixes' first segments, pinned under the root ---- */

static int pin_root(struct sfs_fs *fs, const char *prefix)
{
	char seg[256];
	size_t n = strcspn(prefix, "/");

	if (n == 0 || n >= sizeof(seg))
		return 0;
	memcpy(seg, prefix, n);
	seg[n] = '\0';
	if (sfs_canon_root_child(fs, seg))
		return 0; /* both prefixes start with the same segment */
	struct canon *c = canon_new(seg);
	if (!c)
		return -ENOMEM;
	c->base.flags = SFS_IN_PINNED;
	pthread_mutex_lock(&fs->lock);
	int rc = sfs_table_insert_locked(fs, &c->base);
	if (!rc)
		fs->canon_roots[fs->ncanon_roots++] = &c->base;
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		free(c);
	return rc;
}

int sfs_canon_init(struct sfs_fs *fs)
{
	int rc = pin_root(fs, fs->cfg->schema_prefix ? fs->cfg->schema_prefix : "_schema");

	if (!rc)
		rc = pin_root(fs, fs->cfg->hash_prefix ? fs->cfg->hash_prefix : "_hash");
	return rc;
}

struct sfs_inode *sfs_canon_root_child(struct sfs_fs *fs, const char *name)
{
	for (int i = 0; i < fs->ncanon_roots; i++)
		if (strcmp(key_of(fs->canon_roots[i]), name) == 0)
			return fs->canon_roots[i];
	return NULL;
}

int sfs_canon_roots(struct sfs_fs *fs, int (*cb)(void *arg, const char *name), void *arg)
{
	int rc = 0;

	for (int i = 0; !rc && i < fs->ncanon_roots; i++)
		rc = cb(arg, key_of(fs->canon_roots[i]));
	return rc;
}
