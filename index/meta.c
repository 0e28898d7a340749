/* index/meta.c - receipt / metadata JSON and commit values, built by SQLite's JSON1 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "index/db.h"

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
	rc = ix_prep(ix, &st, m->hash_addressing ? hash_sql : schema_sql);
	if (rc)
		goto out;
	ix_bind_text(st, 1, m->hash);
	ix_bind_text(st, 2, m->path);
	ix_bind_text(st, 3, m->schema);
	ix_bind_text(st, 4, m->store);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)m->size);
	ix_bind_text(st, 6, m->staging);
	ix_bind_text(st, 7, m->md5);
	ix_bind_text(st, 8, m->ext);
	sqlite3_bind_int(st, 9, m->is_dir);
	if (m->is_dir)
		sqlite3_bind_int64(st, 10, m->item_count);
	else
		sqlite3_bind_null(st, 10);
	ix_bind_text(st, 11, m->timestamp);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = ix_xlate(ix, rc, "build metadata");
		goto out;
	}
	res = ix_col_dup(st, 0);
	rc = res ? 0 : -ENOMEM;
	if (!rc && !m->hash_addressing) {
		/* the content digest key: md5 for files, the DANDI checksum for directories */
		sqlite3_stmt *st2 = NULL;
		rc = ix_prep(ix, &st2, "SELECT json_set(?1, '$.' || ?2, ?3)");
		if (!rc) {
			ix_bind_text(st2, 1, res);
			ix_bind_text(st2, 2, m->is_dir ? "checksum" : "md5");
			ix_bind_text(st2, 3, m->is_dir ? m->checksum : m->md5);
			if (sqlite3_step(st2) == SQLITE_ROW) {
				free(res);
				res = ix_col_dup(st2, 0);
				rc = res ? 0 : -ENOMEM;
			} else {
				rc = ix_xlate(ix, sqlite3_errcode(ix->db), "build metadata");
			}
		}
		ix_finalize(ix, st2);
	}
out:
	ix_finalize(ix, st);
	pthread_mutex_unlock(&ix->lock);
	if (rc) {
		free(res);
		return rc;
	}
	*out = res;
	return 0;
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
