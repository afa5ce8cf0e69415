-- db/grant.sql — the gateway's database role: SELECT on the schema's tables, nothing else.
--
--   psql -v ON_ERROR_STOP=1 -d pollgate -f db/grant.sql                     role pollgate_gateway
--   psql -v ON_ERROR_STOP=1 -v role=my_gateway -d pollgate -f db/grant.sql  another name
--   psql -v ON_ERROR_STOP=1 -v schema=pollgate -d app -f db/grant.sql       the reference names live in
--                                                                            another schema (views, docs)
--   psql -v ON_ERROR_STOP=1 -v logical=1 -d pollgate -f db/grant.sql        also REPLICATION, for
--                                                                            hint_source = logical
--
-- SELECT on pollgate_hint_map (000_logical.sql) is granted when the table is in that schema: the
-- gateway reads it with hint_source = logical. `-v logical=1` gives the role the REPLICATION attribute
-- its slot needs (granting it takes a superuser, or on PostgreSQL 16 a role that has REPLICATION and
-- ADMIN on the gateway role); without it the role has none and a gateway with hint_source = logical
-- refuses to start, naming this fix. The publication stays owned by whoever ran the migrations.
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
\if :{?logical}
\else
\set logical 0
\endif

-- psql variables are not expanded inside a DO body: hand the names over as session settings.
SELECT set_config('pollgate.grant_role', :'role', false), set_config('pollgate.grant_schema', :'schema', false),
       set_config('pollgate.grant_logical', :'logical', false);

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
    IF to_regclass(format('%I.pollgate_hint_map', s)) IS NOT NULL THEN
        EXECUTE format('GRANT SELECT ON TABLE %I.pollgate_hint_map TO %I', s, r);
    END IF;
    IF current_setting('pollgate.grant_logical') NOT IN ('', '0', 'off', 'false') THEN
        EXECUTE format('ALTER ROLE %I REPLICATION', r);
    END IF;
END;
$$;
