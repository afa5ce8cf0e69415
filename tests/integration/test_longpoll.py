"""Holding and waking: api.md's rules 6 and 7 and the architecture's invariants, observed from outside.

Timing assertions use wide margins (a wake "within a second" is asserted as < 1 s after the commit, a
test machine under ASan included); speed itself is measured by bench/, not here.
"""

import time

import pytest

from helpers import (ManyGets, Raw, add_workspace_member, assert_401, assert_same_404, make_demo_world, make_pack,
                     make_run, reference_401, reference_404, set_pack, set_run, wait_for)


@pytest.fixture
def world(db):
    return make_demo_world(db)


def held(gw, kind="run"):
    return gw.metrics().value("pollgate_waiters_held", kind=kind)


def wait_held(gw, n, kind="run", timeout=15.0):
    wait_for(lambda: held(gw, kind) == n, timeout=timeout, what=f"{n} held {kind} waiters")


def hold(gw, path, token, etag, wait=30, n=1, headers=None, timeout=None):
    """Start n long-polls in the background and return once the gateway holds them."""
    h = {"Authorization": f"Bearer {token}", "If-None-Match": etag}
    h.update(headers or {})
    mg = ManyGets([(gw.url + f"{path}?wait={wait}", h)] * n, timeout=timeout or wait + 20).start()
    mg.wait_sent()
    return mg


def statement_calls(pg, fragment):
    return sum(s["calls"] for s in pg.statements() if fragment in s["query"])


# ---- rule 6: hold until change / expiry ----

