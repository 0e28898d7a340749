/* index/commit_spec.c - the commit xattr's VALUE, parsed (see index/addressing.h). */
#include "index/addressing.h"
#include "index/addressing_priv.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reject(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int reject(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* s[0..n) matches first-set then rest-set*, with min..max bytes. */
static int matches(const char *s, size_t n, const char *first, const char *rest, size_t max)
{
	if (n < 1 || n > max || !s[0] || !strchr(first, s[0]))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!s[i] || !strchr(rest, s[i]))
			return 0;
	return 1;
}

#define LOWER "abcdefghijklmnopqrstuvwxyz"
#define UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define DIGIT "0123456789"

/* Column i as a string without an embedded NUL; NULL (and *n = 0) when it has one. */
static const char *col_text(sqlite3_stmt *st, int i, size_t *n)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	size_t len = (size_t)sqlite3_column_bytes(st, i);

	if (!s || strlen(s) != len) {
		*n = 0;
		return NULL;
	}
	*n = len;
	return s;
}

static int strdup_to(char **dst, const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (!d)
		return -ENOMEM;
	memcpy(d, s, n);
	d[n] = '\0';
	*dst = d;
	return 0;
}

enum {
	M_ADDRESSING = 1,
	M_FIELD = 2,
	M_KEY = 4,
	M_EXT = 8,
	M_TOKEN = 16,
	M_TABLE = 32,
	M_ASYNC = 64
};

/* Parse one key attribute value into a (name already set). */
static int parse_key_value(sqlite3_stmt *st, struct sfs_pk_attr *a, char *err, size_t errlen)
{
	const char *type = (const char *)sqlite3_column_text(st, 1), *s;
	char f[SFS_FLOAT_REPR_MAX];
	size_t n;
	double d;

	if (!strcmp(type, "integer")) {
		s = col_text(st, 3, &n); /* the JSON text: exact for any size */
		if (!s)
			return -EIO;
		a->type = SFS_PK_INT;
		if (!strcmp(s, "-0"))
			s = "0", n = 1;
		return strdup_to(&a->text, s, n);
	}
	if (!strcmp(type, "real")) {
		s = col_text(st, 3, &n);
		if (!s)
			return -EIO;
		d = strtod(s, NULL); /* correctly rounded, as Python's float() */
		if (!isfinite(d))
			return reject(err, errlen, "key '%s': number out of range", a->name);
		a->type = SFS_PK_FLOAT;
		if (sfs_float_repr(d, f, sizeof(f)))
			return -EIO;
		return strdup_to(&a->text, f, strlen(f));
	}
	if (!strcmp(type, "true") || !strcmp(type, "false")) {
		a->type = SFS_PK_BOOL;
		s = type[0] == 't' ? "True" : "False";
		return strdup_to(&a->text, s, strlen(s));
	}
	if (!strcmp(type, "text")) {
		s = col_text(st, 2, &n);
		if (!s)
			return reject(err, errlen, "key '%s': value contains NUL", a->name);
		if (!sfs_ad_utf8_valid(s, n))
			return reject(err, errlen, "key '%s': value is not valid UTF-8", a->name);
		/* raw in the path (DataJoint encodes none of them), and in a bucket's
		 * listings, which XML 1.0 cannot carry: refused, as NUL is */
		int ctl = sfs_first_control(s, n);
		if (ctl >= 0)
			return reject(err, errlen,
				      "key '%s': value contains a control character (0x%02x)",
				      a->name, ctl);
		a->type = SFS_PK_STRING;
		return strdup_to(&a->text, s, n);
	}
	return reject(err, errlen, "key '%s': value must be a string, number or boolean", a->name);
}

