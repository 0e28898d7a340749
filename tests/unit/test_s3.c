/*
 * tests/unit/test_s3.c - the S3 client and backend against a local s3rver
 * (scripts/s3-server, loopback) and against a fault-injecting proxy of our
 * own.  If s3rver cannot be started the s3rver tests FAIL (group setup fails).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "backend/s3_client.h"
#include "common/config.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUCKET "testb"

static char g_tmp[256];
static int g_port;
static char g_endpoint[64];
static int g_server_up;

/* ---- helpers ---- */

/* backend.c (sfs_backend_free) is not ours: destroy directly */
static void free_store(struct sfs_backend *b)
{
	if (b)
		b->ops->destroy(b);
}

static int free_port(void)
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

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void cfg_fill(struct sfs_config *c, const char *endpoint, const char *location)
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

static struct sfs_backend *open_store(const char *location)
{
	struct sfs_config c;
	struct sfs_backend *b = NULL;
	cfg_fill(&c, g_endpoint, location);
	assert_int_equal(sfs_backend_s3_open(&c, &b), 0);
	assert_non_null(b);
	return b;
}

static struct sfs_s3_client *client_for(const char *endpoint, int attempts)
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

static int group_setup(void **state)
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

static int group_teardown(void **state)
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

/* ---- fault-injecting proxy (loopback, one thread per connection) ---- */

enum { F_RESPOND, F_CLOSE, F_HANG };

struct proxy {
	int lfd;
	int port;
	int upstream_port; /* 0 = no upstream: faults only */
	int stop_pipe[2];
	pthread_t acceptor;
	pthread_t conn[256];
	atomic_int n_conn;
	atomic_int faults_left; /* < 0 = forever */
	int fault_mode;
	int fault_status;
	const char *fault_code;
	atomic_int
		requests; /* requests seen (first request of each connection + relayed ones unknown) */
	atomic_int faults;
};

struct conn_arg {
	struct proxy *p;
	int fd;
};

