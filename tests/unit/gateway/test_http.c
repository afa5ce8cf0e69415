/*
 * tests/unit/gateway/test_http.c — the pure HTTP vocabulary of gateway/http.c, as a specification.
 *
 * Owns what api.md says about the request line and the long-poll headers: which paths are routes and
 * which ids they carry (any id that is not a canonical positive int64 is "id 0", answered like a missing
 * resource), the ?wait= parameter (400 unless a non-negative decimal integer, capped, saturating), the
 * RFC 7240 `Prefer: wait=` preference (unreadable is ignored), the RFC 9110 If-None-Match comparison
 * (weak, list, "*", malformed matches nothing) and the metrics status slots. gw_http_reply/gw_http_error
 * need a live evhttp connection and are covered by the integration suite, not here.
 *
 * Every test walks a table; a failing row is reported with its input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "gateway/http.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define ID_MAX INT64_C(9223372036854775807)
#define UNTOUCHED INT64_C(-777) /* planted in outputs to see whether a call wrote them */

static const char *route_str(gw_route r)
{
	switch (r) {
	case GW_ROUTE_NONE: return "NONE";
	case GW_ROUTE_HEALTHZ: return "HEALTHZ";
	case GW_ROUTE_READYZ: return "READYZ";
	case GW_ROUTE_METRICS: return "METRICS";
	case GW_ROUTE_RUN: return "RUN";
	case GW_ROUTE_PACK: return "PACK";
	}
	return "?";
}

/* ---- routes ---- */

