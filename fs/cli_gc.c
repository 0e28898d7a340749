/*
 * fs/cli_gc.c - garbage collection of canonical objects (SPEC §6):
 *
 *   stagefs gc SOURCE --referenced FILE [--grace DAYS] [--dry-run] [-o key=value]...
 *   stagefs gc list SOURCE [-o key=value]...
 *   stagefs gc restore SOURCE KEY... [-o key=value]...
 *
 * A run first looks at the quarantine: an object there longer than the grace
 * period is checked again and purged, or restored when FILE or a live
 * snapshot references it now.  Then every committed object (one with a
 * record in the store) that no line of FILE references and no live snapshot
 * lists is moved to the quarantine.  Kept whatever FILE says: objects
 * committed after FILE was written, or less than a minute before (an export
 * older than a commit cannot know it; clocks and store timestamps differ).  A run changes nothing when FILE is empty, when a snapshot
 * cannot be read, or when FILE names none of the store's objects (the wrong
 * store, or paths not relative to its root): DataJoint's own scan once
 * reported no references and would have deleted everything.
 *
 * A line of FILE is a store key ("_schema/lab/Rec/id=1/raw_ab12cd34.h5"; a
 * leading "/" or "./" is ignored, "#" starts a comment): it references the
 * object it names, the object it is inside of (a file of a zarr tree), and
 * every object below it (a directory).
 *
 * The quarantine is in the store (every host sees it): _trash/<key> (the
 * object, moved: O(1) on file), _trash/.stagefs/objects/<key>.json[.parts/]
 * (its record) and _trash/.stagefs/gc/<key>.json (when, by whom).  The object
 * leaves this host's index and receipts; restore brings them back from the
 * record.  Each step can be repeated: the next run completes one cut short.
 */
#include "fs/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/fs.h"
#include "fs/gc.h"
#include "fs/snapshot.h"
#include "index/addressing.h"
#include "index/snapdb.h"

int sfs_gc_db(struct gc *g, int rc, const char *what)
{
	if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	fprintf(stderr, "stagefs: gc: %s: %s\n", what, sqlite3_errmsg(g->db));
	return (rc & 0xff) == SQLITE_FULL ? -ENOSPC : -EIO;
}

int sfs_gc_exec(struct gc *g, const char *sql)
{
	return sfs_gc_db(g, sqlite3_exec(g->db, sql, NULL, NULL, NULL), sql);
}

/* Run sql with text parameters; *hit gets 1 when it returned a row (may be NULL). */
int sfs_gc_q(struct gc *g, const char *sql, int n, const char *const *args, int *hit)
{
	sqlite3_stmt *st = NULL;
	int rc = sfs_gc_db(g, sqlite3_prepare_v2(g->db, sql, -1, &st, NULL), sql);

	for (int i = 0; !rc && i < n; i++)
		sqlite3_bind_text(st, i + 1, args[i], -1, SQLITE_STATIC);
	if (!rc) {
		int r = sqlite3_step(st);
		if (hit)
			*hit = r == SQLITE_ROW;
		rc = sfs_gc_db(g, r, sql);
	}
	sqlite3_finalize(st);
	return rc;
}

