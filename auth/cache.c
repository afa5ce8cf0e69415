/*
 * auth/cache.c — see cache.h. Entries live in a keyed hash table and on one age list ordered by
 * checked_ms (every check moves the entry to the tail), so sweeping expired entries walks from the head
 * and stops at the first young one.
 */
#include "auth/cache.h"

#include <stdlib.h>
#include <string.h>

struct auth_cache {
	cm_hmap map;
	TAILQ_HEAD(, auth_token) by_age;
};

auth_cache *auth_cache_new(void)
{
	auth_cache *c = calloc(1, sizeof *c);
	if (c == NULL) return NULL;
	if (cm_hmap_init(&c->map, 1024) != 0) {
		free(c);
		return NULL;
	}
	TAILQ_INIT(&c->by_age);
	return c;
}

void auth_cache_free(auth_cache *c)
{
	auth_token *t;
	if (c == NULL) return;
	while ((t = TAILQ_FIRST(&c->by_age)) != NULL) {
		TAILQ_REMOVE(&c->by_age, t, age_link);
		free(t);
	}
	cm_hmap_fini(&c->map);
	free(c);
}

static bool token_eq(const cm_hnode *n, const void *key)
{
	return memcmp(((const auth_token *)(const void *)n)->hash, key, AUTH_HASH_LEN) == 0;
}

auth_token *auth_cache_find(auth_cache *c, const uint8_t hash[AUTH_HASH_LEN])
{
	return (auth_token *)(void *)cm_hmap_find(&c->map, cm_hash_bytes(hash, AUTH_HASH_LEN), token_eq, hash);
}

auth_token *auth_cache_get(auth_cache *c, const uint8_t hash[AUTH_HASH_LEN])
{
	uint64_t h = cm_hash_bytes(hash, AUTH_HASH_LEN);
	auth_token *t = (auth_token *)(void *)cm_hmap_find(&c->map, h, token_eq, hash);
	if (t) return t;
	t = calloc(1, sizeof *t);
	if (t == NULL) return NULL;
	memcpy(t->hash, hash, AUTH_HASH_LEN);
	t->state = AUTH_TOKEN_NEW;
	t->expires_at_us = AUTH_NEVER;
	TAILQ_INIT(&t->waiting);
	(void)cm_hmap_insert(&c->map, &t->node, h);
	/* A new entry has never been checked: it sits at the old end and goes once unused. */
	TAILQ_INSERT_HEAD(&c->by_age, t, age_link);
	return t;
}

bool auth_token_fresh(const auth_token *t, int64_t now_ms, int64_t now_us, int64_t ttl_ms)
{
	if (t->state != AUTH_TOKEN_VALID) return false;
	if (t->jwt) return t->expires_at_us > now_us;
	if (now_ms - t->checked_ms >= ttl_ms) return false;
	if (t->expires_at_us != AUTH_NEVER && t->expires_at_us <= now_us) return false;
	return true;
}

auth_trust auth_token_trust(const auth_token *t, int64_t now_ms, int64_t now_us, int64_t ttl_ms)
{
	if (auth_token_fresh(t, now_ms, now_us, ttl_ms)) return AUTH_TRUST_FRESH;
	if (t->state == AUTH_TOKEN_INVALID) return AUTH_TRUST_DEAD;
	if (t->expires_at_us != AUTH_NEVER && t->expires_at_us <= now_us) return AUTH_TRUST_DEAD;
	return AUTH_TRUST_RECHECK;
}

bool auth_token_checked_since(const auth_token *t, int64_t since_ms)
{
	return t->state == AUTH_TOKEN_VALID && t->checked_ms >= since_ms;
}

void auth_token_set(auth_cache *c, auth_token *t, bool found, int64_t user_id, int64_t expires_at_us,
                    int64_t checked_ms)
{
	t->state = found ? AUTH_TOKEN_VALID : AUTH_TOKEN_INVALID;
	t->user_id = found ? user_id : 0;
	t->expires_at_us = found ? expires_at_us : AUTH_NEVER;
	t->checked_ms = checked_ms;
	TAILQ_REMOVE(&c->by_age, t, age_link);
	TAILQ_INSERT_TAIL(&c->by_age, t, age_link);
}

void auth_token_set_jwt(auth_cache *c, auth_token *t, int64_t user_id, int64_t expires_at_us, int64_t now_ms)
{
	t->jwt = true;
	auth_token_set(c, t, true, user_id, expires_at_us, now_ms);
}

unsigned auth_cache_sweep(auth_cache *c, int64_t now_ms, int64_t ttl_ms)
{
	unsigned freed = 0;
	auth_token *t = TAILQ_FIRST(&c->by_age), *next;
	for (; t != NULL; t = next) {
		next = TAILQ_NEXT(t, age_link);
		/* A NEW entry was never checked; any other is old once it is no longer fresh by age. An INVALID
		 * one is kept like a VALID one: it is the negative cache that spares a lookup per bad request. */
		bool old = t->state == AUTH_TOKEN_NEW || now_ms - t->checked_ms >= ttl_ms;
		if (!old) break; /* the rest were checked later */
		if (t->users != 0 || !TAILQ_EMPTY(&t->waiting) || t->in_batch || t->state == AUTH_TOKEN_LOOKING) continue;
		TAILQ_REMOVE(&c->by_age, t, age_link);
		cm_hmap_remove(&c->map, &t->node);
		free(t);
		freed++;
	}
	return freed;
}

unsigned auth_cache_invalidate_user(auth_cache *c, int64_t user_id)
{
	unsigned n = 0;
	auth_token *t;
	TAILQ_FOREACH(t, &c->by_age, age_link) {
		if (t->state == AUTH_TOKEN_VALID && (user_id < 0 || t->user_id == user_id)) {
			t->checked_ms = INT64_MIN / 2; /* stale: the next use looks it up again */
			n++;
		}
	}
	return n;
}

size_t auth_cache_size(const auth_cache *c)
{
	return c->map.count;
}
