/*
 * tests/unit/db/test_logical_hints.c — db/logical-hints.c: what the logical hint source makes of decoded
 * changes, with no server. A zeroed db_logical (db/logical-internal.h) gets a hint map as
 * pollgate_hint_map would give it; pgoutput messages are built byte by byte and decoded by db/pgoutput.c
 * exactly as the stream's would be. Checked: the key column found by name from the Relation message (and
 * found again when the table changes), an insert/update/delete hinting the key (old and new when the key
 * moves), "every user" for an unkeyed access row, the coarser fallbacks (a DELETE whose old key the replica
 * identity does not carry, a TRUNCATE, more hints than TX_HINTS_MAX: a re-read or "every user", never a lost
 * hint), NULL and non-id keys, and the hand-over: deduplicated, sorted, "*" covering every access hint, a
 * re-read covering every other kind, counted, the bucket emptied; xids carried by a merge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/logical-internal.h"

/* ---- a pgoutput message builder ---- */

typedef struct mb {
	unsigned char b[1024];
	size_t n;
	db_pgo_msg m; /* the decoded view, into b */
} mb;

static void put(mb *m, const void *p, size_t n)
{
	assert_true(m->n + n <= sizeof m->b);
	memcpy(m->b + m->n, p, n);
	m->n += n;
}
static void u8(mb *m, unsigned v)
{
	unsigned char c = (unsigned char)v;
	put(m, &c, 1);
}
static void be(mb *m, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--) u8(m, (unsigned)(v >> (8 * i)) & 0xff);
}
static void cstr(mb *m, const char *s)
{
	put(m, s, strlen(s) + 1);
}
static const db_pgo_msg *decoded(mb *m)
{
	assert_int_equal(db_pgo_msg_parse(m->b, m->n, &m->m), 0);
	return &m->m;
}

/* Relation `relid` with columns `names` (NULL-terminated); `key` flags which are in the identity key. */
static const db_pgo_msg *relation(mb *m, uint32_t relid, char ident, const char *const *names, const bool *key)
{
	int n = 0;
	while (names[n]) n++;
	m->n = 0;
	u8(m, 'R');
	be(m, relid, 4);
	cstr(m, "public");
	cstr(m, "t");
	u8(m, (unsigned)ident);
	be(m, (uint64_t)n, 2);
	for (int i = 0; i < n; i++) {
		u8(m, key[i] ? 1 : 0);
		cstr(m, names[i]);
		be(m, 20, 4);
		be(m, 0xffffffffu, 4);
	}
	return decoded(m);
}

/* TupleData of `n` columns: NULL = 'n', "~" = unchanged toast, else text. */
static void tuple(mb *m, int n, const char *const *v)
{
	be(m, (uint64_t)n, 2);
	for (int i = 0; i < n; i++) {
		if (v[i] == NULL) {
			u8(m, 'n');
		} else if (strcmp(v[i], "~") == 0) {
			u8(m, 'u');
		} else {
			u8(m, 't');
			be(m, strlen(v[i]), 4);
			put(m, v[i], strlen(v[i]));
		}
	}
}

static const db_pgo_msg *insert(mb *m, uint32_t relid, int n, const char *const *v)
{
	m->n = 0;
	u8(m, 'I');
	be(m, relid, 4);
	u8(m, 'N');
	tuple(m, n, v);
	return decoded(m);
}

/* old_kind 0: no old tuple ('U' without one, as with a default identity and an unchanged key). */
static const db_pgo_msg *update(mb *m, uint32_t relid, char old_kind, int n, const char *const *old,
                                const char *const *new)
{
	m->n = 0;
	u8(m, 'U');
	be(m, relid, 4);
	if (old_kind) {
		u8(m, (unsigned)old_kind);
		tuple(m, n, old);
	}
	u8(m, 'N');
	tuple(m, n, new);
	return decoded(m);
}

static const db_pgo_msg *delete(mb *m, uint32_t relid, char old_kind, int n, const char *const *old)
{
	m->n = 0;
	u8(m, 'D');
	be(m, relid, 4);
	u8(m, (unsigned)old_kind);
	tuple(m, n, old);
	return decoded(m);
}

static const db_pgo_msg *truncate(mb *m, uint32_t relid)
{
	m->n = 0;
	u8(m, 'T');
	be(m, 1, 4);
	u8(m, 0);
	be(m, relid, 4);
	return decoded(m);
}

/* ---- the session under test ---- */

#define RUNS 16400    /* id, name, run_id: run hints keyed by run_id, plus access for everyone */
#define PACKS 16500   /* id, tenant_id: review_pack hints keyed by tenant_id */
#define MEMBERS 16600 /* user_id, role: access hints keyed by user_id */
#define OTHER 16700   /* not mapped */

