/*
 * backend/s3.c - the "s3" backend: struct sfs_backend_ops over the S3 client.
 *
 * Store layout: every store-relative key K lives at "<location>/K" in the
 * bucket ("K" when location is empty).  Staged files live in a local mirror
 * "<cache_dir>/<id>/_staging" (the FUSE layer writes there) and are uploaded
 * to "_staging/<rel>" by staged_sync; promote copies them server-side to
 * their canonical key, deletes the staged objects and removes the local
 * mirror entry (so that, as with the file backend, the staging entry is gone).
 *
 * Test knobs (environment, read at open): SFS_S3_PART_SIZE,
 * SFS_S3_MULTIPART_THRESHOLD, SFS_S3_MAX_ATTEMPTS, SFS_S3_BACKOFF_MS,
 * SFS_S3_COPY_THRESHOLD (bytes / counts / ms).
 */
#include "backend/backend.h"
#include "backend/dcache.h"

#include "backend/s3_buf.h"
#include "backend/s3_client.h"
#include "backend/sigv4.h"
#include "common/config.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define FORMAT_KEY     ".stagefs/format"
#define FORMAT_CONTENT "stagefs 1\n"
#define READAHEAD      (1u << 20)

struct s3_backend {
	struct sfs_backend base;
	struct sfs_s3_client *c;
	char *prefix;	      /* "" or "<location>/" */
	char *staging_dir;    /* local mirror of _staging */
	char *blocks_dir;     /* local cache of canonical (immutable) object blocks */
	uint64_t blocks_max;  /* bound of blocks_dir, bytes */
	uint64_t blocks_used; /* protected by blocks_lock */
	pthread_mutex_t blocks_lock;
	atomic_int cond_put;   /* server honours If-None-Match: * (set at open; 1 -> 0 only) */
	struct sfs_dcache *dc; /* canonical listings, fresh for dir_cache_time seconds */
	const struct sfs_staged_journal *journal; /* the index's rows of stored staged files */
	int read_only;
};

struct sfs_bfile {
	char *key;     /* full key */
	uint64_t size; /* canonical objects never change */
};

static struct s3_backend *S3(struct sfs_backend *b)
{
	return (struct s3_backend *)b;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	char *end = NULL;
	unsigned long long x;

	if (!v || !*v)
		return dflt;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || !end || *end)
		return dflt;
	return x;
}

/* "<prefix><a><b>" malloc'd; NULL on ENOMEM. */
static char *join(const char *prefix, const char *a, const char *b)
{
	struct sfs_buf s;

	sfs_buf_init(&s, 0);
	sfs_buf_adds(&s, prefix);
	sfs_buf_adds(&s, a ? a : "");
	sfs_buf_adds(&s, b ? b : "");
	if (sfs_buf_err(&s)) {
		sfs_buf_release(&s);
		return NULL;
	}
	return sfs_buf_detach(&s);
}

#define S3_KEY_MAX 1024 /* bytes of an object key (AWS; MinIO and Ceph RGW agree) */

static char *full_key(struct s3_backend *s, const char *key)
{
	return join(s->prefix, key, NULL);
}

static char *staged_key(struct s3_backend *s, const char *rel)
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

static void fill_bstat(struct sfs_bstat *st, const struct sfs_s3_objinfo *info)
{
	memset(st, 0, sizeof(*st));
	st->mode = S_IFREG | 0644;
	if (!info)
		return;
	st->size = info->size;
	st->mtime_ns = info->mtime_ns;
	/* a plain (non-multipart, non-KMS) ETag is the MD5 of the bytes */
	if (strlen(info->etag) == 32 && strspn(info->etag, "0123456789abcdef") == 32)
		memcpy(st->md5, info->etag, 33);
}

/* ---- tree listing (recursive) ---- */

struct obj {
	char *key;
	uint64_t size;
	int64_t mtime_ns;
};

struct objlist {
	struct obj *v;
	size_t n, cap;
	int err;
};

static int collect_cb(void *arg, const char *key, int is_prefix, const struct sfs_s3_objinfo *info)
{
	struct objlist *l = arg;

	if (is_prefix)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct obj *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].key = strdup(key);
	if (!l->v[l->n].key)
		return -ENOMEM;
	l->v[l->n].size = info ? info->size : 0;
	l->v[l->n].mtime_ns = info ? info->mtime_ns : 0;
	l->n++;
	return 0;
}

static void objlist_release(struct objlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].key);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Every object whose key starts with dir + "/" (dir is a full key). */
static int list_tree(struct s3_backend *s, const char *dir, struct objlist *out)
{
	char *p = join(dir, "/", NULL);
	int rc;

	if (!p)
		return -ENOMEM;
	memset(out, 0, sizeof(*out));
	rc = sfs_s3_list(s->c, p, NULL, 0, 0, collect_cb, out);
	free(p);
	if (rc)
		objlist_release(out);
	return rc;
}

static int any_cb(void *arg, const char *key, int is_prefix, const struct sfs_s3_objinfo *info)
{
	(void)key;
	(void)is_prefix;
	(void)info;
	*(int *)arg = 1;
	return 1;
}

/* 1 when some object lives under dir + "/", 0 when none, or -errno. */
static int prefix_exists(struct s3_backend *s, const char *dir)
{
	char *p = join(dir, "/", NULL);
	int found = 0, rc;

	if (!p)
		return -ENOMEM;
	rc = sfs_s3_list(s->c, p, "/", 1, 1, any_cb, &found);
	free(p);
	if (rc < 0)
		return rc;
	return found;
}

