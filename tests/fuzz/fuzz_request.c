/*
 * tests/fuzz/fuzz_request.c — libFuzzer target: one request head through all of pollgate's own request
 * handling, the way gateway/server.c's on_request() meets it.
 *
 * Input: one selector byte, then a raw HTTP request head: "METHOD SP URI SP VERSION\r\n" and
 * "Name: value\r\n" lines up to an empty line. The selector picks the peer address (v4 loopback and v6
 * loopback are trusted proxies, 203.0.113.7 is not, ::ffff:10.1.2.3 is trusted through its mapped v4
 * block, and "no peer" is allowed by gw_cidr_client_resolve). The head is split here, tolerant of any bytes:
 * every piece is a NUL-terminated copy, so an embedded NUL cuts a piece short as it would in evhttp.
 * Headers go into a real evkeyvalq through evhttp_add_header() (which refuses what evhttp refuses) and
 * are read back with evhttp_find_header() (case-insensitive, first one wins), as the server does.
 *
 * Each function's result is checked against an independent, obviously-correct restatement where that is
 * cheap and certain; a violation abort()s, which libFuzzer reports as a crash.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "auth/auth.h"
#include "common/log.h"
#include "gateway/cidr.h"
#include "gateway/http.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define COOKIE_NAME "pollgate_token"
#define ETAG "\"0123456789abcdef0123456789abcdef\"" /* the shape policy/ makes: 32 hex digits, quoted */
#define SINCE_SIZE 40                               /* sizeof ((gw_waiter *)0)->since */

static gw_cidr_list trusted;
static gw_cidr trusted_items[3];
static struct sockaddr_in peer_v4_lo, peer_v4_out;
static struct sockaddr_in6 peer_v6_lo, peer_v6_mapped;

