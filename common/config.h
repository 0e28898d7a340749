/*
 * common/config.h - mount/store configuration: defaults, config files, URLs,
 * "-o key=value" options and AWS credential sources.
 *
 * One struct sfs_config describes one store and one mount.  Every key has the
 * same name in a config file, in "-o key=value" and here (SPEC §3):
 *   backend location endpoint bucket region path_style access_key secret_key
 *   credentials_file profile store_name schema_prefix hash_prefix subfolding
 *   partition_pattern token_length index cache_dir cache_size snapshot
 *   upload (async|sync) upload_delay (s3: write-back of staged files, SPEC §3)
 *   dir_cache_time (s3: how stale a canonical listing may be; not in SPEC §3)
 *   inode_handles, max_inodes (how the daemon tracks staging inodes; not in SPEC §3)
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
 * Every function that changes *c leaves it untouched when it fails.
 *
 * Values (all origins):
 *   - an empty value resets a string key to its default ("" = unset), except
 *     schema_prefix / hash_prefix, where "" means "no prefix" (objects at the
 *     store root), and subfolding, where "" means none; numeric and boolean
 *     keys reject "";
 *   - booleans: 1/0, true/false, yes/no, on/off (any case);
 *   - token_length: an integer; out-of-range values are clamped to 4..16 (as
 *     DataJoint does), anything else is -EINVAL;
 *   - backend: file | s3;  region: [a-z0-9-]+;  endpoint: http(s)://host[:port]
 *     (no path);  bucket: AWS rules, 3..63 of [a-z0-9.-], alphanumeric ends;
 *   - store_name, schema_prefix, hash_prefix: '/'-separated segments, none
 *     empty, "." or ".."; no '/' at either end; the prefixes may not start with
 *     a reserved top-level name (_staging, _snapshots, .stagefs) and must differ;
 *   - partition_pattern: "{name}" segments joined by '/', name [A-Za-z_][A-Za-z0-9_]*;
 *   - snapshot: [A-Za-z0-9._-]{1,128}, not "." or "..";
 *   - index, cache_dir, credentials_file: absolute paths;
 *   - no value may hold control characters or exceed 8192 bytes.
 * Error texts never contain the value of secret_key or session_token.
 */
#ifndef SFS_COMMON_CONFIG_H
#define SFS_COMMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define SFS_MAX_SUBFOLD 8

enum sfs_config_origin {
	SFS_CFG_FILE,	/* a config file: every key allowed */
	SFS_CFG_OPTION, /* -o key=value: secret_key (and session_token) refused */
	SFS_CFG_URL,	/* query parameters of a URL source */
};

struct sfs_config {
	char *backend;	/* "file" (default) | "s3" */
	char *location; /* file: absolute store directory; s3: key prefix in bucket ("" = none) */
	char *endpoint; /* s3: e.g. http://127.0.0.1:9000 (default https://s3.<region>.amazonaws.com) */
	char *bucket; /* s3 */
	char *region; /* s3: default "us-east-1" */
	int path_style; /* s3: 1 = path-style, 0 = virtual-hosted (default 0; 1 when endpoint is an IP or has a port);
				    -1 after init = not set, resolved by finalize */
	char *access_key; /* s3 credentials (may come from env / credentials_file) */
	char *secret_key;
	char *session_token;
	char *credentials_file; /* default ~/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE) */
	char *profile;		/* default $AWS_PROFILE or "default" */
	char *store_name;	/* DataJoint store name in metadata; default "stagefs" */
	char *schema_prefix;	/* default "_schema" */
	char *hash_prefix;	/* default "_hash" */
	int subfolding[SFS_MAX_SUBFOLD]; /* e.g. {2,2}; "2,2" or "2:2" */
	int n_subfolding;		 /* 0 = no subfolding */
	char *partition_pattern;	 /* e.g. "{subject_id}/{session_date}"; NULL = none */
	int token_length;		 /* default 8, clamped to 4..16 */
	char *index;			 /* SQLite index path; default see sfs_config_finalize */
	char *cache_dir;     /* default $XDG_CACHE_HOME/stagefs or /var/cache/stagefs (root) */
	uint64_t cache_size; /* bytes; accepts suffixes K M G T (1024-based); default 10G */
	int dir_cache_time;  /* s3: seconds a canonical directory listing is reused; default 10 */
	char *upload;	     /* s3: "async" (default): close() queues the upload; "sync": waits */
	int upload_delay;    /* s3, async: seconds after a file's last close until its upload; 2 */
	int inode_handles;   /* find staging inodes by kernel file handle: 1 must, 0 never,
				-1 (default) where the filesystem and privileges allow */
	uint64_t
		max_inodes; /* staging and snapshot-file inodes kept before idle ones are reclaimed; 200K */
	char *snapshot; /* mount this published snapshot read-only; NULL = live store */
	int read_only;	/* -o ro (forced by snapshot) */
	int allow_other;
	int default_permissions;
	int secret_from_file; /* 1 when secret_key came from a config file (perm check done) */
};

