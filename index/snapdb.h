/*
 * index/snapdb.h - a snapshot's manifest as an SQLite database.
 *
 * One database holds one manifest: every entry (file or directory, by store
 * key) with its size, mtime and MD5 and, for entries that are canonical
 * objects, their receipt metadata.  Publish fills one from the store and
 * writes it out as parts: gzip'd JSON arrays of entries in path order (the
 * format in the README, readable without stagefs).  A mount reads the parts
 * back into a local database file, indexed by parent and name, and serves
 * lookups and listings from it: memory stays flat whatever the entry count.
 *
 * JSON is made and parsed by SQLite's JSON1, not by hand.  A database handle
 * is not shared between threads without the caller's lock: every function
 * here takes the handle's own mutex, so one handle may serve a FUSE mount's
 * threads.  Functions return 0 or -errno (-EINVAL: a manifest that breaks the
 * rules below; -ENOENT: no such entry).
 *
 * Entry rules (checked when parts are loaded): a path is a store key: '/'
 * separated segments of 1..255 bytes, none "." or "..", no control
 * characters; a directory's parent is a directory; the root is "".
 */
#ifndef SFS_INDEX_SNAPDB_H
#define SFS_INDEX_SNAPDB_H

#include <stddef.h>
#include <stdint.h>

struct sfs_snapdb;

/* One manifest entry (all strings borrowed). */
struct sfs_snap_ent {
	const char *path; /* store key; "" is the root */
	int is_dir;
	uint64_t size;	      /* files */
	int64_t mtime_ns;     /* 0: unknown */
	const char *md5;      /* files: lowercase hex; NULL when unknown */
	const char *object;   /* the canonical object the entry is in (or is); NULL: none known */
	const char *metadata; /* receipt JSON when the entry is a canonical object, else NULL */
};

/* One node of a loaded manifest, as a mount serves it. */
struct sfs_snap_node {
	uint64_t id; /* stable for the database's life; 1 is the root */
	int is_dir;
	uint64_t size;
	int64_t mtime_ns;
	char name[256];
};

/*
 * Open (create when missing) the manifest database at path; NULL makes a
 * private temporary one that goes with the handle.  *out owned by the caller.
 */
int sfs_snapdb_open(const char *path, struct sfs_snapdb **out) __attribute__((warn_unused_result));
void sfs_snapdb_close(struct sfs_snapdb *db);

/* ---- building (publish) ---- */

/* Add or replace one entry (inside sfs_snapdb_begin/end for speed). */
int sfs_snapdb_add(struct sfs_snapdb *db, const struct sfs_snap_ent *e)
	__attribute__((warn_unused_result));
int sfs_snapdb_begin(struct sfs_snapdb *db) __attribute__((warn_unused_result));
int sfs_snapdb_end(struct sfs_snapdb *db, int rc) __attribute__((warn_unused_result));
/* 1 when path is an entry, 0 when not. */
int sfs_snapdb_has(struct sfs_snapdb *db, const char *path);
/* 1 and the entry's kind and size (either pointer may be NULL), 0 when not an entry. */
int sfs_snapdb_get(struct sfs_snapdb *db, const char *path, int *is_dir, uint64_t *size);
/* Files without an MD5 yet (the caller fills them with sfs_snapdb_set_md5). */
int sfs_snapdb_each_missing_md5(struct sfs_snapdb *db,
				int (*cb)(void *arg, const char *path, uint64_t size), void *arg);
int sfs_snapdb_set_md5(struct sfs_snapdb *db, const char *path, const char *md5)
	__attribute__((warn_unused_result));
/* Entries (all but the root), files, directories and bytes. */
struct sfs_snap_count {
	uint64_t entries, files, dirs, objects, bytes;
};
int sfs_snapdb_count(struct sfs_snapdb *db, struct sfs_snap_count *out)
	__attribute__((warn_unused_result));
