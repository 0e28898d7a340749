/*
 * backend/s3_staged.c - the s3 backend's staging side: the local staging
 * cache and the bucket's "_staging/" made to agree at mount (reconcile),
 * staged files uploaded, fetched, renamed and removed (the promotion to the
 * canonical key is in s3_promote.c).  See s3.c for the store layout.
 */
#include "backend/backend.h"
#include "backend/s3_priv.h"

#include "backend/s3_buf.h"
#include "backend/s3_client.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define S3_KEY_MAX 1024 /* bytes of an object key (AWS; MinIO and Ceph RGW agree) */

char *sfs_s3b_staged_key(struct s3_backend *s, const char *rel)
{
	struct sfs_buf b;

	sfs_buf_init(&b, 0);
	sfs_buf_adds(&b, s->prefix);
	sfs_buf_adds(&b, "_staging/");
	sfs_buf_adds(&b, rel);
	if (sfs_buf_err(&b)) {
		sfs_buf_release(&b);
		return NULL;
	}
	return sfs_buf_detach(&b);
}

/* ---- staging ---- */

/* ---- staging cache <-> bucket at mount ---- */

static int cmp_obj(const void *a, const void *b)
{
	return strcmp(((const struct obj *)a)->key, ((const struct obj *)b)->key);
}

struct reconcile {
	struct s3_backend *s;
	struct objlist remote; /* every staged object, sorted by key */
	char *seen;	       /* remote[i] has a local file */
	size_t base_len;       /* strlen of "<prefix>_staging/" */
	int uploaded, downloaded;
};

/*
 * A local staged file whose object is missing, of another size, or older was
 * written before a crash and never stored: store it now (resume).
 */
static int reconcile_file(struct reconcile *r, int dfd, const char *name, const char *rel,
			  const struct stat *st)
{
	char *key = sfs_s3b_staged_key(r->s, rel);
	int rc = 0;

	if (!key)
		return -ENOMEM;
	struct obj want = {.key = key};
	struct obj *o =
		r->remote.n ? bsearch(&want, r->remote.v, r->remote.n, sizeof(*o), cmp_obj) : NULL;
	int64_t mt = (int64_t)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
	if (o)
		r->seen[o - r->remote.v] = 1;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		free(key);
		return -errno;
	}
	if (fgetxattr(fd, SFS_XATTR_EVICTED, NULL, 0) >= 0) {
		close(fd); /* its bytes are in the store only: nothing to upload */
		free(key);
		return 0;
	}
	/*
	 * The index says exactly what was stored (size and mtime of the local file
	 * then).  Without a row (a store staged before rows existed, or a crash
	 * between the upload and its row) compare with the object instead:
	 * LastModified has 1 s resolution, so allow 2 s before calling the local
	 * copy newer.
	 */
	const struct sfs_staged_journal *j = r->s->journal;
	int known = j ? j->stored(j->arg, rel, st) : -ENOENT;
	int stale = known == -ENOENT ? !o || o->size != (uint64_t)st->st_size ||
					       mt > o->mtime_ns + 2000000000LL
				     : !o || known != 1;
	if (!stale && known == -ENOENT && j)
		j->record(j->arg, rel, fd, st); /* the object matches: exact from now on */
	if (stale) {
		rc = sfs_s3_put_fd(r->s->c, key, fd, (uint64_t)st->st_size, NULL, 0);
		if (rc == 0) {
			r->uploaded++;
			if (j)
				j->record(j->arg, rel, fd, st);
			sfs_log(LOG_NOTICE, "s3: stored staged '%s' that was not uploaded before",
				rel);
		}
	}
	close(fd);
	free(key);
	return rc;
}

static int reconcile_cb(void *arg, int dirfd, const char *name, const char *rel,
			const struct stat *st)
{
	return S_ISREG(st->st_mode) ? reconcile_file(arg, dirfd, name, rel, st) : 0;
}

/* A key suffix we may turn into a local path: no empty, "." or ".." segment. */
static int safe_rel(const char *rel)
{
	if (!rel[0])
		return 0;
	for (const char *p = rel; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p += n;
		if (*p == '/')
			p++;
	}
	return 1;
}

