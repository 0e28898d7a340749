/*
 * index/index.h - the SQLite index: what exists in the store and what it means.
 *
 * One database file per store (cfg->index), WAL mode, synchronous=FULL (a
 * commit that returned is durable), schema versioned with PRAGMA user_version
 * and upgraded by ordered migrations at open.  Tables:
 *   objects      canonical objects: path, addressing, schema, hash, size, metadata JSON
 *   receipts     commit receipts shown as staging/.../.receipts/<name>.json
 *   jobs         commits: queued, running (with how far the promotion got, which
 *                recovery finishes or undoes), and ended (success, error)
 *   snapshots    published snapshots (later migrations)
 * The index knows nothing of FUSE or HTTP.
 *
 * Errors: 0 or -errno; SQLITE_* codes are translated here (BUSY/LOCKED -> -EBUSY,
 * FULL -> -ENOSPC, IOERR -> -EIO, CONSTRAINT -> -EEXIST, NOTFOUND -> -ENOENT,
 * CORRUPT/NOTADB -> -EUCLEAN) and the SQLite message is logged.
 *
 * Thread safety: every function may be called from any thread; one mutex
 * serialises access to the connection.  Strings returned through char **
 * are malloc'd and owned by the caller.
 */
#ifndef SFS_INDEX_H
#define SFS_INDEX_H

#include <stddef.h>
#include <stdint.h>

struct sfs_index;

/* Current schema version after all migrations. */
#define SFS_INDEX_VERSION 5

/*
 * Open (creating it and its parent directories, mode 0700) and migrate the
 * index at path.  *out owned by the caller (sfs_index_close).
 * -EPROTO when the file has a newer schema than this binary knows.
 */
int sfs_index_open(const char *path, struct sfs_index **out) __attribute__((warn_unused_result));
void sfs_index_close(struct sfs_index *ix);
/*
 * A second, read-only connection to ix's file that sees the index as it is
 * now (one read transaction, held until sfs_index_close) and shares nothing
 * with ix: a publish asks it a query or two per object without taking ix's
 * lock from the file system's requests, and without a lock round trip and a
 * page-cache check per query.  Writers go on (WAL); a checkpoint waits for it.
 */
int sfs_index_reader(struct sfs_index *ix, struct sfs_index **out)
	__attribute__((warn_unused_result));

/* PRAGMA integrity_check + foreign_key_check: 0 when clean, -EUCLEAN otherwise. */
int sfs_index_check(struct sfs_index *ix) __attribute__((warn_unused_result));

/* Inputs of a receipt / object metadata document (SPEC §4). */
struct sfs_meta_in {
	int hash_addressing;  /* 1: {"hash","path","schema","store","size"}; 0: schema-addressed */
	const char *path;     /* canonical key */
	const char *store;    /* DataJoint store name */
	const char *schema;   /* hash: schema name */
	const char *hash;     /* hash: content hash (base32) */
	const char *ext;      /* schema: NULL -> null */
	const char *staging;  /* "staging/<schema>/<table>/<rel>" */
	const char *md5;      /* files: hex MD5 */
	const char *checksum; /* directories: DANDI zarr checksum */
	uint64_t size;
	int is_dir;
	int64_t item_count;    /* directories: recursive file count; files: ignored (null) */
	const char *timestamp; /* "2026-11-25T14:56:49.123456+00:00" */
};

/* Build the receipt JSON (key order as in SPEC §4, "dedup": false for hash). */
int sfs_index_build_metadata(struct sfs_index *ix, const struct sfs_meta_in *m, char **out)
	__attribute__((warn_unused_result));

/* A file of a directory being committed: path inside it, size, MD5 (hex). */
struct sfs_job_file {
	const char *rel;
	uint64_t size;
	const char *md5;
};

/*
 * A commit job (table jobs).  A commit is queued (pending) with its staging
 * path and VALUE, reserved by a worker (attempts + 1), and ends as success
 * or error (errno and reason kept).  While reserved, step says how far the
 * promotion got: NULL (nothing moved yet), "moving" (the intent is recorded:
 * canonical, metadata and receipt are set; promotion may be partial),
 * "copied" (the canonical object is complete).  Rows stay after they end.
 */
