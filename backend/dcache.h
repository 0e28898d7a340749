/*
 * backend/dcache.h - a bounded, time-limited cache of directory listings.
 *
 * An object store's LIST is a network round trip; canonical objects never
 * change, but other hosts add new ones.  The s3 backend keeps each listing
 * of a canonical "directory" for ttl seconds and answers listings and
 * lookups of names in it from memory.  So an object another host committed
 * shows up in listings at most ttl seconds late (what the docs call the
 * bounded staleness); what this host itself writes is never stale, because
 * the backend drops the listings above every key it writes or removes.  (The
 * s3 backend still asks the server about a name a fresh listing lacks, so an
 * exact path opens at once.)
 *
 * Keys are opaque strings ("dir" = the listed prefix, without a trailing
 * separator; names are single entries of it).  Thread-safe.  Functions
 * return 0 or -errno unless stated otherwise.
 */
#ifndef SFS_DCACHE_H
#define SFS_DCACHE_H

#include "backend/backend.h"

#include <stddef.h>

struct sfs_dcache;

/* One listing: names with their attributes, sorted by name once stored. */
struct sfs_dlist {
	struct sfs_dent {
		char *name;
		struct sfs_bstat st;
	} * v;
	size_t n, cap;
	/* private to dcache.c */
	char *dir;
	long long at_ns; /* CLOCK_MONOTONIC when listed */
	unsigned long long used;
	int refs;
};

/* A cache of at most max_dirs listings, each fresh for ttl_s seconds (0: caches nothing). */
int sfs_dcache_new(int ttl_s, size_t max_dirs, struct sfs_dcache **out)
	__attribute__((warn_unused_result));
/* Free the cache and every listing no caller holds.  NULL-safe. */
void sfs_dcache_free(struct sfs_dcache *c);

/* Does the cache keep anything (ttl and max_dirs above 0)?  Else listings need not be built. */
int sfs_dcache_enabled(const struct sfs_dcache *c);

/* A new, empty listing to fill with sfs_dlist_add (NULL on ENOMEM). */
struct sfs_dlist *sfs_dlist_new(void);
/* Append name (copied) with its attributes. */
int sfs_dlist_add(struct sfs_dlist *l, const char *name, const struct sfs_bstat *st)
	__attribute__((warn_unused_result));
/* Drop a listing from sfs_dlist_new or sfs_dcache_get.  NULL-safe. */
void sfs_dlist_release(struct sfs_dcache *c, struct sfs_dlist *l);

/*
 * Store l as the listing of dir, made at started_ns (sfs_dcache_now() taken
 * before the LIST began, so that the listing is never thought fresher than it
 * is).  The cache takes l over (the caller must not touch or release it);
 * the least recently used listing goes when max_dirs are held.  A listing
 * begun before the latest invalidation (of any key) is dropped, not stored:
 * it may miss what was just written.
 */
void sfs_dcache_put(struct sfs_dcache *c, const char *dir, struct sfs_dlist *l,
		    long long started_ns);

/* A fresh listing of dir (release it with sfs_dlist_release), or NULL. */
struct sfs_dlist *sfs_dcache_get(struct sfs_dcache *c, const char *dir);

/*
 * Look name up in a fresh listing of dir: 1 (found, *st filled), 0 (a fresh
 * listing exists and name is not in it), -ENOENT (no fresh listing of dir).
 */
int sfs_dcache_lookup(struct sfs_dcache *c, const char *dir, const char *name,
		      struct sfs_bstat *st);

/* key was written or removed: drop the listings of key, its ancestors ("", "a" for "a/b") and descendants. */
void sfs_dcache_invalidate(struct sfs_dcache *c, const char *key, char sep);

/* CLOCK_MONOTONIC in ns. */
long long sfs_dcache_now(void);

#endif
