/*
 * backend/s3_buf.h - a tiny growable byte buffer shared by sigv4.c and the
 * S3 client (internal to backend/; not a public interface).
 *
 * Errors are sticky: after an allocation failure or a cap overflow every
 * append is a no-op and sfs_buf_err() reports -ENOMEM (or -EFBIG for the cap),
 * so callers append freely and check once.  data is always NUL-terminated
 * when len > 0.  Not thread-safe (one owner).
 */
#ifndef SFS_BACKEND_S3_BUF_H
#define SFS_BACKEND_S3_BUF_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sfs_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max; /* 0 = unlimited; else appends past max set err = -EFBIG */
	int err;
};

static inline void sfs_buf_init(struct sfs_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

static inline void sfs_buf_release(struct sfs_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static inline void sfs_buf_reset(struct sfs_buf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->data)
		b->data[0] = '\0';
}

static inline int sfs_buf_err(const struct sfs_buf *b)
{
	return b->err;
}

static inline int sfs_buf_add(struct sfs_buf *b, const void *p, size_t n)
{
	if (b->err)
		return b->err;
	if (n > (size_t)-1 - b->len - 1) {
		b->err = -ENOMEM;
		return b->err;
	}
	if (b->max && b->len + n > b->max) {
		b->err = -EFBIG;
		return b->err;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap = cap > ((size_t)-1) / 2 ? b->len + n + 1 : cap * 2;
		char *d = realloc(b->data, cap);
		if (!d) {
			b->err = -ENOMEM;
			return b->err;
		}
		b->data = d;
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static inline int sfs_buf_adds(struct sfs_buf *b, const char *s)
{
	return sfs_buf_add(b, s, strlen(s));
}

static inline int sfs_buf_addc(struct sfs_buf *b, char c)
{
	return sfs_buf_add(b, &c, 1);
}

__attribute__((format(printf, 2, 3))) static inline int sfs_buf_addf(struct sfs_buf *b,
								     const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = b->err ? b->err : -EINVAL;
		return b->err;
	}
	if ((size_t)n < sizeof(small))
		return sfs_buf_add(b, small, (size_t)n);
	char *big = malloc((size_t)n + 1);
	if (!big) {
		b->err = b->err ? b->err : -ENOMEM;
		return b->err;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	int rc = sfs_buf_add(b, big, (size_t)n);
	free(big);
	return rc;
}

/* Hand the bytes to the caller (NUL-terminated, possibly "" allocated); the buffer is emptied. */
static inline char *sfs_buf_detach(struct sfs_buf *b)
{
	char *d = b->data;
	if (!d)
		d = calloc(1, 1);
	memset(b, 0, sizeof(*b));
	return d;
}

#endif