static int delete_objlist(struct s3_backend *s, struct objlist *l)
{
	char **keys;
	int rc;

	if (l->n == 0)
		return 0;
	keys = malloc(l->n * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < l->n; i++)
		keys[i] = l->v[i].key;
	rc = sfs_s3_delete_many(s->c, keys, l->n);
	free(keys);
	return rc;
}

/* ---- namespace ---- */

static void written(struct s3_backend *s, const char *key);
static int block_size_get(struct s3_backend *s, const char *key, uint64_t *size, int64_t *mtime);
static void block_size_put(struct s3_backend *s, const char *key, uint64_t size, int64_t mtime);

static int s3_stat(struct sfs_backend *b, const char *key, struct sfs_bstat *st)
{
	struct s3_backend *s = S3(b);
	struct sfs_s3_objinfo info;
	char *fk;
	int rc;

	if (!key[0]) {
		memset(st, 0, sizeof(*st));
		st->mode = S_IFDIR | 0755;
		return 0;
	}
	fk = full_key(s, key);
	if (!fk)
		return -ENOMEM;
	/* canonical objects never change: what was seen once stays true (not so staged ones) */
	int canonical = strncmp(key, "_staging/", 9) != 0;
	uint64_t size;
	int64_t mtime = 0;
	if (canonical && block_size_get(s, fk, &size, &mtime) == 0) {
		memset(st, 0, sizeof(*st));
		st->mode = S_IFREG | 0644;
		st->size = size;
		st->mtime_ns = mtime;
		free(fk);
		return 0;
	}
	/*
	 * A fresh listing of the parent answers without a request.  A name it
	 * lacks may be new (another host): that costs a HEAD, so that an exact
	 * path always opens at once, and a hit there retires the stale listing.
	 */
	int listed_absent = 0;
	if (canonical) {
		const char *slash = strrchr(key, '/');
		char *dir = slash ? strndup(key, (size_t)(slash - key)) : strdup("");
		rc = dir ? sfs_dcache_lookup(s->dc, dir, slash ? slash + 1 : key, st) : -ENOENT;
		free(dir);
		if (rc == 1) {
			free(fk);
			return 0;
		}
		listed_absent = rc == 0;
	}
	rc = sfs_s3_head(s->c, fk, &info);
	if (rc == 0) {
		fill_bstat(st, &info);
		if (canonical)
			block_size_put(s, fk, info.size, info.mtime_ns);
	} else if (rc == -ENOENT) {
		rc = prefix_exists(s, fk);
		if (rc == 1) {
			memset(st, 0, sizeof(*st));
			st->mode = S_IFDIR | 0755;
			rc = 0;
		} else if (rc == 0) {
			rc = -ENOENT;
		}
	}
	if (rc == 0 && listed_absent)
		written(s, key); /* the parent's listing is stale: list afresh next time */
	free(fk);
	return rc;
}

struct list_ctx {
	size_t plen;
	sfs_list_cb cb;
	void *arg;
	size_t count;
	struct sfs_dlist *keep; /* a copy for the listing cache; NULL when not kept */
};

static int list_cb(void *arg, const char *key, int is_prefix, const struct sfs_s3_objinfo *info)
{
	struct list_ctx *l = arg;
	struct sfs_bstat st;
	char name[1024];
	const char *rel = key + l->plen;
	size_t n = strlen(rel);

	if (strlen(key) < l->plen)
		return 0;
	if (is_prefix && n && rel[n - 1] == '/')
		n--;
	if (n == 0 || n >= sizeof(name))
		return 0; /* the directory marker itself, or an absurd name */
	memcpy(name, rel, n);
	name[n] = '\0';
	if (is_prefix) {
		memset(&st, 0, sizeof(st));
		st.mode = S_IFDIR | 0755;
	} else {
		fill_bstat(&st, info);
	}
	l->count++;
	if (l->keep && sfs_dlist_add(l->keep, name, &st) != 0) {
		sfs_dlist_release(NULL, l->keep); /* out of memory: just do not cache it */
		l->keep = NULL;
	}
	return l->cb(l->arg, name, &st);
}

/* Is key in the staging area ("_staging" or below)?  Everything else is canonical. */
static int is_staged(const char *key)
{
	return strncmp(key, "_staging", 8) == 0 && (key[8] == '\0' || key[8] == '/');
}

/*
 * A canonical key was (or may have been) written or removed here: listings
 * that could miss it or still show it are dropped.
 */
static void written(struct s3_backend *s, const char *key)
{
	if (!is_staged(key))
		sfs_dcache_invalidate(s->dc, key, '/');
}

