/*
 * auth/cache.h — the principal cache: token hash -> user, with a bounded TTL.
 *
 * Each entry is one token hash in one of four states: NEW (never looked up), LOOKING (a lookup is in
 * flight), VALID (maps to a user until checked_ms + ttl, and never past the token's own expiry) and
 * INVALID (looked up, no live row). Requests that arrive while a lookup is in flight queue on the entry
 * (an intrusive auth_wait node), so a burst of requests with one token costs one lookup.
 * The caller owns the batching and the SQL; this module owns the entries, their lifetime and the TTL.
 * Entries no longer used are swept oldest-first, so a sweep touches only what it removes.
 */
#ifndef POLLGATE_AUTH_CACHE_H
#define POLLGATE_AUTH_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "auth/auth.h"
#include "common/hmap.h"

#define AUTH_NEVER INT64_MIN /* a token without expiry */

typedef enum { AUTH_TOKEN_NEW, AUTH_TOKEN_LOOKING, AUTH_TOKEN_VALID, AUTH_TOKEN_INVALID } auth_token_state;

/* Embedded in whoever waits for a lookup (the gateway's waiter). */
typedef struct auth_wait {
	TAILQ_ENTRY(auth_wait) link;
} auth_wait;
TAILQ_HEAD(auth_wait_list, auth_wait);

typedef struct auth_token {
	cm_hnode node;
	uint8_t hash[AUTH_HASH_LEN];
	auth_token_state state;
	int64_t user_id;
	int64_t expires_at_us; /* wall clock, microseconds; AUTH_NEVER */
	int64_t checked_ms;    /* monotonic ms when the lookup that validated it was sent */
	unsigned users;        /* requests currently holding a reference (pending or held) */
	struct auth_wait_list waiting;
	TAILQ_ENTRY(auth_token) age_link; /* in the cache's age list, least recently checked first */
	TAILQ_ENTRY(auth_token) batch_link;
	bool in_batch;
	bool jwt; /* a verified signed token: VALID until expires_at_us, never looked up in SQL */
} auth_token;

typedef struct auth_cache auth_cache;

auth_cache *auth_cache_new(void) __attribute__((warn_unused_result));
void auth_cache_free(auth_cache *c); /* frees every entry; waiters must have been detached */

/* The entry for this hash, created NEW if absent. NULL only on allocation failure. */
auth_token *auth_cache_get(auth_cache *c, const uint8_t hash[AUTH_HASH_LEN]);

/* The entry for this hash, or NULL (never creates one). */
auth_token *auth_cache_find(auth_cache *c, const uint8_t hash[AUTH_HASH_LEN]);

/* Is the entry usable now without a lookup? (VALID, checked within ttl_ms, token not expired; a JWT entry
 * is fresh until its exp whatever ttl_ms says: its signature, not a row, vouches for it.) */
bool auth_token_fresh(const auth_token *t, int64_t now_ms, int64_t now_us, int64_t ttl_ms);

/* What a request already admitted on this entry may be given now (a held request owed new state):
 *   AUTH_TRUST_FRESH    the entry is fresh (auth_token_fresh): answer with new state;
 *   AUTH_TRUST_DEAD     found invalid, or past its own expiry: 401, no lookup can change that;
 *   AUTH_TRUST_RECHECK  anything else (checked longer than ttl_ms ago, a lookup in flight or failed):
 *                       look it up again first.
 * Freshness itself is decided by auth_token_fresh alone, so an entry that needs no lookup (one verified
 * locally, valid until its expiry) only has to say so there. */
typedef enum { AUTH_TRUST_FRESH, AUTH_TRUST_RECHECK, AUTH_TRUST_DEAD } auth_trust;
auth_trust auth_token_trust(const auth_token *t, int64_t now_ms, int64_t now_us, int64_t ttl_ms);

/* Was the entry found valid by a lookup sent at or after since_ms (and not made stale since)? A request
 * that asked for a re-check at since_ms may rely on that lookup whatever the ttl. */
bool auth_token_checked_since(const auth_token *t, int64_t since_ms);

/* Record a finished lookup: found (user, expiry) or not. Moves the entry to the young end. */
void auth_token_set(auth_cache *c, auth_token *t, bool found, int64_t user_id, int64_t expires_at_us,
                    int64_t checked_ms);

/* Record a JWT just verified (by auth/jwt.c): VALID for user_id until expires_at_us, marked jwt so that
 * nothing sends it to a SQL lookup. Moves the entry to the young end. */
void auth_token_set_jwt(auth_cache *c, auth_token *t, int64_t user_id, int64_t expires_at_us, int64_t now_ms);

/* Drop every entry that has no users, nobody waiting, is not in a batch and was checked before
 * now_ms - ttl_ms. Returns how many were freed. */
unsigned auth_cache_sweep(auth_cache *c, int64_t now_ms, int64_t ttl_ms);

/* Invalidate every entry of one user (access changed) — or of all users when user_id < 0 — so the next
 * use looks it up again. Returns how many entries were touched. */
unsigned auth_cache_invalidate_user(auth_cache *c, int64_t user_id);

size_t auth_cache_size(const auth_cache *c);

#endif
