/*
 * common/config.c - see config.h.  The key table and what every entry point
 * shares: small helpers, setting one key, the lifecycle (init, release, deep
 * copy, commit), sfs_config_set and the number parsers.
 *
 * Keys are described once, in the keys[] table: name, type, where in struct
 * sfs_config, a syntax check and flags.  Every entry point (-o, config file,
 * URL query, sfs_config_set) goes through sfs_cfg_set_key().
 *
 * Entry points that change a config work on a deep copy and swap it in only on
 * success, so *c is unchanged when they fail.
 *
 * The rest, by subject: config_check.c (syntax checks of string values),
 * config_opts.c (-o option strings), config_file.c (config files, read with
 * inih), config_source.c (mount SOURCEs: directories, file:// and s3:// URLs),
 * config_finalize.c (defaults that depend on other keys or the environment,
 * credentials, describe).  What they share is declared in config_priv.h.
 */
#include "common/config.h"
#include "common/config_priv.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_VALUE  8192 /* longest accepted value, bytes */
#define HASH_CHARS 26	/* base32 md5: subfolding cannot take more */

/* ---------------------------------------------------------------- helpers */

/* Write a message into err (when given) and return rc. */
int sfs_cfg_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

void sfs_cfg_free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Replace *slot with a copy of v (NULL allowed).  0 or -ENOMEM. */
int sfs_cfg_set_str(char **slot, const char *v)
{
	char *n = NULL;

	if (v) {
		n = strdup(v);
		if (!n)
			return -ENOMEM;
	}
	sfs_cfg_free_secret(*slot);
	*slot = n;
	return 0;
}

int sfs_cfg_is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Allocate the concatenation of up to four strings (NULL = ""). */
char *sfs_cfg_join(const char *a, const char *b, const char *c, const char *d)
{
	const char *p[4] = {a, b, c, d};
	size_t len = 1, off = 0;
	char *out;
	int i;

	for (i = 0; i < 4; i++)
		len += p[i] ? strlen(p[i]) : 0;
	out = malloc(len);
	if (!out)
		return NULL;
	for (i = 0; i < 4; i++) {
		size_t n = p[i] ? strlen(p[i]) : 0;

		memcpy(out + off, p[i] ? p[i] : "", n);
		off += n;
	}
	out[off] = '\0';
	return out;
}

/* ---------------------------------------------------------------- key table */

#define F(field) offsetof(struct sfs_config, field)

