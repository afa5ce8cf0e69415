"""Operating the daemon: the command line, config checking, reload, drain, and start-up without a database.

These are what an operator meets first (fixed-points.md "Build and run" and "Config file").
"""

import re
import signal
import socket
import subprocess
import time

import pytest

from helpers import ManyGets, make_demo_world, make_run, set_run, wait_for
from conftest import gateway_binary


@pytest.fixture
def world(db):
    return make_demo_world(db)


def run_binary(*args, timeout=20):
    return subprocess.run([str(gateway_binary()), *args], capture_output=True, text=True, timeout=timeout)


# ---- command line ----

def test_version_flag():
    r = run_binary("--version")
    assert r.returncode == 0 and re.match(r"^pollgate \d+\.\d+\.\d+", r.stdout)


def test_unknown_flag_is_a_usage_error():
    r = run_binary("--frobnicate")
    assert r.returncode == 2 and "usage" in r.stderr


def test_check_config_accepts_the_sample_config():
    r = run_binary("--check-config", "-c", "conf/pollgate.conf")
    assert r.returncode == 0, r.stderr


def test_check_config_reports_every_error_as_file_line_message(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("# a comment\n"
                   "max_wait = 5\n"              # 2: no unit
                   "listen = 127.0.0.1:8080\n"
                   "no_such_key = 1\n"           # 4: unknown key
                   "default_wait = 10parsecs\n"  # 5: bad unit
                   "max_waiters = -3\n"          # 6: bad number
                   "this line has no equals\n")  # 7: syntax
    r = run_binary("--check-config", "-c", str(bad))
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.startswith(str(bad) + ":")]
    got = {int(l.split(":")[1]) for l in lines if l.split(":")[1].isdigit()}
    assert {2, 4, 5, 6, 7} <= got, r.stderr
    for l in lines:
        if l.split(":")[1].isdigit():
            assert re.match(re.escape(str(bad)) + r":\d+: \S", l), l


def test_check_config_of_a_missing_file_fails(tmp_path):
    r = run_binary("--check-config", "-c", str(tmp_path / "nope.conf"))
    assert r.returncode != 0 and "nope.conf" in r.stderr


