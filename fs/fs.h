/*
 * fs/fs.h - the daemon's shared state: the mount, its inodes and the entry
 * points the rest of the daemon uses (commit, recovery, subcommands).
 *
 * Shape (see fs/view.h): every inode belongs to one *view*, the table of
 * operations of the namespace it lives in:
 *   root       the mount root: staging/, <schema_prefix>/, <hash_prefix>/
 *   staging    staging/...: a passthrough onto the backend's local staging
 *              directory (fs/view_staging.c, staging_io.c, staging_inode.c)
 *   canonical  <schema_prefix>/..., <hash_prefix>/...: read-only objects
 *   receipts   <staging dir>/.receipts/ and the receipts in it, from the index
 *   gone       a staging entry committed away: every operation fails ENOENT
 *   snapshot   a published snapshot (-o snapshot=NAME, .snapshots/NAME/...)
 *   snapshots  .snapshots/ of a live mount
 * fs/lowlevel.c is the only file that talks to libfuse; views return 0 or
 * -errno and fill plain structs.
 *
 * Inodes hold no file descriptor.  A staging inode is found again through a
 * kernel file handle (name_to_handle_at / open_by_handle_at) when the staging
 * filesystem and our privileges allow it, else by its parent and name; only
 * open files hold descriptors, plus a bounded cache of directory descriptors.
 *
 * Lock order (a thread holding one lock takes only locks further down):
 *   1. fs->lock        the inode table; every inode's nlookup, refs and flags;
 *                      staging inodes' parent, name and counters
 *   2. stripe locks    sfs_inode_stripe(in): staging inodes' hash job and status
 *   3. fs->dlock       the directory descriptor cache (fs/staging_inode.c)
 *   4. fs->slock       loaded snapshots, the .snapshots listing, publish status
 *   5. fs->hlock       the list of open handles
 *   6. fs->nlock       the notifier's queue
 *   (fs->publish_lock is taken first of all, by a publish only; the commit
 *   queue's lock (fs/jobs.c) before fs->lock, never while a commit runs.
 *   The index and the backend have leaf locks of their own.)
 *   (fs/cache.c's evict_lock, fetch_mutex and cache_mutex are taken without
 *   any of the above held, in that order.)
 * No lock is held across a backend call, a blocking syscall on user data or
 * a fuse_reply_*().
 */
#ifndef SFS_FS_H
#define SFS_FS_H

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "backend/backend.h"
#include "common/config.h"
#include "index/addressing.h"
#include "index/index.h"

struct sfs_view;
struct sfs_fh;
struct sfs_dcache_ent;
struct sfs_stg;
struct sfs_snapref;
struct sfs_list;
struct sfs_uploads;

/*
 * The part every inode has; views embed it as their first member.  The FUSE
 * node id of an inode is its address (FUSE_ROOT_ID for the root).
 */
struct sfs_inode {
	const struct sfs_view *view; /* atomic: sfs_inode_view() / sfs_inode_set_view() */
	struct sfs_inode *hnext;     /* table chain; fs->lock */
	uint64_t hash;		     /* of the identity (view-specific); immutable */
	uint64_t nlookup;	     /* the kernel's references; fs->lock */
	uint32_t refs;		     /* ours: children naming it parent, users; fs->lock */
	uint8_t flags;		     /* SFS_IN_*; fs->lock */
	uint8_t used;		     /* touched since the last reclaim sweep; atomic */
};

#define SFS_IN_TABLE  0x1 /* findable in the table */
#define SFS_IN_PINNED 0x2 /* never freed before unmount (root, staging, prefixes) */
#define SFS_IN_LINKED 0x4 /* on a table chain (unfindable ones too, until freed) */

struct sfs_fs {
	struct sfs_config *cfg;
	const char *source, *options; /* as the mount was asked for (-o without secrets) */
	struct sfs_backend *be;
	struct sfs_index *ix;
	struct fuse_session *se;
	int read_only;
	double timeout;		    /* entry/attr timeout of staging inodes */
	struct timespec mount_time; /* times of the directories the mount makes up */

	pthread_mutex_t lock;
	struct sfs_inode root;		  /* pinned, never in the table */
	struct sfs_stg *staging;	  /* pinned: staging/ itself */
	struct sfs_inode *canon_roots[2]; /* pinned: first segments of the prefixes */
	int ncanon_roots;
	struct sfs_inode **table; /* lock */
	size_t table_size, table_count;
	size_t nstaging; /* reclaimable inodes alive: staging inodes, snapshot files; lock */
	/* reclaim (fs/inode.c): past inode_high of those, idle ones are dropped */
	size_t inode_high, inode_low;
	size_t sweep;		 /* the reclaim sweep's next bucket; lock */
	unsigned long reclaimed; /* inodes the kernel was asked to drop; atomic */

