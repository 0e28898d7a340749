/*
 * backend/s3_client.h - a small S3 client on libcurl (internal to backend/).
 *
 * Keys here are full object keys in the bucket (the vtable in s3.c prepends
 * the store prefix).  Every request is signed with SigV4 (sigv4.h), retried
 * on 5xx, 429, timeouts and connection failures with exponential backoff and
 * jitter (bounded attempts), and its failure is logged in one line naming
 * the method, the key and the HTTP code/reason (secrets are never logged).
 *
 * Errors (-errno): 403 -EACCES, 404 -ENOENT, 409/412 -EEXIST, 400 -EINVAL,
 * 507 or EntityTooLarge -ENOSPC, 501 -ENOSYS, unreachable/exhausted retries
 * and anything else -EIO, response larger than the cap -EFBIG.
 *
 * Thread safety: one client may be used from any number of threads at
 * once; curl easy handles come from an internal pool (one per concurrent
 * request, reused for keep-alive).  Callers must have called
 * curl_global_init() (sfs_s3_client_new does it too, refcounted).
 */
#ifndef SFS_BACKEND_S3_CLIENT_H
#define SFS_BACKEND_S3_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/log.h"

struct sfs_s3_client;

/*
 * Log at LOG_ERR and evaluate to rc.  (common/log.h's sfs_err() expands
 * sfs_log(), a do/while statement, inside a comma expression, so it cannot be
 * used as an expression; this is the expression form.)
 */
#define S3_ERR(rc, ...) \
	(((LOG_ERR) <= sfs_log_level ? sfs_log_emit(LOG_ERR, __VA_ARGS__) : (void)0), (rc))

struct sfs_s3_opts {
	const char
		*endpoint;  /* "http://127.0.0.1:9000"; NULL = https://s3.<region>.amazonaws.com */
	const char *bucket; /* required */
	const char *region; /* NULL = "us-east-1" */
	int path_style;	    /* 1 = endpoint/bucket/key, 0 = bucket.host/key */
	const char *access_key; /* NULL = anonymous (requests are not signed) */
	const char *secret_key;
	const char *session_token; /* sent (and signed) as x-amz-security-token */
	int max_attempts;	   /* per request, >= 1; 0 = 6 */
	int backoff_ms;		   /* first retry delay; doubles, capped, with jitter; 0 = 100 */
	long connect_timeout_ms;   /* 0 = 10000 */
	long stall_timeout_s;	   /* abort a transfer that moves < 1 byte/s this long; 0 = 60 */
	uint64_t part_size;	   /* multipart part size; 0 = 64 MiB (min 5 MiB enforced by S3) */
	uint64_t multipart_threshold; /* fd uploads above this go multipart; 0 = part_size */
	uint64_t copy_threshold;      /* copies above this use UploadPartCopy; 0 = 5 GiB */
	uint64_t copy_part_size;      /* UploadPartCopy part size; 0 = 512 MiB (min 5 MiB) */
	int threads;		      /* parallel parts / copies; 0 = 4 */
};

struct sfs_s3_objinfo {
	uint64_t size;
	int64_t mtime_ns; /* Last-Modified / LastModified; 0 if unknown */
	char etag[80];	  /* without quotes; "" if unknown */
};

/* Create a client (copies every string).  -EINVAL without bucket, -ENOMEM. */
int sfs_s3_client_new(const struct sfs_s3_opts *o, struct sfs_s3_client **out)
	__attribute__((warn_unused_result));
/* Free the client and its pooled handles.  NULL-safe.  No request may be running. */
void sfs_s3_client_free(struct sfs_s3_client *c);

/* The endpoint the client talks to ("http://127.0.0.1:9000"); owned by the client. */
const char *sfs_s3_client_endpoint(const struct sfs_s3_client *c);
/* Objects up to this size are copied with one CopyObject, larger ones in parts. */
uint64_t sfs_s3_client_copy_threshold(const struct sfs_s3_client *c);
/* Uploads of more bytes than this are multipart (sfs_s3_put_fd). */
uint64_t sfs_s3_client_multipart_threshold(const struct sfs_s3_client *c);

/*
 * Probe the bucket (HEAD bucket) with at most max_attempts attempts (0 =
 * client default), logging nothing.  On failure *status gets the HTTP code
 * (0 when no response) and reason (len bytes) the curl or HTTP reason.
 */
int sfs_s3_head_bucket(struct sfs_s3_client *c, int max_attempts, long *status, char *reason,
		       size_t len) __attribute__((warn_unused_result));

/* HEAD an object.  -ENOENT (logged at debug level only) when absent. */
int sfs_s3_head(struct sfs_s3_client *c, const char *key, struct sfs_s3_objinfo *info)
	__attribute__((warn_unused_result));

