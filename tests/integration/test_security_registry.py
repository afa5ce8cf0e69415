"""Issue 9, the registry's side: what a held request may still be told once its credential is in doubt, what
a forbidden id costs and leaves behind, and timestamps PostgreSQL stores but cannot convert.

- Hole 1: a held request gets new state (200) only on a token looked up less than auth_cache_ttl ago; a
  LISTEN reconnect makes every held token stale (access hints sent meanwhile are lost); a re-check that
  fails lets nothing through (the request stays held and is answered once a re-check succeeds).
- Hole 3: a row with +/-infinity in a timestamp never fails the batch it is read in (the timestamp is
  served as null); a forbidden row carries no payload out of PostgreSQL, so a huge one costs what a
  missing id costs.
- Hole 4: walking forbidden ids keeps nothing: no watch, no memory.
- Hole 5: the drain and the abort give new state only under the same rule as a wake.

Waits that are the subject of a test (auth_cache_ttl running out, a token reaching its expiry) are real
time; everything else is awaited through /metrics or the answer itself. Margins are wide (ASan, 2 shared
cores).
"""

import random
import signal
import socket
import statistics
import threading
import time

import pytest

import helpers
from helpers import (KeepAlive, ManyGets, Raw, bearer, comparable, make_demo_world, make_run, make_token, make_pack,
                     revoke_token, set_run, wait_for, GATEWAY_DB_ROLE)

OLD = Raw("now() - interval '1 hour'")  # a run this old has the 10 s safety-net interval


@pytest.fixture
def world(db):
    return make_demo_world(db)


def held(gw, kind="run"):
    return gw.metrics().value("pollgate_waiters_held", kind=kind)


def wait_held(gw, n, kind="run", timeout=30.0):
    wait_for(lambda: held(gw, kind) == n, timeout=timeout, interval=0.05, what=f"{n} held {kind} waiters")


def hold(gw, path, token, etag, wait=30, n=1):
    """n long-polls in the background; returns the ManyGets once they are written."""
    h = {"Authorization": f"Bearer {token}", "If-None-Match": etag}
    mg = ManyGets([(gw.url + f"{path}?wait={wait}", h)] * n, timeout=wait + 20).start()
    mg.wait_sent()
    return mg


class Background:
    """One request in a thread, so a test can tell whether it has been answered yet."""

    def __init__(self, gw, path, token, etag, timeout=70.0):
        self.result = None
        self.error = None
        self._t = threading.Thread(target=self._run, args=(gw, path, token, etag, timeout), daemon=True)
        self._t.start()

    def _run(self, gw, path, token, etag, timeout):
        try:
            self.result = gw.get(path, token=token, etag=etag, timeout=timeout)
        except Exception as e:  # surfaced by get()
            self.error = e

    @property
    def done(self):
        return not self._t.is_alive()

    def get(self, timeout=60.0):
        self._t.join(timeout)
        assert not self._t.is_alive(), "request still unanswered"
        if self.error:
            raise self.error
        return self.result


def metric(gw, name, **labels):
    return gw.metrics().value(name, **labels)


def assert_401(r):
    assert r.status == 401, f"expected 401, got {r.status}: {r.body[:200]!r}"
    assert r.headers.get("WWW-Authenticate") == "Bearer"
    assert r.json()["error"]["code"] == "unauthorized"


@pytest.fixture
def no_token_select(pg, db):
    """A context that takes SELECT on access_tokens away from the gateway's role (every token lookup
    then fails) and always gives it back."""
    state = {"revoked": False}

    def revoke():
        with db.cursor() as cur:
            cur.execute(f'REVOKE SELECT ON access_tokens FROM "{GATEWAY_DB_ROLE}"')
        state["revoked"] = True

    def grant():
        with db.cursor() as cur:
            cur.execute(f'GRANT SELECT ON access_tokens TO "{GATEWAY_DB_ROLE}"')
        state["revoked"] = False

    yield revoke, grant
    if state["revoked"]:
        grant()


