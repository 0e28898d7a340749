/*
 * tests/unit/test_lowlevel.c - the dispatcher (fs/lowlevel.c) on a real
 * staging tree, with libfuse's request and reply calls replaced by the
 * linker (-Wl,--wrap=...): replies can be made to fail as the kernel makes
 * them fail when a request was interrupted meanwhile, and what the dispatcher
 * answered is recorded.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "common/config.h"
#include "fs/staging.h"
#include "fs/view.h"
#include "index/index.h"

/* ---- libfuse, as the dispatcher sees it ---- */

static struct sfs_fs *the_fs;
static struct fuse_ctx the_ctx;
static volatile int fail_replies; /* reply_open / reply_create / reply_entry answer -ENOENT */
/* what the dispatcher answered, per thread (the race test has two) */
static _Thread_local int last_err;
static _Thread_local struct fuse_entry_param last_entry;
static _Thread_local struct fuse_file_info last_fi;

void *__wrap_fuse_req_userdata(fuse_req_t req);
const struct fuse_ctx *__wrap_fuse_req_ctx(fuse_req_t req);
int __wrap_fuse_reply_err(fuse_req_t req, int err);
int __wrap_fuse_reply_entry(fuse_req_t req, const struct fuse_entry_param *e);
int __wrap_fuse_reply_create(fuse_req_t req, const struct fuse_entry_param *e,
			     const struct fuse_file_info *fi);
int __wrap_fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi);
int __wrap_fuse_reply_attr(fuse_req_t req, const struct stat *attr, double timeout);
int __wrap_fuse_reply_xattr(fuse_req_t req, size_t count);
int __wrap_fuse_reply_buf(fuse_req_t req, const char *buf, size_t size);

void *__wrap_fuse_req_userdata(fuse_req_t req)
{
	return the_fs;
}

const struct fuse_ctx *__wrap_fuse_req_ctx(fuse_req_t req)
{
	return &the_ctx;
}

int __wrap_fuse_reply_err(fuse_req_t req, int err)
{
	last_err = err;
	return 0;
}

int __wrap_fuse_reply_entry(fuse_req_t req, const struct fuse_entry_param *e)
{
	last_entry = *e;
	last_err = 0;
	return fail_replies ? -ENOENT : 0;
}

int __wrap_fuse_reply_create(fuse_req_t req, const struct fuse_entry_param *e,
			     const struct fuse_file_info *fi)
{
	last_entry = *e;
	last_fi = *fi;
	last_err = 0;
	return fail_replies ? -ENOENT : 0;
}

int __wrap_fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi)
{
	last_fi = *fi;
	last_err = 0;
	return fail_replies ? -ENOENT : 0;
}

int __wrap_fuse_reply_attr(fuse_req_t req, const struct stat *attr, double timeout)
{
	last_err = 0;
	return 0;
}

int __wrap_fuse_reply_xattr(fuse_req_t req, size_t count)
{
	last_err = 0;
	return 0;
}

int __wrap_fuse_reply_buf(fuse_req_t req, const char *buf, size_t size)
{
	last_err = 0;
	return 0;
}

/* ---- a mount without a kernel ---- */

struct fx {
	char dir[64];
	struct sfs_config cfg;
	struct sfs_backend *be;
	struct sfs_index *ix;
	struct sfs_fs fs;
	fuse_ino_t table; /* staging/lab/T */
};

static fuse_req_t REQ = (fuse_req_t)(uintptr_t)1;

static fuse_ino_t do_lookup(fuse_ino_t parent, const char *name)
{
	sfs_fs_ops.lookup(REQ, parent, name);
	assert_int_equal(last_err, 0);
	assert_true(last_entry.ino != 0);
	return last_entry.ino;
}

