/*
 * fs/snapshot_priv.h - what fs/snapshot.c (naming, the live manifest,
 * publish) and fs/snapshot_load.c (load, list, delete) share.
 */
#ifndef SFS_SNAPSHOT_PRIV_H
#define SFS_SNAPSHOT_PRIV_H

#include <stddef.h>

#define PART_MAX	 (256u << 20) /* compressed bytes of a part we read */
#define PART_INFLATE_MAX (1u << 30)   /* and what it may inflate to */
#define HEAD_LEAF	 "snapshot.json"
#define DELETED_LEAF	 "deleted.json"

/* "_snapshots/<name>[/<leaf>]" (malloc'd; NULL: no memory). */
char *sfs_snap_key(const char *name, const char *leaf);
/* One JSON expression of text arguments (see sfs_json_eval); NULL on failure. */
char *sfs_snap_jeval(const char *expr, int n, const char *const *args);
/* The MD5 of buf as 32 hex digits (malloc'd; NULL: no memory). */
char *sfs_snap_md5hex(const void *buf, size_t n);

#endif
