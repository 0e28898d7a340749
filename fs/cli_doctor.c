/*
 * fs/cli_doctor.c - what stands between this machine and a working mount:
 *
 *   stagefs doctor [SOURCE] [-o key=value]...
 *
 * Checks /dev/fuse, fusermount3 and /etc/fuse.conf's user_allow_other; with
 * SOURCE also the configuration, the index's and (s3) the cache's directory
 * (writable, free space), the credentials, the store (reachable, a stagefs
 * store yet), and on s3 the clock against the server's (SigV4 refuses more
 * than 15 minutes of skew) and whether the server honours If-None-Match on
 * PUT (one probe object, written and removed).  One line per check: "ok",
 * "note" or "problem", each problem with how to fix it.  Exit status: 0 no
 * problem, 1 a problem, 2 usage.
 */
#include "fs/cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "backend/s3_client.h"
#include "common/log.h"
#include "fs/fs.h"

static int problems;

static void doctor_usage(FILE *o)
{
	fprintf(o, "usage: stagefs doctor [SOURCE] [-o key=value]...\n"
		   "  Checks what a mount needs: /dev/fuse, fusermount3, user_allow_other in\n"
		   "  /etc/fuse.conf; with SOURCE also the configuration, the index and cache\n"
		   "  directories (writable, free space), the credentials, the store, and on s3\n"
		   "  the clock against the server's and what the server honours (one probe\n"
		   "  object is written and removed).  Each problem comes with its fix.  Exit\n"
		   "  status 0 when there is none, 1 when there is one.\n");
}

/* one line: TAG (ok, note, problem) padded to 9 columns, what, the message */
static void say(const char *tag, const char *what, const char *fmt, va_list ap)
{
	printf("%-9s%s: ", tag, what);
	vprintf(fmt, ap);
	putchar('\n');
}

static void ok(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ok(const char *what, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say("ok", what, fmt, ap);
	va_end(ap);
}

static void note(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const char *what, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say("note", what, fmt, ap);
	va_end(ap);
}

static void problem(const char *what, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void problem(const char *what, const char *fix, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say("problem", what, fmt, ap);
	va_end(ap);
	printf("         fix: %s\n", fix);
	problems++;
}

/* ---- the machine ---- */

static void check_fuse(void)
{
	struct stat st;
	int fd;

	if (stat("/dev/fuse", &st) != 0 || !S_ISCHR(st.st_mode)) {
		problem("/dev/fuse",
			"load the module (modprobe fuse); in a container, pass the device "
			"(docker run --device /dev/fuse --cap-add SYS_ADMIN)",
			"missing");
		return;
	}
	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		problem("/dev/fuse",
			"run as root, or make it usable (chmod 0666 /dev/fuse, as Debian's "
			"fuse3 package does)",
			"cannot open it: %s", strerror(errno));
		return;
	}
	close(fd);
	ok("/dev/fuse", "can be opened");
}

static void check_fusermount(void)
{
	static const char *const where[] = {"/usr/bin/fusermount3", "/bin/fusermount3"};
	struct stat st;

	for (size_t i = 0; i < 2; i++) {
		if (stat(where[i], &st) != 0)
			continue;
		if (geteuid() != 0 && !(st.st_mode & S_ISUID))
			problem("fusermount3",
				"reinstall fuse3 (apt-get install --reinstall fuse3)",
				"%s is not set-user-ID: users other than root cannot mount",
				where[i]);
		else
			ok("fusermount3", "%s", where[i]);
		return;
	}
	problem("fusermount3", "apt-get install fuse3", "not installed (unmounting needs it)");
}

static void check_fuse_conf(void)
{
	FILE *f = fopen("/etc/fuse.conf", "r");
	char line[512];
	int on = 0;

	while (f && fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, " \t");
		p[strcspn(p, " \t\r\n#")] = '\0';
		on |= strcmp(p, "user_allow_other") == 0;
	}
	if (f)
		fclose(f);
	if (on)
		ok("/etc/fuse.conf", "user_allow_other is set");
	else if (geteuid() == 0)
		note("/etc/fuse.conf", "no user_allow_other: root may use -o allow_other anyway");
	else
		problem("/etc/fuse.conf",
			"add a line 'user_allow_other' to /etc/fuse.conf (as root), or mount as "
			"root",
			"no user_allow_other: -o allow_other (other users on a shared PC) will "
			"fail");
}

/* ---- the store's local side ---- */

