/* backend/s3_client.c - S3 over libcurl; see s3_client.h */
#include "backend/s3_client.h"

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
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define XML_CAP	       (16u << 20) /* cap on any XML response we buffer */
#define ERRBODY_CAP    (64u << 10) /* cap on an error body */
#define POOL_MAX       32
#define MAX_PARTS      10000
#define MIN_PART       (5ull << 20)
#define MAX_BACKOFF_MS 20000

struct sfs_s3_client {
	char *scheme;	/* "http" / "https" */
	char *hostport; /* "127.0.0.1:9000" */
	char *basepath; /* "" or "/base" (no trailing '/') */
	char *endpoint; /* scheme://hostport/basepath */
	char *bucket;
	char *region;
	int path_style;
	char *access_key;
	char *secret_key;
	char *session_token;
	int max_attempts;
	int backoff_ms;
	long connect_timeout_ms;
	long stall_timeout_s;
	uint64_t part_size;
	uint64_t multipart_threshold;
	uint64_t copy_threshold;
	uint64_t copy_part_size;
	int threads;

	pthread_mutex_t pool_lock;
	CURL *pool[POOL_MAX]; /* idle handles; protected by pool_lock */
	int n_pool;	      /* protected by pool_lock */
};

/* ---- one request ---- */

enum { BODY_NONE, BODY_MEM, BODY_FD };

struct req {
	const char *method;
	const char *key; /* NULL = bucket */
	struct sfs_sigv4_kv query[8];
	size_t n_query;
	struct sfs_sigv4_kv hdr[8]; /* extra signed headers */
	size_t n_hdr;
	const char *payload_hash; /* NULL = UNSIGNED-PAYLOAD */

	int body_kind;
	const unsigned char *body;
	int fd;
	uint64_t body_off;
	uint64_t body_len;
	uint64_t body_pos;

	struct sfs_buf *resp; /* 2xx body sink (may be NULL: discard) */
	unsigned char *dst;   /* or a fixed buffer (ranged GET) */
	size_t dst_cap;
	size_t dst_len;
	uint64_t skip; /* bytes to drop from a 200 answer to a ranged GET */
	int dst_full;
	struct sfs_buf errbody;

	int max_attempts;     /* 0 = client default */
	int quiet;	      /* do not log the final failure */
	int check_error_body; /* a 2xx body that is an <Error> is a failure (copy, complete) */

	/* results */
	long status;
	CURLcode cc;
	char curl_err[CURL_ERROR_SIZE];
	char code[64];	   /* S3 error code */
	char message[160]; /* S3 error message */
	struct sfs_s3_objinfo info;
	int have_length;
};

static void req_init(struct req *r, const char *method, const char *key)
{
	memset(r, 0, sizeof(*r));
	r->method = method;
	r->key = key;
	r->fd = -1;
	sfs_buf_init(&r->errbody, ERRBODY_CAP);
}

static void req_release(struct req *r)
{
	sfs_buf_release(&r->errbody);
}

static void req_query(struct req *r, const char *name, const char *value)
{
	if (r->n_query >= sizeof(r->query) / sizeof(r->query[0]))
		abort(); /* a programming error, not an input error */
	r->query[r->n_query].name = name;
	r->query[r->n_query].value = value;
	r->n_query++;
}

static void req_header(struct req *r, const char *name, const char *value)
{
	if (r->n_hdr >= sizeof(r->hdr) / sizeof(r->hdr[0]))
		abort(); /* a programming error, not an input error */
	r->hdr[r->n_hdr].name = name;
	r->hdr[r->n_hdr].value = value;
	r->n_hdr++;
}

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

static int64_t parse_iso8601_ns(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return 0;
	int64_t ns = (int64_t)timegm(&tm) * 1000000000LL;
	if (*p == '.') {
		int64_t frac = 0, scale = 100000000;
		for (p++; *p >= '0' && *p <= '9'; p++) {
			frac += (*p - '0') * scale;
			scale /= 10;
		}
		ns += frac;
	}
	return ns;
}

static void strip_quotes(const char *in, char *out, size_t len)
{
	size_t n = strlen(in);
	if (n >= 2 && in[0] == '"' && in[n - 1] == '"') {
		in++;
		n -= 2;
	}
	if (n >= len)
		n = len - 1;
	memcpy(out, in, n);
	out[n] = '\0';
}

/* ---- XML (libxml2) ---- */

static xmlDocPtr xml_parse(const char *buf, size_t n)
{
	if (!buf || n == 0 || n > INT32_MAX)
		return NULL;
	return xmlReadMemory(buf, (int)n, "s3.xml", NULL,
			     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
				     XML_PARSE_NOBLANKS);
}

