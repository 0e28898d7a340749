/*
 * fs/cli_snapshots.c - the snapshot commands (SPEC §5, §6):
 *
 *   stagefs publish MOUNTPOINT NAME [--prefix PATH]... [--message TEXT] [--json]
 *   stagefs snapshots list [--json]           SOURCE|MOUNTPOINT [-o key=value]...
 *   stagefs snapshots show NAME [--json]      SOURCE|MOUNTPOINT
 *   stagefs snapshots diff A B|live           SOURCE|MOUNTPOINT
 *   stagefs snapshots verify NAME [--jobs N]  SOURCE|MOUNTPOINT
 *   stagefs snapshots delete NAME             SOURCE|MOUNTPOINT
 *
 * publish asks the mount's daemon (it owns the index and the credentials);
 * the others open the store themselves: SOURCE as a mount would, or a
 * MOUNTPOINT's source as its daemon reports it (user.stagefs.source of the
 * mount root), with this process's credentials.
 */
#include "fs/fs.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/snapshot.h"
#include "fs/cli.h"
#include "fs/view.h"

/* ---- publish ---- */

struct poll_ctx {
	const char *dir;
	volatile int stop;
};

/* On a TTY: show what the daemon says it is doing, until stopped. */
static void *poll_status(void *arg)
{
	struct poll_ctx *p = arg;

	while (!p->stop) {
		char *s = NULL;
		if (sfs_cli_xattr(p->dir, SFS_XATTR_STATUS, &s) == 0 &&
		    strncmp(s, "publishing", 10) == 0)
			fprintf(stderr, "\r\033[K%.*s", 100, s);
		free(s);
		struct timespec ts = {0, 200 * 1000000L};
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "\r\033[K");
	return NULL;
}

static void publish_usage(FILE *f)
{
	fprintf(f, "usage: stagefs publish MOUNTPOINT NAME [--prefix PATH]... [--message TEXT] "
		   "[--json]\n"
		   "  Freezes the canonical objects (all, or those under each PATH: a store key\n"
		   "  such as _schema/lab, or that folder under MOUNTPOINT) as snapshot NAME\n"
		   "  ([A-Za-z0-9._-]{1,128}).  No data is copied.  A NAME that exists or was\n"
		   "  deleted cannot be published again.  Prints entries, bytes, checksum.\n");
}

