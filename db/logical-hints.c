/*
 * db/logical-hints.c — what the logical hint source makes of the decoded stream (see db/logical-internal.h):
 * which column of each mapped table (pollgate_hint_map, read by db/logical.c) carries the key, as Relation
 * messages say; the hints of each Insert/Update/Delete/Truncate, per transaction, in a bucket bounded by
 * TX_HINTS_MAX (past it, or without memory, a coarser "every user" / "re-read everything", never a lost
 * hint); and the deduplicated hand-over of the buckets the visibility check released.
 */
#include "db/logical-internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

void db_lg_rels_clear(db_logical *l)
{
	for (int i = 0; i < l->n_rels; i++) free(l->rels[i].t);
	l->n_rels = 0;
}

void db_lg_bucket_clear(lg_bucket *b)
{
	b->n = b->nx = 0;
	b->resync = b->access_all = false;
}

void db_lg_bucket_free(lg_bucket *b)
{
	free(b->h);
	free(b->xid);
	memset(b, 0, sizeof *b);
}

/* One hint (key -1 = everyone). Past TX_HINTS_MAX, or without memory, the bucket falls back to "every
 * user" / "re-read everything": coarser, never lost. */
static void bucket_add(lg_bucket *b, int kind, int64_t key)
{
	if (kind == DB_HINT_ACCESS && key < 0) {
		b->access_all = true;
		return;
	}
	if (b->n == b->cap) {
		int cap = b->cap ? b->cap * 2 : 64;
		lg_hint *h = b->n < TX_HINTS_MAX ? realloc(b->h, (size_t)cap * sizeof *h) : NULL;
		if (h == NULL) {
			if (kind == DB_HINT_ACCESS) b->access_all = true;
			else b->resync = true;
			return;
		}
		b->h = h;
		b->cap = cap;
	}
	b->h[b->n].kind = kind;
	b->h[b->n].key = key;
	b->n++;
}

/* Move everything of `src` (and the xid, when given) into `dst`; `src` is left empty. */
void db_lg_bucket_merge(lg_bucket *dst, lg_bucket *src, bool with_xid, uint32_t xid)
{
	for (int i = 0; i < src->n; i++) bucket_add(dst, src->h[i].kind, src->h[i].key);
	dst->resync |= src->resync;
	dst->access_all |= src->access_all;
	for (int i = 0; i < src->nx; i++) {
		if (dst->nx == dst->capx) {
			int cap = dst->capx ? dst->capx * 2 : 16;
			uint32_t *x = realloc(dst->xid, (size_t)cap * sizeof *x);
			if (x == NULL) break; /* an unchecked commit: its hints go at the next check anyway */
			dst->xid = x;
			dst->capx = cap;
		}
		dst->xid[dst->nx++] = src->xid[i];
	}
	if (with_xid) {
		if (dst->nx == dst->capx) {
			int cap = dst->capx ? dst->capx * 2 : 16;
			uint32_t *x = realloc(dst->xid, (size_t)cap * sizeof *x);
			if (x != NULL) {
				dst->xid = x;
				dst->capx = cap;
			}
		}
		if (dst->nx < dst->capx) dst->xid[dst->nx++] = xid;
	}
	db_lg_bucket_clear(src);
}

static lg_rel *rel_find(db_logical *l, uint32_t relid)
{
	for (int i = 0; i < l->n_rels; i++)
		if (l->rels[i].relid == relid) return &l->rels[i];
	return NULL;
}

static void tx_add(db_logical *l, int kind, int64_t key)
{
	bucket_add(&l->tx, kind, key);
}

/* A key value as a hint: a positive decimal id, like a NOTIFY payload. */
static void tx_add_value(db_logical *l, const lg_target *t, const db_pgo_col *cv)
{
	int64_t v = db_pgo_col_id(cv);
	if (v > 0) tx_add(l, t->kind, v);
	else if (v < 0) log_warn("db logical ignored a key that is not an id kind=%s", db_hint_kind_name(t->kind));
	/* 0: NULL key: nothing, like the trigger */
}

/* A change of `rel`. `old`/`new` are the decoded tuples, or NULL. */
static void on_change(db_logical *l, lg_rel *rel, const db_pgo_tuple *old, const db_pgo_tuple *new,
                      bool is_delete)
{
	for (int i = 0; i < rel->n; i++) {
		lg_target *t = &rel->t[i];
		if (t->col == -1) { /* a map row without a key column: every user */
			tx_add(l, t->kind, -1);
			continue;
		}
		if (t->col < 0) continue; /* -3: the mapped key column is missing (warned at the Relation) */
		db_pgo_col cv;
		if (new) {
			db_pgo_tuple_col(new, t->col, &cv);
			tx_add_value(l, t, &cv);
		}
		if (old) {
			db_pgo_tuple_col(old, t->col, &cv);
			if (t->old_known) tx_add_value(l, t, &cv);
			else if (is_delete && t->kind == DB_HINT_ACCESS) l->tx.access_all = true;
			else if (is_delete) l->tx.resync = true;
		} else if (is_delete && !t->old_known) {
			if (t->kind == DB_HINT_ACCESS) l->tx.access_all = true;
			else l->tx.resync = true;
		}
	}
}

/* A Relation message: which of its columns carries the key of each map row of that table. Returns
 * false when out of memory (treated as a broken stream: reconnect and re-read). */
