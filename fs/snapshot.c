/* fs/snapshot.c - see snapshot.h */
#include "fs/snapshot.h"
#include "fs/snapshot_priv.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fault.h"
#include "common/fsutil.h"
#include "common/gz.h"
#include "common/log.h"
#include "index/addressing.h"

#define PART_ENTRIES 10000	 /* entries per part: a part in memory is a few MB */
#define HEAD_MAX     (64u << 20) /* bytes of a head we read */

int sfs_snap_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > 128 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 0;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
	       n;
}

char *sfs_snap_key(const char *name, const char *leaf)
{
	char *k = NULL;

	if (asprintf(&k, SFS_SNAPSHOTS "/%s%s%s", name, leaf ? "/" : "", leaf ? leaf : "") < 0)
		return NULL;
	return k;
}

static void say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

char *sfs_snap_jeval(const char *expr, int n, const char *const *args)
{
	char *s = NULL;

	return sfs_json_eval(expr, n, args, &s) == 0 ? s : NULL;
}

int sfs_snap_head(struct sfs_backend *be, const char *name, char **head, char **deleted)
{
	char *hk = sfs_snap_key(name, HEAD_LEAF), *dk = sfs_snap_key(name, DELETED_LEAF), *h = NULL,
	     *d = NULL;
	int rc = hk && dk ? 0 : -ENOMEM;

	if (!rc)
		rc = sfs_backend_get_text(be, hk, HEAD_MAX, &h);
	if (!rc || rc == -ENOENT) {
		int drc = sfs_backend_get_text(be, dk, HEAD_MAX, &d);
		if (drc == 0)
			rc = -ESTALE;
		else if (drc != -ENOENT && !rc)
			rc = drc;
	}
	if (rc == -ESTALE && deleted) {
		*deleted = d;
		d = NULL;
	}
	if (!rc && head) {
		*head = h;
		h = NULL;
	}
	free(h);
	free(d);
	free(hk);
	free(dk);
	return rc;
}

/* ---- the live manifest ---- */

struct build {
	struct sfs_backend *be;
	struct sfs_index *ix;
	struct sfs_snapdb *db;
	char *last_dir; /* the last directory whose ancestors are in */
	char *last_obj; /* the last directory object whose metadata is in */
	uint64_t n;
	const struct sfs_publish *p;
};

static void progress(struct build *b, const char *what, uint64_t done, uint64_t total)
{
	if (b->p && b->p->progress)
		b->p->progress(b->p->arg, what, done, total);
}

/* path's directories up to the root are entries (cheap when the parent is the last one seen). */
static int add_ancestors(struct build *b, const char *path)
{
	char *dir = strdup(path), *slash;
	int rc = 0;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash) {
		free(dir);
		return 0;
	}
	*slash = '\0';
	if (b->last_dir && strcmp(b->last_dir, dir) == 0) {
		free(dir);
		return 0;
	}
	for (char *d = dir; !rc;) {
		struct sfs_snap_ent e = {.path = d, .is_dir = 1};
		rc = sfs_snapdb_add(b->db, &e);
		char *s = strrchr(d, '/');
		if (!s)
			break;
		*s = '\0';
		/* the rest is in when this is a prefix of the last directory */
		if (b->last_dir && strncmp(b->last_dir, d, strlen(d)) == 0 &&
		    (b->last_dir[strlen(d)] == '/' || !b->last_dir[strlen(d)]))
			break;
	}
	free(b->last_dir);
	b->last_dir = strdup(path);
	if (b->last_dir)
		*strrchr(b->last_dir, '/') = '\0';
	free(dir);
	return rc;
}

/* A directory object's own entry, with its receipt (once per object). */
static int add_object_dir(struct build *b, const char *obj)
{
	char *meta = NULL;

	if (b->last_obj && strcmp(b->last_obj, obj) == 0)
		return 0;
	free(b->last_obj);
	b->last_obj = strdup(obj);
	if (sfs_index_object_metadata(b->ix, obj, &meta) != 0)
		return 0;
	struct sfs_snap_ent e = {.path = obj, .is_dir = 1, .object = obj, .metadata = meta};
	int rc = add_ancestors(b, obj);
	if (!rc)
		rc = sfs_snapdb_add(b->db, &e);
	free(meta);
	return rc;
}

