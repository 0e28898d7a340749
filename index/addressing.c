/* index/addressing.c - see addressing.h */
#include "index/addressing.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

static const char hexdigits[] = "0123456789abcdef";

/* ---- small helpers -------------------------------------------------------- */

/* Append n bytes of s at out[*pos], keeping out NUL-terminated. */
static int put(char *out, size_t outlen, size_t *pos, const char *s, size_t n)
{
	if (n >= outlen - *pos)
		return -ENAMETOOLONG;
	memcpy(out + *pos, s, n);
	*pos += n;
	out[*pos] = '\0';
	return 0;
}

static int puts0(char *out, size_t outlen, size_t *pos, const char *s)
{
	return put(out, outlen, pos, s, strlen(s));
}

/* 1 when every '/'-separated component of s[0..n) is at most SFS_SEGMENT_MAX bytes. */
static int segments_ok(const char *s, size_t n)
{
	size_t run = 0;

	for (size_t i = 0; i < n; i++) {
		run = s[i] == '/' ? 0 : run + 1;
		if (run > SFS_SEGMENT_MAX)
			return 0;
	}
	return 1;
}

/* Length of the valid UTF-8 sequence at s (1..4), 0 when invalid (RFC 3629). */
static size_t utf8_seq(const unsigned char *s, size_t avail, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0) {
		n = 2, c &= 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3, c &= 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4, c &= 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n > avail)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

static int utf8_valid(const char *s, size_t n)
{
	uint32_t cp;

	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq((const unsigned char *)s + i, n - i, &cp);
		if (!k)
			return 0;
		i += k;
	}
	return 1;
}

static int sqlite_errno(int rc)
{
	return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
}

/* A private in-memory connection for the JSON1 functions. */
static int json_db_open(sqlite3 **out)
{
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open_v2(":memory:", &db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		sqlite3_close(db);
		return sqlite_errno(rc);
	}
	*out = db;
	return 0;
}

/* ---- MD5 ------------------------------------------------------------------ */

int sfs_md5_init(struct sfs_md5 *m)
{
	EVP_MD_CTX *ctx = NULL;
	EVP_MD *md = NULL;
	int rc = -ENOMEM;

	ctx = EVP_MD_CTX_new();
	if (!ctx)
		goto out;
	md = EVP_MD_fetch(NULL, "MD5", NULL);
	if (!md) {
		rc = -ENOSYS;
		goto out;
	}
	if (!EVP_DigestInit_ex(ctx, md, NULL))
		goto out;
	m->ctx = ctx;
	ctx = NULL;
	rc = 0;
out:
	EVP_MD_free(md); /* the context holds its own reference */
	EVP_MD_CTX_free(ctx);
	return rc;
}

void sfs_md5_update(struct sfs_md5 *m, const void *buf, size_t n)
{
	if (n)
		(void)EVP_DigestUpdate(m->ctx, buf, n); /* cannot fail for an initialised MD5 */
}

void sfs_md5_final(struct sfs_md5 *m, unsigned char out[16])
{
	unsigned int len = 0;

	(void)EVP_DigestFinal_ex(m->ctx, out, &len);
	sfs_md5_release(m);
}

void sfs_md5_release(struct sfs_md5 *m)
{
	if (!m)
		return;
	EVP_MD_CTX_free(m->ctx);
	m->ctx = NULL;
}

int sfs_md5_copy(struct sfs_md5 *dst, const struct sfs_md5 *src)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (!ctx)
		return -ENOMEM;
	if (!EVP_MD_CTX_copy_ex(ctx, src->ctx)) {
		EVP_MD_CTX_free(ctx);
		return -ENOMEM;
	}
	dst->ctx = ctx;
	return 0;
}

void sfs_md5_hex(const unsigned char md5[16], char out[33])
{
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hexdigits[md5[i] >> 4];
		out[2 * i + 1] = hexdigits[md5[i] & 15];
	}
	out[32] = '\0';
}

/* MD5 of n bytes in one call. */
static int md5_buf(const void *buf, size_t n, unsigned char out[16])
{
	struct sfs_md5 m;
	int rc = sfs_md5_init(&m);

	if (rc)
		return rc;
	sfs_md5_update(&m, buf, n);
	sfs_md5_final(&m, out);
	return 0;
}

