/*
 * tests/unit/auth/test_cache.c — the principal cache (auth/cache.c), as a specification.
 *
 * Owns the cache's promises: entries are created once per hash, freshness ends exactly at the TTL or at
 * the token's own expiry (a JWT entry at its exp alone), an admitted request's trust is fresh, recheck or
 * dead, a sweep frees exactly the unused entries that are no longer fresh (oldest first, stopping at the
 * first young one), and an access change makes a user's entries stale. Moved here from test_auth.c so the
 * unit tests mirror the source tree. Most tests walk a table; a failing row names its input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/cache.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the cache ---- */

static void hash_of(const char *token, uint8_t h[AUTH_HASH_LEN])
{
	auth_sha256(token, strlen(token), h);
}

static auth_token *get(auth_cache *c, const char *token)
{
	uint8_t h[AUTH_HASH_LEN];
	hash_of(token, h);
	auth_token *t = auth_cache_get(c, h);
	assert_non_null(t);
	return t;
}

/* Is there an entry for this token already (without creating one)? */
static bool cached(auth_cache *c, const char *token)
{
	size_t before = auth_cache_size(c);
	auth_token *t = get(c, token);
	if (auth_cache_size(c) == before) return true;
	/* It was just created: nothing lost, it is NEW and unused, the next sweep takes it. */
	assert_int_equal(t->state, AUTH_TOKEN_NEW);
	return false;
}

static void test_cache_free_null_is_a_noop(void **state)
{
	(void)state;
	auth_cache_free(NULL);
}

static void test_cache_get_creates_a_new_entry_once_per_hash(void **state)
{
	auth_cache *c = auth_cache_new();
	uint8_t h[AUTH_HASH_LEN], h2[AUTH_HASH_LEN];
	(void)state;

	assert_non_null(c);
	assert_int_equal(auth_cache_size(c), 0);
	hash_of("tok-a", h);
	auth_token *a = auth_cache_get(c, h);
	assert_non_null(a);
	assert_int_equal(auth_cache_size(c), 1);
	assert_memory_equal(a->hash, h, AUTH_HASH_LEN);
	assert_int_equal(a->state, AUTH_TOKEN_NEW);
	assert_int_equal(a->users, 0);
	assert_true(TAILQ_EMPTY(&a->waiting));
	assert_false(a->in_batch);
	assert_true(a->expires_at_us == AUTH_NEVER);

	/* The same hash (another buffer) is the same entry. */
	memcpy(h2, h, sizeof h2);
	assert_ptr_equal(auth_cache_get(c, h2), a);
	assert_int_equal(auth_cache_size(c), 1);

	/* A hash differing in one bit is another entry. */
	h2[AUTH_HASH_LEN - 1] ^= 1;
	auth_token *b = auth_cache_get(c, h2);
	assert_non_null(b);
	assert_ptr_not_equal(b, a);
	assert_int_equal(auth_cache_size(c), 2);
	assert_ptr_equal(auth_cache_get(c, h), a);

	/* Many entries: each found again, none duplicated. */
	char name[32];
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof name, "t%d", i);
		(void)get(c, name);
	}
	assert_int_equal(auth_cache_size(c), 3002);
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof name, "t%d", i);
		if (!cached(c, name)) fail_msg("entry %s lost", name);
	}
	assert_int_equal(auth_cache_size(c), 3002);
	auth_cache_free(c);
}