static int walk_cb(void *arg, const char *key, const struct sfs_bstat *st)
{
	struct build *b = arg;
	char md5[33] = "", *obj = NULL, *meta = NULL;
	int rc = add_ancestors(b, key);

	if (rc)
		return rc;
	if (S_ISDIR(st->mode)) {
		if (sfs_index_object_metadata(b->ix, key, &meta) == 0)
			obj = strdup(key);
	} else if (sfs_index_file_md5(b->ix, key, md5, &obj) == 0) {
		if (obj && strcmp(obj, key) == 0)
			rc = sfs_index_object_metadata(b->ix, key, &meta) == -ENOMEM ? -ENOMEM : 0;
		else if (obj)
			rc = add_object_dir(b, obj);
	} else if (st->md5[0]) {
		memcpy(md5, st->md5, 33); /* the store knows it (a plain S3 ETag) */
	}
	struct sfs_snap_ent e = {
		.path = key,
		.is_dir = S_ISDIR(st->mode),
		.size = st->size,
		.mtime_ns = st->mtime_ns,
		.md5 = md5[0] ? md5 : NULL,
		.object = obj,
		.metadata = meta,
	};
	if (!rc)
		rc = sfs_snapdb_add(b->db, &e);
	free(obj);
	free(meta);
	if (!rc && ++b->n % 1000 == 0)
		progress(b, "listing", b->n, 0);
	return rc;
}

/* Is p a store key equal to or under one of the canonical roots? */
static int prefix_ok(const struct sfs_config *cfg, const char *p)
{
	const char *roots[2] = {cfg->schema_prefix ? cfg->schema_prefix : "_schema",
				cfg->hash_prefix ? cfg->hash_prefix : "_hash"};

	if (!p[0] || p[0] == '/' || p[strlen(p) - 1] == '/' || strstr(p, "//") ||
	    strcmp(p, "..") == 0 || strncmp(p, "../", 3) == 0 || strstr(p, "/../") ||
	    (strlen(p) >= 3 && strcmp(p + strlen(p) - 3, "/..") == 0) || strstr(p, "/./") ||
	    strncmp(p, "./", 2) == 0)
		return 0;
	for (int i = 0; i < 2; i++) {
		size_t n = strlen(roots[i]);
		if (n && strncmp(p, roots[i], n) == 0 && (p[n] == '\0' || p[n] == '/'))
			return 1;
	}
	return 0;
}

struct missing {
	struct sfs_snapdb *db;
	char *first;
	uint64_t n;
};

static int missing_cb(void *arg, const char *path, const char *metadata)
{
	struct missing *m = arg;

	if (sfs_snapdb_has(m->db, path))
		return 0;
	if (!m->first)
		m->first = strdup(path);
	m->n++;
	return 0;
}

struct under {
	const char *prefix;
	uint64_t known, found;
};

static int count_known(void *arg, const char *path, const char *metadata)
{
	(void)path;
	(void)metadata;
	((struct under *)arg)->known++;
	return 0;
}

static int count_found(void *arg, const char *object)
{
	struct under *u = arg;
	size_t n = strlen(u->prefix);

	if (strncmp(object, u->prefix, n) == 0 && (object[n] == '\0' || object[n] == '/'))
		u->found++;
	return 0;
}

struct hash_ctx {
	struct sfs_backend *be;
	struct sfs_snapdb *db;
	uint64_t n;
	struct build *b;
};

static int hash_missing(void *arg, const char *path, uint64_t size)
{
	struct hash_ctx *h = arg;
	char md5[33];
	uint64_t got = 0;
	int rc = sfs_snap_md5_object(h->be, path, md5, &got);

	if (rc)
		return sfs_err(rc, "snapshot: cannot read '%s' to digest it", path);
	if (++h->n % 100 == 0)
		progress(h->b, "reading files the index does not know", h->n, 0);
	return sfs_snapdb_set_md5(h->db, path, md5);
}

