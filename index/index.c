/* index/index.c - see index.h */
#include "index/index.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fsutil.h"
#include "common/log.h"

struct sfs_index {
	sqlite3 *db; /* protected by lock */
	pthread_mutex_t lock;
	char *path;
};

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
};

static int xlate(struct sfs_index *ix, int rc, const char *what)
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

static int exec(struct sfs_index *ix, const char *sql)
{
	return xlate(ix, sqlite3_exec(ix->db, sql, NULL, NULL, NULL), sql);
}

/* End the transaction begun with BEGIN IMMEDIATE: COMMIT when rc is 0, else (or when
   COMMIT fails) ROLLBACK.  Returns the outcome. */
static int tx_end(struct sfs_index *ix, int rc)
{
	if (!rc)
		rc = exec(ix, "COMMIT");
	if (rc)
		(void)exec(ix, "ROLLBACK");
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
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return xlate(ix, rc, "read schema version");
	if (version > n)
		return sfs_err(-EPROTO, "index '%s' has schema version %d; this stagefs knows %d",
			       ix->path, version, n);
	const int from = version;
	for (; version < n; version++) {
		char setv[64];

		rc = exec(ix, "BEGIN IMMEDIATE");
		if (rc)
			return rc;
		rc = exec(ix, migrations[version]);
		snprintf(setv, sizeof(setv), "PRAGMA user_version=%d", version + 1);
		if (!rc)
			rc = exec(ix, setv);
		rc = tx_end(ix, rc);
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

int sfs_index_open(const char *path, struct sfs_index **out)
{
	struct sfs_index *ix = calloc(1, sizeof(*ix));
	int rc;

	if (!ix)
		return -ENOMEM;
	pthread_mutex_init(&ix->lock, NULL);
	ix->path = strdup(path);
	if (!ix->path) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = sfs_mkdir_p(path, 0700, 0);
	if (rc) {
		rc = sfs_err(rc, "cannot create the directory of index '%s': %s", path,
			     strerror(-rc));
		goto fail;
	}
	rc = sqlite3_open_v2(path, &ix->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		rc = xlate(ix, rc, "open");
		goto fail;
	}
	sqlite3_busy_timeout(ix->db, 10000);
	rc = exec(ix, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
	if (!rc)
		rc = migrate(ix);
	if (rc)
		goto fail;
	*out = ix;
	return 0;
fail:
	sfs_index_close(ix);
	return rc;
}

void sfs_index_close(struct sfs_index *ix)
{
	if (!ix)
		return;
	if (ix->db)
		sqlite3_close_v2(ix->db);
	pthread_mutex_destroy(&ix->lock);
	free(ix->path);
	free(ix);
}

/* Prepare sql and bind text parameters (NULL -> SQL NULL). */
static int prep(struct sfs_index *ix, sqlite3_stmt **st, const char *sql)
{
	int rc = sqlite3_prepare_v2(ix->db, sql, -1, st, NULL);

	return rc == SQLITE_OK ? 0 : xlate(ix, rc, sql);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? strdup((const char *)s) : NULL;
}

int sfs_index_check(struct sfs_index *ix)
{
	sqlite3_stmt *st = NULL;
	int rc, bad = 0;

	pthread_mutex_lock(&ix->lock);
	rc = prep(ix, &st, "PRAGMA integrity_check");
	while (!rc && sqlite3_step(st) == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(st, 0);
		if (!r || strcmp(r, "ok") != 0) {
			sfs_log(LOG_ERR, "index '%s': integrity: %s", ix->path, r ? r : "?");
			bad = 1;
		}
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&ix->lock);
	if (rc)
		return rc;
	return bad ? -EUCLEAN : 0;
}

int sfs_index_build_metadata(struct sfs_index *ix, const struct sfs_meta_in *m, char **out)
{
	static const char *hash_sql =
		"SELECT json_object('hash',?1,'path',?2,'schema',?3,'store',?4,'size',?5,"
		"'addressing','hash','staging',?6,'md5',?7,'dedup',json('false'))";
	static const char *schema_sql =
		"SELECT json_object('path',?2,'store',?4,'size',?5,'ext',?8,"
		"'is_dir',json(CASE WHEN ?9 THEN 'true' ELSE 'false' END),"
		"'item_count',?10,'timestamp',?11,'addressing','schema','staging',?6)"
		"|| ''";
	sqlite3_stmt *st = NULL;
	char *res = NULL;
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = prep(ix, &st, m->hash_addressing ? hash_sql : schema_sql);
	if (rc)
		goto out;
	bind_text(st, 1, m->hash);
	bind_text(st, 2, m->path);
	bind_text(st, 3, m->schema);
	bind_text(st, 4, m->store);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)m->size);
	bind_text(st, 6, m->staging);
	bind_text(st, 7, m->md5);
	bind_text(st, 8, m->ext);
	sqlite3_bind_int(st, 9, m->is_dir);
	if (m->is_dir)
		sqlite3_bind_int64(st, 10, m->item_count);
	else
		sqlite3_bind_null(st, 10);
	bind_text(st, 11, m->timestamp);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = xlate(ix, rc, "build metadata");
		goto out;
	}
	res = col_dup(st, 0);
	rc = res ? 0 : -ENOMEM;
	if (!rc && !m->hash_addressing) {
		/* the content digest key: md5 for files, the DANDI checksum for directories */
		sqlite3_stmt *st2 = NULL;
		rc = prep(ix, &st2, "SELECT json_set(?1, '$.' || ?2, ?3)");
		if (!rc) {
			bind_text(st2, 1, res);
			bind_text(st2, 2, m->is_dir ? "checksum" : "md5");
			bind_text(st2, 3, m->is_dir ? m->checksum : m->md5);
			if (sqlite3_step(st2) == SQLITE_ROW) {
				free(res);
				res = col_dup(st2, 0);
				rc = res ? 0 : -ENOMEM;
			} else {
				rc = xlate(ix, sqlite3_errcode(ix->db), "build metadata");
			}
		}
		sqlite3_finalize(st2);
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&ix->lock);
	if (rc) {
		free(res);
		return rc;
	}
	*out = res;
	return 0;
}

