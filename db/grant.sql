-- db/grant.sql — the gateway's database role: SELECT on the schema's tables, nothing else.
--
--   psql -v ON_ERROR_STOP=1 -d pollgate -f db/grant.sql                     role pollgate_gateway
--   psql -v ON_ERROR_STOP=1 -v role=my_gateway -d pollgate -f db/grant.sql  another name
--   psql -v ON_ERROR_STOP=1 -v schema=pollgate -d app -f db/grant.sql       the reference names live in
--                                                                            another schema (views, docs)
--
-- The role can log in and has no password: give it one (ALTER ROLE ... PASSWORD) or authenticate it
-- by other means in pg_hba.conf. LISTEN needs no privilege. Safe to run again.

\if :{?role}
\else
\set role pollgate_gateway
\endif
\if :{?schema}
\else
\set schema public
\endif

-- psql variables are not expanded inside a DO body: hand the names over as session settings.
SELECT set_config('pollgate.grant_role', :'role', false), set_config('pollgate.grant_schema', :'schema', false);

DO $$
DECLARE
    r text := current_setting('pollgate.grant_role');
    s text := current_setting('pollgate.grant_schema');
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
        EXECUTE format('CREATE ROLE %I LOGIN', r);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, r);
    FOREACH t IN ARRAY ARRAY['users', 'workspaces', 'tenants', 'workspace_memberships',
                             'tenant_memberships', 'role_capabilities', 'access_tokens',
                             'operation_runs', 'review_packs']
    LOOP
        EXECUTE format('GRANT SELECT ON TABLE %I.%I TO %I', s, t, r);
    END LOOP;
END;
$$;
