/*
 * db/queries.h — the SQL pollgate runs, and the checked parsing of what comes back.
 *
 * Three statements, each batched: one query answers any number of resources (or tokens), however many
 * browsers wait on them. Entitlement is decided in the same statement as the read, for the users the
 * caller names per resource, and before the row's payload is read: a resource none of the named users
 * may see comes back as no row at all, exactly like a missing one, unless the caller keeps it (it has
 * requests of users already found entitled, whose verdict it still trusts). So a forbidden resource costs
 * what a missing one costs, and nothing of it reaches the gateway to be parsed, rendered or kept.
 *
 *   runs:   $1 bigint[] of run ids, $2 text[] of user-id arrays (one "{u1,u2}" per run id),
 *           $3 bool[]: keep the row whoever of the named users is entitled
 *   packs:  $1 bigint[] of tenant ids, $2 text[] of user-id arrays, $3 bool[] (as for runs)
 *   tokens: $1 text[] of hex SHA-256 token hashes
 *
 * A timestamp PostgreSQL stores as infinity or -infinity has no microsecond value: it comes back as NULL
 * (for a token's expires_at: never expires; -infinity never passes the expiry filter), so one such row
 * never fails the batch it is read in.
 *
 * Rows are parsed into plain structs whose strings point into the PGresult (borrowed: valid while the
 * result is). Every field is validated: a row that does not parse is reported, never half-used.
 */
#ifndef POLLGATE_DB_QUERIES_H
#define POLLGATE_DB_QUERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#define DB_NULL INT64_MIN /* SQL NULL in a nullable bigint / timestamp (microseconds since epoch) */

extern const char db_sql_runs[];
extern const char db_sql_packs[];
extern const char db_sql_tokens[];

/* Growing array literals for $1/$2/$3: ids "{1,2}", users {"{5,6}","{7}"} and keep "{t,f}". */
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

typedef struct db_run_row {
	int64_t id, workspace_id, tenant_id;
	const char *type, *status, *outcome, *summary_counts, *failure_summary;
	int64_t created_at, started_at, completed_at;
	int64_t now;           /* the database clock at the read, microseconds */
	const char *entitled;  /* "{5,6}": which of the named users may see it */
} db_run_row;

typedef struct db_pack_row {
	int64_t tenant_id; /* the tenant asked for (always set) */
	bool present;      /* false: the tenant has no review pack */
	int64_t id, workspace_id, operation_run_id, file_size;
	const char *status;
	int64_t generated_at, expires_at, created_at, updated_at;
	int64_t now;
	const char *entitled;
} db_pack_row;

typedef struct db_token_row {
	uint8_t hash[32];
	int64_t user_id;
	int64_t expires_at; /* DB_NULL when the token does not expire */
} db_token_row;

/* Parse row `i`. Return 0, or -1 with a one-line reason in err (the row must then be ignored). */
int db_parse_run_row(const PGresult *res, int i, db_run_row *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
int db_parse_pack_row(const PGresult *res, int i, db_pack_row *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
int db_parse_token_row(const PGresult *res, int i, db_token_row *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Parse a bigint array literal "{1,2,3}" (or "{}"), calling fn for each element. Returns the number of
 * elements, or -1 if the text is not such a literal. */
int db_each_id(const char *text, void (*fn)(void *arg, int64_t id), void *arg);

#endif
