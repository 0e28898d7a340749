/* index/staged.c - staged files a backend has stored (staged, staged_xattrs) */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "index/db.h"

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
	rc = ix_prep(ix, &st, "INSERT INTO staged_xattrs(rel,name,value) VALUES(?1,?2,?3)");
	for (size_t i = 0; !rc && i < r->n_xattrs; i++) {
		sqlite3_reset(st);
		ix_bind_text(st, 1, rel);
		ix_bind_text(st, 2, r->xattrs[i].name);
		sqlite3_bind_blob(st, 3, r->xattrs[i].value ? r->xattrs[i].value : "",
				  (int)r->xattrs[i].len, SQLITE_STATIC);
		rc = ix_xlate(ix, sqlite3_step(st), "record a staged file's xattr");
	}
	ix_finalize(ix, st);
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
	rc = ix_exec(ix, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	/* the old row (or its xattrs) go first; a row's xattrs go with it (ON DELETE CASCADE) */
	rc = ix_run_bound(ix,
			  meta_only ? "DELETE FROM staged_xattrs WHERE rel=?1"
				    : "DELETE FROM staged WHERE rel=?1",
			  1, (const char *const[]){rel});
	if (!rc)
		rc = ix_prep(
			ix, &st,
			meta_only
				? "UPDATE staged SET mode=?3 WHERE rel=?1"
				: "INSERT INTO staged(rel,size,mode,mtime_ns) VALUES(?1,?2,?3,?4)");
	if (!rc) {
		ix_bind_text(st, 1, rel);
		if (!meta_only) {
			sqlite3_bind_int64(st, 2, (sqlite3_int64)r->size);
			sqlite3_bind_int64(st, 4, r->mtime_ns);
		}
		sqlite3_bind_int64(st, 3, (sqlite3_int64)r->mode);
		rc = ix_xlate(ix, sqlite3_step(st), "record a stored staged file");
		have = !rc && sqlite3_changes(ix->db) > 0; /* meta_only: no row, nothing to do */
	}
	ix_finalize(ix, st);
	if (!rc && have)
		rc = insert_xattrs(ix, rel, r);
	rc = ix_tx_end(ix, rc);
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
	int rc =
		ix_prep(ix, &st, "SELECT name,value FROM staged_xattrs WHERE rel=?1 ORDER BY name");
	int step;

	if (rc)
		return rc;
	ix_bind_text(st, 1, rel);
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
		x->name = ix_col_dup(st, 0);
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
		rc = ix_xlate(ix, step, "read a staged file's xattrs");
	ix_finalize(ix, st);
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
	rc = ix_prep(ix, &st, "SELECT size,mode,mtime_ns FROM staged WHERE rel=?1");
	if (!rc) {
		ix_bind_text(st, 1, rel);
		int step = sqlite3_step(st);
		if (step == SQLITE_ROW) {
			memset(out, 0, sizeof(*out));
			out->size = (uint64_t)sqlite3_column_int64(st, 0);
			out->mode = (unsigned)sqlite3_column_int64(st, 1);
			out->mtime_ns = sqlite3_column_int64(st, 2);
			ix_finalize(ix, st);
			st = NULL;
			rc = staged_xattrs(ix, rel, out);
			if (rc)
				sfs_staged_release(out);
		} else {
			rc = step == SQLITE_DONE ? -ENOENT
						 : ix_xlate(ix, step, "look up a staged file");
		}
	}
	ix_finalize(ix, st);
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_staged_forget(struct sfs_index *ix, const char *rel)
{
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = ix_run_bound(ix, "DELETE FROM staged WHERE " UNDER("rel", "?1"), 1,
			  (const char *const[]){rel});
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_staged_move(struct sfs_index *ix, const char *from, const char *to)
{
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = ix_exec(ix, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	/* what the destination held is replaced (rename semantics) */
	rc = ix_run_bound(ix, "DELETE FROM staged WHERE " UNDER("rel", "?1"), 1,
			  (const char *const[]){to});
	if (!rc)
		rc = ix_run_bound(ix,
				  "UPDATE staged SET rel=?2||substr(rel,length(?1)+1) WHERE " UNDER(
					  "rel", "?1"),
				  2, (const char *const[]){from, to});
	rc = ix_tx_end(ix, rc);
out:
	pthread_mutex_unlock(&ix->lock);
	return rc;
}

int sfs_index_staged_count(struct sfs_index *ix, int64_t *n)
{
	char *s = NULL;
	int rc;

	rc = ix_query_text(ix, "SELECT count(*) FROM staged", 0, NULL, &s);
	if (!rc)
		*n = strtoll(s, NULL, 10);
	free(s);
	return rc;
}
