/*
 * tests/unit/auth/test_jwt.c — signed tokens (auth/jwt.c) as a specification.
 *
 * Owns which key files are accepted (an HS256 secret of at least 32 bytes, an RSA public key of at least
 * 2048 bits, an EC public key on P-256) and the message for each refused one, and the verdict on tokens:
 * one table of cases, each a header, claims, a signing method and the expected user or refusal reason.
 * The keys are generated here with libcrypto at start-up; tokens are built and signed here, independently
 * of the code under test (RS256 with EVP_DigestSign, ES256 converted from DER to JOSE r||s by hand).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "auth/jwt.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define NOW INT64_C(1700000000)
#define SECRET "0123456789abcdef0123456789abcdef-test-secret"

/* ---- fixtures: keys and their public PEM ---- */

static EVP_PKEY *rsa, *ec;
static char *rsa_pem, *ec_pem;
static auth_jwt_key *k_hs, *k_rs, *k_es;

static char *pub_pem(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL, *out;
	long n;
	assert_non_null(b);
	assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
	n = BIO_get_mem_data(b, &data);
	out = calloc(1, (size_t)n + 1);
	memcpy(out, data, (size_t)n);
	BIO_free(b);
	return out;
}

static char *priv_pem(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL, *out;
	long n;
	assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(b, &data);
	out = calloc(1, (size_t)n + 1);
	memcpy(out, data, (size_t)n);
	BIO_free(b);
	return out;
}

static auth_jwt_key *key_from(const char *text, size_t len)
{
	char err[256] = "";
	auth_jwt_key *k = auth_jwt_key_from_mem(text, len, err, sizeof err);
	if (k == NULL) fail_msg("key refused: %s", err);
	return k;
}

static int setup(void **state)
{
	(void)state;
	rsa = EVP_RSA_gen(2048);
	ec = EVP_EC_gen("P-256");
	if (rsa == NULL || ec == NULL) return -1;
	rsa_pem = pub_pem(rsa);
	ec_pem = pub_pem(ec);
	k_hs = key_from(SECRET, strlen(SECRET));
	k_rs = key_from(rsa_pem, strlen(rsa_pem));
	k_es = key_from(ec_pem, strlen(ec_pem));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	auth_jwt_key_free(k_hs);
	auth_jwt_key_free(k_rs);
	auth_jwt_key_free(k_es);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	free(rsa_pem);
	free(ec_pem);
	return 0;
}

/* ---- building tokens ---- */

static void b64url(const unsigned char *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		out[o++] = a[(v >> 6) & 63];
		out[o++] = a[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		out[o++] = a[(v >> 6) & 63];
	}
	out[o] = '\0';
}

typedef enum {
	S_HS,        /* HMAC-SHA256 with SECRET */
	S_HS_OTHER,  /* HMAC-SHA256 with another secret */
	S_HS_RSAPEM, /* HMAC-SHA256 keyed with the RSA public key's PEM bytes (alg confusion) */
	S_HS_ECPEM,  /* ... with the EC public key's PEM bytes */
	S_RS,        /* RSA PKCS#1 v1.5 SHA-256 with the fixture key */
	S_ES,        /* ECDSA P-256 SHA-256, JOSE r||s */
	S_ES_DER,    /* ECDSA P-256 but the signature left in DER (a common minting bug) */
	S_NONE,      /* empty signature */
	S_JUNK,      /* 32 bytes of zeros */
} signer;