struct sfs_job {
	int64_t id;
	char *staging;	    /* staging rel path "<schema>/<table>/<rel>" */
	char *value;	    /* the commit's VALUE ("" for a job from before schema 5) */
	char *status;	    /* "pending" | "reserved" | "success" | "error" */
	char *canonical;    /* canonical key */
	char *addressing;   /* "hash" | "schema" */
	char *metadata;	    /* receipt JSON */
	char *receipt_dir;  /* staging rel dir holding .receipts */
	char *receipt_name; /* "<entry>.json" */
	char *state;	    /* the step: NULL, "moving" or "copied" */
	char *error;	    /* the reason of an error */
	char *created, *finished;
	int err; /* errno of an error */
	int attempts;
	uint64_t bytes_done, bytes_total;
	const struct sfs_job_file *files; /* job_begin: a directory's files (borrowed) */
	size_t nfiles;
};
void sfs_job_release(struct sfs_job *j);

/*
 * Queue a commit of staging rel path staging with VALUE (status pending);
 * *id gets its id.  Durable on return.  -EBUSY when the entry has a job
 * pending or running already.
 */
int sfs_index_job_queue(struct sfs_index *ix, const char *staging, const char *value, int64_t *id)
	__attribute__((warn_unused_result));
/* The oldest pending job, now reserved (attempts + 1) into *j; -ENOENT when none is pending. */
int sfs_index_job_reserve(struct sfs_index *ix, struct sfs_job *j)
	__attribute__((warn_unused_result));
/* Job id into *j (release it); -ENOENT when there is none. */
int sfs_index_job_get(struct sfs_index *ix, int64_t id, struct sfs_job *j)
	__attribute__((warn_unused_result));
/*
 * The job that says where the entry at staging stands: its newest job if that
 * is pending, reserved or error; -ENOENT when there is none (or it succeeded:
 * what is there now is another entry).
 */
int sfs_index_job_of(struct sfs_index *ix, const char *staging, struct sfs_job *j)
	__attribute__((warn_unused_result));
/*
 * Record the intent before anything moves (step "moving": canonical,
 * addressing, metadata, receipt, and a directory's files, j->files), in one
 * transaction.  j->id 0: a new reserved job row (sets j->id).  Durable.
 */
int sfs_index_job_begin(struct sfs_index *ix, struct sfs_job *j)
	__attribute__((warn_unused_result));
/* More files of the directory a job commits (after job_begin, before the promotion). */
int sfs_index_job_add_files(struct sfs_index *ix, int64_t id, const struct sfs_job_file *files,
			    size_t n) __attribute__((warn_unused_result));
/* How many files the job's directory has. */
int sfs_index_job_file_count(struct sfs_index *ix, int64_t id, int64_t *n)
	__attribute__((warn_unused_result));
/*
 * The job's files in path order, max at a time: *json the JSON array
 * [[rel,size,md5],...] of those after *after (NULL to start; replaced by the
 * last path given, the caller frees it); *json NULL when none are left.
 */
int sfs_index_job_files_part(struct sfs_index *ix, int64_t id, char **after, size_t max,
			     char **json) __attribute__((warn_unused_result));
/* Add a record part's files ([[rel,size,md5],...]) to directory object key (reindex). */
int sfs_index_import_object_files(struct sfs_index *ix, const char *key, const char *files)
	__attribute__((warn_unused_result));
/* Change the canonical key (schema path collision drew a new token) and the metadata. */
int sfs_index_job_retarget(struct sfs_index *ix, struct sfs_job *j, const char *canonical,
			   const char *metadata) __attribute__((warn_unused_result));
/*
 * The entry is at its canonical key: in one transaction insert the object
 * row (kept if it exists: dedup) and its files' rows, the receipt (dedup flag
 * set when dedup), and end the job as success.  Idempotent.
 */
int sfs_index_job_finish(struct sfs_index *ix, const struct sfs_job *j, int dedup)
	__attribute__((warn_unused_result));
/* Record that the canonical object is complete (step "copied"); durable on return. */
int sfs_index_job_copied(struct sfs_index *ix, struct sfs_job *j)
	__attribute__((warn_unused_result));
/*
 * The object's record for the store (.stagefs/objects/<key>.json): its
 * receipt metadata and, for a directory, its files with their MD5s, so that
 * another host's publish and `stagefs reindex` need not read the bytes.
 * JSON {"format":"stagefs-object","version":1,"metadata":{..},"files":[[rel,size,md5]..]};
 * with parts > 0 the files are left out for parts written beside it
 * (sfs_index_job_files_part) and the record says "parts":N,"file_count":F.
 */