typedef struct fix {
	db_logical *l;
	int n;
	char got[64][48]; /* "channel payload" */
	int resyncs;
	mb m;
} fix;

static void rec_notify(void *arg, const char *channel, const char *payload)
{
	fix *f = arg;
	assert_true(f->n < 64);
	snprintf(f->got[f->n++], sizeof f->got[0], "%s %s", channel, payload);
}

static void rec_resync(void *arg)
{
	((fix *)arg)->resyncs++;
}

static void add_map(db_logical *l, uint32_t relid, int kind, const char *key)
{
	l->map = realloc(l->map, (size_t)(l->n_map + 1) * sizeof *l->map);
	assert_non_null(l->map);
	lg_map *e = &l->map[l->n_map++];
	memset(e, 0, sizeof *e);
	e->relid = relid;
	e->kind = kind;
	snprintf(e->key, sizeof e->key, "%s", key);
}

static const char *const RUN_COLS[] = {"id", "name", "run_id", NULL};
static const bool RUN_KEY[] = {true, false, false};
static const char *const PACK_COLS[] = {"id", "tenant_id", NULL};
static const bool PACK_KEY[] = {true, false};
static const char *const MEMBER_COLS[] = {"user_id", "role", NULL};
static const bool MEMBER_KEY[] = {true, false};

static int setup(void **state)
{
	fix *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->l = calloc(1, sizeof *f->l);
	assert_non_null(f->l);
	f->l->on_notify = rec_notify;
	f->l->on_resync = rec_resync;
	f->l->arg = f;
	add_map(f->l, RUNS, DB_HINT_RUN, "run_id");
	add_map(f->l, RUNS, DB_HINT_ACCESS, "");
	add_map(f->l, PACKS, DB_HINT_REVIEW_PACK, "tenant_id");
	add_map(f->l, MEMBERS, DB_HINT_ACCESS, "user_id");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fix *f = *state;
	db_lg_rels_clear(f->l);
	free(f->l->rels);
	free(f->l->map);
	db_lg_bucket_free(&f->l->tx);
	db_lg_bucket_free(&f->l->pend);
	free(f->l);
	free(f);
	return 0;
}

/* Commit the transaction's hints (as the stream does on Commit) and hand them over. */
static void commit_and_deliver(fix *f)
{
	db_lg_bucket_merge(&f->l->pend, &f->l->tx, true, 777);
	assert_int_equal(f->l->tx.n, 0);
	db_lg_bucket_deliver(f->l, &f->l->pend);
	assert_int_equal(f->l->pend.n, 0);
	assert_false(f->l->pend.resync);
	assert_false(f->l->pend.access_all);
	f->l->pend.nx = 0;
}

static void assert_got(fix *f, const char *const *want)
{
	int n = 0;
	while (want[n]) n++;
	for (int i = 0; i < f->n; i++)
		if (i >= n) fail_msg("unexpected hint \"%s\"", f->got[i]);
	for (int i = 0; i < n && i < f->n; i++) assert_string_equal(f->got[i], want[i]);
	assert_int_equal(f->n, n);
	f->n = 0;
}

/* ---- tests ---- */

static void test_insert_hints_the_mapped_key_and_everyone(void **state)
{
	fix *f = *state;
	assert_true(db_lg_on_relation(f->l, relation(&f->m, RUNS, 'f', RUN_COLS, RUN_KEY)));
	const char *row[] = {"5", "alpha", "42"};
	db_lg_on_change(f->l, insert(&f->m, RUNS, 3, row));
	commit_and_deliver(f);
	assert_got(f, (const char *const[]){"pollgate_run 42", "pollgate_access *", NULL});
	assert_int_equal(f->l->stats.hints, 2);
	assert_int_equal(f->resyncs, 0);
}

static void test_many_changes_give_one_hint_each_sorted(void **state)
{
	fix *f = *state;
	assert_true(db_lg_on_relation(f->l, relation(&f->m, PACKS, 'f', PACK_COLS, PACK_KEY)));
	const char *keys[] = {"30", "7", "30", "100", "7", "30"};
	for (int i = 0; i < 6; i++) {
		const char *row[] = {"1", keys[i]};
		db_lg_on_change(f->l, insert(&f->m, PACKS, 2, row));
	}
	/* Many updates of one row: one hint. */
	for (int i = 0; i < 50; i++) {
		const char *row[] = {"1", "7"};
		db_lg_on_change(f->l, update(&f->m, PACKS, 'O', 2, row, row));
	}
	commit_and_deliver(f);
	assert_got(f, (const char *const[]){"pollgate_review_pack 7", "pollgate_review_pack 30",
	                                    "pollgate_review_pack 100", NULL});
	assert_int_equal(f->l->stats.hints, 3);
}

