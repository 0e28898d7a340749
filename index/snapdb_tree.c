/* index/snapdb_tree.c - a manifest database read as a tree: its DANDI checksum a
 * directory at a time, the objects it lists, and the difference of two (see snapdb.h) */
#include "index/snapdb.h"
#include "index/snapdb_priv.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "index/addressing.h"

struct obj_ctx {
	int (*cb)(void *arg, const char *object);
	void *arg;
};

static int obj_row(void *arg, sqlite3_stmt *s)
{
	struct obj_ctx *o = arg;

	return o->cb(o->arg, (const char *)sqlite3_column_text(s, 0));
}

int sfs_snapdb_each_object(struct sfs_snapdb *d, int (*cb)(void *arg, const char *object),
			   void *arg)
{
	struct obj_ctx o = {cb, arg};

	pthread_mutex_lock(&d->lock);
	int rc = sfs_sdb_each_row(d, "SELECT DISTINCT object FROM e WHERE object IS NOT NULL",
				  obj_row, &o);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/* The tree checksum's view of a sealed database: one directory's rows at a time. */
static int tree_rows(struct sfs_snapdb *d, int64_t dir, int is_dir,
		     int (*fn)(void *, sqlite3_stmt *), void *arg)
{
	int rc = 0, r = SQLITE_DONE;

	pthread_mutex_lock(&d->lock);
	/* one directory's rows, read to the end before the walk asks for the next */
	sqlite3_stmt *s = sfs_sdb_stmt(d, ST_TREE);
	if (!s && !(rc = sfs_sdb_xl(d, sqlite3_errcode(d->db), "checksum")))
		rc = -EIO;
	if (!rc) {
		sqlite3_bind_int64(s, 1, dir);
		sqlite3_bind_int(s, 2, is_dir);
	}
	while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW)
		rc = fn(arg, s);
	if (!rc && r != SQLITE_DONE)
		rc = sfs_sdb_xl(d, r, "checksum");
	if (s)
		sqlite3_reset(s);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

struct tree_cb {
	int (*dir)(void *, int64_t, const char *);
	int (*file)(void *, const char *, const char[33], uint64_t);
	void *arg;
};

static int tree_dir_row(void *arg, sqlite3_stmt *s)
{
	struct tree_cb *t = arg;

	return t->dir(t->arg, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1));
}

static int tree_file_row(void *arg, sqlite3_stmt *s)
{
	struct tree_cb *t = arg;
	const char *name = (const char *)sqlite3_column_text(s, 1);
	const char *md5 = (const char *)sqlite3_column_text(s, 2);

	if (!md5)
		return sfs_err(-ENODATA, "snapshot: '%s' (entry %lld) has no digest", name,
			       (long long)sqlite3_column_int64(s, 0));
	return t->file(t->arg, name, md5, (uint64_t)sqlite3_column_int64(s, 3));
}

static int tree_subdirs(void *arg, int64_t dir, int (*cb)(void *, int64_t, const char *),
			void *cbarg)
{
	struct tree_cb t = {.dir = cb, .arg = cbarg};

	return tree_rows(arg, dir, 1, tree_dir_row, &t);
}

static int tree_files(void *arg, int64_t dir,
		      int (*cb)(void *, const char *, const char[33], uint64_t), void *cbarg)
{
	struct tree_cb t = {.file = cb, .arg = cbarg};

	return tree_rows(arg, dir, 0, tree_file_row, &t);
}

int sfs_snapdb_checksum(struct sfs_snapdb *d, char *out, size_t outlen)
{
	struct sfs_zarr_tree t = {tree_subdirs, tree_files, d};

	if (!sfs_snapdb_sealed(d))
		return -EINVAL;
	return sfs_zarr_checksum_tree(&t, 1, out, outlen);
}

struct diff_ctx {
	int (*cb)(void *arg, char kind, const char *path);
	void *arg;
};

static int diff_row(void *arg, sqlite3_stmt *s)
{
	struct diff_ctx *c = arg;

	return c->cb(c->arg, (char)sqlite3_column_text(s, 0)[0],
		     (const char *)sqlite3_column_text(s, 1));
}

int sfs_snapdb_diff(struct sfs_snapdb *a, struct sfs_snapdb *b,
		    int (*cb)(void *arg, char kind, const char *path), void *arg)
{
	struct diff_ctx c = {cb, arg};
	sqlite3_stmt *s = NULL;
	int rc;

	/* b's file is opened again by a's connection: a scratch database gives up the
	   exclusive lock it holds (it goes with its next read) */
	for (int i = 0; i < 2; i++) {
		struct sfs_snapdb *d = i ? b : a;
		pthread_mutex_lock(&d->lock);
		rc = sfs_sdb_run(d, "PRAGMA locking_mode=NORMAL; SELECT count(*) FROM meta");
		pthread_mutex_unlock(&d->lock);
		if (rc)
			return rc;
	}
	pthread_mutex_lock(&a->lock);
	rc = sfs_sdb_xl(a, sqlite3_prepare_v2(a->db, "ATTACH ?1 AS other", -1, &s, NULL), "attach");
	if (!rc) {
		sfs_sdb_bind_str(s, 1, b->file);
		rc = sfs_sdb_xl(a, sqlite3_step(s), "attach");
	}
	sqlite3_finalize(s);
	if (!rc) {
		rc = sfs_sdb_each_row(
			a,
			"SELECT '-', x.path FROM main.e x WHERE x.path<>'' AND NOT EXISTS"
			"  (SELECT 1 FROM other.e y WHERE y.path=x.path) "
			"UNION ALL SELECT '+', y.path FROM other.e y WHERE y.path<>'' AND "
			"  NOT EXISTS (SELECT 1 FROM main.e x WHERE x.path=y.path) "
			"UNION ALL SELECT '~', x.path FROM main.e x JOIN other.e y ON "
			"  y.path=x.path WHERE x.is_dir<>y.is_dir OR (x.is_dir=0 AND "
			"  (x.size IS NOT y.size OR x.md5 IS NOT y.md5)) "
			"ORDER BY 2",
			diff_row, &c);
		(void)sfs_sdb_run(a, "DETACH other");
	}
	pthread_mutex_unlock(&a->lock);
	return rc;
}
