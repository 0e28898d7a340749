/*
 * fs/fs.h - the daemon's shared state: the mount, its inode table and the
 * entry points of the FUSE operations, commit and recovery.
 *
 * Inode kinds and what they map to:
 *   SFS_IK_ROOT      the mount root: "staging", <schema_prefix>, <hash_prefix>
 *   SFS_IK_STAGING   a real file/dir/symlink below the backend's staging dir,
 *                    held by an O_PATH fd (passthrough, like passthrough_ll.c);
 *                    depth 0 = staging/, 1 = <schema>, 2 = <table>, 3 = inside
 *   SFS_IK_CANON     a canonical object or prefix, by store key (read-only)
 *   SFS_IK_RECEIPTS  the virtual "<dir>/.receipts" directory of a staging dir
 *   SFS_IK_RECEIPT   one receipt file in it
 *
 * Locking: fs->lock protects the inode table and every field marked
 * "protected by fs->lock".  Lock order: fs->lock, then inode->hlock.  No lock
 * is held across a fuse_reply_*() or a backend call.
 */
#ifndef SFS_FS_H
#define SFS_FS_H

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend/backend.h"
#include "common/config.h"
#include "index/addressing.h"
#include "index/index.h"

enum sfs_ikind { SFS_IK_ROOT, SFS_IK_STAGING, SFS_IK_CANON, SFS_IK_RECEIPTS, SFS_IK_RECEIPT };

#include "fs/cache.h"
#include "fs/hasher.h"

struct sfs_inode {
	enum sfs_ikind kind;
	int fd;	   /* SFS_IK_STAGING: O_PATH fd, else -1; immutable */
	dev_t dev; /* SFS_IK_STAGING identity */
	ino_t ino;
	mode_t type;	  /* S_IFMT bits at lookup */
	int depth;	  /* SFS_IK_STAGING: 0..3 (3 = inside a table) */
	char *key;	  /* CANON: store key; RECEIPTS: staging rel dir; RECEIPT: dir */
	char *name;	  /* RECEIPT: receipt file name */
	char *tkey;	  /* key in the inode table, NULL when not in it */
	uint64_t nlookup; /* protected by fs->lock */
	int writers;	  /* open write handles, protected by fs->lock */
	int committing;	  /* a commit of this entry (or a parent) runs; protected by fs->lock */
	int stale;	  /* committed away: every op fails ENOENT; protected by fs->lock */
	pthread_mutex_t hlock;	/* protects hjob and status */
	struct sfs_hjob *hjob;	/* digest while written (NULL: unknown); protected by hlock */
	char *status;		/* last commit error / progress; protected by hlock */
	struct sfs_inode *next; /* hash chain, protected by fs->lock */
	/* staging reclaim: where the kernel last looked it up; LRU; protected by fs->lock */
	fuse_ino_t parent;
	char *lname;
	struct sfs_inode *lru_prev, *lru_next;
	int opens; /* open handles of any kind (reclaim only idle files); protected by fs->lock */
};

struct sfs_fs {
	struct sfs_config *cfg;
	struct sfs_backend *be;
	struct sfs_index *ix;
	struct fuse_session *se;
	int staging_fd;			   /* O_RDONLY|O_DIRECTORY fd of the staging dir */
	struct sfs_staged_journal journal; /* index rows of stored staged files (s3) */
	struct sfs_fh *handles; /* open canonical, receipt and directory handles (under lock) */
	char *staging_real;	/* its absolute path, to map /proc/self/fd links to rel paths */
	size_t staging_real_len;
	int read_only;
	double timeout; /* entry/attr timeout for staging inodes */
	pthread_mutex_t lock;
	struct sfs_inode root;	   /* pinned */
	struct sfs_inode *staging; /* pinned */
	struct sfs_inode **table;  /* protected by lock */
	size_t table_size, table_count;
	/*
	 * Every staging inode the kernel remembers holds an O_PATH fd.  Past
	 * reclaim_high of them, the least recently used idle files are dropped
	 * from the kernel's cache (inval_entry), whose FORGETs free them.
	 */
	struct sfs_inode lru; /* list head; protected by lock */
	size_t nstaging;      /* protected by lock */
	size_t reclaim_high, reclaim_low, reclaim_hard;
	pthread_cond_t reclaim_cond; /* nstaging fell to reclaim_hard; waited on with lock */
	/* bound of a local staging cache (fs/cache.c); cache_limit 0 = none */
	uint64_t cache_limit;
	uint64_t cache_used; /* protected by cache_mutex */
	pthread_mutex_t cache_mutex;
	pthread_mutex_t fetch_mutex; /* one restore of an evicted file at a time */
	pthread_rwlock_t evict_lock; /* write: an eviction pass; read: opens, fetches */
	int cache_ready;
	/* invalidations are sent from their own thread (never from a request handler) */
	pthread_t notifier;
	pthread_mutex_t nlock;
	pthread_cond_t ncond;
	struct sfs_notify *nqueue; /* protected by nlock */
	int nstop;		   /* protected by nlock */
	int notifier_started;
};

