/* fs/hasher.c - see hasher.h */
#include "fs/hasher.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "index/addressing.h"

#define CHUNK	  (1u << 20)
#define MAX_EXTRA 4096 /* out-of-order ranges kept before giving up */
/*
 * Writes that keep a file below INLINE_MAX are hashed from the request's own
 * buffer on the writer's thread (a few microseconds): a small file (a zarr
 * chunk) then never wakes the background thread nor is read back.  Past it,
 * the background thread is woken once per WAKE_BATCH of unhashed bytes.
 */
#define INLINE_MAX (256u << 10)
#define WAKE_BATCH (4u << 20)
/* jobs that may keep a descriptor while waiting for the idle-time hasher */
#define MAX_FD_JOBS 64
static int fd_jobs; /* jobs holding rfd; atomic */

struct range {
	uint64_t off, end;
};

struct sfs_hjob {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int refs;	     /* protected by lock */
	int valid;	     /* protected by lock */
	int active;	     /* a thread is hashing it; protected by lock */
	int open_writers;    /* 1 while writers exist (reopened/closed); protected by lock */
	uint64_t final_size; /* set by closed(); protected by lock */
	uint64_t prefix;     /* [0, prefix) written; protected by lock */
	uint64_t hashed;     /* [0, hashed) in md5; written by the active thread under lock */
	struct range *extra; /* written ranges past prefix, sorted; protected by lock */
	size_t nextra, cap;
	int have_hex; /* protected by lock */
	char hex[33];
	struct sfs_md5 md5;	/* touched only by the active thread */
	int rfd;		/* -1 until the background thread needs it; protected by lock */
	int queued;		/* protected by hq_lock */
	struct sfs_hjob *qnext; /* protected by hq_lock */
};

static pthread_mutex_t hq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hq_cond = PTHREAD_COND_INITIALIZER;
static struct sfs_hjob *hq_head, *hq_tail; /* protected by hq_lock */
static int hq_stop, hq_started;		   /* protected by hq_lock */
static pthread_t hq_thread;
static void (*done_cb)(int rfd, const char *hex, uint64_t size);

void sfs_hasher_set_done_cb(void (*cb)(int rfd, const char *hex, uint64_t size))
{
	done_cb = cb;
}

struct sfs_hjob *sfs_hjob_new(void)
{
	struct sfs_hjob *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	if (sfs_md5_init(&j->md5) != 0) {
		free(j);
		return NULL;
	}
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	j->rfd = -1;
	j->refs = 1;
	j->valid = 1;
	j->open_writers = 1;
	return j;
}

/*
 * The job's own read-only descriptor, opened from fd (any descriptor of the
 * file) the first time the background thread will need to read the file.
 * Caller holds lock.  0, or -1 when it cannot (the job is invalid then).
 */
static int need_rfd_locked(struct sfs_hjob *j, int fd)
{
	char proc[64];

	if (j->rfd >= 0)
		return 0;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	j->rfd = fd >= 0 ? open(proc, O_RDONLY | O_CLOEXEC) : -1;
	if (j->rfd < 0) {
		j->valid = 0;
		pthread_cond_broadcast(&j->cond);
		return -1;
	}
	__atomic_add_fetch(&fd_jobs, 1, __ATOMIC_RELAXED);
	return 0;
}

struct sfs_hjob *sfs_hjob_get(struct sfs_hjob *j)
{
	if (j) {
		pthread_mutex_lock(&j->lock);
		j->refs++;
		pthread_mutex_unlock(&j->lock);
	}
	return j;
}

void sfs_hjob_put(struct sfs_hjob *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	int last = --j->refs == 0;
	pthread_mutex_unlock(&j->lock);
	if (!last)
		return;
	sfs_md5_release(&j->md5);
	if (j->rfd >= 0) {
		close(j->rfd);
		__atomic_sub_fetch(&fd_jobs, 1, __ATOMIC_RELAXED);
	}
	free(j->extra);
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->cond);
	free(j);
}

/* A job that can no longer read needs no descriptor: inodes are many, fds are not. */
static void drop_fd_locked(struct sfs_hjob *j)
{
	if (j->rfd >= 0 && !j->active) {
		close(j->rfd);
		j->rfd = -1;
		__atomic_sub_fetch(&fd_jobs, 1, __ATOMIC_RELAXED);
	}
}

static void invalidate_locked(struct sfs_hjob *j)
{
	j->valid = 0;
	drop_fd_locked(j);
	pthread_cond_broadcast(&j->cond);
}

void sfs_hjob_invalidate(struct sfs_hjob *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	invalidate_locked(j);
	pthread_mutex_unlock(&j->lock);
}

/* Does [off, end) overlap anything written so far? Caller holds lock. */
static int overlaps_locked(struct sfs_hjob *j, uint64_t off, uint64_t end)
{
	if (off < j->prefix)
		return 1;
	for (size_t i = 0; i < j->nextra; i++)
		if (j->extra[i].off < end && off < j->extra[i].end)
			return 1;
	return 0;
}

