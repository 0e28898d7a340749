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

void sfs_log_emit(int level, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (use_syslog) {
		syslog(level, "%s", buf);
		return;
	}
	/* one fputs per line keeps lines from different threads whole */
	char line[2100];
	snprintf(line, sizeof(line), "stagefs: %s\n", buf);
	fputs(line, stderr);
}
