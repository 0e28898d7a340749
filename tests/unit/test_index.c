/* tests/unit/test_index.c - the SQLite index: migrations, commit intents, receipts, metadata. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/log.h"
#include "index/index.h"

struct fx {
	char dir[64];
	char path[128];
	struct sfs_index *ix;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/sfs-index-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/sub/dir/index.db", f->dir);
	if (sfs_index_open(f->path, &f->ix) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	sfs_index_close(f->ix);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	free(f);
	return system(cmd) == 0 ? 0 : -1;
}

static struct sfs_job make_job(const char *staging, const char *canonical, const char *addressing,
			       const char *meta)
{
	struct sfs_job j = {0};

	j.staging = strdup(staging);
	j.canonical = strdup(canonical);
	j.addressing = strdup(addressing);
	j.metadata = strdup(meta);
	j.receipt_dir = strdup("lab/Session");
	j.receipt_name = strdup("a.h5.json");
	return j;
}

static int count_jobs_cb(void *arg, struct sfs_job *j)
{
	(*(int *)arg)++;
	assert_non_null(j->staging);
	return 0;
}

static void test_open_creates_and_migrates(void **state)
{
	struct fx *f = *state;
	sqlite3 *db;
	sqlite3_stmt *st;

	assert_int_equal(access(f->path, F_OK), 0);
	assert_int_equal(sfs_index_check(f->ix), 0);
	/* reopen: the version is kept and nothing re-runs */
	sfs_index_close(f->ix);
	assert_int_equal(sfs_index_open(f->path, &f->ix), 0);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), SFS_INDEX_VERSION);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_newer_schema_refused(void **state)
{
	struct fx *f = *state;
	struct sfs_index *ix = NULL;
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=999", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	int lvl = sfs_log_level;
	sfs_log_level = -1;
	assert_int_equal(sfs_index_open(f->path, &ix), -EPROTO);
	sfs_log_level = lvl;
	assert_null(ix);
}

static void test_metadata_schema_file(void **state)
{
	struct fx *f = *state;
	char *m = NULL;
	struct sfs_meta_in in = {
		.path = "_schema/lab/Session/subject_id=1/raw_abcdEFGH.h5",
		.store = "main",
		.ext = ".h5",
		.staging = "staging/lab/Session/a.h5",
		.md5 = "5d41402abc4b2a76b9719d911017c592",
		.size = 5,
		.timestamp = "2026-11-25T14:56:49.123456+00:00",
	};

	assert_int_equal(sfs_index_build_metadata(f->ix, &in, &m), 0);
	assert_string_equal(
		m, "{\"path\":\"_schema/lab/Session/subject_id=1/raw_abcdEFGH.h5\","
		   "\"store\":\"main\",\"size\":5,\"ext\":\".h5\",\"is_dir\":false,"
		   "\"item_count\":null,\"timestamp\":\"2026-11-25T14:56:49.123456+00:00\","
		   "\"addressing\":\"schema\",\"staging\":\"staging/lab/Session/a.h5\","
		   "\"md5\":\"5d41402abc4b2a76b9719d911017c592\"}");
	free(m);
}

static void test_metadata_schema_dir_and_hash(void **state)
{
	struct fx *f = *state;
	char *m = NULL;
	struct sfs_meta_in d = {
		.path = "_schema/lab/T/id=1/frames_x.zarr",
		.store = "s",
		.ext = NULL,
		.staging = "staging/lab/T/f.zarr",
		.checksum = "abc-2--10",
		.size = 10,
		.is_dir = 1,
		.item_count = 2,
		.timestamp = "t",
	};
	assert_int_equal(sfs_index_build_metadata(f->ix, &d, &m), 0);
	assert_string_equal(m, "{\"path\":\"_schema/lab/T/id=1/frames_x.zarr\",\"store\":\"s\","
			       "\"size\":10,\"ext\":null,\"is_dir\":true,\"item_count\":2,"
			       "\"timestamp\":\"t\",\"addressing\":\"schema\","
			       "\"staging\":\"staging/lab/T/f.zarr\",\"checksum\":\"abc-2--10\"}");
	free(m);
	struct sfs_meta_in h = {
		.hash_addressing = 1,
		.path = "_hash/lab/lvauakv4jmvhnolrtwiraf6fsi",
		.store = "s",
		.schema = "lab",
		.hash = "lvauakv4jmvhnolrtwiraf6fsi",
		.staging = "staging/lab/T/a",
		.md5 = "5d41402abc4b2a76b9719d911017c592",
		.size = 5,
	};
	assert_int_equal(sfs_index_build_metadata(f->ix, &h, &m), 0);
	assert_string_equal(m,
			    "{\"hash\":\"lvauakv4jmvhnolrtwiraf6fsi\","
			    "\"path\":\"_hash/lab/lvauakv4jmvhnolrtwiraf6fsi\",\"schema\":\"lab\","
			    "\"store\":\"s\",\"size\":5,\"addressing\":\"hash\","
			    "\"staging\":\"staging/lab/T/a\","
			    "\"md5\":\"5d41402abc4b2a76b9719d911017c592\",\"dedup\":false}");
	free(m);
}

