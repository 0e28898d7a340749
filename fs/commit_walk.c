/* fs/commit_walk.c - the entry a commit takes (see commit_walk.h). */
#include "fs/commit_walk.h"
#include "fs/cache.h"
#include "fs/hasher.h"
#include "fs/staging.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common/fault.h"
#include "common/log.h"

void sfs_cw_release(struct walk *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->v[i].rel);
	free(w->v);
}

int sfs_cw_add(struct walk *w, const char *rel, const struct stat *st)
{
	if (w->n == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 64;
		struct centry *nv = realloc(w->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		w->v = nv;
		w->cap = ncap;
	}
	struct centry *e = &w->v[w->n];
	memset(e, 0, sizeof(*e));
	e->rel = strdup(rel);
	if (!e->rel)
		return -ENOMEM;
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->is_dir = S_ISDIR(st->st_mode);
	e->size = e->is_dir ? 0 : (uint64_t)st->st_size;
	w->n++;
	if (!e->is_dir) {
		w->bytes += e->size;
		w->files++;
	}
	return 0;
}

/*
 * A file with other names could be changed through them after it became
 * canonical: give the committed name its own copy first.
 */
int sfs_cw_unshare(int dirfd, const char *name, const struct stat *st)
{
	char tmp[64];
	int in = -1, out = -1, rc = 0;

	static unsigned counter;
	snprintf(tmp, sizeof(tmp), ".stagefs-unshare.%ld.%u", (long)getpid(),
		 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
	in = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st->st_mode & 07777);
	if (out < 0) {
		rc = -errno;
		goto out;
	}
	for (;;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
	}
	if (!rc && fsync(out) < 0)
		rc = -errno;
	if (!rc && renameat(dirfd, tmp, dirfd, name) < 0)
		rc = -errno;
out:
	if (out >= 0) {
		close(out);
		if (rc)
			(void)unlinkat(dirfd, tmp, 0);
	}
	close(in);
	return rc;
}

int sfs_cw_tree(struct walk *w, int dirfd, const char *prefix, int depth)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while (!rc && (de = readdir(d)) != NULL) {
		struct stat st;
		char *rel = NULL;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (asprintf(&rel, "%s%s%s", prefix, prefix[0] ? "/" : "", de->d_name) < 0) {
			rc = -ENOMEM;
			break;
		}
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
		} else if (S_ISREG(st.st_mode)) {
			rc = sfs_cw_add(w, rel, &st);
			if (!rc && st.st_nlink > 1)
				w->v[w->n - 1].shared = 1;
		} else if (S_ISDIR(st.st_mode)) {
			if (depth > 256) {
				rc = -ELOOP;
			} else {
				rc = sfs_cw_add(w, rel, &st);
				int sub =
					rc ? -1
					   : openat(fd, de->d_name,
						    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (!rc && sub < 0)
					rc = -errno;
				if (!rc) {
					rc = sfs_cw_tree(w, sub, rel, depth + 1);
					close(sub);
				}
			}
		} else {
			snprintf(w->reason, sizeof(w->reason),
				 "'%s' is a %s; only regular files "
				 "and directories commit",
				 rel, S_ISLNK(st.st_mode) ? "symlink" : "special file");
			rc = -EINVAL;
		}
		free(rel);
	}
	closedir(d);
	return rc;
}

/* The table's inode of a walked entry, or NULL; fs->lock held. */
struct sfs_stg *sfs_cw_find_locked(struct sfs_fs *fs, const struct centry *e)
{
	return e->dev == fs->staging_dev ? sfs_stg_find_locked(fs, e->ino) : NULL;
}

/* The digest computed while the file was written, if this mount saw all of it. */
static int digest_from_writes(struct sfs_fs *fs, struct sfs_stg *entry, struct centry *e)
{
	pthread_mutex_lock(&fs->lock);
	struct sfs_stg *in = e->rel[0] ? sfs_cw_find_locked(fs, e) : entry;
	if (in)
		sfs_inode_hold_locked(&in->base);
	pthread_mutex_unlock(&fs->lock);
	if (!in)
		return -ENODATA;
	int rc = sfs_stg_digest(in, e->md5);
	sfs_inode_put(fs, &in->base);
	return rc;
}

/* MD5 of the staged file at dirfd/rel: from the write-time digest when it still holds. */
int sfs_cw_digest(struct sfs_fs *fs, struct sfs_stg *in, const char *entry_rel, int efd, int rootfd,
		  struct centry *e, uint64_t *done, uint64_t total)
{
	char hint[80];
	int fd;

