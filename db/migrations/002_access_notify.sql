-- db/migrations/002_access_notify.sql — wake-up hints for changes of who may see what.
--
-- Channel pollgate_access, payload the affected user id, on any change of access_tokens,
-- workspace_memberships and tenant_memberships (both the old and the new user when an UPDATE moves a
-- row). A role_capabilities change has no user: its payload is '*', meaning "everyone".
-- The gateway drops cached principals / entitlements for that user (or all) and re-checks held waiters.
-- Idempotent: safe to apply on every start.

CREATE OR REPLACE FUNCTION pollgate_notify_access_user() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.user_id IS NOT NULL THEN
        PERFORM pg_notify('pollgate_access', OLD.user_id::text);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.user_id IS NOT NULL THEN
        -- Same payload twice in one transaction is delivered once.
        PERFORM pg_notify('pollgate_access', NEW.user_id::text);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS pollgate_notify_access ON access_tokens;
CREATE TRIGGER pollgate_notify_access
    AFTER INSERT OR UPDATE OR DELETE ON access_tokens
    FOR EACH ROW EXECUTE FUNCTION pollgate_notify_access_user();

DROP TRIGGER IF EXISTS pollgate_notify_access ON workspace_memberships;
CREATE TRIGGER pollgate_notify_access
    AFTER INSERT OR UPDATE OR DELETE ON workspace_memberships
    FOR EACH ROW EXECUTE FUNCTION pollgate_notify_access_user();

DROP TRIGGER IF EXISTS pollgate_notify_access ON tenant_memberships;
CREATE TRIGGER pollgate_notify_access
    AFTER INSERT OR UPDATE OR DELETE ON tenant_memberships
    FOR EACH ROW EXECUTE FUNCTION pollgate_notify_access_user();

CREATE OR REPLACE FUNCTION pollgate_notify_access_all() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pollgate_access', '*');
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS pollgate_notify_access ON role_capabilities;
CREATE TRIGGER pollgate_notify_access
    AFTER INSERT OR UPDATE OR DELETE ON role_capabilities
    FOR EACH ROW EXECUTE FUNCTION pollgate_notify_access_all();
