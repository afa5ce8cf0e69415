/*
 * auth/jwt.c — see jwt.h. libcrypto directly rather than a JWT library: the algorithm is fixed by the key
 * before the token is read (the usual JWT-library trap is letting the header choose), the signature check
 * is three small calls per algorithm, and every buffer is on the stack with a size derived from
 * AUTH_JWT_MAX. Base64url is decoded strictly (no padding, no foreign characters, unused bits zero) so one
 * token has exactly one spelling; JSON is parsed with duplicate keys refused, so no two readers can
 * disagree about a claim.
 */
#include "auth/jwt.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#define SEG_MAX (AUTH_JWT_MAX / 4 * 3 + 3) /* decoded bytes of any one segment */
#define EXP_MAX_S INT64_C(253402300799)    /* 9999-12-31T23:59:59Z: keeps every time in int64 microseconds */

struct auth_jwt_key {
	auth_jwt_alg alg;
	EVP_PKEY *pkey; /* RS256, ES256 */
	size_t secret_len;
	unsigned char *secret; /* HS256 */
};

/* ---- keys ---- */

static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0; /* a public key needs none; never prompt on a terminal */
}

static bool contains(const char *buf, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(buf + i, needle, n) == 0) return true;
	return false;
}

static auth_jwt_key *load_pem(auth_jwt_key *k, const char *buf, size_t len, char *err, size_t errlen)
{
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	EVP_PKEY *pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, no_password, NULL) : NULL;
	BIO_free(bio);
	ERR_clear_error();
	if (pkey == NULL) {
		if (contains(buf, len, "PRIVATE KEY"))
			snprintf(err, errlen, "is a private key; give the public key (openssl pkey -in KEY -pubout -out FILE)");
		else if (contains(buf, len, "BEGIN CERTIFICATE"))
			snprintf(err, errlen, "is a certificate; give its public key (openssl x509 -in CERT -pubkey -noout)");
		else if (contains(buf, len, "BEGIN RSA PUBLIC KEY"))
			snprintf(err, errlen, "is a PKCS#1 RSA key; convert it (openssl rsa -RSAPublicKey_in -in KEY -pubout)");
		else
			snprintf(err, errlen, "is not a PEM public key (-----BEGIN PUBLIC KEY-----)");
		goto err;
	}
	k->pkey = pkey;
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA: {
		int bits = EVP_PKEY_get_bits(pkey);
		if (bits < AUTH_JWT_RSA_MIN_BITS) {
			snprintf(err, errlen, "holds an RSA key of %d bits; at least %d are required", bits, AUTH_JWT_RSA_MIN_BITS);
			goto err;
		}
		k->alg = AUTH_JWT_RS256;
		return k;
	}
	case EVP_PKEY_EC: {
		char group[64] = "";
		size_t glen = 0;
		if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &glen) != 1) group[0] = '\0';
		ERR_clear_error();
		if (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0) {
			snprintf(err, errlen, "holds an EC key on curve '%s'; only P-256 (ES256) is supported",
			         group[0] ? group : "unknown");
			goto err;
		}
		k->alg = AUTH_JWT_ES256;
		return k;
	}
	default: {
		const char *type = EVP_PKEY_get0_type_name(pkey);
		snprintf(err, errlen, "holds a %s public key; only RSA (RS256) and EC P-256 (ES256) keys are supported",
		         type ? type : "unknown");
		goto err;
	}
	}
err:
	auth_jwt_key_free(k);
	return NULL;
}

