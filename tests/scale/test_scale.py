"""Several gateways on one PostgreSQL, behind a real HAProxy and a real nginx (docs/scale-out.md).

One PostgreSQL primary (the session cluster), three pollgate processes (each its own config, port and
log, started by the integration suite's `gateway` factory), and in front of them the shipped
conf/haproxy.cfg or conf/nginx.conf, rendered as tests/integration/test_proxy.py renders it, with its one
`server` line turned into three. The clients are browser-like (tests/scale/browsers.py): each long-polls
on a keep-alive connection, re-polls with the ETag of its last 200, honours Retry-After, backs off on
network errors, and checks every answer: the ETag is recomputed from the body bytes, and the run's
version (summary_counts.processed, which the tests' writer only ever increases) must never go back.
They connect from 64 loopback addresses, so the gateways' per-client caps see many clients, as with
browsers (the proxies are trusted_proxies; X-Forwarded-For carries the client's address).

What is asserted:
  - a change reaches every waiter on every instance within a second of the commit (the bound
    tests/integration/test_longpoll.py uses);
  - revocation of a membership answers that user's held requests on every instance within a second,
    and nobody else's;
  - the ETag is the body's digest, computed here, and the same on every instance and after a restart;
  - a draining gateway refuses new connections and answers /readyz (on a kept-alive connection) 503;
  - kill -9 of one instance with 1,000 held behind each proxy: every client ends at the right answer for
    its ETag (the changed runs' clients get the new state, the others stay held, now on the survivors),
    no answer older than the client's ETag, no change lost, each of the dead instance's clients sees at
    most one error (in practice none: the proxies re-send the cut request elsewhere), and the proxy
    takes the dead instance out within DEAD_OUT_BOUND (measured, printed in the notes);
  - a rolling restart (SIGTERM, drain, restart, one instance after the other) under 3,000 clients and a
    writer changing runs twice a second: zero errors at the clients (every request answered 200 or
    304, none 5xx, none cut), no stale answer, no change lost.

Run with `make test-scale` (the release ./pollgate; POLLGATE_BIN overrides).
"""

import random
import re
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from browsers import Pool, etag_of
from helpers import (KeepAlive, ManyGets, Raw, bearer, http, make_principal, make_run, make_tenant, make_workspace, wait_for)
from test_proxy import (HAPROXY_CFG, Proxy, _start_proxy, find_program, proxy_timeout,
                        render_haproxy_cfg, render_nginx_conf, substitute)

USERS = 100
SOURCES = [f"127.0.1.{i}" for i in range(1, 65)]
NOTIFY_BOUND = 1.0       # s from COMMIT to the last waiter's answer (test_longpoll's bound)
REVOKE_BOUND = 1.0
DEAD_OUT_BOUND = 5.0     # s from kill -9 to the proxy taking the instance out (measured: see the notes)
PROXIES = ["haproxy", "nginx"]


# --------------------------------------------------------------------------------------------------
# The world: one workspace and tenant, USERS members with tokens tok-1..tok-USERS, running runs.


class Runs:
    """Running runs 1..n whose summary_counts.processed is the version the clients check."""

    def __init__(self, conn, n):
        self.conn = conn
        self.ids = list(range(1, n + 1))
        for i in self.ids:
            # started an hour ago: the steady poll tier, so the representation changes only with the version
            # (a young run's poll.interval_ms steps up at 10 s and 60 s of age, answering every waiter once)
            make_run(conn, 1, 1, id=i, status="running", summary_counts={"total": 1000000, "processed": 0},
                     started_at=Raw("now() - interval '1 hour'"))
        self.version = {i: 0 for i in self.ids}
        self.changed_at = {i: time.monotonic() for i in self.ids}
        self.lock = threading.Lock()

    def bump(self, ids, conn=None):
        """processed + 1 on `ids` in one transaction; returns time.monotonic() just after the COMMIT."""
        with (conn or self.conn).cursor() as cur:
            cur.execute("UPDATE operation_runs SET summary_counts = jsonb_build_object('total', 1000000, "
                        "'processed', (summary_counts->>'processed')::int + 1) WHERE id = ANY(%s) "
                        "RETURNING id, (summary_counts->>'processed')::int", (list(ids),))
            rows = cur.fetchall()
        t = time.monotonic()
        with self.lock:
            for i, v in rows:
                self.version[i] = v
                self.changed_at[i] = t
        return t

    def current(self):
        with self.lock:
            return dict(self.version)


