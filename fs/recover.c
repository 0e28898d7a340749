/*
 * fs/recover.c - commits interrupted by a crash (see fs/commit.c for the
 * steps).  Before a mount serves anything, each job whose promotion was
 * under way (reserved, with a step) is finished or undone:
 *   - step "copied": remove what is left of the staged copy, then record it;
 *   - staged entry gone, canonical present (a rename happened): record it;
 *   - both present: a hash object is valid whoever wrote it (its row is
 *     added if missing); a schema object is a copy that did not complete
 *     (its key was drawn for this commit): removed; the intent is void;
 *   - staged entry present, canonical absent: the intent is void;
 *   - neither: logged, the intent is void.
 * A void intent's record (written before the promotion) is removed, unless
 * its hash object exists.
 * On s3 the staged entry is the local cache and the bucket's _staging/
 * together (a promotion PUTs files never uploaded from the cache), so a
 * partial tree put from the cache counts as "both present".
 * A job whose intent is void stays reserved with nothing moved; the mount
 * then queues it again (fs/jobs.c) and it runs from the start.
 */
#include "fs/fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct recover_ctx {
	struct sfs_backend *be;
	struct sfs_index *ix;
	int finished, undone;
};

static int recover_one(void *arg, struct sfs_job *j)
{
	struct recover_ctx *r = arg;
	struct sfs_bstat bs;
	char *skey = NULL, *meta = NULL;
	int rc, hash = strcmp(j->addressing, "hash") == 0;

	int known = sfs_index_object_metadata(r->ix, j->canonical, &meta) == 0;
	free(meta);
	if (j->state && strcmp(j->state, "copied") == 0) {
		/* the canonical object was complete: finish removing the staged copy */
		rc = sfs_backend_staged_remove(r->be, j->staging);
		if (rc && rc != -ENOENT)
			return sfs_err(rc, "cannot remove staged 'staging/%s'", j->staging);
		sfs_commit_forget_staged(r->ix, j->staging);
		goto finish;
	}
	if (asprintf(&skey, "_staging/%s", j->staging) < 0)
		return -ENOMEM;
	int staged = sfs_backend_stat(r->be, skey, &bs);
	int canon = sfs_backend_stat(r->be, j->canonical, &bs);
	free(skey);
	if ((staged && staged != -ENOENT) || (canon && canon != -ENOENT))
		return sfs_err(staged ? staged : canon, "cannot check commit intent %lld",
			       (long long)j->id);
	if (staged == -ENOENT && canon == 0)
		goto finish; /* moved (rename): record it */
	if (staged == 0 && canon == 0) {
		if (hash && !known) {
			/* content-addressed bytes are valid whoever put them there */
			rc = sfs_index_object_add(r->ix, j->canonical, "hash", j->metadata);
			if (rc)
				return rc;
		} else if (!hash) {
			/* a copy that did not complete: its key was drawn for this commit */
			rc = sfs_backend_remove(r->be, j->canonical);
			if (rc && rc != -ENOENT)
				return sfs_err(rc, "cannot remove partial '%s'", j->canonical);
			sfs_log(LOG_NOTICE, "removed partial copy '%s'", j->canonical);
		}
	}
	if (staged == -ENOENT)
		sfs_log(LOG_ERR, "commit intent %lld: neither 'staging/%s' nor '%s' exists",
			(long long)j->id, j->staging, j->canonical);
	/* the record written before the promotion describes no object now (a hash
	   object found complete, or known before, keeps it) */
	if (canon == -ENOENT || !hash) {
		rc = sfs_commit_record_remove(r->be, j->canonical);
		if (rc)
			return sfs_err(rc, "cannot remove the record of '%s'", j->canonical);
	}
	rc = sfs_index_job_abort(r->ix, j->id);
	if (!rc) {
		r->undone++;
		sfs_log(LOG_NOTICE,
			"undid interrupted commit of 'staging/%s' (still staged; it runs again)",
			j->staging);
	}
	return rc;
finish:
	rc = sfs_commit_record(r->be, r->ix, j, NULL);
	if (rc)
		return rc;
	/* dedup when the object was known before this commit recorded it */
	rc = sfs_index_job_finish(r->ix, j, known && hash);
	if (!rc) {
		r->finished++;
		sfs_log(LOG_NOTICE, "recovered commit of 'staging/%s' -> '%s'", j->staging,
			j->canonical);
	}
	return rc;
}

int sfs_recover(struct sfs_backend *be, struct sfs_index *ix)
{
	struct recover_ctx r = {.be = be, .ix = ix};

	return sfs_index_jobs(ix, recover_one, &r);
}
