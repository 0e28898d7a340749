/*
 * fs/cli_fsck.c - the index and the store checked against each other, and
 * the index rebuilt from the store (SPEC §6):
 *
 *   stagefs fsck SOURCE|MOUNTPOINT [--deep] [--repair] [-o key=value]...
 *   stagefs reindex SOURCE [-o index=PATH]
 *
 * fsck reports, one line each: commits interrupted by a crash; objects the
 * index knows that the store lacks or holds with another size (--deep: other
 * bytes); canonical files of the store no index row or object record
 * explains; object records without their object; snapshots that list
 * objects the store lacks; receipts of objects the index does not know.
 * Exit 0 only when there is nothing to report.  --repair does what is safe:
 * finishes or undoes interrupted commits (the mount's recovery), and adds
 * to the index the objects whose records are in the store; it says what it
 * did.  Run it with the store unmounted (a running daemon's commits in flight
 * look interrupted).
 */
#include "fs/cli.h"

#include <errno.h>
#include <getopt.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/gz.h"
#include "common/log.h"
#include "fs/fs.h"
#include "fs/snapshot.h"
#include "index/snapdb.h"

struct fsck {
	struct store *s;
	int deep, repair;
	double uploads_hours; /* multipart uploads begun longer ago than this are stale */
	uint64_t uploads_young;
	uint64_t problems, repaired, objects, files, store_files;
	struct sfs_snapdb *seen;      /* every canonical file and directory of the store */
	struct sfs_cli_stems records; /* keys of the objects whose records the store holds */
	const char *snap;	      /* the snapshot being checked */
};

static void problem(struct fsck *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct fsck *f, const char *fmt, ...)
{
	va_list ap;

	f->problems++;
	fprintf(stdout, "problem: ");
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

static int job_cb(void *arg, struct sfs_job *j)
{
	struct fsck *f = arg;

	problem(f, "interrupted commit of 'staging/%s' -> '%s' (%s)", j->staging, j->canonical,
		j->state ? j->state : "moving");
	return 0;
}

static int count_job(void *arg, struct sfs_job *j)
{
	(void)j;
	++*(int64_t *)arg;
	return 0;
}

/* A canonical key: under a canonical root (an empty root: not a reserved top-level name). */
static int canonical(const struct sfs_config *cfg, const char *key)
{
	static const char *const reserved[] = {"_staging", "_snapshots", ".stagefs", "_trash"};
	const char *roots[2] = {cfg->schema_prefix, cfg->hash_prefix};
	size_t first = strcspn(key, "/");

	for (int i = 0; i < 2; i++) {
		size_t n = strlen(roots[i]);
		if (n && strncmp(key, roots[i], n) == 0 && (key[n] == '\0' || key[n] == '/'))
			return 1;
	}
	if (roots[0][0] && roots[1][0])
		return 0;
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strlen(reserved[i]) == first && !strncmp(key, reserved[i], first))
			return 0;
	return 1;
}

/* The store's canonical trees into f->seen (path, kind, size). */
static int seen_cb(void *arg, const char *key, const struct sfs_bstat *st)
{
	struct fsck *f = arg;
	struct sfs_snap_ent e = {.path = key, .is_dir = S_ISDIR(st->mode), .size = st->size};

	if (!canonical(&f->s->cfg, key))
		return 0;
	f->store_files += !e.is_dir;
	return sfs_snapdb_add(f->seen, &e);
}

static int list_store(struct fsck *f)
{
	const struct sfs_config *cfg = &f->s->cfg;
	const char *roots[2] = {cfg->schema_prefix, cfg->hash_prefix};
	int rc = sfs_snapdb_open(NULL, &f->seen);

	if (!rc)
		rc = sfs_snapdb_begin(f->seen);
	for (int i = 0; !rc && i < 2; i++) {
		if (i == 1 && strcmp(roots[0], roots[1]) == 0)
			break;
		rc = sfs_backend_walk(f->s->be, roots[i], seen_cb, f);
		if (rc == -ENOENT)
			rc = 0;
	}
	rc = sfs_snapdb_end(f->seen, rc);
	if (!rc) {
		f->records.dir = SFS_OBJECT_RECORDS;
		rc = sfs_backend_walk(f->s->be, SFS_OBJECT_RECORDS, sfs_cli_stems_cb, &f->records);
		if (rc == -ENOENT)
			rc = 0;
	}
	if (rc)
		fprintf(stderr, "stagefs: cannot list the store: %s\n", strerror(-rc));
	return rc;
}