static int s3_list(struct sfs_backend *b, const char *key, sfs_list_cb cb, void *arg)
{
	struct s3_backend *s = S3(b);
	struct list_ctx l;
	char *p;
	int rc;

	if (!is_staged(key)) {
		struct sfs_dlist *c = sfs_dcache_get(s->dc, key);
		if (c) {
			rc = 0;
			for (size_t i = 0; !rc && i < c->n; i++)
				rc = cb(arg, c->v[i].name, &c->v[i].st);
			sfs_dlist_release(s->dc, c);
			return rc;
		}
	}
	p = key[0] ? join(s->prefix, key, "/") : strdup(s->prefix);
	if (!p)
		return -ENOMEM;
	memset(&l, 0, sizeof(l));
	l.plen = strlen(p);
	l.cb = cb;
	l.arg = arg;
	l.keep = is_staged(key) || !sfs_dcache_enabled(s->dc) ? NULL : sfs_dlist_new();
	long long started = sfs_dcache_now();
	rc = sfs_s3_list(s->c, p, "/", 0, 0, list_cb, &l);
	if (rc == 0 && l.count > 0 && l.keep) {
		sfs_dcache_put(s->dc, key, l.keep, started);
		l.keep = NULL;
	}
	sfs_dlist_release(NULL, l.keep);
	if (rc == 0 && l.count == 0 && key[0]) {
		/* nothing below: a file, or nothing at all */
		char *fk = full_key(s, key);
		rc = fk ? sfs_s3_head(s->c, fk, NULL) : -ENOMEM;
		rc = rc == 0 ? -ENOTDIR : rc;
		free(fk);
	}
	free(p);
	return rc;
}

/* ---- reading ---- */

/* ---- block cache of canonical objects ---- */

static void blocks_trim(struct s3_backend *s);

static char *block_path(struct s3_backend *s, const char *key, const char *suffix)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	char *p = NULL;

	EVP_Digest(key, strlen(key), md, &len, EVP_md5(), NULL);
	sfs_sigv4_hex(md, len, hex);
	if (asprintf(&p, "%s/%.2s/%s.%s", s->blocks_dir, hex, hex, suffix) < 0)
		return NULL;
	return p;
}

/* Store data as the file path, atomically (temp + rename); the directory is created. */
static int block_store(struct s3_backend *s, const char *path, const void *data, size_t n)
{
	char *tmp = NULL, *dir = strdup(path);
	int fd = -1, rc = 0;

	if (!dir || asprintf(&tmp, "%s.%lx.tmp", path, (unsigned long)pthread_self()) < 0) {
		free(dir);
		return -ENOMEM;
	}
	*strrchr(dir, '/') = '\0';
	rc = sfs_mkdir_p(dir, 0700, 1);
	if (!rc) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, data, n) != (ssize_t)n || rename(tmp, path) < 0)
			rc = errno ? -errno : -EIO;
	}
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(tmp);
	free(tmp);
	free(dir);
	if (!rc) {
		pthread_mutex_lock(&s->blocks_lock);
		s->blocks_used += n;
		int over = s->blocks_used > s->blocks_max;
		pthread_mutex_unlock(&s->blocks_lock);
		if (over)
			blocks_trim(s);
	}
	return rc;
}

/*
 * The object full key fk was removed: its cached size and blocks go too, or
 * a new object under the same key would be served the old one's.
 */
static void block_forget(struct s3_backend *s, const char *fk)
{
	char *size = block_path(s, fk, "size");
	char *slash = size ? strrchr(size, '/') : NULL;
	DIR *d = NULL;
	struct dirent *de;

	if (!slash)
		goto out;
	*slash = '\0';
	const char *stem = slash + 1; /* "<hex>.size" */
	size_t n = strcspn(stem, ".") + 1;
	d = opendir(size);
	while (d && (de = readdir(d)) != NULL)
		if (strncmp(de->d_name, stem, n) == 0 && unlinkat(dirfd(d), de->d_name, 0) < 0 &&
		    errno != ENOENT)
			sfs_log(LOG_WARNING, "s3: cannot drop cached '%s': %s", de->d_name,
				strerror(errno));
out:
	if (d)
		closedir(d);
	free(size);
}

static int block_size_get(struct s3_backend *s, const char *key, uint64_t *size, int64_t *mtime)
{
	char *p = block_path(s, key, "size");
	char buf[48];
	int rc = -ENOENT;

	int fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (n > 0) {
			char *end;
			buf[n] = '\0';
			*size = strtoull(buf, &end, 10);
			if (mtime)
				*mtime = strtoll(end, NULL, 10);
			rc = 0;
		}
		close(fd);
	}
	free(p);
	return rc;
}

static void block_size_put(struct s3_backend *s, const char *key, uint64_t size, int64_t mtime)
{
	char *p = block_path(s, key, "size");
	char buf[48];
	int n = snprintf(buf, sizeof(buf), "%llu %lld", (unsigned long long)size, (long long)mtime);

	if (p)
		(void)block_store(s, p, buf, (size_t)n);
	free(p);
}

/* Copy want bytes at in_blk of block blk of f into out, fetching the block on a miss. */
static ssize_t block_read(struct s3_backend *s, struct sfs_bfile *f, uint64_t blk, size_t in_blk,
			  char *out, size_t want)
{
	char suffix[32];
	snprintf(suffix, sizeof(suffix), "%llu", (unsigned long long)blk);
	char *p = block_path(s, f->key, suffix);
	ssize_t r;

	if (!p)
		return -ENOMEM;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		r = pread(fd, out, want, (off_t)in_blk);
		close(fd);
		if (r == (ssize_t)want) {
			free(p);
			return r;
		}
	}
	/* miss (or a short block): fetch the whole block once */
	uint64_t start = blk * READAHEAD;
	size_t len = f->size - start < READAHEAD ? (size_t)(f->size - start) : READAHEAD;
	char *data = malloc(len ? len : 1);
	r = data ? sfs_s3_get_range(s->c, f->key, start, data, len) : -ENOMEM;
	if (r >= 0) {
		size_t got = (size_t)r;
		if (got == len)
			(void)block_store(s, p, data,
					  len); /* a failed store only costs a refetch */
		r = got > in_blk ? (ssize_t)((got - in_blk) < want ? got - in_blk : want) : 0;
		memcpy(out, data + in_blk, (size_t)r);
	}
	free(data);
	free(p);
	return r;
}

