-- db/migrations/001_notify.sql — wake-up hints for runs and review packs on the reference tables.
--
--   pollgate_run          run id     (operation_runs)
--   pollgate_review_pack  tenant id  (review_packs; both tenants when an UPDATE moves a pack)
-- Installed with pollgate_attach (000_attach.sql). An UPDATE hints only when a column the gateway serves
-- or orders by changed: for runs not `user_id` nor `context`, for packs not `initiated_by_user_id`,
-- `options`, `summary`, `file_path` nor `file_disk` (db/queries.c never reads them). When these names
-- are views over another schema, nothing is installed here (a NOTICE names the fix): attach the hints to
-- the base tables (docs). Idempotent: safe to apply on every start.

DO $$
BEGIN
    PERFORM pollgate_attach_reference('operation_runs', 'run', 'id',
        '{id,workspace_id,tenant_id,type,status,outcome,summary_counts,failure_summary,created_at,started_at,completed_at}');
    PERFORM pollgate_attach_reference('review_packs', 'review_pack', 'tenant_id',
        '{id,workspace_id,tenant_id,operation_run_id,status,generated_at,expires_at,file_size,created_at,updated_at}');
END;
$$;
