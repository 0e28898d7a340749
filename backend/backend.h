/*
 * backend/backend.h - the one interface between the daemon and where bytes live.
 *
 * Shaped like sqlite3_io_methods: each implementation embeds struct sfs_backend
 * as its first member and points ops at a static const table.  Callers use the
 * sfs_backend_*() wrappers below; an op left NULL makes its wrapper return -ENOSYS.
 *
 * Keys are store-relative object names, '/'-separated, no leading '/', no "."
 * or ".." segments, e.g. "_schema/lab/Session/subject_id=1/frames_Xe4yBr9X.h5".
 * A "directory" is a key prefix (S3) or a real directory (file).
 * Backends know nothing of FUSE, SQLite or DataJoint.
 *
 * Errors: every function returns 0 (or a byte count) on success, -errno on
 * failure.  Reads are short only at EOF; writes are never short; put is
 * all-or-nothing.
 *
 * Thread safety: every op may be called concurrently from several threads on
 * the same backend; implementations serialise internally where they must.
 */
#ifndef SFS_BACKEND_H
#define SFS_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sfs_config;
struct sfs_backend;
struct sfs_bfile;
struct stat;

/* What stat/list report about one object or prefix. */
struct sfs_bstat {
	uint64_t size;	  /* bytes (0 for directories) */
	int64_t mtime_ns; /* modification time, ns since the epoch (0 if unknown) */
	mode_t mode;	  /* S_IFREG|perm or S_IFDIR|perm */
	char md5[33];	  /* lowercase hex MD5 when the backend knows it cheaply, else "" */
};

/* list callback: name is one path segment; return non-zero to stop (returned by list). */
typedef int (*sfs_list_cb)(void *arg, const char *name, const struct sfs_bstat *st);
/* walk callback: key is a whole store key; return non-zero to stop (returned by walk). */
typedef int (*sfs_bwalk_cb)(void *arg, const char *key, const struct sfs_bstat *st);

/*
 * xattrs on files of a local staging cache (backends whose staging dir is a
 * cache of the store): the bytes were stored ("<size> <mtime_ns>" when it
 * happened), and the local bytes were given up (holes; fetch before use).
 */
#define SFS_XATTR_UPLOADED "user.stagefs.uploaded"
#define SFS_XATTR_EVICTED  "user.stagefs.evicted"

/*
 * What the daemon's index knows of staged files a backend has stored (s3):
 * the backend asks it at mount which local files need uploading, and tells
 * it what it stored or fetched meanwhile.  rel is relative to the staging dir.
 */
struct sfs_staged_journal {
	void *arg;
	/*
	 * 1: rel was stored when it had exactly st's size and mtime; 0: it was
	 * stored, but not like this (upload again); -ENOENT: no record.
	 */
	int (*stored)(void *arg, const char *rel, const struct stat *st);
	/*
	 * The bytes of rel, as st describes the local file (open as fd,
	 * readable), are now in the store: remember st and the file's user xattrs.
	 */
	void (*record)(void *arg, const char *rel, int fd, const struct stat *st);
	/*
	 * fd holds rel's bytes just fetched from the store: give it the mode,
	 * user xattrs and mtime recorded for rel, if its size is the recorded one.
	 */
	void (*restore)(void *arg, const char *rel, int fd);
};

/* flags for put/promote */
#define SFS_NOREPLACE 0x1 /* fail with -EEXIST when the destination exists */
#define SFS_KEEP_SOURCE \
	0x2 /* promote: a copying backend may leave the staged entry in place;
			       the caller removes it with staged_remove once it has recorded
			       that the copy is complete (crash safety of copy + delete) */

/* capabilities (struct sfs_backend_ops.caps) */
#define SFS_BCAP_STAGING_CACHE \
	0x1 /* the staging dir only caches the store: staged files are uploaded
			       (staged_sync), evicted (staged_fetch) and mirrored (staged_*) */

struct sfs_backend_ops {
	const char *name; /* "file", "s3" */
	unsigned caps;	  /* SFS_BCAP_* */

	/*
	 * Optional: the journal staging_dir's reconciliation uses (called
	 * before staging_dir; j stays valid while the backend lives).
	 */
	void (*set_journal)(struct sfs_backend *b, const struct sfs_staged_journal *j);

