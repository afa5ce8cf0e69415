/*
 * db/access.c — see access.h.
 *
 * Each entitlement statement reads one resource per row through unnest($1, $2, $3), so the work is linear
 * in the number of (resource, user) pairs asked about. The entitled users are worked out in a LATERAL
 * subquery, and the row is filtered on them before the select list is evaluated: a row nobody named may
 * see is never detoasted, converted or sent. They come back as a bigint array literal. Timestamps travel
 * as whole microseconds since the epoch, so the gateway formats them itself (UTC, RFC 3339) whatever the
 * session's TimeZone or DateStyle; an infinite one travels as NULL. JSON columns travel as their text.
 * The token hashes travel as hex text both ways.
 */
#include "db/access.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"

/* Microseconds since the epoch; NULL for NULL and for +/-infinity, which have no such value (casting
 * them would fail the whole statement, and with it every resource batched with that row). */
#define US(col) "(CASE WHEN isfinite(" col ") THEN (extract(epoch from " col ") * 1000000)::bigint END)"

/* Entitlement for runs (fixed-points.md): a member of the run's workspace and, when the run has a tenant,
 * a tenant member of that tenant — and the tenant must belong to the run's workspace. */
const char db_sql_runs[] =
	"SELECT r.id, r.workspace_id, r.tenant_id, r.type, r.status, r.outcome,"
	" r.summary_counts::text, r.failure_summary::text,"
	" " US("r.created_at") ", " US("r.started_at") ", " US("r.completed_at") ","
	" " US("statement_timestamp()") ","
	" e.users::text"
	" FROM unnest($1::bigint[], $2::text[], $3::bool[]) AS q(id, users, keep)"
	" JOIN operation_runs r ON r.id = q.id"
	" CROSS JOIN LATERAL (SELECT ARRAY(SELECT u FROM unnest(q.users::bigint[]) AS u"
	"  WHERE EXISTS (SELECT 1 FROM workspace_memberships wm"
	"                 WHERE wm.workspace_id = r.workspace_id AND wm.user_id = u)"
	"    AND (r.tenant_id IS NULL OR EXISTS (SELECT 1 FROM tenants t"
	"          JOIN tenant_memberships tm ON tm.tenant_id = t.id"
	"          WHERE t.id = r.tenant_id AND t.workspace_id = r.workspace_id AND tm.user_id = u))) AS users) e"
	" WHERE q.keep OR cardinality(e.users) > 0";

/* Entitlement for a tenant's review pack: a member of the tenant's workspace whose tenant membership role
 * holds the capability review_packs.view. The latest pack is the highest created_at, then id. */
const char db_sql_packs[] =
	"SELECT t.id, p.id, p.workspace_id, p.operation_run_id, p.status,"
	" " US("p.generated_at") ", " US("p.expires_at") ", p.file_size,"
	" " US("p.created_at") ", " US("p.updated_at") ", " US("statement_timestamp()") ","
	" e.users::text"
	" FROM unnest($1::bigint[], $2::text[], $3::bool[]) AS q(id, users, keep)"
	" JOIN tenants t ON t.id = q.id"
	" CROSS JOIN LATERAL (SELECT ARRAY(SELECT u FROM unnest(q.users::bigint[]) AS u"
	"  WHERE EXISTS (SELECT 1 FROM workspace_memberships wm"
	"                 WHERE wm.workspace_id = t.workspace_id AND wm.user_id = u)"
	"    AND EXISTS (SELECT 1 FROM tenant_memberships tm"
	"          JOIN role_capabilities rc ON rc.role = tm.role AND rc.capability = 'review_packs.view'"
	"          WHERE tm.tenant_id = t.id AND tm.user_id = u)) AS users) e"
	" LEFT JOIN LATERAL (SELECT * FROM review_packs rp WHERE rp.tenant_id = t.id"
	"                    ORDER BY rp.created_at DESC NULLS LAST, rp.id DESC LIMIT 1) p ON true"
	" WHERE q.keep OR cardinality(e.users) > 0";

/* The token lookup: the live rows (not revoked, not expired at the statement's time) among the hashes. */
const char db_sql_tokens[] =
	"SELECT encode(a.token_sha256, 'hex'), a.user_id, " US("a.expires_at") " FROM access_tokens a"
	" WHERE a.token_sha256 = ANY (SELECT decode(h, 'hex') FROM unnest($1::text[]) AS h)"
	"   AND a.revoked_at IS NULL AND (a.expires_at IS NULL OR a.expires_at > statement_timestamp())";

/* ---- entitlement batching ---- */

void db_batch_params_init(db_batch_params *p)
{
	memset(p, 0, sizeof *p);
}

void db_batch_params_fini(db_batch_params *p)
{
	free(p->ids);
	free(p->users);
	free(p->keep);
	memset(p, 0, sizeof *p);
}

