/*
 * fs/ops.c - the FUSE low-level operations.
 *
 * staging/ is a passthrough onto the backend's staging directory (O_PATH
 * inodes, as in libfuse's passthrough_ll.c) with the level rules of SPEC §3;
 * canonical prefixes are a read-only view through the backend's object ops;
 * .receipts directories are served from the index.  Every request gets
 * exactly one reply; internal helpers return 0 or -errno and only the
 * handlers call fuse_reply_err(req, -rc).
 */
#include "fs/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define XATTR_COMMIT  "user.stagefs.commit"
#define XATTR_STATUS  "user.stagefs.status"
#define XATTR_META    "user.stagefs.metadata"
#define XATTR_PREFIX  "user.stagefs."
#define RECEIPTS      ".receipts"
#define CANON_TIMEOUT 3600.0

static struct sfs_fs *FS(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct sfs_inode *INODE(struct sfs_fs *fs, fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &fs->root : (struct sfs_inode *)(uintptr_t)ino;
}

static fuse_ino_t INO(struct sfs_fs *fs, struct sfs_inode *in)
{
	return in == &fs->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
}

/* Backends whose staging dir is only a local cache (s3) store a file when it is closed. */
static int uploads_on_close(struct sfs_fs *fs)
{
	return fs->be->ops->staged_sync && strcmp(fs->be->ops->name, "file") != 0;
}

/* ---- the index's rows of stored staged files (backends that upload them) ---- */

static int64_t mtime_ns_of(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
}

static int journal_stored(void *arg, const char *rel, const struct stat *st)
{
	struct sfs_fs *fs = arg;
	struct sfs_staged r;
	int rc = sfs_index_staged_get(fs->ix, rel, &r);

	if (rc)
		return rc;
	rc = r.size == (uint64_t)st->st_size && r.mtime_ns == mtime_ns_of(st);
	sfs_staged_release(&r);
	return rc;
}

/* The user's xattrs of fd (not stagefs' own "user.stagefs.*") into r. */
static int user_xattrs(int fd, struct sfs_staged *r)
{
	ssize_t n = flistxattr(fd, NULL, 0);
	char *names;

	if (n <= 0)
		return n < 0 && errno != ENOTSUP ? -errno : 0;
	names = malloc((size_t)n);
	if (!names)
		return -ENOMEM;
	n = flistxattr(fd, names, (size_t)n);
	for (char *p = names; n > 0 && p < names + n; p += strlen(p) + 1) {
		if (strncmp(p, "user.", 5) != 0 || strncmp(p, "user.stagefs.", 13) == 0)
			continue;
		ssize_t len = fgetxattr(fd, p, NULL, 0);
		void *v = len >= 0 ? malloc(len ? (size_t)len : 1) : NULL;
		struct sfs_staged_xattr *xs =
			v ? realloc(r->xattrs, (r->n_xattrs + 1) * sizeof(*xs)) : NULL;
		if (!xs) {
			free(v);
			continue; /* gone meanwhile, or no memory: the row just lacks it */
		}
		r->xattrs = xs;
		len = fgetxattr(fd, p, v, (size_t)len);
		xs[r->n_xattrs].name = strdup(p);
		if (len < 0 || !xs[r->n_xattrs].name) {
			free(xs[r->n_xattrs].name);
			free(v);
			continue;
		}
		xs[r->n_xattrs].value = v;
		xs[r->n_xattrs].len = (size_t)len;
		r->n_xattrs++;
	}
	free(names);
	return 0;
}

/*
 * Write rel's row from st and fd's user xattrs: all of it, or (meta_only) its
 * mode and xattrs.  A row that is missing or stale only costs an upload at the
 * next mount: log, go on.
 */
static void journal_write(struct sfs_fs *fs, const char *rel, int fd, const struct stat *st,
			  int meta_only)
{
	struct sfs_staged r = {.size = (uint64_t)st->st_size,
			       .mode = (unsigned)st->st_mode,
			       .mtime_ns = mtime_ns_of(st)};
	int rc = fd >= 0 ? user_xattrs(fd, &r) : 0;

	if (!rc)
		rc = meta_only ? sfs_index_staged_meta(fs->ix, rel, &r)
			       : sfs_index_staged_put(fs->ix, rel, &r);
	if (rc)
		sfs_log(LOG_WARNING, "index: cannot record %s 'staging/%s': %s",
			meta_only ? "mode/xattrs of" : "stored", rel, strerror(-rc));
	sfs_staged_release(&r);
}

static void journal_record(void *arg, const char *rel, int fd, const struct stat *st)
{
	journal_write(arg, rel, fd, st, 0);
}

static void journal_restore(void *arg, const char *rel, int fd)
{
	struct sfs_fs *fs = arg;
	struct sfs_staged r;
	struct stat st;

	if (sfs_index_staged_get(fs->ix, rel, &r) != 0)
		return;
	if (fstat(fd, &st) == 0 && (uint64_t)st.st_size == r.size) {
		(void)fchmod(fd, (mode_t)(r.mode & 07777));
		for (size_t i = 0; i < r.n_xattrs; i++)
			if (fsetxattr(fd, r.xattrs[i].name, r.xattrs[i].value, r.xattrs[i].len, 0))
				sfs_log(LOG_WARNING, "cannot restore %s of 'staging/%s': %s",
					r.xattrs[i].name, rel, strerror(errno));
		struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT},
					 {.tv_sec = r.mtime_ns / 1000000000LL,
					  .tv_nsec = r.mtime_ns % 1000000000LL}};
		(void)futimens(fd, ts);
	}
	sfs_staged_release(&r);
}

static void journal_forget(struct sfs_fs *fs, const char *rel)
{
	int rc = uploads_on_close(fs) ? sfs_index_staged_forget(fs->ix, rel) : 0;
	if (rc)
		sfs_log(LOG_WARNING, "index: cannot forget 'staging/%s': %s", rel, strerror(-rc));
}

static void procname(const struct sfs_inode *in, char *buf, size_t len)
{
	snprintf(buf, len, "/proc/self/fd/%d", in->fd);
}

/* A staged file's mode or user xattrs changed: its row (if it was stored) follows. */
static void journal_meta(struct sfs_fs *fs, struct sfs_inode *in)
{
	char proc[64], *rel = NULL;
	struct stat st;

	if (!uploads_on_close(fs) || in->type != S_IFREG || sfs_fs_staging_rel(fs, in, &rel))
		return;
	procname(in, proc, sizeof(proc));
	int fd = open(proc, O_RDONLY | O_CLOEXEC); /* a regular file: the magic link is safe */
	if (fd >= 0 && fstat(fd, &st) == 0)
		journal_write(fs, rel, fd, &st, 1);
	else
		sfs_log(LOG_WARNING, "index: cannot record mode/xattrs of 'staging/%s': %s", rel,
			strerror(errno));
	if (fd >= 0)
		close(fd);
	free(rel);
}

