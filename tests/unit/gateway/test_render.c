/*
 * tests/unit/gateway/test_render.c — gateway/render.c: the lines every waiter of one version shares,
 * built once. The bytes are pinned: the status line, the shared headers in order, the Content-Length of
 * the body (a 200 only), each line ending in CRLF and no blank line (each answer ends its own head after
 * its own lines). The write itself (writev, the bufferevent fallback, keep-alive) needs a connection:
 * tests/integration/test_render.py reads it off real sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "gateway/render.h"

static const char ETAG[] = "\"0123456789abcdef0123456789abcdef\"";

static void assert_head(const gw_render *rd, int code, const char *want)
{
	size_t len = 0;
	const char *got = gw_render_head(rd, code, &len);
	if (len != strlen(want) || memcmp(got, want, len) != 0)
		fail_msg("head %d:\n%.*s\nwant:\n%s", code, (int)len, got, want);
}

static void test_a_200_head_carries_the_shared_headers_and_the_body_length(void **state)
{
	(void)state;
	gw_render *rd = gw_render_new(ETAG, 344);
	assert_non_null(rd);
	assert_head(rd, 200,
	            "HTTP/1.1 200 OK\r\n"
	            "Cache-Control: no-store\r\n"
	            "X-Content-Type-Options: nosniff\r\n"
	            "ETag: \"0123456789abcdef0123456789abcdef\"\r\n"
	            "Content-Type: application/json\r\n"
	            "Content-Length: 344\r\n");
	free(rd);
}

static void test_a_304_head_has_the_etag_and_no_body_headers(void **state)
{
	(void)state;
	gw_render *rd = gw_render_new(ETAG, 344);
	assert_non_null(rd);
	assert_head(rd, 304,
	            "HTTP/1.1 304 Not Modified\r\n"
	            "Cache-Control: no-store\r\n"
	            "X-Content-Type-Options: nosniff\r\n"
	            "ETag: \"0123456789abcdef0123456789abcdef\"\r\n");
	free(rd);
}

static void test_body_lengths_are_written_whole(void **state)
{
	(void)state;
	const size_t lens[] = {0, 1, 999999, (size_t)1 << 40};
	const char *want[] = {"Content-Length: 0\r\n", "Content-Length: 1\r\n", "Content-Length: 999999\r\n",
	                      "Content-Length: 1099511627776\r\n"};
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		gw_render *rd = gw_render_new(ETAG, lens[i]);
		size_t len;
		const char *h = gw_render_head(rd, 200, &len);
		size_t wl = strlen(want[i]);
		assert_true(len > wl);
		if (memcmp(h + len - wl, want[i], wl) != 0) fail_msg("length %zu: %.*s", lens[i], (int)len, h);
		free(rd);
	}
}

static void test_an_etag_too_long_to_be_ours_renders_nothing(void **state)
{
	(void)state;
	char big[300];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_null(gw_render_new(big, 1)); /* the caller answers through gw_http_reply() instead */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_200_head_carries_the_shared_headers_and_the_body_length),
	    cmocka_unit_test(test_a_304_head_has_the_etag_and_no_body_headers),
	    cmocka_unit_test(test_body_lengths_are_written_whole),
	    cmocka_unit_test(test_an_etag_too_long_to_be_ours_renders_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
