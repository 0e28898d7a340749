/* backend/s3_xml.c - S3's XML answers read from their bytes; see s3_xml.h */
#include "backend/s3_xml.h"

#include <errno.h>
#include <libxml/parser.h>
#include <libxml/uri.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

xmlDocPtr sfs_s3c_xml_parse(const char *buf, size_t n)
{
	if (!buf || n == 0 || n > INT32_MAX)
		return NULL;
	return xmlReadMemory(buf, (int)n, "s3.xml", NULL,
			     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
				     XML_PARSE_NOBLANKS);
}

int sfs_s3c_xml_is(xmlNodePtr n, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlNodePtr xml_child(xmlNodePtr parent, const char *name)
{
	for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
		if (sfs_s3c_xml_is(n, name))
			return n;
	return NULL;
}

void sfs_s3c_xml_child_text(xmlNodePtr parent, const char *name, char *out, size_t len)
{
	xmlChar *t = sfs_s3c_xml_child_dup(parent, name);
	snprintf(out, len, "%s", t ? (const char *)t : "");
	xmlFree(t);
}

xmlChar *sfs_s3c_xml_child_dup(xmlNodePtr parent, const char *name)
{
	xmlNodePtr n = xml_child(parent, name);
	return n ? xmlNodeGetContent(n) : NULL;
}

int64_t sfs_s3c_parse_iso8601_ns(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return 0;
	time_t t = timegm(&tm);
	/* a year no clock shows (strptime takes any number of digits): unknown, not overflow */
	if (t == (time_t)-1 || t < 0 || t > INT64_MAX / 1000000000LL - 1)
		return 0;
	int64_t ns = (int64_t)t * 1000000000LL;
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

void sfs_s3c_strip_quotes(const char *in, char *out, size_t len)
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

int sfs_s3c_parse_error(const char *buf, size_t n, char *code, size_t clen, char *msg, size_t mlen)
{
	xmlDocPtr doc = sfs_s3c_xml_parse(buf, n);
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	int is_err = sfs_s3c_xml_is(root, "Error");

	if (is_err) {
		sfs_s3c_xml_child_text(root, "Code", code, clen);
		sfs_s3c_xml_child_text(root, "Message", msg, mlen);
	}
	xmlFreeDoc(doc);
	return is_err;
}

void sfs_s3c_page_release(struct sfs_s3c_page *pg)
{
	xmlFree(pg->next);
	xmlFree(pg->next_id);
	memset(pg, 0, sizeof(*pg));
}

/*
 * A value of a page that says <EncodingType>url</EncodingType> (the keys a
 * listing asked with encoding-type=url to get, as XML 1.0 cannot carry every
 * byte a key may hold): '+' is a space (botocore decodes so; a '+' comes as
 * %2B), then %XX.  Takes t (xmlFree) and returns the decoded value (xmlFree),
 * or NULL when t is NULL, decodes to a NUL byte, or memory is short.
 */
static xmlChar *url_decoded(xmlChar *t)
{
	char *d = NULL;

	if (t) {
		for (xmlChar *p = t; *p; p++)
			if (*p == '+')
				*p = ' ';
		int n = xmlStrlen(t);
		d = xmlURIUnescapeString((const char *)t, n, NULL);
		/* xmlURIUnescapeString writes the decoded bytes and a NUL: a shorter
		 * string means a %00 in the key, which no path can hold */
		if (d && strstr((const char *)t, "%00")) {
			xmlFree(d);
			d = NULL;
		}
	}
	xmlFree(t);
	return (xmlChar *)d;
}

/* child name of e, url-decoded when enc */
static xmlChar *child_value(xmlNodePtr e, const char *name, int enc)
{
	xmlChar *t = sfs_s3c_xml_child_dup(e, name);
	return enc ? url_decoded(t) : t;
}

static int url_encoded(xmlNodePtr root)
{
	char enc[8];
	sfs_s3c_xml_child_text(root, "EncodingType", enc, sizeof(enc));
	return strcmp(enc, "url") == 0;
}

/* the page's root when it is named root, with pg's truncation and markers read */
static xmlNodePtr page_root(xmlDocPtr doc, const char *root, const char *next, const char *next_id,
			    struct sfs_s3c_page *pg)
{
	xmlNodePtr r = doc ? xmlDocGetRootElement(doc) : NULL;
	char trunc[16];

	memset(pg, 0, sizeof(*pg));
	if (!sfs_s3c_xml_is(r, root))
		return NULL;
	pg->valid = 1;
	sfs_s3c_xml_child_text(r, "IsTruncated", trunc, sizeof(trunc));
	pg->truncated = strcmp(trunc, "true") == 0;
	pg->next = sfs_s3c_xml_child_dup(r, next);
	pg->next_id = next_id ? sfs_s3c_xml_child_dup(r, next_id) : NULL;
	return r;
}

int sfs_s3c_parse_list(const char *buf, size_t n, sfs_s3_list_cb cb, void *arg,
		       struct sfs_s3c_page *pg)
{
	xmlDocPtr doc = sfs_s3c_xml_parse(buf, n);
	xmlNodePtr root = page_root(doc, "ListBucketResult", "NextContinuationToken", NULL, pg);
	int rc = root ? 0 : -EIO, enc = root && url_encoded(root);

	pg->encoded = enc;
	for (xmlNodePtr e = root ? root->children : NULL; e && !rc; e = e->next) {
		if (sfs_s3c_xml_is(e, "Contents")) {
			struct sfs_s3_objinfo info;
			char tmp[128];
			xmlChar *key = child_value(e, "Key", enc);

			pg->entries++;
			memset(&info, 0, sizeof(info));
			sfs_s3c_xml_child_text(e, "Size", tmp, sizeof(tmp));
			info.size = strtoull(tmp, NULL, 10);
			sfs_s3c_xml_child_text(e, "LastModified", tmp, sizeof(tmp));
			info.mtime_ns = sfs_s3c_parse_iso8601_ns(tmp);
			sfs_s3c_xml_child_text(e, "ETag", tmp, sizeof(tmp));
			sfs_s3c_strip_quotes(tmp, info.etag, sizeof(info.etag));
			if (key)
				rc = cb(arg, (const char *)key, 0, &info);
			xmlFree(key);
		} else if (sfs_s3c_xml_is(e, "CommonPrefixes")) {
			xmlChar *p = child_value(e, "Prefix", enc);

			pg->entries++;
			if (p)
				rc = cb(arg, (const char *)p, 1, NULL);
			xmlFree(p);
		}
	}
	xmlFreeDoc(doc);
	return rc;
}

int sfs_s3c_parse_uploads(const char *buf, size_t n, sfs_s3c_upload_cb cb, void *arg,
			  struct sfs_s3c_page *pg)
{
	xmlDocPtr doc = sfs_s3c_xml_parse(buf, n);
	xmlNodePtr root = page_root(doc, "ListMultipartUploadsResult", "NextKeyMarker",
				    "NextUploadIdMarker", pg);
	int rc = root ? 0 : -EIO, enc = root && url_encoded(root);

	if (enc) /* the key marker goes back as the next page's key-marker: as the key is */
		pg->next = url_decoded(pg->next);

	for (xmlNodePtr e = root ? root->children : NULL; e && !rc; e = e->next) {
		if (!sfs_s3c_xml_is(e, "Upload"))
			continue;
		char when[64];
		xmlChar *key = child_value(e, "Key", enc);
		xmlChar *id = sfs_s3c_xml_child_dup(e, "UploadId");

		pg->entries++;
		sfs_s3c_xml_child_text(e, "Initiated", when, sizeof(when));
		if (key && id && *id)
			rc = cb(arg, (const char *)key, (const char *)id,
				sfs_s3c_parse_iso8601_ns(when));
		xmlFree(key);
		xmlFree(id);
	}
	xmlFreeDoc(doc);
	return rc;
}

int sfs_s3c_parse_delete(const char *buf, size_t n, char *what, size_t wlen)
{
	xmlDocPtr doc = sfs_s3c_xml_parse(buf, n);
	xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
	char a[1024], code[64];
	int rc = 0;

	if (wlen)
		what[0] = '\0';
	if (sfs_s3c_xml_is(root, "Error")) {
		sfs_s3c_xml_child_text(root, "Code", code, sizeof(code));
		sfs_s3c_xml_child_text(root, "Message", a, sizeof(a));
		snprintf(what, wlen, "%s: %s", code, a);
		rc = -EIO;
	}
	for (xmlNodePtr e = root ? root->children : NULL; e && !rc; e = e->next) {
		if (!sfs_s3c_xml_is(e, "Error"))
			continue;
		sfs_s3c_xml_child_text(e, "Key", a, sizeof(a));
		sfs_s3c_xml_child_text(e, "Code", code, sizeof(code));
		if (strcmp(code, "NoSuchKey") == 0)
			continue;
		snprintf(what, wlen, "%s: %s", a, code);
		rc = -EIO;
	}
	xmlFreeDoc(doc);
	return rc;
}

int sfs_s3c_parse_field(const char *buf, size_t n, const char *root, const char *child, char *out,
			size_t len)
{
	xmlDocPtr doc = sfs_s3c_xml_parse(buf, n);
	xmlNodePtr r = doc ? xmlDocGetRootElement(doc) : NULL;
	int rc = sfs_s3c_xml_is(r, root) ? 0 : -EIO;

	if (len)
		out[0] = '\0';
	if (!rc)
		sfs_s3c_xml_child_text(r, child, out, len);
	xmlFreeDoc(doc);
	return rc;
}
