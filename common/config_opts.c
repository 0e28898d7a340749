/*
 * common/config_opts.c - sfs_config_parse_opts: a comma-separated -o string,
 * config keys applied through the key table, FUSE/mount options passed
 * through (escaped as fuse_opt does).
 */
#include "common/config.h"
#include "common/config_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
	rc = sfs_cfg_copy(&tmp, c);
	if (rc)
		return sfs_cfg_fail(err, errlen, rc, "out of memory");
	item = malloc(strlen(opts) + 1);
	if (!item) {
		rc = sfs_cfg_fail(err, errlen, -ENOMEM, "out of memory");
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
		k = sfs_cfg_find_key(item);
		if (!k) {
			if (!is_passthrough(item, value)) {
				rc = sfs_cfg_fail(err, errlen, -EINVAL, "unknown option '%.64s'",
						  item);
				goto out;
			}
			if (eq)
				*eq = '=';
			rc = append_opt(&pass, item);
			if (rc) {
				rc = sfs_cfg_fail(err, errlen, rc, "out of memory");
				goto out;
			}
			continue;
		}
		rc = sfs_cfg_origin_refuses(k, SFS_CFG_OPTION, why, sizeof(why));
		if (!rc)
			rc = sfs_cfg_set_key(&tmp, k, value, why, sizeof(why));
		if (rc) {
			rc = sfs_cfg_fail(err, errlen, rc, "%s: %s", k->name,
					  rc == -EINVAL ? why : strerror(-rc));
			goto out;
		}
	}
	if (pass) {
		if (passthrough && *passthrough) {
			char *all = sfs_cfg_join(*passthrough, ",", pass, NULL);

			if (!all) {
				rc = sfs_cfg_fail(err, errlen, -ENOMEM, "out of memory");
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
	sfs_cfg_commit(c, &tmp);
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
