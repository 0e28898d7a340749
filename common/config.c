/*
 * common/config.c - see config.h.
 *
 * Keys are described once, in the keys[] table: name, type, where in struct
 * sfs_config, a syntax check and flags.  Every entry point (-o, config file,
 * URL query, sfs_config_set) goes through set_key().
 *
 * Entry points that change a config work on a deep copy and swap it in only on
 * success, so *c is unchanged when they fail.
 *
 * Files are parsed by inih (ini_parse_stream) through a reader that counts
 * physical lines, so errors name the line even though the installed inih calls
 * its handler without a line number.  inih's line buffer is INI_MAX_LINE (200)
 * bytes; the reader hands a longer line to inih as its first piece followed by
 * continuation pieces (" rest", which inih's multi-line support passes to the
 * handler under the same name), split only between two non-blank characters so
 * that nothing is stripped, and the handler joins them again.  That keeps long
 * values (AWS session tokens are ~1 KiB) working without a parser of our own.
 */
#include "common/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/log.h"

#define MAX_VALUE    8192 /* longest accepted value, bytes */
#define MAX_SNAPSHOT 128  /* SPEC §5 */
#define HASH_CHARS   26	  /* base32 md5: subfolding cannot take more */

/* ---------------------------------------------------------------- helpers */

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Write a message into err (when given) and return rc. */
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Replace *slot with a copy of v (NULL allowed).  0 or -ENOMEM. */
static int set_str(char **slot, const char *v)
{
	char *n = NULL;

	if (v) {
		n = strdup(v);
		if (!n)
			return -ENOMEM;
	}
	free_secret(*slot);
	*slot = n;
	return 0;
}

static int is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Allocate the concatenation of up to four strings (NULL = ""). */
static char *join(const char *a, const char *b, const char *c, const char *d)
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

/* ---------------------------------------------------------------- checks */

static int check_backend(const char *v, char *why, size_t n)
{
	if (strcmp(v, "file") && strcmp(v, "s3"))
		return fail(why, n, -EINVAL, "'%.32s' is not file or s3", v);
	return 0;
}

static int check_any(const char *v, char *why, size_t n)
{
	return 0;
}

