/*
 * backend/s3_xml.h - reading S3's XML answers (libxml2), apart from sending
 * the requests (s3_client*.c), so that each reader can be tested and fuzzed on
 * bytes alone.  Every reader takes the answer's n bytes as received (not
 * NUL-terminated, at most XML_CAP of them: the client buffers no more), never
 * touches the network (XML_PARSE_NONET) or prints libxml's errors, and
 * treats a document it cannot read, or whose root is not the expected
 * element, as -EIO.  libxml2 bounds the nesting depth itself (256 levels
 * without XML_PARSE_HUGE, which is never set).
 */
#ifndef SFS_BACKEND_S3_XML_H
#define SFS_BACKEND_S3_XML_H

#include "backend/s3_client.h"

#include <libxml/tree.h>
#include <stddef.h>
#include <stdint.h>

/* Parse an XML answer of n bytes; NULL when it is empty or not XML. */
xmlDocPtr sfs_s3c_xml_parse(const char *buf, size_t n);
/* 1 when n is an element named name. */
int sfs_s3c_xml_is(xmlNodePtr n, const char *name);
/* Text of child `name` copied into out (len bytes, truncated); "" when absent. */
void sfs_s3c_xml_child_text(xmlNodePtr parent, const char *name, char *out, size_t len);
/* Text of child `name`, malloc'd via libxml (xmlFree), or NULL. */
xmlChar *sfs_s3c_xml_child_dup(xmlNodePtr parent, const char *name);
/* An S3 time ("2026-12-01T10:00:00.000Z") as ns since the epoch; 0 when unreadable or
 * outside 1970..2262 (what an int64_t of ns holds). */
int64_t sfs_s3c_parse_iso8601_ns(const char *s);
/* in without one pair of surrounding double quotes, into out (len bytes, truncated). */
void sfs_s3c_strip_quotes(const char *in, char *out, size_t len);

/*
 * An <Error> document: its Code and Message into code (clen bytes) and msg
 * (mlen bytes), and 1; 0 (code and msg untouched) for anything else.
 */
int sfs_s3c_parse_error(const char *buf, size_t n, char *code, size_t clen, char *msg, size_t mlen);

/* What one page of a listing says about the next. */
struct sfs_s3c_page {
	int valid;	  /* 1 when the answer was such a page (its root element matched) */
	int encoded;	  /* the page said <EncodingType>url</EncodingType> */
	int entries;	  /* Contents + CommonPrefixes (Upload for uploads) on the page */
	int truncated;	  /* IsTruncated was "true" */
	xmlChar *next;	  /* NextContinuationToken / NextKeyMarker, or NULL; xmlFree */
	xmlChar *next_id; /* NextUploadIdMarker (uploads only), or NULL; xmlFree */
};

/*
 * One ListObjectsV2 page (<ListBucketResult>): cb for each Contents (key,
 * size, LastModified, ETag without quotes) and CommonPrefixes (is_prefix 1,
 * info NULL) in document order (keys and prefixes url-decoded when the page
 * says <EncodingType>url</EncodingType>; one that decodes to a NUL is skipped), stopping at cb's first non-zero return,
 * which is returned; *pg filled in every case (its strings are the caller's
 * to free: sfs_s3c_page_release).  -EIO when it is not such a page (pg then
 * empty, pg->valid 0).
 */
int sfs_s3c_parse_list(const char *buf, size_t n, sfs_s3_list_cb cb, void *arg,
		       struct sfs_s3c_page *pg) __attribute__((warn_unused_result));

/* cb of sfs_s3c_parse_uploads: one open multipart upload */
typedef int (*sfs_s3c_upload_cb)(void *arg, const char *key, const char *upload_id,
				 int64_t initiated_ns);
/*
 * One ListMultipartUploads page (<ListMultipartUploadsResult>): cb for each
 * Upload with a Key and a non-empty UploadId, as sfs_s3c_parse_list (Key and
 * NextKeyMarker url-decoded as there).
 */
int sfs_s3c_parse_uploads(const char *buf, size_t n, sfs_s3c_upload_cb cb, void *arg,
			  struct sfs_s3c_page *pg) __attribute__((warn_unused_result));

/*
 * A multi-object delete's <DeleteResult>: 0 when every key went (NoSuchKey
 * counts as gone), else -EIO with "KEY: CODE" of the first failure in what
 * (wlen bytes); -EIO "CODE: MESSAGE" for an <Error> answer.  An empty or
 * unreadable answer is 0 (Quiet mode answers only failures; S3 documents
 * no other body).
 */
int sfs_s3c_parse_delete(const char *buf, size_t n, char *what, size_t wlen)
	__attribute__((warn_unused_result));

/*
 * The text of child `child` of a document whose root is `root` into out (len
 * bytes): InitiateMultipartUploadResult/UploadId, CopyPartResult/ETag,
 * CopyObjectResult/ETag.  0 when the root matches (out may be ""), -EIO
 * otherwise (out "").
 */
int sfs_s3c_parse_field(const char *buf, size_t n, const char *root, const char *child, char *out,
			size_t len) __attribute__((warn_unused_result));

void sfs_s3c_page_release(struct sfs_s3c_page *pg);

#endif
