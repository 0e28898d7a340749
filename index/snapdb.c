/* index/snapdb.c - see snapdb.h */
#include "index/snapdb.h"
#include "index/snapdb_priv.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "index/addressing.h"

static const char *const sqls[ST_N] = {
	/* parent and name now when the parent is in (a publish adds directories first),
	   else by sfs_snapdb_seal */
	[ST_ADD] = "INSERT INTO e(path,is_dir,size,mtime,md5,object,metadata,parent,name) "
		   "VALUES(?1,?2,?3,?4,?5,?6,?7,(SELECT id FROM e WHERE path=?8),"
		   "  CASE WHEN ?8 IS NULL THEN NULL ELSE ?9 END) "
		   "ON CONFLICT(path) DO UPDATE SET "
		   "is_dir=excluded.is_dir, size=excluded.size, mtime=excluded.mtime, "
		   "md5=coalesce(excluded.md5,md5), object=coalesce(excluded.object,object), "
		   "metadata=coalesce(excluded.metadata,metadata)",
	[ST_LOOKUP] = "SELECT id,is_dir,size,mtime,name FROM e WHERE parent=?1 AND name=?2",
	[ST_NODE] = "SELECT id,is_dir,size,mtime,name FROM e WHERE id=?1",
	[ST_CHILDREN] = "SELECT id,is_dir,size,mtime,name FROM e WHERE parent=?1 AND id>?2 "
			"ORDER BY id LIMIT ?3",
	[ST_PATH] = "SELECT path FROM e WHERE id=?1",
	[ST_META] = "SELECT metadata FROM e WHERE id=?1",
	[ST_HAS] = "SELECT is_dir, coalesce(size,0) FROM e WHERE path=?1",
	[ST_SETMD5] = "UPDATE e SET md5=?2 WHERE path=?1",
	[ST_TREE] = "SELECT id, name, md5, size FROM e WHERE parent=?1 AND is_dir=?2 AND id<>1 "
		    "ORDER BY name",
};

int sfs_sdb_xl(struct sfs_snapdb *d, int rc, const char *what)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_ERROR: /* malformed JSON and the like */
		return sfs_warn(-EINVAL, "manifest: %s: %s", what, sqlite3_errmsg(d->db));
	default:
		return sfs_err(-EIO, "manifest database '%s': %s: %s", d->file, what,
			       sqlite3_errmsg(d->db));
	}
}

int sfs_sdb_run(struct sfs_snapdb *d, const char *sql)
{
	return sfs_sdb_xl(d, sqlite3_exec(d->db, sql, NULL, NULL, NULL), sql);
}

/* The prepared statement k, reset; caller holds lock. */
sqlite3_stmt *sfs_sdb_stmt(struct sfs_snapdb *d, int k)
{
	if (!d->st[k] && sqlite3_prepare_v2(d->db, sqls[k], -1, &d->st[k], NULL) != SQLITE_OK)
		return NULL;
	sqlite3_reset(d->st[k]);
	sqlite3_clear_bindings(d->st[k]);
	return d->st[k];
}

