/*
 * fs/jobs.c - commits as durable jobs (DataJoint's per-table job queue is
 * the model): setxattr(user.stagefs.commit) queues a row in the index's jobs
 * table (pending, durable before anything else happens) and, unless the
 * value says "async": true, waits for it.  Worker threads, never the FUSE
 * threads, reserve the oldest pending job, run the commit's steps
 * (fs/commit.c) and end the row as success or error (errno and reason kept,
 * so `stagefs status` and `stagefs jobs` tell them after a remount too).
 *
 * A job whose daemon died resumes at the next mount: recovery (sfs_recover)
 * finishes or undoes a promotion under way, then every job still reserved is
 * pending again and runs from the start; each step is idempotent, so a job
 * run twice ends as a job run once.  A job no one waits for finds its entry
 * again by its staging path.
 *
 * Lock order: the queue's lock comes before fs->lock and the index's lock,
 * and is never held while a commit runs.
 */
#include "fs/fs.h"
#include "fs/staging.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

#define SFS_JOB_WORKERS 2

/* A setxattr waiting for its job. */
struct waiter {
	int64_t id;
	struct sfs_stg *in; /* held */
	int done, rc;
	struct waiter *next;
};

struct sfs_jobq {
	pthread_mutex_t lock;
	pthread_cond_t work; /* a job was queued, or stop */
	pthread_cond_t done; /* a job ended */
	pthread_t threads[SFS_JOB_WORKERS];
	int nthreads, stop;
	unsigned long
		kicks; /* times a job was queued (only grows; each worker knows what it saw) */
	struct waiter *waiters;
};

/* The staging inode at rel (relative to staging/), held; the kernel's references untouched. */
static int resolve(struct sfs_fs *fs, const char *rel, struct sfs_stg **out)
{
	struct sfs_stg *dir = fs->staging;
	char *path = strdup(rel), *save = NULL;
	int rc = path ? 0 : -ENOMEM;

	pthread_mutex_lock(&fs->lock);
	sfs_inode_hold_locked(&dir->base);
	pthread_mutex_unlock(&fs->lock);
	for (char *name = path ? strtok_r(path, "/", &save) : NULL; !rc && name;
	     name = strtok_r(NULL, "/", &save)) {
		struct sfs_stg_dref d;
		struct sfs_stg *child = NULL;
		struct stat st;

		rc = dir->type == S_IFDIR ? sfs_stg_dir_get(fs, dir, &d) : -ENOTDIR;
		if (rc)
			break;
		rc = fstatat(d.fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
		if (!rc)
			rc = sfs_stg_intern(fs, dir, d.fd, name, &st, &child);
		sfs_stg_dir_put(fs, &d);
		if (rc)
			break;
		/* intern counts a kernel reference: make it ours */
		pthread_mutex_lock(&fs->lock);
		sfs_inode_hold_locked(&child->base);
		sfs_inode_forget_locked(fs, &child->base, 1);
		sfs_inode_put_locked(fs, &dir->base);
		pthread_mutex_unlock(&fs->lock);
		dir = child;
	}
	free(path);
	if (rc) {
		sfs_inode_put(fs, &dir->base);
		return rc;
	}
	*out = dir;
	return 0;
}

/* Run one reserved job to its end. */
static void run(struct sfs_fs *fs, struct sfs_job *j)
{
	struct sfs_jobq *q = fs->jobq;
	struct sfs_stg *in = NULL;
	struct waiter *w;
	char reason[512] = "";
	int rc;

	pthread_mutex_lock(&q->lock);
	for (w = q->waiters; w && w->id != j->id; w = w->next)
		;
	if (w) {
		in = w->in;
		pthread_mutex_lock(&fs->lock);
		sfs_inode_hold_locked(&in->base);
		pthread_mutex_unlock(&fs->lock);
	}
	pthread_mutex_unlock(&q->lock);
	rc = in ? 0 : resolve(fs, j->staging, &in);
	if (rc)
		snprintf(reason, sizeof(reason), "'staging/%s' is gone", j->staging);
	else
		rc = sfs_commit(fs, in, j->id, j->value, strlen(j->value), reason, sizeof(reason));
	if (rc) {
		int frc =
			sfs_index_job_fail(fs->ix, j->id, -rc, reason[0] ? reason : strerror(-rc));
		if (frc)
			sfs_log(LOG_ERR, "job %lld: cannot record its failure: %s",
				(long long)j->id, strerror(-frc));
	}
	if (in)
		sfs_inode_put(fs, &in->base);
	pthread_mutex_lock(&q->lock);
	for (w = q->waiters; w; w = w->next)
		if (w->id == j->id) {
			w->done = 1;
			w->rc = rc;
		}
	pthread_cond_broadcast(&q->done);
	pthread_mutex_unlock(&q->lock);
}

static void *worker(void *arg)
{
	struct sfs_fs *fs = arg;
	struct sfs_jobq *q = fs->jobq;
	/*
	 * kicks only grows; this worker sleeps while it has looked since the
	 * last one.  (Resetting a shared counter lost a kick that came between
	 * another worker's look and its reset: the job stayed pending.)
	 */
	unsigned long looked = 0;

	for (;;) {
		pthread_mutex_lock(&q->lock);
		while (!q->stop && q->kicks == looked)
			pthread_cond_wait(&q->work, &q->lock);
		if (q->stop) {
			pthread_mutex_unlock(&q->lock);
			return NULL;
		}
		unsigned long seen = q->kicks;
		pthread_mutex_unlock(&q->lock);

		struct sfs_job j;
		int rc = sfs_index_job_reserve(fs->ix, &j);
		if (rc == 0) {
			run(fs, &j);
			sfs_job_release(&j);
			continue;
		}
		if (rc == -ENOENT) {
			looked = seen; /* every job queued before those kicks was there to see */
			continue;
		}
		sfs_log(LOG_ERR, "commit jobs: cannot reserve one: %s", strerror(-rc));
		sleep(1); /* and look again */
	}
}

static void kick(struct sfs_jobq *q)
{
	pthread_mutex_lock(&q->lock);
	q->kicks++;
	pthread_cond_broadcast(&q->work);
	pthread_mutex_unlock(&q->lock);
}

int sfs_jobs_start(struct sfs_fs *fs)
{
	struct sfs_jobq *q = calloc(1, sizeof(*q));
	int64_t n = 0;
	int rc;

	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->work, NULL);
	pthread_cond_init(&q->done, NULL);
	q->kicks = 1; /* look for jobs left by the previous run */
	fs->jobq = q;
	rc = sfs_index_jobs_resume(fs->ix, &n);
	if (rc)
		return rc;
	if (n)
		sfs_log(LOG_NOTICE, "%lld commit job(s) of the previous run resume", (long long)n);
	for (int i = 0; i < SFS_JOB_WORKERS; i++) {
		rc = -pthread_create(&q->threads[i], NULL, worker, fs);
		if (rc)
			return rc;
		q->nthreads++;
	}
	return 0;
}