static void test_update_moving_the_key_hints_old_and_new(void **state)
{
	fix *f = *state;
	assert_true(db_lg_on_relation(f->l, relation(&f->m, PACKS, 'f', PACK_COLS, PACK_KEY)));
	const char *old[] = {"1", "41"}, *new[] = {"1", "42"};
	db_lg_on_change(f->l, update(&f->m, PACKS, 'O', 2, old, new));
	commit_and_deliver(f);
	assert_got(f, (const char *const[]){"pollgate_review_pack 41", "pollgate_review_pack 42", NULL});
}

static void test_identity_without_the_key_falls_back_on_delete(void **state)
{
	fix *f = *state;
	/* Default identity: the old tuple carries only `id`, not tenant_id. */
	assert_true(db_lg_on_relation(f->l, relation(&f->m, PACKS, 'd', PACK_COLS, PACK_KEY)));
	const char *old[] = {"1", NULL}, *new[] = {"1", "42"};
	/* An update without an old tuple hints the new key only. */
	db_lg_on_change(f->l, update(&f->m, PACKS, 0, 2, old, new));
	commit_and_deliver(f);
	assert_got(f, (const char *const[]){"pollgate_review_pack 42", NULL});
	assert_int_equal(f->resyncs, 0);

	/* A delete cannot name its key: every held resource is re-read; the re-read covers the others. */
	db_lg_on_change(f->l, update(&f->m, PACKS, 0, 2, old, new));
	db_lg_on_change(f->l, delete(&f->m, PACKS, 'K', 2, old));
	commit_and_deliver(f);
	assert_got(f, (const char *const[]){NULL});
	assert_int_equal(f->resyncs, 1);
	assert_int_equal(f->l->stats.resyncs, 1);

	/* The same for an access table: every user instead. */
	assert_true(db_lg_on_relation(f->l, relation(&f->m, MEMBERS, 'd', MEMBER_COLS, (const bool[]){false, false})));
	const char *m_old[] = {NULL, NULL}, *m_new[] = {"9", "admin"};
	db_lg_on_change(f->l, insert(&f->m, MEMBERS, 2, m_new));
	db_lg_on_change(f->l, delete(&f->m, MEMBERS, 'K', 2, m_old));
	commit_and_deliver(f);
	assert_got(f, (const char *const[]){"pollgate_access *", NULL});
	assert_int_equal(f->resyncs, 1);
}

static void test_delete_with_the_key_in_identity_hints_it(void **state)
{
	fix *f = *state;
	assert_true(db_lg_on_relation(f->l, relation(&f->m, MEMBERS, 'd', MEMBER_COLS, MEMBER_KEY)));
	const char *old[] = {"12", NULL};
	db_lg_on_change(f->l, delete(&f->m, MEMBERS, 'K', 2, old));
	commit_and_deliver(f);
	assert_got(f, (const char *const[]){"pollgate_access 12", NULL});
	assert_int_equal(f->resyncs, 0);
}

static void test_null_and_non_id_keys_hint_nothing(void **state)
{
	fix *f = *state;
	assert_true(db_lg_on_relation(f->l, relation(&f->m, PACKS, 'f', PACK_COLS, PACK_KEY)));
	const char *a[] = {"1", NULL}, *b[] = {"1", "abc"}, *c[] = {"1", "-5"}, *d[] = {"1", "~"};
	db_lg_on_change(f->l, insert(&f->m, PACKS, 2, a));
	db_lg_on_change(f->l, insert(&f->m, PACKS, 2, b));
	db_lg_on_change(f->l, insert(&f->m, PACKS, 2, c));
	db_lg_on_change(f->l, update(&f->m, PACKS, 0, 2, d, d));
	commit_and_deliver(f);
	assert_got(f, (const char *const[]){NULL});
	assert_int_equal(f->resyncs, 0);
}

static void test_unmapped_table_and_missing_column_hint_nothing(void **state)
{
	fix *f = *state;
	const char *cols[] = {"id", NULL};
	const bool key[] = {true};
	assert_true(db_lg_on_relation(f->l, relation(&f->m, OTHER, 'f', cols, key)));
	const char *row[] = {"3"};
	db_lg_on_change(f->l, insert(&f->m, OTHER, 1, row));
	/* A change of a table we never got a Relation for. */
	const char *row2[] = {"1", "2"};
	db_lg_on_change(f->l, insert(&f->m, PACKS, 2, row2));
	/* The mapped key column is not in the table (renamed): no hint from it. */
	const char *renamed[] = {"id", "tenant", NULL};
	assert_true(db_lg_on_relation(f->l, relation(&f->m, PACKS, 'f', renamed, PACK_KEY)));
	db_lg_on_change(f->l, insert(&f->m, PACKS, 2, row2));
	commit_and_deliver(f);
	assert_got(f, (const char *const[]){NULL});

	/* Found again when the next Relation message has it, at its new position. */
	const char *moved[] = {"tenant_id", "id", NULL};
	assert_true(db_lg_on_relation(f->l, relation(&f->m, PACKS, 'f', moved, PACK_KEY)));
	const char *row3[] = {"64", "1"};
	db_lg_on_change(f->l, insert(&f->m, PACKS, 2, row3));
	commit_and_deliver(f);
	assert_got(f, (const char *const[]){"pollgate_review_pack 64", NULL});
	assert_int_equal(f->l->n_rels, 2);
}

