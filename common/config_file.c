/*
 * common/config_file.c - config files (sfs_config_load_file) and the INI
 * machinery config_finalize.c also uses for the AWS credentials file.
 *
 * Files are parsed by inih (ini_parse_stream) through a reader that counts
 * physical lines, so errors name the line even though the installed inih calls
 * its handler without a line number.  inih's line buffer is INI_MAX_LINE (200)
 * bytes; the reader hands a longer line to inih as its first piece followed by
 * continuation pieces (" rest", which inih's multi-line support passes to the
 * handler under the same name), split only between two non-blank characters so
 * that nothing is stripped, and the handler joins them again.  That keeps long
 * values (AWS session tokens are ~1 KiB) working without a parser of our own.
 */
#include "common/config.h"
#include "common/config_priv.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

void sfs_cfg_ini_error(struct ini_ctx *x, int rc, const char *fmt, ...)
{
	va_list ap;

	if (x->err_line)
		return;
	x->err_line = x->lineno;
	x->err_rc = rc;
	va_start(ap, fmt);
	vsnprintf(x->err_msg, sizeof(x->err_msg), fmt, ap);
	va_end(ap);
}

static int ok_split(const char *l, size_t e)
{
	return !sfs_cfg_is_blank(l[e - 1]) && !sfs_cfg_is_blank(l[e]) && l[e] != ';' && l[e] != '#';
}

/* Start a new physical line.  0 at EOF. */
static int reader_next_line(struct ini_ctx *x, size_t room)
{
	ssize_t got = getline(&x->line, &x->cap, x->f);
	size_t i;

	if (got < 0)
		return 0;
	x->lineno++;
	x->len = (size_t)got;
	x->pos = 0;
	x->piece = 0;
	while (x->len && (x->line[x->len - 1] == '\n' || x->line[x->len - 1] == '\r'))
		x->len--;
	x->line[x->len] = '\0';
	if (strlen(x->line) != x->len) {
		if (!x->bad_line) {
			x->bad_line = x->lineno;
			x->bad_why = "contains a NUL byte";
		}
		x->pos = x->len; /* hand inih an empty line */
		return 1;
	}
	i = strspn(x->line, " \t");
	x->indented = i > 0 && x->line[i];
	if (x->len <= room)
		return 1;
	/* too long for inih's buffer: drop what inih would drop anyway */
	if (x->line[i] == ';' || x->line[i] == '#') {
		x->len = room; /* a comment */
		return 1;
	}
	for (i = 1; i < x->len; i++) {
		/* an inline comment: ';' after a blank (inih's rule) */
		if (x->line[i] == ';' && sfs_cfg_is_blank(x->line[i - 1])) {
			x->len = i;
			while (x->len && sfs_cfg_is_blank(x->line[x->len - 1]))
				x->len--;
			break;
		}
	}
	return 1;
}

/* inih's fgets-style reader: see the comment at the top of this file. */
static char *cfg_ini_read(char *str, int num, void *stream)
{
	struct ini_ctx *x = stream;
	size_t room, n, e;
	char *dst = str;
	int fresh = 0;

	if (num < 8)
		return NULL;
	room = (size_t)num - 2; /* keep room for "\n" and NUL */
	if (x->pos >= x->len) {
		if (!reader_next_line(x, room))
			return NULL;
		fresh = 1;
	}
	if (x->ncalls == x->capcalls) {
		size_t ncap = x->capcalls ? 2 * x->capcalls : 64;
		int *nl = realloc(x->call_line, ncap * sizeof(*nl));

		if (!nl) {
			x->nomem = 1;
			return NULL;
		}
		x->call_line = nl;
		x->capcalls = ncap;
	}
	x->call_line[x->ncalls++] = x->lineno;
	if (fresh && x->pos == x->len) {
		/* empty, or refused (NUL byte): inih sees an empty line */
		str[0] = '\n';
		str[1] = '\0';
		return str;
	}
	if (x->pos > 0) {
		*dst++ = ' '; /* continuation piece */
		room--;
		x->piece++;
	}
	n = x->len - x->pos;
	if (n > room) {
		/* the first piece must hold the whole name and its '=' or ':' */
		size_t min = x->pos;

		if (x->pos == 0 && x->line[strcspn(x->line, "=:")])
			min = strcspn(x->line, "=:");
		e = x->pos + room;
		if (e < min)
			e = min; /* the name alone does not fit */
		while (e > min && !ok_split(x->line, e))
			e--;
		if (e == min) {
			if (!x->bad_line) {
				x->bad_line = x->lineno;
				x->bad_why = "line too long";
			}
			x->pos = x->len;
			str[0] = '\n';
			str[1] = '\0';
			return str;
		}
		n = e - x->pos;
	}
	memcpy(dst, x->line + x->pos, n);
	dst[n] = '\n';
	dst[n + 1] = '\0';
	x->pos += n;
	return str;
}

static void ini_pend_clear(struct ini_ctx *x)
{
	free(x->pend_section);
	free(x->pend_name);
	sfs_cfg_free_secret(x->pend_value);
	x->pend_section = x->pend_name = x->pend_value = NULL;
	x->pend = 0;
}

