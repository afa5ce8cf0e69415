/*
 * gateway/rows.c — see rows.h.
 */
#include "gateway/rows.h"

int64_t gw_row_nullable(int64_t db_value)
{
	return db_value == DB_NULL ? POL_NULL : db_value;
}

void gw_run_from_db(const db_run_row *in, pol_run *out)
{
	*out = (pol_run){
		.id = in->id,
		.workspace_id = in->workspace_id,
		.tenant_id = gw_row_nullable(in->tenant_id),
		.type = in->type,
		.status = in->status,
		.outcome = in->outcome,
		.summary_counts = in->summary_counts,
		.failure_summary = in->failure_summary,
		.created_at = gw_row_nullable(in->created_at),
		.started_at = gw_row_nullable(in->started_at),
		.completed_at = gw_row_nullable(in->completed_at),
	};
}

void gw_pack_from_db(const db_pack_row *in, pol_pack *out)
{
	*out = (pol_pack){
		.present = in->present,
		.id = gw_row_nullable(in->id),
		.workspace_id = gw_row_nullable(in->workspace_id),
		.tenant_id = in->tenant_id,
		.operation_run_id = gw_row_nullable(in->operation_run_id),
		.status = in->status,
		.generated_at = gw_row_nullable(in->generated_at),
		.expires_at = gw_row_nullable(in->expires_at),
		.file_size = gw_row_nullable(in->file_size),
		.created_at = gw_row_nullable(in->created_at),
		.updated_at = gw_row_nullable(in->updated_at),
	};
}
