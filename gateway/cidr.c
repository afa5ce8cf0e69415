/*
 * gateway/cidr.c — see cidr.h.
 */
#include "gateway/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gw_cidr_parse(const char *s, gw_cidr *out)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash;
	size_t alen;
	int maxp, prefix;
	gw_cidr r;

	if (s == NULL || out == NULL) return -1;
	memset(&r, 0, sizeof r);
	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof addr) return -1;
	memcpy(addr, s, alen);
	addr[alen] = '\0';

	if (memchr(addr, ':', alen) != NULL) {
		if (inet_pton(AF_INET6, addr, r.addr) != 1) return -1;
		maxp = 128;
	} else {
		struct in_addr a4;
		if (inet_pton(AF_INET, addr, &a4) != 1) return -1;
		r.addr[10] = 0xff;
		r.addr[11] = 0xff;
		memcpy(r.addr + 12, &a4, 4);
		maxp = 32;
	}

	prefix = maxp;
	if (slash) {
		const char *p = slash + 1;
		size_t digits = strspn(p, "0123456789");
		if (digits == 0 || digits > 3 || p[digits] != '\0') return -1;
		prefix = atoi(p);
		if (prefix > maxp) return -1;
	}
	r.prefix = prefix + (128 - maxp);

	/* Host bits are allowed ("10.1.2.3/8"): mask them off. */
	for (int bit = r.prefix; bit < 128; bit++)
		r.addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
	*out = r;
	return 0;
}

static bool cidr_contains(const gw_cidr *b, const uint8_t a[16])
{
	int full = b->prefix / 8, rest = b->prefix % 8;

	if (memcmp(b->addr, a, (size_t)full) != 0) return false;
	if (rest == 0) return true;
	uint8_t mask = (uint8_t)(0xff00u >> rest);
	return (b->addr[full] & mask) == (a[full] & mask);
}

bool gw_cidr_addr_key(const struct sockaddr *sa, uint8_t a[16])
{
	memset(a, 0, 16);
	if (sa == NULL) return false;
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in sin;
		memcpy(&sin, sa, sizeof sin);
		a[10] = a[11] = 0xff;
		memcpy(a + 12, &sin.sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 sin6;
		memcpy(&sin6, sa, sizeof sin6);
		memcpy(a, &sin6.sin6_addr, 16); /* a v4-mapped peer compares against the mapped v4 blocks */
		return true;
	}
	return false;
}

bool gw_cidr_match_key(const gw_cidr_list *list, const uint8_t key[16])
{
	if (list == NULL) return false;
	for (size_t i = 0; i < list->n; i++)
		if (cidr_contains(&list->items[i], key)) return true;
	return false;
}

bool gw_cidr_match(const gw_cidr_list *list, const struct sockaddr *sa)
{
	uint8_t a[16];

	if (list == NULL || !gw_cidr_addr_key(sa, a)) return false;
	return gw_cidr_match_key(list, a);
}

static bool is_v4_mapped(const uint8_t a[16])
{
	static const uint8_t pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	return memcmp(a, pfx, sizeof pfx) == 0;
}

void gw_cidr_key_prefix(uint8_t key[16], int v6_prefix)
{
	if (is_v4_mapped(key)) return;
	if (v6_prefix < 0) v6_prefix = 0;
	for (int bit = v6_prefix; bit < 128; bit++) key[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
}

void gw_cidr_format(const gw_cidr *b, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (b->prefix >= 96 && is_v4_mapped(b->addr)) {
		if (inet_ntop(AF_INET, b->addr + 12, a, sizeof a) == NULL) a[0] = '\0';
		snprintf(buf, len, "%s/%d", a, b->prefix - 96);
	} else {
		if (inet_ntop(AF_INET6, b->addr, a, sizeof a) == NULL) a[0] = '\0';
		snprintf(buf, len, "%s/%d", a, b->prefix);
	}
}

static bool parse_ip(const char *s, size_t n, struct sockaddr_storage *ss)
{
	char buf[64];
	memset(ss, 0, sizeof *ss);
	while (n && (*s == ' ' || *s == '\t')) s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
	if (n == 0 || n >= sizeof buf) return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	struct sockaddr_in *in = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)ss;
	if (inet_pton(AF_INET, buf, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, buf, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		return true;
	}
	return false;
}

/* The client: the peer, or — when the peer is a trusted proxy — the right-most X-Forwarded-For hop that
 * is not itself a trusted proxy. A hop that does not parse stops the walk at the last good one, so each
 * hop is parsed into `hop` and only a good one replaces the client held in `ss`. */
void gw_cidr_client_resolve(const gw_cidr_list *trusted, const struct sockaddr *peer, const char *xff, uint8_t key[16],
                           char *text, size_t textlen)
{
	struct sockaddr_storage ss, hop;
	const struct sockaddr *client = peer;

	if (peer && xff && gw_cidr_match(trusted, peer)) {
		const char *end = xff + strlen(xff);
		while (end > xff) {
			const char *start = end;
			while (start > xff && start[-1] != ',') start--;
			if (!parse_ip(start, (size_t)(end - start), &hop)) break;
			ss = hop;
			client = (const struct sockaddr *)&ss;
			if (!gw_cidr_match(trusted, client)) break;
			end = start > xff ? start - 1 : xff;
		}
	}
	gw_cidr_addr_key(client, key);
	text[0] = '\0';
	if (client && client->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)client)->sin_addr, text, (socklen_t)textlen);
	else if (client && client->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)client)->sin6_addr, text, (socklen_t)textlen);
}
