/*
 * index/addressing.h - DataJoint object-store addressing (SPEC §2, §4).
 *
 * Content hashes (lowercase base32 of MD5), hash paths, random tokens,
 * primary-key value encoding, schema-addressed object paths, the
 * "user.stagefs.commit" xattr value, and the DANDI zarr checksum of a
 * directory tree.  Everything here is pure computation: no FUSE, no HTTP,
 * no store I/O.  MD5 and randomness come from OpenSSL (EVP, RAND_bytes);
 * JSON is read and written with SQLite's JSON1 functions on a private
 * in-memory connection.
 *
 * Errors: fallible functions return 0 or -errno and never log; the caller
 * decides whether a failure is worth a log line.
 *
 * Thread safety: every function may be called from any thread; objects
 * (struct sfs_md5, struct sfs_zarr_checksum, struct sfs_commit_spec) must not
 * be used by two threads at once.
 */
#ifndef SFS_INDEX_ADDRESSING_H
#define SFS_INDEX_ADDRESSING_H

#include <stddef.h>
#include <stdint.h>

/* Longest path segment (file or directory name) a store accepts, in bytes. */
#define SFS_SEGMENT_MAX 255
/* Buffer size that fits any sfs_float_repr() result. */
#define SFS_FLOAT_REPR_MAX 32
/* Buffer size that fits any sfs_zarr_checksum_final() result. */
#define SFS_ZARR_CHECKSUM_MAX 80

/* ---- MD5 ---------------------------------------------------------------- */

/* Incremental MD5 over OpenSSL EVP.  ctx is an EVP_MD_CTX *, NULL when released. */
struct sfs_md5 {
	void *ctx;
};

/*
 * Start a new MD5 computation in *m (whose previous contents are ignored,
 * not released).  Returns 0, -ENOMEM, or -ENOSYS when the OpenSSL providers
 * offer no MD5 (FIPS mode).  *m is written only on success; release it with
 * sfs_md5_final() or sfs_md5_release().
 */
int sfs_md5_init(struct sfs_md5 *m) __attribute__((warn_unused_result));

/* Hash n more bytes of buf (n may be 0).  m must be initialised. */
void sfs_md5_update(struct sfs_md5 *m, const void *buf, size_t n);

/* Write the 16-byte digest to out and release the context (m->ctx = NULL). */
void sfs_md5_final(struct sfs_md5 *m, unsigned char out[16]);

/* Release the context without a digest.  NULL-safe; fine after final. */
void sfs_md5_release(struct sfs_md5 *m);

/*
 * Make *dst an independent copy of the running state of src (for a digest
 * of "the bytes so far" while hashing continues).  Returns 0 or -ENOMEM;
 * *dst is written only on success and must be released by the caller.
 */
int sfs_md5_copy(struct sfs_md5 *dst, const struct sfs_md5 *src)
	__attribute__((warn_unused_result));

/* 32 lowercase hex digits and a NUL. */
void sfs_md5_hex(const unsigned char md5[16], char out[33]);

/* ---- content hashes, hash paths, tokens --------------------------------- */

/*
 * DataJoint content hash: lowercase RFC 4648 base32 of the 16 MD5 bytes,
 * no padding: 26 chars of [a-z2-7] and a NUL.
 */
void sfs_hash_from_md5(const unsigned char md5[16], char out[27]);

/* Same from 32 hex digits (either case, nothing else).  -EINVAL on bad hex. */
int sfs_hash_from_md5hex(const char *hex, char out[27]) __attribute__((warn_unused_result));

/*
 * "<hash_prefix>/<schema>/[<fold1>/<fold2>/...]<hash>" into out (outlen
 * bytes with the NUL).  hash_prefix "" (or NULL) means no leading component;
 * subfold[i] > 0 are the lengths of consecutive slices of hash used as
 * folders (n_subfold 0 = none).  Errors: -EINVAL for an empty schema or hash,
 * a fold length <= 0 or folds longer than the hash, -ENAMETOOLONG when a
 * segment exceeds SFS_SEGMENT_MAX or out is too small (out is then
 * unspecified).
 */
int sfs_hash_path(const char *hash_prefix, const char *schema, const int *subfold, int n_subfold,
		  const char *hash, char *out, size_t outlen) __attribute__((warn_unused_result));

/*
 * New random token of len chars (len clamped to 4..16) from
 * [A-Za-z0-9-_], from OpenSSL's CSPRNG.  out must hold at least 17 bytes.
 * Returns 0 or -EIO when the CSPRNG fails.
 */
int sfs_token_new(int len, char *out) __attribute__((warn_unused_result));

/* Now as DataJoint writes timestamps: UTC ISO-8601 with microseconds and "+00:00" (48 bytes do). */
void sfs_now_iso(char *buf, size_t len);

/* ---- primary-key values and the commit xattr (SPEC §4) ------------------ */

