/*
 * fs/cli.c - subcommands that act on a mounted store through its xattrs.
 *
 *   stagefs commit PATH [--hash | --field F --key k=v... [--ext E]] [--async] [--json]
 *   stagefs status PATH
 */
#include "fs/fs.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "common/log.h"
#include "index/snapdb.h"

int sfs_cli_is_subcommand(const char *s)
{
	if (strcmp(s, "commit") == 0 || strcmp(s, "status") == 0 || strcmp(s, "publish") == 0 ||
	    strcmp(s, "snapshots") == 0 || strcmp(s, "fsck") == 0 || strcmp(s, "reindex") == 0 ||
	    strcmp(s, "jobs") == 0 || strcmp(s, "gc") == 0 || strcmp(s, "doctor") == 0)
		return 1;
	return 0;
}

static void commit_usage(FILE *f)
{
	fprintf(f,
		"usage: stagefs commit PATH --hash [--async] [--json]\n"
		"       stagefs commit PATH --field F --key k=v [--key k=v...] [--ext E] "
		"[--async]\n"
		"                      [--json]\n"
		"  PATH is a file or directory under MOUNT/staging/<schema>/<table>/.\n"
		"  --key values are typed: 12 -> integer, 1.5 -> float, true/false -> bool,\n"
		"  anything else a string; k:=JSON passes a JSON value (k:='\"007\"').\n"
		"  --ext '' stores no suffix; without --ext the entry's own suffix is used.\n"
		"  Prints the receipt (--json: exactly the receipt JSON).  --async returns once\n"
		"  the commit is queued (durably): `stagefs status PATH` and `stagefs jobs`\n"
		"  follow it.\n");
}

/* Read a whole xattr into a new NUL-terminated string. */
static int get_xattr(const char *path, const char *name, char **out)
{
	ssize_t n = getxattr(path, name, NULL, 0);

	if (n < 0)
		return -errno;
	char *buf = malloc((size_t)n + 1);
	if (!buf)
		return -ENOMEM;
	n = getxattr(path, name, buf, (size_t)n);
	if (n < 0) {
		int e = -errno;
		free(buf);
		return e;
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

static int read_file(const char *path, char **out)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	if (!f)
		return -errno;
	FILE *m = open_memstream(&buf, &len);
	if (!m) {
		fclose(f);
		return -ENOMEM;
	}
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, m);
	int rc = ferror(f) ? -EIO : 0;
	fclose(f);
	fclose(m);
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

static int cmd_commit(int argc, char **argv)
{
	const char *path = NULL, *field = NULL, *ext = NULL;
	char **keys = calloc((size_t)argc, sizeof(*keys));
	int nkeys = 0, hash = 0, json = 0, async = 0, exitc = 1;
	char *value = NULL, *receipt = NULL, *rpath = NULL;

	if (!keys)
		return 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--hash") == 0) {
			hash = 1;
		} else if (strcmp(a, "--json") == 0) {
			json = 1;
		} else if (strcmp(a, "--async") == 0) {
			async = 1;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			commit_usage(stdout);
			exitc = 0;
			goto out;
		} else if ((strcmp(a, "--field") == 0 || strcmp(a, "--key") == 0 ||
			    strcmp(a, "--ext") == 0) &&
			   i + 1 < argc) {
			const char *v = argv[++i];
			if (a[2] == 'f')
				field = v;
			else if (a[2] == 'k')
				keys[nkeys++] = (char *)v;
			else
				ext = v;
		} else if (a[0] != '-' && !path) {
			path = a;
		} else {
			fprintf(stderr, "stagefs: commit: unexpected argument '%s'\n", a);
			commit_usage(stderr);
			exitc = 2;
			goto out;
		}
	}
	if (!path || (hash && (field || nkeys || ext)) || (!hash && (!field || !nkeys))) {
		commit_usage(stderr);
		exitc = 2;
		goto out;
	}
	if (hash) {
		value = strdup("hash");
	} else {
		int rc = sfs_commit_value_build(field, keys, nkeys, ext, &value);
		if (rc) {
			fprintf(stderr, "stagefs: commit: bad --key (expected name=value)\n");
			exitc = 2;
			goto out;
		}
	}
	if (value && async) {
		char *v = NULL;
		if (sfs_json_eval("json_set(CASE WHEN ?1='hash' THEN '{\"addressing\":\"hash\"}'"
				  " ELSE ?1 END,'$.async',json('true'))",
				  1, (const char *const[]){value}, &v) != 0)
			v = NULL;
		free(value);
		value = v;
	}
	if (!value)
		goto out;
	char *probe = NULL;
	if (get_xattr(path, "user.stagefs.status", &probe) != 0) {
		fprintf(stderr, "stagefs: commit '%s': not an entry of a stagefs staging tree\n",
			path);
		goto out;
	}
	free(probe);
	if (setxattr(path, "user.stagefs.commit", value, strlen(value), 0) < 0) {
		int e = errno;
		char *status = NULL;
		/* the daemon keeps the reason on the entry */
		if (get_xattr(path, "user.stagefs.status", &status) == 0 &&
		    strncmp(status, "error: ", 7) == 0)
			fprintf(stderr, "stagefs: commit '%s': %s: %s\n", path, strerror(e),
				status + 7);
		else
			fprintf(stderr, "stagefs: commit '%s': %s\n", path, strerror(e));
		free(status);
		goto out;
	}
	if (async) {
		if (json)
			printf("{\"queued\":true}\n");
		else
			printf("queued the commit of %s (`stagefs status %s` follows it)\n", path,
			       path);
		exitc = 0;
		goto out;
	}
	/* the receipt: <dir>/.receipts/<name>.json */
	char *d1 = strdup(path), *d2 = strdup(path);
	if (d1 && d2 && asprintf(&rpath, "%s/.receipts/%s.json", dirname(d1), basename(d2)) < 0)
		rpath = NULL;
	free(d1);
	free(d2);
	if (!rpath || read_file(rpath, &receipt) != 0) {
		fprintf(stderr, "stagefs: commit '%s': committed, but cannot read the receipt\n",
			path);
		exitc = 0;
		goto out;
	}
	if (json)
		printf("%s\n", receipt);
	else
		printf("committed %s\nreceipt %s\n%s\n", path, rpath, receipt);
	exitc = 0;