static int gc_open_db(struct gc *g)
{
	const char *tmp = getenv("TMPDIR");
	int fd;

	if (asprintf(&g->dbfile, "%s/stagefs-gc-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0) {
		g->dbfile = NULL;
		return -ENOMEM;
	}
	fd = mkstemp(g->dbfile);
	if (fd < 0)
		return -errno;
	close(fd);
	if (sqlite3_open(g->dbfile, &g->db) != SQLITE_OK)
		return sfs_gc_db(g, SQLITE_CANTOPEN, "open the scratch database");
	return sfs_gc_exec(
		g, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
		   "CREATE TABLE ref(path TEXT PRIMARY KEY, hit INTEGER NOT NULL DEFAULT 0);"
		   "CREATE TABLE keep(key TEXT PRIMARY KEY);"
		   "CREATE TABLE cand(key TEXT PRIMARY KEY, mtime INTEGER);"
		   "CREATE TABLE stg(entry TEXT PRIMARY KEY, newest INTEGER, bytes INTEGER);");
}

static void gc_close_db(struct gc *g)
{
	sqlite3_close(g->db); /* NULL is a no-op */
	if (g->dbfile)
		unlink(g->dbfile);
	free(g->dbfile);
}

/* ---- what is referenced ---- */

static int load_refs(struct gc *g, const char *file)
{
	FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	struct stat st;
	int rc = 0;

	if (!f) {
		fprintf(stderr, "stagefs: gc: cannot read '%s': %s\n", file, strerror(errno));
		return -errno;
	}
	/* stdin has no age of its own: the run's start stands in for it */
	g->list_mtime_ns = f != stdin && fstat(fileno(f), &st) == 0
				   ? (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec
				   : (int64_t)g->now * 1000000000LL;
	rc = sfs_gc_exec(g, "BEGIN");
	while (!rc && (n = getline(&line, &cap, f)) >= 0) {
		char *p = line, *e;
		if ((e = strchr(p, '#')) != NULL)
			*e = '\0';
		e = p + strlen(p);
		while (e > p && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		while (*p == '/' || (p[0] == '.' && p[1] == '/'))
			p += *p == '/' ? 1 : 2;
		while (e > p && e[-1] == '/')
			*--e = '\0';
		if (!*p)
			continue;
		rc = sfs_gc_q(g, "INSERT OR IGNORE INTO ref(path) VALUES(?1)", 1,
			      (const char *const[]){p}, NULL);
		g->refs += sqlite3_changes(g->db) > 0;
	}
	if (!rc && ferror(f))
		rc = -EIO;
	rc = rc ? (sfs_gc_exec(g, "ROLLBACK"), rc) : sfs_gc_exec(g, "COMMIT");
	free(line);
	if (f != stdin)
		fclose(f);
	return rc;
}

static int keep_object(void *arg, const char *object)
{
	return sfs_gc_q(arg, "INSERT OR IGNORE INTO keep VALUES(?1)", 1,
			(const char *const[]){object}, NULL);
}

static int keep_snapshot(void *arg, const char *name)
{
	struct gc *g = arg;
	struct sfs_snapdb *db = NULL;
	char *head = NULL;
	int rc = sfs_snap_load(g->s->be, name, g->s->cfg.cache_dir, &db, &head);

	if (!rc)
		rc = sfs_snapdb_each_object(db, keep_object, g);
	if (rc)
		fprintf(stderr,
			"stagefs: gc: snapshot '%s' cannot be read (%s): what it references is "
			"unknown, nothing done\n",
			name, strerror(-rc));
	g->snapshots += !rc;
	sfs_snapdb_close(db);
	free(head);
	return rc;
}

/*
 * 1 when key is referenced: a live snapshot lists it, or a line of FILE names
 * it, a path inside it or a directory above it (the lines it matched are
 * marked); 0 when not; -errno.
 */
static int referenced(struct gc *g, const char *key)
{
	int hit = 0, any = 0, rc;
	char *k = strdup(key);

	if (!k)
		return -ENOMEM;
	rc = sfs_gc_q(g, "SELECT 1 FROM keep WHERE key=?1", 1, (const char *const[]){key}, &hit);
	any |= hit;
	/* the key, and what is inside it ('0' is the byte after '/') */
	if (!rc)
		rc = sfs_gc_q(
			g,
			"UPDATE ref SET hit=1 WHERE path=?1 OR (path>?1||'/' AND path<?1||'0') "
			"RETURNING 1",
			1, (const char *const[]){key}, &hit);
	any |= hit;
	for (char *sl = strrchr(k, '/'); !rc && sl; sl = strrchr(k, '/')) {
		*sl = '\0';
		rc = sfs_gc_q(g, "UPDATE ref SET hit=1 WHERE path=?1 RETURNING 1", 1,
			      (const char *const[]){k}, &hit);
		any |= hit;
	}
	free(k);
	return rc ? rc : any;
}

/* ---- store keys ---- */

char *sfs_gc_kf(const char *fmt, ...)
{
	va_list ap;
	char *r = NULL;

	va_start(ap, fmt);
	if (vasprintf(&r, fmt, ap) < 0)
		r = NULL;
	va_end(ap);
	return r;
}

#define record_key(key, sfx) sfs_gc_kf(SFS_OBJECT_RECORDS "/%s.json%s", (key), (sfx))

/* Move from -> to; done already (from gone, to there) counts as done. */
int sfs_gc_move(struct store *s, const char *from, const char *to)
{
	struct sfs_bstat st;
	int rc = sfs_backend_move(s->be, from, to);

	if (rc == -ENOENT && sfs_backend_stat(s->be, to, &st) == 0)
		rc = 0;
	return rc;
}

/* The object key, its record and its record's parts from one place to the other. */
static int move_object(struct store *s, const char *key, int to_trash)
{
	char *tk = trash_key(key), *rk = record_key(key, ""), *pk = record_key(key, ".parts");
	char *trk = rk ? trash_key(rk) : NULL, *tpk = pk ? trash_key(pk) : NULL;
	int rc = tk && trk && tpk ? 0 : -ENOMEM;

	/* the object first, then its record: a record without its object is what fsck reports */
	if (!rc)
		rc = to_trash ? sfs_gc_move(s, key, tk) : sfs_gc_move(s, tk, key);
	if (!rc) {
		rc = to_trash ? sfs_gc_move(s, pk, tpk) : sfs_gc_move(s, tpk, pk);
		if (rc == -ENOENT)
			rc = 0; /* no parts: a record of at most SFS_RECORD_INLINE_FILES files */
	}
	if (!rc)
		rc = to_trash ? sfs_gc_move(s, rk, trk) : sfs_gc_move(s, trk, rk);
	free(tk);
	free(rk);
	free(pk);
	free(trk);
	free(tpk);
	return rc;
}

/* Bytes and files of object key (in the store, or in the quarantine). */
static int size_cb(void *arg, const char *key, const struct sfs_bstat *st)
{
	(void)key;
	if (!S_ISDIR(st->mode))
		*(uint64_t *)arg += st->size;
	return 0;
}

uint64_t sfs_gc_bytes(struct store *s, const char *key)
{
	struct sfs_bstat st;
	uint64_t n = 0;

	if (sfs_backend_stat(s->be, key, &st) != 0)
		return 0;
	if (!S_ISDIR(st.mode))
		return st.size;
	(void)sfs_backend_walk(s->be, key, size_cb, &n);
	return n;
}

/* ---- quarantine, purge, restore ---- */

int sfs_gc_note_put(struct gc *g, const char *key, uint64_t bytes)
{
	char when[48], host[256] = "", num[24], ep[24], *note = NULL, *nk = note_key(key);
	int rc = nk ? 0 : -ENOMEM;

	sfs_now_iso(when, sizeof(when));
	(void)gethostname(host, sizeof(host) - 1);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)bytes);
	snprintf(ep, sizeof(ep), "%lld", (long long)g->now);
	if (!rc)
		rc = sfs_json_eval("json_object('format','stagefs-gc','key',?1,'quarantined',?2,"
				   "'epoch',CAST(?3 AS INTEGER),'host',?4,'bytes',CAST(?5 AS "
				   "INTEGER))",
				   5, (const char *const[]){key, when, ep, host, num}, &note);
	if (!rc)
		rc = sfs_backend_put_bytes(g->s->be, nk, note, strlen(note), 0);
	free(note);
	free(nk);
	return rc;
}

static int quarantine(struct gc *g, const char *key)
{
	struct store *s = g->s;
	uint64_t bytes = sfs_gc_bytes(s, key);
	char b[32];
	int rc = 0;

	sfs_cli_human(bytes, b, sizeof(b));
	if (g->dry_run) {
		printf("would quarantine %s (%s)\n", key, b);
		g->quarantined++;
		g->bytes_q += bytes;
		return 0;
	}
	/* the note first: whatever a crash leaves in _trash/ is explained and found again */
	rc = sfs_gc_note_put(g, key, bytes);
	if (!rc)
		rc = move_object(s, key, 1);
	if (!rc)
		rc = sfs_index_object_forget(s->ix, key);
	if (rc) {
		fprintf(stderr, "stagefs: gc: cannot quarantine '%s': %s\n", key, strerror(-rc));
		g->failed++;
	} else {
		printf("quarantined %s (%s)\n", key, b);
		g->quarantined++;
		g->bytes_q += bytes;
	}
	return 0;
}

/*
 * Back from the quarantine, then the note: an object with its record and its
 * index rows (from the record), or a staging entry.  -EEXIST when the name is
 * taken again (a move never replaces).
 */
static int restore_one(struct store *s, const char *key)
{
	int stg = sfs_gc_is_staging(key);
	char *nk = note_key(key), *tk = trash_key(key);
	struct sfs_bstat st;
	int rc = nk && tk ? 0 : -ENOMEM;

	if (!rc && sfs_backend_stat(s->be, nk, &st) != 0 && sfs_backend_stat(s->be, tk, &st) != 0)
		rc = -ENOENT;
	if (!rc)
		rc = stg ? sfs_gc_move(s, tk, key) : move_object(s, key, 0);
	if (!rc && !stg)
		rc = sfs_cli_import_record(s, key);
	uint64_t dedups = 0; /* the receipts of dedup commits of it: in receipt records */
	if (!rc && !stg)
		rc = sfs_cli_import_receipts(s, &dedups);
	if (!rc) {
		rc = sfs_backend_remove(s->be, nk);
		if (rc == -ENOENT)
			rc = 0;
	}
	free(nk);
	free(tk);
	return rc;
}

static int purge_one(struct store *s, const char *key)
{
	char *tk = trash_key(key), *rk = record_key(key, ""), *pk = record_key(key, ".parts");
	char *trk = rk ? trash_key(rk) : NULL, *tpk = pk ? trash_key(pk) : NULL;
	char *nk = note_key(key);
	const char *order[] = {tk, tpk, trk, nk}; /* the note last: until then it is found again */
	int rc = tk && trk && tpk && nk ? 0 : -ENOMEM;

	for (size_t i = 0; !rc && i < sizeof(order) / sizeof(order[0]); i++) {
		rc = sfs_backend_remove(s->be, order[i]);
		if (rc == -ENOENT)
			rc = 0;
	}
	free(tk);
	free(rk);
	free(pk);
	free(trk);
	free(tpk);
	free(nk);
	return rc;
}

/* The quarantined keys, from their notes ("_trash/.stagefs/gc/<key>.json"). */
static int notes_list(struct store *s, struct sfs_cli_stems *l)
{
	l->dir = GC_NOTES;
	int rc = sfs_backend_walk(s->be, GC_NOTES, sfs_cli_stems_cb, l);

	return rc == -ENOENT ? 0 : rc;
}

/* A note's JSON member, or NULL. */
static char *note_get(struct store *s, const char *key, const char *member)
{
	char *nk = note_key(key), *out = NULL, *j = NULL;

	if (nk && sfs_backend_get_text(s->be, nk, NOTE_MAX, &j) == 0)
		out = sfs_cli_jget(j, member);
	free(j);
	free(nk);
	return out;
}

/* Objects quarantined longer than the grace period: checked again, then purged or restored. */
static int expire(struct gc *g)
{
	struct sfs_cli_stems l = {0};
	int rc = notes_list(g->s, &l);

	for (size_t i = 0; !rc && i < l.n; i++) {
		const char *key = l.v[i];
		char *ep = note_get(g->s, key, "$.epoch");
		long long since = ep ? strtoll(ep, NULL, 10) : 0;
		free(ep);
		/* an object is checked again against the reference list: without one, it waits */
		int stg = sfs_gc_is_staging(key);
		if ((double)(g->now - since) < g->grace_days * DAY_SECONDS ||
		    (!stg && !g->objects)) {
			g->waiting++;
			continue;
		}
		int r = stg ? 0 : referenced(g, key);
		if (r < 0) {
			rc = r;
			break;
		}
		if (r) {
			printf("%s %s (referenced again)\n",
			       g->dry_run ? "would restore" : "restored", key);
			r = g->dry_run ? 0 : restore_one(g->s, key);
			if (r)
				fprintf(stderr, "stagefs: gc: cannot restore '%s': %s\n", key,
					strerror(-r));
			g->failed += r != 0;
			g->restored += r == 0;
			continue;
		}
		char *tk = trash_key(key);
		uint64_t bytes = tk ? sfs_gc_bytes(g->s, tk) : 0;
		char b[32];
		free(tk);
		sfs_cli_human(bytes, b, sizeof(b));
		r = g->dry_run ? 0 : purge_one(g->s, key);
		if (r) {
			fprintf(stderr, "stagefs: gc: cannot purge '%s': %s\n", key, strerror(-r));
			g->failed++;
			continue;
		}
		printf("%s %s (%s)\n", g->dry_run ? "would purge" : "purged", key, b);
		g->purged++;
		g->bytes_p += bytes;
	}
	sfs_cli_stems_free(&l);
	return rc;
}

int sfs_gc_walk(struct gc *g, const char *prefix,
		int (*cb)(void *g, const char *key, const struct sfs_bstat *st))
{
	int rc = sfs_gc_exec(g, "BEGIN");

	if (!rc) {
		rc = sfs_backend_walk(g->s->be, prefix, cb, g);
		if (rc == -ENOENT)
			rc = 0;
	}
	return rc ? (sfs_gc_exec(g, "ROLLBACK"), rc) : sfs_gc_exec(g, "COMMIT");
}

/* ---- candidates: every object with a record ---- */

static int cand_cb(void *arg, const char *key, const struct sfs_bstat *st)
{
	struct gc *g = arg;
	char *k = NULL, mt[24];
	int rc = sfs_cli_json_stem(key, st, SFS_OBJECT_RECORDS, &k);

	if (rc <= 0)
		return rc;
	snprintf(mt, sizeof(mt), "%lld", (long long)st->mtime_ns);
	rc = sfs_gc_q(g, "INSERT OR IGNORE INTO cand VALUES(?1, CAST(?2 AS INTEGER))", 2,
		      (const char *const[]){k, mt}, NULL);
	free(k);
	return rc;
}

static int collect(struct gc *g)
{
	sqlite3_stmt *st = NULL;
	int rc = sfs_gc_walk(g, SFS_OBJECT_RECORDS, cand_cb), r;

	if (rc)
		return rc;
	/* decide every candidate before moving any: the run may refuse as a whole */
	rc = sfs_gc_exec(g, "ALTER TABLE cand ADD COLUMN fate INTEGER");
	if (!rc)
		rc = sfs_gc_db(
			g, sqlite3_prepare_v2(g->db, "SELECT key, mtime FROM cand", -1, &st, NULL),
			"candidates");
	sqlite3_stmt *up = NULL;
	if (!rc)
		rc = sfs_gc_db(g,
			       sqlite3_prepare_v2(g->db, "UPDATE cand SET fate=?2 WHERE key=?1", -1,
						  &up, NULL),
			       "candidates");
	while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
		char *key = strdup((const char *)sqlite3_column_text(st, 0));
		int64_t mt = sqlite3_column_int64(st, 1);
		int ref = key ? referenced(g, key) : -ENOMEM;
		g->candidates++;
		if (ref < 0) {
			rc = ref;
		} else {
			/* 1 referenced, 2 newer than the reference list, 0 to quarantine */
			int fate = ref ? 1 : mt >= g->list_mtime_ns - YOUNG_MARGIN_NS ? 2 : 0;
			g->referenced += fate == 1;
			g->young += fate == 2;
			sqlite3_reset(up);
			sqlite3_bind_text(up, 1, key, -1, SQLITE_STATIC);
			sqlite3_bind_int(up, 2, fate);
			rc = sfs_gc_db(g, sqlite3_step(up), "candidates");
		}
		free(key);
	}
	sqlite3_finalize(st);
	sqlite3_finalize(up);
	return rc;
}

