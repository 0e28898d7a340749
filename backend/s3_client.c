/*
 * backend/s3_client.c - S3 over libcurl; see s3_client.h.
 *
 * This file: the client's lifecycle and the requests of one round trip
 * (HEAD, PUT, GET, DELETE, batch delete, ListObjectsV2).  Building, signing,
 * sending and retrying one request, and reading its answer, are in
 * s3_client_request.c; multipart uploads and copies, uploads from a file
 * descriptor, server-side copy and the parallel runner in
 * s3_client_multipart.c; what they share is in s3_client_priv.h.
 */
#include "backend/s3_client.h"
#include "backend/s3_client_priv.h"

#include "backend/s3_buf.h"
#include "backend/sigv4.h"
#include "common/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- small helpers ---- */

static char *xstrdup0(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void md5_of(const void *buf, size_t n, unsigned char out[16])
{
	unsigned int len = 0;
	EVP_Digest(buf, n, out, &len, EVP_md5(), NULL);
}

/* truncated pages in a row without one entry before a listing counts as endless */
#define LIST_EMPTY_PAGES_MAX 1000

/* ---- lifecycle ---- */

static void client_free_fields(struct sfs_s3_client *c)
{
	for (int i = 0; i < c->n_pool; i++)
		curl_easy_cleanup(c->pool[i]);
	c->n_pool = 0;
	pthread_mutex_destroy(&c->pool_lock);
	free(c->scheme);
	free(c->hostport);
	free(c->basepath);
	free(c->endpoint);
	free(c->bucket);
	free(c->region);
	free(c->access_key);
	if (c->secret_key)
		OPENSSL_cleanse(c->secret_key, strlen(c->secret_key));
	free(c->secret_key);
	free(c->session_token);
	free(c);
}

int sfs_s3_client_new(const struct sfs_s3_opts *o, struct sfs_s3_client **out)
{
	struct sfs_s3_client *c;
	char def[256];
	const char *ep;
	const char *sep;
	int rc = -ENOMEM;

	if (!o || !o->bucket || !*o->bucket)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->pool_lock, NULL);
	c->region = strdup(o->region && *o->region ? o->region : "us-east-1");
	if (!c->region)
		goto fail;
	if (o->endpoint && *o->endpoint) {
		ep = o->endpoint;
	} else {
		snprintf(def, sizeof(def), "https://s3.%s.amazonaws.com", c->region);
		ep = def;
	}
	sep = strstr(ep, "://");
	if (!sep || (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)) {
		rc = -EINVAL;
		sfs_log(LOG_ERR, "s3: endpoint '%s': not an http:// or https:// URL", ep);
		goto fail;
	}
	c->scheme = strndup(ep, (size_t)(sep - ep));
	const char *hp = sep + 3;
	const char *slash = strchr(hp, '/');
	c->hostport = slash ? strndup(hp, (size_t)(slash - hp)) : strdup(hp);
	c->basepath = strdup(slash ? slash : "");
	if (!c->scheme || !c->hostport || !c->basepath)
		goto fail;
	size_t bl = strlen(c->basepath);
	while (bl && c->basepath[bl - 1] == '/')
		c->basepath[--bl] = '\0';
	if (!*c->hostport) {
		rc = -EINVAL;
		sfs_log(LOG_ERR, "s3: endpoint '%s': no host", ep);
		goto fail;
	}
	size_t elen = strlen(c->scheme) + strlen(c->hostport) + bl + 4;
	c->endpoint = malloc(elen);
	if (!c->endpoint)
		goto fail;
	snprintf(c->endpoint, elen, "%s://%s%s", c->scheme, c->hostport, c->basepath);
	c->bucket = strdup(o->bucket);
	c->path_style = o->path_style;
	c->access_key = xstrdup0(o->access_key);
	c->secret_key = xstrdup0(o->secret_key);
	c->session_token =
		xstrdup0(o->session_token && *o->session_token ? o->session_token : NULL);
	if (!c->bucket || (o->access_key && !c->access_key) || (o->secret_key && !c->secret_key))
		goto fail;
	c->max_attempts = o->max_attempts > 0 ? o->max_attempts : 6;
	c->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 100;
	c->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
	c->stall_timeout_s = o->stall_timeout_s > 0 ? o->stall_timeout_s : 60;
	c->part_size = o->part_size ? o->part_size : (64ull << 20);
	c->multipart_threshold = o->multipart_threshold ? o->multipart_threshold : c->part_size;
	c->copy_threshold = o->copy_threshold ? o->copy_threshold : (5ull << 30);
	c->copy_part_size = o->copy_part_size ? o->copy_part_size : (512ull << 20);
	c->threads = o->threads > 0 ? o->threads : 4;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		rc = -EIO;
		goto fail;
	}
	xmlInitParser();
	*out = c;
	return 0;