static int parse_key(sqlite3 *db, const char *value, size_t len, struct sfs_commit_spec *s,
		     char *err, size_t errlen)
{
	static const char sql[] =
		"SELECT key, type, value, ?1 -> fullkey FROM json_each(?1, '$.key')";
	sqlite3_stmt *st = NULL;
	const char *name;
	size_t n, cap = 0;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = sfs_ad_sqlite_errno(rc);
		goto out;
	}
	sqlite3_bind_text(st, 1, value, (int)len, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct sfs_pk_attr *a;

		name = col_text(st, 0, &n);
		if (!name || !matches(name, n, "_" LOWER UPPER, "_" LOWER UPPER DIGIT, SIZE_MAX)) {
			rc = reject(err, errlen, "key: bad attribute name '%.64s'",
				    name ? name : "");
			goto out;
		}
		for (size_t i = 0; i < s->nkey; i++) {
			if (!strcmp(s->key[i].name, name)) {
				rc = reject(err, errlen, "key: duplicate attribute '%s'", name);
				goto out;
			}
		}
		if (s->nkey == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			void *k = ncap < SIZE_MAX / sizeof(*s->key)
					  ? realloc(s->key, ncap * sizeof(*s->key))
					  : NULL;
			if (!k) {
				rc = -ENOMEM;
				goto out;
			}
			s->key = k;
			cap = ncap;
		}
		a = &s->key[s->nkey];
		memset(a, 0, sizeof(*a));
		s->nkey++;
		rc = strdup_to(&a->name, name, n);
		if (!rc)
			rc = parse_key_value(st, a, err, errlen);
		if (rc)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		rc = sfs_ad_sqlite_errno(rc);
		goto out;
	}
	rc = s->nkey ? 0 : reject(err, errlen, "key must not be empty");
out:
	sqlite3_finalize(st);
	return rc;
}

/* One top-level member of the JSON form (row of json_each). */
static int parse_member(sqlite3_stmt *st, struct sfs_commit_spec *s, int *seen, int *addr_hash,
			char *err, size_t errlen)
{
	const char *key, *type = (const char *)sqlite3_column_text(st, 1), *v;
	size_t kn, n;
	int bit, is_text = !strcmp(type, "text");

	key = col_text(st, 0, &kn);
	if (!key)
		return reject(err, errlen, "member name contains NUL");
	if (!strcmp(key, "addressing"))
		bit = M_ADDRESSING;
	else if (!strcmp(key, "field"))
		bit = M_FIELD;
	else if (!strcmp(key, "key"))
		bit = M_KEY;
	else if (!strcmp(key, "ext"))
		bit = M_EXT;
	else if (!strcmp(key, "token"))
		bit = M_TOKEN;
	else if (!strcmp(key, "table"))
		bit = M_TABLE;
	else if (!strcmp(key, "async"))
		bit = M_ASYNC;
	else
		return reject(err, errlen, "unknown member '%.64s'", key);
	if (*seen & bit)
		return reject(err, errlen, "duplicate member '%s'", key);
	*seen |= bit;

	if (bit == M_ASYNC) {
		if (strcmp(type, "true") && strcmp(type, "false"))
			return reject(err, errlen, "async must be true or false");
		s->async = !strcmp(type, "true");
		return 0;
	}

	if (bit == M_KEY)
		return strcmp(type, "object") ? reject(err, errlen, "key must be an object") : 0;
	if (bit == M_EXT && !strcmp(type, "null")) {
		s->ext_given = 1;
		return 0;
	}
	if (!is_text)
		return reject(err, errlen, "%s must be a string", key);
	v = col_text(st, 2, &n);
	if (!v)
		return reject(err, errlen, "%s contains NUL", key);
	switch (bit) {
	case M_ADDRESSING:
		if (strcmp(v, "hash") && strcmp(v, "schema"))
			return reject(err, errlen, "addressing must be \"hash\" or \"schema\"");
		*addr_hash = !strcmp(v, "hash");
		return 0;
	case M_FIELD:
		if (!matches(v, n, LOWER, LOWER DIGIT "_", SIZE_MAX))
			return reject(err, errlen, "field must match [a-z][a-z0-9_]*");
		return strdup_to(&s->field, v, n);
	case M_EXT:
		s->ext_given = 1;
		if (memchr(v, '/', n))
			return reject(err, errlen, "ext must not contain '/'");
		if (!sfs_ad_utf8_valid(v, n))
			return reject(err, errlen, "ext is not valid UTF-8");
		if (!n)
			return 0;
		if (v[0] == '.')
			return strdup_to(&s->ext, v, n);
		if (!(s->ext = malloc(n + 2)))
			return -ENOMEM;
		s->ext[0] = '.';
		memcpy(s->ext + 1, v, n + 1);
		return 0;
	case M_TOKEN:
		if (!matches(v, n, LOWER UPPER DIGIT "_-", LOWER UPPER DIGIT "_-", 64))
			return reject(err, errlen, "token must match [A-Za-z0-9_-]{1,64}");
		return strdup_to(&s->token, v, n);
	default: /* M_TABLE */
		if (!matches(v, n, LOWER UPPER DIGIT "_#", LOWER UPPER DIGIT "_#", 64))
			return reject(err, errlen, "table must match [A-Za-z0-9_#]{1,64}");
		return strdup_to(&s->table, v, n);
	}
}

