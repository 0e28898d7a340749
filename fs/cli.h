/*
 * fs/cli.h - what the subcommands (fs/cli*.c) share: opening the store of a
 * SOURCE or of a MOUNTPOINT, and small helpers.  Not thread-safe, like main.
 */
#ifndef SFS_FS_CLI_H
#define SFS_FS_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "common/config.h"
#include "index/index.h"

/* A store opened by this process. */
struct store {
	struct sfs_config cfg;
	struct sfs_backend *be;
	struct sfs_index *ix;
	char *tmp_cache; /* a private cache_dir, removed at close */
};

/*
 * Open SOURCE, or the source a MOUNTPOINT's daemon reports (its root's
 * user.stagefs.source), with extra -o opts (may be NULL).  writable: the
 * command changes the store; want_index: open the index too; private_cache:
 * a cache of our own (what must read the store, not blocks cached from it),
 * removed at close.  Returns an exit code: 0, 1 (cannot open), 2 (usage);
 * the reason is printed.
 */
int sfs_cli_store_open(const char *where, const char *opts, int writable, int want_index,
		       int private_cache, struct store *s);
void sfs_cli_store_close(struct store *s);
/* 1 when path is the mount point of a stagefs mount. */
int sfs_cli_is_mount(const char *path);

/* One member of a JSON document (json_extract), malloc'd; NULL when absent. */
char *sfs_cli_jget(const char *json, const char *path);
/* A whole number 1..99999, or -1. */
int sfs_cli_atoi(const char *s);
/* A whole xattr as a new string. 0 or -errno. */
int sfs_cli_xattr(const char *path, const char *name, char **out);
/* Append o to the comma-separated -o list *opts (malloc'd; NULL to start). */
int sfs_cli_add_opt(char **opts, const char *o) __attribute__((warn_unused_result));
/* Add object key to s's index from its record in the store (reindex, fsck --repair, gc restore). */
int sfs_cli_import_record(struct store *s, const char *key) __attribute__((warn_unused_result));
/* The receipt records of dedup commits (SFS_RECEIPT_RECORDS) into s->ix; *added counts them. */
int sfs_cli_import_receipts(struct store *s, uint64_t *added) __attribute__((warn_unused_result));
/*
 * A store key "<dir>/<stem>.json" that is not a directory: 1 and *stem
 * (malloc'd); 0 for any other key; -ENOMEM.  (Object records, gc's notes.)
 */
int sfs_cli_json_stem(const char *key, const struct sfs_bstat *st, const char *dir, char **stem);
/* The stems below dir, collected by sfs_cli_stems_cb (a backend walk callback). */
struct sfs_cli_stems {
	const char *dir;
	char **v;
	size_t n, cap;
};
int sfs_cli_stems_cb(void *arg, const char *key, const struct sfs_bstat *st);
void sfs_cli_stems_free(struct sfs_cli_stems *l);
/* 1536 -> "1.5 KiB" */
void sfs_cli_human(uint64_t b, char *out, size_t len);

#endif
