-- db/migrations/000_attach.sql — the hint machinery every other migration (and any foreign schema) uses.
--
-- pollgate learns of a change through NOTIFY, sent by a row trigger on the table the application writes:
--   channel pollgate_run          payload the run id
--   channel pollgate_review_pack  payload the tenant id whose latest pack may have changed
--   channel pollgate_access       payload the user id whose verdicts may have changed, or '*' for everyone
-- These names and payloads are the gateway's whole interface to the triggers (gateway/main.c reads them).
-- A payload is only a hint of *which* resource to read again; nothing in it is ever served.
--
--   pollgate_attach(target regclass, kind text, key_column name [, columns name[]])
--       Installs (or replaces) the hint triggers of `kind` keyed by `key_column` on the table `target`:
--       one AFTER INSERT OR DELETE row trigger and one AFTER UPDATE row trigger. An UPDATE hints the new
--       key and, when the key changed, the old one too; INSERT the new key, DELETE the old. A NULL key
--       sends nothing. key_column NULL (only for kind 'access') sends '*'.
--       The UPDATE trigger fires only when something that matters changed (its WHEN clause, evaluated
--       before any function is called): `columns` lists the columns whose change matters (the key column
--       is always one), each compared with IS DISTINCT FROM (by its text form when its type has no `=`,
--       like json); NULL means the whole row, compared byte for byte (OLD *<> NEW, which works for every
--       column type and follows columns added later). A no-op UPDATE therefore sends nothing.
--       The columns are fixed when the trigger is made: run pollgate_attach again after changing them.
--       The target must be a table (plain, partitioned or foreign): on a view it raises an error naming
--       the fix, because the rows a view shows are written to its base tables.
--   pollgate_detach(target regclass) -> integer
--       Drops every hint trigger pollgate_attach put on `target`; returns how many.
--   pollgate_attach_reference(name text, kind text, key_column name, columns name[])
--       What the reference migrations call: pollgate_attach on the reference table `name` when it is a
--       table; when it is a view (a deployment mapping its own schema, see docs) or missing, a NOTICE
--       that says so and names the fix, and nothing else, so the migrations still succeed.
--
-- The triggers are recognised by their function, pollgate_hint(), and its first argument, the kind:
-- the gateway counts them per kind at start and after every LISTEN reconnect (db/hints.c).
-- The functions are made in the first schema of the search_path the migrations run with, and keep that
-- search_path (SET search_path FROM CURRENT): pollgate.pollgate_attach(...) works from any session.
-- pollgate_attach also records the table for hint_source = logical (pollgate_hint_map_add) and
-- pollgate_detach forgets it (000_logical.sql); with the setting pollgate.hint_source = logical,
-- pollgate_attach_reference maps the reference tables for logical decoding only, with no trigger.
-- Idempotent: safe to apply on every start. Needs the owner of the tables (CREATE TRIGGER).

-- The triggers of the first releases, one function per kind: replaced by pollgate_hint() below.
DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['pollgate_notify_run()', 'pollgate_notify_review_pack()',
                             'pollgate_notify_access_user()', 'pollgate_notify_access_all()'] LOOP
        IF to_regprocedure(f) IS NOT NULL THEN
            EXECUTE 'DROP FUNCTION ' || f || ' CASCADE';
        END IF;
    END LOOP;
END;
$$;

-- TG_ARGV[0] is the kind, TG_ARGV[1] the key column ('' = everyone). The key is read by name through
-- the row's jsonb form, so one function serves every table and column name.
CREATE OR REPLACE FUNCTION pollgate_hint() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    chan text := 'pollgate_' || TG_ARGV[0];
    col  text := TG_ARGV[1];
    o    text;
    n    text;
BEGIN
    IF col = '' THEN
        PERFORM pg_notify(chan, '*');
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN o := to_jsonb(OLD) ->> col; END IF;
    IF TG_OP <> 'DELETE' THEN n := to_jsonb(NEW) ->> col; END IF;
    IF n IS NOT NULL THEN
        PERFORM pg_notify(chan, n);
    END IF;
    IF o IS NOT NULL AND o IS DISTINCT FROM n THEN
        PERFORM pg_notify(chan, o);
    END IF;
    RETURN NULL;
END;
$$;

-- The first arguments of the hint triggers on a table: (trigger name, kind, key column or '').
CREATE OR REPLACE FUNCTION pollgate_hint_triggers(target regclass)
RETURNS TABLE (trigger_name name, kind text, key_column text)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT t.tgname, a[1], a[2]
      FROM pg_trigger t
     CROSS JOIN LATERAL string_to_array(encode(t.tgargs, 'escape'), '\000') AS a
     WHERE t.tgrelid = target AND NOT t.tgisinternal AND t.tgparentid = 0
       AND t.tgfoid = 'pollgate_hint()'::regprocedure
$$;

CREATE OR REPLACE FUNCTION pollgate_detach(target regclass) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    t name;
    n integer := 0;
BEGIN
    FOR t IN SELECT trigger_name FROM pollgate_hint_triggers(target) LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t, target);
        n := n + 1;
    END LOOP;
    -- And its hint_source = logical mapping (000_logical.sql), defined after this file: looked up at run time.
    IF to_regprocedure('pollgate_hint_map_remove(regclass)') IS NOT NULL THEN
        PERFORM pollgate_hint_map_remove(target);
    END IF;
    RETURN n;
END;
$$;

