-- db/demo.sql — demo data for `make run` (scripts/run.sh) and for trying the API by hand.
--
-- Tokens (Authorization: Bearer ...):
--   demo-alice  alice@acme.test   workspace 1 "Acme", tenants 7 and 8 as 'owner' (runs + review packs)
--   demo-bob    bob@acme.test     workspace 1, tenant 7 as 'readonly' (runs, no review packs)
--   demo-eve    eve@globex.test   workspace 2 "Globex" only (sees nothing of Acme)
-- Runs: 42 queued (tenant 7), 43 running (tenant 7), 44 succeeded (no tenant), 45 failed (tenant 8).
-- Review packs: tenant 7 has an old 'ready' pack and a newer 'generating' one (run 43); tenant 8 'ready'.
-- The never-served columns (context, options, summary, file_path, file_disk, user_id,
-- initiated_by_user_id) are filled on purpose, so a leak into a response is easy to see.
-- Load into a fresh database after schema.sql and the migrations.

BEGIN;

INSERT INTO workspaces (id, name) VALUES
    (1, 'Acme'),
    (2, 'Globex');

INSERT INTO tenants (id, workspace_id, name) VALUES
    (7, 1, 'Acme EU'),
    (8, 1, 'Acme US'),
    (9, 2, 'Globex Main');

INSERT INTO users (id, email) VALUES
    (1, 'alice@acme.test'),
    (2, 'bob@acme.test'),
    (3, 'eve@globex.test');

INSERT INTO workspace_memberships (workspace_id, user_id, role) VALUES
    (1, 1, 'owner'),
    (1, 2, 'member'),
    (2, 3, 'owner');

INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES
    (7, 1, 'owner'),
    (8, 1, 'owner'),
    (7, 2, 'readonly'),
    (9, 3, 'owner');

INSERT INTO role_capabilities (role, capability) VALUES
    ('owner', 'review_packs.view'),
    ('readonly', 'runs.view');

INSERT INTO access_tokens (id, user_id, token_sha256, expires_at, revoked_at, created_at) VALUES
    (1, 1, sha256(convert_to('demo-alice', 'UTF8')), NULL, NULL, now()),
    (2, 2, sha256(convert_to('demo-bob', 'UTF8')), NULL, NULL, now()),
    (3, 3, sha256(convert_to('demo-eve', 'UTF8')), NULL, NULL, now());

INSERT INTO operation_runs (id, workspace_id, tenant_id, user_id, type, status, outcome, context,
                            summary_counts, failure_summary, created_at, started_at, completed_at) VALUES
    (42, 1, 7, 1, 'inventory.sync', 'queued', NULL,
     '{"secret": "context-42-never-served", "source": "demo"}',
     '{"total": 10, "processed": 0}', NULL,
     now(), NULL, NULL),
    (43, 1, 7, 1, 'review_pack.generate', 'running', NULL,
     '{"secret": "context-43-never-served", "source": "demo"}',
     '{"total": 10, "processed": 4}', NULL,
     now() - interval '30 seconds', now() - interval '28 seconds', NULL),
    (44, 1, NULL, 2, 'directory.import', 'completed', 'succeeded',
     '{"secret": "context-44-never-served", "source": "demo"}',
     '{"total": 25, "processed": 25}', NULL,
     now() - interval '2 hours', now() - interval '2 hours', now() - interval '1 hour 50 minutes'),
    (45, 1, 8, 1, 'inventory.sync', 'completed', 'failed',
     '{"secret": "context-45-never-served", "source": "demo"}',
     '{"total": 10, "processed": 3, "failed": 1}',
     '[{"code": "upstream_timeout", "message": "The inventory source did not answer in time."}]',
     now() - interval '1 day', now() - interval '1 day', now() - interval '1 day' + interval '40 seconds');

INSERT INTO review_packs (id, workspace_id, tenant_id, operation_run_id, initiated_by_user_id, status,
                          options, summary, generated_at, expires_at, file_path, file_disk, file_size,
                          created_at, updated_at) VALUES
    (1, 1, 7, NULL, 1, 'ready',
     '{"secret": "options-1-never-served", "format": "pdf"}', '{"secret": "summary-1-never-served"}',
     now() - interval '7 days', now() + interval '23 days',
     'packs/acme-eu/2026-old.pdf', 'private-s3', 482113,
     now() - interval '7 days', now() - interval '7 days'),
    (2, 1, 7, 43, 1, 'generating',
     '{"secret": "options-2-never-served", "format": "pdf"}', '{"secret": "summary-2-never-served"}',
     NULL, NULL,
     'packs/acme-eu/pending.pdf', 'private-s3', NULL,
     now() - interval '30 seconds', now() - interval '30 seconds'),
    (3, 1, 8, NULL, 1, 'ready',
     '{"secret": "options-3-never-served", "format": "zip"}', '{"secret": "summary-3-never-served"}',
     now() - interval '2 days', now() + interval '28 days',
     'packs/acme-us/latest.zip', 'private-s3', 1093344,
     now() - interval '2 days', now() - interval '2 days');

-- Explicit ids above: move every identity past them so later inserts do not collide.
SELECT setval(pg_get_serial_sequence('users', 'id'), 1000);
SELECT setval(pg_get_serial_sequence('workspaces', 'id'), 1000);
SELECT setval(pg_get_serial_sequence('tenants', 'id'), 1000);
SELECT setval(pg_get_serial_sequence('access_tokens', 'id'), 1000);
SELECT setval(pg_get_serial_sequence('operation_runs', 'id'), 1000);
SELECT setval(pg_get_serial_sequence('review_packs', 'id'), 1000);

COMMIT;