void sfs_hjob_pre_write(struct sfs_hjob *j, uint64_t off, uint64_t n)
{
	if (!j || n == 0)
		return;
	pthread_mutex_lock(&j->lock);
	if (j->valid && overlaps_locked(j, off, off + n))
		invalidate_locked(j);
	pthread_mutex_unlock(&j->lock);
}

static void enqueue(struct sfs_hjob *j)
{
	pthread_mutex_lock(&hq_lock);
	if (!j->queued && hq_started && !hq_stop) {
		j->queued = 1;
		sfs_hjob_get(j);
		j->qnext = NULL;
		if (hq_tail)
			hq_tail->qnext = j;
		else
			hq_head = j;
		hq_tail = j;
		pthread_cond_signal(&hq_cond);
	}
	pthread_mutex_unlock(&hq_lock);
}

void sfs_hjob_post_write(struct sfs_hjob *j, uint64_t off, uint64_t n, const void *buf, int fd)
{
	int wake = 0;

	if (!j || n == 0)
		return;
	pthread_mutex_lock(&j->lock);
	if (!j->valid)
		goto out;
	if (overlaps_locked(j, off, off + n)) {
		invalidate_locked(j); /* two writes raced for the same bytes */
		goto out;
	}
	if (off == j->prefix && j->hashed == off && !j->active && !j->nextra && buf &&
	    off + n <= INLINE_MAX) {
		sfs_md5_update(&j->md5, buf, (size_t)n); /* small and in order: hash it here */
		j->prefix = j->hashed = off + n;
		goto out;
	}
	if (need_rfd_locked(j, fd))
		goto out; /* no way to read it back: unknown digest */
	if (off == j->prefix) {
		j->prefix += n;
		/* absorb the ranges that now join the prefix */
		size_t k = 0;
		while (k < j->nextra && j->extra[k].off == j->prefix)
			j->prefix = j->extra[k++].end;
		if (k) {
			memmove(j->extra, j->extra + k, (j->nextra - k) * sizeof(*j->extra));
			j->nextra -= k;
		}
		wake = j->prefix - j->hashed >= WAKE_BATCH;
	} else {
		if (j->nextra == MAX_EXTRA) {
			invalidate_locked(j);
			goto out;
		}
		if (j->nextra == j->cap) {
			size_t ncap = j->cap ? j->cap * 2 : 16;
			struct range *nr = realloc(j->extra, ncap * sizeof(*nr));
			if (!nr) {
				invalidate_locked(j);
				goto out;
			}
			j->extra = nr;
			j->cap = ncap;
		}
		size_t i = j->nextra;
		while (i > 0 && j->extra[i - 1].off > off) {
			j->extra[i] = j->extra[i - 1];
			i--;
		}
		j->extra[i].off = off;
		j->extra[i].end = off + n;
		j->nextra++;
		/* merge touching neighbours to keep the list short */
		size_t w = 0;
		for (size_t r = 1; r < j->nextra; r++) {
			if (j->extra[r].off == j->extra[w].end)
				j->extra[w].end = j->extra[r].end;
			else
				j->extra[++w] = j->extra[r];
		}
		j->nextra = w + 1;
	}
out:
	pthread_mutex_unlock(&j->lock);
	if (wake)
		enqueue(j);
}

static void run(struct sfs_hjob *j, int until_done);

/* All written bytes are hashed and the file is closed: the digest.  Caller holds lock. */
static void finish_locked(struct sfs_hjob *j, int fd)
{
	unsigned char md[16];

	if (!j->valid || j->open_writers || j->hashed != j->final_size || j->hashed != j->prefix ||
	    j->have_hex)
		return;
	sfs_md5_final(&j->md5,
		      md); /* closed: nothing more is added (a new writer gets a new job) */
	sfs_md5_hex(md, j->hex);
	j->have_hex = 1;
	/*
	 * Report under the lock while still valid: an invalidation (a writer
	 * reopening the file) then either comes after the hint is stored and
	 * removes it, or comes first and no stale hint is ever written.
	 */
	if (done_cb && fd >= 0 && j->final_size >= SFS_HJOB_HINT_MIN)
		done_cb(fd, j->hex, j->final_size);
	drop_fd_locked(j);
	pthread_cond_broadcast(&j->cond);
}

void sfs_hjob_closed(struct sfs_hjob *j, uint64_t size, int fd)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->open_writers = 0;
	j->final_size = size;
	if (j->prefix != size || j->nextra)
		invalidate_locked(j); /* holes or bytes we never saw written */
	int caught_up = !j->valid || (j->hashed == j->prefix && !j->active);
	if (caught_up)
		finish_locked(j, fd); /* hashed from the writes: nothing to read back */
	pthread_mutex_unlock(&j->lock);
	if (caught_up)
		return;
	if (__atomic_load_n(&fd_jobs, __ATOMIC_RELAXED) > MAX_FD_JOBS)
		run(j, 1); /* the idle-time hasher is behind: finish here, freeing the descriptor */
	else
		enqueue(j);
}

