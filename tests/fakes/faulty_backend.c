/*
 * tests/fakes/faulty_backend.c - a backend that fails the Nth change it is
 * asked to make (SQLite's I/O-error tests are the model: fail call 1, 2, ...
 * until the operation succeeds, and check after each failure that nothing is
 * lost or half done).
 *
 * Linked into build/tests/stagefs-faulty (the daemon and CLI, for tests) and
 * the unit tests; the stagefs binary users run has no such code.  With
 * STAGEFS_FAULTY=CTL in the environment every backend sfs_backend_open makes
 * is wrapped: CTL is a file holding "N [ERRNO [TIMES]]".  Each time its text
 * changes the count restarts, and the Nth changing call from then on
 * (staged_sync, staged_unlink, staged_rename, staged_remove, put_bytes,
 * promote, remove, move, sync) fails with -ERRNO (default EIO) without
 * reaching the real backend, and so do the TIMES - 1 after it (default: only
 * that one), until CTL changes again.  "0" or a missing CTL fails
 * nothing.  Each failure is logged and appended to CTL.log as
 * "N op key".  Reads pass through untouched.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "common/log.h"

struct faulty {
	struct sfs_backend base;
	struct sfs_backend_ops ops;
	struct sfs_backend *in;
	char *ctl;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char seen[64];		  /* CTL's text when the count restarted; lock */
static long target, calls, times; /* lock */
static int err = EIO;		  /* lock */

static struct sfs_backend *IN(struct sfs_backend *b)
{
	return ((struct faulty *)b)->in;
}

