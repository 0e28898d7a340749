/* backend/sigv4.c - AWS Signature Version 4; see sigv4.h */
#include "backend/sigv4.h"

#include "backend/s3_buf.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static void encode_into(struct sfs_buf *b, const char *s, size_t n, int encode_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_unreserved(c) || (c == '/' && !encode_slash)) {
			sfs_buf_addc(b, (char)c);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			sfs_buf_add(b, e, 3);
		}
	}
}

int sfs_sigv4_uri_encode(const char *s, size_t n, int encode_slash, char **out)
{
	struct sfs_buf b;

	sfs_buf_init(&b, 0);
	encode_into(&b, s, n, encode_slash);
	if (sfs_buf_err(&b)) {
		sfs_buf_release(&b);
		return -ENOMEM;
	}
	*out = sfs_buf_detach(&b);
	return *out ? 0 : -ENOMEM;
}

void sfs_sigv4_hex(const unsigned char *raw, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[2 * n] = '\0';
}

void sfs_sigv4_base64(const unsigned char *raw, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
}

void sfs_sigv4_sha256_hex(const void *buf, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	EVP_Digest(buf, n, md, &len, EVP_sha256(), NULL);
	sfs_sigv4_hex(md, len, out);
}

void sfs_sigv4_amz_date(time_t t, char out[17])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* One query parameter or header after encoding / lowercasing. */
struct item {
	char *name;
	char *value;
	size_t order;
};

static int cmp_item(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	/* query: sort by value too; headers pass value=NULL and keep request order */
	if (x->value && y->value) {
		c = strcmp(x->value, y->value);
		if (c)
			return c;
	}
	return x->order < y->order ? -1 : x->order > y->order;
}

static void free_items(struct item *it, size_t n)
{
	if (!it)
		return;
	for (size_t i = 0; i < n; i++) {
		free(it[i].name);
		free(it[i].value);
	}
	free(it);
}

/* Trim and collapse runs of spaces/tabs into one space. */
static char *canon_header_value(const char *v)
{
	struct sfs_buf b;
	int space = 0;

	sfs_buf_init(&b, 0);
	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') {
			space = 1;
			continue;
		}
		if (space && b.len)
			sfs_buf_addc(&b, ' ');
		space = 0;
		sfs_buf_addc(&b, *v);
	}
	if (sfs_buf_err(&b)) {
		sfs_buf_release(&b);
		return NULL;
	}
	return sfs_buf_detach(&b);
}

int sfs_sigv4_canonical_request(const struct sfs_sigv4_request *r, char **out,
				char **signed_headers)
{
	struct item *q = NULL, *h = NULL;
	struct sfs_buf b, sh;
	int rc = -ENOMEM;

	if (!r || !r->method || !r->path || !r->payload_hash || !out)
		return -EINVAL;
	sfs_buf_init(&b, 0);
	sfs_buf_init(&sh, 0);

	q = calloc(r->n_query ? r->n_query : 1, sizeof(*q));
	h = calloc(r->n_headers ? r->n_headers : 1, sizeof(*h));
	if (!q || !h)
		goto out;
	for (size_t i = 0; i < r->n_query; i++) {
		const char *v = r->query[i].value ? r->query[i].value : "";
		q[i].order = i;
		if (sfs_sigv4_uri_encode(r->query[i].name, strlen(r->query[i].name), 1,
					 &q[i].name) ||
		    sfs_sigv4_uri_encode(v, strlen(v), 1, &q[i].value))
			goto out;
	}
	qsort(q, r->n_query, sizeof(*q), cmp_item);
	for (size_t i = 0; i < r->n_headers; i++) {
		h[i].order = i;
		h[i].name = strdup(r->headers[i].name);
		if (!h[i].name)
			goto out;
		for (char *p = h[i].name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	qsort(h, r->n_headers, sizeof(*h), cmp_item);

	/* method, URI, query */
	sfs_buf_adds(&b, r->method);
	sfs_buf_addc(&b, '\n');
	encode_into(&b, r->path, strlen(r->path), 0);
	sfs_buf_addc(&b, '\n');
	for (size_t i = 0; i < r->n_query; i++) {
		if (i)
			sfs_buf_addc(&b, '&');
		sfs_buf_adds(&b, q[i].name);
		sfs_buf_addc(&b, '=');
		sfs_buf_adds(&b, q[i].value);
	}
	sfs_buf_addc(&b, '\n');

	/* headers: equal names are adjacent and in request order */
	for (size_t i = 0; i < r->n_headers;) {
		size_t j = i;
		sfs_buf_adds(&b, h[i].name);
		sfs_buf_addc(&b, ':');
		if (sh.len)
			sfs_buf_addc(&sh, ';');
		sfs_buf_adds(&sh, h[i].name);
		for (; j < r->n_headers && strcmp(h[j].name, h[i].name) == 0; j++) {
			const char *raw = r->headers[h[j].order].value;
			char *v = canon_header_value(raw ? raw : "");
			if (!v)
				goto out;
			if (j > i)
				sfs_buf_addc(&b, ',');
			sfs_buf_adds(&b, v);
			free(v);
		}
		sfs_buf_addc(&b, '\n');
		i = j;
	}
	sfs_buf_addc(&b, '\n');
	sfs_buf_add(&b, sh.data ? sh.data : "", sh.len);
	sfs_buf_addc(&b, '\n');
	sfs_buf_adds(&b, r->payload_hash);
	if (sfs_buf_err(&b) || sfs_buf_err(&sh))
		goto out;

	*out = sfs_buf_detach(&b);
	if (signed_headers)
		*signed_headers = sfs_buf_detach(&sh);
	rc = 0;
out:
	free_items(q, r->n_query);
	free_items(h, r->n_headers);
	sfs_buf_release(&b);
	sfs_buf_release(&sh);
	return rc;
}

int sfs_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
			     const char *canonical_request, char **out)
{
	char hash[65];
	struct sfs_buf b;

	if (!amz_date || strlen(amz_date) != 16 || !region || !service || !canonical_request)
		return -EINVAL;
	sfs_sigv4_sha256_hex(canonical_request, strlen(canonical_request), hash);
	sfs_buf_init(&b, 0);
	sfs_buf_addf(&b, "AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s", amz_date, amz_date,
		     region, service, hash);
	if (sfs_buf_err(&b)) {
		sfs_buf_release(&b);
		return -ENOMEM;
	}
	*out = sfs_buf_detach(&b);
	return 0;
}

static int hmac(const unsigned char *key, size_t klen, const void *msg, size_t mlen,
		unsigned char out[32])
{
	unsigned int len = 0;

	if (!HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &len) || len != 32)
		return -EIO;
	return 0;
}