/* The queue: pending -> reserved -> success | error; one live job per entry; retry; resume. */
static void test_job_queue(void **state)
{
	struct fx *f = *state;
	struct sfs_job j, k;
	struct sfs_job_counts n;
	int64_t a = 0, b = 0, c = 0, moved = 0;

	assert_int_equal(sfs_index_job_queue(f->ix, "lab/S/a", "hash", &a), 0);
	assert_int_equal(sfs_index_job_queue(f->ix, "lab/S/a", "hash", &b), -EBUSY);
	assert_int_equal(sfs_index_job_queue(f->ix, "lab/S/b", "{\"field\":\"x\"}", &b), 0);
	assert_true(a > 0 && b > a);
	assert_int_equal(sfs_index_job_of(f->ix, "lab/S/a", &j), 0);
	assert_string_equal(j.status, "pending");
	sfs_job_release(&j);
	assert_int_equal(sfs_index_job_of(f->ix, "lab/S/none", &j), -ENOENT);

	/* the oldest first; reserving counts the attempt */
	assert_int_equal(sfs_index_job_reserve(f->ix, &j), 0);
	assert_int_equal(j.id, a);
	assert_string_equal(j.status, "reserved");
	assert_string_equal(j.value, "hash");
	assert_int_equal(j.attempts, 1);
	assert_int_equal(sfs_index_job_reserve(f->ix, &k), 0);
	assert_int_equal(k.id, b);
	sfs_job_release(&k);
	struct sfs_job none;
	assert_int_equal(sfs_index_job_reserve(f->ix, &none), -ENOENT);
	assert_int_equal(sfs_index_job_progress(f->ix, a, 10, 40), 0);
	assert_int_equal(sfs_index_jobs_count(f->ix, &n), 0);
	assert_int_equal(n.reserved, 2);
	assert_int_equal(n.bytes_done, 10);
	assert_int_equal(n.bytes_total, 40);

	/* b fails; its reason stays with the entry */
	assert_int_equal(sfs_index_job_fail(f->ix, b, EBUSY, "x is open for writing"), 0);
	assert_int_equal(sfs_index_job_of(f->ix, "lab/S/b", &k), 0);
	assert_string_equal(k.status, "error");
	assert_int_equal(k.err, EBUSY);
	assert_string_equal(k.error, "x is open for writing");
	sfs_job_release(&k);

	/* a's daemon dies with a reserved: the next mount queues it again */
	assert_int_equal(sfs_index_jobs_resume(f->ix, &moved), 0);
	assert_int_equal(moved, 1);
	assert_int_equal(sfs_index_job_of(f->ix, "lab/S/a", &k), 0);
	assert_string_equal(k.status, "pending");
	sfs_job_release(&k);
	sfs_job_release(&j);
	assert_int_equal(sfs_index_job_reserve(f->ix, &j), 0);
	assert_int_equal(j.id, a);
	assert_int_equal(j.attempts, 2);
	j.canonical = strdup("_hash/lab/aa");
	j.addressing = strdup("hash");
	j.metadata = strdup("{\"size\":1}");
	j.receipt_dir = strdup("lab/S");
	j.receipt_name = strdup("a.json");
	assert_int_equal(sfs_index_job_begin(f->ix, &j), 0);
	assert_int_equal(j.id, a); /* the queued row, not a new one */
	assert_int_equal(sfs_index_job_finish(f->ix, &j, 0), 0);
	sfs_job_release(&j);
	/* success: the entry has no job any more (what is there now is another entry) */
	assert_int_equal(sfs_index_job_of(f->ix, "lab/S/a", &j), -ENOENT);
	assert_int_equal(sfs_index_job_get(f->ix, a, &j), 0);
	assert_string_equal(j.status, "success");
	assert_string_equal(j.canonical, "_hash/lab/aa");
	assert_non_null(j.finished);
	sfs_job_release(&j);

	/* retry: the failed job is pending again, once */
	assert_int_equal(sfs_index_jobs_retry(f->ix, &moved), 0);
	assert_int_equal(moved, 1);
	assert_int_equal(sfs_index_jobs_retry(f->ix, &moved), 0);
	assert_int_equal(moved, 0);
	/* a later commit of an entry supersedes its old failure in the counts */
	assert_int_equal(sfs_index_job_reserve(f->ix, &j), 0);
	assert_int_equal(sfs_index_job_fail(f->ix, j.id, EIO, "store down"), 0);
	sfs_job_release(&j);
	assert_int_equal(sfs_index_job_queue(f->ix, "lab/S/b", "hash", &c), 0);
	assert_int_equal(sfs_index_jobs_count(f->ix, &n), 0);
	assert_int_equal(n.error, 0);
	assert_int_equal(n.pending, 1);
	assert_int_equal(n.success, 1);
}