static int build_live(struct sfs_backend *be, struct sfs_index *ix, const struct sfs_config *cfg,
		      const char *const *prefixes, size_t nprefixes, struct sfs_snapdb *db,
		      const struct sfs_publish *p, char *why, size_t whylen)
{
	const char *defaults[2] = {cfg->schema_prefix ? cfg->schema_prefix : "_schema",
				   cfg->hash_prefix ? cfg->hash_prefix : "_hash"};
	struct build b = {.be = be, .ix = ix, .db = db, .p = p};
	int rc = 0;

	if (!nprefixes) {
		prefixes = defaults;
		nprefixes = strcmp(defaults[0], defaults[1]) ? 2 : 1;
	}
	for (size_t i = 0; i < nprefixes; i++)
		if (!prefix_ok(cfg, prefixes[i])) {
			say(why, whylen, "prefix '%s' is not under %s/ or %s/", prefixes[i],
			    defaults[0], defaults[1]);
			return -EINVAL;
		}
	rc = sfs_snapdb_begin(db);
	for (size_t i = 0; !rc && i < nprefixes; i++) {
		struct sfs_bstat st;
		int src = sfs_backend_stat(be, prefixes[i], &st);
		if (src == -ENOENT && !p->nprefixes)
			continue; /* a canonical root with no object yet */
		if (src == -ENOENT) {
			say(why, whylen, "prefix '%s' holds no canonical object", prefixes[i]);
			rc = -EINVAL;
			break;
		}
		if (src) {
			rc = src;
			break;
		}
		/* the prefix itself, then everything below it */
		rc = walk_cb(&b, prefixes[i], &st);
		if (!rc && S_ISDIR(st.mode)) {
			rc = sfs_backend_walk(be, prefixes[i], walk_cb, &b);
			if (rc == -ENOENT)
				rc = 0;
		}
	}
	rc = sfs_snapdb_end(db, rc);
	free(b.last_dir);
	free(b.last_obj);
	if (rc)
		return rc;
	/* every object the index knows must be in the store: the counts first (the walk found
	   only objects the index knows), name by name only when they differ */
	for (size_t i = 0; !rc && i < nprefixes; i++) {
		struct missing m = {.db = db};
		struct under u = {.prefix = prefixes[i]};
		rc = sfs_index_objects_under(ix, prefixes[i], count_known, &u);
		if (!rc)
			rc = sfs_snapdb_each_object(db, count_found, &u);
		if (rc || u.known == u.found)
			continue;
		rc = sfs_index_objects_under(ix, prefixes[i], missing_cb, &m);
		if (!rc && m.n) {
			say(why, whylen,
			    "%llu objects of the index are not in the store ('%s' first); run "
			    "stagefs fsck",
			    (unsigned long long)m.n, m.first ? m.first : "?");
			rc = -ENOENT;
		}
		free(m.first);
	}
	/* files the index does not know (committed on another host): read their bytes */
	struct hash_ctx h = {.be = be, .db = db, .b = &b};
	if (!rc)
		rc = sfs_snapdb_each_missing_md5(db, hash_missing, &h);
	if (!rc && h.n)
		sfs_log(LOG_NOTICE, "snapshot: read %llu files the local index does not know",
			(unsigned long long)h.n);
	return rc;
}

int sfs_snap_build_live(struct sfs_backend *be, struct sfs_index *ix, const struct sfs_config *cfg,
			const char *const *prefixes, size_t nprefixes, struct sfs_snapdb *db,
			char *why, size_t whylen)
{
	struct sfs_publish none = {.nprefixes = nprefixes};

	return build_live(be, ix, cfg, prefixes, nprefixes, db, &none, why, whylen);
}