int sfs_cli_publish(int argc, char **argv)
{
	const char *mnt = NULL, *name = NULL, *message = NULL;
	const char **prefixes = calloc((size_t)argc, sizeof(*prefixes));
	int np = 0, json = 0, exitc = 1;
	char *pre = strdup("[]"), *req = NULL, *dir = NULL, *head = NULL, *hp = NULL;

	if (!prefixes || !pre)
		goto out;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			publish_usage(stdout);
			exitc = 0;
			goto out;
		} else if (!strcmp(a, "--json")) {
			json = 1;
		} else if ((!strcmp(a, "--prefix") || !strcmp(a, "--message")) && i + 1 < argc) {
			if (a[2] == 'p')
				prefixes[np++] = argv[++i];
			else
				message = argv[++i];
		} else if (a[0] != '-' && !mnt) {
			mnt = a;
		} else if (a[0] != '-' && !name) {
			name = a;
		} else {
			fprintf(stderr, "stagefs: publish: unexpected argument '%s'\n", a);
			publish_usage(stderr);
			exitc = 2;
			goto out;
		}
	}
	if (!mnt || !name) {
		publish_usage(stderr);
		exitc = 2;
		goto out;
	}
	if (!sfs_snap_name_ok(name)) {
		fprintf(stderr,
			"stagefs: publish: '%s' is not a snapshot name ([A-Za-z0-9._-]{1,128})\n",
			name);
		exitc = 2;
		goto out;
	}
	size_t ml = strlen(mnt);
	while (ml > 1 && mnt[ml - 1] == '/')
		ml--;
	for (int i = 0; i < np; i++) {
		const char *p = prefixes[i];
		/* a folder under the mount is its store key */
		if (strncmp(p, mnt, ml) == 0 && p[ml] == '/')
			p += ml + 1;
		char *plen = strdup(p);
		size_t l = plen ? strlen(plen) : 0;
		while (l > 0 && plen[l - 1] == '/')
			plen[--l] = '\0';
		char *n = NULL;
		if (!plen || sfs_json_eval("json_insert(?1,'$[#]',?2)", 2,
					   (const char *const[]){pre, plen}, &n) != 0) {
			free(plen);
			goto out;
		}
		free(plen);
		free(pre);
		pre = n;
	}
	if (sfs_json_eval("json_object('name',?1,'message',?2,'prefixes',json(?3))", 3,
			  (const char *const[]){name, message, pre}, &req) != 0 ||
	    asprintf(&dir, "%.*s/%s", (int)ml, mnt, SFS_DOT_SNAPSHOTS) < 0) {
		dir = NULL;
		goto out;
	}
	struct stat st;
	if (stat(dir, &st) < 0) {
		fprintf(stderr, "stagefs: publish: '%s' is not a live stagefs mount (no %s)\n", mnt,
			SFS_DOT_SNAPSHOTS);
		goto out;
	}
	struct poll_ctx pc = {dir, 0};
	pthread_t t;
	int polling = isatty(2) && pthread_create(&t, NULL, poll_status, &pc) == 0;
	int rc = setxattr(dir, SFS_XATTR_PUBLISH, req, strlen(req), 0) < 0 ? -errno : 0;
	if (polling) {
		pc.stop = 1;
		pthread_join(t, NULL);
	}
	if (rc) {
		char *s = NULL;
		if (sfs_cli_xattr(dir, SFS_XATTR_STATUS, &s) == 0 && strncmp(s, "error: ", 7) == 0)
			fprintf(stderr, "stagefs: publish '%s': %s: %s\n", name, strerror(-rc),
				s + 7);
		else
			fprintf(stderr, "stagefs: publish '%s': %s\n", name, strerror(-rc));
		free(s);
		goto out;
	}
	/* the daemon keeps the head it just wrote; another publish since: read ours back */
	if (sfs_cli_xattr(dir, SFS_XATTR_SNAPSHOT, &head) == 0) {
		char *hn = sfs_cli_jget(head, "$.name");
		if (!hn || strcmp(hn, name) != 0) {
			free(head);
			head = NULL;
		}
		free(hn);
	}
	if (!head && (asprintf(&hp, "%s/%s", dir, name) < 0 ||
		      sfs_cli_xattr(hp, SFS_XATTR_SNAPSHOT, &head) != 0)) {
		hp = NULL;
		fprintf(stderr, "stagefs: publish '%s': published, but cannot read it back\n",
			name);
		goto out;
	}
	if (json) {
		printf("%s\n", head);
	} else {
		char *e = sfs_cli_jget(head, "$.entries"), *f = sfs_cli_jget(head, "$.files"),
		     *b = sfs_cli_jget(head, "$.bytes"), *c = sfs_cli_jget(head, "$.checksum"),
		     hb[32];
		sfs_cli_human(b ? strtoull(b, NULL, 10) : 0, hb, sizeof(hb));
		printf("published snapshot %s: %s entries (%s files), %s bytes (%s), checksum %s\n",
		       name, e ? e : "?", f ? f : "?", b ? b : "?", hb, c ? c : "?");
		free(e);
		free(f);
		free(b);
		free(c);
	}
	exitc = 0;
out:
	free(prefixes);
	free(pre);
	free(req);
	free(dir);
	free(head);
	free(hp);
	return exitc;
}

static void snapshots_usage(FILE *f)
{
	fprintf(f,
		"usage: stagefs snapshots list [--json]          SOURCE|MOUNTPOINT [-o key=value]\n"
		"       stagefs snapshots show NAME [--json]     SOURCE|MOUNTPOINT\n"
		"       stagefs snapshots diff A B|live          SOURCE|MOUNTPOINT\n"
		"       stagefs snapshots verify NAME [--jobs N] SOURCE|MOUNTPOINT\n"
		"       stagefs snapshots delete NAME            SOURCE|MOUNTPOINT\n"
		"  diff prints '+ path' (only in B), '- path' (only in A), '~ path' (changed).\n"
		"  verify re-reads every byte and exits 1 naming each object that differs.\n"
		"  delete leaves a tombstone: the name is never published again.\n");
}

