/* fs/cache.c - see cache.h */
#include "fs/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/fault.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "fs/hasher.h"
#include "fs/staging.h"
#include "fs/uploads.h"

struct cand {
	char *rel;
	uint64_t bytes;
	struct timespec atime;
};

struct scan {
	struct sfs_fs *fs;
	uint64_t used;
	struct cand *v;
	size_t n, cap;
};

int sfs_cache_active(struct sfs_fs *fs)
{
	return fs->cache_limit > 0;
}

static int64_t ns_of(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

/* Stored, unchanged since, and not evicted yet? */
static int is_clean(int fd, const struct stat *st)
{
	char v[64];
	ssize_t n = fgetxattr(fd, SFS_XATTR_UPLOADED, v, sizeof(v) - 1);

	if (n <= 0 || fgetxattr(fd, SFS_XATTR_EVICTED, NULL, 0) >= 0)
		return 0;
	v[n] = '\0';
	unsigned long long size = 0;
	long long mt = 0;
	if (sscanf(v, "%llu %lld", &size, &mt) != 2)
		return 0;
	return size == (unsigned long long)st->st_size && mt == ns_of(&st->st_mtim);
}

static int scan_cb(void *arg, int dirfd, const char *name, const char *rel, const struct stat *st)
{
	struct scan *sc = arg;
	uint64_t bytes = (uint64_t)st->st_blocks * 512;
	int rc = 0;

	if (!S_ISREG(st->st_mode))
		return 0;
	sc->used += bytes;
	if (!bytes)
		return 0;
	pthread_mutex_lock(&sc->fs->lock);
	struct sfs_stg *in =
		st->st_dev == sc->fs->staging_dev ? sfs_stg_find_locked(sc->fs, st->st_ino) : NULL;
	int busy = in && (in->opens > 0 || in->writers > 0 || in->committing);
	struct sfs_hjob *j = in && !busy ? sfs_stg_hjob(in) : NULL;
	pthread_mutex_unlock(&sc->fs->lock);
	/* the hasher may still read a file closed a moment ago */
	busy = busy || sfs_hjob_pending(j);
	sfs_hjob_put(j);
	int fd = busy ? -1 : openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && is_clean(fd, st)) {
		if (sc->n == sc->cap) {
			size_t ncap = sc->cap ? sc->cap * 2 : 64;
			struct cand *nv = sfs_fault("cache-scan-alloc")
						  ? NULL
						  : realloc(sc->v, ncap * sizeof(*nv));
			if (!nv) {
				close(fd);
				return -ENOMEM;
			}
			sc->v = nv;
			sc->cap = ncap;
		}
		sc->v[sc->n].rel = strdup(rel);
		if (sc->v[sc->n].rel) {
			sc->v[sc->n].bytes = bytes;
			sc->v[sc->n].atime = st->st_atim;
			sc->n++;
		} else {
			rc = -ENOMEM;
		}
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

static int by_atime(const void *a, const void *b)
{
	int64_t x = ns_of(&((const struct cand *)a)->atime),
		y = ns_of(&((const struct cand *)b)->atime);
	return x < y ? -1 : x > y;
}

/* Give up the local bytes of a stored file, keeping its size and times. */
static int evict_one(struct sfs_fs *fs, const char *rel)
{
	int fd = openat(fs->staging_fd, rel, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !is_clean(fd, &st)) {
		close(fd);
		return -EAGAIN; /* changed since the scan */
	}
	if (fsetxattr(fd, SFS_XATTR_EVICTED, "1", 1, 0) < 0 ||
	    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, st.st_size) < 0)
		rc = -errno;
	struct timespec ts[2] = {st.st_atim, st.st_mtim};
	(void)futimens(fd, ts); /* punching holes is not a change of the data */
	if (rc)
		(void)fremovexattr(fd, SFS_XATTR_EVICTED);
	close(fd);
	return rc;
}

/* Measure the cache and, when it is over low_water, evict least recently used clean files. */
static int rescan(struct sfs_fs *fs, uint64_t low_water)
{
	struct scan sc = {.fs = fs};
	int dfd = openat(fs->staging_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int rc = dfd < 0 ? -errno : sfs_walk(dfd, scan_cb, &sc);

	if (dfd >= 0)
		close(dfd);
	pthread_mutex_lock(&fs->cache_mutex);
	fs->cache_rescans++;
	pthread_mutex_unlock(&fs->cache_mutex);
	if (!rc && sc.used > low_water && sc.n) {
		qsort(sc.v, sc.n, sizeof(*sc.v), by_atime);
		for (size_t i = 0; i < sc.n && sc.used > low_water; i++)
			if (evict_one(fs, sc.v[i].rel) == 0) {
				sc.used -= sc.v[i].bytes;
				sfs_log(LOG_DEBUG, "cache: evicted 'staging/%s'", sc.v[i].rel);
			}
	}
	for (size_t i = 0; i < sc.n; i++)
		free(sc.v[i].rel);
	free(sc.v);
	if (!rc) {
		pthread_mutex_lock(&fs->cache_mutex);
		fs->cache_used = sc.used;
		pthread_mutex_unlock(&fs->cache_mutex);
	}
	return rc;
}

int sfs_cache_init(struct sfs_fs *fs)
{
	pthread_rwlock_init(&fs->evict_lock, NULL);
	pthread_mutex_init(&fs->cache_mutex, NULL);
	pthread_mutex_init(&fs->fetch_mutex, NULL);
	fs->cache_ready = 1;
	fs->cache_limit = 0;
	if (!fs->be->ops->staged_fetch || !fs->cfg->cache_size)
		return 0; /* the staging dir is the store itself */
	fs->cache_limit = fs->cfg->cache_size;
	return rescan(fs, fs->cache_limit);
}

void sfs_cache_release(struct sfs_fs *fs)
{
	if (!fs->cache_ready)
		return;
	pthread_rwlock_destroy(&fs->evict_lock);
	pthread_mutex_destroy(&fs->cache_mutex);
	pthread_mutex_destroy(&fs->fetch_mutex);
	fs->cache_ready = 0;
}

void sfs_cache_changed(struct sfs_fs *fs)
{
	if (!sfs_cache_active(fs))
		return;
	pthread_mutex_lock(&fs->cache_mutex);
	fs->cache_gen++;
	pthread_mutex_unlock(&fs->cache_mutex);
}

void sfs_cache_stored(struct sfs_fs *fs, int fd)
{
	struct stat st;
	char v[64];

	if (!sfs_cache_active(fs) || fstat(fd, &st) < 0)
		return;
	sfs_cache_changed(fs); /* one more file may be evicted */
	snprintf(v, sizeof(v), "%llu %lld", (unsigned long long)st.st_size,
		 (long long)ns_of(&st.st_mtim));
	if (fsetxattr(fd, SFS_XATTR_UPLOADED, v, strlen(v), 0) < 0)
		sfs_log(LOG_DEBUG, "cache: cannot mark a stored file: %s", strerror(errno));
}

/* Bring back the bytes of an evicted file open (read-write) as fd. Caller holds evict_lock. */
static int restore(struct sfs_fs *fs, const char *rel, int fd, int trunc)
{
	struct stat st;
	int rc = 0;

	if (fgetxattr(fd, SFS_XATTR_EVICTED, NULL, 0) < 0)
		return 0; /* present */
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!trunc) {
		rc = sfs_backend_staged_fetch(fs->be, rel, fd);
		if (rc)
			return sfs_err(rc, "cannot fetch evicted 'staging/%s': %s", rel,
				       strerror(-rc));
		struct timespec ts[2] = {st.st_atim, st.st_mtim};
		(void)futimens(fd, ts); /* same bytes as before the eviction */
		pthread_mutex_lock(&fs->cache_mutex);
		fs->cache_used += (uint64_t)st.st_size;
		pthread_mutex_unlock(&fs->cache_mutex);
	}
	if (fremovexattr(fd, SFS_XATTR_EVICTED) < 0)
		return -errno;
	return 0;
}

int sfs_cache_lock_present(struct sfs_fs *fs, struct sfs_stg *in, int trunc)
{
	char proc[64], *rel = NULL;
	int rc = 0;

	if (!sfs_cache_active(fs))
		return 0;
	pthread_rwlock_rdlock(&fs->evict_lock);
	if (in->type != S_IFREG)
		return 0;
	int pfd = sfs_stg_open(fs, in, O_PATH);
	if (pfd < 0) {
		pthread_rwlock_unlock(&fs->evict_lock);
		return pfd;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	if (getxattr(proc, SFS_XATTR_EVICTED, NULL, 0) < 0) {
		close(pfd);
		return 0; /* the common case: the bytes are here */
	}
	/* one fetch at a time: a second opener finds the mark gone */
	pthread_mutex_lock(&fs->fetch_mutex);
	int fd = open(proc, O_RDWR | O_CLOEXEC);
	rc = fd < 0 ? -errno : sfs_stg_rel(fs, in, &rel);
	if (!rc)
		rc = restore(fs, rel, fd, trunc);
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&fs->fetch_mutex);
	close(pfd);
	free(rel);
	if (rc)
		pthread_rwlock_unlock(&fs->evict_lock);
	return rc;
}

void sfs_cache_unlock(struct sfs_fs *fs)
{
	if (sfs_cache_active(fs))
		pthread_rwlock_unlock(&fs->evict_lock);
}

int sfs_cache_present_rel(struct sfs_fs *fs, const char *rel)
{
	int rc = 0;

	if (!sfs_cache_active(fs))
		return 0;
	pthread_rwlock_rdlock(&fs->evict_lock);
	pthread_mutex_lock(&fs->fetch_mutex);
	int fd = openat(fs->staging_fd, rel, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	rc = fd < 0 ? -errno : restore(fs, rel, fd, 0);
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&fs->fetch_mutex);
	pthread_rwlock_unlock(&fs->evict_lock);
	return rc;
}

int sfs_cache_grow(struct sfs_fs *fs, int fd, off_t off, size_t n)
{
	struct stat st;

	if (!sfs_cache_active(fs) || fstat(fd, &st) < 0 ||
	    (uint64_t)off + n <= (uint64_t)st.st_size)
		return 0;
	uint64_t growth = (uint64_t)off + n - (uint64_t)st.st_size;
	int flushed = 0;
again:
	pthread_mutex_lock(&fs->cache_mutex);
	int fits = fs->cache_used + growth <= fs->cache_limit;
	if (fits)
		fs->cache_used += growth;
	/*
	 * Nothing became evictable since a rescan found nothing to evict: walking
	 * the whole tree again on every write would find nothing again.
	 */
	int hopeless = !fits && fs->cache_full && fs->cache_full_gen == fs->cache_gen;
	pthread_mutex_unlock(&fs->cache_mutex);
	if (fits)
		return 0;
	if (hopeless)
		goto full;
	/* over the limit: measure again (removals are not counted) and evict what is stored */
	pthread_rwlock_wrlock(&fs->evict_lock);
	pthread_mutex_lock(&fs->cache_mutex);
	uint64_t gen = fs->cache_gen;
	pthread_mutex_unlock(&fs->cache_mutex);
	int rc = rescan(fs, fs->cache_limit - fs->cache_limit / 5);
	pthread_rwlock_unlock(&fs->evict_lock);
	if (rc)
		return rc;
	pthread_mutex_lock(&fs->cache_mutex);
	fits = fs->cache_used + growth <= fs->cache_limit;
	if (fits)
		fs->cache_used += growth;
	fs->cache_full = !fits;
	fs->cache_full_gen = gen;
	pthread_mutex_unlock(&fs->cache_mutex);
	if (fits)
		return 0;
full:
	/* what fills the cache may be files waiting for their upload: send them, look again */
	if (!flushed++ && sfs_uploads_flush(fs) > 0)
		goto again;
	return -ENOSPC;
}