# ---- Hole 1: a revoked token never receives new state after a lost hint ---------------------------------

def test_token_revoked_while_listen_is_down_gets_401_not_the_new_state(gateway, world, db, pg):
    # The scenario: LISTEN killed, token revoked (its hint has no listener), run updated. The
    # reconnect's re-read finds the change; the token must be looked up again before anything is sent.
    make_run(db, 1, 7, id=42, status="running", started_at=OLD)
    gw = gateway(auth_cache_ttl="2s", db_reconnect_min="4s", db_reconnect_max="4s")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = hold(gw, "/v1/runs/42", "tok-alice", etag)
    wait_held(gw, 1)
    assert pg.terminate("pollgate-listen") == 1
    wait_for(lambda: metric(gw, "pollgate_listen_up") == 0, what="LISTEN down")
    assert revoke_token(db, "tok-alice") == 1
    set_run(db, 42, summary_counts={"after": "revoke"})
    (r,) = mg.results()
    assert_401(r)
    assert metric(gw, "pollgate_listen_up") == 1
    assert gw.get("/v1/runs/42?wait=0", token="tok-alice").status == 401


def test_reconnect_looks_every_held_token_up_again(gateway, world, db, pg):
    # No change at all: the reconnect alone must find the token revoked while the session was down (the
    # request would otherwise sit until its deadline on a dead credential).
    make_run(db, 1, 7, id=42, status="running", started_at=OLD)
    make_token(db, 1, "tok-alice-2")  # the same user's other session stays valid and stays held
    gw = gateway(db_reconnect_min="2s", db_reconnect_max="2s")  # auth_cache_ttl at its 10 s default
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    gw.get("/v1/runs/42?wait=0", token="tok-alice-2")
    revoked = hold(gw, "/v1/runs/42", "tok-alice", etag, wait=20)
    other = hold(gw, "/v1/runs/42", "tok-alice-2", etag, wait=20)
    wait_held(gw, 2)
    reconnects = metric(gw, "pollgate_listen_reconnects_total")
    assert pg.terminate("pollgate-listen") == 1
    wait_for(lambda: metric(gw, "pollgate_listen_up") == 0, what="LISTEN down")
    assert revoke_token(db, "tok-alice") == 1
    wait_for(lambda: metric(gw, "pollgate_listen_reconnects_total") > reconnects, timeout=15, what="reconnect")
    t0 = time.monotonic()
    (r,) = revoked.results()
    assert_401(r)
    assert time.monotonic() - t0 < 5.0, "the revoked token was not looked up again at the reconnect"
    assert held(gw) == 1
    set_run(db, 42, summary_counts={"after": "reconnect"})
    (r2,) = other.results()
    assert r2.status == 200 and r2.json()["run"]["summary_counts"] == {"after": "reconnect"}


def test_token_older_than_the_ttl_is_looked_up_before_new_state(gateway, world, db):
    # A lost hint without any reconnect (the access trigger is off): the token is trusted for
    # auth_cache_ttl, not a moment longer, before a held request is given new state.
    make_run(db, 1, 7, id=42, status="running", started_at=OLD)
    gw = gateway(auth_cache_ttl="2s")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    looked_up = time.monotonic()
    mg = hold(gw, "/v1/runs/42", "tok-alice", etag)
    wait_held(gw, 1)
    with db.cursor() as cur:
        cur.execute("ALTER TABLE access_tokens DISABLE TRIGGER USER")  # the db fixture re-enables
    assert revoke_token(db, "tok-alice") == 1
    time.sleep(max(0.0, looked_up + 3.0 - time.monotonic()))  # the subject: the ttl (2 s) running out
    set_run(db, 42, summary_counts={"after": "ttl"})
    (r,) = mg.results()
    assert_401(r)


