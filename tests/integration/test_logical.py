"""hint_source = logical: wake-up hints from logical decoding (a temporary pgoutput slot), no triggers.

Every test here runs a gateway with hint_source = logical (as GATEWAY_DB_LOGICAL_USER, which has
REPLICATION) whatever POLLGATE_HINT_SOURCE says; the hint-dependent files of the suite run once more in
this mode through scripts/test-integration.sh. Where a test must prove a hint came from the stream and
not from the safety net, its run is an hour old (10 s interval) and the hint triggers are gone.
Timing assertions use the same wide margins as test_longpoll.py.
"""

import subprocess
import time

import pytest

from helpers import (ManyGets, Raw, make_demo_world, make_pack, make_run, make_token, revoke_token, set_run,
                     wait_for)


LOGICAL = "pollgate-logical"


@pytest.fixture
def world(db):
    return make_demo_world(db)


@pytest.fixture
def no_triggers(db):
    """Every reference table mapped for logical decoding only: pollgate_attach_logical drops the hint
    triggers, so any hint that arrives came through the slot (the `db` fixture of the next test
    re-applies the migrations, which put them back)."""
    with db.cursor() as cur:
        cur.execute("SELECT DISTINCT relid::text, kind, key_column FROM pollgate_hint_map")
        for rel, kind, key in cur.fetchall():
            cur.execute("SELECT pollgate_attach_logical(%s::regclass, %s, %s)", (rel, kind, key))
        cur.execute("SELECT count(*) FROM pg_trigger WHERE tgfoid = 'pollgate_hint()'::regprocedure")
        assert cur.fetchone()[0] == 0
    return db


def lgw(gateway, **conf):
    """A gateway with hint_source = logical, one process (the tests count its sessions and its slot)."""
    conf.setdefault("hint_source", "logical")
    conf.setdefault("workers", 1)
    return gateway(**conf)


def held(gw, kind="run"):
    return gw.metrics().value("pollgate_waiters_held", kind=kind)


def wait_held(gw, n, kind="run", timeout=15.0):
    wait_for(lambda: held(gw, kind) == n, timeout=timeout, what=f"{n} held {kind} waiters")


def hold(gw, path, token, etag, wait=30, n=1):
    h = {"Authorization": f"Bearer {token}", "If-None-Match": etag}
    mg = ManyGets([(gw.url + f"{path}?wait={wait}", h)] * n, timeout=wait + 20).start()
    mg.wait_sent()
    return mg


def old_run(db, id, **cols):
    """A run started an hour ago: its safety-net interval is 10 s, so a wake within 2 s is a hint's."""
    return make_run(db, 1, 7, id=id, status="running", started_at=Raw("now() - interval '1 hour'"), **cols)


def slots(pg, pid=None):
    with pg._temp_conn() as c, c.cursor() as cur:
        cur.execute("SELECT slot_name, temporary, plugin FROM pg_replication_slots WHERE slot_name LIKE %s",
                    (f"pollgate_{pid}_%" if pid else "pollgate_%",))
        return cur.fetchall()


def wait_exit(gw, timeout=15):
    try:
        rc = gw.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        gw.kill()
        raise AssertionError(f"the gateway kept running; log:\n{gw.log_tail()}")
    gw.stop(expect_rc=None)  # no sanitizer report on the way out
    return rc


# ---- waking ----

def test_a_held_request_is_woken_through_the_slot_within_a_second_with_no_trigger(gateway, world, no_triggers, pg):
    db = no_triggers
    old_run(db, 42, summary_counts={"processed": 1})
    gw = lgw(gateway)
    assert pg.backends("pollgate-listen") == [] and len(pg.backends(LOGICAL)) == 1
    ((name, temporary, plugin),) = slots(pg, gw.pid)
    assert temporary and plugin == "pgoutput"
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = hold(gw, "/v1/runs/42", "tok-alice", etag)
    wait_held(gw, 1)
    t0 = time.monotonic()
    set_run(db, 42, summary_counts={"processed": 2})
    (r,) = mg.results()
    woke = time.monotonic() - t0
    assert r.status == 200 and r.json()["run"]["summary_counts"] == {"processed": 2}
    assert woke < 1.0, f"woken {woke:.3f}s after the commit"
    m = gw.metrics()
    assert m.value("pollgate_wakes_total", cause="notify") >= 1
    assert m.value("pollgate_wakes_total", cause="safety_net") == 0
    assert m.value("pollgate_logical_up") == 1 and m.value("pollgate_logical_messages_total") > 0
    assert m.value("pollgate_listen_up") == 1  # the hint session's gauge follows the stream
    assert m.value("pollgate_logical_mapped_tables", kind="run") == 1