/* ---- content hashes, hash paths, tokens ----------------------------------- */

void sfs_hash_from_md5(const unsigned char md5[16], char out[27])
{
	static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
	unsigned int acc = 0;
	int bits = 0;
	size_t o = 0;

	for (int i = 0; i < 16; i++) {
		acc = ((acc << 8) | md5[i]) & 0xfff; /* at most 4 + 8 bits pending */
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[o++] = b32[(acc >> bits) & 31];
		}
	}
	if (bits)
		out[o++] = b32[(acc << (5 - bits)) & 31];
	out[o] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int sfs_hash_from_md5hex(const char *hex, char out[27])
{
	unsigned char md5[16];

	if (!hex || strlen(hex) != 32)
		return -EINVAL;
	for (int i = 0; i < 16; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		md5[i] = (unsigned char)(hi << 4 | lo);
	}
	sfs_hash_from_md5(md5, out);
	return 0;
}

int sfs_hash_path(const char *hash_prefix, const char *schema, const int *subfold, int n_subfold,
		  const char *hash, char *out, size_t outlen)
{
	size_t pos = 0, hlen, used = 0;
	int rc;

	if (!schema || !*schema || !hash || !*hash || n_subfold < 0 || (n_subfold && !subfold) ||
	    !out || !outlen)
		return -EINVAL;
	hlen = strlen(hash);
	for (int i = 0; i < n_subfold; i++) {
		if (subfold[i] <= 0 || (size_t)subfold[i] > hlen - used)
			return -EINVAL;
		used += (size_t)subfold[i];
	}
	if (!segments_ok(schema, strlen(schema)) || hlen > SFS_SEGMENT_MAX ||
	    (hash_prefix && !segments_ok(hash_prefix, strlen(hash_prefix))))
		return -ENAMETOOLONG;
	out[0] = '\0';
	if (hash_prefix && *hash_prefix) {
		rc = puts0(out, outlen, &pos, hash_prefix);
		if (!rc)
			rc = put(out, outlen, &pos, "/", 1);
		if (rc)
			return rc;
	}
	rc = puts0(out, outlen, &pos, schema);
	if (!rc)
		rc = put(out, outlen, &pos, "/", 1);
	used = 0;
	for (int i = 0; !rc && i < n_subfold; i++) {
		rc = put(out, outlen, &pos, hash + used, (size_t)subfold[i]);
		if (!rc)
			rc = put(out, outlen, &pos, "/", 1);
		used += (size_t)subfold[i];
	}
	if (!rc)
		rc = put(out, outlen, &pos, hash, hlen);
	return rc;
}

int sfs_token_new(int len, char *out)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char rnd[16];

	if (len < 4)
		len = 4;
	if (len > 16)
		len = 16;
	if (RAND_bytes(rnd, len) != 1)
		return -EIO;
	/* 64 symbols divide 256: masking keeps the distribution uniform */
	for (int i = 0; i < len; i++)
		out[i] = alphabet[rnd[i] & 63];
	out[len] = '\0';
	return 0;
}

/* ---- Python float repr ---------------------------------------------------- */

