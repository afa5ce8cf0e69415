"""The test infrastructure itself, without the gateway: the cluster, the schema, the NOTIFY triggers,
the demo data and the HTTP helpers."""

import http.server
import select
import threading
import time

import pytest

from helpers import (DEMO_SQL, GRANT_SQL, NOW, SCHEMA_SQL, SCHEMA_TABLES, ManyGets, add_tenant_member, async_many_get,
                     get_json, grant_capability, make_demo_world, make_pack, make_run, make_token, migrations,
                     revoke_token, set_pack, set_run, sha256)


def listen(pg, *channels):
    conn = pg.connect()
    with conn.cursor() as cur:
        for ch in channels:
            cur.execute(f"LISTEN {ch}")
    return conn


def drain(conn, want, timeout=5.0):
    """Collect (channel, payload) notifications until `want` of them arrived (or timeout)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        select.select([conn], [], [], left)
        conn.poll()
        while conn.notifies:
            n = conn.notifies.pop(0)
            got.append((n.channel, n.payload))
    return got


def assert_quiet(conn, wait=0.2):
    """No further notification (a bounded look, used only after the expected ones arrived)."""
    extra = drain(conn, 1, timeout=wait)
    assert extra == [], f"unexpected notifications {extra}"


def test_schema_and_triggers_present(pg, db):
    with db.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        assert set(SCHEMA_TABLES) <= {r[0] for r in cur.fetchall()}
        cur.execute("SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "WHERE NOT t.tgisinternal")
        triggers = set(cur.fetchall())
        for table in ("operation_runs", "review_packs", "access_tokens", "workspace_memberships",
                      "tenant_memberships", "role_capabilities"):
            assert any(rel == table and name.startswith("pollgate_") for rel, name in triggers), table
        cur.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'review_packs'")
        assert any("tenant_id, created_at DESC NULLS LAST, id DESC" in r[0] for r in cur.fetchall())
    # The migrations are idempotent: applying them again changes nothing and fails nothing.
    for m in migrations():
        pg.psql_file(m)


def test_triggers_notify_with_id_payload(pg, db):
    make_demo_world(db)
    lc = listen(pg, "pollgate_run", "pollgate_review_pack", "pollgate_access")

    run = make_run(db, 1, tenant_id=7, id=42, summary_counts={"total": 10, "processed": 0})
    assert drain(lc, 1) == [("pollgate_run", "42")]
    set_run(db, run, status="running", started_at=NOW)
    assert drain(lc, 1) == [("pollgate_run", "42")]
    # Identity keeps counting past explicit ids once sequences are set (make_demo_world sets them).
    other = make_run(db, 1)
    assert other > 42
    assert drain(lc, 1) == [("pollgate_run", str(other))]
    with db.cursor() as cur:
        cur.execute("DELETE FROM operation_runs WHERE id = 42")
    assert drain(lc, 1) == [("pollgate_run", "42")]

    pack = make_pack(db, 1, 7, status="generating")
    assert drain(lc, 1) == [("pollgate_review_pack", "7")]
    set_pack(db, pack, status="ready", updated_at=NOW)
    assert drain(lc, 1) == [("pollgate_review_pack", "7")]
    set_pack(db, pack, tenant_id=8)  # moved: both tenants hear of it
    assert sorted(drain(lc, 2)) == [("pollgate_review_pack", "7"), ("pollgate_review_pack", "8")]

    make_token(db, 2, "another-bob-token")
    assert drain(lc, 1) == [("pollgate_access", "2")]
    assert revoke_token(db, "tok-alice") == 1
    assert drain(lc, 1) == [("pollgate_access", "1")]
    with db.cursor() as cur:
        cur.execute("DELETE FROM tenant_memberships WHERE tenant_id = 7 AND user_id = 2")
    assert drain(lc, 1) == [("pollgate_access", "2")]
    add_tenant_member(db, 8, 2, role="readonly")
    assert drain(lc, 1) == [("pollgate_access", "2")]
    with db.cursor() as cur:
        cur.execute("UPDATE workspace_memberships SET role = 'admin' WHERE user_id = 3")
    assert drain(lc, 1) == [("pollgate_access", "3")]
    grant_capability(db, "readonly", "review_packs.view")
    assert drain(lc, 1) == [("pollgate_access", "*")]
    assert_quiet(lc)

    # Several changes in one transaction: one notification per distinct payload, at commit.
    with db.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("UPDATE operation_runs SET status = 'running' WHERE id = %s", (other,))
        cur.execute("UPDATE operation_runs SET status = 'completed', outcome = 'succeeded' WHERE id = %s", (other,))
        assert drain(lc, 1, timeout=0.2) == []
        cur.execute("COMMIT")
    assert drain(lc, 1) == [("pollgate_run", str(other))]
    assert_quiet(lc)


def test_demo_sql_loads_into_fresh_database(pg):
    name = "pollgate_demo_check"
    pg.psql(f"DROP DATABASE IF EXISTS {name}", dbname="postgres")
    pg.psql(f"CREATE DATABASE {name}", dbname="postgres")
    try:
        pg.psql_file(SCHEMA_SQL, dbname=name)
        for m in migrations():
            pg.psql_file(m, dbname=name)
        pg.psql_file(DEMO_SQL, dbname=name)
        pg.psql_file(GRANT_SQL, dbname=name)
        pg.psql_file(GRANT_SQL, dbname=name)  # again: idempotent
        c = pg.connect(dbname=name)
        with c.cursor() as cur:
            cur.execute("SELECT u.email FROM access_tokens t JOIN users u ON u.id = t.user_id "
                        "WHERE t.token_sha256 = %s", (sha256("demo-alice"),))
            assert cur.fetchone()[0] == "alice@acme.test"
            cur.execute("SELECT id, status FROM operation_runs ORDER BY id")
            assert [r[0] for r in cur.fetchall()] == [42, 43, 44, 45]
            cur.execute("SELECT id, status, operation_run_id FROM review_packs WHERE tenant_id = 7 "
                        "ORDER BY created_at DESC, id DESC LIMIT 1")
            assert cur.fetchone() == (2, "generating", 43)
            cur.execute("INSERT INTO operation_runs (workspace_id, type, status) VALUES (1, 'x', 'queued') "
                        "RETURNING id")
            assert cur.fetchone()[0] > 45
            # The gateway role may read every table and write none.
            cur.execute("SELECT has_table_privilege('pollgate_gateway', 'operation_runs', 'SELECT'), "
                        "has_table_privilege('pollgate_gateway', 'operation_runs', 'UPDATE')")
            assert cur.fetchone() == (True, False)
        c.close()
    finally:
        pg.close_connections()
        pg.psql(f"DROP DATABASE {name} WITH (FORCE)", dbname="postgres")
        pg.psql("DROP ROLE IF EXISTS pollgate_gateway", dbname="postgres")


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep(0.3)
        body = b'{"path": "%s"}' % self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"abc"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # listen() backlog: it is set before bind, so a class attribute


@pytest.fixture
def slow_server():
    srv = _Server(("127.0.0.1", 0), _SlowHandler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_http_helpers(slow_server):
    status, headers, body = get_json(slow_server + "/one?wait=1")
    assert status == 200 and headers["etag"] == '"abc"' and body == {"path": "/one?wait=1"}

    n = 200
    t0 = time.monotonic()
    rs = async_many_get([(f"{slow_server}/r/{i}", {"If-None-Match": '"x"'}) for i in range(n)], timeout=30)
    assert [r.status for r in rs] == [200] * n, [r for r in rs if r.status != 200][:3]
    assert [r.json()["path"] for r in rs] == [f"/r/{i}" for i in range(n)]
    assert time.monotonic() - t0 < 20  # concurrent, not 200 x 0.3 s

    with ManyGets([slow_server + "/held"] * 10, timeout=10) as mg:
        mg.wait_sent(10)
        rs = mg.results()
    assert all(r.status == 200 and r.etag == '"abc"' for r in rs)

    dead = async_many_get(["http://127.0.0.1:1/"], timeout=2)
    assert dead[0].status == 0 and dead[0].error is not None
