/*
 * auth/jwt.h — signed tokens (JWT, RFC 7519, compact JWS of RFC 7515) verified locally, so an application
 * can mint credentials without writing rows.
 *
 * One key decides one algorithm: an HMAC secret (the key file's bytes, at least 32) allows only HS256, an
 * RSA public key (PEM, at least 2048 bits) only RS256, an EC public key on P-256 only ES256. The token's
 * `alg` header must name exactly that algorithm, so a token cannot pick how it is checked (no `none`, no
 * HS256 made with the bytes of a public key). The signature is checked before the claims are parsed;
 * then `exp` (required), `nbf`, `aud`, `iss` and `sub` (the user id, a positive 64-bit integer). Every
 * refusal comes with a short reason for a debug log; no reason ever contains the token or a claim value.
 * Memory is bounded by AUTH_JWT_MAX: longer tokens are refused before anything is decoded.
 * Uses libcrypto for the signatures and jansson for the JSON; no state outside the key object.
 */
#ifndef POLLGATE_AUTH_JWT_H
#define POLLGATE_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_JWT_MAX 4096           /* bytes of a whole token */
#define AUTH_JWT_KEY_FILE_MAX 65536 /* bytes of a key file */
#define AUTH_JWT_SECRET_MIN 32      /* HS256 secret: RFC 7518 §3.2 asks for a key as long as the hash */
#define AUTH_JWT_RSA_MIN_BITS 2048

typedef enum { AUTH_JWT_HS256, AUTH_JWT_RS256, AUTH_JWT_ES256 } auth_jwt_alg;

typedef struct auth_jwt_key auth_jwt_key;

/* What the configuration asks of every token. Strings are borrowed; NULL or "" means not checked
 * (but a token that carries `aud` is refused when no audience is configured: RFC 7519 §4.1.3). */
typedef struct {
	const char *audience;
	const char *issuer;
	int64_t leeway_s; /* clock skew allowed on exp and nbf, >= 0 */
} auth_jwt_rules;

typedef struct {
	int64_t user_id; /* sub, > 0 */
	int64_t exp_us;  /* exp as wall-clock microseconds since the epoch */
} auth_jwt_claims;

/* Read a key file: a PEM public key (RSA or EC P-256), else the file's bytes as an HS256 secret. The
 * file must be a regular file of at most AUTH_JWT_KEY_FILE_MAX bytes. NULL on error with a message in
 * err (naming the problem, never the key material). */
auth_jwt_key *auth_jwt_key_load(const char *path, char *err, size_t errlen) __attribute__((warn_unused_result));

/* The same from bytes in memory (tests, fuzzing). */
auth_jwt_key *auth_jwt_key_from_mem(const void *buf, size_t len, char *err, size_t errlen)
	__attribute__((warn_unused_result));

void auth_jwt_key_free(auth_jwt_key *k); /* NULL is a no-op; an HMAC secret is wiped */

auth_jwt_alg auth_jwt_key_alg(const auth_jwt_key *k);
const char *auth_jwt_alg_name(auth_jwt_alg a); /* "HS256", "RS256", "ES256" */

/* Does this credential have the shape of a compact JWS: exactly two dots and a non-empty first segment?
 * Such a credential is verified as a JWT when a key is configured; anything else is an opaque token. */
bool auth_jwt_looks(const char *tok, size_t len);

/* Verify tok[0..len) with key k against rules at wall-clock time now_us. 0 and *out filled when the token
 * is good; -1 with *why set to a static reason (never containing token bytes) otherwise. */
int auth_jwt_verify(const auth_jwt_key *k, const char *tok, size_t len, const auth_jwt_rules *rules, int64_t now_us,
                    auth_jwt_claims *out, const char **why) __attribute__((warn_unused_result));

/* The principal-cache key of a verified JWT: SHA-256 over a fixed domain prefix and the token, so a JWT's
 * entry can never be the entry of a table token (whose key is the plain SHA-256 that SQL compares). */
void auth_jwt_cache_key(const char *tok, size_t len, uint8_t out[32]);

#endif
