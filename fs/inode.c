/*
 * fs/inode.c - the inode table, reference counts, and the notifier thread
 * (kernel cache invalidations and the reclaim of idle staging inodes).
 *
 * Inodes hold no descriptors, so their number is bounded only by memory.
 * Past fs->inode_high staging inodes, the notifier sweeps the table like a
 * clock (an inode used since the last pass is spared once) and asks the
 * kernel to drop idle files (not open, not being committed, no status to
 * keep): the kernel's FORGETs then free them.  No request handler ever waits
 * for the sweep or the notifier, so neither can deadlock with a request the
 * kernel holds a directory lock for (a listing, a create).
 */
#include "fs/fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "fs/staging.h"
#include "fs/view.h"

#define STRIPES	      64
#define SWEEP_BATCH   512  /* candidates per pass (then the lock is let go) */
#define SWEEP_BUCKETS 4096 /* buckets looked at per lock hold */

struct sfs_notify {
	fuse_ino_t parent;
	char *name;
	struct sfs_notify *next;
};

static pthread_mutex_t stripes[STRIPES] = {[0 ... STRIPES - 1] = PTHREAD_MUTEX_INITIALIZER};

pthread_mutex_t *sfs_inode_stripe(const void *in)
{
	uintptr_t p = (uintptr_t)in;
	return &stripes[(p >> 6 ^ p >> 12) % STRIPES];
}

uint64_t sfs_fs_key_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static size_t bucket(const struct sfs_fs *fs, uint64_t hash)
{
	/* the hash may be an inode number: mix it so that runs spread */
	hash ^= hash >> 33;
	hash *= 0xff51afd7ed558ccdULL;
	hash ^= hash >> 33;
	return (size_t)hash & (fs->table_size - 1);
}

static int table_grow(struct sfs_fs *fs)
{
	size_t nsize = fs->table_size ? fs->table_size * 2 : 1024;
	struct sfs_inode **nt = calloc(nsize, sizeof(*nt));
	struct sfs_inode **old = fs->table;
	size_t osize = fs->table_size;

	if (!nt)
		return -ENOMEM;
	fs->table = nt;
	fs->table_size = nsize;
	for (size_t i = 0; i < osize; i++) {
		struct sfs_inode *in = old[i], *next;
		for (; in; in = next) {
			next = in->hnext;
			size_t b = bucket(fs, in->hash);
			in->hnext = nt[b];
			nt[b] = in;
		}
	}
	free(old);
	fs->sweep = 0;
	return 0;
}

struct sfs_inode *sfs_table_find_locked(struct sfs_fs *fs, const struct sfs_view *v, uint64_t hash,
					sfs_inode_match match, const void *key)
{
	if (!fs->table_size)
		return NULL;
	for (struct sfs_inode *in = fs->table[bucket(fs, hash)]; in; in = in->hnext)
		if (in->hash == hash && (in->flags & SFS_IN_TABLE) && in->view == v &&
		    match(in, key))
			return in;
	return NULL;
}

int sfs_table_insert_locked(struct sfs_fs *fs, struct sfs_inode *in)
{
	if ((fs->table_count + 1) * 4 > fs->table_size * 3) {
		int rc = table_grow(fs); /* load factor stays under 3/4 */
		if (rc && !fs->table_size)
			return rc;
	}
	size_t b = bucket(fs, in->hash);
	in->hnext = fs->table[b];
	fs->table[b] = in;
	fs->table_count++;
	in->flags |= SFS_IN_TABLE | SFS_IN_LINKED;
	return 0;
}

void sfs_table_remove_locked(struct sfs_fs *fs, struct sfs_inode *in)
{
	/* it stays linked (unmount frees what the kernel never forgot), unfindable */
	in->flags &= (uint8_t)~SFS_IN_TABLE;
}

static void unlink_locked(struct sfs_fs *fs, struct sfs_inode *in)
{
	if (!(in->flags & SFS_IN_LINKED))
		return;
	struct sfs_inode **p = &fs->table[bucket(fs, in->hash)];
	for (; *p; p = &(*p)->hnext) {
		if (*p == in) {
			*p = in->hnext;
			fs->table_count--;
			break;
		}
	}
	in->hnext = NULL;
	in->flags &= (uint8_t) ~(SFS_IN_TABLE | SFS_IN_LINKED);
}

