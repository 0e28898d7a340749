/*
 * fs/snapshot.h - published snapshots (SPEC §5): a manifest of canonical
 * objects, claimed once under a name, never changed; mounted read-only.
 *
 * In the store, under _snapshots/<name>/:
 *   snapshot.json               the head: what the snapshot is and where its
 *                               parts are; written last, only if absent
 *   <publish id>/part-NNNNN.json.gz
 *                               the entries, gzip'd JSON arrays in path order
 *   deleted.json                a tombstone: the name stays taken for ever
 * (the README documents both formats).  No data is copied: canonical
 * objects never change, so a snapshot is a list of their keys and digests.
 *
 * Functions return 0 or -errno; reasons are logged.  Thread-safe where the
 * backend and index are.
 */
#ifndef SFS_FS_SNAPSHOT_H
#define SFS_FS_SNAPSHOT_H

#include <stdint.h>

#include "backend/backend.h"
#include "common/config.h"
#include "index/index.h"
#include "index/snapdb.h"

#define SFS_SNAPSHOTS "_snapshots" /* the store's top-level folder of manifests */

/* 1 when name is a snapshot name: [A-Za-z0-9._-]{1,128}, not "." or "..". */
int sfs_snap_name_ok(const char *name);

/* What a publish is asked for. */
struct sfs_publish {
	const char *name;
	const char *const *prefixes; /* store keys under a canonical root; none: every object */
	size_t nprefixes;
	const char *message; /* may be NULL */
	const char *tmpdir;  /* scratch space for the manifest being built */
	void (*progress)(void *arg, const char *what, uint64_t done, uint64_t total);
	void *arg;
};

/*
 * Publish: list the canonical objects under the prefixes (one listing of
 * the store per prefix; MD5s and receipts from the index, read from the bytes
 * only for files the index does not know), write the manifest's parts, then
 * claim the name with put-if-absent.  *head gets the head JSON (malloc'd).
 * -EEXIST when the name is taken (published, or deleted: *why says which),
 * -EINVAL for a bad name or prefix (why says), -ENOENT when an object the
 * index knows is missing from the store (why names it: run fsck).
 */
int sfs_snap_publish(struct sfs_backend *be, struct sfs_index *ix, const struct sfs_config *cfg,
		     const struct sfs_publish *p, char **head, char *why, size_t whylen)
	__attribute__((warn_unused_result));

/*
 * The head of snapshot name: 0 and *head (malloc'd) when it is live;
 * -ENOENT when there is none; -ESTALE when it was deleted (*deleted, when not
 * NULL, gets the tombstone's JSON).
 */
int sfs_snap_head(struct sfs_backend *be, const char *name, char **head, char **deleted)
	__attribute__((warn_unused_result));

/*
 * Read snapshot name's manifest into a sealed database: from cache_dir's copy
 * (keyed by the head's digest) when there is one, else from the parts (each
 * checked against the MD5 the head gives), kept there for the next mount;
 * cache_dir NULL: a private temporary database.  *head as for sfs_snap_head.
 */
int sfs_snap_load(struct sfs_backend *be, const char *name, const char *cache_dir,
		  struct sfs_snapdb **out, char **head) __attribute__((warn_unused_result));

/* Every live (published, not deleted) snapshot's name; cb's non-zero return stops. */
int sfs_snap_list(struct sfs_backend *be, int (*cb)(void *arg, const char *name), void *arg)
	__attribute__((warn_unused_result));

/* Leave the tombstone: the name can never be published again.  -ENOENT: no such snapshot. */
int sfs_snap_delete(struct sfs_backend *be, const char *name) __attribute__((warn_unused_result));

/*
 * The live store's manifest, as a publish would write it, into db (diff A
 * live).  Same listing and rules as sfs_snap_publish.
 */
int sfs_snap_build_live(struct sfs_backend *be, struct sfs_index *ix, const struct sfs_config *cfg,
			const char *const *prefixes, size_t nprefixes, struct sfs_snapdb *db,
			char *why, size_t whylen) __attribute__((warn_unused_result));

/* The MD5 (hex) of object key's bytes, read through the backend. */
int sfs_snap_md5_object(struct sfs_backend *be, const char *key, char md5[33], uint64_t *size)
	__attribute__((warn_unused_result));

#endif