/*
 * Fill *c with defaults (see field comments): backend "file", region
 * "us-east-1", store_name "stagefs", schema_prefix "_schema", hash_prefix
 * "_hash", token_length 8, cache_size 10G, path_style -1 (auto).  Defaults that
 * depend on other keys or the environment (endpoint, index, cache_dir,
 * credentials_file, profile, path_style) are filled by sfs_config_finalize.
 * Cannot fail (a string it cannot allocate stays NULL; finalize fills it).
 */
void sfs_config_init(struct sfs_config *c);

/* Free every string held by *c (secrets are wiped first) and reset it to zero. NULL-safe. */
void sfs_config_release(struct sfs_config *c);

/*
 * Set one key.  Validates the value (numbers, enum values, subfolding list,
 * name syntax) and refuses unknown keys.  origin SFS_CFG_OPTION refuses
 * secret_key/session_token ("secret_key: not allowed in -o; use the config
 * file or AWS_SECRET_ACCESS_KEY").  Boolean keys accept 1/0/true/false/yes/no
 * and a bare key (value NULL) means true.  Error text: "<key>: <why>" or
 * "unknown key 'x'".  Sets secret_from_file when origin is SFS_CFG_FILE and
 * key is secret_key.  Callers of SFS_CFG_FILE do their own permission check.
 */
