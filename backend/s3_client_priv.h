/*
 * backend/s3_client_priv.h - what backend/s3_client.c, s3_client_request.c
 * and s3_client_multipart.c share: the client's state, one request, and the
 * helpers that send it and read its answer (not for other callers; the
 * client's interface is s3_client.h).
 */
#ifndef SFS_BACKEND_S3_CLIENT_PRIV_H
#define SFS_BACKEND_S3_CLIENT_PRIV_H

#include "backend/s3_buf.h"
#include "backend/s3_client.h"
#include "backend/s3_xml.h"
#include "backend/sigv4.h"

#include <curl/curl.h>
#include <libxml/tree.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define XML_CAP	 (16u << 20) /* cap on any XML response we buffer */
#define POOL_MAX 32

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
	CURL *pool[POOL_MAX];		   /* idle handles; protected by pool_lock */
	curl_socket_t pool_sock[POOL_MAX]; /* the socket of each one's last transfer */
	int n_pool;			   /* protected by pool_lock */
};

/* ---- one request (s3_client_request.c) ---- */

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
	curl_socket_t
		sock; /* its connection's socket, for the header callback (or CURL_SOCKET_BAD) */
};

/* A new request: method on key (NULL = the bucket), no query, headers or body. */
void sfs_s3c_req_init(struct req *r, const char *method, const char *key);
/* Free what sfs_s3c_req_init allocated (r's error body). */
void sfs_s3c_req_release(struct req *r);
/* Add query parameter name=value; at most 8, both kept by reference. */
void sfs_s3c_req_query(struct req *r, const char *name, const char *value);
/* Add a signed header name: value; at most 8, both kept by reference. */
void sfs_s3c_req_header(struct req *r, const char *name, const char *value);
/* Perform r with retries; 0 on a 2xx answer, else -errno (logged unless r->quiet). */
int sfs_s3c_perform(struct sfs_s3_client *c, struct req *r);

/* reading the answers: backend/s3_xml.h */

#endif
