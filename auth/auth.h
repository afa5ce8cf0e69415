/*
 * auth/auth.h — credentials: where the token is, and what it hashes to.
 *
 * A request proves who it is with `Authorization: Bearer <token>` or, only when there is no
 * Authorization header at all, with the configured cookie. The token is an opaque string; the database
 * stores SHA-256(token bytes), so that is all the gateway ever keeps or compares. Tokens are never
 * logged: auth_hash_prefix() gives the short, non-reversible handle that logs may carry.
 */
#ifndef POLLGATE_AUTH_AUTH_H
#define POLLGATE_AUTH_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_HASH_LEN 32
#define AUTH_TOKEN_MAX 4096 /* longer credentials are refused as malformed */

typedef enum {
	AUTH_CRED_NONE = 0, /* neither header nor cookie: 401 */
	AUTH_CRED_BAD = 1,  /* present but not usable (wrong scheme, empty, junk): 401 */
	AUTH_CRED_OK = 2,
} auth_cred_status;

/* Find the credential. `authorization` and `cookie` are the raw header values or NULL; `cookie_name`
 * the configured cookie. On AUTH_CRED_OK, *tok and *toklen point into one of the inputs (borrowed). */
auth_cred_status auth_extract(const char *authorization, const char *cookie, const char *cookie_name,
                              const char **tok, size_t *toklen);

/* SHA-256 of the token bytes. */
void auth_sha256(const void *data, size_t len, uint8_t out[AUTH_HASH_LEN]);

/* Lower-case hex of a hash: out must hold 2*AUTH_HASH_LEN+1 bytes. */
void auth_hash_hex(const uint8_t h[AUTH_HASH_LEN], char *out);

/* The first 12 hex digits of the hash, for logs ("tok=3f2a9c01b7de"). out must hold 13 bytes. */
void auth_hash_prefix(const uint8_t h[AUTH_HASH_LEN], char out[13]);

#endif
