/*
 * fs/view_snapshot.c - published snapshots, read-only (EROFS for every change):
 *   - a mount with -o snapshot=NAME: its root is the snapshot's root;
 *   - `.snapshots/` at the root of a live mount: every live snapshot by name
 *     (`.snapshots/NAME/...`), like ZFS's `.zfs/snapshot`; setting
 *     user.stagefs.publish on it publishes one (`stagefs publish`).
 * Everything is served from the snapshot's manifest database (fs/snapshot.h):
 * lookups and listings cost no request to the store; file bytes come from
 * the canonical objects, through the backend (and its block cache).
 */
#include "fs/view.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/snapshot.h"

#define LIST_TTL_NS 5000000000LL /* how long a listing of .snapshots/ is reused */
#define PAGE	    256

/* A loaded snapshot (shared by its inodes and the mount). */
struct sfs_snapref {
	struct sfs_snapref *next; /* fs->snaps; fs->slock */
	int refs;		  /* fs->slock */
	char name[129];
	struct sfs_snapdb *db;
	char *head;
};

struct snapnode {
	struct sfs_inode base;
	struct sfs_snapref *snap; /* a reference held */
	struct sfs_inode *parent; /* the directory it was found in (a reference held) */
	char *name; /* its name there (the reclaim sweep asks the kernel to drop it) */
	uint64_t id;
	int is_dir;
};

struct snap_fh {
	struct sfs_fh fh;
	struct sfs_bfile *f; /* a file */
	uint64_t pos;	     /* a directory: the offset handed out last */
};

/* ---- loaded snapshots ---- */

static struct sfs_snapref *snap_get(struct sfs_fs *fs, const char *name, int *err)
{
	struct sfs_snapref *s;

	pthread_mutex_lock(&fs->slock);
	for (s = fs->snaps; s; s = s->next)
		if (strcmp(s->name, name) == 0) {
			s->refs++;
			pthread_mutex_unlock(&fs->slock);
			return s;
		}
	pthread_mutex_unlock(&fs->slock);

	struct sfs_snapref *fresh = calloc(1, sizeof(*fresh));
	if (!fresh) {
		*err = -ENOMEM;
		return NULL;
	}
	snprintf(fresh->name, sizeof(fresh->name), "%s", name);
	*err = sfs_snap_load(fs->be, name, fs->cfg->cache_dir, &fresh->db, &fresh->head);
	if (*err) {
		free(fresh);
		return NULL;
	}
	pthread_mutex_lock(&fs->slock);
	for (s = fs->snaps; s; s = s->next) /* loaded by another thread meanwhile */
		if (strcmp(s->name, name) == 0)
			break;
	if (s) {
		s->refs++;
	} else {
		fresh->refs = 1;
		fresh->next = fs->snaps;
		fs->snaps = fresh;
		s = fresh;
		fresh = NULL;
	}
	pthread_mutex_unlock(&fs->slock);
	if (fresh) {
		sfs_snapdb_close(fresh->db);
		free(fresh->head);
		free(fresh);
	}
	return s;
}

/* Drop a reference; the last one unloads (not the mounted snapshot: it is pinned). */
static void snap_put(struct sfs_fs *fs, struct sfs_snapref *s)
{
	pthread_mutex_lock(&fs->slock);
	int last = --s->refs == 0;
	if (last) {
		struct sfs_snapref **p = &fs->snaps;
		while (*p && *p != s)
			p = &(*p)->next;
		if (*p)
			*p = s->next;
	}
	pthread_mutex_unlock(&fs->slock);
	if (last) {
		sfs_snapdb_close(s->db);
		free(s->head);
		free(s);
	}
}

int sfs_snapview_mount(struct sfs_fs *fs, const char *name)
{
	int rc = 0;

	fs->mounted = snap_get(fs, name, &rc);
	if (!fs->mounted)
		return rc;
	fs->root.view = &sfs_view_snapshot;
	return 0;
}

void sfs_snapview_release(struct sfs_fs *fs)
{
	if (fs->mounted)
		snap_put(fs, fs->mounted);
	fs->mounted = NULL;
	while (fs->snaps) { /* referenced by inodes the kernel never forgot */
		struct sfs_snapref *s = fs->snaps;
		fs->snaps = s->next;
		sfs_snapdb_close(s->db);
		free(s->head);
		free(s);
	}
	if (fs->snap_names)
		sfs_list_release(fs->snap_names);
	free(fs->snap_names);
	fs->snap_names = NULL;
	free(fs->published);
	fs->published = NULL;
}

