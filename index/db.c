/* index/db.c - opening the index: schema, migrations, errors, statement helpers (db.h) */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "index/db.h"

#include "common/fsutil.h"

/* Ordered migrations: entry i upgrades user_version i to i+1.  Never edit a shipped entry. */
static const char *const migrations[] = {
	/* 0 -> 1: objects, receipts, commit jobs */
	"CREATE TABLE objects("
	"  path TEXT PRIMARY KEY,"
	"  addressing TEXT NOT NULL CHECK(addressing IN ('hash','schema')),"
	"  hash TEXT,"
	"  size INTEGER NOT NULL DEFAULT 0,"
	"  is_dir INTEGER NOT NULL DEFAULT 0,"
	"  metadata TEXT NOT NULL CHECK(json_valid(metadata)),"
	"  created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));"
	"CREATE INDEX objects_hash ON objects(hash);"
	"CREATE TABLE receipts("
	"  dir TEXT NOT NULL, name TEXT NOT NULL,"
	"  object TEXT NOT NULL,"
	"  metadata TEXT NOT NULL CHECK(json_valid(metadata)),"
	"  PRIMARY KEY(dir, name));"
	"CREATE TABLE commit_jobs("
	"  id INTEGER PRIMARY KEY,"
	"  staging TEXT NOT NULL, canonical TEXT NOT NULL,"
	"  addressing TEXT NOT NULL, metadata TEXT NOT NULL,"
	"  receipt_dir TEXT NOT NULL, receipt_name TEXT NOT NULL,"
	"  created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));",
	/* 1 -> 2: how far a commit got ('moving': promotion may be partial; 'copied': the
	   canonical object is complete, only the staged copy is left to remove) */
	"ALTER TABLE commit_jobs ADD COLUMN state TEXT NOT NULL DEFAULT 'moving'"
	"  CHECK(state IN ('moving','copied'));",
	/* 2 -> 3: the staged files a backend that uploads them (s3) has stored, with the
	   local size, mode and mtime they had when stored */
	"CREATE TABLE staged("
	"  rel TEXT PRIMARY KEY,"
	"  size INTEGER NOT NULL, mode INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
	"  stored TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));"
	"CREATE TABLE staged_xattrs("
	"  rel TEXT NOT NULL REFERENCES staged(rel) ON UPDATE CASCADE ON DELETE CASCADE,"
	"  name TEXT NOT NULL, value BLOB NOT NULL,"
	"  PRIMARY KEY(rel, name));",
	/* 3 -> 4: the files of directory objects with their MD5 (snapshots list every file);
	   a commit records them with its intent and moves them at its end */
	"CREATE TABLE object_files("
	"  path TEXT PRIMARY KEY, object TEXT NOT NULL,"
	"  size INTEGER NOT NULL, md5 TEXT NOT NULL);"
	"CREATE INDEX object_files_object ON object_files(object);"
	"CREATE TABLE job_files("
	"  job INTEGER NOT NULL, rel TEXT NOT NULL,"
	"  size INTEGER NOT NULL, md5 TEXT NOT NULL,"
	"  PRIMARY KEY(job, rel));",
	/* 4 -> 5: commits are durable jobs, queued before they start and kept after they end
	   (pending -> reserved -> success | error); step is how far the promotion got */
	"CREATE TABLE jobs("
	"  id INTEGER PRIMARY KEY,"
	"  staging TEXT NOT NULL, value TEXT NOT NULL DEFAULT '',"
	"  status TEXT NOT NULL DEFAULT 'pending'"
	"    CHECK(status IN ('pending','reserved','success','error')),"
	"  step TEXT CHECK(step IN ('moving','copied')),"
	"  canonical TEXT, addressing TEXT, metadata TEXT, receipt_dir TEXT, receipt_name TEXT,"
	"  attempts INTEGER NOT NULL DEFAULT 0, errno INTEGER, error TEXT,"
	"  bytes_done INTEGER NOT NULL DEFAULT 0, bytes_total INTEGER NOT NULL DEFAULT 0,"
	"  created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),"
	"  reserved_at TEXT, finished TEXT);"
	"INSERT INTO jobs(id,staging,status,step,canonical,addressing,metadata,receipt_dir,"
	"  receipt_name,attempts,created) SELECT id,staging,'reserved',state,canonical,"
	"  addressing,metadata,receipt_dir,receipt_name,1,created FROM commit_jobs;"
	"DROP TABLE commit_jobs;"
	"CREATE INDEX jobs_status ON jobs(status, id);"
	"CREATE INDEX jobs_staging ON jobs(staging, id);"
	"CREATE UNIQUE INDEX jobs_active ON jobs(staging) WHERE status IN ('pending','reserved');",
};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == SFS_INDEX_VERSION,
	       "SFS_INDEX_VERSION must name the last migration");

