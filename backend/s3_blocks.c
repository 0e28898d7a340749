/*
 * backend/s3_blocks.c - the s3 backend's reads of canonical objects
 * (open/pread/close) and their local block cache: 1 MiB blocks and object
 * sizes under <cache_dir>/<store id>/blocks, bounded by blocks_max (least
 * recently used blocks go first).  See s3.c for the backend as a whole.
 */
#include "backend/backend.h"
#include "backend/s3_priv.h"

#include "backend/s3_client.h"
#include "backend/sigv4.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READAHEAD (1u << 20)

struct sfs_bfile {
	char *key;     /* full key */
	uint64_t size; /* canonical objects never change */
};

/* ---- block cache of canonical objects ---- */

static void blocks_trim(struct s3_backend *s);

static char *block_path(struct s3_backend *s, const char *key, const char *suffix)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	char *p = NULL;

	EVP_Digest(key, strlen(key), md, &len, EVP_md5(), NULL);
	sfs_sigv4_hex(md, len, hex);
	if (asprintf(&p, "%s/%.2s/%s.%s", s->blocks_dir, hex, hex, suffix) < 0)
		return NULL;
	return p;
}

/* Store data as the file path, atomically (temp + rename); the directory is created. */
static int block_store(struct s3_backend *s, const char *path, const void *data, size_t n)
{
	char *tmp = NULL, *dir = strdup(path);
	int fd = -1, rc = 0;

	if (!dir || asprintf(&tmp, "%s.%lx.tmp", path, (unsigned long)pthread_self()) < 0) {
		free(dir);
		return -ENOMEM;
	}
	*strrchr(dir, '/') = '\0';
	rc = sfs_mkdir_p(dir, 0700, 1);
	if (!rc) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, data, n) != (ssize_t)n || rename(tmp, path) < 0)
			rc = errno ? -errno : -EIO;
	}
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(tmp);
	free(tmp);
	free(dir);
	if (!rc) {
		pthread_mutex_lock(&s->blocks_lock);
		s->blocks_used += n;
		int over = s->blocks_used > s->blocks_max;
		pthread_mutex_unlock(&s->blocks_lock);
		if (over)
			blocks_trim(s);
	}
	return rc;
}

/*
 * The object full key fk was removed: its cached size and blocks go too, or
 * a new object under the same key would be served the old one's.
 */
void sfs_s3b_block_forget(struct s3_backend *s, const char *fk)
{
	char *size = block_path(s, fk, "size");
	char *slash = size ? strrchr(size, '/') : NULL;
	DIR *d = NULL;
	struct dirent *de;

	if (!slash)
		goto out;
	*slash = '\0';
	const char *stem = slash + 1; /* "<hex>.size" */
	size_t n = strcspn(stem, ".") + 1;
	d = opendir(size);
	while (d && (de = readdir(d)) != NULL)
		if (strncmp(de->d_name, stem, n) == 0 && unlinkat(dirfd(d), de->d_name, 0) < 0 &&
		    errno != ENOENT)
			sfs_log(LOG_WARNING, "s3: cannot drop cached '%s': %s", de->d_name,
				strerror(errno));
out:
	if (d)
		closedir(d);
	free(size);
}

int sfs_s3b_block_size_get(struct s3_backend *s, const char *key, uint64_t *size, int64_t *mtime)
{
	char *p = block_path(s, key, "size");
	char buf[48];
	int rc = -ENOENT;

	int fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (n > 0) {
			char *end;
			buf[n] = '\0';
			*size = strtoull(buf, &end, 10);
			if (mtime)
				*mtime = strtoll(end, NULL, 10);
			rc = 0;
		}
		close(fd);
	}
	free(p);
	return rc;
}

void sfs_s3b_block_size_put(struct s3_backend *s, const char *key, uint64_t size, int64_t mtime)
{
	char *p = block_path(s, key, "size");
	char buf[48];
	int n = snprintf(buf, sizeof(buf), "%llu %lld", (unsigned long long)size, (long long)mtime);

	if (p)
		(void)block_store(s, p, buf, (size_t)n);
	free(p);
}

/* Copy want bytes at in_blk of block blk of f into out, fetching the block on a miss. */
static ssize_t block_read(struct s3_backend *s, struct sfs_bfile *f, uint64_t blk, size_t in_blk,
			  char *out, size_t want)
{
	char suffix[32];
	snprintf(suffix, sizeof(suffix), "%llu", (unsigned long long)blk);
	char *p = block_path(s, f->key, suffix);
	ssize_t r;

	if (!p)
		return -ENOMEM;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		r = pread(fd, out, want, (off_t)in_blk);
		close(fd);
		if (r == (ssize_t)want) {
			free(p);
			return r;
		}
	}
	/* miss (or a short block): fetch the whole block once */
	uint64_t start = blk * READAHEAD;
	size_t len = f->size - start < READAHEAD ? (size_t)(f->size - start) : READAHEAD;
	char *data = malloc(len ? len : 1);
	r = data ? sfs_s3_get_range(s->c, f->key, start, data, len) : -ENOMEM;
	if (r == -ENOENT)
		sfs_s3b_block_forget(s, f->key); /* gone (gc purged it): its cached size goes too */
	if (r >= 0) {
		size_t got = (size_t)r;
		if (got == len)
			(void)block_store(s, p, data,
					  len); /* a failed store only costs a refetch */
		r = got > in_blk ? (ssize_t)((got - in_blk) < want ? got - in_blk : want) : 0;
		memcpy(out, data + in_blk, (size_t)r);
	}
	free(data);
	free(p);
	return r;
}