static const struct sfs_config_key keys[] = {
	{"backend", KT_STR, F(backend), "file", sfs_cfg_check_backend, KF_NO_URL},
	{"location", KT_STR, F(location), NULL, sfs_cfg_check_any, KF_NO_URL},
	{"endpoint", KT_STR, F(endpoint), NULL, sfs_cfg_check_endpoint, 0},
	{"bucket", KT_STR, F(bucket), NULL, sfs_cfg_check_bucket, KF_NO_URL},
	{"region", KT_STR, F(region), "us-east-1", sfs_cfg_check_region, 0},
	{"path_style", KT_BOOL, F(path_style), NULL, NULL, 0},
	{"access_key", KT_STR, F(access_key), NULL, sfs_cfg_check_credential, 0},
	{"secret_key", KT_STR, F(secret_key), NULL, sfs_cfg_check_credential, KF_SECRET},
	{"session_token", KT_STR, F(session_token), NULL, sfs_cfg_check_credential, KF_SECRET},
	{"credentials_file", KT_STR, F(credentials_file), NULL, sfs_cfg_check_abs_path, 0},
	{"profile", KT_STR, F(profile), NULL, sfs_cfg_check_profile, 0},
	{"store_name", KT_STR, F(store_name), "stagefs", sfs_cfg_check_segments, 0},
	{"schema_prefix", KT_STR, F(schema_prefix), NULL, sfs_cfg_check_prefix, KF_EMPTY_OK},
	{"hash_prefix", KT_STR, F(hash_prefix), NULL, sfs_cfg_check_prefix, KF_EMPTY_OK},
	{"subfolding", KT_SUBFOLD, 0, NULL, NULL, 0},
	{"partition_pattern", KT_STR, F(partition_pattern), NULL, sfs_cfg_check_partition, 0},
	{"token_length", KT_TOKLEN, F(token_length), NULL, NULL, 0},
	{"index", KT_STR, F(index), NULL, sfs_cfg_check_abs_path, 0},
	{"cache_dir", KT_STR, F(cache_dir), NULL, sfs_cfg_check_abs_path, 0},
	{"cache_size", KT_SIZE, F(cache_size), NULL, NULL, 0},
	{"dir_cache_time", KT_SECONDS, F(dir_cache_time), NULL, NULL, 0},
	{"upload", KT_STR, F(upload), "async", sfs_cfg_check_upload, 0},
	{"upload_delay", KT_SECONDS, F(upload_delay), NULL, NULL, 0},
	{"inode_handles", KT_BOOL, F(inode_handles), NULL, NULL, 0},
	{"max_inodes", KT_SIZE, F(max_inodes), NULL, NULL, 0},
	{"snapshot", KT_STR, F(snapshot), NULL, sfs_cfg_check_snapshot, 0},
	{"ro", KT_BOOL, F(read_only), NULL, NULL, 0},
	{"allow_other", KT_BOOL, F(allow_other), NULL, NULL, 0},
	{"default_permissions", KT_BOOL, F(default_permissions), NULL, NULL, 0},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

const struct sfs_config_key *sfs_cfg_find_key(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static char **str_field(struct sfs_config *c, const struct sfs_config_key *k)
{
	return (char **)((char *)c + k->off);
}

static int *int_field(struct sfs_config *c, const struct sfs_config_key *k)
{
	return (int *)((char *)c + k->off);
}

static uint64_t *u64_field(struct sfs_config *c, const struct sfs_config_key *k)
{
	return (uint64_t *)((char *)c + k->off);
}

static int parse_bool(const char *v, int *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};

	if (!v) {
		*out = 1;
		return 0;
	}
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i])) {
			*out = 1;
			return 0;
		}
		if (!strcasecmp(v, no[i])) {
			*out = 0;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * Set a known key.  On -EINVAL writes the reason (without the key name and
 * without the value of a secret) into why.
 */
int sfs_cfg_set_key(struct sfs_config *c, const struct sfs_config_key *k, const char *v, char *why,
		    size_t n)
{
	int fold[SFS_MAX_SUBFOLD];
	uint64_t size;
	int b, rc;

	if (!v && k->type != KT_BOOL)
		return sfs_cfg_fail(why, n, -EINVAL, "needs a value");
	if (v) {
		if (strlen(v) > MAX_VALUE)
			return sfs_cfg_fail(why, n, -EINVAL, "value too long");
		for (const char *p = v; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return sfs_cfg_fail(why, n, -EINVAL, "contains control characters");
	}
	switch (k->type) {
	case KT_BOOL:
		if (parse_bool(v, &b))
			return sfs_cfg_fail(why, n, -EINVAL, "expected 1/0, true/false or yes/no");
		*int_field(c, k) = b;
		return 0;
	case KT_TOKLEN: {
		char *end;
		long l;

		if (!isdigit((unsigned char)v[0]) &&
		    !((v[0] == '-' || v[0] == '+') && isdigit((unsigned char)v[1])))
			return sfs_cfg_fail(why, n, -EINVAL, "not a number");
		errno = 0;
		l = strtol(v, &end, 10);
		if (*end)
			return sfs_cfg_fail(why, n, -EINVAL, "not a number");
		/* out of range (ERANGE included) is clamped, as DataJoint does */
		c->token_length = l < 4 ? 4 : l > 16 ? 16 : (int)l;
		return 0;
	}
	case KT_SIZE:
		if (sfs_config_parse_size(v, &size))
			return sfs_cfg_fail(
				why, n, -EINVAL,
				"expected bytes with an optional K/M/G/T suffix, e.g. 10G");
		*u64_field(c, k) = size;
		return 0;
	case KT_SECONDS: {
		char *end;
		unsigned long l;

		errno = 0;
		l = isdigit((unsigned char)v[0]) ? strtoul(v, &end, 10) : 0;
		if (!isdigit((unsigned char)v[0]) || *end || errno || l > 86400)
			return sfs_cfg_fail(why, n, -EINVAL, "expected whole seconds, 0..86400");
		*int_field(c, k) = (int)l;
		return 0;
	}
	case KT_SUBFOLD:
		rc = sfs_config_parse_subfolding(v, fold);
		if (rc < 0)
			return sfs_cfg_fail(
				why, n, -EINVAL,
				"expected a list like 2,2 or 2:2 (each 1..16, at most %d, "
				"total at most %d)",
				SFS_MAX_SUBFOLD, HASH_CHARS);
		memcpy(c->subfolding, fold, sizeof(fold));
		c->n_subfolding = rc;
		return 0;
	case KT_STR:
		if (!*v && !(k->flags & KF_EMPTY_OK))
			return sfs_cfg_set_str(str_field(c, k), k->dflt);
		if (*v) {
			rc = k->check(v, why, n);
			if (rc)
				return rc;
		}
		return sfs_cfg_set_str(str_field(c, k), v);
	}
	return -EINVAL;
}

/* Refuse keys an origin may not set; 0 if allowed. */
int sfs_cfg_origin_refuses(const struct sfs_config_key *k, enum sfs_config_origin origin, char *why,
			   size_t n)
{
	if ((k->flags & KF_SECRET) && origin == SFS_CFG_OPTION)
		return sfs_cfg_fail(why, n, -EINVAL, "not allowed in -o; use the config file or %s",
				    !strcmp(k->name, "secret_key") ? "AWS_SECRET_ACCESS_KEY"
								   : "AWS_SESSION_TOKEN");
	if ((k->flags & KF_SECRET) && origin == SFS_CFG_URL)
		return sfs_cfg_fail(why, n, -EINVAL,
				    "not allowed in a URL; use the config file or the "
				    "environment");
	if ((k->flags & KF_NO_URL) && origin == SFS_CFG_URL)
		return sfs_cfg_fail(why, n, -EINVAL, "comes from the URL itself, not a parameter");
	return 0;
}

/* ---------------------------------------------------------------- lifecycle */

void sfs_config_init(struct sfs_config *c)
{
	memset(c, 0, sizeof(*c));
	/* static defaults; strdup failure leaves NULL, which finalize treats as the default */
	c->backend = strdup("file");
	c->region = strdup("us-east-1");
	c->store_name = strdup("stagefs");
	c->upload = strdup("async");
	c->schema_prefix = strdup("_schema");
	c->hash_prefix = strdup("_hash");
	c->path_style = -1;
	c->token_length = 8;
	c->cache_size = 10ull << 30;
	c->dir_cache_time = 10;
	c->upload_delay = 2;
	c->inode_handles = -1;
	c->max_inodes = 200 << 10;
}

void sfs_config_release(struct sfs_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].type == KT_STR)
			sfs_cfg_free_secret(*str_field(c, &keys[i]));
	memset(c, 0, sizeof(*c));
}