	/*
	 * Open the local directory that holds the writable staging tree and
	 * return a new O_DIRECTORY fd (caller closes).  For "file" this is
	 * <location>/_staging itself; for "s3" a write-back cache mirror.
	 */
	int (*staging_dir)(struct sfs_backend *b);
	/*
	 * A staged file (path rel to the staging dir, open as fd) was fsynced
	 * (durable=1) or closed after being written (durable=0): make its bytes
	 * reach the store.  "file": fdatasync when durable.  "s3": upload.
	 */
	int (*staged_sync)(struct sfs_backend *b, const char *rel, int fd, int durable);
	/* The staging namespace changed (rel paths under the staging dir). */
	int (*staged_unlink)(struct sfs_backend *b, const char *rel, int is_dir);
	int (*staged_rename)(struct sfs_backend *b, const char *from, const char *to);
	/*
	 * Remove a staged entry (file or tree, rel to the staging dir) from the
	 * store and from the local staging dir, durably; -ENOENT if absent.
	 * Used once the entry is canonical (after promote with SFS_KEEP_SOURCE,
	 * or dedup), also by recovery before the mount exists.
	 */
	int (*staged_remove)(struct sfs_backend *b, const char *rel);
	/*
	 * Write the stored bytes of staged file rel into fd (from offset 0) and
	 * fsync it: brings back a file the local cache had evicted.  -ENOENT if
	 * the store has no such object.
	 */
	int (*staged_fetch)(struct sfs_backend *b, const char *rel, int fd);

	/* Object namespace (canonical objects, snapshots, markers). */
	int (*stat)(struct sfs_backend *b, const char *key, struct sfs_bstat *st);
	/* Immediate children of a directory/prefix, each once, any order. */
	int (*list)(struct sfs_backend *b, const char *key, sfs_list_cb cb, void *arg);
	/*
	 * Everything below key, recursively (key itself not included), each
	 * once, any order: every object, and the directories where the backend
	 * has them (file; S3 has only keys).  -ENOENT when key holds nothing.
	 * One listing of the whole prefix where the backend allows (S3:
	 * ListObjectsV2 without a delimiter), not one per directory.
	 */
	int (*walk)(struct sfs_backend *b, const char *key, sfs_bwalk_cb cb, void *arg);
	/* Open an object for reading; *out owned by the caller, released by close. */
	int (*open)(struct sfs_backend *b, const char *key, struct sfs_bfile **out);
	ssize_t (*pread)(struct sfs_backend *b, struct sfs_bfile *f, void *buf, size_t n,
			 off_t off);
	void (*close)(struct sfs_backend *b, struct sfs_bfile *f);
	/* Store small whole objects (manifests, markers); get allocates *buf (caller frees). */
	int (*put_bytes)(struct sfs_backend *b, const char *key, const void *buf, size_t n,
			 int flags);
	int (*get_bytes)(struct sfs_backend *b, const char *key, void **buf, size_t *n, size_t max);

	/*
	 * Move a staged entry (file or directory tree; rel to the staging dir)
	 * to canonical key.  SFS_NOREPLACE: -EEXIST if key exists (dedup).
	 * Durable when it returns 0: the data and the new name survive a crash.
	 * "file": rename/link in the same filesystem, O(1).  "s3": copy + delete.
	 */
	int (*promote)(struct sfs_backend *b, const char *staged_rel, const char *key, int flags);
	/* Remove an object or a whole tree under key; -ENOENT if absent. */
	int (*remove)(struct sfs_backend *b, const char *key);
	/*
	 * Move an object or a whole tree from key `from` to key `to` (gc's
	 * quarantine and restore).  Never replaces: -EEXIST if `to` exists;
	 * -ENOENT if `from` holds nothing.  Durable when it returns 0.  "file":
	 * rename, O(1).  "s3": each object copied, then the sources deleted (a
	 * crash leaves both copies, never neither; moving again completes it).
	 */
	int (*move)(struct sfs_backend *b, const char *from, const char *to);
	/*
	 * Multipart uploads of the store's keys begun and neither completed nor
	 * aborted (a daemon killed in the middle of one leaves its parts stored):
	 * cb(key, upload id, initiated in ns since the epoch).  NULL where there
	 * are none ("file").
	 */
	int (*uploads)(struct sfs_backend *b,
		       int (*cb)(void *arg, const char *key, const char *id, int64_t initiated_ns),
		       void *arg);
	/* Abort one of those (its parts are freed). */
	int (*abort_upload)(struct sfs_backend *b, const char *key, const char *id);
	/* Make everything written so far durable. */
	int (*sync)(struct sfs_backend *b);
	/* Free the backend and everything it holds. */
	void (*destroy)(struct sfs_backend *b);
};

