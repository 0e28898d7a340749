/*
 * tests/unit/test_s3_xml.c - the readers of S3's XML answers (backend/s3_xml.h)
 * on the answers real servers send, on broken and hostile ones, and on what the
 * fuzzer found (tests/fuzz/regress/s3_xml/).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backend/s3_xml.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define LIST_PAGE                                                                             \
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                                        \
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"                \
	"<Name>b</Name><Prefix>p/</Prefix><IsTruncated>true</IsTruncated>"                    \
	"<NextContinuationToken>tok1</NextContinuationToken>"                                 \
	"<Contents><Key>p/a.bin</Key><LastModified>2026-12-01T10:00:00.123Z</LastModified>"   \
	"<ETag>&quot;9e107d9d372bb6826bd81d3542a419d6&quot;</ETag><Size>43</Size></Contents>" \
	"<CommonPrefixes><Prefix>p/d/</Prefix></CommonPrefixes>"                              \
	"<Contents><Key>p/b</Key><Size>0</Size></Contents></ListBucketResult>"

struct seen {
	int n, prefixes, stop_at;
	char keys[4][64];
	struct sfs_s3_objinfo first;
};

static int on_key(void *arg, const char *key, int is_prefix, const struct sfs_s3_objinfo *info)
{
	struct seen *s = arg;
	if (s->n < 4)
		snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
	if (s->n == 0 && info)
		s->first = *info;
	s->n++;
	s->prefixes += is_prefix;
	return s->stop_at && s->n == s->stop_at ? -EINTR : 0;
}

static void t_list_page(void **state)
{
	struct seen s = {0};
	struct sfs_s3c_page pg;

	(void)state;
	assert_int_equal(sfs_s3c_parse_list(LIST_PAGE, strlen(LIST_PAGE), on_key, &s, &pg), 0);
	assert_true(pg.valid && pg.truncated);
	assert_int_equal(pg.entries, 3);
	assert_string_equal((const char *)pg.next, "tok1");
	assert_int_equal(s.n, 3);
	assert_int_equal(s.prefixes, 1);
	assert_string_equal(s.keys[0], "p/a.bin");
	assert_string_equal(s.keys[1], "p/d/");
	assert_string_equal(s.keys[2], "p/b");
	assert_int_equal(s.first.size, 43);
	assert_string_equal(s.first.etag, "9e107d9d372bb6826bd81d3542a419d6");
	assert_true(s.first.mtime_ns == 1796119200123000000LL);
	sfs_s3c_page_release(&pg);
	assert_null(pg.next);
}

static void t_list_stops_and_refuses(void **state)
{
	struct seen s = {.stop_at = 2};
	struct sfs_s3c_page pg;
	static const char *const bad[] = {"", "not xml", "<Error><Code>x</Code></Error>",
					  "<ListBucketResult><Contents>", "<a><b></a>"};

	(void)state;
	assert_int_equal(sfs_s3c_parse_list(LIST_PAGE, strlen(LIST_PAGE), on_key, &s, &pg), -EINTR);
	assert_int_equal(s.n, 2);
	sfs_s3c_page_release(&pg);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&s, 0, sizeof(s));
		assert_int_equal(sfs_s3c_parse_list(bad[i], strlen(bad[i]), on_key, &s, &pg), -EIO);
		assert_false(pg.valid);
		assert_int_equal(s.n, 0);
		sfs_s3c_page_release(&pg);
	}
	/* libxml2's own depth bound: 10,000 nested elements are refused, not recursed into */
	static char deep[10000 * 7 + 64];
	size_t o = (size_t)sprintf(deep, "<ListBucketResult>");
	for (int i = 0; i < 10000; i++)
		o += (size_t)sprintf(deep + o, "<a>");
	assert_int_equal(sfs_s3c_parse_list(deep, o, on_key, &s, &pg), -EIO);
	sfs_s3c_page_release(&pg);
}

/* encoding-type=url: keys come %-encoded ('+' a space) when the page says so, raw otherwise */
static void t_list_url_encoded(void **state)
{
	const char *enc = "<ListBucketResult><EncodingType>url</EncodingType>"
			  "<Contents><Key>a%20b%2Bc%25d+e</Key><Size>1</Size></Contents>"
			  "<Contents><Key>ctl%01x</Key></Contents>"
			  "<Contents><Key>nul%00x</Key></Contents>"
			  "<CommonPrefixes><Prefix>%C3%A9/</Prefix></CommonPrefixes>"
			  "</ListBucketResult>";
	const char *raw = "<ListBucketResult><Contents><Key>a%20b+c</Key></Contents>"
			  "</ListBucketResult>";
	struct seen s = {0};
	struct sfs_s3c_page pg;

	(void)state;
	assert_int_equal(sfs_s3c_parse_list(enc, strlen(enc), on_key, &s, &pg), 0);
	assert_int_equal(s.n, 3); /* the key holding a NUL is skipped */
	assert_string_equal(s.keys[0], "a b+c%d e");
	assert_string_equal(s.keys[1], "ctl\x01x");
	assert_string_equal(s.keys[2], "\xc3\xa9/");
	assert_int_equal(pg.entries, 4);
	assert_true(pg.encoded);
	sfs_s3c_page_release(&pg);
	memset(&s, 0, sizeof(s));
	assert_int_equal(sfs_s3c_parse_list(raw, strlen(raw), on_key, &s, &pg), 0);
	assert_string_equal(s.keys[0], "a%20b+c");
	assert_false(pg.encoded); /* a server that ignored encoding-type=url */
	sfs_s3c_page_release(&pg);
}