/* GET object key (size bytes) into fd from offset 0. */
static int fetch_into(struct s3_backend *s, const char *key, uint64_t size, int fd)
{
	const size_t chunk = 8u << 20;
	char *buf = malloc(chunk);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t off = 0; !rc && off < size;) {
		ssize_t n = sfs_s3_get_range(s->c, key, off, buf,
					     size - off < chunk ? (size_t)(size - off) : chunk);
		if (n <= 0) {
			rc = n < 0 ? (int)n : -EIO;
			break;
		}
		for (ssize_t w = 0; !rc && w < n;) {
			ssize_t k =
				pwrite(fd, buf + w, (size_t)(n - w), (off_t)(off + (uint64_t)w));
			if (k < 0)
				rc = -errno;
			else
				w += k;
		}
		off += (uint64_t)n;
	}
	free(buf);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	return rc;
}

/* A staged object with no local copy (another host, a lost cache): fetch it. */
static int download(struct s3_backend *s, const struct obj *o, const char *rel)
{
	char *path = sfs_s3b_join(s->staging_dir, "/", rel), *tmp = NULL;
	int fd = -1, rc = 0;

	if (!path || asprintf(&tmp, "%s.stagefs-download", path) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	*strrchr(path, '/') = '\0';
	rc = sfs_mkdir_p(path, 0755, 1);
	*(path + strlen(path)) = '/';
	if (rc)
		goto out;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	rc = fetch_into(s, o->key, o->size, fd);
	/* the object's time, or what the index recorded (mode, xattrs, mtime) */
	struct timespec ts[2] = {
		{.tv_nsec = UTIME_OMIT},
		{.tv_sec = o->mtime_ns / 1000000000LL, .tv_nsec = o->mtime_ns % 1000000000LL}};
	if (!rc && o->mtime_ns)
		(void)futimens(fd, ts);
	const struct sfs_staged_journal *j = s->journal;
	struct stat dst;
	if (!rc && j) {
		j->restore(j->arg, rel, fd);
		if (fstat(fd, &dst) == 0)
			j->record(j->arg, rel, fd, &dst); /* the local copy is the object */
	}
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
out:
	if (fd >= 0) {
		close(fd);
		if (rc)
			unlink(tmp);
	}
	free(tmp);
	free(path);
	return rc;
}

int sfs_s3b_staged_fetch(struct sfs_backend *b, const char *rel, int fd)
{
	struct s3_backend *s = S3(b);
	struct sfs_s3_objinfo info;
	char *key = sfs_s3b_staged_key(s, rel);
	int rc;

	if (!key)
		return -ENOMEM;
	rc = sfs_s3_head(s->c, key, &info);
	if (!rc)
		rc = fetch_into(s, key, info.size, fd);
	free(key);
	return rc;
}

/*
 * Make the local staging cache and the bucket's _staging/ agree: files written
 * before a crash and never uploaded are uploaded (resume), staged objects with
 * no local copy (another workstation, a lost cache) are downloaded.  One
 * listing of _staging/ plus the transfers that are needed.
 */
static int reconcile(struct s3_backend *s)
{
	struct reconcile r = {.s = s};
	char *base = sfs_s3b_staged_key(s, "");
	int rc;

	if (!base)
		return -ENOMEM;
	r.base_len = strlen(base);
	rc = sfs_s3_list(s->c, base, NULL, 0, 0, sfs_s3b_collect_cb, &r.remote);
	if (!rc) {
		if (r.remote.n) /* qsort/bsearch take no NULL array, even empty */
			qsort(r.remote.v, r.remote.n, sizeof(*r.remote.v), cmp_obj);
		r.seen = calloc(r.remote.n + 1, 1);
		rc = r.seen ? 0 : -ENOMEM;
	}
	int dfd = rc ? -1 : open(s->staging_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (!rc && dfd < 0)
		rc = -errno;
	if (!rc)
		rc = sfs_walk(dfd, reconcile_cb, &r);
	if (dfd >= 0)
		close(dfd);
	for (size_t i = 0; !rc && i < r.remote.n; i++) {
		const char *rel = r.remote.v[i].key + r.base_len;
		if (r.seen[i] || !safe_rel(rel))
			continue;
		rc = download(s, &r.remote.v[i], rel);
		if (!rc)
			r.downloaded++;
	}
	if (r.uploaded || r.downloaded)
		sfs_log(LOG_NOTICE, "s3: staging reconciled: %d uploaded, %d downloaded",
			r.uploaded, r.downloaded);
	free(r.seen);
	sfs_s3b_objlist_release(&r.remote);
	free(base);
	return rc;
}

int sfs_s3b_staging_dir(struct sfs_backend *b)
{
	struct s3_backend *s = S3(b);
	/* the cache is private (0700); its staging dir is what users see as staging/ */
	int rc = sfs_mkdir_p(s->staging_dir, 0700, 0);
	int fd;

	if (!rc && mkdir(s->staging_dir, 0755) < 0 && errno != EEXIST)
		rc = -errno;
	if (rc)
		return S3_ERR(rc, "cannot create '%s': %s", s->staging_dir, strerror(-rc));
	if (!s->read_only) {
		rc = reconcile(s);
		if (rc)
			return S3_ERR(rc,
				      "cannot reconcile the staging cache '%s' with the bucket: %s",
				      s->staging_dir, strerror(-rc));
	}
	fd = open(s->staging_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		return S3_ERR(rc, "cannot open '%s': %s", s->staging_dir, strerror(-rc));
	}
	return fd;
}

int sfs_s3b_staged_sync(struct sfs_backend *b, const char *rel, int fd, int durable)
{
	struct s3_backend *s = S3(b);
	struct stat st;
	char *sk = NULL;
	int rfd = fd, rc;

	(void)durable; /* an upload is durable once acknowledged: always upload */
	if (s->read_only)
		return -EROFS;
	if (fstat(fd, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && (fl & O_ACCMODE) == O_WRONLY) {
		/* the FUSE layer may hold a write-only fd: reopen the same inode for reading */
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		rfd = open(proc, O_RDONLY | O_CLOEXEC);
		if (rfd < 0)
			return S3_ERR(-errno, "cannot reopen staged file '%s' for reading", rel);
	}
	sk = sfs_s3b_staged_key(s, rel);
	if (!sk)
		rc = -ENOMEM;
	else if (strlen(sk) > S3_KEY_MAX)
		rc = S3_ERR(-ENAMETOOLONG, "staged '%s': its key is over %d bytes, S3's limit", rel,
			    S3_KEY_MAX);
	else
		rc = sfs_s3_put_fd(s->c, sk, rfd, (uint64_t)st.st_size, NULL, 0);
	free(sk);
	if (rfd != fd)
		close(rfd);
	return rc;
}

int sfs_s3b_staged_unlink(struct sfs_backend *b, const char *rel, int is_dir)
{
	struct s3_backend *s = S3(b);
	char *sk = sfs_s3b_staged_key(s, rel);
	struct objlist l;
	int rc;

	if (!sk)
		return -ENOMEM;
	if (!is_dir) {
		rc = sfs_s3_delete(s->c, sk); /* absent (never synced) is fine */
	} else {
		rc = sfs_s3b_list_tree(s, sk, &l);
		if (!rc) {
			rc = sfs_s3b_delete_objlist(s, &l);
			sfs_s3b_objlist_release(&l);
		}
	}
	free(sk);
	return rc;
}

static void unlink_local(struct s3_backend *s, const char *rel);

int sfs_s3b_staged_remove(struct sfs_backend *b, const char *rel)
{
	struct s3_backend *s = S3(b);
	char *sk = sfs_s3b_staged_key(s, rel);
	struct objlist l = {0};
	int is_dir = 0, rc;

	if (!sk)
		return -ENOMEM;
	rc = sfs_s3b_gather(s, sk, &l, &is_dir);
	if (!rc)
		rc = sfs_s3b_delete_objlist(s, &l);
	sfs_s3b_objlist_release(&l);
	free(sk);
	if (rc == 0 || rc == -ENOENT)
		unlink_local(s, rel);
	return rc;
}

int sfs_s3b_gather(struct s3_backend *s, const char *from, struct objlist *l, int *is_dir)
{
	struct sfs_s3_objinfo info;
	int rc = sfs_s3_head(s->c, from, &info);

	memset(l, 0, sizeof(*l));
	if (rc == 0) {
		*is_dir = 0;
		return sfs_s3b_collect_cb(l, from, 0, &info);
	}
	if (rc != -ENOENT)
		return rc;
	rc = sfs_s3b_list_tree(s, from, l);
	if (rc)
		return rc;
	if (l->n == 0)
		return -ENOENT;
	*is_dir = 1;
	return 0;
}

int sfs_s3b_staged_rename(struct sfs_backend *b, const char *from, const char *to)
{
	struct s3_backend *s = S3(b);
	char *fk = sfs_s3b_staged_key(s, from), *tk = sfs_s3b_staged_key(s, to);
	struct objlist l;
	int is_dir = 0, rc;

	if (!fk || !tk) {
		rc = -ENOMEM;
		goto out;
	}
	/*
	 * A regular file one CopyObject moves (what zarr renames, once per chunk):
	 * copy and delete without asking first what is there.  The HEAD before
	 * the copy was one request in four of a zarr chunk's.  CopyObject copies
	 * the stored object whatever its size; anything unexpected (never
	 * uploaded, a tree under that name) takes the general path.
	 */
	char *lp = sfs_s3b_join(s->staging_dir, "/", to);
	struct stat st;
	int fast = lp && lstat(lp, &st) == 0 && S_ISREG(st.st_mode) &&
		   (uint64_t)st.st_size <= sfs_s3_client_copy_threshold(s->c);
	free(lp);
	if (fast && sfs_s3_copy(s->c, fk, tk, (uint64_t)st.st_size, 0) == 0) {
		rc = sfs_s3_delete(s->c, fk);
		if (rc == -ENOENT)
			rc = 0;
		goto out;
	}
	rc = sfs_s3b_gather(s, fk, &l, &is_dir);
	if (rc == -ENOENT) { /* never uploaded: nothing to move */
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	rc = sfs_s3b_copy_all(s, &l, fk, tk, is_dir, 0);
	if (!rc)
		rc = sfs_s3b_delete_objlist(s, &l);
	sfs_s3b_objlist_release(&l);
out:
	free(fk);
	free(tk);
	return rc;
}

/* Remove rel (file or tree) from the local staging mirror. */
static void unlink_local(struct s3_backend *s, const char *rel)
{
	char *path = sfs_s3b_join(s->staging_dir, "/", rel);
	struct stat st;

	if (!path)
		return;
	if (lstat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			/* depth-first removal without following symlinks */
			DIR *d = opendir(path);
			struct dirent *e;
			while (d && (e = readdir(d)) != NULL) {
				if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
					continue;
				char *sub = sfs_s3b_join(rel, "/", e->d_name);
				if (sub)
					unlink_local(s, sub);
				free(sub);
			}
			if (d)
				closedir(d);
			rmdir(path);
		} else {
			unlink(path);
		}
	}
	free(path);
}

/*
 * 1 when every object of `to` is one of `from`'s, at the same relative key
 * (what a move a crash cut short leaves: copied, not yet deleted), 0 when
 * `to` holds something else.
 */
static int partial_copy_of(struct objlist *from_l, size_t fplen, struct objlist *to_l, size_t tplen)
{
	/* listings come in key order: one merge pass (out of order: not a copy, say so) */
	size_t j = 0;

	for (size_t i = 0; i < to_l->n; i++) {
		const char *rel = to_l->v[i].key + tplen;
		while (j < from_l->n && strcmp(from_l->v[j].key + fplen, rel) < 0)
			j++;
		if (j == from_l->n || strcmp(from_l->v[j].key + fplen, rel) != 0 ||
		    from_l->v[j].size != to_l->v[i].size)
			return 0;
	}
	return 1;
}

int sfs_s3b_move(struct sfs_backend *b, const char *from, const char *to)
{
	struct s3_backend *s = S3(b);
	char *fk = sfs_s3b_full_key(s, from), *tk = sfs_s3b_full_key(s, to);
	struct objlist l = {0}, have = {0};
	int is_dir = 0, to_dir = 0, rc;

	if (s->read_only)
		return -EROFS;
	if (!fk || !tk) {
		rc = -ENOMEM;
		goto out;
	}
	rc = sfs_s3b_gather(s, fk, &l, &is_dir);
	if (rc)
		goto out;
	rc = sfs_s3b_gather(s, tk, &have, &to_dir);
	if (rc == 0) {
		/* never replaces, but completes a move a crash interrupted */
		if (to_dir != is_dir ||
		    (is_dir ? !partial_copy_of(&l, strlen(fk), &have, strlen(tk))
			    : l.v[0].size != have.v[0].size)) {
			rc = -EEXIST;
			goto out;
		}
	} else if (rc != -ENOENT) {
		goto out;
	}
	/* copies first, then the sources: a crash leaves both, never neither */
	rc = sfs_s3b_copy_all(s, &l, fk, tk, is_dir, 0);
	for (size_t i = 0; !rc && i < l.n; i++)
		sfs_s3b_block_forget(s, l.v[i].key);
	if (!rc)
		rc = sfs_s3b_delete_objlist(s, &l);
out:
	sfs_s3b_written(s, from);
	sfs_s3b_written(s, to);
	sfs_s3b_objlist_release(&l);
	sfs_s3b_objlist_release(&have);
	free(fk);
	free(tk);
	return rc;
}