#define CHECK(cond)                                                                                          \
	do {                                                                                                     \
		if (!(cond)) {                                                                                       \
			fprintf(stderr, "fuzz_request: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);     \
			abort();                                                                                         \
		}                                                                                                    \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const blocks[] = {"127.0.0.0/8", "10.0.0.0/8", "::1/128"};
	(void)argc;
	(void)argv;

	cm_log_configure(CM_LOG_ERROR, CM_LOG_LOGFMT);
	for (size_t i = 0; i < 3; i++)
		if (gw_cidr_parse(blocks[i], &trusted_items[i]) != 0) abort();
	trusted.items = trusted_items;
	trusted.n = 3;

	peer_v4_lo.sin_family = AF_INET;
	peer_v4_lo.sin_port = htons(40000);
	peer_v4_lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	peer_v4_out.sin_family = AF_INET;
	peer_v4_out.sin_port = htons(40001);
	if (inet_pton(AF_INET, "203.0.113.7", &peer_v4_out.sin_addr) != 1) abort();
	peer_v6_lo.sin6_family = AF_INET6;
	peer_v6_lo.sin6_port = htons(40002);
	peer_v6_lo.sin6_addr = in6addr_loopback;
	peer_v6_mapped.sin6_family = AF_INET6;
	peer_v6_mapped.sin6_port = htons(40003);
	if (inet_pton(AF_INET6, "::ffff:10.1.2.3", &peer_v6_mapped.sin6_addr) != 1) abort();
	return 0;
}

/* ---- independent restatements ---- */

static bool all_digits(const char *s)
{
	if (*s == '\0') return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9') return false;
	return true;
}

/* gw_http_parse_id's contract: true exactly for the canonical decimal form of a positive int64. */
static void check_parse_id(const char *s, size_t len)
{
	int64_t v = -1;
	bool ok = gw_http_parse_id(s, len, &v);
	if (ok) {
		char canon[24];
		CHECK(v > 0);
		int n = snprintf(canon, sizeof canon, "%" PRId64, v);
		CHECK((size_t)n == len && memcmp(canon, s, len) == 0);
	} else if (len > 0 && len <= 18 && s[0] >= '1' && s[0] <= '9') {
		/* Up to 18 digits always fits in an int64: refusing such a string means a non-digit is in it. */
		bool digits = true;
		for (size_t i = 0; i < len; i++) digits = digits && s[i] >= '0' && s[i] <= '9';
		CHECK(!digits);
	}
}

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static void check_route(const char *path)
{
	int64_t id = -1;
	gw_route r = gw_http_route(path, &id);

	CHECK(id >= 0);
	switch (r) {
	case GW_ROUTE_HEALTHZ: CHECK(strcmp(path, "/healthz") == 0 && id == 0); break;
	case GW_ROUTE_READYZ: CHECK(strcmp(path, "/readyz") == 0 && id == 0); break;
	case GW_ROUTE_METRICS: CHECK(strcmp(path, "/metrics") == 0 && id == 0); break;
	case GW_ROUTE_RUN: {
		CHECK(has_prefix(path, "/v1/runs/"));
		const char *seg = path + strlen("/v1/runs/");
		CHECK(strchr(seg, '/') == NULL);
		int64_t v = 0;
		bool ok = gw_http_parse_id(seg, strlen(seg), &v);
		CHECK(ok ? id == v : id == 0); /* id > 0 exactly for a well-formed id; 0 means malformed */
		break;
	}
	case GW_ROUTE_PACK: {
		CHECK(has_prefix(path, "/v1/tenants/"));
		const char *seg = path + strlen("/v1/tenants/");
		const char *slash = strchr(seg, '/');
		CHECK(slash != NULL && strcmp(slash, "/review-pack") == 0);
		int64_t v = 0;
		bool ok = gw_http_parse_id(seg, (size_t)(slash - seg), &v);
		CHECK(ok ? id == v : id == 0);
		break;
	}
	case GW_ROUTE_NONE:
		CHECK(id == 0);
		CHECK(strcmp(path, "/healthz") != 0 && strcmp(path, "/readyz") != 0 && strcmp(path, "/metrics") != 0);
		break;
	default: CHECK(!"unknown route");
	}
	CHECK(gw_http_route_name(r) != NULL);
}

/* ?wait= against the cap: exactly the whole seconds asked for, saturating at the cap. */
static void check_wait(const char *wait, int64_t max_ms)
{
	int64_t ms = -1;
	int rc = gw_http_parse_wait(wait, max_ms, &ms);

	CHECK((rc == 0) == all_digits(wait));
	if (rc != 0) return;
	CHECK(ms >= 0 && ms <= max_ms);
	int64_t secs = 0;
	bool big = false;
	for (const char *p = wait; *p && !big; p++) {
		secs = secs * 10 + (*p - '0');
		big = secs > max_ms / 1000;
	}
	CHECK(ms == (big ? max_ms : secs * 1000));
}

/* Prefer: wait=N, and the server's arithmetic on it (UBSan watches the multiplication). */
static void check_prefer(const char *prefer, int64_t max_ms)
{
	int64_t secs = -1;
	if (!gw_http_prefer_wait(prefer, &secs)) return;
	CHECK(prefer != NULL && secs >= 0);
	int64_t wait_ms = secs > max_ms / 1000 ? max_ms : secs * 1000;
	CHECK(wait_ms >= 0 && wait_ms <= max_ms);
}

static void check_inm(const char *inm)
{
	bool m = gw_http_inm_matches(inm, ETAG);
	if (inm == NULL) {
		CHECK(!m);
		return;
	}
	if (m) CHECK(strchr(inm, '*') != NULL || strstr(inm, ETAG) != NULL);
	if (strcmp(inm, ETAG) == 0 || strcmp(inm, "W/" ETAG) == 0 || strcmp(inm, "*") == 0) CHECK(m);
}

/* ?since=, as the server stores it and as watch.c compares it. */
static void check_since(const char *since)
{
	char quoted[SINCE_SIZE];
	bool junk = false;
	if (strlen(since) + 3 > sizeof quoted) junk = true;
	else snprintf(quoted, sizeof quoted, "\"%s\"", since);
	static const char etag[] = ETAG;
	bool match = !junk && strcmp(quoted, etag) == 0;
	CHECK(match == (strlen(since) == strlen(etag) - 2 && memcmp(since, &etag[1], strlen(since)) == 0));
}

static bool rid_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
	       c == '.' || c == ':';
}

static void check_rid(const char *given, const struct sockaddr *peer)
{
	char rid[40];
	bool ok = gw_http_rid_acceptable(given);
	size_t n = strlen(given);
	bool mine = n >= 1 && n <= 39;
	for (size_t i = 0; i < n && mine; i++) mine = rid_char(given[i]);
	CHECK(ok == mine);
	if (ok && peer && gw_cidr_match(&trusted, peer)) {
		snprintf(rid, sizeof rid, "%s", given);
		CHECK(strcmp(rid, given) == 0); /* adopted whole, never cut */
	}
}

/* CORS: an Origin is granted only when it equals one listed origin exactly. */
static void check_origin(const char *origin)
{
	static const char list[] = "https://admin.example.com  http://localhost:3000\thttp://[::1]:8080";
	static const char *const each[] = {"https://admin.example.com", "http://localhost:3000", "http://[::1]:8080"};
	bool want = false;
	for (size_t i = 0; i < sizeof each / sizeof each[0]; i++)
		if (strcmp(origin, each[i]) == 0) want = true;
	CHECK(gw_http_origin_listed(list, origin) == want);
	CHECK(!gw_http_origin_listed("", origin) && !gw_http_origin_listed(NULL, origin));
	/* The origin as its own one-entry list grants itself unless it holds a separator or is empty. */
	bool plain = origin[0] != '\0' && strpbrk(origin, " \t") == NULL;
	CHECK(gw_http_origin_listed(origin, origin) == plain);
}

static bool inside(const char *p, size_t n, const char *base)
{
	return base != NULL && p >= base && p + n <= base + strlen(base);
}

static void check_auth(const char *authz, const char *cookie, const char *name)
{
	const char *tok = NULL;
	size_t toklen = 0;
	auth_cred_status cs = auth_extract(authz, cookie, name, &tok, &toklen);

	CHECK(cs == AUTH_CRED_NONE || cs == AUTH_CRED_BAD || cs == AUTH_CRED_OK);
	if (authz == NULL && (cookie == NULL || name == NULL || name[0] == '\0')) CHECK(cs == AUTH_CRED_NONE);
	if (authz != NULL) CHECK(cs != AUTH_CRED_NONE); /* a present header is used or refused, never skipped */
	if (cs != AUTH_CRED_OK) return;
	CHECK(tok != NULL && toklen >= 1 && toklen <= AUTH_TOKEN_MAX);
	CHECK(authz != NULL ? inside(tok, toklen, authz) : inside(tok, toklen, cookie));
	for (size_t i = 0; i < toklen; i++) CHECK((unsigned char)tok[i] > 0x20 && (unsigned char)tok[i] < 0x7f);

	uint8_t h[AUTH_HASH_LEN];
	char hex[2 * AUTH_HASH_LEN + 1], pfx[13];
	auth_sha256(tok, toklen, h);
	auth_hash_hex(h, hex);
	auth_hash_prefix(h, pfx);
	CHECK(strlen(hex) == 2 * AUTH_HASH_LEN && strlen(pfx) == 12 && memcmp(hex, pfx, 12) == 0);
}

static void key_of_text(const char *text, uint8_t key[16])
{
	struct in_addr a4;
	memset(key, 0, 16);
	if (inet_pton(AF_INET, text, &a4) == 1) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &a4, 4);
		return;
	}
	CHECK(inet_pton(AF_INET6, text, key) == 1); /* the text is a valid address */
}

