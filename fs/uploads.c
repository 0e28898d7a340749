/*
 * fs/uploads.c - the write-back queue of staged files (see fs/uploads.h).
 *
 * One entry per queued path, in a hash table (found by path: every close,
 * rename and unlink asks) and, while waiting, in a FIFO: the delay is the
 * same for all, so the FIFO is in due order and a worker only looks at its
 * head.  An entry being uploaded is out of the FIFO; a close meanwhile bumps
 * its generation, and the worker queues it again when it is done.  Renames and
 * unlinks wait for a running upload of their path, so an entry never changes
 * its path under a worker.
 *
 * A worker opens the file by its path in the local staging dir.  A rename
 * between its open and the rename's hook can make it upload a file under a
 * path that has just changed; the index's row then records that file's size
 * and time, which the next commit or mount compares with the local file and
 * uploads again when they differ (sfs_stg_sync_current, reconciliation).
 */
#include "fs/uploads.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/staging.h"

#define UPL_THREADS	  4
#define UPL_MISSING_MAX	  3  /* a path found missing this often is forgotten */
#define UPL_FLUSH_TRIES	  3  /* at unmount: tries per file before it is left for the next mount */
#define UPL_BACKOFF_MAX_S 60 /* a failed upload is tried again after 1, 2, 4 ... s */
#define UPL_FLUSH_STALL_S 30 /* a flush gives up when nothing went up for this long */

struct upl {
	char *rel;
	struct upl *hnext;	 /* hash chain */
	struct upl *prev, *next; /* FIFO, while waiting */
	int64_t due;		 /* CLOCK_MONOTONIC ns */
	uint64_t gen;		 /* bumped by every close */
	int queued;		 /* in the FIFO */
	int uploading, missing, attempts;
};

struct sfs_uploads {
	pthread_mutex_t lock;
	pthread_cond_t work; /* something was queued, or stop */
	pthread_cond_t done; /* an upload ended */
	struct upl **tab;
	size_t tabn, count;
	struct upl *head, *tail;
	pthread_t thr[UPL_THREADS];
	int nthr, stopping;
	int hurry; /* callers of sfs_uploads_flush waiting: nothing waits for its due time */
	int64_t delay_ns;
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static size_t hash_of(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)h;
}

static struct upl **slot_of(struct sfs_uploads *u, const char *rel)
{
	struct upl **p = &u->tab[hash_of(rel) & (u->tabn - 1)];

	while (*p && strcmp((*p)->rel, rel) != 0)
		p = &(*p)->hnext;
	return p;
}

static int grow(struct sfs_uploads *u)
{
	size_t n = u->tabn ? u->tabn * 2 : 1024;
	struct upl **t = calloc(n, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < u->tabn; i++) {
		for (struct upl *e = u->tab[i], *nx; e; e = nx) {
			nx = e->hnext;
			size_t h = hash_of(e->rel) & (n - 1);
			e->hnext = t[h];
			t[h] = e;
		}
	}
	free(u->tab);
	u->tab = t;
	u->tabn = n;
	return 0;
}

static void fifo_append(struct sfs_uploads *u, struct upl *e)
{
	e->queued = 1;
	e->next = NULL;
	e->prev = u->tail;
	if (u->tail)
		u->tail->next = e;
	else
		u->head = e;
	u->tail = e;
}

static void fifo_unlink(struct sfs_uploads *u, struct upl *e)
{
	if (!e->queued)
		return;
	e->queued = 0;
	if (e->prev)
		e->prev->next = e->next;
	else
		u->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		u->tail = e->prev;
	e->prev = e->next = NULL;
}

/* Unhash, unqueue and free e (not uploading). */
static void drop(struct sfs_uploads *u, struct upl *e)
{
	struct upl **p = slot_of(u, e->rel);

	if (*p == e)
		*p = e->hnext;
	fifo_unlink(u, e);
	u->count--;
	free(e->rel);
	free(e);
}

/* 1 when rel is prefix itself, or below it when is_dir */
static int under(const char *rel, const char *prefix, size_t plen, int is_dir)
{
	if (strncmp(rel, prefix, plen) != 0)
		return 0;
	return rel[plen] == '\0' || (is_dir && rel[plen] == '/');
}

/* 1 when prefix (or, is_dir, something below it) is being uploaded (lock held) */
static int busy(struct sfs_uploads *u, const char *prefix, int is_dir)
{
	size_t plen = strlen(prefix);

	if (!is_dir) {
		struct upl *e = *slot_of(u, prefix);
		return e && e->uploading;
	}
	for (size_t i = 0; i < u->tabn; i++)
		for (struct upl *e = u->tab[i]; e; e = e->hnext)
			if (e->uploading && under(e->rel, prefix, plen, 1))
				return 1;
	return 0;
}

/* Wait (lock held) until nothing at or below a, nor b (unless NULL), is being uploaded. */
static void wait_idle(struct sfs_uploads *u, const char *a, const char *b, int is_dir)
{
	while (busy(u, a, is_dir) || (b && busy(u, b, is_dir)))
		pthread_cond_wait(&u->done, &u->lock);
}

