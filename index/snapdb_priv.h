/*
 * index/snapdb_priv.h - what index/snapdb.c (the database, building and
 * serving it) and index/snapdb_tree.c (the tree checksum, the objects a
 * manifest lists, diff) share.  Callers of a function taking d->lock hold it
 * where the comment says so.
 */
#ifndef SFS_SNAPDB_PRIV_H
#define SFS_SNAPDB_PRIV_H

#include <pthread.h>
#include <sqlite3.h>

/* the prepared statements a handle keeps (sfs_sdb_stmt) */
enum {
	ST_ADD,
	ST_LOOKUP,
	ST_NODE,
	ST_CHILDREN,
	ST_PATH,
	ST_META,
	ST_HAS,
	ST_SETMD5,
	ST_TREE,
	ST_N
};

struct sfs_snapdb {
	sqlite3 *db;
	pthread_mutex_t lock;
	sqlite3_stmt *st[ST_N]; /* prepared on first use; lock */
	char *file;		/* the database file */
	int temp;		/* unlink it at close */
};

/* SQLite's rc as 0 or -errno (an error logged with what failed). */
int sfs_sdb_xl(struct sfs_snapdb *d, int rc, const char *what);
/* Run SQL without results; d->lock held. */
int sfs_sdb_run(struct sfs_snapdb *d, const char *sql);
/* Statement k, reset, no bindings (prepared on first use); NULL on failure; d->lock held. */
sqlite3_stmt *sfs_sdb_stmt(struct sfs_snapdb *d, int k);
/* Bind v as text, NULL as SQL NULL. */
void sfs_sdb_bind_str(sqlite3_stmt *s, int i, const char *v);
/* fn(arg, row) for every row of sql (no parameters); non-zero stops; d->lock held. */
int sfs_sdb_each_row(struct sfs_snapdb *d, const char *sql, int (*fn)(void *, sqlite3_stmt *),
		     void *arg);

#endif