struct trim_ent {
	char *path;
	uint64_t bytes;
	struct timespec atime;
};

struct trim {
	struct trim_ent *v;
	size_t n, cap;
	uint64_t used;
	const char *base;
};

static int trim_cb(void *arg, int dirfd, const char *name, const char *rel, const struct stat *st)
{
	struct trim *t = arg;

	(void)dirfd;
	(void)name;
	if (!S_ISREG(st->st_mode))
		return 0;
	t->used += (uint64_t)st->st_size;
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 256;
		struct trim_ent *nv = realloc(t->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		t->v = nv;
		t->cap = ncap;
	}
	if (asprintf(&t->v[t->n].path, "%s/%s", t->base, rel) < 0)
		return -ENOMEM;
	t->v[t->n].bytes = (uint64_t)st->st_size;
	t->v[t->n].atime = st->st_atim;
	t->n++;
	return 0;
}

static int by_atime_asc(const void *a, const void *b)
{
	const struct timespec *x = &((const struct trim_ent *)a)->atime;
	const struct timespec *y = &((const struct trim_ent *)b)->atime;

	if (x->tv_sec != y->tv_sec)
		return x->tv_sec < y->tv_sec ? -1 : 1;
	return x->tv_nsec < y->tv_nsec ? -1 : x->tv_nsec > y->tv_nsec;
}

/* Over the bound: measure and remove the least recently used blocks down to 80 %. */
static void blocks_trim(struct s3_backend *s)
{
	struct trim t = {.base = s->blocks_dir};
	int dfd = open(s->blocks_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0)
		return;
	int rc = sfs_walk(dfd, trim_cb, &t);
	close(dfd);
	if (!rc && t.n) {
		qsort(t.v, t.n, sizeof(*t.v), by_atime_asc);
		for (size_t i = 0; i < t.n && t.used > s->blocks_max / 5 * 4; i++)
			if (unlink(t.v[i].path) == 0)
				t.used -= t.v[i].bytes;
	}
	for (size_t i = 0; i < t.n; i++)
		free(t.v[i].path);
	free(t.v);
	pthread_mutex_lock(&s->blocks_lock);
	s->blocks_used = t.used;
	pthread_mutex_unlock(&s->blocks_lock);
}

struct s3walk {
	struct s3_backend *s;
	sfs_bwalk_cb cb;
	void *arg;
	int any;
};

static int s3walk_cb(void *arg, const char *key, int is_prefix, const struct sfs_s3_objinfo *info)
{
	struct s3walk *w = arg;
	struct sfs_bstat st;
	size_t pl = strlen(w->s->prefix);

	if (is_prefix || strncmp(key, w->s->prefix, pl) != 0)
		return 0;
	w->any = 1;
	fill_bstat(&st, info);
	return w->cb(w->arg, key + pl, &st);
}

static int s3_walk(struct sfs_backend *b, const char *key, sfs_bwalk_cb cb, void *arg)
{
	struct s3_backend *s = S3(b);
	struct s3walk w = {s, cb, arg, 0};
	char *p = key[0] ? join(s->prefix, key, "/") : strdup(s->prefix);

	if (!p)
		return -ENOMEM;
	/* one listing of the whole prefix: no delimiter, 1000 keys a page */
	int rc = sfs_s3_list(s->c, p, NULL, 0, 0, s3walk_cb, &w);
	free(p);
	return rc ? rc : w.any ? 0 : -ENOENT;
}

static int s3_open(struct sfs_backend *b, const char *key, struct sfs_bfile **out)
{
	struct s3_backend *s = S3(b);
	struct sfs_s3_objinfo info;
	struct sfs_bfile *f;
	int rc;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->key = full_key(s, key);
	if (!f->key) {
		free(f);
		return -ENOMEM;
	}
	if (block_size_get(s, f->key, &f->size, NULL) == 0) {
		*out = f; /* canonical objects never change: the size seen once stays true */
		return 0;
	}
	rc = sfs_s3_head(s->c, f->key, &info);
	if (rc) {
		if (rc == -ENOENT && prefix_exists(s, f->key) == 1)
			rc = -EISDIR;
		free(f->key);
		free(f);
		return rc;
	}
	f->size = info.size;
	block_size_put(s, f->key, f->size, info.mtime_ns);
	*out = f;
	return 0;
}

/*
 * Reads of canonical objects go through a local block cache
 * (<cache_dir>/<store id>/blocks/<md5(key)[0:2]>/<md5(key)>.<n>, 1 MiB blocks):
 * canonical objects never change, so a block fetched once serves every later
 * read, also after a remount; only misses cost a ranged GET.
 */
