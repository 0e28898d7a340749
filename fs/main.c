/*
 * fs/main.c - `stagefs [options] SOURCE MOUNTPOINT` and the subcommand dispatch.
 *
 * Everything is validated before fuse_session_mount: a malformed config exits
 * 2, an unreachable store exits 1, both with "stagefs: <what>: <why>".
 */
#include "fs/fs.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/log.h"
#include "fs/hasher.h"
#include "fs/uploads.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: stagefs [options] SOURCE MOUNTPOINT\n"
		"       stagefs COMMAND [args]   (commit, status, jobs, publish, snapshots,\n"
		"                                 fsck, reindex, gc, doctor; `stagefs COMMAND "
		"--help`)\n"
		"\n"
		"SOURCE is a store directory, a file:///dir or s3://bucket/prefix?endpoint=..\n"
		"URL, or a config file (see mount.conf.example).\n"
		"\n"
		"options:\n"
		"  -f                 stay in the foreground\n"
		"  -d                 debug output (implies -f)\n"
		"  -s                 single-threaded\n"
		"  -o opt[,opt...]    ro, allow_other, default_permissions and every config key\n"
		"                     as key=value (backend, location, endpoint, bucket, region,\n"
		"                     path_style, store_name, schema_prefix, hash_prefix,\n"
		"                     subfolding, partition_pattern, token_length, index,\n"
		"                     cache_dir, cache_size, snapshot, ...); secret_key only in\n"
		"                     a config file or the environment\n"
		"  -V, --version      print the version\n"
		"  -h, --help         this help\n"
		"\n"
		"Unmount with `fusermount3 -u MOUNTPOINT` (or umount).\n");
}

struct mount_args {
	const char *source, *mountpoint;
	int foreground, debug, single;
	char *opts; /* all -o values joined with ',' */
};

static int add_opts(struct mount_args *m, const char *o)
{
	char *n = NULL;

	if (asprintf(&n, "%s%s%s", m->opts ? m->opts : "", m->opts ? "," : "", o) < 0)
		return -ENOMEM;
	free(m->opts);
	m->opts = n;
	return 0;
}

/* Returns 0, 1 (help/version printed: exit 0) or 2 (usage error). */
static int parse_args(int argc, char **argv, struct mount_args *m)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 1;
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			printf("stagefs %s (libfuse %s, %s)\n", SFS_VERSION, fuse_pkgversion(),
			       curl_version());
			return 1;
		} else if (strcmp(a, "-f") == 0) {
			m->foreground = 1;
		} else if (strcmp(a, "-d") == 0) {
			m->debug = m->foreground = 1;
		} else if (strcmp(a, "-s") == 0) {
			m->single = 1;
		} else if (strcmp(a, "-o") == 0) {
			if (++i >= argc) {
				fprintf(stderr, "stagefs: -o: missing options\n");
				return 2;
			}
			if (add_opts(m, argv[i]))
				return 2;
		} else if (strncmp(a, "-o", 2) == 0) {
			if (add_opts(m, a + 2))
				return 2;
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "stagefs: unknown option '%s' (see --help)\n", a);
			return 2;
		} else if (!m->source) {
			m->source = a;
		} else if (!m->mountpoint) {
			m->mountpoint = a;
		} else {
			fprintf(stderr, "stagefs: unexpected argument '%s'\n", a);
			return 2;
		}
	}
	if (!m->source || !m->mountpoint) {
		usage(stderr);
		return 2;
	}
	return 0;
}

