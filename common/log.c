/* common/log.c - see log.h */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sfs_log_level = LOG_INFO;
static int use_syslog;

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
