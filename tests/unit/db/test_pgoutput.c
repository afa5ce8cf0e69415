/*
 * tests/unit/db/test_pgoutput.c — db/pgoutput.c: decoding of the logical replication stream (XLogData,
 * keepalive) and of pgoutput messages (Begin, Commit, Relation, Insert, Update, Delete, Truncate, and the
 * types it skips), their tuples (null, unchanged toast, text, binary columns), the key-id rule, and the
 * status update we send. Messages are built by hand, byte by byte, as the server sends them.
 *
 * Every malformed case is parsed from a heap copy of exactly its length, so a read past the end is an
 * ASan report (run with make SANITIZE=address,undefined test-unit), not a silent pass. Every valid message
 * is also cut at every shorter length, and each cut must be refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/pgoutput.h"

/* ---- a message builder ---- */

typedef struct mb {
	unsigned char b[512];
	size_t n;
} mb;

static mb *put(mb *m, const void *p, size_t n)
{
	assert_true(m->n + n <= sizeof m->b);
	memcpy(m->b + m->n, p, n);
	m->n += n;
	return m;
}
static mb *u8(mb *m, unsigned v)
{
	unsigned char c = (unsigned char)v;
	return put(m, &c, 1);
}
static mb *be(mb *m, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--) u8(m, (unsigned)(v >> (8 * i)) & 0xff);
	return m;
}
static mb *str(mb *m, const char *s)
{
	return put(m, s, strlen(s) + 1);
}
static mb *col_text(mb *m, const char *s)
{
	u8(m, 't');
	be(m, strlen(s), 4);
	return put(m, s, strlen(s));
}

/* Parse from an exact-size heap copy, so ASan sees any over-read; a view that was accepted is then
 * re-made over `m` (the copy is gone). */
static int parse_msg(const mb *m, size_t len, db_pgo_msg *out)
{
	unsigned char *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	memcpy(copy, m->b, len);
	int rc = db_pgo_msg_parse(copy, len, out);
	/* Accessors walk the buffer again: exercise them while it is alive. */
	if (rc == 0) {
		db_pgo_col c;
		for (int i = -1; i <= out->old_tuple.ncols; i++) db_pgo_tuple_col(&out->old_tuple, i, &c);
		for (int i = -1; i <= out->new_tuple.ncols; i++) db_pgo_tuple_col(&out->new_tuple, i, &c);
		size_t pos = 0;
		db_pgo_relcol rc2;
		int n = 0;
		while (db_pgo_relcol_next(out, &pos, &rc2)) n++;
		if (out->type == 'R') assert_int_equal(n, out->ncols);
		for (uint32_t i = 0; i < out->n_trunc; i++) (void)db_pgo_trunc_relid(out, i);
	}
	free(copy);
	/* Hand back a view into the caller's builder, which outlives this call. */
	if (rc == 0) assert_int_equal(db_pgo_msg_parse(m->b, len, out), 0);
	return rc;
}

static int parse_copy(const mb *m, size_t len, db_pgo_copy *out)
{
	unsigned char *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	memcpy(copy, m->b, len);
	int rc = db_pgo_copy_parse(copy, len, out);
	if (rc == 0 && out->data) assert_int_equal(out->data - copy, 25);
	free(copy);
	if (rc == 0) assert_int_equal(db_pgo_copy_parse(m->b, len, out), 0); /* a view over `m` */
	return rc;
}

/* Every prefix shorter than the whole message is refused. */
static void assert_every_cut_refused(const mb *m)
{
	db_pgo_msg out;
	for (size_t len = 0; len < m->n; len++) {
		if (parse_msg(m, len, &out) != -1) fail_msg("a cut at %zu of %zu bytes (type %c) was accepted", len, m->n, m->b[0]);
	}
	assert_int_equal(parse_msg(m, m->n, &out), 0);
}

/* ---- the messages ---- */