int ix_xlate(struct sfs_index *ix, int rc, const char *what)
{
	int e;

	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		e = -EBUSY;
		break;
	case SQLITE_FULL:
		e = -ENOSPC;
		break;
	case SQLITE_CONSTRAINT:
		e = -EEXIST;
		break;
	case SQLITE_NOTFOUND:
		e = -ENOENT;
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		e = -EUCLEAN;
		break;
	case SQLITE_NOMEM:
		e = -ENOMEM;
		break;
	case SQLITE_READONLY:
		e = -EROFS;
		break;
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		e = -EACCES;
		break;
	default:
		e = -EIO;
	}
	return sfs_err(e, "index '%s': %s: %s", ix->path, what,
		       ix->db ? sqlite3_errmsg(ix->db) : sqlite3_errstr(rc));
}

int ix_exec(struct sfs_index *ix, const char *sql)
{
	return ix_xlate(ix, sqlite3_exec(ix->db, sql, NULL, NULL, NULL), sql);
}

/* End the transaction begun with BEGIN IMMEDIATE: COMMIT when rc is 0, else (or when
   COMMIT fails) ROLLBACK.  Returns the outcome. */
int ix_tx_end(struct sfs_index *ix, int rc)
{
	if (!rc)
		rc = ix_exec(ix, "COMMIT");
	if (rc)
		(void)ix_exec(ix, "ROLLBACK");
	return rc;
}