def test_a_rolled_back_transaction_hints_nothing(gateway, world, no_triggers):
    db = no_triggers
    old_run(db, 42)
    old_run(db, 43)
    gw = lgw(gateway)
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = hold(gw, "/v1/runs/42", "tok-alice", etag)
    wait_held(gw, 1)
    before = gw.metrics().value("pollgate_notifies_total", kind="run")
    with db.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("UPDATE operation_runs SET summary_counts = '{\"rolled\": \"back\"}' WHERE id = 42")
        cur.execute("ROLLBACK")
    # A committed change after it: once its hint is in, the stream has passed the rolled-back one.
    set_run(db, 43, summary_counts={"committed": True})
    wait_for(lambda: gw.metrics().value("pollgate_notifies_total", kind="run") > before, what="the hint of run 43")
    assert gw.metrics().value("pollgate_notifies_total", kind="run") - before == 1
    assert held(gw) == 1
    set_run(db, 42, summary_counts={"at": "last"})
    (r,) = mg.results()
    assert r.status == 200 and r.json()["run"]["summary_counts"] == {"at": "last"}


def test_one_transaction_updating_a_run_many_times_gives_one_hint_and_one_reread(gateway, world, no_triggers):
    db = no_triggers
    old_run(db, 42)
    gw = lgw(gateway)
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = hold(gw, "/v1/runs/42", "tok-alice", etag, n=3)
    wait_held(gw, 3)
    m0 = gw.metrics()
    with db.cursor() as cur:
        cur.execute("BEGIN")
        for i in range(50):
            cur.execute("UPDATE operation_runs SET summary_counts = jsonb_build_object('processed', %s) WHERE id = 42",
                        (i,))
        cur.execute("COMMIT")
    rs = mg.results()
    assert [r.status for r in rs] == [200] * 3
    assert {r.json()["run"]["summary_counts"]["processed"] for r in rs} == {49}
    m1 = gw.metrics()
    assert m1.value("pollgate_notifies_total", kind="run") - m0.value("pollgate_notifies_total", kind="run") == 1
    assert m1.value("pollgate_reread_queries_total", kind="run") - m0.value("pollgate_reread_queries_total", kind="run") == 1
    assert m1.value("pollgate_logical_hints_total") - m0.value("pollgate_logical_hints_total") == 1


def test_a_deleted_review_pack_wakes_its_tenant_through_the_replica_identity(gateway, world, no_triggers):
    db = no_triggers
    pack = make_pack(db, 1, 7, status="generating")
    gw = lgw(gateway)
    first = gw.get("/v1/tenants/7/review-pack?wait=0", token="tok-alice")
    assert first.status == 200
    mg = hold(gw, "/v1/tenants/7/review-pack", "tok-alice", first.etag)
    wait_held(gw, 1, kind="review_pack")
    t0 = time.monotonic()
    with db.cursor() as cur:
        cur.execute("DELETE FROM review_packs WHERE id = %s", (pack,))
    (r,) = mg.results()
    assert r.status == 200 and r.etag != first.etag
    assert time.monotonic() - t0 < 2.0
    assert gw.metrics().value("pollgate_logical_resyncs_total") == 0  # the old row named its tenant


# ---- who may see what ----

def test_revoking_a_token_reaches_its_held_requests(gateway, world, no_triggers):
    db = no_triggers
    old_run(db, 42)
    make_token(db, 1, "tok-alice-2")
    gw = lgw(gateway, auth_cache_ttl="1h")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = hold(gw, "/v1/runs/42", "tok-alice", etag, n=2)
    other = hold(gw, "/v1/runs/42", "tok-alice-2", etag)
    wait_held(gw, 3)
    t0 = time.monotonic()
    assert revoke_token(db, "tok-alice") == 1
    rs = mg.results()
    assert [r.status for r in rs] == [401, 401] and time.monotonic() - t0 < 2.0
    assert held(gw) == 1
    with db.cursor() as cur:  # a membership lost: 404 for the other session too
        cur.execute("DELETE FROM workspace_memberships WHERE user_id = 1 AND workspace_id = 1")
    (r,) = other.results()
    assert r.status == 404


