/*
 * tests/unit/common/test_hex.c — common/hex.c and common/digest.c: the lower-case hex encoder every room shares,
 * and the SHA-256 that policy/'s ETag and auth/'s token hash come from. The SHA-256 rows are the FIPS
 * 180-2 examples, so the digest is pinned byte for byte; the ETag row ties the two to what
 * tests/integration computes from a body (the first 32 hex digits of its SHA-256, quoted).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/digest.h"
#include "common/hex.h"
#include "policy/policy.h"

static void test_hex_encodes_every_byte_value(void **state)
{
	(void)state;
	uint8_t all[256];
	char out[2 * 256 + 1];
	for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
	memset(out, 'X', sizeof out);
	cm_hex_encode(all, sizeof all, out);
	assert_int_equal(strlen(out), 512);
	for (int i = 0; i < 256; i++) {
		char want[3];
		snprintf(want, sizeof want, "%02x", i);
		if (memcmp(out + 2 * i, want, 2) != 0) fail_msg("byte %d: %.2s, want %s", i, out + 2 * i, want);
	}
}

static void test_hex_empty_is_the_empty_string(void **state)
{
	(void)state;
	char out[1] = {'X'};
	cm_hex_encode("", 0, out);
	assert_int_equal(out[0], '\0');
}

static void test_hex_writes_no_more_than_2n_plus_1(void **state)
{
	(void)state;
	char out[8];
	memset(out, 'X', sizeof out);
	cm_hex_encode("\xab\x01", 2, out);
	assert_string_equal(out, "ab01");
	assert_int_equal(out[5], 'X');
}

static void test_sha256_fips_vectors(void **state)
{
	(void)state;
	static const struct {
		const char *in, *want;
	} rows[] = {
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		uint8_t md[CM_SHA256_LEN];
		char hex[2 * CM_SHA256_LEN + 1];
		assert_int_equal(cm_sha256(rows[i].in, strlen(rows[i].in), md), 0);
		cm_hex_encode(md, sizeof md, hex);
		if (strcmp(hex, rows[i].want) != 0) fail_msg("sha256(\"%s\") = %s, want %s", rows[i].in, hex, rows[i].want);
	}
}

static void test_etag_is_the_quoted_first_half_of_sha256(void **state)
{
	(void)state;
	char etag[POL_ETAG_LEN + 1];
	pol_etag("abc", 3, etag);
	assert_string_equal(etag, "\"ba7816bf8f01cfea414140de5dae2223\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex_encodes_every_byte_value),
		cmocka_unit_test(test_hex_empty_is_the_empty_string),
		cmocka_unit_test(test_hex_writes_no_more_than_2n_plus_1),
		cmocka_unit_test(test_sha256_fips_vectors),
		cmocka_unit_test(test_etag_is_the_quoted_first_half_of_sha256),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