static void test_route_matches_exact_paths_and_reads_the_resource_id(void **state)
{
	static const struct {
		const char *path;
		gw_route route;
		int64_t id; /* checked for RUN and PACK only */
	} cases[] = {
		/* probes: exact paths, nothing else */
		{"/healthz", GW_ROUTE_HEALTHZ, 0},
		{"/readyz", GW_ROUTE_READYZ, 0},
		{"/metrics", GW_ROUTE_METRICS, 0},
		{"/healthz/", GW_ROUTE_NONE, 0},
		{"/healthzz", GW_ROUTE_NONE, 0},
		{"/HEALTHZ", GW_ROUTE_NONE, 0},
		{"/metrics/x", GW_ROUTE_NONE, 0},
		{"/", GW_ROUTE_NONE, 0},
		{"", GW_ROUTE_NONE, 0},
		{"/v1", GW_ROUTE_NONE, 0},
		{"/v1/runs", GW_ROUTE_NONE, 0},
		{"/v2/runs/1", GW_ROUTE_NONE, 0},
		{"/V1/runs/1", GW_ROUTE_NONE, 0},
		{"v1/runs/1", GW_ROUTE_NONE, 0},

		/* /v1/runs/{id}: canonical positive int64 ids */
		{"/v1/runs/1", GW_ROUTE_RUN, 1},
		{"/v1/runs/42", GW_ROUTE_RUN, 42},
		{"/v1/runs/9223372036854775807", GW_ROUTE_RUN, ID_MAX},
		/* any other id shape is still the route, with id 0 (answered like a missing run) */
		{"/v1/runs/0", GW_ROUTE_RUN, 0},
		{"/v1/runs/-1", GW_ROUTE_RUN, 0},
		{"/v1/runs/+1", GW_ROUTE_RUN, 0},
		{"/v1/runs/007", GW_ROUTE_RUN, 0},
		{"/v1/runs/9223372036854775808", GW_ROUTE_RUN, 0},
		{"/v1/runs/18446744073709551617", GW_ROUTE_RUN, 0},
		{"/v1/runs/99999999999999999999", GW_ROUTE_RUN, 0},
		{"/v1/runs/abc", GW_ROUTE_RUN, 0},
		{"/v1/runs/1e3", GW_ROUTE_RUN, 0},
		{"/v1/runs/0x10", GW_ROUTE_RUN, 0},
		{"/v1/runs/", GW_ROUTE_RUN, 0},
		{"/v1/runs/%31", GW_ROUTE_RUN, 0},
		{"/v1/runs/ 1", GW_ROUTE_RUN, 0},
		{"/v1/runs/1 ", GW_ROUTE_RUN, 0},
		/* more path segments are not the route */
		{"/v1/runs/1/", GW_ROUTE_NONE, 0},
		{"/v1/runs/1/x", GW_ROUTE_NONE, 0},
		{"/v1/runs//1", GW_ROUTE_NONE, 0},
		{"/v1/runs/1/review-pack", GW_ROUTE_NONE, 0},

		/* /v1/tenants/{id}/review-pack */
		{"/v1/tenants/7/review-pack", GW_ROUTE_PACK, 7},
		{"/v1/tenants/1/review-pack", GW_ROUTE_PACK, 1},
		{"/v1/tenants/9223372036854775807/review-pack", GW_ROUTE_PACK, ID_MAX},
		{"/v1/tenants/0/review-pack", GW_ROUTE_PACK, 0},
		{"/v1/tenants/-1/review-pack", GW_ROUTE_PACK, 0},
		{"/v1/tenants/+1/review-pack", GW_ROUTE_PACK, 0},
		{"/v1/tenants/007/review-pack", GW_ROUTE_PACK, 0},
		{"/v1/tenants/9223372036854775808/review-pack", GW_ROUTE_PACK, 0},
		{"/v1/tenants/abc/review-pack", GW_ROUTE_PACK, 0},
		{"/v1/tenants/1e3/review-pack", GW_ROUTE_PACK, 0},
		{"/v1/tenants/%31/review-pack", GW_ROUTE_PACK, 0},
		{"/v1/tenants//review-pack", GW_ROUTE_PACK, 0},
		{"/v1/tenants/7/review-pack/", GW_ROUTE_NONE, 0},
		{"/v1/tenants/7/review-packs", GW_ROUTE_NONE, 0},
		{"/v1/tenants/7/review-pac", GW_ROUTE_NONE, 0},
		{"/v1/tenants/7/Review-Pack", GW_ROUTE_NONE, 0},
		{"/v1/tenants/7/x/review-pack", GW_ROUTE_NONE, 0},
		{"/v1/tenants/7", GW_ROUTE_NONE, 0},
		{"/v1/tenants/7/", GW_ROUTE_NONE, 0},
		{"/v1/tenants/review-pack", GW_ROUTE_NONE, 0},
		{"/v1/tenants", GW_ROUTE_NONE, 0},
	};
	(void)state;

	for (size_t i = 0; i < NELEM(cases); i++) {
		int64_t id = UNTOUCHED;
		gw_route r = gw_http_route(cases[i].path, &id);
		if (r != cases[i].route)
			fail_msg("route(\"%s\"): got %s, want %s", cases[i].path, route_str(r), route_str(cases[i].route));
		if ((r == GW_ROUTE_RUN || r == GW_ROUTE_PACK) && id != cases[i].id)
			fail_msg("route(\"%s\"): id %lld, want %lld", cases[i].path, (long long)id, (long long)cases[i].id);
	}
}

static void test_route_of_null_path_is_none(void **state)
{
	int64_t id = UNTOUCHED;
	(void)state;

	assert_int_equal(gw_http_route(NULL, &id), GW_ROUTE_NONE);
	assert_int_equal(id, 0);
}

static void test_route_names_are_the_metrics_labels(void **state)
{
	static const struct {
		gw_route r;
		const char *name;
	} cases[] = {
		{GW_ROUTE_NONE, "other"},  {GW_ROUTE_HEALTHZ, "healthz"}, {GW_ROUTE_READYZ, "readyz"},
		{GW_ROUTE_METRICS, "metrics"}, {GW_ROUTE_RUN, "run"},   {GW_ROUTE_PACK, "review_pack"},
		{(gw_route)GW_NROUTES, "other"}, {(gw_route)-1, "other"},
	};
	(void)state;

	for (size_t i = 0; i < NELEM(cases); i++) {
		const char *got = gw_http_route_name(cases[i].r);
		if (got == NULL || strcmp(got, cases[i].name) != 0)
			fail_msg("route_name(%d): got %s, want %s", (int)cases[i].r, got ? got : "(NULL)", cases[i].name);
	}
}

/* ---- ids ---- */