static void msg_begin(mb *m)
{
	be(u8(m, 'B'), 0x0000000100000A00ull, 8);
	be(m, 12345, 8);
	be(m, 777, 4);
}
static void msg_commit(mb *m)
{
	u8(u8(m, 'C'), 0);
	be(m, 0x0000000100000A00ull, 8);
	be(m, 0x0000000100000B28ull, 8);
	be(m, 12345, 8);
}
/* public.runs (relid 16400): id (key), name, run_id (not key); identity `ident`. */
static void msg_relation(mb *m, char ident)
{
	be(u8(m, 'R'), 16400, 4);
	str(m, "public");
	str(m, "runs");
	u8(m, (unsigned)ident);
	be(m, 3, 2);
	str(u8(m, 1), "id");
	be(be(m, 20, 4), 0xffffffffu, 4);
	str(u8(m, 0), "name");
	be(be(m, 25, 4), 0xffffffffu, 4);
	str(u8(m, 0), "run_id");
	be(be(m, 20, 4), 0xffffffffu, 4);
}
/* A tuple of the three columns: id, name, run_id. NULL arguments are 'n', "~" is 'u'. */
static void tuple3(mb *m, const char *id, const char *name, const char *run_id)
{
	const char *v[3] = {id, name, run_id};
	be(m, 3, 2);
	for (int i = 0; i < 3; i++) {
		if (v[i] == NULL) u8(m, 'n');
		else if (strcmp(v[i], "~") == 0) u8(m, 'u');
		else col_text(m, v[i]);
	}
}
static void msg_insert(mb *m)
{
	u8(be(u8(m, 'I'), 16400, 4), 'N');
	tuple3(m, "5", "alpha", "42");
}
static void msg_update(mb *m, char old_kind)
{
	be(u8(m, 'U'), 16400, 4);
	if (old_kind) {
		u8(m, (unsigned)old_kind);
		tuple3(m, "5", NULL, "41");
	}
	u8(m, 'N');
	tuple3(m, "5", "~", "42");
}
static void msg_delete(mb *m)
{
	u8(be(u8(m, 'D'), 16400, 4), 'K');
	tuple3(m, "5", NULL, NULL);
}
static void msg_truncate(mb *m)
{
	u8(be(u8(m, 'T'), 2, 4), 1);
	be(be(m, 16400, 4), 16500, 4);
}

/* ---- tests ---- */

static void test_each_message_type_decodes(void **state)
{
	(void)state;
	db_pgo_msg o;
	mb m = {0};

	msg_begin(&m);
	assert_int_equal(parse_msg(&m, m.n, &o), 0);
	assert_int_equal(o.type, 'B');
	assert_int_equal(o.xid, 777);
	assert_true(o.lsn == 0x0000000100000A00ull);

	m.n = 0;
	msg_commit(&m);
	assert_int_equal(parse_msg(&m, m.n, &o), 0);
	assert_int_equal(o.type, 'C');
	assert_true(o.lsn == 0x0000000100000B28ull);

	m.n = 0;
	msg_relation(&m, 'd');
	assert_int_equal(parse_msg(&m, m.n, &o), 0);
	assert_int_equal(o.relid, 16400);
	assert_string_equal(o.nsp, "public");
	assert_string_equal(o.name, "runs");
	assert_int_equal(o.ident, 'd');
	assert_int_equal(o.ncols, 3);
	size_t pos = 0;
	db_pgo_relcol c;
	assert_int_equal(db_pgo_relcol_next(&o, &pos, &c), 1);
	assert_string_equal(c.name, "id");
	assert_int_equal(c.flags, 1);
	assert_int_equal(c.type_oid, 20);
	assert_int_equal(c.typmod, -1);
	assert_int_equal(db_pgo_relcol_next(&o, &pos, &c), 1);
	assert_string_equal(c.name, "name");
	assert_int_equal(db_pgo_relcol_next(&o, &pos, &c), 1);
	assert_string_equal(c.name, "run_id");
	assert_int_equal(c.flags, 0);
	assert_int_equal(db_pgo_relcol_next(&o, &pos, &c), 0);

	m.n = 0;
	msg_insert(&m);
	assert_int_equal(parse_msg(&m, m.n, &o), 0);
	assert_int_equal(o.type, 'I');
	assert_int_equal(o.relid, 16400);
	assert_true(o.has_new);
	assert_int_equal(o.old_kind, 0);
	assert_int_equal(o.new_tuple.ncols, 3);

	m.n = 0;
	msg_delete(&m);
	assert_int_equal(parse_msg(&m, m.n, &o), 0);
	assert_int_equal(o.type, 'D');
	assert_int_equal(o.old_kind, 'K');
	assert_false(o.has_new);

	m.n = 0;
	msg_truncate(&m);
	assert_int_equal(parse_msg(&m, m.n, &o), 0);
	assert_int_equal(o.n_trunc, 2);
	assert_int_equal(o.trunc_options, 1);
	assert_int_equal(db_pgo_trunc_relid(&o, 0), 16400);
	assert_int_equal(db_pgo_trunc_relid(&o, 1), 16500);
	assert_int_equal(db_pgo_trunc_relid(&o, 2), 0);

	/* Types it does not decode (Origin, Type, Message, Stream Start...) are reported and skipped. */
	const char skipped[] = {'O', 'Y', 'M', 'S', 'E', 'A', 'b', 0x7f};
	for (size_t i = 0; i < sizeof skipped; i++) {
		m.n = 0;
		u8(&m, (unsigned char)skipped[i]);
		assert_int_equal(parse_msg(&m, m.n, &o), 0);
		assert_int_equal(o.type, skipped[i]);
		assert_int_equal(o.relid, 0);
	}
	/* An empty message has no type: refused. */
	assert_int_equal(parse_msg(&m, 0, &o), -1);
}