int sfs_float_repr(double v, char *out, size_t outlen)
{
	char buf[40], digits[24], r[SFS_FLOAT_REPR_MAX];
	size_t nd = 0, pos = 0;
	int exp, prec;
	const char *p;

	if (isnan(v))
		p = "nan";
	else if (isinf(v))
		p = v < 0 ? "-inf" : "inf";
	else
		p = NULL;
	if (p) {
		pos = strlen(p);
		memcpy(r, p, pos + 1);
		goto done;
	}
	/* shortest %e precision that reads back as the same double */
	for (prec = 0; prec < 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*e", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	/* buf is [-]d[.ddd]e(+|-)XX */
	for (p = buf; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	exp = (int)strtol(p + 1, NULL, 10);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	if (buf[0] == '-')
		r[pos++] = '-';
	if (exp < -4 || exp >= 16) {
		r[pos++] = digits[0];
		if (nd > 1) {
			r[pos++] = '.';
			memcpy(r + pos, digits + 1, nd - 1);
			pos += nd - 1;
		}
		pos += (size_t)snprintf(r + pos, sizeof(r) - pos, "e%c%02d", exp < 0 ? '-' : '+',
					exp < 0 ? -exp : exp);
	} else if (exp >= 0) {
		for (int i = 0; i <= exp; i++)
			r[pos++] = (size_t)i < nd ? digits[i] : '0';
		r[pos++] = '.';
		if (nd > (size_t)exp + 1) {
			memcpy(r + pos, digits + exp + 1, nd - (size_t)exp - 1);
			pos += nd - (size_t)exp - 1;
		} else {
			r[pos++] = '0';
		}
	} else {
		r[pos++] = '0';
		r[pos++] = '.';
		for (int i = 0; i < -exp - 1; i++)
			r[pos++] = '0';
		memcpy(r + pos, digits, nd);
		pos += nd;
	}
	r[pos] = '\0';
done:
	if (pos >= outlen)
		return -ERANGE;
	memcpy(out, r, pos + 1);
	return 0;
}

/* ---- primary-key encoding ------------------------------------------------- */

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-' || c == '~';
}

static int pct_put(char *out, size_t outlen, size_t *pos, const char *s, size_t n)
{
	static const char HEX[] = "0123456789ABCDEF";
	int rc = 0;

	for (size_t i = 0; !rc && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[3] = {'%', HEX[c >> 4], HEX[c & 15]};

		rc = is_unreserved(c) ? put(out, outlen, pos, s + i, 1)
				      : put(out, outlen, pos, e, 3);
	}
	return rc;
}

int sfs_encode_pk_value(const char *text, char *out, size_t outlen)
{
	size_t len = strlen(text), pos = 0, nchars = 0, cut = len;
	unsigned char md5[16];
	char hex[33];
	int rc;

	if (!outlen)
		return -ENAMETOOLONG;
	out[0] = '\0';
	/* characters are code points: count the bytes that start one */
	for (size_t i = 0; i < len; i++) {
		if (((unsigned char)text[i] & 0xc0) != 0x80 && nchars++ == 50)
			cut = i;
	}
	if (nchars <= 100 && !strpbrk(text, "/\\:*?\"<>|"))
		return put(out, outlen, &pos, text, len);
	if (nchars <= 100)
		return pct_put(out, outlen, &pos, text, len);
	rc = md5_buf(text, len, md5);
	if (rc)
		return rc;
	sfs_md5_hex(md5, hex);
	hex[8] = '\0';
	rc = pct_put(out, outlen, &pos, text, cut);
	if (!rc)
		rc = put(out, outlen, &pos, "_", 1);
	if (!rc)
		rc = put(out, outlen, &pos, hex, 8);
	return rc;
}

int sfs_pk_attr_encode(const struct sfs_pk_attr *a, char *out, size_t outlen)
{
	size_t pos = 0;

	if (a->type == SFS_PK_STRING)
		return sfs_encode_pk_value(a->text, out, outlen);
	if (!outlen)
		return -ENAMETOOLONG;
	return puts0(out, outlen, &pos, a->text);
}

const char *sfs_default_ext(const char *name)
{
	const char *base = strrchr(name, '/'), *dot;

	base = base ? base + 1 : name;
	dot = strrchr(base, '.');
	if (!dot || dot == base || dot[1] == '\0')
		return NULL;
	return dot;
}

/* ---- object paths --------------------------------------------------------- */

static int is_word(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/*
 * Next "{name}" placeholder of a pattern at or after *cur, like Python's
 * re.findall(r"\{(\w+)\}"): sets *name and *len, advances *cur past it.
 */
static int next_placeholder(const char **cur, const char **name, size_t *len)
{
	for (const char *p = *cur; *p; p++) {
		const char *q = p + 1;

		if (*p != '{')
			continue;
		while (is_word(*q))
			q++;
		if (q > p + 1 && *q == '}') {
			*name = p + 1;
			*len = (size_t)(q - p - 1);
			*cur = q + 1;
			return 1;
		}
	}
	return 0;
}

/* 1 when pattern has a placeholder {name}, looking only before stop (NULL = all). */
static int pattern_has(const char *pattern, const char *stop, const char *name, size_t len)
{
	const char *cur = pattern, *n;
	size_t l;

	while (next_placeholder(&cur, &n, &l) && (!stop || n < stop))
		if (l == len && !memcmp(n, name, len))
			return 1;
	return 0;
}

/* Append "<name>=<encoded value>/" as one checked segment. */
static int put_kv(char *out, size_t outlen, size_t *pos, const struct sfs_pk_attr *a)
{
	size_t start = *pos;
	int rc;

	rc = puts0(out, outlen, pos, a->name);
	if (!rc)
		rc = put(out, outlen, pos, "=", 1);
	if (!rc) {
		rc = sfs_pk_attr_encode(a, out + *pos, outlen - *pos);
		if (!rc)
			*pos += strlen(out + *pos);
	}
	if (!rc && *pos - start > SFS_SEGMENT_MAX)
		rc = -ENAMETOOLONG;
	if (!rc)
		rc = put(out, outlen, pos, "/", 1);
	return rc;
}

int sfs_object_path(const struct sfs_object_path_params *p, char *out, size_t outlen)
{
	const char *pat = p->partition_pattern, *cur, *name;
	size_t pos = 0, len, start;
	int rc = 0;

	if (!p->schema || !*p->schema || !p->table || !*p->table || !p->field || !*p->field ||
	    !p->token || !*p->token || (p->nkey && !p->key) || !out || !outlen)
		return -EINVAL;
	out[0] = '\0';
	if (p->schema_prefix && *p->schema_prefix) {
		if (!segments_ok(p->schema_prefix, strlen(p->schema_prefix)))
			return -ENAMETOOLONG;
		rc = puts0(out, outlen, &pos, p->schema_prefix);
		if (!rc)
			rc = put(out, outlen, &pos, "/", 1);
	}
	/* partition attributes, in pattern order, each once, only those in the key */
	for (cur = pat; !rc && pat && next_placeholder(&cur, &name, &len);) {
		if (pattern_has(pat, name, name, len))
			continue;
		for (size_t i = 0; i < p->nkey; i++) {
			if (strlen(p->key[i].name) == len && !memcmp(p->key[i].name, name, len)) {
				rc = put_kv(out, outlen, &pos, &p->key[i]);
				break;
			}
		}
	}
	if (rc)
		return rc;
	if (strlen(p->schema) > SFS_SEGMENT_MAX || strlen(p->table) > SFS_SEGMENT_MAX)
		return -ENAMETOOLONG;
	rc = puts0(out, outlen, &pos, p->schema);
	if (!rc)
		rc = put(out, outlen, &pos, "/", 1);
	if (!rc)
		rc = puts0(out, outlen, &pos, p->table);
	if (!rc)
		rc = put(out, outlen, &pos, "/", 1);
	for (size_t i = 0; !rc && i < p->nkey; i++) {
		if (pat && pattern_has(pat, NULL, p->key[i].name, strlen(p->key[i].name)))
			continue;
		rc = put_kv(out, outlen, &pos, &p->key[i]);
	}
	if (rc)
		return rc;
	start = pos;
	rc = puts0(out, outlen, &pos, p->field);
	if (!rc)
		rc = put(out, outlen, &pos, "_", 1);
	if (!rc)
		rc = puts0(out, outlen, &pos, p->token);
	if (!rc && p->ext)
		rc = puts0(out, outlen, &pos, p->ext);
	if (!rc && pos - start > SFS_SEGMENT_MAX)
		rc = -ENAMETOOLONG;
	return rc;
}

/* ---- the commit xattr ----------------------------------------------------- */

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
		if (!utf8_valid(s, n))
			return reject(err, errlen, "key '%s': value is not valid UTF-8", a->name);
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
		rc = sqlite_errno(rc);
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
		rc = sqlite_errno(rc);
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
		if (!utf8_valid(v, n))
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
	rc = json_db_open(&db);
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
	rc = sqlite_errno(rc);
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

/* ---- DANDI zarr checksum -------------------------------------------------- */

struct zc_file {
	char *path;
	char md5[33];
	uint64_t size;
};

struct sfs_zarr_checksum {
	struct zc_file *files;
	size_t n, cap;
};

/* A growable string; len excludes the NUL. */
struct zbuf {
	char *p;
	size_t len, cap;
};

static int zbuf_put(struct zbuf *b, const char *s, size_t n)
{
	if (n >= b->cap - b->len || !b->p) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (n >= cap - b->len) {
			if (cap > SIZE_MAX / 2)
				return -ENOMEM;
			cap *= 2;
		}
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* Append JSON text s with every byte outside ' '..'~' as \uXXXX (Python ensure_ascii). */
static int zbuf_put_ascii(struct zbuf *b, const char *s, size_t n)
{
	size_t i = 0, run;
	uint32_t cp;
	char e[16];
	int rc = 0;

	while (!rc && i < n) {
		for (run = 0; i + run < n && s[i + run] >= ' ' && s[i + run] <= '~'; run++)
			;
		rc = zbuf_put(b, s + i, run);
		i += run;
		if (rc || i == n)
			break;
		run = utf8_seq((const unsigned char *)s + i, n - i, &cp);
		if (!run)
			return -EINVAL;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			snprintf(e, sizeof(e), "\\u%04x\\u%04x", 0xd800 + ((cp >> 10) & 0x3ff),
				 0xdc00 + (cp & 0x3ff));
		} else {
			snprintf(e, sizeof(e), "\\u%04x", (unsigned int)cp);
		}
		rc = zbuf_put(b, e, strlen(e));
		i += run;
	}
	return rc;
}

int sfs_zarr_checksum_new(struct sfs_zarr_checksum **out)
{
	struct sfs_zarr_checksum *z = calloc(1, sizeof(*z));

	if (!z)
		return -ENOMEM;
	*out = z;
	return 0;
}

int sfs_zarr_checksum_add(struct sfs_zarr_checksum *z, const char *relpath, const char md5hex[33],
			  uint64_t size)
{
	size_t len, seg = 0;
	struct zc_file *f;

	if (!relpath || !md5hex || size > INT64_MAX)
		return -EINVAL;
	len = strlen(relpath);
	if (!len || !utf8_valid(relpath, len))
		return -EINVAL;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && relpath[i] != '/')
			continue;
		/* segment relpath[seg..i) */
		if (i == seg || (i - seg == 1 && relpath[seg] == '.') ||
		    (i - seg == 2 && relpath[seg] == '.' && relpath[seg + 1] == '.'))
			return -EINVAL;
		seg = i + 1;
	}
	if (strlen(md5hex) != 32 || strspn(md5hex, "0123456789abcdef") != 32)
		return -EINVAL;
	if (z->n == z->cap) {
		size_t cap = z->cap ? z->cap * 2 : 64;
		void *p = cap < SIZE_MAX / sizeof(*z->files) ? realloc(z->files, cap * sizeof(*f))
							     : NULL;
		if (!p)
			return -ENOMEM;
		z->files = p;
		z->cap = cap;
	}
	f = &z->files[z->n];
	f->path = malloc(len + 1);
	if (!f->path)
		return -ENOMEM;
	memcpy(f->path, relpath, len + 1);
	memcpy(f->md5, md5hex, 33);
	f->size = size;
	z->n++;
	return 0;
}