static size_t sign(signer how, const char *data, unsigned char *sig)
{
	unsigned int n = 0;
	size_t sl = 0;
	EVP_MD_CTX *ctx;
	switch (how) {
	case S_HS: HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)data, strlen(data), sig, &n); return n;
	case S_HS_OTHER:
		HMAC(EVP_sha256(), "another-secret-another-secret-xx", 32, (const unsigned char *)data, strlen(data), sig, &n);
		return n;
	case S_HS_RSAPEM:
		HMAC(EVP_sha256(), rsa_pem, (int)strlen(rsa_pem), (const unsigned char *)data, strlen(data), sig, &n);
		return n;
	case S_HS_ECPEM:
		HMAC(EVP_sha256(), ec_pem, (int)strlen(ec_pem), (const unsigned char *)data, strlen(data), sig, &n);
		return n;
	case S_RS:
	case S_ES:
	case S_ES_DER: {
		unsigned char der[600];
		ctx = EVP_MD_CTX_new();
		sl = sizeof der;
		assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, how == S_RS ? rsa : ec), 1);
		assert_int_equal(EVP_DigestSign(ctx, der, &sl, (const unsigned char *)data, strlen(data)), 1);
		EVP_MD_CTX_free(ctx);
		if (how != S_ES) {
			memcpy(sig, der, sl);
			return sl;
		}
		const unsigned char *p = der;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);
		assert_non_null(es);
		assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32), 32);
		assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32), 32);
		ECDSA_SIG_free(es);
		return 64;
	}
	case S_NONE: return 0;
	case S_JUNK: memset(sig, 0, 32); return 32;
	}
	return 0;
}

/* "b64(header).b64(claims).b64(sig)"; caller frees. */
static char *make_jwt(const char *header, const char *claims, signer how)
{
	size_t hl = strlen(header), cl = strlen(claims);
	char *t = malloc(hl * 2 + cl * 2 + 1200);
	unsigned char sig[600];
	b64url((const unsigned char *)header, hl, t);
	strcat(t, ".");
	b64url((const unsigned char *)claims, cl, t + strlen(t));
	size_t sl = sign(how, t, sig);
	strcat(t, ".");
	b64url(sig, sl, t + strlen(t));
	return t;
}

/* ---- the table ---- */

#define H_HS "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define H_RS "{\"alg\":\"RS256\",\"typ\":\"JWT\"}"
#define H_ES "{\"alg\":\"ES256\"}"
#define C_OK "{\"sub\":\"42\",\"exp\":1700000300}"

typedef struct {
	const char *name;
	auth_jwt_key **key;
	const char *header, *claims;
	signer how;
	const char *audience, *issuer;
	int64_t leeway;
	int64_t want_user; /* 0 = refused */
	const char *why;   /* substring of the reason when refused */
} jwt_case;