/*
 * The next part: a JSON array of at most n entries whose paths sort after
 * *after ("" to start; updated to the last path given; freed by the caller),
 * root excluded.  *json malloc'd, NULL and 0 entries when none are left.
 */
int sfs_snapdb_part(struct sfs_snapdb *db, char **after, size_t n, char **json, size_t *count)
	__attribute__((warn_unused_result));
/* Every canonical object the manifest's entries are in, once each (gc keeps them). */
int sfs_snapdb_each_object(struct sfs_snapdb *db, int (*cb)(void *arg, const char *object),
			   void *arg) __attribute__((warn_unused_result));
/* Every file in path order (verify, fsck). */
int sfs_snapdb_each_file(struct sfs_snapdb *db,
			 int (*cb)(void *arg, const char *path, uint64_t size, const char *md5),
			 void *arg) __attribute__((warn_unused_result));

/* ---- loading (mounts, verify, diff) ---- */

/* Add a part's entries (a JSON array as written by sfs_snapdb_part). */
int sfs_snapdb_load_part(struct sfs_snapdb *db, const char *json, size_t len)
	__attribute__((warn_unused_result));
/*
 * After the last part: check the entry rules, link every entry to its parent
 * and index the tree.  -EINVAL when the manifest breaks a rule.
 */
int sfs_snapdb_seal(struct sfs_snapdb *db) __attribute__((warn_unused_result));
/* 1 when the database was sealed (a cached one can be served as it is). */
int sfs_snapdb_sealed(struct sfs_snapdb *db);
/*
 * The tree checksum of a sealed database's files (DANDI zarr checksum, as
 * sfs_zarr_checksum_tree: one directory in memory at a time).  -EINVAL when
 * not sealed, -ENODATA when a file has no md5.
 */
int sfs_snapdb_checksum(struct sfs_snapdb *db, char *out, size_t outlen)
	__attribute__((warn_unused_result));

/* ---- serving (a sealed database) ---- */

int sfs_snapdb_node(struct sfs_snapdb *db, uint64_t id, struct sfs_snap_node *out)
	__attribute__((warn_unused_result));
int sfs_snapdb_lookup(struct sfs_snapdb *db, uint64_t parent, const char *name,
		      struct sfs_snap_node *out) __attribute__((warn_unused_result));
/* Children of parent with ids above after, in id order, at most max; cb returns non-zero to stop. */
int sfs_snapdb_children(struct sfs_snapdb *db, uint64_t parent, uint64_t after, size_t max,
			int (*cb)(void *arg, const struct sfs_snap_node *n), void *arg)
	__attribute__((warn_unused_result));
/* The store key of node id (malloc'd). */
int sfs_snapdb_path(struct sfs_snapdb *db, uint64_t id, char **path)
	__attribute__((warn_unused_result));
/* The receipt metadata of node id (malloc'd); -ENODATA when it is not an object. */
int sfs_snapdb_metadata(struct sfs_snapdb *db, uint64_t id, char **json)
	__attribute__((warn_unused_result));

/*
 * Differences between two manifests: cb(kind, path) with kind '+' (in b, not
 * in a), '-' (in a, not in b) or '~' (a file whose size or MD5 differs), in
 * path order.  Directories count only when added or removed.
 */
int sfs_snapdb_diff(struct sfs_snapdb *a, struct sfs_snapdb *b,
		    int (*cb)(void *arg, char kind, const char *path), void *arg)
	__attribute__((warn_unused_result));

/* ---- JSON of a snapshot's head object (built and read with JSON1) ---- */

/*
 * Evaluate one SQL expression over JSON parameters and return its text:
 * e.g. sfs_json_eval("json_extract(?1,'$.name')", 1, (const char*[]){head}, &s).
 * ?1..?n are bound as text.  -ENOENT when the result is NULL.
 */
int sfs_json_eval(const char *expr, int n, const char *const *args, char **out)
	__attribute__((warn_unused_result));

#endif