int sfs_index_job_sidecar(struct sfs_index *ix, const struct sfs_job *j, int parts,
			  int64_t file_count, char **json) __attribute__((warn_unused_result));
/*
 * Add an object and its files (and its receipt, from metadata.staging) to the
 * index from such a record (reindex).  Idempotent.
 */
int sfs_index_import_object(struct sfs_index *ix, const char *key, const char *record)
	__attribute__((warn_unused_result));
/*
 * Add a receipt from a receipt record ({"dir","name","object","metadata"},
 * see SFS_RECEIPT_RECORDS) when the index knows its object: it replaces a
 * receipt of that name with an older metadata.timestamp, not a newer one.
 * 1 when added, 0 when not (unknown object, or older), -EINVAL when malformed.
 */
int sfs_index_import_receipt(struct sfs_index *ix, const char *record)
	__attribute__((warn_unused_result));
/* The intent is void (nothing moved): step, key and files cleared; the status stays. */
int sfs_index_job_abort(struct sfs_index *ix, int64_t id) __attribute__((warn_unused_result));
/*
 * End the job as error with errno err (positive) and reason; not a job whose
 * promotion is under way or done (a step recorded): recovery ends that one.
 */
int sfs_index_job_fail(struct sfs_index *ix, int64_t id, int err, const char *reason)
	__attribute__((warn_unused_result));
/* Bytes digested or copied so far (what `stagefs jobs` and the status show). */
int sfs_index_job_progress(struct sfs_index *ix, int64_t id, uint64_t done, uint64_t total)
	__attribute__((warn_unused_result));
/*
 * At mount, after recovery: every job still reserved (a run that ended with
 * the daemon) is pending again, to run from the start; a job with no VALUE
 * (queued before schema 5) ends as error instead.  *n: how many resume.
 */
int sfs_index_jobs_resume(struct sfs_index *ix, int64_t *n) __attribute__((warn_unused_result));
/* Failed jobs pending again (`stagefs jobs --retry`); *n: how many. */
int sfs_index_jobs_retry(struct sfs_index *ix, int64_t *n) __attribute__((warn_unused_result));
/*
 * Call cb for every job whose promotion is under way (reserved with a step:
 * recovery).  cb's return stops the walk and is returned.
 */
int sfs_index_jobs(struct sfs_index *ix, int (*cb)(void *arg, struct sfs_job *j), void *arg);
/*
 * Every job with status (NULL: any), newest first, at most limit (0: all):
 * cb(job); non-zero stops and is returned.  "error" lists only failures
 * that are their entry's newest job (a later commit of it supersedes them).
 */
int sfs_index_jobs_list(struct sfs_index *ix, const char *status, int limit,
			int (*cb)(void *arg, struct sfs_job *j), void *arg)
	__attribute__((warn_unused_result));
/* How many jobs have each status (errors as listed above), and the bytes of the running ones. */
struct sfs_job_counts {
	int64_t pending, reserved, success, error;
	uint64_t bytes_done, bytes_total;
};
int sfs_index_jobs_count(struct sfs_index *ix, struct sfs_job_counts *out)
	__attribute__((warn_unused_result));

/* Canonical objects. */
int sfs_index_object_metadata(struct sfs_index *ix, const char *path, char **json)
	__attribute__((warn_unused_result)); /* -ENOENT when unknown */
/*
 * The MD5 (hex) of canonical file path: a file object, or a file of a
 * directory object; *object (malloc'd, may be NULL) gets the object's key.
 * -ENOENT when the index knows no such file.
 */
int sfs_index_file_md5(struct sfs_index *ix, const char *path, char md5[33], char **object)
	__attribute__((warn_unused_result));
/* Every object at or below store key prefix ("": every object): cb(path, metadata) with the
 * index lock held (cb must not call the index); non-zero stops and is returned. */
int sfs_index_objects_under(struct sfs_index *ix, const char *prefix,
			    int (*cb)(void *arg, const char *path, const char *metadata), void *arg)
	__attribute__((warn_unused_result));
/* Register an object found in the store (recovery, reindex): kept if it exists. */
int sfs_index_object_add(struct sfs_index *ix, const char *path, const char *addressing,
			 const char *metadata) __attribute__((warn_unused_result));