static void test_token_fresh_until_ttl_and_until_its_own_expiry(void **state)
{
	/* Checked at 1000 ms, ttl 500 ms; wall clock in microseconds. */
	static const struct {
		const char *name;
		bool found;
		int64_t expires_us, now_ms, now_us, ttl_ms;
		bool fresh;
	} cases[] = {
		{"just checked", true, AUTH_NEVER, 1000, 0, 500, true},
		{"one ms before the ttl", true, AUTH_NEVER, 1499, 0, 500, true},
		{"at the ttl", true, AUTH_NEVER, 1500, 0, 500, false},
		{"past the ttl", true, AUTH_NEVER, 9000, 0, 500, false},
		{"zero ttl is never fresh", true, AUTH_NEVER, 1000, 0, 0, false},
		{"no expiry, far wall clock", true, AUTH_NEVER, 1000, INT64_MAX, 500, true},
		{"expiry in the future", true, 5000000, 1000, 4999999, 500, true},
		{"expiry now", true, 5000000, 1000, 5000000, 500, false},
		{"expiry in the past", true, 5000000, 1000, 6000000, 500, false},
		{"expiry in the future but ttl over", true, 5000000, 1500, 0, 500, false},
		{"not found", false, AUTH_NEVER, 1000, 0, 500, false},
		{"not found, the expiry given is ignored", false, 9000000, 1000, 0, 500, false},
	};
	(void)state;

	for (size_t i = 0; i < NELEM(cases); i++) {
		auth_cache *c = auth_cache_new();
		assert_non_null(c);
		auth_token *t = get(c, "tok");
		auth_token_set(c, t, cases[i].found, 42, cases[i].expires_us, 1000);
		bool f = auth_token_fresh(t, cases[i].now_ms, cases[i].now_us, cases[i].ttl_ms);
		if (f != cases[i].fresh) fail_msg("%s: fresh=%d, want %d", cases[i].name, f, cases[i].fresh);
		auth_cache_free(c);
	}
}

static void test_token_set_records_the_lookup(void **state)
{
	auth_cache *c = auth_cache_new();
	(void)state;

	assert_non_null(c);
	auth_token *t = get(c, "tok");
	assert_false(auth_token_fresh(t, 0, 0, 1000)); /* NEW */
	t->state = AUTH_TOKEN_LOOKING;
	assert_false(auth_token_fresh(t, 0, 0, 1000));

	auth_token_set(c, t, true, 42, 7000000, 100);
	assert_int_equal(t->state, AUTH_TOKEN_VALID);
	assert_int_equal(t->user_id, 42);
	assert_int_equal(t->expires_at_us, 7000000);
	assert_int_equal(t->checked_ms, 100);
	assert_true(auth_token_fresh(t, 100, 0, 1000));

	/* The token was revoked: the next lookup finds nothing and forgets the user and expiry. */
	auth_token_set(c, t, false, 42, 7000000, 200);
	assert_int_equal(t->state, AUTH_TOKEN_INVALID);
	assert_int_equal(t->user_id, 0);
	assert_true(t->expires_at_us == AUTH_NEVER);
	assert_int_equal(t->checked_ms, 200);
	assert_false(auth_token_fresh(t, 200, 0, 1000));
	assert_int_equal(auth_cache_size(c), 1);
	auth_cache_free(c);
}

/*
 * Sweep rule (cache.h): an entry goes when nobody uses it (no users, no waiter, not in a batch, no lookup
 * in flight) and it is no longer fresh by age — checked ttl or more ago, or never checked (NEW).
 */