/* ---- nodes ---- */

struct nkey {
	struct sfs_snapref *snap;
	uint64_t id;
};

static uint64_t nhash(const struct nkey *k)
{
	return k->id * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)k->snap;
}

static int nmatch(const struct sfs_inode *in, const void *key)
{
	const struct snapnode *n = (const struct snapnode *)in;
	const struct nkey *k = key;

	return n->snap == k->snap && n->id == k->id;
}

/* (snapshot, id) of an inode of this view; the snapshot mount's root is fs->root. */
static void node_of(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_snapref **snap,
		    uint64_t *id)
{
	if (in == &fs->root) {
		*snap = fs->mounted;
		*id = 1;
	} else {
		*snap = ((struct snapnode *)in)->snap;
		*id = ((struct snapnode *)in)->id;
	}
}

static void attr_of(struct sfs_fs *fs, const struct sfs_snapref *s, const struct sfs_snap_node *n,
		    struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)(n->id * 2654435761ULL ^ sfs_fs_key_hash(s->name)) | (1ULL << 62);
	st->st_mode = n->is_dir ? S_IFDIR | 0555 : S_IFREG | 0444;
	st->st_nlink = n->is_dir ? 2 : 1;
	st->st_size = n->is_dir ? 0 : (off_t)n->size;
	st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_blksize = 1 << 20;
	if (n->mtime_ns) {
		st->st_mtim.tv_sec = n->mtime_ns / 1000000000LL;
		st->st_mtim.tv_nsec = n->mtime_ns % 1000000000LL;
	} else {
		st->st_mtim = fs->mount_time;
	}
	st->st_ctim = st->st_atim = st->st_mtim;
}

/*
 * The inode of node n of snapshot s, found as name n->name in directory dir,
 * with a kernel reference (s: the caller's reference moves in).  Files count
 * towards max_inodes: past it, idle ones are reclaimed as staging files are.
 */
static int intern(struct sfs_fs *fs, struct sfs_inode *dir, struct sfs_snapref *s,
		  const struct sfs_snap_node *n, struct sfs_entry *e)
{
	struct nkey k = {s, n->id};
	struct snapnode *fresh = calloc(1, sizeof(*fresh));
	struct sfs_inode *in;
	int rc = 0;

	if (!fresh || !(fresh->name = strdup(n->name))) {
		free(fresh);
		snap_put(fs, s);
		return -ENOMEM;
	}
	fresh->base.view = &sfs_view_snapshot;
	fresh->base.hash = nhash(&k);
	fresh->snap = s;
	fresh->id = n->id;
	fresh->is_dir = n->is_dir;
	pthread_mutex_lock(&fs->lock);
	in = sfs_table_find_locked(fs, &sfs_view_snapshot, fresh->base.hash, nmatch, &k);
	if (!in) {
		rc = sfs_table_insert_locked(fs, &fresh->base);
		if (!rc) {
			in = &fresh->base;
			fresh->parent = dir;
			sfs_inode_hold_locked(dir);
			if (!fresh->is_dir)
				sfs_inode_count_locked(fs, 1);
			fresh = NULL;
		}
	}
	if (in)
		sfs_inode_lookup_locked(in, 1);
	pthread_mutex_unlock(&fs->lock);
	if (fresh) {
		snap_put(fs, s);
		free(fresh->name);
		free(fresh);
	}
	if (!in)
		return rc;
	attr_of(fs, s, n, &e->st);
	e->in = in;
	e->timeout = SFS_CANON_TIMEOUT;
	return 0;
}

static int snap_lookup(struct sfs_fs *fs, struct sfs_inode *dir, const char *name,
		       struct sfs_entry *e)
{
	struct sfs_snapref *s;
	struct sfs_snap_node n;
	uint64_t id;

	node_of(fs, dir, &s, &id);
	int rc = sfs_snapdb_lookup(s->db, id, name, &n);
	if (rc)
		return rc;
	pthread_mutex_lock(&fs->slock);
	s->refs++;
	pthread_mutex_unlock(&fs->slock);
	return intern(fs, dir, s, &n, e);
}

