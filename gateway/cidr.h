/*
 * gateway/cidr.h — client addresses and CIDR blocks (metrics_allow, trusted_proxies, per-client caps).
 *
 * One representation for every address: 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), so one
 * comparison serves both families and a v4-mapped IPv6 peer matches the IPv4 blocks.
 */
#ifndef POLLGATE_GATEWAY_CIDR_H
#define POLLGATE_GATEWAY_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* One CIDR block: IPv4 blocks are stored as IPv4-mapped IPv6 (::ffff:a.b.c.d/96+n). */
typedef struct gw_cidr {
	uint8_t addr[16];
	int prefix; /* 0..128, on the mapped form */
} gw_cidr;

typedef struct gw_cidr_list {
	gw_cidr *items; /* owned */
	size_t n;
} gw_cidr_list;

/* The 16-byte key of an AF_INET or AF_INET6 sockaddr (zeros and false for anything else). */
bool gw_cidr_addr_key(const struct sockaddr *sa, uint8_t key[16]);

/* Parse one "ADDR/PREFIX" (or a bare address = full-length prefix) into *out; host bits are masked.
 * Returns 0 or -1. */
int gw_cidr_parse(const char *s, gw_cidr *out) __attribute__((warn_unused_result));

/* Does any block of `list` contain the address? (false for families other than IPv4/IPv6.) */
bool gw_cidr_match(const gw_cidr_list *list, const struct sockaddr *sa);

/* Does any block of `list` contain the address with this 16-byte key (as gw_cidr_addr_key makes)? */
bool gw_cidr_match_key(const gw_cidr_list *list, const uint8_t key[16]);

/* The key that counts a client for the per-client cap: an IPv6 address (not IPv4-mapped) keeps only its
 * first `v6_prefix` bits (32..128; a host is given a whole /64, so its /128s are one client); an IPv4
 * key is left whole. */
void gw_cidr_key_prefix(uint8_t key[16], int v6_prefix);

/* "10.0.0.0/8" or "::1/128": the block as it would be written. */
void gw_cidr_format(const gw_cidr *b, char *buf, size_t len);

/* The client of a request: the peer, or, when the peer is in `trusted`, the right-most X-Forwarded-For hop
 * that is not itself trusted (hops that do not parse as addresses stop the walk). Writes its 16-byte key
 * and its text form (empty when unknown). `peer` and `xff` may be NULL. */
void gw_cidr_client_resolve(const gw_cidr_list *trusted, const struct sockaddr *peer, const char *xff,
                         uint8_t key[16], char *text, size_t textlen);

#endif