static const jwt_case cases[] = {
	{"good HS256", &k_hs, H_HS, C_OK, S_HS, NULL, NULL, 0, 42, NULL},
	{"good RS256", &k_rs, H_RS, C_OK, S_RS, NULL, NULL, 0, 42, NULL},
	{"good ES256", &k_es, H_ES, C_OK, S_ES, NULL, NULL, 0, 42, NULL},
	{"HS256 without typ", &k_hs, "{\"alg\":\"HS256\"}", C_OK, S_HS, NULL, NULL, 0, 42, NULL},
	{"typ in lower case", &k_hs, "{\"alg\":\"HS256\",\"typ\":\"jwt\"}", C_OK, S_HS, NULL, NULL, 0, 42, NULL},
	{"a kid is ignored", &k_rs, "{\"alg\":\"RS256\",\"kid\":\"k1\"}", C_OK, S_RS, NULL, NULL, 0, 42, NULL},
	{"sub as a number", &k_hs, H_HS, "{\"sub\":7,\"exp\":1700000300}", S_HS, NULL, NULL, 0, 7, NULL},
	{"largest user id", &k_hs, H_HS, "{\"sub\":\"9223372036854775807\",\"exp\":1700000300}", S_HS, NULL, NULL, 0,
	 INT64_MAX, NULL},
	{"fractional exp", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000000.5}", S_HS, NULL, NULL, 0, 42, NULL},
	{"nbf now", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"nbf\":1700000000}", S_HS, NULL, NULL, 0, 42, NULL},
	{"iat and jti are ignored", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"iat\":1,\"jti\":\"x\"}", S_HS, NULL,
	 NULL, 0, 42, NULL},

	/* signatures */
	{"HS256 wrong secret", &k_hs, H_HS, C_OK, S_HS_OTHER, NULL, NULL, 0, 0, "bad signature"},
	{"HS256 junk signature", &k_hs, H_HS, C_OK, S_JUNK, NULL, NULL, 0, 0, "bad signature"},
	{"RS256 junk signature", &k_rs, H_RS, C_OK, S_JUNK, NULL, NULL, 0, 0, "bad signature"},
	{"ES256 junk signature", &k_es, H_ES, C_OK, S_JUNK, NULL, NULL, 0, 0, "bad signature"},
	{"ES256 DER signature", &k_es, H_ES, C_OK, S_ES_DER, NULL, NULL, 0, 0, "bad signature"},
	{"empty signature", &k_hs, H_HS, C_OK, S_NONE, NULL, NULL, 0, 0, "unsigned"},

	/* algorithms */
	{"alg none", &k_hs, "{\"alg\":\"none\"}", C_OK, S_NONE, NULL, NULL, 0, 0, "unsigned"},
	{"alg none with a signature", &k_hs, "{\"alg\":\"none\"}", C_OK, S_JUNK, NULL, NULL, 0, 0, "alg none"},
	{"alg NoNe", &k_rs, "{\"alg\":\"NoNe\"}", C_OK, S_JUNK, NULL, NULL, 0, 0, "alg none"},
	{"alg missing", &k_hs, "{\"typ\":\"JWT\"}", C_OK, S_HS, NULL, NULL, 0, 0, "alg missing"},
	{"alg not a string", &k_hs, "{\"alg\":256}", C_OK, S_HS, NULL, NULL, 0, 0, "alg missing"},
	{"alg lower case", &k_hs, "{\"alg\":\"hs256\"}", C_OK, S_HS, NULL, NULL, 0, 0, "alg not"},
	{"confusion: HS256 keyed with the RSA PEM", &k_rs, H_HS, C_OK, S_HS_RSAPEM, NULL, NULL, 0, 0, "alg not"},
	{"confusion: HS256 keyed with the EC PEM", &k_es, H_HS, C_OK, S_HS_ECPEM, NULL, NULL, 0, 0, "alg not"},
	{"RS256 token, HS key", &k_hs, H_RS, C_OK, S_RS, NULL, NULL, 0, 0, "alg not"},
	{"ES256 token, RS key", &k_rs, H_ES, C_OK, S_ES, NULL, NULL, 0, 0, "alg not"},
	{"RS256 token, ES key", &k_es, H_RS, C_OK, S_RS, NULL, NULL, 0, 0, "alg not"},
	{"RS512", &k_rs, "{\"alg\":\"RS512\"}", C_OK, S_RS, NULL, NULL, 0, 0, "alg not"},
	{"typ JWS", &k_hs, "{\"alg\":\"HS256\",\"typ\":\"JWS\"}", C_OK, S_HS, NULL, NULL, 0, 0, "typ"},
	{"typ not a string", &k_hs, "{\"alg\":\"HS256\",\"typ\":1}", C_OK, S_HS, NULL, NULL, 0, 0, "typ"},
	{"crit", &k_hs, "{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", C_OK, S_HS, NULL, NULL, 0, 0, "crit"},
	{"duplicate alg", &k_hs, "{\"alg\":\"none\",\"alg\":\"HS256\"}", C_OK, S_HS, NULL, NULL, 0, 0, "header"},

	/* time */
	{"expired", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1699999999}", S_HS, NULL, NULL, 0, 0, "expired"},
	{"expires exactly now", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000000}", S_HS, NULL, NULL, 0, 0, "expired"},
	{"expired within leeway", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1699999995}", S_HS, NULL, NULL, 10, 42, NULL},
	{"expired past leeway", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1699999985}", S_HS, NULL, NULL, 10, 0, "expired"},
	{"exp missing", &k_hs, H_HS, "{\"sub\":\"42\"}", S_HS, NULL, NULL, 0, 0, "exp missing"},
	{"exp a string", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":\"1700000300\"}", S_HS, NULL, NULL, 0, 0, "NumericDate"},
	{"exp null", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":null}", S_HS, NULL, NULL, 0, 0, "NumericDate"},
	{"exp negative", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":-1}", S_HS, NULL, NULL, 0, 0, "NumericDate"},
	{"exp past year 9999", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1e300}", S_HS, NULL, NULL, 0, 0, "NumericDate"},
	{"exp too big an integer", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":99999999999999999999999}", S_HS, NULL, NULL, 0, 0,
	 "claims"},
	{"nbf far future", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"nbf\":4000000000}", S_HS, NULL, NULL, 0, 0,
	 "nbf"},
	{"nbf just ahead", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"nbf\":1700000001}", S_HS, NULL, NULL, 0, 0,
	 "nbf"},
	{"nbf within leeway", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"nbf\":1700000005}", S_HS, NULL, NULL, 10,
	 42, NULL},
	{"nbf a string", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"nbf\":\"0\"}", S_HS, NULL, NULL, 0, 0, "nbf"},

	/* audience and issuer */
	{"aud matches", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"aud\":\"pollgate\"}", S_HS, "pollgate", NULL, 0,
	 42, NULL},
	{"aud array matches", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"aud\":[\"api\",\"pollgate\"]}", S_HS,
	 "pollgate", NULL, 0, 42, NULL},
	{"aud other", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"aud\":\"api\"}", S_HS, "pollgate", NULL, 0, 0,
	 "aud"},
	{"aud array without us", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"aud\":[\"api\"]}", S_HS, "pollgate",
	 NULL, 0, 0, "aud"},
	{"aud empty array", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"aud\":[]}", S_HS, "pollgate", NULL, 0, 0,
	 "aud"},
	{"aud array with a number", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"aud\":[\"pollgate\",1]}", S_HS,
	 "pollgate", NULL, 0, 0, "aud"},
	{"aud prefix", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"aud\":\"pollgatex\"}", S_HS, "pollgate", NULL, 0,
	 0, "aud"},
	{"aud missing", &k_hs, H_HS, C_OK, S_HS, "pollgate", NULL, 0, 0, "aud missing"},
	{"aud present, none configured", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"aud\":\"api\"}", S_HS, NULL,
	 NULL, 0, 0, "jwt_audience"},
	{"iss matches", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"iss\":\"https://app\"}", S_HS, NULL,
	 "https://app", 0, 42, NULL},
	{"iss other", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"iss\":\"https://evil\"}", S_HS, NULL,
	 "https://app", 0, 0, "iss"},
	{"iss missing", &k_hs, H_HS, C_OK, S_HS, NULL, "https://app", 0, 0, "iss"},
	{"iss not a string", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"iss\":[\"https://app\"]}", S_HS, NULL,
	 "https://app", 0, 0, "iss"},
	{"iss unconfigured is ignored", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":1700000300,\"iss\":\"x\"}", S_HS, NULL, NULL,
	 0, 42, NULL},

	/* sub */
	{"sub missing", &k_hs, H_HS, "{\"exp\":1700000300}", S_HS, NULL, NULL, 0, 0, "sub missing"},
	{"sub not numeric", &k_hs, H_HS, "{\"sub\":\"alice\",\"exp\":1700000300}", S_HS, NULL, NULL, 0, 0, "sub"},
	{"sub negative string", &k_hs, H_HS, "{\"sub\":\"-5\",\"exp\":1700000300}", S_HS, NULL, NULL, 0, 0, "sub"},
	{"sub negative number", &k_hs, H_HS, "{\"sub\":-5,\"exp\":1700000300}", S_HS, NULL, NULL, 0, 0, "sub"},
	{"sub zero", &k_hs, H_HS, "{\"sub\":0,\"exp\":1700000300}", S_HS, NULL, NULL, 0, 0, "sub"},
	{"sub \"0\"", &k_hs, H_HS, "{\"sub\":\"0\",\"exp\":1700000300}", S_HS, NULL, NULL, 0, 0, "sub"},
	{"sub leading zero", &k_hs, H_HS, "{\"sub\":\"042\",\"exp\":1700000300}", S_HS, NULL, NULL, 0, 0, "sub"},
	{"sub with a space", &k_hs, H_HS, "{\"sub\":\" 42\",\"exp\":1700000300}", S_HS, NULL, NULL, 0, 0, "sub"},
	{"sub empty", &k_hs, H_HS, "{\"sub\":\"\",\"exp\":1700000300}", S_HS, NULL, NULL, 0, 0, "sub"},
	{"sub huge string", &k_hs, H_HS, "{\"sub\":\"9223372036854775808\",\"exp\":1700000300}", S_HS, NULL, NULL, 0, 0,
	 "sub"},
	{"sub 20 digits", &k_hs, H_HS, "{\"sub\":\"12345678901234567890\",\"exp\":1700000300}", S_HS, NULL, NULL, 0, 0,
	 "sub"},
	{"sub real", &k_hs, H_HS, "{\"sub\":42.0,\"exp\":1700000300}", S_HS, NULL, NULL, 0, 0, "sub"},
	{"sub bool", &k_hs, H_HS, "{\"sub\":true,\"exp\":1700000300}", S_HS, NULL, NULL, 0, 0, "sub"},
	{"sub NUL inside", &k_hs, H_HS, "{\"sub\":\"4\\u00002\",\"exp\":1700000300}", S_HS, NULL, NULL, 0, 0, "claims"},
	{"duplicate sub", &k_hs, H_HS, "{\"sub\":\"1\",\"sub\":\"42\",\"exp\":1700000300}", S_HS, NULL, NULL, 0, 0,
	 "claims"},

	/* JSON shapes */
	{"header an array", &k_hs, "[\"HS256\"]", C_OK, S_HS, NULL, NULL, 0, 0, "header"},
	{"header not JSON", &k_hs, "alg=HS256", C_OK, S_HS, NULL, NULL, 0, 0, "header"},
	{"claims an array", &k_hs, H_HS, "[42]", S_HS, NULL, NULL, 0, 0, "claims"},
	{"claims a number", &k_hs, H_HS, "42", S_HS, NULL, NULL, 0, 0, "claims"},
	{"claims null", &k_hs, H_HS, "null", S_HS, NULL, NULL, 0, 0, "claims"},
	{"claims truncated", &k_hs, H_HS, "{\"sub\":\"42\",\"exp\":17", S_HS, NULL, NULL, 0, 0, "claims"},
};