void sfs_sdb_bind_str(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

int sfs_snapdb_open(const char *path, struct sfs_snapdb **out)
{
	struct sfs_snapdb *d = calloc(1, sizeof(*d));
	int rc;

	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	if (path) {
		d->file = strdup(path);
	} else {
		const char *tmp = getenv("TMPDIR");
		if (asprintf(&d->file, "%s/stagefs-manifest-XXXXXX", tmp && *tmp ? tmp : "/tmp") <
		    0)
			d->file = NULL;
		int fd = d->file ? mkstemp(d->file) : -1;
		if (fd >= 0)
			close(fd);
		else {
			free(d->file);
			d->file = NULL;
		}
		d->temp = 1;
	}
	if (!d->file) {
		sfs_snapdb_close(d);
		return -ENOMEM;
	}
	if (sqlite3_open_v2(d->file, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		rc = sfs_err(-EIO, "cannot open manifest database '%s': %s", d->file,
			     d->db ? sqlite3_errmsg(d->db) : "no memory");
		sfs_snapdb_close(d);
		return rc;
	}
	/* a file only this handle uses (a scratch database, a manifest being loaded into
	   its .tmp): its locks are taken once, not by every statement (a publish asks one
	   query per directory) */
	size_t plen = strlen(d->file);
	if (d->temp || (plen > 4 && strcmp(d->file + plen - 4, ".tmp") == 0))
		rc = sfs_sdb_run(d, "PRAGMA locking_mode=EXCLUSIVE");
	else
		rc = 0;
	/* a cache or a scratch file: rebuilt from the store if it is ever lost */
	if (!rc)
		rc = sfs_sdb_run(
			d,
			"PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-4000;"
			"CREATE TABLE IF NOT EXISTS e("
			"  id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE,"
			"  parent INTEGER, name TEXT, is_dir INTEGER NOT NULL,"
			"  size INTEGER, mtime INTEGER, md5 TEXT, object TEXT, metadata TEXT);"
			"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);"
			"INSERT OR IGNORE INTO e(id,path,parent,name,is_dir) VALUES(1,'',0,'',1);");
	if (rc) {
		sfs_snapdb_close(d);
		return rc;
	}
	*out = d;
	return 0;
}

void sfs_snapdb_close(struct sfs_snapdb *d)
{
	if (!d)
		return;
	for (int i = 0; i < ST_N; i++)
		sqlite3_finalize(d->st[i]);
	if (d->db)
		sqlite3_close_v2(d->db);
	if (d->temp && d->file)
		unlink(d->file);
	pthread_mutex_destroy(&d->lock);
	free(d->file);
	free(d);
}

int sfs_snapdb_begin(struct sfs_snapdb *d)
{
	pthread_mutex_lock(&d->lock);
	int rc = sfs_sdb_run(d, "BEGIN");
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int sfs_snapdb_end(struct sfs_snapdb *d, int rc)
{
	pthread_mutex_lock(&d->lock);
	int e = sfs_sdb_run(d, rc ? "ROLLBACK" : "COMMIT");
	pthread_mutex_unlock(&d->lock);
	return rc ? rc : e;
}

int sfs_snapdb_add(struct sfs_snapdb *d, const struct sfs_snap_ent *e)
{
	pthread_mutex_lock(&d->lock);
	sqlite3_stmt *s = sfs_sdb_stmt(d, ST_ADD);
	int rc = s ? 0 : sfs_sdb_xl(d, sqlite3_errcode(d->db), "add");
	if (!rc) {
		sfs_sdb_bind_str(s, 1, e->path);
		sqlite3_bind_int(s, 2, e->is_dir != 0);
		if (e->is_dir) {
			sqlite3_bind_null(s, 3);
		} else {
			sqlite3_bind_int64(s, 3, (sqlite3_int64)e->size);
		}
		if (e->mtime_ns)
			sqlite3_bind_int64(s, 4, e->mtime_ns);
		sfs_sdb_bind_str(s, 5, e->md5 && e->md5[0] ? e->md5 : NULL);
		sfs_sdb_bind_str(s, 6, e->object);
		sfs_sdb_bind_str(s, 7, e->metadata);
		const char *slash = strrchr(e->path, '/');
		if (!e->path[0]) {
			sqlite3_bind_null(s, 8);
		} else if (slash) {
			sqlite3_bind_text(s, 8, e->path, (int)(slash - e->path), SQLITE_TRANSIENT);
			sqlite3_bind_text(s, 9, slash + 1, -1, SQLITE_TRANSIENT);
		} else {
			sqlite3_bind_text(s, 8, "", 0, SQLITE_STATIC);
			sqlite3_bind_text(s, 9, e->path, -1, SQLITE_TRANSIENT);
		}
		rc = sfs_sdb_xl(d, sqlite3_step(s), "add");
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int sfs_snapdb_get(struct sfs_snapdb *d, const char *path, int *is_dir, uint64_t *size)
{
	pthread_mutex_lock(&d->lock);
	sqlite3_stmt *s = sfs_sdb_stmt(d, ST_HAS);
	int r = 0;
	if (s) {
		sfs_sdb_bind_str(s, 1, path);
		r = sqlite3_step(s) == SQLITE_ROW;
		if (r && is_dir)
			*is_dir = sqlite3_column_int(s, 0);
		if (r && size)
			*size = (uint64_t)sqlite3_column_int64(s, 1);
	}
	pthread_mutex_unlock(&d->lock);
	return r;
}

int sfs_snapdb_has(struct sfs_snapdb *d, const char *path)
{
	return sfs_snapdb_get(d, path, NULL, NULL);
}

int sfs_snapdb_set_md5(struct sfs_snapdb *d, const char *path, const char *md5)
{
	pthread_mutex_lock(&d->lock);
	sqlite3_stmt *s = sfs_sdb_stmt(d, ST_SETMD5);
	int rc = s ? 0 : sfs_sdb_xl(d, sqlite3_errcode(d->db), "set md5");
	if (!rc) {
		sfs_sdb_bind_str(s, 1, path);
		sfs_sdb_bind_str(s, 2, md5);
		rc = sfs_sdb_xl(d, sqlite3_step(s), "set md5");
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/* Run a query and hand each row to fn; caller holds lock. */
int sfs_sdb_each_row(struct sfs_snapdb *d, const char *sql, int (*fn)(void *, sqlite3_stmt *),
		     void *arg)
{
	sqlite3_stmt *s = NULL;
	int rc = sfs_sdb_xl(d, sqlite3_prepare_v2(d->db, sql, -1, &s, NULL), sql), r;

	while (!rc && (r = sqlite3_step(s)) == SQLITE_ROW)
		rc = fn(arg, s);
	if (!rc && r != SQLITE_DONE)
		rc = sfs_sdb_xl(d, r, sql);
	sqlite3_finalize(s);
	return rc;
}

struct missing_ctx {
	int (*cb)(void *arg, const char *path, uint64_t size);
	void *arg;
	char **paths;
	uint64_t *sizes;
	size_t n, cap;
};

static int collect_missing(void *arg, sqlite3_stmt *s)
{
	struct missing_ctx *m = arg;

	if (m->n == m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 64;
		char **np = realloc(m->paths, nc * sizeof(*np));
		if (!np)
			return -ENOMEM;
		m->paths = np;
		uint64_t *ns = realloc(m->sizes, nc * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		m->sizes = ns;
		m->cap = nc;
	}
	m->paths[m->n] = strdup((const char *)sqlite3_column_text(s, 0));
	if (!m->paths[m->n])
		return -ENOMEM;
	m->sizes[m->n++] = (uint64_t)sqlite3_column_int64(s, 1);
	return 0;
}

int sfs_snapdb_each_missing_md5(struct sfs_snapdb *d,
				int (*cb)(void *arg, const char *path, uint64_t size), void *arg)
{
	struct missing_ctx m = {.cb = cb, .arg = arg};

	pthread_mutex_lock(&d->lock);
	int rc = sfs_sdb_each_row(
		d, "SELECT path,size FROM e WHERE is_dir=0 AND md5 IS NULL ORDER BY path",
		collect_missing, &m);
	pthread_mutex_unlock(&d->lock);
	/* the callback may write to the database: outside the query */
	for (size_t i = 0; i < m.n; i++) {
		if (!rc)
			rc = cb(arg, m.paths[i], m.sizes[i]);
		free(m.paths[i]);
	}
	free(m.paths);
	free(m.sizes);
	return rc;
}

static int count_row(void *arg, sqlite3_stmt *s)
{
	struct sfs_snap_count *c = arg;

	c->entries = (uint64_t)sqlite3_column_int64(s, 0);
	c->files = (uint64_t)sqlite3_column_int64(s, 1);
	c->dirs = (uint64_t)sqlite3_column_int64(s, 2);
	c->objects = (uint64_t)sqlite3_column_int64(s, 3);
	c->bytes = (uint64_t)sqlite3_column_int64(s, 4);
	return 0;
}

int sfs_snapdb_count(struct sfs_snapdb *d, struct sfs_snap_count *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&d->lock);
	int rc = sfs_sdb_each_row(
		d,
		"SELECT count(*), total(is_dir=0), total(is_dir=1), "
		"total(metadata IS NOT NULL), total(CASE WHEN is_dir=0 THEN size END) "
		"FROM e WHERE path<>''",
		count_row, out);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

struct part_ctx {
	char *json, *last;
	size_t count;
};

static int part_row(void *arg, sqlite3_stmt *s)
{
	struct part_ctx *p = arg;
	const char *j = (const char *)sqlite3_column_text(s, 0);
	const char *l = (const char *)sqlite3_column_text(s, 2);

	p->count = (size_t)sqlite3_column_int64(s, 1);
	if (!p->count)
		return 0;
	p->json = strdup(j ? j : "[]");
	p->last = l ? strdup(l) : NULL;
	return p->json && p->last ? 0 : -ENOMEM;
}

int sfs_snapdb_part(struct sfs_snapdb *d, char **after, size_t n, char **json, size_t *count)
{
	/* null members are left out (json_patch drops them): readable, and smaller */
	static const char *sql =
		"SELECT json_group_array(json_patch('{}', json_object("
		"  'path',path, 'type',CASE WHEN is_dir THEN 'dir' ELSE 'file' END,"
		"  'size',size, 'mtime',mtime, 'md5',md5, 'object',object,"
		"  'metadata',json(metadata)))), count(*), max(path) "
		"FROM (SELECT * FROM e WHERE path>?1 ORDER BY path LIMIT ?2)";
	struct part_ctx p = {0};
	sqlite3_stmt *s = NULL;
	int rc, r;

	pthread_mutex_lock(&d->lock);
	rc = sfs_sdb_xl(d, sqlite3_prepare_v2(d->db, sql, -1, &s, NULL), "part");
	if (!rc) {
		sfs_sdb_bind_str(s, 1, *after ? *after : "");
		sqlite3_bind_int64(s, 2, (sqlite3_int64)n);
		r = sqlite3_step(s);
		rc = r == SQLITE_ROW ? part_row(&p, s) : sfs_sdb_xl(d, r, "part");
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&d->lock);
	if (rc) {
		free(p.json);
		free(p.last);
		return rc;
	}
	if (p.count) {
		free(*after);
		*after = p.last;
	}
	*json = p.json;
	*count = p.count;
	return 0;
}

struct file_ctx {
	int (*cb)(void *arg, const char *path, uint64_t size, const char *md5);
	void *arg;
};

static int file_row(void *arg, sqlite3_stmt *s)
{
	struct file_ctx *f = arg;

	return f->cb(f->arg, (const char *)sqlite3_column_text(s, 0),
		     (uint64_t)sqlite3_column_int64(s, 1), (const char *)sqlite3_column_text(s, 2));
}

int sfs_snapdb_each_file(struct sfs_snapdb *d,
			 int (*cb)(void *arg, const char *path, uint64_t size, const char *md5),
			 void *arg)
{
	struct file_ctx f = {cb, arg};

	pthread_mutex_lock(&d->lock);
	int rc = sfs_sdb_each_row(d, "SELECT path,size,md5 FROM e WHERE is_dir=0 ORDER BY path",
				  file_row, &f);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int sfs_snapdb_load_part(struct sfs_snapdb *d, const char *json, size_t len)
{
	static const char *sql =
		"INSERT INTO e(path,is_dir,size,mtime,md5,object,metadata) "
		"SELECT json_extract(value,'$.path'), json_extract(value,'$.type')='dir',"
		"  json_extract(value,'$.size'), json_extract(value,'$.mtime'),"
		"  json_extract(value,'$.md5'), json_extract(value,'$.object'),"
		"  json_extract(value,'$.metadata') "
		"FROM json_each(?1) WHERE json_valid(?1) AND json_type(?1)='array'";
	static const char *check =
		"SELECT count(*) FROM json_each(?1) WHERE coalesce(json_type(value),'')<>'object'"
		"  OR coalesce(json_type(value,'$.path'),'')<>'text'"
		"  OR coalesce(json_extract(value,'$.type'),'') NOT IN ('file','dir')"
		"  OR (json_extract(value,'$.type')='file' AND"
		"      coalesce(json_type(value,'$.size'),'')<>'integer')"
		"  OR coalesce(json_type(value,'$.md5'),'null') NOT IN ('text','null')"
		"  OR coalesce(json_type(value,'$.mtime'),'null') NOT IN ('integer','null')"
		"  OR coalesce(json_type(value,'$.object'),'null') NOT IN ('text','null')"
		"  OR coalesce(json_type(value,'$.metadata'),'null') NOT IN ('object','null')";
	sqlite3_stmt *s = NULL;
	int rc, r;

	pthread_mutex_lock(&d->lock);
	rc = sfs_sdb_xl(d, sqlite3_prepare_v2(d->db, check, -1, &s, NULL), "check part");
	if (!rc) {
		sqlite3_bind_text(s, 1, json, (int)len, SQLITE_STATIC);
		r = sqlite3_step(s);
		if (r != SQLITE_ROW)
			rc = r == SQLITE_DONE ? -EINVAL : sfs_sdb_xl(d, r, "check part");
		else if (sqlite3_column_int64(s, 0) != 0)
			rc = sfs_warn(-EINVAL, "manifest: a part holds %lld malformed entries",
				      (long long)sqlite3_column_int64(s, 0));
	}
	sqlite3_finalize(s);
	s = NULL;
	if (!rc)
		rc = sfs_sdb_xl(d, sqlite3_prepare_v2(d->db, sql, -1, &s, NULL), "load part");
	if (!rc) {
		sqlite3_bind_text(s, 1, json, (int)len, SQLITE_STATIC);
		rc = sfs_sdb_xl(d, sqlite3_step(s), "load part");
	}
	sqlite3_finalize(s);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/* A store key by the entry rules of snapdb.h. */
static int valid_key(const char *p)
{
	size_t seg = 0;

	if (!*p || *p == '/')
		return 0;
	for (const char *c = p;; c++) {
		if (*c == '/' || !*c) {
			if (seg == 0 || seg > 255)
				return 0;
			const char *s = c - seg;
			if ((seg == 1 && s[0] == '.') || (seg == 2 && s[0] == '.' && s[1] == '.'))
				return 0;
			if (!*c)
				return 1;
			seg = 0;
			continue;
		}
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return 0;
		seg++;
	}
}

static int check_row(void *arg, sqlite3_stmt *s)
{
	const char *p = (const char *)sqlite3_column_text(s, 0);
	const char *md5 = (const char *)sqlite3_column_text(s, 1);

	if (!p || !valid_key(p))
		return sfs_warn(-EINVAL, "manifest: entry path '%.200s' is not a store key",
				p ? p : "(null)");
	if (md5 && (strlen(md5) != 32 || strspn(md5, "0123456789abcdef") != 32))
		return sfs_warn(-EINVAL, "manifest: '%.200s': md5 is not 32 hex digits", p);
	return 0;
}

int sfs_snapdb_seal(struct sfs_snapdb *d)
{
	sqlite3_stmt *s = NULL;
	int rc;

	pthread_mutex_lock(&d->lock);
	rc = sfs_sdb_each_row(d, "SELECT path, md5 FROM e WHERE path<>''", check_row, NULL);
	if (!rc)
		rc = sfs_sdb_run(d,
				 "BEGIN;"
				 "UPDATE e SET"
				 "  name=substr(path, length(rtrim(path, replace(path,'/','')))+1),"
				 "  parent=(SELECT p.id FROM e AS p WHERE"
				 "    p.path=rtrim(rtrim(e.path, replace(e.path,'/','')),'/'))"
				 " WHERE path<>'' AND (parent IS NULL OR name IS NULL);"
				 "COMMIT;");
	if (!rc)
		rc = sfs_sdb_xl(
			d,
			sqlite3_prepare_v2(d->db,
					   "SELECT count(*) FROM e AS c LEFT JOIN e AS p ON "
					   "p.id=c.parent WHERE c.path<>'' AND (p.id IS NULL OR "
					   "p.is_dir=0)",
					   -1, &s, NULL),
			"seal");
	if (!rc && sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int64(s, 0) != 0)
		rc = sfs_warn(-EINVAL, "manifest: %lld entries have no directory above them",
			      (long long)sqlite3_column_int64(s, 0));
	sqlite3_finalize(s);
	if (!rc)
		rc = sfs_sdb_run(d, "CREATE UNIQUE INDEX IF NOT EXISTS e_pn ON e(parent,name);"
				    "CREATE INDEX IF NOT EXISTS e_pid ON e(parent,id);"
				    "INSERT OR REPLACE INTO meta VALUES('sealed','1');");
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int sfs_snapdb_sealed(struct sfs_snapdb *d)
{
	sqlite3_stmt *s = NULL;
	int r = 0;

	pthread_mutex_lock(&d->lock);
	if (sqlite3_prepare_v2(d->db, "SELECT v FROM meta WHERE k='sealed'", -1, &s, NULL) ==
	    SQLITE_OK)
		r = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_finalize(s);
	pthread_mutex_unlock(&d->lock);
	return r;
}

static void node_of(sqlite3_stmt *s, struct sfs_snap_node *n)
{
	const char *name = (const char *)sqlite3_column_text(s, 4);

	n->id = (uint64_t)sqlite3_column_int64(s, 0);
	n->is_dir = sqlite3_column_int(s, 1);
	n->size = (uint64_t)sqlite3_column_int64(s, 2);
	n->mtime_ns = sqlite3_column_int64(s, 3);
	snprintf(n->name, sizeof(n->name), "%s", name ? name : "");
}

/* One-row query k with bound parent/id (and name): the node, or -ENOENT. */
static int one_node(struct sfs_snapdb *d, int k, uint64_t a, const char *name,
		    struct sfs_snap_node *out)
{
	pthread_mutex_lock(&d->lock);
	sqlite3_stmt *s = sfs_sdb_stmt(d, k);
	int rc = s ? 0 : sfs_sdb_xl(d, sqlite3_errcode(d->db), "lookup");
	if (!rc) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)a);
		if (name)
			sfs_sdb_bind_str(s, 2, name);
		int r = sqlite3_step(s);
		if (r == SQLITE_ROW)
			node_of(s, out);
		else
			rc = r == SQLITE_DONE ? -ENOENT : sfs_sdb_xl(d, r, "lookup");
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int sfs_snapdb_node(struct sfs_snapdb *d, uint64_t id, struct sfs_snap_node *out)
{
	return one_node(d, ST_NODE, id, NULL, out);
}

int sfs_snapdb_lookup(struct sfs_snapdb *d, uint64_t parent, const char *name,
		      struct sfs_snap_node *out)
{
	return one_node(d, ST_LOOKUP, parent, name, out);
}

int sfs_snapdb_children(struct sfs_snapdb *d, uint64_t parent, uint64_t after, size_t max,
			int (*cb)(void *arg, const struct sfs_snap_node *n), void *arg)
{
	struct sfs_snap_node *v = calloc(max ? max : 1, sizeof(*v));
	size_t n = 0;
	int rc;

	if (!v)
		return -ENOMEM;
	pthread_mutex_lock(&d->lock);
	sqlite3_stmt *s = sfs_sdb_stmt(d, ST_CHILDREN);
	rc = s ? 0 : sfs_sdb_xl(d, sqlite3_errcode(d->db), "children");
	if (!rc) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)parent);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)after);
		sqlite3_bind_int64(s, 3, (sqlite3_int64)max);
		int r;
		while (n < max && (r = sqlite3_step(s)) == SQLITE_ROW)
			node_of(s, &v[n++]);
		if (n < max && r != SQLITE_DONE)
			rc = sfs_sdb_xl(d, r, "children");
	}
	pthread_mutex_unlock(&d->lock);
	/* the callback runs unlocked: it may reply to the kernel */
	for (size_t i = 0; !rc && i < n; i++)
		if (cb(arg, &v[i]))
			break;
	free(v);
	return rc;
}

/* Column 0 of one-row query k on id as a new string: -ENOENT no row, -ENODATA NULL. */
static int one_text(struct sfs_snapdb *d, int k, uint64_t id, char **out)
{
	pthread_mutex_lock(&d->lock);
	sqlite3_stmt *s = sfs_sdb_stmt(d, k);
	int rc = s ? 0 : sfs_sdb_xl(d, sqlite3_errcode(d->db), "read");
	if (!rc) {
		sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
		int r = sqlite3_step(s);
		if (r == SQLITE_ROW) {
			const char *t = (const char *)sqlite3_column_text(s, 0);
			*out = t ? strdup(t) : NULL;
			rc = !t ? -ENODATA : *out ? 0 : -ENOMEM;
		} else {
			rc = r == SQLITE_DONE ? -ENOENT : sfs_sdb_xl(d, r, "read");
		}
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int sfs_snapdb_path(struct sfs_snapdb *d, uint64_t id, char **path)
{
	return one_text(d, ST_PATH, id, path);
}

int sfs_snapdb_metadata(struct sfs_snapdb *d, uint64_t id, char **json)
{
	return one_text(d, ST_META, id, json);
}

/* ---- JSON expressions ---- */
