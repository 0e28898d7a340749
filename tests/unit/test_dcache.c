/* tests/unit/test_dcache.c - the listing cache behind the s3 backend's bounded staleness. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "backend/dcache.h"

static struct sfs_dlist *listing(const char *const *names, size_t n)
{
	struct sfs_dlist *l = sfs_dlist_new();
	assert_non_null(l);
	for (size_t i = 0; i < n; i++) {
		struct sfs_bstat st = {.mode = 0100644, .size = i + 1};
		assert_int_equal(sfs_dlist_add(l, names[i], &st), 0);
	}
	return l;
}

static void put(struct sfs_dcache *c, const char *dir, const char *const *names, size_t n)
{
	sfs_dcache_put(c, dir, listing(names, n), sfs_dcache_now());
}

static void test_lookup_and_get(void **state)
{
	static const char *const names[] = {"zeta", "alpha", "mid"};
	struct sfs_dcache *c;
	struct sfs_bstat st;
	(void)state;

	assert_int_equal(sfs_dcache_new(60, 8, &c), 0);
	assert_int_equal(sfs_dcache_lookup(c, "_hash/lab", "alpha", &st), -ENOENT);
	assert_null(sfs_dcache_get(c, "_hash/lab"));
	put(c, "_hash/lab", names, 3);
	assert_int_equal(sfs_dcache_lookup(c, "_hash/lab", "alpha", &st), 1);
	assert_int_equal(st.size, 2); /* its own attributes, after sorting */
	assert_int_equal(sfs_dcache_lookup(c, "_hash/lab", "zeta", &st), 1);
	assert_int_equal(st.size, 1);
	assert_int_equal(sfs_dcache_lookup(c, "_hash/lab", "nope", &st), 0);
	assert_int_equal(sfs_dcache_lookup(c, "_hash", "lab", &st), -ENOENT);

	struct sfs_dlist *l = sfs_dcache_get(c, "_hash/lab");
	assert_non_null(l);
	assert_int_equal(l->n, 3);
	assert_string_equal(l->v[0].name, "alpha");
	assert_string_equal(l->v[2].name, "zeta");
	/* invalidated while held: the holder's copy stays valid until released */
	sfs_dcache_invalidate(c, "_hash/lab/new", '/');
	assert_string_equal(l->v[1].name, "mid");
	sfs_dlist_release(c, l);
	assert_null(sfs_dcache_get(c, "_hash/lab"));
	sfs_dcache_free(c);
}

static void test_invalidate_scope(void **state)
{
	static const char *const one[] = {"x"};
	struct sfs_dcache *c;
	struct sfs_bstat st;
	(void)state;

	assert_int_equal(sfs_dcache_new(60, 16, &c), 0);
	const char *dirs[] = {
		"",	      "_schema",      "_schema/s", "_schema/s/t", "_schema/s/t/k=1",
		"_schema/s2", "_schema/s/tt", "_hash/lab"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		put(c, dirs[i], one, 1);
	sfs_dcache_invalidate(c, "_schema/s/t", '/');
	/* ancestors, itself and descendants go */
	assert_int_equal(sfs_dcache_lookup(c, "", "x", &st), -ENOENT);
	assert_int_equal(sfs_dcache_lookup(c, "_schema", "x", &st), -ENOENT);
	assert_int_equal(sfs_dcache_lookup(c, "_schema/s", "x", &st), -ENOENT);
	assert_int_equal(sfs_dcache_lookup(c, "_schema/s/t", "x", &st), -ENOENT);
	assert_int_equal(sfs_dcache_lookup(c, "_schema/s/t/k=1", "x", &st), -ENOENT);
	/* siblings and names that merely share a prefix stay */
	assert_int_equal(sfs_dcache_lookup(c, "_schema/s2", "x", &st), 1);
	assert_int_equal(sfs_dcache_lookup(c, "_schema/s/tt", "x", &st), 1);
	assert_int_equal(sfs_dcache_lookup(c, "_hash/lab", "x", &st), 1);
	sfs_dcache_free(c);
}

static void test_listing_older_than_invalidation_is_dropped(void **state)
{
	static const char *const one[] = {"old"};
	struct sfs_dcache *c;
	struct sfs_bstat st;
	(void)state;

	assert_int_equal(sfs_dcache_new(60, 4, &c), 0);
	long long began = sfs_dcache_now();
	sfs_dcache_invalidate(c, "_hash/lab/k", '/'); /* a commit lands while we LIST */
	sfs_dcache_put(c, "_hash/lab", listing(one, 1), began);
	assert_int_equal(sfs_dcache_lookup(c, "_hash/lab", "old", &st), -ENOENT);
	sfs_dcache_free(c);
}

static void test_lru_bound(void **state)
{
	static const char *const one[] = {"x"};
	struct sfs_dcache *c;
	struct sfs_bstat st;
	char dir[16];
	(void)state;

	assert_int_equal(sfs_dcache_new(60, 3, &c), 0);
	put(c, "a", one, 1);
	put(c, "b", one, 1);
	put(c, "c", one, 1);
	assert_int_equal(sfs_dcache_lookup(c, "a", "x", &st), 1); /* a is now the newest */
	put(c, "d", one, 1);					  /* evicts b */
	assert_int_equal(sfs_dcache_lookup(c, "b", "x", &st), -ENOENT);
	assert_int_equal(sfs_dcache_lookup(c, "a", "x", &st), 1);
	assert_int_equal(sfs_dcache_lookup(c, "c", "x", &st), 1);
	assert_int_equal(sfs_dcache_lookup(c, "d", "x", &st), 1);
	for (int i = 0; i < 50; i++) { /* never more than 3, nothing leaks (valgrind) */
		snprintf(dir, sizeof(dir), "d%d", i);
		put(c, dir, one, 1);
	}
	assert_int_equal(sfs_dcache_lookup(c, "d49", "x", &st), 1);
	assert_int_equal(sfs_dcache_lookup(c, "d46", "x", &st), -ENOENT);
	put(c, "d49", one, 1); /* replacing a listing */
	assert_int_equal(sfs_dcache_lookup(c, "d49", "x", &st), 1);
	sfs_dcache_free(c);
}

static void test_expiry_and_ttl_zero(void **state)
{
	static const char *const one[] = {"x"};
	struct sfs_dcache *c;
	struct sfs_bstat st;
	(void)state;

	assert_int_equal(sfs_dcache_new(1, 4, &c), 0);
	put(c, "a", one, 1);
	/* a listing that began 1 s ago is stale (no sleeping needed) */
	sfs_dcache_put(c, "b", listing(one, 1), sfs_dcache_now() - 1000000000LL);
	assert_int_equal(sfs_dcache_lookup(c, "a", "x", &st), 1);
	assert_int_equal(sfs_dcache_lookup(c, "b", "x", &st), -ENOENT);
	assert_null(sfs_dcache_get(c, "b"));
	sfs_dcache_free(c);

	assert_int_equal(sfs_dcache_new(0, 4, &c), 0); /* dir_cache_time=0: always LIST */
	put(c, "a", one, 1);
	assert_int_equal(sfs_dcache_lookup(c, "a", "x", &st), -ENOENT);
	sfs_dcache_free(c);
	sfs_dcache_free(NULL);
	sfs_dlist_release(NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup_and_get),
		cmocka_unit_test(test_invalidate_scope),
		cmocka_unit_test(test_listing_older_than_invalidation_is_dropped),
		cmocka_unit_test(test_lru_bound),
		cmocka_unit_test(test_expiry_and_ttl_zero),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
