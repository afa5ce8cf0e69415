/*
 * tests/unit/gateway/test_cidr.c — who the client of a request is (gateway/cidr.c gw_cidr_client_resolve), as a
 * specification.
 *
 * The peer is the client unless it is a trusted proxy; then X-Forwarded-For is walked from the right,
 * past trusted hops, to the first hop that is not trusted. A hop that does not parse as an address stops
 * the walk: the client is then the last hop that did parse (or the peer). The first row of the second
 * table is the input tests/fuzz/fuzz_request found, where a junk hop left of a trusted one used to give
 * an empty, all-zero client instead of that trusted hop.
 *
 * Every test walks a table; a failing row is reported with its input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "gateway/cidr.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static gw_cidr trusted_items[3];
static gw_cidr_list trusted = {trusted_items, 3};

static int setup(void **state)
{
	static const char *const blocks[] = {"127.0.0.0/8", "10.0.0.0/8", "::1/128"};
	(void)state;
	for (size_t i = 0; i < NELEM(blocks); i++)
		if (gw_cidr_parse(blocks[i], &trusted_items[i]) != 0) return -1;
	return 0;
}

/* A sockaddr for a literal address (v4 or v6). */
static const struct sockaddr *addr(const char *text, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *in = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)ss;
	if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
	} else {
		assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
		in6->sin6_family = AF_INET6;
	}
	return (const struct sockaddr *)ss;
}

struct resolve_case {
	const char *peer; /* NULL: no peer */
	const char *xff;  /* NULL: no header */
	const char *want; /* the client's text; "" when unknown */
};

static void run_cases(const struct resolve_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct sockaddr_storage ps, ws;
		uint8_t key[16], want_key[16];
		char text[INET6_ADDRSTRLEN];
		const struct sockaddr *peer = cases[i].peer ? addr(cases[i].peer, &ps) : NULL;

		gw_cidr_client_resolve(&trusted, peer, cases[i].xff, key, text, sizeof text);
		if (strcmp(text, cases[i].want) != 0)
			fail_msg("peer %s, X-Forwarded-For <%s>: client '%s', want '%s'", cases[i].peer ? cases[i].peer : "none",
			         cases[i].xff ? cases[i].xff : "(none)", text, cases[i].want);
		memset(want_key, 0, sizeof want_key);
		if (cases[i].want[0] != '\0') assert_true(gw_cidr_addr_key(addr(cases[i].want, &ws), want_key));
		assert_memory_equal(key, want_key, 16);
	}
}

static void test_client_is_the_peer_unless_a_trusted_proxy_forwards(void **state)
{
	static const struct resolve_case cases[] = {
		{"203.0.113.7", NULL, "203.0.113.7"},
		{"203.0.113.7", "1.2.3.4", "203.0.113.7"}, /* untrusted peer: its header is not believed */
		{"127.0.0.1", NULL, "127.0.0.1"},
		{"127.0.0.1", "198.51.100.9", "198.51.100.9"},
		{"127.0.0.1", "198.51.100.9, 10.0.0.5, 127.0.0.2", "198.51.100.9"},
		{"127.0.0.1", "5.6.7.8, 198.51.100.9", "198.51.100.9"}, /* the right-most untrusted hop */
		{"::1", " 2001:db8::1 ,::1", "2001:db8::1"},
		{"127.0.0.1", "10.0.0.1,127.0.0.1", "10.0.0.1"}, /* all trusted: the left-most */
		{NULL, "1.2.3.4", ""},
	};
	(void)state;
	run_cases(cases, NELEM(cases));
}

static void test_a_junk_hop_stops_the_walk_at_the_last_good_hop(void **state)
{
	static const struct resolve_case cases[] = {
		{"127.0.0.1", ".,10.2.0.2", "10.2.0.2"},
		{"127.0.0.1", "198.510.0.0.1 10.0.0.5, 127.0.0.2", "127.0.0.2"},
		{"127.0.0.1", "unknown, 10.0.0.5, 127.0.0.2", "10.0.0.5"},
		{"127.0.0.1", "1.2.3.4, , 10.0.0.5", "10.0.0.5"},   /* an empty hop is junk too */
		{"127.0.0.1", "1.2.3.4, 10.0.0.0/8", "127.0.0.1"}, /* a block is not an address */
		{"127.0.0.1", "", "127.0.0.1"},
		{"127.0.0.1", "1.2.3.4,", "127.0.0.1"},
	};
	(void)state;
	run_cases(cases, NELEM(cases));
}

/* The per-client cap's key: an IPv6 client is its first `prefix` bits; IPv4 (mapped) stays whole. */
static void test_ipv6_clients_are_keyed_on_their_prefix(void **state)
{
	static const struct {
		const char *addr;
		int prefix;
		const char *want; /* the key, as an address */
	} cases[] = {
		{"2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::"},
		{"2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6"},
		{"2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::"},
		{"2001:db8:1:2:3:4:5:6", 56, "2001:db8:1::"},
		{"2001:db8:1:2ff:3:4:5:6", 56, "2001:db8:1:200::"},
		{"2001:db8:ffff:ffff::1", 33, "2001:db8:8000::"},
		{"2001:db8:ffff:ffff::1", 32, "2001:db8::"},
		{"2001:db8::7", 127, "2001:db8::6"},
		{"::1", 64, "::"},
		{"203.0.113.7", 64, "203.0.113.7"},       /* IPv4: the whole address */
		{"::ffff:203.0.113.7", 32, "203.0.113.7"}, /* v4-mapped is IPv4 */
	};
	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct sockaddr_storage ss, ws;
		uint8_t key[16], want[16];
		assert_true(gw_cidr_addr_key(addr(cases[i].addr, &ss), key));
		assert_true(gw_cidr_addr_key(addr(cases[i].want, &ws), want));
		gw_cidr_key_prefix(key, cases[i].prefix);
		if (memcmp(key, want, 16) != 0) {
			char got[INET6_ADDRSTRLEN];
			inet_ntop(AF_INET6, key, got, sizeof got);
			fail_msg("%s keyed on /%d: %s, want %s", cases[i].addr, cases[i].prefix, got, cases[i].want);
		}
	}
}

/* metrics_allow is matched on the resolved client's key. */
static void test_match_key_is_match_on_the_address(void **state)
{
	static const char *const addrs[] = {"127.0.0.1", "10.9.9.9", "203.0.113.7", "::1", "::2", "::ffff:10.0.0.1"};
	(void)state;
	for (size_t i = 0; i < NELEM(addrs); i++) {
		struct sockaddr_storage ss;
		uint8_t key[16];
		const struct sockaddr *sa = addr(addrs[i], &ss);
		assert_true(gw_cidr_addr_key(sa, key));
		if (gw_cidr_match_key(&trusted, key) != gw_cidr_match(&trusted, sa)) fail_msg("%s", addrs[i]);
	}
	uint8_t zero[16] = {0};
	assert_false(gw_cidr_match_key(NULL, zero));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_is_the_peer_unless_a_trusted_proxy_forwards),
		cmocka_unit_test(test_a_junk_hop_stops_the_walk_at_the_last_good_hop),
		cmocka_unit_test(test_ipv6_clients_are_keyed_on_their_prefix),
		cmocka_unit_test(test_match_key_is_match_on_the_address),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