static void test_sweep_frees_exactly_the_unused_entries_that_aged_out(void **state)
{
	enum { TTL = 1000, NOW = 10000 };
	static const struct {
		const char *token;
		int64_t checked; /* < 0: never set (NEW or LOOKING) */
		bool found;
		unsigned users;
		bool waiting, in_batch, looking;
		bool freed;
	} cases[] = {
		{"new unused", -1, false, 0, false, false, false, true},
		{"new, in a batch", -1, false, 0, false, true, false, false},
		{"new, waited on", -1, false, 0, true, false, false, false},
		{"new, with a user", -1, false, 1, false, false, false, false},
		{"lookup in flight", -1, false, 0, false, false, true, false},
		{"valid, long ago", 1000, true, 0, false, false, false, true},
		{"invalid, long ago", 2000, false, 0, false, false, false, true},
		{"valid, long ago, with users", 3000, true, 2, false, false, false, false},
		{"valid, long ago, waited on", 4000, true, 0, true, false, false, false},
		{"valid, long ago, in a batch", 5000, true, 0, false, true, false, false},
		{"valid, long ago, re-lookup in flight", 6000, true, 0, false, false, true, false},
		{"valid, exactly ttl ago", NOW - TTL, true, 0, false, false, false, true},
		{"invalid, exactly ttl ago", NOW - TTL, false, 0, false, false, false, true},
		{"valid, one ms under ttl", NOW - TTL + 1, true, 0, false, false, false, false},
		{"invalid, one ms under ttl", NOW - TTL + 1, false, 0, false, false, false, false},
		{"valid, just now", NOW, true, 0, false, false, false, false},
		{"invalid, just now", NOW, false, 0, false, false, false, false},
	};
	auth_token *ts[NELEM(cases)];
	auth_wait aw[NELEM(cases)];
	unsigned want_freed = 0;
	(void)state;

	auth_cache *c = auth_cache_new();
	assert_non_null(c);
	for (size_t i = 0; i < NELEM(cases); i++) ts[i] = get(c, cases[i].token);
	/* Lookups finish in the order they were sent, as with one connection. */
	for (size_t i = 0; i < NELEM(cases); i++)
		if (cases[i].checked >= 0) auth_token_set(c, ts[i], cases[i].found, 7, AUTH_NEVER, cases[i].checked);
	for (size_t i = 0; i < NELEM(cases); i++) {
		ts[i]->users = cases[i].users;
		ts[i]->in_batch = cases[i].in_batch;
		if (cases[i].looking) ts[i]->state = AUTH_TOKEN_LOOKING;
		if (cases[i].waiting) TAILQ_INSERT_TAIL(&ts[i]->waiting, &aw[i], link);
		want_freed += cases[i].freed;
	}

	unsigned freed = auth_cache_sweep(c, NOW, TTL);
	for (size_t i = 0; i < NELEM(cases); i++) {
		/* Only what the cache still holds may be touched: ts[i] may have been freed. */
		bool kept = cached(c, cases[i].token);
		if (kept) {
			auth_token *t = get(c, cases[i].token);
			if (cases[i].waiting) TAILQ_REMOVE(&t->waiting, &aw[i], link);
			t->users = 0;
		}
		if (kept == cases[i].freed)
			fail_msg("%s: %s, want %s", cases[i].token, kept ? "kept" : "freed", cases[i].freed ? "freed" : "kept");
	}
	assert_int_equal(freed, want_freed);
	auth_cache_free(c);
}

/* watch.c answers a token just found invalid without another lookup: the sweep must leave it for the ttl. */
static void test_sweep_keeps_a_just_invalidated_token_for_the_ttl(void **state)
{
	static const struct {
		bool found;
		int64_t now;
		unsigned freed;
	} cases[] = {
		{false, 10000, 0}, {false, 10999, 0}, {false, 11000, 1},
		{true, 10000, 0},  {true, 10999, 0},  {true, 11000, 1},
	};
	(void)state;

	for (size_t i = 0; i < NELEM(cases); i++) {
		auth_cache *c = auth_cache_new();
		assert_non_null(c);
		auth_token_set(c, get(c, "tok"), cases[i].found, 7, AUTH_NEVER, 10000);
		unsigned n = auth_cache_sweep(c, cases[i].now, 1000);
		if (n != cases[i].freed)
			fail_msg("%s token checked at 10000, sweep at %lld: freed %u, want %u", cases[i].found ? "valid" : "invalid",
			         (long long)cases[i].now, n, cases[i].freed);
		assert_int_equal(auth_cache_size(c), 1 - cases[i].freed);
		auth_cache_free(c);
	}
}

static void test_sweep_takes_an_entry_once_its_users_are_gone(void **state)
{
	auth_cache *c = auth_cache_new();
	(void)state;

	assert_non_null(c);
	auth_token *t = get(c, "tok");
	auth_token_set(c, t, true, 7, AUTH_NEVER, 0);
	t->users = 1;
	assert_int_equal(auth_cache_sweep(c, 5000, 1000), 0);
	assert_int_equal(auth_cache_size(c), 1);
	t->users = 0;
	assert_int_equal(auth_cache_sweep(c, 5000, 1000), 1);
	assert_int_equal(auth_cache_size(c), 0);
	/* Nothing left: sweeping again frees nothing. */
	assert_int_equal(auth_cache_sweep(c, 5000, 1000), 0);
	auth_cache_free(c);
}