enum sfs_pk_type { SFS_PK_INT, SFS_PK_FLOAT, SFS_PK_BOOL, SFS_PK_STRING };

/*
 * One primary-key attribute.  text is Python's str() of the value:
 * INT the decimal digits exactly as in the JSON ("-0" becomes "0");
 * FLOAT the shortest round-trip repr (see sfs_float_repr); BOOL "True" or
 * "False"; STRING the raw UTF-8 string.
 */
struct sfs_pk_attr {
	char *name;
	enum sfs_pk_type type;
	char *text;
};

/* A parsed "user.stagefs.commit" value.  All strings are owned by the struct. */
struct sfs_commit_spec {
	int hash;		 /* 1 = hash-addressed; all other members then empty */
	char *field;		 /* schema-addressed: [a-z][a-z0-9_]* */
	struct sfs_pk_attr *key; /* nkey >= 1 attributes, in the order given */
	size_t nkey;
	int ext_given; /* 1 when "ext" was present (string or null) */
	char *ext;     /* NULL when null or "", else starting with '.' */
	char *token;   /* optional (tests): [A-Za-z0-9_-]{1,64} */
	char *table;   /* optional table override: [A-Za-z0-9_#]{1,64} */
	int async;     /* "async": true - return once the commit is queued */
};

/*
 * Parse an xattr value of len bytes (not NUL-terminated).  Accepted:
 *   hash                       (trailing spaces, tabs and newlines allowed)
 *   {"addressing":"hash"}
 *   {"addressing":"schema","field":F,"key":{...},"ext":E,"token":T,"table":N}
 *     ("addressing", "ext", "token", "table" optional; "async": true or
 *      false in either JSON form; key values are
 *      strings, integers, floats or booleans, names [A-Za-z_][A-Za-z0-9_]*)
 * Anything else is -EINVAL with a one-line reason in err (errlen bytes, may
 * be NULL): more than SFS_COMMIT_VALUE_MAX bytes, NUL anywhere (raw or
 * \u0000), invalid JSON (also nested deeper than SQLite's JSON parser goes), not an object,
 * unknown or duplicate members, wrong types, a bad field, token or table,
 * an empty key, nested/null key values, non-finite floats, bad attribute
 * names, invalid UTF-8, control characters (0x01-0x1f, 0x7f) in string values, an ext containing '/', members besides
 * "addressing" and "async" in the hash form.  Also -ENOMEM, or -EIO when SQLite fails.
 * *out is written only on success; the caller releases it with
 * sfs_commit_spec_release().
 */
#define SFS_COMMIT_VALUE_MAX (64u << 10) /* bytes: the most an xattr value can hold (Linux) */
int sfs_commit_spec_parse(const char *value, size_t len, struct sfs_commit_spec *out, char *err,
			  size_t errlen) __attribute__((warn_unused_result));

/* Free everything s owns and zero it.  NULL-safe; safe to call twice. */
void sfs_commit_spec_release(struct sfs_commit_spec *s);

/*
 * The first control character (0x01-0x1f, 0x7f) among n bytes of s, or -1: a
 * byte XML 1.0 cannot carry, so a bucket's listing of a key holding it is
 * unreadable unless the server url-encodes keys.
 */
int sfs_first_control(const char *s, size_t n);

/*
 * Default ext for an entry name (its last path segment is used): the last
 * suffix including the dot, as Python's PurePath.suffix: "frames.zarr" ->
 * ".zarr", "a.tar.gz" -> ".gz"; "noext", ".hidden" and "a." -> NULL.
 * Returns a pointer into name or NULL.
 */
const char *sfs_default_ext(const char *name);

/*
 * Python repr() of a double: shortest digits that round-trip, positional
 * with ".0" when integral for decimal exponents -4..15, else scientific with
 * a signed exponent of at least two digits ("1e+16", "1e-05"); "-0.0",
 * "inf", "-inf", "nan".  Returns 0 or -ERANGE when out (outlen bytes) is too
 * small; SFS_FLOAT_REPR_MAX always suffices.
 */
int sfs_float_repr(double v, char *out, size_t outlen) __attribute__((warn_unused_result));

/*
 * DataJoint's encode_pk_value for a string: returned raw unless it contains
 * any of / \ : * ? " < > | or is over 100 characters (UTF-8 code points);
 * then, when long, cut to its first 50 characters + "_" + the first 8 hex
 * digits of the MD5 of the whole string, and percent-encode (uppercase hex)
 * every byte but [A-Za-z0-9_.~-].  Returns 0, -ENAMETOOLONG when out
 * (outlen bytes) is too small, or an sfs_md5_init() error.
 */
int sfs_encode_pk_value(const char *text, char *out, size_t outlen)
	__attribute__((warn_unused_result));

