/*
 * auth/auth.c — see auth.h. Parsing follows RFC 6750 §2.1 for the header (scheme case-insensitive,
 * one or more spaces, a token of visible ASCII) and RFC 6265 §4.2 for the Cookie header
 * ("name=value; name=value", value optionally in double quotes).
 */
#include "auth/auth.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "common/digest.h"
#include "common/hex.h"

_Static_assert(AUTH_HASH_LEN == CM_SHA256_LEN, "a token hash is a SHA-256");

static bool visible(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

static auth_cred_status from_header(const char *h, const char **tok, size_t *toklen)
{
	const char *p = h;
	size_t n;

	while (*p == ' ' || *p == '\t') p++;
	if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t')) return AUTH_CRED_BAD;
	p += 6;
	while (*p == ' ' || *p == '\t') p++;
	for (n = 0; visible((unsigned char)p[n]); n++) {
	}
	/* Only trailing white space may follow the token. */
	for (const char *q = p + n; *q; q++)
		if (*q != ' ' && *q != '\t') return AUTH_CRED_BAD;
	if (n == 0 || n > AUTH_TOKEN_MAX) return AUTH_CRED_BAD;
	*tok = p;
	*toklen = n;
	return AUTH_CRED_OK;
}

static auth_cred_status from_cookie(const char *c, const char *name, const char **tok, size_t *toklen)
{
	size_t namelen = strlen(name);
	const char *p = c;

	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ';') p++;
		const char *end = strchr(p, ';');
		if (end == NULL) end = p + strlen(p);
		const char *eq = memchr(p, '=', (size_t)(end - p));
		if (eq && (size_t)(eq - p) == namelen && memcmp(p, name, namelen) == 0) {
			const char *v = eq + 1, *ve = end;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
			if (ve - v >= 2 && v[0] == '"' && ve[-1] == '"') {
				v++;
				ve--;
			}
			size_t n = (size_t)(ve - v);
			if (n == 0 || n > AUTH_TOKEN_MAX) return AUTH_CRED_BAD;
			for (size_t i = 0; i < n; i++)
				if (!visible((unsigned char)v[i]) || v[i] == '"' || v[i] == ',' || v[i] == ';' || v[i] == '\\')
					return AUTH_CRED_BAD;
			*tok = v;
			*toklen = n;
			return AUTH_CRED_OK;
		}
		p = end;
	}
	return AUTH_CRED_NONE;
}

auth_cred_status auth_extract(const char *authorization, const char *cookie, const char *cookie_name,
                              const char **tok, size_t *toklen)
{
	/* When the header is present the cookie is not consulted (fixed-points.md). */
	if (authorization != NULL) return from_header(authorization, tok, toklen);
	if (cookie != NULL && cookie_name != NULL && cookie_name[0] != '\0')
		return from_cookie(cookie, cookie_name, tok, toklen);
	return AUTH_CRED_NONE;
}

void auth_sha256(const void *data, size_t len, uint8_t out[AUTH_HASH_LEN])
{
	if (cm_sha256(data, len, out) != 0) return; /* out is zeroed, as before */
}

void auth_hash_hex(const uint8_t h[AUTH_HASH_LEN], char *out)
{
	cm_hex_encode(h, AUTH_HASH_LEN, out);
}

void auth_hash_prefix(const uint8_t h[AUTH_HASH_LEN], char out[13])
{
	char full[2 * AUTH_HASH_LEN + 1];
	auth_hash_hex(h, full);
	memcpy(out, full, 12);
	out[12] = '\0';
}