static void test_sweep_frees_everything_old_in_a_large_cache(void **state)
{
	enum { N = 2000 };
	char name[32];
	auth_cache *c = auth_cache_new();
	(void)state;

	assert_non_null(c);
	/* Checked at 0..N-1 ms; with ttl 100 at now = N-1, all but the last 100 are old. */
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof name, "t%d", i);
		auth_token_set(c, get(c, name), i % 3 != 0, i, AUTH_NEVER, i);
	}
	assert_int_equal(auth_cache_sweep(c, N - 1, 100), N - 100);
	assert_int_equal(auth_cache_size(c), 100);
	for (int i = N - 100; i < N; i++) {
		snprintf(name, sizeof name, "t%d", i);
		if (!cached(c, name)) fail_msg("young entry %s was swept", name);
	}
	auth_cache_free(c);
}

/* A verified JWT's entry is fresh until its exp, whatever the TTL and whatever an access change says:
 * there is no row to look it up in (entitlement is re-read with the resource, not with the token). */
static void test_jwt_entry_is_fresh_until_its_exp_only(void **state)
{
	enum { TTL = 1000 };
	const int64_t exp_us = INT64_C(1700000300) * 1000000;
	(void)state;
	auth_cache *c = auth_cache_new();
	assert_non_null(c);
	auth_token *t = get(c, "jwt");
	auth_token_set_jwt(c, t, 42, exp_us, 500);
	assert_true(t->jwt);
	assert_int_equal(t->state, AUTH_TOKEN_VALID);
	assert_int_equal(t->user_id, 42);
	assert_true(auth_token_fresh(t, 500, exp_us - 1, TTL));
	assert_true(auth_token_fresh(t, 500 + 10 * TTL, exp_us - 1, TTL)); /* long past the TTL */
	assert_int_equal(auth_cache_invalidate_user(c, 42), 1);
	assert_true(auth_token_fresh(t, 600, exp_us - 1, TTL)); /* an access change does not touch it */
	assert_false(auth_token_fresh(t, 600, exp_us, TTL));   /* exp is the end */
	assert_false(auth_token_fresh(t, 600, exp_us + 1, TTL + 60000));
	auth_cache_free(c);
}

static void test_invalidate_user_makes_only_that_users_entries_stale(void **state)
{
	enum { TTL = 1000, NOW = 500 };
	static const struct {
		int64_t invalidate;
		unsigned touched;
		bool fresh_a1, fresh_b1, fresh_c2;
	} cases[] = {
		{1, 2, false, false, true},
		{2, 1, true, true, false},
		{99, 0, true, true, true},
		{0, 0, true, true, true}, /* an invalid entry (user 0) is not a user-0 entry */
		{-1, 3, false, false, false},
		{-5, 3, false, false, false},
	};
	(void)state;

	for (size_t i = 0; i < NELEM(cases); i++) {
		auth_cache *c = auth_cache_new();
		assert_non_null(c);
		auth_token *a1 = get(c, "a1"), *b1 = get(c, "b1"), *c2 = get(c, "c2"), *bad = get(c, "bad");
		(void)get(c, "new");
		auth_token_set(c, a1, true, 1, AUTH_NEVER, NOW);
		auth_token_set(c, b1, true, 1, AUTH_NEVER, NOW);
		auth_token_set(c, c2, true, 2, AUTH_NEVER, NOW);
		auth_token_set(c, bad, false, 0, AUTH_NEVER, NOW);

		unsigned n = auth_cache_invalidate_user(c, cases[i].invalidate);
		if (n != cases[i].touched)
			fail_msg("invalidate(%lld): touched %u, want %u", (long long)cases[i].invalidate, n, cases[i].touched);
		bool fa = auth_token_fresh(a1, NOW, 0, TTL), fb = auth_token_fresh(b1, NOW, 0, TTL),
		     fc = auth_token_fresh(c2, NOW, 0, TTL);
		if (fa != cases[i].fresh_a1 || fb != cases[i].fresh_b1 || fc != cases[i].fresh_c2)
			fail_msg("invalidate(%lld): fresh a1=%d b1=%d c2=%d, want %d %d %d", (long long)cases[i].invalidate, fa, fb,
			         fc, cases[i].fresh_a1, cases[i].fresh_b1, cases[i].fresh_c2);
		/* Stale is not gone: the entry (and its user) stays until a lookup or a sweep. */
		assert_int_equal(auth_cache_size(c), 5);
		assert_int_equal(a1->state, AUTH_TOKEN_VALID);
		assert_int_equal(a1->user_id, 1);
		/* Even a generous grace period does not make it fresh again. */
		if (!cases[i].fresh_a1) assert_false(auth_token_fresh(a1, NOW, 0, TTL + 60000));
		/* A new lookup makes it fresh again. */
		auth_token_set(c, a1, true, 1, AUTH_NEVER, NOW);
		assert_true(auth_token_fresh(a1, NOW, 0, TTL));
		auth_cache_free(c);
	}
}