bool db_lg_on_relation(db_logical *l, const db_pgo_msg *m)
{
	uint32_t relid = m->relid;
	int nt = 0;
	for (int i = 0; i < l->n_map; i++)
		if (l->map[i].relid == relid) nt++;
	lg_rel *rel = rel_find(l, relid);
	if (rel == NULL) {
		if (l->n_rels == l->cap_rels) {
			int cap = l->cap_rels ? l->cap_rels * 2 : 8;
			lg_rel *n = realloc(l->rels, (size_t)cap * sizeof *n);
			if (n == NULL) return false;
			l->rels = n;
			l->cap_rels = cap;
		}
		rel = &l->rels[l->n_rels++];
		memset(rel, 0, sizeof *rel);
		rel->relid = relid;
	}
	free(rel->t);
	rel->t = NULL;
	rel->n = 0;
	rel->ncols = m->ncols;
	if (nt == 0) {
		log_debug("db logical relation not in pollgate_hint_map relid=%u name=\"%s.%s\"", relid, m->nsp, m->name);
		return true;
	}
	if ((rel->t = calloc((size_t)nt, sizeof *rel->t)) == NULL) return false;
	for (int i = 0; i < l->n_map; i++) {
		if (l->map[i].relid != relid) continue;
		rel->t[rel->n].kind = l->map[i].kind;
		rel->t[rel->n].col = l->map[i].key[0] ? -2 : -1; /* -2: not found yet */
		rel->n++;
	}
	size_t pos = 0;
	db_pgo_relcol col;
	for (int c = 0; db_pgo_relcol_next(m, &pos, &col); c++) {
		int ti = 0;
		for (int i = 0; i < l->n_map; i++) {
			if (l->map[i].relid != relid) continue;
			if (l->map[i].key[0] && strcmp(l->map[i].key, col.name) == 0) {
				rel->t[ti].col = c;
				rel->t[ti].old_known = m->ident == 'f' || (col.flags & 1u);
			}
			ti++;
		}
	}
	for (int i = 0; i < rel->n; i++) {
		if (rel->t[i].col == -2) {
			log_warn("db logical mapped key column missing kind=%s table=\"%s.%s\" hint=\"fix pollgate_hint_map "
			         "(SELECT pollgate_attach_logical(...) again)\"",
			         db_hint_kind_name(rel->t[i].kind), m->nsp, m->name);
			rel->t[i].col = -3; /* never matches a column: no hint */
		} else if (rel->t[i].col >= 0 && !rel->t[i].old_known) {
			log_warn("db logical the replica identity of a mapped table does not carry its key column kind=%s "
			         "table=\"%s.%s\" hint=\"an UPDATE that moves the key hints only the new one, a DELETE re-reads "
			         "everything; ALTER TABLE ... REPLICA IDENTITY FULL (pollgate_attach_logical does it)\"",
			         db_hint_kind_name(rel->t[i].kind), m->nsp, m->name);
		}
	}
	return true;
}

static int hint_cmp(const void *a, const void *b)
{
	const lg_hint *x = a, *y = b;
	if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
	return x->key < y->key ? -1 : x->key > y->key;
}

/* Hand over the hints of the commits a check found visible: deduplicated, then every user / a full
 * re-read where a bucket fell back to those. */
void db_lg_bucket_deliver(db_logical *l, lg_bucket *b)
{
	static const char *const channel[DB_HINT_KINDS] = {"pollgate_run", "pollgate_review_pack", "pollgate_access"};
	char payload[24];

	if (b->n > 1) qsort(b->h, (size_t)b->n, sizeof *b->h, hint_cmp);
	for (int i = 0; i < b->n; i++) {
		const lg_hint *h = &b->h[i];
		/* The list is sorted: a duplicate is the one just before. */
		if (i > 0 && b->h[i - 1].kind == h->kind && b->h[i - 1].key == h->key) continue;
		if (h->kind == DB_HINT_ACCESS && b->access_all) continue;
		if (h->kind != DB_HINT_ACCESS && b->resync) continue;
		snprintf(payload, sizeof payload, "%lld", (long long)h->key);
		l->stats.hints++;
		if (l->on_notify) l->on_notify(l->arg, channel[h->kind], payload);
	}
	if (b->access_all) {
		l->stats.hints++;
		if (l->on_notify) l->on_notify(l->arg, channel[DB_HINT_ACCESS], "*");
	}
	if (b->resync) {
		l->stats.resyncs++;
		if (l->on_resync) l->on_resync(l->arg);
	}
	db_lg_bucket_clear(b);
}

void db_lg_on_truncate(db_logical *l, const db_pgo_msg *m)
{
	for (uint32_t i = 0; i < m->n_trunc; i++) {
		lg_rel *rel = rel_find(l, db_pgo_trunc_relid(m, i));
		for (int j = 0; rel && j < rel->n; j++) {
			if (rel->t[j].kind == DB_HINT_ACCESS) l->tx.access_all = true;
			else l->tx.resync = true;
		}
	}
}


void db_lg_on_change(db_logical *l, const db_pgo_msg *m)
{
	lg_rel *rel = rel_find(l, m->relid);
	if (rel && rel->n > 0)
		on_change(l, rel, m->old_kind ? &m->old_tuple : NULL, m->has_new ? &m->new_tuple : NULL, m->type == 'D');
}
