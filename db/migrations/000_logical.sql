-- db/migrations/000_logical.sql — what hint_source = logical reads: the publication and the mapping.
--
-- With hint_source = logical the gateway learns of changes from logical decoding instead of NOTIFY: it
-- streams the publication `pollgate` through a temporary slot (pgoutput) and needs to know, for each
-- table in it, which kind of hint a change means and which column holds the key. That is this table:
--
--   pollgate_hint_map(relid regclass, kind text, key_column name)
--       kind 'run' (key = run id), 'review_pack' (key = tenant id) or 'access' (key = user id;
--       key_column NULL = every user). The gateway reads it at start and after every reconnect.
--
--   pollgate_hint_map_add(target regclass, kind text, key_column name)
--       Records the mapping, adds the table to the publication, and sets REPLICA IDENTITY FULL (with a
--       NOTICE) when the table's replica identity does not carry the key column (an UPDATE or DELETE
--       would not say which old key it had) or it has none (no primary key: in a publication its
--       UPDATEs and DELETEs would be refused). FULL costs WAL only under wal_level = logical. pollgate_attach (000_attach.sql) calls it, so an
--       attached table hints through either source.
--   pollgate_hint_map_remove(target regclass) -> integer
--       Forgets the table's mappings and takes it out of the publication; pollgate_detach calls it.
--   pollgate_attach_logical(target regclass, kind text, key_column name)
--       Logical only: pollgate_hint_map_add, then drops the hint triggers of that kind and key that
--       pollgate_attach may have made, so the application's writes pay no NOTIFY.
--   pollgate_detach_logical(target regclass) -> integer
--       pollgate_hint_map_remove.
--
-- The migrations install both the triggers and the mapping. Run them with the setting
-- pollgate.hint_source = logical (PGOPTIONS='-c pollgate.hint_source=logical' psql ..., or once:
-- ALTER DATABASE app SET pollgate.hint_source = 'logical') and the reference tables get the mapping
-- only, no trigger (pollgate_attach_reference in 000_attach.sql).
--
-- The publication is created WITH publish_via_partition_root, so a partitioned table maps once; on a
-- server without wal_level = logical it is still created (with a WARNING) and simply unused.
-- The functions are made in the first schema of the search_path and keep it (SET search_path FROM
-- CURRENT). Idempotent: safe to apply on every start. Needs the owner of the tables (ALTER PUBLICATION
-- ... ADD TABLE, ALTER TABLE ... REPLICA IDENTITY) and CREATE on the database (the publication).

CREATE TABLE IF NOT EXISTS pollgate_hint_map (
    relid      regclass NOT NULL,
    kind       text     NOT NULL CHECK (kind IN ('run', 'review_pack', 'access')),
    key_column name     CHECK (key_column IS NOT NULL OR kind = 'access')
);
CREATE UNIQUE INDEX IF NOT EXISTS pollgate_hint_map_entry ON pollgate_hint_map (relid, kind, coalesce(key_column, ''));

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'pollgate') THEN
        -- Under wal_level = replica this warns that nothing will be published: true, and harmless with
        -- hint_source = notify; the gateway says what to set when hint_source = logical needs it.
        PERFORM set_config('client_min_messages', 'error', true);
        CREATE PUBLICATION pollgate WITH (publish = 'insert, update, delete, truncate', publish_via_partition_root = true);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION pollgate_hint_map_add(target regclass, kind text, key_column name)
RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    rk      "char";
    ri      "char";
    keynum  int2;
    ident   boolean;
    covered boolean;
