/*
 * tests/unit/test_s3_faults.c - the S3 client and backend against a
 * fault-injecting proxy of our own (in front of the local s3rver of
 * s3_helpers.h, or alone): retries, the mapping of errors to errno, timeouts,
 * failures at open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "backend/s3_client.h"
#include "common/config.h"
#include "tests/unit/s3_helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- fault-injecting proxy (loopback, one thread per connection) ---- */

enum { F_RESPOND, F_CLOSE, F_HANG, F_HUGE };

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
		if (p->fault_mode ==
		    F_HUGE) { /* a 200 listing of 1 GiB, until the client hangs up */
			static const char head[] =
				"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
				"Content-Length: 1073741824\r\n\r\n"
				"<ListBucketResult><IsTruncated>false</IsTruncated>";
			static char rows[1 << 16];
			for (size_t i = 0; i + 32 <= sizeof(rows); i += 32)
				memcpy(rows + i, "<Contents><Key>k</Key></Contents", 32);
			if (write(fd, head, sizeof(head) - 1) < 0)
				goto out;
			for (size_t sent = 0; sent < (1u << 30); sent += sizeof(rows))
				if (write(fd, rows, sizeof(rows)) < 0)
					break;
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

static int count_key(void *arg, const char *key, int is_prefix, const struct sfs_s3_objinfo *info)
{
	(*(size_t *)arg)++;
	return 0;
}

/* a server answering a listing without end: refused past the client's cap, not buffered */
static void t_huge_answer(void **state)
{
	(void)state;
	struct proxy p;
	char ep[64];
	size_t n = 0;
	proxy_start(&p, 0, -1, F_HUGE, 200, "");
	proxy_endpoint(&p, ep, sizeof(ep));
	struct sfs_s3_client *c = client_for(ep, 2);
	double t0 = now_s();
	assert_int_equal(sfs_s3_list(c, "", NULL, 0, 0, count_key, &n), -EFBIG);
	assert_true(now_s() - t0 < 20.0);
	assert_int_equal(n, 0); /* nothing of the cut answer was taken for a listing */
	assert_int_equal(atomic_load(&p.requests), 1); /* not retried: it would be as large */
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
		cmocka_unit_test(t_retry_500_then_forward),
		cmocka_unit_test(t_error_mapping),
		cmocka_unit_test(t_huge_answer),
		cmocka_unit_test(t_timeout),
		cmocka_unit_test(t_open_errors),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
