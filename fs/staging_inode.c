/*
 * fs/staging_inode.c - staging inodes without descriptors.
 *
 * A staging inode remembers the host inode number, its type, where it was
 * last seen (parent inode + name, kept up to date by our own renames and
 * unlinks) and, when the staging filesystem exports them and we may use them
 * (CAP_DAC_READ_SEARCH), a kernel file handle (name_to_handle_at): the way
 * virtiofsd's --inode-file-handles finds inodes again.  An operation reaches
 * the file through its parent's directory descriptor and its name, checking
 * that the name still leads to the same inode; when it does not (another
 * hard link was used, the name was unlinked while open), the file handle
 * opens the inode itself.  Without handles such a name is looked for again
 * in its directory (O(entries)); see the README for what that costs.
 *
 * Directory descriptors (O_PATH) are cached in a small table (fs->dcache),
 * the only descriptors inodes cost: at most fs->dcache_max of them however
 * large the tree.
 */
#include "fs/staging.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/hasher.h"

struct sfs_dcache_ent {
	struct sfs_stg *in; /* NULL: free */
	int fd;
	int users;
	uint64_t tick;
};

static int match_ino(const struct sfs_inode *in, const void *key)
{
	return ((const struct sfs_stg *)in)->ino == *(const ino_t *)key;
}

struct sfs_stg *sfs_stg_find_locked(struct sfs_fs *fs, ino_t ino)
{
	return (struct sfs_stg *)sfs_table_find_locked(fs, &sfs_view_staging, (uint64_t)ino,
						       match_ino, &ino);
}

static struct sfs_stg *stg_alloc(size_t hlen)
{
	struct sfs_stg *in = calloc(1, sizeof(*in) + hlen);

	if (!in)
		return NULL;
	in->base.view = &sfs_view_staging;
	in->dslot = -1;
	in->hlen = (uint8_t)hlen;
	return in;
}

/* ---- the directory descriptor cache ---- */

static int open_by_handle(struct sfs_fs *fs, const struct sfs_stg *in, int flags)
{
	union {
		struct file_handle h;
		char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} u;

	u.h.handle_bytes = in->hlen;
	u.h.handle_type = in->htype;
	memcpy(u.h.f_handle, in->handle, in->hlen);
	int fd = open_by_handle_at(fs->staging_fd, &u.h, flags | O_CLOEXEC);
	if (fd < 0)
		return errno == ESTALE ? -ENOENT : -errno;
	return fd;
}

