/* index/jobs.c - commit intents (commit_jobs) */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "index/db.h"

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
	rc = ix_exec(ix, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	rc = ix_prep(ix, &st,
		     "INSERT INTO commit_jobs(staging,canonical,addressing,metadata,receipt_dir,"
		     "receipt_name) VALUES(?1,?2,?3,?4,?5,?6)");
	if (!rc) {
		ix_bind_text(st, 1, j->staging);
		ix_bind_text(st, 2, j->canonical);
		ix_bind_text(st, 3, j->addressing);
		ix_bind_text(st, 4, j->metadata);
		ix_bind_text(st, 5, j->receipt_dir);
		ix_bind_text(st, 6, j->receipt_name);
		rc = ix_xlate(ix, sqlite3_step(st), "record commit intent");
	}
	sqlite3_finalize(st);
	st = NULL;
	int64_t id = rc ? 0 : sqlite3_last_insert_rowid(ix->db);
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
	sqlite3_finalize(st);
	rc = ix_tx_end(ix, rc);
	if (!rc)
		j->id = id;
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
	rc = ix_prep(ix, &st, "UPDATE commit_jobs SET canonical=?1, metadata=?2 WHERE id=?3");
	if (!rc) {
		ix_bind_text(st, 1, canonical);
		ix_bind_text(st, 2, metadata);
		sqlite3_bind_int64(st, 3, j->id);
		rc = ix_xlate(ix, sqlite3_step(st), "retarget commit");
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
		rc = ix_run_bound(ix, "DELETE FROM commit_jobs WHERE id=?1", 1,
				  (const char *const[]){idbuf});
	rc = ix_tx_end(ix, rc);
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
	rc = ix_run_bound(ix, "UPDATE commit_jobs SET state='copied' WHERE id=?1", 1,
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
	rc = ix_exec(ix, "BEGIN IMMEDIATE");
	if (!rc)
		rc = ix_run_bound(ix, "DELETE FROM job_files WHERE job=?1", 1,
				  (const char *const[]){idbuf});
	if (!rc)
		rc = ix_run_bound(ix, "DELETE FROM commit_jobs WHERE id=?1", 1,
				  (const char *const[]){idbuf});
	rc = ix_tx_end(ix, rc);
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
	rc = ix_prep(
		ix, &st,
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
		j->staging = ix_col_dup(st, 1);
		j->canonical = ix_col_dup(st, 2);
		j->addressing = ix_col_dup(st, 3);
		j->metadata = ix_col_dup(st, 4);
		j->receipt_dir = ix_col_dup(st, 5);
		j->receipt_name = ix_col_dup(st, 6);
		j->state = ix_col_dup(st, 7);
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

int sfs_index_job_sidecar(struct sfs_index *ix, const struct sfs_job *j, char **json)
{
	char idbuf[32];

	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)j->id);
	/* receipt metadata, and a directory's files as [rel, size, md5] in path order */
	return ix_query_text(ix,
			     "SELECT json_object('format','stagefs-object','version',1,"
			     "'metadata',json(?2),'files',"
			     "(SELECT json_group_array(json_array(rel,size,md5)) FROM "
			     "(SELECT rel,size,md5 FROM job_files WHERE job=?1 ORDER BY rel)))",
			     2, (const char *const[]){idbuf, j->metadata}, json);
}