/*
 * Hash what is written and not yet hashed.  Returns when caught up, invalid,
 * or (if !until_done) after one chunk while others may want the CPU.
 * Only one thread is active on a job at a time.
 */
static void run(struct sfs_hjob *j, int until_done)
{
	char *buf = NULL;

	pthread_mutex_lock(&j->lock);
	while (j->active && until_done)
		pthread_cond_wait(&j->cond, &j->lock);
	if (j->active) {
		pthread_mutex_unlock(&j->lock);
		return;
	}
	j->active = 1;
	while (j->valid && j->hashed < j->prefix) {
		uint64_t start = j->hashed;
		size_t n = j->prefix - start < CHUNK ? (size_t)(j->prefix - start) : CHUNK;
		pthread_mutex_unlock(&j->lock);
		if (!buf)
			buf = malloc(CHUNK);
		ssize_t r = buf ? pread(j->rfd, buf, n, (off_t)start) : -1;
		if (r == (ssize_t)n)
			sfs_md5_update(&j->md5, buf, n);
		pthread_mutex_lock(&j->lock);
		if (r != (ssize_t)n) {
			invalidate_locked(j);
			break;
		}
		j->hashed = start + n;
		if (!until_done)
			break;
	}
	finish_locked(j, j->rfd);
	int more = j->valid && j->hashed < j->prefix;
	j->active = 0;
	if (!j->valid || j->have_hex)
		drop_fd_locked(j);
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	free(buf);
	if (more && !until_done)
		enqueue(j);
}

static void *hasher_main(void *arg)
{
	struct sched_param sp = {0};

	(void)arg;
	/* spare CPU only: the writers come first */
	if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
		sfs_log(LOG_DEBUG, "hasher: cannot use SCHED_IDLE: %s", strerror(errno));
	pthread_mutex_lock(&hq_lock);
	for (;;) {
		while (!hq_head && !hq_stop)
			pthread_cond_wait(&hq_cond, &hq_lock);
		if (hq_stop)
			break;
		struct sfs_hjob *j = hq_head;
		hq_head = j->qnext;
		if (!hq_head)
			hq_tail = NULL;
		j->queued = 0;
		pthread_mutex_unlock(&hq_lock);
		run(j, 0);
		sfs_hjob_put(j);
		pthread_mutex_lock(&hq_lock);
	}
	while (hq_head) {
		struct sfs_hjob *j = hq_head;
		hq_head = j->qnext;
		j->queued = 0;
		pthread_mutex_unlock(&hq_lock);
		sfs_hjob_put(j);
		pthread_mutex_lock(&hq_lock);
	}
	hq_tail = NULL;
	pthread_mutex_unlock(&hq_lock);
	return NULL;
}

int sfs_hasher_start(void)
{
	pthread_mutex_lock(&hq_lock);
	hq_stop = 0;
	int rc = hq_started ? 0 : pthread_create(&hq_thread, NULL, hasher_main, NULL);
	if (rc == 0)
		hq_started = 1;
	pthread_mutex_unlock(&hq_lock);
	return -rc;
}

void sfs_hasher_stop(void)
{
	pthread_mutex_lock(&hq_lock);
	int started = hq_started;
	hq_stop = 1;
	pthread_cond_broadcast(&hq_cond);
	pthread_mutex_unlock(&hq_lock);
	if (started)
		pthread_join(hq_thread, NULL);
	pthread_mutex_lock(&hq_lock);
	hq_started = 0;
	pthread_mutex_unlock(&hq_lock);
}

int sfs_hjob_pending(struct sfs_hjob *j)
{
	if (!j)
		return 0;
	pthread_mutex_lock(&j->lock);
	int p = j->valid && !j->have_hex;
	pthread_mutex_unlock(&j->lock);
	return p;
}

int sfs_hjob_peek(struct sfs_hjob *j, char hex[33])
{
	pthread_mutex_lock(&j->lock);
	int rc = j->valid && j->have_hex ? 0 : -ENODATA;
	if (!rc)
		memcpy(hex, j->hex, 33);
	pthread_mutex_unlock(&j->lock);
	return rc;
}

int sfs_hjob_result(struct sfs_hjob *j, char hex[33])
{
	if (!j)
		return -ENODATA;
	run(j, 1);
	pthread_mutex_lock(&j->lock);
	int rc = j->valid && j->have_hex ? 0 : -ENODATA;
	if (!rc)
		memcpy(hex, j->hex, 33);
	pthread_mutex_unlock(&j->lock);
	return rc;
}