struct trim_ent {
	char *path;
	uint64_t bytes;
	struct timespec atime;
};

struct trim {
	struct trim_ent *v;
	size_t n, cap;
	uint64_t used;
	const char *base;
};

static int trim_cb(void *arg, int dirfd, const char *name, const char *rel, const struct stat *st)
{
	struct trim *t = arg;

	(void)dirfd;
	(void)name;
	if (!S_ISREG(st->st_mode))
		return 0;
	t->used += (uint64_t)st->st_size;
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 256;
		struct trim_ent *nv = realloc(t->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		t->v = nv;
		t->cap = ncap;
	}
	if (asprintf(&t->v[t->n].path, "%s/%s", t->base, rel) < 0)
		return -ENOMEM;
	t->v[t->n].bytes = (uint64_t)st->st_size;
	t->v[t->n].atime = st->st_atim;
	t->n++;
	return 0;
}

static int by_atime_asc(const void *a, const void *b)
{
	const struct timespec *x = &((const struct trim_ent *)a)->atime;
	const struct timespec *y = &((const struct trim_ent *)b)->atime;

	if (x->tv_sec != y->tv_sec)
		return x->tv_sec < y->tv_sec ? -1 : 1;
	return x->tv_nsec < y->tv_nsec ? -1 : x->tv_nsec > y->tv_nsec;
}

/* Over the bound: measure and remove the least recently used blocks down to 80 %. */
static void blocks_trim(struct s3_backend *s)
{
	struct trim t = {.base = s->blocks_dir};
	int dfd = open(s->blocks_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0)
		return;
	int rc = sfs_walk(dfd, trim_cb, &t);
	close(dfd);
	if (!rc && t.n) {
		qsort(t.v, t.n, sizeof(*t.v), by_atime_asc);
		for (size_t i = 0; i < t.n && t.used > s->blocks_max / 5 * 4; i++)
			if (unlink(t.v[i].path) == 0)
				t.used -= t.v[i].bytes;
	}
	for (size_t i = 0; i < t.n; i++)
		free(t.v[i].path);
	free(t.v);
	pthread_mutex_lock(&s->blocks_lock);
	s->blocks_used = t.used;
	pthread_mutex_unlock(&s->blocks_lock);
}

/* ---- reading ---- */

int sfs_s3b_open(struct sfs_backend *b, const char *key, struct sfs_bfile **out)
{
	struct s3_backend *s = S3(b);
	struct sfs_s3_objinfo info;
	struct sfs_bfile *f;
	int rc;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->key = sfs_s3b_full_key(s, key);
	if (!f->key) {
		free(f);
		return -ENOMEM;
	}
	if (sfs_s3b_block_size_get(s, f->key, &f->size, NULL) == 0) {
		*out = f; /* canonical objects never change: the size seen once stays true */
		return 0;
	}
	rc = sfs_s3_head(s->c, f->key, &info);
	if (rc) {
		if (rc == -ENOENT && sfs_s3b_prefix_exists(s, f->key) == 1)
			rc = -EISDIR;
		free(f->key);
		free(f);
		return rc;
	}
	f->size = info.size;
	sfs_s3b_block_size_put(s, f->key, f->size, info.mtime_ns);
	*out = f;
	return 0;
}

/*
 * Reads of canonical objects go through a local block cache
 * (<cache_dir>/<store id>/blocks/<md5(key)[0:2]>/<md5(key)>.<n>, 1 MiB blocks):
 * canonical objects never change, so a block fetched once serves every later
 * read, also after a remount; only misses cost a ranged GET.
 */
ssize_t sfs_s3b_pread(struct sfs_backend *b, struct sfs_bfile *f, void *buf, size_t n, off_t off)
{
	struct s3_backend *s = S3(b);
	size_t done = 0;

	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off >= f->size || n == 0)
		return 0;
	if (n > f->size - (uint64_t)off)
		n = (size_t)(f->size - (uint64_t)off);
	while (done < n) {
		uint64_t pos = (uint64_t)off + done;
		uint64_t blk = pos / READAHEAD;
		size_t in_blk = (size_t)(pos % READAHEAD);
		size_t want = READAHEAD - in_blk < n - done ? READAHEAD - in_blk : n - done;
		ssize_t r = block_read(s, f, blk, in_blk, (char *)buf + done, want);
		if (r < 0)
			return done ? (ssize_t)done : r;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

void sfs_s3b_close(struct sfs_backend *b, struct sfs_bfile *f)
{
	(void)b;
	if (!f)
		return;
	free(f->key);
	free(f);
}
