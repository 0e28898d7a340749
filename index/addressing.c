/* index/addressing.c - see addressing.h */
#include "index/addressing.h"
#include "index/addressing_priv.h"

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
size_t sfs_ad_utf8_seq(const unsigned char *s, size_t avail, uint32_t *cp)
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

int sfs_ad_utf8_valid(const char *s, size_t n)
{
	uint32_t cp;

	for (size_t i = 0; i < n;) {
		size_t k = sfs_ad_utf8_seq((const unsigned char *)s + i, n - i, &cp);
		if (!k)
			return 0;
		i += k;
	}
	return 1;
}

int sfs_first_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return (unsigned char)s[i];
	return -1;
}

int sfs_ad_sqlite_errno(int rc)
{
	return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
}

/* A private in-memory connection for the JSON1 functions. */
int sfs_ad_json_db(sqlite3 **out)
{
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open_v2(":memory:", &db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		sqlite3_close(db);
		return sfs_ad_sqlite_errno(rc);
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
int sfs_ad_md5_buf(const void *buf, size_t n, unsigned char out[16])
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
	rc = sfs_ad_md5_buf(text, len, md5);
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

void sfs_now_iso(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%06ld+00:00", ts.tv_nsec / 1000);
}