static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t ncap = *cap ? *cap : 256;
		while (ncap < *len + n + 1) ncap *= 2;
		char *nb = realloc(*buf, ncap);
		if (nb == NULL) return -1;
		*buf = nb;
		*cap = ncap;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

int db_batch_params_add(db_batch_params *p, int64_t id, const int64_t *users, size_t n_users, bool keep)
{
	char num[32];
	int n;

	if (append(&p->ids, &p->ids_len, &p->ids_cap, p->count ? "," : "{", 1) != 0) return -1;
	n = snprintf(num, sizeof num, "%" PRId64, id);
	if (append(&p->ids, &p->ids_len, &p->ids_cap, num, (size_t)n) != 0) return -1;

	/* Each element of the text[] is itself an array literal, quoted because it holds commas/braces. */
	if (append(&p->users, &p->users_len, &p->users_cap, p->count ? ",\"{" : "{\"{", 3) != 0) return -1;
	for (size_t i = 0; i < n_users; i++) {
		n = snprintf(num, sizeof num, i ? ",%" PRId64 : "%" PRId64, users[i]);
		if (append(&p->users, &p->users_len, &p->users_cap, num, (size_t)n) != 0) return -1;
	}
	if (append(&p->users, &p->users_len, &p->users_cap, "}\"", 2) != 0) return -1;
	if (append(&p->keep, &p->keep_len, &p->keep_cap, p->count ? (keep ? ",t" : ",f") : (keep ? "{t" : "{f"), 2) != 0)
		return -1;
	p->count++;
	return 0;
}

int db_batch_params_finish(db_batch_params *p)
{
	if (p->count == 0) {
		if (append(&p->ids, &p->ids_len, &p->ids_cap, "{", 1) != 0) return -1;
		if (append(&p->users, &p->users_len, &p->users_cap, "{", 1) != 0) return -1;
		if (append(&p->keep, &p->keep_len, &p->keep_cap, "{", 1) != 0) return -1;
	}
	if (append(&p->ids, &p->ids_len, &p->ids_cap, "}", 1) != 0) return -1;
	if (append(&p->keep, &p->keep_len, &p->keep_cap, "}", 1) != 0) return -1;
	return append(&p->users, &p->users_len, &p->users_cap, "}", 1);
}

/* ---- the token batch ---- */

void db_token_batch_init(db_token_batch *t)
{
	memset(t, 0, sizeof *t);
}

void db_token_batch_fini(db_token_batch *t)
{
	free(t->lit);
	memset(t, 0, sizeof *t);
}

/* Each hash is one element, "{h1" then ",h2": an opening brace or a comma, then 64 hex digits. */
int db_token_batch_add(db_token_batch *t, const uint8_t hash[DB_TOKEN_HASH_LEN])
{
	char hex[2 * DB_TOKEN_HASH_LEN + 2];
	hex[0] = t->count ? ',' : '{';
	cm_hex_encode(hash, DB_TOKEN_HASH_LEN, hex + 1);
	if (append(&t->lit, &t->len, &t->cap, hex, sizeof hex - 1) != 0) return -1;
	t->count++;
	return 0;
}

int db_token_batch_finish(db_token_batch *t)
{
	if (t->count == 0 && append(&t->lit, &t->len, &t->cap, "{", 1) != 0) return -1;
	return append(&t->lit, &t->len, &t->cap, "}", 1);
}

/* ---- the rows that come back ---- */

static int unhex(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	return -1;
}

int db_parse_token_row(const PGresult *res, int i, db_token_row *t, char *err, size_t errlen)
{
	if (db_col_shape(res, i, 3, err, errlen) != 0) return -1;
	const char *h = db_col_str(res, i, 0);
	if (h == NULL || strlen(h) != 2 * DB_TOKEN_HASH_LEN) {
		snprintf(err, errlen, "token hash is not 32 bytes");
		return -1;
	}
	for (int k = 0; k < DB_TOKEN_HASH_LEN; k++) {
		int a = unhex(h[2 * k]), b = unhex(h[2 * k + 1]);
		if (a < 0 || b < 0) {
			snprintf(err, errlen, "token hash is not hex");
			return -1;
		}
		t->hash[k] = (uint8_t)(a * 16 + b);
	}
	if (db_col_i64(res, i, 1, false, &t->user_id, err, errlen) ||
	    db_col_i64(res, i, 2, true, &t->expires_at, err, errlen))
		return -1;
	return 0;
}

int db_each_id(const char *text, void (*fn)(void *arg, int64_t id), void *arg)
{
	const char *p = text;
	int n = 0;

	if (text == NULL || *p++ != '{') return -1;
	if (*p == '}') return p[1] == '\0' ? 0 : -1;
	for (;;) {
		char *end;
		errno = 0;
		long long v = strtoll(p, &end, 10);
		if (errno != 0 || end == p) return -1;
		fn(arg, (int64_t)v);
		n++;
		p = end;
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == '}' && p[1] == '\0') return n;
		return -1;
	}
}
