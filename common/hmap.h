/*
 * common/hmap.h — an intrusive chained hash table with a keyed hash.
 *
 * Keys come from clients (resource ids, addresses, token hashes), so the hash is SipHash-2-4 with a
 * per-process random key: nobody outside can aim many keys at one bucket. Nodes are embedded in the
 * caller's structs (no allocation per entry); the table owns only its bucket array, which doubles when
 * the load passes 1. Lookups compare with a caller-supplied predicate; an iterator walks every node and
 * CM_CONTAINER_OF gets from a node back to the struct around it.
 */
#ifndef POLLGATE_COMMON_HMAP_H
#define POLLGATE_COMMON_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cm_hnode {
	struct cm_hnode *next;
	uint64_t hash;
} cm_hnode;

typedef struct cm_hmap {
	cm_hnode **buckets; /* owned */
	size_t nbuckets;    /* power of two */
	size_t count;
} cm_hmap;

/* Seed the keyed hash from the OS random source; call once at start-up (tests may skip it: a fixed
 * key is used until then). */
void cm_hash_seed(void);
uint64_t cm_hash_bytes(const void *data, size_t len);

int cm_hmap_init(cm_hmap *m, size_t initial) __attribute__((warn_unused_result));
void cm_hmap_fini(cm_hmap *m); /* frees buckets only; nodes belong to the caller */

/* Find the node with this hash for which eq(node, key) is true, or NULL. */
cm_hnode *cm_hmap_find(const cm_hmap *m, uint64_t hash, bool (*eq)(const cm_hnode *n, const void *key),
                       const void *key);

/* Insert a node (not already present). Returns 0, or -1 if growing failed (the node is inserted anyway
 * into the old array, so -1 only means the table is fuller than planned). */
int cm_hmap_insert(cm_hmap *m, cm_hnode *n, uint64_t hash);
void cm_hmap_remove(cm_hmap *m, cm_hnode *n);

/* Every node, in no particular order:
 *     cm_hmap_iter it;
 *     for (cm_hnode *n = cm_hmap_first(m, &it); n; n = cm_hmap_next(&it)) ...
 * The node just returned may be removed (or freed) before asking for the next; nothing else may be
 * inserted or removed while walking. A table after cm_hmap_fini() yields nothing. */
typedef struct cm_hmap_iter {
	const cm_hmap *m;
	size_t bucket;   /* the next bucket to open */
	cm_hnode *next;  /* the next node to return, saved before its predecessor is handed out */
} cm_hmap_iter;
cm_hnode *cm_hmap_first(const cm_hmap *m, cm_hmap_iter *it);
cm_hnode *cm_hmap_next(cm_hmap_iter *it);

/* The caller's struct of type `type` whose member `member` is at `ptr` (a node, a list link). */
#define CM_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#endif
