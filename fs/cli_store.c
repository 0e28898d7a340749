/* fs/cli_store.c - what the subcommands share (see cli.h). */
#include "fs/cli.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/view.h"
#include "index/snapdb.h"

/* ---- small helpers ---- */

char *sfs_cli_jget(const char *json, const char *path)
{
	char *s = NULL;

	return sfs_json_eval("json_extract(?1, ?2)", 2, (const char *const[]){json, path}, &s) == 0
		       ? s
		       : NULL;
}

/* A whole positive number, or -1. */
int sfs_cli_atoi(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return *s && !*end && v > 0 && v < 100000 ? (int)v : -1;
}

int sfs_cli_xattr(const char *path, const char *name, char **out)
{
	ssize_t n = getxattr(path, name, NULL, 0);
	if (n < 0)
		return -errno;
	char *b = malloc((size_t)n + 1);
	if (!b)
		return -ENOMEM;
	n = getxattr(path, name, b, (size_t)n);
	if (n < 0) {
		int e = -errno;
		free(b);
		return e;
	}
	b[n] = '\0';
	*out = b;
	return 0;
}

void sfs_cli_human(uint64_t b, char *out, size_t len)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)b;
	int i = 0;

	while (v >= 1024 && i < 5) {
		v /= 1024;
		i++;
	}
	snprintf(out, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

/* ---- snapshots: the store, opened by this process ---- */

/* 1 when path is the mount point of a stagefs mount. */
int sfs_cli_is_mount(const char *path)
{
	char real[4096], line[8192];
	FILE *f;
	int yes = 0;

	if (!realpath(path, real) || !(f = fopen("/proc/self/mounts", "r")))
		return 0;
	while (!yes && fgets(line, sizeof(line), f)) {
		char dev[4096], mp[4096], type[256];
		if (sscanf(line, "%4095s %4095s %255s", dev, mp, type) == 3 &&
		    strcmp(mp, real) == 0 && strcmp(type, "fuse.stagefs") == 0)
			yes = 1;
	}
	fclose(f);
	return yes;
}

/*
 * Open SOURCE or a MOUNTPOINT's source.  private_cache: a cache of our own
 * (verify must read the store, not blocks cached from it), removed at close.
 */
int sfs_cli_store_open(const char *where, const char *opts, int writable, int want_index,
		       int private_cache, struct store *s)
{
	char err[512] = "", *src = NULL, *mopts = NULL, *info = NULL, *all = NULL, *pass = NULL;
	int rc;

	memset(s, 0, sizeof(*s));
	sfs_config_init(&s->cfg);
	if (sfs_cli_is_mount(where)) {
		/* the mount's own source and options, as its daemon reports them */
		rc = sfs_cli_xattr(where, SFS_XATTR_SOURCE, &info);
		src = rc ? NULL : sfs_cli_jget(info, "$.source");
		mopts = rc ? NULL : sfs_cli_jget(info, "$.options");
		if (!src) {
			fprintf(stderr,
				"stagefs: snapshots: '%s': its daemon does not say its source\n",
				where);
			rc = -EINVAL;
			goto out;
		}
	}
	rc = sfs_config_parse_source(&s->cfg, src ? src : where, err, sizeof(err));
	if (!rc && (mopts || opts)) {
		if (asprintf(&all, "%s%s%s", mopts ? mopts : "", mopts && opts ? "," : "",
			     opts ? opts : "") < 0)
			all = NULL;
		rc = all ? sfs_config_parse_opts(&s->cfg, all, &pass, err, sizeof(err)) : -ENOMEM;
	}
	if (!rc) {
		if (!writable)
			s->cfg.read_only = 1;
		s->cfg.snapshot = NULL;
		if (private_cache) {
			const char *t = getenv("TMPDIR");
			char tmpl[4096];
			snprintf(tmpl, sizeof(tmpl), "%s/stagefs-verify-XXXXXX",
				 t && *t ? t : "/tmp");
			if (!mkdtemp(tmpl)) {
				rc = -errno;
			} else {
				s->tmp_cache = strdup(tmpl);
				rc = sfs_config_set(&s->cfg, "cache_dir", tmpl, SFS_CFG_OPTION, err,
						    sizeof(err));
			}
		}
		if (!rc)
			rc = sfs_config_finalize(&s->cfg, err, sizeof(err));
	}
	if (rc) {
		fprintf(stderr, "stagefs: snapshots: %s\n", err[0] ? err : strerror(-rc));
		rc = 2;
		goto out;
	}
	rc = sfs_backend_open(&s->cfg, &s->be);
	if (rc) {
		fprintf(stderr, "stagefs: snapshots: cannot open the store: %s\n", strerror(-rc));
		rc = 1;
		goto out;
	}
	if (want_index && sfs_index_open(s->cfg.index, &s->ix) != 0) {
		fprintf(stderr, "stagefs: snapshots: cannot open the index '%s'\n", s->cfg.index);
		rc = 1;
		goto out;
	}
	rc = 0;
out:
	free(src);
	free(mopts);
	free(info);
	free(all);
	free(pass);
	return rc < 0 ? 1 : rc;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

void sfs_cli_store_close(struct store *s)
{
	sfs_index_close(s->ix);
	sfs_backend_free(s->be);
	sfs_config_release(&s->cfg);
	if (s->tmp_cache) {
		if (nftw(s->tmp_cache, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
			fprintf(stderr, "stagefs: cannot remove '%s'\n", s->tmp_cache);
		free(s->tmp_cache);
	}
}

int sfs_cli_json_stem(const char *key, const struct sfs_bstat *st, const char *dir, char **stem)
{
	size_t d = strlen(dir), n = strlen(key);

	if (S_ISDIR(st->mode) || strncmp(key, dir, d) != 0 || key[d] != '/' || n < d + 7 ||
	    strcmp(key + n - 5, ".json") != 0)
		return 0;
	*stem = strndup(key + d + 1, n - d - 1 - 5);
	return *stem ? 1 : -ENOMEM;
}

int sfs_cli_stems_cb(void *arg, const char *key, const struct sfs_bstat *st)
{
	struct sfs_cli_stems *l = arg;
	char *stem = NULL;
	int rc = sfs_cli_json_stem(key, st, l->dir, &stem);

	if (rc <= 0)
		return rc;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			free(stem);
			return -ENOMEM;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = stem;
	return 0;
}

void sfs_cli_stems_free(struct sfs_cli_stems *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}