void sfs_job_release(struct sfs_job *j)
{
	if (!j)
		return;
	free(j->staging);
	free(j->canonical);
	free(j->addressing);
	free(j->metadata);
	free(j->receipt_dir);
	free(j->receipt_name);
	free(j->state);
	memset(j, 0, sizeof(*j));
}

int sfs_index_job_begin(struct sfs_index *ix, struct sfs_job *j)
{
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = prep(ix, &st,
		  "INSERT INTO commit_jobs(staging,canonical,addressing,metadata,receipt_dir,"
		  "receipt_name) VALUES(?1,?2,?3,?4,?5,?6)");
	if (!rc) {
		bind_text(st, 1, j->staging);
		bind_text(st, 2, j->canonical);
		bind_text(st, 3, j->addressing);
		bind_text(st, 4, j->metadata);
		bind_text(st, 5, j->receipt_dir);
		bind_text(st, 6, j->receipt_name);
		rc = xlate(ix, sqlite3_step(st), "record commit intent");
		if (!rc)
			j->id = sqlite3_last_insert_rowid(ix->db);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_job_retarget(struct sfs_index *ix, struct sfs_job *j, const char *canonical,
			   const char *metadata)
{
	sqlite3_stmt *st = NULL;
	char *c = strdup(canonical), *m = strdup(metadata);
	int rc;

	if (!c || !m) {
		free(c);
		free(m);
		return -ENOMEM;
	}
	pthread_mutex_lock(&ix->lock);
	rc = prep(ix, &st, "UPDATE commit_jobs SET canonical=?1, metadata=?2 WHERE id=?3");
	if (!rc) {
		bind_text(st, 1, canonical);
		bind_text(st, 2, metadata);
		sqlite3_bind_int64(st, 3, j->id);
		rc = xlate(ix, sqlite3_step(st), "retarget commit");
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&ix->lock);
	if (rc) {
		free(c);
		free(m);
		return rc;
	}
	free(j->canonical);
	free(j->metadata);
	j->canonical = c;
	j->metadata = m;
	return 0;
}

/* Run one statement whose parameters ?1..?n are the strings args[0..n-1]; caller holds lock. */
static int run_bound(struct sfs_index *ix, const char *sql, int n, const char *const *args)
{
	sqlite3_stmt *st = NULL;
	int rc = prep(ix, &st, sql);

	if (!rc) {
		for (int i = 0; i < n; i++)
			bind_text(st, i + 1, args[i]);
		rc = xlate(ix, sqlite3_step(st), sql);
	}
	sqlite3_finalize(st);
	return rc;
}

#define OBJECT_INSERT_SQL                                                               \
	"INSERT INTO objects(path,addressing,hash,size,is_dir,metadata) "               \
	"VALUES(?1,?2,json_extract(?3,'$.hash'),coalesce(json_extract(?3,'$.size'),0)," \
	"json_extract(?3,'$.is_dir') IS 1,?3) ON CONFLICT(path) DO NOTHING"

int sfs_index_job_finish(struct sfs_index *ix, const struct sfs_job *j, int dedup)
{
	char idbuf[32];
	int rc;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)j->id);
	pthread_mutex_lock(&ix->lock);
	rc = exec(ix, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	rc = run_bound(ix, OBJECT_INSERT_SQL, 3,
		       (const char *const[]){j->canonical, j->addressing, j->metadata});
	if (!rc)
		rc = run_bound(
			ix,
			"INSERT OR REPLACE INTO receipts(dir,name,object,metadata) VALUES(?1,?2,?3,"
			"CASE WHEN ?4 = '1' THEN json_set(?5,'$.dedup',json('true')) ELSE ?5 END)",
			5,
			(const char *const[]){j->receipt_dir, j->receipt_name, j->canonical,
					      dedup ? "1" : "0", j->metadata});
	if (!rc)
		rc = run_bound(ix, "DELETE FROM commit_jobs WHERE id=?1", 1,
			       (const char *const[]){idbuf});
	rc = tx_end(ix, rc);
out:
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_job_copied(struct sfs_index *ix, struct sfs_job *j)
{
	char idbuf[32];
	char *st = strdup("copied");
	int rc;

	if (!st)
		return -ENOMEM;
	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)j->id);
	pthread_mutex_lock(&ix->lock);
	rc = run_bound(ix, "UPDATE commit_jobs SET state='copied' WHERE id=?1", 1,
		       (const char *const[]){idbuf});
	pthread_mutex_unlock(&ix->lock);
	if (rc) {
		free(st);
		return rc;
	}
	free(j->state);
	j->state = st;
	return 0;
}