static int is_stale(struct sfs_fs *fs, struct sfs_inode *in)
{
	pthread_mutex_lock(&fs->lock);
	int s = in->stale;
	pthread_mutex_unlock(&fs->lock);
	return s;
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

/* ---- inode lifecycle ---- */

static struct sfs_inode *inode_new(enum sfs_ikind kind)
{
	struct sfs_inode *in = calloc(1, sizeof(*in));

	if (!in)
		return NULL;
	in->kind = kind;
	in->fd = -1;
	pthread_mutex_init(&in->hlock, NULL);
	return in;
}

static void inode_free(struct sfs_inode *in)
{
	if (in->fd >= 0)
		close(in->fd);
	sfs_hjob_put(in->hjob);
	pthread_mutex_destroy(&in->hlock);
	free(in->key);
	free(in->name);
	free(in->lname);
	free(in->tkey);
	free(in->status);
	free(in);
}

static int is_pinned(struct sfs_fs *fs, struct sfs_inode *in)
{
	return in == &fs->root || in == fs->staging || in->nlookup == UINT64_MAX;
}

static void lru_unlink_locked(struct sfs_fs *fs, struct sfs_inode *in)
{
	if (!in->lru_next)
		return;
	in->lru_prev->lru_next = in->lru_next;
	in->lru_next->lru_prev = in->lru_prev;
	in->lru_prev = in->lru_next = NULL;
	fs->nstaging--;
	if (fs->nstaging <= fs->reclaim_hard)
		pthread_cond_broadcast(&fs->reclaim_cond);
}

static void lru_front_locked(struct sfs_fs *fs, struct sfs_inode *in)
{
	if (in->lru_next) {
		in->lru_prev->lru_next = in->lru_next;
		in->lru_next->lru_prev = in->lru_prev;
	} else {
		fs->nstaging++;
	}
	in->lru_next = fs->lru.lru_next;
	in->lru_prev = &fs->lru;
	fs->lru.lru_next->lru_prev = in;
	fs->lru.lru_next = in;
}

/*
 * Too many staging inodes (each holds an fd): ask the kernel to forget the
 * least recently used idle files.  Directories are kept (dropping one drops
 * its subtree); open, committing and pinned inodes are skipped.
 */
static void reclaim_locked(struct sfs_fs *fs)
{
	if (fs->nstaging <= fs->reclaim_high)
		return;
	size_t want = fs->nstaging - fs->reclaim_low, scanned = 0;
	struct sfs_inode *in = fs->lru.lru_prev;
	while (want > 0 && in != &fs->lru && scanned++ < 2 * fs->reclaim_high) {
		struct sfs_inode *prev = in->lru_prev;
		if (in->type != S_IFDIR && in->opens == 0 && !in->committing && in->lname &&
		    in->parent && !in->stale && !is_pinned(fs, in)) {
			sfs_fs_notify_drop(fs, in->parent, INO(fs, in), in->lname);
			lru_front_locked(fs, in); /* not asked again before the others */
			want--;
		}
		in = prev;
	}
}

static void unref_locked(struct sfs_fs *fs, struct sfs_inode *in, uint64_t n)
{
	if (is_pinned(fs, in))
		return;
	if (n > in->nlookup) {
		sfs_log(LOG_CRIT, "inode lookup count underflow (%llu < %llu)",
			(unsigned long long)in->nlookup, (unsigned long long)n);
		abort();
	}
	in->nlookup -= n;
	if (in->nlookup == 0) {
		sfs_fs_table_remove_locked(fs, in);
		lru_unlink_locked(fs, in);
		inode_free(in);
	}
}

/* Find by table key or insert `fresh` (which the table then owns); +1 lookup on the result. */
static struct sfs_inode *intern(struct sfs_fs *fs, struct sfs_inode *fresh)
{
	struct sfs_inode *in;

	pthread_mutex_lock(&fs->lock);
	in = sfs_fs_table_find_locked(fs, fresh->tkey);
	if (in) {
		if (in->nlookup != UINT64_MAX)
			in->nlookup++;
		if (in->kind == SFS_IK_STAGING && fresh->lname && !is_pinned(fs, in)) {
			char *t = in->lname; /* the name the kernel now knows it by */
			in->lname = fresh->lname;
			fresh->lname = t;
			in->parent = fresh->parent;
			lru_front_locked(fs, in);
		}
		pthread_mutex_unlock(&fs->lock);
		inode_free(fresh);
		return in;
	}
	if (sfs_fs_table_insert_locked(fs, fresh) < 0) {
		pthread_mutex_unlock(&fs->lock);
		inode_free(fresh);
		return NULL;
	}
	fresh->nlookup = 1;
	if (fresh->kind == SFS_IK_STAGING) {
		lru_front_locked(fs, fresh);
		reclaim_locked(fs);
		/*
		 * Backpressure: reclaim is asynchronous (the kernel's FORGETs free
		 * the descriptors), so a fast writer can outrun it.  Past the hard
		 * mark, wait (at most 0.5 s) for FORGETs handled by other workers.
		 */
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 500000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (fs->nstaging > fs->reclaim_hard &&
		       pthread_cond_timedwait(&fs->reclaim_cond, &fs->lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&fs->lock);
	return fresh;
}

/* ---- attributes ---- */

static struct timespec mount_time; /* the times of directories that only this mount makes up */

static void synth_dir_attr(struct stat *st, uint64_t ino, mode_t perm)
{
	memset(st, 0, sizeof(*st));
	st->st_mtim = st->st_ctim = st->st_atim = mount_time;
	st->st_ino = ino;
	st->st_mode = S_IFDIR | perm;
	st->st_nlink = 2;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_blksize = 4096;
}

static uint64_t key_ino(const char *key)
{
	return sfs_fs_key_hash(key) | (1ULL << 63); /* keep clear of real inode numbers */
}

static void canon_attr(const struct sfs_bstat *bs, const char *key, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = key_ino(key);
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

static int staging_stat(struct sfs_inode *in, struct stat *st)
{
	return fstatat(in->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int receipt_json(struct sfs_fs *fs, struct sfs_inode *in, char **json)
{
	return sfs_index_receipt_get(fs->ix, in->key, in->name, json);
}

static int get_attr(struct sfs_fs *fs, struct sfs_inode *in, struct stat *st, double *timeout)
{
	*timeout = fs->timeout;
	switch (in->kind) {
	case SFS_IK_ROOT:
		synth_dir_attr(st, FUSE_ROOT_ID, 0755);
		return 0;
	case SFS_IK_STAGING:
		if (is_stale(fs, in))
			return -ENOENT;
		return staging_stat(in, st);
	case SFS_IK_CANON: {
		struct sfs_bstat bs;
		int rc = sfs_backend_stat(fs->be, in->key, &bs);
		if (rc == -ENOENT && in->nlookup == UINT64_MAX) {
			synth_dir_attr(st, key_ino(in->key), 0555); /* prefix with no object yet */
			return 0;
		}
		if (rc)
			return rc;
		canon_attr(&bs, in->key, st);
		*timeout = CANON_TIMEOUT;
		return 0;
	}
	case SFS_IK_RECEIPTS:
		synth_dir_attr(st, key_ino(in->tkey), 0555);
		*timeout = 0;
		return 0;
	case SFS_IK_RECEIPT: {
		char *json = NULL;
		int rc = receipt_json(fs, in, &json);
		if (rc)
			return rc;
		memset(st, 0, sizeof(*st));
		st->st_ino = key_ino(in->tkey);
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(json);
		st->st_uid = getuid();
		st->st_gid = getgid();
		st->st_blksize = 4096;
		free(json);
		*timeout = 0;
		return 0;
	}
	}
	return -EIO;
}

/* ---- lookup ---- */

static int lookup_staging(struct sfs_fs *fs, struct sfs_inode *parent, const char *name,
			  struct fuse_entry_param *e, struct sfs_inode **out)
{
	struct sfs_inode *in;
	struct stat st;
	char tkey[64];
	int fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	in = inode_new(SFS_IK_STAGING);
	snprintf(tkey, sizeof(tkey), "s:%llx:%llx", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	if (in)
		in->tkey = strdup(tkey);
	if (!in || !in->tkey) {
		close(fd);
		if (in)
			inode_free(in);
		return -ENOMEM;
	}
	in->fd = fd;
	in->dev = st.st_dev;
	in->ino = st.st_ino;
	in->type = st.st_mode & S_IFMT;
	in->depth = parent->depth >= 2 ? 3 : parent->depth + 1;
	in->parent = INO(fs, parent);
	in->lname = strdup(name); /* NULL only costs reclaim of this inode */
	in = intern(fs, in);
	if (!in)
		return -ENOMEM;
	e->ino = INO(fs, in);
	e->attr = st;
	e->attr_timeout = e->entry_timeout = fs->timeout;
	if (out)
		*out = in;
	return 0;
}

static char *join_key(const char *a, const char *b)
{
	char *s = NULL;

	if (asprintf(&s, "%s%s%s", a, a[0] ? "/" : "", b) < 0)
		return NULL;
	return s;
}

static int lookup_keyed(struct sfs_fs *fs, enum sfs_ikind kind, char *key, char *name, char *tkey,
			struct fuse_entry_param *e)
{
	struct sfs_inode *in = inode_new(kind);
	double timeout;
	int rc;

	if (!in || !tkey) {
		free(key);
		free(name);
		free(tkey);
		if (in)
			inode_free(in);
		return -ENOMEM;
	}
	in->key = key;
	in->name = name;
	in->tkey = tkey;
	rc = get_attr(fs, in, &e->attr, &timeout);
	if (rc) {
		inode_free(in);
		return rc;
	}
	in = intern(fs, in);
	if (!in)
		return -ENOMEM;
	e->ino = INO(fs, in);
	e->attr_timeout = e->entry_timeout = timeout;
	return 0;
}

static char *prefixed(const char *p, const char *s)
{
	char *r = NULL;

	return asprintf(&r, "%s%s", p, s) < 0 ? NULL : r;
}

static int do_lookup(struct sfs_fs *fs, struct sfs_inode *parent, const char *name,
		     struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	switch (parent->kind) {
	case SFS_IK_ROOT: {
		if (strcmp(name, "staging") == 0) {
			double t;
			int rc = get_attr(fs, fs->staging, &e->attr, &t);
			if (rc)
				return rc;
			e->ino = INO(fs, fs->staging);
			e->attr_timeout = e->entry_timeout = t;
			return 0;
		}
		char tk[300];
		snprintf(tk, sizeof(tk), "c:%s", name);
		pthread_mutex_lock(&fs->lock);
		struct sfs_inode *in = sfs_fs_table_find_locked(fs, tk);
		int pinned = in && in->nlookup == UINT64_MAX;
		pthread_mutex_unlock(&fs->lock);
		if (!pinned)
			return -ENOENT;
		double t;
		int rc = get_attr(fs, in, &e->attr, &t);
		if (rc)
			return rc;
		e->ino = INO(fs, in);
		e->attr_timeout = e->entry_timeout = t;
		return 0;
	}
	case SFS_IK_STAGING:
		if (is_stale(fs, parent))
			return -ENOENT;
		if (strcmp(name, RECEIPTS) == 0) {
			char *rel = NULL;
			int rc;
			if (parent->depth < 2)
				return -ENOENT;
			rc = sfs_fs_staging_rel(fs, parent, &rel);
			if (rc)
				return rc;
			rc = sfs_index_receipt_any(fs->ix, rel);
			if (rc <= 0) {
				free(rel);
				return rc ? rc : -ENOENT;
			}
			return lookup_keyed(fs, SFS_IK_RECEIPTS, rel, NULL, prefixed("r:", rel), e);
		}
		return lookup_staging(fs, parent, name, e, NULL);
	case SFS_IK_CANON: {
		char *key = join_key(parent->key, name);
		return key ? lookup_keyed(fs, SFS_IK_CANON, key, NULL, prefixed("c:", key), e)
			   : -ENOMEM;
	}
	case SFS_IK_RECEIPTS: {
		char *key = strdup(parent->key), *nm = strdup(name), *tk = NULL;
		if (key && nm && asprintf(&tk, "f:%s/%s", key, nm) < 0)
			tk = NULL;
		return lookup_keyed(fs, SFS_IK_RECEIPT, key, nm, tk, e);
	}
	case SFS_IK_RECEIPT:
		return -ENOTDIR;
	}
	return -EIO;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = FS(req);
	struct fuse_entry_param e;
	struct sfs_inode *p = INODE(fs, parent);
	int rc = do_lookup(fs, p, name, &e);

	if (rc == -ENOENT && p->kind == SFS_IK_STAGING && strcmp(name, RECEIPTS) != 0) {
		/*
		 * Every change to staging goes through this mount, and the kernel
		 * drops a negative entry when it creates the name: let it cache
		 * the miss (zarr and h5py probe many names that do not exist).
		 */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct sfs_fs *fs = FS(req);

	pthread_mutex_lock(&fs->lock);
	unref_locked(fs, INODE(fs, ino), nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct sfs_fs *fs = FS(req);

	pthread_mutex_lock(&fs->lock);
	for (size_t i = 0; i < count; i++)
		unref_locked(fs, INODE(fs, forgets[i].ino), forgets[i].nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);
	struct stat st;
	double t = fs->timeout;
	int rc;

	if (fi && in->kind == SFS_IK_STAGING && in->type == S_IFREG && !is_stale(fs, in))
		rc = fstat((int)fi->fh, &st) < 0 ? -errno : 0;
	else
		rc = get_attr(fs, in, &st, &t);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, t);
}

/* Mutations outside staging: canonical and virtual trees are read-only. */
static int writable_dir(struct sfs_fs *fs, struct sfs_inode *in)
{
	if (fs->read_only)
		return -EROFS;
	switch (in->kind) {
	case SFS_IK_STAGING:
		return is_stale(fs, in) ? -ENOENT : 0;
	case SFS_IK_RECEIPTS:
	case SFS_IK_RECEIPT:
		return -EPERM;
	default:
		return -EROFS;
	}
}

/* ---- hash while writing ---- */

/* Replace the inode's hash job (NULL: the digest is unknown from here on). */
static void hash_set(struct sfs_inode *in, struct sfs_hjob *j)
{
	pthread_mutex_lock(&in->hlock);
	struct sfs_hjob *old = in->hjob;
	in->hjob = j;
	pthread_mutex_unlock(&in->hlock);
	sfs_hjob_invalidate(old);
	sfs_hjob_put(old);
}

static void hash_reset(struct sfs_inode *in)
{
	hash_set(in, sfs_hjob_new(in->fd));
}

static void hash_invalidate(struct sfs_inode *in)
{
	hash_set(in, NULL);
}

struct sfs_hjob *sfs_inode_hjob(struct sfs_inode *in)
{
	pthread_mutex_lock(&in->hlock);
	struct sfs_hjob *j = sfs_hjob_get(in->hjob);
	pthread_mutex_unlock(&in->hlock);
	return j;
}

/* The hasher finished a file: keep the digest with it for commits after a restart. */
static void hash_done(int rfd, const char *hex, uint64_t size)
{
	char val[80];

	snprintf(val, sizeof(val), "%s %llu", hex, (unsigned long long)size);
	if (fsetxattr(rfd, SFS_XATTR_HINT, val, strlen(val), 0) < 0)
		sfs_log(LOG_DEBUG, "cannot store md5 hint: %s", strerror(errno));
}

/* ---- setattr ---- */

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		       struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);
	char proc[64];
	int rc = 0;

	if (in->kind != SFS_IK_STAGING || fs->read_only) {
		fuse_reply_err(req, (in->kind == SFS_IK_RECEIPT || in->kind == SFS_IK_RECEIPTS) &&
						    !fs->read_only
					    ? EPERM
					    : EROFS);
		return;
	}
	if (is_stale(fs, in)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	procname(in, proc, sizeof(proc));
	if (valid & FUSE_SET_ATTR_MODE) {
		if (fi)
			rc = fchmod((int)fi->fh, attr->st_mode);
		else if (in->type == S_IFLNK)
			rc = 0; /* symlink modes are meaningless on Linux */
		else
			rc = chmod(proc, attr->st_mode);
		if (rc < 0)
			goto err;
		journal_meta(fs, in);
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
		if (fchownat(in->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			goto err;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		pthread_mutex_lock(&fs->lock);
		int busy = in->committing;
		pthread_mutex_unlock(&fs->lock);
		if (busy) {
			errno = EBUSY;
			goto err;
		}
		rc = sfs_cache_lock_present(fs, in, attr->st_size == 0);
		if (rc) {
			errno = -rc;
			goto err;
		}
		if (fi)
			rc = ftruncate((int)fi->fh, attr->st_size);
		else
			rc = truncate(proc, attr->st_size);
		sfs_cache_unlock(fs);
		if (rc < 0)
			goto err;
		if (attr->st_size == 0)
			hash_reset(in);
		else
			hash_invalidate(in);
		(void)removexattr(proc,
				  SFS_XATTR_HINT); /* after the job that could store it is gone */
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2];
		tv[0].tv_sec = tv[1].tv_sec = 0;
		tv[0].tv_nsec = tv[1].tv_nsec = UTIME_OMIT;
		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (fi)
			rc = futimens((int)fi->fh, tv);
		else if (in->type == S_IFLNK)
			rc = utimensat(in->fd, "", tv, AT_EMPTY_PATH);
		else
			rc = utimensat(AT_FDCWD, proc, tv, 0);
		if (rc < 0)
			goto err;
	}
	op_getattr(req, ino, fi);
	return;
err:
	fuse_reply_err(req, errno);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);
	char buf[PATH_MAX + 1];

	if (in->kind != SFS_IK_STAGING) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	ssize_t n = readlinkat(in->fd, "", buf, sizeof(buf));
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if ((size_t)n == sizeof(buf)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

/* ---- creating entries ---- */

/* May `name` of type `type` be created in `parent`?  0 or -errno (SPEC §3 level rules). */
static int may_create(struct sfs_fs *fs, struct sfs_inode *parent, const char *name, mode_t type)
{
	int rc = writable_dir(fs, parent);

	if (rc)
		return rc;
	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	if (parent->depth < 2) {
		if (type != S_IFDIR)
			return -EPERM;
		return valid_level_name(name) ? 0 : -EINVAL;
	}
	if (strcmp(name, RECEIPTS) == 0)
		return -EPERM;
	return 0;
}

static void chown_to_caller(fuse_req_t req, int dirfd, const char *name)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	if (geteuid() == 0 && ctx && (ctx->uid != 0 || ctx->gid != 0))
		(void)fchownat(dirfd, name, ctx->uid, ctx->gid, AT_SYMLINK_NOFOLLOW);
}

static void reply_new_entry(fuse_req_t req, struct sfs_fs *fs, struct sfs_inode *parent,
			    const char *name)
{
	struct fuse_entry_param e;
	int rc;

	chown_to_caller(req, parent->fd, name);
	rc = do_lookup(fs, parent, name, &e);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *p = INODE(fs, parent);
	int rc = may_create(fs, p, name, mode & S_IFMT);

	if (!rc && (S_ISCHR(mode) || S_ISBLK(mode)))
		rc = -EPERM; /* no device nodes in a data store */
	if (!rc && mknodat(p->fd, name, mode, rdev) < 0)
		rc = -errno;
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_new_entry(req, fs, p, name);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *p = INODE(fs, parent);
	int rc = may_create(fs, p, name, S_IFDIR);

	if (!rc && mkdirat(p->fd, name, mode) < 0)
		rc = -errno;
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_new_entry(req, fs, p, name);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *p = INODE(fs, parent);
	int rc = may_create(fs, p, name, S_IFLNK);

	if (!rc && symlinkat(link, p->fd, name) < 0)
		rc = -errno;
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_new_entry(req, fs, p, name);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino), *p = INODE(fs, newparent);
	char proc[64];
	int rc = may_create(fs, p, newname, S_IFREG);

	if (!rc && in->kind != SFS_IK_STAGING)
		rc = in->kind == SFS_IK_CANON ? -EROFS : -EPERM;
	if (!rc && is_stale(fs, in))
		rc = -ENOENT;
	if (!rc) {
		procname(in, proc, sizeof(proc));
		if (linkat(AT_FDCWD, proc, p->fd, newname, AT_SYMLINK_FOLLOW) < 0)
			rc = -errno;
	}
	if (!rc && uploads_on_close(fs)) {
		/* the store has no links: the new name is an object of its own */
		char *prel = NULL, *rel = NULL;
		int fd = -1;
		struct stat lst;
		rc = sfs_cache_lock_present(fs, in, 0);
		if (!rc) {
			fd = open(proc, O_RDONLY | O_CLOEXEC);
			if (fd >= 0 && fstat(fd, &lst) == 0 &&
			    sfs_fs_staging_rel(fs, p, &prel) == 0 &&
			    (rel = join_key(prel, newname)) != NULL)
				rc = sfs_backend_staged_sync(fs->be, rel, fd, 0);
			else
				rc = fd < 0 ? -errno : -ENOMEM;
			if (!rc)
				journal_record(fs, rel, fd, &lst);
			sfs_cache_unlock(fs);
		}
		if (rc) {
			sfs_log(LOG_ERR, "cannot store staged link '%s': %s", newname,
				strerror(-rc));
			(void)unlinkat(p->fd, newname, 0);
		}
		if (fd >= 0)
			close(fd);
		free(prel);
		free(rel);
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_new_entry(req, fs, p, newname);
}

/* Tell the backend (S3 mirrors the namespace) that rel under parent changed. */
static void backend_unlinked(struct sfs_fs *fs, struct sfs_inode *parent, const char *name,
			     int is_dir)
{
	char *rel = NULL, *full = NULL;

	if (!fs->be->ops->staged_unlink || sfs_fs_staging_rel(fs, parent, &rel))
		return;
	full = join_key(rel, name);
	if (full) {
		journal_forget(fs, full);
		int rc = sfs_backend_staged_unlink(fs->be, full, is_dir);
		if (rc && rc != -ENOENT)
			sfs_log(LOG_WARNING, "cannot remove staged '%s' from the store: %s", full,
				strerror(-rc));
	}
	free(full);
	free(rel);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *p = INODE(fs, parent);
	int rc;

	if (p->kind == SFS_IK_RECEIPTS && !fs->read_only) {
		rc = sfs_index_receipt_delete(fs->ix, p->key, name);
		fuse_reply_err(req, -rc);
		return;
	}
	rc = writable_dir(fs, p);
	if (!rc && strcmp(name, RECEIPTS) == 0)
		rc = -EPERM;
	if (!rc && unlinkat(p->fd, name, 0) < 0)
		rc = -errno;
	if (!rc)
		backend_unlinked(fs, p, name, 0);
	fuse_reply_err(req, -rc);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *p = INODE(fs, parent);
	int rc = writable_dir(fs, p);

	if (!rc && strcmp(name, RECEIPTS) == 0)
		rc = -EPERM;
	if (!rc && unlinkat(p->fd, name, AT_REMOVEDIR) < 0)
		rc = -errno;
	if (!rc)
		backend_unlinked(fs, p, name, 1);
	fuse_reply_err(req, -rc);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *p = INODE(fs, parent), *np = INODE(fs, newparent);
	int rc = writable_dir(fs, p);

	if (!rc)
		rc = writable_dir(fs, np);
	if (!rc && (strcmp(name, RECEIPTS) == 0 || strcmp(newname, RECEIPTS) == 0))
		rc = -EPERM;
	if (!rc && strlen(newname) > 255)
		rc = -ENAMETOOLONG;
	/* levels 1 and 2 hold only directories: entries move within their level */
	if (!rc && (p->depth >= 2 ? 2 : p->depth) != (np->depth >= 2 ? 2 : np->depth))
		rc = -EPERM;
	if (!rc && np->depth < 2 && !valid_level_name(newname))
		rc = -EINVAL;
	if (!rc) {
		struct stat st;
		if (fstatat(p->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			pthread_mutex_lock(&fs->lock);
			struct sfs_inode *src =
				sfs_fs_find_staging_locked(fs, st.st_dev, st.st_ino);
			if (src && src->committing)
				rc = -EBUSY;
			pthread_mutex_unlock(&fs->lock);
		}
	}
	if (!rc && renameat2(p->fd, name, np->fd, newname, flags) < 0)
		rc = -errno;
	if (!rc) {
		/* the kernel now knows the entry by its new name (reclaim asks by name) */
		struct stat st;
		if (fstatat(np->fd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			char *nn = strdup(newname);
			pthread_mutex_lock(&fs->lock);
			struct sfs_inode *moved =
				sfs_fs_find_staging_locked(fs, st.st_dev, st.st_ino);
			if (moved && nn && !is_pinned(fs, moved)) {
				char *t = moved->lname;
				moved->lname = nn;
				nn = t;
				moved->parent = INO(fs, np);
			}
			pthread_mutex_unlock(&fs->lock);
			free(nn);
		}
	}
	if (!rc && fs->be->ops->staged_rename) {
		char *a = NULL, *b = NULL, *fa = NULL, *fb = NULL;
		if (!sfs_fs_staging_rel(fs, p, &a) && !sfs_fs_staging_rel(fs, np, &b)) {
			fa = join_key(a, name);
			fb = join_key(b, newname);
			if (fa && fb && uploads_on_close(fs)) {
				int jrc = sfs_index_staged_move(fs->ix, fa, fb);
				if (jrc)
					sfs_log(LOG_WARNING, "index: cannot move 'staging/%s': %s",
						fa, strerror(-jrc));
			}
			if (fa && fb && sfs_backend_staged_rename(fs->be, fa, fb) < 0)
				sfs_log(LOG_WARNING, "cannot rename staged '%s' in the store", fa);
		}
		free(a);
		free(b);
		free(fa);
		free(fb);
	}
	fuse_reply_err(req, -rc);
}

/* ---- file handles of our own (canonical objects, receipts, directories) ---- */

/*
 * Every such handle is on a list, so that the ones the kernel never releases
 * are freed at the end: a RELEASE the kernel sends asynchronously right
 * before an unmount may never be read (the session ends at DESTROY).
 */
enum fh_kind { FH_CANON, FH_RECEIPT, FH_DIR };
struct sfs_fh {
	struct sfs_fh *prev, *next;
	enum fh_kind kind;
	void *p; /* struct sfs_bfile *, the receipt's JSON, struct dirh * */
};

struct dirh;
static void dirh_free(struct dirh *d);

/* A new handle for p (taken over; freed here on ENOMEM), or NULL. */
static struct sfs_fh *fh_new(struct sfs_fs *fs, enum fh_kind kind, void *p)
{
	struct sfs_fh *h = calloc(1, sizeof(*h));

	if (!h) {
		if (kind == FH_CANON)
			sfs_backend_close_obj(fs->be, p);
		else if (kind == FH_DIR)
			dirh_free(p);
		else
			free(p);
		return NULL;
	}
	h->kind = kind;
	h->p = p;
	pthread_mutex_lock(&fs->lock);
	h->next = fs->handles;
	if (h->next)
		h->next->prev = h;
	fs->handles = h;
	pthread_mutex_unlock(&fs->lock);
	return h;
}

static void fh_free(struct sfs_fs *fs, struct sfs_fh *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&fs->lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->lock);
	if (h->kind == FH_CANON)
		sfs_backend_close_obj(fs->be, h->p);
	else if (h->kind == FH_DIR)
		dirh_free(h->p);
	else
		free(h->p);
	free(h);
}

static struct sfs_fh *FH(struct fuse_file_info *fi)
{
	return (struct sfs_fh *)(uintptr_t)fi->fh;
}

/*
 * Reply to an open; when the open was interrupted meanwhile (-ENOENT), no
 * RELEASE will come for it: free the handle now.
 */
static void reply_open_fh(fuse_req_t req, struct sfs_fs *fs, struct fuse_file_info *fi,
			  struct sfs_fh *h)
{
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi) == -ENOENT)
		fh_free(fs, h);
}

/* ---- files ---- */

static int open_flags(int flags)
{
	return (flags & ~O_NOFOLLOW) | O_CLOEXEC;
}

static int is_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

/* Account a new write handle on a staged file; sets up hashing.  -EBUSY while committing. */
static int writer_enter(struct sfs_fs *fs, struct sfs_inode *in, int fd, int flags)
{
	int first;

	pthread_mutex_lock(&fs->lock);
	if (in->committing || in->stale) {
		pthread_mutex_unlock(&fs->lock);
		return in->stale ? -ENOENT : -EBUSY;
	}
	first = in->writers++ == 0;
	pthread_mutex_unlock(&fs->lock);
	if (first) {
		struct stat st;
		/* drop the old job first: from then on it cannot store a hint */
		if ((flags & O_TRUNC) || (fstat(fd, &st) == 0 && st.st_size == 0))
			hash_reset(in);
		else
			hash_invalidate(in); /* appending to bytes we did not see written */
		/* the stored digest no longer describes what will be written */
		if (fremovexattr(fd, SFS_XATTR_HINT) < 0 && errno != ENODATA && errno != ENOTSUP)
			sfs_log(LOG_DEBUG, "cannot drop md5 hint: %s", strerror(errno));
	}
	return 0;
}

static void writer_leave(struct sfs_fs *fs, struct sfs_inode *in, int fd)
{
	int last;

	pthread_mutex_lock(&fs->lock);
	last = --in->writers == 0;
	pthread_mutex_unlock(&fs->lock);
	if (last) {
		struct stat st;
		struct sfs_hjob *j = sfs_inode_hjob(in);
		if (j && fstat(fd, &st) == 0)
			sfs_hjob_closed(j, (uint64_t)st.st_size);
		else
			sfs_hjob_invalidate(j);
		sfs_hjob_put(j);
	}
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);
	int rc = 0;

	switch (in->kind) {
	case SFS_IK_STAGING: {
		char proc[64];
		if (is_write(fi->flags) && fs->read_only) {
			rc = -EROFS;
			break;
		}
		if (is_stale(fs, in)) {
			rc = -ENOENT;
			break;
		}
		procname(in, proc, sizeof(proc));
		/* evicted bytes come back before anyone reads them */
		rc = sfs_cache_lock_present(fs, in, (fi->flags & O_TRUNC) != 0);
		if (rc)
			break;
		int fd = open(proc, open_flags(fi->flags));
		if (fd < 0) {
			rc = -errno;
			sfs_cache_unlock(fs);
			break;
		}
		if (is_write(fi->flags)) {
			rc = writer_enter(fs, in, fd, fi->flags);
			if (rc) {
				close(fd);
				sfs_cache_unlock(fs);
				break;
			}
		}
		pthread_mutex_lock(&fs->lock);
		in->opens++;
		pthread_mutex_unlock(&fs->lock);
		sfs_cache_unlock(fs); /* counted as open: no eviction from here on */
		fi->fh = (uint64_t)fd;
		fi->keep_cache = 1; /* we are the only writer of the staging tree */
		fi->noflush = !uploads_on_close(fs); /* FLUSH has nothing to do */
		fuse_reply_open(req, fi);
		return;
	}
	case SFS_IK_CANON: {
		if (is_write(fi->flags)) {
			rc = -EROFS;
			break;
		}
		struct sfs_bfile *f = NULL;
		rc = sfs_backend_open_obj(fs->be, in->key, &f);
		if (rc)
			break;
		struct sfs_fh *h = fh_new(fs, FH_CANON, f);
		if (!h) {
			rc = -ENOMEM;
			break;
		}
		fi->keep_cache = 1; /* canonical objects never change */
		reply_open_fh(req, fs, fi, h);
		return;
	}
	case SFS_IK_RECEIPT: {
		if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
			rc = fs->read_only ? -EROFS : -EPERM;
			break;
		}
		char *json = NULL;
		rc = receipt_json(fs, in, &json);
		if (rc)
			break;
		struct sfs_fh *h = fh_new(fs, FH_RECEIPT, json);
		if (!h) {
			rc = -ENOMEM;
			break;
		}
		fi->direct_io = 1;
		reply_open_fh(req, fs, fi, h);
		return;
	}
	default:
		rc = -EISDIR;
	}
	fuse_reply_err(req, -rc);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *p = INODE(fs, parent), *in = NULL;
	struct fuse_entry_param e;
	int fd = -1;
	int rc = may_create(fs, p, name, S_IFREG);

	if (rc)
		goto err;
	if (sfs_cache_active(fs) && !(fi->flags & (O_EXCL | O_TRUNC)) &&
	    faccessat(p->fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		/* O_CREAT on an existing file that the cache may have evicted */
		char *prel = NULL, *rel = NULL;
		rc = sfs_fs_staging_rel(fs, p, &prel);
		if (!rc) {
			rel = join_key(prel, name);
			rc = rel ? sfs_cache_present_rel(fs, rel) : -ENOMEM;
		}
		free(prel);
		free(rel);
		if (rc)
			goto err;
	}
	fd = openat(p->fd, name, open_flags(fi->flags) | O_CREAT, mode);
	if (fd < 0) {
		rc = -errno;
		goto err;
	}
	chown_to_caller(req, p->fd, name);
	memset(&e, 0, sizeof(e));
	rc = lookup_staging(fs, p, name, &e, &in);
	if (rc)
		goto err;
	rc = writer_enter(fs, in, fd, fi->flags);
	if (rc) {
		pthread_mutex_lock(&fs->lock);
		unref_locked(fs, in, 1);
		pthread_mutex_unlock(&fs->lock);
		goto err;
	}
	pthread_mutex_lock(&fs->lock);
	in->opens++;
	pthread_mutex_unlock(&fs->lock);
	fi->fh = (uint64_t)fd;
	fi->keep_cache = 1;
	fi->noflush = !uploads_on_close(fs);
	fuse_reply_create(req, &e, fi);
	return;
err:
	if (fd >= 0)
		close(fd);
	fuse_reply_err(req, -rc);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);

	if (in->kind == SFS_IK_STAGING) {
		struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
		buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		buf.buf[0].fd = (int)fi->fh;
		buf.buf[0].pos = off;
		fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
		return;
	}
	if (in->kind == SFS_IK_RECEIPT) {
		/*
		 * Reply from a copy: once the kernel has the answer it may send
		 * RELEASE, whose worker frees fi->fh while this one is still inside
		 * writev() (ASan saw it read the freed JSON there).
		 */
		const char *json = FH(fi)->p;
		size_t len = strlen(json);
		size_t n = (size_t)off >= len	      ? 0
			   : len - (size_t)off < size ? len - (size_t)off
						      : size;
		char *copy = n ? malloc(n) : NULL;
		if (n && !copy) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		if (n)
			memcpy(copy, json + off, n);
		fuse_reply_buf(req, copy, n);
		free(copy);
		return;
	}
	char *buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = sfs_backend_pread(fs->be, FH(fi)->p, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);
	size_t done = 0;

	if (in->kind != SFS_IK_STAGING) {
		fuse_reply_err(req, EROFS);
		return;
	}
	int grc = sfs_cache_grow(fs, (int)fi->fh, off, size);
	if (grc) {
		fuse_reply_err(req, -grc);
		return;
	}
	struct sfs_hjob *j = sfs_inode_hjob(in);
	sfs_hjob_pre_write(j, (uint64_t)off, size);
	while (done < size) {
		ssize_t w = pwrite((int)fi->fh, buf + done, size - done, off + (off_t)done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			sfs_hjob_invalidate(j);
			if (done == 0) {
				sfs_hjob_put(j);
				fuse_reply_err(req, e);
				return;
			}
			break;
		}
		done += (size_t)w;
	}
	sfs_hjob_post_write(j, (uint64_t)off, done);
	sfs_hjob_put(j);
	fuse_reply_write(req, done);
}

/*
 * Store staged file fd (inode in) in the backend that uploads staged files.
 * The backend's reason is logged; the writer gets EIO for it (SPEC §7: a
 * refused or failed upload is an I/O error of this file, not a permission
 * problem of the caller), except for ENOSPC/EDQUOT, which it can act on.
 */
static int store_staged(struct sfs_fs *fs, struct sfs_inode *in, int fd, int durable)
{
	char *rel = NULL;
	struct stat st;
	int rc = sfs_fs_staging_rel(fs, in, &rel);

	/* stat before the bytes are read: a later write makes the row differ (upload again) */
	if (!rc && fstat(fd, &st) < 0)
		rc = -errno;
	if (!rc)
		rc = sfs_backend_staged_sync(fs->be, rel, fd, durable);
	if (rc) {
		sfs_log(LOG_ERR, "cannot store staged '%s': %s", rel ? rel : "?", strerror(-rc));
		if (rc != -ENOSPC && rc != -EDQUOT && rc != -ENOMEM)
			rc = -EIO;
	} else {
		journal_record(fs, rel, fd, &st);
		sfs_cache_stored(fs, fd);
	}
	free(rel);
	return rc;
}

/*
 * close() waits for FLUSH (RELEASE comes later, asynchronously): a backend that
 * uploads staged files does it here, so the object exists under the file's
 * current name before close() returns and before a following rename.
 */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);
	int rc = 0;

	/* FLUSH carries no open flags: ask the descriptor how it was opened */
	int fl = in->kind == SFS_IK_STAGING && uploads_on_close(fs) ? fcntl((int)fi->fh, F_GETFL)
								    : -1;
	if (fl >= 0 && (fl & O_ACCMODE) != O_RDONLY)
		rc = store_staged(fs, in, (int)fi->fh, 0);
	fuse_reply_err(req, -rc);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);

	switch (in->kind) {
	case SFS_IK_STAGING:
		if (is_write(fi->flags))
			writer_leave(fs, in, (int)fi->fh);
		close((int)fi->fh);
		pthread_mutex_lock(&fs->lock);
		in->opens--;
		pthread_mutex_unlock(&fs->lock);
		break;
	case SFS_IK_CANON:
	case SFS_IK_RECEIPT:
		fh_free(fs, FH(fi));
		break;
	default:
		break;
	}
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);
	int rc = 0;

	if (in->kind != SFS_IK_STAGING) {
		fuse_reply_err(req, 0);
		return;
	}
	if ((datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh)) < 0)
		rc = -errno;
	if (!rc && uploads_on_close(fs))
		rc = store_staged(fs, in, (int)fi->fh, 1);
	fuse_reply_err(req, -rc);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);

	if (in->kind != SFS_IK_STAGING) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (fallocate((int)fi->fh, mode, off, len) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (!(mode & FALLOC_FL_KEEP_SIZE) || (mode & FALLOC_FL_PUNCH_HOLE))
		hash_invalidate(in);
	fuse_reply_err(req, 0);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);

	if (in->kind != SFS_IK_STAGING) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	off_t r = lseek((int)fi->fh, off, whence);
	if (r < 0)
		fuse_reply_err(req, errno);
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

