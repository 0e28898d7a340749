/* fs/inode.c - the inode table, staging paths, status text and the invalidation thread. */
#include "fs/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

struct sfs_notify {
	fuse_ino_t parent;
	fuse_ino_t child; /* 0: inval_entry; else notify_delete */
	char *name;
	struct sfs_notify *next;
};

uint64_t sfs_fs_key_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static int table_grow(struct sfs_fs *fs)
{
	size_t nsize = fs->table_size ? fs->table_size * 2 : 1024;
	struct sfs_inode **nt = calloc(nsize, sizeof(*nt));

	if (!nt)
		return -ENOMEM;
	for (size_t i = 0; i < fs->table_size; i++) {
		struct sfs_inode *in = fs->table[i], *next;
		for (; in; in = next) {
			next = in->next;
			size_t b = sfs_fs_key_hash(in->tkey) & (nsize - 1);
			in->next = nt[b];
			nt[b] = in;
		}
	}
	free(fs->table);
	fs->table = nt;
	fs->table_size = nsize;
	return 0;
}

struct sfs_inode *sfs_fs_table_find_locked(struct sfs_fs *fs, const char *tkey)
{
	if (!fs->table_size)
		return NULL;
	for (struct sfs_inode *in = fs->table[sfs_fs_key_hash(tkey) & (fs->table_size - 1)]; in;
	     in = in->next)
		if (strcmp(in->tkey, tkey) == 0)
			return in;
	return NULL;
}

int sfs_fs_table_insert_locked(struct sfs_fs *fs, struct sfs_inode *in)
{
	if (fs->table_count + 1 > fs->table_size / 2) {
		int rc = table_grow(fs);
		if (rc)
			return rc;
	}
	size_t b = sfs_fs_key_hash(in->tkey) & (fs->table_size - 1);
	in->next = fs->table[b];
	fs->table[b] = in;
	fs->table_count++;
	return 0;
}

void sfs_fs_table_remove_locked(struct sfs_fs *fs, struct sfs_inode *in)
{
	if (!in->tkey || !fs->table_size)
		return;
	struct sfs_inode **p = &fs->table[sfs_fs_key_hash(in->tkey) & (fs->table_size - 1)];
	for (; *p; p = &(*p)->next) {
		if (*p == in) {
			*p = in->next;
			fs->table_count--;
			break;
		}
	}
	free(in->tkey);
	in->tkey = NULL;
	in->next = NULL;
}

void sfs_fs_table_retire_locked(struct sfs_fs *fs, struct sfs_inode *in)
{
	char k[40];

	sfs_fs_table_remove_locked(fs, in);
	snprintf(k, sizeof(k), "x:%p", (void *)in);
	in->tkey = strdup(k);
	/* on ENOMEM the inode leaks at unmount rather than being found again */
	if (in->tkey && sfs_fs_table_insert_locked(fs, in) < 0) {
		free(in->tkey);
		in->tkey = NULL;
	}
}

struct sfs_inode *sfs_fs_find_staging_locked(struct sfs_fs *fs, dev_t dev, ino_t ino)
{
	char k[64];

	snprintf(k, sizeof(k), "s:%llx:%llx", (unsigned long long)dev, (unsigned long long)ino);
	return sfs_fs_table_find_locked(fs, k);
}

void sfs_inode_set_status(struct sfs_inode *in, const char *fmt, ...)
{
	char *s = NULL;

	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		if (vasprintf(&s, fmt, ap) < 0)
			s = NULL;
		va_end(ap);
	}
	pthread_mutex_lock(&in->hlock);
	free(in->status);
	in->status = s;
	pthread_mutex_unlock(&in->hlock);
}

/*
 * The fd's name was unlinked but the file lives on under another name (zarr 3
 * writes a temp file, links it to its key and unlinks the temp): find that name
 * in the same directory and point the fd at it.  dup3 swaps the descriptor
 * atomically under threads using in->fd.  0, or -ENOENT when no name is found.
 */
static int renew_fd(struct sfs_inode *in, const char *deleted_path)
{
	char *dir = strdup(deleted_path), *slash;
	int rc = -ENOENT;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	int dfd = slash ? open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;
	while (d && rc == -ENOENT && (de = readdir(d)) != NULL) {
		struct stat st;
		if (de->d_ino != in->ino ||
		    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    st.st_dev != in->dev || st.st_ino != in->ino)
			continue;
		int nfd = openat(dfd, de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (nfd >= 0) {
			rc = dup3(nfd, in->fd, O_CLOEXEC) < 0 ? -errno : 0;
			close(nfd);
		}
	}
	if (d)
		closedir(d);
	else if (dfd >= 0)
		close(dfd);
	free(dir);
	return rc;
}

static int fd_path(struct sfs_inode *in, char *buf, size_t len)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", in->fd);
	ssize_t n = readlink(proc, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return (int)n;
}

int sfs_fs_staging_rel(struct sfs_fs *fs, struct sfs_inode *in, char **out)
{
	char buf[PATH_MAX + 1];
	int n;

	if (in->kind != SFS_IK_STAGING)
		return -EINVAL;
	if (in == fs->staging) {
		*out = strdup("");
		return *out ? 0 : -ENOMEM;
	}
	n = fd_path(in, buf, sizeof(buf));
	if (n > 10 && strcmp(buf + n - 10, " (deleted)") == 0) {
		buf[n - 10] = '\0';
		struct stat st;
		if (fstatat(in->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ||
		    st.st_nlink == 0 || renew_fd(in, buf) != 0)
			return -ENOENT;
		n = fd_path(in, buf, sizeof(buf));
	}
	if (n < 0)
		return n;
	if (strncmp(buf, fs->staging_real, fs->staging_real_len) != 0 ||
	    buf[fs->staging_real_len] != '/')
		return -ENOENT; /* moved out of staging (committed) */
	*out = strdup(buf + fs->staging_real_len + 1);
	return *out ? 0 : -ENOMEM;
}

static void *notifier_main(void *arg)
{
	struct sfs_fs *fs = arg;

	pthread_mutex_lock(&fs->nlock);
	for (;;) {
		while (!fs->nqueue && !fs->nstop)
			pthread_cond_wait(&fs->ncond, &fs->nlock);
		if (!fs->nqueue && fs->nstop)
			break;
		struct sfs_notify *n = fs->nqueue;
		fs->nqueue = n->next;
		pthread_mutex_unlock(&fs->nlock);
		int rc = fuse_lowlevel_notify_inval_entry(fs->se, n->parent, n->name,
							  strlen(n->name));
		if (rc && rc != -ENOENT)
			sfs_log(LOG_DEBUG, "cannot invalidate '%s': %s", n->name, strerror(-rc));
		free(n->name);
		free(n);
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

void sfs_fs_notify_entry(struct sfs_fs *fs, fuse_ino_t parent, const char *name)
{
	sfs_fs_notify_drop(fs, parent, 0, name);
}

void sfs_fs_notify_drop(struct sfs_fs *fs, fuse_ino_t parent, fuse_ino_t child, const char *name)
{
	struct sfs_notify *n = calloc(1, sizeof(*n));

	if (!n)
		return;
	n->parent = parent;
	n->child = child;
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
		pthread_cond_signal(&fs->ncond);
	}
	pthread_mutex_unlock(&fs->nlock);
	if (n) {
		free(n->name);
		free(n);
	}
}
