#!/usr/bin/python3
"""bench/longpoll_bench.py — what a long-poll costs pollgate, measured against a real PostgreSQL.

    make bench                                   (builds ./pollgate, then runs this with the defaults)
    /usr/bin/python3 bench/longpoll_bench.py [--waiters 10000] [--runs 100] [--users 100] [--workers 4]
                                             [--rounds 3] [--browsers 2000] [--duration 20] [--perf]

Two scenarios, one throwaway PostgreSQL 15 cluster (tests/integration/conftest.py's PgCluster) and the
real ./pollgate (release build; $POLLGATE_BIN overrides):

  hold+wake   N long-polls held on R runs (N/R per run, spread over U users), from W client processes.
              Gateway memory per waiter = VmRSS delta / N. Then ONE transaction updates every run; each
              client records when its answer arrived, both as the kernel's receive timestamp of the
              segment (SO_TIMESTAMPNS: when the gateway's write landed, independent of how fast the
              Python client is) and as time.time() once the client has parsed it. Latency = arrival -
              the moment COMMIT returned. The re-reads the wake cost come from /metrics and from
              pg_stat_statements. Repeated --rounds times; between rounds every client re-polls with the
              new ETag, as a browser would, and the re-reads that re-hold cost are counted too.
  query cost  B browsers long-poll R runs for T seconds (each re-polls at once with the ETag it got)
              while a driver updates a random 10 runs every 2 s in one transaction. Every statement the
              gateway's database role ran (pg_stat_statements, by userid) is compared with what browsers
              short-polling PostgreSQL would run: B x T / interval, for 1, 5 and 10 s ticks.

Prints a table and writes everything as JSON to build/bench.json. See bench/README.md for how to read it.
"""

import argparse
import asyncio
import hashlib
import json
import math
import multiprocessing
import os
import random
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True  # importing the test harness must not leave __pycache__ in tests/

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux asm-generic value (SO_TIMESTAMPNS_OLD)
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
ANC_SIZE = socket.CMSG_SPACE(16)

RUNS_QUERY_MARK = "operation_runs r ON r.id = q.id"
GATEWAY_ROLE = "pollgate_gateway"


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# ==================================================================================================
# Client worker: one process, one asyncio loop, thousands of raw HTTP/1.1 keep-alive connections.
# Commands come over a multiprocessing Pipe; the loop does nothing else while waiting for answers.


class Conn:
    __slots__ = ("sock", "run", "tok", "buf", "waiting", "status", "etag", "t_app", "t_kern", "close_after")

    def __init__(self, run, tok):
        self.run = run
        self.tok = tok
        self.sock = None
        self.buf = bytearray()
        self.waiting = False
        self.status = 0
        self.etag = None
        self.t_app = 0.0
        self.t_kern = 0.0
        self.close_after = False