static void test_tuples_carry_null_toast_text_binary(void **state)
{
	(void)state;
	db_pgo_msg o;
	mb m = {0};
	msg_update(&m, 'O');
	assert_int_equal(parse_msg(&m, m.n, &o), 0);
	assert_int_equal(o.type, 'U');
	assert_int_equal(o.old_kind, 'O');
	assert_true(o.has_new);

	db_pgo_col c;
	db_pgo_tuple_col(&o.old_tuple, 1, &c);
	assert_int_equal(c.kind, 'n');
	assert_int_equal(db_pgo_col_id(&c), 0);
	db_pgo_tuple_col(&o.new_tuple, 1, &c);
	assert_int_equal(c.kind, 'u');
	assert_int_equal(db_pgo_col_id(&c), 0);
	db_pgo_tuple_col(&o.new_tuple, 2, &c);
	assert_int_equal(c.kind, 't');
	assert_int_equal(c.len, 2);
	assert_memory_equal(c.v, "42", 2);
	db_pgo_tuple_col(&o.new_tuple, 3, &c); /* past the last column */
	assert_int_equal(c.kind, 0);
	db_pgo_tuple_col(&o.new_tuple, -1, &c);
	assert_int_equal(c.kind, 0);

	/* An update without an old tuple. */
	m.n = 0;
	msg_update(&m, 0);
	assert_int_equal(parse_msg(&m, m.n, &o), 0);
	assert_int_equal(o.old_kind, 0);
	assert_int_equal(o.old_tuple.ncols, 0);

	/* A binary column. */
	m.n = 0;
	u8(be(u8(&m, 'I'), 1, 4), 'N');
	be(&m, 1, 2);
	u8(&m, 'b');
	be(&m, 3, 4);
	put(&m, "\x00\x01\x02", 3);
	assert_int_equal(parse_msg(&m, m.n, &o), 0);
	db_pgo_tuple_col(&o.new_tuple, 0, &c);
	assert_int_equal(c.kind, 'b');
	assert_int_equal(c.len, 3);
	assert_int_equal(db_pgo_col_id(&c), -1);
	assert_every_cut_refused(&m);
}

/* What db/logical.c does: a Relation names the mapped key column, later changes are read by its index. */
static void test_relation_then_update_keyed_by_mapped_column(void **state)
{
	(void)state;
	const char ident[] = {'d', 'f'};
	for (size_t k = 0; k < sizeof ident; k++) {
		db_pgo_msg o;
		mb m = {0};
		msg_relation(&m, ident[k]);
		assert_int_equal(parse_msg(&m, m.n, &o), 0);
		int key = -1;
		bool old_known = false;
		size_t pos = 0;
		db_pgo_relcol c;
		for (int i = 0; db_pgo_relcol_next(&o, &pos, &c); i++) {
			if (strcmp(c.name, "run_id") == 0) {
				key = i;
				old_known = o.ident == 'f' || (c.flags & 1u);
			}
		}
		assert_int_equal(key, 2);
		assert_int_equal(old_known, ident[k] == 'f');

		mb u = {0};
		msg_update(&u, 'O');
		assert_int_equal(db_pgo_msg_parse(u.b, u.n, &o), 0);
		assert_int_equal(o.relid, 16400);
		db_pgo_col v;
		db_pgo_tuple_col(&o.new_tuple, key, &v);
		assert_int_equal(db_pgo_col_id(&v), 42);
		db_pgo_tuple_col(&o.old_tuple, key, &v);
		assert_int_equal(db_pgo_col_id(&v), 41);
	}
}

static void test_every_cut_of_every_message_is_refused(void **state)
{
	(void)state;
	void (*build[])(mb *) = {msg_begin, msg_commit, msg_insert, msg_delete, msg_truncate};
	for (size_t i = 0; i < sizeof build / sizeof build[0]; i++) {
		mb m = {0};
		build[i](&m);
		assert_every_cut_refused(&m);
	}
	const char ident[] = {'d', 'n', 'f', 'i'};
	for (size_t i = 0; i < sizeof ident; i++) {
		mb m = {0};
		msg_relation(&m, ident[i]);
		assert_every_cut_refused(&m);
	}
	const char old[] = {0, 'K', 'O'};
	for (size_t i = 0; i < sizeof old; i++) {
		mb m = {0};
		msg_update(&m, old[i]);
		assert_every_cut_refused(&m);
	}
}

