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
 *
 * This file: the vtable, mount (format check), the canonical namespace
 * (stat/list/walk), small objects and remove.  Reads of canonical objects
 * and their local block cache are in s3_blocks.c, the staging side (sync,
 * reconcile at mount, rename, promote) in s3_staged.c; what the three share
 * is in s3_priv.h.
 */
#include "backend/backend.h"
#include "backend/dcache.h"
#include "backend/s3_priv.h"

#include "backend/s3_buf.h"
#include "backend/s3_client.h"
#include "backend/sigv4.h"
#include "common/config.h"
#include "common/log.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FORMAT_KEY     ".stagefs/format"
#define FORMAT_CONTENT "stagefs 1\n"

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
char *sfs_s3b_join(const char *prefix, const char *a, const char *b)
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

char *sfs_s3b_full_key(struct s3_backend *s, const char *key)
{
	return sfs_s3b_join(s->prefix, key, NULL);
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

int sfs_s3b_collect_cb(void *arg, const char *key, int is_prefix, const struct sfs_s3_objinfo *info)
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

void sfs_s3b_objlist_release(struct objlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].key);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Every object whose key starts with dir + "/" (dir is a full key). */
int sfs_s3b_list_tree(struct s3_backend *s, const char *dir, struct objlist *out)
{
	char *p = sfs_s3b_join(dir, "/", NULL);
	int rc;

	if (!p)
		return -ENOMEM;
	memset(out, 0, sizeof(*out));
	rc = sfs_s3_list(s->c, p, NULL, 0, 0, sfs_s3b_collect_cb, out);
	free(p);
	if (rc)
		sfs_s3b_objlist_release(out);
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
int sfs_s3b_prefix_exists(struct s3_backend *s, const char *dir)
{
	char *p = sfs_s3b_join(dir, "/", NULL);
	int found = 0, rc;

	if (!p)
		return -ENOMEM;
	rc = sfs_s3_list(s->c, p, "/", 1, 1, any_cb, &found);
	free(p);
	if (rc < 0)
		return rc;
	return found;
}

int sfs_s3b_delete_objlist(struct s3_backend *s, struct objlist *l)
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
	if (strncmp(key, "_staging/", 9) == 0 && key[9]) {
		/*
		 * The staging area is the local cache and the bucket's _staging/
		 * together: a file written back but never uploaded (and what a
		 * promotion put from the cache) is staged too.
		 */
		char *lp = sfs_s3b_join(s->staging_dir, "/", key + 9);
		struct stat ls;
		rc = !lp ? -ENOMEM : lstat(lp, &ls) < 0 ? -errno : 0;
		free(lp);
		if (rc == 0) {
			sfs_bstat_from_stat(&ls, st);
			return 0;
		}
		if (rc != -ENOENT && rc != -ENOTDIR)
			return rc;
	}
	fk = sfs_s3b_full_key(s, key);
	if (!fk)
		return -ENOMEM;
	/* canonical objects never change: what was seen once stays true (not so staged ones) */
	int canonical = strncmp(key, "_staging/", 9) != 0;
	uint64_t size;
	int64_t mtime = 0;
	if (canonical && sfs_s3b_block_size_get(s, fk, &size, &mtime) == 0) {
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
			sfs_s3b_block_size_put(s, fk, info.size, info.mtime_ns);
	} else if (rc == -ENOENT) {
		rc = sfs_s3b_prefix_exists(s, fk);
		if (rc == 1) {
			memset(st, 0, sizeof(*st));
			st->mode = S_IFDIR | 0755;
			rc = 0;
		} else if (rc == 0) {
			rc = -ENOENT;
		}
	}
	if (rc == 0 && listed_absent)
		sfs_s3b_written(s, key); /* the parent's listing is stale: list afresh next time */
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
void sfs_s3b_written(struct s3_backend *s, const char *key)
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
	p = key[0] ? sfs_s3b_join(s->prefix, key, "/") : strdup(s->prefix);
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
		char *fk = sfs_s3b_full_key(s, key);
		rc = fk ? sfs_s3_head(s->c, fk, NULL) : -ENOMEM;
		rc = rc == 0 ? -ENOTDIR : rc;
		free(fk);
	}
	free(p);
	return rc;
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
	char *p = key[0] ? sfs_s3b_join(s->prefix, key, "/") : strdup(s->prefix);

	if (!p)
		return -ENOMEM;
	/* one listing of the whole prefix: no delimiter, 1000 keys a page */
	int rc = sfs_s3_list(s->c, p, NULL, 0, 0, s3walk_cb, &w);
	free(p);
	return rc ? rc : w.any ? 0 : -ENOENT;
}

/* ---- small objects ---- */

/*
 * The server answered 501 to If-None-Match (the mount's probe can miss that:
 * a server may ignore the header on one request and refuse it on another):
 * no-replace checks with a HEAD first from now on.  Said once.
 */
void sfs_s3b_no_conditional_writes(struct s3_backend *s)
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
		sfs_s3b_no_conditional_writes(s);
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
	fk = sfs_s3b_full_key(s, key);
	if (!fk)
		return -ENOMEM;
	rc = put_object(s, fk, buf, n, flags);
	sfs_s3b_written(s, key);
	free(fk);
	return rc;
}