fail:
	client_free_fields(c);
	return rc;
}

void sfs_s3_client_free(struct sfs_s3_client *c)
{
	if (!c)
		return;
	client_free_fields(c);
	curl_global_cleanup();
}

const char *sfs_s3_client_endpoint(const struct sfs_s3_client *c)
{
	return c->endpoint;
}

uint64_t sfs_s3_client_copy_threshold(const struct sfs_s3_client *c)
{
	return c->copy_threshold;
}

uint64_t sfs_s3_client_multipart_threshold(const struct sfs_s3_client *c)
{
	return c->multipart_threshold;
}

/* ---- operations ---- */

int sfs_s3_head_bucket(struct sfs_s3_client *c, int max_attempts, long *status, char *reason,
		       size_t len)
{
	struct req r;
	int rc;

	sfs_s3c_req_init(&r, "HEAD", NULL);
	r.max_attempts = max_attempts;
	r.quiet = 1;
	rc = sfs_s3c_perform(c, &r);
	if (status)
		*status = r.cc == CURLE_OK ? r.status : 0;
	if (reason && len) {
		if (r.cc != CURLE_OK)
			snprintf(reason, len, "%s", r.curl_err);
		else
			snprintf(reason, len, "HTTP %ld%s%s", r.status, r.code[0] ? " " : "",
				 r.code);
	}
	if (r.cc != CURLE_OK)
		rc = -EIO;
	sfs_s3c_req_release(&r);
	return rc;
}

int sfs_s3_head(struct sfs_s3_client *c, const char *key, struct sfs_s3_objinfo *info)
{
	struct req r;
	int rc;

	sfs_s3c_req_init(&r, "HEAD", key);
	rc = sfs_s3c_perform(c, &r);
	if (!rc && info)
		*info = r.info;
	sfs_s3c_req_release(&r);
	return rc;
}

int sfs_s3_put(struct sfs_s3_client *c, const char *key, const void *buf, size_t n, int flags)
{
	unsigned char md5[16];
	char md5b64[32], sha[65];
	struct req r;
	int rc;

	md5_of(buf ? buf : "", n, md5);
	sfs_sigv4_base64(md5, 16, md5b64);
	sfs_sigv4_sha256_hex(buf ? buf : "", n, sha);
	sfs_s3c_req_init(&r, "PUT", key);
	r.payload_hash = sha;
	r.body_kind = BODY_MEM;
	r.body = buf;
	r.body_len = n;
	sfs_s3c_req_header(&r, "content-md5", md5b64);
	if (flags & SFS_S3_IF_NONE_MATCH)
		sfs_s3c_req_header(&r, "if-none-match", "*");
	if (flags & SFS_S3_IF_NONE_MATCH)
		r.quiet = 1; /* 412 is an answer here, not a failure; logged below otherwise */
	rc = sfs_s3c_perform(c, &r);
	if (rc && r.quiet && rc != -EEXIST && rc != -ENOSYS)
		sfs_log(LOG_ERR, "s3: PUT '%s': %s%ld %s", key, r.status ? "HTTP " : "", r.status,
			r.status ? r.code : r.curl_err);
	sfs_s3c_req_release(&r);
	return rc;
}