	if (e->rel[0]) {
		fd = openat(rootfd, e->rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		fd = fd < 0 ? -errno : fd;
	} else if (efd >= 0) {
		/* the entry's own copy (unshared): reopen its O_PATH fd for reading */
		snprintf(hint, sizeof(hint), "/proc/self/fd/%d", efd);
		fd = open(hint, O_RDONLY | O_CLOEXEC);
		fd = fd < 0 ? -errno : fd;
	} else {
		fd = sfs_stg_open(fs, in, O_RDONLY); /* the entry itself is the file */
	}
	struct stat st;
	int rc = 0;

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!e->shared && (uint64_t)st.st_size == e->size && digest_from_writes(fs, in, e) == 0) {
		*done += e->size;
		goto out;
	}
	ssize_t hn = fgetxattr(fd, SFS_XATTR_HINT, hint, sizeof(hint) - 1);
	if (hn <= 33 && sfs_cache_active(fs) && fgetxattr(fd, SFS_XATTR_EVICTED, NULL, 0) >= 0) {
		/* the bytes are in the store only: bring them back to read them */
		char *full = NULL;
		if (asprintf(&full, "%s%s%s", entry_rel, e->rel[0] ? "/" : "", e->rel) < 0) {
			rc = -ENOMEM;
			goto out;
		}
		rc = sfs_cache_present_rel(fs, full);
		free(full);
		if (rc)
			goto out;
	}
	if (hn > 33) {
		hint[hn] = '\0';
		unsigned long long sz = strtoull(hint + 33, NULL, 10);
		if (hint[32] == ' ' && sz == (unsigned long long)st.st_size) {
			memcpy(e->md5, hint, 32);
			e->md5[32] = '\0';
			*done += e->size;
			goto out;
		}
	}
	struct sfs_md5 m;
	unsigned char md[16];
	size_t bufsz = 1 << 20;
	char *buf = malloc(bufsz);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = sfs_md5_init(&m);
	for (off_t off = 0; !rc;) {
		ssize_t n = pread(fd, buf, bufsz, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		sfs_md5_update(&m, buf, (size_t)n);
		off += n;
		*done += (uint64_t)n;
		if (((uint64_t)off & ((64u << 20) - 1)) == 0)
			sfs_stg_set_status(in, "committing %llu/%llu", (unsigned long long)*done,
					   (unsigned long long)total);
	}
	free(buf);
	if (!rc) {
		sfs_md5_final(&m, md);
		sfs_md5_hex(md, e->md5);
	} else {
		sfs_md5_release(&m);
	}
out:
	close(fd);
	return rc;
}

/* Mark (committing = v) every table inode of the walked tree; -EBUSY if one is open for writing. */
int sfs_cw_mark(struct sfs_fs *fs, struct sfs_stg *entry, struct walk *w, int v, char *who,
		size_t wholen)
{
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
	if (v && entry->writers > 0) {
		rc = -EBUSY;
		snprintf(who, wholen, "the entry");
	}
	if (!rc && v && sfs_inode_view(&entry->base) != &sfs_view_staging)
		rc = -ENOENT; /* committed meanwhile */
	for (size_t i = 0; !rc && v && i < w->n; i++) {
		struct sfs_stg *in = sfs_cw_find_locked(fs, &w->v[i]);
		if (in && in->writers > 0) {
			rc = -EBUSY;
			snprintf(who, wholen, "'%s'", w->v[i].rel);
		}
	}
	if (!rc) {
		entry->committing = v;
		for (size_t i = 0; i < w->n; i++) {
			struct sfs_stg *in = sfs_cw_find_locked(fs, &w->v[i]);
			if (in)
				in->committing = v;
		}
	}
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

/* The entry and everything below it left staging: later ops on their inodes fail ENOENT. */
void sfs_cw_gone(struct sfs_fs *fs, struct sfs_stg *entry, struct walk *w)
{
	pthread_mutex_lock(&fs->lock);
	for (size_t i = 0; i < w->n; i++) {
		struct sfs_stg *in = sfs_cw_find_locked(fs, &w->v[i]);
		if (in && in != entry)
			sfs_stg_gone_locked(fs, in);
	}
	if (entry)
		sfs_stg_gone_locked(fs, entry);
	pthread_mutex_unlock(&fs->lock);
}

/* The zarr checksum of a walked directory (files' md5 already known). */
int sfs_cw_checksum(struct walk *w, char *out, size_t outlen)
{
	struct sfs_zarr_checksum *z = NULL;
	int rc = sfs_zarr_checksum_new(&z);

	for (size_t i = 0; !rc && i < w->n; i++)
		if (!w->v[i].is_dir)
			rc = sfs_zarr_checksum_add(z, w->v[i].rel, w->v[i].md5, w->v[i].size);
	if (!rc)
		rc = sfs_zarr_checksum_final(z, out, outlen);
	sfs_zarr_checksum_free(z);
	return rc;
}