static int s3_get_bytes(struct sfs_backend *b, const char *key, void **buf, size_t *n, size_t max)
{
	struct s3_backend *s = S3(b);
	char *fk = sfs_s3b_full_key(s, key);
	int rc;

	if (!fk)
		return -ENOMEM;
	rc = sfs_s3_get(s->c, fk, buf, n, max);
	free(fk);
	return rc;
}

static int s3_remove(struct sfs_backend *b, const char *key)
{
	struct s3_backend *s = S3(b);
	char *fk = sfs_s3b_full_key(s, key);
	struct objlist l = {0};
	int rc, found = 0;

	if (s->read_only)
		return -EROFS;
	if (!fk)
		return -ENOMEM;
	sfs_s3b_block_forget(s, fk); /* first: a failed delete must not leave old sizes behind */
	rc = sfs_s3_head(s->c, fk, NULL);
	if (rc == 0) {
		found = 1;
		rc = sfs_s3_delete(s->c, fk);
	} else if (rc == -ENOENT) {
		rc = 0;
	}
	if (!rc && key[0]) {
		rc = sfs_s3b_list_tree(s, fk, &l);
		for (size_t i = 0; !rc && i < l.n; i++)
			sfs_s3b_block_forget(s, l.v[i].key);
		if (!rc && l.n) {
			found = 1;
			rc = sfs_s3b_delete_objlist(s, &l);
		}
	}
	if (!rc && !found)
		rc = -ENOENT;
	sfs_s3b_written(s, key);
	sfs_s3b_objlist_release(&l);
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

/* ---- multipart uploads left behind (fsck) ---- */

struct uploads_ctx {
	struct s3_backend *s;
	int (*cb)(void *arg, const char *key, const char *id, int64_t initiated_ns);
	void *arg;
};

static int uploads_cb(void *arg, const char *key, const char *id, int64_t initiated_ns)
{
	struct uploads_ctx *u = arg;
	size_t n = strlen(u->s->prefix);

	if (strncmp(key, u->s->prefix, n) != 0)
		return 0; /* another store's, in the same bucket */
	return u->cb(u->arg, key + n, id, initiated_ns);
}

static int s3_uploads(struct sfs_backend *b,
		      int (*cb)(void *arg, const char *key, const char *id, int64_t initiated_ns),
		      void *arg)
{
	struct s3_backend *s = S3(b);
	struct uploads_ctx u = {s, cb, arg};

	return sfs_s3_list_uploads(s->c, s->prefix, uploads_cb, &u);
}

static int s3_abort_upload(struct sfs_backend *b, const char *key, const char *id)
{
	struct s3_backend *s = S3(b);
	char *fk;
	int rc;

	if (s->read_only)
		return -EROFS;
	fk = sfs_s3b_join(s->prefix, key, NULL);
	if (!fk)
		return -ENOMEM;
	rc = sfs_s3_abort_upload(s->c, fk, id);
	free(fk);
	return rc;
}

static const struct sfs_backend_ops s3_ops = {
	.name = "s3",
	.caps = SFS_BCAP_STAGING_CACHE,
	.set_journal = s3_set_journal,
	.staging_dir = sfs_s3b_staging_dir,
	.staged_sync = sfs_s3b_staged_sync,
	.staged_unlink = sfs_s3b_staged_unlink,
	.staged_remove = sfs_s3b_staged_remove,
	.staged_fetch = sfs_s3b_staged_fetch,
	.staged_rename = sfs_s3b_staged_rename,
	.stat = s3_stat,
	.list = s3_list,
	.walk = s3_walk,
	.open = sfs_s3b_open,
	.pread = sfs_s3b_pread,
	.close = sfs_s3b_close,
	.put_bytes = s3_put_bytes,
	.get_bytes = s3_get_bytes,
	.promote = sfs_s3b_promote,
	.remove = s3_remove,
	.move = sfs_s3b_move,
	.uploads = s3_uploads,
	.abort_upload = s3_abort_upload,
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
	char *fk = sfs_s3b_full_key(s, FORMAT_KEY);
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
	/*
	 * And on CompleteMultipartUpload, which a conditional copy ends with?  Ceph
	 * RGW 16.2 honours it on PUT but not there (and answers with an empty ETag):
	 * a conditional copy would overwrite.  The marker copied onto itself
	 * conditionally: 412 = honoured; 2xx = ignored (it is rewritten with its
	 * own bytes).
	 */
	s->cond_complete = 0;
	if (s->cond_put) {
		rc = sfs_s3_copy(s->c, fk, fk, strlen(FORMAT_CONTENT), SFS_S3_IF_NONE_MATCH);
		s->cond_complete = rc == -EEXIST;
		if (!s->cond_complete)
			sfs_log(LOG_INFO,
				"s3: '%s' ignores If-None-Match on CompleteMultipartUpload; a "
				"no-replace copy uses HEAD then copy",
				sfs_s3_client_endpoint(s->c));
	}
	/* a server that sends keys raw cannot list a staged name with a control character */
	rc = sfs_s3_list_encodes(s->c, s->prefix);
	if (rc == 0) {
		s->base.limits |= SFS_BLIM_NO_CONTROL_NAMES;
		sfs_log(LOG_INFO,
			"s3: '%s' ignores encoding-type=url; staged names with control characters "
			"are refused",
			sfs_s3_client_endpoint(s->c));
	}
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