/*
 * tests/unit/common/test_hmap.c — the keyed hash and the intrusive table of common/hmap.c, as a specification.
 *
 * The hash is SipHash-2-4: until cm_hash_seed() runs, the key is the reference key 00..0f, so the
 * published test vectors of the SipHash paper pin the implementation down byte for byte. After seeding
 * the hash must still be a function (same bytes, same value) within the process. The table is checked
 * through its public behaviour: every inserted node is found by its hash and key while the bucket array
 * doubles underneath, nodes that share one hash are told apart only by the predicate, and removal takes
 * out exactly the node it is given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hmap.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A caller struct with the node embedded first, keyed by an integer. */
typedef struct item {
	cm_hnode node;
	int64_t key;
} item;

static bool item_eq(const cm_hnode *n, const void *key)
{
	return ((const item *)(const void *)n)->key == *(const int64_t *)key;
}

static uint64_t key_hash(int64_t key)
{
	return cm_hash_bytes(&key, sizeof key);
}

static item *find(const cm_hmap *m, uint64_t hash, int64_t key)
{
	return (item *)(void *)cm_hmap_find(m, hash, item_eq, &key);
}

/* ---- the hash ---- */

/* Runs first (cmocka keeps the order): the key is still the fixed reference key. */
static void test_unseeded_hash_matches_the_siphash_2_4_reference_vectors(void **state)
{
	/* Key 00 01 .. 0f, message 00 01 .. (n-1): vectors of the SipHash paper's reference code. */
	static const struct {
		size_t len;
		uint64_t want;
	} cases[] = {
		{0, 0x726fdb47dd0e0e31ULL},  {1, 0x74f839c593dc67fdULL},  {7, 0xab0200f58b01d137ULL},
		{8, 0x93f5f5799a932462ULL},  {15, 0xa129ca6149be45e5ULL}, {63, 0x958a324ceb064572ULL},
	};
	unsigned char msg[64];
	(void)state;

	for (size_t i = 0; i < sizeof msg; i++) msg[i] = (unsigned char)i;
	for (size_t i = 0; i < NELEM(cases); i++) {
		uint64_t got = cm_hash_bytes(msg, cases[i].len);
		if (got != cases[i].want)
			fail_msg("siphash of %zu bytes: got %016llx, want %016llx", cases[i].len, (unsigned long long)got,
			         (unsigned long long)cases[i].want);
	}
}

static void test_seeding_changes_the_key_and_the_hash_stays_deterministic(void **state)
{
	static const char *const keys[] = {"", "a", "42", "pollgate", "exactly8", "a key longer than one block"};
	uint64_t before[NELEM(keys)];
	size_t changed = 0;
	(void)state;

	for (size_t i = 0; i < NELEM(keys); i++) before[i] = cm_hash_bytes(keys[i], strlen(keys[i]));
	cm_hash_seed();
	for (size_t i = 0; i < NELEM(keys); i++) {
		uint64_t a = cm_hash_bytes(keys[i], strlen(keys[i]));
		uint64_t b = cm_hash_bytes(keys[i], strlen(keys[i]));
		if (a != b) fail_msg("hash of \"%s\" is not deterministic after seeding", keys[i]);
		if (a != before[i]) changed++;
	}
	/* A random 128-bit key that leaves all six hashes unchanged is not a realistic outcome. */
	assert_true(changed > 0);
}

static void test_hash_depends_on_every_byte_and_on_the_length(void **state)
{
	unsigned char buf[24] = {0};
	uint64_t base = cm_hash_bytes(buf, sizeof buf);
	(void)state;

	for (size_t i = 0; i < sizeof buf; i++) {
		buf[i] ^= 1;
		if (cm_hash_bytes(buf, sizeof buf) == base) fail_msg("flipping byte %zu did not change the hash", i);
		buf[i] ^= 1;
	}
	/* Zero bytes at the end are not padding: the length is part of the input. */
	for (size_t n = 0; n < sizeof buf; n++)
		if (cm_hash_bytes(buf, n) == base) fail_msg("%zu zero bytes hash like %zu", n, sizeof buf);
}

/* ---- the table ---- */

