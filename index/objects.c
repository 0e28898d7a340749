/* index/objects.c - canonical objects (objects) */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "index/db.h"

int sfs_index_object_metadata(struct sfs_index *ix, const char *path, char **json)
{
	return ix_query_text(ix, "SELECT metadata FROM objects WHERE path=?1", 1,
			     (const char *const[]){path}, json);
}

int sfs_index_object_add(struct sfs_index *ix, const char *path, const char *addressing,
			 const char *metadata)
{
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = ix_run_bound(ix, OBJECT_INSERT_SQL, 3,
			  (const char *const[]){path, addressing, metadata});
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_object_count(struct sfs_index *ix, int64_t *n)
{
	char *s = NULL;
	int rc = ix_query_text(ix, "SELECT count(*) FROM objects", 0, NULL, &s);

	if (!rc)
		*n = strtoll(s, NULL, 10);
	free(s);
	return rc;
}

int sfs_index_file_md5(struct sfs_index *ix, const char *path, char md5[33], char **object)
{
	static const char *sql =
		"SELECT json_extract(metadata,'$.md5'), path FROM objects "
		"WHERE path=?1 AND is_dir=0 "
		"UNION ALL SELECT md5, object FROM object_files WHERE path=?1 LIMIT 1";
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = ix_prep(ix, &st, sql);
	if (!rc) {
		ix_bind_text(st, 1, path);
		int r = sqlite3_step(st);
		const char *m = r == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
		if (r == SQLITE_ROW && m && strlen(m) == 32) {
			memcpy(md5, m, 33);
			if (object)
				*object = ix_col_dup(st, 1);
		} else {
			rc = r == SQLITE_ROW || r == SQLITE_DONE ? -ENOENT : ix_xlate(ix, r, sql);
		}
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_objects_under(struct sfs_index *ix, const char *prefix,
			    int (*cb)(void *arg, const char *path, const char *metadata), void *arg)
{
	static const char *sql = "SELECT path, metadata FROM objects WHERE path=?1 OR "
				 "substr(path,1,length(?1)+1)=?1||'/' ORDER BY path";
	sqlite3_stmt *st = NULL;
	int rc, r = SQLITE_DONE;

	pthread_mutex_lock(&ix->lock);
	rc = ix_prep(ix, &st, sql);
	if (!rc) {
		ix_bind_text(st, 1, prefix);
		while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW)
			rc = cb(arg, (const char *)sqlite3_column_text(st, 0),
				(const char *)sqlite3_column_text(st, 1));
		if (!rc && r != SQLITE_DONE)
			rc = ix_xlate(ix, r, sql);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}