static int quarantine_all(struct gc *g)
{
	sqlite3_stmt *st = NULL;
	int rc = sfs_gc_db(g,
			   sqlite3_prepare_v2(g->db,
					      "SELECT key FROM cand WHERE fate=0 ORDER BY key", -1,
					      &st, NULL),
			   "quarantine");
	int r;

	while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW)
		rc = quarantine(g, (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return rc;
}

/* Lines of FILE that named nothing: a warning (the first few shown). */
static void unmatched(struct gc *g)
{
	sqlite3_stmt *st = NULL;
	int shown = 0;

	if (sqlite3_prepare_v2(g->db, "SELECT path FROM ref WHERE hit=0 ORDER BY path", -1, &st,
			       NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (shown++ < 5)
			fprintf(stderr,
				"stagefs: gc: warning: '%s' (in the reference list) names no "
				"object of this store\n",
				(const char *)sqlite3_column_text(st, 0));
	}
	if (shown > 5)
		fprintf(stderr, "stagefs: gc: warning: ... and %d more such lines\n", shown - 5);
	g->refs_hit = g->refs - (uint64_t)shown;
	sqlite3_finalize(st);
}

/* ---- the commands ---- */

static void gc_usage(FILE *o)
{
	fprintf(o, "usage: stagefs gc SOURCE [--referenced FILE] [--staging-older-than DAYS]\n"
		   "                 [--grace DAYS] [--dry-run] [-o k=v]...\n"
		   "       stagefs gc list SOURCE [-o k=v]...\n"
		   "       stagefs gc restore SOURCE KEY... [-o k=v]...\n"
		   "  Moves every committed object that no line of FILE (store keys, one per\n"
		   "  line, e.g. exported from the DataJoint database; - reads stdin) references\n"
		   "  and no live snapshot lists to the quarantine, _trash/ in the store.  An\n"
		   "  object quarantined longer than --grace days (default 7) is purged by the\n"
		   "  next run, or restored if something references it again.  Objects committed\n"
		   "  after FILE was written are kept.  --staging-older-than moves staging\n"
		   "  entries (staging/<schema>/<table>/<name>) in which nothing changed for\n"
		   "  DAYS days, and that no commit is working on, to the quarantine too.\n"
		   "  --dry-run prints what a run would do.\n"
		   "  list shows the quarantine; restore KEY takes an object back out of it.\n");
}

static int gc_run(struct store *s, const char *file, double stg_days, double grace, int dry_run)
{
	struct gc g = {.s = s,
		       .dry_run = dry_run,
		       .objects = file != NULL,
		       .grace_days = grace,
		       .now = time(NULL)};
	int rc = gc_open_db(&g), exitc = 1;

	if (!rc && file)
		rc = load_refs(&g, file);
	if (rc)
		goto out;
	if (file && !g.refs) {
		fprintf(stderr,
			"stagefs: gc: '%s' references nothing: refusing to quarantine "
			"every object\n",
			file);
		goto out;
	}
	rc = sfs_snap_list(s->be, keep_snapshot, &g);
	if (!rc)
		rc = expire(&g);
	if (!rc && stg_days >= 0)
		rc = sfs_gc_staging(&g, stg_days);
	if (!rc && file)
		rc = collect(&g);
	if (rc)
		goto out;
	if (file)
		unmatched(&g);
	if (g.candidates && !g.refs_hit) {
		fprintf(stderr,
			"stagefs: gc: none of the %llu paths in '%s' names one of the store's %llu "
			"objects (the wrong store, or paths not relative to its root?): nothing "
			"done\n",
			(unsigned long long)g.refs, file, (unsigned long long)g.candidates);
		goto out;
	}
	rc = file ? quarantine_all(&g) : 0;
	if (rc)
		goto out;
	char q[32], p[32];
	sfs_cli_human(g.bytes_q, q, sizeof(q));
	sfs_cli_human(g.bytes_p, p, sizeof(p));
	if (stg_days >= 0) {
		char sb[32], span[32];
		sfs_cli_human(g.stg_bytes, sb, sizeof(sb));
		sfs_gc_span(stg_days, span, sizeof(span));
		printf("gc%s: %llu staging entries: %llu changed in the last %s, %llu being "
		       "committed, %llu quarantined (%s)\n",
		       dry_run ? " (dry run)" : "", (unsigned long long)g.stg_entries,
		       (unsigned long long)g.stg_recent, span, (unsigned long long)g.stg_busy,
		       (unsigned long long)g.stg_quarantined, sb);
	}
	printf("gc%s: %llu objects: %llu referenced, %llu newer than the reference list, %llu "
	       "quarantined (%s); quarantine: %llu purged (%s), %llu restored, %llu in their "
	       "grace period; %llu live snapshots\n",
	       dry_run ? " (dry run)" : "", (unsigned long long)g.candidates,
	       (unsigned long long)g.referenced, (unsigned long long)g.young,
	       (unsigned long long)g.quarantined, q, (unsigned long long)g.purged, p,
	       (unsigned long long)g.restored, (unsigned long long)g.waiting,
	       (unsigned long long)g.snapshots);
	exitc = g.failed ? 1 : 0;
out:
	if (rc)
		fprintf(stderr, "stagefs: gc: %s\n", strerror(-rc));
	gc_close_db(&g);
	return exitc;
}

static int gc_list(struct store *s)
{
	struct sfs_cli_stems l = {0};
	int rc = notes_list(s, &l);

	for (size_t i = 0; !rc && i < l.n; i++) {
		char *when = note_get(s, l.v[i], "$.quarantined");
		char *host = note_get(s, l.v[i], "$.host");
		char *tk = trash_key(l.v[i]), b[32];
		sfs_cli_human(tk ? sfs_gc_bytes(s, tk) : 0, b, sizeof(b));
		printf("%s  quarantined %s on %s  %s\n", l.v[i], when ? when : "?",
		       host ? host : "?", b);
		free(when);
		free(host);
		free(tk);
	}
	if (!rc)
		printf("%zu object(s) in quarantine\n", l.n);
	else
		fprintf(stderr, "stagefs: gc list: %s\n", strerror(-rc));
	sfs_cli_stems_free(&l);
	return rc ? 1 : 0;
}

static int gc_restore(struct store *s, char **keys, int n)
{
	int bad = 0;

	for (int i = 0; i < n; i++) {
		const char *k = keys[i];
		while (*k == '/')
			k++;
		if (!strncmp(k, TRASH "/", sizeof(TRASH)))
			k += sizeof(TRASH);
		int rc = restore_one(s, k);
		if (rc == -EEXIST)
			fprintf(stderr,
				"stagefs: gc restore: '%s' exists in the store again (committed "
				"since): the quarantined copy stays\n",
				k);
		else if (rc)
			fprintf(stderr, "stagefs: gc restore: '%s': %s\n", k,
				rc == -ENOENT ? "not in the quarantine" : strerror(-rc));
		else
			printf("restored %s\n", k);
		bad += rc != 0;
	}
	return bad ? 1 : 0;
}

int sfs_cli_gc(int argc, char **argv)
{
	static const struct option lo[] = {{"referenced", required_argument, NULL, 'r'},
					   {"grace", required_argument, NULL, 'g'},
					   {"staging-older-than", required_argument, NULL, 's'},
					   {"dry-run", no_argument, NULL, 'n'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	const char *refs = NULL, *action = NULL;
	double grace = 7, stg_days = -1;
	char *opts = NULL, *end = NULL;
	int c, dry = 0, exitc;
	struct store s;

	if (argc > 1 && (!strcmp(argv[1], "list") || !strcmp(argv[1], "restore"))) {
		action = argv[1];
		argv++;
		argc--;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
		if (c == 'r' && !action)
			refs = optarg;
		else if (c == 'g' && !action && (grace = strtod(optarg, &end)) >= 0 && end &&
			 !*end && end != optarg)
			continue;
		else if (c == 's' && !action && (stg_days = strtod(optarg, &end)) >= 0 && end &&
			 !*end && end != optarg)
			continue;
		else if (c == 'n' && !action)
			dry = 1;
		else if (c == 'o' && sfs_cli_add_opt(&opts, optarg) == 0)
			continue;
		else {
			if (c == 'g' || c == 's')
				fprintf(stderr, "stagefs: gc: --%s wants days (a number >= 0)\n",
					c == 'g' ? "grace" : "staging-older-than");
			gc_usage(c == 'h' ? stdout : stderr);
			free(opts);
			return c == 'h' ? 0 : 2;
		}
	}
	int npos = argc - optind;
	if ((!action && (npos != 1 || (!refs && stg_days < 0))) ||
	    (action && !strcmp(action, "list") && npos != 1) ||
	    (action && !strcmp(action, "restore") && npos < 2)) {
		gc_usage(stderr);
		free(opts);
		return 2;
	}
	/* the index is this host's: objects leave it, or come back to it */
	exitc = sfs_cli_store_open(argv[optind], opts, !dry && !(action && !strcmp(action, "list")),
				   1, 1, &s);
	free(opts);
	if (exitc)
		return exitc;
	if (!action)
		exitc = gc_run(&s, refs, stg_days, grace, dry);
	else if (!strcmp(action, "list"))
		exitc = gc_list(&s);
	else
		exitc = gc_restore(&s, argv + optind + 1, npos - 1);
	sfs_cli_store_close(&s);
	return exitc;
}
