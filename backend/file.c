/*
 * backend/file.c - the "file" backend: a local or NFS directory.
 *
 * Every operation is relative to one directory fd on the store and resolves
 * names with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS),
 * so nothing a user puts in the store (a symlink, "..") can make the daemon
 * touch anything outside it.  Staged files are real files under _staging/, and
 * promotion is a rename or link inside the same filesystem: O(1) in size.
 */
#include "backend/backend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/config.h"
#include "common/fsutil.h"
#include "common/log.h"

#define FORMAT_KEY  ".stagefs/format"
#define FORMAT_TEXT "stagefs 1\n"

struct file_backend {
	struct sfs_backend base;
	int dirfd;	/* the store directory, O_DIRECTORY; immutable after open */
	char *location; /* for messages */
};

struct sfs_bfile {
	int fd;
};

static struct file_backend *fb(struct sfs_backend *b)
{
	return (struct file_backend *)b;
}

/*
 * Without openat2 (kernels before 5.6, valgrind): walk one segment at a time,
 * never following a symlink and refusing "..", which is what RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS gives in one call.
 */
static int resolve_walk(int dirfd, const char *key, int flags, mode_t mode)
{
	char *copy = strdup(key), *seg, *next;
	int cur = -1, rc;

	if (!copy)
		return -ENOMEM;
	cur = openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0) {
		rc = -errno;
		goto out;
	}
	for (seg = copy; seg; seg = next) {
		next = strchr(seg, '/');
		if (next)
			*next++ = '\0';
		if (strcmp(seg, "..") == 0) {
			rc = -EXDEV; /* what RESOLVE_BENEATH reports */
			goto out;
		}
		if (!seg[0] || (strcmp(seg, ".") == 0 && next))
			continue;
		int nfd = next ? openat(cur, seg, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
			       : openat(cur, seg, flags | O_NOFOLLOW | O_CLOEXEC, mode);
		if (nfd < 0) {
			rc = errno == ENOTDIR && next ? -ELOOP : -errno;
			goto out;
		}
		close(cur);
		cur = nfd;
		if (!next) {
			free(copy);
			return cur;
		}
	}
	/* key was empty or "." */
	rc = openat(cur, ".", flags | O_CLOEXEC, mode);
	rc = rc < 0 ? -errno : rc;
out:
	if (cur >= 0)
		close(cur);
	free(copy);
	return rc;
}

static int resolve(int dirfd, const char *key, int flags, mode_t mode)
{
	static int no_openat2;
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};

	if (!__atomic_load_n(&no_openat2, __ATOMIC_RELAXED)) {
		long fd = syscall(SYS_openat2, dirfd, key[0] ? key : ".", &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno != ENOSYS)
			return -errno;
		__atomic_store_n(&no_openat2, 1, __ATOMIC_RELAXED);
	}
	return resolve_walk(dirfd, key, flags, mode);
}

/* Split key into its parent directory fd (created with mkdir -p when mkp) and last segment. */
static int open_parent(int dirfd, const char *key, int mkp, const char **base)
{
	const char *slash = strrchr(key, '/');
	char *parent = NULL;
	int fd;

	if (!slash) {
		*base = key;
		return resolve(dirfd, ".", O_PATH | O_DIRECTORY, 0);
	}
	parent = strndup(key, (size_t)(slash - key));
	if (!parent)
		return -ENOMEM;
	fd = resolve(dirfd, parent, O_PATH | O_DIRECTORY, 0);
	if (fd == -ENOENT && mkp) {
		/* mkdir -p, one segment at a time, never following a symlink */
		int cur = resolve(dirfd, ".", O_PATH | O_DIRECTORY, 0);
		char *seg = parent, *next;

		while (cur >= 0 && seg) {
			next = strchr(seg, '/');
			if (next)
				*next++ = '\0';
			if (mkdirat(cur, seg, 0755) < 0 && errno != EEXIST) {
				int e = -errno;
				close(cur);
				cur = e;
				break;
			}
			int nfd = resolve(cur, seg, O_PATH | O_DIRECTORY, 0);
			close(cur);
			cur = nfd;
			seg = next;
		}
		fd = cur;
	}
	free(parent);
	if (fd >= 0)
		*base = slash + 1;
	return fd;
}

