#!/usr/bin/python3
"""bench/peers.py — pollgate and nginx+nchan side by side on one workload (`make bench-peers`).

    make bench-peers                                   (builds ./pollgate and build/peers_load first)
    BENCH_PEERS_ROWS=10000x100:paced,10000x100:burst make bench-peers
    /usr/bin/python3 bench/peers.py [--rows ROWS] [--repeat K] [--nchan-workers 1,match] [--json PATH]

A row is N waiters on R resources (waiter g watches resource g % R) and a trigger:
  paced   one change per resource, 3 ms apart (the pace nchan's HTTP publish keeps up with);
  matched one change per resource, at the pace nchan's publisher actually kept in the same row (nchan
          runs first, paced; a publish returns once nchan has taken it, so a busy nchan paces itself:
          50,000 waiters on 100 channels stretched 100 publishes to ~2 s). pollgate's commits then
          come exactly that far apart, so both servers get the same changes at the same rate;
  burst   every resource changed at once: pollgate's R changes committed within 100 ms (min(R, 20)
          transactions, 5 ms apart), nchan's R messages published as fast as its HTTP API takes them
          (4 keep-alive publisher connections, up to 8 pipelined requests in flight on each).
Each row runs against both servers in turn, with the same load generator (build/peers_load, bench/
peers_load.c: C and epoll, one process per <= 12,500 sockets, each on its own source address). Every
waiter's latency is taken from the change of its own resource: the moment the trigger sent the COMMIT
(pollgate) or the publish request (nchan), to the moment its answer was read in full. Misses are waiters
that got no 200 after their resource's change (early answers, errors, closed sockets, nothing within
the collection window). Memory per held waiter = (sum of VmRSS of every server process with all N held -
the same sum before the first connect) / N. Prints a table (with pollgate/nchan ratios) and writes
build/bench-peers.json. bench/README.md says how each number is taken.

pollgate runs as `./pollgate` (release; $POLLGATE_BIN overrides) on a throwaway PostgreSQL 15 cluster
(tests/integration/conftest.py's PgCluster), restarted for every row so each row starts from a fresh
process. When `pollgate --print-config` knows a `workers` key, it runs with `workers = auto`; until then
it is one process, and a row whose N does not fit one process's descriptors is reported as not runnable
(every waiter a miss) instead of being run. nginx is restarted for every row too, with
`worker_processes` 1 or as many as pollgate has workers (--nchan-workers), and at least as many as N
needs under the descriptor cap.
"""

import argparse
import collections
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True  # importing the test harness must not leave __pycache__ in tests/

GATEWAY_ROLE = "pollgate_gateway"
USERS = 100
PACE_S = 0.003
BURST_WINDOW_S = 0.100
BURST_TXNS_MAX = 20
PUBLISHERS = 4
PIPELINE = 8            # publish requests in flight per publisher connection in a burst
PER_LOADGEN = 12500
FD_MARGIN = 1000          # descriptors a server keeps for itself (listeners, database, logs, ...)
HOLD_S = 600             # how long a waiter asks to be held: longer than any row's hold + trigger (150 s paced
                         # 50,000) + collection, so no waiter times out before its own change
COLLECT_S = 20.0          # how long after the last change a waiter may still be answered
NGINX_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"
DEFAULT_ROWS = ["10000x1:burst", "10000x100:paced", "10000x100:burst", "10000x10000:paced", "10000x10000:burst",
                "50000x100:paced", "50000x100:matched", "50000x100:burst", "50000x50000:burst"]
ALL_ROWS = DEFAULT_ROWS + ["50000x50000:paced"]


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ==================================================================================================
# /proc: the server's processes, their memory and CPU