static void test_parse_id_accepts_only_canonical_positive_int64(void **state)
{
	static const struct {
		const char *s;
		bool ok;
		int64_t v;
	} cases[] = {
		{"1", true, 1},
		{"9", true, 9},
		{"10", true, 10},
		{"42", true, 42},
		{"1000000", true, 1000000},
		{"9223372036854775806", true, ID_MAX - 1},
		{"9223372036854775807", true, ID_MAX},
		{"", false, 0},
		{"0", false, 0},
		{"00", false, 0},
		{"01", false, 0},
		{"007", false, 0},
		{"-1", false, 0},
		{"+1", false, 0},
		{" 1", false, 0},
		{"1 ", false, 0},
		{"1a", false, 0},
		{"a1", false, 0},
		{"1e3", false, 0},
		{"1.0", false, 0},
		{"0x10", false, 0},
		{"%31", false, 0},
		{"9223372036854775808", false, 0},
		{"9223372036854775809", false, 0},
		{"9999999999999999999", false, 0},
		{"10000000000000000000", false, 0},
		{"18446744073709551616", false, 0},
		{"92233720368547758070", false, 0},
	};
	(void)state;

	for (size_t i = 0; i < NELEM(cases); i++) {
		int64_t v = UNTOUCHED;
		bool ok = gw_http_parse_id(cases[i].s, strlen(cases[i].s), &v);
		if (ok != cases[i].ok) fail_msg("parse_id(\"%s\"): got %d, want %d", cases[i].s, ok, cases[i].ok);
		if (ok && v != cases[i].v)
			fail_msg("parse_id(\"%s\"): %lld, want %lld", cases[i].s, (long long)v, (long long)cases[i].v);
		if (!ok && v != UNTOUCHED) fail_msg("parse_id(\"%s\") refused but wrote %lld", cases[i].s, (long long)v);
	}
}

static void test_parse_id_reads_exactly_len_bytes(void **state)
{
	int64_t v = 0;
	(void)state;

	/* The route passes the segment before "/review-pack" without a terminator. */
	assert_true(gw_http_parse_id("12/review-pack", 2, &v));
	assert_int_equal(v, 12);
	assert_true(gw_http_parse_id("92233720368547758079", 19, &v));
	assert_true(v == ID_MAX);
	assert_false(gw_http_parse_id("12x", 3, &v));
	assert_false(gw_http_parse_id("1", 0, &v));
}

/* ---- ?wait= ---- */

static void test_parse_wait_reads_whole_seconds_and_caps_at_max(void **state)
{
	static const struct {
		const char *s;
		int64_t max_ms;
		int rc;
		int64_t ms;
	} cases[] = {
		{"0", 55000, 0, 0},
		{"1", 55000, 0, 1000},
		{"25", 55000, 0, 25000},
		{"54", 55000, 0, 54000},
		{"55", 55000, 0, 55000},
		{"56", 55000, 0, 55000},
		{"3600", 55000, 0, 55000},
		{"007", 55000, 0, 7000},
		{"0000000000000000000000000000000000000005", 55000, 0, 5000},
		/* huge digit strings saturate to the cap instead of overflowing */
		{"9223372036854775807", 55000, 0, 55000},
		{"9223372036854775808", 55000, 0, 55000},
		{"18446744073709551616", 55000, 0, 55000},
		{"99999999999999999999999999999999999999999999999999", 55000, 0, 55000},
		/* a cap that is not whole seconds, and a zero cap */
		{"1", 1500, 0, 1000},
		{"2", 1500, 0, 1500},
		{"0", 0, 0, 0},
		{"5", 0, 0, 0},
		/* the widest cap: still no overflow in seconds -> milliseconds */
		{"9223372036854775", ID_MAX, 0, INT64_C(9223372036854775000)},
		{"9223372036854776", ID_MAX, 0, ID_MAX},
		{"9223372036854775807", ID_MAX, 0, ID_MAX},
		{"99999999999999999999999", ID_MAX, 0, ID_MAX},
		/* not a non-negative decimal integer: 400 */
		{"", 55000, -1, 0},
		{"-1", 55000, -1, 0},
		{"-0", 55000, -1, 0},
		{"+1", 55000, -1, 0},
		{"1.5", 55000, -1, 0},
		{"1.", 55000, -1, 0},
		{" 1", 55000, -1, 0},
		{"1 ", 55000, -1, 0},
		{"1s", 55000, -1, 0},
		{"10ms", 55000, -1, 0},
		{"0x10", 55000, -1, 0},
		{"1e3", 55000, -1, 0},
		{"abc", 55000, -1, 0},
		{"１", 55000, -1, 0}, /* a full-width digit is not ASCII */
	};
	(void)state;

	for (size_t i = 0; i < NELEM(cases); i++) {
		int64_t ms = UNTOUCHED;
		int rc = gw_http_parse_wait(cases[i].s, cases[i].max_ms, &ms);
		if (rc != cases[i].rc)
			fail_msg("parse_wait(\"%s\", max %lld): rc %d, want %d", cases[i].s, (long long)cases[i].max_ms, rc,
			         cases[i].rc);
		if (rc == 0 && ms != cases[i].ms)
			fail_msg("parse_wait(\"%s\", max %lld): %lld ms, want %lld", cases[i].s, (long long)cases[i].max_ms,
			         (long long)ms, (long long)cases[i].ms);
	}
}

