"""workers = N: a supervisor and N worker processes on one SO_REUSEPORT address, with whole-server caps,
/metrics, /readyz, reload, drain and restarts (gateway/supervisor.c, gateway/shared.c).

The kernel spreads connections over the workers by a hash of the 4-tuple, so a test that needs both workers
to hold something opens enough connections (16: all on one worker has odds of 2 in 65,536) and checks
pollgate_worker_waiters_held before relying on it. Which worker answers a given request is not chosen:
whole-server answers are checked over many fresh connections.
"""

import os
import re
import signal
import time

import pytest

from helpers import ManyGets, http, make_demo_world, make_run, set_run, wait_for

N = 16  # connections held across the workers


@pytest.fixture
def world(db):
    w = make_demo_world(db)
    make_run(db, 1, 7, id=42, status="running")
    return w


def children(pid):
    """The pids of a process's children (its workers)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def worker_pids(gw):
    """{worker index: pid} from the supervisor's latest "worker started" lines."""
    found = {}
    for m in re.finditer(r'msg="worker started" worker=(\d+) pid=(\d+)', gw.log()):
        found[int(m.group(1))] = int(m.group(2))
    return found


def per_worker_held(gw):
    m = gw.metrics()
    return {int(lab["worker"]): int(v) for n, lab, v in m.series if n == "pollgate_worker_waiters_held"}


def etag_of(gw, token="tok-alice", path="/v1/runs/42"):
    r = gw.get(f"{path}?wait=0", token=token)
    assert r.status == 200, r
    return r.etag


def hold(gw, etag, n, token="tok-alice", wait=30, path="/v1/runs/42"):
    h = {"Authorization": f"Bearer {token}", "If-None-Match": etag}
    mg = ManyGets([(gw.url + f"{path}?wait={wait}", h)] * n, timeout=wait + 20).start()
    mg.wait_sent()
    return mg


def held(gw):
    return gw.metrics().value("pollgate_waiters_held")


def wait_held_on_both(gw, n):
    """Wait until n are held, and check both workers hold some."""
    wait_for(lambda: held(gw) == n, timeout=20, what=f"{n} held")
    by = per_worker_held(gw)
    assert sorted(by) == [0, 1], by
    assert sum(by.values()) == n and all(v > 0 for v in by.values()), \
        f"the kernel put every connection on one worker: {by}"
    return by


def many(gw, path, n=30, token=None):
    """n requests, each on a fresh connection (so both workers answer some)."""
    h = {"Authorization": f"Bearer {token}"} if token else {}
    return [http("GET", gw.url + path, headers=h, timeout=20) for _ in range(n)]


def two(gateway, **conf):
    gw = gateway(workers=2, **conf)
    wait_for(lambda: len(children(gw.pid)) == 2, what="two workers")
    return gw


# ---- processes ----

def test_workers_1_is_one_process_without_a_supervisor(gateway, world):
    gw = gateway(workers=1)
    assert gw.get("/v1/runs/42?wait=0", token="tok-alice").status == 200
    assert children(gw.pid) == []
    assert "role=supervisor" not in gw.log() and "worker=" not in gw.log()


def test_auto_starts_one_worker_per_core_each_with_its_own_sessions(gateway, world, pg):
    cores = os.sysconf("SC_NPROCESSORS_ONLN")
    gw = gateway(workers="auto", db_pool_size=2)
    if cores == 1:
        assert children(gw.pid) == []
        return
    wait_for(lambda: len(children(gw.pid)) == cores, what=f"{cores} workers")
    # workers x (db_pool_size + 1) database sessions, with the usual names
    wait_for(lambda: len(pg.backends("pollgate")) == cores * 2, what="every worker's pool")
    assert len(pg.backends("pollgate-listen")) == cores
    for i in range(cores):
        assert re.search(rf'msg="pollgate started".* worker={i}\b', gw.log()), i


