/*
 * common/gz.h - gzip (RFC 1952) of a buffer in memory, by zlib.
 * Both return 0 or -errno and leave *out (malloc'd, owned by the caller) and
 * *outn alone on failure.  Thread-safe.
 */
#ifndef SFS_COMMON_GZ_H
#define SFS_COMMON_GZ_H

#include <stddef.h>

/* Compress n bytes of in. */
int sfs_gzip(const void *in, size_t n, void **out, size_t *outn)
	__attribute__((warn_unused_result));
/*
 * Uncompress a gzip stream (one member); at most max bytes come out (-EFBIG
 * past it: a manifest cannot inflate without bound), -EINVAL for bytes that
 * are not gzip or end early.  The result is NUL-terminated (not counted).
 */
int sfs_gunzip(const void *in, size_t n, size_t max, void **out, size_t *outn)
	__attribute__((warn_unused_result));

#endif