static int check_endpoint(const char *v, char *why, size_t n)
{
	const char *host, *end, *p;

	if (!strncmp(v, "http://", 7))
		host = v + 7;
	else if (!strncmp(v, "https://", 8))
		host = v + 8;
	else
		return fail(why, n, -EINVAL, "must start with http:// or https://");
	end = host + strcspn(host, "/");
	if (end[0] && strcmp(end, "/"))
		return fail(why, n, -EINVAL, "must not have a path");
	if (end == host)
		return fail(why, n, -EINVAL, "missing host");
	p = host;
	if (*p == '[') {
		while (p < end && *p != ']')
			p++;
		if (p == end || p - host < 3)
			return fail(why, n, -EINVAL, "bad IPv6 address");
		for (const char *q = host + 1; q < p; q++)
			if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.')
				return fail(why, n, -EINVAL, "bad IPv6 address");
		p++;
	} else {
		while (p < end &&
		       (isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_'))
			p++;
		if (p == host)
			return fail(why, n, -EINVAL, "missing host");
	}
	if (p < end) {
		long port;
		char *e;

		if (*p != ':' || !isdigit((unsigned char)p[1]))
			return fail(why, n, -EINVAL, "bad host or port");
		errno = 0;
		port = strtol(p + 1, &e, 10);
		if (errno || e != end || port < 1 || port > 65535)
			return fail(why, n, -EINVAL, "bad port");
	}
	return 0;
}

/* AWS bucket naming rules: 3..63 of [a-z0-9.-], starting and ending alphanumeric. */
static int check_bucket(const char *v, char *why, size_t n)
{
	size_t len = strlen(v);

	if (len < 3 || len > 63)
		return fail(why, n, -EINVAL, "must be 3 to 63 characters");
	for (size_t i = 0; i < len; i++)
		if (!islower((unsigned char)v[i]) && !isdigit((unsigned char)v[i]) && v[i] != '.' &&
		    v[i] != '-')
			return fail(why, n, -EINVAL, "only a-z 0-9 . - allowed");
	if (!isalnum((unsigned char)v[0]) || !isalnum((unsigned char)v[len - 1]))
		return fail(why, n, -EINVAL, "must start and end with a letter or digit");
	return 0;
}

static int check_region(const char *v, char *why, size_t n)
{
	if (strlen(v) > 64 || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(v))
		return fail(why, n, -EINVAL, "only a-z 0-9 - allowed");
	return 0;
}

/* Credentials: never echo the value. */
static int check_credential(const char *v, char *why, size_t n)
{
	for (; *v; v++)
		if (isspace((unsigned char)*v))
			return fail(why, n, -EINVAL, "must not contain blanks");
	return 0;
}

static int check_abs_path(const char *v, char *why, size_t n)
{
	if (v[0] != '/')
		return fail(why, n, -EINVAL, "must be an absolute path");
	return 0;
}

static int check_profile(const char *v, char *why, size_t n)
{
	if (strlen(v) > 128 || strcspn(v, " \t[]") != strlen(v))
		return fail(why, n, -EINVAL, "must not contain blanks or brackets");
	return 0;
}

/* '/'-separated segments, none empty, "." or "..": "a/b" yes; "/a" "a/" "a//b" "a/../b" no. */
static int check_segments(const char *v, char *why, size_t n)
{
	const char *p = v;

	if (!*v)
		return fail(why, n, -EINVAL, "must not be empty");
	if (v[0] == '/' || v[strlen(v) - 1] == '/')
		return fail(why, n, -EINVAL, "must not start or end with '/'");
	while (*p) {
		size_t len = strcspn(p, "/");

		if (len == 0)
			return fail(why, n, -EINVAL, "empty path segment");
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return fail(why, n, -EINVAL, "'.' and '..' segments are not allowed");
		p += len;
		if (*p)
			p++;
	}
	return 0;
}

/* schema_prefix, hash_prefix: segments, and not one of the store's reserved top-level names. */
static int check_prefix(const char *v, char *why, size_t n)
{
	static const char *const reserved[] = {"_staging", "_snapshots", ".stagefs"};
	size_t first = strcspn(v, "/");
	int rc = check_segments(v, why, n);

	if (rc)
		return rc;
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strlen(reserved[i]) == first && !strncmp(v, reserved[i], first))
			return fail(why, n, -EINVAL, "'%s' is reserved", reserved[i]);
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
static int check_partition(const char *v, char *why, size_t n)
{
	const char *p = v;

	for (;;) {
		if (*p != '{' || !is_ident_start(p[1]))
			return fail(why, n, -EINVAL, "segments must look like {name}");
		p += 2;
		while (is_ident(*p))
			p++;
		if (*p != '}')
			return fail(why, n, -EINVAL, "segments must look like {name}");
		p++;
		if (!*p)
			return 0;
		if (*p != '/')
			return fail(why, n, -EINVAL, "segments must be separated by '/'");
		p++;
	}
}

static int check_snapshot(const char *v, char *why, size_t n)
{
	size_t len = strlen(v);

	if (len > MAX_SNAPSHOT ||
	    strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != len)
		return fail(why, n, -EINVAL, "must be 1 to 128 of A-Z a-z 0-9 . _ -");
	if (!strcmp(v, ".") || !strcmp(v, ".."))
		return fail(why, n, -EINVAL, "'.' and '..' are not snapshot names");
	return 0;
}

/* ---------------------------------------------------------------- key table */

enum key_type { KT_STR, KT_BOOL, KT_TOKLEN, KT_SIZE, KT_SUBFOLD, KT_SECONDS };

#define KF_SECRET   1u /* never in -o or a URL; wiped on release */
#define KF_EMPTY_OK 2u /* "" is a value, not "back to the default" */
#define KF_NO_URL   4u /* comes from the URL itself */

struct sfs_config_key {
	const char *name;
	enum key_type type;
	size_t off;	  /* of the field in struct sfs_config */
	const char *dflt; /* KT_STR: what "" resets to (NULL = unset) */
	int (*check)(const char *v, char *why, size_t n); /* KT_STR, non-empty values */
	unsigned flags;
};

#define F(field) offsetof(struct sfs_config, field)

static const struct sfs_config_key keys[] = {
	{"backend", KT_STR, F(backend), "file", check_backend, KF_NO_URL},
	{"location", KT_STR, F(location), NULL, check_any, KF_NO_URL},
	{"endpoint", KT_STR, F(endpoint), NULL, check_endpoint, 0},
	{"bucket", KT_STR, F(bucket), NULL, check_bucket, KF_NO_URL},
	{"region", KT_STR, F(region), "us-east-1", check_region, 0},
	{"path_style", KT_BOOL, F(path_style), NULL, NULL, 0},
	{"access_key", KT_STR, F(access_key), NULL, check_credential, 0},
	{"secret_key", KT_STR, F(secret_key), NULL, check_credential, KF_SECRET},
	{"session_token", KT_STR, F(session_token), NULL, check_credential, KF_SECRET},
	{"credentials_file", KT_STR, F(credentials_file), NULL, check_abs_path, 0},
	{"profile", KT_STR, F(profile), NULL, check_profile, 0},
	{"store_name", KT_STR, F(store_name), "stagefs", check_segments, 0},
	{"schema_prefix", KT_STR, F(schema_prefix), NULL, check_prefix, KF_EMPTY_OK},
	{"hash_prefix", KT_STR, F(hash_prefix), NULL, check_prefix, KF_EMPTY_OK},
	{"subfolding", KT_SUBFOLD, 0, NULL, NULL, 0},
	{"partition_pattern", KT_STR, F(partition_pattern), NULL, check_partition, 0},
	{"token_length", KT_TOKLEN, F(token_length), NULL, NULL, 0},
	{"index", KT_STR, F(index), NULL, check_abs_path, 0},
	{"cache_dir", KT_STR, F(cache_dir), NULL, check_abs_path, 0},
	{"cache_size", KT_SIZE, F(cache_size), NULL, NULL, 0},
	{"dir_cache_time", KT_SECONDS, F(dir_cache_time), NULL, NULL, 0},
	{"inode_handles", KT_BOOL, F(inode_handles), NULL, NULL, 0},
	{"max_inodes", KT_SIZE, F(max_inodes), NULL, NULL, 0},
	{"snapshot", KT_STR, F(snapshot), NULL, check_snapshot, 0},
	{"ro", KT_BOOL, F(read_only), NULL, NULL, 0},
	{"allow_other", KT_BOOL, F(allow_other), NULL, NULL, 0},
	{"default_permissions", KT_BOOL, F(default_permissions), NULL, NULL, 0},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const struct sfs_config_key *find_key(const char *name)
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
static int set_key(struct sfs_config *c, const struct sfs_config_key *k, const char *v, char *why,
		   size_t n)
{
	int fold[SFS_MAX_SUBFOLD];
	uint64_t size;
	int b, rc;

	if (!v && k->type != KT_BOOL)
		return fail(why, n, -EINVAL, "needs a value");
	if (v) {
		if (strlen(v) > MAX_VALUE)
			return fail(why, n, -EINVAL, "value too long");
		for (const char *p = v; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return fail(why, n, -EINVAL, "contains control characters");
	}
	switch (k->type) {
	case KT_BOOL:
		if (parse_bool(v, &b))
			return fail(why, n, -EINVAL, "expected 1/0, true/false or yes/no");
		*int_field(c, k) = b;
		return 0;
	case KT_TOKLEN: {
		char *end;
		long l;

		if (!isdigit((unsigned char)v[0]) &&
		    !((v[0] == '-' || v[0] == '+') && isdigit((unsigned char)v[1])))
			return fail(why, n, -EINVAL, "not a number");
		errno = 0;
		l = strtol(v, &end, 10);
		if (*end)
			return fail(why, n, -EINVAL, "not a number");
		/* out of range (ERANGE included) is clamped, as DataJoint does */
		c->token_length = l < 4 ? 4 : l > 16 ? 16 : (int)l;
		return 0;
	}
	case KT_SIZE:
		if (sfs_config_parse_size(v, &size))
			return fail(why, n, -EINVAL,
				    "expected bytes with an optional K/M/G/T suffix, e.g. 10G");
		*u64_field(c, k) = size;
		return 0;
	case KT_SECONDS: {
		char *end;
		unsigned long l;

		errno = 0;
		l = isdigit((unsigned char)v[0]) ? strtoul(v, &end, 10) : 0;
		if (!isdigit((unsigned char)v[0]) || *end || errno || l > 86400)
			return fail(why, n, -EINVAL, "expected whole seconds, 0..86400");
		*int_field(c, k) = (int)l;
		return 0;
	}
	case KT_SUBFOLD:
		rc = sfs_config_parse_subfolding(v, fold);
		if (rc < 0)
			return fail(why, n, -EINVAL,
				    "expected a list like 2,2 or 2:2 (each 1..16, at most %d, "
				    "total at most %d)",
				    SFS_MAX_SUBFOLD, HASH_CHARS);
		memcpy(c->subfolding, fold, sizeof(fold));
		c->n_subfolding = rc;
		return 0;
	case KT_STR:
		if (!*v && !(k->flags & KF_EMPTY_OK))
			return set_str(str_field(c, k), k->dflt);
		if (*v) {
			rc = k->check(v, why, n);
			if (rc)
				return rc;
		}
		return set_str(str_field(c, k), v);
	}
	return -EINVAL;
}

/* Refuse keys an origin may not set; 0 if allowed. */
static int origin_refuses(const struct sfs_config_key *k, enum sfs_config_origin origin, char *why,
			  size_t n)
{
	if ((k->flags & KF_SECRET) && origin == SFS_CFG_OPTION)
		return fail(why, n, -EINVAL, "not allowed in -o; use the config file or %s",
			    !strcmp(k->name, "secret_key") ? "AWS_SECRET_ACCESS_KEY"
							   : "AWS_SESSION_TOKEN");
	if ((k->flags & KF_SECRET) && origin == SFS_CFG_URL)
		return fail(why, n, -EINVAL,
			    "not allowed in a URL; use the config file or the "
			    "environment");
	if ((k->flags & KF_NO_URL) && origin == SFS_CFG_URL)
		return fail(why, n, -EINVAL, "comes from the URL itself, not a parameter");
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
	c->schema_prefix = strdup("_schema");
	c->hash_prefix = strdup("_hash");
	c->path_style = -1;
	c->token_length = 8;
	c->cache_size = 10ull << 30;
	c->dir_cache_time = 10;
	c->inode_handles = -1;
	c->max_inodes = 200 << 10;
}

void sfs_config_release(struct sfs_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].type == KT_STR)
			free_secret(*str_field(c, &keys[i]));
	memset(c, 0, sizeof(*c));
}

/* Deep copy *src into *dst (which is overwritten).  0 or -ENOMEM (dst zeroed). */
static int config_copy(struct sfs_config *dst, const struct sfs_config *src)
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
static void config_commit(struct sfs_config *c, struct sfs_config *tmp)
{
	sfs_config_release(c);
	*c = *tmp;
	memset(tmp, 0, sizeof(*tmp));
}

int sfs_config_set(struct sfs_config *c, const char *key, const char *value,
		   enum sfs_config_origin origin, char *err, size_t errlen)
{
	const struct sfs_config_key *k = find_key(key);
	char why[256];
	int rc;

	if (!k)
		return fail(err, errlen, -EINVAL, "unknown key '%.64s'", key);
	rc = origin_refuses(k, origin, why, sizeof(why));
	if (!rc)
		rc = set_key(c, k, value, why, sizeof(why));
	if (rc == -EINVAL)
		return fail(err, errlen, rc, "%s: %s", k->name, why);
	if (rc)
		return fail(err, errlen, rc, "%s: %s", k->name, strerror(-rc));
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
	while (is_blank(*p))
		p++;
	if (!*p)
		return 0;
	for (;;) {
		char *end;
		long l;

		while (is_blank(*p))
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
		while (is_blank(*p))
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

/* ---------------------------------------------------------------- -o */

static const char *const fuse_flags[] = {
	"rw",		"suid",	       "nosuid",	"dev",	    "nodev",
	"exec",		"noexec",      "atime",		"noatime",  "relatime",
	"norelatime",	"strictatime", "nostrictatime", "lazytime", "nolazytime",
	"diratime",	"nodiratime",  "async",		"sync",	    "dirsync",
	"_netdev",	"auto",	       "noauto",	"user",	    "nouser",
	"users",	"owner",       "group",		"nofail",   "defaults",
	"auto_unmount", "big_writes",  "allow_root",	"debug",    "clone_fd",
	"silent",	"loud",	       "mand",		"nomand",
};

static const char *const fuse_valued[] = {
	"max_read", "fsname",  "subtype",   "blksize",	  "max_idle_threads", "max_threads",
	"comment",  "context", "fscontext", "defcontext", "rootcontext",      "user",
};

/* Is key (value present or not) a FUSE/mount option to pass through? */
static int is_passthrough(const char *key, const char *value)
{
	size_t i;

	if (!strncmp(key, "x-", 2) && key[2])
		return 1;
	if (!value) {
		for (i = 0; i < sizeof(fuse_flags) / sizeof(fuse_flags[0]); i++)
			if (!strcmp(key, fuse_flags[i]))
				return 1;
		return 0;
	}
	for (i = 0; i < sizeof(fuse_valued) / sizeof(fuse_valued[0]); i++)
		if (!strcmp(key, fuse_valued[i]))
			return 1;
	return 0;
}

/* Append ",item" (or "item") to *list, escaping ',' and '\' as fuse_opt does. */
static int append_opt(char **list, const char *item)
{
	size_t old = *list ? strlen(*list) : 0, extra = 0, len;
	const char *p;
	char *n, *q;

	for (p = item; *p; p++)
		extra += (*p == ',' || *p == '\\') ? 2 : 1;
	len = old + (old ? 1 : 0) + extra + 1;
	n = realloc(*list, len);
	if (!n)
		return -ENOMEM;
	q = n + old;
	if (old)
		*q++ = ',';
	for (p = item; *p; p++) {
		if (*p == ',' || *p == '\\')
			*q++ = '\\';
		*q++ = *p;
	}
	*q = '\0';
	*list = n;
	return 0;
}

int sfs_config_parse_opts(struct sfs_config *c, const char *opts, char **passthrough, char *err,
			  size_t errlen)
{
	struct sfs_config tmp;
	char *item = NULL, *pass = NULL;
	const char *p = opts;
	int rc;

	if (!opts)
		return 0;
	rc = config_copy(&tmp, c);
	if (rc)
		return fail(err, errlen, rc, "out of memory");
	item = malloc(strlen(opts) + 1);
	if (!item) {
		rc = fail(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	while (*p) {
		const struct sfs_config_key *k;
		char why[256];
		char *q = item, *eq, *value = NULL;

		/* one item, up to an unescaped ',' */
		while (*p && *p != ',') {
			if (*p == '\\' && p[1])
				p++;
			*q++ = *p++;
		}
		*q = '\0';
		if (*p == ',')
			p++;
		if (!item[0])
			continue;
		eq = strchr(item, '=');
		if (eq) {
			*eq = '\0';
			value = eq + 1;
		}
		k = find_key(item);
		if (!k) {
			if (!is_passthrough(item, value)) {
				rc = fail(err, errlen, -EINVAL, "unknown option '%.64s'", item);
				goto out;
			}
			if (eq)
				*eq = '=';
			rc = append_opt(&pass, item);
			if (rc) {
				rc = fail(err, errlen, rc, "out of memory");
				goto out;
			}
			continue;
		}
		rc = origin_refuses(k, SFS_CFG_OPTION, why, sizeof(why));
		if (!rc)
			rc = set_key(&tmp, k, value, why, sizeof(why));
		if (rc) {
			rc = fail(err, errlen, rc, "%s: %s", k->name,
				  rc == -EINVAL ? why : strerror(-rc));
			goto out;
		}
	}
	if (pass) {
		if (passthrough && *passthrough) {
			char *all = join(*passthrough, ",", pass, NULL);

			if (!all) {
				rc = fail(err, errlen, -ENOMEM, "out of memory");
				goto out;
			}
			free(pass);
			pass = all;
		}
		if (passthrough) {
			free(*passthrough);
			*passthrough = pass;
			pass = NULL;
		}
	}
	config_commit(c, &tmp);
	rc = 0;
out:
	if (item) {
		explicit_bzero(item, strlen(opts) + 1);
		free(item);
	}
	free(pass);
	sfs_config_release(&tmp);
	return rc;
}

/* ---------------------------------------------------------------- INI files */

/* One file being parsed: the line-counting reader's state plus the handler's. */
struct ini_ctx {
	/* reader */
	FILE *f;
	char *line;   /* current physical line, without its newline */
	size_t cap;   /* of line (getline) */
	size_t len;   /* of the current line */
	size_t pos;   /* bytes of it handed to inih so far */
	int lineno;   /* physical line of the last piece handed out */
	int piece;    /* 0 = first piece of the line, >0 = continuation piece */
	int indented; /* the line starts with a blank */
	int bad_line; /* first line the reader refused (too long, NUL), 0 = none */
	const char *bad_why;
	int *call_line; /* physical line of each reader call (inih counts calls) */
	size_t ncalls, capcalls;
	int nomem;
	/* handler */
	const char *path;
	int (*apply)(struct ini_ctx *x, const char *section, const char *name, const char *value);
	int pend; /* a key of the current physical line awaits its last piece */
	char *pend_section, *pend_name, *pend_value;
	int err_line; /* first line the handler refused, 0 = none */
	int err_rc;
	char err_msg[512];
	/* config-file handler */
	struct sfs_config *c;
	int has_secret;
	/* credentials-file handler */
	const char *profile;
	int profile_found;
	char *cred[3]; /* aws_access_key_id, aws_secret_access_key, aws_session_token */
};

/* Record the handler's first error (at the current line). */
static void ini_error(struct ini_ctx *x, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ini_error(struct ini_ctx *x, int rc, const char *fmt, ...)
{
	va_list ap;

	if (x->err_line)
		return;
	x->err_line = x->lineno;
	x->err_rc = rc;
	va_start(ap, fmt);
	vsnprintf(x->err_msg, sizeof(x->err_msg), fmt, ap);
	va_end(ap);
}

static int ok_split(const char *l, size_t e)
{
	return !is_blank(l[e - 1]) && !is_blank(l[e]) && l[e] != ';' && l[e] != '#';
}

/* Start a new physical line.  0 at EOF. */
static int reader_next_line(struct ini_ctx *x, size_t room)
{
	ssize_t got = getline(&x->line, &x->cap, x->f);
	size_t i;

	if (got < 0)
		return 0;
	x->lineno++;
	x->len = (size_t)got;
	x->pos = 0;
	x->piece = 0;
	while (x->len && (x->line[x->len - 1] == '\n' || x->line[x->len - 1] == '\r'))
		x->len--;
	x->line[x->len] = '\0';
	if (strlen(x->line) != x->len) {
		if (!x->bad_line) {
			x->bad_line = x->lineno;
			x->bad_why = "contains a NUL byte";
		}
		x->pos = x->len; /* hand inih an empty line */
		return 1;
	}
	i = strspn(x->line, " \t");
	x->indented = i > 0 && x->line[i];
	if (x->len <= room)
		return 1;
	/* too long for inih's buffer: drop what inih would drop anyway */
	if (x->line[i] == ';' || x->line[i] == '#') {
		x->len = room; /* a comment */
		return 1;
	}
	for (i = 1; i < x->len; i++) {
		/* an inline comment: ';' after a blank (inih's rule) */
		if (x->line[i] == ';' && is_blank(x->line[i - 1])) {
			x->len = i;
			while (x->len && is_blank(x->line[x->len - 1]))
				x->len--;
			break;
		}
	}
	return 1;
}

/* inih's fgets-style reader: see the comment at the top of this file. */
static char *cfg_ini_read(char *str, int num, void *stream)
{
	struct ini_ctx *x = stream;
	size_t room, n, e;
	char *dst = str;
	int fresh = 0;

	if (num < 8)
		return NULL;
	room = (size_t)num - 2; /* keep room for "\n" and NUL */
	if (x->pos >= x->len) {
		if (!reader_next_line(x, room))
			return NULL;
		fresh = 1;
	}
	if (x->ncalls == x->capcalls) {
		size_t ncap = x->capcalls ? 2 * x->capcalls : 64;
		int *nl = realloc(x->call_line, ncap * sizeof(*nl));

		if (!nl) {
			x->nomem = 1;
			return NULL;
		}
		x->call_line = nl;
		x->capcalls = ncap;
	}
	x->call_line[x->ncalls++] = x->lineno;
	if (fresh && x->pos == x->len) {
		/* empty, or refused (NUL byte): inih sees an empty line */
		str[0] = '\n';
		str[1] = '\0';
		return str;
	}
	if (x->pos > 0) {
		*dst++ = ' '; /* continuation piece */
		room--;
		x->piece++;
	}
	n = x->len - x->pos;
	if (n > room) {
		/* the first piece must hold the whole name and its '=' or ':' */
		size_t min = x->pos;

		if (x->pos == 0 && x->line[strcspn(x->line, "=:")])
			min = strcspn(x->line, "=:");
		e = x->pos + room;
		if (e < min)
			e = min; /* the name alone does not fit */
		while (e > min && !ok_split(x->line, e))
			e--;
		if (e == min) {
			if (!x->bad_line) {
				x->bad_line = x->lineno;
				x->bad_why = "line too long";
			}
			x->pos = x->len;
			str[0] = '\n';
			str[1] = '\0';
			return str;
		}
		n = e - x->pos;
	}
	memcpy(dst, x->line + x->pos, n);
	dst[n] = '\n';
	dst[n + 1] = '\0';
	x->pos += n;
	return str;
}

static void ini_pend_clear(struct ini_ctx *x)
{
	free(x->pend_section);
	free(x->pend_name);
	free_secret(x->pend_value);
	x->pend_section = x->pend_name = x->pend_value = NULL;
	x->pend = 0;
}

static int cfg_ini_handle(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *x = user;

	if (x->piece > 0) {
		/* continuation piece of a long line: join it to its key */
		char *v;

		if (!x->pend)
			return 1; /* the line's first piece was not a key: inih reported it */
		v = join(x->pend_value, value, NULL, NULL);
		if (!v) {
			x->nomem = 1;
			return 1;
		}
		free_secret(x->pend_value);
		x->pend_value = v;
	} else {
		ini_pend_clear(x);
		if (x->indented) {
			/* inih's multi-line value, or a key indented after another key */
			ini_error(x, -EINVAL,
				  "%s:%d: indented line (continuation lines are not "
				  "supported; start keys in column 1)",
				  x->path, x->lineno);
			return 1;
		}
		x->pend_section = strdup(section);
		x->pend_name = strdup(name);
		x->pend_value = strdup(value);
		x->pend = 1;
		if (!x->pend_section || !x->pend_name || !x->pend_value) {
			x->nomem = 1;
			ini_pend_clear(x);
			return 1;
		}
	}
	if (x->pos < x->len)
		return 1; /* more pieces of this line follow */
	x->apply(x, x->pend_section, x->pend_name, x->pend_value);
	ini_pend_clear(x);
	return 1; /* errors are recorded in x, with their line; inih keeps going */
}

/*
 * Parse an open file with x->apply.  Returns 0, or the first error of any kind
 * (-EINVAL with a "<file>:<line>: ..." message in err).
 */
static int ini_run(struct ini_ctx *x, char *err, size_t errlen)
{
	int rc, line = 0;
	const char *msg = NULL;

	rc = ini_parse_stream(cfg_ini_read, x, cfg_ini_handle, x);
	if (x->nomem || rc == -2)
		return fail(err, errlen, -ENOMEM, "%s: out of memory", x->path);
	if (ferror(x->f))
		return fail(err, errlen, -EIO, "%s: read error", x->path);
	if (rc > 0 && (size_t)rc <= x->ncalls) {
		line = x->call_line[rc - 1];
		msg = "syntax error";
	}
	if (x->bad_line && (!line || x->bad_line < line)) {
		line = x->bad_line;
		msg = x->bad_why;
	}
	if (x->err_line && (!line || x->err_line <= line))
		return fail(err, errlen, x->err_rc, "%s", x->err_msg);
	if (line)
		return fail(err, errlen, -EINVAL, "%s:%d: %s", x->path, line, msg);
	if (rc)
		return fail(err, errlen, -EINVAL, "%s: syntax error", x->path);
	return 0;
}

static void ini_ctx_release(struct ini_ctx *x)
{
	if (x->line) {
		explicit_bzero(x->line, x->cap);
		free(x->line);
	}
	free(x->call_line);
	ini_pend_clear(x);
	for (int i = 0; i < 3; i++)
		free_secret(x->cred[i]);
	if (x->f)
		fclose(x->f);
}

/* Open path for parsing; a regular file only. */
static int ini_open(struct ini_ctx *x, const char *path, struct stat *st, char *err, size_t errlen)
{
	x->path = path;
	x->f = fopen(path, "re");
	if (!x->f) {
		int e = errno;

		if (e == ENOENT)
			return fail(err, errlen, -ENOENT, "%s: no such file", path);
		return fail(err, errlen, -e, "%s: %s", path, strerror(e));
	}
	if (fstat(fileno(x->f), st) < 0)
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st->st_mode))
		return fail(err, errlen, -EINVAL, "%s: not a regular file", path);
	return 0;
}

static int apply_config(struct ini_ctx *x, const char *section, const char *name, const char *value)
{
	const struct sfs_config_key *k;
	char why[256];
	int rc;

	if (section[0] && strcmp(section, "store") && strcmp(section, "stagefs")) {
		ini_error(x, -EINVAL, "%s:%d: unknown section '%.64s' (use [store])", x->path,
			  x->lineno, section);
		return 0;
	}
	k = find_key(name);
	if (!k) {
		ini_error(x, -EINVAL, "%s:%d: unknown key '%.64s'", x->path, x->lineno, name);
		return 0;
	}
	rc = set_key(x->c, k, value, why, sizeof(why));
	if (rc) {
		ini_error(x, rc, "%s:%d: %s: %s", x->path, x->lineno, k->name,
			  rc == -EINVAL ? why : strerror(-rc));
		return 0;
	}
	if ((k->flags & KF_SECRET) && value[0])
		x->has_secret = 1;
	if (!strcmp(k->name, "secret_key"))
		x->c->secret_from_file = value[0] != '\0';
	return 0;
}

int sfs_config_load_file(struct sfs_config *c, const char *path, char *err, size_t errlen)
{
	struct ini_ctx x = {0};
	struct sfs_config tmp;
	struct stat st;
	int rc;

	rc = config_copy(&tmp, c);
	if (rc)
		return fail(err, errlen, rc, "out of memory");
	rc = ini_open(&x, path, &st, err, errlen);
	if (rc)
		goto out;
	x.c = &tmp;
	x.apply = apply_config;
	rc = ini_run(&x, err, errlen);
	/* the permission refusal comes first: it is the one that matters most */
	if (x.has_secret && (st.st_mode & (S_IRGRP | S_IROTH))) {
		rc = fail(err, errlen, -EACCES,
			  "%s: holds secret_key but is readable by group/others; chmod 600 %s",
			  path, path);
		goto out;
	}
	if (rc)
		goto out;
	config_commit(c, &tmp);
out:
	ini_ctx_release(&x);
	sfs_config_release(&tmp);
	return rc;
}

/* ---------------------------------------------------------------- sources */

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
			rc = fail(err, errlen, rc,
				  rc == -EINVAL ? "source URL: bad %%-escape" : "out of memory");
			goto out;
		}
		k = find_key(name);
		if (!k) {
			rc = fail(err, errlen, -EINVAL, "source URL: unknown parameter '%.64s'",
				  name);
			goto out;
		}
		rc = origin_refuses(k, SFS_CFG_URL, why, sizeof(why));
		if (!rc)
			rc = set_key(c, k, value, why, sizeof(why));
		if (rc) {
			rc = fail(err, errlen, rc, "source URL: %s: %s", k->name,
				  rc == -EINVAL ? why : strerror(-rc));
			goto out;
		}
		free(name);
		free_secret(value);
		name = value = NULL;
		q += len;
		if (*q)
			q++;
	}
out:
	free(name);
	free_secret(value);
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
		return fail(err, errlen, -EINVAL,
			    "source URL: missing bucket (s3://BUCKET/prefix)");
	prefix = rest + blen;
	plen = strcspn(prefix, "?");
	query = prefix[plen] == '?' ? prefix + plen + 1 : "";
	rc = pct_decode(rest, blen, &bucket);
	if (!rc)
		rc = pct_decode(prefix, plen, &loc);
	if (rc) {
		rc = fail(err, errlen, rc,
			  rc == -EINVAL ? "source URL: bad %%-escape" : "out of memory");
		goto out;
	}
	rc = set_key(c, find_key("bucket"), bucket, why, sizeof(why));
	if (rc) {
		rc = fail(err, errlen, rc, "source URL: bucket: %s", why);
		goto out;
	}
	rc = set_str(&c->backend, "s3");
	if (!rc)
		rc = set_str(&c->location, loc);
	if (rc) {
		rc = fail(err, errlen, rc, "out of memory");
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
		return fail(err, errlen, -EINVAL,
			    "source URL: file URLs need an absolute path (file:///dir)");
	plen = strcspn(rest, "?");
	rc = pct_decode(rest, plen, &path);
	if (rc) {
		rc = fail(err, errlen, rc,
			  rc == -EINVAL ? "source URL: bad %%-escape" : "out of memory");
		goto out;
	}
	rc = apply_query(c, rest[plen] ? rest + plen + 1 : "", err, errlen);
	if (rc)
		goto out;
	rc = sfs_mkdir_p(path, 0755, 1);
	if (rc) {
		rc = fail(err, errlen, rc, "%s: cannot create: %s", path, strerror(-rc));
		goto out;
	}
	real = realpath(path, NULL);
	if (!real) {
		rc = fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	rc = set_str(&c->backend, "file");
	if (!rc)
		rc = set_str(&c->location, real);
	if (rc)
		rc = fail(err, errlen, rc, "out of memory");
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
		return fail(err, errlen, -ENOENT, "missing SOURCE");
	rc = config_copy(&tmp, c);
	if (rc)
		return fail(err, errlen, rc, "out of memory");
	slen = strspn(source, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
	if (slen && isalpha((unsigned char)source[0]) && !strncmp(source + slen, "://", 3)) {
		if (slen == 2 && !strncasecmp(source, "s3", 2))
			rc = source_s3(&tmp, source + 5, err, errlen);
		else if (slen == 4 && !strncasecmp(source, "file", 4))
			rc = source_file_url(&tmp, source + 7, err, errlen);
		else
			rc = fail(err, errlen, -EINVAL,
				  "unsupported URL scheme '%.*s' (use file:// or s3://)", (int)slen,
				  source);
		if (rc)
			goto out;
	} else if (stat(source, &st) == 0 && S_ISDIR(st.st_mode)) {
		real = realpath(source, NULL);
		if (!real) {
			rc = fail(err, errlen, -errno, "%s: %s", source, strerror(errno));
			goto out;
		}
		rc = set_str(&tmp.backend, "file");
		if (!rc)
			rc = set_str(&tmp.location, real);
		if (rc) {
			rc = fail(err, errlen, rc, "out of memory");
			goto out;
		}
	} else if (stat(source, &st) == 0 && S_ISREG(st.st_mode)) {
		rc = sfs_config_load_file(&tmp, source, err, errlen);
		if (rc)
			goto out;
	} else {
		rc = fail(err, errlen, -ENOENT, "%s: no such directory or config file", source);
		goto out;
	}
	config_commit(c, &tmp);
	rc = 0;
out:
	free(real);
	sfs_config_release(&tmp);
	return rc;
}

/* ---------------------------------------------------------------- finalize */

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* $HOME, else the passwd entry's directory; NULL if neither. */
static const char *home_dir(void)
{
	const char *h = env("HOME");
	struct passwd *pw;

	if (h && h[0] == '/')
		return h;
	pw = getpwuid(geteuid());
	return pw && pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : NULL;
}

/* Is the endpoint's host an IP address, or does it name a port? */
static int endpoint_wants_path_style(const char *endpoint)
{
	const char *host = strstr(endpoint, "://");
	char name[256];
	unsigned char addr[16];
	size_t len;

	if (!host)
		return 0;
	host += 3;
	len = strcspn(host, "/");
	if (host[0] == '[')
		return 1; /* IPv6 literal */
	if (memchr(host, ':', len))
		return 1;
	if (len >= sizeof(name))
		return 0;
	memcpy(name, host, len);
	name[len] = '\0';
	return inet_pton(AF_INET, name, addr) == 1;
}

static int apply_credentials_file(struct ini_ctx *x, const char *section, const char *name,
				  const char *value)
{
	static const char *const names[3] = {"aws_access_key_id", "aws_secret_access_key",
					     "aws_session_token"};
	char why[128];

	if (strcmp(section, x->profile))
		return 0;
	x->profile_found = 1;
	for (int i = 0; i < 3; i++) {
		if (strcasecmp(name, names[i]))
			continue;
		if (check_credential(value, why, sizeof(why))) {
			ini_error(x, -EINVAL, "%s:%d: %s: %s", x->path, x->lineno, names[i], why);
			return 0;
		}
		if (set_str(&x->cred[i], value[0] ? value : NULL))
			x->nomem = 1;
	}
	return 0;
}

/*
 * Fill unset credentials: from the environment, then the credentials file.
 * A session token is taken only from the source that also gave the access key
 * (a stale AWS_SESSION_TOKEN must not be paired with a configured key).
 */
static int finalize_credentials(struct sfs_config *c, char *err, size_t errlen)
{
	struct ini_ctx x = {0};
	struct stat st;
	const char *e;
	int explicit_file = c->credentials_file != NULL;
	int explicit_profile = c->profile != NULL || env("AWS_PROFILE");
	int got_access = 0, rc = 0;
	const char *profile, *file;
	char *def = NULL;

	if (!c->access_key && env("AWS_ACCESS_KEY_ID")) {
		if (set_str(&c->access_key, env("AWS_ACCESS_KEY_ID")))
			return fail(err, errlen, -ENOMEM, "out of memory");
		got_access = 1;
	}
	if (!c->secret_key && (e = env("AWS_SECRET_ACCESS_KEY")) != NULL &&
	    set_str(&c->secret_key, e))
		return fail(err, errlen, -ENOMEM, "out of memory");
	if (!c->session_token && got_access && (e = env("AWS_SESSION_TOKEN")) != NULL &&
	    set_str(&c->session_token, e))
		return fail(err, errlen, -ENOMEM, "out of memory");

	if (c->access_key && c->secret_key)
		return 0;
	/* defaults are used, not stored, so that finalize can run again */
	profile = c->profile ? c->profile : env("AWS_PROFILE") ? env("AWS_PROFILE") : "default";
	file = c->credentials_file;
	if (!file) {
		const char *h = home_dir();

		if (env("AWS_SHARED_CREDENTIALS_FILE"))
			def = strdup(env("AWS_SHARED_CREDENTIALS_FILE"));
		else if (h)
			def = join(h, "/.aws/credentials", NULL, NULL);
		else
			return 0;
		if (!def)
			return fail(err, errlen, -ENOMEM, "out of memory");
		file = def;
	}
	rc = ini_open(&x, file, &st, err, errlen);
	if (rc == -ENOENT && !explicit_file) {
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	if (st.st_mode & (S_IRGRP | S_IROTH))
		sfs_log(LOG_WARNING, "'%s' is readable by group/others; chmod 600 it", file);
	x.profile = profile;
	x.apply = apply_credentials_file;
	rc = ini_run(&x, err, errlen);
	if (rc)
		goto out;
	if (!x.profile_found) {
		if (explicit_profile)
			rc = fail(err, errlen, -EINVAL, "profile: '%.64s' not found in %s", profile,
				  file);
		goto out;
	}
	got_access = 0;
	if (!c->access_key && x.cred[0]) {
		c->access_key = x.cred[0];
		x.cred[0] = NULL;
		got_access = 1;
	}
	if (!c->secret_key && x.cred[1]) {
		c->secret_key = x.cred[1];
		x.cred[1] = NULL;
	}
	if (!c->session_token && got_access && x.cred[2]) {
		c->session_token = x.cred[2];
		x.cred[2] = NULL;
	}
out:
	ini_ctx_release(&x);
	free(def);
	return rc;
}

/* Strip leading and trailing '/' of the s3 prefix in place and check it. */
static int finalize_s3_prefix(struct sfs_config *c, char *err, size_t errlen)
{
	char why[128];
	char *p = c->location ? c->location : NULL;
	size_t skip, len;

	if (!p)
		return set_str(&c->location, "") ? fail(err, errlen, -ENOMEM, "out of memory") : 0;
	skip = strspn(p, "/");
	len = strlen(p + skip);
	memmove(p, p + skip, len + 1);
	while (len && p[len - 1] == '/')
		p[--len] = '\0';
	if (len && check_segments(p, why, sizeof(why)))
		return fail(err, errlen, -EINVAL, "location: %s", why);
	return 0;
}

static int md5_id(const char *s, char out[17])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	static const char hex[] = "0123456789abcdef";

	if (!EVP_Digest(s, strlen(s), md, &mdlen, EVP_md5(), NULL) || mdlen < 8)
		return -EIO;
	for (int i = 0; i < 8; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[16] = '\0';
	return 0;
}

/* $XDG_<var> (absolute only, per the XDG spec), else $HOME/<fallback>; root uses rootdir. */
static char *user_dir(const char *xdg, const char *fallback, const char *rootdir)
{
	const char *x = env(xdg), *h;

	if (geteuid() == 0)
		return strdup(rootdir);
	if (x && x[0] == '/')
		return join(x, "/stagefs", NULL, NULL);
	h = home_dir();
	if (!h)
		return NULL;
	return join(h, fallback, NULL, NULL);
}

int sfs_config_finalize(struct sfs_config *c, char *err, size_t errlen)
{
	struct sfs_config tmp;
	char id[17];
	char *key = NULL, *dir = NULL;
	int rc, s3;

	rc = config_copy(&tmp, c);
	if (rc)
		return fail(err, errlen, rc, "out of memory");
	if (!tmp.backend)
		rc = set_str(&tmp.backend, "file");
	if (!rc && !tmp.region)
		rc = set_str(&tmp.region, "us-east-1");
	if (!rc && !tmp.store_name)
		rc = set_str(&tmp.store_name, "stagefs");
	if (!rc && !tmp.schema_prefix)
		rc = set_str(&tmp.schema_prefix, "_schema");
	if (!rc && !tmp.hash_prefix)
		rc = set_str(&tmp.hash_prefix, "_hash");
	if (rc) {
		rc = fail(err, errlen, rc, "out of memory");
		goto out;
	}
	s3 = !strcmp(tmp.backend, "s3");
	if (s3) {
		if (!tmp.bucket) {
			rc = fail(err, errlen, -EINVAL, "bucket: required for backend s3");
			goto out;
		}
		rc = finalize_s3_prefix(&tmp, err, errlen);
		if (rc)
			goto out;
		if (!tmp.endpoint) {
			tmp.endpoint = join("https://s3.", tmp.region, ".amazonaws.com", NULL);
			if (!tmp.endpoint) {
				rc = fail(err, errlen, -ENOMEM, "out of memory");
				goto out;
			}
		}
		if (tmp.endpoint[strlen(tmp.endpoint) - 1] == '/')
			tmp.endpoint[strlen(tmp.endpoint) - 1] = '\0';
		if (tmp.path_style < 0)
			tmp.path_style = endpoint_wants_path_style(tmp.endpoint);
		rc = finalize_credentials(&tmp, err, errlen);
		if (rc)
			goto out;
		if (!tmp.access_key != !tmp.secret_key) {
			rc = fail(err, errlen, -EINVAL, "%s: missing (%s is set)",
				  tmp.access_key ? "secret_key" : "access_key",
				  tmp.access_key ? "access_key" : "secret_key");
			goto out;
		}
		if (tmp.session_token && !tmp.access_key) {
			rc = fail(err, errlen, -EINVAL, "session_token: set without access_key");
			goto out;
		}
	} else {
		size_t len;

		if (!tmp.location) {
			rc = fail(err, errlen, -EINVAL, "location: required for backend file");
			goto out;
		}
		if (tmp.location[0] != '/') {
			rc = fail(err, errlen, -EINVAL, "location: must be an absolute path");
			goto out;
		}
		len = strlen(tmp.location);
		while (len > 1 && tmp.location[len - 1] == '/')
			tmp.location[--len] = '\0';
		if (tmp.path_style < 0)
			tmp.path_style = 0;
	}
	if (tmp.schema_prefix && tmp.hash_prefix && !strcmp(tmp.schema_prefix, tmp.hash_prefix)) {
		rc = fail(err, errlen, -EINVAL, "hash_prefix: must differ from schema_prefix");
		goto out;
	}
	if (!tmp.cache_dir) {
		tmp.cache_dir = user_dir("XDG_CACHE_HOME", "/.cache/stagefs", "/var/cache/stagefs");
		if (!tmp.cache_dir) {
			rc = fail(err, errlen, -EINVAL,
				  "cache_dir: HOME is not set; set cache_dir");
			goto out;
		}
	}
	if (!tmp.index) {
		key = join(tmp.backend, ":", s3 ? tmp.endpoint : "", "/");
		if (key) {
			char *k2 = join(key, s3 ? tmp.bucket : "", "/", tmp.location);

			free(key);
			key = k2;
		}
		if (!key) {
			rc = fail(err, errlen, -ENOMEM, "out of memory");
			goto out;
		}
		rc = md5_id(key, id);
		if (rc) {
			rc = fail(err, errlen, rc, "index: cannot compute the store id (md5)");
			goto out;
		}
		dir = user_dir("XDG_STATE_HOME", "/.local/state/stagefs", "/var/lib/stagefs");
		if (!dir) {
			rc = fail(err, errlen, -EINVAL, "index: HOME is not set; set index");
			goto out;
		}
		tmp.index = join(dir, "/", id, ".db");
		if (!tmp.index) {
			rc = fail(err, errlen, -ENOMEM, "out of memory");
			goto out;
		}
	}
	if (tmp.snapshot)
		tmp.read_only = 1;
	config_commit(c, &tmp);
	rc = 0;
out:
	free(key);
	free(dir);
	sfs_config_release(&tmp);
	return rc;
}

int sfs_config_describe(const struct sfs_config *c, char *out, size_t outlen)
{
	int n;

	if (!c || !out || !outlen)
		return -EINVAL;
	if (c->backend && !strcmp(c->backend, "s3"))
		n = snprintf(out, outlen, "s3://%s%s%s%s%s%s%s", c->bucket ? c->bucket : "?",
			     c->location && c->location[0] ? "/" : "",
			     c->location ? c->location : "", c->endpoint ? " at " : "",
			     c->endpoint ? c->endpoint : "", c->snapshot ? " snapshot " : "",
			     c->snapshot ? c->snapshot : "");
	else
		n = snprintf(out, outlen, "file:%s%s%s", c->location ? c->location : "?",
			     c->snapshot ? " snapshot " : "", c->snapshot ? c->snapshot : "");
	if (n < 0)
		return -EINVAL;
	return (size_t)n >= outlen ? -ENOSPC : 0;
}