static void test_init_rounds_the_bucket_count_up_to_a_power_of_two_of_at_least_16(void **state)
{
	static const struct {
		size_t initial, want;
	} cases[] = {{0, 16}, {1, 16}, {16, 16}, {17, 32}, {1000, 1024}, {1024, 1024}, {1025, 2048}};
	(void)state;

	for (size_t i = 0; i < NELEM(cases); i++) {
		cm_hmap m;
		assert_int_equal(cm_hmap_init(&m, cases[i].initial), 0);
		if (m.nbuckets != cases[i].want)
			fail_msg("init(%zu): %zu buckets, want %zu", cases[i].initial, m.nbuckets, cases[i].want);
		assert_int_equal(m.count, 0);
		cm_hmap_fini(&m);
		assert_null(m.buckets);
		assert_int_equal(m.nbuckets, 0);
	}
}

static void test_empty_and_finished_tables_find_nothing(void **state)
{
	cm_hmap m;
	int64_t k = 1;
	(void)state;

	assert_int_equal(cm_hmap_init(&m, 0), 0);
	assert_null(find(&m, key_hash(k), k));
	cm_hmap_fini(&m);
	assert_null(find(&m, key_hash(k), k));
}

static void test_many_keys_survive_growth_and_removal(void **state)
{
	enum { N = 5000 };
	item *items = calloc(N, sizeof *items);
	cm_hmap m;
	(void)state;

	assert_non_null(items);
	assert_int_equal(cm_hmap_init(&m, 16), 0);
	for (int64_t i = 0; i < N; i++) {
		items[i].key = i * 7919 + 3;
		assert_int_equal(cm_hmap_insert(&m, &items[i].node, key_hash(items[i].key)), 0);
	}
	assert_int_equal(m.count, N);
	/* Grown by doubling, and kept at a load of at most one node per bucket (plus the last insert). */
	assert_true(m.nbuckets >= N - 1);
	assert_int_equal(m.nbuckets & (m.nbuckets - 1), 0);

	for (int64_t i = 0; i < N; i++) {
		item *it = find(&m, key_hash(items[i].key), items[i].key);
		if (it != &items[i]) fail_msg("key %lld not found after growth", (long long)items[i].key);
	}
	/* A key never inserted is not found. */
	assert_null(find(&m, key_hash(-1), -1));

	/* Remove the even ones: they go, the odd ones stay. */
	for (int64_t i = 0; i < N; i += 2) cm_hmap_remove(&m, &items[i].node);
	assert_int_equal(m.count, N / 2);
	for (int64_t i = 0; i < N; i++) {
		item *it = find(&m, key_hash(items[i].key), items[i].key);
		if (i % 2 == 0 && it != NULL) fail_msg("removed key %lld still found", (long long)items[i].key);
		if (i % 2 == 1 && it != &items[i]) fail_msg("kept key %lld lost", (long long)items[i].key);
	}
	for (int64_t i = 1; i < N; i += 2) cm_hmap_remove(&m, &items[i].node);
	assert_int_equal(m.count, 0);
	for (size_t b = 0; b < m.nbuckets; b++)
		if (m.buckets[b] != NULL) fail_msg("bucket %zu not empty after removing everything", b);

	cm_hmap_fini(&m);
	free(items);
}

static void test_nodes_with_one_hash_are_told_apart_by_the_predicate(void **state)
{
	enum { N = 40 };
	item items[N];
	cm_hmap m;
	const uint64_t h = 0x5eedULL;
	(void)state;

	assert_int_equal(cm_hmap_init(&m, 16), 0);
	for (int i = 0; i < N; i++) {
		items[i].key = 1000 + i;
		assert_int_equal(cm_hmap_insert(&m, &items[i].node, h), 0);
	}
	assert_int_equal(m.count, N);
	for (int i = 0; i < N; i++)
		if (find(&m, h, 1000 + i) != &items[i]) fail_msg("colliding key %d not found", 1000 + i);
	assert_null(find(&m, h, 999));
	/* The right key under another hash is not found: the hash is compared before the predicate. */
	assert_null(find(&m, h + 1, 1000));
	assert_null(find(&m, h + m.nbuckets, 1000));

	/* Remove from the middle, the first inserted and the last inserted of the chain. */
	static const int gone[] = {N / 2, 0, N - 1};
	for (size_t g = 0; g < NELEM(gone); g++) cm_hmap_remove(&m, &items[gone[g]].node);
	assert_int_equal(m.count, N - NELEM(gone));
	for (int i = 0; i < N; i++) {
		bool removed = i == N / 2 || i == 0 || i == N - 1;
		item *it = find(&m, h, 1000 + i);
		if (removed && it != NULL) fail_msg("removed colliding key %d still found", 1000 + i);
		if (!removed && it != &items[i]) fail_msg("colliding key %d lost after removals", 1000 + i);
	}
	cm_hmap_fini(&m);
}

