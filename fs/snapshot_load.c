/* fs/snapshot_load.c - a published snapshot read back (its head, its parts, a cached
 * manifest database), the live names, and delete's tombstone; see snapshot.h */
#include "fs/snapshot.h"
#include "fs/snapshot_priv.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/gz.h"
#include "common/log.h"
#include "index/addressing.h"

/* ---- load ---- */

static int load_parts(struct sfs_backend *be, const char *name, const char *head,
		      struct sfs_snapdb *db)
{
	char *n = sfs_snap_jeval("json_array_length(?1,'$.parts')", 1, (const char *const[]){head});
	char *want_prefix = sfs_snap_key(name, "");
	long parts = n ? strtol(n, NULL, 10) : -1;
	int rc = parts < 0 || !want_prefix ? -EINVAL : 0;

	free(n);
	for (long i = 0; !rc && i < parts; i++) {
		char path[64], *key = NULL, *md5 = NULL, *have = NULL, *raw = NULL;
		void *json = NULL;
		size_t rawn = 0, jn = 0;

		snprintf(path, sizeof(path), "$.parts[%ld]", i);
		key = sfs_snap_jeval("json_extract(?1, ?2||'.key')", 2,
				     (const char *const[]){head, path});
		md5 = sfs_snap_jeval("json_extract(?1, ?2||'.md5')", 2,
				     (const char *const[]){head, path});
		/* a head names only parts of its own snapshot */
		if (!key || !md5 || strncmp(key, want_prefix, strlen(want_prefix)) != 0 ||
		    strstr(key, "/../") || strstr(key, "//"))
			rc = sfs_warn(-EINVAL, "snapshot '%s': part %ld has no usable key", name,
				      i);
		if (!rc)
			rc = sfs_backend_get_bytes(be, key, (void **)&raw, &rawn, PART_MAX);
		if (!rc && (!(have = sfs_snap_md5hex(raw, rawn)) || strcmp(have, md5) != 0))
			rc = sfs_warn(-EIO, "snapshot '%s': part '%s' does not match its digest",
				      name, key);
		if (!rc)
			rc = sfs_gunzip(raw, rawn, PART_INFLATE_MAX, &json, &jn);
		if (!rc)
			rc = sfs_snapdb_load_part(db, json, jn);
		free(key);
		free(md5);
		free(have);
		free(raw);
		free(json);
	}
	free(want_prefix);
	return rc;
}

int sfs_snap_load(struct sfs_backend *be, const char *name, const char *cache_dir,
		  struct sfs_snapdb **out, char **head_out)
{
	struct sfs_snapdb *db = NULL;
	char *head = NULL, *digest = NULL, *path = NULL, *tmp = NULL, *dir = NULL;
	int rc;

	if (!sfs_snap_name_ok(name))
		return -EINVAL;
	rc = sfs_snap_head(be, name, &head, NULL);
	if (rc)
		return rc;
	digest = sfs_snap_md5hex(head, strlen(head));
	if (!digest) {
		rc = -ENOMEM;
		goto out;
	}
	if (cache_dir) {
		if (asprintf(&dir, "%s/snapshots", cache_dir) < 0 ||
		    asprintf(&path, "%s/%s.db", dir, digest) < 0 ||
		    asprintf(&tmp, "%s.%ld.%lx.tmp", path, (long)getpid(),
			     (unsigned long)pthread_self()) < 0) {
			rc = -ENOMEM;
			goto out;
		}
		rc = sfs_mkdir_p(dir, 0700, 1);
		if (rc)
			goto out;
		if (access(path, F_OK) == 0) {
			rc = sfs_snapdb_open(path, &db);
			if (!rc && sfs_snapdb_sealed(db))
				goto done; /* cached */
			sfs_snapdb_close(db);
			db = NULL;
			unlink(path);
		}
	}
	rc = sfs_snapdb_open(tmp, &db);
	if (!rc)
		rc = load_parts(be, name, head, db);
	if (!rc)
		rc = sfs_snapdb_seal(db);
	if (rc)
		goto out;
	if (tmp) {
		sfs_snapdb_close(db);
		db = NULL;
		if (rename(tmp, path) < 0) {
			rc = -errno;
			goto out;
		}
		rc = sfs_snapdb_open(path, &db);
		if (rc)
			goto out;
	}
done:
	*out = db;
	db = NULL;
	if (head_out) {
		*head_out = head;
		head = NULL;
	}
out:
	if (tmp && rc)
		unlink(tmp);
	sfs_snapdb_close(db);
	free(head);
	free(digest);
	free(path);
	free(tmp);
	free(dir);
	return rc;
}

/* ---- names ---- */

struct list_ctx {
	struct sfs_backend *be;
	int (*cb)(void *arg, const char *name);
	void *arg;
	int cb_rc; /* what cb returned when it stopped the listing */
};

static int list_cb(void *arg, const char *name, const struct sfs_bstat *st)
{
	struct list_ctx *l = arg;
	struct sfs_bstat hs;

	if (!S_ISDIR(st->mode) || !sfs_snap_name_ok(name))
		return 0;
	char *hk = sfs_snap_key(name, HEAD_LEAF), *dk = sfs_snap_key(name, DELETED_LEAF);
	int live = hk && dk && sfs_backend_stat(l->be, hk, &hs) == 0 &&
		   sfs_backend_stat(l->be, dk, &hs) == -ENOENT;
	free(hk);
	free(dk);
	if (live && (l->cb_rc = l->cb(l->arg, name)) != 0)
		return l->cb_rc;
	return 0;
}

int sfs_snap_list(struct sfs_backend *be, int (*cb)(void *arg, const char *name), void *arg)
{
	struct list_ctx l = {be, cb, arg, 0};
	int rc = sfs_backend_list(be, SFS_SNAPSHOTS, list_cb, &l);

	/* no _snapshots/ yet: none; a callback's -ENOENT is its own error */
	return l.cb_rc ? l.cb_rc : rc == -ENOENT ? 0 : rc;
}

int sfs_snap_delete(struct sfs_backend *be, const char *name)
{
	char when[48], host[256] = "";
	int rc = sfs_snap_head(be, name, NULL, NULL);

	if (rc)
		return rc; /* -ENOENT, or -ESTALE: deleted already */
	sfs_now_iso(when, sizeof(when));
	(void)gethostname(host, sizeof(host) - 1);
	char *t = sfs_snap_jeval("json_object('name',?1,'deleted',?2,'host',?3)", 3,
				 (const char *const[]){name, when, host});
	char *dk = sfs_snap_key(name, DELETED_LEAF);
	rc = t && dk ? sfs_backend_put_bytes(be, dk, t, strlen(t), SFS_NOREPLACE) : -ENOMEM;
	if (rc == -EEXIST)
		rc = -ESTALE;
	if (!rc)
		sfs_log(LOG_INFO, "deleted snapshot '%s' (its name stays taken)", name);
	free(t);
	free(dk);
	return rc;
}