/* Like open_parent, but a directory fd that can create and remove entries. */
static int open_parent_dir(int dirfd, const char *key, int mkp, const char **base)
{
	int pfd = open_parent(dirfd, key, mkp, base);

	if (pfd < 0)
		return pfd;
	int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = dfd < 0 ? -errno : dfd;
	close(pfd);
	return rc;
}

static int fsync_dir_of(int dirfd, const char *key)
{
	const char *base;
	int pfd = open_parent(dirfd, key, 0, &base);
	int rc = 0;

	if (pfd < 0)
		return pfd;
	int rfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rfd < 0 || fsync(rfd) < 0)
		rc = -errno;
	if (rfd >= 0)
		close(rfd);
	close(pfd);
	return rc;
}

static int file_staging_dir(struct sfs_backend *b)
{
	int dfd = fb(b)->dirfd;

	if (mkdirat(dfd, "_staging", 0755) < 0 && errno != EEXIST)
		return sfs_err(-errno, "cannot create '%s/_staging': %s", fb(b)->location,
			       strerror(errno));
	return resolve(dfd, "_staging", O_RDONLY | O_DIRECTORY, 0);
}

static int file_staged_sync(struct sfs_backend *b, const char *rel, int fd, int durable)
{
	if (durable && fdatasync(fd) < 0)
		return sfs_err(-errno, "cannot sync staged '%s': %s", rel, strerror(errno));
	return 0;
}

static int file_stat(struct sfs_backend *b, const char *key, struct sfs_bstat *out)
{
	struct stat st;
	int fd = resolve(fb(b)->dirfd, key, O_PATH | O_NOFOLLOW, 0);

	if (fd < 0)
		return fd;
	int rc = fstat(fd, &st) < 0 ? -errno : 0;
	close(fd);
	if (rc == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		rc = -ENOENT; /* only files and directories are objects */
	if (rc == 0)
		sfs_bstat_from_stat(&st, out);
	return rc;
}

static int file_list(struct sfs_backend *b, const char *key, sfs_list_cb cb, void *arg)
{
	int fd = resolve(fb(b)->dirfd, key, O_RDONLY | O_DIRECTORY, 0);
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		struct stat st;
		struct sfs_bstat bs;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* raced with a removal */
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
			continue;
		sfs_bstat_from_stat(&st, &bs);
		rc = cb(arg, de->d_name, &bs);
		if (rc)
			break;
	}
	if (!rc && errno)
		rc = -errno;
	closedir(d);
	return rc;
}

struct fwalk {
	const char *key;
	sfs_bwalk_cb cb;
	void *arg;
};

static int fwalk_cb(void *arg, int dirfd, const char *name, const char *rel, const struct stat *st)
{
	struct fwalk *w = arg;
	struct sfs_bstat bs;
	char *full = NULL;

	if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
		return 0; /* nothing else is ever canonical */
	if (asprintf(&full, "%s%s%s", w->key, w->key[0] ? "/" : "", rel) < 0)
		return -ENOMEM;
	sfs_bstat_from_stat(st, &bs);
	int rc = w->cb(w->arg, full, &bs);
	free(full);
	return rc;
}

static int file_walk(struct sfs_backend *b, const char *key, sfs_bwalk_cb cb, void *arg)
{
	struct fwalk w = {key, cb, arg};
	int fd = resolve(fb(b)->dirfd, key, O_PATH | O_DIRECTORY, 0);

	if (fd < 0)
		return fd;
	int rc = sfs_walk(fd, fwalk_cb, &w);
	close(fd);
	return rc;
}

static int file_open(struct sfs_backend *b, const char *key, struct sfs_bfile **out)
{
	struct sfs_bfile *f;
	int fd = resolve(fb(b)->dirfd, key, O_RDONLY | O_NOFOLLOW, 0);

	if (fd < 0)
		return fd;
	f = malloc(sizeof(*f));
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	f->fd = fd;
	*out = f;
	return 0;
}

