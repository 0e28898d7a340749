/*
 * fs/staging_sync.c - keeping the store's copy of staging in step, for a
 * backend whose staging dir only caches the store (SFS_BCAP_STAGING_CACHE):
 * a written file is stored when it is closed (FLUSH) or fsynced, renames,
 * links and removals are mirrored, and the index keeps a row per stored file
 * (size, mode, mtime, user xattrs) so that a mount knows what to upload again
 * and what to restore into a lost cache.
 *
 * With the file backend the staging dir is the store: all of this is off.
 */
#include "fs/staging.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/cache.h"
#include "fs/uploads.h"

int sfs_stg_uploads(struct sfs_fs *fs)
{
	return (fs->be->ops->caps & SFS_BCAP_STAGING_CACHE) != 0;
}

static int64_t mtime_ns_of(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
}

/* ---- the journal the backend asks at mount ---- */

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
		if (strncmp(p, "user.", 5) != 0 || strncmp(p, SFS_XATTR_OURS, 13) == 0)
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

void sfs_stg_sync_init(struct sfs_fs *fs)
{
	fs->journal.arg = fs;
	fs->journal.stored = journal_stored;
	fs->journal.record = journal_record;
	fs->journal.restore = journal_restore;
	if (fs->be->ops->set_journal)
		fs->be->ops->set_journal(fs->be, &fs->journal);
}

/* ---- what the staging view tells the store ---- */

/*
 * 1 when the store holds rel's bytes as fd (stat st) has them: the index
 * records them stored at this size and mtime, or the file is evicted (its
 * bytes are in the store only).
 */
static int stored_as_is(struct sfs_fs *fs, const char *rel, int fd, const struct stat *st)
{
	return journal_stored(fs, rel, st) == 1 || fgetxattr(fd, SFS_XATTR_EVICTED, NULL, 0) >= 0;
}

/* Upload rel (fd, stat st) and record it; errors as close() reports them. */
static int store_rel(struct sfs_fs *fs, const char *rel, int fd, const struct stat *st, int durable)
{
	int rc = sfs_backend_staged_sync(fs->be, rel, fd, durable);

	if (rc) {
		sfs_log(LOG_ERR, "cannot store staged '%s': %s", rel, strerror(-rc));
		/*
		 * SPEC §7: a refused or failed upload is an I/O error of this file,
		 * not a permission problem of the caller; ENOSPC/EDQUOT it can act on,
		 * ENAMETOOLONG (a path over S3's 1024-byte keys) too.
		 */
		if (rc != -ENOSPC && rc != -EDQUOT && rc != -ENOMEM && rc != -ENAMETOOLONG)
			rc = -EIO;
		return rc;
	}
	journal_record(fs, rel, fd, st);
	sfs_cache_stored(fs, fd);
	return 0;
}

int sfs_stg_sync_rel(struct sfs_fs *fs, const char *rel, int fd, const struct stat *st)
{
	return stored_as_is(fs, rel, fd, st) ? 0 : store_rel(fs, rel, fd, st, 0);
}

int sfs_stg_sync_store(struct sfs_fs *fs, struct sfs_stg *in, int fd, int durable)
{
	char *rel = NULL;
	struct stat st;
	/* stat before the bytes are read: a later write makes the row differ (upload again) */
	int rc = fstat(fd, &st) < 0 ? -errno : 0;

	if (!rc && st.st_nlink == 0)
		return 0; /* unlinked while open: nothing of it is left to store */
	if (!rc)
		rc = sfs_stg_rel(fs, in, &rel);
	if (!rc && !durable && sfs_uploads_on(fs)) {
		/* write-back: safe in the local cache now, in the bucket after upload_delay */
		rc = fdatasync(fd) < 0 ? -errno : sfs_uploads_queue(fs, rel);
		if (rc)
			sfs_log(LOG_ERR, "cannot keep staged '%s' for its upload: %s", rel,
				strerror(-rc));
	} else if (!rc) {
		(void)sfs_uploads_take(fs, rel); /* fsync: it is uploaded here and now */
		rc = store_rel(fs, rel, fd, &st, durable);
	}
	free(rel);
	return rc;
}

void sfs_stg_sync_committing(struct sfs_fs *fs, const char *rel)
{
	(void)sfs_uploads_take(fs, rel);
}

void sfs_stg_sync_requeue(struct sfs_fs *fs, const char *rel)
{
	/* a file the store holds as it is costs the worker a lookup, not an upload */
	if (sfs_uploads_on(fs) && sfs_uploads_queue(fs, rel))
		sfs_log(LOG_ERR, "cannot queue staged '%s' for its upload again", rel);
}

