/*
 * fs/gc.h - what the two halves of `stagefs gc` share (not a public API):
 * fs/cli_gc.c collects canonical objects no reference list and no snapshot
 * names; fs/cli_gc_staging.c collects abandoned staging entries.  Both move
 * what they collect to the same quarantine in the store:
 *
 *   _trash/<key>                  what was at <key> (an object or "_staging/<rel>")
 *   _trash/.stagefs/gc/<key>.json its note: when, by which host, how many bytes
 *
 * and a later run purges it after the grace period (objects checked again first).
 */
#ifndef SFS_FS_GC_H
#define SFS_FS_GC_H

#include <sqlite3.h>
#include <stdint.h>
#include <time.h>

#include "fs/cli.h"

#define TRASH	    "_trash"
#define GC_NOTES    TRASH "/.stagefs/gc"
#define GC_STAGING  "_staging" /* the staging tree's key in the store */
#define NOTE_MAX    (64u << 10)
#define DAY_SECONDS 86400
/* kept too: committed this close before FILE was written (host clocks, the store's timestamps) */
#define YOUNG_MARGIN_NS (60LL * 1000000000LL)

struct gc {
	struct store *s;
	sqlite3 *db; /* private, on disk: ref, keep, cand, stg */
	char *dbfile;
	int dry_run;
	int objects; /* a reference list was given: canonical objects are collected */
	double grace_days;
	int64_t list_mtime_ns; /* FILE's mtime: objects committed later are kept */
	time_t now;
	uint64_t refs, refs_hit, snapshots, candidates, referenced, young;
	uint64_t quarantined, purged, restored, waiting, bytes_q, bytes_p, failed;
	double stg_days; /* --staging-older-than */
	/* staging entries: looked at, recent, with a commit in progress, quarantined */
	uint64_t stg_entries, stg_recent, stg_busy, stg_quarantined, stg_bytes;
};

/* The scratch database: SQLite's rc -> 0 or -errno (printing what failed). */
int sfs_gc_db(struct gc *g, int rc, const char *what);
int sfs_gc_exec(struct gc *g, const char *sql);
/* Run sql with text parameters; *hit gets 1 when it returned a row (may be NULL). */
int sfs_gc_q(struct gc *g, const char *sql, int n, const char *const *args, int *hit);

/* Walk the store under prefix into the scratch database: cb(g, key, st) inside one transaction. */
int sfs_gc_walk(struct gc *g, const char *prefix,
		int (*cb)(void *g, const char *key, const struct sfs_bstat *st));
/* A new string (NULL when out of memory). */
char *sfs_gc_kf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define trash_key(key) sfs_gc_kf(TRASH "/%s", (key))
#define note_key(key)  sfs_gc_kf(GC_NOTES "/%s.json", (key))

/* Move from -> to (never replacing: -EEXIST); done already (from gone, to there) counts. */
int sfs_gc_move(struct store *s, const char *from, const char *to);
/* Bytes of the files at key (one object or a tree). */
uint64_t sfs_gc_bytes(struct store *s, const char *key);
/* Write key's quarantine note (before anything moves: a crash leaves it explained). */
int sfs_gc_note_put(struct gc *g, const char *key, uint64_t bytes);

/* days as a person reads it: "7 days", "2.5 h", "3 s" */
void sfs_gc_span(double days, char *out, size_t len);
/* Is key a staging entry's ("_staging/...")? */
int sfs_gc_is_staging(const char *key);
/*
 * Quarantine every staging entry (staging/<schema>/<table>/<name>, or a file
 * higher up) in which nothing changed for days, and with no commit pending,
 * running or failed in this host's index.  Counts in g.
 */
int sfs_gc_staging(struct gc *g, double days);

#endif