def descendants(pid):
    """pid and every process below it (pollgate's workers, nginx's workers)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kb(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_s(pids):
    total = 0.0
    tck = os.sysconf("SC_CLK_TCK")
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            total += (int(fields[11]) + int(fields[12])) / tck
        except OSError:
            pass
    return total


def pct(vals, p):
    if not vals:
        return None
    k = min(len(vals) - 1, max(0, int(round(p / 100.0 * (len(vals) - 1)))))
    return vals[k]


def dist_ms(vals):
    vals = sorted(vals)
    if not vals:
        return {"n": 0}
    return {"n": len(vals), "min": vals[0], "p50": pct(vals, 50), "p90": pct(vals, 90), "p99": pct(vals, 99),
            "max": vals[-1], "mean": sum(vals) / len(vals)}


def http_get(host, port, path, timeout=5.0):
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        buf = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


# ==================================================================================================
# The load generator: P processes of build/peers_load


class Loadgen:
    def __init__(self, workdir, host, port, waiters, tag):
        """waiters: list of (resource index, path, [header lines])."""
        self.procs = []
        self.sizes = []
        nproc = max(2, -(-len(waiters) // PER_LOADGEN))
        binary = REPO / "build" / "peers_load"
        for k in range(nproc):
            part = waiters[k::nproc]
            f = workdir / f"loadgen-{tag}-{k}.txt"
            f.write_text("".join(f"{r}\t{p}" + "".join("\t" + h for h in hs) + "\n" for r, p, hs in part))
            src = f"127.0.0.{10 + k}"
            p = subprocess.Popen([str(binary), host, str(port), src, str(f)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, bufsize=1)
            self.procs.append(p)
            self.sizes.append(len(part))
        for p in self.procs:
            line = p.stdout.readline().split()
            if not line or line[0] != "ready":
                raise RuntimeError(f"peers_load did not start: {line}")
        self.pids = [p.pid for p in self.procs]

    def _all(self, cmd):
        for p in self.procs:
            p.stdin.write(cmd + "\n")
            p.stdin.flush()
        return [p.stdout.readline().split() for p in self.procs]

    def connect(self):
        for p in self.procs:
            p.stdin.write("connect\n")
            p.stdin.flush()
        ok = failed = 0
        for p in self.procs:
            line = p.stdout.readline().split()
            if not line or line[0] != "sent":
                raise RuntimeError(f"peers_load: {line}")
            ok += int(line[1])
            failed += int(line[2])
        return ok, failed

    def count(self):
        a = c = 0
        for line in self._all("count"):
            a += int(line[1])
            c += int(line[2])
        return a, c

    def dump(self):
        rows = []
        for p in self.procs:
            p.stdin.write("dump\n")
            p.stdin.flush()
            while True:
                line = p.stdout.readline()
                if not line or line.startswith("end"):
                    break
                _, _, res, status, t1, t2 = line.split()
                rows.append((int(res), int(status), int(t1) / 1e9, int(t2) / 1e9))
        return rows

    def quit(self):
        for p in self.procs:
            try:
                p.stdin.write("quit\n")
                p.stdin.flush()
            except (OSError, ValueError):
                pass
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# ==================================================================================================
# pollgate


class Pollgate:
    name = "pollgate"

    def __init__(self, workdir, max_resources, nofile):
        self.workdir = workdir
        self.max_resources = max_resources
        self.nofile = nofile
        self.cluster = None
        self.gw = None
        self.conf = None
        self.round = 0
        self.binary = Path(os.environ.get("POLLGATE_BIN") or (REPO / "pollgate"))
        pc = subprocess.run([str(self.binary), "--print-config", "-c", "/dev/null"], capture_output=True, text=True)
        keys = dict(line.split(" = ", 1) for line in pc.stdout.splitlines() if " = " in line)
        self.has_workers = "workers" in keys
        self.per_process = nofile - FD_MARGIN
        self.workers = 1

    def plan(self, n):
        """(value of the workers key or None, processes) for n waiters: `auto` when one per core holds
        them, else as many as the descriptor cap needs; one process while there is no workers key."""
        if not self.has_workers:
            return None, 1
        cpus = os.cpu_count() or 1
        if n <= cpus * self.per_process:
            return "auto", cpus
        k = -(-n // self.per_process)
        return str(k), k

    def capacity(self, n):
        return self.plan(n)[1] * self.per_process

    def describe(self):
        return {"binary": str(self.binary), "workers_key": self.has_workers, "per_process": self.per_process,
                "conf": self.conf}

    def setup(self):
        from conftest import PgCluster
        import helpers
        self.helpers = helpers
        self.cluster = PgCluster()
        self.cluster.init()
        self.cluster.start()
        self.cluster.setup_database()
        self.cluster.psql_file(helpers.GRANT_SQL)
        import psycopg2
        self.conn = psycopg2.connect(host=self.cluster.host, port=self.cluster.port, dbname=self.cluster.dbname,
                                     user="postgres")
        self.conn.autocommit = True
        c = self.conn
        helpers.make_workspace(c, id=1, name="Bench")
        helpers.make_tenant(c, 1, id=1, name="Bench tenant")
        self.tokens = []
        for u in range(1, USERS + 1):
            tok = f"peers-tok-{u:04d}"
            helpers.make_principal(c, tok, 1, tenant_ids=(1,), role="member", user_id=u, email=f"u{u}@bench.invalid")
            self.tokens.append(tok)
        with c.cursor() as cur:
            # Running for an hour: the safety-net interval is 10 s, well past every row's wake.
            cur.execute("INSERT INTO operation_runs (id, workspace_id, tenant_id, type, status, summary_counts, "
                        "created_at, started_at) SELECT g, 1, 1, 'inventory.sync', 'running', "
                        "'{\"total\": 1000, \"processed\": 0}', now() - interval '1 hour 1 minute', "
                        "now() - interval '1 hour' FROM generate_series(1, %s) g", (self.max_resources,))
            cur.execute("ANALYZE operation_runs")
            cur.execute("SHOW server_version")
            self.pg_version = cur.fetchone()[0]
        self.conn.autocommit = False

    def start(self, n):
        from conftest import Gateway
        cap = 400000
        self.conf = {
            "listen": f"127.0.0.1:{self.helpers.free_port()}",
            "database": f"postgresql://{GATEWAY_ROLE}@{self.cluster.host}:{self.cluster.port}/{self.cluster.dbname}",
            "max_waiters": cap, "max_waiters_per_principal": cap, "max_waiters_per_client": cap,
            "log_level": "warn", "max_wait": f"{HOLD_S}s",
        }
        wk, self.workers = self.plan(n)
        for kv in filter(None, os.environ.get("BENCH_PEERS_POLLGATE_CONF", "").split(",")):
            k, _, v = kv.partition("=")  # extra config keys, e.g. log_level=debug, for a look inside a row
            self.conf[k.strip()] = v.strip()
        if os.environ.get("BENCH_PEERS_POLLGATE_WORKERS"):  # a fixed count, for comparing worker counts
            wk = os.environ["BENCH_PEERS_POLLGATE_WORKERS"]
            self.workers = int(wk)
        if wk is not None:
            self.conf["workers"] = wk
        self.gw = Gateway(self.binary, self.workdir, "pollgate", self.conf)
        self.gw.start(wait_ready=True, timeout=30)
        self.host, self.port = self.gw.host, self.gw.port

    def stop(self):
        if self.gw is not None:
            gw, self.gw = self.gw, None
            gw.stop(timeout=30)

    def teardown(self):
        self.stop()
        if self.cluster is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.cluster.stop()
            self.cluster.destroy()
            self.cluster = None

    def pids(self):
        return descendants(self.gw.pid)

    def db_pids(self):
        """The cluster's postmaster and every backend (the gateway's reads, the trigger's commits)."""
        try:
            pm = int((Path(self.cluster.datadir) / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return descendants(pm)

    def waiters(self, n, r):
        self.round += 1
        return [(g % r, f"/v1/runs/{g % r + 1}?wait={HOLD_S}",
                 [f"Authorization: Bearer {self.tokens[(g + g // r) % USERS]}", "If-None-Match: *"])
                for g in range(n)]

    def held(self):
        status, body = http_get(self.host, self.port, "/metrics")
        m = re.search(r'^pollgate_waiters_held\{kind="run"\} (\S+)$', body, re.M)
        return int(float(m.group(1))) if m else 0

    def _change(self, cur, ids):
        cur.execute("UPDATE operation_runs SET summary_counts = jsonb_build_object('total', 1000, 'processed', %s) "
                    "WHERE id = ANY(%s)", (self.round, [i + 1 for i in ids]))
        t_sent = time.time()
        self.conn.commit()
        return t_sent, time.time()

    def trigger(self, r, mode, pace=PACE_S):
        """Changes every resource once; returns per resource (t_sent, t_ack)."""
        t = [None] * r
        with self.conn.cursor() as cur:
            if mode in ("paced", "matched"):
                t0 = time.monotonic()
                for i in range(r):
                    delay = t0 + i * pace - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    t[i] = self._change(cur, [i])
            else:
                txns = min(r, BURST_TXNS_MAX)
                step = BURST_WINDOW_S / txns
                t0 = time.monotonic()
                for k in range(txns):
                    ids = list(range(k, r, txns))
                    delay = t0 + k * step - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    ts = self._change(cur, ids)
                    for i in ids:
                        t[i] = ts
        return t


# ==================================================================================================
# nginx + nchan


NGINX_CONF = """\
# bench/peers.py: nginx + nchan for `make bench-peers` (written per row)
load_module {module};
{user}
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
daemon off;
events {{
    worker_connections {nofile};
    multi_accept on;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    nchan_shared_memory_size 512M;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location ~ ^/sub/(.+)$ {{
            nchan_subscriber longpoll;
            nchan_channel_id $1;
            nchan_subscriber_timeout {hold}s;
        }}
        location ~ ^/pub/(.+)$ {{
            nchan_publisher;
            nchan_channel_id $1;
            nchan_message_buffer_length 2;
        }}
        location = /nchan_status {{
            nchan_stub_status;
        }}
    }}
}}
"""


class Nchan:
    name = "nchan"

    def __init__(self, workdir, nofile):
        self.dir = workdir / "nginx"
        self.nofile = nofile
        self.proc = None
        self.round = 0
        self.workers = 1
        self.host = "127.0.0.1"
        self.pipeline = PIPELINE

    def describe(self):
        v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
        pkg = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-nchan"], capture_output=True,
                             text=True).stdout.strip()
        return {"nginx": v, "libnginx-mod-nchan": pkg, "publishers": PUBLISHERS, "pipeline": self.pipeline,
                "conf": NGINX_CONF}

    def start(self, workers):
        import helpers
        self.workers = workers
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        self.port = helpers.free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(module=NGINX_MODULE, user="user root root;" if os.geteuid() == 0 else "",
                                          workers=workers, nofile=self.nofile, dir=self.dir, port=self.port,
                                          hold=HOLD_S))
        logf = open(self.dir / "stderr.log", "ab")
        self.proc = subprocess.Popen(["nginx", "-p", str(self.dir), "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited {self.proc.returncode}: "
                                   f"{(self.dir / 'stderr.log').read_text()[-2000:]}")
            try:
                if http_get(self.host, self.port, "/nchan_status")[0] == 200 and \
                        len(descendants(self.proc.pid)) >= workers + 1:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("nginx did not come up within 15 s")
            time.sleep(0.05)

    def stop(self):
        if self.proc is not None:
            p, self.proc = self.proc, None
            p.send_signal(signal.SIGTERM)  # fast shutdown: held subscribers go
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def teardown(self):
        self.stop()

    def pids(self):
        return descendants(self.proc.pid)

    def waiters(self, n, r):
        self.round += 1
        return [(g % r, f"/sub/r{self.round}-{g % r}", []) for g in range(n)]

    def held(self):
        _, body = http_get(self.host, self.port, "/nchan_status")
        m = re.search(r"^subscribers: (\d+)", body, re.M)
        return int(m.group(1)) if m else 0

    def _message(self, i):
        # About the size of pollgate's answer body for a run, so both servers write similar answers.
        return json.dumps({"run": {"id": i + 1, "workspace_id": 1, "tenant_id": 1, "type": "inventory.sync",
                                   "status": "running", "outcome": None,
                                   "summary_counts": {"total": 1000, "processed": self.round},
                                   "failure_summary": None, "created_at": "2026-12-07T18:00:00Z",
                                   "started_at": "2026-12-07T18:00:02Z", "completed_at": None},
                           "state": "running", "terminal": False, "poll": {"interval_ms": 10000}}).encode()

    def _publisher(self, ids, t, pace_t0=None, window=1):
        """Publishes one message to each channel of ids on one keep-alive connection, with up to
        `window` requests in flight (HTTP/1.1 pipelining; nginx answers them in order)."""
        reqs = []
        for i in ids:  # built before the first send, so building costs no change its latency
            body = self._message(i)
            reqs.append((f"POST /pub/r{self.round}-{i} HTTP/1.1\r\nHost: {self.host}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
        s = socket.create_connection((self.host, self.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        pending = collections.deque()
        nxt = 0
        try:
            while nxt < len(ids) or pending:
                while nxt < len(ids) and len(pending) < window:
                    if pace_t0 is not None:
                        delay = pace_t0 + nxt * PACE_S - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                    pending.append((ids[nxt], time.time()))
                    s.sendall(reqs[nxt])
                    nxt += 1
                while True:  # one answer: headers + Content-Length
                    end = buf.find(b"\r\n\r\n")
                    if end >= 0:
                        m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", buf[:end + 2])
                        clen = int(m.group(1)) if m else 0
                        if len(buf) >= end + 4 + clen:
                            status = int(buf.split(None, 2)[1])
                            buf = buf[end + 4 + clen:]
                            break
                    d = s.recv(65536)
                    if not d:
                        raise RuntimeError("nchan publisher connection closed")
                    buf += d
                if status not in (201, 202):
                    raise RuntimeError(f"nchan publish answered {status}")
                i, t_sent = pending.popleft()
                t[i] = (t_sent, time.time())
        finally:
            s.close()

    def trigger(self, r, mode, pace=PACE_S):
        t = [None] * r
        if mode in ("paced", "matched"):
            self._publisher(list(range(r)), t, pace_t0=time.monotonic())
            return t
        errs = []

        def run(ids):
            try:
                self._publisher(ids, t, window=self.pipeline)
            except Exception as e:
                errs.append(repr(e))
        threads = [threading.Thread(target=run, args=(list(range(k, r, PUBLISHERS)),)) for k in range(PUBLISHERS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errs:
            raise RuntimeError("; ".join(errs))
        return t


# ==================================================================================================
# One row against one server


def run_row(server, n, r, mode, workdir, pace=PACE_S):
    """Hold n waiters on r resources, change every resource, and measure. The server is running."""
    out = {"server": server.name, "N": n, "R": r, "trigger": mode, "workers": server.workers}
    pids = server.pids()
    out["processes"] = len(pids)
    rss0 = rss_kb(pids)
    waiters = server.waiters(n, r)
    lg = Loadgen(workdir, server.host, server.port, waiters, server.name)
    try:
        t0 = time.monotonic()
        sent, failed = lg.connect()
        out["loadgen_processes"] = len(lg.procs)
        out["connect_failed"] = failed
        deadline = time.monotonic() + 30 + n / 1000
        held = 0
        while time.monotonic() < deadline:
            held = server.held()
            answered, closed = lg.count()
            if held + answered + closed >= sent:
                break
            time.sleep(0.1)
        out["held"] = held
        out["hold_seconds"] = time.monotonic() - t0
        if held < n:
            out.setdefault("notes", []).append(f"only {held} of {n} held when the trigger started")
        pids = server.pids()
        time.sleep(0.5)  # let the last requests' allocations settle before reading RSS
        rss1 = rss_kb(pids)
        out["rss_kb"] = {"before": rss0, "held": rss1}
        out["bytes_per_waiter"] = (rss1 - rss0) * 1024 / n
        if os.environ.get("BENCH_PEERS_METRICS") and server.name == "pollgate":
            Path(os.environ["BENCH_PEERS_METRICS"] + ".held").write_text(http_get(server.host, server.port, "/metrics")[1])
        db_pids = server.db_pids() if hasattr(server, "db_pids") else []
        cpu0, lcpu0, dcpu0 = cpu_s(pids), cpu_s(lg.pids), cpu_s(db_pids)
        perf = None
        if os.environ.get("BENCH_PEERS_PERF"):
            # a profile of the server during the wake only: BENCH_PEERS_PERF=DIR writes DIR/<server>-<row>.data
            pdir = Path(os.environ["BENCH_PEERS_PERF"])
            pdir.mkdir(parents=True, exist_ok=True)
            perf = subprocess.Popen(["perf", "record", "-q", "--call-graph", os.environ.get("BENCH_PEERS_PERF_CG", "dwarf,16384"), "-F", "2999", "-o",
                                     str(pdir / f"{server.name}-{n}x{r}-{mode}.data"),
                                     "-p", ",".join(str(p) for p in pids)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.3)  # perf attaches asynchronously; nothing to await
        tt0 = time.time()
        changes = server.trigger(r, mode, pace)
        if mode == "matched":
            out["pace_ms"] = pace * 1e3
        tt1 = time.time()
        out["trigger_seconds"] = tt1 - tt0
        sends = [c[0] for c in changes]
        out["change_spread_ms"] = (max(sends) - min(sends)) * 1e3
        deadline = time.monotonic() + COLLECT_S
        while time.monotonic() < deadline:
            answered, closed = lg.count()
            if answered + closed >= sent:
                break
            time.sleep(0.05)
        cpu1, lcpu1 = cpu_s(pids), cpu_s(lg.pids)
        if db_pids:
            # PostgreSQL's share of the wake: the trigger's commits and every worker's re-reads
            out["db_cpu_s"] = cpu_s(db_pids) - dcpu0
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        if os.environ.get("BENCH_PEERS_METRICS") and server.name == "pollgate":
            # the server's own view of the wake (notify-to-answer, batches): BENCH_PEERS_METRICS=FILE
            Path(os.environ["BENCH_PEERS_METRICS"]).write_text(http_get(server.host, server.port, "/metrics")[1])
        out["server_cpu_s"] = cpu1 - cpu0
        out["loadgen_cpu_s"] = lcpu1 - lcpu0
        rows = lg.dump()
    finally:
        lg.quit()
    lat, lat_ack, dones, misses = [], [], [], {"early": 0, "status": 0, "closed": 0, "connect": 0, "unanswered": 0}
    statuses = {}
    for res, status, t1, t2 in rows:
        statuses[status] = statuses.get(status, 0) + 1
        if status == -1:
            misses["connect"] += 1
        elif status == -2:
            misses["closed"] += 1
        elif status == 0:
            misses["unanswered"] += 1
        elif status != 200:
            misses["status"] += 1
        elif t2 < changes[res][0]:
            misses["early"] += 1
        else:
            lat.append((t2 - changes[res][0]) * 1e3)
            lat_ack.append((t2 - changes[res][1]) * 1e3)
            dones.append(t2)
    if os.environ.get("BENCH_PEERS_DUMP"):
        # every waiter's (resource, status, answer time) and every change's (sent, acked): for plots
        Path(os.environ["BENCH_PEERS_DUMP"]).write_text(json.dumps({"changes": changes, "rows": rows}))
    out["statuses"] = {str(k): v for k, v in sorted(statuses.items())}
    out["misses"] = sum(misses.values()) + (n - len(rows))
    out["miss_kinds"] = misses
    out["latency_ms"] = dist_ms(lat)
    out["latency_from_ack_ms"] = dist_ms(lat_ack)
    if len(dones) > 1:
        span = max(dones) - min(dones)
        out["fanout"] = {"answers": len(dones), "first_to_last_ms": span * 1e3,
                         "answers_per_s": len(dones) / span if span > 0 else None,
                         "answers_per_server_cpu_s": len(dones) / out["server_cpu_s"] if out["server_cpu_s"] else None}
    return out


# ==================================================================================================
# Report


def f0(v):
    return "-" if v is None else f"{v:.0f}"


def f1(v):
    return "-" if v is None else f"{v:.1f}"


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def summarize(results):
    """One line per (row, repeat, nchan workers): pollgate and nchan, and the ratios."""
    lines = []
    hdr = (f"{'row':<20} {'server':<9} {'wk':>2} | {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} | {'misses':>6} | "
           f"{'B/waiter':>8} | {'spread ms':>9} {'answers/s':>9} {'srv CPU s':>9} {'ans/CPU-s':>9}")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for row in results:
        for side in row["sides"]:
            lat = side.get("latency_ms", {})
            fo = side.get("fanout", {})
            if side.get("skipped"):
                lines.append(f"{row['row']:<20} {side['server']:<9} {side.get('workers', 1):>2} | "
                             f"not runnable today: {side['skipped']} (misses {side['misses']})")
                continue
            if side.get("error"):
                lines.append(f"{row['row']:<20} {side['server']:<9} {side.get('workers', 1):>2} | ERROR {side['error']}")
                continue
            lines.append(f"{row['row']:<20} {side['server']:<9} {side['workers']:>2} | {f1(lat.get('p50')):>7} "
                         f"{f1(lat.get('p99')):>7} {f1(lat.get('max')):>7} | {side['misses']:>6} | "
                         f"{f0(side.get('bytes_per_waiter')):>8} | {f1(side.get('change_spread_ms')):>9} "
                         f"{f0(fo.get('answers_per_s')):>9} {side.get('server_cpu_s', 0):>9.2f} "
                         f"{f0(fo.get('answers_per_server_cpu_s')):>9}")
        r = row.get("ratio")
        if r:
            lines.append(f"{'':<20} {'pg/nchan':<9} {'':>2} | {fmt_r(r['p50']):>7} {fmt_r(r['p99']):>7} "
                         f"{fmt_r(r['max']):>7} | {'':>6} | {fmt_r(r['bytes_per_waiter']):>8} |")
    return "\n".join(lines)


def fmt_r(v):
    return "-" if v is None else f"{v:.2f}x"


def row_ratio(pg, nc):
    if pg.get("skipped") or pg.get("error") or nc.get("skipped") or nc.get("error"):
        return None
    lp, ln = pg.get("latency_ms", {}), nc.get("latency_ms", {})
    return {"p50": ratio(lp.get("p50"), ln.get("p50")), "p99": ratio(lp.get("p99"), ln.get("p99")),
            "max": ratio(lp.get("max"), ln.get("max")),
            "bytes_per_waiter": ratio(pg.get("bytes_per_waiter"), nc.get("bytes_per_waiter"))}


# ==================================================================================================


def parse_rows(spec):
    if not spec or spec == "default":
        return list(DEFAULT_ROWS)
    if spec == "all":
        return list(ALL_ROWS)
    rows = []
    for item in spec.split(","):
        item = item.strip()
        if item in ("default", "all"):  # a named set inside a list: 'default,100000x100:burst'
            rows += [x for x in (DEFAULT_ROWS if item == "default" else ALL_ROWS) if x not in rows]
            continue
        m = re.fullmatch(r"(\d+)x(\d+):(paced|burst|matched)", item)
        if not m:
            raise SystemExit(f"bench-peers: bad row '{item}' (NxR:paced, NxR:burst or NxR:matched, e.g. 10000x100:burst; "
                             f"or 'default' or 'all')")
        n, r = int(m.group(1)), int(m.group(2))
        if r < 1 or n < r:
            raise SystemExit(f"bench-peers: bad row '{item}': need 1 <= R <= N")
        rows.append(item)
    return rows


def write_floor(n=9000):
    """build/write_floor's time per 700-byte loopback write from one process (bench/write_floor.c): the
    floor under any server's fan-out on this machine, right now. None when it is not built."""
    binary = REPO / "build" / "write_floor"
    if not binary.exists():
        return None
    p = subprocess.run([str(binary), str(n)], capture_output=True, text=True, timeout=120)
    m = re.search(r"\(([\d.]+) us each\)", p.stdout)
    if not m:
        return None
    us = float(m.group(1))
    return {"writes": n, "us_per_write": us, "writes_per_s": 1e6 / us}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default=os.environ.get("BENCH_PEERS_ROWS", "default"),
                    help="comma-separated NxR:paced|burst, 'default' or 'all' (env BENCH_PEERS_ROWS)")
    ap.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_PEERS_REPEAT", "1")),
                    help="run every row this many times (env BENCH_PEERS_REPEAT)")
    ap.add_argument("--nchan-workers", default=os.environ.get("BENCH_PEERS_NCHAN_WORKERS", "match"),
                    help="comma-separated list of 1, N or 'match' (as many as pollgate has workers); "
                         "raised per row to what N needs under the descriptor cap")
    ap.add_argument("--nchan-pipeline", type=int, default=int(os.environ.get("BENCH_PEERS_NCHAN_PIPELINE", PIPELINE)),
                    help="publish requests in flight per publisher connection in a burst (1 = no pipelining)")
    ap.add_argument("--only", choices=("pollgate", "nchan"), help="run one side only")
    ap.add_argument("--json", default=str(REPO / "build" / "bench-peers.json"))
    a = ap.parse_args()
    rows = parse_rows(a.rows)

    nofile = raise_nofile()
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    workdir = REPO / "build" / "bench-peers"
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    t_start = time.monotonic()
    out = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "cpus": os.cpu_count(),
           "nofile": nofile, "rows_spec": rows, "repeat": a.repeat, "errors": [], "results": []}
    try:
        out["git_head"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                         capture_output=True, text=True).stdout.strip()
        out["machine"] = subprocess.run(["uname", "-srm"], capture_output=True, text=True).stdout.strip()
        out["loadavg_start"] = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        pass

    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    out["write_floor"] = [write_floor()]
    max_r = max(int(re.match(r"\d+x(\d+)", r).group(1)) for r in rows)
    pg = Pollgate(workdir, max_r, nofile)
    nc = Nchan(workdir, nofile)
    nc.pipeline = max(1, a.nchan_pipeline)
    rc = 0
    try:
        if a.only != "nchan":
            log(f"pollgate: PostgreSQL cluster with {max_r} runs, {USERS} users")
            pg.setup()
            out["postgres"] = pg.pg_version
        log(f"pollgate: workers key: {'yes' if pg.has_workers else 'not yet (one process)'}; "
            f"~{pg.per_process} waiters per process (nofile {nofile})")
        for rep in range(a.repeat):
            for spec in rows:
                n, r, mode = re.fullmatch(r"(\d+)x(\d+):(\w+)", spec).groups()
                n, r = int(n), int(r)
                nchan_choices = []
                for w in a.nchan_workers.split(","):
                    w = w.strip()
                    nchan_choices.append(pg.plan(n)[1] if w == "match" else int(w))
                nchan_choices = list(dict.fromkeys(nchan_choices))
                for nw in nchan_choices:
                    need = -(-n // (nofile - FD_MARGIN))
                    w = max(nw, need)
                    label = f"{spec}" + (f" r{rep + 1}" if a.repeat > 1 else "")
                    entry = {"row": label, "N": n, "R": r, "trigger": mode, "repeat": rep + 1,
                             "nchan_workers_asked": nw, "sides": []}
                    order = [pg, nc] if rep % 2 == 0 else [nc, pg]
                    if mode == "matched":
                        order = [nc, pg]  # pollgate takes the pace nchan kept
                    for server in order:
                        if a.only and server.name != a.only:
                            continue
                        if server is pg and nw != nchan_choices[0]:
                            # pollgate does not change with nchan's worker count: run it once per row
                            prev = [s for e in out["results"] if e["row"] == label for s in e["sides"]
                                    if s["server"] == "pollgate"]
                            if prev:
                                entry["sides"].append(dict(prev[0], reused=True))
                                continue
                        side = {"server": server.name, "N": n, "R": r, "trigger": mode}
                        if server is pg and n > pg.capacity(n):
                            side.update(skipped=f"{n} waiters > ~{pg.capacity(n)} one process can hold "
                                                f"(no workers yet)", misses=n, workers=1)
                            entry["sides"].append(side)
                            log(f"{label}: pollgate not runnable today ({side['skipped']})")
                            continue
                        log(f"{label}: {server.name}" + (f" ({w} workers)" if server is nc else ""))
                        try:
                            if server is pg:
                                pg.start(n)
                            else:
                                nc.start(w)
                            pace = PACE_S
                            if mode == "matched" and server is pg:
                                ref = [x for x in entry["sides"] if x["server"] == "nchan" and x.get("change_spread_ms")]
                                if not ref:
                                    raise RuntimeError("matched: no nchan pace to match in this row (run both sides)")
                                pace = ref[0]["change_spread_ms"] / 1e3 / max(1, r - 1)
                            side = run_row(server, n, r, mode, workdir, pace)
                        except KeyboardInterrupt:
                            raise
                        except Exception as e:
                            traceback.print_exc()
                            side["error"] = f"{type(e).__name__}: {e}"
                            side["misses"] = n
                            out["errors"].append(f"{label} {server.name}: {side['error']}")
                        finally:
                            try:
                                server.stop()
                            except Exception as e:
                                out["errors"].append(f"{label} {server.name} stop: {e}")
                        lat = side.get("latency_ms", {})
                        log(f"  held {side.get('held')} in {side.get('hold_seconds', 0):.1f}s, p50 {f1(lat.get('p50'))} "
                            f"p99 {f1(lat.get('p99'))} max {f1(lat.get('max'))} ms, misses {side.get('misses')}, "
                            f"{f0(side.get('bytes_per_waiter'))} B/waiter")
                        entry["sides"].append(side)
                    entry["sides"].sort(key=lambda s: s["server"] != "pollgate")
                    if len(entry["sides"]) == 2:
                        entry["ratio"] = row_ratio(*entry["sides"])
                    out["results"].append(entry)
    except KeyboardInterrupt:
        out["errors"].append("interrupted")
        rc = 130
    except Exception as e:
        traceback.print_exc()
        out["errors"].append(f"{type(e).__name__}: {e}")
        rc = 1
    finally:
        out["pollgate"] = pg.describe()
        out["nchan"] = nc.describe()
        for s in (nc, pg):
            try:
                s.teardown()
            except Exception as e:
                out["errors"].append(f"{s.name} teardown: {e}")
        if rc == 0:
            out["write_floor"].append(write_floor())
        out["total_seconds"] = time.monotonic() - t_start
        out["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
        path = Path(a.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2, default=str) + "\n")
        print()
        print(f"bench-peers {out['date']}, {out.get('machine', '')}, {out['cpus']} CPUs, nofile {nofile}, "
              f"load {' '.join(out.get('loadavg_start', []))} -> {' '.join(out['loadavg_end'])}")
        print("latency per waiter from its own resource's change (COMMIT / publish sent) to its answer read in full")
        print(summarize(out["results"]))
        floors = [f for f in out["write_floor"] if f]
        if floors:
            print("write floor (one process, 700 B loopback writes, no HTTP): " + ", then ".join(
                f"{f['us_per_write']:.1f} us/write = {f['writes_per_s']:.0f} answers/s" for f in floors))
        if out["errors"]:
            print("ERRORS: " + "; ".join(out["errors"]))
        print(f"total {out['total_seconds']:.0f} s; JSON: {path}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