static int snap_getattr(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh *fh, struct stat *st,
			double *timeout)
{
	struct sfs_snapref *s;
	struct sfs_snap_node n;
	uint64_t id;

	node_of(fs, in, &s, &id);
	int rc = sfs_snapdb_node(s->db, id, &n);
	if (rc)
		return rc;
	attr_of(fs, s, &n, st);
	*timeout = SFS_CANON_TIMEOUT;
	return 0;
}

static int snap_opendir(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh **out)
{
	struct snap_fh *h = sfs_fh_new(fs, &sfs_view_snapshot, in, sizeof(*h), 0);

	if (!h)
		return -ENOMEM;
	*out = &h->fh;
	return 0;
}

struct fill {
	struct sfs_fs *fs;
	struct sfs_inode *dir;
	struct sfs_snapref *s;
	struct sfs_dirfill *f;
	int full;
	size_t got;	  /* nodes seen in this page */
	uint64_t last_id; /* the last node added */
};

static int fill_cb(void *arg, const struct sfs_snap_node *n)
{
	struct fill *c = arg;
	struct sfs_entry e, *ep = NULL;
	struct stat st;

	c->got++;
	attr_of(c->fs, c->s, n, &st);
	if (sfs_dirfill_plus(c->f)) {
		pthread_mutex_lock(&c->fs->slock);
		c->s->refs++;
		pthread_mutex_unlock(&c->fs->slock);
		if (intern(c->fs, c->dir, c->s, n, &e) == 0)
			ep = &e;
	}
	/* offsets: 1 after ".", 2 after "..", id + 2 after node id */
	if (sfs_dirfill_add(c->f, n->name, st.st_mode & S_IFMT, st.st_ino, (off_t)(n->id + 2),
			    ep)) {
		c->full = 1;
		return 1;
	}
	c->last_id = n->id;
	return 0;
}

static int snap_readdir(struct sfs_fs *fs, struct sfs_fh *fh, off_t off, struct sfs_dirfill *f)
{
	struct sfs_snapref *s;
	uint64_t id;

	node_of(fs, fh->in, &s, &id);
	if (off == 0 && sfs_dirfill_add(f, ".", S_IFDIR, (ino_t)(id + 7), 1, NULL))
		return 0;
	if (off <= 1 && sfs_dirfill_add(f, "..", S_IFDIR, (ino_t)(id + 11), 2, NULL))
		return 0;
	struct fill c = {fs, fh->in, s, f, 0, 0, off > 2 ? (uint64_t)off - 2 : 0};
	for (;;) {
		c.got = 0;
		int rc = sfs_snapdb_children(s->db, id, c.last_id, PAGE, fill_cb, &c);
		if (rc)
			return rc;
		if (c.full || c.got < PAGE)
			return 0;
	}
}

static int snap_open(struct sfs_fs *fs, struct sfs_inode *in, int flags, const struct sfs_ctx *ctx,
		     struct sfs_fh **out, struct sfs_open_out *o)
{
	struct sfs_snapref *s;
	struct sfs_bfile *f = NULL;
	char *key = NULL;
	uint64_t id;

	node_of(fs, in, &s, &id);
	int rc = sfs_snapdb_path(s->db, id, &key);
	if (!rc)
		rc = sfs_backend_open_obj(fs->be, key, &f);
	if (rc == -ENOENT)
		sfs_log(LOG_ERR, "snapshot '%s': object '%s' is missing from the store", s->name,
			key);
	free(key);
	if (rc)
		return rc == -ENOENT ? -EIO : rc; /* the snapshot says it exists */
	struct snap_fh *h = sfs_fh_new(fs, &sfs_view_snapshot, in, sizeof(*h), flags);
	if (!h) {
		sfs_backend_close_obj(fs->be, f);
		return -ENOMEM;
	}
	h->f = f;
	o->keep_cache = 1; /* never changes */
	*out = &h->fh;
	return 0;
}

static int snap_read(struct sfs_fs *fs, struct sfs_fh *fh, size_t size, off_t off,
		     struct sfs_data *out)
{
	memset(out, 0, sizeof(*out));
	out->fd = -1;
	out->buf = malloc(size ? size : 1);
	if (!out->buf)
		return -ENOMEM;
	ssize_t n = sfs_backend_pread(fs->be, ((struct snap_fh *)fh)->f, out->buf, size, off);
	if (n < 0) {
		free(out->buf);
		out->buf = NULL;
		return (int)n;
	}
	out->size = (size_t)n;
	return 0;
}