def test_workers_die_with_the_supervisor(gateway, world):
    gw = two(gateway)
    kids = children(gw.pid)
    gw.kill()  # SIGKILL the supervisor: PR_SET_PDEATHSIG stops the workers
    wait_for(lambda: not any(alive(p) for p in kids), timeout=15, what="workers gone with their supervisor")


# ---- caps for the whole server ----

def test_max_waiters_counts_the_held_requests_of_every_worker(gateway, world, db):
    gw = two(gateway, max_waiters=N, max_waiters_per_principal=1000, max_waiters_per_client=1000)
    etag = etag_of(gw)
    mg = hold(gw, etag, N)
    wait_held_on_both(gw, N)
    # Each worker holds fewer than N itself; the cap is the server's: every further request is refused.
    extra = [gw.get("/v1/runs/42?wait=30", token="tok-alice", etag=etag, timeout=10) for _ in range(8)]
    assert [r.status for r in extra] == [503] * 8, extra
    assert all(r.json()["error"]["code"] == "unavailable" for r in extra)
    assert held(gw) == N
    set_run(db, 42, status="completed", outcome="succeeded")
    assert {r.status for r in mg.results()} == {200}
    # every place given back
    wait_for(lambda: held(gw) == 0, what="nothing held")
    assert gw.get("/v1/runs/42?wait=0", token="tok-alice").status == 200


def test_max_waiters_per_principal_counts_every_worker(gateway, world, db):
    gw = two(gateway, max_waiters=1000, max_waiters_per_principal=N, max_waiters_per_client=1000)
    etag = etag_of(gw)
    mg = hold(gw, etag, N)
    wait_held_on_both(gw, N)
    extra = [gw.get("/v1/runs/42?wait=30", token="tok-alice", etag=etag, timeout=10) for _ in range(8)]
    assert [r.status for r in extra] == [429] * 8, extra
    assert all(r.json()["error"]["code"] == "too_many_waiters" for r in extra)
    # another user is not refused: bob can still be held
    bob_etag = etag_of(gw, token="tok-bob")
    other = hold(gw, bob_etag, 1, token="tok-bob", wait=1)
    assert other.results()[0].status == 304
    set_run(db, 42, status="completed", outcome="succeeded")
    assert {r.status for r in mg.results()} == {200}


