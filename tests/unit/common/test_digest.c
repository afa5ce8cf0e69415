/*
 * tests/unit/common/test_digest.c — SHA-256 (common/digest.c), against known answers.
 *
 * Owns that cm_sha256 is SHA-256 as FIPS 180-4 defines it: the published test vectors (the empty string,
 * "abc", the 448- and 896-bit messages, one million 'a'), the padding edges (55 bytes fit one block with
 * its length, 64 need a second), bytes after a NUL counted, every one of the 32 output bytes written, and
 * the same answer whatever the caller's buffer alignment. The auth room's token hash (test_auth.c) and the
 * policy room's ETag (test_policy_body.c) rest on this.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/digest.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void to_hex(const uint8_t d[CM_SHA256_LEN], char hex[2 * CM_SHA256_LEN + 1])
{
	for (size_t i = 0; i < CM_SHA256_LEN; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* The digest of len bytes of `data`, as lowercase hex, asserting success. */
static void sha_hex(const void *data, size_t len, char hex[2 * CM_SHA256_LEN + 1])
{
	uint8_t d[CM_SHA256_LEN];
	assert_int_equal(cm_sha256(data, len, d), 0);
	to_hex(d, hex);
}

static void test_published_vectors(void **state)
{
	static const struct {
		const char *name, *data, *hex;
	} cases[] = {
		{"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"448 bits", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
		{"896 bits",
		 "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrst"
		 "nopqrstu",
		 "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
	};
	(void)state;

	for (size_t i = 0; i < NELEM(cases); i++) {
		char hex[2 * CM_SHA256_LEN + 1];
		sha_hex(cases[i].data, strlen(cases[i].data), hex);
		if (strcmp(hex, cases[i].hex) != 0) fail_msg("sha256(%s):\n   got %s\n  want %s", cases[i].name, hex, cases[i].hex);
	}
}

/* Runs of 'a': one million (the published long vector) and the lengths around the block padding. */
static void test_runs_of_a_across_the_padding_edges(void **state)
{
	static const struct {
		size_t n;
		const char *hex;
	} cases[] = {
		{55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
		{64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
		{1000, "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"},
		{1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
	};
	char *a = malloc(1000000);
	(void)state;

	assert_non_null(a);
	memset(a, 'a', 1000000);
	for (size_t i = 0; i < NELEM(cases); i++) {
		char hex[2 * CM_SHA256_LEN + 1];
		sha_hex(a, cases[i].n, hex);
		if (strcmp(hex, cases[i].hex) != 0) fail_msg("sha256('a' x %zu):\n   got %s\n  want %s", cases[i].n, hex, cases[i].hex);
	}
	free(a);
}

/* The length counts, not a terminator: an ETag's bytes and a token's may hold anything. */
static void test_bytes_after_a_nul_count(void **state)
{
	char hex[2 * CM_SHA256_LEN + 1];
	(void)state;

	sha_hex("a\0b", 3, hex);
	assert_string_equal(hex, "59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138");
	sha_hex("a\0c", 3, hex);
	assert_string_not_equal(hex, "59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138");
}

/* Every output byte is written, and only those: whatever the buffer held before, the answer is the same. */
static void test_writes_exactly_the_32_output_bytes(void **state)
{
	uint8_t buf[CM_SHA256_LEN + 8];
	char hex[2 * CM_SHA256_LEN + 1];
	(void)state;

	for (int fill = 0; fill < 256; fill += 0x55) {
		memset(buf, fill, sizeof buf);
		assert_int_equal(cm_sha256("abc", 3, buf), 0);
		to_hex(buf, hex);
		assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
		for (size_t i = CM_SHA256_LEN; i < sizeof buf; i++) assert_int_equal(buf[i], fill);
	}
}

/* Input at every alignment within a word gives one answer (the digest reads bytes, not words). */
static void test_input_alignment_does_not_matter(void **state)
{
	char buf[3 + 8];
	char hex[2 * CM_SHA256_LEN + 1];
	(void)state;

	for (size_t off = 0; off < 8; off++) {
		memcpy(buf + off, "abc", 3);
		sha_hex(buf + off, 3, hex);
		assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_published_vectors),
		cmocka_unit_test(test_runs_of_a_across_the_padding_edges),
		cmocka_unit_test(test_bytes_after_a_nul_count),
		cmocka_unit_test(test_writes_exactly_the_32_output_bytes),
		cmocka_unit_test(test_input_alignment_does_not_matter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
