/*
 * common/config.h - mount/store configuration: defaults, config files, URLs,
 * "-o key=value" options and AWS credential sources.
 *
 * One struct sfs_config describes one store and one mount.  Every key has the
 * same name in a config file, in "-o key=value" and here (SPEC §3):
 *   backend location endpoint bucket region path_style access_key secret_key
 *   credentials_file profile store_name schema_prefix hash_prefix subfolding
 *   partition_pattern token_length index cache_dir cache_size snapshot
 * plus the mount flags ro, allow_other, default_permissions.
 *
 * Lifecycle: sfs_config_init() -> any number of sfs_config_load_file() /
 * sfs_config_parse_source() / sfs_config_set() -> sfs_config_finalize() ->
 * use -> sfs_config_release().  All strings are owned by the struct.
 *
 * Errors: functions return 0 or -errno (-EINVAL for bad input, -EACCES for a
 * secret-holding file readable by group/others, -ENOENT for a missing file) and
 * write a one-line human reason into err (errlen bytes, may be NULL) that names
 * the key, and for files the line: "mount.conf:3: token_length: not a number".
 * Nothing here logs secrets.  Not thread-safe (used before threads start).
 */
#ifndef SFS_COMMON_CONFIG_H
#define SFS_COMMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define SFS_MAX_SUBFOLD 8

enum sfs_config_origin {
	SFS_CFG_FILE,    /* a config file: every key allowed */
	SFS_CFG_OPTION,  /* -o key=value: secret_key (and session_token) refused */
	SFS_CFG_URL,     /* query parameters of a URL source */
};

struct sfs_config {
	char *backend;           /* "file" (default) | "s3" */
	char *location;          /* file: absolute store directory; s3: key prefix in bucket ("" = none) */
	char *endpoint;          /* s3: e.g. http://127.0.0.1:9000 (default https://s3.<region>.amazonaws.com) */
	char *bucket;            /* s3 */
	char *region;            /* s3: default "us-east-1" */
	int path_style;          /* s3: 1 = path-style, 0 = virtual-hosted (default 0; 1 when endpoint is an IP or has a port) */
	char *access_key;        /* s3 credentials (may come from env / credentials_file) */
	char *secret_key;
	char *session_token;
	char *credentials_file;  /* default ~/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE) */
	char *profile;           /* default $AWS_PROFILE or "default" */
	char *store_name;        /* DataJoint store name in metadata; default "stagefs" */
	char *schema_prefix;     /* default "_schema" */
	char *hash_prefix;       /* default "_hash" */
	int subfolding[SFS_MAX_SUBFOLD]; /* e.g. {2,2}; "2,2" or "2:2" */
	int n_subfolding;        /* 0 = no subfolding */
	char *partition_pattern; /* e.g. "{subject_id}/{session_date}"; NULL = none */
	int token_length;        /* default 8, clamped to 4..16 */
	char *index;             /* SQLite index path; default see sfs_config_finalize */
	char *cache_dir;         /* default $XDG_CACHE_HOME/stagefs or /var/cache/stagefs (root) */
	uint64_t cache_size;     /* bytes; accepts suffixes K M G T (1024-based); default 10G */
	char *snapshot;          /* mount this published snapshot read-only; NULL = live store */
	int read_only;           /* -o ro (forced by snapshot) */
	int allow_other;
	int default_permissions;
	int secret_from_file;    /* 1 when secret_key came from a config file (perm check done) */
};

/* Fill *c with defaults (see field comments).  Cannot fail. */
void sfs_config_init(struct sfs_config *c);

/* Free every string held by *c and reset it to zero. NULL-safe. */
void sfs_config_release(struct sfs_config *c);

/*
 * Set one key.  Validates the value (numbers, enum values, subfolding list,
 * name syntax) and refuses unknown keys.  origin SFS_CFG_OPTION refuses
 * secret_key/session_token ("secret_key: not allowed in -o; use the config
 * file or AWS_SECRET_ACCESS_KEY").  Boolean keys accept 1/0/true/false/yes/no
 * and a bare key (value NULL) means true.
 */
int sfs_config_set(struct sfs_config *c, const char *key, const char *value,
		   enum sfs_config_origin origin, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Parse a comma-separated -o option string ("ro,allow_other,token_length=12").
 * FUSE-only options that are not config keys are appended, comma separated, to
 * *passthrough (allocated, caller frees; may stay NULL).
 */
int sfs_config_parse_opts(struct sfs_config *c, const char *opts, char **passthrough, char *err,
			  size_t errlen) __attribute__((warn_unused_result));

/*
 * Load an INI config file (inih).  Keys may appear before any section or in a
 * [store] / [stagefs] section; any other section is an error naming its line.
 * A file that sets secret_key (or session_token) and is readable by group or
 * others is refused with -EACCES ("chmod 600 FILE").
 */
int sfs_config_load_file(struct sfs_config *c, const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Interpret a mount SOURCE: an existing directory -> backend=file,
 * location=realpath; "file:///abs/dir" -> same (the directory is created if
 * missing); "s3://bucket[/prefix]?endpoint=..&region=..&path_style=1" ->
 * backend=s3; an existing regular file -> sfs_config_load_file.
 */
int sfs_config_parse_source(struct sfs_config *c, const char *source, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Complete and check the configuration: credentials from the environment
 * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE)
 * and then the shared credentials file [profile] (s3 only, only keys still
 * unset), default index path
 *   $XDG_STATE_HOME/stagefs/<id>.db, else ~/.local/state/stagefs/<id>.db,
 *   or /var/lib/stagefs/<id>.db for root,
 * where <id> = first 16 hex chars of md5("<backend>:<endpoint>/<bucket>/<location>"),
 * and the required keys (file: location; s3: bucket).  snapshot forces read_only.
 */
int sfs_config_finalize(struct sfs_config *c, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Parse "2,2" / "2:2" / "" into out[] (each 1..16, at most SFS_MAX_SUBFOLD); returns count or -EINVAL. */
int sfs_config_parse_subfolding(const char *s, int out[SFS_MAX_SUBFOLD]);

/* Parse "10G", "512M", "4096" into bytes; -EINVAL on junk or overflow. */
int sfs_config_parse_size(const char *s, uint64_t *out);

#endif
