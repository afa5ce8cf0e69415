/*
 * gateway/rows.h — the one crossing from db/'s parsed rows to policy/'s input rows. Fields are copied by
 * name (no positional initializers) and SQL NULL is converted explicitly: db/ says DB_NULL, policy/ says
 * POL_NULL, and neither room relies on the other's value. The strings stay borrowed from the result.
 */
#ifndef POLLGATE_GATEWAY_ROWS_H
#define POLLGATE_GATEWAY_ROWS_H

#include <stdint.h>

#include "db/queries.h"
#include "policy/policy.h"

/* A nullable integer or timestamp of a db/ row as policy/ spells it. */
int64_t gw_row_nullable(int64_t db_value);

void gw_run_from_db(const db_run_row *in, pol_run *out);
void gw_pack_from_db(const db_pack_row *in, pol_pack *out);

#endif