/* dir (or its nearest existing ancestor, where it would be made): writable, free space */
static void check_dir(const char *what, const char *path, uint64_t want)
{
	char *d = strdup(path), *p = d;
	struct statvfs vf;
	struct stat st;

	while (p && access(p, F_OK) != 0 && strcmp(p, "/") != 0)
		p = dirname(p);
	if (!p) {
		problem(what, "free memory", "out of memory");
		free(d);
		return;
	}
	if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
		problem(what, "choose another path (-o index=... / cache_dir=...)",
			"'%s' cannot be made: '%s' is not a directory", path, p);
	} else if (access(p, W_OK | X_OK) != 0) {
		problem(what,
			"choose a directory you may write (-o index=... / cache_dir=...), or "
			"mount as its owner",
			"'%s' cannot be written here ('%s': %s)", path, p, strerror(errno));
	} else if (statvfs(p, &vf) == 0) {
		uint64_t avail = (uint64_t)vf.f_bavail * vf.f_frsize;
		char h[32], w[32];
		sfs_cli_human(avail, h, sizeof(h));
		sfs_cli_human(want, w, sizeof(w));
		if (avail < (64u << 20))
			problem(what, "free space there, or put it elsewhere", "'%s': only %s free",
				path, h);
		else if (avail < want)
			note(what, "'%s': %s free, less than %s", path, h, w);
		else
			ok(what, "'%s' (%s free)", path, h);
	}
	free(d);
}

/* ---- s3 ---- */

/* The server's Date against ours (SigV4 refuses more than 15 min of skew). */
static void check_clock(const char *endpoint)
{
	CURL *h = curl_easy_init();
	struct curl_header *hd = NULL;
	time_t server = -1;

	if (!h)
		return;
	curl_easy_setopt(h, CURLOPT_URL, endpoint);
	curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 15L);
	if (curl_easy_perform(h) == CURLE_OK &&
	    curl_easy_header(h, "Date", 0, CURLH_HEADER, -1, &hd) == CURLHE_OK)
		server = curl_getdate(hd->value, NULL);
	curl_easy_cleanup(h);
	if (server < 0) {
		note("clock", "the server sent no Date: not compared");
		return;
	}
	long skew = (long)(time(NULL) - server);
	long a = labs(skew);
	if (a > 900)
		problem("clock", "set the clock (chrony or systemd-timesyncd; timedatectl status)",
			"%ld s %s the server's: signed requests are refused past 15 min", a,
			skew > 0 ? "ahead of" : "behind");
	else if (a > 60)
		note("clock", "%ld s %s the server's (refused past 15 min)", a,
		     skew > 0 ? "ahead of" : "behind");
	else
		ok("clock", "within %ld s of the server's", a);
}

static const char *s3_fix(int rc)
{
	return rc == -EACCES   ? "check access_key/secret_key (or AWS_* / ~/.aws/credentials) "
				 "and region"
	       : rc == -ENOENT ? "create the bucket, or correct bucket= in SOURCE"
			       : "check endpoint= (scheme, host, port), the network, and for "
				 "https AWS_CA_BUNDLE";
}

static void check_s3(const struct sfs_config *c)
{
	struct sfs_s3_opts o = {.endpoint = c->endpoint,
				.bucket = c->bucket,
				.region = c->region,
				.path_style = c->path_style,
				.access_key = c->access_key,
				.secret_key = c->secret_key,
				.session_token = c->session_token,
				.max_attempts = 2};
	struct sfs_s3_client *cl = NULL;
	char *marker = NULL, *probe = NULL;
	const char *loc = c->location ? c->location : "";
	int rc;

	if (c->access_key && c->secret_key)
		ok("credentials", "access key %.4s...%s", c->access_key,
		   c->session_token ? " with a session token" : "");
	else
		note("credentials", "none: requests are anonymous (a public bucket only)");
	if (sfs_s3_client_new(&o, &cl) != 0) {
		problem("s3", "check the configuration", "cannot make a client");
		return;
	}
	check_clock(c->endpoint);
	if (asprintf(&marker, "%s%s.stagefs/format", loc, *loc ? "/" : "") < 0 ||
	    asprintf(&probe, "%s%s.stagefs/doctor-%ld-%ld", loc, *loc ? "/" : "", (long)getpid(),
		     (long)time(NULL)) < 0)
		goto out;
	rc = sfs_s3_head(cl, marker, NULL);
	if (rc == 0) {
		ok("store", "s3://%s/%s at %s is a stagefs store", c->bucket, loc, c->endpoint);
	} else if (rc == -ENOENT) {
		rc = sfs_s3_list_encodes(cl, loc);
		if (rc < 0) {
			problem("store", s3_fix(rc), "s3://%s at %s: %s", c->bucket, c->endpoint,
				strerror(-rc));
			goto out;
		}
		note("store",
		     "s3://%s/%s is reachable but holds no store yet: the first mount makes "
		     "one",
		     c->bucket, loc);
	} else {
		problem("store", s3_fix(rc), "s3://%s at %s: %s", c->bucket, c->endpoint,
			strerror(-rc));
		goto out;
	}
	rc = sfs_s3_list_encodes(cl, loc);
	if (rc == 1)
		ok("listings", "keys come url-encoded: any staged name lists back");
	else if (rc == 0)
		note("listings", "the server sends keys raw: staged names with control characters "
				 "are refused");
	/* If-None-Match on PUT: the probe written twice, the second conditionally */
	rc = sfs_s3_put(cl, probe, "probe\n", 6, 0);
	if (rc) {
		note("conditional writes", "cannot write a probe (%s): not checked", strerror(-rc));
		goto out;
	}
	rc = sfs_s3_put(cl, probe, "probe\n", 6, SFS_S3_IF_NONE_MATCH);
	if (rc == -EEXIST)
		ok("conditional writes", "If-None-Match honoured on PUT: no-replace is atomic");
	else if (rc == 0 || rc == -ENOSYS)
		note("conditional writes",
		     "If-None-Match %s: stagefs takes a claim object before "
		     "each canonical write (safe, one request more)",
		     rc ? "not implemented" : "ignored");
	else
		note("conditional writes", "the probe failed (%s)", strerror(-rc));
	if (sfs_s3_delete(cl, probe) != 0)
		note("conditional writes", "could not remove the probe '%s'", probe);
out:
	free(marker);
	free(probe);
	sfs_s3_client_free(cl);
}

