/*
 * common/fault.h - named fault points, for tests only.
 *
 * The environment variable STAGEFS_FAULTS (read once, at the first call) is
 * a comma-separated list of "point[@N][=kill|=stallS]": the Nth time
 * (default the first) the named point is passed, sfs_fault() returns 1 and
 * the caller fails there as if the operation it guards had failed; with
 * "=kill" the process SIGKILLs itself there instead (crash tests), with
 * "=stallS" the thread sleeps S seconds and goes on (sfs_fault returns 0).  Unset, every call
 * returns 0 after one load.  Not documented for users.  Thread-safe.
 */
#ifndef SFS_COMMON_FAULT_H
#define SFS_COMMON_FAULT_H

/* 1 when the fault at `point` fires now (see above), else 0. */
int sfs_fault(const char *point);

#endif
