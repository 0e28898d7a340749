/* tests/unit/test_backend_file.c - the file backend and recovery of commit intents. */
#include <errno.h>
#include <fcntl.h>
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
#include "common/log.h"
#include "fs/fs.h"
#include "index/index.h"

struct fx {
	char dir[64];
	char store[128];
	struct sfs_config cfg;
	struct sfs_backend *be;
};

static void write_file(const char *path, const char *data)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(data, f);
	fclose(f);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/sfs-file-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->store, sizeof(f->store), "%s/store", f->dir);
	sfs_config_init(&f->cfg);
	f->cfg.location = strdup(f->store);
	if (sfs_backend_file_open(&f->cfg, &f->be) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	sfs_backend_free(f->be);
	sfs_config_release(&f->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	free(f);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_marker_and_foreign_store(void **state)
{
	struct fx *f = *state;
	char p[256];
	void *buf = NULL;
	size_t n = 0;
	struct sfs_backend *b2 = NULL;

	assert_int_equal(sfs_backend_get_bytes(f->be, ".stagefs/format", &buf, &n, 100), 0);
	assert_memory_equal(buf, "stagefs 1\n", 10);
	free(buf);
	snprintf(p, sizeof(p), "%s/.stagefs/format", f->store);
	write_file(p, "something else 7\n");
	int lvl = sfs_log_level;
	sfs_log_level = -1;
	assert_int_equal(sfs_backend_file_open(&f->cfg, &b2), -EPROTO);
	sfs_log_level = lvl;
}

static void test_put_get_stat_list(void **state)
{
	struct fx *f = *state;
	struct sfs_bstat st;
	void *buf = NULL;
	size_t n = 0;

	assert_int_equal(sfs_backend_put_bytes(f->be, "_snapshots/a/manifest", "abc", 3, 0), 0);
	assert_int_equal(
		sfs_backend_put_bytes(f->be, "_snapshots/a/manifest", "x", 1, SFS_NOREPLACE),
		-EEXIST);
	assert_int_equal(sfs_backend_get_bytes(f->be, "_snapshots/a/manifest", &buf, &n, 100), 0);
	assert_int_equal(n, 3);
	free(buf);
	assert_int_equal(sfs_backend_get_bytes(f->be, "_snapshots/a/manifest", &buf, &n, 2),
			 -EFBIG);
	assert_int_equal(sfs_backend_stat(f->be, "_snapshots/a/manifest", &st), 0);
	assert_int_equal(st.size, 3);
	assert_true(S_ISREG(st.mode));
	assert_int_equal(sfs_backend_stat(f->be, "_snapshots/a", &st), 0);
	assert_true(S_ISDIR(st.mode));
	assert_int_equal(sfs_backend_stat(f->be, "_snapshots/none", &st), -ENOENT);
	assert_int_equal(sfs_backend_remove(f->be, "_snapshots"), 0);
	assert_int_equal(sfs_backend_stat(f->be, "_snapshots", &st), -ENOENT);
}

static void test_symlinks_never_escape(void **state)
{
	struct fx *f = *state;
	char p[256], target[256];
	struct sfs_bstat st;
	struct sfs_bfile *h = NULL;

	/* a symlink inside the store pointing outside: never followed */
	snprintf(target, sizeof(target), "%s/secret", f->dir);
	write_file(target, "secret");
	snprintf(p, sizeof(p), "%s/_schema", f->store);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/_schema/link", f->store);
	assert_int_equal(symlink(target, p), 0);
	assert_int_not_equal(sfs_backend_open_obj(f->be, "_schema/link", &h), 0);
	assert_int_not_equal(sfs_backend_stat(f->be, "_schema/link", &st), 0);
	/* a symlinked directory in the middle of a key */
	snprintf(p, sizeof(p), "%s/_schema/dirlink", f->store);
	assert_int_equal(symlink(f->dir, p), 0);
	assert_int_not_equal(sfs_backend_open_obj(f->be, "_schema/dirlink/secret", &h), 0);
	assert_int_not_equal(sfs_backend_put_bytes(f->be, "_schema/dirlink/x", "a", 1, 0), 0);
	snprintf(p, sizeof(p), "%s/x", f->dir);
	assert_int_equal(access(p, F_OK), -1);
	/* ".." cannot climb out */
	assert_int_not_equal(sfs_backend_open_obj(f->be, "../secret", &h), 0);
	assert_int_not_equal(sfs_backend_stat(f->be, "_schema/../../secret", &st), 0);
}

static void test_promote_noreplace(void **state)
{
	struct fx *f = *state;
	char p[256];
	struct sfs_bstat st;
	int dfd = sfs_backend_staging_dir(f->be);

	assert_true(dfd >= 0);
	close(dfd);
	snprintf(p, sizeof(p), "%s/_staging/lab", f->store);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/_staging/lab/a", f->store);
	write_file(p, "one");
	snprintf(p, sizeof(p), "%s/_staging/lab/b", f->store);
	write_file(p, "two");
	assert_int_equal(sfs_backend_promote(f->be, "lab/a", "_hash/lab/x/y/h", SFS_NOREPLACE), 0);
	assert_int_equal(sfs_backend_stat(f->be, "_hash/lab/x/y/h", &st), 0);
	assert_int_equal(st.size, 3);
	assert_int_equal(sfs_backend_stat(f->be, "_staging/lab/a", &st), -ENOENT);
	/* the destination exists: nothing moves, nothing is replaced */
	assert_int_equal(sfs_backend_promote(f->be, "lab/b", "_hash/lab/x/y/h", SFS_NOREPLACE),
			 -EEXIST);
	assert_int_equal(sfs_backend_stat(f->be, "_staging/lab/b", &st), 0);
	assert_int_equal(sfs_backend_stat(f->be, "_hash/lab/x/y/h", &st), 0);
	assert_int_equal(st.size, 3);
	/* a directory tree moves whole */
	snprintf(p, sizeof(p), "%s/_staging/lab/d", f->store);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/_staging/lab/d/c", f->store);
	write_file(p, "c");
	assert_int_equal(sfs_backend_promote(f->be, "lab/d", "_schema/lab/T/id=1/f_tok", 0), 0);
	assert_int_equal(sfs_backend_stat(f->be, "_schema/lab/T/id=1/f_tok/c", &st), 0);
}

/* Recovery: an intent whose entry moved is finished; one whose entry is still staged is undone. */
static void test_recover_intents(void **state)
{
	struct fx *f = *state;
	char p[256], ipath[256];
	struct sfs_index *ix = NULL;
	char *json = NULL;
	int64_t n = 0;

	snprintf(ipath, sizeof(ipath), "%s/index.db", f->dir);
	assert_int_equal(sfs_index_open(ipath, &ix), 0);
	int dfd = sfs_backend_staging_dir(f->be);
	close(dfd);
	snprintf(p, sizeof(p), "%s/_staging/lab", f->store);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/_staging/lab/moved", f->store);
	write_file(p, "moved");
	snprintf(p, sizeof(p), "%s/_staging/lab/kept", f->store);
	write_file(p, "kept");

	struct sfs_job a = {.staging = strdup("lab/moved"),
			    .canonical = strdup("_hash/lab/m"),
			    .addressing = strdup("hash"),
			    .metadata = strdup("{\"size\":5}"),
			    .receipt_dir = strdup("lab"),
			    .receipt_name = strdup("moved.json")};
	struct sfs_job b = {.staging = strdup("lab/kept"),
			    .canonical = strdup("_hash/lab/k"),
			    .addressing = strdup("hash"),
			    .metadata = strdup("{\"size\":4}"),
			    .receipt_dir = strdup("lab"),
			    .receipt_name = strdup("kept.json")};
	assert_int_equal(sfs_index_job_begin(ix, &a), 0);
	assert_int_equal(sfs_index_job_begin(ix, &b), 0);
	/* the crash came after the move of a and before the move of b */
	assert_int_equal(sfs_backend_promote(f->be, "lab/moved", "_hash/lab/m", SFS_NOREPLACE), 0);

	int lvl = sfs_log_level;
	sfs_log_level = -1;
	assert_int_equal(sfs_recover(f->be, ix), 0);
	sfs_log_level = lvl;
	assert_int_equal(sfs_index_receipt_get(ix, "lab", "moved.json", &json), 0);
	free(json);
	assert_int_equal(sfs_index_receipt_get(ix, "lab", "kept.json", &json), -ENOENT);
	assert_int_equal(sfs_index_object_count(ix, &n), 0);
	assert_int_equal(n, 1);
	snprintf(p, sizeof(p), "%s/_staging/lab/kept", f->store);
	assert_int_equal(access(p, F_OK), 0);
	/* nothing left in flight; a second recovery is a no-op */
	assert_int_equal(sfs_recover(f->be, ix), 0);
	assert_int_equal(sfs_index_object_count(ix, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(sfs_index_check(ix), 0);
	sfs_job_release(&a);
	sfs_job_release(&b);
	sfs_index_close(ix);
}

/*
 * A copying backend (s3) promotes by copy + delete: a crash during the copy
 * leaves a partial canonical tree (rolled back: the staged entry is intact);
 * one after the copy was recorded leaves a staged leftover (rolled forward).
 */
static void test_recover_copy_phases(void **state)
{
	struct fx *f = *state;
	char p[256], ipath[256];
	struct sfs_index *ix = NULL;
	char *json = NULL;
	struct sfs_bstat st;

	snprintf(ipath, sizeof(ipath), "%s/index.db", f->dir);
	assert_int_equal(sfs_index_open(ipath, &ix), 0);
	close(sfs_backend_staging_dir(f->be));
	snprintf(p, sizeof(p), "%s/_staging/lab", f->store);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/_staging/lab/tree", f->store);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/_staging/lab/tree/a", f->store);
	write_file(p, "a");
	snprintf(p, sizeof(p), "%s/_staging/lab/done", f->store);
	write_file(p, "done");
	/* the partial copy of tree: one of its files reached the canonical key */
	assert_int_equal(sfs_backend_put_bytes(f->be, "_schema/lab/T/id=1/t_tok/a", "a", 1, 0), 0);
	/* done's copy is complete and recorded; its staged copy was not removed yet */
	assert_int_equal(sfs_backend_put_bytes(f->be, "_schema/lab/T/id=2/d_tok", "done", 4, 0), 0);

	struct sfs_job t = {.staging = strdup("lab/tree"),
			    .canonical = strdup("_schema/lab/T/id=1/t_tok"),
			    .addressing = strdup("schema"),
			    .metadata = strdup("{\"size\":1}"),
			    .receipt_dir = strdup("lab"),
			    .receipt_name = strdup("tree.json")};
	struct sfs_job d = {.staging = strdup("lab/done"),
			    .canonical = strdup("_schema/lab/T/id=2/d_tok"),
			    .addressing = strdup("schema"),
			    .metadata = strdup("{\"size\":4}"),
			    .receipt_dir = strdup("lab"),
			    .receipt_name = strdup("done.json")};
	assert_int_equal(sfs_index_job_begin(ix, &t), 0);
	assert_int_equal(sfs_index_job_begin(ix, &d), 0);
	assert_int_equal(sfs_index_job_copied(ix, &d), 0);

	int lvl = sfs_log_level;
	sfs_log_level = -1;
	assert_int_equal(sfs_recover(f->be, ix), 0);
	sfs_log_level = lvl;
	/* tree: rolled back */
	assert_int_equal(sfs_backend_stat(f->be, "_schema/lab/T/id=1/t_tok", &st), -ENOENT);
	assert_int_equal(sfs_backend_stat(f->be, "_staging/lab/tree/a", &st), 0);
	assert_int_equal(sfs_index_receipt_get(ix, "lab", "tree.json", &json), -ENOENT);
	/* done: rolled forward */
	assert_int_equal(sfs_backend_stat(f->be, "_staging/lab/done", &st), -ENOENT);
	assert_int_equal(sfs_backend_stat(f->be, "_schema/lab/T/id=2/d_tok", &st), 0);
	assert_int_equal(sfs_index_receipt_get(ix, "lab", "done.json", &json), 0);
	free(json);
	assert_int_equal(sfs_index_object_metadata(ix, "_schema/lab/T/id=2/d_tok", &json), 0);
	free(json);
	sfs_job_release(&t);
	sfs_job_release(&d);
	sfs_index_close(ix);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_marker_and_foreign_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_get_stat_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlinks_never_escape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_promote_noreplace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_intents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_copy_phases, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
