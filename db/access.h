/*
 * db/access.h — who may see what, decided in PostgreSQL: the entitlement that every resource read
 * decides in the same statement, and the token lookup that turns a token hash into a user; and how both
 * are batched, so one query answers any number of resources (or tokens) however many browsers wait on them.
 *
 * The runs and packs statements check, per resource, the users the caller names, before the row's payload
 * is read: a resource none of the named users may see comes back as no row at all, exactly like a missing
 * one, unless the caller keeps it (it has requests of users already found entitled, whose verdict it still
 * trusts). So a forbidden resource costs what a missing one costs, and nothing of it reaches the gateway
 * to be parsed, rendered or kept. Each row says which of the named users may see it ("{5,6}", walked with
 * db_each_id); the rest of the row is parsed by db/queries.h, which knows their columns.
 *
 *   runs:   $1 bigint[] of run ids, $2 text[] of user-id arrays (one "{u1,u2}" per run id),
 *           $3 bool[]: keep the row whoever of the named users is entitled      (db_batch_params)
 *   packs:  $1 bigint[] of tenant ids, $2 text[] of user-id arrays, $3 bool[]   (db_batch_params)
 *   tokens: $1 text[] of hex SHA-256 token hashes                               (db_token_batch)
 *
 * A token row names a live token only: not revoked, and not expired at the statement's time. Its
 * expires_at is NULL when the token never expires (or is stored as infinity; -infinity never passes the
 * expiry filter), so one such row never fails the batch it is read in.
 *
 * The parameters are array literals built here and passed as parameters: no SQL is built from strings.
 */
#ifndef POLLGATE_DB_ACCESS_H
#define POLLGATE_DB_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "db/queries.h"

#define DB_TOKEN_HASH_LEN 32 /* a token is looked up by the SHA-256 of its bytes */

extern const char db_sql_runs[];
extern const char db_sql_packs[];
extern const char db_sql_tokens[];

/* ---- entitlement batching: the $1/$2/$3 of runs and packs ---- */

/* Growing array literals: ids "{1,2}", users {"{5,6}","{7}"} and keep "{t,f}". */
typedef struct db_batch_params {
	char *ids;   /* owned, NUL-terminated */
	char *users; /* owned, NUL-terminated */
	char *keep;  /* owned, NUL-terminated */
	size_t ids_len, ids_cap, users_len, users_cap, keep_len, keep_cap;
	size_t count;
} db_batch_params;

void db_batch_params_init(db_batch_params *p);
void db_batch_params_fini(db_batch_params *p);
/* Add one resource id and the users to check for it; `keep`: return its row even when none of them is
 * entitled (the caller has entitled requests on it already). Returns 0, or -1 on allocation failure. */
int db_batch_params_add(db_batch_params *p, int64_t id, const int64_t *users, size_t n_users, bool keep)
	__attribute__((warn_unused_result));
/* Close the literals; returns 0 or -1. After this, ids/users/keep are the three parameter strings. */
int db_batch_params_finish(db_batch_params *p) __attribute__((warn_unused_result));

/* Walk the entitled users of a runs or packs row, a bigint array literal "{1,2,3}" (or "{}"), calling fn
 * for each. Returns the number of users, or -1 if the text is not such a literal. */
int db_each_id(const char *text, void (*fn)(void *arg, int64_t id), void *arg);

/* ---- the token lookup and its batching: the $1 of tokens ---- */

/* A growing text[] literal of lower-case hex hashes: "{h1,h2}". */
typedef struct db_token_batch {
	char *lit; /* owned, NUL-terminated; the parameter string after finish */
	size_t len, cap;
	size_t count;
} db_token_batch;

void db_token_batch_init(db_token_batch *t);
void db_token_batch_fini(db_token_batch *t);
/* Add one token hash (read, not kept). Returns 0, or -1 on allocation failure. */
int db_token_batch_add(db_token_batch *t, const uint8_t hash[DB_TOKEN_HASH_LEN]) __attribute__((warn_unused_result));
/* Close the literal; returns 0 or -1. After this, lit is the parameter string. */
int db_token_batch_finish(db_token_batch *t) __attribute__((warn_unused_result));

typedef struct db_token_row {
	uint8_t hash[DB_TOKEN_HASH_LEN];
	int64_t user_id;
	int64_t expires_at; /* microseconds since the epoch; DB_NULL when the token does not expire */
} db_token_row;

/* Parse row `i` of a tokens result. Return 0, or -1 with a one-line reason in err (the row must then be
 * ignored). */
int db_parse_token_row(const PGresult *res, int i, db_token_row *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
