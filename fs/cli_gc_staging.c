/*
 * fs/cli_gc_staging.c - `stagefs gc --staging-older-than DAYS`: abandoned
 * staging entries go to the quarantine (see fs/gc.h).
 *
 * An entry is what a commit takes: staging/<schema>/<table>/<name> (a file or
 * a tree), or a file higher up.  It is abandoned when nothing in it changed
 * (the newest mtime of its files and directories; on s3 the time each file
 * was stored) for DAYS days and this host's index has no commit of it
 * pending, running or failed (a failed one waits for `stagefs jobs --retry`).
 * A quarantined entry is purged by a run after the grace period, or taken
 * back by `gc restore _staging/<rel>` unless its name is taken again.
 *
 * On s3 a workstation that still holds the entry in its local staging cache
 * stores it again at its next mount: there it is not abandoned.
 */
#include "fs/gc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fs.h"

#define ENTRY_DEPTH 3 /* <schema>/<table>/<name> */

void sfs_gc_span(double days, char *out, size_t len)
{
	double s = days * DAY_SECONDS;

	if (days >= 1)
		snprintf(out, len, "%g days", days);
	else if (s >= 3600)
		snprintf(out, len, "%.1f h", s / 3600);
	else if (s >= 60)
		snprintf(out, len, "%.0f min", s / 60);
	else
		snprintf(out, len, "%.0f s", s);
}

int sfs_gc_is_staging(const char *key)
{
	size_t n = strlen(GC_STAGING);

	return strncmp(key, GC_STAGING, n) == 0 && key[n] == '/' && key[n + 1];
}

/*
 * The entry key is in, into out (a prefix of key), or "" when key is a
 * directory above the entries (<schema> or <schema>/<table>).
 */
static void entry_of(const char *key, int is_dir, char *out, size_t outlen)
{
	const char *p = key + strlen(GC_STAGING) + 1;
	int depth = 0;

	for (const char *c = p; *c; c++)
		if (*c == '/' && ++depth == ENTRY_DEPTH) {
			snprintf(out, outlen, "%.*s", (int)(c - key), key);
			return;
		}
	if (depth + 1 < ENTRY_DEPTH && is_dir)
		out[0] = '\0';
	else
		snprintf(out, outlen, "%s", key);
}

static int scan_cb(void *arg, const char *key, const struct sfs_bstat *st)
{
	struct gc *g = arg;
	char entry[4096], mt[24], sz[24];
	const char *base = strrchr(key, '/');

	/* a download or a rename in flight, of the daemon's own */
	if (base && strncmp(base + 1, ".stagefs", 8) == 0)
		return 0;
	entry_of(key, S_ISDIR(st->mode), entry, sizeof(entry));
	if (!entry[0])
		return 0;
	snprintf(mt, sizeof(mt), "%lld", (long long)st->mtime_ns);
	snprintf(sz, sizeof(sz), "%llu", S_ISDIR(st->mode) ? 0ULL : (unsigned long long)st->size);
	return sfs_gc_q(g,
			"INSERT INTO stg VALUES(?1, CAST(?2 AS INTEGER), CAST(?3 AS INTEGER)) "
			"ON CONFLICT(entry) DO UPDATE SET newest=max(newest, excluded.newest), "
			"bytes=bytes+excluded.bytes",
			3, (const char *const[]){entry, mt, sz}, NULL);
}

/* One abandoned entry to the quarantine: its note, the move, this host's rows of it. */
static int quarantine_entry(struct gc *g, const char *key, uint64_t bytes)
{
	char b[32], span[32], *tk = trash_key(key);
	const char *rel = key + strlen(GC_STAGING) + 1;
	int rc = tk ? 0 : -ENOMEM;

	sfs_cli_human(bytes, b, sizeof(b));
	if (!rc && !g->dry_run) {
		rc = sfs_gc_note_put(g, key, bytes);
		if (!rc)
			rc = sfs_gc_move(g->s, key, tk);
		if (!rc)
			rc = sfs_index_staged_forget(g->s->ix, rel);
	}
	free(tk);
	if (rc) {
		fprintf(stderr, "stagefs: gc: cannot quarantine '%s': %s\n", key, strerror(-rc));
		g->failed++;
		return 0;
	}
	sfs_gc_span(g->stg_days, span, sizeof(span));
	printf("%s %s (%s, unchanged for more than %s)\n",
	       g->dry_run ? "would quarantine" : "quarantined", key, b, span);
	g->stg_quarantined++;
	g->stg_bytes += bytes;
	return 0;
}

int sfs_gc_staging(struct gc *g, double days)
{
	int64_t cutoff = (int64_t)g->now * 1000000000LL - (int64_t)(days * DAY_SECONDS * 1e9);
	sqlite3_stmt *st = NULL;
	int r;

	g->stg_days = days;
	int rc = sfs_gc_walk(g, GC_STAGING, scan_cb);
	if (!rc)
		rc = sfs_gc_db(g,
			       sqlite3_prepare_v2(
				       g->db, "SELECT entry, newest, bytes FROM stg ORDER BY entry",
				       -1, &st, NULL),
			       "staging entries");
	while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(st, 0);
		struct sfs_job j = {0};
		g->stg_entries++;
		if (sqlite3_column_int64(st, 1) >= cutoff) {
			g->stg_recent++;
			continue;
		}
		int jr = sfs_index_job_of(g->s->ix, key + strlen(GC_STAGING) + 1, &j);
		if (jr == 0) {
			g->stg_busy++;
			printf("kept %s: its commit (job %lld) is %s\n", key, (long long)j.id,
			       j.status ? j.status : "queued");
			sfs_job_release(&j);
			continue;
		}
		if (jr != -ENOENT) {
			rc = jr;
			break;
		}
		rc = quarantine_entry(g, key, (uint64_t)sqlite3_column_int64(st, 2));
	}
	sqlite3_finalize(st);
	return rc;
}