int sfs_index_object_count(struct sfs_index *ix, int64_t *n) __attribute__((warn_unused_result));
/*
 * Forget object key (gc moved it to quarantine): its row, its files and the
 * receipts naming it, in one transaction.  Restoring it is
 * sfs_index_import_object from its record.  0 also when the index lacks it.
 */
int sfs_index_object_forget(struct sfs_index *ix, const char *key)
	__attribute__((warn_unused_result));
/*
 * Every file of a directory object (fsck): cb(path, size, md5) with the
 * index's lock held, so cb must not call into the index; non-zero stops.
 */
int sfs_index_object_files_each(struct sfs_index *ix,
				int (*cb)(void *arg, const char *path, uint64_t size,
					  const char *md5),
				void *arg) __attribute__((warn_unused_result));
/* Receipts whose object the index does not know (fsck); cb as above. */
int sfs_index_receipt_orphans(struct sfs_index *ix,
			      int (*cb)(void *arg, const char *dir, const char *name,
					const char *object),
			      void *arg) __attribute__((warn_unused_result));

/* Receipts (dir = staging rel dir, name = "<entry>.json"). */
int sfs_index_receipt_get(struct sfs_index *ix, const char *dir, const char *name, char **json)
	__attribute__((warn_unused_result));
int sfs_index_receipt_delete(struct sfs_index *ix, const char *dir, const char *name)
	__attribute__((warn_unused_result));
/* cb(arg, name, size of JSON); stops on non-zero and returns it. */
int sfs_index_receipt_list(struct sfs_index *ix, const char *dir,
			   int (*cb)(void *arg, const char *name, int64_t size), void *arg);
/* 1 when dir has receipts, 0 when not, -errno on error. */
int sfs_index_receipt_any(struct sfs_index *ix, const char *dir);

/*
 * Staged files stored in a backend that uploads them (s3): rel (relative to
 * staging/) with the local size, mode and mtime the file had when its bytes
 * were read for the upload.  The daemon records a row after each upload,
 * moves rows on rename and forgets them on unlink and commit; at mount a
 * local file whose size or mtime differs from its row (or that has none) is
 * uploaded again, exactly, with no clock comparison against the server.
 */
struct sfs_staged_xattr {
	char *name; /* e.g. "user.lab.operator" */
	void *value;
	size_t len;
};
struct sfs_staged {
	uint64_t size;
	unsigned mode;
	int64_t mtime_ns;
	struct sfs_staged_xattr *xattrs; /* the file's user xattrs then (not stagefs' own) */
	size_t n_xattrs;
};
/* Record (replace) rel's row with r's fields and xattrs, in one transaction. */
int sfs_index_staged_put(struct sfs_index *ix, const char *rel, const struct sfs_staged *r)
	__attribute__((warn_unused_result));
/*
 * rel's mode or user xattrs changed, not its bytes: replace mode and xattrs
 * of its row from r (size and mtime stay: they describe what was stored).
 * Nothing when rel has no row.
 */
int sfs_index_staged_meta(struct sfs_index *ix, const char *rel, const struct sfs_staged *r)
	__attribute__((warn_unused_result));
/* Free what sfs_index_staged_get allocated in *r (xattrs). */
void sfs_staged_release(struct sfs_staged *r);
/* -ENOENT when rel has no row; release *out with sfs_staged_release. */
int sfs_index_staged_get(struct sfs_index *ix, const char *rel, struct sfs_staged *out)
	__attribute__((warn_unused_result));
/* Forget rel and everything below it. */
int sfs_index_staged_forget(struct sfs_index *ix, const char *rel)
	__attribute__((warn_unused_result));
/* Rows of from (and below) become rows of to; rows of to (and below) go first. */
int sfs_index_staged_move(struct sfs_index *ix, const char *from, const char *to)
	__attribute__((warn_unused_result));
int sfs_index_staged_count(struct sfs_index *ix, int64_t *n) __attribute__((warn_unused_result));

#endif

/*
 * Build a commit xattr VALUE (SPEC §4) from command-line pieces, with SQLite's
 * JSON functions: field, keys as "name=value" (value typed: integer, float,
 * true/false -> bool, anything else a string; "name:=JSON" takes a JSON value
 * as is), ext (NULL = absent).  *out malloc'd.  -EINVAL on a malformed key.
 * Standalone: needs no open index.
 */
int sfs_commit_value_build(const char *field, char *const *keys, int nkeys, const char *ext,
			   char **out) __attribute__((warn_unused_result));