static int why_missing(const char *name, int rc)
{
	if (rc == -ENOENT)
		fprintf(stderr, "stagefs: snapshots: no such snapshot '%s'\n", name);
	else if (rc == -ESTALE)
		fprintf(stderr, "stagefs: snapshots: snapshot '%s' was deleted\n", name);
	else
		fprintf(stderr, "stagefs: snapshots: '%s': %s\n", name, strerror(-rc));
	return 1;
}

static void print_head(const char *head, int header)
{
	char *n = sfs_cli_jget(head, "$.name"), *c = sfs_cli_jget(head, "$.created"),
	     *e = sfs_cli_jget(head, "$.entries"), *b = sfs_cli_jget(head, "$.bytes"),
	     *k = sfs_cli_jget(head, "$.checksum"), *m = sfs_cli_jget(head, "$.message"), hb[32];

	if (header)
		printf("%-24s %-32s %10s %10s  %-44s %s\n", "NAME", "CREATED", "ENTRIES", "BYTES",
		       "CHECKSUM", "MESSAGE");
	sfs_cli_human(b ? strtoull(b, NULL, 10) : 0, hb, sizeof(hb));
	printf("%-24s %-32s %10s %10s  %-44s %s\n", n ? n : "?", c ? c : "?", e ? e : "?", hb,
	       k ? k : "?", m ? m : "");
	free(n);
	free(c);
	free(e);
	free(b);
	free(k);
	free(m);
}

struct list_ctx {
	struct store *s;
	int json, n;
};

static int list_one(void *arg, const char *name)
{
	struct list_ctx *l = arg;
	char *head = NULL;

	if (sfs_snap_head(l->s->be, name, &head, NULL) != 0)
		return 0;
	if (l->json)
		printf("%s%s", l->n ? "," : "[", head);
	else
		print_head(head, l->n == 0);
	l->n++;
	free(head);
	return 0;
}

struct diff_out {
	uint64_t n;
};

static int diff_line(void *arg, char kind, const char *path)
{
	((struct diff_out *)arg)->n++;
	printf("%c %s\n", kind, path);
	return 0;
}

/* ---- verify ---- */

#define VBATCH 10000 /* files read at a time: a batch, not the snapshot, is in memory */

struct vfile {
	char *path;
	uint64_t size;
	char want[33], got[33];
	int state; /* 0 the same, 1 other bytes, 2 missing, 3 unreadable */
};

struct vctx {
	struct store *s;
	const char *name;
	struct vfile v[VBATCH];
	size_t n;	 /* files in this batch */
	size_t next;	 /* the next in this batch to read; atomic */
	size_t before;	 /* files of earlier batches */
	uint64_t done;	 /* bytes read; atomic */
	uint64_t total;	 /* bytes of every file */
	uint64_t nfiles; /* files in the snapshot */
	int jobs, bad;
	volatile int stop;
};