/* The per-client cap's key (client_ipv6_prefix): an IPv4 client whole; an IPv6 one cut to its prefix,
 * which it still starts with, and cutting again changes nothing. */
static void check_cap_key(const uint8_t key[16], const char *text)
{
	static const int prefixes[] = {32, 33, 48, 56, 63, 64, 65, 100, 127, 128};
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	bool v4 = memcmp(key, mapped, 12) == 0;
	(void)text;
	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
		int p = prefixes[i];
		uint8_t k[16], again[16];
		memcpy(k, key, 16);
		gw_cidr_key_prefix(k, p);
		if (v4) {
			CHECK(memcmp(k, key, 16) == 0);
			continue;
		}
		for (int bit = 0; bit < 128; bit++) {
			int want = bit < p ? (key[bit / 8] >> (7 - bit % 8)) & 1 : 0;
			CHECK(((k[bit / 8] >> (7 - bit % 8)) & 1) == want);
		}
		memcpy(again, k, 16);
		gw_cidr_key_prefix(again, p);
		CHECK(memcmp(again, k, 16) == 0);
	}
}

/* Body framing: ambiguous exactly when Content-Length is there twice, or with Transfer-Encoding. Counted
 * here by removing lines one at a time with evhttp's own (case-insensitive) lookup. */