/*
 * Order paths component by component ('/' sorts before every other byte,
 * the end of a path before '/'): the files of one directory are contiguous,
 * each subtree is contiguous, and names compare in byte order.
 */
static int zc_cmp(const void *a, const void *b)
{
	const unsigned char *x = (const unsigned char *)((const struct zc_file *)a)->path;
	const unsigned char *y = (const unsigned char *)((const struct zc_file *)b)->path;

	for (;; x++, y++) {
		int cx = *x == '/' ? 1 : *x ? *x + 1 : 0;
		int cy = *y == '/' ? 1 : *y ? *y + 1 : 0;

		if (cx != cy || !cx)
			return cx - cy;
	}
}

struct zc_run {
	sqlite3_stmt *entry; /* json_object('digest',?1,'name',?2,'size',?3) */
};

static int zc_entry(struct zc_run *r, struct zbuf *b, const char *digest, const char *name,
		    size_t nlen, uint64_t size)
{
	sqlite3_stmt *st = r->entry;
	int rc;

	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, digest, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, (int)nlen, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)size);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return sqlite_errno(rc);
	rc = 0;
	if (b->len)
		rc = zbuf_put(b, ",", 1);
	if (!rc)
		rc = zbuf_put_ascii(b, (const char *)sqlite3_column_text(st, 0),
				    (size_t)sqlite3_column_bytes(st, 0));
	sqlite3_reset(st);
	return rc;
}

