/*
 * tests/unit/auth/test_auth.c — credentials (auth/auth.c) and the principal cache (auth/cache.c), as a
 * specification.
 *
 * Owns where a token is found (RFC 6750 Authorization header, else the configured cookie, never the
 * cookie when the header is present), which shapes are refused as malformed, what a token hashes to
 * (SHA-256 known answers) and how hashes are written for SQL and for logs. The principal cache
 * (auth/cache.c) has its own file, test_cache.c. Most tests walk a table; a failing row names its input.
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

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define COOKIE "pollgate_token"

static const char *cred_str(auth_cred_status s)
{
	switch (s) {
	case AUTH_CRED_NONE: return "NONE";
	case AUTH_CRED_BAD: return "BAD";
	case AUTH_CRED_OK: return "OK";
	}
	return "?";
}

/* ---- auth_extract ---- */

typedef struct {
	const char *authorization, *cookie, *cookie_name;
	auth_cred_status want;
	const char *token; /* for OK */
} extract_case;

static void run_extract_cases(const extract_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const extract_case *c = &cases[i];
		const char *tok = NULL;
		size_t len = 0;
		auth_cred_status s = auth_extract(c->authorization, c->cookie, c->cookie_name, &tok, &len);
		if (s != c->want)
			fail_msg("extract(auth=%s, cookie=%s, name=%s): got %s, want %s", c->authorization ? c->authorization : "NULL",
			         c->cookie ? c->cookie : "NULL", c->cookie_name ? c->cookie_name : "NULL", cred_str(s),
			         cred_str(c->want));
		if (s != AUTH_CRED_OK) continue;
		if (tok == NULL || len != strlen(c->token) || memcmp(tok, c->token, len) != 0)
			fail_msg("extract(auth=%s, cookie=%s): token \"%.*s\", want \"%s\"", c->authorization ? c->authorization : "NULL",
			         c->cookie ? c->cookie : "NULL", (int)len, tok ? tok : "", c->token);
		/* Borrowed: the token points into the input it came from. */
		const char *src = c->authorization ? c->authorization : c->cookie;
		if (tok < src || tok + len > src + strlen(src))
			fail_msg("extract(auth=%s, cookie=%s): token does not point into its input",
			         c->authorization ? c->authorization : "NULL", c->cookie ? c->cookie : "NULL");
	}
}

