/*
 * common/config_finalize.c - sfs_config_finalize: the defaults that depend on
 * other keys or the environment (s3 endpoint and path style, cache_dir, the
 * index path and its store id), the credential sources (environment, then the
 * AWS shared credentials file), the final checks; and sfs_config_describe.
 */
#include "common/config.h"
#include "common/config_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/log.h"

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
		if (sfs_cfg_check_credential(value, why, sizeof(why))) {
			sfs_cfg_ini_error(x, -EINVAL, "%s:%d: %s: %s", x->path, x->lineno, names[i],
					  why);
			return 0;
		}
		if (sfs_cfg_set_str(&x->cred[i], value[0] ? value : NULL))
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
		if (sfs_cfg_set_str(&c->access_key, env("AWS_ACCESS_KEY_ID")))
			return sfs_cfg_fail(err, errlen, -ENOMEM, "out of memory");
		got_access = 1;
	}
	if (!c->secret_key && (e = env("AWS_SECRET_ACCESS_KEY")) != NULL &&
	    sfs_cfg_set_str(&c->secret_key, e))
		return sfs_cfg_fail(err, errlen, -ENOMEM, "out of memory");
	if (!c->session_token && got_access && (e = env("AWS_SESSION_TOKEN")) != NULL &&
	    sfs_cfg_set_str(&c->session_token, e))
		return sfs_cfg_fail(err, errlen, -ENOMEM, "out of memory");

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
			def = sfs_cfg_join(h, "/.aws/credentials", NULL, NULL);
		else
			return 0;
		if (!def)
			return sfs_cfg_fail(err, errlen, -ENOMEM, "out of memory");
		file = def;
	}
	rc = sfs_cfg_ini_open(&x, file, &st, err, errlen);
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
	rc = sfs_cfg_ini_run(&x, err, errlen);
	if (rc)
		goto out;
	if (!x.profile_found) {
		if (explicit_profile)
			rc = sfs_cfg_fail(err, errlen, -EINVAL, "profile: '%.64s' not found in %s",
					  profile, file);
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
	sfs_cfg_ini_release(&x);
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
		return sfs_cfg_set_str(&c->location, "")
			       ? sfs_cfg_fail(err, errlen, -ENOMEM, "out of memory")
			       : 0;
	skip = strspn(p, "/");
	len = strlen(p + skip);
	memmove(p, p + skip, len + 1);
	while (len && p[len - 1] == '/')
		p[--len] = '\0';
	if (len && sfs_cfg_check_segments(p, why, sizeof(why)))
		return sfs_cfg_fail(err, errlen, -EINVAL, "location: %s", why);
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
		return sfs_cfg_join(x, "/stagefs", NULL, NULL);
	h = home_dir();
	if (!h)
		return NULL;
	return sfs_cfg_join(h, fallback, NULL, NULL);
}

int sfs_config_finalize(struct sfs_config *c, char *err, size_t errlen)
{
	struct sfs_config tmp;
	char id[17];
	char *key = NULL, *dir = NULL;
	int rc, s3;

	rc = sfs_cfg_copy(&tmp, c);
	if (rc)
		return sfs_cfg_fail(err, errlen, rc, "out of memory");
	if (!tmp.backend)
		rc = sfs_cfg_set_str(&tmp.backend, "file");
	if (!rc && !tmp.region)
		rc = sfs_cfg_set_str(&tmp.region, "us-east-1");
	if (!rc && !tmp.store_name)
		rc = sfs_cfg_set_str(&tmp.store_name, "stagefs");
	if (!rc && !tmp.schema_prefix)
		rc = sfs_cfg_set_str(&tmp.schema_prefix, "_schema");
	if (!rc && !tmp.hash_prefix)
		rc = sfs_cfg_set_str(&tmp.hash_prefix, "_hash");
	if (!rc && !tmp.upload)
		rc = sfs_cfg_set_str(&tmp.upload, "async");
	if (rc) {
		rc = sfs_cfg_fail(err, errlen, rc, "out of memory");
		goto out;
	}
	s3 = !strcmp(tmp.backend, "s3");
	if (s3) {
		if (!tmp.bucket) {
			rc = sfs_cfg_fail(err, errlen, -EINVAL, "bucket: required for backend s3");
			goto out;
		}
		rc = finalize_s3_prefix(&tmp, err, errlen);
		if (rc)
			goto out;
		if (!tmp.endpoint) {
			tmp.endpoint =
				sfs_cfg_join("https://s3.", tmp.region, ".amazonaws.com", NULL);
			if (!tmp.endpoint) {
				rc = sfs_cfg_fail(err, errlen, -ENOMEM, "out of memory");
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
			rc = sfs_cfg_fail(err, errlen, -EINVAL, "%s: missing (%s is set)",
					  tmp.access_key ? "secret_key" : "access_key",
					  tmp.access_key ? "access_key" : "secret_key");
			goto out;
		}
		if (tmp.session_token && !tmp.access_key) {
			rc = sfs_cfg_fail(err, errlen, -EINVAL,
					  "session_token: set without access_key");
			goto out;
		}
	} else {
		size_t len;

		if (!tmp.location) {
			rc = sfs_cfg_fail(err, errlen, -EINVAL,
					  "location: required for backend file");
			goto out;
		}
		if (tmp.location[0] != '/') {
			rc = sfs_cfg_fail(err, errlen, -EINVAL,
					  "location: must be an absolute path");
			goto out;
		}
		len = strlen(tmp.location);
		while (len > 1 && tmp.location[len - 1] == '/')
			tmp.location[--len] = '\0';
		if (tmp.path_style < 0)
			tmp.path_style = 0;
	}
	if (tmp.schema_prefix && tmp.hash_prefix && !strcmp(tmp.schema_prefix, tmp.hash_prefix)) {
		rc = sfs_cfg_fail(err, errlen, -EINVAL,
				  "hash_prefix: must differ from schema_prefix");
		goto out;
	}
	if (!tmp.cache_dir) {
		tmp.cache_dir = user_dir("XDG_CACHE_HOME", "/.cache/stagefs", "/var/cache/stagefs");
		if (!tmp.cache_dir) {
			rc = sfs_cfg_fail(err, errlen, -EINVAL,
					  "cache_dir: HOME is not set; set cache_dir");
			goto out;
		}
	}
	if (!tmp.index) {
		key = sfs_cfg_join(tmp.backend, ":", s3 ? tmp.endpoint : "", "/");
		if (key) {
			char *k2 = sfs_cfg_join(key, s3 ? tmp.bucket : "", "/", tmp.location);

			free(key);
			key = k2;
		}
		if (!key) {
			rc = sfs_cfg_fail(err, errlen, -ENOMEM, "out of memory");
			goto out;
		}
		rc = md5_id(key, id);
		if (rc) {
			rc = sfs_cfg_fail(err, errlen, rc,
					  "index: cannot compute the store id (md5)");
			goto out;
		}
		dir = user_dir("XDG_STATE_HOME", "/.local/state/stagefs", "/var/lib/stagefs");
		if (!dir) {
			rc = sfs_cfg_fail(err, errlen, -EINVAL,
					  "index: HOME is not set; set index");
			goto out;
		}
		tmp.index = sfs_cfg_join(dir, "/", id, ".db");
		if (!tmp.index) {
			rc = sfs_cfg_fail(err, errlen, -ENOMEM, "out of memory");
			goto out;
		}
	}
	if (tmp.snapshot)
		tmp.read_only = 1;
	sfs_cfg_commit(c, &tmp);
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