static void test_verify_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		const jwt_case *c = &cases[i];
		char *t = make_jwt(c->header, c->claims, c->how);
		auth_jwt_rules rules = {c->audience, c->issuer, c->leeway};
		auth_jwt_claims out = {0, 0};
		const char *why = NULL;
		int rc = auth_jwt_verify(*c->key, t, strlen(t), &rules, NOW * 1000000, &out, &why);
		if (c->want_user > 0) {
			if (rc != 0) fail_msg("%s: refused (%s), want user %lld", c->name, why, (long long)c->want_user);
			if (out.user_id != c->want_user) fail_msg("%s: user %lld", c->name, (long long)out.user_id);
		} else {
			if (rc == 0) fail_msg("%s: accepted (user %lld), want refused", c->name, (long long)out.user_id);
			if (why == NULL || strstr(why, c->why) == NULL)
				fail_msg("%s: reason '%s', want one with '%s'", c->name, why ? why : "(null)", c->why);
			if (strstr(why, t) != NULL) fail_msg("%s: the reason carries the token", c->name);
		}
		free(t);
	}
}

static void test_exp_is_reported_in_microseconds_with_leeway(void **state)
{
	(void)state;
	char *t = make_jwt(H_HS, "{\"sub\":\"42\",\"exp\":1700000300}", S_HS);
	auth_jwt_rules rules = {NULL, NULL, 0};
	auth_jwt_claims out;
	const char *why;
	assert_int_equal(auth_jwt_verify(k_hs, t, strlen(t), &rules, NOW * 1000000, &out, &why), 0);
	assert_int_equal(out.exp_us, INT64_C(1700000300) * 1000000);
	rules.leeway_s = 30;
	assert_int_equal(auth_jwt_verify(k_hs, t, strlen(t), &rules, NOW * 1000000, &out, &why), 0);
	assert_int_equal(out.exp_us, INT64_C(1700000330) * 1000000);
	/* one microsecond before exp is good, exp itself is not */
	rules.leeway_s = 0;
	assert_int_equal(auth_jwt_verify(k_hs, t, strlen(t), &rules, INT64_C(1700000300) * 1000000 - 1, &out, &why), 0);
	assert_int_equal(auth_jwt_verify(k_hs, t, strlen(t), &rules, INT64_C(1700000300) * 1000000, &out, &why), -1);
	free(t);
}