int sfs_index_job_abort(struct sfs_index *ix, int64_t id)
{
	char idbuf[32];
	int rc;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	pthread_mutex_lock(&ix->lock);
	rc = run_bound(ix, "DELETE FROM commit_jobs WHERE id=?1", 1, (const char *const[]){idbuf});
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_jobs(struct sfs_index *ix, int (*cb)(void *arg, struct sfs_job *j), void *arg)
{
	sqlite3_stmt *st = NULL;
	struct sfs_job *jobs = NULL;
	size_t n = 0, cap = 0;
	int rc;

	/* collect first: cb calls back into the index */
	pthread_mutex_lock(&ix->lock);
	rc = prep(ix, &st,
		  "SELECT id,staging,canonical,addressing,metadata,receipt_dir,receipt_name,state "
		  "FROM commit_jobs ORDER BY id");
	while (!rc && sqlite3_step(st) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct sfs_job *nj = realloc(jobs, ncap * sizeof(*nj));
			if (!nj) {
				rc = -ENOMEM;
				break;
			}
			jobs = nj;
			cap = ncap;
		}
		struct sfs_job *j = &jobs[n++];
		j->id = sqlite3_column_int64(st, 0);
		j->staging = col_dup(st, 1);
		j->canonical = col_dup(st, 2);
		j->addressing = col_dup(st, 3);
		j->metadata = col_dup(st, 4);
		j->receipt_dir = col_dup(st, 5);
		j->receipt_name = col_dup(st, 6);
		j->state = col_dup(st, 7);
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&ix->lock);
	for (size_t i = 0; i < n; i++) {
		if (!rc)
			rc = cb(arg, &jobs[i]);
		sfs_job_release(&jobs[i]);
	}
	free(jobs);
	return rc;
}

