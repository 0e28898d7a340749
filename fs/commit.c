/*
 * fs/commit.c - promotion of a staged entry to its canonical location (SPEC §4)
 * and recovery of commits interrupted by a crash.
 *
 * A commit is a fixed sequence of steps, each safe to repeat:
 *   1. parse VALUE; resolve the entry's staging path (schema, table, name)
 *   2. walk the entry without following symlinks: only regular files and
 *      directories; no file open for writing (EBUSY, after a 0.5 s grace for
 *      a RELEASE still on its way); mark its inodes committing; give a file
 *      with other hard links a copy of its own
 *   3. digest every file: the MD5 kept while it was written in order (in the
 *      inode, or user.stagefs.md5 on the staged file) or, failing that, by
 *      reading it
 *   4. build the canonical key and the receipt JSON
 *   5. record the intent in the index (durable)              <- crash: undo
 *   6. promote in the backend, never replacing (rename/link, or copy with the
 *      source kept: SFS_KEEP_SOURCE); EEXIST: hash -> dedup; schema -> a new
 *      token, the intent retargeted
 *   6b. record "copied", then remove the staged copy         <- crash: finish
 *   7. in one index transaction: object row, receipt, intent deleted
 *   8. the committed inodes switch to the gone view
 * Recovery (sfs_recover) looks at each recorded intent:
 *   - state "copied": remove what is left of the staged copy, then step 7;
 *   - staged entry gone, canonical present (a rename happened): step 7;
 *   - both present: a hash object is valid whoever wrote it (its row is
 *     added if missing); a schema object is a copy that did not complete
 *     (its key was drawn for this commit): removed; then the intent goes
 *     and the entry stays staged;
 *   - staged entry present, canonical absent: the intent goes;
 *   - neither: logged, the intent goes.
 */
#include "fs/fs.h"
#include "fs/cache.h"
#include "fs/hasher.h"
#include "fs/staging.h"

#include <errno.h>
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

#define MAX_TOKEN_TRIES	    8
#define RELEASE_GRACE_TRIES 50 /* x RELEASE_GRACE_US: how long a just-closed writer may take */
#define RELEASE_GRACE_US    10000

struct centry {
	char *rel; /* path inside the entry ("" for a single file) */
	dev_t dev;
	ino_t ino;
	uint64_t size;
	int is_dir;
	int shared; /* had other hard links when walked: gets its own copy */
	char md5[33];
};

struct walk {
	struct centry *v;
	size_t n, cap;
	uint64_t bytes;
	size_t files;
	char reason[400];
};

static void walk_release(struct walk *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->v[i].rel);
	free(w->v);
}

