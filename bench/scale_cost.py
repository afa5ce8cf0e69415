#!/usr/bin/python3
"""bench/scale_cost.py — what running N gateways costs PostgreSQL, measured (docs/scale-out.md).

    make bench-scale                    (builds ./pollgate, then runs this with the defaults)
    /usr/bin/python3 bench/scale_cost.py [--instances 1,2,4,8] [--clients 10000] [--runs 100]
                                         [--users 100] [--duration 20] [--client-procs 4]

One throwaway PostgreSQL 15 cluster (tests/integration/conftest.py's PgCluster, pg_stat_statements
loaded), the release ./pollgate ($POLLGATE_BIN overrides) connecting as db/grant.sql's role
pollgate_gateway, and for each N in --instances:

  - N gateway processes (one config and port each; db_pool_size as configured, default 2);
  - C browser-like clients (tests/scale/browsers.py: long-poll, re-poll at once with the ETag), client i
    on run i mod R and instance (i div R) mod N, so every run is watched on every instance — directly, no proxy: a proxy changes nothing PostgreSQL sees — spread over
    --client-procs processes (a process holds at most ~19,000 sockets);
  - once every client is held, a writer changes every one of the R runs once per second, each in its
    own transaction, spread evenly over the second (R commits/s; the NOTIFY trigger fires on each),
    for --duration seconds;
  - measured over that window: every statement the gateway role ran (pg_stat_statements, by userid),
    as statements/s and per change; the sessions it held (pg_stat_activity by application_name:
    `pollgate` = the query pool, `pollgate-listen` = the LISTEN session; the maximum of 1 s samples);
    the answers the clients got; and at the end every client must have the last version of its run.

The baseline is short-polling: every browser asks PostgreSQL once per poll interval (C / interval
queries/s, at 1, 5 and 10 s), whatever changed. Prints a table; writes build/bench-scale.json.
"""

import argparse
import json
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.append(str(REPO / "tests" / "scale"))  # after tests/integration: its conftest is the one imported

GATEWAY_ROLE = "pollgate_gateway"


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ==================================================================================================
# Client processes: each runs a browsers.Pool for its slice, commanded over a pipe.


def client_main(pipe):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_nofile()
    from browsers import Pool
    pool = None
    while True:
        try:
            cmd = pipe.recv()
        except EOFError:
            cmd = ("stop",)
        try:
            if cmd[0] == "start":
                _, specs, wait = cmd
                pool = Pool("127.0.0.1", None, specs, wait=wait, connect_concurrency=50).start()
                pipe.send(("ok",))
            elif cmd[0] == "lagging":
                pipe.send(("ok", len(pool.lagging(cmd[1]))))
            elif cmd[0] == "totals":
                pipe.send(("ok", pool.totals()))
            elif cmd[0] == "stop":
                t = None
                if pool is not None:
                    pool.stop()
                    t = pool.totals()
                    t["samples"] = pool.error_samples(3)
                pipe.send(("ok", t))
                return
        except Exception:
            pipe.send(("error", traceback.format_exc()))


class Clients:
    def __init__(self, n):
        ctx = multiprocessing.get_context("fork")
        self.procs, self.pipes = [], []
        for _ in range(n):
            a, b = ctx.Pipe()
            p = ctx.Process(target=client_main, args=(b,), daemon=True)
            p.start()
            b.close()
            self.procs.append(p)
            self.pipes.append(a)

    def call(self, msgs, timeout=120.0):
        for p, m in zip(self.pipes, msgs):
            p.send(m)
        out = []
        for i, p in enumerate(self.pipes):
            if not p.poll(timeout):
                raise RuntimeError(f"client process {i} did not answer {msgs[i][0]!r} within {timeout}s")
            r = p.recv()
            if r[0] != "ok":
                raise RuntimeError(f"client process {i} failed:\n{r[1]}")
            out.append(r[1] if len(r) > 1 else None)
        return out

    def all(self, msg, timeout=120.0):
        return self.call([msg] * len(self.pipes), timeout)

    def close(self):
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join(2)


# ==================================================================================================


