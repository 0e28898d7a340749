/* index/zarr_checksum.c - the DANDI zarr checksum (see index/addressing.h). */
#include "index/addressing.h"
#include "index/addressing_priv.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct zc_file {
	char *path;
	char md5[33];
	uint64_t size;
};

struct sfs_zarr_checksum {
	struct zc_file *files;
	size_t n, cap;
};

/* A growable string; len excludes the NUL. */
struct zbuf {
	char *p;
	size_t len, cap;
};

static int zbuf_put(struct zbuf *b, const char *s, size_t n)
{
	if (n >= b->cap - b->len || !b->p) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (n >= cap - b->len) {
			if (cap > SIZE_MAX / 2)
				return -ENOMEM;
			cap *= 2;
		}
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* Append JSON text s with every byte outside ' '..'~' as \uXXXX (Python ensure_ascii). */
static int zbuf_put_ascii(struct zbuf *b, const char *s, size_t n)
{
	size_t i = 0, run;
	uint32_t cp;
	char e[16];
	int rc = 0;

	while (!rc && i < n) {
		for (run = 0; i + run < n && s[i + run] >= ' ' && s[i + run] <= '~'; run++)
			;
		rc = zbuf_put(b, s + i, run);
		i += run;
		if (rc || i == n)
			break;
		run = sfs_ad_utf8_seq((const unsigned char *)s + i, n - i, &cp);
		if (!run)
			return -EINVAL;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			snprintf(e, sizeof(e), "\\u%04x\\u%04x", 0xd800 + ((cp >> 10) & 0x3ff),
				 0xdc00 + (cp & 0x3ff));
		} else {
			snprintf(e, sizeof(e), "\\u%04x", (unsigned int)cp);
		}
		rc = zbuf_put(b, e, strlen(e));
		i += run;
	}
	return rc;
}

int sfs_zarr_checksum_new(struct sfs_zarr_checksum **out)
{
	struct sfs_zarr_checksum *z = calloc(1, sizeof(*z));

	if (!z)
		return -ENOMEM;
	*out = z;
	return 0;
}

int sfs_zarr_checksum_add(struct sfs_zarr_checksum *z, const char *relpath, const char md5hex[33],
			  uint64_t size)
{
	size_t len, seg = 0;
	struct zc_file *f;

	if (!relpath || !md5hex || size > INT64_MAX)
		return -EINVAL;
	len = strlen(relpath);
	if (!len || !sfs_ad_utf8_valid(relpath, len))
		return -EINVAL;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && relpath[i] != '/')
			continue;
		/* segment relpath[seg..i) */
		if (i == seg || (i - seg == 1 && relpath[seg] == '.') ||
		    (i - seg == 2 && relpath[seg] == '.' && relpath[seg + 1] == '.'))
			return -EINVAL;
		seg = i + 1;
	}
	if (strlen(md5hex) != 32 || strspn(md5hex, "0123456789abcdef") != 32)
		return -EINVAL;
	if (z->n == z->cap) {
		size_t cap = z->cap ? z->cap * 2 : 64;
		void *p = cap < SIZE_MAX / sizeof(*z->files) ? realloc(z->files, cap * sizeof(*f))
							     : NULL;
		if (!p)
			return -ENOMEM;
		z->files = p;
		z->cap = cap;
	}
	f = &z->files[z->n];
	f->path = malloc(len + 1);
	if (!f->path)
		return -ENOMEM;
	memcpy(f->path, relpath, len + 1);
	memcpy(f->md5, md5hex, 33);
	f->size = size;
	z->n++;
	return 0;
}

/*
 * Order paths component by component ('/' sorts before every other byte,
 * the end of a path before '/'): the files of one directory are contiguous,
 * each subtree is contiguous, and names compare in byte order.
 */
static int zc_cmp(const void *a, const void *b)
{
	const unsigned char *x = (const unsigned char *)((const struct zc_file *)a)->path;
	const unsigned char *y = (const unsigned char *)((const struct zc_file *)b)->path;

	for (;; x++, y++) {
		int cx = *x == '/' ? 1 : *x ? *x + 1 : 0;
		int cy = *y == '/' ? 1 : *y ? *y + 1 : 0;

		if (cx != cy || !cx)
			return cx - cy;
	}
}

struct zc_run {
	sqlite3_stmt *entry; /* json_object('digest',?1,'name',?2,'size',?3) */
};

static int zc_entry(struct zc_run *r, struct zbuf *b, const char *digest, const char *name,
		    size_t nlen, uint64_t size)
{
	sqlite3_stmt *st = r->entry;
	int rc;

	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, digest, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, (int)nlen, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)size);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return sfs_ad_sqlite_errno(rc);
	rc = 0;
	if (b->len)
		rc = zbuf_put(b, ",", 1);
	if (!rc)
		rc = zbuf_put_ascii(b, (const char *)sqlite3_column_text(st, 0),
				    (size_t)sqlite3_column_bytes(st, 0));
	sqlite3_reset(st);
	return rc;
}