static int read_request(int fd, char *buf, size_t cap, size_t *len)
{
	size_t n = 0;
	char *end = NULL;
	while (!end) {
		if (n == cap)
			return -1;
		ssize_t r = read(fd, buf + n, cap - n);
		if (r <= 0)
			return -1;
		n += (size_t)r;
		buf[n < cap ? n : cap - 1] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	size_t head = (size_t)(end + 4 - buf);
	size_t clen = 0;
	for (char *p = buf; p < end; p++) {
		if ((p == buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0)
			clen = strtoul(p + 15, NULL, 10);
	}
	/* drain the body (not kept beyond cap) */
	size_t have = n - head;
	while (have < clen) {
		char tmp[65536];
		ssize_t r = read(fd, n < cap ? buf + n : tmp,
				 n < cap ? (cap - n < clen - have ? cap - n : clen - have)
					 : (sizeof(tmp) < clen - have ? sizeof(tmp) : clen - have));
		if (r <= 0)
			return -1;
		if (n < cap)
			n += (size_t)r;
		have += (size_t)r;
	}
	*len = n;
	return 0;
}

static void relay(struct proxy *p, int a, int b)
{
	struct pollfd pf[3] = {{a, POLLIN, 0}, {b, POLLIN, 0}, {p->stop_pipe[0], POLLIN, 0}};
	char buf[65536];
	for (;;) {
		if (poll(pf, 3, 10000) <= 0)
			return;
		if (pf[2].revents)
			return;
		for (int i = 0; i < 2; i++) {
			if (!pf[i].revents)
				continue;
			ssize_t r = read(pf[i].fd, buf, sizeof(buf));
			if (r <= 0)
				return;
			for (ssize_t off = 0; off < r;) {
				ssize_t w = write(pf[1 - i].fd, buf + off, (size_t)(r - off));
				if (w <= 0)
					return;
				off += w;
			}
		}
	}
}

static void *conn_main(void *arg)
{
	struct conn_arg *ca = arg;
	struct proxy *p = ca->p;
	int fd = ca->fd;
	static __thread char req[1 << 20];
	size_t len = 0;

	free(ca);
	if (read_request(fd, req, sizeof(req), &len) != 0)
		goto out;
	atomic_fetch_add(&p->requests, 1);
	int left = atomic_load(&p->faults_left);
	if (left != 0) {
		if (left > 0)
			atomic_fetch_sub(&p->faults_left, 1);
		atomic_fetch_add(&p->faults, 1);
		if (p->fault_mode == F_CLOSE)
			goto out;
		if (p->fault_mode == F_HANG) {
			struct pollfd pf = {p->stop_pipe[0], POLLIN, 0};
			(void)poll(&pf, 1, 5000);
			goto out;
		}
		char body[512], resp[1024];
		int head = strncmp(req, "HEAD ", 5) == 0;
		snprintf(body, sizeof(body),
			 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
			 "<Message>injected</Message></Error>",
			 p->fault_code);
		int n = snprintf(resp, sizeof(resp),
				 "HTTP/1.1 %d Injected\r\nContent-Type: application/xml\r\n"
				 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
				 p->fault_status, head ? (size_t)0 : strlen(body),
				 head ? "" : body);
		if (write(fd, resp, (size_t)n) < 0)
			goto out;
		goto out;
	}
	if (!p->upstream_port)
		goto out;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				.sin_port = htons((uint16_t)p->upstream_port)};
	int up = socket(AF_INET, SOCK_STREAM, 0);
	if (up < 0 || connect(up, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (up >= 0)
			close(up);
		goto out;
	}
	if (write(up, req, len) == (ssize_t)len)
		relay(p, fd, up);
	close(up);
out:
	close(fd);
	return NULL;
}

static void *acceptor_main(void *arg)
{
	struct proxy *p = arg;
	for (;;) {
		struct pollfd pf[2] = {{p->lfd, POLLIN, 0}, {p->stop_pipe[0], POLLIN, 0}};
		if (poll(pf, 2, -1) < 0)
			continue;
		if (pf[1].revents)
			return NULL;
		int fd = accept(p->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		int i = atomic_load(&p->n_conn);
		struct conn_arg *ca = malloc(sizeof(*ca));
		if (i >= 256 || !ca) {
			free(ca);
			close(fd);
			continue;
		}
		ca->p = p;
		ca->fd = fd;
		if (pthread_create(&p->conn[i], NULL, conn_main, ca) != 0) {
			free(ca);
			close(fd);
			continue;
		}
		atomic_store(&p->n_conn, i + 1);
	}
}

static void proxy_start(struct proxy *p, int upstream_port, int faults, int mode, int status,
			const char *code)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	memset(p, 0, sizeof(*p));
	p->upstream_port = upstream_port;
	atomic_store(&p->faults_left, faults);
	p->fault_mode = mode;
	p->fault_status = status;
	p->fault_code = code;
	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(p->lfd >= 0);
	assert_int_equal(bind(p->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(p->lfd, 64), 0);
	assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&a, &l), 0);
	p->port = ntohs(a.sin_port);
	assert_int_equal(pipe(p->stop_pipe), 0);
	assert_int_equal(pthread_create(&p->acceptor, NULL, acceptor_main, p), 0);
}

static void proxy_stop(struct proxy *p)
{
	assert_int_equal(write(p->stop_pipe[1], "x", 1), 1);
	pthread_join(p->acceptor, NULL);
	for (int i = 0; i < atomic_load(&p->n_conn); i++)
		pthread_join(p->conn[i], NULL);
	close(p->lfd);
	close(p->stop_pipe[0]);
	close(p->stop_pipe[1]);
}

static void proxy_endpoint(struct proxy *p, char *out, size_t len)
{
	snprintf(out, len, "http://127.0.0.1:%d", p->port);
}

/* ---- tests against s3rver ---- */

static void t_open_marker(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store1");
	void *buf = NULL;
	size_t n = 0;
	assert_int_equal(sfs_backend_get_bytes(b, ".stagefs/format", &buf, &n, 4096), 0);
	assert_int_equal(n, 10);
	assert_memory_equal(buf, "stagefs 1\n", 10);
	free(buf);
	free_store(b);
	/* an existing store opens again */
	b = open_store("store1");
	/* a foreign marker is refused */
	struct sfs_backend *root = open_store("");
	assert_int_equal(sfs_backend_put_bytes(root, "bad/.stagefs/format", "other 2\n", 8, 0), 0);
	struct sfs_config c;
	struct sfs_backend *bad = NULL;
	cfg_fill(&c, g_endpoint, "bad");
	assert_int_equal(sfs_backend_s3_open(&c, &bad), -EINVAL);
	assert_null(bad);
	free_store(root);
	free_store(b);
}

/* A removed canonical object's cached size and blocks go with it. */
static void t_remove_forgets_cached(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store-rm");
	struct sfs_bfile *f = NULL;
	struct sfs_bstat st;
	char buf[32];

	assert_int_equal(sfs_backend_put_bytes(b, "_schema/x/obj", "hello", 5, 0), 0);
	assert_int_equal(sfs_backend_stat(b, "_schema/x/obj", &st), 0);
	assert_int_equal(st.size, 5);
	assert_int_equal(sfs_backend_open_obj(b, "_schema/x/obj", &f), 0);
	assert_int_equal(sfs_backend_pread(b, f, buf, sizeof(buf), 0), 5);
	sfs_backend_close_obj(b, f);
	assert_int_equal(sfs_backend_remove(b, "_schema/x/obj"), 0);
	assert_int_equal(sfs_backend_stat(b, "_schema/x/obj", &st), -ENOENT);
	/* the same key again, other bytes (recovery and gc remove, commits reuse keys) */
	assert_int_equal(sfs_backend_put_bytes(b, "_schema/x/obj", "other bytes!", 12, 0), 0);
	assert_int_equal(sfs_backend_stat(b, "_schema/x/obj", &st), 0);
	assert_int_equal(st.size, 12);
	assert_int_equal(sfs_backend_open_obj(b, "_schema/x/obj", &f), 0);
	assert_int_equal(sfs_backend_pread(b, f, buf, sizeof(buf), 0), 12);
	assert_memory_equal(buf, "other bytes!", 12);
	sfs_backend_close_obj(b, f);
	/* and a tree */
	assert_int_equal(sfs_backend_put_bytes(b, "_schema/t/a", "aaaa", 4, 0), 0);
	assert_int_equal(sfs_backend_stat(b, "_schema/t/a", &st), 0);
	assert_int_equal(sfs_backend_remove(b, "_schema/t"), 0);
	assert_int_equal(sfs_backend_put_bytes(b, "_schema/t/a", "a", 1, 0), 0);
	assert_int_equal(sfs_backend_stat(b, "_schema/t/a", &st), 0);
	assert_int_equal(st.size, 1);
	free_store(b);
}

static void t_put_get_stat(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store1");
	struct sfs_bstat st;
	void *buf = NULL;
	size_t n = 0;

	assert_int_equal(sfs_backend_put_bytes(b, "a/b/c with space+plus.txt", "hello", 5, 0), 0);
	assert_int_equal(sfs_backend_get_bytes(b, "a/b/c with space+plus.txt", &buf, &n, 100), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "hello", 5);
	free(buf);
	assert_int_equal(sfs_backend_get_bytes(b, "a/b/c with space+plus.txt", &buf, &n, 2),
			 -EFBIG);
	assert_int_equal(sfs_backend_stat(b, "a/b/c with space+plus.txt", &st), 0);
	assert_true(S_ISREG(st.mode));
	assert_int_equal(st.size, 5);
	assert_string_equal(st.md5, "5d41402abc4b2a76b9719d911017c592");
	assert_true(st.mtime_ns > 0);
	assert_int_equal(sfs_backend_stat(b, "a", &st), 0);
	assert_true(S_ISDIR(st.mode));
	assert_int_equal(sfs_backend_stat(b, "a/b", &st), 0);
	assert_true(S_ISDIR(st.mode));
	assert_int_equal(sfs_backend_stat(b, "", &st), 0);
	assert_true(S_ISDIR(st.mode));
	assert_int_equal(sfs_backend_stat(b, "nope", &st), -ENOENT);
	assert_int_equal(sfs_backend_get_bytes(b, "nope", &buf, &n, 100), -ENOENT);
	/* keys are under the location: the root store sees store1/... */
	struct sfs_backend *root = open_store("");
	assert_int_equal(sfs_backend_stat(root, "store1/a/b/c with space+plus.txt", &st), 0);
	free_store(root);
	/* an empty object */
	assert_int_equal(sfs_backend_put_bytes(b, "empty", "", 0, 0), 0);
	assert_int_equal(sfs_backend_get_bytes(b, "empty", &buf, &n, 10), 0);
	assert_int_equal(n, 0);
	free(buf);
	free_store(b);
}

static void t_noreplace(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store1");
	void *buf = NULL;
	size_t n = 0;
	assert_int_equal(sfs_backend_put_bytes(b, "nr/x", "one", 3, SFS_NOREPLACE), 0);
	assert_int_equal(sfs_backend_put_bytes(b, "nr/x", "two", 3, SFS_NOREPLACE), -EEXIST);
	assert_int_equal(sfs_backend_get_bytes(b, "nr/x", &buf, &n, 10), 0);
	assert_memory_equal(buf, "one", 3);
	free(buf);
	assert_int_equal(sfs_backend_put_bytes(b, "nr/x", "two", 3, 0), 0);
	free_store(b);
}

static void t_ranged_read(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store1");
	size_t size = (3u << 20) + 123;
	unsigned char *data = malloc(size), *out = malloc(size);
	struct sfs_bfile *f = NULL;

	for (size_t i = 0; i < size; i++)
		data[i] = (unsigned char)(i * 7 + i / 251);
	assert_int_equal(sfs_backend_put_bytes(b, "r/big", data, size, 0), 0);
	assert_int_equal(sfs_backend_open_obj(b, "r/big", &f), 0);
	/* small reads served by the read-ahead window */
	assert_int_equal(sfs_backend_pread(b, f, out, 100, 5), 100);
	assert_memory_equal(out, data + 5, 100);
	assert_int_equal(sfs_backend_pread(b, f, out, 4096, 70000), 4096);
	assert_memory_equal(out, data + 70000, 4096);
	/* a big read straight into the buffer */
	assert_int_equal(sfs_backend_pread(b, f, out, 2u << 20, 1000), 2u << 20);
	assert_memory_equal(out, data + 1000, 2u << 20);
	/* short only at EOF */
	assert_int_equal(sfs_backend_pread(b, f, out, 1000, (off_t)size - 10), 10);
	assert_memory_equal(out, data + size - 10, 10);
	assert_int_equal(sfs_backend_pread(b, f, out, 1000, (off_t)size), 0);
	assert_int_equal(sfs_backend_pread(b, f, out, 1000, (off_t)size + 5), 0);
	/* whole object */
	assert_int_equal(sfs_backend_pread(b, f, out, size + 100, 0), (ssize_t)size);
	assert_memory_equal(out, data, size);
	sfs_backend_close_obj(b, f);
	assert_int_equal(sfs_backend_open_obj(b, "r/none", &f), -ENOENT);
	assert_int_equal(sfs_backend_open_obj(b, "r", &f), -EISDIR);

	/* the client maps 416 (range at EOF) to a 0-byte read */
	struct sfs_s3_client *c = client_for(g_endpoint, 2);
	assert_int_equal(sfs_s3_get_range(c, "store1/r/big", size, out, 10), 0);
	assert_int_equal(sfs_s3_get_range(c, "store1/r/big", size - 3, out, 10), 3);
	sfs_s3_client_free(c);
	free(data);
	free(out);
	free_store(b);
}

struct names {
	int n_files, n_dirs;
	char seen[1200];
};

static int count_cb(void *arg, const char *name, const struct sfs_bstat *st)
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

struct put_job {
	struct sfs_backend *b;
	int from, to;
};

static void *put_many(void *arg)
{
	struct put_job *j = arg;
	char key[64], name[32];
	for (int i = j->from; i < j->to; i++) {
		snprintf(name, sizeof(name), "k%04d", i);
		snprintf(key, sizeof(key), "many/%s", name);
		if (sfs_backend_put_bytes(j->b, key, name, strlen(name), 0) != 0)
			return (void *)1;
	}
	return NULL;
}

static void t_list_paging_and_remove(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store1");
	enum { N = 1100, T = 8 };
	pthread_t th[T];
	struct put_job jobs[T];
	struct names nm;
	struct sfs_bstat st;

	for (int t = 0; t < T; t++) {
		jobs[t] = (struct put_job){b, t * N / T, (t + 1) * N / T};
		assert_int_equal(pthread_create(&th[t], NULL, put_many, &jobs[t]), 0);
	}
	for (int t = 0; t < T; t++) {
		void *r = NULL;
		pthread_join(th[t], &r);
		assert_null(r);
	}
	assert_int_equal(sfs_backend_put_bytes(b, "many/sub/inner", "x", 1, 0), 0);
	memset(&nm, 0, sizeof(nm));
	assert_int_equal(sfs_backend_list(b, "many", count_cb, &nm), 0);
	assert_int_equal(nm.n_files, N);
	assert_int_equal(nm.n_dirs, 1);
	for (int i = 0; i < N; i++)
		assert_int_equal(nm.seen[i], 1);
	assert_int_equal(sfs_backend_list(b, "many/k0001", count_cb, &nm), -ENOTDIR);
	assert_int_equal(sfs_backend_list(b, "no/such/dir", count_cb, &nm), -ENOENT);

	/* remove: one object, then the whole tree (multi-delete, > 1000 keys) */
	assert_int_equal(sfs_backend_remove(b, "many/k0000"), 0);
	assert_int_equal(sfs_backend_stat(b, "many/k0000", &st), -ENOENT);
	assert_int_equal(sfs_backend_remove(b, "many"), 0);
	assert_int_equal(sfs_backend_stat(b, "many", &st), -ENOENT);
	assert_int_equal(sfs_backend_list(b, "many", count_cb, &nm), -ENOENT);
	assert_int_equal(sfs_backend_remove(b, "many"), -ENOENT);
	free_store(b);
}

static void write_local(int dirfd, const char *rel, const void *data, size_t n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s", rel);
	for (char *p = path; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		(void)mkdirat(dirfd, path, 0700);
		*p = '/';
	}
	int fd = openat(dirfd, rel, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
}

/* staged_sync through a write-only fd, the way the FUSE layer may hold it */
static void sync_local(struct sfs_backend *b, int dirfd, const char *rel)
{
	int fd = openat(dirfd, rel, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(sfs_backend_staged_sync(b, rel, fd, 1), 0);
	close(fd);
}

static void t_stage_promote_tree(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store1");
	struct sfs_bstat st;
	struct names nm;
	void *buf = NULL;
	size_t n = 0;
	int dfd = sfs_backend_staging_dir(b);
	assert_true(dfd >= 0);

	write_local(dfd, "lab/T/run1/a.bin", "AAAA", 4);
	write_local(dfd, "lab/T/run1/sub/b.bin", "BBBBBB", 6);
	sync_local(b, dfd, "lab/T/run1/a.bin");
	sync_local(b, dfd, "lab/T/run1/sub/b.bin");
	assert_int_equal(sfs_backend_stat(b, "_staging/lab/T/run1/sub/b.bin", &st), 0);
	assert_int_equal(st.size, 6);

	assert_int_equal(sfs_backend_promote(b, "lab/T/run1", "_schema/lab/T/k=1/run_tok", 0), 0);
	memset(&nm, 0, sizeof(nm));
	assert_int_equal(sfs_backend_list(b, "_schema/lab/T/k=1/run_tok", count_cb, &nm), 0);
	assert_int_equal(nm.n_files, 1);
	assert_int_equal(nm.n_dirs, 1);
	assert_int_equal(
		sfs_backend_get_bytes(b, "_schema/lab/T/k=1/run_tok/sub/b.bin", &buf, &n, 100), 0);
	assert_int_equal(n, 6);
	assert_memory_equal(buf, "BBBBBB", 6);
	free(buf);
	/* the staged entry is gone, remotely and in the local mirror */
	assert_int_equal(sfs_backend_stat(b, "_staging/lab/T/run1", &st), -ENOENT);
	assert_true(faccessat(dfd, "lab/T/run1", F_OK, AT_SYMLINK_NOFOLLOW) != 0);

	/* NOREPLACE onto an existing tree: -EEXIST, staged entry untouched */
	write_local(dfd, "lab/T/run2/a.bin", "CCCC", 4);
	sync_local(b, dfd, "lab/T/run2/a.bin");
	assert_int_equal(
		sfs_backend_promote(b, "lab/T/run2", "_schema/lab/T/k=1/run_tok", SFS_NOREPLACE),
		-EEXIST);
	assert_int_equal(sfs_backend_stat(b, "_staging/lab/T/run2/a.bin", &st), 0);
	assert_int_equal(faccessat(dfd, "lab/T/run2/a.bin", F_OK, 0), 0);
	/* NOREPLACE of a single file onto a new key works, onto an existing one fails */
	assert_int_equal(sfs_backend_promote(b, "lab/T/run2/a.bin", "_hash/lab/xyz", SFS_NOREPLACE),
			 0);
	write_local(dfd, "lab/T/run3", "CCCC", 4);
	sync_local(b, dfd, "lab/T/run3");
	assert_int_equal(sfs_backend_promote(b, "lab/T/run3", "_hash/lab/xyz", SFS_NOREPLACE),
			 -EEXIST);
	assert_int_equal(sfs_backend_promote(b, "lab/T/none", "_hash/lab/zzz", 0), -ENOENT);
	close(dfd);
	free_store(b);
}

static void t_staged_rename_unlink(void **state)
{
	(void)state;
	require_server();
	struct sfs_backend *b = open_store("store1");
	struct sfs_bstat st;
	int dfd = sfs_backend_staging_dir(b);
	assert_true(dfd >= 0);

	write_local(dfd, "s/T/f1", "12345", 5);
	sync_local(b, dfd, "s/T/f1");
	assert_int_equal(sfs_backend_staged_rename(b, "s/T/f1", "s/T/f2"), 0);
	assert_int_equal(sfs_backend_stat(b, "_staging/s/T/f1", &st), -ENOENT);
	assert_int_equal(sfs_backend_stat(b, "_staging/s/T/f2", &st), 0);
	assert_int_equal(st.size, 5);
	/* directories */
	write_local(dfd, "s/T/d/x", "x", 1);
	write_local(dfd, "s/T/d/y/z", "zz", 2);
	sync_local(b, dfd, "s/T/d/x");
	sync_local(b, dfd, "s/T/d/y/z");
	assert_int_equal(sfs_backend_staged_rename(b, "s/T/d", "s/T/e"), 0);
	assert_int_equal(sfs_backend_stat(b, "_staging/s/T/d", &st), -ENOENT);
	assert_int_equal(sfs_backend_stat(b, "_staging/s/T/e/y/z", &st), 0);
	assert_int_equal(sfs_backend_staged_unlink(b, "s/T/e", 1), 0);
	assert_int_equal(sfs_backend_stat(b, "_staging/s/T/e", &st), -ENOENT);
	assert_int_equal(sfs_backend_staged_unlink(b, "s/T/f2", 0), 0);
	assert_int_equal(sfs_backend_stat(b, "_staging/s/T/f2", &st), -ENOENT);
	/* never uploaded: nothing to do */
	assert_int_equal(sfs_backend_staged_unlink(b, "s/T/never", 0), 0);
	assert_int_equal(sfs_backend_staged_rename(b, "s/T/never", "s/T/never2"), 0);
	close(dfd);
	free_store(b);
}

static void t_multipart(void **state)
{
	(void)state;
	require_server();
	size_t size = 20u << 20;
	unsigned char *data = malloc(size), *out = malloc(size);
	struct sfs_bstat st;
	struct sfs_bfile *f = NULL;

	setenv("SFS_S3_PART_SIZE", "5242880", 1);
	struct sfs_backend *b = open_store("store1");
	unsetenv("SFS_S3_PART_SIZE");
	int dfd = sfs_backend_staging_dir(b);
	assert_true(dfd >= 0);
	for (size_t i = 0; i < size; i++)
		data[i] = (unsigned char)((i >> 3) ^ (i * 13));
	write_local(dfd, "mp/T/big.bin", data, size);
	sync_local(b, dfd, "mp/T/big.bin");
	assert_int_equal(sfs_backend_stat(b, "_staging/mp/T/big.bin", &st), 0);
	assert_int_equal(st.size, size);
	assert_int_equal(sfs_backend_promote(b, "mp/T/big.bin", "_hash/mp/big", 0), 0);
	assert_int_equal(sfs_backend_open_obj(b, "_hash/mp/big", &f), 0);
	assert_int_equal(sfs_backend_pread(b, f, out, size, 0), (ssize_t)size);
	assert_memory_equal(out, data, size);
	sfs_backend_close_obj(b, f);

	/* the client reports the MD5 of the whole file */
	struct sfs_s3_opts o = {.endpoint = g_endpoint,
				.bucket = BUCKET,
				.path_style = 1,
				.access_key = "S3RVER",
				.secret_key = "S3RVER",
				.part_size = 5u << 20};
	struct sfs_s3_client *c = NULL;
	char md5[33];
	assert_int_equal(sfs_s3_client_new(&o, &c), 0);
	write_local(dfd, "mp/T/again.bin", data, size); /* promote removed big.bin locally */
	int fd = openat(dfd, "mp/T/again.bin", O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(sfs_s3_put_fd(c, "mp-direct", fd, size, md5), 0);
	assert_int_equal(strlen(md5), 32);
	/* a file that is shorter than announced is never uploaded as if complete */
	assert_int_not_equal(sfs_s3_put_fd(c, "mp-short", fd, size + 10, NULL), 0);
	assert_int_equal(sfs_s3_head(c, "mp-short", NULL), -ENOENT);
	close(fd);
	sfs_s3_client_free(c);
	close(dfd);
	free(data);
	free(out);
	free_store(b);
}

static void t_copy_above_threshold_fails_cleanly(void **state)
{
	(void)state;
	require_server();
	struct sfs_bstat st;
	/* s3rver has no UploadPartCopy (501): the failure must surface, nothing half-written */
	setenv("SFS_S3_COPY_THRESHOLD", "1", 1);
	struct sfs_backend *b = open_store("store1");
	unsetenv("SFS_S3_COPY_THRESHOLD");
	int dfd = sfs_backend_staging_dir(b);
	write_local(dfd, "cp/T/f", "0123456789", 10);
	sync_local(b, dfd, "cp/T/f");
	assert_int_not_equal(sfs_backend_promote(b, "cp/T/f", "_hash/cp/f", 0), 0);
	assert_int_equal(sfs_backend_stat(b, "_hash/cp/f", &st), -ENOENT);
	assert_int_equal(sfs_backend_stat(b, "_staging/cp/T/f", &st), 0);
	assert_int_equal(faccessat(dfd, "cp/T/f", F_OK, 0), 0);
	close(dfd);
	free_store(b);
}

/* ---- fault injection ---- */

static void t_retry_500_then_forward(void **state)
{
	(void)state;
	require_server();
	struct proxy p;
	char ep[64];
	void *buf = NULL;
	size_t n = 0;
	proxy_start(&p, g_port, 2, F_RESPOND, 500, "InternalError");
	proxy_endpoint(&p, ep, sizeof(ep));
	struct sfs_s3_client *c = client_for(ep, 4);
	assert_int_equal(sfs_s3_put(c, "store1/retry/x", "abc", 3, 0), 0);
	assert_int_equal(atomic_load(&p.faults), 2);
	assert_true(atomic_load(&p.requests) >= 3);
	/* a dropped connection is retried too (a new client: a new connection) */
	sfs_s3_client_free(c);
	c = client_for(ep, 4);
	atomic_store(&p.faults_left, 1);
	p.fault_mode = F_CLOSE;
	assert_int_equal(sfs_s3_get(c, "store1/retry/x", &buf, &n, 10), 0);
	assert_memory_equal(buf, "abc", 3);
	free(buf);
	assert_int_equal(atomic_load(&p.faults), 3);
	sfs_s3_client_free(c);
	proxy_stop(&p);
	/* and the object really is on the server */
	c = client_for(g_endpoint, 1);
	assert_int_equal(sfs_s3_get(c, "store1/retry/x", &buf, &n, 10), 0);
	assert_int_equal(n, 3);
	free(buf);
	sfs_s3_client_free(c);
}

static void expect_mapping(int status, const char *code, int mode, int want, int want_requests)
{
	struct proxy p;
	char ep[64];
	void *buf = NULL;
	size_t n = 0;
	proxy_start(&p, 0, -1, mode, status, code);
	proxy_endpoint(&p, ep, sizeof(ep));
	struct sfs_s3_client *c = client_for(ep, 3);
	assert_int_equal(sfs_s3_get(c, "k", &buf, &n, 10), want);
	assert_int_equal(atomic_load(&p.requests), want_requests);
	sfs_s3_client_free(c);
	proxy_stop(&p);
}

static void t_error_mapping(void **state)
{
	(void)state;
	expect_mapping(403, "AccessDenied", F_RESPOND, -EACCES, 1);
	expect_mapping(404, "NoSuchKey", F_RESPOND, -ENOENT, 1);
	expect_mapping(412, "PreconditionFailed", F_RESPOND, -EEXIST, 1);
	expect_mapping(409, "ConditionalRequestConflict", F_RESPOND, -EEXIST, 1);
	expect_mapping(400, "InvalidArgument", F_RESPOND, -EINVAL, 1);
	expect_mapping(400, "EntityTooLarge", F_RESPOND, -ENOSPC, 1);
	expect_mapping(507, "InsufficientStorage", F_RESPOND, -ENOSPC, 1);
	expect_mapping(501, "NotImplemented", F_RESPOND, -ENOSYS, 1);
	/* retried then given up: exactly max_attempts requests */
	expect_mapping(503, "SlowDown", F_RESPOND, -EIO, 3);
	expect_mapping(429, "TooManyRequests", F_RESPOND, -EIO, 3);
	expect_mapping(500, "InternalError", F_RESPOND, -EIO, 3);
	expect_mapping(0, "", F_CLOSE, -EIO, 3);
}

static void t_timeout(void **state)
{
	(void)state;
	struct proxy p;
	char ep[64];
	void *buf = NULL;
	size_t n = 0;
	proxy_start(&p, 0, -1, F_HANG, 0, "");
	proxy_endpoint(&p, ep, sizeof(ep));
	struct sfs_s3_client *c = client_for(ep, 2); /* stall timeout 1 s */
	double t0 = now_s();
	assert_int_equal(sfs_s3_get(c, "k", &buf, &n, 10), -EIO);
	assert_true(now_s() - t0 < 8.0);
	assert_int_equal(atomic_load(&p.requests), 2);
	sfs_s3_client_free(c);
	proxy_stop(&p);
}

static void t_open_errors(void **state)
{
	(void)state;
	require_server();
	struct sfs_config c;
	struct sfs_backend *b = NULL;
	struct proxy p;
	char ep[64];

	/* a closed port: -EIO, fast */
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", free_port());
	cfg_fill(&c, ep, "x");
	double t0 = now_s();
	assert_int_equal(sfs_backend_s3_open(&c, &b), -EIO);
	assert_true(now_s() - t0 < 3.0);
	assert_null(b);

	proxy_start(&p, 0, -1, F_RESPOND, 403, "AccessDenied");
	proxy_endpoint(&p, ep, sizeof(ep));
	cfg_fill(&c, ep, "x");
	assert_int_equal(sfs_backend_s3_open(&c, &b), -EACCES);
	proxy_stop(&p);

	proxy_start(&p, 0, -1, F_RESPOND, 404, "NoSuchBucket");
	proxy_endpoint(&p, ep, sizeof(ep));
	cfg_fill(&c, ep, "x");
	assert_int_equal(sfs_backend_s3_open(&c, &b), -ENOENT);
	proxy_stop(&p);

	/* an unknown access key is refused (s3rver does not check SigV4 signatures) */
	cfg_fill(&c, g_endpoint, "x");
	c.access_key = "NOSUCHKEY";
	assert_int_equal(sfs_backend_s3_open(&c, &b), -EACCES);
	assert_null(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_open_marker),
		cmocka_unit_test(t_put_get_stat),
		cmocka_unit_test(t_remove_forgets_cached),
		cmocka_unit_test(t_noreplace),
		cmocka_unit_test(t_ranged_read),
		cmocka_unit_test(t_list_paging_and_remove),
		cmocka_unit_test(t_stage_promote_tree),
		cmocka_unit_test(t_staged_rename_unlink),
		cmocka_unit_test(t_multipart),
		cmocka_unit_test(t_copy_above_threshold_fails_cleanly),
		cmocka_unit_test(t_retry_500_then_forward),
		cmocka_unit_test(t_error_mapping),
		cmocka_unit_test(t_timeout),
		cmocka_unit_test(t_open_errors),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
