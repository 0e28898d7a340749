/*
 * backend/s3_priv.h - what backend/s3.c, s3_blocks.c, s3_claim.c, s3_staged.c and
 * s3_promote.c share
 * (the s3 backend's state and helpers; not for other callers).
 *
 * Keys named fk or "full" include the store prefix ("<location>/"); the
 * others are store-relative.  Functions return 0 or -errno unless noted.
 */
#ifndef SFS_BACKEND_S3_PRIV_H
#define SFS_BACKEND_S3_PRIV_H

#include "backend/backend.h"
#include "backend/s3_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sfs_dcache;

struct s3_backend {
	struct sfs_backend base;
	struct sfs_s3_client *c;
	char *prefix;	      /* "" or "<location>/" */
	char *staging_dir;    /* local mirror of _staging */
	char *blocks_dir;     /* local cache of canonical (immutable) object blocks */
	uint64_t blocks_max;  /* bound of blocks_dir, bytes */
	uint64_t blocks_used; /* protected by blocks_lock */
	pthread_mutex_t blocks_lock;
	atomic_int cond_put; /* server honours If-None-Match: * (set at open; 1 -> 0 only) */
	atomic_int
		cond_complete; /* ... on CompleteMultipartUpload too: a conditional copy is safe */
	struct sfs_dcache *dc; /* canonical listings, fresh for dir_cache_time seconds */
	const struct sfs_staged_journal *journal; /* the index's rows of stored staged files */
	int read_only;
};

static inline struct s3_backend *S3(struct sfs_backend *b)
{
	return (struct s3_backend *)b;
}

/* One listed object: its full key, size and LastModified. */
struct obj {
	char *key;
	uint64_t size;
	int64_t mtime_ns;
};

/* A growable list of objects (sfs_s3b_collect_cb fills it). */
struct objlist {
	struct obj *v;
	size_t n, cap;
	int err;
};

/* ---- s3.c: keys, listings, the namespace ---- */

/* "<prefix><a><b>" malloc'd (a, b may be NULL); NULL on ENOMEM. */
char *sfs_s3b_join(const char *prefix, const char *a, const char *b);
/* The full key of store key key, malloc'd; NULL on ENOMEM. */
char *sfs_s3b_full_key(struct s3_backend *s, const char *key);
/* sfs_s3_list callback appending each object (not prefixes) to the struct objlist arg. */
int sfs_s3b_collect_cb(void *arg, const char *key, int is_prefix,
		       const struct sfs_s3_objinfo *info);
/* Free l's keys and array and zero it. */
void sfs_s3b_objlist_release(struct objlist *l);
/* Every object whose key starts with full key dir + "/" into out (released on failure). */
int sfs_s3b_list_tree(struct s3_backend *s, const char *dir, struct objlist *out);
/* 1 when some object lives under full key dir + "/", 0 when none, or -errno. */
int sfs_s3b_prefix_exists(struct s3_backend *s, const char *dir);
/* Delete every object of l (batched); 0 when l is empty. */
int sfs_s3b_delete_objlist(struct s3_backend *s, struct objlist *l);
/* Canonical store key key was (or may have been) written or removed: drop stale listings. */
void sfs_s3b_written(struct s3_backend *s, const char *key);
/* The server answered 501 to If-None-Match: no-replace uses HEAD from now on (logged once). */
void sfs_s3b_no_conditional_writes(struct s3_backend *s);

/* ---- s3_blocks.c: reads of canonical objects, the local block cache ---- */

/* The vtable's open/pread/close of canonical objects (reads go through the block cache). */
int sfs_s3b_open(struct sfs_backend *b, const char *key, struct sfs_bfile **out);
ssize_t sfs_s3b_pread(struct sfs_backend *b, struct sfs_bfile *f, void *buf, size_t n, off_t off);
void sfs_s3b_close(struct sfs_backend *b, struct sfs_bfile *f);
/* The cached size (and mtime, when not NULL) of full key key; -ENOENT when not cached. */
int sfs_s3b_block_size_get(struct s3_backend *s, const char *key, uint64_t *size, int64_t *mtime);
/* Cache the size and mtime of full key key (a failure only costs a HEAD later). */
void sfs_s3b_block_size_put(struct s3_backend *s, const char *key, uint64_t size, int64_t mtime);
/* Full key fk was removed: drop its cached size and blocks. */
void sfs_s3b_block_forget(struct s3_backend *s, const char *fk);

/* ---- s3_claim.c: promotion claims (no-replace for copies; see there) ---- */

/*
 * Claim full key fk for a no-replace promotion: *out is the claim's key, to
 * give back with sfs_s3b_unclaim once the copy is done or failed.  -EEXIST
 * when fk came to exist while another promoter held it, -EBUSY when a live
 * holder kept it past the wait, -ENOSYS when the server refuses If-None-Match.
 */
int sfs_s3b_claim(struct s3_backend *s, const char *fk, char **out);
/* Remove claim ck (from sfs_s3b_claim) and free it.  NULL-safe. */
void sfs_s3b_unclaim(struct s3_backend *s, char *ck);

/* ---- s3_staged.c: the staging side (vtable ops) ---- */

/* Create the local staging cache, reconcile it with the bucket; an O_DIRECTORY fd. */
int sfs_s3b_staging_dir(struct sfs_backend *b);
/* Upload staged file rel (open as fd) to "_staging/<rel>". */
int sfs_s3b_staged_sync(struct sfs_backend *b, const char *rel, int fd, int durable);
/* Delete the staged object rel (or every one below it when is_dir). */
int sfs_s3b_staged_unlink(struct sfs_backend *b, const char *rel, int is_dir);
/* Delete what is staged at rel (object or tree) and its local copy. */
int sfs_s3b_staged_remove(struct sfs_backend *b, const char *rel);
/* GET the staged object rel into fd from offset 0. */
int sfs_s3b_staged_fetch(struct sfs_backend *b, const char *rel, int fd);
/* Move the staged object or tree from to to (server-side copies, then deletes). */
int sfs_s3b_staged_rename(struct sfs_backend *b, const char *from, const char *to);
/* The backend's move (backend.h): copy every object of from to to, then delete the sources. */
int sfs_s3b_move(struct sfs_backend *b, const char *from, const char *to);
/* The full key of staged rel ("<prefix>_staging/<rel>"), malloc'd; NULL on ENOMEM. */
char *sfs_s3b_staged_key(struct s3_backend *s, const char *rel);
/*
 * Gather what lives at full key from: the object itself (*is_dir = 0) or
 * every object under "from/" (*is_dir = 1).  -ENOENT when neither exists.
 */
int sfs_s3b_gather(struct s3_backend *s, const char *from, struct objlist *l, int *is_dir);

/* ---- s3_promote.c: promotion, parallel transfers ---- */

/*
 * Promote staged_rel (file or tree) to store key key, honouring
 * SFS_NOREPLACE and SFS_KEEP_SOURCE: files the store holds as the local cache
 * has them are copied from their staged objects, the others PUT from the cache.
 */
int sfs_s3b_promote(struct sfs_backend *b, const char *staged_rel, const char *key, int flags);
/*
 * Copy the objects l gathered at full key from to full key to (is_dir: the
 * part of each key below from is kept) in parallel, with sfs_s3_copy flags;
 * on failure the copies already made are deleted again.
 */
int sfs_s3b_copy_all(struct s3_backend *s, struct objlist *l, const char *from, const char *to,
		     int is_dir, int flags);

#endif
