/* common/log.c - see log.h */
#include "common/log.h"

#include <fuse_log.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

int sfs_log_level = LOG_INFO;
static int use_syslog;
static atomic_int reopen_wanted;

void sfs_log_reopen(void)
{
	atomic_store(&reopen_wanted, 1);
}

void sfs_log_use_syslog(int on)
{
	use_syslog = on;
	if (on)
		openlog("stagefs", LOG_PID, LOG_DAEMON);
}

static void emit(int level, const char *fmt, va_list ap)
{
	char buf[2048];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (use_syslog) {
		if (atomic_exchange(&reopen_wanted, 0)) {
			closelog();
			openlog("stagefs", LOG_PID, LOG_DAEMON);
		}
		syslog(level, "%s", buf);
		return;
	}
	/* one fputs per line keeps lines from different threads whole */
	char line[2100];
	snprintf(line, sizeof(line), "stagefs: %s\n", buf);
	fputs(line, stderr);
}

void sfs_log_emit(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(level, fmt, ap);
	va_end(ap);
}

int sfs_log_ret(int rc, int level, const char *fmt, ...)
{
	va_list ap;

	if (level > sfs_log_level)
		return rc;
	va_start(ap, fmt);
	emit(level, fmt, ap);
	va_end(ap);
	return rc;
}

/* fuse_log's levels are syslog's (FUSE_LOG_EMERG = LOG_EMERG ... FUSE_LOG_DEBUG = LOG_DEBUG) */
static void fuse_msg(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char buf[2048];
	size_t n;

	if ((int)level > sfs_log_level)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '\n') /* libfuse ends its lines itself */
		buf[--n] = '\0';
	sfs_log_emit((int)level, "fuse: %s", buf);
}

void sfs_log_take_fuse(void)
{
	fuse_set_log_func(fuse_msg);
}
