-- db/migrations/003_tenant_notify.sql — a tenant moved to another workspace (or deleted) changes who
-- may see its runs and review packs: a run needs its tenant in the run's workspace, a review pack needs
-- a membership of the tenant's workspace. The tenant row names no user, so the payload is '*' like a
-- role_capabilities change. Only workspace_id matters: renaming a tenant sends nothing.
-- Idempotent: safe to apply on every start.

DROP TRIGGER IF EXISTS pollgate_notify_access ON tenants;
CREATE TRIGGER pollgate_notify_access
    AFTER UPDATE OF workspace_id OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION pollgate_notify_access_all();
