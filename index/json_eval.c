/* index/json_eval.c - one SQL expression over JSON text (SQLite's JSON1); see snapdb.h */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "index/snapdb.h"

static pthread_mutex_t json_lock = PTHREAD_MUTEX_INITIALIZER;
static sqlite3 *json_db; /* json_lock; an in-memory connection, kept */

int sfs_json_eval(const char *expr, int n, const char *const *args, char **out)
{
	sqlite3_stmt *s = NULL;
	char *sql = NULL;
	int rc = 0;

	if (asprintf(&sql, "SELECT %s", expr) < 0)
		return -ENOMEM;
	pthread_mutex_lock(&json_lock);
	if (!json_db &&
	    sqlite3_open_v2(":memory:", &json_db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		sqlite3_close(json_db);
		json_db = NULL;
		rc = -ENOMEM;
	}
	if (!rc && sqlite3_prepare_v2(json_db, sql, -1, &s, NULL) != SQLITE_OK)
		rc = sfs_err(-EINVAL, "json: %s: %s", expr, sqlite3_errmsg(json_db));
	for (int i = 0; !rc && i < n; i++)
		if (args[i])
			sqlite3_bind_text(s, i + 1, args[i], -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(s, i + 1);
	if (!rc) {
		int r = sqlite3_step(s);
		const char *t = r == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
		if (r != SQLITE_ROW)
			rc = r == SQLITE_DONE ? -ENOENT : -EINVAL; /* malformed JSON */
		else if (!t)
			rc = -ENOENT;
		else
			rc = (*out = strdup(t)) ? 0 : -ENOMEM;
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&json_lock);
	free(sql);
	return rc;
}
