/*
 * db/hints.c — see hints.h.
 *
 * A trigger counts when it calls a function named pollgate_hint, is a user trigger that fires in an
 * ordinary session (tgenabled 'O' origin or 'A' always; 'D' disabled and 'R' replica-only do not), and
 * its argument bytes start with the kind and the NUL that ends it. Triggers cloned onto partitions are
 * left out, so a partitioned table counts once.
 */
#include "db/hints.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

const char db_hints_sql[] =
	"SELECT k.kind, count(DISTINCT t.tgrelid)"
	" FROM unnest('{run,review_pack,access}'::text[]) AS k(kind)"
	" LEFT JOIN pg_catalog.pg_trigger t"
	"   ON t.tgfoid IN (SELECT p.oid FROM pg_catalog.pg_proc p WHERE p.proname = 'pollgate_hint')"
	"  AND NOT t.tgisinternal AND t.tgparentid = 0 AND t.tgenabled IN ('O', 'A') AND t.tgnargs >= 1"
	"  AND substring(t.tgargs FROM 1 FOR octet_length(k.kind) + 1)"
	"      = convert_to(k.kind, 'UTF8') || '\\x00'::bytea"
	" GROUP BY k.kind";

static const char *const kind_names[DB_HINT_KINDS] = {"run", "review_pack", "access"};

/* What to run, per kind, when it has no trigger: the reference names stand for the operator's tables. */
static const char *const kind_fix[DB_HINT_KINDS] = {
	"SELECT pollgate_attach('<runs table>', 'run', '<run id column>')",
	"SELECT pollgate_attach('<review packs table>', 'review_pack', '<tenant id column>')",
	"SELECT pollgate_attach('<memberships or tokens table>', 'access', '<user id column>'), once per table "
	"that decides access",
};

const char *db_hint_kind_name(int kind)
{
	return kind >= 0 && kind < DB_HINT_KINDS ? kind_names[kind] : NULL;
}

void db_hints_init(db_hints *h)
{
	for (int k = 0; k < DB_HINT_KINDS; k++) h->tables[k] = -1;
}

int db_hints_parse(const PGresult *res, db_hints *out, char *err, size_t errlen)
{
	db_hints h;

	db_hints_init(&h);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 2) {
		snprintf(err, errlen, "unexpected result shape");
		return -1;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *name = PQgetvalue(res, i, 0), *num = PQgetvalue(res, i, 1);
		int k = 0;
		while (k < DB_HINT_KINDS && strcmp(name, kind_names[k]) != 0) k++;
		char *end;
		errno = 0;
		long v = strtol(num, &end, 10);
		if (k == DB_HINT_KINDS || PQgetisnull(res, i, 1) || errno || end == num || *end || v < 0 || v > 1000000) {
			snprintf(err, errlen, "row %d does not parse", i);
			return -1;
		}
		h.tables[k] = (int)v;
	}
	for (int k = 0; k < DB_HINT_KINDS; k++) {
		if (h.tables[k] < 0) {
			snprintf(err, errlen, "no row for kind %s", kind_names[k]);
			return -1;
		}
	}
	*out = h;
	return 0;
}

void db_hints_log(const db_hints *h)
{
	bool all = true;
	for (int k = 0; k < DB_HINT_KINDS; k++) {
		if (h->tables[k] != 0) continue;
		all = false;
		log_warn("no hint trigger in the database kind=%s hint=\"changes of this kind reach held requests only "
		         "through the safety net; fix: %s\"",
		         kind_names[k], kind_fix[k]);
	}
	if (all)
		log_info("hint triggers found run=%d review_pack=%d access=%d", h->tables[DB_HINT_RUN],
		         h->tables[DB_HINT_REVIEW_PACK], h->tables[DB_HINT_ACCESS]);
}
