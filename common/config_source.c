/*
 * common/config_source.c - sfs_config_parse_source: a mount SOURCE, which is
 * an existing directory, a file:// or s3:// URL (percent-decoded, with config
 * keys as query parameters) or a config file.
 */
#include "common/config.h"
#include "common/config_priv.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/fsutil.h"

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Percent-decode s[0..len) into a new string; NULL in *out on bad escapes or %00. */
static int pct_decode(const char *s, size_t len, char **out)
{
	char *d = malloc(len + 1);
	size_t i, j = 0;

	*out = NULL;
	if (!d)
		return -ENOMEM;
	for (i = 0; i < len; i++) {
		if (s[i] == '%') {
			int h, l;

			if (i + 2 >= len) {
				free(d);
				return -EINVAL;
			}
			h = hexval(s[i + 1]);
			l = h < 0 ? -1 : hexval(s[i + 2]);
			if (h < 0 || l < 0 || (h == 0 && l == 0)) {
				free(d);
				return -EINVAL;
			}
			d[j++] = (char)(h * 16 + l);
			i += 2;
		} else {
			d[j++] = s[i];
		}
	}
	d[j] = '\0';
	*out = d;
	return 0;
}

/* Apply "k=v&k=v" (percent-encoded) from a URL to *c. */
static int apply_query(struct sfs_config *c, const char *q, char *err, size_t errlen)
{
	char *name = NULL, *value = NULL;
	int rc = 0;

	while (*q) {
		size_t len = strcspn(q, "&"), nlen;
		const struct sfs_config_key *k;
		const char *eq;
		char why[256];

		if (len == 0) {
			q++;
			continue;
		}
		eq = memchr(q, '=', len);
		nlen = eq ? (size_t)(eq - q) : len;
		rc = pct_decode(q, nlen, &name);
		if (!rc && eq)
			rc = pct_decode(eq + 1, len - nlen - 1, &value);
		if (rc) {
			rc = sfs_cfg_fail(err, errlen, rc,
					  rc == -EINVAL ? "source URL: bad %%-escape"
							: "out of memory");
			goto out;
		}
		k = sfs_cfg_find_key(name);
		if (!k) {
			rc = sfs_cfg_fail(err, errlen, -EINVAL,
					  "source URL: unknown parameter '%.64s'", name);
			goto out;
		}
		rc = sfs_cfg_origin_refuses(k, SFS_CFG_URL, why, sizeof(why));
		if (!rc)
			rc = sfs_cfg_set_key(c, k, value, why, sizeof(why));
		if (rc) {
			rc = sfs_cfg_fail(err, errlen, rc, "source URL: %s: %s", k->name,
					  rc == -EINVAL ? why : strerror(-rc));
			goto out;
		}
		free(name);
		sfs_cfg_free_secret(value);
		name = value = NULL;
		q += len;
		if (*q)
			q++;
	}
out:
	free(name);
	sfs_cfg_free_secret(value);
	return rc;
}

static int source_s3(struct sfs_config *c, const char *rest, char *err, size_t errlen)
{
	size_t blen = strcspn(rest, "/?"), plen;
	const char *prefix, *query;
	char *bucket = NULL, *loc = NULL;
	char why[256];
	int rc;

	if (blen == 0)
		return sfs_cfg_fail(err, errlen, -EINVAL,
				    "source URL: missing bucket (s3://BUCKET/prefix)");
	prefix = rest + blen;
	plen = strcspn(prefix, "?");
	query = prefix[plen] == '?' ? prefix + plen + 1 : "";
	rc = pct_decode(rest, blen, &bucket);
	if (!rc)
		rc = pct_decode(prefix, plen, &loc);
	if (rc) {
		rc = sfs_cfg_fail(err, errlen, rc,
				  rc == -EINVAL ? "source URL: bad %%-escape" : "out of memory");
		goto out;
	}
	rc = sfs_cfg_set_key(c, sfs_cfg_find_key("bucket"), bucket, why, sizeof(why));
	if (rc) {
		rc = sfs_cfg_fail(err, errlen, rc, "source URL: bucket: %s", why);
		goto out;
	}
	rc = sfs_cfg_set_str(&c->backend, "s3");
	if (!rc)
		rc = sfs_cfg_set_str(&c->location, loc);
	if (rc) {
		rc = sfs_cfg_fail(err, errlen, rc, "out of memory");
		goto out;
	}
	rc = apply_query(c, query, err, errlen);
out:
	free(bucket);
	free(loc);
	return rc;
}