void sfs_table_each_locked(struct sfs_fs *fs, int (*cb)(struct sfs_inode *in, void *arg), void *arg)
{
	for (size_t i = 0; i < fs->table_size; i++)
		for (struct sfs_inode *in = fs->table[i], *next; in; in = next) {
			next = in->hnext;
			if (cb(in, arg))
				return;
		}
}

/* Free in once nobody references it; caller holds fs->lock. */
static void maybe_free_locked(struct sfs_fs *fs, struct sfs_inode *in)
{
	if (in->nlookup || in->refs || (in->flags & SFS_IN_PINNED))
		return;
	unlink_locked(fs, in);
	sfs_inode_view(in)->free(fs, in); /* may put its parent: recursion is bounded by depth */
}

void sfs_inode_hold_locked(struct sfs_inode *in)
{
	in->refs++;
}

void sfs_inode_put_locked(struct sfs_fs *fs, struct sfs_inode *in)
{
	if (!in->refs) {
		sfs_log(LOG_CRIT, "inode reference count underflow");
		abort();
	}
	in->refs--;
	maybe_free_locked(fs, in);
}

void sfs_inode_put(struct sfs_fs *fs, struct sfs_inode *in)
{
	pthread_mutex_lock(&fs->lock);
	sfs_inode_put_locked(fs, in);
	pthread_mutex_unlock(&fs->lock);
}

void sfs_inode_lookup_locked(struct sfs_inode *in, uint64_t n)
{
	in->nlookup += n;
	sfs_inode_touch(in);
}

void sfs_inode_forget_locked(struct sfs_fs *fs, struct sfs_inode *in, uint64_t n)
{
	if (in == &fs->root)
		return;
	if (n > in->nlookup) {
		sfs_log(LOG_CRIT, "inode lookup count underflow (%llu < %llu)",
			(unsigned long long)in->nlookup, (unsigned long long)n);
		abort();
	}
	in->nlookup -= n;
	maybe_free_locked(fs, in);
}

void sfs_inode_forget(struct sfs_fs *fs, struct sfs_inode *in, uint64_t n)
{
	pthread_mutex_lock(&fs->lock);
	sfs_inode_forget_locked(fs, in, n);
	pthread_mutex_unlock(&fs->lock);
}

void sfs_table_free_all(struct sfs_fs *fs)
{
	pthread_mutex_lock(&fs->lock);
	/* no cascading puts: every inode goes */
	for (size_t i = 0; i < fs->table_size; i++)
		for (struct sfs_inode *in = fs->table[i]; in; in = in->hnext)
			if (in->view == &sfs_view_staging || in->view == &sfs_view_gone)
				((struct sfs_stg *)in)->parent = NULL;
			else if (in->view == &sfs_view_snapshot)
				sfs_snapnode_unparent_locked(in);
	for (size_t i = 0; i < fs->table_size; i++) {
		struct sfs_inode *in = fs->table[i], *next;
		for (; in; in = next) {
			next = in->hnext;
			in->flags &= (uint8_t) ~(SFS_IN_TABLE | SFS_IN_LINKED);
			sfs_inode_view(in)->free(fs, in);
		}
		fs->table[i] = NULL;
	}
	free(fs->table);
	fs->table = NULL;
	fs->table_size = fs->table_count = 0;
	pthread_mutex_unlock(&fs->lock);
}

void sfs_inode_count_locked(struct sfs_fs *fs, int delta)
{
	/* stored atomically: sfs_fs_inodes_full() reads it without the lock */
	__atomic_store_n(&fs->nstaging, (size_t)((ssize_t)fs->nstaging + delta), __ATOMIC_RELAXED);
	if (delta > 0 && fs->nstaging > fs->inode_high && fs->inode_high) {
		pthread_mutex_lock(&fs->nlock); /* not in the lock order: held alone, briefly */
		if (!fs->nreclaim) {
			fs->nreclaim = 1;
			pthread_cond_signal(&fs->ncond);
		}
		pthread_mutex_unlock(&fs->nlock);
	}
}

