/*
 * db/pgoutput.c — see pgoutput.h.
 *
 * Everything goes through a reader (`rd`) that refuses to move past its end: a read that does not fit
 * marks the reader bad and returns 0 / "", so a parse checks `bad` once at the end. Tuples and Relation
 * column lists are walked completely while parsing, so the accessors that walk them again later can
 * rely on every length having been checked.
 */
#include "db/pgoutput.h"

#include <string.h>

typedef struct rd {
	const unsigned char *p;
	size_t n;
	bool bad;
} rd;

static uint64_t rd_int(rd *r, size_t bytes)
{
	uint64_t v = 0;
	if (r->bad || r->n < bytes) {
		r->bad = true;
		return 0;
	}
	for (size_t i = 0; i < bytes; i++) v = (v << 8) | r->p[i];
	r->p += bytes;
	r->n -= bytes;
	return v;
}

/* A NUL-terminated string; returns it (pointing into the message) or "" when malformed. */
static const char *rd_str(rd *r)
{
	if (r->bad || r->n == 0) {
		r->bad = true;
		return "";
	}
	const unsigned char *z = memchr(r->p, 0, r->n);
	if (z == NULL) {
		r->bad = true;
		return "";
	}
	const char *s = (const char *)r->p;
	r->n -= (size_t)(z - r->p) + 1;
	r->p = z + 1;
	return s;
}

static void rd_skip(rd *r, size_t len)
{
	if (r->bad || r->n < len) {
		r->bad = true;
		return;
	}
	r->p += len;
	r->n -= len;
}

int db_pgo_copy_parse(const void *buf, size_t len, db_pgo_copy *out)
{
	rd r = {.p = buf, .n = len, .bad = false};
	memset(out, 0, sizeof *out);
	out->type = (char)rd_int(&r, 1);
	if (r.bad) return -1;
	if (out->type == 'w') {
		(void)rd_int(&r, 8); /* start of this data */
		out->wal_end = rd_int(&r, 8);
		(void)rd_int(&r, 8); /* send time */
		out->data = r.p;
		out->len = r.n;
	} else if (out->type == 'k') {
		out->wal_end = rd_int(&r, 8);
		(void)rd_int(&r, 8); /* send time */
		out->reply = rd_int(&r, 1) != 0;
	}
	return r.bad ? -1 : 0;
}

/* Walk a TupleData, checking every column; leaves r after it. */
static void rd_tuple(rd *r, db_pgo_tuple *t)
{
	t->p = r->p;
	t->ncols = (int)rd_int(r, 2);
	for (int i = 0; i < t->ncols && !r->bad; i++) {
		char k = (char)rd_int(r, 1);
		if (k == 't' || k == 'b') rd_skip(r, (size_t)rd_int(r, 4));
		else if (k != 'n' && k != 'u') r->bad = true;
	}
	t->n = r->bad ? 0 : (size_t)(r->p - t->p);
}

void db_pgo_tuple_col(const db_pgo_tuple *t, int want, db_pgo_col *out)
{
	rd r = {.p = t->p, .n = t->n, .bad = false};
	memset(out, 0, sizeof *out);
	if (want < 0 || want >= t->ncols) return;
	(void)rd_int(&r, 2);
	for (int i = 0; i <= want && !r.bad; i++) {
		char k = (char)rd_int(&r, 1);
		const char *v = NULL;
		size_t len = 0;
		if (k == 't' || k == 'b') {
			len = (size_t)rd_int(&r, 4);
			v = (const char *)r.p;
			rd_skip(&r, len);
		}
		if (r.bad) return; /* cannot happen on a parsed tuple */
		if (i == want) {
			out->kind = k;
			out->v = v;
			out->len = len;
		}
	}
}

int64_t db_pgo_col_id(const db_pgo_col *c)
{
	if (c->kind == 'n' || c->kind == 'u' || c->kind == 0) return 0;
	if (c->kind != 't' || c->len == 0 || c->len > 19) return -1;
	int64_t v = 0;
	for (size_t i = 0; i < c->len; i++) {
		if (c->v[i] < '0' || c->v[i] > '9') return -1;
		int d = c->v[i] - '0';
		if (v > (INT64_MAX - d) / 10) return -1; /* 19 digits can overflow */
		v = v * 10 + d;
	}
	return v > 0 ? v : -1;
}

static void rd_relcol(rd *r, db_pgo_relcol *c)
{
	c->flags = (unsigned)rd_int(r, 1);
	c->name = rd_str(r);
	c->type_oid = (uint32_t)rd_int(r, 4);
	c->typmod = (int32_t)(uint32_t)rd_int(r, 4);
}