/*
 * The path form of one key attribute's value: sfs_encode_pk_value() for
 * strings, text unchanged for the other types (Python str() of a number or
 * bool is never encoded).  Errors as sfs_encode_pk_value().
 */
int sfs_pk_attr_encode(const struct sfs_pk_attr *a, char *out, size_t outlen)
	__attribute__((warn_unused_result));

struct sfs_object_path_params {
	const char *schema_prefix;		    /* "" or NULL = none; may hold '/' */
	const char *partition_pattern;		    /* NULL or e.g. "{subject_id}/{session_date}" */
	const char *schema, *table, *field, *token; /* all non-empty */
	const char *ext;	       /* NULL = none, else used as given (starts with '.') */
	const struct sfs_pk_attr *key; /* nkey attributes, in path order */
	size_t nkey;
};

/*
 * Schema-addressed object path, as datajoint-python storage.py
 * build_object_path:
 *   "<schema_prefix>/[<p>=<v>/...]<schema>/<table>/<k>=<v>/.../<field>_<token><ext>"
 * The partition attributes ({name} placeholders of partition_pattern, in
 * pattern order, each once) that the key has come before <schema>, and are
 * not repeated after <table>; placeholders missing from the key are skipped.
 * Errors: -EINVAL for a missing schema/table/field/token, -ENAMETOOLONG
 * when any segment exceeds SFS_SEGMENT_MAX bytes or out is too small (out is
 * then unspecified), -ENOMEM.
 */
int sfs_object_path(const struct sfs_object_path_params *p, char *out, size_t outlen)
	__attribute__((warn_unused_result));

/* ---- DANDI zarr checksum ------------------------------------------------ */

/*
 * Accumulates (relpath, md5, size) for every file of a directory tree and
 * computes the DANDI zarr checksum "<md5hex>-<file count>--<total size>":
 * each directory's manifest {"directories":[...],"files":[...]} lists its
 * entries {"digest","name","size"} sorted by name in byte (= code point)
 * order, serialised like Python json.dumps(separators=(',',':')) with
 * ensure_ascii; a subdirectory's digest is its own checksum.  Empty
 * directories do not exist for it.  Memory is linear in the number of files;
 * final() sorts once (O(n log n)).
 */
struct sfs_zarr_checksum;

/* Allocate an empty accumulator into *out.  Returns 0 or -ENOMEM. */
int sfs_zarr_checksum_new(struct sfs_zarr_checksum **out) __attribute__((warn_unused_result));

/*
 * Add one file.  relpath is relative ("a/b/c", valid UTF-8, no empty, "."
 * or ".." segments, no leading or trailing '/'); md5hex is 32 lowercase hex
 * digits; size <= INT64_MAX.  Returns 0, -EINVAL for a bad argument, -ENOMEM.
 * relpath is copied.  Duplicates are detected by final().
 */
int sfs_zarr_checksum_add(struct sfs_zarr_checksum *z, const char *relpath, const char md5hex[33],
			  uint64_t size) __attribute__((warn_unused_result));

/*
 * Write "<md5>-<count>--<size>" for everything added so far into out
 * (outlen bytes; SFS_ZARR_CHECKSUM_MAX suffices).  Does not consume z: more
 * files may be added and final() called again.  Errors: -EINVAL when a
 * path was added twice or is both a file and a directory, -EOVERFLOW when
 * the total size exceeds INT64_MAX, -ERANGE when out is too small,
 * -ENOMEM, -EIO when SQLite fails.
 */
int sfs_zarr_checksum_final(struct sfs_zarr_checksum *z, char *out, size_t outlen)
	__attribute__((warn_unused_result));

/* Free z and everything it holds.  NULL-safe. */
void sfs_zarr_checksum_free(struct sfs_zarr_checksum *z);

/*
 * The same checksum over a tree too big to hold: the caller reads it one
 * directory at a time (directories by an id of the caller's choosing).
 * subdirs(arg, dir, cb, cbarg): cb(cbarg, id, name) for each subdirectory
 * of dir; files(arg, dir, cb, cbarg): cb(cbarg, name, md5hex, size) for each
 * file directly in dir; both in name order (byte order), each returning
 * cb's non-zero result.  A directory's subdirectories are read in full
 * before the next level; its files stream through an MD5: memory grows with
 * the depth and the widest set of subdirectories, not with the files.
 */
struct sfs_zarr_tree {
	int (*subdirs)(void *arg, int64_t dir, int (*cb)(void *cbarg, int64_t id, const char *name),
		       void *cbarg);
	int (*files)(void *arg, int64_t dir,
		     int (*cb)(void *cbarg, const char *name, const char md5hex[33], uint64_t size),
		     void *cbarg);
	void *arg;
};
int sfs_zarr_checksum_tree(const struct sfs_zarr_tree *t, int64_t root, char *out, size_t outlen)
	__attribute__((warn_unused_result));

#endif