# ---- losing the stream ----

def test_a_killed_replication_connection_is_replaced_and_every_held_resource_reread(gateway, world, no_triggers, pg):
    db = no_triggers
    for i in (42, 43, 44):
        old_run(db, i)
    gw = lgw(gateway, db_reconnect_min="1s", db_reconnect_max="1s")
    etags = {i: gw.get(f"/v1/runs/{i}?wait=0", token="tok-alice").etag for i in (42, 43, 44)}
    mgs = {i: hold(gw, f"/v1/runs/{i}", "tok-alice", etags[i]) for i in (42, 43, 44)}
    wait_held(gw, 3)
    (old_pid,) = pg.backends(LOGICAL)
    m0 = gw.metrics()
    assert pg.terminate(LOGICAL) == 1
    set_run(db, 42, summary_counts={"while": "down"})  # nobody streams: only the re-read can deliver it
    (r,) = mgs[42].results()
    assert r.status == 200 and r.json()["run"]["summary_counts"] == {"while": "down"}
    assert r.elapsed < 8  # the re-read after reconnect, before the 10 s safety net
    wait_for(lambda: gw.metrics().value("pollgate_logical_reconnects_total") > m0.value("pollgate_logical_reconnects_total"),
             what="a new replication session")
    m1 = gw.metrics()
    assert m1.value("pollgate_wakes_total", cause="reconnect") - m0.value("pollgate_wakes_total", cause="reconnect") >= 3
    new = pg.backends(LOGICAL)
    assert len(new) == 1 and new != [old_pid]
    wait_for(lambda: len(slots(pg, gw.pid)) == 1, what="one slot of this gateway (the old one dropped)")
    t0 = time.monotonic()
    set_run(db, 43, summary_counts={"after": "reconnect"})
    (r,) = mgs[43].results()
    assert r.status == 200 and time.monotonic() - t0 < 2.0
    assert held(gw) == 1


def test_a_postgres_restart_is_survived(gateway, world, no_triggers, pg):
    db = no_triggers
    old_run(db, 42)
    gw = lgw(gateway, db_reconnect_min="100ms", db_reconnect_max="500ms")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    pg.restart()
    wait_for(lambda: gw.metrics().value("pollgate_logical_up") == 1, timeout=20, what="stream up after restart")
    wait_for(lambda: gw.get("/readyz").status == 200, timeout=20, what="ready after restart")
    db2 = pg.connect()
    mg = hold(gw, "/v1/runs/42", "tok-alice", etag)
    wait_held(gw, 1)
    t0 = time.monotonic()
    set_run(db2, 42, summary_counts={"after": "restart"})
    (r,) = mg.results()
    assert r.status == 200 and r.json()["run"]["summary_counts"] == {"after": "restart"}
    assert time.monotonic() - t0 < 2.0


def test_readyz_is_503_while_the_stream_is_down(gateway, world, db, pg):
    gw = lgw(gateway, db_reconnect_min="100ms", db_reconnect_max="200ms")
    # Creating a logical slot waits for every transaction that holds an xid: keep one open, cut the
    # stream, and the new slot cannot be made until it ends, while the query pool stays up.
    blocker = pg.connect(autocommit=False)
    with blocker.cursor() as cur:
        cur.execute("SELECT txid_current()")
    try:
        assert pg.terminate(LOGICAL) == 1
        wait_for(lambda: gw.get("/readyz").status == 503, what="/readyz 503")
        r = gw.get("/readyz")
        assert r.status == 503
        m = gw.metrics()
        assert m.value("pollgate_logical_up") == 0 and m.value("pollgate_db_connections") >= 1
        assert m.value("pollgate_listen_up") == 0  # what PollgateListenDown alerts on
    finally:
        blocker.rollback()
    wait_for(lambda: gw.get("/readyz").status == 200, timeout=20, what="/readyz 200 again")