auth_jwt_key *auth_jwt_key_from_mem(const void *buf, size_t len, char *err, size_t errlen)
{
	const char *s = buf;
	size_t i = 0;
	auth_jwt_key *k;

	if (len == 0) {
		snprintf(err, errlen, "is empty");
		return NULL;
	}
	if (len > AUTH_JWT_KEY_FILE_MAX) {
		snprintf(err, errlen, "is larger than %d bytes", AUTH_JWT_KEY_FILE_MAX);
		return NULL;
	}
	k = calloc(1, sizeof *k);
	if (k == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++;
	if (len - i >= 11 && memcmp(s + i, "-----BEGIN ", 11) == 0) return load_pem(k, s + i, len - i, err, errlen);

	/* Anything else is an HMAC secret, byte for byte (a trailing newline included). */
	if (len < AUTH_JWT_SECRET_MIN) {
		snprintf(err, errlen, "holds an HS256 secret of %zu bytes; use at least %d random bytes", len, AUTH_JWT_SECRET_MIN);
		free(k);
		return NULL;
	}
	k->secret = malloc(len);
	if (k->secret == NULL) {
		snprintf(err, errlen, "out of memory");
		free(k);
		return NULL;
	}
	memcpy(k->secret, buf, len);
	k->secret_len = len;
	k->alg = AUTH_JWT_HS256;
	return k;
}

auth_jwt_key *auth_jwt_key_load(const char *path, char *err, size_t errlen)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	auth_jwt_key *k = NULL;
	struct stat st;
	/* Non-blocking: a FIFO or device named by mistake must not stall start-up or a reload. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		snprintf(err, errlen, "cannot be opened: %s", strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "is not a regular file");
		goto out;
	}
	buf = malloc(AUTH_JWT_KEY_FILE_MAX + 1);
	if (buf == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while (len <= AUTH_JWT_KEY_FILE_MAX) {
		ssize_t got = read(fd, buf + len, AUTH_JWT_KEY_FILE_MAX + 1 - len);
		if (got < 0 && errno == EINTR) continue;
		if (got < 0) {
			snprintf(err, errlen, "cannot be read: %s", strerror(errno));
			goto out;
		}
		if (got == 0) break;
		len += (size_t)got;
	}
	k = auth_jwt_key_from_mem(buf, len, err, errlen);
out:
	if (buf) OPENSSL_cleanse(buf, len);
	free(buf);
	if (fd >= 0) close(fd);
	return k;
}

void auth_jwt_key_free(auth_jwt_key *k)
{
	if (k == NULL) return;
	EVP_PKEY_free(k->pkey);
	if (k->secret) OPENSSL_cleanse(k->secret, k->secret_len);
	free(k->secret);
	free(k);
}

auth_jwt_alg auth_jwt_key_alg(const auth_jwt_key *k)
{
	return k->alg;
}

const char *auth_jwt_alg_name(auth_jwt_alg a)
{
	switch (a) {
	case AUTH_JWT_HS256: return "HS256";
	case AUTH_JWT_RS256: return "RS256";
	case AUTH_JWT_ES256: return "ES256";
	}
	return "?";
}

/* ---- tokens ---- */

void auth_jwt_cache_key(const char *tok, size_t len, uint8_t out[32])
{
	static const char domain[] = "pollgate-jwt"; /* and its NUL: no token byte can extend the prefix */
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 32;
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, domain, sizeof domain) != 1 || EVP_DigestUpdate(ctx, tok, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &n) != 1)
		memset(out, 0, 32);
	EVP_MD_CTX_free(ctx);
}

bool auth_jwt_looks(const char *tok, size_t len)
{
	const char *d1 = memchr(tok, '.', len);
	if (d1 == NULL || d1 == tok) return false;
	const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok));
	if (d2 == NULL) return false;
	return memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) == NULL;
}

static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '-') return 62;
	if (c == '_') return 63;
	return -1;
}

/* Strict base64url without padding (RFC 7515 §2): one spelling per byte string. */
static int b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *outlen, const char **why)
{
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		if (b64url_value((unsigned char)s[i]) < 0) {
			*why = s[i] == '=' ? "base64url padding" : "not base64url";
			return -1;
		}
	}
	if (n % 4 == 1) {
		*why = "segment length impossible in base64url";
		return -1;
	}
	if ((n / 4) * 3 + 2 > cap) {
		*why = "segment too long";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		int v = b64url_value((unsigned char)s[i]); /* >= 0: checked above */
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0) { /* the unused low bits of the last character must be zero */
		*why = "non-canonical base64url";
		return -1;
	}
	*outlen = o;
	return 0;
}

static json_t *parse_object(const unsigned char *buf, size_t len)
{
	json_error_t jerr;
	json_t *j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static int verify_hs256(const auth_jwt_key *k, const char *data, size_t dlen, const unsigned char *sig, size_t slen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	if (slen != 32) return -1;
	if (HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)data, dlen, mac, &maclen) == NULL ||
	    maclen != 32)
		return -1;
	int rc = CRYPTO_memcmp(mac, sig, 32) == 0 ? 0 : -1;
	OPENSSL_cleanse(mac, sizeof mac);
	return rc;
}