static ssize_t s3_pread(struct sfs_backend *b, struct sfs_bfile *f, void *buf, size_t n, off_t off)
{
	struct s3_backend *s = S3(b);
	size_t done = 0;

	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off >= f->size || n == 0)
		return 0;
	if (n > f->size - (uint64_t)off)
		n = (size_t)(f->size - (uint64_t)off);
	while (done < n) {
		uint64_t pos = (uint64_t)off + done;
		uint64_t blk = pos / READAHEAD;
		size_t in_blk = (size_t)(pos % READAHEAD);
		size_t want = READAHEAD - in_blk < n - done ? READAHEAD - in_blk : n - done;
		ssize_t r = block_read(s, f, blk, in_blk, (char *)buf + done, want);
		if (r < 0)
			return done ? (ssize_t)done : r;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

static void s3_close(struct sfs_backend *b, struct sfs_bfile *f)
{
	(void)b;
	if (!f)
		return;
	free(f->key);
	free(f);
}

/* ---- small objects ---- */

/*
 * The server answered 501 to If-None-Match (the mount's probe can miss that:
 * a server may ignore the header on one request and refuse it on another):
 * no-replace checks with a HEAD first from now on.  Said once.
 */
static void no_conditional_writes(struct s3_backend *s)
{
	if (atomic_exchange(&s->cond_put, 0))
		sfs_log(LOG_INFO,
			"s3: '%s' does not implement If-None-Match; no-replace uses "
			"HEAD, then PUT or copy",
			sfs_s3_client_endpoint(s->c));
}

/* PUT fk, honouring SFS_NOREPLACE with If-None-Match or HEAD-then-PUT. */
static int put_object(struct s3_backend *s, const char *fk, const void *buf, size_t n, int flags)
{
	int rc;

	if (!(flags & SFS_NOREPLACE))
		return sfs_s3_put(s->c, fk, buf, n, 0);
	if (s->cond_put) {
		rc = sfs_s3_put(s->c, fk, buf, n, SFS_S3_IF_NONE_MATCH);
		if (rc != -ENOSYS)
			return rc;
		no_conditional_writes(s);
	}
	rc = sfs_s3_head(s->c, fk, NULL);
	if (rc == 0)
		return -EEXIST;
	if (rc != -ENOENT)
		return rc;
	return sfs_s3_put(s->c, fk, buf, n, 0);
}

static int s3_put_bytes(struct sfs_backend *b, const char *key, const void *buf, size_t n,
			int flags)
{
	struct s3_backend *s = S3(b);
	char *fk;
	int rc;

	if (s->read_only)
		return -EROFS;
	fk = full_key(s, key);
	if (!fk)
		return -ENOMEM;
	rc = put_object(s, fk, buf, n, flags);
	written(s, key);
	free(fk);
	return rc;
}

static int s3_get_bytes(struct sfs_backend *b, const char *key, void **buf, size_t *n, size_t max)
{
	struct s3_backend *s = S3(b);
	char *fk = full_key(s, key);
	int rc;

	if (!fk)
		return -ENOMEM;
	rc = sfs_s3_get(s->c, fk, buf, n, max);
	free(fk);
	return rc;
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
	char *key = staged_key(r->s, rel);
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
		rc = sfs_s3_put_fd(r->s->c, key, fd, (uint64_t)st->st_size, NULL);
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
	char *path = join(s->staging_dir, "/", rel), *tmp = NULL;
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

static int s3_staged_fetch(struct sfs_backend *b, const char *rel, int fd)
{
	struct s3_backend *s = S3(b);
	struct sfs_s3_objinfo info;
	char *key = staged_key(s, rel);
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
	char *base = staged_key(s, "");
	int rc;

	if (!base)
		return -ENOMEM;
	r.base_len = strlen(base);
	rc = sfs_s3_list(s->c, base, NULL, 0, 0, collect_cb, &r.remote);
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
	objlist_release(&r.remote);
	free(base);
	return rc;
}

static int s3_staging_dir(struct sfs_backend *b)
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

static int s3_staged_sync(struct sfs_backend *b, const char *rel, int fd, int durable)
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
	sk = staged_key(s, rel);
	if (!sk)
		rc = -ENOMEM;
	else if (strlen(sk) > S3_KEY_MAX)
		rc = S3_ERR(-ENAMETOOLONG, "staged '%s': its key is over %d bytes, S3's limit", rel,
			    S3_KEY_MAX);
	else
		rc = sfs_s3_put_fd(s->c, sk, rfd, (uint64_t)st.st_size, NULL);
	free(sk);
	if (rfd != fd)
		close(rfd);
	return rc;
}

static int s3_staged_unlink(struct sfs_backend *b, const char *rel, int is_dir)
{
	struct s3_backend *s = S3(b);
	char *sk = staged_key(s, rel);
	struct objlist l;
	int rc;

	if (!sk)
		return -ENOMEM;
	if (!is_dir) {
		rc = sfs_s3_delete(s->c, sk); /* absent (never synced) is fine */
	} else {
		rc = list_tree(s, sk, &l);
		if (!rc) {
			rc = delete_objlist(s, &l);
			objlist_release(&l);
		}
	}
	free(sk);
	return rc;
}

static void unlink_local(struct s3_backend *s, const char *rel);
static int gather(struct s3_backend *s, const char *from, struct objlist *l, int *is_dir);

static int s3_staged_remove(struct sfs_backend *b, const char *rel)
{
	struct s3_backend *s = S3(b);
	char *sk = staged_key(s, rel);
	struct objlist l = {0};
	int is_dir = 0, rc;

	if (!sk)
		return -ENOMEM;
	rc = gather(s, sk, &l, &is_dir);
	if (!rc)
		rc = delete_objlist(s, &l);
	objlist_release(&l);
	free(sk);
	if (rc == 0 || rc == -ENOENT)
		unlink_local(s, rel);
	return rc;
}

/* Copy job: src[i] -> dst_prefix + (src[i] minus src_prefix), in parallel. */
struct copy_job {
	struct s3_backend *s;
	struct objlist *src;
	size_t src_plen;
	const char *dst_prefix;
	int flags;	     /* sfs_s3_copy flags */
	unsigned char *done; /* done[i] = 1 when copied */
};

static int copy_one(void *ctx, size_t i)
{
	struct copy_job *j = ctx;
	const char *from = j->src->v[i].key;
	char *to = join(j->dst_prefix, from + j->src_plen, NULL);
	int rc;

	if (!to)
		return -ENOMEM;
	rc = sfs_s3_copy(j->s->c, from, to, j->src->v[i].size, j->flags);
	if (!rc)
		j->done[i] = 1;
	free(to);
	return rc;
}

/*
 * Gather what lives at full key `from`: the object itself (is_dir = 0) or
 * every object under "from/" (is_dir = 1).  -ENOENT when neither exists.
 */
static int gather(struct s3_backend *s, const char *from, struct objlist *l, int *is_dir)
{
	struct sfs_s3_objinfo info;
	int rc = sfs_s3_head(s->c, from, &info);

	memset(l, 0, sizeof(*l));
	if (rc == 0) {
		*is_dir = 0;
		return collect_cb(l, from, 0, &info);
	}
	if (rc != -ENOENT)
		return rc;
	rc = list_tree(s, from, l);
	if (rc)
		return rc;
	if (l->n == 0)
		return -ENOENT;
	*is_dir = 1;
	return 0;
}

/*
 * Copy the gathered objects of `from` to `to` (both full keys) in parallel.
 * On failure the copies already made are deleted again.
 */
static int copy_all(struct s3_backend *s, struct objlist *l, const char *from, const char *to,
		    int is_dir, int flags)
{
	struct copy_job j = {s, l, strlen(from), to, flags, NULL};
	char *dst_prefix = NULL;
	int rc;

	if (is_dir) {
		dst_prefix = join(to, NULL, NULL);
		j.src_plen = strlen(from); /* keeps the "/rel" part */
		j.dst_prefix = dst_prefix;
		if (!dst_prefix)
			return -ENOMEM;
	}
	j.done = calloc(l->n ? l->n : 1, 1);
	if (!j.done) {
		free(dst_prefix);
		return -ENOMEM;
	}
	rc = sfs_s3_parallel(s->c, l->n, copy_one, &j);
	if (rc) {
		/* leave nothing half-written behind */
		struct objlist undo = {0};
		for (size_t i = 0; i < l->n; i++) {
			if (!j.done[i])
				continue;
			if (collect_cb(&undo, "", 0, NULL) == 0) {
				free(undo.v[undo.n - 1].key);
				undo.v[undo.n - 1].key =
					join(j.dst_prefix, l->v[i].key + j.src_plen, NULL);
				if (!undo.v[undo.n - 1].key)
					undo.n--;
			}
		}
		if (delete_objlist(s, &undo))
			sfs_log(LOG_ERR, "s3: cannot remove partial copy under '%s'", to);
		objlist_release(&undo);
	}
	free(j.done);
	free(dst_prefix);
	return rc;
}

static int s3_staged_rename(struct sfs_backend *b, const char *from, const char *to)
{
	struct s3_backend *s = S3(b);
	char *fk = staged_key(s, from), *tk = staged_key(s, to);
	struct objlist l;
	int is_dir = 0, rc;

	if (!fk || !tk) {
		rc = -ENOMEM;
		goto out;
	}
	rc = gather(s, fk, &l, &is_dir);
	if (rc == -ENOENT) { /* never uploaded: nothing to move */
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	rc = copy_all(s, &l, fk, tk, is_dir, 0);
	if (!rc)
		rc = delete_objlist(s, &l);
	objlist_release(&l);
out:
	free(fk);
	free(tk);
	return rc;
}

/* Remove rel (file or tree) from the local staging mirror. */
static void unlink_local(struct s3_backend *s, const char *rel)
{
	char *path = join(s->staging_dir, "/", rel);
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
				char *sub = join(rel, "/", e->d_name);
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

static int s3_promote(struct sfs_backend *b, const char *staged_rel, const char *key, int flags)
{
	struct s3_backend *s = S3(b);
	char *from = staged_key(s, staged_rel), *to = full_key(s, key);
	struct objlist l = {0};
	int is_dir = 0, rc;

	if (s->read_only)
		return -EROFS;
	if (!from || !to) {
		rc = -ENOMEM;
		goto out;
	}
	rc = gather(s, from, &l, &is_dir);
	if (rc)
		goto out;
	if (flags & SFS_NOREPLACE) {
		rc = sfs_s3_head(s->c, to, NULL);
		if (rc == 0) {
			rc = -EEXIST;
			goto out;
		}
		if (rc != -ENOENT)
			goto out;
		rc = prefix_exists(s, to);
		if (rc) {
			rc = rc > 0 ? -EEXIST : rc;
			goto out;
		}
	}
	/*
	 * The HEAD above finds what exists; a conditional copy also stops another
	 * host that creates the same key meanwhile (one file; a tree's fresh
	 * token prefix is not raced).
	 */
	int cflags = (flags & SFS_NOREPLACE) && !is_dir && s->cond_put ? SFS_S3_IF_NONE_MATCH : 0;
	rc = copy_all(s, &l, from, to, is_dir, cflags);
	if (rc == -ENOSYS && cflags) {
		no_conditional_writes(s);
		rc = copy_all(s, &l, from, to, is_dir, 0);
	}
	if (rc || (flags & SFS_KEEP_SOURCE))
		goto out; /* the caller records the copy, then calls staged_remove */
	/* the canonical object is complete: a leftover staged object is only garbage */
	if (delete_objlist(s, &l))
		sfs_log(LOG_WARNING, "s3: promoted '%s' but could not delete its staged objects",
			staged_rel);
	unlink_local(s, staged_rel);
	rc = 0;
out:
	written(s, key);
	objlist_release(&l);
	free(from);
	free(to);
	return rc;
}

static int s3_remove(struct sfs_backend *b, const char *key)
{
	struct s3_backend *s = S3(b);
	char *fk = full_key(s, key);
	struct objlist l = {0};
	int rc, found = 0;

	if (s->read_only)
		return -EROFS;
	if (!fk)
		return -ENOMEM;
	block_forget(s, fk); /* first: a failed delete must not leave old sizes behind */
	rc = sfs_s3_head(s->c, fk, NULL);
	if (rc == 0) {
		found = 1;
		rc = sfs_s3_delete(s->c, fk);
	} else if (rc == -ENOENT) {
		rc = 0;
	}
	if (!rc && key[0]) {
		rc = list_tree(s, fk, &l);
		for (size_t i = 0; !rc && i < l.n; i++)
			block_forget(s, l.v[i].key);
		if (!rc && l.n) {
			found = 1;
			rc = delete_objlist(s, &l);
		}
	}
	if (!rc && !found)
		rc = -ENOENT;
	written(s, key);
	objlist_release(&l);
	free(fk);
	return rc;
}

static int s3_sync(struct sfs_backend *b)
{
	(void)b; /* PUTs are durable when acknowledged */
	return 0;
}

static void s3_destroy(struct sfs_backend *b)
{
	struct s3_backend *s = S3(b);

	if (!s)
		return;
	sfs_s3_client_free(s->c);
	free(s->prefix);
	free(s->staging_dir);
	free(s->blocks_dir);
	pthread_mutex_destroy(&s->blocks_lock);
	sfs_dcache_free(s->dc);
	free(s);
}

static void s3_set_journal(struct sfs_backend *b, const struct sfs_staged_journal *j)
{
	S3(b)->journal = j;
}

static const struct sfs_backend_ops s3_ops = {
	.name = "s3",
	.caps = SFS_BCAP_STAGING_CACHE,
	.set_journal = s3_set_journal,
	.staging_dir = s3_staging_dir,
	.staged_sync = s3_staged_sync,
	.staged_unlink = s3_staged_unlink,
	.staged_remove = s3_staged_remove,
	.staged_fetch = s3_staged_fetch,
	.staged_rename = s3_staged_rename,
	.stat = s3_stat,
	.list = s3_list,
	.walk = s3_walk,
	.open = s3_open,
	.pread = s3_pread,
	.close = s3_close,
	.put_bytes = s3_put_bytes,
	.get_bytes = s3_get_bytes,
	.promote = s3_promote,
	.remove = s3_remove,
	.sync = s3_sync,
	.destroy = s3_destroy,
};

/* "<cache_dir>/<16 hex of md5("s3:<endpoint>/<bucket>/<location>")>/_staging" */
static char *staging_path(const struct sfs_config *cfg, const char *endpoint, const char *loc)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	struct sfs_buf id, p;

	sfs_buf_init(&id, 0);
	sfs_buf_addf(&id, "s3:%s/%s/%s", endpoint, cfg->bucket, loc);
	if (sfs_buf_err(&id)) {
		sfs_buf_release(&id);
		return NULL;
	}
	EVP_Digest(id.data, id.len, md, &len, EVP_md5(), NULL);
	sfs_buf_release(&id);
	sfs_sigv4_hex(md, len, hex);
	sfs_buf_init(&p, 0);
	sfs_buf_addf(&p, "%s/%.16s/_staging", cfg->cache_dir, hex);
	if (sfs_buf_err(&p)) {
		sfs_buf_release(&p);
		return NULL;
	}
	return sfs_buf_detach(&p);
}

/* Create or check the format marker; find out whether If-None-Match works. */
static int check_format(struct s3_backend *s)
{
	char *fk = full_key(s, FORMAT_KEY);
	void *buf = NULL;
	size_t n = 0;
	int rc;

	if (!fk)
		return -ENOMEM;
	rc = sfs_s3_get(s->c, fk, &buf, &n, 4096);
	if (rc == -ENOENT && !s->read_only) {
		rc = sfs_s3_put(s->c, fk, FORMAT_CONTENT, strlen(FORMAT_CONTENT),
				SFS_S3_IF_NONE_MATCH);
		if (rc == -EEXIST || rc == -ENOSYS) /* raced with another host / no conditionals */
			rc = rc == -EEXIST ? 0
					   : sfs_s3_put(s->c, fk, FORMAT_CONTENT,
							strlen(FORMAT_CONTENT), 0);
		if (rc == 0)
			sfs_log(LOG_INFO, "s3: new store at '%s': created '%s'",
				sfs_s3_client_endpoint(s->c), fk);
	} else if (rc == -ENOENT) {
		sfs_log(LOG_WARNING, "s3: no '%s' in bucket (read-only mount)", fk);
		rc = 0;
	} else if (rc == 0) {
		if (n < strlen(FORMAT_CONTENT) - 1 || memcmp(buf, "stagefs 1", 9) != 0 ||
		    (n > 9 && ((char *)buf)[9] != '\n'))
			rc = S3_ERR(-EINVAL, "s3: '%s' is not a stagefs 1 store marker", fk);
	}
	free(buf);
	if (rc || s->read_only)
		goto out;
	/*
	 * Does the server honour If-None-Match: * on PUT?  Re-create the marker
	 * (same bytes) conditionally: 412 = yes; 2xx = ignored; 501 = no.
	 */
	rc = sfs_s3_put(s->c, fk, FORMAT_CONTENT, strlen(FORMAT_CONTENT), SFS_S3_IF_NONE_MATCH);
	s->cond_put = rc == -EEXIST;
	if (!s->cond_put)
		sfs_log(LOG_INFO, "s3: '%s' ignores If-None-Match; no-replace uses HEAD then PUT",
			sfs_s3_client_endpoint(s->c));
	rc = 0;
out:
	free(fk);
	return rc;
}

int sfs_backend_s3_open(const struct sfs_config *cfg, struct sfs_backend **out)
{
	struct sfs_s3_opts o;
	struct s3_backend *s = NULL;
	char reason[256];
	long status = 0;
	const char *loc;
	int rc;

	if (!cfg || !cfg->bucket || !*cfg->bucket)
		return S3_ERR(-EINVAL, "s3: no bucket configured");
	if (!cfg->cache_dir || !*cfg->cache_dir)
		return S3_ERR(-EINVAL, "s3: no cache_dir configured");
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base.ops = &s3_ops;
	pthread_mutex_init(&s->blocks_lock, NULL);
	s->read_only = cfg->read_only;

	/* location without leading/trailing '/' */
	loc = cfg->location ? cfg->location : "";
	while (*loc == '/')
		loc++;
	size_t ll = strlen(loc);
	while (ll && loc[ll - 1] == '/')
		ll--;
	s->prefix = malloc(ll + 2);
	if (!s->prefix || sfs_dcache_new(cfg->dir_cache_time, 256, &s->dc) != 0) {
		rc = -ENOMEM;
		goto fail;
	}
	memcpy(s->prefix, loc, ll);
	if (ll)
		s->prefix[ll++] = '/';
	s->prefix[ll] = '\0';

	memset(&o, 0, sizeof(o));
	o.endpoint = cfg->endpoint;
	o.bucket = cfg->bucket;
	o.region = cfg->region;
	o.path_style = cfg->path_style;
	o.access_key = cfg->access_key;
	o.secret_key = cfg->secret_key;
	o.session_token = cfg->session_token;
	o.part_size = env_u64("SFS_S3_PART_SIZE", 0);
	o.multipart_threshold = env_u64("SFS_S3_MULTIPART_THRESHOLD", 0);
	o.copy_threshold = env_u64("SFS_S3_COPY_THRESHOLD", 0);
	o.copy_part_size = env_u64("SFS_S3_COPY_PART_SIZE", 0);
	o.stall_timeout_s = (long)env_u64("SFS_S3_STALL_TIMEOUT_S", 0);
	o.max_attempts = (int)env_u64("SFS_S3_MAX_ATTEMPTS", 0);
	o.backoff_ms = (int)env_u64("SFS_S3_BACKOFF_MS", 0);
	rc = sfs_s3_client_new(&o, &s->c);
	if (rc)
		goto fail;

	rc = sfs_s3_head_bucket(s->c, 2, &status, reason, sizeof(reason));
	if (rc) {
		const char *ep = sfs_s3_client_endpoint(s->c);
		if (status == 0)
			rc = S3_ERR(-EIO, "cannot reach '%s': %s", ep, reason);
		else if (rc == -EACCES)
			rc = S3_ERR(-EACCES, "access denied to bucket '%s' at '%s'", cfg->bucket,
				    ep);
		else if (rc == -ENOENT)
			rc = S3_ERR(-ENOENT, "no bucket '%s' at '%s'", cfg->bucket, ep);
		else
			rc = S3_ERR(rc, "cannot use bucket '%s' at '%s': %s", cfg->bucket, ep,
				    reason);
		goto fail;
	}
	s->staging_dir = staging_path(cfg, sfs_s3_client_endpoint(s->c), s->prefix);
	if (s->staging_dir &&
	    asprintf(&s->blocks_dir, "%.*s/blocks",
		     (int)(strrchr(s->staging_dir, '/') - s->staging_dir), s->staging_dir) < 0)
		s->blocks_dir = NULL;
	/* canonical blocks may use a quarter of cache_size; staged files the rest */
	s->blocks_max = cfg->cache_size ? cfg->cache_size / 4 : (1ull << 30);
	if (!s->staging_dir || !s->blocks_dir) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = check_format(s);
	if (rc)
		goto fail;
	*out = &s->base;
	return 0;
fail:
	s3_destroy(&s->base);
	return rc;
}
