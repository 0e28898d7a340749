/*
 * fs/publish.c - `stagefs publish MOUNTPOINT NAME`: the daemon's side.  The
 * command sets user.stagefs.publish on MOUNTPOINT/.snapshots to a JSON
 * request {"name", "prefixes", "message"}; the daemon publishes with its
 * own store, index and credentials, and keeps what it is doing (and the last
 * failure's reason) in the user.stagefs.status of .snapshots, which the
 * command polls for its progress bar and prints on failure.
 */
#include "fs/view.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "fs/snapshot.h"

#define MAX_PREFIXES 64

int sfs_snapview_init(struct sfs_fs *fs)
{
	struct sfs_inode *in = calloc(1, sizeof(*in));

	if (!in)
		return -ENOMEM;
	in->view = &sfs_view_snapdir;
	in->hash = sfs_fs_key_hash(SFS_DOT_SNAPSHOTS);
	in->flags = SFS_IN_PINNED;
	pthread_mutex_lock(&fs->lock);
	int rc = sfs_table_insert_locked(fs, in);
	pthread_mutex_unlock(&fs->lock);
	if (rc) {
		free(in);
		return rc;
	}
	in->flags &= (uint8_t)~SFS_IN_TABLE; /* found through fs->snapdir only */
	fs->snapdir = in;
	return 0;
}

static void set_status(struct sfs_fs *fs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_status(struct sfs_fs *fs, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&fs->slock);
	va_start(ap, fmt);
	vsnprintf(fs->publish_status, sizeof(fs->publish_status), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&fs->slock);
}

struct pub {
	struct sfs_fs *fs;
	const char *name;
};

static void progress(void *arg, const char *what, uint64_t done, uint64_t total)
{
	struct pub *p = arg;

	if (total)
		set_status(p->fs, "publishing %s: %s %llu/%llu", p->name, what,
			   (unsigned long long)done, (unsigned long long)total);
	else
		set_status(p->fs, "publishing %s: %s %llu", p->name, what,
			   (unsigned long long)done);
}

/* A member of the request as a new string, or NULL. */
static char *member(const char *req, const char *path)
{
	char *s = NULL;

	return sfs_json_eval("json_extract(?1, ?2)", 2, (const char *const[]){req, path}, &s) == 0
		       ? s
		       : NULL;
}

int sfs_snapview_publish(struct sfs_fs *fs, const char *value, size_t len)
{
	char *req = strndup(value, len), *name = NULL, *msg = NULL, *n = NULL, *head = NULL;
	char *prefixes[MAX_PREFIXES] = {0};
	char why[400] = "";
	long np = 0;
	int rc = 0;

	if (!req)
		return -ENOMEM;
	if (len > 65536 || strlen(req) != len) {
		rc = -EINVAL; /* bounded, and no NUL inside */
		goto out;
	}
	name = member(req, "$.name");
	msg = member(req, "$.message");
	if (sfs_json_eval("json_array_length(?1,'$.prefixes')", 1, (const char *const[]){req},
			  &n) != 0)
		n = NULL;
	np = n ? strtol(n, NULL, 10) : 0;
	if (!name || np < 0 || np > MAX_PREFIXES) {
		snprintf(why, sizeof(why), "a publish request needs a name and at most %d prefixes",
			 MAX_PREFIXES);
		rc = -EINVAL;
		goto out;
	}
	for (long i = 0; i < np; i++) {
		char path[32];
		snprintf(path, sizeof(path), "$.prefixes[%ld]", i);
		prefixes[i] = member(req, path);
		if (!prefixes[i]) {
			snprintf(why, sizeof(why), "prefix %ld is not a string", i);
			rc = -EINVAL;
			goto out;
		}
	}
	pthread_mutex_lock(&fs->publish_lock);
	struct pub pb = {fs, name};
	struct sfs_publish p = {
		.name = name,
		.prefixes = (const char *const *)prefixes,
		.nprefixes = (size_t)np,
		.message = msg,
		.tmpdir = NULL,
		.progress = progress,
		.arg = &pb,
	};
	set_status(fs, "publishing %s", name);
	/* the index as of now, on a connection of its own (the file system's requests go on) */
	struct sfs_index *rix = NULL;
	rc = sfs_index_reader(fs->ix, &rix);
	if (!rc)
		rc = sfs_snap_publish(fs->be, rix, fs->cfg, &p, &head, why, sizeof(why));
	sfs_index_close(rix);
	pthread_mutex_unlock(&fs->publish_lock);
	if (!rc) {
		set_status(fs, "published %s", name);
		pthread_mutex_lock(&fs->slock);
		fs->snap_names_at = 0; /* list afresh */
		/* for `stagefs publish` to print, without loading the manifest back */
		free(fs->published);
		fs->published = head;
		head = NULL;
		pthread_mutex_unlock(&fs->slock);
	}
out:
	if (rc) {
		if (!why[0])
			snprintf(why, sizeof(why), "%s", strerror(-rc));
		set_status(fs, "error: %s", why);
		sfs_log(LOG_WARNING, "cannot publish '%s': %s", name ? name : "?", why);
	}
	for (long i = 0; i < MAX_PREFIXES; i++)
		free(prefixes[i]);
	free(req);
	free(name);
	free(msg);
	free(n);
	free(head);
	return rc;
}