int sfs_sigv4_signature(const struct sfs_sigv4_creds *c, const char *amz_date, const char *sts,
			char out[65])
{
	unsigned char k[32], k2[32];
	char date[9];
	size_t slen;
	char *key = NULL;
	int rc = -EINVAL;

	if (!c || !c->secret_key || !c->region || !c->service || !amz_date ||
	    strlen(amz_date) < 8 || !sts)
		return -EINVAL;
	memcpy(date, amz_date, 8);
	date[8] = '\0';
	slen = strlen(c->secret_key);
	key = malloc(slen + 5);
	if (!key)
		return -ENOMEM;
	memcpy(key, "AWS4", 4);
	memcpy(key + 4, c->secret_key, slen + 1);
	rc = hmac((unsigned char *)key, slen + 4, date, 8, k);
	if (!rc)
		rc = hmac(k, 32, c->region, strlen(c->region), k2);
	if (!rc)
		rc = hmac(k2, 32, c->service, strlen(c->service), k);
	if (!rc)
		rc = hmac(k, 32, "aws4_request", 12, k2);
	if (!rc)
		rc = hmac(k2, 32, sts, strlen(sts), k);
	if (!rc)
		sfs_sigv4_hex(k, 32, out);
	/* the derived keys are as secret as the secret key */
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(k2, sizeof(k2));
	OPENSSL_cleanse(key, slen + 4);
	free(key);
	return rc;
}

int sfs_sigv4_authorization(const struct sfs_sigv4_request *r, const struct sfs_sigv4_creds *c,
			    const char *amz_date, char **out)
{
	char *creq = NULL, *sh = NULL, *sts = NULL;
	char sig[65];
	struct sfs_buf b;
	int rc;

	if (!c || !c->access_key)
		return -EINVAL;
	sfs_buf_init(&b, 0);
	rc = sfs_sigv4_canonical_request(r, &creq, &sh);
	if (!rc)
		rc = sfs_sigv4_string_to_sign(amz_date, c->region, c->service, creq, &sts);
	if (!rc)
		rc = sfs_sigv4_signature(c, amz_date, sts, sig);
	if (!rc) {
		sfs_buf_addf(&b,
			     "AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request, "
			     "SignedHeaders=%s, Signature=%s",
			     c->access_key, amz_date, c->region, c->service, sh, sig);
		rc = sfs_buf_err(&b) ? -ENOMEM : 0;
	}
	if (!rc)
		*out = sfs_buf_detach(&b);
	sfs_buf_release(&b);
	free(creq);
	free(sh);
	free(sts);
	return rc;
}