/* Deep copy *src into *dst (which is overwritten).  0 or -ENOMEM (dst zeroed). */
int sfs_cfg_copy(struct sfs_config *dst, const struct sfs_config *src)
{
	*dst = *src;
	for (size_t i = 0; i < NKEYS; i++) {
		char **slot;

		if (keys[i].type != KT_STR)
			continue;
		slot = str_field(dst, &keys[i]);
		if (*slot) {
			*slot = strdup(*slot);
			if (!*slot) {
				/* clear the rest, which still point into src */
				for (size_t j = i + 1; j < NKEYS; j++)
					if (keys[j].type == KT_STR)
						*str_field(dst, &keys[j]) = NULL;
				sfs_config_release(dst);
				return -ENOMEM;
			}
		}
	}
	return 0;
}

/* Replace *c by *tmp (taking ownership). */
void sfs_cfg_commit(struct sfs_config *c, struct sfs_config *tmp)
{
	sfs_config_release(c);
	*c = *tmp;
	memset(tmp, 0, sizeof(*tmp));
}

int sfs_config_set(struct sfs_config *c, const char *key, const char *value,
		   enum sfs_config_origin origin, char *err, size_t errlen)
{
	const struct sfs_config_key *k = sfs_cfg_find_key(key);
	char why[256];
	int rc;

	if (!k)
		return sfs_cfg_fail(err, errlen, -EINVAL, "unknown key '%.64s'", key);
	rc = sfs_cfg_origin_refuses(k, origin, why, sizeof(why));
	if (!rc)
		rc = sfs_cfg_set_key(c, k, value, why, sizeof(why));
	if (rc == -EINVAL)
		return sfs_cfg_fail(err, errlen, rc, "%s: %s", k->name, why);
	if (rc)
		return sfs_cfg_fail(err, errlen, rc, "%s: %s", k->name, strerror(-rc));
	if (!strcmp(key, "secret_key"))
		c->secret_from_file = origin == SFS_CFG_FILE && value && *value;
	return 0;
}

/* ---------------------------------------------------------------- numbers */

int sfs_config_parse_subfolding(const char *s, int out[SFS_MAX_SUBFOLD])
{
	int tmp[SFS_MAX_SUBFOLD];
	int count = 0, total = 0;
	const char *p = s;

	if (!s)
		return -EINVAL;
	while (sfs_cfg_is_blank(*p))
		p++;
	if (!*p)
		return 0;
	for (;;) {
		char *end;
		long l;

		while (sfs_cfg_is_blank(*p))
			p++;
		if (!isdigit((unsigned char)*p) || count == SFS_MAX_SUBFOLD)
			return -EINVAL;
		errno = 0;
		l = strtol(p, &end, 10);
		if (errno || l < 1 || l > 16)
			return -EINVAL;
		total += (int)l;
		if (total > HASH_CHARS)
			return -EINVAL;
		tmp[count++] = (int)l;
		p = end;
		while (sfs_cfg_is_blank(*p))
			p++;
		if (!*p)
			break;
		if (*p != ',' && *p != ':')
			return -EINVAL;
		p++;
	}
	memcpy(out, tmp, sizeof(tmp));
	return count;
}

int sfs_config_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	const char *suffix = "KMGT";
	const char *pos;
	char *end;
	int shift = 0;

	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end) {
		pos = strchr(suffix, toupper((unsigned char)*end));
		if (!pos)
			return -EINVAL;
		shift = 10 * (int)(pos - suffix + 1);
		end++;
		/* "10G", "10GB", "10GiB" */
		if (!strcmp(end, "iB") || !strcmp(end, "B") || !strcmp(end, "b"))
			end += strlen(end);
		if (*end)
			return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}