/* Checksum of the directory holding files[lo..hi), whose paths continue at byte off. */
static int zc_dir(struct zc_run *r, const struct zc_file *files, size_t lo, size_t hi, size_t off,
		  char digest[SFS_ZARR_CHECKSUM_MAX], uint64_t *count, uint64_t *size)
{
	struct zbuf dirs = {0}, fls = {0}, man = {0};
	uint64_t total = 0, n = 0;
	unsigned char md5[16];
	char hex[33];
	int rc = 0;

	for (size_t i = lo; !rc && i < hi;) {
		const char *name = files[i].path + off, *slash = strchr(name, '/');
		char sub[SFS_ZARR_CHECKSUM_MAX];
		uint64_t c, s;
		size_t j, nlen;

		if (!slash) {
			if (files[i].size > INT64_MAX - total) {
				rc = -EOVERFLOW;
				break;
			}
			rc = zc_entry(r, &fls, files[i].md5, name, strlen(name), files[i].size);
			total += files[i].size;
			n++;
			i++;
			continue;
		}
		nlen = (size_t)(slash - name);
		for (j = i + 1; j < hi; j++) {
			const char *o = files[j].path + off;
			if (strncmp(o, name, nlen) || o[nlen] != '/')
				break;
		}
		rc = zc_dir(r, files, i, j, off + nlen + 1, sub, &c, &s);
		if (!rc && s > INT64_MAX - total)
			rc = -EOVERFLOW;
		if (!rc)
			rc = zc_entry(r, &dirs, sub, name, nlen, s);
		total += s;
		n += c;
		i = j;
	}
	if (!rc)
		rc = zbuf_put(&man, "{\"directories\":[", 16);
	if (!rc && dirs.len)
		rc = zbuf_put(&man, dirs.p, dirs.len);
	if (!rc)
		rc = zbuf_put(&man, "],\"files\":[", 11);
	if (!rc && fls.len)
		rc = zbuf_put(&man, fls.p, fls.len);
	if (!rc)
		rc = zbuf_put(&man, "]}", 2);
	if (!rc)
		rc = sfs_ad_md5_buf(man.p, man.len, md5);
	if (!rc) {
		sfs_md5_hex(md5, hex);
		snprintf(digest, SFS_ZARR_CHECKSUM_MAX, "%s-%llu--%llu", hex, (unsigned long long)n,
			 (unsigned long long)total);
		*count = n;
		*size = total;
	}
	free(dirs.p);
	free(fls.p);
	free(man.p);
	return rc;
}

int sfs_zarr_checksum_final(struct sfs_zarr_checksum *z, char *out, size_t outlen)
{
	static const char sql[] = "SELECT json_object('digest', ?1, 'name', ?2, 'size', ?3)";
	struct zc_run r = {NULL};
	char digest[SFS_ZARR_CHECKSUM_MAX];
	uint64_t count, size;
	sqlite3 *db = NULL;
	int rc;

	if (z->n)
		qsort(z->files, z->n, sizeof(*z->files), zc_cmp);
	/* sorted: a duplicate or a file that is also a directory sits right before its twin */
	for (size_t i = 0; i + 1 < z->n; i++) {
		size_t l = strlen(z->files[i].path);
		const char *next = z->files[i + 1].path;

		if (!strncmp(z->files[i].path, next, l) && (next[l] == '\0' || next[l] == '/'))
			return -EINVAL;
	}
	rc = sfs_ad_json_db(&db);
	if (rc)
		goto out;
	rc = sqlite3_prepare_v2(db, sql, -1, &r.entry, NULL);
	if (rc != SQLITE_OK) {
		rc = sfs_ad_sqlite_errno(rc);
		goto out;
	}
	rc = zc_dir(&r, z->files, 0, z->n, 0, digest, &count, &size);
	if (rc)
		goto out;
	if (strlen(digest) >= outlen) {
		rc = -ERANGE;
		goto out;
	}
	memcpy(out, digest, strlen(digest) + 1);
out:
	sqlite3_finalize(r.entry);
	sqlite3_close(db);
	return rc;
}

void sfs_zarr_checksum_free(struct sfs_zarr_checksum *z)
{
	if (!z)
		return;
	for (size_t i = 0; i < z->n; i++)
		free(z->files[i].path);
	free(z->files);
	free(z);
}

/* ---- the same checksum over a tree read directory by directory ---- */

struct zt_sub {
	int64_t id;
	char *name;
};

