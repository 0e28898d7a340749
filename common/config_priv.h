/*
 * common/config_priv.h - what common/config.c, config_check.c, config_opts.c,
 * config_file.c, config_source.c and config_finalize.c share (the key table's
 * types, the INI parser's state, helpers; not for other callers).
 *
 * Functions return 0 or -errno unless noted.  err/errlen and why/n are as in
 * config.h: a one-line reason is written there (may be NULL).
 */
#ifndef SFS_COMMON_CONFIG_PRIV_H
#define SFS_COMMON_CONFIG_PRIV_H

#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/config.h"

/* ---- the key table (config.c) ---- */

enum key_type { KT_STR, KT_BOOL, KT_TOKLEN, KT_SIZE, KT_SUBFOLD, KT_SECONDS };

#define KF_SECRET   1u /* never in -o or a URL; wiped on release */
#define KF_EMPTY_OK 2u /* "" is a value, not "back to the default" */
#define KF_NO_URL   4u /* comes from the URL itself */

/* One key: how it is parsed and where it lives in struct sfs_config. */
struct sfs_config_key {
	const char *name;
	enum key_type type;
	size_t off;	  /* of the field in struct sfs_config */
	const char *dflt; /* KT_STR: what "" resets to (NULL = unset) */
	int (*check)(const char *v, char *why, size_t n); /* KT_STR, non-empty values */
	unsigned flags;
};

/* ---- config.c: helpers ---- */

/* Write a message into err (when given) and return rc. */
int sfs_cfg_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Wipe and free s (NULL-safe). */
void sfs_cfg_free_secret(char *s);
/* Replace *slot with a copy of v (NULL allowed); the old value is wiped.  0 or -ENOMEM. */
int sfs_cfg_set_str(char **slot, const char *v);
/* 1 for ' ' and '\t'. */
int sfs_cfg_is_blank(char ch);
/* Allocate the concatenation of up to four strings (NULL = ""); NULL on ENOMEM. */
char *sfs_cfg_join(const char *a, const char *b, const char *c, const char *d);

/* ---- config.c: keys and the lifecycle ---- */

/* The table entry of key name, or NULL for an unknown key. */
const struct sfs_config_key *sfs_cfg_find_key(const char *name);
/*
 * Set a known key.  On -EINVAL writes the reason (without the key name and
 * without the value of a secret) into why.
 */
int sfs_cfg_set_key(struct sfs_config *c, const struct sfs_config_key *k, const char *v, char *why,
		    size_t n);
/* Refuse keys an origin may not set (-EINVAL with the reason in why); 0 if allowed. */
int sfs_cfg_origin_refuses(const struct sfs_config_key *k, enum sfs_config_origin origin, char *why,
			   size_t n);
/* Deep copy *src into *dst (which is overwritten).  0 or -ENOMEM (dst zeroed). */
int sfs_cfg_copy(struct sfs_config *dst, const struct sfs_config *src);
/* Replace *c by *tmp (taking ownership; *tmp is zeroed). */
void sfs_cfg_commit(struct sfs_config *c, struct sfs_config *tmp);

/* ---- config_check.c: syntax checks of string values (0 or -EINVAL, reason in why) ---- */

/* backend: file | s3. */
int sfs_cfg_check_backend(const char *v, char *why, size_t n);
int sfs_cfg_check_upload(const char *v, char *why, size_t n);
/* Accepts anything (location: checked by finalize, per backend). */
int sfs_cfg_check_any(const char *v, char *why, size_t n);
/* endpoint: http(s)://host[:port], no path ([IPv6] allowed). */
int sfs_cfg_check_endpoint(const char *v, char *why, size_t n);
/* AWS bucket naming rules: 3..63 of [a-z0-9.-], starting and ending alphanumeric. */
int sfs_cfg_check_bucket(const char *v, char *why, size_t n);
/* region: [a-z0-9-], at most 64. */
int sfs_cfg_check_region(const char *v, char *why, size_t n);
/* Credentials: no blanks; the reason never echoes the value. */
int sfs_cfg_check_credential(const char *v, char *why, size_t n);
/* An absolute path. */
int sfs_cfg_check_abs_path(const char *v, char *why, size_t n);
/* profile: no blanks or brackets, at most 128. */
int sfs_cfg_check_profile(const char *v, char *why, size_t n);
/* '/'-separated segments, none empty, "." or "..": "a/b" yes; "/a" "a/" "a//b" "a/../b" no. */
int sfs_cfg_check_segments(const char *v, char *why, size_t n);
/* schema_prefix, hash_prefix: segments, and not one of the store's reserved top-level names. */
int sfs_cfg_check_prefix(const char *v, char *why, size_t n);
/* "{a}/{b_c}": segments of the form {name}, name [A-Za-z_][A-Za-z0-9_]*. */
int sfs_cfg_check_partition(const char *v, char *why, size_t n);
/* snapshot: 1..128 of [A-Za-z0-9._-], not "." or "..". */
int sfs_cfg_check_snapshot(const char *v, char *why, size_t n);

/* ---- config_file.c: INI files (inih) ---- */

/* One file being parsed: the line-counting reader's state plus the handler's. */
struct ini_ctx {
	/* reader */
	FILE *f;
	char *line;   /* current physical line, without its newline */
	size_t cap;   /* of line (getline) */
	size_t len;   /* of the current line */
	size_t pos;   /* bytes of it handed to inih so far */
	int lineno;   /* physical line of the last piece handed out */
	int piece;    /* 0 = first piece of the line, >0 = continuation piece */
	int indented; /* the line starts with a blank */
	int bad_line; /* first line the reader refused (too long, NUL), 0 = none */
	const char *bad_why;
	int *call_line; /* physical line of each reader call (inih counts calls) */
	size_t ncalls, capcalls;
	int nomem;
	/* handler */
	const char *path;
	int (*apply)(struct ini_ctx *x, const char *section, const char *name, const char *value);
	int pend; /* a key of the current physical line awaits its last piece */
	char *pend_section, *pend_name, *pend_value;
	int err_line; /* first line the handler refused, 0 = none */
	int err_rc;
	char err_msg[512];
	/* config-file handler */
	struct sfs_config *c;
	int has_secret;
	/* credentials-file handler */
	const char *profile;
	int profile_found;
	char *cred[3]; /* aws_access_key_id, aws_secret_access_key, aws_session_token */
};

/* Record the handler's first error (at the current line); later ones are dropped. */
void sfs_cfg_ini_error(struct ini_ctx *x, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Open path for parsing into x (x->path, x->f); a regular file only, its stat in *st. */
int sfs_cfg_ini_open(struct ini_ctx *x, const char *path, struct stat *st, char *err,
		     size_t errlen);
/*
 * Parse the file opened by sfs_cfg_ini_open with x->apply.  Returns 0, or the
 * first error of any kind (-EINVAL with a "<file>:<line>: ..." message in err).
 */
int sfs_cfg_ini_run(struct ini_ctx *x, char *err, size_t errlen);
/* Free what x holds (line buffer and pending key wiped, credentials wiped) and close its file. */
void sfs_cfg_ini_release(struct ini_ctx *x);

#endif