static int verify_pkey(EVP_PKEY *pkey, const char *data, size_t dlen, const unsigned char *sig, size_t slen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = -1;
	if (ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1 &&
	    EVP_DigestVerify(ctx, sig, slen, (const unsigned char *)data, dlen) == 1)
		rc = 0;
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* JWS ES256 carries r||s, 32 bytes each (RFC 7518 §3.4); libcrypto verifies the DER SEQUENCE of X9.62. */
static int verify_es256(EVP_PKEY *pkey, const char *data, size_t dlen, const unsigned char *sig, size_t slen)
{
	unsigned char der[80], *p = der;
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	int rc = -1, n;

	if (slen != 64) return -1;
	es = ECDSA_SIG_new();
	r = BN_bin2bn(sig, 32, NULL);
	s = BN_bin2bn(sig + 32, 32, NULL);
	if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) goto out;
	r = s = NULL; /* owned by es now */
	n = i2d_ECDSA_SIG(es, NULL);
	if (n <= 0 || (size_t)n > sizeof der || i2d_ECDSA_SIG(es, &p) != n) goto out;
	rc = verify_pkey(pkey, data, dlen, der, (size_t)n);
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return rc;
}

/* A NumericDate (RFC 7519 §2) as microseconds; -1 when it is not a number in [0, year 9999]. */
static int numeric_date_us(const json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		json_int_t s = json_integer_value(v);
		if (s < 0 || s > EXP_MAX_S) return -1;
		*out = (int64_t)s * 1000000;
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (!isfinite(d) || d < 0 || d > (double)EXP_MAX_S) return -1;
		*out = (int64_t)(d * 1e6);
		return 0;
	}
	return -1;
}

/* sub as a user id: a positive JSON integer, or a string of decimal digits without a leading zero. */
static int subject(const json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n <= 0) return -1;
		*out = (int64_t)n;
		return 0;
	}
	if (!json_is_string(v)) return -1;
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (n == 0 || n > 19 || s[0] == '0') return -1;
	int64_t id = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') return -1;
		int d = s[i] - '0';
		if (id > (INT64_MAX - d) / 10) return -1;
		id = id * 10 + d;
	}
	*out = id;
	return 0;
}

static bool str_is(const json_t *v, const char *want)
{
	return json_is_string(v) && json_string_length(v) == strlen(want) && strcmp(json_string_value(v), want) == 0;
}

static int check_audience(const json_t *aud, const char *want, const char **why)
{
	bool configured = want != NULL && want[0] != '\0';
	if (aud == NULL) {
		if (!configured) return 0;
		*why = "aud missing";
		return -1;
	}
	if (!configured) {
		*why = "aud present but jwt_audience is not set";
		return -1;
	}
	if (json_is_string(aud)) {
		if (str_is(aud, want)) return 0;
	} else if (json_is_array(aud) && json_array_size(aud) > 0) {
		size_t i;
		json_t *e;
		bool found = false;
		json_array_foreach(aud, i, e) {
			if (!json_is_string(e)) {
				*why = "aud holds a non-string";
				return -1;
			}
			if (str_is(e, want)) found = true;
		}
		if (found) return 0;
	} else {
		*why = "aud is neither a string nor an array of strings";
		return -1;
	}
	*why = "aud does not name this gateway";
	return -1;
}

