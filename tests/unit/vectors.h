/* tests/unit/vectors.h - helpers the unit tests share: a file's text, a SQLite
 * query over a vector file (JSON1), MD5 of a buffer.  Include after cmocka.h. */
#ifndef SFS_TEST_VECTORS_H
#define SFS_TEST_VECTORS_H

#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include "index/addressing.h"

static inline char *slurp(const char *path)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = read(fd, buf + len, cap - len - 1);
		assert_true(n >= 0);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	return buf;
}

/* Prepare sql on a fresh in-memory db with the vector file text bound to ?1. */
struct vq {
	sqlite3 *db;
	sqlite3_stmt *st;
	char *text;
};

static inline void vq_open(struct vq *q, const char *file, const char *sql)
{
	q->text = file ? slurp(file) : NULL;
	assert_int_equal(sqlite3_open(":memory:", &q->db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(q->db, sql, -1, &q->st, NULL), SQLITE_OK);
	if (q->text)
		sqlite3_bind_text(q->st, 1, q->text, -1, SQLITE_STATIC);
}

static inline void vq_close(struct vq *q)
{
	sqlite3_finalize(q->st);
	sqlite3_close(q->db);
	free(q->text);
}

static inline const char *col(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

static inline void md5_of(const void *buf, size_t n, unsigned char out[16])
{
	struct sfs_md5 m;

	assert_int_equal(sfs_md5_init(&m), 0);
	sfs_md5_update(&m, buf, n);
	sfs_md5_final(&m, out);
	assert_null(m.ctx);
}

#endif