/* A table of malformed messages: each one is refused. */
typedef struct bad_case {
	const char *name;
	void (*build)(mb *);
} bad_case;

static void bad_tuple_kind(mb *m)
{
	u8(be(u8(m, 'I'), 1, 4), 'N');
	be(m, 1, 2);
	u8(m, 'x');
}
static void bad_insert_marker(mb *m)
{
	u8(be(u8(m, 'I'), 1, 4), 'O');
	tuple3(m, "1", "a", "2");
}
static void bad_update_marker(mb *m)
{
	u8(be(u8(m, 'U'), 1, 4), 'Z');
	tuple3(m, "1", "a", "2");
}
static void bad_update_no_new_after_old(mb *m)
{
	u8(be(u8(m, 'U'), 1, 4), 'K');
	tuple3(m, "1", "a", "2");
	u8(m, 'K');
	tuple3(m, "1", "a", "2");
}
static void bad_delete_marker(mb *m)
{
	u8(be(u8(m, 'D'), 1, 4), 'N');
	tuple3(m, "1", "a", "2");
}
static void bad_text_length_huge(mb *m)
{
	u8(be(u8(m, 'I'), 1, 4), 'N');
	be(m, 1, 2);
	u8(m, 't');
	be(m, 0xffffffffu, 4);
	put(m, "12", 2);
}
static void bad_text_length_one_over(mb *m)
{
	u8(be(u8(m, 'I'), 1, 4), 'N');
	be(m, 1, 2);
	u8(m, 't');
	be(m, 3, 4);
	put(m, "12", 2);
}
static void bad_tuple_huge_column_count(mb *m)
{
	u8(be(u8(m, 'I'), 1, 4), 'N');
	be(m, 65535, 2);
	u8(m, 'n');
	u8(m, 'u');
}
static void bad_relation_huge_column_count(mb *m)
{
	be(u8(m, 'R'), 1, 4);
	str(str(m, "s"), "t");
	u8(m, 'd');
	be(m, 65535, 2);
	str(u8(m, 1), "id");
	be(be(m, 20, 4), 0, 4);
}
static void bad_relation_name_unterminated(mb *m)
{
	be(u8(m, 'R'), 1, 4);
	str(m, "public");
	put(m, "runs", 4);
}
static void bad_relation_column_name_unterminated(mb *m)
{
	be(u8(m, 'R'), 1, 4);
	str(str(m, "s"), "t");
	u8(m, 'd');
	be(m, 1, 2);
	u8(m, 1);
	put(m, "idxxxxxxxxxxxx", 14);
}
static void bad_truncate_count_huge(mb *m)
{
	u8(be(u8(m, 'T'), 0xffffffffu, 4), 0);
	be(be(m, 1, 4), 2, 4);
}
static void bad_truncate_count_overflows_times_four(mb *m)
{
	u8(be(u8(m, 'T'), 0x40000001u, 4), 0);
	be(m, 1, 4);
}
static void bad_truncate_one_relid_short(mb *m)
{
	u8(be(u8(m, 'T'), 2, 4), 0);
	be(m, 1, 4);
	be(m, 2, 3);
}

static void test_malformed_messages_are_refused(void **state)
{
	(void)state;
	static const bad_case cases[] = {
		{"unknown tuple column kind", bad_tuple_kind},
		{"insert without N", bad_insert_marker},
		{"update with an unknown marker", bad_update_marker},
		{"update: old tuple, then no N", bad_update_no_new_after_old},
		{"delete with N", bad_delete_marker},
		{"text column of 4 GiB", bad_text_length_huge},
		{"text column one byte over", bad_text_length_one_over},
		{"tuple of 65535 columns, 2 present", bad_tuple_huge_column_count},
		{"relation of 65535 columns, 1 present", bad_relation_huge_column_count},
		{"relation name without NUL", bad_relation_name_unterminated},
		{"column name without NUL", bad_relation_column_name_unterminated},
		{"truncate of 2^32-1 relations", bad_truncate_count_huge},
		{"truncate count * 4 overflows 32 bits", bad_truncate_count_overflows_times_four},
		{"truncate relid cut short", bad_truncate_one_relid_short},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		mb m = {0};
		db_pgo_msg o;
		cases[i].build(&m);
		if (parse_msg(&m, m.n, &o) != -1) fail_msg("accepted: %s", cases[i].name);
		/* The type survives, the rest is cleared. */
		assert_int_equal(o.type, m.b[0]);
		assert_int_equal(o.relid, 0);
		assert_int_equal(o.new_tuple.ncols, 0);
		/* And every prefix of it too. */
		for (size_t len = 0; len < m.n; len++)
			if (parse_msg(&m, len, &o) != -1) fail_msg("accepted a cut at %zu: %s", len, cases[i].name);
	}
}