static int on_upload(void *arg, const char *key, const char *id, int64_t initiated_ns)
{
	struct seen *s = arg;
	snprintf(s->keys[s->n++ & 3], sizeof(s->keys[0]), "%s %s %d", key, id, initiated_ns > 0);
	return 0;
}

static void t_uploads_page(void **state)
{
	const char *doc =
		"<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
		"<NextKeyMarker>k</NextKeyMarker><NextUploadIdMarker>u</NextUploadIdMarker>"
		"<Upload><Key>_staging/a</Key><UploadId>2~abc</UploadId>"
		"<Initiated>2026-12-01T10:00:00.000Z</Initiated></Upload>"
		"<Upload><Key>no-id</Key><UploadId></UploadId></Upload>"
		"</ListMultipartUploadsResult>";
	struct seen s = {0};
	struct sfs_s3c_page pg;

	(void)state;
	assert_int_equal(sfs_s3c_parse_uploads(doc, strlen(doc), on_upload, &s, &pg), 0);
	assert_int_equal(s.n, 1); /* an upload without an id is not reported */
	assert_string_equal(s.keys[0], "_staging/a 2~abc 1");
	assert_true(pg.valid && pg.truncated && pg.entries == 2);
	assert_string_equal((const char *)pg.next, "k");
	assert_string_equal((const char *)pg.next_id, "u");
	sfs_s3c_page_release(&pg);
	assert_int_equal(sfs_s3c_parse_uploads(LIST_PAGE, strlen(LIST_PAGE), on_upload, &s, &pg),
			 -EIO);
	sfs_s3c_page_release(&pg);
}

static void t_delete_result(void **state)
{
	char what[256];
	const char *ok = "<DeleteResult><Deleted><Key>a</Key></Deleted>"
			 "<Error><Key>b</Key><Code>NoSuchKey</Code></Error></DeleteResult>";
	const char *denied = "<DeleteResult><Error><Key>b</Key><Code>NoSuchKey</Code></Error>"
			     "<Error><Key>c</Key><Code>AccessDenied</Code></Error></DeleteResult>";
	const char *err = "<Error><Code>SlowDown</Code><Message>reduce</Message></Error>";

	(void)state;
	assert_int_equal(sfs_s3c_parse_delete(ok, strlen(ok), what, sizeof(what)), 0);
	assert_int_equal(sfs_s3c_parse_delete("", 0, what, sizeof(what)),
			 0); /* quiet: nothing failed */
	assert_int_equal(sfs_s3c_parse_delete(denied, strlen(denied), what, sizeof(what)), -EIO);
	assert_string_equal(what, "c: AccessDenied");
	assert_int_equal(sfs_s3c_parse_delete(err, strlen(err), what, sizeof(what)), -EIO);
	assert_string_equal(what, "SlowDown: reduce");
}

static void t_error_and_field(void **state)
{
	char code[8] = "-", msg[8] = "-", out[16];
	const char *err =
		"<Error><Code>NoSuchBucketAtAll</Code><Message>gone away</Message></Error>";
	const char *init = "<InitiateMultipartUploadResult><UploadId>2~xyz</UploadId>"
			   "</InitiateMultipartUploadResult>";

	(void)state;
	assert_int_equal(
		sfs_s3c_parse_error(err, strlen(err), code, sizeof(code), msg, sizeof(msg)), 1);
	assert_string_equal(code, "NoSuchB"); /* truncated to the buffer */
	assert_string_equal(msg, "gone aw");
	assert_int_equal(
		sfs_s3c_parse_error(init, strlen(init), code, sizeof(code), msg, sizeof(msg)), 0);
	assert_int_equal(sfs_s3c_parse_field(init, strlen(init), "InitiateMultipartUploadResult",
					     "UploadId", out, sizeof(out)),
			 0);
	assert_string_equal(out, "2~xyz");
	assert_int_equal(
		sfs_s3c_parse_field(init, strlen(init), "CopyPartResult", "ETag", out, sizeof(out)),
		-EIO);
	assert_string_equal(out, "");
}

/* the fuzzer's first find: LastModified in the year 1013 overflowed int64_t ns (UBSan) */
static void t_iso8601_range(void **state)
{
	(void)state;
	assert_true(sfs_s3c_parse_iso8601_ns("1970-01-01T00:00:01.5Z") == 1500000000LL);
	assert_true(sfs_s3c_parse_iso8601_ns("1013-12-01T10:00:00.123Z") == 0);
	assert_true(sfs_s3c_parse_iso8601_ns("99999-12-01T10:00:00Z") == 0);
	assert_true(sfs_s3c_parse_iso8601_ns("2262-01-01T00:00:00Z") > 0);
	assert_true(sfs_s3c_parse_iso8601_ns("yesterday") == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_list_page),	      cmocka_unit_test(t_list_stops_and_refuses),
		cmocka_unit_test(t_list_url_encoded), cmocka_unit_test(t_uploads_page),
		cmocka_unit_test(t_delete_result),    cmocka_unit_test(t_error_and_field),
		cmocka_unit_test(t_iso8601_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