def test_the_slot_confirms_progress_so_the_server_can_recycle_wal(gateway, world, db, pg):
    old_run(db, 42)
    gw = lgw(gateway, db_heartbeat="500ms")
    with db.cursor() as cur:
        cur.execute("UPDATE operation_runs SET summary_counts = '{\"n\": 1}' WHERE id = 42")
        cur.execute("SELECT pg_current_wal_insert_lsn()")  # past the commit just made
        (lsn,) = cur.fetchone()

    def confirmed():
        with pg._temp_conn() as c, c.cursor() as cur:
            cur.execute("SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name LIKE %s",
                        (lsn, f"pollgate_{gw.pid}_%"))
            row = cur.fetchone()
            return row and row[0]
    wait_for(confirmed, timeout=15, what="confirmed_flush_lsn past the commit")
    assert gw.metrics().value("pollgate_logical_lag_bytes") >= 0


def test_the_temporary_slot_is_gone_once_the_gateway_is_killed(gateway, world, db, pg):
    gw = lgw(gateway)
    pid = gw.pid
    assert len(slots(pg, pid)) == 1
    gw.kill()
    wait_for(lambda: slots(pg, pid) == [], timeout=15, what="the temporary slot dropped")
    wait_for(lambda: pg.backends(LOGICAL) == [], timeout=15, what="its walsender gone")


# ---- refusals ----

def test_a_role_without_replication_is_refused_naming_the_fix(gateway, world, pg):
    gw = gateway(wait_ready=None, workers=1, hint_source="logical", database=pg.gateway_uri)
    assert wait_exit(gw) == 1
    line = next((l for l in gw.log().splitlines() if "REPLICATION" in l and "refused" in l), None)
    assert line, gw.log_tail()
    assert f"ALTER ROLE {pg.gateway_user} REPLICATION" in line and "db/grant.sql" in line


def test_a_database_without_the_publication_is_refused_naming_the_fix(gateway, world, db):
    with db.cursor() as cur:
        cur.execute("DROP PUBLICATION pollgate")
    gw = gateway(wait_ready=None, workers=1, hint_source="logical")
    assert wait_exit(gw) == 1
    line = next((l for l in gw.log().splitlines() if "publication" in l and "refused" in l), None)
    assert line and "db/migrations" in line, gw.log_tail()


def test_wal_level_replica_is_refused_at_start_naming_the_setting(gateway, pg, notes):
    pg.psql("ALTER SYSTEM SET wal_level = replica", dbname="postgres")
    try:
        pg.restart()
        t0 = time.monotonic()
        gw = gateway(wait_ready=None, workers=1, hint_source="logical")
        assert wait_exit(gw) == 1
        took = time.monotonic() - t0
        line = next((l for l in gw.log().splitlines() if "wal_level" in l and "refused" in l), None)
        assert line, gw.log_tail()
        assert "wal_level = logical" in line and "(it is replica)" in line and "restart" in line
        notes(f"wal_level=replica: exit 1 after {took:.2f}s")
    finally:
        pg.psql("ALTER SYSTEM RESET wal_level", dbname="postgres")
        pg.restart()


def test_no_free_replication_slot_is_logged_naming_the_fix_and_retried(gateway, world, db, pg):
    with db.cursor() as cur:
        cur.execute("SELECT current_setting('max_replication_slots')::int - count(*) FROM pg_replication_slots")
        (free,) = cur.fetchone()
        names = [f"pollgate_test_fill_{i}" for i in range(free)]
        for n in names:
            cur.execute("SELECT pg_create_physical_replication_slot(%s)", (n,))
    try:
        gw = gateway(wait_ready=False, workers=1, hint_source="logical", db_reconnect_min="100ms", db_reconnect_max="300ms")
        gw.wait_log(r"no replication slot free \(max_replication_slots = \d+, \d+ in use\): raise max_replication_slots")
        assert gw.get("/readyz").status == 503 and gw.running
    finally:
        with db.cursor() as cur:
            for n in names:
                cur.execute("SELECT pg_drop_replication_slot(%s)", (n,))
    wait_for(lambda: gw.get("/readyz").status == 200, timeout=15, what="ready once a slot is free")


