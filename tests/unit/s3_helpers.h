/*
 * tests/unit/s3_helpers.h - what the s3 unit tests (test_s3.c, test_s3_staged.c,
 * test_s3_faults.c) share: a local s3rver started by the group setup
 * (scripts/s3-server, loopback; if it cannot be started every test that needs
 * it FAILS), stores and clients on it, listing counters.  Include after cmocka.h.
 */
#ifndef SFS_TEST_S3_HELPERS_H
#define SFS_TEST_S3_HELPERS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/s3_client.h"
#include "common/config.h"
#include "common/log.h"

#define BUCKET "testb"

static char g_tmp[256];
static int g_port;
static char g_endpoint[64];
static int g_server_up;

/* ---- helpers ---- */

/* backend.c (sfs_backend_free) is not ours: destroy directly */
static inline void free_store(struct sfs_backend *b)
{
	if (b)
		b->ops->destroy(b);
}

static inline int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &l) != 0)
		return -1;
	close(fd);
	return ntohs(a.sin_port);
}

static inline double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void cfg_fill(struct sfs_config *c, const char *endpoint, const char *location)
{
	static char cache[300];
	memset(c, 0, sizeof(*c));
	snprintf(cache, sizeof(cache), "%s/cache", g_tmp);
	c->backend = "s3";
	c->location = (char *)location;
	c->endpoint = (char *)endpoint;
	c->bucket = BUCKET;
	c->region = "us-east-1";
	c->path_style = 1;
	c->access_key = "S3RVER";
	c->secret_key = "S3RVER";
	c->cache_dir = cache;
}

static inline struct sfs_backend *open_store(const char *location)
{
	struct sfs_config c;
	struct sfs_backend *b = NULL;
	cfg_fill(&c, g_endpoint, location);
	assert_int_equal(sfs_backend_s3_open(&c, &b), 0);
	assert_non_null(b);
	return b;
}

static inline struct sfs_s3_client *client_for(const char *endpoint, int attempts)
{
	struct sfs_s3_opts o = {0};
	struct sfs_s3_client *c = NULL;
	o.endpoint = endpoint;
	o.bucket = BUCKET;
	o.path_style = 1;
	o.access_key = "S3RVER";
	o.secret_key = "S3RVER";
	o.max_attempts = attempts;
	o.backoff_ms = 5;
	o.stall_timeout_s = 1;
	o.connect_timeout_ms = 2000;
	assert_int_equal(sfs_s3_client_new(&o, &c), 0);
	return c;
}

/* Fail (never skip) a test that needs s3rver when it could not be started. */
#define require_server()                                                                    \
	do {                                                                                \
		if (!g_server_up)                                                           \
			fail_msg("s3rver is not running (scripts/s3-server start failed)"); \
	} while (0)

/* ---- group setup: s3rver ---- */

static inline int group_setup(void **state)
{
	char cmd[600];
	(void)state;
	snprintf(g_tmp, sizeof(g_tmp), "/tmp/sfs-test-s3-XXXXXX");
	if (!mkdtemp(g_tmp))
		return -1;
	g_port = free_port();
	snprintf(g_endpoint, sizeof(g_endpoint), "http://127.0.0.1:%d", g_port);
	snprintf(cmd, sizeof(cmd), "scripts/s3-server start %s/srv %d " BUCKET, g_tmp, g_port);
	sfs_log_level = getenv("SFS_TEST_DEBUG") ? LOG_DEBUG : LOG_CRIT;
	if (system(cmd) != 0) {
		/* not a skip: every test that needs the server fails (require_server) */
		fprintf(stderr, "test_s3: cannot start s3rver (%s)\n", cmd);
		return 0;
	}
	g_server_up = 1;
	return 0;
}

static inline int group_teardown(void **state)
{
	char cmd[600];
	(void)state;
	if (g_server_up) {
		snprintf(cmd, sizeof(cmd), "scripts/s3-server stop %s/srv", g_tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "test_s3: stopping s3rver failed\n");
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
	if (g_tmp[0] && system(cmd) != 0)
		fprintf(stderr, "test_s3: cannot remove %s\n", g_tmp);
	return 0;
}

struct names {
	int n_files, n_dirs;
	char seen[1200];
};

static inline int count_cb(void *arg, const char *name, const struct sfs_bstat *st)
{
	struct names *nm = arg;
	if (S_ISDIR(st->mode)) {
		nm->n_dirs++;
		return 0;
	}
	nm->n_files++;
	int i = -1;
	if (sscanf(name, "k%d", &i) == 1 && i >= 0 && i < 1200) {
		nm->seen[i]++;
		assert_int_equal(st->size, strlen(name));
	}
	return 0;
}

#endif