static void test_bearer_header_follows_rfc_6750(void **state)
{
	static const extract_case cases[] = {
		{"Bearer abc", NULL, COOKIE, AUTH_CRED_OK, "abc"},
		/* the scheme is case-insensitive */
		{"bearer abc", NULL, COOKIE, AUTH_CRED_OK, "abc"},
		{"BEARER abc", NULL, COOKIE, AUTH_CRED_OK, "abc"},
		{"BeArEr abc", NULL, COOKIE, AUTH_CRED_OK, "abc"},
		/* white space between scheme and token, and after the token */
		{"Bearer     abc", NULL, COOKIE, AUTH_CRED_OK, "abc"},
		{"Bearer\tabc", NULL, COOKIE, AUTH_CRED_OK, "abc"},
		{"Bearer \t \tabc", NULL, COOKIE, AUTH_CRED_OK, "abc"},
		{"Bearer abc ", NULL, COOKIE, AUTH_CRED_OK, "abc"},
		{"Bearer abc \t ", NULL, COOKIE, AUTH_CRED_OK, "abc"},
		{"  Bearer abc", NULL, COOKIE, AUTH_CRED_OK, "abc"},
		/* the token is opaque visible ASCII: b64token characters and padding */
		{"Bearer a.b-c_d~e+f/g==", NULL, COOKIE, AUTH_CRED_OK, "a.b-c_d~e+f/g=="},
		{"Bearer x", NULL, COOKIE, AUTH_CRED_OK, "x"},
		/* not a usable bearer credential */
		{"", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"   ", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Bearer", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Bearer ", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Bearer  \t ", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Bearerabc", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Bearer: abc", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Bear abc", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Basic x", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Basic dXNlcjpwYXNz", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Token abc", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"abc", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Bearer a b", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Bearer abc def ", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Bearer abc\tdef", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Bearer ab\x01" "c", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Bearer ab\x7f" "c", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Bearer abc\r\n", NULL, COOKIE, AUTH_CRED_BAD, NULL},
		{"Bearer \xc3\xa9t\xc3\xa9", NULL, COOKIE, AUTH_CRED_BAD, NULL},
	};
	(void)state;
	run_extract_cases(cases, NELEM(cases));
}

static void test_header_present_means_the_cookie_is_never_consulted(void **state)
{
	static const extract_case cases[] = {
		{"Bearer hdr", COOKIE "=ck", COOKIE, AUTH_CRED_OK, "hdr"},
		{"Bearer hdr", "junk", COOKIE, AUTH_CRED_OK, "hdr"},
		/* a bad header is BAD even with a good cookie: no fallback */
		{"Basic x", COOKIE "=ck", COOKIE, AUTH_CRED_BAD, NULL},
		{"Bearer", COOKIE "=ck", COOKIE, AUTH_CRED_BAD, NULL},
		{"", COOKIE "=ck", COOKIE, AUTH_CRED_BAD, NULL},
		{"Bearer a b", COOKIE "=ck", COOKIE, AUTH_CRED_BAD, NULL},
	};
	(void)state;
	run_extract_cases(cases, NELEM(cases));
}

static void test_cookie_is_found_by_exact_name_among_several(void **state)
{
	static const extract_case cases[] = {
		{NULL, COOKIE "=xyz", COOKIE, AUTH_CRED_OK, "xyz"},
		{NULL, "a=1; " COOKIE "=xyz; b=2", COOKIE, AUTH_CRED_OK, "xyz"},
		{NULL, "a=1;" COOKIE "=xyz;b=2", COOKIE, AUTH_CRED_OK, "xyz"},
		{NULL, "a=1;   " COOKIE "=xyz", COOKIE, AUTH_CRED_OK, "xyz"},
		{NULL, "a=1; b=2; " COOKIE "=xyz", COOKIE, AUTH_CRED_OK, "xyz"},
		{NULL, COOKIE "=xyz ", COOKIE, AUTH_CRED_OK, "xyz"},
		{NULL, COOKIE "=xyz ; b=2", COOKIE, AUTH_CRED_OK, "xyz"},
		{NULL, COOKIE "=abc==", COOKIE, AUTH_CRED_OK, "abc=="},
		{NULL, "novalue; " COOKIE "=xyz", COOKIE, AUTH_CRED_OK, "xyz"},
		/* quoted value: the quotes are not part of the token */
		{NULL, COOKIE "=\"xyz\"", COOKIE, AUTH_CRED_OK, "xyz"},
		{NULL, "a=1; " COOKIE "=\"xyz\"; b=2", COOKIE, AUTH_CRED_OK, "xyz"},
		/* the first cookie of that name counts */
		{NULL, COOKIE "=first; " COOKIE "=second", COOKIE, AUTH_CRED_OK, "first"},
		/* a name that merely contains the cookie name is another cookie */
		{NULL, "xpollgate_token=1", COOKIE, AUTH_CRED_NONE, NULL},
		{NULL, "pollgate_tokenx=1", COOKIE, AUTH_CRED_NONE, NULL},
		{NULL, "pollgate_toke=1", COOKIE, AUTH_CRED_NONE, NULL},
		{NULL, "xpollgate_token=1; " COOKIE "=real", COOKIE, AUTH_CRED_OK, "real"},
		{NULL, "a=" COOKIE "=1", COOKIE, AUTH_CRED_NONE, NULL},
		{NULL, "a=\"" COOKIE "=1\"", COOKIE, AUTH_CRED_NONE, NULL},
		/* names are case-sensitive (RFC 6265) */
		{NULL, "Pollgate_Token=1", COOKIE, AUTH_CRED_NONE, NULL},
		{NULL, "POLLGATE_TOKEN=1", COOKIE, AUTH_CRED_NONE, NULL},
		/* a configured name other than the default */
		{NULL, COOKIE "=1; sid=abc", "sid", AUTH_CRED_OK, "abc"},
		{NULL, COOKIE "=1", "sid", AUTH_CRED_NONE, NULL},
		/* missing */
		{NULL, NULL, COOKIE, AUTH_CRED_NONE, NULL},
		{NULL, "", COOKIE, AUTH_CRED_NONE, NULL},
		{NULL, "; ;", COOKIE, AUTH_CRED_NONE, NULL},
		{NULL, "a=1; b=2", COOKIE, AUTH_CRED_NONE, NULL},
		{NULL, COOKIE, COOKIE, AUTH_CRED_NONE, NULL},
		/* no cookie name configured: the cookie is never read */
		{NULL, COOKIE "=xyz", NULL, AUTH_CRED_NONE, NULL},
		{NULL, COOKIE "=xyz", "", AUTH_CRED_NONE, NULL},
		{NULL, "=xyz", "", AUTH_CRED_NONE, NULL},
	};
	(void)state;
	run_extract_cases(cases, NELEM(cases));
}

static void test_cookie_with_an_unusable_value_is_bad(void **state)
{
	static const extract_case cases[] = {
		{NULL, COOKIE "=", COOKIE, AUTH_CRED_BAD, NULL},
		{NULL, COOKIE "=  ", COOKIE, AUTH_CRED_BAD, NULL},
		{NULL, "a=1; " COOKIE "=; b=2", COOKIE, AUTH_CRED_BAD, NULL},
		{NULL, COOKIE "=\"\"", COOKIE, AUTH_CRED_BAD, NULL},
		{NULL, COOKIE "=\"", COOKIE, AUTH_CRED_BAD, NULL},
		{NULL, COOKIE "=\"xyz", COOKIE, AUTH_CRED_BAD, NULL},
		{NULL, COOKIE "=xyz\"", COOKIE, AUTH_CRED_BAD, NULL},
		{NULL, COOKIE "=\"x\"y\"", COOKIE, AUTH_CRED_BAD, NULL},
		{NULL, COOKIE "=a b", COOKIE, AUTH_CRED_BAD, NULL},
		{NULL, COOKIE "= xyz", COOKIE, AUTH_CRED_BAD, NULL},
		{NULL, COOKIE "=a,b", COOKIE, AUTH_CRED_BAD, NULL},
		{NULL, COOKIE "=a\\b", COOKIE, AUTH_CRED_BAD, NULL},
		{NULL, COOKIE "=a\x01" "b", COOKIE, AUTH_CRED_BAD, NULL},
		{NULL, COOKIE "=\xc3\xa9", COOKIE, AUTH_CRED_BAD, NULL},
		/* the first cookie of the name decides, even when a later one would do */
		{NULL, COOKIE "=; " COOKIE "=good", COOKIE, AUTH_CRED_BAD, NULL},
	};
	(void)state;
	run_extract_cases(cases, NELEM(cases));
}

static void test_tokens_longer_than_auth_token_max_are_bad(void **state)
{
	enum { PFX = 16 };
	char *buf = malloc(PFX + AUTH_TOKEN_MAX + 8);
	const char *tok = NULL;
	size_t len = 0;
	(void)state;

	assert_non_null(buf);
	static const char *const prefixes[] = {"Bearer ", COOKIE "="};
	for (size_t p = 0; p < NELEM(prefixes); p++) {
		bool header = p == 0;
		size_t pl = strlen(prefixes[p]);
		for (size_t n = AUTH_TOKEN_MAX - 1; n <= AUTH_TOKEN_MAX + 1; n++) {
			memcpy(buf, prefixes[p], pl);
			memset(buf + pl, 'k', n);
			buf[pl + n] = '\0';
			auth_cred_status s = header ? auth_extract(buf, NULL, COOKIE, &tok, &len)
			                            : auth_extract(NULL, buf, COOKIE, &tok, &len);
			auth_cred_status want = n <= AUTH_TOKEN_MAX ? AUTH_CRED_OK : AUTH_CRED_BAD;
			if (s != want)
				fail_msg("%s token of %zu bytes: got %s, want %s", header ? "header" : "cookie", n, cred_str(s),
				         cred_str(want));
			if (s == AUTH_CRED_OK && (len != n || tok != buf + pl))
				fail_msg("%s token of %zu bytes: wrong span (%zu bytes)", header ? "header" : "cookie", n, len);
		}
	}
	free(buf);
}

/* ---- hashing ---- */

/* auth_sha256 is SHA-256 of the token's bytes (common/digest.c, whose known answers are test_digest.c's):
 * one vector, and the length counting rather than a terminator. */
static void test_token_hash_is_sha256_of_its_bytes(void **state)
{
	static const struct {
		const char *data;
		size_t len;
		const char *hex;
	} cases[] = {
		{"abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		/* the length counts, not a terminator: token bytes may be anything */
		{"a\0b", 3, "59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138"},
	};
	(void)state;

	for (size_t i = 0; i < NELEM(cases); i++) {
		uint8_t h[AUTH_HASH_LEN];
		char hex[2 * AUTH_HASH_LEN + 1];
		auth_sha256(cases[i].data, cases[i].len, h);
		auth_hash_hex(h, hex);
		if (strcmp(hex, cases[i].hex) != 0) fail_msg("sha256 of case %zu:\n   got %s\n  want %s", i, hex, cases[i].hex);
	}
}

static void test_hash_hex_is_lowercase_and_prefix_is_its_first_12_digits(void **state)
{
	uint8_t h[AUTH_HASH_LEN];
	char hex[2 * AUTH_HASH_LEN + 1 + 4];
	char pfx[13 + 4];
	static const char want[] = "00010f10a0abf0ff" "123456789abcdef0" "fedcba9876543210" "0a0b0c0d0e0fa5c3";
	static const uint8_t bytes[AUTH_HASH_LEN] = {
		0x00, 0x01, 0x0f, 0x10, 0xa0, 0xab, 0xf0, 0xff, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
		0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0xa5, 0xc3,
	};
	(void)state;

	memcpy(h, bytes, sizeof h);
	memset(hex, 'X', sizeof hex);
	auth_hash_hex(h, hex);
	assert_string_equal(hex, want);
	assert_int_equal(hex[2 * AUTH_HASH_LEN + 1], 'X'); /* writes exactly 65 bytes */

	memset(pfx, 'X', sizeof pfx);
	auth_hash_prefix(h, pfx);
	assert_string_equal(pfx, "00010f10a0ab");
	assert_int_equal(pfx[13], 'X'); /* writes exactly 13 bytes */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bearer_header_follows_rfc_6750),
		cmocka_unit_test(test_header_present_means_the_cookie_is_never_consulted),
		cmocka_unit_test(test_cookie_is_found_by_exact_name_among_several),
		cmocka_unit_test(test_cookie_with_an_unusable_value_is_bad),
		cmocka_unit_test(test_tokens_longer_than_auth_token_max_are_bad),
		cmocka_unit_test(test_token_hash_is_sha256_of_its_bytes),
		cmocka_unit_test(test_hash_hex_is_lowercase_and_prefix_is_its_first_12_digits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