int sfs_uploads_on(struct sfs_fs *fs)
{
	return fs->uploads != NULL;
}

/* What happens to e after its upload ended with rc (lock held). */
static void upload_ended(struct sfs_uploads *u, struct upl *e, uint64_t gen, int rc)
{
	e->uploading = 0;
	if (e->gen != gen) { /* closed again meanwhile: due later */
		e->missing = e->attempts = 0;
		fifo_append(u, e);
		return;
	}
	if (rc == 0 || (rc == -ENOENT && ++e->missing >= UPL_MISSING_MAX)) {
		drop(u, e);
		return;
	}
	if (rc != -ENOENT && ++e->attempts >= UPL_FLUSH_TRIES && u->stopping) {
		sfs_log(LOG_ERR,
			"cannot upload staged '%s' (%s): it stays in the local cache and is "
			"uploaded at the next mount",
			e->rel, strerror(-rc));
		drop(u, e);
		return;
	}
	int shift = e->attempts < 6 ? e->attempts : 6;
	int64_t wait_s = (int64_t)1 << shift;
	if (rc == -ENOENT || wait_s > UPL_BACKOFF_MAX_S)
		wait_s = rc == -ENOENT ? 1 : UPL_BACKOFF_MAX_S;
	e->due = mono_ns() + wait_s * 1000000000LL;
	fifo_append(u, e);
}

/* Upload what is at rel in the local staging dir now; -ENOENT when nothing is. */
static int upload_one(struct sfs_fs *fs, const char *rel)
{
	int fd = openat(fs->staging_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	int rc;

	if (fd < 0)
		return errno == ELOOP || errno == ENXIO ? -ENOENT : -errno;
	rc = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -ENOENT;
	if (!rc)
		rc = sfs_stg_sync_rel(fs, rel, fd, &st);
	close(fd);
	return rc;
}

static void *worker(void *arg)
{
	struct sfs_fs *fs = arg;
	struct sfs_uploads *u = fs->uploads;

	pthread_mutex_lock(&u->lock);
	for (;;) {
		struct upl *e = u->head;
		if (!e) {
			if (u->stopping)
				break;
			pthread_cond_wait(&u->work, &u->lock);
			continue;
		}
		int64_t now = mono_ns();
		if (!u->stopping && !u->hurry && e->due > now) {
			struct timespec ts = {.tv_sec = e->due / 1000000000LL,
					      .tv_nsec = e->due % 1000000000LL};
			pthread_cond_timedwait(&u->work, &u->lock, &ts);
			continue;
		}
		fifo_unlink(u, e);
		e->uploading = 1;
		uint64_t gen = e->gen;
		pthread_mutex_unlock(&u->lock);
		/* e->rel is read unlocked: renames and removals wait while uploading is set */
		int rc = upload_one(fs, e->rel);
		pthread_mutex_lock(&u->lock);
		upload_ended(u, e, gen, rc);
		pthread_cond_broadcast(&u->done);
	}
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

int sfs_uploads_start(struct sfs_fs *fs)
{
	struct sfs_uploads *u;
	pthread_condattr_t ca;
	int rc;

	if (!sfs_stg_uploads(fs) || fs->read_only || strcmp(fs->cfg->upload, "async") != 0)
		return 0;
	u = calloc(1, sizeof(*u));
	if (!u || grow(u)) {
		free(u);
		return -ENOMEM;
	}
	u->delay_ns = (int64_t)fs->cfg->upload_delay * 1000000000LL;
	pthread_mutex_init(&u->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&u->work, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&u->done, NULL);
	fs->uploads = u;
	for (; u->nthr < UPL_THREADS; u->nthr++) {
		rc = pthread_create(&u->thr[u->nthr], NULL, worker, fs);
		if (rc) {
			sfs_uploads_stop(fs);
			return -rc;
		}
	}
	return 0;
}

void sfs_uploads_stop(struct sfs_fs *fs)
{
	struct sfs_uploads *u = fs->uploads;

	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	if (u->count)
		sfs_log(LOG_INFO, "uploading %zu staged file%s before the unmount", u->count,
			u->count == 1 ? "" : "s");
	u->stopping = 1;
	pthread_cond_broadcast(&u->work);
	pthread_mutex_unlock(&u->lock);
	for (int i = 0; i < u->nthr; i++)
		pthread_join(u->thr[i], NULL);
	fs->uploads = NULL;
	while (u->head)
		drop(u, u->head);
	free(u->tab);
	pthread_mutex_destroy(&u->lock);
	pthread_cond_destroy(&u->work);
	pthread_cond_destroy(&u->done);
	free(u);
}

int sfs_uploads_queue(struct sfs_fs *fs, const char *rel)
{
	struct sfs_uploads *u = fs->uploads;
	int rc = 0;

	if (!u)
		return 0;
	pthread_mutex_lock(&u->lock);
	struct upl **p = slot_of(u, rel), *e = *p;
	if (e) {
		e->gen++;
		e->due = mono_ns() + u->delay_ns;
		if (!e->uploading) { /* to the back: the FIFO stays in due order */
			fifo_unlink(u, e);
			fifo_append(u, e);
		}
		goto out;
	}
	if (u->count >= u->tabn && grow(u) == 0)
		p = slot_of(u, rel);
	e = calloc(1, sizeof(*e));
	if (!e || !(e->rel = strdup(rel))) {
		free(e);
		rc = -ENOMEM;
		goto out;
	}
	e->due = mono_ns() + u->delay_ns;
	e->hnext = *p;
	*p = e;
	u->count++;
	fifo_append(u, e);
	pthread_cond_signal(&u->work);
out:
	pthread_mutex_unlock(&u->lock);
	return rc;
}

int sfs_uploads_flush(struct sfs_fs *fs)
{
	struct sfs_uploads *u = fs->uploads;
	size_t before, best;
	int64_t last_progress = mono_ns();

	if (!u)
		return 0;
	pthread_mutex_lock(&u->lock);
	before = best = u->count;
	u->hurry++;
	pthread_cond_broadcast(&u->work);
	while (u->count && mono_ns() - last_progress < UPL_FLUSH_STALL_S * 1000000000LL) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&u->done, &u->lock, &ts);
		if (u->count < best) {
			best = u->count;
			last_progress = mono_ns();
		}
	}
	u->hurry--;
	size_t after = u->count;
	pthread_mutex_unlock(&u->lock);
	return before > after ? (int)(before - after > INT32_MAX ? INT32_MAX : before - after) : 0;
}