static void test_reinserting_a_removed_node_finds_it_again(void **state)
{
	item it = {.key = 77};
	cm_hmap m;
	uint64_t h = key_hash(it.key);
	(void)state;

	assert_int_equal(cm_hmap_init(&m, 0), 0);
	assert_int_equal(cm_hmap_insert(&m, &it.node, h), 0);
	cm_hmap_remove(&m, &it.node);
	assert_null(find(&m, h, 77));
	assert_int_equal(cm_hmap_insert(&m, &it.node, h), 0);
	assert_ptr_equal(find(&m, h, 77), &it);
	assert_int_equal(m.count, 1);
	cm_hmap_fini(&m);
}

/* ---- the iterator and container-of ---- */

/* A caller struct with the node NOT first, so CM_CONTAINER_OF has an offset to undo. */
typedef struct deep {
	int64_t key;
	char pad[13];
	cm_hnode node;
	int seen;
} deep;

static void test_iterator_visits_every_node_once_and_tolerates_removing_the_current_one(void **state)
{
	enum { N = 300 };
	static deep items[N];
	cm_hmap m;
	cm_hmap_iter it;
	(void)state;

	assert_int_equal(cm_hmap_init(&m, 0), 0);
	assert_null(cm_hmap_first(&m, &it));
	for (int i = 0; i < N; i++) {
		items[i].key = i;
		items[i].seen = 0;
		(void)cm_hmap_insert(&m, &items[i].node, key_hash(i)); /* grows as it goes */
	}
	size_t visited = 0;
	for (cm_hnode *n = cm_hmap_first(&m, &it); n; n = cm_hmap_next(&it)) {
		deep *d = CM_CONTAINER_OF(n, deep, node);
		assert_ptr_equal(d, &items[d->key]);
		d->seen++;
		visited++;
	}
	assert_int_equal(visited, N);
	for (int i = 0; i < N; i++)
		if (items[i].seen != 1) fail_msg("item %d seen %d times", i, items[i].seen);

	/* Removing the node just returned (and scribbling on it, as a free would) loses none of the rest. */
	visited = 0;
	for (cm_hnode *n = cm_hmap_first(&m, &it); n; n = cm_hmap_next(&it)) {
		cm_hmap_remove(&m, n);
		n->next = (cm_hnode *)(void *)&m; /* garbage the iterator must not follow */
		visited++;
	}
	assert_int_equal(visited, N);
	assert_int_equal(m.count, 0);
	assert_null(cm_hmap_first(&m, &it));
	cm_hmap_fini(&m);
	assert_null(cm_hmap_first(&m, &it));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unseeded_hash_matches_the_siphash_2_4_reference_vectors),
		cmocka_unit_test(test_seeding_changes_the_key_and_the_hash_stays_deterministic),
		cmocka_unit_test(test_hash_depends_on_every_byte_and_on_the_length),
		cmocka_unit_test(test_init_rounds_the_bucket_count_up_to_a_power_of_two_of_at_least_16),
		cmocka_unit_test(test_empty_and_finished_tables_find_nothing),
		cmocka_unit_test(test_many_keys_survive_growth_and_removal),
		cmocka_unit_test(test_nodes_with_one_hash_are_told_apart_by_the_predicate),
		cmocka_unit_test(test_reinserting_a_removed_node_finds_it_again),
		cmocka_unit_test(test_iterator_visits_every_node_once_and_tolerates_removing_the_current_one),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
