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
	ix_finalize(ix, st);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_objects_under(struct sfs_index *ix, const char *prefix,
			    int (*cb)(void *arg, const char *path, const char *metadata), void *arg)
{
	static const char *sql = "SELECT path, metadata FROM objects WHERE ?1='' OR path=?1 OR "
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
	ix_finalize(ix, st);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_import_object(struct sfs_index *ix, const char *key, const char *record)
{
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = ix_exec(ix, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	rc = ix_run_bound(
		ix,
		"INSERT INTO objects(path,addressing,hash,size,is_dir,metadata) "
		"SELECT ?1, json_extract(?2,'$.metadata.addressing'),"
		"  json_extract(?2,'$.metadata.hash'),"
		"  coalesce(json_extract(?2,'$.metadata.size'),0),"
		"  json_extract(?2,'$.metadata.is_dir') IS 1, json_extract(?2,'$.metadata') "
		"WHERE json_valid(?2) ON CONFLICT(path) DO NOTHING",
		2, (const char *const[]){key, record});
	if (!rc)
		rc = ix_run_bound(ix,
				  "INSERT OR IGNORE INTO object_files(path,object,size,md5) "
				  "SELECT ?1||'/'||json_extract(value,'$[0]'), ?1,"
				  "  json_extract(value,'$[1]'), json_extract(value,'$[2]') "
				  "FROM json_each(?2,'$.files')",
				  2, (const char *const[]){key, record});
	/* the receipt, where the entry was staged: staging/<dir>/<name> -> dir, <name>.json */
	if (!rc)
		rc = ix_run_bound(
			ix,
			"INSERT INTO receipts(dir,name,object,metadata) "
			"SELECT rtrim(rtrim(s, replace(s,'/','')),'/'),"
			"  substr(s, length(rtrim(s, replace(s,'/','')))+1)||'.json', ?1,"
			"  json_extract(?2,'$.metadata') "
			"FROM (SELECT substr(json_extract(?2,'$.metadata.staging'),9) AS s) "
			"WHERE json_extract(?2,'$.metadata.staging') LIKE 'staging/%/%/%' "
			/* two commits of one staged name: the newer receipt is the one */
			"ON CONFLICT(dir,name) DO UPDATE SET object=excluded.object, "
			"  metadata=excluded.metadata "
			"WHERE coalesce(json_extract(excluded.metadata,'$.timestamp'),'') > "
			"  coalesce(json_extract(receipts.metadata,'$.timestamp'),'')",
			2, (const char *const[]){key, record});
	rc = ix_tx_end(ix, rc);
out:
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_import_receipt(struct sfs_index *ix, const char *record)
{
	static const char *sql =
		"INSERT INTO receipts(dir,name,object,metadata) "
		"SELECT json_extract(?1,'$.dir'), json_extract(?1,'$.name'),"
		"  json_extract(?1,'$.object'), json_extract(?1,'$.metadata') "
		"WHERE EXISTS(SELECT 1 FROM objects WHERE path=json_extract(?1,'$.object')) "
		"ON CONFLICT(dir,name) DO UPDATE SET object=excluded.object, "
		"  metadata=excluded.metadata "
		"WHERE coalesce(json_extract(excluded.metadata,'$.timestamp'),'') > "
		"  coalesce(json_extract(receipts.metadata,'$.timestamp'),'')";
	static const char *valid =
		"SELECT CASE WHEN json_valid(?1) THEN"
		"  json_extract(?1,'$.format')='stagefs-receipt' AND "
		"  json_type(?1,'$.dir')='text' AND json_type(?1,'$.name')='text' AND "
		"  json_type(?1,'$.object')='text' AND json_type(?1,'$.metadata')='object' "
		"ELSE 0 END";
	char *ok = NULL;
	int rc = ix_query_text(ix, valid, 1, (const char *const[]){record}, &ok);

	if (!rc && (!ok || strcmp(ok, "1") != 0))
		rc = -EINVAL;
	free(ok);
	if (rc)
		return rc == -ENOENT ? -EINVAL : rc;
	pthread_mutex_lock(&ix->lock);
	rc = ix_run_bound(ix, sql, 1, (const char *const[]){record});
	if (!rc)
		rc = sqlite3_changes(ix->db) > 0;
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_object_files_each(struct sfs_index *ix,
				int (*cb)(void *arg, const char *path, uint64_t size,
					  const char *md5),
				void *arg)
{
	static const char *sql = "SELECT path, size, md5 FROM object_files ORDER BY path";
	sqlite3_stmt *st = NULL;
	int rc, r = SQLITE_DONE;

	pthread_mutex_lock(&ix->lock);
	rc = ix_prep(ix, &st, sql);
	while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW)
		rc = cb(arg, (const char *)sqlite3_column_text(st, 0),
			(uint64_t)sqlite3_column_int64(st, 1),
			(const char *)sqlite3_column_text(st, 2));
	if (!rc && r != SQLITE_DONE)
		rc = ix_xlate(ix, r, sql);
	ix_finalize(ix, st);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_receipt_orphans(struct sfs_index *ix,
			      int (*cb)(void *arg, const char *dir, const char *name,
					const char *object),
			      void *arg)
{
	static const char *sql = "SELECT dir, name, object FROM receipts WHERE object NOT IN "
				 "(SELECT path FROM objects) ORDER BY dir, name";
	sqlite3_stmt *st = NULL;
	int rc, r = SQLITE_DONE;

	pthread_mutex_lock(&ix->lock);
	rc = ix_prep(ix, &st, sql);
	while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW)
		rc = cb(arg, (const char *)sqlite3_column_text(st, 0),
			(const char *)sqlite3_column_text(st, 1),
			(const char *)sqlite3_column_text(st, 2));
	if (!rc && r != SQLITE_DONE)
		rc = ix_xlate(ix, r, sql);
	ix_finalize(ix, st);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_object_forget(struct sfs_index *ix, const char *key)
{
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = ix_exec(ix, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	rc = ix_run_bound(ix, "DELETE FROM object_files WHERE object=?1", 1,
			  (const char *const[]){key});
	if (!rc)
		rc = ix_run_bound(ix, "DELETE FROM receipts WHERE object=?1", 1,
				  (const char *const[]){key});
	if (!rc)
		rc = ix_run_bound(ix, "DELETE FROM objects WHERE path=?1", 1,
				  (const char *const[]){key});
	rc = ix_tx_end(ix, rc);
out:
	pthread_mutex_unlock(&ix->lock);
	return rc;
}
