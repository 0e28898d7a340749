/*
 * fs/commit.c - promotion of a staged entry to its canonical location (SPEC §4).
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
 *   6. write the object's record to the store (what needs room on a full
 *      disk fails here, before anything moves), then promote in the backend,
 *      never replacing (rename/link, or copy with the source kept:
 *      SFS_KEEP_SOURCE); EEXIST: hash -> dedup; schema -> the record goes, a
 *      new token, the intent retargeted; any other failure: the record goes
 *   6b. record "copied", then remove the staged copy         <- crash: finish
 *   7. in one index transaction: object row, receipt, job ended as success
 *   (6b and 7 only go forward: a failing step is tried again, and one that
 *   keeps failing leaves the intent for recovery)
 *   8. the committed inodes switch to the gone view
 * The steps run on a commit-job worker (fs/jobs.c), for a job reserved from
 * the queue; a crash between them is finished or undone by fs/recover.c.
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
#include "common/gz.h"
#include "common/log.h"

#define MAX_TOKEN_TRIES	    8
#define RELEASE_GRACE_TRIES 50 /* x RELEASE_GRACE_US: how long a just-closed writer may take */
#define RELEASE_GRACE_US    10000

#include "fs/commit_walk.h"
#include "index/snapdb.h"

struct commit_ctx {
	struct sfs_fs *fs;
	struct sfs_stg *in;
	struct sfs_commit_spec spec;
	char *rel; /* staging rel path of the entry */
	char *schema, *table, *name, *parent_rel;
	struct walk w;
	int efd; /* O_PATH fd of the entry when it was unshared, else -1 */
	int is_dir;
	int taken; /* files were taken out of the upload queue (digest_one) */
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
struct unshare_ctx {
	struct commit_ctx *c;
	int rootfd;
};

static int unshare_one(void *arg, struct centry *e)
{
	struct unshare_ctx *u = arg;
	struct commit_ctx *c = u->c;
	int rootfd = u->rootfd;
	{
		struct stat st;
		const char *base;
		int dfd, rc;

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
			rc = sfs_cw_unshare(dfd, base, &st);
		if (!rc && fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
			rc = -errno;
		if (!rc) {
			/* the old inode keeps its other names and is not being committed */
			pthread_mutex_lock(&c->fs->lock);
			struct sfs_stg *old = sfs_cw_find_locked(c->fs, e);
			if (old && old != c->in)
				old->committing = 0;
			pthread_mutex_unlock(&c->fs->lock);
			e->dev = st.st_dev;
			e->ino = st.st_ino;
			e->dirty = 1;
			if (!e->rel[0]) {
				c->efd = openat(dfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
				if (c->efd < 0)
					rc = -errno;
			}
		}
		close(dfd);
		return rc;
	}
}

static int unshare_entries(struct commit_ctx *c, int rootfd)
{
	struct unshare_ctx u = {c, rootfd};

	return sfs_cw_each(&c->w, SFS_CW_SHARED, unshare_one, &u);
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
/* Part n of a record's files: <record>.parts/NNNNN.json.gz (kept when it exists). */
static int record_part(struct sfs_backend *be, const char *rkey, int n, const char *json)
{
	char *key = NULL;
	void *gz = NULL;
	size_t gzn = 0;
	int rc = asprintf(&key, "%s.parts/%05d.json.gz", rkey, n) < 0 ? -ENOMEM : 0;

	if (!rc)
		rc = sfs_gzip(json, strlen(json), &gz, &gzn);
	if (!rc)
		rc = sfs_backend_put_bytes(be, key, gz, gzn, SFS_NOREPLACE);
	free(gz);
	free(key);
	return rc == -EEXIST ? 0 : rc;
}

int sfs_commit_record(struct sfs_backend *be, struct sfs_index *ix, const struct sfs_job *j,
		      int *created)
{
	char *json = NULL, *key = NULL, *after = NULL;
	int64_t nfiles = 0;
	int parts = 0;
	int rc = sfs_index_job_file_count(ix, j->id, &nfiles);

	if (!rc && asprintf(&key, "%s/%s.json", SFS_OBJECT_RECORDS, j->canonical) < 0)
		rc = -ENOMEM;
	/* a big directory's files go in gzip'd parts, written before the record names them */
	while (!rc && nfiles > SFS_RECORD_INLINE_FILES) {
		char *part = NULL;
		rc = sfs_index_job_files_part(ix, j->id, &after, SFS_RECORD_PART_FILES, &part);
		if (rc || !part)
			break;
		rc = record_part(be, key, parts, part);
		free(part);
		parts++;
	}
	if (!rc)
		rc = sfs_index_job_sidecar(ix, j, parts, nfiles, &json);
	if (!rc)
		rc = sfs_backend_put_bytes(be, key, json, strlen(json), SFS_NOREPLACE);
	if (created)
		*created = rc == 0;
	if (rc == -EEXIST)
		rc = 0;
	if (rc)
		sfs_log(LOG_ERR, "cannot write the record of '%s': %s", j->canonical,
			strerror(-rc));
	free(after);
	free(json);
	free(key);
	return rc;
}

/* A dedup commit's receipt in the store (SFS_RECEIPT_RECORDS): replaced when it exists. */
static int receipt_record(struct sfs_backend *be, const struct sfs_job *j)
{
	char *key = NULL, *json = NULL;
	int rc =
		asprintf(&key, "%s/%s/%s", SFS_RECEIPT_RECORDS, j->receipt_dir, j->receipt_name) < 0
			? -ENOMEM
			: 0;

	/* what the index keeps (sfs_index_job_finish): the receipt, flagged as a dedup */
	if (!rc)
		rc = sfs_json_eval("json_object('format','stagefs-receipt','version',1,'dir',?1,"
				   "'name',?2,'object',?3,"
				   "'metadata',json_set(json(?4),'$.dedup',json('true')))",
				   4,
				   (const char *const[]){j->receipt_dir, j->receipt_name,
							 j->canonical, j->metadata},
				   &json);
	if (!rc)
		rc = sfs_backend_put_bytes(be, key, json, strlen(json), 0);
	if (rc)
		sfs_log(LOG_ERR, "cannot write the receipt record '%s': %s", key ? key : "?",
			strerror(-rc));
	free(key);
	free(json);
	return rc;
}

int sfs_commit_record_remove(struct sfs_backend *be, const char *canonical)
{
	char *key = NULL, *parts = NULL;
	int rc = asprintf(&key, "%s/%s.json", SFS_OBJECT_RECORDS, canonical) < 0 ||
				 asprintf(&parts, "%s/%s.json.parts", SFS_OBJECT_RECORDS,
					  canonical) < 0
			 ? -ENOMEM
			 : 0;

	/* the record first: parts without it name nothing */
	if (!rc) {
		rc = sfs_backend_remove(be, key);
		if (rc == -ENOENT)
			rc = 0;
	}
	if (!rc) {
		rc = sfs_backend_remove(be, parts);
		if (rc == -ENOENT)
			rc = 0;
	}
	free(key);
	free(parts);
	return rc;
}

/* The staged entry is canonical now: its rows of stored staged files go (see index.h). */
void sfs_commit_forget_staged(struct sfs_index *ix, const char *rel)
{
	int rc = sfs_index_staged_forget(ix, rel);
	if (rc)
		sfs_log(LOG_WARNING, "index: cannot forget 'staging/%s': %s", rel, strerror(-rc));
}

/* Bytes digested so far into the job's row: at once when last is NULL, else once a second. */
static void job_progress(struct sfs_fs *fs, int64_t id, uint64_t done, uint64_t total,
			 struct timespec *last)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (last && now.tv_sec - last->tv_sec < 1)
		return;
	if (last)
		*last = now;
	int rc = sfs_index_job_progress(fs->ix, id, done, total);
	if (rc)
		sfs_log(LOG_WARNING, "job %lld: cannot record its progress: %s", (long long)id,
			strerror(-rc));
}

/* Tries of the steps after the promotion (50, 100, 200, 400 ms apart). */
#define FORWARD_TRIES 5

/*
 * After the promotion: the job knows the object is complete, the staged copy
 * goes, the job ends as success.  Each step can be repeated.
 */
static int forward(struct commit_ctx *c, struct sfs_job *job, int dedup)
{
	struct sfs_fs *fs = c->fs;
	int rc = sfs_index_job_copied(fs->ix, job);

	if (!rc) {
		(void)sfs_fault("commit-copied");
		rc = sfs_backend_staged_remove(fs->be, c->rel);
		if (rc == -ENOENT)
			rc = 0; /* moved by rename */
		if (!rc)
			sfs_commit_forget_staged(fs->ix, c->rel);
	}
	if (!rc && dedup) /* a receipt no object record holds: reindex finds it here */
		rc = receipt_record(fs->be, job);
	if (!rc) {
		(void)sfs_fault("commit-staged-removed");
		rc = sfs_index_job_finish(fs->ix, job, dedup);
	}
	return rc;
}

static int promote(struct commit_ctx *c, struct sfs_job *job, int *dedup)
{
	struct sfs_fs *fs = c->fs;
	int rc;

	for (int tries = 0;; tries++) {
		struct busy_key bk;
		int created = 0;
		/* the record first: what needs room fails before anything moves */
		rc = sfs_commit_record(fs->be, fs->ix, job, &created);
		if (rc)
			return rc;
		key_claim(&bk, c->key);
		rc = sfs_backend_promote(fs->be, c->rel, c->key, SFS_NOREPLACE | SFS_KEEP_SOURCE);
		key_release(&bk);
		if (rc == 0)
			return 0;
		if (rc == -EEXIST && c->spec.hash) {
			*dedup =
				1; /* the same bytes are stored already (a record made now fits them) */
			return 0;
		}
		/* nothing moved: a record made for this try goes again */
		if (created) {
			int rrc = sfs_commit_record_remove(fs->be, c->key);
			if (rrc)
				sfs_log(LOG_ERR, "cannot remove the record of '%s': %s", c->key,
					strerror(-rrc));
		}
		if (rc != -EEXIST)
			return rc;
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

/* Step 3 for one file: its MD5 (kept for a single file), the job row told how far. */
struct digest_ctx {
	struct commit_ctx *c;
	int64_t job;
	int rootfd;
	uint64_t *done;
	struct timespec last;
};

static int digest_one(void *arg, struct centry *e)
{
	struct digest_ctx *d = arg;
	struct commit_ctx *c = d->c;
	int rc = sfs_cw_digest(c->fs, c->in, c->rel, c->efd, d->rootfd, e, d->done, c->w.bytes);

	if (rc)
		return rc;
	e->dirty = 1;
	if (!e->rel[0])
		memcpy(c->md5, e->md5, sizeof(c->md5));
	job_progress(c->fs, d->job, *d->done, c->w.bytes, &d->last);
	return 0;
}

/* The walk's files into the job's rows, a batch at a time. */
struct files_ctx {
	struct commit_ctx *c;
	int64_t job;
	struct sfs_job_file v[1024];
	char *rels[1024];
	size_t n;
};

static int files_flush(struct files_ctx *f)
{
	int rc = f->n ? sfs_index_job_add_files(f->c->fs->ix, f->job, f->v, f->n) : 0;

	for (size_t i = 0; i < f->n; i++)
		free(f->rels[i]);
	f->n = 0;
	return rc;
}

static int files_one(void *arg, struct centry *e)
{
	struct files_ctx *f = arg;
	size_t rl = strlen(e->rel);
	char *both = malloc(rl + 1 + 33); /* rel, then the md5: they live as long as the batch */

	if (!both)
		return -ENOMEM;
	memcpy(both, e->rel, rl + 1);
	memcpy(both + rl + 1, e->md5, 33);
	f->rels[f->n] = both;
	f->v[f->n] = (struct sfs_job_file){both, e->size, both + rl + 1};
	return ++f->n == sizeof(f->v) / sizeof(f->v[0]) ? files_flush(f) : 0;
}

static int record_files(struct commit_ctx *c, int64_t job)
{
	struct files_ctx *f = calloc(1, sizeof(*f));
	int rc;

	if (!f)
		return -ENOMEM;
	f->c = c;
	f->job = job;
	rc = sfs_cw_each(&c->w, SFS_CW_FILES, files_one, f);
	int frc = files_flush(f);
	free(f);
	return rc ? rc : frc;
}

/* The commit failed before its promotion: what it took from the upload queue goes back. */
static int requeue_one(void *arg, struct centry *e)
{
	struct commit_ctx *c = arg;
	char *full = sfs_cw_path(c->rel, e);

	if (full)
		sfs_stg_sync_requeue(c->fs, full);
	free(full);
	return 0;
}

int sfs_commit(struct sfs_fs *fs, struct sfs_stg *in, int64_t job_id, const char *value, size_t len,
	       char *reason, size_t rlen)
{
	struct commit_ctx *c = calloc(1, sizeof(*c));
	struct sfs_job job = {0};
	struct sfs_stg *parent = NULL;
	char *meta = NULL, who[300] = "";
	struct stat st;
	int rc, marked = 0, dedup = 0, rootfd = -1;

	if (!c)
		return -ENOMEM;
	c->fs = fs;
	c->in = in;
	c->efd = -1;
	rc = sfs_cw_open(&c->w);
	if (rc) {
		free(c);
		return rc;
	}
	if (sfs_inode_view(&in->base) != &sfs_view_staging) {
		rc = -ENOENT;
		goto out;
	}
	(void)sfs_fault("commit-start"); /* tests stall a job here to watch it run */
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
		rc = sfs_cw_tree(&c->w, rootfd, "", 0, 0);
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
		rc = sfs_cw_add(&c->w, 0, c->name, "", &st, 0, NULL);
	}
	if (!rc)
		rc = sfs_cw_done(&c->w);
	if (rc)
		goto out;
	if (c->is_dir && c->w.files == 0) {
		/* an object store holds files, not directories: no bucket could keep this
		 * (the file backend could, but a commit means the same on both) */
		snprintf(c->reason, sizeof(c->reason),
			 "the directory holds no file: nothing to commit");
		rc = -EINVAL;
		goto out;
	}
	/*
	 * FUSE_RELEASE is asynchronous: a close() that has returned may not have
	 * reached us yet.  Give such a just-closed handle a moment before EBUSY.
	 */
	for (int tries = 0;; tries++) {
		rc = sfs_cw_mark(fs, in, &c->w, 1, who, sizeof(who));
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
	/* step 3: digests (the job row hears how far, once a second) */
	uint64_t done = 0;
	sfs_stg_set_status(in, "committing 0/%llu", (unsigned long long)c->w.bytes);
	job_progress(fs, job_id, 0, c->w.bytes, NULL);
	struct digest_ctx d = {.c = c, .job = job_id, .rootfd = rootfd, .done = &done};
	c->taken = 1;
	clock_gettime(CLOCK_MONOTONIC, &d.last);
	rc = sfs_cw_each(&c->w, SFS_CW_FILES, digest_one, &d);
	if (rc)
		goto out;
	if (c->is_dir)
		rc = sfs_cw_checksum(&c->w, c->checksum, sizeof(c->checksum));
	else
		rc = sfs_hash_from_md5hex(c->md5, c->hash); /* digest_one kept the file's */
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
	job.id = job_id;
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
	rc = sfs_index_job_begin(fs->ix, &job);
	/* a directory's files, with their digests (snapshots list each), before anything moves */
	if (!rc && c->is_dir && c->w.files)
		rc = record_files(c, job.id);
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
	/*
	 * Steps 6b and 7: the canonical object is complete, so from here the
	 * commit only goes forward.  A step that fails is tried again (a store's
	 * passing error must not leave a complete object unrecorded); one that
	 * keeps failing leaves the intent, which the mount's recovery finishes.
	 * Past the promotion only crashes are injected (fault points).
	 */
	c->taken = 0; /* promoted: the bytes are canonical, nothing goes to staging */
	(void)sfs_fault("commit-promoted");
	for (int attempt = 1;; attempt++) {
		rc = forward(c, &job, dedup);
		if (!rc || attempt == FORWARD_TRIES)
			break;
		sfs_log(LOG_WARNING, "commit of '%s': %s after the promotion; trying again", c->rel,
			strerror(-rc));
		struct timespec ts = {0, 50000000L << (attempt - 1)};
		nanosleep(&ts, NULL);
	}
	if (rc) {
		sfs_log(LOG_ERR,
			"commit of '%s' promoted but not finished: %s (the mount's recovery "
			"finishes it)",
			c->rel, strerror(-rc));
		goto out;
	}
	pthread_mutex_lock(&fs->lock);
	parent = in->parent;
	if (parent)
		sfs_inode_hold_locked(&parent->base);
	pthread_mutex_unlock(&fs->lock);
	sfs_cw_gone(fs, c->efd >= 0 ? NULL : in, &c->w);
	if (c->efd >= 0) {
		/* `in` still names the file's other link, which stays staged */
		pthread_mutex_lock(&fs->lock);
		in->committing = 0;
		pthread_mutex_unlock(&fs->lock);
	}
	marked = 0;
	(void)sfs_fault("commit-finished"); /* a crash here: nothing left to recover */
	notify_parent(c, parent);
	sfs_fs_notify_flush(fs, 1000);
	sfs_log(LOG_INFO, "committed 'staging/%s' -> '%s'%s", c->rel, c->key,
		dedup ? " (dedup)" : "");
out:
	if (marked)
		(void)sfs_cw_mark(fs, in, &c->w, 0, who, sizeof(who));
	if (rc) {
		if (!c->reason[0])
			snprintf(c->reason, sizeof(c->reason), "%s", strerror(-rc));
		snprintf(reason, rlen, "%s", c->reason);
		sfs_stg_set_status(in, "error: %s", c->reason);
		if (c->taken && sfs_cw_each(&c->w, SFS_CW_FILES, requeue_one, c))
			sfs_log(LOG_ERR,
				"commit of '%s': cannot queue its files for upload again "
				"(the next mount uploads them)",
				c->rel);
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

	sfs_job_release(&job);
	sfs_commit_spec_release(&c->spec);
	sfs_cw_release(&c->w);
	free(c->rel);
	free(c->schema);
	free(c->table);
	free(c->name);
	free(c->parent_rel);
	free(c);
	return rc;
}