static ssize_t file_pread(struct sfs_backend *b, struct sfs_bfile *f, void *buf, size_t n,
			  off_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pread(f->fd, (char *)buf + done, n - done, off + (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

static void file_close(struct sfs_backend *b, struct sfs_bfile *f)
{
	if (f) {
		close(f->fd);
		free(f);
	}
}

static int write_all(int fd, const void *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t w = write(fd, (const char *)buf + done, n - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)w;
	}
	return 0;
}

static int file_put_bytes(struct sfs_backend *b, const char *key, const void *buf, size_t n,
			  int flags)
{
	const char *base;
	char tmp[64];
	int fd = -1, rc;

	int dfd = open_parent_dir(fb(b)->dirfd, key, 1, &base);
	if (dfd < 0)
		return dfd;
	snprintf(tmp, sizeof(tmp), ".tmp.%ld.%lx", (long)getpid(), (unsigned long)random());
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	rc = write_all(fd, buf, n);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (rc)
		goto out;
	if (flags & SFS_NOREPLACE) {
		if (linkat(dfd, tmp, dfd, base, 0) < 0)
			rc = -errno;
	} else if (renameat(dfd, tmp, dfd, base) < 0) {
		rc = -errno;
	}
	if (rc == 0 && fsync(dfd) < 0)
		rc = -errno;
out:
	if (fd >= 0) {
		close(fd);
		(void)unlinkat(dfd, tmp, 0); /* after a rename this is ENOENT: fine */
	}
	close(dfd);
	return rc;
}

static int file_get_bytes(struct sfs_backend *b, const char *key, void **buf, size_t *n, size_t max)
{
	struct stat st;
	char *data = NULL;
	int rc = 0;
	int fd = resolve(fb(b)->dirfd, key, O_RDONLY | O_NOFOLLOW, 0);

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EISDIR;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		rc = -EFBIG;
		goto out;
	}
	data = malloc((size_t)st.st_size + 1);
	if (!data) {
		rc = -ENOMEM;
		goto out;
	}
	struct sfs_bfile f = {.fd = fd};
	ssize_t r = file_pread(b, &f, data, (size_t)st.st_size, 0);
	if (r < 0) {
		rc = (int)r;
		goto out;
	}
	data[r] = '\0';
	*buf = data;
	*n = (size_t)r;
	data = NULL;
out:
	free(data);
	close(fd);
	return rc;
}

/* Remove a tree below dfd/name without following symlinks. */
static int remove_tree(int dfd, const char *name)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0) < 0 ? -errno : 0;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = remove_tree(fd, de->d_name);
		if (rc && rc != -ENOENT)
			break;
		rc = 0;
	}
	closedir(d);
	if (rc)
		return rc;
	return unlinkat(dfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

static int file_remove(struct sfs_backend *b, const char *key)
{
	const char *base;
	int dfd = open_parent_dir(fb(b)->dirfd, key, 0, &base);

	if (dfd < 0)
		return dfd;
	int rc = remove_tree(dfd, base);
	if (rc == 0 && fsync(dfd) < 0)
		rc = -errno;
	close(dfd);
	return rc;
}

/* Rename store key src to key (new parents made), never replacing; durable on return. */
static int move_key(struct file_backend *f, const char *src, const char *key)
{
	const char *sbase, *dbase;
	int sdir = -1, ddir = -1, rc = 0;
	struct stat st;

	sdir = open_parent_dir(f->dirfd, src, 0, &sbase);
	if (sdir < 0) {
		rc = sdir;
		goto out;
	}
	if (fstatat(sdir, sbase, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		rc = -errno;
		goto out;
	}
	/* the bytes must be durable before a durable name points at them */
	if (S_ISREG(st.st_mode)) {
		int fd = openat(sdir, sbase, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0)
			rc = -errno;
		if (fd >= 0)
			close(fd);
	} else if (syncfs(f->dirfd) < 0) {
		rc = -errno;
	}
	if (rc)
		goto out;
	ddir = open_parent_dir(f->dirfd, key, 1, &dbase);
	if (ddir < 0) {
		rc = ddir;
		goto out;
	}
	if (renameat2(sdir, sbase, ddir, dbase, RENAME_NOREPLACE) < 0) {
		rc = -errno;
		if (rc == -EINVAL && S_ISREG(st.st_mode)) {
			/* filesystems without RENAME_NOREPLACE (NFS): link is atomic too */
			rc = 0;
			if (linkat(sdir, sbase, ddir, dbase, 0) < 0 || unlinkat(sdir, sbase, 0) < 0)
				rc = -errno;
		} else if (rc == -EINVAL) {
			if (faccessat(ddir, dbase, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
				rc = -EEXIST;
			else if (renameat(sdir, sbase, ddir, dbase) < 0)
				rc = -errno;
			else
				rc = 0;
		}
		if (rc == -ENOTEMPTY)
			rc = -EEXIST;
		if (rc)
			goto out;
	}
	if (fsync(ddir) < 0 || fsync(sdir) < 0)
		rc = -errno;
	if (rc == 0) {
		/* new parent directories must be durable too */
		char *parent = strdup(key);
		char *slash;
		while (rc == 0 && parent && (slash = strrchr(parent, '/')) != NULL) {
			*slash = '\0';
			rc = fsync_dir_of(f->dirfd, parent);
		}
		free(parent);
	}
out:
	if (sdir >= 0)
		close(sdir);
	if (ddir >= 0)
		close(ddir);
	return rc;
}

static int file_promote(struct sfs_backend *b, const char *staged_rel, const char *key, int flags)
{
	char *src = NULL;
	int rc;

	(void)flags; /* promotion never replaces: a canonical path never changes content */
	if (asprintf(&src, "_staging/%s", staged_rel) < 0)
		return -ENOMEM;
	rc = move_key(fb(b), src, key);
	free(src);
	return rc;
}

static int file_move(struct sfs_backend *b, const char *from, const char *to)
{
	return move_key(fb(b), from, to);
}

static int file_staged_remove(struct sfs_backend *b, const char *rel)
{
	char *key = NULL;

	if (asprintf(&key, "_staging/%s", rel) < 0)
		return -ENOMEM;
	int rc = file_remove(b, key); /* the staging dir is the store: one removal */
	free(key);
	return rc;
}

static int file_sync(struct sfs_backend *b)
{
	return syncfs(fb(b)->dirfd) < 0 ? -errno : 0;
}

static void file_destroy(struct sfs_backend *b)
{
	struct file_backend *f = fb(b);

	if (f->dirfd >= 0)
		close(f->dirfd);
	free(f->location);
	free(f);
}

static const struct sfs_backend_ops file_ops = {
	.name = "file",
	.staging_dir = file_staging_dir,
	.staged_sync = file_staged_sync,
	.staged_remove = file_staged_remove,
	.stat = file_stat,
	.list = file_list,
	.walk = file_walk,
	.open = file_open,
	.pread = file_pread,
	.close = file_close,
	.put_bytes = file_put_bytes,
	.get_bytes = file_get_bytes,
	.promote = file_promote,
	.remove = file_remove,
	.move = file_move,
	.sync = file_sync,
	.destroy = file_destroy,
};

int sfs_backend_file_open(const struct sfs_config *cfg, struct sfs_backend **out)
{
	struct file_backend *f = NULL;
	void *buf = NULL;
	size_t n = 0;
	int rc;

	if (!cfg->location || cfg->location[0] != '/')
		return sfs_err(-EINVAL, "file backend needs an absolute location");
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->base.ops = &file_ops;
	f->dirfd = -1;
	f->location = strdup(cfg->location);
	if (!f->location) {
		rc = -ENOMEM;
		goto fail;
	}
	if (mkdir(cfg->location, 0755) < 0 && errno != EEXIST) {
		rc = sfs_err(-errno, "cannot create store '%s': %s", cfg->location,
			     strerror(errno));
		goto fail;
	}
	f->dirfd = open(cfg->location, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->dirfd < 0) {
		rc = sfs_err(-errno, "cannot open store '%s': %s", cfg->location, strerror(errno));
		goto fail;
	}
	rc = file_get_bytes(&f->base, FORMAT_KEY, &buf, &n, 4096);
	if (rc == -ENOENT) {
		rc = file_put_bytes(&f->base, FORMAT_KEY, FORMAT_TEXT, strlen(FORMAT_TEXT), 0);
		if (rc < 0) {
			rc = sfs_err(rc, "cannot initialise store '%s': %s", cfg->location,
				     strerror(-rc));
			goto fail;
		}
	} else if (rc < 0) {
		rc = sfs_err(rc, "cannot read '%s/%s': %s", cfg->location, FORMAT_KEY,
			     strerror(-rc));
		goto fail;
	} else if (strncmp(buf, "stagefs 1", 9) != 0) {
		rc = sfs_err(-EPROTO, "store '%s' has an unknown format: %.*s", cfg->location,
			     (int)strcspn(buf, "\n"), (char *)buf);
		goto fail;
	}
	free(buf);
	*out = &f->base;
	return 0;
fail:
	free(buf);
	file_destroy(&f->base);
	return rc;
}