static void test_invalidated_unused_entries_are_swept(void **state)
{
	auth_cache *c = auth_cache_new();
	(void)state;

	assert_non_null(c);
	auth_token *a = get(c, "a"), *b = get(c, "b");
	auth_token_set(c, a, true, 1, AUTH_NEVER, 100);
	auth_token_set(c, b, true, 2, AUTH_NEVER, 100);
	assert_int_equal(auth_cache_sweep(c, 200, 1000), 0);
	assert_int_equal(auth_cache_invalidate_user(c, -1), 2);
	assert_int_equal(auth_cache_sweep(c, 200, 1000), 2);
	assert_int_equal(auth_cache_size(c), 0);
	auth_cache_free(c);
}

static void test_cache_free_releases_entries_in_every_state(void **state)
{
	auth_cache *c = auth_cache_new();
	(void)state;

	/* Run under ASan: a leaked entry fails the run. */
	assert_non_null(c);
	(void)get(c, "new");
	get(c, "looking")->state = AUTH_TOKEN_LOOKING;
	auth_token_set(c, get(c, "valid"), true, 1, AUTH_NEVER, 0);
	auth_token_set(c, get(c, "invalid"), false, 0, AUTH_NEVER, 0);
	get(c, "used")->users = 3;
	assert_int_equal(auth_cache_size(c), 5);
	auth_cache_free(c);
}

static void test_trust_of_an_admitted_request_fresh_recheck_or_dead(void **state)
{
	/* What a held request may be given: checked at 1000 ms, ttl 500 ms, wall clock in microseconds.
	 * Only a fresh entry lets new state through; a stale, failed or in-flight one is looked up again;
	 * an invalid or expired one is a 401 whatever its age. */
	static const struct {
		const char *name;
		auth_token_state state; /* VALID/INVALID through auth_token_set; NEW/LOOKING set by hand */
		int64_t expires_us, now_ms, now_us;
		auth_trust want;
	} cases[] = {
		{"valid, just checked", AUTH_TOKEN_VALID, AUTH_NEVER, 1000, 0, AUTH_TRUST_FRESH},
		{"valid, one ms before the ttl", AUTH_TOKEN_VALID, AUTH_NEVER, 1499, 0, AUTH_TRUST_FRESH},
		{"valid, at the ttl", AUTH_TOKEN_VALID, AUTH_NEVER, 1500, 0, AUTH_TRUST_RECHECK},
		{"valid, long past the ttl", AUTH_TOKEN_VALID, AUTH_NEVER, 3600000, 0, AUTH_TRUST_RECHECK},
		{"valid, expiry ahead, ttl over", AUTH_TOKEN_VALID, 5000000, 9000, 4000000, AUTH_TRUST_RECHECK},
		{"valid, expired, just checked", AUTH_TOKEN_VALID, 5000000, 1000, 5000000, AUTH_TRUST_DEAD},
		{"valid, expired, ttl over", AUTH_TOKEN_VALID, 5000000, 9000, 6000000, AUTH_TRUST_DEAD},
		{"invalid, just checked", AUTH_TOKEN_INVALID, AUTH_NEVER, 1000, 0, AUTH_TRUST_DEAD},
		{"invalid, ttl over", AUTH_TOKEN_INVALID, AUTH_NEVER, 9000, 0, AUTH_TRUST_DEAD},
		{"lookup in flight", AUTH_TOKEN_LOOKING, AUTH_NEVER, 1000, 0, AUTH_TRUST_RECHECK},
		{"lookup in flight, expired", AUTH_TOKEN_LOOKING, 5000000, 1000, 6000000, AUTH_TRUST_DEAD},
		{"never looked up (a failed lookup)", AUTH_TOKEN_NEW, AUTH_NEVER, 1000, 0, AUTH_TRUST_RECHECK},
	};
	(void)state;

	for (size_t i = 0; i < NELEM(cases); i++) {
		auth_cache *c = auth_cache_new();
		assert_non_null(c);
		auth_token *t = get(c, "tok");
		auth_token_set(c, t, cases[i].state != AUTH_TOKEN_INVALID, 42, cases[i].expires_us, 1000);
		if (cases[i].state == AUTH_TOKEN_LOOKING || cases[i].state == AUTH_TOKEN_NEW) t->state = cases[i].state;
		auth_trust got = auth_token_trust(t, cases[i].now_ms, cases[i].now_us, 500);
		if (got != cases[i].want) fail_msg("%s: trust=%d, want %d", cases[i].name, (int)got, (int)cases[i].want);
		/* Fresh is exactly auth_token_fresh: one predicate decides it. */
		if ((got == AUTH_TRUST_FRESH) != auth_token_fresh(t, cases[i].now_ms, cases[i].now_us, 500))
			fail_msg("%s: trust and auth_token_fresh disagree", cases[i].name);
		auth_cache_free(c);
	}

	/* An access hint makes a valid entry stale at once: it is looked up again before new state. */
	auth_cache *c = auth_cache_new();
	assert_non_null(c);
	auth_token *t = get(c, "tok");
	auth_token_set(c, t, true, 42, AUTH_NEVER, 1000);
	assert_int_equal(auth_token_trust(t, 1001, 0, 500), AUTH_TRUST_FRESH);
	assert_int_equal(auth_cache_invalidate_user(c, 42), 1);
	assert_int_equal(auth_token_trust(t, 1001, 0, 500), AUTH_TRUST_RECHECK);
	auth_cache_free(c);
}

