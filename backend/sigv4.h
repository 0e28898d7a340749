/*
 * backend/sigv4.h - AWS Signature Version 4, header authentication.
 *
 * Pure functions over strings (no I/O, no curl): build the canonical
 * request, the string to sign, the signature and the Authorization header of
 * one HTTP request, exactly as the AWS SigV4 documentation and its test suite
 * define them (see tests/vectors/sigv4/).
 *
 * Inputs are *raw* (not yet percent-encoded): the path is "/bucket/a b/ሴ"
 * and query parameters are name/value pairs; this module percent-encodes
 * them (RFC 3986 unreserved characters kept, UTF-8 bytes as %XX uppercase).
 * The same encoder must be used to build the URL that is sent, so that the
 * server canonicalises to the same bytes: use sfs_sigv4_uri_encode().
 * Paths are not normalised ("." / ".." / "//" are kept), which is what S3
 * requires; each path byte is encoded once (S3 semantics).
 *
 * Errors: functions return 0 or -errno (-ENOMEM, -EINVAL for a missing
 * field).  Output strings are malloc'd and owned by the caller (free()).
 * Thread safety: all functions are reentrant.  Secrets are never logged.
 */
#ifndef SFS_BACKEND_SIGV4_H
#define SFS_BACKEND_SIGV4_H

#include <stddef.h>
#include <time.h>

#define SFS_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* SHA-256 of the empty string, the payload hash of a request without body. */
#define SFS_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct sfs_sigv4_kv {
	const char *name;
	const char *value; /* NULL is treated as "" */
};

struct sfs_sigv4_request {
	const char *method;		  /* "GET", "PUT", ... */
	const char *path;		  /* raw path, starts with '/' */
	const struct sfs_sigv4_kv *query; /* raw query parameters, any order */
	size_t n_query;
	const struct sfs_sigv4_kv
		*headers; /* every header to sign, including host and x-amz-date */
	size_t n_headers;
	const char *payload_hash; /* lowercase hex SHA-256 or "UNSIGNED-PAYLOAD" */
};

struct sfs_sigv4_creds {
	const char *access_key;
	const char *secret_key;
	const char *region;  /* e.g. "us-east-1" */
	const char *service; /* "s3" */
};

/*
 * Append the percent-encoding of s[0..n) to a malloc'd string *out
 * (allocated here).  encode_slash=0 keeps '/' (paths), 1 encodes it (query).
 */
int sfs_sigv4_uri_encode(const char *s, size_t n, int encode_slash, char **out)
	__attribute__((warn_unused_result));

/*
 * Canonical request:  METHOD \n URI \n QUERY \n HEADERS \n SIGNED \n PAYLOAD.
 * Header names are lowercased and sorted, values trimmed with inner runs of
 * spaces collapsed, repeated names joined with ',' in request order.
 * *signed_headers (may be NULL) receives "host;x-amz-date;...".
 */
int sfs_sigv4_canonical_request(const struct sfs_sigv4_request *r, char **out,
				char **signed_headers) __attribute__((warn_unused_result));

/* "AWS4-HMAC-SHA256\n<amz_date>\n<yyyymmdd>/<region>/<service>/aws4_request\n<hex sha256(creq)>" */
int sfs_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
			     const char *canonical_request, char **out)
	__attribute__((warn_unused_result));

/* Hex HMAC-SHA256 of sts under the key derived from secret/date/region/service. */
int sfs_sigv4_signature(const struct sfs_sigv4_creds *c, const char *amz_date, const char *sts,
			char out[65]) __attribute__((warn_unused_result));

/*
 * The full Authorization header value for r, signed at amz_date
 * ("YYYYMMDDTHHMMSSZ"; must match the x-amz-date header of r):
 * "AWS4-HMAC-SHA256 Credential=AK/date/region/service/aws4_request,
 *  SignedHeaders=..., Signature=...".
 */
int sfs_sigv4_authorization(const struct sfs_sigv4_request *r, const struct sfs_sigv4_creds *c,
			    const char *amz_date, char **out) __attribute__((warn_unused_result));

/* Format t (UTC) as "YYYYMMDDTHHMMSSZ". */
void sfs_sigv4_amz_date(time_t t, char out[17]);

/* Lowercase hex SHA-256 / MD5 of a buffer; base64 of raw bytes (out >= 4*ceil(n/3)+1). */
void sfs_sigv4_sha256_hex(const void *buf, size_t n, char out[65]);
void sfs_sigv4_hex(const unsigned char *raw, size_t n, char *out);
void sfs_sigv4_base64(const unsigned char *raw, size_t n, char *out);

#endif
