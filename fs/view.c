/*
 * fs/view.c - what the views share: made-up attributes, handles, in-memory
 * listings, and the "gone" view of staging entries committed away.
 */
#include "fs/view.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/staging.h"

void sfs_view_dir_attr(struct sfs_fs *fs, struct stat *st, uint64_t ino, mode_t perm)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR | perm;
	st->st_nlink = 2;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_blksize = 4096;
	st->st_mtim = st->st_ctim = st->st_atim = fs->mount_time;
}

uint64_t sfs_view_key_ino(const char *key)
{
	return sfs_fs_key_hash(key) | (1ULL << 63);
}

char *sfs_join(const char *a, const char *b)
{
	char *s = NULL;

	if (asprintf(&s, "%s%s%s", a, a[0] ? "/" : "", b) < 0)
		return NULL;
	return s;
}

void *sfs_fh_new(struct sfs_fs *fs, const struct sfs_view *v, struct sfs_inode *in, size_t size,
		 int flags)
{
	struct sfs_fh *h = calloc(1, size < sizeof(*h) ? sizeof(*h) : size);

	if (!h)
		return NULL;
	h->in = in;
	h->view = v;
	h->flags = flags;
	pthread_mutex_lock(&fs->lock);
	sfs_inode_hold_locked(in);
	pthread_mutex_unlock(&fs->lock);
	pthread_mutex_lock(&fs->hlock);
	h->next = fs->handles;
	if (h->next)
		h->next->prev = h;
	fs->handles = h;
	pthread_mutex_unlock(&fs->hlock);
	return h;
}

void sfs_fh_free(struct sfs_fs *fs, struct sfs_fh *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&fs->hlock);
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->hlock);
	sfs_inode_put(fs, h->in);
	free(h);
}

int sfs_data_copy(const char *s, size_t len, size_t size, off_t off, struct sfs_data *out)
{
	size_t n = off < 0 || (size_t)off >= len ? 0
		   : len - (size_t)off < size	 ? len - (size_t)off
						 : size;
	memset(out, 0, sizeof(*out));
	out->fd = -1;
	out->buf = malloc(n ? n : 1);
	if (!out->buf)
		return -ENOMEM;
	if (n)
		memcpy(out->buf, s + off, n);
	out->size = n;
	return 0;
}

ssize_t sfs_xattr_value(const char *val, size_t len, char *buf, size_t size)
{
	if (size == 0)
		return (ssize_t)len;
	if (len > size)
		return -ERANGE;
	memcpy(buf, val, len);
	return (ssize_t)len;
}

/* ---- in-memory listings ---- */

int sfs_list_add(struct sfs_list *l, const char *name, mode_t type)
{
	size_t n = strlen(name) + 1;

	if (l->len + n > l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 1024;
		while (ncap < l->len + n)
			ncap *= 2;
		char *nn = realloc(l->names, ncap);
		if (!nn)
			return -ENOMEM;
		l->names = nn;
		l->cap = ncap;
	}
	if (l->n == l->ecap) {
		size_t ncap = l->ecap ? l->ecap * 2 : 64;
		struct sfs_list_ent *ne = realloc(l->e, ncap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		l->e = ne;
		l->ecap = ncap;
	}
	memcpy(l->names + l->len, name, n);
	l->e[l->n].name = l->len;
	l->e[l->n].type = type;
	l->len += n;
	l->n++;
	return 0;
}

void sfs_list_release(struct sfs_list *l)
{
	free(l->names);
	free(l->e);
	memset(l, 0, sizeof(*l));
}

int sfs_list_fill(struct sfs_fs *fs, struct sfs_list *l, struct sfs_inode *dir, off_t off,
		  struct sfs_dirfill *f)
{
	const struct sfs_view *v = sfs_inode_view(dir);

	for (size_t i = off < 0 ? 0 : (size_t)off; i < l->n; i++) {
		const char *name = l->names + l->e[i].name;
		int dots = strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
		struct sfs_entry e, *ep = NULL;
		/* made-up numbers, but not 0: readdir(3) skips entries whose d_ino is 0 */
		ino_t ino = (ino_t)(sfs_view_key_ino(name) ^ (uintptr_t)dir);

		if (sfs_dirfill_plus(f) && !dots && v->lookup &&
		    v->lookup(fs, dir, name, &e) == 0 && e.in) {
			ep = &e;
			ino = e.st.st_ino;
		}
		if (sfs_dirfill_add(f, name, l->e[i].type, ino, (off_t)(i + 1), ep))
			break;
	}
	return 0;
}

/* ---- the gone view: a staging entry that was committed ---- */

static int gone_getattr(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh *fh, struct stat *st,
			double *timeout)
{
	return -ENOENT;
}

static int gone_lookup(struct sfs_fs *fs, struct sfs_inode *dir, const char *name,
		       struct sfs_entry *e)
{
	return -ENOENT;
}

static int gone_access(struct sfs_fs *fs, struct sfs_inode *in, int mask, const struct sfs_ctx *ctx)
{
	return -ENOENT;
}

/* Its status stays readable: the outcome of the commit that took it ("committed"). */
static ssize_t gone_getxattr(struct sfs_fs *fs, struct sfs_inode *in, const char *name, char *buf,
			     size_t size)
{
	char st[512];

	if (strcmp(name, SFS_XATTR_STATUS) != 0)
		return -ENOENT;
	sfs_stg_status(sfs_stg(in), st, sizeof(st));
	if (!st[0])
		snprintf(st, sizeof(st), "committed");
	return sfs_xattr_value(st, strlen(st), buf, size);
}

static int gone_open(struct sfs_fs *fs, struct sfs_inode *in, int flags, const struct sfs_ctx *ctx,
		     struct sfs_fh **fh, struct sfs_open_out *o)
{
	return -ENOENT;
}

static int gone_opendir(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh **fh)
{
	return -ENOENT;
}

const struct sfs_view sfs_view_gone = {
	.name = "gone",
	.ro_errno = ENOENT,
	.lookup = gone_lookup,
	.getattr = gone_getattr,
	.access = gone_access,
	.open = gone_open,
	.opendir = gone_opendir,
	.getxattr = gone_getxattr,
	/* handles opened before the commit are still released by the staging view */
	.free = sfs_stg_free_locked,
};