static void test_checked_since_means_a_live_lookup_sent_at_or_after_the_ask(void **state)
{
	auth_cache *c = auth_cache_new();
	(void)state;
	assert_non_null(c);
	auth_token *t = get(c, "tok");
	assert_false(auth_token_checked_since(t, 0)); /* NEW: never checked */
	auth_token_set(c, t, true, 42, AUTH_NEVER, 1000);
	assert_true(auth_token_checked_since(t, 999));
	assert_true(auth_token_checked_since(t, 1000));
	assert_false(auth_token_checked_since(t, 1001)); /* sent before the ask: not made for it */
	t->state = AUTH_TOKEN_LOOKING;
	assert_false(auth_token_checked_since(t, 999)); /* a lookup in flight is no verdict */
	t->state = AUTH_TOKEN_VALID;
	assert_int_equal(auth_cache_invalidate_user(c, 42), 1);
	assert_false(auth_token_checked_since(t, 999)); /* an access hint voids it */
	auth_token_set(c, t, false, 0, AUTH_NEVER, 2000);
	assert_false(auth_token_checked_since(t, 999)); /* found revoked */
	auth_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_free_null_is_a_noop),
		cmocka_unit_test(test_cache_get_creates_a_new_entry_once_per_hash),
		cmocka_unit_test(test_token_fresh_until_ttl_and_until_its_own_expiry),
		cmocka_unit_test(test_token_set_records_the_lookup),
		cmocka_unit_test(test_sweep_frees_exactly_the_unused_entries_that_aged_out),
		cmocka_unit_test(test_sweep_keeps_a_just_invalidated_token_for_the_ttl),
		cmocka_unit_test(test_sweep_takes_an_entry_once_its_users_are_gone),
		cmocka_unit_test(test_sweep_frees_everything_old_in_a_large_cache),
		cmocka_unit_test(test_jwt_entry_is_fresh_until_its_exp_only),
		cmocka_unit_test(test_invalidate_user_makes_only_that_users_entries_stale),
		cmocka_unit_test(test_invalidated_unused_entries_are_swept),
		cmocka_unit_test(test_cache_free_releases_entries_in_every_state),
		cmocka_unit_test(test_trust_of_an_admitted_request_fresh_recheck_or_dead),
		cmocka_unit_test(test_checked_since_means_a_live_lookup_sent_at_or_after_the_ask),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