@pytest.fixture
def world(db):
    make_workspace(db, id=1, name="Scale")
    make_tenant(db, 1, id=1, name="Scale tenant")
    for u in range(1, USERS + 1):
        make_principal(db, f"tok-{u}", 1, tenant_ids=(1,), role="member", user_id=u)
    return db


def token(i):
    return f"tok-{1 + i % USERS}"


def held(gw):
    return gw.metrics().value("pollgate_waiters_held")


@pytest.fixture
def trio(gateway):
    """Three gateways configured for a proxy in front (trusted, proxy_timeout = its read timeout)."""
    def start(n=3, **conf):
        full = {"trusted_proxies": "127.0.0.1/32", "proxy_timeout": proxy_timeout(HAPROXY_CFG), "log_level": "info"}
        full.update(conf)
        return [gateway(**full) for _ in range(n)]
    return start


@pytest.fixture
def front(tmp_path):
    """Factory: front(kind, gateways) -> Proxy running the shipped config in front of every gateway."""
    started = []

    def start(kind, gws):
        binary = find_program(kind)
        ports = [g.port for g in gws]

        def make(d, port):
            if kind == "haproxy":
                text = render_haproxy_cfg(d, port, ports[0])
                text = substitute(text, rf"^(\s*)server\s+pollgate1\s+127\.0\.0\.1:{ports[0]}(.*)$",
                                  lambda m: "\n".join(f"{m.group(1)}server pollgate{i + 1} 127.0.0.1:{p}{m.group(2)}"
                                                      for i, p in enumerate(ports)), "server line")
                # Log only what went wrong or was retried (thousands of clients), on stderr as before.
                text = substitute(text, r"^(\s*)option httplog", r"\g<1>option httplog\n\g<1>option dontlog-normal",
                                  "httplog")
                cfg = d / "haproxy.cfg"
                cfg.write_text(text)
                check = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, text=True)
                assert check.returncode == 0, f"haproxy -c refused the rendered example:\n{check.stdout}{check.stderr}"
                return Proxy("haproxy", [binary, "-db", "-f", str(cfg)], port, d, None, None)
            text = render_nginx_conf(d, port, ports[0], overrides={"access_log": "off"})
            text = substitute(text, rf"^(\s*)server\s+127\.0\.0\.1:{ports[0]};",
                              lambda m: "\n".join(f"{m.group(1)}server 127.0.0.1:{p};" for p in ports), "servers")
            text = substitute(text, r"^(\s*)# least_conn;", r"\g<1>least_conn;", "least_conn")
            conf = d / "nginx.conf"
            conf.write_text(text)
            argv = [binary, "-p", f"{d}/", "-e", f"{d}/error.log", "-c", str(conf), "-g", "daemon off;"]
            check = subprocess.run([binary, "-t", "-p", f"{d}/", "-e", f"{d}/error.log", "-c", str(conf)],
                                   capture_output=True, text=True)
            assert check.returncode == 0, f"nginx -t refused the rendered example:\n{check.stdout}{check.stderr}"
            return Proxy("nginx", argv, port, d, d / "error.log", None)

        p = _start_proxy(tmp_path, kind, make)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def taken_out(proxy, gws, gw):
    """The proxy's own log line saying it took `gw` out (HAProxy: the server is DOWN; nginx: the
    upstream is temporarily disabled after max_fails), or None."""
    text = proxy.log()
    if proxy.kind == "haproxy":
        return re.search(rf"Server pollgate/pollgate{gws.index(gw) + 1} is DOWN[^\n]*", text)
    return re.search(rf"upstream server temporarily disabled[^\n]*127\.0\.0\.1:{gw.port}[^\n]*", text)


class OutWatch:
    """From now on, polls the proxy's log every 10 ms for taken_out(); .after is the seconds from the
    start to the first poll that saw it (an upper bound, to within 10 ms plus the log write), .line it."""

    def __init__(self, proxy, gws, gw):
        self.t0 = time.monotonic()
        self.after = self.line = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(proxy, gws, gw), daemon=True)
        self._thread.start()

    def _run(self, proxy, gws, gw):
        while not self._stop.is_set():
            m = taken_out(proxy, gws, gw)
            if m:
                self.after, self.line = time.monotonic() - self.t0, m.group(0)
                return
            time.sleep(0.01)

    def wait(self, timeout):
        self._thread.join(timeout)
        self._stop.set()
        assert self.after is not None, f"the proxy did not take the instance out within {timeout}s"
        return self.after