/* Checksum of the directory holding files[lo..hi), whose paths continue at byte off. */
static int zc_dir(struct zc_run *r, const struct zc_file *files, size_t lo, size_t hi, size_t off,
		  char digest[SFS_ZARR_CHECKSUM_MAX], uint64_t *count, uint64_t *size)
{
	struct zbuf dirs = {0}, fls = {0}, man = {0};
	uint64_t total = 0, n = 0;
	unsigned char md5[16];
	char hex[33];
	int rc = 0;

	for (size_t i = lo; !rc && i < hi;) {
		const char *name = files[i].path + off, *slash = strchr(name, '/');
		char sub[SFS_ZARR_CHECKSUM_MAX];
		uint64_t c, s;
		size_t j, nlen;

		if (!slash) {
			if (files[i].size > INT64_MAX - total) {
				rc = -EOVERFLOW;
				break;
			}
			rc = zc_entry(r, &fls, files[i].md5, name, strlen(name), files[i].size);
			total += files[i].size;
			n++;
			i++;
			continue;
		}
		nlen = (size_t)(slash - name);
		for (j = i + 1; j < hi; j++) {
			const char *o = files[j].path + off;
			if (strncmp(o, name, nlen) || o[nlen] != '/')
				break;
		}
		rc = zc_dir(r, files, i, j, off + nlen + 1, sub, &c, &s);
		if (!rc && s > INT64_MAX - total)
			rc = -EOVERFLOW;
		if (!rc)
			rc = zc_entry(r, &dirs, sub, name, nlen, s);
		total += s;
		n += c;
		i = j;
	}
	if (!rc)
		rc = zbuf_put(&man, "{\"directories\":[", 16);
	if (!rc && dirs.len)
		rc = zbuf_put(&man, dirs.p, dirs.len);
	if (!rc)
		rc = zbuf_put(&man, "],\"files\":[", 11);
	if (!rc && fls.len)
		rc = zbuf_put(&man, fls.p, fls.len);
	if (!rc)
		rc = zbuf_put(&man, "]}", 2);
	if (!rc)
		rc = md5_buf(man.p, man.len, md5);
	if (!rc) {
		sfs_md5_hex(md5, hex);
		snprintf(digest, SFS_ZARR_CHECKSUM_MAX, "%s-%llu--%llu", hex, (unsigned long long)n,
			 (unsigned long long)total);
		*count = n;
		*size = total;
	}
	free(dirs.p);
	free(fls.p);
	free(man.p);
	return rc;
}