/* put, copy: create only if the key is absent (If-None-Match: *; 412 -> -EEXIST, 501 -> -ENOSYS) */
#define SFS_S3_IF_NONE_MATCH 0x1

/* PUT a whole object from memory with Content-MD5 and a signed SHA-256 payload. */
int sfs_s3_put(struct sfs_s3_client *c, const char *key, const void *buf, size_t n, int flags)
	__attribute__((warn_unused_result));

/*
 * PUT size bytes of fd (from offset 0, read with pread; fd must be readable)
 * as key: one PUT with Content-MD5 up to the multipart threshold, else a
 * multipart upload with parallel parts (aborted on failure).  md5_hex (may be
 * NULL) receives the MD5 of the whole content.  flags: SFS_S3_IF_NONE_MATCH
 * conditions the PUT, or the multipart upload's completion (see
 * sfs_s3_client_multipart_threshold: a server may honour only the first).
 */
int sfs_s3_put_fd(struct sfs_s3_client *c, const char *key, int fd, uint64_t size, char md5_hex[33],
		  int flags) __attribute__((warn_unused_result));

/*
 * Read up to n bytes at off into buf.  Returns the byte count, short only at
 * the end of the object (0 at or past EOF: a 416 answer), or -errno.
 */
ssize_t sfs_s3_get_range(struct sfs_s3_client *c, const char *key, uint64_t off, void *buf,
			 size_t n) __attribute__((warn_unused_result));

/* GET a whole object of at most max bytes (-EFBIG when larger); *buf malloc'd (NUL-terminated). */
int sfs_s3_get(struct sfs_s3_client *c, const char *key, void **buf, size_t *n, size_t max)
	__attribute__((warn_unused_result));

/* DELETE one object (S3: absent keys succeed too). */
int sfs_s3_delete(struct sfs_s3_client *c, const char *key) __attribute__((warn_unused_result));

/* Multi-object delete (POST ?delete, batches of 1000).  Any per-key error -> -EIO. */
int sfs_s3_delete_many(struct sfs_s3_client *c, char *const *keys, size_t n)
	__attribute__((warn_unused_result));

/*
 * ListObjectsV2 under prefix ("" = whole bucket), following continuation
 * tokens.  delimiter NULL = recursive.  cb gets each key (full key) or
 * common prefix (is_prefix=1, info NULL); a non-zero return stops the listing
 * and is returned.  max_keys limits the page size (0 = 1000) and, when
 * single_page is set, the whole listing.
 */
typedef int (*sfs_s3_list_cb)(void *arg, const char *key, int is_prefix,
			      const struct sfs_s3_objinfo *info);
int sfs_s3_list(struct sfs_s3_client *c, const char *prefix, const char *delimiter, int max_keys,
		int single_page, sfs_s3_list_cb cb, void *arg) __attribute__((warn_unused_result));

/*
 * Does the server url-encode a listing's keys when asked (encoding-type=url)?
 * One ListObjectsV2 request of one key below prefix: 1 yes, 0 no (it sends
 * keys raw, and a key holding a control character would make its listings
 * unreadable), or -errno.
 */
int sfs_s3_list_encodes(struct sfs_s3_client *c, const char *prefix)
	__attribute__((warn_unused_result));

/*
 * Server-side copy of src (size bytes, as known by the caller) to dst:
 * CopyObject, or a multipart UploadPartCopy above the copy threshold.
 * Handles S3's "200 OK with an <Error> body" answer.  With
 * SFS_S3_IF_NONE_MATCH it is always a multipart copy whose completion is
 * conditional (S3 has no conditional CopyObject): -EEXIST when dst exists,
 * -ENOSYS when the server does not implement the condition.
 */
/*
 * Multipart uploads begun under prefix and neither completed nor aborted
 * (ListMultipartUploads, every page): cb(key, upload id, initiated, ns since
 * the epoch); non-zero from cb stops and is returned.
 */
int sfs_s3_list_uploads(struct sfs_s3_client *c, const char *prefix,
			int (*cb)(void *arg, const char *key, const char *upload_id,
				  int64_t initiated_ns),
			void *arg) __attribute__((warn_unused_result));
/*
 * Abort multipart upload upload_id of key (its parts are freed).  A failed
 * upload's own abort may ignore the result: fsck finds what it leaves.
 */
int sfs_s3_abort_upload(struct sfs_s3_client *c, const char *key, const char *upload_id);

int sfs_s3_copy(struct sfs_s3_client *c, const char *src, const char *dst, uint64_t size, int flags)
	__attribute__((warn_unused_result));

/*
 * Run fn(ctx, i) for i in [0, n) on up to the client's thread count
 * (the calling thread included); stops handing out work after the first
 * failure and returns it.
 */
int sfs_s3_parallel(struct sfs_s3_client *c, size_t n, int (*fn)(void *ctx, size_t i), void *ctx)
	__attribute__((warn_unused_result));

#endif