BEGIN
    IF kind IS NULL OR kind NOT IN ('run', 'review_pack', 'access') THEN
        RAISE EXCEPTION 'pollgate_hint_map_add: kind must be run, review_pack or access, not %', coalesce(quote_literal(kind), 'NULL');
    END IF;
    IF key_column IS NULL AND kind <> 'access' THEN
        RAISE EXCEPTION 'pollgate_hint_map_add: kind % needs a key column', kind;
    END IF;
    SELECT relkind, relreplident INTO rk, ri FROM pg_class WHERE oid = target;
    IF rk IN ('v', 'm') THEN
        RAISE EXCEPTION 'pollgate_hint_map_add: % is a view: logical decoding sees the table the application writes', target
            USING HINT = 'map the base table the view reads, e.g. SELECT pollgate_attach_logical(''base_table'', '
                         || quote_literal(kind) || ', ' || coalesce(quote_literal(key_column), 'NULL') || ')';
    ELSIF rk NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'pollgate_hint_map_add: % is not a local table (logical decoding sees only those)', target;
    END IF;
    IF key_column IS NOT NULL THEN
        SELECT attnum INTO keynum FROM pg_attribute
         WHERE attrelid = target AND attname = key_column AND attnum > 0 AND NOT attisdropped;
        IF keynum IS NULL THEN
            RAISE EXCEPTION 'pollgate_hint_map_add: % has no column %', target, quote_ident(key_column);
        END IF;
    END IF;

    INSERT INTO pollgate_hint_map AS m (relid, kind, key_column)
        VALUES (target, pollgate_hint_map_add.kind, pollgate_hint_map_add.key_column)
        ON CONFLICT (relid, kind, coalesce(key_column, '')) DO NOTHING;

    IF NOT EXISTS (SELECT 1 FROM pg_publication p WHERE p.pubname = 'pollgate'
                      AND (p.puballtables OR EXISTS (SELECT 1 FROM pg_publication_rel pr
                                                      WHERE pr.prpubid = p.oid AND pr.prrelid = target))) THEN
        EXECUTE format('ALTER PUBLICATION pollgate ADD TABLE %s', target);
    END IF;

    -- Once in a publication that publishes UPDATE and DELETE, a table without a replica identity has
    -- its UPDATEs and DELETEs refused; and the old row of an UPDATE/DELETE carries only the identity's
    -- columns. Either way: REPLICA IDENTITY FULL.
    ident := ri = 'f' OR EXISTS (
        SELECT 1 FROM pg_index i
         WHERE i.indrelid = target AND ((ri = 'd' AND i.indisprimary) OR (ri = 'i' AND i.indisreplident)));
    covered := keynum IS NULL OR ri = 'f' OR EXISTS (
        SELECT 1 FROM pg_index i
         WHERE i.indrelid = target
           AND ((ri = 'd' AND i.indisprimary) OR (ri = 'i' AND i.indisreplident))
           AND keynum = ANY (i.indkey::int2[]));
    IF NOT ident THEN
        EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', target);
        RAISE NOTICE 'pollgate: % now has REPLICA IDENTITY FULL: it has no primary key, and in a publication its UPDATEs and DELETEs would otherwise be refused', target;
    ELSIF NOT covered THEN
        EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', target);
        RAISE NOTICE 'pollgate: % now has REPLICA IDENTITY FULL, so a DELETE or an UPDATE that moves it tells the old % (its key column % is not in the replica identity)',
            target, CASE kind WHEN 'run' THEN 'run' WHEN 'review_pack' THEN 'tenant' ELSE 'user' END, quote_ident(key_column);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION pollgate_hint_map_remove(target regclass) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    n integer;
BEGIN
    DELETE FROM pollgate_hint_map m WHERE m.relid = target;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF EXISTS (SELECT 1 FROM pg_publication p JOIN pg_publication_rel pr ON pr.prpubid = p.oid
                WHERE p.pubname = 'pollgate' AND pr.prrelid = target) THEN
        EXECUTE format('ALTER PUBLICATION pollgate DROP TABLE %s', target);
    END IF;
    RETURN n;
END;
$$;

CREATE OR REPLACE FUNCTION pollgate_attach_logical(target regclass, kind text, key_column name)
RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    t name;
BEGIN
    PERFORM pollgate_hint_map_add(target, kind, key_column);
    IF to_regprocedure('pollgate_hint_triggers(regclass)') IS NOT NULL THEN
        FOR t IN SELECT h.trigger_name FROM pollgate_hint_triggers(target) h
                  WHERE h.kind = pollgate_attach_logical.kind
                    AND h.key_column = coalesce(pollgate_attach_logical.key_column, '') LOOP
            EXECUTE format('DROP TRIGGER %I ON %s', t, target);
        END LOOP;
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION pollgate_detach_logical(target regclass) RETURNS integer
LANGUAGE sql SET search_path FROM CURRENT AS $$
    SELECT pollgate_hint_map_remove(target)
$$;
