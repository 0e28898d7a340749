/*
 * index/addressing_priv.h - helpers index/addressing.c shares with
 * index/zarr_checksum.c (not for other callers).
 */
#ifndef SFS_INDEX_ADDRESSING_PRIV_H
#define SFS_INDEX_ADDRESSING_PRIV_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the valid UTF-8 sequence at s (at most avail bytes) and its code point; 0: invalid. */
size_t sfs_ad_utf8_seq(const unsigned char *s, size_t avail, uint32_t *cp);
/* 1 when s[0..n) is valid UTF-8. */
int sfs_ad_utf8_valid(const char *s, size_t n);
/* An SQLite result code as -errno. */
int sfs_ad_sqlite_errno(int rc);
/* A private in-memory SQLite database for JSON1 (caller closes). */
int sfs_ad_json_db(sqlite3 **out);
/* MD5 of buf. */
int sfs_ad_md5_buf(const void *buf, size_t n, unsigned char out[16]);

#endif