static void snap_release(struct sfs_fs *fs, struct sfs_fh *fh)
{
	sfs_backend_close_obj(fs->be, ((struct snap_fh *)fh)->f);
	sfs_fh_free(fs, fh);
}

static ssize_t snap_getxattr(struct sfs_fs *fs, struct sfs_inode *in, const char *name, char *buf,
			     size_t size)
{
	struct sfs_snapref *s;
	char *json = NULL;
	uint64_t id;
	ssize_t rc;

	node_of(fs, in, &s, &id);
	if (id == 1 && strcmp(name, SFS_XATTR_SNAPSHOT) == 0)
		return sfs_xattr_value(s->head, strlen(s->head), buf, size);
	if (strcmp(name, SFS_XATTR_META) != 0)
		return -ENODATA;
	rc = sfs_snapdb_metadata(s->db, id, &json);
	if (rc)
		return rc == -ENOENT ? -ENODATA : rc;
	rc = sfs_xattr_value(json, strlen(json), buf, size);
	free(json);
	return rc;
}

static void snap_free(struct sfs_fs *fs, struct sfs_inode *in)
{
	struct snapnode *n = (struct snapnode *)in;

	/* fs->lock is held: snap_put takes only fs->slock, which nests inside it */
	snap_put(fs, n->snap);
	if (!n->is_dir)
		sfs_inode_count_locked(fs, -1);
	if (n->parent)
		sfs_inode_put_locked(fs, n->parent);
	free(n->name);
	free(n);
}

void sfs_snapnode_unparent_locked(struct sfs_inode *in)
{
	((struct snapnode *)in)->parent = NULL;
}

int sfs_snapnode_idle_locked(struct sfs_inode *in, struct sfs_inode **parent, const char **name)
{
	struct snapnode *n = (struct snapnode *)in;

	if (n->is_dir || !n->parent || !n->name || in->refs || !in->nlookup)
		return 0;
	*parent = n->parent;
	*name = n->name;
	return 1;
}

const struct sfs_view sfs_view_snapshot = {
	.name = "snapshot",
	.ro_errno = EROFS,
	.lookup = snap_lookup,
	.getattr = snap_getattr,
	.opendir = snap_opendir,
	.readdir = snap_readdir,
	.open = snap_open,
	.read = snap_read,
	.release = snap_release,
	.getxattr = snap_getxattr,
	.free = snap_free,
};

/* ---- .snapshots/ of a live mount ---- */

static int snapdir_getattr(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh *fh,
			   struct stat *st, double *timeout)
{
	sfs_view_dir_attr(fs, st, sfs_view_key_ino(SFS_DOT_SNAPSHOTS), 0555);
	*timeout = 1.0; /* new snapshots show within a second */
	return 0;
}

static int snapdir_lookup(struct sfs_fs *fs, struct sfs_inode *dir, const char *name,
			  struct sfs_entry *e)
{
	struct sfs_snap_node root;
	int rc = 0;

	if (!sfs_snap_name_ok(name))
		return -ENOENT;
	struct sfs_snapref *s = snap_get(fs, name, &rc);
	if (!s)
		return rc == -ESTALE ? -ENOENT : rc; /* a deleted snapshot is not shown */
	rc = sfs_snapdb_node(s->db, 1, &root);
	if (rc) {
		snap_put(fs, s);
		return rc;
	}
	snprintf(root.name, sizeof(root.name), "%s", name); /* in .snapshots/ */
	return intern(fs, dir, s, &root, e);
}

static int name_cb(void *arg, const char *name)
{
	return sfs_list_add(arg, name, S_IFDIR);
}