/* The parent and a copy of the name of in, with the parent held; -ENOENT when unknown. */
static int where(struct sfs_fs *fs, struct sfs_stg *in, struct sfs_stg **parent, char **name)
{
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
	if (!in->parent || !in->name) {
		rc = -ENOENT;
	} else {
		*name = strdup(in->name);
		if (!*name) {
			rc = -ENOMEM;
		} else {
			*parent = in->parent;
			sfs_inode_hold_locked(&in->parent->base);
		}
	}
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

static int open_dir_uncached(struct sfs_fs *fs, struct sfs_stg *dir)
{
	struct sfs_stg *parent = NULL;
	struct sfs_stg_dref pr;
	struct stat st;
	char *name = NULL;
	int fd, rc;

	if (dir == fs->staging) {
		fd = openat(fs->staging_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	if (dir->hlen)
		return open_by_handle(fs, dir, O_PATH | O_DIRECTORY);
	rc = where(fs, dir, &parent, &name);
	if (rc)
		return rc;
	rc = sfs_stg_dir_get(fs, parent, &pr);
	if (!rc) {
		fd = openat(pr.fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		rc = fd < 0 ? -errno : 0;
		sfs_stg_dir_put(fs, &pr);
		if (!rc && (fstat(fd, &st) < 0 || st.st_ino != dir->ino)) {
			close(fd);
			rc = -ENOENT; /* the name leads elsewhere now */
		}
		if (!rc)
			rc = fd;
	}
	sfs_inode_put(fs, &parent->base);
	free(name);
	return rc;
}

int sfs_stg_dir_get(struct sfs_fs *fs, struct sfs_stg *dir, struct sfs_stg_dref *r)
{
	pthread_mutex_lock(&fs->dlock);
	if (dir->dslot >= 0) {
		struct sfs_dcache_ent *e = &fs->dcache[dir->dslot];
		e->users++;
		e->tick = ++fs->dcache_tick;
		r->fd = e->fd;
		r->slot = dir->dslot;
		pthread_mutex_unlock(&fs->dlock);
		return 0;
	}
	pthread_mutex_unlock(&fs->dlock);

	int fd = open_dir_uncached(fs, dir);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&fs->dlock);
	if (dir->dslot >= 0) { /* another thread cached it meanwhile */
		struct sfs_dcache_ent *e = &fs->dcache[dir->dslot];
		e->users++;
		r->fd = e->fd;
		r->slot = dir->dslot;
		pthread_mutex_unlock(&fs->dlock);
		close(fd);
		return 0;
	}
	int slot = -1;
	uint64_t oldest = UINT64_MAX;
	for (size_t i = 0; i < fs->dcache_max; i++) {
		struct sfs_dcache_ent *e = &fs->dcache[i];
		if (!e->in) {
			slot = (int)i;
			break;
		}
		if (!e->users && e->tick < oldest) {
			oldest = e->tick;
			slot = (int)i;
		}
	}
	if (slot >= 0) {
		struct sfs_dcache_ent *e = &fs->dcache[slot];
		if (e->in) {
			e->in->dslot = -1;
			close(e->fd);
		}
		e->in = dir;
		e->fd = fd;
		e->users = 1;
		e->tick = ++fs->dcache_tick;
		dir->dslot = (int16_t)slot;
	}
	pthread_mutex_unlock(&fs->dlock);
	r->fd = fd;
	r->slot = slot; /* -1: every slot busy, the caller's own descriptor */
	return 0;
}

void sfs_stg_dir_put(struct sfs_fs *fs, struct sfs_stg_dref *r)
{
	if (r->slot < 0) {
		if (r->fd >= 0)
			close(r->fd);
	} else {
		pthread_mutex_lock(&fs->dlock);
		fs->dcache[r->slot].users--;
		pthread_mutex_unlock(&fs->dlock);
	}
	r->fd = -1;
}

void sfs_stg_dir_forget(struct sfs_fs *fs, struct sfs_stg *dir)
{
	pthread_mutex_lock(&fs->dlock);
	if (dir->dslot >= 0) {
		struct sfs_dcache_ent *e = &fs->dcache[dir->dslot];
		/* only inodes nobody uses are freed: no borrower is left */
		close(e->fd);
		e->in = NULL;
		e->fd = -1;
		e->users = 0;
		dir->dslot = -1;
	}
	pthread_mutex_unlock(&fs->dlock);
}

/* ---- finding a file again ---- */

/*
 * Path mode, a name that leads elsewhere: look for the inode in its last
 * directory (another hard link) and remember the name found.
 */
static int renew_name(struct sfs_fs *fs, struct sfs_stg *in, struct sfs_stg *parent, int pfd)
{
	int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;
	int rc = -ENOENT;

	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return -ENOENT;
	}
	while (rc == -ENOENT && (de = readdir(d)) != NULL) {
		struct stat st;
		if (de->d_ino != in->ino ||
		    fstatat(pfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_ino != in->ino)
			continue;
		char *nn = strdup(de->d_name);
		if (!nn)
			break;
		pthread_mutex_lock(&fs->lock);
		if (in->parent == parent) {
			free(in->name);
			in->name = nn;
			nn = NULL;
			rc = 0;
		}
		pthread_mutex_unlock(&fs->lock);
		free(nn);
	}
	closedir(d);
	return rc;
}

/*
 * lstat of in through its parent's descriptor and its current name, which must
 * lead to in.  -ESTALE when it leads elsewhere (or nowhere), -ENOENT when the
 * name is unknown.  With renew, a stale name is looked for again once.
 */
static int by_name(struct sfs_fs *fs, struct sfs_stg *in, struct stat *st, int renew)
{
	for (int tries = 0;; tries++) {
		struct sfs_stg *parent = NULL;
		struct sfs_stg_dref pr;
		char *name = NULL;
		int again = 0, rc = where(fs, in, &parent, &name);

		if (rc)
			return rc;
		rc = sfs_stg_dir_get(fs, parent, &pr);
		if (!rc) {
			rc = fstatat(pr.fd, name, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
			if (rc == -ENOENT || (!rc && st->st_ino != in->ino))
				rc = -ESTALE;
			again = rc == -ESTALE && renew && !tries &&
				renew_name(fs, in, parent, pr.fd) == 0;
			sfs_stg_dir_put(fs, &pr);
		}
		sfs_inode_put(fs, &parent->base);
		free(name);
		if (!again)
			return rc;
	}
}

int sfs_stg_stat(struct sfs_fs *fs, struct sfs_stg *in, struct stat *st)
{
	if (in == fs->staging)
		return fstat(fs->staging_fd, st) < 0 ? -errno : 0;
	int rc = by_name(fs, in, st, !in->hlen && in->type != S_IFDIR);
	if ((rc == -ESTALE || rc == -ENOENT) && in->hlen) {
		int fd = open_by_handle(fs, in, O_PATH);
		if (fd < 0)
			return fd;
		rc = fstat(fd, st) < 0 ? -errno : 0;
		close(fd);
	}
	return rc == -ESTALE ? -ENOENT : rc;
}

int sfs_stg_open(struct sfs_fs *fs, struct sfs_stg *in, int flags)
{
	struct sfs_stg *parent = NULL;
	struct sfs_stg_dref pr;
	struct stat st;
	char *name = NULL;
	int fd, rc;

	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY);
	if (in == fs->staging) {
		fd = openat(fs->staging_fd, ".", flags | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	if (in->hlen) /* one syscall, whatever its names are now */
		return open_by_handle(fs, in, flags);
	for (int tries = 0; tries < 2; tries++) {
		rc = where(fs, in, &parent, &name);
		if (rc)
			return rc;
		rc = sfs_stg_dir_get(fs, parent, &pr);
		if (!rc) {
			fd = openat(pr.fd, name, flags | O_NOFOLLOW | O_CLOEXEC);
			rc = fd < 0 ? -errno : 0;
			if (!rc && (fstat(fd, &st) < 0 || st.st_ino != in->ino)) {
				close(fd);
				rc = -ESTALE;
			}
			if (rc == -ENOENT)
				rc = -ESTALE;
			if (rc == -ESTALE && (tries || in->type == S_IFDIR ||
					      renew_name(fs, in, parent, pr.fd) != 0))
				rc = -ENOENT;
			if (!rc)
				rc = fd;
			sfs_stg_dir_put(fs, &pr);
		}
		sfs_inode_put(fs, &parent->base);
		free(name);
		name = NULL;
		if (rc != -ESTALE)
			return rc;
	}
	return -ENOENT;
}

/*
 * A file whose name we knew was unlinked, but it has other links: find one
 * in the same directory (zarr 3 and `ln a b; rm b` leave such files).
 */
static int renew_lost_name(struct sfs_fs *fs, struct sfs_stg *in)
{
	struct sfs_stg_dref pr;
	struct sfs_stg *parent;
	int rc = -ENOENT;

	pthread_mutex_lock(&fs->lock);
	/* out of the table: its last name went, there is no other */
	parent = in->name || in->type == S_IFDIR || !(in->base.flags & SFS_IN_TABLE) ? NULL
										     : in->parent;
	if (parent)
		sfs_inode_hold_locked(&parent->base);
	pthread_mutex_unlock(&fs->lock);
	if (!parent)
		return -ENOENT;
	if (sfs_stg_dir_get(fs, parent, &pr) == 0) {
		rc = renew_name(fs, in, parent, pr.fd);
		sfs_stg_dir_put(fs, &pr);
	}
	sfs_inode_put(fs, &parent->base);
	return rc;
}

static int rel_of(struct sfs_fs *fs, struct sfs_stg *in, char **out);

int sfs_stg_rel(struct sfs_fs *fs, struct sfs_stg *in, char **out)
{
	int rc = rel_of(fs, in, out);

	if (rc == -ENOENT && sfs_inode_view(&in->base) == &sfs_view_staging &&
	    renew_lost_name(fs, in) == 0)
		rc = rel_of(fs, in, out);
	return rc;
}

static int rel_of(struct sfs_fs *fs, struct sfs_stg *in, char **out)
{
	size_t len = 0;
	char *s;
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
	for (struct sfs_stg *p = in; p != fs->staging; p = p->parent) {
		if (!p || !p->name || p->base.view != &sfs_view_staging) {
			rc = -ENOENT;
			goto out;
		}
		len += strlen(p->name) + 1;
	}
	s = malloc(len ? len : 1);
	if (!s) {
		rc = -ENOMEM;
		goto out;
	}
	s[len ? len - 1 : 0] = '\0';
	size_t end = len ? len - 1 : 0;
	for (struct sfs_stg *p = in; p != fs->staging; p = p->parent) {
		size_t n = strlen(p->name);
		end -= n;
		memcpy(s + end, p->name, n);
		if (end) {
			end--;
			s[end] = '/';
		}
	}
	*out = s;
out:
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

/* ---- interning ---- */

/* Record that in is (dir, name) now; fs->lock held; NULL name keeps the old one on ENOMEM. */
static void set_place_locked(struct sfs_fs *fs, struct sfs_stg *in, struct sfs_stg *dir,
			     const char *name)
{
	if (in->parent != dir) {
		sfs_inode_hold_locked(&dir->base);
		if (in->parent)
			sfs_inode_put_locked(fs, &in->parent->base);
		in->parent = dir;
	}
	if (!in->name || strcmp(in->name, name) != 0) {
		char *nn = strdup(name);
		if (nn) {
			free(in->name);
			in->name = nn;
		}
	}
}

int sfs_stg_intern(struct sfs_fs *fs, struct sfs_stg *dir, int dirfd, const char *name,
		   const struct stat *st, struct sfs_stg **out)
{
	union {
		struct file_handle h;
		char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} u;
	struct sfs_stg *in;
	size_t hlen = 0;
	int mnt;

	pthread_mutex_lock(&fs->lock);
	in = sfs_stg_find_locked(fs, st->st_ino);
	if (in && in->type != (st->st_mode & S_IFMT)) {
		sfs_table_remove_locked(fs, &in->base); /* the number was reused behind our back */
		in = NULL;
	}
	if (in) {
		sfs_inode_lookup_locked(&in->base, 1);
		set_place_locked(fs, in, dir, name);
		pthread_mutex_unlock(&fs->lock);
		*out = in;
		return 0;
	}
	pthread_mutex_unlock(&fs->lock);

	if (fs->use_handles) {
		u.h.handle_bytes = MAX_HANDLE_SZ;
		if (name_to_handle_at(dirfd, name, &u.h, &mnt, 0) == 0 && u.h.handle_bytes <= 255)
			hlen = u.h.handle_bytes;
	}
	struct sfs_stg *fresh = stg_alloc(hlen);
	if (!fresh)
		return -ENOMEM;
	fresh->ino = st->st_ino;
	fresh->base.hash = (uint64_t)st->st_ino;
	fresh->type = st->st_mode & S_IFMT;
	fresh->depth = dir->depth >= SFS_DEPTH_TABLE ? SFS_DEPTH_INSIDE : dir->depth + 1;
	if (hlen) {
		fresh->htype = u.h.handle_type;
		memcpy(fresh->handle, u.h.f_handle, hlen);
	}
	fresh->name = strdup(name);
	if (!fresh->name) {
		free(fresh);
		return -ENOMEM;
	}

	pthread_mutex_lock(&fs->lock);
	in = sfs_stg_find_locked(fs, st->st_ino); /* interned by another thread meanwhile? */
	if (in && in->type == fresh->type) {
		sfs_inode_lookup_locked(&in->base, 1);
		set_place_locked(fs, in, dir, name);
		pthread_mutex_unlock(&fs->lock);
		free(fresh->name);
		free(fresh);
		*out = in;
		return 0;
	}
	if (in)
		sfs_table_remove_locked(fs, &in->base);
	int rc = sfs_table_insert_locked(fs, &fresh->base);
	if (rc) {
		pthread_mutex_unlock(&fs->lock);
		free(fresh->name);
		free(fresh);
		return rc;
	}
	fresh->parent = dir;
	sfs_inode_hold_locked(&dir->base);
	sfs_inode_lookup_locked(&fresh->base, 1);
	sfs_inode_count_locked(fs, 1);
	pthread_mutex_unlock(&fs->lock);
	*out = fresh;
	return 0;
}

/* The staging view's free(): fs->lock held. */
void sfs_stg_free_locked(struct sfs_fs *fs, struct sfs_inode *base)
{
	struct sfs_stg *in = sfs_stg(base);

	if (in->type == S_IFDIR)
		sfs_stg_dir_forget(fs, in);
	if (in->parent)
		sfs_inode_put_locked(fs, &in->parent->base);
	sfs_hjob_put(in->hjob);
	free(in->status);
	free(in->name);
	sfs_inode_count_locked(fs, -1);
	free(in);
}

void sfs_stg_unlinked(struct sfs_fs *fs, struct sfs_stg *dir, const char *name, ino_t ino,
		      nlink_t nlink_before)
{
	pthread_mutex_lock(&fs->lock);
	struct sfs_stg *in = sfs_stg_find_locked(fs, ino);
	if (in && in->parent == dir && in->name && strcmp(in->name, name) == 0) {
		free(in->name);
		in->name = NULL; /* another link (if any) is found again by handle or search */
	}
	/* the number may be given to a new file: nothing may find this inode by it */
	if (in && (nlink_before <= 1 || in->type == S_IFDIR))
		sfs_table_remove_locked(fs, &in->base);
	pthread_mutex_unlock(&fs->lock);
}

void sfs_stg_moved(struct sfs_fs *fs, struct sfs_stg *dir, const char *name, ino_t ino,
		   struct sfs_stg *newdir, const char *newname, ino_t other, int exchange)
{
	pthread_mutex_lock(&fs->lock);
	struct sfs_stg *in = sfs_stg_find_locked(fs, ino);
	struct sfs_stg *o = exchange && other ? sfs_stg_find_locked(fs, other) : NULL;
	if (in)
		set_place_locked(fs, in, newdir, newname);
	if (o)
		set_place_locked(fs, o, dir, name);
	pthread_mutex_unlock(&fs->lock);
}

void sfs_stg_gone_locked(struct sfs_fs *fs, struct sfs_stg *in)
{
	in->committing = 0;
	sfs_table_remove_locked(fs, &in->base);
	sfs_inode_set_view(&in->base, &sfs_view_gone);
}

int sfs_stg_idle_locked(const struct sfs_stg *in)
{
	if (!in->name || !in->parent || in->opens || in->writers || in->committing ||
	    !in->base.nlookup || (in->type == S_IFDIR && in->base.refs))
		return 0;
	pthread_mutex_t *l = sfs_inode_stripe(in);
	pthread_mutex_lock(l);
	int idle = !in->status && !sfs_hjob_pending(in->hjob);
	pthread_mutex_unlock(l);
	return idle;
}

/* ---- status and hash job ---- */

void sfs_stg_set_status(struct sfs_stg *in, const char *fmt, ...)
{
	char *s = NULL;

	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		if (vasprintf(&s, fmt, ap) < 0)
			s = NULL;
		va_end(ap);
	}
	pthread_mutex_t *l = sfs_inode_stripe(in);
	pthread_mutex_lock(l);
	free(in->status);
	in->status = s;
	pthread_mutex_unlock(l);
}

void sfs_stg_status(struct sfs_stg *in, char *buf, size_t len)
{
	pthread_mutex_t *l = sfs_inode_stripe(in);
	pthread_mutex_lock(l);
	snprintf(buf, len, "%s", in->status ? in->status : "");
	pthread_mutex_unlock(l);
}

struct sfs_hjob *sfs_stg_hjob(struct sfs_stg *in)
{
	pthread_mutex_t *l = sfs_inode_stripe(in);
	pthread_mutex_lock(l);
	struct sfs_hjob *j = sfs_hjob_get(in->hjob);
	pthread_mutex_unlock(l);
	return j;
}

void sfs_stg_hjob_set(struct sfs_stg *in, struct sfs_hjob *j)
{
	pthread_mutex_t *l = sfs_inode_stripe(in);
	pthread_mutex_lock(l);
	struct sfs_hjob *old = in->hjob;
	in->hjob = j;
	in->have_md5 = 0;
	pthread_mutex_unlock(l);
	sfs_hjob_invalidate(old);
	sfs_hjob_put(old);
}

static int from_hex(const char *hex, unsigned char md[16])
{
	for (int i = 0; i < 16; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		md[i] = (unsigned char)v;
	}
	return 0;
}

void sfs_stg_hjob_done(struct sfs_stg *in)
{
	pthread_mutex_t *l = sfs_inode_stripe(in);
	struct sfs_hjob *old = NULL;
	char hex[33];

	pthread_mutex_lock(l);
	if (in->hjob && sfs_hjob_peek(in->hjob, hex) == 0 && from_hex(hex, in->md5) == 0) {
		old = in->hjob;
		in->hjob = NULL;
		in->have_md5 = 1;
	}
	pthread_mutex_unlock(l);
	sfs_hjob_put(old); /* finished: dropping it changes nothing */
}

int sfs_stg_digest(struct sfs_stg *in, char hex[33])
{
	pthread_mutex_t *l = sfs_inode_stripe(in);

	pthread_mutex_lock(l);
	if (in->have_md5) {
		sfs_md5_hex(in->md5, hex);
		pthread_mutex_unlock(l);
		return 0;
	}
	struct sfs_hjob *j = sfs_hjob_get(in->hjob);
	pthread_mutex_unlock(l);
	int rc = sfs_hjob_result(j, hex);
	sfs_hjob_put(j);
	return rc;
}

/* ---- set-up ---- */

int sfs_stg_init(struct sfs_fs *fs)
{
	struct stat st;
	struct rlimit rl;

	pthread_mutex_init(&fs->dlock, NULL);
	fs->staging_fd = sfs_backend_staging_dir(fs->be);
	if (fs->staging_fd < 0)
		return fs->staging_fd;
	if (fstat(fs->staging_fd, &st) < 0)
		return -errno;
	fs->staging_dev = st.st_dev;

	/* a descriptor per cached directory: an eighth of the limit, 16..256 */
	size_t lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (size_t)rl.rlim_cur : 1024;
	fs->dcache_max = lim / 8 < 16 ? 16 : lim / 8 > 256 ? 256 : lim / 8;
	fs->dcache = calloc(fs->dcache_max, sizeof(*fs->dcache));
	if (!fs->dcache)
		return -ENOMEM;
	for (size_t i = 0; i < fs->dcache_max; i++)
		fs->dcache[i].fd = -1;

	/* file handles: asked for (1), refused (0), or where they work (-1) */
	int want = fs->cfg->inode_handles;
	fs->use_handles = 0;
	if (want != 0) {
		union {
			struct file_handle h;
			char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
		} u;
		int mnt, fd = -1;
		u.h.handle_bytes = MAX_HANDLE_SZ;
		int rc = name_to_handle_at(fs->staging_fd, "", &u.h, &mnt, AT_EMPTY_PATH) < 0
				 ? -errno
				 : 0;
		if (!rc) {
			fd = open_by_handle_at(fs->staging_fd, &u.h, O_PATH | O_CLOEXEC);
			rc = fd < 0 ? -errno : 0;
		}
		if (fd >= 0)
			close(fd);
		if (!rc)
			fs->use_handles = 1;
		else if (want == 1)
			return sfs_err(rc,
				       "inode_handles: the staging directory gives no usable "
				       "file handles: %s",
				       strerror(-rc));
		else
			sfs_log(LOG_INFO,
				"no kernel file handles (%s): staging inodes are found by name",
				strerror(-rc));
	}

	struct sfs_stg *s = stg_alloc(0);
	if (!s)
		return -ENOMEM;
	s->ino = st.st_ino;
	s->base.hash = (uint64_t)st.st_ino;
	s->type = S_IFDIR;
	s->depth = SFS_DEPTH_ROOT;
	s->base.flags = SFS_IN_PINNED;
	fs->staging = s;
	pthread_mutex_lock(&fs->lock);
	int rc = sfs_table_insert_locked(fs, &s->base);
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

void sfs_stg_release(struct sfs_fs *fs)
{
	if (fs->dcache) {
		for (size_t i = 0; i < fs->dcache_max; i++)
			if (fs->dcache[i].in) {
				fs->dcache[i].in->dslot = -1;
				close(fs->dcache[i].fd);
			}
		free(fs->dcache);
		fs->dcache = NULL;
	}
	if (fs->staging_fd >= 0)
		close(fs->staging_fd);
	fs->staging_fd = -1;
	pthread_mutex_destroy(&fs->dlock);
}