int sfs_config_set(struct sfs_config *c, const char *key, const char *value,
		   enum sfs_config_origin origin, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Parse a comma-separated -o option string ("ro,allow_other,token_length=12").
 * FUSE-only options that are not config keys are appended, comma separated, to
 * *passthrough (allocated, caller frees; may stay NULL).
 *
 * Items are split on ',' ; "\," and "\\" escape as in fuse_opt.  "key=value"
 * sets a config key (secret_key / session_token are refused), a bare flag key
 * (ro, allow_other, default_permissions, path_style) means true.  Config keys
 * never go to *passthrough: the caller turns ro / allow_other /
 * default_permissions into mount options itself.  Passed through: rw, suid,
 * nosuid, dev, nodev, exec, noexec, [no]atime, [no]relatime, [no]strictatime,
 * [no]lazytime, [no]diratime, async, sync, dirsync, _netdev, auto, noauto,
 * user, nouser, users, owner, group, nofail, defaults, auto_unmount,
 * big_writes, allow_root, debug, clone_fd, silent, loud, mand, nomand, x-*,
 * and max_read= fsname= subtype= blksize= max_idle_threads= max_threads=
 * comment= context= fscontext= defcontext= rootcontext= user=.  "rw" does not
 * clear ro (fstab passes rw by default).  Anything else: -EINVAL
 * "unknown option 'x'".  When *passthrough is already set the new options are
 * appended to it.
 */
int sfs_config_parse_opts(struct sfs_config *c, const char *opts, char **passthrough, char *err,
			  size_t errlen) __attribute__((warn_unused_result));

/*
 * Load an INI config file (inih).  Keys may appear before any section or in a
 * [store] / [stagefs] section; any other section is an error naming its line.
 * A file that sets secret_key (or session_token) and is readable by group or
 * others is refused with -EACCES ("chmod 600 FILE").
 *
 * Format: inih's (';' or '#' comments, "key = value" or "key: value", inline
 * "; comment" after a blank).  Keys start in column 1 (an indented line is an
 * error: inih would read it as a continuation of the previous value).  A key
 * given twice: the last wins.  Flags need a value in a file ("ro = true").
 * Errors: -ENOENT "FILE: no such file"; -EINVAL "FILE:LINE: syntax error",
 * "FILE:LINE: unknown key 'x'", "FILE:LINE: KEY: why", "FILE:LINE: unknown
 * section 'x'" (LINE is the first key of that section: inih reports sections
 * only through their keys), "FILE:LINE: line too long".  The first error in
 * the file is reported; nothing is applied when there is one.
 */
int sfs_config_load_file(struct sfs_config *c, const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Interpret a mount SOURCE: an existing directory -> backend=file,
 * location=realpath; "file:///abs/dir" -> same (the directory is created if
 * missing); "s3://bucket[/prefix]?endpoint=..&region=..&path_style=1" ->
 * backend=s3; an existing regular file -> sfs_config_load_file.
 *
 * URLs: the bucket, the prefix (-> location) and query values are
 * percent-decoded ('+' stays '+'); "file://localhost/dir" is accepted.  Query
 * parameters are config keys (both schemes), except secret_key and
 * session_token (secrets do not belong in ps output) and backend, bucket and
 * location (they come from the URL itself).  Errors: -EINVAL "source URL:
 * unknown parameter 'x'", "source URL: missing bucket ...", "unsupported URL
 * scheme 'x' ..."; -ENOENT "SOURCE: no such directory or config file".
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
 *
 * Credential precedence (per key, only keys still unset are filled):
 *   1. keys set explicitly (config file, -o, URL);
 *   2. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
 *   3. the credentials file (credentials_file, else $AWS_SHARED_CREDENTIALS_FILE,
 *      else $HOME/.aws/credentials; parsed with inih), section [profile]
 *      (profile, else $AWS_PROFILE, else "default"), keys aws_access_key_id,
 *      aws_secret_access_key, aws_session_token.
 * (The AWS CLI puts the environment above its config; here a key written into
 * our config file is the more specific choice and wins.)  A session token is
 * only taken from the source that also supplied access_key, so a stale
 * AWS_SESSION_TOKEN never pairs with a configured long-term key.  The
 * credentials file is read only when access_key or secret_key is still unset;
 * a missing default file is fine, a missing explicit credentials_file is
 * -ENOENT, a profile set explicitly (key or AWS_PROFILE) but absent from the
 * file is -EINVAL.  access_key without secret_key (or the reverse) is -EINVAL;
 * no credentials at all means anonymous requests.  The defaults of profile and
 * credentials_file are used but not stored (the fields stay NULL), so
 * finalize may run again on its own result.
 *
 * s3 also: location has its leading/trailing '/' stripped (NULL -> ""),
 * endpoint defaults to https://s3.<region>.amazonaws.com (a trailing '/' is
 * dropped), path_style defaults to 1 when the endpoint host is an IP address or
 * names a port, else 0.  file: location must be absolute (trailing '/' dropped).
 * cache_dir default: $XDG_CACHE_HOME/stagefs, else $HOME/.cache/stagefs, or
 * /var/cache/stagefs when euid is 0.  The index id hashes
 * "file:///abs/dir" for the file backend ("file:" + "" + "/" + "" + "/" +
 * location) and e.g. "s3:http://127.0.0.1:9000/bucket/prefix" for s3.
 * For root (euid 0) the /var/lib and /var/cache paths are used even when XDG
 * variables are set.  Nothing is created on disk.
 */
int sfs_config_finalize(struct sfs_config *c, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Parse "2,2" / "2:2" / "" into out[] (each 1..16, at most SFS_MAX_SUBFOLD, and
 * at most 26 in total: the length of a hash); blanks around numbers are allowed.
 * Returns the count (0 for "") or -EINVAL ("0", "17", "a", "2,").  out is
 * written only on success.
 */
int sfs_config_parse_subfolding(const char *s, int out[SFS_MAX_SUBFOLD]);

/*
 * Parse "10G", "512M", "4096" into bytes: decimal digits, then optionally one
 * of K M G T (any case, 1024-based) optionally followed by "B" or "iB".
 * -EINVAL on junk ("", "1.5G", "-1", " 1"), or overflow of 64 bits; *out is
 * written only on success.
 */
int sfs_config_parse_size(const char *s, uint64_t *out);

/*
 * Write a one-line description of the store into out, without secrets, for
 * logs and errors: "file:/data/store", "s3://bucket/prefix at
 * http://127.0.0.1:9000" (" at ..." only once endpoint is known), with
 * " snapshot NAME" appended when set.  Returns 0, -ENOSPC when truncated (out
 * still NUL-terminated), -EINVAL for a NULL/empty buffer.
 */
int sfs_config_describe(const struct sfs_config *c, char *out, size_t outlen);

#endif