int sfs_fs_inodes_full(struct sfs_fs *fs)
{
	return fs->inode_high && __atomic_load_n(&fs->nstaging, __ATOMIC_RELAXED) >= fs->inode_high;
}

/* ---- the notifier thread ---- */

struct sweep {
	struct sfs_notify *batch;
	size_t n, want;
};

/*
 * One pass of the clock over at most SWEEP_BUCKETS buckets: idle staging
 * files not used since the last pass become candidates.  Caller holds fs->lock.
 */
static void sweep_locked(struct sfs_fs *fs, struct sweep *sw)
{
	for (size_t k = 0; k < SWEEP_BUCKETS && sw->n < sw->want && fs->table_size; k++) {
		size_t b = fs->sweep++ & (fs->table_size - 1);
		for (struct sfs_inode *in = fs->table[b]; in && sw->n < sw->want; in = in->hnext) {
			if ((in->view != &sfs_view_staging && in->view != &sfs_view_snapshot) ||
			    (in->flags & (SFS_IN_PINNED | SFS_IN_TABLE)) != SFS_IN_TABLE)
				continue;
			if (__atomic_exchange_n(&in->used, 0, __ATOMIC_RELAXED))
				continue; /* a second chance */
			struct sfs_inode *parent = NULL;
			const char *nm = NULL;
			if (in->view == &sfs_view_staging) {
				struct sfs_stg *s = (struct sfs_stg *)in;
				if (!sfs_stg_idle_locked(s))
					continue;
				parent = &s->parent->base;
				nm = s->name;
			} else if (!sfs_snapnode_idle_locked(in, &parent, &nm)) {
				continue;
			}
			char *name = strdup(nm);
			if (!name)
				return;
			sw->batch[sw->n].parent = sfs_ino_of(fs, parent);
			sw->batch[sw->n].name = name;
			sw->n++;
		}
	}
}

/* One reclaim: the kernel is asked to drop idle inodes until enough are asked; returns how many. */
static size_t reclaim(struct sfs_fs *fs)
{
	struct sweep sw = {.want = SWEEP_BATCH};
	size_t passes = 0, asked = 0;

	sw.batch = calloc(SWEEP_BATCH, sizeof(*sw.batch));
	if (!sw.batch)
		return 0;
	for (;;) {
		pthread_mutex_lock(&fs->lock);
		size_t over = fs->nstaging > fs->inode_low ? fs->nstaging - fs->inode_low : 0;
		/* a whole turn of the clock twice over without enough: stop for now */
		size_t limit = 2 * (fs->table_size / SWEEP_BUCKETS + 1);
		sw.n = 0;
		sw.want = over < SWEEP_BATCH ? over : SWEEP_BATCH;
		if (sw.want && passes++ < limit)
			sweep_locked(fs, &sw);
		pthread_mutex_unlock(&fs->lock);
		if (!sw.n && (!sw.want || passes >= limit))
			break;
		for (size_t i = 0; i < sw.n; i++) {
			int rc = fuse_lowlevel_notify_inval_entry(fs->se, sw.batch[i].parent,
								  sw.batch[i].name,
								  strlen(sw.batch[i].name));
			if (rc && rc != -ENOENT)
				sfs_log(LOG_DEBUG, "reclaim: cannot drop '%s': %s",
					sw.batch[i].name, strerror(-rc));
			free(sw.batch[i].name);
		}
		__atomic_add_fetch(&fs->reclaimed, sw.n, __ATOMIC_RELAXED);
		asked += sw.n;
		pthread_mutex_lock(&fs->nlock);
		int stop = fs->nstop;
		pthread_mutex_unlock(&fs->nlock);
		if (stop)
			break;
	}
	free(sw.batch);
	return asked;
}