struct dent {
	char *name;
	mode_t type;
	uint64_t ino;
};

struct dirh {
	struct dent *e;
	size_t n, cap;
	struct sfs_inode *in;
};

static int dirh_add(struct dirh *d, const char *name, mode_t type, uint64_t ino)
{
	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 64;
		struct dent *ne = realloc(d->e, ncap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		d->e = ne;
		d->cap = ncap;
	}
	d->e[d->n].name = strdup(name);
	if (!d->e[d->n].name)
		return -ENOMEM;
	d->e[d->n].type = type;
	d->e[d->n].ino = ino;
	d->n++;
	return 0;
}

static void dirh_free(struct dirh *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->e[i].name);
	free(d->e);
	free(d);
}

static int list_cb(void *arg, const char *name, const struct sfs_bstat *st)
{
	return dirh_add(arg, name, st->mode & S_IFMT, 0);
}

static int receipt_cb(void *arg, const char *name, int64_t size)
{
	return dirh_add(arg, name, S_IFREG, 0);
}

static int dirh_fill(struct sfs_fs *fs, struct dirh *d)
{
	struct sfs_inode *in = d->in;
	int rc = dirh_add(d, ".", S_IFDIR, 0);

	if (!rc)
		rc = dirh_add(d, "..", S_IFDIR, 0);
	if (rc)
		return rc;
	switch (in->kind) {
	case SFS_IK_ROOT:
		rc = dirh_add(d, "staging", S_IFDIR, 0);
		pthread_mutex_lock(&fs->lock);
		for (size_t i = 0; !rc && i < fs->table_size; i++)
			for (struct sfs_inode *c = fs->table[i]; !rc && c; c = c->next)
				if (c->kind == SFS_IK_CANON && c->nlookup == UINT64_MAX)
					rc = dirh_add(d, c->key, S_IFDIR, 0);
		pthread_mutex_unlock(&fs->lock);
		return rc;
	case SFS_IK_STAGING: {
		if (is_stale(fs, in))
			return -ENOENT;
		int fd = openat(in->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		DIR *dp = fdopendir(fd);
		if (!dp) {
			rc = -errno;
			close(fd);
			return rc;
		}
		struct dirent *de;
		while (!rc && (errno = 0, de = readdir(dp)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			rc = dirh_add(d, de->d_name, (mode_t)DTTOIF(de->d_type), de->d_ino);
		}
		if (!rc && errno)
			rc = -errno;
		closedir(dp);
		if (!rc && in->depth >= 2) {
			char *rel = NULL;
			if (sfs_fs_staging_rel(fs, in, &rel) == 0 &&
			    sfs_index_receipt_any(fs->ix, rel) > 0)
				rc = dirh_add(d, RECEIPTS, S_IFDIR, 0);
			free(rel);
		}
		return rc;
	}
	case SFS_IK_CANON:
		rc = sfs_backend_list(fs->be, in->key, list_cb, d);
		if (rc == -ENOENT && in->nlookup == UINT64_MAX)
			rc = 0;
		return rc;
	case SFS_IK_RECEIPTS:
		return sfs_index_receipt_list(fs->ix, in->key, receipt_cb, d);
	default:
		return -ENOTDIR;
	}
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct dirh *d = calloc(1, sizeof(*d));
	int rc;

	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	d->in = INODE(fs, ino);
	rc = dirh_fill(fs, d);
	if (rc) {
		dirh_free(d);
		fuse_reply_err(req, -rc);
		return;
	}
	struct sfs_fh *h = fh_new(fs, FH_DIR, d);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->cache_readdir = 0;
	reply_open_fh(req, fs, fi, h);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	struct sfs_fs *fs = FS(req);
	struct dirh *d = FH(fi)->p;
	char *buf = malloc(size), *p = buf;
	size_t rem = size;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < d->n; i++) {
		struct dent *de = &d->e[i];
		size_t need;
		int dots = strcmp(de->name, ".") == 0 || strcmp(de->name, "..") == 0;

		if (plus) {
			struct fuse_entry_param e;
			memset(&e, 0, sizeof(e));
			if (dots || do_lookup(fs, d->in, de->name, &e) != 0) {
				e.attr.st_ino = de->ino;
				e.attr.st_mode = de->type;
				e.ino = 0;
			}
			need = fuse_add_direntry_plus(req, p, rem, de->name, &e, (off_t)(i + 1));
			if (need > rem) {
				if (e.ino) {
					pthread_mutex_lock(&fs->lock);
					unref_locked(fs, INODE(fs, e.ino), 1);
					pthread_mutex_unlock(&fs->lock);
				}
				break;
			}
		} else {
			struct stat st;
			memset(&st, 0, sizeof(st));
			st.st_ino = de->ino;
			st.st_mode = de->type;
			need = fuse_add_direntry(req, p, rem, de->name, &st, (off_t)(i + 1));
			if (need > rem)
				break;
		}
		p += need;
		rem -= need;
	}
	fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fh_free(FS(req), FH(fi));
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);
	int rc = 0;

	if (in->kind == SFS_IK_STAGING) {
		int fd = openat(in->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0)
			rc = -errno;
		if (fd >= 0)
			close(fd);
	}
	fuse_reply_err(req, -rc);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct sfs_fs *fs = FS(req);
	struct statvfs sv;

	if (fstatvfs(fs->staging_fd, &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (fs->read_only)
		sv.f_flag |= ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes ---- */

/*
 * Only the user namespace is supported (SPEC §3).  trusted.* and security.*
 * written by a root daemon on behalf of any caller would be a privilege leak,
 * and ACLs are not enforced by this mount.  EOPNOTSUPP (not ENODATA) also lets
 * tools like ls cache "unsupported" per filesystem instead of asking per file.
 */
static int xattr_supported(const char *name)
{
	return strncmp(name, "user.", 5) == 0;
}

/* May a user set or remove xattr name on a staged entry?  0, -EOPNOTSUPP or -EPERM. */
static int xattr_writable(const char *name)
{
	if (!xattr_supported(name))
		return -EOPNOTSUPP;
	if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) == 0)
		return -EPERM; /* our own bookkeeping */
	return 0;
}

static void reply_xattr_value(fuse_req_t req, const char *val, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, len);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);
	char proc[64];
	int rc;

	if (in->kind != SFS_IK_STAGING || fs->read_only) {
		fuse_reply_err(req, (in->kind == SFS_IK_RECEIPT || in->kind == SFS_IK_RECEIPTS) &&
						    !fs->read_only
					    ? EPERM
					    : EROFS);
		return;
	}
	if (strcmp(name, XATTR_COMMIT) == 0) {
		rc = sfs_commit(fs, in, value, size);
		fuse_reply_err(req, -rc);
		return;
	}
	rc = xattr_writable(name);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (is_stale(fs, in)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (in->type == S_IFLNK) {
		fuse_reply_err(req, EPERM);
		return;
	}
	procname(in, proc, sizeof(proc));
	rc = setxattr(proc, name, value, size, flags) < 0 ? -errno : 0;
	if (!rc)
		journal_meta(fs, in);
	fuse_reply_err(req, -rc);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);
	char proc[64];

	if (!xattr_supported(name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (in->kind == SFS_IK_CANON && strcmp(name, XATTR_META) == 0) {
		char *json = NULL;
		int rc = sfs_index_object_metadata(fs->ix, in->key, &json);
		if (rc)
			fuse_reply_err(req, rc == -ENOENT ? ENODATA : -rc);
		else
			reply_xattr_value(req, json, strlen(json), size);
		free(json);
		return;
	}
	if (in->kind != SFS_IK_STAGING) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (strcmp(name, XATTR_STATUS) == 0) {
		char buf[512];
		pthread_mutex_lock(&in->hlock);
		snprintf(buf, sizeof(buf), "%s", in->status ? in->status : "staged");
		pthread_mutex_unlock(&in->hlock);
		if (is_stale(fs, in) && !in->status)
			snprintf(buf, sizeof(buf), "committed");
		reply_xattr_value(req, buf, strlen(buf), size);
		return;
	}
	if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) == 0 || in->type == S_IFLNK) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	procname(in, proc, sizeof(proc));
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = getxattr(proc, name, buf, size);
	if (n < 0)
		fuse_reply_err(req, errno);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);
	char proc[64];

	if (in->kind != SFS_IK_STAGING || in->type == S_IFLNK) {
		reply_xattr_value(req, "", 0, size);
		return;
	}
	procname(in, proc, sizeof(proc));
	ssize_t n = listxattr(proc, NULL, 0);
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	char *raw = malloc((size_t)n + 1), *out = malloc((size_t)n + 1);
	if (!raw || !out) {
		free(raw);
		free(out);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = listxattr(proc, raw, (size_t)n);
	size_t olen = 0;
	for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(raw + i) + 1) {
		size_t l = strlen(raw + i) + 1;
		if (strncmp(raw + i, XATTR_PREFIX, strlen(XATTR_PREFIX)) == 0 ||
		    !xattr_supported(raw + i))
			continue; /* our own bookkeeping and unsupported namespaces */
		memcpy(out + olen, raw + i, l);
		olen += l;
	}
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		reply_xattr_value(req, out, olen, size);
	free(raw);
	free(out);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);
	char proc[64];

	if (in->kind != SFS_IK_STAGING || fs->read_only) {
		fuse_reply_err(req, fs->read_only || in->kind == SFS_IK_CANON ? EROFS : EPERM);
		return;
	}
	int rc = xattr_writable(name);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	procname(in, proc, sizeof(proc));
	rc = removexattr(proc, name) < 0 ? -errno : 0;
	if (!rc)
		journal_meta(fs, in);
	fuse_reply_err(req, -rc);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_inode *in = INODE(fs, ino);

	if ((mask & W_OK) && (fs->read_only || in->kind == SFS_IK_CANON))
		fuse_reply_err(req, EROFS);
	else
		fuse_reply_err(req, 0);
}