/* A job's files come out in path order, a part at a time, and go back into a directory object. */
static void test_job_files_parts(void **state)
{
	struct fx *f = *state;
	struct sfs_job j = make_job("lab/S/z", "_schema/z_tok", "schema", "{\"is_dir\":true}");
	struct sfs_job_file v[5];
	char rel[5][8], *after = NULL, *json = NULL, md5[33], *obj = NULL;
	int64_t n = 0;

	assert_int_equal(sfs_index_job_begin(f->ix, &j), 0);
	for (int i = 0; i < 5; i++) {
		snprintf(rel[i], sizeof(rel[i]), "c/%d", 4 - i); /* given out of order */
		v[i] = (struct sfs_job_file){rel[i], (uint64_t)i,
					     "0123456789abcdef0123456789abcdef"};
	}
	assert_int_equal(sfs_index_job_add_files(f->ix, j.id, v, 3), 0);
	assert_int_equal(sfs_index_job_add_files(f->ix, j.id, v + 3, 2), 0);
	assert_int_equal(sfs_index_job_file_count(f->ix, j.id, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(sfs_index_job_files_part(f->ix, j.id, &after, 2, &json), 0);
	assert_string_equal(json, "[[\"c/0\",4,\"0123456789abcdef0123456789abcdef\"],"
				  "[\"c/1\",3,\"0123456789abcdef0123456789abcdef\"]]");
	assert_string_equal(after, "c/1");
	assert_int_equal(sfs_index_import_object_files(f->ix, "_schema/other", json), 0);
	free(json);
	assert_int_equal(sfs_index_job_files_part(f->ix, j.id, &after, 2, &json), 0);
	assert_non_null(strstr(json, "\"c/2\""));
	assert_non_null(strstr(json, "\"c/3\""));
	free(json);
	assert_int_equal(sfs_index_job_files_part(f->ix, j.id, &after, 2, &json), 0);
	assert_string_equal(after, "c/4");
	free(json);
	assert_int_equal(sfs_index_job_files_part(f->ix, j.id, &after, 2, &json), 0);
	assert_null(json); /* none left */
	free(after);
	/* the imported part's files belong to their object */
	assert_int_equal(sfs_index_file_md5(f->ix, "_schema/other/c/1", md5, &obj), 0);
	assert_string_equal(obj, "_schema/other");
	free(obj);
	sfs_job_release(&j);
}

static void test_job_finish_records_object_and_receipt(void **state)
{
	struct fx *f = *state;
	struct sfs_job j = make_job("lab/Session/a.h5", "_hash/lab/x", "hash",
				    "{\"hash\":\"x\",\"size\":5,\"dedup\":false}");
	char *json = NULL;
	int64_t n = -1;
	int jobs = 0;

	assert_int_equal(sfs_index_job_begin(f->ix, &j), 0);
	assert_true(j.id > 0);
	assert_int_equal(sfs_index_jobs(f->ix, count_jobs_cb, &jobs), 0);
	assert_int_equal(jobs, 1);
	assert_int_equal(sfs_index_receipt_any(f->ix, "lab/Session"), 0);
	assert_int_equal(sfs_index_job_finish(f->ix, &j, 0), 0);
	/* idempotent: finishing again changes nothing */
	assert_int_equal(sfs_index_job_finish(f->ix, &j, 0), 0);
	jobs = 0;
	assert_int_equal(sfs_index_jobs(f->ix, count_jobs_cb, &jobs), 0);
	assert_int_equal(jobs, 0);
	assert_int_equal(sfs_index_object_count(f->ix, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(sfs_index_object_metadata(f->ix, "_hash/lab/x", &json), 0);
	assert_string_equal(json, "{\"hash\":\"x\",\"size\":5,\"dedup\":false}");
	free(json);
	assert_int_equal(sfs_index_receipt_any(f->ix, "lab/Session"), 1);
	assert_int_equal(sfs_index_receipt_get(f->ix, "lab/Session", "a.h5.json", &json), 0);
	assert_string_equal(json, "{\"hash\":\"x\",\"size\":5,\"dedup\":false}");
	free(json);
	sfs_job_release(&j);
}

static void test_dedup_keeps_first_object(void **state)
{
	struct fx *f = *state;
	struct sfs_job a =
		make_job("lab/S/a", "_hash/lab/x", "hash", "{\"staging\":\"a\",\"dedup\":false}");
	struct sfs_job b =
		make_job("lab/S/b", "_hash/lab/x", "hash", "{\"staging\":\"b\",\"dedup\":false}");
	char *json = NULL;
	int64_t n = 0;

	free(b.receipt_name);
	b.receipt_name = strdup("b.json");
	assert_int_equal(sfs_index_job_begin(f->ix, &a), 0);
	assert_int_equal(sfs_index_job_finish(f->ix, &a, 0), 0);
	assert_int_equal(sfs_index_job_begin(f->ix, &b), 0);
	assert_int_equal(sfs_index_job_finish(f->ix, &b, 1), 0);
	assert_int_equal(sfs_index_object_count(f->ix, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(sfs_index_object_metadata(f->ix, "_hash/lab/x", &json), 0);
	assert_string_equal(json, "{\"staging\":\"a\",\"dedup\":false}");
	free(json);
	assert_int_equal(sfs_index_receipt_get(f->ix, "lab/Session", "b.json", &json), 0);
	assert_string_equal(json, "{\"staging\":\"b\",\"dedup\":true}");
	free(json);
	sfs_job_release(&a);
	sfs_job_release(&b);
}

static void test_abort_and_retarget(void **state)
{
	struct fx *f = *state;
	struct sfs_job j = make_job("lab/S/a", "_schema/a_tok1", "schema", "{\"path\":\"1\"}");
	char *json = NULL;
	int jobs = 0;

	assert_int_equal(sfs_index_job_begin(f->ix, &j), 0);
	assert_int_equal(sfs_index_job_retarget(f->ix, &j, "_schema/a_tok2", "{\"path\":\"2\"}"),
			 0);
	assert_string_equal(j.canonical, "_schema/a_tok2");
	assert_int_equal(sfs_index_job_finish(f->ix, &j, 0), 0);
	assert_int_equal(sfs_index_object_metadata(f->ix, "_schema/a_tok2", &json), 0);
	assert_string_equal(json, "{\"path\":\"2\"}");
	free(json);
	assert_int_equal(sfs_index_object_metadata(f->ix, "_schema/a_tok1", &json), -ENOENT);
	sfs_job_release(&j);

	j = make_job("lab/S/b", "_schema/b", "schema", "{}");
	assert_int_equal(sfs_index_job_begin(f->ix, &j), 0);
	assert_int_equal(sfs_index_job_abort(f->ix, j.id), 0);
	assert_int_equal(sfs_index_jobs(f->ix, count_jobs_cb, &jobs), 0);
	assert_int_equal(jobs, 0);
	sfs_job_release(&j);
}

static int list_cb(void *arg, const char *name, int64_t size)
{
	char *acc = arg;

	strncat(acc, name, 200 - strlen(acc) - 1);
	strncat(acc, ";", 200 - strlen(acc) - 1);
	assert_true(size > 0);
	return 0;
}

static void test_receipts_list_delete(void **state)
{
	struct fx *f = *state;
	const char *names[] = {"b.json", "a.json", "c.json"};
	char acc[200] = "";

	for (int i = 0; i < 3; i++) {
		struct sfs_job j = make_job("lab/S/x", names[i], "schema", "{\"k\":1}");
		free(j.receipt_name);
		j.receipt_name = strdup(names[i]);
		assert_int_equal(sfs_index_job_begin(f->ix, &j), 0);
		assert_int_equal(sfs_index_job_finish(f->ix, &j, 0), 0);
		sfs_job_release(&j);
	}
	assert_int_equal(sfs_index_receipt_list(f->ix, "lab/Session", list_cb, acc), 0);
	assert_string_equal(acc, "a.json;b.json;c.json;");
	assert_int_equal(sfs_index_receipt_delete(f->ix, "lab/Session", "b.json"), 0);
	assert_int_equal(sfs_index_receipt_delete(f->ix, "lab/Session", "b.json"), -ENOENT);
	acc[0] = '\0';
	assert_int_equal(sfs_index_receipt_list(f->ix, "lab/Session", list_cb, acc), 0);
	assert_string_equal(acc, "a.json;c.json;");
	assert_int_equal(sfs_index_receipt_any(f->ix, "lab/Other"), 0);
}

/* A reader sees the index as it was when it was opened, and cannot write it. */
static void test_reader_snapshot(void **state)
{
	struct fx *f = *state;
	struct sfs_index *r = NULL;
	char *m = NULL;
	int64_t n = -1;

	assert_int_equal(sfs_index_object_add(f->ix, "_schema/a", "schema", "{\"size\":1}"), 0);
	assert_int_equal(sfs_index_reader(f->ix, &r), 0);
	assert_int_equal(sfs_index_object_add(f->ix, "_schema/b", "schema", "{\"size\":2}"), 0);
	assert_int_equal(sfs_index_object_metadata(r, "_schema/a", &m), 0);
	assert_string_equal(m, "{\"size\":1}");
	free(m);
	m = NULL;
	assert_int_equal(sfs_index_object_metadata(r, "_schema/b", &m), -ENOENT);
	assert_int_equal(sfs_index_object_count(r, &n), 0);
	assert_int_equal(n, 1);
	assert_int_not_equal(sfs_index_object_add(r, "_schema/c", "schema", "{}"), 0);
	sfs_index_close(r);
	assert_int_equal(sfs_index_reader(f->ix, &r), 0);
	assert_int_equal(sfs_index_object_count(r, &n), 0);
	assert_int_equal(n, 2);
	sfs_index_close(r);
}

/* A receipt record: added when its object is known, the newer of two receipts of a name wins. */
static void test_import_receipt(void **state)
{
	struct fx *f = *state;
	char *m = NULL;
	const char *older = "{\"format\":\"stagefs-receipt\",\"version\":1,\"dir\":\"lab/T\","
			    "\"name\":\"x.json\",\"object\":\"_hash/lab/aa\","
			    "\"metadata\":{\"timestamp\":\"2026-01-01T00:00:00Z\",\"n\":1}}";
	const char *newer = "{\"format\":\"stagefs-receipt\",\"version\":1,\"dir\":\"lab/T\","
			    "\"name\":\"x.json\",\"object\":\"_hash/lab/aa\","
			    "\"metadata\":{\"timestamp\":\"2026-02-01T00:00:00Z\",\"n\":2}}";
	const char *unknown = "{\"format\":\"stagefs-receipt\",\"version\":1,\"dir\":\"lab/T\","
			      "\"name\":\"y.json\",\"object\":\"_hash/lab/zz\",\"metadata\":{}}";

	assert_int_equal(sfs_index_import_receipt(f->ix, older), 0); /* no object yet */
	assert_int_equal(sfs_index_object_add(f->ix, "_hash/lab/aa", "hash", "{\"size\":1}"), 0);
	assert_int_equal(sfs_index_import_receipt(f->ix, newer), 1);
	assert_int_equal(sfs_index_import_receipt(f->ix, older), 0); /* older: kept out */
	assert_int_equal(sfs_index_receipt_get(f->ix, "lab/T", "x.json", &m), 0);
	assert_non_null(strstr(m, "\"n\":2"));
	free(m);
	assert_int_equal(sfs_index_import_receipt(f->ix, unknown), 0);
	assert_int_equal(sfs_index_import_receipt(f->ix, "{\"format\":\"other\"}"), -EINVAL);
	assert_int_equal(sfs_index_import_receipt(f->ix, "not json"), -EINVAL);
}

static void test_commit_value_build(void **state)
{
	char *v = NULL;
	char *keys[] = {"subject_id=1", "session=a", "rate=1.5",
			"ok=true",	"code=007",  "raw:=\"12\""};
	char *bad[] = {"novalue"};

	(void)state;
	assert_int_equal(sfs_commit_value_build("raw", keys, 6, ".h5", &v), 0);
	assert_string_equal(
		v, "{\"field\":\"raw\",\"key\":{\"subject_id\":1,\"session\":\"a\","
		   "\"rate\":1.5,\"ok\":true,\"code\":\"007\",\"raw\":\"12\"},\"ext\":\".h5\"}");
	free(v);
	assert_int_equal(sfs_commit_value_build("raw", keys, 1, NULL, &v), 0);
	assert_string_equal(v, "{\"field\":\"raw\",\"key\":{\"subject_id\":1}}");
	free(v);
	assert_int_equal(sfs_commit_value_build("raw", bad, 1, NULL, &v), -EINVAL);
}

static int put_row(struct sfs_index *ix, const char *rel, uint64_t size, unsigned mode,
		   int64_t mtime)
{
	struct sfs_staged r = {.size = size, .mode = mode, .mtime_ns = mtime};
	return sfs_index_staged_put(ix, rel, &r);
}

static void test_staged_rows(void **state)
{
	struct fx *f = *state;
	struct sfs_staged r;
	int64_t n = -1;

	assert_int_equal(sfs_index_staged_get(f->ix, "lab/t/a.h5", &r), -ENOENT);
	assert_int_equal(put_row(f->ix, "lab/t/a.h5", 5, 0100644, 111), 0);
	assert_int_equal(put_row(f->ix, "lab/t/a.h5", 7, 0100600, 222), 0); /* replace */
	assert_int_equal(sfs_index_staged_get(f->ix, "lab/t/a.h5", &r), 0);
	assert_true(r.size == 7 && r.mode == 0100600 && r.mtime_ns == 222);
	assert_int_equal(r.n_xattrs, 0);
	sfs_staged_release(&r);
	/* a tree, a sibling sharing the prefix, and a name with LIKE's wildcards */
	assert_int_equal(put_row(f->ix, "lab/t/z.zarr/0.0", 1, 0100644, 1), 0);
	assert_int_equal(put_row(f->ix, "lab/t/z.zarr/.zarray", 1, 0100644, 1), 0);
	assert_int_equal(put_row(f->ix, "lab/t/z.zarr2/0.0", 1, 0100644, 1), 0);
	assert_int_equal(put_row(f->ix, "lab/t/z_zarr/0.0", 1, 0100644, 1), 0);
	assert_int_equal(put_row(f->ix, "lab/t/y.zarr/old", 1, 0100644, 1), 0);
	/* rename z.zarr over y.zarr: y's rows go, z's move, the others stay */
	assert_int_equal(sfs_index_staged_move(f->ix, "lab/t/z.zarr", "lab/t/y.zarr"), 0);
	assert_int_equal(sfs_index_staged_get(f->ix, "lab/t/y.zarr/0.0", &r), 0);
	sfs_staged_release(&r);
	assert_int_equal(sfs_index_staged_get(f->ix, "lab/t/y.zarr/.zarray", &r), 0);
	assert_int_equal(sfs_index_staged_get(f->ix, "lab/t/y.zarr/old", &r), -ENOENT);
	assert_int_equal(sfs_index_staged_get(f->ix, "lab/t/z.zarr/0.0", &r), -ENOENT);
	assert_int_equal(sfs_index_staged_get(f->ix, "lab/t/z.zarr2/0.0", &r), 0);
	assert_int_equal(sfs_index_staged_get(f->ix, "lab/t/z_zarr/0.0", &r), 0);
	assert_int_equal(sfs_index_staged_count(f->ix, &n), 0);
	assert_int_equal(n, 5);
	/* forget a tree (commit) and a file (unlink) */
	assert_int_equal(sfs_index_staged_forget(f->ix, "lab/t/y.zarr"), 0);
	assert_int_equal(sfs_index_staged_forget(f->ix, "lab/t/a.h5"), 0);
	assert_int_equal(sfs_index_staged_count(f->ix, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(sfs_index_staged_get(f->ix, "lab/t/z.zarr2/0.0", &r), 0);
}

static int64_t xattr_rows(struct fx *f)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t n;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_prepare_v2(db, "SELECT count(*) FROM staged_xattrs", -1, &st, NULL),
		SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void test_staged_xattrs(void **state)
{
	struct fx *f = *state;
	static const char bin[] = {'a', 0, 'b', (char)0xff};
	struct sfs_staged_xattr xs[] = {{(char *)"user.lab.raw", (void *)bin, sizeof(bin)},
					{(char *)"user.lab.empty", NULL, 0}};
	struct sfs_staged w = {
		.size = 3, .mode = 0100640, .mtime_ns = 9, .xattrs = xs, .n_xattrs = 2};
	struct sfs_staged r;

	assert_int_equal(sfs_index_staged_put(f->ix, "lab/t/d/a", &w), 0);
	assert_int_equal(sfs_index_staged_get(f->ix, "lab/t/d/a", &r), 0);
	assert_int_equal(r.n_xattrs, 2);
	assert_string_equal(r.xattrs[0].name, "user.lab.empty"); /* by name */
	assert_int_equal(r.xattrs[0].len, 0);
	assert_string_equal(r.xattrs[1].name, "user.lab.raw");
	assert_int_equal(r.xattrs[1].len, sizeof(bin));
	assert_memory_equal(r.xattrs[1].value, bin, sizeof(bin));
	sfs_staged_release(&r);
	/* replacing the row replaces its xattrs */
	w.n_xattrs = 1;
	assert_int_equal(sfs_index_staged_put(f->ix, "lab/t/d/a", &w), 0);
	assert_int_equal(xattr_rows(f), 1);
	/* they move with the row (a directory rename) and go with it */
	assert_int_equal(sfs_index_staged_move(f->ix, "lab/t/d", "lab/t/e"), 0);
	assert_int_equal(sfs_index_staged_get(f->ix, "lab/t/e/a", &r), 0);
	assert_int_equal(r.n_xattrs, 1);
	assert_string_equal(r.xattrs[0].name, "user.lab.raw");
	sfs_staged_release(&r);
	assert_int_equal(xattr_rows(f), 1);
	/* metadata only (chmod, setfattr): mode and xattrs change, size and mtime stay */
	struct sfs_staged m = {
		.size = 99, .mode = 0100600, .mtime_ns = 99, .xattrs = &xs[1], .n_xattrs = 1};
	assert_int_equal(sfs_index_staged_meta(f->ix, "lab/t/e/a", &m), 0);
	assert_int_equal(sfs_index_staged_get(f->ix, "lab/t/e/a", &r), 0);
	assert_true(r.size == 3 && r.mtime_ns == 9 && r.mode == 0100600);
	assert_int_equal(r.n_xattrs, 1);
	assert_string_equal(r.xattrs[0].name, "user.lab.empty");
	sfs_staged_release(&r);
	/* a file never stored gets no row from metadata changes */
	assert_int_equal(sfs_index_staged_meta(f->ix, "lab/t/e/never", &m), 0);
	assert_int_equal(sfs_index_staged_get(f->ix, "lab/t/e/never", &r), -ENOENT);
	assert_int_equal(xattr_rows(f), 1);
	assert_int_equal(sfs_index_staged_forget(f->ix, "lab/t/e"), 0);
	assert_int_equal(xattr_rows(f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates_and_migrates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metadata_schema_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metadata_schema_dir_and_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_finish_records_object_and_receipt, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_dedup_keeps_first_object, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_and_retarget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_receipts_list_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_staged_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_files_parts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_staged_xattrs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_receipt, setup, teardown),
		cmocka_unit_test(test_commit_value_build),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