/* The names of live snapshots, from a listing at most LIST_TTL_NS old. */
static int snapdir_names(struct sfs_fs *fs, struct sfs_list *out)
{
	struct timespec now;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	long long t = now.tv_sec * 1000000000LL + now.tv_nsec;
	pthread_mutex_lock(&fs->slock);
	int fresh = fs->snap_names && t - fs->snap_names_at < LIST_TTL_NS;
	pthread_mutex_unlock(&fs->slock);
	if (!fresh) {
		struct sfs_list l = {0};
		rc = sfs_snap_list(fs->be, name_cb, &l);
		if (rc) {
			sfs_list_release(&l);
			return rc;
		}
		struct sfs_list *keep = malloc(sizeof(*keep));
		if (!keep) {
			sfs_list_release(&l);
			return -ENOMEM;
		}
		*keep = l;
		pthread_mutex_lock(&fs->slock);
		if (fs->snap_names)
			sfs_list_release(fs->snap_names);
		free(fs->snap_names);
		fs->snap_names = keep;
		fs->snap_names_at = t;
		pthread_mutex_unlock(&fs->slock);
	}
	pthread_mutex_lock(&fs->slock);
	rc = sfs_list_add(out, ".", S_IFDIR);
	if (!rc)
		rc = sfs_list_add(out, "..", S_IFDIR);
	for (size_t i = 0; !rc && i < fs->snap_names->n; i++)
		rc = sfs_list_add(out, fs->snap_names->names + fs->snap_names->e[i].name, S_IFDIR);
	pthread_mutex_unlock(&fs->slock);
	return rc;
}

struct snapdir_fh {
	struct sfs_fh fh;
	struct sfs_list l;
};

static int snapdir_opendir(struct sfs_fs *fs, struct sfs_inode *in, struct sfs_fh **out)
{
	struct snapdir_fh *h = sfs_fh_new(fs, &sfs_view_snapdir, in, sizeof(*h), 0);

	if (!h)
		return -ENOMEM;
	int rc = snapdir_names(fs, &h->l);
	if (rc) {
		sfs_list_release(&h->l);
		sfs_fh_free(fs, &h->fh);
		return rc;
	}
	*out = &h->fh;
	return 0;
}

static int snapdir_readdir(struct sfs_fs *fs, struct sfs_fh *fh, off_t off, struct sfs_dirfill *f)
{
	return sfs_list_fill(fs, &((struct snapdir_fh *)fh)->l, fh->in, off, f);
}

static void snapdir_release(struct sfs_fs *fs, struct sfs_fh *fh)
{
	sfs_list_release(&((struct snapdir_fh *)fh)->l);
	sfs_fh_free(fs, fh);
}

static ssize_t snapdir_getxattr(struct sfs_fs *fs, struct sfs_inode *in, const char *name,
				char *buf, size_t size)
{
	char st[600];

	if (strcmp(name, SFS_XATTR_SNAPSHOT) == 0) {
		/* the head of the last publish here (the CLI checks its name) */
		pthread_mutex_lock(&fs->slock);
		ssize_t r = fs->published ? sfs_xattr_value(fs->published, strlen(fs->published),
							    buf, size)
					  : -ENODATA;
		pthread_mutex_unlock(&fs->slock);
		return r;
	}
	if (strcmp(name, SFS_XATTR_STATUS) != 0)
		return -ENODATA;
	pthread_mutex_lock(&fs->slock);
	snprintf(st, sizeof(st), "%s", fs->publish_status);
	pthread_mutex_unlock(&fs->slock);
	return sfs_xattr_value(st, strlen(st), buf, size);
}

/* `stagefs publish`: user.stagefs.publish = {"name":..,"prefixes":[..],"message":..} */
static int snapdir_setxattr(struct sfs_fs *fs, struct sfs_inode *in, const char *name,
			    const char *value, size_t size, int flags, const struct sfs_ctx *ctx)
{
	if (strcmp(name, SFS_XATTR_PUBLISH) != 0)
		return -EPERM;
	return sfs_snapview_publish(fs, value, size);
}

static void snapdir_free(struct sfs_fs *fs, struct sfs_inode *in)
{
	free(in); /* pinned: only at unmount */
}

static const struct sfs_view_wops snapdir_wops = {
	.setxattr = snapdir_setxattr,
};

const struct sfs_view sfs_view_snapdir = {
	.name = "snapshots",
	.ro_errno = EROFS,
	.lookup = snapdir_lookup,
	.getattr = snapdir_getattr,
	.opendir = snapdir_opendir,
	.readdir = snapdir_readdir,
	.release = snapdir_release,
	.getxattr = snapdir_getxattr,
	.free = snapdir_free,
	.w = &snapdir_wops,
};
