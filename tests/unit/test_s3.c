/*
 * tests/unit/test_s3.c - the S3 backend's canonical objects against a local
 * s3rver (s3_helpers.h): the format marker, put/get/stat, removal, no-replace
 * writes, ranged reads, listing with paging.  The staging side is in
 * test_s3_staged.c, the client's retries and error mapping in test_s3_faults.c.
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- tests against s3rver ---- */

static void t_open_marker(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store1");
	void *buf = NULL;
	size_t n = 0;
	assert_int_equal(sfs_backend_get_bytes(b, ".stagefs/format", &buf, &n, 4096), 0);
	assert_int_equal(n, 10);
	assert_memory_equal(buf, "stagefs 1\n", 10);
	free(buf);
	free_store(b);
	/* an existing store opens again */
	b = open_store("store1");
	/* a foreign marker is refused */
	struct sfs_backend *root = open_store("");
	assert_int_equal(sfs_backend_put_bytes(root, "bad/.stagefs/format", "other 2\n", 8, 0), 0);
	struct sfs_config c;
	struct sfs_backend *bad = NULL;
	cfg_fill(&c, g_endpoint, "bad");
	assert_int_equal(sfs_backend_s3_open(&c, &bad), -EINVAL);
	assert_null(bad);
	free_store(root);
	free_store(b);
}

/* A removed canonical object's cached size and blocks go with it. */
static void t_remove_forgets_cached(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store-rm");
	struct sfs_bfile *f = NULL;
	struct sfs_bstat st;
	char buf[32];

	assert_int_equal(sfs_backend_put_bytes(b, "_schema/x/obj", "hello", 5, 0), 0);
	assert_int_equal(sfs_backend_stat(b, "_schema/x/obj", &st), 0);
	assert_int_equal(st.size, 5);
	assert_int_equal(sfs_backend_open_obj(b, "_schema/x/obj", &f), 0);
	assert_int_equal(sfs_backend_pread(b, f, buf, sizeof(buf), 0), 5);
	sfs_backend_close_obj(b, f);
	assert_int_equal(sfs_backend_remove(b, "_schema/x/obj"), 0);
	assert_int_equal(sfs_backend_stat(b, "_schema/x/obj", &st), -ENOENT);
	/* the same key again, other bytes (recovery and gc remove, commits reuse keys) */
	assert_int_equal(sfs_backend_put_bytes(b, "_schema/x/obj", "other bytes!", 12, 0), 0);
	assert_int_equal(sfs_backend_stat(b, "_schema/x/obj", &st), 0);
	assert_int_equal(st.size, 12);
	assert_int_equal(sfs_backend_open_obj(b, "_schema/x/obj", &f), 0);
	assert_int_equal(sfs_backend_pread(b, f, buf, sizeof(buf), 0), 12);
	assert_memory_equal(buf, "other bytes!", 12);
	sfs_backend_close_obj(b, f);
	/* and a tree */
	assert_int_equal(sfs_backend_put_bytes(b, "_schema/t/a", "aaaa", 4, 0), 0);
	assert_int_equal(sfs_backend_stat(b, "_schema/t/a", &st), 0);
	assert_int_equal(sfs_backend_remove(b, "_schema/t"), 0);
	assert_int_equal(sfs_backend_put_bytes(b, "_schema/t/a", "a", 1, 0), 0);
	assert_int_equal(sfs_backend_stat(b, "_schema/t/a", &st), 0);
	assert_int_equal(st.size, 1);
	free_store(b);
}

static void t_put_get_stat(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store1");
	struct sfs_bstat st;
	void *buf = NULL;
	size_t n = 0;

	assert_int_equal(sfs_backend_put_bytes(b, "a/b/c with space+plus.txt", "hello", 5, 0), 0);
	assert_int_equal(sfs_backend_get_bytes(b, "a/b/c with space+plus.txt", &buf, &n, 100), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "hello", 5);
	free(buf);
	assert_int_equal(sfs_backend_get_bytes(b, "a/b/c with space+plus.txt", &buf, &n, 2),
			 -EFBIG);
	assert_int_equal(sfs_backend_stat(b, "a/b/c with space+plus.txt", &st), 0);
	assert_true(S_ISREG(st.mode));
	assert_int_equal(st.size, 5);
	assert_string_equal(st.md5, "5d41402abc4b2a76b9719d911017c592");
	assert_true(st.mtime_ns > 0);
	assert_int_equal(sfs_backend_stat(b, "a", &st), 0);
	assert_true(S_ISDIR(st.mode));
	assert_int_equal(sfs_backend_stat(b, "a/b", &st), 0);
	assert_true(S_ISDIR(st.mode));
	assert_int_equal(sfs_backend_stat(b, "", &st), 0);
	assert_true(S_ISDIR(st.mode));
	assert_int_equal(sfs_backend_stat(b, "nope", &st), -ENOENT);
	assert_int_equal(sfs_backend_get_bytes(b, "nope", &buf, &n, 100), -ENOENT);
	/* keys are under the location: the root store sees store1/... */
	struct sfs_backend *root = open_store("");
	assert_int_equal(sfs_backend_stat(root, "store1/a/b/c with space+plus.txt", &st), 0);
	free_store(root);
	/* an empty object */
	assert_int_equal(sfs_backend_put_bytes(b, "empty", "", 0, 0), 0);
	assert_int_equal(sfs_backend_get_bytes(b, "empty", &buf, &n, 10), 0);
	assert_int_equal(n, 0);
	free(buf);
	free_store(b);
}

