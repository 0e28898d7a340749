/*
 * backend/s3_client_multipart.c - the client's (s3_client.h) transfers of
 * many requests: uploads from a file descriptor (one PUT, or multipart above
 * multipart_threshold), server-side copies (CopyObject, or UploadPartCopy
 * when large or conditional), and the parallel runner they use.
 */
#include "backend/s3_client.h"
#include "backend/s3_client_priv.h"

#include "backend/s3_buf.h"
#include "backend/sigv4.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PARTS 10000
#define MIN_PART  (5ull << 20)

/* ---- PUT from a file descriptor ---- */

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
			const unsigned char md5[16], char *etag_out, size_t etag_len, int flags)
{
	char md5b64[32];
	struct req r;
	int rc;

	sfs_sigv4_base64(md5, 16, md5b64);
	sfs_s3c_req_init(&r, "PUT", key);
	if (part_no) {
		sfs_s3c_req_query(&r, "partNumber", part_no);
		sfs_s3c_req_query(&r, "uploadId", upload_id);
	}
	r.body_kind = BODY_FD;
	r.fd = fd;
	r.body_off = off;
	r.body_len = len;
	sfs_s3c_req_header(&r, "content-md5", md5b64);
	if (flags & SFS_S3_IF_NONE_MATCH) {
		sfs_s3c_req_header(&r, "if-none-match", "*");
		r.quiet = 1; /* 412 is an answer here, not a failure; logged below otherwise */
	}
	rc = sfs_s3c_perform(c, &r);
	if (rc && r.quiet && rc != -EEXIST && rc != -ENOSYS)
		sfs_log(LOG_ERR, "s3: PUT '%s': %s%ld %s", key, r.status ? "HTTP " : "", r.status,
			r.status ? r.code : r.curl_err);
	if (!rc && etag_out)
		snprintf(etag_out, etag_len, "%s", r.info.etag);
	sfs_s3c_req_release(&r);
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
	sfs_s3c_req_init(&r, "POST", key);
	sfs_s3c_req_query(&r, "uploads", "");
	r.payload_hash = SFS_SIGV4_EMPTY_SHA256;
	r.resp = &body;
	rc = sfs_s3c_perform(c, &r);
	if (!rc) {
		if (sfs_s3c_parse_field(body.data, body.len, "InitiateMultipartUploadResult",
					"UploadId", upload_id, len) ||
		    !upload_id[0])
			rc = S3_ERR(-EIO, "s3: POST '%s' ?uploads: no UploadId in the answer", key);
	}
	sfs_s3c_req_release(&r);
	sfs_buf_release(&body);
	return rc;
}

int sfs_s3_abort_upload(struct sfs_s3_client *c, const char *key, const char *upload_id)
{
	struct req r;
	int rc;

	sfs_s3c_req_init(&r, "DELETE", key);
	sfs_s3c_req_query(&r, "uploadId", upload_id);
	rc = sfs_s3c_perform(c, &r);
	sfs_s3c_req_release(&r);
	return rc;
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
	sfs_s3c_req_init(&r, "POST", m->key);
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
	sfs_s3c_req_query(&r, "uploadId", m->upload_id);
	r.payload_hash = sha;
	r.body_kind = BODY_MEM;
	r.body = xml;
	r.body_len = (uint64_t)xml_len;
	r.resp = &body;
	r.check_error_body = 1;
	if (m->flags & SFS_S3_IF_NONE_MATCH) {
		sfs_s3c_req_header(&r, "if-none-match", "*");
		r.quiet = 1; /* 412 is an answer here, not a failure; logged below otherwise */
	}
	rc = sfs_s3c_perform(m->c, &r);
	if (rc && r.quiet && rc != -EEXIST && rc != -ENOSYS)
		sfs_log(LOG_ERR, "s3: POST '%s' ?uploadId: %s%ld %s", m->key,
			r.status ? "HTTP " : "", r.status, r.status ? r.code : r.curl_err);
out:
	sfs_s3c_req_release(&r);
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
				  m->etags[i], sizeof(m->etags[i]), 0);
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
		sfs_s3c_req_init(&r, "PUT", m->key);
		if (!rc) {
			sfs_s3c_req_query(&r, "partNumber", num);
			sfs_s3c_req_query(&r, "uploadId", m->upload_id);
			sfs_s3c_req_header(&r, "x-amz-copy-source", src.data);
			sfs_s3c_req_header(&r, "x-amz-copy-source-range", range.data);
			r.payload_hash = SFS_SIGV4_EMPTY_SHA256;
			r.resp = &body;
			r.check_error_body = 1;
			rc = sfs_s3c_perform(m->c, &r);
		}
		if (!rc) {
			char etag[90];
			if (sfs_s3c_parse_field(body.data, body.len, "CopyPartResult", "ETag", etag,
						sizeof(etag)))
				etag[0] = '\0';
			sfs_s3c_strip_quotes(etag, m->etags[i], sizeof(m->etags[i]));
			if (!m->etags[i][0])
				rc = S3_ERR(-EIO,
					    "s3: PUT '%s' part %zu: no ETag in the copy answer",
					    m->key, i + 1);
		}
		sfs_s3c_req_release(&r);
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
		(void)sfs_s3_abort_upload(c, key, m.upload_id);
out:
	free(m.etags);
	return rc;
}

int sfs_s3_put_fd(struct sfs_s3_client *c, const char *key, int fd, uint64_t size, char md5_hex[33],
		  int flags)
{
	unsigned char md5[16];
	int rc;

	if (size > c->multipart_threshold) {
		rc = multipart(c, key, fd, NULL, size, c->part_size, flags);
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
	rc = put_fd_range(c, key, fd, 0, size, NULL, NULL, md5, NULL, 0, flags);
	if (!rc && md5_hex)
		sfs_sigv4_hex(md5, 16, md5_hex);
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
	sfs_s3c_req_init(&r, "PUT", dst);
	sfs_s3c_req_header(&r, "x-amz-copy-source", hdr.data);
	r.payload_hash = SFS_SIGV4_EMPTY_SHA256;
	r.resp = &body;
	r.check_error_body = 1;
	rc = sfs_s3c_perform(c, &r);
	sfs_s3c_req_release(&r);
out:
	free(enc);
	sfs_buf_release(&body);
	sfs_buf_release(&hdr);
	return rc;
}