class Worker:
    def __init__(self, idx, pipe):
        self.idx = idx
        self.pipe = pipe
        self.host = self.port = self.src = None
        self.conns = []       # hold+wake connections
        self.bconns = []      # query-cost connections
        self.mode = "idle"    # hold | browse | stopping
        self.expect = 0
        self.got = 0
        self.done = None
        self.cpu_sent = self.cpu_first = self.cpu_last = None
        self.browse_stats = None
        self.etags = {}

    # -- plumbing

    def reply(self, *msg):
        self.pipe.send(msg)

    def _on_pipe(self):
        try:
            msg = self.pipe.recv()
        except (EOFError, OSError):
            msg = ("exit",)
        self.cmdq.put_nowait(msg)

    async def run(self):
        self.loop = asyncio.get_running_loop()
        self.cmdq = asyncio.Queue()
        self.loop.add_reader(self.pipe.fileno(), self._on_pipe)
        while True:
            cmd = await self.cmdq.get()
            op = cmd[0]
            try:
                if op == "setup":
                    _, self.host, self.port, self.src, specs = cmd
                    self.conns = [Conn(r, t) for r, t in specs]
                    self.reply("ok", self.idx)
                elif op == "hold":
                    await self.hold(cmd[1])
                elif op == "collect":
                    await self.collect(cmd[1])
                elif op == "drop":
                    n = self.close_all(self.conns)
                    self.reply("dropped", self.idx, n)
                elif op == "browse":
                    await self.browse(cmd[1], cmd[2])
                elif op == "browse_stop":
                    self.browse_stop()
                elif op == "exit":
                    self.close_all(self.conns)
                    self.close_all(self.bconns)
                    try:
                        self.reply("bye", self.idx)
                    except OSError:
                        pass
                    return
            except Exception:
                self.reply("error", self.idx, traceback.format_exc())

    def close_all(self, conns):
        n = 0
        for c in conns:
            if c.sock is not None:
                self._drop(c)
                n += 1
        return n

    def _drop(self, c):
        try:
            self.loop.remove_reader(c.sock.fileno())
        except Exception:
            pass
        try:
            c.sock.close()
        except OSError:
            pass
        c.sock = None
        c.buf.clear()

    async def _connect(self, c):
        last = None
        for attempt in range(5):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                if self.src:
                    s.bind((self.src, 0))
                await self.loop.sock_connect(s, (self.host, self.port))
            except OSError as e:
                s.close()
                last = e
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            c.sock = s
            c.buf.clear()
            self.loop.add_reader(s.fileno(), self._on_read, c)
            return True
        self.connect_errors.append(repr(last))
        return False

    def _send(self, c, etag):
        req = (f"GET /v1/runs/{c.run}?wait=55 HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
               f"Authorization: Bearer {c.tok}\r\nIf-None-Match: {etag}\r\n\r\n").encode()
        c.waiting = True
        c.status = 0
        c.close_after = False
        try:
            n = c.sock.send(req)
        except BlockingIOError:
            n = 0
        if n < len(req):
            self.loop.create_task(self.loop.sock_sendall(c.sock, req[n:]))

    # -- receiving

    def _on_read(self, c):
        sock = c.sock
        if sock is None:
            return
        try:
            data, anc, _, _ = sock.recvmsg(65536, ANC_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, anc = b"", ()
        now = time.time()
        if not data:
            self._closed(c, now)
            return
        kt = 0.0
        for lvl, typ, d in anc:
            if lvl == socket.SOL_SOCKET and typ == SCM_TIMESTAMPNS and len(d) >= 16:
                sec, nsec = struct.unpack("qq", d[:16])
                kt = sec + nsec * 1e-9
        if self.mode == "hold" and self.got == 0 and self.cpu_first is None:
            self.cpu_first = time.process_time()  # before doing anything with the first answer
        buf = c.buf
        buf += data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            status = -1
        clen, etag, close = 0, None, False
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            if k == "content-length":
                clen = int(v.strip())
            elif k == "etag":
                etag = v.strip()
            elif k == "connection" and v.strip().lower() == "close":
                close = True
        if status in (304, 204) or 100 <= status < 200:
            clen = 0
        if len(buf) < end + 4 + clen:
            return
        del buf[:end + 4 + clen]
        if not c.waiting:
            return  # an answer nobody asked for (should not happen)
        c.waiting = False
        c.status, c.etag, c.t_app, c.t_kern = status, etag, now, kt
        c.close_after = close
        if close:
            self._drop(c)
        self._answered(c)

    def _closed(self, c, now):
        was_waiting = c.waiting
        self._drop(c)
        if was_waiting:
            c.waiting = False
            c.status, c.t_app, c.t_kern = 0, now, 0.0
            self._answered(c)

    def _answered(self, c):
        if self.mode == "hold":
            self.got += 1
            if self.got >= self.expect:
                self.cpu_last = time.process_time()
                self.done.set()
        elif self.mode == "browse":
            self._browse_answer(c)

    # -- hold+wake

    async def hold(self, etags):
        """(Re)send every connection's long-poll with the run's current ETag; reconnect closed ones."""
        self.mode = "hold"
        self.expect = len(self.conns)
        self.got = 0
        self.done = asyncio.Event()
        self.cpu_first = self.cpu_last = None
        self.connect_errors = []
        t0 = time.time()
        need = []
        for c in self.conns:
            if c.sock is None:
                need.append(c)
            else:
                self._send(c, etags[c.run])
        reconnects = len(need)
        sem = asyncio.Semaphore(48)

        async def one(c):
            async with sem:
                if await self._connect(c):
                    self._send(c, etags[c.run])
                else:
                    c.waiting = False
                    c.status = -2
                    self.got += 1

        if need:
            await asyncio.gather(*(one(c) for c in need))
        self.cpu_sent = time.process_time()
        self.reply("sent", self.idx, {"reconnects": reconnects, "connect_errors": self.connect_errors[:5],
                                      "n_connect_errors": len(self.connect_errors), "send_s": time.time() - t0})

    async def collect(self, timeout):
        try:
            await asyncio.wait_for(self.done.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        cs = self.conns
        self.reply("results", self.idx, {
            "status": [c.status if not c.waiting else None for c in cs],
            "t_app": [c.t_app for c in cs],
            "t_kern": [c.t_kern for c in cs],
            "etag": [c.etag for c in cs],
            "run": [c.run for c in cs],
            "cpu_wait_s": (self.cpu_first - self.cpu_sent) if self.cpu_first is not None else None,
            "cpu_read_s": (self.cpu_last - self.cpu_first) if (self.cpu_last and self.cpu_first) else None,
        })

    # -- query cost: browsers that re-poll at once

    async def browse(self, specs, etags):
        self.mode = "browse"
        self.connect_errors = []
        self.bconns = [Conn(r, t) for r, t in specs]
        self.etags = dict(etags)
        self.browse_stats = {"200": 0, "304": 0, "other": 0, "reconnects": 0, "changes": []}
        sem = asyncio.Semaphore(48)

        async def one(c):
            async with sem:
                if await self._connect(c):
                    self._send(c, self.etags[c.run])

        await asyncio.gather(*(one(c) for c in self.bconns))
        self.reply("browsing", self.idx, {"n_connect_errors": len(self.connect_errors)})

    def _browse_answer(self, c):
        st = self.browse_stats
        if c.status == 200:
            st["200"] += 1
            st["changes"].append((c.run, c.t_app, c.t_kern))
            if c.etag:
                self.etags[c.run] = c.etag  # a browser keeps the newest version it has seen
            etag = c.etag or self.etags[c.run]
        elif c.status == 304:
            st["304"] += 1
            etag = c.etag or self.etags[c.run]
        else:
            st["other"] += 1
            etag = self.etags[c.run]
        if c.sock is None:
            st["reconnects"] += 1
            self.loop.create_task(self._browse_reconnect(c, etag))
        else:
            self._send(c, etag)

    async def _browse_reconnect(self, c, etag):
        if self.mode == "browse" and await self._connect(c):
            self._send(c, etag)

    def browse_stop(self):
        self.mode = "stopping"
        self.close_all(self.bconns)
        self.reply("browse_done", self.idx, self.browse_stats)


def worker_main(idx, pipe):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the controller cleans up; Ctrl-C is its business
    raise_nofile()
    try:
        asyncio.run(Worker(idx, pipe).run())
    except Exception:
        try:
            pipe.send(("error", idx, traceback.format_exc()))
        except Exception:
            pass


class Workers:
    def __init__(self, n):
        ctx = multiprocessing.get_context("fork")  # forked first thing: nothing (sockets, db) to inherit
        self.procs, self.pipes = [], []
        for i in range(n):
            a, b = ctx.Pipe()
            p = ctx.Process(target=worker_main, args=(i, b), daemon=True, name=f"bench-client-{i}")
            p.start()
            b.close()
            self.procs.append(p)
            self.pipes.append(a)

    def send_all(self, *msgs):
        """msgs: one message for all, or one per worker."""
        for i, p in enumerate(self.pipes):
            p.send(msgs[i] if len(msgs) > 1 else msgs[0])

    def recv_all(self, expect, timeout=120.0):
        out = [None] * len(self.pipes)
        deadline = time.monotonic() + timeout
        for i, p in enumerate(self.pipes):
            left = deadline - time.monotonic()
            if not p.poll(max(0.0, left)):
                raise RuntimeError(f"client worker {i} did not answer '{expect}' within {timeout}s")
            msg = p.recv()
            if msg[0] == "error":
                raise RuntimeError(f"client worker {i} failed:\n{msg[2]}")
            if msg[0] != expect:
                raise RuntimeError(f"client worker {i} answered {msg[0]!r}, expected {expect!r}")
            out[i] = msg[2] if len(msg) > 2 else None
        return out

    def cpu_seconds(self):
        total = 0.0
        for p in self.procs:
            total += proc_cpu_s(p.pid)
        return total

    def shutdown(self):
        for p in self.pipes:
            try:
                p.send(("exit",))
            except Exception:
                pass
        for p in self.procs:
            p.join(5)
        for p in self.procs:
            if p.is_alive():
                p.kill()
                p.join(2)


# ==================================================================================================
# Observation helpers


def proc_status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def proc_cpu_s(pid):
    """user+system CPU seconds of a process (its threads included)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0


def pct(sorted_vals, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, math.ceil(p / 100.0 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def dist_ms(vals):
    v = sorted(x * 1000.0 for x in vals)
    if not v:
        return {"n": 0}
    return {"n": len(v), "min": v[0], "p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99), "max": v[-1],
            "mean": statistics.fmean(v)}


class Pg:
    """The bench's own view of the cluster: it runs as `postgres`; the gateway as GATEWAY_ROLE."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.conn = cluster.connect(application_name="pollgate-bench")

    def q(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None

    def gateway_statements(self):
        """{query text: calls} of every statement the gateway's role ran in the bench database."""
        rows = self.q("SELECT s.query, sum(s.calls)::bigint FROM pg_stat_statements s "
                      "JOIN pg_database d ON d.oid = s.dbid "
                      "WHERE d.datname = current_database() AND s.userid = %s::regrole GROUP BY s.query",
                      (GATEWAY_ROLE,))
        return {q: int(n) for q, n in rows}

    def all_calls(self):
        """Sum of calls by every role in the bench database (the bench's own statements included)."""
        return int(self.q("SELECT coalesce(sum(s.calls), 0)::bigint FROM pg_stat_statements s "
                          "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database()")[0][0])


def stmt_delta(a, b):
    out = {}
    for q, n in b.items():
        d = n - a.get(q, 0)
        if d:
            out[q] = d
    return out


def runs_calls(stmts):
    return sum(n for q, n in stmts.items() if RUNS_QUERY_MARK in q)


def short_label(q):
    """A readable name for a gateway statement in the breakdown."""
    if RUNS_QUERY_MARK in q:
        return "runs re-read"
    if "review_packs" in q:
        return "packs re-read"
    if "access_tokens" in q:
        return "token lookup"
    if q.upper().startswith("LISTEN"):
        return "LISTEN"
    if "pg_notification_queue_usage" in q:
        return "heartbeat"
    return " ".join(q.split())[:60]


METRIC_KEYS = {
    "held": ("pollgate_waiters_held", {"kind": "run"}),
    "pending": ("pollgate_waiters_pending", {}),
    "reread": ("pollgate_reread_queries_total", {"kind": "run"}),
    "reread_resources": ("pollgate_reread_resources_total", {"kind": "run"}),
    "token_lookups": ("pollgate_token_lookups_total", {}),
    "db_queries": ("pollgate_db_queries_total", {}),
    "wakes_notify": ("pollgate_wakes_total", {"cause": "notify"}),
    "wakes_safety": ("pollgate_wakes_total", {"cause": "safety_net"}),
    "wakes_reconnect": ("pollgate_wakes_total", {"cause": "reconnect"}),
    "answered_changed": ("pollgate_answers_total", {"reason": "changed"}),
    "answered_expired": ("pollgate_answers_total", {"reason": "expired"}),
    "disconnects": ("pollgate_client_disconnects_total", {}),
    "rejected": ("pollgate_rejected_total", {}),
    "read_errors": ("pollgate_read_errors_total", {}),
    "notifies_run": ("pollgate_notifies_total", {"kind": "run"}),
    "n2a_sum": ("pollgate_notify_to_answer_seconds_sum", {}),
    "n2a_count": ("pollgate_notify_to_answer_seconds_count", {}),
}


def snap(gw):
    m = gw.metrics()
    return {k: m.value(name, **labels) for k, (name, labels) in METRIC_KEYS.items()}


def mdelta(a, b):
    return {k: b[k] - a[k] for k in a if k not in ("held", "pending")}


# ==================================================================================================
# The bench


class Bench:
    def __init__(self, args):
        self.a = args
        self.out = {"config": {k: v for k, v in vars(args).items()}, "errors": []}
        self.workers = None
        self.cluster = None
        self.gw = None
        self.t_start = time.monotonic()

    def log(self, msg):
        print(f"[{time.monotonic() - self.t_start:6.1f}s] {msg}", flush=True)

    # -- set-up

    def setup_cluster(self):
        from conftest import PgCluster  # noqa: E402  (tests/integration on sys.path)
        import helpers
        self.helpers = helpers
        self.cluster = PgCluster()
        self.cluster.init()
        self.cluster.start()
        self.cluster.setup_database()
        self.cluster.psql_file(helpers.GRANT_SQL)  # the gateway runs as the least-privilege role
        self.pg = Pg(self.cluster)
        self.out["postgres"] = self.pg.q("SHOW server_version")[0][0]

    def make_world(self):
        h, c, a = self.helpers, self.pg.conn, self.a
        h.make_workspace(c, id=1, name="Bench")
        h.make_tenant(c, 1, id=1, name="Bench tenant")
        self.tokens = []
        for u in range(1, a.users + 1):
            tok = f"bench-tok-{u:04d}"
            h.make_principal(c, tok, 1, tenant_ids=(1,), role="member", user_id=u, email=f"u{u}@bench.invalid")
            self.tokens.append(tok)
        self.run_ids = []
        for i in range(1, a.runs + 1):
            self.run_ids.append(h.make_run(
                c, 1, 1, id=i, type="inventory.sync", status="running",
                created_at=h.Raw("now() - interval '1 hour 1 minute'"), started_at=h.Raw("now() - interval '1 hour'"),
                summary_counts={"total": 1000, "processed": 0}))

    def start_gateway(self):
        from conftest import Gateway
        workdir = REPO / "build" / "bench-run"
        workdir.mkdir(parents=True, exist_ok=True)
        for f in workdir.glob("bench.*"):
            f.unlink()
        binary = Path(os.environ.get("POLLGATE_BIN") or (REPO / "pollgate"))
        self.out["binary"] = {"path": str(binary), "sha256": hashlib.sha256(binary.read_bytes()).hexdigest()[:16],
                              "mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(binary.stat().st_mtime))}
        try:
            self.out["git_head"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                                  capture_output=True, text=True).stdout.strip()
        except OSError:
            pass
        cap = max(200000, 2 * self.a.waiters)
        conf = {
            "listen": f"127.0.0.1:{self.helpers.free_port()}",
            "database": f"postgresql://{GATEWAY_ROLE}@{self.cluster.host}:{self.cluster.port}/{self.cluster.dbname}",
            "max_waiters": cap,
            "max_waiters_per_principal": cap,
            "max_waiters_per_client": cap,
            "log_level": "warn",
            "workers": 1,  # one process: memory and queries are read off its pid (make bench-peers runs workers)
        }
        self.out["gateway_conf"] = conf
        env = dict(kv.split("=", 1) for kv in self.a.gateway_env)
        if env:
            self.out["gateway_env"] = env
        self.gw = Gateway(binary, workdir, "bench", conf, env=env)
        self.gw.start(wait_ready=True, timeout=30)
        if self.a.pin:
            os.sched_setaffinity(self.gw.pid, {0})
        self.out["gateway_nofile"] = open(f"/proc/{self.gw.pid}/limits").read().split("Max open files")[1].split()[:2]

    def pin_others(self):
        """--pin: CPU 0 for the gateway alone; PostgreSQL, the clients and this process share the rest."""
        rest = set(range(os.cpu_count() or 1)) - {0}
        if not rest:
            raise RuntimeError("--pin needs at least 2 CPUs")
        pm = int((self.cluster.datadir / "postmaster.pid").read_text().split()[0])
        pids = {pm, os.getpid()} | {p.pid for p in self.workers.procs}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pm:
                        pids.add(int(d.name))
                except (OSError, IndexError, ValueError):
                    pass
        for pid in pids:
            try:
                os.sched_setaffinity(pid, rest)
            except OSError:
                pass
        self.out["pinned"] = {"gateway": [0], "everything_else": sorted(rest)}

    def rss_kb(self):
        return proc_status_kb(self.gw.pid, "VmRSS")

    def wait_held(self, n, timeout=60.0):
        """Poll /metrics until exactly n run waiters are held and none is pending."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = snap(self.gw)
            if last["held"] == n and last["pending"] == 0:
                return last
            if time.monotonic() >= deadline:
                raise RuntimeError(f"held={last['held']:.0f} pending={last['pending']:.0f}, want {n} held "
                                   f"after {timeout}s; gateway log tail:\n{self.gw.log_tail(20)}")
            time.sleep(0.02)

    def current_etags(self):
        etags = {}
        for rid in self.run_ids:
            r = self.helpers.get(f"{self.gw.url}/v1/runs/{rid}?wait=0", headers={"Authorization": f"Bearer {self.tokens[0]}"})
            if r.status != 200 or not r.etag:
                raise RuntimeError(f"GET run {rid} answered {r.status}")
            etags[rid] = r.etag
        return etags

    # -- scenario 1

    def hold_wake(self):
        a = self.a
        N, R, W = a.waiters, a.runs, a.workers
        res = self.out["hold_wake"] = {"waiters": N, "runs": R, "per_run": N // R, "users": a.users,
                                       "workers": W, "rounds": []}
        rss_start = self.rss_kb()
        etags = self.current_etags()
        self.wait_held(0)
        rss_base = self.rss_kb()
        # waiter i: run i % R, user (i // R) % U -> every run is watched by every user; interleaved over workers.
        specs = [[] for _ in range(W)]
        for i in range(N):
            run = self.run_ids[i % R]
            tok = self.tokens[(i // R) % len(self.tokens)]
            specs[i % W].append((run, tok))
        self.workers.send_all(*[("setup", self.gw.host, self.gw.port, f"127.0.0.{10 + k}", specs[k]) for k in range(W)])
        self.workers.recv_all("ok")

        # Round 0: connect everything and hold.
        m0 = snap(self.gw)
        s0 = self.pg.gateway_statements()
        t0 = time.monotonic()
        self.workers.send_all(("hold", etags))
        sent = self.workers.recv_all("sent", timeout=120)
        m1 = self.wait_held(N, timeout=90)
        t_held = time.monotonic() - t0
        s1 = self.pg.gateway_statements()
        rss_held = self.rss_kb()
        res["hold"] = {
            "seconds_to_hold_all": t_held,
            "connect_errors": sum(s["n_connect_errors"] for s in sent),
            "rss_kb_start": rss_start, "rss_kb_baseline": rss_base, "rss_kb_held": rss_held,
            "bytes_per_waiter": (rss_held - rss_base) * 1024.0 / N,
            "bytes_per_waiter_from_start": (rss_held - rss_start) * 1024.0 / N,
            "rss_anon_kb_held": proc_status_kb(self.gw.pid, "RssAnon"),
            "rss_kb_peak_held": proc_status_kb(self.gw.pid, "VmHWM"),
            "metrics_delta": mdelta(m0, m1),
            "gateway_statements": sum(stmt_delta(s0, s1).values()),
        }
        self.log(f"{N} waiters held in {t_held:.2f}s; RSS {rss_base} -> {rss_held} kB "
                 f"({res['hold']['bytes_per_waiter']:.0f} B/waiter)")

        for rnd in range(1, a.rounds + 1):
            r = self.one_wake(rnd, N)
            res["rounds"].append(r)
            etags = r.pop("_new_etags")
            if rnd < a.rounds:
                # Re-hold as a browser would: every client re-polls with the ETag it just got.
                m2 = snap(self.gw)
                s2 = self.pg.gateway_statements()
                t2 = time.monotonic()
                self.workers.send_all(("hold", etags))
                sent = self.workers.recv_all("sent", timeout=120)
                m3 = self.wait_held(N, timeout=60)
                s3 = self.pg.gateway_statements()
                d = mdelta(m2, m3)
                sd = stmt_delta(s2, s3)
                r["rehold"] = {"seconds": time.monotonic() - t2, "reread_queries": d["reread"],
                               "token_lookups": d["token_lookups"], "wakes_safety": d["wakes_safety"],
                               "runs_query_calls": runs_calls(sd), "gateway_statements": sum(sd.values()),
                               "reconnects": sum(s["reconnects"] for s in sent),
                               "rss_kb": self.rss_kb()}
                self.log(f"re-held {N} in {r['rehold']['seconds']:.2f}s: reread queries {d['reread']:.0f}, "
                         f"token lookups {d['token_lookups']:.0f}, reconnects {r['rehold']['reconnects']}")
        self.workers.send_all(("drop",))
        self.workers.recv_all("dropped")
        self.wait_held(0, timeout=30)
        res["rss_kb_after_close"] = self.rss_kb()

    def one_wake(self, rnd, N):
        a = self.a
        # Everything is held and quiet: arm the collectors (they only wait), then commit.
        m0 = snap(self.gw)
        s0 = self.pg.gateway_statements()
        self.workers.send_all(("collect", 40.0))
        gw_cpu0 = proc_cpu_s(self.gw.pid)
        cl_cpu0 = self.workers.cpu_seconds()
        perf = None
        if a.perf and rnd == 1:
            perf = self.perf_start()
        ids = list(self.run_ids)
        counts = [json.dumps({"total": 1000, "processed": rnd * 10 + (i % 7)}) for i in range(len(ids))]
        conn = self.pg.conn
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute("UPDATE operation_runs r SET summary_counts = v.c::jsonb "
                        "FROM unnest(%s::bigint[], %s::text[]) AS v(id, c) WHERE r.id = v.id", (ids, counts))
            updated = cur.rowcount
        t_before = time.time()
        conn.commit()
        t_commit = time.time()
        conn.autocommit = True
        results = self.workers.recv_all("results", timeout=60)
        t_collected = time.time()
        if perf:
            self.perf_stop(perf)
        gw_cpu1 = proc_cpu_s(self.gw.pid)
        cl_cpu1 = self.workers.cpu_seconds()
        m1 = snap(self.gw)
        s1 = self.pg.gateway_statements()

        statuses, lat_app, lat_kern = {}, [], []
        new_etags, conflicts = {}, 0
        for w in results:
            for st, ta, tk, et, run in zip(w["status"], w["t_app"], w["t_kern"], w["etag"], w["run"]):
                statuses[str(st)] = statuses.get(str(st), 0) + 1
                if st == 200:
                    lat_app.append(ta - t_commit)
                    if tk:
                        lat_kern.append(tk - t_commit)
                    if run in new_etags and new_etags[run] != et:
                        conflicts += 1
                    new_etags[run] = et
        d = mdelta(m0, m1)
        sd = stmt_delta(s0, s1)
        r = {
            "round": rnd, "runs_updated": updated, "commit_s": t_commit - t_before,
            "answered_200": statuses.get("200", 0), "statuses": statuses,
            "latency_ms": dist_ms(lat_app), "kernel_latency_ms": dist_ms(lat_kern),
            "reread_queries": d["reread"], "reread_resources": d["reread_resources"],
            "wakes_notify": d["wakes_notify"], "wakes_safety": d["wakes_safety"],
            "token_lookups": d["token_lookups"], "runs_query_calls": runs_calls(sd),
            "gateway_statements": sum(sd.values()), "notifies_run": d["notifies_run"],
            "notify_to_read_mean_ms": (d["n2a_sum"] / d["n2a_count"] * 1000.0) if d["n2a_count"] else None,
            "gateway_cpu_ms": (gw_cpu1 - gw_cpu0) * 1000.0,
            "client_cpu_ms_total": (cl_cpu1 - cl_cpu0) * 1000.0,
            "client_cpu_ms_while_waiting": max((w["cpu_wait_s"] or 0.0) for w in results) * 1000.0,
            "client_cpu_ms_reading_max": max((w["cpu_read_s"] or 0.0) for w in results) * 1000.0,
            "etag_conflicts": conflicts, "collect_s": t_collected - t_commit,
            "rss_kb_after": self.rss_kb(), "rss_kb_peak": proc_status_kb(self.gw.pid, "VmHWM"),
            "_new_etags": new_etags,
        }
        if len(new_etags) < len(self.run_ids):
            missing = [x for x in self.run_ids if x not in new_etags]
            self.out["errors"].append(f"round {rnd}: no 200 for runs {missing[:10]}")
            for x in missing:
                new_etags[x] = "*"  # cannot happen in a healthy run; keeps the bench going
        L, K = r["latency_ms"], r["kernel_latency_ms"]
        self.log(f"wake {rnd}: {r['answered_200']}/{N} x 200; client p50 {L.get('p50', 0):.1f} p99 {L.get('p99', 0):.1f} "
                 f"max {L.get('max', 0):.1f} ms; kernel p50 {K.get('p50', 0):.1f} p99 {K.get('p99', 0):.1f} ms; "
                 f"reread queries {d['reread']:.0f}; gw cpu {r['gateway_cpu_ms']:.0f} ms")
        return r

    # -- perf (optional)

    def perf_start(self):
        path = REPO / "build" / "bench-perf.data"
        try:
            p = subprocess.Popen(["perf", "record", "-q", "-g", "-F", "4999", "-p", str(self.gw.pid), "-o", str(path)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as e:
            self.out["errors"].append(f"perf: {e}")
            return None
        time.sleep(0.5)  # perf needs a moment to attach; only with --perf
        return (p, path)

    def perf_stop(self, perf):
        p, path = perf
        p.send_signal(signal.SIGINT)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
        rep = subprocess.run(["perf", "report", "-i", str(path), "--stdio", "--no-children", "--percent-limit", "1",
                              "--sort", "dso,symbol", "-g", "none"], capture_output=True, text=True)
        txt = REPO / "build" / "bench-perf.txt"
        txt.write_text(rep.stdout + rep.stderr)
        self.out["perf_report"] = str(txt)

    # -- scenario 2

    def query_cost(self):
        a = self.a
        B, T, W = a.browsers, a.duration, a.workers
        res = self.out["query_cost"] = {"browsers": B, "seconds": T, "runs": len(self.run_ids),
                                        "update_every_s": a.update_every, "runs_per_update": a.update_runs}
        etags = self.current_etags()
        specs = [[] for _ in range(W)]
        for i in range(B):
            specs[i % W].append((self.run_ids[i % len(self.run_ids)], self.tokens[(i * 7 + i // len(self.run_ids)) % len(self.tokens)]))
        m_a = snap(self.gw)
        s_a = self.pg.gateway_statements()
        t_a = time.monotonic()
        self.workers.send_all(*[("browse", specs[k], etags) for k in range(W)])
        self.workers.recv_all("browsing", timeout=60)
        self.wait_held(B, timeout=60)
        m0 = snap(self.gw)
        s0 = self.pg.gateway_statements()
        all0 = self.pg.all_calls()
        res["startup"] = {"seconds": time.monotonic() - t_a, "gateway_statements": sum(stmt_delta(s_a, s0).values()),
                          "metrics_delta": mdelta(m_a, m0)}
        self.log(f"{B} browsers long-polling; measuring {T}s")

        rng = random.Random(12345)
        commits = []  # (t_before_commit, t_commit, [run ids])
        wakes = []
        conn = self.pg.conn
        t0 = time.monotonic()
        k = 0
        bench_stmts = 0
        while True:
            due = t0 + a.update_every * (k + 0.5)  # updates at 1, 3, 5, ... s into the window
            if due >= t0 + T:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            ids = sorted(rng.sample(self.run_ids, a.update_runs))
            m_pre = snap(self.gw)
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute("UPDATE operation_runs SET summary_counts = jsonb_build_object('total', 1000, "
                            "'processed', (summary_counts->>'processed')::int + 1) WHERE id = ANY(%s)", (ids,))
            tb = time.time()
            conn.commit()
            commits.append((tb, time.time(), ids))
            conn.autocommit = True
            bench_stmts += 3  # BEGIN, UPDATE, COMMIT
            k += 1
            # What this wake cost: poll /metrics (no database involved) until its answers are out.
            want = m_pre["answered_changed"] + a.update_runs * (B // len(self.run_ids))
            give_up = time.monotonic() + min(1.5, a.update_every * 0.75)
            while True:
                m_post = snap(self.gw)
                if m_post["answered_changed"] >= want or time.monotonic() >= give_up:
                    break
                time.sleep(0.005)
            dd = mdelta(m_pre, m_post)
            wakes.append({"reread_queries": dd["reread"], "resources": dd["reread_resources"],
                          "notify_resources": dd["wakes_notify"], "safety_resources": dd["wakes_safety"],
                          "token_lookups": dd["token_lookups"], "answered": dd["answered_changed"],
                          "settled_ms": (time.time() - commits[-1][1]) * 1000.0})
        time.sleep(max(0.0, t0 + T - time.monotonic()))
        s1 = self.pg.gateway_statements()
        m1 = snap(self.gw)
        all1 = self.pg.all_calls()
        elapsed = time.monotonic() - t0
        self.workers.send_all(("browse_stop",))
        stats = self.workers.recv_all("browse_done", timeout=30)
        self.wait_held(0, timeout=30)

        sd = stmt_delta(s0, s1)
        d = mdelta(m0, m1)
        gw_total = sum(sd.values())
        # Latency of every change delivered: arrival - the commit that made it (latest commit of that run
        # begun before the arrival).
        lat_app, lat_kern = [], []
        by_run = {}
        for tb, tc, ids in commits:
            for x in ids:
                by_run.setdefault(x, []).append((tb, tc))
        for s in stats:
            for run, ta, tk in s["changes"]:
                prior = [tc for tb, tc in by_run.get(run, []) if tb <= ta]
                if prior:
                    lat_app.append(ta - prior[-1])
                    if tk:
                        lat_kern.append(tk - prior[-1])
        expected = len(commits) * a.update_runs * (B // len(self.run_ids))
        got200 = sum(s["200"] for s in stats)
        base = {f"{iv}s": B * elapsed / iv for iv in (1, 5, 10)}
        res.update({
            "measured_seconds": elapsed,
            "updates": len(commits),
            "gateway_statements": gw_total,
            "gateway_statements_by_kind": self._by_kind(sd),
            "all_statements_in_db": all1 - all0,
            "bench_statements_estimate": bench_stmts + 2,  # + the two pg_stat_statements reads
            "gateway_db_queries_metric": d["db_queries"],
            "reread_queries": d["reread"], "token_lookups": d["token_lookups"],
            "wakes_notify": d["wakes_notify"], "wakes_safety": d["wakes_safety"],
            "answered_200": got200, "expected_200": expected,
            "answered_304": sum(s["304"] for s in stats), "answered_other": sum(s["other"] for s in stats),
            "reconnects": sum(s["reconnects"] for s in stats),
            "latency_ms": dist_ms(lat_app), "kernel_latency_ms": dist_ms(lat_kern),
            "short_poll_queries": base,
            "ratio": {k: (v / gw_total if gw_total else None) for k, v in base.items()},
            "wakes": wakes,
            "per_wake": {
                "reread_queries_mean": statistics.fmean(w["reread_queries"] for w in wakes) if wakes else None,
                "reread_queries_max": max((w["reread_queries"] for w in wakes), default=None),
                "answered_mean": statistics.fmean(w["answered"] for w in wakes) if wakes else None,
                "all_gateway_statements_per_update": gw_total / max(1, len(commits)),
            },
            "outside_wakes": {
                "reread_queries": d["reread"] - sum(w["reread_queries"] for w in wakes),
                "token_lookups": d["token_lookups"] - sum(w["token_lookups"] for w in wakes),
                "safety_net_resources": d["wakes_safety"],
            },
        })
        self.log(f"query cost: gateway {gw_total} statements in {elapsed:.1f}s vs short-poll "
                 f"{base['1s']:.0f} (1 s) -> {res['ratio']['1s'] or 0:.0f}x")

    @staticmethod
    def _by_kind(sd):
        out = {}
        for q, n in sd.items():
            k = short_label(q)
            out[k] = out.get(k, 0) + n
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    # -- life cycle

    def run(self):
        a = self.a
        self.workers = Workers(a.workers)
        self.log(f"cluster: initdb + start (PostgreSQL, {os.cpu_count()} CPUs shared by everything)")
        self.setup_cluster()
        if a.pin:
            self.pin_others()
        self.make_world()
        self.start_gateway()
        self.log(f"gateway pid {self.gw.pid} on {self.gw.url} (nofile {self.out['gateway_nofile']})")
        self.out["cpus"] = os.cpu_count()
        self.hold_wake()
        if a.browsers > 0 and a.duration > 0:
            self.query_cost()

    def cleanup(self):
        errs = []
        if self.workers:
            try:
                self.workers.shutdown()
            except Exception as e:
                errs.append(f"workers: {e!r}")
        if self.gw is not None:
            try:
                rc = self.gw.stop(timeout=20)
                self.out["gateway_exit"] = rc
            except Exception as e:
                errs.append(f"gateway stop: {e}")
                self.out["gateway_exit"] = self.gw.returncode
        if self.cluster is not None:
            try:
                self.cluster.stop()
            except Exception as e:
                errs.append(f"cluster stop: {e!r}")
            self.cluster.destroy()
        self.out["errors"] += errs
        return errs


# ==================================================================================================
# Report


def fmt(v, nd=1):
    return "-" if v is None else f"{v:.{nd}f}"


def report(out):
    lines = []
    hw = out.get("hold_wake")
    lines.append("")
    lines.append(f"pollgate long-poll bench  (binary {out.get('binary', {}).get('sha256', '?')} @ {out.get('git_head', '?')}, "
                 f"PostgreSQL {out.get('postgres', '?')}, {out.get('cpus')} CPUs shared by PostgreSQL, gateway and clients)")
    if out.get("pinned") or out.get("gateway_env"):
        lines.append(f"EXPERIMENT (not the default set-up): pinned={out.get('pinned')} gateway_env={out.get('gateway_env')}")
    if hw and "hold" in hw:
        h = hw["hold"]
        ok = "met" if h["bytes_per_waiter"] < 4096 else "MISSED"
        lines.append(f"\nHOLD  {hw['waiters']} waiters = {hw['runs']} runs x {hw['per_run']}, {hw['users']} users, "
                     f"{hw['workers']} client processes; all held in {h['seconds_to_hold_all']:.2f} s")
        lines.append(f"  gateway VmRSS  start {h['rss_kb_start']} kB, baseline {h['rss_kb_baseline']} kB, "
                     f"all held {h['rss_kb_held']} kB")
        lines.append(f"  => {h['bytes_per_waiter']:.0f} B per held waiter (target < 4096 B: {ok})")
        md = h["metrics_delta"]
        lines.append(f"  first contact of the {hw['waiters']} requests cost {h['gateway_statements']} gateway statements "
                     f"({md['reread']:.0f} batched re-reads for {md['reread_resources']:.0f} resources, "
                     f"{md['token_lookups']:.0f} token lookups)")
        if hw["rounds"]:
            peak = max(r["rss_kb_peak"] for r in hw["rounds"])
            lines.append(f"  peak (VmHWM) once woken: {peak} kB = {(peak - h['rss_kb_baseline']) * 1024.0 / hw['waiters']:.0f} B "
                         f"per waiter over baseline; after each wake {[r['rss_kb_after'] for r in hw['rounds']]} kB; "
                         f"after every client closed {hw.get('rss_kb_after_close', '?')} kB")
        lines.append("\nWAKE  one transaction updates all runs; latency = answer arrival - COMMIT returned (ms)")
        lines.append("  round   200s |  p50    p90    p99    max  | kernel rx min   p50    p99    max | re-read q  runs-q  "
                     "gw-stmts | gw CPU  client CPU idle/read | re-hold: re-read q  tokens  s")
        for r in hw["rounds"]:
            L, K = r["latency_ms"], r["kernel_latency_ms"]
            rh = r.get("rehold")
            rhs = f"{rh['reread_queries']:>8.0f}  {rh['token_lookups']:>6.0f}  {rh['seconds']:.1f}" if rh else "       -"
            lines.append(
                f"  {r['round']:>5} {r['answered_200']:>6} | {fmt(L.get('p50')):>5}  {fmt(L.get('p90')):>5}  "
                f"{fmt(L.get('p99')):>5}  {fmt(L.get('max')):>5} |        {fmt(K.get('min')):>5}  {fmt(K.get('p50')):>5}  {fmt(K.get('p99')):>5}  "
                f"{fmt(K.get('max')):>5} | {r['reread_queries']:>9.0f}  {r['runs_query_calls']:>6}  "
                f"{r['gateway_statements']:>8} | {r['gateway_cpu_ms']:>4.0f}ms  {r['client_cpu_ms_while_waiting']:>5.1f}/"
                f"{r['client_cpu_ms_reading_max']:.0f}ms      | {rhs}")
            if r["statuses"].keys() - {"200"}:
                lines.append(f"        statuses: {r['statuses']}")
        lines.append("  (kernel rx = SO_TIMESTAMPNS of the segment: when the gateway's write reached the client socket;"
                     " client CPU idle = CPU a client process used between its last send and its first answer)")
    qc = out.get("query_cost")
    if qc and "gateway_statements" in qc:
        lines.append(f"\nQUERY COST  {qc['browsers']} browsers on {qc['runs']} runs for {qc['measured_seconds']:.1f} s, "
                     f"{qc['updates']} updates of {qc['runs_per_update']} runs (one transaction every {qc['update_every_s']} s)")
        lines.append(f"  gateway statements: {qc['gateway_statements']}  {qc['gateway_statements_by_kind']}")
        lines.append(f"  changes delivered: {qc['answered_200']} x 200 (expected {qc['expected_200']}), "
                     f"{qc['answered_304']} x 304, {qc['answered_other']} other; latency p50 {fmt(qc['latency_ms'].get('p50'))} "
                     f"p99 {fmt(qc['latency_ms'].get('p99'))} max {fmt(qc['latency_ms'].get('max'))} ms")
        pw, ow = qc["per_wake"], qc["outside_wakes"]
        lines.append(f"  per wake (commit -> its answers out): {fmt(pw['reread_queries_mean'], 2)} re-read queries "
                     f"(max {fmt(pw['reread_queries_max'], 0)}), {fmt(pw['answered_mean'], 0)} answers; "
                     f"{[int(w['reread_queries']) for w in qc['wakes']]}")
        lines.append(f"  outside the wakes: {ow['reread_queries']:.0f} re-read queries (safety net re-read "
                     f"{ow['safety_net_resources']:.0f} resources in all), {ow['token_lookups']:.0f} token lookups; "
                     f"all in all {pw['all_gateway_statements_per_update']:.1f} gateway statements per update")
        lines.append("  short-polling PostgreSQL instead (1 query per browser per tick):")
        for k in ("1s", "5s", "10s"):
            lines.append(f"    every {k:>3}: {qc['short_poll_queries'][k]:>9.0f} queries  -> pollgate uses "
                         f"{fmt(qc['ratio'][k], 0)}x fewer")
        lines.append(f"  startup (connecting {qc['browsers']} browsers, not in the window): "
                     f"{qc['startup']['gateway_statements']} statements in {qc['startup']['seconds']:.1f} s")
    if out.get("errors"):
        lines.append("\nERRORS: " + "; ".join(out["errors"]))
    lines.append(f"\ntotal {out.get('total_seconds', 0):.0f} s; gateway exit {out.get('gateway_exit')}; "
                 f"JSON: {out.get('json_path')}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--waiters", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--workers", type=int, default=4, help="client processes (each <= ~19k sockets)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--browsers", type=int, default=2000, help="query-cost scenario; 0 skips it")
    ap.add_argument("--duration", type=float, default=20.0, help="query-cost window, seconds")
    ap.add_argument("--update-every", type=float, default=2.0)
    ap.add_argument("--update-runs", type=int, default=10)
    ap.add_argument("--perf", action="store_true", help="perf record the gateway during wake 1 (build/bench-perf.txt)")
    ap.add_argument("--pin", action="store_true",
                    help="experiment: gateway alone on CPU 0, PostgreSQL + clients on the other CPU(s)")
    ap.add_argument("--gateway-env", action="append", default=[], metavar="KEY=VALUE",
                    help="experiment: extra environment for the gateway, e.g. EVENT_EPOLL_USE_CHANGELIST=1")
    ap.add_argument("--json", default=str(REPO / "build" / "bench.json"))
    a = ap.parse_args()
    if a.waiters % a.runs or a.browsers % a.runs:
        ap.error("--waiters and --browsers must be multiples of --runs")
    if a.waiters // a.workers > 19000:
        ap.error("more than 19,000 sockets per client process: raise --workers")

    raise_nofile()
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    bench = Bench(a)
    t0 = time.monotonic()

    def on_term(signum, frame):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # also when started in the background (SIGINT inherited as ignored)
    rc = 0
    try:
        bench.run()
    except KeyboardInterrupt:
        bench.out["errors"].append("interrupted")
        rc = 130
    except Exception as e:
        bench.out["errors"].append(f"{type(e).__name__}: {e}")
        traceback.print_exc()
        rc = 1
    finally:
        bench.log("cleaning up")
        errs = bench.cleanup()
        if errs:
            rc = rc or 1
        bench.out["total_seconds"] = time.monotonic() - t0
        path = Path(a.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        bench.out["json_path"] = str(path)
        path.write_text(json.dumps(bench.out, indent=2, default=str) + "\n")
        print(report(bench.out), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