int sfs_zarr_checksum_final(struct sfs_zarr_checksum *z, char *out, size_t outlen)
{
	static const char sql[] = "SELECT json_object('digest', ?1, 'name', ?2, 'size', ?3)";
	struct zc_run r = {NULL};
	char digest[SFS_ZARR_CHECKSUM_MAX];
	uint64_t count, size;
	sqlite3 *db = NULL;
	int rc;

	if (z->n)
		qsort(z->files, z->n, sizeof(*z->files), zc_cmp);
	/* sorted: a duplicate or a file that is also a directory sits right before its twin */
	for (size_t i = 0; i + 1 < z->n; i++) {
		size_t l = strlen(z->files[i].path);
		const char *next = z->files[i + 1].path;

		if (!strncmp(z->files[i].path, next, l) && (next[l] == '\0' || next[l] == '/'))
			return -EINVAL;
	}
	rc = json_db_open(&db);
	if (rc)
		goto out;
	rc = sqlite3_prepare_v2(db, sql, -1, &r.entry, NULL);
	if (rc != SQLITE_OK) {
		rc = sqlite_errno(rc);
		goto out;
	}
	rc = zc_dir(&r, z->files, 0, z->n, 0, digest, &count, &size);
	if (rc)
		goto out;
	if (strlen(digest) >= outlen) {
		rc = -ERANGE;
		goto out;
	}
	memcpy(out, digest, strlen(digest) + 1);
out:
	sqlite3_finalize(r.entry);
	sqlite3_close(db);
	return rc;
}

void sfs_zarr_checksum_free(struct sfs_zarr_checksum *z)
{
	if (!z)
		return;
	for (size_t i = 0; i < z->n; i++)
		free(z->files[i].path);
	free(z->files);
	free(z);
}

void sfs_now_iso(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%06ld+00:00", ts.tv_nsec / 1000);
}