	/* staging (fs/staging_inode.c) */
	int staging_fd; /* O_RDONLY|O_DIRECTORY of the staging dir; also open_by_handle_at's mount fd */
	dev_t staging_dev;
	int use_handles; /* staging inodes carry kernel file handles */
	pthread_mutex_t dlock;
	struct sfs_dcache_ent *dcache; /* dlock */
	size_t dcache_n, dcache_max;   /* dlock; dcache_max immutable */
	uint64_t dcache_tick;	       /* dlock */

	pthread_mutex_t hlock;
	struct sfs_fh *handles; /* every open handle, freed at unmount if never released; hlock */

	struct sfs_staged_journal journal; /* index rows of stored staged files (s3) */
	struct sfs_uploads *uploads; /* write-back queue (fs/uploads.c); NULL: close uploads */

	/* snapshots (fs/view_snapshot.c) */
	pthread_mutex_t slock;
	struct sfs_jobq *jobq;	      /* commit jobs and their workers (fs/jobs.c) */
	struct sfs_snapref *mounted;  /* -o snapshot=NAME: the snapshot the root shows */
	struct sfs_snapref *snaps;    /* every loaded snapshot; slock */
	struct sfs_inode *snapdir;    /* .snapshots/ of a live mount (pinned) */
	struct sfs_list *snap_names;  /* its last listing; slock */
	long long snap_names_at;      /* when (CLOCK_MONOTONIC ns); slock */
	char publish_status[512];     /* what a publish is doing, or its last error; slock */
	char *published;	      /* the head of this daemon's last publish; slock */
	pthread_mutex_t publish_lock; /* one publish at a time */

	/* bound of a local staging cache (fs/cache.c); cache_limit 0 = none */
	uint64_t cache_limit;
	uint64_t cache_used;	 /* cache_mutex */
	uint64_t cache_gen;	 /* bumped when something became evictable; cache_mutex */
	uint64_t cache_full_gen; /* cache_gen when a rescan last found nothing to evict */
	int cache_full;		 /* that rescan's verdict still holds; cache_mutex */
	pthread_mutex_t cache_mutex;
	pthread_mutex_t fetch_mutex; /* one restore of an evicted file at a time */
	pthread_rwlock_t evict_lock; /* write: an eviction pass; read: opens, fetches */
	int cache_ready;
	unsigned long cache_rescans; /* how often the tree was walked (tests); cache_mutex */

	/* invalidations and reclaim are sent from their own thread, never from a handler */
	pthread_t notifier;
	pthread_mutex_t nlock;
	pthread_cond_t ncond;
	struct sfs_notify *nqueue;    /* nlock */
	int nstop;		      /* nlock */
	int nreclaim;		      /* a reclaim sweep is wanted; nlock */
	unsigned long nposted, ndone; /* entry invalidations queued / sent; nlock */
	pthread_cond_t nsent;	      /* ndone grew (sfs_fs_notify_flush); nlock */
	int notifier_started;
};

/* Operation table for fuse_session_new (fs/lowlevel.c). */
extern const struct fuse_lowlevel_ops sfs_fs_ops;

/* Set up / tear down fs (config, backend and index already open; fs borrows them). */
int sfs_fs_init(struct sfs_fs *fs, struct sfs_config *cfg, struct sfs_backend *be,
		struct sfs_index *ix) __attribute__((warn_unused_result));
void sfs_fs_release(struct sfs_fs *fs);
/* Start/stop the notifier thread (after fuse_session_mount / before unmount). */
int sfs_fs_start_notifier(struct sfs_fs *fs) __attribute__((warn_unused_result));
void sfs_fs_stop_notifier(struct sfs_fs *fs);
/*
 * The kernel's cached attributes of in are stale (we changed them behind its
 * back): drop them now.  Safe from a request handler.
 */
void sfs_fs_notify_attr(struct sfs_fs *fs, struct sfs_inode *in);
/* Queue "forget name in parent" for the kernel's dentry cache (any thread, never blocks). */
void sfs_fs_notify_entry(struct sfs_fs *fs, struct sfs_inode *parent, const char *name);
/*
 * Wait (at most timeout_ms) until the invalidations queued so far were sent:
 * a commit returns only once the kernel forgot the committed name, so a file
 * created at once under that name is a new one.  Never from a FUSE handler.
 */