out:
	free(keys);
	free(value);
	free(receipt);
	free(rpath);
	return exitc;
}

static int cmd_status(int argc, char **argv)
{
	char *s = NULL;
	int rc;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(argc == 2 ? stdout : stderr, "usage: stagefs status PATH\n");
		return argc == 2 ? 0 : 2;
	}
	rc = get_xattr(argv[1], "user.stagefs.status", &s);
	if (rc) {
		fprintf(stderr, "stagefs: status '%s': %s\n", argv[1], strerror(-rc));
		return 1;
	}
	printf("%s\n", s);
	free(s);
	return 0;
}

int sfs_cli_main(int argc, char **argv)
{
	if (strcmp(argv[0], "commit") == 0)
		return cmd_commit(argc, argv);
	if (strcmp(argv[0], "status") == 0)
		return cmd_status(argc, argv);
	if (strcmp(argv[0], "publish") == 0)
		return sfs_cli_publish(argc, argv);
	if (strcmp(argv[0], "snapshots") == 0)
		return sfs_cli_snapshots(argc, argv);
	if (strcmp(argv[0], "fsck") == 0)
		return sfs_cli_fsck(argc, argv);
	if (strcmp(argv[0], "reindex") == 0)
		return sfs_cli_reindex(argc, argv);
	if (strcmp(argv[0], "jobs") == 0)
		return sfs_cli_jobs(argc, argv);
	if (strcmp(argv[0], "gc") == 0)
		return sfs_cli_gc(argc, argv);
	if (strcmp(argv[0], "doctor") == 0)
		return sfs_cli_doctor(argc, argv);
	fprintf(stderr, "stagefs: %s: not implemented in this version\n", argv[0]);
	return 1;
}