static int source_file_url(struct sfs_config *c, const char *rest, char *err, size_t errlen)
{
	size_t plen;
	char *path = NULL, *real = NULL;
	int rc;

	if (!strncmp(rest, "localhost/", 10))
		rest += 9;
	if (rest[0] != '/')
		return sfs_cfg_fail(err, errlen, -EINVAL,
				    "source URL: file URLs need an absolute path (file:///dir)");
	plen = strcspn(rest, "?");
	rc = pct_decode(rest, plen, &path);
	if (rc) {
		rc = sfs_cfg_fail(err, errlen, rc,
				  rc == -EINVAL ? "source URL: bad %%-escape" : "out of memory");
		goto out;
	}
	rc = apply_query(c, rest[plen] ? rest + plen + 1 : "", err, errlen);
	if (rc)
		goto out;
	rc = sfs_mkdir_p(path, 0755, 1);
	if (rc) {
		rc = sfs_cfg_fail(err, errlen, rc, "%s: cannot create: %s", path, strerror(-rc));
		goto out;
	}
	real = realpath(path, NULL);
	if (!real) {
		rc = sfs_cfg_fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	rc = sfs_cfg_set_str(&c->backend, "file");
	if (!rc)
		rc = sfs_cfg_set_str(&c->location, real);
	if (rc)
		rc = sfs_cfg_fail(err, errlen, rc, "out of memory");
out:
	free(path);
	free(real);
	return rc;
}

int sfs_config_parse_source(struct sfs_config *c, const char *source, char *err, size_t errlen)
{
	struct sfs_config tmp;
	struct stat st;
	size_t slen;
	char *real = NULL;
	int rc;

	if (!source || !*source)
		return sfs_cfg_fail(err, errlen, -ENOENT, "missing SOURCE");
	rc = sfs_cfg_copy(&tmp, c);
	if (rc)
		return sfs_cfg_fail(err, errlen, rc, "out of memory");
	slen = strspn(source, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
	if (slen && isalpha((unsigned char)source[0]) && !strncmp(source + slen, "://", 3)) {
		if (slen == 2 && !strncasecmp(source, "s3", 2))
			rc = source_s3(&tmp, source + 5, err, errlen);
		else if (slen == 4 && !strncasecmp(source, "file", 4))
			rc = source_file_url(&tmp, source + 7, err, errlen);
		else
			rc = sfs_cfg_fail(err, errlen, -EINVAL,
					  "unsupported URL scheme '%.*s' (use file:// or s3://)",
					  (int)slen, source);
		if (rc)
			goto out;
	} else if (stat(source, &st) == 0 && S_ISDIR(st.st_mode)) {
		real = realpath(source, NULL);
		if (!real) {
			rc = sfs_cfg_fail(err, errlen, -errno, "%s: %s", source, strerror(errno));
			goto out;
		}
		rc = sfs_cfg_set_str(&tmp.backend, "file");
		if (!rc)
			rc = sfs_cfg_set_str(&tmp.location, real);
		if (rc) {
			rc = sfs_cfg_fail(err, errlen, rc, "out of memory");
			goto out;
		}
	} else if (stat(source, &st) == 0 && S_ISREG(st.st_mode)) {
		rc = sfs_config_load_file(&tmp, source, err, errlen);
		if (rc)
			goto out;
	} else {
		rc = sfs_cfg_fail(err, errlen, -ENOENT, "%s: no such directory or config file",
				  source);
		goto out;
	}
	sfs_cfg_commit(c, &tmp);
	rc = 0;
out:
	free(real);
	sfs_config_release(&tmp);
	return rc;
}