void sfs_stg_sync_meta(struct sfs_fs *fs, struct sfs_stg *in)
{
	char *rel = NULL;
	struct stat st;

	if (!sfs_stg_uploads(fs) || in->type != S_IFREG || sfs_stg_rel(fs, in, &rel))
		return;
	int fd = sfs_stg_open(fs, in, O_RDONLY);
	if (fd >= 0 && fstat(fd, &st) == 0)
		journal_write(fs, rel, fd, &st, 1);
	else
		sfs_log(LOG_WARNING, "index: cannot record mode/xattrs of 'staging/%s': %s", rel,
			strerror(fd < 0 ? -fd : errno));
	if (fd >= 0)
		close(fd);
	free(rel);
}

/* rel of name in dir (malloc'd), or NULL */
static char *rel_in(struct sfs_fs *fs, struct sfs_stg *dir, const char *name)
{
	char *d = NULL, *r;

	if (sfs_stg_rel(fs, dir, &d))
		return NULL;
	r = sfs_join(d, name);
	free(d);
	return r;
}

void sfs_stg_sync_unlinked(struct sfs_fs *fs, struct sfs_stg *dir, const char *name, int is_dir)
{
	if (!sfs_stg_uploads(fs))
		return;
	char *rel = rel_in(fs, dir, name);
	if (!rel)
		return;
	sfs_uploads_unlinked(fs, rel, is_dir);
	int rc = sfs_index_staged_forget(fs->ix, rel);
	if (rc)
		sfs_log(LOG_WARNING, "index: cannot forget 'staging/%s': %s", rel, strerror(-rc));
	rc = sfs_backend_staged_unlink(fs->be, rel, is_dir);
	if (rc && rc != -ENOENT)
		sfs_log(LOG_WARNING, "cannot remove staged '%s' from the store: %s", rel,
			strerror(-rc));
	free(rel);
}

void sfs_stg_sync_renamed(struct sfs_fs *fs, struct sfs_stg *dir, const char *name,
			  struct sfs_stg *newdir, const char *newname)
{
	if (!sfs_stg_uploads(fs))
		return;
	char *fa = rel_in(fs, dir, name), *fb = rel_in(fs, newdir, newname);
	if (fa && fb) {
		/* the local rename is done: what is at fb now is what was renamed */
		struct stat st;
		int is_dir = fstatat(fs->staging_fd, fb, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			     S_ISDIR(st.st_mode);
		/*
		 * A queued file never stored (no row): its bytes go up under the new
		 * name when due; the store has nothing to move (zarr's temporary
		 * chunk names cost no request at all).
		 */
		struct sfs_staged r;
		int queued = sfs_uploads_renamed(fs, fa, fb, is_dir);
		int got = queued && !is_dir ? sfs_index_staged_get(fs->ix, fa, &r) : 1;
		int unstored = got == -ENOENT;
		if (got == 0)
			sfs_staged_release(&r);
		int rc = 0;
		if (!unstored) {
			rc = sfs_index_staged_move(fs->ix, fa, fb);
		} else if (sfs_index_staged_get(fs->ix, fb, &r) == 0) {
			/* fa has no row to move; fb's (replaced) goes: a write only then */
			sfs_staged_release(&r);
			rc = sfs_index_staged_forget(fs->ix, fb);
		}
		if (rc)
			sfs_log(LOG_WARNING, "index: cannot move 'staging/%s': %s", fa,
				strerror(-rc));
		if (!unstored && sfs_backend_staged_rename(fs->be, fa, fb) < 0)
			sfs_log(LOG_WARNING, "cannot rename staged '%s' in the store", fa);
	}
	free(fa);
	free(fb);
}

int sfs_stg_sync_linked(struct sfs_fs *fs, struct sfs_stg *in, struct sfs_stg *dir,
			const char *name)
{
	/* the store has no links: the new name is an object of its own */
	char *rel = rel_in(fs, dir, name);
	struct stat st;
	int fd = -1, rc = rel ? 0 : -ENOMEM;

	if (!rc)
		rc = sfs_cache_lock_present(fs, in, 0);
	if (rc) {
		free(rel);
		return rc;
	}
	fd = sfs_stg_open(fs, in, O_RDONLY);
	rc = fd < 0 ? fd : fstat(fd, &st) < 0 ? -errno : 0;
	if (!rc && sfs_uploads_on(fs)) {
		rc = sfs_uploads_queue(fs, rel); /* write-back: uploaded when due */
	} else if (!rc) {
		rc = sfs_backend_staged_sync(fs->be, rel, fd, 0);
		if (!rc)
			journal_record(fs, rel, fd, &st);
	}
	sfs_cache_unlock(fs);
	if (rc)
		sfs_log(LOG_ERR, "cannot store staged link '%s': %s", rel, strerror(-rc));
	if (fd >= 0)
		close(fd);
	free(rel);
	return rc;
}