static void test_copy_messages(void **state)
{
	(void)state;
	db_pgo_copy c;
	mb m = {0};

	/* XLogData: start, end, time, then the pgoutput message. */
	be(u8(&m, 'w'), 0x10, 8);
	be(&m, 0x0000000100000B28ull, 8);
	be(&m, 99, 8);
	msg_begin(&m);
	assert_int_equal(parse_copy(&m, m.n, &c), 0);
	assert_int_equal(c.type, 'w');
	assert_true(c.wal_end == 0x0000000100000B28ull);
	assert_int_equal(c.len, m.n - 25);
	assert_int_equal(c.data[0], 'B');
	for (size_t len = 0; len < 25; len++) assert_int_equal(parse_copy(&m, len, &c), -1);
	assert_int_equal(parse_copy(&m, 25, &c), 0); /* an empty payload is the pgoutput parser's to refuse */
	assert_int_equal(c.len, 0);

	/* Keepalive: end, time, reply. */
	m.n = 0;
	be(u8(&m, 'k'), 0x2000, 8);
	be(&m, 99, 8);
	u8(&m, 1);
	assert_int_equal(parse_copy(&m, m.n, &c), 0);
	assert_int_equal(c.type, 'k');
	assert_true(c.wal_end == 0x2000);
	assert_true(c.reply);
	m.b[m.n - 1] = 0;
	assert_int_equal(parse_copy(&m, m.n, &c), 0);
	assert_false(c.reply);
	for (size_t len = 0; len < m.n; len++) assert_int_equal(parse_copy(&m, len, &c), -1);

	/* Anything else: its type, nothing more. */
	m.n = 0;
	be(u8(&m, 'z'), 0x2000, 8);
	assert_int_equal(parse_copy(&m, m.n, &c), 0);
	assert_int_equal(c.type, 'z');
	assert_true(c.wal_end == 0);
	assert_null(c.data);
	assert_int_equal(parse_copy(&m, 0, &c), -1);
}

static void test_key_ids(void **state)
{
	(void)state;
	static const struct {
		const char *v;
		int64_t want;
	} rows[] = {
		{"42", 42},
		{"1", 1},
		{"9223372036854775807", INT64_MAX},
		{"9223372036854775808", -1}, /* one over */
		{"9999999999999999999", -1}, /* 19 digits that overflow */
		{"10000000000000000000", -1},
		{"0042", 42}, /* leading zeros, as before the split */
		{"0000000000000000001", 1},
		{"0", -1},
		{"00", -1},
		{"-1", -1},
		{"+1", -1},
		{"12a", -1},
		{" 1", -1},
		{"", -1},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		db_pgo_col c = {.kind = 't', .v = rows[i].v, .len = strlen(rows[i].v)};
		if (db_pgo_col_id(&c) != rows[i].want) fail_msg("key \"%s\"", rows[i].v);
	}
	db_pgo_col c = {.kind = 'b', .v = "42", .len = 2};
	assert_int_equal(db_pgo_col_id(&c), -1);
	c.kind = 'n';
	assert_int_equal(db_pgo_col_id(&c), 0);
	c.kind = 'u';
	assert_int_equal(db_pgo_col_id(&c), 0);
	c.kind = 0;
	assert_int_equal(db_pgo_col_id(&c), 0);
}

static void test_status_update_bytes(void **state)
{
	(void)state;
	unsigned char out[DB_PGO_STATUS_LEN];
	db_pgo_status(out, 0x0102030405060708ull, 0x1112131415161718ll, true);
	static const unsigned char want[DB_PGO_STATUS_LEN] = {
		'r', 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 1,
	};
	assert_memory_equal(out, want, sizeof want);
	db_pgo_status(out, 0, 0, false);
	assert_int_equal(out[33], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_message_type_decodes),
		cmocka_unit_test(test_tuples_carry_null_toast_text_binary),
		cmocka_unit_test(test_relation_then_update_keyed_by_mapped_column),
		cmocka_unit_test(test_every_cut_of_every_message_is_refused),
		cmocka_unit_test(test_malformed_messages_are_refused),
		cmocka_unit_test(test_copy_messages),
		cmocka_unit_test(test_key_ids),
		cmocka_unit_test(test_status_update_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
