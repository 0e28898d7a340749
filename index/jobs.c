/* index/jobs.c - commit jobs (jobs, job_files): the queue, the intent, the end */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "index/db.h"

#define JOB_COLS                                                                               \
	"id,staging,value,status,canonical,addressing,metadata,receipt_dir,receipt_name,step," \
	"error,created,finished,coalesce(errno,0),attempts,bytes_done,bytes_total"

void sfs_job_release(struct sfs_job *j)
{
	if (!j)
		return;
	free(j->staging);
	free(j->value);
	free(j->status);
	free(j->canonical);
	free(j->addressing);
	free(j->metadata);
	free(j->receipt_dir);
	free(j->receipt_name);
	free(j->state);
	free(j->error);
	free(j->created);
	free(j->finished);
	memset(j, 0, sizeof(*j));
}

/* A row of SELECT JOB_COLS into *j. */
static void job_row(sqlite3_stmt *st, struct sfs_job *j)
{
	memset(j, 0, sizeof(*j));
	j->id = sqlite3_column_int64(st, 0);
	j->staging = ix_col_dup(st, 1);
	j->value = ix_col_dup(st, 2);
	j->status = ix_col_dup(st, 3);
	j->canonical = ix_col_dup(st, 4);
	j->addressing = ix_col_dup(st, 5);
	j->metadata = ix_col_dup(st, 6);
	j->receipt_dir = ix_col_dup(st, 7);
	j->receipt_name = ix_col_dup(st, 8);
	j->state = ix_col_dup(st, 9);
	j->error = ix_col_dup(st, 10);
	j->created = ix_col_dup(st, 11);
	j->finished = ix_col_dup(st, 12);
	j->err = sqlite3_column_int(st, 13);
	j->attempts = sqlite3_column_int(st, 14);
	j->bytes_done = (uint64_t)sqlite3_column_int64(st, 15);
	j->bytes_total = (uint64_t)sqlite3_column_int64(st, 16);
}

/* One job by a query binding ?1 (text) into *j: -ENOENT when no row.  Lock held. */
static int job_one_locked(struct sfs_index *ix, const char *sql, const char *arg, struct sfs_job *j)
{
	sqlite3_stmt *st = NULL;
	int rc = ix_prep(ix, &st, sql);

	if (!rc) {
		if (arg)
			ix_bind_text(st, 1, arg);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW)
			job_row(st, j);
		else
			rc = r == SQLITE_DONE ? -ENOENT : ix_xlate(ix, r, sql);
	}
	ix_finalize(ix, st);
	return rc;
}