static int cfg_ini_handle(void *user, const char *section, const char *name, const char *value)
{
	struct ini_ctx *x = user;

	if (x->piece > 0) {
		/* continuation piece of a long line: join it to its key */
		char *v;

		if (!x->pend)
			return 1; /* the line's first piece was not a key: inih reported it */
		v = sfs_cfg_join(x->pend_value, value, NULL, NULL);
		if (!v) {
			x->nomem = 1;
			return 1;
		}
		sfs_cfg_free_secret(x->pend_value);
		x->pend_value = v;
	} else {
		ini_pend_clear(x);
		if (x->indented) {
			/* inih's multi-line value, or a key indented after another key */
			sfs_cfg_ini_error(x, -EINVAL,
					  "%s:%d: indented line (continuation lines are not "
					  "supported; start keys in column 1)",
					  x->path, x->lineno);
			return 1;
		}
		x->pend_section = strdup(section);
		x->pend_name = strdup(name);
		x->pend_value = strdup(value);
		x->pend = 1;
		if (!x->pend_section || !x->pend_name || !x->pend_value) {
			x->nomem = 1;
			ini_pend_clear(x);
			return 1;
		}
	}
	if (x->pos < x->len)
		return 1; /* more pieces of this line follow */
	x->apply(x, x->pend_section, x->pend_name, x->pend_value);
	ini_pend_clear(x);
	return 1; /* errors are recorded in x, with their line; inih keeps going */
}

/*
 * Parse an open file with x->apply.  Returns 0, or the first error of any kind
 * (-EINVAL with a "<file>:<line>: ..." message in err).
 */
int sfs_cfg_ini_run(struct ini_ctx *x, char *err, size_t errlen)
{
	int rc, line = 0;
	const char *msg = NULL;

	rc = ini_parse_stream(cfg_ini_read, x, cfg_ini_handle, x);
	if (x->nomem || rc == -2)
		return sfs_cfg_fail(err, errlen, -ENOMEM, "%s: out of memory", x->path);
	if (ferror(x->f))
		return sfs_cfg_fail(err, errlen, -EIO, "%s: read error", x->path);
	if (rc > 0 && (size_t)rc <= x->ncalls) {
		line = x->call_line[rc - 1];
		msg = "syntax error";
	}
	if (x->bad_line && (!line || x->bad_line < line)) {
		line = x->bad_line;
		msg = x->bad_why;
	}
	if (x->err_line && (!line || x->err_line <= line))
		return sfs_cfg_fail(err, errlen, x->err_rc, "%s", x->err_msg);
	if (line)
		return sfs_cfg_fail(err, errlen, -EINVAL, "%s:%d: %s", x->path, line, msg);
	if (rc)
		return sfs_cfg_fail(err, errlen, -EINVAL, "%s: syntax error", x->path);
	return 0;
}

void sfs_cfg_ini_release(struct ini_ctx *x)
{
	if (x->line) {
		explicit_bzero(x->line, x->cap);
		free(x->line);
	}
	free(x->call_line);
	ini_pend_clear(x);
	for (int i = 0; i < 3; i++)
		sfs_cfg_free_secret(x->cred[i]);
	if (x->f)
		fclose(x->f);
}

/* Open path for parsing; a regular file only. */
int sfs_cfg_ini_open(struct ini_ctx *x, const char *path, struct stat *st, char *err, size_t errlen)
{
	x->path = path;
	x->f = fopen(path, "re");
	if (!x->f) {
		int e = errno;

		if (e == ENOENT)
			return sfs_cfg_fail(err, errlen, -ENOENT, "%s: no such file", path);
		return sfs_cfg_fail(err, errlen, -e, "%s: %s", path, strerror(e));
	}
	if (fstat(fileno(x->f), st) < 0)
		return sfs_cfg_fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st->st_mode))
		return sfs_cfg_fail(err, errlen, -EINVAL, "%s: not a regular file", path);
	return 0;
}

static int apply_config(struct ini_ctx *x, const char *section, const char *name, const char *value)
{
	const struct sfs_config_key *k;
	char why[256];
	int rc;

	if (section[0] && strcmp(section, "store") && strcmp(section, "stagefs")) {
		sfs_cfg_ini_error(x, -EINVAL, "%s:%d: unknown section '%.64s' (use [store])",
				  x->path, x->lineno, section);
		return 0;
	}
	k = sfs_cfg_find_key(name);
	if (!k) {
		sfs_cfg_ini_error(x, -EINVAL, "%s:%d: unknown key '%.64s'", x->path, x->lineno,
				  name);
		return 0;
	}
	rc = sfs_cfg_set_key(x->c, k, value, why, sizeof(why));
	if (rc) {
		sfs_cfg_ini_error(x, rc, "%s:%d: %s: %s", x->path, x->lineno, k->name,
				  rc == -EINVAL ? why : strerror(-rc));
		return 0;
	}
	if ((k->flags & KF_SECRET) && value[0])
		x->has_secret = 1;
	if (!strcmp(k->name, "secret_key"))
		x->c->secret_from_file = value[0] != '\0';
	return 0;
}

int sfs_config_load_file(struct sfs_config *c, const char *path, char *err, size_t errlen)
{
	struct ini_ctx x = {0};
	struct sfs_config tmp;
	struct stat st;
	int rc;

	rc = sfs_cfg_copy(&tmp, c);
	if (rc)
		return sfs_cfg_fail(err, errlen, rc, "out of memory");
	rc = sfs_cfg_ini_open(&x, path, &st, err, errlen);
	if (rc)
		goto out;
	x.c = &tmp;
	x.apply = apply_config;
	rc = sfs_cfg_ini_run(&x, err, errlen);
	/* the permission refusal comes first: it is the one that matters most */
	if (x.has_secret && (st.st_mode & (S_IRGRP | S_IROTH))) {
		rc = sfs_cfg_fail(
			err, errlen, -EACCES,
			"%s: holds secret_key but is readable by group/others; chmod 600 %s", path,
			path);
		goto out;
	}
	if (rc)
		goto out;
	sfs_cfg_commit(c, &tmp);
out:
	sfs_cfg_ini_release(&x);
	sfs_config_release(&tmp);
	return rc;
}