static void test_parse_wait_of_null_is_refused(void **state)
{
	int64_t ms = UNTOUCHED;
	(void)state;

	assert_int_equal(gw_http_parse_wait(NULL, 55000, &ms), -1);
}

/* ---- Prefer: wait= ---- */

/*
 * RFC 7240: Prefer = #preference; preference = token [BWS "=" BWS word] *(OWS ";" [OWS parameter]).
 * Preferences are separated by commas; what follows a ';' is a parameter of the preference before it.
 * So "return=minimal; wait=5" is the preference "return" with a parameter named wait — not a wait
 * preference — and is ignored, while "wait=5; foo" is a wait preference carrying a parameter. Names are
 * case-insensitive tokens, the value may be a quoted-string, only the first occurrence of a preference
 * counts, and a wait preference the gateway cannot read is ignored (false).
 */
static void test_prefer_wait_follows_rfc_7240_and_ignores_what_it_cannot_read(void **state)
{
	static const struct {
		const char *prefer;
		bool ok;
		int64_t seconds;
	} cases[] = {
		{"wait=10", true, 10},
		{"wait=0", true, 0},
		{"wait=55", true, 55},
		{"wait=007", true, 7},
		{"respond-async, wait=10", true, 10},
		{"wait=10, respond-async", true, 10},
		{"return=minimal, wait=5", true, 5},
		{"handling=lenient,wait=3,respond-async", true, 3},
		{"wait = 10", true, 10},
		{"wait\t=\t10", true, 10},
		{"  wait=10  ", true, 10},
		{"\twait=10", true, 10},
		{"wait=\"10\"", true, 10},
		{"wait = \"10\" ", true, 10},
		{"WAIT=10", true, 10},
		{"Wait=10", true, 10},
		{"wait=10; foo=bar", true, 10},
		{"wait=10;foo", true, 10},
		{"wait=5, wait=9", true, 5},
		{"respond-async, , wait=4", true, 4},
		/* after ';' it is a parameter of the preference before it */
		{"return=minimal; wait=5", false, 0},
		{"respond-async;wait=5", false, 0},
		{"respond-async; wait=5; x", false, 0},
		/* unreadable wait preferences */
		{"wait=abc", false, 0},
		{"wait=", false, 0},
		{"wait= ", false, 0},
		{"wait", false, 0},
		{"wait=-1", false, 0},
		{"wait=+1", false, 0},
		{"wait=1.5", false, 0},
		{"wait=10s", false, 0},
		{"wait=10 s", false, 0},
		{"wait=0x10", false, 0},
		{"wait=\"\"", false, 0},
		{"wait=\"10", false, 0},
		{"wait=10\"", false, 0},
		{"wait=\"1\"0", false, 0},
		/* other preferences only */
		{"waiting=5", false, 0},
		{"waits=5", false, 0},
		{"nowait=5", false, 0},
		{"x-wait=5", false, 0},
		{"respond-async", false, 0},
		{"", false, 0},
		{" , ,", false, 0},
	};
	(void)state;

	for (size_t i = 0; i < NELEM(cases); i++) {
		int64_t s = UNTOUCHED;
		bool ok = gw_http_prefer_wait(cases[i].prefer, &s);
		if (ok != cases[i].ok) fail_msg("prefer_wait(\"%s\"): got %d, want %d", cases[i].prefer, ok, cases[i].ok);
		if (ok && s != cases[i].seconds)
			fail_msg("prefer_wait(\"%s\"): %lld s, want %lld", cases[i].prefer, (long long)s, (long long)cases[i].seconds);
	}
}

