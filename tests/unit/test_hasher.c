/* tests/unit/test_hasher.c - the MD5 computed while a file is written. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "fs/hasher.h"

#define BLK  65536
#define NBLK 40

struct fx {
	char path[64];
	int fd;
	unsigned char *data;
	char want[33];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	unsigned char md[16];
	unsigned int len = 0;

	snprintf(f->path, sizeof(f->path), "/tmp/sfs-hasher-XXXXXX");
	f->fd = mkstemp(f->path);
	f->data = malloc(BLK * NBLK);
	for (size_t i = 0; i < BLK * NBLK; i++)
		f->data[i] = (unsigned char)(i * 7 + i / 251);
	EVP_Digest(f->data, BLK * NBLK, md, &len, EVP_md5(), NULL);
	for (int i = 0; i < 16; i++)
		snprintf(f->want + 2 * i, 3, "%02x", md[i]);
	*state = f;
	return f->fd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	close(f->fd);
	unlink(f->path);
	free(f->data);
	free(f);
	return 0;
}

/* Write block b through the job as the FUSE write handler does. */
static void put_block(struct fx *f, struct sfs_hjob *j, int b)
{
	uint64_t off = (uint64_t)b * BLK;

	sfs_hjob_pre_write(j, off, BLK);
	assert_int_equal(pwrite(f->fd, f->data + off, BLK, (off_t)off), BLK);
	sfs_hjob_post_write(j, off, BLK, NULL, f->fd);
}

static void check(struct fx *f, int with_thread, const int *order, int n, int expect_ok)
{
	struct sfs_hjob *j = sfs_hjob_new();
	char hex[33];

	assert_non_null(j);
	assert_int_equal(ftruncate(f->fd, 0), 0);
	if (with_thread)
		assert_int_equal(sfs_hasher_start(), 0);
	for (int i = 0; i < n; i++)
		put_block(f, j, order[i]);
	/* still open for writing: no result yet */
	assert_int_equal(sfs_hjob_result(j, hex), -ENODATA);
	sfs_hjob_closed(j, (uint64_t)lseek(f->fd, 0, SEEK_END), f->fd);
	if (expect_ok) {
		assert_int_equal(sfs_hjob_result(j, hex), 0);
		assert_string_equal(hex, f->want);
	} else {
		assert_int_equal(sfs_hjob_result(j, hex), -ENODATA);
	}
	if (with_thread)
		sfs_hasher_stop();
	sfs_hjob_put(j);
}

static void test_in_order(void **state)
{
	int order[NBLK];

	for (int i = 0; i < NBLK; i++)
		order[i] = i;
	check(*state, 0, order, NBLK, 1);
	check(*state, 1, order, NBLK, 1);
}

static void test_out_of_order(void **state)
{
	int order[NBLK];

	/* writeback flushes reach worker threads in any order */
	for (int i = 0; i < NBLK; i++)
		order[i] = i ^ 1;
	check(*state, 0, order, NBLK, 1);
	for (int i = 0; i < NBLK; i++)
		order[i] = NBLK - 1 - i;
	check(*state, 1, order, NBLK, 1);
}

static void test_rewrite_gives_up(void **state)
{
	int order[NBLK + 1];

	for (int i = 0; i < NBLK; i++)
		order[i] = i;
	order[NBLK] = 3; /* the same bytes again */
	check(*state, 0, order, NBLK + 1, 0);
	check(*state, 1, order, NBLK + 1, 0);
}

static void test_hole_gives_up(void **state)
{
	int order[NBLK - 1];

	for (int i = 0, k = 0; i < NBLK; i++)
		if (i != 17)
			order[k++] = i;
	check(*state, 0, order, NBLK - 1, 0);
}

static void test_invalidate(void **state)
{
	struct fx *f = *state;
	struct sfs_hjob *j = sfs_hjob_new();
	char hex[33];

	assert_int_equal(ftruncate(f->fd, 0), 0);
	put_block(f, j, 0);
	sfs_hjob_invalidate(j); /* e.g. a truncate or fallocate */
	sfs_hjob_closed(j, BLK, f->fd);
	assert_int_equal(sfs_hjob_result(j, hex), -ENODATA);
	sfs_hjob_put(j);
	assert_int_equal(sfs_hjob_result(NULL, hex), -ENODATA);
}

static int hints;
static uint64_t hint_size;
static void count_hint(int fd, const char *hex, uint64_t size)
{
	hints++;
	hint_size = size;
}

/*
 * Small files written in order are hashed from the writes' own buffers: the
 * digest is ready at close without the background thread and without reading
 * the file back (the file here holds other bytes than were "written").
 */
static void test_inline_small(void **state)
{
	struct fx *f = *state;
	const size_t sizes[] = {0, 1, 4096, 100000, 256 << 10};

	sfs_hasher_set_done_cb(count_hint);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];
		unsigned char md[16];
		unsigned int len = 0;
		char want[33], hex[33];
		struct sfs_hjob *j = sfs_hjob_new();

		EVP_Digest(f->data, n, md, &len, EVP_md5(), NULL);
		for (int i = 0; i < 16; i++)
			snprintf(want + 2 * i, 3, "%02x", md[i]);
		assert_int_equal(ftruncate(f->fd, 0), 0); /* nothing to read back */
		hints = 0;
		for (size_t off = 0; off < n; off += 4096) {
			size_t c = n - off < 4096 ? n - off : 4096;
			sfs_hjob_pre_write(j, off, c);
			sfs_hjob_post_write(j, off, c, f->data + off, f->fd);
		}
		sfs_hjob_closed(j, n, f->fd);
		assert_int_equal(sfs_hjob_peek(j, hex), 0); /* ready at close */
		assert_string_equal(hex, want);
		/* a digest is stored with the file only where re-reading it would cost more */
		assert_int_equal(hints, n >= SFS_HJOB_HINT_MIN);
		if (hints)
			assert_int_equal(hint_size, n);
		sfs_hjob_put(j);
	}
	sfs_hasher_set_done_cb(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewrite_gives_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hole_gives_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalidate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inline_small, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