ssize_t sfs_s3_get_range(struct sfs_s3_client *c, const char *key, uint64_t off, void *buf,
			 size_t n)
{
	char range[64];
	size_t done = 0;

	while (done < n) {
		struct req r;
		int rc;

		snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, off + done,
			 off + n - 1);
		sfs_s3c_req_init(&r, "GET", key);
		sfs_s3c_req_header(&r, "range", range);
		r.payload_hash = SFS_SIGV4_EMPTY_SHA256;
		r.dst = (unsigned char *)buf + done;
		r.dst_cap = n - done;
		r.quiet = 1;
		rc = sfs_s3c_perform(c, &r);
		if (rc == 0 && r.status == 200)
			r.skip = off + done; /* the server ignored Range: refetch skipping */
		if (rc == 0 && r.status == 200 && off + done > 0) {
			rc = sfs_s3c_perform(c, &r);
		}
		size_t got = r.dst_len, asked = r.dst_cap;
		long status = r.status;
		if (rc) {
			if (status == 416) { /* at or past EOF */
				sfs_s3c_req_release(&r);
				break;
			}
			/* log like sfs_s3c_perform() would have */
			if (status == 0)
				sfs_log(LOG_ERR, "s3: GET '%s': cannot reach '%s': %s", key,
					c->endpoint, r.curl_err);
			else
				sfs_log(status == 404 ? LOG_DEBUG : LOG_ERR,
					"s3: GET '%s': HTTP %ld %s", key, status, r.code);
			sfs_s3c_req_release(&r);
			return rc;
		}
		sfs_s3c_req_release(&r);
		done += got;
		/* 200: the whole rest of the object; a short 206: the object ends there */
		if (got == 0 || status == 200 || got < asked)
			break;
	}
	return (ssize_t)done;
}

int sfs_s3_get(struct sfs_s3_client *c, const char *key, void **buf, size_t *n, size_t max)
{
	struct sfs_buf body;
	struct req r;
	int rc;

	sfs_buf_init(&body, max ? max : 1);
	sfs_s3c_req_init(&r, "GET", key);
	r.payload_hash = SFS_SIGV4_EMPTY_SHA256;
	r.resp = &body;
	rc = sfs_s3c_perform(c, &r);
	if (!rc) {
		*n = body.len;
		*buf = sfs_buf_detach(&body);
		if (!*buf)
			rc = -ENOMEM;
	}
	sfs_s3c_req_release(&r);
	sfs_buf_release(&body);
	return rc;
}

int sfs_s3_delete(struct sfs_s3_client *c, const char *key)
{
	struct req r;
	int rc;

	sfs_s3c_req_init(&r, "DELETE", key);
	r.payload_hash = SFS_SIGV4_EMPTY_SHA256;
	rc = sfs_s3c_perform(c, &r);
	sfs_s3c_req_release(&r);
	return rc;
}

static int delete_batch(struct sfs_s3_client *c, char *const *keys, size_t n)
{
	xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
	xmlNodePtr root = NULL;
	xmlChar *xml = NULL;
	int xml_len = 0;
	struct sfs_buf body;
	unsigned char md5[16];
	char md5b64[32], sha[65];
	struct req r;
	int rc = -ENOMEM;

	sfs_buf_init(&body, XML_CAP);
	sfs_s3c_req_init(&r, "POST", NULL);
	if (!doc)
		goto out;
	root = xmlNewNode(NULL, BAD_CAST "Delete");
	if (!root)
		goto out;
	xmlDocSetRootElement(doc, root);
	xmlNewNs(root, BAD_CAST "http://s3.amazonaws.com/doc/2006-03-01/", NULL);
	if (!xmlNewTextChild(root, NULL, BAD_CAST "Quiet", BAD_CAST "true"))
		goto out;
	for (size_t i = 0; i < n; i++) {
		xmlNodePtr o = xmlNewChild(root, NULL, BAD_CAST "Object", NULL);
		if (!o || !xmlNewTextChild(o, NULL, BAD_CAST "Key", BAD_CAST keys[i]))
			goto out;
	}
	xmlDocDumpMemory(doc, &xml, &xml_len);
	if (!xml)
		goto out;
	md5_of(xml, (size_t)xml_len, md5);
	sfs_sigv4_base64(md5, 16, md5b64);
	sfs_sigv4_sha256_hex(xml, (size_t)xml_len, sha);
	sfs_s3c_req_query(&r, "delete", "");
	sfs_s3c_req_header(&r, "content-md5", md5b64);
	sfs_s3c_req_header(&r, "content-type", "application/xml");
	r.payload_hash = sha;
	r.body_kind = BODY_MEM;
	r.body = xml;
	r.body_len = (uint64_t)xml_len;
	r.resp = &body;
	rc = sfs_s3c_perform(c, &r);
	if (!rc) {
		/* per-key failures come back as <Error> children of <DeleteResult> */
		char what[1200];
		if (sfs_s3c_parse_delete(body.data, body.len, what, sizeof(what)))
			rc = S3_ERR(-EIO, "s3: POST ?delete: %s", what);
	}
out:
	sfs_s3c_req_release(&r);
	sfs_buf_release(&body);
	xmlFree(xml);
	xmlFreeDoc(doc);
	return rc;
}

