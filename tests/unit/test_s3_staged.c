/*
 * tests/unit/test_s3_staged.c - the S3 backend's staging side against a local
 * s3rver (s3_helpers.h): staged sync, promote of files and trees, staged
 * rename and unlink, multipart uploads, a server-side copy that fails cleanly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "backend/s3_client.h"
#include "common/config.h"
#include "tests/unit/s3_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void write_local(int dirfd, const char *rel, const void *data, size_t n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s", rel);
	for (char *p = path; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		(void)mkdirat(dirfd, path, 0700);
		*p = '/';
	}
	int fd = openat(dirfd, rel, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
}

/* staged_sync through a write-only fd, the way the FUSE layer may hold it */
static void sync_local(struct sfs_backend *b, int dirfd, const char *rel)
{
	int fd = openat(dirfd, rel, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(sfs_backend_staged_sync(b, rel, fd, 1), 0);
	close(fd);
}

static void t_stage_promote_tree(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store1");
	struct sfs_bstat st;
	struct names nm;
	void *buf = NULL;
	size_t n = 0;
	int dfd = sfs_backend_staging_dir(b);
	assert_true(dfd >= 0);

	write_local(dfd, "lab/T/run1/a.bin", "AAAA", 4);
	write_local(dfd, "lab/T/run1/sub/b.bin", "BBBBBB", 6);
	sync_local(b, dfd, "lab/T/run1/a.bin");
	sync_local(b, dfd, "lab/T/run1/sub/b.bin");
	assert_int_equal(sfs_backend_stat(b, "_staging/lab/T/run1/sub/b.bin", &st), 0);
	assert_int_equal(st.size, 6);

	assert_int_equal(sfs_backend_promote(b, "lab/T/run1", "_schema/lab/T/k=1/run_tok", 0), 0);
	memset(&nm, 0, sizeof(nm));
	assert_int_equal(sfs_backend_list(b, "_schema/lab/T/k=1/run_tok", count_cb, &nm), 0);
	assert_int_equal(nm.n_files, 1);
	assert_int_equal(nm.n_dirs, 1);
	assert_int_equal(
		sfs_backend_get_bytes(b, "_schema/lab/T/k=1/run_tok/sub/b.bin", &buf, &n, 100), 0);
	assert_int_equal(n, 6);
	assert_memory_equal(buf, "BBBBBB", 6);
	free(buf);
	/* the staged entry is gone, remotely and in the local mirror */
	assert_int_equal(sfs_backend_stat(b, "_staging/lab/T/run1", &st), -ENOENT);
	assert_true(faccessat(dfd, "lab/T/run1", F_OK, AT_SYMLINK_NOFOLLOW) != 0);

	/* NOREPLACE onto an existing tree: -EEXIST, staged entry untouched */
	write_local(dfd, "lab/T/run2/a.bin", "CCCC", 4);
	sync_local(b, dfd, "lab/T/run2/a.bin");
	assert_int_equal(
		sfs_backend_promote(b, "lab/T/run2", "_schema/lab/T/k=1/run_tok", SFS_NOREPLACE),
		-EEXIST);
	assert_int_equal(sfs_backend_stat(b, "_staging/lab/T/run2/a.bin", &st), 0);
	assert_int_equal(faccessat(dfd, "lab/T/run2/a.bin", F_OK, 0), 0);
	/* NOREPLACE of a single file onto a new key works, onto an existing one fails */
	assert_int_equal(sfs_backend_promote(b, "lab/T/run2/a.bin", "_hash/lab/xyz", SFS_NOREPLACE),
			 0);
	write_local(dfd, "lab/T/run3", "CCCC", 4);
	sync_local(b, dfd, "lab/T/run3");
	assert_int_equal(sfs_backend_promote(b, "lab/T/run3", "_hash/lab/xyz", SFS_NOREPLACE),
			 -EEXIST);
	assert_int_equal(sfs_backend_promote(b, "lab/T/none", "_hash/lab/zzz", 0), -ENOENT);
	close(dfd);
	free_store(b);
}

/* HEAD of staged rel in store1's bucket prefix: what the server holds, not the local cache. */
static int on_server(const char *rel)
{
	struct sfs_s3_client *c = client_for(g_endpoint, 1);
	char key[512];

	snprintf(key, sizeof(key), "store1/_staging/%s", rel);
	int rc = sfs_s3_head(c, key, NULL);
	sfs_s3_client_free(c);
	return rc;
}

static void t_staged_rename_unlink(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store1");
	int dfd = sfs_backend_staging_dir(b);
	assert_true(dfd >= 0);

	write_local(dfd, "s/T/f1", "12345", 5);
	sync_local(b, dfd, "s/T/f1");
	assert_int_equal(sfs_backend_staged_rename(b, "s/T/f1", "s/T/f2"), 0);
	assert_int_equal(on_server("s/T/f1"), -ENOENT);
	assert_int_equal(on_server("s/T/f2"), 0);
	/* directories */
	write_local(dfd, "s/T/d/x", "x", 1);
	write_local(dfd, "s/T/d/y/z", "zz", 2);
	sync_local(b, dfd, "s/T/d/x");
	sync_local(b, dfd, "s/T/d/y/z");
	assert_int_equal(sfs_backend_staged_rename(b, "s/T/d", "s/T/e"), 0);
	assert_int_equal(on_server("s/T/d/x"), -ENOENT);
	assert_int_equal(on_server("s/T/d/y/z"), -ENOENT);
	assert_int_equal(on_server("s/T/e/x"), 0);
	assert_int_equal(on_server("s/T/e/y/z"), 0);
	assert_int_equal(sfs_backend_staged_unlink(b, "s/T/e", 1), 0);
	assert_int_equal(on_server("s/T/e/x"), -ENOENT);
	assert_int_equal(on_server("s/T/e/y/z"), -ENOENT);
	assert_int_equal(sfs_backend_staged_unlink(b, "s/T/f2", 0), 0);
	assert_int_equal(on_server("s/T/f2"), -ENOENT);
	/* never uploaded: nothing to do */
	assert_int_equal(sfs_backend_staged_unlink(b, "s/T/never", 0), 0);
	assert_int_equal(sfs_backend_staged_rename(b, "s/T/never", "s/T/never2"), 0);
	close(dfd);
	free_store(b);
}

/*
 * Write-back: files the store does not hold as the cache has them (never
 * uploaded, or changed since) go from the cache straight to the canonical key.
 */
static void t_promote_from_cache(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store1");
	struct sfs_bstat st;
	struct sfs_bfile *f = NULL;
	char buf[16];
	int dfd = sfs_backend_staging_dir(b);
	assert_true(dfd >= 0);

	/* a file never uploaded is staged all the same (the cache is part of staging) */
	write_local(dfd, "pc/T/one", "cached!", 7);
	assert_int_equal(on_server("pc/T/one"), -ENOENT);
	assert_int_equal(sfs_backend_stat(b, "_staging/pc/T/one", &st), 0);
	assert_int_equal(st.size, 7);
	assert_int_equal(sfs_backend_promote(b, "pc/T/one", "_schema/pc/T/k=1/one", SFS_NOREPLACE),
			 0);
	assert_int_equal(sfs_backend_open_obj(b, "_schema/pc/T/k=1/one", &f), 0);
	assert_int_equal(sfs_backend_pread(b, f, buf, sizeof(buf), 0), 7);
	assert_memory_equal(buf, "cached!", 7);
	sfs_backend_close_obj(b, f);
	assert_int_equal(on_server("pc/T/one"), -ENOENT);
	assert_int_equal(faccessat(dfd, "pc/T/one", F_OK, 0), -1);
	/* no-replace holds for a put too */
	write_local(dfd, "pc/T/two", "other", 5);
	assert_int_equal(sfs_backend_promote(b, "pc/T/two", "_schema/pc/T/k=1/one", SFS_NOREPLACE),
			 -EEXIST);
	assert_int_equal(faccessat(dfd, "pc/T/two", F_OK, 0), 0);
	/* a tree: one file uploaded long ago then changed, one never uploaded */
	write_local(dfd, "pc/T/tree/a", "old", 3);
	sync_local(b, dfd, "pc/T/tree/a");
	write_local(dfd, "pc/T/tree/a", "newer", 5);
	write_local(dfd, "pc/T/tree/sub/b", "bb", 2);
	assert_int_equal(sfs_backend_promote(b, "pc/T/tree", "_schema/pc/T/k=1/tree",
					     SFS_NOREPLACE | SFS_KEEP_SOURCE),
			 0);
	assert_int_equal(sfs_backend_open_obj(b, "_schema/pc/T/k=1/tree/a", &f), 0);
	assert_int_equal(sfs_backend_pread(b, f, buf, sizeof(buf), 0), 5);
	assert_memory_equal(buf, "newer", 5);
	sfs_backend_close_obj(b, f);
	assert_int_equal(sfs_backend_stat(b, "_schema/pc/T/k=1/tree/sub/b", &st), 0);
	assert_int_equal(st.size, 2);
	/* kept: the caller removes what is staged once it has recorded the promotion */
	assert_int_equal(on_server("pc/T/tree/a"), 0);
	assert_int_equal(sfs_backend_staged_remove(b, "pc/T/tree"), 0);
	assert_int_equal(on_server("pc/T/tree/a"), -ENOENT);
	assert_int_equal(faccessat(dfd, "pc/T/tree", F_OK, 0), -1);
	close(dfd);
	free_store(b);
}

static void t_multipart(void **state)
{
	(void)state;
	require_server();
	size_t size = 20u << 20;
	unsigned char *data = malloc(size), *out = malloc(size);
	struct sfs_bstat st;
	struct sfs_bfile *f = NULL;

	setenv("SFS_S3_PART_SIZE", "5242880", 1);
	struct sfs_backend *b = open_store("store1");
	unsetenv("SFS_S3_PART_SIZE");
	int dfd = sfs_backend_staging_dir(b);
	assert_true(dfd >= 0);
	for (size_t i = 0; i < size; i++)
		data[i] = (unsigned char)((i >> 3) ^ (i * 13));
	write_local(dfd, "mp/T/big.bin", data, size);
	sync_local(b, dfd, "mp/T/big.bin");
	assert_int_equal(sfs_backend_stat(b, "_staging/mp/T/big.bin", &st), 0);
	assert_int_equal(st.size, size);
	assert_int_equal(sfs_backend_promote(b, "mp/T/big.bin", "_hash/mp/big", 0), 0);
	assert_int_equal(sfs_backend_open_obj(b, "_hash/mp/big", &f), 0);
	assert_int_equal(sfs_backend_pread(b, f, out, size, 0), (ssize_t)size);
	assert_memory_equal(out, data, size);
	sfs_backend_close_obj(b, f);

	/* the client reports the MD5 of the whole file */
	struct sfs_s3_opts o = {.endpoint = g_endpoint,
				.bucket = BUCKET,
				.path_style = 1,
				.access_key = "S3RVER",
				.secret_key = "S3RVER",
				.part_size = 5u << 20};
	struct sfs_s3_client *c = NULL;
	char md5[33];
	assert_int_equal(sfs_s3_client_new(&o, &c), 0);
	write_local(dfd, "mp/T/again.bin", data, size); /* promote removed big.bin locally */
	int fd = openat(dfd, "mp/T/again.bin", O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(sfs_s3_put_fd(c, "mp-direct", fd, size, md5, 0), 0);
	assert_int_equal(strlen(md5), 32);
	/* a file that is shorter than announced is never uploaded as if complete */
	assert_int_not_equal(sfs_s3_put_fd(c, "mp-short", fd, size + 10, NULL, 0), 0);
	assert_int_equal(sfs_s3_head(c, "mp-short", NULL), -ENOENT);
	close(fd);
	sfs_s3_client_free(c);
	close(dfd);
	free(data);
	free(out);
	free_store(b);
}

static int journal_says_stored(void *arg, const char *rel, const struct stat *st)
{
	(void)arg, (void)rel, (void)st;
	return 1;
}

static void journal_record_nothing(void *arg, const char *rel, int fd, const struct stat *st)
{
	(void)arg, (void)rel, (void)fd, (void)st;
}

static void t_copy_above_threshold_fails_cleanly(void **state)
{
	(void)state;
	require_server();
	struct sfs_bstat st;
	/* s3rver has no UploadPartCopy (501): the failure must surface, nothing half-written */
	setenv("SFS_S3_COPY_THRESHOLD", "1", 1);
	struct sfs_backend *b = open_store("store1");
	unsetenv("SFS_S3_COPY_THRESHOLD");
	/* the index says the staged object holds the file as it is: the promotion copies it */
	static const struct sfs_staged_journal j = {.stored = journal_says_stored,
						    .record = journal_record_nothing};
	b->ops->set_journal(b, &j);
	int dfd = sfs_backend_staging_dir(b);
	write_local(dfd, "cp/T/f", "0123456789", 10);
	sync_local(b, dfd, "cp/T/f");
	assert_int_not_equal(sfs_backend_promote(b, "cp/T/f", "_hash/cp/f", 0), 0);
	assert_int_equal(sfs_backend_stat(b, "_hash/cp/f", &st), -ENOENT);
	assert_int_equal(sfs_backend_stat(b, "_staging/cp/T/f", &st), 0);
	assert_int_equal(faccessat(dfd, "cp/T/f", F_OK, 0), 0);
	close(dfd);
	free_store(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_stage_promote_tree),
		cmocka_unit_test(t_staged_rename_unlink),
		cmocka_unit_test(t_promote_from_cache),
		cmocka_unit_test(t_multipart),
		cmocka_unit_test(t_copy_above_threshold_fails_cleanly),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