/* *ts = now + ms on CLOCK_REALTIME (what pthread_cond_timedwait takes). */
static void deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *notifier_main(void *arg)
{
	struct sfs_fs *fs = arg;

	pthread_mutex_lock(&fs->nlock);
	for (;;) {
		while (!fs->nqueue && !fs->nreclaim && !fs->nstop)
			pthread_cond_wait(&fs->ncond, &fs->nlock);
		if (fs->nstop)
			break;
		if (fs->nqueue) {
			struct sfs_notify *n = fs->nqueue;
			fs->nqueue = n->next;
			pthread_mutex_unlock(&fs->nlock);
			int rc = fuse_lowlevel_notify_inval_entry(fs->se, n->parent, n->name,
								  strlen(n->name));
			if (rc && rc != -ENOENT)
				sfs_log(LOG_DEBUG, "cannot invalidate '%s': %s", n->name,
					strerror(-rc));
			free(n->name);
			free(n);
			pthread_mutex_lock(&fs->nlock);
			fs->ndone++;
			pthread_cond_broadcast(&fs->nsent);
			pthread_mutex_unlock(&fs->nlock);
		} else {
			fs->nreclaim = 0;
			pthread_mutex_unlock(&fs->nlock);
			size_t asked = reclaim(fs);
			pthread_mutex_lock(&fs->lock);
			int over = fs->inode_high && fs->nstaging > fs->inode_high;
			pthread_mutex_unlock(&fs->lock);
			pthread_mutex_lock(&fs->nlock);
			if (asked && over && !fs->nstop) {
				/* the FORGETs of what was asked are on their way: look again soon,
				   though no new inode comes to wake the sweep (a listing ended) */
				struct timespec ts;
				deadline(&ts, 200);
				while (!fs->nqueue && !fs->nstop &&
				       pthread_cond_timedwait(&fs->ncond, &fs->nlock, &ts) == 0)
					;
				fs->nreclaim = 1;
			}
			pthread_mutex_unlock(&fs->nlock);
		}
		pthread_mutex_lock(&fs->nlock);
	}
	pthread_mutex_unlock(&fs->nlock);
	return NULL;
}

int sfs_fs_start_notifier(struct sfs_fs *fs)
{
	int rc = pthread_create(&fs->notifier, NULL, notifier_main, fs);

	if (rc)
		return -rc;
	fs->notifier_started = 1;
	return 0;
}

void sfs_fs_stop_notifier(struct sfs_fs *fs)
{
	if (!fs->notifier_started)
		return;
	pthread_mutex_lock(&fs->nlock);
	fs->nstop = 1;
	/* pending invalidations are moot once the session ends */
	while (fs->nqueue) {
		struct sfs_notify *n = fs->nqueue;
		fs->nqueue = n->next;
		free(n->name);
		free(n);
	}
	pthread_cond_signal(&fs->ncond);
	pthread_mutex_unlock(&fs->nlock);
	pthread_join(fs->notifier, NULL);
	fs->notifier_started = 0;
}

void sfs_fs_notify_attr(struct sfs_fs *fs, struct sfs_inode *in)
{
	/* attributes only (a negative offset): takes no lock a request handler holds */
	int rc = fs->se ? fuse_lowlevel_notify_inval_inode(fs->se, sfs_ino_of(fs, in), -1, 0) : 0;

	if (rc && rc != -ENOENT)
		sfs_log(LOG_DEBUG, "cannot invalidate attributes: %s", strerror(-rc));
}

void sfs_fs_notify_entry(struct sfs_fs *fs, struct sfs_inode *parent, const char *name)
{
	struct sfs_notify *n = calloc(1, sizeof(*n));

	if (!n)
		return;
	n->parent = sfs_ino_of(fs, parent);
	n->name = strdup(name);
	if (!n->name) {
		free(n);
		return;
	}
	pthread_mutex_lock(&fs->nlock);
	if (fs->notifier_started && !fs->nstop) {
		struct sfs_notify **p = &fs->nqueue;
		while (*p)
			p = &(*p)->next;
		*p = n;
		n = NULL;
		fs->nposted++;
		pthread_cond_signal(&fs->ncond);
	}
	pthread_mutex_unlock(&fs->nlock);
	if (n) {
		free(n->name);
		free(n);
	}
}

void sfs_fs_notify_flush(struct sfs_fs *fs, int timeout_ms)
{
	struct timespec ts;

	deadline(&ts, timeout_ms);
	pthread_mutex_lock(&fs->nlock);
	unsigned long want = fs->nposted;
	while (fs->notifier_started && !fs->nstop && fs->ndone < want)
		if (pthread_cond_timedwait(&fs->nsent, &fs->nlock, &ts) != 0)
			break; /* timed out: go on, as without the wait */
	pthread_mutex_unlock(&fs->nlock);
}
