/* index/receipts.c - commit receipts (receipts) */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "index/db.h"

int sfs_index_receipt_get(struct sfs_index *ix, const char *dir, const char *name, char **json)
{
	return ix_query_text(ix, "SELECT metadata FROM receipts WHERE dir=?1 AND name=?2", 2,
			     (const char *const[]){dir, name}, json);
}

int sfs_index_receipt_delete(struct sfs_index *ix, const char *dir, const char *name)
{
	int rc;

	pthread_mutex_lock(&ix->lock);
	rc = ix_run_bound(ix, "DELETE FROM receipts WHERE dir=?1 AND name=?2", 2,
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
	rc = ix_prep(ix, &st,
		     "SELECT name, length(CAST(metadata AS BLOB)) FROM receipts WHERE dir=?1 "
		     "ORDER BY name");
	if (!rc)
		ix_bind_text(st, 1, dir);
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
		names[n] = ix_col_dup(st, 0);
		sizes[n] = sqlite3_column_int64(st, 1);
		n++;
	}
	ix_finalize(ix, st);
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
	int rc = ix_query_text(ix, "SELECT 1 FROM receipts WHERE dir=?1 LIMIT 1", 1,
			       (const char *const[]){dir}, &s);

	free(s);
	if (rc == -ENOENT)
		return 0;
	return rc ? rc : 1;
}