def test_max_waiters_per_client_counts_every_worker(gateway, world, db):
    gw = two(gateway, max_waiters=1000, max_waiters_per_principal=1000, max_waiters_per_client=N)
    etag = etag_of(gw)
    bob_etag = etag_of(gw, token="tok-bob")
    a = hold(gw, etag, N // 2)
    b = hold(gw, bob_etag, N // 2, token="tok-bob")
    wait_held_on_both(gw, N)
    # alice and bob hold N/2 each from 127.0.0.1: the client is at its cap, whichever worker is asked
    extra = [gw.get("/v1/runs/42?wait=30", token=t, etag=e, timeout=10)
             for t, e in [("tok-alice", etag), ("tok-bob", bob_etag)] * 4]
    assert [r.status for r in extra] == [429] * 8, extra
    set_run(db, 42, status="completed", outcome="succeeded")
    assert {r.status for r in a.results() + b.results()} == {200}


# ---- /metrics and /readyz for the whole server ----

def test_metrics_sum_every_worker_whichever_answers(gateway, world):
    gw = two(gateway, max_waiters_per_principal=1000, max_waiters_per_client=1000)
    base = gw.metrics().value("pollgate_requests_total", route="healthz", status="200")
    assert base == 0
    oks = many(gw, "/healthz", n=40)
    assert all(r.status == 200 for r in oks)

    # counters: every worker's answers, summed, however the scrapes are spread
    def healthz_total():
        return gw.metrics().value("pollgate_requests_total", route="healthz", status="200")
    wait_for(lambda: healthz_total() == 40, what="40 healthz answers counted")
    assert [healthz_total() for _ in range(10)] == [40] * 10

    # gauges summed, plus the per-worker gauge; histograms merged
    etag = etag_of(gw)
    mg = hold(gw, etag, N, wait=2)
    by = wait_held_on_both(gw, N)
    m = gw.metrics()
    assert m.value("pollgate_waiters_held", kind="run") == N
    assert m.value("pollgate_worker_waiters_held") == N and len(by) == 2
    assert m.value("pollgate_db_connections") == 2 * 2  # two workers, db_pool_size 2
    assert m.value("pollgate_listen_up") == 1
    assert m.value("process_open_fds") >= N  # the held sockets live in the workers
    assert {r.status for r in mg.results()} == {304}
    wait_for(lambda: gw.metrics().value("pollgate_hold_duration_seconds_count", reason="timeout") == N,
             what="every worker's expiries in the merged histogram")
    m = gw.metrics()
    assert m.value("pollgate_answers_total", reason="expired") == N
    buckets = [v for n, lab, v in m.series
               if n == "pollgate_hold_duration_seconds_bucket" and lab["reason"] == "timeout"]
    assert buckets == sorted(buckets) and buckets[-1] == N  # cumulative after the merge


def test_readyz_is_503_while_one_workers_listen_session_is_down(gateway, world, pg):
    gw = two(gateway, db_reconnect_min="4s", db_reconnect_max="4s")
    wait_for(lambda: len(pg.backends("pollgate-listen")) == 2, what="two LISTEN sessions")
    assert all(r.status == 200 for r in many(gw, "/readyz", n=10))
    victim = pg.backends("pollgate-listen")[0]
    with pg.connect().cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (victim,))
    wait_for(lambda: http("GET", gw.url + "/readyz", timeout=5).status == 503, what="/readyz 503")
    # whichever worker answers: not ready while one worker's LISTEN is down
    rs = many(gw, "/readyz", n=10)
    assert [r.status for r in rs] == [503] * 10, [r.status for r in rs]
    m = gw.metrics()
    assert sorted(v for n, lab, v in m.series if n == "pollgate_worker_listen_up") == [0, 1]
    assert m.value("pollgate_listen_up") == 0
    # it reconnects by itself, and the server is ready again
    wait_for(lambda: http("GET", gw.url + "/readyz", timeout=5).status == 200, timeout=20, what="ready again")
    assert all(r.status == 200 for r in many(gw, "/readyz", n=10))


# ---- reload and drain of every worker ----

def test_sighup_reloads_every_worker(gateway, world):
    gw = two(gateway)
    assert all(r.status == 200 for r in many(gw, "/metrics", n=20))
    gw.reload(metrics_allow="10.0.0.0/8")  # a reloadable key every worker shows
    wait_for(lambda: len(re.findall(r'msg="config reloaded".* worker=\d', gw.log())) == 2,
             what="both workers reloaded")
    rs = many(gw, "/metrics", n=30)
    assert [r.status for r in rs] == [404] * 30, [r.status for r in rs]


def test_a_bad_file_is_refused_once_by_the_supervisor_and_every_worker_keeps_the_old_config(gateway, world):
    gw = two(gateway, max_waiters_per_principal=1000)
    text = gw.conf_path.read_text()
    gw.reload_text(text + "metrics_allow = 10.0.0.0/8\nmax_wait = 5\n")
    m = gw.wait_log(r'msg="config rejected" error=".*\.conf:\d+: invalid duration .*max_wait.*role=supervisor')
    gw.wait_log(r'msg="reload failed"')
    log = gw.log()
    assert len(re.findall(r'msg="config rejected"', log)) == 1, m.group(0)
    assert not re.search(r'msg="(config reloaded|reload failed)".* worker=', log)
    # every worker kept the old config: metrics_allow was not applied anywhere
    assert all(r.status == 200 for r in many(gw, "/metrics", n=30))
    # and the good file after it reaches them all
    gw.reload_text(text + "metrics_allow = 10.0.0.0/8\n")
    wait_for(lambda: len(re.findall(r'msg="config reloaded".* worker=\d', gw.log())) == 2, what="both reloaded")
    assert all(r.status == 404 for r in many(gw, "/metrics", n=30))


def test_sigterm_drains_every_worker_and_the_supervisor_exits_0(gateway, world):
    gw = two(gateway, max_waiters_per_principal=1000, max_waiters_per_client=1000)
    etag = etag_of(gw)
    mg = hold(gw, etag, N, wait=50)
    wait_held_on_both(gw, N)
    kids = children(gw.pid)
    t0 = time.monotonic()
    gw.send_signal(signal.SIGTERM)
    rs = mg.results()
    assert [r.status for r in rs] == [304] * N, [(r.status, r.error) for r in rs]
    assert all(r.headers.get("connection", "").lower() == "close" for r in rs)
    assert time.monotonic() - t0 < 10
    gw.proc.wait(15)  # the supervisor exits by itself once both workers have
    assert gw.stop() == 0
    assert len(re.findall(r'msg="drained; exiting" worker=\d', gw.log())) == 2
    assert not any(alive(p) for p in kids)


# ---- a worker that dies ----

def test_a_killed_worker_is_restarted_while_the_others_keep_serving(gateway, world, db):
    gw = two(gateway, max_waiters=N, max_waiters_per_principal=1000, max_waiters_per_client=1000)
    etag = etag_of(gw)
    mg = hold(gw, etag, N, wait=50)
    by = wait_held_on_both(gw, N)
    pids = worker_pids(gw)
    victim, survivor = 0, 1
    os.kill(pids[victim], signal.SIGKILL)
    gw.wait_log(rf'msg="worker killed" worker={victim} pid={pids[victim]} signal=9')
    gw.wait_log(rf'msg="worker started" worker={victim} pid=(?!{pids[victim]}\b)\d+')
    wait_for(lambda: gw.metrics().value("pollgate_worker_restarts_total") == 1, what="the restart counted")
    assert alive(pids[survivor])
    # new requests keep succeeding, and the dead worker's places in the caps were given back: the
    # server holds exactly what the survivor holds, and has room for the victim's share again
    assert all(r.status == 200 for r in many(gw, "/healthz", n=20))
    wait_for(lambda: held(gw) == by[survivor], what="only the survivor's held requests counted")
    assert per_worker_held(gw)[victim] == 0
    again = hold(gw, etag, by[victim], wait=50)
    wait_for(lambda: held(gw) == N, what="the victim's share held again")
    # the survivor's held requests were undisturbed: a change answers them (and the new ones) 200
    set_run(db, 42, status="completed", outcome="succeeded")
    rs = mg.results()
    assert sorted(r.status for r in rs) == [0] * by[victim] + [200] * by[survivor], \
        [(r.status, r.error) for r in rs]
    assert {r.status for r in again.results()} == {200}
    assert gw.metrics().value("pollgate_worker_restarts_total") == 1


# ---- database cost ----

def test_a_wake_costs_at_most_one_reread_per_worker(gateway, world, pg, notes, db):
    gw = two(gateway, max_waiters_per_principal=1000, max_waiters_per_client=1000)
    etag = etag_of(gw)
    mg = hold(gw, etag, N)
    wait_held_on_both(gw, N)

    def rereads():
        return sum(s["calls"] for s in pg.statements() if "operation_runs r ON r.id = q.id" in s["query"])
    before = rereads()
    set_run(db, 42, summary_counts={"total": 2, "processed": 1})
    assert {r.status for r in mg.results()} == {200}
    wait_for(lambda: gw.metrics().value("pollgate_answers_total", reason="changed") == N, what="all answered")
    cost = rereads() - before
    notes(f"{N} waiters over 2 workers, one commit: {cost} re-read queries (pg_stat_statements)")
    assert 1 <= cost <= 2, cost
