-- db/migrations/001_notify.sql — wake-up hints for runs and review packs.
--
-- After every row change, pg_notify on a channel per kind with the resource's key as payload:
--   pollgate_run          run id          (operation_runs; OLD.id on DELETE)
--   pollgate_review_pack  tenant id       (review_packs; both tenants when an UPDATE moves a pack)
-- The payload is only a hint of *which* resource to re-read; the gateway never serves its content.
-- NOTIFY is transactional: listeners hear it at commit, identical payloads within one transaction are
-- folded into one. Idempotent: safe to apply on every start.

CREATE OR REPLACE FUNCTION pollgate_notify_run() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('pollgate_run', OLD.id::text);
    ELSE
        PERFORM pg_notify('pollgate_run', NEW.id::text);
        IF TG_OP = 'UPDATE' AND OLD.id IS DISTINCT FROM NEW.id THEN
            PERFORM pg_notify('pollgate_run', OLD.id::text);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS pollgate_notify_run ON operation_runs;
CREATE TRIGGER pollgate_notify_run
    AFTER INSERT OR UPDATE OR DELETE ON operation_runs
    FOR EACH ROW EXECUTE FUNCTION pollgate_notify_run();

CREATE OR REPLACE FUNCTION pollgate_notify_review_pack() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('pollgate_review_pack', OLD.tenant_id::text);
    ELSE
        PERFORM pg_notify('pollgate_review_pack', NEW.tenant_id::text);
        IF TG_OP = 'UPDATE' AND OLD.tenant_id IS DISTINCT FROM NEW.tenant_id THEN
            PERFORM pg_notify('pollgate_review_pack', OLD.tenant_id::text);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS pollgate_notify_review_pack ON review_packs;
CREATE TRIGGER pollgate_notify_review_pack
    AFTER INSERT OR UPDATE OR DELETE ON review_packs
    FOR EACH ROW EXECUTE FUNCTION pollgate_notify_review_pack();
