/*
 * fs/cli_jobs.c - the commit job queue, as DataJoint's jobs.progress() shows
 * a table's jobs:
 *
 *   stagefs jobs SOURCE|MOUNTPOINT [--all] [--retry] [-o key=value]...
 *
 * Prints one line of counts per status, then the jobs queued or running (with
 * bytes done of total), the failed ones with their reasons, and with --all the
 * finished ones too (newest first).  --retry queues the failed jobs again: on
 * a MOUNTPOINT its daemon runs them at once (the root's user.stagefs.jobs),
 * on an unmounted SOURCE the next mount does.
 */
#include "fs/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "fs/fs.h"
#include "fs/view.h"

static void jobs_usage(FILE *o)
{
	fprintf(o, "usage: stagefs jobs SOURCE|MOUNTPOINT [--all] [--retry] [-o key=value]...\n"
		   "  Counts commit jobs by status (pending, running, success, error), lists\n"
		   "  the queued and running ones (bytes done/total) and the failed ones with\n"
		   "  their reasons; --all also the finished ones, newest first.  --retry\n"
		   "  queues the failed ones again (a mount runs them at once; an unmounted\n"
		   "  store at its next mount).\n");
}

static int print_job(void *arg, struct sfs_job *j)
{
	char d[32], t[32];

	(void)arg;
	if (!strcmp(j->status, "reserved")) {
		sfs_cli_human(j->bytes_done, d, sizeof(d));
		sfs_cli_human(j->bytes_total, t, sizeof(t));
		printf("running  %-6lld staging/%s  %s/%s  (attempt %d)\n", (long long)j->id,
		       j->staging, d, t, j->attempts);
	} else if (!strcmp(j->status, "pending")) {
		printf("pending  %-6lld staging/%s  queued %s\n", (long long)j->id, j->staging,
		       j->created);
	} else if (!strcmp(j->status, "error")) {
		printf("error    %-6lld staging/%s  %s: %s  (attempt %d, %s)\n", (long long)j->id,
		       j->staging, strerror(j->err), j->error ? j->error : "", j->attempts,
		       j->finished ? j->finished : "");
	} else {
		printf("success  %-6lld staging/%s -> %s  (%s)\n", (long long)j->id, j->staging,
		       j->canonical ? j->canonical : "?", j->finished ? j->finished : "");
	}
	return 0;
}

int sfs_cli_jobs(int argc, char **argv)
{
	static const struct option lo[] = {{"all", no_argument, NULL, 'a'},
					   {"retry", no_argument, NULL, 'r'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	struct sfs_job_counts n;
	struct store s;
	char *opts = NULL, *o2 = NULL;
	int c, all = 0, retry = 0, exitc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
		if (c == 'a')
			all = 1;
		else if (c == 'r')
			retry = 1;
		else if (c == 'o' &&
			 asprintf(&o2, "%s%s%s", opts ? opts : "", opts ? "," : "", optarg) >= 0) {
			free(opts);
			opts = o2;
		} else {
			jobs_usage(c == 'h' ? stdout : stderr);
			free(opts);
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind != argc - 1) {
		jobs_usage(stderr);
		free(opts);
		return 2;
	}
	const char *where = argv[optind];
	int mounted = sfs_cli_is_mount(where);
	if (retry && mounted) {
		free(opts);
		if (setxattr(where, SFS_XATTR_JOBS, "retry", 5, 0) < 0) {
			fprintf(stderr, "stagefs: jobs --retry '%s': %s\n", where, strerror(errno));
			return 1;
		}
		printf("failed jobs queued again; the mount runs them now\n");
		return 0;
	}
	exitc = sfs_cli_store_open(where, opts, retry, 1, 1, &s);
	free(opts);
	if (exitc)
		return exitc;
	exitc = 1;
	if (retry) {
		int64_t k = 0;
		int rc = sfs_index_jobs_retry(s.ix, &k);
		if (rc) {
			fprintf(stderr, "stagefs: jobs --retry: %s\n", strerror(-rc));
			goto out;
		}
		printf("%lld failed job(s) queued again; they run at the next mount\n",
		       (long long)k);
		exitc = 0;
		goto out;
	}
	if (sfs_index_jobs_count(s.ix, &n) != 0) {
		fprintf(stderr, "stagefs: jobs: cannot read the index '%s'\n", s.cfg.index);
		goto out;
	}
	char d[32], t[32];
	sfs_cli_human(n.bytes_done, d, sizeof(d));
	sfs_cli_human(n.bytes_total, t, sizeof(t));
	printf("pending %lld, running %lld (%s/%s), success %lld, error %lld\n",
	       (long long)n.pending, (long long)n.reserved, d, t, (long long)n.success,
	       (long long)n.error);
	if (sfs_index_jobs_list(s.ix, all ? NULL : "reserved", 0, print_job, NULL) != 0 ||
	    (!all && (sfs_index_jobs_list(s.ix, "pending", 0, print_job, NULL) != 0 ||
		      sfs_index_jobs_list(s.ix, "error", 0, print_job, NULL) != 0))) {
		fprintf(stderr, "stagefs: jobs: cannot read the index '%s'\n", s.cfg.index);
		goto out;
	}
	exitc = 0;
out:
	sfs_cli_store_close(&s);
	return exitc;
}