int auth_jwt_verify(const auth_jwt_key *k, const char *tok, size_t len, const auth_jwt_rules *rules, int64_t now_us,
                    auth_jwt_claims *out, const char **why)
{
	unsigned char buf[SEG_MAX];
	size_t blen = 0;
	json_t *hdr = NULL, *claims = NULL;
	const char *d1, *d2;
	int64_t exp_us = 0, nbf_us = 0, leeway_us, uid = 0;
	int rc = -1;

	*why = "?";
	if (k == NULL) {
		*why = "no key configured";
		return -1;
	}
	if (len > AUTH_JWT_MAX) {
		*why = "token too long";
		return -1;
	}
	if (!auth_jwt_looks(tok, len)) {
		*why = "not three dot-separated segments";
		return -1;
	}
	d1 = memchr(tok, '.', len);
	d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok));
	if (d2 == d1 + 1) {
		*why = "empty payload segment";
		return -1;
	}
	if (d2 + 1 == tok + len) {
		*why = "unsigned token (empty signature)";
		return -1;
	}

	/* Header: the algorithm must be the key's, decided before any signature work. */
	if (b64url_decode(tok, (size_t)(d1 - tok), buf, sizeof buf, &blen, why) != 0) goto out;
	hdr = parse_object(buf, blen);
	if (hdr == NULL) {
		*why = "header is not a JSON object";
		goto out;
	}
	json_t *alg = json_object_get(hdr, "alg");
	if (!json_is_string(alg)) {
		*why = "alg missing";
		goto out;
	}
	if (strcasecmp(json_string_value(alg), "none") == 0) {
		*why = "alg none";
		goto out;
	}
	if (!str_is(alg, auth_jwt_alg_name(k->alg))) {
		*why = "alg not the one the configured key allows";
		goto out;
	}
	json_t *typ = json_object_get(hdr, "typ");
	if (typ != NULL && !(json_is_string(typ) && strcasecmp(json_string_value(typ), "JWT") == 0 &&
	                     json_string_length(typ) == 3)) {
		*why = "typ is not JWT";
		goto out;
	}
	if (json_object_get(hdr, "crit") != NULL) {
		*why = "crit header extensions are not supported";
		goto out;
	}

	/* Signature over the ASCII of "header.payload". */
	if (b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - tok), buf, sizeof buf, &blen, why) != 0) goto out;
	int sig_ok;
	switch (k->alg) {
	case AUTH_JWT_HS256: sig_ok = verify_hs256(k, tok, (size_t)(d2 - tok), buf, blen); break;
	case AUTH_JWT_RS256:
		sig_ok = blen == (size_t)EVP_PKEY_get_size(k->pkey) ? verify_pkey(k->pkey, tok, (size_t)(d2 - tok), buf, blen)
		                                                     : -1;
		break;
	case AUTH_JWT_ES256: sig_ok = verify_es256(k->pkey, tok, (size_t)(d2 - tok), buf, blen); break;
	default: sig_ok = -1; break;
	}
	ERR_clear_error();
	if (sig_ok != 0) {
		*why = "bad signature";
		goto out;
	}

	/* Claims, only once the signature vouches for them. */
	if (b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf, sizeof buf, &blen, why) != 0) goto out;
	claims = parse_object(buf, blen);
	if (claims == NULL) {
		*why = "claims are not a JSON object";
		goto out;
	}
	leeway_us = (rules && rules->leeway_s > 0 ? rules->leeway_s : 0) * 1000000;
	json_t *v = json_object_get(claims, "exp");
	if (v == NULL) {
		*why = "exp missing";
		goto out;
	}
	if (numeric_date_us(v, &exp_us) != 0) {
		*why = "exp is not a NumericDate";
		goto out;
	}
	if (now_us >= exp_us + leeway_us) {
		*why = "expired";
		goto out;
	}
	v = json_object_get(claims, "nbf");
	if (v != NULL) {
		if (numeric_date_us(v, &nbf_us) != 0) {
			*why = "nbf is not a NumericDate";
			goto out;
		}
		if (now_us + leeway_us < nbf_us) {
			*why = "not yet valid (nbf)";
			goto out;
		}
	}
	if (rules && rules->issuer && rules->issuer[0] != '\0' && !str_is(json_object_get(claims, "iss"), rules->issuer)) {
		*why = "iss does not match jwt_issuer";
		goto out;
	}
	if (check_audience(json_object_get(claims, "aud"), rules ? rules->audience : NULL, why) != 0) goto out;
	v = json_object_get(claims, "sub");
	if (v == NULL) {
		*why = "sub missing";
		goto out;
	}
	if (subject(v, &uid) != 0) {
		*why = "sub is not a positive 64-bit user id";
		goto out;
	}
	out->user_id = uid;
	out->exp_us = exp_us + leeway_us;
	*why = NULL;
	rc = 0;
out:
	json_decref(hdr);
	json_decref(claims);
	OPENSSL_cleanse(buf, sizeof buf);
	return rc;
}