static void check_file_store(const struct sfs_config *c)
{
	char *marker = NULL;
	struct stat st;

	if (stat(c->location, &st) != 0 || !S_ISDIR(st.st_mode)) {
		problem("store", "create the directory, or correct SOURCE", "'%s': %s", c->location,
			strerror(errno ? errno : ENOTDIR));
		return;
	}
	if (access(c->location, W_OK | X_OK) != 0)
		note("store", "'%s' is not writable here: only -o ro mounts", c->location);
	if (asprintf(&marker, "%s/.stagefs/format", c->location) < 0)
		return;
	if (access(marker, R_OK) == 0)
		ok("store", "'%s' is a stagefs store", c->location);
	else
		note("store", "'%s' holds no store yet: the first mount makes one", c->location);
	free(marker);
}

static void check_source(const char *source, const char *opts)
{
	struct sfs_config c;
	char err[512] = "", desc[1024];
	char *pass = NULL;
	int rc;

	sfs_config_init(&c);
	rc = sfs_config_parse_source(&c, source, err, sizeof(err));
	if (!rc && opts)
		rc = sfs_config_parse_opts(&c, opts, &pass, err, sizeof(err));
	if (!rc)
		rc = sfs_config_finalize(&c, err, sizeof(err));
	if (rc) {
		problem("configuration", "see `stagefs --help` and mount.conf.example", "%s",
			err[0] ? err : strerror(-rc));
		goto out;
	}
	if (sfs_config_describe(&c, desc, sizeof(desc)) >= 0)
		ok("configuration", "%s", desc);
	char *ixdir = strdup(c.index);
	if (ixdir) {
		check_dir("index", dirname(ixdir), 1u << 30);
		if (access(c.index, F_OK) == 0 && access(c.index, R_OK | W_OK) != 0)
			problem("index", "mount as the index's owner, or -o index= another path",
				"'%s' exists but cannot be written: %s", c.index, strerror(errno));
		free(ixdir);
	}
	if (!strcmp(c.backend, "s3")) {
		check_dir("cache", c.cache_dir, c.cache_size ? c.cache_size : 10ull << 30);
		check_s3(&c);
	} else {
		check_file_store(&c);
	}
out:
	free(pass);
	sfs_config_release(&c);
}

int sfs_cli_doctor(int argc, char **argv)
{
	static const struct option lo[] = {{"help", no_argument, NULL, 'h'}, {0}};
	char *opts = NULL;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "ho:", lo, NULL)) != -1) {
		if (c == 'h') {
			doctor_usage(stdout);
			free(opts);
			return 0;
		}
		if (c != 'o' || sfs_cli_add_opt(&opts, optarg) != 0) {
			doctor_usage(stderr);
			free(opts);
			return 2;
		}
	}
	if (argc - optind > 1) {
		doctor_usage(stderr);
		free(opts);
		return 2;
	}
	problems = 0;
	sfs_log_level = LOG_CRIT; /* what fails is reported here, once, with its fix */
	check_fuse();
	check_fusermount();
	check_fuse_conf();
	if (optind < argc)
		check_source(argv[optind], opts);
	printf("%d problem%s\n", problems, problems == 1 ? "" : "s");
	free(opts);
	return problems ? 1 : 0;
}