static void test_truncate_means_everyone_and_a_reread(void **state)
{
	fix *f = *state;
	assert_true(db_lg_on_relation(f->l, relation(&f->m, RUNS, 'f', RUN_COLS, RUN_KEY)));
	const char *row[] = {"5", "alpha", "42"};
	db_lg_on_change(f->l, insert(&f->m, RUNS, 3, row));
	db_lg_on_truncate(f->l, truncate(&f->m, RUNS));
	commit_and_deliver(f);
	assert_got(f, (const char *const[]){"pollgate_access *", NULL});
	assert_int_equal(f->resyncs, 1);
	/* A truncate of a table that is not mapped: nothing. */
	db_lg_on_truncate(f->l, truncate(&f->m, OTHER));
	commit_and_deliver(f);
	assert_got(f, (const char *const[]){NULL});
	assert_int_equal(f->resyncs, 1);
}

static void test_past_the_bound_a_bucket_turns_coarse_not_lossy(void **state)
{
	fix *f = *state;
	lg_bucket src = {0};
	int n = TX_HINTS_MAX + 10;
	src.h = calloc((size_t)n, sizeof *src.h);
	assert_non_null(src.h);
	for (int i = 0; i < n; i++) src.h[i] = (lg_hint){.kind = DB_HINT_RUN, .key = i + 1};
	src.n = src.cap = n;
	db_lg_bucket_merge(&f->l->pend, &src, false, 0);
	assert_true(f->l->pend.n <= TX_HINTS_MAX);
	assert_true(f->l->pend.resync);
	db_lg_bucket_deliver(f->l, &f->l->pend);
	assert_int_equal(f->n, 0); /* the re-read covers every run */
	assert_int_equal(f->resyncs, 1);

	/* Access hints past the bound: every user. */
	for (int i = 0; i < n; i++) src.h[i] = (lg_hint){.kind = DB_HINT_ACCESS, .key = i + 1};
	src.n = n;
	db_lg_bucket_merge(&f->l->pend, &src, false, 0);
	assert_true(f->l->pend.access_all);
	assert_false(f->l->pend.resync);
	db_lg_bucket_deliver(f->l, &f->l->pend);
	assert_got(f, (const char *const[]){"pollgate_access *", NULL});
	assert_int_equal(f->resyncs, 1);
	db_lg_bucket_free(&src);
}

static void test_merge_carries_xids_and_empties_the_source(void **state)
{
	fix *f = *state;
	lg_bucket a = {0}, b = {0};
	assert_true(db_lg_on_relation(f->l, relation(&f->m, PACKS, 'f', PACK_COLS, PACK_KEY)));
	for (uint32_t x = 1; x <= 40; x++) {
		const char *row[] = {"1", "8"};
		db_lg_on_change(f->l, insert(&f->m, PACKS, 2, row));
		db_lg_bucket_merge(&a, &f->l->tx, true, 1000 + x);
	}
	f->l->tx.resync = true;
	db_lg_bucket_merge(&a, &f->l->tx, true, 2000);
	assert_int_equal(a.nx, 41);
	assert_int_equal(a.xid[0], 1001);
	assert_int_equal(a.xid[40], 2000);
	assert_int_equal(a.n, 40);
	assert_true(a.resync);
	db_lg_bucket_merge(&b, &a, false, 0);
	assert_int_equal(b.nx, 41);
	assert_int_equal(b.xid[40], 2000);
	assert_true(b.resync);
	assert_int_equal(a.n, 0);
	assert_int_equal(a.nx, 0);
	assert_false(a.resync);
	db_lg_bucket_free(&a);
	db_lg_bucket_free(&b);
	assert_null(b.h);
	assert_int_equal(b.cap, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_insert_hints_the_mapped_key_and_everyone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_changes_give_one_hint_each_sorted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_moving_the_key_hints_old_and_new, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity_without_the_key_falls_back_on_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_with_the_key_in_identity_hints_it, setup, teardown),
		cmocka_unit_test_setup_teardown(test_null_and_non_id_keys_hint_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unmapped_table_and_missing_column_hint_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncate_means_everyone_and_a_reread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_past_the_bound_a_bucket_turns_coarse_not_lossy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge_carries_xids_and_empties_the_source, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