/* Build libfuse's argv: program, -d, and the mount options it understands. */
static int fuse_argv(struct fuse_args *fa, const struct mount_args *m, const struct sfs_config *cfg,
		     const char *passthrough)
{
	char *o = NULL;
	char desc[512];
	int rc = 0;

	if (sfs_config_describe(cfg, desc, sizeof(desc)) < 0)
		snprintf(desc, sizeof(desc), "stagefs");
	for (char *p = desc; *p; p++)
		if (*p == ',' || *p == ' ')
			*p = '_'; /* commas would split the option */
	/*
	 * nodev,nosuid first (a later dev or suid in -o wins): device nodes and
	 * set-ID files may exist in staging, but a data store gives no one a way
	 * to a device or to another user's privileges through them.
	 */
	if (asprintf(&o, "fsname=%s,subtype=stagefs,nodev,nosuid%s%s%s%s%s", desc,
		     cfg->read_only ? ",ro" : "", cfg->allow_other ? ",allow_other" : "",
		     cfg->default_permissions ? ",default_permissions" : "",
		     passthrough && *passthrough ? "," : "", passthrough ? passthrough : "") < 0)
		return -ENOMEM;
	if (fuse_opt_add_arg(fa, "stagefs") || (m->debug && fuse_opt_add_arg(fa, "-d")) ||
	    fuse_opt_add_arg(fa, "-o") || fuse_opt_add_arg(fa, o))
		rc = -ENOMEM;
	free(o);
	return rc;
}