/* ---- session ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/*
	 * No kernel writeback cache: every write reaches us in order (the MD5
	 * trails it) and a small file costs ~10 requests instead of ~13 (the
	 * cache adds two SETATTRs and a FLUSH per file; zarr writes one file
	 * per chunk).  Large writes still arrive 1 MiB at a time.
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
	/* data files carry no setuid bits worth a security.capability round trip per write */
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

/* ---- setup ---- */

static int pin_canon_root(struct sfs_fs *fs, const char *prefix)
{
	char seg[256];
	size_t n = strcspn(prefix, "/");

	if (n == 0 || n >= sizeof(seg))
		return 0;
	memcpy(seg, prefix, n);
	seg[n] = '\0';
	struct sfs_inode *in = inode_new(SFS_IK_CANON);
	if (!in)
		return -ENOMEM;
	in->key = strdup(seg);
	in->tkey = prefixed("c:", seg);
	if (!in->key || !in->tkey) {
		inode_free(in);
		return -ENOMEM;
	}
	pthread_mutex_lock(&fs->lock);
	int rc = 0;
	if (!sfs_fs_table_find_locked(fs, in->tkey)) {
		in->nlookup = UINT64_MAX; /* pinned */
		rc = sfs_fs_table_insert_locked(fs, in);
		in = rc ? in : NULL;
	}
	pthread_mutex_unlock(&fs->lock);
	if (in)
		inode_free(in);
	return rc;
}