/* Raw strings, not built from JSON: the segment syntax. */
static void test_malformed_segments(void **state)
{
	(void)state;
	char *good = make_jwt(H_HS, C_OK, S_HS);
	char buf[AUTH_JWT_MAX + 64];
	const char *d1 = strchr(good, '.'), *d2 = strchr(d1 + 1, '.');
	size_t hl = (size_t)(d1 - good);
	static const struct {
		const char *name, *why;
		int what;
	} raw[] = {
		{"no dots", "three", 0},
		{"one dot", "three", 1},
		{"three dots", "three", 2},
		{"empty header", "three", 3},
		{"empty payload", "payload", 4},
		{"padding in the signature", "padding", 5},
		{"'+' in the header", "base64url", 6},
		{"impossible length", "impossible", 7},
		{"non-canonical last character", "non-canonical", 8},
		{"too long", "too long", 9},
		{"dots only", "three", 10},
		{"padding in the header", "padding", 11},
	};
	for (size_t i = 0; i < NELEM(raw); i++) {
		switch (raw[i].what) {
		case 0: snprintf(buf, sizeof buf, "abcdef"); break;
		case 1: snprintf(buf, sizeof buf, "%.*s", (int)(d2 - good), good); break;
		case 2: snprintf(buf, sizeof buf, "%s.abc", good); break;
		case 3: snprintf(buf, sizeof buf, "%s", d1); break;
		case 4: snprintf(buf, sizeof buf, "%.*s%s", (int)hl + 1, good, d2); break;
		case 5: snprintf(buf, sizeof buf, "%s=", good); break;
		case 6: snprintf(buf, sizeof buf, "%s", good); buf[1] = '+'; break;
		case 7: snprintf(buf, sizeof buf, "%.*sA%s", (int)hl, good, d1); break;
		case 8:
			/* H_HS is 27 bytes: 36 characters, so use a 26-byte header (35 chars; the last carries 2 spare bits) */
			{
				char h[64];
				b64url((const unsigned char *)"{\"alg\":\"HS256\",\"typ\":\"JW\"}", 26, h);
				size_t n = strlen(h);
				h[n - 1] = h[n - 1] == 'A' ? 'B' : (char)(h[n - 1] + 1);
				snprintf(buf, sizeof buf, "%s%s", h, d1);
			}
			break;
		case 9:
			memset(buf, 'A', AUTH_JWT_MAX + 8);
			buf[10] = '.';
			buf[20] = '.';
			buf[AUTH_JWT_MAX + 8] = '\0';
			break;
		case 10: snprintf(buf, sizeof buf, ".."); break;
		case 11: snprintf(buf, sizeof buf, "%.*s=%s", (int)hl, good, d1); break;
		}
		auth_jwt_rules rules = {NULL, NULL, 0};
		auth_jwt_claims out;
		const char *why = NULL;
		if (auth_jwt_verify(k_hs, buf, strlen(buf), &rules, NOW * 1000000, &out, &why) == 0)
			fail_msg("%s: accepted", raw[i].name);
		if (why == NULL || strstr(why, raw[i].why) == NULL)
			fail_msg("%s: reason '%s', want '%s'", raw[i].name, why ? why : "(null)", raw[i].why);
	}
	free(good);
}