/* 0: go on; -errno: this call is the one to fail. */
static int fault(struct sfs_backend *b, const char *op, const char *key)
{
	struct faulty *f = (struct faulty *)b;
	char text[64] = "";
	int rc = 0;
	FILE *c = fopen(f->ctl, "r");

	if (c) {
		size_t n = fread(text, 1, sizeof(text) - 1, c);
		text[n] = '\0';
		fclose(c);
	}
	pthread_mutex_lock(&lock);
	if (strcmp(text, seen) != 0) {
		snprintf(seen, sizeof(seen), "%s", text);
		char *end = NULL, *end2 = NULL;
		target = strtol(text, &end, 10);
		long e = end ? strtol(end, &end2, 10) : 0;
		long t = end2 ? strtol(end2, NULL, 10) : 0;
		err = e > 0 ? (int)e : EIO;
		times = t > 0 ? t : 1;
		calls = 0;
	}
	if (target > 0 && ++calls >= target && calls < target + times) {
		rc = -err;
		char *logf = NULL;
		if (asprintf(&logf, "%s.log", f->ctl) >= 0) {
			FILE *l = fopen(logf, "a");
			if (l) {
				fprintf(l, "%ld %s %s\n", calls, op, key ? key : "");
				fclose(l);
			}
		}
		free(logf);
		sfs_log(LOG_WARNING, "faulty: failing call %ld: %s(%s) with %s", calls, op,
			key ? key : "", strerror(err));
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

#define FAIL(op, key)                            \
	do {                                     \
		int frc_ = fault(b, #op, (key)); \
		if (frc_)                        \
			return frc_;             \
	} while (0)

/* ---- changing calls: may fail ---- */

static int f_staged_sync(struct sfs_backend *b, const char *rel, int fd, int durable)
{
	FAIL(staged_sync, rel);
	return IN(b)->ops->staged_sync(IN(b), rel, fd, durable);
}

static int f_staged_unlink(struct sfs_backend *b, const char *rel, int is_dir)
{
	FAIL(staged_unlink, rel);
	return IN(b)->ops->staged_unlink(IN(b), rel, is_dir);
}

static int f_staged_rename(struct sfs_backend *b, const char *from, const char *to)
{
	FAIL(staged_rename, from);
	return IN(b)->ops->staged_rename(IN(b), from, to);
}

static int f_staged_remove(struct sfs_backend *b, const char *rel)
{
	FAIL(staged_remove, rel);
	return IN(b)->ops->staged_remove(IN(b), rel);
}

static int f_put_bytes(struct sfs_backend *b, const char *key, const void *buf, size_t n, int fl)
{
	FAIL(put_bytes, key);
	return IN(b)->ops->put_bytes(IN(b), key, buf, n, fl);
}

static int f_promote(struct sfs_backend *b, const char *rel, const char *key, int flags)
{
	FAIL(promote, key);
	return IN(b)->ops->promote(IN(b), rel, key, flags);
}

static int f_remove(struct sfs_backend *b, const char *key)
{
	FAIL(remove, key);
	return IN(b)->ops->remove(IN(b), key);
}

static int f_move(struct sfs_backend *b, const char *from, const char *to)
{
	FAIL(move, from);
	return IN(b)->ops->move(IN(b), from, to);
}

static int f_sync(struct sfs_backend *b)
{
	FAIL(sync, NULL);
	return IN(b)->ops->sync(IN(b));
}

/* ---- everything else passes through ---- */

static void f_set_journal(struct sfs_backend *b, const struct sfs_staged_journal *j)
{
	IN(b)->ops->set_journal(IN(b), j);
}

static int f_staging_dir(struct sfs_backend *b)
{
	return IN(b)->ops->staging_dir(IN(b));
}

static int f_staged_fetch(struct sfs_backend *b, const char *rel, int fd)
{
	return IN(b)->ops->staged_fetch(IN(b), rel, fd);
}

static int f_stat(struct sfs_backend *b, const char *key, struct sfs_bstat *st)
{
	return IN(b)->ops->stat(IN(b), key, st);
}

static int f_list(struct sfs_backend *b, const char *key, sfs_list_cb cb, void *arg)
{
	return IN(b)->ops->list(IN(b), key, cb, arg);
}

static int f_walk(struct sfs_backend *b, const char *key, sfs_bwalk_cb cb, void *arg)
{
	return IN(b)->ops->walk(IN(b), key, cb, arg);
}

static int f_open(struct sfs_backend *b, const char *key, struct sfs_bfile **out)
{
	return IN(b)->ops->open(IN(b), key, out);
}

static ssize_t f_pread(struct sfs_backend *b, struct sfs_bfile *fh, void *buf, size_t n, off_t off)
{
	return IN(b)->ops->pread(IN(b), fh, buf, n, off);
}

static void f_close(struct sfs_backend *b, struct sfs_bfile *fh)
{
	IN(b)->ops->close(IN(b), fh);
}

static int f_get_bytes(struct sfs_backend *b, const char *key, void **buf, size_t *n, size_t max)
{
	return IN(b)->ops->get_bytes(IN(b), key, buf, n, max);
}

static void f_destroy(struct sfs_backend *b)
{
	struct faulty *f = (struct faulty *)b;

	sfs_backend_free(f->in);
	free(f->ctl);
	free(f);
}

int sfs_backend_test_wrap(struct sfs_backend **b)
{
	const char *ctl = getenv("STAGEFS_FAULTY");
	struct faulty *f;

	if (!ctl || !*ctl)
		return 0;
	f = calloc(1, sizeof(*f));
	if (!f || !(f->ctl = strdup(ctl))) {
		free(f);
		return -ENOMEM;
	}
	f->in = *b;
	const struct sfs_backend_ops *o = f->in->ops;
	f->ops = (struct sfs_backend_ops){
		.name = o->name,
		.caps = o->caps,
	/* an op the real backend lacks stays absent: callers test for it */
#define W(op) .op = o->op ? f_##op : NULL
		W(set_journal),
		W(staging_dir),
		W(staged_sync),
		W(staged_unlink),
		W(staged_rename),
		W(staged_remove),
		W(staged_fetch),
		W(stat),
		W(list),
		W(walk),
		W(open),
		W(pread),
		W(close),
		W(put_bytes),
		W(get_bytes),
		W(promote),
		W(remove),
		W(move),
		W(sync),
		W(destroy),
#undef W
	};
	f->base.ops = &f->ops;
	*b = &f->base;
	sfs_log(LOG_NOTICE, "faulty: the %s backend fails the call %s names", o->name, ctl);
	return 0;
}