void sfs_fs_notify_flush(struct sfs_fs *fs, int timeout_ms);

/* FUSE node id <-> inode. */
static inline struct sfs_inode *sfs_inode_of(struct sfs_fs *fs, fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &fs->root : (struct sfs_inode *)(uintptr_t)ino;
}
static inline fuse_ino_t sfs_ino_of(struct sfs_fs *fs, const struct sfs_inode *in)
{
	return in == &fs->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
}
static inline const struct sfs_view *sfs_inode_view(const struct sfs_inode *in)
{
	return __atomic_load_n(&in->view, __ATOMIC_ACQUIRE);
}
static inline void sfs_inode_set_view(struct sfs_inode *in, const struct sfs_view *v)
{
	__atomic_store_n(&in->view, v, __ATOMIC_RELEASE);
}

/* ---- the inode table (fs/inode.c); callers hold fs->lock where it says _locked ---- */

/* Identity test of a table search: 1 when in is the inode key names. */
typedef int (*sfs_inode_match)(const struct sfs_inode *in, const void *key);

/* The inode of view v with this hash for which match(in, key) holds, or NULL. */
struct sfs_inode *sfs_table_find_locked(struct sfs_fs *fs, const struct sfs_view *v, uint64_t hash,
					sfs_inode_match match, const void *key);
/* Make in findable (sets SFS_IN_TABLE).  -ENOMEM when the table cannot grow. */
int sfs_table_insert_locked(struct sfs_fs *fs, struct sfs_inode *in)
	__attribute__((warn_unused_result));
/* Make in unfindable (it lives on until the kernel forgets it). */
void sfs_table_remove_locked(struct sfs_fs *fs, struct sfs_inode *in);
/* Free every inode (unmount): the kernel's references are moot then. */
void sfs_table_free_all(struct sfs_fs *fs);
/* Visit every inode in the table; cb returns non-zero to stop. */
void sfs_table_each_locked(struct sfs_fs *fs, int (*cb)(struct sfs_inode *in, void *arg),
			   void *arg);

/* Our references (refs): an inode is freed once nlookup and refs are both 0. */
void sfs_inode_hold_locked(struct sfs_inode *in);
void sfs_inode_put_locked(struct sfs_fs *fs, struct sfs_inode *in);
void sfs_inode_put(struct sfs_fs *fs, struct sfs_inode *in);
/* The kernel's references: +n for a reply that hands it the inode, -n on FORGET. */
void sfs_inode_lookup_locked(struct sfs_inode *in, uint64_t n);
void sfs_inode_forget_locked(struct sfs_fs *fs, struct sfs_inode *in, uint64_t n);
void sfs_inode_forget(struct sfs_fs *fs, struct sfs_inode *in, uint64_t n);
/* Mark in recently used (the reclaim sweep skips it once). */
static inline void sfs_inode_touch(struct sfs_inode *in)
{
	__atomic_store_n(&in->used, 1, __ATOMIC_RELAXED);
}
/* One more staging inode exists (fs->lock held): may wake the reclaim sweep. */
void sfs_inode_count_locked(struct sfs_fs *fs, int delta);
/* Are max_inodes reclaimable inodes alive?  (A hint, read without the lock: a listing then
   hands out no more inodes.) */
int sfs_fs_inodes_full(struct sfs_fs *fs);
/* A lock of the stripe in belongs to (lock order 2). */
pthread_mutex_t *sfs_inode_stripe(const void *in);

/* FNV-1a of a string: table hashes and stable st_ino of made-up inodes. */
uint64_t sfs_fs_key_hash(const char *s);

/* ---- staging entries, for commit and the cache (fs/staging_inode.c) ---- */

/*
 * Path of a staging inode relative to the staging dir ("lab/Session/x.h5";
 * "" for staging/ itself).  *out malloc'd.  -ENOENT when it is gone.
 */
int sfs_stg_rel(struct sfs_fs *fs, struct sfs_stg *in, char **out)
	__attribute__((warn_unused_result));
/* A new descriptor of the staging inode opened with flags (O_PATH will do). */
int sfs_stg_open(struct sfs_fs *fs, struct sfs_stg *in, int flags)
	__attribute__((warn_unused_result));
/* The staging inode of host inode ino in the table, or NULL (no reference taken). */
struct sfs_stg *sfs_stg_find_locked(struct sfs_fs *fs, ino_t ino);

/*
 * Where each canonical object's record lives in the store (fs/commit.c):
 * <SFS_OBJECT_RECORDS>/<key>.json; a directory of more than
 * SFS_RECORD_INLINE_FILES files keeps them in <that>.parts/NNNNN.json.gz,
 * SFS_RECORD_PART_FILES a part.
 */