/* what a store cannot hold, learnt when it was opened (struct sfs_backend.limits) */
#define SFS_BLIM_NO_CONTROL_NAMES \
	0x1 /* names holding a control character cannot be listed back: the server
			       sends keys raw in XML 1.0, which cannot carry them */

struct sfs_backend {
	const struct sfs_backend_ops *ops;
	unsigned limits; /* SFS_BLIM_* */
};

/*
 * Create the backend the config names (cfg->backend) and check that the store
 * is reachable and usable (creates the format marker .stagefs/format on a new
 * store).  On success *out is owned by the caller (sfs_backend_free).
 * Errors: -EINVAL unknown backend, -ENOENT/-EACCES/-EIO unreachable store;
 * the reason is logged naming the location/endpoint.
 */
int sfs_backend_open(const struct sfs_config *cfg, struct sfs_backend **out)
	__attribute__((warn_unused_result));
void sfs_backend_free(struct sfs_backend *b);
/* A local file's lstat as an sfs_bstat (size 0 unless a regular file). */
void sfs_bstat_from_stat(const struct stat *st, struct sfs_bstat *out);
/* get_bytes as a NUL-terminated string (records, notes, manifest heads); *out malloc'd. */
int sfs_backend_get_text(struct sfs_backend *b, const char *key, size_t max, char **out)
	__attribute__((warn_unused_result));
/*
 * Defined only in test builds (tests/fakes/faulty_backend.c): may replace *b
 * with a wrapper of it (the fault-injecting backend).  0 or -errno.
 */
int sfs_backend_test_wrap(struct sfs_backend **b) __attribute__((weak));

/* Per-implementation constructors (same contract as sfs_backend_open). */
int sfs_backend_file_open(const struct sfs_config *cfg, struct sfs_backend **out);
int sfs_backend_s3_open(const struct sfs_config *cfg, struct sfs_backend **out);

#define SFS_BCALL(b, op, ...) ((b)->ops->op ? (b)->ops->op((b), __VA_ARGS__) : -ENOSYS)

static inline int sfs_backend_staging_dir(struct sfs_backend *b)
{
	return b->ops->staging_dir ? b->ops->staging_dir(b) : -38 /* ENOSYS */;
}
#define sfs_backend_staged_sync(b, ...)	  SFS_BCALL(b, staged_sync, __VA_ARGS__)
#define sfs_backend_staged_unlink(b, ...) SFS_BCALL(b, staged_unlink, __VA_ARGS__)
#define sfs_backend_staged_rename(b, ...) SFS_BCALL(b, staged_rename, __VA_ARGS__)
#define sfs_backend_staged_remove(b, ...) SFS_BCALL(b, staged_remove, __VA_ARGS__)
#define sfs_backend_staged_fetch(b, ...)  SFS_BCALL(b, staged_fetch, __VA_ARGS__)
#define sfs_backend_stat(b, ...)	  SFS_BCALL(b, stat, __VA_ARGS__)
#define sfs_backend_list(b, ...)	  SFS_BCALL(b, list, __VA_ARGS__)
#define sfs_backend_walk(b, ...)	  SFS_BCALL(b, walk, __VA_ARGS__)
#define sfs_backend_open_obj(b, ...)	  SFS_BCALL(b, open, __VA_ARGS__)
#define sfs_backend_pread(b, ...)	  SFS_BCALL(b, pread, __VA_ARGS__)
#define sfs_backend_put_bytes(b, ...)	  SFS_BCALL(b, put_bytes, __VA_ARGS__)
#define sfs_backend_move(b, ...)	  SFS_BCALL(b, move, __VA_ARGS__)
#define sfs_backend_get_bytes(b, ...)	  SFS_BCALL(b, get_bytes, __VA_ARGS__)
#define sfs_backend_promote(b, ...)	  SFS_BCALL(b, promote, __VA_ARGS__)
#define sfs_backend_remove(b, ...)	  SFS_BCALL(b, remove, __VA_ARGS__)
#define sfs_backend_uploads(b, ...)	  SFS_BCALL(b, uploads, __VA_ARGS__)
#define sfs_backend_abort_upload(b, ...)  SFS_BCALL(b, abort_upload, __VA_ARGS__)
static inline int sfs_backend_sync(struct sfs_backend *b)
{
	return b->ops->sync ? b->ops->sync(b) : 0;
}
static inline void sfs_backend_close_obj(struct sfs_backend *b, struct sfs_bfile *f)
{
	if (f && b->ops->close)
		b->ops->close(b, f);
}

#endif
