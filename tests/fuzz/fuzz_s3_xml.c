/*
 * tests/fuzz/fuzz_s3_xml.c - libFuzzer harness: every reader of S3's XML
 * answers (backend/s3_xml.h: error, ListObjectsV2 page, ListMultipartUploads
 * page, multi-object delete result, single fields) on the same bytes, as a
 * hostile or broken server could send them.
 */
#include "backend/s3_xml.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_key(void *arg, const char *key, int is_prefix, const struct sfs_s3_objinfo *info)
{
	size_t *n = arg;
	*n += strlen(key) + (size_t)is_prefix + (info ? strlen(info->etag) : 0);
	return *n > (1u << 20); /* a callback that stops a listing */
}

static int on_upload(void *arg, const char *key, const char *id, int64_t initiated_ns)
{
	size_t *n = arg;
	*n += strlen(key) + strlen(id) + (initiated_ns != 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	char code[64], msg[160], what[1200], field[90];
	struct sfs_s3c_page pg;
	size_t n = 0;

	(void)sfs_s3c_parse_error(buf, size, code, sizeof(code), msg, sizeof(msg));
	(void)!sfs_s3c_parse_list(buf, size, on_key, &n, &pg);
	sfs_s3c_page_release(&pg);
	(void)!sfs_s3c_parse_uploads(buf, size, on_upload, &n, &pg);
	sfs_s3c_page_release(&pg);
	(void)!sfs_s3c_parse_delete(buf, size, what, sizeof(what));
	(void)!sfs_s3c_parse_field(buf, size, "InitiateMultipartUploadResult", "UploadId", field,
				   sizeof(field));
	(void)!sfs_s3c_parse_field(buf, size, "CopyPartResult", "ETag", field, sizeof(field));
	if (size < 64) {
		char s[64], out[64];
		memcpy(s, data, size);
		s[size] = '\0';
		(void)sfs_s3c_parse_iso8601_ns(s);
		sfs_s3c_strip_quotes(s, out, sizeof(out));
	}
	return 0;
}
