/*
 * tests/fuzz/fuzz_pgoutput.c — libFuzzer target: the logical replication stream decoder (db/pgoutput.c),
 * whose bytes come from the database server over the network.
 *
 * Input: one selector byte (bit 0: the rest is one CopyData message of the stream, 'w'/'k'/other, whose
 * XLogData payload is then decoded as pgoutput; else the rest is one bare pgoutput message), then the
 * message. The target checks:
 *   - every view a parse returns (strings, tuples, column values, the column list, the relids) lies inside
 *     the input, and every string ends inside it;
 *   - a Relation's column walk gives exactly its column count; a tuple has no column kind but n/u/t/b;
 *   - db_pgo_col_id agrees with a plain restatement (1..INT64_MAX in at most 19 decimal digits, else -1;
 *     0 for no value);
 *   - a message of a decoded type that parses, cut at each shorter length (inputs up to 1 KiB), is
 *     refused below some length and accepted from it on (bytes after a whole message are ignored), and
 *     a second parse gives the same result.
 * A violation abort()s, which libFuzzer reports as a crash; ASan reports any read outside the input.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db/pgoutput.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char *lo, *hi; /* the message being checked */

static void inside(const void *p, size_t n)
{
	const unsigned char *c = p;
	if (n == 0) return;
	if (c < lo || c > hi || (size_t)(hi - c) < n) abort();
}

static void inside_str(const char *s)
{
	inside(s, 1);
	if (memchr(s, 0, (size_t)(hi - (const unsigned char *)s)) == NULL) abort();
}

static int64_t id_plain(const db_pgo_col *c)
{
	if (c->kind != 't') return c->kind == 'b' ? -1 : 0;
	if (c->len == 0 || c->len > 19) return -1;
	for (size_t i = 0; i < c->len; i++)
		if (c->v[i] < '0' || c->v[i] > '9') return -1;
	/* leading zeros are allowed (as the trigger's ::text never makes them, but they mean the number) */
	size_t z = 0;
	while (z < c->len && c->v[z] == '0') z++;
	if (z == c->len) return -1; /* zero */
	/* 19 significant digits: compare as text with INT64_MAX */
	if (c->len - z == 19 && memcmp(c->v + z, "9223372036854775807", 19) > 0) return -1;
	int64_t v = 0;
	for (size_t i = z; i < c->len; i++) v = v * 10 + (c->v[i] - '0');
	return v;
}

static void check_tuple(const db_pgo_tuple *t)
{
	if (t->ncols == 0 && t->n == 0) return;
	inside(t->p, t->n);
	for (int i = -1; i <= t->ncols; i++) {
		db_pgo_col c;
		db_pgo_tuple_col(t, i, &c);
		if (i < 0 || i >= t->ncols) {
			if (c.kind != 0) abort();
			continue;
		}
		if (c.kind != 'n' && c.kind != 'u' && c.kind != 't' && c.kind != 'b') abort();
		if (c.kind == 't' || c.kind == 'b') inside(c.v, c.len);
		else if (c.v != NULL || c.len != 0) abort();
		if (db_pgo_col_id(&c) != id_plain(&c)) abort();
	}
}

static bool decoded_type(char t)
{
	return strchr("BCRIUDT", t) != NULL && t != 0;
}

static void check_msg(const unsigned char *p, size_t n)
{
	db_pgo_msg m, again;
	lo = p;
	hi = p + n;
	int rc = db_pgo_msg_parse(p, n, &m);
	if (db_pgo_msg_parse(p, n, &again) != rc || memcmp(&m, &again, sizeof m) != 0) abort();
	if (rc != 0) {
		if (n > 0 && m.type != (char)p[0]) abort();
		return;
	}
	if (n == 0 || m.type != (char)p[0]) abort();
	if (m.type == 'R') {
		inside_str(m.nsp);
		inside_str(m.name);
		inside(m.cols, m.cols_len);
		size_t pos = 0;
		db_pgo_relcol c;
		int k = 0;
		while (db_pgo_relcol_next(&m, &pos, &c)) {
			inside_str(c.name);
			if (c.flags > 255) abort();
			k++;
		}
		if (k != m.ncols || pos != m.cols_len) abort();
	}
	check_tuple(&m.old_tuple);
	check_tuple(&m.new_tuple);
	if (m.type == 'T') {
		if (m.n_trunc > 0) inside(m.trunc, (size_t)m.n_trunc * 4);
		for (uint32_t i = 0; i < m.n_trunc; i++) (void)db_pgo_trunc_relid(&m, i);
	}
	if (decoded_type(m.type) && n <= 1024) {
		bool accepted = false; /* bytes after a whole message are ignored: once a cut parses, all longer do */
		for (size_t cut = 0; cut < n; cut++) {
			/* an exact-size copy, so ASan sees an over-read of the cut */
			unsigned char *c = malloc(cut ? cut : 1);
			if (c == NULL) return;
			memcpy(c, p, cut);
			db_pgo_msg x;
			int r = db_pgo_msg_parse(c, cut, &x);
			free(c);
			if (r == 0) accepted = true;
			else if (accepted) abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1) return 0;
	const unsigned char *p = data + 1;
	size_t n = size - 1;
	if (!(data[0] & 1)) {
		check_msg(p, n);
		return 0;
	}
	db_pgo_copy c;
	int rc = db_pgo_copy_parse(p, n, &c);
	if (rc != 0) {
		if ((n > 0 && (c.type == 'w' || c.type == 'k')) != (n > 0)) abort(); /* only these can be short */
		return 0;
	}
	if (c.type == 'w') {
		if (n < 25 || c.data != p + 25 || c.len != n - 25) abort();
		check_msg(c.data, c.len);
	} else if (c.type == 'k') {
		if (n < 18 || c.data != NULL) abort();
	} else if (c.data != NULL || c.wal_end != 0 || c.reply) {
		abort();
	}
	unsigned char st[DB_PGO_STATUS_LEN];
	db_pgo_status(st, c.wal_end, 0, c.reply);
	if (st[0] != 'r' || st[33] != (c.reply ? 1 : 0)) abort();
	return 0;
}