/* Open files hold descriptors: allow as many as we may. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			sfs_log(LOG_WARNING, "cannot raise the open file limit: %s",
				strerror(errno));
	}
}

static void on_sighup(int sig)
{
	(void)sig;
	sfs_log_reopen();
}

static int run_mount(int argc, char **argv)
{
	struct mount_args m = {0};
	struct sfs_config cfg;
	struct sfs_backend *be = NULL;
	struct sfs_index *ix = NULL;
	struct sfs_fs fs;
	struct fuse_args fa = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	char err[512] = "", *passthrough = NULL;
	int rc, exitc = 1, fs_ready = 0, mounted = 0, handlers = 0;

	/*
	 * One malloc arena for the daemon's threads (MALLOC_ARENA_MAX still wins).  Inodes
	 * are made by one FUSE thread and freed by another's FORGET; with an arena per
	 * thread every arena kept its own high-water mark: `ls -lR` of a 1,000,000-file
	 * snapshot peaked at 74 MB RSS for 34 MB of live heap, 41 MB with one arena, and
	 * took as long (22 s).  The request path allocates little; tcache serves it.
	 */
	if (!getenv("MALLOC_ARENA_MAX"))
		mallopt(M_ARENA_MAX, 1);
	sfs_config_init(&cfg);
	rc = parse_args(argc, argv, &m);
	if (rc) {
		exitc = rc == 1 ? 0 : 2;
		goto out;
	}
	if (m.debug)
		sfs_log_level = LOG_DEBUG;
	/* the source first, then -o overrides it */
	rc = sfs_config_parse_source(&cfg, m.source, err, sizeof(err));
	if (!rc && m.opts)
		rc = sfs_config_parse_opts(&cfg, m.opts, &passthrough, err, sizeof(err));
	if (!rc)
		rc = sfs_config_finalize(&cfg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "stagefs: %s\n", err[0] ? err : strerror(-rc));
		exitc = rc == -ENOENT ? 1 : 2;
		goto out;
	}
	if (!cfg.schema_prefix || !cfg.schema_prefix[0] || !cfg.hash_prefix ||
	    !cfg.hash_prefix[0] || strcmp(cfg.schema_prefix, cfg.hash_prefix) == 0) {
		fprintf(stderr, "stagefs: schema_prefix and hash_prefix must be distinct and "
				"non-empty for a mount\n");
		exitc = 2;
		goto out;
	}
	if (cfg.snapshot)
		cfg.read_only = 1; /* a snapshot never changes */
	if (access(m.mountpoint, F_OK) < 0) {
		fprintf(stderr, "stagefs: mountpoint '%s': %s\n", m.mountpoint, strerror(errno));
		goto out;
	}
	raise_fd_limit();
	/*
	 * The kernel sends modes with the caller's umask already applied: the
	 * daemon's own must not take more bits away (passthrough_ll does this).
	 * What the daemon makes for itself is created with explicit modes.
	 */
	umask(0);
	rc = sfs_backend_open(&cfg, &be);
	if (rc) {
		char desc[512];
		if (sfs_config_describe(&cfg, desc, sizeof(desc)) < 0)
			desc[0] = '\0';
		fprintf(stderr, "stagefs: cannot open store '%s': %s\n", desc, strerror(-rc));
		goto out;
	}
	rc = sfs_index_open(cfg.index, &ix);
	if (rc) {
		fprintf(stderr, "stagefs: cannot open index '%s': %s\n", cfg.index, strerror(-rc));
		goto out;
	}
	rc = cfg.snapshot ? 0 : sfs_recover(be, ix);
	if (rc) {
		fprintf(stderr, "stagefs: cannot recover interrupted commits: %s\n", strerror(-rc));
		goto out;
	}
	rc = sfs_fs_init(&fs, &cfg, be, ix);
	fs_ready = 1;
	fs.source = m.source;
	fs.options = m.opts;
	if (rc && cfg.snapshot) {
		fprintf(stderr, "stagefs: snapshot '%s': %s\n", cfg.snapshot,
			rc == -ENOENT	? "no such snapshot"
			: rc == -ESTALE ? "it was deleted (its name is never used again)"
					: strerror(-rc));
		goto out;
	}
	if (rc) {
		fprintf(stderr, "stagefs: cannot set up the mount: %s\n", strerror(-rc));
		goto out;
	}
	if (fuse_argv(&fa, &m, &cfg, passthrough)) {
		fprintf(stderr, "stagefs: out of memory\n");
		goto out;
	}
	sfs_log_take_fuse(); /* libfuse's own messages: to syslog too once daemonized */
	se = fuse_session_new(&fa, &sfs_fs_ops, sizeof(sfs_fs_ops), &fs);
	if (!se) {
		fprintf(stderr, "stagefs: invalid mount options\n");
		exitc = 2;
		goto out;
	}
	fs.se = se;
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	handlers = 1;
	/* libfuse ends the session on SIGHUP; a daemon's SIGHUP means: reopen the log
	 * (SIGTERM and SIGINT still flush everything and unmount) */
	struct sigaction hup = {.sa_handler = on_sighup};
	sigemptyset(&hup.sa_mask);
	if (sigaction(SIGHUP, &hup, NULL) != 0)
		goto out;
	if (fuse_session_mount(se, m.mountpoint) != 0) {
		fprintf(stderr, "stagefs: cannot mount on '%s'\n", m.mountpoint);
		goto out;
	}
	mounted = 1;
	if (fuse_daemonize(m.foreground) != 0)
		goto out;
	if (!m.foreground)
		sfs_log_use_syslog(1);
	rc = sfs_fs_start_notifier(&fs);
	if (!rc)
		rc = sfs_hasher_start();
	if (!rc && !cfg.snapshot && !cfg.read_only)
		rc = sfs_uploads_start(&fs);
	if (!rc && !cfg.snapshot && !cfg.read_only)
		rc = sfs_jobs_start(&fs);
	if (rc) {
		sfs_log(LOG_ERR, "cannot start a worker thread: %s", strerror(-rc));
		goto out;
	}
	if (m.single) {
		rc = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *lc = fuse_loop_cfg_create();
		if (!lc)
			goto out;
		fuse_loop_cfg_set_clone_fd(lc, 0);
		fuse_loop_cfg_set_idle_threads(lc, 16);
		rc = fuse_session_loop_mt(se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	/* the loop returns the signal that ended it: SIGTERM and SIGINT are the
	 * orderly stop (systemctl stop, ^C) - everything is flushed below - not a failure */
	exitc = rc == 0 || rc == SIGTERM || rc == SIGINT ? 0 : 1;
out:
	if (fs_ready) {
		sfs_jobs_stop(
			&fs); /* the running commits finish; the queued wait for the next mount */
		sfs_uploads_stop(&fs); /* every queued staged file goes up now */
	}
	sfs_hasher_stop();
	if (fs_ready)
		sfs_fs_stop_notifier(&fs);
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	if (fs_ready)
		sfs_fs_release(&fs);
	fuse_opt_free_args(&fa);
	sfs_index_close(ix);
	sfs_backend_free(be);
	sfs_config_release(&cfg);
	free(passthrough);
	free(m.opts);
	return exitc;
}

int main(int argc, char **argv)
{
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (argc >= 2 && sfs_cli_is_subcommand(argv[1]))
		rc = sfs_cli_main(argc - 1, argv + 1);
	else
		rc = run_mount(argc, argv);
	curl_global_cleanup();
	return rc;
}