static int xml_is(xmlNodePtr n, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlNodePtr xml_child(xmlNodePtr parent, const char *name)
{
	for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
		if (xml_is(n, name))
			return n;
	return NULL;
}

/* Text of child `name` copied into out (len bytes); "" when absent. */
static void xml_child_text(xmlNodePtr parent, const char *name, char *out, size_t len)
{
	xmlNodePtr n = xml_child(parent, name);
	out[0] = '\0';
	if (!n)
		return;
	xmlChar *t = xmlNodeGetContent(n);
	if (!t)
		return;
	snprintf(out, len, "%s", (const char *)t);
	xmlFree(t);
}

/* Text of child `name`, malloc'd via libxml (xmlFree), or NULL. */
static xmlChar *xml_child_dup(xmlNodePtr parent, const char *name)
{
	xmlNodePtr n = xml_child(parent, name);
	return n ? xmlNodeGetContent(n) : NULL;
}

/* If buf is an S3 <Error> document, copy its Code/Message and return 1. */
static int parse_error_doc(const char *buf, size_t n, char *code, size_t clen, char *msg,
			   size_t mlen)
{
	xmlDocPtr doc = xml_parse(buf, n);
	int is_err = 0;
	if (!doc)
		return 0;
	xmlNodePtr root = xmlDocGetRootElement(doc);
	if (xml_is(root, "Error")) {
		is_err = 1;
		xml_child_text(root, "Code", code, clen);
		xml_child_text(root, "Message", msg, mlen);
	}
	xmlFreeDoc(doc);
	return is_err;
}

/* ---- handle pool ---- */

static CURL *pool_get(struct sfs_s3_client *c)
{
	CURL *h = NULL;
	pthread_mutex_lock(&c->pool_lock);
	if (c->n_pool > 0)
		h = c->pool[--c->n_pool];
	pthread_mutex_unlock(&c->pool_lock);
	if (!h)
		h = curl_easy_init();
	return h;
}

static void pool_put(struct sfs_s3_client *c, CURL *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&c->pool_lock);
	if (c->n_pool < POOL_MAX) {
		c->pool[c->n_pool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

/* ---- curl callbacks ---- */

struct xfer {
	struct req *r;
	CURL *h;
};

static size_t read_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct req *r = ud;
	size_t want = size * nmemb;
	uint64_t left = r->body_len - r->body_pos;

	if (want > left)
		want = (size_t)left;
	if (want == 0)
		return 0;
	if (r->body_kind == BODY_MEM) {
		memcpy(ptr, r->body + r->body_pos, want);
	} else {
		ssize_t got = pread(r->fd, ptr, want, (off_t)(r->body_off + r->body_pos));
		if (got <= 0) /* the file shrank or cannot be read: never send a short body */
			return CURL_READFUNC_ABORT;
		want = (size_t)got;
	}
	r->body_pos += want;
	return want;
}

/*
 * libcurl rewinds the body when it must send it again within one attempt
 * (a reused connection found closed, a 100-continue refused): without this it
 * fails with "necessary data rewind wasn't possible".
 */
static int seek_cb(void *ud, curl_off_t off, int origin)
{
	struct req *r = ud;

	if (origin != SEEK_SET)
		return CURL_SEEKFUNC_CANTSEEK;
	if (off < 0 || (uint64_t)off > r->body_len)
		return CURL_SEEKFUNC_FAIL;
	r->body_pos = (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	struct req *r = x->r;
	size_t n = size * nmemb;
	long status = 0;

	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status >= 300) {
		sfs_buf_add(&r->errbody, ptr, n < ERRBODY_CAP ? n : 0); /* capped: excess ignored */
		return n;
	}
	if (r->dst) {
		size_t off = 0;
		if (r->skip) {
			size_t s = r->skip < n ? (size_t)r->skip : n;
			r->skip -= s;
			off = s;
		}
		size_t take = n - off;
		if (take > r->dst_cap - r->dst_len)
			take = r->dst_cap - r->dst_len;
		memcpy(r->dst + r->dst_len, ptr + off, take);
		r->dst_len += take;
		if (r->dst_len == r->dst_cap && off + take < n) {
			r->dst_full = 1;
			return 0; /* we have all we asked for */
		}
		return n;
	}
	if (r->resp) {
		if (sfs_buf_add(r->resp, ptr, n))
			return 0; /* over the cap: abort the transfer */
	}
	return n;
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct req *r = ud;
	size_t n = size * nmemb;
	char line[512];
	size_t l = n < sizeof(line) - 1 ? n : sizeof(line) - 1;

	memcpy(line, ptr, l);
	line[l] = '\0';
	while (l && (line[l - 1] == '\r' || line[l - 1] == '\n'))
		line[--l] = '\0';
	if (strncmp(line, "HTTP/", 5) == 0) { /* a new response (after 100 Continue, say) */
		memset(&r->info, 0, sizeof(r->info));
		r->have_length = 0;
		return n;
	}
	char *colon = strchr(line, ':');
	if (!colon)
		return n;
	*colon = '\0';
	char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (strcasecmp(line, "etag") == 0) {
		strip_quotes(v, r->info.etag, sizeof(r->info.etag));
	} else if (strcasecmp(line, "content-length") == 0) {
		r->info.size = strtoull(v, NULL, 10);
		r->have_length = 1;
	} else if (strcasecmp(line, "last-modified") == 0) {
		time_t t = curl_getdate(v, NULL);
		if (t > 0)
			r->info.mtime_ns = (int64_t)t * 1000000000LL;
	}
	return n;
}

/* ---- URL + signing ---- */

static int build_path(struct sfs_s3_client *c, const char *key, struct sfs_buf *raw)
{
	/* raw (unencoded) request path: what is signed; the URL gets it encoded */
	sfs_buf_adds(raw, c->basepath);
	if (c->path_style) {
		sfs_buf_addc(raw, '/');
		sfs_buf_adds(raw, c->bucket);
	}
	sfs_buf_addc(raw, '/');
	if (key)
		sfs_buf_adds(raw, key);
	return sfs_buf_err(raw);
}

static int setup_request(struct sfs_s3_client *c, struct req *r, CURL *h, struct curl_slist **hl,
			 struct xfer *x)
{
	struct sfs_buf path, url, tmp;
	char amz_date[17], host[300];
	char *auth = NULL, *enc = NULL;
	struct sfs_sigv4_kv all[16];
	size_t n = 0;
	int rc = -ENOMEM;

	sfs_buf_init(&path, 0);
	sfs_buf_init(&url, 0);
	sfs_buf_init(&tmp, 0);
	if (build_path(c, r->key, &path))
		goto out;
	if (c->path_style)
		snprintf(host, sizeof(host), "%s", c->hostport);
	else
		snprintf(host, sizeof(host), "%s.%s", c->bucket, c->hostport);

	sfs_buf_addf(&url, "%s://%s", c->scheme, host);
	if (sfs_sigv4_uri_encode(path.data, path.len, 0, &enc))
		goto out;
	sfs_buf_adds(&url, enc);
	free(enc);
	enc = NULL;
	for (size_t i = 0; i < r->n_query; i++) {
		const char *v = r->query[i].value;
		sfs_buf_addc(&url, i ? '&' : '?');
		if (sfs_sigv4_uri_encode(r->query[i].name, strlen(r->query[i].name), 1, &enc))
			goto out;
		sfs_buf_adds(&url, enc);
		free(enc);
		enc = NULL;
		if (v) {
			sfs_buf_addc(&url, '=');
			if (sfs_sigv4_uri_encode(v, strlen(v), 1, &enc))
				goto out;
			sfs_buf_adds(&url, enc);
			free(enc);
			enc = NULL;
		}
	}
	if (sfs_buf_err(&url))
		goto out;

	sfs_sigv4_amz_date(time(NULL), amz_date);
	const char *ph = r->payload_hash ? r->payload_hash : SFS_SIGV4_UNSIGNED_PAYLOAD;
	all[n++] = (struct sfs_sigv4_kv){"host", host};
	all[n++] = (struct sfs_sigv4_kv){"x-amz-date", amz_date};
	all[n++] = (struct sfs_sigv4_kv){"x-amz-content-sha256", ph};
	if (c->session_token)
		all[n++] = (struct sfs_sigv4_kv){"x-amz-security-token", c->session_token};
	for (size_t i = 0; i < r->n_hdr; i++)
		all[n++] = r->hdr[i];

	for (size_t i = 0; i < n; i++) {
		sfs_buf_reset(&tmp);
		sfs_buf_addf(&tmp, "%s: %s", all[i].name, all[i].value);
		if (sfs_buf_err(&tmp))
			goto out;
		struct curl_slist *nl = curl_slist_append(*hl, tmp.data);
		if (!nl)
			goto out;
		*hl = nl;
	}
	if (c->access_key && c->secret_key) {
		struct sfs_sigv4_request sr = {r->method, path.data, r->query, r->n_query,
					       all,	  n,	     ph};
		struct sfs_sigv4_creds cr = {c->access_key, c->secret_key, c->region, "s3"};
		rc = sfs_sigv4_authorization(&sr, &cr, amz_date, &auth);
		if (rc)
			goto out;
		rc = -ENOMEM;
		sfs_buf_reset(&tmp);
		sfs_buf_addf(&tmp, "Authorization: %s", auth);
		if (sfs_buf_err(&tmp))
			goto out;
		struct curl_slist *nl = curl_slist_append(*hl, tmp.data);
		if (!nl)
			goto out;
		*hl = nl;
		/* the signature is derived from the secret: do not leave it lying around */
		OPENSSL_cleanse(tmp.data, tmp.len);
	}
	struct curl_slist *nl = curl_slist_append(*hl, "Expect:");
	if (!nl)
		goto out;
	*hl = nl;
	nl = curl_slist_append(*hl, "Accept:");
	if (!nl)
		goto out;
	*hl = nl;

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url.data);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hl);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->stall_timeout_s);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->curl_err);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	if (strcmp(r->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(r->method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(r->method, "DELETE") == 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
	} else { /* PUT / POST, with or without a body */
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(h, CURLOPT_READDATA, r);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, r);
		if (strcmp(r->method, "PUT") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	}
	rc = 0;
out:
	free(enc);
	free(auth);
	sfs_buf_release(&path);
	sfs_buf_release(&url);
	sfs_buf_release(&tmp);
	return rc;
}

static int retryable_curl(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

static int retryable_http(long status, const char *code)
{
	if (status >= 500 && status != 501 && status != 507)
		return 1;
	if (status == 429)
		return 1;
	if (status == 400 && (strcmp(code, "RequestTimeout") == 0 ||
			      strcmp(code, "ExpiredToken") == 0 /* clock skew races */))
		return strcmp(code, "RequestTimeout") == 0;
	return 0;
}

static int map_http(long status, const char *code)
{
	if (strcmp(code, "EntityTooLarge") == 0 || strcmp(code, "XMinioStorageFull") == 0 ||
	    status == 507)
		return -ENOSPC;
	switch (status) {
	case 400:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 409:
	case 412:
		return -EEXIST;
	case 416:
		return -EINVAL;
	case 501:
		return -ENOSYS;
	default:
		return -EIO;
	}
}

static void backoff_sleep(struct sfs_s3_client *c, int attempt)
{
	long ms = c->backoff_ms;
	for (int i = 1; i < attempt && ms < MAX_BACKOFF_MS; i++)
		ms *= 2;
	if (ms > MAX_BACKOFF_MS)
		ms = MAX_BACKOFF_MS;
	/* "equal jitter": half fixed, half random */
	unsigned int seed = (unsigned int)(time(NULL) ^ (uintptr_t)&ms ^ (unsigned)attempt);
	long j = ms / 2 + (ms > 1 ? (long)(rand_r(&seed) % (ms / 2 + 1)) : 0);
	struct timespec ts = {j / 1000, (j % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Perform r with retries; 0 on a 2xx answer, else -errno (logged unless r->quiet). */
static int perform(struct sfs_s3_client *c, struct req *r)
{
	int attempts = r->max_attempts > 0 ? r->max_attempts : c->max_attempts;
	const char *what = r->key ? r->key : c->bucket;
	int rc = -EIO;

	for (int attempt = 1; attempt <= attempts; attempt++) {
		struct curl_slist *hl = NULL;
		struct xfer x = {r, NULL};
		CURL *h = pool_get(c);
		int retry = 0;

		if (!h)
			return S3_ERR(-ENOMEM, "s3: %s '%s': cannot create a curl handle",
				      r->method, what);
		x.h = h;
		r->body_pos = 0;
		r->dst_len = 0;
		r->dst_full = 0;
		r->status = 0;
		r->code[0] = r->message[0] = r->curl_err[0] = '\0';
		sfs_buf_reset(&r->errbody);
		if (r->resp)
			sfs_buf_reset(r->resp);
		uint64_t skip0 = r->skip;

		rc = setup_request(c, r, h, &hl, &x);
		if (rc) {
			curl_slist_free_all(hl);
			pool_put(c, h);
			return S3_ERR(rc, "s3: %s '%s': cannot build the request", r->method, what);
		}
		r->cc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
		curl_slist_free_all(hl);
		r->skip = skip0;

		if (r->cc == CURLE_WRITE_ERROR && r->dst_full)
			r->cc = CURLE_OK;
		if (r->cc != CURLE_OK) {
			/* a broken connection must not go back to the pool half-used */
			curl_easy_cleanup(h);
			h = NULL;
			if (r->cc == CURLE_WRITE_ERROR && r->resp &&
			    sfs_buf_err(r->resp) == -EFBIG) {
				rc = -EFBIG;
				if (!r->quiet)
					sfs_log(LOG_ERR,
						"s3: %s '%s': response larger than %zu bytes",
						r->method, what, r->resp->max);
				return rc;
			}
			if (!r->curl_err[0])
				snprintf(r->curl_err, sizeof(r->curl_err), "%s",
					 curl_easy_strerror(r->cc));
			retry = retryable_curl(r->cc);
			rc = -EIO;
		} else {
			pool_put(c, h);
			h = NULL;
			if (r->status >= 200 && r->status < 300) {
				if (r->check_error_body && r->resp &&
				    parse_error_doc(r->resp->data, r->resp->len, r->code,
						    sizeof(r->code), r->message,
						    sizeof(r->message))) {
					/* S3 may answer 200 and fail later (copy, complete) */
					r->status = 500;
					retry = 1;
					rc = -EIO;
				} else {
					return 0;
				}
			} else {
				parse_error_doc(r->errbody.data, r->errbody.len, r->code,
						sizeof(r->code), r->message, sizeof(r->message));
				retry = retryable_http(r->status, r->code);
				rc = map_http(r->status, r->code);
				if (r->status == 404 || r->status == 416)
					retry = 0;
			}
		}
		if (!retry || attempt == attempts)
			break;
		sfs_log(LOG_DEBUG, "s3: %s '%s': %s%ld %s; retry %d/%d", r->method, what,
			r->status ? "HTTP " : "", r->status, r->status ? r->code : r->curl_err,
			attempt, attempts - 1);
		backoff_sleep(c, attempt);
	}
	if (r->quiet)
		return rc;
	if (r->status == 0 || r->cc != CURLE_OK)
		sfs_log(LOG_ERR, "s3: %s '%s': cannot reach '%s': %s", r->method, what, c->endpoint,
			r->curl_err);
	else if (r->status == 404)
		sfs_log(LOG_DEBUG, "s3: %s '%s': HTTP 404 %s", r->method, what,
			r->code[0] ? r->code : "Not Found");
	else
		sfs_log(LOG_ERR, "s3: %s '%s': HTTP %ld %s%s%s", r->method, what, r->status,
			r->code[0] ? r->code : "", r->message[0] ? ": " : "", r->message);
	return rc;
}

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

/* ---- operations ---- */

int sfs_s3_head_bucket(struct sfs_s3_client *c, int max_attempts, long *status, char *reason,
		       size_t len)
{
	struct req r;
	int rc;

	req_init(&r, "HEAD", NULL);
	r.max_attempts = max_attempts;
	r.quiet = 1;
	rc = perform(c, &r);
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
	req_release(&r);
	return rc;
}

int sfs_s3_head(struct sfs_s3_client *c, const char *key, struct sfs_s3_objinfo *info)
{
	struct req r;
	int rc;

	req_init(&r, "HEAD", key);
	rc = perform(c, &r);
	if (!rc && info)
		*info = r.info;
	req_release(&r);
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
	req_init(&r, "PUT", key);
	r.payload_hash = sha;
	r.body_kind = BODY_MEM;
	r.body = buf;
	r.body_len = n;
	req_header(&r, "content-md5", md5b64);
	if (flags & SFS_S3_IF_NONE_MATCH)
		req_header(&r, "if-none-match", "*");
	if (flags & SFS_S3_IF_NONE_MATCH)
		r.quiet = 1; /* 412 is an answer here, not a failure; logged below otherwise */
	rc = perform(c, &r);
	if (rc && r.quiet && rc != -EEXIST && rc != -ENOSYS)
		sfs_log(LOG_ERR, "s3: PUT '%s': %s%ld %s", key, r.status ? "HTTP " : "", r.status,
			r.status ? r.code : r.curl_err);
	req_release(&r);
	return rc;
}

/* MD5 of fd[off, off+len) into raw (pre-pass so that Content-MD5 goes in the header). */
static int md5_fd(int fd, uint64_t off, uint64_t len, unsigned char raw[16], EVP_MD_CTX *whole)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *buf = malloc(1 << 20);
	unsigned int l = 0;
	int rc = 0;

	if (!ctx || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
	while (len > 0) {
		size_t want = len < (1u << 20) ? (size_t)len : (1u << 20);
		ssize_t got = pread(fd, buf, want, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = -errno;
			goto out;
		}
		if (got == 0) {
			rc = -EIO; /* the file shrank under us */
			goto out;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)got);
		if (whole)
			EVP_DigestUpdate(whole, buf, (size_t)got);
		off += (uint64_t)got;
		len -= (uint64_t)got;
	}
	EVP_DigestFinal_ex(ctx, raw, &l);
out:
	EVP_MD_CTX_free(ctx);
	free(buf);
	return rc;
}

static int put_fd_range(struct sfs_s3_client *c, const char *key, int fd, uint64_t off,
			uint64_t len, const char *part_no, const char *upload_id,
			const unsigned char md5[16], char *etag_out, size_t etag_len)
{
	char md5b64[32];
	struct req r;
	int rc;

	sfs_sigv4_base64(md5, 16, md5b64);
	req_init(&r, "PUT", key);
	if (part_no) {
		req_query(&r, "partNumber", part_no);
		req_query(&r, "uploadId", upload_id);
	}
	r.body_kind = BODY_FD;
	r.fd = fd;
	r.body_off = off;
	r.body_len = len;
	req_header(&r, "content-md5", md5b64);
	rc = perform(c, &r);
	if (!rc && etag_out)
		snprintf(etag_out, etag_len, "%s", r.info.etag);
	req_release(&r);
	return rc;
}

/* ---- parallel runner ---- */

struct par {
	pthread_mutex_t lock;
	size_t next; /* protected by lock */
	size_t n;
	int rc; /* first failure; protected by lock */
	int (*fn)(void *ctx, size_t i);
	void *ctx;
};

static void *par_worker(void *arg)
{
	struct par *p = arg;
	for (;;) {
		size_t i;
		pthread_mutex_lock(&p->lock);
		if (p->rc || p->next >= p->n) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		i = p->next++;
		pthread_mutex_unlock(&p->lock);
		int rc = p->fn(p->ctx, i);
		if (rc) {
			pthread_mutex_lock(&p->lock);
			if (!p->rc)
				p->rc = rc;
			pthread_mutex_unlock(&p->lock);
		}
	}
}

int sfs_s3_parallel(struct sfs_s3_client *c, size_t n, int (*fn)(void *ctx, size_t i), void *ctx)
{
	struct par p = {.next = 0, .n = n, .rc = 0, .fn = fn, .ctx = ctx};
	pthread_t tid[16];
	size_t nt = (size_t)c->threads;
	size_t started = 0;

	if (n == 0)
		return 0;
	if (nt > 16)
		nt = 16;
	if (nt > n)
		nt = n;
	pthread_mutex_init(&p.lock, NULL);
	for (size_t i = 1; i < nt; i++) {
		if (pthread_create(&tid[started], NULL, par_worker, &p) != 0)
			break; /* fewer threads is fine: the caller works too */
		started++;
	}
	par_worker(&p);
	for (size_t i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	pthread_mutex_destroy(&p.lock);
	return p.rc;
}

/* ---- multipart ---- */

struct mpu {
	struct sfs_s3_client *c;
	const char *key;
	char upload_id[512];
	int fd;		 /* upload source, or -1 for a copy */
	const char *src; /* copy source key */
	uint64_t size;
	uint64_t part_size;
	size_t n_parts;
	int flags; /* SFS_S3_IF_NONE_MATCH: complete only if the key does not exist */
	char (*etags)[80];
};

static int mpu_create(struct sfs_s3_client *c, const char *key, char *upload_id, size_t len)
{
	struct sfs_buf body;
	struct req r;
	int rc;

	sfs_buf_init(&body, XML_CAP);
	req_init(&r, "POST", key);
	req_query(&r, "uploads", "");
	r.payload_hash = SFS_SIGV4_EMPTY_SHA256;
	r.resp = &body;
	rc = perform(c, &r);
	if (!rc) {
		xmlDocPtr doc = xml_parse(body.data, body.len);
		xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
		upload_id[0] = '\0';
		if (xml_is(root, "InitiateMultipartUploadResult"))
			xml_child_text(root, "UploadId", upload_id, len);
		if (!upload_id[0])
			rc = S3_ERR(-EIO, "s3: POST '%s' ?uploads: no UploadId in the answer", key);
		xmlFreeDoc(doc);
	}
	req_release(&r);
	sfs_buf_release(&body);
	return rc;
}

static void mpu_abort(struct sfs_s3_client *c, const char *key, const char *upload_id)
{
	struct req r;

	req_init(&r, "DELETE", key);
	req_query(&r, "uploadId", upload_id);
	(void)perform(c, &r);
	req_release(&r);
}

static int mpu_complete(struct mpu *m)
{
	xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
	xmlNodePtr root = NULL;
	xmlChar *xml = NULL;
	int xml_len = 0;
	struct sfs_buf body;
	char num[24], quoted[90], sha[65];
	struct req r;
	int rc = -ENOMEM;

	sfs_buf_init(&body, XML_CAP);
	req_init(&r, "POST", m->key);
	if (!doc)
		goto out;
	root = xmlNewNode(NULL, BAD_CAST "CompleteMultipartUpload");
	if (!root)
		goto out;
	xmlDocSetRootElement(doc, root);
	xmlNewNs(root, BAD_CAST "http://s3.amazonaws.com/doc/2006-03-01/", NULL);
	for (size_t i = 0; i < m->n_parts; i++) {
		xmlNodePtr part = xmlNewChild(root, NULL, BAD_CAST "Part", NULL);
		if (!part)
			goto out;
		snprintf(num, sizeof(num), "%zu", i + 1);
		snprintf(quoted, sizeof(quoted), "\"%s\"", m->etags[i]);
		if (!xmlNewTextChild(part, NULL, BAD_CAST "PartNumber", BAD_CAST num) ||
		    !xmlNewTextChild(part, NULL, BAD_CAST "ETag", BAD_CAST quoted))
			goto out;
	}
	xmlDocDumpMemory(doc, &xml, &xml_len);
	if (!xml)
		goto out;
	sfs_sigv4_sha256_hex(xml, (size_t)xml_len, sha);
	req_query(&r, "uploadId", m->upload_id);
	r.payload_hash = sha;
	r.body_kind = BODY_MEM;
	r.body = xml;
	r.body_len = (uint64_t)xml_len;
	r.resp = &body;
	r.check_error_body = 1;
	if (m->flags & SFS_S3_IF_NONE_MATCH) {
		req_header(&r, "if-none-match", "*");
		r.quiet = 1; /* 412 is an answer here, not a failure; logged below otherwise */
	}
	rc = perform(m->c, &r);
	if (rc && r.quiet && rc != -EEXIST && rc != -ENOSYS)
		sfs_log(LOG_ERR, "s3: POST '%s' ?uploadId: %s%ld %s", m->key,
			r.status ? "HTTP " : "", r.status, r.status ? r.code : r.curl_err);
out:
	req_release(&r);
	sfs_buf_release(&body);
	xmlFree(xml);
	xmlFreeDoc(doc);
	return rc;
}

static int mpu_part(void *ctx, size_t i)
{
	struct mpu *m = ctx;
	uint64_t off = (uint64_t)i * m->part_size;
	uint64_t len = m->size - off < m->part_size ? m->size - off : m->part_size;
	char num[24];
	int rc;

	snprintf(num, sizeof(num), "%zu", i + 1);
	if (m->fd >= 0) {
		unsigned char md5[16];
		rc = md5_fd(m->fd, off, len, md5, NULL);
		if (rc)
			return S3_ERR(rc, "s3: cannot read part %zu of '%s' from the local file",
				      i + 1, m->key);
		rc = put_fd_range(m->c, m->key, m->fd, off, len, num, m->upload_id, md5,
				  m->etags[i], sizeof(m->etags[i]));
	} else {
		/* UploadPartCopy */
		struct sfs_buf body, src, range;
		struct req r;
		char *enc = NULL;

		sfs_buf_init(&body, XML_CAP);
		sfs_buf_init(&src, 0);
		sfs_buf_init(&range, 0);
		sfs_buf_addf(&src, "/%s/", m->c->bucket);
		sfs_buf_addf(&range, "bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
		rc = sfs_sigv4_uri_encode(m->src, strlen(m->src), 0, &enc);
		if (!rc)
			sfs_buf_adds(&src, enc);
		if (!rc && (sfs_buf_err(&src) || sfs_buf_err(&range)))
			rc = -ENOMEM;
		req_init(&r, "PUT", m->key);
		if (!rc) {
			req_query(&r, "partNumber", num);
			req_query(&r, "uploadId", m->upload_id);
			req_header(&r, "x-amz-copy-source", src.data);
			req_header(&r, "x-amz-copy-source-range", range.data);
			r.payload_hash = SFS_SIGV4_EMPTY_SHA256;
			r.resp = &body;
			r.check_error_body = 1;
			rc = perform(m->c, &r);
		}
		if (!rc) {
			xmlDocPtr doc = xml_parse(body.data, body.len);
			xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
			char etag[90] = "";
			if (xml_is(root, "CopyPartResult"))
				xml_child_text(root, "ETag", etag, sizeof(etag));
			strip_quotes(etag, m->etags[i], sizeof(m->etags[i]));
			if (!m->etags[i][0])
				rc = S3_ERR(-EIO,
					    "s3: PUT '%s' part %zu: no ETag in the copy answer",
					    m->key, i + 1);
			xmlFreeDoc(doc);
		}
		req_release(&r);
		free(enc);
		sfs_buf_release(&body);
		sfs_buf_release(&src);
		sfs_buf_release(&range);
	}
	return rc;
}

/* Multipart upload (fd >= 0) or multipart copy (src != NULL) of size bytes to key. */
static int multipart(struct sfs_s3_client *c, const char *key, int fd, const char *src,
		     uint64_t size, uint64_t part_size, int flags)
{
	struct mpu m;
	int rc;

	memset(&m, 0, sizeof(m));
	m.c = c;
	m.key = key;
	m.fd = fd;
	m.src = src;
	m.size = size;
	m.flags = flags;
	m.part_size = part_size < MIN_PART ? MIN_PART : part_size;
	if (size / m.part_size >= MAX_PARTS) /* grow parts to fit 10000, in MiB steps */
		m.part_size = ((size / MAX_PARTS) / (1u << 20) + 1) * (1u << 20);
	m.n_parts = size == 0 ? 1 : (size_t)((size + m.part_size - 1) / m.part_size);
	m.etags = calloc(m.n_parts, sizeof(*m.etags));
	if (!m.etags)
		return -ENOMEM;
	rc = mpu_create(c, key, m.upload_id, sizeof(m.upload_id));
	if (rc)
		goto out;
	rc = sfs_s3_parallel(c, m.n_parts, mpu_part, &m);
	if (!rc)
		rc = mpu_complete(&m);
	if (rc)
		mpu_abort(c, key, m.upload_id);
out:
	free(m.etags);
	return rc;
}

int sfs_s3_put_fd(struct sfs_s3_client *c, const char *key, int fd, uint64_t size, char md5_hex[33])
{
	unsigned char md5[16];
	int rc;

	if (size > c->multipart_threshold) {
		rc = multipart(c, key, fd, NULL, size, c->part_size, 0);
		if (!rc && md5_hex) {
			EVP_MD_CTX *whole = EVP_MD_CTX_new();
			unsigned int l = 0;
			if (!whole)
				return -ENOMEM;
			EVP_DigestInit_ex(whole, EVP_md5(), NULL);
			rc = md5_fd(fd, 0, size, md5, whole);
			if (!rc) {
				EVP_DigestFinal_ex(whole, md5, &l);
				sfs_sigv4_hex(md5, 16, md5_hex);
			}
			EVP_MD_CTX_free(whole);
		}
		return rc;
	}
	rc = md5_fd(fd, 0, size, md5, NULL);
	if (rc)
		return S3_ERR(rc, "s3: cannot read the local file for '%s'", key);
	rc = put_fd_range(c, key, fd, 0, size, NULL, NULL, md5, NULL, 0);
	if (!rc && md5_hex)
		sfs_sigv4_hex(md5, 16, md5_hex);
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
		req_init(&r, "GET", key);
		req_header(&r, "range", range);
		r.payload_hash = SFS_SIGV4_EMPTY_SHA256;
		r.dst = (unsigned char *)buf + done;
		r.dst_cap = n - done;
		r.quiet = 1;
		rc = perform(c, &r);
		if (rc == 0 && r.status == 200)
			r.skip = off + done; /* the server ignored Range: refetch skipping */
		if (rc == 0 && r.status == 200 && off + done > 0) {
			rc = perform(c, &r);
		}
		size_t got = r.dst_len, asked = r.dst_cap;
		long status = r.status;
		if (rc) {
			if (status == 416) { /* at or past EOF */
				req_release(&r);
				break;
			}
			/* log like perform() would have */
			if (status == 0)
				sfs_log(LOG_ERR, "s3: GET '%s': cannot reach '%s': %s", key,
					c->endpoint, r.curl_err);
			else
				sfs_log(status == 404 ? LOG_DEBUG : LOG_ERR,
					"s3: GET '%s': HTTP %ld %s", key, status, r.code);
			req_release(&r);
			return rc;
		}
		req_release(&r);
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
	req_init(&r, "GET", key);
	r.payload_hash = SFS_SIGV4_EMPTY_SHA256;
	r.resp = &body;
	rc = perform(c, &r);
	if (!rc) {
		*n = body.len;
		*buf = sfs_buf_detach(&body);
		if (!*buf)
			rc = -ENOMEM;
	}
	req_release(&r);
	sfs_buf_release(&body);
	return rc;
}

int sfs_s3_delete(struct sfs_s3_client *c, const char *key)
{
	struct req r;
	int rc;

	req_init(&r, "DELETE", key);
	r.payload_hash = SFS_SIGV4_EMPTY_SHA256;
	rc = perform(c, &r);
	req_release(&r);
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
	req_init(&r, "POST", NULL);
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
	req_query(&r, "delete", "");
	req_header(&r, "content-md5", md5b64);
	req_header(&r, "content-type", "application/xml");
	r.payload_hash = sha;
	r.body_kind = BODY_MEM;
	r.body = xml;
	r.body_len = (uint64_t)xml_len;
	r.resp = &body;
	rc = perform(c, &r);
	if (!rc) {
		/* per-key failures come back as <Error> children of <DeleteResult> */
		xmlDocPtr res = xml_parse(body.data, body.len);
		xmlNodePtr rr = res ? xmlDocGetRootElement(res) : NULL;
		if (xml_is(rr, "Error")) {
			char code[64], msg[160];
			xml_child_text(rr, "Code", code, sizeof(code));
			xml_child_text(rr, "Message", msg, sizeof(msg));
			rc = S3_ERR(-EIO, "s3: POST ?delete: %s: %s", code, msg);
		}
		for (xmlNodePtr e = rr ? rr->children : NULL; e && !rc; e = e->next) {
			if (!xml_is(e, "Error"))
				continue;
			char k[1024], code[64];
			xml_child_text(e, "Key", k, sizeof(k));
			xml_child_text(e, "Code", code, sizeof(code));
			if (strcmp(code, "NoSuchKey") == 0)
				continue;
			rc = S3_ERR(-EIO, "s3: DELETE '%s': %s", k, code);
		}
		xmlFreeDoc(res);
	}
out:
	req_release(&r);
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

int sfs_s3_list(struct sfs_s3_client *c, const char *prefix, const char *delimiter, int max_keys,
		int single_page, sfs_s3_list_cb cb, void *arg)
{
	struct sfs_buf body;
	char mk[16];
	xmlChar *token = NULL;
	int rc = 0;

	snprintf(mk, sizeof(mk), "%d", max_keys > 0 ? max_keys : 1000);
	sfs_buf_init(&body, XML_CAP);
	for (;;) {
		struct req r;
		req_init(&r, "GET", NULL);
		req_query(&r, "list-type", "2");
		req_query(&r, "prefix", prefix ? prefix : "");
		req_query(&r, "max-keys", mk);
		if (delimiter)
			req_query(&r, "delimiter", delimiter);
		if (token)
			req_query(&r, "continuation-token", (const char *)token);
		r.payload_hash = SFS_SIGV4_EMPTY_SHA256;
		r.resp = &body;
		rc = perform(c, &r);
		req_release(&r);
		xmlFree(token);
		token = NULL;
		if (rc)
			break;

		xmlDocPtr doc = xml_parse(body.data, body.len);
		xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
		if (!xml_is(root, "ListBucketResult")) {
			xmlFreeDoc(doc);
			rc = S3_ERR(-EIO, "s3: GET ?list-type=2 prefix '%s': unreadable answer",
				    prefix ? prefix : "");
			break;
		}
		for (xmlNodePtr n = root->children; n && !rc; n = n->next) {
			if (xml_is(n, "Contents")) {
				struct sfs_s3_objinfo info;
				char tmp[128];
				xmlChar *key = xml_child_dup(n, "Key");
				memset(&info, 0, sizeof(info));
				xml_child_text(n, "Size", tmp, sizeof(tmp));
				info.size = strtoull(tmp, NULL, 10);
				xml_child_text(n, "LastModified", tmp, sizeof(tmp));
				info.mtime_ns = parse_iso8601_ns(tmp);
				xml_child_text(n, "ETag", tmp, sizeof(tmp));
				strip_quotes(tmp, info.etag, sizeof(info.etag));
				if (key)
					rc = cb(arg, (const char *)key, 0, &info);
				xmlFree(key);
			} else if (xml_is(n, "CommonPrefixes")) {
				xmlChar *p = xml_child_dup(n, "Prefix");
				if (p)
					rc = cb(arg, (const char *)p, 1, NULL);
				xmlFree(p);
			}
		}
		char trunc[16];
		xml_child_text(root, "IsTruncated", trunc, sizeof(trunc));
		if (!rc && strcmp(trunc, "true") == 0 && !single_page) {
			token = xml_child_dup(root, "NextContinuationToken");
			if (!token || !*token) {
				rc = S3_ERR(-EIO,
					    "s3: list '%s': truncated without a continuation token",
					    prefix ? prefix : "");
			}
		}
		xmlFreeDoc(doc);
		if (rc || !token)
			break;
	}
	xmlFree(token);
	sfs_buf_release(&body);
	return rc;
}

int sfs_s3_copy(struct sfs_s3_client *c, const char *src, const char *dst, uint64_t size, int flags)
{
	struct sfs_buf body, hdr;
	struct req r;
	char *enc = NULL;
	int rc;

	/*
	 * CopyObject has no conditional form; CompleteMultipartUpload has
	 * (If-None-Match: *), so a conditional copy is a multipart copy.  An
	 * empty object has no byte range to copy: a conditional PUT of nothing.
	 */
	if ((flags & SFS_S3_IF_NONE_MATCH) && size == 0)
		return sfs_s3_put(c, dst, "", 0, SFS_S3_IF_NONE_MATCH);
	if (size > c->copy_threshold || (flags & SFS_S3_IF_NONE_MATCH))
		return multipart(c, dst, -1, src, size,
				 size / MAX_PARTS + 1 > c->copy_part_size ? size / MAX_PARTS + 1
									  : c->copy_part_size,
				 flags & SFS_S3_IF_NONE_MATCH);
	sfs_buf_init(&body, XML_CAP);
	sfs_buf_init(&hdr, 0);
	rc = sfs_sigv4_uri_encode(src, strlen(src), 0, &enc);
	if (rc)
		goto out;
	sfs_buf_addf(&hdr, "/%s/%s", c->bucket, enc);
	if (sfs_buf_err(&hdr)) {
		rc = -ENOMEM;
		goto out;
	}
	req_init(&r, "PUT", dst);
	req_header(&r, "x-amz-copy-source", hdr.data);
	r.payload_hash = SFS_SIGV4_EMPTY_SHA256;
	r.resp = &body;
	r.check_error_body = 1;
	rc = perform(c, &r);
	req_release(&r);
out:
	free(enc);
	sfs_buf_release(&body);
	sfs_buf_release(&hdr);
	return rc;
}