/* An indexed file: in the store, with its size (and, --deep, its bytes). */
static void check_file(struct fsck *f, const char *path, uint64_t size, const char *md5)
{
	uint64_t got = 0;
	int is_dir = 0;

	f->files++;
	if (!sfs_snapdb_get(f->seen, path, &is_dir, &got) || is_dir) {
		problem(f, "'%s' is in the index but not in the store", path);
		return;
	}
	if (got != size) {
		problem(f, "'%s' has %llu bytes in the store, %llu in the index", path,
			(unsigned long long)got, (unsigned long long)size);
		return;
	}
	if (f->deep && md5) {
		char sum[33];
		int rc = sfs_snap_md5_object(f->s->be, path, sum, NULL);
		if (rc)
			problem(f, "'%s': cannot read it: %s", path, strerror(-rc));
		else if (strcmp(sum, md5) != 0)
			problem(f, "'%s' holds other bytes than committed (md5 %s, index %s)", path,
				sum, md5);
	}
}

static int object_cb(void *arg, const char *path, const char *metadata)
{
	struct fsck *f = arg;
	char *is_dir = sfs_cli_jget(metadata, "$.is_dir"), *size = sfs_cli_jget(metadata, "$.size");
	char *md5 = sfs_cli_jget(metadata, "$.md5");

	f->objects++;
	if (is_dir && strcmp(is_dir, "1") == 0) {
		struct sfs_bstat st; /* S3 lists no directories: ask the store */
		if (sfs_backend_stat(f->s->be, path, &st) != 0 || !S_ISDIR(st.mode))
			problem(f, "directory object '%s' is in the index but not in the store",
				path);
	} else {
		check_file(f, path, size ? strtoull(size, NULL, 10) : 0, md5);
	}
	free(is_dir);
	free(size);
	free(md5);
	return 0;
}

static int object_file_cb(void *arg, const char *path, uint64_t size, const char *md5)
{
	check_file(arg, path, size, md5);
	return 0;
}

/* A canonical file of the store: explained by the index? */
static int unindexed_cb(void *arg, const char *path, uint64_t size, const char *md5)
{
	struct fsck *f = arg;
	char sum[33];
	int rc = sfs_index_file_md5(f->s->ix, path, sum, NULL);

	(void)size;
	(void)md5;
	if (rc == -ENOENT)
		problem(f, "'%s' is in the store but not in the index (no commit recorded it)",
			path);
	else if (rc)
		problem(f, "'%s': cannot look it up in the index: %s", path, strerror(-rc));
	return 0;
}

static int orphan_cb(void *arg, const char *dir, const char *name, const char *object)
{
	problem(arg, "receipt 'staging/%s/.receipts/%s' names '%s', which the index does not know",
		dir, name, object);
	return 0;
}

/* Part n of record rkey's files into directory object key. */
static int import_part(struct store *s, const char *rkey, const char *key, int n)
{
	char *pkey = NULL;
	void *gz = NULL, *json = NULL;
	size_t gzn = 0, jn = 0;
	int rc = asprintf(&pkey, "%s.parts/%05d.json.gz", rkey, n) < 0 ? -ENOMEM : 0;

	if (!rc)
		rc = sfs_backend_get_bytes(s->be, pkey, &gz, &gzn, 64u << 20);
	if (!rc)
		rc = sfs_gunzip(gz, gzn, 256u << 20, &json, &jn);
	if (!rc)
		rc = sfs_index_import_object_files(s->ix, key, json);
	if (rc)
		fprintf(stderr, "stagefs: '%s': %s\n", pkey ? pkey : key, strerror(-rc));
	free(pkey);
	free(gz);
	free(json);
	return rc;
}

