/*
 * common/config_check.c - the syntax checks of string values (the check of
 * each KT_STR key in config.c's table): backend, endpoint, bucket, region,
 * credentials, paths, profile, '/'-separated names and prefixes, partition
 * patterns, snapshot names.  Each writes its reason, without the key name and
 * without the value of a secret, into why.
 */
#include "common/config_priv.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SNAPSHOT 128 /* SPEC §5 */

int sfs_cfg_check_upload(const char *v, char *why, size_t n)
{
	if (strcmp(v, "async") && strcmp(v, "sync"))
		return sfs_cfg_fail(why, n, -EINVAL, "'%.32s' is not async or sync", v);
	return 0;
}

int sfs_cfg_check_backend(const char *v, char *why, size_t n)
{
	if (strcmp(v, "file") && strcmp(v, "s3"))
		return sfs_cfg_fail(why, n, -EINVAL, "'%.32s' is not file or s3", v);
	return 0;
}

int sfs_cfg_check_any(const char *v, char *why, size_t n)
{
	return 0;
}

int sfs_cfg_check_endpoint(const char *v, char *why, size_t n)
{
	const char *host, *end, *p;

	if (!strncmp(v, "http://", 7))
		host = v + 7;
	else if (!strncmp(v, "https://", 8))
		host = v + 8;
	else
		return sfs_cfg_fail(why, n, -EINVAL, "must start with http:// or https://");
	end = host + strcspn(host, "/");
	if (end[0] && strcmp(end, "/"))
		return sfs_cfg_fail(why, n, -EINVAL, "must not have a path");
	if (end == host)
		return sfs_cfg_fail(why, n, -EINVAL, "missing host");
	p = host;
	if (*p == '[') {
		while (p < end && *p != ']')
			p++;
		if (p == end || p - host < 3)
			return sfs_cfg_fail(why, n, -EINVAL, "bad IPv6 address");
		for (const char *q = host + 1; q < p; q++)
			if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.')
				return sfs_cfg_fail(why, n, -EINVAL, "bad IPv6 address");
		p++;
	} else {
		while (p < end &&
		       (isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_'))
			p++;
		if (p == host)
			return sfs_cfg_fail(why, n, -EINVAL, "missing host");
	}
	if (p < end) {
		long port;
		char *e;

		if (*p != ':' || !isdigit((unsigned char)p[1]))
			return sfs_cfg_fail(why, n, -EINVAL, "bad host or port");
		errno = 0;
		port = strtol(p + 1, &e, 10);
		if (errno || e != end || port < 1 || port > 65535)
			return sfs_cfg_fail(why, n, -EINVAL, "bad port");
	}
	return 0;
}

/* AWS bucket naming rules: 3..63 of [a-z0-9.-], starting and ending alphanumeric. */
int sfs_cfg_check_bucket(const char *v, char *why, size_t n)
{
	size_t len = strlen(v);

	if (len < 3 || len > 63)
		return sfs_cfg_fail(why, n, -EINVAL, "must be 3 to 63 characters");
	for (size_t i = 0; i < len; i++)
		if (!islower((unsigned char)v[i]) && !isdigit((unsigned char)v[i]) && v[i] != '.' &&
		    v[i] != '-')
			return sfs_cfg_fail(why, n, -EINVAL, "only a-z 0-9 . - allowed");
	if (!isalnum((unsigned char)v[0]) || !isalnum((unsigned char)v[len - 1]))
		return sfs_cfg_fail(why, n, -EINVAL, "must start and end with a letter or digit");
	return 0;
}

int sfs_cfg_check_region(const char *v, char *why, size_t n)
{
	if (strlen(v) > 64 || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(v))
		return sfs_cfg_fail(why, n, -EINVAL, "only a-z 0-9 - allowed");
	return 0;
}

/* Credentials: never echo the value. */
int sfs_cfg_check_credential(const char *v, char *why, size_t n)
{
	for (; *v; v++)
		if (isspace((unsigned char)*v))
			return sfs_cfg_fail(why, n, -EINVAL, "must not contain blanks");
	return 0;
}

int sfs_cfg_check_abs_path(const char *v, char *why, size_t n)
{
	if (v[0] != '/')
		return sfs_cfg_fail(why, n, -EINVAL, "must be an absolute path");
	return 0;
}

int sfs_cfg_check_profile(const char *v, char *why, size_t n)
{
	if (strlen(v) > 128 || strcspn(v, " \t[]") != strlen(v))
		return sfs_cfg_fail(why, n, -EINVAL, "must not contain blanks or brackets");
	return 0;
}

/* '/'-separated segments, none empty, "." or "..": "a/b" yes; "/a" "a/" "a//b" "a/../b" no. */
int sfs_cfg_check_segments(const char *v, char *why, size_t n)
{
	const char *p = v;

	if (!*v)
		return sfs_cfg_fail(why, n, -EINVAL, "must not be empty");
	if (v[0] == '/' || v[strlen(v) - 1] == '/')
		return sfs_cfg_fail(why, n, -EINVAL, "must not start or end with '/'");
	while (*p) {
		size_t len = strcspn(p, "/");

		if (len == 0)
			return sfs_cfg_fail(why, n, -EINVAL, "empty path segment");
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return sfs_cfg_fail(why, n, -EINVAL,
					    "'.' and '..' segments are not allowed");
		p += len;
		if (*p)
			p++;
	}
	return 0;
}

/* schema_prefix, hash_prefix: segments, and not one of the store's reserved top-level names. */
int sfs_cfg_check_prefix(const char *v, char *why, size_t n)
{
	static const char *const reserved[] = {"_staging", "_snapshots", ".stagefs"};
	size_t first = strcspn(v, "/");
	int rc = sfs_cfg_check_segments(v, why, n);

	if (rc)
		return rc;
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strlen(reserved[i]) == first && !strncmp(v, reserved[i], first))
			return sfs_cfg_fail(why, n, -EINVAL, "'%s' is reserved", reserved[i]);
	return 0;
}

static int is_ident_start(char ch)
{
	return isalpha((unsigned char)ch) || ch == '_';
}

static int is_ident(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_';
}

/* "{a}/{b_c}": segments of the form {name}, name [A-Za-z_][A-Za-z0-9_]*. */
int sfs_cfg_check_partition(const char *v, char *why, size_t n)
{
	const char *p = v;

	for (;;) {
		if (*p != '{' || !is_ident_start(p[1]))
			return sfs_cfg_fail(why, n, -EINVAL, "segments must look like {name}");
		p += 2;
		while (is_ident(*p))
			p++;
		if (*p != '}')
			return sfs_cfg_fail(why, n, -EINVAL, "segments must look like {name}");
		p++;
		if (!*p)
			return 0;
		if (*p != '/')
			return sfs_cfg_fail(why, n, -EINVAL, "segments must be separated by '/'");
		p++;
	}
}

int sfs_cfg_check_snapshot(const char *v, char *why, size_t n)
{
	size_t len = strlen(v);

	if (len > MAX_SNAPSHOT ||
	    strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != len)
		return sfs_cfg_fail(why, n, -EINVAL, "must be 1 to 128 of A-Z a-z 0-9 . _ -");
	if (!strcmp(v, ".") || !strcmp(v, ".."))
		return sfs_cfg_fail(why, n, -EINVAL, "'.' and '..' are not snapshot names");
	return 0;
}