class Bench:
    def __init__(self, a):
        self.a = a
        self.out = {"config": vars(a), "rows": [], "errors": []}
        self.cluster = None
        self.gws = []
        self.t0 = time.monotonic()

    def log(self, msg):
        print(f"[{time.monotonic() - self.t0:6.1f}s] {msg}", flush=True)

    def q(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None

    def setup(self):
        from conftest import PgCluster
        import helpers
        self.h = helpers
        self.cluster = PgCluster()
        self.cluster.init()
        self.cluster.start()
        self.cluster.setup_database()
        self.cluster.psql_file(helpers.GRANT_SQL)
        self.conn = self.cluster.connect(application_name="pollgate-bench")
        self.out["postgres"] = self.q("SHOW server_version")[0][0]
        self.out["max_connections"] = int(self.q("SHOW max_connections")[0][0])
        c, a = self.conn, self.a
        helpers.make_workspace(c, id=1, name="Bench")
        helpers.make_tenant(c, 1, id=1, name="Bench tenant")
        self.tokens = []
        for u in range(1, a.users + 1):
            tok = f"scale-tok-{u:04d}"
            helpers.make_principal(c, tok, 1, tenant_ids=(1,), role="member", user_id=u)
            self.tokens.append(tok)
        self.runs = list(range(1, a.runs + 1))
        for r in self.runs:
            helpers.make_run(c, 1, 1, id=r, status="running", summary_counts={"total": 10 ** 9, "processed": 0},
                             started_at=helpers.Raw("now() - interval '1 hour'"))  # the steady 10 s safety-net tier

    def gateway_calls(self):
        return int(self.q("SELECT coalesce(sum(s.calls), 0)::bigint FROM pg_stat_statements s "
                          "JOIN pg_database d ON d.oid = s.dbid "
                          "WHERE d.datname = current_database() AND s.userid = %s::regrole", (GATEWAY_ROLE,))[0][0])

    def gateway_by_statement(self):
        rows = self.q("SELECT s.query, sum(s.calls)::bigint FROM pg_stat_statements s "
                      "JOIN pg_database d ON d.oid = s.dbid "
                      "WHERE d.datname = current_database() AND s.userid = %s::regrole GROUP BY 1", (GATEWAY_ROLE,))
        return {q: int(n) for q, n in rows}

    def sessions(self):
        return dict(self.q("SELECT application_name, count(*)::int FROM pg_stat_activity "
                           "WHERE usename = %s GROUP BY 1", (GATEWAY_ROLE,)))

    def versions(self):
        return dict(self.q("SELECT id, (summary_counts->>'processed')::int FROM operation_runs"))

    def start_gateways(self, n):
        from conftest import Gateway
        workdir = REPO / "build" / "bench-scale-run"
        workdir.mkdir(parents=True, exist_ok=True)
        binary = Path(os.environ.get("POLLGATE_BIN") or (REPO / "pollgate"))
        cap = 10 * self.a.clients
        self.gws = []
        for i in range(n):
            conf = {"listen": f"127.0.0.1:{self.h.free_port()}",
                    "database": f"postgresql://{GATEWAY_ROLE}@{self.cluster.host}:{self.cluster.port}/{self.cluster.dbname}",
                    "max_waiters": cap, "max_waiters_per_principal": cap, "max_waiters_per_client": cap,
                    "log_level": "warn", "workers": self.a.gateway_workers}
            gw = Gateway(binary, workdir, f"n{n}-gw{i + 1}", conf)
            gw.start(wait_ready=True, timeout=30)
            self.gws.append(gw)

    def held(self):
        return sum(g.metrics().value("pollgate_waiters_held") for g in self.gws)

    def stop_gateways(self):
        for g in self.gws:
            try:
                g.stop(timeout=30)
            except AssertionError as e:
                self.out["errors"].append(str(e)[:500])
        self.gws = []

    def writer(self, stop, counter):
        """Every run changes once per second, each in its own transaction, evenly spread."""
        conn = self.cluster.connect(application_name="pollgate-bench-writer")
        step = 1.0 / len(self.runs)
        t = time.monotonic()
        k = 0
        while not stop.is_set():
            r = self.runs[k % len(self.runs)]
            with conn.cursor() as cur:
                cur.execute("UPDATE operation_runs SET summary_counts = jsonb_build_object('total', 1000000000, "
                            "'processed', (summary_counts->>'processed')::int + 1) WHERE id = %s", (r,))
            counter[0] += 1
            k += 1
            t += step
            d = t - time.monotonic()
            if d > 0:
                time.sleep(d)
        conn.close()

    def one(self, n):
        a = self.a
        self.log(f"N={n}: starting {n} gateway(s)")
        self.start_gateways(n)
        specs = [(self.runs[i % len(self.runs)], self.tokens[(i // len(self.runs)) % len(self.tokens)],
                  self.gws[(i // len(self.runs)) % n].port) for i in range(a.clients)]  # every run on every instance
        clients = Clients(a.client_procs)
        row = {"instances": n, "clients": a.clients, "runs": len(self.runs)}
        try:
            clients.call([("start", specs[i::a.client_procs], 50) for i in range(a.client_procs)])
            deadline = time.monotonic() + 300
            while self.held() < a.clients:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {self.held():.0f} of {a.clients} held after 300 s")
                time.sleep(0.2)
            self.log(f"N={n}: {a.clients} clients held; measuring {a.duration:.0f} s with {len(self.runs)} changes/s")
            stop, counter = threading.Event(), [0]
            s0, by0, m0 = self.gateway_calls(), self.gateway_by_statement(), self.metric_sum("pollgate_db_queries_total")
            tot0 = self.sum_totals(clients)
            w = threading.Thread(target=self.writer, args=(stop, counter), daemon=True)
            t0 = time.monotonic()
            w.start()
            peak = {}
            while time.monotonic() - t0 < a.duration:
                time.sleep(1.0)
                for k, v in self.sessions().items():
                    peak[k] = max(peak.get(k, 0), v)
            stop.set()
            w.join(10)
            elapsed = time.monotonic() - t0
            s1, by1, m1 = self.gateway_calls(), self.gateway_by_statement(), self.metric_sum("pollgate_db_queries_total")
            # every client ends at the last version of its run
            want = self.versions()
            deadline = time.monotonic() + 60
            while True:
                late = sum(clients.all(("lagging", want)))
                if late == 0:
                    break
                if time.monotonic() > deadline:
                    self.out["errors"].append(f"N={n}: {late} clients not at the last version after 60 s")
                    break
                time.sleep(0.2)
            caught_up = time.monotonic() - t0 - elapsed
            tot1 = self.sum_totals(clients)
            by = {}
            for q, c in by1.items():
                d = c - by0.get(q, 0)
                if d:
                    label = self.label(q)
                    by[label] = by.get(label, 0) + d
            changes = counter[0]
            row.update({
                "seconds": round(elapsed, 2), "changes": changes, "changes_per_s": round(changes / elapsed, 1),
                "gateway_statements": s1 - s0, "statements_per_s": round((s1 - s0) / elapsed, 1),
                "statements_per_change": round((s1 - s0) / max(1, changes), 2),
                "by_statement": by,
                "db_queries_metric": m1 - m0,
                "sessions_peak": peak, "sessions_total": sum(peak.values()),
                "answers_200": tot1["200"] - tot0["200"], "answers_304": tot1["304"] - tot0["304"],
                "client_errors": tot1["errors"] - tot0["errors"], "stale": tot1["stale"], "bad_etag": tot1["bad_etag"],
                "caught_up_s": round(caught_up, 2),
                "short_poll_per_s": {f"{iv}s": a.clients / iv for iv in (1, 5, 10)},
            })
            self.log(f"N={n}: {row['statements_per_s']} statements/s ({row['statements_per_change']} per change), "
                     f"sessions {peak}, 200s {row['answers_200']}, errors {row['client_errors']}")
        finally:
            try:
                ends = clients.all(("stop",), timeout=60)
                row["client_samples"] = [s for e in ends if e for s in e.get("samples", [])][:3]
            except Exception as e:
                self.out["errors"].append(f"N={n}: stopping clients: {e}")
            clients.close()
            self.stop_gateways()
        self.out["rows"].append(row)

    @staticmethod
    def sum_totals(clients):
        out = {"200": 0, "304": 0, "errors": 0, "stale": 0, "bad_etag": 0}
        for t in clients.all(("totals",)):
            for k in out:
                out[k] += t[k]
        return out

    def metric_sum(self, name):
        return sum(g.metrics().value(name) for g in self.gws)

    @staticmethod
    def label(q):
        if "operation_runs" in q:
            return "runs re-read"
        if "review_packs" in q:
            return "packs re-read"
        if "access_tokens" in q:
            return "token lookup"
        if q.upper().startswith("LISTEN"):
            return "LISTEN"
        if "pg_notification_queue_usage" in q:
            return "heartbeat"
        return " ".join(q.split())[:50]

    def run(self):
        self.log(f"cluster: initdb + start ({os.cpu_count()} CPUs shared by everything)")
        self.setup()
        for n in self.a.instances:
            self.one(n)

    def cleanup(self):
        self.stop_gateways()
        if self.cluster is not None:
            self.cluster.destroy()


def report(out):
    a = out["config"]
    lines = ["", f"scale-out cost: {a['clients']} clients long-polling {a['runs']} runs, every run changing once a "
             f"second ({a['runs']} commits/s), {a['duration']:.0f} s per row; PostgreSQL {out.get('postgres')}",
             "", "instances | changes/s | gateway statements/s | per change | sessions (pool+listen) | 200s/s | client errors",
             "--------- | --------- | -------------------- | ---------- | ---------------------- | ------ | -------------"]
    for r in out["rows"]:
        if "statements_per_s" not in r:
            continue
        sp = r["sessions_peak"]
        lines.append(f"{r['instances']:>9} | {r['changes_per_s']:>9} | {r['statements_per_s']:>20} | "
                     f"{r['statements_per_change']:>10} | {r['sessions_total']:>3} ({sp.get('pollgate', 0)}+"
                     f"{sp.get('pollgate-listen', 0)}){'':>13} | {r['answers_200'] / r['seconds']:>6.0f} | "
                     f"{r['client_errors']}")
    if out["rows"]:
        c = a["clients"]
        lines.append("")
        lines.append(f"short-polling instead: {c} browsers x 1 query per poll = {c} queries/s at 1 s, "
                     f"{c // 5}/s at 5 s, {c // 10}/s at 10 s, whatever changed")
        for r in out["rows"]:
            if "by_statement" in r:
                lines.append(f"  N={r['instances']}: " + ", ".join(f"{k} {v}" for k, v in
                                                                  sorted(r["by_statement"].items(), key=lambda kv: -kv[1])))
    if out["errors"]:
        lines.append("errors: " + "; ".join(out["errors"]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", default="1,2,4,8", help="comma-separated gateway counts")
    ap.add_argument("--gateway-workers", type=int, default=1,
                    help="workers per gateway instance (the table counts queries per instance x workers)")
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--duration", type=float, default=20.0, help="measured seconds per row")
    ap.add_argument("--client-procs", type=int, default=4, help="client processes (each <= ~19k sockets)")
    ap.add_argument("--json", default=str(REPO / "build" / "bench-scale.json"))
    a = ap.parse_args()
    a.instances = [int(x) for x in a.instances.split(",") if x]
    if a.clients // a.client_procs > 19000:
        ap.error("more than 19,000 sockets per client process: raise --client-procs")
    raise_nofile()
    b = Bench(a)

    def on_term(signum, frame):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    rc = 0
    try:
        b.run()
    except KeyboardInterrupt:
        b.out["errors"].append("interrupted")
        rc = 130
    except Exception as e:
        b.out["errors"].append(f"{type(e).__name__}: {e}")
        traceback.print_exc()
        rc = 1
    finally:
        b.cleanup()
        b.out["total_seconds"] = round(time.monotonic() - b.t0, 1)
        p = Path(a.json)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(b.out, indent=2, default=str) + "\n")
        print(report(b.out), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
