/* fs/commit_walk.c - the entry a commit takes (see commit_walk.h). */
#include "fs/commit_walk.h"
#include "fs/cache.h"
#include "fs/hasher.h"
#include "fs/staging.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common/fault.h"
#include "common/log.h"

#define CW_BATCH 4096

static int cw_err(struct walk *w, int rc, const char *what)
{
	if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	return sfs_err(rc == SQLITE_FULL    ? -ENOSPC
		       : rc == SQLITE_NOMEM ? -ENOMEM
					    : -EIO,
		       "commit: the walk's scratch database: %s: %s", what,
		       w->db ? sqlite3_errmsg(w->db) : sqlite3_errstr(rc));
}

int sfs_cw_open(struct walk *w)
{
	int rc;

	memset(w, 0, sizeof(*w));
	/* "": a private temporary database on disk, deleted at close */
	rc = sqlite3_open_v2("", &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(w->db,
				  "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
				  "PRAGMA cache_size=-1024; PRAGMA temp_store=FILE;"
				  "CREATE TABLE e(id INTEGER PRIMARY KEY, parent INTEGER NOT NULL,"
				  " name TEXT NOT NULL, rel TEXT NOT NULL, is_dir INTEGER NOT NULL,"
				  " size INTEGER NOT NULL, dev INTEGER, ino INTEGER,"
				  " shared INTEGER NOT NULL, md5 TEXT); BEGIN",
				  NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(w->db,
					"INSERT INTO e(parent,name,rel,is_dir,size,dev,ino,shared) "
					"VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
					-1, &w->ins, NULL);
	if (rc != SQLITE_OK) {
		int e = cw_err(w, rc, "create");
		sfs_cw_release(w);
		return e;
	}
	return 0;
}

void sfs_cw_release(struct walk *w)
{
	sqlite3_finalize(w->ins);
	sqlite3_close(w->db);
	w->ins = NULL;
	w->db = NULL;
}

int sfs_cw_add(struct walk *w, int64_t parent, const char *name, const char *rel,
	       const struct stat *st, int shared, int64_t *id)
{
	sqlite3_stmt *s = w->ins;
	int is_dir = S_ISDIR(st->st_mode);
	uint64_t size = is_dir ? 0 : (uint64_t)st->st_size;

	sqlite3_reset(s);
	sqlite3_bind_int64(s, 1, parent);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, rel, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, is_dir);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)size);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)st->st_dev);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)st->st_ino);
	sqlite3_bind_int(s, 8, shared);
	int rc = cw_err(w, sqlite3_step(s), "add");
	sqlite3_reset(s);
	if (rc)
		return rc;
	if (id)
		*id = sqlite3_last_insert_rowid(w->db);
	w->n++;
	if (!is_dir) {
		w->bytes += size;
		w->files++;
	}
	return 0;
}

int sfs_cw_done(struct walk *w)
{
	return cw_err(w,
		      sqlite3_exec(w->db, "COMMIT; CREATE INDEX e_tree ON e(parent, is_dir, name);",
				   NULL, NULL, NULL),
		      "index");
}

/* Write back the batch's dirty rows. */
static int cw_write_back(struct walk *w, struct centry *v, size_t n)
{
	sqlite3_stmt *s = NULL;
	int rc = cw_err(w, sqlite3_exec(w->db, "BEGIN", NULL, NULL, NULL), "begin");

	if (!rc)
		rc = cw_err(w,
			    sqlite3_prepare_v2(w->db,
					       "UPDATE e SET dev=?1, ino=?2, md5=?3 WHERE id=?4",
					       -1, &s, NULL),
			    "prepare");
	for (size_t i = 0; !rc && i < n; i++) {
		if (!v[i].dirty)
			continue;
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, (sqlite3_int64)v[i].dev);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)v[i].ino);
		if (v[i].md5[0])
			sqlite3_bind_text(s, 3, v[i].md5, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(s, 3);
		sqlite3_bind_int64(s, 4, v[i].id);
		rc = cw_err(w, sqlite3_step(s), "update");
	}
	sqlite3_finalize(s);
	int erc = cw_err(w, sqlite3_exec(w->db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL),
			 "commit");
	return rc ? rc : erc;
}

