/*
 * common/hmap.c — see hmap.h. SipHash-2-4 written from the paper's description (Aumasson & Bernstein),
 * and a textbook chained table.
 */
#include "common/hmap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* The hash key: mutable file-scope state, justified as write-once. cm_hash_seed() sets it at start-up,
 * before any table exists and before workers fork (they share it, which is harmless: it only has to be
 * unknown outside). Passing it down would put a key into every hash call site for no gain. */
static uint64_t sip_k0 = 0x0706050403020100ULL, sip_k1 = 0x0f0e0d0c0b0a0908ULL;

void cm_hash_seed(void)
{
	uint64_t k[2];
	if (getrandom(k, sizeof k, 0) == (ssize_t)sizeof k) {
		sip_k0 = k[0];
		sip_k1 = k[1];
	}
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                             \
	do {                                                                                                     \
		v0 += v1;                                                                                            \
		v1 = ROTL(v1, 13);                                                                                   \
		v1 ^= v0;                                                                                            \
		v0 = ROTL(v0, 32);                                                                                   \
		v2 += v3;                                                                                            \
		v3 = ROTL(v3, 16);                                                                                   \
		v3 ^= v2;                                                                                            \
		v0 += v3;                                                                                            \
		v3 = ROTL(v3, 21);                                                                                   \
		v3 ^= v0;                                                                                            \
		v2 += v1;                                                                                            \
		v1 = ROTL(v1, 17);                                                                                   \
		v1 ^= v2;                                                                                            \
		v2 = ROTL(v2, 32);                                                                                   \
	} while (0)

uint64_t cm_hash_bytes(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t v0 = 0x736f6d6570736575ULL ^ sip_k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ sip_k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ sip_k0;
	uint64_t v3 = 0x7465646279746573ULL ^ sip_k1;
	uint64_t m;
	size_t i, full = len & ~(size_t)7;

	for (i = 0; i < full; i += 8) {
		memcpy(&m, p + i, 8); /* little-endian hosts only; we build for x86_64/aarch64 Linux */
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	m = (uint64_t)len << 56;
	for (size_t j = 0; j < (len & 7); j++) m |= (uint64_t)p[full + j] << (8 * j);
	v3 ^= m;
	SIPROUND;
	SIPROUND;
	v0 ^= m;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

int cm_hmap_init(cm_hmap *m, size_t initial)
{
	size_t n = 16;
	while (n < initial) n <<= 1;
	m->buckets = calloc(n, sizeof *m->buckets);
	m->nbuckets = m->buckets ? n : 0;
	m->count = 0;
	return m->buckets ? 0 : -1;
}

void cm_hmap_fini(cm_hmap *m)
{
	free(m->buckets);
	m->buckets = NULL;
	m->nbuckets = m->count = 0;
}

cm_hnode *cm_hmap_find(const cm_hmap *m, uint64_t hash, bool (*eq)(const cm_hnode *n, const void *key),
                       const void *key)
{
	if (m->nbuckets == 0) return NULL;
	for (cm_hnode *n = m->buckets[hash & (m->nbuckets - 1)]; n; n = n->next)
		if (n->hash == hash && eq(n, key)) return n;
	return NULL;
}

static int grow(cm_hmap *m)
{
	size_t n = m->nbuckets * 2;
	cm_hnode **b = calloc(n, sizeof *b);
	if (b == NULL) return -1;
	for (size_t i = 0; i < m->nbuckets; i++) {
		cm_hnode *node = m->buckets[i];
		while (node) {
			cm_hnode *next = node->next;
			size_t k = node->hash & (n - 1);
			node->next = b[k];
			b[k] = node;
			node = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
	return 0;
}

int cm_hmap_insert(cm_hmap *m, cm_hnode *n, uint64_t hash)
{
	int rc = 0;
	if (m->count >= m->nbuckets) rc = grow(m);
	n->hash = hash;
	size_t k = hash & (m->nbuckets - 1);
	n->next = m->buckets[k];
	m->buckets[k] = n;
	m->count++;
	return rc;
}

void cm_hmap_remove(cm_hmap *m, cm_hnode *n)
{
	cm_hnode **pp = &m->buckets[n->hash & (m->nbuckets - 1)];
	for (; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			n->next = NULL;
			m->count--;
			return;
		}
	}
}

cm_hnode *cm_hmap_first(const cm_hmap *m, cm_hmap_iter *it)
{
	it->m = m;
	it->bucket = 0;
	it->next = NULL;
	return cm_hmap_next(it);
}

cm_hnode *cm_hmap_next(cm_hmap_iter *it)
{
	while (it->next == NULL) {
		if (it->bucket >= it->m->nbuckets) return NULL;
		it->next = it->m->buckets[it->bucket++];
	}
	cm_hnode *n = it->next;
	it->next = n->next;
	return n;
}