#define SFS_OBJECT_RECORDS ".stagefs/objects"
/*
 * A commit that found its bytes stored already (hash addressing: dedup) has a
 * receipt no object record holds: <SFS_RECEIPT_RECORDS>/<dir>/<name>, JSON
 * {"format":"stagefs-receipt","version":1,"dir","name","object","metadata"},
 * for `stagefs reindex` (the newest receipt of a name wins).
 */
#define SFS_RECEIPT_RECORDS	".stagefs/receipts"
#define SFS_RECORD_INLINE_FILES 1000
#define SFS_RECORD_PART_FILES	10000

/* The MD5 of a staged file computed while it was written: "<hex> <size>" (hidden from users). */
#define SFS_XATTR_HINT "user.stagefs.md5"

/*
 * Run commit job `job` (reserved; fs/jobs.c calls this on a worker thread):
 * commit (SPEC §4) the staging entry `in` with the xattr VALUE.  Returns 0
 * when the canonical object, its index row and the receipt are durable, the
 * job ended as success and the staged entry is gone; -errno otherwise with
 * the staged entry untouched, the reason in reason and in the entry's status
 * (the caller ends the job as error).
 */
int sfs_commit(struct sfs_fs *fs, struct sfs_stg *in, int64_t job, const char *value, size_t len,
	       char *reason, size_t rlen) __attribute__((warn_unused_result));

/*
 * Commit jobs (fs/jobs.c).  start: the workers, and the jobs a previous run
 * left resume (after sfs_recover); stop: after the FUSE loop (the running
 * jobs finish, the pending stay queued for the next mount).
 */
int sfs_jobs_start(struct sfs_fs *fs) __attribute__((warn_unused_result));
void sfs_jobs_stop(struct sfs_fs *fs);
/*
 * setxattr(user.stagefs.commit, value): queue the commit of in durably and
 * wait for it (sfs_commit's contract), or, with "async": true, return 0 once
 * it is queued.  -EBUSY when the entry has a job queued or running.
 */
int sfs_jobs_submit(struct sfs_fs *fs, struct sfs_stg *in, const char *value, size_t len)
	__attribute__((warn_unused_result));
/* Failed jobs run again (the mount root's user.stagefs.jobs = "retry"). */
int sfs_jobs_retry(struct sfs_fs *fs) __attribute__((warn_unused_result));
/* Where in's newest job stands ("queued", "committing d/t", "error: why"), "" when none. */
void sfs_jobs_status(struct sfs_fs *fs, struct sfs_stg *in, char *buf, size_t len);

/*
 * The object's record in the store (SFS_OBJECT_RECORDS), written before the
 * promotion (so a full disk fails the commit, not the step after it); kept
 * when it exists.  *created (may be NULL): 1 when this call wrote it.
 */
int sfs_commit_record(struct sfs_backend *be, struct sfs_index *ix, const struct sfs_job *j,
		      int *created) __attribute__((warn_unused_result));
/* Remove the record of canonical key (and its parts): its commit was undone.  0 or -errno. */
int sfs_commit_record_remove(struct sfs_backend *be, const char *canonical)
	__attribute__((warn_unused_result));
/* The staged entry rel is canonical now: its index rows of stored staged files go. */
void sfs_commit_forget_staged(struct sfs_index *ix, const char *rel);

/*
 * Finish or undo every commit the index records as in flight (after a crash;
 * fs/recover.c).
 * Returns 0, or -errno when the index or store could not be read.
 */
int sfs_recover(struct sfs_backend *be, struct sfs_index *ix) __attribute__((warn_unused_result));

/* Subcommands (fs/cli.c): argv[0] is the subcommand.  Return the exit code. */
int sfs_cli_main(int argc, char **argv);
int sfs_cli_is_subcommand(const char *s);
/* publish and snapshots (fs/cli_snapshots.c) */
int sfs_cli_publish(int argc, char **argv);
int sfs_cli_snapshots(int argc, char **argv);
/* fsck and reindex (fs/cli_fsck.c) */
int sfs_cli_fsck(int argc, char **argv);
int sfs_cli_reindex(int argc, char **argv);
/* gc, its quarantine list and restore (fs/cli_gc.c) */
int sfs_cli_gc(int argc, char **argv);
/* jobs (fs/cli_jobs.c) */
int sfs_cli_jobs(int argc, char **argv);
/* doctor: what a mount needs, checked (fs/cli_doctor.c) */
int sfs_cli_doctor(int argc, char **argv);

#endif