int sfs_fs_init(struct sfs_fs *fs, struct sfs_config *cfg, struct sfs_backend *be,
		struct sfs_index *ix)
{
	char proc[64], buf[PATH_MAX + 1];
	int rc;

	memset(fs, 0, sizeof(*fs));
	fs->cfg = cfg;
	fs->be = be;
	fs->ix = ix;
	fs->staging_fd = -1;
	fs->read_only = cfg->read_only;
	fs->timeout = 1.0;
	clock_gettime(CLOCK_REALTIME, &mount_time);
	pthread_mutex_init(&fs->lock, NULL);
	pthread_mutex_init(&fs->nlock, NULL);
	pthread_cond_init(&fs->ncond, NULL);
	sfs_hasher_set_done_cb(hash_done);
	fs->lru.lru_next = fs->lru.lru_prev = &fs->lru;
	struct rlimit rl;
	size_t lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (size_t)rl.rlim_cur : 1024;
	/* reclaim past half the limit (a working set below it never churns); wait past 3/4 */
	fs->reclaim_high = lim / 2 > 64 ? lim / 2 : 64;
	fs->reclaim_low = fs->reclaim_high * 3 / 4;
	fs->reclaim_hard = lim * 3 / 4 > 128 ? lim * 3 / 4 : 128;
	pthread_cond_init(&fs->reclaim_cond, NULL);
	fs->root.kind = SFS_IK_ROOT;
	fs->root.fd = -1;
	pthread_mutex_init(&fs->root.hlock, NULL);