def test_token_reaching_its_expiry_while_held_gets_401_on_the_next_change(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running", started_at=OLD)
    make_token(db, 1, "tok-brief", expires_at=Raw("now() + interval '2 seconds'"))
    created = time.monotonic()
    gw = gateway()  # auth_cache_ttl 10 s: the expiry, not the ttl, is what ends it
    etag = gw.get("/v1/runs/42?wait=0", token="tok-brief").etag
    mg = hold(gw, "/v1/runs/42", "tok-brief", etag, wait=30)
    wait_held(gw, 1)
    time.sleep(max(0.0, created + 3.0 - time.monotonic()))  # the subject: expires_at passing
    set_run(db, 42, summary_counts={"after": "expiry"})
    (r,) = mg.results()
    assert_401(r)
    assert r.elapsed < 15, "answered by its deadline, not by the change"


def test_with_a_zero_ttl_every_wake_looks_the_token_up_and_still_answers(gateway, world, db):
    # auth_cache_ttl = 0s trusts nothing cached: each wake looks the token (and the verdict) up again, and
    # a lookup sent for the wake is enough — the held request gets its state, it is not re-checked forever.
    make_run(db, 1, 7, id=42, status="running", started_at=OLD)
    gw = gateway(auth_cache_ttl="0s")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    for k in range(3):
        mg = hold(gw, "/v1/runs/42", "tok-alice", etag, wait=20)
        wait_held(gw, 1)
        lookups = metric(gw, "pollgate_token_lookups_total")
        set_run(db, 42, summary_counts={"wake": k})
        (r,) = mg.results()
        assert r.status == 200 and r.json()["run"]["summary_counts"] == {"wake": k}, r
        assert r.elapsed < 5.0
        assert metric(gw, "pollgate_token_lookups_total") > lookups
        etag = r.etag
    assert metric(gw, "pollgate_waiters_pending") == 0


def test_a_failed_recheck_lets_no_new_state_through_until_a_check_succeeds(gateway, world, db, no_token_select):
    # The hint arrives, but the token lookup it triggers fails (the gateway's role lost SELECT on
    # access_tokens). The run changes meanwhile: the held request must stay held, never get 200, and get
    # its 401 as soon as a lookup succeeds again.
    revoke_select, grant_select = no_token_select
    make_run(db, 1, 7, id=42, status="running", started_at=OLD)
    gw = gateway(auth_cache_ttl="2s")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    bg = Background(gw, "/v1/runs/42?wait=40", "tok-alice", etag)
    wait_held(gw, 1)
    revoke_select()
    errors = metric(gw, "pollgate_read_errors_total")
    assert revoke_token(db, "tok-alice") == 1  # the hint comes; its re-check fails
    wait_for(lambda: metric(gw, "pollgate_read_errors_total") > errors, what="the failed re-check")
    reads = metric(gw, "pollgate_reread_queries_total", kind="run")
    set_run(db, 42, summary_counts={"after": "failed recheck"})
    wait_for(lambda: metric(gw, "pollgate_reread_queries_total", kind="run") > reads, what="the change read")
    # Two more failed re-checks after the change was read: the request had every chance to be answered.
    errors = metric(gw, "pollgate_read_errors_total")
    wait_for(lambda: bg.done or metric(gw, "pollgate_read_errors_total") >= errors + 2, timeout=10,
             what="re-checks retried")
    assert not bg.done, f"answered while its token could not be checked: {bg.get()!r}"
    assert held(gw) == 1
    grant_select()
    assert_401(bg.get(timeout=10))
    assert held(gw) == 0


def test_a_failed_recheck_of_a_live_token_delivers_the_state_once_it_succeeds(gateway, world, db, no_token_select):
    # The other outcome of the same wait: the token was fine all along; the change is delivered (late,
    # never lost) once a lookup succeeds.
    revoke_select, grant_select = no_token_select
    make_run(db, 1, 7, id=42, status="running", started_at=OLD)
    gw = gateway(auth_cache_ttl="2s")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    looked_up = time.monotonic()
    bg = Background(gw, "/v1/runs/42?wait=40", "tok-alice", etag)
    wait_held(gw, 1)
    revoke_select()
    time.sleep(max(0.0, looked_up + 2.5 - time.monotonic()))  # the subject: the ttl running out
    errors = metric(gw, "pollgate_read_errors_total")
    set_run(db, 42, summary_counts={"after": "late"})
    wait_for(lambda: bg.done or metric(gw, "pollgate_read_errors_total") >= errors + 2, timeout=10,
             what="re-checks retried")
    assert not bg.done, f"answered on a token it could not check: {bg.get()!r}"
    grant_select()
    r = bg.get(timeout=10)
    assert r.status == 200 and r.json()["run"]["summary_counts"] == {"after": "late"}


def test_owed_request_whose_token_cannot_be_checked_gets_503_at_its_deadline(gateway, world, db, no_token_select):
    # Never "unchanged" (a 304 would carry the new ETag without the state) and never the state.
    revoke_select, _ = no_token_select
    make_run(db, 1, 7, id=42, status="running", started_at=OLD)
    gw = gateway(auth_cache_ttl="2s")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    looked_up = time.monotonic()
    bg = Background(gw, "/v1/runs/42?wait=6", "tok-alice", etag)
    wait_held(gw, 1)
    revoke_select()
    time.sleep(max(0.0, looked_up + 2.5 - time.monotonic()))  # the subject: the ttl running out
    set_run(db, 42, summary_counts={"after": "deadline"})
    r = bg.get(timeout=20)
    assert r.status == 503, r
    assert r.headers.get("Retry-After") and r.json()["error"]["code"] == "unavailable"
    assert r.etag is None


# ---- Hole 5: drain and abort apply the same rule ---------------------------------------------------------

def test_drain_answers_an_owed_request_once_its_token_is_checked(gateway, world, db, no_token_select):
    # SIGTERM while a held request is owed new state on a token that cannot be checked: the drain must not
    # hand out the state; once a lookup succeeds it answers under the usual rule (here: revoked, 401).
    revoke_select, grant_select = no_token_select
    make_run(db, 1, 7, id=42, status="running", started_at=OLD)
    gw = gateway(auth_cache_ttl="2s", drain_timeout="20s")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    looked_up = time.monotonic()
    bg = Background(gw, "/v1/runs/42?wait=40", "tok-alice", etag)
    wait_held(gw, 1)
    with db.cursor() as cur:
        cur.execute("ALTER TABLE access_tokens DISABLE TRIGGER USER")  # the hint is lost
    assert revoke_token(db, "tok-alice") == 1
    revoke_select()
    time.sleep(max(0.0, looked_up + 2.5 - time.monotonic()))  # the subject: the ttl running out
    errors = metric(gw, "pollgate_read_errors_total")
    set_run(db, 42, summary_counts={"after": "drain"})
    wait_for(lambda: bg.done or metric(gw, "pollgate_read_errors_total") > errors, what="the failed re-check")
    assert not bg.done, f"answered on a token it could not check: {bg.get()!r}"
    gw.send_signal(signal.SIGTERM)
    gw.wait_log(r"draining")
    time.sleep(1.5)  # at least one more failed re-check during the drain (they are retried every second)
    assert not bg.done, f"the drain answered an owed request on an unchecked token: {bg.get()!r}"
    grant_select()
    r = bg.get(timeout=10)
    assert_401(r)
    assert r.headers.get("Connection", "").lower() == "close"
    assert gw.proc.wait(15) == 0 and gw.stop() == 0


def test_abort_gives_an_owed_request_503_not_the_state(gateway, world, db, no_token_select):
    revoke_select, _ = no_token_select
    make_run(db, 1, 7, id=42, status="running", started_at=OLD)
    gw = gateway(auth_cache_ttl="2s", drain_timeout="2s")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    looked_up = time.monotonic()
    bg = Background(gw, "/v1/runs/42?wait=40", "tok-alice", etag)
    wait_held(gw, 1)
    revoke_select()
    time.sleep(max(0.0, looked_up + 2.5 - time.monotonic()))  # the subject: the ttl running out
    errors = metric(gw, "pollgate_read_errors_total")
    set_run(db, 42, summary_counts={"after": "abort"})
    wait_for(lambda: bg.done or metric(gw, "pollgate_read_errors_total") > errors, what="the failed re-check")
    assert not bg.done, f"answered on a token it could not check: {bg.get()!r}"
    gw.send_signal(signal.SIGTERM)
    r = bg.get(timeout=15)  # drain_timeout 2 s, then the abort
    assert r.status == 503, r
    assert r.headers.get("Connection", "").lower() == "close"
    assert gw.proc.wait(15) == 0 and gw.stop() == 0


def test_drain_during_a_sliced_wake_never_sends_state_on_an_expired_token(gateway, world, db):
    # Thousands of held requests on one token that then expires; the run changes, so they are answered
    # 1,024 per loop iteration — and SIGTERM lands while most are still queued. The drain must answer
    # those under the same rule as the slices: 401, never the new state.
    make_run(db, 1, 7, id=42, status="running", started_at=OLD)
    make_token(db, 1, "tok-brief")
    n = 6000
    gw = gateway(max_waiters_per_principal=n + 10, max_waiters_per_client=n + 10, drain_timeout="20s",
                 log_level="info")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-brief").etag
    # The first held request is answered first (a sub's waiters are answered in arrival order): the
    # moment its answer arrives, SIGTERM goes out, while the later slices are still queued.
    first = socket.create_connection((gw.host, gw.port))
    first.sendall(f"GET /v1/runs/42?wait=55 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-brief\r\n"
                  f"If-None-Match: {etag}\r\n\r\n".encode())
    wait_held(gw, 1)
    mg = hold(gw, "/v1/runs/42", "tok-brief", etag, wait=55, n=n - 1)
    wait_held(gw, n, timeout=90)
    # Now give the token an expiry one second away; its hint makes the gateway look it up again.
    lookups = metric(gw, "pollgate_token_lookups_total")
    with db.cursor() as cur:
        cur.execute("UPDATE access_tokens SET expires_at = now() + interval '1 second' "
                    "WHERE token_sha256 = sha256('tok-brief'::bytea) RETURNING clock_timestamp()")
    set_at = time.monotonic()
    wait_for(lambda: metric(gw, "pollgate_token_lookups_total") > lookups, what="the token looked up again")
    assert held(gw) == n
    time.sleep(max(0.0, set_at + 2.0 - time.monotonic()))  # the subject: expires_at passing
    first_answer = []

    def stop_on_first_answer():
        first.settimeout(30)
        data = first.recv(65536)
        gw.send_signal(signal.SIGTERM)
        first_answer.append(data)

    stopper = threading.Thread(target=stop_on_first_answer, daemon=True)
    stopper.start()
    set_run(db, 42, summary_counts={"after": "expiry"})
    stopper.join(30)
    first.close()
    assert first_answer and first_answer[0].startswith(b"HTTP/1.1 401"), first_answer
    rs = mg.results(timeout=60)
    statuses = {}
    for r in rs:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    assert statuses == {401: n - 1}, statuses
    assert gw.proc.wait(20) == 0 and gw.stop() == 0


# ---- Hole 3: infinity timestamps, and no payload for a denied row ---------------------------------------

def test_infinite_timestamps_are_served_as_null_and_fail_no_one(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running", started_at=Raw("'infinity'"), completed_at=Raw("'-infinity'"))
    make_run(db, 2, 9, id=60, status="running", created_at=Raw("'infinity'"))  # eve's; forbidden to alice
    make_pack(db, 1, 7, id=5, status="ready", expires_at=Raw("'infinity'"), generated_at=Raw("'-infinity'"))
    make_token(db, 1, "tok-forever", expires_at=Raw("'infinity'"))
    make_token(db, 1, "tok-never", expires_at=Raw("'-infinity'"))
    gw = gateway()
    r = gw.get("/v1/runs/42?wait=0", token="tok-alice")
    assert r.status == 200, r
    run = r.json()["run"]
    assert run["started_at"] is None and run["completed_at"] is None and run["created_at"].endswith("Z")
    missing = gw.get("/v1/runs/99?wait=0", token="tok-alice")
    forbidden = gw.get("/v1/runs/60?wait=0", token="tok-alice")
    assert missing.status == 404 and comparable(forbidden) == comparable(missing)
    r = gw.get("/v1/runs/60?wait=0", token="tok-eve")
    assert r.status == 200 and r.json()["run"]["created_at"] is None
    r = gw.get("/v1/tenants/7/review-pack?wait=0", token="tok-alice")
    assert r.status == 200, r
    pack = r.json()["review_pack"]
    assert pack["expires_at"] is None and pack["generated_at"] is None
    assert gw.get("/v1/runs/42?wait=0", token="tok-forever").status == 200  # +infinity: never expires
    assert gw.get("/v1/runs/42?wait=0", token="tok-never").status == 401   # -infinity: long expired
    assert metric(gw, "pollgate_read_errors_total") == 0


def test_a_batch_with_infinite_timestamps_still_wakes_everyone_in_it(gateway, world, db, pg):
    for rid in (42, 43):
        make_run(db, 1, 7, id=rid, status="running", started_at=OLD)
    make_run(db, 2, 9, id=60, status="running", started_at=OLD)
    gw = gateway()
    etags = {rid: gw.get(f"/v1/runs/{rid}?wait=0", token=tok).etag
             for rid, tok in ((42, "tok-alice"), (43, "tok-alice"), (60, "tok-eve"))}
    reqs = [(gw.url + "/v1/runs/42?wait=15", {**bearer("tok-alice"), "If-None-Match": etags[42]}),
            (gw.url + "/v1/runs/43?wait=15", {**bearer("tok-alice"), "If-None-Match": etags[43]}),
            (gw.url + "/v1/runs/60?wait=15", {**bearer("tok-eve"), "If-None-Match": etags[60]})]
    mg = ManyGets(reqs, timeout=40).start()
    mg.wait_sent()
    wait_held(gw, 3)
    reads = metric(gw, "pollgate_reread_queries_total", kind="run")
    with db.cursor() as cur:  # one transaction: one NOTIFY batch, one re-read of all three
        cur.execute("BEGIN; "
                    "UPDATE operation_runs SET summary_counts = '{\"n\": 1}' WHERE id = 42; "
                    "UPDATE operation_runs SET started_at = 'infinity' WHERE id = 43; "
                    "UPDATE operation_runs SET completed_at = '-infinity', created_at = 'infinity' WHERE id = 60; "
                    "COMMIT")
    r42, r43, r60 = mg.results()
    assert r42.status == 200 and r42.json()["run"]["summary_counts"] == {"n": 1}, r42
    assert r43.status == 200 and r43.json()["run"]["started_at"] is None, r43
    assert r60.status == 200 and r60.json()["run"]["created_at"] is None, r60
    assert max(r.elapsed for r in (r42, r43, r60)) < 5.0
    assert metric(gw, "pollgate_reread_queries_total", kind="run") - reads <= 2
    assert metric(gw, "pollgate_read_errors_total") == 0


def test_an_entitled_request_racing_a_denied_ones_read_is_answered_200(gateway, world, db):
    # A denied user's read comes back with no row (exactly like a missing id). A request of an entitled
    # user that arrived while that read was in flight was not part of it: it must be read for itself,
    # not answered 404 because the row "was missing".
    ids = list(range(7000, 7300))
    with db.cursor() as cur:
        cur.execute("INSERT INTO operation_runs (id, workspace_id, tenant_id, type, status) "
                    "SELECT g, 1, 7, 'inventory.sync', 'running' FROM generate_series(7000, 7299) g")
    gw = gateway()
    gw.get("/v1/runs/999999?wait=0", token="tok-eve")  # both tokens looked up before the race
    gw.get("/v1/runs/999999?wait=0", token="tok-alice")
    (ref,) = ManyGets([(gw.url + "/v1/runs/999999?wait=0", bearer("tok-eve"))]).start().results()
    ref404 = comparable(ref)
    reqs = []
    for i in ids:  # eve (another workspace) first, alice right behind her, for every run
        reqs += [(gw.url + f"/v1/runs/{i}?wait=0", bearer("tok-eve")),
                 (gw.url + f"/v1/runs/{i}?wait=0", bearer("tok-alice"))]
    for rnd in ("alice has no verdict yet", "alice's verdict is cached"):
        # The second round: alice's verdict on every run is fresh (cached from the first), and idle when
        # eve's read goes out — that read does not keep the row for her, so it tells nothing about her.
        rs = ManyGets(reqs, timeout=60, connect_concurrency=50).start().results()
        eve, alice = rs[0::2], rs[1::2]
        assert all(comparable(r) == ref404 for r in eve), (rnd, sorted({r.status for r in eve}))
        bad = [(i, r.status) for i, r in zip(ids, alice) if r.status != 200]
        assert not bad, f"{rnd}: {len(bad)} entitled requests not answered 200: {bad[:10]}"


HUGE_RUNS_OTHER_WS = range(2_000_000, 2_000_005)      # another workspace
HUGE_RUNS_LOCKED_TENANT = range(3_000_000, 3_000_005)  # alice's workspace, a tenant she is not in
MISSING_RUNS = range(4_000_000, 4_000_005)


def _huge_world(db):
    make_demo_world(db)
    with db.cursor() as cur:
        cur.execute("INSERT INTO tenants (id, workspace_id, name) VALUES (11, 1, 'locked')")
        # ~1 MB of incompressible JSON per run.
        big = "jsonb_build_object('errors', (SELECT jsonb_agg(md5(g::text || r.x::text)) FROM generate_series(1, 30000) g))"
        for ids, ws, tenant in ((HUGE_RUNS_OTHER_WS, 2, 9), (HUGE_RUNS_LOCKED_TENANT, 1, 11)):
            cur.execute(f"INSERT INTO operation_runs (id, workspace_id, tenant_id, type, status, failure_summary) "
                        f"SELECT r.x, %s, %s, 'inventory.sync', 'running', {big} "
                        f"FROM generate_series(%s, %s) AS r(x)", (ws, tenant, ids.start, ids.stop - 1))
        cur.execute("SELECT min(pg_column_size(failure_summary)) FROM operation_runs")
        assert cur.fetchone()[0] > 500_000
        cur.execute("ANALYZE")


def test_a_forbidden_huge_row_costs_what_a_missing_id_costs(gateway, db, notes):
    _huge_world(db)
    gw = gateway(log_level="info")
    rng = random.Random(9)
    classes = {
        "missing": [f"/v1/runs/{i}?wait=0" for i in MISSING_RUNS] * 20,
        "other-workspace-1MB": [f"/v1/runs/{i}?wait=0" for i in HUGE_RUNS_OTHER_WS] * 20,
        "locked-tenant-1MB": [f"/v1/runs/{i}?wait=0" for i in HUGE_RUNS_LOCKED_TENANT] * 20,
    }
    order = [(name, p) for name, paths in classes.items() for p in paths]
    rng.shuffle(order)
    times = {name: [] for name in classes}
    answers = set()
    with KeepAlive(gw.url) as c:
        for p in (f"/v1/runs/{MISSING_RUNS.start - 1}?wait=0", f"/v1/runs/{HUGE_RUNS_OTHER_WS.start}?wait=0") * 5:
            c.get(p, headers=bearer("tok-alice"))  # warm-up: token, statements, connection
        rows = metric(gw, "pollgate_reread_rows_total", kind="run")
        for name, p in order:
            r = c.get(p, headers=bearer("tok-alice"))
            times[name].append(r.elapsed)
            answers.add(repr(comparable(r)))
    assert len(answers) == 1 and "404" in next(iter(answers)), answers
    med = {k: statistics.median(v) for k, v in times.items()}
    line = "forbidden 1 MB rows vs missing ids: medians " + ", ".join(f"{k} {v * 1000:.3f} ms" for k, v in med.items())
    print(line)
    notes(line)
    # Deterministic half: not one row came back for any of them (a denied row carries nothing).
    assert metric(gw, "pollgate_reread_rows_total", kind="run") == rows, "rows came back for denied ids"
    for other in ("other-workspace-1MB", "locked-tenant-1MB"):
        a, b = med["missing"], med[other]
        margin = max(0.001, 0.25 * max(a, b))
        assert abs(a - b) < margin, f"{other} {b * 1000:.3f} ms vs missing {a * 1000:.3f} ms (margin {margin * 1000:.3f} ms)"


# ---- Hole 4: walking forbidden ids keeps nothing ---------------------------------------------------------

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def is_asan_build():
    return b"__asan_init" in helpers.pollgate_bin().read_bytes()


def _walk(gw, ids, token, workers=8):
    """GET every id once (?wait=0) from `workers` keep-alive connections; returns the statuses seen."""
    chunks = [ids[k::workers] for k in range(workers)]
    seen = [set() for _ in chunks]

    def run(k):
        with KeepAlive(gw.url) as c:
            for i in chunks[k]:
                seen[k].add(c.get(f"/v1/runs/{i}?wait=0", headers=bearer(token)).status)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return set().union(*seen)


def test_walking_10000_forbidden_ids_leaves_nothing_behind(gateway, world, db, notes):
    n = 10_000
    with db.cursor() as cur:  # terminal runs of another workspace: the kind a watch would linger on
        cur.execute("INSERT INTO operation_runs (id, workspace_id, tenant_id, type, status, outcome, summary_counts,"
                    " failure_summary) SELECT 5000000 + g, 2, 9, 'inventory.sync', 'completed', 'failed',"
                    " '{\"total\": 10, \"processed\": 10}', jsonb_build_object('why', repeat(md5(g::text), 8))"
                    " FROM generate_series(0, %s) g", (3 * n,))
        cur.execute("ANALYZE operation_runs")
    env = {"ASAN_OPTIONS": "quarantine_size_mb=1"} if is_asan_build() else None  # see test_faults' churn test
    gw = gateway(terminal_linger="10m", log_level="info", env=env)
    assert gw.get("/v1/runs/5000000?wait=0", token="tok-eve").status == 200  # they exist, and are terminal
    watches = lambda: metric(gw, "pollgate_watches", kind="run")  # noqa: E731
    wait_for(lambda: watches() == 1, what="eve's cached terminal run")
    rss = []
    for rnd in range(3):  # round 1 warms the allocators and hash tables; later rounds must not grow
        ids = list(range(5_000_001 + rnd * n, 5_000_001 + (rnd + 1) * n))
        assert _walk(gw, ids, "tok-alice") == {404}
        wait_for(lambda: watches() == 1 and metric(gw, "pollgate_waiters_pending") == 0, timeout=10,
                 what=f"round {rnd + 1}: no watch kept for a forbidden id")
        rss.append(rss_kb(gw.pid))
    growth = rss[2] - rss[0]
    msg = f"10,000 forbidden ids x 3 rounds: RSS {rss} kB (round 3 - round 1 = {growth:+d} kB), watches back to 1"
    print(msg)
    notes(msg)
    assert growth <= max(2048, rss[0] // 20), f"RSS grew {growth} kB over two rounds of forbidden ids: {rss}"