static fuse_ino_t do_mkdir(fuse_ino_t parent, const char *name)
{
	sfs_fs_ops.mkdir(REQ, parent, name, 0755);
	assert_int_equal(last_err, 0);
	return last_entry.ino;
}

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char p[128];

	snprintf(f->dir, sizeof(f->dir), "/tmp/sfs-ll-XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	sfs_config_init(&f->cfg);
	snprintf(p, sizeof(p), "%s/store", f->dir);
	f->cfg.location = strdup(p);
	snprintf(p, sizeof(p), "%s/index.db", f->dir);
	f->cfg.index = strdup(p);
	if (sfs_backend_file_open(&f->cfg, &f->be) || sfs_index_open(f->cfg.index, &f->ix) ||
	    sfs_fs_init(&f->fs, &f->cfg, f->be, f->ix) || sfs_jobs_start(&f->fs))
		return -1;
	the_fs = &f->fs;
	fail_replies = 0;
	fuse_ino_t st = do_lookup(FUSE_ROOT_ID, "staging");
	f->table = do_mkdir(do_mkdir(st, "lab"), "T");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	sfs_jobs_stop(&f->fs);
	sfs_fs_release(&f->fs);
	sfs_index_close(f->ix);
	sfs_backend_free(f->be);
	sfs_config_release(&f->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	free(f);
	return system(cmd) == 0 ? 0 : -1;
}

static struct sfs_stg *stg_of(fuse_ino_t ino)
{
	return (struct sfs_stg *)sfs_inode_of(the_fs, ino);
}

static size_t nhandles(struct sfs_fs *fs)
{
	size_t n = 0;

	for (struct sfs_fh *h = fs->handles; h; h = h->next)
		n++;
	return n;
}

/* A create whose reply the kernel never took leaves no writer, handle or descriptor. */
static void test_create_interrupted(void **state)
{
	struct fx *f = *state;
	struct fuse_file_info fi = {.flags = O_CREAT | O_WRONLY | O_TRUNC};

	sfs_fs_ops.lookup(REQ, f->table, "nothing"); /* the table's descriptor is cached now */
	int fds = open_fds();

	fail_replies = 1;
	sfs_fs_ops.create(REQ, f->table, "rec.h5", 0644, &fi);
	fail_replies = 0;
	assert_int_equal(last_err, 0);
	assert_int_equal(nhandles(&f->fs), 0);
	assert_int_equal(open_fds(), fds);
	/* the name exists (the file was made); its inode is not held for the kernel */
	fuse_ino_t ino = do_lookup(f->table, "rec.h5");
	assert_int_equal(stg_of(ino)->writers, 0);
	assert_int_equal(stg_of(ino)->opens, 0);
	assert_int_equal(stg_of(ino)->base.nlookup, 1);
	/* and it commits: nobody is writing it */
	sfs_fs_ops.setxattr(REQ, ino, SFS_XATTR_COMMIT, "hash", 4, 0);
	assert_int_equal(last_err, 0);
}

/* An open whose reply the kernel never took leaves no writer, handle or descriptor. */
static void test_open_interrupted(void **state)
{
	struct fx *f = *state;
	struct fuse_file_info fi = {.flags = O_CREAT | O_WRONLY};

	sfs_fs_ops.create(REQ, f->table, "chunk", 0644, &fi);
	assert_int_equal(last_err, 0);
	fuse_ino_t ino = last_entry.ino;
	sfs_fs_ops.release(REQ, ino, &last_fi);
	int fds = open_fds();

	struct fuse_file_info ofi = {.flags = O_RDWR};
	fail_replies = 1;
	sfs_fs_ops.open(REQ, ino, &ofi);
	fail_replies = 0;
	assert_int_equal(nhandles(&f->fs), 0);
	assert_int_equal(open_fds(), fds);
	assert_int_equal(stg_of(ino)->writers, 0);
	sfs_fs_ops.setxattr(REQ, ino, SFS_XATTR_COMMIT, "hash", 4, 0);
	assert_int_equal(last_err, 0);
}

/* An entry the kernel never took is not counted as its reference. */
static void test_entry_interrupted(void **state)
{
	struct fx *f = *state;

	sfs_fs_ops.mkdir(REQ, f->table, "sub", 0755);
	fuse_ino_t ino = last_entry.ino;
	assert_int_equal(stg_of(ino)->base.nlookup, 1);
	fail_replies = 1;
	sfs_fs_ops.lookup(REQ, f->table, "sub");
	fail_replies = 0;
	assert_int_equal(stg_of(ino)->base.nlookup, 1);
}

/* One errno per view for every way of asking to change something read-only. */
static void test_readonly_answers_agree(void **state)
{
	struct fx *f = *state;
	fuse_ino_t canon = do_lookup(FUSE_ROOT_ID, "_schema");
	struct fuse_file_info fi = {.flags = O_WRONLY};
	struct stat st = {.st_mode = 0600};

	sfs_fs_ops.access(REQ, canon, W_OK);
	assert_int_equal(last_err, EROFS);
	sfs_fs_ops.open(REQ, canon, &fi);
	assert_int_equal(last_err, EROFS);
	sfs_fs_ops.setattr(REQ, canon, &st, FUSE_SET_ATTR_MODE, NULL);
	assert_int_equal(last_err, EROFS);
	sfs_fs_ops.setxattr(REQ, canon, "user.x", "1", 1, 0);
	assert_int_equal(last_err, EROFS);
	sfs_fs_ops.mkdir(REQ, canon, "x", 0755);
	assert_int_equal(last_err, EROFS);
	sfs_fs_ops.access(REQ, canon, R_OK);
	assert_int_equal(last_err, 0);
	sfs_fs_ops.access(REQ, f->table, W_OK);
	assert_int_equal(last_err, 0);
	sfs_fs_ops.access(REQ, FUSE_ROOT_ID, W_OK);
	assert_int_equal(last_err, EROFS);
	/* a rename out of staging into a read-only tree: that tree's answer */
	sfs_fs_ops.rename(REQ, f->table, "x", canon, "x", 0);
	assert_int_equal(last_err, EROFS);

	/* receipts: ours, EPERM from every entry point; unlink is allowed */
	struct fuse_file_info cfi = {.flags = O_CREAT | O_WRONLY};
	sfs_fs_ops.create(REQ, f->table, "r", 0644, &cfi);
	fuse_ino_t r = last_entry.ino;
	sfs_fs_ops.release(REQ, r, &last_fi);
	sfs_fs_ops.setxattr(REQ, r, SFS_XATTR_COMMIT, "hash", 4, 0);
	assert_int_equal(last_err, 0);
	fuse_ino_t rdir = do_lookup(f->table, SFS_RECEIPTS);
	fuse_ino_t rc = do_lookup(rdir, "r.json");
	sfs_fs_ops.access(REQ, rc, W_OK);
	assert_int_equal(last_err, EPERM);
	sfs_fs_ops.open(REQ, rc, &fi);
	assert_int_equal(last_err, EPERM);
	sfs_fs_ops.setattr(REQ, rc, &st, FUSE_SET_ATTR_MODE, NULL);
	assert_int_equal(last_err, EPERM);
	sfs_fs_ops.setxattr(REQ, rc, "user.x", "1", 1, 0);
	assert_int_equal(last_err, EPERM);
	sfs_fs_ops.removexattr(REQ, rc, "user.x");
	assert_int_equal(last_err, EPERM);
	sfs_fs_ops.mkdir(REQ, rdir, "x", 0755);
	assert_int_equal(last_err, EPERM);
	sfs_fs_ops.access(REQ, rdir, W_OK);
	assert_int_equal(last_err, 0);
	sfs_fs_ops.unlink(REQ, rdir, "r.json");
	assert_int_equal(last_err, 0);
	/* and the committed file's inode: gone, whatever is asked */
	sfs_fs_ops.access(REQ, r, R_OK);
	assert_int_equal(last_err, ENOENT);
	sfs_fs_ops.removexattr(REQ, r, "user.x");
	assert_int_equal(last_err, ENOENT);
	sfs_fs_ops.setattr(REQ, r, &st, FUSE_SET_ATTR_MODE, NULL);
	assert_int_equal(last_err, ENOENT);
}

struct racer {
	fuse_ino_t ino;
	int stop; /* atomic */
	int reads;
};

static void *read_status(void *arg)
{
	struct racer *r = arg;

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		sfs_fs_ops.getxattr(REQ, r->ino, SFS_XATTR_STATUS, 0);
		sfs_fs_ops.getattr(REQ, r->ino, NULL);
		r->reads++;
	}
	return NULL;
}

/*
 * An entry's status and view are read while a commit changes them (a
 * thread sanitizer build, `make tsan`, reports any access without its lock).
 */
static void test_status_while_committing(void **state)
{
	struct fx *f = *state;
	struct fuse_file_info fi = {.flags = O_CREAT | O_WRONLY};
	pthread_t t;

	for (int i = 0; i < 20; i++) {
		char name[16];
		snprintf(name, sizeof(name), "r%d", i);
		sfs_fs_ops.create(REQ, f->table, name, 0644, &fi);
		assert_int_equal(last_err, 0);
		struct racer r = {.ino = last_entry.ino};
		sfs_fs_ops.release(REQ, r.ino, &last_fi);
		if (!getenv("NORACE"))
			assert_int_equal(pthread_create(&t, NULL, read_status, &r), 0);
		sfs_fs_ops.setxattr(REQ, r.ino, SFS_XATTR_COMMIT, "hash", 4, 0);
		__atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
		if (!getenv("NORACE"))
			pthread_join(t, NULL);
		if (last_err)
			fprintf(stderr, "iteration %d: commit gave %d\n", i, last_err);
		assert_int_equal(last_err, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_interrupted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_interrupted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entry_interrupted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_answers_agree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_while_committing, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