def test_every_commit_reaches_its_waiters_even_when_streamed_before_it_is_visible(gateway, world, no_triggers, pg):
    """The stream may deliver a commit the moment its WAL is flushed, a moment before the committing
    session makes it visible; a re-read in between would see the old row and spend the hint. The gateway
    holds such hints back until a new snapshot sees the commit: every one of many quick commits, each to
    a run whose waiters are held, must reach them (their runs are an hour old: no safety net in time, and
    the next commit to the same run overwrites the value, so a lost wake is lost for good)."""
    db = no_triggers
    runs = list(range(1, 11))
    for i in runs:
        old_run(db, i)
    gw = lgw(gateway)
    seen = {i: set() for i in runs}
    etags = {i: gw.get(f"/v1/runs/{i}?wait=0", token="tok-alice").etag for i in runs}
    import threading
    stop = threading.Event()

    def poll(i):
        etag = etags[i]
        while not stop.is_set():
            r = gw.get(f"/v1/runs/{i}?wait=10", token="tok-alice", etag=etag, timeout=20)
            if r.status == 200:
                etag = r.etag
                seq = r.json()["run"]["summary_counts"].get("seq")
                if seq is not None:
                    seen[i].add(seq)
    threads = [threading.Thread(target=poll, args=(i,), daemon=True) for i in runs]
    for t in threads:
        t.start()
    try:
        wait_held(gw, len(runs))
        with db.cursor() as cur:
            cur.execute("SET synchronous_commit = on")  # the server default: hints go at the WAL flush
            for seq in range(200):
                i = runs[seq % len(runs)]
                cur.execute("UPDATE operation_runs SET summary_counts = jsonb_build_object('seq', %s) WHERE id = %s",
                            (seq, i))
                time.sleep(0.02)
        want = {i: {s for s in range(200) if runs[s % len(runs)] == i} for i in runs}
        wait_for(lambda: all(want[i] <= seen[i] for i in runs), timeout=8,
                 what="every commit's value seen by its run's waiter")
    finally:
        stop.set()
        set_run(db, 1, summary_counts={"end": True})  # releases the held polls quickly
        for i in runs[1:]:
            set_run(db, i, summary_counts={"end": True})
        for t in threads:
            t.join(15)


def test_grant_sql_with_logical_gives_the_role_what_the_slot_needs(gateway, world, db, pg):
    from helpers import GRANT_SQL
    role = "pollgate_grant_logical_test"
    try:
        pg.psql_file(GRANT_SQL, variables={"role": role})
        with db.cursor() as cur:
            cur.execute("SELECT rolreplication FROM pg_roles WHERE rolname = %s", (role,))
            assert cur.fetchone() == (False,)  # only when asked
        pg.psql_file(GRANT_SQL, variables={"role": role, "logical": "1"})
        with db.cursor() as cur:
            cur.execute("SELECT rolreplication, has_table_privilege(%s, 'pollgate_hint_map', 'SELECT'), "
                        "has_table_privilege(%s, 'operation_runs', 'UPDATE') FROM pg_roles WHERE rolname = %s",
                        (role, role, role))
            assert cur.fetchone() == (True, True, False)
        gw = gateway(hint_source="logical", workers=1, database=f"postgresql://{role}@{pg.host}:{pg.port}/{pg.dbname}")
        assert gw.metrics().value("pollgate_logical_up") == 1
        gw.stop()
    finally:
        pg.psql(f"DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}")


def test_each_worker_streams_through_its_own_slot(gateway, world, no_triggers, pg):
    db = no_triggers
    old_run(db, 42)
    gw = lgw(gateway, workers=2)
    assert len(pg.backends(LOGICAL)) == 2
    with pg._temp_conn() as c, c.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pollgate_%' AND temporary")
        assert cur.fetchone()[0] == 2
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = hold(gw, "/v1/runs/42", "tok-alice", etag, n=4)  # spread over both workers by SO_REUSEPORT
    wait_held(gw, 4)
    t0 = time.monotonic()
    set_run(db, 42, summary_counts={"two": "workers"})
    rs = mg.results()
    assert [r.status for r in rs] == [200] * 4 and time.monotonic() - t0 < 2.0
    m = gw.metrics()
    assert m.value("pollgate_logical_up") == 1 and m.value("pollgate_listen_up") == 1
    # both workers decoded the commit (the other worker's figures are published every 10 ms)
    wait_for(lambda: gw.metrics().value("pollgate_logical_transactions_total") >= 2, what="both workers' counts")
