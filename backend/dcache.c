/*
 * backend/dcache.c - a bounded, time-limited cache of directory listings
 * (see dcache.h).  At most max_dirs listings in an array, searched linearly
 * (max_dirs is small); names inside a listing are sorted and bisected.
 */
#include "backend/dcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sfs_dcache {
	pthread_mutex_t lock;
	long long ttl_ns;
	size_t max;
	size_t n;
	struct sfs_dlist **v;
	unsigned long long tick; /* LRU clock */
	long long last_inval_ns; /* listings begun before this are not stored */
};

long long sfs_dcache_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int sfs_dcache_new(int ttl_s, size_t max_dirs, struct sfs_dcache **out)
{
	struct sfs_dcache *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->v = calloc(max_dirs ? max_dirs : 1, sizeof(*c->v));
	if (!c->v) {
		free(c);
		return -ENOMEM;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->ttl_ns = (long long)(ttl_s > 0 ? ttl_s : 0) * 1000000000LL;
	c->max = max_dirs;
	*out = c;
	return 0;
}

static void dlist_free(struct sfs_dlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	free(l->dir);
	free(l);
}

void sfs_dcache_free(struct sfs_dcache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		if (--c->v[i]->refs == 0)
			dlist_free(c->v[i]);
	free(c->v);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int sfs_dcache_enabled(const struct sfs_dcache *c)
{
	return c->ttl_ns > 0 && c->max > 0;
}

struct sfs_dlist *sfs_dlist_new(void)
{
	return calloc(1, sizeof(struct sfs_dlist));
}

int sfs_dlist_add(struct sfs_dlist *l, const char *name, const struct sfs_bstat *st)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct sfs_dent *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].name = strdup(name);
	if (!l->v[l->n].name)
		return -ENOMEM;
	l->v[l->n].st = *st;
	l->n++;
	return 0;
}

void sfs_dlist_release(struct sfs_dcache *c, struct sfs_dlist *l)
{
	int last;

	if (!l)
		return;
	if (!c || !l->dir) { /* never stored: the caller's alone */
		dlist_free(l);
		return;
	}
	pthread_mutex_lock(&c->lock);
	last = --l->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (last)
		dlist_free(l);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct sfs_dent *)a)->name, ((const struct sfs_dent *)b)->name);
}

/* Index of dir's listing or -1.  Caller holds the lock. */
static long find(struct sfs_dcache *c, const char *dir)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i]->dir, dir) == 0)
			return (long)i;
	return -1;
}

/* Drop listing i from the cache.  Caller holds the lock; frees it unless a caller holds it. */
static void drop(struct sfs_dcache *c, size_t i)
{
	struct sfs_dlist *l = c->v[i];

	c->v[i] = c->v[--c->n];
	if (--l->refs == 0)
		dlist_free(l);
}

void sfs_dcache_put(struct sfs_dcache *c, const char *dir, struct sfs_dlist *l,
		    long long started_ns)
{
	if (!sfs_dcache_enabled(c) || !(l->dir = strdup(dir))) {
		free(l->dir);
		l->dir = NULL;
		dlist_free(l);
		return;
	}
	qsort(l->v, l->n, sizeof(*l->v), by_name);
	l->at_ns = started_ns;
	l->refs = 1; /* the cache's reference */
	pthread_mutex_lock(&c->lock);
	if (started_ns <= c->last_inval_ns) {
		pthread_mutex_unlock(&c->lock);
		l->refs = 0;
		dlist_free(l);
		return;
	}
	long i = find(c, dir);
	if (i >= 0)
		drop(c, (size_t)i);
	if (c->n == c->max) { /* evict the least recently used */
		size_t old = 0;
		for (size_t k = 1; k < c->n; k++)
			if (c->v[k]->used < c->v[old]->used)
				old = k;
		drop(c, old);
	}
	l->used = ++c->tick;
	c->v[c->n++] = l;
	pthread_mutex_unlock(&c->lock);
}

/* dir's listing if fresh (an expired one is dropped).  Caller holds the lock. */
static struct sfs_dlist *fresh(struct sfs_dcache *c, const char *dir)
{
	long i = find(c, dir);

	if (i < 0)
		return NULL;
	if (sfs_dcache_now() - c->v[i]->at_ns >= c->ttl_ns) {
		drop(c, (size_t)i);
		return NULL;
	}
	c->v[i]->used = ++c->tick;
	return c->v[i];
}

struct sfs_dlist *sfs_dcache_get(struct sfs_dcache *c, const char *dir)
{
	struct sfs_dlist *l;

	pthread_mutex_lock(&c->lock);
	l = fresh(c, dir);
	if (l)
		l->refs++;
	pthread_mutex_unlock(&c->lock);
	return l;
}

int sfs_dcache_lookup(struct sfs_dcache *c, const char *dir, const char *name, struct sfs_bstat *st)
{
	struct sfs_dent want = {.name = (char *)name}, *hit;
	struct sfs_dlist *l;
	int rc = -ENOENT;

	pthread_mutex_lock(&c->lock);
	l = fresh(c, dir);
	if (l) {
		hit = l->n ? bsearch(&want, l->v, l->n, sizeof(*l->v), by_name) : NULL;
		if (hit)
			*st = hit->st;
		rc = hit != NULL;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* Is dir key itself or one of its ancestors ("" is everyone's)? */
static int is_ancestor_or_self(const char *dir, const char *key, char sep)
{
	size_t n = strlen(dir);

	if (n == 0)
		return 1;
	return strncmp(dir, key, n) == 0 && (key[n] == '\0' || key[n] == sep);
}

void sfs_dcache_invalidate(struct sfs_dcache *c, const char *key, char sep)
{
	pthread_mutex_lock(&c->lock);
	c->last_inval_ns = sfs_dcache_now();
	for (size_t i = 0; i < c->n;) {
		if (is_ancestor_or_self(c->v[i]->dir, key, sep) ||
		    is_ancestor_or_self(key, c->v[i]->dir, sep))
			drop(c, i);
		else
			i++;
	}
	pthread_mutex_unlock(&c->lock);
}
