/*
 * backend/s3_client_uploads.c - multipart uploads left behind, listed
 * (ListMultipartUploads) for `stagefs fsck`, which aborts them with
 * sfs_s3_abort_upload (s3_client_multipart.c).  A daemon killed in
 * the middle of a multipart upload leaves its parts stored (and billed) until
 * the upload is aborted; S3 lists them under the bucket's ?uploads.
 */
#include "backend/s3_client.h"
#include "backend/s3_client_priv.h"

#include "backend/s3_buf.h"
#include "backend/sigv4.h"

#include <errno.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>

int sfs_s3_list_uploads(struct sfs_s3_client *c, const char *prefix,
			int (*cb)(void *arg, const char *key, const char *upload_id,
				  int64_t initiated_ns),
			void *arg)
{
	struct sfs_buf body;
	xmlChar *key_marker = NULL, *id_marker = NULL;
	int rc = 0;

	sfs_buf_init(&body, XML_CAP);
	for (int page = 0;; page++) {
		struct req r;
		sfs_s3c_req_init(&r, "GET", NULL);
		sfs_s3c_req_query(&r, "uploads", "");
		sfs_s3c_req_query(&r, "prefix", prefix ? prefix : "");
		sfs_s3c_req_query(&r, "encoding-type", "url"); /* as sfs_s3_list */
		if (key_marker)
			sfs_s3c_req_query(&r, "key-marker", (const char *)key_marker);
		if (id_marker)
			sfs_s3c_req_query(&r, "upload-id-marker", (const char *)id_marker);
		r.payload_hash = SFS_SIGV4_EMPTY_SHA256;
		r.resp = &body;
		rc = sfs_s3c_perform(c, &r);
		sfs_s3c_req_release(&r);
		xmlFree(key_marker);
		xmlFree(id_marker);
		key_marker = id_marker = NULL;
		if (rc)
			break;

		struct sfs_s3c_page pg;
		rc = sfs_s3c_parse_uploads(body.data, body.len, cb, arg, &pg);
		if (!pg.valid) {
			rc = S3_ERR(-EIO, "s3: GET ?uploads: unreadable answer");
			break;
		}
		if (!rc && pg.truncated) {
			key_marker = pg.next;
			id_marker = pg.next_id;
			pg.next = pg.next_id = NULL;
			/* a server that keeps saying "truncated" without moving on */
			if (!key_marker || !*key_marker || page >= 10000)
				rc = S3_ERR(-EIO, "s3: GET ?uploads: truncated without a marker");
		}
		sfs_s3c_page_release(&pg);
		if (rc || !key_marker)
			break;
	}
	xmlFree(key_marker);
	xmlFree(id_marker);
	sfs_buf_release(&body);
	return rc;
}