/* Run a one-row query with text params and return column 0 as a new string; -ENOENT if no row. */
static int query_text(struct sfs_index *ix, const char *sql, int n, const char *const *args,
		      char **out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = prep(ix, &st, sql);
	if (!rc) {
		for (int i = 0; i < n; i++)
			bind_text(st, i + 1, args[i]);
		int s = sqlite3_step(st);
		if (s == SQLITE_ROW) {
			*out = col_dup(st, 0);
			rc = *out ? 0 : -ENOMEM;
		} else {
			rc = s == SQLITE_DONE ? -ENOENT : xlate(ix, s, sql);
		}
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_object_metadata(struct sfs_index *ix, const char *path, char **json)
{
	return query_text(ix, "SELECT metadata FROM objects WHERE path=?1", 1,
			  (const char *const[]){path}, json);
}

int sfs_index_object_add(struct sfs_index *ix, const char *path, const char *addressing,
			 const char *metadata)
{
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = run_bound(ix, OBJECT_INSERT_SQL, 3, (const char *const[]){path, addressing, metadata});
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_object_count(struct sfs_index *ix, int64_t *n)
{
	char *s = NULL;
	int rc = query_text(ix, "SELECT count(*) FROM objects", 0, NULL, &s);

	if (!rc)
		*n = strtoll(s, NULL, 10);
	free(s);
	return rc;
}

int sfs_index_receipt_get(struct sfs_index *ix, const char *dir, const char *name, char **json)
{
	return query_text(ix, "SELECT metadata FROM receipts WHERE dir=?1 AND name=?2", 2,
			  (const char *const[]){dir, name}, json);
}

int sfs_index_receipt_delete(struct sfs_index *ix, const char *dir, const char *name)
{
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = run_bound(ix, "DELETE FROM receipts WHERE dir=?1 AND name=?2", 2,
		       (const char *const[]){dir, name});
	if (!rc && sqlite3_changes(ix->db) == 0)
		rc = -ENOENT;
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_receipt_list(struct sfs_index *ix, const char *dir,
			   int (*cb)(void *arg, const char *name, int64_t size), void *arg)
{
	sqlite3_stmt *st = NULL;
	char **names = NULL;
	int64_t *sizes = NULL;
	size_t n = 0, cap = 0;
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = prep(ix, &st,
		  "SELECT name, length(CAST(metadata AS BLOB)) FROM receipts WHERE dir=?1 "
		  "ORDER BY name");
	if (!rc)
		bind_text(st, 1, dir);
	while (!rc && sqlite3_step(st) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nn = realloc(names, ncap * sizeof(*nn));
			if (nn)
				names = nn;
			int64_t *ns = nn ? realloc(sizes, ncap * sizeof(*ns)) : NULL;
			if (!nn || !ns) {
				rc = -ENOMEM;
				break;
			}
			sizes = ns;
			cap = ncap;
		}
		names[n] = col_dup(st, 0);
		sizes[n] = sqlite3_column_int64(st, 1);
		n++;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&ix->lock);
	for (size_t i = 0; i < n; i++) {
		if (!rc && names[i])
			rc = cb(arg, names[i], sizes[i]);
		free(names[i]);
	}
	free(names);
	free(sizes);
	return rc;
}

int sfs_index_receipt_any(struct sfs_index *ix, const char *dir)
{
	char *s = NULL;
	int rc = query_text(ix, "SELECT 1 FROM receipts WHERE dir=?1 LIMIT 1", 1,
			    (const char *const[]){dir}, &s);

	free(s);
	if (rc == -ENOENT)
		return 0;
	return rc ? rc : 1;
}

static int is_int_text(const char *s)
{
	if (*s == '-')
		s++;
	if (!*s || (s[0] == '0' && s[1]))
		return 0; /* "007" stays a string */
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static int is_float_text(const char *s)
{
	char *end;

	if (!*s || !strpbrk(s, ".eE"))
		return 0;
	(void)strtod(s, &end);
	return *end == '\0' && strspn(s, "+-0123456789.eE") == strlen(s);
}

int sfs_commit_value_build(const char *field, char *const *keys, int nkeys, const char *ext,
			   char **out)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *json = NULL;
	int rc = 0;

	if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return -ENOMEM;
	}
	/* start from {"field":F,"key":{}} and insert keys in order; json_insert keeps order */
	if (sqlite3_prepare_v2(db, "SELECT json_object('field',?1,'key',json_object())", -1, &st,
			       NULL) != SQLITE_OK) {
		rc = -EIO;
		goto out;
	}
	sqlite3_bind_text(st, 1, field, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		rc = -EIO;
		goto out;
	}
	json = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	st = NULL;
	for (int i = 0; !rc && json && i < nkeys; i++) {
		const char *eq = strchr(keys[i], '=');
		if (!eq || eq == keys[i]) {
			rc = -EINVAL;
			break;
		}
		int raw = eq > keys[i] && eq[-1] == ':';
		char *name = strndup(keys[i], (size_t)(eq - keys[i] - raw));
		const char *val = eq + 1;
		const char *expr = raw			       ? "json(?3)"
				   : is_int_text(val)	       ? "CAST(?3 AS INTEGER)"
				   : is_float_text(val)	       ? "CAST(?3 AS REAL)"
				   : strcmp(val, "true") == 0  ? "json('true')"
				   : strcmp(val, "false") == 0 ? "json('false')"
							       : "?3";
		char sql[160];
		snprintf(sql, sizeof(sql), "SELECT json_insert(?1, '$.key.' || json_quote(?2), %s)",
			 expr);
		if (!name || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
			free(name);
			rc = name ? -EINVAL : -ENOMEM;
			break;
		}
		sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, val, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
			char *n = strdup((const char *)sqlite3_column_text(st, 0));
			free(json);
			json = n;
		} else {
			rc = -EINVAL; /* e.g. malformed JSON after := */
		}
		sqlite3_finalize(st);
		st = NULL;
		free(name);
	}
	if (!rc && json && ext) {
		if (sqlite3_prepare_v2(db, "SELECT json_insert(?1, '$.ext', ?2)", -1, &st, NULL) ==
			    SQLITE_OK &&
		    (sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC),
		     sqlite3_bind_text(st, 2, ext, -1, SQLITE_STATIC),
		     sqlite3_step(st) == SQLITE_ROW)) {
			char *n = strdup((const char *)sqlite3_column_text(st, 0));
			free(json);
			json = n;
		} else {
			rc = -EIO;
		}
	}
	if (!rc && !json)
		rc = -ENOMEM;
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (rc) {
		free(json);
		return rc;
	}
	*out = json;
	return 0;
}

