/*
 * backend/s3_client_request.c - one S3 request of the client (s3_client.h):
 * the URL and its SigV4 signature, the curl handle pool and callbacks, the
 * retries with backoff, the mapping of failures to -errno, and the XML
 * helpers that read answers (S3 <Error> documents among them).
 */
#include "backend/s3_client.h"
#include "backend/s3_client_priv.h"

#include "backend/s3_buf.h"
#include "backend/sigv4.h"
#include "common/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define ERRBODY_CAP    (64u << 10) /* cap on an error body */
#define MAX_BACKOFF_MS 20000

/* ---- one request ---- */

void sfs_s3c_req_init(struct req *r, const char *method, const char *key)
{
	memset(r, 0, sizeof(*r));
	r->method = method;
	r->key = key;
	r->fd = -1;
	sfs_buf_init(&r->errbody, ERRBODY_CAP);
}

void sfs_s3c_req_release(struct req *r)
{
	sfs_buf_release(&r->errbody);
}

void sfs_s3c_req_query(struct req *r, const char *name, const char *value)
{
	if (r->n_query >= sizeof(r->query) / sizeof(r->query[0]))
		abort(); /* a programming error, not an input error */
	r->query[r->n_query].name = name;
	r->query[r->n_query].value = value;
	r->n_query++;
}

void sfs_s3c_req_header(struct req *r, const char *name, const char *value)
{
	if (r->n_hdr >= sizeof(r->hdr) / sizeof(r->hdr[0]))
		abort(); /* a programming error, not an input error */
	r->hdr[r->n_hdr].name = name;
	r->hdr[r->n_hdr].value = value;
	r->n_hdr++;
}

/* ---- handle pool ---- */

/* An idle handle (or a new one) and the socket its last transfer used (CURL_SOCKET_BAD). */
static CURL *pool_get(struct sfs_s3_client *c, curl_socket_t *sock)
{
	CURL *h = NULL;
	*sock = CURL_SOCKET_BAD;
	pthread_mutex_lock(&c->pool_lock);
	if (c->n_pool > 0) {
		c->n_pool--;
		h = c->pool[c->n_pool];
		*sock = c->pool_sock[c->n_pool];
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (!h)
		h = curl_easy_init();
	return h;
}

static void pool_put(struct sfs_s3_client *c, CURL *h)
{
	curl_socket_t sock = CURL_SOCKET_BAD;

	if (!h)
		return;
	/* valid after a transfer: the connection the next one will most likely reuse */
	if (curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK)
		sock = CURL_SOCKET_BAD;
	pthread_mutex_lock(&c->pool_lock);
	if (c->n_pool < POOL_MAX) {
		c->pool_sock[c->n_pool] = sock;
		c->pool[c->n_pool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

/* A new connection's socket: the request's, for the header callback. */
static int sockopt_cb(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
	(void)purpose;
	((struct req *)clientp)->sock = fd;
	return CURL_SOCKOPT_OK;
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
	if (!l) {
		/*
		 * The end of the headers: acknowledge them now.  A server that writes
		 * its headers and its body in two segments (Ceph RGW does, for a
		 * copy's and a multi-object delete's XML answer) holds the body until
		 * the headers are acknowledged (Nagle), and Linux delays that ACK by
		 * 40 ms: measured on RGW 16.2, each such answer took ~45 ms.
		 * TCP_QUICKACK sends the delayed ACK at once.
		 */
		int one = 1;
		if (r->sock != CURL_SOCKET_BAD)
			(void)setsockopt(r->sock, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
		return n;
	}
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
		sfs_s3c_strip_quotes(v, r->info.etag, sizeof(r->info.etag));
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
	curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, sockopt_cb);
	curl_easy_setopt(h, CURLOPT_SOCKOPTDATA, r);
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
int sfs_s3c_perform(struct sfs_s3_client *c, struct req *r)
{
	int attempts = r->max_attempts > 0 ? r->max_attempts : c->max_attempts;
	const char *what = r->key ? r->key : c->bucket;
	int rc = -EIO;

	for (int attempt = 1; attempt <= attempts; attempt++) {
		struct curl_slist *hl = NULL;
		struct xfer x = {r, NULL};
		CURL *h = pool_get(c, &r->sock);
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
				    sfs_s3c_parse_error(r->resp->data, r->resp->len, r->code,
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
				sfs_s3c_parse_error(r->errbody.data, r->errbody.len, r->code,
						    sizeof(r->code), r->message,
						    sizeof(r->message));
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