int sfs_uploads_take(struct sfs_fs *fs, const char *rel)
{
	struct sfs_uploads *u = fs->uploads;
	int was = 0;

	if (!u)
		return 0;
	pthread_mutex_lock(&u->lock);
	wait_idle(u, rel, NULL, 0);
	struct upl *e = *slot_of(u, rel);
	if (e) {
		drop(u, e);
		was = 1;
	}
	pthread_mutex_unlock(&u->lock);
	return was;
}

int sfs_uploads_renamed(struct sfs_fs *fs, const char *from, const char *to, int is_dir)
{
	struct sfs_uploads *u = fs->uploads;
	size_t flen = strlen(from), tlen = strlen(to);
	int was = 0;

	if (!u || strcmp(from, to) == 0)
		return 0;
	pthread_mutex_lock(&u->lock);
	wait_idle(u, from, to, is_dir);
	if (!is_dir) { /* one entry at most each: found by path (zarr renames every chunk) */
		struct upl *e = *slot_of(u, to), **p;
		if (e)
			drop(u, e); /* replaced */
		p = slot_of(u, from);
		e = *p;
		char *r = e ? strdup(to) : NULL;
		if (r) {
			*p = e->hnext;
			free(e->rel);
			e->rel = r;
			p = slot_of(u, to);
			e->hnext = *p;
			*p = e;
			was = 1;
		}
		goto out;
	}
	/* a directory: what the destination held is replaced; what was under from moves */
	struct upl *moved = NULL;
	for (size_t i = 0; i < u->tabn; i++) {
		for (struct upl *e = u->tab[i], *nx; e; e = nx) {
			nx = e->hnext;
			if (under(e->rel, from, flen, 1)) {
				char *r = NULL;
				if (asprintf(&r, "%s%s", to, e->rel + flen) < 0)
					continue; /* left under the old path: found missing, forgotten;
						     reconciliation uploads it at the next mount */
				/* unhashed; its place in the FIFO kept */
				*slot_of(u, e->rel) = e->hnext;
				free(e->rel);
				e->rel = r;
				e->hnext = moved;
				moved = e;
			} else if (under(e->rel, to, tlen, 1)) {
				drop(u, e);
			}
		}
	}
	for (struct upl *e = moved, *nx; e; e = nx) {
		nx = e->hnext;
		struct upl **p = slot_of(u, e->rel);
		e->hnext = *p;
		*p = e;
	}
out:
	pthread_mutex_unlock(&u->lock);
	return was;
}

void sfs_uploads_unlinked(struct sfs_fs *fs, const char *rel, int is_dir)
{
	struct sfs_uploads *u = fs->uploads;
	size_t len = strlen(rel);

	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	wait_idle(u, rel, NULL, is_dir);
	if (!is_dir) {
		struct upl *e = *slot_of(u, rel);
		if (e)
			drop(u, e);
	} else {
		for (size_t i = 0; i < u->tabn; i++)
			for (struct upl *e = u->tab[i], *nx; e; e = nx) {
				nx = e->hnext;
				if (under(e->rel, rel, len, 1))
					drop(u, e);
			}
	}
	pthread_mutex_unlock(&u->lock);
}

int sfs_uploads_pending(struct sfs_fs *fs, const char *rel)
{
	struct sfs_uploads *u = fs->uploads;
	int r;

	if (!u)
		return 0;
	pthread_mutex_lock(&u->lock);
	r = *slot_of(u, rel) != NULL;
	pthread_mutex_unlock(&u->lock);
	return r;
}