int sfs_index_job_queue(struct sfs_index *ix, const char *staging, const char *value, int64_t *id)
{
	int rc;

	sqlite3_stmt *st = NULL;
	int busy = 0;

	pthread_mutex_lock(&ix->lock);
	rc = ix_exec(ix, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	/* one pending or running job per entry (jobs_active): asked first, so no error is logged */
	rc = ix_prep(ix, &st,
		     "SELECT 1 FROM jobs WHERE staging=?1 AND status IN ('pending','reserved')");
	if (!rc) {
		ix_bind_text(st, 1, staging);
		busy = sqlite3_step(st) == SQLITE_ROW;
	}
	ix_finalize(ix, st);
	if (!rc && busy)
		rc = -EBUSY;
	if (!rc)
		rc = ix_run_bound(ix, "INSERT INTO jobs(staging,value) VALUES(?1,?2)", 2,
				  (const char *const[]){staging, value});
	if (!rc)
		*id = sqlite3_last_insert_rowid(ix->db);
	rc = ix_tx_end(ix, rc);
out:
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_job_reserve(struct sfs_index *ix, struct sfs_job *j)
{
	char idbuf[32];
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = ix_exec(ix, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	rc = job_one_locked(
		ix, "SELECT " JOB_COLS " FROM jobs WHERE status='pending' ORDER BY id LIMIT 1",
		NULL, j);
	if (!rc) {
		snprintf(idbuf, sizeof(idbuf), "%lld", (long long)j->id);
		rc = ix_run_bound(
			ix,
			"UPDATE jobs SET status='reserved', attempts=attempts+1, errno=NULL,"
			" error=NULL, bytes_done=0, finished=NULL,"
			" reserved_at=strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id=?1",
			1, (const char *const[]){idbuf});
		if (rc) {
			sfs_job_release(j);
		} else {
			j->attempts++;
			free(j->status);
			j->status = strdup("reserved");
		}
	}
	rc = ix_tx_end(ix, rc);
out:
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_job_get(struct sfs_index *ix, int64_t id, struct sfs_job *j)
{
	char idbuf[32];
	int rc;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	pthread_mutex_lock(&ix->lock);
	rc = job_one_locked(ix, "SELECT " JOB_COLS " FROM jobs WHERE id=?1", idbuf, j);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_job_of(struct sfs_index *ix, const char *staging, struct sfs_job *j)
{
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = job_one_locked(
		ix, "SELECT " JOB_COLS " FROM jobs WHERE staging=?1 ORDER BY id DESC LIMIT 1",
		staging, j);
	if (!rc && j->status && strcmp(j->status, "success") == 0) {
		sfs_job_release(j);
		rc = -ENOENT;
	}
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_job_begin(struct sfs_index *ix, struct sfs_job *j)
{
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = ix_exec(ix, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	rc = ix_prep(ix, &st,
		     j->id ? "UPDATE jobs SET step='moving', canonical=?2, addressing=?3,"
			     " metadata=?4, receipt_dir=?5, receipt_name=?6 WHERE id=?7"
			   : "INSERT INTO jobs(staging,canonical,addressing,metadata,receipt_dir,"
			     "receipt_name,status,step,attempts) VALUES(?1,?2,?3,?4,?5,?6,"
			     "'reserved','moving',1)");
	if (!rc) {
		if (!j->id)
			ix_bind_text(st, 1, j->staging);
		ix_bind_text(st, 2, j->canonical);
		ix_bind_text(st, 3, j->addressing);
		ix_bind_text(st, 4, j->metadata);
		ix_bind_text(st, 5, j->receipt_dir);
		ix_bind_text(st, 6, j->receipt_name);
		if (j->id)
			sqlite3_bind_int64(st, 7, j->id);
		rc = ix_xlate(ix, sqlite3_step(st), "record commit intent");
		if (!rc && j->id && sqlite3_changes(ix->db) == 0)
			rc = -ENOENT;
	}
	ix_finalize(ix, st);
	st = NULL;
	int64_t id = rc ? 0 : j->id ? j->id : sqlite3_last_insert_rowid(ix->db);
	if (!rc)
		rc = ix_prep(ix, &st, "DELETE FROM job_files WHERE job=?1");
	if (!rc) {
		sqlite3_bind_int64(st, 1, id);
		rc = ix_xlate(ix, sqlite3_step(st), "clear the files of a commit");
	}
	ix_finalize(ix, st);
	st = NULL;
	if (!rc && j->nfiles)
		rc = ix_prep(ix, &st,
			     "INSERT INTO job_files(job,rel,size,md5) VALUES(?1,?2,?3,?4)");
	for (size_t i = 0; !rc && i < j->nfiles; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, id);
		ix_bind_text(st, 2, j->files[i].rel);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)j->files[i].size);
		ix_bind_text(st, 4, j->files[i].md5);
		rc = ix_xlate(ix, sqlite3_step(st), "record the files of a commit");
	}
	ix_finalize(ix, st);
	rc = ix_tx_end(ix, rc);
	if (!rc) {
		j->id = id;
		free(j->state);
		j->state = strdup("moving");
	}
out:
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
	rc = ix_prep(ix, &st, "UPDATE jobs SET canonical=?1, metadata=?2 WHERE id=?3");
	if (!rc) {
		ix_bind_text(st, 1, canonical);
		ix_bind_text(st, 2, metadata);
		sqlite3_bind_int64(st, 3, j->id);
		rc = ix_xlate(ix, sqlite3_step(st), "retarget commit");
	}
	ix_finalize(ix, st);
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

int sfs_index_job_finish(struct sfs_index *ix, const struct sfs_job *j, int dedup)
{
	char idbuf[32];
	int rc;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)j->id);
	pthread_mutex_lock(&ix->lock);
	rc = ix_exec(ix, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	rc = ix_run_bound(ix, OBJECT_INSERT_SQL, 3,
			  (const char *const[]){j->canonical, j->addressing, j->metadata});
	if (!rc)
		rc = ix_run_bound(
			ix,
			"INSERT OR REPLACE INTO receipts(dir,name,object,metadata) VALUES(?1,?2,?3,"
			"CASE WHEN ?4 = '1' THEN json_set(?5,'$.dedup',json('true')) ELSE ?5 END)",
			5,
			(const char *const[]){j->receipt_dir, j->receipt_name, j->canonical,
					      dedup ? "1" : "0", j->metadata});
	if (!rc)
		rc = ix_run_bound(ix,
				  "INSERT OR IGNORE INTO object_files(path,object,size,md5) "
				  "SELECT ?2||'/'||rel, ?2, size, md5 FROM job_files WHERE job=?1",
				  2, (const char *const[]){idbuf, j->canonical});
	if (!rc)
		rc = ix_run_bound(ix, "DELETE FROM job_files WHERE job=?1", 1,
				  (const char *const[]){idbuf});
	if (!rc)
		rc = ix_run_bound(
			ix,
			"UPDATE jobs SET status='success', step=NULL, errno=NULL, error=NULL,"
			" bytes_done=bytes_total,"
			" finished=strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id=?1",
			1, (const char *const[]){idbuf});
	rc = ix_tx_end(ix, rc);
out:
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

/* UPDATE jobs ... WHERE id=?1 with more text arguments. */
static int job_update(struct sfs_index *ix, int64_t id, const char *sql, int n,
		      const char *const *more)
{
	const char *args[4] = {NULL};
	char idbuf[32];
	int rc;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	args[0] = idbuf;
	for (int i = 0; i < n && i < 3; i++)
		args[i + 1] = more[i];
	pthread_mutex_lock(&ix->lock);
	rc = ix_run_bound(ix, sql, n + 1, args);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_job_copied(struct sfs_index *ix, struct sfs_job *j)
{
	char *st = strdup("copied");
	int rc = st ? job_update(ix, j->id, "UPDATE jobs SET step='copied' WHERE id=?1", 0, NULL)
		    : -ENOMEM;

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
	rc = ix_exec(ix, "BEGIN IMMEDIATE");
	if (!rc)
		rc = ix_run_bound(ix, "DELETE FROM job_files WHERE job=?1", 1,
				  (const char *const[]){idbuf});
	if (!rc)
		rc = ix_run_bound(ix,
				  "UPDATE jobs SET step=NULL, canonical=NULL, addressing=NULL,"
				  " metadata=NULL, receipt_dir=NULL, receipt_name=NULL WHERE id=?1",
				  1, (const char *const[]){idbuf});
	rc = ix_tx_end(ix, rc);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_job_fail(struct sfs_index *ix, int64_t id, int err, const char *reason)
{
	char ebuf[16];

	snprintf(ebuf, sizeof(ebuf), "%d", err);
	return job_update(ix, id,
			  "UPDATE jobs SET status='error', step=NULL, errno=?2, error=?3,"
			  " finished=strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id=?1"
			  /* a promotion under way or done: the intent stays, recovery ends it */
			  " AND step IS NULL",
			  2, (const char *const[]){ebuf, reason ? reason : ""});
}

int sfs_index_job_progress(struct sfs_index *ix, int64_t id, uint64_t done, uint64_t total)
{
	char d[24], t[24];

	snprintf(d, sizeof(d), "%llu", (unsigned long long)done);
	snprintf(t, sizeof(t), "%llu", (unsigned long long)total);
	return job_update(ix, id, "UPDATE jobs SET bytes_done=?2, bytes_total=?3 WHERE id=?1", 2,
			  (const char *const[]){d, t});
}

/* Run sql (no arguments) in the index; *n: rows changed. */
static int jobs_change(struct sfs_index *ix, const char *sql, int64_t *n)
{
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = ix_exec(ix, sql);
	if (!rc && n)
		*n = sqlite3_changes(ix->db);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_jobs_resume(struct sfs_index *ix, int64_t *n)
{
	int rc = jobs_change(ix,
			     "UPDATE jobs SET status='error', errno=5, step=NULL,"
			     " error='interrupted by a crash before an upgrade; commit it again',"
			     " finished=strftime('%Y-%m-%dT%H:%M:%fZ','now')"
			     " WHERE status='reserved' AND value=''",
			     NULL);

	return rc ? rc
		  : jobs_change(
			    ix,
			    "UPDATE jobs SET status='pending', step=NULL WHERE status='reserved'",
			    n);
}

int sfs_index_jobs_retry(struct sfs_index *ix, int64_t *n)
{
	/* the newest job of an entry only, and not one whose entry has a live job */
	return jobs_change(ix,
			   "UPDATE jobs SET status='pending', errno=NULL, error=NULL, finished=NULL"
			   " WHERE status='error' AND value<>'' AND id=(SELECT max(id) FROM jobs j2"
			   " WHERE j2.staging=jobs.staging)",
			   n);
}

/* Every row of sql (binding ?1 to arg when given) to cb, collected first: cb may call the index. */
static int jobs_each(struct sfs_index *ix, const char *sql, const char *arg, int limit,
		     int (*cb)(void *arg, struct sfs_job *j), void *cbarg)
{
	sqlite3_stmt *st = NULL;
	struct sfs_job *jobs = NULL;
	size_t n = 0, cap = 0;
	int rc, r = SQLITE_DONE;

	pthread_mutex_lock(&ix->lock);
	rc = ix_prep(ix, &st, sql);
	if (!rc && arg)
		ix_bind_text(st, 1, arg);
	if (!rc)
		sqlite3_bind_int(st, 2, limit > 0 ? limit : -1);
	while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
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
		job_row(st, &jobs[n++]);
	}
	if (!rc && r != SQLITE_DONE)
		rc = ix_xlate(ix, r, sql);
	ix_finalize(ix, st);
	pthread_mutex_unlock(&ix->lock);
	for (size_t i = 0; i < n; i++) {
		if (!rc)
			rc = cb(cbarg, &jobs[i]);
		sfs_job_release(&jobs[i]);
	}
	free(jobs);
	return rc;
}

int sfs_index_jobs(struct sfs_index *ix, int (*cb)(void *arg, struct sfs_job *j), void *arg)
{
	return jobs_each(ix,
			 "SELECT " JOB_COLS
			 " FROM jobs WHERE status='reserved' AND step IS NOT NULL"
			 " AND (?1 IS NULL OR 1) ORDER BY id LIMIT ?2",
			 NULL, 0, cb, arg);
}

int sfs_index_jobs_list(struct sfs_index *ix, const char *status, int limit,
			int (*cb)(void *arg, struct sfs_job *j), void *arg)
{
	return jobs_each(ix,
			 "SELECT " JOB_COLS " FROM jobs WHERE ?1 IS NULL OR (status=?1 AND"
			 " (status<>'error' OR id=(SELECT max(id) FROM jobs j2"
			 "  WHERE j2.staging=jobs.staging))) ORDER BY id DESC LIMIT ?2",
			 status, limit, cb, arg);
}

int sfs_index_jobs_count(struct sfs_index *ix, struct sfs_job_counts *out)
{
	static const char *sql =
		"SELECT status, count(*), sum(bytes_done), sum(bytes_total) FROM jobs WHERE"
		" status<>'error' OR id=(SELECT max(id) FROM jobs j2 WHERE j2.staging=jobs.staging)"
		" GROUP BY status";
	sqlite3_stmt *st = NULL;
	int rc, r = SQLITE_DONE;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&ix->lock);
	rc = ix_prep(ix, &st, sql);
	while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
		const char *s = (const char *)sqlite3_column_text(st, 0);
		int64_t c = sqlite3_column_int64(st, 1);
		if (!s)
			continue;
		if (!strcmp(s, "pending"))
			out->pending = c;
		else if (!strcmp(s, "reserved")) {
			out->reserved = c;
			out->bytes_done = (uint64_t)sqlite3_column_int64(st, 2);
			out->bytes_total = (uint64_t)sqlite3_column_int64(st, 3);
		} else if (!strcmp(s, "success"))
			out->success = c;
		else if (!strcmp(s, "error"))
			out->error = c;
	}
	if (!rc && r != SQLITE_DONE)
		rc = ix_xlate(ix, r, sql);
	ix_finalize(ix, st);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_job_sidecar(struct sfs_index *ix, const struct sfs_job *j, int parts,
			  int64_t file_count, char **json)
{
	char idbuf[32], pbuf[16], nbuf[32];

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)j->id);
	if (parts > 0) {
		snprintf(pbuf, sizeof(pbuf), "%d", parts);
		snprintf(nbuf, sizeof(nbuf), "%lld", (long long)file_count);
		return ix_query_text(ix,
				     "SELECT json_object('format','stagefs-object','version',1,"
				     "'metadata',json(?1),'parts',CAST(?2 AS INTEGER),"
				     "'file_count',CAST(?3 AS INTEGER))",
				     3, (const char *const[]){j->metadata, pbuf, nbuf}, json);
	}
	/* receipt metadata, and a directory's files as [rel, size, md5] in path order */
	return ix_query_text(ix,
			     "SELECT json_object('format','stagefs-object','version',1,"
			     "'metadata',json(?2),'files',"
			     "(SELECT json_group_array(json_array(rel,size,md5)) FROM "
			     "(SELECT rel,size,md5 FROM job_files WHERE job=?1 ORDER BY rel)))",
			     2, (const char *const[]){idbuf, j->metadata}, json);
}

int sfs_index_job_add_files(struct sfs_index *ix, int64_t id, const struct sfs_job_file *files,
			    size_t n)
{
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = ix_exec(ix, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	rc = ix_prep(ix, &st, "INSERT INTO job_files(job,rel,size,md5) VALUES(?1,?2,?3,?4)");
	for (size_t i = 0; !rc && i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, id);
		ix_bind_text(st, 2, files[i].rel);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)files[i].size);
		ix_bind_text(st, 4, files[i].md5);
		rc = ix_xlate(ix, sqlite3_step(st), "record the files of a commit");
	}
	ix_finalize(ix, st);
	rc = ix_tx_end(ix, rc);
out:
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_job_file_count(struct sfs_index *ix, int64_t id, int64_t *n)
{
	char idbuf[32], *s = NULL;
	int rc;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	rc = ix_query_text(ix, "SELECT count(*) FROM job_files WHERE job=?1", 1,
			   (const char *const[]){idbuf}, &s);
	if (!rc)
		*n = strtoll(s, NULL, 10);
	free(s);
	return rc;
}

int sfs_index_job_files_part(struct sfs_index *ix, int64_t id, char **after, size_t max,
			     char **json)
{
	char idbuf[32], maxbuf[32], *out = NULL, *last = NULL;
	int rc;

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)id);
	snprintf(maxbuf, sizeof(maxbuf), "%zu", max);
	/* keyset paging on job_files' key (job, rel): each part costs its own rows */
	rc = ix_query_text(ix,
			   "SELECT json_object('files',json_group_array(json_array(rel,size,md5)),"
			   " 'last',max(rel)) FROM (SELECT rel,size,md5 FROM job_files"
			   " WHERE job=?1 AND rel>?2 ORDER BY rel LIMIT CAST(?3 AS INTEGER))",
			   3, (const char *const[]){idbuf, *after ? *after : "", maxbuf}, &out);
	if (rc)
		return rc;
	rc = ix_query_text(ix, "SELECT coalesce(json_extract(?1,'$.last'),'')", 1,
			   (const char *const[]){out}, &last);
	if (!rc && !last[0]) {
		free(out);
		free(last);
		*json = NULL; /* none left */
		return 0;
	}
	if (!rc)
		rc = ix_query_text(ix, "SELECT json_extract(?1,'$.files')", 1,
				   (const char *const[]){out}, json);
	free(out);
	if (rc) {
		free(last);
		return rc;
	}
	free(*after);
	*after = last;
	return 0;
}

int sfs_index_import_object_files(struct sfs_index *ix, const char *key, const char *files)
{
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = ix_run_bound(ix,
			  "INSERT OR IGNORE INTO object_files(path,object,size,md5) "
			  "SELECT ?1||'/'||json_extract(value,'$[0]'), ?1,"
			  "  json_extract(value,'$[1]'), json_extract(value,'$[2]') "
			  "FROM json_each(?2) WHERE json_valid(?2)",
			  2, (const char *const[]){key, files});
	pthread_mutex_unlock(&ix->lock);
	return rc;
}
