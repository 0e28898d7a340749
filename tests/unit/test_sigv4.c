/* tests/unit/test_sigv4.c - AWS SigV4 against the published test-suite vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backend/sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define VEC_DIR "tests/vectors/sigv4"
#define MAX_KV	16

/* Read a vector file; NULL when it does not exist. */
static char *slurp(const char *name, const char *ext)
{
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), VEC_DIR "/%s/%s.%s", name, name, ext);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

struct parsed {
	char *method;
	char *path;
	struct sfs_sigv4_kv query[MAX_KV];
	size_t n_query;
	struct sfs_sigv4_kv headers[MAX_KV];
	size_t n_headers;
	const char *body;
	const char *amz_date;
};

/* Parse "METHOD URI HTTP/1.1\nName:value\n...\n\nbody" in place (the URI may contain spaces). */
static void parse_req(char *text, struct parsed *p)
{
	memset(p, 0, sizeof(*p));
	char *eol = strchr(text, '\n');
	assert_non_null(eol);
	*eol = '\0';
	char *sp = strchr(text, ' ');
	char *proto = strrchr(text, ' ');
	assert_true(sp && proto && proto > sp);
	*sp = '\0';
	*proto = '\0';
	p->method = text;
	p->path = sp + 1;
	char *q = strchr(p->path, '?');
	if (q) {
		*q++ = '\0';
		while (q && *q) {
			char *amp = strchr(q, '&');
			if (amp)
				*amp = '\0';
			char *eq = strchr(q, '=');
			if (eq)
				*eq = '\0';
			assert_true(p->n_query < MAX_KV);
			p->query[p->n_query].name = q;
			p->query[p->n_query].value = eq ? eq + 1 : "";
			p->n_query++;
			q = amp ? amp + 1 : NULL;
		}
	}
	p->body = "";
	char *line = eol + 1;
	while (*line) {
		eol = strchr(line, '\n');
		if (eol)
			*eol = '\0';
		if (*line == '\0') {
			p->body = eol ? eol + 1 : "";
			break;
		}
		char *colon = strchr(line, ':');
		assert_non_null(colon);
		*colon = '\0';
		assert_true(p->n_headers < MAX_KV);
		p->headers[p->n_headers].name = line;
		p->headers[p->n_headers].value = colon + 1;
		if (strcasecmp(line, "x-amz-date") == 0)
			p->amz_date = colon + 1;
		p->n_headers++;
		if (!eol)
			break;
		line = eol + 1;
	}
	assert_non_null(p->amz_date);
}

static void check_vector(const char *name)
{
	int is_s3 = strncmp(name, "s3-", 3) == 0;
	struct sfs_sigv4_creds creds = {
		.access_key = is_s3 ? "AKIAIOSFODNN7EXAMPLE" : "AKIDEXAMPLE",
		.secret_key = is_s3 ? "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
				    : "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
		.region = "us-east-1",
		.service = is_s3 ? "s3" : "service",
	};
	struct parsed p;
	char hash[65];
	char *req = slurp(name, "req");
	char *want_creq = slurp(name, "creq");
	char *want_sts = slurp(name, "sts");
	char *want_authz = slurp(name, "authz");
	char *creq = NULL, *sh = NULL, *sts = NULL, *authz = NULL;

	assert_non_null(req);
	assert_non_null(want_authz);
	parse_req(req, &p);
	sfs_sigv4_sha256_hex(p.body, strlen(p.body), hash);
	struct sfs_sigv4_request r = {
		.method = p.method,
		.path = p.path,
		.query = p.query,
		.n_query = p.n_query,
		.headers = p.headers,
		.n_headers = p.n_headers,
		.payload_hash = hash,
	};
	assert_int_equal(sfs_sigv4_canonical_request(&r, &creq, &sh), 0);
	if (want_creq)
		assert_string_equal(creq, want_creq);
	assert_int_equal(
		sfs_sigv4_string_to_sign(p.amz_date, creds.region, creds.service, creq, &sts), 0);
	if (want_sts)
		assert_string_equal(sts, want_sts);
	assert_int_equal(sfs_sigv4_authorization(&r, &creds, p.amz_date, &authz), 0);
	assert_string_equal(authz, want_authz);

	free(creq);
	free(sh);
	free(sts);
	free(authz);
	free(req);
	free(want_creq);
	free(want_sts);
	free(want_authz);
}

#define VECTOR_TEST(fn, name)        \
	static void fn(void **state) \
	{                            \
		(void)state;         \
		check_vector(name);  \
	}