static void test_huge_claims_are_bounded(void **state)
{
	(void)state;
	/* A valid token with 2.5 KB of claims is fine; one whose whole text passes AUTH_JWT_MAX is refused
	 * before any decoding. */
	char claims[4000];
	auth_jwt_rules rules = {NULL, NULL, 0};
	auth_jwt_claims out;
	const char *why;
	for (size_t pad = 1800; pad <= 3200; pad += 1400) {
		snprintf(claims, sizeof claims, "{\"sub\":\"42\",\"exp\":1700000300,\"x\":\"%0*d\"}", (int)pad, 0);
		char *t = make_jwt(H_HS, claims, S_HS);
		int rc = auth_jwt_verify(k_hs, t, strlen(t), &rules, NOW * 1000000, &out, &why);
		if (strlen(t) <= AUTH_JWT_MAX)
			assert_int_equal(rc, 0);
		else {
			assert_int_equal(rc, -1);
			assert_string_equal(why, "token too long");
		}
		free(t);
	}
}

static void test_looks(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		bool want;
	} t[] = {
		{"a.b.c", true}, {"a.b.", true}, {"a..c", true}, {".b.c", false}, {"a.b", false},
		{"a.b.c.d", false}, {"opaque-token", false}, {"", false}, {"..", false},
	};
	for (size_t i = 0; i < NELEM(t); i++)
		if (auth_jwt_looks(t[i].s, strlen(t[i].s)) != t[i].want) fail_msg("looks(\"%s\") != %d", t[i].s, t[i].want);
}