int sfs_cw_each(struct walk *w, int which, int (*cb)(void *arg, struct centry *e), void *arg)
{
	static const char *const sql[] = {
		"SELECT id,rel,dev,ino,size,is_dir,shared,md5 FROM e WHERE id>?1 ORDER BY id "
		"LIMIT ?2",
		"SELECT id,rel,dev,ino,size,is_dir,shared,md5 FROM e WHERE id>?1 AND is_dir=0 "
		"ORDER BY id LIMIT ?2",
		"SELECT id,rel,dev,ino,size,is_dir,shared,md5 FROM e WHERE id>?1 AND shared=1 "
		"ORDER BY id LIMIT ?2",
	};
	struct centry *v = calloc(CW_BATCH, sizeof(*v));
	sqlite3_stmt *s = NULL;
	int64_t last = 0;
	int rc = v ? 0 : -ENOMEM;

	if (!rc)
		rc = cw_err(w, sqlite3_prepare_v2(w->db, sql[which], -1, &s, NULL), "prepare");
	while (!rc) {
		size_t n = 0;
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, last);
		sqlite3_bind_int(s, 2, CW_BATCH);
		int r;
		while (n < CW_BATCH && (r = sqlite3_step(s)) == SQLITE_ROW) {
			struct centry *e = &v[n];
			const char *md5 = (const char *)sqlite3_column_text(s, 7);
			memset(e, 0, sizeof(*e));
			e->id = sqlite3_column_int64(s, 0);
			e->rel = strdup((const char *)sqlite3_column_text(s, 1));
			e->dev = (dev_t)sqlite3_column_int64(s, 2);
			e->ino = (ino_t)sqlite3_column_int64(s, 3);
			e->size = (uint64_t)sqlite3_column_int64(s, 4);
			e->is_dir = sqlite3_column_int(s, 5);
			e->shared = sqlite3_column_int(s, 6);
			if (md5 && strlen(md5) == 32)
				memcpy(e->md5, md5, 33);
			n++;
			if (!e->rel) {
				rc = -ENOMEM;
				break;
			}
		}
		sqlite3_reset(s);
		for (size_t i = 0; !rc && i < n; i++)
			rc = cb(arg, &v[i]);
		int wrc = n ? cw_write_back(w, v, n) : 0;
		if (!rc)
			rc = wrc;
		if (n)
			last = v[n - 1].id;
		for (size_t i = 0; i < n; i++)
			free(v[i].rel);
		if (n < CW_BATCH)
			break;
	}
	sqlite3_finalize(s);
	free(v);
	return rc;
}

/*
 * A file with other names could be changed through them after it became
 * canonical: give the committed name its own copy first.
 */
int sfs_cw_unshare(int dirfd, const char *name, const struct stat *st)
{
	char tmp[64];
	int in = -1, out = -1, rc = 0;

	static unsigned counter;
	snprintf(tmp, sizeof(tmp), ".stagefs-unshare.%ld.%u", (long)getpid(),
		 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
	in = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st->st_mode & 07777);
	if (out < 0) {
		rc = -errno;
		goto out;
	}
	for (;;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
	}
	if (!rc && fsync(out) < 0)
		rc = -errno;
	if (!rc && renameat(dirfd, tmp, dirfd, name) < 0)
		rc = -errno;
out:
	if (out >= 0) {
		close(out);
		if (rc)
			(void)unlinkat(dirfd, tmp, 0);
	}
	close(in);
	return rc;
}

int sfs_cw_tree(struct walk *w, int dirfd, const char *prefix, int64_t parent, int depth)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while (!rc && (de = readdir(d)) != NULL) {
		struct stat st;
		char *rel = NULL;
		int64_t id = 0;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (asprintf(&rel, "%s%s%s", prefix, prefix[0] ? "/" : "", de->d_name) < 0) {
			rc = -ENOMEM;
			break;
		}
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
		} else if (S_ISREG(st.st_mode)) {
			rc = sfs_cw_add(w, parent, de->d_name, rel, &st, st.st_nlink > 1, NULL);
		} else if (S_ISDIR(st.st_mode)) {
			if (depth > 256) {
				rc = -ELOOP;
			} else {
				rc = sfs_cw_add(w, parent, de->d_name, rel, &st, 0, &id);
				int sub =
					rc ? -1
					   : openat(fd, de->d_name,
						    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (!rc && sub < 0)
					rc = -errno;
				if (!rc) {
					rc = sfs_cw_tree(w, sub, rel, id, depth + 1);
					close(sub);
				}
			}
		} else {
			snprintf(w->reason, sizeof(w->reason),
				 "'%s' is a %s; only regular files "
				 "and directories commit",
				 rel, S_ISLNK(st.st_mode) ? "symlink" : "special file");
			rc = -EINVAL;
		}
		free(rel);
	}
	closedir(d);
	return rc;
}

/* The table's inode of a walked entry, or NULL; fs->lock held. */
struct sfs_stg *sfs_cw_find_locked(struct sfs_fs *fs, const struct centry *e)
{
	return e->dev == fs->staging_dev ? sfs_stg_find_locked(fs, e->ino) : NULL;
}