int db_pgo_relcol_next(const db_pgo_msg *m, size_t *pos, db_pgo_relcol *out)
{
	if (m->type != 'R' || *pos >= m->cols_len) return 0;
	rd r = {.p = m->cols + *pos, .n = m->cols_len - *pos, .bad = false};
	rd_relcol(&r, out);
	if (r.bad) return 0; /* cannot happen on a parsed message */
	*pos = (size_t)(r.p - m->cols);
	return 1;
}

uint32_t db_pgo_trunc_relid(const db_pgo_msg *m, uint32_t i)
{
	if (m->type != 'T' || i >= m->n_trunc) return 0;
	rd r = {.p = m->trunc + (size_t)i * 4, .n = 4, .bad = false};
	return (uint32_t)rd_int(&r, 4);
}

int db_pgo_msg_parse(const void *buf, size_t len, db_pgo_msg *out)
{
	rd r = {.p = buf, .n = len, .bad = false};
	memset(out, 0, sizeof *out);
	out->type = (char)rd_int(&r, 1);
	if (r.bad) return -1;

	switch (out->type) {
	case 'B':               /* Begin: final LSN, commit time, xid */
		out->lsn = rd_int(&r, 8);
		(void)rd_int(&r, 8); /* commit time */
		out->xid = (uint32_t)rd_int(&r, 4);
		break;
	case 'C':               /* Commit: flags, commit LSN, end LSN, commit time */
		(void)rd_int(&r, 1);
		(void)rd_int(&r, 8);
		out->lsn = rd_int(&r, 8);
		(void)rd_int(&r, 8);
		break;
	case 'R': {             /* Relation: relid, namespace, name, identity, columns */
		out->relid = (uint32_t)rd_int(&r, 4);
		out->nsp = rd_str(&r);
		out->name = rd_str(&r);
		out->ident = (char)rd_int(&r, 1);
		out->ncols = (int)rd_int(&r, 2);
		out->cols = r.p;
		db_pgo_relcol c;
		for (int i = 0; i < out->ncols && !r.bad; i++) rd_relcol(&r, &c);
		out->cols_len = r.bad ? 0 : (size_t)(r.p - out->cols);
		break;
	}
	case 'I':               /* Insert: relid, 'N', new tuple */
		out->relid = (uint32_t)rd_int(&r, 4);
		if ((char)rd_int(&r, 1) != 'N') r.bad = true;
		rd_tuple(&r, &out->new_tuple);
		out->has_new = true;
		break;
	case 'U': {             /* Update: relid, ['K'|'O' old tuple], 'N' new tuple */
		out->relid = (uint32_t)rd_int(&r, 4);
		char k = (char)rd_int(&r, 1);
		if (k == 'K' || k == 'O') {
			out->old_kind = k;
			rd_tuple(&r, &out->old_tuple);
			k = (char)rd_int(&r, 1);
		}
		if (k != 'N') r.bad = true;
		rd_tuple(&r, &out->new_tuple);
		out->has_new = true;
		break;
	}
	case 'D': {             /* Delete: relid, 'K'|'O', old tuple */
		out->relid = (uint32_t)rd_int(&r, 4);
		char k = (char)rd_int(&r, 1);
		if (k != 'K' && k != 'O') r.bad = true;
		out->old_kind = k;
		rd_tuple(&r, &out->old_tuple);
		break;
	}
	case 'T':               /* Truncate: count, options, relids */
		out->n_trunc = (uint32_t)rd_int(&r, 4);
		out->trunc_options = (uint8_t)rd_int(&r, 1);
		out->trunc = r.p;
		if (!r.bad && r.n / 4 < out->n_trunc) r.bad = true;
		break;
	default: /* Origin, Type, Message, and whatever a later protocol adds */
		break;
	}
	if (r.bad) {
		char t = out->type;
		memset(out, 0, sizeof *out);
		out->type = t;
		return -1;
	}
	return 0;
}

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (unsigned char)(v & 0xff);
}

void db_pgo_status(unsigned char out[DB_PGO_STATUS_LEN], uint64_t flushed, int64_t now_us, bool ask_reply)
{
	out[0] = 'r';
	put64(out + 1, flushed);  /* written */
	put64(out + 9, flushed);  /* flushed */
	put64(out + 17, flushed); /* applied */
	put64(out + 25, (uint64_t)now_us);
	out[33] = ask_reply ? 1 : 0;
}