int sfs_snap_md5_object(struct sfs_backend *be, const char *key, char md5[33], uint64_t *size)
{
	struct sfs_bfile *f = NULL;
	struct sfs_md5 m;
	unsigned char md[16];
	size_t bufsz = 1 << 20;
	char *buf = malloc(bufsz);
	uint64_t off = 0;
	int rc = buf ? sfs_backend_open_obj(be, key, &f) : -ENOMEM;

	if (!rc)
		rc = sfs_md5_init(&m);
	else
		goto out;
	for (;;) {
		ssize_t n = sfs_backend_pread(be, f, buf, bufsz, (off_t)off);
		if (n < 0) {
			rc = (int)n;
			break;
		}
		if (n == 0)
			break;
		sfs_md5_update(&m, buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (rc) {
		sfs_md5_release(&m);
	} else {
		sfs_md5_final(&m, md);
		sfs_md5_hex(md, md5);
		if (size)
			*size = off;
	}
out:
	sfs_backend_close_obj(be, f);
	free(buf);
	return rc;
}

/* ---- publish ---- */

char *sfs_snap_md5hex(const void *buf, size_t n)
{
	struct sfs_md5 m;
	unsigned char md[16];
	char *hex = malloc(33);

	if (!hex || sfs_md5_init(&m) != 0) {
		free(hex);
		return NULL;
	}
	sfs_md5_update(&m, buf, n);
	sfs_md5_final(&m, md);
	sfs_md5_hex(md, hex);
	return hex;
}

/* Write db's entries as parts under prefix; *parts gets the head's "parts" array. */
static int write_parts(struct sfs_backend *be, struct sfs_snapdb *db, const char *prefix,
		       struct build *b, uint64_t total, char **parts)
{
	char *after = NULL, *arr = strdup("[]");
	uint64_t done = 0;
	int rc = arr ? 0 : -ENOMEM;

	for (int k = 0; !rc; k++) {
		char *json = NULL, *key = NULL, *hex = NULL, num[32], bytes[32];
		void *gz = NULL;
		size_t cnt = 0, gzn = 0;

		rc = sfs_snapdb_part(db, &after, PART_ENTRIES, &json, &cnt);
		if (rc || !cnt)
			break;
		rc = sfs_gzip(json, strlen(json), &gz, &gzn);
		free(json);
		if (!rc && asprintf(&key, "%s/part-%05d.json.gz", prefix, k) < 0)
			rc = -ENOMEM;
		if (!rc && !(hex = sfs_snap_md5hex(gz, gzn)))
			rc = -ENOMEM;
		if (!rc)
			rc = sfs_backend_put_bytes(be, key, gz, gzn, SFS_NOREPLACE);
		if (!rc) {
			snprintf(num, sizeof(num), "%zu", cnt);
			snprintf(bytes, sizeof(bytes), "%zu", gzn);
			char *na = sfs_snap_jeval(
				"json_insert(?1,'$[#]',json_object('key',?2,'entries',"
				"CAST(?3 AS INTEGER),'bytes',CAST(?4 AS INTEGER),'md5',?5))",
				5, (const char *const[]){arr, key, num, bytes, hex});
			if (na) {
				free(arr);
				arr = na;
			} else {
				rc = -ENOMEM;
			}
		}
		done += cnt;
		progress(b, "writing the manifest", done, total);
		free(gz);
		free(key);
		free(hex);
	}
	free(after);
	if (rc) {
		free(arr);
		return rc;
	}
	*parts = arr;
	return 0;
}

static char *json_strings(const char *const *v, size_t n)
{
	char *arr = strdup("[]");

	for (size_t i = 0; arr && i < n; i++) {
		char *na = sfs_snap_jeval("json_insert(?1,'$[#]',?2)", 2,
					  (const char *const[]){arr, v[i]});
		free(arr);
		arr = na;
	}
	return arr;
}

static char *json_ints(const int *v, int n)
{
	char *arr = strdup("[]"), num[16];

	for (int i = 0; arr && i < n; i++) {
		snprintf(num, sizeof(num), "%d", v[i]);
		char *na = sfs_snap_jeval("json_insert(?1,'$[#]',CAST(?2 AS INTEGER))", 2,
					  (const char *const[]){arr, num});
		free(arr);
		arr = na;
	}
	return arr;
}

/* "published on <created>" / "deleted on <date>" for a name that is taken */
static void taken_why(struct sfs_backend *be, const char *name, char *why, size_t whylen)
{
	char *head = NULL, *del = NULL, *when = NULL;
	int rc = sfs_snap_head(be, name, &head, &del);

	if (rc == -ESTALE && del)
		when = sfs_snap_jeval("json_extract(?1,'$.deleted')", 1,
				      (const char *const[]){del});
	else if (!rc && head)
		when = sfs_snap_jeval("json_extract(?1,'$.created')", 1,
				      (const char *const[]){head});
	if (rc == -ESTALE)
		say(why, whylen,
		    "snapshot '%s' was deleted on %s; a deleted name is never used again", name,
		    when ? when : "?");
	else
		say(why, whylen, "snapshot '%s' exists (published %s)", name, when ? when : "?");
	free(head);
	free(del);
	free(when);
}

int sfs_snap_publish(struct sfs_backend *be, struct sfs_index *ix, const struct sfs_config *cfg,
		     const struct sfs_publish *p, char **head_out, char *why, size_t whylen)
{
	struct sfs_snapdb *db = NULL;
	struct sfs_snap_count cnt;
	struct build b = {.p = p};
	char checksum[SFS_ZARR_CHECKSUM_MAX], created[48], host[256] = "", id[17];
	char *parts = NULL, *prefix = NULL, *hk = NULL, *head = NULL, *pre = NULL, *sub = NULL;
	int rc;

	if (!sfs_snap_name_ok(p->name)) {
		say(why, whylen, "'%s' is not a snapshot name ([A-Za-z0-9._-]{1,128})", p->name);
		return -EINVAL;
	}
	rc = sfs_snap_head(be, p->name, NULL, NULL);
	if (rc == 0 || rc == -ESTALE) {
		taken_why(be, p->name, why, whylen);
		return -EEXIST;
	}
	if (rc != -ENOENT)
		return rc;
	if (p->tmpdir)
		setenv("TMPDIR", p->tmpdir, 0);
	rc = sfs_snapdb_open(NULL, &db);
	if (!rc)
		rc = build_live(be, ix, cfg, p->prefixes, p->nprefixes, db, p, why, whylen);
	if (!rc)
		rc = sfs_snapdb_count(db, &cnt);
	if (!rc)
		rc = sfs_snapdb_seal(
			db); /* parent/name: the checksum walks it a directory at a time */
	if (!rc)
		rc = sfs_snapdb_checksum(db, checksum, sizeof(checksum));
	if (!rc)
		rc = sfs_token_new(16, id);
	if (rc)
		goto out;
	/* a publish of its own: a second publish of the name never touches these */
	if (asprintf(&prefix, SFS_SNAPSHOTS "/%s/%s", p->name, id) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	rc = write_parts(be, db, prefix, &b, cnt.entries, &parts);
	if (!rc && sfs_fault("publish-parts-written"))
		rc = -EIO;
	if (rc)
		goto out;
	sfs_now_iso(created, sizeof(created));
	(void)gethostname(host, sizeof(host) - 1);
	pre = json_strings(p->prefixes, p->nprefixes);
	sub = json_ints(cfg->subfolding, cfg->n_subfolding);
	char n_e[24], n_f[24], n_d[24], n_o[24], n_b[24], tl[16];
	snprintf(n_e, sizeof(n_e), "%llu", (unsigned long long)cnt.entries);
	snprintf(n_f, sizeof(n_f), "%llu", (unsigned long long)cnt.files);
	snprintf(n_d, sizeof(n_d), "%llu", (unsigned long long)cnt.dirs);
	snprintf(n_o, sizeof(n_o), "%llu", (unsigned long long)cnt.objects);
	snprintf(n_b, sizeof(n_b), "%llu", (unsigned long long)cnt.bytes);
	snprintf(tl, sizeof(tl), "%d", cfg->token_length ? cfg->token_length : 8);
	head = pre && sub
		       ? sfs_snap_jeval(
				 "json_object('format','stagefs-snapshot','version',1,'name',?1,"
				 "'created',?2,'host',?3,'message',?4,'publish_id',?5,"
				 "'store',json_object('store_name',?6,'schema_prefix',?7,"
				 "'hash_prefix',?8,'subfolding',json(?9),'partition_pattern',?10,"
				 "'token_length',CAST(?11 AS INTEGER)),'prefixes',json(?12),"
				 "'entries',CAST(?13 AS INTEGER),'files',CAST(?14 AS INTEGER),"
				 "'dirs',CAST(?15 AS INTEGER),'objects',CAST(?16 AS INTEGER),"
				 "'bytes',CAST(?17 AS INTEGER),'checksum',?18,'parts',json(?19))",
				 19,
				 (const char *const[]){p->name, created, host, p->message, id,
						       cfg->store_name ? cfg->store_name
								       : "stagefs",
						       cfg->schema_prefix, cfg->hash_prefix, sub,
						       cfg->partition_pattern, tl, pre, n_e, n_f,
						       n_d, n_o, n_b, checksum, parts})
		       : NULL;
	hk = sfs_snap_key(p->name, HEAD_LEAF);
	if (!head || !hk) {
		rc = -ENOMEM;
		goto out;
	}
	/* the claim: whoever writes the head first owns the name */
	rc = sfs_backend_put_bytes(be, hk, head, strlen(head), SFS_NOREPLACE);
	if (rc == -EEXIST)
		taken_why(be, p->name, why, whylen);
	if (rc)
		goto out;
	(void)sfs_fault("publish-head-written"); /* a crash here: the whole snapshot is there */
	sfs_log(LOG_INFO, "published snapshot '%s': %llu entries, %llu bytes, checksum %s", p->name,
		(unsigned long long)cnt.entries, (unsigned long long)cnt.bytes, checksum);
	*head_out = head;
	head = NULL;
out:
	if (rc && prefix && parts) {
		/* lost the claim or failed: the parts of this publish go (nobody refers to them) */
		int rrc = sfs_backend_remove(be, prefix);
		if (rrc && rrc != -ENOENT)
			sfs_log(LOG_WARNING, "snapshot: cannot remove '%s': %s", prefix,
				strerror(-rrc));
	}
	sfs_snapdb_close(db);
	free(parts);
	free(prefix);
	free(hk);
	free(head);
	free(pre);
	free(sub);
	return rc;
}