/* Operation table for fuse_session_new. */
extern const struct fuse_lowlevel_ops sfs_fs_ops;

/* Set up / tear down fs (config, backend and index already open; fs borrows them). */
int sfs_fs_init(struct sfs_fs *fs, struct sfs_config *cfg, struct sfs_backend *be,
		struct sfs_index *ix) __attribute__((warn_unused_result));
void sfs_fs_release(struct sfs_fs *fs);
/* Start/stop the invalidation thread (after fuse_session_mount / before unmount). */
int sfs_fs_start_notifier(struct sfs_fs *fs);
void sfs_fs_stop_notifier(struct sfs_fs *fs);
/* Queue "forget name in parent" for the kernel's dentry cache. */
void sfs_fs_notify_entry(struct sfs_fs *fs, fuse_ino_t parent, const char *name);
/*
 * Queue "drop child (name in parent) from your caches": the kernel unhashes
 * the entry and evicts the inode on its last reference, so a FORGET follows.
 * Only for files no process has open (reclaim of idle inodes).
 */
void sfs_fs_notify_drop(struct sfs_fs *fs, fuse_ino_t parent, fuse_ino_t child, const char *name);

/*
 * Path of a staging inode relative to the staging dir ("lab/Session/x.h5"),
 * from /proc/self/fd.  *out malloc'd.  -ENOENT when deleted or moved out.
 */
int sfs_fs_staging_rel(struct sfs_fs *fs, struct sfs_inode *in, char **out)
	__attribute__((warn_unused_result));
/* The MD5 of a staged file computed while it was written: "<hex> <size>" (hidden from users). */
#define SFS_XATTR_HINT "user.stagefs.md5"

/* FNV-1a of a string: inode-table buckets and stable st_ino of virtual inodes. */
uint64_t sfs_fs_key_hash(const char *s);

/* Inode table (fs/inode.c); caller holds fs->lock.  tkey: "s:<dev>:<ino>", "c:<key>", ... */
struct sfs_inode *sfs_fs_table_find_locked(struct sfs_fs *fs, const char *tkey);
int sfs_fs_table_insert_locked(struct sfs_fs *fs, struct sfs_inode *in);
void sfs_fs_table_remove_locked(struct sfs_fs *fs, struct sfs_inode *in);
/* Keep a committed-away inode (until forget or unmount) where no lookup finds it. */
void sfs_fs_table_retire_locked(struct sfs_fs *fs, struct sfs_inode *in);
/* Find a staging inode by identity (no reference taken); caller holds fs->lock. */
struct sfs_inode *sfs_fs_find_staging_locked(struct sfs_fs *fs, dev_t dev, ino_t ino);

/* A reference to the inode's hash job, or NULL (caller puts it). */
struct sfs_hjob *sfs_inode_hjob(struct sfs_inode *in);

/* Replace the inode's status text (NULL clears). */
void sfs_inode_set_status(struct sfs_inode *in, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Commit (SPEC §4) the staging entry `in` (name `name` in `parent`) with the
 * xattr VALUE.  Returns 0 when the canonical object, its index row and the
 * receipt are durable and the staged entry is gone; -errno otherwise with the
 * staged entry untouched and the reason in the entry's status.
 */
int sfs_commit(struct sfs_fs *fs, struct sfs_inode *in, const char *value, size_t len)
	__attribute__((warn_unused_result));

/*
 * Finish or undo every commit the index records as in flight (after a crash).
 * Returns 0, or -errno when the index or store could not be read.
 */
int sfs_recover(struct sfs_backend *be, struct sfs_index *ix) __attribute__((warn_unused_result));

/* Subcommands (fs/cli.c): argv[0] is the subcommand.  Return the exit code. */
int sfs_cli_main(int argc, char **argv);
int sfs_cli_is_subcommand(const char *s);

#endif