/* ---- staged files stored in the backend ---- */

/* rel itself or below rel (no LIKE: '_' and '%' are ordinary in names) */
#define UNDER(col, p) "(" col "=" p " OR substr(" col ",1,length(" p ")+1)=" p "||'/')"

/* Insert r's xattrs as rel's (its old ones are gone already); caller holds the lock. */
static int insert_xattrs(struct sfs_index *ix, const char *rel, const struct sfs_staged *r)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;

	if (!r->n_xattrs)
		return 0;
	rc = prep(ix, &st, "INSERT INTO staged_xattrs(rel,name,value) VALUES(?1,?2,?3)");
	for (size_t i = 0; !rc && i < r->n_xattrs; i++) {
		sqlite3_reset(st);
		bind_text(st, 1, rel);
		bind_text(st, 2, r->xattrs[i].name);
		sqlite3_bind_blob(st, 3, r->xattrs[i].value ? r->xattrs[i].value : "",
				  (int)r->xattrs[i].len, SQLITE_STATIC);
		rc = xlate(ix, sqlite3_step(st), "record a staged file's xattr");
	}
	sqlite3_finalize(st);
	return rc;
}

/*
 * Write rel's row from r in one transaction: all of it (put), or, when
 * meta_only, just its mode and xattrs, and only if it has a row.
 */