def test_bad_config_refuses_to_start(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("max_wait = forever\n")
    r = run_binary("-c", str(bad))
    assert r.returncode != 0 and f"{bad}:1:" in r.stderr


def test_listen_address_in_use_is_a_clear_start_up_error(gateway, world, tmp_path, pg):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        conf = tmp_path / "p.conf"
        conf.write_text(f"listen = 127.0.0.1:{port}\ndatabase = {pg.uri}\n")
        r = run_binary("-c", str(conf))
        assert r.returncode != 0 and "listen" in r.stderr
    finally:
        taken.close()


# ---- database sessions ----

def test_sessions_are_named_for_operators(gateway, world, pg):
    gateway(db_pool_size=3)
    assert len(pg.backends("pollgate-listen")) == 1
    wait_for(lambda: len(pg.backends("pollgate")) == 3, what="three query connections named pollgate")


def test_starts_without_a_database_and_becomes_ready_when_it_appears(gateway, world, pg, db):
    make_run(db, 1, 7, id=42, status="running")
    pg.stop()
    try:
        gw = gateway(wait_ready=False, db_reconnect_min="50ms", db_reconnect_max="300ms")
        r = gw.get("/readyz")
        assert r.status == 503 and r.headers.get("Retry-After")
        r = gw.get("/v1/runs/42?wait=0", token="tok-alice", timeout=5)
        assert r.status == 503 and r.json()["error"]["code"] == "unavailable" and r.elapsed < 2
    finally:
        pg.start()
    wait_for(lambda: gw.get("/readyz").status == 200, timeout=20, what="ready after the database came up")
    assert gw.get("/v1/runs/42?wait=0", token="tok-alice").status == 200


# ---- reload ----

def test_sighup_applies_a_good_config_without_touching_held_requests(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway(max_wait="30s", default_wait="30s")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = ManyGets([(gw.url + "/v1/runs/42?wait=30", {"Authorization": "Bearer tok-alice", "If-None-Match": etag})],
                  timeout=40).start()
    mg.wait_sent()
    wait_for(lambda: gw.metrics().value("pollgate_waiters_held", kind="run") == 1, what="held")
    gw.reload(max_wait="1s", default_wait="1s")
    gw.wait_log(r"config reloaded")
    # New requests see the new cap ...
    r = gw.get("/v1/runs/42?wait=30", token="tok-alice", etag=etag, timeout=10)
    assert r.status == 304 and r.elapsed < 5
    # ... while the one already held is still held, and still woken by a change.
    assert gw.metrics().value("pollgate_waiters_held", kind="run") == 1
    set_run(db, 42, summary_counts={"after": "reload"})
    (held,) = mg.results()
    assert held.status == 200 and held.json()["run"]["summary_counts"] == {"after": "reload"}


def test_sighup_with_a_bad_config_keeps_the_old_one_and_says_why(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway(max_wait="2s", default_wait="2s")
    gw.reload_text("max_wait = banana\nlisten = nowhere\n")
    gw.wait_log(r"reload failed")
    log = gw.log()
    assert re.search(r"gateway1\.conf:1: ", log), "the error carries FILE:LINE"
    assert gw.running
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    r = gw.get("/v1/runs/42?wait=30", token="tok-alice", etag=etag, timeout=10)
    assert r.status == 304 and 1.5 < r.elapsed < 6, "the old max_wait (2s) still applies"


def test_sighup_reports_keys_that_need_a_restart(gateway, world):
    gw = gateway(db_pool_size=2)
    gw.reload(db_pool_size=4)
    gw.wait_log(r"needs a restart.*db_pool_size")


# ---- drain ----

def test_sigterm_answers_every_held_request_with_connection_close_and_exits_0(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running")
    make_run(db, 1, 7, id=43, status="queued")
    gw = gateway(max_waiters_per_principal=1000, max_waiters_per_client=1000)
    e42 = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    e43 = gw.get("/v1/runs/43?wait=0", token="tok-alice").etag
    n = 300
    reqs = [(gw.url + f"/v1/runs/{42 if i % 2 else 43}?wait=55",
             {"Authorization": "Bearer tok-alice", "If-None-Match": e42 if i % 2 else e43}) for i in range(n)]
    mg = ManyGets(reqs, timeout=60).start()
    mg.wait_sent()
    wait_for(lambda: gw.metrics().value("pollgate_waiters_held", kind="run") == n, timeout=30, what="all held")
    gw.send_signal(signal.SIGTERM)
    rs = mg.results(timeout=30)
    assert [r.status for r in rs] == [304] * n
    assert all(r.headers.get("Connection", "").lower() == "close" for r in rs)
    assert all(r.elapsed < 55 for r in rs)
    assert gw.stop(timeout=15) == 0
    assert "drained" in gw.log()


def test_after_drain_starts_the_port_refuses_new_connections(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway(drain_timeout="5s")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = ManyGets([(gw.url + "/v1/runs/42?wait=30", {"Authorization": "Bearer tok-alice", "If-None-Match": etag})],
                  timeout=40).start()
    mg.wait_sent()
    wait_for(lambda: gw.metrics().value("pollgate_waiters_held", kind="run") == 1, what="held")
    gw.send_signal(signal.SIGTERM)
    (r,) = mg.results(timeout=20)
    assert r.status == 304
    assert gw.stop(timeout=15) == 0
    with pytest.raises(OSError):
        socket.create_connection((gw.host, gw.port), timeout=2).close()


@pytest.mark.parametrize("together", [False, True], ids=["one-after-another", "in-one-loop-turn"])
def test_a_second_stop_signal_during_the_drain_still_answers_everyone_and_exits_0(gateway, world, db, together):
    # A second stop signal cuts the drain short, but what the drain promised still holds: every held
    # request gets its current answer (304, the same ETag) with Connection: close, then exit 0. With
    # `together`, the gateway is stopped while SIGTERM and SIGINT arrive (two signals, both pending), so
    # it sees both in one turn of its loop, before any answer of the first is written.
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway()
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = ManyGets([(gw.url + "/v1/runs/42?wait=30", {"Authorization": "Bearer tok-alice", "If-None-Match": etag})] * 20,
                  timeout=40).start()
    mg.wait_sent()
    wait_for(lambda: gw.metrics().value("pollgate_waiters_held", kind="run") == 20, what="held")
    if together:
        gw.send_signal(signal.SIGSTOP)
        try:
            gw.send_signal(signal.SIGTERM)
            gw.send_signal(signal.SIGINT)
        finally:
            gw.send_signal(signal.SIGCONT)
    else:
        for _ in range(3):
            gw.send_signal(signal.SIGTERM)
    gw.proc.wait(15)
    assert gw.stop() == 0
    rs = mg.results(timeout=20)
    assert [(r.status, r.headers.get("Connection", "").lower()) for r in rs] == [(304, "close")] * 20, \
        sorted({(r.status, repr(r.error)) for r in rs})
    assert all(r.etag == etag for r in rs)


def test_a_second_stop_signal_answers_the_requests_still_waiting_for_a_read_503(gateway, world, db, pg):
    # Requests whose read is stuck (a lock holds operation_runs) keep the drain waiting; a second stop
    # signal ends it: they get 503 with Retry-After and Connection: close, written before the exit.
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway(drain_timeout="60s", db_query_timeout="60s")
    gw.get("/v1/runs/42?wait=0", token="tok-alice")  # the token is known: only the run read is left
    locker = pg.connect(autocommit=False)
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE operation_runs IN ACCESS EXCLUSIVE MODE")
        mg = ManyGets([(gw.url + "/v1/runs/42?wait=30", {"Authorization": "Bearer tok-alice"})] * 5, timeout=40).start()
        mg.wait_sent()
        wait_for(lambda: gw.metrics().value("pollgate_waiters_pending") == 5, what="5 waiting for the read")
        gw.send_signal(signal.SIGTERM)
        gw.wait_log("draining")
        assert gw.running  # the drain waits for the stuck read
        t0 = time.monotonic()
        gw.send_signal(signal.SIGTERM)
        rs = mg.results(timeout=20)
        gw.proc.wait(15)
        took = time.monotonic() - t0
    finally:
        locker.rollback()
        locker.close()
    assert gw.stop() == 0
    assert [(r.status, r.headers.get("Connection", "").lower()) for r in rs] == [(503, "close")] * 5, \
        sorted({(r.status, repr(r.error)) for r in rs})
    assert all(r.headers.get("Retry-After") and r.json()["error"]["code"] == "unavailable" for r in rs)
    assert took < 5, f"exit {took:.2f}s after the second signal"


# ---- limits ----

def _hold_n(gw, token, etag, n, wait=20):
    mg = ManyGets([(gw.url + f"/v1/runs/42?wait={wait}", {"Authorization": f"Bearer {token}", "If-None-Match": etag})] * n,
                  timeout=wait + 20).start()
    mg.wait_sent()
    return mg


def test_global_cap_on_held_waiters_is_503_with_retry_after(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway(max_waiters=3, retry_after="7s")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = _hold_n(gw, "tok-alice", etag, 3, wait=2)
    wait_for(lambda: gw.metrics().value("pollgate_waiters_held", kind="run") == 3, what="3 held")
    r = gw.get("/v1/runs/42?wait=20", token="tok-bob", etag=etag, timeout=5)
    assert r.status == 503 and r.headers.get("Retry-After") == "7" and r.json()["error"]["code"] == "unavailable"
    # Not an error for a request that is answered at once.
    assert gw.get("/v1/runs/42?wait=0", token="tok-bob").status == 200
    assert {x.status for x in mg.results()} == {304}


def test_per_principal_and_per_client_caps_are_429_with_retry_after(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway(max_waiters_per_principal=2, max_waiters_per_client=3)
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    mg = _hold_n(gw, "tok-alice", etag, 2, wait=2)
    wait_for(lambda: gw.metrics().value("pollgate_waiters_held", kind="run") == 2, what="2 held")
    r = gw.get("/v1/runs/42?wait=20", token="tok-alice", etag=etag, timeout=5)
    assert r.status == 429 and r.headers.get("Retry-After") and r.json()["error"]["code"] == "too_many_waiters"
    mg2 = _hold_n(gw, "tok-bob", etag, 1, wait=2)      # another user, same client address: 3rd is allowed
    wait_for(lambda: gw.metrics().value("pollgate_waiters_held", kind="run") == 3, what="3 held")
    r = gw.get("/v1/runs/42?wait=20", token="tok-bob", etag=etag, timeout=5)   # 4th from this client
    assert r.status == 429
    assert {x.status for x in mg.results() + mg2.results()} == {304}


def test_a_request_that_never_finishes_its_headers_is_dropped(gateway, world):
    gw = gateway(header_timeout="1s")
    s = socket.create_connection((gw.host, gw.port))
    s.sendall(b"GET /v1/runs/42 HTTP/1.1\r\nHost: x\r\n")  # and nothing more
    s.settimeout(10)
    t0 = time.monotonic()
    try:
        data = s.recv(4096)
        while data:
            data = s.recv(4096)
    except ConnectionResetError:
        pass
    took = time.monotonic() - t0
    s.close()
    assert took < 5, f"connection still open after {took:.1f}s"
    assert gw.get("/healthz").status == 200


def test_listens_on_ipv6_loopback(gateway, world):
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    gw = gateway(listen=f"[::1]:{port}")
    assert gw.get("/healthz").status == 200