static void t_noreplace(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store1");
	void *buf = NULL;
	size_t n = 0;
	assert_int_equal(sfs_backend_put_bytes(b, "nr/x", "one", 3, SFS_NOREPLACE), 0);
	assert_int_equal(sfs_backend_put_bytes(b, "nr/x", "two", 3, SFS_NOREPLACE), -EEXIST);
	assert_int_equal(sfs_backend_get_bytes(b, "nr/x", &buf, &n, 10), 0);
	assert_memory_equal(buf, "one", 3);
	free(buf);
	assert_int_equal(sfs_backend_put_bytes(b, "nr/x", "two", 3, 0), 0);
	free_store(b);
}

static void t_ranged_read(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store1");
	size_t size = (3u << 20) + 123;
	unsigned char *data = malloc(size), *out = malloc(size);
	struct sfs_bfile *f = NULL;

	for (size_t i = 0; i < size; i++)
		data[i] = (unsigned char)(i * 7 + i / 251);
	assert_int_equal(sfs_backend_put_bytes(b, "r/big", data, size, 0), 0);
	assert_int_equal(sfs_backend_open_obj(b, "r/big", &f), 0);
	/* small reads served by the read-ahead window */
	assert_int_equal(sfs_backend_pread(b, f, out, 100, 5), 100);
	assert_memory_equal(out, data + 5, 100);
	assert_int_equal(sfs_backend_pread(b, f, out, 4096, 70000), 4096);
	assert_memory_equal(out, data + 70000, 4096);
	/* a big read straight into the buffer */
	assert_int_equal(sfs_backend_pread(b, f, out, 2u << 20, 1000), 2u << 20);
	assert_memory_equal(out, data + 1000, 2u << 20);
	/* short only at EOF */
	assert_int_equal(sfs_backend_pread(b, f, out, 1000, (off_t)size - 10), 10);
	assert_memory_equal(out, data + size - 10, 10);
	assert_int_equal(sfs_backend_pread(b, f, out, 1000, (off_t)size), 0);
	assert_int_equal(sfs_backend_pread(b, f, out, 1000, (off_t)size + 5), 0);
	/* whole object */
	assert_int_equal(sfs_backend_pread(b, f, out, size + 100, 0), (ssize_t)size);
	assert_memory_equal(out, data, size);
	sfs_backend_close_obj(b, f);
	assert_int_equal(sfs_backend_open_obj(b, "r/none", &f), -ENOENT);
	assert_int_equal(sfs_backend_open_obj(b, "r", &f), -EISDIR);

	/* the client maps 416 (range at EOF) to a 0-byte read */
	struct sfs_s3_client *c = client_for(g_endpoint, 2);
	assert_int_equal(sfs_s3_get_range(c, "store1/r/big", size, out, 10), 0);
	assert_int_equal(sfs_s3_get_range(c, "store1/r/big", size - 3, out, 10), 3);
	sfs_s3_client_free(c);
	free(data);
	free(out);
	free_store(b);
}

struct put_job {
	struct sfs_backend *b;
	int from, to;
};

static void *put_many(void *arg)
{
	struct put_job *j = arg;
	char key[64], name[32];
	for (int i = j->from; i < j->to; i++) {
		snprintf(name, sizeof(name), "k%04d", i);
		snprintf(key, sizeof(key), "many/%s", name);
		if (sfs_backend_put_bytes(j->b, key, name, strlen(name), 0) != 0)
			return (void *)1;
	}
	return NULL;
}

static void t_list_paging_and_remove(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store1");
	enum { N = 1100, T = 8 };
	pthread_t th[T];
	struct put_job jobs[T];
	struct names nm;
	struct sfs_bstat st;

	for (int t = 0; t < T; t++) {
		jobs[t] = (struct put_job){b, t * N / T, (t + 1) * N / T};
		assert_int_equal(pthread_create(&th[t], NULL, put_many, &jobs[t]), 0);
	}
	for (int t = 0; t < T; t++) {
		void *r = NULL;
		pthread_join(th[t], &r);
		assert_null(r);
	}
	assert_int_equal(sfs_backend_put_bytes(b, "many/sub/inner", "x", 1, 0), 0);
	memset(&nm, 0, sizeof(nm));
	assert_int_equal(sfs_backend_list(b, "many", count_cb, &nm), 0);
	assert_int_equal(nm.n_files, N);
	assert_int_equal(nm.n_dirs, 1);
	for (int i = 0; i < N; i++)
		assert_int_equal(nm.seen[i], 1);
	assert_int_equal(sfs_backend_list(b, "many/k0001", count_cb, &nm), -ENOTDIR);
	assert_int_equal(sfs_backend_list(b, "no/such/dir", count_cb, &nm), -ENOENT);

	/* remove: one object, then the whole tree (multi-delete, > 1000 keys) */
	assert_int_equal(sfs_backend_remove(b, "many/k0000"), 0);
	assert_int_equal(sfs_backend_stat(b, "many/k0000", &st), -ENOENT);
	assert_int_equal(sfs_backend_remove(b, "many"), 0);
	assert_int_equal(sfs_backend_stat(b, "many", &st), -ENOENT);
	assert_int_equal(sfs_backend_list(b, "many", count_cb, &nm), -ENOENT);
	assert_int_equal(sfs_backend_remove(b, "many"), -ENOENT);
	free_store(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_open_marker),
		cmocka_unit_test(t_put_get_stat),
		cmocka_unit_test(t_remove_forgets_cached),
		cmocka_unit_test(t_noreplace),
		cmocka_unit_test(t_ranged_read),
		cmocka_unit_test(t_list_paging_and_remove),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