void sfs_jobs_stop(struct sfs_fs *fs)
{
	struct sfs_jobq *q = fs->jobq;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stop = 1;
	pthread_cond_broadcast(&q->work);
	pthread_mutex_unlock(&q->lock);
	for (int i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->work);
	pthread_cond_destroy(&q->done);
	free(q);
	fs->jobq = NULL;
}

int sfs_jobs_submit(struct sfs_fs *fs, struct sfs_stg *in, const char *value, size_t len)
{
	struct sfs_jobq *q = fs->jobq;
	struct sfs_commit_spec spec;
	struct waiter w = {.in = in};
	char reason[512] = "", *rel = NULL, *v = NULL;
	int rc;

	if (!q)
		return -EROFS;
	if (sfs_inode_view(&in->base) != &sfs_view_staging)
		return -ENOENT;
	/* a VALUE that cannot parse never becomes a job: the caller hears at once */
	rc = sfs_commit_spec_parse(value, len, &spec, reason, sizeof(reason));
	if (rc) {
		sfs_stg_set_status(in, "error: %s", reason[0] ? reason : strerror(-rc));
		sfs_log(LOG_WARNING, "cannot commit: %s", reason);
		return rc;
	}
	int async = spec.async;
	sfs_commit_spec_release(&spec);
	rc = sfs_stg_rel(fs, in, &rel);
	if (!rc && !(v = strndup(value, len)))
		rc = -ENOMEM;
	if (rc)
		goto out;
	pthread_mutex_lock(&q->lock);
	rc = sfs_index_job_queue(fs->ix, rel, v, &w.id);
	if (!rc && !async) {
		pthread_mutex_lock(&fs->lock);
		sfs_inode_hold_locked(&in->base);
		pthread_mutex_unlock(&fs->lock);
		w.next = q->waiters;
		q->waiters = &w;
	}
	pthread_mutex_unlock(&q->lock);
	if (rc == -EBUSY) {
		sfs_log(LOG_WARNING,
			"cannot commit 'staging/%s': a commit of it is queued or running", rel);
		goto out;
	}
	if (rc)
		goto out;
	sfs_stg_set_status(in, NULL); /* the row says "queued" now, and then how it went */
	kick(q);
	if (async) {
		sfs_log(LOG_INFO, "queued commit job %lld of 'staging/%s'", (long long)w.id, rel);
		goto out;
	}
	pthread_mutex_lock(&q->lock);
	while (!w.done)
		pthread_cond_wait(&q->done, &q->lock);
	for (struct waiter **p = &q->waiters; *p; p = &(*p)->next)
		if (*p == &w) {
			*p = w.next;
			break;
		}
	pthread_mutex_unlock(&q->lock);
	rc = w.rc;
	sfs_inode_put(fs, &in->base);
out:
	free(rel);
	free(v);
	return rc;
}

int sfs_jobs_retry(struct sfs_fs *fs)
{
	int64_t n = 0;
	int rc;

	if (!fs->jobq)
		return -EROFS;
	rc = sfs_index_jobs_retry(fs->ix, &n);
	if (!rc && n) {
		sfs_log(LOG_NOTICE, "%lld failed commit job(s) queued again", (long long)n);
		kick(fs->jobq);
	}
	return rc;
}

void sfs_jobs_status(struct sfs_fs *fs, struct sfs_stg *in, char *buf, size_t len)
{
	struct sfs_job j;
	char *rel = NULL;

	buf[0] = '\0';
	if (sfs_stg_rel(fs, in, &rel) != 0)
		return;
	if (sfs_index_job_of(fs->ix, rel, &j) == 0) {
		if (!strcmp(j.status, "pending"))
			snprintf(buf, len, "queued");
		else if (!strcmp(j.status, "reserved"))
			snprintf(buf, len, "committing %llu/%llu", (unsigned long long)j.bytes_done,
				 (unsigned long long)j.bytes_total);
		else if (!strcmp(j.status, "error"))
			snprintf(buf, len, "error: %s", j.error ? j.error : strerror(j.err));
		sfs_job_release(&j);
	}
	free(rel);
}
