/*
 * backend/s3_claim.c - promotion claims: no-replace for copies on servers that
 * honour If-None-Match only on PUT.
 *
 * A promotion is a server-side copy.  Where CompleteMultipartUpload honours
 * If-None-Match: * the copy itself refuses to replace; Ceph RGW 16.2 ignores it
 * there (it honours it on PUT), and a tree is many copies in any case.  HEAD
 * then copy lets two hosts that promote onto one key at the same instant both
 * pass the HEAD: the second copy replaces the first (t0470 showed it on RGW).
 * So the promoter first creates a small claim object with a conditional PUT,
 * which exactly one of them wins; the others wait until the key exists
 * (-EEXIST: the usual no-replace answer, a dedup for a content address) or
 * the claim is released (the winner failed: try again).  A claim whose holder
 * died (same host, pid gone) or that is older than CLAIM_STALE_S is taken
 * over; that takeover is the one window where two may think they hold it.
 *
 * Claims live at .stagefs/claims/<sha256 of the full key> and hold a few
 * "name=value" lines (what, key, host, pid) for whoever finds one.
 */
#include "backend/s3_priv.h"
#include "backend/sigv4.h"
#include "common/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CLAIM_DIR      ".stagefs/claims/"
#define CLAIM_STALE_S  3600   /* a claim this old is a dead promoter's */
#define CLAIM_WAIT_MS  120000 /* how long to wait for a live holder, then -EBUSY */
#define CLAIM_BODY_MAX 4096

static int64_t now_ms(int clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* The value of line "name=..." in claim body b (NUL-terminated) into out; 0 or -ENOENT. */
static int body_value(const char *b, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);

	for (const char *p = b; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
			size_t n = strcspn(p + nl + 1, "\n");
			if (n >= len)
				return -ENOENT;
			memcpy(out, p + nl + 1, n);
			out[n] = '\0';
			return 0;
		}
	}
	return -ENOENT;
}

/*
 * Is the claim at rel (full key ck) a dead promoter's?  1 stale, 0 held, -ENOENT when it is
 * gone meanwhile, -errno.
 */
static int claim_stale(struct s3_backend *s, const char *rel, const char *ck, const char *host)
{
	struct sfs_s3_objinfo info;
	char h[256], pid[32], *b = NULL;
	int rc = sfs_s3_head(s->c, ck, &info);

	if (rc)
		return rc;
	if (info.mtime_ns > 0 &&
	    now_ms(CLOCK_REALTIME) - info.mtime_ns / 1000000 > CLAIM_STALE_S * 1000LL)
		return 1;
	rc = sfs_backend_get_text(&s->base, rel, CLAIM_BODY_MAX, &b);
	if (rc)
		return rc;
	rc = 0;
	if (body_value(b, "host", h, sizeof(h)) == 0 && strcmp(h, host) == 0 &&
	    body_value(b, "pid", pid, sizeof(pid)) == 0) {
		char *end;
		long p = strtol(pid, &end, 10);
		rc = *end == '\0' && p > 0 && kill((pid_t)p, 0) == -1 && errno == ESRCH;
	}
	free(b);
	return rc;
}

int sfs_s3b_claim(struct s3_backend *s, const char *fk, char **out)
{
	char hex[65], rel[sizeof(CLAIM_DIR) + 64], host[256] = "", *ck = NULL, *body = NULL;
	int64_t deadline = now_ms(CLOCK_MONOTONIC) + CLAIM_WAIT_MS;
	long delay = 20;
	int rc;

	*out = NULL;
	sfs_sigv4_sha256_hex(fk, strlen(fk), hex);
	(void)gethostname(host, sizeof(host) - 1);
	host[strcspn(host, "\n")] = '\0';
	snprintf(rel, sizeof(rel), "%s%s", CLAIM_DIR, hex);
	ck = sfs_s3b_full_key(s, rel);
	if (!ck || asprintf(&body, "what=stagefs promotion claim\nkey=%s\nhost=%s\npid=%ld\n", fk,
			    host, (long)getpid()) < 0) {
		body = NULL;
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		rc = sfs_s3_put(s->c, ck, body, strlen(body), SFS_S3_IF_NONE_MATCH);
		if (rc != -EEXIST)
			break; /* 0: ours; -ENOSYS: the caller goes on without */
		/* held by another promoter: done when the key exists */
		rc = sfs_s3_head(s->c, fk, NULL);
		if (rc == 0)
			rc = -EEXIST;
		if (rc != -ENOENT)
			break;
		rc = claim_stale(s, rel, ck, host);
		if (rc == 1) {
			sfs_log(LOG_WARNING, "s3: taking over a stale promotion claim on '%s'", fk);
			rc = sfs_s3_delete(s->c, ck);
			if (rc)
				break;
			continue;
		}
		if (rc == -ENOENT)
			continue; /* released meanwhile */
		if (rc)
			break;
		if (now_ms(CLOCK_MONOTONIC) >= deadline) {
			sfs_log(LOG_ERR, "s3: another promoter has held '%s' for %d s", fk,
				CLAIM_WAIT_MS / 1000);
			rc = -EBUSY;
			break;
		}
		sleep_ms(delay);
		delay = delay * 2 > 500 ? 500 : delay * 2;
	}
out:
	free(body);
	if (rc == 0)
		*out = ck;
	else
		free(ck);
	return rc;
}

void sfs_s3b_unclaim(struct s3_backend *s, char *ck)
{
	if (!ck)
		return;
	if (sfs_s3_delete(s->c, ck))
		sfs_log(LOG_WARNING, "s3: could not remove promotion claim '%s' (taken over later)",
			ck);
	free(ck);
}