static void test_prefer_wait_saturates_huge_values_without_overflow(void **state)
{
	static const char *const cases[] = {
		"wait=9223372036854775807",
		"wait=9223372036854775808",
		"wait=99999999999999999999999999999999999999",
		"wait=\"99999999999999999999999999999999999999\"",
	};
	(void)state;

	/* The caller caps at max_wait: the value only has to be at least as large as any cap in seconds. */
	for (size_t i = 0; i < NELEM(cases); i++) {
		int64_t s = UNTOUCHED;
		if (!gw_http_prefer_wait(cases[i], &s)) fail_msg("prefer_wait(\"%s\") refused", cases[i]);
		if (s < ID_MAX / 1000) fail_msg("prefer_wait(\"%s\"): %lld, not saturated", cases[i], (long long)s);
	}
}

static void test_prefer_wait_of_null_is_false(void **state)
{
	int64_t s = UNTOUCHED;
	(void)state;

	assert_false(gw_http_prefer_wait(NULL, &s));
}

/* ---- If-None-Match ---- */

static void test_if_none_match_uses_weak_comparison_over_the_list(void **state)
{
	static const struct {
		const char *inm, *etag;
		bool match;
	} cases[] = {
		/* exact */
		{"\"abc\"", "\"abc\"", true},
		{"\"abd\"", "\"abc\"", false},
		{"\"ab\"", "\"abc\"", false},
		{"\"abcd\"", "\"abc\"", false},
		{"\"ABC\"", "\"abc\"", false},
		{"\"\"", "\"abc\"", false},
		/* lists */
		{"\"a\", \"b\"", "\"a\"", true},
		{"\"a\", \"b\"", "\"b\"", true},
		{"\"a\", \"b\"", "\"c\"", false},
		{"\"a\",\"b\",\"c\"", "\"c\"", true},
		{",, \"a\" ,,", "\"a\"", true},
		/* weak comparison: W/"x" matches the strong "x" */
		{"W/\"abc\"", "\"abc\"", true},
		{"W/\"x\", W/\"abc\"", "\"abc\"", true},
		{"\"x\", W/\"abc\"", "\"abc\"", true},
		{"W/\"abd\"", "\"abc\"", false},
		/* "*" matches whatever is current */
		{"*", "\"abc\"", true},
		{" * ", "\"abc\"", true},
		{"\t*\t", "\"anything\"", true},
		/* white space around elements and commas */
		{"  \"abc\"  ", "\"abc\"", true},
		{"\t\"abc\"\t", "\"abc\"", true},
		{"\"x\" ,\t\"abc\"", "\"abc\"", true},
		{"\"x\"\t,   \"abc\"  ,\"y\"", "\"abc\"", true},
		/* a comma inside an entity tag is part of it */
		{"\"a,b\"", "\"a,b\"", true},
		{"\"a,b\"", "\"a\"", false},
		{"\"a\", \"b\"", "\"a,b\"", false},
		/* malformed: matches nothing */
		{"abc", "\"abc\"", false},
		{"\"abc", "\"abc\"", false},
		{"abc\"", "\"abc\"", false},
		{"'abc'", "\"abc\"", false},
		{"w/\"abc\"", "\"abc\"", false},
		{"W/abc", "\"abc\"", false},
		{"W/", "\"abc\"", false},
		{"W\"abc\"", "\"abc\"", false},
		{"\"x\", abc, \"abc\"", "\"abc\"", false},
		{"", "\"abc\"", false},
		{" , ", "\"abc\"", false},
	};
	(void)state;

	for (size_t i = 0; i < NELEM(cases); i++) {
		bool m = gw_http_inm_matches(cases[i].inm, cases[i].etag);
		if (m != cases[i].match)
			fail_msg("inm_matches(%s, %s): got %d, want %d", cases[i].inm, cases[i].etag, m, cases[i].match);
	}
}

