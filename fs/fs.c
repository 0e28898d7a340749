/* fs/fs.c - setting up and tearing down the mount's state (see fs.h). */
#include "fs/fs.h"

#include <errno.h>
#include <string.h>

#include "fs/cache.h"
#include "fs/staging.h"
#include "fs/view.h"

int sfs_fs_init(struct sfs_fs *fs, struct sfs_config *cfg, struct sfs_backend *be,
		struct sfs_index *ix)
{
	int rc;

	memset(fs, 0, sizeof(*fs));
	fs->cfg = cfg;
	fs->be = be;
	fs->ix = ix;
	fs->staging_fd = -1;
	fs->read_only = cfg->read_only;
	fs->timeout = 1.0;
	clock_gettime(CLOCK_REALTIME, &fs->mount_time);
	pthread_mutex_init(&fs->lock, NULL);
	pthread_mutex_init(&fs->hlock, NULL);
	pthread_mutex_init(&fs->nlock, NULL);
	pthread_cond_init(&fs->ncond, NULL);
	pthread_cond_init(&fs->nsent, NULL);
	pthread_mutex_init(&fs->slock, NULL);
	pthread_mutex_init(&fs->publish_lock, NULL);
	fs->root.view = &sfs_view_root;
	fs->root.flags = SFS_IN_PINNED;
	/* past max_inodes staging (and snapshot file) inodes, idle ones are reclaimed down to 3/4 */
	fs->inode_high = cfg->max_inodes;
	fs->inode_low = cfg->max_inodes / 4 * 3;

	if (cfg->snapshot) {
		/* a published snapshot: its manifest is all the mount needs of the store */
		fs->read_only = 1;
		return sfs_snapview_mount(fs, cfg->snapshot);
	}
	sfs_stg_io_init();
	sfs_stg_sync_init(fs); /* before the backend's staging dir: it reconciles with it */
	rc = sfs_stg_init(fs);
	if (!rc)
		rc = sfs_cache_init(fs);
	if (!rc)
		rc = sfs_canon_init(fs);
	if (!rc)
		rc = sfs_snapview_init(fs);
	return rc;
}

void sfs_fs_release(struct sfs_fs *fs)
{
	sfs_fs_stop_notifier(fs);
	/* handles the kernel never released: a RELEASE sent just before an unmount goes unread */
	for (;;) {
		pthread_mutex_lock(&fs->hlock);
		struct sfs_fh *h = fs->handles;
		pthread_mutex_unlock(&fs->hlock);
		if (!h)
			break;
		h->view->release(fs, h);
	}
	sfs_cache_release(fs);
	sfs_table_free_all(fs);
	fs->staging = NULL;
	fs->snapdir = NULL;
	sfs_snapview_release(fs);
	sfs_stg_release(fs);
	pthread_mutex_destroy(&fs->slock);
	pthread_mutex_destroy(&fs->publish_lock);
	pthread_mutex_destroy(&fs->lock);
	pthread_mutex_destroy(&fs->hlock);
	pthread_mutex_destroy(&fs->nlock);
	pthread_cond_destroy(&fs->ncond);
	pthread_cond_destroy(&fs->nsent);
}