static int migrate(struct sfs_index *ix)
{
	sqlite3_stmt *st = NULL;
	int version = 0, rc;
	const int n = (int)(sizeof(migrations) / sizeof(migrations[0]));

	rc = sqlite3_prepare_v2(ix->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	ix_finalize(ix, st);
	if (rc != SQLITE_OK)
		return ix_xlate(ix, rc, "read schema version");
	if (version > n)
		return sfs_err(-EPROTO, "index '%s' has schema version %d; this stagefs knows %d",
			       ix->path, version, n);
	const int from = version;
	for (; version < n; version++) {
		char setv[64];

		rc = ix_exec(ix, "BEGIN IMMEDIATE");
		if (rc)
			return rc;
		rc = ix_exec(ix, migrations[version]);
		snprintf(setv, sizeof(setv), "PRAGMA user_version=%d", version + 1);
		if (!rc)
			rc = ix_exec(ix, setv);
		rc = ix_tx_end(ix, rc);
		if (rc)
			return rc;
	}
	if (from == 0)
		sfs_log(LOG_INFO, "index '%s' created (schema version %d)", ix->path, n);
	else if (from < n)
		sfs_log(LOG_INFO, "index '%s' migrated from schema version %d to %d", ix->path,
			from, n);
	return 0;
}

/* A handle on a new connection to path (SQLite open flags), waiting 10 s for locks. */
static int ix_connect(const char *path, int flags, const char *what, struct sfs_index **out)
{
	struct sfs_index *ix = calloc(1, sizeof(*ix));
	int rc;

	if (!ix)
		return -ENOMEM;
	pthread_mutex_init(&ix->lock, NULL);
	ix->path = strdup(path);
	if (!ix->path) {
		sfs_index_close(ix);
		return -ENOMEM;
	}
	rc = sqlite3_open_v2(path, &ix->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = ix_xlate(ix, rc, what);
		sfs_index_close(ix);
		return rc;
	}
	sqlite3_busy_timeout(ix->db, 10000);
	*out = ix;
	return 0;
}

int sfs_index_open(const char *path, struct sfs_index **out)
{
	struct sfs_index *ix = NULL;
	int rc = sfs_mkdir_p(path, 0700, 0);

	if (rc)
		return sfs_err(rc, "cannot create the directory of index '%s': %s", path,
			       strerror(-rc));
	rc = ix_connect(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "open", &ix);
	if (rc)
		return rc;
	rc = ix_exec(ix,
		     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
	if (!rc)
		rc = migrate(ix);
	if (rc) {
		sfs_index_close(ix);
		return rc;
	}
	*out = ix;
	return 0;
}

void sfs_index_close(struct sfs_index *ix)
{
	if (!ix)
		return;
	for (int i = 0; i < IX_STMT_CACHE; i++)
		sqlite3_finalize(ix->cache[i].st);
	if (ix->db && !sqlite3_get_autocommit(ix->db))
		(void)ix_exec(ix, "ROLLBACK"); /* a reader's transaction */
	if (ix->db)
		sqlite3_close_v2(ix->db);
	pthread_mutex_destroy(&ix->lock);
	free(ix->path);
	free(ix);
}

int sfs_index_reader(struct sfs_index *ix, struct sfs_index **out)
{
	struct sfs_index *r = NULL;
	int rc = ix_connect(ix->path, SQLITE_OPEN_READONLY, "open a reader", &r);

	if (rc)
		return rc;
	/* the read transaction starts at its first read: the SELECT makes that now */
	rc = ix_exec(r, "PRAGMA cache_size=-8000; BEGIN; SELECT count(*) FROM sqlite_schema");
	if (rc) {
		sfs_index_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

/* Prepare sql and bind text parameters (NULL -> SQL NULL). */
int ix_prep(struct sfs_index *ix, sqlite3_stmt **st, const char *sql)
{
	int slot = -1;

	/* the same text again (a publish or a commit asks the same few queries per file);
	   the callers' texts are mostly literals: their address finds the slot, one strcmp
	   confirms it, instead of a strcmp per slot */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < IX_STMT_CACHE; i++) {
			struct ix_cached *c = &ix->cache[i];
			if (!c->st) {
				if (slot < 0)
					slot = i;
			} else if (!c->busy && (pass || c->key == sql) &&
				   strcmp(sqlite3_sql(c->st), sql) == 0) {
				c->key = sql;
				c->busy = 1;
				*st = c->st;
				return 0;
			}
		}
	int rc = sqlite3_prepare_v2(ix->db, sql, -1, st, NULL);
	if (rc != SQLITE_OK)
		return ix_xlate(ix, rc, sql);
	if (slot >= 0 && *st) {
		ix->cache[slot].st = *st;
		ix->cache[slot].key = sql;
		ix->cache[slot].busy = 1;
	}
	return 0;
}

void ix_finalize(struct sfs_index *ix, sqlite3_stmt *st)
{
	if (!st)
		return;
	for (int i = 0; i < IX_STMT_CACHE; i++)
		if (ix->cache[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			ix->cache[i].busy = 0;
			return;
		}
	sqlite3_finalize(st);
}

void ix_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

char *ix_col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? strdup((const char *)s) : NULL;
}

int sfs_index_check(struct sfs_index *ix)
{
	sqlite3_stmt *st = NULL;
	int rc, bad = 0;

	pthread_mutex_lock(&ix->lock);
	rc = ix_prep(ix, &st, "PRAGMA integrity_check");
	while (!rc && sqlite3_step(st) == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(st, 0);
		if (!r || strcmp(r, "ok") != 0) {
			sfs_log(LOG_ERR, "index '%s': integrity: %s", ix->path, r ? r : "?");
			bad = 1;
		}
	}
	ix_finalize(ix, st);
	pthread_mutex_unlock(&ix->lock);
	if (rc)
		return rc;
	return bad ? -EUCLEAN : 0;
}

/* Run one statement whose parameters ?1..?n are the strings args[0..n-1]; caller holds lock. */
int ix_run_bound(struct sfs_index *ix, const char *sql, int n, const char *const *args)
{
	sqlite3_stmt *st = NULL;
	int rc = ix_prep(ix, &st, sql);

	if (!rc) {
		for (int i = 0; i < n; i++)
			ix_bind_text(st, i + 1, args[i]);
		rc = ix_xlate(ix, sqlite3_step(st), sql);
	}
	ix_finalize(ix, st);
	return rc;
}

/* Run a one-row query with text params and return column 0 as a new string; -ENOENT if no row. */
int ix_query_text(struct sfs_index *ix, const char *sql, int n, const char *const *args, char **out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = ix_prep(ix, &st, sql);
	if (!rc) {
		for (int i = 0; i < n; i++)
			ix_bind_text(st, i + 1, args[i]);
		int s = sqlite3_step(st);
		if (s == SQLITE_ROW) {
			*out = ix_col_dup(st, 0);
			rc = *out ? 0 : -ENOMEM;
		} else {
			rc = s == SQLITE_DONE ? -ENOENT : ix_xlate(ix, s, sql);
		}
	}
	ix_finalize(ix, st);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}