def assert_clean(pool, what):
    t = pool.totals()
    assert t["stale"] == 0 and t["bad_etag"] == 0, f"{what}: {t}; {pool.error_samples()}"
    return t


# --------------------------------------------------------------------------------------------------
# Every instance hears every change


def test_a_change_reaches_every_waiter_on_every_instance_within_a_second(world, trio, notes):
    runs = Runs(world, 10)
    gws = trio()
    per = 200
    specs = [(1 + i % 10, token(i), gws[i % 3].port) for i in range(per * 3)]
    pool = Pool("127.0.0.1", None, specs, wait=50).start()
    try:
        pool.wait_versions(runs.current(), 60, "first answers")
        wait_for(lambda: [held(g) for g in gws] == [per] * 3, timeout=30, what=f"{per} held on each instance")
        t_commit = runs.bump(runs.ids)
        pool.wait_versions(runs.current(), 10, "the change")
        lat = [max(c.version_at for c in pool.clients if c.port == g.port) - t_commit for g in gws]
        notes(f"{per * 3} waiters on 3 instances, one commit: last answer per instance "
              + ", ".join(f"{x * 1000:.0f} ms" for x in lat))
        assert max(lat) < NOTIFY_BOUND, f"last answers {lat} s after the commit"
    finally:
        pool.stop()
    assert_clean(pool, "notify")
    assert pool.totals()["errors"] == 0, pool.error_samples()