static void check_framing(const struct evkeyvalq *headers)
{
	struct evkeyvalq copy;
	const struct evkeyval *kv;
	int lengths = 0, codings = 0;
	TAILQ_INIT(&copy);
	TAILQ_FOREACH (kv, headers, next) CHECK(evhttp_add_header(&copy, kv->key, kv->value) == 0);
	while (evhttp_remove_header(&copy, "Content-Length") == 0) lengths++;
	while (evhttp_remove_header(&copy, "Transfer-Encoding") == 0) codings++;
	evhttp_clear_headers(&copy);
	CHECK(gw_http_framing_ambiguous(headers) == (lengths >= 2 || (lengths >= 1 && codings >= 1)));
}

static void check_client(const struct sockaddr *peer, const char *xff)
{
	uint8_t key[16], want[16], peer_key[16];
	char text[INET6_ADDRSTRLEN];

	memset(text, 'x', sizeof text);
	gw_cidr_client_resolve(&trusted, peer, xff, key, text, sizeof text);
	CHECK(memchr(text, '\0', sizeof text) != NULL);
	if (peer == NULL) {
		memset(want, 0, 16);
		CHECK(text[0] == '\0' && memcmp(key, want, 16) == 0);
		return;
	}
	CHECK(text[0] != '\0');
	key_of_text(text, want);
	CHECK(memcmp(key, want, 16) == 0); /* key and text name the same address */
	CHECK(gw_cidr_addr_key(peer, peer_key));
	if (!gw_cidr_match(&trusted, peer) || xff == NULL) CHECK(memcmp(key, peer_key, 16) == 0);
	CHECK(gw_cidr_match_key(&trusted, peer_key) == gw_cidr_match(&trusted, peer)); /* /metrics' check */
	check_cap_key(key, text);
}

/* gw_cidr_parse on hostile text; a block that parses formats to text that parses to the same block. */
static void check_cidr(const char *s, size_t n)
{
	char buf[80], out[80];
	gw_cidr a, b;

	if (n >= sizeof buf) return;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (gw_cidr_parse(buf, &a) != 0) return;
	CHECK(a.prefix >= 0 && a.prefix <= 128);
	gw_cidr_format(&a, out, sizeof out);
	CHECK(gw_cidr_parse(out, &b) == 0);
	CHECK(a.prefix == b.prefix && memcmp(a.addr, b.addr, 16) == 0);
}

/* ---- splitting the head ---- */

/* Next line of buf[*pos..len): NUL-terminates it in place (dropping one trailing CR), returns its start. */
static char *next_line(char *buf, size_t len, size_t *pos)
{
	if (*pos >= len) return NULL;
	char *s = buf + *pos;
	char *nl = memchr(s, '\n', len - *pos);
	size_t n = nl ? (size_t)(nl - s) : len - *pos;
	s[n] = '\0'; /* buf has one spare byte at buf[len] */
	if (n > 0 && s[n - 1] == '\r') s[n - 1] = '\0';
	*pos += n + 1;
	return s;
}