static int parse_json(const char *value, size_t len, struct sfs_commit_spec *s, char *err,
		      size_t errlen)
{
	static const char sql_type[] = "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) END";
	static const char sql_each[] = "SELECT key, type, value FROM json_each(?1)";
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	const char *type;
	int rc, seen = 0, addr_hash = 0;

	if (len > INT32_MAX)
		return reject(err, errlen, "value too long");
	rc = sfs_ad_json_db(&db);
	if (rc)
		goto out;
	rc = sqlite3_prepare_v2(db, sql_type, -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sqlerr;
	sqlite3_bind_text(st, 1, value, (int)len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		goto sqlerr;
	type = (const char *)sqlite3_column_text(st, 0);
	if (!type) {
		rc = reject(err, errlen, "not \"hash\" and not valid JSON");
		goto out;
	}
	if (strcmp(type, "object")) {
		rc = reject(err, errlen, "not a JSON object");
		goto out;
	}
	sqlite3_finalize(st);
	rc = sqlite3_prepare_v2(db, sql_each, -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto sqlerr;
	sqlite3_bind_text(st, 1, value, (int)len, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = parse_member(st, s, &seen, &addr_hash, err, errlen);
		if (rc)
			goto out;
	}
	if (rc != SQLITE_DONE)
		goto sqlerr;
	if (addr_hash) {
		rc = (seen & ~M_ASYNC) == M_ADDRESSING
			     ? 0
			     : reject(err, errlen, "hash addressing takes no other members");
		s->hash = 1;
		goto out;
	}
	if (!(seen & M_FIELD)) {
		rc = reject(err, errlen, "missing \"field\"");
		goto out;
	}
	if (!(seen & M_KEY)) {
		rc = reject(err, errlen, "missing \"key\"");
		goto out;
	}
	rc = parse_key(db, value, len, s, err, errlen);
	goto out;
sqlerr:
	rc = sfs_ad_sqlite_errno(rc);
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

/*
 * 1 when JSON text has a \u0000 escape.  Backslashes occur only inside
 * strings and each starts a two-byte escape, so skipping pairs is exact.
 * Needed because SQLite before 3.45 silently cuts a string at \u0000.
 */
static int has_escaped_nul(const char *s, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u' && n - i >= 6 && !memcmp(s + i + 2, "0000", 4))
			return 1;
		i++;
	}
	return 0;
}

int sfs_commit_spec_parse(const char *value, size_t len, struct sfs_commit_spec *out, char *err,
			  size_t errlen)
{
	struct sfs_commit_spec s;
	size_t n = len;
	int rc;

	memset(&s, 0, sizeof(s));
	if (err && errlen)
		err[0] = '\0';
	if (!value)
		return reject(err, errlen, "no value");
	if (len > SFS_COMMIT_VALUE_MAX)
		return reject(err, errlen, "value longer than %u bytes", SFS_COMMIT_VALUE_MAX);
	if (memchr(value, '\0', len))
		return reject(err, errlen, "value contains a NUL byte");
	if (has_escaped_nul(value, len))
		return reject(err, errlen, "value contains an escaped NUL (\\u0000)");
	while (n && strchr(" \t\r\n", value[n - 1]))
		n--;
	if (n == 4 && !memcmp(value, "hash", 4)) {
		s.hash = 1;
		*out = s;
		return 0;
	}
	rc = parse_json(value, len, &s, err, errlen);
	if (rc) {
		sfs_commit_spec_release(&s);
		return rc;
	}
	*out = s;
	return 0;
}

void sfs_commit_spec_release(struct sfs_commit_spec *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nkey; i++) {
		free(s->key[i].name);
		free(s->key[i].text);
	}
	free(s->key);
	free(s->field);
	free(s->ext);
	free(s->token);
	free(s->table);
	memset(s, 0, sizeof(*s));
}