struct zt_subs {
	struct zt_sub *v;
	size_t n, cap;
};

static int zt_sub_cb(void *arg, int64_t id, const char *name)
{
	struct zt_subs *s = arg;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct zt_sub *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	if (!(s->v[s->n].name = strdup(name)))
		return -ENOMEM;
	s->v[s->n++].id = id;
	return 0;
}

struct zt_files {
	struct zc_run *r;
	struct sfs_md5 *m;
	struct zbuf one;
	uint64_t n, total;
	int any;
};

static int zt_file_cb(void *arg, const char *name, const char md5hex[33], uint64_t size)
{
	struct zt_files *f = arg;
	int rc;

	if (!md5hex || strlen(md5hex) != 32 || size > INT64_MAX - f->total)
		return !md5hex || strlen(md5hex) != 32 ? -EINVAL : -EOVERFLOW;
	f->one.len = 0;
	rc = zc_entry(f->r, &f->one, md5hex, name, strlen(name), size);
	if (rc)
		return rc;
	/* zc_entry wrote no comma into an empty buffer: the manifest's separator is ours */
	if (f->any)
		sfs_md5_update(f->m, ",", 1);
	sfs_md5_update(f->m, f->one.p, f->one.len);
	f->any = 1;
	f->n++;
	f->total += size;
	return 0;
}

static int zt_dir(struct zc_run *r, const struct sfs_zarr_tree *t, int64_t dir, int depth,
		  char digest[SFS_ZARR_CHECKSUM_MAX], uint64_t *count, uint64_t *size)
{
	struct zt_subs subs = {0};
	struct zbuf dirs = {0};
	struct sfs_md5 m;
	struct zt_files f = {.r = r, .m = &m};
	uint64_t n = 0, total = 0;
	unsigned char md5[16];
	char hex[33];
	int rc = depth > 4096 ? -ELOOP : t->subdirs(t->arg, dir, zt_sub_cb, &subs);

	for (size_t i = 0; !rc && i < subs.n; i++) {
		char sub[SFS_ZARR_CHECKSUM_MAX];
		uint64_t c = 0, s = 0;
		rc = zt_dir(r, t, subs.v[i].id, depth + 1, sub, &c, &s);
		if (rc || !c)
			continue; /* a directory without files does not exist for the checksum */
		if (s > INT64_MAX - total)
			rc = -EOVERFLOW;
		else
			rc = zc_entry(r, &dirs, sub, subs.v[i].name, strlen(subs.v[i].name), s);
		total += s;
		n += c;
	}
	for (size_t i = 0; i < subs.n; i++)
		free(subs.v[i].name);
	free(subs.v);
	if (!rc)
		rc = sfs_md5_init(&m);
	if (rc) {
		free(dirs.p);
		return rc;
	}
	sfs_md5_update(&m, "{\"directories\":[", 16);
	if (dirs.len)
		sfs_md5_update(&m, dirs.p, dirs.len);
	sfs_md5_update(&m, "],\"files\":[", 11);
	rc = t->files(t->arg, dir, zt_file_cb, &f);
	sfs_md5_update(&m, "]}", 2);
	sfs_md5_final(&m, md5);
	free(dirs.p);
	free(f.one.p);
	if (!rc && f.total > INT64_MAX - total)
		rc = -EOVERFLOW;
	if (rc)
		return rc;
	n += f.n;
	total += f.total;
	sfs_md5_hex(md5, hex);
	snprintf(digest, SFS_ZARR_CHECKSUM_MAX, "%s-%llu--%llu", hex, (unsigned long long)n,
		 (unsigned long long)total);
	*count = n;
	*size = total;
	return 0;
}

int sfs_zarr_checksum_tree(const struct sfs_zarr_tree *t, int64_t root, char *out, size_t outlen)
{
	static const char sql[] = "SELECT json_object('digest', ?1, 'name', ?2, 'size', ?3)";
	struct zc_run r = {NULL};
	char digest[SFS_ZARR_CHECKSUM_MAX];
	uint64_t count = 0, size = 0;
	sqlite3 *db = NULL;
	int rc = sfs_ad_json_db(&db);

	if (rc)
		return rc;
	rc = sqlite3_prepare_v2(db, sql, -1, &r.entry, NULL);
	if (rc != SQLITE_OK) {
		rc = sfs_ad_sqlite_errno(rc);
		goto out;
	}
	rc = zt_dir(&r, t, root, 0, digest, &count, &size);
	if (!rc && strlen(digest) >= outlen)
		rc = -ERANGE;
	if (!rc)
		memcpy(out, digest, strlen(digest) + 1);
out:
	sqlite3_finalize(r.entry);
	sqlite3_close(db);
	return rc;
}