def test_revoking_a_membership_reaches_held_requests_on_every_instance_within_a_second(world, trio, notes):
    Runs(world, 1)
    gws = trio()
    per = 30
    # user 1 loses access; user 2 (same run) keeps it and must stay held
    specs = [(1, "tok-1" if i % 2 == 0 else "tok-2", gws[(i // 2) % 3].port) for i in range(per * 2 * 3)]
    pool = Pool("127.0.0.1", None, specs, wait=50).start()
    try:
        pool.wait_versions({1: 0}, 30, "first answers")
        wait_for(lambda: [held(g) for g in gws] == [2 * per] * 3, timeout=30, what="held on each instance")
        with world.cursor() as cur:
            cur.execute("DELETE FROM workspace_memberships WHERE user_id = 1")
        t0 = time.monotonic()
        victims = [c for c in pool.clients if c.token == "tok-1"]
        wait_for(lambda: all(c.done_status for c in victims), timeout=10, what="user 1's requests answered")
        assert {c.done_status for c in victims} == {404}
        lat = [max(c.done_at for c in victims if c.port == g.port) - t0 for g in gws]
        notes("revocation, last 404 per instance: " + ", ".join(f"{x * 1000:.0f} ms" for x in lat))
        assert max(lat) < REVOKE_BOUND, lat
        assert [held(g) for g in gws] == [per] * 3
        assert not any(c.done_status for c in pool.clients if c.token == "tok-2")
    finally:
        pool.stop()
    assert_clean(pool, "revocation")


# --------------------------------------------------------------------------------------------------
# The ETag is a function of the representation alone


def test_etag_is_the_body_digest_on_every_instance_and_after_a_restart(world, trio):
    make_run(world, 1, 1, id=1, status="running", summary_counts={"total": 10, "processed": 3})
    make_run(world, 1, 1, id=2, status="completed", outcome="succeeded", summary_counts={"total": 10, "processed": 10},
             completed_at="2026-01-02T03:04:05Z")
    make_run(world, 1, None, id=3, status="queued", context={"b": [1, 2], "a": "é"})
    gws = trio()

    def answers():
        out = {}
        for run in (1, 2, 3):
            rs = [g.get(f"/v1/runs/{run}?wait=0", token="tok-1") for g in gws]
            for r in rs:
                assert r.status == 200, r
                assert r.etag == etag_of(r.body), f"run {run}: ETag {r.etag} is not the body's digest"
            assert len({r.body for r in rs}) == 1 and len({r.etag for r in rs}) == 1, f"run {run} differs"
            out[run] = (rs[0].body, rs[0].etag)
            # any instance recognises another's ETag
            for g in gws:
                assert g.get(f"/v1/runs/{run}?wait=0", token="tok-1", etag=rs[0].etag).status == 304
        return out

    before = answers()
    for g in gws:  # a restarted instance (a new process) gives the same bytes and ETag
        g.stop()
        g._checked = False
        g.start()
    assert answers() == before


# --------------------------------------------------------------------------------------------------
# Drain: what the proxy sees


def test_a_draining_gateway_refuses_new_connections_and_its_readyz_is_503(world, pg, trio):
    Runs(world, 1)
    (g,) = trio(1, drain_timeout="20s")
    ka = KeepAlive(g.url)
    assert ka.get("/readyz").status == 200
    # A request whose read cannot finish (the table is locked) keeps the drain going while we look.
    locker = pg.connect(autocommit=False)
    with locker.cursor() as cur:
        cur.execute("LOCK TABLE operation_runs IN ACCESS EXCLUSIVE MODE")
    mg = ManyGets([(g.url + "/v1/runs/1?wait=0", bearer("tok-1"))], timeout=30).start()
    mg.wait_sent()
    wait_for(lambda: g.metrics().value("pollgate_waiters_pending") >= 1, what="the read pending")
    g.send_signal(signal.SIGTERM)
    g.wait_log(r"draining")
    r = ka.get("/readyz")
    assert r.status == 503 and r.headers.get("Connection", "").lower() == "close", r
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((g.host, g.port), timeout=2).close()
    locker.rollback()
    (answer,) = mg.results()
    assert answer.status == 200, answer
    assert g.stop(timeout=20) == 0


def test_a_busy_gateway_takes_a_reconnect_storm_into_its_accept_queue(world, trio):
    """When one gateway drains or dies, its browsers' re-polls reach the others as a burst of new
    connections within milliseconds (behind nginx, ~1,000 upstream connects at once in the rolling
    restart). Connections the gateway has not accept()ed yet wait in the listen backlog; past it the
    kernel drops the SYNs and the clients retry only 1, 3, 7 s later (a late answer, or a 504 from the
    proxy's connect timeout). With the gateway frozen (SIGSTOP: nothing is accepted), every one of a
    burst of 1,000 connects must still complete: the backlog is the kernel's maximum, not 128."""
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    if somaxconn < 1024:
        pytest.skip(f"net.core.somaxconn is {somaxconn}: the kernel caps every backlog below the burst")
    (g,) = trio(1)
    n = 1000
    socks = []
    g.send_signal(signal.SIGSTOP)
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((g.host, g.port))
            socks.append(s)
        pending = set(socks)
        deadline = time.monotonic() + 0.8  # well inside the first SYN retransmission (1 s)
        while pending and time.monotonic() < deadline:
            _, ready, _ = select.select([], list(pending), [], 0.05)
            for s in ready:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    pending.discard(s)
        connected = n - len(pending)
    finally:
        g.send_signal(signal.SIGCONT)
        for s in socks:
            s.close()
    assert connected == n, f"{connected} of {n} connections completed while the gateway was busy"
    assert g.get("/readyz").status == 200


# --------------------------------------------------------------------------------------------------
# kill -9 of one instance with 1,000 held


@pytest.mark.parametrize("kind", PROXIES)
def test_kill_9_of_one_instance_with_1000_held(kind, world, trio, front, notes):
    runs = Runs(world, 20)
    gws = trio()
    proxy = front(kind, gws)
    n = 1000
    specs = [(1 + i % 20, token(i)) for i in range(n)]
    pool = Pool("127.0.0.1", proxy.port, specs, wait=50, sources=SOURCES).start()
    try:
        pool.wait_versions(runs.current(), 60, "first answers")
        wait_for(lambda: sum(held(g) for g in gws) == n, timeout=60, what=f"{n} held")
        per = [held(g) for g in gws]
        victim = max(gws, key=held)
        on_victim = per[gws.index(victim)]
        survivors = [g for g in gws if g is not victim]
        before = {c.idx: c.n200 for c in pool.clients}
        errors_before = pool.totals()["errors"]

        t_kill = time.monotonic()
        victim.kill()
        watch = OutWatch(proxy, gws, victim)
        changed = runs.ids[:10]
        runs.bump(changed)
        took = pool.wait_versions(runs.current(), 20, "the change made after the kill")
        wait_for(lambda: sum(held(g) for g in survivors) == n, timeout=30, what=f"all {n} held on the survivors")
        regathered = time.monotonic() - t_kill
        out_after = watch.wait(30)

        # the right answer for each ETag: a 200 with the new state for the changed runs, nothing for the others
        for c in pool.clients:
            got = c.n200 - before[c.idx]
            if c.run in changed:
                assert got >= 1 and c.version == runs.version[c.run], (c.idx, got, c.version, c.errors)
            else:
                assert got == 0, f"client {c.idx} on unchanged run {c.run} got {got} 200s: {c.errors}"
        errors = pool.totals()["errors"] - errors_before
        assert errors <= on_victim, f"{errors} errors for {on_victim} requests held on the dead instance"
        # no change lost afterwards either
        t_commit = runs.bump(runs.ids)
        pool.wait_versions(runs.current(), 10, "a change after the failover")
        after = max(c.version_at for c in pool.clients) - t_commit
        notes(f"{kind}: held {per}, killed the one with {on_victim}; changed runs delivered {took:.2f} s after "
              f"the kill, all {n} held on the survivors after {regathered:.2f} s, client errors {errors}; "
              f"taken out within {out_after:.2f} s ({watch.line[:100]!r}); next change to all in {after * 1000:.0f} ms")
        assert out_after < DEAD_OUT_BOUND, f"{kind} took {out_after:.2f} s to take the dead instance out"
    finally:
        pool.stop()
    assert_clean(pool, f"{kind} kill -9")


def test_haproxy_health_check_alone_takes_an_idle_dead_instance_out(world, trio, front, notes):
    """With no traffic to notice it, the health check (inter 1s fall 2) must find a dead instance."""
    Runs(world, 1)
    gws = trio()
    proxy = front("haproxy", gws)
    victim = gws[2]
    victim.kill()
    watch = OutWatch(proxy, gws, victim)
    after = watch.wait(15)
    notes(f"haproxy, no traffic: dead instance out after {after:.2f} s ({watch.line[:100]!r})")
    assert after < 4.0, f"{after:.2f} s"
    assert "Layer4" in watch.line, watch.line  # the health check's own verdict, not traffic's
    # and the proxy answers from the others
    for _ in range(6):
        r = http("GET", proxy.url + "/v1/runs/1?wait=0", headers=bearer("tok-1"), timeout=10)
        assert r.status == 200, r


# --------------------------------------------------------------------------------------------------
# A rolling restart under 3,000 clients


@pytest.mark.parametrize("kind", PROXIES)
def test_rolling_restart_under_3000_clients_gives_no_errors(kind, world, pg, trio, front, notes):
    runs = Runs(world, 30)
    gws = trio()
    proxy = front(kind, gws)
    n = 3000
    specs = [(1 + i % 30, token(i)) for i in range(n)]
    pool = Pool("127.0.0.1", proxy.port, specs, wait=50, sources=SOURCES).start()
    stop = threading.Event()
    writes = [0]

    def writer():
        conn = pg.connect()
        rnd = random.Random(13)
        while not stop.wait(0.5):
            runs.bump(rnd.sample(runs.ids, 5), conn=conn)
            writes[0] += 1

    w = threading.Thread(target=writer, name="writer", daemon=True)
    timings = []
    try:
        pool.wait_versions(runs.current(), 120, "first answers")
        wait_for(lambda: sum(held(g) for g in gws) == n, timeout=60, what=f"{n} held")
        w.start()
        for g in gws:
            h = held(g)
            t0 = time.monotonic()
            assert g.stop(timeout=30) == 0
            t_stopped = time.monotonic()
            assert "drained" in g.log()
            g._checked = False
            g.start(timeout=30)
            t_ready = time.monotonic()
            wait_for(lambda: held(g) > 0, timeout=40, what=f"{kind} sending long-polls to the restarted {g.name}")
            timings.append((g.name, h, t_stopped - t0, t_ready - t0, time.monotonic() - t0))
            # a few more writes with every instance up before the next one goes (as an operator would
            # wait for the health check): changes keep flowing through the whole restart
            w0 = writes[0]
            wait_for(lambda: writes[0] >= w0 + 4, timeout=30, what="writes between two restarts")
        stop.set()
        w.join(10)
        took = pool.wait_versions(runs.current(), 20, "the last writes after the rolling restart")
    finally:
        stop.set()
        pool.stop()
    bumped = [c for c in pool.clients if runs.version[c.run] > 0]
    lags = sorted(c.version_at - runs.changed_at[c.run] for c in bumped)
    t = assert_clean(pool, f"{kind} rolling restart")
    notes(f"{kind}: {n} clients, {writes[0]} writes, answers 200={t['200']} 304={t['304']} other={t['other']} "
          f"cut={t['cut']}; per instance (held, drained+exited s, ready s, back in service s): "
          + "; ".join(f"{name} {h} {a:.2f}/{b:.2f}/{c:.2f}" for name, h, a, b, c in timings)
          + f"; caught up {took:.2f} s after the last write; last change per run to its clients: "
          f"p50 {lags[len(lags) // 2] * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms")
    assert t["errors"] == 0, f"{kind}: {t['errors']} errors at the clients: {pool.error_samples(8)}"