static void test_cache_key_is_not_the_plain_hash(void **state)
{
	(void)state;
	uint8_t a[32], b[32], plain[32];
	unsigned int n = 32;
	auth_jwt_cache_key("a.b.c", 5, a);
	auth_jwt_cache_key("a.b.d", 5, b);
	EVP_Digest("a.b.c", 5, plain, &n, EVP_sha256(), NULL);
	assert_memory_not_equal(a, b, 32);
	assert_memory_not_equal(a, plain, 32);
}

/* ---- key files ---- */

static void expect_key(const char *name, const void *buf, size_t len, int want_alg, const char *want_err)
{
	char err[256] = "";
	auth_jwt_key *k = auth_jwt_key_from_mem(buf, len, err, sizeof err);
	if (want_err == NULL) {
		if (k == NULL) fail_msg("%s: refused: %s", name, err);
		if ((int)auth_jwt_key_alg(k) != want_alg) fail_msg("%s: alg %d", name, (int)auth_jwt_key_alg(k));
	} else {
		if (k != NULL) fail_msg("%s: accepted", name);
		if (strstr(err, want_err) == NULL) fail_msg("%s: error '%s', want '%s'", name, err, want_err);
	}
	auth_jwt_key_free(k);
}

static void test_key_kinds(void **state)
{
	(void)state;
	EVP_PKEY *rsa1024 = EVP_RSA_gen(1024), *p384 = EVP_EC_gen("P-384"),
	         *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(rsa1024);
	assert_non_null(p384);
	assert_non_null(ed);
	char *pem1024 = pub_pem(rsa1024), *pem384 = pub_pem(p384), *pemed = pub_pem(ed), *privrsa = priv_pem(rsa),
	     *privec = priv_pem(ec);
	char lead[4096];
	snprintf(lead, sizeof lead, "\n  %s", ec_pem);
	char broken[] = "-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n";
	char cert[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
	char pkcs1[] = "-----BEGIN RSA PUBLIC KEY-----\nMIIB\n-----END RSA PUBLIC KEY-----\n";

	expect_key("32-byte secret", SECRET, 32, AUTH_JWT_HS256, NULL);
	expect_key("31-byte secret", SECRET, 31, 0, "31 bytes");
	expect_key("empty", "", 0, 0, "is empty");
	expect_key("RSA 2048", rsa_pem, strlen(rsa_pem), AUTH_JWT_RS256, NULL);
	expect_key("EC P-256", ec_pem, strlen(ec_pem), AUTH_JWT_ES256, NULL);
	expect_key("EC P-256 after blank lines", lead, strlen(lead), AUTH_JWT_ES256, NULL);
	expect_key("RSA 1024", pem1024, strlen(pem1024), 0, "1024 bits");
	expect_key("EC P-384", pem384, strlen(pem384), 0, "secp384r1");
	expect_key("Ed25519", pemed, strlen(pemed), 0, "ED25519");
	expect_key("RSA private key", privrsa, strlen(privrsa), 0, "private key");
	expect_key("EC private key", privec, strlen(privec), 0, "private key");
	expect_key("broken PEM", broken, strlen(broken), 0, "not a PEM public key");
	expect_key("certificate", cert, strlen(cert), 0, "certificate");
	expect_key("PKCS#1", pkcs1, strlen(pkcs1), 0, "PKCS#1");
	free(pem1024);
	free(pem384);
	free(pemed);
	free(privrsa);
	free(privec);
	EVP_PKEY_free(rsa1024);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(ed);
}

static void test_key_files(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_jwt.XXXXXX", path[128], err[256];
	assert_non_null(mkdtemp(dir));

	err[0] = '\0';
	snprintf(path, sizeof path, "%s/missing", dir);
	assert_null(auth_jwt_key_load(path, err, sizeof err));
	assert_non_null(strstr(err, "cannot be opened"));

	assert_null(auth_jwt_key_load(dir, err, sizeof err));
	assert_non_null(strstr(err, "not a regular file"));

	snprintf(path, sizeof path, "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_null(auth_jwt_key_load(path, err, sizeof err)); /* and does not block */
	assert_non_null(strstr(err, "not a regular file"));
	unlink(path);

	snprintf(path, sizeof path, "%s/big", dir);
	FILE *f = fopen(path, "w");
	for (int i = 0; i < AUTH_JWT_KEY_FILE_MAX + 1; i++) fputc('x', f);
	fclose(f);
	assert_null(auth_jwt_key_load(path, err, sizeof err));
	assert_non_null(strstr(err, "larger than"));

	f = fopen(path, "w");
	fputs(ec_pem, f);
	fclose(f);
	auth_jwt_key *k = auth_jwt_key_load(path, err, sizeof err);
	assert_non_null(k);
	assert_int_equal(auth_jwt_key_alg(k), AUTH_JWT_ES256);
	auth_jwt_key_free(k);

	f = fopen(path, "w"); /* the secret is the file's bytes: the trailing newline is part of it */
	fputs(SECRET "\n", f);
	fclose(f);
	k = auth_jwt_key_load(path, err, sizeof err);
	assert_non_null(k);
	char *t = make_jwt(H_HS, C_OK, S_HS);
	auth_jwt_rules rules = {NULL, NULL, 0};
	auth_jwt_claims out;
	const char *why;
	assert_int_equal(auth_jwt_verify(k, t, strlen(t), &rules, NOW * 1000000, &out, &why), -1);
	assert_string_equal(why, "bad signature");
	free(t);
	auth_jwt_key_free(k);
	unlink(path);
	rmdir(dir);
	auth_jwt_key_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_table),
		cmocka_unit_test(test_exp_is_reported_in_microseconds_with_leeway),
		cmocka_unit_test(test_malformed_segments),
		cmocka_unit_test(test_huge_claims_are_bounded),
		cmocka_unit_test(test_looks),
		cmocka_unit_test(test_cache_key_is_not_the_plain_hash),
		cmocka_unit_test(test_key_kinds),
		cmocka_unit_test(test_key_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