static void *vworker(void *arg)
{
	struct vctx *c = arg;

	for (;;) {
		size_t i = __atomic_fetch_add(&c->next, 1, __ATOMIC_RELAXED);
		if (i >= c->n)
			break;
		struct vfile *f = &c->v[i];
		uint64_t got = 0;
		int rc = sfs_snap_md5_object(c->s->be, f->path, f->got, &got);
		f->state = rc == -ENOENT				 ? 2
			   : rc						 ? 3
			   : (got != f->size || strcmp(f->got, f->want)) ? 1
									 : 0;
		__atomic_add_fetch(&c->done, f->size, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *vprogress(void *arg)
{
	struct vctx *c = arg;

	while (!c->stop) {
		char a[32], b[32];
		size_t next = __atomic_load_n(&c->next, __ATOMIC_RELAXED);
		size_t n = __atomic_load_n(&c->n, __ATOMIC_RELAXED);
		sfs_cli_human(__atomic_load_n(&c->done, __ATOMIC_RELAXED), a, sizeof(a));
		sfs_cli_human(c->total, b, sizeof(b));
		fprintf(stderr, "\r\033[Kverifying: %s of %s, %zu of %llu files", a, b,
			__atomic_load_n(&c->before, __ATOMIC_RELAXED) + (next < n ? next : n),
			(unsigned long long)c->nfiles);
		struct timespec ts = {0, 200 * 1000000L};
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "\r\033[K");
	return NULL;
}

/* Read the batch's files (c->jobs threads), report those that differ, empty it. */
static void vbatch(struct vctx *c)
{
	pthread_t th[64];
	int nth = 0;

	for (; nth < c->jobs && nth < 64; nth++)
		if (pthread_create(&th[nth], NULL, vworker, c) != 0)
			break;
	if (!nth)
		vworker(c);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	for (size_t i = 0; i < c->n; i++) {
		struct vfile *f = &c->v[i];
		if (f->state == 1)
			fprintf(stderr,
				"stagefs: verify '%s': '%s' differs (md5 %s, the snapshot says "
				"%s)\n",
				c->name, f->path, f->got, f->want);
		else if (f->state)
			fprintf(stderr, "stagefs: verify '%s': '%s' is %s\n", c->name, f->path,
				f->state == 2 ? "missing" : "unreadable");
		c->bad += f->state != 0;
		free(f->path);
	}
	__atomic_add_fetch(&c->before, c->n, __ATOMIC_RELAXED);
	__atomic_store_n(&c->n, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&c->next, 0, __ATOMIC_RELAXED);
}

static int vcollect(void *arg, const char *path, uint64_t size, const char *md5)
{
	struct vctx *c = arg;
	struct vfile *f = &c->v[c->n];

	memset(f, 0, sizeof(*f));
	f->path = strdup(path);
	if (!f->path)
		return -ENOMEM;
	f->size = size;
	snprintf(f->want, sizeof(f->want), "%s", md5 ? md5 : "");
	if (++c->n == VBATCH)
		vbatch(c);
	return 0;
}

static int verify(struct store *s, const char *name, int jobs)
{
	struct sfs_snapdb *db = NULL;
	struct sfs_snap_count cnt;
	struct vctx *c = calloc(1, sizeof(*c));
	char *head = NULL, *want = NULL, got[SFS_ZARR_CHECKSUM_MAX];
	pthread_t pt;
	int rc, bad = 0, prog = 0;

	if (!c)
		return 1;
	c->s = s;
	c->name = name;
	c->jobs = jobs;
	/* the manifest as the store holds it now, not a cached copy */
	rc = sfs_snap_load(s->be, name, NULL, &db, &head);
	if (rc) {
		free(c);
		return why_missing(name, rc);
	}
	rc = sfs_snapdb_count(db, &cnt);
	if (rc)
		goto out;
	c->total = cnt.bytes;
	c->nfiles = cnt.files;
	prog = isatty(2) && pthread_create(&pt, NULL, vprogress, c) == 0;
	rc = sfs_snapdb_each_file(db, vcollect, c);
	if (!rc)
		vbatch(c);
	for (size_t i = 0; i < c->n; i++) /* a batch an error cut short */
		free(c->v[i].path);
	if (prog) {
		c->stop = 1;
		pthread_join(pt, NULL);
	}
	bad = c->bad;
	if (rc || bad)
		goto out;
	/* every file read back as the manifest says: the manifest's digests are the bytes' */
	rc = sfs_snapdb_checksum(db, got, sizeof(got));
	want = sfs_cli_jget(head, "$.checksum");
	if (!rc && (!want || strcmp(want, got) != 0)) {
		fprintf(stderr,
			"stagefs: verify '%s': the tree checksum is %s, the snapshot says %s\n",
			name, got, want ? want : "?");
		bad++;
	}
	if (!rc && !bad)
		printf("snapshot %s verified: %llu files, %llu bytes, checksum %s\n", name,
		       (unsigned long long)c->before, (unsigned long long)c->total, got);
out:
	free(c);
	free(head);
	free(want);
	sfs_snapdb_close(db);
	if (rc) {
		fprintf(stderr, "stagefs: verify '%s': %s\n", name, strerror(-rc));
		return 1;
	}
	return bad ? 1 : 0;
}

/* ---- the dispatcher ---- */

int sfs_cli_snapshots(int argc, char **argv)
{
	const char *pos[4] = {0}, *action = NULL;
	char *opts = NULL;
	int npos = 0, json = 0, jobs = 4, exitc = 1;
	struct store s;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			snapshots_usage(stdout);
			return 0;
		} else if (!strcmp(a, "--json")) {
			json = 1;
		} else if (!strcmp(a, "--jobs") && i + 1 < argc) {
			jobs = sfs_cli_atoi(argv[++i]);
		} else if (!strcmp(a, "-o") && i + 1 < argc) {
			char *n = NULL;
			if (asprintf(&n, "%s%s%s", opts ? opts : "", opts ? "," : "", argv[++i]) <
			    0)
				n = NULL;
			free(opts);
			opts = n;
		} else if (a[0] != '-' && !action) {
			action = a;
		} else if (a[0] != '-' && npos < 4) {
			pos[npos++] = a;
		} else {
			fprintf(stderr, "stagefs: snapshots: unexpected argument '%s'\n", a);
			snapshots_usage(stderr);
			free(opts);
			return 2;
		}
	}
	int want = !action		     ? -1
		   : !strcmp(action, "list") ? 0
		   : !strcmp(action, "diff") ? 2
		   : (!strcmp(action, "show") || !strcmp(action, "verify") ||
		      !strcmp(action, "delete"))
			   ? 1
			   : -1;
	if (want < 0 || npos != want + 1 || jobs < 1) {
		snapshots_usage(stderr);
		free(opts);
		return 2;
	}
	const char *where = pos[want];
	int diff_live = want == 2 && !strcmp(pos[1], "live");
	exitc = sfs_cli_store_open(where, opts, !strcmp(action, "delete"), diff_live,
				   !strcmp(action, "verify"), &s);
	free(opts);
	if (exitc)
		return exitc;
	if (!strcmp(action, "list")) {
		struct list_ctx l = {&s, json, 0};
		int rc = sfs_snap_list(s.be, list_one, &l);
		if (json)
			printf("%s\n", l.n ? "]" : "[]");
		exitc = rc ? 1 : 0;
	} else if (!strcmp(action, "show")) {
		char *head = NULL;
		int rc = sfs_snap_head(s.be, pos[0], &head, NULL);
		if (rc)
			exitc = why_missing(pos[0], rc);
		else if (json)
			printf("%s\n", head);
		else
			print_head(head, 1);
		free(head);
	} else if (!strcmp(action, "delete")) {
		int rc = sfs_snap_delete(s.be, pos[0]);
		if (rc)
			exitc = why_missing(pos[0], rc);
		else
			printf("deleted snapshot %s (the name is never published again)\n", pos[0]);
	} else if (!strcmp(action, "verify")) {
		exitc = verify(&s, pos[0], jobs);
	} else {
		struct sfs_snapdb *a = NULL, *b = NULL;
		struct diff_out d = {0};
		char why[400] = "";
		int rc = sfs_snap_load(s.be, pos[0], NULL, &a, NULL);
		if (rc) {
			exitc = why_missing(pos[0], rc);
		} else {
			if (diff_live) {
				rc = sfs_snapdb_open(NULL, &b);
				if (!rc)
					rc = sfs_snap_build_live(s.be, s.ix, &s.cfg, NULL, 0, b,
								 why, sizeof(why));
			} else {
				rc = sfs_snap_load(s.be, pos[1], NULL, &b, NULL);
			}
			if (rc && !diff_live)
				exitc = why_missing(pos[1], rc);
			else if (rc)
				fprintf(stderr, "stagefs: snapshots: diff: %s\n",
					why[0] ? why : strerror(-rc));
			else
				exitc = sfs_snapdb_diff(a, b, diff_line, &d) ? 1 : 0;
		}
		sfs_snapdb_close(a);
		sfs_snapdb_close(b);
	}
	sfs_cli_store_close(&s);
	return exitc;
}