static void trim(char **s)
{
	while (**s == ' ' || **s == '\t') (*s)++;
	size_t n = strlen(*s);
	while (n > 0 && ((*s)[n - 1] == ' ' || (*s)[n - 1] == '\t')) (*s)[--n] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct sockaddr *peer = NULL;
	struct evkeyvalq headers, params;
	struct evhttp_uri *uri = NULL;
	char *buf = NULL;
	size_t pos = 0;

	if (size < 1) return 0;
	switch (data[0] % 5) {
	case 0: peer = (const struct sockaddr *)&peer_v4_lo; break;
	case 1: peer = (const struct sockaddr *)&peer_v6_lo; break;
	case 2: peer = (const struct sockaddr *)&peer_v4_out; break;
	case 3: peer = (const struct sockaddr *)&peer_v6_mapped; break;
	default: peer = NULL; break;
	}
	data++;
	size--;

	/* The raw bytes, unterminated: ASan sees any read past the given length. */
	check_parse_id((const char *)data, size);

	buf = malloc(size + 1);
	if (buf == NULL) return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	TAILQ_INIT(&headers);
	TAILQ_INIT(&params);

	/* Request line: METHOD SP URI SP VERSION. */
	char *line = next_line(buf, size, &pos);
	if (line == NULL) goto out;
	char *target = strchr(line, ' ');
	if (target != NULL) {
		*target++ = '\0';
		char *sp = strchr(target, ' ');
		if (sp != NULL) *sp = '\0';
	} else {
		target = line + strlen(line);
	}

	/* Header lines up to the first empty one. */
	while ((line = next_line(buf, size, &pos)) != NULL && line[0] != '\0') {
		char *colon = strchr(line, ':');
		if (colon == NULL || colon == line) continue;
		*colon = '\0';
		char *value = colon + 1;
		trim(&value);
		(void)evhttp_add_header(&headers, line, value);
	}

	/* What evhttp does with the target, and what on_request reads from it. */
	uri = evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	if (path != NULL) {
		check_route(path);
		check_parse_id(path, strlen(path));
	} else {
		int64_t id = -1;
		CHECK(gw_http_route(NULL, &id) == GW_ROUTE_NONE && id == 0);
	}
	{ /* The raw target up to '?' as a path too: evhttp refuses much that the router still must survive. */
		char *q = strchr(target, '?');
		if (q) *q = '\0';
		check_route(target);
	}

	check_framing(&headers);
	const char *given = evhttp_find_header(&headers, "X-Request-Id");
	if (given) check_rid(given, peer);
	const char *xff = evhttp_find_header(&headers, "X-Forwarded-For");
	check_client(peer, xff);
	if (xff) { /* each hop, and the whole value, as a CIDR block */
		const char *p = xff;
		for (;;) {
			size_t n = strcspn(p, ",");
			check_cidr(p, n);
			if (p[n] == '\0') break;
			p += n + 1;
		}
		check_cidr(xff, strlen(xff));
	}

	if (query && evhttp_parse_query_str(query, &params) == 0) {
		const char *wait = evhttp_find_header(&params, "wait");
		if (wait) {
			check_wait(wait, 55000);   /* the default max_wait */
			check_wait(wait, 1000);    /* the smallest allowed */
			check_wait(wait, 3600000); /* the largest allowed */
		}
		const char *since = evhttp_find_header(&params, "since");
		if (since) check_since(since);
	}
	const char *prefer = evhttp_find_header(&headers, "Prefer");
	check_prefer(prefer, 55000);
	check_prefer(prefer, 3600000);
	check_inm(evhttp_find_header(&headers, "If-None-Match"));

	const char *origin = evhttp_find_header(&headers, "Origin");
	if (origin) check_origin(origin);

	const char *authz = evhttp_find_header(&headers, "Authorization");
	const char *cookie = evhttp_find_header(&headers, "Cookie");
	check_auth(authz, cookie, COOKIE_NAME);
	check_auth(NULL, cookie, COOKIE_NAME); /* the cookie path even when a header is present */

out:
	evhttp_clear_headers(&params);
	evhttp_clear_headers(&headers);
	if (uri) evhttp_uri_free(uri);
	free(buf);
	return 0;
}