int sfs_s3_delete_many(struct sfs_s3_client *c, char *const *keys, size_t n)
{
	for (size_t i = 0; i < n; i += 1000) {
		int rc = delete_batch(c, keys + i, n - i < 1000 ? n - i : 1000);
		if (rc)
			return rc;
	}
	return 0;
}

/* One ListObjectsV2 request (max_keys as text, delimiter and token may be NULL) into body. */
static int list_get(struct sfs_s3_client *c, const char *prefix, const char *delimiter,
		    const char *max_keys, const xmlChar *token, struct sfs_buf *body)
{
	struct req r;
	int rc;

	sfs_s3c_req_init(&r, "GET", NULL);
	sfs_s3c_req_query(&r, "list-type", "2");
	sfs_s3c_req_query(&r, "prefix", prefix ? prefix : "");
	sfs_s3c_req_query(&r, "max-keys", max_keys);
	/* keys as %XX: XML 1.0 cannot carry a control character a key may hold
	 * (a server that ignores it sends them raw, as before) */
	sfs_s3c_req_query(&r, "encoding-type", "url");
	if (delimiter)
		sfs_s3c_req_query(&r, "delimiter", delimiter);
	if (token)
		sfs_s3c_req_query(&r, "continuation-token", (const char *)token);
	r.payload_hash = SFS_SIGV4_EMPTY_SHA256;
	r.resp = body;
	rc = sfs_s3c_perform(c, &r);
	sfs_s3c_req_release(&r);
	return rc;
}

int sfs_s3_list(struct sfs_s3_client *c, const char *prefix, const char *delimiter, int max_keys,
		int single_page, sfs_s3_list_cb cb, void *arg)
{
	struct sfs_buf body;
	char mk[16];
	xmlChar *token = NULL, *prev = NULL;
	int rc = 0, empty = 0;

	snprintf(mk, sizeof(mk), "%d", max_keys > 0 ? max_keys : 1000);
	sfs_buf_init(&body, XML_CAP);
	for (;;) {
		rc = list_get(c, prefix, delimiter, mk, token, &body);
		xmlFree(prev);
		prev = token; /* a server must move on: the next token may not repeat it */
		token = NULL;
		if (rc)
			break;

		struct sfs_s3c_page pg;
		rc = sfs_s3c_parse_list(body.data, body.len, cb, arg, &pg);
		if (!pg.valid) {
			rc = S3_ERR(-EIO, "s3: GET ?list-type=2 prefix '%s': unreadable answer",
				    prefix ? prefix : "");
			break;
		}
		if (!rc && pg.truncated && !single_page) {
			token = pg.next;
			pg.next = NULL;
			if (!token || !*token) {
				rc = S3_ERR(-EIO,
					    "s3: list '%s': truncated without a continuation token",
					    prefix ? prefix : "");
			} else if (prev && xmlStrEqual(prev, token)) {
				rc = S3_ERR(-EIO,
					    "s3: list '%s': the server repeats its continuation "
					    "token (a listing that never ends)",
					    prefix ? prefix : "");
			} else if ((empty = pg.entries ? 0 : empty + 1) >= LIST_EMPTY_PAGES_MAX) {
				rc = S3_ERR(-EIO,
					    "s3: list '%s': %d truncated pages in a row without an "
					    "entry (a listing that never ends)",
					    prefix ? prefix : "", empty);
			}
		}
		sfs_s3c_page_release(&pg);
		if (rc || !token)
			break;
	}
	xmlFree(token);
	xmlFree(prev);
	sfs_buf_release(&body);
	return rc;
}

static int ignore_key(void *arg, const char *key, int is_prefix, const struct sfs_s3_objinfo *info)
{
	return 0;
}

int sfs_s3_list_encodes(struct sfs_s3_client *c, const char *prefix)
{
	struct sfs_buf body;
	struct sfs_s3c_page pg;
	int rc;

	sfs_buf_init(&body, XML_CAP);
	rc = list_get(c, prefix, NULL, "1", NULL, &body);
	if (!rc) {
		rc = sfs_s3c_parse_list(body.data, body.len, ignore_key, NULL, &pg);
		if (!rc)
			rc = pg.encoded;
		sfs_s3c_page_release(&pg);
	}
	sfs_buf_release(&body);
	return rc;
}