/* The digest computed while the file was written, if this mount saw all of it. */
static int digest_from_writes(struct sfs_fs *fs, struct sfs_stg *entry, struct centry *e)
{
	pthread_mutex_lock(&fs->lock);
	struct sfs_stg *in = e->rel[0] ? sfs_cw_find_locked(fs, e) : entry;
	if (in)
		sfs_inode_hold_locked(&in->base);
	pthread_mutex_unlock(&fs->lock);
	if (!in)
		return -ENODATA;
	int rc = sfs_stg_digest(in, e->md5);
	sfs_inode_put(fs, &in->base);
	return rc;
}

char *sfs_cw_path(const char *entry_rel, const struct centry *e)
{
	char *full = NULL;

	return asprintf(&full, "%s%s%s", entry_rel, e->rel[0] ? "/" : "", e->rel) < 0 ? NULL : full;
}

/* MD5 of the staged file at dirfd/rel: from the write-time digest when it still holds. */
int sfs_cw_digest(struct sfs_fs *fs, struct sfs_stg *in, const char *entry_rel, int efd, int rootfd,
		  struct centry *e, uint64_t *done, uint64_t total)
{
	char hint[80];
	int fd;

	if (e->rel[0]) {
		fd = openat(rootfd, e->rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		fd = fd < 0 ? -errno : fd;
	} else if (efd >= 0) {
		/* the entry's own copy (unshared): reopen its O_PATH fd for reading */
		snprintf(hint, sizeof(hint), "/proc/self/fd/%d", efd);
		fd = open(hint, O_RDONLY | O_CLOEXEC);
		fd = fd < 0 ? -errno : fd;
	} else {
		fd = sfs_stg_open(fs, in, O_RDONLY); /* the entry itself is the file */
	}
	struct stat st;
	int rc = 0;

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!e->shared && (uint64_t)st.st_size == e->size && digest_from_writes(fs, in, e) == 0) {
		*done += e->size;
		goto out;
	}
	ssize_t hn = fgetxattr(fd, SFS_XATTR_HINT, hint, sizeof(hint) - 1);
	if (hn <= 33 && sfs_cache_active(fs) && fgetxattr(fd, SFS_XATTR_EVICTED, NULL, 0) >= 0) {
		/* the bytes are in the store only: bring them back to read them */
		char *full = sfs_cw_path(entry_rel, e);
		if (!full) {
			rc = -ENOMEM;
			goto out;
		}
		rc = sfs_cache_present_rel(fs, full);
		free(full);
		if (rc)
			goto out;
	}
	if (hn > 33) {
		hint[hn] = '\0';
		unsigned long long sz = strtoull(hint + 33, NULL, 10);
		if (hint[32] == ' ' && sz == (unsigned long long)st.st_size) {
			memcpy(e->md5, hint, 32);
			e->md5[32] = '\0';
			*done += e->size;
			goto out;
		}
	}
	struct sfs_md5 m;
	unsigned char md[16];
	size_t bufsz = 1 << 20;
	char *buf = malloc(bufsz);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = sfs_md5_init(&m);
	for (off_t off = 0; !rc;) {
		ssize_t n = pread(fd, buf, bufsz, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		sfs_md5_update(&m, buf, (size_t)n);
		off += n;
		*done += (uint64_t)n;
		if (((uint64_t)off & ((64u << 20) - 1)) == 0)
			sfs_stg_set_status(in, "committing %llu/%llu", (unsigned long long)*done,
					   (unsigned long long)total);
	}
	free(buf);
	if (!rc) {
		sfs_md5_final(&m, md);
		sfs_md5_hex(md, e->md5);
	} else {
		sfs_md5_release(&m);
	}
out:
	/* the promotion puts these bytes (s3: from the cache unless stored as they are) */
	if (!rc) {
		char *full = sfs_cw_path(entry_rel, e);
		if (!full)
			rc = -ENOMEM;
		else
			sfs_stg_sync_committing(fs, full);
		free(full);
	}
	close(fd);
	return rc;
}

struct mark_ctx {
	struct sfs_fs *fs;
	int v;
	char *who;
	size_t wholen;
};

/*
 * Each inode is checked and marked under fs->lock: a writer that opens a file
 * after its mark is refused (it sees committing), one that opened it before
 * is found here.
 */
static int mark_cb(void *arg, struct centry *e)
{
	struct mark_ctx *m = arg;
	struct sfs_stg *in = sfs_cw_find_locked(m->fs, e);

	if (!in)
		return 0;
	if (m->v && in->writers > 0) {
		snprintf(m->who, m->wholen, "'%s'", e->rel);
		return -EBUSY;
	}
	in->committing = m->v;
	return 0;
}

/* cb for each entry under fs->lock (never held across sfs_cw_each's reads). */
struct locked_ctx {
	struct sfs_fs *fs;
	int (*cb)(void *arg, struct centry *e);
	void *arg;
};

static int locked_cb(void *arg, struct centry *e)
{
	struct locked_ctx *l = arg;

	pthread_mutex_lock(&l->fs->lock);
	int rc = l->cb(l->arg, e);
	pthread_mutex_unlock(&l->fs->lock);
	return rc;
}

int sfs_cw_mark(struct sfs_fs *fs, struct sfs_stg *entry, struct walk *w, int v, char *who,
		size_t wholen)
{
	struct mark_ctx m = {fs, v, who, wholen};
	struct locked_ctx l = {fs, mark_cb, &m};
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
	if (v && entry->writers > 0) {
		rc = -EBUSY;
		snprintf(who, wholen, "the entry");
	}
	if (!rc && v && sfs_inode_view(&entry->base) != &sfs_view_staging)
		rc = -ENOENT; /* committed meanwhile */
	if (!rc)
		entry->committing = v;
	pthread_mutex_unlock(&fs->lock);
	if (rc)
		return rc;
	rc = sfs_cw_each(w, SFS_CW_ALL, locked_cb, &l);
	if (rc && v) {
		/* a file is being written: take back what was marked */
		char ignored[8];
		struct mark_ctx u = {fs, 0, ignored, sizeof(ignored)};
		struct locked_ctx ul = {fs, mark_cb, &u};
		if (sfs_cw_each(w, SFS_CW_ALL, locked_cb, &ul) != 0)
			sfs_log(LOG_WARNING, "commit: cannot unmark every inode it marked");
		pthread_mutex_lock(&fs->lock);
		entry->committing = 0;
		pthread_mutex_unlock(&fs->lock);
	}
	return rc;
}

struct gone_ctx {
	struct sfs_fs *fs;
	struct sfs_stg *entry;
};

static int gone_cb(void *arg, struct centry *e)
{
	struct gone_ctx *g = arg;
	struct sfs_stg *in = sfs_cw_find_locked(g->fs, e);

	if (in && in != g->entry)
		sfs_stg_gone_locked(g->fs, in);
	return 0;
}

/* The entry and everything below it left staging: later ops on their inodes fail ENOENT. */
void sfs_cw_gone(struct sfs_fs *fs, struct sfs_stg *entry, struct walk *w)
{
	struct gone_ctx g = {fs, entry};
	struct locked_ctx l = {fs, gone_cb, &g};

	if (sfs_cw_each(w, SFS_CW_ALL, locked_cb, &l) != 0)
		sfs_log(LOG_WARNING, "commit: cannot switch every committed inode to gone");
	if (entry) {
		pthread_mutex_lock(&fs->lock);
		sfs_stg_gone_locked(fs, entry);
		pthread_mutex_unlock(&fs->lock);
	}
}

/* ---- the zarr checksum, read from the walk one directory at a time ---- */

static int cw_subdirs(void *arg, int64_t dir, int (*cb)(void *, int64_t, const char *), void *a)
{
	struct walk *w = arg;
	sqlite3_stmt *s = NULL;
	int rc = cw_err(w,
			sqlite3_prepare_v2(w->db,
					   "SELECT id, name FROM e WHERE parent=?1 AND is_dir=1 "
					   "ORDER BY name",
					   -1, &s, NULL),
			"prepare");
	int r = SQLITE_DONE;

	if (!rc)
		sqlite3_bind_int64(s, 1, dir);
	while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW)
		rc = cb(a, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1));
	if (!rc)
		rc = cw_err(w, r, "subdirectories");
	sqlite3_finalize(s);
	return rc;
}

static int cw_files(void *arg, int64_t dir,
		    int (*cb)(void *, const char *, const char[33], uint64_t), void *a)
{
	struct walk *w = arg;
	sqlite3_stmt *s = NULL;
	int rc = cw_err(w,
			sqlite3_prepare_v2(w->db,
					   "SELECT name, md5, size FROM e WHERE parent=?1 AND "
					   "is_dir=0 ORDER BY name",
					   -1, &s, NULL),
			"prepare");
	int r = SQLITE_DONE;

	if (!rc)
		sqlite3_bind_int64(s, 1, dir);
	while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW)
		rc = cb(a, (const char *)sqlite3_column_text(s, 0),
			(const char *)sqlite3_column_text(s, 1),
			(uint64_t)sqlite3_column_int64(s, 2));
	if (!rc)
		rc = cw_err(w, r, "files");
	sqlite3_finalize(s);
	return rc;
}

int sfs_cw_checksum(struct walk *w, char *out, size_t outlen)
{
	struct sfs_zarr_tree t = {cw_subdirs, cw_files, w};

	return sfs_zarr_checksum_tree(&t, 0, out, outlen);
}