def test_held_request_is_woken_by_an_update_within_a_second(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running", summary_counts={"total": 10, "processed": 1})
    gw = gateway()
    first = gw.get("/v1/runs/42?wait=0", token="tok-alice")
    mg = hold(gw, "/v1/runs/42", "tok-alice", first.etag)
    wait_held(gw, 1)
    t0 = time.monotonic()
    set_run(db, 42, summary_counts={"total": 10, "processed": 2})
    (r,) = mg.results()
    woke = time.monotonic() - t0
    assert r.status == 200, r
    assert r.json()["run"]["summary_counts"] == {"total": 10, "processed": 2}
    assert r.etag != first.etag
    assert woke < 1.0, f"woken {woke:.3f}s after the commit"
    assert held(gw) == 0


def test_expiry_answers_304_with_the_same_etag(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway()
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    t0 = time.monotonic()
    r = gw.get("/v1/runs/42?wait=1", token="tok-alice", etag=etag, timeout=10)
    took = time.monotonic() - t0
    assert r.status == 304 and r.etag == etag and r.body == b""
    assert 0.9 <= took < 5, took


def test_wait_is_capped_by_max_wait(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway(max_wait="1s", default_wait="1s")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    r = gw.get("/v1/runs/42?wait=3600", token="tok-alice", etag=etag, timeout=10)
    assert r.status == 304 and r.elapsed < 5


def test_prefer_wait_is_honoured_and_the_query_parameter_wins(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway(default_wait="20s")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    r = gw.get("/v1/runs/42", token="tok-alice", etag=etag, headers={"Prefer": "wait=1"}, timeout=10)
    assert r.status == 304 and 0.9 <= r.elapsed < 5
    r = gw.get("/v1/runs/42?wait=0", token="tok-alice", etag=etag, headers={"Prefer": "wait=20"}, timeout=10)
    assert r.status == 304 and r.elapsed < 2


def test_default_wait_applies_without_a_wait(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway(default_wait="1s")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    r = gw.get("/v1/runs/42", token="tok-alice", etag=etag, timeout=10)
    assert r.status == 304 and 0.9 <= r.elapsed < 5


def test_star_is_held_until_a_change(gateway, world, db):
    make_run(db, 1, 7, id=42, status="queued")
    gw = gateway()
    mg = hold(gw, "/v1/runs/42", "tok-alice", "*")
    wait_held(gw, 1)
    set_run(db, 42, status="running", started_at=Raw("now()"))
    (r,) = mg.results()
    assert r.status == 200 and r.json()["state"] == "running"


# ---- rule 7: terminal closes the watch for good ----

def test_terminal_answers_every_waiter_and_is_never_held_again(gateway, world, db, pg):
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway()
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = hold(gw, "/v1/runs/42", "tok-alice", etag, n=5)
    wait_held(gw, 5)
    set_run(db, 42, status="completed", outcome="succeeded", completed_at=Raw("now()"))
    rs = mg.results()
    assert [r.status for r in rs] == [200] * 5
    body = rs[0].json()
    assert body["state"] == "succeeded" and body["terminal"] is True and body["poll"] is None
    final = rs[0].etag
    assert gw.metrics().value("pollgate_terminal_closes_total") >= 1
    # Later requests are answered at once, and later NOTIFYs are ignored (no further re-reads).
    reads = gw.metrics().value("pollgate_reread_queries_total", kind="run")
    r = gw.get("/v1/runs/42?wait=30", token="tok-alice", etag=final, timeout=5)
    assert r.status == 304 and r.elapsed < 2
    set_run(db, 42, summary_counts={"total": 1})
    wait_for(lambda: gw.metrics().value("pollgate_notifies_total", kind="run") >= 2, what="the NOTIFY")
    r = gw.get("/v1/runs/42?wait=30", token="tok-alice", etag=final, timeout=5)
    assert r.status == 304 and r.etag == final
    assert gw.metrics().value("pollgate_reread_queries_total", kind="run") == reads


# ---- one re-read for many waiters ----

def test_many_waiters_on_one_run_are_woken_by_one_update_with_one_reread(gateway, world, db, pg):
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway(max_waiters_per_principal=1000, max_waiters_per_client=1000)
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    gw.get("/v1/runs/42?wait=0", token="tok-bob")  # two users: entitlement verdicts cached for both
    n = 200
    mg = ManyGets([(gw.url + "/v1/runs/42?wait=30", {"Authorization": f"Bearer tok-{'alice' if i % 2 else 'bob'}",
                                                      "If-None-Match": etag}) for i in range(n)], timeout=60).start()
    mg.wait_sent()
    wait_held(gw, n)
    before_gw = gw.metrics().value("pollgate_reread_queries_total", kind="run")
    pg_before = statement_calls(pg, "operation_runs r ON r.id = q.id")
    set_run(db, 42, summary_counts={"total": 9, "processed": 9})
    rs = mg.results()
    assert [r.status for r in rs] == [200] * n
    assert len({r.etag for r in rs}) == 1
    # Exactly one batched re-read answered all of them: by the gateway's count and by PostgreSQL's.
    assert gw.metrics().value("pollgate_reread_queries_total", kind="run") - before_gw == 1
    assert statement_calls(pg, "operation_runs r ON r.id = q.id") - pg_before == 1


def test_many_runs_changed_in_one_transaction_share_one_reread(gateway, world, db, pg):
    ids = [make_run(db, 1, 7, status="running") for _ in range(20)]
    gw = gateway()
    etags = {i: gw.get(f"/v1/runs/{i}?wait=0", token="tok-alice").etag for i in ids}
    mg = ManyGets([(gw.url + f"/v1/runs/{i}?wait=30", {"Authorization": "Bearer tok-alice", "If-None-Match": etags[i]})
                   for i in ids], timeout=60).start()
    mg.wait_sent()
    wait_held(gw, len(ids))
    before = gw.metrics().value("pollgate_reread_queries_total", kind="run")
    with db.cursor() as cur:
        cur.execute("UPDATE operation_runs SET summary_counts = '{\"n\": 1}' WHERE id = ANY(%s)", (ids,))
    rs = mg.results()
    assert [r.status for r in rs] == [200] * len(ids)
    assert gw.metrics().value("pollgate_reread_queries_total", kind="run") - before <= 2


# ---- review packs ----

def test_review_pack_new_pack_and_updates_wake_the_tenant_waiters(gateway, world, db):
    gw = gateway()
    none = gw.get("/v1/tenants/7/review-pack?wait=0", token="tok-alice")
    assert none.json()["state"] == "none"
    # "none" is not active: never held. A client waiting for a pack polls; once one exists it is held.
    pid = make_pack(db, 1, 7, status="queued")
    r = gw.get("/v1/tenants/7/review-pack?wait=30", token="tok-alice", etag=none.etag, timeout=10)
    assert r.status == 200 and r.json()["review_pack"]["id"] == pid and r.json()["state"] == "queued"
    mg = hold(gw, "/v1/tenants/7/review-pack", "tok-alice", r.etag)
    wait_held(gw, 1, kind="review_pack")
    set_pack(db, pid, status="generating", updated_at=Raw("now()"))
    (r2,) = mg.results()
    assert r2.status == 200 and r2.json()["state"] == "generating" and r2.json()["poll"] == {"interval_ms": 10000}
    # A newer pack replaces it as "the latest".
    mg = hold(gw, "/v1/tenants/7/review-pack", "tok-alice", r2.etag)
    wait_held(gw, 1, kind="review_pack")
    newer = make_pack(db, 1, 7, status="queued", created_at=Raw("now() + interval '1 second'"))
    (r3,) = mg.results()
    assert r3.status == 200 and r3.json()["review_pack"]["id"] == newer


def test_review_pack_ready_is_terminal(gateway, world, db):
    pid = make_pack(db, 1, 7, status="generating")
    gw = gateway()
    etag = gw.get("/v1/tenants/7/review-pack?wait=0", token="tok-alice").etag
    mg = hold(gw, "/v1/tenants/7/review-pack", "tok-alice", etag)
    wait_held(gw, 1, kind="review_pack")
    set_pack(db, pid, status="ready", generated_at=Raw("now()"), file_size=99)
    (r,) = mg.results()
    body = r.json()
    assert r.status == 200 and body["state"] == "ready" and body["terminal"] is True and body["poll"] is None


# ---- entitlement and deletion while held ----

def test_deleted_run_answers_its_waiters_404(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway()
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = hold(gw, "/v1/runs/42", "tok-alice", etag)
    wait_held(gw, 1)
    with db.cursor() as cur:
        cur.execute("DELETE FROM operation_runs WHERE id = 42")
    (r,) = mg.results()
    assert_same_404(r, reference_404(gw.url, "tok-alice", close=True), "a held run deleted")


def test_held_waiter_that_lost_entitlement_gets_404_not_the_new_state(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway(auth_cache_ttl="0s")  # every re-read re-checks entitlement
    etag = gw.get("/v1/runs/42?wait=0", token="tok-bob").etag
    mg = hold(gw, "/v1/runs/42", "tok-bob", etag)
    wait_held(gw, 1)
    with db.cursor() as cur:
        cur.execute("DELETE FROM tenant_memberships WHERE user_id = 2 AND tenant_id = 7")
    set_run(db, 42, summary_counts={"secret": "new state"})
    (r,) = mg.results()
    assert_same_404(r, reference_404(gw.url, "tok-bob", close=True), "held, then the tenant membership deleted")
    assert b"new state" not in r.body


# ---- the safety net and LISTEN loss ----

def test_with_triggers_disabled_a_change_still_arrives_within_the_interval(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running", started_at=Raw("now()"))  # young: 1 s interval
    gw = gateway()
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    with db.cursor() as cur:
        cur.execute("ALTER TABLE operation_runs DISABLE TRIGGER USER")
    try:
        mg = hold(gw, "/v1/runs/42", "tok-alice", etag)
        wait_held(gw, 1)
        t0 = time.monotonic()
        set_run(db, 42, summary_counts={"processed": 7})
        (r,) = mg.results()
        took = time.monotonic() - t0
        assert r.status == 200 and r.json()["run"]["summary_counts"] == {"processed": 7}
        assert took < 4.0, f"safety net took {took:.2f}s for a 1 s interval"
        assert gw.metrics().value("pollgate_wakes_total", cause="safety_net") >= 1
    finally:
        with db.cursor() as cur:
            cur.execute("ALTER TABLE operation_runs ENABLE TRIGGER USER")


def test_listen_backend_killed_changes_still_arrive(gateway, world, db, pg):
    make_run(db, 1, 7, id=42, status="running", started_at=Raw("now() - interval '1 hour'"))  # 10 s interval
    gw = gateway(db_reconnect_min="50ms")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = hold(gw, "/v1/runs/42", "tok-alice", etag)
    wait_held(gw, 1)
    reconnects = gw.metrics().value("pollgate_listen_reconnects_total")
    assert pg.terminate("pollgate-listen") == 1
    wait_for(lambda: gw.metrics().value("pollgate_listen_reconnects_total") > reconnects, what="LISTEN reconnect")
    wait_for(lambda: gw.metrics().value("pollgate_listen_up") == 1, what="LISTEN up")
    t0 = time.monotonic()
    set_run(db, 42, summary_counts={"after": "reconnect"})
    (r,) = mg.results()
    assert r.status == 200 and r.json()["run"]["summary_counts"] == {"after": "reconnect"}
    assert time.monotonic() - t0 < 2.0  # by NOTIFY, not by the 10 s safety net
    assert len(pg.backends("pollgate-listen")) == 1


def test_change_while_listen_is_down_is_delivered_after_reconnect(gateway, world, db, pg):
    make_run(db, 1, 7, id=42, status="running", started_at=Raw("now() - interval '1 hour'"))
    gw = gateway(db_reconnect_min="1s", db_reconnect_max="1s")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = hold(gw, "/v1/runs/42", "tok-alice", etag)
    wait_held(gw, 1)
    pg.terminate("pollgate-listen")
    set_run(db, 42, summary_counts={"while": "down"})  # its NOTIFY has no listener
    (r,) = mg.results()
    assert r.status == 200 and r.json()["run"]["summary_counts"] == {"while": "down"}
    assert r.elapsed < 8  # the re-read after reconnect, well before the 10 s safety net would


# ---- disconnects ----

def test_waiter_whose_client_disconnects_is_freed_at_once(gateway, world, db):
    import socket
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway()
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    socks = []
    for _ in range(10):
        s = socket.create_connection((gw.host, gw.port))
        s.sendall(f"GET /v1/runs/42?wait=60 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-alice\r\n"
                  f"If-None-Match: {etag}\r\n\r\n".encode())
        socks.append(s)
    wait_held(gw, 10)
    for s in socks[:5]:
        s.close()  # FIN
    for s in socks[5:]:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST
    wait_for(lambda: held(gw) == 0, timeout=5, what="disconnected waiters freed")
    assert gw.metrics().value("pollgate_client_disconnects_total") == 10


# ---- database down ----

def test_new_request_while_the_database_is_down_is_503_with_retry_after(gateway, world, db, pg):
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway()
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = hold(gw, "/v1/runs/42", "tok-alice", etag, wait=3)
    wait_held(gw, 1)
    pg.stop()
    try:
        wait_for(lambda: gw.get("/readyz").status == 503, what="not ready")
        r = gw.get("/v1/runs/43?wait=0", token="tok-carol-unknown", timeout=5)
        assert r.status == 503 and r.headers.get("Retry-After") and r.elapsed < 2
        assert r.json()["error"]["code"] == "unavailable"
        # The held waiter is not answered with an error: it keeps its state and expires with 304.
        (held_r,) = mg.results()
        assert held_r.status == 304 and held_r.etag == etag
    finally:
        pg.start()
    wait_for(lambda: gw.get("/readyz").status == 200, timeout=20, what="ready again")
    assert gw.get("/v1/runs/42?wait=0", token="tok-alice").status == 200


# ---- what the cache may and may not do ----

def test_a_request_right_after_a_commit_always_sees_the_commit(gateway, world, db):
    # The cached view may lag a commit by the NOTIFY's flight time; an answer must never.
    make_run(db, 1, 7, id=42, status="running", summary_counts={"n": 0})
    gw = gateway()
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    for n in range(1, 31):
        set_run(db, 42, summary_counts={"n": n})
        r = gw.get("/v1/runs/42?wait=0", token="tok-alice", etag=etag)
        assert r.status == 200 and r.json()["run"]["summary_counts"] == {"n": n}, (n, r.status)
        etag = r.etag


def test_repolling_with_the_current_version_is_held_without_a_query(gateway, world, db):
    # The long-poll cycle's steady state costs no query per browser: wake once, re-poll from cache.
    make_run(db, 1, 7, id=42, status="running", started_at=Raw("now() - interval '1 hour'"))
    gw = gateway(max_waiters_per_principal=1000, max_waiters_per_client=1000)
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = hold(gw, "/v1/runs/42", "tok-alice", etag, n=50)
    wait_held(gw, 50)
    set_run(db, 42, summary_counts={"step": 1})
    rs = mg.results()
    new = rs[0].etag
    assert {r.status for r in rs} == {200}
    reads = gw.metrics().value("pollgate_reread_queries_total", kind="run")
    tokens = gw.metrics().value("pollgate_token_lookups_total")
    mg = hold(gw, "/v1/runs/42", "tok-alice", new, n=50, wait=1)
    wait_held(gw, 50)
    assert gw.metrics().value("pollgate_reread_queries_total", kind="run") == reads
    assert gw.metrics().value("pollgate_token_lookups_total") == tokens
    assert {r.status for r in mg.results()} == {304}


def test_losing_a_membership_answers_the_held_waiter_404_at_once(gateway, world, db):
    # The access trigger's hint makes the held user's verdict stale and its watch re-read now, without
    # waiting for the entitlement TTL or the safety net.
    make_run(db, 1, 7, id=42, status="running", started_at=Raw("now() - interval '1 hour'"))
    gw = gateway(auth_cache_ttl="1h")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-bob").etag
    mg = hold(gw, "/v1/runs/42", "tok-bob", etag)
    wait_held(gw, 1)
    t0 = time.monotonic()
    with db.cursor() as cur:
        cur.execute("DELETE FROM workspace_memberships WHERE user_id = 2")
    (r,) = mg.results()
    assert time.monotonic() - t0 < 2.0
    assert_same_404(r, reference_404(gw.url, "tok-bob", close=True), "held, then the workspace membership deleted")


def test_losing_a_capability_answers_held_review_pack_waiters_404(gateway, world, db):
    # role_capabilities has no user id: its hint ('*') re-checks everyone's verdicts.
    make_pack(db, 1, 7, id=5, status="generating")
    gw = gateway(auth_cache_ttl="1h")
    etag = gw.get("/v1/tenants/7/review-pack?wait=0", token="tok-alice").etag
    mg = hold(gw, "/v1/tenants/7/review-pack", "tok-alice", etag)
    wait_held(gw, 1, kind="review_pack")
    with db.cursor() as cur:
        cur.execute("DELETE FROM role_capabilities WHERE role = 'owner' AND capability = 'review_packs.view'")
    (r,) = mg.results()
    assert r.elapsed < 10
    assert_same_404(r, reference_404(gw.url, "tok-alice", kind="review_pack", close=True),
                    "held, then the capability removed")


def test_clients_leaving_during_a_sliced_wake_are_freed_and_the_rest_answered(gateway, world, db):
    # 3,000 waiters take several answer slices; half the clients reset right after the commit, while
    # their answers may still be queued. Every survivor gets its 200; nothing is left held or leaked.
    import socket
    import struct
    make_run(db, 1, 7, id=42, status="running")
    make_run(db, 1, 7, id=43, status="running")
    gw = gateway(max_waiters_per_principal=10000, max_waiters_per_client=10000, log_level="info")
    etags = {i: gw.get(f"/v1/runs/{i}?wait=0", token="tok-alice").etag for i in (42, 43)}
    socks = []
    for k in range(3000):
        run = 42 if k % 2 else 43
        s = socket.create_connection((gw.host, gw.port))
        s.sendall(f"GET /v1/runs/{run}?wait=60 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-alice\r\n"
                  f"If-None-Match: {etags[run]}\r\n\r\n".encode())
        socks.append(s)
    wait_held(gw, 3000, timeout=60)
    with db.cursor() as cur:
        cur.execute("UPDATE operation_runs SET summary_counts = '{\"n\": 2}' WHERE id IN (42, 43)")
    for s in socks[::2]:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    ok = 0
    for s in socks[1::2]:
        s.settimeout(30)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            assert chunk, "connection closed before an answer"
            data += chunk
        ok += data.startswith(b"HTTP/1.1 200 ")
        s.close()
    assert ok == 1500
    wait_for(lambda: held(gw) == 0 and gw.metrics().value("pollgate_waiters_pending") == 0, timeout=10,
             what="nothing held")


def test_revoking_the_token_of_a_held_request_answers_it_401_at_once(gateway, world, db):
    from helpers import make_token, revoke_token
    make_run(db, 1, 7, id=42, status="running", started_at=Raw("now() - interval '1 hour'"))
    make_token(db, 1, "tok-alice-2")  # the same user's other session stays valid
    gw = gateway(auth_cache_ttl="1h")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = hold(gw, "/v1/runs/42", "tok-alice", etag, n=2)
    other = hold(gw, "/v1/runs/42", "tok-alice-2", etag)
    wait_held(gw, 3)
    t0 = time.monotonic()
    assert revoke_token(db, "tok-alice") == 1
    rs = mg.results()
    assert [r.status for r in rs] == [401, 401] and time.monotonic() - t0 < 2.0
    ref = reference_401(gw.url, close=True)
    for r in rs:
        assert_401(r, ref, "held, then the token revoked")
    assert held(gw) == 1
    set_run(db, 42, summary_counts={"after": "revoke"})
    (r,) = other.results()
    assert r.status == 200
    assert_401(gw.get("/v1/runs/42?wait=0", token="tok-alice"), reference_401(gw.url), "a revoked token, later")