CREATE OR REPLACE FUNCTION pollgate_attach(target regclass, kind text, key_column name, columns name[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    rk     "char";
    base   text;
    cond   text;
    cols   name[];
    c      name;
    t      name;
BEGIN
    IF kind IS NULL OR kind NOT IN ('run', 'review_pack', 'access') THEN
        RAISE EXCEPTION 'pollgate_attach: kind must be run, review_pack or access, not %', coalesce(quote_literal(kind), 'NULL');
    END IF;
    IF key_column IS NULL AND kind <> 'access' THEN
        RAISE EXCEPTION 'pollgate_attach: kind % needs a key column (the % id)', kind,
            CASE kind WHEN 'run' THEN 'run' ELSE 'tenant' END;
    END IF;
    SELECT relkind INTO rk FROM pg_class WHERE oid = target;
    IF rk IN ('v', 'm') THEN
        RAISE EXCEPTION 'pollgate_attach: % is a view: row triggers go on the table the application writes', target
            USING HINT = 'attach to the base table the view reads, e.g. SELECT pollgate_attach(''base_table'', '
                         || quote_literal(kind) || ', ' || coalesce(quote_literal(key_column), 'NULL') || ')';
    ELSIF rk NOT IN ('r', 'p', 'f') THEN
        RAISE EXCEPTION 'pollgate_attach: % is not a table', target;
    END IF;
    IF key_column IS NOT NULL THEN
        cols := ARRAY[key_column];
    ELSE
        cols := '{}';
    END IF;
    FOREACH c IN ARRAY coalesce(columns, '{}') LOOP
        IF c IS NULL THEN
            RAISE EXCEPTION 'pollgate_attach: NULL in the column list';
        END IF;
        IF NOT c = ANY (cols) THEN
            cols := cols || c;
        END IF;
    END LOOP;
    FOREACH c IN ARRAY cols LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute
                        WHERE attrelid = target AND attname = c AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'pollgate_attach: % has no column %', target, quote_ident(c);
        END IF;
    END LOOP;

    -- Replace what an earlier call made for the same kind and key (its column list may differ).
    FOR t IN SELECT h.trigger_name FROM pollgate_hint_triggers(target) h
              WHERE h.kind = pollgate_attach.kind AND h.key_column = coalesce(pollgate_attach.key_column, '') LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t, target);
    END LOOP;

    base := 'pollgate_' || kind || coalesce('_' || key_column, '');
    IF octet_length(base) > 59 THEN -- room for the _upd suffix in 63 bytes
        base := 'pollgate_' || kind || '_' || substr(md5(key_column), 1, 12);
    END IF;
    IF columns IS NULL THEN
        cond := 'OLD *<> NEW';
    ELSE
        -- Column by column: IS DISTINCT FROM where the type has an equality operator, its text form
        -- where it has none (json, xml, point, ...). Plain expressions, so pg_dump restores them.
        SELECT string_agg(CASE WHEN EXISTS (SELECT 1 FROM pg_operator o
                                             WHERE o.oprname = '=' AND o.oprleft = b.typ AND o.oprright = b.typ)
                               THEN format('OLD.%1$I IS DISTINCT FROM NEW.%1$I', a.attname)
                               ELSE format('OLD.%1$I::text IS DISTINCT FROM NEW.%1$I::text', a.attname) END,
                          ' OR ' ORDER BY a.attnum)
          INTO cond
          FROM pg_attribute a
          JOIN pg_type ty ON ty.oid = a.atttypid
         CROSS JOIN LATERAL (SELECT CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.oid END AS typ) b
         WHERE a.attrelid = target AND a.attname = ANY (cols);
    END IF;
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION pollgate_hint(%L, %L)',
                   base, target, kind, coalesce(key_column, ''));
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s FOR EACH ROW WHEN (%s) EXECUTE FUNCTION pollgate_hint(%L, %L)',
                   base || '_upd', target, cond, kind, coalesce(key_column, ''));
    -- The same hint through logical decoding (000_logical.sql): only a local table is in a publication.
    IF rk IN ('r', 'p') AND to_regprocedure('pollgate_hint_map_add(regclass,text,name)') IS NOT NULL THEN
        PERFORM pollgate_hint_map_add(target, kind, key_column);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION pollgate_attach_reference(name text, kind text, key_column name, columns name[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    rel   regclass := to_regclass(name);
    reads text;
BEGIN
    IF rel IS NULL THEN
        RAISE NOTICE 'pollgate: no relation named % here: no % hint installed for it', name, kind;
        RETURN;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = rel) IN ('v', 'm') THEN
        -- The tables the view reads, to name the fix.
        SELECT string_agg(DISTINCT d.refobjid::regclass::text, ', ') INTO reads
          FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
         WHERE r.ev_class = rel AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> rel;
        RAISE NOTICE 'pollgate: % is a view, so no % hint trigger was installed on it; until one is attached to the table the application writes, changes reach held requests only through the safety net. Fix: SELECT pollgate_attach(''<base table>'', %, %) on the base table (this view reads: %)',
            name, kind, quote_literal(kind), coalesce(quote_literal(key_column), 'NULL'), coalesce(reads, 'nothing');
        RETURN;
    END IF;
    -- Migrations run with pollgate.hint_source = logical: the mapping only, no trigger (000_logical.sql).
    IF current_setting('pollgate.hint_source', true) = 'logical' THEN
        PERFORM pollgate_attach_logical(rel, kind, key_column);
        RETURN;
    END IF;
    PERFORM pollgate_attach(rel, kind, key_column, columns);
END;
$$;
