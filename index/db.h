/*
 * index/db.h - what the index's files share (not for use outside index/):
 * the handle, SQLite error translation and statement helpers.
 *
 * Locking: ix->lock serialises every use of ix->db; the helpers marked
 * "caller holds lock" expect it held, the others take it.
 */
#ifndef SFS_INDEX_DB_H
#define SFS_INDEX_DB_H

#include <pthread.h>
#include <sqlite3.h>

#include "index/index.h"

#define IX_STMT_CACHE 48

struct sfs_index {
	sqlite3 *db; /* protected by lock */
	pthread_mutex_t lock;
	char *path;
	/* prepared statements kept for reuse (ix_prep / ix_finalize); lock */
	struct ix_cached {
		sqlite3_stmt *st;
		const void *key; /* the address of the text it was last asked for with */
		int busy;
	} cache[IX_STMT_CACHE];
};

/* SQLite's rc -> 0 or -errno, logging what failed with SQLite's message. */
int ix_xlate(struct sfs_index *ix, int rc, const char *what);
/* Run SQL without results; caller holds lock. */
int ix_exec(struct sfs_index *ix, const char *sql);
/* End the transaction begun with BEGIN IMMEDIATE: COMMIT when rc is 0, else ROLLBACK. */
int ix_tx_end(struct sfs_index *ix, int rc);
/*
 * Prepare sql, or take the statement kept from an earlier ix_prep of the
 * same text (reset, no bindings); caller holds lock.  Give it back with
 * ix_finalize, never sqlite3_finalize.
 */
int ix_prep(struct sfs_index *ix, sqlite3_stmt **st, const char *sql);
/* Done with st (from ix_prep or NULL): a kept statement is reset for the next ix_prep. */
void ix_finalize(struct sfs_index *ix, sqlite3_stmt *st);
/* Bind s (NULL -> SQL NULL) as parameter i. */
void ix_bind_text(sqlite3_stmt *st, int i, const char *s);
/* Column i as a new string, or NULL. */
char *ix_col_dup(sqlite3_stmt *st, int i);
/* Run one statement whose parameters ?1..?n are args[0..n-1]; caller holds lock. */
int ix_run_bound(struct sfs_index *ix, const char *sql, int n, const char *const *args);
/* A one-row query with text params: column 0 as a new string; -ENOENT if no row.  Takes lock. */
int ix_query_text(struct sfs_index *ix, const char *sql, int n, const char *const *args,
		  char **out);

/* Add an object row from its metadata JSON ?3 (kept when the path exists: dedup). */
#define OBJECT_INSERT_SQL                                                               \
	"INSERT INTO objects(path,addressing,hash,size,is_dir,metadata) "               \
	"VALUES(?1,?2,json_extract(?3,'$.hash'),coalesce(json_extract(?3,'$.size'),0)," \
	"json_extract(?3,'$.is_dir') IS 1,?3) ON CONFLICT(path) DO NOTHING"

#endif