VECTOR_TEST(t_get_vanilla, "get-vanilla")
VECTOR_TEST(t_get_vanilla_query_order_key_case, "get-vanilla-query-order-key-case")
VECTOR_TEST(t_get_vanilla_query_order_key, "get-vanilla-query-order-key")
VECTOR_TEST(t_get_vanilla_query_order_value, "get-vanilla-query-order-value")
VECTOR_TEST(t_get_vanilla_query_unreserved, "get-vanilla-query-unreserved")
VECTOR_TEST(t_get_vanilla_utf8_query, "get-vanilla-utf8-query")
VECTOR_TEST(t_get_vanilla_empty_query_key, "get-vanilla-empty-query-key")
VECTOR_TEST(t_get_unreserved, "get-unreserved")
VECTOR_TEST(t_get_utf8, "get-utf8")
VECTOR_TEST(t_get_space, "get-space")
VECTOR_TEST(t_get_header_value_trim, "get-header-value-trim")
VECTOR_TEST(t_get_header_key_duplicate, "get-header-key-duplicate")
VECTOR_TEST(t_get_header_value_order, "get-header-value-order")
VECTOR_TEST(t_post_vanilla, "post-vanilla")
VECTOR_TEST(t_post_vanilla_query, "post-vanilla-query")
VECTOR_TEST(t_post_header_key_sort, "post-header-key-sort")
VECTOR_TEST(t_post_header_value_case, "post-header-value-case")
VECTOR_TEST(t_post_x_www_form_urlencoded, "post-x-www-form-urlencoded")
VECTOR_TEST(t_post_sts_header_before, "post-sts-header-before")
VECTOR_TEST(t_s3_get_object_range, "s3-get-object-range")

static void t_uri_encode(void **state)
{
	char *s = NULL;
	(void)state;
	assert_int_equal(sfs_sigv4_uri_encode("a b/c~d+e=", 10, 0, &s), 0);
	assert_string_equal(s, "a%20b/c~d%2Be%3D");
	free(s);
	assert_int_equal(sfs_sigv4_uri_encode("a/b", 3, 1, &s), 0);
	assert_string_equal(s, "a%2Fb");
	free(s);
	assert_int_equal(sfs_sigv4_uri_encode("", 0, 1, &s), 0);
	assert_string_equal(s, "");
	free(s);
}

static void t_amz_date_and_unsigned_payload(void **state)
{
	char d[17];
	char *creq = NULL;
	(void)state;
	sfs_sigv4_amz_date(1440938160, d); /* 2015-08-30 12:36:00 UTC */
	assert_string_equal(d, "20150830T123600Z");
	struct sfs_sigv4_kv h[] = {{"Host", "b.example"}, {"x-amz-date", d}};
	struct sfs_sigv4_kv q[] = {{"delete", NULL}};
	struct sfs_sigv4_request r = {"POST", "/k", q, 1, h, 2, SFS_SIGV4_UNSIGNED_PAYLOAD};
	assert_int_equal(sfs_sigv4_canonical_request(&r, &creq, NULL), 0);
	assert_string_equal(creq,
			    "POST\n/k\ndelete=\nhost:b.example\nx-amz-date:20150830T123600Z\n\n"
			    "host;x-amz-date\nUNSIGNED-PAYLOAD");
	free(creq);
	creq = NULL;
	struct sfs_sigv4_request bad = {NULL, "/", NULL, 0, NULL, 0, "x"};
	assert_int_equal(sfs_sigv4_canonical_request(&bad, &creq, NULL), -EINVAL);
	assert_null(creq);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_get_vanilla),
		cmocka_unit_test(t_get_vanilla_query_order_key_case),
		cmocka_unit_test(t_get_vanilla_query_order_key),
		cmocka_unit_test(t_get_vanilla_query_order_value),
		cmocka_unit_test(t_get_vanilla_query_unreserved),
		cmocka_unit_test(t_get_vanilla_utf8_query),
		cmocka_unit_test(t_get_vanilla_empty_query_key),
		cmocka_unit_test(t_get_unreserved),
		cmocka_unit_test(t_get_utf8),
		cmocka_unit_test(t_get_space),
		cmocka_unit_test(t_get_header_value_trim),
		cmocka_unit_test(t_get_header_key_duplicate),
		cmocka_unit_test(t_get_header_value_order),
		cmocka_unit_test(t_post_vanilla),
		cmocka_unit_test(t_post_vanilla_query),
		cmocka_unit_test(t_post_header_key_sort),
		cmocka_unit_test(t_post_header_value_case),
		cmocka_unit_test(t_post_x_www_form_urlencoded),
		cmocka_unit_test(t_post_sts_header_before),
		cmocka_unit_test(t_s3_get_object_range),
		cmocka_unit_test(t_uri_encode),
		cmocka_unit_test(t_amz_date_and_unsigned_payload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
