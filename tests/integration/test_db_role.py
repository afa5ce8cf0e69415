"""The gateway runs as a SELECT-only database user (db/grant.sql), in every test of the suite.

conftest.py applies db/grant.sql (role GATEWAY_DB_ROLE) after the schema and migrations, creates the LOGIN
user GATEWAY_DB_USER as a member of that role and nothing else, and points every `gateway` at it. These
tests check that this is really so: the gateway's sessions run as that user, and that user can read every
table of db/schema.sql and change none.
"""

import re

import psycopg2
import psycopg2.errors
import pytest

from helpers import GATEWAY_DB_ROLE, GATEWAY_DB_USER, SCHEMA_SQL, SCHEMA_TABLES, make_demo_world, make_run, wait_for

WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def schema_tables():
    """Every table db/schema.sql creates (read from the file, so a new table is covered at once)."""
    names = re.findall(r"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", SCHEMA_SQL.read_text(),
                       re.IGNORECASE | re.MULTILINE)
    assert names, "no CREATE TABLE found in db/schema.sql"
    return names


def test_the_schema_tables_are_the_ones_the_suite_knows():
    assert sorted(schema_tables()) == sorted(SCHEMA_TABLES)


def test_gateway_sessions_run_as_the_select_only_user(gateway, db, pg):
    make_demo_world(db)
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway(db_pool_size=2)
    assert gw.get("/v1/runs/42?wait=0", token="tok-alice").status == 200

    def sessions():
        with db.cursor() as cur:
            cur.execute("SELECT application_name, usename, datname FROM pg_stat_activity "
                        "WHERE application_name IN ('pollgate', 'pollgate-listen') AND backend_type = 'client backend'")
            rows = cur.fetchall()
        names = [r[0] for r in rows]
        return rows if names.count("pollgate-listen") >= 1 and names.count("pollgate") >= 2 else None

    rows = wait_for(sessions, what="the gateway's query and LISTEN sessions in pg_stat_activity")
    assert {(app, user, dbname) for app, user, dbname in rows} == {
        ("pollgate", GATEWAY_DB_USER, pg.dbname), ("pollgate-listen", GATEWAY_DB_USER, pg.dbname)}, rows


def test_the_gateway_user_is_only_a_member_of_the_grant_role(db):
    with db.cursor() as cur:
        cur.execute("SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin "
                    "FROM pg_roles WHERE rolname = %s", (GATEWAY_DB_USER,))
        assert cur.fetchone() == (False, False, False, False, False, True)
        cur.execute("SELECT b.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
                    "JOIN pg_roles b ON b.oid = m.roleid WHERE r.rolname = %s", (GATEWAY_DB_USER,))
        assert [r[0] for r in cur.fetchall()] == [GATEWAY_DB_ROLE]
        cur.execute("SELECT has_schema_privilege(%s, 'public', 'USAGE'), has_schema_privilege(%s, 'public', 'CREATE')",
                    (GATEWAY_DB_USER, GATEWAY_DB_USER))
        assert cur.fetchone() == (True, False)


@pytest.mark.parametrize("table", schema_tables())
def test_the_gateway_user_may_select_and_never_write(db, table):
    with db.cursor() as cur:
        cur.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", (GATEWAY_DB_USER, f"public.{table}"))
        assert cur.fetchone()[0] is True, f"{GATEWAY_DB_USER} cannot SELECT from {table}"
        for priv in WRITE_PRIVILEGES:
            cur.execute("SELECT has_table_privilege(%s, %s, %s)", (GATEWAY_DB_USER, f"public.{table}", priv))
            assert cur.fetchone()[0] is False, f"{GATEWAY_DB_USER} has {priv} on {table}"
        # No column-level write grant either, and no way to move an identity sequence.
        cur.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                    "AND NOT attisdropped", (f"public.{table}",))
        columns = [r[0] for r in cur.fetchall()]
        for col in columns:
            for priv in ("INSERT", "UPDATE", "REFERENCES"):
                cur.execute("SELECT has_column_privilege(%s, %s, %s, %s)",
                            (GATEWAY_DB_USER, f"public.{table}", col, priv))
                assert cur.fetchone()[0] is False, f"{GATEWAY_DB_USER} has {priv} on {table}.{col}"
        seq = None
        if "id" in columns:
            cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", (f"public.{table}",))
            seq = cur.fetchone()[0]
        if seq:
            cur.execute("SELECT has_sequence_privilege(%s, %s, 'UPDATE'), has_sequence_privilege(%s, %s, 'USAGE')",
                        (GATEWAY_DB_USER, seq, GATEWAY_DB_USER, seq))
            assert cur.fetchone() == (False, False), f"{GATEWAY_DB_USER} may use {seq}"


def test_the_gateway_user_is_refused_every_write(pg, db):
    """What has_table_privilege says, seen from a session of that user: reads work, writes are refused
    (the checks happen before any row is touched, so `WHERE false` is enough and nothing changes)."""
    make_demo_world(db)
    conn = pg.connect(user=GATEWAY_DB_USER)
    for table in schema_tables():
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM public.{table}")
            cur.fetchone()
        with db.cursor() as cur:
            cur.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum = 1",
                        (f"public.{table}",))
            first = cur.fetchone()[0]
        for stmt in (f"INSERT INTO public.{table} SELECT * FROM public.{table} WHERE false",
                     f"UPDATE public.{table} SET {first} = {first} WHERE false",
                     f"DELETE FROM public.{table} WHERE false",
                     f"TRUNCATE public.{table}"):
            with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(stmt)
    with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute("CREATE TABLE public.pollgate_should_not_exist (x int)")
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM access_tokens")
        assert cur.fetchone()[0] == 3, "a refused write changed something"