static void test_if_none_match_absent_matches_nothing(void **state)
{
	(void)state;
	assert_false(gw_http_inm_matches(NULL, "\"abc\""));
}

/* ---- metrics status slots ---- */

static void test_status_index_gives_each_counted_code_its_slot_and_the_rest_other(void **state)
{
	static const int counted[] = {200, 204, 304, 400, 401, 404, 405, 429, 503};
	static const int others[] = {0, -1, 100, 201, 301, 302, 403, 500, 502, 504, 599, 2000};
	(void)state;

	assert_int_equal(NELEM(counted), GW_NSTATUS - 1);
	for (size_t i = 0; i < NELEM(counted); i++) {
		int k = gw_http_status_index(counted[i]);
		if (k != (int)i) fail_msg("status_index(%d): %d, want %zu", counted[i], k, i);
		assert_int_equal(gw_http_status_codes[k], counted[i]);
	}
	for (size_t i = 0; i < NELEM(others); i++) {
		int k = gw_http_status_index(others[i]);
		if (k != GW_NSTATUS - 1) fail_msg("status_index(%d): %d, want the other slot %d", others[i], k, GW_NSTATUS - 1);
	}
	assert_int_equal(gw_http_status_codes[GW_NSTATUS - 1], 0);
}

/* ---- body framing ---- */

static void test_two_lengths_or_a_length_with_a_coding_is_ambiguous(void **state)
{
	static const struct {
		const char *lines; /* "Name: value" lines separated by '|' */
		bool ambiguous;
	} cases[] = {
		{"", false},
		{"Host: x", false},
		{"Content-Length: 0", false},
		{"Transfer-Encoding: chunked", false}, /* refused elsewhere for a GET; framing itself is clear */
		{"Content-Length: 0|Content-Length: 0", true},
		{"Content-Length: 5|content-length: 5", true},
		{"CONTENT-LENGTH: 1|Host: x|Content-Length: 2", true},
		{"Content-Length: 0|Transfer-Encoding: chunked", true},
		{"transfer-encoding: chunked|Content-Length: 3", true},
		{"Transfer-Encoding: chunked|Transfer-Encoding: gzip", false},
		{"Content-Lengths: 1|Content-Length: 2", false},
		{"X-Content-Length: 1|Content-Length: 2", false},
	};
	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct evkeyvalq h;
		char buf[200];
		TAILQ_INIT(&h);
		snprintf(buf, sizeof buf, "%s", cases[i].lines);
		for (char *line = strtok(buf, "|"); line; line = strtok(NULL, "|")) {
			char *colon = strchr(line, ':');
			assert_non_null(colon);
			*colon = '\0';
			assert_int_equal(evhttp_add_header(&h, line, colon + 2), 0);
		}
		if (gw_http_framing_ambiguous(&h) != cases[i].ambiguous)
			fail_msg("framing of <%s>: want %s", cases[i].lines, cases[i].ambiguous ? "ambiguous" : "clear");
		evhttp_clear_headers(&h);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_lengths_or_a_length_with_a_coding_is_ambiguous),
		cmocka_unit_test(test_route_matches_exact_paths_and_reads_the_resource_id),
		cmocka_unit_test(test_route_of_null_path_is_none),
		cmocka_unit_test(test_route_names_are_the_metrics_labels),
		cmocka_unit_test(test_parse_id_accepts_only_canonical_positive_int64),
		cmocka_unit_test(test_parse_id_reads_exactly_len_bytes),
		cmocka_unit_test(test_parse_wait_reads_whole_seconds_and_caps_at_max),
		cmocka_unit_test(test_parse_wait_of_null_is_refused),
		cmocka_unit_test(test_prefer_wait_follows_rfc_7240_and_ignores_what_it_cannot_read),
		cmocka_unit_test(test_prefer_wait_saturates_huge_values_without_overflow),
		cmocka_unit_test(test_prefer_wait_of_null_is_false),
		cmocka_unit_test(test_if_none_match_uses_weak_comparison_over_the_list),
		cmocka_unit_test(test_if_none_match_absent_matches_nothing),
		cmocka_unit_test(test_status_index_gives_each_counted_code_its_slot_and_the_rest_other),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