	fs->journal.arg = fs;
	fs->journal.stored = journal_stored;
	fs->journal.record = journal_record;
	fs->journal.restore = journal_restore;
	if (be->ops->set_journal)
		be->ops->set_journal(be, &fs->journal);
	fs->staging_fd = sfs_backend_staging_dir(be);
	if (fs->staging_fd < 0)
		return fs->staging_fd;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fs->staging_fd);
	ssize_t n = readlink(proc, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	fs->staging_real = strdup(buf);
	if (!fs->staging_real)
		return -ENOMEM;
	fs->staging_real_len = (size_t)n;

	fs->staging = inode_new(SFS_IK_STAGING);
	if (!fs->staging)
		return -ENOMEM;
	fs->staging->fd = openat(fs->staging_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->staging->fd < 0)
		return -errno;
	fs->staging->type = S_IFDIR;
	fs->staging->depth = 0;
	fs->staging->nlookup = UINT64_MAX;
	rc = sfs_cache_init(fs);
	if (rc)
		return rc;
	rc = pin_canon_root(fs, cfg->schema_prefix ? cfg->schema_prefix : "_schema");
	if (!rc)
		rc = pin_canon_root(fs, cfg->hash_prefix ? cfg->hash_prefix : "_hash");
	return rc;
}

void sfs_fs_release(struct sfs_fs *fs)
{
	sfs_fs_stop_notifier(fs);
	sfs_cache_release(fs);
	pthread_cond_destroy(&fs->reclaim_cond);
	for (size_t i = 0; i < fs->table_size; i++) {
		struct sfs_inode *in = fs->table[i], *next;
		for (; in; in = next) {
			next = in->next;
			inode_free(in);
		}
	}
	free(fs->table);
	fs->table = NULL;
	if (fs->staging)
		inode_free(fs->staging);
	if (fs->staging_fd >= 0)
		close(fs->staging_fd);
	free(fs->staging_real);
	while (fs->handles) /* opened, never released (see fh_new) */
		fh_free(fs, fs->handles);
	pthread_mutex_destroy(&fs->root.hlock);
	free(fs->root.status);
	pthread_mutex_destroy(&fs->lock);
	pthread_mutex_destroy(&fs->nlock);
	pthread_cond_destroy(&fs->ncond);
}
