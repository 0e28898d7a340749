/*
 * backend/s3_promote.c - the s3 backend's promotion of a staged entry to its
 * canonical key, and the parallel transfers it and a staged rename share.
 *
 * With write-back staging (fs/uploads.c) a file that is committed may never
 * have been uploaded, or only in an older version: the local staging cache
 * holds the bytes the commit digested.  So the promotion plans from the cache
 * when the entry is there: each file whose bytes the store holds as they are
 * (the index's row says so, or the file is evicted) is copied server-side
 * from "_staging/<rel>"; each other file is PUT from the cache straight to its
 * canonical key.  A zarr chunk written as a temporary name, renamed and
 * committed costs one PUT, no copy and no delete.  Without a local copy (an
 * entry only the bucket holds) the plan is the listing of its staged objects.
 *
 * No-replace: one file goes up with If-None-Match where the server honours it
 * for that request (a single PUT needs cond_put, a multipart upload or any
 * copy cond_complete); a tree, and any promotion on a server that ignores the
 * condition on some request (cond_complete 0), also takes a claim
 * (s3_claim.c) that makes this host the only promoter of the key.
 */
#include "backend/backend.h"
#include "backend/s3_priv.h"

#include "backend/s3_client.h"
#include "common/fault.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* One file to transfer: rel below the entry ("" for the entry itself). */
struct pitem {
	char *rel;
	uint64_t size;
	int put; /* 1: PUT from the local cache; 0: copy its staged object */
};

struct plan {
	struct pitem *v;
	size_t n, cap;
};

static void plan_release(struct plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].rel);
	free(p->v);
	memset(p, 0, sizeof(*p));
}

static int plan_add(struct plan *p, const char *rel, uint64_t size, int put)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		struct pitem *v = realloc(p->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	char *r = strdup(rel);
	if (!r)
		return -ENOMEM;
	p->v[p->n++] = (struct pitem){r, size, put};
	return 0;
}

/* The transfers of one promotion (or staged rename), run in parallel. */
struct run {
	struct s3_backend *s;
	struct plan *p;
	const char *from, *to; /* full keys of the entry */
	const char *local;     /* its local path (puts), or NULL */
	int is_dir, flags;
	unsigned char *done; /* done[i] = 1 when item i is at its destination */
};

static char *at(const char *base, int is_dir, const char *rel)
{
	return is_dir ? sfs_s3b_join(base, "/", rel) : strdup(base);
}