static int staged_write(struct sfs_index *ix, const char *rel, const struct sfs_staged *r,
			int meta_only)
{
	sqlite3_stmt *st = NULL;
	int rc, have = 1;

	pthread_mutex_lock(&ix->lock);
	rc = exec(ix, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	/* the old row (or its xattrs) go first; a row's xattrs go with it (ON DELETE CASCADE) */
	rc = run_bound(ix,
		       meta_only ? "DELETE FROM staged_xattrs WHERE rel=?1"
				 : "DELETE FROM staged WHERE rel=?1",
		       1, (const char *const[]){rel});
	if (!rc)
		rc = prep(
			ix, &st,
			meta_only
				? "UPDATE staged SET mode=?3 WHERE rel=?1"
				: "INSERT INTO staged(rel,size,mode,mtime_ns) VALUES(?1,?2,?3,?4)");
	if (!rc) {
		bind_text(st, 1, rel);
		if (!meta_only) {
			sqlite3_bind_int64(st, 2, (sqlite3_int64)r->size);
			sqlite3_bind_int64(st, 4, r->mtime_ns);
		}
		sqlite3_bind_int64(st, 3, (sqlite3_int64)r->mode);
		rc = xlate(ix, sqlite3_step(st), "record a stored staged file");
		have = !rc && sqlite3_changes(ix->db) > 0; /* meta_only: no row, nothing to do */
	}
	sqlite3_finalize(st);
	if (!rc && have)
		rc = insert_xattrs(ix, rel, r);
	rc = tx_end(ix, rc);
out:
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_staged_put(struct sfs_index *ix, const char *rel, const struct sfs_staged *r)
{
	return staged_write(ix, rel, r, 0);
}

void sfs_staged_release(struct sfs_staged *r)
{
	for (size_t i = 0; i < r->n_xattrs; i++) {
		free(r->xattrs[i].name);
		free(r->xattrs[i].value);
	}
	free(r->xattrs);
	r->xattrs = NULL;
	r->n_xattrs = 0;
}

/* Read rel's xattrs into r; caller holds the lock. */
static int staged_xattrs(struct sfs_index *ix, const char *rel, struct sfs_staged *r)
{
	sqlite3_stmt *st = NULL;
	int rc = prep(ix, &st, "SELECT name,value FROM staged_xattrs WHERE rel=?1 ORDER BY name");
	int step;

	if (rc)
		return rc;
	bind_text(st, 1, rel);
	while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct sfs_staged_xattr *v =
			realloc(r->xattrs, (r->n_xattrs + 1) * sizeof(*r->xattrs));
		if (!v) {
			rc = -ENOMEM;
			break;
		}
		r->xattrs = v;
		struct sfs_staged_xattr *x = &v[r->n_xattrs];
		size_t len = (size_t)sqlite3_column_bytes(st, 1);
		x->name = col_dup(st, 0);
		x->value = malloc(len ? len : 1);
		x->len = len;
		if (!x->name || !x->value) {
			free(x->name);
			free(x->value);
			rc = -ENOMEM;
			break;
		}
		if (len)
			memcpy(x->value, sqlite3_column_blob(st, 1), len);
		r->n_xattrs++;
	}
	if (!rc && step != SQLITE_DONE)
		rc = xlate(ix, step, "read a staged file's xattrs");
	sqlite3_finalize(st);
	return rc;
}

int sfs_index_staged_meta(struct sfs_index *ix, const char *rel, const struct sfs_staged *r)
{
	return staged_write(ix, rel, r, 1);
}

int sfs_index_staged_get(struct sfs_index *ix, const char *rel, struct sfs_staged *out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = prep(ix, &st, "SELECT size,mode,mtime_ns FROM staged WHERE rel=?1");
	if (!rc) {
		bind_text(st, 1, rel);
		int step = sqlite3_step(st);
		if (step == SQLITE_ROW) {
			memset(out, 0, sizeof(*out));
			out->size = (uint64_t)sqlite3_column_int64(st, 0);
			out->mode = (unsigned)sqlite3_column_int64(st, 1);
			out->mtime_ns = sqlite3_column_int64(st, 2);
			sqlite3_finalize(st);
			st = NULL;
			rc = staged_xattrs(ix, rel, out);
			if (rc)
				sfs_staged_release(out);
		} else {
			rc = step == SQLITE_DONE ? -ENOENT
						 : xlate(ix, step, "look up a staged file");
		}
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_staged_forget(struct sfs_index *ix, const char *rel)
{
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = run_bound(ix, "DELETE FROM staged WHERE " UNDER("rel", "?1"), 1,
		       (const char *const[]){rel});
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_staged_move(struct sfs_index *ix, const char *from, const char *to)
{
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = exec(ix, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	/* what the destination held is replaced (rename semantics) */
	rc = run_bound(ix, "DELETE FROM staged WHERE " UNDER("rel", "?1"), 1,
		       (const char *const[]){to});
	if (!rc)
		rc = run_bound(ix,
			       "UPDATE staged SET rel=?2||substr(rel,length(?1)+1) WHERE " UNDER(
				       "rel", "?1"),
			       2, (const char *const[]){from, to});
	rc = tx_end(ix, rc);
out:
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_staged_count(struct sfs_index *ix, int64_t *n)
{
	char *s = NULL;
	int rc;

	rc = query_text(ix, "SELECT count(*) FROM staged", 0, NULL, &s);
	if (!rc)
		*n = strtoll(s, NULL, 10);
	free(s);
	return rc;
}