/* Add object key to the index from its record in the store. */
int sfs_cli_import_record(struct store *s, const char *key)
{
	char *rkey = NULL, *json = NULL;
	int rc = asprintf(&rkey, "%s/%s.json", SFS_OBJECT_RECORDS, key) < 0 ? -ENOMEM : 0;

	if (!rc)
		rc = sfs_backend_get_text(s->be, rkey, 64u << 20, &json);
	if (!rc) {
		char *fmt = sfs_cli_jget(json, "$.format"), *np = sfs_cli_jget(json, "$.parts");
		rc = fmt && strcmp(fmt, "stagefs-object") == 0
			     ? sfs_index_import_object(s->ix, key, json)
			     : -EINVAL;
		/* a big directory's files are in parts beside the record */
		for (long i = 0, n = np ? strtol(np, NULL, 10) : 0; !rc && i < n; i++)
			rc = import_part(s, rkey, key, (int)i);
		free(fmt);
		free(np);
	}
	free(json);
	free(rkey);
	return rc;
}

/* Receipt records (dedup commits' receipts) into the index of their objects. */
struct receipts_in {
	struct store *s;
	uint64_t added, skipped;
};

static int receipt_cb(void *arg, const char *key, const struct sfs_bstat *st)
{
	struct receipts_in *r = arg;
	char *json = NULL;
	int rc;

	if (S_ISDIR(st->mode))
		return 0;
	rc = sfs_backend_get_text(r->s->be, key, 1u << 20, &json);
	if (!rc)
		rc = sfs_index_import_receipt(r->s->ix, json);
	free(json);
	if (rc == -EINVAL || rc == -EFBIG) {
		fprintf(stderr, "stagefs: receipt record '%s' is malformed: skipped\n", key);
		rc = 0;
	}
	if (rc < 0)
		return rc;
	r->added += rc == 1;
	r->skipped += rc == 0;
	return 0;
}

int sfs_cli_import_receipts(struct store *s, uint64_t *added)
{
	struct receipts_in r = {.s = s};
	int rc = sfs_backend_walk(s->be, SFS_RECEIPT_RECORDS, receipt_cb, &r);

	*added = r.added;
	return rc == -ENOENT ? 0 : rc;
}

/* Records: each names an object the store holds and the index knows. */
static void check_records(struct fsck *f)
{
	for (size_t i = 0; i < f->records.n; i++) {
		const char *key = f->records.v[i];
		char *meta = NULL;
		int rc = sfs_index_object_metadata(f->s->ix, key, &meta);
		free(meta);
		if (rc != -ENOENT)
			continue;
		struct sfs_bstat st;
		if (sfs_backend_stat(f->s->be, key, &st) != 0) {
			problem(f, "record '%s/%s.json' names an object the store lacks",
				SFS_OBJECT_RECORDS, key);
			continue;
		}
		if (f->repair) {
			rc = sfs_cli_import_record(f->s, key);
			if (!rc) {
				printf("repaired: '%s' added to the index from its record\n", key);
				f->repaired++;
				continue;
			}
			fprintf(stderr, "stagefs: fsck: cannot add '%s' from its record: %s\n", key,
				strerror(-rc));
		}
		problem(f,
			"'%s' is in the store with its record but not in the index "
			"(--repair adds it)",
			key);
	}
}

static int snap_file_cb(void *arg, const char *path, uint64_t size, const char *md5)
{
	struct fsck *f = arg;
	uint64_t got = 0;
	int is_dir = 0;

	(void)md5;
	if (!sfs_snapdb_get(f->seen, path, &is_dir, &got) || is_dir)
		problem(f, "snapshot '%s' lists '%s', which the store lacks", f->snap, path);
	else if (got != size)
		problem(f, "snapshot '%s' lists '%s' with %llu bytes, the store has %llu", f->snap,
			path, (unsigned long long)size, (unsigned long long)got);
	return 0;
}

