-- db/migrations/003_tenant_notify.sql — a tenant moved to another workspace (or created, or deleted)
-- changes who may see its runs and review packs: a run needs its tenant in the run's workspace, a review
-- pack needs a membership of the tenant's workspace. The tenant row names no user, so the payload is '*'
-- like a role_capabilities change. Only id and workspace_id matter: renaming a tenant sends nothing.
-- Installed with pollgate_attach (000_attach.sql); a view is skipped with a NOTICE.
-- Idempotent: safe to apply on every start.

DO $$
BEGIN
    PERFORM pollgate_attach_reference('tenants', 'access', NULL, '{id,workspace_id}');
END;
$$;