/* PUT item it from the local cache to dst: the bytes the commit digested. */
static int put_local(struct run *r, const struct pitem *it, const char *dst)
{
	char *path = at(r->local, r->is_dir, it->rel);
	struct stat st;
	int rc = 0;

	if (!path)
		return -ENOMEM;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		rc = -errno;
	else if (fstat(fd, &st) < 0)
		rc = -errno;
	else if ((uint64_t)st.st_size != it->size)
		rc = S3_ERR(-EAGAIN, "s3: '%s' changed while it was promoted", path);
	if (!rc)
		rc = sfs_s3_put_fd(r->s->c, dst, fd, it->size, NULL, r->flags);
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

static int run_one(void *ctx, size_t i)
{
	struct run *r = ctx;
	const struct pitem *it = &r->p->v[i];
	char *dst = at(r->to, r->is_dir, it->rel);
	char *src = it->put ? NULL : at(r->from, r->is_dir, it->rel);
	int rc;

	if (!dst || (!it->put && !src))
		rc = -ENOMEM;
	else if (it->put)
		rc = put_local(r, it, dst);
	else
		rc = sfs_s3_copy(r->s->c, src, dst, it->size, r->flags);
	if (!rc)
		r->done[i] = 1;
	if (!rc && sfs_fault("s3-promote-part"))
		rc = -EIO; /* tests: a promotion cut short after one file (=kill: a crash) */
	free(dst);
	free(src);
	return rc;
}

/* Run the plan from full key from (and local path local) to full key to; undone on failure. */
static int run_plan(struct s3_backend *s, struct plan *p, const char *from, const char *local,
		    const char *to, int is_dir, int flags)
{
	struct run r = {s, p, from, to, local, is_dir, flags, calloc(p->n ? p->n : 1, 1)};
	int rc;

	if (!r.done)
		return -ENOMEM;
	rc = sfs_s3_parallel(s->c, p->n, run_one, &r);
	if (rc) {
		/* leave nothing half-written behind */
		struct objlist undo = {0};
		for (size_t i = 0; i < p->n; i++) {
			if (!r.done[i] || sfs_s3b_collect_cb(&undo, "", 0, NULL) != 0)
				continue;
			free(undo.v[undo.n - 1].key);
			undo.v[undo.n - 1].key = at(to, is_dir, p->v[i].rel);
			if (!undo.v[undo.n - 1].key)
				undo.n--;
		}
		if (sfs_s3b_delete_objlist(s, &undo))
			sfs_log(LOG_ERR, "s3: cannot remove partial copy under '%s'", to);
		sfs_s3b_objlist_release(&undo);
	}
	free(r.done);
	return rc;
}

/* A plan of copies: every object of l (gathered at full key from). */
static int plan_of_list(struct plan *p, const struct objlist *l, const char *from, int is_dir)
{
	size_t plen = strlen(from) + (is_dir ? 1 : 0);
	int rc = 0;

	for (size_t i = 0; !rc && i < l->n; i++)
		rc = plan_add(p, is_dir ? l->v[i].key + plen : "", l->v[i].size, 0);
	return rc;
}

int sfs_s3b_copy_all(struct s3_backend *s, struct objlist *l, const char *from, const char *to,
		     int is_dir, int flags)
{
	struct plan p = {0};
	int rc = plan_of_list(&p, l, from, is_dir);

	if (!rc)
		rc = run_plan(s, &p, from, NULL, to, is_dir, flags);
	plan_release(&p);
	return rc;
}

/* ---- planning from the local cache ---- */

struct local_ctx {
	struct s3_backend *s;
	struct plan *p;
	const char *staged_rel;
};

/* Does the store hold staged file rel (open as fd, stat st) as it is? */
static int held_as_is(struct s3_backend *s, const char *rel, int fd, const struct stat *st)
{
	if (fgetxattr(fd, SFS_XATTR_EVICTED, NULL, 0) >= 0)
		return 1; /* its bytes are in the store only */
	return s->journal && s->journal->stored(s->journal->arg, rel, st) == 1;
}

static int plan_file(struct local_ctx *x, int dfd, const char *name, const char *rel,
		     const struct stat *st)
{
	char *full = rel[0] ? sfs_s3b_join(x->staged_rel, "/", rel) : strdup(x->staged_rel);
	int fd = full ? openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
	int rc = !full ? -ENOMEM : fd < 0 ? -errno : 0;

	if (!rc)
		rc = plan_add(x->p, rel, (uint64_t)st->st_size, !held_as_is(x->s, full, fd, st));
	if (fd >= 0)
		close(fd);
	free(full);
	return rc;
}

static int plan_cb(void *arg, int dirfd, const char *name, const char *rel, const struct stat *st)
{
	if (S_ISDIR(st->st_mode))
		return 0; /* S3 has no directories: a tree is its files */
	if (!S_ISREG(st->st_mode))
		return -EINVAL; /* the commit's walk refused these already */
	return plan_file(arg, dirfd, name, rel, st);
}

/*
 * Plan the promotion of staged_rel from its local copy at path local (*is_dir
 * set).  -ENOENT when there is none.
 */
static int plan_local(struct s3_backend *s, const char *staged_rel, const char *local,
		      struct plan *p, int *is_dir)
{
	struct local_ctx x = {s, p, staged_rel};
	struct stat st;
	int rc;

	if (lstat(local, &st) < 0)
		return -errno;
	*is_dir = S_ISDIR(st.st_mode);
	if (*is_dir) {
		int dfd = open(local, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			return -errno;
		rc = sfs_walk(dfd, plan_cb, &x);
		close(dfd);
	} else if (S_ISREG(st.st_mode)) {
		rc = plan_file(&x, AT_FDCWD, local, "", &st);
	} else {
		rc = -EINVAL;
	}
	if (!rc && p->n == 0)
		rc = -ENOENT; /* an empty tree: nothing S3 can hold */
	return rc;
}

/* -EEXIST when an object or a tree exists at full key fk, 0 when neither, or -errno. */
static int taken(struct s3_backend *s, const char *fk)
{
	int rc = sfs_s3_head(s->c, fk, NULL);

	if (rc == 0)
		return -EEXIST;
	if (rc != -ENOENT)
		return rc;
	rc = sfs_s3b_prefix_exists(s, fk);
	return rc > 0 ? -EEXIST : rc;
}

int sfs_s3b_promote(struct sfs_backend *b, const char *staged_rel, const char *key, int flags)
{
	struct s3_backend *s = S3(b);
	char *from = sfs_s3b_staged_key(s, staged_rel), *to = sfs_s3b_full_key(s, key);
	char *local = sfs_s3b_join(s->staging_dir, "/", staged_rel);
	struct plan p = {0};
	char *claim = NULL;
	int is_dir = 0, cflags = 0, rc;

	if (s->read_only)
		return -EROFS;
	if (!from || !to || !local) {
		rc = -ENOMEM;
		goto out;
	}
	rc = plan_local(s, staged_rel, local, &p, &is_dir);
	if (rc == -ENOENT && p.n == 0) {
		/* no local copy (or an empty one): what the bucket has staged */
		struct objlist l = {0};
		plan_release(&p);
		rc = sfs_s3b_gather(s, from, &l, &is_dir);
		if (!rc)
			rc = plan_of_list(&p, &l, from, is_dir);
		sfs_s3b_objlist_release(&l);
		free(local);
		local = NULL;
	}
	if (rc)
		goto out;
	if (flags & SFS_NOREPLACE) {
		rc = taken(s, to);
		if (rc)
			goto out;
		/*
		 * A conditional request stops another host that creates the same
		 * key meanwhile, where the server honours it for that request (one
		 * file).  Where it does not honour it for every request of a
		 * promotion (Ceph RGW: not on CompleteMultipartUpload), and for
		 * every tree, a claim makes this host the only promoter of the key
		 * (s3_claim.c); what exists is checked again once it is ours.  On
		 * such a server a one-PUT file takes the claim too: another host's
		 * copy onto the key, under its claim, would replace it.
		 */
		int single_put =
			p.v[0].put && p.v[0].size <= sfs_s3_client_multipart_threshold(s->c);
		if (!is_dir && s->cond_put && (single_put || s->cond_complete))
			cflags = SFS_S3_IF_NONE_MATCH;
		if (s->cond_put && (is_dir || !s->cond_complete)) {
			rc = sfs_s3b_claim(s, to, &claim);
			if (rc == -ENOSYS) {
				sfs_s3b_no_conditional_writes(s);
				cflags = 0;
			} else if (rc || (rc = taken(s, to))) {
				goto out;
			}
		}
	}
	rc = run_plan(s, &p, from, local, to, is_dir, cflags);
	if (rc == -ENOSYS && cflags) {
		sfs_s3b_no_conditional_writes(s);
		rc = run_plan(s, &p, from, local, to, is_dir, 0);
	}
	if (!rc && local) {
		size_t puts = 0;
		for (size_t i = 0; i < p.n; i++)
			puts += (size_t)p.v[i].put;
		sfs_log(LOG_DEBUG, "s3: promoted '%s': %zu of %zu files put from the cache",
			staged_rel, puts, p.n);
	}
	if (rc || (flags & SFS_KEEP_SOURCE))
		goto out; /* the caller records the promotion, then calls staged_remove */
	/* the canonical object is complete: a leftover staged object is only garbage */
	int rrc = sfs_s3b_staged_remove(b, staged_rel);
	if (rrc && rrc != -ENOENT)
		sfs_log(LOG_WARNING, "s3: promoted '%s' but could not delete its staged objects",
			staged_rel);
out:
	sfs_s3b_unclaim(s, claim);
	sfs_s3b_written(s, key);
	plan_release(&p);
	free(from);
	free(to);
	free(local);
	return rc;
}