static int snap_cb(void *arg, const char *name)
{
	struct fsck *f = arg;
	struct sfs_snapdb *db = NULL;
	char *head = NULL;
	int rc = sfs_snap_load(f->s->be, name, f->s->cfg.cache_dir, &db, &head);

	if (rc) {
		problem(f, "snapshot '%s' cannot be loaded: %s", name, strerror(-rc));
		return 0;
	}
	f->snap = name;
	rc = sfs_snapdb_each_file(db, snap_file_cb, f);
	if (rc)
		problem(f, "snapshot '%s' cannot be read: %s", name, strerror(-rc));
	sfs_snapdb_close(db);
	free(head);
	return 0;
}

/* A multipart upload never completed nor aborted: stale when begun long enough ago. */
static int upload_cb(void *arg, const char *key, const char *id, int64_t initiated_ns)
{
	struct fsck *f = arg;
	time_t t = (time_t)(initiated_ns / 1000000000LL);
	char when[32] = "?";
	struct tm tm;

	if (t > 0 && gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if ((double)(time(NULL) - t) < f->uploads_hours * 3600) {
		f->uploads_young++; /* perhaps a daemon's, in progress */
		return 0;
	}
	if (f->repair) {
		int rc = sfs_backend_abort_upload(f->s->be, key, id);
		if (!rc) {
			printf("repaired: aborted the incomplete multipart upload of '%s' (begun "
			       "%s)\n",
			       key, when);
			f->repaired++;
			return 0;
		}
		fprintf(stderr, "stagefs: fsck: cannot abort the upload of '%s': %s\n", key,
			strerror(-rc));
	}
	problem(f,
		"an incomplete multipart upload of '%s' (begun %s, upload id %s) keeps its parts "
		"in the store (--repair aborts it)",
		key, when, id);
	return 0;
}

static void check_uploads(struct fsck *f)
{
	int rc = sfs_backend_uploads(f->s->be, upload_cb, f);

	if (rc == -ENOSYS && !f->s->be->ops->uploads)
		return; /* a backend without multipart uploads (file) */
	if (rc)
		fprintf(stderr,
			"stagefs: fsck: note: the server did not list its multipart uploads (%s): "
			"stale uploads not checked\n",
			strerror(-rc));
}

static void fsck_usage(FILE *o)
{
	fprintf(o, "usage: stagefs fsck SOURCE|MOUNTPOINT [--deep] [--repair]\n"
		   "                    [--uploads-older-than HOURS] [-o key=value]...\n"
		   "  Checks the index against the store: interrupted commits, objects missing\n"
		   "  or of another size (--deep: other bytes), canonical files no commit\n"
		   "  recorded, records and receipts without their object, snapshots listing\n"
		   "  objects the store lacks, and (s3) multipart uploads begun more than HOURS\n"
		   "  (default 24) ago and never completed.  Prints one line per problem; exit 0\n"
		   "  when clean, 1 when problems remain.  --repair finishes or undoes\n"
		   "  interrupted commits, indexes objects from their records and aborts stale\n"
		   "  uploads; it prints what it did.  Run it with the store unmounted.\n");
}

/* -o options joined with ',' (the forms every subcommand takes). */
int sfs_cli_add_opt(char **opts, const char *o)
{
	char *n = NULL;

	if (asprintf(&n, "%s%s%s", *opts ? *opts : "", *opts ? "," : "", o) < 0)
		return -ENOMEM;
	free(*opts);
	*opts = n;
	return 0;
}

int sfs_cli_fsck(int argc, char **argv)
{
	static const struct option lo[] = {{"deep", no_argument, NULL, 'd'},
					   {"repair", no_argument, NULL, 'r'},
					   {"uploads-older-than", required_argument, NULL, 'u'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	struct fsck f = {.uploads_hours = 24};
	char *end = NULL;
	struct store s;
	char *opts = NULL;
	int c, exitc = 2;

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
		if (c == 'd')
			f.deep = 1;
		else if (c == 'r')
			f.repair = 1;
		else if (c == 'u' && (f.uploads_hours = strtod(optarg, &end)) >= 0 && end &&
			 !*end && end != optarg)
			continue;
		else if (c == 'o' && sfs_cli_add_opt(&opts, optarg) == 0)
			continue;
		else {
			if (c == 'u')
				fprintf(stderr,
					"stagefs: fsck: --uploads-older-than wants hours (a "
					"number >= 0)\n");
			fsck_usage(c == 'h' ? stdout : stderr);
			free(opts);
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind != argc - 1) {
		fsck_usage(stderr);
		free(opts);
		return 2;
	}
	if (f.repair && sfs_cli_is_mount(argv[optind])) {
		fprintf(stderr, "stagefs: fsck --repair: unmount '%s' first\n", argv[optind]);
		free(opts);
		return 2;
	}
	exitc = sfs_cli_store_open(argv[optind], opts, f.repair, 1, 1, &s);
	free(opts);
	if (exitc)
		return exitc;
	f.s = &s;
	exitc = 1;
	if (f.repair) {
		int64_t before = 0, after = 0;
		(void)sfs_index_jobs(s.ix, count_job, &before);
		int rc = sfs_recover(s.be, s.ix);
		(void)sfs_index_jobs(s.ix, count_job, &after);
		if (rc)
			fprintf(stderr, "stagefs: fsck: recovery failed: %s\n", strerror(-rc));
		if (before > after) {
			printf("repaired: %lld interrupted commit(s) finished or undone\n",
			       (long long)(before - after));
			f.repaired += (uint64_t)(before - after);
		}
	}
	if (sfs_index_jobs(s.ix, job_cb, &f) != 0 || list_store(&f) != 0)
		goto out;
	check_records(&f);
	if (sfs_index_objects_under(s.ix, "", object_cb, &f) != 0 ||
	    sfs_index_object_files_each(s.ix, object_file_cb, &f) != 0 ||
	    sfs_snapdb_each_file(f.seen, unindexed_cb, &f) != 0 ||
	    sfs_index_receipt_orphans(s.ix, orphan_cb, &f) != 0 ||
	    sfs_snap_list(s.be, snap_cb, &f) != 0) {
		fprintf(stderr, "stagefs: fsck: cannot read the index or the store\n");
		goto out;
	}
	check_uploads(&f);
	printf("%llu objects, %llu indexed files, %llu files in the store, %zu records: "
	       "%llu problem(s)%s",
	       (unsigned long long)f.objects, (unsigned long long)f.files,
	       (unsigned long long)f.store_files, f.records.n, (unsigned long long)f.problems,
	       f.repair ? "" : "\n");
	if (f.repair)
		printf(", %llu repaired\n", (unsigned long long)f.repaired);
	exitc = f.problems ? 1 : 0;
out:
	sfs_cli_stems_free(&f.records);
	sfs_snapdb_close(f.seen);
	sfs_cli_store_close(&s);
	return exitc;
}

/* ---- reindex ---- */

static void reindex_usage(FILE *o)
{
	fprintf(o, "usage: stagefs reindex SOURCE [--force] [-o key=value]...\n"
		   "  Rebuilds the index (-o index=PATH, or the configured one) from the store\n"
		   "  alone: every object with its record, its files and its receipt.  An\n"
		   "  existing index is kept as PATH.old (--force is needed to replace it).\n"
		   "  Canonical files no record explains are counted and the first ones named;\n"
		   "  exit 0 only when there are none.  Run it with the store unmounted.\n");
}

struct unexplained {
	struct sfs_index *ix;
	uint64_t n;
};

static int unexplained_cb(void *arg, const char *path, uint64_t size, const char *md5)
{
	struct unexplained *u = arg;
	char sum[33];

	(void)size;
	(void)md5;
	if (sfs_index_file_md5(u->ix, path, sum, NULL) == -ENOENT && ++u->n <= 10)
		printf("no record: '%s'\n", path);
	return 0;
}

int sfs_cli_reindex(int argc, char **argv)
{
	static const struct option lo[] = {{"force", no_argument, NULL, 'f'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	struct fsck f = {0};
	struct unexplained u = {0};
	struct store s;
	char *opts = NULL, *tmp = NULL, *old = NULL;
	int c, force = 0, exitc, rc;
	uint64_t imported = 0;
	struct stat st;

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
		if (c == 'f')
			force = 1;
		else if (c == 'o' && sfs_cli_add_opt(&opts, optarg) == 0)
			continue;
		else {
			reindex_usage(c == 'h' ? stdout : stderr);
			free(opts);
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind != argc - 1 || sfs_cli_is_mount(argv[optind])) {
		if (optind == argc - 1)
			fprintf(stderr,
				"stagefs: reindex: give the SOURCE of an unmounted store\n");
		reindex_usage(stderr);
		free(opts);
		return 2;
	}
	exitc = sfs_cli_store_open(argv[optind], opts, 1, 0, 1, &s);
	free(opts);
	if (exitc)
		return exitc;
	exitc = 1;
	if (stat(s.cfg.index, &st) == 0 && !force) {
		fprintf(stderr,
			"stagefs: reindex: '%s' exists (--force replaces it, kept as .old)\n",
			s.cfg.index);
		goto out;
	}
	if (asprintf(&tmp, "%s.reindex", s.cfg.index) < 0 ||
	    asprintf(&old, "%s.old", s.cfg.index) < 0)
		goto out;
	for (int i = 0; i < 3; i++) { /* a previous run's leftovers */
		char p[4096];
		snprintf(p, sizeof(p), "%s%s", tmp, (const char *[]){"", "-wal", "-shm"}[i]);
		(void)unlink(p);
	}
	rc = sfs_index_open(tmp, &s.ix);
	f.s = &s;
	if (!rc)
		rc = list_store(&f);
	for (size_t i = 0; !rc && i < f.records.n; i++) {
		rc = sfs_cli_import_record(&s, f.records.v[i]);
		if (rc)
			fprintf(stderr, "stagefs: reindex: record of '%s': %s\n", f.records.v[i],
				strerror(-rc));
		else if (++imported % 1000 == 0)
			fprintf(stderr, "reindex: %llu objects\n", (unsigned long long)imported);
	}
	uint64_t receipts = 0;
	if (!rc)
		rc = sfs_cli_import_receipts(&s, &receipts);
	u.ix = s.ix;
	if (!rc)
		rc = sfs_snapdb_each_file(f.seen, unexplained_cb, &u);
	sfs_index_close(s.ix);
	s.ix = NULL;
	if (rc) {
		fprintf(stderr, "stagefs: reindex failed: %s (the index is unchanged)\n",
			strerror(-rc));
		(void)unlink(tmp);
		goto out;
	}
	if (stat(s.cfg.index, &st) == 0 && rename(s.cfg.index, old) != 0) {
		fprintf(stderr, "stagefs: reindex: cannot move '%s' aside: %s\n", s.cfg.index,
			strerror(errno));
		goto out;
	}
	if (rename(tmp, s.cfg.index) != 0) {
		fprintf(stderr, "stagefs: reindex: cannot install '%s': %s\n", s.cfg.index,
			strerror(errno));
		goto out;
	}
	printf("reindexed %llu objects and %llu receipts of dedup commits into '%s'%s%s%s; %llu "
	       "of %llu canonical files have no record\n",
	       (unsigned long long)imported, (unsigned long long)receipts, s.cfg.index,
	       force ? " (the old one is '" : "", force ? old : "", force ? "')" : "",
	       (unsigned long long)u.n, (unsigned long long)f.store_files);
	exitc = u.n ? 1 : 0;
out:
	sfs_cli_stems_free(&f.records);
	sfs_snapdb_close(f.seen);
	sfs_cli_store_close(&s);
	free(tmp);
	free(old);
	return exitc;
}
