-- db/migrations/002_access_notify.sql — wake-up hints for changes of who may see what.
--
-- Channel pollgate_access, payload the affected user id, on a change of access_tokens,
-- workspace_memberships or tenant_memberships that can change a verdict (both the old and the new user
-- when an UPDATE moves a row). A role_capabilities change has no user: its payload is '*', meaning
-- "everyone". The gateway drops cached principals / entitlements for that user (or all) and re-checks
-- held waiters. Installed with pollgate_attach (000_attach.sql); views are skipped with a NOTICE.
-- Idempotent: safe to apply on every start.

DO $$
BEGIN
    -- A token's verdict: its hash, owner, expiry and revocation (not created_at).
    PERFORM pollgate_attach_reference('access_tokens', 'access', 'user_id',
        '{user_id,token_sha256,expires_at,revoked_at}');
    PERFORM pollgate_attach_reference('workspace_memberships', 'access', 'user_id', NULL);
    PERFORM pollgate_attach_reference('tenant_memberships', 'access', 'user_id', NULL);
    PERFORM pollgate_attach_reference('role_capabilities', 'access', NULL, NULL);
END;
$$;