static int walk_add(struct walk *w, const char *rel, const struct stat *st)
{
	if (w->n == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 64;
		struct centry *nv = realloc(w->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		w->v = nv;
		w->cap = ncap;
	}
	struct centry *e = &w->v[w->n];
	memset(e, 0, sizeof(*e));
	e->rel = strdup(rel);
	if (!e->rel)
		return -ENOMEM;
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->is_dir = S_ISDIR(st->st_mode);
	e->size = e->is_dir ? 0 : (uint64_t)st->st_size;
	w->n++;
	if (!e->is_dir) {
		w->bytes += e->size;
		w->files++;
	}
	return 0;
}

/*
 * A file with other names could be changed through them after it became
 * canonical: give the committed name its own copy first.
 */
static int unshare_file(int dirfd, const char *name, const struct stat *st)
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

static int walk_tree(struct walk *w, int dirfd, const char *prefix, int depth)
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

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (asprintf(&rel, "%s%s%s", prefix, prefix[0] ? "/" : "", de->d_name) < 0) {
			rc = -ENOMEM;
			break;
		}
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
		} else if (S_ISREG(st.st_mode)) {
			rc = walk_add(w, rel, &st);
			if (!rc && st.st_nlink > 1)
				w->v[w->n - 1].shared = 1;
		} else if (S_ISDIR(st.st_mode)) {
			if (depth > 256) {
				rc = -ELOOP;
			} else {
				rc = walk_add(w, rel, &st);
				int sub =
					rc ? -1
					   : openat(fd, de->d_name,
						    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (!rc && sub < 0)
					rc = -errno;
				if (!rc) {
					rc = walk_tree(w, sub, rel, depth + 1);
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
static struct sfs_stg *find_locked(struct sfs_fs *fs, const struct centry *e)
{
	return e->dev == fs->staging_dev ? sfs_stg_find_locked(fs, e->ino) : NULL;
}

/* The digest computed while the file was written, if this mount saw all of it. */
static int digest_from_writes(struct sfs_fs *fs, struct sfs_stg *entry, struct centry *e)
{
	pthread_mutex_lock(&fs->lock);
	struct sfs_stg *in = e->rel[0] ? find_locked(fs, e) : entry;
	if (in)
		sfs_inode_hold_locked(&in->base);
	pthread_mutex_unlock(&fs->lock);
	if (!in)
		return -ENODATA;
	int rc = sfs_stg_digest(in, e->md5);
	sfs_inode_put(fs, &in->base);
	return rc;
}

/* MD5 of the staged file at dirfd/rel: from the write-time digest when it still holds. */
static int digest_file(struct sfs_fs *fs, struct sfs_stg *in, const char *entry_rel, int efd,
		       int rootfd, struct centry *e, uint64_t *done, uint64_t total)
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
		char *full = NULL;
		if (asprintf(&full, "%s%s%s", entry_rel, e->rel[0] ? "/" : "", e->rel) < 0) {
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
	close(fd);
	return rc;
}

/* Mark (committing = v) every table inode of the walked tree; -EBUSY if one is open for writing. */
static int mark_tree(struct sfs_fs *fs, struct sfs_stg *entry, struct walk *w, int v, char *who,
		     size_t wholen)
{
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
	if (v && entry->writers > 0) {
		rc = -EBUSY;
		snprintf(who, wholen, "the entry");
	}
	if (!rc && v && sfs_inode_view(&entry->base) != &sfs_view_staging)
		rc = -ENOENT; /* committed meanwhile */
	for (size_t i = 0; !rc && v && i < w->n; i++) {
		struct sfs_stg *in = find_locked(fs, &w->v[i]);
		if (in && in->writers > 0) {
			rc = -EBUSY;
			snprintf(who, wholen, "'%s'", w->v[i].rel);
		}
	}
	if (!rc) {
		entry->committing = v;
		for (size_t i = 0; i < w->n; i++) {
			struct sfs_stg *in = find_locked(fs, &w->v[i]);
			if (in)
				in->committing = v;
		}
	}
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

/* The entry and everything below it left staging: later ops on their inodes fail ENOENT. */
static void mark_gone(struct sfs_fs *fs, struct sfs_stg *entry, struct walk *w)
{
	pthread_mutex_lock(&fs->lock);
	for (size_t i = 0; i < w->n; i++) {
		struct sfs_stg *in = find_locked(fs, &w->v[i]);
		if (in && in != entry)
			sfs_stg_gone_locked(fs, in);
	}
	if (entry)
		sfs_stg_gone_locked(fs, entry);
	pthread_mutex_unlock(&fs->lock);
}

/* The zarr checksum of a walked directory (files' md5 already known). */
static int tree_checksum(struct walk *w, char *out, size_t outlen)
{
	struct sfs_zarr_checksum *z = NULL;
	int rc = sfs_zarr_checksum_new(&z);

	for (size_t i = 0; !rc && i < w->n; i++)
		if (!w->v[i].is_dir)
			rc = sfs_zarr_checksum_add(z, w->v[i].rel, w->v[i].md5, w->v[i].size);
	if (!rc)
		rc = sfs_zarr_checksum_final(z, out, outlen);
	sfs_zarr_checksum_free(z);
	return rc;
}

struct commit_ctx {
	struct sfs_fs *fs;
	struct sfs_stg *in;
	struct sfs_commit_spec spec;
	char *rel; /* staging rel path of the entry */
	char *schema, *table, *name, *parent_rel;
	struct walk w;
	int efd; /* O_PATH fd of the entry when it was unshared, else -1 */
	int is_dir;
	char md5[33];
	char hash[27];
	char checksum[80];
	char key[4096];
	char ts[48];
	char token[17];
	char reason[512];
};

static int split_rel(struct commit_ctx *c)
{
	char *s1 = strchr(c->rel, '/');
	char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
	char *last = strrchr(c->rel, '/');

	if (!s1 || !s2 || !s2[1]) {
		snprintf(c->reason, sizeof(c->reason),
			 "only entries inside staging/<schema>/<table>/ commit");
		return -EINVAL;
	}
	c->schema = strndup(c->rel, (size_t)(s1 - c->rel));
	c->table = strndup(s1 + 1, (size_t)(s2 - s1 - 1));
	c->name = strdup(last + 1);
	c->parent_rel = strndup(c->rel, (size_t)(last - c->rel));
	return c->schema && c->table && c->name && c->parent_rel ? 0 : -ENOMEM;
}

/*
 * A file of the entry with other hard links could be changed through them
 * after it became canonical: after the entry is claimed, give each such file
 * its own copy under the committed name.
 */
static int unshare_entries(struct commit_ctx *c, int rootfd)
{
	for (size_t i = 0; i < c->w.n; i++) {
		struct centry *e = &c->w.v[i];
		struct stat st;
		const char *base;
		int dfd, rc;

		if (!e->shared)
			continue;
		if (!e->rel[0]) {
			dfd = openat(c->fs->staging_fd, c->parent_rel,
				     O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			base = c->name;
		} else {
			char *dir = strdup(e->rel), *slash = dir ? strrchr(dir, '/') : NULL;
			if (!dir)
				return -ENOMEM;
			if (slash) {
				*slash = '\0';
				dfd = openat(rootfd, dir,
					     O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				base = e->rel + (slash - dir) + 1;
			} else {
				dfd = openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
				base = e->rel;
			}
			free(dir);
		}
		if (dfd < 0)
			return -errno;
		rc = fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
		if (!rc)
			rc = unshare_file(dfd, base, &st);
		if (!rc && fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
			rc = -errno;
		if (!rc) {
			/* the old inode keeps its other names and is not being committed */
			pthread_mutex_lock(&c->fs->lock);
			struct sfs_stg *old = find_locked(c->fs, e);
			if (old && old != c->in)
				old->committing = 0;
			pthread_mutex_unlock(&c->fs->lock);
			e->dev = st.st_dev;
			e->ino = st.st_ino;
			if (!e->rel[0]) {
				c->efd = openat(dfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
				if (c->efd < 0)
					rc = -errno;
			}
		}
		close(dfd);
		if (rc)
			return rc;
	}
	return 0;
}

static int build_key(struct commit_ctx *c)
{
	const struct sfs_config *cfg = c->fs->cfg;

	if (c->spec.hash)
		return sfs_hash_path(cfg->hash_prefix ? cfg->hash_prefix : "_hash", c->schema,
				     cfg->subfolding, cfg->n_subfolding, c->hash, c->key,
				     sizeof(c->key));
	if (c->spec.token) {
		snprintf(c->token, sizeof(c->token), "%s", c->spec.token);
	} else {
		int rc = sfs_token_new(cfg->token_length ? cfg->token_length : 8, c->token);
		if (rc)
			return rc;
	}
	struct sfs_object_path_params p = {
		.schema_prefix = cfg->schema_prefix ? cfg->schema_prefix : "_schema",
		.partition_pattern = cfg->partition_pattern,
		.schema = c->schema,
		.table = c->spec.table ? c->spec.table : c->table,
		.field = c->spec.field,
		.token = c->token,
		.ext = c->spec.ext_given ? c->spec.ext : sfs_default_ext(c->name),
		.key = c->spec.key,
		.nkey = c->spec.nkey,
	};
	int rc = sfs_object_path(&p, c->key, sizeof(c->key));
	if (rc == -ENAMETOOLONG)
		snprintf(c->reason, sizeof(c->reason),
			 "a segment of the canonical path is over %d bytes", SFS_SEGMENT_MAX);
	return rc;
}

static int build_meta(struct commit_ctx *c, char **out)
{
	char staging[4200];
	struct sfs_meta_in m = {0};

	snprintf(staging, sizeof(staging), "staging/%s", c->rel);
	m.hash_addressing = c->spec.hash;
	m.path = c->key;
	m.store = c->fs->cfg->store_name ? c->fs->cfg->store_name : "stagefs";
	m.schema = c->schema;
	m.hash = c->hash;
	m.ext = c->spec.hash ? NULL : (c->spec.ext_given ? c->spec.ext : sfs_default_ext(c->name));
	m.staging = staging;
	m.md5 = c->is_dir ? NULL : c->md5;
	m.checksum = c->is_dir ? c->checksum : NULL;
	m.size = c->w.bytes;
	m.is_dir = c->is_dir;
	m.item_count = (int64_t)c->w.files;
	m.timestamp = c->ts;
	return sfs_index_build_metadata(c->fs->ix, &m, out);
}

/*
 * Commits of the same canonical key run one at a time in this daemon: a
 * backend without conditional creates (s3rver ignores If-None-Match) checks
 * and then writes, and two identical hash commits must not both "win".
 */
static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t keys_cond = PTHREAD_COND_INITIALIZER;
struct busy_key {
	const char *key;
	struct busy_key *next;
};
static struct busy_key *busy_keys; /* protected by keys_lock */

static void key_claim(struct busy_key *me, const char *key)
{
	pthread_mutex_lock(&keys_lock);
	for (;;) {
		struct busy_key *b = busy_keys;
		while (b && strcmp(b->key, key) != 0)
			b = b->next;
		if (!b)
			break;
		pthread_cond_wait(&keys_cond, &keys_lock);
	}
	me->key = key;
	me->next = busy_keys;
	busy_keys = me;
	pthread_mutex_unlock(&keys_lock);
}

static void key_release(struct busy_key *me)
{
	pthread_mutex_lock(&keys_lock);
	struct busy_key **p = &busy_keys;
	while (*p && *p != me)
		p = &(*p)->next;
	if (*p)
		*p = me->next;
	pthread_cond_broadcast(&keys_cond);
	pthread_mutex_unlock(&keys_lock);
}

/*
 * The object's record in the store (SFS_OBJECT_RECORDS/<key>.json): what
 * another host's publish and `stagefs reindex` read instead of the bytes.
 * Kept when it exists (a dedup, or a commit finished twice).
 */
static int write_record(struct sfs_backend *be, struct sfs_index *ix, const struct sfs_job *j)
{
	char *json = NULL, *key = NULL;
	int rc = sfs_index_job_sidecar(ix, j, &json);

	if (!rc && asprintf(&key, "%s/%s.json", SFS_OBJECT_RECORDS, j->canonical) < 0)
		rc = -ENOMEM;
	if (!rc)
		rc = sfs_backend_put_bytes(be, key, json, strlen(json), SFS_NOREPLACE);
	if (rc == -EEXIST)
		rc = 0;
	if (rc)
		sfs_log(LOG_ERR, "cannot write the record of '%s': %s", j->canonical,
			strerror(-rc));
	free(json);
	free(key);
	return rc;
}

/* The staged entry is canonical now: its rows of stored staged files go (see index.h). */
static void forget_staged(struct sfs_index *ix, const char *rel)
{
	int rc = sfs_index_staged_forget(ix, rel);
	if (rc)
		sfs_log(LOG_WARNING, "index: cannot forget 'staging/%s': %s", rel, strerror(-rc));
}

static int promote(struct commit_ctx *c, struct sfs_job *job, int *dedup)
{
	struct sfs_fs *fs = c->fs;
	int rc;

	for (int tries = 0;; tries++) {
		struct busy_key bk;
		key_claim(&bk, c->key);
		rc = sfs_backend_promote(fs->be, c->rel, c->key, SFS_NOREPLACE | SFS_KEEP_SOURCE);
		key_release(&bk);
		if (rc != -EEXIST)
			return rc;
		if (c->spec.hash) {
			*dedup = 1; /* the same bytes are stored already */
			return 0;
		}
		if (c->spec.token || tries >= MAX_TOKEN_TRIES) {
			snprintf(c->reason, sizeof(c->reason), "canonical path '%.400s' exists",
				 c->key);
			return -EEXIST;
		}
		/* schema-path collision: draw a new token */
		char *meta = NULL;
		rc = build_key(c);
		if (!rc)
			rc = build_meta(c, &meta);
		if (!rc)
			rc = sfs_index_job_retarget(fs->ix, job, c->key, meta);
		free(meta);
		if (rc)
			return rc;
	}
}

/* The kernel's dentries of the committed name and of .receipts beside it go stale. */
static void notify_parent(struct commit_ctx *c, struct sfs_stg *parent)
{
	if (!parent)
		return;
	sfs_fs_notify_entry(c->fs, &parent->base, c->name);
	sfs_fs_notify_entry(c->fs, &parent->base, SFS_RECEIPTS);
	sfs_inode_put(c->fs, &parent->base);
}

int sfs_commit(struct sfs_fs *fs, struct sfs_stg *in, const char *value, size_t len)
{
	struct commit_ctx *c = calloc(1, sizeof(*c));
	struct sfs_job job = {0};
	struct sfs_stg *parent = NULL;
	struct sfs_job_file *jfiles = NULL;
	char *meta = NULL, who[300] = "";
	struct stat st;
	int rc, marked = 0, dedup = 0, rootfd = -1;

	if (!c)
		return -ENOMEM;
	c->fs = fs;
	c->in = in;
	c->efd = -1;
	if (sfs_inode_view(&in->base) != &sfs_view_staging) {
		rc = -ENOENT;
		goto out;
	}
	rc = sfs_commit_spec_parse(value, len, &c->spec, c->reason, sizeof(c->reason));
	if (rc)
		goto out;
	rc = sfs_stg_rel(fs, in, &c->rel);
	if (!rc)
		rc = split_rel(c);
	if (!rc)
		rc = sfs_stg_stat(fs, in, &st);
	if (rc)
		goto out;
	c->is_dir = S_ISDIR(st.st_mode);
	if (!S_ISREG(st.st_mode) && !c->is_dir) {
		snprintf(c->reason, sizeof(c->reason), "only regular files and directories commit");
		rc = -EINVAL;
		goto out;
	}
	if (c->is_dir && c->spec.hash) {
		snprintf(c->reason, sizeof(c->reason),
			 "hash addressing takes files, not directories");
		rc = -EISDIR;
		goto out;
	}
	/* step 2: walk and claim the entry */
	if (c->is_dir) {
		rootfd = sfs_stg_open(fs, in, O_PATH | O_DIRECTORY);
		if (rootfd < 0) {
			rc = rootfd;
			goto out;
		}
		rc = walk_tree(&c->w, rootfd, "", 0);
		if (rc == -EINVAL)
			snprintf(c->reason, sizeof(c->reason), "%s", c->w.reason);
	} else {
		if (st.st_nlink > 1) {
			/* setxattr names the inode, not the link the user used */
			snprintf(c->reason, sizeof(c->reason),
				 "the file has %lu hard links, so the name to commit is ambiguous; "
				 "remove the other names or commit a copy",
				 (unsigned long)st.st_nlink);
			rc = -EMLINK;
			goto out;
		}
		rc = walk_add(&c->w, "", &st);
	}
	if (rc)
		goto out;
	/*
	 * FUSE_RELEASE is asynchronous: a close() that has returned may not have
	 * reached us yet.  Give such a just-closed handle a moment before EBUSY.
	 */
	for (int tries = 0;; tries++) {
		rc = mark_tree(fs, in, &c->w, 1, who, sizeof(who));
		if (rc != -EBUSY || tries >= RELEASE_GRACE_TRIES)
			break;
		usleep(RELEASE_GRACE_US);
	}
	if (rc) {
		snprintf(c->reason, sizeof(c->reason), "%s is open for writing", who);
		goto out;
	}
	marked = 1;
	rc = unshare_entries(c, rootfd);
	if (rc)
		goto out;
	/* step 3: digests */
	uint64_t done = 0;
	sfs_stg_set_status(in, "committing 0/%llu", (unsigned long long)c->w.bytes);
	for (size_t i = 0; !rc && i < c->w.n; i++)
		if (!c->w.v[i].is_dir)
			rc = digest_file(fs, in, c->rel, c->efd, rootfd, &c->w.v[i], &done,
					 c->w.bytes);
	if (rc)
		goto out;
	if (c->is_dir) {
		rc = tree_checksum(&c->w, c->checksum, sizeof(c->checksum));
	} else {
		memcpy(c->md5, c->w.v[0].md5, sizeof(c->md5));
		rc = sfs_hash_from_md5hex(c->md5, c->hash);
	}
	if (rc)
		goto out;
	/* step 4: where it goes, what the receipt says */
	sfs_now_iso(c->ts, sizeof(c->ts));
	rc = build_key(c);
	if (!rc)
		rc = build_meta(c, &meta);
	if (rc)
		goto out;
	/* step 5: the intent */
	job.staging = strdup(c->rel);
	job.canonical = strdup(c->key);
	job.addressing = strdup(c->spec.hash ? "hash" : "schema");
	job.metadata = meta;
	meta = NULL;
	job.receipt_dir = strdup(c->parent_rel);
	if (asprintf(&job.receipt_name, "%s.json", c->name) < 0)
		job.receipt_name = NULL;
	if (!job.staging || !job.canonical || !job.addressing || !job.receipt_dir ||
	    !job.receipt_name) {
		rc = -ENOMEM;
		goto out;
	}
	/* a directory's files, with their digests: snapshots list each of them */
	if (c->is_dir && c->w.files) {
		jfiles = calloc(c->w.files, sizeof(*jfiles));
		if (!jfiles) {
			rc = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < c->w.n; i++)
			if (!c->w.v[i].is_dir)
				jfiles[job.nfiles++] = (struct sfs_job_file){
					c->w.v[i].rel, c->w.v[i].size, c->w.v[i].md5};
		job.files = jfiles;
	}
	rc = sfs_index_job_begin(fs->ix, &job);
	if (rc)
		goto out;
	/* step 6: move (fault points: a test kills the daemon between the steps) */
	rc = sfs_fault("commit-intent") ? -EIO : promote(c, &job, &dedup);
	if (rc) {
		int arc = sfs_index_job_abort(fs->ix, job.id);
		if (arc)
			sfs_log(LOG_ERR, "cannot forget commit intent %lld: %s (recovery will)",
				(long long)job.id, strerror(-arc));
		goto out;
	}
	/* step 6b: the canonical object is complete; then the staged copy goes */
	/* past the promotion only crashes are injected: recovery finishes from there */
	(void)sfs_fault("commit-promoted");
	rc = sfs_index_job_copied(fs->ix, &job);
	if (!rc) {
		(void)sfs_fault("commit-copied");
		rc = sfs_backend_staged_remove(fs->be, c->rel);
		if (rc == -ENOENT)
			rc = 0; /* moved by rename */
		if (!rc)
			forget_staged(fs->ix, c->rel);
	}
	if (!rc)
		rc = write_record(fs->be, fs->ix, &job);
	if (rc) {
		sfs_log(LOG_ERR, "commit of '%s' copied but not cleaned up: %s (recovery will)",
			c->rel, strerror(-rc));
		goto out;
	}
	/* step 7: record */
	(void)sfs_fault("commit-staged-removed");
	rc = sfs_index_job_finish(fs->ix, &job, dedup);
	if (rc) {
		/* moved but not recorded: the intent stays, recovery finishes it */
		sfs_log(LOG_ERR, "commit of '%s' moved but not recorded: %s", c->rel,
			strerror(-rc));
		goto out;
	}
	pthread_mutex_lock(&fs->lock);
	parent = in->parent;
	if (parent)
		sfs_inode_hold_locked(&parent->base);
	pthread_mutex_unlock(&fs->lock);
	mark_gone(fs, c->efd >= 0 ? NULL : in, &c->w);
	if (c->efd >= 0) {
		/* `in` still names the file's other link, which stays staged */
		pthread_mutex_lock(&fs->lock);
		in->committing = 0;
		pthread_mutex_unlock(&fs->lock);
	}
	marked = 0;
	(void)sfs_fault("commit-finished"); /* a crash here: nothing left to recover */
	notify_parent(c, parent);
	sfs_log(LOG_INFO, "committed 'staging/%s' -> '%s'%s", c->rel, c->key,
		dedup ? " (dedup)" : "");
out:
	if (marked)
		(void)mark_tree(fs, in, &c->w, 0, who, sizeof(who));
	if (rc) {
		if (!c->reason[0])
			snprintf(c->reason, sizeof(c->reason), "%s", strerror(-rc));
		sfs_stg_set_status(in, "error: %s", c->reason);
		sfs_log(LOG_WARNING, "cannot commit 'staging/%s': %s", c->rel ? c->rel : "?",
			c->reason);
	} else {
		sfs_stg_set_status(in, NULL);
	}
	if (rootfd >= 0)
		close(rootfd);
	if (c->efd >= 0)
		close(c->efd);
	free(meta);
	free(jfiles);
	sfs_job_release(&job);
	sfs_commit_spec_release(&c->spec);
	walk_release(&c->w);
	free(c->rel);
	free(c->schema);
	free(c->table);
	free(c->name);
	free(c->parent_rel);
	free(c);
	return rc;
}

/* ---- recovery ---- */

struct recover_ctx {
	struct sfs_backend *be;
	struct sfs_index *ix;
	int finished, undone;
};

static int recover_one(void *arg, struct sfs_job *j)
{
	struct recover_ctx *r = arg;
	struct sfs_bstat bs;
	char *skey = NULL, *meta = NULL;
	int rc, hash = strcmp(j->addressing, "hash") == 0;

	int known = sfs_index_object_metadata(r->ix, j->canonical, &meta) == 0;
	free(meta);
	if (j->state && strcmp(j->state, "copied") == 0) {
		/* the canonical object was complete: finish removing the staged copy */
		rc = sfs_backend_staged_remove(r->be, j->staging);
		if (rc && rc != -ENOENT)
			return sfs_err(rc, "cannot remove staged 'staging/%s'", j->staging);
		forget_staged(r->ix, j->staging);
		goto finish;
	}
	if (asprintf(&skey, "_staging/%s", j->staging) < 0)
		return -ENOMEM;
	int staged = sfs_backend_stat(r->be, skey, &bs);
	int canon = sfs_backend_stat(r->be, j->canonical, &bs);
	free(skey);
	if ((staged && staged != -ENOENT) || (canon && canon != -ENOENT))
		return sfs_err(staged ? staged : canon, "cannot check commit intent %lld",
			       (long long)j->id);
	if (staged == -ENOENT && canon == 0)
		goto finish; /* moved (rename): record it */
	if (staged == 0 && canon == 0) {
		if (hash && !known) {
			/* content-addressed bytes are valid whoever put them there */
			rc = sfs_index_object_add(r->ix, j->canonical, "hash", j->metadata);
			if (rc)
				return rc;
		} else if (!hash) {
			/* a copy that did not complete: its key was drawn for this commit */
			rc = sfs_backend_remove(r->be, j->canonical);
			if (rc && rc != -ENOENT)
				return sfs_err(rc, "cannot remove partial '%s'", j->canonical);
			sfs_log(LOG_NOTICE, "removed partial copy '%s'", j->canonical);
		}
	}
	if (staged == -ENOENT)
		sfs_log(LOG_ERR, "commit intent %lld: neither 'staging/%s' nor '%s' exists",
			(long long)j->id, j->staging, j->canonical);
	rc = sfs_index_job_abort(r->ix, j->id);
	if (!rc) {
		r->undone++;
		sfs_log(LOG_NOTICE, "undid interrupted commit of 'staging/%s' (still staged)",
			j->staging);
	}
	return rc;
finish:
	rc = write_record(r->be, r->ix, j);
	if (rc)
		return rc;
	/* dedup when the object was known before this commit recorded it */
	rc = sfs_index_job_finish(r->ix, j, known && hash);
	if (!rc) {
		r->finished++;
		sfs_log(LOG_NOTICE, "recovered commit of 'staging/%s' -> '%s'", j->staging,
			j->canonical);
	}
	return rc;
}

int sfs_recover(struct sfs_backend *be, struct sfs_index *ix)
{
	struct recover_ctx r = {.be = be, .ix = ix};

	return sfs_index_jobs(ix, recover_one, &r);
}
