/*
 * common/log.h - one logging function for the whole daemon.
 *
 * Levels are syslog's.  The level check happens in the macro, before any
 * argument is evaluated, so a disabled debug line costs one comparison.
 * Messages are lowercase and name what failed first, subject quoted:
 *     sfs_log(LOG_ERR, "cannot open '%s': %s", key, strerror(-rc));
 * Never log secrets.
 *
 * Thread safety: all functions may be called from any thread.
 */
#ifndef SFS_COMMON_LOG_H
#define SFS_COMMON_LOG_H

#include <syslog.h>

/* Current threshold; messages with level > sfs_log_level are dropped.  Default LOG_INFO. */
extern int sfs_log_level;

/* Where messages go: stderr (default) or syslog (after daemonizing). */
void sfs_log_use_syslog(int on);

/*
 * Ask for the log to be reopened before the next message (the SIGHUP of log
 * rotation; async-signal-safe: it only sets a flag).  syslog's connection is
 * closed and opened again; stderr needs nothing.
 */
void sfs_log_reopen(void);

/* Route libfuse's own messages (fuse_log) through this log, at their levels. */
void sfs_log_take_fuse(void);

/* Emit one message; prefer the sfs_log() macro which checks the level first. */
void sfs_log_emit(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sfs_log(level, ...)                                 \
	do {                                                \
		if ((level) <= sfs_log_level)               \
			sfs_log_emit((level), __VA_ARGS__); \
	} while (0)

/*
 * Log at LOG_ERR and return rc, so that a failure is logged and returned in one
 * statement:  return sfs_err(-EIO, "cannot read '%s'", key);
 * rc and every argument are evaluated before anything is logged, so -errno is safe.
 */
int sfs_log_ret(int rc, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define sfs_err(rc, ...) sfs_log_ret((rc), LOG_ERR, __VA_ARGS__)

/* Like sfs_err but at LOG_WARNING (expected failures a user caused). */
#define sfs_warn(rc, ...) sfs_log_ret((rc), LOG_WARNING, __VA_ARGS__)

#endif
